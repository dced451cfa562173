//! A small HTTP/1.1 server for the RPC and metrics endpoints, bounded like Core's: request
//! headers at most 8 KiB, bodies at most 32 MiB (`Content-Length` only), a fixed pool of
//! worker threads fed by a work queue of 64 connections (503 when full), 30 s idle and I/O
//! timeouts, keep-alive. Requests are parsed with `httparse`; the handler is a plain function
//! from request to response.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use tracing::debug;

/// Core's `MAX_HEADERS_SIZE`.
pub const MAX_HEADERS: usize = 8192;
/// Core's `MAX_SIZE`: the largest body accepted.
pub const MAX_BODY: usize = 0x0200_0000;
/// Core's `DEFAULT_HTTP_WORKQUEUE`: accepted connections waiting for a worker.
pub const WORK_QUEUE: usize = 64;
/// Core's `DEFAULT_HTTP_SERVER_TIMEOUT`: idle and I/O timeout per connection.
pub const TIMEOUT: Duration = Duration::from_secs(30);
const MAX_HEADER_COUNT: usize = 64;

/// One request.
#[derive(Clone, Debug, Default)]
pub struct HttpRequest {
    /// `GET`, `POST`, ….
    pub method: String,
    /// The request target (`/`, `/metrics`).
    pub path: String,
    /// Header names (as sent) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The client.
    pub peer: Option<SocketAddr>,
}

impl HttpRequest {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Extra headers (`Content-Length` and `Connection` are added).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with `status` and no body.
    pub fn empty(status: u16) -> Self {
        HttpResponse { status, headers: Vec::new(), body: Vec::new() }
    }

