//! Address relay with fake time and a recording Outbox.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::{AddrV2, Address};
use bitcoin::p2p::message::NetworkMessage;

use super::*;
use crate::base::chainparams::Network;
use crate::base::peer::ConnectionType;
use crate::base::peer::PeerIdentity;
use crate::engine::chain::params::ChainParams;
use crate::engine::protocol::test_support::{peer_version, test_protocol};
use crate::engine::protocol::{LinkTimes, Recorder};

const UNIX0: i64 = 1_700_000_000;

fn proto() -> Protocol {
    test_protocol(ServiceFlags::NONE, 11)
}

fn now(t0: Instant, secs: u64) -> Now {
    Now { mono: t0 + Duration::from_secs(secs), unix: UNIX0 + secs as i64 }
}

fn version() -> NetworkMessage {
    peer_version(9, UNIX0, "/peer/")
}

/// A handshaken peer of `conn` from `from`; `v2`: it sent `sendaddrv2`.
fn peer(p: &mut Protocol, id: u64, conn: ConnectionType, from: &str, v2: bool, t0: Instant) -> (Peer, Recorder) {
    let mut peer = p.add_peer(PeerIdentity::new(id, from.parse::<SocketAddr>().unwrap(), conn, t0));
    let mut out = Recorder::default();
    if !conn.is_inbound() {
        p.send_messages(&mut peer, now(t0, 0), LinkTimes::default(), &mut out);
    }
    p.deliver(&mut peer, version(), t0, now(t0, 0), &mut out);
    if v2 {
        p.deliver(&mut peer, NetworkMessage::SendAddrV2, t0, now(t0, 0), &mut out);
    }
    p.deliver(&mut peer, NetworkMessage::Verack, t0, now(t0, 0), &mut out);
    (peer, out)
}

fn v1(ip: [u8; 4], time: u32) -> (u32, Address) {
    let sa = SocketAddr::from((ip, 8333));
    (time, Address::new(&sa, ServiceFlags::NETWORK | ServiceFlags::WITNESS))
}

fn deliver(p: &mut Protocol, peer: &mut Peer, msg: NetworkMessage, at: Now) -> Recorder {
    let mut out = Recorder::default();
    p.deliver(peer, msg, at.mono, at, &mut out);
    out
}

#[test]
fn outbound_peers_are_asked_for_addresses_once_block_relay_and_inbound_are_not() {
    let mut p = proto();
    let t0 = Instant::now();
    let (_, out) = peer(&mut p, 1, ConnectionType::OutboundFullRelay, "8.8.8.8:8333", false, t0);
    assert_eq!(out.commands(), ["version", "wtxidrelay", "sendaddrv2", "verack", "getaddr", "sendheaders"]);
    let (_, out) = peer(&mut p, 2, ConnectionType::BlockRelayOnly, "8.8.4.4:8333", false, t0);
    assert!(!out.commands().contains(&"getaddr"), "no addr traffic with block-relay-only peers");
    let (inbound, out) = peer(&mut p, 3, ConnectionType::Inbound, "1.1.1.1:5000", false, t0);
    assert!(!out.commands().contains(&"getaddr"));
    assert!(!inbound.addrs.relay_enabled, "inbound relay starts with their first addr message");
}

#[test]
fn addresses_go_into_the_book_and_oversized_messages_are_misbehaviour() {
    let mut p = proto();
    let t0 = Instant::now();
    let (mut out_peer, _) = peer(&mut p, 1, ConnectionType::OutboundFullRelay, "8.8.8.8:8333", false, t0);
    // The answer to our getaddr: 1,000 addresses, all processed thanks to the extra tokens.
    let list: Vec<(u32, Address)> = (0..1000u32).map(|i| v1([11, (i >> 8) as u8, i as u8, 1], UNIX0 as u32)).collect();
    let out = deliver(&mut p, &mut out_peer, NetworkMessage::Addr(list), now(t0, 1));
    assert!(out.disconnect.is_none());
    assert_eq!(out_peer.addrs.processed, 1000);
    assert_eq!(out_peer.addrs.rate_limited, 0);
    assert!(out.relayed.is_empty(), "a getaddr answer is not relayed");
    assert!(p.addrman.size(None, None) > 0);

    let (mut inbound, _) = peer(&mut p, 2, ConnectionType::Inbound, "203.0.113.9:5000", false, t0);
    let list: Vec<(u32, Address)> = (0..1001u32).map(|i| v1([12, 0, (i >> 8) as u8, i as u8], UNIX0 as u32)).collect();
    let out = deliver(&mut p, &mut inbound, NetworkMessage::Addr(list), now(t0, 1));
    assert!(
        matches!(&out.disconnect, Some(crate::base::peer::DisconnectReason::Misbehaving(m)) if m == "addr message size = 1001")
    );
}

