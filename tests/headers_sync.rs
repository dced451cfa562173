//! Headers sync between btcloopd processes over loopback: a 20,000-header sync from zero, a
//! reorg to a heavier branch, invalid headers from a scripted peer, restart from the store and
//! recovery of a truncated store.

mod common;

use std::fs::OpenOptions;
use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::GetHeadersMessage;
use btcloop::base::chainparams::Network;
use btcloop::engine::chain::mine::mine_chain;
use btcloop::engine::chain::params::ChainParams;
use btcloop::engine::chain::store::HeaderStore;
use common::Daemon;
use serde_json::json;
use tempfile::TempDir;

const SYNC_WAIT: Duration = Duration::from_secs(60);

fn regtest() -> ChainParams {
    ChainParams::new(Network::Regtest)
}

/// A data directory whose header store already holds `headers`.
fn dir_with(headers: &[Header]) -> TempDir {
    let dir = Daemon::new_dir();
    let net = dir.path().join("regtest");
    std::fs::create_dir_all(&net).unwrap();
    let (mut store, loaded) = HeaderStore::open(&net.join("headers.dat"), Network::Regtest.magic()).unwrap();
    assert!(loaded.headers.is_empty());
    store.append(headers);
    store.flush().unwrap();
    dir
}

/// The daemon's best chain as a raw peer sees it: the last header it serves after `from`.
fn served_tip(d: &Daemon, from: &Header) -> Header {
    let mut p = d.connect_ready();
    p.keep_getheaders = true;
    let mut last = *from;
    loop {
        let ask = GetHeadersMessage {
            version: 70016,
            locator_hashes: vec![last.block_hash()],
            stop_hash: btcloop::engine::chain::tree::no_stop(),
        };
        p.send(&NetworkMessage::GetHeaders(ask));
        let Some(NetworkMessage::Headers(h)) = p.recv_until("headers", Duration::from_secs(10)) else {
            panic!("no headers answer")
        };
        match h.last() {
            Some(l) => last = *l,
            None => return last,
        }
        if h.len() < 2000 {
            return last;
        }
    }
}

#[test]
fn second_node_syncs_20000_headers_from_zero_and_resumes_after_restart() {
    let p = regtest();
    let chain = mine_chain(&p, &p.genesis, 20_000, 1);
    let a = Daemon::start_in(dir_with(&chain), &[]);
    a.wait_log("Loaded 20000 headers", Duration::from_secs(10));
    let b = Daemon::start(&[&format!("--connect=127.0.0.1:{}", a.port), "--listen=1"]);
    b.wait_log("Synchronizing blockheaders, height: 20000 ", SYNC_WAIT);
    assert_eq!(served_tip(&b, &p.genesis), chain[19_999]);
    // Ten full batches of 2,000 were asked for, one at a time.
    assert!(b.log_count("more getheaders") >= 9, "{}", common::tail(&b.log(), 20));
    // Restart: the chain comes back from the store, nothing is asked again from zero.
    let b = b.restart(&["--listen=1"]);
    b.wait_log("Loaded 20000 headers", Duration::from_secs(10));
    assert_eq!(served_tip(&b, &p.genesis), chain[19_999]);
}

#[test]
fn node_reorgs_to_a_heavier_branch() {
    let p = regtest();
    let trunk = mine_chain(&p, &p.genesis, 10, 2);
    let light = mine_chain(&p, &trunk[9], 20, 3);
    let heavy = mine_chain(&p, &trunk[9], 25, 4);
    let a = Daemon::start_in(dir_with(&[trunk.clone(), light.clone()].concat()), &[]);
    assert_eq!(served_tip(&a, &p.genesis), light[19]);
    let b = Daemon::start_in(dir_with(&[trunk.clone(), heavy.clone()].concat()), &[]);
    // A learns B's branch: 35 headers of work beat 30.
    let a = a.restart(&[&format!("--addnode=127.0.0.1:{}", b.port)]);
    a.wait_log("Synchronizing blockheaders, height: 35 ", SYNC_WAIT);
    assert_eq!(served_tip(&a, &p.genesis), heavy[24]);
    // The lighter branch stays stored (a side branch) and survives a restart, the best tip too.
    let a = a.restart(&[]);
    a.wait_log("Loaded 55 headers", Duration::from_secs(10));
    assert_eq!(served_tip(&a, &p.genesis), heavy[24]);
}

