//! The message-handler thread (Core's `ThreadMessageHandler`): owns every peer's protocol state.
//! Visits the peers that have messages in shuffled order, one message per peer per pass
//! (`ProcessMessages`), runs `SendMessages` for each visited peer and, every 100 ms, for all;
//! writes what it queued (optimistically, as Core's `PushMessage`), and sleeps on the condvar
//! when no peer has work. It also answers the RPC and metrics threads' questions
//! ([`crate::daemon::inspect`]) from the state it owns (`answer.rs`).

mod answer;
mod connman;

pub use connman::ConnParts;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bitcoin::p2p::message::NetworkMessage;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use tracing::{debug, info, warn};

use crate::base::counters::{Direction, Disconnects, MsgType, NetMsgStats, PeerMsgCounts};
use crate::base::message::{command_of, decode_payload, encode_headers, encode_message_reusing};
use crate::base::netaddr::{NetKind, net_kind};
use crate::base::peer::{ConnectionType, DisconnectReason, PeerId, PeerMap};
use crate::base::time::{Clock, unix_now};
use crate::base::totals::NetTotals;
use crate::base::transport::{HEADER_SIZE, command_str};
use crate::daemon::capture::PeerCapture;
use crate::daemon::config::PeerSelector;
use crate::daemon::net::peer_queues::PeerQueues;
use crate::daemon::net::wake::{MsgWake, NetEvent, SocketCommand, SocketControl};
use crate::daemon::node::disk_writer::{DiskJob, DiskWriter};
use crate::engine::addrman::AddrEntry;
use crate::engine::policy::discourage::Discouraged;
use crate::engine::protocol::{LinkTimes, Now, Outbox, Peer, Protocol, addr};

/// Longest sleep when idle (Core: 100 ms).
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// How long to spin for new messages before sleeping.
const SPIN: Duration = Duration::from_micros(50);
/// How often every peer's timers run.
const SWEEP_EVERY: Duration = Duration::from_millis(100);
/// Queued output is written at the latest after this many passes.
const FLUSH_EVERY_PASSES: u32 = 8;
/// ... or once the passes since the last write processed this many payload bytes, so a reply
/// to a small message does not wait while other peers' large messages are processed.
const FLUSH_AFTER_PROCESSED: usize = 256 * 1024;
/// A peer's queue is written at once when it holds this much (a `headers` answer, say).
const FLUSH_BYTES: usize = 64 * 1024;
/// Core's `DUMP_PEERS_INTERVAL`: how often `peers.dat` is written.
const DUMP_PEERS_INTERVAL: Duration = Duration::from_secs(15 * 60);

struct Entry {
    queues: Arc<PeerQueues>,
    peer: Peer,
    in_work: bool,
    dirty: bool,
    closing: bool,
    /// Open capture files (`--capturemessages`).
    capture: Option<Box<PeerCapture>>,
    /// Its traffic is logged in detail (`--debugpeer`).
    traced: bool,
    /// Our end of the connection.
    local_addr: Option<SocketAddr>,
    /// The peer's network.
    net: NetKind,
    /// Messages and bytes per message type.
    counts: PeerMsgCounts,
    /// Messages whose payload failed to decode.
    undecodable: u64,
}

/// What the message handler shares with the rest of the node.
pub struct HandlerParts {
    /// Network magic.
    pub magic: [u8; 4],
    /// Its wake-up.
    pub wake: Arc<MsgWake>,
    /// The socket handler's control handle.
    pub ctl: SocketControl,
    /// Node clock.
    pub clock: Clock,
    /// Node-wide counters.
    pub totals: Arc<NetTotals>,
    /// Recently misbehaving addresses.
    pub discouraged: Arc<Discouraged>,
    /// The network's data directory when messages are captured (`--capturemessages`).
    pub capture_dir: Option<PathBuf>,
    /// Peers whose traffic is logged in detail (`--debugpeer`).
    pub debug_peers: Vec<PeerSelector>,
    /// Where the address book is saved (`peers.dat`), if anywhere.
    pub peers_file: Option<PathBuf>,
    /// The disk-writer thread that writes `headers.dat` and `peers.dat` (without it, the
    /// handler writes them itself).
    pub disk: Option<DiskWriter>,
    /// The network's default port.
    pub default_port: u16,
    /// Connection management.
    pub conn: ConnParts,
}

