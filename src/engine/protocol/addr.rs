//! Address relay (Core's addr handling in `net_processing.cpp`), I/O-free: `getaddr` to
//! outbound peers after their `version`; `addr`/`addrv2` received through Core's token bucket
//! into the address book, small fresh announcements handed to the peer manager for relay to
//! 1–2 peers; one `getaddr` answer per inbound connection from a cache; queued addresses sent
//! on a Poisson timer, as `addrv2` to peers that sent `sendaddrv2`; our own address advertised
//! once relay is set up and about once a day after (Core's self-announcement); addresses that
//! are banned or discouraged are dropped from received messages. What a peer is known to have
//! is a fixed-size [`RollingBloom`] (Core's `m_addr_known`, about 27 KB, made when relay is set
//! up); addresses of networks no node can reach (addrv2 network ids Core does not know, with
//! payloads of up to 512 bytes, and Tor v2) are dropped before anything is stored. Tor v3, I2P
//! and CJDNS addresses are stored and relayed (by `addrv2` only) though not dialed: see
//! [`dialable`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::{AddrV2, AddrV2Message, Address};
use bitcoin::p2p::message::NetworkMessage;
use rand::RngExt;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use tracing::debug;

use crate::base::netaddr::text::addr_port_to_string;

use super::rolling_bloom::RollingBloom;
use super::{Now, Outbox, Peer, Protocol, misbehaving};
use crate::base::peer::ConnectionType;
use crate::engine::addrman::{AddrEntry, AddrNetwork, from_ip, network};
use crate::engine::policy::banman::BanMan;
use crate::engine::policy::discourage::Discouraged;
use crate::engine::policy::local::LocalAddrs;
use crate::engine::policy::outbound::may_have_useful_address_db;
use crate::engine::policy::permissions::Permissions;

/// Core's `MAX_ADDR_TO_SEND`: most addresses in one message (more is misbehaviour).
pub const MAX_ADDR_TO_SEND: usize = 1000;
/// Core's `MAX_ADDR_RATE_PER_SECOND`.
pub const MAX_ADDR_RATE_PER_SECOND: f64 = 0.1;
/// Core's `MAX_ADDR_PROCESSING_TOKEN_BUCKET`.
pub const MAX_ADDR_PROCESSING_TOKEN_BUCKET: f64 = MAX_ADDR_TO_SEND as f64;
/// Core's `MAX_PCT_ADDR_TO_SEND`: share of the address book one `getaddr` answer may hold.
pub const MAX_PCT_ADDR_TO_SEND: usize = 23;
/// Core's `AVG_ADDRESS_BROADCAST_INTERVAL`.
pub const AVG_ADDRESS_BROADCAST_INTERVAL: Duration = Duration::from_secs(30);
/// Core's `AVG_LOCAL_ADDRESS_BROADCAST_INTERVAL`: mean time between self-announcements.
pub const AVG_LOCAL_ADDRESS_BROADCAST_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// Core's `ROTATE_ADDR_RELAY_DEST_INTERVAL`: relay targets stay the same this long.
pub const ROTATE_ADDR_RELAY_DEST_INTERVAL: u64 = 24 * 60 * 60;
/// Addresses a peer is remembered to know (Core: a rolling filter of 5,000).
pub const ADDR_KNOWN_SIZE: u32 = 5000;
/// False-positive rate of the known-address filter (Core: 0.001).
pub const ADDR_KNOWN_FP_RATE: f64 = 0.001;
/// Penalty on the time of addresses learnt from a peer (Core: 2 hours).
pub const ADDR_TIME_PENALTY: i64 = 2 * 60 * 60;
/// Core's `GetAddresses` cache lifetime: 21 hours plus up to 6 more.
const CACHE_BASE: Duration = Duration::from_secs(21 * 60 * 60);
const CACHE_JITTER_SECS: u64 = 6 * 60 * 60;

