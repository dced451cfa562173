//! An honest simulated node: the daemon's own [`PeerManager`] (its `Protocol` with address
//! book, addr relay, handshake, pings, headers and self-advertisement; its outbound planner,
//! relay-target choice and inbound eviction), driven with fake time. The node adds only what
//! the daemon's threads add: per-connection links on the in-memory network, and carrying out
//! the manager's actions.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::message::NetworkMessage;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use super::{ConnIdx, NodeIdx, Sim};
use crate::base::chainparams::Network;
use crate::base::message::encode_payload;
use crate::base::netaddr::net_kind;
use crate::base::peer::{ConnectionType, DisconnectReason, PeerId, PeerIdentity, Permissions};
use crate::engine::addrman::{AddrEntry, AddrMan, AddrNetwork, NetGroupRule, from_ip};
use crate::engine::chain::accept::Chain;
use crate::engine::chain::params::ChainParams;
use crate::engine::peerman::{Action, ConnSetup, PeerManager, TickEnv, Wire};
use crate::engine::policy::eviction::{EvictionFacts, GroupKey};
use crate::engine::policy::local::LocalAddrs;
use crate::engine::policy::outbound::{OutboundPlanner, Setup};
use crate::engine::protocol::{LinkTimes, Now, Peer, Protocol, ProtocolParams, ProtocolParts};

/// Magic of the simulated `peers.dat`.
const MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];
/// Core's `LOCAL_MANUAL` score (`--externalip`): each simulated node knows its address.
const LOCAL_MANUAL: i32 = 4;

/// The services every simulated node offers and announces.
pub fn full_services() -> ServiceFlags {
    ServiceFlags::NETWORK | ServiceFlags::WITNESS
}

/// Where one of the node's peers sits on the simulated network.
pub(super) struct SimLink {
    /// The connection and which end of it this node is.
    pub conn: ConnIdx,
    pub side: usize,
    /// When bytes last crossed the link.
    pub link: LinkTimes,
}

/// What survives a restart: the serialized address book and the block-relay-only peers.
pub(super) struct Saved {
    book: Vec<u8>,
    anchors: Vec<AddrEntry>,
}

/// The messages one manager call wrote, in order.
#[derive(Default)]
pub(super) struct SimWire {
    pub sent: Vec<NetworkMessage>,
}

impl Wire for SimWire {
    fn send(&mut self, msg: &NetworkMessage) {
        self.sent.push(msg.clone());
    }
    fn send_headers<'h>(&mut self, headers: impl ExactSizeIterator<Item = &'h bitcoin::block::Header>) {
        self.sent.push(NetworkMessage::Headers(headers.copied().collect()));
    }
}

/// An honest node that is online.
pub(super) struct Honest {
    pub mgr: PeerManager,
    pub links: BTreeMap<PeerId, SimLink>,
    next_id: PeerId,
    /// Secret of the keyed network groups of eviction.
    group_key: GroupKey,
}

impl Sim {
    /// An honest node starting now at `idx`: with `book` (addresses it knows) or restored from
    /// `saved`, or empty (a new node, which will ask a seed node).
    pub(super) fn new_honest(&mut self, idx: NodeIdx, book: Option<&[SocketAddr]>, saved: Option<Saved>) -> Honest {
        let now = self.now();
        let own = self.nodes[idx].addr;
        let mut rng = StdRng::seed_from_u64(self.rng.random());
        let chain = Chain::in_memory(ChainParams::new(Network::Regtest), bitcoin::pow::Work::from_be_bytes([0; 32]));
        let params = ProtocolParams {
            user_agent: "/btcloop:sim/".into(),
            services: full_services(),
            peer_timeout: Duration::from_secs(60),
            log_ips: false,
            blocks: false,
        };
        let seed = rng.random();
        let mut anchors = Vec::new();
        let mut parts = match saved {
            Some(saved) => {
                let book = AddrMan::deserialize(&saved.book, MAGIC, rng.random(), NetGroupRule::Core)
                    .expect("a peers.dat we wrote reads back");
                anchors = saved.anchors;
                ProtocolParts::seeded_with_book(params, chain, seed, book)
            }
            None => ProtocolParts::seeded(params, chain, seed),
        };
        // The node knows its own address, as `--externalip` would tell it; it advertises it
        // to its peers with the daemon's self-advertisement.
        parts.local = LocalAddrs::new(true, false, own.port(), NetGroupRule::Core, false);
        parts.local.add(own, LOCAL_MANUAL);
        for &a in book.unwrap_or_default() {
            let seen = now.unix - rng.random_range(0..86_400);
            let e = AddrEntry::from_socket(a, full_services(), seen);
            parts.addrman.add(&[e], &from_ip(a.ip()), 0, now.unix);
        }
        let proto = Protocol::new(parts);
        let mut seed_nodes: Vec<String> =
            self.seed_addrs.iter().filter(|a| **a != own).map(|a| a.to_string()).collect();
        seed_nodes.shuffle(&mut rng);
        let setup = Setup {
            enabled: true,
            seed_nodes,
            fixed_seeds: false,
            dnsseed: false,
            have_addnodes: false,
            reachable: vec![AddrNetwork::Ipv4],
            anchors,
            max_connections: 125,
        };
        let empty = proto.addrman().size(None, None) == 0;
        let planner = OutboundPlanner::new(setup, Vec::new(), now.mono, empty, &mut rng);
        let conn = ConnSetup { default_port: super::PORT, local_ips: vec![own.ip()], added: Vec::new() };
        let group_key = GroupKey::new(rng.random(), rng.random());
        let mgr = PeerManager::new(proto, planner, conn, StdRng::seed_from_u64(rng.random()), now.mono);
        Honest { mgr, links: BTreeMap::new(), next_id: 0, group_key }
    }
}

