//! Handshake rules as Bitcoin Core enforces them: obsolete versions, messages out of order,
//! duplicates, handshake-only messages after verack, self-connections and BIP324 attempts.

mod common;

use std::time::Duration;

use bitcoin::p2p::message::NetworkMessage;
use common::*;

#[test]
fn obsolete_version_is_disconnected() {
    let d = Daemon::start(&[]);
    let mut p = d.connect();
    p.send(&NetworkMessage::Version(version_msg(31799, "/old:0.1/", random_u64())));
    assert!(p.is_closed(WAIT), "peer with version 31799 not disconnected");
    // Core disconnects before pushing its own version (over v2 only the transport's handshake
    // came back).
    assert_eq!(p.message_bytes_received, 0, "daemon answered an obsolete version");
    d.wait_log("peer using obsolete version 31799", WAIT);
}

#[test]
fn minimum_version_is_accepted() {
    let d = Daemon::start(&[]);
    let mut p = d.connect();
    p.send(&NetworkMessage::Version(version_msg(31800, "/old:0.1/", random_u64())));
    // Below SENDHEADERS/WTXIDRELAY versions only version and verack come back.
    p.expect("version");
    p.expect("verack");
    p.send(&NetworkMessage::Verack);
    d.wait_log_all(&["New inbound peer connected", "version: 31800"], WAIT);
    // Pre-BIP31: our pings carry no nonce; no sendheaders.
    match p.recv() {
        Some(NetworkMessage::Unknown { command, payload }) => {
            assert_eq!(command.as_ref(), "ping");
            assert!(payload.is_empty(), "pre-BIP31 ping with payload {payload:?}");
        }
        other => panic!("expected an empty ping, got {other:?}"),
    }
    assert!(!p.is_closed(Duration::from_millis(300)));
}

#[test]
fn messages_before_version_are_ignored() {
    // Over v1 (with v2 on, bytes that do not start a v1 `version` open a v2 handshake).
    let d = Daemon::start(&["--v2transport=0"]);
    let mut p = d.connect_v1();
    p.send(&NetworkMessage::Ping(7));
    p.send(&NetworkMessage::Verack);
    p.send(&NetworkMessage::SendHeaders);
    p.assert_silent(Duration::from_millis(500));
    d.wait_log("non-version message before version handshake. Message \"ping\"", WAIT);
    // The connection stayed usable: the handshake still works.
    let hs = p.handshake();
    p.send(&NetworkMessage::Pong(hs.ping_nonce));
    p.ping_pong(8);
}

#[test]
fn duplicate_version_is_ignored() {
    let d = Daemon::start(&[]);
    let mut p = d.connect();
    let version = NetworkMessage::Version(version_msg(70016, "/rawpeer:1.0/", random_u64()));
    p.send(&version);
    p.expect("version");
    p.expect("wtxidrelay");
    p.expect("sendaddrv2");
    p.expect("verack");
    // A second version before verack: no second version/verack.
    p.send(&version);
    p.assert_silent(Duration::from_millis(300));
    p.send(&NetworkMessage::Verack);
    p.expect("sendheaders");
    p.expect("sendcmpct");
    let NetworkMessage::Ping(n) = p.expect("ping") else { unreachable!() };
    p.send(&NetworkMessage::Pong(n));
    // And one after verack: the next thing we get is the pong for our ping.
    p.send(&version);
    p.send(&NetworkMessage::Ping(99));
    assert_eq!(p.recv(), Some(NetworkMessage::Pong(99)));
    assert_eq!(d.log_count("redundant version message"), 2, "{}", tail(&d.log(), 20));
}

#[test]
fn wtxidrelay_after_verack_disconnects() {
    let d = Daemon::start(&[]);
    let mut p = d.connect();
    p.handshake();
    p.send(&NetworkMessage::WtxidRelay);
    assert!(p.is_closed(WAIT), "wtxidrelay after verack did not disconnect");
    d.wait_log_all(&["disconnected peer=", "wtxidrelay received after verack"], WAIT);
}

