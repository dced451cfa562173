//! Mines regtest headers (proof of work at regtest's minimum difficulty takes a couple of nonce
//! tries): chains for tests, benchmarks and the load tool's headers mode.

use bitcoin::block::{Header, Version};
use bitcoin::hash_types::TxMerkleNode;
use bitcoin::hashes::Hash;

use super::params::ChainParams;
use super::pow::check_proof_of_work;

/// A header on top of `parent` with time `time` and merkle root salted by `salt`, mined to
/// `parent`'s bits (regtest never retargets).
pub fn mine_child(params: &ChainParams, parent: &Header, time: u32, salt: u64) -> Header {
    let mut root = [0u8; 32];
    root[..8].copy_from_slice(&salt.to_le_bytes());
    let mut h = Header {
        version: Version::from_consensus(0x2000_0000),
        prev_blockhash: parent.block_hash(),
        merkle_root: TxMerkleNode::from_byte_array(root),
        time,
        bits: parent.bits,
        nonce: 0,
    };
    while !check_proof_of_work(h.block_hash(), h.bits, params) {
        h.nonce = h.nonce.wrapping_add(1);
    }
    h
}

/// `n` headers on top of `parent`, one second apart, distinct per `salt`.
pub fn mine_chain(params: &ChainParams, parent: &Header, n: usize, salt: u64) -> Vec<Header> {
    let mut out = Vec::with_capacity(n);
    let mut prev = *parent;
    for i in 0..n {
        let h = mine_child(params, &prev, prev.time + 1, salt.wrapping_mul(0x9E37_79B9).wrapping_add(i as u64));
        out.push(h);
        prev = h;
    }
    out
}
