//! Builds real regtest blocks for tests and benchmarks, the way Core's miner does: a coinbase
//! carrying its BIP34 height and paying subsidy plus fees, the segwit witness commitment,
//! transactions spending earlier (mature) outputs, the merkle root, and a header mined to
//! regtest's target. It builds blocks; it never judges them (validation is the kernel's).

use std::collections::VecDeque;

use bitcoin::blockdata::block::{Block, Header, Version};
use bitcoin::blockdata::opcodes::all::{OP_PUSHBYTES_0, OP_PUSHNUM_1, OP_RETURN};
use bitcoin::blockdata::script::{Builder, ScriptBuf};
use bitcoin::blockdata::transaction::{OutPoint, Sequence, Transaction, TxIn, TxOut};
use bitcoin::hashes::Hash;
use bitcoin::{Amount, TxMerkleNode, Witness, absolute, transaction};

use super::params::ChainParams;
use super::pow::check_proof_of_work;

/// Core's `COINBASE_MATURITY`: a coinbase output is spendable this many blocks later.
pub const COINBASE_MATURITY: u32 = 100;
/// The fee each generated spending transaction pays.
pub const FEE: Amount = Amount::from_sat(1_000);
/// BIP141's commitment header in the coinbase's `OP_RETURN` output.
const WITNESS_COMMITMENT_HEADER: [u8; 4] = [0xaa, 0x21, 0xa9, 0xed];

/// Core's `GetBlockSubsidy`: 50 BTC halved every `subsidy_halving_interval` blocks.
pub fn subsidy(params: &ChainParams, height: u32) -> Amount {
    let halvings = height / params.subsidy_halving_interval.max(1);
    if halvings >= 64 { Amount::ZERO } else { Amount::from_sat((50 * 100_000_000u64) >> halvings) }
}

/// The output script of generated outputs: `OP_TRUE`, spendable by an empty script.
pub fn anyone_can_spend() -> ScriptBuf {
    Builder::new().push_opcode(OP_PUSHNUM_1).into_script()
}

/// Core's miner coinbase for `height` paying `value` to `OP_TRUE`: the BIP34 height (plus
/// `OP_0` up to height 16, so the script is the 2 bytes consensus wants), lock time
/// `height - 1` with a non-final sequence, and the 32-byte witness reserved value.
pub fn coinbase(height: u32, value: Amount) -> Transaction {
    let mut script = Builder::new().push_int(i64::from(height));
    if height <= 16 {
        script = script.push_opcode(OP_PUSHBYTES_0);
    }
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::from_consensus(height.saturating_sub(1)),
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: script.into_script(),
            sequence: Sequence::ENABLE_LOCKTIME_NO_RBF,
            witness: Witness::from_slice(&[[0u8; 32]]),
        }],
        output: vec![TxOut { value, script_pubkey: anyone_can_spend() }],
    }
}

/// Puts `txs` (coinbase first) under a header on `prev` with `time`, adds the witness
/// commitment to the coinbase, sets the merkle root and mines the nonce for `params`' target.
pub fn assemble(params: &ChainParams, prev: &Header, time: u32, txs: Vec<Transaction>) -> Block {
    let mut block = Block {
        header: Header {
            version: Version::from_consensus(0x2000_0000),
            prev_blockhash: prev.block_hash(),
            merkle_root: TxMerkleNode::all_zeros(),
            time,
            bits: prev.bits,
            nonce: 0,
        },
        txdata: txs,
    };
    // The witness root counts the coinbase as zero, so it can be taken before the commitment
    // goes into the coinbase.
    if let Some(root) = block.witness_root() {
        let commitment = Block::compute_witness_commitment(&root, &[0u8; 32]);
        let mut data = WITNESS_COMMITMENT_HEADER.to_vec();
        data.extend_from_slice(commitment.as_byte_array());
        let push = bitcoin::script::PushBytesBuf::try_from(data).unwrap_or_default();
        let script = Builder::new().push_opcode(OP_RETURN).push_slice(push).into_script();
        if let Some(cb) = block.txdata.first_mut() {
            cb.output.push(TxOut { value: Amount::ZERO, script_pubkey: script });
        }
    }
    block.header.merkle_root = block.compute_merkle_root().unwrap_or_else(TxMerkleNode::all_zeros);
    while !check_proof_of_work(block.header.block_hash(), block.header.bits, params) {
        block.header.nonce = block.header.nonce.wrapping_add(1);
    }
    block
}

/// A chain of valid regtest blocks: each new block spends up to the asked number of the oldest
/// mature outputs, one transaction each (one input, one `OP_TRUE` output, [`FEE`] less).
pub struct BlockGen {
    params: ChainParams,
    tip: Header,
    height: u32,
    /// Unspent coinbase outputs, oldest first, with the height of their block.
    coinbases: VecDeque<(OutPoint, Amount, u32)>,
    /// Unspent outputs of generated spends, oldest first (spendable from the next block on).
    outputs: VecDeque<(OutPoint, Amount)>,
}

impl BlockGen {
    /// Blocks on top of `params`' genesis.
    pub fn new(params: ChainParams) -> Self {
        let tip = params.genesis;
        BlockGen { params, tip, height: 0, coinbases: VecDeque::new(), outputs: VecDeque::new() }
    }

    /// Height of the last block made (0: genesis).
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The last block's header.
    pub fn tip(&self) -> Header {
        self.tip
    }

    /// The next block, at `time`, with up to `spends` spending transactions.
    pub fn next_block(&mut self, time: u32, spends: usize) -> Block {
        let height = self.height + 1;
        let mut txs = Vec::with_capacity(spends + 1);
        let mut fees = Amount::ZERO;
        let mut made = Vec::new();
        while txs.len() < spends {
            // The oldest output of an earlier spend, else the oldest mature coinbase.
            let mature = self.coinbases.front().is_some_and(|c| height >= c.2 + COINBASE_MATURITY);
            let next = match self.outputs.pop_front() {
                Some(o) => o,
                None if mature => match self.coinbases.pop_front() {
                    Some((outpoint, value, _)) => (outpoint, value),
                    None => break,
                },
                None => break,
            };
            let (outpoint, value) = next;
            let Some(change) = value.checked_sub(FEE).filter(|c| *c > Amount::ZERO) else { continue };
            let tx = Transaction {
                version: transaction::Version::TWO,
                lock_time: absolute::LockTime::ZERO,
                input: vec![TxIn {
                    previous_output: outpoint,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::MAX,
                    witness: Witness::new(),
                }],
                output: vec![TxOut { value: change, script_pubkey: anyone_can_spend() }],
            };
            fees += FEE;
            made.push((OutPoint { txid: tx.compute_txid(), vout: 0 }, change));
            txs.push(tx);
        }
        let reward = subsidy(&self.params, height) + fees;
        txs.insert(0, coinbase(height, reward));
        let block = assemble(&self.params, &self.tip, time, txs);
        // The coinbase's id is final only once the witness commitment is in it.
        if let Some(cb) = block.txdata.first() {
            self.coinbases.push_back((OutPoint { txid: cb.compute_txid(), vout: 0 }, reward, height));
        }
        self.outputs.extend(made);
        self.tip = block.header;
        self.height = height;
        block
    }
}

#[cfg(test)]
mod tests;
