//! Handshake, ping and timeout logic driven with fake time and a recording Outbox.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_network::VersionMessage;

use super::*;
use crate::base::chainparams::Network;
use crate::base::peer::PeerIdentity;
use crate::base::peer::{ConnectionType, DisconnectReason};
use crate::engine::chain::params::ChainParams;

const TIMEOUT: Duration = Duration::from_secs(60);

fn proto() -> Protocol {
    let chain = Chain::in_memory(ChainParams::new(Network::Regtest), bitcoin::pow::Work::from_be_bytes([0; 32]));
    Protocol::seeded(
        ProtocolParams {
            user_agent: "/btcloop:test/".into(),
            services: ServiceFlags::NONE,
            peer_timeout: TIMEOUT,
            log_ips: false,
            blocks: false,
        },
        chain,
        7,
    )
}

fn addr() -> SocketAddr {
    "127.0.0.1:18444".parse().unwrap()
}

fn now(t0: Instant, secs: u64) -> Now {
    Now { mono: t0 + Duration::from_secs(secs), unix: 1_700_000_000 + secs as i64 }
}

fn their_version(version: i32, nonce: u64) -> NetworkMessage {
    let empty = Address { services: ServiceFlags::NONE, address: [0; 8], port: 0 };
    NetworkMessage::Version(VersionMessage {
        version: version as u32,
        services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
        timestamp: 1_700_000_005,
        receiver: empty.clone(),
        sender: empty,
        nonce,
        user_agent: "/Satoshi:28.0.0/".into(),
        start_height: 100,
        relay: true,
    })
}

/// An inbound peer through version + verack; returns the peer and what we sent.
fn handshaken(p: &mut Protocol, t0: Instant) -> (Peer, Recorder) {
    let mut peer = p.add_peer(PeerIdentity::new(1, addr(), ConnectionType::Inbound, t0));
    let mut out = Recorder::default();
    p.deliver(&mut peer, their_version(70016, 42), t0, now(t0, 0), &mut out);
    p.deliver(&mut peer, NetworkMessage::Verack, t0, now(t0, 0), &mut out);
    (peer, out)
}

#[test]
fn outbound_sends_version_first_and_once() {
    let mut p = proto();
    let t0 = Instant::now();
    let mut peer = p.add_peer(PeerIdentity::new(0, addr(), ConnectionType::Manual, t0));
    let mut out = Recorder::default();
    p.send_messages(&mut peer, now(t0, 0), LinkTimes::default(), &mut out);
    p.send_messages(&mut peer, now(t0, 1), LinkTimes::default(), &mut out);
    assert_eq!(out.commands(), ["version"]);
    let NetworkMessage::Version(v) = &out.sent[0] else { panic!() };
    assert_eq!(v.version, 70016);
    assert_eq!(v.services, ServiceFlags::NONE, "advertise only what we provide");
    assert_eq!(v.user_agent, "/btcloop:test/");
    assert_eq!(v.start_height, p.best_height());
    assert!(!v.relay);
    assert_eq!(v.nonce, peer.handshake.local_nonce);
    assert_ne!(v.nonce, 0);
    // Loopback is not routable: Core sends an empty address back.
    assert_eq!(v.receiver.address, [0; 8]);
}

#[test]
fn inbound_waits_for_their_version_then_answers_in_core_order() {
    let mut p = proto();
    let t0 = Instant::now();
    let mut peer = p.add_peer(PeerIdentity::new(1, addr(), ConnectionType::Inbound, t0));
    let mut out = Recorder::default();
    p.send_messages(&mut peer, now(t0, 0), LinkTimes::default(), &mut out);
    assert!(out.sent.is_empty(), "nothing before the peer's version");
    p.deliver(&mut peer, their_version(70016, 42), t0, now(t0, 0), &mut out);
    assert_eq!(out.commands(), ["version", "wtxidrelay", "sendaddrv2", "verack"]);
    let remote = peer.handshake.remote.as_ref().unwrap();
    assert_eq!((remote.version, remote.start_height, remote.time_offset), (70016, 100, 5));
    assert_eq!(peer.handshake.user_agent(), "/Satoshi:28.0.0/");
    out.clear();
    p.deliver(&mut peer, NetworkMessage::Verack, t0, now(t0, 0), &mut out);
    assert_eq!(out.commands(), ["sendheaders"]);
    assert!(peer.handshake.successfully_connected);
    out.clear();
    p.send_messages(&mut peer, now(t0, 0), LinkTimes::default(), &mut out);
    assert_eq!(out.commands(), ["ping", "getheaders"], "first ping right after the handshake, then headers sync");
}

