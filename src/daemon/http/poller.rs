//! The HTTP server's poller thread: the only owner of the listeners and client sockets. It
//! accepts (allow list and connection cap first), reads without blocking into each
//! connection's [`RequestReader`], hands complete requests to the workers, writes their answers,
//! and closes connections at their deadline, on error, and at stop.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use tracing::{debug, warn};

use super::parse::{CONTINUE, READ_CHUNK};
use super::{Done, HttpResponse, Job, RequestReader, STOP_GRACE, ServerOptions, Step, encode_response};

/// The waker's token; listeners are `0..n`, connections from [`FIRST_CONN`] up.
pub(super) const WAKE: Token = Token(usize::MAX);
const FIRST_CONN: usize = 1 << 16;
/// How soon accepting is retried after an accept error (e.g. out of file descriptors).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for (the rest of) a request.
    Reading,
    /// A worker has the request.
    Busy,
    /// An answer is being written.
    Writing,
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    reader: RequestReader,
    /// Bytes to write, of which `written` are written.
    out: Vec<u8>,
    written: usize,
    state: State,
    /// When the connection is closed unless its state moves on: the request's deadline
    /// (from its first byte; from the last answer while idle), or the answer's. `None` while a
    /// worker has the request.
    deadline: Option<Instant>,
    /// Whether the connection stays open after the current answer.
    keep_alive: bool,
    /// Whether the current request is `HEAD`.
    head: bool,
    /// The client has closed its sending side.
    eof: bool,
}

/// What driving a connection left.
enum Next {
    Keep,
    Close,
}

pub(super) struct Poller {
    poll: Poll,
    listeners: Vec<TcpListener>,
    opts: ServerOptions,
    /// The work queue; dropped at stop, which ends the workers.
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    stop: Arc<AtomicBool>,
    conns: HashMap<usize, Conn>,
    next_id: usize,
    scratch: Vec<u8>,
    /// An accept failed for a reason other than "no more"; try again soon.
    accept_retry: bool,
}

