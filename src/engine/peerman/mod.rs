//! The peer manager, I/O-free: owns the peer map, the [`Protocol`], the outbound planner and the
//! eviction choices, and turns events (a peer connected, a message, a timer tick, a connection
//! closed, a dial failed) into [`Action`]s (disconnect, dial, fetch addresses, discourage) plus
//! the messages it writes to a [`Wire`]. The daemon's message handler drives it with real time
//! and socket queues; the simulator drives the same type with fake time and an in-memory
//! network.

mod blocks;
mod connman;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;

pub use connman::{ConnSetup, TickEnv};

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bitcoin::p2p::message::NetworkMessage;
use rand::rngs::StdRng;
use tracing::{debug, info};

use crate::base::message::PayloadError;
use crate::base::peer::{ConnectionType, DisconnectReason, PeerId, PeerIdentity, PeerMap};
use crate::engine::addrman::AddrEntry;
use crate::engine::policy::eviction::{self, EvictionFacts};
use crate::engine::policy::outbound::{OutboundPlanner, has_desirable_services};
use crate::engine::protocol::{LinkTimes, Now, Outbox, Peer, Protocol, addr};

/// Where the manager writes a peer's messages: the daemon encodes them into the peer's send
/// queue, the simulator puts them on its in-memory link.
pub trait Wire {
    /// Queue `msg` for the peer.
    fn send(&mut self, msg: &NetworkMessage);
    /// Queue a `headers` message holding `headers` (no intermediate vector: the serving path).
    fn send_headers<'h>(&mut self, headers: impl ExactSizeIterator<Item = &'h bitcoin::block::Header>);
    /// Queue a message whose payload is already serialized (see [`Outbox::send_payload`]).
    fn send_payload(&mut self, command: &'static str, payload: &[u8], checksum: Option<[u8; 4]>) {
        let _ = checksum;
        if let Ok(msg) = crate::base::message::decode_payload(command, payload) {
            self.send(&msg);
        }
    }
    /// Whether the peer's send queue is over its limit (Core's `fPauseSend`).
    fn send_paused(&self) -> bool {
        false
    }
    /// The connection's transport (see [`Outbox::transport`]).
    fn transport(&self) -> &'static str {
        "v1"
    }
}

/// What the driver must do beyond writing messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Close the connection (the manager no longer serves the peer; it forgets it when the
    /// driver reports the close).
    Disconnect {
        /// Which peer.
        id: PeerId,
        /// Why.
        reason: DisconnectReason,
    },
    /// Open an automatic connection.
    Dial {
        /// Where.
        addr: std::net::SocketAddr,
        /// Which kind.
        conn_type: ConnectionType,
        /// The address advertises `NODE_P2P_V2`.
        v2: bool,
    },
    /// Resolve this `--seednode` name and connect to it as an addr-fetch peer.
    AddrFetch(String),
    /// Remember that this address misbehaved (refuse it while inbound slots are nearly full).
    Discourage(IpAddr),
    /// Hand this to the validation thread.
    Validate(crate::engine::blocks::validation::ValidationRequest),
}

/// One peer as the manager holds it.
struct Managed {
    /// Protocol state (with the peer's identity, `peer.who`).
    peer: Peer,
    /// A disconnect was asked for; nothing more is processed or sent.
    closing: bool,
    /// What eviction weighs, once the handshake is done.
    facts: Option<EvictionFacts>,
}

/// What [`PeerManager::on_message`] did besides writing messages.
#[derive(Debug, Default)]
pub struct Processed {
    /// The peer's eviction facts once its handshake is done (for drivers that publish them);
    /// `None` for a peer that is gone or closing.
    pub facts: Option<EvictionFacts>,
    /// The payload of a type the protocol handles did not decode (the message was dropped).
    pub undecodable: Option<PayloadError>,
    /// The peer is still served (not gone, not being disconnected).
    pub open: bool,
}

/// The I/O-free core of the node's peer handling (Core's `PeerManager` plus the parts of
/// `CConnman` that decide rather than do).
pub struct PeerManager {
    peers: PeerMap<Managed>,
    protocol: Protocol,
    planner: OutboundPlanner,
    setup: ConnSetup,
    actions: Vec<Action>,
    /// Randomness for address-relay queues and seed ages.
    rng: StdRng,
    /// When extra outbound peers are next looked for.
    next_extra_peer_check: Instant,
    /// Block-relay-only peers closed by the shutdown, kept for `anchors.dat`.
    shutdown_anchors: Vec<AddrEntry>,
}

