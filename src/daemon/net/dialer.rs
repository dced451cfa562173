//! The dialer thread (Core's `ThreadOpenConnections` for `-connect` and
//! `ThreadOpenAddedConnections` for `-addnode`): keeps each named peer connected, redialing
//! with exponential back-off, and resolves addr-fetch names. Automatic connections are planned
//! by the message handler ([`crate::engine::policy::outbound`]). [`DialPlan`] is the I/O-free schedule; the thread only resolves
//! names, hands addresses to the socket handler, and applies the `addnode` RPC's
//! [`DialerCommand`]s to the plan it owns. Tor v3 and I2P addresses are kept on the list like
//! any other, but each try fails with a logged [`DialError::Unreachable`]: those networks need a
//! proxy, which btcloop does not have yet (as Core without `-proxy`/`-onion`/`-i2psam`, whose
//! tries fail with "unsupported network").

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bitcoin::p2p::address::AddrV2;
use crossbeam_channel::{Receiver, Sender};
use tracing::{debug, info};

use super::proxy::ProxyConfig;
use super::socket_handler::DialerEvent;
use super::wake::{SocketCommand, SocketControl};
use crate::base::netaddr::text::{AddrTextError, parse_host_port, parse_special};
use crate::base::netgroup::{NetGroupRule, network};
use crate::base::peer::ConnectionType;

/// First redial delay after a failure.
pub const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest redial delay (Core retries added nodes every 60 s).
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Core's `MAX_ADDNODE_CONNECTIONS`: added nodes connected or being dialed at once.
pub const MAX_ADDNODE_CONNECTIONS: usize = 8;

/// A `HOST[:PORT]` the user asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSpec {
    /// Host name, IP literal, or Tor v3 / I2P address in its (lower-case) text form.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// A `--connect`/`--addnode`/`--seednode`/`addnode` value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid peer address '{0}': {1} (expected HOST, HOST:PORT, IP, [IPv6]:PORT, NAME.onion[:PORT] or NAME.b32.i2p[:PORT])"
)]
pub struct BadPeerSpec(pub String, pub AddrTextError);

/// Why a named peer cannot be dialed now.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// A Tor address without `--onion`/`--proxy`, or an I2P address (btcloop has no I2P SAM
    /// support): not reachable (Core: not in `g_reachable_nets`).
    #[error("the {0} network is not reachable ({1})")]
    Unreachable(&'static str, &'static str),
    /// The name did not resolve.
    #[error("cannot resolve: {0}")]
    Resolve(#[from] std::io::Error),
}

impl PeerSpec {
    /// Parses `HOST`, `HOST:PORT`, `IPv4[:PORT]`, `IPv6`, `[IPv6]`, `[IPv6]:PORT`, or a Tor v3
    /// `NAME.onion[:PORT]` / I2P `NAME.b32.i2p[:PORT]` address (see
    /// [`parse_host_port`]: such names are addresses, never resolved).
    pub fn parse(s: &str, default_port: u16) -> Result<PeerSpec, BadPeerSpec> {
        let (host, port) = parse_host_port(s, default_port).map_err(|e| BadPeerSpec(s.to_string(), e))?;
        Ok(PeerSpec { host: host.to_string(), port })
    }

    /// The Tor v3 or I2P address this names, if it is one.
    pub fn special(&self) -> Option<AddrV2> {
        parse_special(&self.host).ok().flatten()
    }

    /// What to dial: an IP literal as it is; a Tor address, as a name for the onion proxy; a
    /// host name as a name for `--proxy` when one is set (never looked up here: Core's name
    /// proxy), else through the system resolver (blocking, IPv4 first). With a name, the
    /// address holds only the port. An I2P address, or a Tor one without a proxy, is refused.
    pub fn dial_target(&self, proxy: &ProxyConfig) -> Result<(SocketAddr, Option<String>), DialError> {
        let by_name = || (SocketAddr::from(([0, 0, 0, 0], self.port)), Some(self.host.clone()));
        if let Some(special) = self.special() {
            let net = network(&special, NetGroupRule::Core).name();
            return match special {
                AddrV2::TorV3(_) if proxy.for_onion().is_some() => Ok(by_name()),
                AddrV2::TorV3(_) => Err(DialError::Unreachable(net, "set --onion or --proxy to reach it")),
                _ => Err(DialError::Unreachable(net, "btcloop has no I2P SAM support")),
            };
        }
        if let Ok(ip) = self.host.parse::<std::net::IpAddr>() {
            return Ok((SocketAddr::new(ip, self.port), None));
        }
        if proxy.for_ip().is_some() {
            return Ok(by_name());
        }
        let mut addrs: Vec<SocketAddr> = (self.host.as_str(), self.port).to_socket_addrs()?.collect();
        addrs.sort_by_key(|a| !a.is_ipv4());
        let addr = addrs.into_iter().next();
        addr.map(|a| (a, None))
            .ok_or_else(|| DialError::Resolve(std::io::Error::new(std::io::ErrorKind::NotFound, "no address")))
    }
}

