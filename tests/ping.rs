//! Ping/pong: the daemon pings after the handshake, accepts the right answer, tells wrong ones
//! apart (as Core's `ProcessPong` logs them), and answers our pings with the same nonce.

mod common;

use std::time::Duration;

use bitcoin::p2p::message::NetworkMessage;
use common::*;

#[test]
fn daemon_pings_after_handshake_and_accepts_the_pong() {
    let d = Daemon::start(&[]);
    let mut p = d.connect();
    let hs = p.handshake();
    assert_ne!(hs.ping_nonce, 0);
    p.send(&NetworkMessage::Pong(hs.ping_nonce));
    // The ping is complete: the next one is due only after the 2-minute interval.
    p.assert_silent(Duration::from_secs(2));
    // A correct pong logs no problem.
    p.ping_pong(1); // make sure the pong was processed before looking at the log
    assert_eq!(d.log_count("pong peer="), 0, "{}", tail(&d.log(), 20));
    assert_eq!(d.log_count("disconnected peer="), 0);
}

#[test]
fn wrong_pong_nonce_is_ignored() {
    let d = Daemon::start(&[]);
    let mut p = d.connect();
    let hs = p.handshake();
    let wrong = hs.ping_nonce.wrapping_add(1).max(1);
    p.send(&NetworkMessage::Pong(wrong));
    d.wait_log_all(
        &["pong peer=0: Nonce mismatch", &format!("{:x} expected, {wrong:x} received", hs.ping_nonce)],
        WAIT,
    );
    // Still outstanding: the right answer completes it silently.
    p.send(&NetworkMessage::Pong(hs.ping_nonce));
    p.ping_pong(2);
    assert_eq!(d.log_count("pong peer=0"), 1, "{}", tail(&d.log(), 20));
    // Then a pong is unsolicited.
    p.send(&NetworkMessage::Pong(hs.ping_nonce));
    d.wait_log("pong peer=0: Unsolicited pong without ping", WAIT);
    assert!(!p.is_closed(Duration::from_millis(200)));
}

#[test]
fn zero_or_short_pong_cancels_the_ping() {
    let d = Daemon::start(&[]);
    let mut p = d.connect();
    p.handshake();
    p.send(&NetworkMessage::Pong(0));
    d.wait_log("pong peer=0: Nonce zero", WAIT);
    // Cancelled: another pong is now unsolicited.
    p.send(&NetworkMessage::Pong(5));
    d.wait_log("pong peer=0: Unsolicited pong without ping", WAIT);

    // A pong too short to hold a nonce cancels the ping too (Core: "Short payload"), and the
    // peer stays.
    let mut q = d.connect();
    let hs = q.handshake();
    q.send_frames(&raw_frame(MAGIC, b"pong", &[1, 2, 3], None));
    q.send(&NetworkMessage::Pong(hs.ping_nonce));
    d.wait_log("pong peer=1: Unsolicited pong without ping", WAIT);
    assert!(!q.is_closed(Duration::from_millis(200)));
}

#[test]
fn daemon_answers_pings_with_the_same_nonce() {
    let d = Daemon::start(&[]);
    let mut p = d.connect_ready();
    for nonce in [0, 1, 0xdead_beef, u64::MAX, random_u64()] {
        p.send(&NetworkMessage::Ping(nonce));
        assert_eq!(p.recv(), Some(NetworkMessage::Pong(nonce)));
    }
    // Back to back, answered in order.
    for nonce in 100..150 {
        p.send(&NetworkMessage::Ping(nonce));
    }
    for nonce in 100..150 {
        assert_eq!(p.recv(), Some(NetworkMessage::Pong(nonce)));
    }
}

#[test]
fn unanswered_ping_is_not_repeated_early() {
    let d = Daemon::start(&[]);
    let mut p = d.connect();
    p.handshake();
    // We never answer: one ping stays outstanding, no second ping, no disconnect (the ping
    // timeout is 20 minutes).
    p.assert_silent(Duration::from_secs(2));
    p.ping_pong(3);
}
