//! BIP152 compact blocks on the wire (Core's `SENDCMPCT`, `CMPCTBLOCK`, `GETBLOCKTXN`,
//! `BLOCKTXN` handling, `NewPoWValidBlock` and the compact announcement of `SendMessages`):
//! owns each peer's compact-block state (what it asked of us, what we asked of it, its blocks
//! being reconstructed) and the node's high-bandwidth choice and most recent block. The
//! message formats and reconstruction rules are [`crate::engine::blocks::compact`]'s; whole
//! blocks go on through [`super::blocks`].
//!
//! btcloop keeps no mempool, so every transaction a compact block does not carry is asked for
//! with `getblocktxn`. Core turns compact blocks off in `-blocksonly`; btcloop keeps them, as
//! they still save a round trip and let blocks reach other nodes at once.

use std::sync::Arc;

use bitcoin::BlockHash;
use bitcoin::bip152::BlockTransactionsRequest;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::p2p::message_compact_blocks::{BlockTxn, CmpctBlock, GetBlockTxn, SendCmpct};
use tracing::debug;

use super::blocks::{BlocksNode, on_block};
use super::headers::HeadersNode;
use super::{Now, Outbox, Peer, misbehaving};
use crate::base::peer::PeerId;
use crate::engine::blocks::compact::{
    self, CMPCTBLOCKS_VERSION, CmpctGetDataReply, GetBlockTxnReply, HbCandidate, HighBandwidthPeers, PartialBlock,
    PeerCompact, Verdict,
};
use crate::engine::blocks::download::MAX_BLOCKS_IN_TRANSIT_PER_PEER;
use crate::engine::chain::pow::work_of;
use crate::engine::chain::tree::BlockStatus;

/// One peer's compact-block state.
#[derive(Debug, Default)]
pub struct CmpctPeer {
    /// What it told us with `sendcmpct`.
    pub remote: PeerCompact,
    /// We asked it to announce blocks with `cmpctblock` (Core's `m_bip152_highbandwidth_to`).
    pub hb_to: bool,
    /// A `sendcmpct` to send at its next `SendMessages` (true: high bandwidth on).
    pub send_hb: Option<bool>,
    /// Its blocks being reconstructed, waiting for `blocktxn`.
    pub partial: Vec<PartialBlock>,
    /// A `getblocktxn` waiting for its block to be read from disk.
    pub txn_request: Option<BlockTransactionsRequest>,
}

/// Node-wide compact-block state.
#[derive(Debug, Default)]
pub struct CmpctNode {
    /// Whom we asked for high-bandwidth announcements.
    pub hb: HighBandwidthPeers,
    /// Core's `m_highest_fast_announce`.
    fast_announce: compact::FastAnnounce,
    /// The most recent new block (Core's `m_most_recent_block`) and its `cmpctblock`.
    recent: Option<(Arc<bitcoin::Block>, Arc<CmpctBlock>)>,
    /// Nonce source for the short ids of the `cmpctblock`s we make.
    nonce: u64,
    /// The most recent block may be pushed to high-bandwidth peers before it is connected.
    fast: bool,
}

impl CmpctNode {
    /// The most recent block and its compact form, if `hash` is it.
    fn recent(&self, hash: &BlockHash) -> Option<&(Arc<bitcoin::Block>, Arc<CmpctBlock>)> {
        self.recent.as_ref().filter(|(b, _)| b.block_hash() == *hash)
    }

