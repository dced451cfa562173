//! Block download scheduling, I/O-free (Core's `mapBlocksInFlight` and the per-peer download
//! state of `CNodeState`): which blocks to ask each peer for, the moving window, stalling and
//! download timeouts. It takes the header tree, what other modules know of a peer and the time,
//! and returns decisions; the caller sends the `getdata` and disconnects.
//!
//! The caller (the message handler) drives it as Core's `net_processing` does:
//! - [`BlockDownload::add_peer`] on connection, [`BlockDownload::remove_peer`] when it closes.
//! - In each peer's `SendMessages` step: first [`BlockDownload::check`] (disconnect on a
//!   verdict and skip the rest), then [`BlockDownload::fetch`] and one `getdata` for its blocks.
//! - After each accepted `headers` message: [`BlockDownload::direct_fetch`] with its last header
//!   if [`can_direct_fetch`] holds.
//! - `block`: [`BlockDownload::received`], then the block goes to validation; once validation
//!   stored or refused it, [`BlockDownload::forget`]. Each block connected to the active chain:
//!   [`BlockDownload::connected`]. `notfound`: [`BlockDownload::not_found`].
//!
//! Core's assumeutxo background download (`TryDownloadingHistoricalBlocks`) and compact-block
//! requests are left out: btcloop has one chainstate and fetches whole witness blocks.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use bitcoin::BlockHash;
use bitcoin::pow::Work;

use crate::base::chainparams::Network;
use crate::base::peer::PeerId;
use crate::engine::chain::params::ChainParams;
use crate::engine::chain::tree::{EntryId, HeaderTree};

/// Core's `BLOCK_DOWNLOAD_WINDOW`: how far past a peer's last common block we fetch.
pub const BLOCK_DOWNLOAD_WINDOW: u32 = 1024;
/// Core's `MAX_BLOCKS_IN_TRANSIT_PER_PEER`: blocks in flight from one peer at a time.
pub const MAX_BLOCKS_IN_TRANSIT_PER_PEER: usize = 16;
/// Core's `BLOCK_STALLING_TIMEOUT_DEFAULT`: how long a peer may hold up the window.
pub const BLOCK_STALLING_TIMEOUT_DEFAULT: Duration = Duration::from_secs(2);
/// Core's `BLOCK_STALLING_TIMEOUT_MAX`: the cap of the doubling stalling timeout.
pub const BLOCK_STALLING_TIMEOUT_MAX: Duration = Duration::from_secs(64);
/// Core's `BLOCK_DOWNLOAD_TIMEOUT_BASE`, in block intervals.
pub const BLOCK_DOWNLOAD_TIMEOUT_BASE: f64 = 1.0;
/// Core's `BLOCK_DOWNLOAD_TIMEOUT_PER_PEER`, in block intervals per other downloading peer.
pub const BLOCK_DOWNLOAD_TIMEOUT_PER_PEER: f64 = 0.5;
/// Core's `NODE_NETWORK_LIMITED_MIN_BLOCKS`: the depth a limited peer promises to serve.
pub const NODE_NETWORK_LIMITED_MIN_BLOCKS: u32 = 288;
/// Core's two-block buffer below `NODE_NETWORK_LIMITED_MIN_BLOCKS` "for possible races".
const LIMITED_PEER_BUFFER: u32 = 2;
/// Core reads the peer's chain in batches of at least this many successors.
const WALK_BATCH: usize = 128;
/// Most hashes remembered per peer as answered with `notfound` (not asked of it again).
const MAX_NOT_FOUND_PER_PEER: usize = BLOCK_DOWNLOAD_WINDOW as usize;
/// Core's stalling-timeout decay factor per connected block.
const STALLING_DECAY: f64 = 0.85;

/// Consensus facts the scheduler needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DownloadParams {
    /// First height where segwit is active (Core's `SegwitHeight`): blocks from here on are
    /// fetched only from peers that serve witnesses.
    pub segwit_height: u32,
    /// Core's `nMinimumChainWork` (or `-minimumchainwork`): peers whose best known block has
    /// less work get no requests.
    pub minimum_chain_work: Work,
}

