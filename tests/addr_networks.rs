//! Tor v3, I2P and CJDNS addresses end to end: learnt by `addrv2`, kept in the address book,
//! shown in Core's text form by `getnodeaddresses` and `getaddednodeinfo`, served by `addrv2`
//! only, and never dialed (no proxy yet): `addnode` and `--connect` of an onion address log a
//! clear error instead of a DNS lookup.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::{AddrV2, AddrV2Message};
use bitcoin::p2p::message::NetworkMessage;
use common::*;
use serde_json::{Value, json};

/// Core's vectors (net_tests.cpp): a Tor v3 key and its name, an I2P hash and its name.
const ONION: &str = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion";
const ONION_KEY: &str = "79bcc625184b05194975c28b66b66b0469f7f6556fb1ac3189a79b40dda32f1f";
const I2P: &str = "ukeu3k5oycgaauneqgtnvselmt4yemvoilkln7jpvamvfx7dnkdq.b32.i2p";
const I2P_KEY: &str = "a2894dabaec08c0051a481a6dac88b64f98232ae42d4b6fd2fa81952dfe36a87";
const CJDNS: &str = "fc00:3344:5566:7788:9900:aabb:ccdd:eeff";

fn key(hex: &str) -> [u8; 32] {
    let mut k = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        k[i] = u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap();
    }
    k
}

/// Core's three vectors, then nine more addresses of each network.
fn overlay_addresses(time: u32) -> (Vec<AddrV2Message>, Vec<AddrV2Message>) {
    let msg = |addr| AddrV2Message { time, services: ServiceFlags::NETWORK | ServiceFlags::WITNESS, addr, port: 8333 };
    let vectors = vec![
        msg(AddrV2::TorV3(key(ONION_KEY))),
        msg(AddrV2::I2p(key(I2P_KEY))),
        msg(AddrV2::Cjdns(CJDNS.parse().unwrap())),
    ];
    let mut more = Vec::new();
    for i in 1..10u8 {
        more.push(msg(AddrV2::TorV3([i.wrapping_mul(23); 32])));
        more.push(msg(AddrV2::I2p([i.wrapping_mul(31); 32])));
        more.push(msg(AddrV2::Cjdns(format!("fc{i:02x}::{i}").parse().unwrap())));
    }
    (vectors, more)
}

/// Sends the vectors, waits until they are stored (alone in the book, they cannot collide), then
/// the others, and waits until the book stops growing: like Core's, the address book drops an
/// address whose slot in the new table is taken, so a few of the others may be missing.
/// Returns how many addresses the book holds.
fn feed(d: &Daemon, peer: &mut RawPeer) -> u64 {
    let (vectors, more) = overlay_addresses(now_unix() - 3600);
    let total = || d.rpc_ok("getaddrmaninfo", json!([]))["all_networks"]["total"].as_u64().unwrap_or(0);
    peer.send(&NetworkMessage::AddrV2(vectors));
    let info = || d.rpc_ok("getaddrmaninfo", json!([]));
    let each_one = |c: &Value| ["onion", "i2p", "cjdns"].iter().all(|n| c[n]["total"] == json!(1));
    assert!(poll_until(WAIT, || each_one(&info())), "{}", info());
    peer.send(&NetworkMessage::AddrV2(more));
    let mut last = 0;
    assert!(poll_until(WAIT, || {
        let now = total();
        let settled = now == last && now > 20;
        last = now;
        std::thread::sleep(Duration::from_millis(100));
        settled
    }));
    last
}

/// Every address of the book as (network, text).
fn all_addresses(d: &Daemon) -> Vec<(String, String)> {
    let list = d.rpc_ok("getnodeaddresses", json!([0]));
    let mut out: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["network"].as_str().unwrap().to_string(), a["address"].as_str().unwrap().to_string()))
        .collect();
    out.sort();
    out
}

fn now_unix() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32
}

