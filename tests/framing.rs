//! Framing rules: fatal faults (wrong magic, oversized length) end the connection; per-message
//! faults (checksum, malformed type, unknown type, undecodable payload) drop the message and keep
//! the peer. Throughout, a second, well-behaved peer keeps being served.
//!
//! The faulty peer speaks `BTCLOOP_TEST_TRANSPORT`'s transport where the fault exists in both
//! (a malformed or unknown type, an undecodable payload, the length limit, frames split across
//! writes): its frames are encrypted into v2 packets as they are. Magic and checksum exist in
//! v1 only: those tests always speak v1 (v2's own faults, a bad tag, garbage without a
//! terminator, are in tests/v2_transport.rs).

mod common;

use std::time::Duration;

use bitcoin::p2p::message::NetworkMessage;
use common::*;

/// A daemon plus a healthy, handshaken peer.
fn setup() -> (Daemon, RawPeer) {
    let d = Daemon::start(&[]);
    let healthy = d.connect_ready();
    (d, healthy)
}

fn ping_payload(nonce: u64) -> Vec<u8> {
    nonce.to_le_bytes().to_vec()
}

/// After a dropped message, the offender's next good ping is answered, and nothing else came.
fn assert_kept(bad: &mut RawPeer, nonce: u64) {
    bad.send(&NetworkMessage::Ping(nonce));
    assert_eq!(bad.recv(), Some(NetworkMessage::Pong(nonce)), "peer not kept / message not dropped");
}

#[test]
fn wrong_magic_disconnects() {
    let (d, mut healthy) = setup();
    let mut bad = d.connect_ready_v1();
    healthy.ping_pong(1);
    bad.send_raw(&raw_frame(MAINNET_MAGIC, b"ping", &ping_payload(5), None));
    assert!(bad.is_closed(WAIT), "wrong magic did not disconnect");
    assert_eq!(bad.pending(), 0, "daemon answered a frame with the wrong magic");
    d.wait_log_all(&["disconnected peer=1", "wrong network magic f9"], WAIT);
    healthy.ping_pong(2);
}

#[test]
fn oversized_length_disconnects_after_the_header() {
    let (d, mut healthy) = setup();
    let mut bad = d.connect_ready();
    // Only the first 24 bytes: the v1 header, or the start of the v2 packet with its length
    // (a type without a short id: 1 + 12 + 4,000,001 bytes of contents, one over v2's limit).
    let wire = bad.encode_frames(&raw_frame(MAGIC, b"foo", &vec![0u8; 4_000_001], None));
    bad.send_raw(&wire[..24]);
    assert!(bad.is_closed(WAIT), "declared length 4,000,001 did not disconnect");
    let reason = match bad.transport() {
        Transport::V1 => "oversized message: foo declares 4000001 bytes",
        Transport::V2 => "v2 packet of 4000014 bytes exceeds the limit of 4000013 bytes",
    };
    d.wait_log_all(&["disconnected peer=1", reason], WAIT);
    healthy.ping_pong(3);
}

#[test]
fn maximum_length_is_allowed() {
    let (d, mut healthy) = setup();
    let mut bad = d.connect_ready();
    // 4,000,000 bytes is the limit itself (over v2 1 + 12 + 4,000,000 bytes of contents): the
    // daemon waits for the payload. Its header or length and 1,000 more bytes are sent.
    let wire = bad.encode_frames(&raw_frame(MAGIC, b"foo", &vec![0u8; 4_000_000], None));
    bad.send_raw(&wire[..24]);
    bad.send_raw(&wire[24..1024]);
    assert!(!bad.is_closed(Duration::from_millis(500)), "declared length 4,000,000 disconnected");
    healthy.ping_pong(4);
    assert_eq!(d.log_count("disconnected peer="), 0, "{}", d.log());
}

#[test]
fn bad_checksum_drops_only_the_message() {
    let (d, mut healthy) = setup();
    let mut bad = d.connect_ready_v1();
    let mut f = raw_frame(MAGIC, b"ping", &ping_payload(10), None);
    f[20] ^= 0xff;
    bad.send_raw(&f);
    assert_kept(&mut bad, 11);
    d.wait_log("Header error: Wrong checksum (ping, 8 bytes), peer=1", WAIT);
    healthy.ping_pong(5);
}

#[test]
fn nul_then_non_nul_type_drops_only_the_message() {
    let (d, mut healthy) = setup();
    let mut bad = d.connect_ready();
    bad.send_frames(&raw_frame(MAGIC, b"ping\0x", &ping_payload(20), None));
    assert_kept(&mut bad, 21);
    d.wait_log("Header error: Invalid message type (ping, 8 bytes), peer=1", WAIT);
    healthy.ping_pong(6);
}

