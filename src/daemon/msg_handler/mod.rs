//! The message-handler thread (Core's `ThreadMessageHandler`): drives the engine's
//! [`PeerManager`] with real time and the peers' socket queues. Visits the peers that have
//! messages in shuffled order, one message per peer per pass (`ProcessMessages`), has the
//! manager process it and run that peer's `SendMessages`, every 100 ms runs every peer's
//! `SendMessages` and the manager's timers, writes what was queued (optimistically, as Core's
//! `PushMessage`), carries out the manager's [`Action`]s, and sleeps on the condvar when no
//! peer has work. It also answers the RPC and metrics threads' questions
//! ([`crate::daemon::inspect`]) from the state it holds (`answer.rs`).

mod answer;
mod connman;
mod peer_out;

pub use connman::ConnParts;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use tracing::{debug, info, warn};

use crate::base::counters::{Direction, Disconnects, NetMsgStats, PeerMsgCounts};
use crate::base::message::decode_payload;
use crate::base::netaddr::text::parse_special;
use crate::base::peer::{DisconnectReason, PeerId, PeerIdentity, PeerMap};
use crate::base::time::{Clock, unix_now};
use crate::base::totals::NetTotals;
use crate::base::transport::command_str;
use crate::daemon::capture::PeerCapture;
use crate::daemon::config::PeerSelector;
use crate::daemon::inspect::Reply;
use crate::daemon::net::peer_queues::PeerQueues;
use crate::daemon::net::tor::TorEvent;
use crate::daemon::net::wake::{MsgWake, NetEvent, SocketCommand, SocketControl};
use crate::daemon::node::disk_writer::{DiskJob, DiskWriter};
use crate::daemon::validation::Validation;
use crate::engine::blocks::validation::{BlockForm, BlockOutcome, ValidationEvent};
use crate::engine::peerman::{Action, PeerManager};
use crate::engine::policy::discourage::Discouraged;
use crate::engine::policy::eviction::EvictionFacts;
use crate::engine::policy::local::LOCAL_MANUAL;
use crate::engine::protocol::{LinkTimes, Now};
use peer_out::{PeerOut, Produced, Tally};

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

/// The daemon's side of one peer: its socket queues and what only the thread cares about (the
/// peer's protocol state lives in the [`PeerManager`]).
struct Entry {
    /// Fixed facts (shared with the manager and the socket handler).
    who: Arc<PeerIdentity>,
    queues: Arc<PeerQueues>,
    /// In `MessageHandler::work`.
    in_work: bool,
    /// In `Cx::dirty`: its queue gained bytes not yet written.
    dirty: bool,
    /// Open capture files (`--capturemessages`).
    capture: Option<Box<PeerCapture>>,
    /// Its traffic is logged in detail (`--debugpeer`).
    traced: bool,
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
    /// The validation thread, when the node handles blocks.
    pub validation: Option<Validation>,
}

/// The message handler's state; [`MessageHandler::run`] is the thread body.
pub struct MessageHandler {
    peers: PeerMap<Entry>,
    cx: Cx,
    wake: Arc<MsgWake>,
    work: Vec<PeerId>,
    rng: SmallRng,
    /// Connection management: the handles the manager's actions need.
    conn: ConnParts,
    /// The network's default port.
    default_port: u16,
    /// Reused buffer for the manager's actions.
    actions: Vec<Action>,
    /// The validation thread (stopped when the handler ends).
    validation: Option<Validation>,
    /// `submitblock` calls waiting for their block's verdict.
    submits: std::collections::HashMap<bitcoin::BlockHash, Vec<Reply<Option<String>>>>,
}

/// Everything per-peer processing uses besides the peer's [`Entry`] (kept apart from `peers`
/// so one lookup gives an entry and the rest can still be borrowed).
struct Cx {
    /// The engine: every peer's protocol state and the node's.
    mgr: PeerManager,
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
}

