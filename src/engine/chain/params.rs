//! Per-network consensus parameters for headers (Core's `CChainParams` / `Consensus::Params`).
//!
//! Only what header validation reads: the genesis header, the proof-of-work parameters, the
//! buried BIP34/BIP66/BIP65 heights that set the minimum header version, and the minimum chain
//! work. Every value is the one in Bitcoin Core's `kernel/chainparams.cpp` (signet: the default
//! signet, regtest: without `-testnet4`-style BIP94 or `-testactivationheight` overrides).

use std::str::FromStr;

use bitcoin::block::{Header, Version};
use bitcoin::hash_types::TxMerkleNode;
use bitcoin::pow::{CompactTarget, Target, Work};
use bitcoin::{BlockHash, hashes::Hash};

use crate::base::chainparams::Network;

/// The consensus parameters header validation needs, for one network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainParams {
    /// The network these parameters belong to.
    pub network: Network,
    /// The genesis block's header (height 0).
    pub genesis: Header,
    /// The easiest target a header may carry (Core's `powLimit`).
    pub pow_limit: Target,
    /// Intended seconds between blocks (Core's `nPowTargetSpacing`).
    pub pow_target_spacing: u32,
    /// Intended seconds per difficulty period (Core's `nPowTargetTimespan`).
    pub pow_target_timespan: u32,
    /// Testnet rule: a header more than twice the spacing after its parent may use `pow_limit`.
    pub allow_min_difficulty_blocks: bool,
    /// Regtest: difficulty never changes at period boundaries.
    pub no_retargeting: bool,
    /// BIP94 (testnet4): retarget from the period's first header's bits; timewarp check.
    pub enforce_bip94: bool,
    /// First height at which headers must have version >= 2 (BIP34).
    pub bip34_height: u32,
    /// First height at which headers must have version >= 4 (BIP65).
    pub bip65_height: u32,
    /// First height at which headers must have version >= 3 (BIP66).
    pub bip66_height: u32,
    /// Blocks between halvings of the block subsidy (Core's `nSubsidyHalvingInterval`; used to
    /// build valid test blocks, never to validate).
    pub subsidy_halving_interval: u32,
    /// The best chain must have at least this much total work (Core's `nMinimumChainWork`).
    pub minimum_chain_work: Work,
}

/// Merkle root of the genesis coinbase shared by mainnet, testnet3, signet and regtest.
const SATOSHI_MERKLE_ROOT: &str = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b";
/// powLimit of mainnet, testnet3 and testnet4.
const POW_LIMIT_MAIN: &str = "00000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
/// powLimit of signet.
const POW_LIMIT_SIGNET: &str = "00000377ae000000000000000000000000000000000000000000000000000000";
/// powLimit of regtest.
const POW_LIMIT_REGTEST: &str = "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
const TWO_WEEKS: u32 = 14 * 24 * 60 * 60;
const ONE_DAY: u32 = 24 * 60 * 60;
const TEN_MINUTES: u32 = 10 * 60;

