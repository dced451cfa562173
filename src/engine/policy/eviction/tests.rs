//! The cases of Core's `net_peer_eviction_tests.cpp`, and the edges of the selection.

use std::collections::HashSet;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use super::*;

const NETWORKS: [PeerNetwork; 6] = [
    PeerNetwork::Unroutable,
    PeerNetwork::Ipv4,
    PeerNetwork::Ipv6,
    PeerNetwork::Onion,
    PeerNetwork::I2p,
    PeerNetwork::Cjdns,
];

/// `n` inbound candidates with ids `0..n` and random attributes in Core's ranges
/// (`GetRandomNodeEvictionCandidates`).
fn random_candidates(n: u64, rng: &mut StdRng) -> Vec<EvictionCandidate> {
    (0..n)
        .map(|id| EvictionCandidate {
            id,
            connected_at: Duration::from_secs(rng.random_range(0..100)),
            min_ping: Some(Duration::from_micros(rng.random_range(0..100))),
            last_block_time: rng.random_range(0..100),
            last_tx_time: rng.random_range(0..100),
            relevant_services: rng.random(),
            relay_txs: rng.random(),
            bloom_filter: rng.random(),
            keyed_net_group: rng.random_range(0..100),
            prefer_evict: rng.random(),
            is_local: rng.random(),
            network: NETWORKS[rng.random_range(0..NETWORKS.len())],
            noban: false,
            conn_type: ConnectionType::Inbound,
        })
        .collect()
}

/// A quiet inbound IPv4 candidate: no ping yet, nothing relayed.
fn quiet(id: u64, connected_secs: u64, keyed_net_group: u64) -> EvictionCandidate {
    EvictionCandidate {
        id,
        connected_at: Duration::from_secs(connected_secs),
        min_ping: None,
        last_block_time: 0,
        last_tx_time: 0,
        relevant_services: true,
        relay_txs: true,
        bloom_filter: false,
        keyed_net_group,
        prefer_evict: false,
        is_local: false,
        network: PeerNetwork::Ipv4,
        noban: false,
        conn_type: ConnectionType::Inbound,
    }
}

/// 20 candidates (ids 1000..) that take every fixed protection place (netgroup, ping, tx, block), and `k`
/// old ones (ids 2000.., connected at 0..k seconds) that take the uptime places when `k` younger
/// candidates are added: what remains for the final choice is exactly the added ones.
fn protected_padding(k: u64) -> Vec<EvictionCandidate> {
    let mut v = Vec::new();
    for i in 0..20 {
        let mut c = quiet(1000 + i, 500, 5000 + i);
        match i {
            0..4 => c.keyed_net_group = 1_000_000 + i,
            4..12 => c.min_ping = Some(Duration::from_micros(i)),
            12..16 => c.last_tx_time = 1000 + i as i64,
            _ => c.last_block_time = 1000 + i as i64,
        }
        v.push(c);
    }
    v.extend((0..k).map(|i| quiet(2000 + i, i, 6000 + i)));
    v
}

/// How the connection times of a protection case are set.
#[derive(Clone, Copy)]
enum Uptime {
    /// Left random.
    Random,
    /// Peer `id` connected at `id` seconds: lower ids have the longest uptime.
    ById,
    /// Peer `id` connected at `n - id` seconds: higher ids have the longest uptime.
    Reversed,
}

/// One `IsProtected` check of Core's `peer_protection_test`.
struct Case {
    spec: &'static str,
    n: u64,
    uptime: Uptime,
    /// The network of the peers not listed in `onion`, `i2p` or `cjdns`.
    others: PeerNetwork,
    local: Vec<u64>,
    onion: Vec<u64>,
    i2p: Vec<u64>,
    cjdns: Vec<u64>,
    protected: Vec<u64>,
    unprotected: Vec<u64>,
}