/// One peer's address-relay state (Core's `Peer::m_addr_*`).
#[derive(Debug)]
pub struct AddrPeer {
    /// Addr relay is set up (outbound full-relay/manual after `version`; inbound on their
    /// first addr message).
    pub relay_enabled: bool,
    /// We asked for addresses and the answer has not come yet.
    pub getaddr_sent: bool,
    /// They asked us already (answered once per connection).
    pub getaddr_recvd: bool,
    token_bucket: f64,
    token_time: Option<Instant>,
    /// Addresses waiting for the next `addr` message.
    pub to_send: Vec<AddrEntry>,
    /// Addresses the peer is known to have (Core's `m_addr_known`); made when relay is set up.
    known: Option<Box<RollingBloom>>,
    next_send: Option<Instant>,
    /// Next self-announcement (Core's `m_next_local_addr_send`; `None`: none sent yet).
    next_local_send: Option<Instant>,
    /// Addresses processed (`getpeerinfo` `addr_processed`).
    pub processed: u64,
    /// Addresses dropped by the rate limit (`addr_rate_limited`).
    pub rate_limited: u64,
}

impl Default for AddrPeer {
    fn default() -> Self {
        AddrPeer {
            relay_enabled: false,
            getaddr_sent: false,
            getaddr_recvd: false,
            token_bucket: 1.0,
            token_time: None,
            to_send: Vec::new(),
            known: None,
            next_send: None,
            next_local_send: None,
            processed: 0,
            rate_limited: 0,
        }
    }
}

/// The filter key: an address and its port as bytes (Core's `CService::GetKey`).
fn known_key(a: &AddrEntry, out: &mut Vec<u8>) {
    out.clear();
    match &a.addr {
        AddrV2::Ipv4(ip) => out.extend_from_slice(&ip.to_ipv6_mapped().octets()),
        AddrV2::Ipv6(ip) => out.extend_from_slice(&ip.octets()),
        AddrV2::TorV2(b) => out.extend_from_slice(b),
        AddrV2::TorV3(b) | AddrV2::I2p(b) => out.extend_from_slice(b),
        AddrV2::Cjdns(ip) => out.extend_from_slice(&ip.octets()),
        AddrV2::Unknown(net, b) => {
            out.push(*net);
            out.extend_from_slice(b);
        }
    }
    // The network id keeps equal bytes of different networks apart.
    out.push(network_tag(&a.addr));
    out.extend_from_slice(&a.port.to_be_bytes());
}

fn network_tag(a: &AddrV2) -> u8 {
    match a {
        AddrV2::Ipv4(_) | AddrV2::Ipv6(_) => 1,
        AddrV2::TorV2(_) => 2,
        AddrV2::TorV3(_) => 3,
        AddrV2::I2p(_) => 4,
        AddrV2::Cjdns(_) => 5,
        AddrV2::Unknown(..) => 0,
    }
}

/// Whether an address belongs to a network no node can reach: an addrv2 network id Core does
/// not know (its payload may be up to 512 bytes) or Tor v2 (retired). Core turns such
/// addresses into invalid ones on reading; here they are dropped before anything is stored.
pub fn unusable_network(a: &AddrV2) -> bool {
    matches!(a, AddrV2::Unknown(..) | AddrV2::TorV2(_))
}

/// Whether the node can dial `a` itself: IPv4 and IPv6 (`--onlynet` is not consulted here).
/// Tor v3, I2P and CJDNS need a proxy or a configured host that btcloop does not have yet; their
/// addresses are stored and relayed all the same (Core stores only what it can reach, as its
/// `g_reachable_nets` holds those networks only with `-proxy`/`-onion`, `-i2psam` or
/// `-cjdnsreachable`), so that they are at hand once dialing them exists, and relayed as Core
/// relays unreachable addresses: to 1 or 2 peers, by `addrv2` only.
pub fn dialable(a: &AddrV2) -> bool {
    matches!(a, AddrV2::Ipv4(_) | AddrV2::Ipv6(_))
}

