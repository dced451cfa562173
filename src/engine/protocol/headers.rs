//! Headers-first sync and serving (Core's `ProcessHeadersMessage`, `GETHEADERS`, block `INV`,
//! the sync-start and stall rules of `SendMessages`, and BIP130 announcements): owns each
//! peer's headers state and the node's count of sync peers; the chain itself is
//! [`crate::engine::chain::accept::Chain`].

use std::time::{Duration, Instant};

use bitcoin::BlockHash;
use bitcoin::block::Header;
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};
use tracing::{debug, info};

use super::{Now, Outbox, Peer, misbehaving};
use crate::base::peer::{ConnectionType, DisconnectReason};
use crate::engine::chain::accept::Chain;
use crate::engine::chain::pow::{check_proof_of_work, work_of};
use crate::engine::chain::presync::{ChainStart, HeadersSync, Phase, SyncParams};
use crate::engine::chain::tree::{EntryId, MAX_LOCATOR_SZ, no_stop};
use crate::engine::policy::permissions::Permissions;

/// Core's `MAX_HEADERS_RESULTS`.
pub const MAX_HEADERS_RESULTS: usize = 2000;
/// Core's `MAX_BLOCKS_TO_ANNOUNCE`: longer runs of new headers are announced by `inv`.
pub const MAX_BLOCKS_TO_ANNOUNCE: u32 = 8;
/// Core's `HEADERS_RESPONSE_TIME`: a `getheaders` unanswered this long may be repeated.
pub const HEADERS_RESPONSE_TIME: Duration = Duration::from_secs(2 * 60);
/// Core's `HEADERS_DOWNLOAD_TIMEOUT_BASE`.
pub const HEADERS_DOWNLOAD_TIMEOUT_BASE: Duration = Duration::from_secs(15 * 60);
/// Core's `HEADERS_DOWNLOAD_TIMEOUT_PER_HEADER`.
pub const HEADERS_DOWNLOAD_TIMEOUT_PER_HEADER: Duration = Duration::from_millis(1);
/// Core's `MAX_INV_SZ`.
pub const MAX_INV_SZ: usize = 50_000;
/// Core's `CHAIN_SYNC_TIMEOUT`: an outbound peer whose best header has less work than our tip
/// gets this long (then a `getheaders` and [`HEADERS_RESPONSE_TIME`]) to catch up.
pub const CHAIN_SYNC_TIMEOUT: i64 = 20 * 60;
/// Core's `MAX_OUTBOUND_PEERS_TO_PROTECT_FROM_DISCONNECT`: outbound full-relay peers that once
/// had a chain as good as ours, exempt from [`CHAIN_SYNC_TIMEOUT`] and extra-peer eviction.
pub const MAX_OUTBOUND_PEERS_TO_PROTECT_FROM_DISCONNECT: usize = 4;
/// Core's `DEFAULT_MAX_TIP_AGE` (`--maxtipage`): a best header older than this means initial
/// download.
pub const DEFAULT_MAX_TIP_AGE: i64 = 24 * 60 * 60;
/// Core's sync-start and stall rules in `SendMessages`: while our best header is older than
/// this, headers are asked from one peer only and a stalling sync peer is dropped. Core
/// hard-codes these 24 h apart from `-maxtipage`, so `--maxtipage` does not change them.
pub const SINGLE_SYNC_PEER_AGE: i64 = 24 * 60 * 60;

/// One peer's headers state.
#[derive(Debug, Default)]
pub struct HeadersPeer {
    /// We asked this peer for the initial sync (Core's `fSyncStarted`).
    pub sync_started: bool,
    /// When a stalled initial sync from this peer times out (`None`: no deadline).
    pub sync_timeout: Option<Instant>,
    /// When our last unanswered `getheaders` went out.
    pub last_getheaders: Option<Instant>,
    /// A low-work headers sync in progress with this peer.
    pub presync: Option<Box<HeadersSync>>,
    /// The best header the peer showed us it has, by sending or announcing it (Core's
    /// `pindexBestKnownBlock`): what the chain-sync timeout and `synced_headers` read.
    pub best_known: Option<EntryId>,
    /// The best header we sent or announced to the peer (Core's `pindexBestHeaderSent`).
    pub best_sent: Option<EntryId>,
    /// Our best tip when we last announced to this peer.
    pub announced_tip: Option<EntryId>,
    /// When this peer last moved our best chain forward (Core's `m_last_block_time` and
    /// `m_last_block_announcement`; a headers-only node counts headers), Unix seconds.
    pub last_block_time: Option<i64>,
    /// Core's `fPreferredDownload`, fixed at the handshake ([`HeadersNode::on_established`]).
    pub preferred: bool,
    /// Core's `m_chain_sync`: the outbound chain-sync timeout.
    pub chain_sync: ChainSync,
}

