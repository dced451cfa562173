//! A deterministic simulation of many nodes' peer management on fake time, with no sockets and
//! no threads (nakamoto's simulator is the model): every honest node is the daemon's own
//! [`PeerManager`](crate::engine::peerman::PeerManager) (its `Protocol` with `AddrMan`, Core's
//! addr relay, handshake, pings, headers state; its outbound planner and eviction choice),
//! driven with fake time; messages travel over an in-memory network as payload bytes through a
//! priority queue of events, each link delivering in order after a latency drawn from a seeded
//! RNG. Attackers are scripted: they complete the handshake and flood addresses.
//!
//! The same [`Config`] (seed included) always gives the same [`Report`]. See
//! `docs/SIMULATION.md` for the model and its simplifications.

mod attacker;
mod churn;
mod honest;
mod report;

#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bitcoin::p2p::message::NetworkMessage;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::base::chainparams::Network;
use crate::base::peer::DisconnectReason;
use crate::base::peer::{ConnectionType, PeerId};
use crate::engine::chain::params::ChainParams;
use crate::engine::peerman::Action;
use crate::engine::protocol::Now;

pub use report::{AddrStats, Report};

/// The port every simulated node listens on.
pub const PORT: u16 = 8333;
/// First octet of the attackers' address ranges: their /16s are `ATTACKER_OCTET.(10..10+G)`.
pub const ATTACKER_OCTET: u8 = 45;
/// How long a dial to an address nobody answers takes to fail (the socket handler's connect
/// timeout).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Config {
    /// Honest nodes at the start.
    pub nodes: usize,
    /// Attacker nodes.
    pub attackers: usize,
    /// /16 ranges the attackers control (their own and all their fake addresses live there).
    pub attacker_groups: usize,
    /// Honest "seed" nodes every node knows (`--seednode`); they never churn.
    pub seeds: usize,
    /// Simulated time.
    pub duration: Duration,
    /// The RNG seed: the same seed gives the same report.
    pub seed: u64,
    /// Addresses of other honest nodes in each initial node's book (as if from an earlier
    /// `peers.dat`); seeds know every initial node.
    pub initial_book: usize,
    /// Share of online non-seed honest nodes that restart per hour (keeping their book).
    pub restarts_per_hour: f64,
    /// Longest downtime of a restart (uniform from one minute).
    pub max_downtime: Duration,
    /// New honest nodes joining per hour with an empty book and only the seed nodes.
    pub joins_per_hour: f64,
    /// Honest nodes leaving for good per hour.
    pub leaves_per_hour: f64,
    /// Core's inbound limit (`--maxconnections` 125 less 8 + 2 + 1 automatic slots); when full,
    /// Core's eviction chooses whom to drop.
    pub max_inbound: usize,
    /// Honest nodes each attacker keeps an (inbound, for them) connection to.
    pub attacker_dials: usize,
    /// Each attacker sends every peer a 1,000-address and a 10-address `addr` this often.
    pub flood_interval: Duration,
    /// Control run: honest nodes grant attacker connections the `addr` permission (as
    /// `--whitelist=addr@…` would), so the token bucket does not apply to them.
    pub whitelist_attackers: bool,
    /// How often each honest node runs its outbound planner (Core: every 500 ms).
    pub plan_interval: Duration,
    /// How often each honest node runs `send_messages` for every peer (Core: every 100 ms);
    /// it also runs after each message received from the peer.
    pub sweep_interval: Duration,
    /// One-way latency of a message is drawn uniformly from this range (milliseconds).
    pub latency_ms: (u64, u64),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            nodes: 200,
            attackers: 5,
            attacker_groups: 4,
            seeds: 3,
            duration: Duration::from_secs(6 * 3600),
            seed: 1,
            initial_book: 30,
            restarts_per_hour: 0.10,
            max_downtime: Duration::from_secs(30 * 60),
            joins_per_hour: 4.0,
            leaves_per_hour: 2.0,
            max_inbound: 114,
            attacker_dials: 20,
            flood_interval: Duration::from_secs(30),
            whitelist_attackers: false,
            plan_interval: Duration::from_secs(1),
            sweep_interval: Duration::from_secs(5),
            latency_ms: (10, 150),
        }
    }
}

/// Index of a node in [`Sim::nodes`].
type NodeIdx = usize;
/// Index of a connection in [`Sim::conns`].
type ConnIdx = usize;

