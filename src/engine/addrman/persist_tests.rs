//! Unit tests of the peers file: exact round trips, atomic save and load, and every kind of
//! damaged or hostile file giving its typed error (naming the file) without panics or large
//! allocations.

use bitcoin::consensus::encode::serialize as consensus_serialize;
use bitcoin::hashes::{Hash, sha256d};
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::AddrV2;

use super::persist::MAX_STORED_TIME;
use super::tests::*;
use super::*;

const MAIN: [u8; 4] = [0xf9, 0xbe, 0xb4, 0xd9];
const REGTEST: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];

/// A manager with new entries (some in several buckets), tried entries, every BIP155 network,
/// attempts and services.
fn populated() -> AddrMan {
    let mut man = det();
    for i in 0..300u32 {
        let e = at(&format!("{}.{}.1.1", 1 + i % 200, i / 200), 8333, NOW - i64::from(i));
        man.add(std::slice::from_ref(&e), &ip(&format!("99.{}.1.1", i % 50)), 0, NOW);
        if i % 5 == 0 {
            man.good(&e.addr, e.port, NOW - 100);
        }
        if i % 7 == 0 {
            man.attempt(&e.addr, e.port, true, NOW - 50);
        }
    }
    // An address seen from many sources with newer times: several new buckets.
    let mut multi = at("8.8.8.8", 8333, NOW);
    for i in 0..200u32 {
        multi.time = NOW + i64::from(i) + 1;
        man.add(std::slice::from_ref(&multi), &ip(&format!("{}.{}.2.2", 1 + i % 200, 50 + i / 200)), 0, NOW);
    }
    let special = [
        AddrEntry::new(AddrV2::TorV3([0x11; 32]), 8333, ServiceFlags::NETWORK | ServiceFlags::WITNESS, NOW),
        AddrEntry::new(AddrV2::I2p([0x22; 32]), 0, ServiceFlags::NETWORK_LIMITED, NOW),
        AddrEntry::new(AddrV2::Cjdns("fc00::77".parse().unwrap()), 8333, ServiceFlags::P2P_V2, NOW),
        at("2a01:4f8::1", 18333, NOW),
    ];
    man.add(&special, &AddrV2::TorV3([0x33; 32]), 600, NOW);
    man.good(&special[0].addr, special[0].port, NOW);
    assert!(man.find_entry(&multi.addr, multi.port).unwrap().multiplicity > 1);
    man.check().unwrap();
    man
}

fn assert_same(a: &AddrMan, b: &AddrMan) {
    assert_eq!(a.key(), b.key());
    assert_eq!(a.entries(false), b.entries(false), "new table");
    assert_eq!(a.entries(true), b.entries(true), "tried table");
    assert_eq!(a.network_counts(), b.network_counts());
    for net in AddrNetwork::ALL {
        for in_new in [None, Some(true), Some(false)] {
            assert_eq!(a.size(Some(net), in_new), b.size(Some(net), in_new));
        }
    }
    assert_eq!(a.last_good, b.last_good);
    b.check().unwrap();
}

/// A file around `body` (header and checksum as the writer makes them).
fn wrap(body: &[u8], magic: [u8; 4]) -> Vec<u8> {
    let mut out = FILE_MAGIC.to_vec();
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&magic);
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    let sum = sha256d::Hash::hash(&out).to_byte_array();
    out.extend_from_slice(&sum);
    out
}

/// A body header: key, rule, bucket count, last good, entry count.
fn body_header(count: u32) -> Vec<u8> {
    let mut b = det_key().to_vec();
    b.push(0);
    b.extend_from_slice(&1024u32.to_le_bytes());
    b.extend_from_slice(&NOW.to_le_bytes());
    b.extend_from_slice(&count.to_le_bytes());
    b
}

/// One entry's bytes; `buckets` empty for tried.
fn entry_bytes(addr: &AddrV2, last_success: i64, buckets: &[u16]) -> Vec<u8> {
    entry_bytes_with_times(addr, [NOW, 0, 0, last_success], buckets)
}

