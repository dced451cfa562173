//! HTTP and JSON-RPC clients for the integration tests (std only: one request per connection,
//! `Connection: close`), and the `Daemon`/`RawPeer` helpers built on them.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Daemon, RawPeer, Transport, WAIT, random_u64, tail};

use base64::Engine as _;
use serde_json::{Value, json};

/// One HTTP response.
#[derive(Clone, Debug)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// Header fields in the order received.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl HttpReply {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("HTTP {} body is not JSON ({e}): {:?}", self.status, self.text()))
    }
}

fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads once into `buf`, waiting at most until `deadline`; false on EOF. Panics on timeout.
fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "HTTP reply incomplete after {WAIT:?}: {:?}", String::from_utf8_lossy(buf));
        s.set_read_timeout(Some(left.max(Duration::from_millis(1)))).expect("read timeout");
        match s.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return true;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) => {}
            // A reset after the full reply (the server closed first): treat as EOF.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return false,
            Err(e) => panic!("HTTP read failed: {e}"),
        }
    }
}

/// Decodes a chunked body (as far as it is complete).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find_bytes(raw, b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        let end = (start + size).min(raw.len());
        out.extend_from_slice(&raw[start..end]);
        raw = raw.get(end + 2..).unwrap_or_default();
    }
    out
}