#[test]
fn invalid_headers_disconnect_the_sender_and_are_not_stored_and_future_ones_are_only_refused() {
    let p = regtest();
    let chain = mine_chain(&p, &p.genesis, 5, 5);
    let d = Daemon::start(&[]);
    // Bad proof of work.
    let mut bad = chain.clone();
    while btcloop::engine::chain::pow::check_proof_of_work(bad[2].block_hash(), bad[2].bits, &p) {
        bad[2].nonce += 1;
    }
    let mut peer = d.connect_ready();
    peer.send(&NetworkMessage::Headers(bad));
    assert!(peer.is_closed(Duration::from_secs(10)));
    d.wait_log("misbehaving: header with invalid proof of work", Duration::from_secs(10));
    // Time too far ahead (mined, so PoW holds): refused, but as Core's BLOCK_TIME_FUTURE its
    // sender stays connected and unpunished (our clock may be the slow one).
    let future = btcloop::engine::chain::mine::mine_child(&p, &chain[1], 4_000_000_000, 9);
    let mut peer = d.connect_ready();
    peer.send(&NetworkMessage::Headers(vec![chain[0], chain[1], future]));
    d.wait_log("not accepted: time-too-new", Duration::from_secs(10));
    peer.ping_pong(common::random_u64());
    assert!(!d.log().contains("misbehaving: invalid header received"), "{}", common::tail(&d.log(), 20));
    // Only the two valid headers before it were stored.
    assert_eq!(served_tip(&d, &p.genesis), chain[1]);
}

/// A peer whose headers move our best chain forward is marked with the time (Core's
/// `m_last_block_time`, which also protects it from inbound eviction), shown as `getpeerinfo`'s
/// `last_block`; a peer that gave us nothing shows 0.
#[test]
fn a_peer_that_moves_our_chain_forward_shows_it_as_last_block() {
    let p = regtest();
    let chain = mine_chain(&p, &p.genesis, 3, 11);
    let d = Daemon::start(&[]);
    let mut idle = d.connect_ready();
    let mut giver = d.connect_ready();
    let before = btcloop::base::time::unix_now();
    giver.send(&NetworkMessage::Headers(chain.clone()));
    giver.ping_pong(common::random_u64()); // the headers were processed before the pong
    idle.ping_pong(common::random_u64());
    let after = btcloop::base::time::unix_now();
    assert_eq!(served_tip(&d, &p.genesis), chain[2]);
    let peers = d.rpc_ok("getpeerinfo", json!([]));
    let marks: Vec<i64> = peers.as_array().expect("array").iter().filter_map(|p| p["last_block"].as_i64()).collect();
    assert!(marks.len() >= 2, "both peers listed: {peers}");
    let given: Vec<i64> = marks.iter().copied().filter(|&t| t != 0).collect();
    assert_eq!(given.len(), 1, "exactly the giver is marked: {peers}");
    assert!((before..=after).contains(&given[0]), "{} not in {before}..={after}", given[0]);
}

#[test]
fn truncated_store_is_recovered_at_start() {
    let p = regtest();
    let chain = mine_chain(&p, &p.genesis, 300, 6);
    let dir = dir_with(&chain);
    let path = dir.path().join("regtest/headers.dat");
    let len = std::fs::metadata(&path).unwrap().len();
    // A crash mid-write: the last record is torn.
    OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 30).unwrap();
    let d = Daemon::start_in(dir, &[]);
    d.wait_log("dropped a torn tail of 54 bytes", Duration::from_secs(10));
    d.wait_log("Loaded 299 headers", Duration::from_secs(10));
    assert_eq!(served_tip(&d, &p.genesis), chain[298]);
}
