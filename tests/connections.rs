//! Connection bookkeeping: why connections end (as the log tells), inbound slots and outbound
//! connections to a peer that never answers.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use bitcoin::p2p::message::NetworkMessage;
use common::*;

#[test]
fn peer_closing_is_logged_with_its_user_agent() {
    let d = Daemon::start(&[]);
    let mut p = d.connect();
    p.handshake_as("/closer:2.0/");
    drop(p);
    d.wait_log("disconnected peer=0 (inbound, /closer:2.0/): socket closed by peer", WAIT);
}

#[test]
fn inbound_slots_are_limited_and_freed() {
    // 12 connections leave 1 inbound slot after the 11 outbound ones.
    let d = Daemon::start(&["--maxconnections=12"]);
    let mut a = d.connect_ready();
    let mut b = d.connect();
    assert!(b.is_closed(WAIT), "second inbound connection accepted with one slot");
    assert_eq!(b.bytes_received, 0);
    d.wait_log("dropped (full)", WAIT);
    a.ping_pong(1);
    // Freeing the slot (the daemon disconnects `a`) lets the next one in.
    a.send(&NetworkMessage::WtxidRelay);
    assert!(a.is_closed(WAIT));
    d.wait_log("disconnected peer=0", WAIT);
    let mut c = d.connect();
    c.handshake();
    c.ping_pong(2);
    // And a peer that leaves by itself frees it too.
    drop(c);
    d.wait_log("socket closed by peer", WAIT);
    let mut e = d.connect();
    e.handshake();
}

#[test]
fn silent_outbound_peer_is_dropped_after_peertimeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let raw_port = listener.local_addr().unwrap().port();
    let d = Daemon::start_with(true, |_| {
        vec!["--v2transport=0".into(), "--peertimeout=1".into(), format!("--connect=127.0.0.1:{raw_port}")]
    });
    let stream = accept_within(&listener, WAIT);
    let mut p = RawPeer::from_stream(stream);
    p.expect("version");
    // We never answer.
    assert!(p.is_closed(WAIT), "silent outbound peer kept");
    d.wait_log(
        "disconnected peer=0 (manual, <no version>): socket no message in first period, never received from peer",
        WAIT,
    );
    // --connect redials (with back-off).
    accept_within(&listener, WAIT);
}

#[test]
fn many_peers_are_served_concurrently() {
    let d = Daemon::start(&[]);
    let mut peers: Vec<RawPeer> = (0..20).map(|_| d.connect_ready()).collect();
    for round in 0..5u64 {
        for (i, p) in peers.iter_mut().enumerate() {
            p.send(&NetworkMessage::Ping(round * 100 + i as u64));
        }
        for (i, p) in peers.iter_mut().enumerate() {
            assert_eq!(p.recv(), Some(NetworkMessage::Pong(round * 100 + i as u64)));
        }
    }
    assert_eq!(d.log_count("New inbound peer connected"), 20);
}

#[test]
fn full_size_message_is_received() {
    let d = Daemon::start(&[]);
    let mut p = d.connect_ready();
    let payload = vec![0x42u8; 4_000_000];
    p.send_frames(&raw_frame(MAGIC, b"bigunknown", &payload, None));
    p.ping_pong(9);
    d.wait_log("received: bigunknown (4000000 bytes) peer=0", WAIT);
}

#[test]
fn connect_redials_after_the_peer_restarts() {
    let mut a = Daemon::start(&[]);
    let a_port = a.port;
    let b = Daemon::start_with(true, |_| vec![format!("--connect=127.0.0.1:{a_port}")]);
    b.wait_log("New manual peer connected", WAIT);
    assert_eq!(a.sigterm_and_wait(WAIT).code(), Some(0));
    b.wait_log_all(&["disconnected peer=", "(manual, "], WAIT);
    drop(a);
    // Same port, new process: B comes back on its own.
    let a2 = Daemon::start_on_port(a_port, &[]);
    a2.wait_log("New inbound peer connected", Duration::from_secs(20));
    b.wait_log_count("New manual peer connected", 2, WAIT);
}

#[test]
fn user_agent_is_sanitized_in_the_log() {
    let d = Daemon::start(&[]);
    let mut p = d.connect();
    p.handshake_as("/evil<script>\n\u{1b}[31m:1.0/");
    let line = d.wait_log("New inbound peer connected", WAIT);
    assert!(line.contains("user agent: /evilscript31m:1.0/,"), "{line}");
}

#[test]
fn full_inbound_slots_evict_an_unprotected_peer_for_a_newcomer() {
    // 51 connections leave 40 inbound slots: enough peers that Core's protections
    // (network group, ping, uptime, …) leave some unprotected.
    let d = Daemon::start(&["--maxconnections=51"]);
    let mut peers: Vec<RawPeer> = (0..40u64)
        .map(|i| {
            let mut p = d.connect();
            p.handshake();
            p.ping_pong(i + 1);
            p
        })
        .collect();
    let mut newcomer = d.connect();
    newcomer.handshake();
    newcomer.ping_pong(99);
    d.wait_log("selected peer=", WAIT);
    let log = d.wait_log("evicted to make room for a new inbound peer", WAIT);
    let evicted = peers.iter_mut().map(|p| p.is_closed(Duration::from_millis(50))).filter(|c| *c).count();
    assert_eq!(evicted, 1, "exactly one old peer makes room:\n{}", tail(&log, 5));
    assert!(!newcomer.closed(), "the newcomer was refused");
}
