//! Fuzzes the protocol (`protocol::Protocol`, I/O-free) with sequences of connections,
//! messages, time steps, timer runs and disconnects, the way the message handler drives it,
//! on regtest with fake time.
//!
//! Input: byte 0 sets up the node (minimum chain work of zero or of a 4,500-header chain, so
//! that low-work headers go through presync; an empty tree or 1,500 headers already accepted).
//! Then up to 64 steps: connect a peer (connection type, one of a few addresses, `noban`/`addr`
//! permissions), deliver a message to a peer (`version` with chosen fields or our own nonce,
//! `verack`, `sendheaders`, `wtxidrelay`, `sendaddrv2`, `ping`, `pong` echoing our nonce or
//! not, `getaddr`, `addr`/`addrv2` of up to 1,100 entries of every network, `headers` from one
//! of two regtest chains mined once per process (a 6,000-header chain and a 2,500-header fork
//! off it at height 1,000) — a slice, the answer an honest peer gives to our last `getheaders`
//! (so presync and its redownload complete), mutated headers (re-mined, so they reach the
//! contextual checks), freshly mined ones — `getheaders` with chosen locators, `inv`, or any raw
//! payload of a handled type through the real payload decoder), run one peer's or every
//! peer's `send_messages`, advance the clock, a full handshake in one step, or a disconnect.
//!
//! The harness does what the message handler does with the outbox: a disconnected peer is
//! forgotten (`remove_peer`) and never called again; a discouraged address loses every other
//! connection and is filtered from received addresses; fresh addresses are relayed to the
//! targets `addr::relay_targets` picks.
//!
//! Checks: no panic; nothing is sent after a disconnect within a call; no `version` or
//! `verack` is sent twice to a peer; nothing but `version` before the peer's `version`, and
//! nothing but the handshake's messages before its `verack`; a `pong` only echoes the `ping`
//! just received; messages stay within Core's size limits (headers ≤ 2,000, addr ≤ 1,000, a
//! locator ≤ 101, inv ≤ 50,000); the count of sync peers equals the peers with a sync started;
//! each peer's address queue stays ≤ 1,000 and a presync's memory bounded; the header tree's
//! invariants hold at the end (links, heights, work, best chain; hashes and proof of work are
//! `header_accept`'s to check).

#![no_main]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::{AddrV2, AddrV2Message, Address};
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::pow::Work;
use bitcoin::{BlockHash, Txid};
use btcloop::engine::addrman::AddrEntry;
use btcloop::engine::chain::accept::Chain;
use btcloop::engine::chain::params::ChainParams;
use btcloop::base::chainparams::Network;
use btcloop::base::message::{decode_payload, encode_payload};
use btcloop::base::peer::{ConnectionType, DisconnectReason, PeerId, PeerIdentity};
use btcloop::engine::policy::permissions::Permissions;
use btcloop::engine::protocol::{LinkTimes, Now, Outbox, Peer, Protocol, ProtocolParams, ProtocolParts, addr};
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use rand::rngs::StdRng;

mod common;
use common::{Reader, check_tree_with, mine_spaced, mutate, remine};

/// Most steps per input.
const MAX_STEPS: usize = 64;
/// Most live peers.
const MAX_PEERS: usize = 8;
/// Length of the main reference chain (after genesis).
const MAIN_LEN: usize = 6000;
/// Height at which the fork leaves the main chain, and its length.
const FORK_AT: usize = 1000;
const FORK_LEN: usize = 2500;
/// Height whose chain work is the minimum chain work in the presync set-ups.
const MIN_WORK_HEIGHT: usize = 4500;
/// Headers accepted before the run in the "synced a bit" set-ups.
const PRELOADED: usize = 1500;
/// Largest presync state we tolerate per peer.
const MAX_PRESYNC_BYTES: usize = 4 << 20;
/// The message types `message` generates (and feeds as raw payloads).
const GENERATED: [&str; 13] = [
    "version",
    "verack",
    "wtxidrelay",
    "sendaddrv2",
    "sendheaders",
    "ping",
    "pong",
    "headers",
    "getheaders",
    "inv",
    "addr",
    "addrv2",
    "getaddr",
];
/// Longest fake run (so `Instant` arithmetic stays far from overflow).
const MAX_ELAPSED: Duration = Duration::from_secs(90 * 24 * 60 * 60);

