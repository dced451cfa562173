//! BIP152 compact blocks (version 2, witness), I/O-free: building a `cmpctblock` from a block,
//! reconstructing a block from a `cmpctblock` and a `blocktxn` with no mempool (Core's
//! `PartiallyDownloadedBlock`), answering `getblocktxn`, the depth rules for serving, a peer's
//! `sendcmpct` state, and the choice of up to three high-bandwidth peers
//! (`MaybeSetPeerAsAnnouncingHeaderAndIDs`). Reference: Core's `blockencodings.cpp` and the
//! compact-block parts of `net_processing.cpp`.
//!
//! Reconstruction only proves that the transactions match the header (Core's `IsBlockMutated`,
//! which `FillBlock` runs to catch short-id collisions). Whether the block is valid is the
//! kernel's to say.

use std::collections::{HashSet, VecDeque};

use bitcoin::bip152::{BlockTransactions, BlockTransactionsRequest, HeaderAndShortIds};
use bitcoin::block::Header;
use bitcoin::hashes::{Hash, sha256d};
use bitcoin::p2p::message_compact_blocks::{BlockTxn, CmpctBlock, SendCmpct};
use bitcoin::{Block, BlockHash, Transaction};

use crate::base::peer::PeerId;

/// Core's `CMPCTBLOCKS_VERSION`: the only compact-block version relayed (2, with witnesses).
pub const CMPCTBLOCKS_VERSION: u64 = 2;
/// Core's `SHORT_IDS_BLOCKS_VERSION`: the protocol version from which peers speak BIP152.
pub const SHORT_IDS_BLOCKS_VERSION: i32 = 70014;
/// Core's `INVALID_CB_NO_BAN_VERSION`: from this protocol version on, peers take `cmpctblock`
/// announcements of blocks whose header only is validated.
pub const INVALID_CB_NO_BAN_VERSION: i32 = 70015;
/// Core's `MAX_CMPCTBLOCK_DEPTH`: deeper blocks asked for as `MSG_CMPCT_BLOCK` are sent whole.
pub const MAX_CMPCTBLOCK_DEPTH: u32 = 5;
/// Core's `MAX_BLOCKTXN_DEPTH`: `getblocktxn` for deeper blocks is answered with the whole block.
pub const MAX_BLOCKTXN_DEPTH: u32 = 10;
/// Core's `MAX_CMPCTBLOCKS_INFLIGHT_PER_BLOCK`: outstanding compact requests for one block.
pub const MAX_CMPCTBLOCKS_INFLIGHT_PER_BLOCK: usize = 3;
/// BIP152's limit (Core's literal 3) on the peers asked to announce with `cmpctblock`.
pub const MAX_HIGH_BANDWIDTH_PEERS: usize = 3;
/// Core's `MAX_BLOCK_WEIGHT / MIN_SERIALIZABLE_TRANSACTION_WEIGHT` (4,000,000 / 40): no block
/// can hold more transactions.
pub const MAX_BLOCK_TX_COUNT: usize = 100_000;
/// BIP141's commitment output prefix: `OP_RETURN`, a 36-byte push, then `aa21a9ed`.
const WITNESS_COMMITMENT_PREFIX: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
/// Core's `MINIMUM_WITNESS_COMMITMENT`: the prefix and the 32-byte commitment.
const MINIMUM_WITNESS_COMMITMENT: usize = 38;

/// What the caller does about a [`CompactError`], following Core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The peer sent bogus data (Core's `READ_STATUS_INVALID`, or a `Misbehaving` call):
    /// punish it.
    Punish,
    /// Possibly an honest short-id collision (Core's `READ_STATUS_FAILED`): no punishment;
    /// fetch the whole block with `getdata` if this peer was first in flight, else give up on
    /// this peer for the block.
    FallBack,
    /// Core could not even deserialize such a message: it drops it without punishment.
    Ignore,
}