/// One entry's bytes with its four stored times (time, last try, last count attempt, last
/// success).
fn entry_bytes_with_times(addr: &AddrV2, times: [i64; 4], buckets: &[u16]) -> Vec<u8> {
    let mut b = consensus_serialize(addr);
    b.extend_from_slice(&8333u16.to_be_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    for t in times {
        b.extend_from_slice(&t.to_le_bytes());
    }
    b.extend_from_slice(&0i32.to_le_bytes());
    b.extend_from_slice(&consensus_serialize(&ip("9.9.9.9")));
    b.push(buckets.len() as u8);
    for x in buckets {
        b.extend_from_slice(&x.to_le_bytes());
    }
    b
}

fn load_err(bytes: &[u8]) -> AddrManError {
    AddrMan::deserialize(bytes, MAIN, SEED, NetGroupRule::Core).unwrap_err()
}

#[test]
fn round_trip_restores_entries_positions_and_counters() {
    let man = populated();
    let bytes = man.serialize(MAIN);
    assert_eq!(&bytes[..8], b"btcloopA");
    let back = AddrMan::deserialize(&bytes, MAIN, 99, NetGroupRule::Core).unwrap();
    assert_same(&man, &back);
    assert_eq!(back.serialize(MAIN), bytes, "writing it again gives the same bytes");
    // The restored manager works on.
    let mut back = back;
    assert!(back.select(false, None, NOW).is_some());
    assert!(back.good(&ip("8.8.8.8"), 8333, NOW));
    back.check().unwrap();
}

#[test]
fn empty_manager_round_trips() {
    let man = det();
    let back = AddrMan::deserialize(&man.serialize(REGTEST), REGTEST, SEED, NetGroupRule::Core).unwrap();
    assert_same(&man, &back);
    assert_eq!(back.size(None, None), 0);
}

#[test]
fn save_and_load_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.dat");
    let missing = AddrMan::load(&path, MAIN, SEED, NetGroupRule::Core).unwrap_err();
    assert!(missing.is_not_found() && missing.path == path);
    let man = populated();
    man.save(&path, MAIN).unwrap();
    let back = AddrMan::load(&path, MAIN, SEED, NetGroupRule::Core).unwrap();
    assert_same(&man, &back);
    // Saving again replaces the file.
    let mut more = back;
    more.add(&[at("7.7.7.7", 8333, NOW)], &ip("1.1.1.1"), 0, NOW);
    more.save(&path, MAIN).unwrap();
    assert_same(&more, &AddrMan::load(&path, MAIN, SEED, NetGroupRule::Core).unwrap());
}

#[test]
fn damaged_files_give_typed_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.dat");
    let good = populated().serialize(MAIN);
    let load = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        let e = AddrMan::load(&path, MAIN, SEED, NetGroupRule::Core).unwrap_err();
        assert_eq!(e.path, path);
        assert!(e.to_string().contains("peers.dat"), "{e}");
        e.error
    };
    // A flipped byte in the body or the checksum.
    for at in [40, good.len() / 2, good.len() - 40, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x20;
        assert!(matches!(load(&bad), AddrManError::ChecksumMismatch), "byte {at}");
    }
    // Truncated.
    assert!(matches!(load(&good[..good.len() - 1]), AddrManError::Truncated));
    assert!(matches!(load(&good[..100]), AddrManError::Truncated));
    assert!(matches!(load(&[]), AddrManError::Truncated));
    // Another network.
    let other = populated().serialize(REGTEST);
    assert!(matches!(load(&other), AddrManError::WrongNetwork { expected: MAIN, found: REGTEST }));
    // An unknown version.
    let mut v2 = good.clone();
    v2[8] = 2;
    assert!(matches!(load(&v2), AddrManError::UnsupportedVersion(2)));
    // Not a btcloop file (e.g. Core's peers.dat).
    let mut core = good.clone();
    core[..4].copy_from_slice(&MAIN);
    assert!(matches!(load(&core), AddrManError::BadMagic));
    assert!(matches!(load(b"xyz"), AddrManError::BadMagic));
    // Bytes after the checksum.
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(load(&trailing), AddrManError::TrailingData));
}

