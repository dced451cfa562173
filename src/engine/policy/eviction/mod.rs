//! Which inbound peer to drop when the inbound slots are full: Core's `SelectNodeToEvict` and
//! `ProtectEvictionCandidatesByRatio` (`node/eviction.cpp`), as pure functions over snapshots of the peers.
//!
//! Nothing here reads a clock or a socket: the caller takes one [`EvictionCandidate`] per connected peer
//! and disconnects the id that [`select_node_to_evict`] returns, if any.
//!
//! Each protection step sorts the remaining candidates by one criterion and takes the best few out of the
//! running. Core sorts with `std::sort`, which leaves the order of equal candidates unspecified; here every
//! sort is stable, so equal candidates keep their previous order and the answer depends only on the input.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::base::netaddr::NetKind;
use crate::base::peer::{ConnectionType, PeerId, PeerIdentity, Permissions};

#[cfg(test)]
mod tests;

/// Candidates protected for having the highest keyed network groups.
const PROTECT_BY_NETGROUP: usize = 4;
/// Candidates protected for having the lowest minimum ping.
const PROTECT_BY_PING: usize = 8;
/// Candidates protected for having sent us novel transactions most recently.
const PROTECT_BY_TX: usize = 4;
/// Block-relay-only candidates protected for having sent us novel blocks most recently.
const PROTECT_BLOCK_RELAY_ONLY: usize = 8;
/// Candidates protected for having sent us novel blocks most recently.
const PROTECT_BY_BLOCK: usize = 4;

/// The network a candidate is connected over (Core's `Network`, without `NET_INTERNAL`, which is
/// never a peer's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerNetwork {
    /// Not publicly routable (loopback, private and reserved ranges).
    Unroutable,
    /// Public IPv4.
    Ipv4,
    /// Public IPv6.
    Ipv6,
    /// Tor onion service.
    Onion,
    /// I2P.
    I2p,
    /// CJDNS.
    Cjdns,
}

impl From<NetKind> for PeerNetwork {
    fn from(kind: NetKind) -> Self {
        match kind {
            NetKind::Unroutable => PeerNetwork::Unroutable,
            NetKind::Ipv4 => PeerNetwork::Ipv4,
            NetKind::Ipv6 => PeerNetwork::Ipv6,
            NetKind::Onion => PeerNetwork::Onion,
        }
    }
}

/// What eviction needs to know about one connected peer (Core's `NodeEvictionCandidate`).
///
/// Times are points, not ages: a larger `connected_at` is a younger connection, a larger
/// `last_block_time` a more recent block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvictionCandidate {
    /// The peer's connection id.
    pub id: PeerId,
    /// When the connection started, as time since an origin shared by all candidates (the unix epoch,
    /// or the node's start).
    pub connected_at: Duration,
    /// The lowest ping round trip measured; `None` until a pong arrives (sorts as the slowest).
    pub min_ping: Option<Duration>,
    /// Unix time in seconds of the last novel block the peer sent us; 0 if none.
    pub last_block_time: i64,
    /// Unix time in seconds of the last novel transaction the peer sent us that entered the mempool;
    /// 0 if none.
    pub last_tx_time: i64,
    /// Whether the peer offers the services we need for block download (Core's `fRelevantServices`).
    pub relevant_services: bool,
    /// Whether the peer asked us to relay transactions to it.
    pub relay_txs: bool,
    /// Whether the peer loaded a BIP37 bloom filter.
    pub bloom_filter: bool,
    /// The peer's network group, hashed with a per-node secret so an attacker cannot predict which
    /// groups are protected (Core's `nKeyedNetGroup`).
    pub keyed_net_group: u64,
    /// Whether the peer should be the first to go (Core sets it for inbound peers from a discouraged
    /// address).
    pub prefer_evict: bool,
    /// Whether the peer's address is a local one (localhost; Core's `m_is_local`).
    pub is_local: bool,
    /// The network the peer is connected over.
    pub network: PeerNetwork,
    /// The peer has the `noban` permission and is never evicted.
    pub noban: bool,
    /// The connection's type; only inbound connections are evicted.
    pub conn_type: ConnectionType,
}

/// What the protocol has learnt about a peer that inbound eviction weighs (the changing part of
/// a candidate; the fixed part is its [`PeerIdentity`]). The peer manager computes it; the
/// daemon's socket handler reads the copy the message handler publishes for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvictionFacts {
    /// The lowest ping round trip measured, if any.
    pub min_ping: Option<Duration>,
    /// Unix seconds when the peer last moved our best chain forward; 0 if never.
    pub last_block_time: i64,
    /// Its `version` offered everything we want (Core's `m_has_all_wanted_services`).
    pub relevant_services: bool,
    /// Its `version` asked for transaction relay.
    pub relay_txs: bool,
}