/// Core's `ChainSyncTimeoutState` of one outbound peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainSync {
    /// When the peer must have shown a chain as good as `work_header` (Unix seconds).
    pub timeout: Option<i64>,
    /// Our tip when the timeout was set: the work the peer must reach.
    pub work_header: Option<EntryId>,
    /// The one `getheaders` of the last chance went out.
    pub sent_getheaders: bool,
    /// Protected from this timeout and from extra-peer eviction (Core's `m_protect`).
    pub protect: bool,
}

/// Core's `CanServeBlocks`: the peer advertises `NODE_NETWORK` or `NODE_NETWORK_LIMITED`.
pub fn can_serve_blocks(peer: &Peer) -> bool {
    peer.handshake
        .remote
        .as_ref()
        .is_some_and(|r| r.services.has(ServiceFlags::NETWORK) || r.services.has(ServiceFlags::NETWORK_LIMITED))
}

/// Core's `fPreferredDownload`: outbound (or `noban` inbound), not addr-fetch, and able to serve
/// blocks. Feelers are left out too: they close right after the handshake.
pub fn is_preferred_download(peer: &Peer) -> bool {
    let outbound_or_noban = !peer.who.conn_type.is_inbound() || peer.who.permissions.has(Permissions::NO_BAN);
    outbound_or_noban
        && !matches!(peer.who.conn_type, ConnectionType::AddrFetch | ConnectionType::Feeler)
        && can_serve_blocks(peer)
}

/// Node-wide headers state.
#[derive(Debug)]
pub struct HeadersNode {
    /// The chain.
    pub chain: Chain,
    /// Peers with an initial sync started (Core's `nSyncStarted`).
    pub sync_peers: usize,
    sync_params: SyncParams,
    /// `--maxtipage` in seconds (Core's `max_tip_age`).
    max_tip_age: i64,
    /// Initial download is over: latched, as Core's `m_cached_is_ibd`.
    finished_ibd: bool,
    /// Peers with [`HeadersPeer::preferred`] (Core's `m_num_preferred_download_peers`).
    pub preferred_peers: usize,
    /// Peers with [`ChainSync::protect`] (Core's `m_outbound_peers_with_protect_from_disconnect`).
    pub protected_peers: usize,
    /// When our tip last changed, Unix seconds (Core's `m_last_tip_update`; `None` until
    /// first asked or changed).
    last_tip_update: Option<i64>,
    /// The node validates blocks: its tip is the active chain's, moved by the validation
    /// thread. Without blocks (the simulator, protocol tests) the best header is the tip.
    blocks: bool,
}

impl HeadersNode {
    /// Headers state over `chain`; `max_tip_age` is `--maxtipage` in seconds.
    pub fn new(mut chain: Chain, max_tip_age: i64, blocks: bool) -> Self {
        let sync_params = SyncParams::for_network(chain.params().network);
        if !blocks {
            chain.tree_mut().follow_best();
        }
        HeadersNode {
            blocks,
            chain,
            sync_peers: 0,
            sync_params,
            max_tip_age,
            finished_ibd: false,
            preferred_peers: 0,
            protected_peers: 0,
            last_tip_update: None,
        }
    }

    /// A peer finished the handshake: its services and connection type are known, so whether
    /// it is a preferred sync source is fixed now (Core sets `fPreferredDownload` at `version`).
    pub fn on_established(&mut self, peer: &mut Peer) {
        peer.headers.preferred = is_preferred_download(peer);
        self.preferred_peers += usize::from(peer.headers.preferred);
    }