/// Why a compact-block message could not be used. [`CompactError::verdict`] says what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// The `cmpctblock`'s header is null (zero `bits`, Core's `CBlockHeader::IsNull`).
    #[error("invalid compact block: null header")]
    NullHeader,
    /// The `cmpctblock` has neither short ids nor prefilled transactions.
    #[error("invalid compact block: no transactions")]
    NoTransactions,
    /// Short ids plus prefilled transactions exceed 16-bit indexes (Core's deserializer
    /// refuses the message: "indexes overflowed 16 bits").
    #[error("compact block of {count} transactions: indexes overflow 16 bits")]
    TxCountOverflow {
        /// Short ids plus prefilled transactions.
        count: usize,
    },
    /// More transactions than a block of the maximum weight can hold.
    #[error("invalid compact block: {count} transactions exceed {MAX_BLOCK_TX_COUNT}")]
    TooManyTransactions {
        /// Short ids plus prefilled transactions.
        count: usize,
    },
    /// A prefilled transaction has neither inputs nor outputs (Core's `CTransaction::IsNull`).
    #[error("invalid compact block: prefilled transaction {position} is null")]
    NullPrefilledTx {
        /// Position in the prefilled list.
        position: usize,
    },
    /// A prefilled transaction's index, differentially decoded, exceeds 16 bits.
    #[error("invalid compact block: prefilled transaction {position} index overflows 16 bits")]
    PrefilledIndexOverflow {
        /// Position in the prefilled list.
        position: usize,
    },
    /// A prefilled transaction's index leaves slots that neither a short id nor a prefilled
    /// transaction fills.
    #[error("invalid compact block: prefilled transaction {position} at index {index} is out of range")]
    PrefilledIndexOutOfRange {
        /// Position in the prefilled list.
        position: usize,
        /// The decoded block index.
        index: u32,
    },
    /// Two short ids are equal: a collision, or a crafted message (Core: `READ_STATUS_FAILED`).
    #[error("compact block short id collision")]
    ShortIdCollision,
    /// The `blocktxn` holds fewer transactions than the block misses.
    #[error("invalid compact block/non-matching block transactions: {got} sent, {expected} missing")]
    TooFewTransactions {
        /// Transactions the block misses.
        expected: usize,
        /// Transactions sent.
        got: usize,
    },
    /// The `blocktxn` holds more transactions than the block misses.
    #[error("invalid compact block/non-matching block transactions: {got} sent, {expected} missing")]
    TooManyBlockTxn {
        /// Transactions the block misses.
        expected: usize,
        /// Transactions sent.
        got: usize,
    },
    /// The reconstructed block does not match its header (merkle root, merkle mutation,
    /// 64-byte transactions without a coinbase, or witness commitment): possibly a short-id
    /// collision (Core: `READ_STATUS_FAILED`).
    #[error("reconstructed block does not match its header: {0}")]
    Mutated(Mutation),
    /// A `getblocktxn` index is not below the block's transaction count.
    #[error("getblocktxn with out-of-bounds tx indices: {index} of {tx_count}")]
    RequestIndexOutOfRange {
        /// The first index out of range.
        index: u64,
        /// The block's transaction count.
        tx_count: usize,
    },
    /// A `getblocktxn` index exceeds 16 bits (Core's deserializer refuses the message).
    #[error("getblocktxn index {index} overflows 16 bits")]
    RequestIndexOverflow {
        /// The index.
        index: u64,
    },
    /// A `sendcmpct` announce byte other than 0 or 1.
    #[error("invalid sendcmpct announce field {value}")]
    InvalidAnnounce {
        /// The byte received.
        value: u8,
    },
}

