//! The network methods of the JSON-RPC server against scripted peers and a second daemon on
//! loopback: peer and network info, counters, `ping`, `addnode`, `disconnectnode`, bans
//! (persisted across a restart), `setnetworkactive` and the disconnect history.

mod common;

use bitcoin::p2p::message::NetworkMessage;
use common::{Daemon, RawPeer, WAIT, accept_within, daemon_user_agent, poll_until};
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};

/// A second loopback address: banning it leaves the test's own 127.0.0.1 connections alone.
const OTHER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// The `getpeerinfo` entry of the peer connected from `addr`, if connected.
fn peer_entry(d: &Daemon, addr: SocketAddr) -> Option<Value> {
    let peers = d.rpc_ok("getpeerinfo", json!([]));
    peers.as_array().expect("array").iter().find(|p| p["addr"] == json!(addr.to_string())).cloned()
}

fn connection_count(d: &Daemon) -> u64 {
    d.rpc_ok("getconnectioncount", json!([])).as_u64().expect("a number")
}

fn wait_connections(d: &Daemon, n: u64) {
    assert!(poll_until(WAIT, || connection_count(d) == n), "connections: {} (want {n})", connection_count(d));
}

fn help_of(d: &Daemon, method: &str) -> String {
    d.rpc_ok("help", json!([method])).as_str().expect("a string").to_string()
}

#[test]
fn getpeerinfo_and_getnetworkinfo_show_two_raw_peers() {
    let d = Daemon::start(&[]);
    let info = d.rpc_ok("getnetworkinfo", json!([]));
    assert_eq!((info["connections"].clone(), info["networkactive"].clone()), (json!(0), json!(true)), "{info}");
    assert_eq!(d.rpc_ok("getpeerinfo", json!([])), json!([]));

    let mut peers = Vec::new();
    for ua in ["/rawpeer-one:1.0/", "/rawpeer-two:2.0/"] {
        let mut p = d.connect();
        let hs = p.handshake_as(ua);
        p.send(&NetworkMessage::Pong(hs.ping_nonce));
        peers.push(p);
    }
    wait_connections(&d, 2);
    // Both answered the daemon's first ping: a ping time shows.
    assert!(poll_until(WAIT, || peers
        .iter()
        .all(|p| peer_entry(&d, p.local_addr()).is_some_and(|e| e.get("pingtime").is_some()))));
    let mut ids = Vec::new();
    for (p, ua) in peers.iter().zip(["/rawpeer-one:1.0/", "/rawpeer-two:2.0/"]) {
        let e = peer_entry(&d, p.local_addr()).expect("peer listed");
        ids.push(e["id"].as_u64().expect("numeric id"));
        assert_eq!(e["addrbind"], json!(d.addr.to_string()), "{e}");
        assert_eq!(e["inbound"], json!(true));
        assert_eq!(e["connection_type"], json!("inbound"));
        assert_eq!(e["subver"], json!(ua));
        assert_eq!(e["version"], json!(70016));
        assert_eq!(e["transport_protocol_type"], json!("v1"));
        let ping = e["pingtime"].as_f64().expect("pingtime");
        assert!(ping > 0.0 && ping < WAIT.as_secs_f64(), "{e}");
        assert!(e["minping"].as_f64().is_some_and(|m| m <= ping), "{e}");
        let sent = e["bytessent_per_msg"].as_object().expect("bytessent_per_msg");
        for t in ["version", "verack", "wtxidrelay", "sendaddrv2", "sendheaders", "ping"] {
            assert!(sent.contains_key(t), "bytessent_per_msg lacks {t}: {e}");
        }
        assert_eq!(sent["verack"], json!(24), "an empty payload is a 24-byte frame");
        assert_eq!(sent["ping"], json!(32));
        let recv = e["bytesrecv_per_msg"].as_object().expect("bytesrecv_per_msg");
        assert_eq!(recv["verack"], json!(24), "{e}");
        assert_eq!(recv["pong"], json!(32), "{e}");
        // Frame header, the fixed fields, the user agent's length byte and the agent.
        let version_len = 24 + 85 + 1 + ua.len() as u64;
        assert_eq!(recv["version"], json!(version_len), "{e}");
        // Bytes on the wire are the sum of the frames (once the queues are flushed).
        let sum = |m: &serde_json::Map<String, Value>| m.values().filter_map(Value::as_u64).sum::<u64>();
        assert!(
            poll_until(WAIT, || {
                let e = peer_entry(&d, p.local_addr()).unwrap();
                e["bytesrecv"].as_u64() == Some(sum(e["bytesrecv_per_msg"].as_object().unwrap()))
                    && e["bytessent"].as_u64() == Some(sum(e["bytessent_per_msg"].as_object().unwrap()))
            }),
            "{}",
            peer_entry(&d, p.local_addr()).unwrap()
        );
    }
    assert_ne!(ids[0], ids[1]);

    let info = d.rpc_ok("getnetworkinfo", json!([]));
    assert_eq!(info["connections"], json!(2), "{info}");
    assert_eq!((info["connections_in"].clone(), info["connections_out"].clone()), (json!(2), json!(0)));
    assert_eq!(info["subversion"], json!(daemon_user_agent(None)));
    assert_eq!(info["protocolversion"], json!(70016));
    assert_eq!(info["networkactive"], json!(true));
    // As Core: a loopback bind is not routable, so it is no local address to advertise.
    assert_eq!(info["localaddresses"], json!([]), "{info}");
    assert_eq!(connection_count(&d), 2);
    assert_eq!(d.rpc_err("getpeerinfo", json!([1])).0, -1);
}

