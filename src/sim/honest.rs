//! An honest simulated node: a real `Protocol` (address book, addr relay, handshake, pings,
//! headers) and a real `OutboundPlanner`, with the glue the message handler and the dialer
//! thread provide in the daemon (relay target choice, eviction candidates, self-announcement).

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::message::NetworkMessage;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use super::{ConnIdx, NodeIdx, Sim};
use crate::base::chainparams::Network;
use crate::base::message::encode_payload;
use crate::base::peer::{ConnectionType, PeerId};
use crate::engine::addrman::{AddrEntry, AddrMan, AddrNetwork, NetGroupRule, from_ip};
use crate::engine::chain::accept::Chain;
use crate::engine::chain::params::ChainParams;
use crate::engine::policy::eviction::{EvictionCandidate, PeerNetwork, select_node_to_evict};
use crate::engine::policy::outbound::{Action, Conn, OutboundPlanner, Setup, View, has_desirable_services};
use crate::engine::policy::permissions::Permissions;
use crate::engine::protocol::{LinkTimes, Now, Peer, Protocol, ProtocolParams, ProtocolParts, Recorder, addr};

/// Magic of the simulated `peers.dat`.
const MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];

/// The services every simulated node offers and announces.
pub fn full_services() -> ServiceFlags {
    ServiceFlags::NETWORK | ServiceFlags::WITNESS
}

/// One connection of an honest node.
pub(super) struct HPeer {
    /// The protocol's state of the peer.
    pub peer: Peer,
    /// The connection and which end of it this node is.
    pub conn: ConnIdx,
    pub side: usize,
    /// When bytes last crossed the link.
    pub link: LinkTimes,
    /// Our own address was queued for this peer.
    announced: bool,
}

/// What survives a restart: the serialized address book and the block-relay-only peers.
pub(super) struct Saved {
    book: Vec<u8>,
    anchors: Vec<AddrEntry>,
}

/// An honest node that is online.
pub(super) struct Honest {
    pub proto: Protocol,
    pub planner: OutboundPlanner,
    pub peers: BTreeMap<PeerId, HPeer>,
    next_id: PeerId,
    /// The message handler's own randomness (relay queues).
    rng: StdRng,
    /// Secret of the keyed network groups of eviction.
    evict_key: u64,
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
        };
        let seed = rng.random();
        let mut anchors = Vec::new();
        let mut proto = Protocol::new(match saved {
            Some(saved) => {
                let book = AddrMan::deserialize(&saved.book, MAGIC, rng.random(), NetGroupRule::Core)
                    .expect("a peers.dat we wrote reads back");
                anchors = saved.anchors;
                ProtocolParts::seeded_with_book(params, chain, seed, book)
            }
            None => ProtocolParts::seeded(params, chain, seed),
        });
        for &a in book.unwrap_or_default() {
            let seen = now.unix - rng.random_range(0..86_400);
            let e = AddrEntry::from_socket(a, full_services(), seen);
            proto.addrman_mut().add(&[e], &from_ip(a.ip()), 0, now.unix);
        }
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
        Honest { proto, planner, peers: BTreeMap::new(), next_id: 0, evict_key: rng.random(), rng }
    }
}

impl Honest {
    fn new_peer(
        &mut self,
        addr: SocketAddr,
        conn_type: ConnectionType,
        conn: ConnIdx,
        side: usize,
        now: Now,
        whitelisted: bool,
    ) -> PeerId {
        let id = self.next_id;
        self.next_id += 1;
        let mut peer = self.proto.add_peer(id, addr, conn_type, now.mono);
        if whitelisted {
            peer.permissions = Permissions::ADDR;
        }
        self.peers.insert(id, HPeer { peer, conn, side, link: LinkTimes::default(), announced: false });
        id
    }

    /// An inbound connection from `from` was accepted.
    pub fn accept(&mut self, from: SocketAddr, conn: ConnIdx, now: Now, whitelisted: bool) -> PeerId {
        self.new_peer(from, ConnectionType::Inbound, conn, 1, now, whitelisted)
    }

    /// Our dial to `addr` connected: the first `send_messages` (our `version`).
    pub fn connect(
        &mut self,
        addr: SocketAddr,
        t: ConnectionType,
        conn: ConnIdx,
        now: Now,
        whitelisted: bool,
    ) -> (PeerId, Recorder) {
        let id = self.new_peer(addr, t, conn, 0, now, whitelisted);
        let mut out = Recorder::default();
        if let Some(hp) = self.peers.get_mut(&id) {
            self.proto.send_messages(&mut hp.peer, now, hp.link, &mut out);
            hp.link.last_send = Some(now.mono);
        }
        (id, out)
    }

    /// A message from `peer`: Core's `ProcessMessage` then `SendMessages` for that peer.
    pub fn receive(&mut self, peer: PeerId, msg: NetworkMessage, now: Now, own: SocketAddr) -> Option<Recorder> {
        let hp = self.peers.get_mut(&peer)?;
        hp.link.last_recv = Some(now.mono);
        let mut out = Recorder::default();
        let (command, payload) = encode_payload(&msg);
        // Our own encoding always decodes; were it not to, the message would be dropped, as the
        // daemon drops an undecodable one.
        let _ = self.proto.process_message(&mut hp.peer, command, &payload, now.mono, now, &mut out);
        if out.disconnect.is_none() {
            announce_self(hp, own, now, &mut self.rng);
            self.proto.send_messages(&mut hp.peer, now, hp.link, &mut out);
        }
        Some(out)
    }

