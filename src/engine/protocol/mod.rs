//! Core's `PeerManager`, I/O-free: each peer's protocol state and the node-wide state the
//! sub-protocols share. `process_message` is the one place that says which message types are
//! handled: a `match` on the type whose arms decode their payload and call the module that owns
//! it (any other type is not decoded at all); `send_messages` runs the timers. Both take the
//! time as an argument and put what to send, or whom to disconnect, into an [`Outbox`].

pub mod addr;
pub mod blocks;
pub mod cmpct;
pub mod handshake;
pub mod headers;
pub mod ping;
pub mod rolling_bloom;
pub mod timeouts;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::message::NetworkMessage;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tracing::debug;

use crate::base::message::{self as wire, PayloadError};
use crate::base::peer::{ConnectionType, DisconnectReason, PeerIdentity};
use crate::engine::addrman::{AddrMan, NetGroupRule};
use crate::engine::chain::accept::Chain;
use crate::engine::policy::local::LocalAddrs;
use crate::engine::policy::permissions::Permissions;

pub use handshake::Handshake;
pub use headers::{HeadersNode, HeadersPeer};
pub use ping::PingState;

/// Where protocol logic puts its decisions.
pub trait Outbox {
    /// Queue `msg` for the peer.
    fn send(&mut self, msg: &NetworkMessage);
    /// Queue a `headers` message holding `headers` (no intermediate vector: the serving path).
    fn send_headers<'h>(&mut self, headers: impl ExactSizeIterator<Item = &'h bitcoin::block::Header>);
    /// Disconnect the peer for `reason` (nothing more is sent to it).
    fn disconnect(&mut self, reason: DisconnectReason);
    /// Whether a disconnect was asked for in this call (`SendMessages` stops there).
    fn is_disconnecting(&self) -> bool;
    /// Discourage the peer's address: every connection from it is dropped and inbound ones are
    /// refused while inbound slots are nearly full.
    fn discourage(&mut self, ip: std::net::IpAddr);
    /// Relay a fresh address announcement to 1–2 other peers (the peer manager, which sees
    /// every peer, chooses them with [`addr::relay_targets`]).
    fn relay_addr(&mut self, addr: crate::engine::addrman::AddrEntry, reachable: bool);
    /// Queue a message of type `command` whose payload is already serialized (a block read
    /// from disk), with its checksum when the caller has it. By default it is decoded and
    /// sent as a message (test outboxes); the daemon copies the bytes.
    fn send_payload(&mut self, command: &'static str, payload: &[u8], checksum: Option<[u8; 4]>) {
        let _ = checksum;
        if let Ok(msg) = crate::base::message::decode_payload(command, payload) {
            self.send(&msg);
        }
    }
    /// Whether the peer's send queue is over its limit (Core's `fPauseSend`): block serving
    /// waits until it drains.
    fn send_paused(&self) -> bool {
        false
    }
    /// The connection's transport as Core names it (`v1`, `v2`), for the connect log line.
    fn transport(&self) -> &'static str {
        "v1"
    }
}

/// The current time, as the thread that calls the protocol read it.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    /// Monotonic time, for timers.
    pub mono: Instant,
    /// Seconds since the Unix epoch, for the `version` timestamp.
    pub unix: i64,
}

/// When bytes last crossed the peer's socket (Core's `m_last_send` / `m_last_recv`).
#[derive(Clone, Copy, Debug, Default)]
pub struct LinkTimes {
    /// Last write, if any.
    pub last_send: Option<Instant>,
    /// Last read, if any.
    pub last_recv: Option<Instant>,
}

/// Node-wide protocol settings.
#[derive(Clone, Debug)]
pub struct ProtocolParams {
    /// Our user agent (BIP14).
    pub user_agent: String,
    /// Services we advertise: only what the node really provides.
    pub services: ServiceFlags,
    /// Core's `-peertimeout`.
    pub peer_timeout: Duration,
    /// Show peer addresses in log lines.
    pub log_ips: bool,
    /// The node downloads, validates (on the validation thread), stores and serves blocks.
    /// Without (the simulator, protocol tests) the best header is the tip and no block is
    /// asked for or served.
    pub blocks: bool,
}