#[test]
fn sendaddrv2_after_verack_disconnects() {
    let d = Daemon::start(&[]);
    let mut p = d.connect();
    p.handshake();
    p.send(&NetworkMessage::SendAddrV2);
    assert!(p.is_closed(WAIT), "sendaddrv2 after verack did not disconnect");
    d.wait_log_all(&["disconnected peer=", "sendaddrv2 received after verack"], WAIT);
}

#[test]
fn wtxidrelay_and_sendaddrv2_before_verack_are_fine() {
    let d = Daemon::start(&[]);
    let mut p = d.connect();
    p.send(&NetworkMessage::Version(version_msg(70016, "/rawpeer:1.0/", random_u64())));
    p.send(&NetworkMessage::WtxidRelay);
    p.send(&NetworkMessage::SendAddrV2);
    p.expect("version");
    p.expect("wtxidrelay");
    p.expect("sendaddrv2");
    p.expect("verack");
    p.send(&NetworkMessage::Verack);
    p.expect("sendheaders");
    p.expect("sendcmpct");
    p.expect("ping");
    assert!(!p.is_closed(Duration::from_millis(300)));
}

#[test]
fn connecting_to_self_is_detected() {
    let d = Daemon::start_with(true, |port| vec!["--listen=1".into(), format!("--connect=127.0.0.1:{port}")]);
    d.wait_log("connected to self", WAIT);
    d.wait_log_all(&["disconnected peer=", "(inbound", "connected to self"], WAIT);
    assert_eq!(d.log_count("New inbound peer connected"), 0, "{}", d.log());
}

#[test]
fn ping_before_verack_gets_no_pong() {
    let d = Daemon::start(&[]);
    let mut p = d.connect();
    p.send(&NetworkMessage::Version(version_msg(70016, "/rawpeer:1.0/", random_u64())));
    p.expect("version");
    p.expect("wtxidrelay");
    p.expect("sendaddrv2");
    p.expect("verack");
    p.send(&NetworkMessage::Ping(1));
    p.assert_silent(Duration::from_millis(300));
    p.send(&NetworkMessage::Verack);
    p.expect("sendheaders");
    p.expect("sendcmpct");
    let NetworkMessage::Ping(n) = p.expect("ping") else { unreachable!() };
    p.send(&NetworkMessage::Pong(n));
    // The early ping was dropped, not deferred: the next pong answers ping 2.
    p.send(&NetworkMessage::Ping(2));
    assert_eq!(p.recv(), Some(NetworkMessage::Pong(2)));
    d.wait_log("Unsupported message \"ping\" prior to verack", WAIT);
}

#[test]
fn with_v2transport_off_a_bip324_attempt_is_dropped_without_a_reply() {
    let d = Daemon::start(&["--v2transport=0"]);
    let mut p = d.connect_v1();
    // A v2 initiator opens with a 64-byte ElligatorSwift key: random bytes. (First byte fixed
    // to differ from the regtest magic, as it does with overwhelming probability.)
    let mut key = [0u8; 64];
    for chunk in key.chunks_mut(8) {
        chunk.copy_from_slice(&random_u64().to_le_bytes());
    }
    key[0] = 0x5c;
    p.send_raw(&key);
    assert!(p.is_closed(WAIT), "v2 attempt not disconnected");
    assert_eq!(p.bytes_received, 0, "daemon sent bytes to a v2 initiator");
    assert_eq!(p.pending(), 0);
    d.wait_log_all(&["disconnected peer=", "wrong network magic"], WAIT);
}