/// The message handler's state; [`MessageHandler::run`] is the thread body.
pub struct MessageHandler {
    peers: PeerMap<Entry>,
    cx: Cx,
    wake: Arc<MsgWake>,
    work: Vec<PeerId>,
    rng: SmallRng,
    /// Randomness for address relay's queue replacement.
    rng_std: rand::rngs::StdRng,
    /// Connection management: the outbound planner and what it needs.
    conn: ConnParts,
    /// The network's default port.
    default_port: u16,
    /// Block-relay-only peers closed by the shutdown, kept for `anchors.dat`.
    shutdown_anchors: Vec<AddrEntry>,
    /// When extra outbound peers are next looked for.
    next_extra_peer_check: Instant,
}

/// Everything per-peer processing uses besides the peer itself (kept apart from `peers` so
/// one lookup gives a peer and the rest can still be borrowed).
struct Cx {
    protocol: Protocol,
    magic: [u8; 4],
    ctl: SocketControl,
    clock: Clock,
    totals: Arc<NetTotals>,
    /// Peers with output not yet written.
    dirty: Vec<PeerId>,
    /// Reused buffer for the payload being processed.
    payload: Vec<u8>,
    /// Payload bytes processed since queued output was last written.
    processed_since_flush: usize,
    /// Recently misbehaving addresses (shared with the socket handler).
    discouraged: Arc<Discouraged>,
    /// Addresses discouraged this pass whose other connections must be dropped too.
    newly_discouraged: Vec<IpAddr>,
    /// Where captures go, when on.
    capture_dir: Option<PathBuf>,
    /// `--debugpeer` selectors.
    debug_peers: Vec<PeerSelector>,
    /// Node-wide message counts.
    msg_stats: NetMsgStats,
    /// Disconnects by reason and the most recent ones.
    disconnects: Disconnects,
    /// Pause events (receive, send) of connections already closed.
    closed_pauses: (u64, u64),
    /// Where the address book is saved.
    peers_file: Option<PathBuf>,
    /// The disk-writer thread's handle; dropped with the handler, which lets it drain and end.
    disk: Option<DiskWriter>,
    /// Addresses to relay (source peer, address, reachable), handed out after each pass.
    pending_relays: Vec<(PeerId, AddrEntry, bool)>,
}

/// Counts messages for one peer and node-wide.
struct Tally<'a> {
    peer: &'a mut PeerMsgCounts,
    global: &'a mut NetMsgStats,
    conn: ConnectionType,
    net: NetKind,
}

impl Tally<'_> {
    fn add(&mut self, dir: Direction, command: &str, payload_len: usize) {
        let t = MsgType::of(command);
        let bytes = (payload_len + HEADER_SIZE) as u64;
        self.peer.add(dir, t, bytes);
        self.global.add(dir, self.conn, self.net, t, bytes);
    }
}

/// The Outbox of one peer: encodes straight into its send queue.
struct PeerOut<'a> {
    queues: &'a PeerQueues,
    magic: [u8; 4],
    /// The payload being answered and its verified checksum, reused if a reply echoes it.
    echo: Option<(&'a [u8], [u8; 4])>,
    /// Where sent messages are captured, if on.
    capture: Option<&'a mut PeerCapture>,
    /// Log each sent message in detail (`--debugpeer`).
    traced: bool,
    tally: Tally<'a>,
    /// What the calls produced so far.
    out: Produced,
}

