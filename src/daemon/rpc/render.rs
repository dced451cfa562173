//! The JSON of the RPC results built from the message handler's typed snapshots
//! ([`crate::daemon::snapshot`], counters, disconnects): Core's field names and order, and
//! Core's ways of showing services, difficulty, targets and work. The only place a snapshot
//! becomes JSON.

use std::time::Duration;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::p2p::ServiceFlags;
use bitcoin::pow::Target;
use serde_json::{Map, Value, json};

use crate::base::counters::{Count, Dimension, DisconnectRecord, MsgCell};
use crate::base::netaddr::text::addr_to_string;
use crate::daemon::snapshot::{AddrManCounts, BlockchainInfo, ChainTip, HeaderInfo, NodeAddress, PeerSnapshot};
use crate::engine::policy::local::LocalInfo;

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

/// Bytes as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A target as 64 hex digits (Core's `GetTarget(...).GetHex()`); empty when the bits do not
/// encode one.
fn target_hex(t: Option<Target>) -> String {
    t.map_or_else(String::new, |t| hex(&t.to_be_bytes()))
}

/// Bytes per message type as an object, in the snapshot's (name) order.
fn per_msg(v: &[(&'static str, u64)]) -> Value {
    Value::Object(v.iter().map(|(k, b)| (k.to_string(), json!(b))).collect())
}

/// One `getpeerinfo` entry, fields in Core's order, then btcloop's own.
pub fn peer_info(p: &PeerSnapshot) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(p.id));
    o.insert("addr".into(), json!(p.addr_name.clone().unwrap_or_else(|| p.addr.to_string())));
    if let Some(local) = p.addr_bind {
        o.insert("addrbind".into(), json!(local.to_string()));
    }
    if let Some(seen) = p.addr_local {
        o.insert("addrlocal".into(), json!(seen.to_string()));
    }
    o.insert("network".into(), json!(p.network.as_str()));
    o.insert("services".into(), json!(format!("{:016x}", p.services.to_u64())));
    o.insert("servicesnames".into(), json!(service_names(p.services)));
    o.insert("relaytxes".into(), json!(p.relay_txes));
    o.insert("last_inv_sequence".into(), json!(0));
    o.insert("inv_to_send".into(), json!(0));
    o.insert("lastsend".into(), json!(p.last_send));
    o.insert("lastrecv".into(), json!(p.last_recv));
    o.insert("last_transaction".into(), json!(0));
    o.insert("last_block".into(), json!(p.last_block));
    o.insert("bytessent".into(), json!(p.bytes_sent));
    o.insert("bytesrecv".into(), json!(p.bytes_recv));
    o.insert("conntime".into(), json!(p.conn_time));
    o.insert("timeoffset".into(), json!(p.time_offset));
    if let Some(t) = p.ping_time {
        o.insert("pingtime".into(), json!(secs(t)));
    }
    if let Some(t) = p.min_ping {
        o.insert("minping".into(), json!(secs(t)));
    }
    if let Some(wait) = p.ping_wait {
        o.insert("pingwait".into(), json!(secs(wait)));
    }
    o.insert("version".into(), json!(p.version));
    o.insert("subver".into(), json!(p.subver));
    o.insert("inbound".into(), json!(p.conn_type.is_inbound()));
    o.insert("bip152_hb_to".into(), json!(false));
    o.insert("bip152_hb_from".into(), json!(false));
    o.insert("startingheight".into(), json!(p.starting_height));
    o.insert("presynced_headers".into(), json!(p.presynced_headers));
    o.insert("synced_headers".into(), json!(p.synced_headers));
    o.insert("synced_blocks".into(), json!(p.synced_blocks));
    o.insert("inflight".into(), json!(p.inflight));
    o.insert("addr_relay_enabled".into(), json!(p.addr_relay_enabled));
    o.insert("addr_processed".into(), json!(p.addr_processed));
    o.insert("addr_rate_limited".into(), json!(p.addr_rate_limited));
    o.insert("permissions".into(), json!(p.permissions));
    o.insert("minfeefilter".into(), json!(0.0));
    o.insert("bytessent_per_msg".into(), per_msg(&p.bytes_sent_per_msg));
    o.insert("bytesrecv_per_msg".into(), per_msg(&p.bytes_recv_per_msg));
    o.insert("connection_type".into(), json!(p.conn_type.as_str()));
    o.insert("transport_protocol_type".into(), json!(p.transport));
    o.insert("session_id".into(), json!(p.session_id));
    // btcloop's own: queue depths and the drops and pauses Core does not report per peer.
    o.insert("send_queue_bytes".into(), json!(p.send_queue_bytes));
    o.insert("recv_queue_bytes".into(), json!(p.recv_queue_bytes));
    o.insert("msgs_rejected".into(), json!(p.msgs_rejected));
    o.insert("msgs_undecodable".into(), json!(p.msgs_undecodable));
    o.insert("pause_recv_events".into(), json!(p.pause_recv_events));
    o.insert("pause_send_events".into(), json!(p.pause_send_events));
    Value::Object(o)
}