/// Logs why `spec` cannot be dialed: an unreachable network for everyone to see (the operator
/// asked for it), a failed lookup in the `net` category.
fn log_dial_error(spec: &PeerSpec, e: &DialError) {
    match e {
        DialError::Unreachable(..) => info!("Cannot connect to {spec}: {e}"),
        DialError::Resolve(_) => debug!(target: "net", "cannot resolve {spec}: {e}"),
    }
}

impl std::fmt::Display for PeerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum TargetState {
    Waiting {
        next_try: Instant,
    },
    Dialing,
    Connected,
    /// Taken off the list (`addnode remove`): never dialed again.
    Removed,
}

#[derive(Clone, Debug)]
struct Target {
    spec: PeerSpec,
    state: TargetState,
    failures: u32,
    /// From `--addnode` or `addnode add` (shown by `getaddednodeinfo`), not `--connect`.
    added: bool,
    /// The address it last resolved to.
    addr: Option<SocketAddr>,
    /// Dial it with BIP324 v2 (when the node speaks it): `addnode`'s `v2transport` argument,
    /// true for `--connect` and `--addnode`.
    v2: bool,
}

/// An added node as `getaddednodeinfo` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedNode {
    /// What the user gave.
    pub spec: PeerSpec,
    /// The address dialed, once resolved.
    pub addr: Option<SocketAddr>,
    /// Whether a connection to it is open.
    pub connected: bool,
}

/// What the `addnode` RPC asks of the dialer thread.
#[derive(Debug)]
pub enum DialerCommand {
    /// Keep this peer connected (dialed with v2 when the flag says so and the node speaks
    /// it); answers false if it is already on the list.
    Add(PeerSpec, bool, Sender<bool>),
    /// Take this peer off the list; answers false if it was not on it.
    Remove(PeerSpec, Sender<bool>),
    /// Dial this peer once (with v2 when the flag says so), without keeping it connected.
    OneTry(PeerSpec, bool),
    /// The added nodes.
    Info(Sender<Vec<AddedNode>>),
    /// Connect to this peer to fetch addresses (a `--seednode`, or a DNS seed without the
    /// service-bits subdomain), once.
    AddrFetch(PeerSpec),
}

/// The I/O-free redial schedule of the named peers.
#[derive(Clone, Debug)]
pub struct DialPlan {
    targets: Vec<Target>,
}

impl DialPlan {
    /// Every target is due at `now`.
    pub fn new(specs: Vec<PeerSpec>, now: Instant) -> Self {
        Self::with_added(specs, Vec::new(), now)
    }

    /// `--connect` targets and `--addnode` targets, all due at `now`.
    pub fn with_added(connect: Vec<PeerSpec>, added: Vec<PeerSpec>, now: Instant) -> Self {
        let mut plan = DialPlan { targets: Vec::new() };
        for spec in connect {
            plan.push(spec, false, true, now);
        }
        for spec in added {
            plan.add(spec, now);
        }
        plan
    }

    fn push(&mut self, spec: PeerSpec, added: bool, v2: bool, now: Instant) {
        let state = TargetState::Waiting { next_try: now };
        self.targets.push(Target { spec, state, failures: 0, added, addr: None, v2 });
    }

    /// Adds an added node, due at `now`; false if it is already on the list.
    pub fn add(&mut self, spec: PeerSpec, now: Instant) -> bool {
        self.add_over(spec, true, now)
    }

    /// [`DialPlan::add`], dialed with v2 or not (`addnode`'s `v2transport`).
    pub fn add_over(&mut self, spec: PeerSpec, v2: bool, now: Instant) -> bool {
        if self.targets.iter().any(|t| t.added && t.state != TargetState::Removed && t.spec == spec) {
            return false;
        }
        self.push(spec, true, v2, now);
        true
    }

    /// Whether target `i` is dialed with v2.
    fn v2_of(&self, i: usize) -> bool {
        self.targets.get(i).is_none_or(|t| t.v2)
    }

    /// Takes an added node off the list (an open connection to it stays, as in Core).
    pub fn remove(&mut self, spec: &PeerSpec) -> bool {
        match self.targets.iter_mut().find(|t| t.added && t.state != TargetState::Removed && t.spec == *spec) {
            Some(t) => {
                t.state = TargetState::Removed;
                true
            }
            None => false,
        }
    }