impl CompactError {
    /// What the caller does about it, as Core does.
    pub fn verdict(&self) -> Verdict {
        use CompactError as E;
        match self {
            E::TxCountOverflow { .. } | E::RequestIndexOverflow { .. } => Verdict::Ignore,
            E::ShortIdCollision | E::Mutated(_) => Verdict::FallBack,
            E::NullHeader
            | E::NoTransactions
            | E::TooManyTransactions { .. }
            | E::NullPrefilledTx { .. }
            | E::PrefilledIndexOverflow { .. }
            | E::PrefilledIndexOutOfRange { .. }
            | E::TooFewTransactions { .. }
            | E::TooManyBlockTxn { .. }
            | E::RequestIndexOutOfRange { .. }
            | E::InvalidAnnounce { .. } => Verdict::Punish,
        }
    }

    /// Whether the sender is to be punished (Core's `Misbehaving`).
    pub fn is_misbehaviour(&self) -> bool {
        self.verdict() == Verdict::Punish
    }
}

/// How a block's transactions fail to match its header (Core's `IsBlockMutated` reasons).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Mutation {
    /// The transactions' merkle root differs from the header's (`bad-txnmrklroot`).
    #[error("bad-txnmrklroot")]
    MerkleRoot,
    /// The merkle tree repeats a subtree (CVE-2012-2459, `bad-txns-duplicate`).
    #[error("bad-txns-duplicate")]
    DuplicateTransactions,
    /// No coinbase first, and a transaction of 64 bytes without witness.
    #[error("64-byte transaction in a block without coinbase")]
    SixtyFourByteTransaction,
    /// The coinbase's witness reserved value is not one 32-byte item (`bad-witness-nonce-size`).
    #[error("bad-witness-nonce-size")]
    WitnessNonceSize,
    /// The witness commitment differs from the witnesses (`bad-witness-merkle-match`).
    #[error("bad-witness-merkle-match")]
    WitnessMerkleMatch,
    /// Witness data in a block that commits to none (`unexpected-witness`).
    #[error("unexpected-witness")]
    UnexpectedWitness,
}

/// The `cmpctblock` for `block` (Core's `CBlockHeaderAndShortTxIDs` constructor): version 2,
/// the coinbase prefilled, every other transaction as the short id of its wtxid under `nonce`
/// (which should be random and differ between blocks).
pub fn compact_from_block(block: &Block, nonce: u64) -> CmpctBlock {
    // rust-bitcoin's `from_block` fails only for a version other than 1 and 2, or prefill
    // indexes it did not reach; with version 2 and no extra prefill neither can happen, so
    // the fallback below is never taken.
    let compact_block = HeaderAndShortIds::from_block(block, nonce, 2, &[]).unwrap_or_else(|_| HeaderAndShortIds {
        header: block.header,
        nonce,
        short_ids: Vec::new(),
        prefilled_txs: Vec::new(),
    });
    CmpctBlock { compact_block }
}

/// A block being reconstructed from a `cmpctblock` (Core's `PartiallyDownloadedBlock`). With no
/// mempool, every transaction not prefilled is missing and asked for with `getblocktxn`.
#[derive(Clone, Debug)]
pub struct PartialBlock {
    header: Header,
    /// The number of transactions in the block.
    count: usize,
    /// The prefilled transactions with their block index, ascending. (Only these are kept, so
    /// memory follows the message's bytes, not the count it claims.)
    prefilled: Vec<(usize, Transaction)>,
}