    /// Core's `TipMayBeStale` (its "no blocks in flight" half is the caller's): our tip has
    /// not changed for three block intervals.
    pub fn tip_may_be_stale(&mut self, unix: i64) -> bool {
        let last = *self.last_tip_update.get_or_insert(unix);
        last < unix.saturating_sub(3 * i64::from(self.chain.params().pow_target_spacing))
    }

    /// When our tip last changed (Unix seconds), if known.
    pub fn last_tip_update(&self) -> Option<i64> {
        self.last_tip_update
    }

    /// Changes `--maxtipage` (seconds) mid-test.
    #[cfg(test)]
    pub(crate) fn set_max_tip_age(&mut self, secs: i64) {
        self.max_tip_age = secs;
    }

    /// Whether the node validates blocks (see [`HeadersNode::new`]).
    pub fn has_blocks(&self) -> bool {
        self.blocks
    }

    /// The tip: the active chain's (the best header's on a node without blocks).
    pub fn tip(&self) -> &crate::engine::chain::tree::Entry {
        let tree = self.chain.tree();
        tree.entry(tree.active_tip_id()).unwrap_or_else(|| tree.tip())
    }

    /// The validation thread connected `id` (and what it took to get there): the tip moved.
    pub fn tip_moved(&mut self, id: EntryId, unix: i64) {
        self.chain.tree_mut().set_active_tip(id);
        self.last_tip_update = Some(unix);
        let _ = self.in_ibd(unix);
    }

    /// Whether our tip is older than `age` seconds at `unix`.
    fn tip_older_than(&self, unix: i64, age: i64) -> bool {
        i64::from(self.tip().header.time) < unix.saturating_sub(age)
    }

    /// Core's `IsInitialBlockDownload`, the one answer the whole node uses: true while our tip
    /// ([`HeadersNode::tip`]) has less than the minimum chain work or is older than
    /// `--maxtipage`. Once false it stays false (Core's latch, `UpdateIBDStatus`); it is
    /// updated here and whenever the tip changes.
    pub fn in_ibd(&mut self, unix: i64) -> bool {
        if self.finished_ibd {
            return false;
        }
        let tip = self.tip();
        if tip.chain_work < self.chain.min_chain_work() || self.tip_older_than(unix, self.max_tip_age) {
            return true;
        }
        info!("Leaving InitialBlockDownload (latching to false)");
        self.finished_ibd = true;
        false
    }

    /// How many blocks (at the 10-minute spacing) our tip is behind `unix`, as Core's
    /// `ApproximateBestBlockDepth`.
    pub fn tip_depth(&self, unix: i64) -> i64 {
        (unix - i64::from(self.tip().header.time)) / 600
    }

    /// Forgets a closed peer.
    pub fn remove_peer(&mut self, peer: &Peer) {
        if peer.headers.sync_started {
            self.sync_peers = self.sync_peers.saturating_sub(1);
        }
        if peer.headers.preferred {
            self.preferred_peers = self.preferred_peers.saturating_sub(1);
        }
        if peer.headers.chain_sync.protect {
            self.protected_peers = self.protected_peers.saturating_sub(1);
        }
    }

    /// Core's `CanDirectFetch`: our tip is less than 20 block intervals old.
    pub fn near_tip(&self, unix: i64) -> bool {
        i64::from(self.tip().header.time) > unix - 20 * i64::from(self.chain.params().pow_target_spacing)
    }

    /// Core's "not close to today" of the sync-start and stall rules ([`SINGLE_SYNC_PEER_AGE`]).
    fn far_behind(&self, now: Now) -> bool {
        i64::from(self.chain.tree().tip().header.time) <= now.unix.saturating_sub(SINGLE_SYNC_PEER_AGE)
    }
}

/// Asks `peer` for headers from our best header on (Core's `MaybeSendGetHeaders` with the
/// best header's locator), e.g. for a compact block that does not connect.
pub fn ask_headers(node: &HeadersNode, peer: &mut Peer, now: Now, out: &mut impl Outbox) {
    let tree = node.chain.tree();
    let locator = tree.locator(tree.tip_id());
    if maybe_send_getheaders(peer, locator, now, out) {
        debug!(target: "net", "getheaders ({}) to peer={}", tree.height(), peer.who.id);
    }
}