/// One end of a connection.
#[derive(Clone, Copy, Debug)]
struct End {
    node: NodeIdx,
    /// The node's incarnation when the connection opened (a restart ends every connection).
    boot: u32,
    peer: PeerId,
    /// The end still exists (it has not closed its side).
    open: bool,
}

/// A connection: end 0 dialed, end 1 accepted.
#[derive(Clone, Debug)]
struct Conn {
    ends: [End; 2],
    /// When the last message scheduled toward each end arrives (TCP keeps order).
    last_at: [Duration; 2],
}

/// Something that happens at a point of simulated time.
#[derive(Debug)]
enum Ev {
    /// A message arrives at end `to` of `conn`.
    Deliver { conn: ConnIdx, to: usize, msg: NetworkMessage },
    /// End `to` of `conn` learns the other end closed.
    Closed { conn: ConnIdx, to: usize },
    /// A dial reaches its target (or not).
    DialArrives { node: NodeIdx, boot: u32, addr: SocketAddr, conn_type: ConnectionType },
    /// A dial to nobody times out.
    DialFailed { node: NodeIdx, boot: u32, addr: SocketAddr, conn_type: ConnectionType },
    /// A node runs its outbound planner.
    Plan { node: NodeIdx, boot: u32 },
    /// A node runs `send_messages` for every peer.
    Sweep { node: NodeIdx, boot: u32 },
    /// An attacker floods every peer.
    Flood { node: NodeIdx },
    /// An attacker tops up its connections to honest nodes.
    AttackerDial { node: NodeIdx },
    /// Restarts, joins and leaves of the next period.
    Churn,
    /// A restarting node comes back.
    Restart { node: NodeIdx },
}

struct Scheduled {
    at: Duration,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    // Earliest first (BinaryHeap is a max-heap); ties in scheduling order.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// What a node is.
enum Brain {
    Honest(Box<honest::Honest>),
    Attacker(Box<attacker::Attacker>),
    /// Offline; what survives a restart (`peers.dat`, `anchors.dat`).
    Down(honest::Saved),
    /// Left for good.
    Gone,
}

/// A simulated node.
struct Node {
    addr: SocketAddr,
    seed: bool,
    boot: u32,
    /// When it last came online.
    up_since: Duration,
    brain: Brain,
}

impl Node {
    fn online(&self) -> bool {
        matches!(self.brain, Brain::Honest(_) | Brain::Attacker(_))
    }
    fn is_honest(&self) -> bool {
        !matches!(self.brain, Brain::Attacker(_))
    }
}

/// The simulation.
pub struct Sim {
    cfg: Config,
    /// Fake monotonic origin (only offsets from it matter).
    base: Instant,
    /// Unix time at the start: the regtest genesis time, so the header chain stays "recent"
    /// and headers sync is idle (the simulated network has no blocks).
    unix0: i64,
    now: Duration,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    rng: StdRng,
    nodes: Vec<Node>,
    conns: Vec<Conn>,
    /// Honest nodes by listening address.
    by_addr: HashMap<SocketAddr, NodeIdx>,
    used_ips: HashSet<Ipv4Addr>,
    seed_addrs: Vec<SocketAddr>,
    attackers: Vec<NodeIdx>,
    stats: AddrStats,
}

/// Whether `ip` lies in the attackers' ranges.
pub fn is_attacker_ip(ip: IpAddr, groups: usize) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            o[0] == ATTACKER_OCTET && (10..10 + groups as u16).contains(&u16::from(o[1]))
        }
        IpAddr::V6(_) => false,
    }
}