#[test]
fn unsolicited_addresses_are_rate_limited_by_the_token_bucket() {
    let mut p = proto();
    let t0 = Instant::now();
    let (mut spammer, _) = peer(&mut p, 1, ConnectionType::Inbound, "203.0.113.9:5000", false, t0);
    let list = |base: u8| -> Vec<(u32, Address)> {
        (0..500u32).map(|i| v1([13, base, (i >> 8) as u8, i as u8], UNIX0 as u32)).collect()
    };
    deliver(&mut p, &mut spammer, NetworkMessage::Addr(list(0)), now(t0, 0));
    assert_eq!((spammer.addrs.processed, spammer.addrs.rate_limited), (1, 499), "one token to start with");
    // 100 s later: 0.1 per second = 10 more.
    deliver(&mut p, &mut spammer, NetworkMessage::Addr(list(1)), now(t0, 100));
    assert_eq!((spammer.addrs.processed, spammer.addrs.rate_limited), (11, 989));
    // An `addr`-permission peer is not limited.
    let (mut trusted, _) = peer(&mut p, 2, ConnectionType::Inbound, "198.51.100.1:5000", false, t0);
    trusted.reidentify(|w| w.permissions = crate::engine::policy::permissions::Permissions::ADDR);
    deliver(&mut p, &mut trusted, NetworkMessage::Addr(list(2)), now(t0, 0));
    assert_eq!((trusted.addrs.processed, trusted.addrs.rate_limited), (500, 0));
}

#[test]
fn small_fresh_announcements_are_handed_over_for_relay() {
    let mut p = proto();
    let t0 = Instant::now();
    let (mut a, _) = peer(&mut p, 1, ConnectionType::Inbound, "203.0.113.9:5000", false, t0);
    let at = now(t0, 20_000);
    let fresh = v1([14, 1, 2, 3], at.unix as u32);
    let stale = v1([14, 1, 2, 4], (at.unix - 3600) as u32);
    let out = deliver(&mut p, &mut a, NetworkMessage::Addr(vec![fresh, stale]), at);
    assert_eq!(out.relayed.len(), 1, "only the fresh one: {:?}", out.relayed);
    assert!(out.relayed[0].1, "IPv4 is reachable: relayed to two peers");
    // Twelve addresses at once are not an announcement.
    let many: Vec<(u32, Address)> = (0..12u8).map(|i| v1([15, 0, 0, i], at.unix as u32)).collect();
    assert!(deliver(&mut p, &mut a, NetworkMessage::Addr(many), now(t0, 30_000)).relayed.is_empty());
}

#[test]
fn relay_targets_are_two_stable_peers_per_day() {
    let e = AddrEntry::new(AddrV2::Ipv4([1, 2, 3, 4].into()), 8333, ServiceFlags::NETWORK, 0);
    let t1 = relay_targets(7, &e, true, UNIX0, 0..20);
    assert_eq!(t1.len(), 2);
    assert_eq!(relay_targets(7, &e, true, UNIX0 + 60, 0..20), t1, "the same peers within the window");
    assert_ne!(relay_targets(8, &e, true, UNIX0, 0..20), t1, "another key, other peers (almost surely)");
    assert!(relay_targets(7, &e, true, UNIX0, std::iter::empty()).is_empty());
    let days: std::collections::HashSet<Vec<u64>> =
        (0..10).map(|d| relay_targets(7, &e, true, UNIX0 + d * 86_400, 0..20)).collect();
    assert!(days.len() > 1, "the choice rotates over days");
}