impl MessageHandler {
    /// A handler with no peers, driving `mgr`.
    pub fn new(mgr: PeerManager, parts: HandlerParts) -> Self {
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
            validation,
        } = parts;
        MessageHandler {
            peers: PeerMap::default(),
            cx: Cx {
                mgr,
                magic,
                ctl,
                clock,
                totals,
                dirty: Vec::new(),
                payload: Vec::new(),
                processed_since_flush: 0,
                discouraged,
                capture_dir,
                debug_peers,
                msg_stats: NetMsgStats::default(),
                disconnects: Disconnects::default(),
                closed_pauses: (0, 0),
                peers_file,
                disk,
            },
            wake,
            work: Vec::new(),
            rng: SmallRng::from_rng(&mut rand::rng()),
            conn,
            default_port,
            actions: Vec::new(),
            validation,
            submits: std::collections::HashMap::new(),
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
                self.apply_actions();
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
            passes_since_flush += 1;
            if now.mono >= next_sweep {
                self.sweep(now);
                self.tick(now);
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
        if let Some(mut v) = self.validation.take() {
            // Finishes what was queued and closes the block database (which writes it out).
            v.stop();
        }
    }

    fn on_event(&mut self, ev: NetEvent, now: Now) {
        match ev {
            NetEvent::Connected(p) => {
                crate::daemon::panics::test_panic_point(crate::daemon::panics::TestPanic::MsgHandConnected);
                let who = p.who;
                let id = who.id;
                self.cx.mgr.connected(who.clone());
                let capture = self.cx.capture_dir.as_ref().and_then(|dir| match PeerCapture::open(dir, &who.addr) {
                    Ok(c) => Some(Box::new(c)),
                    Err(e) => {
                        warn!("cannot capture messages of peer={id}: {e}");
                        None
                    }
                });
                let traced = self.cx.debug_peers.iter().any(|s| s.matches(id, &who.addr));
                let mut e = Entry {
                    who,
                    queues: p.queues,
                    in_work: false,
                    dirty: false,
                    capture,
                    traced,
                    counts: PeerMsgCounts::default(),
                    undecodable: 0,
                };
                self.cx.send_messages(&mut e, now);
                self.peers.insert(id, e);
                self.apply_actions();
            }
            NetEvent::Closed { id, reason } => {
                if let Some(e) = self.peers.remove(&id) {
                    if let Some(closed) = self.cx.mgr.closed(id, &reason, now) {
                        self.cx.record_disconnect(&e, &closed, &reason, now);
                    }
                }
            }
            NetEvent::ConnectFailed { addr, conn_type } => self.cx.mgr.dial_failed(addr, conn_type),
            NetEvent::SeedAddrs { source, ips } => self.cx.mgr.add_seed_addrs(&source, ips, now),
            NetEvent::Inspect(req) => {
                self.answer(*req, now);
                self.apply_actions();
            }
            NetEvent::Validation(ev) => self.on_validation(*ev, now),
            NetEvent::Tor(ev, port) => self.on_tor(ev, port),
        }
    }

    /// Our onion service came up or went: it is one of our advertised addresses while it lasts
    /// (Core's `AddLocal(service, LOCAL_MANUAL)` and `RemoveLocal`).
    fn on_tor(&mut self, ev: TorEvent, port: u16) {
        let local = self.cx.mgr.protocol_mut().local_mut();
        match ev {
            TorEvent::Service(id) => match parse_special(&format!("{id}.onion")) {
                Ok(Some(addr)) => {
                    info!("AddLocal({id}.onion:{port},{LOCAL_MANUAL})");
                    local.set_onion(Some((addr, port)));
                }
                _ => warn!("tor: service id {id:?} is not a Tor v3 address"),
            },
            TorEvent::Lost(_) => local.set_onion(None),
        }
    }

    /// A report of the validation thread: a block read goes to its peer; verdicts and tip
    /// moves go to the manager, and after a new tip outside initial download every peer's
    /// `SendMessages` runs at once, so the announcement leaves now.
    fn on_validation(&mut self, ev: ValidationEvent, now: Now) {
        match ev {
            ValidationEvent::Read { peer, hash, form, bytes } => {
                if let Some(e) = self.peers.get_mut(&peer) {
                    let (data, checksum) = match &bytes {
                        Some(b) => (Some(b.bytes.as_slice()), Some(b.checksum)),
                        None => (None, None),
                    };
                    self.cx.block_read(e, peer, hash, form, data, checksum, now);
                }
            }
            ev => {
                if let ValidationEvent::Block { hash, from: None, outcome } = &ev {
                    for reply in self.submits.remove(hash).unwrap_or_default() {
                        reply.send(Ok(match outcome {
                            BlockOutcome::Stored => None,
                            BlockOutcome::Unconnected => Some("inconclusive".into()),
                            BlockOutcome::Duplicate => Some("duplicate".into()),
                            BlockOutcome::Invalid(inv) => Some(core_reason(&inv.reason)),
                        }));
                    }
                }
                let announce = matches!(ev, ValidationEvent::Tip { .. } | ValidationEvent::PowValid { .. });
                if let Some(old) = self.cx.mgr.on_validation(ev, now) {
                    // A replaced block's thousands of transactions are freed on the
                    // validation thread, not here.
                    if let Some(v) = self.validation.as_ref() {
                        v.release(Box::new(old));
                    }
                }
                if announce && !self.cx.mgr.protocol_mut().in_ibd(now) {
                    for e in self.peers.values_mut() {
                        self.cx.send_messages(e, now);
                    }
                }
            }
        }
        self.apply_actions();
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
            if self.cx.mgr.has_actions() {
                self.apply_actions();
            }
            more |= has_more;
            if keep {
                i += 1;
            } else {
                self.work.swap_remove(i);
            }
        }
        more
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
        self.apply_actions();
    }