/// Ids written as `1,4-6` (4-6 inclusive).
fn ids(list: &str) -> Vec<u64> {
    let num = |s: &str| s.parse::<u64>().unwrap();
    list.split(',')
        .filter(|s| !s.is_empty())
        .flat_map(|s| match s.split_once('-') {
            Some((a, b)) => num(a)..=num(b),
            None => num(s)..=num(s),
        })
        .collect()
}

/// A case from `spec`: the number of peers, then any of `ipv6` (the others' network, IPv4 if absent),
/// `random` or `reversed` (the uptime, [`Uptime::ById`] if absent), and `local=`, `onion=`, `i2p=`,
/// `cjdns=` with ids; then the ids expected protected and unprotected.
fn case(spec: &'static str, protected: &str, unprotected: &str) -> Case {
    let mut words = spec.split(' ');
    let n = words.next().unwrap().parse().unwrap();
    let mut c = Case {
        spec,
        n,
        uptime: Uptime::ById,
        others: PeerNetwork::Ipv4,
        local: Vec::new(),
        onion: Vec::new(),
        i2p: Vec::new(),
        cjdns: Vec::new(),
        protected: ids(protected),
        unprotected: ids(unprotected),
    };
    for word in words {
        match word.split_once('=') {
            Some(("local", list)) => c.local = ids(list),
            Some(("onion", list)) => c.onion = ids(list),
            Some(("i2p", list)) => c.i2p = ids(list),
            Some(("cjdns", list)) => c.cjdns = ids(list),
            None if word == "ipv6" => c.others = PeerNetwork::Ipv6,
            None if word == "random" => c.uptime = Uptime::Random,
            None if word == "reversed" => c.uptime = Uptime::Reversed,
            _ => panic!("bad case word {word:?}"),
        }
    }
    c
}

/// Builds the case's candidates over random ones, shuffles them, protects by ratio, and checks that half
/// were protected, none of `protected` remains and all of `unprotected` do.
fn check(case: &Case, rng: &mut StdRng) {
    let mut candidates = random_candidates(case.n, rng);
    for c in &mut candidates {
        match case.uptime {
            Uptime::Random => {}
            Uptime::ById => c.connected_at = Duration::from_secs(c.id),
            Uptime::Reversed => c.connected_at = Duration::from_secs(case.n - c.id),
        }
        c.is_local = case.local.contains(&c.id);
        c.network = if case.onion.contains(&c.id) {
            PeerNetwork::Onion
        } else if case.i2p.contains(&c.id) {
            PeerNetwork::I2p
        } else if case.cjdns.contains(&c.id) {
            PeerNetwork::Cjdns
        } else {
            case.others
        };
    }
    candidates.shuffle(rng);
    protect_eviction_candidates_by_ratio(&mut candidates);

    let left: HashSet<u64> = candidates.iter().map(|c| c.id).collect();
    let n = usize::try_from(case.n).unwrap();
    assert_eq!(left.len(), n - n / 2, "{}: left {left:?}", case.spec);
    for id in &case.protected {
        assert!(!left.contains(id), "{}: {id} should be protected, left {left:?}", case.spec);
    }
    for id in &case.unprotected {
        assert!(left.contains(id), "{}: {id} should not be protected, left {left:?}", case.spec);
    }
}

/// Each case under several shuffles (Core runs each once, from one seeded random context).
fn check_all(cases: &[Case]) {
    for seed in 0..8 {
        let mut rng = StdRng::seed_from_u64(seed);
        for case in cases {
            check(case, &mut rng);
        }
    }
}

#[test]
fn peer_protection_uptime() {
    check_all(&[case("12", "0-5", "6-11"), case("12 ipv6 reversed", "6-11", "0-5")]);
}

