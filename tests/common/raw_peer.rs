//! The scripted peer of the integration tests ([`RawPeer`]): a blocking loopback connection
//! speaking v1 or, as the BIP324 initiator, v2 ([`Transport`]), delivering the node's messages
//! as `NetworkMessage`s; [`WireEncoder`] turns v1 frames into its wire bytes.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::p2p::message::{CommandString, NetworkMessage};
use bitcoin::p2p::message_blockdata::GetHeadersMessage;
use bitcoin::p2p::message_network::VersionMessage;
use btcloop::base::message::decode_payload;
use btcloop::base::transport::v2::{Role, V2Sender, V2Transport};
use btcloop::base::transport::{Frame, Rejected, V1Decoder, command_str};

use super::{MAGIC, PROTOCOL_VERSION, WAIT, frame, random_u64, version_msg};

/// What the daemon said during [`RawPeer::handshake`].
#[derive(Debug, Clone)]
pub struct Handshaked {
    /// The daemon's `version`.
    pub version: VersionMessage,
    /// The nonce of the daemon's first ping (not answered yet).
    pub ping_nonce: u64,
}

/// The transport a [`RawPeer`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// v1 plaintext frames.
    V1,
    /// BIP324 v2, as the initiator (the node detects it from our first bytes).
    V2,
}

impl Transport {
    /// `BTCLOOP_TEST_TRANSPORT` (`v1` or `v2`); v1 when unset. Any other value panics, so a
    /// misspelt run does not silently test v1 twice.
    pub fn from_env() -> Transport {
        match std::env::var("BTCLOOP_TEST_TRANSPORT") {
            Err(std::env::VarError::NotPresent) => Transport::V1,
            Ok(v) if v == "v1" => Transport::V1,
            Ok(v) if v == "v2" => Transport::V2,
            other => panic!("BTCLOOP_TEST_TRANSPORT must be v1 or v2, not {other:?}"),
        }
    }

    /// What `getpeerinfo` calls it (`transport_protocol_type`).
    pub fn name(self) -> &'static str {
        match self {
            Transport::V1 => "v1",
            Transport::V2 => "v2",
        }
    }
}

/// The receiving half of a [`RawPeer`]'s transport.
enum Receiver {
    V1(V1Decoder),
    /// The whole v2 codec: the handshake, then decryption (its sending half moves to the
    /// [`WireEncoder`] once the handshake is over).
    V2 {
        codec: Box<V2Transport>,
        started: bool,
    },
}

/// The sending half: turns whole v1 frames into what goes on the wire.
enum Sender {
    V1,
    /// `None` until the v2 handshake is over.
    V2(Option<V2Sender>),
}

/// Turns whole v1 frames into a [`RawPeer`]'s wire bytes (v1: as they are; v2: encrypted
/// packets). Shared with the peer, so that a writer thread can encode while the peer reads;
/// bytes must be written in the order they were encoded.
#[derive(Clone)]
pub struct WireEncoder(Arc<Mutex<Sender>>);

impl WireEncoder {
    /// The wire bytes of `frames` (whole v1 frames, back to back). Panics on a partial frame or
    /// before the v2 handshake is over ([`RawPeer::encoder`] completes it).
    pub fn encode_frames(&self, frames: &[u8]) -> Vec<u8> {
        let mut sender = self.0.lock().expect("encoder lock");
        match &mut *sender {
            Sender::V1 => frames.to_vec(),
            Sender::V2(None) => panic!("v2 frames encoded before the handshake is over"),
            Sender::V2(Some(s)) => {
                let mut out = Vec::with_capacity(frames.len() + 64);
                let used = s.encrypt_frames(frames, &mut out).expect("encrypt frames");
                assert_eq!(used, frames.len(), "only whole v1 frames can be sent over v2");
                out
            }
        }
    }
}

/// A scripted peer over a blocking `TcpStream`, speaking v1 or v2 ([`Transport`]). Over v2
/// the BIP324 handshake happens lazily, at the first write: until then the peer has sent
/// nothing, as a v1 peer that has not written yet.
pub struct RawPeer {
    /// The socket.
    pub stream: TcpStream,
    transport: Transport,
    receiver: Receiver,
    encoder: WireEncoder,
    inbox: VecDeque<NetworkMessage>,
    /// Every byte ever read from the socket (wire bytes, the v2 handshake included).
    pub bytes_received: usize,
    /// Bytes read after the transport's own handshake: over v1 all of them; over v2 those
    /// after the node's version packet (its messages). Zero means the node sent no message.
    pub message_bytes_received: usize,
    closed: bool,
    buf: Vec<u8>,
    /// `getheaders` the daemon sent. Unless [`RawPeer::keep_getheaders`] is set they are set
    /// aside here instead of the inbox: a scripted peer serves no headers, and the daemon's
    /// initial headers sync asks the first peer it meets.
    pub getheaders: Vec<GetHeadersMessage>,
    /// Deliver `getheaders` through `recv` like any other message.
    pub keep_getheaders: bool,
}