#[test]
fn old_peers_get_no_bip_feature_messages() {
    let mut p = proto();
    let t0 = Instant::now();
    let mut peer = p.add_peer(PeerIdentity::new(1, addr(), ConnectionType::Inbound, t0));
    let mut out = Recorder::default();
    p.deliver(&mut peer, their_version(70001, 42), t0, now(t0, 0), &mut out);
    assert_eq!(out.commands(), ["version", "verack"]);
    out.clear();
    p.deliver(&mut peer, NetworkMessage::Verack, t0, now(t0, 0), &mut out);
    assert!(out.sent.is_empty(), "no sendheaders below 70012");
}

#[test]
fn obsolete_and_negative_versions_disconnect() {
    for v in [31799, 0, -1] {
        let mut p = proto();
        let t0 = Instant::now();
        let mut peer = p.add_peer(PeerIdentity::new(1, addr(), ConnectionType::Inbound, t0));
        let mut out = Recorder::default();
        p.deliver(&mut peer, their_version(v, 42), t0, now(t0, 0), &mut out);
        assert_eq!(out.disconnect, Some(DisconnectReason::ObsoleteVersion(v)));
        assert!(out.sent.is_empty());
    }
    let mut p = proto();
    let t0 = Instant::now();
    let mut peer = p.add_peer(PeerIdentity::new(1, addr(), ConnectionType::Inbound, t0));
    let mut out = Recorder::default();
    p.deliver(&mut peer, their_version(31800, 42), t0, now(t0, 0), &mut out);
    assert_eq!(out.disconnect, None);
}

#[test]
fn self_connection_detected_by_nonce() {
    let mut p = proto();
    let t0 = Instant::now();
    let outbound = p.add_peer(PeerIdentity::new(0, addr(), ConnectionType::Manual, t0));
    let mut inbound = p.add_peer(PeerIdentity::new(1, addr(), ConnectionType::Inbound, t0));
    let mut out = Recorder::default();
    p.deliver(&mut inbound, their_version(70016, outbound.handshake.local_nonce), t0, now(t0, 0), &mut out);
    assert_eq!(out.disconnect, Some(DisconnectReason::SelfConnection));
    // Once the outbound connection is gone its nonce no longer matches.
    p.remove_peer(&outbound, 0);
    let mut inbound = p.add_peer(PeerIdentity::new(2, addr(), ConnectionType::Inbound, t0));
    let mut out = Recorder::default();
    p.deliver(&mut inbound, their_version(70016, outbound.handshake.local_nonce), t0, now(t0, 0), &mut out);
    assert_eq!(out.disconnect, None);
}

#[test]
fn messages_before_version_and_duplicate_version_ignored() {
    let mut p = proto();
    let t0 = Instant::now();
    let mut peer = p.add_peer(PeerIdentity::new(1, addr(), ConnectionType::Inbound, t0));
    let mut out = Recorder::default();
    p.deliver(&mut peer, NetworkMessage::Ping(5), t0, now(t0, 0), &mut out);
    p.deliver(&mut peer, NetworkMessage::Verack, t0, now(t0, 0), &mut out);
    assert!(out.sent.is_empty() && out.disconnect.is_none());
    assert!(!peer.handshake.successfully_connected);
    p.deliver(&mut peer, their_version(70016, 42), t0, now(t0, 0), &mut out);
    out.clear();
    p.deliver(&mut peer, their_version(70016, 43), t0, now(t0, 0), &mut out);
    assert!(out.sent.is_empty() && out.disconnect.is_none(), "duplicate version ignored");
    // Between version and verack, ping is not answered (Core: "prior to verack").
    p.deliver(&mut peer, NetworkMessage::Ping(5), t0, now(t0, 0), &mut out);
    assert!(out.sent.is_empty());
}