impl DownloadParams {
    /// Core's values for `params`' network.
    pub fn for_chain(params: &ChainParams) -> DownloadParams {
        DownloadParams { segwit_height: segwit_height(params.network), minimum_chain_work: params.minimum_chain_work }
    }
}

/// Core's `SegwitHeight` per network (regtest: always active).
pub fn segwit_height(network: Network) -> u32 {
    match network {
        Network::Main => 481_824,
        Network::Test => 834_624,
        Network::Testnet4 | Network::Signet => 1,
        Network::Regtest => 0,
    }
}

/// Core's `CanDirectFetch`: the active tip's header time (`active_tip_time`, Unix seconds) is
/// later than 20 block intervals before `now_unix` (the node's wall-clock time, Unix seconds).
pub fn can_direct_fetch(active_tip_time: u32, now_unix: i64, pow_target_spacing: u32) -> bool {
    i64::from(active_tip_time) > now_unix.saturating_sub(i64::from(pow_target_spacing).saturating_mul(20))
}

/// What other modules know of a peer, for [`BlockDownload::fetch`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FetchFacts {
    /// The best header the peer is known to have (Core's `pindexBestKnownBlock`, after
    /// `ProcessBlockAvailability`), owned by the headers module.
    pub best_known: Option<EntryId>,
    /// `NODE_NETWORK_LIMITED` without `NODE_NETWORK` (Core's `IsLimitedPeer`).
    pub limited: bool,
    /// The peer offers `NODE_WITNESS` (Core's `CanServeWitnesses`).
    pub witness: bool,
    /// Whether blocks may be fetched from this peer now (Core's condition in `SendMessages`):
    /// `CanServeBlocks` (it offers `NODE_NETWORK` or `NODE_NETWORK_LIMITED`) and either
    /// (`sync_blocks_and_headers_from_peer` and not limited) or not in initial block download.
    /// `sync_blocks_and_headers_from_peer` is Core's: the peer is a preferred download peer
    /// (outbound or `noban`, not addr-fetch, can serve blocks), or it can serve blocks, is not
    /// addr-fetch, and there is no preferred download peer or nothing in flight
    /// ([`BlockDownload::total_in_flight`] is 0).
    pub allowed: bool,
}

/// What [`BlockDownload::fetch`] decided for one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fetch {
    /// Blocks to request now, in order; already marked in flight from the peer. The caller
    /// sends one `getdata` with `MSG_WITNESS_BLOCK` entries for them.
    pub blocks: Vec<(EntryId, BlockHash)>,
    /// A peer newly marked as stalling the download window (log "Stall started peer=N").
    pub stall_started: Option<PeerId>,
}

/// What [`BlockDownload::direct_fetch`] decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectFetch {
    /// Blocks to request now, earliest first; already marked in flight from the peer.
    pub blocks: Vec<(EntryId, BlockHash)>,
    /// The new headers fork from the active chain deeper than the walk goes: nothing is
    /// fetched (log "Large reorg, won't direct fetch to HASH (HEIGHT)").
    pub large_reorg: bool,
}

/// How a `block` message matched the requests ([`BlockDownload::received`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Requested from this peer; the request is done.
    Requested,
    /// Requested from another peer, whose request stays until [`BlockDownload::forget`].
    FromOther(PeerId),
    /// Not requested from anyone.
    Unrequested,
}

impl Received {
    /// Whether the block was requested from anyone (Core's `forceProcessing`: the kernel must
    /// process it even if it is no candidate for a new tip).
    pub fn force_processing(self) -> bool {
        !matches!(self, Received::Unrequested)
    }
}

/// Why [`BlockDownload::check`] says to disconnect a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownloadTimeout {
    /// The peer held up the download window longer than the stalling timeout; the timeout
    /// doubled (up to 64 s) to `increased_to` if it changed (log "Increased stalling timeout
    /// temporarily to N seconds").
    Stalling {
        /// The new stalling timeout, if it grew.
        increased_to: Option<Duration>,
    },
    /// The first block in flight from the peer was not delivered within the block interval
    /// times (1 + 0.5 × other downloading peers).
    Timeout {
        /// That block.
        hash: BlockHash,
    },
}

