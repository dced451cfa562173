//! When to ask DNS seeds and the fixed seeds for addresses (Core's `ThreadDNSAddressSeed` and
//! the fixed-seed fallback of `ThreadOpenConnections`), I/O-free: [`DnsSeeding::next`] is
//! given the time and the facts it depends on (address-book size, full-relay outbound count,
//! network activity) and says whether to wait, which seed to query, or that seeding is over.
//! The caller resolves the seeds and adds what they return to the address book.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Core's `SEEDNODE_TIMEOUT`: how long `--seednode` peers get before the DNS seeds are tried.
pub const SEEDNODE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the seed-node phase looks at the outbound count.
pub const SEEDNODE_POLL: Duration = Duration::from_millis(500);
/// Core's `SEED_OUTBOUND_CONNECTION_THRESHOLD`: full-relay outbound peers that make seeding moot.
pub const SEED_OUTBOUND_CONNECTION_THRESHOLD: usize = 2;
/// Core's `DNSSEEDS_TO_QUERY_AT_ONCE`.
pub const DNSSEEDS_TO_QUERY_AT_ONCE: usize = 3;
/// Core's `DNSSEEDS_DELAY_FEW_PEERS`.
pub const DNSSEEDS_DELAY_FEW_PEERS: Duration = Duration::from_secs(11);
/// Core's `DNSSEEDS_DELAY_MANY_PEERS`.
pub const DNSSEEDS_DELAY_MANY_PEERS: Duration = Duration::from_secs(5 * 60);
/// Core's `DNSSEEDS_DELAY_PEER_THRESHOLD`: an address book this big counts as "many peers".
pub const DNSSEEDS_DELAY_PEER_THRESHOLD: usize = 1000;
/// Core's `MAX_DNS_SEEDED_IPS` (per seed, `nMaxIPs`).
pub const MAX_IPS_PER_SEED: usize = 32;
/// Fixed seeds are added once the address book has been empty this long (Core: 1 minute).
pub const FIXED_SEEDS_DELAY: Duration = Duration::from_secs(60);

/// What seeding depends on, read by the caller each time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Facts {
    /// Addresses in the address book.
    pub addrman_size: usize,
    /// Full-relay outbound connections open.
    pub full_outbound: usize,
    /// P2P networking is on (`setnetworkactive`).
    pub network_active: bool,
}

