//! Property test of the peer manager: any sequence of connections, messages (well-formed,
//! misbehaving or undecodable), timer rounds, closes and failed dials keeps the manager's
//! promises — a peer is disconnected at most once and only while it is known, nothing is
//! written to a peer once it is being disconnected, a discouraged address loses every
//! connection, and inbound eviction only ever names an open inbound peer.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Instant;

use proptest::prelude::*;

use super::tests::{Wrote, at, manager, version, who};
use super::*;
use crate::base::message::encode_payload;

/// Addresses the generated peers connect from: two share an IP, so discouraging one address
/// must close two connections.
const ADDRS: [&str; 5] =
    ["203.0.113.9:5000", "203.0.113.9:5001", "198.51.100.7:5000", "8.8.8.8:8333", "127.0.0.1:18444"];

#[derive(Clone, Debug)]
enum Ev {
    /// A connection opens from `ADDRS[addr]`, of type `kind` (0 inbound, 1 full relay, 2 block
    /// relay, 3 manual, 4 feeler).
    Connect { addr: usize, kind: u8 },
    /// The `n`-th known peer sends message kind `msg`.
    Message { n: usize, msg: u8 },
    /// The `n`-th known peer's `SendMessages`.
    Send { n: usize },
    /// The manager's timers, `secs` later.
    Tick { secs: u64 },
    /// The driver reports the `n`-th known peer's connection closed.
    Closed { n: usize },
    /// An operator disconnects the `n`-th known peer.
    Close { n: usize },
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        2 => (0..ADDRS.len(), 0u8..5).prop_map(|(addr, kind)| Ev::Connect { addr, kind }),
        6 => (0usize..8, 0u8..9).prop_map(|(n, msg)| Ev::Message { n, msg }),
        1 => (0usize..8).prop_map(|n| Ev::Send { n }),
        1 => (0u64..120).prop_map(|secs| Ev::Tick { secs }),
        1 => (0usize..8).prop_map(|n| Ev::Closed { n }),
        1 => (0usize..8).prop_map(|n| Ev::Close { n }),
    ]
}

/// The message of kind `k` as its type and payload bytes.
fn message(k: u8, nonce: u64, unix: i64) -> (String, Vec<u8>) {
    let fresh = |first: u8, n: u32| {
        bitcoin::p2p::message::NetworkMessage::Addr(
            (0..n)
                .map(|i| {
                    let sa = std::net::SocketAddr::from(([first, (i >> 8) as u8, i as u8, 1], 8333));
                    let services = bitcoin::p2p::ServiceFlags::NETWORK | bitcoin::p2p::ServiceFlags::WITNESS;
                    (unix as u32, bitcoin::p2p::address::Address::new(&sa, services))
                })
                .collect(),
        )
    };
    use bitcoin::p2p::message::NetworkMessage as M;
    let msg = match k {
        0 => version(nonce),
        1 => M::Verack,
        2 => M::Ping(nonce),
        3 => M::Pong(nonce),
        4 => fresh(14, 1),
        5 => fresh(12, 1001),
        6 => M::GetAddr,
        7 => M::SendAddrV2,
        _ => return ("ping".into(), vec![1, 2]),
    };
    let (command, payload) = encode_payload(&msg);
    (command.to_string(), payload)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn any_event_sequence_keeps_the_managers_promises(events in proptest::collection::vec(ev(), 1..60)) {
        let t0 = Instant::now();
        let mut m = manager(t0, true, &["8.8.4.4:8333", "9.9.9.9:8333"]);
        let mut secs = 0u64;
        let mut next_id: PeerId = 0;
        // Every peer the driver knows, with its address, type and whether a disconnect was asked.
        let mut known: BTreeMap<PeerId, (IpAddr, ConnectionType, bool)> = BTreeMap::new();
        let kinds = [
            ConnectionType::Inbound,
            ConnectionType::OutboundFullRelay,
            ConnectionType::BlockRelayOnly,
            ConnectionType::Manual,
            ConnectionType::Feeler,
        ];
        let link = LinkTimes::default();
        for e in events {
            let now = at(t0, secs);
            let nth = |n: usize| known.keys().nth(n % known.len().max(1)).copied();
            let mut wrote = Wrote::default();
            let mut target = None;
            match e {
                Ev::Connect { addr, kind } => {
                    let id = next_id;
                    next_id += 1;
                    let ct = kinds[usize::from(kind) % kinds.len()];
                    m.connected(who(id, ADDRS[addr], ct, now.mono));
                    m.send_messages(id, now, link, &mut wrote);
                    known.insert(id, (ADDRS[addr].parse::<std::net::SocketAddr>().unwrap().ip(), ct, false));
                    target = Some(id);
                }
                Ev::Message { n, msg } => {
                    if let Some(id) = nth(n) {
                        let (command, payload) = message(msg, 1000 + id, now.unix);
                        m.on_message(id, &command, &payload, now.mono, now, link, &mut wrote);
                        target = Some(id);
                    }
                }
                Ev::Send { n } => {
                    if let Some(id) = nth(n) {
                        m.send_messages(id, now, link, &mut wrote);
                        target = Some(id);
                    }
                }
                Ev::Tick { secs: d } => {
                    secs += d;
                    let refused = |_: IpAddr| false;
                    m.tick(at(t0, secs), &TickEnv { network_active: true, refused: &refused });
                }
                Ev::Closed { n } => {
                    if let Some(id) = nth(n) {
                        prop_assert!(m.closed(id, &DisconnectReason::PeerClosed, now).is_some(), "a known peer");
                        known.remove(&id);
                        prop_assert!(m.peer(id).is_none());
                    }
                }
                Ev::Close { n } => {
                    if let Some(id) = nth(n) {
                        let was_open = !known[&id].2;
                        prop_assert_eq!(m.close(id, DisconnectReason::Requested), was_open);
                    }
                }
            }
            // A peer that was being disconnected before this event got nothing written.
            if let Some(id) = target {
                if known.get(&id).is_some_and(|k| k.2) {
                    prop_assert!(wrote.0.is_empty(), "wrote {:?} to closing peer {}", wrote.commands(), id);
                }
            }
            let mut actions = Vec::new();
            m.take_actions(&mut actions);
            let mut discouraged: BTreeSet<IpAddr> = BTreeSet::new();
            for a in actions {
                match a {
                    Action::Disconnect { id, .. } => {
                        let k = known.get_mut(&id);
                        prop_assert!(k.is_some(), "disconnect of unknown peer {}", id);
                        let k = k.unwrap();
                        prop_assert!(!k.2, "peer {} disconnected twice", id);
                        k.2 = true;
                    }
                    Action::Discourage(ip) => {
                        discouraged.insert(ip);
                    }
                    Action::Dial { .. } | Action::AddrFetch(_) | Action::Validate(_) => {}
                }
            }
            for (id, (ip, _, closing)) in &known {
                prop_assert_eq!(m.is_closing(*id), *closing, "the manager and the driver agree on peer {}", id);
                if discouraged.contains(ip) {
                    prop_assert!(*closing, "peer {} from just-discouraged {} still open", id, ip);
                }
            }
            if let Some(victim) = m.inbound_to_evict(|_| false, t0) {
                let k = known.get(&victim);
                prop_assert!(k.is_some_and(|k| k.1 == ConnectionType::Inbound && !k.2), "evicting {} {:?}", victim, k);
            }
            prop_assert_eq!(m.len(), known.len());
        }
    }
}
