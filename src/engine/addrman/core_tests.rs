//! Bitcoin Core's `addrman_tests.cpp` cases, with their concrete values: with Core's
//! deterministic key (`uint256{1}`) or its test keys, every address lands in the bucket and
//! position Core puts it in, so the collision counts and sizes are Core's.

use std::collections::BTreeSet;

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::AddrV2;

use super::tests::*;
use super::*;

#[test]
fn core_constants() {
    assert_eq!((ADDRMAN_NEW_BUCKET_COUNT, ADDRMAN_TRIED_BUCKET_COUNT, ADDRMAN_BUCKET_SIZE), (1024, 256, 64));
    assert_eq!((ADDRMAN_TRIED_BUCKETS_PER_GROUP, ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP), (8, 64));
    assert_eq!(ADDRMAN_NEW_BUCKETS_PER_ADDRESS, 8);
    assert_eq!((ADDRMAN_HORIZON, ADDRMAN_MIN_FAIL), (30 * 86400, 7 * 86400));
    assert_eq!((ADDRMAN_RETRIES, ADDRMAN_MAX_FAILURES), (3, 10));
    assert_eq!((ADDRMAN_REPLACEMENT, ADDRMAN_TEST_WINDOW, ADDRMAN_SET_TRIED_COLLISION_SIZE), (4 * 3600, 2400, 10));
}

/// Core's `caddrinfo_get_tried_bucket_legacy`.
#[test]
fn core_vector_tried_bucket() {
    let (key1, key2) = (hash_key(1), hash_key(2));
    let a1 = svc("250.1.1.1", 8333);
    assert_eq!(tb(&key1, &a1), 40);
    assert_ne!(tb(&key1, &a1), tb(&key2, &a1), "the key randomises placement");
    let a2 = svc("250.1.1.1", 9999);
    assert_ne!(tb(&key1, &a1), tb(&key1, &a2), "the port is part of the tried placement");
    let same16: BTreeSet<usize> = (0..255).map(|i| tb(&key1, &svc(&format!("250.1.1.{i}"), 0))).collect();
    assert_eq!(same16.len(), 8, "one /16 spreads over exactly 8 tried buckets");
    let other16: BTreeSet<usize> = (0..255).map(|j| tb(&key1, &svc(&format!("250.{j}.1.1"), 0))).collect();
    assert_eq!(other16.len(), 160);
}

/// Core's `caddrinfo_get_new_bucket_legacy`.
#[test]
fn core_vector_new_bucket() {
    let (key1, key2) = (hash_key(1), hash_key(2));
    let a1 = svc("250.1.2.1", 8333);
    assert_eq!(nb(&key1, &a1, "250.1.2.1"), 786);
    assert_ne!(nb(&key1, &a1, "250.1.2.1"), nb(&key2, &a1, "250.1.2.1"));
    assert_eq!(nb(&key1, &a1, "250.1.2.1"), nb(&key1, &svc("250.1.2.1", 9999), "250.1.2.1"), "ports do not matter");
    let same_group: BTreeSet<usize> =
        (0..255).map(|i| nb(&key1, &svc(&format!("250.1.1.{i}"), 0), &format!("250.1.1.{i}"))).collect();
    assert_eq!(same_group.len(), 1);
    let one_source: BTreeSet<usize> =
        (0..4 * 255).map(|j| nb(&key1, &svc(&format!("{}.{}.1.1", 250 + j / 255, j % 256), 0), "251.4.1.1")).collect();
    assert!(one_source.len() <= 64, "one source group reaches at most 64 new buckets");
    let many_sources: BTreeSet<usize> =
        (0..255).map(|p| nb(&key1, &svc("250.1.1.1", 0), &format!("250.{p}.1.1"))).collect();
    assert!(many_sources.len() > 64);
}

/// Core's `addrman_simple`.
#[test]
fn core_simple() {
    let mut man = det();
    assert_eq!(man.size(None, None), 0);
    assert!(selected(&mut man, false).is_none());
    let a1 = svc("250.1.1.1", 8333);
    assert!(add1(&mut man, &a1, "252.2.2.2"));
    assert_eq!(man.size(None, None), 1);
    assert_eq!(selected(&mut man, false), Some(a1.clone()));
    assert!(!add1(&mut man, &a1, "252.2.2.2"), "a duplicate is not added");
    assert_eq!(man.size(None, None), 1);
    assert!(add1(&mut man, &svc("250.1.1.2", 8333), "252.2.2.2"));
    assert!(man.size(None, None) >= 1);
    let mut man = det();
    assert_eq!(man.add(&[svc("250.1.1.3", 8333), svc("250.1.1.4", 8333)], &ip("252.2.2.2"), 0, NOW), 2);
    man.check().unwrap();
}

