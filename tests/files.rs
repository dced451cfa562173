//! The daemon's files end to end: owner-only modes of everything in the data directory, the ban
//! list (concurrent `setban`s, a `kill -9` right after an answer, a damaged file), and a damaged or altered `headers.dat` refusing the start with the file named.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::p2p::message::NetworkMessage;
use btcloop::base::chainparams::Network;
use btcloop::engine::chain::mine::mine_chain;
use btcloop::engine::chain::params::ChainParams;
use btcloop::engine::chain::store::{HeaderStore, MAX_WRITE_RECORDS};
use common::{Daemon, WAIT, poll_until, run_to_exit};
use serde_json::{Value, json};

fn regtest() -> ChainParams {
    ChainParams::new(Network::Regtest)
}

/// Every file and directory under `dir` with its permission bits.
fn modes(dir: &Path) -> Vec<(String, bool, u32)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let meta = e.metadata().expect("metadata");
            out.push((e.path().display().to_string(), meta.is_dir(), meta.permissions().mode() & 0o777));
            if meta.is_dir() {
                todo.push(e.path());
            }
        }
    }
    out.sort();
    out
}

fn assert_private(dir: &Path, when: &str) {
    let dir_mode = std::fs::metadata(dir).expect("net dir").permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700, "{when}: {} is {dir_mode:o}", dir.display());
    for (path, is_dir, mode) in modes(dir) {
        let want = if is_dir { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{when}: {path} has mode {mode:o}");
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into())
        .collect();
    n.sort();
    n
}

