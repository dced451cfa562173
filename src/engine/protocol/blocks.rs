//! Blocks (Core's block parts of `ProcessMessage` and `SendMessages`, blocks-only mode):
//! receiving `block`s and handing them to the validation thread, fetching the download window
//! with `getdata`, serving `getdata` from disk one block at a time, `notfound`, the
//! blocks-only rule against transactions, and following the validation thread's verdicts
//! and tip moves. Owns each peer's serving queue and the node's blocks awaiting a verdict;
//! what is in flight is [`BlockDownload`]'s, the active chain is the header tree's.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::BlockHash;
use bitcoin::block::Header;
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use tracing::{debug, info};

use super::headers::{HeadersNode, MAX_INV_SZ, can_serve_blocks};
use super::{Now, Outbox, Peer, misbehaving};
use crate::base::peer::{ConnectionType, DisconnectReason, PeerId};
use crate::engine::blocks::download::{BlockDownload, DownloadParams, DownloadTimeout, FetchFacts};
use crate::engine::blocks::validation::{BlockForm, BlockOutcome, Invalid, InvalidKind, ValidationRequest};
use crate::engine::chain::tree::{BlockStatus, EntryId};
use crate::engine::policy::permissions::Permissions;

/// Core's `MAX_GETDATA_SZ`: the most entries we put in one `getdata`.
pub const MAX_GETDATA_SZ: usize = 1000;
/// Core's `MIN_BLOCKS_TO_KEEP`: an unrequested block further than this above our tip is not
/// processed (`fTooFarAhead`).
pub const MIN_BLOCKS_TO_KEEP: u32 = 288;
/// Bytes of received blocks that may wait for the validation thread before downloads pause
/// (Core validates on its message thread, so it never holds more than one).
pub const MAX_PENDING_BYTES: usize = 64 << 20;
/// Blocks that may wait for the validation thread before downloads pause (with
/// [`MAX_PENDING_BYTES`]; the validation thread's channel holds more than this).
pub const MAX_PENDING_BLOCKS: usize = 1024;
/// Requests the serving queue of one peer may hold (Core stops reading a peer's messages while
/// its queue is not empty; btcloop also bounds it).
pub const MAX_GETDATA_QUEUE: usize = MAX_INV_SZ;
/// `UpdateTip` lines during initial download are logged at most this often.
pub const UPDATE_TIP_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// One peer's blocks state.
#[derive(Debug, Default)]
pub struct BlocksPeer {
    /// `getdata` entries not yet served, oldest first (Core's `m_getdata_requests`).
    pub getdata: VecDeque<Inventory>,
    /// A block is being read from disk for this peer: the next one waits.
    pub reading: bool,
    /// Blocks this peer sent that the validation thread has not judged yet.
    pub pending: usize,
}

/// A block handed to the validation thread and not judged yet (Core's `mapBlockSource`).
#[derive(Clone, Copy, Debug)]
struct Pending {
    /// The sender, if a peer.
    from: Option<PeerId>,
    /// It came as a compact block (its sender is spared consensus punishment).
    via_compact: bool,
    /// Its size, for the byte budget.
    bytes: usize,
}

/// Node-wide blocks state.
#[derive(Debug)]
pub struct BlocksNode {
    /// What is in flight, from whom, and the stalling state.
    pub download: BlockDownload,
    /// Work for the validation thread, taken by the peer manager.
    requests: Vec<ValidationRequest>,
    /// Blocks handed to the validation thread, by hash.
    pending: HashMap<BlockHash, Pending>,
    /// Their bytes.
    pending_bytes: usize,
    /// When the last `UpdateTip` line was logged.
    last_tip_log: Option<Instant>,
    /// Blocks the validation thread stored and connected since start (metrics).
    pub validated: u64,
    /// Blocks it refused (metrics).
    pub refused: u64,
    /// Bytes of `block` payloads received (metrics).
    pub received_bytes: u64,
    /// Stalling peers dropped (metrics).
    pub stalls: u64,
    /// Core's verification progress of the tip, 0–1 (`getblockchaininfo`).
    pub progress: f64,
    /// Bytes of the block and chainstate databases on disk.
    pub disk_bytes: u64,
}

