//! `btcloop-load --v2` end to end against a btcloopd over loopback: every mode that opens P2P
//! connections does its work over BIP324 v2, as the node's `getpeerinfo` shows while it runs,
//! and the modes that open none refuse the flag.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Daemon;
use serde_json::{Value, json};

const LOAD: &str = env!("CARGO_BIN_EXE_btcloop-load");
const WAIT: Duration = Duration::from_secs(30);
/// The longest a load-tool run may take here (it is killed after that and the test fails).
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// What the node's `getpeerinfo` showed of the load tool's connections while it ran.
#[derive(Default, Debug)]
struct Seen {
    /// `transport_protocol_type` of every handshaken load-tool connection seen.
    transports: BTreeSet<String>,
    /// Most handshaken load-tool connections seen at once.
    most: usize,
    /// Load-tool connections seen (by peer id) that the node had received at least this many
    /// bytes of unknown-type (`*other*`) messages from: peer id → largest count seen.
    other_bytes: std::collections::BTreeMap<u64, u64>,
}

impl Seen {
    /// Samples `getpeerinfo` once.
    fn sample(&mut self, d: &Daemon) {
        let Ok(list) = d.rpc("getpeerinfo", json!([])) else { return };
        let mine: Vec<&Value> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["version"].as_i64().unwrap_or(0) > 0)
            .filter(|p| p["subver"].as_str().is_some_and(|s| s.contains("btcloop-load")))
            .collect();
        self.most = self.most.max(mine.len());
        for p in mine {
            self.transports.insert(p["transport_protocol_type"].as_str().unwrap_or("?").to_string());
            let other = p["bytesrecv_per_msg"]["*other*"].as_u64().unwrap_or(0);
            if let Some(id) = p["id"].as_u64() {
                let e = self.other_bytes.entry(id).or_insert(0);
                *e = (*e).max(other);
            }
        }
    }
}

/// Runs `btcloop-load` with `args`, sampling `d`'s `getpeerinfo` every 20 ms while it runs and
/// calling `during` after each sample; returns its exit success, stdout, stderr and what was seen.
fn run_watched(d: &Daemon, args: &[&str], mut during: impl FnMut(&Seen)) -> (bool, String, String, Seen) {
    let mut child = Command::new(LOAD)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("btcloop-load starts");
    let mut pipes = (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
    let out = std::thread::spawn(move || {
        let (mut o, mut e) = (String::new(), String::new());
        let _ = pipes.0.read_to_string(&mut o);
        let _ = pipes.1.read_to_string(&mut e);
        (o, e)
    });
    let mut seen = Seen::default();
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("btcloop-load {args:?} ran longer than {RUN_LIMIT:?}");
        }
        seen.sample(d);
        during(&seen);
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = out.join().expect("reader thread");
    (status.success(), stdout, stderr, seen)
}

/// [`run_watched`] with `--connect` to `d`, which must succeed; its JSON line and what was seen.
fn load_watched(d: &Daemon, args: &[&str], during: impl FnMut(&Seen)) -> (Value, Seen) {
    let addr = d.addr.to_string();
    let mut all = vec!["--connect", addr.as_str()];
    all.extend_from_slice(args);
    let (ok, stdout, stderr, seen) = run_watched(d, &all, during);
    assert!(ok, "btcloop-load {args:?} failed:\n{stdout}{stderr}");
    let line = stdout.lines().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON line:\n{stdout}"));
    (serde_json::from_str(line).expect("JSON"), seen)
}

/// Runs `btcloop-load` against `d` with `args` after `--connect`; its JSON line.
fn load_tool(d: &Daemon, args: &[&str]) -> Value {
    load_watched(d, args, |_| {}).0
}

