//! The socket-handler thread (Core's `ThreadSocketHandler`): one `mio::Poll` over the
//! listeners and every peer socket. Owns the sockets' registration, each connection's transport
//! decoder and connect state. Reads each ready peer for at most [`READ_BUDGET`] bytes per poll
//! round (peers with more waiting are served again next round, round-robin, so one peer's
//! 4 MB messages do not delay another's ping), until the socket is drained, closed, or the
//! peer's process queue is full; turns bytes into checked frames on the peer's process queue,
//! wakes the message handler, and writes send queues the message handler could not write
//! itself. Outbound connects, direct or through a SOCKS5 proxy, are in `dial`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::os::fd::AsRawFd;
use tracing::{debug, info, warn};

use super::peer_queues::PeerQueues;
use super::proxy::{CredentialSource, ProxiedDial, ProxyConfig, ProxyStep, SOCKS5_TIMEOUT};
use super::transport::ConnTransport;
use super::wake::{MsgWake, NetEvent, NewPeer, SocketCommand, SocketControl};
use crate::base::netaddr::{NetKind, net_kind};
use crate::base::peer::{ConnectionType, DisconnectReason, PeerId, PeerIdentity};
use crate::base::time::{Clock, unix_now};
use crate::base::totals::NetTotals;
use crate::base::transport::{Delivery, RejectReason, sanitize_command};
use crate::engine::policy::banman::BanMan;
use crate::engine::policy::discourage::Discouraged;
use crate::engine::policy::eviction::{self, EvictionCandidate, EvictionFacts, GroupKey, select_node_to_evict};
use crate::engine::policy::permissions::{Permissions, Whitelist, permissions_for};

/// Token of the poll waker.
pub const WAKER_TOKEN: Token = Token(usize::MAX);
const LISTENER_BASE: usize = usize::MAX - 1024;
/// Size of the one read buffer the thread shares among all peers (Core: 64 KiB).
const READ_BUF: usize = 64 * 1024;
/// Bytes read from one peer per poll round before the other ready peers get their turn
/// (Core reads one 64 KiB chunk per peer per round).
const READ_BUDGET: usize = READ_BUF;
/// Longest the poll sleeps with nothing to do.
const POLL_IDLE: Duration = Duration::from_millis(500);

/// What the socket handler tells the dialer about its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialerEvent {
    /// The TCP connection to target `target` is open as peer `id`.
    Connected {
        /// Dialer's target index.
        target: usize,
        /// The new peer.
        id: PeerId,
    },
    /// The connect attempt failed.
    Failed {
        /// Dialer's target index.
        target: usize,
        /// Why.
        error: String,
    },
    /// The connection closed.
    Closed {
        /// Dialer's target index.
        target: usize,
        /// Whether the version handshake had completed.
        handshake_done: bool,
    },
}

/// Limits and identity the socket handler needs.
#[derive(Clone, Debug)]
pub struct SocketConfig {
    /// Network magic.
    pub magic: [u8; 4],
    /// Process-queue limit per peer, bytes.
    pub max_receive_buffer: usize,
    /// Send-queue limit per peer, bytes.
    pub max_send_buffer: usize,
    /// Inbound connection cap.
    pub max_inbound: usize,
    /// Outbound TCP connect timeout.
    pub connect_timeout: Duration,
    /// Show addresses in logs.
    pub log_ips: bool,
    /// `--whitelist` entries.
    pub whitelist: Vec<Whitelist>,
    /// Speak BIP324 v2 (`--v2transport`).
    pub v2transport: bool,
    /// SOCKS5 proxies for outbound connections.
    pub proxy: ProxyConfig,
}

enum ConnState {
    Connecting,
    /// Connected to the proxy, its handshake under way.
    Proxy,
    Open,
}

