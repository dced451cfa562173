//! The message handler's share of connection management: it owns the outbound planner and
//! runs it in its timer step (the planner needs the address book and the peer list, both the
//! handler's), turns the planner's actions into socket and dialer commands, publishes the facts
//! the seeding thread reads, files DNS seeds' answers into the address book, and writes
//! `anchors.dat` at shutdown.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bitcoin::p2p::ServiceFlags;
use crossbeam_channel::Sender;
use rand::RngExt;
use tracing::{debug, info, warn};

use super::MessageHandler;
use crate::base::peer::{ConnectionType, DisconnectReason, PeerId};
use crate::daemon::net::dialer::{DialerCommand, PeerSpec};
use crate::daemon::net::seeder::SeedFacts;
use crate::daemon::net::wake::SocketCommand;
use crate::engine::addrman::{AddrEntry, internal};
use crate::engine::policy::anchors;
use crate::engine::policy::banman::BanMan;
use crate::engine::policy::outbound::{
    Action, BlockRelayPeer, Conn, EXTRA_PEER_CHECK_INTERVAL, FullRelayPeer, OutboundPlanner, View,
    extra_block_relay_to_evict, extra_full_relay_to_evict,
};
use crate::engine::policy::seeds::seeds_service_flags;
use crate::engine::protocol::{Now, Peer};

/// What connection management needs besides the peers.
pub struct ConnParts {
    /// The automatic-connection planner (disabled under `--connect`).
    pub planner: OutboundPlanner,
    /// Manual bans.
    pub banman: Arc<BanMan>,
    /// `setnetworkactive`.
    pub network_active: Arc<AtomicBool>,
    /// The dialer thread, for addr-fetch connections to named hosts.
    pub dialer: Option<Sender<DialerCommand>>,
    /// Where the block-relay-only peers are written at shutdown, when automatic connections are on.
    pub anchors_file: Option<PathBuf>,
    /// Our own addresses, never dialed.
    pub local_ips: Vec<IpAddr>,
    /// The `--addnode` addresses given as IP literals, never used for automatic connections.
    pub added: Vec<SocketAddr>,
    /// What the seeding thread reads.
    pub seed_facts: Arc<SeedFacts>,
}

/// A peer as `anchors.dat` keeps it: its address and the services its `version` announced.
pub(super) fn anchor_entry(peer: &Peer, unix: i64) -> AddrEntry {
    let services = peer.handshake.remote.as_ref().map_or(ServiceFlags::NONE, |r| r.services);
    AddrEntry::from_socket(peer.addr, services, unix)
}

impl MessageHandler {
    /// One round of the outbound planner (it keeps its own 500 ms pace).
    pub(super) fn open_connections(&mut self, now: Now) {
        let c = &mut self.conn;
        if now.mono < c.planner.next_tick() {
            return;
        }
        let conns: Vec<Conn> = self
            .peers
            .values()
            .filter(|e| !e.closing)
            .map(|e| Conn { addr: e.peer.addr, conn_type: e.peer.conn_type })
            .collect();
        let mut added = c.added.clone();
        added.extend(conns.iter().filter(|c| c.conn_type == ConnectionType::Manual).map(|c| c.addr));
        let (banman, discouraged) = (&c.banman, &self.cx.discouraged);
        let refused = |ip: IpAddr| banman.is_banned(ip, now.unix) || discouraged.contains(&ip);
        let proto = &mut self.cx.protocol;
        let tip_depth = proto.headers().tip_depth(now.unix);
        // Core's IsLocal (our advertised addresses), and the addresses we listen on.
        let (addrman, local) = proto.addrman_mut_and_local();
        let listening = &c.local_ips;
        let is_local = |ip: IpAddr| local.is_local(ip) || listening.contains(&ip);
        let view = View {
            conns: &conns,
            added: &added,
            refused: &refused,
            is_local: &is_local,
            tip_depth,
            network_active: c.network_active.load(Ordering::Acquire),
        };
        let actions = c.planner.tick(now.mono, now.unix, addrman, &view, &mut self.rng_std);
        let full = conns.iter().filter(|c| c.conn_type == ConnectionType::OutboundFullRelay).count();
        c.seed_facts.full_outbound.store(full, Ordering::Relaxed);
        c.seed_facts.addrman_size.store(proto.addrman().size(None, None), Ordering::Relaxed);
        for action in actions {
            match action {
                Action::Dial { addr, conn_type } => {
                    let shown = if proto.params().log_ips { addr.to_string() } else { "peer".into() };
                    debug!(target: "net", "Making automatic {conn_type} connection to {shown}");
                    self.cx.ctl.send(SocketCommand::Connect { addr, conn_type, target: None });
                }
                Action::AddrFetch(host) => match (&c.dialer, PeerSpec::parse(&host, self.default_port)) {
                    (Some(d), Ok(spec)) => {
                        let _ = d.send(DialerCommand::AddrFetch(spec));
                    }
                    (_, Err(e)) => warn!("{e}"),
                    (None, _) => {}
                },
                Action::AddFixedSeeds(seeds) => {
                    proto.addrman_mut().add(&seeds, &internal("fixedseeds"), 0, now.unix);
                }
                Action::Log(line) => info!(target: "net", "{line}"),
                Action::Debug(line) => debug!(target: "net", "{line}"),
            }
        }
    }

