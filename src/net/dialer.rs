//! The connection-opening thread (Core's `ThreadOpenConnections` for `-connect` and
//! `ThreadOpenAddedConnections` for `-addnode`): keeps each named peer connected, redialing
//! with exponential back-off. [`DialPlan`] is the I/O-free schedule; the thread only resolves
//! names and hands addresses to the socket handler.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use tracing::debug;

use super::peer::ConnectionType;
use super::socket_handler::DialerEvent;
use super::wake::{SocketCommand, SocketControl};

/// First redial delay after a failure.
pub const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest redial delay (Core retries added nodes every 60 s).
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// A `HOST[:PORT]` the user asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSpec {
    /// Host name or IP literal.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// A `--connect`/`--addnode` value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid peer address '{0}': expected HOST, HOST:PORT, IP or [IPv6]:PORT")]
pub struct BadPeerSpec(pub String);

impl PeerSpec {
    /// Parses `HOST`, `HOST:PORT`, `IPv4[:PORT]`, `IPv6`, `[IPv6]` or `[IPv6]:PORT`.
    pub fn parse(s: &str, default_port: u16) -> Result<PeerSpec, BadPeerSpec> {
        let bad = || BadPeerSpec(s.to_string());
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(PeerSpec { host: sa.ip().to_string(), port: sa.port() });
        }
        if let Ok(ip) = s.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            return Ok(PeerSpec { host: ip.to_string(), port: default_port });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (s, default_port),
        };
        let valid = !host.is_empty()
            && host.len() <= 253
            && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
        if !valid || port == 0 {
            return Err(bad());
        }
        Ok(PeerSpec { host: host.to_string(), port })
    }

    /// Resolves with the system resolver (blocking), IPv4 first.
    pub fn resolve(&self) -> std::io::Result<SocketAddr> {
        let mut addrs: Vec<SocketAddr> = (self.host.as_str(), self.port).to_socket_addrs()?.collect();
        addrs.sort_by_key(|a| !a.is_ipv4());
        addrs.into_iter().next().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
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
    Waiting { next_try: Instant },
    Dialing,
    Connected,
}

#[derive(Clone, Debug)]
struct Target {
    spec: PeerSpec,
    state: TargetState,
    failures: u32,
}

/// The I/O-free redial schedule of the named peers.
#[derive(Clone, Debug)]
pub struct DialPlan {
    targets: Vec<Target>,
}

impl DialPlan {
    /// Every target is due at `now`.
    pub fn new(specs: Vec<PeerSpec>, now: Instant) -> Self {
        DialPlan {
            targets: specs
                .into_iter()
                .map(|spec| Target { spec, state: TargetState::Waiting { next_try: now }, failures: 0 })
                .collect(),
        }
    }

    /// The targets to dial now (marked as dialing).
    pub fn due(&mut self, now: Instant) -> Vec<(usize, PeerSpec)> {
        let mut out = Vec::new();
        for (i, t) in self.targets.iter_mut().enumerate() {
            if matches!(t.state, TargetState::Waiting { next_try } if next_try <= now) {
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
        if let Some(t) = self.targets.get_mut(i) {
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
                if let Some(t) = self.targets.get_mut(target) {
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

/// The dialer thread body: dials due targets until `stop` is set.
pub fn run(mut plan: DialPlan, events: Receiver<DialerEvent>, ctl: SocketControl, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        for (i, spec) in plan.due(now) {
            match spec.resolve() {
                Ok(addr) => {
                    ctl.send(SocketCommand::Connect { addr, conn_type: ConnectionType::Manual, target: Some(i) })
                }
                Err(e) => {
                    debug!(target: "net", "cannot resolve {spec}: {e}");
                    plan.resolve_failed(i, Instant::now());
                }
            }
        }
        let wait = plan
            .next_due()
            .map_or(Duration::from_millis(100), |t| t.saturating_duration_since(Instant::now()))
            .min(Duration::from_millis(100));
        if let Ok(ev) = events.recv_timeout(wait) {
            plan.on_event(&ev, Instant::now());
            while let Ok(ev) = events.try_recv() {
                plan.on_event(&ev, Instant::now());
            }
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