struct Connection {
    queues: Arc<PeerQueues>,
    transport: ConnTransport,
    /// An outbound connection still connecting opens with v2.
    dial_v2: bool,
    /// An outbound connection through a proxy, until the proxy has connected it.
    proxied: Option<Box<ProxiedDial>>,
    /// What is fixed about the connection (for an outbound one still connecting, without its
    /// local address: the identity is made anew, once, when the connect completes).
    who: Arc<PeerIdentity>,
    target: Option<usize>,
    state: ConnState,
    write_registered: bool,
    /// In `SocketHandler::more_to_read`: its read budget ran out with bytes still waiting.
    read_pending: bool,
}

/// The socket handler's state; [`SocketHandler::run`] is the thread body.
pub struct SocketHandler {
    poll: Poll,
    listeners: Vec<TcpListener>,
    onion_from: usize,
    conns: HashMap<PeerId, Connection>,
    /// Deadlines of outbound connects still in progress (a subset of `conns`).
    connecting: HashMap<PeerId, Instant>,
    next_id: PeerId,
    inbound: usize,
    cfg: SocketConfig,
    commands: Receiver<SocketCommand>,
    ctl: SocketControl,
    wake: Arc<MsgWake>,
    dialer: Option<Sender<DialerEvent>>,
    totals: Arc<NetTotals>,
    clock: Clock,
    discouraged: Arc<Discouraged>,
    banman: Arc<BanMan>,
    network_active: Arc<AtomicBool>,
    /// Secret key of the keyed network groups.
    group_key: GroupKey,
    buf: Box<[u8]>,
    ready: Vec<PeerId>,
    events: Vec<NetEvent>,
    /// Peers whose read budget ran out this round with bytes still waiting: read again next
    /// round (the poll is edge-triggered and will not report them again).
    more_to_read: Vec<PeerId>,
    /// The previous round's `more_to_read`, being served.
    reading: Vec<PeerId>,
    /// Proxy credentials (`--proxyrandomize`).
    credentials: CredentialSource,
}

/// Everything [`SocketHandler::new`] needs from the node.
pub struct SocketParts {
    /// The poll (its registry created the waker inside `ctl`).
    pub poll: Poll,
    /// Listening sockets.
    pub listeners: Vec<TcpListener>,
    /// Listeners from this index on receive the connections of our onion service: their peers
    /// are onion peers (Core's `m_onion_binds`).
    pub onion_from: usize,
    /// Commands from other threads.
    pub commands: Receiver<SocketCommand>,
    /// Handle whose waker interrupts the poll.
    pub ctl: SocketControl,
    /// The message handler's wake-up.
    pub wake: Arc<MsgWake>,
    /// Where connect results go, if a dialer runs.
    pub dialer: Option<Sender<DialerEvent>>,
    /// Node-wide counters.
    pub totals: Arc<NetTotals>,
    /// Node clock.
    pub clock: Clock,
    /// Recently misbehaving addresses.
    pub discouraged: Arc<Discouraged>,
    /// Manual bans.
    pub banman: Arc<BanMan>,
    /// Cleared by `setnetworkactive false`: accept and dial nothing.
    pub network_active: Arc<AtomicBool>,
}

impl SocketHandler {
    /// Registers the listeners and builds the handler.
    pub fn new(parts: SocketParts, cfg: SocketConfig) -> io::Result<Self> {
        let SocketParts {
            poll,
            mut listeners,
            onion_from,
            commands,
            ctl,
            wake,
            dialer,
            totals,
            clock,
            discouraged,
            banman,
            network_active,
        } = parts;
        for (i, l) in listeners.iter_mut().enumerate() {
            poll.registry().register(l, Token(LISTENER_BASE + i), Interest::READABLE)?;
        }
        Ok(SocketHandler {
            poll,
            listeners,
            onion_from,
            conns: HashMap::new(),
            connecting: HashMap::new(),
            next_id: 0,
            inbound: 0,
            commands,
            ctl,
            wake,
            dialer,
            totals,
            clock,
            discouraged,
            banman,
            network_active,
            group_key: {
                use rand::RngExt;
                let mut rng = rand::rng();
                GroupKey::new(rng.random(), rng.random())
            },
            buf: vec![0u8; READ_BUF].into_boxed_slice(),
            ready: Vec::new(),
            events: Vec::new(),
            more_to_read: Vec::new(),
            reading: Vec::new(),
            credentials: CredentialSource::new(cfg.proxy.randomize),
            cfg,
        })
    }