#[test]
fn peer_protection_one_disadvantaged_network() {
    check_all(&[
        case("12 random onion=3,8,9", "3,8,9", ""),
        case("12 ipv6 onion=3,8-11", "0-3,8,9", "4-7,10,11"),
        case("12 random local=1,9,11", "1,9,11", ""),
        case("12 ipv6 local=7-11", "0-2,7-9", "3-6,10,11"),
        case("12 random i2p=2,7,10", "2,7,10", ""),
        case("12 ipv6 i2p=4,9-11", "0-2,4,9,10", "3,5-8,11"),
        case("12 random cjdns=2,7,10", "2,7,10", ""),
        case("12 ipv6 cjdns=4,9-11", "0-2,4,9,10", "3,5-8,11"),
    ]);
}

#[test]
fn peer_protection_two_disadvantaged_networks() {
    check_all(&[
        // Core's case names a localhost peer 4 among ids 0..4, so only the onion peer 3 is disadvantaged.
        case("4 local=4 onion=3", "0,4", "1,2"),
        // Equal counts: localhost comes before onion.
        case("7 local=6 onion=5", "0,1,6", "2-5"),
        case("8 local=6 onion=5", "0,1,5,6", "2-4,7"),
        case("12 ipv6 local=6,9,11 onion=7,8,10", "0-2,6,7,9", "3-5,8,10,11"),
        case("12 local=5-8 onion=10", "0-2,5,6,10", "3,4,7-9,11"),
        case("16 ipv6 local=6,9,11,12 onion=8,10", "0-3,6,8-10", "4,5,7,11-15"),
        // The onion network's unused place goes to localhost, and the other way round.
        case("16 local=11-15 onion=10", "0-3,10-13", "4-9,14,15"),
        case("16 ipv6 local=15 onion=7-10", "0-3,7-9,15", "5,6,10-14"),
        // Onion has fewer candidates and goes first.
        case("12 onion=8,10 i2p=6,9,11,12", "0-2,6,8,10", "3-5,7,9,11"),
    ]);
}

#[test]
fn peer_protection_three_disadvantaged_networks() {
    check_all(&[
        // Equal counts: I2P comes before localhost and onion.
        case("4 ipv6 local=2 i2p=3 onion=1", "0,3", "1,2"),
        case("7 ipv6 local=4 i2p=6 onion=5", "0,1,6", "2-5"),
        case("8 ipv6 local=6 i2p=5 onion=4", "0,1,5,6", "2-4,7"),
        case("16 local=6,12-15 i2p=7,11 onion=9,10", "0-3,6,7,9,11", "4,5,8,10,12-15"),
        case("24 ipv6 local=12 i2p=15-22 onion=23", "0-5,12,15-18,23", "6-11,13,14,19-22"),
        case("24 local=15 i2p=12,14,17 onion=18-23", "0-5,12,14,15,17-19", "6-11,13,16,20-23"),
        case("24 ipv6 local=13 i2p=17-23 onion=12,14-16", "0-5,12-15,17,18", "6-11,16,19-23"),
        case("24 local=16-23 cjdns=11-14 onion=7-9", "0-5,7,8,11,12,16,17", "6,9,10,13-15,18-23"),
    ]);
}

#[test]
fn peer_protection_four_disadvantaged_networks() {
    check_all(&[
        // Equal counts: CJDNS comes first.
        case("5 ipv6 local=3 cjdns=4 i2p=1 onion=2", "0,4", "1-3"),
        case("7 local=4 cjdns=6 i2p=5 onion=3", "0,1,6", "2-5"),
        // Peer 3 is both localhost and onion.
        case("8 ipv6 local=3 cjdns=5 i2p=6 onion=3", "0,1,5,6", "2-4,7"),
        case("16 local=6-15 cjdns=11,15 i2p=10,14 onion=8,9", "0-3,6,8,10,11", "4,5,7,9,12-15"),
        case("24 ipv6 local=13 cjdns=18-23 i2p=17 onion=12,14-16", "0-5,12-14,17-19", "6-11,15,16,20-23"),
    ]);
}