/// What to do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing until then.
    Wait(Instant),
    /// Resolve this seed (the caller adds [`super::seeds::seed_query_host`]'s prefix).
    Query(&'static str),
    /// Seeding is over; the line to log.
    Done(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    SeedNodes { until: Instant },
    Start,
    Querying,
    Waiting { chunk_end: Instant, remaining: Duration },
    Done,
}

/// Core's DNS seeding schedule for one node start.
#[derive(Clone, Debug)]
pub struct DnsSeeding {
    phase: Phase,
    seeds: VecDeque<&'static str>,
    force: bool,
    right_now: usize,
    wait_time: Duration,
    /// The outbound count the seed-node phase ended with (Core only looks during it).
    outbound_seen: usize,
    found: usize,
    /// Lines to log, taken with [`DnsSeeding::take_log`].
    log: Vec<String>,
    told_inactive: bool,
}

impl DnsSeeding {
    /// A schedule over `seeds` (already shuffled), from `now`. With `dnsseed` off it is done at
    /// once; with `--seednode`s the seed nodes get [`SEEDNODE_TIMEOUT`] first.
    pub fn new(seeds: Vec<&'static str>, dnsseed: bool, force: bool, have_seednodes: bool, now: Instant) -> Self {
        let mut s = DnsSeeding {
            phase: Phase::Start,
            seeds: seeds.into(),
            force,
            right_now: 0,
            wait_time: DNSSEEDS_DELAY_FEW_PEERS,
            outbound_seen: 0,
            found: 0,
            log: Vec::new(),
            told_inactive: false,
        };
        if !dnsseed {
            s.log.push("DNS seeding disabled".into());
            s.phase = Phase::Done;
        } else if have_seednodes {
            s.log.push(format!(
                "-seednode enabled. Trying the provided seeds for {} seconds before defaulting to the dnsseeds.",
                SEEDNODE_TIMEOUT.as_secs()
            ));
            s.phase = Phase::SeedNodes { until: now + SEEDNODE_TIMEOUT };
        }
        s
    }

    /// Counts addresses a queried seed returned.
    pub fn record_found(&mut self, n: usize) {
        self.found += n;
    }

    /// Lines to log since the last call.
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    /// Whether seeding is over.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    fn finish(&mut self, line: String) -> Step {
        self.phase = Phase::Done;
        Step::Done(line)
    }

    /// The next step at `now`.
    pub fn next(&mut self, now: Instant, facts: Facts) -> Step {
        loop {
            match self.phase.clone() {
                Phase::Done => return Step::Done(String::new()),
                Phase::SeedNodes { until } => {
                    if now > until {
                        self.log.push(
                            "Couldn't connect to enough peers via seed nodes. Handing fetch logic to the DNS seeds."
                                .into(),
                        );
                        self.phase = Phase::Start;
                    } else if facts.full_outbound >= SEED_OUTBOUND_CONNECTION_THRESHOLD {
                        self.outbound_seen = facts.full_outbound;
                        self.log.push("P2P peers available. Finished fetching data from seed nodes.".into());
                        self.phase = Phase::Start;
                    } else {
                        return Step::Wait((now + SEEDNODE_POLL).min(until + Duration::from_millis(1)));
                    }
                }
                Phase::Start => {
                    if self.force || facts.addrman_size == 0 {
                        self.right_now = self.seeds.len();
                    }
                    self.wait_time = if facts.addrman_size >= DNSSEEDS_DELAY_PEER_THRESHOLD {
                        DNSSEEDS_DELAY_MANY_PEERS
                    } else {
                        DNSSEEDS_DELAY_FEW_PEERS
                    };
                    if self.outbound_seen >= SEED_OUTBOUND_CONNECTION_THRESHOLD && self.right_now == 0 {
                        return self.finish("Skipping DNS seeds. Enough peers have been found".into());
                    }
                    self.phase = Phase::Querying;
                }
                Phase::Querying => {
                    if self.seeds.is_empty() {
                        let line = format!("{} addresses found from DNS seeds", self.found);
                        return self.finish(line);
                    }
                    if self.right_now == 0 {
                        self.right_now = DNSSEEDS_TO_QUERY_AT_ONCE;
                        if facts.addrman_size > 0 {
                            self.log.push(format!(
                                "Waiting {} seconds before querying DNS seeds.",
                                self.wait_time.as_secs()
                            ));
                            let chunk = self.wait_time.min(DNSSEEDS_DELAY_FEW_PEERS);
                            self.phase = Phase::Waiting { chunk_end: now + chunk, remaining: self.wait_time };
                            continue;
                        }
                    }
                    if !facts.network_active {
                        if !self.told_inactive {
                            self.told_inactive = true;
                            self.log.push("Waiting for network to be reactivated before querying DNS seeds.".into());
                        }
                        return Step::Wait(now + Duration::from_secs(1));
                    }
                    self.told_inactive = false;
                    let Some(seed) = self.seeds.pop_front() else { continue };
                    self.right_now = self.right_now.saturating_sub(1);
                    self.log.push(format!("Loading addresses from DNS seed {seed}"));
                    return Step::Query(seed);
                }
                Phase::Waiting { chunk_end, remaining } => {
                    if now < chunk_end {
                        return Step::Wait(chunk_end);
                    }
                    let remaining = remaining.saturating_sub(DNSSEEDS_DELAY_FEW_PEERS);
                    if facts.full_outbound >= SEED_OUTBOUND_CONNECTION_THRESHOLD {
                        if self.found > 0 {
                            self.log.push(format!("{} addresses found from DNS seeds", self.found));
                            return self.finish("P2P peers available. Finished DNS seeding.".into());
                        }
                        return self.finish("P2P peers available. Skipped DNS seeding.".into());
                    }
                    self.phase = if remaining.is_zero() {
                        Phase::Querying
                    } else {
                        Phase::Waiting { chunk_end: now + remaining.min(DNSSEEDS_DELAY_FEW_PEERS), remaining }
                    };
                }
            }
        }
    }
}