/// What one protocol call produced for a peer.
#[derive(Default)]
struct Produced {
    sent: bool,
    /// Bytes in the send queue after the last message queued.
    queued: usize,
    disconnect: Option<DisconnectReason>,
    discourage: Option<IpAddr>,
    relays: Vec<(AddrEntry, bool)>,
}

impl PeerOut<'_> {
    fn produced(self) -> Produced {
        self.out
    }
}

impl<'a> PeerOut<'a> {
    fn new(
        queues: &'a PeerQueues,
        magic: [u8; 4],
        echo: Option<(&'a [u8], [u8; 4])>,
        capture: Option<&'a mut PeerCapture>,
        traced: bool,
        tally: Tally<'a>,
    ) -> Self {
        PeerOut { queues, magic, echo, capture, traced, tally, out: Produced::default() }
    }

    /// Captures the frame the last `encode` appended to `buf` from `start`.
    fn capture_sent(capture: &mut Option<&'a mut PeerCapture>, command: &str, buf: &[u8], start: usize) {
        if let Some(c) = capture.as_deref_mut() {
            let payload = buf.get(start + HEADER_SIZE..).unwrap_or(&[]);
            if let Err(e) = c.sent(command, payload) {
                warn!("message capture failed: {e}");
            }
        }
    }
}

impl PeerOut<'_> {
    /// Appends one frame with `encode` (which returns its payload length), captures it, and
    /// logs it; `None` when the peer is being disconnected (nothing is queued then).
    fn queue(&mut self, command: &str, encode: impl FnOnce(&mut Vec<u8>) -> usize) -> Option<usize> {
        if self.out.disconnect.is_some() {
            return None;
        }
        let mut len = 0;
        let capture = &mut self.capture;
        self.out.queued = self.queues.queue_send(|buf| {
            let start = buf.len();
            len = encode(buf);
            Self::capture_sent(capture, command, buf, start);
        });
        debug!(target: "net", "sending {command} ({len} bytes) peer={}", self.queues.id);
        self.tally.add(Direction::Sent, command, len);
        self.out.sent = true;
        Some(len)
    }
}

impl Outbox for PeerOut<'_> {
    fn send(&mut self, msg: &NetworkMessage) {
        let (magic, echo) = (self.magic, self.echo);
        let command = command_of(msg);
        if let Some(len) = self.queue(command, |buf| encode_message_reusing(magic, msg, buf, echo)) {
            if self.traced {
                debug!(target: "debugpeer", "peer={} sent {command} ({len} bytes): {msg:?}", self.queues.id);
            }
        }
    }

    fn send_headers<'h>(&mut self, headers: impl ExactSizeIterator<Item = &'h bitcoin::block::Header>) {
        let magic = self.magic;
        if let Some(len) = self.queue("headers", |buf| encode_headers(magic, headers, buf)) {
            if self.traced {
                debug!(target: "debugpeer", "peer={} sent headers ({len} bytes)", self.queues.id);
            }
        }
    }

    fn disconnect(&mut self, reason: DisconnectReason) {
        self.out.disconnect.get_or_insert(reason);
    }

    fn discourage(&mut self, ip: IpAddr) {
        self.out.discourage = Some(ip);
    }

    fn relay_addr(&mut self, addr: AddrEntry, reachable: bool) {
        self.out.relays.push((addr, reachable));
    }
}

