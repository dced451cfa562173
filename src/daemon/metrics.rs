//! Prometheus metrics (`--metricsbind`, Core #10887): an HTTP worker serving `GET /metrics` in
//! the OpenMetrics text format, built per scrape from one typed snapshot the message handler
//! answers ([`Request::Metrics`], a [`MetricsSnapshot`]) plus the node-wide byte counters. The
//! only place Prometheus text is made.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::info;

use crate::base::totals::NetTotals;
use crate::daemon::http::{Handler, HttpRequest, HttpResponse, HttpServer, ServerOptions};
use crate::daemon::inspect::Request;
use crate::daemon::net::wake::MsgWake;
use crate::daemon::snapshot::MetricsSnapshot;

/// Open scraper connections at most.
const METRICS_CLIENTS: usize = 16;

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics server could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound.
    #[error("cannot bind metrics server on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The thread could not be spawned.
    #[error("cannot start metrics thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// The running metrics server.
pub struct MetricsServer {
    http: HttpServer,
}

impl MetricsServer {
    /// Binds `addr` and serves until stopped.
    pub fn start(addr: SocketAddr, wake: Arc<MsgWake>, totals: Arc<NetTotals>) -> Result<MetricsServer, MetricsError> {
        let listener = TcpListener::bind(addr).map_err(|e| MetricsError::Bind { addr, reason: e.to_string() })?;
        let handler: Handler = Arc::new(move |req: &HttpRequest| serve(req, &wake, &totals));
        // One worker (a scrape is one snapshot); slow clients only ever hold a connection slot.
        let opts = ServerOptions { workers: 1, max_clients: METRICS_CLIENTS, ..ServerOptions::default() };
        let http = HttpServer::start("btcloop-metrics", vec![listener], opts, handler)?;
        for a in http.bound() {
            info!("Serving metrics on http://{a}/metrics");
        }
        Ok(MetricsServer { http })
    }

    /// The address bound.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.http.bound().first().copied()
    }

    /// Stops and joins the threads.
    pub fn stop(self) {
        self.http.stop();
    }
}

fn serve(req: &HttpRequest, wake: &MsgWake, totals: &NetTotals) -> HttpResponse {
    if req.method != "GET" && req.method != "HEAD" {
        return HttpResponse::with_body(405, "text/plain; charset=utf-8", "only GET is served\n");
    }
    if req.path != "/metrics" {
        return HttpResponse::with_body(404, "text/plain; charset=utf-8", "not found; metrics are at /metrics\n");
    }
    match wake.ask(Request::Metrics) {
        Ok(snapshot) => HttpResponse::with_body(200, CONTENT_TYPE, render(&snapshot, totals)),
        Err(_) => HttpResponse::with_body(503, "text/plain; charset=utf-8", "node not answering\n"),
    }
}

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

/// A count as a gauge's value (saturating: a gauge is an `i64`).
fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g: Gauge = Gauge::default();
    g.set(value);
    registry.register(name, help, g);
}