/// One peer's protocol state, owned by the peer manager (no locks).
#[derive(Debug)]
pub struct Peer {
    /// What is fixed about the connection (id, address, type, permissions, when it opened),
    /// shared with the threads that made it.
    pub who: Arc<PeerIdentity>,
    /// Version handshake state.
    pub handshake: Handshake,
    /// Ping state.
    pub ping: PingState,
    /// Headers sync state.
    pub headers: HeadersPeer,
    /// Address relay state.
    pub addrs: addr::AddrPeer,
    /// Block serving state.
    pub blocks: blocks::BlocksPeer,
    /// Compact-block state.
    pub cmpct: cmpct::CmpctPeer,
    /// The test-only loopback rule is on: a misbehaving `127.x` peer is discouraged as a
    /// remote one would be (Core spares local peers).
    pub loopback_is_remote: bool,
}

impl Peer {
    /// `peer=N` (with the address under `--logips`), for log lines.
    pub fn label(&self, log_ips: bool) -> String {
        self.who.label(log_ips)
    }
}

#[cfg(test)]
impl Peer {
    /// Tests: the peer as if it had connected with another identity (`change` edits a copy; the
    /// network follows the address). A real connection's identity never changes.
    pub(crate) fn reidentify(&mut self, change: impl FnOnce(&mut PeerIdentity)) {
        let mut who = PeerIdentity::clone(&self.who);
        change(&mut who);
        who.net = crate::base::netaddr::net_kind(who.addr.ip());
        self.who = Arc::new(who);
    }
}

/// State shared by all peers' protocol logic. Built once from its real parts
/// ([`ProtocolParts`]); its state is private, read and changed through the methods below.
pub struct Protocol {
    /// Settings.
    params: ProtocolParams,
    /// The header chain and the node's sync state.
    headers: HeadersNode,
    /// Block download, hand-off to the validation thread, serving.
    blocks: blocks::BlocksNode,
    /// Compact blocks: high-bandwidth peers and the most recent block.
    cmpct: cmpct::CmpctNode,
    /// The address book (Core's `AddrMan`).
    addrman: AddrMan,
    /// The `getaddr` answer cache.
    addr_node: addr::AddrNode,
    /// Secret key of the address-relay target choice.
    relay_key: u64,
    /// Our own addresses (Core's `mapLocalHost`), advertised to peers.
    local: LocalAddrs,
    /// Which addresses in received `addr` messages are banned or discouraged.
    bans: Box<dyn addr::AddrFilter>,
    /// Nonces of our outbound `version`s, to detect connecting to ourselves.
    local_nonces: HashSet<u64>,
    rng: StdRng,
}

/// What a [`Protocol`] is built from, each part with its real value (the daemon's address book
/// loaded from `peers.dat`, its local addresses, its ban lists, `--maxtipage`).
pub struct ProtocolParts {
    /// Settings.
    pub params: ProtocolParams,
    /// The header chain.
    pub chain: Chain,
    /// `--maxtipage` in seconds (Core's `max_tip_age`).
    pub max_tip_age: i64,
    /// The address book.
    pub addrman: AddrMan,
    /// Our own addresses (Core's `mapLocalHost`).
    pub local: LocalAddrs,
    /// Which addresses in received `addr` messages are banned or discouraged.
    pub bans: Box<dyn addr::AddrFilter>,
    /// The protocol's randomness: the relay key, `version` and `ping` nonces, send timers.
    pub rng: StdRng,
}

impl ProtocolParts {
    /// Deterministic parts for tests, fuzzing and the simulator: the randomness seeded with
    /// `seed`, an empty address book keyed from it, no local addresses, no bans, Core's
    /// default maximum tip age.
    pub fn seeded(params: ProtocolParams, chain: Chain, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let addrman = AddrMan::new(rng.random(), rng.random(), NetGroupRule::Core);
        Self::with_book(params, chain, rng, addrman)
    }

