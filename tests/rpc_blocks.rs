//! The block RPCs over real HTTP on loopback, checked against the blocks' own bytes (with
//! rust-bitcoin) and against a real Bitcoin Core given the same blocks (`common::bitcoind`):
//! `getblock` at verbosity 0–3, `getblockheader`'s `nTx`, `getblockhash`, `getchaintips`'
//! statuses, `getpeerinfo`'s `synced_blocks`/`inflight` and the block metrics after a sync
//! between two btcloopd, and the `validation` debug category.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::blockdata::opcodes::all::{OP_CHECKMULTISIG, OP_CHECKSIG, OP_PUSHNUM_1, OP_PUSHNUM_2, OP_RETURN};
use bitcoin::blockdata::script::Builder;
use bitcoin::consensus::encode::serialize_hex;
use bitcoin::consensus::serialize;
use bitcoin::hashes::Hash;
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::{
    Amount, Block, OutPoint, PubkeyHash, ScriptBuf, ScriptHash, Sequence, Transaction, TxIn, TxOut, WPubkeyHash,
    WScriptHash, Witness, absolute, transaction,
};
use btcloop::base::chainparams::Network;
use btcloop::engine::chain::blockgen::{BlockGen, anyone_can_spend, assemble, coinbase, subsidy};
use btcloop::engine::chain::params::ChainParams;
use common::bitcoind::Bitcoind;
use common::*;
use serde_json::{Value, json};

/// Bound for a sync of a few hundred blocks on a busy 2-core machine.
const SYNC: Duration = Duration::from_secs(180);

fn regtest() -> ChainParams {
    ChainParams::new(Network::Regtest)
}

/// The secp256k1 generator as a compressed key (a valid point, so descriptors show it).
const G: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
/// The same point uncompressed.
const G_FULL: &str = "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8";

fn bytes(hex: &str) -> Vec<u8> {
    use bitcoin::hex::FromHex;
    Vec::<u8>::from_hex(hex).expect("hex")
}

fn push(data: &[u8]) -> bitcoin::script::PushBytesBuf {
    bitcoin::script::PushBytesBuf::try_from(data.to_vec()).expect("push")
}

/// A transaction spending `from` (each with the scriptSig and witness given) to `outputs`.
fn spend(from: Vec<(OutPoint, ScriptBuf, Witness)>, outputs: Vec<TxOut>) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: from
            .into_iter()
            .map(|(previous_output, script_sig, witness)| TxIn {
                previous_output,
                script_sig,
                sequence: Sequence::MAX,
                witness,
            })
            .collect(),
        output: outputs,
    }
}