#[test]
fn every_single_byte_corruption_is_an_error() {
    let mut man = det();
    man.add(&[at("8.8.8.8", 8333, NOW), at("9.9.9.9", 8333, NOW)], &ip("1.1.1.1"), 0, NOW);
    man.good(&ip("9.9.9.9"), 8333, NOW);
    let good = man.serialize(MAIN);
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        let err = load_err(&bad);
        let expected = match i {
            0..8 => matches!(err, AddrManError::BadMagic),
            8 => matches!(err, AddrManError::UnsupportedVersion(_)),
            9..13 => matches!(err, AddrManError::WrongNetwork { .. }),
            13..21 => matches!(err, AddrManError::Truncated | AddrManError::TrailingData),
            _ => matches!(err, AddrManError::ChecksumMismatch),
        };
        assert!(expected, "byte {i}: {err}");
    }
    for n in 0..good.len() {
        assert!(matches!(load_err(&good[..n]), AddrManError::Truncated), "prefix of {n}");
    }
}

#[test]
fn too_many_entries_are_rejected_without_allocating() {
    // A count beyond what the tables hold, with a valid checksum.
    let err = load_err(&wrap(&body_header(u32::MAX), MAIN));
    assert!(matches!(err, AddrManError::TooManyEntries(n) if n == u64::from(u32::MAX)), "{err}");
    let capacity = ((ADDRMAN_NEW_BUCKET_COUNT + ADDRMAN_TRIED_BUCKET_COUNT) * ADDRMAN_BUCKET_SIZE) as u32;
    assert!(matches!(load_err(&wrap(&body_header(capacity + 1), MAIN)), AddrManError::TooManyEntries(_)));
    // A count that fits but no data behind it: nothing is reserved for it.
    assert!(matches!(load_err(&wrap(&body_header(capacity), MAIN)), AddrManError::Truncated));
    // A declared body length near the address-space limit.
    let mut huge = FILE_MAGIC.to_vec();
    huge.push(FORMAT_VERSION);
    huge.extend_from_slice(&MAIN);
    huge.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(load_err(&huge), AddrManError::Truncated));
}

#[test]
fn invalid_addresses_are_dropped_on_load() {
    // Core's remove_invalid: 0.0.0.0 in new and 255.255.255.255 in tried are dropped silently,
    // as are unknown networks and TorV2.
    let mut body = body_header(6);
    body.extend(entry_bytes(&ip("5.5.5.5"), 0, &[1]));
    body.extend(entry_bytes(&AddrV2::Ipv4("0.0.0.0".parse().unwrap()), 0, &[2]));
    body.extend(entry_bytes(&ip("7.7.7.7"), NOW, &[]));
    body.extend(entry_bytes(&AddrV2::Ipv4("255.255.255.255".parse().unwrap()), NOW, &[]));
    body.extend(entry_bytes(&AddrV2::Unknown(99, vec![1, 2, 3]), 0, &[3]));
    body.extend(entry_bytes(&AddrV2::TorV2([4; 10]), 0, &[4]));
    let man = AddrMan::deserialize(&wrap(&body, MAIN), MAIN, SEED, NetGroupRule::Core).unwrap();
    assert_eq!(man.size(None, None), 2);
    assert_eq!((man.size(None, Some(true)), man.size(None, Some(false))), (1, 1));
    man.check().unwrap();
}