#[test]
fn getaddr_is_answered_once_per_inbound_peer_from_a_cache_in_the_right_format() {
    let mut p = proto();
    let t0 = Instant::now();
    let book: Vec<AddrEntry> = (0..50u8)
        .map(|i| AddrEntry::new(AddrV2::Ipv4([16, i, 0, 1].into()), 8333, ServiceFlags::NETWORK, UNIX0))
        .chain(std::iter::once(AddrEntry::new(AddrV2::TorV3([7; 32]), 9050, ServiceFlags::NETWORK, UNIX0)))
        .collect();
    p.addrman.add(&book, &AddrV2::Ipv4([9, 9, 9, 9].into()), 0, UNIX0);
    let (mut v1peer, _) = peer(&mut p, 1, ConnectionType::Inbound, "203.0.113.9:5000", false, t0);
    let (mut v2peer, _) = peer(&mut p, 2, ConnectionType::Inbound, "203.0.113.10:5000", true, t0);
    let (mut outbound, _) = peer(&mut p, 3, ConnectionType::OutboundFullRelay, "8.8.8.8:8333", true, t0);
    for pr in [&mut v1peer, &mut v2peer, &mut outbound] {
        deliver(&mut p, pr, NetworkMessage::GetAddr, now(t0, 1));
    }
    assert!(outbound.addrs.to_send.is_empty(), "getaddr from an outbound peer is ignored (fingerprinting)");
    let send = |p: &mut Protocol, pr: &mut Peer, s| {
        let mut out = Recorder::default();
        p.send_messages(pr, now(t0, s), LinkTimes::default(), &mut out);
        out.sent
            .into_iter()
            .filter(|m| matches!(m, NetworkMessage::Addr(_) | NetworkMessage::AddrV2(_)))
            .collect::<Vec<_>>()
    };
    let sent = send(&mut p, &mut v1peer, 1);
    let [NetworkMessage::Addr(list)] = sent.as_slice() else { panic!("{sent:?}") };
    assert!(!list.is_empty() && list.len() <= 51 * MAX_PCT_ADDR_TO_SEND / 100 + 1, "23% of the book: {}", list.len());
    let sent = send(&mut p, &mut v2peer, 1);
    let [NetworkMessage::AddrV2(list2)] = sent.as_slice() else { panic!("{sent:?}") };
    assert!(list2.len() >= list.len(), "addrv2 peers may also get the onion address");
    // A second getaddr is ignored; nothing new is queued.
    deliver(&mut p, &mut v1peer, NetworkMessage::GetAddr, now(t0, 2));
    assert!(v1peer.addrs.to_send.is_empty());
    // Another inbound peer gets the same cached answer.
    let (mut third, _) = peer(&mut p, 4, ConnectionType::Inbound, "203.0.113.11:5000", false, t0);
    deliver(&mut p, &mut third, NetworkMessage::GetAddr, now(t0, 3));
    let sent = send(&mut p, &mut third, 3);
    let [NetworkMessage::Addr(list3)] = sent.as_slice() else { panic!("{sent:?}") };
    let key = |l: &[(u32, Address)]| {
        let mut v: Vec<_> = l.iter().map(|(_, a)| a.socket_addr().unwrap()).collect();
        v.sort();
        v
    };
    assert_eq!(key(list3), key(list), "served from the cache");
}

/// A node listening with the manual address 1.2.3.4:8333, its best header at `UNIX0` (so out
/// of initial block download at `UNIX0`) unless `in_ibd`.
fn listening(in_ibd: bool) -> Protocol {
    let mut p = proto();
    p.local = crate::engine::policy::local::LocalAddrs::new(
        true,
        false,
        8333,
        crate::engine::addrman::NetGroupRule::Core,
        false,
    );
    assert!(p.local.add("1.2.3.4:8333".parse().unwrap(), crate::engine::policy::local::LOCAL_MANUAL));
    if !in_ibd {
        let params = ChainParams::new(Network::Regtest);
        let h = crate::engine::chain::mine::mine_child(&params, &params.genesis, UNIX0 as u32, 1);
        assert_eq!(p.headers.chain.accept(&[h], UNIX0).error, None);
        // A node without blocks takes its best header as its tip.
        p.headers.chain.tree_mut().follow_best();
    }
    p
}

/// Runs `send_messages` at `at` (the link busy, so no inactivity timeout) and returns the
/// addresses sent in `addr` messages, one vector per message.
fn addr_sends(p: &mut Protocol, pr: &mut Peer, at: Now) -> Vec<Vec<SocketAddr>> {
    let mut out = Recorder::default();
    let link = LinkTimes { last_send: Some(at.mono), last_recv: Some(at.mono) };
    p.send_messages(pr, at, link, &mut out);
    assert!(out.disconnect.is_none(), "{:?}", out.disconnect);
    out.sent
        .iter()
        .filter_map(|m| match m {
            NetworkMessage::Addr(l) => Some(l.iter().map(|(_, a)| a.socket_addr().unwrap()).collect()),
            _ => None,
        })
        .collect()
}

