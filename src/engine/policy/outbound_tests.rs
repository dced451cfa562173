//! Tests of the outbound planner: fake time, a real address book, no sockets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use bitcoin::p2p::ServiceFlags;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::engine::addrman::{AddrEntry, AddrMan, AddrNetwork, NetGroupRule, from_ip};

const NOW: i64 = 1_700_000_000;

fn full() -> ServiceFlags {
    ServiceFlags::NETWORK | ServiceFlags::WITNESS
}

fn book(addrs: &[SocketAddr]) -> AddrMan {
    let mut man = AddrMan::new([7; 32], 11, NetGroupRule::Core);
    for a in addrs {
        let e = AddrEntry::from_socket(*a, full(), NOW - 3600);
        man.add(&[e], &from_ip(IpAddr::V4(Ipv4Addr::new(9, 9, 9, 9))), 0, NOW);
    }
    man
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), 8333)
}

/// 40 addresses in 20 /16 groups (two per group).
fn spread() -> Vec<SocketAddr> {
    (0..20u8).flat_map(|g| [v4(20 + g, 1, 0, 1), v4(20 + g, 1, 0, 2)]).collect()
}

fn setup() -> Setup {
    Setup {
        enabled: true,
        dnsseed: true,
        fixed_seeds: true,
        reachable: vec![AddrNetwork::Ipv4, AddrNetwork::Ipv6],
        max_connections: 125,
        ..Setup::default()
    }
}

struct Sim {
    planner: OutboundPlanner,
    man: AddrMan,
    conns: Vec<Conn>,
    rng: StdRng,
    now: Instant,
    t0: Instant,
    unix: i64,
    refused: Vec<IpAddr>,
    added: Vec<SocketAddr>,
    dials: Vec<(SocketAddr, ConnectionType)>,
    other: Vec<Action>,
}

impl Sim {
    fn new(setup: Setup, man: AddrMan) -> Sim {
        let mut rng = StdRng::seed_from_u64(5);
        let now = Instant::now();
        let empty = man.size(None, None) == 0;
        let planner = OutboundPlanner::new(setup, Vec::new(), now, empty, &mut rng);
        Sim {
            planner,
            man,
            conns: Vec::new(),
            rng,
            now,
            t0: now,
            unix: NOW,
            refused: Vec::new(),
            added: Vec::new(),
            dials: Vec::new(),
            other: Vec::new(),
        }
    }

    /// Runs rounds for `span` of fake time; every dial connects at once unless `fail`.
    fn run(&mut self, span: Duration, fail: bool) {
        let end = self.now + span;
        while self.now < end {
            let refused = self.refused.clone();
            let refused = move |ip: IpAddr| refused.contains(&ip);
            let view = View {
                conns: &self.conns,
                added: &self.added,
                refused: &refused,
                is_local: &|_| false,
                tip_depth: 0,
                network_active: true,
            };
            let actions = self.planner.tick(self.now, self.unix, &mut self.man, &view, &mut self.rng);
            for a in actions {
                match a {
                    Action::Dial { addr, conn_type, .. } => {
                        self.dials.push((addr, conn_type));
                        self.planner.dial_done(addr);
                        if !fail && conn_type != ConnectionType::Feeler {
                            self.conns.push(Conn { addr, conn_type });
                        }
                    }
                    other => self.other.push(other),
                }
            }
            self.now += Duration::from_millis(100);
            self.unix = NOW + (self.now - self.t0).as_secs() as i64;
        }
    }

    fn count(&self, t: ConnectionType) -> usize {
        self.conns.iter().filter(|c| c.conn_type == t).count()
    }
}

fn group(a: &SocketAddr) -> (u8, u8) {
    match a.ip() {
        IpAddr::V4(v) => (v.octets()[0], v.octets()[1]),
        IpAddr::V6(_) => (0, 0),
    }
}