    /// Target `i` resolved to `addr`.
    pub fn resolved(&mut self, i: usize, addr: SocketAddr) {
        if let Some(t) = self.targets.get_mut(i) {
            t.addr = Some(addr);
        }
    }

    /// The added nodes, in the order they were added.
    pub fn added_nodes(&self) -> Vec<AddedNode> {
        self.targets
            .iter()
            .filter(|t| t.added && t.state != TargetState::Removed)
            .map(|t| AddedNode { spec: t.spec.clone(), addr: t.addr, connected: t.state == TargetState::Connected })
            .collect()
    }

    /// The targets to dial now (marked as dialing); added nodes only while fewer than
    /// [`MAX_ADDNODE_CONNECTIONS`] of them are connected or being dialed.
    pub fn due(&mut self, now: Instant) -> Vec<(usize, PeerSpec)> {
        let mut out = Vec::new();
        let busy = |t: &Target| t.added && matches!(t.state, TargetState::Dialing | TargetState::Connected);
        let mut added_busy = self.targets.iter().filter(|t| busy(t)).count();
        for (i, t) in self.targets.iter_mut().enumerate() {
            if matches!(t.state, TargetState::Waiting { next_try } if next_try <= now) {
                if t.added {
                    if added_busy >= MAX_ADDNODE_CONNECTIONS {
                        continue;
                    }
                    added_busy += 1;
                }
                t.state = TargetState::Dialing;
                out.push((i, t.spec.clone()));
            }
        }
        out
    }

    /// When the next target falls due.
    pub fn next_due(&self) -> Option<Instant> {
        self.targets
            .iter()
            .filter_map(|t| match t.state {
                TargetState::Waiting { next_try } => Some(next_try),
                _ => None,
            })
            .min()
    }

    fn backoff(&mut self, i: usize, now: Instant) {
        if let Some(t) = self.targets.get_mut(i).filter(|t| t.state != TargetState::Removed) {
            let shift = t.failures.min(6);
            let delay = (BACKOFF_START * (1u32 << shift)).min(BACKOFF_MAX);
            t.failures = t.failures.saturating_add(1);
            t.state = TargetState::Waiting { next_try: now + delay };
        }
    }

    /// Resolving target `i` failed.
    pub fn resolve_failed(&mut self, i: usize, now: Instant) {
        self.backoff(i, now);
    }

    /// What the socket handler reported.
    pub fn on_event(&mut self, ev: &DialerEvent, now: Instant) {
        match *ev {
            DialerEvent::Connected { target, .. } => {
                if let Some(t) = self.targets.get_mut(target).filter(|t| t.state != TargetState::Removed) {
                    t.state = TargetState::Connected;
                }
            }
            DialerEvent::Failed { target, .. } => self.backoff(target, now),
            DialerEvent::Closed { target, handshake_done } => {
                if handshake_done {
                    if let Some(t) = self.targets.get_mut(target) {
                        t.failures = 0;
                    }
                }
                self.backoff(target, now);
            }
        }
    }
}

/// Applies one `addnode` command.
fn on_command(plan: &mut DialPlan, cmd: DialerCommand, ctl: &SocketControl, proxy: &ProxyConfig) {
    // A reply can only fail if the RPC thread gave up waiting; nothing to do then.
    match cmd {
        DialerCommand::Add(spec, v2, reply) => {
            let _ = reply.send(plan.add_over(spec, v2, Instant::now()));
        }
        DialerCommand::Remove(spec, reply) => {
            let _ = reply.send(plan.remove(&spec));
        }
        DialerCommand::OneTry(spec, v2) => match spec.dial_target(proxy) {
            Ok((addr, name)) => {
                ctl.send(SocketCommand::Connect { addr, name, conn_type: ConnectionType::Manual, target: None, v2 })
            }
            Err(e) => log_dial_error(&spec, &e),
        },
        DialerCommand::Info(reply) => {
            let _ = reply.send(plan.added_nodes());
        }
        DialerCommand::AddrFetch(spec) => match spec.dial_target(proxy) {
            Ok((addr, name)) => ctl.send(SocketCommand::Connect {
                addr,
                name,
                conn_type: ConnectionType::AddrFetch,
                target: None,
                v2: true,
            }),
            Err(e) => log_dial_error(&spec, &e),
        },
    }
}

