use bitcoin::pow::{CompactTarget, Work};

use super::*;
use crate::base::chainparams::Network;
use crate::engine::chain::accept::Chain;
use crate::engine::chain::mine::{mine_chain, mine_child};

fn regtest() -> ChainParams {
    ChainParams::new(Network::Regtest)
}

fn zero() -> Work {
    Work::from_be_bytes([0; 32])
}

/// A regtest chain of `n` valid headers and a chain holding them.
fn chain_of(n: usize) -> (Chain, Vec<Header>) {
    let p = regtest();
    let headers = mine_chain(&p, &p.genesis, n, 1);
    let mut c = Chain::in_memory(p, zero());
    let r = c.accept(&headers, NOW);
    assert_eq!(r.error, None);
    (c, headers)
}

const NOW: i64 = 2_000_000_000;

fn remine(p: &ChainParams, mut h: Header) -> Header {
    h.nonce = 0;
    while !check_proof_of_work(h.block_hash(), h.bits, p) {
        h.nonce += 1;
    }
    h
}

#[test]
fn valid_chain_is_accepted() {
    let (c, headers) = chain_of(50);
    assert_eq!(c.tree().height(), 50);
    assert_eq!(c.tree().tip().hash, headers[49].block_hash());
}

#[test]
fn each_rule_rejects_its_header() {
    let p = regtest();
    let (c, headers) = chain_of(20);
    let tip = headers[19];
    let good = mine_child(&p, &tip, tip.time + 1, 99);
    assert_eq!(check_contextual(&p, c.tree(), &good, NOW), Ok(c.tree().tip_id()));

    // Proof of work: a nonce that fails regtest's target.
    let mut bad_pow = good;
    while check_proof_of_work(bad_pow.block_hash(), bad_pow.bits, &p) {
        bad_pow.nonce += 1;
    }
    assert_eq!(check_header(&p, &bad_pow, bad_pow.block_hash()), Err(HeaderError::HighHash));

    // Wrong bits (a harder target still meets PoW rules for itself, but is not what regtest requires).
    let mut wrong_bits = good;
    wrong_bits.bits = CompactTarget::from_consensus(0x207ffffe);
    let wrong_bits = remine(&p, wrong_bits);
    assert!(matches!(check_contextual(&p, c.tree(), &wrong_bits, NOW), Err(HeaderError::BadDiffBits { .. })));

    // Time not above the median of the last 11.
    let mtp = c.tree().median_time_past(c.tree().tip_id());
    let old = remine(&p, Header { time: mtp, ..good });
    assert_eq!(check_contextual(&p, c.tree(), &old, NOW), Err(HeaderError::TimeTooOld { time: mtp, mtp }));
    let just_after = remine(&p, Header { time: mtp + 1, ..good });
    assert!(check_contextual(&p, c.tree(), &just_after, NOW).is_ok());

    // More than two hours ahead of our clock.
    let t = (NOW + MAX_FUTURE_BLOCK_TIME + 1) as u32;
    let future = remine(&p, Header { time: t, ..good });
    let e = check_contextual(&p, c.tree(), &future, NOW).unwrap_err();
    assert!(
        matches!(e, HeaderError::TimeTooNew { .. }) && !e.is_misbehaviour(),
        "Core's BLOCK_TIME_FUTURE is not punished"
    );
    let edge = remine(&p, Header { time: t - 1, ..good });
    assert!(check_contextual(&p, c.tree(), &edge, NOW).is_ok());

    // Unknown parent: not misbehaviour.
    let orphan = mine_child(&p, &good, good.time + 1, 5);
    let e = check_contextual(&p, c.tree(), &orphan, NOW).unwrap_err();
    assert!(matches!(e, HeaderError::UnknownParent(_)) && !e.is_misbehaviour());
}

#[test]
fn version_minimums_follow_bip34_66_65_heights() {
    let p = ChainParams::new(Network::Main);
    assert_eq!(p.min_version_at(p.bip34_height - 1), 1);
    assert_eq!(p.min_version_at(p.bip34_height), 2);
    assert_eq!(p.min_version_at(p.bip66_height), 3);
    assert_eq!(p.min_version_at(p.bip65_height), 4);
    // Regtest activates all of them at height 1.
    let r = regtest();
    let (c, headers) = chain_of(3);
    let v1 = remine(
        &r,
        Header {
            version: bitcoin::block::Version::from_consensus(1),
            ..mine_child(&r, &headers[2], headers[2].time + 1, 7)
        },
    );
    assert!(matches!(check_contextual(&r, c.tree(), &v1, NOW), Err(HeaderError::BadVersion { version: 1 })));
}

#[test]
fn accept_stops_at_first_invalid_header() {
    let p = regtest();
    let headers = mine_chain(&p, &p.genesis, 30, 2);
    let mut broken = headers.clone();
    broken[10] = remine(&p, Header { time: p.genesis.time, ..broken[10] });
    let mut c = Chain::in_memory(p, zero());
    let r = c.accept(&broken, NOW);
    assert_eq!(r.added, 10);
    assert!(matches!(r.error, Some((10, HeaderError::TimeTooOld { .. }))));
    assert_eq!(c.tree().height(), 10);
}

#[test]
fn real_mainnet_and_signet_headers_all_validate_and_one_altered_byte_is_caught() {
    use crate::engine::chain::testdata::load_headers;
    for (network, file, count) in
        [(Network::Main, "mainnet-headers-0-10236.bin", 10_237), (Network::Signet, "signet-headers-0-2015.bin", 2_016)]
    {
        let headers = load_headers(file);
        assert_eq!(headers.len(), count);
        let p = ChainParams::new(network);
        assert_eq!(headers[0], p.genesis);
        let mut c = Chain::in_memory(p.clone(), zero());
        let r = c.accept(&headers[1..], NOW);
        assert_eq!(r.error, None, "{file}");
        assert_eq!(r.added, count - 1);
        assert_eq!(c.tree().height() as usize, count - 1);
        assert_eq!(c.tree().tip().hash, headers[count - 1].block_hash());
        // Any single altered byte in a header is caught (hash, linkage, bits, time or version).
        for (height, byte) in
            [(1usize, 0usize), (500, 4), (2015, 40), (count - 1, 68), (count / 2, 72), (count - 2, 79)]
        {
            let mut raw = bitcoin::consensus::serialize(&headers[height]);
            raw[byte] ^= 0x01;
            let altered: Header = bitcoin::consensus::deserialize(&raw).unwrap();
            let mut c = Chain::in_memory(p.clone(), zero());
            let mut input = headers[1..].to_vec();
            input[height - 1] = altered;
            let r = c.accept(&input, NOW);
            let (at, _) = r.error.unwrap_or_else(|| panic!("{file}: byte {byte} of header {height} not caught"));
            assert!(at <= height, "{file}: caught late, at {at}");
            assert!(c.tree().height() as usize <= height);
        }
    }
}