/// A chain of 103 blocks: 101 coinbase-only ones, then one whose transaction spends block 1's
/// coinbase to every output type Core names (and pays a fee), then one that spends some of
/// those outputs with witnesses, a P2SH redeem script and a DER signature in a scriptSig.
fn varied_chain() -> Vec<Block> {
    let p = regtest();
    let mut blocks: Vec<Block> = Vec::new();
    let mut prev = p.genesis;
    for h in 1..=101u32 {
        let b = assemble(&p, &prev, prev.time + 1, vec![coinbase(h, subsidy(&p, h))]);
        prev = b.header;
        blocks.push(b);
    }
    let op_true = anyone_can_spend();
    let p2wsh = ScriptBuf::new_p2wsh(&WScriptHash::hash(op_true.as_bytes()));
    let p2sh = ScriptBuf::new_p2sh(&ScriptHash::hash(op_true.as_bytes()));
    let g = bytes(G);
    let outputs: Vec<ScriptBuf> = vec![
        p2wsh.clone(),
        p2sh.clone(),
        ScriptBuf::new_p2pkh(&PubkeyHash::hash(&g)),
        ScriptBuf::new_p2wpkh(&WPubkeyHash::hash(&g)),
        // Taproot to the generator's x coordinate (a valid key: rawtr()).
        Builder::new().push_opcode(OP_PUSHNUM_1).push_slice(push(&g[1..])).into_script(),
        // Pay to anchor.
        ScriptBuf::from_bytes(vec![0x51, 0x02, 0x4e, 0x73]),
        // A future witness version.
        Builder::new().push_opcode(bitcoin::blockdata::opcodes::all::OP_PUSHNUM_2).push_slice([7u8; 10]).into_script(),
        Builder::new().push_slice(push(&g)).push_opcode(OP_CHECKSIG).into_script(),
        Builder::new().push_slice(push(&bytes(G_FULL))).push_opcode(OP_CHECKSIG).into_script(),
        Builder::new()
            .push_opcode(OP_PUSHNUM_1)
            .push_slice(push(&g))
            .push_slice(push(&bytes(G_FULL)))
            .push_opcode(OP_PUSHNUM_2)
            .push_opcode(OP_CHECKMULTISIG)
            .into_script(),
        Builder::new().push_opcode(OP_RETURN).push_slice(b"btcloop").into_script(),
        // Nonstandard: OP_TRUE and a truncated push.
        op_true.clone(),
        ScriptBuf::from_bytes(vec![0x4c]),
    ];
    let cb1 = OutPoint { txid: blocks[0].txdata[0].compute_txid(), vout: 0 };
    let each = Amount::from_sat(100_000_000);
    let fan = spend(
        vec![(cb1, ScriptBuf::new(), Witness::new())],
        outputs.iter().map(|s| TxOut { value: each, script_pubkey: s.clone() }).collect(),
    );
    let fee1 = subsidy(&p, 1) - each * outputs.len() as u64;
    let b102 = assemble(&p, &prev, prev.time + 1, vec![coinbase(102, subsidy(&p, 102) + fee1), fan.clone()]);
    prev = b102.header;
    blocks.push(b102);

    // Spends: the P2WSH output by its witness script, the P2SH one by its redeem script, and
    // block 2's coinbase with a DER signature (SIGHASH_ALL) pushed before OP_TRUE runs.
    let fan_id = fan.compute_txid();
    // A strict-DER signature (r and s of 32 bytes) with SIGHASH_ALL.
    let der = bytes(&format!("30440220{}0220{}01", "79".repeat(32), "7b".repeat(32)));
    let cb2 = OutPoint { txid: blocks[1].txdata[0].compute_txid(), vout: 0 };
    let tx = spend(
        vec![
            (OutPoint { txid: fan_id, vout: 0 }, ScriptBuf::new(), Witness::from_slice(&[op_true.as_bytes()])),
            (
                OutPoint { txid: fan_id, vout: 1 },
                Builder::new().push_slice(push(op_true.as_bytes())).into_script(),
                Witness::new(),
            ),
            (cb2, Builder::new().push_slice(push(&der)).into_script(), Witness::new()),
        ],
        vec![
            TxOut { value: Amount::from_sat(150_000_000), script_pubkey: p2wsh },
            TxOut { value: Amount::from_sat(4_900_000_000), script_pubkey: op_true },
        ],
    );
    let fee2 = each * 2 + subsidy(&p, 2) - Amount::from_sat(150_000_000) - Amount::from_sat(4_900_000_000);
    let b103 = assemble(&p, &prev, prev.time + 1, vec![coinbase(103, subsidy(&p, 103) + fee2), tx]);
    blocks.push(b103);
    blocks
}

fn submit(d: &Daemon, blocks: &[Block]) {
    for b in blocks {
        let got = d.rpc_ok("submitblock", json!([serialize_hex(b)]));
        assert_eq!(got, Value::Null, "submitblock {}: {}", b.block_hash(), tail(&d.log(), 10));
    }
}

fn submit_core(core: &Bitcoind, blocks: &[Block]) {
    for b in blocks {
        let got = core.rpc_ok("submitblock", json!([serialize_hex(b)]));
        assert_eq!(got, Value::Null, "Core's submitblock {}", b.block_hash());
    }
}