#[test]
fn getpeerinfo_shows_pingwait_only_while_a_ping_is_outstanding() {
    let d = Daemon::start(&[]);
    let mut p = d.connect_ready();
    p.ping_pong(1);
    let addr = p.local_addr();
    assert!(poll_until(WAIT, || peer_entry(&d, addr).is_some_and(|e| e.get("pingtime").is_some())));
    // Outstanding: the ping RPC's ping, not answered yet.
    assert_eq!(d.rpc_ok("ping", json!([])), Value::Null);
    let Some(NetworkMessage::Ping(nonce)) = p.recv_until("ping", WAIT) else { panic!("no ping after the ping RPC") };
    let e = peer_entry(&d, addr).unwrap();
    assert!(e["pingwait"].as_f64().is_some(), "a ping is outstanding: {e}");
    // Answered: Core shows pingwait only while a ping waits for its pong.
    p.send(&NetworkMessage::Pong(nonce));
    p.ping_pong(2);
    let e = peer_entry(&d, addr).unwrap();
    assert!(e.get("pingwait").is_none(), "no ping outstanding, yet pingwait shows: {e}");
}

#[test]
fn ping_rpc_pings_every_peer_and_nettotals_grow() {
    let d = Daemon::start(&[]);
    let t0 = d.rpc_ok("getnettotals", json!([]));
    let (recv0, sent0) = (t0["totalbytesrecv"].as_u64().unwrap(), t0["totalbytessent"].as_u64().unwrap());
    assert!(t0["timemillis"].as_u64().is_some_and(|t| t > 1_600_000_000_000), "{t0}");
    assert_eq!(t0["uploadtarget"]["timeframe"], json!(86400), "{t0}");

    let mut peers = [d.connect_ready(), d.connect_ready()];
    assert_eq!(d.rpc_ok("ping", json!([])), Value::Null);
    for p in &mut peers {
        let Some(NetworkMessage::Ping(nonce)) = p.recv_until("ping", WAIT) else {
            panic!("no ping after the ping RPC")
        };
        p.send(&NetworkMessage::Pong(nonce));
        p.ping_pong(7);
    }
    let t1 = d.rpc_ok("getnettotals", json!([]));
    assert!(t1["totalbytesrecv"].as_u64().unwrap() > recv0, "{t0} -> {t1}");
    assert!(t1["totalbytessent"].as_u64().unwrap() > sent0, "{t0} -> {t1}");
    // Each peer answered two pings of the daemon (the handshake's and the RPC's).
    for p in &peers {
        let e = peer_entry(&d, p.local_addr()).unwrap();
        assert_eq!(e["bytesrecv_per_msg"]["pong"], json!(64), "{e}");
        assert!(e["bytessent_per_msg"]["ping"].as_u64() >= Some(64), "{e}");
    }
    assert_eq!(d.rpc_err("ping", json!([1])).0, -1);
}