#[test]
fn inconsistent_entries_are_rejected() {
    let one = |e: Vec<u8>| {
        let mut body = body_header(1);
        body.extend(e);
        load_err(&wrap(&body, MAIN))
    };
    let is_entry = |e: &AddrManError| matches!(e, AddrManError::InconsistentEntry { index: 0, .. });
    // Tried but never connected.
    assert!(is_entry(&one(entry_bytes(&ip("5.5.5.5"), 0, &[]))));
    // In more than 8 new buckets.
    let mut nine = entry_bytes(&ip("5.5.5.5"), 0, &[]);
    nine.pop();
    nine.push(9);
    nine.extend([0u8; 18]);
    assert!(is_entry(&one(nine)));
    // An IPv4 address of 5 bytes.
    let mut long = vec![1u8, 5, 1, 2, 3, 4, 5];
    long.extend(&entry_bytes(&ip("5.5.5.5"), 0, &[1])[6..]);
    assert!(is_entry(&one(long)));
    // An address longer than BIP155 allows.
    let mut huge = vec![42u8, 0xfd, 0x01, 0x02];
    huge.extend([0u8; 513]);
    assert!(is_entry(&one(huge)));
    // A negative attempt count.
    let mut neg = entry_bytes(&ip("5.5.5.5"), 0, &[1]);
    let at = 6 + 2 + 8 + 32;
    neg[at..at + 4].copy_from_slice(&(-1i32).to_le_bytes());
    assert!(is_entry(&one(neg)));
    // The same address twice.
    let mut body = body_header(2);
    body.extend(entry_bytes(&ip("5.5.5.5"), 0, &[1]));
    body.extend(entry_bytes(&ip("5.5.5.5"), 0, &[2]));
    assert!(matches!(load_err(&wrap(&body, MAIN)), AddrManError::InconsistentEntry { index: 1, .. }));
    // Entries running past the body.
    let mut body = body_header(2);
    body.extend(entry_bytes(&ip("5.5.5.5"), 0, &[1]));
    assert!(matches!(load_err(&wrap(&body, MAIN)), AddrManError::Truncated));
    // Bytes after the last entry.
    let mut body = body_header(1);
    body.extend(entry_bytes(&ip("5.5.5.5"), 0, &[1]));
    body.push(0);
    assert!(matches!(load_err(&wrap(&body, MAIN)), AddrManError::TrailingData));
    // A null key fails the consistency check.
    let mut body = body_header(0);
    body[0] = 0;
    assert!(matches!(load_err(&wrap(&body, MAIN)), AddrManError::Inconsistent(Inconsistency { code: -16, .. })));
}

#[test]
fn another_rule_or_bucket_count_rebuckets_new_entries() {
    let man = populated();
    let bytes = man.serialize(MAIN);
    let back = AddrMan::deserialize(&bytes, MAIN, SEED, NetGroupRule::LoopbackPerAddress).unwrap();
    back.check().unwrap();
    // Every new entry is now only at its primary source's position (Core's re-bucketing).
    for (info, pos) in back.entries(false) {
        assert_eq!(pos.multiplicity, 1);
        assert_eq!((pos.bucket, pos.position), back.primary_new_position(&info));
    }
    assert_eq!(back.size(None, Some(false)), man.size(None, Some(false)), "tried positions do not depend on it");
    // Stored buckets out of range (a file with another bucket count) fall back the same way.
    let mut body = body_header(1);
    body[33..37].copy_from_slice(&4096u32.to_le_bytes());
    body.extend(entry_bytes(&ip("5.5.5.5"), 0, &[3000, 17]));
    let man = AddrMan::deserialize(&wrap(&body, MAIN), MAIN, SEED, NetGroupRule::Core).unwrap();
    let pos = man.find_entry(&ip("5.5.5.5"), 8333).unwrap();
    assert_eq!(pos.multiplicity, 1);
    assert_eq!(man.entries(false)[0].1.bucket, pos.bucket);
    // Loopback entries saved under the test rule are dropped under Core's.
    let mut lo = AddrMan::new(det_key(), SEED, NetGroupRule::LoopbackPerAddress);
    lo.add(&[at("127.0.0.2", 18444, NOW), at("8.8.8.8", 8333, NOW)], &ip("127.0.0.1"), 0, NOW);
    let bytes = lo.serialize(REGTEST);
    let core = AddrMan::deserialize(&bytes, REGTEST, SEED, NetGroupRule::Core).unwrap();
    assert_eq!(core.size(None, None), 1);
    assert_eq!(
        AddrMan::deserialize(&bytes, REGTEST, SEED, NetGroupRule::LoopbackPerAddress).unwrap().size(None, None),
        2
    );
}

