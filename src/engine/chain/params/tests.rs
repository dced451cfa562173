//! Tests of the per-network parameters against the values Bitcoin Core asserts or uses.

use bitcoin::hashes::Hash;
use bitcoin::pow::CompactTarget;

use super::*;
use crate::engine::chain::pow::{check_proof_of_work, derive_target};

/// Genesis hashes and merkle roots Core asserts in `kernel/chainparams.cpp`.
const GENESIS: [(Network, &str, &str); 5] = [
    (
        Network::Main,
        "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
        "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b",
    ),
    (
        Network::Test,
        "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943",
        "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b",
    ),
    (
        Network::Testnet4,
        "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043",
        "7aa0a7ae1e223414cb807e40cd57e667b718e42aaf9306db9102fe28912b7b4e",
    ),
    (
        Network::Signet,
        "00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6",
        "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b",
    ),
    (
        Network::Regtest,
        "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
        "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b",
    ),
];

#[test]
fn genesis_hashes_and_merkle_roots_match_core() {
    for (network, hash, merkle_root) in GENESIS {
        let params = ChainParams::new(network);
        assert_eq!(params.network, network);
        assert_eq!(params.genesis_hash().to_string(), hash, "{network}");
        assert_eq!(params.genesis.merkle_root.to_string(), merkle_root, "{network}");
        assert_eq!(params.genesis.prev_blockhash, BlockHash::all_zeros());
        assert_eq!(params.genesis.version, Version::ONE);
    }
}

#[test]
fn genesis_headers_match_the_bitcoin_crate() {
    for network in Network::ALL {
        let ours = ChainParams::new(network).genesis;
        let theirs = bitcoin::constants::genesis_block(network.to_bitcoin()).header;
        assert_eq!(ours, theirs, "{network}");
    }
}

/// Core's `sanity_check_chainparams` (pow_tests.cpp), for every network, plus the genesis
/// header's own proof of work.
#[test]
fn chain_params_sanity() {
    for network in Network::ALL {
        let params = ChainParams::new(network);
        // The genesis's stated hash is the header's real hash and it meets its own bits.
        assert!(check_proof_of_work(params.genesis_hash(), params.genesis.bits, &params), "{network}");
        // Target timespan is an even multiple of spacing.
        assert_eq!(params.pow_target_timespan % params.pow_target_spacing, 0, "{network}");
        // Genesis bits are positive, non-zero, do not overflow, and are within pow_limit.
        let target = derive_target(params.genesis.bits, params.pow_limit).expect("valid genesis bits");
        assert!(target <= params.pow_limit);
        // pow_limit * 4 * timespan cannot overflow 256 bits (CalculateNextWorkRequired).
        if !params.no_retargeting {
            let factor = 4 * u128::from(params.pow_target_timespan);
            assert!(be_lt_div(&params.pow_limit.to_be_bytes(), &[0xff; 32], factor), "{network}");
        }
    }
}

/// `a < b / d` for big-endian 256-bit `a`, `b` and a small `d`.
fn be_lt_div(a: &[u8; 32], b: &[u8; 32], d: u128) -> bool {
    let mut q = [0u8; 32];
    let mut rem = 0u128;
    for (i, &byte) in b.iter().enumerate() {
        let cur = (rem << 8) | u128::from(byte);
        q[i] = (cur / d) as u8;
        rem = cur % d;
    }
    a < &q
}