/// Core's `addrman_ports`.
#[test]
fn core_ports() {
    let mut man = det();
    let a1 = svc("250.1.1.1", 8333);
    let a1p = svc("250.1.1.1", 8334);
    assert!(add1(&mut man, &a1, "252.2.2.2"));
    assert!(add1(&mut man, &a1p, "252.2.2.2"));
    assert_eq!(man.size(None, None), 2);
    let s = selected(&mut man, false).unwrap();
    assert!(s == a1 || s == a1p);
    good(&mut man, &a1p);
    assert_eq!(man.size(None, None), 2);
    assert_eq!(selected(&mut man, true), Some(a1));
}

/// Core's `addrman_select`.
#[test]
fn core_select() {
    let mut man = det();
    assert!(selected(&mut man, false).is_none() && selected(&mut man, true).is_none());
    let a1 = svc("250.1.1.1", 8333);
    assert!(add1(&mut man, &a1, "252.2.2.2"));
    assert_eq!(selected(&mut man, true).as_ref(), Some(&a1));
    assert_eq!(selected(&mut man, false).as_ref(), Some(&a1));
    assert!(good(&mut man, &a1));
    assert_eq!(man.size(None, None), 1);
    assert!(selected(&mut man, true).is_none(), "nothing in new");
    assert_eq!(selected(&mut man, false).as_ref(), Some(&a1));

    let a2 = svc("250.3.1.1", 8333);
    assert!(add1(&mut man, &a2, "250.3.1.1"));
    assert_eq!(selected(&mut man, true), Some(a2));
    assert!(add1(&mut man, &svc("250.3.2.2", 9999), "250.3.1.1"));
    assert!(add1(&mut man, &svc("250.3.3.3", 9999), "250.4.1.1"));
    for (a, port, source) in
        [("250.4.4.4", 8333, "250.3.2.2"), ("250.4.5.5", 7777, "250.3.2.2"), ("250.4.6.6", 8333, "250.1.1.3")]
    {
        let e = svc(a, port);
        assert!(add1(&mut man, &e, source));
        assert!(good(&mut man, &e));
    }
    assert_eq!(man.size(None, None), 7);
    let ports: BTreeSet<u16> = (0..20).map(|_| selected(&mut man, false).unwrap().port).collect();
    assert_eq!(ports.len(), 3);
    man.check().unwrap();
}