/// `getnetworkinfo`'s `localaddresses`.
pub fn local_addresses(addrs: &[(String, LocalInfo)]) -> Value {
    Value::Array(addrs.iter().map(|(a, i)| json!({"address": a, "port": i.port, "score": i.score})).collect())
}

/// `getblockchaininfo`.
pub fn blockchain_info(b: &BlockchainInfo) -> Value {
    let bits = b.bits.to_consensus();
    json!({
        "chain": b.chain,
        "blocks": b.height,
        "headers": b.headers,
        "bestblockhash": b.best_hash.to_string(),
        "bits": format!("{bits:08x}"),
        "target": target_hex(b.target),
        "difficulty": difficulty(bits),
        "time": b.time,
        "mediantime": b.median_time,
        "verificationprogress": b.verification_progress,
        "initialblockdownload": b.initial_block_download,
        "chainwork": hex(&b.chain_work.to_be_bytes()),
        "size_on_disk": b.size_on_disk,
        "pruned": false,
        "warnings": [],
    })
}

/// `getblockheader` with `verbose` true (an object) or false (the serialized header in hex);
/// `n_tx` is the number of transactions of the stored block (0 when not stored).
pub fn block_header(h: &HeaderInfo, n_tx: u64, verbose: bool) -> Value {
    if !verbose {
        return json!(serialize_hex(&h.header));
    }
    let bits = h.header.bits.to_consensus();
    let version = h.header.version.to_consensus();
    let mut o = Map::new();
    o.insert("hash".into(), json!(h.hash.to_string()));
    o.insert("confirmations".into(), json!(h.confirmations));
    o.insert("height".into(), json!(h.height));
    o.insert("version".into(), json!(version));
    o.insert("versionHex".into(), json!(format!("{version:08x}")));
    o.insert("merkleroot".into(), json!(h.header.merkle_root.to_string()));
    o.insert("time".into(), json!(h.header.time));
    o.insert("mediantime".into(), json!(h.median_time));
    o.insert("nonce".into(), json!(h.header.nonce));
    o.insert("bits".into(), json!(format!("{bits:08x}")));
    o.insert("target".into(), json!(target_hex(h.target)));
    o.insert("difficulty".into(), json!(difficulty(bits)));
    o.insert("chainwork".into(), json!(hex(&h.chain_work.to_be_bytes())));
    o.insert("nTx".into(), json!(n_tx));
    if h.height > 0 {
        o.insert("previousblockhash".into(), json!(h.header.prev_blockhash.to_string()));
    }
    if let Some(next) = h.next {
        o.insert("nextblockhash".into(), json!(next.to_string()));
    }
    Value::Object(o)
}

/// `getchaintips`.
pub fn chain_tips(tips: &[ChainTip]) -> Value {
    Value::Array(
        tips.iter()
            .map(|t| {
                json!({
                    "height": t.height,
                    "hash": t.hash.to_string(),
                    "branchlen": t.branch_len,
                    "status": t.status.name(),
                })
            })
            .collect(),
    )
}