/// After a run with RPC, a ban, accepted headers, captured messages and a clean stop, every
/// file the daemon made in its data directory is 0600 and every directory 0700 (Core: umask
/// 077) — `peers.dat` holds the secret bucketing key, `.cookie` the RPC password.
#[test]
fn every_file_in_the_data_directory_is_owner_only() {
    let d = Daemon::start(&["--capturemessages"]);
    let net = d.net_dir();
    assert_eq!(d.rpc_ok("setban", json!(["127.0.0.7", "add"])), Value::Null);
    let mut p = d.connect_ready();
    let headers = mine_chain(&regtest(), &regtest().genesis, 20, 3);
    p.send(&NetworkMessage::Headers(headers.clone()));
    assert!(
        poll_until(WAIT, || d.rpc_ok("getblockchaininfo", json!([]))["headers"] == json!(20)),
        "headers not accepted"
    );
    assert!(poll_until(WAIT, || net.join("headers.dat").exists()), "headers.dat not written");
    let running = names(&net);
    for f in [
        ".cookie",
        ".lock",
        "banlist.json",
        "debug.log",
        "headers.dat",
        "peers.dat",
        "message_capture",
        "blocks",
        "chainstate",
    ] {
        assert!(running.contains(&f.to_string()), "{f} missing from {running:?}");
    }
    assert_private(&net, "while running");
    let mut d = d;
    let status = d.sigterm_and_wait(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert_private(&net, "after the stop");
}

/// Sixty `setban`s from six RPC clients at once, then a `kill -9`: every acknowledged ban is
/// in a valid `banlist.json` after the restart (the old writer shared one temporary name and
/// saved outside the lock, so concurrent saves corrupted the file or lost bans).
#[test]
fn concurrent_setbans_all_survive_a_kill_9() {
    let d = Daemon::start(&[]);
    std::thread::scope(|s| {
        for t in 0..6u8 {
            let d = &d;
            s.spawn(move || {
                for i in 0..10u8 {
                    let ip = format!("10.{t}.{i}.1");
                    assert_eq!(d.rpc_ok("setban", json!([ip, "add"])), Value::Null);
                }
            });
        }
    });
    let d = d.kill9_and_restart(&[]);
    assert!(!d.net_dir().join("banlist.json.bak").exists(), "the ban list was damaged: {}", d.log());
    let list = d.rpc_ok("listbanned", json!([]));
    assert_eq!(list.as_array().map(Vec::len), Some(60), "{list}");
}

/// A `setban` that was answered is on disk: SIGKILL right after the answer loses nothing.
#[test]
fn an_acknowledged_setban_survives_a_kill_9() {
    let d = Daemon::start(&[]);
    assert_eq!(d.rpc_ok("setban", json!(["127.0.0.9/30", "add", 5000])), Value::Null);
    let d = d.kill9_and_restart(&[]);
    let list = d.rpc_ok("listbanned", json!([]));
    assert_eq!(list[0]["address"], json!("127.0.0.8/30"), "{list}");
    assert_eq!(list[0]["ban_duration"], json!(5000), "{list}");
}

/// A damaged `banlist.json` no longer stops the node: it is logged, kept aside as
/// `banlist.json.bak`, and the node starts with no bans (Core recreates the ban list).
#[test]
fn a_damaged_ban_list_is_set_aside_and_the_node_starts() {
    let dir = Daemon::new_dir();
    let net = dir.path().join("regtest");
    std::fs::create_dir_all(&net).expect("mkdir");
    let garbage = b"{\"banned_nets\": [ {\"address\": \"1.2.3.4\", \"ban_cre";
    std::fs::write(net.join("banlist.json"), garbage).expect("write");
    let d = Daemon::start_in(dir, &[]);
    d.wait_log("Cannot load banlist", WAIT);
    assert_eq!(std::fs::read(d.net_dir().join("banlist.json.bak")).expect("kept aside"), garbage);
    assert_eq!(d.rpc_ok("listbanned", json!([])), json!([]));
    assert_eq!(d.rpc_ok("setban", json!(["127.0.0.3", "add"])), Value::Null);
    let d = d.restart(&[]);
    assert_eq!(d.rpc_ok("listbanned", json!([]))[0]["address"], json!("127.0.0.3/32"));
}

/// A data directory whose `headers.dat` holds `headers`, written by the store itself.
fn dir_with(headers: &[Header]) -> tempfile::TempDir {
    let dir = Daemon::new_dir();
    let net = dir.path().join("regtest");
    std::fs::create_dir_all(&net).expect("mkdir");
    let (mut store, _) = HeaderStore::open(&net.join("headers.dat"), Network::Regtest.magic()).expect("open");
    store.append(headers);
    store.flush().expect("flush");
    dir
}

fn start_refused(dir: &tempfile::TempDir) -> String {
    let datadir = format!("--datadir={}", dir.path().display());
    let (status, stderr) = run_to_exit(&["--regtest", &datadir, "--listen=0", "--server=0"]);
    assert!(!status.success(), "btcloopd started on a damaged headers.dat: {stderr}");
    stderr
}

/// Damage in the middle of `headers.dat` (intact records after it, before the last write)
/// refuses the start with a message naming the file, which is left as it was; before, the
/// node silently dropped every record after the damaged one.
#[test]
fn damage_in_the_middle_of_headers_dat_refuses_the_start() {
    let mut headers = vec![regtest().genesis];
    headers.extend(mine_chain(&regtest(), &regtest().genesis, MAX_WRITE_RECORDS as usize + 300, 5));
    let dir = dir_with(&headers);
    let path = dir.path().join("regtest/headers.dat");
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[24 + 100 * 84 + 10] ^= 0x40;
    std::fs::write(&path, &bytes).expect("write");
    let stderr = start_refused(&dir);
    assert!(stderr.contains(&path.display().to_string()) && stderr.contains("record 100"), "{stderr}");
    assert_eq!(std::fs::read(&path).expect("read"), bytes, "the file was modified");
}

/// A stored header whose proof of work fails (its record's checksum intact: the file was
/// altered) refuses the start; before, stored headers were inserted unchecked.
#[test]
fn a_header_without_its_proof_of_work_in_headers_dat_refuses_the_start() {
    let params = regtest();
    let mut headers = vec![params.genesis];
    headers.extend(mine_chain(&params, &params.genesis, 50, 6));
    // Change header 30's nonce until its hash misses the target.
    let h = &mut headers[30];
    while btcloop::engine::chain::pow::check_proof_of_work(h.block_hash(), h.bits, &params) {
        h.nonce = h.nonce.wrapping_add(1);
    }
    let dir = dir_with(&headers);
    let stderr = start_refused(&dir);
    assert!(stderr.contains("headers.dat") && stderr.contains("proof of work"), "{stderr}");
}

/// A torn tail (half a record and a zeroed one at the end) is still cut and the node starts
/// with every intact header.
#[test]
fn a_torn_tail_of_headers_dat_is_cut_and_the_node_starts() {
    let params = regtest();
    let mut headers = vec![params.genesis];
    headers.extend(mine_chain(&params, &params.genesis, 40, 8));
    let dir = dir_with(&headers);
    let path = dir.path().join("regtest/headers.dat");
    let mut bytes = std::fs::read(&path).expect("read");
    let len = bytes.len();
    bytes[len - 84..].fill(0);
    bytes.extend_from_slice(&[7u8; 40]);
    std::fs::write(&path, &bytes).expect("write");
    let d = Daemon::start_in(dir, &[]);
    d.wait_log("dropped a torn tail", WAIT);
    // The last header was cut: the best header is the one before it.
    assert_eq!(d.rpc_ok("getblockchaininfo", json!([]))["headers"], json!(39));
    let tip = headers[39].block_hash().to_string();
    assert_eq!(d.rpc_ok("getblockheader", json!([tip]))["height"], json!(39));
}
