//! `btcloop-cli` against a real btcloopd: the "done when" — `btcloop-cli getpeerinfo`
//! shows the peers with Core's fields, `-netinfo` shows the dashboard, `-named` and `-rpcwait`
//! work, and errors come back with Core's codes and exit statuses.

mod common;

use std::process::{Command, Output, Stdio};

use common::{Daemon, WAIT, poll_until};
use serde_json::Value;

fn cli(d: &Daemon, args: &[&str]) -> Output {
    let datadir = d.net_dir().parent().map(|p| p.display().to_string()).unwrap_or_default();
    let port = d.rpc_addr().port().to_string();
    let mut all = vec!["-regtest".to_string(), format!("-datadir={datadir}"), format!("-rpcport={port}")];
    all.extend(args.iter().map(|s| s.to_string()));
    Command::new(env!("CARGO_BIN_EXE_btcloop-cli")).args(&all).stdin(Stdio::null()).output().expect("run btcloop-cli")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn getpeerinfo_and_netinfo_show_the_connected_peers() {
    let d = Daemon::start(&[]);
    let mut a = d.connect();
    a.handshake_as("/cli-test-a:1.0/");
    let mut b = d.connect();
    b.handshake_as("/cli-test-b:2.0/");
    assert!(poll_until(WAIT, || {
        let o = cli(&d, &["getconnectioncount"]);
        out(&o).trim() == "2"
    }));

    let o = cli(&d, &["getpeerinfo"]);
    assert!(o.status.success(), "{o:?}");
    let peers: Value = serde_json::from_str(&out(&o)).expect("getpeerinfo prints JSON");
    let peers = peers.as_array().expect("an array");
    assert_eq!(peers.len(), 2);
    for field in [
        "id",
        "addr",
        "addrbind",
        "network",
        "services",
        "relaytxes",
        "lastsend",
        "lastrecv",
        "bytessent",
        "bytesrecv",
        "conntime",
        "version",
        "subver",
        "inbound",
        "connection_type",
        "startingheight",
        "synced_headers",
        "bytessent_per_msg",
        "bytesrecv_per_msg",
    ] {
        assert!(peers.iter().all(|p| p.get(field).is_some()), "field {field} missing: {peers:?}");
    }
    let mut agents: Vec<&str> = peers.iter().filter_map(|p| p["subver"].as_str()).collect();
    agents.sort_unstable();
    assert_eq!(agents, ["/cli-test-a:1.0/", "/cli-test-b:2.0/"]);
    assert!(out(&o).starts_with("[\n  {\n    \"id\": "), "pretty-printed like bitcoin-cli:\n{}", out(&o));

    let o = cli(&d, &["-netinfo", "4"]);
    assert!(o.status.success(), "{o:?}");
    let text = out(&o);
    assert!(text.contains("/cli-test-a:1.0/") && text.contains("/cli-test-b:2.0/"), "{text}");
    let total_in = text.lines().find(|l| l.starts_with("in ")).unwrap_or_default().split_whitespace().last();
    assert_eq!(total_in, Some("2"), "the counts table shows two inbound peers:\n{text}");
}

#[test]
fn named_arguments_strings_and_errors_as_bitcoin_cli() {
    let d = Daemon::start(&[]);
    let genesis = out(&cli(&d, &["getblockhash", "0"])).trim().to_string();
    assert_eq!(genesis, "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206", "strings print raw");
    let o = cli(&d, &["-named", "getblockheader", &format!("blockhash={genesis}"), "verbose=false"]);
    assert!(out(&o).trim().starts_with("0100000000000000"), "{o:?}");

    // getblock exists now (blocks-only full node): the genesis block as Core's object.
    let o = cli(&d, &["getblock", &genesis]);
    assert!(o.status.success(), "{o:?}");
    let block: serde_json::Value = serde_json::from_slice(&o.stdout).expect("getblock prints JSON");
    assert_eq!(block["hash"], genesis.as_str());
    assert_eq!(block["nTx"], 1);

    // A method btcloopd does not have (no mempool).
    let o = cli(&d, &["getmempoolinfo"]);
    assert_eq!(o.status.code(), Some(32601 % 256), "exit status is |code| as the OS keeps it");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "error code: -32601\nerror message:\nMethod not found\n");

    let o = cli(&d, &["getblockhash", "99"]);
    assert_eq!(o.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Block height out of range"));

    let o = cli(&d, &["-rpcpassword=wrong", "uptime"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Authorization failed"), "{o:?}");
}

#[test]
fn stop_through_the_cli_ends_the_daemon() {
    let mut d = Daemon::start(&[]);
    let o = cli(&d, &["stop"]);
    assert_eq!(out(&o).trim(), "btcloopd stopping");
    assert!(poll_until(WAIT, || d.try_wait().is_some()), "btcloopd still running after stop");
    assert!(!d.cookie_path().exists(), "the cookie is removed at shutdown");
}