/// Sends one HTTP/1.1 request to `addr` (with `Host`, `Connection: close` and `Content-Length`
/// added) and reads the reply: status line, headers, then the body by `Content-Length`,
/// chunked, or until EOF. Every step is bounded by [`WAIT`].
pub fn http_request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpReply {
    let deadline = Instant::now() + WAIT;
    let mut s = TcpStream::connect_timeout(&addr, WAIT).unwrap_or_else(|e| panic!("HTTP connect to {addr}: {e}"));
    s.set_write_timeout(Some(WAIT)).expect("write timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("Content-Length")) {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    s.write_all(&out).unwrap_or_else(|e| panic!("HTTP write to {addr}: {e}"));
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = find_bytes(&buf, b"\r\n\r\n") {
            break i;
        }
        if !read_more(&mut s, &mut buf, deadline) {
            panic!("HTTP connection closed before the headers ended: {:?}", String::from_utf8_lossy(&buf));
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad HTTP status line {status_line:?}"));
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let mut reply = HttpReply { status, headers, body: buf[head_end + 4..].to_vec() };
    if method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 || status < 200 {
        reply.body.clear();
        return reply;
    }
    if let Some(len) = reply.header("Content-Length").and_then(|v| v.parse::<usize>().ok()) {
        while reply.body.len() < len {
            if !read_more(&mut s, &mut reply.body, deadline) {
                panic!("HTTP body shorter than Content-Length {len}: {:?}", reply.text());
            }
        }
        reply.body.truncate(len);
        return reply;
    }
    while read_more(&mut s, &mut reply.body, deadline) {}
    if reply.header("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        reply.body = dechunk(&reply.body);
    }
    reply
}

/// An `Authorization` header value for HTTP Basic credentials.
pub fn basic_auth(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// A JSON-RPC error: Core's code and message.
pub type RpcFailure = (i64, String);

/// Splits a JSON-RPC reply object into its result or its error.
pub fn rpc_outcome(reply: &Value) -> Result<Value, RpcFailure> {
    match reply.get("error") {
        Some(e) if !e.is_null() => Err((
            e["code"].as_i64().unwrap_or_else(|| panic!("error without code: {reply}")),
            e["message"].as_str().unwrap_or_default().to_string(),
        )),
        _ => Ok(reply.get("result").cloned().unwrap_or_else(|| panic!("reply without result or error: {reply}"))),
    }
}

impl Daemon {
    /// The RPC server's 127.0.0.1 address; panics if it did not log one.
    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
            .unwrap_or_else(|| panic!("no 'RPC listening on 127.0.0.1:' line; log:\n{}", tail(&self.log(), 20)))
    }

    /// `<datadir>/regtest/.cookie`.
    pub fn cookie_path(&self) -> PathBuf {
        self.net_dir().join(".cookie")
    }

    /// The `Authorization` value for the cookie's credentials.
    pub fn cookie_auth(&self) -> String {
        let text = fs::read_to_string(self.cookie_path()).unwrap_or_else(|e| panic!("read the RPC cookie: {e}"));
        let (user, pass) = text.trim().split_once(':').expect("cookie is USER:PASS");
        basic_auth(user, pass)
    }

    /// A raw HTTP request to the RPC server (no credentials added).
    pub fn http(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpReply {
        http_request(self.rpc_addr(), method, path, headers, body)
    }

    /// `POST /` with the cookie's credentials and `body` as JSON.
    pub fn rpc_post(&self, body: &str) -> HttpReply {
        let auth = self.cookie_auth();
        self.http("POST", "/", &[("Authorization", &auth), ("Content-Type", "application/json")], body.as_bytes())
    }

    /// A JSON-RPC 2.0 call with the cookie's credentials; `params` is an array or an object.
    pub fn rpc(&self, method: &str, params: Value) -> Result<Value, RpcFailure> {
        let auth = self.cookie_auth();
        self.rpc_with_auth(&auth, method, params)
    }

    /// A JSON-RPC 2.0 call with the given `Authorization` value. Checks the envelope: HTTP 200,
    /// `jsonrpc` 2.0, the id echoed and exactly one of `result` and `error`.
    pub fn rpc_with_auth(&self, auth: &str, method: &str, params: Value) -> Result<Value, RpcFailure> {
        let id = random_u64() >> 12;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        let r =
            self.http("POST", "/", &[("Authorization", auth), ("Content-Type", "application/json")], body.as_bytes());
        assert_eq!(r.status, 200, "{method}: HTTP {} {:?}", r.status, r.text());
        let v = r.json();
        assert_eq!(v["jsonrpc"], json!("2.0"), "{method}: {v}");
        assert_eq!(v["id"], json!(id), "{method}: {v}");
        let keys = v.as_object().map(|o| o.contains_key("result") as u8 + o.contains_key("error") as u8);
        assert_eq!(keys, Some(1), "{method}: a 2.0 reply has exactly one of result and error: {v}");
        rpc_outcome(&v)
    }

    /// A call that must succeed.
    pub fn rpc_ok(&self, method: &str, params: Value) -> Value {
        self.rpc(method, params.clone()).unwrap_or_else(|e| panic!("{method} {params} failed: {e:?}"))
    }

    /// A call that must fail; returns the error.
    pub fn rpc_err(&self, method: &str, params: Value) -> RpcFailure {
        match self.rpc(method, params.clone()) {
            Ok(v) => panic!("{method} {params} succeeded with {v}, expected an error"),
            Err(e) => e,
        }
    }
}

impl RawPeer {
    /// Connects to `addr` from the source address `src` (e.g. 127.0.0.2, to be banned alone).
    pub fn connect_from(src: std::net::IpAddr, addr: SocketAddr) -> RawPeer {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
            .expect("socket");
        s.bind(&SocketAddr::new(src, 0).into()).unwrap_or_else(|e| panic!("bind {src}: {e}"));
        s.connect_timeout(&addr.into(), WAIT).unwrap_or_else(|e| panic!("connect {src} -> {addr}: {e}"));
        Self::with_transport(s.into(), Transport::from_env())
    }

    /// Our end's address (what the daemon shows as the peer's `addr`).
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local_addr")
    }

    /// Closes like a well-behaved peer: FIN first, then everything the daemon still sends is
    /// read until it closes too. (Dropping a socket with unread data sends a reset instead,
    /// which the daemon rightly records as a read error, not as `peer-closed`.)
    pub fn close_gracefully(mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        assert!(self.is_closed(WAIT), "the daemon kept the connection open after our FIN");
    }
}

/// Connections that send a request that never ends, one byte at a time (a "slowloris"), from
/// a background thread: each gets its next byte every `every`, until dropped or `limit`
/// passes. Write errors (the server closed) stop that connection's trickle.
pub struct SlowClients {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SlowClients {
    /// Opens `n` connections to `addr`, sends each its first byte, and starts trickling.
    pub fn open(addr: SocketAddr, n: usize, every: Duration, limit: Duration) -> SlowClients {
        use std::sync::atomic::{AtomicBool, Ordering};
        // A head that never ends: padding bytes of one header, far below the 8 KiB bound at
        // the rates the tests use.
        let text: Vec<u8> = b"POST / HTTP/1.1\r\nHost: slow\r\nX-Pad: "
            .iter()
            .copied()
            .chain(std::iter::repeat(b'a'))
            .take(4000)
            .collect();
        let mut streams: Vec<Option<TcpStream>> = (0..n)
            .map(|_| {
                let mut s =
                    TcpStream::connect_timeout(&addr, WAIT).unwrap_or_else(|e| panic!("slow connect {addr}: {e}"));
                s.set_write_timeout(Some(WAIT)).expect("write timeout");
                s.write_all(&text[..1]).expect("first slow byte");
                Some(s)
            })
            .collect();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + limit;
            let mut sent = 1;
            while !flag.load(Ordering::Relaxed) && Instant::now() < end && sent < text.len() {
                std::thread::sleep(every);
                for slot in streams.iter_mut() {
                    if slot.as_mut().is_some_and(|s| s.write_all(&text[sent..sent + 1]).is_err()) {
                        *slot = None;
                    }
                }
                sent += 1;
            }
        });
        SlowClients { stop, thread: Some(thread) }
    }
}

impl Drop for SlowClients {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
