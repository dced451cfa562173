//! The single-threaded mio event loop shared by the `ping`, `conns` and `headers` modes:
//! non-blocking connects, edge-triggered reads, batched writes, handshake and failure
//! bookkeeping. What a connection says is decided by a per-mode [`Protocol`].

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Connecting,
    Handshaking,
    Ready,
    Closed,
}

/// What a mode does with a connection: the bytes it receives and what it sends in reply.
pub(crate) trait Protocol {
    /// The mode's per-connection state.
    type State;
    /// The network magic (used for our `version`).
    fn magic(&self) -> [u8; 4];
    /// State for a new connection.
    fn new_state(&self) -> Self::State;
    /// Handles bytes received on a connection, appending anything to send to `link.out`.
    /// Marks the handshake complete with [`Link::try_ready`]. An error closes the connection.
    fn on_bytes(&mut self, state: &mut Self::State, link: &mut Link, data: &[u8]) -> Result<(), String>;
}

/// The protocol-visible part of a connection: its handshake progress and pending output.
pub(crate) struct Link {
    /// Bytes not yet written.
    pub(crate) out: Vec<u8>,
    pub(crate) phase: Phase,
    pub(crate) got_version: bool,
    pub(crate) got_verack: bool,
}

/// A frame every mode handles alike, as reported by [`Link::on_control`].
pub(crate) enum Control {
    /// The node's ping (answered).
    Ping,
    /// The node's first `version` (answered with `verack`).
    Version,
}

impl Link {
    /// Answers the node's `ping` with a `pong` and its first `version` with a `verack`, and notes
    /// its `verack`. Returns which of the first two `command` was, if any.
    #[inline]
    pub(crate) fn on_control(&mut self, magic: [u8; 4], command: &str, payload: &[u8]) -> Option<Control> {
        match command {
            "ping" => {
                if let Some(n) = nonce_of(payload) {
                    encode_message(magic, &NetworkMessage::Pong(n), &mut self.out);
                }
                Some(Control::Ping)
            }
            "version" if !self.got_version => {
                self.got_version = true;
                encode_message(magic, &NetworkMessage::Verack, &mut self.out);
                Some(Control::Version)
            }
            "verack" => {
                self.got_verack = true;
                None
            }
            _ => None,
        }
    }

    /// Moves a handshaking connection that got both `version` and `verack` to [`Phase::Ready`];
    /// returns whether it did (the protocol then starts sending its requests).
    #[inline]
    pub(crate) fn try_ready(&mut self) -> bool {
        if self.phase == Phase::Handshaking && self.got_version && self.got_verack {
            self.phase = Phase::Ready;
            return true;
        }
        false
    }
}

pub(crate) struct Conn<S> {
    /// Index in the engine's list, also the mio token.
    pub(crate) idx: usize,
    pub(crate) stream: Option<TcpStream>,
    pub(crate) link: Link,
    /// The BIP324 codec when the engine speaks v2: what arrives is decrypted and handed to the
    /// mode re-framed as v1; `link.out`'s v1 frames are encrypted into `wire` as they are sent.
    pub(crate) v2: Option<Box<btcloop::base::transport::v2::V2Transport>>,
    /// Bytes to write as they are (v2: handshake and encrypted packets).
    pub(crate) wire: Vec<u8>,
    /// WRITABLE interest is registered.
    pub(crate) want_write: bool,
    pub(crate) state: S,
}

/// Connection and transport counters common to every mode.
#[derive(Default, Debug)]
pub(crate) struct LinkStats {
    /// Connections that completed the handshake.
    pub(crate) ready: usize,
    /// Connections that ended before completing the handshake.
    pub(crate) failed: usize,
    /// Handshaken connections that ended afterwards.
    pub(crate) disconnects: usize,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) write_calls: u64,
    pub(crate) partial_writes: u64,
}

/// Everything the per-connection handlers need besides the connection itself.
pub(crate) struct Core<P> {
    pub(crate) proto: P,
    pub(crate) st: LinkStats,
    pub(crate) first_error: Option<String>,
    /// v2: the decrypted messages of one read, re-framed as v1.
    pub(crate) plain: Vec<u8>,
}