#[test]
fn feature_negotiation_only_before_verack() {
    let mut p = proto();
    let t0 = Instant::now();
    let mut peer = p.add_peer(PeerIdentity::new(1, addr(), ConnectionType::Inbound, t0));
    let mut out = Recorder::default();
    p.deliver(&mut peer, their_version(70016, 42), t0, now(t0, 0), &mut out);
    p.deliver(&mut peer, NetworkMessage::WtxidRelay, t0, now(t0, 0), &mut out);
    p.deliver(&mut peer, NetworkMessage::SendAddrV2, t0, now(t0, 0), &mut out);
    p.deliver(&mut peer, NetworkMessage::SendHeaders, t0, now(t0, 0), &mut out);
    assert!(peer.handshake.wtxid_relay && peer.handshake.wants_addrv2 && peer.handshake.prefers_headers);
    p.deliver(&mut peer, NetworkMessage::Verack, t0, now(t0, 0), &mut out);
    assert!(out.disconnect.is_none());

    let (mut peer, _) = handshaken(&mut p, t0);
    let mut out = Recorder::default();
    p.deliver(&mut peer, NetworkMessage::WtxidRelay, t0, now(t0, 0), &mut out);
    assert_eq!(out.disconnect, Some(DisconnectReason::AfterVerack("wtxidrelay")));
    let (mut peer, _) = handshaken(&mut p, t0);
    let mut out = Recorder::default();
    p.deliver(&mut peer, NetworkMessage::SendAddrV2, t0, now(t0, 0), &mut out);
    assert_eq!(out.disconnect, Some(DisconnectReason::AfterVerack("sendaddrv2")));
}

#[test]
fn answers_pings_with_same_nonce() {
    let mut p = proto();
    let t0 = Instant::now();
    let (mut peer, _) = handshaken(&mut p, t0);
    let mut out = Recorder::default();
    p.deliver(&mut peer, NetworkMessage::Ping(0xdead), t0, now(t0, 0), &mut out);
    assert_eq!(out.sent, vec![NetworkMessage::Pong(0xdead)]);
}

fn outstanding_ping(p: &mut Protocol, peer: &mut Peer, at: Now) -> u64 {
    let mut out = Recorder::default();
    p.send_messages(peer, at, LinkTimes { last_send: Some(at.mono), last_recv: Some(at.mono) }, &mut out);
    let pings: Vec<u64> =
        out.sent.iter().filter_map(|m| if let NetworkMessage::Ping(n) = m { Some(*n) } else { None }).collect();
    match pings.as_slice() {
        [n] => *n,
        other => panic!("expected one ping, got {other:?}"),
    }
}

