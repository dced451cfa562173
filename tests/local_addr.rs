//! Own-address advertisement and address-message limits end to end, over loopback only: a
//! daemon with `--externalip=127.0.0.5:PORT` (test-only loopback rule on, so 127.x counts as
//! routable) advertises it once out of initial block download; `addr` floods are held to the
//! token bucket unless the peer has the `addr` permission; an oversized `addr` message gets the
//! sender disconnected and discouraged, and discouraged addresses are not stored.

mod common;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::time::Instant;

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use btcloop::base::chainparams::Network;
use btcloop::engine::chain::blockgen::{assemble, coinbase, subsidy};
use btcloop::engine::chain::params::ChainParams;
use common::*;
use serde_json::{Value, json};

fn unix_now() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32
}

/// Gives `d` a validated regtest block from a minute ago, so it leaves initial block download.
fn out_of_ibd(d: &Daemon) {
    let p = ChainParams::new(Network::Regtest);
    let block = assemble(&p, &p.genesis, unix_now() - 60, vec![coinbase(1, subsidy(&p, 1))]);
    let hex = bitcoin::consensus::encode::serialize_hex(&block);
    assert_eq!(d.rpc_ok("submitblock", json!([hex])), Value::Null);
    assert_eq!(d.rpc_ok("getblockchaininfo", json!([]))["initialblockdownload"], json!(false));
}

/// `n` distinct public-looking IPv4 addresses (first octet 20–99, never a reserved range), from
/// index `from`, each in a /16 of its own, one hour old, full-node services.
fn addrs(from: u32, n: u32) -> Vec<(u32, Address)> {
    let t = unix_now() - 3600;
    (from..from + n)
        .map(|k| {
            let ip = [20 + (k % 80) as u8, (k / 80 % 256) as u8, (k / 80 / 256) as u8, 1];
            (t, Address::new(&SocketAddr::from((ip, 8333)), ServiceFlags::NETWORK | ServiceFlags::WITNESS))
        })
        .collect()
}

fn peer_from(d: &Daemon, ip: &str) -> Value {
    let peers = d.rpc_ok("getpeerinfo", json!([]));
    peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["addr"].as_str().is_some_and(|a| a.starts_with(&format!("{ip}:"))))
        .cloned()
        .unwrap_or_else(|| panic!("no peer from {ip}: {peers}"))
}

fn ipv4_total(d: &Daemon) -> u64 {
    d.rpc_ok("getaddrmaninfo", json!([]))["ipv4"]["total"].as_u64().unwrap()
}

#[test]
fn a_node_out_of_ibd_advertises_its_external_address_to_its_peers() {
    let b = Daemon::start(&["--test=loopback-netgroups"]);
    let raw = TcpListener::bind("127.0.0.1:0").unwrap();
    let raw_port = raw.local_addr().unwrap().port();
    let ext_port = free_port();
    let ext: SocketAddr = format!("127.0.0.5:{ext_port}").parse().unwrap();
    // The scripted peer speaks v1 only.
    let a = Daemon::start(&[
        "--v2transport=0",
        "--test=loopback-netgroups",
        &format!("--externalip={ext}"),
        &format!("--bind={ext}"),
    ]);
    out_of_ibd(&a);
    for port in [b.port, raw_port] {
        a.rpc_ok("addnode", json!([format!("127.0.0.1:{port}"), "add"]));
    }
    let locals = &a.rpc_ok("getnetworkinfo", json!([]))["localaddresses"];
    assert_eq!(locals.as_array().map(Vec::len), Some(1), "{locals}");
    assert_eq!((&locals[0]["address"], &locals[0]["port"]), (&json!("127.0.0.5"), &json!(ext_port)));

    // A scripted peer A dials gets the address right after the handshake, alone in an `addr`.
    let mut seen = RawPeer::from_stream(accept_within(&raw, WAIT));
    seen.expect("version");
    seen.send(&NetworkMessage::Version(version_msg(70016, "/seen:1.0/", random_u64())));
    assert!(seen.recv_until("verack", WAIT).is_some());
    seen.send(&NetworkMessage::Verack);
    let Some(NetworkMessage::Addr(list)) = seen.recv_until("addr", WAIT) else { panic!("no self-announcement") };
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].1.socket_addr().unwrap(), ext);
    assert_eq!(list[0].1.services, ServiceFlags::NETWORK | ServiceFlags::WITNESS, "the services btcloopd offers");
    assert!(list[0].0 + 60 >= unix_now(), "a fresh announcement");

    // The btcloopd A dials gets it too (as addrv2) and stores it: a node serving blocks.
    let got_addrv2 = poll_until(WAIT, || {
        let p = peer_from(&b, "127.0.0.1");
        p["bytesrecv_per_msg"]["addrv2"].as_u64().unwrap_or(0) > 0
    });
    assert!(got_addrv2, "{}", tail(&a.log(), 20));
    assert!(a.log().contains(&format!("Advertising address {ext} to peer=")));
    let stored = poll_until(WAIT, || b.rpc_ok("getnodeaddresses", json!([0])).to_string().contains("127.0.0.5"));
    assert!(stored, "{}", b.rpc_ok("getnodeaddresses", json!([0])));
}