/// Core's `UpdateBlockAvailability`: the peer has block `id`; it becomes its best known block
/// if it has more work.
pub fn block_available(node: &HeadersNode, peer: &mut Peer, id: EntryId) {
    let tree = node.chain.tree();
    let work = |id: EntryId| tree.entry(id).map(|e| e.chain_work);
    if peer.headers.best_known.is_none_or(|old| work(old) < work(id)) {
        peer.headers.best_known = Some(id);
    }
}

/// Core's `MaybeSendGetHeaders`: at most one unanswered `getheaders` per
/// [`HEADERS_RESPONSE_TIME`].
fn maybe_send_getheaders(peer: &mut Peer, locator: Vec<BlockHash>, now: Now, out: &mut impl Outbox) -> bool {
    let h = &mut peer.headers;
    if h.last_getheaders.is_some_and(|t| now.mono.saturating_duration_since(t) <= HEADERS_RESPONSE_TIME) {
        return false;
    }
    let msg = GetHeadersMessage {
        version: super::handshake::PROTOCOL_VERSION as u32,
        locator_hashes: locator,
        stop_hash: no_stop(),
    };
    out.send(&NetworkMessage::GetHeaders(msg));
    h.last_getheaders = Some(now.mono);
    true
}

/// A `headers` message.
pub fn on_headers(node: &mut HeadersNode, peer: &mut Peer, mut headers: Vec<Header>, now: Now, out: &mut impl Outbox) {
    let count = headers.len();
    if count > MAX_HEADERS_RESULTS {
        return misbehaving(peer, out, format!("headers message size = {count}"));
    }
    if count == 0 {
        peer.headers.presync = None;
        peer.headers.last_getheaders = None;
        return;
    }
    let params = node.chain.params();
    let mut prev: Option<BlockHash> = None;
    for h in &headers {
        let hash = h.block_hash();
        if !check_proof_of_work(hash, h.bits, params) {
            return misbehaving(peer, out, "header with invalid proof of work".into());
        }
        if prev.is_some_and(|p| h.prev_blockhash != p) {
            return misbehaving(peer, out, "non-continuous headers sequence".into());
        }
        prev = Some(hash);
    }
    let full = count == MAX_HEADERS_RESULTS;
    let mut validated_work = false;
    let in_presync = peer.headers.presync.is_some();
    if in_presync {
        match continue_presync(node, peer, &headers, full, now, out) {
            Some(released) => {
                validated_work = true;
                headers = released;
            }
            None => return,
        }
        if headers.is_empty() {
            return;
        }
    }
    let tree = node.chain.tree();
    let Some((start_id, start)) = tree.get(&headers[0].prev_blockhash) else {
        // Possibly a BIP130 announcement we cannot connect: ask for what we miss.
        let locator = tree.locator(tree.tip_id());
        if maybe_send_getheaders(peer, locator, now, out) {
            debug!(target: "net", "received header {}: missing prev block {}, sending getheaders ({}) to end (peer={})", headers[0].block_hash(), headers[0].prev_blockhash, tree.height(), peer.who.id);
        }
        return;
    };
    peer.headers.last_getheaders = None;
    let last_hash = headers[headers.len() - 1].block_hash();
    let known_last = tree.get(&last_hash).map(|(id, _)| id);
    validated_work |= known_last.is_some_and(|id| tree.on_best_chain(id));
    if !validated_work {
        let claimed = headers.iter().fold(start.chain_work, |w, h| w + work_of(h.bits));
        let threshold = node.chain.anti_dos_threshold();
        if claimed < threshold {
            if full {
                let start = ChainStart {
                    header: start.header,
                    hash: start.hash,
                    height: start.height,
                    chain_work: start.chain_work,
                    median_time_past: tree.median_time_past(start_id),
                    locator: tree.locator(start_id),
                };
                // Core draws the offset at random; our random `version` nonce for this peer
                // serves, so the protocol reads no clock (fake-time runs are reproducible).
                let nonce = peer.handshake.local_nonce;
                let offset = ((nonce >> 32) as u32 ^ nonce as u32) % node.sync_params.commitment_period;
                let sync =
                    HeadersSync::new(node.chain.params().clone(), node.sync_params, start, threshold, now.unix, offset);
                peer.headers.presync = Some(Box::new(sync));
                let _ = continue_presync(node, peer, &headers, full, now, out);
            } else {
                debug!(target: "net", "Ignoring low-work chain (height={}) from peer={}", start.height as usize + count, peer.who.id);
            }
            return;
        }
    }
    accept(node, peer, &headers, full && !in_presync, now, out);
}