pub(crate) struct Engine<P: Protocol> {
    pub(crate) addr: SocketAddr,
    /// Speak BIP324 v2 on new connections.
    pub(crate) v2: bool,
    pub(crate) poll: Poll,
    pub(crate) events: Events,
    pub(crate) conns: Vec<Conn<P::State>>,
    pub(crate) buf: Vec<u8>,
    pub(crate) core: Core<P>,
}

impl<P: Protocol> Engine<P> {
    /// An engine with no connections yet, reading into a buffer of `read_buf` bytes, whose
    /// connections speak BIP324 v2 when `v2`.
    pub(crate) fn new(addr: SocketAddr, v2: bool, proto: P, read_buf: usize) -> Result<Engine<P>, String> {
        let poll = Poll::new().map_err(|e| format!("cannot create poll: {e}"))?;
        Ok(Engine {
            addr,
            v2,
            poll,
            events: Events::with_capacity(1024),
            conns: Vec::new(),
            buf: vec![0u8; read_buf],
            core: Core { proto, st: LinkStats::default(), first_error: None, plain: Vec::new() },
        })
    }

    /// Starts a non-blocking connection. A failure right away counts as a failed connection.
    pub(crate) fn connect(&mut self) {
        let idx = self.conns.len();
        let mut conn = Conn {
            idx,
            stream: None,
            link: Link { out: Vec::new(), phase: Phase::Connecting, got_version: false, got_verack: false },
            v2: None,
            wire: Vec::new(),
            want_write: true,
            state: self.core.proto.new_state(),
        };
        if self.v2 {
            use btcloop::base::transport::v2::{Role, V2Transport};
            match V2Transport::new(self.core.proto.magic(), Role::Initiator) {
                Ok(mut codec) => {
                    codec.take_handshake(&mut conn.wire);
                    conn.v2 = Some(Box::new(codec));
                }
                Err(e) => {
                    conn.link.phase = Phase::Closed;
                    self.core.fail(format!("v2: {e}"), false);
                    self.conns.push(conn);
                    return;
                }
            }
        }
        match TcpStream::connect(self.addr) {
            Ok(mut s) => {
                match self.poll.registry().register(&mut s, Token(idx), Interest::READABLE | Interest::WRITABLE) {
                    Ok(()) => conn.stream = Some(s),
                    Err(e) => {
                        conn.link.phase = Phase::Closed;
                        self.core.fail(format!("register: {e}"), false);
                    }
                }
            }
            Err(e) => {
                conn.link.phase = Phase::Closed;
                self.core.fail(format!("cannot connect to {}: {e}", self.addr), false);
            }
        }
        self.conns.push(conn);
    }

    /// Opens `peers` connections and waits for all of them to complete the handshake; fails
    /// unless every one did within [`HANDSHAKE_TIMEOUT`]. Returns how long that took.
    pub(crate) fn handshake_all(&mut self, peers: usize) -> Result<Duration, String> {
        let t0 = Instant::now();
        for _ in 0..peers {
            self.connect();
        }
        self.run_until(t0 + HANDSHAKE_TIMEOUT, |st| st.ready + st.failed >= peers)?;
        let st = &self.core.st;
        if st.ready < peers || st.disconnects > 0 {
            let why = self
                .core
                .first_error
                .clone()
                .unwrap_or_else(|| format!("timed out after {}s", HANDSHAKE_TIMEOUT.as_secs()));
            return Err(format!(
                "only {} of {peers} connections to {} completed the handshake: {why}",
                st.ready - st.disconnects,
                self.addr
            ));
        }
        Ok(t0.elapsed())
    }

    /// Runs the event loop until `deadline` or until `stop` holds.
    pub(crate) fn run_until(&mut self, deadline: Instant, stop: impl Fn(&LinkStats) -> bool) -> Result<(), String> {
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
            if matches!(c.link.phase, Phase::Connecting | Phase::Handshaking) {
                self.core.close(c, self.poll.registry(), why.to_string());
            }
        }
    }

    pub(crate) fn alive(&self) -> usize {
        self.core.st.ready - self.core.st.disconnects
    }
}