/// Core's `IsEvicted`: whether, after a shuffle, the chosen peer is one of `ids`.
fn is_evicted(mut candidates: Vec<EvictionCandidate>, ids: &[u64], rng: &mut StdRng) -> bool {
    candidates.shuffle(rng);
    select_node_to_evict(candidates).is_some_and(|id| ids.contains(&id))
}

/// `is_evicted` over `n` random candidates changed by `setup`.
fn is_evicted_with(n: u64, setup: impl Fn(&mut EvictionCandidate), ids: &[u64], rng: &mut StdRng) -> bool {
    let mut candidates = random_candidates(n, rng);
    candidates.iter_mut().for_each(setup);
    is_evicted(candidates, ids, rng)
}

#[test]
fn peer_eviction_test() {
    let mut rng = StdRng::seed_from_u64(0);
    let first = |k: u64| (0..k).collect::<Vec<u64>>();
    for n in 0..200u64 {
        let ago = |id: u64| i64::try_from(n - id).unwrap();
        // The 4 highest keyed network groups.
        assert!(!is_evicted_with(n, |c| c.keyed_net_group = n - c.id, &first(4), &mut rng), "n={n}");
        // The 8 lowest pings.
        assert!(!is_evicted_with(n, |c| c.min_ping = Some(Duration::from_micros(c.id)), &first(8), &mut rng), "n={n}");
        // The 4 latest novel transactions.
        assert!(!is_evicted_with(n, |c| c.last_tx_time = ago(c.id), &first(4), &mut rng), "n={n}");
        // Up to 8 block-relay-only peers with the latest novel blocks.
        let block_relay_only = |c: &mut EvictionCandidate| {
            c.last_block_time = ago(c.id);
            if c.id <= 7 {
                c.relay_txs = false;
                c.relevant_services = true;
            }
        };
        assert!(!is_evicted_with(n, block_relay_only, &first(8), &mut rng), "n={n}");
        // The 4 latest novel blocks.
        assert!(!is_evicted_with(n, |c| c.last_block_time = ago(c.id), &first(4), &mut rng), "n={n}");
        // Both block protections together.
        assert!(!is_evicted_with(n, block_relay_only, &first(12), &mut rng), "n={n}");
        // All of the above but block-relay-only: 4 + 8 + 4 + 4.
        let all = |c: &mut EvictionCandidate| {
            c.keyed_net_group = n - c.id;
            c.min_ping = Some(Duration::from_micros(c.id));
            c.last_tx_time = ago(c.id);
            c.last_block_time = ago(c.id);
        };
        assert!(!is_evicted_with(n, all, &first(20), &mut rng), "n={n}");

        // At most 4 + 8 + 4 + 8 + 4 are protected before the ratio, which leaves one of 29.
        if n >= 29 {
            assert!(select_node_to_evict(random_candidates(n, &mut rng)).is_some(), "n={n}");
        }
        // At least 4 + 8 + 4 + 4 are protected.
        if n <= 20 {
            assert!(select_node_to_evict(random_candidates(n, &mut rng)).is_none(), "n={n}");
        }
    }
}

#[test]
fn no_candidates_no_eviction() {
    assert_eq!(select_node_to_evict(Vec::new()), None);
    let mut v = Vec::new();
    protect_eviction_candidates_by_ratio(&mut v);
    assert!(v.is_empty());
}

#[test]
fn all_protected_no_eviction() {
    let mut rng = StdRng::seed_from_u64(7);
    for n in 1..=20 {
        assert_eq!(select_node_to_evict(random_candidates(n, &mut rng)), None, "n={n}");
    }
    // The padding alone: 20 fixed places and the old peers by uptime, with one left over.
    let padding = protected_padding(2);
    assert_eq!(select_node_to_evict(padding[..20].to_vec()), None);
    assert_eq!(select_node_to_evict(padding), Some(2001));
}

