//! The message handler's answers to [`Request`]s: peer, chain and counter snapshots (the plain
//! structs of [`crate::daemon::snapshot`], rendered elsewhere), and the few operator actions
//! that touch peers (ping, disconnect, ban).

use std::sync::atomic::Ordering;
use std::time::Instant;

use bitcoin::CompactTarget;
use bitcoin::p2p::ServiceFlags;
use bitcoin::pow::Target;

use super::{Cx, Entry, MessageHandler};
use crate::base::counters::{Direction, DisconnectRecord};
use crate::base::netgroup::net_class;
use crate::base::peer::DisconnectReason;
use crate::daemon::inspect::{PeerRef, Request, RpcError, code};
use crate::daemon::snapshot::{
    AddrManCounts, BlockchainInfo, ChainTip, ConnectionCounts, HeaderInfo, MetricsSnapshot, NodeAddress, PeerSnapshot,
    TipStatus,
};
use crate::engine::chain::pow;
use crate::engine::chain::tree::{BlockStatus, EntryId, HeaderTree};
use crate::engine::protocol::blocks::SubmitRefused;
use crate::engine::protocol::{Now, Peer};

/// Unix seconds of `t`, given the current time.
fn unix_at(now: Now, t: Instant) -> i64 {
    now.unix - now.mono.saturating_duration_since(t).as_secs() as i64
}

/// Core's `SanitizeString` (`SAFE_CHARS_DEFAULT`): what a peer's user agent may show.
pub fn sanitize(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric() || " .,;-_/:?@()".contains(*c)).collect()
}

impl MessageHandler {
    /// Answers `req` from the handler's state, on the channel it carries.
    pub(super) fn answer(&mut self, req: Request, now: Now) {
        match req {
            Request::PeerInfo(reply) => reply.send(Ok(self.peer_snapshots(now))),
            Request::ConnectionCounts(reply) => reply.send(Ok(self.connection_counts())),
            Request::PingAll(reply) => {
                self.cx.mgr.ping_all();
                reply.send(Ok(()));
            }
            Request::Disconnect(target, reply) => reply.send(self.disconnect(target)),
            Request::DisconnectBanned(net, reply) => {
                self.cx.mgr.close_where(|w| net.contains(w.addr.ip()), &DisconnectReason::Banned);
                reply.send(Ok(()));
            }
            Request::BlockchainInfo(reply) => {
                let ibd = self.cx.mgr.protocol_mut().in_ibd(now);
                reply.send(Ok(self.cx.blockchain_info(now, ibd)));
            }
            Request::BlockHash(height, reply) => {
                // Core: the active chain (validated blocks), not the best header chain.
                let tree = self.cx.mgr.protocol().headers().chain.tree();
                reply.send(
                    u32::try_from(height)
                        .ok()
                        .and_then(|h| tree.active_id(h))
                        .and_then(|id| tree.entry(id))
                        .map(|e| e.hash)
                        .ok_or_else(|| RpcError::invalid_param("Block height out of range")),
                );
            }
            Request::BlockHeader(hash, reply) => {
                let tree = self.cx.mgr.protocol().headers().chain.tree();
                let info = tree.get(&hash).and_then(|(id, _)| self.cx.header_info(tree, id));
                reply.send(info.ok_or_else(|| RpcError::new(code::INVALID_ADDRESS_OR_KEY, "Block not found")));
            }
            Request::ChainTips(reply) => reply.send(Ok(chain_tips(self.cx.mgr.protocol().headers().chain.tree()))),
            Request::NetMsgStats(reply) => reply.send(Ok(self.cx.msg_stats.cells().collect())),
            Request::Disconnects(n, reply) => reply.send(Ok(self.cx.disconnects.recent(n).cloned().collect())),
            Request::Metrics(reply) => reply.send(Ok(self.metrics(now))),
            Request::NodeAddresses { count, network, reply } => {
                let addrman = &mut self.cx.mgr.protocol_mut().addrman_mut();
                let rule = addrman.rule();
                let addrs = addrman.get_addr(count, 0, network, true, now.unix);
                reply.send(Ok(addrs
                    .into_iter()
                    .map(|entry| {
                        let network = net_class(&entry.addr, rule);
                        NodeAddress { entry, network }
                    })
                    .collect()));
            }
            Request::SubmitBlock(bytes, reply) => match self.cx.mgr.submit_block(bytes, now) {
                Ok(hash) => self.submits.entry(hash).or_default().push(reply),
                Err(SubmitRefused::Decode) => {
                    reply.send(Err(RpcError::new(code::DESERIALIZATION_ERROR, "Block decode failed")));
                }
                Err(SubmitRefused::NoBlocks) => {
                    reply.send(Err(RpcError::new(code::VERIFY_ERROR, SubmitRefused::NoBlocks.to_string())));
                }
                Err(other) => reply.send(Ok(Some(other.to_string()))),
            },
            Request::AddrManInfo(reply) => reply.send(Ok(self
                .cx
                .mgr
                .protocol()
                .addrman()
                .network_counts()
                .into_iter()
                .map(|(network, counts)| AddrManCounts { network, counts })
                .collect())),
        }
    }

