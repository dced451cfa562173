//! The version handshake between real processes and with a scripted peer: who sends what, in
//! which order, with which fields.

mod common;

use std::net::TcpListener;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_network::VersionMessage;
use common::*;

fn assert_our_version(v: &VersionMessage, user_agent: &str, v2: bool) {
    assert_eq!(v.version, 70016);
    let services = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
    let services = if v2 { services | ServiceFlags::P2P_V2 } else { services };
    assert_eq!(v.services, services, "a full node's services (P2P_V2 with --v2transport)");
    assert_eq!(v.user_agent, user_agent);
    assert!(!v.relay, "relay must be false (no mempool)");
    assert_eq!(v.start_height, 0);
    assert_ne!(v.nonce, 0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((v.timestamp - now).abs() < 3600, "timestamp {} far from now {now}", v.timestamp);
    // Loopback is not routable: the receiver address is left empty, as Core does.
    assert_eq!(v.receiver.address, [0; 8]);
    assert_eq!(v.receiver.port, 0);
}

#[test]
fn two_daemons_connect_with_connect_flag() {
    let a = Daemon::start(&[]);
    let a_port = a.port;
    let b = Daemon::start_with(true, |_| vec![format!("--connect=127.0.0.1:{a_port}")]);
    let ua = daemon_user_agent(None);
    a.wait_log_all(
        &["New inbound peer connected", "transport: v2", "version: 70016", &format!("user agent: {ua}")],
        WAIT,
    );
    b.wait_log_all(
        &["New manual peer connected", "transport: v2", "version: 70016", &format!("user agent: {ua}")],
        WAIT,
    );
    // And the connection stays up (no disconnect line on either side).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.log_count("disconnected peer="), 0, "{}", a.log());
    assert_eq!(b.log_count("disconnected peer="), 0, "{}", b.log());
}

#[test]
fn earlier_daemon_dials_later_one_with_addnode() {
    // C starts first and keeps redialing D's (not yet bound) port; once D is up, C gets in.
    let d_port = free_port();
    let c = Daemon::start(&[&format!("--addnode=127.0.0.1:{d_port}"), "--uacomment=c"]);
    let d = Daemon::start_on_port(d_port, &["--uacomment=d"]);
    d.wait_log_all(
        &["New inbound peer connected", &format!("user agent: {}", daemon_user_agent(Some("c")))],
        Duration::from_secs(20),
    );
    c.wait_log_all(
        &["New manual peer connected", &format!("user agent: {}", daemon_user_agent(Some("d")))],
        Duration::from_secs(20),
    );
}

#[test]
fn inbound_message_order_and_version_fields() {
    let d = Daemon::start(&[]);
    let mut p = d.connect();
    // An inbound node speaks only after the peer's version.
    std::thread::sleep(Duration::from_millis(300));
    p.assert_silent(Duration::from_millis(1));
    assert_eq!(p.bytes_received, 0, "daemon sent bytes before our version");

    p.send(&NetworkMessage::Version(version_msg(70016, "/rawpeer:1.0/", random_u64())));
    let NetworkMessage::Version(v) = p.expect("version") else { unreachable!() };
    assert_our_version(&v, &daemon_user_agent(None), true);
    p.expect("wtxidrelay");
    p.expect("sendaddrv2");
    p.expect("verack");
    // Nothing more until our verack.
    p.assert_silent(Duration::from_millis(300));

    p.send(&NetworkMessage::Verack);
    p.expect("sendheaders");
    p.expect("sendcmpct");
    let NetworkMessage::Ping(nonce) = p.expect("ping") else { unreachable!() };
    assert_ne!(nonce, 0);
    // The node speaks the transport the scripted peer chose (BTCLOOP_TEST_TRANSPORT).
    let transport = format!("transport: {}", p.transport().name());
    d.wait_log_all(&["New inbound peer connected", "version: 70016", "user agent: /rawpeer:1.0/", &transport], WAIT);
}

#[test]
fn uacomment_is_in_the_user_agent() {
    let d = Daemon::start(&["--uacomment=x"]);
    let mut p = d.connect();
    let hs = p.handshake();
    assert_our_version(&hs.version, &daemon_user_agent(Some("x")), true);
    assert_eq!(hs.version.user_agent, format!("/btcloop:{}(x)/", env!("CARGO_PKG_VERSION")));
}

#[test]
fn outbound_connection_sends_version_first() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let raw_port = listener.local_addr().unwrap().port();
    // The scripted peer speaks v1 only.
    let d = Daemon::start_with(true, |_| vec!["--v2transport=0".into(), format!("--connect=127.0.0.1:{raw_port}")]);
    let stream = accept_within(&listener, WAIT);
    let mut p = RawPeer::from_stream(stream);

    // The dialer speaks first: version, and nothing else before ours.
    let NetworkMessage::Version(v) = p.expect("version") else { unreachable!() };
    assert_our_version(&v, &daemon_user_agent(None), false);
    p.assert_silent(Duration::from_millis(300));

    // Finish the handshake as the inbound side.
    p.send(&NetworkMessage::Version(version_msg(70016, "/rawlistener:1.0/", random_u64())));
    p.expect("wtxidrelay");
    p.expect("sendaddrv2");
    p.expect("verack");
    // Core's one-time address fetch from outbound peers, right after its verack.
    p.expect("getaddr");
    p.send(&NetworkMessage::Verack);
    p.expect("sendheaders");
    p.expect("sendcmpct");
    let NetworkMessage::Ping(n) = p.expect("ping") else { unreachable!() };
    p.send(&NetworkMessage::Pong(n));
    d.wait_log_all(&["New manual peer connected", "user agent: /rawlistener:1.0/"], WAIT);
    p.ping_pong(42);
}