impl BlocksNode {
    /// Nothing in flight or pending, for a chain with `params`.
    pub fn new(params: &crate::engine::chain::params::ChainParams) -> Self {
        BlocksNode {
            download: BlockDownload::new(DownloadParams::for_chain(params)),
            requests: Vec::new(),
            pending: HashMap::new(),
            pending_bytes: 0,
            last_tip_log: None,
            validated: 0,
            refused: 0,
            received_bytes: 0,
            stalls: 0,
            progress: 0.0,
            disk_bytes: 0,
        }
    }

    /// Moves the requests for the validation thread into `into`.
    pub fn take_requests(&mut self, into: &mut Vec<ValidationRequest>) {
        into.append(&mut self.requests);
    }

    /// Whether requests wait to be taken.
    pub fn has_requests(&self) -> bool {
        !self.requests.is_empty()
    }

    /// Bytes of blocks waiting for a verdict.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// A new connection.
    pub fn add_peer(&mut self, id: PeerId) {
        self.download.add_peer(id);
    }

    /// The validation thread could not take `req` (its queue was full): undo what handing it
    /// over marked, so it is asked for or handed over again.
    pub fn dropped(&mut self, headers: &mut HeadersNode, req: &ValidationRequest, now: Now) {
        let tree = headers.chain.tree_mut();
        match req {
            ValidationRequest::Block { hash, bytes, .. } => {
                if self.pending.remove(hash).is_some() {
                    self.pending_bytes = self.pending_bytes.saturating_sub(bytes.len());
                }
                self.download.forget(hash, now.mono);
                if let Some((id, _)) = tree.get(hash) {
                    tree.remove_status(id, BlockStatus::RECEIVED);
                    tree.unindex_branch(id);
                }
            }
            ValidationRequest::Headers(list) => {
                if let Some((id, _)) = list.first().and_then(|h| tree.get(&h.block_hash())) {
                    tree.unindex_branch(id);
                }
                for h in list {
                    if let Some((id, _)) = tree.get(&h.block_hash()) {
                        tree.remove_status(id, BlockStatus::INDEXED);
                    }
                }
            }
            ValidationRequest::Read { .. } => {}
        }
    }

    /// Reads block `hash` from disk for `peer` (a compact-block answer waits for it).
    pub fn read_for(&mut self, peer: &mut Peer, hash: BlockHash) {
        peer.blocks.reading = true;
        self.requests.push(ValidationRequest::Read { peer: peer.who.id, hash, form: BlockForm::Compact });
    }

    /// A closed connection: what it had in flight may go to others.
    pub fn remove_peer(&mut self, id: PeerId) {
        self.download.remove_peer(id);
    }
}

/// Hands the headers from the kernel's last known one up to `id` to the validation thread
/// (the kernel stores a block only on a header it has).
fn index_headers(headers: &mut HeadersNode, blocks: &mut BlocksNode, id: EntryId) {
    let tree = headers.chain.tree_mut();
    let mut chain = Vec::new();
    let mut cur = id;
    while let Some(e) = tree.entry(cur) {
        if e.status.has(BlockStatus::INDEXED) || e.height == 0 {
            break;
        }
        chain.push((cur, e.header));
        cur = e.parent;
    }
    if chain.is_empty() {
        return;
    }
    chain.reverse();
    for (i, _) in &chain {
        tree.add_status(*i, BlockStatus::INDEXED);
    }
    blocks.requests.push(ValidationRequest::Headers(chain.into_iter().map(|(_, h)| h).collect()));
}