/// Renders one snapshot (the handler's [`Request::Metrics`] answer) in OpenMetrics text.
pub fn render(s: &MetricsSnapshot, totals: &NetTotals) -> String {
    let mut r = Registry::with_prefix("btcloop");
    let peers = Family::<Labels, Gauge>::default();
    let peer_bytes = Family::<Labels, Gauge>::default();
    let queue = Family::<Labels, Gauge>::default();
    let mut pings: Vec<f64> = Vec::new();
    let (mut pause_recv, mut pause_send) = (s.closed_pause_recv, s.closed_pause_send);
    for p in &s.peers {
        let dir = if p.conn_type.is_inbound() { "inbound" } else { "outbound" };
        let l = labels(&[
            ("direction", dir),
            ("connection_type", p.conn_type.as_str()),
            ("network", p.network.as_str()),
            ("transport", p.transport),
        ]);
        peers.get_or_create(&l).inc();
        let (sent, recv) = (
            labels(&[("direction", "sent"), ("transport", p.transport)]),
            labels(&[("direction", "received"), ("transport", p.transport)]),
        );
        peer_bytes.get_or_create(&sent).inc_by(gauge_value(p.bytes_sent));
        peer_bytes.get_or_create(&recv).inc_by(gauge_value(p.bytes_recv));
        queue.get_or_create(&labels(&[("queue", "send")])).inc_by(gauge_value(p.send_queue_bytes));
        queue.get_or_create(&labels(&[("queue", "recv")])).inc_by(gauge_value(p.recv_queue_bytes));
        pause_recv = pause_recv.saturating_add(p.pause_recv_events);
        pause_send = pause_send.saturating_add(p.pause_send_events);
        if let Some(t) = p.ping_time {
            pings.push(t.as_secs_f64());
        }
    }
    r.register(
        "peers",
        "Connected peers by direction, connection type, network and transport (v1, v2, detecting)",
        peers,
    );
    r.register(
        "peer_bytes",
        "Bytes that crossed the wire with the connected peers, by direction and transport",
        peer_bytes,
    );
    r.register("queue_bytes", "Bytes waiting in all peers' send and receive queues", queue);
    let msgs = Family::<Labels, Counter>::default();
    let bytes = Family::<Labels, Counter>::default();
    for c in &s.messages {
        let l = labels(&[
            ("direction", c.direction.as_str()),
            ("network", c.network.as_str()),
            ("connection_type", c.conn_type.as_str()),
            ("message_type", c.msg_type.name()),
        ]);
        msgs.get_or_create(&l).inc_by(c.count.message_count);
        bytes.get_or_create(&l).inc_by(c.count.byte_count);
    }
    r.register("messages", "P2P messages by direction, network, connection type and message type", msgs);
    r.register("message_bytes", "P2P message bytes (headers included) by the same labels", bytes);
    let disc = Family::<Labels, Counter>::default();
    for (reason, n) in &s.disconnects {
        disc.get_or_create(&labels(&[("reason", reason)])).inc_by(*n);
    }
    r.register("disconnects", "Closed connections by reason", disc);
    let pauses = Family::<Labels, Counter>::default();
    pauses.get_or_create(&labels(&[("kind", "recv")])).inc_by(pause_recv);
    pauses.get_or_create(&labels(&[("kind", "send")])).inc_by(pause_send);
    r.register("pause_events", "Times reading (recv) or processing (send) a peer was paused by a full queue", pauses);
    let traffic = Family::<Labels, Counter>::default();
    traffic.get_or_create(&labels(&[("direction", "sent")])).inc_by(totals.bytes_sent.load(Ordering::Relaxed));
    traffic.get_or_create(&labels(&[("direction", "received")])).inc_by(totals.bytes_recv.load(Ordering::Relaxed));
    r.register("network_bytes", "Bytes written to and read from peer sockets", traffic);
    let dropped = Family::<Labels, Counter>::default();
    dropped.get_or_create(&labels(&[("reason", "rejected")])).inc_by(totals.msgs_rejected.load(Ordering::Relaxed));
    dropped
        .get_or_create(&labels(&[("reason", "undecodable")]))
        .inc_by(totals.msgs_undecodable.load(Ordering::Relaxed));
    r.register("dropped_messages", "Messages dropped: bad checksum or type (rejected), or bad payload", dropped);
    counter(&mut r, "inbound_refused", "Inbound connections refused", totals.inbound_refused.load(Ordering::Relaxed));
    gauge(&mut r, "header_height", "Height of the best header", i64::from(s.header_height));
    gauge(&mut r, "header_time_seconds", "Timestamp of the best header", i64::from(s.header_time));
    gauge(&mut r, "headers_in_tree", "Headers held, all branches", gauge_value(s.headers_in_tree as u64));
    gauge(
        &mut r,
        "presync_height",
        "Highest height reached by a low-work presync (-1: none)",
        s.presync_height.map_or(-1, i64::from),
    );
    let progress: Gauge<f64, AtomicU64> = Gauge::default();
    progress.set(s.sync_progress);
    r.register("sync_progress", "Share of the chain's history the best header covers, by time", progress);
    gauge(
        &mut r,
        "block_height",
        "Height of the last validated block (the active chain's tip)",
        i64::from(s.block_height),
    );
    counter(&mut r, "blocks_validated", "Blocks validated, stored and connected since start", s.blocks_validated);
    counter(&mut r, "blocks_refused", "Blocks refused as invalid since start", s.blocks_refused);
    gauge(
        &mut r,
        "blocks_in_flight",
        "Blocks requested from peers and not yet received",
        gauge_value(s.blocks_in_flight as u64),
    );
    counter(&mut r, "block_stalls", "Peers dropped for stalling the block download since start", s.block_stalls);
    counter(&mut r, "block_bytes", "Bytes of block messages received since start", s.block_bytes);
    let verification: Gauge<f64, AtomicU64> = Gauge::default();
    verification.set(s.verification_progress);
    r.register(
        "verification_progress",
        "The validation engine's estimate of the share of the chain validated, 0-1",
        verification,
    );
    gauge(
        &mut r,
        "size_on_disk_bytes",
        "Bytes of blocks, undo data, chainstate and headers on disk",
        gauge_value(s.size_on_disk),
    );
    pings.sort_by(f64::total_cmp);
    let ping = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    if let (Some(min), Some(max)) = (pings.first(), pings.last()) {
        ping.get_or_create(&labels(&[("stat", "min")])).set(*min);
        ping.get_or_create(&labels(&[("stat", "median")])).set(pings.get(pings.len() / 2).copied().unwrap_or(*min));
        ping.get_or_create(&labels(&[("stat", "max")])).set(*max);
    }
    r.register("ping_seconds", "Last ping round trip over connected peers", ping);
    let mut out = String::new();
    if encode(&mut out, &r).is_err() {
        return "# encoding failed\n".into();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::base::counters::{Count, Direction, MsgCell, MsgType};
    use crate::base::netaddr::NetKind;
    use crate::base::peer::ConnectionType;
    use crate::daemon::snapshot::{PeerSnapshot, test_peer};

    #[test]
    fn snapshot_renders_as_openmetrics() {
        let totals = NetTotals::default();
        NetTotals::add(&totals.bytes_sent, 500);
        let inbound = PeerSnapshot {
            conn_type: ConnectionType::Inbound,
            network: NetKind::Ipv4,
            ping_time: Some(Duration::from_millis(250)),
            send_queue_bytes: 10,
            recv_queue_bytes: 3,
            pause_recv_events: 1,
            pause_send_events: 0,
            ..test_peer()
        };
        let manual = PeerSnapshot {
            conn_type: ConnectionType::Manual,
            network: NetKind::Unroutable,
            ping_time: None,
            send_queue_bytes: 0,
            recv_queue_bytes: 0,
            pause_recv_events: 0,
            pause_send_events: 2,
            ..test_peer()
        };
        let s = MetricsSnapshot {
            peers: vec![inbound, manual],
            messages: vec![MsgCell {
                direction: Direction::Sent,
                network: NetKind::Ipv4,
                conn_type: ConnectionType::Inbound,
                msg_type: MsgType::of("ping"),
                count: Count { message_count: 3, byte_count: 96 },
            }],
            disconnects: vec![("peer-closed", 4)],
            closed_pause_recv: 5,
            closed_pause_send: 0,
            header_height: 120,
            header_time: 1_700_000_000,
            headers_in_tree: 121,
            presync_height: None,
            sync_progress: 0.5,
            block_height: 0,
            blocks_validated: 0,
            blocks_refused: 0,
            blocks_in_flight: 0,
            block_stalls: 0,
            block_bytes: 0,
            verification_progress: 0.0,
            size_on_disk: 0,
        };
        let text = render(&s, &totals);
        for line in [
            "btcloop_peers{direction=\"inbound\",connection_type=\"inbound\",network=\"ipv4\",transport=\"v1\"} 1",
            "btcloop_messages_total{direction=\"sent\",network=\"ipv4\",connection_type=\"inbound\",message_type=\"ping\"} 3",
            "btcloop_message_bytes_total{direction=\"sent\",network=\"ipv4\",connection_type=\"inbound\",message_type=\"ping\"} 96",
            "btcloop_disconnects_total{reason=\"peer-closed\"} 4",
            "btcloop_pause_events_total{kind=\"recv\"} 6",
            "btcloop_pause_events_total{kind=\"send\"} 2",
            "btcloop_network_bytes_total{direction=\"sent\"} 500",
            "btcloop_header_height 120",
            "btcloop_presync_height -1",
            "btcloop_queue_bytes{queue=\"send\"} 10",
            "btcloop_ping_seconds{stat=\"max\"} 0.25",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn every_snapshot_field_reaches_its_metric() {
        // Each figure the handler reports appears with its own value (none defaulted to zero).
        let s = MetricsSnapshot {
            peers: vec![PeerSnapshot { ping_time: Some(Duration::from_millis(500)), ..test_peer() }],
            messages: Vec::new(),
            disconnects: Vec::new(),
            closed_pause_recv: 0,
            closed_pause_send: 7,
            header_height: 321,
            header_time: 1_600_000_000,
            headers_in_tree: 400,
            presync_height: Some(250),
            sync_progress: 0.25,
            block_height: 300,
            blocks_validated: 299,
            blocks_refused: 3,
            blocks_in_flight: 16,
            block_stalls: 2,
            block_bytes: 123_456,
            verification_progress: 0.75,
            size_on_disk: 654_321,
        };
        let text = render(&s, &NetTotals::default());
        for line in [
            "btcloop_peers{direction=\"inbound\",connection_type=\"inbound\",network=\"ipv4\",transport=\"v1\"} 1",
            "btcloop_queue_bytes{queue=\"recv\"} 3",
            "btcloop_pause_events_total{kind=\"recv\"} 1",
            "btcloop_pause_events_total{kind=\"send\"} 7",
            "btcloop_header_height 321",
            "btcloop_header_time_seconds 1600000000",
            "btcloop_headers_in_tree 400",
            "btcloop_presync_height 250",
            "btcloop_sync_progress 0.25",
            "btcloop_ping_seconds{stat=\"min\"} 0.5",
            "btcloop_ping_seconds{stat=\"median\"} 0.5",
            "btcloop_block_height 300",
            "btcloop_blocks_validated_total 299",
            "btcloop_blocks_refused_total 3",
            "btcloop_blocks_in_flight 16",
            "btcloop_block_stalls_total 2",
            "btcloop_block_bytes_total 123456",
            "btcloop_verification_progress 0.75",
            "btcloop_size_on_disk_bytes 654321",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
    }
}
