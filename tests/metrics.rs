//! The Prometheus endpoint (`--metricsbind`): scraped over HTTP on loopback, its OpenMetrics
//! text parsed and compared with what scripted peers did and what the RPC server reports.

mod common;

use std::net::SocketAddr;

use bitcoin::p2p::message::NetworkMessage;
use btcloop::base::chainparams::Network;
use btcloop::engine::chain::blockgen::BlockGen;
use btcloop::engine::chain::params::ChainParams;
use common::{Daemon, HttpReply, Transport, WAIT, free_port, http_request, poll_until};
use serde_json::json;

/// One sample line: `name{k="v",...} value`.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn label(&self, k: &str) -> Option<&str> {
        self.labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
}

/// Parses the sample lines of an OpenMetrics text exposition (comments skipped).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                let labels = body
                    .split(',')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("bad label {kv:?} in {line:?}"));
                        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).expect("quoted label value");
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
        };
        out.push(Sample { name, labels, value });
    }
    out
}

/// The sum of the samples named `name` whose labels include all of `want`.
fn sum(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples.iter().filter(|s| s.name == name && want.iter().all(|(k, v)| s.label(k) == Some(v))).map(|s| s.value).sum()
}

/// A daemon serving metrics on a free 127.0.0.1 port, and that address.
fn start_with_metrics() -> (Daemon, SocketAddr) {
    let port = free_port();
    let d = Daemon::start_with(true, |_| vec![format!("--metricsbind=127.0.0.1:{port}")]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    d.wait_log(&format!("Serving metrics on http://{addr}/metrics"), WAIT);
    (d, addr)
}

fn scrape(addr: SocketAddr) -> (HttpReply, Vec<Sample>) {
    let r = http_request(addr, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    let samples = parse(&r.text());
    (r, samples)
}

#[test]
fn metrics_match_the_peers_messages_and_chain() {
    let (d, addr) = start_with_metrics();
    let (r, s) = scrape(addr);
    let ctype = r.header("Content-Type").unwrap_or_default();
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    let text = r.text();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE btcloop_header_height gauge"), "{text}");
    assert_eq!(sum(&s, "btcloop_peers", &[("direction", "inbound")]), 0.0);
    assert_eq!(sum(&s, "btcloop_header_height", &[]), 0.0);

    assert_eq!(sum(&s, "btcloop_block_height", &[]), 0.0);
    assert_eq!(sum(&s, "btcloop_blocks_validated_total", &[]), 0.0);

    // Two peers; A feeds the headers of five blocks, both send pings.
    let p = ChainParams::new(Network::Regtest);
    let mut g = BlockGen::new(p.clone());
    let blocks: Vec<bitcoin::Block> = (1..=5).map(|i| g.next_block(p.genesis.time + i, 0)).collect();
    let chain: Vec<bitcoin::block::Header> = blocks.iter().map(|b| b.header).collect();
    let mut a = d.connect_ready();
    let mut b = d.connect_ready();
    // B pings first: once A's headers arrive, B gets them announced (an inv).
    b.ping_pong(10);
    a.send(&NetworkMessage::Headers(chain.clone()));
    for n in 0..3 {
        a.ping_pong(n + 1);
    }
    // Headers move the best header, not the validated chain.
    assert!(poll_until(WAIT, || d.rpc_ok("getblockchaininfo", json!([]))["headers"] == json!(5)));

    let (r, s) = scrape(addr);
    assert!(r.text().contains("# TYPE btcloop_peers gauge"), "{}", r.text());
    let inbound: Vec<&Sample> =
        s.iter().filter(|x| x.name == "btcloop_peers" && x.label("direction") == Some("inbound")).collect();
    assert_eq!(inbound.iter().map(|x| x.value).sum::<f64>(), 2.0, "{inbound:?}");
    assert!(inbound.iter().all(|x| x.label("connection_type") == Some("inbound")), "{inbound:?}");
    assert_eq!(sum(&s, "btcloop_peers", &[("direction", "outbound")]), 0.0);
    let headers = d.rpc_ok("getblockchaininfo", json!([]))["headers"].as_f64().unwrap();
    assert_eq!(sum(&s, "btcloop_header_height", &[]), headers);
    assert_eq!(sum(&s, "btcloop_block_height", &[]), 0.0);
    assert_eq!(sum(&s, "btcloop_headers_in_tree", &[]), 6.0);
    let pings = [("direction", "received"), ("message_type", "ping")];
    assert_eq!(sum(&s, "btcloop_messages_total", &pings), 4.0);
    // A message counts at its size on the wire, as Core's: a ping's v1 frame is 32 bytes, its
    // v2 packet 29 (3 length, 1 header, 1 short ID, 8 payload, 16 tag).
    let ping_bytes = if Transport::from_env() == Transport::V2 { 29.0 } else { 32.0 };
    assert_eq!(sum(&s, "btcloop_message_bytes_total", &pings), 4.0 * ping_bytes);
    let pongs = [("direction", "sent"), ("message_type", "pong")];
    assert_eq!(sum(&s, "btcloop_messages_total", &pongs), 4.0);
    assert_eq!(sum(&s, "btcloop_messages_total", &[("direction", "received"), ("message_type", "headers")]), 1.0);
    // The same counts as getnetmsgstats.
    let stats = d.rpc_ok("getnetmsgstats", json!([["direction", "message_type"]]));
    assert_eq!(stats["received"]["ping"]["message_count"], json!(4), "{stats}");
    let totals = d.rpc_ok("getnettotals", json!([]));
    assert!(
        sum(&s, "btcloop_network_bytes_total", &[("direction", "received")])
            <= totals["totalbytesrecv"].as_f64().unwrap()
    );
    assert!(sum(&s, "btcloop_network_bytes_total", &[("direction", "received")]) > 0.0);
    assert!(sum(&s, "btcloop_ping_seconds", &[("stat", "max")]) > 0.0, "pings were answered");

    // A peer leaves: one fewer inbound, one peer-closed disconnect.
    b.close_gracefully();
    assert!(poll_until(WAIT, || sum(&scrape(addr).1, "btcloop_peers", &[("direction", "inbound")]) == 1.0));
    let (_, s) = scrape(addr);
    assert_eq!(sum(&s, "btcloop_disconnects_total", &[("reason", "peer-closed")]), 1.0);
    a.ping_pong(99);

    // The blocks: validated, and the block figures follow.
    for b in &blocks {
        let hex = bitcoin::consensus::encode::serialize_hex(b);
        assert_eq!(d.rpc_ok("submitblock", json!([hex])), serde_json::Value::Null);
    }
    let (_, s) = scrape(addr);
    assert_eq!(sum(&s, "btcloop_block_height", &[]), 5.0);
    assert_eq!(sum(&s, "btcloop_blocks_validated_total", &[]), 5.0);
    assert_eq!(sum(&s, "btcloop_blocks_refused_total", &[]), 0.0);
    let info = d.rpc_ok("getblockchaininfo", json!([]));
    // The same number; the two encoders may round its last digit differently.
    let (m, r) = (sum(&s, "btcloop_verification_progress", &[]), info["verificationprogress"].as_f64().unwrap());
    assert!((m - r).abs() <= r.abs() * 1e-12, "metrics {m}, RPC {r}");
    assert!(sum(&s, "btcloop_size_on_disk_bytes", &[]) > 0.0, "{info}");
}

#[test]
fn metrics_serve_get_on_metrics_only() {
    let (_d, addr) = start_with_metrics();
    for method in ["POST", "PUT", "DELETE"] {
        let r = http_request(addr, method, "/metrics", &[], b"x");
        assert_eq!(r.status, 405, "{method}: {r:?}");
    }
    for path in ["/", "/metric", "/metrics/extra", "/favicon.ico"] {
        let r = http_request(addr, "GET", path, &[], b"");
        assert_eq!(r.status, 404, "{path}: {r:?}");
        assert!(!r.header("Content-Type").unwrap_or_default().starts_with("application/openmetrics-text"));
    }
    // The scrape still works afterwards.
    let (r, _) = scrape(addr);
    assert!(r.text().ends_with("# EOF\n"));
}
