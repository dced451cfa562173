//! The DNS-seeding thread (Core's `ThreadDNSAddressSeed`): follows the I/O-free
//! [`DnsSeeding`] schedule, resolves the seeds it names with the system resolver (or a
//! test's stub) under a timeout, and posts what they return to the message handler, which owns
//! the address book. A seed that returns nothing is handed to the dialer as an addr-fetch; so
//! is every seed while a proxy is set (Core's `HaveNameProxy`): nothing is looked up here then,
//! the proxy resolves the seed's name and we ask the node there for addresses.

use std::io;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use tracing::{debug, info};

use super::dialer::{DialerCommand, PeerSpec};
use super::wake::{MsgWake, NetEvent};
use crate::engine::policy::seeding::{DnsSeeding, Facts, MAX_IPS_PER_SEED, Step};
use crate::engine::policy::seeds::seed_query_host;

/// How long one seed's lookup may take before it is given up (the lookup thread is left to
/// finish on its own; its answer is dropped).
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(30);

/// Resolves a host name to addresses (the system resolver, or a stub in tests).
pub type Resolver = Arc<dyn Fn(&str) -> io::Result<Vec<IpAddr>> + Send + Sync>;

/// The system resolver (`getaddrinfo`).
pub fn system_resolver() -> Resolver {
    Arc::new(|host: &str| Ok((host, 0u16).to_socket_addrs()?.map(|sa| sa.ip()).collect()))
}

/// Resolves `host` on a helper thread, waiting at most `timeout`, or until `stop` is set.
pub fn resolve_with_timeout(
    resolver: &Resolver,
    host: &str,
    timeout: Duration,
    stop: &AtomicBool,
) -> io::Result<Vec<IpAddr>> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let (resolver, name) = (resolver.clone(), host.to_string());
    std::thread::Builder::new().name("btcloop-resolve".into()).spawn(move || {
        let _ = tx.send(resolver(&name));
    })?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && !stop.load(Ordering::Acquire) {
        if let Ok(answer) = rx.recv_timeout(Duration::from_millis(100)) {
            return answer;
        }
    }
    Err(io::Error::new(io::ErrorKind::TimedOut, "lookup timed out"))
}

/// What seeding reads about the node, published by the message handler.
#[derive(Debug, Default)]
pub struct SeedFacts {
    /// Addresses in the address book.
    pub addrman_size: AtomicUsize,
    /// Full-relay outbound connections open.
    pub full_outbound: AtomicUsize,
}

/// What the seeding thread needs.
pub struct Seeder {
    /// The schedule.
    pub seeding: DnsSeeding,
    /// The node's facts.
    pub facts: Arc<SeedFacts>,
    /// `setnetworkactive`.
    pub network_active: Arc<AtomicBool>,
    /// The resolver.
    pub resolver: Resolver,
    /// The message handler's inbox.
    pub wake: Arc<MsgWake>,
    /// The dialer, for addr-fetch fallbacks.
    pub dialer: Sender<DialerCommand>,
    /// The network's default port (for addr-fetch fallbacks).
    pub port: u16,
    /// A proxy is set (`--proxy`): no lookups, addr-fetch connections through it instead.
    pub name_proxy: bool,
}

impl Seeder {
    /// The thread body: runs the schedule until it is done or `stop` is set.
    pub fn run(mut self, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Acquire) {
            let facts = Facts {
                addrman_size: self.facts.addrman_size.load(Ordering::Relaxed),
                full_outbound: self.facts.full_outbound.load(Ordering::Relaxed),
                network_active: self.network_active.load(Ordering::Acquire),
            };
            let step = self.seeding.next(Instant::now(), facts);
            for line in self.seeding.take_log() {
                info!("{line}");
            }
            match step {
                Step::Wait(until) => {
                    let nap = until.saturating_duration_since(Instant::now()).min(Duration::from_millis(100));
                    std::thread::sleep(nap);
                }
                Step::Query(seed) => self.query(seed, &stop),
                Step::Done(line) => {
                    if !line.is_empty() {
                        info!("{line}");
                    }
                    return;
                }
            }
        }
    }

    fn query(&mut self, seed: &'static str, stop: &AtomicBool) {
        if self.name_proxy {
            self.addr_fetch(seed);
            return;
        }
        let host = seed_query_host(seed);
        let ips = match resolve_with_timeout(&self.resolver, &host, RESOLVE_TIMEOUT, stop) {
            Ok(ips) => ips,
            Err(e) => {
                debug!(target: "net", "cannot resolve {host}: {e}");
                Vec::new()
            }
        };
        let ips: Vec<IpAddr> = ips.into_iter().take(MAX_IPS_PER_SEED).collect();
        if ips.is_empty() {
            // Core: a seed without the service-bits subdomain is asked over P2P instead.
            self.addr_fetch(seed);
            return;
        }
        self.seeding.record_found(ips.len());
        self.wake.post_event(NetEvent::SeedAddrs { source: host, ips });
    }

    /// Asks the dialer for an addr-fetch connection to the seed's own name.
    fn addr_fetch(&self, seed: &str) {
        if let Ok(spec) = PeerSpec::parse(seed.trim_end_matches('.'), self.port) {
            let _ = self.dialer.send(DialerCommand::AddrFetch(spec));
        }
    }
}