#[test]
fn fills_eight_full_relay_and_two_block_relay_slots_one_per_group() {
    let mut sim = Sim::new(setup(), book(&spread()));
    sim.run(Duration::from_secs(30), false);
    assert_eq!(sim.count(ConnectionType::OutboundFullRelay), 8);
    assert_eq!(sim.count(ConnectionType::BlockRelayOnly), 2);
    let mut groups: Vec<_> = sim.conns.iter().map(|c| group(&c.addr)).collect();
    groups.sort();
    groups.dedup();
    assert_eq!(groups.len(), 10, "one peer per /16: {:?}", sim.conns);
    // The full-relay slots are filled before the block-relay-only ones.
    let order: Vec<_> = sim.dials.iter().map(|d| d.1).take(10).collect();
    assert!(order[..8].iter().all(|t| *t == ConnectionType::OutboundFullRelay), "{order:?}");
}

#[test]
fn one_dial_at_a_time_and_a_round_every_half_second() {
    let mut sim = Sim::new(setup(), book(&spread()));
    let view_conns: Vec<Conn> = Vec::new();
    let view = View {
        conns: &view_conns,
        added: &[],
        refused: &|_| false,
        is_local: &|_| false,
        tip_depth: 0,
        network_active: true,
    };
    let t0 = sim.now;
    let first = sim.planner.tick(t0, NOW, &mut sim.man, &view, &mut sim.rng);
    assert!(matches!(first.as_slice(), [Action::Dial { .. }]), "{first:?}");
    assert!(sim.planner.tick(t0 + TICK, NOW, &mut sim.man, &view, &mut sim.rng).is_empty(), "a dial is in flight");
    let Some((addr, _)) = sim.planner.dialing() else { panic!("no dial recorded") };
    sim.planner.dial_done(addr);
    assert!(
        sim.planner.tick(t0 + TICK + Duration::from_millis(100), NOW, &mut sim.man, &view, &mut sim.rng).is_empty()
    );
    let next = sim.planner.tick(t0 + TICK * 2, NOW, &mut sim.man, &view, &mut sim.rng);
    assert!(matches!(next.as_slice(), [Action::Dial { .. }]), "{next:?}");
}

#[test]
fn never_dials_banned_or_discouraged_addresses() {
    let addrs = spread();
    let mut sim = Sim::new(setup(), book(&addrs));
    sim.refused = addrs.iter().filter(|a| group(a).0 % 2 == 0).map(|a| a.ip()).collect();
    sim.run(Duration::from_secs(60), false);
    assert!(!sim.dials.is_empty());
    for (a, _) in &sim.dials {
        assert!(!sim.refused.contains(&a.ip()), "dialed refused {a}");
    }
    // Ten groups are left, so all ten slots still fill.
    assert_eq!(sim.conns.len(), 10);

    let mut all_refused = Sim::new(setup(), book(&addrs));
    all_refused.refused = addrs.iter().map(|a| a.ip()).collect();
    all_refused.run(Duration::from_secs(60), false);
    assert!(all_refused.dials.is_empty(), "{:?}", all_refused.dials);
}

#[test]
fn added_nodes_and_connected_addresses_are_not_dialed_automatically() {
    let addrs = spread();
    let mut sim = Sim::new(setup(), book(&addrs));
    sim.added = addrs[..20].to_vec();
    sim.conns.push(Conn { addr: SocketAddr::new(addrs[20].ip(), 1), conn_type: ConnectionType::Inbound });
    sim.run(Duration::from_secs(60), false);
    for (a, _) in &sim.dials {
        assert!(!sim.added.contains(a), "dialed added node {a}");
        assert_ne!(a.ip(), addrs[20].ip(), "dialed an address already connected (inbound)");
    }
    assert!(sim.other.iter().any(|a| matches!(a, Action::Debug(l) if l.contains("selected for manual (addnode)"))));
}