/// Core's `addrman_select_by_network` and `addrman_select_special`.
#[test]
fn core_select_by_network() {
    let mut man = det();
    let sel =
        |man: &mut AddrMan, new_only: bool, nets: &[AddrNetwork]| man.select(new_only, Some(nets), NOW).map(|s| s.0);
    assert!(sel(&mut man, true, &[AddrNetwork::Ipv4]).is_none());
    assert!(sel(&mut man, false, &[AddrNetwork::Ipv4]).is_none());
    let a1 = svc("250.1.1.1", 8333);
    assert!(add1(&mut man, &a1, "252.2.2.2"));
    assert_eq!(sel(&mut man, true, &[AddrNetwork::Ipv4]).as_ref(), Some(&a1));
    assert_eq!(sel(&mut man, false, &[AddrNetwork::Ipv4]).as_ref(), Some(&a1));
    for net in [AddrNetwork::Ipv6, AddrNetwork::Onion, AddrNetwork::I2p, AddrNetwork::Cjdns] {
        assert!(sel(&mut man, false, &[net]).is_none());
    }
    let i2p = AddrEntry::new(AddrV2::I2p([0xa0; 32]), 0, ServiceFlags::NONE, TIME_INIT);
    assert!(add1(&mut man, &i2p, "252.2.2.2"));
    assert_eq!(sel(&mut man, true, &[AddrNetwork::I2p]).as_ref(), Some(&i2p));
    assert_eq!(sel(&mut man, false, &[AddrNetwork::I2p]).as_ref(), Some(&i2p));
    assert_eq!(sel(&mut man, false, &[AddrNetwork::Ipv4]).as_ref(), Some(&a1));
    assert!(sel(&mut man, false, &[AddrNetwork::Ipv4, AddrNetwork::I2p]).is_some());
    assert!(sel(&mut man, false, &[AddrNetwork::Ipv6, AddrNetwork::Onion, AddrNetwork::Cjdns]).is_none());
    assert!(good(&mut man, &i2p));
    assert!(sel(&mut man, true, &[AddrNetwork::I2p]).is_none());
    assert_eq!(sel(&mut man, false, &[AddrNetwork::I2p]).as_ref(), Some(&i2p));
    let i2p2 = AddrEntry::new(AddrV2::I2p([0x17; 32]), 0, ServiceFlags::NONE, TIME_INIT);
    assert!(add1(&mut man, &i2p2, "252.2.2.2"));
    assert_eq!(sel(&mut man, true, &[AddrNetwork::I2p]).as_ref(), Some(&i2p2));
    let (mut from_new, mut from_tried) = (false, false);
    for _ in 0..256 {
        let s = sel(&mut man, false, &[AddrNetwork::I2p]).unwrap();
        assert!(s == i2p || s == i2p2, "only the requested network");
        from_tried |= s == i2p;
        from_new |= s == i2p2;
    }
    assert!(from_new && from_tried);

    // addrman_select_special: the only IPv4 entry is in new, so new is searched.
    let mut man = AddrMan::new(hash_key(99), 12345, NetGroupRule::Core);
    assert!(add1(&mut man, &i2p, "252.2.2.2") && good(&mut man, &i2p));
    let a = svc("250.1.1.3", 8333);
    assert!(add1(&mut man, &a, "252.2.2.2"));
    for _ in 0..20 {
        assert_eq!(sel(&mut man, false, &[AddrNetwork::Ipv4]).as_ref(), Some(&a));
    }
}

/// Core's `addrman_new_collisions`: with key 1, 250.1.1.1 to .22 do not collide in new.
#[test]
fn core_new_collisions() {
    let mut man = det();
    for n in 1..=22 {
        assert!(add1(&mut man, &svc(&format!("250.1.1.{n}"), 0), "252.2.2.2"));
        assert_eq!(man.size(None, None), n);
    }
    assert!(add1(&mut man, &svc("250.1.1.23", 0), "252.2.2.2"));
    assert_eq!(man.size(None, None), 22, "the 23rd collides");
    assert!(add1(&mut man, &svc("250.1.1.24", 0), "252.2.2.2"));
    assert_eq!(man.size(None, None), 23);
    man.check().unwrap();
}

/// Core's `addrman_new_multiplicity`.
#[test]
fn core_new_multiplicity() {
    let mut man = det();
    let mut a = at("253.3.3.3", 8333, NOW);
    let source = |i: u32| format!("{}.{}.1.1", i % 256, i >> 8);
    for i in 1..20 {
        man.add(std::slice::from_ref(&a), &ip(&source(i)), 0, NOW);
    }
    assert_eq!(man.find_entry(&a.addr, a.port).unwrap().multiplicity, 1, "no newer time, no further bucket");
    assert_eq!(man.size(None, None), 1);
    for i in 1..400 {
        a.time = NOW + i64::from(i);
        man.add(std::slice::from_ref(&a), &ip(&source(i)), 0, NOW);
    }
    assert_eq!(man.find_entry(&a.addr, a.port).unwrap().multiplicity, 8);
    assert_eq!(man.size(None, None), 1);
    assert_eq!(man.entries(false).len(), 8, "in exactly 8 new buckets");
    man.check().unwrap();
}

/// Core's `addrman_tried_collisions`: with key 1, 250.1.1.1 to .35 do not collide in tried.
#[test]
fn core_tried_collisions() {
    let mut man = det();
    for n in 1..=35 {
        let e = svc(&format!("250.1.1.{n}"), 0);
        assert!(add1(&mut man, &e, "252.2.2.2"));
        assert!(good(&mut man, &e), "{n}");
    }
    let e36 = svc("250.1.1.36", 0);
    assert!(add1(&mut man, &e36, "252.2.2.2"));
    assert!(!good(&mut man, &e36), "the 36th collides in tried");
    let e37 = svc("250.1.1.37", 0);
    assert!(add1(&mut man, &e37, "252.2.2.2"));
    assert!(good(&mut man, &e37));
    man.check().unwrap();
}

