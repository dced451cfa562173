//! Bitcoin Core's address manager (`AddrMan`), I/O-free: the public API, the entry types and
//! Core's constants; the tables live in `table.rs`, address classification and groups in
//! `base/netgroup.rs`, the peers file in `persist.rs`.
//!
//! Addresses a peer gossips go into 1,024 "new" buckets of 64 positions: the source's network
//! group picks 64 of them, the address's group one of those, the full address the position. An
//! address seen from several sources can sit in up to 8 new buckets. Addresses we connected to
//! go into 256 "tried" buckets: the address's group picks 8, the full address one of those and
//! the position. The placement is keyed by a secret 256-bit key, computed exactly as Core does
//! (double SHA-256 of Core's serialisations), so for the same key every address lands where
//! Core would put it. Both tables are fixed in size and an entry exists only while a position
//! refers to it, so memory is bounded whatever peers send.
//!
//! Nothing here reads a clock or does I/O (except [`AddrMan::save`] and [`AddrMan::load`]):
//! every operation takes `now` in Unix seconds, and the randomness (selection, multiplicity)
//! comes from a [`StdRng`] seeded by the caller.

#[cfg(test)]
mod core_tests;
mod persist;
#[cfg(test)]
mod persist_tests;
mod table;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::AddrV2;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

pub use crate::base::netgroup::{
    AddrNetwork, NetGroupRule, canonical, from_ip, internal, is_local, is_routable, is_valid, net_class, netgroup,
    network,
};
pub use persist::{AddrManError, AddrManFileError, FILE_MAGIC, FORMAT_VERSION};

use crate::base::netgroup::View;
use table::{Id, Slot, Table};

/// Number of tried buckets.
pub const ADDRMAN_TRIED_BUCKET_COUNT: usize = 1 << 8;
/// Number of new buckets.
pub const ADDRMAN_NEW_BUCKET_COUNT: usize = 1 << 10;
/// Positions per bucket.
pub const ADDRMAN_BUCKET_SIZE: usize = 1 << 6;
/// Over how many tried buckets the addresses of one group are spread.
pub const ADDRMAN_TRIED_BUCKETS_PER_GROUP: u64 = 8;
/// Over how many new buckets the addresses from one source group are spread.
pub const ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP: u64 = 64;
/// In how many new buckets one address can be at most.
pub const ADDRMAN_NEW_BUCKETS_PER_ADDRESS: u8 = 8;
/// How old (seconds) an address's time can be before it is terrible (30 days).
pub const ADDRMAN_HORIZON: i64 = 30 * 24 * 3600;
/// After how many failed attempts an address never connected to is terrible.
pub const ADDRMAN_RETRIES: i32 = 3;
/// How many successive failures ...
pub const ADDRMAN_MAX_FAILURES: i32 = 10;
/// ... with no success for this long (seconds, 7 days) make an address terrible.
pub const ADDRMAN_MIN_FAIL: i64 = 7 * 24 * 3600;
/// How recent (seconds, 4 hours) a success protects a tried entry from eviction.
pub const ADDRMAN_REPLACEMENT: i64 = 4 * 3600;
/// How many tried collisions are kept for test-before-evict.
pub const ADDRMAN_SET_TRIED_COLLISION_SIZE: usize = 10;
/// How long (seconds, 40 minutes) a tried collision waits for its test before eviction anyway.
pub const ADDRMAN_TEST_WINDOW: i64 = 40 * 60;
/// How stale (seconds) an entry's time must be before [`AddrMan::connected`] updates it.
pub const CONNECTED_UPDATE_INTERVAL: i64 = 20 * 60;

/// An address as gossiped (Core's `CAddress`): where, what it serves, and when it was last seen.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AddrEntry {
    /// The address (BIP155).
    pub addr: AddrV2,
    /// The port.
    pub port: u16,
    /// The services it announced.
    pub services: ServiceFlags,
    /// When it was last seen (Unix seconds).
    pub time: i64,
}

impl AddrEntry {
    /// An entry.
    pub fn new(addr: AddrV2, port: u16, services: ServiceFlags, time: i64) -> AddrEntry {
        AddrEntry { addr, port, services, time }
    }

