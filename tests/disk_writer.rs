//! The disk-writer thread, in process: with the writer held at its gate the message handler
//! still accepts and serves headers and answers pings (so it does not write or `fdatasync`
//! `headers.dat` itself), nothing reaches the file until the writer runs, and `Node::stop`
//! returns only after the writer has drained `headers.dat` and `peers.dat`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::GetHeadersMessage;
use btcloop::base::chainparams::Network;
use btcloop::daemon::config::{Config, LogConfig, RpcConfig};
use btcloop::daemon::node::disk_writer::Gate;
use btcloop::daemon::node::{Hooks, Node};
use btcloop::engine::addrman::{AddrMan, NetGroupRule};
use btcloop::engine::chain::mine::mine_chain;
use btcloop::engine::chain::params::ChainParams;
use btcloop::engine::chain::store::HeaderStore;
use common::{RawPeer, free_port};

fn config(dir: &std::path::Path, port: u16) -> Config {
    Config {
        network: Network::Regtest,
        datadir: dir.to_path_buf(),
        listen: true,
        bind: vec![SocketAddr::from(([127, 0, 0, 1], port))],
        // No automatic connections, no seeds: the test's raw peer is the only one.
        connect: vec!["0".into()],
        dnsseed: false,
        fixed_seeds: false,
        rpc: RpcConfig { server: false, ..RpcConfig::default() },
        log: LogConfig { print_to_console: false, to_file: false, ..LogConfig::default() },
        ..Config::default()
    }
}

#[test]
fn headers_and_peers_are_written_by_the_writer_thread_and_stop_drains_it() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("regtest");
    let port = free_port();
    let gate = Gate::new(true);
    let node = Node::start_gated(&config(dir.path(), port), Hooks::default(), Some(gate.clone())).expect("starts");
    let addr = node.listen_addrs()[0];
    // Created at start (on the starting thread); removed so the shutdown dump must make it again.
    std::fs::remove_file(net.join("peers.dat")).expect("peers.dat created at start");

    let params = ChainParams::new(Network::Regtest);
    let headers = mine_chain(&params, &params.genesis, 30, 11);
    let mut p = RawPeer::connect(addr);
    let hs = p.handshake();
    p.send(&NetworkMessage::Pong(hs.ping_nonce));
    p.send(&NetworkMessage::Headers(headers.clone()));
    // The handler accepted them (it serves them back) and still answers pings, with the
    // writer held: the write and its fdatasync are not on the message-handler thread.
    p.keep_getheaders = true;
    let ask = GetHeadersMessage {
        version: 70016,
        locator_hashes: vec![params.genesis.block_hash()],
        stop_hash: btcloop::engine::chain::tree::no_stop(),
    };
    p.send(&NetworkMessage::GetHeaders(ask));
    let Some(NetworkMessage::Headers(served)) = p.recv_until("headers", Duration::from_secs(10)) else {
        panic!("no headers answer while the writer is held")
    };
    assert_eq!(served, headers);
    p.ping_pong(77);
    assert!(!net.join("headers.dat").exists(), "headers.dat written without the writer thread");
    assert!(!net.join("peers.dat").exists());

    // Stop waits for the writer: it cannot finish while the gate is closed.
    let stopper = std::thread::spawn(move || node.stop());
    std::thread::sleep(Duration::from_millis(500));
    assert!(!stopper.is_finished(), "stop returned before the writer drained its queue");
    gate.set_closed(false);
    stopper.join().expect("stop");

    let (_, loaded) = HeaderStore::open(&net.join("headers.dat"), Network::Regtest.magic()).expect("open");
    assert_eq!(loaded.headers, headers, "every accepted header is on disk after stop");
    AddrMan::load(&net.join("peers.dat"), Network::Regtest.magic(), 1, NetGroupRule::Core)
        .expect("peers.dat written at shutdown by the writer");
}