/// Core's `addrman_getaddr`.
#[test]
fn core_getaddr() {
    let mut man = det();
    assert!(man.get_addr(0, 0, None, true, NOW).is_empty());
    let a1 = at("250.250.2.1", 8333, NOW);
    let a2 = at("250.251.2.2", 9999, NOW);
    let a3 = at("251.252.2.3", 8333, NOW);
    let a4 = at("252.253.3.4", 8333, NOW);
    let a5 = at("252.254.4.5", 8333, NOW);
    assert_eq!(man.add(&[a1.clone(), a3, a5], &ip("250.1.2.1"), 0, NOW), 3);
    assert_eq!(man.add(&[a2.clone(), a4], &ip("250.2.3.3"), 0, NOW), 2);
    assert_eq!(man.get_addr(0, 0, None, true, NOW).len(), 5);
    assert_eq!(man.get_addr(2500, 23, None, true, NOW).len(), 1, "23% of 5 rounds down to 1");
    assert!(good(&mut man, &a1) && good(&mut man, &a2));
    assert_eq!(man.get_addr(0, 0, None, true, NOW).len(), 5);
    assert_eq!(man.get_addr(2500, 23, None, true, NOW).len(), 1);
    for i in 1..8 * 256 {
        let s = format!("{}.{}.1.23", i % 256, i >> 8);
        let e = at(&s, 0, NOW);
        man.add(std::slice::from_ref(&e), &ip(&s), 0, NOW);
        if i % 8 == 0 {
            good(&mut man, &e);
        }
    }
    let got = man.get_addr(2500, 23, None, true, NOW);
    assert_eq!(got.len(), man.size(None, None) * 23 / 100);
    assert_eq!(got.len(), 461);
    assert_eq!(man.size(None, None), 2006, "fewer than added, because of collisions");
    man.check().unwrap();
}

/// Core's `getaddr_unfiltered`.
#[test]
fn core_getaddr_unfiltered() {
    let mut man = det();
    let a1 = at("250.250.2.1", 8333, NOW);
    let a2 = svc("250.251.2.2", 9999); // no time: terrible
    assert_eq!(man.add(&[a1, a2], &ip("250.1.2.1"), 0, NOW), 2);
    let a3 = at("250.251.2.3", 9998, NOW);
    good(&mut man, &a3); // unknown yet: no effect on it
    assert!(add1(&mut man, &a3, "250.1.2.1"));
    for _ in 0..3 {
        man.attempt(&a3.addr, a3.port, true, NOW - 61);
    }
    let a4 = at("250.252.2.4", 9997, NOW + 11 * 60); // from the future
    assert!(add1(&mut man, &a4, "250.1.2.1"));
    assert_eq!(man.get_addr(0, 0, None, true, NOW).len(), 1);
    assert_eq!(man.get_addr(0, 0, None, false, NOW).len(), 4);
}

/// Core's `addrman_terrible_many_failures`.
#[test]
fn core_terrible_many_failures() {
    let mut man = det();
    let a = at("250.250.2.1", 8333, NOW);
    assert!(add1(&mut man, &a, "250.1.2.1"));
    assert!(good(&mut man, &a));
    let later = NOW + ADDRMAN_MIN_FAIL + 86400;
    let helper = at("251.252.2.3", 8333, later);
    assert_eq!(man.add(std::slice::from_ref(&helper), &ip("250.1.2.1"), 0, later), 1);
    assert!(man.good(&helper.addr, helper.port, later));
    for _ in 0..ADDRMAN_MAX_FAILURES {
        man.attempt(&a.addr, a.port, true, later - 61);
    }
    let filtered = man.get_addr(0, 0, None, true, later);
    assert_eq!(filtered, vec![helper]);
    assert_eq!(man.get_addr(0, 0, None, false, later).len(), 2);
}