impl PartialBlock {
    /// Core's `InitData` with an empty mempool: checks the `cmpctblock` and places the prefilled
    /// transactions. Errors are [`Verdict::Punish`] for a malformed message,
    /// [`Verdict::FallBack`] for duplicate short ids, [`Verdict::Ignore`] for what Core cannot
    /// deserialize.
    pub fn new(cmpct: &CmpctBlock) -> Result<PartialBlock, CompactError> {
        let c = &cmpct.compact_block;
        let count = c.short_ids.len().saturating_add(c.prefilled_txs.len());
        // Core's deserializer refuses this before `InitData` ever sees the message.
        if count > usize::from(u16::MAX) {
            return Err(CompactError::TxCountOverflow { count });
        }
        if c.header.bits.to_consensus() == 0 {
            return Err(CompactError::NullHeader);
        }
        if count == 0 {
            return Err(CompactError::NoTransactions);
        }
        // Core's weight bound; 16-bit indexes (above) already keep counts below it.
        if count > MAX_BLOCK_TX_COUNT {
            return Err(CompactError::TooManyTransactions { count });
        }
        let mut prefilled = Vec::with_capacity(c.prefilled_txs.len());
        // Differential encoding: each index is the previous one plus the encoded value plus one,
        // so indexes strictly increase by construction; only their range needs checking.
        let mut last: i64 = -1;
        for (position, p) in c.prefilled_txs.iter().enumerate() {
            if p.tx.input.is_empty() && p.tx.output.is_empty() {
                return Err(CompactError::NullPrefilledTx { position });
            }
            last += i64::from(p.idx) + 1;
            let index = u32::try_from(last)
                .ok()
                .filter(|i| *i <= u32::from(u16::MAX))
                .ok_or(CompactError::PrefilledIndexOverflow { position })?;
            // Beyond the short ids plus the prefilled transactions placed so far, some slot
            // before this one would have neither. (This also keeps every index below `count`.)
            let slot = usize::try_from(index)
                .ok()
                .filter(|i| *i <= c.short_ids.len().saturating_add(position))
                .ok_or(CompactError::PrefilledIndexOutOfRange { position, index })?;
            prefilled.push((slot, p.tx.clone()));
        }
        // Core maps short ids to slots to match its mempool; with none, the map only serves to
        // find duplicates. (Core also gives up when one bucket of its `std::unordered_map`
        // holds more than 12 ids, a guard for that container's chains; this set hashes with
        // random keys and has no such weakness.)
        let mut seen = HashSet::with_capacity(c.short_ids.len());
        if !c.short_ids.iter().all(|id| seen.insert(*id)) {
            return Err(CompactError::ShortIdCollision);
        }
        Ok(PartialBlock { header: c.header, count, prefilled })
    }

    /// The header announced.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The hash of the block being reconstructed.
    pub fn block_hash(&self) -> BlockHash {
        self.header.block_hash()
    }

    /// The number of transactions in the block.
    pub fn tx_count(&self) -> usize {
        self.count
    }

    /// The `getblocktxn` request for every transaction not prefilled (indexes ascending; the
    /// crate's encoder writes them differentially, as BIP152 says). Empty when all were
    /// prefilled: then [`PartialBlock::fill_with`] an empty list, as Core does.
    pub fn missing(&self) -> BlockTransactionsRequest {
        let mut known = self.prefilled.iter().map(|(i, _)| *i).peekable();
        let indexes =
            (0..self.count).filter(|i| known.next_if_eq(i).is_none()).filter_map(|i| u64::try_from(i).ok()).collect();
        BlockTransactionsRequest { block_hash: self.block_hash(), indexes }
    }

    /// Core's `FillBlock` with a `blocktxn`: see [`PartialBlock::fill_with`]. The caller routes
    /// a `blocktxn` here by its block hash ([`PartialBlock::block_hash`]), as Core looks it up
    /// among the blocks in flight; this does not look at the hash again.
    pub fn fill(self, txn: &BlockTxn, segwit_active: bool) -> Result<Block, CompactError> {
        self.fill_with(txn.transactions.transactions.clone(), segwit_active)
    }