/// A `block`: hands it to the validation thread if it was asked for or may extend our tip
/// (Core's `ProcessBlock` with `AcceptBlock`'s rules for unrequested blocks).
#[allow(clippy::too_many_arguments)]
pub fn on_block(
    headers: &mut HeadersNode,
    blocks: &mut BlocksNode,
    peer: &mut Peer,
    header: Header,
    payload: &[u8],
    via_compact: bool,
    now: Now,
    out: &mut impl Outbox,
) {
    let hash = header.block_hash();
    blocks.received_bytes = blocks.received_bytes.saturating_add(payload.len() as u64);
    let requested = blocks.download.is_requested(&hash);
    blocks.download.received(&hash, peer.who.id, now.mono);
    if !headers.has_blocks() {
        return;
    }
    // The header must be in the tree; an unknown one is accepted as if announced.
    let tree = headers.chain.tree();
    if !tree.contains(&hash) {
        let r = headers.chain.accept(std::slice::from_ref(&header), now.unix);
        if let Some((_, e)) = r.error {
            if e.is_misbehaviour() {
                return misbehaving(peer, out, format!("invalid header received: {hash}: {e}"));
            }
            debug!(target: "net", "block {hash} from peer={}: header not accepted: {e}", peer.who.id);
            return;
        }
    }
    let tree = headers.chain.tree();
    let Some((id, entry)) = tree.get(&hash) else { return };
    if entry.status.failed() {
        // Core: a block known invalid (`BLOCK_CACHED_INVALID`).
        if InvalidKind::CachedInvalid.punishes(via_compact, peer.who.conn_type.is_inbound()) {
            return misbehaving(peer, out, format!("block {hash} is known invalid"));
        }
        return;
    }
    if entry.status.has(BlockStatus::HAVE_DATA) || entry.status.has(BlockStatus::RECEIVED) {
        debug!(target: "net", "already have block {hash} peer={}", peer.who.id);
        return;
    }
    if !requested {
        // Core's AcceptBlock for a block nobody asked for: only if it has more work than our
        // tip, is not too far ahead of it and has the minimum chain work.
        let tip = headers.tip();
        let more_work = entry.chain_work > tip.chain_work;
        let too_far = entry.height > tip.height.saturating_add(MIN_BLOCKS_TO_KEEP);
        if !more_work || too_far || entry.chain_work < headers.chain.min_chain_work() {
            debug!(target: "net", "ignoring unrequested block {hash} (height {}) from peer={}", entry.height, peer.who.id);
            return;
        }
    }
    if let Some(parent) = tree.entry(entry.parent).map(|_| entry.parent) {
        index_headers(headers, blocks, parent);
    }
    let tree = headers.chain.tree_mut();
    tree.add_status(id, BlockStatus::RECEIVED.with(BlockStatus::INDEXED));
    blocks.pending.insert(hash, Pending { from: Some(peer.who.id), via_compact, bytes: payload.len() });
    blocks.pending_bytes = blocks.pending_bytes.saturating_add(payload.len());
    peer.blocks.pending += 1;
    peer.headers.last_block_time = Some(now.unix);
    blocks.requests.push(ValidationRequest::Block {
        hash,
        bytes: Arc::new(payload.to_vec()),
        from: Some(peer.who.id),
        announce: false,
    });
}

/// A `getdata`: queued for serving (Core's `m_getdata_requests`), too many at once is
/// misbehaviour.
pub fn on_getdata(peer: &mut Peer, inv: Vec<Inventory>, out: &mut impl Outbox) {
    if inv.len() > MAX_INV_SZ {
        return misbehaving(peer, out, format!("getdata message size = {}", inv.len()));
    }
    let room = MAX_GETDATA_QUEUE.saturating_sub(peer.blocks.getdata.len());
    if inv.len() > room {
        debug!(target: "net", "getdata queue full, dropping {} entries from peer={}", inv.len() - room, peer.who.id);
    }
    peer.blocks.getdata.extend(inv.into_iter().take(room));
}