    /// The entry for a socket address (IPv4-mapped IPv6 becomes IPv4, as in Core).
    pub fn from_socket(sa: SocketAddr, services: ServiceFlags, time: i64) -> AddrEntry {
        AddrEntry { addr: from_ip(sa.ip()), port: sa.port(), services, time }
    }

    /// The socket address to dial, for IPv4 and IPv6 entries.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match &self.addr {
            AddrV2::Ipv4(v4) => Some(SocketAddr::new(IpAddr::V4(*v4), self.port)),
            AddrV2::Ipv6(v6) => Some(SocketAddr::new(IpAddr::V6(*v6), self.port)),
            _ => None,
        }
    }
}

/// An entry with its statistics (Core's `AddrInfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    /// The gossiped fields.
    pub entry: AddrEntry,
    /// Who first told us about it.
    pub source: AddrV2,
    /// Our last attempt to connect (Unix seconds, 0 for never).
    pub last_try: i64,
    /// Our last attempt counted as a failure (Unix seconds, 0 for never).
    pub last_count_attempt: i64,
    /// Our last successful connection (Unix seconds, 0 for never).
    pub last_success: i64,
    /// Failed attempts since the last success.
    pub attempts: i32,
}

impl EntryInfo {
    /// Core's `IsTerrible`: bad enough to be overwritten and not to be gossiped.
    pub fn is_terrible(&self, now: i64) -> bool {
        if now - self.last_try <= 60 {
            return false; // never remove things tried in the last minute
        }
        if self.entry.time > now + 10 * 60 {
            return true; // came from the future
        }
        if now - self.entry.time > ADDRMAN_HORIZON {
            return true; // not seen in recent history
        }
        if self.last_success == 0 && self.attempts >= ADDRMAN_RETRIES {
            return true; // tried N times and never a success
        }
        now - self.last_success > ADDRMAN_MIN_FAIL && self.attempts >= ADDRMAN_MAX_FAILURES
    }

    /// Core's `GetChance`: the relative weight of this entry in [`AddrMan::select`].
    pub fn chance(&self, now: i64) -> f64 {
        let recent = if now - self.last_try < 10 * 60 { 0.01 } else { 1.0 };
        recent * 0.66f64.powi(self.attempts.clamp(0, 8))
    }
}

/// Where an entry is (Core's `AddressPosition`): for a new entry, the position its primary
/// source gives it and the number of new buckets it is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressPosition {
    /// In the tried table (else new).
    pub tried: bool,
    /// In how many buckets (1 for tried).
    pub multiplicity: u8,
    /// The bucket.
    pub bucket: usize,
    /// The position in the bucket.
    pub position: usize,
}

/// Entries of one network (or all) in each table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetCounts {
    /// In the new table.
    pub new: usize,
    /// In the tried table.
    pub tried: usize,
}

impl NetCounts {
    /// In either table.
    pub fn total(&self) -> usize {
        self.new + self.tried
    }
}

/// A failed consistency check: Core's `CheckAddrman` code and what it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inconsistency {
    /// Core's error code (negative).
    pub code: i32,
    /// What is inconsistent.
    pub what: &'static str,
}

impl fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "consistency check failed with code {} ({})", self.code, self.what)
    }
}

/// The address manager (Core's `AddrManImpl`).
pub struct AddrMan {
    /// The secret placement key.
    key: [u8; 32],
    /// How groups are formed.
    rule: NetGroupRule,
    /// Randomness for selection and multiplicity.
    rng: StdRng,
    /// The next entry id.
    id_count: Id,
    /// Every entry by id (ordered, so that iteration is deterministic).
    map_info: BTreeMap<Id, Slot>,
    /// Every entry by (canonical address, port).
    map_addr: HashMap<(AddrV2, u16), Id>,
    /// Every entry id in a random order (for `get_addr`).
    random: Vec<Id>,
    /// Entries in the tried table.
    n_tried: usize,
    /// Entries in the new table.
    n_new: usize,
    /// The tried table.
    tried_table: Table,
    /// The new table.
    new_table: Table,
    /// The last time `good` was called (initially 1, so that "never" is strictly earlier).
    last_good: i64,
    /// New entries whose move to tried collides with an entry there (test-before-evict).
    tried_collisions: BTreeSet<Id>,
    /// Entries per network (indexed by [`AddrNetwork::index`]).
    network_counts: [NetCounts; 7],
}