impl AddrPeer {
    /// The known-address filter, made on first use with a fresh random key.
    fn known_filter(&mut self) -> &mut RollingBloom {
        self.known
            .get_or_insert_with(|| Box::new(RollingBloom::new(ADDR_KNOWN_SIZE, ADDR_KNOWN_FP_RATE, rand::random())))
    }

    /// Records that the peer knows `a`; false if it (probably) did already.
    fn mark_known(&mut self, a: &AddrEntry) -> bool {
        let mut key = Vec::with_capacity(40);
        known_key(a, &mut key);
        let f = self.known_filter();
        if f.contains(&key) {
            return false;
        }
        f.insert(&key);
        true
    }

    fn is_known(&self, a: &AddrEntry) -> bool {
        let Some(f) = &self.known else { return false };
        let mut key = Vec::with_capacity(40);
        known_key(a, &mut key);
        f.contains(&key)
    }

    /// The known-address filter, if relay has made it (tests and memory accounting).
    pub fn known(&self) -> Option<&RollingBloom> {
        self.known.as_deref()
    }
}

/// Whether addresses are banned or discouraged (Core's `BanMan::IsBanned`/`IsDiscouraged`, as
/// `ProcessAddrs` asks them): such addresses are not stored and not relayed.
pub trait AddrFilter: Send {
    /// Whether `ip` is banned or discouraged at `now_unix`.
    fn is_banned_or_discouraged(&self, ip: IpAddr, now_unix: i64) -> bool;
}

/// Nothing is banned (a node without ban lists; tests).
#[derive(Debug, Default)]
pub struct NoBans;

impl AddrFilter for NoBans {
    fn is_banned_or_discouraged(&self, _: IpAddr, _: i64) -> bool {
        false
    }
}

/// The node's shared lists: manual bans and recently misbehaving addresses.
#[derive(Debug, Clone)]
pub struct BanLists {
    /// `setban` bans.
    pub banman: Arc<BanMan>,
    /// Discouraged addresses.
    pub discouraged: Arc<Discouraged>,
}

impl AddrFilter for BanLists {
    fn is_banned_or_discouraged(&self, ip: IpAddr, now_unix: i64) -> bool {
        self.discouraged.contains(&ip) || self.banman.is_banned(ip, now_unix)
    }
}