#[test]
fn pow_parameters_match_core() {
    // (network, powLimit compact, timespan, interval, min-difficulty, no-retargeting, bip94)
    let table = [
        (Network::Main, 0x1d00ffff, 1_209_600, 2016, false, false, false),
        (Network::Test, 0x1d00ffff, 1_209_600, 2016, true, false, false),
        (Network::Testnet4, 0x1d00ffff, 1_209_600, 2016, true, false, true),
        (Network::Signet, 0x1e0377ae, 1_209_600, 2016, false, false, false),
        (Network::Regtest, 0x207fffff, 86_400, 144, true, true, false),
    ];
    for (network, limit_bits, timespan, interval, min_diff, no_retarget, bip94) in table {
        let p = ChainParams::new(network);
        assert_eq!(p.pow_limit.to_compact_lossy(), CompactTarget::from_consensus(limit_bits), "{network}");
        assert_eq!(p.pow_target_spacing, 600, "{network}");
        assert_eq!(p.pow_target_timespan, timespan, "{network}");
        assert_eq!(p.difficulty_adjustment_interval(), interval, "{network}");
        assert_eq!(p.allow_min_difficulty_blocks, min_diff, "{network}");
        assert_eq!(p.no_retargeting, no_retarget, "{network}");
        assert_eq!(p.enforce_bip94, bip94, "{network}");
    }
    assert_eq!(
        ChainParams::new(Network::Signet).pow_limit.to_be_bytes()[..6],
        [0x00, 0x00, 0x03, 0x77, 0xae, 0x00],
        "signet powLimit 00000377ae00…"
    );
    assert_eq!(ChainParams::new(Network::Regtest).pow_limit.to_be_bytes(), {
        let mut b = [0xff; 32];
        b[0] = 0x7f;
        b
    });
}

#[test]
fn minimum_chain_work_matches_core() {
    let table = [
        (Network::Main, "0000000000000000000000000000000000000001128750f82f4c366153a3a030"),
        (Network::Test, "0000000000000000000000000000000000000000000017dde1c649f3708d14b6"),
        (Network::Testnet4, "0000000000000000000000000000000000000000000009a0fe15d0177d086304"),
        (Network::Signet, "00000000000000000000000000000000000000000000000000000b463ea0a4b8"),
        (Network::Regtest, "0000000000000000000000000000000000000000000000000000000000000000"),
    ];
    for (network, work) in table {
        assert_eq!(format!("{:x}", ChainParams::new(network).minimum_chain_work), work, "{network}");
    }
}

#[test]
fn buried_deployment_heights_match_core() {
    let table = [
        (Network::Main, 227931, 388381, 363725),
        (Network::Test, 21111, 581885, 330776),
        (Network::Testnet4, 1, 1, 1),
        (Network::Signet, 1, 1, 1),
        (Network::Regtest, 1, 1, 1),
    ];
    for (network, bip34, bip65, bip66) in table {
        let p = ChainParams::new(network);
        assert_eq!((p.bip34_height, p.bip65_height, p.bip66_height), (bip34, bip65, bip66), "{network}");
    }
}

/// `ContextualCheckBlockHeader` rejects `nVersion < 2` once BIP34 is active for the new header
/// (`DeploymentActiveAfter(pindexPrev)`: `pindexPrev->nHeight + 1 >= BIP34Height`, i.e. the new
/// header's own height is >= the deployment height), likewise 3 for BIP66 and 4 for BIP65.
#[test]
fn min_version_boundaries_on_mainnet() {
    let p = ChainParams::new(Network::Main);
    let table = [
        (0, 1),
        (227_930, 1),
        (227_931, 2),
        (227_932, 2),
        (363_724, 2),
        (363_725, 3),
        (363_726, 3),
        (388_380, 3),
        (388_381, 4),
        (388_382, 4),
        (u32::MAX, 4),
    ];
    for (height, version) in table {
        assert_eq!(p.min_version_at(height), version, "height {height}");
    }
}

#[test]
fn min_version_boundaries_on_testnet3_and_height_one_networks() {
    let p = ChainParams::new(Network::Test);
    for (height, version) in [(21_110, 1), (21_111, 2), (330_775, 2), (330_776, 3), (581_884, 3), (581_885, 4)] {
        assert_eq!(p.min_version_at(height), version, "testnet3 height {height}");
    }
    for network in [Network::Testnet4, Network::Signet, Network::Regtest] {
        let p = ChainParams::new(network);
        assert_eq!(p.min_version_at(0), 1, "{network}");
        assert_eq!(p.min_version_at(1), 4, "{network}");
    }
}

/// Core's checks are independent, so a (hypothetical) BIP65 height below BIP66's still demands 4.
#[test]
fn min_version_takes_the_highest_active_rule() {
    let mut p = ChainParams::new(Network::Regtest);
    (p.bip34_height, p.bip65_height, p.bip66_height) = (10, 20, 30);
    assert_eq!(p.min_version_at(9), 1);
    assert_eq!(p.min_version_at(10), 2);
    assert_eq!(p.min_version_at(20), 4);
    assert_eq!(p.min_version_at(30), 4);
}
