//! The peer manager driven with fake time and a recording wire: one close path, discouragement
//! reaching every connection from the address, address relay among peers, the planner's dials,
//! inbound eviction and anchors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::base::netaddr::net_kind;
use crate::base::peer::Permissions;
use crate::engine::addrman::from_ip;
use crate::engine::policy::eviction::GroupKey;
use crate::engine::policy::outbound::Setup;
use crate::engine::protocol::test_support::{peer_version, test_protocol};

const UNIX0: i64 = 1_700_000_000;

#[derive(Default)]
pub(super) struct Wrote(pub(super) Vec<NetworkMessage>);

impl Wire for Wrote {
    fn send(&mut self, msg: &NetworkMessage) {
        self.0.push(msg.clone());
    }
    fn send_headers<'h>(&mut self, headers: impl ExactSizeIterator<Item = &'h bitcoin::block::Header>) {
        self.0.push(NetworkMessage::Headers(headers.copied().collect()));
    }
}

impl Wrote {
    pub(super) fn commands(&self) -> Vec<&'static str> {
        self.0.iter().map(|m| m.cmd()).collect()
    }
}

pub(super) fn at(t0: Instant, secs: u64) -> Now {
    Now { mono: t0 + Duration::from_secs(secs), unix: UNIX0 + secs as i64 }
}

/// A manager over an empty regtest chain; `planner`: automatic connections on, with `book`.
pub(super) fn manager(t0: Instant, automatic: bool, book: &[&str]) -> PeerManager {
    let mut proto = test_protocol(ServiceFlags::NETWORK | ServiceFlags::WITNESS, 3);
    for a in book {
        let sa: SocketAddr = a.parse().unwrap();
        let e = AddrEntry::from_socket(sa, ServiceFlags::NETWORK | ServiceFlags::WITNESS, UNIX0 - 3600);
        proto.addrman_mut().add(&[e], &from_ip(sa.ip()), 0, UNIX0);
    }
    let setup = Setup {
        enabled: automatic,
        reachable: vec![crate::engine::addrman::AddrNetwork::Ipv4],
        max_connections: 125,
        ..Setup::default()
    };
    let mut rng = StdRng::seed_from_u64(5);
    let planner = OutboundPlanner::new(setup, Vec::new(), t0, book.is_empty(), &mut rng);
    PeerManager::new(proto, planner, ConnSetup::default(), rng, t0)
}

pub(super) fn who(id: PeerId, addr: &str, conn_type: ConnectionType, t: Instant) -> Arc<PeerIdentity> {
    let addr: SocketAddr = addr.parse().unwrap();
    Arc::new(PeerIdentity {
        id,
        addr,
        name: None,
        local_addr: None,
        conn_type,
        permissions: Permissions::NONE,
        connected_at: t,
        net: net_kind(addr.ip()),
        keyed_group: GroupKey::new(1, 2).keyed_group(addr.ip()),
    })
}

pub(super) fn version(nonce: u64) -> NetworkMessage {
    peer_version(nonce, UNIX0, "/peer/")
}

fn deliver(m: &mut PeerManager, id: PeerId, msg: NetworkMessage, now: Now) -> Wrote {
    let mut w = Wrote::default();
    let (command, payload) = crate::base::message::encode_payload(&msg);
    let done = m.on_message(id, command, &payload, now.mono, now, LinkTimes::default(), &mut w);
    assert!(done.undecodable.is_none(), "{command} decodes");
    w
}

/// Connects peer `id` from `addr` and completes its handshake.
fn handshaken(m: &mut PeerManager, id: PeerId, addr: &str, conn_type: ConnectionType, t0: Instant) {
    m.connected(who(id, addr, conn_type, t0));
    m.send_messages(id, at(t0, 0), LinkTimes::default(), &mut Wrote::default());
    deliver(m, id, version(100 + id), at(t0, 0));
    deliver(m, id, NetworkMessage::Verack, at(t0, 0));
    assert!(m.peer(id).unwrap().handshake.successfully_connected);
}

fn actions(m: &mut PeerManager) -> Vec<Action> {
    let mut v = Vec::new();
    m.take_actions(&mut v);
    v
}

fn addrs(first: u8, n: u32, time: i64) -> NetworkMessage {
    NetworkMessage::Addr(
        (0..n)
            .map(|i| {
                let sa = SocketAddr::from(([first, (i >> 8) as u8, i as u8, 1], 8333));
                (time as u32, Address::new(&sa, ServiceFlags::NETWORK | ServiceFlags::WITNESS))
            })
            .collect(),
    )
}