#[test]
fn our_address_is_advertised_at_once_out_of_ibd_then_about_daily() {
    let ours: SocketAddr = "1.2.3.4:8333".parse().unwrap();
    let mut p = listening(false);
    let t0 = Instant::now();
    let (mut pr, out) = peer(&mut p, 1, ConnectionType::OutboundFullRelay, "8.8.8.8:8333", false, t0);
    // It has our best header, so the outbound chain-sync timeout leaves it alone for 80 days.
    pr.headers.best_known = Some(p.headers.chain.tree().tip_id());
    assert!(!out.sent.iter().any(|m| matches!(m, NetworkMessage::Addr(_))), "nothing before the handshake ends");
    let mut out = Recorder::default();
    p.send_messages(&mut pr, now(t0, 0), LinkTimes::default(), &mut out);
    let sent: Vec<_> = out.sent.iter().filter(|m| matches!(m, NetworkMessage::Addr(_))).collect();
    let [NetworkMessage::Addr(list)] = sent.as_slice() else { panic!("{:?}", out.commands()) };
    assert_eq!(list.len(), 1, "the first self-announcement goes alone");
    assert_eq!(list[0].1.socket_addr().unwrap(), ours);
    assert_eq!(list[0].1.services, ServiceFlags::NONE, "with the services we really offer");
    assert_eq!(list[0].0, UNIX0 as u32);
    // Not again soon: the timer's mean is a day.
    assert!(addr_sends(&mut p, &mut pr, now(t0, 60)).is_empty());
    // Each time the timer runs out it goes out again, although the peer's known-address filter
    // already holds it (the filter is reset first, as Core does).
    for day in [40u64, 80] {
        pr.ping = crate::engine::protocol::PingState::default(); // pings are not the subject here
        let sent = addr_sends(&mut p, &mut pr, now(t0, day * 86_400));
        assert_eq!(sent, vec![vec![ours]], "day {day}");
    }
}

#[test]
fn no_advertisement_in_ibd_without_relay_or_when_not_listening() {
    let t0 = Instant::now();
    // In initial block download (best header from 2011).
    let mut p = listening(true);
    let (mut pr, _) = peer(&mut p, 1, ConnectionType::OutboundFullRelay, "8.8.8.8:8333", false, t0);
    assert!(addr_sends(&mut p, &mut pr, now(t0, 0)).is_empty());
    // Block-relay-only peers have no address relay; inbound ones not before their first addr.
    let mut p = listening(false);
    let (mut block_only, _) = peer(&mut p, 2, ConnectionType::BlockRelayOnly, "8.8.4.4:8333", false, t0);
    assert!(addr_sends(&mut p, &mut block_only, now(t0, 0)).is_empty());
    let (mut inbound, _) = peer(&mut p, 3, ConnectionType::Inbound, "9.9.9.9:5000", false, t0);
    assert!(addr_sends(&mut p, &mut inbound, now(t0, 0)).is_empty());
    deliver(&mut p, &mut inbound, NetworkMessage::Addr(vec![v1([20, 1, 1, 1], UNIX0 as u32)]), now(t0, 1));
    let sent = addr_sends(&mut p, &mut inbound, now(t0, 1));
    assert_eq!(sent, vec![vec!["1.2.3.4:8333".parse::<SocketAddr>().unwrap()]], "once relay is set up");
    // Not listening (Core's fListen): nothing to advertise.
    let mut p = listening(false);
    p.local = crate::engine::policy::local::LocalAddrs::new(
        false,
        false,
        8333,
        crate::engine::addrman::NetGroupRule::Core,
        false,
    );
    assert!(p.local.add("1.2.3.4:8333".parse().unwrap(), crate::engine::policy::local::LOCAL_MANUAL));
    let (mut pr, _) = peer(&mut p, 4, ConnectionType::OutboundFullRelay, "8.8.8.8:8333", false, t0);
    assert!(addr_sends(&mut p, &mut pr, now(t0, 0)).is_empty());
}

