//! Interop with a real Bitcoin Core on regtest over loopback (`common::bitcoind`): btcloopd
//! does its whole initial block download from Core, a fresh Core does its whole initial block
//! download from btcloopd alone (both over BIP324 v2, btcloopd's default as Core's), and Core
//! dials btcloopd over v2, or falls back to v1 when btcloopd runs with `--v2transport=0`.
//!
//! The bitcoind comes from `BTCLOOP_BITCOIND` (set by `./x test`) or is built once by
//! `scripts/build-bitcoind`; these tests are never skipped.

mod common;

use std::time::Duration;

use btcloop::base::chainparams::Network;
use btcloop::engine::chain::blockgen::BlockGen;
use btcloop::engine::chain::params::ChainParams;
use common::bitcoind::{Bitcoind, wait_until};
use common::{Daemon, daemon_user_agent};
use serde_json::{Value, json};

/// Bound for a connection to come about (generous: loaded 2-core machines).
const INTEROP_WAIT: Duration = Duration::from_secs(60);
/// Bound for a download of 1,000 blocks (Core validates with -checkblockindex=1).
const SYNC_WAIT: Duration = Duration::from_secs(240);

/// The peers in `peers` whose `subver` starts with `prefix`.
fn with_subver<'a>(peers: &'a [Value], prefix: &str) -> Vec<&'a Value> {
    peers.iter().filter(|p| p["subver"].as_str().is_some_and(|s| s.starts_with(prefix))).collect()
}

/// btcloopd's `getpeerinfo`.
fn daemon_peers(d: &Daemon) -> Vec<Value> {
    let v = d.rpc_ok("getpeerinfo", json!([]));
    v.as_array().unwrap_or_else(|| panic!("getpeerinfo returned {v}")).clone()
}

/// btcloopd's `getblockchaininfo` `blocks` and `bestblockhash`.
fn daemon_tip(d: &Daemon) -> (u64, String) {
    let info = d.rpc_ok("getblockchaininfo", json!([]));
    (info["blocks"].as_u64().unwrap_or(0), info["bestblockhash"].as_str().unwrap_or_default().to_string())
}

#[test]
fn btcloopd_downloads_the_whole_chain_from_core() {
    let core = Bitcoind::start(&[]);
    core.generate(1000);
    let (height, best) = core.tip();
    assert_eq!(height, 1000);

    let node = Daemon::start(&[&format!("--connect={}", core.p2p_addr())]);
    let synced = common::poll_until(SYNC_WAIT, || daemon_tip(&node) == (1000, best.clone()));
    assert!(synced, "btcloopd did not validate Core's 1,000 blocks: {:?}", daemon_tip(&node));
    let info = node.rpc_ok("getblockchaininfo", json!([]));
    assert_eq!((info["headers"].clone(), info["initialblockdownload"].clone()), (json!(1000), json!(false)), "{info}");

    // Core sees btcloopd as an inbound v2 (BIP324) peer with its user agent, offering blocks.
    let ours = daemon_user_agent(None);
    let mut core_peers = Vec::new();
    wait_until("Core to list btcloopd as a peer", INTEROP_WAIT, || {
        core_peers = core.peers();
        with_subver(&core_peers, &ours).len() == 1
    });
    let p = with_subver(&core_peers, &ours)[0];
    assert_eq!(p["inbound"], json!(true), "{p}");
    assert_eq!(p["transport_protocol_type"], json!("v2"), "{p}");
    assert_eq!(p["servicesnames"], json!(["NETWORK", "WITNESS", "P2P_V2"]), "{p}");
    let session = p["session_id"].clone();
    assert_eq!(session.as_str().map(str::len), Some(64), "{p}");
    // Core served the blocks: it counts them as sent to us.
    assert!(p["bytessent_per_msg"]["block"].as_u64().is_some_and(|b| b > 200_000), "{p}");

    // btcloopd sees Core as its outbound peer with Core's height.
    let peers = daemon_peers(&node);
    let core_seen = with_subver(&peers, "/Satoshi:");
    assert_eq!(core_seen.len(), 1, "{peers:?}");
    assert_eq!((&core_seen[0]["transport_protocol_type"], &core_seen[0]["session_id"]), (&json!("v2"), &session));
    let core_seen = with_subver(&peers, "/Satoshi:");
    assert_eq!(core_seen.len(), 1, "{peers:?}");
    assert_eq!(core_seen[0]["inbound"], json!(false), "{}", core_seen[0]);
    assert_eq!(core_seen[0]["startingheight"], json!(1000), "{}", core_seen[0]);
    assert_eq!(core_seen[0]["synced_headers"], json!(1000), "{}", core_seen[0]);
}