    /// A response with a body of `content_type`.
    pub fn with_body(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        HttpResponse { status, headers: vec![("Content-Type", content_type.to_string())], body: body.into() }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Handles one request.
pub type Handler = Arc<dyn Fn(&HttpRequest) -> HttpResponse + Send + Sync>;

/// A running server.
pub struct HttpServer {
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    bound: Vec<SocketAddr>,
}

impl HttpServer {
    /// Serves `handler` on `listeners` with `workers` threads named `name`.
    pub fn start(name: &str, listeners: Vec<TcpListener>, workers: usize, handler: Handler) -> io::Result<HttpServer> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = bounded::<TcpStream>(WORK_QUEUE);
        let mut threads = Vec::new();
        let mut bound = Vec::new();
        for _ in 0..workers.max(1) {
            let (rx, handler, stop) = (rx.clone(), handler.clone(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("{name}-worker"))
                    .spawn(move || worker(&rx, &handler, &stop))?,
            );
        }
        for l in listeners {
            bound.push(l.local_addr()?);
            let (tx, stop) = (tx.clone(), stop.clone());
            threads.push(
                std::thread::Builder::new().name(format!("{name}-accept")).spawn(move || accept(&l, &tx, &stop))?,
            );
        }
        Ok(HttpServer { threads, stop, bound })
    }

    /// The addresses listened on.
    pub fn bound(&self) -> &[SocketAddr] {
        &self.bound
    }

    /// Stops accepting, lets workers finish their request, and joins every thread.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        for addr in &self.bound {
            // Wake the blocking accept; an unspecified bind address is reachable on loopback.
            let target = if addr.ip().is_unspecified() {
                SocketAddr::new(
                    if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() },
                    addr.port(),
                )
            } else {
                *addr
            };
            let _ = TcpStream::connect_timeout(&target, Duration::from_secs(1));
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn accept(listener: &TcpListener, queue: &Sender<TcpStream>, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let mut stream = match conn {
            Ok(s) => s,
            Err(e) => {
                debug!(target: "http", "accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        match queue.try_send(stream) {
            Ok(()) => {}
            Err(TrySendError::Full(s)) => {
                stream = s;
                tracing::warn!("Request rejected because http work queue depth exceeded");
                let _ = write_response(
                    &mut stream,
                    &HttpResponse::with_body(503, "text/plain", "Work queue depth exceeded"),
                    false,
                    false,
                );
            }
            Err(TrySendError::Disconnected(_)) => break,
        }
    }
}

fn worker(queue: &Receiver<TcpStream>, handler: &Handler, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        match queue.recv_timeout(Duration::from_millis(100)) {
            Ok(stream) => serve_connection(stream, handler, stop),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
    }
}

/// What reading one request gave.
#[derive(Debug)]
pub enum ReadOutcome {
    /// A request, and whether the connection stays open after the answer.
    Request(HttpRequest, bool),
    /// The client closed or timed out between requests.
    Closed,
    /// Answer with this status and close.
    Fail(u16),
}

fn serve_connection(mut stream: TcpStream, handler: &Handler, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        match read_request(&mut stream, &mut buf) {
            ReadOutcome::Request(mut req, keep_alive) => {
                req.peer = peer;
                let resp = handler(&req);
                let keep = keep_alive && !stop.load(Ordering::Acquire);
                if write_response(&mut stream, &resp, keep, req.method == "HEAD").is_err() || !keep {
                    break;
                }
            }
            ReadOutcome::Closed => break,
            ReadOutcome::Fail(status) => {
                let _ = write_response(&mut stream, &HttpResponse::empty(status), false, false);
                break;
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// Reads one request from `stream` (written to only for `100 Continue`); `buf` carries bytes
/// read past it (pipelining) to the next call. Memory is bounded by [`MAX_HEADERS`] and
/// [`MAX_BODY`] whatever the client sends.
pub fn read_request<S: Read + Write>(stream: &mut S, buf: &mut Vec<u8>) -> ReadOutcome {
    let mut chunk = [0u8; 4096];
    let head_len = loop {
        if let Some(i) = find_head_end(buf) {
            break i;
        }
        if buf.len() > MAX_HEADERS {
            return ReadOutcome::Fail(431);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return if buf.is_empty() { ReadOutcome::Closed } else { ReadOutcome::Fail(400) },
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or(&[])),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) if buf.is_empty() => return ReadOutcome::Closed,
            Err(_) => return ReadOutcome::Fail(408),
        }
    };
    if head_len > MAX_HEADERS {
        return ReadOutcome::Fail(431);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADER_COUNT];
    let mut parsed = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = parsed.parse(buf.get(..head_len).unwrap_or(&[])) else {
        return ReadOutcome::Fail(400);
    };
    let mut req = HttpRequest {
        method: parsed.method.unwrap_or_default().to_string(),
        path: parsed.path.unwrap_or_default().to_string(),
        headers: parsed
            .headers
            .iter()
            .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
            .collect(),
        body: Vec::new(),
        peer: None,
    };
    let http10 = parsed.version == Some(0);
    let connection = req.header("Connection").map(str::to_ascii_lowercase);
    let keep_alive =
        if http10 { connection.as_deref() == Some("keep-alive") } else { connection.as_deref() != Some("close") };
    if req.header("Transfer-Encoding").is_some() {
        return ReadOutcome::Fail(501);
    }
    let len = match req.header("Content-Length").map(|v| v.trim().parse::<usize>()) {
        None => 0,
        Some(Ok(n)) if n <= MAX_BODY => n,
        Some(Ok(_)) => return ReadOutcome::Fail(413),
        Some(Err(_)) => return ReadOutcome::Fail(400),
    };
    buf.drain(..head_len);
    if len > buf.len() && req.header("Expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    while buf.len() < len {
        let want = (len - buf.len()).min(chunk.len());
        match stream.read(chunk.get_mut(..want).unwrap_or(&mut [])) {
            Ok(0) => return ReadOutcome::Fail(400),
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or(&[])),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return ReadOutcome::Fail(408),
        }
    }
    req.body = buf.drain(..len).collect();
    ReadOutcome::Request(req, keep_alive)
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn write_response(stream: &mut TcpStream, resp: &HttpResponse, keep_alive: bool, head: bool) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    out.push_str(if keep_alive { "Connection: keep-alive\r\n\r\n" } else { "Connection: close\r\n\r\n" });
    let mut bytes = out.into_bytes();
    if !head {
        bytes.extend_from_slice(&resp.body);
    }
    stream.write_all(&bytes)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> (HttpServer, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let handler: Handler = Arc::new(|r: &HttpRequest| {
            let body = format!("{} {} {}", r.method, r.path, String::from_utf8_lossy(&r.body));
            HttpResponse::with_body(200, "text/plain", body)
        });
        let s = HttpServer::start("test", vec![l], 2, handler).unwrap();
        let addr = s.bound()[0];
        (s, addr)
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
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /m HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("Connection: keep-alive\r\n\r\nPOST / abc"), "{out}");
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
}