#[test]
fn non_printable_type_drops_only_the_message() {
    let (d, mut healthy) = setup();
    let mut bad = d.connect_ready();
    bad.send_frames(&raw_frame(MAGIC, b"pi\x01ng", &ping_payload(30), None));
    bad.send_frames(&raw_frame(MAGIC, b"ping\x7f", &ping_payload(31), None));
    assert_kept(&mut bad, 32);
    d.wait_log_count("Header error: Invalid message type", 2, WAIT);
    healthy.ping_pong(7);
}

#[test]
fn unknown_type_is_ignored() {
    let (d, mut healthy) = setup();
    let mut bad = d.connect_ready();
    bad.send_frames(&raw_frame(MAGIC, b"foobar", &[1, 2, 3], None));
    bad.send_frames(&raw_frame(MAGIC, b"pingpong", &ping_payload(40), None));
    assert_kept(&mut bad, 41);
    d.wait_log("received: foobar (3 bytes) peer=1", WAIT);
    healthy.ping_pong(8);
}

#[test]
fn undecodable_payload_drops_only_the_message() {
    let (d, mut healthy) = setup();
    let mut bad = d.connect_ready();
    bad.send_frames(&raw_frame(MAGIC, b"ping", &[1, 2, 3], None));
    assert_kept(&mut bad, 51);
    d.wait_log("ProcessMessages(ping, 3 bytes): Exception", WAIT);
    healthy.ping_pong(9);
}

#[test]
fn trailing_payload_bytes_are_ignored() {
    let (d, _healthy) = setup();
    let mut p = d.connect_ready();
    let mut payload = ping_payload(60);
    payload.extend_from_slice(&[9, 9, 9]);
    p.send_frames(&raw_frame(MAGIC, b"ping", &payload, None));
    assert_eq!(p.recv(), Some(NetworkMessage::Pong(60)));
}

#[test]
fn frames_split_across_writes_and_batched_are_decoded() {
    let (d, mut healthy) = setup();
    let mut p = d.connect_ready();
    // One byte at a time.
    for b in p.encode(&NetworkMessage::Ping(70)) {
        p.send_raw(&[b]);
    }
    assert_eq!(p.recv(), Some(NetworkMessage::Pong(70)));
    // Many frames in one write.
    let batch: Vec<u8> = (71..171).flat_map(|n| frame(&NetworkMessage::Ping(n))).collect();
    p.send_frames(&batch);
    for n in 71..171 {
        assert_eq!(p.recv(), Some(NetworkMessage::Pong(n)));
    }
    healthy.ping_pong(10);
    assert_eq!(d.log_count("disconnected peer="), 0);
}

#[test]
fn all_faults_in_sequence_while_another_peer_is_served() {
    let (d, mut healthy) = setup();
    let mut bad = d.connect_ready();
    let mut nonce = 1000;
    let mut faults: Vec<Vec<u8>> = Vec::new();
    if bad.transport() == Transport::V1 {
        // A v2 frame has no checksum (its packet's tag covers it).
        let mut f = raw_frame(MAGIC, b"ping", &ping_payload(1), None);
        f[23] ^= 1;
        faults.push(f);
    }
    faults.push(raw_frame(MAGIC, b"ping\0\0\0\0\0\0\0z", &ping_payload(2), None));
    faults.push(raw_frame(MAGIC, b"\x80ping", &ping_payload(3), None));
    faults.push(raw_frame(MAGIC, b"nosuchthing", &[], None));
    faults.push(raw_frame(MAGIC, b"ping", &[0], None));
    faults.push(raw_frame(MAGIC, b"version", &[1, 2], None));
    for fault in &faults {
        bad.send_frames(fault);
        nonce += 1;
        healthy.ping_pong(nonce);
        nonce += 1;
        assert_kept(&mut bad, nonce);
    }
    // Finally a fatal one: a wrong magic over v1, a packet that does not authenticate over v2.
    match bad.transport() {
        Transport::V1 => bad.send_raw(&raw_frame([0, 0, 0, 0], b"ping", &ping_payload(4), None)),
        Transport::V2 => {
            let mut packet = bad.encode(&NetworkMessage::Ping(4));
            packet[10] ^= 1;
            bad.send_raw(&packet);
        }
    }
    assert!(bad.is_closed(WAIT));
    healthy.ping_pong(nonce + 1);
    assert_eq!(d.log_count("disconnected peer="), 1, "{}", tail(&d.log(), 30));
}
