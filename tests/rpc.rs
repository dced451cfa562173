//! The JSON-RPC server over real HTTP on loopback: authentication (cookie, `--rpcuser`), the
//! HTTP layer as Bitcoin Core answers it (statuses, legacy and 2.0 shapes, notifications,
//! batches), argument handling, the chain methods over headers fed by a scripted peer, and the
//! control methods (`uptime`, `help`, `logging`, `stop`).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use bitcoin::block::Header;
use bitcoin::consensus::encode::serialize_hex;
use bitcoin::p2p::message::NetworkMessage;
use btcloop::base::chainparams::Network;
use btcloop::engine::chain::blockgen::BlockGen;
use btcloop::engine::chain::mine::mine_chain;
use btcloop::engine::chain::params::ChainParams;
use common::{Daemon, WAIT, basic_auth, poll_until, rpc_outcome};
use serde_json::{Value, json};

/// The regtest genesis hash.
const REGTEST_GENESIS: &str = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";

fn regtest() -> ChainParams {
    ChainParams::new(Network::Regtest)
}

/// The `help` text of `method` (what a wrong argument count answers).
fn help_of(d: &Daemon, method: &str) -> String {
    d.rpc_ok("help", json!([method])).as_str().expect("help is a string").to_string()
}

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

#[test]
fn cookie_authenticates_and_missing_or_wrong_credentials_get_401() {
    let mut d = Daemon::start(&[]);
    let cookie = d.cookie_path();
    let text = std::fs::read_to_string(&cookie).unwrap();
    let (user, pass) = text.split_once(':').unwrap();
    assert_eq!(user, "__cookie__");
    assert!(pass.len() == 64 && pass.chars().all(|c| c.is_ascii_hexdigit()), "{text:?}");
    assert_eq!(std::fs::metadata(&cookie).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(d.rpc_ok("getblockcount", json!([])), json!(0));

    let body = br#"{"jsonrpc":"2.0","id":1,"method":"getblockcount"}"#;
    // No Authorization header: 401 at once, with Core's challenge.
    let r = d.http("POST", "/", &[], body);
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("WWW-Authenticate"), Some("Basic realm=\"jsonrpc\""));
    assert!(r.body.is_empty(), "{:?}", r.text());
    // Wrong password, wrong user, wrong scheme: 401 too, each after Core's 250 ms delay.
    for auth in [basic_auth("__cookie__", "00"), basic_auth("alice", pass), format!("Bearer {pass}")] {
        let t = Instant::now();
        let r = d.http("POST", "/", &[("Authorization", &auth)], body);
        assert_eq!(r.status, 401, "{auth}: {r:?}");
        assert_eq!(r.header("WWW-Authenticate"), Some("Basic realm=\"jsonrpc\""), "{auth}");
        if auth.starts_with("Basic") {
            assert!(t.elapsed() >= Duration::from_millis(240), "{auth} answered after {:?}", t.elapsed());
        }
    }
    d.wait_log("ThreadRPCServer incorrect password attempt from 127.0.0.1:", WAIT);
    // The right cookie still works afterwards.
    assert_eq!(d.rpc_with_auth(&basic_auth(user, pass), "getblockcount", json!([])), Ok(json!(0)));

    // SIGTERM: a clean exit, and the cookie is gone.
    let status = d.sigterm_and_wait(WAIT);
    assert!(status.success(), "{status}");
    assert!(!cookie.exists(), "cookie left behind after SIGTERM");
}

#[test]
fn rpcuser_and_rpcpassword_replace_the_cookie() {
    let d = Daemon::start(&["--rpcuser=alice", "--rpcpassword=s3cret:with:colon"]);
    assert!(!d.cookie_path().exists(), "no cookie with --rpcpassword");
    let good = basic_auth("alice", "s3cret:with:colon");
    assert_eq!(d.rpc_with_auth(&good, "getconnectioncount", json!([])), Ok(json!(0)));
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"getconnectioncount"}"#;
    for bad in [basic_auth("alice", "s3cret"), basic_auth("bob", "s3cret:with:colon"), basic_auth("__cookie__", "x")] {
        let r = d.http("POST", "/", &[("Authorization", &bad)], body);
        assert_eq!(r.status, 401, "{bad}: {r:?}");
        assert_eq!(r.header("WWW-Authenticate"), Some("Basic realm=\"jsonrpc\""));
    }
    assert!(!d.cookie_path().exists());
}

