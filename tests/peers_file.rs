//! `peers.dat`: created at the first start, written at shutdown, and Core's handling of a
//! damaged file (a clear error naming it) or one of another version (backed up, recreated).

mod common;

use std::fs;

use common::*;
use serde_json::json;

#[test]
fn peers_file_is_created_kept_and_a_corrupt_one_stops_the_start() {
    let d = Daemon::start(&[]);
    let path = d.net_dir().join("peers.dat");
    assert!(path.exists(), "peers.dat is created at the first start");
    let info = d.rpc_ok("getaddrmaninfo", json!([]));
    assert_eq!(info["all_networks"], json!({"new": 0, "tried": 0, "total": 0}));
    let mut d = d.restart(&[]);
    assert!(d.log().contains("Loaded 0 addresses from peers.dat"), "{}", tail(&d.log(), 10));
    assert!(d.sigterm_and_wait(WAIT).success());
    assert!(path.exists(), "peers.dat is written at shutdown");

    // One flipped byte: the start fails with Core's message naming the file.
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let datadir = d.net_dir().parent().unwrap().to_path_buf();
    fs::write(&path, &bytes).unwrap();
    let (status, err) = run_to_exit(&["--regtest", &format!("--datadir={}", datadir.display()), "--port=0"]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("Invalid or corrupt peers.dat") && err.contains("peers.dat"), "{err}");
    assert!(err.contains("move the file out of the way"), "{err}");
}

#[test]
fn a_peers_file_of_another_version_is_backed_up_and_replaced() {
    let dir = Daemon::new_dir();
    let net = dir.path().join("regtest");
    fs::create_dir_all(&net).unwrap();
    let mut old = b"btcloopA".to_vec();
    old.push(99); // a format version this build does not read
    old.extend_from_slice(&[0u8; 40]);
    fs::write(net.join("peers.dat"), &old).unwrap();
    let d = Daemon::start_in(dir, &[]);
    d.wait_log("Original backed up to peers.dat.bak", WAIT);
    assert_eq!(fs::read(d.net_dir().join("peers.dat.bak")).unwrap(), old);
    assert_eq!(d.rpc_ok("getnodeaddresses", json!([0])), json!([]));
}