/// The manager's [`Outbox`] for one protocol call: messages go to the driver's wire until the
/// peer is being disconnected; the rest is recorded for the manager to act on.
struct Out<'w, W: Wire> {
    wire: &'w mut W,
    disconnect: Option<DisconnectReason>,
    discourage: Option<IpAddr>,
    relays: Vec<(AddrEntry, bool)>,
}

impl<'w, W: Wire> Out<'w, W> {
    fn new(wire: &'w mut W) -> Self {
        Out { wire, disconnect: None, discourage: None, relays: Vec::new() }
    }
}

impl<W: Wire> Outbox for Out<'_, W> {
    fn send(&mut self, msg: &NetworkMessage) {
        if self.disconnect.is_none() {
            self.wire.send(msg);
        }
    }
    fn send_headers<'h>(&mut self, headers: impl ExactSizeIterator<Item = &'h bitcoin::block::Header>) {
        if self.disconnect.is_none() {
            self.wire.send_headers(headers);
        }
    }
    fn disconnect(&mut self, reason: DisconnectReason) {
        self.disconnect.get_or_insert(reason);
    }
    fn is_disconnecting(&self) -> bool {
        self.disconnect.is_some()
    }
    fn discourage(&mut self, ip: IpAddr) {
        self.discourage = Some(ip);
    }
    fn relay_addr(&mut self, addr: AddrEntry, reachable: bool) {
        self.relays.push((addr, reachable));
    }
    fn send_payload(&mut self, command: &'static str, payload: &[u8], checksum: Option<[u8; 4]>) {
        if self.disconnect.is_none() {
            self.wire.send_payload(command, payload, checksum);
        }
    }
    fn send_paused(&self) -> bool {
        self.wire.send_paused()
    }
    fn transport(&self) -> &'static str {
        self.wire.transport()
    }
}

/// What the protocol decided besides messages, taken out of an [`Out`] so the peer's borrow
/// ends before the manager acts on it.
struct Decided {
    disconnect: Option<DisconnectReason>,
    discourage: Option<IpAddr>,
    relays: Vec<(AddrEntry, bool)>,
}

impl Decided {
    /// Nothing beyond messages: no disconnect, discouragement or relay.
    fn is_empty(&self) -> bool {
        self.disconnect.is_none() && self.discourage.is_none() && self.relays.is_empty()
    }
}

/// `SendMessages` for one peer, and its eviction facts once its handshake is done (borrowing
/// only the protocol and the peer's entry, so the manager can act on the result after).
fn send_step(
    protocol: &mut Protocol,
    m: &mut Managed,
    now: Now,
    link: LinkTimes,
    wire: &mut impl Wire,
) -> (Decided, Option<EvictionFacts>) {
    let mut out = Out::new(wire);
    protocol.send_messages(&mut m.peer, now, link, &mut out);
    let decided = Decided::from(out);
    if !m.peer.handshake.successfully_connected || decided.disconnect.is_some() {
        return (decided, None);
    }
    let facts = m.facts.get_or_insert_with(|| {
        let remote = m.peer.handshake.remote.as_ref();
        let tip_depth = protocol.headers().tip_depth(now.unix);
        EvictionFacts {
            relevant_services: remote.is_some_and(|r| has_desirable_services(r.services, tip_depth)),
            relay_txs: remote.is_some_and(|r| r.relay),
            ..EvictionFacts::default()
        }
    });
    facts.min_ping = m.peer.ping.min_ping;
    facts.last_block_time = m.peer.headers.last_block_time.unwrap_or(0);
    (decided, Some(*facts))
}

impl<W: Wire> From<Out<'_, W>> for Decided {
    fn from(o: Out<'_, W>) -> Self {
        Decided { disconnect: o.disconnect, discourage: o.discourage, relays: o.relays }
    }
}

impl PeerManager {
    /// A manager with no peers over `protocol`, planning automatic connections with `planner`.
    pub fn new(protocol: Protocol, planner: OutboundPlanner, setup: ConnSetup, rng: StdRng, now: Instant) -> Self {
        PeerManager {
            peers: PeerMap::default(),
            protocol,
            planner,
            setup,
            actions: Vec::new(),
            rng,
            next_extra_peer_check: now + crate::engine::policy::outbound::EXTRA_PEER_CHECK_INTERVAL,
            shutdown_anchors: Vec::new(),
        }
    }