#[test]
fn pong_rules_match_core() {
    let mut p = proto();
    let t0 = Instant::now();
    let (mut peer, _) = handshaken(&mut p, t0);
    let nonce = outstanding_ping(&mut p, &mut peer, now(t0, 0));
    assert_ne!(nonce, 0);
    // Wrong nonce: the ping stays outstanding.
    ping::on_pong(&mut peer, nonce ^ 1, t0 + Duration::from_millis(5));
    assert_eq!(peer.ping.nonce_sent, nonce);
    assert_eq!(peer.ping.last_ping, None);
    // Matching nonce: RTT recorded from the receive time.
    ping::on_pong(&mut peer, nonce, t0 + Duration::from_millis(30));
    assert_eq!(peer.ping.nonce_sent, 0);
    assert_eq!(peer.ping.last_ping, Some(Duration::from_millis(30)));
    assert_eq!(peer.ping.min_ping, Some(Duration::from_millis(30)));
    // Next ping only after 2 minutes; min keeps the smallest.
    let mut out = Recorder::default();
    p.send_messages(&mut peer, now(t0, 119), LinkTimes { last_send: Some(t0), last_recv: Some(t0) }, &mut out);
    assert!(!out.commands().contains(&"ping"), "no ping before PING_INTERVAL");
    let n2 = outstanding_ping(&mut p, &mut peer, now(t0, 121));
    ping::on_pong(&mut peer, n2, t0 + Duration::from_secs(121) + Duration::from_millis(50));
    assert_eq!(peer.ping.last_ping, Some(Duration::from_millis(50)));
    assert_eq!(peer.ping.min_ping, Some(Duration::from_millis(30)));
    // Zero nonce cancels (so does a short pong, which decodes as nonce 0).
    let n3 = outstanding_ping(&mut p, &mut peer, now(t0, 242));
    assert_ne!(n3, 0);
    ping::on_pong(&mut peer, 0, t0 + Duration::from_secs(243));
    assert_eq!(peer.ping.nonce_sent, 0);
    assert_eq!(peer.ping.last_ping, Some(Duration::from_millis(50)), "cancelled ping records no time");
}

#[test]
fn queued_ping_goes_out_at_once() {
    let mut p = proto();
    let t0 = Instant::now();
    let (mut peer, _) = handshaken(&mut p, t0);
    let n = outstanding_ping(&mut p, &mut peer, now(t0, 0));
    ping::on_pong(&mut peer, n, t0);
    Protocol::queue_ping(&mut peer);
    outstanding_ping(&mut p, &mut peer, now(t0, 1));
}

#[test]
fn unanswered_ping_times_out_after_20_minutes() {
    let mut p = proto();
    let t0 = Instant::now();
    let (mut peer, _) = handshaken(&mut p, t0);
    outstanding_ping(&mut p, &mut peer, now(t0, 0));
    let fresh =
        |s| LinkTimes { last_send: Some(t0 + Duration::from_secs(s)), last_recv: Some(t0 + Duration::from_secs(s)) };
    let mut out = Recorder::default();
    p.send_messages(&mut peer, now(t0, 20 * 60), fresh(20 * 60), &mut out);
    assert_eq!(out.disconnect, None, "exactly 20 minutes is not yet over");
    assert!(!out.commands().contains(&"ping"), "no new ping while one is outstanding");
    p.send_messages(&mut peer, now(t0, 20 * 60 + 1), fresh(20 * 60), &mut out);
    assert_eq!(out.disconnect, Some(DisconnectReason::PingTimeout(20 * 60 + 1)));
}

#[test]
fn inactivity_rules_match_core() {
    let t0 = Instant::now();
    let mut p = proto();
    let peer = p.add_peer(PeerIdentity::new(1, addr(), ConnectionType::Inbound, t0));
    let at = |s: u64| t0 + Duration::from_secs(s);
    let link = |send: Option<u64>, recv: Option<u64>| LinkTimes { last_send: send.map(at), last_recv: recv.map(at) };
    // Within the grace period nothing is checked.
    assert_eq!(timeouts::inactivity(&peer, at(60), link(None, None), TIMEOUT), None);
    assert_eq!(
        timeouts::inactivity(&peer, at(61), link(None, None), TIMEOUT),
        Some(DisconnectReason::NoFirstMessage { received: false, sent: false })
    );
    assert_eq!(
        timeouts::inactivity(&peer, at(61), link(None, Some(1)), TIMEOUT),
        Some(DisconnectReason::NoFirstMessage { received: true, sent: false })
    );
    assert_eq!(
        timeouts::inactivity(&peer, at(61), link(Some(1), Some(1)), TIMEOUT),
        Some(DisconnectReason::HandshakeTimeout)
    );
    let (done, _) = handshaken(&mut p, t0);
    assert_eq!(timeouts::inactivity(&done, at(61), link(Some(1), Some(1)), TIMEOUT), None);
    assert_eq!(
        timeouts::inactivity(&done, at(1202), link(Some(1), Some(1200)), TIMEOUT),
        Some(DisconnectReason::SendTimeout(1201))
    );
    assert_eq!(
        timeouts::inactivity(&done, at(1202), link(Some(1200), Some(1)), TIMEOUT),
        Some(DisconnectReason::RecvTimeout(1201))
    );
}