impl MessageHandler {
    /// A handler with no peers.
    pub fn new(protocol: Protocol, parts: HandlerParts) -> Self {
        let HandlerParts {
            magic,
            wake,
            ctl,
            clock,
            totals,
            discouraged,
            capture_dir,
            debug_peers,
            peers_file,
            disk,
            default_port,
            conn,
        } = parts;
        MessageHandler {
            peers: PeerMap::default(),
            cx: Cx {
                protocol,
                magic,
                ctl,
                clock,
                totals,
                dirty: Vec::new(),
                payload: Vec::new(),
                processed_since_flush: 0,
                discouraged,
                newly_discouraged: Vec::new(),
                capture_dir,
                debug_peers,
                msg_stats: NetMsgStats::default(),
                disconnects: Disconnects::default(),
                closed_pauses: (0, 0),
                peers_file,
                disk,
                pending_relays: Vec::new(),
            },
            wake,
            work: Vec::new(),
            rng: SmallRng::from_rng(&mut rand::rng()),
            rng_std: rand::make_rng(),
            conn,
            default_port,
            shutdown_anchors: Vec::new(),
            next_extra_peer_check: Instant::now() + crate::engine::policy::outbound::EXTRA_PEER_CHECK_INTERVAL,
        }
    }

    /// The thread body: runs until the wake-up is interrupted.
    pub fn run(mut self) {
        let mut ready = Vec::new();
        let mut events = Vec::new();
        let mut more_work = false;
        let mut next_sweep = Instant::now();
        let mut next_peers_dump = Instant::now() + DUMP_PEERS_INTERVAL;
        let mut passes_since_flush = 0u32;
        loop {
            if !more_work
                || passes_since_flush >= FLUSH_EVERY_PASSES
                || self.cx.processed_since_flush >= FLUSH_AFTER_PROCESSED
            {
                self.cx.flush(&mut self.peers);
                self.cx.flush_chain();
                passes_since_flush = 0;
                self.cx.processed_since_flush = 0;
            }
            self.wake.take(more_work, SPIN, IDLE_WAIT, &mut ready, &mut events);
            // One clock read per pass: the protocol's timers need no finer grain.
            let now = Now { mono: Instant::now(), unix: unix_now() };
            for ev in events.drain(..) {
                self.on_event(ev, now);
            }
            if self.wake.is_interrupted() {
                break;
            }
            for id in ready.drain(..) {
                if let Some(e) = self.peers.get_mut(&id) {
                    if !e.in_work {
                        e.in_work = true;
                        self.work.push(id);
                    }
                }
            }
            more_work = self.pass(now);
            self.disconnect_discouraged();
            self.relay_addresses(now);
            passes_since_flush += 1;
            if now.mono >= next_sweep {
                self.sweep(now);
                self.open_connections(now);
                self.check_stale_tip_and_evict(now);
                next_sweep = now.mono + SWEEP_EVERY;
            }
            if now.mono >= next_peers_dump {
                self.cx.dump_peers();
                next_peers_dump = now.mono + DUMP_PEERS_INTERVAL;
            }
        }
        self.cx.flush(&mut self.peers);
        self.cx.flush_chain();
        self.cx.dump_peers();
        self.dump_anchors();
    }

    fn on_event(&mut self, ev: NetEvent, now: Now) {
        match ev {
            NetEvent::Connected(p) => {
                crate::daemon::panics::test_panic_point(crate::daemon::panics::TestPanic::MsgHandConnected);
                let id = p.queues.id;
                self.conn.planner.dial_done(p.addr);
                let mut peer = self.cx.protocol.add_peer(id, p.addr, p.conn_type, now.mono);
                peer.permissions = p.permissions;
                debug!(target: "net", "Added connection {} ({})", peer.label(self.cx.protocol.params().log_ips), p.conn_type);
                let capture = self.cx.capture_dir.as_ref().and_then(|dir| match PeerCapture::open(dir, &p.addr) {
                    Ok(c) => Some(Box::new(c)),
                    Err(e) => {
                        warn!("cannot capture messages of peer={id}: {e}");
                        None
                    }
                });
                let traced = self.cx.debug_peers.iter().any(|s| s.matches(id, &p.addr));
                let mut e = Entry {
                    queues: p.queues,
                    peer,
                    in_work: false,
                    dirty: false,
                    closing: false,
                    capture,
                    traced,
                    local_addr: p.local_addr,
                    net: net_kind(p.addr.ip()),
                    counts: PeerMsgCounts::default(),
                    undecodable: 0,
                };
                self.cx.send_messages(&mut e, now);
                self.peers.insert(id, e);
            }
            NetEvent::Closed { id, reason } => {
                if let Some(e) = self.peers.remove(&id) {
                    if reason == DisconnectReason::Shutdown && e.peer.conn_type == ConnectionType::BlockRelayOnly {
                        self.shutdown_anchors.push(connman::anchor_entry(&e.peer, now.unix));
                    }
                    self.cx.protocol.remove_peer(&e.peer, now.unix);
                    self.cx.record_disconnect(&e, &reason, now);
                    info!(
                        target: "net",
                        "disconnected {} ({}, {}): {reason}",
                        e.peer.label(self.cx.protocol.params().log_ips),
                        e.peer.conn_type,
                        e.peer.handshake.user_agent()
                    );
                }
            }
            NetEvent::ConnectFailed { addr, conn_type } => self.on_connect_failed(addr, conn_type),
            NetEvent::SeedAddrs { source, ips } => self.on_seed_addrs(&source, ips, now),
            NetEvent::Inspect(req) => {
                let answer = self.answer(req.query, now);
                // The asker may have timed out and gone; nothing to do then.
                let _ = req.reply.send(answer);
            }
        }
    }