fn addresses(d: &Daemon, network: &str) -> Vec<String> {
    let list = d.rpc_ok("getnodeaddresses", json!([0, network]));
    let list = list.as_array().unwrap_or_else(|| panic!("{list}"));
    for a in list {
        assert_eq!(a["network"], json!(network), "{a}");
        assert_eq!(a["port"], json!(8333), "{a}");
    }
    list.iter().map(|a| a["address"].as_str().unwrap().to_string()).collect()
}

#[test]
fn tor_i2p_and_cjdns_addresses_are_stored_shown_as_text_and_served_by_addrv2_only() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The scripted peer speaks v1 only; it is the node's one outbound peer, so its answer to
    // the node's getaddr is not rate-limited.
    let d = Daemon::start(&["--v2transport=0", &format!("--connect=127.0.0.1:{port}")]);
    let mut seed = RawPeer::from_stream(accept_within(&listener, WAIT));
    seed.expect("version");
    seed.send(&NetworkMessage::Version(version_msg(70016, "/seed:1.0/", random_u64())));
    seed.send(&NetworkMessage::SendAddrV2);
    seed.expect("wtxidrelay");
    seed.expect("sendaddrv2");
    seed.expect("verack");
    seed.expect("getaddr");
    seed.send(&NetworkMessage::Verack);
    let stored = feed(&d, &mut seed);

    let onions = addresses(&d, "onion");
    assert!(onions.contains(&ONION.to_string()), "{onions:?}");
    assert!(onions.iter().all(|a| a.len() == 62 && a.ends_with(".onion")), "{onions:?}");
    let i2ps = addresses(&d, "i2p");
    assert!(i2ps.contains(&I2P.to_string()), "{i2ps:?}");
    assert!(i2ps.iter().all(|a| a.len() == 60 && a.ends_with(".b32.i2p")), "{i2ps:?}");
    let cjdns = addresses(&d, "cjdns");
    assert!(cjdns.contains(&CJDNS.to_string()), "{cjdns:?}");
    assert!(cjdns.iter().all(|a| a.starts_with("fc")), "{cjdns:?}");
    let sent_cjdns: Vec<String> = (1..10).map(|i| format!("fc{i:02x}::{i}")).chain([CJDNS.to_string()]).collect();
    assert!(cjdns.iter().all(|a| sent_cjdns.contains(a)), "{cjdns:?}");
    assert_eq!((onions.len() + i2ps.len() + cjdns.len()) as u64, stored);
    assert_eq!(d.rpc_ok("getnodeaddresses", json!([0, "ipv4"])), json!([]));
    let book = all_addresses(&d);

    // A peer that sent sendaddrv2 gets them (23% of the book) in an addrv2 answer to getaddr.
    let mut v2peer = d.connect();
    let hs = v2peer.handshake_addrv2();
    v2peer.send(&NetworkMessage::Pong(hs.ping_nonce));
    v2peer.send(&NetworkMessage::GetAddr);
    let Some(NetworkMessage::AddrV2(answer)) = v2peer.recv_until("addrv2", WAIT) else { panic!("no addrv2 answer") };
    let (mut sent, more) = overlay_addresses(0);
    sent.extend(more);
    assert!((1..=stored as usize * 23 / 100).contains(&answer.len()), "{answer:?}");
    assert!(answer.iter().all(|a| sent.iter().any(|s| s.addr == a.addr && a.port == 8333)), "{answer:?}");
    // A v1 peer gets none: its answer (from the same cache) has nothing that fits in `addr`.
    let mut v1peer = d.connect_ready();
    v1peer.send(&NetworkMessage::GetAddr);
    v1peer.ping_pong(7);
    assert!(v1peer.recv_until("addr", Duration::from_millis(500)).is_none());
    assert!(v1peer.recv_until("addrv2", Duration::from_millis(10)).is_none());
    // The addresses persist in peers.dat like any other: after a restart they are still there.
    let d = d.restart(&["--v2transport=0", "--connect=0"]);
    assert_eq!(all_addresses(&d), book);
}

