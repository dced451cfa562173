//! The message handler's share of connection management: the handles the peer manager's
//! connection decisions need (bans and `setnetworkactive` for its planner rounds, the dialer
//! for addr-fetch names), the facts the seeding thread reads, and `anchors.dat` at shutdown.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::Sender;
use tracing::{info, warn};

use super::MessageHandler;
use crate::daemon::net::dialer::{DialerCommand, PeerSpec};
use crate::daemon::net::seeder::SeedFacts;
use crate::engine::peerman::TickEnv;
use crate::engine::policy::anchors;
use crate::engine::policy::banman::BanMan;
use crate::engine::protocol::Now;

/// What connection management needs from the rest of the node.
pub struct ConnParts {
    /// Manual bans.
    pub banman: Arc<BanMan>,
    /// `setnetworkactive`.
    pub network_active: Arc<AtomicBool>,
    /// The dialer thread, for addr-fetch connections to named hosts.
    pub dialer: Option<Sender<DialerCommand>>,
    /// Where the block-relay-only peers are written at shutdown, when automatic connections are on.
    pub anchors_file: Option<PathBuf>,
    /// What the seeding thread reads.
    pub seed_facts: Arc<SeedFacts>,
}

impl ConnParts {
    /// Hands a `--seednode` name to the dialer thread, which resolves it and connects.
    pub(super) fn addr_fetch(&self, host: &str, default_port: u16) {
        match (&self.dialer, PeerSpec::parse(host, default_port)) {
            (Some(d), Ok(spec)) => {
                let _ = d.send(DialerCommand::AddrFetch(spec));
            }
            (_, Err(e)) => warn!("{e}"),
            (None, _) => {}
        }
    }
}

impl MessageHandler {
    /// The manager's node-wide timers (outbound planner, stale-tip check, extra-peer
    /// eviction), then the facts the seeding thread reads.
    pub(super) fn tick(&mut self, now: Now) {
        let c = &self.conn;
        let (banman, discouraged) = (&c.banman, &self.cx.discouraged);
        let refused = |ip: std::net::IpAddr| banman.is_banned(ip, now.unix) || discouraged.contains(&ip);
        let env = TickEnv { network_active: c.network_active.load(Ordering::Acquire), refused: &refused };
        self.cx.mgr.tick(now, &env);
        let mgr = &self.cx.mgr;
        c.seed_facts.full_outbound.store(mgr.full_outbound_count(), Ordering::Relaxed);
        c.seed_facts.addrman_size.store(mgr.protocol().addrman().size(None, None), Ordering::Relaxed);
        self.apply_actions();
    }

    /// Core's `DumpAnchors`: the block-relay-only peers (at most two), for the next start.
    pub(super) fn dump_anchors(&self) {
        let Some(path) = &self.conn.anchors_file else { return };
        let anchors = self.cx.mgr.anchors(crate::base::time::unix_now());
        match anchors::save(path, self.cx.magic, &anchors) {
            Ok(()) => {
                info!("DumpAnchors: Flush {} outbound block-relay-only peer addresses to anchors.dat", anchors.len())
            }
            Err(e) => warn!("cannot write {}: {e}", path.display()),
        }
    }
}
