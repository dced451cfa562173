//! Which automatic outbound connections to open (Core's `ThreadOpenConnections` after
//! `-connect`), I/O-free: [`OutboundPlanner::tick`] is given the time, the address book and a
//! [`View`] of the open connections, and says whom to dial with which connection type, which
//! `--seednode` to fetch addresses from, and when to add the fixed seeds. It owns the anchors,
//! the seed-node queue, the feeler timer and the one dial in flight (Core's thread blocks while
//! it connects, so it never has more than one); the peer manager owns the planner.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bitcoin::p2p::ServiceFlags;
use rand::RngExt;
use rand::rngs::StdRng;

use crate::base::netaddr::NetKind;
use crate::base::peer::ConnectionType;
use crate::engine::addrman::{AddrEntry, AddrMan, AddrNetwork, network};
use crate::engine::policy::seeding::{SEED_OUTBOUND_CONNECTION_THRESHOLD, fixed_seeds_due};

/// Core's `MAX_OUTBOUND_FULL_RELAY_CONNECTIONS`.
pub const MAX_OUTBOUND_FULL_RELAY: usize = 8;
/// Core's `MAX_BLOCK_RELAY_ONLY_CONNECTIONS`.
pub const MAX_BLOCK_RELAY_ONLY: usize = 2;
/// Core's `MAX_BLOCK_RELAY_ONLY_ANCHORS`: block-relay-only peers kept in `anchors.dat`.
pub const MAX_ANCHORS: usize = 2;
/// Core's `FEELER_INTERVAL` (the mean of an exponential delay).
pub const FEELER_INTERVAL: Duration = Duration::from_secs(120);
/// Core's `EXTRA_BLOCK_RELAY_ONLY_PEER_INTERVAL` (mean of an exponential delay): once the
/// initial sync is over, an extra block-relay-only peer is tried this often, and the youngest
/// of them that brought nothing new is dropped again.
pub const EXTRA_BLOCK_RELAY_ONLY_PEER_INTERVAL: Duration = Duration::from_secs(300);
/// Core's `EXTRA_PEER_CHECK_INTERVAL`: how often extra outbound peers are looked for.
pub const EXTRA_PEER_CHECK_INTERVAL: Duration = Duration::from_secs(45);
/// Core's `STALE_CHECK_INTERVAL`: how often the tip is checked for staleness.
pub const STALE_CHECK_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Core's `MINIMUM_CONNECT_TIME`: an extra peer is kept at least this long.
pub const MINIMUM_CONNECT_TIME: Duration = Duration::from_secs(30);
/// Core's `FEELER_SLEEP_WINDOW`: random delay before a feeler connects.
pub const FEELER_SLEEP_WINDOW: Duration = Duration::from_secs(1);
/// Core sleeps this long between two rounds of its connection loop.
pub const TICK: Duration = Duration::from_millis(500);
/// Core's `ADD_NEXT_SEEDNODE`: how often another `--seednode` is asked while outbound is short.
pub const ADD_NEXT_SEEDNODE: Duration = Duration::from_secs(10);
/// How long a dial may stay unanswered before the planner stops waiting for it (the socket
/// handler gives up after the 5 s connect timeout and says so; this is only a safety net).
pub const DIAL_FORGET: Duration = Duration::from_secs(30);
/// Core's `NODE_NETWORK_LIMITED_ALLOW_CONN_BLOCKS`: limited peers are desirable this close to the tip.
pub const NODE_NETWORK_LIMITED_ALLOW_CONN_BLOCKS: i64 = 144;

/// Core's `IsBadPort`: ports of other protocols that automatic connections avoid.
pub fn is_bad_port(port: u16) -> bool {
    const BAD: &[u16] = &[
        1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109,
        110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530,
        531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3306, 3389, 3659,
        4045, 5060, 5061, 5432, 5900, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6697, 10080, 27017,
    ];
    BAD.contains(&port)
}

/// Core's `MayHaveUsefulAddressDB`: what a feeler's address must offer.
pub fn may_have_useful_address_db(services: ServiceFlags) -> bool {
    services.has(ServiceFlags::NETWORK) || services.has(ServiceFlags::NETWORK_LIMITED)
}

