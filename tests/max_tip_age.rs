//! `--maxtipage` (Core's `-maxtipage`): `getblockchaininfo`'s `initialblockdownload` follows
//! the age of the tip (the last validated block) against it, from the command line or
//! `btcloop.conf`.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::p2p::message::NetworkMessage;
use btcloop::base::chainparams::Network;
use btcloop::engine::chain::blockgen::{assemble, coinbase, subsidy};
use btcloop::engine::chain::mine::mine_child;
use btcloop::engine::chain::params::ChainParams;
use common::{Daemon, WAIT, poll_until, run_to_exit};
use serde_json::json;

fn ibd(d: &Daemon) -> serde_json::Value {
    d.rpc_ok("getblockchaininfo", json!([]))["initialblockdownload"].clone()
}

#[test]
fn initial_block_download_follows_maxtipage() {
    // The regtest genesis is from 2011: older than a day, not older than 2^32 - 1 seconds.
    let d = Daemon::start(&[]);
    assert_eq!(ibd(&d), json!(true), "default 24 h");
    drop(d);
    let d = Daemon::start(&["--maxtipage=4294967295"]);
    assert_eq!(ibd(&d), json!(false), "genesis is younger than the maximum age");
    drop(d);

    // Two hours of maximum age: genesis is too old; a block from an hour ago is recent.
    let d = Daemon::start(&["--maxtipage=7200"]);
    assert_eq!(ibd(&d), json!(true));
    let params = ChainParams::new(Network::Regtest);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let time = u32::try_from(now - 3600).unwrap();
    // A header alone does not end it: the tip is the last validated block.
    let mut p = d.connect_ready();
    p.send(&NetworkMessage::Headers(vec![mine_child(&params, &params.genesis, time, 1)]));
    p.ping_pong(common::random_u64());
    assert_eq!(ibd(&d), json!(true), "a header is not a validated block");
    let recent = assemble(&params, &params.genesis, time, vec![coinbase(1, subsidy(&params, 1))]);
    let hex = bitcoin::consensus::encode::serialize_hex(&recent);
    assert_eq!(d.rpc_ok("submitblock", json!([hex])), json!(null));
    assert!(
        poll_until(WAIT, || ibd(&d) == json!(false)),
        "still in initial download with a block an hour old: {}",
        d.rpc_ok("getblockchaininfo", json!([]))
    );
}

#[test]
fn maxtipage_from_the_configuration_file_and_bad_values() {
    let dir = Daemon::new_dir();
    std::fs::write(dir.path().join("btcloop.conf"), "[regtest]\nmaxtipage=4294967295\n").unwrap();
    let d = Daemon::start_in(dir, &[]);
    assert_eq!(ibd(&d), json!(false), "maxtipage from btcloop.conf");
    drop(d);
    for bad in ["0", "-1", "4294967296", "1h"] {
        let dir = Daemon::new_dir();
        let (status, stderr) =
            run_to_exit(&["--regtest", &format!("--datadir={}", dir.path().display()), &format!("--maxtipage={bad}")]);
        assert_eq!(status.code(), Some(1), "{bad}: {stderr}");
        assert!(stderr.contains("maxtipage"), "{bad}: {stderr}");
    }
}