#[test]
fn feelers_go_out_about_every_two_minutes_once_slots_are_full() {
    let mut sim = Sim::new(setup(), book(&spread()));
    sim.run(Duration::from_secs(20), false);
    let before = sim.dials.len();
    assert_eq!(before, 10);
    sim.run(Duration::from_secs(60 * 60), false);
    let feelers: Vec<_> = sim.dials[before..].iter().filter(|d| d.1 == ConnectionType::Feeler).collect();
    assert_eq!(feelers.len(), sim.dials.len() - before, "only feelers once full");
    // Exponential with a 2-minute mean over an hour: 30 expected; far outside 10..60 is a bug.
    assert!((10..=60).contains(&feelers.len()), "{} feelers in an hour", feelers.len());
}

#[test]
fn failed_dials_are_retried_with_other_addresses() {
    let mut sim = Sim::new(setup(), book(&spread()));
    sim.run(Duration::from_secs(10), true);
    assert!(sim.dials.len() >= 15, "a round every 500 ms: {}", sim.dials.len());
    assert!(sim.conns.is_empty());
}

#[test]
fn connect_disables_automatic_connections() {
    let mut sim = Sim::new(Setup { enabled: false, ..setup() }, book(&spread()));
    sim.run(Duration::from_secs(120), false);
    assert!(sim.dials.is_empty() && sim.other.is_empty());
    // As does -maxconnections=0 (no outbound slots): not even feelers.
    let mut none = Sim::new(Setup { max_connections: 0, ..setup() }, book(&spread()));
    none.run(Duration::from_secs(600), false);
    assert!(none.dials.is_empty(), "{:?}", none.dials);
}

#[test]
fn few_connections_shrink_the_automatic_slots_as_in_core() {
    let mut sim = Sim::new(Setup { max_connections: 9, ..setup() }, book(&spread()));
    sim.run(Duration::from_secs(30), false);
    assert_eq!(sim.count(ConnectionType::OutboundFullRelay), 8);
    assert_eq!(sim.count(ConnectionType::BlockRelayOnly), 1);
}

#[test]
fn anchors_are_tried_first_as_block_relay_only() {
    let anchors: Vec<AddrEntry> =
        [v4(60, 1, 0, 1), v4(61, 1, 0, 1)].iter().map(|a| AddrEntry::from_socket(*a, full(), NOW)).collect();
    let mut sim = Sim::new(Setup { anchors: anchors.clone(), ..setup() }, book(&spread()));
    sim.run(Duration::from_secs(2), false);
    let first: Vec<_> = sim.dials.iter().take(2).cloned().collect();
    assert_eq!(first.len(), 2);
    for (i, (a, t)) in first.iter().enumerate() {
        assert_eq!(*t, ConnectionType::BlockRelayOnly);
        assert_eq!(*a, anchors[1 - i].socket_addr().unwrap_or(*a), "taken from the back, as Core");
    }
    assert!(sim.other.iter().any(|a| matches!(a, Action::Debug(l) if l.starts_with("Trying to make an anchor"))));
    sim.run(Duration::from_secs(30), false);
    assert_eq!(sim.count(ConnectionType::BlockRelayOnly), 2, "no extra block-relay peers beyond the anchors");
    assert_eq!(sim.count(ConnectionType::OutboundFullRelay), 8);
}

#[test]
fn onlynet_restricts_dials_to_that_network() {
    let mut addrs = spread();
    let v6: Vec<SocketAddr> = (0..12u16)
        .map(|i| SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x2a00, 0x1000 + i, 0, 0, 0, 0, 0, 1)), 8333))
        .collect();
    addrs.extend(&v6);
    let mut sim = Sim::new(Setup { reachable: vec![AddrNetwork::Ipv6], ..setup() }, book(&addrs));
    sim.run(Duration::from_secs(30), false);
    assert_eq!(sim.conns.len(), 10);
    assert!(sim.dials.iter().all(|(a, _)| a.is_ipv6()), "{:?}", sim.dials);
}