/// Core's `addrman_penalty_self_announcement`.
#[test]
fn core_penalty_self_announcement() {
    let mut man = det();
    let base = NOW - 10000;
    let a1 = at("250.1.1.1", 8333, base);
    assert_eq!(man.add(std::slice::from_ref(&a1), &ip("250.1.1.1"), 3600, NOW), 1);
    assert!(man.find_entry(&a1.addr, a1.port).is_some());
    let got = man.get_addr(0, 0, None, true, NOW);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].time, base, "no penalty for announcing oneself");
    let a2 = at("250.1.1.2", 8333, base);
    assert_eq!(man.add(std::slice::from_ref(&a2), &ip("250.1.1.3"), 3600, NOW), 1);
    let got = man.get_addr(0, 0, None, true, NOW);
    assert_eq!(got.len(), 2);
    assert_eq!(got.iter().find(|e| e.addr == a2.addr).unwrap().time, base - 3600);
}

/// Core's `addrman_selecttriedcollision`.
#[test]
fn core_select_tried_collision() {
    let mut man = det();
    assert!(collision(&mut man).is_none());
    for i in 1..23 {
        let e = svc(&format!("250.1.1.{i}"), 0);
        assert!(add1(&mut man, &e, "252.2.2.2"));
        assert!(good(&mut man, &e));
        assert!(collision(&mut man).is_none());
    }
    for i in 1..23 {
        let e = svc(&format!("250.1.1.{i}"), 0);
        assert!(!good(&mut man, &e), "already tried");
        assert!(collision(&mut man).is_none(), "a duplicate is not a collision");
    }
}

/// Core's `addrman_noevict`.
#[test]
fn core_noevict() {
    let mut man = det();
    fill_tried(&mut man, 1..36);
    let e36 = svc("250.1.1.36", 0);
    assert!(add1(&mut man, &e36, "252.2.2.2"));
    assert!(!good(&mut man, &e36));
    assert_eq!(collision(&mut man), Some((ip("250.1.1.19"), 0)), "36 collides with 19");
    // 19 succeeded just now: 36 is discarded and 19 stays.
    man.resolve_collisions(NOW);
    assert!(collision(&mut man).is_none());
    assert!(man.find_entry(&ip("250.1.1.19"), 0).unwrap().tried);
    assert!(!man.find_entry(&e36.addr, 0).unwrap().tried);
    fill_tried(&mut man, 37..59);
    let e59 = svc("250.1.1.59", 0);
    assert!(add1(&mut man, &e59, "252.2.2.2"));
    assert!(!good(&mut man, &e59));
    assert_eq!(collision(&mut man), Some((ip("250.1.1.10"), 0)), "59 collides with 10");
    assert!(!add1(&mut man, &e36, "252.2.2.2"));
    assert!(!good(&mut man, &e36), "36 still collides with 19");
    assert!(collision(&mut man).is_some());
    man.resolve_collisions(NOW);
    assert!(collision(&mut man).is_none());
    man.check().unwrap();
}

/// Core's `addrman_evictionworks`.
#[test]
fn core_eviction_works() {
    let mut man = det();
    fill_tried(&mut man, 1..36);
    let e36 = svc("250.1.1.36", 0);
    assert!(add1(&mut man, &e36, "252.2.2.2"));
    assert!(!good(&mut man, &e36));
    let (old, _) = man.select_tried_collision().unwrap();
    assert_eq!((old.addr.clone(), old.port), (ip("250.1.1.19"), 0));
    // The test of 19 fails: its last success is in the deep past and it was tried 61 s ago.
    assert!(!man.good(&old.addr, old.port, 1));
    man.attempt(&old.addr, old.port, false, NOW - 61);
    man.resolve_collisions(NOW);
    assert!(collision(&mut man).is_none());
    assert!(man.find_entry(&e36.addr, 0).unwrap().tried, "36 replaced 19");
    assert!(!good(&mut man, &e36), "36 is already tried");
    assert!(collision(&mut man).is_none());
    let e19 = svc("250.1.1.19", 0);
    assert!(!good(&mut man, &e19), "19 now collides with 36");
    assert_eq!(collision(&mut man), Some((e36.addr.clone(), 0)));
    // 4 hours later 36 was neither tried nor successful recently: 19 replaces it.
    man.resolve_collisions(NOW + 4 * 3600);
    assert!(collision(&mut man).is_none());
    assert!(man.find_entry(&e19.addr, 0).unwrap().tried);
    assert!(!man.find_entry(&e36.addr, 0).unwrap().tried);
    man.check().unwrap();
}