#[test]
fn getblock_matches_the_blocks_bytes_and_bitcoin_core() {
    let blocks = varied_chain();
    let d = Daemon::start(&[]);
    submit(&d, &blocks);
    let core = Bitcoind::start(&[]);
    submit_core(&core, &blocks);
    assert_eq!(d.rpc_ok("getblockcount", json!([])), json!(103));
    assert_eq!(core.rpc_ok("getblockcount", json!([])), json!(103));

    let genesis = regtest().genesis_hash();
    let mut hashes = vec![genesis];
    hashes.extend(blocks.iter().map(Block::block_hash));
    for (height, hash) in hashes.iter().enumerate() {
        let h = hash.to_string();
        // The same answer as Core's, field for field and in Core's order.
        for verbosity in [1, 2, 3] {
            let ours = d.rpc_ok("getblock", json!([h, verbosity]));
            let theirs = core.rpc_ok("getblock", json!([h, verbosity]));
            assert_eq!(ours, theirs, "getblock {h} {verbosity}");
            let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
            assert_eq!(keys(&ours), keys(&theirs), "key order of getblock {h} {verbosity}");
        }
        assert_eq!(d.rpc_ok("getblock", json!([h, 0])), core.rpc_ok("getblock", json!([h, 0])));
        assert_eq!(d.rpc_ok("getblockheader", json!([h])), core.rpc_ok("getblockheader", json!([h])), "{h}");
        assert_eq!(d.rpc_ok("getblockhash", json!([height])), json!(h));
    }

    // And against the blocks themselves, computed with rust-bitcoin.
    for (i, b) in blocks.iter().enumerate() {
        let h = b.block_hash().to_string();
        let height = i + 1;
        assert_eq!(d.rpc_ok("getblock", json!([h, 0])), json!(serialize_hex(b)), "hex round-trips");
        let v = d.rpc_ok("getblock", json!([h]));
        assert_eq!(v["height"], json!(height));
        assert_eq!(v["confirmations"], json!(blocks.len() - i));
        assert_eq!(v["size"], json!(serialize(b).len()));
        assert_eq!(
            v["strippedsize"],
            json!(
                80 + bitcoin::VarInt(b.txdata.len() as u64).size()
                    + b.txdata.iter().map(Transaction::base_size).sum::<usize>()
            )
        );
        assert_eq!(v["weight"], json!(b.weight().to_wu()));
        assert_eq!(v["nTx"], json!(b.txdata.len()));
        let txids: Vec<String> = b.txdata.iter().map(|t| t.compute_txid().to_string()).collect();
        assert_eq!(v["tx"], json!(txids));
        let prev = if i == 0 { genesis } else { blocks[i - 1].block_hash() };
        assert_eq!(v["previousblockhash"], json!(prev.to_string()));
        match blocks.get(i + 1) {
            Some(next) => assert_eq!(v["nextblockhash"], json!(next.block_hash().to_string())),
            None => assert!(v.get("nextblockhash").is_none(), "{v}"),
        }
        let hdr = d.rpc_ok("getblockheader", json!([h]));
        assert_eq!(hdr["nTx"], json!(b.txdata.len()));
    }
    // The spending block: witnesses, sizes and the fee from the undo data.
    let last = blocks.last().expect("blocks");
    let v = d.rpc_ok("getblock", json!([last.block_hash().to_string(), 2]));
    let tx = &last.txdata[1];
    assert_eq!(v["tx"][1]["txid"], json!(tx.compute_txid().to_string()));
    assert_eq!(v["tx"][1]["hash"], json!(tx.compute_wtxid().to_string()));
    assert_ne!(v["tx"][1]["txid"], v["tx"][1]["hash"], "a witness transaction");
    assert_eq!(v["tx"][1]["size"], json!(tx.total_size()));
    assert_eq!(v["tx"][1]["vin"][0]["txinwitness"], json!(["51"]));
    assert_eq!(v["tx"][1]["hex"], json!(serialize_hex(tx)));
    assert!(v["tx"][1]["fee"].as_f64().is_some_and(|f| f > 0.0), "{}", v["tx"][1]);
    assert!(v["tx"][0].get("fee").is_none(), "no fee for the coinbase");
    assert!(v["tx"][1]["vin"][0].get("prevout").is_none(), "prevout only at verbosity 3");
    let v3 = d.rpc_ok("getblock", json!([last.block_hash().to_string(), 3]));
    assert_eq!(v3["tx"][1]["vin"][2]["prevout"]["generated"], json!(true));
    assert_eq!(v3["tx"][1]["vin"][2]["prevout"]["height"], json!(2));
    // Booleans are verbosity 0 and 1.
    assert_eq!(d.rpc_ok("getblock", json!([last.block_hash().to_string(), false])), json!(serialize_hex(last)));
    assert_eq!(
        d.rpc_ok("getblock", json!({"blockhash": last.block_hash().to_string(), "verbose": true})),
        d.rpc_ok("getblock", json!([last.block_hash().to_string()]))
    );
}

