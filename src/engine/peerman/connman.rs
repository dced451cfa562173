//! The peer manager's connection decisions (the deciding half of Core's `CConnman`): the
//! outbound planner's rounds, `CheckForStaleTipAndEvictPeers` with its two
//! `EvictExtraOutboundPeers` steps, DNS seeds' answers filed into the address book, and the
//! anchors kept for the next start.

use std::net::{IpAddr, SocketAddr};

use bitcoin::p2p::ServiceFlags;
use rand::RngExt;
use tracing::{debug, info};

use super::{Action, PeerManager};
use crate::base::peer::{ConnectionType, DisconnectReason, PeerId, PeerIdentity};
use crate::engine::addrman::{AddrEntry, internal};
use crate::engine::policy::outbound::{
    self, BlockRelayPeer, Conn, EXTRA_PEER_CHECK_INTERVAL, FullRelayPeer, View, extra_block_relay_to_evict,
    extra_full_relay_to_evict,
};
use crate::engine::policy::seeds::seeds_service_flags;
use crate::engine::protocol::{Now, Peer};

/// What connection planning knows about the node beyond the peers, fixed at start.
#[derive(Clone, Debug, Default)]
pub struct ConnSetup {
    /// The network's default port (DNS seeds' answers get it).
    pub default_port: u16,
    /// The addresses we listen on, never dialed.
    pub local_ips: Vec<IpAddr>,
    /// The `--addnode` addresses given as IP literals, never used for automatic connections.
    pub added: Vec<SocketAddr>,
}

/// What a planner round needs from the driver now.
pub struct TickEnv<'a> {
    /// P2P networking is on (`setnetworkactive`).
    pub network_active: bool,
    /// Banned or discouraged: never dialed.
    pub refused: &'a dyn Fn(IpAddr) -> bool,
}

/// A peer as `anchors.dat` keeps it: its address and the services its `version` announced.
pub(super) fn anchor_entry(who: &PeerIdentity, peer: &Peer, unix: i64) -> AddrEntry {
    let services = peer.handshake.remote.as_ref().map_or(ServiceFlags::NONE, |r| r.services);
    AddrEntry::from_socket(who.addr, services, unix)
}

impl PeerManager {
    /// The node-wide timers: a round of the outbound planner (it keeps its own 500 ms pace) and
    /// Core's `CheckForStaleTipAndEvictPeers` (every 45 s).
    pub fn tick(&mut self, now: Now, env: &TickEnv) {
        self.open_connections(now, env);
        self.check_stale_tip_and_evict(now, env.network_active);
    }

    fn open_connections(&mut self, now: Now, env: &TickEnv) {
        if now.mono < self.planner.next_tick() {
            return;
        }
        let conns: Vec<Conn> = self
            .peers
            .values()
            .filter(|m| !m.closing)
            .map(|m| Conn { addr: m.peer.who.addr, conn_type: m.peer.who.conn_type })
            .collect();
        let mut added = self.setup.added.clone();
        added.extend(conns.iter().filter(|c| c.conn_type == ConnectionType::Manual).map(|c| c.addr));
        let log_ips = self.protocol.params().log_ips;
        let tip_depth = self.protocol.headers().tip_depth(now.unix);
        let (addrman, local) = self.protocol.addrman_mut_and_local();
        // Core's IsLocal (our advertised addresses), and the addresses we listen on.
        let listening = &self.setup.local_ips;
        let is_local = |ip: IpAddr| local.is_local(ip) || listening.contains(&ip);
        let view = View {
            conns: &conns,
            added: &added,
            refused: env.refused,
            is_local: &is_local,
            tip_depth,
            network_active: env.network_active,
        };
        let planned = self.planner.tick(now.mono, now.unix, addrman, &view, &mut self.rng);
        for action in planned {
            match action {
                outbound::Action::Dial { addr, conn_type, v2 } => {
                    let shown = if log_ips { addr.to_string() } else { "peer".into() };
                    debug!(target: "net", "Making automatic {conn_type} connection to {shown}");
                    self.actions.push(Action::Dial { addr, conn_type, v2 });
                }
                outbound::Action::AddrFetch(host) => self.actions.push(Action::AddrFetch(host)),
                outbound::Action::AddFixedSeeds(seeds) => {
                    self.protocol.addrman_mut().add(&seeds, &internal("fixedseeds"), 0, now.unix);
                }
                outbound::Action::Log(line) => info!(target: "net", "{line}"),
                outbound::Action::Debug(line) => debug!(target: "net", "{line}"),
            }
        }
    }

