//! Automatic outbound connections end to end, on loopback only: a btcloopd started with nothing
//! but `--seednode` fetches addresses from the seed, fills its 8 full-relay and 2
//! block-relay-only slots with other btcloopd processes, refills them when peers die, and after
//! a restart dials its anchors (the block-relay-only peers of the last run) first.
//!
//! Every process runs with `--test=loopback-netgroups` (each 127.x address is a network group
//! of its own, so the one-peer-per-group rule lets loopback peers fill the slots); btcloopd
//! advertises `NODE_NETWORK|NODE_WITNESS`, so it passes Core's outbound service check. The
//! address books hold loopback addresses only.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use common::*;
use serde_json::json;

/// Peer processes, and listening addresses per process.
const PROCESSES: u8 = 12;
const ADDRS_EACH: u8 = 4;
const FILL: Duration = Duration::from_secs(60);

fn peer_ip(process: u8, j: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + process * ADDRS_EACH + j))
}

/// Sends `list` to the daemon at `addr` as an `addr` message from a whitelisted raw peer.
fn feed(addr: SocketAddr, list: &[SocketAddr]) {
    let mut p = RawPeer::connect(addr);
    p.handshake();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32;
    let entries: Vec<(u32, Address)> =
        list.iter().map(|sa| (now - 3600, Address::new(sa, ServiceFlags::NETWORK | ServiceFlags::WITNESS))).collect();
    p.send(&NetworkMessage::Addr(entries));
    p.ping_pong(7);
}

/// Outbound peers of `d` by connection type, as (type, address) pairs.
fn outbound(d: &Daemon) -> Vec<(String, SocketAddr)> {
    let peers = d.rpc_ok("getpeerinfo", json!([]));
    peers
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|p| p["inbound"] == json!(false))
        .filter_map(|p| Some((p["connection_type"].as_str()?.to_string(), p["addr"].as_str()?.parse().ok()?)))
        .collect()
}

fn count(peers: &[(String, SocketAddr)], t: &str) -> usize {
    peers.iter().filter(|(c, _)| c == t).count()
}

fn slots_full(d: &Daemon) -> bool {
    let o = outbound(d);
    count(&o, "outbound-full-relay") == 8 && count(&o, "block-relay-only") == 2
}

fn show(d: &Daemon) -> String {
    format!("{:?}\n{}", outbound(d), tail(&d.log(), 30))
}