impl fmt::Display for DownloadTimeout {
    /// Core's log text, before its ", disconnecting peer=N".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownloadTimeout::Stalling { .. } => write!(f, "Peer is stalling block download"),
            DownloadTimeout::Timeout { hash } => write!(f, "Timeout downloading block {hash}"),
        }
    }
}

/// One peer's download state (Core's `CNodeState` download fields).
#[derive(Debug, Default)]
struct PeerState {
    /// Core's `vBlocksInFlight`: requested hashes, oldest first.
    in_flight: VecDeque<BlockHash>,
    /// Core's `m_downloading_since`: when the first block in flight started downloading.
    downloading_since: Option<Instant>,
    /// Core's `m_stalling_since`: since when this peer holds up the window.
    stalling_since: Option<Instant>,
    /// Core's `pindexLastCommonBlock`.
    last_common: Option<EntryId>,
    /// Blocks this peer answered with `notfound`: not asked of it again.
    not_found: HashSet<BlockHash>,
    /// [`BlockDownload::check`] told the caller to disconnect it: no further requests or checks.
    dropped: bool,
}

/// The node's block-request bookkeeping.
#[derive(Debug)]
pub struct BlockDownload {
    params: DownloadParams,
    /// Core's `mapBlocksInFlight`: each requested block, whom it was asked of and its entry.
    /// One peer per block (no compact-block second requests).
    in_flight: HashMap<BlockHash, (PeerId, EntryId)>,
    peers: HashMap<PeerId, PeerState>,
    /// Core's `m_peers_downloading_from`: peers with at least one block in flight.
    peers_downloading_from: usize,
    /// Core's `m_block_stalling_timeout`, in whole seconds as Core keeps it.
    stalling_timeout_secs: u64,
}

impl BlockDownload {
    /// Nothing in flight, no peers, the default stalling timeout.
    pub fn new(params: DownloadParams) -> BlockDownload {
        BlockDownload {
            params,
            in_flight: HashMap::new(),
            peers: HashMap::new(),
            peers_downloading_from: 0,
            stalling_timeout_secs: BLOCK_STALLING_TIMEOUT_DEFAULT.as_secs(),
        }
    }

    /// Starts the download state of a connected peer (no effect if it exists).
    pub fn add_peer(&mut self, peer: PeerId) {
        self.peers.entry(peer).or_default();
    }

    /// Forgets a peer (Core's `FinalizeNode`): its requests are freed for others. Returns them.
    pub fn remove_peer(&mut self, peer: PeerId) -> Vec<BlockHash> {
        let Some(state) = self.peers.remove(&peer) else { return Vec::new() };
        if !state.in_flight.is_empty() {
            self.peers_downloading_from = self.peers_downloading_from.saturating_sub(1);
        }
        for hash in &state.in_flight {
            if self.in_flight.get(hash).is_some_and(|&(holder, _)| holder == peer) {
                self.in_flight.remove(hash);
            }
        }
        state.in_flight.into()
    }

    /// Core's block-fetch step of `SendMessages` for `peer`: picks up to 16 minus what is in
    /// flight from it (`FindNextBlocksToDownload`), marks them requested (`BlockRequested`),
    /// and, if the peer then has nothing in flight because another peer holds the first block
    /// of the window, starts that peer's stalling clock. Nothing for an unknown or dropped peer
    /// or when `facts.allowed` is false.
    pub fn fetch(&mut self, tree: &HeaderTree, peer: PeerId, facts: FetchFacts, now: Instant) -> Fetch {
        let mut out = Fetch::default();
        let Some(state) = self.peers.get(&peer) else { return out };
        if !facts.allowed || state.dropped {
            return out;
        }
        let budget = MAX_BLOCKS_IN_TRANSIT_PER_PEER.saturating_sub(state.in_flight.len());
        if budget == 0 {
            return out;
        }
        let (blocks, staller) = self.find_next_blocks(tree, peer, &facts, budget);
        for &(id, hash) in &blocks {
            self.block_requested(peer, id, hash, now);
        }
        out.blocks = blocks;
        if self.in_flight(peer) == 0 {
            if let Some(staller) = staller {
                if let Some(s) = self.peers.get_mut(&staller) {
                    if s.stalling_since.is_none() {
                        s.stalling_since = Some(now);
                        out.stall_started = Some(staller);
                    }
                }
            }
        }
        out
    }