#[test]
fn seed_nodes_are_asked_when_the_book_is_empty_and_again_while_outbound_is_short() {
    let seeds = vec!["127.0.0.5:1".to_string(), "127.0.0.6:1".to_string()];
    let mut sim = Sim::new(Setup { seed_nodes: seeds, ..setup() }, book(&[]));
    sim.run(Duration::from_secs(1), false);
    let fetches = |s: &Sim| -> Vec<String> {
        s.other.iter().filter_map(|a| if let Action::AddrFetch(h) = a { Some(h.clone()) } else { None }).collect()
    };
    assert_eq!(fetches(&sim), ["127.0.0.6:1"], "the last one first, at once");
    assert!(sim.other.iter().any(|a| matches!(a, Action::Log(l) if l.starts_with("Empty addrman, adding seednode"))));
    sim.run(Duration::from_secs(12), false);
    assert_eq!(fetches(&sim), ["127.0.0.6:1", "127.0.0.5:1"], "another after 10 s without two outbound peers");
    sim.run(Duration::from_secs(60), false);
    assert_eq!(fetches(&sim).len(), 2, "each seed node is asked once");
}

#[test]
fn fixed_seeds_come_after_a_minute_or_at_once_without_other_sources() {
    let fixed: Vec<AddrEntry> = spread().iter().map(|a| AddrEntry::from_socket(*a, full(), 0)).collect();
    let added = |sim: &Sim| sim.other.iter().any(|a| matches!(a, Action::AddFixedSeeds(v) if v.len() == fixed.len()));

    let mut rng = StdRng::seed_from_u64(1);
    let mut sim = Sim::new(setup(), book(&[]));
    sim.planner = OutboundPlanner::new(setup(), fixed.clone(), sim.now, true, &mut rng);
    sim.run(Duration::from_secs(59), false);
    assert!(!added(&sim), "DNS seeding gets a minute first");
    sim.run(Duration::from_secs(2), false);
    assert!(added(&sim));
    assert!(sim.other.iter().any(|a| matches!(a, Action::Log(l) if l.contains("60 seconds have passed"))));

    let no_dns = Setup { dnsseed: false, ..setup() };
    let mut sim = Sim::new(no_dns.clone(), book(&[]));
    sim.planner = OutboundPlanner::new(no_dns, fixed.clone(), sim.now, true, &mut rng);
    sim.run(Duration::from_secs(1), false);
    assert!(added(&sim), "no DNS, no seed node, no addnode: at once");

    let off = Setup { dnsseed: false, fixed_seeds: false, ..setup() };
    let mut sim = Sim::new(off.clone(), book(&[]));
    sim.planner = OutboundPlanner::new(off, fixed.clone(), sim.now, true, &mut rng);
    sim.run(Duration::from_secs(120), false);
    assert!(!added(&sim), "--fixedseeds=0");
    assert_eq!(sim.planner.start_log(), ["Fixed seeds are disabled"]);
}

#[test]
fn core_bad_ports_and_service_rules() {
    assert!(is_bad_port(22) && is_bad_port(6697) && is_bad_port(27017) && !is_bad_port(8333));
    assert!(has_desirable_services(full(), 10_000));
    let limited = ServiceFlags::NETWORK_LIMITED | ServiceFlags::WITNESS;
    assert!(has_desirable_services(limited, 10) && !has_desirable_services(limited, 200));
    assert!(!has_desirable_services(ServiceFlags::NETWORK, 0), "witness is required");
    assert!(
        may_have_useful_address_db(ServiceFlags::NETWORK_LIMITED) && !may_have_useful_address_db(ServiceFlags::WITNESS)
    );
}

