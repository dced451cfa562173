//! Tests of the RPC's JSON rendering from typed snapshots.

use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::BlockHash;
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::AddrV2;
use serde_json::{Value, json};

use super::*;
use crate::base::counters::{Direction, MsgType, NetMsgStats};
use crate::base::netaddr::NetKind;
use crate::base::peer::ConnectionType;
use crate::daemon::snapshot::{TipStatus, test_peer};
use crate::engine::policy::local::LOCAL_MANUAL;

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default()
}

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
fn services_shown_like_core() {
    let flags = ServiceFlags::NETWORK | ServiceFlags::WITNESS | ServiceFlags::from(1u64 << 20);
    assert_eq!(service_names(flags), vec!["NETWORK", "WITNESS", "UNKNOWN[2^20]"]);
}

#[test]
fn peer_snapshot_renders_as_getpeerinfo_in_core_order() {
    let v = peer_info(&test_peer());
    assert_eq!(
        keys(&v),
        vec![
            "id",
            "addr",
            "addrbind",
            "network",
            "services",
            "servicesnames",
            "relaytxes",
            "last_inv_sequence",
            "inv_to_send",
            "lastsend",
            "lastrecv",
            "last_transaction",
            "last_block",
            "bytessent",
            "bytesrecv",
            "conntime",
            "timeoffset",
            "pingtime",
            "minping",
            "version",
            "subver",
            "inbound",
            "bip152_hb_to",
            "bip152_hb_from",
            "startingheight",
            "presynced_headers",
            "synced_headers",
            "synced_blocks",
            "inflight",
            "addr_relay_enabled",
            "addr_processed",
            "addr_rate_limited",
            "permissions",
            "minfeefilter",
            "bytessent_per_msg",
            "bytesrecv_per_msg",
            "connection_type",
            "transport_protocol_type",
            "session_id",
            "send_queue_bytes",
            "recv_queue_bytes",
            "msgs_rejected",
            "msgs_undecodable",
            "pause_recv_events",
            "pause_send_events",
        ]
    );
    let want: Vec<(&str, Value)> = vec![
        ("id", json!(7)),
        ("addr", json!("1.2.3.4:8333")),
        ("addrbind", json!("10.0.0.1:18444")),
        ("network", json!("ipv4")),
        ("services", json!("0000000000000009")),
        ("servicesnames", json!(["NETWORK", "WITNESS"])),
        ("relaytxes", json!(true)),
        ("last_inv_sequence", json!(0)),
        ("inv_to_send", json!(0)),
        ("lastsend", json!(1_700_000_010)),
        ("lastrecv", json!(1_700_000_011)),
        ("last_transaction", json!(0)),
        ("last_block", json!(1_700_000_005)),
        ("bytessent", json!(1000)),
        ("bytesrecv", json!(2000)),
        ("conntime", json!(1_700_000_000)),
        ("timeoffset", json!(-3)),
        ("pingtime", json!(0.25)),
        ("minping", json!(0.125)),
        ("version", json!(70016)),
        ("subver", json!("/Satoshi:27.0.0/")),
        ("inbound", json!(true)),
        ("bip152_hb_to", json!(false)),
        ("bip152_hb_from", json!(false)),
        ("startingheight", json!(120)),
        ("presynced_headers", json!(-1)),
        ("synced_headers", json!(119)),
        ("synced_blocks", json!(117)),
        ("inflight", json!([118, 119])),
        ("addr_relay_enabled", json!(true)),
        ("addr_processed", json!(12)),
        ("addr_rate_limited", json!(2)),
        ("permissions", json!(["noban"])),
        ("minfeefilter", json!(0.0)),
        ("bytessent_per_msg", json!({"ping": 64, "version": 126})),
        ("bytesrecv_per_msg", json!({"*other*": 30})),
        ("connection_type", json!("inbound")),
        ("transport_protocol_type", json!("v1")),
        ("session_id", json!("")),
        ("send_queue_bytes", json!(10)),
        ("recv_queue_bytes", json!(3)),
        ("msgs_rejected", json!(4)),
        ("msgs_undecodable", json!(5)),
        ("pause_recv_events", json!(1)),
        ("pause_send_events", json!(0)),
    ];
    for (k, want) in want {
        assert_eq!(v[k], want, "{k}");
    }
    // `minfeefilter` stays a float, as Core shows it.
    assert!(v["minfeefilter"].is_f64());
    assert_eq!(
        keys(&v["bytessent_per_msg"]),
        vec!["ping", "version"],
        "per-message bytes keep the snapshot's (name) order"
    );
}