    /// Core's `FindNextBlocksToDownload` + `FindNextBlocks`: moves the peer's last common block
    /// forward and returns up to `count` blocks to fetch, with the peer holding up the window
    /// if nothing could be fetched because of it.
    fn find_next_blocks(
        &mut self,
        tree: &HeaderTree,
        peer: PeerId,
        facts: &FetchFacts,
        count: usize,
    ) -> (Vec<(EntryId, BlockHash)>, Option<PeerId>) {
        let mut blocks = Vec::new();
        let Some(best_id) = facts.best_known else { return (blocks, None) };
        let (Some(best), Some(active_tip)) = (tree.entry(best_id), tree.entry(tree.active_tip_id())) else {
            return (blocks, None);
        };
        if best.chain_work < active_tip.chain_work || best.chain_work < self.params.minimum_chain_work {
            // This peer has nothing interesting.
            return (blocks, None);
        }
        // Stricter than Core, which fetches up to the first invalid block: blocks leading only
        // to an invalid tip are of no use, and any valid part another peer's chain shares is
        // fetched from that peer.
        if best.status.failed() {
            return (blocks, None);
        }
        let Some(fork) = tree.last_common_ancestor(best_id, tree.active_tip_id()) else { return (blocks, None) };
        let Some(fork_work) = tree.entry(fork).map(|e| e.chain_work) else { return (blocks, None) };
        let Some(state) = self.peers.get_mut(&peer) else { return (blocks, None) };
        // The last common block must be an ancestor of the best known block; it moves to the
        // fork with the active chain unless it is already a later ancestor.
        let keep = state
            .last_common
            .and_then(|lc| tree.entry(lc).map(|e| (lc, e)))
            .is_some_and(|(lc, e)| fork_work <= e.chain_work && tree.ancestor(best_id, e.height) == Some(lc));
        if !keep {
            state.last_common = Some(fork);
        }
        let Some(last_common) = state.last_common else { return (blocks, None) };
        if last_common == best_id {
            return (blocks, None);
        }
        let Some(lc_height) = tree.entry(last_common).map(|e| e.height) else { return (blocks, None) };
        // Never past the peer's best block, nor more than the window + 1 past the last common
        // block: the +1 shows a stall (the next block would be fetched if the window were one
        // larger).
        let window_end = lc_height.saturating_add(BLOCK_DOWNLOAD_WINDOW);
        let max_height = best.height.min(window_end.saturating_add(1));
        let mut waiting_for: Option<PeerId> = None;
        // Whether every block from the last common block up to the walk has its data, so a
        // stored block may become the last common block (Core's `HaveNumChainTxs`).
        let mut complete = true;
        let mut walk_height = lc_height;
        let mut batch: Vec<EntryId> = Vec::with_capacity(WALK_BATCH);
        while walk_height < max_height {
            let want = count.saturating_sub(blocks.len()).max(WALK_BATCH);
            let n = (max_height - walk_height).min(u32::try_from(want).unwrap_or(u32::MAX));
            let Some(top) = tree.ancestor(best_id, walk_height + n) else { return (blocks, None) };
            batch.clear();
            let mut cur = top;
            for _ in 0..n {
                batch.push(cur);
                let Some(e) = tree.entry(cur) else { return (blocks, None) };
                cur = e.parent;
            }
            batch.reverse();
            walk_height += n;
            for &id in &batch {
                let Some(e) = tree.entry(id) else { return (blocks, None) };
                if e.status.failed() {
                    // The peer's chain is invalid from here.
                    return (blocks, None);
                }
                if !facts.witness && e.height >= self.params.segwit_height {
                    // Neither this block nor its descendants can come from this peer.
                    return (blocks, None);
                }
                let active = tree.on_active_chain(id);
                if active || e.status.has_block() {
                    complete |= active;
                    if complete {
                        state.last_common = Some(id);
                    }
                    continue;
                }
                complete = false;
                if let Some(&(holder, _)) = self.in_flight.get(&e.hash) {
                    waiting_for.get_or_insert(holder);
                    continue;
                }
                if e.height > window_end {
                    // The window is full; if someone else's block holds it, that one stalls.
                    let staller = if blocks.is_empty() && waiting_for != Some(peer) { waiting_for } else { None };
                    return (blocks, staller);
                }
                // A limited peer serves only its last 288 blocks (less two for races).
                if facts.limited
                    && best.height.saturating_sub(e.height) >= NODE_NETWORK_LIMITED_MIN_BLOCKS - LIMITED_PEER_BUFFER
                {
                    continue;
                }
                if state.not_found.contains(&e.hash) {
                    continue;
                }
                blocks.push((id, e.hash));
                if blocks.len() >= count {
                    return (blocks, None);
                }
            }
        }
        (blocks, None)
    }