#[test]
fn noban_and_outbound_never_evicted() {
    let mut rng = StdRng::seed_from_u64(3);
    let outbound = [
        ConnectionType::Manual,
        ConnectionType::OutboundFullRelay,
        ConnectionType::BlockRelayOnly,
        ConnectionType::Feeler,
        ConnectionType::AddrFetch,
    ];
    for round in 0..200 {
        let mut candidates = random_candidates(60, &mut rng);
        for c in &mut candidates {
            match rng.random_range(0..3) {
                0 => c.noban = true,
                1 => c.conn_type = outbound[rng.random_range(0..outbound.len())],
                _ => {}
            }
        }
        let excluded: Vec<u64> =
            candidates.iter().filter(|c| c.noban || !c.conn_type.is_inbound()).map(|c| c.id).collect();
        if let Some(id) = select_node_to_evict(candidates.clone()) {
            assert!(!excluded.contains(&id), "round {round}: evicted {id}");
        }
        // With only excluded peers, no one.
        candidates.retain(|c| excluded.contains(&c.id));
        assert_eq!(select_node_to_evict(candidates), None, "round {round}");
    }
    // Enough peers to evict one, but every one noban or outbound.
    let mut candidates: Vec<_> = (0..100).map(|id| quiet(id, id, id)).collect();
    for c in &mut candidates {
        if c.id % 2 == 0 {
            c.noban = true;
        } else {
            c.conn_type = ConnectionType::OutboundFullRelay;
        }
    }
    assert_eq!(select_node_to_evict(candidates), None);
}

/// The candidate with id `id`.
fn by_id(candidates: &mut [EvictionCandidate], id: u64) -> &mut EvictionCandidate {
    candidates.iter_mut().find(|c| c.id == id).unwrap()
}

#[test]
fn prefer_evict_considered_first() {
    // Unprotected: 5 and 6 in group 1, 7 in group 2; 7 alone would not be chosen.
    let mut candidates = protected_padding(3);
    candidates.extend([quiet(5, 100, 1), quiet(6, 101, 1), quiet(7, 90, 2)]);
    assert_eq!(select_node_to_evict(candidates.clone()), Some(6));
    by_id(&mut candidates, 7).prefer_evict = true;
    assert_eq!(select_node_to_evict(candidates.clone()), Some(7));

    // Among several preferred, the usual choice: the bigger group's youngest.
    by_id(&mut candidates, 5).prefer_evict = true;
    by_id(&mut candidates, 6).prefer_evict = true;
    assert_eq!(select_node_to_evict(candidates.clone()), Some(6));

    // A preferred peer that is protected (here by the lowest ping) stays, and the rest are chosen from.
    for c in &mut candidates {
        c.prefer_evict = c.id == 7;
    }
    by_id(&mut candidates, 7).min_ping = Some(Duration::ZERO);
    assert_eq!(select_node_to_evict(candidates), Some(6));
}

#[test]
fn block_relay_only_needs_relevant_services() {
    // Peer 9 relays no transactions and sent a block, older than the 4 latest: only the block-relay-only
    // step could protect it, and only with relevant services. Otherwise it is left with old peer 2000.
    for (relevant_services, expected) in [(true, 2000), (false, 9)] {
        let mut candidates = protected_padding(1);
        let mut c = quiet(9, 100, 9);
        c.relay_txs = false;
        c.relevant_services = relevant_services;
        c.last_block_time = 500;
        candidates.push(c);
        assert_eq!(select_node_to_evict(candidates), Some(expected), "relevant_services={relevant_services}");
    }
}