#[test]
fn addnode_connects_a_second_daemon_and_getaddednodeinfo_tracks_it() {
    // v1 (the onetry target below is a scripted v1 peer; addnode's v2transport flag is refused).
    let a = Daemon::start(&["--v2transport=0"]);
    let b = Daemon::start(&[]);
    let b_addr = b.addr.to_string();
    assert_eq!(a.rpc_ok("getaddednodeinfo", json!([])), json!([]));
    assert_eq!(a.rpc_ok("addnode", json!([b_addr, "add"])), Value::Null);
    let connected = || {
        a.rpc_ok("getaddednodeinfo", json!([]))
            .as_array()
            .is_some_and(|l| l.len() == 1 && l[0]["connected"] == json!(true))
    };
    assert!(poll_until(WAIT, connected), "{}", a.rpc_ok("getaddednodeinfo", json!([])));
    let info = a.rpc_ok("getaddednodeinfo", json!([b_addr]));
    assert_eq!(
        info,
        json!([{"addednode": b_addr, "connected": true, "addresses": [{"address": b_addr, "connected": "outbound"}]}])
    );
    // Each side sees the other: a manual outbound on A (handshake done), an inbound on B.
    let b_entry = || {
        let peers = a.rpc_ok("getpeerinfo", json!([]));
        peers.as_array().unwrap().iter().find(|p| p["addr"] == json!(b_addr)).cloned().expect("B in A's peers")
    };
    assert!(poll_until(WAIT, || b_entry()["subver"] == json!(daemon_user_agent(None))), "{}", b_entry());
    let out = b_entry();
    assert_eq!((out["connection_type"].clone(), out["inbound"].clone()), (json!("manual"), json!(false)), "{out}");
    wait_connections(&b, 1);
    let inb = b.rpc_ok("getpeerinfo", json!([]));
    assert_eq!(inb[0]["connection_type"], json!("inbound"), "{inb}");
    let net = a.rpc_ok("getnetworkinfo", json!([]));
    assert_eq!((net["connections_in"].clone(), net["connections_out"].clone()), (json!(0), json!(1)), "{net}");

    // Errors: duplicate add, unknown node, bad command, v2 without v2 support.
    assert_eq!(a.rpc_err("addnode", json!([b_addr, "add"])), (-23, "Error: Node already added".into()));
    assert_eq!(a.rpc_err("getaddednodeinfo", json!(["127.0.0.1:1"])), (-24, "Error: Node has not been added.".into()));
    assert_eq!(a.rpc_err("addnode", json!([b_addr, "connect"])), (-1, help_of(&a, "addnode") + "\n"));
    assert_eq!(
        a.rpc_err("addnode", json!(["127.0.0.1:1", "onetry", true])),
        (-8, "Error: v2transport requested but not enabled (see -v2transport)".into())
    );

    // Remove: off the list (the connection stays, as in Core); a second remove fails.
    assert_eq!(a.rpc_ok("addnode", json!([b_addr, "remove"])), Value::Null);
    assert_eq!(a.rpc_ok("getaddednodeinfo", json!([])), json!([]));
    let not_added = (-24, "Error: Node could not be removed. It has not been added previously.".to_string());
    assert_eq!(a.rpc_err("addnode", json!([b_addr, "remove"])), not_added);
    assert_eq!(a.rpc_err("addnode", json!(["127.0.0.1:1", "remove"])), not_added);
    assert_eq!(connection_count(&a), 1);

    // onetry: dialed once as a manual connection, never listed as added.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    assert_eq!(a.rpc_ok("addnode", json!([target, "onetry"])), Value::Null);
    let mut p = RawPeer::from_stream(accept_within(&listener, WAIT));
    p.expect("version");
    assert_eq!(a.rpc_ok("getaddednodeinfo", json!([])), json!([]));
    assert!(poll_until(WAIT, || a
        .rpc_ok("getpeerinfo", json!([]))
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["addr"] == json!(target) && e["connection_type"] == json!("manual"))));
}