/// Feeds a low-work sync; returns the headers it released for acceptance, or `None` when it
/// failed (the sync is then dropped).
fn continue_presync(
    node: &mut HeadersNode,
    peer: &mut Peer,
    headers: &[Header],
    full: bool,
    now: Now,
    out: &mut impl Outbox,
) -> Option<Vec<Header>> {
    let sync = peer.headers.presync.as_mut()?;
    let r = sync.process(headers, full);
    if r.success {
        peer.headers.last_getheaders = None;
    }
    if r.request_more {
        let locator = sync.next_locator();
        if maybe_send_getheaders(peer, locator, now, out) {
            debug!(target: "net", "more getheaders (presync) to peer={}", peer.who.id);
        }
    }
    if let Some(sync) = peer.headers.presync.as_ref() {
        match sync.phase() {
            Phase::Final => peer.headers.presync = None,
            Phase::Presync => info!(
                "Pre-synchronizing blockheaders, height: {} (~{:.2}%)",
                sync.presync_height(),
                progress(sync.presync_height(), sync.presync_time(), now, node.chain.params().pow_target_spacing)
            ),
            Phase::Redownload => {}
        }
    }
    r.success.then_some(r.headers)
}

/// Estimated sync progress for a tip at `height` with time `time`.
fn progress(height: u32, time: u32, now: Now, spacing: u32) -> f64 {
    let left = ((now.unix - i64::from(time)).max(0) / i64::from(spacing.max(1))) as f64;
    let h = f64::from(height);
    if h + left == 0.0 { 100.0 } else { 100.0 * h / (h + left) }
}

fn accept(
    node: &mut HeadersNode,
    peer: &mut Peer,
    headers: &[Header],
    ask_more: bool,
    now: Now,
    out: &mut impl Outbox,
) {
    let r = node.chain.accept(headers, now.unix);
    if let Some((i, e)) = &r.error {
        let hash = headers.get(*i).map(|h| h.block_hash()).unwrap_or_else(no_stop);
        if e.is_misbehaviour() {
            return misbehaving(peer, out, format!("invalid header received: {hash}: {e}"));
        }
        // Core's MaybePunishNodeForBlock: a header from the future (or one we cannot connect)
        // is refused without punishing its sender.
        debug!(target: "net", "peer={}: header {hash} not accepted: {e}", peer.who.id);
    }
    let Some(last) = r.last else { return };
    let tree = node.chain.tree();
    let work = |id: EntryId| tree.entry(id).map(|e| e.chain_work);
    peer.headers.best_known = Some(match peer.headers.best_known {
        Some(old) if work(old) >= work(last) => old,
        _ => last,
    });
    if r.new_tip.is_some() {
        if !node.blocks {
            // Without blocks the best header is the tip.
            node.chain.tree_mut().follow_best();
            node.last_tip_update = Some(now.unix);
        }
        // Core's UpdateIBDStatus runs whenever the tip moves.
        let _ = node.in_ibd(now.unix);
        let tree = node.chain.tree();
        peer.headers.last_block_time = Some(now.unix);
        let tip = tree.tip();
        let p = progress(tip.height, tip.header.time, now, node.chain.params().pow_target_spacing);
        info!("Synchronizing blockheaders, height: {} (~{p:.2}%)", tip.height);
    }
    maybe_protect(node, peer);
    // Core stops after a failed batch: asking again would fetch the same refused header.
    if ask_more && r.error.is_none() {
        let tree = node.chain.tree();
        let locator = tree.locator(last);
        let height = tree.entry(last).map_or(0, |e| e.height);
        if maybe_send_getheaders(peer, locator, now, out) {
            debug!(target: "net", "more getheaders ({height}) to end to peer={}", peer.who.id);
        }
    }
}