/// The node's secret for keyed network groups (Core's `RANDOMIZER_ID_NETGROUP` randomizer), so
/// an attacker cannot predict which groups eviction protects.
#[derive(Clone, Copy, Debug)]
pub struct GroupKey([u64; 2]);

impl GroupKey {
    /// A key from 128 secret bits.
    pub fn new(k0: u64, k1: u64) -> Self {
        GroupKey([k0, k1])
    }

    /// The keyed network group of `ip` (its Core network group hashed with the key).
    pub fn keyed_group(&self, ip: std::net::IpAddr) -> u64 {
        use std::hash::Hasher;
        let group = crate::base::netgroup::netgroup(
            &crate::base::netgroup::from_ip(ip),
            crate::base::netgroup::NetGroupRule::Core,
        );
        let mut h = std::collections::hash_map::DefaultHasher::new();
        h.write_u64(self.0[0]);
        h.write_u64(self.0[1]);
        h.write(&group);
        h.finish()
    }
}

/// The candidate Core's `AttemptToEvictConnection` builds for one peer: its identity, what the
/// protocol learnt (`facts`), times measured from `origin`, and whether its address is
/// discouraged (`prefer_evict`).
pub fn candidate(who: &PeerIdentity, facts: &EvictionFacts, origin: Instant, prefer_evict: bool) -> EvictionCandidate {
    let ip = who.addr.ip();
    EvictionCandidate {
        id: who.id,
        connected_at: who.connected_at.saturating_duration_since(origin),
        min_ping: facts.min_ping,
        last_block_time: facts.last_block_time,
        last_tx_time: 0,
        relevant_services: facts.relevant_services,
        relay_txs: facts.relay_txs,
        bloom_filter: false,
        keyed_net_group: who.keyed_group,
        prefer_evict,
        is_local: ip.is_loopback(),
        network: who.net.into(),
        noban: who.permissions.has(Permissions::NO_BAN),
        conn_type: who.conn_type,
    }
}

/// Chooses the inbound peer to evict, or `None` when every candidate is protected.
///
/// Protected, in this order (each step looks only at the candidates the earlier steps left):
/// peers with `noban` and all non-inbound peers; the 4 with the highest keyed network group; the 8 with
/// the lowest minimum ping; the 4 that most recently sent novel transactions; up to 8 block-relay-only
/// peers (not relaying transactions, with relevant services) that most recently sent novel blocks; the 4
/// that most recently sent novel blocks; then half of the rest by
/// [`protect_eviction_candidates_by_ratio`].
///
/// Of the remaining peers, only those with `prefer_evict` are considered if there are any. The network
/// group with the most of them is chosen (on a tie, the group whose youngest member connected last), and
/// its youngest member is the one to evict.
pub fn select_node_to_evict(mut candidates: Vec<EvictionCandidate>) -> Option<PeerId> {
    candidates.retain(|c| !c.noban && c.conn_type.is_inbound());

    // The keyed network group cannot be predicted by an attacker.
    erase_last_k(&mut candidates, |c| c.keyed_net_group, PROTECT_BY_NETGROUP, |_| true);
    // Ping cannot be lowered without moving closer to us.
    erase_last_k(&mut candidates, |c| Reverse(ping_key(c)), PROTECT_BY_PING, |_| true);
    // Novel transactions and blocks cannot be faked without doing useful work.
    erase_last_k(&mut candidates, tx_time_key, PROTECT_BY_TX, |_| true);
    erase_last_k(&mut candidates, block_relay_only_key, PROTECT_BLOCK_RELAY_ONLY, |c| {
        !c.relay_txs && c.relevant_services
    });
    erase_last_k(&mut candidates, block_time_key, PROTECT_BY_BLOCK, |_| true);

    protect_eviction_candidates_by_ratio(&mut candidates);

    if candidates.is_empty() {
        return None;
    }

    // A peer that is best by another criterion was protected above even if it is preferred for eviction.
    if candidates.iter().any(|c| c.prefer_evict) {
        candidates.retain(|c| c.prefer_evict);
    }

    // The candidates are sorted youngest first (the last step of the ratio protection), so the first
    // member seen of a group is its youngest.
    let mut groups: HashMap<u64, (usize, Duration, PeerId)> = HashMap::new();
    let mut most: Option<(u64, usize, Duration)> = None;
    for c in &candidates {
        let group = groups.entry(c.keyed_net_group).or_insert((0, c.connected_at, c.id));
        group.0 += 1;
        let (size, youngest, _) = *group;
        let better = match most {
            None => true,
            Some((_, most_size, most_youngest)) => size > most_size || (size == most_size && youngest > most_youngest),
        };
        if better {
            most = Some((c.keyed_net_group, size, youngest));
        }
    }
    most.and_then(|(group, _, _)| groups.get(&group)).map(|&(_, _, youngest_id)| youngest_id)
}