fn count(c: Count) -> Value {
    json!({"message_count": c.message_count, "byte_count": c.byte_count})
}

/// The `getnetmsgstats` result: `totals`, then the counts nested by `by` in that order.
pub fn net_msg_stats(cells: &[MsgCell], by: &[Dimension]) -> Value {
    let mut root = Map::new();
    let mut totals = Count::default();
    for cell in cells {
        totals.message_count += cell.count.message_count;
        totals.byte_count += cell.count.byte_count;
        let keys: Vec<&str> = by
            .iter()
            .map(|dim| match dim {
                Dimension::Direction => cell.direction.as_str(),
                Dimension::Network => cell.network.as_str(),
                Dimension::ConnectionType => cell.conn_type.as_str(),
                Dimension::MessageType => cell.msg_type.name(),
            })
            .collect();
        if !keys.is_empty() {
            add_at(&mut root, &keys, cell.count);
        }
    }
    let mut out = Map::new();
    out.insert("totals".into(), count(totals));
    sort_nested(&mut root);
    out.extend(root);
    Value::Object(out)
}

/// Adds `c` to the counts nested under `keys`.
fn add_at(node: &mut Map<String, Value>, keys: &[&str], c: Count) {
    match keys.split_first() {
        Some((k, rest)) => {
            let entry = node.entry(k.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(next) = entry {
                add_at(next, rest, c);
            }
        }
        None => {
            let mc = node.get("message_count").and_then(Value::as_u64).unwrap_or(0) + c.message_count;
            let bc = node.get("byte_count").and_then(Value::as_u64).unwrap_or(0) + c.byte_count;
            node.insert("message_count".into(), json!(mc));
            node.insert("byte_count".into(), json!(bc));
        }
    }
}

/// Sorts nested objects by key, counts last (serde_json keeps insertion order here).
fn sort_nested(m: &mut Map<String, Value>) {
    let mut entries: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
    entries.sort_by(|a, b| {
        let rank = |k: &str| matches!(k, "message_count" | "byte_count");
        (rank(&a.0), &a.0).cmp(&(rank(&b.0), &b.0))
    });
    for (k, mut v) in entries {
        if let Value::Object(inner) = &mut v {
            sort_nested(inner);
        }
        m.insert(k, v);
    }
    // Keep message_count before byte_count as in the proposal's examples.
    if let (Some(mc), Some(bc)) = (m.remove("message_count"), m.remove("byte_count")) {
        m.insert("message_count".into(), mc);
        m.insert("byte_count".into(), bc);
    }
}

/// `getdisconnects`.
pub fn disconnects(records: &[DisconnectRecord]) -> Value {
    Value::Array(
        records
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "addr": r.addr,
                    "connection_type": r.connection_type,
                    "reason": r.reason,
                    "message": r.message,
                    "time": r.time,
                    "duration": r.duration,
                    "subver": r.subver,
                    "bytessent": r.bytessent,
                    "bytesrecv": r.bytesrecv,
                })
            })
            .collect(),
    )
}

/// `getnodeaddresses`.
pub fn node_addresses(addrs: &[NodeAddress]) -> Value {
    Value::Array(
        addrs
            .iter()
            .map(|a| {
                json!({
                    "time": a.entry.time,
                    "services": a.entry.services.to_u64(),
                    "address": addr_to_string(&a.entry.addr),
                    "port": a.entry.port,
                    "network": a.network.name(),
                })
            })
            .collect(),
    )
}

/// `getaddrmaninfo`: per network, then `all_networks`.
pub fn addrman_info(counts: &[AddrManCounts]) -> Value {
    Value::Object(
        counts
            .iter()
            .map(|c| {
                let n = c.counts;
                (c.network.to_string(), json!({"new": n.new, "tried": n.tried, "total": n.total()}))
            })
            .collect(),
    )
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