/// A `notfound`: the blocks it names are no longer expected from this peer.
pub fn on_notfound(blocks: &mut BlocksNode, peer: &Peer, inv: &[Inventory], now: Now) {
    if inv.len() > MAX_INV_SZ {
        return;
    }
    let hashes: Vec<BlockHash> = inv
        .iter()
        .filter_map(|i| match i {
            Inventory::Block(h) | Inventory::WitnessBlock(h) | Inventory::CompactBlock(h) => Some(*h),
            _ => None,
        })
        .collect();
    if !hashes.is_empty() {
        blocks.download.not_found(peer.who.id, &hashes, now.mono);
    }
}

/// A `tx`: a blocks-only node takes transactions only from peers with relay permission
/// (Core's `-blocksonly`: anyone else is disconnected).
pub fn on_tx(peer: &Peer, out: &mut impl Outbox) {
    if peer.who.permissions.has(Permissions::RELAY) {
        return;
    }
    debug!(target: "net", "transaction sent in violation of protocol, disconnecting peer={}", peer.who.id);
    out.disconnect(DisconnectReason::Misbehaving("transaction sent in violation of protocol".into()));
}

/// The blocks part of `SendMessages`: serve the next `getdata` entry, ask for blocks, and drop
/// a peer that stalls the download or is too slow.
pub fn send_messages(
    headers: &mut HeadersNode,
    blocks: &mut BlocksNode,
    peer: &mut Peer,
    now: Now,
    out: &mut impl Outbox,
) {
    serve_getdata(headers, blocks, peer, out);
    if !headers.has_blocks() {
        return;
    }
    let spacing = Duration::from_secs(u64::from(headers.chain.params().pow_target_spacing));
    if let Some(timeout) = blocks.download.check(peer.who.id, now.mono, spacing) {
        if let DownloadTimeout::Stalling { increased_to } = timeout {
            blocks.stalls += 1;
            if let Some(t) = increased_to {
                info!("Increased stalling timeout temporarily to {} seconds", t.as_secs());
            }
        }
        info!("{timeout}, disconnecting peer={}", peer.who.id);
        return out.disconnect(DisconnectReason::BlockDownload(timeout.to_string()));
    }
    fetch(headers, blocks, peer, now, out);
}

/// What the caller computes for [`BlockDownload::fetch`]: Core's conditions of the block
/// `getdata` step.
fn fetch_facts(headers: &mut HeadersNode, blocks: &BlocksNode, peer: &Peer, now: Now) -> Option<FetchFacts> {
    if !can_serve_blocks(peer) || !peer.handshake.successfully_connected {
        return None;
    }
    let services = peer.handshake.remote.as_ref().map_or(ServiceFlags::NONE, |r| r.services);
    let limited = !services.has(ServiceFlags::NETWORK) && services.has(ServiceFlags::NETWORK_LIMITED);
    let sync_from_peer = peer.headers.preferred
        || (!matches!(peer.who.conn_type, ConnectionType::AddrFetch)
            && (headers.preferred_peers == 0 || blocks.download.total_in_flight() == 0));
    let allowed = (sync_from_peer && !limited) || !headers.in_ibd(now.unix);
    Some(FetchFacts {
        best_known: peer.headers.best_known,
        limited,
        witness: services.has(ServiceFlags::WITNESS),
        allowed,
    })
}

/// Asks `peer` for the next blocks of the window (at most 16 in flight), handing their
/// headers to the kernel first.
fn fetch(headers: &mut HeadersNode, blocks: &mut BlocksNode, peer: &mut Peer, now: Now, out: &mut impl Outbox) {
    if blocks.pending_bytes >= MAX_PENDING_BYTES || blocks.pending.len() >= MAX_PENDING_BLOCKS {
        return;
    }
    let Some(facts) = fetch_facts(headers, blocks, peer, now) else { return };
    let got = blocks.download.fetch(headers.chain.tree(), peer.who.id, facts, now.mono);
    if let Some(staller) = got.stall_started {
        debug!(target: "net", "Stall started peer={staller}");
    }
    request(headers, blocks, peer, &got.blocks, out);
}