impl fmt::Debug for AddrMan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("AddrMan").field("new", &self.n_new).field("tried", &self.n_tried).finish_non_exhaustive()
    }
}

impl AddrMan {
    /// An empty manager with placement key `key`, randomness seeded by `seed`, grouping by `rule`.
    pub fn new(key: [u8; 32], seed: u64, rule: NetGroupRule) -> AddrMan {
        AddrMan {
            key,
            rule,
            rng: StdRng::seed_from_u64(seed),
            id_count: 0,
            map_info: BTreeMap::new(),
            map_addr: HashMap::new(),
            random: Vec::new(),
            n_tried: 0,
            n_new: 0,
            tried_table: Table::new(ADDRMAN_TRIED_BUCKET_COUNT),
            new_table: Table::new(ADDRMAN_NEW_BUCKET_COUNT),
            last_good: 1,
            tried_collisions: BTreeSet::new(),
            network_counts: [NetCounts::default(); 7],
        }
    }

    /// The placement key.
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// The grouping rule.
    pub fn rule(&self) -> NetGroupRule {
        self.rule
    }

    /// The entry for `addr`:`port`, if known.
    fn lookup(&self, addr: &AddrV2, port: u16) -> Option<Id> {
        self.find(&canonical(addr), port)
    }

    /// Core's `Add`: puts gossiped addresses in the new table (or adds a further new bucket for
    /// a known one, updates its time and services). `source` is the peer that sent them; each
    /// address's time is lowered by `time_penalty_secs` unless the peer announces itself.
    /// Addresses that are not publicly routable (valid, not private or reserved, a known BIP155
    /// network other than TorV2) are rejected. Returns how many were added to a bucket.
    pub fn add(&mut self, addrs: &[AddrEntry], source: &AddrV2, time_penalty_secs: i64, now: i64) -> usize {
        let source = canonical(source);
        addrs.iter().filter(|a| self.add_single(a, &source, time_penalty_secs, now)).count()
    }

    fn add_single(&mut self, addr: &AddrEntry, source: &AddrV2, time_penalty: i64, now: i64) -> bool {
        let view = View::of(&addr.addr);
        if !view.routable_under(self.rule) {
            return false;
        }
        let entry = AddrEntry { addr: canonical(&addr.addr), ..addr.clone() };
        // No penalty for a peer's announcement of itself.
        let penalty = if view == View::of(source) { 0 } else { time_penalty };
        let id = match self.find(&entry.addr, entry.port) {
            Some(id) => {
                let Some(slot) = self.map_info.get_mut(&id) else { return false };
                let info = &mut slot.info;
                // Periodically update the time.
                let update_interval = if now - entry.time < 24 * 3600 { 3600 } else { 24 * 3600 };
                if info.entry.time < entry.time - update_interval - penalty {
                    info.entry.time = (entry.time - penalty).max(0);
                }
                info.entry.services |= entry.services;
                // Nothing new, already tried, or in the maximum of buckets: no further bucket.
                if entry.time <= info.entry.time || slot.in_tried || slot.ref_count >= ADDRMAN_NEW_BUCKETS_PER_ADDRESS {
                    return false;
                }
                // With N buckets already, 2^N times harder to get another.
                let refs = slot.ref_count;
                if refs > 0 && self.rng.random_range(0..(1u32 << refs)) != 0 {
                    return false;
                }
                id
            }
            None => {
                let time = (entry.time - penalty).max(0);
                self.create(AddrEntry { time, ..entry.clone() }, source.clone())
            }
        };
        let bucket = table::new_bucket(&self.key, &entry.addr, source, self.rule);
        let pos = table::bucket_position(&self.key, true, bucket, &entry.addr, entry.port);
        let existing = self.new_table.get(bucket, pos);
        if existing == Some(id) {
            return false;
        }
        let my_refs = self.slot(id).map_or(0, |s| s.ref_count);
        let insert = match existing.and_then(|e| self.slot(e)) {
            None => true,
            // Overwrite a terrible entry, or one that is also elsewhere when this one is nowhere.
            Some(old) => old.info.is_terrible(now) || (old.ref_count > 1 && my_refs == 0),
        };
        if insert {
            self.clear_new(bucket, pos);
            if let Some(s) = self.slot_mut(id) {
                s.ref_count += 1;
            }
            self.new_table.set(bucket, pos, Some(id));
        } else if my_refs == 0 {
            self.delete(id);
        }
        insert
    }

