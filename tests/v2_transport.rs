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

/// An address that advertises `NODE_P2P_V2` is dialed automatically over v2; when the node
/// there speaks only v1 (it hangs up on the key), the dialer retries in v1 and the address book
/// learns from its `version` that it offers no v2 (Core's `SetServices`), so the next dial there
/// would open in v1.
#[test]
fn the_address_book_learns_that_a_peer_advertised_as_v2_speaks_only_v1() {
    use bitcoin::p2p::ServiceFlags;
    use bitcoin::p2p::address::Address;
    use bitcoin::p2p::message::NetworkMessage;
    let flags = ["--test=loopback-netgroups"];
    // The v1-only node, on an address of its own.
    let b_ip = "127.0.0.31";
    let b = Daemon::start_with(false, |port| {
        vec!["--v2transport=0".into(), "--connect=0".into(), format!("--bind={b_ip}:{port}"), flags[0].into()]
    });
    let b_addr: std::net::SocketAddr = format!("{b_ip}:{}", b.port).parse().unwrap();
    // The node under test makes automatic connections and takes addresses from local peers.
    let a = Daemon::start(&[flags[0], "--whitelist=addr@127.0.0.1"]);
    let mut feeder = RawPeer::connect(a.addr);
    feeder.handshake();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32;
    let v2_services = ServiceFlags::NETWORK | ServiceFlags::WITNESS | ServiceFlags::P2P_V2;
    feeder.send(&NetworkMessage::Addr(vec![(now - 600, Address::new(&b_addr, v2_services))]));
    feeder.ping_pong(7);
    // The automatic dial opens with v2, B hangs up on the key, and the retry in v1 connects.
    a.wait_log("retrying with v1 transport protocol", Duration::from_secs(60));
    let outbound =
        || peers(&a).into_iter().find(|p| p["inbound"] == json!(false) && p["addr"] == json!(b_addr.to_string()));
    assert!(common::poll_until(WAIT, || outbound().is_some()), "A never connected to B: {:?}", peers(&a));
    let p = outbound().unwrap();
    assert_eq!(p["transport_protocol_type"], "v1", "{p}");
    // The book now has B's own services: no P2P_V2 (bit 11).
    let services = || {
        a.rpc_ok("getnodeaddresses", json!([0])).as_array().cloned().unwrap_or_default().into_iter().find_map(|e| {
            (e["address"] == json!(b_ip) && e["port"] == json!(b.port)).then(|| e["services"].as_u64().unwrap_or(0))
        })
    };
    assert!(
        common::poll_until(WAIT, || services() == Some((ServiceFlags::NETWORK | ServiceFlags::WITNESS).to_u64())),
        "book entry for B: {:?} (advertised {})",
        services(),
        v2_services.to_u64()
    );
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
fn addnode_opens_v2_or_v1_as_its_v2transport_argument_says_on_a_v2_node() {
    let a = Daemon::start(&[]);
    let b = Daemon::start(&[]);
    assert_eq!(a.rpc_ok("addnode", json!([b.addr.to_string(), "onetry", true])), Value::Null);
    let p = wait_peers(&a, 1);
    assert_eq!((&p[0]["connection_type"], &p[0]["transport_protocol_type"]), (&json!("manual"), &json!("v2")));
    // v2transport=false asks for v1, as in Core, on a node that speaks v2.
    let c = Daemon::start(&[]);
    assert_eq!(a.rpc_ok("addnode", json!([c.addr.to_string(), "add", false])), Value::Null);
    let p = wait_peers(&a, 2);
    let to_c = p.iter().find(|x| x["addr"] == json!(c.addr.to_string())).expect("c in a's peers");
    assert_eq!(to_c["transport_protocol_type"], "v1", "{to_c}");
}

/// A scripted v2 initiator: completes BIP324's handshake with the node through the crate-based
/// codec btcloopd itself uses, then lets the test send what it likes.
struct V2Client {
    stream: std::net::TcpStream,
    codec: btcloop::base::transport::v2::V2Transport,
    /// Messages decoded and not looked at yet: type and payload.
    got: std::collections::VecDeque<(String, Vec<u8>)>,
}

impl V2Client {
    fn handshake(addr: std::net::SocketAddr) -> V2Client {
        use btcloop::base::transport::v2::{Role, V2Transport};
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
        let mut codec = V2Transport::new(common::MAGIC, Role::Initiator).expect("key");
        let mut out = Vec::new();
        codec.take_handshake(&mut out);
        stream.write_all(&out).expect("key sent");
        let deadline = std::time::Instant::now() + WAIT;
        let mut buf = [0u8; 4096];
        while !codec.is_ready() {
            assert!(std::time::Instant::now() < deadline, "v2 handshake with the node");
            if let Ok(n) = stream.read(&mut buf) {
                assert!(n > 0, "the node closed during the handshake");
                codec.decode_owned(&buf[..n], |_| {}).expect("the node's handshake");
                let mut out = Vec::new();
                codec.take_handshake(&mut out);
                stream.write_all(&out).expect("terminator and version packet sent");
            }
        }
        V2Client { stream, codec, got: std::collections::VecDeque::new() }
    }

    /// The v2 packet of a v1-encoded message.
    fn packet(&mut self, command: &str, payload: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        btcloop::base::transport::encode_frame(common::MAGIC, command, &mut frame, |b| b.extend_from_slice(payload));
        let mut out = Vec::new();
        assert_eq!(self.codec.encrypt_frames(&frame, &mut out).expect("encrypt"), frame.len());
        out
    }

    fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let _ = self.stream.write_all(bytes);
    }

    /// Reads until a message of type `command` arrives (skipping others); its payload.
    fn expect(&mut self, command: &str) -> Vec<u8> {
        use std::io::Read;
        let deadline = std::time::Instant::now() + WAIT;
        let mut buf = [0u8; 65536];
        loop {
            while let Some((c, payload)) = self.got.pop_front() {
                if c == command {
                    return payload;
                }
            }
            assert!(std::time::Instant::now() < deadline, "no {command} from the node");
            let n = match self.stream.read(&mut buf) {
                Ok(0) => panic!("the node closed the connection while we waited for {command}"),
                Ok(n) => n,
                Err(_) => continue,
            };
            let got = &mut self.got;
            self.codec
                .decode_owned(&buf[..n], |d| {
                    if let btcloop::base::transport::Delivery::Frame(f) = d {
                        got.push_back((
                            btcloop::base::transport::command_str(f.command).to_string(),
                            f.payload.to_vec(),
                        ));
                    }
                })
                .expect("the node's packets");
        }
    }

    /// Whether the node closed the connection within `WAIT`.
    fn closed(&mut self) -> bool {
        use std::io::Read;
        let deadline = std::time::Instant::now() + WAIT;
        let mut buf = [0u8; 4096];
        while std::time::Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return true,
            }
        }
        false
    }
}