/// Core's fixed-seed rule, for an address book still empty for some reachable network: add
/// the fixed seeds once [`FIXED_SEEDS_DELAY`] has passed, or at once when no other source of
/// addresses exists (no DNS seeding, no `--seednode`, no `--addnode`). The reason to log, if due.
pub fn fixed_seeds_due(
    started: Instant,
    now: Instant,
    dnsseed: bool,
    have_seednodes: bool,
    have_addnodes: bool,
) -> Option<&'static str> {
    if now > started + FIXED_SEEDS_DELAY {
        return Some(
            "Adding fixed seeds as 60 seconds have passed and addrman is empty for at least one reachable network",
        );
    }
    if !dnsseed && !have_seednodes && !have_addnodes {
        return Some(
            "Adding fixed seeds as -dnsseed=0 (or IPv4/IPv6 connections are disabled via -onlynet) and neither -addnode nor -seednode are provided",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEEDS: [&str; 5] = ["a.", "b.", "c.", "d.", "e."];

    fn facts(addrman_size: usize, full_outbound: usize) -> Facts {
        Facts { addrman_size, full_outbound, network_active: true }
    }

    #[test]
    fn empty_address_book_queries_every_seed_at_once() {
        let t0 = Instant::now();
        let mut s = DnsSeeding::new(SEEDS.to_vec(), true, false, false, t0);
        let mut queried = Vec::new();
        loop {
            match s.next(t0, facts(0, 0)) {
                Step::Query(seed) => {
                    queried.push(seed);
                    s.record_found(10);
                }
                Step::Done(line) => {
                    assert_eq!(line, "50 addresses found from DNS seeds");
                    break;
                }
                Step::Wait(_) => panic!("no wait with an empty address book"),
            }
        }
        assert_eq!(queried, SEEDS.to_vec());
        assert!(s.is_done());
    }

    #[test]
    fn known_addresses_wait_11s_then_query_three_at_a_time() {
        let t0 = Instant::now();
        let mut s = DnsSeeding::new(SEEDS.to_vec(), true, false, false, t0);
        let f = facts(50, 0);
        assert_eq!(s.next(t0, f), Step::Wait(t0 + DNSSEEDS_DELAY_FEW_PEERS));
        assert!(s.take_log().contains(&"Waiting 11 seconds before querying DNS seeds.".to_string()));
        let t1 = t0 + DNSSEEDS_DELAY_FEW_PEERS;
        let batch: Vec<Step> = (0..3).map(|_| s.next(t1, f)).collect();
        assert_eq!(batch, vec![Step::Query("a."), Step::Query("b."), Step::Query("c.")]);
        // The next batch waits again.
        assert_eq!(s.next(t1, f), Step::Wait(t1 + DNSSEEDS_DELAY_FEW_PEERS));
    }

    #[test]
    fn enough_peers_while_waiting_skips_seeding() {
        let t0 = Instant::now();
        let mut s = DnsSeeding::new(SEEDS.to_vec(), true, false, false, t0);
        assert!(matches!(s.next(t0, facts(2000, 0)), Step::Wait(_)), "a big book waits 5 min, in 11 s steps");
        let t1 = t0 + DNSSEEDS_DELAY_FEW_PEERS;
        assert_eq!(s.next(t1, facts(2000, 1)), Step::Wait(t1 + DNSSEEDS_DELAY_FEW_PEERS));
        let t2 = t1 + DNSSEEDS_DELAY_FEW_PEERS;
        assert_eq!(s.next(t2, facts(2000, 2)), Step::Done("P2P peers available. Skipped DNS seeding.".into()));
    }

    #[test]
    fn many_peers_wait_five_minutes_in_total() {
        let t0 = Instant::now();
        let mut s = DnsSeeding::new(SEEDS.to_vec(), true, false, false, t0);
        let f = facts(DNSSEEDS_DELAY_PEER_THRESHOLD, 0);
        let mut now = t0;
        let first_query = loop {
            match s.next(now, f) {
                Step::Wait(until) => now = until,
                Step::Query(seed) => break (seed, now),
                Step::Done(l) => panic!("{l}"),
            }
        };
        assert_eq!(first_query.0, "a.");
        let waited = first_query.1 - t0;
        assert!(waited >= DNSSEEDS_DELAY_MANY_PEERS && waited < DNSSEEDS_DELAY_MANY_PEERS + DNSSEEDS_DELAY_FEW_PEERS);
    }

    #[test]
    fn seed_nodes_first_then_dns_or_skip() {
        let t0 = Instant::now();
        let mut s = DnsSeeding::new(SEEDS.to_vec(), true, false, true, t0);
        assert_eq!(s.next(t0, facts(0, 0)), Step::Wait(t0 + SEEDNODE_POLL));
        // Two outbound peers from the seed node and a non-empty book: DNS is skipped.
        let step = s.next(t0 + Duration::from_secs(5), facts(100, 2));
        assert_eq!(step, Step::Done("Skipping DNS seeds. Enough peers have been found".into()));

        let mut s = DnsSeeding::new(SEEDS.to_vec(), true, false, true, t0);
        let late = t0 + SEEDNODE_TIMEOUT + Duration::from_secs(1);
        assert_eq!(s.next(late, facts(0, 0)), Step::Query("a."), "the seed nodes timed out: DNS takes over");
        assert!(s.take_log().iter().any(|l| l.starts_with("Couldn't connect to enough peers via seed nodes")));
    }

    #[test]
    fn disabled_forced_and_inactive_network() {
        let t0 = Instant::now();
        let mut s = DnsSeeding::new(SEEDS.to_vec(), false, false, false, t0);
        assert!(s.is_done());
        assert_eq!(s.take_log(), vec!["DNS seeding disabled".to_string()]);

        let mut s = DnsSeeding::new(SEEDS.to_vec(), true, true, false, t0);
        assert_eq!(s.next(t0, facts(5000, 0)), Step::Query("a."), "-forcednsseed queries at once");

        let mut s = DnsSeeding::new(SEEDS.to_vec(), true, false, false, t0);
        let off = Facts { network_active: false, ..facts(0, 0) };
        assert_eq!(s.next(t0, off), Step::Wait(t0 + Duration::from_secs(1)));
        assert_eq!(s.next(t0 + Duration::from_secs(1), facts(0, 0)), Step::Query("a."));
    }

    #[test]
    fn fixed_seeds_after_a_minute_or_at_once_without_other_sources() {
        let t0 = Instant::now();
        assert_eq!(fixed_seeds_due(t0, t0 + Duration::from_secs(30), true, false, false), None);
        assert!(fixed_seeds_due(t0, t0 + Duration::from_secs(61), true, false, false).is_some());
        assert!(fixed_seeds_due(t0, t0, false, false, false).is_some());
        assert_eq!(fixed_seeds_due(t0, t0, false, false, true), None, "an --addnode may provide addresses");
        assert_eq!(fixed_seeds_due(t0, t0, false, true, false), None, "a --seednode may provide addresses");
    }
}