#[test]
fn an_added_onion_is_listed_in_text_and_fails_clearly_while_overlay_addresses_are_never_dialed() {
    // Automatic connections are on: the planner must never pick a Tor, I2P or CJDNS address.
    let d = Daemon::start(&["--whitelist=addr@127.0.0.1"]);
    let mut feeder = d.connect();
    let hs = feeder.handshake_addrv2();
    feeder.send(&NetworkMessage::Pong(hs.ping_nonce));
    feed(&d, &mut feeder);
    let onions = addresses(&d, "onion").len();

    let upper = format!("{}:8333", ONION.to_uppercase());
    assert_eq!(d.rpc_ok("addnode", json!([upper, "add"])), Value::Null);
    let (code, msg) = d.rpc_err("addnode", json!([format!("{ONION}:8333"), "add"]));
    assert_eq!((code, msg.as_str()), (-23, "Error: Node already added"), "the same address in another case");
    let info = d.rpc_ok("getaddednodeinfo", json!([]));
    assert_eq!(info, json!([{"addednode": format!("{ONION}:8333"), "connected": false, "addresses": []}]));
    assert_eq!(d.rpc_ok("getaddednodeinfo", json!([format!("{ONION}:8333")])), info);
    // Each try fails without a DNS lookup, with the reason in the log.
    let line = format!("Cannot connect to {ONION}:8333: the onion network is not reachable");
    d.wait_log(&line, WAIT);
    assert_eq!(d.rpc_ok("addnode", json!([format!("{I2P}"), "onetry"])), Value::Null);
    d.wait_log(&format!("Cannot connect to {I2P}:0: the i2p network is not reachable"), WAIT);
    // Bad onion names are refused with the reason; Tor v2 is retired.
    let bad = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscsad.onion:8333";
    let (code, msg) = d.rpc_err("addnode", json!([bad, "add"]));
    assert!(code == -8 && msg.contains("checksum"), "{code} {msg}");
    let (_, msg) = d.rpc_err("addnode", json!(["6hzph5hv6337r6p2.onion", "onetry"]));
    assert!(msg.contains("Tor v2"), "{msg}");
    assert!(d.rpc_ok("addnode", json!([format!("{ONION}:8333"), "remove"])).is_null());
    assert_eq!(d.rpc_ok("getaddednodeinfo", json!([])), json!([]));
    // Give the planner a few rounds: it dials nothing (the book holds overlay addresses only).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(d.log_count("trying connection"), 0, "{}", tail(&d.log(), 30));
    let info = d.rpc_ok("getaddrmaninfo", json!([]));
    assert_eq!(info["onion"], json!({"new": onions, "tried": 0, "total": onions}), "{info}");
}

#[test]
fn connect_to_an_onion_logs_a_clear_error_and_the_node_runs_on() {
    let mut d = Daemon::start(&[&format!("--connect={}:8333", ONION.to_uppercase())]);
    d.wait_log(&format!("Cannot connect to {ONION}:8333: the onion network is not reachable"), WAIT);
    assert!(d.try_wait().is_none(), "still running");
    assert_eq!(d.rpc_ok("getconnectioncount", json!([])), json!(0));
    assert_eq!(d.log_count("cannot resolve"), 0, "never handed to the resolver");
    // A broken onion name is refused at start, with the reason.
    let (status, stderr) = run_to_exit(&["--regtest", &format!("--connect={}", &ONION[1..])]);
    assert!(!status.success() && stderr.contains("onion"), "{status} {stderr}");
    let (status, stderr) = run_to_exit(&["--regtest", "--seednode=6hzph5hv6337r6p2.onion"]);
    assert!(!status.success() && stderr.contains("Tor v2"), "{status} {stderr}");
}
