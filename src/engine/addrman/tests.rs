//! Unit tests of the address manager (btcloop's own cases) and the helpers the other test
//! modules share. Deterministic: fixed keys, fixed seeds, a fixed clock.

use std::collections::BTreeSet;
use std::net::IpAddr;

use bitcoin::hashes::{Hash, sha256d};
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::AddrV2;

use super::table::{bucket_position, new_bucket, tried_bucket};
use super::*;

/// Core's default `CAddress::nTime` (`TIME_INIT`), which test addresses without a time carry.
pub(super) const TIME_INIT: i64 = 100_000_000;
/// The fixed "now" of these tests.
pub(super) const NOW: i64 = 1_700_000_000;
/// A fixed seed.
pub(super) const SEED: u64 = 7;

/// Core's deterministic key, `uint256{1}`.
pub(super) fn det_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    k[0] = 1;
    k
}

/// Core's test keys `(HashWriter{} << n).GetHash()`.
pub(super) fn hash_key(n: i32) -> [u8; 32] {
    sha256d::Hash::hash(&n.to_le_bytes()).to_byte_array()
}

/// Core's deterministic address manager (`AddrMan(EMPTY_NETGROUPMAN, DETERMINISTIC, ...)`).
pub(super) fn det() -> AddrMan {
    AddrMan::new(det_key(), SEED, NetGroupRule::Core)
}

pub(super) fn ip(s: &str) -> AddrV2 {
    match s.parse::<IpAddr>().unwrap() {
        IpAddr::V4(v4) => AddrV2::Ipv4(v4),
        IpAddr::V6(v6) => canonical(&AddrV2::Ipv6(v6)),
    }
}

/// An entry like Core's `CAddress(ResolveService(s, port), NODE_NONE)` with time `time`.
pub(super) fn at(s: &str, port: u16, time: i64) -> AddrEntry {
    AddrEntry::new(ip(s), port, ServiceFlags::NONE, time)
}

/// An entry with Core's default time.
pub(super) fn svc(s: &str, port: u16) -> AddrEntry {
    at(s, port, TIME_INIT)
}

pub(super) fn add1(man: &mut AddrMan, e: &AddrEntry, source: &str) -> bool {
    man.add(std::slice::from_ref(e), &ip(source), 0, NOW) == 1
}

pub(super) fn good(man: &mut AddrMan, e: &AddrEntry) -> bool {
    man.good(&e.addr, e.port, NOW)
}

/// Adds `250.1.1.{i}` for each `i` (source 252.2.2.2) and moves it to the tried table,
/// asserting both succeed: Core's set-up for tried collisions (the 36th collides with the 19th).
pub(super) fn fill_tried(man: &mut AddrMan, range: std::ops::Range<u32>) {
    for i in range {
        let e = svc(&format!("250.1.1.{i}"), 0);
        assert!(add1(man, &e, "252.2.2.2") && good(man, &e), "250.1.1.{i}");
    }
}

pub(super) fn selected(man: &mut AddrMan, new_only: bool) -> Option<AddrEntry> {
    man.select(new_only, None, NOW).map(|(e, _)| e)
}

pub(super) fn collision(man: &mut AddrMan) -> Option<(AddrV2, u16)> {
    man.select_tried_collision().map(|(e, _)| (e.addr, e.port))
}

pub(super) fn tb(key: &[u8; 32], e: &AddrEntry) -> usize {
    tried_bucket(key, &e.addr, e.port, NetGroupRule::Core)
}

pub(super) fn nb(key: &[u8; 32], e: &AddrEntry, source: &str) -> usize {
    new_bucket(key, &e.addr, &ip(source), NetGroupRule::Core)
}