    /// Core's `FillBlock`: the missing transactions in order fill the empty slots. Too few or
    /// too many is [`Verdict::Punish`]. A block whose transactions do not match its header
    /// ([`is_block_mutated`], with the witness commitment checked when `segwit_active`, i.e.
    /// segwit is active after the block's parent) is [`Verdict::FallBack`]: a short id may have
    /// collided. A block returned still needs the kernel's validation.
    pub fn fill_with(self, missing: Vec<Transaction>, segwit_active: bool) -> Result<Block, CompactError> {
        let expected = self.count.saturating_sub(self.prefilled.len());
        let got = missing.len();
        if got < expected {
            return Err(CompactError::TooFewTransactions { expected, got });
        }
        if got > expected {
            return Err(CompactError::TooManyBlockTxn { expected, got });
        }
        let mut missing = missing.into_iter();
        let mut prefilled = self.prefilled.into_iter().peekable();
        let mut txdata = Vec::with_capacity(self.count);
        for i in 0..self.count {
            let known = prefilled.next_if(|(at, _)| *at == i).map(|(_, tx)| tx);
            match known.or_else(|| missing.next()) {
                Some(tx) => txdata.push(tx),
                None => return Err(CompactError::TooFewTransactions { expected, got }),
            }
        }
        let block = Block { header: self.header, txdata };
        match is_block_mutated(&block, segwit_active) {
            Some(m) => Err(CompactError::Mutated(m)),
            None => Ok(block),
        }
    }
}

/// Core's `IsBlockMutated`: whether `block`'s transactions fail to match its header, and how.
/// It checks the merkle root (computed by rust-bitcoin) and the tree's duplicate-subtree
/// malleability; without a coinbase first, any 64-byte transaction; with a coinbase, the
/// witnesses against the commitment when `check_witness_root`, else that there are none. This
/// is not validation: a block that passes may still be invalid, which is the kernel's to judge.
pub fn is_block_mutated(block: &Block, check_witness_root: bool) -> Option<Mutation> {
    if block.txdata.is_empty() {
        // Core's merkle root of no transactions is zero; such a block is not "mutated" (it is
        // invalid, which validation says).
        return (block.header.merkle_root != bitcoin::TxMerkleNode::all_zeros()).then_some(Mutation::MerkleRoot);
    }
    if !block.check_merkle_root() {
        return Some(Mutation::MerkleRoot);
    }
    if merkle_tree_mutated(block) {
        return Some(Mutation::DuplicateTransactions);
    }
    let Some(coinbase) = block.txdata.first().filter(|tx| tx.is_coinbase()) else {
        // Core: a block without a coinbase is invalid anyway; 64-byte transactions could be
        // inner merkle nodes in disguise.
        return block.txdata.iter().any(|tx| tx.base_size() == 64).then_some(Mutation::SixtyFourByteTransaction);
    };
    if check_witness_root {
        let commitment = coinbase.output.iter().rev().find_map(|o| {
            let spk = o.script_pubkey.as_bytes();
            let prefixed = spk.len() >= MINIMUM_WITNESS_COMMITMENT && spk.starts_with(&WITNESS_COMMITMENT_PREFIX);
            spk.get(WITNESS_COMMITMENT_PREFIX.len()..MINIMUM_WITNESS_COMMITMENT).filter(|_| prefixed)
        });
        if let Some(commitment) = commitment {
            let witness = coinbase.input.first().map(|i| &i.witness);
            let reserved = witness.filter(|w| w.len() == 1).and_then(|w| w.nth(0)).filter(|r| r.len() == 32);
            let Some(reserved) = reserved else { return Some(Mutation::WitnessNonceSize) };
            let computed = block.witness_root().map(|root| Block::compute_witness_commitment(&root, reserved));
            return match computed {
                Some(c) if c.as_byte_array().as_slice() == commitment => None,
                _ => Some(Mutation::WitnessMerkleMatch),
            };
        }
    }
    let has_witness = block.txdata.iter().any(|tx| tx.input.iter().any(|i| !i.witness.is_empty()));
    has_witness.then_some(Mutation::UnexpectedWitness)
}

/// The mutation flag of Core's `ComputeMerkleRoot`: on some level of the tree two paired nodes
/// are equal (the odd node's self-pairing excepted), so a shorter transaction list would give
/// the same root (CVE-2012-2459). rust-bitcoin's root computation does not report this.
fn merkle_tree_mutated(block: &Block) -> bool {
    let mut level: Vec<sha256d::Hash> = block.txdata.iter().map(|tx| tx.compute_txid().to_raw_hash()).collect();
    let mut mutated = false;
    while level.len() > 1 {
        mutated |= level.chunks_exact(2).any(|pair| pair.first() == pair.get(1));
        if level.len() % 2 == 1
            && let Some(last) = level.last().copied()
        {
            level.push(last);
        }
        level = level
            .chunks_exact(2)
            .map(|pair| {
                let mut engine = sha256d::Hash::engine();
                for h in pair {
                    bitcoin::hashes::HashEngine::input(&mut engine, h.as_byte_array());
                }
                sha256d::Hash::from_engine(engine)
            })
            .collect();
    }
    mutated
}