    /// [`ProtocolParts::seeded`] with the address book `addrman` (a restarted simulated node's):
    /// the seed's stream is the same as without it (the two draws that would have keyed an
    /// empty book are skipped), so a seed gives the same relay key and nonces either way.
    pub fn seeded_with_book(params: ProtocolParams, chain: Chain, seed: u64, addrman: AddrMan) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let _: ([u8; 32], u64) = (rng.random(), rng.random());
        Self::with_book(params, chain, rng, addrman)
    }

    fn with_book(params: ProtocolParams, chain: Chain, rng: StdRng, addrman: AddrMan) -> Self {
        ProtocolParts {
            params,
            chain,
            max_tip_age: headers::DEFAULT_MAX_TIP_AGE,
            addrman,
            local: LocalAddrs::default(),
            bans: Box::new(addr::NoBans),
            rng,
        }
    }
}

impl Protocol {
    /// Protocol state from its parts.
    pub fn new(parts: ProtocolParts) -> Self {
        let ProtocolParts { params, chain, max_tip_age, addrman, local, bans, mut rng } = parts;
        let relay_key = rng.random();
        let blocks = params.blocks;
        let chain_params = &chain.params().clone();
        Protocol {
            params,
            headers: HeadersNode::new(chain, max_tip_age, blocks),
            blocks: blocks::BlocksNode::new(chain_params),
            cmpct: cmpct::CmpctNode::default(),
            addrman,
            addr_node: addr::AddrNode::default(),
            relay_key,
            local,
            bans,
            local_nonces: HashSet::new(),
            rng,
        }
    }

    /// A deterministic instance for tests: [`Protocol::new`] of [`ProtocolParts::seeded`].
    pub fn seeded(params: ProtocolParams, chain: Chain, seed: u64) -> Self {
        Self::new(ProtocolParts::seeded(params, chain, seed))
    }

    /// Settings.
    pub fn params(&self) -> &ProtocolParams {
        &self.params
    }

    /// The header chain and the node's sync state.
    pub fn headers(&self) -> &HeadersNode {
        &self.headers
    }

    /// The header chain and the node's sync state, to change (timers, the disk writer's hand-off).
    pub fn headers_mut(&mut self) -> &mut HeadersNode {
        &mut self.headers
    }

    /// Block download and serving state.
    pub fn blocks(&self) -> &blocks::BlocksNode {
        &self.blocks
    }

    /// The header chain and the blocks state together, to change (the validation thread's
    /// reports).
    pub fn headers_and_blocks_mut(&mut self) -> (&mut HeadersNode, &mut blocks::BlocksNode) {
        (&mut self.headers, &mut self.blocks)
    }

    /// The header chain, the blocks state and the compact-block state together, to change.
    pub fn block_parts_mut(&mut self) -> (&mut HeadersNode, &mut blocks::BlocksNode, &mut cmpct::CmpctNode) {
        (&mut self.headers, &mut self.blocks, &mut self.cmpct)
    }

    /// The address book.
    pub fn addrman(&self) -> &AddrMan {
        &self.addrman
    }

    /// The address book, to change.
    pub fn addrman_mut(&mut self) -> &mut AddrMan {
        &mut self.addrman
    }

    /// The address book to change while reading our own addresses (the outbound planner needs
    /// both at once).
    pub fn addrman_mut_and_local(&mut self) -> (&mut AddrMan, &LocalAddrs) {
        (&mut self.addrman, &self.local)
    }

    /// Our own addresses.
    pub fn local(&self) -> &LocalAddrs {
        &self.local
    }

    /// Our own addresses, to change (our onion service came or went).
    pub fn local_mut(&mut self) -> &mut LocalAddrs {
        &mut self.local
    }

    /// Secret key of the address-relay target choice ([`addr::relay_targets`]).
    pub fn relay_key(&self) -> u64 {
        self.relay_key
    }

    /// Height of our tip, announced in `version` (Core: the active chain's height).
    pub fn best_height(&self) -> i32 {
        self.headers.tip().height as i32
    }

    /// Core's `IsInitialBlockDownload` (latched): see [`HeadersNode::in_ibd`].
    pub fn in_ibd(&mut self, now: Now) -> bool {
        self.headers.in_ibd(now.unix)
    }