impl ChainParams {
    /// Bitcoin Core's parameters for `network` (the default signet for [`Network::Signet`]).
    pub fn new(network: Network) -> ChainParams {
        match network {
            Network::Main => ChainParams {
                network,
                genesis: genesis_header(SATOSHI_MERKLE_ROOT, 1231006505, 2083236893, 0x1d00ffff),
                pow_limit: target(POW_LIMIT_MAIN),
                pow_target_spacing: TEN_MINUTES,
                pow_target_timespan: TWO_WEEKS,
                allow_min_difficulty_blocks: false,
                no_retargeting: false,
                enforce_bip94: false,
                bip34_height: 227931,
                bip65_height: 388381,
                bip66_height: 363725,
                subsidy_halving_interval: 210_000,
                minimum_chain_work: work("0000000000000000000000000000000000000001128750f82f4c366153a3a030"),
            },
            Network::Test => ChainParams {
                network,
                genesis: genesis_header(SATOSHI_MERKLE_ROOT, 1296688602, 414098458, 0x1d00ffff),
                pow_limit: target(POW_LIMIT_MAIN),
                pow_target_spacing: TEN_MINUTES,
                pow_target_timespan: TWO_WEEKS,
                allow_min_difficulty_blocks: true,
                no_retargeting: false,
                enforce_bip94: false,
                bip34_height: 21111,
                bip65_height: 581885,
                bip66_height: 330776,
                subsidy_halving_interval: 210_000,
                minimum_chain_work: work("0000000000000000000000000000000000000000000017dde1c649f3708d14b6"),
            },
            Network::Testnet4 => ChainParams {
                network,
                genesis: genesis_header(
                    "7aa0a7ae1e223414cb807e40cd57e667b718e42aaf9306db9102fe28912b7b4e",
                    1714777860,
                    393743547,
                    0x1d00ffff,
                ),
                pow_limit: target(POW_LIMIT_MAIN),
                pow_target_spacing: TEN_MINUTES,
                pow_target_timespan: TWO_WEEKS,
                allow_min_difficulty_blocks: true,
                no_retargeting: false,
                enforce_bip94: true,
                bip34_height: 1,
                bip65_height: 1,
                bip66_height: 1,
                subsidy_halving_interval: 210_000,
                minimum_chain_work: work("0000000000000000000000000000000000000000000009a0fe15d0177d086304"),
            },
            Network::Signet => ChainParams {
                network,
                genesis: genesis_header(SATOSHI_MERKLE_ROOT, 1598918400, 52613770, 0x1e0377ae),
                pow_limit: target(POW_LIMIT_SIGNET),
                pow_target_spacing: TEN_MINUTES,
                pow_target_timespan: TWO_WEEKS,
                allow_min_difficulty_blocks: false,
                no_retargeting: false,
                enforce_bip94: false,
                bip34_height: 1,
                bip65_height: 1,
                bip66_height: 1,
                subsidy_halving_interval: 210_000,
                minimum_chain_work: work("00000000000000000000000000000000000000000000000000000b463ea0a4b8"),
            },
            Network::Regtest => ChainParams {
                network,
                genesis: genesis_header(SATOSHI_MERKLE_ROOT, 1296688602, 2, 0x207fffff),
                pow_limit: target(POW_LIMIT_REGTEST),
                pow_target_spacing: TEN_MINUTES,
                pow_target_timespan: ONE_DAY,
                allow_min_difficulty_blocks: true,
                no_retargeting: true,
                enforce_bip94: false,
                bip34_height: 1,
                bip65_height: 1,
                bip66_height: 1,
                subsidy_halving_interval: 150,
                minimum_chain_work: Work::from_le_bytes([0; 32]),
            },
        }
    }

    /// Headers per difficulty period: 2016, or 144 on regtest (Core's `DifficultyAdjustmentInterval`).
    pub fn difficulty_adjustment_interval(&self) -> u32 {
        self.pow_target_timespan / self.pow_target_spacing
    }

    /// The lowest header version accepted at `height`, as Core's `ContextualCheckBlockHeader`
    /// rejects `bad-version`: a buried deployment is active for a header at height `h` when
    /// `h >= its height`, and then requires version 2 (BIP34), 3 (BIP66) or 4 (BIP65).
    pub fn min_version_at(&self, height: u32) -> i32 {
        let mut min = 1;
        if height >= self.bip34_height {
            min = 2;
        }
        if height >= self.bip66_height {
            min = min.max(3);
        }
        if height >= self.bip65_height {
            min = 4;
        }
        min
    }

    /// The genesis header's hash.
    pub fn genesis_hash(&self) -> BlockHash {
        self.genesis.block_hash()
    }
}

/// A genesis header as Core's `CreateGenesisBlock` builds it: version 1, no parent.
fn genesis_header(merkle_root: &str, time: u32, nonce: u32, bits: u32) -> Header {
    Header {
        version: Version::ONE,
        prev_blockhash: BlockHash::all_zeros(),
        merkle_root: TxMerkleNode::from_str(merkle_root).expect("constant merkle root hex"),
        time,
        bits: CompactTarget::from_consensus(bits),
        nonce,
    }
}

fn target(hex: &str) -> Target {
    Target::from_unprefixed_hex(hex).expect("constant target hex")
}

fn work(hex: &str) -> Work {
    Work::from_unprefixed_hex(hex).expect("constant work hex")
}

#[cfg(test)]
mod tests;