    /// Core's `CheckForStaleTipAndEvictPeers`, every 45 s: drop an extra block-relay-only peer
    /// and an extra full-relay peer (`EvictExtraOutboundPeers`), every 10 minutes check whether
    /// our best header may be stale and if so allow one extra full-relay peer, and once the best
    /// header is recent start the extra block-relay-only rotation.
    fn check_stale_tip_and_evict(&mut self, now: Now, network_active: bool) {
        if now.mono < self.next_extra_peer_check {
            return;
        }
        self.next_extra_peer_check = now.mono + EXTRA_PEER_CHECK_INTERVAL;
        self.evict_extra_block_relay(now);
        self.evict_extra_full_relay(now);
        let headers = self.protocol.headers_mut();
        let stale = || {
            headers
                .tip_may_be_stale(now.unix)
                .then(|| now.unix.saturating_sub(headers.last_tip_update().unwrap_or(now.unix)))
        };
        if let Some(line) = self.planner.check_stale_tip(now.mono, network_active, stale) {
            info!("{line}");
        }
        if self.protocol.headers().near_tip(now.unix) {
            self.planner.start_extra_block_relay();
        }
    }

    fn evict_extra_block_relay(&mut self, now: Now) {
        let block_relay: Vec<BlockRelayPeer> = self
            .peers
            .values()
            .filter(|m| m.peer.who.conn_type == ConnectionType::BlockRelayOnly && !m.closing)
            .map(|m| BlockRelayPeer {
                id: m.peer.who.id,
                last_block_time: m.peer.headers.last_block_time,
                age: now.mono.saturating_duration_since(m.peer.who.connected_at),
            })
            .collect();
        let Some(id) = extra_block_relay_to_evict(&block_relay, self.planner.max_block_relay()) else { return };
        self.evict_extra(id, "block-relay-only peer", "last block received", DisconnectReason::ExtraBlockRelay);
    }

    fn evict_extra_full_relay(&mut self, now: Now) {
        let live = self.peers.values().filter(|m| !m.closing && m.peer.handshake.successfully_connected);
        let full: Vec<FullRelayPeer> = live
            .clone()
            .filter(|m| m.peer.who.conn_type == ConnectionType::OutboundFullRelay)
            .map(|m| FullRelayPeer {
                id: m.peer.who.id,
                last_announcement: m.peer.headers.last_block_time,
                age: now.mono.saturating_duration_since(m.peer.who.connected_at),
                protected: m.peer.headers.chain_sync.protect,
                network: m.peer.who.net,
            })
            .collect();
        let manual: Vec<_> =
            live.filter(|m| m.peer.who.conn_type == ConnectionType::Manual).map(|m| m.peer.who.net).collect();
        let Some(id) = extra_full_relay_to_evict(&full, &manual, self.planner.max_full_relay()) else { return };
        if self.evict_extra(id, "outbound peer", "last block announcement received", DisconnectReason::ExtraOutbound) {
            self.planner.extra_outbound_evicted();
        }
    }

    /// Closes the extra outbound peer `id` chosen by an `EvictExtraOutboundPeers` step (Core's
    /// log line names `what` and when it last gave us a block, `since`); false if it is gone.
    fn evict_extra(&mut self, id: PeerId, what: &str, since: &str, reason: DisconnectReason) -> bool {
        let Some(m) = self.peers.get(&id) else { return false };
        debug!(
            target: "net",
            "disconnecting extra {what}={id} ({since} at time {})",
            m.peer.headers.last_block_time.unwrap_or(0)
        );
        self.close(id, reason)
    }

    /// An automatic dial ended before becoming a peer.
    pub fn dial_failed(&mut self, addr: SocketAddr, conn_type: ConnectionType) {
        debug!(target: "net", "automatic {conn_type} connection failed");
        self.planner.dial_done(addr);
    }

    /// A DNS seed's answer: Core files each address with the seeds' service bits and a random
    /// age of three to seven days, the seed's name as source.
    pub fn add_seed_addrs(&mut self, source: &str, ips: Vec<IpAddr>, now: Now) {
        let port = self.setup.default_port;
        let entries: Vec<AddrEntry> = ips
            .into_iter()
            .map(|ip| {
                let age = 3 * 86_400 + self.rng.random_range(0..4 * 86_400);
                AddrEntry::from_socket(SocketAddr::new(ip, port), seeds_service_flags(), now.unix - age)
            })
            .collect();
        let added = self.protocol.addrman_mut().add(&entries, &internal(source), 0, now.unix);
        debug!(target: "net", "{added} of {} addresses from {source} added to the address book", entries.len());
    }

    /// Core's `DumpAnchors` list: the block-relay-only peers (at most two; those the shutdown
    /// closed included), for the next start.
    pub fn anchors(&self, unix: i64) -> Vec<AddrEntry> {
        let mut anchors: Vec<AddrEntry> = self
            .peers
            .values()
            .filter(|m| m.peer.who.conn_type == ConnectionType::BlockRelayOnly)
            .map(|m| anchor_entry(&m.peer.who, &m.peer, unix))
            .collect();
        anchors.extend(self.shutdown_anchors.iter().cloned());
        anchors.truncate(outbound::MAX_ANCHORS);
        anchors
    }

    /// Outbound full-relay connections open (what the DNS seeding thread waits on).
    pub fn full_outbound_count(&self) -> usize {
        self.peers.values().filter(|m| !m.closing && m.peer.who.conn_type == ConnectionType::OutboundFullRelay).count()
    }
}