#[test]
fn getblock_errors_as_core() {
    let d = Daemon::start(&[]);
    let p = regtest();
    let mut g = BlockGen::new(p.clone());
    let blocks: Vec<Block> = (1..=3).map(|i| g.next_block(p.genesis.time + i, 0)).collect();
    submit(&d, &blocks[..2]);
    // Block 3's header only, through a peer: known, not stored.
    let mut peer = d.connect_ready();
    peer.send(&NetworkMessage::Headers(vec![blocks[2].header]));
    peer.ping_pong(7);
    let h3 = blocks[2].block_hash().to_string();
    assert!(poll_until(WAIT, || d.rpc("getblockheader", json!([h3])).is_ok()), "header 3 never arrived");
    assert_eq!(d.rpc_err("getblock", json!([h3])), (-1, "Block not available (not fully downloaded)".into()));
    assert_eq!(d.rpc_ok("getblockheader", json!([h3]))["nTx"], json!(0));
    assert_eq!(d.rpc_ok("getblockheader", json!([h3]))["confirmations"], json!(-1));
    assert_eq!(d.rpc_err("getblock", json!(["11".repeat(32)])), (-5, "Block not found".into()));
    assert_eq!(d.rpc_err("getblock", json!(["abc"])), (-8, "blockhash must be of length 64 (not 3, for 'abc')".into()));
    let h1 = blocks[0].block_hash().to_string();
    assert_eq!(
        d.rpc_err("getblock", json!([h1, "1"])),
        (-1, "JSON value of type string is not of expected type number".into())
    );
    assert_eq!(d.rpc_err("getblock", json!([h1, 1.5])), (-1, "JSON integer out of range".into()));
    // Out-of-range verbosities are Core's: below 0 is hex, above 3 is 3.
    assert_eq!(d.rpc_ok("getblock", json!([h1, -1])), json!(serialize_hex(&blocks[0])));
    assert_eq!(d.rpc_ok("getblock", json!([h1, 9])), d.rpc_ok("getblock", json!([h1, 3])));
}

/// `getchaintips` sorted by hash (Core's order among equal heights is its own).
fn tips_by_hash(v: Value) -> Vec<Value> {
    let mut tips = v.as_array().cloned().unwrap_or_default();
    tips.sort_by_key(|t| t["hash"].as_str().unwrap_or_default().to_string());
    tips
}