    /// `disconnectnode`: the peer goes through the manager's one close path.
    fn disconnect(&mut self, target: PeerRef) -> Result<(), RpcError> {
        let mgr = &self.cx.mgr;
        let found = mgr
            .peers()
            .map(|p| &p.who)
            .find(|w| {
                !mgr.is_closing(w.id)
                    && match target {
                        PeerRef::Addr(a) => a == w.addr,
                        PeerRef::Id(id) => id == Some(w.id),
                    }
            })
            .map(|w| w.id);
        let Some(id) = found else {
            return Err(RpcError::new(code::CLIENT_NODE_NOT_CONNECTED, "Node not found in connected nodes"));
        };
        self.cx.mgr.close(id, DisconnectReason::Requested);
        Ok(())
    }

    /// Every peer's daemon entry with its protocol state.
    fn each_peer(&self) -> impl Iterator<Item = (&Entry, &Peer)> {
        self.peers.values().filter_map(|e| Some((e, self.cx.mgr.peer(e.who.id)?)))
    }

    fn peer_snapshots(&self, now: Now) -> Vec<PeerSnapshot> {
        self.each_peer().map(|(e, p)| self.cx.peer_snapshot(e, p, now)).collect()
    }

    fn connection_counts(&self) -> ConnectionCounts {
        let mgr = &self.cx.mgr;
        let inbound = mgr.inbound_count();
        // Core's `timeoffset`: the median of the outbound peers' clock offsets.
        let mut offsets: Vec<i64> = mgr
            .peers()
            .filter(|p| !p.who.conn_type.is_inbound())
            .filter_map(|p| p.handshake.remote.as_ref().map(|r| r.time_offset))
            .collect();
        offsets.sort_unstable();
        let median = offsets.get(offsets.len() / 2).copied().unwrap_or(0);
        ConnectionCounts {
            total: mgr.len(),
            inbound,
            outbound: mgr.len() - inbound,
            time_offset: median,
            // `getnetworkinfo`'s `localaddresses`, with the live scores.
            local_addresses: {
                let local = mgr.protocol().local();
                let onion = local.onion().map(|(addr, port)| {
                    let info = crate::engine::policy::local::LocalInfo {
                        score: crate::engine::policy::local::LOCAL_MANUAL,
                        port: *port,
                    };
                    (crate::base::netaddr::text::addr_to_string(addr), info)
                });
                local.iter().map(|(ip, info)| (ip.to_string(), info)).chain(onion).collect()
            },
        }
    }

    /// What `/metrics` shows, gathered in one pass.
    fn metrics(&self, now: Now) -> MetricsSnapshot {
        let chain = &self.cx.mgr.protocol().headers().chain;
        let presync: Option<u32> =
            self.cx.mgr.peers().filter_map(|p| p.headers.presync.as_ref().map(|p| p.presync_height())).max();
        let tip = chain.tree().tip();
        let blocks = self.cx.mgr.protocol().blocks();
        MetricsSnapshot {
            peers: self.peer_snapshots(now),
            messages: self.cx.msg_stats.cells().collect(),
            disconnects: self.cx.disconnects.by_reason(),
            closed_pause_recv: self.cx.closed_pauses.0,
            closed_pause_send: self.cx.closed_pauses.1,
            header_height: tip.height,
            header_time: tip.header.time,
            headers_in_tree: chain.tree().len(),
            presync_height: presync,
            sync_progress: sync_progress(chain.params().genesis.time, tip.header.time, now.unix),
            block_height: chain.tree().active_height(),
            blocks_validated: blocks.validated,
            blocks_refused: blocks.refused,
            blocks_in_flight: blocks.download.total_in_flight(),
            block_stalls: blocks.stalls,
            block_bytes: blocks.received_bytes,
            verification_progress: blocks.progress,
            size_on_disk: chain.store_size().saturating_add(blocks.disk_bytes),
        }
    }
}

