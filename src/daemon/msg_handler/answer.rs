//! The message handler's answers to [`Query`]s: peer, chain and counter snapshots in Core's
//! RPC shapes, and the few operator actions that touch peers (ping, disconnect, ban).

use std::sync::atomic::Ordering;
use std::time::Instant;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::p2p::ServiceFlags;
use serde_json::{Map, Value, json};

use super::{Cx, Entry, MessageHandler};
use crate::base::counters::{Direction, DisconnectRecord};
use crate::base::peer::DisconnectReason;
use crate::daemon::inspect::{Answer, Query, RpcError, code};
use crate::daemon::net::wake::SocketCommand;
use crate::engine::addrman::{AddrNetwork, net_class};
use crate::engine::chain::pow;
use crate::engine::chain::tree::{EntryId, HeaderTree};
use crate::engine::protocol::Now;

/// Unix seconds of `t`, given the current time.
fn unix_at(now: Now, t: Instant) -> i64 {
    now.unix - now.mono.saturating_duration_since(t).as_secs() as i64
}

/// Core's `SanitizeString` (`SAFE_CHARS_DEFAULT`): what a peer's user agent may show.
pub fn sanitize(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric() || " .,;-_/:?@()".contains(*c)).collect()
}

/// Core's `GetServicesNames`.
pub fn service_names(flags: ServiceFlags) -> Vec<String> {
    let bits = flags.to_u64();
    (0..64)
        .filter(|b| bits & (1u64 << b) != 0)
        .map(|b| match b {
            0 => "NETWORK".to_string(),
            2 => "BLOOM".to_string(),
            3 => "WITNESS".to_string(),
            6 => "COMPACT_FILTERS".to_string(),
            10 => "NETWORK_LIMITED".to_string(),
            11 => "P2P_V2".to_string(),
            b => format!("UNKNOWN[2^{b}]"),
        })
        .collect()
}

/// Core's `GetDifficulty`: how many times harder than difficulty 1 the target is.
pub fn difficulty(bits: u32) -> f64 {
    let mut shift = (bits >> 24) & 0xff;
    let mantissa = f64::from(bits & 0x00ff_ffff);
    if mantissa == 0.0 {
        return 0.0;
    }
    let mut d = f64::from(0x0000_ffffu32) / mantissa;
    while shift < 29 {
        d *= 256.0;
        shift += 1;
    }
    while shift > 29 {
        d /= 256.0;
        shift -= 1;
    }
    d
}