    /// One round over the peers with messages; true if any still has work it may do now.
    fn pass(&mut self, now: Now) -> bool {
        if self.work.is_empty() {
            return false;
        }
        self.work.shuffle(&mut self.rng);
        let mut more = false;
        let mut i = 0;
        while i < self.work.len() {
            let id = self.work[i];
            let (keep, has_more) = match self.peers.get_mut(&id) {
                Some(e) => {
                    let r = self.cx.process_one(e, now);
                    e.in_work = r.0;
                    r
                }
                None => (false, false),
            };
            more |= has_more;
            if keep {
                i += 1;
            } else {
                self.work.swap_remove(i);
            }
        }
        more
    }

    /// Core's `DisconnectNode(addr)`: every other connection from a newly discouraged address goes.
    fn disconnect_discouraged(&mut self) {
        for ip in std::mem::take(&mut self.cx.newly_discouraged) {
            for (&id, e) in self.peers.iter_mut().filter(|(_, e)| e.peer.addr.ip() == ip && !e.closing) {
                e.closing = true;
                let reason = DisconnectReason::Misbehaving(format!("address {ip} discouraged"));
                self.cx.ctl.send(SocketCommand::Disconnect { id, reason });
            }
        }
    }

    /// Core's `RelayAddress`: hands each fresh announcement to the 1–2 peers chosen by
    /// [`addr::relay_targets`] among those with address relay, except its source.
    fn relay_addresses(&mut self, now: Now) {
        for (from, entry, reachable) in std::mem::take(&mut self.cx.pending_relays) {
            let candidates = self
                .peers
                .iter()
                .filter(|(id, e)| **id != from && e.peer.addrs.relay_enabled && !e.closing)
                .filter(|(_, e)| e.peer.handshake.wants_addrv2 || entry.socket_addr().is_some())
                .map(|(id, _)| *id);
            let targets = addr::relay_targets(self.cx.protocol.relay_key(), &entry, reachable, now.unix, candidates);
            for id in targets {
                if let Some(e) = self.peers.get_mut(&id) {
                    addr::push_address(&mut e.peer, entry.clone(), &mut self.rng_std);
                }
            }
        }
    }

    /// Runs every peer's timers and releases idle buffers (the handler's own payload buffer
    /// too, once a large message left it big).
    fn sweep(&mut self, now: Now) {
        if self.cx.payload.capacity() > FLUSH_BYTES {
            self.cx.payload = Vec::new();
        }
        for e in self.peers.values_mut() {
            self.cx.send_messages(e, now);
            if !e.in_work && !e.dirty {
                e.queues.trim();
            }
        }
    }
}