/// Read timeout slice: reads wake at least this often to check their deadline.
const READ_SLICE: Duration = Duration::from_millis(50);

/// Files a decoded frame: `getheaders` aside unless kept, anything else to the inbox.
fn deliver(
    inbox: &mut VecDeque<NetworkMessage>,
    getheaders: &mut Vec<GetHeadersMessage>,
    keep_getheaders: bool,
    f: Result<Frame<'_>, Rejected<'_>>,
) {
    match f {
        Ok(frame) => {
            let cmd = command_str(frame.command);
            // What does not decode (e.g. a pre-BIP31 ping without a nonce) is kept as
            // `Unknown` with its real type.
            let msg = decode_payload(cmd, frame.payload).unwrap_or_else(|_| NetworkMessage::Unknown {
                command: CommandString::try_from(cmd.to_string()).expect("valid command"),
                payload: frame.payload.to_vec(),
            });
            match msg {
                NetworkMessage::GetHeaders(g) if !keep_getheaders => getheaders.push(g),
                msg => inbox.push_back(msg),
            }
        }
        Err(r) => panic!("daemon sent a bad frame: {:?}", r.reason),
    }
}

impl RawPeer {
    /// Connects to `addr` over the transport `BTCLOOP_TEST_TRANSPORT` names
    /// ([`Transport::from_env`]).
    pub fn connect(addr: SocketAddr) -> RawPeer {
        Self::connect_with(addr, Transport::from_env())
    }

    /// Connects to `addr` over v1 whatever the environment says: for tests that write
    /// hand-made v1 bytes or talk to a node with `--v2transport=0`.
    pub fn connect_v1(addr: SocketAddr) -> RawPeer {
        Self::connect_with(addr, Transport::V1)
    }

    /// Connects to `addr` over `transport`.
    pub fn connect_with(addr: SocketAddr, transport: Transport) -> RawPeer {
        let stream = TcpStream::connect_timeout(&addr, WAIT).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Self::with_transport(stream, transport)
    }

    /// Connects with small kernel buffers (`SO_RCVBUF`, `SO_SNDBUF`), so that traffic backs up
    /// soon when one side stops reading; the transport is [`Transport::from_env`]'s.
    pub fn connect_small_buffers(addr: SocketAddr, size: usize) -> RawPeer {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
            .expect("socket");
        s.set_recv_buffer_size(size).expect("SO_RCVBUF");
        s.set_send_buffer_size(size).expect("SO_SNDBUF");
        s.connect_timeout(&addr.into(), WAIT).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Self::with_transport(s.into(), Transport::from_env())
    }

    /// Wraps an accepted or connected stream, over v1 (the node's dials to scripted listeners
    /// are v1: those tests run it with `--v2transport=0`).
    pub fn from_stream(stream: TcpStream) -> RawPeer {
        Self::with_transport(stream, Transport::V1)
    }

    /// Wraps a stream we connected to the node, over `transport` (we are the v2 initiator).
    pub fn with_transport(stream: TcpStream, transport: Transport) -> RawPeer {
        stream.set_nodelay(true).expect("nodelay");
        stream.set_read_timeout(Some(READ_SLICE)).expect("read timeout");
        // A daemon that stops reading makes `send` fail instead of hanging the test.
        stream.set_write_timeout(Some(WAIT)).expect("write timeout");
        let (receiver, sender) = match transport {
            Transport::V1 => (Receiver::V1(V1Decoder::new(MAGIC)), Sender::V1),
            Transport::V2 => {
                let codec = V2Transport::new(MAGIC, Role::Initiator).expect("v2 key");
                (Receiver::V2 { codec: Box::new(codec), started: false }, Sender::V2(None))
            }
        };
        RawPeer {
            stream,
            transport,
            receiver,
            encoder: WireEncoder(Arc::new(Mutex::new(sender))),
            inbox: VecDeque::new(),
            bytes_received: 0,
            message_bytes_received: 0,
            closed: false,
            buf: vec![0u8; 64 * 1024],
            getheaders: Vec::new(),
            keep_getheaders: false,
        }
    }

    /// The transport this peer speaks.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Sends `msg`; panics if the write fails.
    pub fn send(&mut self, msg: &NetworkMessage) {
        self.send_frames(&frame(msg));
    }