/// Core's `ToStringAddr` for the clearnet networks; overlay addresses in hex (no base32 here).
fn addr_string(a: &bitcoin::p2p::address::AddrV2) -> String {
    use bitcoin::p2p::address::AddrV2;
    match a {
        AddrV2::Ipv4(ip) => ip.to_string(),
        AddrV2::Ipv6(ip) | AddrV2::Cjdns(ip) => ip.to_string(),
        AddrV2::TorV2(b) => hex(b),
        AddrV2::TorV3(b) | AddrV2::I2p(b) => hex(b),
        AddrV2::Unknown(_, b) => hex(b),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn secs(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}

impl MessageHandler {
    /// Answers `q` from the handler's state.
    pub(super) fn answer(&mut self, q: Query, now: Now) -> Answer {
        match q {
            Query::PeerInfo => Ok(Value::Array(self.peers.values().map(|e| self.cx.peer_info(e, now)).collect())),
            Query::ConnectionCounts => Ok(self.connection_counts()),
            Query::PingAll => {
                for e in self.peers.values_mut() {
                    e.peer.ping.queued = true;
                }
                Ok(Value::Null)
            }
            Query::Disconnect { addr, id } => {
                let found = self
                    .peers
                    .values_mut()
                    .find(|e| !e.closing && (addr.is_some_and(|a| a == e.peer.addr) || id == Some(e.peer.id)));
                let Some(e) = found else {
                    return Err(RpcError::new(code::CLIENT_NODE_NOT_CONNECTED, "Node not found in connected nodes"));
                };
                e.closing = true;
                self.cx.ctl.send(SocketCommand::Disconnect { id: e.peer.id, reason: DisconnectReason::Requested });
                Ok(Value::Null)
            }
            Query::DisconnectBanned(net) => {
                for e in self.peers.values_mut().filter(|e| !e.closing && net.contains(e.peer.addr.ip())) {
                    e.closing = true;
                    self.cx.ctl.send(SocketCommand::Disconnect { id: e.peer.id, reason: DisconnectReason::Banned });
                }
                Ok(Value::Null)
            }
            Query::BlockchainInfo => {
                let ibd = self.cx.protocol.in_ibd(now);
                Ok(self.cx.blockchain_info(now, ibd))
            }
            Query::BlockHash(height) => {
                let tree = self.cx.protocol.headers().chain.tree();
                u32::try_from(height)
                    .ok()
                    .and_then(|h| tree.at_height(h))
                    .map(|e| json!(e.hash.to_string()))
                    .ok_or_else(|| RpcError::invalid_param("Block height out of range"))
            }
            Query::BlockHeader { hash, verbose } => {
                let tree = self.cx.protocol.headers().chain.tree();
                let Some((id, entry)) = tree.get(&hash) else {
                    return Err(RpcError::new(code::INVALID_ADDRESS_OR_KEY, "Block not found"));
                };
                if !verbose {
                    return Ok(json!(serialize_hex(&entry.header)));
                }
                Ok(self.cx.header_json(tree, id))
            }
            Query::ChainTips => Ok(chain_tips(self.cx.protocol.headers().chain.tree())),
            Query::NetMsgStats(by) => Ok(self.cx.msg_stats.to_json(&by)),
            Query::Disconnects(n) => Ok(Value::Array(self.cx.disconnects.recent(n).map(|r| json!(r)).collect())),
            Query::Metrics => Ok(self.metrics(now)),
            Query::NodeAddresses { count, network } => {
                let net = network.as_deref().and_then(|n| AddrNetwork::REPORTED.into_iter().find(|x| x.name() == n));
                let rule = self.cx.protocol.addrman().rule();
                let addrs = self.cx.protocol.addrman_mut().get_addr(count, 0, net, true, now.unix);
                Ok(Value::Array(
                    addrs
                        .iter()
                        .map(|a| {
                            json!({
                                "time": a.time,
                                "services": a.services.to_u64(),
                                "address": addr_string(&a.addr),
                                "port": a.port,
                                "network": net_class(&a.addr, rule).name(),
                            })
                        })
                        .collect(),
                ))
            }
            Query::AddrManInfo => Ok(Value::Object(
                self.cx
                    .protocol
                    .addrman()
                    .network_counts()
                    .into_iter()
                    .map(|(name, c)| (name.to_string(), json!({"new": c.new, "tried": c.tried, "total": c.total()})))
                    .collect(),
            )),
        }
    }

    fn connection_counts(&self) -> Value {
        let inbound = self.peers.values().filter(|e| e.peer.conn_type.is_inbound()).count();
        // Core's `timeoffset`: the median of the outbound peers' clock offsets.
        let mut offsets: Vec<i64> = self
            .peers
            .values()
            .filter(|e| !e.peer.conn_type.is_inbound())
            .filter_map(|e| e.peer.handshake.remote.as_ref().map(|r| r.time_offset))
            .collect();
        offsets.sort_unstable();
        let median = offsets.get(offsets.len() / 2).copied().unwrap_or(0);
        json!({
            "total": self.peers.len(),
            "inbound": inbound,
            "outbound": self.peers.len() - inbound,
            "timeoffset": median,
            // `getnetworkinfo`'s `localaddresses`, with the live scores.
            "localaddresses": self.cx.protocol.local().to_json(),
        })
    }

    /// What `/metrics` shows, gathered in one pass.
    fn metrics(&self, now: Now) -> Value {
        let peers: Vec<Value> = self
            .peers
            .values()
            .map(|e| {
                let s = &e.queues.stats;
                json!({
                    "connection_type": e.peer.conn_type.as_str(),
                    "network": e.net.as_str(),
                    "inbound": e.peer.conn_type.is_inbound(),
                    "pingtime": e.peer.ping.last_ping.map(secs),
                    "send_queue_bytes": e.queues.send_queued(),
                    "recv_queue_bytes": e.queues.recv_queued(),
                    "pause_recv": s.pause_recv_events.load(Ordering::Relaxed),
                    "pause_send": s.pause_send_events.load(Ordering::Relaxed),
                })
            })
            .collect();
        let cells: Vec<Value> = self
            .cx
            .msg_stats
            .cells()
            .map(|(d, net, ct, t, c)| {
                json!([
                    matches!(d, Direction::Sent),
                    net.as_str(),
                    ct.as_str(),
                    t.name(),
                    c.message_count,
                    c.byte_count
                ])
            })
            .collect();
        let chain = &self.cx.protocol.headers().chain;
        let presync: Option<u32> =
            self.peers.values().filter_map(|e| e.peer.headers.presync.as_ref().map(|p| p.presync_height())).max();
        let tip = chain.tree().tip();
        json!({
            "peers": peers,
            "messages": cells,
            "disconnects": self.cx.disconnects.by_reason(),
            "closed_pauses": [self.cx.closed_pauses.0, self.cx.closed_pauses.1],
            "header_height": tip.height,
            "header_time": tip.header.time,
            "headers_in_tree": chain.tree().len(),
            "presync_height": presync,
            "sync_progress": sync_progress(chain.params().genesis.time, tip.header.time, now.unix),
        })
    }
}

/// Core's `getchaintips`: every header without children, highest first.
fn chain_tips(tree: &HeaderTree) -> Value {
    let entries = tree.entries();
    let mut has_child = vec![false; entries.len()];
    for (i, e) in entries.iter().enumerate() {
        if i != 0 {
            if let Some(flag) = has_child.get_mut(e.parent as usize) {
                *flag = true;
            }
        }
    }
    let mut tips: Vec<EntryId> = (0..entries.len() as EntryId).filter(|&i| !has_child[i as usize]).collect();
    tips.sort_by_key(|&i| std::cmp::Reverse(entries.get(i as usize).map_or(0, |e| e.height)));
    let tips: Vec<Value> = tips
        .into_iter()
        .filter_map(|id| {
            let e = tree.entry(id)?;
            let active = tree.on_best_chain(id);
            // Branch length: distance to the fork point with the best chain.
            let mut fork = id;
            while !tree.on_best_chain(fork) {
                fork = tree.entry(fork)?.parent;
            }
            let fork_height = tree.entry(fork)?.height;
            Some(json!({
                "height": e.height,
                "hash": e.hash.to_string(),
                "branchlen": e.height - fork_height,
                "status": if active { "active" } else { "headers-only" },
            }))
        })
        .collect();
    Value::Array(tips)
}

/// A rough share of the chain's history covered, by header time (Core estimates it from
/// transaction counts, which a headers-only node does not have).
fn sync_progress(genesis_time: u32, tip_time: u32, now: i64) -> f64 {
    let span = (now - i64::from(genesis_time)).max(1) as f64;
    ((i64::from(tip_time) - i64::from(genesis_time)).max(0) as f64 / span).min(1.0)
}

impl Cx {
    /// Records a closed connection for `getdisconnects` and the counters.
    pub(super) fn record_disconnect(&mut self, e: &Entry, reason: &DisconnectReason, now: Now) {
        let s = &e.queues.stats;
        self.closed_pauses.0 += s.pause_recv_events.load(Ordering::Relaxed);
        self.closed_pauses.1 += s.pause_send_events.load(Ordering::Relaxed);
        self.disconnects.record(DisconnectRecord {
            id: e.peer.id,
            addr: e.peer.addr.to_string(),
            connection_type: e.peer.conn_type.as_str(),
            reason: reason.code(),
            message: reason.to_string(),
            time: now.unix,
            duration: now.mono.saturating_duration_since(e.peer.connected_at).as_secs(),
            subver: e.peer.handshake.remote.as_ref().map(|r| sanitize(&r.user_agent)).unwrap_or_default(),
            bytessent: s.bytes_sent.load(Ordering::Relaxed),
            bytesrecv: s.bytes_recv.load(Ordering::Relaxed),
        });
    }

    /// One `getpeerinfo` entry, fields in Core's order, then btcloop's own.
    fn peer_info(&self, e: &Entry, now: Now) -> Value {
        let p = &e.peer;
        let s = &e.queues.stats;
        let at = |us: u64| if us == 0 { 0 } else { unix_at(now, self.clock.instant_at(us)) };
        let remote = p.handshake.remote.as_ref();
        let services = remote.map_or(ServiceFlags::NONE, |r| r.services);
        let tree = self.protocol.headers().chain.tree();
        let mut o = Map::new();
        o.insert("id".into(), json!(p.id));
        o.insert("addr".into(), json!(p.addr.to_string()));
        if let Some(local) = e.local_addr {
            o.insert("addrbind".into(), json!(local.to_string()));
        }
        if let Some(seen) = p.handshake.addr_local {
            o.insert("addrlocal".into(), json!(seen.to_string()));
        }
        o.insert("network".into(), json!(e.net.as_str()));
        o.insert("services".into(), json!(format!("{:016x}", services.to_u64())));
        o.insert("servicesnames".into(), json!(service_names(services)));
        o.insert("relaytxes".into(), json!(remote.is_some_and(|r| r.relay)));
        o.insert("last_inv_sequence".into(), json!(0));
        o.insert("inv_to_send".into(), json!(0));
        o.insert("lastsend".into(), json!(at(s.last_send_us.load(Ordering::Relaxed))));
        o.insert("lastrecv".into(), json!(at(s.last_recv_us.load(Ordering::Relaxed))));
        o.insert("last_transaction".into(), json!(0));
        // Core's `last_block`; a headers-only node counts headers that moved our best chain.
        o.insert("last_block".into(), json!(p.headers.last_block_time.unwrap_or(0)));
        o.insert("bytessent".into(), json!(s.bytes_sent.load(Ordering::Relaxed)));
        o.insert("bytesrecv".into(), json!(s.bytes_recv.load(Ordering::Relaxed)));
        o.insert("conntime".into(), json!(unix_at(now, p.connected_at)));
        o.insert("timeoffset".into(), json!(remote.map_or(0, |r| r.time_offset)));
        if let Some(t) = p.ping.last_ping {
            o.insert("pingtime".into(), json!(secs(t)));
        }
        if let Some(t) = p.ping.min_ping {
            o.insert("minping".into(), json!(secs(t)));
        }
        if let Some(wait) = p.ping.waiting(now.mono) {
            o.insert("pingwait".into(), json!(secs(wait)));
        }
        o.insert("version".into(), json!(remote.map_or(0, |r| r.version)));
        o.insert("subver".into(), json!(remote.map(|r| sanitize(&r.user_agent)).unwrap_or_default()));
        o.insert("inbound".into(), json!(p.conn_type.is_inbound()));
        o.insert("bip152_hb_to".into(), json!(false));
        o.insert("bip152_hb_from".into(), json!(false));
        o.insert("startingheight".into(), json!(remote.map_or(-1, |r| r.start_height)));
        let presynced = p.headers.presync.as_ref().map_or(-1, |h| i64::from(h.presync_height()));
        o.insert("presynced_headers".into(), json!(presynced));
        let synced = p.headers.best_known.and_then(|id| tree.entry(id)).map_or(-1, |e| i64::from(e.height));
        o.insert("synced_headers".into(), json!(synced));
        o.insert("synced_blocks".into(), json!(-1));
        o.insert("inflight".into(), json!([]));
        o.insert("addr_relay_enabled".into(), json!(p.addrs.relay_enabled));
        o.insert("addr_processed".into(), json!(p.addrs.processed));
        o.insert("addr_rate_limited".into(), json!(p.addrs.rate_limited));
        o.insert("permissions".into(), json!(p.permissions.names()));
        o.insert("minfeefilter".into(), json!(0.0));
        o.insert("bytessent_per_msg".into(), Value::Object(e.counts.bytes_per_msg(Direction::Sent)));
        o.insert("bytesrecv_per_msg".into(), Value::Object(e.counts.bytes_per_msg(Direction::Received)));
        o.insert("connection_type".into(), json!(p.conn_type.as_str()));
        o.insert("transport_protocol_type".into(), json!("v1"));
        o.insert("session_id".into(), json!(""));
        // btcloop's own: queue depths and the drops and pauses Core does not report per peer.
        o.insert("send_queue_bytes".into(), json!(e.queues.send_queued()));
        o.insert("recv_queue_bytes".into(), json!(e.queues.recv_queued()));
        o.insert("msgs_rejected".into(), json!(s.msgs_rejected.load(Ordering::Relaxed)));
        o.insert("msgs_undecodable".into(), json!(e.undecodable));
        o.insert("pause_recv_events".into(), json!(s.pause_recv_events.load(Ordering::Relaxed)));
        o.insert("pause_send_events".into(), json!(s.pause_send_events.load(Ordering::Relaxed)));
        Value::Object(o)
    }

    /// The target `bits` encode, as 64 hex digits (Core's `GetTarget`).
    fn target_hex(&self, bits: bitcoin::CompactTarget) -> String {
        let limit = self.protocol.headers().chain.params().pow_limit;
        pow::derive_target(bits, limit).map_or_else(String::new, |t| hex(&t.to_be_bytes()))
    }

    /// `getblockchaininfo`; `ibd` is [`crate::engine::protocol::HeadersNode::in_ibd`].
    fn blockchain_info(&self, now: Now, ibd: bool) -> Value {
        let chain = &self.protocol.headers().chain;
        let tree = chain.tree();
        let tip = tree.tip();
        let bits = tip.header.bits.to_consensus();
        let target = self.target_hex(tip.header.bits);
        json!({
            "chain": chain.params().network.to_bitcoin().to_core_arg(),
            "blocks": tip.height,
            "headers": tip.height,
            "bestblockhash": tip.hash.to_string(),
            "bits": format!("{bits:08x}"),
            "target": target,
            "difficulty": difficulty(bits),
            "time": tip.header.time,
            "mediantime": tree.median_time_past(tree.tip_id()),
            "verificationprogress": sync_progress(chain.params().genesis.time, tip.header.time, now.unix),
            "initialblockdownload": ibd,
            "chainwork": hex(&tip.chain_work.to_be_bytes()),
            "size_on_disk": chain.store_size(),
            "pruned": false,
            "warnings": [],
        })
    }

    fn header_json(&self, tree: &HeaderTree, id: EntryId) -> Value {
        let Some(e) = tree.entry(id) else { return Value::Null };
        let on_best = tree.on_best_chain(id);
        let confirmations = if on_best { i64::from(tree.height()) - i64::from(e.height) + 1 } else { -1 };
        let bits = e.header.bits.to_consensus();
        let target = self.target_hex(e.header.bits);
        let mut o = Map::new();
        o.insert("hash".into(), json!(e.hash.to_string()));
        o.insert("confirmations".into(), json!(confirmations));
        o.insert("height".into(), json!(e.height));
        o.insert("version".into(), json!(e.header.version.to_consensus()));
        o.insert("versionHex".into(), json!(format!("{:08x}", e.header.version.to_consensus())));
        o.insert("merkleroot".into(), json!(e.header.merkle_root.to_string()));
        o.insert("time".into(), json!(e.header.time));
        o.insert("mediantime".into(), json!(tree.median_time_past(id)));
        o.insert("nonce".into(), json!(e.header.nonce));
        o.insert("bits".into(), json!(format!("{bits:08x}")));
        o.insert("target".into(), json!(target));
        o.insert("difficulty".into(), json!(difficulty(bits)));
        o.insert("chainwork".into(), json!(hex(&e.chain_work.to_be_bytes())));
        o.insert("nTx".into(), json!(0));
        if e.height > 0 {
            o.insert("previousblockhash".into(), json!(e.header.prev_blockhash.to_string()));
        }
        if on_best {
            if let Some(next) = tree.at_height(e.height + 1) {
                o.insert("nextblockhash".into(), json!(next.hash.to_string()));
            }
        }
        Value::Object(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difficulty_matches_core() {
        // Core's blockchain_tests: GetDifficulty of these bits, to Core's 0.00001.
        let close = |bits: u32, want: f64| (difficulty(bits) - want).abs() < 0.00001;
        assert!(close(0x1f111111, 0.000001));
        assert!(close(0x1ef88f6f, 0.000016));
        assert!(close(0x1df88f6f, 0.004023));
        assert!(close(0x1cf88f6f, 1.029916));
        assert!((difficulty(0x12345678) / 5_913_134_931_067_755_359_633_408.0 - 1.0).abs() < 1e-9);
        assert_eq!(difficulty(0x1d00ffff), 1.0);
    }

    #[test]
    fn services_and_user_agents_shown_like_core() {
        let flags = ServiceFlags::NETWORK | ServiceFlags::WITNESS | ServiceFlags::from(1u64 << 20);
        assert_eq!(service_names(flags), vec!["NETWORK", "WITNESS", "UNKNOWN[2^20]"]);
        assert_eq!(sanitize("/Satoshi:27.0.0/\n\"x\"<b>"), "/Satoshi:27.0.0/xb");
    }
}