    /// Core's `HeadersDirectFetchBlocks`, after a `headers` message from `peer` ending in
    /// `last_header`: requests the missing blocks between the active chain and it (at most 16
    /// in flight from the peer), earliest first. The caller calls it only when Core's
    /// `CanDirectFetch` holds: the active tip's time is within 20 block intervals of now. Nothing
    /// if `last_header` is invalid or has less work than the active tip, or forks from the
    /// active chain more than 17 missing blocks deep (`large_reorg`).
    pub fn direct_fetch(
        &mut self,
        tree: &HeaderTree,
        peer: PeerId,
        last_header: EntryId,
        witness: bool,
        now: Instant,
    ) -> DirectFetch {
        let mut out = DirectFetch::default();
        let Some(state) = self.peers.get(&peer) else { return out };
        let (Some(last), Some(active_tip)) = (tree.entry(last_header), tree.entry(tree.active_tip_id())) else {
            return out;
        };
        if state.dropped || last.status.failed() || active_tip.chain_work > last.chain_work {
            return out;
        }
        let mut to_fetch = Vec::new();
        let mut walk = last_header;
        while !tree.on_active_chain(walk) && to_fetch.len() <= MAX_BLOCKS_IN_TRANSIT_PER_PEER {
            let Some(e) = tree.entry(walk) else { return out };
            if !e.status.has_block()
                && !self.in_flight.contains_key(&e.hash)
                && !state.not_found.contains(&e.hash)
                && (e.height < self.params.segwit_height || witness)
            {
                to_fetch.push((walk, e.hash));
            }
            if e.height == 0 {
                break;
            }
            walk = e.parent;
        }
        if !tree.on_active_chain(walk) {
            out.large_reorg = true;
            return out;
        }
        for &(id, hash) in to_fetch.iter().rev() {
            if self.in_flight(peer) >= MAX_BLOCKS_IN_TRANSIT_PER_PEER {
                break;
            }
            if self.block_requested(peer, id, hash, now) {
                out.blocks.push((id, hash));
            }
        }
        out
    }

    /// First height where blocks carry witnesses (fetched only from witness peers).
    pub fn segwit_height(&self) -> u32 {
        self.params.segwit_height
    }

    /// A `cmpctblock` from `peer` starts the download of block `id` from it (Core's
    /// `BlockRequested` in compact-block processing): false if the block is already in flight
    /// (from anyone) or the peer is unknown.
    pub fn request_from(&mut self, peer: PeerId, id: EntryId, hash: BlockHash, now: Instant) -> bool {
        self.block_requested(peer, id, hash, now)
    }