#[test]
fn disconnectnode_by_id_and_by_address() {
    let d = Daemon::start(&[]);
    let mut p1 = d.connect_ready();
    let mut p2 = d.connect_ready();
    let mut p3 = d.connect_ready();
    wait_connections(&d, 3);
    let id1 = peer_entry(&d, p1.local_addr()).unwrap()["id"].as_u64().unwrap();
    let id3 = peer_entry(&d, p3.local_addr()).unwrap()["id"].as_u64().unwrap();

    assert_eq!(d.rpc_ok("disconnectnode", json!([null, id1])), Value::Null);
    assert!(p1.is_closed(WAIT), "peer 1 still open");
    assert_eq!(d.rpc_ok("disconnectnode", json!([p2.local_addr().to_string()])), Value::Null);
    assert!(p2.is_closed(WAIT), "peer 2 still open");
    assert_eq!(d.rpc_ok("disconnectnode", json!({"nodeid": id3})), Value::Null);
    assert!(p3.is_closed(WAIT), "peer 3 still open");
    wait_connections(&d, 0);

    let not_connected = (-29, "Node not found in connected nodes".to_string());
    assert_eq!(d.rpc_err("disconnectnode", json!([null, id1])), not_connected);
    assert_eq!(d.rpc_err("disconnectnode", json!([null, 999_999])), not_connected);
    assert_eq!(d.rpc_err("disconnectnode", json!(["127.0.0.1:1"])), not_connected);
    assert_eq!(d.rpc_err("disconnectnode", json!(["221B Baker Street"])), not_connected);
    // Both or neither: refused (the code is checked in the ignored test below).
    for params in [json!(["127.0.0.1:1", 1]), json!([]), json!([null, null])] {
        let (_, msg) = d.rpc_err("disconnectnode", params.clone());
        assert_eq!(msg, "Only one of address and nodeid should be provided.", "{params}");
    }
    assert_eq!(d.rpc_err("disconnectnode", json!([null, "1"])).0, -3);

    // The history names the operator as the reason.
    let recent = d.rpc_ok("getdisconnects", json!([3]));
    let reasons: Vec<&str> = recent.as_array().unwrap().iter().filter_map(|r| r["reason"].as_str()).collect();
    assert_eq!(reasons, ["disconnectnode"; 3], "{recent}");
}

#[test]
fn disconnectnode_argument_errors_match_core() {
    let d = Daemon::start(&[]);
    let mut p = d.connect_ready();
    let id = peer_entry(&d, p.local_addr()).unwrap()["id"].as_u64().unwrap();
    let both = (-32602, "Only one of address and nodeid should be provided.".to_string());
    assert_eq!(d.rpc_err("disconnectnode", json!([p.local_addr().to_string(), id])), both);
    assert_eq!(d.rpc_err("disconnectnode", json!([])), both);
    // Core's help example: an empty address with a node id disconnects by id.
    assert_eq!(d.rpc("disconnectnode", json!(["", id])), Ok(Value::Null));
    assert!(p.is_closed(WAIT));
}

#[test]
fn getdisconnects_lists_closed_peers_newest_first() {
    let d = Daemon::start(&[]);
    assert_eq!(d.rpc_ok("getdisconnects", json!([])), json!([]));
    let mut first = d.connect();
    first.handshake_as("/first:1/");
    let first_addr = first.local_addr();
    let mut second = d.connect();
    second.handshake_as("/second:2/");
    let second_addr = second.local_addr();
    wait_connections(&d, 2);
    first.close_gracefully();
    wait_connections(&d, 1);
    second.close_gracefully();
    wait_connections(&d, 0);

    let list = d.rpc_ok("getdisconnects", json!([]));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    for (r, (addr, ua)) in list.iter().zip([(second_addr, "/second:2/"), (first_addr, "/first:1/")]) {
        assert_eq!(r["addr"], json!(addr.to_string()), "newest first: {list:?}");
        assert_eq!(r["reason"], json!("peer-closed"), "{r}");
        assert_eq!(r["message"], json!("socket closed by peer"), "{r}");
        assert_eq!(r["connection_type"], json!("inbound"), "{r}");
        assert_eq!(r["subver"], json!(ua), "{r}");
        assert!(r["bytessent"].as_u64() > Some(100) && r["bytesrecv"].as_u64() > Some(100), "{r}");
        assert!(r["id"].is_u64() && r["time"].as_i64() > Some(1_600_000_000), "{r}");
    }
    assert!(list[0]["id"].as_u64() > list[1]["id"].as_u64());
    let one = d.rpc_ok("getdisconnects", json!([1]));
    assert_eq!(one, json!([list[0].clone()]));
    assert_eq!(d.rpc_ok("getdisconnects", json!([0])), json!([]));
    assert_eq!(d.rpc_err("getdisconnects", json!([-1])), (-8, "count must be a non-negative integer".into()));
}