/// Core's end of `UpdatePeerStateForReceivedHeaders`: the first four outbound full-relay peers
/// whose best header has as much work as our tip are protected from the chain-sync timeout and
/// from extra-peer eviction for the rest of the connection.
fn maybe_protect(node: &mut HeadersNode, peer: &mut Peer) {
    if peer.who.conn_type != ConnectionType::OutboundFullRelay
        || peer.headers.chain_sync.protect
        || node.protected_peers >= MAX_OUTBOUND_PEERS_TO_PROTECT_FROM_DISCONNECT
    {
        return;
    }
    let tree = node.chain.tree();
    let best = peer.headers.best_known.and_then(|id| tree.entry(id)).map(|e| e.chain_work);
    if best.is_some_and(|w| w >= node.tip().chain_work) {
        debug!(target: "net", "Protecting outbound peer={} from eviction", peer.who.id);
        peer.headers.chain_sync.protect = true;
        node.protected_peers += 1;
    }
}

/// A `getheaders` message: up to 2,000 headers of our best chain after the locator's fork
/// point (or the single `hashStop` header for an empty locator).
pub fn on_getheaders(node: &HeadersNode, peer: &mut Peer, msg: &GetHeadersMessage, out: &mut impl Outbox) {
    if msg.locator_hashes.len() > MAX_LOCATOR_SZ {
        // Core only disconnects here (no discouragement).
        return out.disconnect(DisconnectReason::Misbehaving(format!(
            "getheaders locator size {} > {MAX_LOCATOR_SZ}",
            msg.locator_hashes.len()
        )));
    }
    let tree = node.chain.tree();
    if node.tip().chain_work < node.chain.min_chain_work() {
        debug!(target: "net", "Ignoring getheaders from peer={} because active chain has too little work; sending empty response", peer.who.id);
        return out.send(&NetworkMessage::Headers(Vec::new()));
    }
    // Core serves the active chain (blocks it has validated), never headers beyond it.
    let range = if msg.locator_hashes.is_empty() {
        match tree.get(&msg.stop_hash) {
            Some((id, e)) if tree.on_active_chain(id) => e.height..e.height + 1,
            _ => return,
        }
    } else {
        tree.serve_range_active(&msg.locator_hashes, &msg.stop_hash, MAX_HEADERS_RESULTS)
    };
    debug!(target: "net", "getheaders {} to {} from peer={}", range.start.saturating_sub(1), if msg.stop_hash == no_stop() { "end".to_string() } else { msg.stop_hash.to_string() }, peer.who.id);
    if let Some(last) = range.end.checked_sub(1).filter(|&h| h >= range.start) {
        peer.headers.best_sent = tree.active_id(last).or(peer.headers.best_sent);
    }
    peer.headers.announced_tip = Some(tree.active_tip_id());
    out.send_headers(tree.active_headers(range));
}

/// An `inv`: an unknown block makes us ask for headers up to it.
pub fn on_inv(node: &HeadersNode, peer: &mut Peer, inv: &[Inventory], now: Now, out: &mut impl Outbox) {
    if inv.len() > MAX_INV_SZ {
        return misbehaving(peer, out, format!("inv message size = {}", inv.len()));
    }
    // Core's -blocksonly (btcloop never relays transactions): a peer without relay permission
    // that announces one breaks the protocol (it was told `relay=0`).
    let tx_inv = inv
        .iter()
        .find(|i| matches!(i, Inventory::Transaction(_) | Inventory::WitnessTransaction(_) | Inventory::WTx(_)));
    if let Some(i) = tx_inv {
        if !peer.who.permissions.has(Permissions::RELAY) {
            debug!(target: "net", "transaction ({i:?}) inv sent in violation of protocol, disconnecting peer={}", peer.who.id);
            return out
                .disconnect(DisconnectReason::Misbehaving("transaction inv sent in violation of protocol".into()));
        }
    }
    // Core's UpdateBlockAvailability for announced blocks we know.
    for i in inv {
        if let Inventory::Block(h) | Inventory::WitnessBlock(h) | Inventory::CompactBlock(h) = i {
            if let Some((id, _)) = node.chain.tree().get(h) {
                block_available(node, peer, id);
            }
        }
    }
    let tree = node.chain.tree();
    let unknown_block = inv.iter().rev().find_map(|i| match i {
        Inventory::Block(h) | Inventory::WitnessBlock(h) | Inventory::CompactBlock(h) if !tree.contains(h) => Some(*h),
        _ => None,
    });
    if let Some(hash) = unknown_block {
        let locator = tree.locator(tree.tip_id());
        if maybe_send_getheaders(peer, locator, now, out) {
            debug!(target: "net", "getheaders ({}) {hash} to peer={}", tree.height(), peer.who.id);
        }
    }
}

