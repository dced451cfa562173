//! A small HTTP/1.1 server for the RPC and metrics endpoints, bounded like Core's: request
//! headers at most 8 KiB, bodies at most 32 MiB (`Content-Length` only), keep-alive and
//! pipelining, `Expect: 100-continue`.
//!
//! One poller thread (`<name>-io`, mio) owns every client socket: it accepts (dropping clients
//! the allow list refuses before reading a byte), assembles requests without blocking, and
//! closes a connection whose request is not complete within the whole-request deadline
//! (`--rpcservertimeout`, Core's `DEFAULT_HTTP_SERVER_TIMEOUT`) or that exceeds the connection
//! cap. Only complete requests go to the worker pool (`<name>-worker`, through a work queue of
//! 64: 503 when full); workers never touch a socket, so a slow client occupies a connection
//! slot and nothing else. The handler is a plain function from request to response.

mod parse;
mod poller;

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use tracing::warn;

pub use self::parse::{ReadOutcome, RequestReader, Step, encode_response, read_request};

/// Core's `MAX_HEADERS_SIZE`.
pub const MAX_HEADERS: usize = 8192;
/// Core's `MAX_SIZE`: the largest body accepted.
pub const MAX_BODY: usize = 0x0200_0000;
/// Core's `DEFAULT_HTTP_WORKQUEUE`: complete requests waiting for a worker.
pub const WORK_QUEUE: usize = 64;
/// Core's `DEFAULT_HTTP_SERVER_TIMEOUT`: how long a client may take to send a whole request
/// (or stay idle between requests, or take to read an answer).
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Open client connections per server by default; at the cap the client that has waited
/// longest without a complete request is dropped for the new one.
pub const MAX_CLIENTS: usize = 100;
/// How long stopping waits for answers already being computed to be written.
pub const STOP_GRACE: Duration = Duration::from_millis(500);

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

/// Which client addresses may connect (checked at accept, before any byte is read).
pub type AllowFn = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// How a server runs.
#[derive(Clone)]
pub struct ServerOptions {
    /// Worker threads running the handler.
    pub workers: usize,
    /// The whole-request deadline (also the idle and the answer-reading limit).
    pub timeout: Duration,
    /// Open client connections at most.
    pub max_clients: usize,
    /// Clients refused at accept; `None` lets everyone connect.
    pub allow: Option<AllowFn>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions { workers: 1, timeout: TIMEOUT, max_clients: MAX_CLIENTS, allow: None }
    }
}

/// A complete request for a worker.
struct Job {
    conn: usize,
    req: HttpRequest,
}

/// A worker's answer to a [`Job`].
struct Done {
    conn: usize,
    resp: HttpResponse,
}

/// A running server.
pub struct HttpServer {
    io: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    waker: Arc<mio::Waker>,
    bound: Vec<SocketAddr>,
}

impl HttpServer {
    /// Serves `handler` on `listeners`; threads are named `<name>-io` and `<name>-worker`.
    pub fn start(
        name: &str,
        listeners: Vec<TcpListener>,
        opts: ServerOptions,
        handler: Handler,
    ) -> io::Result<HttpServer> {
        let stop = Arc::new(AtomicBool::new(false));
        let (job_tx, job_rx) = bounded::<Job>(WORK_QUEUE);
        let (done_tx, done_rx) = unbounded::<Done>();
        let mut bound = Vec::new();
        for l in &listeners {
            bound.push(l.local_addr()?);
        }
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), poller::WAKE)?);
        let mut workers = Vec::new();
        for _ in 0..opts.workers.max(1) {
            let (rx, tx, handler, waker) = (job_rx.clone(), done_tx.clone(), handler.clone(), waker.clone());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("{name}-worker"))
                    .spawn(move || worker(&rx, &tx, &handler, &waker))?,
            );
        }
        drop((job_rx, done_tx));
        let io_loop = poller::Poller::new(poll, listeners, opts, job_tx, done_rx, stop.clone())?;
        let io = std::thread::Builder::new().name(format!("{name}-io")).spawn(move || io_loop.run())?;
        Ok(HttpServer { io: Some(io), workers, stop, waker, bound })
    }

    /// The addresses listened on.
    pub fn bound(&self) -> &[SocketAddr] {
        &self.bound
    }

    /// Stops: the poller closes the listeners and every client connection at once, except those
    /// whose request a worker is answering (their answers are written, for at most
    /// [`STOP_GRACE`]); then every thread is joined. Nothing here waits on a client.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Err(e) = self.waker.wake() {
            warn!("cannot wake the HTTP poller: {e}");
        }
        // Workers end when the poller drops the work queue; they only ever wait on the handler.
        for t in self.workers.drain(..) {
            let _ = t.join();
        }
        if let Some(t) = self.io.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn worker(jobs: &Receiver<Job>, done: &Sender<Done>, handler: &Handler, waker: &mio::Waker) {
    // Ends when the poller drops the sending side (after the queue is drained).
    while let Ok(Job { conn, req }) = jobs.recv() {
        let resp = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&req))) {
            Ok(r) => r,
            Err(_) => {
                warn!("Unexpected error while processing request for '{}'", req.path.escape_debug());
                HttpResponse::with_body(500, "text/plain", "internal error")
            }
        };
        if done.send(Done { conn, resp }).is_err() {
            break;
        }
        let _ = waker.wake();
    }
}

#[cfg(test)]
mod tests;