#[test]
fn an_extra_block_relay_peer_rotates_once_the_initial_sync_is_over() {
    let mut sim = Sim::new(setup(), book(&spread()));
    sim.run(Duration::from_secs(20), false);
    sim.run(Duration::from_secs(30 * 60), false);
    assert_eq!(sim.count(ConnectionType::BlockRelayOnly), 2, "none before the initial sync is over");
    sim.planner.start_extra_block_relay();
    sim.run(Duration::from_secs(60 * 60), false);
    // Nothing evicts here, so each extra one stays: about 12 in an hour (5-minute mean).
    let extra = sim.count(ConnectionType::BlockRelayOnly) - 2;
    assert!((3..=30).contains(&extra), "{extra} extra block-relay-only peers in an hour");
}

#[test]
fn the_youngest_extra_block_relay_peer_goes_unless_it_brought_a_block() {
    let p = |id, last: Option<i64>, secs| BlockRelayPeer { id, last_block_time: last, age: Duration::from_secs(secs) };
    assert_eq!(extra_block_relay_to_evict(&[p(1, None, 99), p(2, None, 99)], 2), None, "not extra");
    assert_eq!(extra_block_relay_to_evict(&[p(1, None, 99), p(5, None, 99), p(3, None, 99)], 2), Some(5));
    assert_eq!(
        extra_block_relay_to_evict(&[p(1, None, 99), p(5, Some(100), 99), p(3, Some(50), 99)], 2),
        Some(3),
        "the youngest brought a block more recently: the next youngest goes"
    );
    assert_eq!(extra_block_relay_to_evict(&[p(1, None, 99), p(5, Some(10), 99), p(3, Some(50), 99)], 2), Some(5));
    assert_eq!(extra_block_relay_to_evict(&[p(1, None, 99), p(3, None, 99), p(5, None, 29)], 2), None, "too young");
}

#[test]
fn a_stale_tip_opens_one_extra_full_relay_peer_and_its_eviction_ends_that() {
    let mut sim = Sim::new(setup(), book(&spread()));
    sim.run(Duration::from_secs(30), false);
    assert_eq!(sim.count(ConnectionType::OutboundFullRelay), 8);
    let stale_secs = 1800;
    // The first check (Core's m_stale_tip_check_time starts at 0) with a fresh tip: nothing.
    assert_eq!(sim.planner.check_stale_tip(sim.now, true, || None), None);
    assert!(!sim.planner.try_new_outbound());
    // Not asked again before STALE_CHECK_INTERVAL, even if the tip became stale meanwhile.
    let asked = std::cell::Cell::new(false);
    let early = sim.now + STALE_CHECK_INTERVAL;
    let stale = || {
        asked.set(true);
        Some(stale_secs)
    };
    assert_eq!(sim.planner.check_stale_tip(early, true, stale), None);
    assert!(!asked.get());
    // After it: the stale tip allows one full-relay peer over the eight slots, no more.
    let later = early + Duration::from_secs(1);
    let line = sim.planner.check_stale_tip(later, true, || Some(stale_secs)).expect("stale tip detected");
    assert!(line.contains("Potential stale tip detected") && line.contains("1800 seconds ago"), "{line}");
    assert!(sim.planner.try_new_outbound());
    let before = sim.dials.len();
    sim.run(Duration::from_secs(60), false);
    let extra: Vec<_> = sim.dials[before..].iter().filter(|d| d.1 == ConnectionType::OutboundFullRelay).collect();
    assert_eq!(extra.len(), 1, "one extra full-relay dial: {:?}", &sim.dials[before..]);
    assert_eq!(sim.count(ConnectionType::OutboundFullRelay), 9);
    // Evicting an extra peer withdraws the permission until the next stale tip.
    sim.planner.extra_outbound_evicted();
    assert!(!sim.planner.try_new_outbound());
    sim.conns.retain(|c| c.addr != extra[0].0);
    let before = sim.dials.len();
    sim.run(Duration::from_secs(60), false);
    assert!(!sim.dials[before..].iter().any(|d| d.1 == ConnectionType::OutboundFullRelay), "no new extra peer");
    // A check that finds the tip fresh again withdraws it too; with the network off it is not asked.
    let t = sim.now + STALE_CHECK_INTERVAL * 2;
    assert!(sim.planner.check_stale_tip(t, true, || Some(stale_secs)).is_some());
    assert!(sim.planner.check_stale_tip(t + STALE_CHECK_INTERVAL * 2, false, || panic!("not asked")).is_none());
    assert!(!sim.planner.try_new_outbound());
}