    /// State for a new connection.
    pub fn add_peer(&mut self, who: impl Into<Arc<PeerIdentity>>) -> Peer {
        let who = who.into();
        let local_nonce = handshake::new_nonce(&mut self.rng);
        if !who.conn_type.is_inbound() {
            self.local_nonces.insert(local_nonce);
        }
        self.blocks.add_peer(who.id);
        Peer {
            who,
            handshake: Handshake::new(local_nonce),
            ping: PingState::default(),
            headers: HeadersPeer::default(),
            addrs: addr::AddrPeer::default(),
            blocks: blocks::BlocksPeer::default(),
            cmpct: cmpct::CmpctPeer::default(),
            loopback_is_remote: self.addrman.rule() == NetGroupRule::LoopbackPerAddress,
        }
    }

    /// Forgets a closed connection (`unix`: the time now).
    pub fn remove_peer(&mut self, peer: &Peer, unix: i64) {
        self.local_nonces.remove(&peer.handshake.local_nonce);
        self.headers.remove_peer(peer);
        self.blocks.remove_peer(peer.who.id);
        self.cmpct.remove_peer(peer.who.id);
        if peer.handshake.successfully_connected {
            // Core's FinalizeNode: full outbound peers refresh their entry's time (not
            // block-relay-only ones, which would leak them, nor feelers).
            if matches!(
                peer.who.conn_type,
                ConnectionType::OutboundFullRelay | ConnectionType::Manual | ConnectionType::AddrFetch
            ) {
                let e = crate::engine::addrman::AddrEntry::from_socket(peer.who.addr, ServiceFlags::NONE, 0);
                self.addrman.connected(&e.addr, e.port, unix);
            }
        }
    }