#[test]
fn chain_tips_have_cores_statuses() {
    let p = regtest();
    let mut g = BlockGen::new(p.clone());
    let t0 = p.genesis.time;
    let main: Vec<Block> = (1..=5).map(|i| g.next_block(t0 + i, 0)).collect();
    let block_on = |prev: &Block, h: u32, salt: u32| {
        assemble(&p, &prev.header, prev.header.time + salt, vec![coinbase(h, subsidy(&p, h))])
    };
    // A heavier branch on height 3 (heights 4..=7): the main chain's 4..=5 become a valid fork.
    let mut heavy = vec![block_on(&main[2], 4, 100)];
    for h in 5..=7 {
        let b = block_on(heavy.last().expect("branch"), h, 1);
        heavy.push(b);
    }
    // valid-headers: a stored block on height 1 that never was part of the best chain.
    let side = block_on(&main[0], 2, 200);
    // headers-only: a header on height 6 of the heavy branch whose block is not given.
    let unseen = block_on(&heavy[1], 6, 300);
    // invalid: a coinbase paying one satoshi more than it may, on the heavy branch's tip.
    let greedy = assemble(
        &p,
        &heavy[3].header,
        heavy[3].header.time + 1,
        vec![coinbase(8, subsidy(&p, 8) + Amount::from_sat(1))],
    );

    let d = Daemon::start(&[]);
    let core = Bitcoind::start(&[]);
    let all: Vec<&Block> = main.iter().chain([&side]).chain(heavy.iter()).collect();
    for b in all {
        // Both answer null for a block they connect and "inconclusive" for one they store
        // without connecting it.
        let theirs = core.rpc_ok("submitblock", json!([serialize_hex(b)]));
        assert!(theirs.is_null() || theirs == json!("inconclusive"), "{theirs}");
        assert_eq!(d.rpc_ok("submitblock", json!([serialize_hex(b)])), theirs, "{}", b.block_hash());
    }
    // The greedy block: refused by both, for the same reason.
    let theirs = core.rpc_ok("submitblock", json!([serialize_hex(&greedy)]));
    assert_eq!(theirs, json!("bad-cb-amount"));
    assert_eq!(d.rpc_ok("submitblock", json!([serialize_hex(&greedy)])), theirs);
    // The unseen header: through a peer here, `submitheader` there.
    let mut peer = d.connect_ready();
    peer.send(&NetworkMessage::Headers(vec![unseen.header]));
    peer.ping_pong(9);
    core.rpc_ok("submitheader", json!([serialize_hex(&unseen.header)]));
    let want_tips = 5;
    assert!(
        poll_until(WAIT, || d.rpc_ok("getchaintips", json!([])).as_array().map(Vec::len) == Some(want_tips)),
        "{}",
        d.rpc_ok("getchaintips", json!([]))
    );

    let ours = tips_by_hash(d.rpc_ok("getchaintips", json!([])));
    let theirs = tips_by_hash(core.rpc_ok("getchaintips", json!([])));
    assert_eq!(ours, theirs, "getchaintips");
    let status = |hash: bitcoin::BlockHash| {
        ours.iter().find(|t| t["hash"] == json!(hash.to_string())).map(|t| t["status"].clone())
    };
    assert_eq!(status(heavy[3].block_hash()), Some(json!("active")));
    assert_eq!(status(main[4].block_hash()), Some(json!("valid-fork")));
    assert_eq!(status(side.block_hash()), Some(json!("valid-headers")));
    assert_eq!(status(unseen.block_hash()), Some(json!("headers-only")));
    assert_eq!(status(greedy.block_hash()), Some(json!("invalid")));

    // Blocks off the active chain: -1 confirmations, no next block; the same as Core's.
    for b in [&main[3], &main[4], &side] {
        let h = b.block_hash().to_string();
        let ours = d.rpc_ok("getblock", json!([h, 2]));
        assert_eq!(ours["confirmations"], json!(-1), "{ours}");
        assert!(ours.get("nextblockhash").is_none(), "{ours}");
        assert_eq!(ours, core.rpc_ok("getblock", json!([h, 2])), "getblock {h}");
        assert_eq!(d.rpc_ok("getblockheader", json!([h])), core.rpc_ok("getblockheader", json!([h])));
    }
    // The invalid block is stored (Core keeps a block that failed to connect) and shown.
    let h = greedy.block_hash().to_string();
    for verbosity in [0, 1, 2] {
        let ours = d.rpc_ok("getblock", json!([h, verbosity]));
        assert_eq!(ours, core.rpc_ok("getblock", json!([h, verbosity])), "getblock of the invalid block");
    }
    assert_eq!(d.rpc_ok("getblockheader", json!([h])), core.rpc_ok("getblockheader", json!([h])));
    // getblockhash follows the active chain.
    assert_eq!(d.rpc_ok("getblockhash", json!([5])), json!(heavy[1].block_hash().to_string()));
    assert_eq!(d.rpc_ok("getblockhash", json!([7])), json!(heavy[3].block_hash().to_string()));
}