#[test]
fn an_inbound_peers_view_of_us_is_recorded_and_counts_as_a_vote() {
    let mut p = listening(false);
    let t0 = Instant::now();
    let mut pr = p.add_peer(PeerIdentity::new(1, "8.8.8.8:5000".parse().unwrap(), ConnectionType::Inbound, t0));
    let NetworkMessage::Version(mut v) = version() else { unreachable!() };
    v.receiver = Address::new(&"1.2.3.4:8333".parse().unwrap(), ServiceFlags::NONE);
    deliver(&mut p, &mut pr, NetworkMessage::Version(v.clone()), now(t0, 0));
    assert_eq!(pr.handshake.addr_local, Some("1.2.3.4:8333".parse().unwrap()));
    assert_eq!(p.local.score("1.2.3.4".parse().unwrap()), crate::engine::policy::local::LOCAL_MANUAL + 1);
    // An outbound peer's view is recorded but is no vote.
    let mut out_peer =
        p.add_peer(PeerIdentity::new(2, "8.8.4.4:8333".parse().unwrap(), ConnectionType::OutboundFullRelay, t0));
    v.nonce = 77;
    deliver(&mut p, &mut out_peer, NetworkMessage::Version(v), now(t0, 0));
    assert!(out_peer.handshake.addr_local.is_some());
    assert_eq!(p.local.score("1.2.3.4".parse().unwrap()), crate::engine::policy::local::LOCAL_MANUAL + 1);
}

/// Bans for tests: a fixed set of IPs.
struct FakeBans(Vec<std::net::IpAddr>);

impl AddrFilter for FakeBans {
    fn is_banned_or_discouraged(&self, ip: std::net::IpAddr, _: i64) -> bool {
        self.0.contains(&ip)
    }
}

#[test]
fn banned_and_discouraged_addresses_are_neither_stored_nor_relayed() {
    let mut p = proto();
    p.bans = Box::new(FakeBans(vec!["21.0.0.1".parse().unwrap(), "21.0.0.2".parse().unwrap()]));
    let t0 = Instant::now();
    let (mut pr, _) = peer(&mut p, 1, ConnectionType::Inbound, "203.0.113.9:5000", false, t0);
    pr.reidentify(|w| w.permissions = crate::engine::policy::permissions::Permissions::ADDR);
    let at = now(t0, 10);
    let fresh = |last: u8| v1([21, 0, 0, last], at.unix as u32);
    let out = deliver(&mut p, &mut pr, NetworkMessage::Addr(vec![fresh(1), fresh(2), fresh(3)]), at);
    assert_eq!(pr.addrs.processed, 1, "the banned two are not processed");
    assert_eq!(out.relayed.len(), 1);
    assert_eq!(out.relayed[0].0.socket_addr(), Some("21.0.0.3:8333".parse().unwrap()));
    let stored: Vec<_> =
        p.addrman.get_addr(0, 0, None, false, at.unix).iter().filter_map(|a| a.socket_addr()).collect();
    assert_eq!(stored, vec!["21.0.0.3:8333".parse::<SocketAddr>().unwrap()]);
}

#[test]
fn real_ban_lists_answer_for_both_kinds() {
    use std::sync::Arc;
    let lists =
        BanLists { banman: Arc::new(crate::engine::policy::banman::BanMan::default()), discouraged: Arc::default() };
    let (a, b) = ("21.0.0.1".parse().unwrap(), "21.0.0.2".parse().unwrap());
    lists.discouraged.add(a);
    lists.banman.ban(crate::engine::policy::banman::Subnet::host(b), UNIX0, UNIX0 + 100).unwrap();
    assert!(lists.is_banned_or_discouraged(a, UNIX0));
    assert!(lists.is_banned_or_discouraged(b, UNIX0));
    assert!(!lists.is_banned_or_discouraged(b, UNIX0 + 101), "the ban expired");
    assert!(!lists.is_banned_or_discouraged("21.0.0.3".parse().unwrap(), UNIX0));
}

#[test]
fn loopback_rule_relays_127_announcements_core_rule_does_not() {
    for (rule, relayed) in
        [(crate::engine::addrman::NetGroupRule::Core, 0), (crate::engine::addrman::NetGroupRule::LoopbackPerAddress, 1)]
    {
        let mut p = proto();
        p.addrman = crate::engine::addrman::AddrMan::new([1; 32], 2, rule);
        let t0 = Instant::now();
        let (mut pr, _) = peer(&mut p, 1, ConnectionType::Inbound, "203.0.113.9:5000", false, t0);
        let at = now(t0, 10);
        let out = deliver(&mut p, &mut pr, NetworkMessage::Addr(vec![v1([127, 0, 0, 9], at.unix as u32)]), at);
        assert_eq!(out.relayed.len(), relayed, "{rule:?}");
    }
}