/// Protects half of `candidates` (rounded down) by removing them: those connected the longest, with up to
/// half of these places (a quarter of the total) reserved for peers on the disadvantaged networks (onion,
/// I2P, CJDNS, and localhost, which inbound onion peers arrive from without a dedicated bind), taken by
/// longest uptime within each network even if they are not the longest connected overall.
///
/// These networks' higher latency would otherwise leave them out of the ping protection. The reserved
/// places are shared out evenly between the networks that have candidates, those with fewer candidates
/// first, and a network with too few candidates for its share leaves the rest to the others. On equal
/// counts the order is CJDNS, I2P, localhost, onion. A localhost peer counts as localhost whatever its
/// network.
///
/// The remaining candidates are left sorted from the youngest connection to the oldest.
pub fn protect_eviction_candidates_by_ratio(candidates: &mut Vec<EvictionCandidate>) {
    let total_protect = candidates.len() / 2;
    let initial_len = candidates.len();

    let mut nets = [
        Disadvantaged::new(Some(PeerNetwork::Cjdns)),
        Disadvantaged::new(Some(PeerNetwork::I2p)),
        Disadvantaged::new(None),
        Disadvantaged::new(Some(PeerNetwork::Onion)),
    ];
    for net in &mut nets {
        net.count = candidates.iter().filter(|c| net.contains(c)).count();
    }
    // Stable: equal counts keep the order above.
    nets.sort_by_key(|net| net.count);

    let max_protect_by_network = total_protect / 2;
    let mut num_protected = 0;
    while num_protected < max_protect_by_network {
        let num_networks = nets.iter().filter(|net| net.count > 0).count();
        if num_networks == 0 {
            break;
        }
        let per_network = ((max_protect_by_network - num_protected) / num_networks).max(1);
        let mut protected_any = false;
        for net in &mut nets {
            if net.count == 0 {
                continue;
            }
            let before = candidates.len();
            let this = *net;
            erase_last_k(
                candidates,
                |c| (this.contains(c), Reverse(c.connected_at)),
                per_network,
                |c| this.contains(c),
            );
            let delta = before - candidates.len();
            if delta > 0 {
                protected_any = true;
                num_protected += delta;
                if num_protected >= max_protect_by_network {
                    break;
                }
                net.count -= delta;
            }
        }
        if !protected_any {
            break;
        }
    }

    debug_assert_eq!(num_protected, initial_len - candidates.len());
    let remaining = total_protect.saturating_sub(num_protected);
    erase_last_k(candidates, |c| Reverse(c.connected_at), remaining, |_| true);
}

/// One disadvantaged network of the ratio protection, with its count of remaining candidates.
#[derive(Clone, Copy)]
struct Disadvantaged {
    /// The network, or `None` for localhost peers.
    network: Option<PeerNetwork>,
    /// Candidates on it not yet protected.
    count: usize,
}

impl Disadvantaged {
    fn new(network: Option<PeerNetwork>) -> Self {
        Disadvantaged { network, count: 0 }
    }

    /// Whether `c` belongs to this network.
    fn contains(&self, c: &EvictionCandidate) -> bool {
        match self.network {
            Some(network) => c.network == network,
            None => c.is_local,
        }
    }
}

/// Sorts `candidates` ascending by `key` (stable), then removes, from the last `k`, those that `protect`
/// selects; the others keep their order.
fn erase_last_k<K: Ord>(
    candidates: &mut Vec<EvictionCandidate>,
    key: impl FnMut(&EvictionCandidate) -> K,
    k: usize,
    protect: impl Fn(&EvictionCandidate) -> bool,
) {
    candidates.sort_by_key(key);
    let start = candidates.len() - k.min(candidates.len());
    let tail = candidates.split_off(start);
    candidates.extend(tail.into_iter().filter(|c| !protect(c)));
}

/// The minimum ping, with no measurement as the longest possible.
fn ping_key(c: &EvictionCandidate) -> Duration {
    c.min_ping.unwrap_or(Duration::MAX)
}

/// Core's `CompareNodeTXTime`: older transactions first; on a tie, peers not relaying transactions, then
/// peers with a bloom filter, then younger connections.
fn tx_time_key(c: &EvictionCandidate) -> (i64, bool, bool, Reverse<Duration>) {
    (c.last_tx_time, c.relay_txs, !c.bloom_filter, Reverse(c.connected_at))
}

/// Core's `CompareNodeBlockRelayOnlyTime`: transaction-relaying peers first; then older blocks, peers
/// without relevant services, and younger connections.
fn block_relay_only_key(c: &EvictionCandidate) -> (bool, i64, bool, Reverse<Duration>) {
    (!c.relay_txs, c.last_block_time, c.relevant_services, Reverse(c.connected_at))
}

/// Core's `CompareNodeBlockTime`: older blocks first; on a tie, peers without relevant services, then
/// younger connections.
fn block_time_key(c: &EvictionCandidate) -> (i64, bool, Reverse<Duration>) {
    (c.last_block_time, c.relevant_services, Reverse(c.connected_at))
}