#[test]
fn setban_disconnects_refuses_lists_and_survives_a_restart() {
    let d = Daemon::start(&[]);
    let mut banned = RawPeer::connect_from(OTHER_IP, d.addr);
    banned.handshake();
    let mut local = d.connect_ready();
    wait_connections(&d, 2);
    assert_eq!(d.rpc_ok("listbanned", json!([])), json!([]));

    assert_eq!(d.rpc_ok("setban", json!(["127.0.0.2", "add"])), Value::Null);
    assert!(banned.is_closed(WAIT), "the banned peer stays connected");
    local.ping_pong(1);
    wait_connections(&d, 1);
    let recent = d.rpc_ok("getdisconnects", json!([1]));
    assert_eq!(recent[0]["reason"], json!("banned"), "{recent}");
    assert_eq!(recent[0]["addr"].as_str().map(|a| a.starts_with("127.0.0.2:")), Some(true));
    // New connections from it are dropped at accept.
    let mut again = RawPeer::connect_from(OTHER_IP, d.addr);
    assert!(again.is_closed(WAIT), "a banned address got in");

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let list = d.rpc_ok("listbanned", json!([]));
    let e = &list[0];
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(e["address"], json!("127.0.0.2/32"));
    let created = e["ban_created"].as_i64().unwrap();
    assert!((created - now).abs() <= 5, "{e}");
    assert_eq!(e["banned_until"].as_i64(), Some(created + 86_400), "default -bantime is 24 h: {e}");
    assert_eq!(e["ban_duration"], json!(86_400));
    let left = e["time_remaining"].as_i64().unwrap();
    assert!((86_390..=86_400).contains(&left), "{e}");

    // A subnet with a bantime, and an absolute end.
    assert_eq!(d.rpc_ok("setban", json!(["127.0.0.5/30", "add", 1000])), Value::Null);
    assert_eq!(d.rpc_ok("setban", json!(["127.0.0.9", "add", 2_000_000_000u64, true])), Value::Null);
    let list = d.rpc_ok("listbanned", json!([]));
    let addrs: Vec<&str> = list.as_array().unwrap().iter().filter_map(|e| e["address"].as_str()).collect();
    assert_eq!(addrs, ["127.0.0.2/32", "127.0.0.4/30", "127.0.0.9/32"], "{list}");
    assert_eq!(list[1]["ban_duration"], json!(1000));
    assert_eq!(list[2]["banned_until"], json!(2_000_000_000u64));

    // Errors.
    let already = (-23, "Error: IP/Subnet already banned".to_string());
    assert_eq!(d.rpc_err("setban", json!(["127.0.0.2", "add"])), already);
    assert_eq!(d.rpc_err("setban", json!(["127.0.0.2/32", "add"])), already);
    assert_eq!(d.rpc_err("setban", json!(["127.0.0.6", "add"])), already, "inside a banned subnet");
    for bad in ["not-an-ip", "127.0.0.1/33", "127.0.0.1/255.0.255.0", ""] {
        assert_eq!(d.rpc_err("setban", json!([bad, "add"])), (-30, "Error: Invalid IP/Subnet".into()), "{bad}");
    }
    assert_eq!(
        d.rpc_err("setban", json!(["127.0.0.3", "add", 100, true])),
        (-8, "Error: Absolute timestamp is in the past".into())
    );
    assert_eq!(d.rpc_err("setban", json!(["127.0.0.3", "ban"])), (-1, help_of(&d, "setban") + "\n"));
    assert_eq!(d.rpc_err("setban", json!(["127.0.0.3", "add", "1"])).0, -3);

    // A restart keeps the bans (banlist.json) and still refuses the address.
    drop(local);
    let d = d.restart(&[]);
    let stable = |l: &Value| -> Vec<Value> {
        l.as_array()
            .unwrap()
            .iter()
            .map(|e| json!([e["address"], e["ban_created"], e["banned_until"], e["ban_duration"]]))
            .collect()
    };
    assert_eq!(stable(&d.rpc_ok("listbanned", json!([]))), stable(&list), "bans after restart");
    let mut again = RawPeer::connect_from(OTHER_IP, d.addr);
    assert!(again.is_closed(WAIT), "a banned address got in after restart");

    // Remove lets it in again; removing what is not banned fails.
    assert_eq!(d.rpc_ok("setban", json!(["127.0.0.2", "remove"])), Value::Null);
    let mut back = RawPeer::connect_from(OTHER_IP, d.addr);
    back.handshake();
    assert_eq!(
        d.rpc_err("setban", json!(["127.0.0.2", "remove"])),
        (-30, "Error: Unban failed. Requested address/subnet was not previously manually banned.".into())
    );
    assert_eq!(d.rpc_ok("listbanned", json!([])).as_array().unwrap().len(), 2);
    assert_eq!(d.rpc_ok("clearbanned", json!([])), Value::Null);
    assert_eq!(d.rpc_ok("listbanned", json!([])), json!([]));
    assert_eq!(d.rpc_err("clearbanned", json!([1])).0, -1);
}