/// Core's `HeadersDirectFetchBlocks`: after a `headers` near our tip, ask the announcing peer
/// for the blocks at once.
pub fn after_headers(
    headers: &mut HeadersNode,
    blocks: &mut BlocksNode,
    peer: &mut Peer,
    now: Now,
    out: &mut impl Outbox,
) {
    if !headers.has_blocks() || !headers.near_tip(now.unix) {
        return;
    }
    let Some(last) = peer.headers.best_known else { return };
    let Some(facts) = fetch_facts(headers, blocks, peer, now) else { return };
    if !facts.allowed && headers.in_ibd(now.unix) {
        return;
    }
    let got = blocks.download.direct_fetch(headers.chain.tree(), peer.who.id, last, facts.witness, now.mono);
    if got.large_reorg {
        if let Some(e) = headers.chain.tree().entry(last) {
            debug!(target: "net", "Large reorg, won't direct fetch to {} ({})", e.hash, e.height);
        }
    }
    request(headers, blocks, peer, &got.blocks, out);
}

/// Sends one `getdata` for `wanted` (witness blocks), after handing their headers to the kernel.
fn request(
    headers: &mut HeadersNode,
    blocks: &mut BlocksNode,
    peer: &Peer,
    wanted: &[(EntryId, BlockHash)],
    out: &mut impl Outbox,
) {
    if wanted.is_empty() {
        return;
    }
    if let Some(&(last, _)) = wanted.last() {
        index_headers(headers, blocks, last);
    }
    let tree = headers.chain.tree();
    for &(id, hash) in wanted {
        let height = tree.entry(id).map_or(0, |e| e.height);
        debug!(target: "net", "Requesting block {hash} ({height}) peer={}", peer.who.id);
    }
    for chunk in wanted.chunks(MAX_GETDATA_SZ) {
        out.send(&NetworkMessage::GetData(chunk.iter().map(|&(_, h)| Inventory::WitnessBlock(h)).collect()));
    }
}

/// Core's `ProcessGetData` for blocks: one entry per call, only while the peer's send queue
/// is under its limit and no read for it is in progress. A block we have is read by the
/// validation thread; anything else gets `notfound`.
fn serve_getdata(headers: &HeadersNode, blocks: &mut BlocksNode, peer: &mut Peer, out: &mut impl Outbox) {
    let mut not_found = Vec::new();
    while !peer.blocks.reading && !out.send_paused() {
        let Some(inv) = peer.blocks.getdata.pop_front() else { break };
        let (hash, form) = match inv {
            Inventory::WitnessBlock(h) => (h, BlockForm::Witness),
            Inventory::Block(h) => (h, BlockForm::Legacy),
            Inventory::CompactBlock(h) => (h, BlockForm::Compact),
            // No mempool: every transaction is not found (Core, for what its mempool lacks).
            Inventory::Transaction(_) | Inventory::WitnessTransaction(_) | Inventory::WTx(_) => {
                not_found.push(inv);
                continue;
            }
            // Core drops other types (filtered blocks without a filter, unknown types).
            _ => continue,
        };
        if headers.has_blocks() && may_serve(headers, &hash) {
            peer.blocks.reading = true;
            blocks.requests.push(ValidationRequest::Read { peer: peer.who.id, hash, form });
        } else {
            not_found.push(inv);
        }
    }
    if !not_found.is_empty() {
        out.send(&NetworkMessage::NotFound(not_found));
    }
}

/// Core's `BlockRequestAllowed` with the data check: blocks of the active chain, and stored
/// blocks off it that were valid.
fn may_serve(headers: &HeadersNode, hash: &BlockHash) -> bool {
    let tree = headers.chain.tree();
    let Some((id, e)) = tree.get(hash) else { return false };
    e.status.has(BlockStatus::HAVE_DATA) && (tree.on_active_chain(id) || e.status.has(BlockStatus::VALID))
}

