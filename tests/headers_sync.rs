//! Headers sync over loopback: a 20,000-header sync from zero, a reorg to a heavier branch,
//! invalid headers from a scripted peer, restart from the store and recovery of a truncated
//! store. The chains are headers only, so they come from scripted peers (a btcloopd serves
//! `getheaders` from the blocks it validated, as Core does; `tests/blocks_sync.rs` syncs
//! btcloopd from btcloopd).

mod common;

use std::fs::OpenOptions;
use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::p2p::message::NetworkMessage;
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

/// The daemon's best header (it validates no blocks here, so this is not its tip): the
/// highest tip `getchaintips` lists that is not invalid.
fn best_header(d: &Daemon) -> bitcoin::BlockHash {
    let tips = d.rpc_ok("getchaintips", json!([]));
    let best = tips
        .as_array()
        .expect("array")
        .iter()
        .filter(|t| t["status"] != json!("invalid"))
        .max_by_key(|t| t["height"].as_u64())
        .and_then(|t| t["hash"].as_str())
        .expect("a tip");
    best.parse().expect("hash")
}

/// A scripted peer the daemon dials, serving `chain` (headers on genesis) to `getheaders` as
/// Core does, in batches of 2,000 after the locator's fork point, until the daemon hangs up or
/// `limit` passes. A btcloopd serves only blocks it validated, so these header-only chains
/// come from a scripted peer.
fn serve_headers(
    listener: std::net::TcpListener,
    genesis: bitcoin::BlockHash,
    chain: Vec<Header>,
    limit: Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut p = common::RawPeer::from_stream(common::accept_within(&listener, Duration::from_secs(30)));
        p.keep_getheaders = true;
        p.expect("version");
        let mut v = common::version_msg(common::PROTOCOL_VERSION, "/headerserver:1.0/", common::random_u64());
        v.services = bitcoin::p2p::ServiceFlags::NETWORK | bitcoin::p2p::ServiceFlags::WITNESS;
        v.start_height = chain.len() as i32;
        p.send(&NetworkMessage::Version(v));
        p.send(&NetworkMessage::Verack);
        let position: std::collections::HashMap<bitcoin::BlockHash, usize> =
            chain.iter().enumerate().map(|(i, h)| (h.block_hash(), i + 1)).chain([(genesis, 0)]).collect();
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            match p.recv_timeout(Duration::from_millis(200)) {
                Some(NetworkMessage::GetHeaders(g)) => {
                    let start = g.locator_hashes.iter().find_map(|h| position.get(h)).copied().unwrap_or(0);
                    let end = (start + 2000).min(chain.len());
                    p.send(&NetworkMessage::Headers(chain[start..end].to_vec()));
                }
                Some(NetworkMessage::Ping(n)) => p.send(&NetworkMessage::Pong(n)),
                Some(_) => {}
                None if p.closed() => break,
                None => {}
            }
        }
    })
}

#[test]
fn a_node_syncs_20000_headers_from_zero_and_resumes_after_restart() {
    let p = regtest();
    let chain = mine_chain(&p, &p.genesis, 20_000, 1);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = serve_headers(listener, p.genesis.block_hash(), chain.clone(), SYNC_WAIT);
    // The scripted header server speaks v1 only.
    let b = Daemon::start(&["--v2transport=0", &format!("--connect=127.0.0.1:{port}"), "--listen=1"]);
    b.wait_log("Synchronizing blockheaders, height: 20000 ", SYNC_WAIT);
    assert_eq!(best_header(&b), chain[19_999].block_hash());
    // Ten full batches of 2,000 were asked for, one at a time.
    assert!(b.log_count("more getheaders") >= 9, "{}", common::tail(&b.log(), 20));
    // Restart: the chain comes back from the store, nothing is asked again from zero.
    let b = b.restart(&["--v2transport=0", "--listen=1"]);
    b.wait_log("Loaded 20000 headers", Duration::from_secs(10));
    assert_eq!(best_header(&b), chain[19_999].block_hash());
    drop(b);
    server.join().expect("server");
}

#[test]
fn node_reorgs_to_a_heavier_branch() {
    let p = regtest();
    let trunk = mine_chain(&p, &p.genesis, 10, 2);
    let light = mine_chain(&p, &trunk[9], 20, 3);
    let heavy = mine_chain(&p, &trunk[9], 25, 4);
    let a = Daemon::start_in(dir_with(&[trunk.clone(), light.clone()].concat()), &[]);
    assert_eq!(best_header(&a), light[19].block_hash());
    // A learns a peer's branch: 35 headers of work beat 30.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = serve_headers(listener, p.genesis.block_hash(), [trunk.clone(), heavy.clone()].concat(), SYNC_WAIT);
    let a = a.restart(&["--v2transport=0", &format!("--addnode=127.0.0.1:{port}")]);
    a.wait_log("Synchronizing blockheaders, height: 35 ", SYNC_WAIT);
    assert_eq!(best_header(&a), heavy[24].block_hash());
    // The lighter branch stays stored (a side branch) and survives a restart, the best tip too.
    let a = a.restart(&[]);
    a.wait_log("Loaded 55 headers", Duration::from_secs(10));
    assert_eq!(best_header(&a), heavy[24].block_hash());
    drop(a);
    server.join().expect("server");
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
    assert_eq!(best_header(&d), chain[1].block_hash());
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
    assert_eq!(best_header(&d), chain[2].block_hash());
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
    assert_eq!(best_header(&d), chain[298].block_hash());
}
