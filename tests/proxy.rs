//! Outbound connections through a SOCKS5 proxy (`--proxy`, `--proxyrandomize`), end to end on
//! loopback with the tests' own proxy (`common::socks5`): the node reaches its peer only through
//! the proxy, gives it the destination as a name (an IP literal as text), offers new random
//! credentials per connection unless `--proxyrandomize=0`, and logs the proxy's refusal in words.

mod common;

use std::time::Duration;

use common::socks5::Socks5Server;
use common::*;
use serde_json::json;

fn peer_count(d: &Daemon) -> usize {
    d.rpc_ok("getpeerinfo", json!([])).as_array().map_or(0, |a| a.len())
}

#[test]
fn connect_goes_through_the_proxy_with_fresh_credentials_per_connection() {
    let target = Daemon::start(&[]);
    let proxy = Socks5Server::start(&[]);
    let a = Daemon::start(&[
        &format!("--proxy={}", proxy.addr),
        &format!("--connect={}", target.addr),
        &format!("--connect=127.0.0.1:{}", free_port()), // nobody there: the proxy refuses
    ]);
    assert!(poll_until(WAIT, || peer_count(&target) == 1), "the target never saw the node");
    let peer = &a.rpc_ok("getpeerinfo", json!([]))[0];
    assert_eq!(peer["addr"], json!(target.addr.to_string()), "the peer is the destination, not the proxy");
    assert_eq!(peer["transport_protocol_type"], "v2", "v2 runs inside the proxied connection: {peer}");
    a.wait_log("proxy could not connect: connection refused", WAIT);
    let reqs = proxy.requests();
    let to_target = reqs.iter().find(|r| r.port == target.port).expect("a request for the target");
    assert_eq!((to_target.atyp, to_target.dest.as_str()), (3, "127.0.0.1"), "an IP goes as a name, as Core sends it");
    assert_eq!(to_target.methods, [0, 2], "no authentication or username/password offered");
    let users: Vec<String> = reqs
        .iter()
        .filter_map(|r| {
            r.auth.as_ref().map(|(u, p)| {
                assert_eq!(u, p, "username and password are the same, as Core's");
                u.clone()
            })
        })
        .collect();
    assert!(users.len() >= 2, "{reqs:?}");
    let (prefix, _) = users[0].split_once('-').expect("PREFIX-COUNTER");
    assert!(prefix.len() == 16 && prefix.chars().all(|c| c.is_ascii_hexdigit()), "{users:?}");
    let distinct: std::collections::BTreeSet<_> = users.iter().collect();
    assert_eq!(distinct.len(), users.len(), "a new pair for every connection: {users:?}");
}

#[test]
fn without_randomize_no_credentials_are_offered_and_a_dead_proxy_is_reported() {
    let target = Daemon::start(&[]);
    let proxy = Socks5Server::start(&[]);
    let a = Daemon::start(&[
        &format!("--proxy={}", proxy.addr),
        "--proxyrandomize=0",
        &format!("--connect={}", target.addr),
    ]);
    assert!(poll_until(WAIT, || peer_count(&target) == 1));
    assert!(proxy.requests().iter().all(|r| r.methods == [0] && r.auth.is_none()), "{:?}", proxy.requests());
    drop(a);
    // A proxy nobody listens on: the connect fails with the proxy named, and no direct dial.
    let dead = free_port();
    let b = Daemon::start(&[&format!("--proxy=127.0.0.1:{dead}"), &format!("--connect={}", target.addr)]);
    b.wait_log(&format!("cannot connect to proxy 127.0.0.1:{dead}"), WAIT);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(peer_count(&b), 0, "never around the proxy");
}

/// A valid Tor v3 address (Core's netbase tests).
const ONION: &str = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion";

fn first_peer(d: &Daemon) -> serde_json::Value {
    assert!(poll_until(WAIT, || peer_count(d) == 1), "no peer");
    d.rpc_ok("getpeerinfo", json!([]))[0].clone()
}

#[test]
fn a_host_name_goes_to_the_proxy_unresolved_and_shows_as_named() {
    let target = Daemon::start(&[]);
    // The name does not exist in DNS: only the proxy knows it.
    let proxy = Socks5Server::start(&[("peer.btcloop.invalid", target.addr)]);
    let a = Daemon::start(&[&format!("--proxy={}", proxy.addr), "--connect=peer.btcloop.invalid:18444"]);
    let peer = first_peer(&a);
    assert_eq!(peer["addr"], json!("peer.btcloop.invalid:18444"), "{peer}");
    assert_eq!(peer["network"], json!("not_publicly_routable"), "{peer}");
    let r = &proxy.requests()[0];
    assert_eq!((r.atyp, r.dest.as_str(), r.port), (3, "peer.btcloop.invalid", 18444));
    assert!(!a.log().contains("cannot resolve"), "{}", tail(&a.log(), 20));
}

#[test]
fn an_onion_address_goes_through_the_onion_proxy_and_is_an_onion_peer() {
    let target = Daemon::start(&[]);
    let proxy = Socks5Server::start(&[(ONION, target.addr)]);
    // --onion only: onion addresses go through it, IP addresses are dialed directly.
    let direct = Daemon::start(&[]);
    let a = Daemon::start(&[
        &format!("--onion={}", proxy.addr),
        &format!("--connect={ONION}:8333"),
        &format!("--connect={}", direct.addr),
    ]);
    assert!(poll_until(WAIT, || peer_count(&a) == 2), "{}", tail(&a.log(), 20));
    let peers = a.rpc_ok("getpeerinfo", json!([]));
    let onion =
        peers.as_array().unwrap().iter().find(|p| p["addr"] == json!(format!("{ONION}:8333"))).expect("the onion peer");
    assert_eq!(onion["network"], json!("onion"), "{onion}");
    assert_eq!(onion["transport_protocol_type"], json!("v2"));
    let dests: Vec<String> = proxy.requests().into_iter().map(|r| r.dest).collect();
    assert_eq!(dests, [ONION.to_string()], "only the onion went through the proxy");
    let nets = a.rpc_ok("getnetworkinfo", json!([]))["networks"].clone();
    let onion = nets.as_array().unwrap().iter().find(|n| n["name"] == "onion").unwrap().clone();
    assert_eq!(
        onion,
        json!({"name": "onion", "limited": false, "reachable": true, "proxy": proxy.addr.to_string(), "proxy_randomize_credentials": true})
    );
    assert_eq!(nets[0]["proxy"], json!(""), "IPv4 goes direct: {nets}");
    // Without an onion proxy, the same address is refused with the reason.
    let b = Daemon::start(&[&format!("--connect={ONION}:8333")]);
    b.wait_log("the onion network is not reachable (set --onion or --proxy to reach it)", WAIT);
}

#[test]
fn peers_arriving_on_the_onion_listener_are_onion_peers() {
    let onion_port = free_port();
    let d = Daemon::start(&[&format!("--bind=127.0.0.1:{onion_port}=onion"), "--listenonion=0"]);
    d.wait_log(&format!("Bound to 127.0.0.1:{onion_port} (onion service target)"), WAIT);
    let mut p = RawPeer::connect(std::net::SocketAddr::from(([127, 0, 0, 1], onion_port)));
    p.handshake();
    let mut q = d.connect_ready();
    q.ping_pong(1);
    let peers = d.rpc_ok("getpeerinfo", json!([]));
    let mut nets: Vec<String> =
        peers.as_array().unwrap().iter().map(|p| p["network"].as_str().unwrap().to_string()).collect();
    nets.sort();
    assert_eq!(nets, ["not_publicly_routable", "onion"], "{peers}");
}