/// The validation thread read a block for `peer`: send it in the asked form, or `notfound`.
pub fn on_read(
    peer: &mut Peer,
    hash: BlockHash,
    form: BlockForm,
    bytes: Option<&[u8]>,
    checksum: Option<[u8; 4]>,
    out: &mut impl Outbox,
) {
    peer.blocks.reading = false;
    let Some(bytes) = bytes else {
        let inv = match form {
            BlockForm::Witness => Inventory::WitnessBlock(hash),
            BlockForm::Legacy => Inventory::Block(hash),
            BlockForm::Compact => Inventory::CompactBlock(hash),
        };
        return out.send(&NetworkMessage::NotFound(vec![inv]));
    };
    out.send_payload("block", bytes, checksum);
}

/// What the peer manager must do after a verdict.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Punish this peer (Core's `MaybePunishNodeForBlock`) with this message.
    pub punish: Option<(PeerId, String)>,
}

/// The validation thread judged a block: mirror its status, free its budget, and say whom to
/// punish.
pub fn on_verdict(
    headers: &mut HeadersNode,
    blocks: &mut BlocksNode,
    hash: BlockHash,
    outcome: &BlockOutcome,
    inbound: impl Fn(PeerId) -> Option<bool>,
    now: Now,
) -> Verdict {
    let pending = blocks.pending.remove(&hash);
    if let Some(p) = pending {
        blocks.pending_bytes = blocks.pending_bytes.saturating_sub(p.bytes);
    }
    blocks.download.forget(&hash, now.mono);
    let tree = headers.chain.tree_mut();
    let id = tree.get(&hash).map(|(id, _)| id);
    let mut verdict = Verdict::default();
    match outcome {
        BlockOutcome::Stored | BlockOutcome::Unconnected | BlockOutcome::Duplicate => {
            if let Some(id) = id {
                tree.add_status(id, BlockStatus::HAVE_DATA.with(BlockStatus::INDEXED));
            }
            if matches!(outcome, BlockOutcome::Stored | BlockOutcome::Unconnected) {
                blocks.validated += 1;
            }
        }
        BlockOutcome::Invalid(Invalid { kind, reason }) => {
            blocks.refused += 1;
            if let Some(id) = id {
                // Core marks a block invalid unless its data may have been mutated in transit,
                // its parent is missing or it is merely early: then it may come again intact,
                // so it is no longer marked received.
                if matches!(
                    kind,
                    InvalidKind::Consensus
                        | InvalidKind::InvalidHeader
                        | InvalidKind::InvalidPrev
                        | InvalidKind::CachedInvalid
                ) {
                    tree.mark_invalid(id);
                } else {
                    tree.remove_status(id, BlockStatus::RECEIVED);
                }
                if *kind == InvalidKind::MissingPrev {
                    // btcloop hands the kernel a block only on a header chain it handed over
                    // first, so the kernel lost those headers (a reopen): hand them again.
                    tree.unindex_branch(id);
                }
            }
            if let Some(Pending { from: Some(from), via_compact, .. }) = pending {
                // A missing parent is never the sender's fault here (see above).
                let ours = *kind == InvalidKind::MissingPrev;
                if let Some(is_inbound) = inbound(from).filter(|_| !ours) {
                    if kind.punishes(via_compact, is_inbound) {
                        verdict.punish = Some((from, format!("invalid block {hash}: {reason}")));
                    }
                }
            }
        }
    }
    verdict
}