/// Core's `SendBlockTransactions`: the `blocktxn` answer to `getblocktxn` from `block`. An index
/// not below the transaction count is [`Verdict::Punish`] ("getblocktxn with out-of-bounds tx
/// indices"); one above 16 bits is [`Verdict::Ignore`] (Core's deserializer refuses it).
pub fn answer_getblocktxn(block: &Block, req: &BlockTransactionsRequest) -> Result<BlockTransactions, CompactError> {
    if let Some(index) = req.indexes.iter().copied().find(|i| *i > u64::from(u16::MAX)) {
        return Err(CompactError::RequestIndexOverflow { index });
    }
    BlockTransactions::from_request(req, block).map_err(|_| {
        let tx_count = block.txdata.len();
        let index = req.indexes.iter().copied().find(|i| usize::try_from(*i).map_or(true, |i| i >= tx_count));
        CompactError::RequestIndexOutOfRange { index: index.unwrap_or(u64::MAX), tx_count }
    })
}

/// How to answer a `getblocktxn` for a block we have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetBlockTxnReply {
    /// A `blocktxn` ([`answer_getblocktxn`]).
    BlockTxn,
    /// The whole block, as for `getdata MSG_WITNESS_BLOCK` (with that request's own checks).
    FullBlock,
}

/// Core's rule for `getblocktxn` on a block we have at `block_height` with our active tip at
/// `tip_height`: the most recent block (Core's `m_most_recent_block`) and any block at most
/// [`MAX_BLOCKTXN_DEPTH`] below the tip's height get a `blocktxn`; older ones the whole block,
/// so a peer cannot make us read much from disk while receiving little. A block we lack gets
/// no answer (the caller's check).
pub fn getblocktxn_reply(block_height: u32, tip_height: u32, is_most_recent: bool) -> GetBlockTxnReply {
    let shallow = i64::from(block_height) >= i64::from(tip_height) - i64::from(MAX_BLOCKTXN_DEPTH);
    if is_most_recent || shallow { GetBlockTxnReply::BlockTxn } else { GetBlockTxnReply::FullBlock }
}

/// How to answer `getdata MSG_CMPCT_BLOCK` for a block we have and may serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpctGetDataReply {
    /// A `cmpctblock` (the cached one if it is this block, else [`compact_from_block`]).
    CmpctBlock,
    /// The whole block with witnesses.
    FullBlock,
}

/// Core's rule for `getdata MSG_CMPCT_BLOCK`: a `cmpctblock` when our tip is recent
/// (`can_direct_fetch`, Core's `CanDirectFetch`: tip time within 20 block intervals of now) and
/// the block is at most [`MAX_CMPCTBLOCK_DEPTH`] below the tip's height; else the whole block,
/// as a peer asking for old blocks has no mempool to match short ids against.
pub fn getdata_cmpct_reply(block_height: u32, tip_height: u32, can_direct_fetch: bool) -> CmpctGetDataReply {
    let shallow = i64::from(block_height) >= i64::from(tip_height) - i64::from(MAX_CMPCTBLOCK_DEPTH);
    if can_direct_fetch && shallow { CmpctGetDataReply::CmpctBlock } else { CmpctGetDataReply::FullBlock }
}

