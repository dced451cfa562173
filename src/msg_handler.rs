//! The message-handler thread (Core's `ThreadMessageHandler`): owns every peer's protocol state.
//! Visits the peers that have messages in shuffled order, one message per peer per pass
//! (`ProcessMessages`), runs `SendMessages` for each visited peer and, every 100 ms, for all;
//! writes what it queued (optimistically, as Core's `PushMessage`), and sleeps on the condvar
//! when no peer has work.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bitcoin::p2p::message::NetworkMessage;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use tracing::{debug, info};

use crate::net::message::{command_of, decode_payload, encode_message};
use crate::net::peer::{DisconnectReason, PeerId};
use crate::net::peer_queues::PeerQueues;
use crate::net::totals::NetTotals;
use crate::net::transport::command_str;
use crate::net::wake::{MsgWake, NetEvent, SocketCommand, SocketControl};
use crate::protocol::{LinkTimes, Now, Outbox, Peer, Protocol};
use crate::time::{Clock, unix_now};

/// Longest sleep when idle (Core: 100 ms).
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// How often every peer's timers run.
const SWEEP_EVERY: Duration = Duration::from_millis(100);
/// Queued output is written at the latest after this many passes.
const FLUSH_EVERY_PASSES: u32 = 8;

struct Entry {
    queues: Arc<PeerQueues>,
    peer: Peer,
    in_work: bool,
    dirty: bool,
    closing: bool,
}

/// The message handler's state; [`MessageHandler::run`] is the thread body.
pub struct MessageHandler {
    protocol: Protocol,
    peers: HashMap<PeerId, Entry>,
    magic: [u8; 4],
    wake: Arc<MsgWake>,
    ctl: SocketControl,
    clock: Clock,
    totals: Arc<NetTotals>,
    work: Vec<PeerId>,
    dirty: Vec<PeerId>,
    payload: Vec<u8>,
    rng: SmallRng,
}

/// The Outbox of one peer: encodes straight into its send queue.
struct PeerOut<'a> {
    queues: &'a PeerQueues,
    magic: [u8; 4],
    sent: bool,
    disconnect: Option<DisconnectReason>,
}

impl Outbox for PeerOut<'_> {
    fn send(&mut self, msg: &NetworkMessage) {
        if self.disconnect.is_some() {
            return;
        }
        let mut len = 0;
        self.queues.queue_send(|buf| len = encode_message(self.magic, msg, buf));
        debug!(target: "net", "sending {} ({len} bytes) peer={}", command_of(msg), self.queues.id);
        self.sent = true;
    }

    fn disconnect(&mut self, reason: DisconnectReason) {
        self.disconnect.get_or_insert(reason);
    }
}

impl MessageHandler {
    /// A handler with no peers.
    pub fn new(
        protocol: Protocol,
        magic: [u8; 4],
        wake: Arc<MsgWake>,
        ctl: SocketControl,
        clock: Clock,
        totals: Arc<NetTotals>,
    ) -> Self {
        MessageHandler {
            protocol,
            peers: HashMap::new(),
            magic,
            wake,
            ctl,
            clock,
            totals,
            work: Vec::new(),
            dirty: Vec::new(),
            payload: Vec::new(),
            rng: SmallRng::from_rng(&mut rand::rng()),
        }
    }

    fn now(&self) -> Now {
        Now { mono: Instant::now(), unix: unix_now() }
    }

    /// The thread body: runs until the wake-up is interrupted.
    pub fn run(mut self) {
        let mut ready = Vec::new();
        let mut events = Vec::new();
        let mut more_work = false;
        let mut next_sweep = Instant::now();
        let mut passes_since_flush = 0u32;
        loop {
            if !more_work || passes_since_flush >= FLUSH_EVERY_PASSES {
                self.flush();
                passes_since_flush = 0;
            }
            self.wake.take(more_work, IDLE_WAIT, &mut ready, &mut events);
            for ev in events.drain(..) {
                self.on_event(ev);
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
            more_work = self.pass();
            passes_since_flush += 1;
            let now = Instant::now();
            if now >= next_sweep {
                self.sweep();
                next_sweep = now + SWEEP_EVERY;
            }
        }
        self.flush();
    }

    fn on_event(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Connected(p) => {
                let id = p.queues.id;
                let peer = self.protocol.add_peer(id, p.addr, p.conn_type, Instant::now());
                debug!(target: "net", "Added connection {} ({})", peer.label(self.protocol.params.log_ips), p.conn_type);
                self.peers.insert(id, Entry { queues: p.queues, peer, in_work: false, dirty: false, closing: false });
                self.send_messages(id);
            }
            NetEvent::Closed { id, reason } => {
                if let Some(e) = self.peers.remove(&id) {
                    self.protocol.remove_peer(&e.peer);
                    info!(
                        target: "net",
                        "disconnected {} ({}, {}): {reason}",
                        e.peer.label(self.protocol.params.log_ips),
                        e.peer.conn_type,
                        e.peer.handshake.user_agent()
                    );
                }
            }
        }
    }