    /// Core's `CheckForStaleTipAndEvictPeers`, every 45 s: drop an extra block-relay-only peer
    /// and an extra full-relay peer (`EvictExtraOutboundPeers`), every 10 minutes check whether
    /// our best header may be stale and if so allow one extra full-relay peer, and once the best
    /// header is recent start the extra block-relay-only rotation.
    pub(super) fn check_stale_tip_and_evict(&mut self, now: Now) {
        if now.mono < self.next_extra_peer_check {
            return;
        }
        self.next_extra_peer_check = now.mono + EXTRA_PEER_CHECK_INTERVAL;
        self.evict_extra_block_relay(now);
        self.evict_extra_full_relay(now);
        let network_active = self.conn.network_active.load(Ordering::Acquire);
        let headers = self.cx.protocol.headers_mut();
        let stale = || {
            headers
                .tip_may_be_stale(now.unix)
                .then(|| now.unix.saturating_sub(headers.last_tip_update().unwrap_or(now.unix)))
        };
        if let Some(line) = self.conn.planner.check_stale_tip(now.mono, network_active, stale) {
            info!("{line}");
        }
        if self.cx.protocol.headers().near_tip(now.unix) {
            self.conn.planner.start_extra_block_relay();
        }
    }

    fn evict_extra_block_relay(&mut self, now: Now) {
        let block_relay: Vec<BlockRelayPeer> = self
            .peers
            .values()
            .filter(|e| e.peer.conn_type == ConnectionType::BlockRelayOnly && !e.closing)
            .map(|e| BlockRelayPeer {
                id: e.peer.id,
                last_block_time: e.peer.headers.last_block_time,
                age: now.mono.saturating_duration_since(e.peer.connected_at),
            })
            .collect();
        let Some(id) = extra_block_relay_to_evict(&block_relay, self.conn.planner.max_block_relay()) else { return };
        self.evict_extra(id, "block-relay-only peer", "last block received", DisconnectReason::ExtraBlockRelay);
    }

    fn evict_extra_full_relay(&mut self, now: Now) {
        let live = self.peers.values().filter(|e| !e.closing && e.peer.handshake.successfully_connected);
        let full: Vec<FullRelayPeer> = live
            .clone()
            .filter(|e| e.peer.conn_type == ConnectionType::OutboundFullRelay)
            .map(|e| FullRelayPeer {
                id: e.peer.id,
                last_announcement: e.peer.headers.last_block_time,
                age: now.mono.saturating_duration_since(e.peer.connected_at),
                protected: e.peer.headers.chain_sync.protect,
                network: e.net,
            })
            .collect();
        let manual: Vec<_> = live.filter(|e| e.peer.conn_type == ConnectionType::Manual).map(|e| e.net).collect();
        let Some(id) = extra_full_relay_to_evict(&full, &manual, self.conn.planner.max_full_relay()) else { return };
        if self.evict_extra(id, "outbound peer", "last block announcement received", DisconnectReason::ExtraOutbound) {
            self.conn.planner.extra_outbound_evicted();
        }
    }

    /// Closes the extra outbound peer `id` chosen by an `EvictExtraOutboundPeers` step (Core's
    /// log line names `what` and when it last gave us a block, `since`); false if it is gone.
    fn evict_extra(&mut self, id: PeerId, what: &str, since: &str, reason: DisconnectReason) -> bool {
        let Some(e) = self.peers.get_mut(&id) else { return false };
        debug!(
            target: "net",
            "disconnecting extra {what}={id} ({since} at time {})",
            e.peer.headers.last_block_time.unwrap_or(0)
        );
        e.closing = true;
        self.cx.ctl.send(SocketCommand::Disconnect { id, reason });
        true
    }

    /// An automatic dial ended before becoming a peer.
    pub(super) fn on_connect_failed(&mut self, addr: SocketAddr, conn_type: ConnectionType) {
        debug!(target: "net", "automatic {conn_type} connection failed");
        self.conn.planner.dial_done(addr);
    }

    /// A DNS seed's answer: Core files each address with the seeds' service bits and a random
    /// age of three to seven days, the seed's name as source.
    pub(super) fn on_seed_addrs(&mut self, source: &str, ips: Vec<IpAddr>, now: Now) {
        let port = self.default_port;
        let entries: Vec<AddrEntry> = ips
            .into_iter()
            .map(|ip| {
                let age = 3 * 86_400 + self.rng_std.random_range(0..4 * 86_400);
                AddrEntry::from_socket(SocketAddr::new(ip, port), seeds_service_flags(), now.unix - age)
            })
            .collect();
        let added = self.cx.protocol.addrman_mut().add(&entries, &internal(source), 0, now.unix);
        debug!(target: "net", "{added} of {} addresses from {source} added to the address book", entries.len());
    }

    /// Core's `DumpAnchors`: the block-relay-only peers (at most two), for the next start.
    pub(super) fn dump_anchors(&self) {
        let Some(path) = &self.conn.anchors_file else { return };
        let mut anchors: Vec<AddrEntry> = self
            .peers
            .values()
            .filter(|e| e.peer.conn_type == ConnectionType::BlockRelayOnly)
            .map(|e| anchor_entry(&e.peer, crate::base::time::unix_now()))
            .collect();
        // The shutdown usually closed them already.
        anchors.extend(self.shutdown_anchors.iter().cloned());
        anchors.truncate(crate::engine::policy::outbound::MAX_ANCHORS);
        match anchors::save(path, self.cx.magic, &anchors) {
            Ok(()) => {
                info!("DumpAnchors: Flush {} outbound block-relay-only peer addresses to anchors.dat", anchors.len())
            }
            Err(e) => warn!("cannot write {}: {e}", path.display()),
        }
    }
}