    /// Carries out what the manager decided: the one place a connection is closed (after
    /// writing what was queued before the decision, as Core's optimistic write would have),
    /// dials, address fetches and discouragements.
    fn apply_actions(&mut self) {
        let mut actions = std::mem::take(&mut self.actions);
        self.cx.mgr.take_actions(&mut actions);
        for action in actions.drain(..) {
            match action {
                Action::Disconnect { id, reason } => {
                    if let Some(e) = self.peers.get_mut(&id).filter(|e| e.dirty) {
                        // What the socket does not take now is dropped with the connection.
                        let _ = e.queues.flush_from_handler(self.cx.clock.now_us());
                    }
                    self.cx.ctl.send(SocketCommand::Disconnect { id, reason });
                }
                Action::Dial { addr, conn_type, v2 } => {
                    self.cx.ctl.send(SocketCommand::Connect { addr, name: None, conn_type, target: None, v2 });
                }
                Action::AddrFetch(host) => self.conn.addr_fetch(&host, self.default_port),
                Action::Discourage(ip) => self.cx.discouraged.add(ip),
                Action::Validate(req) => {
                    let refused = match self.validation.as_ref() {
                        Some(v) => v.submit(req.clone()).err(),
                        None => Some(crate::daemon::validation::SubmitError::Stopped),
                    };
                    if let Some(e) = refused {
                        warn!("validation request dropped: {e}");
                        let now = Now { mono: Instant::now(), unix: unix_now() };
                        self.cx.mgr.validation_dropped(&req, now);
                    }
                }
            }
        }
        self.actions = actions;
    }
}

/// Core's `submitblock` answer for a refused block: the reject reason without its debug
/// message (`bad-cb-amount`, not `bad-cb-amount, coinbase pays too much`).
fn core_reason(reason: &str) -> String {
    let r = reason.split(',').next().unwrap_or(reason).trim();
    if r.is_empty() { "rejected".into() } else { r.to_string() }
}

impl Cx {
    /// Writes the address book to `peers.dat` (atomically): a serialized image goes to the
    /// disk-writer thread, which does the write, fsync and rename.
    fn dump_peers(&self) {
        let Some(path) = &self.peers_file else { return };
        let addrman = self.mgr.protocol().addrman();
        let addresses = addrman.size(None, None);
        match &self.disk {
            Some(disk) => {
                let bytes = addrman.serialize(self.magic);
                disk.send(DiskJob::Peers { path: path.clone(), bytes, addresses });
            }
            None => match addrman.save(path, self.magic) {
                Ok(()) => debug!(target: "net", "Flushed {addresses} addresses to peers.dat"),
                Err(e) => warn!("cannot write {e}"),
            },
        }
    }