    /// Core's `Good`: we connected to `addr`:`port` at `now`; records the success and moves it
    /// from new to tried. If its tried position is taken, it stays in new and the collision is
    /// remembered for [`Self::select_tried_collision`] and [`Self::resolve_collisions`]
    /// (test-before-evict). Returns whether it moved to tried.
    pub fn good(&mut self, addr: &AddrV2, port: u16, now: i64) -> bool {
        self.good_inner(addr, port, true, now)
    }

    fn good_inner(&mut self, addr: &AddrV2, port: u16, test_before_evict: bool, now: i64) -> bool {
        self.last_good = now;
        let Some(id) = self.lookup(addr, port) else { return false };
        let Some(slot) = self.slot_mut(id) else { return false };
        slot.info.last_success = now;
        slot.info.last_try = now;
        slot.info.attempts = 0;
        // The time is not updated, so as not to leak which peers we are connected to.
        if slot.in_tried || slot.ref_count == 0 {
            return false;
        }
        let entry = slot.info.entry.clone();
        let (bucket, pos) = self.tried_position(&entry);
        if test_before_evict && self.tried_table.get(bucket, pos).is_some() {
            if self.tried_collisions.len() < ADDRMAN_SET_TRIED_COLLISION_SIZE {
                self.tried_collisions.insert(id);
            }
            return false;
        }
        self.make_tried(id);
        true
    }

    /// Core's `Attempt`: we tried to connect to `addr`:`port` at `now`; a failure counts (once
    /// per [`Self::good`] anywhere) if `count_failure`.
    pub fn attempt(&mut self, addr: &AddrV2, port: u16, count_failure: bool, now: i64) {
        let last_good = self.last_good;
        let Some(slot) = self.lookup(addr, port).and_then(|id| self.map_info.get_mut(&id)) else { return };
        slot.info.last_try = now;
        if count_failure && slot.info.last_count_attempt < last_good {
            slot.info.last_count_attempt = now;
            slot.info.attempts += 1;
        }
    }

    /// Core's `Connected`: we were connected to `addr`:`port` until `now`; refreshes its time if
    /// that is more than 20 minutes old.
    pub fn connected(&mut self, addr: &AddrV2, port: u16, now: i64) {
        let Some(slot) = self.lookup(addr, port).and_then(|id| self.map_info.get_mut(&id)) else { return };
        if now - slot.info.entry.time > CONNECTED_UPDATE_INTERVAL {
            slot.info.entry.time = now;
        }
    }

    /// Core's `SetServices`: replaces the services of `addr`:`port` (what its version said).
    pub fn set_services(&mut self, addr: &AddrV2, port: u16, services: ServiceFlags) {
        let Some(slot) = self.lookup(addr, port).and_then(|id| self.map_info.get_mut(&id)) else { return };
        slot.info.entry.services = services;
    }