/// The IP of an address-book entry as the ban lists hold it (IPv4-mapped IPv6 as IPv4).
fn entry_ip(a: &AddrEntry) -> Option<IpAddr> {
    let ip = a.socket_addr()?.ip();
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

/// The node-wide part: the `getaddr` answer cache.
#[derive(Debug, Default)]
pub struct AddrNode {
    cache: Vec<AddrEntry>,
    cache_expires: Option<Instant>,
}

/// Core's `IsAddrCompatible`: v1 `addr` carries only IPv4 and IPv6.
fn compatible(peer: &Peer, a: &AddrEntry) -> bool {
    peer.handshake.wants_addrv2 || matches!(a.addr, AddrV2::Ipv4(_) | AddrV2::Ipv6(_))
}

/// Core's `SetupAddressRelay`: never with block-relay-only or feeler connections.
fn setup_relay(peer: &mut Peer) -> bool {
    if matches!(peer.who.conn_type, ConnectionType::BlockRelayOnly | ConnectionType::Feeler) {
        return false;
    }
    peer.addrs.relay_enabled = true;
    peer.addrs.known_filter();
    true
}

/// After an outbound peer's `version`: ask it for addresses (Core's one-time fetch).
pub fn on_outbound_version(peer: &mut Peer, out: &mut impl Outbox) {
    if peer.who.conn_type.is_inbound() || !setup_relay(peer) {
        return;
    }
    out.send(&NetworkMessage::GetAddr);
    peer.addrs.getaddr_sent = true;
    // The answer may hold a full message of addresses.
    peer.addrs.token_bucket += MAX_ADDR_TO_SEND as f64;
}

/// An `addr` (v1) or `addrv2` message, already converted to entries.
pub fn on_addrs(proto: &mut Protocol, peer: &mut Peer, mut addrs: Vec<AddrEntry>, now: Now, out: &mut impl Outbox) {
    if !setup_relay(peer) {
        debug!(target: "net", "ignoring addr message from {} peer={}", peer.who.conn_type, peer.who.id);
        return;
    }
    let n = addrs.len();
    if n > MAX_ADDR_TO_SEND {
        return misbehaving(peer, out, format!("addr message size = {n}"));
    }
    let a = &mut peer.addrs;
    if a.token_bucket < MAX_ADDR_PROCESSING_TOKEN_BUCKET {
        let elapsed = a.token_time.map_or(0.0, |t| now.mono.saturating_duration_since(t).as_secs_f64());
        a.token_bucket = (a.token_bucket + elapsed * MAX_ADDR_RATE_PER_SECOND).min(MAX_ADDR_PROCESSING_TOKEN_BUCKET);
    }
    a.token_time = Some(now.mono);
    let rate_limited = !peer.who.permissions.has(Permissions::ADDR);
    let rule = proto.addrman.rule();
    addrs.shuffle(&mut proto.rng);
    let (mut processed, mut limited) = (0u64, 0u64);
    let mut ok = Vec::new();
    for mut entry in addrs {
        if a.token_bucket < 1.0 {
            if rate_limited {
                limited += 1;
                continue;
            }
        } else {
            a.token_bucket -= 1.0;
        }
        // Core keeps only (possible) full nodes: `MayHaveUsefulAddressDB` or the desirable
        // services, which include NETWORK or NETWORK_LIMITED and so add nothing. Addresses no
        // node can reach are not even remembered as known.
        if !may_have_useful_address_db(entry.services) || unusable_network(&entry.addr) {
            continue;
        }
        if entry.time <= 100_000_000 || entry.time > now.unix + 10 * 60 {
            entry.time = now.unix - 5 * 24 * 60 * 60;
        }
        a.mark_known(&entry);
        if entry_ip(&entry).is_some_and(|ip| proto.bans.is_banned_or_discouraged(ip, now.unix)) {
            // Core remembers that the peer knows it, and goes no further.
            continue;
        }
        processed += 1;
        let reachable = dialable(&entry.addr);
        // Routable under the address book's rule (Core's `IsRoutable` unless the test-only
        // loopback rule is on).
        let routable = !matches!(network(&entry.addr, rule), AddrNetwork::Unroutable | AddrNetwork::Internal);
        if entry.time > now.unix - 10 * 60 && !a.getaddr_sent && n <= 10 && routable {
            out.relay_addr(entry.clone(), reachable);
        }
        ok.push(entry);
    }
    a.processed += processed;
    a.rate_limited += limited;
    debug!(target: "net", "Received addr: {n} addresses ({processed} processed, {limited} rate-limited) from peer={}", peer.who.id);
    let source = from_ip(peer.who.addr.ip());
    proto.addrman.add(&ok, &source, ADDR_TIME_PENALTY, now.unix);
    if n < MAX_ADDR_TO_SEND {
        a.getaddr_sent = false;
    }
    if peer.who.conn_type == ConnectionType::AddrFetch && n > 1 {
        out.disconnect(crate::base::peer::DisconnectReason::AddrFetchDone);
    }
}

/// A `getaddr`: answered once per inbound connection, from the cache.
pub fn on_getaddr(proto: &mut Protocol, peer: &mut Peer, now: Now) {
    if !peer.who.conn_type.is_inbound() {
        debug!(target: "net", "Ignoring \"getaddr\" from {} connection. peer={}", peer.who.conn_type, peer.who.id);
        return;
    }
    setup_relay(peer);
    if peer.addrs.getaddr_recvd {
        debug!(target: "net", "Ignoring repeated \"getaddr\". peer={}", peer.who.id);
        return;
    }
    peer.addrs.getaddr_recvd = true;
    peer.addrs.to_send.clear();
    let addrs = if peer.who.permissions.has(Permissions::ADDR) {
        proto.addrman.get_addr(MAX_ADDR_TO_SEND, MAX_PCT_ADDR_TO_SEND, None, true, now.unix)
    } else {
        cached_addresses(proto, now)
    };
    for a in addrs {
        push_address(peer, a, &mut proto.rng);
    }
}

/// Core's `GetAddresses` cache: refreshed every 21–27 hours, so repeated `getaddr`s learn
/// nothing new about the address book.
fn cached_addresses(proto: &mut Protocol, now: Now) -> Vec<AddrEntry> {
    let expired = proto.addr_node.cache_expires.is_none_or(|t| now.mono >= t);
    if expired {
        proto.addr_node.cache = proto.addrman.get_addr(MAX_ADDR_TO_SEND, MAX_PCT_ADDR_TO_SEND, None, true, now.unix);
        let jitter = Duration::from_secs(proto.rng.random_range(0..=CACHE_JITTER_SECS));
        proto.addr_node.cache_expires = Some(now.mono + CACHE_BASE + jitter);
    }
    proto.addr_node.cache.clone()
}

/// Core's `PushAddress`: queue `a` for `peer` unless it knows it or cannot take it; a full
/// queue has a random entry replaced.
pub fn push_address(peer: &mut Peer, a: AddrEntry, rng: &mut StdRng) {
    if !compatible(peer, &a) || unusable_network(&a.addr) || peer.addrs.is_known(&a) {
        return;
    }
    let q = &mut peer.addrs.to_send;
    if q.len() >= MAX_ADDR_TO_SEND {
        let i = rng.random_range(0..q.len());
        if let Some(slot) = q.get_mut(i) {
            *slot = a;
        }
    } else {
        q.push(a);
    }
}

/// Core's `RelayAddress` choice: of the peers with addr relay (except the source), the 2
/// (1 for an unreachable address, half the time) with the highest keyed hash of the address,
/// the 24-hour window and their id, so the same peers are chosen for a day.
pub fn relay_targets(
    key: u64,
    a: &AddrEntry,
    reachable: bool,
    now_unix: i64,
    candidates: impl Iterator<Item = u64>,
) -> Vec<u64> {
    use std::hash::BuildHasher;
    // SipHash with fixed keys, made secret by mixing in `key` (Core: a SipHash randomizer).
    let hasher = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
    let addr_hash = hasher.hash_one((&a.addr, a.port));
    let window = (now_unix.max(0) as u64).wrapping_add(addr_hash) / ROTATE_ADDR_RELAY_DEST_INTERVAL;
    let keyed = |extra: u64| hasher.hash_one((key, addr_hash, window, extra));
    let n = if reachable || keyed(u64::MAX) & 1 == 1 { 2 } else { 1 };
    let mut scored: Vec<(u64, u64)> = candidates.map(|id| (keyed(id), id)).collect();
    scored.sort_unstable_by(|x, y| y.cmp(x));
    scored.into_iter().take(n).map(|(_, id)| id).collect()
}

/// The self-announcement part of Core's `MaybeSendAddr`, for a peer with address relay while we
/// listen: out of initial block download, when the peer's timer (mean
/// [`AVG_LOCAL_ADDRESS_BROADCAST_INTERVAL`], first at once) runs out, our address for this
/// peer ([`LocalAddrs::addr_for_peer`]) goes out — the first time in a message of its own (so a
/// receiver's rate limit, which starts with one token, does not drop it), later queued with
/// the other addresses after the peer's known-address filter is reset.
pub fn maybe_send_local_addr(
    local: &LocalAddrs,
    in_ibd: bool,
    services: ServiceFlags,
    peer: &mut Peer,
    now: Now,
    rng: &mut StdRng,
    out: &mut impl Outbox,
) {
    if !peer.addrs.relay_enabled || !local.listening() || in_ibd {
        return;
    }
    if peer.addrs.next_local_send.is_some_and(|t| now.mono <= t) {
        return;
    }
    let first = peer.addrs.next_local_send.is_none();
    if !first {
        if let Some(f) = peer.addrs.known.as_deref_mut() {
            f.reset(rand::random());
        }
    }
    let inbound = peer.who.conn_type.is_inbound();
    let onion_peer = peer.who.net == crate::base::netaddr::NetKind::Onion;
    if let Some((addr, port)) =
        local.advertised_for(peer.who.addr.ip(), onion_peer, inbound, peer.handshake.addr_local, rng)
    {
        let entry = AddrEntry::new(addr, port, services, now.unix);
        debug!(target: "net", "Advertising address {} to peer={}", addr_port_to_string(&entry.addr, port), peer.who.id);
        if !first {
            push_address(peer, entry, rng);
        } else if compatible(peer, &entry) {
            send_addr_message(peer, vec![entry], out);
        }
    }
    let mean = AVG_LOCAL_ADDRESS_BROADCAST_INTERVAL.as_secs_f64();
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    peer.addrs.next_local_send = Some(now.mono + Duration::from_secs_f64(-u.ln() * mean));
}

/// Core's `MaybeSendAddr`: on a Poisson timer (mean 30 s), the queued addresses the peer does
/// not know yet, as `addrv2` or `addr`.
pub fn maybe_send_addrs(peer: &mut Peer, now: Now, rng: &mut StdRng, out: &mut impl Outbox) {
    if !peer.addrs.relay_enabled {
        return;
    }
    if peer.addrs.next_send.is_some_and(|t| now.mono <= t) {
        return;
    }
    let mean = AVG_ADDRESS_BROADCAST_INTERVAL.as_secs_f64();
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    peer.addrs.next_send = Some(now.mono + Duration::from_secs_f64(-u.ln() * mean));
    let a = &mut peer.addrs;
    let mut queued = std::mem::take(&mut a.to_send);
    queued.retain(|e| a.mark_known(e));
    if queued.is_empty() {
        return;
    }
    send_addr_message(peer, queued, out);
}

/// `queued` as one `addrv2` (to peers that sent `sendaddrv2`) or `addr` message.
fn send_addr_message(peer: &Peer, queued: Vec<AddrEntry>, out: &mut impl Outbox) {
    if peer.handshake.wants_addrv2 {
        let msgs = queued
            .into_iter()
            .map(|e| AddrV2Message {
                time: e.time.clamp(0, i64::from(u32::MAX)) as u32,
                services: e.services,
                addr: e.addr,
                port: e.port,
            })
            .collect();
        out.send(&NetworkMessage::AddrV2(msgs));
    } else {
        let v1 = queued
            .iter()
            .filter_map(|e| {
                Some((e.time.clamp(0, i64::from(u32::MAX)) as u32, Address::new(&e.socket_addr()?, e.services)))
            })
            .collect();
        out.send(&NetworkMessage::Addr(v1));
    }
}

/// `addr` (v1) entries as address-book entries (those that are not IP addresses are dropped).
pub fn from_v1(list: &[(u32, Address)]) -> Vec<AddrEntry> {
    list.iter()
        .filter_map(|(t, a)| a.socket_addr().ok().map(|sa| AddrEntry::from_socket(sa, a.services, i64::from(*t))))
        .collect()
}

/// `addrv2` entries as address-book entries.
pub fn from_v2(list: &[AddrV2Message]) -> Vec<AddrEntry> {
    list.iter().map(|m| AddrEntry::new(m.addr.clone(), m.port, m.services, i64::from(m.time))).collect()
}

#[cfg(test)]
#[path = "addr_tests.rs"]
mod tests;