#[test]
fn handshake_timeout_disconnects_through_send_messages() {
    let mut p = proto();
    let t0 = Instant::now();
    let mut peer = p.add_peer(PeerIdentity::new(1, addr(), ConnectionType::Inbound, t0));
    let mut out = Recorder::default();
    p.deliver(&mut peer, their_version(70016, 42), t0, now(t0, 0), &mut out);
    out.clear();
    let link = LinkTimes { last_send: Some(t0), last_recv: Some(t0) };
    p.send_messages(&mut peer, now(t0, 61), link, &mut out);
    assert_eq!(out.disconnect, Some(DisconnectReason::HandshakeTimeout));
}

/// A `--peertimeout` too long to add to the connect time (it used to overflow `Instant +
/// Duration`, a panic) means the grace period never ends: no inactivity check, no ping timeout.
#[test]
fn peer_timeout_too_long_to_add_never_ends() {
    let mut p = proto();
    p.params.peer_timeout = Duration::from_secs(i64::MAX as u64);
    let t0 = Instant::now();
    let (mut peer, _) = handshaken(&mut p, t0);
    let later = now(t0, 100_000);
    assert!(!timeouts::checks_run(&peer, later.mono, p.params.peer_timeout));
    assert_eq!(timeouts::inactivity(&peer, later.mono, LinkTimes::default(), p.params.peer_timeout), None);
    outstanding_ping(&mut p, &mut peer, now(t0, 0));
    let mut out = Recorder::default();
    p.send_messages(&mut peer, later, LinkTimes::default(), &mut out);
    assert_eq!(out.disconnect, None);
    assert!(timeouts::checks_run(&peer, later.mono, Duration::from_secs(99_999)));
}

/// `Protocol::new` keeps the parts it is given: the `--maxtipage` decides `in_ibd` from the
/// start (nothing sets it afterwards), and the address book is the one handed in.
#[test]
fn built_from_its_parts() {
    let params = ChainParams::new(Network::Regtest);
    let genesis_time = i64::from(params.genesis.time);
    let at = |unix| Now { mono: Instant::now(), unix };
    let settings = || ProtocolParams {
        user_agent: "/btcloop:test/".into(),
        services: ServiceFlags::NONE,
        peer_timeout: TIMEOUT,
        log_ips: false,
        blocks: false,
    };
    let chain = || Chain::in_memory(params.clone(), bitcoin::pow::Work::from_be_bytes([0; 32]));
    let age = 1_000;
    for (max_tip_age, ibd) in [(age - 1, true), (age, false)] {
        let mut parts = ProtocolParts::seeded(settings(), chain(), 7);
        parts.max_tip_age = max_tip_age;
        let mut p = Protocol::new(parts);
        assert_eq!(p.in_ibd(at(genesis_time + age)), ibd, "max tip age {max_tip_age}");
    }
    let mut book = AddrMan::new([3; 32], 4, NetGroupRule::Core);
    let e = crate::engine::addrman::AddrEntry::from_socket("8.8.8.8:8333".parse().unwrap(), ServiceFlags::NETWORK, 0);
    book.add(&[e], &crate::engine::addrman::from_ip("8.8.4.4".parse().unwrap()), 0, 0);
    let p = Protocol::new(ProtocolParts::seeded_with_book(settings(), chain(), 7, book));
    assert_eq!(p.addrman().size(None, None), 1, "the book handed in");
    // A seed gives the same randomness with or without a book of its own.
    let plain = Protocol::seeded(settings(), chain(), 7);
    assert_eq!(p.relay_key(), plain.relay_key());
    assert_ne!(plain.relay_key(), Protocol::seeded(settings(), chain(), 8).relay_key());
}