    /// Core's `Select`: an address to connect to, with our last attempt's time. Picks the new or
    /// the tried table with equal chance (only new if `new_only`, or whichever holds entries of
    /// `networks`), then random positions, accepting an entry with probability
    /// [`EntryInfo::chance`] raised by 1.2 each time one is rejected. `networks` `None` or empty
    /// means all. `None` if no entry qualifies.
    pub fn select(&mut self, new_only: bool, networks: Option<&[AddrNetwork]>, now: i64) -> Option<(AddrEntry, i64)> {
        let networks = networks.filter(|n| !n.is_empty());
        let (new_count, tried_count) = match networks {
            None => (self.n_new, self.n_tried),
            Some(nets) => {
                let mut seen = [false; 7];
                nets.iter().filter(|n| !std::mem::replace(&mut seen[n.index()], true)).fold((0, 0), |(n, t), net| {
                    let c = self.network_counts[net.index()];
                    (n + c.new, t + c.tried)
                })
            }
        };
        if new_count + tried_count == 0 || (new_only && new_count == 0) {
            return None;
        }
        let search_tried = if new_only || tried_count == 0 {
            false
        } else if new_count == 0 {
            true
        } else {
            self.rng.random::<bool>()
        };
        let (table, buckets) = if search_tried {
            (&self.tried_table, ADDRMAN_TRIED_BUCKET_COUNT)
        } else {
            (&self.new_table, ADDRMAN_NEW_BUCKET_COUNT)
        };
        let mut chance_factor = 1.0f64;
        loop {
            let bucket = self.rng.random_range(0..buckets);
            let start = self.rng.random_range(0..ADDRMAN_BUCKET_SIZE);
            let found = (0..ADDRMAN_BUCKET_SIZE).find_map(|i| {
                let id = table.get(bucket, (start + i) % ADDRMAN_BUCKET_SIZE)?;
                let slot = self.map_info.get(&id)?;
                let wanted = networks.is_none_or(|n| n.contains(&View::of(&slot.info.entry.addr).network(self.rule)));
                wanted.then_some(slot)
            });
            let Some(slot) = found else { continue };
            let draw = f64::from(self.rng.random::<u32>() >> 2);
            if draw < chance_factor * slot.info.chance(now) * f64::from(1u32 << 30) {
                return Some((slot.info.entry.clone(), slot.info.last_try));
            }
            chance_factor *= 1.2;
        }
    }

    /// Core's `GetAddr`: up to `max_addresses` (0: no limit) and `max_pct` percent (0: no limit)
    /// of all entries, in random order, of the network class `network` only if given (Core's
    /// `GetNetClass`, so 6to4 and Teredo count as IPv4), without terrible ones if `filtered`.
    pub fn get_addr(
        &mut self,
        max_addresses: usize,
        max_pct: usize,
        network: Option<AddrNetwork>,
        filtered: bool,
        now: i64,
    ) -> Vec<AddrEntry> {
        let mut n_nodes = self.random.len();
        if max_pct != 0 {
            n_nodes = max_pct.min(100) * n_nodes / 100;
        }
        if max_addresses != 0 {
            n_nodes = n_nodes.min(max_addresses);
        }
        let mut out = Vec::with_capacity(n_nodes);
        for n in 0..self.random.len() {
            if out.len() >= n_nodes {
                break;
            }
            let pick = self.rng.random_range(n..self.random.len());
            self.swap_random(n, pick);
            let Some(slot) = self.random.get(n).and_then(|id| self.map_info.get(id)) else { continue };
            if network.is_some_and(|net| View::of(&slot.info.entry.addr).net_class(self.rule) != net) {
                continue;
            }
            if filtered && slot.info.is_terrible(now) {
                continue;
            }
            out.push(slot.info.entry.clone());
        }
        out
    }

    /// Core's `ResolveCollisions`: settles each remembered tried collision. The new entry
    /// replaces the old one in tried if the old one's test failed (tried, no success, for more
    /// than a minute within the last 4 hours) or if the old one was not tried and the new one's
    /// success is older than the 40-minute test window; the collision is dropped if the old one
    /// succeeded within 4 hours; otherwise it waits.
    pub fn resolve_collisions(&mut self, now: i64) {
        for id_new in self.tried_collisions.clone() {
            let erase = match self.slot(id_new).map(|s| s.info.clone()) {
                None => true,
                Some(info_new) if !View::of(&info_new.entry.addr).is_valid() => true,
                Some(info_new) => {
                    let (bucket, pos) = self.tried_position(&info_new.entry);
                    let (addr, port) = (&info_new.entry.addr, info_new.entry.port);
                    match self.tried_table.get(bucket, pos).and_then(|old| self.slot(old)).map(|s| s.info.clone()) {
                        Some(old) if now - old.last_success < ADDRMAN_REPLACEMENT => true,
                        Some(old) if now - old.last_try < ADDRMAN_REPLACEMENT => {
                            // Give the old one at least a minute to connect.
                            let failed = now - old.last_try > 60;
                            if failed {
                                self.good_inner(addr, port, false, now);
                            }
                            failed
                        }
                        Some(_) if now - info_new.last_success > ADDRMAN_TEST_WINDOW => {
                            self.good_inner(addr, port, false, now);
                            true
                        }
                        Some(_) => false,
                        None => {
                            // Not a collision any more.
                            self.good_inner(addr, port, false, now);
                            true
                        }
                    }
                }
            };
            if erase {
                self.tried_collisions.remove(&id_new);
            }
        }
    }