    /// Sends whole v1 frames (e.g. [`raw_frame`]'s, or several back to back) through the
    /// transport: over v1 as they are, over v2 encrypted into packets (one write either way).
    /// Panics if the write fails.
    pub fn send_frames(&mut self, frames: &[u8]) {
        let bytes = self.encode_frames(frames);
        self.send_raw(&bytes);
    }

    /// The wire bytes of whole v1 `frames` over this peer's transport, to be written next
    /// (e.g. in pieces) with [`RawPeer::send_raw`]: over v2 encoding advances the cipher, so
    /// bytes must be sent in the order they were encoded. Completes the v2 handshake first.
    pub fn encode_frames(&mut self, frames: &[u8]) -> Vec<u8> {
        self.encoder().encode_frames(frames)
    }

    /// [`RawPeer::encode_frames`] of one message.
    pub fn encode(&mut self, msg: &NetworkMessage) -> Vec<u8> {
        self.encode_frames(&frame(msg))
    }

    /// The encoder of this peer's transport, for a thread that writes to a clone of the stream
    /// (the handshake is completed first; panics if it fails).
    pub fn encoder(&mut self) -> WireEncoder {
        self.start_transport().unwrap_or_else(|e| panic!("v2 handshake with the daemon failed: {e}"));
        self.encoder.clone()
    }