    /// The thread body: runs until the control handle is interrupted, then closes everything.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        while !self.ctl.is_interrupted() {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    warn!(target: "net", "poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            // Peers whose budget ran out last round get their next share after this round's
            // events; those that run out now wait for the next round (one share per round).
            let mut reading = std::mem::take(&mut self.reading);
            std::mem::swap(&mut reading, &mut self.more_to_read);
            let mut woken = false;
            for ev in events.iter() {
                match ev.token() {
                    WAKER_TOKEN => woken = true,
                    Token(t) if t >= LISTENER_BASE => self.accept(t - LISTENER_BASE),
                    Token(t) => {
                        let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                        let writable = ev.is_writable() || ev.is_write_closed();
                        // With the peer's FIN (or an error) in the same edge, a short read does
                        // not mean drained: read on to the end of stream.
                        let closing = ev.is_read_closed() || ev.is_error();
                        self.on_socket_event(t as PeerId, readable, writable, closing);
                    }
                }
            }
            for id in reading.drain(..) {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.read_pending = false;
                    self.read(id, true);
                }
            }
            self.reading = reading;
            if woken {
                self.ctl.clear_pending();
                while let Ok(cmd) = self.commands.try_recv() {
                    self.on_command(cmd);
                }
            }
            self.expire_connects();
            self.wake.post(&mut self.ready, &mut self.events);
        }
        let ids: Vec<PeerId> = self.conns.keys().copied().collect();
        for id in ids {
            self.close(id, DisconnectReason::Shutdown);
        }
        self.wake.post(&mut self.ready, &mut self.events);
    }

    fn poll_timeout(&self) -> Duration {
        if !self.more_to_read.is_empty() {
            return Duration::ZERO;
        }
        let now = Instant::now();
        self.connecting.values().map(|d| d.saturating_duration_since(now)).min().unwrap_or(POLL_IDLE).min(POLL_IDLE)
    }

    fn peer_label(&self, id: PeerId, addr: &SocketAddr) -> String {
        if self.cfg.log_ips { format!("peer={id}, peeraddr={addr}") } else { format!("peer={id}") }
    }

    fn new_queues(&mut self, stream: TcpStream) -> Arc<PeerQueues> {
        let id = self.next_id;
        self.next_id += 1;
        Arc::new(PeerQueues::new(
            id,
            stream,
            self.cfg.max_receive_buffer,
            self.cfg.max_send_buffer,
            self.totals.clone(),
        ))
    }

    fn accept(&mut self, index: usize) {
        loop {
            let Some(listener) = self.listeners.get(index) else { return };
            let (stream, addr) = match listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: Core logs and carries on; the listener stays ready.
                    warn!(target: "net", "socket error accepting connection: {e}");
                    return;
                }
            };
            crate::daemon::panics::test_panic_point(crate::daemon::panics::TestPanic::NetAccepted);
            if !self.network_active.load(Ordering::Acquire) {
                NetTotals::add(&self.totals.inbound_refused, 1);
                continue;
            }
            let permissions = permissions_for(&self.cfg.whitelist, addr.ip(), true);
            let noban = permissions.has(Permissions::NO_BAN);
            if !noban && self.banman.is_banned(addr.ip(), unix_now()) {
                NetTotals::add(&self.totals.inbound_refused, 1);
                debug!(target: "net", "connection from {} dropped (banned)", if self.cfg.log_ips { addr.to_string() } else { "peer".into() });
                continue;
            }
            // Core: discouraged addresses get in only while inbound slots are not (almost) full.
            if !noban && self.inbound + 1 >= self.cfg.max_inbound && self.discouraged.contains(&addr.ip()) {
                NetTotals::add(&self.totals.inbound_refused, 1);
                debug!(target: "net", "connection from {} dropped (discouraged)", if self.cfg.log_ips { addr.to_string() } else { "peer".into() });
                continue;
            }
            if self.inbound >= self.cfg.max_inbound && !self.evict_one() {
                NetTotals::add(&self.totals.inbound_refused, 1);
                debug!(target: "net", "connection from {} dropped (full)", if self.cfg.log_ips { addr.to_string() } else { "peer".into() });
                drop(stream);
                continue;
            }
            let _ = stream.set_nodelay(true);
            let local_addr = stream.local_addr().ok();
            let queues = self.new_queues(stream);
            let id = queues.id;
            let fd = queues.stream().as_raw_fd();
            if let Err(e) = self.poll.registry().register(&mut SourceFd(&fd), Token(id as usize), Interest::READABLE) {
                warn!(target: "net", "cannot register accepted socket: {e}");
                queues.close();
                continue;
            }
            self.inbound += 1;
            NetTotals::add(&self.totals.inbound_accepted, 1);
            debug!(target: "net", "accepted connection {}", self.peer_label(id, &addr));
            let mut who = self.identity(id, addr, local_addr, ConnectionType::Inbound, permissions);
            if index >= self.onion_from {
                who.net = NetKind::Onion;
            }
            let who = Arc::new(who);
            let transport = ConnTransport::inbound(self.cfg.magic, self.cfg.v2transport, &queues);
            set_transport_stats(&queues, &transport);
            self.conns.insert(
                id,
                Connection {
                    queues: queues.clone(),
                    transport,
                    dial_v2: false,
                    proxied: None,
                    who: who.clone(),
                    target: None,
                    state: ConnState::Open,
                    write_registered: false,
                    read_pending: false,
                },
            );
            self.events.push(NetEvent::Connected(Box::new(NewPeer { queues, who })));
        }
    }

    /// Core's `AttemptToEvictConnection`: closes the inbound peer [`select_node_to_evict`]
    /// chooses, if any; false when every inbound peer is protected.
    fn evict_one(&mut self) -> bool {
        let origin = self.clock.start();
        let candidates: Vec<EvictionCandidate> = self
            .conns
            .values()
            .filter(|c| matches!(c.state, ConnState::Open) && c.who.conn_type.is_inbound())
            .map(|c| {
                // The facts the message handler published for this peer (the peer manager's
                // `EvictionFacts`), read without a lock.
                let s = &c.queues.stats;
                let min_ping = s.min_ping_us.load(Ordering::Relaxed);
                let facts = EvictionFacts {
                    min_ping: (min_ping != 0).then(|| Duration::from_micros(min_ping)),
                    last_block_time: s.last_block_time.load(Ordering::Relaxed),
                    relevant_services: s.relevant_services.load(Ordering::Relaxed),
                    relay_txs: s.relay_txs.load(Ordering::Relaxed),
                };
                eviction::candidate(&c.who, &facts, origin, self.discouraged.contains(&c.who.addr.ip()))
            })
            .collect();
        match select_node_to_evict(candidates) {
            Some(id) => {
                debug!(target: "net", "selected peer={id} for eviction");
                self.close(id, DisconnectReason::Evicted);
                true
            }
            None => {
                debug!(target: "net", "failed to find an eviction candidate - connection dropped (full)");
                false
            }
        }
    }

    /// The identity of a connection opened now.
    fn identity(
        &self,
        id: PeerId,
        addr: SocketAddr,
        local_addr: Option<SocketAddr>,
        conn_type: ConnectionType,
        permissions: Permissions,
    ) -> PeerIdentity {
        PeerIdentity {
            id,
            addr,
            name: None,
            local_addr,
            conn_type,
            permissions,
            connected_at: Instant::now(),
            net: net_kind(addr.ip()),
            keyed_group: self.group_key.keyed_group(addr.ip()),
        }
    }

    fn on_command(&mut self, cmd: SocketCommand) {
        match cmd {
            SocketCommand::Connect { addr, name, conn_type, target, v2 } => {
                self.connect(addr, name, conn_type, target, v2 && self.cfg.v2transport)
            }
            SocketCommand::Disconnect { id, reason } => self.close(id, reason),
            SocketCommand::Flush(id) => self.write(id),
            SocketCommand::Resume(id) => self.read(id, true),
            SocketCommand::SetNetworkActive(active) => {
                info!("SetNetworkActive: {active}");
                self.network_active.store(active, Ordering::Release);
                if !active {
                    let ids: Vec<PeerId> = self.conns.keys().copied().collect();
                    for id in ids {
                        self.close(id, DisconnectReason::NetworkInactive);
                    }
                }
            }
        }
    }

    fn tell_dialer(&self, target: Option<usize>, ev: impl FnOnce(usize) -> DialerEvent) {
        if let (Some(t), Some(tx)) = (target, &self.dialer) {
            let _ = tx.send(ev(t));
        }
    }

    fn on_socket_event(&mut self, id: PeerId, readable: bool, writable: bool, closing: bool) {
        let Some(conn) = self.conns.get(&id) else { return };
        match conn.state {
            ConnState::Connecting if readable || writable => return self.finish_connect(id),
            ConnState::Connecting => return,
            ConnState::Proxy if readable || closing => return self.proxy_readable(id),
            ConnState::Proxy => return,
            ConnState::Open => {}
        }
        if writable && conn.write_registered {
            self.write(id);
        }
        if readable {
            self.read(id, closing);
        }
    }

    /// Reads peer `id` until its socket is drained, closed or failed, its process queue is full,
    /// or it has had [`READ_BUDGET`] bytes this round (then it is queued for the next round).
    /// A short read counts as drained (saving the read that would only say `WouldBlock`) unless
    /// `to_end`: when the edge also carried the end of stream, or when the edge that announced
    /// the bytes was consumed earlier (resuming, the next round).
    fn read(&mut self, id: PeerId, to_end: bool) {
        let now_us = self.clock.now_us();
        let Some(conn) = self.conns.get_mut(&id) else { return };
        if !matches!(conn.state, ConnState::Open) || conn.read_pending {
            return;
        }
        if conn.queues.recv_paused() {
            return;
        }
        let mut fatal = None;
        let mut want_write = false;
        let mut budget = READ_BUDGET;
        loop {
            if budget == 0 {
                conn.read_pending = true;
                self.more_to_read.push(id);
                break;
            }
            let want = budget.min(self.buf.len());
            let Some(buf) = self.buf.get_mut(..want) else { break };
            let n = match conn.queues.read_socket(buf) {
                Ok(0) => {
                    fatal = Some(DisconnectReason::PeerClosed);
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    fatal = Some(DisconnectReason::ReadError(e.to_string()));
                    break;
                }
            };
            budget = budget.saturating_sub(n);
            let stats = &conn.queues.stats;
            stats.bytes_recv.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            stats.last_recv_us.store(now_us, std::sync::atomic::Ordering::Relaxed);
            NetTotals::add(&self.totals.bytes_recv, n as u64);
            let mut result = Ok(Default::default());
            let transport = &mut conn.transport;
            let before = (transport.kind(), transport.session_id().is_some());
            let totals = &self.totals;
            let magic = self.cfg.magic;
            let chunk = self.buf.get(..n).unwrap_or(&[]);
            let queues = &conn.queues;
            let pushed = conn.queues.push_frames(|app| {
                result = transport.receive(magic, chunk, queues, |frame| match frame {
                    Delivery::Frame(f) => app.push(f.command, f.payload, f.checksum, now_us),
                    Delivery::Owned(f) => app.push_owned(&f.command, f.payload, f.checksum, now_us),
                    Delivery::Rejected(r) => {
                        stats.msgs_rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        NetTotals::add(&totals.msgs_rejected, 1);
                        let what = match r.reason {
                            RejectReason::BadChecksum => "Wrong checksum",
                            RejectReason::InvalidCommand => "Invalid message type",
                            RejectReason::UnknownShortId => "Unknown v2 short message ID",
                        };
                        debug!(target: "net", "Header error: {what} ({}, {} bytes), peer={id}", sanitize_command(r.command), r.len);
                    }
                })
            });
            if pushed.newly_ready {
                self.ready.push(id);
            }
            if (transport.kind(), transport.session_id().is_some()) != before {
                set_transport_stats(queues, transport);
            }
            match result {
                Ok(r) => want_write |= r.write,
                Err(e) => {
                    fatal = Some(DisconnectReason::Transport(e));
                    break;
                }
            }
            if pushed.paused {
                // Over the receive limit: the message handler sends Resume when it drains.
                break;
            }
            if n < want && !to_end {
                // A short read of a stream socket means it is drained; the next arrival raises
                // a new edge. Saves the read that would only return WouldBlock.
                break;
            }
        }
        if let Some(reason) = fatal {
            self.close(id, reason);
        } else if want_write {
            self.write(id);
        }
    }

    fn write(&mut self, id: PeerId) {
        let now_us = self.clock.now_us();
        let Some(conn) = self.conns.get_mut(&id) else { return };
        if !matches!(conn.state, ConnState::Open) {
            return;
        }
        match conn.queues.flush_from_socket(now_us) {
            Ok(w) => {
                if w.unpaused {
                    self.ready.push(id);
                }
                let want_write = w.left > 0;
                if want_write != conn.write_registered {
                    let interest =
                        if want_write { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
                    let fd = conn.queues.stream().as_raw_fd();
                    let _ = self.poll.registry().reregister(&mut SourceFd(&fd), Token(id as usize), interest);
                    conn.write_registered = want_write;
                }
            }
            Err(e) => self.close(id, DisconnectReason::WriteError(e.to_string())),
        }
    }

    fn close(&mut self, id: PeerId, reason: DisconnectReason) {
        self.connecting.remove(&id);
        let Some(conn) = self.conns.remove(&id) else { return };
        let fd = conn.queues.stream().as_raw_fd();
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        conn.queues.close();
        if let ConnState::Connecting = conn.state {
            self.tell_dialer(conn.target, |target| DialerEvent::Failed { target, error: reason.to_string() });
            return;
        }
        if conn.who.conn_type.is_inbound() {
            self.inbound = self.inbound.saturating_sub(1);
        }
        debug!(target: "net", "closed {}: {reason}", conn.who.label(self.cfg.log_ips));
        self.events.push(NetEvent::Closed { id, reason: reason.clone() });
        // Core's ShouldReconnectV1: our v2 key got no answer but a close (a v1-only peer hangs
        // up on bytes that are not its magic): one more try in v1, for the same target.
        let peer_hung_up = matches!(reason, DisconnectReason::PeerClosed | DisconnectReason::ReadError(_));
        if peer_hung_up && conn.transport.should_reconnect_v1() && self.network_active.load(Ordering::Acquire) {
            debug!(target: "net", "retrying with v1 transport protocol for peer={id}");
            self.connect(conn.who.addr, conn.who.name.clone(), conn.who.conn_type, conn.target, false);
            return;
        }
        let handshake_done = conn.queues.stats.handshake_complete.load(Ordering::Relaxed);
        self.tell_dialer(conn.target, |target| DialerEvent::Closed { target, handshake_done });
    }
}

/// Publishes a connection's transport and session id for `getpeerinfo`.
fn set_transport_stats(queues: &PeerQueues, transport: &ConnTransport) {
    queues.stats.set_transport(transport.kind());
    if let Some(id) = transport.session_id() {
        let mut s = queues.stats.session_id.lock();
        if s.is_none() {
            *s = Some(id);
        }
    }
}

mod dial;
