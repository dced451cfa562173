//! Connection timeouts (Core's `InactivityCheck` with `-peertimeout`): a silent connection and a
//! half-finished handshake are dropped once the grace period is over; a finished one stays.

mod common;

use std::time::{Duration, Instant};

use bitcoin::p2p::message::NetworkMessage;
use common::*;

#[test]
fn silent_connection_is_dropped_after_peertimeout() {
    let d = Daemon::start(&["--peertimeout=1"]);
    let start = Instant::now();
    let mut p = d.connect();
    assert!(p.is_closed(WAIT), "silent peer not disconnected");
    // The daemon's clock starts after our connect, so this lower bound cannot be flaky.
    assert!(start.elapsed() >= Duration::from_secs(1), "disconnected before the grace period: {:?}", start.elapsed());
    assert_eq!(p.bytes_received, 0);
    d.wait_log_all(
        &[
            "disconnected peer=0 (inbound, <no version>)",
            "socket no message in first period, never received from peer, never sent to peer",
        ],
        WAIT,
    );
}

#[test]
fn version_without_verack_is_dropped_with_handshake_timeout() {
    let d = Daemon::start(&["--peertimeout=1"]);
    let start = Instant::now();
    let mut p = d.connect();
    p.send(&NetworkMessage::Version(version_msg(70016, "/noverack:1.0/", random_u64())));
    p.expect("version");
    p.expect("wtxidrelay");
    p.expect("sendaddrv2");
    p.expect("verack");
    assert!(p.is_closed(WAIT), "peer without verack not disconnected");
    assert!(start.elapsed() >= Duration::from_secs(1), "disconnected before the grace period: {:?}", start.elapsed());
    d.wait_log("disconnected peer=0 (inbound, /noverack:1.0/): version handshake timeout", WAIT);
}

#[test]
fn completed_handshake_survives_peertimeout() {
    let d = Daemon::start(&["--peertimeout=1"]);
    let mut p = d.connect_ready();
    // Well past the grace period (inactivity checks run every 100 ms).
    p.assert_silent(Duration::from_millis(2500));
    p.ping_pong(1);
    assert_eq!(d.log_count("disconnected peer="), 0, "{}", tail(&d.log(), 20));
}

#[test]
fn default_peertimeout_keeps_a_silent_connection() {
    let d = Daemon::start(&[]);
    let mut p = d.connect();
    assert!(!p.is_closed(Duration::from_millis(2500)), "silent peer dropped before the 60 s default");
    p.handshake();
}