/// The active chain's tip moved: mirror it and log Core's `UpdateTip` line (at most once a
/// second during initial download).
pub fn on_tip(
    headers: &mut HeadersNode,
    blocks: &mut BlocksNode,
    hash: BlockHash,
    progress: f64,
    disk_bytes: u64,
    now: Now,
) {
    blocks.progress = progress;
    blocks.disk_bytes = disk_bytes;
    let Some(id) = headers.chain.tree().get(&hash).map(|(id, _)| id) else {
        info!("validation thread reports tip {hash}, a header this node does not know");
        return;
    };
    headers.tip_moved(id, now.unix);
    if let Some(t) = blocks.download.connected() {
        debug!(target: "net", "Decreased stalling timeout to {} seconds", t.as_secs());
    }
    let ibd = headers.in_ibd(now.unix);
    let due = blocks.last_tip_log.is_none_or(|t| now.mono.saturating_duration_since(t) >= UPDATE_TIP_LOG_INTERVAL);
    if ibd && !due {
        return;
    }
    blocks.last_tip_log = Some(now.mono);
    let tip = headers.tip();
    let date = crate::base::time::iso8601(i64::from(tip.header.time));
    info!(
        "UpdateTip: new best={} height={} version=0x{:08x} log2_work={:.6} date='{date}' progress={progress:.6}",
        tip.hash,
        tip.height,
        tip.header.version.to_consensus(),
        log2_work(tip.chain_work),
    );
}

/// `log2` of a chain's work, as Core logs it.
pub fn log2_work(work: bitcoin::pow::Work) -> f64 {
    let bytes = work.to_be_bytes();
    let mut v = 0f64;
    for b in bytes {
        v = v * 256.0 + f64::from(b);
    }
    if v > 0.0 { v.log2() } else { 0.0 }
}

/// Why `submitblock` refused a block before validation (Core's answers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitRefused {
    /// The bytes are not a block (Core: "Block decode failed").
    #[error("Block decode failed")]
    Decode,
    /// The block does not extend a known header (Core's answer is the reject reason).
    #[error("prev-blk-not-found")]
    UnknownParent,
    /// The header is invalid.
    #[error("{0}")]
    BadHeader(String),
    /// Already stored (Core: "duplicate").
    #[error("duplicate")]
    Duplicate,
    /// Already known invalid (Core: "duplicate-invalid").
    #[error("duplicate-invalid")]
    DuplicateInvalid,
    /// The node does not handle blocks.
    #[error("this node does not validate blocks")]
    NoBlocks,
}

/// `submitblock`: a block from the operator, handed to the validation thread as one from no
/// peer. Returns its hash, whose verdict the caller waits for.
pub fn submit(
    headers: &mut HeadersNode,
    blocks: &mut BlocksNode,
    bytes: Vec<u8>,
    now: Now,
) -> Result<BlockHash, SubmitRefused> {
    if !headers.has_blocks() {
        return Err(SubmitRefused::NoBlocks);
    }
    let block: bitcoin::Block = bitcoin::consensus::deserialize(&bytes).map_err(|_| SubmitRefused::Decode)?;
    let hash = block.block_hash();
    if !headers.chain.tree().contains(&hash) {
        let r = headers.chain.accept(std::slice::from_ref(&block.header), now.unix);
        match r.error {
            Some((_, crate::engine::chain::validate::HeaderError::UnknownParent(_))) => {
                return Err(SubmitRefused::UnknownParent);
            }
            Some((_, e)) => return Err(SubmitRefused::BadHeader(e.to_string())),
            None => {}
        }
    }
    let tree = headers.chain.tree();
    let Some((id, e)) = tree.get(&hash) else { return Err(SubmitRefused::UnknownParent) };
    if e.status.failed() {
        return Err(SubmitRefused::DuplicateInvalid);
    }
    if e.status.has(BlockStatus::HAVE_DATA) {
        return Err(SubmitRefused::Duplicate);
    }
    let parent = e.parent;
    index_headers(headers, blocks, parent);
    headers.chain.tree_mut().add_status(id, BlockStatus::RECEIVED.with(BlockStatus::INDEXED));
    blocks.pending.insert(hash, Pending { from: None, via_compact: false, bytes: bytes.len() });
    blocks.pending_bytes = blocks.pending_bytes.saturating_add(bytes.len());
    blocks.requests.push(ValidationRequest::Block { hash, bytes: Arc::new(bytes), from: None, announce: false });
    Ok(hash)
}
