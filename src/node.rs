//! Starting and stopping the node (Core's `CConnman::Start`/`Stop`): binds the listeners,
//! builds the state the threads share, spawns the socket handler, message handler and dialer,
//! and joins them on stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use bitcoin::p2p::ServiceFlags;
use mio::{Poll, Waker};
use tracing::{info, warn};

use crate::chain::accept::Chain;
use crate::chain::params::ChainParams;
use crate::config::Config;
use crate::msg_handler::{HandlerParts, MessageHandler};
use crate::net::dialer::{self, BadPeerSpec, DialPlan, PeerSpec};
use crate::net::discourage::Discouraged;
use crate::net::listen::{self, BindError};
use crate::net::socket_handler::{SocketConfig, SocketHandler, SocketParts, WAKER_TOKEN};
use crate::net::totals::NetTotals;
use crate::net::wake::{MsgWake, SocketControl};
use crate::protocol::{Protocol, ProtocolParams};
use crate::sys;
use crate::time::Clock;

/// Core's `MIN_CORE_FDS` (LevelDB's reserve plus message capture).
const MIN_CORE_FDS: u64 = 151;
/// Core's `MAX_ADDNODE_CONNECTIONS`.
const MAX_ADDNODE_CONNECTIONS: u64 = 8;
/// The header store's file name in the network's data directory.
pub const HEADERS_FILE: &str = "headers.dat";

/// Starting the node failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listening address could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// A `--connect`/`--addnode` value is not an address.
    #[error(transparent)]
    PeerSpec(#[from] BadPeerSpec),
    /// Too few file descriptors even for the minimum.
    #[error("not enough file descriptors available: {available} available, {required} required")]
    FileDescriptors {
        /// What the OS allows.
        available: u64,
        /// What the node needs at least.
        required: u64,
    },
    /// The poll or a thread could not be created.
    #[error("cannot start network threads: {0}")]
    Io(#[from] std::io::Error),
    /// The header store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::chain::store::StoreError),
}

/// A running node. Dropping it without [`Node::stop`] leaves the threads running.
pub struct Node {
    ctl: SocketControl,
    wake: Arc<MsgWake>,
    dial_stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    listen_addrs: Vec<SocketAddr>,
    totals: Arc<NetTotals>,
}

impl Node {
    /// Binds, spawns the threads and starts dialing. `max_connections` is trimmed to the
    /// file-descriptor limit as in Core.
    pub fn start(cfg: &Config) -> Result<Node, StartError> {
        let port = cfg.listen_port();
        let default_port = cfg.network.default_port();
        let mut targets = Vec::new();
        for s in cfg.connect.iter().filter(|s| s.as_str() != "0").chain(&cfg.addnode) {
            targets.push(PeerSpec::parse(s, default_port)?);
        }
        let listeners = if cfg.listen { listen::bind_all(&cfg.bind, port)? } else { Vec::new() };
        let listen_addrs: Vec<SocketAddr> = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();

        let nbind = listeners.len().max(1) as u64;
        let required = MIN_CORE_FDS + MAX_ADDNODE_CONNECTIONS + nbind;
        let available = sys::raise_fd_limit(cfg.max_connections as u64 + required);
        if available < required {
            return Err(StartError::FileDescriptors { available, required });
        }
        let max_connections = (available - required).min(cfg.max_connections as u64) as usize;
        if max_connections < cfg.max_connections {
            warn!(
                "Reducing -maxconnections from {} to {}, because of system limitations.",
                cfg.max_connections, max_connections
            );
        }
        let effective = Config { max_connections, ..cfg.clone() };

        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER_TOKEN)?;
        let (ctl, commands) = SocketControl::new(waker);
        let wake = Arc::new(MsgWake::default());
        let totals = Arc::new(NetTotals::default());
        let clock = Clock::new();
        let discouraged = Arc::new(Discouraged::default());
        let (dialer_tx, dialer_rx) = crossbeam_channel::unbounded();

        let socket = SocketHandler::new(
            SocketParts {
                poll,
                listeners,
                commands,
                ctl: ctl.clone(),
                wake: wake.clone(),
                dialer: (!targets.is_empty()).then_some(dialer_tx),
                totals: totals.clone(),
                clock,
                discouraged: discouraged.clone(),
            },
            SocketConfig {
                magic: cfg.network.magic(),
                max_receive_buffer: cfg.max_receive_buffer,
                max_send_buffer: cfg.max_send_buffer,
                max_inbound: effective.max_inbound(),
                connect_timeout: cfg.connect_timeout,
                log_ips: cfg.log.log_ips,
            },
        )?;
        let params = ChainParams::new(cfg.network);
        let min_work = cfg.minimum_chain_work.unwrap_or(params.minimum_chain_work);
        let (chain, _restored) = Chain::open(params, min_work, &cfg.net_dir().join(HEADERS_FILE))?;
        let protocol = Protocol::new(
            ProtocolParams {
                user_agent: cfg.user_agent(),
                services: ServiceFlags::NONE,
                peer_timeout: cfg.peer_timeout,
                log_ips: cfg.log.log_ips,
            },
            chain,
        );
        let handler = MessageHandler::new(
            protocol,
            HandlerParts {
                magic: cfg.network.magic(),
                wake: wake.clone(),
                ctl: ctl.clone(),
                clock,
                totals: totals.clone(),
                discouraged,
                capture_dir: cfg.capture_messages.then(|| cfg.net_dir()),
                debug_peers: cfg.log.debug_peers.clone(),
            },
        );

        let mut threads = Vec::new();
        threads.push(std::thread::Builder::new().name("btcloop-net".into()).spawn(move || socket.run())?);
        threads.push(std::thread::Builder::new().name("btcloop-msghand".into()).spawn(move || handler.run())?);
        let dial_stop = Arc::new(AtomicBool::new(false));
        if !targets.is_empty() {
            let plan = DialPlan::new(targets, std::time::Instant::now());
            let (ctl2, stop2) = (ctl.clone(), dial_stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("btcloop-opencon".into())
                    .spawn(move || dialer::run(plan, dialer_rx, ctl2, stop2))?,
            );
        }
        for a in &listen_addrs {
            info!("Bound to {a}");
        }
        Ok(Node { ctl, wake, dial_stop, threads, listen_addrs, totals })
    }

    /// The addresses actually listened on (with the real port when `--port=0`).
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.listen_addrs
    }

    /// Node-wide counters.
    pub fn totals(&self) -> &Arc<NetTotals> {
        &self.totals
    }

    /// Interrupts and joins every thread; all connections are closed. The socket handler
    /// stops first, so the message handler still logs each connection's end.
    pub fn stop(self) {
        self.dial_stop.store(true, Ordering::Release);
        self.ctl.interrupt();
        let mut threads = self.threads.into_iter();
        // Spawn order: socket handler, message handler, then (maybe) the dialer.
        let socket = threads.next();
        if let Some(t) = socket {
            let _ = t.join();
        }
        self.wake.interrupt();
        for t in threads {
            let _ = t.join();
        }
    }
}