/// Core's `getchaintips`: every header without children and the active tip, highest first,
/// each with its branch length from the active chain and Core's status.
fn chain_tips(tree: &HeaderTree) -> Vec<ChainTip> {
    let entries = tree.entries();
    let mut has_child = vec![false; entries.len()];
    for (i, e) in entries.iter().enumerate() {
        if i != 0 {
            if let Some(flag) = has_child.get_mut(e.parent as usize) {
                *flag = true;
            }
        }
    }
    let active_tip = tree.active_tip_id();
    let mut tips: Vec<EntryId> =
        (0..entries.len() as EntryId).filter(|&i| !has_child[i as usize] || i == active_tip).collect();
    tips.sort_by_key(|&i| std::cmp::Reverse(entries.get(i as usize).map_or(0, |e| e.height)));
    tips.into_iter()
        .filter_map(|id| {
            let e = tree.entry(id)?;
            // The fork point with the active chain; on the way, whether every block is stored.
            let mut fork = id;
            let mut all_stored = true;
            while !tree.on_active_chain(fork) {
                let f = tree.entry(fork)?;
                all_stored &= f.status.has(BlockStatus::HAVE_DATA);
                fork = f.parent;
            }
            let status = if tree.on_active_chain(id) {
                TipStatus::Active
            } else if e.status.failed() {
                TipStatus::Invalid
            } else if !all_stored {
                TipStatus::HeadersOnly
            } else if e.status.has(BlockStatus::VALID) {
                TipStatus::ValidFork
            } else {
                TipStatus::ValidHeaders
            };
            let branch_len = e.height - tree.entry(fork)?.height;
            Some(ChainTip { height: e.height, hash: e.hash, branch_len, status })
        })
        .collect()
}

/// A rough share of the chain's history covered, by header time (Core estimates it from
/// transaction counts, which a headers-only node does not have).
fn sync_progress(genesis_time: u32, tip_time: u32, now: i64) -> f64 {
    let span = (now - i64::from(genesis_time)).max(1) as f64;
    ((i64::from(tip_time) - i64::from(genesis_time)).max(0) as f64 / span).min(1.0)
}

impl Cx {
    /// Records a closed connection for `getdisconnects` and the counters.
    pub(super) fn record_disconnect(&mut self, e: &Entry, peer: &Peer, reason: &DisconnectReason, now: Now) {
        let s = &e.queues.stats;
        self.closed_pauses.0 += s.pause_recv_events.load(Ordering::Relaxed);
        self.closed_pauses.1 += s.pause_send_events.load(Ordering::Relaxed);
        self.disconnects.record(DisconnectRecord {
            id: e.who.id,
            addr: e.who.shown_addr(),
            connection_type: e.who.conn_type.as_str(),
            reason: reason.code(),
            message: reason.to_string(),
            time: now.unix,
            duration: now.mono.saturating_duration_since(e.who.connected_at).as_secs(),
            subver: peer.handshake.remote.as_ref().map(|r| sanitize(&r.user_agent)).unwrap_or_default(),
            bytessent: s.bytes_sent.load(Ordering::Relaxed),
            bytesrecv: s.bytes_recv.load(Ordering::Relaxed),
        });
    }