/// The headers part of `SendMessages`: start the initial sync (one peer while far behind,
/// chosen as Core does), drop a stalling sync peer, Core's chain-sync timeout for outbound
/// peers (`ConsiderEviction`), and announce a new best tip (BIP130 `headers` or `inv`).
/// `nothing_in_flight`: no block is being downloaded from any peer.
pub fn send_messages(
    node: &mut HeadersNode,
    peer: &mut Peer,
    nothing_in_flight: bool,
    now: Now,
    out: &mut impl Outbox,
) {
    let far_behind = node.far_behind(now);
    // Core (`sync_blocks_and_headers_from_peer`): while far behind, headers come from one
    // peer, a preferred one (outbound, able to serve blocks); an inbound peer, or one without
    // NODE_NETWORK(_LIMITED) (headers-only btcloopd peers advertise nothing), only when there
    // is no preferred peer or no block is in flight; never an addr-fetch or feeler
    // connection.
    let short_lived = matches!(peer.who.conn_type, ConnectionType::AddrFetch | ConnectionType::Feeler);
    // A node that downloads blocks takes its initial headers only from a peer that can serve
    // them (Core's CanServeBlocks): a peer without blocks would leave it syncing nothing.
    let can_serve = !node.blocks || can_serve_blocks(peer);
    let sync_from_peer =
        peer.headers.preferred || (!short_lived && can_serve && (node.preferred_peers == 0 || nothing_in_flight));
    let wanted =
        (node.sync_peers == 0 && sync_from_peer) || (!far_behind && peer.who.conn_type != ConnectionType::Feeler);
    if !peer.headers.sync_started && wanted {
        let tree = node.chain.tree();
        let tip = tree.tip_id();
        let start = tree.entry(tip).map_or(tip, |e| e.parent);
        let (height, tip_time) = tree.entry(start).map_or((0, 0), |e| (e.height, tree.tip().header.time));
        if maybe_send_getheaders(peer, tree.locator(start), now, out) {
            debug!(target: "net", "initial getheaders ({height}) to peer={}", peer.who.id);
            peer.headers.sync_started = true;
            node.sync_peers += 1;
            let behind = (now.unix - i64::from(tip_time)).max(0) as u32 / node.chain.params().pow_target_spacing.max(1);
            peer.headers.sync_timeout =
                Some(now.mono + HEADERS_DOWNLOAD_TIMEOUT_BASE + HEADERS_DOWNLOAD_TIMEOUT_PER_HEADER * behind);
        }
    }
    if peer.headers.sync_started {
        if let Some(deadline) = peer.headers.sync_timeout {
            let others = node.preferred_peers.saturating_sub(usize::from(peer.headers.preferred)) >= 1;
            if !far_behind {
                peer.headers.sync_timeout = None;
            } else if now.mono > deadline && node.sync_peers == 1 && others {
                // Core: only with another preferred peer to sync from instead (so never when
                // every peer is inbound); a noban peer is kept but loses its sync role.
                if !peer.who.permissions.has(Permissions::NO_BAN) {
                    info!("Timeout downloading headers, disconnecting peer={}", peer.who.id);
                    return out.disconnect(DisconnectReason::HeadersTimeout);
                }
                info!("Timeout downloading headers from noban peer, not disconnecting peer={}", peer.who.id);
                peer.headers.sync_started = false;
                peer.headers.sync_timeout = None;
                node.sync_peers = node.sync_peers.saturating_sub(1);
            }
        }
    }
    if consider_eviction(node, peer, now, out) {
        return;
    }
    announce(node, peer, out);
}