impl Cx {
    /// Writes the address book to `peers.dat` (atomically): a serialized image goes to the
    /// disk-writer thread, which does the write, fsync and rename.
    fn dump_peers(&self) {
        let Some(path) = &self.peers_file else { return };
        let addresses = self.protocol.addrman().size(None, None);
        match &self.disk {
            Some(disk) => {
                let bytes = self.protocol.addrman().serialize(self.magic);
                disk.send(DiskJob::Peers { path: path.clone(), bytes, addresses });
            }
            None => match self.protocol.addrman().save(path, self.magic) {
                Ok(()) => debug!(target: "net", "Flushed {addresses} addresses to peers.dat"),
                Err(e) => warn!("cannot write {e}"),
            },
        }
    }

    /// Hands the headers accepted since the last call to the disk-writer thread, which
    /// appends and syncs them (the store only has a batch when some were accepted).
    fn flush_chain(&mut self) {
        let chain = &mut self.protocol.headers_mut().chain;
        match &self.disk {
            Some(disk) => {
                if let Some(batch) = chain.store_mut().and_then(|s| s.take_batch()) {
                    disk.send(DiskJob::Headers(batch));
                }
            }
            None => {
                if let Err(e) = chain.flush() {
                    warn!("cannot write headers: {e}");
                }
            }
        }
    }

    /// Core's `ProcessMessages` for one peer (one message), then its `SendMessages`. Returns
    /// (stay in the work set, may continue now).
    fn process_one(&mut self, e: &mut Entry, now: Now) -> (bool, bool) {
        let id = e.queues.id;
        if e.closing {
            return (false, false);
        }
        if e.queues.send_paused() {
            // Wait for the socket to drain; the socket handler posts the peer when it does.
            return (true, false);
        }
        let Some(popped) = e.queues.pop_message(&mut self.payload) else { return (false, false) };
        if popped.resumed {
            self.ctl.send(SocketCommand::Resume(id));
        }
        let command = command_str(&popped.command);
        self.processed_since_flush = self.processed_since_flush.saturating_add(self.payload.len());
        debug!(target: "net", "received: {command} ({} bytes) peer={id}", self.payload.len());
        let (conn, net) = (e.peer.conn_type, e.net);
        Tally { peer: &mut e.counts, global: &mut self.msg_stats, conn, net }.add(
            Direction::Received,
            command,
            self.payload.len(),
        );
        if e.traced {
            let detail = match decode_payload(command, &self.payload) {
                Ok(m) => format!("{m:?}"),
                Err(err) => format!("undecodable ({err})"),
            };
            debug!(target: "debugpeer", "peer={id} received {command} ({} bytes): {detail}", self.payload.len());
        }
        if let Some(c) = e.capture.as_deref_mut() {
            if let Err(err) = c.received(command, &self.payload) {
                warn!("message capture failed: {err}");
            }
        }
        let received = self.clock.instant_at(popped.recv_time_us);
        let echo = Some((self.payload.as_slice(), popped.checksum));
        let tally = Tally { peer: &mut e.counts, global: &mut self.msg_stats, conn, net };
        let mut out = PeerOut::new(&e.queues, self.magic, echo, e.capture.as_deref_mut(), e.traced, tally);
        let result = self.protocol.process_message(&mut e.peer, command, &self.payload, received, now, &mut out);
        let out = out.produced();
        match result {
            Ok(()) => self.apply(e, out),
            Err(err) => {
                NetTotals::add(&self.totals.msgs_undecodable, 1);
                e.undecodable += 1;
                debug!(target: "net", "ProcessMessages({command}, {} bytes): Exception '{err}' caught, peer={id}", self.payload.len());
            }
        }
        self.send_messages(e, now);
        let go_on = popped.more && !e.closing;
        (go_on, go_on)
    }