#[test]
fn seednode_only_start_fills_and_keeps_outbound_slots_then_anchors_survive_a_restart() {
    let test_flags = ["--test=loopback-netgroups"];
    // The peers: no automatic connections of their own, several addresses each.
    let mut peers: Vec<Option<Daemon>> = (0..PROCESSES)
        .map(|k| {
            Some(Daemon::start_with(false, |port| {
                let mut a: Vec<String> = ["--connect=0", "--server=0", "--whitelist=addr@127.0.0.1"]
                    .iter()
                    .chain(&test_flags)
                    .map(|s| s.to_string())
                    .collect();
                a.extend((0..ADDRS_EACH).map(|j| format!("--bind={}:{port}", peer_ip(k, j))));
                a
            }))
        })
        .collect();
    let live: Vec<SocketAddr> = peers
        .iter()
        .enumerate()
        .flat_map(|(k, d)| {
            let port = d.as_ref().map_or(0, |d| d.port);
            (0..ADDRS_EACH).map(move |j| SocketAddr::new(peer_ip(k as u8, j), port))
        })
        .collect();
    let process_of: HashMap<IpAddr, usize> = live.iter().enumerate().map(|(i, a)| (a.ip(), i / 4)).collect();

    // The seed node knows every peer address; so does each peer (they answer getaddr too).
    let seed_ip = "127.0.0.2";
    let seed = Daemon::start_with(true, |port| {
        let mut a =
            vec!["--connect=0".to_string(), "--whitelist=addr@127.0.0.1".into(), format!("--bind={seed_ip}:{port}")];
        a.extend(test_flags.iter().map(|s| s.to_string()));
        a
    });
    feed(seed.addr, &live);
    // All come from one source group, so they share 64 new-table buckets (Core's
    // ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP): a few may collide and be dropped, as in Core.
    let stored = || seed.rpc_ok("getaddrmaninfo", json!([]))["all_networks"]["total"].as_u64().unwrap_or(0);
    assert!(poll_until(WAIT, || stored() >= live.len() as u64 - 6), "{}", seed.rpc_ok("getaddrmaninfo", json!([])));
    for p in peers.iter().flatten() {
        feed(p.addr, &live);
    }

    // The node under test: only --seednode.
    let args = [&format!("--seednode={seed_ip}:{}", seed.port), "--test=loopback-netgroups"];
    let d = Daemon::start(&args);
    let t0 = std::time::Instant::now();
    assert!(poll_until(FILL, || slots_full(&d)), "slots not filled: {}", show(&d));
    eprintln!("slots filled {:.1} s after the start", t0.elapsed().as_secs_f64());
    let log = d.log();
    assert!(log.contains("Empty addrman, adding seednode"), "{}", tail(&log, 40));
    let first = outbound(&d);
    let ips: BTreeSet<IpAddr> = first.iter().map(|(_, a)| a.ip()).collect();
    assert_eq!(ips.len(), 10, "one peer per group (here: per address): {first:?}");
    assert!(first.iter().all(|(_, a)| live.contains(a)), "only the peers, never the seed: {first:?}");
    // The seed was an addr-fetch peer, gone once it answered.
    let gone = d.rpc_ok("getdisconnects", json!([]));
    assert!(gone.as_array().into_iter().flatten().any(|g| g["connection_type"] == json!("addr-fetch")), "{gone}");
    // Each peer that completed the handshake moved to the tried table (a rare tried-table
    // collision leaves one waiting for test-before-evict).
    assert!(d.rpc_ok("getaddrmaninfo", json!([]))["all_networks"]["tried"].as_u64().unwrap_or(0) >= 9);

    // Two peer processes that hold full-relay slots die: the slots are filled again elsewhere.
    let mut killed = BTreeSet::new();
    for (_, a) in first.iter().filter(|(t, _)| t == "outbound-full-relay") {
        if killed.len() == 2 {
            break;
        }
        let k = process_of[&a.ip()];
        if killed.insert(k) {
            if let Some(mut p) = peers[k].take() {
                assert!(p.sigterm_and_wait(WAIT).success());
            }
        }
    }
    let dead = |a: &SocketAddr| killed.contains(&process_of[&a.ip()]);
    let t1 = std::time::Instant::now();
    assert!(
        poll_until(FILL, || slots_full(&d) && outbound(&d).iter().all(|(_, a)| !dead(a))),
        "slots not refilled after killing processes {killed:?}: {}",
        show(&d)
    );
    eprintln!("slots refilled {:.1} s after two peer processes died", t1.elapsed().as_secs_f64());

    // Restart: the block-relay-only peers are written to anchors.dat and dialed first.
    let anchors: BTreeSet<SocketAddr> =
        outbound(&d).into_iter().filter(|(t, _)| t == "block-relay-only").map(|(_, a)| a).collect();
    assert_eq!(anchors.len(), 2);
    let d = d.restart(&args);
    let t2 = std::time::Instant::now();
    d.wait_log("2 block-relay-only anchors will be tried for connections.", WAIT);
    assert!(poll_until(FILL, || slots_full(&d)), "slots not filled after restart: {}", show(&d));
    eprintln!("slots filled {:.1} s after the restart", t2.elapsed().as_secs_f64());
    let log = d.log();
    let this_run = &log[log.rfind("2 block-relay-only anchors").unwrap_or(0)..];
    assert!(!this_run.contains("Empty addrman"), "the book survived the restart");
    let firsts: Vec<&str> = this_run.lines().filter(|l| l.contains("Trying to make an anchor connection")).collect();
    assert_eq!(firsts.len(), 2, "{}", tail(this_run, 40));
    let after: BTreeSet<SocketAddr> =
        outbound(&d).into_iter().filter(|(t, _)| t == "block-relay-only").map(|(_, a)| a).collect();
    assert_eq!(after, anchors, "the anchors are the block-relay-only peers again");
    assert!(!d.net_dir().join("anchors.dat").exists(), "anchors.dat is used once");
}
