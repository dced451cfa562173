//! The server over loopback: keep-alive, pipelining, bounds, and slow or refused clients.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use super::*;

fn server_with(opts: ServerOptions) -> (HttpServer, SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let handler: Handler = Arc::new(move |r: &HttpRequest| {
        counter.fetch_add(1, Ordering::SeqCst);
        if r.path == "/slow" {
            std::thread::sleep(Duration::from_millis(300));
        }
        let body = format!("{} {} {}", r.method, r.path, String::from_utf8_lossy(&r.body));
        HttpResponse::with_body(200, "text/plain", body)
    });
    let s = HttpServer::start("test", vec![l], opts, handler).unwrap();
    let addr = s.bound()[0];
    (s, addr, calls)
}

fn server() -> (HttpServer, SocketAddr) {
    let (s, a, _) = server_with(ServerOptions { workers: 2, ..ServerOptions::default() });
    (s, a)
}

fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(raw).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out
}

#[test]
fn serves_keep_alive_pipelined_requests_then_close() {
    let (s, addr) = server();
    let out = exchange(
        addr,
        b"POST /slow HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /m HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("Connection: keep-alive\r\n\r\nPOST /slow abc"), "{out}");
    assert!(out.ends_with("Connection: close\r\n\r\nGET /m "), "{out}");
    s.stop();
}

#[test]
fn oversized_or_malformed_requests_are_refused() {
    let (s, addr) = server();
    let big_header = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEADERS + 10));
    assert!(exchange(addr, big_header.as_bytes()).starts_with("HTTP/1.1 431 "));
    let big_body = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1);
    assert!(exchange(addr, big_body.as_bytes()).starts_with("HTTP/1.1 413 "));
    assert!(exchange(addr, b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n").starts_with("HTTP/1.1 400 "));
    assert!(exchange(addr, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").starts_with("HTTP/1.1 501 "));
    assert!(exchange(addr, b"\x00\x01garbage\r\n\r\n").starts_with("HTTP/1.1 400 "));
    // A truncated body: the client stops sending; the server answers 400 and closes.
    assert!(exchange(addr, b"POST / HTTP/1.0\r\nContent-Length: 10\r\n\r\nabc").starts_with("HTTP/1.1 400 "));
    s.stop();
}

#[test]
fn expect_continue_and_http10_close() {
    let (s, addr) = server();
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n").unwrap();
    let mut interim = [0u8; 25];
    c.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.write_all(b"hi").unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert!(out.contains("Connection: close\r\n\r\nPOST / hi"), "HTTP/1.0 closes by default: {out}");
    s.stop();
}

/// Connects from `src` (a loopback address) to `addr`.
fn connect_from(src: [u8; 4], addr: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((src, 0)).into()).unwrap();
    s.connect(&addr.into()).unwrap();
    s.into()
}

#[test]
fn a_refused_client_is_closed_at_accept_without_being_read_or_answered() {
    let only_one: AllowFn = Arc::new(|ip: IpAddr| ip == IpAddr::from([127, 0, 0, 1]));
    let (s, addr, calls) = server_with(ServerOptions { allow: Some(only_one), ..ServerOptions::default() });
    let mut c = connect_from([127, 0, 0, 2], addr);
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Not even the head is needed: the server closes without waiting for one.
    let mut buf = [0u8; 64];
    let got = c.read(&mut buf);
    assert!(matches!(got, Ok(0) | Err(_)), "{got:?}");
    let _ = c.write_all(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // The allowed address is served.
    let out = exchange(addr, b"GET /ok HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(out.ends_with("GET /ok "), "{out}");
    s.stop();
}

#[test]
fn slow_clients_hold_no_worker_and_are_closed_at_the_deadline_and_at_stop() {
    let opts = ServerOptions { workers: 1, timeout: Duration::from_millis(1500), ..ServerOptions::default() };
    let (s, addr, calls) = server_with(opts);
    // More slow clients than workers, each with half a head.
    let mut slow: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"POST / HTTP/1.1\r\nContent-Le").unwrap();
            c
        })
        .collect();
    let out = exchange(addr, b"GET /fresh HTTP/1.1\r\n\r\n");
    assert!(out.ends_with("GET /fresh "), "{out}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The deadline covers the whole request: trickling does not extend it.
    let t = Instant::now();
    let c = &mut slow[0];
    c.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buf = [0u8; 256];
    let mut reply = Vec::new();
    let closed = loop {
        assert!(t.elapsed() < Duration::from_secs(10), "still open after 10 s of a 1.5 s deadline");
        match c.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break true,
        }
        if c.write_all(b"x").is_err() {
            break true;
        }
    };
    assert!(closed);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408 "), "{reply}");
    // Stopping with a client that sends nothing does not wait for it.
    let idle = TcpStream::connect(addr).unwrap();
    let t = Instant::now();
    s.stop();
    assert!(t.elapsed() < Duration::from_secs(5), "stop took {:?}", t.elapsed());
    drop(idle);
}

#[test]
fn at_the_connection_cap_the_longest_waiting_client_makes_room() {
    let opts = ServerOptions { max_clients: 2, ..ServerOptions::default() };
    let (s, addr, _) = server_with(opts);
    let mut first = TcpStream::connect(addr).unwrap();
    first.write_all(b"GET").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let _second = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let out = exchange(addr, b"GET /third HTTP/1.1\r\n\r\n");
    assert!(out.ends_with("GET /third "), "{out}");
    first.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(first.read(&mut buf), Ok(0) | Err(_)), "the oldest client was not dropped");
    s.stop();
}