/// Core's `HasAllDesirableServiceFlags`, given how many blocks our best header is behind the
/// clock (limited peers are enough close to the tip).
pub fn has_desirable_services(services: ServiceFlags, tip_depth: i64) -> bool {
    let wanted = if services.has(ServiceFlags::NETWORK_LIMITED) && tip_depth < NODE_NETWORK_LIMITED_ALLOW_CONN_BLOCKS {
        ServiceFlags::NETWORK_LIMITED | ServiceFlags::WITNESS
    } else {
        ServiceFlags::NETWORK | ServiceFlags::WITNESS
    };
    services.has(wanted)
}

/// How the planner was set up at start.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// Automatic connections are on (no `--connect`).
    pub enabled: bool,
    /// `--seednode` values, shuffled; asked from the back.
    pub seed_nodes: Vec<String>,
    /// `--fixedseeds`.
    pub fixed_seeds: bool,
    /// `--dnsseed`.
    pub dnsseed: bool,
    /// `--addnode` was given.
    pub have_addnodes: bool,
    /// Networks we connect to (`--onlynet`; all of IPv4 and IPv6 by default).
    pub reachable: Vec<AddrNetwork>,
    /// Addresses read from `anchors.dat`, tried first as block-relay-only peers.
    pub anchors: Vec<AddrEntry>,
    /// `--maxconnections`: fewer than 8 + 2 automatic slots shrink them as in Core.
    pub max_connections: usize,
}

/// One connection the node has open.
#[derive(Clone, Debug)]
pub struct Conn {
    /// The peer's address.
    pub addr: SocketAddr,
    /// Why it exists.
    pub conn_type: ConnectionType,
}

/// What the planner needs to know about the node each round.
pub struct View<'a> {
    /// Every open connection, inbound too.
    pub conns: &'a [Conn],
    /// Addresses of the `--addnode`/`addnode` peers (never used for automatic connections).
    pub added: &'a [SocketAddr],
    /// Banned or discouraged.
    pub refused: &'a dyn Fn(IpAddr) -> bool,
    /// One of our own addresses (Core's `IsLocal`).
    pub is_local: &'a dyn Fn(IpAddr) -> bool,
    /// Blocks our best header is behind the clock.
    pub tip_depth: i64,
    /// P2P networking is on.
    pub network_active: bool,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open a connection (the caller records the attempt in the address book).
    Dial {
        /// Where.
        addr: SocketAddr,
        /// Which kind.
        conn_type: ConnectionType,
        /// The address advertises `NODE_P2P_V2` (Core opens such connections with v2).
        v2: bool,
    },
    /// Connect to this `--seednode` as an addr-fetch peer (the name must be resolved).
    AddrFetch(String),
    /// Add these fixed seeds to the address book.
    AddFixedSeeds(Vec<AddrEntry>),
    /// A line for the log (Core's `LogInfo`).
    Log(String),
    /// A line for the `net` debug category (Core's `LogDebug(BCLog::NET)`).
    Debug(String),
}

/// The automatic-connection schedule of one node run.
pub struct OutboundPlanner {
    setup: Setup,
    max_full: usize,
    max_block: usize,
    start: Instant,
    next_tick: Instant,
    next_feeler: Instant,
    next_extra_block_relay: Instant,
    /// The initial sync is over (Core's `StartExtraBlockRelayPeers`).
    extra_block_relay: bool,
    /// Our tip may be stale: open one full-relay peer over the slots (Core's
    /// `m_try_another_outbound_peer`).
    try_new_outbound: bool,
    /// When the tip is next checked for staleness (Core's `m_stale_tip_check_time`; `None`:
    /// at the first check).
    next_stale_check: Option<Instant>,
    /// The feeler chosen, waiting out its random delay.
    feeler_at: Option<(Instant, SocketAddr, bool)>,
    seed_node_timer: Instant,
    add_addr_fetch: bool,
    /// The dial in flight.
    pending: Option<(SocketAddr, ConnectionType, Instant)>,
    add_fixed_seeds: bool,
    fixed: Vec<AddrEntry>,
}