#[test]
fn placement_is_stable_and_keyed() {
    let key = det_key();
    let e = svc("1.2.3.4", 8333);
    for _ in 0..3 {
        assert_eq!(nb(&key, &e, "5.6.7.8"), nb(&key, &e, "5.6.7.8"));
        let b = nb(&key, &e, "5.6.7.8");
        assert_eq!(bucket_position(&key, true, b, &e.addr, e.port), bucket_position(&key, true, b, &e.addr, e.port));
    }
    // Same group of the source: same bucket.
    assert_eq!(nb(&key, &e, "5.6.7.8"), nb(&key, &e, "5.6.200.1"));
    // The new and tried positions of one bucket index differ by table.
    let positions: BTreeSet<bool> = (0..64)
        .map(|b| bucket_position(&key, true, b, &e.addr, e.port) == bucket_position(&key, false, b, &e.addr, e.port))
        .collect();
    assert!(positions.contains(&false));
    // Through the manager: the same address from the same source is in one place.
    let mut man = det();
    assert!(add1(&mut man, &e, "5.6.7.8"));
    let pos = man.find_entry(&e.addr, e.port).unwrap();
    assert_eq!(pos.bucket, nb(&key, &e, "5.6.7.8"));
    assert_eq!(pos.position, bucket_position(&key, true, pos.bucket, &e.addr, e.port));
    assert_eq!(pos.multiplicity, 1);
    man.check().unwrap();
}

#[test]
fn collision_resolved_after_test_window() {
    let mut man = det();
    fill_tried(&mut man, 1..36);
    let e36 = svc("250.1.1.36", 0);
    assert!(add1(&mut man, &e36, "252.2.2.2"));
    // 19 last connected 5 hours ago and was not tried since (good() on a tried entry only
    // updates its statistics); 36 succeeds now.
    assert!(!man.good(&ip("250.1.1.19"), 0, NOW - 5 * 3600));
    assert!(!man.good(&e36.addr, 0, NOW));
    assert_eq!(collision(&mut man), Some((ip("250.1.1.19"), 0)));
    // Within the test window: wait for the feeler.
    man.resolve_collisions(NOW + ADDRMAN_TEST_WINDOW);
    assert!(collision(&mut man).is_some());
    assert!(!man.find_entry(&e36.addr, 0).unwrap().tried);
    // After it: evict anyway.
    man.resolve_collisions(NOW + ADDRMAN_TEST_WINDOW + 1);
    assert!(collision(&mut man).is_none());
    assert!(man.find_entry(&e36.addr, 0).unwrap().tried);
    assert!(!man.find_entry(&ip("250.1.1.19"), 0).unwrap().tried, "19 went back to new");
    man.check().unwrap();
}