#[test]
fn core_downloads_the_whole_chain_from_btcloopd_alone() {
    // 1,000 blocks with spending transactions, given to btcloopd only.
    let mut g = BlockGen::new(ChainParams::new(Network::Regtest));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32);
    let blocks: Vec<bitcoin::Block> = (0..1000u32).map(|i| g.next_block(now - 1000 + i, 3)).collect();
    let node = Daemon::start(&[]);
    for b in &blocks {
        let hex = bitcoin::consensus::encode::serialize_hex(b);
        assert_eq!(node.rpc_ok("submitblock", json!([hex])), Value::Null);
    }
    let last = blocks.last().map(|b| b.block_hash().to_string()).unwrap_or_default();
    assert_eq!(daemon_tip(&node), (1000, last.clone()));

    // A fresh Core that knows only btcloopd.
    let core = Bitcoind::start(&[&format!("-connect={}", node.addr)]);
    wait_until("Core to download and validate all 1,000 blocks from btcloopd", SYNC_WAIT, || {
        core.tip() == (1000, last.clone())
    });
    let info = core.rpc_ok("getblockchaininfo", json!([]));
    assert_eq!(info["initialblockdownload"], json!(false), "{info}");
    // Every block came from btcloopd: its only peer.
    let peers = core.peers();
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert!(peers[0]["bytesrecv_per_msg"]["block"].as_u64().is_some_and(|b| b > 200_000), "{}", peers[0]);
}

#[test]
fn core_dials_btcloopd_over_v2_and_keeps_the_manual_connection() {
    core_dials_btcloopd(&[], "v2");
}

#[test]
fn core_dials_a_v1_only_btcloopd_falls_back_to_v1_and_keeps_the_manual_connection() {
    core_dials_btcloopd(&["--v2transport=0"], "v1");
}

/// Core dials btcloopd (started with `args`) by `addnode onetry`; they settle on `transport`.
fn core_dials_btcloopd(args: &[&str], transport: &str) {
    let node = Daemon::start(args);
    let core = Bitcoind::start(&[]);
    // Core's default is v2 (BIP324) for outbound connections.
    assert_eq!(
        core.rpc_ok("getnetworkinfo", json!([]))["localservicesnames"].as_array().map(|s| s.contains(&json!("P2P_V2"))),
        Some(true)
    );

    core.addnode(node.addr, "onetry");

    if transport == "v1" {
        // btcloopd drops the v2 opening; Core's socket handler then queues a v1 retry.
        core.wait_log("retrying with v1 transport protocol for peer=", INTEROP_WAIT);
    }

    let ours = daemon_user_agent(None);
    let mut core_peers = Vec::new();
    wait_until("Core to finish the handshake with btcloopd", INTEROP_WAIT, || {
        core_peers = core.peers();
        with_subver(&core_peers, &ours).iter().any(|p| p["version"].as_u64().is_some_and(|v| v > 0))
    });
    let p = with_subver(&core_peers, &ours)[0];
    assert_eq!(p["inbound"], json!(false), "{p}");
    assert_eq!(p["connection_type"], json!("manual"), "{p}");
    assert_eq!(p["transport_protocol_type"], json!(transport), "{p}");
    let services =
        if transport == "v2" { json!(["NETWORK", "WITNESS", "P2P_V2"]) } else { json!(["NETWORK", "WITNESS"]) };
    assert_eq!(p["servicesnames"], services, "{p}");
    let core_id = p["id"].clone();

    let mut peers = Vec::new();
    wait_until("btcloopd to list Core as an inbound peer", INTEROP_WAIT, || {
        peers = daemon_peers(&node);
        with_subver(&peers, "/Satoshi:").len() == 1
    });
    let d = with_subver(&peers, "/Satoshi:")[0];
    assert_eq!(d["inbound"], json!(true), "{d}");
    assert_eq!(d["connection_type"], json!("inbound"), "{d}");
    assert_eq!(d["transport_protocol_type"], json!(transport), "{d}");
    assert_eq!(d["session_id"], p["session_id"], "{d}");

    // The handshake completed: each side received the other's verack.
    wait_until("verack on both sides", INTEROP_WAIT, || {
        let core_got = core.peers().iter().any(|p| p["id"] == core_id && p["bytesrecv_per_msg"]["verack"].is_u64());
        let ours_got =
            with_subver(&daemon_peers(&node), "/Satoshi:").iter().any(|p| p["bytesrecv_per_msg"]["verack"].is_u64());
        core_got && ours_got
    });

    // btcloopd offers NODE_NETWORK: Core keeps the connection. Both sides still list the same
    // connection 5 s later.
    std::thread::sleep(Duration::from_secs(5));
    let core_peers = core.peers();
    let still = with_subver(&core_peers, &ours);
    assert_eq!(still.len(), 1, "Core dropped btcloopd: {core_peers:?}");
    assert_eq!(still[0]["id"], core_id, "Core reconnected instead of keeping the connection");
    assert_eq!(with_subver(&daemon_peers(&node), "/Satoshi:").len(), 1);
}

/// Bytes of `command` messages `peer` (a `getpeerinfo` entry) received.
fn recv_bytes(peer: &Value, command: &str) -> u64 {
    peer["bytesrecv_per_msg"][command].as_u64().unwrap_or(0)
}