/// The `sendcmpct` we send after the peer's `verack` (Core: to every peer whose common version
/// is at least [`SHORT_IDS_BLOCKS_VERSION`]): we provide version 2 compact blocks, low
/// bandwidth. Asking for high bandwidth is [`HighBandwidthPeers`]' job.
pub fn sendcmpct_after_verack(common_version: i32) -> Option<SendCmpct> {
    (common_version >= SHORT_IDS_BLOCKS_VERSION)
        .then_some(SendCmpct { send_compact: false, version: CMPCTBLOCKS_VERSION })
}

/// What a peer told us with `sendcmpct` (Core's `m_provides_cmpctblocks`,
/// `m_requested_hb_cmpctblocks`, `m_bip152_highbandwidth_from`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerCompact {
    /// The peer will send us version 2 `cmpctblock`s if we ask.
    pub provides_cmpctblocks: bool,
    /// The peer wants new blocks announced with `cmpctblock` (it chose us high-bandwidth).
    pub requested_hb: bool,
}

/// What a `sendcmpct` did to a [`PeerCompact`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendCmpctEffect {
    /// Version 2: recorded.
    Recorded,
    /// Another version (1, or one not yet defined): ignored, the state is unchanged.
    IgnoredVersion,
}

impl PeerCompact {
    /// Core's `SENDCMPCT` handling with the raw fields: an announce byte other than 0 or 1 is
    /// [`CompactError::InvalidAnnounce`] ([`Verdict::Punish`]); a version other than 2 is
    /// ignored (Core dropped version 1 with its non-witness relay); version 2 sets both flags
    /// (a later `sendcmpct` can switch high bandwidth off or on again).
    pub fn on_sendcmpct(&mut self, announce: u8, version: u64) -> Result<SendCmpctEffect, CompactError> {
        if announce > 1 {
            return Err(CompactError::InvalidAnnounce { value: announce });
        }
        if version != CMPCTBLOCKS_VERSION {
            return Ok(SendCmpctEffect::IgnoredVersion);
        }
        self.provides_cmpctblocks = true;
        self.requested_hb = announce == 1;
        Ok(SendCmpctEffect::Recorded)
    }

    /// [`PeerCompact::on_sendcmpct`] with a decoded message (whose decoder has already refused
    /// an announce byte other than 0 or 1).
    pub fn on_sendcmpct_msg(&mut self, msg: &SendCmpct) -> SendCmpctEffect {
        match self.on_sendcmpct(u8::from(msg.send_compact), msg.version) {
            Ok(effect) => effect,
            // Unreachable: a bool's byte is 0 or 1, the only error is another byte.
            Err(_) => SendCmpctEffect::IgnoredVersion,
        }
    }
}

/// Core's `m_highest_fast_announce`: the node-wide half of `NewPoWValidBlock`, which pushes a
/// `cmpctblock` to high-bandwidth peers as soon as a new block's proof of work is checked and
/// the block stored, before full validation.
#[derive(Clone, Copy, Debug, Default)]
pub struct FastAnnounce {
    highest: u32,
}

impl FastAnnounce {
    /// Whether to fast-announce a new block at `height`: only one higher than any seen so far
    /// (recorded even when the answer is no), and only when segwit is active at it (version 2
    /// compact blocks carry witnesses). Then [`fast_announce_to`] picks the peers.
    pub fn new_pow_valid_block(&mut self, height: u32, segwit_active: bool) -> bool {
        if height <= self.highest {
            return false;
        }
        self.highest = height;
        segwit_active
    }
}

/// Core's per-peer test in `NewPoWValidBlock`: push the new block's `cmpctblock` to a peer that
/// asked for high-bandwidth announcements, speaks [`INVALID_CB_NO_BAN_VERSION`], is not being
/// disconnected, does not have the block's header yet but has (or was sent) its parent's.
pub fn fast_announce_to(
    peer: &PeerCompact,
    common_version: i32,
    disconnecting: bool,
    peer_has_block: bool,
    peer_has_parent: bool,
) -> bool {
    common_version >= INVALID_CB_NO_BAN_VERSION
        && !disconnecting
        && peer.requested_hb
        && !peer_has_block
        && peer_has_parent
}