    /// The protocol state (chain, address book, local addresses).
    pub fn protocol(&self) -> &Protocol {
        &self.protocol
    }

    /// The protocol state, to change (operator requests).
    pub fn protocol_mut(&mut self) -> &mut Protocol {
        &mut self.protocol
    }

    /// Moves the actions decided since the last call into `into` (keeps `into`'s allocation).
    pub fn take_actions(&mut self, into: &mut Vec<Action>) {
        self.take_validation_requests();
        into.append(&mut self.actions);
    }

    /// Whether actions wait to be taken.
    pub fn has_actions(&self) -> bool {
        !self.actions.is_empty() || self.protocol.blocks().has_requests()
    }

    /// Every peer's protocol state (its identity is `peer.who`), closing ones included.
    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values().map(|m| &m.peer)
    }

    /// One peer's protocol state.
    pub fn peer(&self, id: PeerId) -> Option<&Peer> {
        self.peers.get(&id).map(|m| &m.peer)
    }

    /// Number of peers (closing ones included).
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether there are no peers.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Whether `id` is gone or being disconnected.
    pub fn is_closing(&self, id: PeerId) -> bool {
        self.peers.get(&id).is_none_or(|m| m.closing)
    }

    /// A connection opened: the protocol's state for it. The driver then runs
    /// [`PeerManager::send_messages`] for it (our `version` to an outbound peer).
    pub fn connected(&mut self, who: Arc<PeerIdentity>) {
        self.planner.dial_done(who.addr);
        debug!(target: "net", "Added connection {} ({})", who.label(self.protocol.params().log_ips), who.conn_type);
        let id = who.id;
        let peer = self.protocol.add_peer(who);
        self.peers.insert(id, Managed { peer, closing: false, facts: None });
    }

    /// Core's `FinalizeNode`: the connection is gone; forgets the peer and returns it.
    pub fn closed(&mut self, id: PeerId, reason: &DisconnectReason, now: Now) -> Option<Peer> {
        let m = self.peers.remove(&id)?;
        if *reason == DisconnectReason::Shutdown && m.peer.who.conn_type == ConnectionType::BlockRelayOnly {
            self.shutdown_anchors.push(connman::anchor_entry(&m.peer.who, &m.peer, now.unix));
        }
        self.protocol.remove_peer(&m.peer, now.unix);
        info!(
            target: "net",
            "disconnected {} ({}, {}): {reason}",
            m.peer.who.label(self.protocol.params().log_ips),
            m.peer.who.conn_type,
            m.peer.handshake.user_agent()
        );
        Some(m.peer)
    }

    /// Core's `ProcessMessage` for one message of type `command` from `id` (decoded only if
    /// the protocol handles the type), then the peer's `SendMessages`.
    #[allow(clippy::too_many_arguments)]
    pub fn on_message(
        &mut self,
        id: PeerId,
        command: &str,
        payload: &[u8],
        received: Instant,
        now: Now,
        link: LinkTimes,
        wire: &mut impl Wire,
    ) -> Processed {
        let Some(m) = self.peers.get_mut(&id).filter(|m| !m.closing) else { return Processed::default() };
        let mut out = Out::new(wire);
        let decoded = self.protocol.process_message(&mut m.peer, command, payload, received, now, &mut out);
        let decided = Decided::from(out);
        let (facts, closed) = if decided.is_empty() {
            // The common case: straight on to SendMessages with the same entry.
            let (decided, facts) = send_step(&mut self.protocol, m, now, link, wire);
            if self.apply(id, decided, now) { (None, true) } else { (facts, false) }
        } else if self.apply(id, decided, now) {
            (None, true)
        } else {
            let facts = self.send_messages(id, now, link, wire);
            (facts, self.is_closing(id))
        };
        Processed { facts, undecodable: decoded.err(), open: !closed }
    }

    /// Core's `SendMessages` for `id`: timeouts, our `version`, pings, header and address
    /// sends. Returns its eviction facts once its handshake is done.
    pub fn send_messages(
        &mut self,
        id: PeerId,
        now: Now,
        link: LinkTimes,
        wire: &mut impl Wire,
    ) -> Option<EvictionFacts> {
        let m = self.peers.get_mut(&id).filter(|m| !m.closing)?;
        let (decided, facts) = send_step(&mut self.protocol, m, now, link, wire);
        if self.apply(id, decided, now) { None } else { facts }
    }

    /// Acts on what one protocol call decided for `id`; true if the peer is now closing.
    fn apply(&mut self, id: PeerId, d: Decided, now: Now) -> bool {
        if d.is_empty() {
            return false;
        }
        for (entry, reachable) in d.relays {
            self.relay_address(id, entry, reachable, now);
        }
        if let Some(ip) = d.discourage {
            self.actions.push(Action::Discourage(ip));
            // Core's `DisconnectNode(addr)`: every other connection from the address goes too.
            let others: Vec<PeerId> =
                self.peers.iter().filter(|(o, m)| **o != id && m.peer.who.addr.ip() == ip).map(|(o, _)| *o).collect();
            for other in others {
                self.close(other, DisconnectReason::Misbehaving(format!("address {ip} discouraged")));
            }
        }
        match d.disconnect {
            Some(reason) => {
                if let Some(m) = self.peers.get(&id) {
                    debug!(target: "net", "{reason}, disconnecting {}", m.peer.who.label(self.protocol.params().log_ips));
                }
                self.close(id, reason);
                true
            }
            None => false,
        }
    }

    /// The one way a peer is disconnected: marks it closing (nothing more is processed for it
    /// or sent to it) and asks the driver to close the connection. False if it is gone or
    /// already closing.
    pub fn close(&mut self, id: PeerId, reason: DisconnectReason) -> bool {
        let Some(m) = self.peers.get_mut(&id).filter(|m| !m.closing) else { return false };
        m.closing = true;
        self.actions.push(Action::Disconnect { id, reason });
        true
    }

    /// Closes every peer `pick` selects (operator requests); returns how many.
    pub fn close_where(&mut self, pick: impl Fn(&PeerIdentity) -> bool, reason: &DisconnectReason) -> usize {
        let ids: Vec<PeerId> =
            self.peers.iter().filter(|(_, m)| !m.closing && pick(&m.peer.who)).map(|(id, _)| *id).collect();
        ids.into_iter().filter(|&id| self.close(id, reason.clone())).count()
    }

    /// Asks every peer for a ping at its next `SendMessages` (the `ping` RPC).
    pub fn ping_all(&mut self) {
        for m in self.peers.values_mut() {
            Protocol::queue_ping(&mut m.peer);
        }
    }

    /// Core's `RelayAddress`: queues a fresh announcement from `source` on the 1–2 peers
    /// [`addr::relay_targets`] chooses among those with address relay.
    fn relay_address(&mut self, source: PeerId, entry: AddrEntry, reachable: bool, now: Now) {
        let candidates = self
            .peers
            .iter()
            .filter(|(id, m)| **id != source && m.peer.addrs.relay_enabled && !m.closing)
            .filter(|(_, m)| m.peer.handshake.wants_addrv2 || entry.socket_addr().is_some())
            .map(|(id, _)| *id);
        let targets = addr::relay_targets(self.protocol.relay_key(), &entry, reachable, now.unix, candidates);
        for id in targets {
            if let Some(m) = self.peers.get_mut(&id) {
                addr::push_address(&mut m.peer, entry.clone(), &mut self.rng);
            }
        }
    }

    /// Core's `AttemptToEvictConnection` choice among the inbound peers: whom to drop for a
    /// newcomer, or `None` when all are protected. `discouraged` marks addresses to evict first;
    /// `origin` is the instant connection ages are measured from.
    pub fn inbound_to_evict(&self, discouraged: impl Fn(IpAddr) -> bool, origin: Instant) -> Option<PeerId> {
        let candidates = self
            .peers
            .values()
            .filter(|m| !m.closing && m.peer.who.conn_type.is_inbound())
            .map(|m| {
                let facts = m.facts.unwrap_or_default();
                eviction::candidate(&m.peer.who, &facts, origin, discouraged(m.peer.who.addr.ip()))
            })
            .collect();
        eviction::select_node_to_evict(candidates)
    }

    /// Inbound connections open (closing ones included, as the socket still is).
    pub fn inbound_count(&self) -> usize {
        self.peers.values().filter(|m| m.peer.who.conn_type.is_inbound()).count()
    }
}