/// Builds `count` coinbase-only regtest blocks with `btcloop-load mkblocks` and loads them into
/// `d` through `submit`; returns the tip's hash.
fn load_blocks(d: &Daemon, count: u32) -> String {
    let dir = Daemon::new_dir();
    let file = dir.path().join("blocks.blk");
    let file = file.to_str().expect("utf-8 path");
    let run = |args: &[&str]| {
        let out = Command::new(LOAD).args(args).output().expect("btcloop-load runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        let line = stdout.lines().rfind(|l| l.starts_with('{')).expect("a JSON line").to_string();
        serde_json::from_str::<Value>(&line).expect("JSON")
    };
    let count = count.to_string();
    let made = run(&["mkblocks", "--kind", "coinbase", "--count", &count, "--out", file]);
    let rpc = d.rpc_addr().to_string();
    let cookie = d.cookie_path();
    let cookie = cookie.to_str().expect("utf-8 path");
    let sub = run(&["submit", "--rpc", &rpc, "--cookie", cookie, "--blocks", file, "--timeout", "60"]);
    assert_eq!(sub["tip"], made["tip"], "{sub}");
    made["tip"].as_str().expect("tip").to_string()
}

#[test]
fn the_load_tool_measures_ping_round_trips_and_throughput_over_v2() {
    let d = Daemon::start_quiet(&[]);
    let v = load_tool(&d, &["--v2", "latency", "--count", "200", "--warmup", "10"]);
    assert_eq!((&v["transport"], &v["count"]), (&json!("v2"), &json!(200)), "{v}");
    assert!(v["p50_us"].as_f64().is_some_and(|p| p > 0.0), "{v}");
    // The throughput mode over v2: pongs come back on every connection.
    let v = load_tool(&d, &["--v2", "ping", "--peers", "2", "--inflight", "4", "--duration", "1"]);
    assert_eq!(v["transport"], "v2", "{v}");
    assert!(v["pongs_per_sec"].as_f64().is_some_and(|p| p > 0.0), "{v}");
}

#[test]
fn headers_and_bigflood_run_over_v2_and_the_node_keeps_the_flooders() {
    // A mode that opens no P2P connection refuses the flag before doing anything.
    let dir = Daemon::new_dir();
    let datadir = dir.path().to_str().expect("utf-8 path");
    let out =
        Command::new(LOAD).args(["--v2", "mkchain", "--datadir", datadir, "--count", "5"]).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("`mkchain` mode: it opens no P2P connection"), "{stderr}");
    assert!(!dir.path().join("regtest").exists(), "nothing written");

    let d = Daemon::start(&[]);
    let tip = load_blocks(&d, 300);

    // headers: the chain walk and both measuring connections over v2, every response right.
    let (v, seen) = load_watched(
        &d,
        &["--v2", "headers", "--peers", "2", "--inflight", "2", "--duration", "1", "--warmup", "0.2", "--verify"],
        |_| {},
    );
    assert_eq!((&v["transport"], &v["tip_height"]), (&json!("v2"), &json!(300)), "{v}");
    assert!(v["headers"].as_u64().is_some_and(|h| h >= 300), "at least one full response: {v}");
    assert_eq!((&v["bad_responses"], &v["bad_checksums"], &v["disconnects"]), (&json!(0), &json!(0), &json!(0)), "{v}");
    assert!(v["checked"].as_u64().is_some_and(|c| c > 0), "{v}");
    assert_eq!(seen.transports, BTreeSet::from(["v2".to_string()]), "{seen:?}");
    assert!(seen.most >= 2, "the two measuring connections at once: {seen:?}");

    // bigflood: two flooders send 200,000-byte messages of an unknown type (long form over v2)
    // while a third connection pings; the node drops them and keeps every connection.
    let pid = d.pid().to_string();
    let size = 200_000u64;
    let (v, seen) = load_watched(
        &d,
        &[
            "--v2",
            "bigflood",
            "--peers",
            "2",
            "--size",
            "200000",
            "--duration",
            "1.5",
            "--settle",
            "0.5",
            "--pid",
            &pid,
        ],
        |_| {},
    );
    assert_eq!(v["transport"], "v2", "{v}");
    assert!(v["mb_sent"].as_f64().is_some_and(|m| m > 0.0), "{v}");
    assert_eq!(v["flooder_failures"], 0, "no flooder was disconnected: {v}");
    assert!(v["pings"].as_u64().is_some_and(|p| p > 0), "the node answered pings during the flood: {v}");
    assert_eq!(seen.transports, BTreeSet::from(["v2".to_string()]), "{seen:?}");
    assert!(seen.most >= 3, "two flooders and the pinging peer at once: {seen:?}");
    let flooders = seen.other_bytes.values().filter(|&&b| b >= size).count();
    assert!(flooders >= 1, "the node counted whole unknown messages from a flooder: {seen:?}");
    // The node decoded the long-form type with its exact size and did not drop anyone for it.
    d.wait_log(&format!("received: bigflood ({size} bytes)"), WAIT);
    // Every connection the node closed was closed by the tool (it ends without a goodbye).
    let log = d.log();
    let node_closed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("disconnected peer="))
        .filter(|l| !l.ends_with("socket closed by peer") && !l.contains("Connection reset by peer"))
        .collect();
    assert!(node_closed.is_empty(), "{node_closed:?}");
    // And it still answers, over v2 and RPC.
    let v = load_tool(&d, &["--v2", "latency", "--count", "20", "--warmup", "2"]);
    assert_eq!(v["transport"], "v2", "{v}");
    assert_eq!(d.rpc_ok("getblockchaininfo", json!([]))["bestblockhash"], json!(tip));
}

#[test]
fn ibd_mode_pings_over_v2_during_a_download() {
    let source = Daemon::start_quiet(&[]);
    let tip = load_blocks(&source, 200);
    // The downloading node has no peer until the pinging peer is in; then it gets its source.
    let dl = Daemon::start_quiet(&[]);
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs_f64();
    let (rpc, cookie, pid, since) =
        (dl.rpc_addr().to_string(), dl.cookie_path(), dl.pid().to_string(), format!("{since:.6}"));
    let cookie = cookie.to_str().expect("utf-8 path");
    let mut added = false;
    let (v, seen) = load_watched(
        &dl,
        &[
            "--v2",
            "ibd",
            "--rpc",
            &rpc,
            "--cookie",
            cookie,
            "--height",
            "200",
            "--tip",
            &tip,
            "--since",
            &since,
            "--pid",
            &pid,
            "--ping-from",
            "start",
            "--ping-gap-us",
            "0",
            "--timeout",
            "90",
            "--stall",
            "30",
        ],
        |seen| {
            if !added && seen.most >= 1 {
                dl.rpc_ok("addnode", json!([source.addr.to_string(), "onetry"]));
                added = true;
            }
        },
    );
    assert!(added, "the pinging peer was seen before the download: {seen:?}");
    assert_eq!((&v["transport"], &v["ok"], &v["reached"]), (&json!("v2"), &json!(true), &json!(200)), "{v}");
    assert!(v["pings"].as_u64().is_some_and(|p| p > 0), "{v}");
    assert_eq!(v["ping_error"], Value::Null, "{v}");
    assert_eq!(seen.transports, BTreeSet::from(["v2".to_string()]), "{seen:?}");
}