/// The dialer thread body: dials due targets and applies commands until `stop` is set.
pub fn run(
    mut plan: DialPlan,
    events: Receiver<DialerEvent>,
    commands: Receiver<DialerCommand>,
    ctl: SocketControl,
    stop: Arc<AtomicBool>,
    proxy: ProxyConfig,
) {
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        for (i, spec) in plan.due(now) {
            match spec.dial_target(&proxy) {
                Ok((addr, name)) => {
                    if name.is_none() {
                        plan.resolved(i, addr);
                    }
                    let v2 = plan.v2_of(i);
                    let conn_type = ConnectionType::Manual;
                    ctl.send(SocketCommand::Connect { addr, name, conn_type, target: Some(i), v2 })
                }
                Err(e) => {
                    log_dial_error(&spec, &e);
                    plan.resolve_failed(i, Instant::now());
                }
            }
        }
        let wait = plan
            .next_due()
            .map_or(Duration::from_millis(100), |t| t.saturating_duration_since(Instant::now()))
            .min(Duration::from_millis(100));
        crossbeam_channel::select! {
            recv(events) -> ev => {
                if let Ok(ev) = ev {
                    plan.on_event(&ev, Instant::now());
                }
                while let Ok(ev) = events.try_recv() {
                    plan.on_event(&ev, Instant::now());
                }
            }
            recv(commands) -> cmd => {
                if let Ok(cmd) = cmd {
                    on_command(&mut plan, cmd, &ctl, &proxy);
                }
            }
            default(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> PeerSpec {
        PeerSpec::parse(s, 18444).unwrap()
    }

    #[test]
    fn parses_core_forms() {
        assert_eq!(spec("127.0.0.1"), PeerSpec { host: "127.0.0.1".into(), port: 18444 });
        assert_eq!(spec("127.0.0.1:1"), PeerSpec { host: "127.0.0.1".into(), port: 1 });
        assert_eq!(spec("[::1]:5").to_string(), "[::1]:5");
        assert_eq!(spec("::1").port, 18444);
        assert_eq!(spec("[::1]").host, "::1");
        assert_eq!(spec("localhost:9"), PeerSpec { host: "localhost".into(), port: 9 });
        for bad in ["", "host:notaport", "host:70000", "a b:1", "host:0"] {
            assert!(PeerSpec::parse(bad, 1).is_err(), "{bad}");
        }
    }

    const ONION: &str = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion";

    #[test]
    fn onion_and_i2p_names_are_addresses_never_resolved() {
        let onion = spec(&format!("{}:8333", ONION.to_uppercase()));
        assert_eq!(onion, PeerSpec { host: ONION.into(), port: 8333 }, "kept in Core's lower-case text form");
        assert_eq!(onion.to_string(), format!("{ONION}:8333"));
        assert!(matches!(onion.special(), Some(AddrV2::TorV3(_))));
        let none = ProxyConfig::default();
        assert!(matches!(onion.dial_target(&none), Err(DialError::Unreachable("onion", _))));
        // With an onion proxy (or --proxy), the name goes to the proxy; a host name too.
        let tor = ProxyConfig { onion: Some("127.0.0.1:9050".parse().unwrap()), ..ProxyConfig::default() };
        let (addr, name) = onion.dial_target(&tor).unwrap();
        assert_eq!((addr.port(), addr.ip().is_unspecified(), name.as_deref()), (8333, true, Some(ONION)));
        let all = ProxyConfig { proxy: tor.onion, ..ProxyConfig::default() };
        assert!(onion.dial_target(&all).is_ok(), "--onion defaults to --proxy");
        let named = spec("node.invalid:8333");
        assert_eq!(named.dial_target(&all).unwrap().1.as_deref(), Some("node.invalid"), "never looked up here");
        let i2p = spec("ukeu3k5oycgaauneqgtnvselmt4yemvoilkln7jpvamvfx7dnkdq.b32.i2p");
        assert_eq!(i2p.port, 0, "I2P has no ports");
        assert!(matches!(i2p.dial_target(&all), Err(DialError::Unreachable("i2p", _))));
        // Invalid names ending in .onion are refused, not looked up.
        let bad =
            PeerSpec::parse("pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscsad.onion:8333", 1).unwrap_err();
        assert_eq!(bad.1, AddrTextError::OnionChecksum);
        assert!(bad.to_string().contains("checksum"), "{bad}");
        assert_eq!(PeerSpec::parse("6hzph5hv6337r6p2.onion", 1).unwrap_err().1, AddrTextError::TorV2);
        assert!(spec("127.0.0.1:1").special().is_none());
        assert_eq!(spec("127.0.0.1:1").dial_target(&all).unwrap(), ("127.0.0.1:1".parse().unwrap(), None));
    }

    #[test]
    fn an_added_onion_stays_listed_and_backs_off() {
        let t0 = Instant::now();
        let mut plan = DialPlan::with_added(Vec::new(), vec![spec(&format!("{ONION}:8333"))], t0);
        assert!(!plan.add(spec(&format!("{}:8333", ONION.to_uppercase())), t0), "the same address in another case");
        let due = plan.due(t0);
        assert_eq!(due.len(), 1);
        plan.resolve_failed(0, t0);
        assert_eq!(plan.next_due(), Some(t0 + BACKOFF_START));
        let info = plan.added_nodes();
        assert_eq!(info, vec![AddedNode { spec: spec(&format!("{ONION}:8333")), addr: None, connected: false }]);
    }

    #[test]
    fn redials_with_exponential_backoff_capped() {
        let t0 = Instant::now();
        let mut plan = DialPlan::new(vec![spec("127.0.0.1:1")], t0);
        assert_eq!(plan.due(t0).len(), 1);
        assert!(plan.due(t0).is_empty(), "dialing targets are not due again");
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..9 {
            plan.on_event(&DialerEvent::Failed { target: 0, error: "refused".into() }, now);
            let next = plan.next_due().unwrap();
            delays.push((next - now).as_secs());
            assert!(plan.due(next - Duration::from_millis(1)).is_empty());
            assert_eq!(plan.due(next).len(), 1);
            now = next;
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn added_nodes_are_listed_removed_and_not_redialed() {
        let t0 = Instant::now();
        let mut plan = DialPlan::with_added(vec![spec("127.0.0.1:1")], vec![spec("127.0.0.1:2")], t0);
        assert_eq!(plan.added_nodes().len(), 1, "--connect targets are not added nodes");
        assert!(!plan.add(spec("127.0.0.1:2"), t0), "already added");
        assert!(plan.add(spec("127.0.0.1:3"), t0));
        let due = plan.due(t0);
        assert_eq!(due.len(), 3);
        plan.resolved(2, "127.0.0.1:3".parse().unwrap());
        plan.on_event(&DialerEvent::Connected { target: 2, id: 9 }, t0);
        let info = plan.added_nodes();
        assert_eq!(info[1], AddedNode { spec: spec("127.0.0.1:3"), addr: "127.0.0.1:3".parse().ok(), connected: true });
        assert!(plan.remove(&spec("127.0.0.1:3")));
        assert!(!plan.remove(&spec("127.0.0.1:3")));
        plan.on_event(&DialerEvent::Closed { target: 2, handshake_done: true }, t0);
        assert!(plan.due(t0 + BACKOFF_MAX).iter().all(|(i, _)| *i != 2), "a removed node is never redialed");
        assert_eq!(plan.added_nodes().len(), 1);
        assert!(plan.add(spec("127.0.0.1:3"), t0), "it may be added again");
    }

    #[test]
    fn at_most_eight_added_nodes_at_once() {
        let t0 = Instant::now();
        let added: Vec<PeerSpec> = (1..=10).map(|p| spec(&format!("127.0.0.1:{p}"))).collect();
        let mut plan = DialPlan::with_added(vec![spec("127.0.0.2:1")], added, t0);
        let due = plan.due(t0);
        assert_eq!(due.len(), 1 + MAX_ADDNODE_CONNECTIONS, "the --connect target is not counted");
        assert!(plan.due(t0 + BACKOFF_MAX).is_empty(), "eight are busy");
        plan.on_event(&DialerEvent::Failed { target: 1, error: String::new() }, t0);
        let next = plan.due(t0 + BACKOFF_MAX);
        assert_eq!(next.len(), 1, "a freed slot goes to one waiting node: {next:?}");
    }

    #[test]
    fn completed_session_resets_backoff() {
        let t0 = Instant::now();
        let mut plan = DialPlan::new(vec![spec("127.0.0.1:1")], t0);
        plan.due(t0);
        for _ in 0..5 {
            plan.on_event(&DialerEvent::Failed { target: 0, error: String::new() }, t0);
            plan.due(plan.next_due().unwrap());
        }
        plan.on_event(&DialerEvent::Connected { target: 0, id: 7 }, t0);
        assert_eq!(plan.next_due(), None, "connected targets are not redialed");
        plan.on_event(&DialerEvent::Closed { target: 0, handshake_done: true }, t0);
        assert_eq!(plan.next_due(), Some(t0 + BACKOFF_START));
        // A connection that closes before the handshake keeps backing off.
        plan.due(t0 + BACKOFF_START);
        plan.on_event(&DialerEvent::Closed { target: 0, handshake_done: false }, t0);
        assert_eq!(plan.next_due(), Some(t0 + BACKOFF_START * 2));
    }
}