#[test]
fn optional_peer_fields_appear_in_their_place() {
    // Before its `version`: no bind address, no ping; with an address it saw and a ping in flight.
    let p = PeerSnapshot {
        addr_bind: None,
        addr_local: Some(SocketAddr::from(([5, 6, 7, 8], 8333))),
        ping_time: None,
        min_ping: None,
        ping_wait: Some(Duration::from_millis(1500)),
        conn_type: ConnectionType::OutboundFullRelay,
        ..test_peer()
    };
    let v = peer_info(&p);
    let k = keys(&v);
    assert_eq!(&k[..4], &["id", "addr", "addrlocal", "network"]);
    let at = |name: &str| k.iter().position(|x| *x == name);
    assert_eq!(at("pingtime"), None);
    assert_eq!(at("minping"), None);
    assert_eq!(at("pingwait").map(|i| k[i - 1]), Some("timeoffset"));
    assert_eq!(at("pingwait").map(|i| k[i + 1]), Some("version"));
    assert_eq!(v["addrlocal"], json!("5.6.7.8:8333"));
    assert_eq!(v["pingwait"], json!(1.5));
    assert_eq!(v["inbound"], json!(false));
    assert_eq!(v["connection_type"], json!("outbound-full-relay"));
}

#[test]
fn net_stats_nest_by_requested_dimensions() {
    let mut s = NetMsgStats::default();
    s.add(Direction::Sent, ConnectionType::Inbound, NetKind::Ipv4, MsgType::of("ping"), 32);
    s.add(Direction::Sent, ConnectionType::Inbound, NetKind::Ipv4, MsgType::of("ping"), 32);
    s.add(Direction::Received, ConnectionType::Manual, NetKind::Unroutable, MsgType::of("pong"), 32);
    s.add(Direction::Received, ConnectionType::Manual, NetKind::Unroutable, MsgType::of("headers"), 1000);
    let cells: Vec<MsgCell> = s.cells().collect();
    let v = net_msg_stats(&cells, &[]);
    assert_eq!(v, json!({"totals": {"message_count": 4, "byte_count": 1096}}));
    let v = net_msg_stats(&cells, &[Dimension::Direction, Dimension::MessageType]);
    assert_eq!(v["sent"]["ping"], json!({"message_count": 2, "byte_count": 64}));
    assert_eq!(v["received"]["headers"]["byte_count"], json!(1000));
    let v = net_msg_stats(&cells, &[Dimension::ConnectionType, Dimension::Network]);
    assert_eq!(v["manual"]["not_publicly_routable"], json!({"message_count": 2, "byte_count": 1032}));
    assert_eq!(v["inbound"]["ipv4"]["message_count"], json!(2));
    let v = net_msg_stats(&cells, &[Dimension::Direction]);
    assert_eq!(v["received"], json!({"message_count": 2, "byte_count": 1032}));
    // Keys: totals first, then sorted by name, counts last with message_count first.
    assert_eq!(keys(&v), vec!["totals", "received", "sent"]);
    assert_eq!(keys(&v["sent"]), vec!["message_count", "byte_count"]);
}

#[test]
fn disconnects_render_every_field_in_order() {
    let r = DisconnectRecord {
        id: 3,
        addr: "127.0.0.1:1".into(),
        connection_type: "inbound",
        reason: "timeout",
        message: "ping timeout".into(),
        time: 1_700_000_000,
        duration: 60,
        subver: "/x/".into(),
        bytessent: 10,
        bytesrecv: 20,
    };
    let v = disconnects(&[r]);
    assert_eq!(
        keys(&v[0]),
        vec![
            "id",
            "addr",
            "connection_type",
            "reason",
            "message",
            "time",
            "duration",
            "subver",
            "bytessent",
            "bytesrecv"
        ]
    );
    assert_eq!(v[0]["message"], json!("ping timeout"));
    assert_eq!(v[0]["duration"], json!(60));
    assert_eq!(v[0]["bytesrecv"], json!(20));
}

#[test]
fn local_addresses_render_as_getnetworkinfo_shows_them() {
    let addrs = [("1.2.3.4".to_string(), LocalInfo { score: LOCAL_MANUAL, port: 8333 })];
    assert_eq!(local_addresses(&addrs), json!([{"address": "1.2.3.4", "port": 8333, "score": LOCAL_MANUAL}]));
}

