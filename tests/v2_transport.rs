//! BIP324 v2 between btcloopd processes over loopback: both ways, a v1 raw peer into a
//! v2-enabled node, and a v2 dial to a v1-only node falling back to v1 and staying connected.

mod common;

use std::time::Duration;

use common::{Daemon, RawPeer};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// `getpeerinfo` entries that completed the version handshake.
fn peers(d: &Daemon) -> Vec<Value> {
    let list = d.rpc_ok("getpeerinfo", json!([]));
    list.as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["version"].as_i64().unwrap_or(0) > 0)
        .collect()
}

fn wait_peers(d: &Daemon, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let p = peers(d);
        if p.len() == n {
            return p;
        }
        assert!(std::time::Instant::now() < deadline, "expected {n} peers, have {p:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_btcloopd_speak_v2_both_ways_with_one_session_id() {
    let a = Daemon::start(&[]);
    let b = Daemon::start(&[&format!("--connect={}", a.addr)]);
    let (pa, pb) = (wait_peers(&a, 1), wait_peers(&b, 1));
    assert_eq!(pa[0]["transport_protocol_type"], "v2", "{pa:?}");
    assert_eq!(pb[0]["transport_protocol_type"], "v2", "{pb:?}");
    let sid = pa[0]["session_id"].as_str().expect("session id");
    assert_eq!(sid.len(), 64);
    assert_eq!(pb[0]["session_id"], sid);
    // Both advertise NODE_P2P_V2 and keep talking (a ping round trip over v2).
    assert!(pa[0]["servicesnames"].as_array().expect("names").iter().any(|s| s == "P2P_V2"), "{pa:?}");
    b.rpc_ok("ping", json!([]));
    b.wait_log("pong", WAIT);
    b.wait_log("transport v2", WAIT);
}

#[test]
fn a_v1_peer_gets_into_a_v2_node_and_a_v2_dial_to_a_v1_node_falls_back_to_v1() {
    let a = Daemon::start(&[]);
    // A plain v1 peer (the test's raw peer) is detected and served as v1.
    let mut raw = RawPeer::connect(a.addr);
    raw.handshake();
    let p = wait_peers(&a, 1);
    assert_eq!(p[0]["transport_protocol_type"], "v1");
    assert_eq!(p[0]["session_id"], "");
    drop(raw);
    // A v1-only btcloopd: the v2 dial's key makes it hang up; the dialer retries once in v1.
    let v1_only = Daemon::start(&["--v2transport=0"]);
    let c = Daemon::start(&[&format!("--connect={}", v1_only.addr)]);
    c.wait_log("retrying with v1 transport protocol", WAIT);
    let (pc, pv) = (wait_peers(&c, 1), wait_peers(&v1_only, 1));
    assert_eq!(pc[0]["transport_protocol_type"], "v1");
    assert_eq!(pv[0]["transport_protocol_type"], "v1");
    assert!(
        !pc[0]["servicesnames"].as_array().expect("names").iter().any(|s| s == "P2P_V2"),
        "v1-only advertises no P2P_V2"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(peers(&c).len(), 1, "still connected");
}

/// `GET /metrics` from a node started with `--metricsbind`.
fn scrape(addr: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("metrics server");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("request");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

#[test]
fn metrics_count_peers_and_wire_bytes_by_transport() {
    let port = common::free_port();
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let a = Daemon::start(&[&format!("--metricsbind={metrics}")]);
    let _b = Daemon::start(&[&format!("--connect={}", a.addr)]);
    let _c = Daemon::start(&["--v2transport=0", &format!("--connect={}", a.addr)]);
    wait_peers(&a, 2);
    let text = scrape(metrics);
    let line = |prefix: &str| text.lines().find(|l| l.starts_with(prefix)).map(str::to_string);
    let v2 = r#"btcloop_peers{direction="inbound",connection_type="inbound",network="not_publicly_routable",transport="v2"} 1"#;
    let v1 = r#"btcloop_peers{direction="inbound",connection_type="inbound",network="not_publicly_routable",transport="v1"} 1"#;
    assert!(text.contains(v2) && text.contains(v1), "{text}");
    let bytes = line(r#"btcloop_peer_bytes{direction="received",transport="v2"}"#).expect("v2 bytes");
    let n: f64 = bytes.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("a number");
    assert!(n > 0.0, "{bytes}");
}

#[test]
fn addnode_with_v2transport_opens_a_v2_connection_on_a_v2_node() {
    let a = Daemon::start(&[]);
    let b = Daemon::start(&[]);
    assert_eq!(a.rpc_ok("addnode", json!([b.addr.to_string(), "onetry", true])), Value::Null);
    let p = wait_peers(&a, 1);
    assert_eq!((&p[0]["connection_type"], &p[0]["transport_protocol_type"]), (&json!("manual"), &json!("v2")));
}