#[test]
fn the_extra_full_relay_peer_to_evict_is_the_least_recent_announcer() {
    let p = |id, last: Option<i64>| FullRelayPeer {
        id,
        last_announcement: last,
        age: Duration::from_secs(600),
        protected: false,
        network: NetKind::Ipv4,
    };
    let mut peers: Vec<FullRelayPeer> = (1..=8).map(|id| p(id, Some(1000 + id as i64))).collect();
    assert_eq!(extra_full_relay_to_evict(&peers, &[], 8), None, "no extra peer");
    // The extra (youngest) peer gave us the newest header: the oldest announcer goes instead.
    peers.push(p(9, Some(5000)));
    assert_eq!(extra_full_relay_to_evict(&peers, &[], 8), Some(1));
    // Never announced counts as oldest; among equals the younger goes.
    peers.push(p(10, None));
    peers.push(p(11, None));
    assert_eq!(extra_full_relay_to_evict(&peers, &[], 10), Some(11));
    // Protected peers are skipped.
    for q in peers.iter_mut().filter(|q| q.id >= 10) {
        q.protected = true;
    }
    assert_eq!(extra_full_relay_to_evict(&peers, &[], 10), Some(1));
    // The only full-relay peer on its network is kept (a manual peer there counts as another).
    peers[0].network = NetKind::Ipv6;
    assert_eq!(extra_full_relay_to_evict(&peers, &[], 10), Some(2));
    assert_eq!(extra_full_relay_to_evict(&peers, &[NetKind::Ipv6], 10), Some(1));
    // The chosen one must have been connected longer than MINIMUM_CONNECT_TIME; no other is tried.
    peers[0].age = MINIMUM_CONNECT_TIME;
    assert_eq!(extra_full_relay_to_evict(&peers, &[NetKind::Ipv6], 10), None);
}

#[test]
fn a_dial_asks_for_v2_exactly_when_the_address_advertises_p2p_v2() {
    // Core: automatic connections open with BIP324 v2 to addresses with NODE_P2P_V2.
    let v2_addr = v4(20, 1, 0, 1);
    let v1_addr = v4(21, 1, 0, 1);
    let mut man = AddrMan::new([7; 32], 11, NetGroupRule::Core);
    let source = from_ip(IpAddr::V4(Ipv4Addr::new(9, 9, 9, 9)));
    man.add(&[AddrEntry::from_socket(v2_addr, full() | ServiceFlags::P2P_V2, NOW - 3600)], &source, 0, NOW);
    man.add(&[AddrEntry::from_socket(v1_addr, full(), NOW - 3600)], &source, 0, NOW);
    let mut sim = Sim::new(setup(), man);
    let view =
        View { conns: &[], added: &[], refused: &|_| false, is_local: &|_| false, tip_depth: 0, network_active: true };
    let mut seen = std::collections::HashMap::new();
    let mut t = sim.now;
    for _ in 0..40 {
        for a in sim.planner.tick(t, NOW, &mut sim.man, &view, &mut sim.rng) {
            if let Action::Dial { addr, v2, .. } = a {
                seen.insert(addr, v2);
                sim.planner.dial_done(addr);
            }
        }
        t += TICK;
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.get(&v2_addr), Some(&true), "{seen:?}");
    assert_eq!(seen.get(&v1_addr), Some(&false), "{seen:?}");
}
