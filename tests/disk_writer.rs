//! The disk-writer thread, in process: with the writer held at its gate the message handler
//! still accepts and serves headers and answers pings (so it does not write or `fdatasync`
//! `headers.dat` itself), nothing reaches the file until the writer runs, and `Node::stop`
//! returns only after the writer has drained `headers.dat` and `peers.dat`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use btcloop::base::chainparams::Network;
use btcloop::daemon::config::{Config, LogConfig, RpcConfig};
use btcloop::daemon::node::disk_writer::Gate;
use btcloop::daemon::node::{Hooks, Node};
use btcloop::engine::addrman::{AddrMan, NetGroupRule};
use btcloop::engine::chain::mine::mine_chain;
use btcloop::engine::chain::params::ChainParams;
use btcloop::engine::chain::store::HeaderStore;
use common::{PROTOCOL_VERSION, RawPeer, free_port, random_u64, version_msg};

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
    // A peer that serves blocks, so the node asks it for the blocks of headers it accepted.
    let mut p = RawPeer::connect(addr);
    let mut v = version_msg(PROTOCOL_VERSION, "/rawpeer:1.0/", random_u64());
    v.services = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
    p.send(&NetworkMessage::Version(v));
    assert!(p.recv_until("verack", Duration::from_secs(10)).is_some(), "no verack");
    p.send(&NetworkMessage::Verack);
    p.send(&NetworkMessage::Headers(headers.clone()));
    // The handler accepted them (it asks for their blocks) and still answers pings, with the
    // writer held: the write and its fdatasync are not on the message-handler thread.
    let Some(NetworkMessage::GetData(asked)) = p.recv_until("getdata", Duration::from_secs(10)) else {
        panic!("no getdata for the accepted headers while the writer is held")
    };
    assert_eq!(asked.first(), Some(&Inventory::WitnessBlock(headers[0].block_hash())));
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