impl Sim {
    /// A network set up from `cfg`, at time zero.
    pub fn new(cfg: Config) -> Sim {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let unix0 = i64::from(ChainParams::new(Network::Regtest).genesis.time);
        let mut sim = Sim {
            base: Instant::now(),
            unix0,
            now: Duration::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            rng: StdRng::seed_from_u64(rng.random()),
            nodes: Vec::new(),
            conns: Vec::new(),
            by_addr: HashMap::new(),
            used_ips: HashSet::new(),
            seed_addrs: Vec::new(),
            attackers: Vec::new(),
            stats: AddrStats::default(),
            cfg,
        };
        let addrs: Vec<SocketAddr> = (0..sim.cfg.nodes).map(|_| sim.fresh_addr()).collect();
        sim.seed_addrs = addrs.iter().take(sim.cfg.seeds).copied().collect();
        for (i, &addr) in addrs.iter().enumerate() {
            let seed = i < sim.cfg.seeds;
            let book: Vec<SocketAddr> = if seed {
                addrs.iter().copied().filter(|a| *a != addr).collect()
            } else {
                let mut others: Vec<SocketAddr> = addrs.iter().copied().filter(|a| *a != addr).collect();
                rand::seq::SliceRandom::shuffle(others.as_mut_slice(), &mut sim.rng);
                others.truncate(sim.cfg.initial_book);
                others
            };
            let idx = sim.nodes.len();
            sim.by_addr.insert(addr, idx);
            sim.nodes.push(Node { addr, seed, boot: 0, up_since: Duration::ZERO, brain: Brain::Gone });
            let h = sim.new_honest(idx, Some(&book), None);
            sim.nodes[idx].brain = Brain::Honest(Box::new(h));
            sim.schedule_node_timers(idx);
        }
        for k in 0..sim.cfg.attackers {
            let g = (k % sim.cfg.attacker_groups.max(1)) as u8;
            let ip = Ipv4Addr::new(ATTACKER_OCTET, 10 + g, k as u8, 1);
            let idx = sim.nodes.len();
            let a = attacker::Attacker::new(sim.rng.random(), sim.cfg.attacker_groups);
            sim.nodes.push(Node {
                addr: SocketAddr::new(ip.into(), PORT),
                seed: false,
                boot: 0,
                up_since: Duration::ZERO,
                brain: Brain::Attacker(Box::new(a)),
            });
            sim.attackers.push(idx);
            let first = Duration::from_millis(sim.rng.random_range(0..10_000));
            sim.at(first, Ev::AttackerDial { node: idx });
            let flood = Duration::from_millis(sim.rng.random_range(0..sim.cfg.flood_interval.as_millis() as u64 + 1));
            sim.at(flood, Ev::Flood { node: idx });
        }
        sim.at(churn::PERIOD, Ev::Churn);
        sim
    }

    /// A new public-looking IPv4 address outside the attackers' and reserved ranges.
    fn fresh_addr(&mut self) -> SocketAddr {
        const AVOID: [u8; 10] = [0, 10, ATTACKER_OCTET, 100, 127, 169, 172, 192, 198, 203];
        loop {
            let a: u8 = self.rng.random_range(1..=223);
            if AVOID.contains(&a) {
                continue;
            }
            let ip = Ipv4Addr::new(a, self.rng.random(), self.rng.random(), self.rng.random_range(1..=254));
            if self.used_ips.insert(ip) {
                return SocketAddr::new(ip.into(), PORT);
            }
        }
    }

    /// The time now, as the protocol reads it.
    fn now(&self) -> Now {
        Now { mono: self.base + self.now, unix: self.unix0 + self.now.as_secs() as i64 }
    }

    fn at(&mut self, delay: Duration, ev: Ev) {
        self.seq += 1;
        self.queue.push(Scheduled { at: self.now + delay, seq: self.seq, ev });
    }

    fn latency(&mut self) -> Duration {
        let (lo, hi) = self.cfg.latency_ms;
        Duration::from_millis(self.rng.random_range(lo..=hi.max(lo)))
    }

    fn schedule_node_timers(&mut self, idx: NodeIdx) {
        let boot = self.nodes[idx].boot;
        let p = Duration::from_millis(self.rng.random_range(0..self.cfg.plan_interval.as_millis() as u64 + 1));
        let s = Duration::from_millis(self.rng.random_range(0..self.cfg.sweep_interval.as_millis() as u64 + 1));
        self.at(p, Ev::Plan { node: idx, boot });
        self.at(s, Ev::Sweep { node: idx, boot });
    }

    /// Runs the whole configured duration and reports.
    pub fn run(cfg: Config) -> Report {
        let end = cfg.duration;
        let mut sim = Sim::new(cfg);
        sim.run_until(end);
        sim.report()
    }

    /// Processes every event up to `end` (simulated time since the start).
    pub fn run_until(&mut self, end: Duration) {
        while self.queue.peek().is_some_and(|s| s.at <= end) {
            let Some(s) = self.queue.pop() else { break };
            self.now = s.at;
            self.handle(s.ev);
        }
        self.now = end;
    }