/// Core's `ConsiderEviction`: an outbound full-relay or block-relay-only peer (not protected,
/// sync started) whose best header has less work than our tip gets [`CHAIN_SYNC_TIMEOUT`]; the
/// timer restarts when it catches up with the tip it was measured against but we moved on;
/// at the deadline it gets one `getheaders` and [`HEADERS_RESPONSE_TIME`] more, then it is
/// disconnected. True when it was.
fn consider_eviction(node: &HeadersNode, peer: &mut Peer, now: Now, out: &mut impl Outbox) -> bool {
    let outbound = matches!(peer.who.conn_type, ConnectionType::OutboundFullRelay | ConnectionType::BlockRelayOnly);
    if peer.headers.chain_sync.protect || !outbound || !peer.headers.sync_started {
        return false;
    }
    let tree = node.chain.tree();
    let work = |id: Option<EntryId>| id.and_then(|id| tree.entry(id)).map(|e| e.chain_work);
    let best = work(peer.headers.best_known);
    let cs = &mut peer.headers.chain_sync;
    let tip_id = tree.active_tip_id();
    let tip_work = node.tip().chain_work;
    if best.is_some_and(|w| w >= tip_work) {
        if cs.timeout.is_some() {
            *cs = ChainSync { protect: cs.protect, ..ChainSync::default() };
        }
    } else if cs.timeout.is_none() || (best.is_some() && work(cs.work_header).is_some_and(|w| best >= Some(w))) {
        cs.timeout = Some(now.unix.saturating_add(CHAIN_SYNC_TIMEOUT));
        cs.work_header = Some(tip_id);
        cs.sent_getheaders = false;
    } else if cs.timeout.is_some_and(|t| now.unix > t) {
        if cs.sent_getheaders {
            let best_hash = peer.headers.best_known.and_then(|id| tree.entry(id)).map(|e| e.hash.to_string());
            info!(
                "Outbound peer has old chain, best known block = {}, disconnecting peer={}",
                best_hash.as_deref().unwrap_or("<none>"),
                peer.who.id
            );
            out.disconnect(DisconnectReason::OldChain);
            return true;
        }
        let benchmark = cs.work_header.unwrap_or(tip_id);
        let from = tree.entry(benchmark).map_or(benchmark, |e| e.parent);
        cs.sent_getheaders = true;
        cs.timeout = Some(now.unix.saturating_add(HEADERS_RESPONSE_TIME.as_secs() as i64));
        // Sent, or skipped because one is in flight: either way the answer can clear the timer.
        if maybe_send_getheaders(peer, tree.locator(from), now, out) {
            debug!(target: "net", "sending getheaders to outbound peer={} to verify chain work", peer.who.id);
        }
    }
    false
}

/// Announces a new tip (Core's block announcement in `SendMessages`): blocks the node has
/// validated, as `headers` to a peer that sent `sendheaders`, else as `inv`.
fn announce(node: &HeadersNode, peer: &mut Peer, out: &mut impl Outbox) {
    let tree = node.chain.tree();
    let tip_id = tree.active_tip_id();
    let Some(announced) = peer.headers.announced_tip else {
        // Nothing announced yet: the peer learns our tip from its sync; start from here.
        peer.headers.announced_tip = Some(tip_id);
        return;
    };
    if announced == tip_id {
        return;
    }
    peer.headers.announced_tip = Some(tip_id);
    let tip = node.tip();
    // Announce only headers the peer may not have: those above the highest header of our best
    // chain it is known to have (Core's PeerHasHeader: sent by it or by us).
    let on_tip_chain = |k: &EntryId| tree.ancestor(tip_id, tree.entry(*k).map_or(u32::MAX, |e| e.height)) == Some(*k);
    let height = |k: &EntryId| tree.entry(*k).map_or(0, |e| e.height);
    let known =
        [peer.headers.best_known, peer.headers.best_sent].into_iter().flatten().filter(on_tip_chain).max_by_key(height);
    if known == Some(tip_id) {
        return;
    }
    let from_height = known.and_then(|k| tree.entry(k)).map_or(0, |e| e.height) + 1;
    let count = tip.height + 1 - from_height.min(tip.height + 1);
    if peer.handshake.prefers_headers && known.is_some() && count <= MAX_BLOCKS_TO_ANNOUNCE {
        let headers: Vec<Header> = tree.active_headers(from_height..tip.height + 1).copied().collect();
        out.send(&NetworkMessage::Headers(headers));
    } else {
        out.send(&NetworkMessage::Inv(vec![Inventory::Block(tip.hash)]));
    }
    peer.headers.best_sent = Some(tip_id);
}

#[cfg(test)]
mod tests;