#[test]
fn garbage_never_panics() {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    let mut rng = StdRng::seed_from_u64(2);
    let mut small = det();
    for i in 0..30u32 {
        let e = at(&format!("{}.{}.1.1", 1 + i, i), 8333, NOW);
        small.add(std::slice::from_ref(&e), &ip("99.1.1.1"), 0, NOW);
        if i % 3 == 0 {
            small.good(&e.addr, e.port, NOW);
        }
    }
    small.add(&[AddrEntry::new(AddrV2::TorV3([9; 32]), 1, ServiceFlags::NONE, NOW)], &ip("99.1.1.1"), 0, NOW);
    let valid = small.serialize(MAIN);
    let valid_body = &valid[21..valid.len() - 32];
    for round in 0..1500 {
        let bytes = match round % 3 {
            // Random bytes.
            0 => (0..rng.random_range(0..200)).map(|_| rng.random()).collect::<Vec<u8>>(),
            // A random body behind a valid header and checksum.
            1 => {
                let mut body = body_header(rng.random_range(0..20));
                body.extend((0..rng.random_range(0..400)).map(|_| rng.random::<u8>()));
                wrap(&body, MAIN)
            }
            // A valid body with a few bytes changed, re-checksummed.
            _ => {
                let mut body = valid_body.to_vec();
                for _ in 0..rng.random_range(1..4) {
                    let i = rng.random_range(0..body.len());
                    body[i] = rng.random();
                }
                wrap(&body, MAIN)
            }
        };
        if let Ok(man) = AddrMan::deserialize(&bytes, MAIN, SEED, NetGroupRule::Core) {
            man.check().unwrap();
        }
    }
}

#[test]
fn times_out_of_range_are_clamped_on_load() {
    // Checksummed, so only a bug or a hand-edited file holds these; the arithmetic on them
    // (`now - time` in is_terrible) must not overflow, so they are clamped into range.
    let mut body = body_header(3);
    let with_times = |addr: &str, times, buckets: &[u16]| entry_bytes_with_times(&ip(addr), times, buckets);
    body.extend(with_times("5.5.5.5", [i64::MIN, 0, 0, 0], &[1]));
    body.extend(with_times("6.6.6.6", [i64::MAX, i64::MAX, i64::MAX, i64::MAX], &[]));
    body.extend(with_times("7.7.7.7", [NOW, 0, 0, 0], &[2]));
    let mut man = AddrMan::deserialize(&wrap(&body, MAIN), MAIN, SEED, NetGroupRule::Core).unwrap();
    assert_eq!(man.size(None, None), 3);
    for a in ["5.5.5.5", "6.6.6.6", "7.7.7.7"] {
        let info = man.info(&ip(a), 8333).unwrap();
        for t in [info.entry.time, info.last_try, info.last_count_attempt, info.last_success] {
            assert!((0..=MAX_STORED_TIME).contains(&t), "{a}: {t}");
        }
    }
    assert_eq!(man.info(&ip("7.7.7.7"), 8333).unwrap().entry.time, NOW, "times in range are kept");
    // The arithmetic on them runs without overflow.
    let all = man.get_addr(0, 0, None, true, NOW);
    assert!(all.iter().any(|e| e.addr == ip("7.7.7.7")));
    man.attempt(&ip("5.5.5.5"), 8333, true, NOW);
    man.check().unwrap();
}
