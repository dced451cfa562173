//! The single-threaded mio event loop shared by the `ping` and `conns` modes: connections,
//! handshakes, batched writes, pong accounting.

use super::*;
// ---------------------------------------------------------------------------------------------
// The event loop shared by `ping` and `conns`.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Connecting,
    Handshaking,
    Ready,
    Closed,
}

pub(crate) struct Conn {
    /// Index in the engine's list, also the mio token.
    pub(crate) idx: usize,
    pub(crate) stream: Option<TcpStream>,
    pub(crate) dec: V1Decoder,
    /// Bytes not yet written.
    pub(crate) out: Vec<u8>,
    pub(crate) phase: Phase,
    pub(crate) got_version: bool,
    pub(crate) got_verack: bool,
    /// WRITABLE interest is registered.
    pub(crate) want_write: bool,
    /// Nonces of our pings not yet answered, oldest first.
    pub(crate) outstanding: VecDeque<u64>,
    /// Next ping sequence number.
    pub(crate) seq: u64,
    /// Matching pongs received.
    pub(crate) pongs: u64,
}

#[derive(Default, Debug)]
pub(crate) struct Stats {
    /// Connections that completed the handshake.
    pub(crate) ready: usize,
    /// Connections that ended before completing the handshake.
    pub(crate) failed: usize,
    /// Handshaken connections that ended afterwards.
    pub(crate) disconnects: usize,
    pub(crate) pongs: u64,
    pub(crate) pings_sent: u64,
    pub(crate) unmatched_pongs: u64,
    pub(crate) rejected_frames: u64,
    pub(crate) node_pings: u64,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) write_calls: u64,
    pub(crate) partial_writes: u64,
}

/// Everything the per-connection handlers need besides the connection itself.
pub(crate) struct Core {
    pub(crate) magic: [u8; 4],
    /// Pings each connection keeps in flight once handshaken (0: answer pings only).
    pub(crate) inflight: usize,
    pub(crate) pings: PingTable,
    pub(crate) st: Stats,
    pub(crate) node: Option<NodeInfo>,
    pub(crate) first_error: Option<String>,
    /// Whether handshaken connections send pings (and a new one for every matching pong).
    pub(crate) pinging: bool,
}

pub(crate) struct Engine {
    pub(crate) addr: SocketAddr,
    pub(crate) poll: Poll,
    pub(crate) events: Events,
    pub(crate) conns: Vec<Conn>,
    pub(crate) buf: Vec<u8>,
    pub(crate) core: Core,
}

impl Engine {
    pub(crate) fn new(addr: SocketAddr, magic: [u8; 4], inflight: usize) -> Result<Engine, String> {
        let poll = Poll::new().map_err(|e| format!("cannot create poll: {e}"))?;
        Ok(Engine {
            addr,
            poll,
            events: Events::with_capacity(1024),
            conns: Vec::new(),
            buf: vec![0u8; READ_BUF],
            core: Core {
                magic,
                inflight,
                pings: if inflight > 0 { PingTable::new(magic, inflight) } else { PingTable::empty() },
                st: Stats::default(),
                node: None,
                first_error: None,
                pinging: inflight > 0,
            },
        })
    }

    /// Starts a non-blocking connection. A failure right away counts as a failed connection.
    pub(crate) fn connect(&mut self) {
        let idx = self.conns.len();
        let mut conn = Conn {
            idx,
            stream: None,
            dec: V1Decoder::new(self.core.magic),
            out: Vec::new(),
            phase: Phase::Connecting,
            got_version: false,
            got_verack: false,
            want_write: true,
            outstanding: VecDeque::new(),
            seq: 0,
            pongs: 0,
        };
        match TcpStream::connect(self.addr) {
            Ok(mut s) => {
                match self.poll.registry().register(&mut s, Token(idx), Interest::READABLE | Interest::WRITABLE) {
                    Ok(()) => conn.stream = Some(s),
                    Err(e) => {
                        conn.phase = Phase::Closed;
                        self.core.fail(format!("register: {e}"), false);
                    }
                }
            }
            Err(e) => {
                conn.phase = Phase::Closed;
                self.core.fail(format!("cannot connect to {}: {e}", self.addr), false);
            }
        }
        self.conns.push(conn);
    }

    /// Runs the event loop until `deadline` or until `stop` holds.
    pub(crate) fn run_until(&mut self, deadline: Instant, stop: impl Fn(&Stats) -> bool) -> Result<(), String> {
        loop {
            if stop(&self.core.st) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            match self.poll.poll(&mut self.events, Some(deadline - now)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("poll: {e}")),
            }
            for ev in self.events.iter() {
                let Some(conn) = self.conns.get_mut(ev.token().0) else { continue };
                self.core.on_event(conn, &mut self.buf, self.poll.registry(), ev.is_error());
            }
        }
    }

    /// Closes every connection that has not completed the handshake.
    pub(crate) fn abandon_unfinished(&mut self, why: &str) {
        for c in &mut self.conns {
            if matches!(c.phase, Phase::Connecting | Phase::Handshaking) {
                self.core.close(c, self.poll.registry(), why.to_string());
            }
        }
    }

    pub(crate) fn alive(&self) -> usize {
        self.core.st.ready - self.core.st.disconnects
    }
}

impl Core {
    pub(crate) fn fail(&mut self, msg: String, after_ready: bool) {
        if after_ready {
            self.st.disconnects += 1;
        } else {
            self.st.failed += 1;
        }
        if self.first_error.is_none() {
            self.first_error = Some(msg);
        }
    }