/// A reference chain from genesis (index = height) with a hash → height map.
struct RefChain {
    headers: Vec<Header>,
    heights: HashMap<BlockHash, usize>,
}

impl RefChain {
    fn new(headers: Vec<Header>) -> Self {
        let heights = headers.iter().enumerate().map(|(i, h)| (h.block_hash(), i)).collect();
        RefChain { headers, heights }
    }

    /// What an honest peer answers to `locator`: up to 2,000 headers after the first hash of
    /// the locator it knows (after genesis if none).
    fn answer(&self, locator: &[BlockHash]) -> &[Header] {
        let from = locator.iter().find_map(|h| self.heights.get(h)).copied().unwrap_or(0) + 1;
        let from = from.min(self.headers.len());
        &self.headers[from..(from + 2000).min(self.headers.len())]
    }
}

struct Refs {
    main: RefChain,
    fork: RefChain,
    min_work: Work,
}

fn refs() -> &'static Refs {
    static R: OnceLock<Refs> = OnceLock::new();
    R.get_or_init(|| {
        let params = ChainParams::new(Network::Regtest);
        let mut main = vec![params.genesis];
        main.extend(mine_spaced(&params, &params.genesis, MAIN_LEN, 600, 11));
        let mut fork = main[..=FORK_AT].to_vec();
        fork.extend(mine_spaced(&params, &main[FORK_AT], FORK_LEN, 590, 22));
        let mut chain = Chain::in_memory(params, Work::from_be_bytes([0; 32]));
        assert_eq!(chain.accept(&main[1..=MIN_WORK_HEIGHT], i64::MAX / 2).error, None);
        let min_work = chain.tree().tip().chain_work;
        Refs { main: RefChain::new(main), fork: RefChain::new(fork), min_work }
    })
}

/// `BTCLOOP_FUZZ_TRACE=1` prints each message and what the protocol did (to read a seed or a
/// crash).
fn trace() -> bool {
    static T: OnceLock<bool> = OnceLock::new();
    *T.get_or_init(|| std::env::var_os("BTCLOOP_FUZZ_TRACE").is_some())
}

/// The discouraged addresses, shared by the protocol's filter and the harness.
#[derive(Clone, Default)]
struct Bans(Arc<Mutex<HashSet<IpAddr>>>);

impl addr::AddrFilter for Bans {
    fn is_banned_or_discouraged(&self, ip: IpAddr, _: i64) -> bool {
        self.0.lock().map(|s| s.contains(&ip)).unwrap_or(false)
    }
}

/// What one protocol call produced; like the message handler's `PeerOut` it keeps everything,
/// and also notes anything sent after a disconnect.
#[derive(Default)]
struct Out {
    sent: Vec<NetworkMessage>,
    disconnect: Option<DisconnectReason>,
    sent_after_disconnect: Vec<&'static str>,
    discouraged: Vec<IpAddr>,
    relayed: Vec<(AddrEntry, bool)>,
}

impl Outbox for Out {
    fn send(&mut self, msg: &NetworkMessage) {
        if self.disconnect.is_some() {
            self.sent_after_disconnect.push(msg.cmd());
        }
        self.sent.push(msg.clone());
    }
    fn send_headers<'h>(&mut self, headers: impl ExactSizeIterator<Item = &'h Header>) {
        self.send(&NetworkMessage::Headers(headers.copied().collect()));
    }
    fn disconnect(&mut self, reason: DisconnectReason) {
        self.disconnect.get_or_insert(reason);
    }
    fn is_disconnecting(&self) -> bool {
        self.disconnect.is_some()
    }
    fn discourage(&mut self, ip: IpAddr) {
        self.discouraged.push(ip);
    }
    fn relay_addr(&mut self, addr: AddrEntry, reachable: bool) {
        self.relayed.push((addr, reachable));
    }
}

/// One live connection as the harness sees it.
struct Slot {
    peer: Peer,
    link: LinkTimes,
    versions_sent: u32,
    veracks_sent: u32,
    /// Our last `getheaders` locator to this peer.
    last_locator: Vec<BlockHash>,
}