fn exp_delay(rng: &mut StdRng, mean: Duration) -> Duration {
    let u: f64 = rng.random();
    Duration::from_secs_f64(-(1.0 - u).ln() * mean.as_secs_f64()).min(mean * 50)
}

impl OutboundPlanner {
    /// A planner starting at `now`; `fixed` are the network's fixed seeds.
    pub fn new(setup: Setup, fixed: Vec<AddrEntry>, now: Instant, addrman_empty: bool, rng: &mut StdRng) -> Self {
        let automatic = setup.max_connections;
        let max_full = MAX_OUTBOUND_FULL_RELAY.min(automatic);
        let max_block = MAX_BLOCK_RELAY_ONLY.min(automatic - max_full);
        // Core: no outbound slots at all (`-maxconnections=0`) means no automatic connections.
        let setup = Setup { enabled: setup.enabled && automatic > 0, ..setup };
        OutboundPlanner {
            max_full,
            max_block,
            start: now,
            next_tick: now,
            next_feeler: now + exp_delay(rng, FEELER_INTERVAL),
            next_extra_block_relay: now + exp_delay(rng, EXTRA_BLOCK_RELAY_ONLY_PEER_INTERVAL),
            extra_block_relay: false,
            try_new_outbound: false,
            next_stale_check: None,
            feeler_at: None,
            seed_node_timer: now,
            add_addr_fetch: addrman_empty && !setup.seed_nodes.is_empty(),
            pending: None,
            add_fixed_seeds: setup.fixed_seeds,
            fixed,
            setup,
        }
    }

    /// The lines to log once at start.
    pub fn start_log(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.setup.enabled && !self.setup.fixed_seeds {
            v.push("Fixed seeds are disabled".into());
        }
        v
    }

    /// A dial to `addr` finished (connected, failed or refused).
    pub fn dial_done(&mut self, addr: SocketAddr) {
        if self.pending.as_ref().is_some_and(|p| p.0 == addr) {
            self.pending = None;
        }
    }

    /// Whether a dial is in flight.
    pub fn dialing(&self) -> Option<(SocketAddr, ConnectionType)> {
        self.pending.map(|(a, t, _)| (a, t))
    }

    /// The initial sync is over: start rotating an extra block-relay-only peer.
    pub fn start_extra_block_relay(&mut self) {
        self.extra_block_relay = true;
    }

    /// The stale-tip half of Core's `CheckForStaleTipAndEvictPeers`, run every
    /// [`EXTRA_PEER_CHECK_INTERVAL`]: every [`STALE_CHECK_INTERVAL`], with the network on and
    /// automatic connections in use, a possibly stale tip (`tip_may_be_stale`, Core's
    /// `TipMayBeStale`, asked only then) allows one full-relay peer over the slots; otherwise
    /// that permission is withdrawn. Returns the line to log when a stale tip was detected.
    pub fn check_stale_tip(
        &mut self,
        now: Instant,
        network_active: bool,
        tip_may_be_stale: impl FnOnce() -> Option<i64>,
    ) -> Option<String> {
        if self.next_stale_check.is_some_and(|t| now <= t) {
            return None;
        }
        self.next_stale_check = Some(now + STALE_CHECK_INTERVAL);
        let stale = if network_active && self.setup.enabled { tip_may_be_stale() } else { None };
        match stale {
            Some(secs) => {
                self.try_new_outbound = true;
                Some(format!(
                    "Potential stale tip detected, will try using extra outbound peer (last tip update: {secs} seconds ago)"
                ))
            }
            None => {
                self.try_new_outbound = false;
                None
            }
        }
    }

    /// Whether one full-relay peer over the slots may be opened (a stale tip was detected).
    pub fn try_new_outbound(&self) -> bool {
        self.try_new_outbound
    }

    /// An extra full-relay peer was evicted: it served its purpose, try no more until the
    /// next stale tip (Core's `SetTryNewOutboundPeer(false)` in `EvictExtraOutboundPeers`).
    pub fn extra_outbound_evicted(&mut self) {
        self.try_new_outbound = false;
    }

    /// The full-relay slots (more such peers are extra).
    pub fn max_full_relay(&self) -> usize {
        self.max_full
    }

    /// The block-relay-only slots (more such peers are extra).
    pub fn max_block_relay(&self) -> usize {
        self.max_block
    }