    /// One peer as `getpeerinfo` and `/metrics` show it.
    fn peer_snapshot(&self, e: &Entry, p: &Peer, now: Now) -> PeerSnapshot {
        let s = &e.queues.stats;
        let at = |us: u64| if us == 0 { 0 } else { unix_at(now, self.clock.instant_at(us)) };
        let remote = p.handshake.remote.as_ref();
        let tree = self.mgr.protocol().headers().chain.tree();
        let download = &self.mgr.protocol().blocks().download;
        PeerSnapshot {
            id: e.who.id,
            addr: e.who.addr,
            addr_name: e.who.name.as_ref().map(|_| e.who.shown_addr()),
            addr_bind: e.who.local_addr,
            addr_local: p.handshake.addr_local,
            network: e.who.net,
            services: remote.map_or(ServiceFlags::NONE, |r| r.services),
            relay_txes: remote.is_some_and(|r| r.relay),
            last_send: at(s.last_send_us.load(Ordering::Relaxed)),
            last_recv: at(s.last_recv_us.load(Ordering::Relaxed)),
            // Core's `last_block`; a headers-only node counts headers that moved our best chain.
            last_block: p.headers.last_block_time.unwrap_or(0),
            bytes_sent: s.bytes_sent.load(Ordering::Relaxed),
            bytes_recv: s.bytes_recv.load(Ordering::Relaxed),
            conn_time: unix_at(now, e.who.connected_at),
            time_offset: remote.map_or(0, |r| r.time_offset),
            ping_time: p.ping.last_ping,
            min_ping: p.ping.min_ping,
            ping_wait: p.ping.waiting(now.mono),
            version: remote.map_or(0, |r| r.version),
            subver: remote.map(|r| sanitize(&r.user_agent)).unwrap_or_default(),
            conn_type: e.who.conn_type,
            starting_height: remote.map_or(-1, |r| r.start_height),
            presynced_headers: p.headers.presync.as_ref().map_or(-1, |h| i64::from(h.presync_height())),
            synced_headers: p.headers.best_known.and_then(|id| tree.entry(id)).map_or(-1, |e| i64::from(e.height)),
            synced_blocks: download.common_height(tree, e.who.id).map_or(-1, i64::from),
            inflight: download
                .requests(e.who.id)
                .iter()
                .filter_map(|h| tree.get(h).map(|(_, entry)| entry.height))
                .collect(),
            addr_relay_enabled: p.addrs.relay_enabled,
            addr_processed: p.addrs.processed,
            addr_rate_limited: p.addrs.rate_limited,
            permissions: e.who.permissions.names(),
            transport: s.transport().name(),
            session_id: s
                .session_id
                .lock()
                .map(|id| id.iter().map(|b| format!("{b:02x}")).collect())
                .unwrap_or_default(),
            bytes_sent_per_msg: e.counts.bytes_per_msg(Direction::Sent),
            bytes_recv_per_msg: e.counts.bytes_per_msg(Direction::Received),
            send_queue_bytes: e.queues.send_queued() as u64,
            recv_queue_bytes: e.queues.recv_queued() as u64,
            msgs_rejected: s.msgs_rejected.load(Ordering::Relaxed),
            msgs_undecodable: e.undecodable,
            pause_recv_events: s.pause_recv_events.load(Ordering::Relaxed),
            pause_send_events: s.pause_send_events.load(Ordering::Relaxed),
        }
    }

    /// The target `bits` encode (Core's `GetTarget`).
    fn target(&self, bits: CompactTarget) -> Option<Target> {
        pow::derive_target(bits, self.mgr.protocol().headers().chain.params().pow_limit)
    }

    /// `getblockchaininfo`; `ibd` is [`crate::engine::protocol::HeadersNode::in_ibd`].
    fn blockchain_info(&self, now: Now, ibd: bool) -> BlockchainInfo {
        let headers = self.mgr.protocol().headers();
        let chain = &headers.chain;
        let tree = chain.tree();
        let tip = headers.tip();
        BlockchainInfo {
            chain: chain.params().network.to_bitcoin().to_core_arg(),
            height: tip.height,
            headers: tree.height(),
            best_hash: tip.hash,
            bits: tip.header.bits,
            target: self.target(tip.header.bits),
            time: tip.header.time,
            median_time: tree.median_time_past(tree.active_tip_id()),
            verification_progress: if headers.has_blocks() {
                self.mgr.protocol().blocks().progress
            } else {
                sync_progress(chain.params().genesis.time, tip.header.time, now.unix)
            },
            initial_block_download: ibd,
            chain_work: tip.chain_work,
            size_on_disk: chain.store_size().saturating_add(self.mgr.protocol().blocks().disk_bytes),
        }
    }

    /// `getblockheader`: header `id` and where it sits.
    fn header_info(&self, tree: &HeaderTree, id: EntryId) -> Option<HeaderInfo> {
        let e = tree.entry(id)?;
        // Core's `ComputeNextBlockAndDepth`: depth and successor on the active chain.
        let on_active = tree.on_active_chain(id);
        let next = if on_active { e.height.checked_add(1).and_then(|h| tree.active_id(h)) } else { None };
        Some(HeaderInfo {
            hash: e.hash,
            header: e.header,
            height: e.height,
            confirmations: if on_active { i64::from(tree.active_height()) - i64::from(e.height) + 1 } else { -1 },
            median_time: tree.median_time_past(id),
            target: self.target(e.header.bits),
            chain_work: e.chain_work,
            next: next.and_then(|n| tree.entry(n)).map(|n| n.hash),
            have_data: e.status.has(BlockStatus::HAVE_DATA),
            connected: e.status.has(BlockStatus::VALID),
            invalid: e.status.has(BlockStatus::FAILED),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_shown_like_core() {
        assert_eq!(sanitize("/Satoshi:27.0.0/\n\"x\"<b>"), "/Satoshi:27.0.0/xb");
    }

    #[test]
    fn sync_progress_is_a_share_of_the_time_since_genesis() {
        assert_eq!(sync_progress(1_000, 1_500, 2_000), 0.5);
        assert_eq!(sync_progress(1_000, 3_000, 2_000), 1.0);
        assert_eq!(sync_progress(1_000, 500, 2_000), 0.0);
    }
}