    /// Core's `ProcessMessage`: one received message of type `command`, and the one place that
    /// says which types are handled. Each arm decodes its payload with the type's decoder
    /// (Core's tolerance, see [`crate::base::message`]) before looking at the peer's state, and
    /// calls the module that owns the type; a type with no arm is neither decoded nor an error.
    /// An undecodable payload of a handled type is the error (nothing was done for it).
    /// `received` is when the socket handler decoded the frame.
    #[expect(
        clippy::collapsible_match,
        reason = "every arm has one shape (decode, then ask the peer's state); a guard would send a refused type to `_`"
    )]
    pub fn process_message(
        &mut self,
        peer: &mut Peer,
        command: &str,
        payload: &[u8],
        received: Instant,
        now: Now,
        out: &mut impl Outbox,
    ) -> Result<(), PayloadError> {
        match command {
            "version" => handshake::on_version(self, peer, &wire::decode_version(payload)?, now, out),
            "verack" => {
                if after_version(peer, command) {
                    let was_connected = peer.handshake.successfully_connected;
                    handshake::on_verack(self, peer, out);
                    if peer.handshake.successfully_connected && !was_connected {
                        self.headers.on_established(peer);
                    }
                }
            }
            "sendheaders" => {
                if after_version(peer, command) {
                    handshake::on_sendheaders(peer);
                }
            }
            "wtxidrelay" => {
                if after_version(peer, command) {
                    handshake::on_wtxidrelay(peer, out);
                }
            }
            "sendaddrv2" => {
                if after_version(peer, command) {
                    handshake::on_sendaddrv2(peer, out);
                }
            }
            "ping" => {
                let nonce = wire::decode_ping(payload)?;
                if established(peer, command) {
                    ping::on_ping(peer, nonce, out);
                }
            }
            "pong" => {
                let nonce = wire::decode_pong(payload);
                if established(peer, command) {
                    ping::on_pong(peer, nonce, received);
                }
            }
            "headers" => {
                let list = wire::decode_headers(payload)?;
                if established(peer, command) {
                    headers::on_headers(&mut self.headers, peer, list, now, out);
                    blocks::after_headers(&mut self.headers, &mut self.blocks, peer, now, out);
                }
            }
            "block" => {
                let header = wire::decode_block_header(payload)?;
                if established(peer, command) {
                    blocks::on_block(&mut self.headers, &mut self.blocks, peer, header, payload, false, now, out);
                }
            }
            "getdata" => {
                let inv = wire::decode_inv(payload)?;
                if established(peer, command) {
                    blocks::on_getdata(peer, inv, out);
                }
            }
            "notfound" => {
                let inv = wire::decode_inv(payload)?;
                if established(peer, command) {
                    blocks::on_notfound(&mut self.blocks, peer, &inv, now);
                }
            }
            "tx" => {
                if established(peer, command) {
                    blocks::on_tx(peer, out);
                }
            }
            "sendcmpct" => {
                let (announce, version) = wire::decode_sendcmpct(payload)?;
                if established(peer, command) && self.params.blocks {
                    cmpct::on_sendcmpct(peer, announce, version, out);
                }
            }
            "cmpctblock" => {
                let msg = wire::decode_cmpctblock(payload)?;
                if established(peer, command) {
                    cmpct::on_cmpctblock(&mut self.headers, &mut self.blocks, peer, &msg, now, out);
                }
            }
            "blocktxn" => {
                let msg = wire::decode_blocktxn(payload)?;
                if established(peer, command) {
                    cmpct::on_blocktxn(&mut self.headers, &mut self.blocks, peer, &msg, now, out);
                }
            }
            "getblocktxn" => {
                let msg = wire::decode_getblocktxn(payload)?;
                if established(peer, command) && self.params.blocks {
                    if let Some(hash) = cmpct::on_getblocktxn(&self.cmpct, &self.headers, peer, &msg, out) {
                        self.blocks.read_for(peer, hash);
                    }
                }
            }
            "getheaders" => {
                let m = wire::decode_getheaders(payload)?;
                if established(peer, command) {
                    headers::on_getheaders(&self.headers, peer, &m, out);
                }
            }
            "inv" => {
                let inv = wire::decode_inv(payload)?;
                if established(peer, command) {
                    headers::on_inv(&self.headers, peer, &inv, now, out);
                }
            }
            "addr" => {
                let list = wire::decode_addr(payload)?;
                if established(peer, command) {
                    addr::on_addrs(self, peer, addr::from_v1(&list), now, out);
                }
            }
            "addrv2" => {
                let list = wire::decode_addrv2(payload)?;
                if established(peer, command) {
                    addr::on_addrs(self, peer, addr::from_v2(&list), now, out);
                }
            }
            "getaddr" => {
                if established(peer, command) {
                    addr::on_getaddr(self, peer, now);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Core's `SendMessages`: timeouts, our outbound `version`, periodic pings.
    pub fn send_messages(&mut self, peer: &mut Peer, now: Now, link: LinkTimes, out: &mut impl Outbox) {
        if let Some(reason) = timeouts::inactivity(peer, now.mono, link, self.params.peer_timeout) {
            return out.disconnect(reason);
        }
        if !peer.who.conn_type.is_inbound() && !peer.handshake.version_sent {
            handshake::push_version(self, peer, now, out);
        }
        if !peer.handshake.successfully_connected {
            return;
        }
        ping::maybe_send_ping(peer, now.mono, self.params.peer_timeout, &mut self.rng, out);
        // Core: each step may have marked the peer for disconnection; SendMessages stops there.
        if out.is_disconnecting() {
            return;
        }
        cmpct::send_messages(&self.cmpct, &self.headers, peer, out);
        let nothing_in_flight = self.blocks.download.total_in_flight() == 0;
        headers::send_messages(&mut self.headers, peer, nothing_in_flight, now, out);
        if out.is_disconnecting() {
            return;
        }
        blocks::send_messages(&mut self.headers, &mut self.blocks, peer, now, out);
        if out.is_disconnecting() {
            return;
        }
        if peer.addrs.relay_enabled && self.local.listening() {
            let ibd = self.in_ibd(now);
            let services = self.params.services;
            addr::maybe_send_local_addr(&self.local, ibd, services, peer, now, &mut self.rng, out);
        }
        addr::maybe_send_addrs(peer, now, &mut self.rng, out);
    }

    /// Asks for a ping to `peer` at the next `send_messages` (the `ping` RPC).
    pub fn queue_ping(peer: &mut Peer) {
        peer.ping.queued = true;
    }
}

/// Whether the peer's `version` has arrived, so a message of type `command` may be acted on
/// (Core ignores anything else before it, with a log line).
fn after_version(peer: &Peer, command: &str) -> bool {
    if peer.handshake.remote.is_none() {
        debug!(target: "net", "non-version message before version handshake. Message \"{command}\" from peer={}", peer.who.id);
        return false;
    }
    true
}

/// Whether the handshake is complete (`verack` received), so a message of type `command` that
/// is not part of the handshake may be acted on (Core ignores it before, with a log line).
fn established(peer: &Peer, command: &str) -> bool {
    if !after_version(peer, command) {
        return false;
    }
    if !peer.handshake.successfully_connected {
        debug!(target: "net", "Unsupported message \"{command}\" prior to verack from peer={}", peer.who.id);
        return false;
    }
    true
}

/// Core's `Misbehaving` + `MaybeDiscourageAndDisconnect`: manually connected peers are only
/// warned about; local (loopback) peers are disconnected; any other peer is disconnected and
/// its address discouraged.
pub fn misbehaving(peer: &Peer, out: &mut impl Outbox, what: String) {
    if peer.who.permissions.has(Permissions::NO_BAN) {
        tracing::warn!("Not punishing noban peer {}: {what}", peer.who.id);
        return;
    }
    if peer.who.conn_type == ConnectionType::Manual {
        tracing::warn!("Not punishing manually connected peer {}: {what}", peer.who.id);
        return;
    }
    let ip = peer.who.addr.ip();
    let loopback4 = matches!(ip, std::net::IpAddr::V4(v4) if v4.is_loopback());
    let local = ip.is_loopback() || matches!(ip, std::net::IpAddr::V4(v4) if v4.octets()[0] == 0);
    if local && !(loopback4 && peer.loopback_is_remote) {
        debug!(target: "net", "Warning: disconnecting but not discouraging local peer {}!", peer.who.id);
    } else {
        debug!(target: "net", "Disconnecting and discouraging peer {}!", peer.who.id);
        out.discourage(ip);
    }
    out.disconnect(DisconnectReason::Misbehaving(what));
}

/// An [`Outbox`] that records, for tests and simulations.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Messages sent, in order.
    pub sent: Vec<NetworkMessage>,
    /// The disconnect reason, if any.
    pub disconnect: Option<DisconnectReason>,
    /// Addresses discouraged.
    pub discouraged: Vec<std::net::IpAddr>,
    /// Addresses handed over for relay, with their reachability.
    pub relayed: Vec<(crate::engine::addrman::AddrEntry, bool)>,
}

impl Outbox for Recorder {
    fn send(&mut self, msg: &NetworkMessage) {
        self.sent.push(msg.clone());
    }
    fn send_headers<'h>(&mut self, headers: impl ExactSizeIterator<Item = &'h bitcoin::block::Header>) {
        self.sent.push(NetworkMessage::Headers(headers.copied().collect()));
    }
    fn disconnect(&mut self, reason: DisconnectReason) {
        self.disconnect.get_or_insert(reason);
    }
    fn is_disconnecting(&self) -> bool {
        self.disconnect.is_some()
    }
    fn discourage(&mut self, ip: std::net::IpAddr) {
        self.discouraged.push(ip);
    }

    fn relay_addr(&mut self, addr: crate::engine::addrman::AddrEntry, reachable: bool) {
        self.relayed.push((addr, reachable));
    }
}

impl Recorder {
    /// The message types sent, in order.
    pub fn commands(&self) -> Vec<&'static str> {
        self.sent.iter().map(|m| m.cmd()).collect()
    }

    /// Forgets what was recorded.
    pub fn clear(&mut self) {
        self.sent.clear();
        self.disconnect = None;
        self.discouraged.clear();
    }
}

#[cfg(test)]
impl Protocol {
    /// Tests: `msg` encoded as a frame carries it and handed to [`Protocol::process_message`],
    /// so tests speak in `NetworkMessage`s. Panics if the payload does not decode (a test
    /// message that never reached the protocol would prove nothing).
    pub(crate) fn deliver(
        &mut self,
        peer: &mut Peer,
        msg: NetworkMessage,
        received: Instant,
        now: Now,
        out: &mut impl Outbox,
    ) {
        let (command, payload) = crate::base::message::encode_payload(&msg);
        if let Err(e) = self.process_message(peer, command, &payload, received, now, out) {
            panic!("test message {command} does not decode: {e}");
        }
    }
}

#[cfg(test)]
mod dispatch_tests;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