fn v2msg(addr: AddrV2, time: u32) -> bitcoin::p2p::address::AddrV2Message {
    bitcoin::p2p::address::AddrV2Message {
        time,
        services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
        addr,
        port: 8333,
    }
}

#[test]
fn addresses_of_networks_no_node_reaches_are_never_stored() {
    let mut p = proto();
    let t0 = Instant::now();
    let (mut a, _) = peer(&mut p, 1, ConnectionType::Inbound, "203.0.113.9:5000", true, t0);
    a.reidentify(|w| w.permissions = crate::engine::policy::permissions::Permissions::ADDR);
    let fresh = UNIX0 as u32;
    let unusable: Vec<_> = (0..10u8)
        .map(|i| v2msg(AddrV2::Unknown(200 + i, vec![i; 512]), fresh))
        .chain(std::iter::once(v2msg(AddrV2::TorV2([5; 10]), fresh)))
        .collect();
    let book = p.addrman.size(None, None);
    let out = deliver(&mut p, &mut a, NetworkMessage::AddrV2(unusable.clone()), now(t0, 1));
    assert!(out.relayed.is_empty(), "not relayed");
    assert_eq!(p.addrman.size(None, None), book, "not in the address book");
    assert_eq!(a.addrs.processed, 0);
    let known = a.addrs.known().expect("relay set up by the addr message");
    assert_eq!(known.inserted(), 0, "not even remembered as known");
    // Nor queued for sending when relayed by others.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
    for m in &unusable {
        push_address(&mut a, AddrEntry::new(m.addr.clone(), m.port, m.services, UNIX0), &mut rng);
    }
    assert!(a.addrs.to_send.is_empty());
    // A reachable one in the same message is processed as before.
    let mixed = vec![unusable[0].clone(), v2msg(AddrV2::Ipv4([16, 1, 2, 3].into()), fresh)];
    let out = deliver(&mut p, &mut a, NetworkMessage::AddrV2(mixed), now(t0, 2));
    assert_eq!(a.addrs.processed, 1);
    assert_eq!(out.relayed.len(), 1);
    assert_eq!(a.addrs.known().map(|k| k.inserted()), Some(1));
}

#[test]
fn known_address_memory_per_peer_is_fixed() {
    let mut p = proto();
    let t0 = Instant::now();
    let (mut a, _) = peer(&mut p, 1, ConnectionType::Inbound, "203.0.113.9:5000", true, t0);
    assert!(a.addrs.known().is_none(), "no filter before relay is set up");
    a.reidentify(|w| w.permissions = crate::engine::policy::permissions::Permissions::ADDR);
    let mut sizes = Vec::new();
    for round in 0..30u32 {
        // 1,000 distinct addresses (Tor v3: the largest fixed-size network) per message.
        let list: Vec<_> = (0..1000u32)
            .map(|i| {
                let mut b = [0u8; 32];
                b[..4].copy_from_slice(&(round * 1000 + i).to_le_bytes());
                v2msg(AddrV2::TorV3(b), UNIX0 as u32)
            })
            .collect();
        deliver(&mut p, &mut a, NetworkMessage::AddrV2(list), now(t0, 1 + u64::from(round)));
        let k = a.addrs.known().expect("filter");
        sizes.push(std::mem::size_of::<crate::engine::protocol::rolling_bloom::RollingBloom>() + k.heap_bytes());
    }
    // Each new address is inserted unless the filter already (falsely) holds it: ~0.1% at most.
    let inserted = a.addrs.known().map_or(0, |k| k.inserted());
    assert!((29_940..=30_000).contains(&inserted), "{inserted}");
    assert!(sizes.iter().all(|&s| s == sizes[0]), "{sizes:?}");
    assert!(sizes[0] < 28_000, "{} bytes (Core's filter: about 27 KB)", sizes[0]);
    // The most recent addresses are known (not re-sent to the peer).
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(2);
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&29_999u32.to_le_bytes());
    push_address(&mut a, AddrEntry::new(AddrV2::TorV3(b), 8333, ServiceFlags::NETWORK, UNIX0), &mut rng);
    assert!(a.addrs.to_send.is_empty());
}