    /// An honest node online for at least [`SETTLE`].
    fn settled(&self, i: NodeIdx) -> bool {
        let n = &self.nodes[i];
        matches!(n.brain, Brain::Honest(_)) && self.now >= n.up_since + SETTLE
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver { conn, to, msg } => self.deliver(conn, to, msg),
            Ev::Closed { conn, to } => self.on_closed(conn, to),
            Ev::DialArrives { node, boot, addr, conn_type } => self.dial_arrives(node, boot, addr, conn_type),
            Ev::DialFailed { node, boot, addr, conn_type } => {
                if self.nodes[node].boot == boot {
                    if let Brain::Honest(h) = &mut self.nodes[node].brain {
                        h.mgr.dial_failed(addr, conn_type);
                    }
                }
            }
            Ev::Plan { node, boot } => {
                if self.nodes[node].boot == boot && self.nodes[node].online() {
                    self.plan(node);
                    self.at(self.cfg.plan_interval, Ev::Plan { node, boot });
                }
            }
            Ev::Sweep { node, boot } => {
                if self.nodes[node].boot == boot && self.nodes[node].online() {
                    self.sweep(node);
                    self.at(self.cfg.sweep_interval, Ev::Sweep { node, boot });
                }
            }
            Ev::Flood { node } => {
                self.flood(node);
                self.at(self.cfg.flood_interval, Ev::Flood { node });
            }
            Ev::AttackerDial { node } => {
                self.attacker_dial(node);
                self.at(Duration::from_secs(600), Ev::AttackerDial { node });
            }
            Ev::Churn => {
                self.churn();
                self.at(churn::PERIOD, Ev::Churn);
            }
            Ev::Restart { node } => self.restart(node),
        }
    }

    /// Schedules `msg` from end `from` of `conn` to the other end, after the link's messages
    /// already in flight.
    fn send(&mut self, conn: ConnIdx, from: usize, msg: NetworkMessage) {
        let to = 1 - from;
        let at = (self.now + self.latency()).max(self.conns[conn].last_at[to]);
        self.conns[conn].last_at[to] = at;
        self.seq += 1;
        self.queue.push(Scheduled { at, seq: self.seq, ev: Ev::Deliver { conn, to, msg } });
    }

    /// End `side` of `conn` closes: the other end learns it after the messages in flight.
    fn close_end(&mut self, conn: ConnIdx, side: usize) {
        let c = &mut self.conns[conn];
        if !c.ends[side].open {
            return;
        }
        c.ends[side].open = false;
        let to = 1 - side;
        if c.ends[to].open {
            let at = (self.now + self.latency()).max(self.conns[conn].last_at[to]);
            self.conns[conn].last_at[to] = at;
            self.seq += 1;
            self.queue.push(Scheduled { at, seq: self.seq, ev: Ev::Closed { conn, to } });
        }
    }

    /// The live end `to` of `conn`, if its node is still the incarnation that opened it.
    fn live_end(&self, conn: ConnIdx, to: usize) -> Option<End> {
        let end = self.conns[conn].ends[to];
        (end.open && self.nodes[end.node].boot == end.boot && self.nodes[end.node].online()).then_some(end)
    }

    fn deliver(&mut self, conn: ConnIdx, to: usize, msg: NetworkMessage) {
        let Some(end) = self.live_end(conn, to) else { return };
        let now = self.now();
        match &mut self.nodes[end.node].brain {
            Brain::Honest(h) => {
                let Some(out) = h.receive(end.peer, msg, now) else { return };
                self.after(end.node, conn, to, out.sent);
            }
            Brain::Attacker(a) => {
                let replies = a.receive(end.peer, msg, now);
                for m in replies {
                    self.send(conn, to, m);
                }
            }
            _ => {}
        }
    }

    fn on_closed(&mut self, conn: ConnIdx, to: usize) {
        let Some(end) = self.live_end(conn, to) else { return };
        self.conns[conn].ends[to].open = false;
        self.drop_peer(end.node, end.peer, &DisconnectReason::PeerClosed);
    }

    /// Forgets `peer` of `node` (its connection is already closed on this side).
    fn drop_peer(&mut self, node: NodeIdx, peer: PeerId, reason: &DisconnectReason) {
        let now = self.now();
        let groups = self.cfg.attacker_groups;
        match &mut self.nodes[node].brain {
            Brain::Honest(h) => {
                if let Some((_, p)) = h.remove(peer, reason, now) {
                    self.stats.count(&p, groups);
                }
            }
            Brain::Attacker(a) => a.remove(peer),
            _ => {}
        }
    }

    /// An honest node's manager wrote `sent` on end `side` of `conn`: schedules them, then
    /// carries out what the manager decided (as the daemon's message handler does).
    fn after(&mut self, node: NodeIdx, conn: ConnIdx, side: usize, sent: Vec<NetworkMessage>) {
        for msg in sent {
            self.send(conn, side, msg);
        }
        self.apply_actions(node);
    }

    /// Carries out an honest node's [`Action`]s: closes connections, starts dials, counts
    /// discouragements.
    fn apply_actions(&mut self, node: NodeIdx) {
        let boot = self.nodes[node].boot;
        let Brain::Honest(h) = &mut self.nodes[node].brain else { return };
        for action in h.take_actions() {
            match action {
                Action::Disconnect { id, reason } => {
                    let Brain::Honest(h) = &self.nodes[node].brain else { return };
                    if let Some((conn, side)) = h.links.get(&id).map(|l| (l.conn, l.side)) {
                        self.close_end(conn, side);
                        self.drop_peer(node, id, &reason);
                    }
                }
                Action::Dial { addr, conn_type, .. } => {
                    let rtt = self.latency() + self.latency();
                    self.at(rtt, Ev::DialArrives { node, boot, addr, conn_type });
                }
                Action::AddrFetch(name) => {
                    if let Ok(addr) = name.parse() {
                        let rtt = self.latency() + self.latency();
                        self.at(rtt, Ev::DialArrives { node, boot, addr, conn_type: ConnectionType::AddrFetch });
                    }
                }
                Action::Discourage(_) => self.stats.discouraged += 1,
                // Simulated nodes carry no blocks (their protocol runs without them).
                Action::Validate(_) => {}
            }
        }
    }

    /// Runs an honest node's timers (its outbound planner starts dials).
    fn plan(&mut self, node: NodeIdx) {
        let now = self.now();
        let Brain::Honest(h) = &mut self.nodes[node].brain else { return };
        h.tick(now);
        self.apply_actions(node);
    }

    /// `send_messages` for every peer of an honest node.
    fn sweep(&mut self, node: NodeIdx) {
        let now = self.now();
        let Brain::Honest(h) = &mut self.nodes[node].brain else { return };
        for (conn, side, out) in h.sweep(now) {
            for msg in out.sent {
                self.send(conn, side, msg);
            }
        }
        self.apply_actions(node);
    }

    /// The node answering at `addr`: an honest node by its address, an attacker for any
    /// address in the attackers' ranges (they control those hosts).
    fn target(&self, addr: SocketAddr) -> Option<NodeIdx> {
        if is_attacker_ip(addr.ip(), self.cfg.attacker_groups) {
            let IpAddr::V4(v4) = addr.ip() else { return None };
            return self.attackers.get(usize::from(v4.octets()[2]) % self.attackers.len().max(1)).copied();
        }
        self.by_addr.get(&addr).copied()
    }

    fn dial_arrives(&mut self, node: NodeIdx, boot: u32, addr: SocketAddr, conn_type: ConnectionType) {
        let dialer_live = self.nodes[node].boot == boot && self.nodes[node].online();
        if !dialer_live {
            return;
        }
        let target = self.target(addr).filter(|&t| self.nodes[t].online() && t != node);
        let Some(target) = target else {
            // Nobody answers: the dial fails after the connect timeout.
            if conn_type != ConnectionType::Inbound {
                self.at(CONNECT_TIMEOUT, Ev::DialFailed { node, boot, addr, conn_type });
            }
            return;
        };
        let from = self.nodes[node].addr;
        if !self.make_room(target) {
            self.stats.refused += 1;
            if let Brain::Honest(h) = &mut self.nodes[node].brain {
                h.mgr.dial_failed(addr, conn_type);
            }
            return;
        }
        let conn = self.conns.len();
        let now = self.now();
        let whitelist = self.cfg.whitelist_attackers;
        let groups = self.cfg.attacker_groups;
        let dialer_type =
            if conn_type == ConnectionType::Inbound { ConnectionType::OutboundFullRelay } else { conn_type };
        let mut ends = [
            End { node, boot, peer: 0, open: true },
            End { node: target, boot: self.nodes[target].boot, peer: 0, open: true },
        ];
        // The acceptor first, so the dialer's version finds it there.
        ends[1].peer = match &mut self.nodes[target].brain {
            Brain::Honest(h) => h.accept(from, conn, now, whitelist && is_attacker_ip(from.ip(), groups)),
            Brain::Attacker(a) => a.add_peer(conn, 1, true),
            _ => return,
        };
        let mut first = Vec::new();
        ends[0].peer = match &mut self.nodes[node].brain {
            Brain::Honest(h) => {
                let whitelisted = whitelist && is_attacker_ip(addr.ip(), groups);
                let (id, out) = h.connect(addr, dialer_type, conn, now, whitelisted);
                first = out.sent;
                id
            }
            Brain::Attacker(a) => {
                let id = a.add_peer(conn, 0, false);
                first.push(a.version(now));
                id
            }
            _ => return,
        };
        self.conns.push(Conn { ends, last_at: [Duration::ZERO; 2] });
        for m in first {
            self.send(conn, 0, m);
        }
        self.apply_actions(target);
        self.apply_actions(node);
    }

    /// Whether `target` can take one more inbound connection, evicting one (Core's eviction)
    /// if its inbound slots are full. Attackers take everything.
    fn make_room(&mut self, target: NodeIdx) -> bool {
        let Brain::Honest(h) = &mut self.nodes[target].brain else { return true };
        if h.inbound_count() < self.cfg.max_inbound {
            return true;
        }
        let Some(victim) = h.select_eviction(self.base) else { return false };
        let Some(conn) = h.links.get(&victim).map(|l| (l.conn, l.side)) else { return false };
        self.stats.evicted += 1;
        self.close_end(conn.0, conn.1);
        self.drop_peer(target, victim, &DisconnectReason::Evicted);
        true
    }

    /// An attacker sends its flood to every peer.
    fn flood(&mut self, node: NodeIdx) {
        let now = self.now();
        let Brain::Attacker(a) = &mut self.nodes[node].brain else { return };
        for (conn, side, msg) in a.flood(now) {
            self.send(conn, side, msg);
        }
    }

    /// An attacker opens connections to online honest nodes it is not connected to, up to
    /// `attacker_dials`.
    fn attacker_dial(&mut self, node: NodeIdx) {
        let have: HashSet<NodeIdx> = match &self.nodes[node].brain {
            Brain::Attacker(a) => a.peers.values().map(|p| self.conns[p.conn].ends[1 - p.side].node).collect(),
            _ => return,
        };
        let want = self.cfg.attacker_dials.saturating_sub(have.len());
        let mut candidates: Vec<NodeIdx> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_honest() && self.nodes[i].online() && !have.contains(&i))
            .collect();
        rand::seq::SliceRandom::shuffle(candidates.as_mut_slice(), &mut self.rng);
        for t in candidates.into_iter().take(want) {
            let addr = self.nodes[t].addr;
            let rtt = self.latency() + self.latency();
            self.at(rtt, Ev::DialArrives { node, boot: 0, addr, conn_type: ConnectionType::Inbound });
        }
    }
}