#[test]
fn a_protocol_disconnect_is_one_action_and_the_peer_goes_quiet() {
    let t0 = Instant::now();
    let mut m = manager(t0, false, &[]);
    handshaken(&mut m, 1, "203.0.113.9:5000", ConnectionType::Inbound, t0);
    actions(&mut m);
    // Oversized addr: Core's Misbehaving.
    let w = deliver(&mut m, 1, addrs(12, 1001, UNIX0), at(t0, 1));
    assert!(w.0.is_empty(), "nothing is written to a peer being disconnected: {:?}", w.commands());
    let got = actions(&mut m);
    assert!(
        matches!(&got[..], [Action::Discourage(_), Action::Disconnect { id: 1, reason: DisconnectReason::Misbehaving(r) }] if r == "addr message size = 1001"),
        "{got:?}"
    );
    assert!(m.is_closing(1));
    // A closing peer is not processed and not served.
    let w = deliver(&mut m, 1, NetworkMessage::Ping(7), at(t0, 2));
    assert!(w.0.is_empty());
    assert!(m.send_messages(1, at(t0, 3), LinkTimes::default(), &mut Wrote::default()).is_none());
    assert!(!m.close(1, DisconnectReason::Requested), "closing twice does nothing");
    assert!(actions(&mut m).is_empty());
    // The driver reports the close: the peer is forgotten.
    let closed = m.closed(1, &DisconnectReason::PeerClosed, at(t0, 4)).expect("known peer");
    assert_eq!(closed.who.id, 1);
    assert!(m.peer(1).is_none() && m.is_empty());
}