    /// Anchors not yet tried.
    pub fn anchors_left(&self) -> usize {
        self.setup.anchors.len()
    }

    /// When the planner wants to run next.
    pub fn next_tick(&self) -> Instant {
        self.next_tick
    }

    /// One round of Core's loop at `now` (does nothing before [`Self::next_tick`]).
    pub fn tick(
        &mut self,
        now: Instant,
        unix: i64,
        addrman: &mut AddrMan,
        view: &View,
        rng: &mut StdRng,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.setup.enabled || now < self.next_tick {
            return out;
        }
        self.next_tick = now + TICK;
        if self.pending.is_some_and(|p| now.saturating_duration_since(p.2) > DIAL_FORGET) {
            self.pending = None;
        }
        if !view.network_active || self.pending.is_some() {
            return out;
        }
        if let Some((at, addr, v2)) = self.feeler_at {
            if now >= at {
                self.feeler_at = None;
                out.push(Action::Debug(format!("Making feeler connection to {addr}")));
                self.dial(addr, ConnectionType::Feeler, v2, now, &mut out);
            }
            return out;
        }
        if self.add_addr_fetch {
            self.add_addr_fetch = false;
            if let Some(seed) = self.setup.seed_nodes.pop() {
                out.push(Action::Log(if addrman.size(None, None) == 0 {
                    format!("Empty addrman, adding seednode ({seed}) to addrfetch")
                } else {
                    format!(
                        "Couldn't connect to peers from addrman after {} seconds. Adding seednode ({seed}) to addrfetch",
                        ADD_NEXT_SEEDNODE.as_secs()
                    )
                }));
                out.push(Action::AddrFetch(seed));
            }
        }
        self.maybe_fixed_seeds(now, addrman, &mut out);

        let (full, block, groups) = self.count(view, addrman);
        if !self.setup.seed_nodes.is_empty()
            && full < SEED_OUTBOUND_CONNECTION_THRESHOLD
            && now > self.seed_node_timer + ADD_NEXT_SEEDNODE
        {
            self.seed_node_timer = now;
            self.add_addr_fetch = true;
        }

        let (conn_type, anchor) = if !self.setup.anchors.is_empty() && block < self.max_block {
            (ConnectionType::BlockRelayOnly, true)
        } else if full < self.max_full {
            (ConnectionType::OutboundFullRelay, false)
        } else if block < self.max_block {
            (ConnectionType::BlockRelayOnly, false)
        } else if self.try_new_outbound && full <= self.max_full {
            // Core's stale-tip extra peer; its outbound semaphore (full + block-relay + one
            // feeler) leaves room for one.
            (ConnectionType::OutboundFullRelay, false)
        } else if self.extra_block_relay && now > self.next_extra_block_relay {
            self.next_extra_block_relay = now + exp_delay(rng, EXTRA_BLOCK_RELAY_ONLY_PEER_INTERVAL);
            (ConnectionType::BlockRelayOnly, false)
        } else if now > self.next_feeler {
            self.next_feeler = now + exp_delay(rng, FEELER_INTERVAL);
            (ConnectionType::Feeler, false)
        } else {
            return out;
        };
        addrman.resolve_collisions(unix);
        if let Some((addr, v2)) = self.choose(conn_type, anchor, unix, addrman, view, &groups, &mut out) {
            if conn_type == ConnectionType::Feeler {
                let delay = FEELER_SLEEP_WINDOW.mul_f64(rng.random::<f64>());
                self.feeler_at = Some((now + delay, addr, v2));
                self.next_tick = now + delay;
            } else {
                if anchor {
                    out.push(Action::Debug(format!("Trying to make an anchor connection to {addr}")));
                }
                // Core counts failures only once the node evidently is online: at least two
                // outbound peers in different groups.
                let count_failures = groups.len() >= 2.min(self.setup.max_connections.saturating_sub(1));
                let entry = AddrEntry::from_socket(addr, ServiceFlags::NONE, unix);
                addrman.attempt(&entry.addr, entry.port, count_failures, unix);
                self.dial(addr, conn_type, v2, now, &mut out);
            }
        }
        out
    }