struct World {
    proto: Protocol,
    peers: BTreeMap<PeerId, Slot>,
    next_id: PeerId,
    t0: Instant,
    elapsed: Duration,
    unix0: i64,
    bans: Bans,
    relay_rng: StdRng,
}

/// The addresses peers connect from: loopback (never discouraged), private, two in one
/// network group, others, IPv6.
const PEER_IPS: [IpAddr; 8] = [
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)),
    IpAddr::V4(Ipv4Addr::new(1, 2, 9, 9)),
    IpAddr::V4(Ipv4Addr::new(8, 8, 4, 4)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

const CONN_TYPES: [ConnectionType; 6] = [
    ConnectionType::Inbound,
    ConnectionType::Manual,
    ConnectionType::OutboundFullRelay,
    ConnectionType::BlockRelayOnly,
    ConnectionType::Feeler,
    ConnectionType::AddrFetch,
];

impl World {
    fn new(r: &mut Reader) -> World {
        let refs = refs();
        let setup = r.u8();
        let min_work = if setup & 1 != 0 { refs.min_work } else { Work::from_be_bytes([0; 32]) };
        let params = ChainParams::new(Network::Regtest);
        let tip_time = i64::from(refs.main.headers[MAIN_LEN].time);
        let unix0 = tip_time + 3600 + i64::from(r.u16() as i16) * 60;
        let mut chain = Chain::in_memory(params, min_work);
        if setup & 2 != 0 {
            assert_eq!(chain.accept(&refs.main.headers[1..=PRELOADED], unix0).error, None);
        }
        let mut parts = ProtocolParts::seeded(
            ProtocolParams {
                user_agent: "/btcloop:fuzz/".into(),
                services: ServiceFlags::NONE,
                peer_timeout: Duration::from_secs(60),
                log_ips: false,
                blocks: false,
            },
            chain,
            r.u64(),
        );
        let bans = Bans::default();
        parts.bans = Box::new(bans.clone());
        let proto = Protocol::new(parts);
        World {
            proto,
            peers: BTreeMap::new(),
            next_id: 0,
            t0: Instant::now(),
            elapsed: Duration::ZERO,
            unix0,
            bans,
            relay_rng: StdRng::seed_from_u64(7),
        }
    }

    fn now(&self) -> Now {
        Now { mono: self.t0 + self.elapsed, unix: self.unix0 + self.elapsed.as_secs() as i64 }
    }

    fn pick(&self, r: &mut Reader) -> Option<PeerId> {
        if self.peers.is_empty() {
            return None;
        }
        let i = r.below(self.peers.len());
        self.peers.keys().nth(i).copied()
    }

    fn connect(&mut self, r: &mut Reader) {
        let conn = CONN_TYPES[r.below(CONN_TYPES.len())];
        let ip = PEER_IPS[r.below(PEER_IPS.len())];
        let port = r.u16();
        let perms = r.u8();
        if self.peers.len() >= MAX_PEERS {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        // Later flags win, as the assignments they replace did.
        let granted = if perms & 2 != 0 {
            Permissions::ADDR
        } else if perms & 1 != 0 {
            Permissions::NO_BAN
        } else {
            Permissions::NONE
        };
        let who = PeerIdentity::new(id, SocketAddr::new(ip, port), conn, self.now().mono).with_permissions(granted);
        let peer = self.proto.add_peer(who);
        let slot =
            Slot { peer, link: LinkTimes::default(), versions_sent: 0, veracks_sent: 0, last_locator: Vec::new() };
        self.peers.insert(id, slot);
    }

    /// Delivers `msg` to `id` and applies what the protocol said.
    fn deliver(&mut self, id: PeerId, msg: NetworkMessage) {
        if trace() {
            let what = match &msg {
                NetworkMessage::Headers(h) => format!("headers({})", h.len()),
                m => m.cmd().to_string(),
            };
            eprintln!("peer {id} -> {what}");
        }
        let now = self.now();
        let Some(slot) = self.peers.get_mut(&id) else { return };
        slot.link.last_recv = Some(now.mono);
        let ping = if let NetworkMessage::Ping(n) = msg { Some(n) } else { None };
        let mut out = Out::default();
        let (command, payload) = encode_payload(&msg);
        // What does not decode is dropped, as the message handler drops it.
        let _ = self.proto.process_message(&mut slot.peer, command, &payload, now.mono, now, &mut out);
        self.apply(id, out, ping);
    }

    fn send_messages(&mut self, id: PeerId) {
        let now = self.now();
        let Some(slot) = self.peers.get_mut(&id) else { return };
        let mut out = Out::default();
        self.proto.send_messages(&mut slot.peer, now, slot.link, &mut out);
        self.apply(id, out, None);
    }

    /// Checks one call's output and carries it out as the message handler would.
    fn apply(&mut self, id: PeerId, out: Out, ping: Option<u64>) {
        if trace() {
            let cmds: Vec<String> = out
                .sent
                .iter()
                .map(|m| match m {
                    NetworkMessage::Headers(h) => format!("headers({})", h.len()),
                    m => m.cmd().to_string(),
                })
                .collect();
            eprintln!("  peer {id} <- {cmds:?} disconnect {:?} tip {}", out.disconnect, self.proto.best_height());
        }
        assert!(
            out.sent_after_disconnect.is_empty(),
            "peer {id}: sent {:?} after disconnecting it ({:?})",
            out.sent_after_disconnect,
            out.disconnect
        );
        let now = self.now();
        let Some(slot) = self.peers.get_mut(&id) else { return };
        let hs = &slot.peer.handshake;
        for m in &out.sent {
            let cmd = m.cmd();
            if hs.remote.is_none() {
                assert!(cmd == "version" && !slot.peer.who.conn_type.is_inbound(), "peer {id}: {cmd} before its version");
            }
            if !hs.successfully_connected {
                assert!(
                    ["version", "wtxidrelay", "sendaddrv2", "verack", "getaddr"].contains(&cmd),
                    "peer {id}: {cmd} before its verack"
                );
            }
            match m {
                NetworkMessage::Version(_) => slot.versions_sent += 1,
                NetworkMessage::Verack => slot.veracks_sent += 1,
                NetworkMessage::Pong(n) => assert_eq!(Some(*n), ping, "peer {id}: pong that echoes no ping"),
                NetworkMessage::Headers(h) => assert!(h.len() <= 2000, "peer {id}: {} headers", h.len()),
                NetworkMessage::Addr(a) => assert!(a.len() <= addr::MAX_ADDR_TO_SEND),
                NetworkMessage::AddrV2(a) => assert!(a.len() <= addr::MAX_ADDR_TO_SEND),
                NetworkMessage::Inv(i) => assert!(i.len() <= 50_000),
                NetworkMessage::GetHeaders(g) => {
                    assert!(g.locator_hashes.len() <= 101, "peer {id}: locator of {}", g.locator_hashes.len());
                    slot.last_locator = g.locator_hashes.clone();
                }
                _ => {}
            }
        }
        assert!(slot.versions_sent <= 1, "peer {id}: version sent twice");
        assert!(slot.veracks_sent <= 1, "peer {id}: verack sent twice");
        if !out.sent.is_empty() {
            slot.link.last_send = Some(now.mono);
        }
        for (entry, reachable) in out.relayed {
            let candidates = self
                .peers
                .iter()
                .filter(|(pid, s)| **pid != id && s.peer.addrs.relay_enabled)
                .filter(|(_, s)| s.peer.handshake.wants_addrv2 || entry.socket_addr().is_some())
                .map(|(pid, _)| *pid);
            let targets = addr::relay_targets(self.proto.relay_key(), &entry, reachable, now.unix, candidates);
            assert!(targets.len() <= 2 && !targets.contains(&id));
            for t in targets {
                if let Some(s) = self.peers.get_mut(&t) {
                    addr::push_address(&mut s.peer, entry.clone(), &mut self.relay_rng);
                }
            }
        }
        for ip in out.discouraged {
            if let Ok(mut set) = self.bans.0.lock() {
                set.insert(ip);
            }
            let same: Vec<PeerId> =
                self.peers.iter().filter(|(_, s)| s.peer.who.addr.ip() == ip).map(|(p, _)| *p).collect();
            for p in same {
                self.close(p);
            }
        }
        if out.disconnect.is_some() {
            self.close(id);
        }
    }

    fn close(&mut self, id: PeerId) {
        if let Some(slot) = self.peers.remove(&id) {
            let unix = self.now().unix;
            self.proto.remove_peer(&slot.peer, unix);
        }
    }

    fn advance(&mut self, d: Duration) {
        self.elapsed = (self.elapsed + d).min(MAX_ELAPSED);
    }

    fn check(&self) {
        let started = self.peers.values().filter(|s| s.peer.headers.sync_started).count();
        assert_eq!(self.proto.headers().sync_peers, started, "sync peer count");
        for (id, s) in &self.peers {
            assert!(s.peer.addrs.to_send.len() <= addr::MAX_ADDR_TO_SEND, "peer {id}: address queue");
            if let Some(p) = &s.peer.headers.presync {
                assert!(p.memory_usage() <= MAX_PRESYNC_BYTES, "peer {id}: presync holds {} bytes", p.memory_usage());
            }
        }
    }
}

fn services(r: &mut Reader) -> ServiceFlags {
    match r.u8() % 5 {
        0 => ServiceFlags::NONE,
        1 => ServiceFlags::NETWORK,
        2 => ServiceFlags::NETWORK | ServiceFlags::WITNESS,
        3 => ServiceFlags::NETWORK_LIMITED | ServiceFlags::WITNESS,
        _ => ServiceFlags::from(r.u64()),
    }
}

fn ip_v4(r: &mut Reader) -> Ipv4Addr {
    match r.u8() % 4 {
        0 => Ipv4Addr::new(127, 0, 0, 1),
        1 => Ipv4Addr::new(10, 1, 2, 3),
        _ => Ipv4Addr::from(r.u32()),
    }
}

fn addr_v2(r: &mut Reader) -> AddrV2 {
    match r.u8() % 8 {
        0..=2 => AddrV2::Ipv4(ip_v4(r)),
        3 => AddrV2::Ipv6(Ipv6Addr::from(r.array::<16>())),
        4 => AddrV2::TorV3(r.array()),
        5 => AddrV2::I2p(r.array()),
        6 => {
            let mut b = r.array::<16>();
            b[0] = 0xfc;
            AddrV2::Cjdns(Ipv6Addr::from(b))
        }
        _ => AddrV2::Ipv6(ip_v4(r).to_ipv6_mapped()),
    }
}

/// An address timestamp: recent, old, in the future, or raw.
fn addr_time(r: &mut Reader, now: Now) -> u32 {
    match r.u8() % 4 {
        0 => (now.unix - i64::from(r.u16())) as u32,
        1 => (now.unix - 30 * 24 * 3600) as u32,
        2 => (now.unix + 3600) as u32,
        _ => r.u32(),
    }
}

fn addr_count(r: &mut Reader) -> usize {
    if r.u8() & 0x80 != 0 { r.below(1100) } else { r.below(12) }
}

fn version_msg(r: &mut Reader, w: &World) -> NetworkMessage {
    const VERSIONS: [i32; 9] = [70016, 70015, 70012, 70002, 60001, 31800, 31799, 0, -1];
    let v = r.u8();
    let version = VERSIONS.get(usize::from(v) % 10).copied().unwrap_or_else(|| r.i32());
    let services = services(r);
    let nonce = match r.u8() % 4 {
        0 => 0,
        // One of our own nonces: a connection to ourselves.
        1 => w.peers.values().nth(r.below(w.peers.len().max(1))).map_or(0, |s| s.peer.handshake.local_nonce),
        _ => r.u64(),
    };
    let timestamp = w.now().unix + i64::from(r.u16() as i16) * 64;
    let ua_len = r.below(300);
    let user_agent = String::from_utf8_lossy(r.bytes(ua_len)).into_owned();
    let receiver = Address::new(&SocketAddr::new(IpAddr::V4(ip_v4(r)), 8333), ServiceFlags::NONE);
    let sender = Address::new(&SocketAddr::new(IpAddr::V4(ip_v4(r)), 8333), ServiceFlags::NONE);
    NetworkMessage::Version(VersionMessage {
        version: version as u32,
        services,
        timestamp,
        receiver,
        sender,
        nonce,
        user_agent,
        start_height: r.i32(),
        relay: r.bool(),
    })
}

/// A reference chain: the main one, or the fork.
fn ref_chain(r: &mut Reader) -> &'static RefChain {
    if r.bool() { &refs().fork } else { &refs().main }
}

/// A block hash: one of either chain, or made up.
fn some_hash(r: &mut Reader) -> BlockHash {
    match r.u8() % 3 {
        0 => BlockHash::from_byte_array(r.array()),
        _ => {
            let c = ref_chain(r);
            c.headers[r.below(c.headers.len())].block_hash()
        }
    }
}

/// Mutates a few headers of `batch`, re-mining and re-linking on request.
fn mutate_batch(r: &mut Reader, batch: &mut [Header]) {
    let params = ChainParams::new(Network::Regtest);
    for _ in 0..=r.below(3) {
        if batch.is_empty() {
            return;
        }
        let i = r.below(batch.len());
        mutate(&mut batch[i], r.u8(), r.u32());
        if r.bool() {
            remine(&params, &mut batch[i]);
            for j in i + 1..batch.len() {
                batch[j].prev_blockhash = batch[j - 1].block_hash();
                remine(&params, &mut batch[j]);
            }
        }
    }
}

fn headers_msg(r: &mut Reader, w: &World, id: PeerId) -> NetworkMessage {
    let mut batch = match r.u8() % 4 {
        // A slice of a reference chain (2,000 exactly half the time).
        0 => {
            let c = ref_chain(r);
            let start = 1 + r.below(c.headers.len() - 1);
            let len = if r.bool() { 2000 } else { r.below(2001) };
            c.headers[start..(start + len).min(c.headers.len())].to_vec()
        }
        // An honest answer to our last getheaders.
        1 | 2 => {
            let locator = w.peers.get(&id).map(|s| s.last_locator.as_slice()).unwrap_or_default();
            ref_chain(r).answer(locator).to_vec()
        }
        // Fresh headers on an entry of our tree, with times near the clock.
        _ => {
            let tree = w.proto.headers().chain.tree();
            let parent = tree.entries()[r.below(tree.len())].header;
            let n = 1 + r.below(10);
            let params = ChainParams::new(Network::Regtest);
            let mut out = Vec::with_capacity(n);
            let mut prev = parent;
            for i in 0..n {
                let mut h =
                    common::child(&prev, 0x2000_0000, prev.time.wrapping_add(u32::from(r.u8())), r.u64() ^ i as u64);
                remine(&params, &mut h);
                out.push(h);
                prev = h;
            }
            out
        }
    };
    if r.u8() & 0x0f == 0 {
        mutate_batch(r, &mut batch);
    }
    NetworkMessage::Headers(batch)
}

fn message(r: &mut Reader, w: &World, id: PeerId) -> Option<NetworkMessage> {
    let now = w.now();
    Some(match r.u8() % 17 {
        0 => version_msg(r, w),
        1 => NetworkMessage::Verack,
        2 => NetworkMessage::SendHeaders,
        3 => NetworkMessage::WtxidRelay,
        4 => NetworkMessage::SendAddrV2,
        5 => NetworkMessage::Ping(r.u64()),
        6 => {
            let ours = w.peers.get(&id).map_or(0, |s| s.peer.ping.nonce_sent);
            NetworkMessage::Pong(if r.bool() { ours } else { r.u64() })
        }
        7 => NetworkMessage::GetAddr,
        8 => {
            let n = addr_count(r);
            let list = (0..n)
                .map(|_| {
                    let t = addr_time(r, now);
                    let ip = match addr_v2(r) {
                        AddrV2::Ipv4(v4) => IpAddr::V4(v4),
                        AddrV2::Ipv6(v6) | AddrV2::Cjdns(v6) => IpAddr::V6(v6),
                        _ => IpAddr::V4(ip_v4(r)),
                    };
                    (t, Address::new(&SocketAddr::new(ip, r.u16()), services(r)))
                })
                .collect();
            NetworkMessage::Addr(list)
        }
        9 => {
            let n = addr_count(r);
            let list = (0..n)
                .map(|_| AddrV2Message {
                    time: addr_time(r, now),
                    services: services(r),
                    addr: addr_v2(r),
                    port: r.u16(),
                })
                .collect();
            NetworkMessage::AddrV2(list)
        }
        10..=12 => headers_msg(r, w, id),
        13 => {
            let n = r.below(110);
            let locator = (0..n).map(|_| some_hash(r)).collect();
            let stop = if r.bool() { some_hash(r) } else { BlockHash::all_zeros() };
            NetworkMessage::GetHeaders(GetHeadersMessage { version: 70016, locator_hashes: locator, stop_hash: stop })
        }
        14 => {
            let n = if r.u8() == 0xff { 50_001 } else { r.below(20) };
            let inv = (0..n)
                .map(|_| match r.u8() % 4 {
                    0 => Inventory::Block(some_hash(r)),
                    1 => Inventory::WitnessBlock(some_hash(r)),
                    2 => Inventory::CompactBlock(some_hash(r)),
                    _ => Inventory::Transaction(Txid::from_byte_array(r.array())),
                })
                .collect();
            NetworkMessage::Inv(inv)
        }
        _ => {
            // Raw bytes of a handled type, through the real payload decoder; the message
            // handler drops what does not decode.
            let command = GENERATED[r.below(GENERATED.len())];
            let len = r.below(1024);
            return decode_payload(command, r.bytes(len)).ok();
        }
    })
}

/// A complete handshake from the peer's side: `version` (current), `sendheaders` (half the
/// time), `sendaddrv2`, `verack`.
fn handshake(w: &mut World, r: &mut Reader, id: PeerId) {
    let nonce = r.u64() | 1;
    let unix = w.now().unix;
    let empty = Address::new(&SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0), ServiceFlags::NONE);
    let v = VersionMessage {
        version: 70016,
        services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
        timestamp: unix,
        receiver: empty.clone(),
        sender: empty,
        nonce,
        user_agent: "/Satoshi:28.0.0/".into(),
        start_height: MAIN_LEN as i32,
        relay: true,
    };
    w.send_messages(id);
    w.deliver(id, NetworkMessage::Version(v));
    if r.bool() {
        w.deliver(id, NetworkMessage::SendHeaders);
    }
    w.deliver(id, NetworkMessage::SendAddrV2);
    w.deliver(id, NetworkMessage::Verack);
}

fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let mut w = World::new(&mut r);
    for _ in 0..MAX_STEPS {
        if r.is_empty() {
            break;
        }
        match r.u8() % 12 {
            0 => w.connect(&mut r),
            1..=5 => {
                if let Some(id) = w.pick(&mut r)
                    && let Some(msg) = message(&mut r, &w, id)
                {
                    w.deliver(id, msg);
                }
            }
            6 => {
                let d = match r.u8() % 4 {
                    0 => Duration::from_millis(u64::from(r.u16())),
                    1 => Duration::from_secs(u64::from(r.u16())),
                    2 => Duration::from_secs(20 * 60 + 1),
                    _ => Duration::from_secs(u64::from(r.u16()) * 60),
                };
                w.advance(d);
            }
            7 => {
                if let Some(id) = w.pick(&mut r) {
                    w.send_messages(id);
                }
            }
            8 => {
                let ids: Vec<PeerId> = w.peers.keys().copied().collect();
                for id in ids {
                    w.send_messages(id);
                }
            }
            9 => {
                if let Some(id) = w.pick(&mut r) {
                    w.close(id);
                }
            }
            _ => {
                if let Some(id) = w.pick(&mut r) {
                    handshake(&mut w, &mut r, id);
                }
            }
        }
        w.check();
    }
    let chain = &w.proto.headers().chain;
    check_tree_with(chain.tree(), chain.params(), false);
    let ids: Vec<PeerId> = w.peers.keys().copied().collect();
    for id in ids {
        w.close(id);
    }
    assert_eq!(w.proto.headers().sync_peers, 0, "sync peers left after every peer closed");
}

fuzz_target!(|data: &[u8]| run(data));