#[test]
fn tor_i2p_and_cjdns_addresses_are_stored_and_relayed_by_addrv2_only() {
    use crate::engine::addrman::AddrNetwork;
    let mut p = proto();
    let t0 = Instant::now();
    let (mut a, _) = peer(&mut p, 1, ConnectionType::Inbound, "203.0.113.9:5000", true, t0);
    a.reidentify(|w| w.permissions = crate::engine::policy::permissions::Permissions::ADDR);
    let at = now(t0, 1);
    let overlay = vec![
        v2msg(AddrV2::TorV3([0x35; 32]), at.unix as u32),
        v2msg(AddrV2::I2p([0x22; 32]), at.unix as u32),
        v2msg(AddrV2::Cjdns("fc00::1234".parse().unwrap()), at.unix as u32),
    ];
    let out = deliver(&mut p, &mut a, NetworkMessage::AddrV2(overlay.clone()), at);
    assert_eq!(a.addrs.processed, 3);
    for net in [AddrNetwork::Onion, AddrNetwork::I2p, AddrNetwork::Cjdns] {
        assert_eq!(p.addrman.size(Some(net), Some(true)), 1, "{net:?} stored in the new table");
    }
    // Fresh announcements of networks the node cannot dial: relayed, to 1 or 2 peers.
    assert_eq!(out.relayed.len(), 3);
    assert!(out.relayed.iter().all(|(_, reachable)| !reachable), "{:?}", out.relayed);
    // Relayed to an addrv2 peer, never to a v1 peer.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    let (mut v1peer, _) = peer(&mut p, 2, ConnectionType::Inbound, "198.51.100.7:5000", false, t0);
    let (mut v2peer, _) = peer(&mut p, 3, ConnectionType::Inbound, "198.51.100.8:5000", true, t0);
    for pr in [&mut v1peer, &mut v2peer] {
        // Sets up relay for the inbound peers; 23% of a book of 3 is nothing.
        deliver(&mut p, pr, NetworkMessage::GetAddr, now(t0, 3));
    }
    for m in &overlay {
        let e = AddrEntry::new(m.addr.clone(), m.port, m.services, UNIX0);
        push_address(&mut v1peer, e.clone(), &mut rng);
        push_address(&mut v2peer, e, &mut rng);
    }
    assert!(v1peer.addrs.to_send.is_empty(), "none of them fits a v1 addr message");
    let mut out = Recorder::default();
    p.send_messages(&mut v2peer, now(t0, 4), LinkTimes::default(), &mut out);
    let sent: Vec<_> =
        out.sent.iter().filter_map(|m| if let NetworkMessage::AddrV2(l) = m { Some(l) } else { None }).collect();
    assert_eq!(sent.len(), 1, "{:?}", out.sent);
    let mut got: Vec<AddrV2> = sent[0].iter().map(|m| m.addr.clone()).collect();
    got.sort_by_key(|a| format!("{a:?}"));
    let mut want: Vec<AddrV2> = overlay.iter().map(|m| m.addr.clone()).collect();
    want.sort_by_key(|a| format!("{a:?}"));
    assert_eq!(got, want);
    // A getaddr answer (23% of a book of 30 such addresses) goes to the addrv2 peer only.
    let more: Vec<AddrEntry> =
        (1..=27u8).map(|i| AddrEntry::new(AddrV2::TorV3([i; 32]), 8333, ServiceFlags::NETWORK, UNIX0)).collect();
    p.addrman.add(&more, &AddrV2::Ipv4([9, 9, 9, 9].into()), 0, UNIX0);
    let book = p.addrman.size(None, None);
    assert!(book >= 20, "{book}");
    let (mut v1asker, _) = peer(&mut p, 4, ConnectionType::Inbound, "198.51.100.9:5000", false, t0);
    let (mut v2asker, _) = peer(&mut p, 5, ConnectionType::Inbound, "198.51.100.10:5000", true, t0);
    for pr in [&mut v1asker, &mut v2asker] {
        // Answered from the book, not from the (empty) cache made above.
        pr.reidentify(|w| w.permissions = crate::engine::policy::permissions::Permissions::ADDR);
        deliver(&mut p, pr, NetworkMessage::GetAddr, now(t0, 5));
    }
    assert!(v1asker.addrs.to_send.is_empty());
    assert_eq!(v2asker.addrs.to_send.len(), book * MAX_PCT_ADDR_TO_SEND / 100);
}