    fn dial(&mut self, addr: SocketAddr, conn_type: ConnectionType, v2: bool, now: Instant, out: &mut Vec<Action>) {
        self.pending = Some((addr, conn_type, now));
        out.push(Action::Dial { addr, conn_type, v2 });
    }

    /// Full-relay and block-relay-only counts (open and in flight) and the network groups of
    /// the long-lived outbound peers.
    fn count(&self, view: &View, addrman: &AddrMan) -> (usize, usize, HashSet<Vec<u8>>) {
        let (mut full, mut block) = (0, 0);
        let mut groups = HashSet::new();
        let pending = self.pending.map(|(addr, conn_type, _)| Conn { addr, conn_type });
        for c in view.conns.iter().chain(pending.as_ref()) {
            match c.conn_type {
                ConnectionType::OutboundFullRelay => full += 1,
                ConnectionType::BlockRelayOnly => block += 1,
                _ => {}
            }
            if matches!(
                c.conn_type,
                ConnectionType::Manual | ConnectionType::OutboundFullRelay | ConnectionType::BlockRelayOnly
            ) {
                groups.insert(addrman.group_of(&AddrEntry::from_socket(c.addr, ServiceFlags::NONE, 0).addr));
            }
        }
        (full, block, groups)
    }

    fn maybe_fixed_seeds(&mut self, now: Instant, addrman: &mut AddrMan, out: &mut Vec<Action>) {
        if !self.add_fixed_seeds {
            return;
        }
        let empty: Vec<AddrNetwork> =
            self.setup.reachable.iter().copied().filter(|n| addrman.size(Some(*n), None) == 0).collect();
        if empty.is_empty() {
            return;
        }
        let have_seednodes = !self.setup.seed_nodes.is_empty();
        let Some(why) = fixed_seeds_due(self.start, now, self.setup.dnsseed, have_seednodes, self.setup.have_addnodes)
        else {
            return;
        };
        let rule = addrman.rule();
        let seeds: Vec<AddrEntry> =
            self.fixed.iter().filter(|e| empty.contains(&network(&e.addr, rule))).cloned().collect();
        out.push(Action::Log(why.to_string()));
        out.push(Action::Log(format!("Added {} fixed seeds from reachable networks.", seeds.len())));
        out.push(Action::AddFixedSeeds(seeds));
        self.add_fixed_seeds = false;
    }

    /// Core's selection loop: up to 100 tries for an address that fits; with whether it
    /// advertises `NODE_P2P_V2`.
    #[allow(clippy::too_many_arguments)]
    fn choose(
        &mut self,
        conn_type: ConnectionType,
        anchor: bool,
        unix: i64,
        addrman: &mut AddrMan,
        view: &View,
        groups: &HashSet<Vec<u8>>,
        out: &mut Vec<Action>,
    ) -> Option<(SocketAddr, bool)> {
        let feeler = conn_type == ConnectionType::Feeler;
        let reachable = self.setup.reachable.as_slice();
        let connected = |ip: IpAddr| view.conns.iter().any(|c| c.addr.ip() == ip);
        let usable = |addr: SocketAddr| !(view.refused)(addr.ip()) && !connected(addr.ip());
        if anchor {
            while let Some(a) = self.setup.anchors.pop() {
                let Some(sa) = a.socket_addr() else { continue };
                if (view.is_local)(sa.ip())
                    || !reachable.contains(&network(&a.addr, addrman.rule()))
                    || !has_desirable_services(a.services, view.tip_depth)
                    || groups.contains(&addrman.group_of(&a.addr))
                    || !usable(sa)
                {
                    continue;
                }
                return Some((sa, a.services.has(ServiceFlags::P2P_V2)));
            }
        }
        for tries in 1..=100 {
            let picked = if feeler {
                match addrman.select_tried_collision() {
                    Some((e, _)) if e.socket_addr().is_some_and(|sa| connected(sa.ip())) => {
                        addrman.good(&e.addr, e.port, unix);
                        addrman.select(true, Some(reachable), unix)
                    }
                    Some(found) => Some(found),
                    None => addrman.select(true, Some(reachable), unix),
                }
            } else {
                addrman.select(false, Some(reachable), unix)
            };
            let Some((entry, last_try)) = picked else { break };
            if !feeler && groups.contains(&addrman.group_of(&entry.addr)) {
                continue;
            }
            let Some(sa) = entry.socket_addr() else { continue };
            if (view.is_local)(sa.ip()) {
                break;
            }
            if !reachable.contains(&network(&entry.addr, addrman.rule())) {
                continue;
            }
            if unix - last_try < 600 && tries < 30 {
                continue;
            }
            let services_ok = if feeler {
                may_have_useful_address_db(entry.services)
            } else {
                has_desirable_services(entry.services, view.tip_depth)
            };
            if !services_ok || (tries < 50 && is_bad_port(sa.port())) {
                continue;
            }
            if view.added.contains(&sa) {
                out.push(Action::Debug(format!(
                    "Not making automatic {conn_type} connection to {} peer selected for manual (addnode) connection",
                    network(&entry.addr, addrman.rule()).name()
                )));
                continue;
            }
            // Core's OpenNetworkConnection gives up silently on these.
            return usable(sa).then_some((sa, entry.services.has(ServiceFlags::P2P_V2)));
        }
        None
    }
}