/// How long a node must have been online to count as settled in the report (its outbound
/// slots fill within seconds; a node that came up a moment ago has none yet).
pub const SETTLE: Duration = Duration::from_secs(300);

/// Node-indexed adjacency of the established connections between settled honest nodes.
fn honest_graph(sim: &Sim) -> BTreeMap<NodeIdx, Vec<NodeIdx>> {
    let settled = |i: NodeIdx| sim.settled(i);
    let mut adj: BTreeMap<NodeIdx, Vec<NodeIdx>> = BTreeMap::new();
    for (i, n) in sim.nodes.iter().enumerate() {
        if !settled(i) {
            continue;
        }
        if let Brain::Honest(h) = &n.brain {
            adj.entry(i).or_default();
            for (l, p) in h.peers() {
                if !p.handshake.successfully_connected
                    || !matches!(
                        p.who.conn_type,
                        ConnectionType::OutboundFullRelay | ConnectionType::BlockRelayOnly | ConnectionType::Inbound
                    )
                {
                    continue;
                }
                let other = sim.conns[l.conn].ends[1 - l.side].node;
                if settled(other) {
                    adj.entry(i).or_default().push(other);
                    adj.entry(other).or_default().push(i);
                }
            }
        }
    }
    for v in adj.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    adj
}