#[test]
fn a_short_ban_expires_and_lets_the_address_in_again() {
    let d = Daemon::start(&[]);
    assert_eq!(d.rpc_ok("setban", json!(["127.0.0.2", "add", 1])), Value::Null);
    let e = d.rpc_ok("listbanned", json!([]))[0].clone();
    assert_eq!(e["ban_duration"], json!(1), "{e}");
    let mut refused = RawPeer::connect_from(OTHER_IP, d.addr);
    assert!(refused.is_closed(WAIT), "a banned address got in");
    // Banned through its last second, gone after it.
    assert!(poll_until(WAIT, || d.rpc_ok("listbanned", json!([])) == json!([])), "the ban never expired");
    let mut back = RawPeer::connect_from(OTHER_IP, d.addr);
    back.handshake();
    assert_eq!(d.rpc_ok("setban", json!(["127.0.0.2", "add"])), Value::Null, "an expired ban is no obstacle");
}

#[test]
fn setnetworkactive_false_drops_and_refuses_peers_until_true() {
    let d = Daemon::start(&[]);
    let mut peers = [d.connect_ready(), d.connect_ready()];
    wait_connections(&d, 2);
    assert_eq!(d.rpc_ok("setnetworkactive", json!([false])), json!(false));
    for p in &mut peers {
        assert!(p.is_closed(WAIT), "a peer stayed connected with networking off");
    }
    wait_connections(&d, 0);
    let info = d.rpc_ok("getnetworkinfo", json!([]));
    assert_eq!((info["networkactive"].clone(), info["connections"].clone()), (json!(false), json!(0)), "{info}");
    let reasons = d.rpc_ok("getdisconnects", json!([2]));
    assert!(reasons.as_array().unwrap().iter().all(|r| r["reason"] == json!("network-inactive")), "{reasons}");
    // New connections are closed at once.
    let mut refused = d.connect();
    assert!(refused.is_closed(WAIT), "a connection got in with networking off");
    assert_eq!(connection_count(&d), 0);

    assert_eq!(d.rpc_ok("setnetworkactive", json!({"state": true})), json!(true));
    assert_eq!(d.rpc_ok("getnetworkinfo", json!([]))["networkactive"], json!(true));
    let mut p = d.connect_ready();
    p.ping_pong(9);
    wait_connections(&d, 1);
    assert_eq!(d.rpc_err("setnetworkactive", json!([])).0, -1);
}