impl Honest {
    /// A connection opened: the identity the socket handler would give it.
    fn new_peer(
        &mut self,
        addr: SocketAddr,
        conn_type: ConnectionType,
        link: (ConnIdx, usize),
        now: Now,
        whitelisted: bool,
    ) -> PeerId {
        let id = self.next_id;
        self.next_id += 1;
        let who = PeerIdentity {
            id,
            addr,
            name: None,
            local_addr: None,
            conn_type,
            permissions: if whitelisted { Permissions::ADDR } else { Permissions::NONE },
            connected_at: now.mono,
            net: net_kind(addr.ip()),
            keyed_group: self.group_key.keyed_group(addr.ip()),
        };
        self.mgr.connected(Arc::new(who));
        self.links.insert(id, SimLink { conn: link.0, side: link.1, link: LinkTimes::default() });
        id
    }

    /// An inbound connection from `from` was accepted.
    pub fn accept(&mut self, from: SocketAddr, conn: ConnIdx, now: Now, whitelisted: bool) -> PeerId {
        self.new_peer(from, ConnectionType::Inbound, (conn, 1), now, whitelisted)
    }

    /// Our dial to `addr` connected: the first `send_messages` (our `version`).
    pub fn connect(
        &mut self,
        addr: SocketAddr,
        t: ConnectionType,
        conn: ConnIdx,
        now: Now,
        whitelisted: bool,
    ) -> (PeerId, SimWire) {
        let id = self.new_peer(addr, t, (conn, 0), now, whitelisted);
        let mut out = SimWire::default();
        self.send_messages(id, now, &mut out);
        (id, out)
    }

    /// A message from `peer`: Core's `ProcessMessage` then `SendMessages` for that peer.
    pub fn receive(&mut self, peer: PeerId, msg: NetworkMessage, now: Now) -> Option<SimWire> {
        let l = self.links.get_mut(&peer)?;
        l.link.last_recv = Some(now.mono);
        let link = l.link;
        let mut out = SimWire::default();
        // The message crosses the simulated link as its payload bytes, as over a socket; a
        // payload the protocol cannot decode is dropped, as the daemon drops it.
        let (command, payload) = encode_payload(&msg);
        self.mgr.on_message(peer, command, &payload, now.mono, now, link, &mut out);
        self.sent(peer, &out, now);
        Some(out)
    }

    /// `SendMessages` for one peer; notes when it sent.
    fn send_messages(&mut self, peer: PeerId, now: Now, out: &mut SimWire) -> Option<EvictionFacts> {
        let link = self.links.get(&peer)?.link;
        let facts = self.mgr.send_messages(peer, now, link, out);
        self.sent(peer, out, now);
        facts
    }

    fn sent(&mut self, peer: PeerId, out: &SimWire, now: Now) {
        if let Some(l) = self.links.get_mut(&peer).filter(|_| !out.sent.is_empty()) {
            l.link.last_send = Some(now.mono);
        }
    }

    /// `SendMessages` for every peer (timers: pings, addr sends, timeouts).
    pub fn sweep(&mut self, now: Now) -> Vec<(ConnIdx, usize, SimWire)> {
        let ids: Vec<PeerId> = self.links.keys().copied().collect();
        let mut outs = Vec::new();
        for id in ids {
            let mut out = SimWire::default();
            self.send_messages(id, now, &mut out);
            if let Some(l) = self.links.get(&id).filter(|_| !out.sent.is_empty()) {
                outs.push((l.conn, l.side, out));
            }
        }
        outs
    }

    /// The manager's timers: its outbound planner and its extra-peer evictions.
    pub fn tick(&mut self, now: Now) {
        let refused = |_: std::net::IpAddr| false;
        self.mgr.tick(now, &TickEnv { network_active: true, refused: &refused });
    }

    /// What the manager decided since the last call.
    pub fn take_actions(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        self.mgr.take_actions(&mut actions);
        actions
    }

    /// Forgets a closed connection (Core's `FinalizeNode`); returns the peer's protocol state.
    pub fn remove(&mut self, peer: PeerId, reason: &DisconnectReason, now: Now) -> Option<(SimLink, Peer)> {
        let link = self.links.remove(&peer)?;
        let closed = self.mgr.closed(peer, reason, now)?;
        Some((link, closed))
    }

    /// Inbound connections open.
    pub fn inbound_count(&self) -> usize {
        self.mgr.inbound_count()
    }

    /// The peer the daemon's inbound eviction would drop for a newcomer.
    pub fn select_eviction(&self, origin: Instant) -> Option<PeerId> {
        self.mgr.inbound_to_evict(|_| false, origin)
    }

    /// Every peer with its link and protocol state.
    pub fn peers(&self) -> impl Iterator<Item = (&SimLink, &Peer)> {
        self.links.iter().filter_map(|(id, l)| Some((l, self.mgr.peer(*id)?)))
    }

    /// What a clean shutdown writes: `peers.dat` and the block-relay-only peers as anchors.
    pub fn save(&self, unix: i64) -> Saved {
        Saved { book: self.mgr.protocol().addrman().serialize(MAGIC), anchors: self.mgr.anchors(unix) }
    }
}