    /// Writes raw bytes (over v2 after completing the handshake, so they land where a packet
    /// would); panics if the write fails.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.try_send_raw(bytes).unwrap_or_else(|e| panic!("write to daemon failed: {e}"));
    }

    /// Writes raw bytes (over v2 after completing the handshake).
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.start_transport()?;
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Over v2, sends our key and garbage if not done yet and reads until the handshake is
    /// over (messages that arrive with the node's version packet are kept). Nothing over v1.
    fn start_transport(&mut self) -> io::Result<()> {
        let Receiver::V2 { codec, started } = &mut self.receiver else { return Ok(()) };
        if codec.is_ready() {
            return Ok(());
        }
        if !*started {
            *started = true;
            let mut out = Vec::new();
            codec.take_handshake(&mut out);
            self.stream.write_all(&out)?;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            if let Receiver::V2 { codec, .. } = &self.receiver {
                if codec.is_ready() {
                    return Ok(());
                }
            }
            if self.closed {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the daemon closed during the v2 handshake",
                ));
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, format!("no v2 handshake within {WAIT:?}")));
            }
            self.read_some(deadline);
        }
    }

    /// Feeds the `n` bytes just read into `buf` to the v2 codec: one byte at a time while the
    /// handshake lasts (so that [`RawPeer::message_bytes_received`] counts exactly what follows
    /// it; sending our terminator and version packet as soon as they are due), the rest at once.
    fn decode_v2(&mut self, n: usize) {
        let Receiver::V2 { codec, .. } = &mut self.receiver else { unreachable!() };
        let (inbox, getheaders, keep) = (&mut self.inbox, &mut self.getheaders, self.keep_getheaders);
        let mut chunk = &self.buf[..n];
        while !chunk.is_empty() && !codec.is_ready() {
            codec
                .decode(&chunk[..1], |f| deliver(inbox, getheaders, keep, f))
                .unwrap_or_else(|e| panic!("daemon's v2 handshake failed: {e}"));
            chunk = &chunk[1..];
            if codec.has_handshake() {
                let mut out = Vec::new();
                codec.take_handshake(&mut out);
                if self.stream.write_all(&out).is_err() {
                    self.closed = true;
                    return;
                }
            }
            if codec.is_ready() {
                let sender = codec.take_sender().expect("v2 sender once ready");
                *self.encoder.0.lock().expect("encoder lock") = Sender::V2(Some(sender));
            }
        }
        self.message_bytes_received += chunk.len();
        codec
            .decode(chunk, |f| deliver(inbox, getheaders, keep, f))
            .unwrap_or_else(|e| panic!("daemon sent a broken v2 stream: {e}"));
    }

    /// Reads once (waiting at most until `deadline`) and decodes what arrived. Returns false if
    /// nothing arrived (timeout or closed).
    fn read_some(&mut self, deadline: Instant) -> bool {
        if self.closed {
            return false;
        }
        loop {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let slice = (deadline - now).min(READ_SLICE).max(Duration::from_millis(1));
            self.stream.set_read_timeout(Some(slice)).expect("read timeout");
            match self.stream.read(&mut self.buf) {
                Ok(0) => {
                    self.closed = true;
                    return false;
                }
                Ok(n) => {
                    self.bytes_received += n;
                    match &mut self.receiver {
                        Receiver::V1(decoder) => {
                            self.message_bytes_received += n;
                            let (inbox, getheaders, keep) =
                                (&mut self.inbox, &mut self.getheaders, self.keep_getheaders);
                            decoder
                                .decode(&self.buf[..n], |f| deliver(inbox, getheaders, keep, f))
                                .unwrap_or_else(|e| panic!("daemon sent a broken stream: {e}"));
                        }
                        Receiver::V2 { .. } => self.decode_v2(n),
                    }
                    return true;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(_) => {
                    // Reset and friends: the daemon closed the connection.
                    self.closed = true;
                    return false;
                }
            }
        }
    }

    /// The next message, waiting at most `timeout`; `None` on timeout or close.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<NetworkMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.inbox.pop_front() {
                return Some(m);
            }
            if !self.read_some(deadline) && (self.closed || Instant::now() >= deadline) {
                return None;
            }
        }
    }

    /// The next message, waiting at most [`WAIT`].
    pub fn recv(&mut self) -> Option<NetworkMessage> {
        self.recv_timeout(WAIT)
    }

    /// Skips messages until one of type `cmd` arrives (returned) or `timeout` passes (`None`).
    pub fn recv_until(&mut self, cmd: &str, timeout: Duration) -> Option<NetworkMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self.recv_timeout(left)?;
            if m.cmd() == cmd {
                return Some(m);
            }
        }
    }

    /// The next message, which must be of type `cmd`.
    pub fn expect(&mut self, cmd: &str) -> NetworkMessage {
        match self.recv() {
            Some(m) if m.cmd() == cmd => m,
            Some(m) => panic!("expected {cmd}, got {m:?}"),
            None => panic!("expected {cmd}, got nothing within {WAIT:?} (closed: {})", self.closed),
        }
    }

    /// Asserts that nothing arrives for `d` and the connection stays open.
    pub fn assert_silent(&mut self, d: Duration) {
        if let Some(m) = self.recv_timeout(d) {
            panic!("expected silence, got {m:?}");
        }
        assert!(!self.closed, "connection closed while expecting silence");
    }

    /// Whether the daemon closes the connection within `timeout` (a read returns 0 bytes or an
    /// error). Messages that arrive meanwhile are kept.
    pub fn is_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.closed && Instant::now() < deadline {
            self.read_some(deadline);
        }
        self.closed
    }

    /// Whether a close was seen.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Messages received but not yet taken.
    pub fn pending(&self) -> usize {
        self.inbox.len()
    }

    /// Inbound handshake with a default user agent; see [`RawPeer::handshake_as`].
    pub fn handshake(&mut self) -> Handshaked {
        self.handshake_as("/rawpeer:1.0/")
    }

    /// Sends `version` (70016, random nonce); expects version, wtxidrelay, sendaddrv2, verack in
    /// that order; sends verack; expects sendheaders, sendcmpct (BIP152: the daemon provides
    /// compact blocks), then a ping.
    pub fn handshake_as(&mut self, user_agent: &str) -> Handshaked {
        self.handshake_with(user_agent, false)
    }

    /// [`RawPeer::handshake`], sending `sendaddrv2` (BIP155) after `version`: the daemon then
    /// sends addresses to it as `addrv2`.
    pub fn handshake_addrv2(&mut self) -> Handshaked {
        self.handshake_with("/rawpeer:1.0/", true)
    }

    fn handshake_with(&mut self, user_agent: &str, addrv2: bool) -> Handshaked {
        self.send(&NetworkMessage::Version(version_msg(PROTOCOL_VERSION, user_agent, random_u64())));
        if addrv2 {
            self.send(&NetworkMessage::SendAddrV2);
        }
        let NetworkMessage::Version(version) = self.expect("version") else { unreachable!() };
        self.expect("wtxidrelay");
        self.expect("sendaddrv2");
        self.expect("verack");
        self.send(&NetworkMessage::Verack);
        self.expect("sendheaders");
        let NetworkMessage::SendCmpct(cmpct) = self.expect("sendcmpct") else { unreachable!() };
        assert!(!cmpct.send_compact && cmpct.version == 2, "sendcmpct(0, 2) after verack: {cmpct:?}");
        let NetworkMessage::Ping(ping_nonce) = self.expect("ping") else { unreachable!() };
        Handshaked { version, ping_nonce }
    }

    /// Sends ping(`nonce`) and expects pong(`nonce`) as the next message that is not one of the
    /// daemon's own pings (those are answered).
    pub fn ping_pong(&mut self, nonce: u64) {
        self.send(&NetworkMessage::Ping(nonce));
        loop {
            match self.recv() {
                Some(NetworkMessage::Pong(n)) if n == nonce => return,
                Some(NetworkMessage::Ping(n)) => self.send(&NetworkMessage::Pong(n)),
                Some(m) => panic!("expected pong({nonce}), got {m:?}"),
                None => panic!("no pong({nonce}) within {WAIT:?} (closed: {})", self.closed),
            }
        }
    }
}