#[test]
fn getnetmsgstats_counts_what_a_raw_peer_sent() {
    let d = Daemon::start(&[]);
    let mut p = d.connect_ready();
    const PINGS: u64 = 5;
    for n in 0..PINGS {
        p.ping_pong(100 + n);
    }
    let by = json!([["direction", "message_type"]]);
    assert!(
        poll_until(WAIT, || d.rpc_ok("getnetmsgstats", by.clone())["received"]["ping"]["message_count"]
            == json!(PINGS)),
        "{}",
        d.rpc_ok("getnetmsgstats", by.clone())
    );
    let s = d.rpc_ok("getnetmsgstats", by.clone());
    assert_eq!(s["received"]["ping"], json!({"message_count": PINGS, "byte_count": PINGS * 32}), "{s}");
    assert_eq!(s["sent"]["pong"], json!({"message_count": PINGS, "byte_count": PINGS * 32}), "{s}");
    assert_eq!(s["received"]["verack"], json!({"message_count": 1, "byte_count": 24}));
    assert_eq!(s["received"]["pong"]["message_count"], json!(1));
    assert_eq!(s["sent"]["version"]["message_count"], json!(1));
    // The totals are the sum of the cells.
    let mut sum = (0, 0);
    for dir in ["sent", "received"] {
        for c in s[dir].as_object().unwrap().values() {
            sum.0 += c["message_count"].as_u64().unwrap();
            sum.1 += c["byte_count"].as_u64().unwrap();
        }
    }
    assert_eq!(s["totals"], json!({"message_count": sum.0, "byte_count": sum.1}), "{s}");
    // Without dimensions: totals only; other orders nest the other way.
    let t = d.rpc_ok("getnetmsgstats", json!([]));
    assert_eq!(t.as_object().unwrap().keys().collect::<Vec<_>>(), ["totals"], "{t}");
    let other = d.rpc_ok("getnetmsgstats", json!([["message_type", "connection_type", "direction"]]));
    assert_eq!(other["ping"]["inbound"]["received"]["message_count"], json!(PINGS), "{other}");
    // Errors.
    assert_eq!(
        d.rpc_err("getnetmsgstats", json!([["direction", "colour"]])),
        (-8, "Unknown aggregate_by value: \"colour\"".into())
    );
    assert_eq!(
        d.rpc_err("getnetmsgstats", json!([["direction", "direction"]])),
        (-8, "Duplicate aggregate_by value: \"direction\"".into())
    );
    assert_eq!(d.rpc_err("getnetmsgstats", json!(["direction"])).0, -3);
}

#[test]
fn getnodeaddresses_and_getaddrmaninfo_show_an_empty_address_manager() {
    let d = Daemon::start(&[]);
    assert_eq!(d.rpc_ok("getnodeaddresses", json!([])), json!([]));
    assert_eq!(d.rpc_ok("getnodeaddresses", json!([0])), json!([]));
    assert_eq!(d.rpc_ok("getnodeaddresses", json!({"count": 10, "network": "ipv4"})), json!([]));
    assert_eq!(d.rpc_err("getnodeaddresses", json!([-1])), (-8, "Address count out of range".into()));
    assert_eq!(d.rpc_err("getnodeaddresses", json!([1, "tor"])), (-8, "Network not recognized: tor".into()));
    let info = d.rpc_ok("getaddrmaninfo", json!([]));
    let nets: Vec<&String> = info.as_object().unwrap().keys().collect();
    assert_eq!(nets, ["ipv4", "ipv6", "onion", "i2p", "cjdns", "all_networks"], "{info}");
    for (_, v) in info.as_object().unwrap() {
        assert_eq!(v, &json!({"new": 0, "tried": 0, "total": 0}));
    }
    // A connected peer does not make its address known.
    let mut p = d.connect_ready();
    p.ping_pong(1);
    assert_eq!(d.rpc_ok("getnodeaddresses", json!([0])), json!([]));
}

#[test]
fn whitelisted_noban_peers_get_in_despite_a_ban_and_show_their_permissions() {
    let d = Daemon::start(&["--whitelist=noban@127.0.0.2"]);
    assert_eq!(d.rpc_ok("setban", json!(["127.0.0.2", "add"])), Value::Null);
    let mut peer = RawPeer::connect_from(OTHER_IP, d.addr);
    peer.handshake();
    let mut local = d.connect_ready();
    local.ping_pong(7);
    wait_connections(&d, 2);
    let peers = d.rpc_ok("getpeerinfo", json!([]));
    let perms: Vec<Value> = peers.as_array().unwrap().iter().map(|p| p["permissions"].clone()).collect();
    assert!(perms.contains(&json!(["noban", "download"])), "{peers}");
    assert!(perms.contains(&json!([])), "the 127.0.0.1 peer has no permissions: {peers}");
    peer.ping_pong(8);
    assert!(!peer.closed(), "a noban peer was refused for a ban");
}
