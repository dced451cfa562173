//! Slow HTTP clients (issue 10, item 1) against a real `btcloopd` over loopback: connections
//! that trickle a request one byte at a time must not occupy the RPC workers or the metrics
//! worker, must not delay shutdown (SIGTERM or the `stop` RPC), and must be closed when their
//! request outlives the whole-request deadline (`--rpcservertimeout`).

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Daemon, SlowClients, WAIT, free_port, http_request, poll_until};
use serde_json::json;

/// RPC workers in these tests; the slow clients outnumber them.
const THREADS: usize = 2;
/// A slow client's byte interval: far shorter than any per-read timeout.
const TRICKLE: Duration = Duration::from_millis(200);
/// How long a trickle runs at most.
const TRICKLE_LIMIT: Duration = Duration::from_secs(20);
/// The bound for answering a fresh call while slow clients hold connections.
const ANSWER_BOUND: Duration = Duration::from_secs(1);
/// The bound for exiting after SIGTERM or `stop` while slow clients are connected.
const EXIT_BOUND: Duration = Duration::from_secs(2);

fn start(extra: &[&str]) -> (Daemon, SocketAddr) {
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut args = vec![format!("--rpcthreads={THREADS}"), format!("--metricsbind={metrics}"), "--debug=http".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let d = Daemon::start_with(true, move |_| args.clone());
    d.wait_log("Serving metrics on", WAIT);
    (d, metrics)
}

/// Slow clients on the RPC port (four per worker) and on the metrics port (three), given a
/// moment to be accepted (and, on a server that hands connections to workers, taken by them).
fn hold(d: &Daemon, metrics: SocketAddr) -> (SlowClients, SlowClients) {
    let rpc = SlowClients::open(d.rpc_addr(), 4 * THREADS, TRICKLE, TRICKLE_LIMIT);
    let m = SlowClients::open(metrics, 3, TRICKLE, TRICKLE_LIMIT);
    std::thread::sleep(Duration::from_millis(500));
    (rpc, m)
}

#[test]
fn a_fresh_call_is_answered_within_a_second_while_slow_clients_hold_connections() {
    let (d, metrics) = start(&[]);
    let _slow = hold(&d, metrics);
    for method in ["getnetworkinfo", "getpeerinfo", "getnetworkinfo"] {
        let t = Instant::now();
        let v = d.rpc_ok(method, json!([]));
        let took = t.elapsed();
        assert!(took < ANSWER_BOUND, "{method} took {took:?} with slow clients connected");
        assert!(v.is_object() || v.is_array(), "{method}: {v}");
    }
    // The slow clients were not simply thrown out to make room: the server still holds them.
    assert_eq!(d.log_count("evicted"), 0, "{}", common::tail(&d.log(), 20));
}

#[test]
fn metrics_answers_while_slow_clients_hold_it() {
    let (d, metrics) = start(&[]);
    let _slow = hold(&d, metrics);
    let r = http_request(metrics, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.text().ends_with("# EOF\n"), "{}", r.text());
    drop(d);
}

#[test]
fn sigterm_exits_within_two_seconds_while_slow_clients_are_connected() {
    let (mut d, metrics) = start(&[]);
    let _slow = hold(&d, metrics);
    let status = d.sigterm_and_wait(EXIT_BOUND);
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn stop_rpc_exits_within_two_seconds_while_slow_clients_are_connected() {
    let (mut d, metrics) = start(&[]);
    let _slow = hold(&d, metrics);
    let t = Instant::now();
    assert_eq!(d.rpc_ok("stop", json!([])), json!("btcloopd stopping"));
    let mut status = None;
    let exited = poll_until(EXIT_BOUND.saturating_sub(t.elapsed()), || {
        status = d.try_wait();
        status.is_some()
    });
    assert!(exited, "still running {:?} after stop; log:\n{}", t.elapsed(), common::tail(&d.log(), 30));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}

/// Trickles a request into `s` (one byte per 100 ms, well under the deadline per byte) until
/// the server closes; returns what it sent back and how long the connection lasted, or
/// `None` if it was still open after [`WAIT`].
fn trickle_until_closed(mut s: TcpStream) -> Option<(Vec<u8>, Duration)> {
    let start = Instant::now();
    let text = b"POST / HTTP/1.1\r\nHost: slow\r\nContent-Length: 1000\r\n\r\n";
    let mut got = Vec::new();
    s.set_read_timeout(Some(Duration::from_millis(100))).expect("read timeout");
    let mut i = 0;
    while start.elapsed() < WAIT {
        let mut chunk = [0u8; 512];
        match s.read(&mut chunk) {
            Ok(0) => return Some((got, start.elapsed())),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Some((got, start.elapsed())),
            Err(e) => panic!("read: {e}"),
        }
        // Past the head, body bytes (the body never completes within WAIT).
        let byte = text.get(i).copied().unwrap_or(b'x');
        if s.write_all(&[byte]).is_err() {
            return Some((got, start.elapsed()));
        }
        i += 1;
    }
    None
}

#[test]
fn a_request_that_outlives_rpcservertimeout_is_closed() {
    let (d, _) = start(&["--rpcservertimeout=1"]);
    // A head trickled in byte by byte, then a body that never completes: each byte comes well
    // within any per-read timeout, but the request as a whole takes longer than 1 s.
    let s = TcpStream::connect_timeout(&d.rpc_addr(), WAIT).expect("connect");
    let (reply, lasted) = trickle_until_closed(s).expect("connection still open after 10 s of a 1 s deadline");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.is_empty() || reply.starts_with("HTTP/1.1 408 "), "{reply:?}");
    assert!(lasted >= Duration::from_millis(900), "closed after {lasted:?}, before the deadline");
    d.wait_log("request deadline", WAIT);
    // An idle connection (no byte at all) is closed too.
    let mut idle = TcpStream::connect_timeout(&d.rpc_addr(), WAIT).expect("connect");
    idle.set_read_timeout(Some(WAIT)).expect("read timeout");
    let mut buf = [0u8; 64];
    assert!(matches!(idle.read(&mut buf), Ok(0) | Err(_)), "idle connection answered");
    // Well-behaved calls are not affected.
    assert_eq!(d.rpc_ok("getconnectioncount", json!([])), json!(0));
}

#[test]
fn rpcservertimeout_takes_seconds_from_1_to_86400() {
    for good in ["1", "86400"] {
        let (status, stderr) = common::run_to_exit(&["--regtest", &format!("--rpcservertimeout={good}"), "--help"]);
        assert_eq!(status.code(), Some(0), "{good}: {stderr}");
    }
    for bad in ["0", "-1", "86401", "x"] {
        let (status, stderr) = common::run_to_exit(&["--regtest", &format!("--rpcservertimeout={bad}")]);
        assert_eq!(status.code(), Some(1), "{bad}: {stderr}");
        assert!(stderr.contains("rpcservertimeout"), "{bad}: {stderr}");
    }
}