#[test]
fn address_floods_are_held_to_the_token_bucket_unless_the_peer_may_send_addresses() {
    // --connect=0: no outbound connections at all, so nothing learnt is ever dialed.
    let d = Daemon::start_quiet(&["--connect=0", "--whitelist=addr@127.0.0.2"]);
    let mut flooder = d.connect_ready();
    let start = Instant::now();
    for m in 0..5 {
        flooder.send(&NetworkMessage::Addr(addrs(m * 1000, 1000)));
    }
    flooder.ping_pong(1);
    let info = peer_from(&d, "127.0.0.1");
    let elapsed = start.elapsed().as_secs_f64();
    let processed = info["addr_processed"].as_u64().unwrap();
    let limited = info["addr_rate_limited"].as_u64().unwrap();
    assert_eq!(processed + limited, 5000, "{info}");
    // One token to start with, then 0.1 per second.
    let bound = 1 + (elapsed * 0.1).ceil() as u64;
    assert!((1..=bound).contains(&processed), "{processed} processed in {elapsed:.1} s");
    let stored = ipv4_total(&d);
    assert!((1..=processed).contains(&stored), "{stored} stored, {processed} processed");
    let listed = d.rpc_ok("getnodeaddresses", json!([0])).as_array().unwrap().len() as u64;
    assert!(listed <= stored, "{listed}");

    // A peer with the addr permission is not limited.
    let mut trusted = RawPeer::connect_from("127.0.0.2".parse().unwrap(), d.addr);
    trusted.handshake();
    for m in 5..10 {
        trusted.send(&NetworkMessage::Addr(addrs(m * 1000, 1000)));
    }
    trusted.ping_pong(2);
    let info = peer_from(&d, "127.0.0.2");
    assert_eq!((&info["addr_processed"], &info["addr_rate_limited"]), (&json!(5000), &json!(0)), "{info}");
    let stored_after = ipv4_total(&d);
    assert!(stored_after > stored + 1000, "{stored} then {stored_after}");
}

#[test]
fn an_oversized_addr_message_gets_the_peer_discouraged_and_its_address_is_not_stored() {
    let d = Daemon::start(&["--connect=0", "--test=loopback-netgroups", "--whitelist=addr@127.0.0.1"]);
    let bad_ip: IpAddr = "127.0.0.7".parse().unwrap();
    let mut other = RawPeer::connect_from(bad_ip, d.addr);
    other.handshake();
    let mut bad = RawPeer::connect_from(bad_ip, d.addr);
    bad.handshake();
    bad.send(&NetworkMessage::Addr(addrs(0, 1001)));
    assert!(bad.is_closed(WAIT), "the sender of 1,001 addresses stays connected");
    d.wait_log("Disconnecting and discouraging peer", WAIT);
    assert!(other.is_closed(WAIT), "every connection from a discouraged address is dropped");

    // Addresses from a discouraged IP in later addr messages are dropped; others are stored.
    let mut good = d.connect_ready();
    let t = unix_now() - 3600;
    let svc = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
    let entry = |ip: [u8; 4]| (t, Address::new(&SocketAddr::from((ip, 18444)), svc));
    good.send(&NetworkMessage::Addr(vec![entry([127, 0, 0, 7]), entry([127, 0, 0, 8])]));
    good.ping_pong(3);
    let info = peer_from(&d, "127.0.0.1");
    assert_eq!(info["addr_processed"], json!(1), "{info}");
    let known = d.rpc_ok("getnodeaddresses", json!([0])).to_string();
    assert!(known.contains("127.0.0.8") && !known.contains("127.0.0.7"), "{known}");
}