#[test]
fn a_discouraged_address_loses_every_connection() {
    let t0 = Instant::now();
    let mut m = manager(t0, false, &[]);
    handshaken(&mut m, 1, "203.0.113.9:5000", ConnectionType::Inbound, t0);
    handshaken(&mut m, 2, "203.0.113.9:5001", ConnectionType::Inbound, t0);
    handshaken(&mut m, 3, "198.51.100.7:5000", ConnectionType::Inbound, t0);
    actions(&mut m);
    deliver(&mut m, 1, addrs(12, 1001, UNIX0), at(t0, 1));
    let got = actions(&mut m);
    let closed: Vec<PeerId> = got
        .iter()
        .filter_map(|a| match a {
            Action::Disconnect { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert!(got.contains(&Action::Discourage("203.0.113.9".parse().unwrap())), "{got:?}");
    assert_eq!(closed.len(), 2, "{got:?}");
    assert!(closed.contains(&1) && closed.contains(&2), "{got:?}");
    assert!(!m.is_closing(3), "another address keeps its connection");
}

#[test]
fn fresh_announcements_are_relayed_to_other_peers_never_back() {
    let t0 = Instant::now();
    let mut m = manager(t0, false, &[]);
    for (id, a) in [(1, "203.0.113.9:5000"), (2, "198.51.100.7:5000"), (3, "192.0.2.55:5000")] {
        handshaken(&mut m, id, a, ConnectionType::Inbound, t0);
        // Address relay starts with the peer's first addr message (Core's
        // `SetupAddressRelay`); an empty one is enough.
        deliver(&mut m, id, NetworkMessage::Addr(Vec::new()), at(t0, 0));
    }
    let now = at(t0, 20_000);
    deliver(&mut m, 1, addrs(14, 1, now.unix), now);
    let queued: Vec<PeerId> = m.peers().filter(|p| !p.addrs.to_send.is_empty()).map(|p| p.who.id).collect();
    assert_eq!(queued.len(), 2, "a reachable address goes to two peers: {queued:?}");
    assert!(!queued.contains(&1), "never back to its source");
}

#[test]
fn planner_rounds_become_dial_actions() {
    let t0 = Instant::now();
    let mut m = manager(t0, true, &["8.8.8.8:8333", "9.9.9.9:8333", "1.1.1.1:8333"]);
    let refused = |_: IpAddr| false;
    let env = TickEnv { network_active: true, refused: &refused };
    m.tick(at(t0, 1), &env);
    let got = actions(&mut m);
    let [Action::Dial { addr, conn_type, .. }] = &got[..] else { panic!("one dial at a time: {got:?}") };
    assert!(matches!(conn_type, ConnectionType::OutboundFullRelay | ConnectionType::BlockRelayOnly), "{got:?}");
    // While the dial is in flight nothing else is dialed; once it fails, the next round dials.
    m.tick(at(t0, 2), &env);
    assert!(actions(&mut m).is_empty());
    m.dial_failed(*addr, *conn_type);
    m.tick(at(t0, 3), &env);
    assert!(matches!(&actions(&mut m)[..], [Action::Dial { .. }]));
    // Networking off: no dials.
    m.dial_failed(*addr, *conn_type);
    let off = TickEnv { network_active: false, refused: &refused };
    m.tick(at(t0, 4), &off);
    assert!(actions(&mut m).is_empty());
}

#[test]
fn inbound_eviction_picks_an_inbound_peer_and_prefers_a_discouraged_one() {
    let t0 = Instant::now();
    let mut m = manager(t0, false, &[]);
    handshaken(&mut m, 100, "8.8.8.8:8333", ConnectionType::OutboundFullRelay, t0);
    assert_eq!(m.inbound_to_evict(|_| false, t0), None, "no inbound peer, no victim");
    // Enough inbound peers from distinct groups that some are left after the protections.
    for i in 0..40u64 {
        handshaken(
            &mut m,
            i,
            &format!("{}.{}.0.1:5000", 20 + i, i),
            ConnectionType::Inbound,
            t0 + Duration::from_secs(i),
        );
    }
    let victim = m.inbound_to_evict(|_| false, t0).expect("someone is evictable");
    assert!(victim < 40, "an inbound peer: {victim}");
    // A discouraged address is preferred.
    let bad = m.inbound_to_evict(|ip| ip == "45.25.0.1".parse::<IpAddr>().unwrap(), t0);
    assert_eq!(bad, Some(25));
}

#[test]
fn block_relay_peers_closed_by_the_shutdown_are_kept_as_anchors() {
    let t0 = Instant::now();
    let mut m = manager(t0, false, &[]);
    handshaken(&mut m, 1, "8.8.8.8:8333", ConnectionType::BlockRelayOnly, t0);
    handshaken(&mut m, 2, "9.9.9.9:8333", ConnectionType::OutboundFullRelay, t0);
    m.closed(1, &DisconnectReason::Shutdown, at(t0, 5));
    m.closed(2, &DisconnectReason::Shutdown, at(t0, 5));
    let anchors = m.anchors(UNIX0);
    assert_eq!(anchors.len(), 1);
    assert_eq!(anchors[0].socket_addr(), Some("8.8.8.8:8333".parse().unwrap()));
    assert_eq!(anchors[0].services, ServiceFlags::NETWORK | ServiceFlags::WITNESS, "the services its version named");
}

#[test]
fn eviction_facts_come_from_the_handshake_and_pings() {
    let t0 = Instant::now();
    let mut m = manager(t0, false, &[]);
    m.connected(who(1, "203.0.113.9:5000", ConnectionType::Inbound, t0));
    assert_eq!(m.send_messages(1, at(t0, 0), LinkTimes::default(), &mut Wrote::default()), None, "not before verack");
    deliver(&mut m, 1, version(1), at(t0, 0));
    deliver(&mut m, 1, NetworkMessage::Verack, at(t0, 0));
    let f = m.send_messages(1, at(t0, 1), LinkTimes::default(), &mut Wrote::default()).expect("handshake done");
    assert!(f.relevant_services && f.relay_txs);
    assert_eq!(f.min_ping, None);
}

#[test]
fn an_undecodable_payload_is_reported_and_an_unhandled_type_is_never_decoded() {
    let t0 = Instant::now();
    let mut m = manager(t0, false, &[]);
    handshaken(&mut m, 1, "203.0.113.9:5000", ConnectionType::Inbound, t0);
    let link = LinkTimes::default();
    let done = m.on_message(1, "ping", &[1, 2], t0, at(t0, 1), link, &mut Wrote::default());
    assert!(done.undecodable.is_some(), "a two-byte ping does not decode");
    assert!(done.facts.is_some(), "the peer's SendMessages still ran");
    let done = m.on_message(1, "feefilter", &[0xff; 3], t0, at(t0, 1), link, &mut Wrote::default());
    assert!(done.undecodable.is_none(), "feefilter is not handled, so not decoded");
    assert!(!m.is_closing(1) && actions(&mut m).is_empty(), "neither punishes the peer");
}