#[test]
fn biggest_netgroup_youngest_member() {
    // Group 1 has 3, group 2 has 2 with the youngest overall: group 1's youngest goes.
    let mut candidates = protected_padding(5);
    candidates.extend([quiet(1, 100, 1), quiet(2, 102, 1), quiet(3, 101, 1), quiet(4, 110, 2), quiet(5, 111, 2)]);
    assert_eq!(select_node_to_evict(candidates), Some(2));

    // Equal sizes: the group whose youngest member connected last.
    let mut candidates = protected_padding(4);
    candidates.extend([quiet(1, 100, 1), quiet(2, 101, 1), quiet(3, 120, 2), quiet(4, 60, 2)]);
    assert_eq!(select_node_to_evict(candidates), Some(3));

    // All alone in their groups: the youngest.
    let mut candidates = protected_padding(3);
    candidates.extend([quiet(1, 100, 1), quiet(2, 130, 2), quiet(3, 120, 3)]);
    assert_eq!(select_node_to_evict(candidates), Some(2));
}

#[test]
fn tie_breaks_follow_core_comparators() {
    // Equal tx times: a tx-relaying peer is protected before one that is not, a peer without a bloom
    // filter before one with, and then the older connection.
    let mut candidates: Vec<_> = (0..8).map(|id| quiet(id, 50 + id, id)).collect();
    candidates[0].relay_txs = false;
    candidates[1].bloom_filter = true;
    candidates[2].connected_at = Duration::from_secs(1);
    fn ids<K: Ord>(key: fn(&EvictionCandidate) -> K, v: &[EvictionCandidate]) -> Vec<u64> {
        let mut v = v.to_vec();
        v.sort_by_key(key);
        v.iter().map(|c| c.id).collect()
    }
    assert_eq!(ids(tx_time_key, &candidates), [0, 1, 7, 6, 5, 4, 3, 2]);

    // Equal block times: peers without relevant services first, then younger connections; for the
    // block-relay-only protection, transaction-relaying peers before all others.
    candidates[3].relevant_services = false;
    assert_eq!(ids(block_time_key, &candidates), [3, 7, 6, 5, 4, 1, 0, 2]);
    assert_eq!(ids(block_relay_only_key, &candidates), [3, 7, 6, 5, 4, 1, 2, 0]);

    // No ping measured sorts as the slowest.
    assert!(ping_key(&quiet(0, 0, 0)) > Duration::from_secs(3600));
}

#[test]
fn deterministic_with_seeded_rng() {
    let run = |seed: u64| {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..50).map(|_| select_node_to_evict(random_candidates(40, &mut rng))).collect::<Vec<_>>()
    };
    assert_eq!(run(11), run(11));
    assert!(run(11).iter().all(Option::is_some));

    // With no ties in any criterion the answer does not depend on the input order.
    let mut rng = StdRng::seed_from_u64(12);
    for _ in 0..20 {
        let n = 64u64;
        let mut perms: Vec<Vec<u64>> = (0..5).map(|_| (0..n).collect()).collect();
        perms.iter_mut().for_each(|p| p.shuffle(&mut rng));
        let mut candidates = random_candidates(n, &mut rng);
        for (i, c) in candidates.iter_mut().enumerate() {
            c.connected_at = Duration::from_secs(perms[0][i]);
            c.min_ping = Some(Duration::from_micros(perms[1][i]));
            c.last_tx_time = i64::try_from(perms[2][i]).unwrap();
            c.last_block_time = i64::try_from(perms[3][i]).unwrap();
            // The 4 highest groups are distinct; the others share 8 groups.
            c.keyed_net_group = if perms[4][i] >= n - 4 { perms[4][i] } else { perms[4][i] % 8 };
        }
        let expected = select_node_to_evict(candidates.clone());
        assert!(expected.is_some());
        for _ in 0..10 {
            candidates.shuffle(&mut rng);
            assert_eq!(select_node_to_evict(candidates.clone()), expected);
        }
    }
}

#[test]
fn net_kind_maps_to_peer_network() {
    assert_eq!(PeerNetwork::from(NetKind::Ipv4), PeerNetwork::Ipv4);
    assert_eq!(PeerNetwork::from(NetKind::Ipv6), PeerNetwork::Ipv6);
    assert_eq!(PeerNetwork::from(NetKind::Unroutable), PeerNetwork::Unroutable);
}