    /// Records what the protocol produced for `e`: marks it for flushing (or writes at once when
    /// much is queued), or starts its disconnect.
    fn apply(&mut self, e: &mut Entry, out: Produced) {
        let id = e.queues.id;
        self.pending_relays.extend(out.relays.into_iter().map(|(a, r)| (id, a, r)));
        if let Some(ip) = out.discourage {
            self.discouraged.add(ip);
            self.newly_discouraged.push(ip);
        }
        if out.sent && !e.dirty {
            e.dirty = true;
            self.dirty.push(id);
        }
        if let Some(reason) = out.disconnect {
            debug!(target: "net", "{reason}, disconnecting {}", e.peer.label(self.protocol.params().log_ips));
            // Replies queued before the disconnecting message go out first, as Core's optimistic
            // write would already have sent them; what the socket does not take is dropped.
            if e.dirty {
                let _ = e.queues.flush_from_handler(self.clock.now_us());
            }
            e.closing = true;
            self.ctl.send(SocketCommand::Disconnect { id, reason });
        } else if out.queued >= FLUSH_BYTES {
            self.write(e, self.clock.now_us());
        }
    }

    /// Writes every queue that gained bytes.
    fn flush(&mut self, peers: &mut PeerMap<Entry>) {
        if self.dirty.is_empty() {
            return;
        }
        let now_us = self.clock.now_us();
        for id in std::mem::take(&mut self.dirty) {
            let Some(e) = peers.get_mut(&id) else { continue };
            e.dirty = false;
            self.write(e, now_us);
        }
    }

    /// Writes `e`'s queue now (Core's optimistic write); hands what the socket did not take to
    /// the socket handler.
    fn write(&self, e: &mut Entry, now_us: u64) {
        if e.closing {
            return;
        }
        let id = e.queues.id;
        match e.queues.flush_from_handler(now_us) {
            Ok((_, false)) => {}
            Ok((_, true)) => self.ctl.send(SocketCommand::Flush(id)),
            Err(err) => {
                e.closing = true;
                self.ctl.send(SocketCommand::Disconnect { id, reason: DisconnectReason::WriteError(err.to_string()) });
            }
        }
    }

    /// Core's `SendMessages` for one peer.
    fn send_messages(&mut self, e: &mut Entry, now: Now) {
        if e.closing {
            return;
        }
        let at = |us: u64| (us != 0).then(|| self.clock.instant_at(us));
        let link = LinkTimes {
            last_send: at(e.queues.stats.last_send_us.load(Ordering::Relaxed)),
            last_recv: at(e.queues.stats.last_recv_us.load(Ordering::Relaxed)),
        };
        let tally = Tally { peer: &mut e.counts, global: &mut self.msg_stats, conn: e.peer.conn_type, net: e.net };
        let mut out = PeerOut::new(&e.queues, self.magic, None, e.capture.as_deref_mut(), e.traced, tally);
        self.protocol.send_messages(&mut e.peer, now, link, &mut out);
        let out = out.produced();
        if e.peer.handshake.successfully_connected {
            // What the socket handler's dialer bookkeeping and eviction read (Core reads these
            // under cs_main). The version's facts are published once, at the handshake.
            let stats = &e.queues.stats;
            if !stats.handshake_complete.load(Ordering::Relaxed) {
                if let Some(r) = &e.peer.handshake.remote {
                    let wanted = bitcoin::p2p::ServiceFlags::NETWORK | bitcoin::p2p::ServiceFlags::WITNESS;
                    stats.relevant_services.store(r.services.has(wanted), Ordering::Relaxed);
                    stats.relay_txs.store(r.relay, Ordering::Relaxed);
                }
                stats.handshake_complete.store(true, Ordering::Relaxed);
            }
            let min_ping = e.peer.ping.min_ping.map_or(0, |d| d.as_micros().max(1) as u64);
            stats.min_ping_us.store(min_ping, Ordering::Relaxed);
            stats.last_block_time.store(e.peer.headers.last_block_time.unwrap_or(0), Ordering::Relaxed);
        }
        self.apply(e, out);
    }
}
