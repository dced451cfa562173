//! DNS seeding against a resolver stub, in process (these machines must never query the real
//! seeds): on mainnet with an empty address book the node asks every one of Core's seeds for
//! `x9.<seed>` at once and files the answers with the seeds' service bits and a 3–7 day age;
//! with `--dnsseed=0` or `--connect` it asks none; with `--proxy` it looks nothing up and asks
//! each seed's node through the proxy instead (Core's name proxy).

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::p2p::ServiceFlags;
use btcloop::base::chainparams::Network;
use btcloop::daemon::config::{Config, LogConfig, RpcConfig};
use btcloop::daemon::node::{Hooks, Node};
use btcloop::engine::addrman::{AddrMan, AddrNetwork, NetGroupRule};
use btcloop::engine::policy::seeds::dns_seeds;
use parking_lot::Mutex;

fn config(dir: &std::path::Path) -> Config {
    Config {
        network: Network::Main,
        datadir: dir.to_path_buf(),
        listen: false,
        rpc: RpcConfig { server: false, ..RpcConfig::default() },
        log: LogConfig { print_to_console: false, to_file: false, ..LogConfig::default() },
        fixed_seeds: false,
        // The stub answers with loopback addresses: only the test rule files them, and the
        // node's dials then stay on loopback.
        loopback_netgroups: true,
        only_net: vec![AddrNetwork::Ipv4],
        ..Config::default()
    }
}

/// A resolver stub that records the names asked and answers three loopback addresses per seed.
fn stub() -> (btcloop::daemon::net::seeder::Resolver, Arc<Mutex<Vec<String>>>) {
    let asked = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = asked.clone();
    let resolver: btcloop::daemon::net::seeder::Resolver = Arc::new(move |host: &str| {
        let mut names = log.lock();
        names.push(host.to_string());
        let n = names.len() as u8;
        Ok((0..3).map(|i| IpAddr::V4(Ipv4Addr::new(127, 1, n, 10 + i))).collect())
    });
    (resolver, asked)
}

fn run(cfg: &Config, within: Duration, wait: impl Fn(&[String]) -> bool) -> Vec<String> {
    let (resolver, asked) = stub();
    let node = Node::start(cfg, Hooks { resolver: Some(resolver), ..Hooks::default() }).expect("node starts");
    let deadline = std::time::Instant::now() + within;
    while !wait(&asked.lock()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the message handler file the last answer.
    std::thread::sleep(Duration::from_millis(300));
    node.stop();
    let names: Vec<String> = asked.lock().to_vec();
    names
}

#[test]
fn an_empty_book_asks_every_seed_at_once_and_files_the_answers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let seeds = dns_seeds(Network::Main);
    let asked = run(&cfg, Duration::from_secs(10), |names| names.len() >= seeds.len());
    let mut expected: Vec<String> = seeds.iter().map(|s| format!("x9.{s}")).collect();
    let mut got = asked.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "Core's seeds, each with the x9 service-bits subdomain, once");

    let book = AddrMan::load(&dir.path().join("peers.dat"), Network::Main.magic(), 1, NetGroupRule::LoopbackPerAddress)
        .expect("peers.dat written at shutdown");
    // Every answer is filed (a rare new-table collision may drop one, as in Core).
    let filed = book.size(None, None);
    assert!((3 * seeds.len() - 2..=3 * seeds.len()).contains(&filed), "{filed} filed");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    for (info, _) in book.entries(false) {
        assert_eq!(info.entry.services, ServiceFlags::NETWORK | ServiceFlags::WITNESS);
        let age = now - info.entry.time;
        assert!((3 * 86_400 - 60..=7 * 86_400 + 60).contains(&age), "age {age} s");
    }
}

#[test]
fn dnsseed_off_or_connect_asks_no_seed() {
    let dir = tempfile::tempdir().unwrap();
    let off = Config { dnsseed: false, ..config(dir.path()) };
    assert!(run(&off, Duration::from_secs(2), |_| false).is_empty(), "--dnsseed=0");

    let dir = tempfile::tempdir().unwrap();
    let connect = Config { connect: vec!["127.0.0.1:1".into()], ..config(dir.path()) };
    assert!(run(&connect, Duration::from_secs(2), |_| false).is_empty(), "--connect turns automatic connections off");
}

#[test]
fn with_a_proxy_no_seed_is_looked_up_and_each_is_asked_through_the_proxy() {
    use btcloop::daemon::net::proxy::ProxyConfig;
    // The tests' proxy knows no names: it answers each "host unreachable", never resolving.
    let proxy = common::socks5::Socks5Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let via = ProxyConfig { proxy: Some(proxy.addr), onion: Some(proxy.addr), randomize: true };
    let cfg = Config { proxy: via, ..config(dir.path()) };
    let seeds: Vec<String> = dns_seeds(Network::Main).iter().map(|s| s.trim_end_matches('.').to_string()).collect();
    let (resolver, asked) = stub();
    let node = Node::start(&cfg, Hooks { resolver: Some(resolver), ..Hooks::default() }).expect("node starts");
    let through_proxy = || {
        let mut names: Vec<String> = proxy.requests().into_iter().map(|r| r.dest).collect();
        names.sort();
        names.dedup();
        names
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while through_proxy().len() < seeds.len() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    node.stop();
    let mut want = seeds.clone();
    want.sort();
    assert_eq!(through_proxy(), want, "every seed's own name, to the proxy, on port 8333");
    assert!(proxy.requests().iter().all(|r| r.atyp == 3 && r.port == 8333), "{:?}", proxy.requests());
    assert!(asked.lock().is_empty(), "nothing looked up: {:?}", asked.lock());
}