/// A peer that just gave us a good new block, as [`HighBandwidthPeers::maybe_select`] needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HbCandidate {
    /// The peer.
    pub peer: PeerId,
    /// It connected to us.
    pub inbound: bool,
    /// Its [`PeerCompact::provides_cmpctblocks`].
    pub provides_cmpctblocks: bool,
    /// It finished the handshake and is not being disconnected (Core's `NodeFullyConnected`).
    pub fully_connected: bool,
}

/// The `sendcmpct` messages (version 2) a selection change calls for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HbChange {
    /// Send `sendcmpct(1, 2)` here: the peer is now high-bandwidth.
    pub select: Option<PeerId>,
    /// Send `sendcmpct(0, 2)` here: the peer is high-bandwidth no more.
    pub deselect: Option<PeerId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HbEntry {
    peer: PeerId,
    inbound: bool,
    /// False once the peer is gone; Core keeps a gone peer's id in its list until pushed out.
    connected: bool,
}

/// The peers we asked to announce blocks to us with `cmpctblock` (Core's
/// `lNodesAnnouncingHeaderAndIDs`, oldest first; at most [`MAX_HIGH_BANDWIDTH_PEERS`]).
#[derive(Clone, Debug, Default)]
pub struct HighBandwidthPeers {
    entries: VecDeque<HbEntry>,
}

impl HighBandwidthPeers {
    /// An empty selection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Core's `MaybeSetPeerAsAnnouncingHeaderAndIDs`, called when `candidate` gave us a valid
    /// new block that was the only one in flight, outside initial block download. Nothing when
    /// `enabled` is false (Core is disabled under `-blocksonly`; the caller decides) or the peer
    /// does not provide compact blocks. A peer already chosen moves to the newest place. Else it
    /// is added (if fully connected), and with more than three the oldest is dropped, except
    /// that adding an inbound peer never drops the last outbound one: it is moved to second
    /// oldest first.
    pub fn maybe_select(&mut self, candidate: HbCandidate, enabled: bool) -> HbChange {
        if !enabled || !candidate.provides_cmpctblocks {
            return HbChange::default();
        }
        if let Some(pos) = self.entries.iter().position(|e| e.peer == candidate.peer) {
            if let Some(entry) = self.entries.remove(pos) {
                self.entries.push_back(entry);
            }
            return HbChange::default();
        }
        let outbound = self.entries.iter().filter(|e| e.connected && !e.inbound).count();
        if candidate.inbound
            && self.entries.len() >= MAX_HIGH_BANDWIDTH_PEERS
            && outbound == 1
            && self.entries.front().is_some_and(|e| e.connected && !e.inbound)
        {
            self.entries.swap(0, 1);
        }
        if !candidate.fully_connected {
            return HbChange::default();
        }
        self.entries.push_back(HbEntry { peer: candidate.peer, inbound: candidate.inbound, connected: true });
        let mut change = HbChange { select: Some(candidate.peer), deselect: None };
        if self.entries.len() > MAX_HIGH_BANDWIDTH_PEERS
            && let Some(oldest) = self.entries.pop_front()
        {
            change.deselect = oldest.connected.then_some(oldest.peer);
        }
        change
    }

    /// The peer disconnected. Like Core, its place stays taken until pushed out, but it no
    /// longer counts as an outbound peer to keep and is sent nothing.
    pub fn closed(&mut self, peer: PeerId) {
        for e in self.entries.iter_mut().filter(|e| e.peer == peer) {
            e.connected = false;
        }
    }

    /// Whether we asked `peer` for high-bandwidth announcements (Core's
    /// `m_bip152_highbandwidth_to`).
    pub fn is_selected(&self, peer: PeerId) -> bool {
        self.entries.iter().any(|e| e.peer == peer && e.connected)
    }

    /// The selected peers still connected, oldest first.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.entries.iter().filter(|e| e.connected).map(|e| e.peer)
    }
}

#[cfg(test)]
mod tests;