    /// Core's `BlockRequested`: marks `hash` in flight from `peer`. False (nothing changes) if
    /// it is already in flight from anyone or the peer is unknown.
    fn block_requested(&mut self, peer: PeerId, id: EntryId, hash: BlockHash, now: Instant) -> bool {
        if self.in_flight.contains_key(&hash) {
            return false;
        }
        let Some(state) = self.peers.get_mut(&peer) else { return false };
        state.in_flight.push_back(hash);
        if state.in_flight.len() == 1 {
            // A download batch from this peer starts.
            state.downloading_since = Some(now);
            self.peers_downloading_from += 1;
        }
        self.in_flight.insert(hash, (peer, id));
        true
    }

    /// Core's `RemoveBlockRequest`: ends the request of `hash` (only if it was made of `from`,
    /// when given). Receiving the first block in flight restarts the peer's download clock; any
    /// removal ends its stall. Returns whether a request ended.
    fn remove_request(&mut self, hash: &BlockHash, from: Option<PeerId>, now: Instant) -> bool {
        let Some(&(holder, _)) = self.in_flight.get(hash) else { return false };
        if from.is_some_and(|p| p != holder) {
            return false;
        }
        self.in_flight.remove(hash);
        if let Some(state) = self.peers.get_mut(&holder) {
            if let Some(pos) = state.in_flight.iter().position(|h| h == hash) {
                if pos == 0 {
                    state.downloading_since = Some(state.downloading_since.map_or(now, |since| since.max(now)));
                }
                state.in_flight.remove(pos);
                if state.in_flight.is_empty() {
                    self.peers_downloading_from = self.peers_downloading_from.saturating_sub(1);
                }
            }
            state.stalling_since = None;
        }
        true
    }

    /// A `block` message with `hash` arrived from `from` (Core's `BLOCK` handling): says how it
    /// matched the requests and ends this peer's request of it. The caller hands the block to
    /// validation (forced if [`Received::force_processing`]) and calls [`BlockDownload::forget`]
    /// once it is stored or refused.
    pub fn received(&mut self, hash: &BlockHash, from: PeerId, now: Instant) -> Received {
        match self.in_flight.get(hash) {
            None => Received::Unrequested,
            Some(&(holder, _)) if holder != from => Received::FromOther(holder),
            Some(_) => {
                self.remove_request(hash, Some(from), now);
                Received::Requested
            }
        }
    }

    /// A `notfound` from `peer` listing `hashes`: its requests of them end, and they are not
    /// asked of it again (until they are forgotten). Core ignores block entries in `notfound`
    /// and lets the stalling and download timeouts deal with the peer; freeing them lets
    /// another peer deliver at once. Returns how many requests ended.
    pub fn not_found(&mut self, peer: PeerId, hashes: &[BlockHash], now: Instant) -> usize {
        let mut freed = 0;
        for hash in hashes {
            if self.remove_request(hash, Some(peer), now) {
                freed += 1;
                if let Some(state) = self.peers.get_mut(&peer) {
                    if state.not_found.len() >= MAX_NOT_FOUND_PER_PEER {
                        state.not_found.clear();
                    }
                    state.not_found.insert(*hash);
                }
            }
        }
        freed
    }

    /// The block `hash` was stored or refused by validation (Core's `RemoveBlockRequest(hash,
    /// nullopt)` in `ProcessBlock`): no longer in flight from anyone.
    pub fn forget(&mut self, hash: &BlockHash, now: Instant) {
        self.remove_request(hash, None, now);
        for state in self.peers.values_mut() {
            state.not_found.remove(hash);
        }
    }

    /// A block was connected to the active chain (Core's `BlockConnected`): a doubled stalling
    /// timeout decays by 15 % (whole seconds, not below 2 s). Returns the new timeout if it
    /// changed (log "Decreased stalling timeout to N seconds").
    pub fn connected(&mut self) -> Option<Duration> {
        let default = BLOCK_STALLING_TIMEOUT_DEFAULT.as_secs();
        if self.stalling_timeout_secs == default {
            return None;
        }
        // As Core: seconds × 0.85 in floating point, truncated to whole seconds.
        let decayed = ((self.stalling_timeout_secs as f64) * STALLING_DECAY) as u64;
        self.stalling_timeout_secs = decayed.max(default);
        Some(self.stalling_timeout())
    }