    fn next_nonce(&mut self) -> u64 {
        // SplitMix64 over a counter: distinct, unpredictable enough for short-id keys (Core
        // draws them from its RNG; they only need to differ between announcements).
        self.nonce = self.nonce.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.nonce;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Seeds the nonces (from the protocol's randomness).
    pub fn seed(&mut self, seed: u64) {
        self.nonce = seed;
    }

    /// A closed connection.
    pub fn remove_peer(&mut self, id: PeerId) {
        self.hb.closed(id);
    }
}

/// After `verack`: tell a peer that speaks BIP152 that we provide version 2 compact blocks.
pub fn on_established(peer: &Peer, out: &mut impl Outbox) {
    if let Some(msg) = compact::sendcmpct_after_verack(peer.handshake.common_version) {
        out.send(&NetworkMessage::SendCmpct(msg));
    }
}

/// `sendcmpct` (its raw fields: Core punishes an announce byte other than 0 or 1).
pub fn on_sendcmpct(peer: &mut Peer, announce: u8, version: u64, out: &mut impl Outbox) {
    if let Err(e) = peer.cmpct.remote.on_sendcmpct(announce, version) {
        misbehaving(peer, out, format!("invalid sendcmpct: {e}"));
    }
}

/// A block from `from` was stored and connected as the only one in flight, outside initial
/// download: Core's `MaybeSetPeerAsAnnouncingHeaderAndIDs`. The `sendcmpct`s it calls for go
/// out at the peers' next `SendMessages`.
pub fn maybe_select_hb(node: &mut CmpctNode, candidate: HbCandidate) -> Option<(PeerId, Option<PeerId>)> {
    let change = node.hb.maybe_select(candidate, true);
    change.select.map(|s| (s, change.deselect))
}

/// The most recent block and its compact form, as [`CmpctNode`] keeps them.
pub type Recent = (Arc<bitcoin::Block>, Arc<CmpctBlock>);

/// A new block passed its header and proof-of-work checks and extends our tip (Core's
/// `NewPoWValidBlock`): it becomes the most recent block, with its compact form made by the
/// caller; whether to push it to high-bandwidth peers now, and the block it replaces (for the
/// caller to free off this thread).
pub fn new_pow_valid_block(
    node: &mut CmpctNode,
    recent: Recent,
    height: u32,
    segwit_active: bool,
) -> (bool, Option<Recent>) {
    let old = node.recent.replace(recent);
    node.fast = node.fast_announce.new_pow_valid_block(height, segwit_active);
    (node.fast, old)
}

/// Pushes the most recent block's `cmpctblock` to `peer` if Core's fast-announce rule says so
/// (it asked for high bandwidth, lacks the block but has its parent). True if sent.
pub fn fast_announce(node: &CmpctNode, headers: &HeadersNode, peer: &mut Peer, out: &mut impl Outbox) -> bool {
    let Some((block, cmpct)) = node.recent.as_ref() else { return false };
    let tree = headers.chain.tree();
    let Some((id, e)) = tree.get(&block.block_hash()) else { return false };
    let has = |h: Option<crate::engine::chain::tree::EntryId>, target: u32, of: crate::engine::chain::tree::EntryId| {
        h.is_some_and(|k| tree.ancestor(k, target) == Some(of))
    };
    let known = [peer.headers.best_known, peer.headers.best_sent];
    let has_block = known.iter().any(|k| has(*k, e.height, id));
    let has_parent = e.height > 0 && known.iter().any(|k| has(*k, e.height - 1, e.parent));
    if !compact::fast_announce_to(&peer.cmpct.remote, peer.handshake.common_version, false, has_block, has_parent) {
        return false;
    }
    debug!(target: "cmpctblock", "sending cmpctblock {} to peer={}", e.hash, peer.who.id);
    out.send(&NetworkMessage::CmpctBlock(CmpctBlock::clone(cmpct)));
    peer.headers.best_sent = Some(id);
    true
}

/// The compact part of `SendMessages`: a pending `sendcmpct`, and the announcement of a single
/// new tip to a peer that asked for high bandwidth, as `cmpctblock` instead of a header.
pub fn send_messages(node: &CmpctNode, headers: &HeadersNode, peer: &mut Peer, out: &mut impl Outbox) {
    if let Some(hb) = peer.cmpct.send_hb.take() {
        out.send(&NetworkMessage::SendCmpct(SendCmpct { send_compact: hb, version: CMPCTBLOCKS_VERSION }));
        peer.cmpct.hb_to = hb;
    }
    if !peer.cmpct.remote.requested_hb {
        return;
    }
    if node.fast && fast_announce(node, headers, peer, out) {
        return;
    }
    let tree = headers.chain.tree();
    let tip = tree.active_tip_id();
    if peer.headers.announced_tip == Some(tip) || peer.headers.announced_tip.is_none() {
        return;
    }
    // Exactly one block to announce (Core: more means a sync, announced by headers or inv).
    let Some(e) = tree.entry(tip) else { return };
    let known = [peer.headers.best_known, peer.headers.best_sent];
    let has_parent = e.height > 0 && known.iter().flatten().any(|&k| tree.ancestor(k, e.height - 1) == Some(e.parent));
    let has_tip = known.iter().flatten().any(|&k| tree.ancestor(k, e.height) == Some(tip));
    if has_tip || !has_parent {
        return;
    }
    let Some((_, cmpct)) = node.recent(&e.hash) else { return };
    debug!(target: "cmpctblock", "sending header-and-ids {} to peer={}", e.hash, peer.who.id);
    out.send(&NetworkMessage::CmpctBlock(CmpctBlock::clone(cmpct)));
    peer.headers.best_sent = Some(tip);
    peer.headers.announced_tip = Some(tip);
}

/// A `cmpctblock` (Core's compact-block processing without a mempool).
pub fn on_cmpctblock(
    headers: &mut HeadersNode,
    blocks: &mut BlocksNode,
    peer: &mut Peer,
    msg: &CmpctBlock,
    now: Now,
    out: &mut impl Outbox,
) {
    if !headers.has_blocks() {
        return;
    }
    if !peer.cmpct.remote.provides_cmpctblocks {
        debug!(target: "cmpctblock", "peer={} sent us a compact block despite never having sent us a SENDCMPCT", peer.who.id);
        return;
    }
    let header = msg.compact_block.header;
    let hash = header.block_hash();
    let tree = headers.chain.tree();
    let Some((_, prev)) = tree.get(&header.prev_blockhash) else {
        // Does not connect: ask for the headers in between (Core, outside initial download).
        if !headers.in_ibd(now.unix) {
            super::headers::ask_headers(headers, peer, now, out);
        }
        return;
    };
    if prev.chain_work + work_of(header.bits) < headers.chain.anti_dos_threshold() {
        debug!(target: "net", "Ignoring low-work compact block from peer {}", peer.who.id);
        return;
    }
    if !tree.contains(&hash) {
        let r = headers.chain.accept(std::slice::from_ref(&header), now.unix);
        if let Some((_, e)) = r.error {
            if e.is_misbehaviour() {
                return misbehaving(peer, out, format!("invalid header via cmpctblock: {hash}: {e}"));
            }
            return;
        }
    }
    let tree = headers.chain.tree();
    let Some((id, entry)) = tree.get(&hash) else { return };
    let (height, chain_work, status) = (entry.height, entry.chain_work, entry.status);
    super::headers::block_available(headers, peer, id);
    if status.has_block() {
        return;
    }
    let download = &mut blocks.download;
    let holder = download.requested_from(&hash);
    let from_this_peer = holder == Some(peer.who.id);
    if !from_this_peer && !peer.cmpct.hb_to {
        debug!(target: "cmpctblock", "peer={}, not marked as high-bandwidth, sent us an unsolicited compact block", peer.who.id);
        return;
    }
    let tip = headers.tip();
    let (tip_height, tip_work) = (tip.height, tip.chain_work);
    let full = |out: &mut dyn FnMut(Inventory)| out(Inventory::WitnessBlock(hash));
    if chain_work <= tip_work {
        if from_this_peer {
            full(&mut |i| out.send(&NetworkMessage::GetData(vec![i])));
        }
        return;
    }
    if holder.is_none() && !headers.near_tip(now.unix) {
        // Not close to the tip yet: the parallel download fetches it.
        return;
    }
    if height > tip_height.saturating_add(2) {
        if from_this_peer {
            full(&mut |i| out.send(&NetworkMessage::GetData(vec![i])));
        } else {
            super::blocks::after_headers(headers, blocks, peer, now, out);
        }
        return;
    }
    let may_request =
        (holder.is_none() && download.in_flight(peer.who.id) < MAX_BLOCKS_IN_TRANSIT_PER_PEER) || from_this_peer;
    if !may_request {
        // In flight from another peer: without a mempool only a block made of prefilled
        // transactions reconstructs at once.
        if let Ok(partial) = PartialBlock::new(msg) {
            if partial.missing().indexes.is_empty() {
                if let Ok(block) = partial.fill_with(Vec::new(), true) {
                    deliver(headers, blocks, peer, &block, now, out);
                }
            }
        }
        return;
    }
    if holder.is_none() {
        download.request_from(peer.who.id, id, hash, now.mono);
    }
    if peer.cmpct.partial.iter().any(|p| p.block_hash() == hash) {
        debug!(target: "net", "Peer sent us compact block we were already syncing!");
        return;
    }
    let partial = match PartialBlock::new(msg) {
        Ok(p) => p,
        Err(e) => match e.verdict() {
            Verdict::Punish => {
                download.forget(&hash, now.mono);
                return misbehaving(peer, out, format!("invalid compact block: {e}"));
            }
            Verdict::FallBack => {
                // Colliding short ids: the block is in flight from this peer, ask for it whole.
                return out.send(&NetworkMessage::GetData(vec![Inventory::WitnessBlock(hash)]));
            }
            Verdict::Ignore => {
                download.forget(&hash, now.mono);
                return;
            }
        },
    };
    let missing = partial.missing();
    if missing.indexes.is_empty() {
        if let Ok(block) = partial.fill_with(Vec::new(), true) {
            deliver(headers, blocks, peer, &block, now, out);
        }
        return;
    }
    debug!(target: "cmpctblock", "getblocktxn {} ({} transactions) to peer={}", hash, missing.indexes.len(), peer.who.id);
    out.send(&NetworkMessage::GetBlockTxn(GetBlockTxn { txs_request: missing }));
    if peer.cmpct.partial.len() >= MAX_BLOCKS_IN_TRANSIT_PER_PEER {
        peer.cmpct.partial.remove(0);
    }
    peer.cmpct.partial.push(partial);
}

/// A `blocktxn`: the transactions a compact block lacked; the block is filled and validated,
/// or asked for whole when the short ids collided.
pub fn on_blocktxn(
    headers: &mut HeadersNode,
    blocks: &mut BlocksNode,
    peer: &mut Peer,
    msg: &BlockTxn,
    now: Now,
    out: &mut impl Outbox,
) {
    let hash = msg.transactions.block_hash;
    let Some(pos) = peer.cmpct.partial.iter().position(|p| p.block_hash() == hash) else {
        debug!(target: "net", "Peer {} sent us block transactions for block we weren't expecting", peer.who.id);
        return;
    };
    let partial = peer.cmpct.partial.remove(pos);
    let segwit = headers.chain.tree().get(&hash).is_some_and(|(_, e)| e.height >= blocks.download.segwit_height());
    match partial.fill(msg, segwit) {
        Ok(block) => deliver(headers, blocks, peer, &block, now, out),
        Err(e) => match e.verdict() {
            Verdict::Punish => {
                misbehaving(peer, out, format!("invalid compact block/non-matching block transactions: {e}"))
            }
            Verdict::FallBack | Verdict::Ignore => {
                debug!(target: "cmpctblock", "reconstruction of {hash} failed ({e}), asking peer={} for the block", peer.who.id);
                out.send(&NetworkMessage::GetData(vec![Inventory::WitnessBlock(hash)]));
            }
        },
    }
}

/// A reconstructed block goes on as a received one (its sender spared consensus punishment,
/// BIP152 lets it relay before validating).
fn deliver(
    headers: &mut HeadersNode,
    blocks: &mut BlocksNode,
    peer: &mut Peer,
    block: &bitcoin::Block,
    now: Now,
    out: &mut impl Outbox,
) {
    let bytes = bitcoin::consensus::serialize(block);
    on_block(headers, blocks, peer, block.header, &bytes, true, now, out);
}

/// A `getblocktxn`: from the most recent block at once; a block up to 10 deep is read from
/// disk first; an older one is served whole (Core's `MAX_BLOCKTXN_DEPTH`).
pub fn on_getblocktxn(
    node: &CmpctNode,
    headers: &HeadersNode,
    peer: &mut Peer,
    msg: &GetBlockTxn,
    out: &mut impl Outbox,
) -> Option<BlockHash> {
    let req = &msg.txs_request;
    let hash = req.block_hash;
    if let Some((block, _)) = node.recent(&hash) {
        answer_txn(peer, block, req, out);
        return None;
    }
    let tree = headers.chain.tree();
    let Some((_, e)) = tree.get(&hash).filter(|(_, e)| e.status.has(BlockStatus::HAVE_DATA)) else {
        debug!(target: "net", "Peer {} sent us a getblocktxn for a block we don't have", peer.who.id);
        return None;
    };
    match compact::getblocktxn_reply(e.height, tree.active_height(), false) {
        GetBlockTxnReply::BlockTxn => {
            peer.cmpct.txn_request = Some(req.clone());
            Some(hash)
        }
        GetBlockTxnReply::FullBlock => {
            debug!(target: "net", "Peer {} sent us a getblocktxn for a block > 10 deep", peer.who.id);
            peer.blocks.getdata.push_back(Inventory::WitnessBlock(hash));
            None
        }
    }
}

/// Answers a `getblocktxn` from `block`.
pub fn answer_txn(peer: &Peer, block: &bitcoin::Block, req: &BlockTransactionsRequest, out: &mut impl Outbox) {
    match compact::answer_getblocktxn(block, req) {
        Ok(transactions) => out.send(&NetworkMessage::BlockTxn(BlockTxn { transactions })),
        Err(e) if e.is_misbehaviour() => misbehaving(peer, out, "getblocktxn with out-of-bounds tx indices".into()),
        Err(_) => {}
    }
}

/// A block read from disk for `getdata MSG_CMPCT_BLOCK` or a pending `getblocktxn`: what to
/// send.
#[allow(clippy::too_many_arguments)]
pub fn on_read(
    node: &mut CmpctNode,
    headers: &HeadersNode,
    peer: &mut Peer,
    block: &bitcoin::Block,
    bytes: &[u8],
    checksum: Option<[u8; 4]>,
    now: Now,
    out: &mut impl Outbox,
) {
    if let Some(req) = peer.cmpct.txn_request.take().filter(|r| r.block_hash == block.block_hash()) {
        return answer_txn(peer, block, &req, out);
    }
    let tree = headers.chain.tree();
    let height = tree.get(&block.block_hash()).map_or(0, |(_, e)| e.height);
    match compact::getdata_cmpct_reply(height, tree.active_height(), headers.near_tip(now.unix)) {
        CmpctGetDataReply::CmpctBlock => {
            let cmpct = match node.recent(&block.block_hash()) {
                Some((_, c)) => CmpctBlock::clone(c),
                None => compact::compact_from_block(block, node.next_nonce()),
            };
            out.send(&NetworkMessage::CmpctBlock(cmpct));
        }
        CmpctGetDataReply::FullBlock => out.send_payload("block", bytes, checksum),
    }
}