/// A daemon with a metrics endpoint on a free port, and that address.
fn start_with_metrics(args: &[String]) -> (Daemon, SocketAddr) {
    let port = free_port();
    let args = args.to_vec();
    let d = Daemon::start_with(true, move |_| {
        let mut a = args.clone();
        a.push(format!("--metricsbind=127.0.0.1:{port}"));
        a
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    d.wait_log(&format!("Serving metrics on http://{addr}/metrics"), WAIT);
    (d, addr)
}

/// The value of the unlabelled metric `name` in a scrape.
fn metric(addr: SocketAddr, name: &str) -> f64 {
    let r = http_request(addr, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    let text = r.text();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn peers_show_synced_blocks_and_metrics_count_a_sync() {
    let p = regtest();
    let mut g = BlockGen::new(p.clone());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32);
    let n = 300u32;
    let blocks: Vec<Block> = (0..n).map(|i| g.next_block(now - n + i, 2)).collect();
    let last = blocks.last().map(Block::block_hash).expect("blocks");
    let a = Daemon::start_quiet(&[]);
    submit(&a, &blocks);
    let (b, addr) = start_with_metrics(&[format!("--connect={}", a.addr)]);
    let synced = || b.rpc_ok("getbestblockhash", json!([])) == json!(last.to_string());
    assert!(poll_until(SYNC, synced), "B at {}", b.rpc_ok("getblockcount", json!([])));

    // B's view of A: every block in common, nothing in flight.
    let peers = b.rpc_ok("getpeerinfo", json!([]));
    let pa = &peers[0];
    assert!(
        poll_until(WAIT, || b.rpc_ok("getpeerinfo", json!([]))[0]["synced_blocks"] == json!(n)),
        "{}",
        b.rpc_ok("getpeerinfo", json!([]))
    );
    assert_eq!(pa["synced_headers"], json!(n), "{pa}");
    assert_eq!(pa["inflight"], json!([]), "{pa}");
    let keys: Vec<&String> = pa.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    let at = |k: &str| keys.iter().position(|x| *x == k);
    assert_eq!(at("synced_blocks"), at("synced_headers").map(|i| i + 1), "Core's field order: {keys:?}");
    assert_eq!(at("inflight"), at("synced_blocks").map(|i| i + 1), "Core's field order: {keys:?}");

    // The metrics of the sync.
    let payload: u64 = blocks.iter().map(|b| serialize(b).len() as u64).sum();
    assert_eq!(metric(addr, "btcloop_block_height"), f64::from(n));
    assert_eq!(metric(addr, "btcloop_blocks_validated_total"), f64::from(n));
    assert_eq!(metric(addr, "btcloop_blocks_refused_total"), 0.0);
    assert_eq!(metric(addr, "btcloop_blocks_in_flight"), 0.0);
    assert_eq!(metric(addr, "btcloop_block_stalls_total"), 0.0);
    assert_eq!(metric(addr, "btcloop_block_bytes_total"), payload as f64, "each block's bytes, once");
    assert!(metric(addr, "btcloop_size_on_disk_bytes") >= payload as f64);
    let progress = metric(addr, "btcloop_verification_progress");
    assert!(progress > 0.0 && progress <= 1.0, "{progress}");
}

#[test]
fn inflight_lists_the_heights_asked_of_a_peer() {
    let p = regtest();
    let mut g = BlockGen::new(p.clone());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32);
    let blocks: Vec<Block> = (0..40u32).map(|i| g.next_block(now - 40 + i, 0)).collect();
    let d = Daemon::start(&[]);
    // A peer that announces the chain and never sends a block.
    let mut peer = d.connect();
    let mut v = version_msg(PROTOCOL_VERSION, "/withholder:1.0/", random_u64());
    v.services = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
    peer.send(&NetworkMessage::Version(v));
    peer.expect("version");
    assert!(peer.recv_until("verack", WAIT).is_some(), "no verack");
    peer.send(&NetworkMessage::Verack);
    peer.send(&NetworkMessage::Headers(blocks.iter().map(|b| b.header).collect()));
    assert!(peer.recv_until("getdata", WAIT).is_some(), "no getdata");
    let asked = || {
        let peers = d.rpc_ok("getpeerinfo", json!([]));
        peers[0]["inflight"].as_array().map_or(0, Vec::len)
    };
    assert!(poll_until(WAIT, || asked() == 16), "{}", d.rpc_ok("getpeerinfo", json!([])));
    let peers = d.rpc_ok("getpeerinfo", json!([]));
    let want: Vec<u32> = (1..=16).collect();
    assert_eq!(peers[0]["inflight"], json!(want), "Core's per-peer limit, lowest heights first");
    assert_eq!(peers[0]["synced_blocks"], json!(0), "only genesis in common");
    assert_eq!(peers[0]["synced_headers"], json!(40));
}

#[test]
fn the_validation_category_shows_the_kernel_and_per_block_lines() {
    let p = regtest();
    let mut g = BlockGen::new(p.clone());
    let blocks: Vec<Block> = (1..=3).map(|i| g.next_block(p.genesis.time + i, 0)).collect();
    let on = Daemon::start(&["--debug=validation"]);
    let off = Daemon::start(&[]);
    submit(&on, &blocks);
    submit(&off, &blocks);
    let hash = blocks[2].block_hash();
    on.wait_log_all(&[" [validation] ", "kernel: "], WAIT);
    on.wait_log(&format!("block {hash}: Stored"), WAIT);
    // UpdateTip lines are always on.
    for d in [&on, &off] {
        d.wait_log("UpdateTip: new best=", WAIT);
    }
    let log = off.log();
    assert!(!log.contains("[validation]") && !log.contains("kernel: "), "{}", tail(&log, 20));
    assert!(!log.contains(&format!("block {hash}: Stored")), "{}", tail(&log, 20));

    // Switched on at run time with the logging RPC.
    off.rpc_ok("logging", json!([["validation"]]));
    let more = g.next_block(p.genesis.time + 4, 0);
    submit(&off, std::slice::from_ref(&more));
    off.wait_log_all(&[" [validation] ", "kernel: "], WAIT);
    off.wait_log(&format!("block {}: Stored", more.block_hash()), WAIT);
}