    /// `SendMessages` for every peer (timers: pings, addr sends, timeouts).
    pub fn sweep(&mut self, now: Now, own: SocketAddr) -> Vec<(PeerId, ConnIdx, usize, Recorder)> {
        let mut outs = Vec::new();
        for (&id, hp) in self.peers.iter_mut() {
            let mut out = Recorder::default();
            announce_self(hp, own, now, &mut self.rng);
            self.proto.send_messages(&mut hp.peer, now, hp.link, &mut out);
            if !out.sent.is_empty() || out.disconnect.is_some() || !out.relayed.is_empty() {
                outs.push((id, hp.conn, hp.side, out));
            }
        }
        outs
    }

    /// One round of the outbound planner: the dials to start (addr-fetch names resolved).
    pub fn plan(&mut self, now: Now, own: SocketAddr) -> Vec<(SocketAddr, ConnectionType)> {
        let conns: Vec<Conn> =
            self.peers.values().map(|p| Conn { addr: p.peer.addr, conn_type: p.peer.conn_type }).collect();
        let is_local = |ip: IpAddr| ip == own.ip();
        let refused = |_: IpAddr| false;
        let view = View {
            conns: &conns,
            added: &[],
            refused: &refused,
            is_local: &is_local,
            tip_depth: self.proto.headers().tip_depth(now.unix),
            network_active: true,
        };
        let actions = self.planner.tick(now.mono, now.unix, self.proto.addrman_mut(), &view, &mut self.rng);
        actions
            .into_iter()
            .filter_map(|a| match a {
                Action::Dial { addr, conn_type } => Some((addr, conn_type)),
                Action::AddrFetch(name) => name.parse().ok().map(|sa| (sa, ConnectionType::AddrFetch)),
                Action::AddFixedSeeds(_) | Action::Log(_) | Action::Debug(_) => None,
            })
            .collect()
    }

    /// The message handler's `RelayAddress`: queue a fresh announcement on the 1–2 peers
    /// chosen by [`addr::relay_targets`], never back to its source.
    pub fn relay(&mut self, source: PeerId, entry: AddrEntry, reachable: bool, now: Now) {
        let candidates = self
            .peers
            .iter()
            .filter(|(id, p)| **id != source && p.peer.addrs.relay_enabled)
            .filter(|(_, p)| p.peer.handshake.wants_addrv2 || entry.socket_addr().is_some())
            .map(|(id, _)| *id);
        let targets = addr::relay_targets(self.proto.relay_key(), &entry, reachable, now.unix, candidates);
        for id in targets {
            if let Some(p) = self.peers.get_mut(&id) {
                addr::push_address(&mut p.peer, entry.clone(), &mut self.rng);
            }
        }
    }

    /// Forgets a closed connection (Core's `FinalizeNode`).
    pub fn remove(&mut self, peer: PeerId, unix: i64) -> Option<HPeer> {
        let p = self.peers.remove(&peer)?;
        self.proto.remove_peer(&p.peer, unix);
        Some(p)
    }

    /// Inbound connections open.
    pub fn inbound_count(&self) -> usize {
        self.peers.values().filter(|p| p.peer.conn_type.is_inbound()).count()
    }

    /// Core's eviction over this node's peers (no blocks or transactions in the simulation, so
    /// only netgroup, ping and age protections tell peers apart).
    pub fn select_eviction(&self, base: Instant) -> Option<PeerId> {
        let hasher = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
        let candidates = self
            .peers
            .iter()
            .map(|(&id, p)| {
                let remote = p.peer.handshake.remote.as_ref();
                let group = self.proto.addrman().group_of(&from_ip(p.peer.addr.ip()));
                EvictionCandidate {
                    id,
                    connected_at: p.peer.connected_at.saturating_duration_since(base),
                    min_ping: p.peer.ping.min_ping,
                    last_block_time: 0,
                    last_tx_time: 0,
                    relevant_services: remote.is_some_and(|r| has_desirable_services(r.services, 0)),
                    relay_txs: remote.is_some_and(|r| r.relay),
                    bloom_filter: false,
                    keyed_net_group: hasher.hash_one((self.evict_key, group)),
                    prefer_evict: false,
                    is_local: false,
                    network: PeerNetwork::Ipv4,
                    noban: false,
                    conn_type: p.peer.conn_type,
                }
            })
            .collect();
        select_node_to_evict(candidates)
    }

    /// What a clean shutdown writes: `peers.dat` and the block-relay-only peers as anchors.
    pub fn save(&self, unix: i64) -> Saved {
        let anchors = self
            .peers
            .values()
            .filter(|p| p.peer.conn_type == ConnectionType::BlockRelayOnly && p.peer.handshake.successfully_connected)
            .map(|p| AddrEntry::from_socket(p.peer.addr, full_services(), unix))
            .collect();
        Saved { book: self.proto.addrman().serialize(MAGIC), anchors }
    }
}

/// Self-advertisement (being added to the daemon on another branch, modelled here): once an
/// outbound peer with address relay has sent its `version`, our own address is queued for it
/// with the current time, as Core's `PushAddress` of the local address in `VERSION` handling.
fn announce_self(hp: &mut HPeer, own: SocketAddr, now: Now, rng: &mut StdRng) {
    if hp.announced
        || hp.peer.conn_type.is_inbound()
        || !hp.peer.addrs.relay_enabled
        || hp.peer.handshake.remote.is_none()
    {
        return;
    }
    hp.announced = true;
    addr::push_address(&mut hp.peer, AddrEntry::from_socket(own, full_services(), now.unix), rng);
}