    /// Core's download checks in `SendMessages` for `peer`: a peer stalling the window longer
    /// than the stalling timeout (which then doubles, up to 64 s), or whose first block in
    /// flight has been downloading longer than `pow_target_spacing` × (1 + 0.5 × the other
    /// peers with blocks in flight). The caller disconnects it; the peer then gets no further
    /// requests or checks until [`BlockDownload::remove_peer`].
    pub fn check(&mut self, peer: PeerId, now: Instant, pow_target_spacing: Duration) -> Option<DownloadTimeout> {
        let timeout = self.stalling_timeout();
        let others = self.peers_downloading_from.saturating_sub(1);
        let state = self.peers.get_mut(&peer)?;
        if state.dropped {
            return None;
        }
        if let Some(since) = state.stalling_since {
            if now.checked_duration_since(since).is_some_and(|held| held > timeout) {
                state.dropped = true;
                let old = self.stalling_timeout_secs;
                let new = old.saturating_mul(2).min(BLOCK_STALLING_TIMEOUT_MAX.as_secs());
                self.stalling_timeout_secs = new;
                let increased_to = (new != old).then(|| Duration::from_secs(new));
                return Some(DownloadTimeout::Stalling { increased_to });
            }
        }
        if let (Some(&hash), Some(since)) = (state.in_flight.front(), state.downloading_since) {
            let factor = BLOCK_DOWNLOAD_TIMEOUT_BASE + BLOCK_DOWNLOAD_TIMEOUT_PER_PEER * others as f64;
            let limit = Duration::try_from_secs_f64(pow_target_spacing.as_secs_f64() * factor).unwrap_or(Duration::MAX);
            if since.checked_add(limit).is_some_and(|deadline| now > deadline) {
                state.dropped = true;
                return Some(DownloadTimeout::Timeout { hash });
            }
        }
        None
    }

    /// Blocks in flight from `peer`.
    pub fn in_flight(&self, peer: PeerId) -> usize {
        self.peers.get(&peer).map_or(0, |s| s.in_flight.len())
    }

    /// Blocks in flight from all peers.
    pub fn total_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether `hash` is in flight (Core's `IsBlockRequested`).
    pub fn is_requested(&self, hash: &BlockHash) -> bool {
        self.in_flight.contains_key(hash)
    }

    /// The peer `hash` is in flight from.
    pub fn requested_from(&self, hash: &BlockHash) -> Option<PeerId> {
        self.in_flight.get(hash).map(|&(peer, _)| peer)
    }

    /// The hashes in flight from `peer`, oldest first.
    pub fn requests(&self, peer: PeerId) -> Vec<BlockHash> {
        self.peers.get(&peer).map(|s| s.in_flight.iter().copied().collect()).unwrap_or_default()
    }

    /// Peers with at least one block in flight (Core's `m_peers_downloading_from`).
    pub fn peers_downloading_from(&self) -> usize {
        self.peers_downloading_from
    }

    /// The current stalling timeout (2 s, doubled per stalling disconnect up to 64 s).
    pub fn stalling_timeout(&self) -> Duration {
        Duration::from_secs(self.stalling_timeout_secs)
    }

    /// Height of the peer's last common block (Core's `nCommonHeight` in `getpeerinfo`).
    pub fn common_height(&self, tree: &HeaderTree, peer: PeerId) -> Option<u32> {
        let id = self.peers.get(&peer)?.last_common?;
        tree.entry(id).map(|e| e.height)
    }

    /// Since when `peer` holds up the download window, if it does.
    pub fn stalling_since(&self, peer: PeerId) -> Option<Instant> {
        self.peers.get(&peer)?.stalling_since
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod prop_tests;