/// A block-relay-only peer, for [`extra_block_relay_to_evict`].
#[derive(Clone, Copy, Debug)]
pub struct BlockRelayPeer {
    /// Its id (higher is younger).
    pub id: u64,
    /// When it last moved our chain forward (Unix seconds).
    pub last_block_time: Option<i64>,
    /// How long it has been connected.
    pub age: Duration,
}

/// Core's `EvictExtraOutboundPeers` for block-relay-only peers: with more than `max` of them,
/// the youngest goes, unless it brought a block more recently than the next youngest, which
/// then goes instead; never one connected less than [`MINIMUM_CONNECT_TIME`].
pub fn extra_block_relay_to_evict(peers: &[BlockRelayPeer], max: usize) -> Option<u64> {
    if peers.len() <= max {
        return None;
    }
    let mut by_age: Vec<&BlockRelayPeer> = peers.iter().collect();
    by_age.sort_by_key(|p| std::cmp::Reverse(p.id));
    let youngest = by_age.first()?;
    let next = by_age.get(1);
    let time = |p: &BlockRelayPeer| p.last_block_time.unwrap_or(0);
    let chosen = match next {
        Some(n) if time(youngest) > time(n) => *n,
        _ => *youngest,
    };
    (chosen.age >= MINIMUM_CONNECT_TIME).then_some(chosen.id)
}

/// An established outbound full-relay peer, for [`extra_full_relay_to_evict`].
#[derive(Clone, Copy, Debug)]
pub struct FullRelayPeer {
    /// Its id (higher is younger).
    pub id: u64,
    /// When it last announced a header that became our best (Unix seconds; Core's
    /// `m_last_block_announcement`), if ever.
    pub last_announcement: Option<i64>,
    /// How long it has been connected.
    pub age: Duration,
    /// Protected by the chain-sync rules (Core's `m_chain_sync.m_protect`).
    pub protected: bool,
    /// Its network.
    pub network: NetKind,
}

/// Core's `EvictExtraOutboundPeers` for full-relay peers: with more than `max` of them, the one
/// that least recently announced a new best header goes (ties: the younger), never a protected
/// one nor the only full-relay or manual peer (`manual`: the manual peers' networks) on its
/// network; nothing when that peer has not been connected longer than
/// [`MINIMUM_CONNECT_TIME`].
pub fn extra_full_relay_to_evict(peers: &[FullRelayPeer], manual: &[NetKind], max: usize) -> Option<u64> {
    if peers.len() <= max {
        return None;
    }
    let on_network =
        |n: NetKind| peers.iter().filter(|p| p.network == n).count() + manual.iter().filter(|&&m| m == n).count();
    let worst = peers
        .iter()
        .filter(|p| !p.protected && on_network(p.network) > 1)
        .min_by_key(|p| (p.last_announcement.unwrap_or(0), std::cmp::Reverse(p.id)))?;
    (worst.age > MINIMUM_CONNECT_TIME).then_some(worst.id)
}

#[cfg(test)]
#[path = "outbound_tests.rs"]
mod tests;