    /// Hands the headers accepted since the last call to the disk-writer thread, which
    /// appends and syncs them (the store only has a batch when some were accepted).
    fn flush_chain(&mut self) {
        let chain = &mut self.mgr.protocol_mut().headers_mut().chain;
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

    /// When bytes last crossed `e`'s socket.
    fn link_times(&self, e: &Entry) -> LinkTimes {
        let at = |us: u64| (us != 0).then(|| self.clock.instant_at(us));
        LinkTimes {
            last_send: at(e.queues.stats.last_send_us.load(Ordering::Relaxed)),
            last_recv: at(e.queues.stats.last_recv_us.load(Ordering::Relaxed)),
        }
    }

    /// Core's `ProcessMessages` for one peer (one message), then its `SendMessages`. Returns
    /// (stay in the work set, may continue now).
    fn process_one(&mut self, e: &mut Entry, now: Now) -> (bool, bool) {
        let id = e.who.id;
        if self.mgr.is_closing(id) {
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
        Tally::of(&mut e.counts, &mut self.msg_stats, &e.who, &e.queues).add(
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
        let link = self.link_times(e);
        let echo = Some((self.payload.as_slice(), popped.checksum));
        let tally = Tally::of(&mut e.counts, &mut self.msg_stats, &e.who, &e.queues);
        let mut out = PeerOut::new(&e.queues, self.magic, echo, e.capture.as_deref_mut(), e.traced, tally);
        let done = self.mgr.on_message(id, command, &self.payload, received, now, link, &mut out);
        let produced = out.produced();
        if let Some(err) = done.undecodable {
            NetTotals::add(&self.totals.msgs_undecodable, 1);
            e.undecodable += 1;
            debug!(target: "net", "ProcessMessages({command}, {} bytes): Exception '{err}' caught, peer={id}", self.payload.len());
        }
        self.after(e, produced, done.facts);
        let go_on = popped.more && done.open;
        (go_on, go_on)
    }

    /// Records what the manager queued for `e` (marks it for flushing, or writes at once when
    /// much is queued) and publishes the facts the socket handler's eviction reads.
    fn after(&mut self, e: &mut Entry, out: Produced, facts: Option<EvictionFacts>) {
        if let Some(f) = facts {
            // What the socket handler's dialer bookkeeping and eviction read (Core reads these
            // under cs_main). The version's facts are published once, at the handshake.
            let stats = &e.queues.stats;
            if !stats.handshake_complete.load(Ordering::Relaxed) {
                stats.relevant_services.store(f.relevant_services, Ordering::Relaxed);
                stats.relay_txs.store(f.relay_txs, Ordering::Relaxed);
                stats.handshake_complete.store(true, Ordering::Relaxed);
            }
            let min_ping = f.min_ping.map_or(0, |d| d.as_micros().max(1) as u64);
            stats.min_ping_us.store(min_ping, Ordering::Relaxed);
            stats.last_block_time.store(f.last_block_time, Ordering::Relaxed);
        }
        if out.sent && !e.dirty {
            e.dirty = true;
            self.dirty.push(e.who.id);
        }
        if out.queued >= FLUSH_BYTES && !self.mgr.is_closing(e.who.id) {
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
            if !self.mgr.is_closing(id) {
                self.write(e, now_us);
            }
        }
    }

    /// Writes `e`'s queue now (Core's optimistic write); hands what the socket did not take to
    /// the socket handler.
    fn write(&mut self, e: &mut Entry, now_us: u64) {
        let id = e.who.id;
        match e.queues.flush_from_handler(now_us) {
            Ok((_, false)) => {}
            Ok((_, true)) => self.ctl.send(SocketCommand::Flush(id)),
            Err(err) => {
                self.mgr.close(id, DisconnectReason::WriteError(err.to_string()));
            }
        }
    }

    /// A block read for `e` by the validation thread: queued, then its next request served.
    #[allow(clippy::too_many_arguments)]
    fn block_read(
        &mut self,
        e: &mut Entry,
        id: PeerId,
        hash: bitcoin::BlockHash,
        form: BlockForm,
        bytes: Option<&[u8]>,
        checksum: Option<[u8; 4]>,
        now: Now,
    ) {
        let link = self.link_times(e);
        let tally = Tally::of(&mut e.counts, &mut self.msg_stats, &e.who, &e.queues);
        let mut out = PeerOut::new(&e.queues, self.magic, None, e.capture.as_deref_mut(), e.traced, tally);
        self.mgr.on_block_read(id, hash, form, bytes, checksum, now, link, &mut out);
        let produced = out.produced();
        self.after(e, produced, None);
    }

    /// Core's `SendMessages` for one peer.
    fn send_messages(&mut self, e: &mut Entry, now: Now) {
        let id = e.who.id;
        let link = self.link_times(e);
        let tally = Tally::of(&mut e.counts, &mut self.msg_stats, &e.who, &e.queues);
        let mut out = PeerOut::new(&e.queues, self.magic, None, e.capture.as_deref_mut(), e.traced, tally);
        let facts = self.mgr.send_messages(id, now, link, &mut out);
        let produced = out.produced();
        self.after(e, produced, facts);
    }
}