#[test]
fn chain_answers_keep_core_field_order() {
    use crate::engine::chain::params::ChainParams;
    let params = ChainParams::new(crate::base::chainparams::Network::Regtest);
    let header = params.genesis;
    let hash = params.genesis_hash();
    let info = HeaderInfo {
        hash,
        header,
        height: 0,
        confirmations: 1,
        median_time: header.time,
        target: None,
        chain_work: bitcoin::pow::Work::from_le_bytes([0; 32]),
        next: None,
        have_data: true,
        connected: true,
        invalid: false,
    };
    let v = block_header(&info, 1, true);
    assert_eq!(
        keys(&v),
        vec![
            "hash",
            "confirmations",
            "height",
            "version",
            "versionHex",
            "merkleroot",
            "time",
            "mediantime",
            "nonce",
            "bits",
            "target",
            "difficulty",
            "chainwork",
            "nTx"
        ]
    );
    assert_eq!(v["hash"], json!(hash.to_string()));
    assert_eq!(v["bits"], json!("207fffff"));
    assert_eq!(v["target"], json!(""));
    assert_eq!(v["nTx"], json!(1));
    // Off genesis and with a successor: both neighbours, in that order, at the end.
    let next: BlockHash = "00".repeat(32).parse().unwrap();
    let v = block_header(&HeaderInfo { height: 5, next: Some(next), ..info.clone() }, 3, true);
    assert_eq!(keys(&v)[14..], ["previousblockhash", "nextblockhash"]);
    assert_eq!(v["nextblockhash"], json!(next.to_string()));
    // Not verbose: the 80-byte header in hex.
    assert_eq!(block_header(&info, 0, false).as_str().map(str::len), Some(160));

    let b = BlockchainInfo {
        chain: "regtest",
        height: 0,
        headers: 7,
        best_hash: hash,
        bits: header.bits,
        target: None,
        time: header.time,
        median_time: header.time,
        verification_progress: 0.5,
        initial_block_download: true,
        chain_work: bitcoin::pow::Work::from_le_bytes([0; 32]),
        size_on_disk: 80,
    };
    let v = blockchain_info(&b);
    assert_eq!(
        keys(&v),
        vec![
            "chain",
            "blocks",
            "headers",
            "bestblockhash",
            "bits",
            "target",
            "difficulty",
            "time",
            "mediantime",
            "verificationprogress",
            "initialblockdownload",
            "chainwork",
            "size_on_disk",
            "pruned",
            "warnings"
        ]
    );
    assert_eq!(v["chainwork"], json!("00".repeat(32)));
    assert_eq!(v["size_on_disk"], json!(80));
    // Blocks are the validated chain, headers the best header chain.
    assert_eq!((v["blocks"].clone(), v["headers"].clone()), (json!(0), json!(7)));

    let tips = [
        ChainTip { height: 9, hash, branch_len: 0, status: TipStatus::Active },
        ChainTip { height: 7, hash: next, branch_len: 2, status: TipStatus::HeadersOnly },
    ];
    let v = chain_tips(&tips);
    assert_eq!(keys(&v[0]), vec!["height", "hash", "branchlen", "status"]);
    assert_eq!(v[0]["status"], json!("active"));
    assert_eq!(v[1]["status"], json!("headers-only"));
    assert_eq!(v[1]["branchlen"], json!(2));
}

#[test]
fn address_book_answers_render_like_core() {
    use crate::engine::addrman::{AddrEntry, NetCounts};
    let entry = AddrEntry::new(AddrV2::Ipv4([1, 2, 3, 4].into()), 8333, ServiceFlags::NETWORK, 1_700_000_000);
    let v = node_addresses(&[NodeAddress { entry, network: crate::base::netgroup::AddrNetwork::Ipv4 }]);
    assert_eq!(
        v,
        json!([{"time": 1_700_000_000, "services": 1, "address": "1.2.3.4", "port": 8333, "network": "ipv4"}])
    );
    assert_eq!(keys(&v[0]), vec!["time", "services", "address", "port", "network"]);
    // Tor v3, I2P and CJDNS in Core's text form (`ToStringAddr`), not hex.
    let mut onion = [0u8; 32];
    for (i, b) in "79bcc625184b05194975c28b66b66b0469f7f6556fb1ac3189a79b40dda32f1f".as_bytes().chunks(2).enumerate() {
        onion[i] = u8::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap();
    }
    use crate::base::netgroup::AddrNetwork as N;
    let overlay = [
        (AddrV2::TorV3(onion), N::Onion, "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion"),
        (AddrV2::I2p([0; 32]), N::I2p, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b32.i2p"),
        (AddrV2::Cjdns("fc00::1".parse().unwrap()), N::Cjdns, "fc00::1"),
    ];
    for (addr, network, text) in overlay {
        let entry = AddrEntry::new(addr, 8333, ServiceFlags::NETWORK, 1_700_000_000);
        let v = node_addresses(&[NodeAddress { entry, network }]);
        assert_eq!(v[0]["address"], json!(text));
        assert_eq!(v[0]["network"], json!(network.name()));
    }
    let v = addrman_info(&[
        AddrManCounts { network: "ipv4", counts: NetCounts { new: 3, tried: 1 } },
        AddrManCounts { network: "all_networks", counts: NetCounts { new: 3, tried: 1 } },
    ]);
    assert_eq!(keys(&v), vec!["ipv4", "all_networks"]);
    assert_eq!(v["ipv4"], json!({"new": 3, "tried": 1, "total": 4}));
}