#[test]
fn tried_collision_set_is_bounded() {
    let mut man = det();
    // Fill tried with one /16 from one source: its 8 tried buckets fill up.
    let mut colliding = 0;
    for i in 0..4000u32 {
        let e = svc(&format!("250.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, i % 256), 0);
        if add1(&mut man, &e, &format!("251.{}.1.1", i % 256)) && !good(&mut man, &e) {
            colliding += 1;
        }
    }
    assert!(colliding > ADDRMAN_SET_TRIED_COLLISION_SIZE);
    assert!(man.tried_collisions.len() <= ADDRMAN_SET_TRIED_COLLISION_SIZE);
    man.check().unwrap();
}

#[test]
fn add_rejects_what_core_rejects() {
    let mut man = det();
    let rejected = [
        ip("10.0.0.1"),
        ip("127.0.0.1"),
        ip("192.168.1.1"),
        ip("0.0.0.0"),
        ip("255.255.255.255"),
        ip("::1"),
        ip("fe80::1"),
        ip("2001:db8::1"),
        ip("fc00::1"),
        AddrV2::TorV2([1; 10]),
        AddrV2::Unknown(42, vec![1, 2, 3, 4]),
        AddrV2::Cjdns("fd00::1".parse().unwrap()),
        AddrV2::Ipv6("fd87:d87e:eb43::1".parse().unwrap()),
    ];
    for a in rejected {
        let e = AddrEntry::new(a.clone(), 8333, ServiceFlags::NONE, NOW);
        assert_eq!(man.add(&[e], &ip("1.2.3.4"), 0, NOW), 0, "{a:?}");
    }
    assert_eq!(man.size(None, None), 0);
}

#[test]
fn bip155_networks_are_stored_and_returned() {
    let mut man = det();
    let entries = [
        AddrEntry::new(AddrV2::TorV3([0x11; 32]), 8333, ServiceFlags::NETWORK, NOW),
        AddrEntry::new(AddrV2::I2p([0x22; 32]), 0, ServiceFlags::NETWORK, NOW),
        AddrEntry::new(AddrV2::Cjdns("fc00::1234".parse().unwrap()), 8333, ServiceFlags::NETWORK, NOW),
        at("2a01:4f8::1", 8333, NOW),
        at("1.2.3.4", 8333, NOW),
    ];
    assert_eq!(man.add(&entries, &ip("5.6.7.8"), 0, NOW), 5);
    let got: BTreeSet<String> = man.get_addr(0, 0, None, true, NOW).iter().map(|e| format!("{e:?}")).collect();
    let want: BTreeSet<String> = entries.iter().map(|e| format!("{e:?}")).collect();
    assert_eq!(got, want);
    for (net, n) in [(AddrNetwork::Onion, 1), (AddrNetwork::I2p, 1), (AddrNetwork::Cjdns, 1), (AddrNetwork::Ipv6, 1)] {
        assert_eq!(man.size(Some(net), None), n);
        assert_eq!(man.get_addr(0, 0, Some(net), true, NOW).len(), 1);
        assert_eq!(
            man.select(false, Some(&[net]), NOW).unwrap().0.addr,
            entries.iter().find(|e| network(&e.addr, NetGroupRule::Core) == net).unwrap().addr
        );
    }
    man.check().unwrap();
}

#[test]
fn ipv4_mapped_addresses_are_ipv4() {
    let mut man = det();
    let mapped = AddrV2::Ipv6("::ffff:1.2.3.4".parse().unwrap());
    let e = AddrEntry::new(mapped.clone(), 8333, ServiceFlags::NONE, NOW);
    assert_eq!(man.add(&[e], &ip("5.6.7.8"), 0, NOW), 1);
    assert!(man.find_entry(&ip("1.2.3.4"), 8333).is_some());
    assert!(man.good(&mapped, 8333, NOW));
    assert_eq!(man.get_addr(0, 0, None, true, NOW)[0].addr, ip("1.2.3.4"));
    assert_eq!(man.size(Some(AddrNetwork::Ipv4), Some(false)), 1);
    // Teredo: an IPv6 network, but an IPv4 class for get_addr's filter (as Core).
    let teredo = at("2001:0:9999:9999:9999:9999:fefd:fcfb", 8333, NOW);
    assert_eq!(man.add(&[teredo], &ip("5.6.7.8"), 0, NOW), 1);
    assert_eq!(man.size(Some(AddrNetwork::Ipv6), None), 1);
    assert_eq!(man.get_addr(0, 0, Some(AddrNetwork::Ipv4), true, NOW).len(), 2);
}

#[test]
fn good_moves_new_to_tried() {
    let mut man = det();
    let e = at("8.8.8.8", 8333, NOW);
    assert!(!good(&mut man, &e), "unknown");
    assert!(add1(&mut man, &e, "1.1.1.1"));
    man.attempt(&e.addr, e.port, true, NOW - 100);
    assert_eq!(man.info(&e.addr, e.port).unwrap().attempts, 1);
    assert_eq!(man.size(None, Some(true)), 1);
    assert!(good(&mut man, &e));
    let pos = man.find_entry(&e.addr, e.port).unwrap();
    assert!(pos.tried && pos.multiplicity == 1);
    assert_eq!(pos.bucket, tb(&det_key(), &e));
    assert_eq!((man.size(None, Some(true)), man.size(None, Some(false))), (0, 1));
    let info = man.info(&e.addr, e.port).unwrap();
    assert_eq!((info.last_success, info.last_try, info.attempts), (NOW, NOW, 0));
    assert!(!good(&mut man, &e), "already tried");
    assert!(man.entries(false).is_empty());
    assert_eq!(man.entries(true).len(), 1);
    man.check().unwrap();
}

#[test]
fn attempt_counts_one_failure_per_good() {
    let mut man = det();
    let e = at("8.8.8.8", 8333, NOW);
    assert!(add1(&mut man, &e, "1.1.1.1"));
    man.attempt(&e.addr, e.port, true, NOW);
    man.attempt(&e.addr, e.port, true, NOW + 1);
    assert_eq!(man.info(&e.addr, e.port).unwrap().attempts, 1, "no good() since the last counted failure");
    man.good(&ip("9.9.9.9"), 1, NOW + 2); // any good() re-arms counting
    man.attempt(&e.addr, e.port, true, NOW + 3);
    man.attempt(&e.addr, e.port, false, NOW + 4);
    let info = man.info(&e.addr, e.port).unwrap();
    assert_eq!((info.attempts, info.last_try), (2, NOW + 4));
}

#[test]
fn is_terrible_cases() {
    let base = EntryInfo {
        entry: at("8.8.8.8", 8333, NOW - 3600),
        source: ip("1.1.1.1"),
        last_try: 0,
        last_count_attempt: 0,
        last_success: 0,
        attempts: 0,
    };
    assert!(!base.is_terrible(NOW));
    let with = |f: &dyn Fn(&mut EntryInfo)| {
        let mut i = base.clone();
        f(&mut i);
        i
    };
    // From the future (more than 10 minutes).
    assert!(with(&|i| i.entry.time = NOW + 601).is_terrible(NOW));
    assert!(!with(&|i| i.entry.time = NOW + 600).is_terrible(NOW));
    // Older than the horizon.
    assert!(with(&|i| i.entry.time = NOW - ADDRMAN_HORIZON - 1).is_terrible(NOW));
    assert!(!with(&|i| i.entry.time = NOW - ADDRMAN_HORIZON).is_terrible(NOW));
    // Never a success and 3 attempts.
    assert!(with(&|i| i.attempts = ADDRMAN_RETRIES).is_terrible(NOW));
    assert!(!with(&|i| i.attempts = ADDRMAN_RETRIES - 1).is_terrible(NOW));
    // 10 failures and no success for a week.
    let failing = |since: i64| {
        with(&move |i| {
            i.attempts = ADDRMAN_MAX_FAILURES;
            i.last_success = NOW - since;
        })
    };
    assert!(failing(ADDRMAN_MIN_FAIL + 1).is_terrible(NOW));
    assert!(!failing(ADDRMAN_MIN_FAIL).is_terrible(NOW));
    // Tried in the last minute: never terrible.
    assert!(
        !with(&|i| {
            i.entry.time = 0;
            i.last_try = NOW - 60
        })
        .is_terrible(NOW)
    );
    assert!(
        with(&|i| {
            i.entry.time = 0;
            i.last_try = NOW - 61
        })
        .is_terrible(NOW)
    );
    // The chance: 1% if tried in the last 10 minutes, 0.66 per attempt, at most 8 of them.
    assert_eq!(base.chance(NOW), 1.0);
    assert!((with(&|i| i.last_try = NOW - 599).chance(NOW) - 0.01).abs() < 1e-12);
    assert!((with(&|i| i.attempts = 2).chance(NOW) - 0.66 * 0.66).abs() < 1e-12);
    assert_eq!(with(&|i| i.attempts = 20).chance(NOW), with(&|i| i.attempts = 8).chance(NOW));
}

#[test]
fn select_empty_and_by_network() {
    let mut man = det();
    assert!(man.select(false, None, NOW).is_none());
    assert!(man.select(true, None, NOW).is_none());
    assert!(man.select(false, Some(&[]), NOW).is_none());
    let v4 = at("8.8.8.8", 8333, NOW);
    let onion = AddrEntry::new(AddrV2::TorV3([5; 32]), 8333, ServiceFlags::NONE, NOW);
    assert_eq!(man.add(&[v4.clone(), onion.clone()], &ip("1.1.1.1"), 0, NOW), 2);
    for _ in 0..50 {
        assert_eq!(man.select(false, Some(&[AddrNetwork::Onion]), NOW).unwrap().0, onion);
        assert_eq!(man.select(false, Some(&[AddrNetwork::Ipv4]), NOW).unwrap().0, v4);
        assert!(man.select(false, Some(&[AddrNetwork::Ipv6, AddrNetwork::I2p]), NOW).is_none());
    }
    man.attempt(&v4.addr, v4.port, false, NOW - 5);
    let (_, last_try) = man.select(false, Some(&[AddrNetwork::Ipv4]), NOW).unwrap();
    assert_eq!(last_try, NOW - 5);
}

#[test]
fn get_addr_limits_and_quality() {
    let mut man = det();
    let fresh: Vec<AddrEntry> = (0..100).map(|i| at(&format!("8.{i}.1.1"), 8333, NOW)).collect();
    let stale: Vec<AddrEntry> = (0..100).map(|i| at(&format!("9.{i}.1.1"), 8333, NOW - ADDRMAN_HORIZON - 1)).collect();
    for (i, e) in fresh.iter().chain(&stale).enumerate() {
        man.add(std::slice::from_ref(e), &ip(&format!("{}.1.1.1", 1 + i % 200)), 0, NOW);
    }
    let total = man.size(None, None);
    assert!(total > 150, "{total}");
    let n_stale = man.get_addr(0, 0, None, false, NOW).iter().filter(|e| e.time < NOW - ADDRMAN_HORIZON).count();
    assert_eq!(man.get_addr(0, 0, None, false, NOW).len(), total);
    let filtered = man.get_addr(0, 0, None, true, NOW);
    assert_eq!(filtered.len(), total - n_stale, "terrible ones are skipped");
    assert!(filtered.iter().all(|e| e.time == NOW));
    assert_eq!(man.get_addr(7, 0, None, false, NOW).len(), 7);
    assert_eq!(man.get_addr(0, 10, None, false, NOW).len(), total / 10);
    assert_eq!(man.get_addr(5, 10, None, false, NOW).len(), 5.min(total / 10));
    assert_eq!(man.get_addr(0, 250, None, false, NOW).len(), total, "max_pct is capped at 100");
    // The percentage is of all entries, then terrible ones are skipped within that budget.
    assert!(man.get_addr(0, 50, None, true, NOW).len() <= total / 2);
    let distinct: BTreeSet<String> = man.get_addr(0, 0, None, false, NOW).iter().map(|e| format!("{e:?}")).collect();
    assert_eq!(distinct.len(), total, "no duplicates");
    man.check().unwrap();
}

#[test]
fn one_address_from_many_sources_is_in_at_most_8_buckets() {
    let mut man = det();
    let mut e = at("8.8.8.8", 8333, NOW);
    for i in 0..3000u32 {
        e.time = NOW + i64::from(i) + 1;
        man.add(std::slice::from_ref(&e), &ip(&format!("{}.{}.1.1", 1 + i % 200, i / 200)), 0, NOW);
        assert!(man.find_entry(&e.addr, e.port).unwrap().multiplicity <= ADDRMAN_NEW_BUCKETS_PER_ADDRESS);
    }
    let buckets: BTreeSet<usize> = man.entries(false).iter().map(|(_, p)| p.bucket).collect();
    assert_eq!(buckets.len(), 8);
    assert_eq!(man.size(None, None), 1);
    man.check().unwrap();
}

#[test]
fn group_limits_through_the_manager() {
    let mut man = det();
    // Many addresses of one /16, each from its own source group, all moved to tried.
    for i in 0..2000u32 {
        let e = at(&format!("50.60.{}.{}", i / 250, i % 250 + 1), 8333, NOW);
        man.add(std::slice::from_ref(&e), &ip(&format!("{}.{}.1.1", 1 + i % 200, i / 200)), 0, NOW);
        man.good(&e.addr, e.port, NOW);
    }
    let tried: BTreeSet<usize> = man.entries(true).iter().map(|(_, p)| p.bucket).collect();
    assert_eq!(tried.len(), ADDRMAN_TRIED_BUCKETS_PER_GROUP as usize, "one group fills 8 tried buckets");
    assert!(man.size(None, Some(false)) <= 8 * ADDRMAN_BUCKET_SIZE);
    // Many addresses of many groups from one source: at most 64 new buckets.
    let mut man = det();
    for i in 0..5000u32 {
        let e = at(&format!("{}.{}.1.1", 1 + i % 200, i / 200), 8333, NOW);
        man.add(std::slice::from_ref(&e), &ip("77.77.77.77"), 0, NOW);
    }
    let new: BTreeSet<usize> = man.entries(false).iter().map(|(_, p)| p.bucket).collect();
    assert!(new.len() <= ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP as usize, "{}", new.len());
    assert!(man.size(None, None) <= 64 * ADDRMAN_BUCKET_SIZE);
    man.check().unwrap();
}

#[test]
fn memory_is_bounded_by_the_tables() {
    let mut man = AddrMan::new(hash_key(5), SEED, NetGroupRule::Core);
    let capacity = (ADDRMAN_NEW_BUCKET_COUNT + ADDRMAN_TRIED_BUCKET_COUNT) * ADDRMAN_BUCKET_SIZE;
    let mut n = 0u32;
    // 200 source groups each sending 1,000 addresses of 1,000 different groups: far more
    // than the tables hold.
    for batch in 0..200u32 {
        let source = ip(&format!("{}.{}.9.9", 1 + batch % 200, batch));
        let addrs: Vec<AddrEntry> = (0..1000u32)
            .map(|_| {
                n += 1;
                at(&format!("{}.{}.{}.7", 1 + n % 200, (n / 200) % 256, (n / 51200) % 256), 8333, NOW)
            })
            .collect();
        man.add(&addrs, &source, 0, NOW);
        for e in addrs.iter().step_by(10) {
            man.good(&e.addr, e.port, NOW);
        }
        assert!(man.map_info.len() <= capacity && man.map_addr.len() == man.map_info.len());
        assert!(man.random.len() == man.map_info.len());
    }
    assert_eq!(n, 200_000);
    assert!(man.size(None, Some(true)) > 55_000, "the new table is under pressure: {}", man.size(None, Some(true)));
    assert!(man.size(None, None) <= capacity);
    assert!(man.size(None, Some(true)) <= ADDRMAN_NEW_BUCKET_COUNT * ADDRMAN_BUCKET_SIZE);
    assert!(man.size(None, Some(false)) <= ADDRMAN_TRIED_BUCKET_COUNT * ADDRMAN_BUCKET_SIZE);
    man.check().unwrap();
}

#[test]
fn loopback_rule_accepts_and_spreads_loopback_addresses() {
    let mut core = det();
    let e = at("127.0.0.5", 18444, NOW);
    assert_eq!(core.add(std::slice::from_ref(&e), &ip("127.0.0.1"), 0, NOW), 0, "Core's rule rejects loopback");
    let mut man = AddrMan::new(det_key(), SEED, NetGroupRule::LoopbackPerAddress);
    let addrs: Vec<AddrEntry> = (1..=50).map(|i| at(&format!("127.0.0.{i}"), 18444, NOW)).collect();
    for a in &addrs {
        assert_eq!(man.add(std::slice::from_ref(a), &a.addr, 0, NOW), 1);
    }
    assert_eq!(man.size(Some(AddrNetwork::Ipv4), None), 50);
    let new: BTreeSet<usize> = man.entries(false).iter().map(|(_, p)| p.bucket).collect();
    assert!(new.len() > 40, "each loopback address is its own group: {}", new.len());
    assert!(man.good(&addrs[0].addr, 18444, NOW));
    assert!(man.select(false, Some(&[AddrNetwork::Ipv4]), NOW).is_some());
    man.check().unwrap();
}

#[test]
fn check_detects_corruption() {
    let mut man = det();
    let e = at("8.8.8.8", 8333, NOW);
    assert!(add1(&mut man, &e, "1.1.1.1"));
    man.check().unwrap();
    man.n_new += 1;
    assert_eq!(man.check().unwrap_err().code, -7);
    man.n_new -= 1;
    let (b, p) = {
        let pos = man.find_entry(&e.addr, e.port).unwrap();
        (pos.bucket, pos.position)
    };
    let id = man.new_table.get(b, p).unwrap();
    man.new_table.set(b, p, None);
    man.new_table.set((b + 1) % ADDRMAN_NEW_BUCKET_COUNT, p, Some(id));
    assert!(man.check().is_err());
}

#[test]
fn random_operations_keep_core_invariants() {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    let mut rng = StdRng::seed_from_u64(1);
    let mut man = AddrMan::new(hash_key(3), SEED, NetGroupRule::Core);
    // Few groups, so that new and tried positions collide often.
    let pool: Vec<AddrEntry> =
        (0..600u32).map(|i| at(&format!("250.{}.{}.{}", i % 3, i / 250, i % 250 + 1), 8333, NOW)).collect();
    let sources: Vec<AddrV2> = (0..40u32).map(|i| ip(&format!("{}.{}.7.7", 20 + i % 4, i))).collect();
    let mut now = NOW;
    for step in 0..4000 {
        now += rng.random_range(0..300);
        let pick = |rng: &mut StdRng| pool[rng.random_range(0..pool.len())].clone();
        match rng.random_range(0..10) {
            0..=2 => {
                let batch: Vec<AddrEntry> = (0..rng.random_range(1..20))
                    .map(|_| AddrEntry { time: now - rng.random_range(-900..40 * 86400), ..pick(&mut rng) })
                    .collect();
                let source = &sources[rng.random_range(0..sources.len())];
                man.add(&batch, source, rng.random_range(0..7200), now);
            }
            3 | 4 => {
                let e = pick(&mut rng);
                man.good(&e.addr, e.port, now);
            }
            5 => {
                let e = pick(&mut rng);
                man.attempt(&e.addr, e.port, rng.random(), now - rng.random_range(0..120));
            }
            6 => {
                let e = pick(&mut rng);
                man.connected(&e.addr, e.port, now);
                man.set_services(&e.addr, e.port, ServiceFlags::from(rng.random_range(0..4096u64)));
            }
            7 => {
                if let Some((e, _)) = man.select(rng.random(), None, now) {
                    assert!(man.info(&e.addr, e.port).is_some());
                }
                let got = man.get_addr(rng.random_range(0..50), rng.random_range(0..=100), None, rng.random(), now);
                assert!(got.len() <= man.size(None, None));
            }
            _ => {
                if let Some((old, _)) = man.select_tried_collision() {
                    assert!(man.find_entry(&old.addr, old.port).unwrap().tried);
                    if rng.random() {
                        man.good(&old.addr, old.port, now);
                    } else {
                        man.attempt(&old.addr, old.port, false, now);
                    }
                }
                man.resolve_collisions(now);
            }
        }
        if step % 100 == 0 {
            man.check().unwrap_or_else(|e| panic!("step {step}: {e}"));
        }
    }
    man.check().unwrap();
    assert!(man.size(None, Some(false)) > 0 && man.size(None, Some(true)) > 0);
    let back = AddrMan::deserialize(&man.serialize([1, 2, 3, 4]), [1, 2, 3, 4], SEED, NetGroupRule::Core).unwrap();
    assert_eq!(back.entries(false), man.entries(false));
    assert_eq!(back.entries(true), man.entries(true));
}