/// Stops a measurement window once every handshaken connection has gone.
pub(crate) fn everyone_gone(st: &LinkStats) -> bool {
    st.disconnects >= st.ready
}

impl<P: Protocol> Core<P> {
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

    pub(crate) fn close(&mut self, c: &mut Conn<P::State>, registry: &Registry, why: String) {
        if c.link.phase == Phase::Closed {
            return;
        }
        if let Some(mut s) = c.stream.take() {
            let _ = registry.deregister(&mut s);
        }
        let after_ready = c.link.phase == Phase::Ready;
        c.link.phase = Phase::Closed;
        c.link.out = Vec::new();
        c.wire = Vec::new();
        c.v2 = None;
        self.fail(why, after_ready);
    }

    pub(crate) fn on_event(&mut self, c: &mut Conn<P::State>, buf: &mut [u8], registry: &Registry, is_error: bool) {
        if c.link.phase == Phase::Closed {
            return;
        }
        if c.link.phase == Phase::Connecting && !self.check_connected(c, registry, is_error) {
            return;
        }
        // Edge-triggered: read until the socket is drained.
        loop {
            let Some(s) = c.stream.as_mut() else { return };
            match s.read(buf) {
                Ok(0) => return self.close(c, registry, "connection closed by the node".into()),
                Ok(n) => {
                    self.st.bytes_in += n as u64;
                    let was_ready = c.link.phase == Phase::Ready;
                    let res = match c.v2.as_mut() {
                        None => self.proto.on_bytes(&mut c.state, &mut c.link, &buf[..n]),
                        Some(codec) => {
                            // Decrypted messages, re-framed as v1 (with their checksum) for the mode.
                            let magic = self.proto.magic();
                            let plain = &mut self.plain;
                            plain.clear();
                            let r = codec.decode_owned(&buf[..n], |d| {
                                d.lend(&mut |f| {
                                    if let Ok(f) = f {
                                        let cmd = btcloop::base::transport::command_str(f.command);
                                        btcloop::base::transport::encode_frame(magic, cmd, plain, |b| {
                                            b.extend_from_slice(f.payload)
                                        });
                                    }
                                })
                            });
                            codec.take_handshake(&mut c.wire);
                            match r {
                                Err(e) => Err(format!("v2: {e}")),
                                Ok(()) => self.proto.on_bytes(&mut c.state, &mut c.link, plain),
                            }
                        }
                    };
                    // Counted before any error, so that closing counts a disconnect after it.
                    if !was_ready && c.link.phase == Phase::Ready {
                        self.st.ready += 1;
                    }
                    if let Err(e) = res {
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
    pub(crate) fn check_connected(&mut self, c: &mut Conn<P::State>, registry: &Registry, is_error: bool) -> bool {
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
        c.link.phase = Phase::Handshaking;
        push_version(self.proto.magic(), &mut c.link.out);
        true
    }

    /// One write of everything pending; the remainder waits for WRITABLE.
    pub(crate) fn flush(&mut self, c: &mut Conn<P::State>, registry: &Registry) {
        if let Some(codec) = c.v2.as_mut() {
            // Whole v1 frames are encrypted once the handshake is over (before that, nothing).
            match codec.encrypt_frames(&c.link.out, &mut c.wire) {
                Ok(used) => {
                    c.link.out.drain(..used);
                }
                Err(e) => return self.close(c, registry, format!("v2: {e}")),
            }
        }
        let Some(s) = c.stream.as_mut() else { return };
        let out = if c.v2.is_some() { &mut c.wire } else { &mut c.link.out };
        if !out.is_empty() {
            self.st.write_calls += 1;
            match s.write(out) {
                Ok(n) if n == out.len() => {
                    self.st.bytes_out += n as u64;
                    out.clear();
                }
                Ok(n) => {
                    self.st.bytes_out += n as u64;
                    self.st.partial_writes += 1;
                    out.drain(..n);
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                    self.st.partial_writes += 1;
                }
                Err(e) => return self.close(c, registry, format!("write: {e}")),
            }
        }
        let want = if c.v2.is_some() { !c.wire.is_empty() } else { !c.link.out.is_empty() };
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