/// A transaction spending output 0 of the coinbase of Core's block at `height` (paid to
/// `raw(51)`, OP_TRUE) to OP_TRUE, 1,000 satoshis less.
fn spend_coinbase(core: &Bitcoind, height: u64) -> bitcoin::Transaction {
    use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Witness, absolute, transaction};
    let hash = core.rpc_ok("getblockhash", json!([height]));
    let block = core.rpc_ok("getblock", json!([hash, 2]));
    let cb = &block["tx"][0];
    let txid: bitcoin::Txid = cb["txid"].as_str().and_then(|s| s.parse().ok()).expect("coinbase txid");
    let sats = (cb["vout"][0]["value"].as_f64().expect("value") * 1e8).round() as u64;
    bitcoin::Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint { txid, vout: 0 },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut { value: Amount::from_sat(sats - 1000), script_pubkey: ScriptBuf::from_bytes(vec![0x51]) }],
    }
}

/// The next regtest block on Core's tip, made here (coinbase only), for btcloopd to submit.
fn block_on(core: &Bitcoind, time_offset: u32) -> bitcoin::Block {
    use btcloop::engine::chain::blockgen::{assemble, coinbase, subsidy};
    let (height, best) = core.tip();
    let hex = core.rpc_ok("getblockheader", json!([best, false]));
    let bytes: Vec<u8> = bitcoin::hex::FromHex::from_hex(hex.as_str().expect("hex")).expect("hex");
    let prev: bitcoin::block::Header = bitcoin::consensus::deserialize(&bytes).expect("header");
    let params = ChainParams::new(Network::Regtest);
    let h = u32::try_from(height).expect("height") + 1;
    assemble(&params, &prev, prev.time + 1 + time_offset, vec![coinbase(h, subsidy(&params, h))])
}

#[test]
fn a_block_mined_on_either_side_reaches_the_other_by_compact_block() {
    let core = Bitcoind::start(&[]);
    core.generate(110);
    let node = Daemon::start(&[&format!("--connect={}", core.p2p_addr())]);
    let synced = common::poll_until(SYNC_WAIT, || daemon_tip(&node).0 == 110);
    assert!(synced, "btcloopd did not sync: {:?}", daemon_tip(&node));
    let core_peer = |node: &Daemon| with_subver(&daemon_peers(node), "/Satoshi:").first().map(|p| (*p).clone());

    // Core → btcloopd. A first new block makes btcloopd choose Core as a high-bandwidth peer;
    // the next one, with a transaction btcloopd has never seen, comes as a cmpctblock, and the
    // transaction by getblocktxn/blocktxn.
    core.generate(1);
    wait_until("btcloopd to take block 111", INTEROP_WAIT, || daemon_tip(&node) == core.tip());
    let before = core_peer(&node).map_or(0, |p| recv_bytes(&p, "cmpctblock"));
    let tx = bitcoin::consensus::encode::serialize_hex(&spend_coinbase(&core, 1));
    let mined = core.rpc_ok("generateblock", json!(["raw(51)", [tx]]));
    let hash = mined["hash"].as_str().expect("hash").to_string();
    wait_until("btcloopd to take Core's block with a transaction", INTEROP_WAIT, || {
        daemon_tip(&node) == (112, hash.clone())
    });
    let p = core_peer(&node).expect("Core is a peer");
    assert!(recv_bytes(&p, "cmpctblock") > before, "not by compact block: {p}");
    assert!(recv_bytes(&p, "blocktxn") > 0, "the transaction did not come by blocktxn: {p}");

    // btcloopd → Core: btcloopd's first block makes Core choose it as high-bandwidth; the next
    // reaches Core as a cmpctblock.
    let submit = |b: &bitcoin::Block| {
        let hex = bitcoin::consensus::encode::serialize_hex(b);
        assert_eq!(node.rpc_ok("submitblock", json!([hex])), Value::Null);
    };
    let first = block_on(&core, 0);
    submit(&first);
    wait_until("Core to take btcloopd's block", INTEROP_WAIT, || core.tip().1 == first.block_hash().to_string());
    let ours = daemon_user_agent(None);
    let from_us =
        |core: &Bitcoind| with_subver(&core.peers(), &ours).first().map(|p| recv_bytes(p, "cmpctblock")).unwrap_or(0);
    let before = from_us(&core);
    wait_until("Core to ask btcloopd for high-bandwidth compact blocks", INTEROP_WAIT, || {
        node.log().contains("received: sendcmpct (9 bytes)") && node.log_count("received: sendcmpct") >= 2
    });
    let second = block_on(&core, 1);
    submit(&second);
    wait_until("Core to take btcloopd's second block", INTEROP_WAIT, || {
        core.tip().1 == second.block_hash().to_string()
    });
    assert!(from_us(&core) > before, "Core did not get it by compact block: {:?}", core.peers());
}