    pub(crate) fn close(&mut self, c: &mut Conn, registry: &Registry, why: String) {
        if c.phase == Phase::Closed {
            return;
        }
        if let Some(mut s) = c.stream.take() {
            let _ = registry.deregister(&mut s);
        }
        let after_ready = c.phase == Phase::Ready;
        c.phase = Phase::Closed;
        c.out = Vec::new();
        self.fail(why, after_ready);
    }

    pub(crate) fn on_event(&mut self, c: &mut Conn, buf: &mut [u8], registry: &Registry, is_error: bool) {
        if c.phase == Phase::Closed {
            return;
        }
        if c.phase == Phase::Connecting && !self.check_connected(c, registry, is_error) {
            return;
        }
        // Edge-triggered: read until the socket is drained.
        loop {
            let Some(s) = c.stream.as_mut() else { return };
            match s.read(buf) {
                Ok(0) => return self.close(c, registry, "connection closed by the node".into()),
                Ok(n) => {
                    self.st.bytes_in += n as u64;
                    if let Err(e) = self.on_bytes(c, &buf[..n]) {
                        return self.close(c, registry, format!("protocol error: {e}"));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.close(c, registry, format!("read: {e}")),
            }
        }
        self.flush(c, registry);
    }

    /// For a connection still connecting: whether it is now connected (and set up).
    pub(crate) fn check_connected(&mut self, c: &mut Conn, registry: &Registry, is_error: bool) -> bool {
        let Some(s) = c.stream.as_mut() else { return false };
        match s.take_error() {
            Ok(Some(e)) | Err(e) => {
                self.close(c, registry, format!("cannot connect: {e}"));
                return false;
            }
            Ok(None) => {}
        }
        match s.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected && !is_error => return false,
            Err(e) => {
                self.close(c, registry, format!("cannot connect: {e}"));
                return false;
            }
        }
        if let Err(e) = s.set_nodelay(true) {
            self.close(c, registry, format!("TCP_NODELAY: {e}"));
            return false;
        }
        c.phase = Phase::Handshaking;
        push_version(self.magic, &mut c.out);
        true
    }

    /// Feeds received bytes to the connection's decoder and reacts to each frame.
    pub(crate) fn on_bytes(&mut self, c: &mut Conn, data: &[u8]) -> Result<(), String> {
        let Conn { dec, out, phase, got_version, got_verack, outstanding, seq, pongs, .. } = c;
        let magic = self.magic;
        let pings = &self.pings;
        let st = &mut self.st;
        let node = &mut self.node;
        let pinging = self.pinging;
        let inflight = self.inflight;
        dec.decode(data, |frame| {
            let Frame { command, payload, .. } = match frame {
                Ok(f) => f,
                Err(_) => {
                    st.rejected_frames += 1;
                    return;
                }
            };
            match command_str(command) {
                "pong" => {
                    let Some(n) = nonce_of(payload) else {
                        st.unmatched_pongs += 1;
                        return;
                    };
                    if outstanding.front() == Some(&n) {
                        outstanding.pop_front();
                    } else if let Some(pos) = outstanding.iter().position(|&x| x == n) {
                        outstanding.remove(pos);
                    } else {
                        st.unmatched_pongs += 1;
                        return;
                    }
                    st.pongs += 1;
                    *pongs += 1;
                    if pinging {
                        outstanding.push_back(pings.push(*seq, out));
                        *seq += 1;
                        st.pings_sent += 1;
                    }
                }
                "ping" => {
                    if let Some(n) = nonce_of(payload) {
                        encode_message(magic, &NetworkMessage::Pong(n), out);
                    }
                    st.node_pings += 1;
                }
                "version" if !*got_version => {
                    *got_version = true;
                    if node.is_none() {
                        *node = node_info(payload);
                    }
                    encode_message(magic, &NetworkMessage::Verack, out);
                }
                "verack" => *got_verack = true,
                _ => {}
            }
            if *phase == Phase::Handshaking && *got_version && *got_verack {
                *phase = Phase::Ready;
                st.ready += 1;
                if pinging {
                    for _ in 0..inflight {
                        outstanding.push_back(pings.push(*seq, out));
                        *seq += 1;
                        st.pings_sent += 1;
                    }
                }
            }
        })
        .map_err(|e| e.to_string())
    }

    /// One write of everything pending; the remainder waits for WRITABLE.
    pub(crate) fn flush(&mut self, c: &mut Conn, registry: &Registry) {
        let Some(s) = c.stream.as_mut() else { return };
        if !c.out.is_empty() {
            self.st.write_calls += 1;
            match s.write(&c.out) {
                Ok(n) if n == c.out.len() => {
                    self.st.bytes_out += n as u64;
                    c.out.clear();
                }
                Ok(n) => {
                    self.st.bytes_out += n as u64;
                    self.st.partial_writes += 1;
                    c.out.drain(..n);
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                    self.st.partial_writes += 1;
                }
                Err(e) => return self.close(c, registry, format!("write: {e}")),
            }
        }
        let want = !c.out.is_empty();
        if want != c.want_write {
            let interest = if want { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            let Some(s) = c.stream.as_mut() else { return };
            if let Err(e) = registry.reregister(s, Token(c.idx), interest) {
                return self.close(c, registry, format!("reregister: {e}"));
            }
            c.want_write = want;
        }
    }
}