    /// One round over the peers with messages; true if any still has work it may do now.
    fn pass(&mut self) -> bool {
        if self.work.is_empty() {
            return false;
        }
        self.work.shuffle(&mut self.rng);
        let mut more = false;
        let mut i = 0;
        while i < self.work.len() {
            let id = self.work[i];
            let (keep, has_more) = self.process_one(id);
            more |= has_more;
            if keep {
                i += 1;
            } else {
                self.work.swap_remove(i);
                if let Some(e) = self.peers.get_mut(&id) {
                    e.in_work = false;
                }
            }
        }
        more
    }

    /// Core's `ProcessMessages` for one peer: (stay in the work set, may continue now).
    fn process_one(&mut self, id: PeerId) -> (bool, bool) {
        let Some(e) = self.peers.get_mut(&id) else { return (false, false) };
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
        debug!(target: "net", "received: {command} ({} bytes) peer={id}", self.payload.len());
        if Protocol::handles(command) {
            match decode_payload(command, &self.payload) {
                Ok(msg) => {
                    let received = self.clock.instant_at(popped.recv_time_us);
                    let now = Now { mono: Instant::now(), unix: unix_now() };
                    let mut out = PeerOut { queues: &e.queues, magic: self.magic, sent: false, disconnect: None };
                    self.protocol.process_message(&mut e.peer, msg, received, now, &mut out);
                    let (sent, disconnect) = (out.sent, out.disconnect);
                    self.after_output(id, sent, disconnect);
                }
                Err(err) => {
                    NetTotals::add(&self.totals.msgs_undecodable, 1);
                    debug!(target: "net", "ProcessMessages({command}, {} bytes): Exception '{err}' caught, peer={id}", self.payload.len());
                }
            }
        }
        self.send_messages(id);
        let still = self.peers.get(&id).is_some_and(|e| !e.closing);
        (popped.more && still, popped.more && still)
    }

    fn send_messages(&mut self, id: PeerId) {
        let now = self.now();
        let Some(e) = self.peers.get_mut(&id) else { return };
        if e.closing {
            return;
        }
        let at = |us: u64| (us != 0).then(|| self.clock.instant_at(us));
        let link = LinkTimes {
            last_send: at(e.queues.stats.last_send_us.load(Ordering::Relaxed)),
            last_recv: at(e.queues.stats.last_recv_us.load(Ordering::Relaxed)),
        };
        let mut out = PeerOut { queues: &e.queues, magic: self.magic, sent: false, disconnect: None };
        self.protocol.send_messages(&mut e.peer, now, link, &mut out);
        let (sent, disconnect) = (out.sent, out.disconnect);
        if e.peer.handshake.successfully_connected {
            e.queues.stats.handshake_complete.store(true, Ordering::Relaxed);
        }
        self.after_output(id, sent, disconnect);
    }

    fn after_output(&mut self, id: PeerId, sent: bool, disconnect: Option<DisconnectReason>) {
        let Some(e) = self.peers.get_mut(&id) else { return };
        if sent && !e.dirty {
            e.dirty = true;
            self.dirty.push(id);
        }
        if let Some(reason) = disconnect {
            debug!(target: "net", "{reason}, disconnecting {}", e.peer.label(self.protocol.params.log_ips));
            // Replies queued before the disconnecting message go out first, as Core's optimistic
            // write would already have sent them; what the socket does not take is dropped.
            if e.dirty {
                let _ = e.queues.flush_from_handler(self.clock.now_us());
            }
            e.closing = true;
            self.ctl.send(SocketCommand::Disconnect { id, reason });
        }
    }

    /// Runs every peer's timers and releases idle buffers.
    fn sweep(&mut self) {
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            self.send_messages(id);
            if let Some(e) = self.peers.get(&id) {
                if !e.in_work && !e.dirty {
                    e.queues.trim();
                }
            }
        }
    }

    /// Writes every queue that gained bytes; hands what the socket did not take to the socket
    /// handler.
    fn flush(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let now_us = self.clock.now_us();
        for id in std::mem::take(&mut self.dirty) {
            let Some(e) = self.peers.get_mut(&id) else { continue };
            e.dirty = false;
            if e.closing {
                continue;
            }
            match e.queues.flush_from_handler(now_us) {
                Ok((_, false)) => {}
                Ok((_, true)) => self.ctl.send(SocketCommand::Flush(id)),
                Err(err) => {
                    e.closing = true;
                    self.ctl
                        .send(SocketCommand::Disconnect { id, reason: DisconnectReason::WriteError(err.to_string()) });
                }
            }
        }
    }
}