    /// Core's `SelectTriedCollision`: for a random remembered collision, the tried entry it
    /// would evict (the one to test with a feeler connection), with our last attempt's time.
    pub fn select_tried_collision(&mut self) -> Option<(AddrEntry, i64)> {
        if self.tried_collisions.is_empty() {
            return None;
        }
        let n = self.rng.random_range(0..self.tried_collisions.len());
        let id_new = self.tried_collisions.iter().nth(n).copied()?;
        let Some(slot) = self.slot(id_new) else {
            self.tried_collisions.remove(&id_new);
            return None;
        };
        let (bucket, pos) = self.tried_position(&slot.info.entry);
        let old = self.slot(self.tried_table.get(bucket, pos)?)?;
        Some((old.info.entry.clone(), old.info.last_try))
    }

    /// The network group of `addr` under this book's rule (Core's `NetGroupManager::GetGroup`).
    pub fn group_of(&self, addr: &AddrV2) -> Vec<u8> {
        netgroup(addr, self.rule)
    }

    /// Core's `Size`: entries of `network` (all if `None`) in the new table (`Some(true)`), the
    /// tried table (`Some(false)`) or both (`None`).
    pub fn size(&self, network: Option<AddrNetwork>, in_new: Option<bool>) -> usize {
        let counts = match network {
            None => NetCounts { new: self.n_new, tried: self.n_tried },
            Some(net) => self.network_counts[net.index()],
        };
        match in_new {
            None => counts.total(),
            Some(true) => counts.new,
            Some(false) => counts.tried,
        }
    }

    /// What `getaddrmaninfo` reports: per network by Core's name (ipv4, ipv6, onion, i2p,
    /// cjdns), then `all_networks`.
    pub fn network_counts(&self) -> Vec<(&'static str, NetCounts)> {
        let mut out: Vec<_> =
            AddrNetwork::REPORTED.iter().map(|n| (n.name(), self.network_counts[n.index()])).collect();
        out.push(("all_networks", NetCounts { new: self.n_new, tried: self.n_tried }));
        out
    }

    /// Core's `FindAddressEntry`: where `addr`:`port` is (for a new entry, the position its
    /// primary source gives it and its multiplicity).
    pub fn find_entry(&self, addr: &AddrV2, port: u16) -> Option<AddressPosition> {
        let slot = self.slot(self.lookup(addr, port)?)?;
        let (tried, multiplicity, (bucket, position)) = if slot.in_tried {
            (true, 1, self.tried_position(&slot.info.entry))
        } else {
            (false, slot.ref_count, self.primary_new_position(&slot.info))
        };
        Some(AddressPosition { tried, multiplicity, bucket, position })
    }

    /// Core's `GetEntries`: every occupied position of the tried (`from_tried`) or new table, in
    /// table order, with its entry (an entry in several new buckets appears once per bucket).
    pub fn entries(&self, from_tried: bool) -> Vec<(EntryInfo, AddressPosition)> {
        let table = if from_tried { &self.tried_table } else { &self.new_table };
        table
            .occupied()
            .filter_map(|(bucket, position, id)| {
                let slot = self.slot(id)?;
                let multiplicity = if from_tried { 1 } else { slot.ref_count };
                Some((slot.info.clone(), AddressPosition { tried: from_tried, multiplicity, bucket, position }))
            })
            .collect()
    }

    /// The statistics of `addr`:`port`, if known.
    pub fn info(&self, addr: &AddrV2, port: u16) -> Option<EntryInfo> {
        Some(self.slot(self.lookup(addr, port)?)?.info.clone())
    }
}