#[test]
fn older_protocol_versions_get_fewer_messages() {
    let d = Daemon::start(&[]);
    // 70015: no wtxidrelay/sendaddrv2 (both need 70016), but sendheaders and sendcmpct (70014)
    // after verack.
    let mut p = d.connect();
    p.send(&NetworkMessage::Version(version_msg(70015, "/v70015:1.0/", random_u64())));
    p.expect("version");
    p.expect("verack");
    p.send(&NetworkMessage::Verack);
    p.expect("sendheaders");
    p.expect("sendcmpct");
    p.expect("ping");
    // 70011: no sendheaders (needs 70012) nor sendcmpct (70014) either.
    let mut q = d.connect();
    q.send(&NetworkMessage::Version(version_msg(70011, "/v70011:1.0/", random_u64())));
    q.expect("version");
    q.expect("verack");
    q.send(&NetworkMessage::Verack);
    q.expect("ping");
    // A 70015 peer's late wtxidrelay is still a handshake violation after verack.
    p.send(&NetworkMessage::WtxidRelay);
    assert!(p.is_closed(WAIT));
    q.ping_pong(5);
}

#[test]
fn redundant_verack_is_ignored() {
    let d = Daemon::start(&[]);
    let mut p = d.connect_ready();
    p.send(&NetworkMessage::Verack);
    p.send(&NetworkMessage::Ping(3));
    // No second sendheaders/ping: the pong comes next.
    assert_eq!(p.recv(), Some(NetworkMessage::Pong(3)));
    d.wait_log("ignoring redundant verack message from peer=0", WAIT);
    assert_eq!(d.log_count("New inbound peer connected"), 1);
}

#[test]
fn nothing_is_processed_after_a_disconnecting_message() {
    let d = Daemon::start(&[]);
    let mut p = d.connect_ready();
    let mut bytes = frame(&NetworkMessage::SendAddrV2);
    bytes.extend(frame(&NetworkMessage::Ping(77)));
    // Both in one write (over v2: two packets).
    p.send_frames(&bytes);
    assert!(p.is_closed(WAIT));
    while let Some(m) = p.recv_timeout(std::time::Duration::ZERO) {
        assert_ne!(m, NetworkMessage::Pong(77), "a message after the disconnecting one was processed");
    }
    d.wait_log("sendaddrv2 received after verack", WAIT);
    assert_eq!(d.log_count("received: ping (8 bytes) peer=0"), 0, "{}", tail(&d.log(), 20));
}

#[test]
fn too_long_user_agent_drops_the_version() {
    let d = Daemon::start(&[]);
    let mut p = d.connect();
    // Core reads the user agent with LIMITED_STRING(256): a longer one makes the version
    // unreadable, so it is dropped, and a good version afterwards is accepted.
    p.send(&NetworkMessage::Version(version_msg(70016, &"x".repeat(257), random_u64())));
    p.assert_silent(Duration::from_millis(300));
    d.wait_log("ProcessMessages(version", WAIT);
    let hs = p.handshake_as(&"y".repeat(256));
    assert_eq!(hs.version.version, 70016);
}

#[test]
fn obsolete_version_with_malformed_tail_is_disconnected() {
    // Core checks the version number right after the required fields (version, services,
    // time, addr_recv) and disconnects before it reads nonce, user agent, height or relay; a
    // broken tail does not save an obsolete peer.
    let d = Daemon::start(&[]);
    let mut p = d.connect();
    p.send(&NetworkMessage::Version(version_msg(31799, &"x".repeat(257), random_u64())));
    assert!(p.is_closed(Duration::from_secs(3)), "obsolete version with a 257-byte user agent was not disconnected");
    assert_eq!(p.message_bytes_received, 0);
}

#[test]
fn reply_queued_before_a_disconnecting_message_is_sent() {
    // Core processes ping(1) and PushMessage writes the pong to the socket right away; only the
    // next message (sendaddrv2 after verack) sets fDisconnect. So the peer gets pong(1), then EOF.
    let d = Daemon::start(&[]);
    let mut p = d.connect_ready();
    let mut bytes = frame(&NetworkMessage::Ping(1));
    bytes.extend(frame(&NetworkMessage::SendAddrV2));
    p.send_frames(&bytes);
    assert!(p.is_closed(WAIT));
    assert_eq!(p.recv_timeout(Duration::ZERO), Some(NetworkMessage::Pong(1)), "pong(1) was never sent");
}