/// Core's `addrman_update_address`.
#[test]
fn core_update_address() {
    let mut man = det();
    let start = NOW - 10000;
    let a = at("250.1.1.1", 8333, start);
    assert!(add1(&mut man, &a, "252.2.2.2"));
    // Another port is another entry.
    man.connected(&a.addr, 8334, NOW);
    man.set_services(&a.addr, 8334, ServiceFlags::NETWORK_LIMITED);
    let got = man.get_addr(0, 0, None, true, NOW);
    assert_eq!((got.len(), got[0].time, got[0].services), (1, start, ServiceFlags::NONE));
    man.connected(&a.addr, a.port, NOW);
    man.set_services(&a.addr, a.port, ServiceFlags::NETWORK_LIMITED);
    let got = man.get_addr(0, 0, None, true, NOW);
    assert_eq!((got[0].time, got[0].services), (NOW, ServiceFlags::NETWORK_LIMITED));
    // Gossip adds services, never removes them.
    let v2 = AddrEntry { services: ServiceFlags::P2P_V2, ..a.clone() };
    assert!(!add1(&mut man, &v2, "252.2.2.2"));
    assert_eq!(man.get_addr(0, 0, None, true, NOW)[0].services, ServiceFlags::P2P_V2 | ServiceFlags::NETWORK_LIMITED);
    man.set_services(&a.addr, a.port, ServiceFlags::NETWORK);
    assert_eq!(man.get_addr(0, 0, None, true, NOW)[0].services, ServiceFlags::NETWORK);
    assert!(good(&mut man, &a));
    assert_eq!(man.get_addr(0, 0, None, true, NOW)[0].services, ServiceFlags::NETWORK);
    assert!(!add1(&mut man, &v2, "252.2.2.2"));
    assert_eq!(man.get_addr(0, 0, None, true, NOW)[0].services, ServiceFlags::NETWORK | ServiceFlags::P2P_V2);
    // Connected only refreshes a time older than 20 minutes.
    man.connected(&a.addr, a.port, NOW + CONNECTED_UPDATE_INTERVAL);
    assert_eq!(man.info(&a.addr, a.port).unwrap().entry.time, NOW);
    man.connected(&a.addr, a.port, NOW + CONNECTED_UPDATE_INTERVAL + 1);
    assert_eq!(man.info(&a.addr, a.port).unwrap().entry.time, NOW + CONNECTED_UPDATE_INTERVAL + 1);
}

/// Core's `addrman_size`, and the `getaddrmaninfo` counts.
#[test]
fn core_size_and_counts() {
    let mut man = det();
    assert_eq!(man.size(None, None), 0);
    assert_eq!(man.size(Some(AddrNetwork::Ipv4), None), 0);
    assert_eq!(man.size(None, Some(true)), 0);
    assert_eq!(man.size(Some(AddrNetwork::Ipv4), Some(false)), 0);
    let a1 = svc("250.1.1.1", 8333);
    assert!(add1(&mut man, &a1, "252.2.2.2") && good(&mut man, &a1));
    assert!(add1(&mut man, &svc("250.1.1.2", 8333), "252.2.2.2"));
    assert_eq!(man.size(None, None), 2);
    assert_eq!(man.size(Some(AddrNetwork::Ipv4), None), 2);
    assert_eq!((man.size(None, Some(true)), man.size(None, Some(false))), (1, 1));
    assert_eq!((man.size(Some(AddrNetwork::Ipv4), Some(true)), man.size(Some(AddrNetwork::Ipv4), Some(false))), (1, 1));
    let i2p = AddrEntry::new(AddrV2::I2p([0xa0; 32]), 0, ServiceFlags::NONE, TIME_INIT);
    assert!(add1(&mut man, &i2p, "252.2.2.2"));
    assert_eq!(man.size(None, None), 3);
    assert_eq!(man.size(Some(AddrNetwork::I2p), None), 1);
    assert_eq!(man.size(Some(AddrNetwork::I2p), Some(true)), 1);
    assert_eq!((man.size(None, Some(true)), man.size(None, Some(false))), (2, 1));
    let counts = man.network_counts();
    let names: Vec<&str> = counts.iter().map(|c| c.0).collect();
    assert_eq!(names, ["ipv4", "ipv6", "onion", "i2p", "cjdns", "all_networks"]);
    assert_eq!(counts[0].1, NetCounts { new: 1, tried: 1 });
    assert_eq!(counts[3].1, NetCounts { new: 1, tried: 0 });
    assert_eq!(counts[5].1.total(), 3);
}