#[test]
fn bad_v2_peers_are_disconnected_while_another_peer_is_served() {
    let d = Daemon::start(&[]);
    let mut good = d.connect();
    good.handshake();
    // A bad tag: a real packet with one byte flipped.
    let mut c = V2Client::handshake(d.addr);
    let mut p = c.packet("ping", &7u64.to_le_bytes());
    let last = p.len() - 1;
    p[last] ^= 1;
    c.send(&p);
    assert!(c.closed(), "a bad tag disconnects");
    d.wait_log("v2 packet authentication failed", WAIT);
    good.ping_pong(1);
    // An oversized length: only the packet's first bytes are sent; the node refuses it there.
    let mut c = V2Client::handshake(d.addr);
    // A type without a short id: 13 + 4,000,001 bytes of contents, one over the limit.
    let p = c.packet("bigflood", &vec![0u8; 4_000_001]);
    c.send(&p[..64]);
    assert!(c.closed(), "an oversized packet disconnects before its payload");
    d.wait_log("exceeds the limit of 4000013 bytes", WAIT);
    good.ping_pong(2);
    // Garbage without a terminator: a key, then 4,095 + 16 + 1 bytes none of which end it.
    let mut raw = std::net::TcpStream::connect(d.addr).expect("connect");
    use std::io::Write;
    let mut bytes = vec![0x5cu8; 64];
    bytes.extend(std::iter::repeat_n(0x33u8, 4095 + 17));
    raw.write_all(&bytes).expect("sent");
    d.wait_log("v2 garbage terminator not found within 4095 bytes", WAIT);
    good.ping_pong(3);
    // A well-behaved v2 peer does the version handshake and gets its pong.
    let mut c = V2Client::handshake(d.addr);
    let version = common::version_msg(70016, "/v2client:1.0/", common::random_u64());
    let payload = bitcoin::consensus::serialize(&version);
    let p = c.packet("version", &payload);
    c.send(&p);
    c.expect("version");
    c.expect("verack");
    let p = c.packet("verack", &[]);
    c.send(&p);
    let p = c.packet("ping", &9u64.to_le_bytes());
    c.send(&p);
    assert_eq!(c.expect("pong"), 9u64.to_le_bytes().to_vec());
    assert_eq!(peers(&d).len(), 2, "the v1 peer and the v2 client: {:?}", peers(&d));
}