impl Poller {
    pub(super) fn new(
        poll: Poll,
        listeners: Vec<std::net::TcpListener>,
        opts: ServerOptions,
        jobs: Sender<Job>,
        done: Receiver<Done>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<Poller> {
        let mut mio_listeners = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            l.set_nonblocking(true)?;
            let mut l = TcpListener::from_std(l);
            poll.registry().register(&mut l, Token(i), Interest::READABLE)?;
            mio_listeners.push(l);
        }
        Ok(Poller {
            poll,
            listeners: mio_listeners,
            opts,
            jobs: Some(jobs),
            done,
            stop,
            conns: HashMap::new(),
            next_id: FIRST_CONN,
            scratch: vec![0; READ_CHUNK],
            accept_retry: false,
        })
    }

    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut grace: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if grace.is_none() && self.stop.load(Ordering::Acquire) {
                self.begin_stop();
                grace = Some(now + STOP_GRACE);
            }
            if let Some(g) = grace
                && (self.conns.is_empty() || now >= g)
            {
                break;
            }
            let timeout = self.next_timeout(now, grace);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                warn!("HTTP server poll failed, closing every client: {e}");
                break;
            }
            if self.accept_retry {
                self.accept_retry = false;
                for i in 0..self.listeners.len() {
                    self.accept(i);
                }
            }
            for ev in events.iter() {
                match ev.token() {
                    WAKE => {}
                    Token(i) if i < FIRST_CONN => self.accept(i),
                    Token(id) => self.drive(id, Instant::now()),
                }
            }
            self.collect_answers();
            self.expire(Instant::now());
        }
        if !self.conns.is_empty() {
            debug!(target: "http", "Closing {} HTTP client(s) at shutdown", self.conns.len());
        }
        // Dropping the poller closes every socket and the listeners.
    }

    /// How long the next poll may sleep: until the nearest deadline.
    fn next_timeout(&self, now: Instant, grace: Option<Instant>) -> Option<Duration> {
        let nearest = self.conns.values().filter_map(|c| c.deadline).chain(grace).min();
        let mut timeout = nearest.map(|d| d.saturating_duration_since(now) + Duration::from_millis(1));
        if self.accept_retry {
            timeout = Some(timeout.map_or(ACCEPT_RETRY, |t| t.min(ACCEPT_RETRY)));
        }
        timeout
    }

    /// Stop: no more accepts or requests; clients without an answer on the way are closed.
    fn begin_stop(&mut self) {
        for mut l in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut l);
        }
        self.jobs = None;
        let idle: Vec<usize> =
            self.conns.iter().filter(|(_, c)| c.state == State::Reading).map(|(id, _)| *id).collect();
        for id in idle {
            if let Some(c) = self.conns.remove(&id) {
                self.close(c);
            }
        }
    }

    fn accept(&mut self, index: usize) {
        loop {
            let Some(listener) = self.listeners.get(index) else { return };
            match listener.accept() {
                Ok((stream, peer)) => self.on_accept(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!(target: "http", "Cannot accept new connection: {e}");
                    self.accept_retry = true;
                    return;
                }
            }
        }
    }

    /// Core's `ClientAllowed`, at accept: a refused client is closed before a byte is read.
    fn on_accept(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        if let Some(allow) = &self.opts.allow
            && !allow(peer.ip())
        {
            debug!(target: "http", "HTTP connection from {peer} rejected: Client network is not allowed RPC access");
            return;
        }
        if self.conns.len() >= self.opts.max_clients.max(1) {
            // Make room by dropping the client that has waited longest without a complete
            // request (a slow client cannot lock everyone out); if every client has a request
            // at a worker, refuse the new one.
            let oldest = self
                .conns
                .iter()
                .filter(|(_, c)| c.state == State::Reading)
                .min_by_key(|(_, c)| c.deadline)
                .map(|(id, _)| *id);
            match oldest.and_then(|id| self.conns.remove(&id)) {
                Some(c) => {
                    debug!(target: "http", "HTTP connection cap ({}) reached: evicted {}", self.opts.max_clients, c.peer);
                    self.close(c);
                }
                None => {
                    debug!(target: "http", "HTTP connection cap ({}) reached: refused {peer}", self.opts.max_clients);
                    return;
                }
            }
        }
        let _ = stream.set_nodelay(true);
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).filter(|n| *n < WAKE.0).unwrap_or(FIRST_CONN);
        if let Err(e) = self.poll.registry().register(&mut stream, Token(id), Interest::READABLE | Interest::WRITABLE) {
            debug!(target: "http", "connection from {peer} dropped: {e}");
            return;
        }
        let conn = Conn {
            stream,
            peer,
            reader: RequestReader::default(),
            out: Vec::new(),
            written: 0,
            state: State::Reading,
            deadline: Some(Instant::now() + self.opts.timeout),
            keep_alive: false,
            head: false,
            eof: false,
        };
        self.conns.insert(id, conn);
        // Bytes already waiting are reported by the registration's first event.
    }

    fn close(&mut self, mut c: Conn) {
        let _ = self.poll.registry().deregister(&mut c.stream);
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Moves connection `id` as far as its socket allows.
    fn drive(&mut self, id: usize, now: Instant) {
        let Some(mut c) = self.conns.remove(&id) else { return };
        match self.step_conn(id, &mut c, now) {
            Next::Keep => {
                self.conns.insert(id, c);
            }
            Next::Close => self.close(c),
        }
    }

    /// Queues an answer; the connection closes after it unless `keep_alive`.
    fn answer(&self, c: &mut Conn, resp: &HttpResponse, keep_alive: bool, head: bool, now: Instant) {
        c.out.extend_from_slice(&encode_response(resp, keep_alive, head));
        c.keep_alive = keep_alive;
        c.state = State::Writing;
        c.deadline = Some(now + self.opts.timeout);
    }

    fn step_conn(&mut self, id: usize, c: &mut Conn, now: Instant) -> Next {
        let stopping = self.jobs.is_none();
        loop {
            if !flush(c) {
                return Next::Close;
            }
            if !c.out.is_empty() {
                // The rest goes when the socket is writable again.
                return Next::Keep;
            }
            match c.state {
                State::Busy => return Next::Keep,
                State::Writing => {
                    if !c.keep_alive || stopping {
                        return Next::Close;
                    }
                    c.state = State::Reading;
                    c.deadline = Some(now + self.opts.timeout);
                }
                State::Reading => match c.reader.step() {
                    Step::Request(mut req, keep_alive) => {
                        req.peer = Some(c.peer);
                        c.keep_alive = keep_alive;
                        c.head = req.method == "HEAD";
                        let sent = match &self.jobs {
                            Some(jobs) => jobs.try_send(Job { conn: id, req }),
                            None => Err(TrySendError::Disconnected(Job { conn: id, req })),
                        };
                        match sent {
                            Ok(()) => {
                                c.state = State::Busy;
                                c.deadline = None;
                                return Next::Keep;
                            }
                            Err(TrySendError::Full(_)) => {
                                warn!("Request rejected because http work queue depth exceeded");
                                let resp = HttpResponse::with_body(503, "text/plain", "Work queue depth exceeded");
                                self.answer(c, &resp, false, false, now);
                            }
                            Err(TrySendError::Disconnected(_)) => {
                                let resp = HttpResponse::with_body(
                                    503,
                                    "text/plain",
                                    "Request rejected during server shutdown",
                                );
                                self.answer(c, &resp, false, false, now);
                            }
                        }
                    }
                    Step::SendContinue => c.out.extend_from_slice(CONTINUE),
                    Step::Fail(status) => {
                        debug!(target: "http", "Bad HTTP request from {}: answered {status}", c.peer);
                        self.answer(c, &HttpResponse::empty(status), false, false, now);
                    }
                    Step::NeedMore if c.eof => {
                        if c.reader.is_empty() {
                            return Next::Close;
                        }
                        // The client stopped sending in the middle of a request.
                        self.answer(c, &HttpResponse::empty(400), false, false, now);
                    }
                    Step::NeedMore => {
                        let room = c.reader.room().min(self.scratch.len());
                        if room == 0 {
                            self.answer(c, &HttpResponse::empty(400), false, false, now);
                            continue;
                        }
                        let buf = self.scratch.get_mut(..room).unwrap_or(&mut []);
                        match c.stream.read(buf) {
                            Ok(0) => c.eof = true,
                            Ok(n) => {
                                if c.reader.is_empty() {
                                    // A new request's first byte starts its deadline.
                                    c.deadline = Some(now + self.opts.timeout);
                                }
                                c.reader.push(buf.get(..n).unwrap_or(&[]));
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Keep,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(_) => return Next::Close,
                        }
                    }
                },
            }
        }
    }

    /// Writes the workers' answers.
    fn collect_answers(&mut self) {
        let stopping = self.jobs.is_none();
        let now = Instant::now();
        while let Ok(Done { conn, resp }) = self.done.try_recv() {
            let Some(mut c) = self.conns.remove(&conn) else { continue };
            if c.state == State::Busy {
                let keep = c.keep_alive && !stopping;
                let head = c.head;
                self.answer(&mut c, &resp, keep, head, now);
            }
            self.conns.insert(conn, c);
            self.drive(conn, now);
        }
    }

    /// Closes connections past their deadline.
    fn expire(&mut self, now: Instant) {
        let due: Vec<usize> =
            self.conns.iter().filter(|(_, c)| c.deadline.is_some_and(|d| d <= now)).map(|(id, _)| *id).collect();
        for id in due {
            let Some(mut c) = self.conns.remove(&id) else { continue };
            let secs = self.opts.timeout.as_secs_f64();
            match c.state {
                State::Reading if !c.reader.is_empty() => {
                    debug!(target: "http", "Closing HTTP client {}: request deadline ({secs} s) passed", c.peer);
                    // One attempt, never waited on.
                    let _ = c.stream.write(&encode_response(&HttpResponse::empty(408), false, false));
                }
                State::Reading => debug!(target: "http", "Closing idle HTTP client {} after {secs} s", c.peer),
                _ => debug!(target: "http", "Closing HTTP client {}: answer not read within {secs} s", c.peer),
            }
            self.close(c);
        }
    }
}

/// Writes what the socket takes; false on a write error.
fn flush(c: &mut Conn) -> bool {
    while let Some(rest) = c.out.get(c.written..).filter(|r| !r.is_empty()) {
        match c.stream.write(rest) {
            Ok(0) => return false,
            Ok(n) => c.written = c.written.saturating_add(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    c.out.clear();
    c.written = 0;
    true
}