#[test]
fn stop_rpc_answers_then_the_process_exits_zero_without_its_cookie() {
    let mut d = Daemon::start(&[]);
    let cookie = d.cookie_path();
    assert!(cookie.exists());
    assert_eq!(d.rpc_ok("stop", json!([])), json!("btcloopd stopping"));
    let mut status = None;
    assert!(poll_until(WAIT, || {
        status = d.try_wait();
        status.is_some()
    }));
    let status = status.unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(!cookie.exists(), "cookie left behind after stop");
    d.wait_log("Shutdown requested (RPC stop)", WAIT);
}

// ---------------------------------------------------------------------------------------------
// HTTP layer and JSON-RPC shapes
// ---------------------------------------------------------------------------------------------

#[test]
fn http_layer_answers_like_core() {
    let d = Daemon::start(&[]);
    let auth = d.cookie_auth();
    let auth = [("Authorization", auth.as_str())];
    // Only POST; only "/".
    let r = d.http("GET", "/", &auth, b"");
    assert_eq!((r.status, r.text().as_str()), (405, "JSONRPC server handles only POST requests"));
    let r = d.http("PUT", "/", &auth, b"{}");
    assert_eq!(r.status, 405);
    for path in ["/other", "/wallet", "/?x=1"] {
        let r = d.http("POST", path, &auth, br#"{"method":"getblockcount","id":1}"#);
        assert_eq!(r.status, 404, "{path}: {r:?}");
    }
    // Unparsable bodies: HTTP 500 and -32700.
    for (body, message) in [("{nope", "Parse error"), ("", "Parse error"), ("42", "Top-level object parse error")] {
        let r = d.rpc_post(body);
        assert_eq!(r.status, 500, "{body:?}: {r:?}");
        let v = r.json();
        assert_eq!(v["error"], json!({"code": -32700, "message": message}), "{body:?}: {v}");
        assert_eq!(v["result"], Value::Null);
    }

    // Legacy (no "jsonrpc", or "1.0"): both keys; errors mapped to HTTP statuses.
    let r = d.rpc_post(r#"{"method":"getblockcount","params":[],"id":"a"}"#);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.json(), json!({"result": 0, "error": null, "id": "a"}));
    let r = d.rpc_post(r#"{"jsonrpc":"1.0","method":"getblockhash","params":[0],"id":7}"#);
    assert_eq!((r.status, r.json()), (200, json!({"result": REGTEST_GENESIS, "error": null, "id": 7})));
    let r = d.rpc_post(r#"{"method":"nosuchmethod","id":2}"#);
    assert_eq!(r.status, 404);
    assert_eq!(r.json(), json!({"result": null, "error": {"code": -32601, "message": "Method not found"}, "id": 2}));
    let r = d.rpc_post(r#"{"method":5,"id":3}"#);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], json!({"code": -32600, "message": "Method must be a string"}));
    let r = d.rpc_post(r#"{"method":"getblockhash","params":[99],"id":4}"#);
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"], json!({"code": -8, "message": "Block height out of range"}));
    // A legacy request without an id is answered (no id key), not treated as a notification.
    let r = d.rpc_post(r#"{"method":"getconnectioncount"}"#);
    assert_eq!((r.status, r.json()), (200, json!({"result": 0, "error": null})));

    // 2.0: always HTTP 200, only one of result/error; notifications get 204 and no body.
    let r = d.rpc_post(r#"{"jsonrpc":"2.0","method":"getblockcount","id":[1]}"#);
    assert_eq!((r.status, r.json()), (200, json!({"jsonrpc": "2.0", "result": 0, "id": [1]})));
    let r = d.rpc_post(r#"{"jsonrpc":"2.0","method":"nosuchmethod","id":null}"#);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": null})
    );
    let r = d.rpc_post(r#"{"jsonrpc":"2.0","method":"getblockhash","params":[99],"id":5}"#);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["error"]["code"], json!(-8));
    let r = d.rpc_post(r#"{"jsonrpc":"2.0","method":"getblockcount"}"#);
    assert_eq!(r.status, 204, "{r:?}");
    assert!(r.body.is_empty(), "{:?}", r.text());
    // A notification that fails is still silent.
    assert_eq!(d.rpc_post(r#"{"jsonrpc":"2.0","method":"nosuchmethod"}"#).status, 204);
    let r = d.rpc_post(r#"{"jsonrpc":"3.0","method":"getblockcount","id":1}"#);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], json!({"code": -32600, "message": "JSON-RPC version not supported"}));
    let r = d.rpc_post(r#"{"jsonrpc":"2.0","method":"getblockcount","params":3,"id":1}"#);
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (200, json!(-32600)));
}

#[test]
fn batches_answer_each_call_in_order_and_skip_notifications() {
    let d = Daemon::start(&[]);
    let r = d.rpc_post(
        r#"[
            {"jsonrpc":"2.0","method":"getblockcount","id":1},
            {"jsonrpc":"2.0","method":"nosuchmethod","id":2},
            {"jsonrpc":"2.0","method":"getblockcount"},
            {"method":"getblockhash","params":[0],"id":3},
            {"method":"getblockhash","params":["x"],"id":4},
            17
        ]"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    let replies = v.as_array().expect("a batch answers an array");
    assert_eq!(replies.len(), 5, "one reply per non-notification: {v}");
    assert_eq!(replies[0], json!({"jsonrpc": "2.0", "result": 0, "id": 1}));
    assert_eq!(
        replies[1],
        json!({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 2})
    );
    assert_eq!(replies[2], json!({"result": REGTEST_GENESIS, "error": null, "id": 3}));
    assert_eq!(replies[3]["id"], json!(4));
    assert_eq!(rpc_outcome(&replies[3]).unwrap_err().0, -3);
    // (Core would also carry the previous item's id here, a quirk not worth copying.)
    assert_eq!(replies[4]["error"], json!({"code": -32600, "message": "Invalid Request object"}));
    assert_eq!(replies[4]["result"], Value::Null);

    // An empty batch answers an empty array (Core keeps this for old clients).
    let r = d.rpc_post("[]");
    assert_eq!((r.status, r.json()), (200, json!([])));
    // Only notifications: nothing to answer.
    let r = d.rpc_post(r#"[{"jsonrpc":"2.0","method":"getblockcount"},{"jsonrpc":"2.0","method":"uptime"}]"#);
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
}

#[test]
fn arguments_are_mapped_and_checked_like_core() {
    let d = Daemon::start(&[]);
    // Named parameters.
    assert_eq!(d.rpc_ok("getblockhash", json!({"height": 0})), json!(REGTEST_GENESIS));
    let hex = d.rpc_ok("getblockheader", json!({"blockhash": REGTEST_GENESIS, "verbose": false}));
    assert_eq!(hex, json!(serialize_hex(&regtest().genesis)));
    assert_eq!(d.rpc_err("getblockhash", json!({"height": 0, "foo": 1})), (-8, "Unknown named parameter foo".into()));
    assert_eq!(d.rpc_err("getblockcount", json!({"verbose": true})), (-8, "Unknown named parameter verbose".into()));
    // Wrong types: -3 with Core's per-position text.
    assert_eq!(
        d.rpc_err("getblockhash", json!(["0"])),
        (
            -3,
            "Wrong type passed:\n{\n    \"Position 1 (height)\": \"JSON value of type string is not of expected type number\"\n}"
                .into()
        )
    );
    let (code, msg) = d.rpc_err("getblockheader", json!([1, "yes"]));
    assert_eq!(code, -3);
    assert!(
        msg.contains("\"Position 1 (blockhash)\": \"JSON value of type number is not of expected type string\"")
            && msg.contains("\"Position 2 (verbose)\": \"JSON value of type string is not of expected type bool\""),
        "{msg}"
    );
    assert_eq!(d.rpc_err("setnetworkactive", json!(["no"])).0, -3);
    // Too many or too few: -1 with the method's help.
    assert_eq!(d.rpc_err("getblockcount", json!([1])), (-1, help_of(&d, "getblockcount") + "\n"));
    let (code, msg) = d.rpc_err("getblockhash", json!([]));
    assert_eq!(code, -1);
    assert!(msg.starts_with("getblockhash height\n"), "{msg}");
    let (code, msg) = d.rpc_err("getblockhash", json!([0, 1]));
    assert!(code == -1 && msg.starts_with("getblockhash height\n"), "{msg}");
    // Unknown methods and Core's data methods that a blocks-only node does not have.
    for m in ["nosuchmethod", "getrawmempool", "getrawtransaction", "sendrawtransaction", ""] {
        assert_eq!(d.rpc_err(m, json!([])), (-32601, "Method not found".into()), "{m}");
    }
}

#[test]
fn every_method_refuses_one_argument_too_many_with_its_help() {
    let mut d = Daemon::start(&[]);
    let arity = [
        ("getbestblockhash", 0),
        ("getblock", 2),
        ("getblockchaininfo", 0),
        ("getblockcount", 0),
        ("getblockhash", 1),
        ("getblockheader", 2),
        ("getchaintips", 0),
        ("help", 1),
        ("logging", 2),
        ("stop", 0),
        ("uptime", 0),
        ("submitblock", 2),
        ("addnode", 3),
        ("clearbanned", 0),
        ("disconnectnode", 2),
        ("getaddednodeinfo", 1),
        ("getaddrmaninfo", 0),
        ("getconnectioncount", 0),
        ("getdisconnects", 1),
        ("getnettotals", 0),
        ("getnetmsgstats", 1),
        ("getnetworkinfo", 0),
        ("getnodeaddresses", 2),
        ("getpeerinfo", 0),
        ("listbanned", 0),
        ("ping", 0),
        ("setban", 4),
        ("setnetworkactive", 1),
    ];
    for (method, n) in arity {
        let (code, msg) = d.rpc_err(method, Value::Array(vec![Value::Null; n + 1]));
        assert_eq!(code, -1, "{method}: {msg}");
        assert_eq!(msg.trim_end(), help_of(&d, method), "{method}");
    }
    // `stop` with an extra argument did not stop anything.
    assert!(d.try_wait().is_none(), "btcloopd exited");
    assert_eq!(d.rpc_ok("getblockcount", json!([])), json!(0));
}

// ---------------------------------------------------------------------------------------------
// Chain methods
// ---------------------------------------------------------------------------------------------

/// Feeds `batches` of headers through one scripted peer, then waits until the daemon's best
/// header is `tip` (the validated tip, `getbestblockhash`, does not move for headers).
fn feed(d: &Daemon, batches: &[&[Header]], tip: &Header) {
    let mut p = d.connect_ready();
    for b in batches {
        p.send(&NetworkMessage::Headers(b.to_vec()));
    }
    p.ping_pong(common::random_u64());
    let want = json!(tip.block_hash().to_string());
    let best_header = || {
        let tips = d.rpc_ok("getchaintips", json!([]));
        tips.as_array().into_iter().flatten().any(|t| t["hash"] == want)
    };
    assert!(poll_until(WAIT, best_header), "best header never became {want}: {}", d.rpc_ok("getchaintips", json!([])));
}

#[test]
fn chain_methods_show_fed_headers_and_a_fork() {
    let p = regtest();
    let genesis = p.genesis;
    // Trunk: real blocks at heights 1..=10; a lighter fork of 3 headers on height 5 (heights
    // 6..=8), headers only.
    let mut g = BlockGen::new(regtest());
    let blocks: Vec<bitcoin::Block> = (1..=10).map(|i| g.next_block(genesis.time + i, 0)).collect();
    let trunk: Vec<Header> = blocks.iter().map(|b| b.header).collect();
    let fork = mine_chain(&p, &trunk[4], 3, 12);
    let d = Daemon::start(&[]);

    // Before: genesis only.
    assert_eq!(d.rpc_ok("getblockcount", json!([])), json!(0));
    assert_eq!(d.rpc_ok("getbestblockhash", json!([])), json!(REGTEST_GENESIS));
    let tips = d.rpc_ok("getchaintips", json!([]));
    assert_eq!(tips, json!([{"height": 0, "hash": REGTEST_GENESIS, "branchlen": 0, "status": "active"}]));

    // Headers alone move "headers", not the validated chain.
    feed(&d, &[&trunk, &fork], &trunk[9]);
    let info = d.rpc_ok("getblockchaininfo", json!([]));
    assert_eq!((info["blocks"].clone(), info["headers"].clone()), (json!(0), json!(10)), "{info}");
    assert_eq!(d.rpc_ok("getblockcount", json!([])), json!(0));
    assert_eq!(d.rpc_err("getblockhash", json!([1])), (-8, "Block height out of range".into()));
    // The blocks make it the tip.
    for b in &blocks {
        assert_eq!(d.rpc_ok("submitblock", json!([serialize_hex(b)])), Value::Null);
    }
    let tip_hash = trunk[9].block_hash().to_string();
    assert_eq!(d.rpc_ok("getblockcount", json!([])), json!(10));
    assert_eq!(d.rpc_ok("getbestblockhash", json!([])), json!(tip_hash));
    let info = d.rpc_ok("getblockchaininfo", json!([]));
    assert_eq!(info["chain"], json!("regtest"), "{info}");
    assert_eq!((info["blocks"].clone(), info["headers"].clone()), (json!(10), json!(10)), "{info}");
    assert_eq!(info["bestblockhash"], json!(tip_hash));
    assert_eq!(info["time"], json!(trunk[9].time));
    assert_eq!(info["bits"], json!("207fffff"));
    assert_eq!(info["pruned"], json!(false));
    assert_eq!(info["chainwork"].as_str().map(str::len), Some(64), "{info}");
    for h in [0usize, 1, 5, 10] {
        let want = if h == 0 { genesis.block_hash() } else { trunk[h - 1].block_hash() };
        assert_eq!(d.rpc_ok("getblockhash", json!([h])), json!(want.to_string()), "height {h}");
    }
    for bad in [11, -1] {
        assert_eq!(d.rpc_err("getblockhash", json!([bad])), (-8, "Block height out of range".into()));
    }

    // Headers: verbose on the best chain, hex, and a side-branch header.
    let v = d.rpc_ok("getblockheader", json!([trunk[4].block_hash().to_string()]));
    assert_eq!(v["hash"], json!(trunk[4].block_hash().to_string()));
    assert_eq!((v["height"].clone(), v["confirmations"].clone()), (json!(5), json!(6)), "{v}");
    assert_eq!(v["previousblockhash"], json!(trunk[3].block_hash().to_string()));
    assert_eq!(v["nextblockhash"], json!(trunk[5].block_hash().to_string()));
    assert_eq!(v["merkleroot"], json!(trunk[4].merkle_root.to_string()));
    assert_eq!((v["time"].clone(), v["nonce"].clone()), (json!(trunk[4].time), json!(trunk[4].nonce)));
    assert_eq!((v["version"].clone(), v["versionHex"].clone()), (json!(0x2000_0000), json!("20000000")));
    let v = d.rpc_ok("getblockheader", json!([tip_hash, true]));
    assert_eq!(v["confirmations"], json!(1));
    assert!(v.get("nextblockhash").is_none(), "{v}");
    let v = d.rpc_ok("getblockheader", json!([REGTEST_GENESIS]));
    assert_eq!((v["height"].clone(), v["confirmations"].clone()), (json!(0), json!(11)));
    assert!(v.get("previousblockhash").is_none(), "{v}");
    assert_eq!(v["nTx"], json!(1), "a stored block's transactions");
    let v = d.rpc_ok("getblockheader", json!([fork[2].block_hash().to_string()]));
    assert_eq!((v["height"].clone(), v["confirmations"].clone()), (json!(8), json!(-1)), "{v}");
    assert_eq!(v["nTx"], json!(0), "a header without its block");
    assert!(v.get("nextblockhash").is_none(), "{v}");
    let hex = d.rpc_ok("getblockheader", json!([fork[0].block_hash().to_string(), false]));
    assert_eq!(hex, json!(serialize_hex(&fork[0])));

    // Errors.
    let unknown = "11".repeat(32);
    assert_eq!(d.rpc_err("getblockheader", json!([unknown])), (-5, "Block not found".into()));
    assert_eq!(
        d.rpc_err("getblockheader", json!(["abc"])),
        (-8, "blockhash must be of length 64 (not 3, for 'abc')".into())
    );
    let (code, msg) = d.rpc_err("getblockheader", json!(["zz".repeat(32)]));
    assert_eq!(code, -8);
    assert!(msg.starts_with("blockhash must be hexadecimal string (not 'zzzz"), "{msg}");

    // Tips: the active one and the lighter fork, highest first, with the fork's length.
    let tips = d.rpc_ok("getchaintips", json!([]));
    assert_eq!(
        tips,
        json!([
            {"height": 10, "hash": tip_hash, "branchlen": 0, "status": "active"},
            {"height": 8, "hash": fork[2].block_hash().to_string(), "branchlen": 3, "status": "headers-only"},
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// Control methods
// ---------------------------------------------------------------------------------------------

#[test]
fn uptime_and_help() {
    let d = Daemon::start(&[]);
    let up = d.rpc_ok("uptime", json!([]));
    assert!(up.as_u64().is_some_and(|s| s < 600), "{up}");
    std::thread::sleep(Duration::from_millis(1100));
    assert!(d.rpc_ok("uptime", json!([])).as_u64() > up.as_u64(), "uptime grows");

    let all = d.rpc_ok("help", json!([]));
    let all = all.as_str().expect("help is a string");
    assert!(all.starts_with("== Blockchain ==\ngetbestblockhash\n"), "{all}");
    for section in ["== Control ==", "== Network =="] {
        assert!(all.contains(section), "{all}");
    }
    let methods = [
        "getbestblockhash",
        "getblock \"blockhash\" ( verbosity )",
        "getblockchaininfo",
        "getblockcount",
        "getblockhash height",
        "getblockheader \"blockhash\" ( verbose )",
        "getchaintips",
        "help ( \"command\" )",
        "logging ( [\"include_category\",...] [\"exclude_category\",...] )",
        "stop",
        "uptime",
        "submitblock \"hexdata\" ( \"dummy\" )",
        "addnode \"node\" \"command\" ( v2transport )",
        "clearbanned",
        "disconnectnode ( \"address\" nodeid )",
        "getaddednodeinfo ( \"node\" )",
        "getaddrmaninfo",
        "getconnectioncount",
        "getdisconnects ( count )",
        "getnettotals",
        "getnetmsgstats ( [\"aggregate_by\",...] )",
        "getnetworkinfo",
        "getnodeaddresses ( count \"network\" )",
        "getpeerinfo",
        "listbanned",
        "ping",
        "setban \"subnet\" \"command\" ( bantime absolute )",
        "setnetworkactive state",
    ];
    for m in methods {
        assert!(all.lines().any(|l| l == m), "help lacks {m:?}:\n{all}");
    }
    assert_eq!(all.lines().filter(|l| !l.is_empty() && !l.starts_with("==")).count(), methods.len(), "{all}");
    let one = help_of(&d, "getblockhash");
    assert!(one.starts_with("getblockhash height\n\nReturns hash of block"), "{one}");
    assert!(one.contains("1. height    (numeric, required) The height index"), "{one}");
    assert_eq!(d.rpc_ok("help", json!(["getrawmempool"])), json!("help: unknown command: getrawmempool"));
    assert_eq!(d.rpc_ok("help", json!({"command": "stop"})), json!("stop\n\nRequest a graceful shutdown of btcloopd."));
    assert_eq!(d.rpc_err("help", json!([1])).0, -3);
}

#[test]
fn logging_switches_debug_categories_at_run_time() {
    let d = Daemon::start_quiet(&[]);
    assert_eq!(
        d.rpc_ok("logging", json!([])),
        json!({"cmpctblock": false, "http": false, "net": false, "rpc": false, "tor": false, "validation": false})
    );
    // Traffic while net is off leaves no [net] lines.
    let mut p = d.connect_ready();
    p.ping_pong(1);
    assert_eq!(d.log_count(" [net] "), 0, "{}", common::tail(&d.log(), 20));

    assert_eq!(
        d.rpc_ok("logging", json!([["net"]])),
        json!({"cmpctblock": false, "http": false, "net": true, "rpc": false, "tor": false, "validation": false})
    );
    p.ping_pong(2);
    d.wait_log_all(&[" [net] ", "received: ping"], WAIT);
    let mut q = d.connect_ready();
    q.ping_pong(3);
    d.wait_log_all(&[" [net] ", "received: version"], WAIT);

    assert_eq!(
        d.rpc_ok("logging", json!([[], ["net"]])),
        json!({"cmpctblock": false, "http": false, "net": false, "rpc": false, "tor": false, "validation": false})
    );
    let before = d.log_count(" [net] ");
    let mut r = d.connect_ready();
    r.ping_pong(4);
    p.ping_pong(5);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(d.log_count(" [net] "), before, "{}", common::tail(&d.log(), 20));

    // "all" then exclude; the rpc category logs each call.
    let all = d.rpc_ok("logging", json!({"include": ["all"], "exclude": ["http", "net"]}));
    assert_eq!(
        all,
        json!({"cmpctblock": true, "http": false, "net": false, "rpc": true, "tor": true, "validation": true})
    );
    d.rpc_ok("uptime", json!([]));
    d.wait_log_all(&[" [rpc] ", "ThreadRPCServer method=uptime"], WAIT);

    // Unknown category: -8, and nothing changes.
    assert_eq!(d.rpc_err("logging", json!([["net", "foo"]])), (-8, "unknown logging category foo".into()));
    assert_eq!(d.rpc_err("logging", json!([[], ["bar"]])), (-8, "unknown logging category bar".into()));
    assert_eq!(
        d.rpc_ok("logging", json!([])),
        json!({"cmpctblock": true, "http": false, "net": false, "rpc": true, "tor": true, "validation": true})
    );
    assert_eq!(d.rpc_err("logging", json!(["net"])).0, -3);
}
