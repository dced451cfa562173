//! Starting and stopping the node (Core's `CConnman::Start`/`Stop` plus `AppInitServers`):
//! binds the listeners, builds the state the threads share, spawns the socket handler, message
//! handler, dialer, RPC server and metrics server, and joins them on stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use bitcoin::p2p::ServiceFlags;
use mio::{Poll, Waker};
use tracing::{error, info, warn};

use rand::RngExt;
use rand::seq::SliceRandom;

use crate::base::sys;
use crate::base::time::Clock;
use crate::base::totals::NetTotals;
use crate::daemon::config::Config;
use crate::daemon::logging::LogControl;
use crate::daemon::metrics::{MetricsError, MetricsServer};
use crate::daemon::msg_handler::{ConnParts, HandlerParts, MessageHandler};
use crate::daemon::net::dialer::{self, BadPeerSpec, DialPlan, PeerSpec};
use crate::daemon::net::listen::{self, BindError};
use crate::daemon::net::seeder::{SeedFacts, Seeder, system_resolver};
use crate::daemon::net::socket_handler::{SocketConfig, SocketHandler, SocketParts, WAKER_TOKEN};
use crate::daemon::net::tor;
use crate::daemon::net::wake::{MsgWake, NetEvent, SocketControl};
use crate::daemon::rpc::{RpcContext, RpcServer, RpcStartError};
use crate::engine::addrman::{AddrEntry, AddrMan, AddrManError, AddrManFileError, AddrNetwork, NetGroupRule};
use crate::engine::chain::accept::Chain;
use crate::engine::chain::params::ChainParams;
use crate::engine::peerman::{ConnSetup, PeerManager};
use crate::engine::policy::anchors;
use crate::engine::policy::banman::{BANLIST_FILE, BanListError, BanMan};
use crate::engine::policy::discourage::Discouraged;
use crate::engine::policy::local::{LOCAL_BIND, LOCAL_IF, LOCAL_MANUAL, LocalAddrs};
use crate::engine::policy::outbound::{self, OutboundPlanner};
use crate::engine::policy::seeding::DnsSeeding;
use crate::engine::policy::seeds::{self, dns_seeds};
use crate::engine::protocol::{Protocol, ProtocolParams, ProtocolParts};

pub mod blocks;
pub mod disk_writer;

/// Core's `MIN_CORE_FDS` (LevelDB's reserve plus message capture).
const MIN_CORE_FDS: u64 = 151;
/// The header store's file name in the network's data directory.
pub const HEADERS_FILE: &str = "headers.dat";
/// The address book's file name in the network's data directory (as Core's).
pub const PEERS_FILE: &str = "peers.dat";

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
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The poll or a thread could not be created.
    #[error("cannot start network threads: {0}")]
    Io(#[from] std::io::Error),
    /// The header store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::engine::chain::store::StoreError),
    /// The block database or the validation thread could not be started.
    #[error(transparent)]
    Blocks(#[from] blocks::BlocksStartError),
    /// `banlist.json` could not be read.
    #[error(transparent)]
    BanList(#[from] BanListError),
    /// The RPC server could not start.
    #[error(transparent)]
    Rpc(#[from] RpcStartError),
    /// The metrics server could not start.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// `peers.dat` is corrupt.
    #[error(
        "Invalid or corrupt peers.dat ({0}). As a workaround, you can move the file out of the way (rename, move, or delete) to have a new one created on the next start."
    )]
    PeersFile(AddrManFileError),
}

/// Core's `LoadAddrman`: the address book from `path`; created (and written) if missing; an
/// unsupported version is moved to `peers.dat.bak` and replaced; any other damage is an error.
/// Shared handles connection management needs.
struct ConnShared {
    banman: Arc<BanMan>,
    network_active: Arc<AtomicBool>,
    dialer: crossbeam_channel::Sender<dialer::DialerCommand>,
    seed_facts: Arc<SeedFacts>,
}

/// Sets up automatic connections (Core's `CConnman::Start`): the anchors of the last run,
/// the shuffled seed nodes, the fixed seeds, the reachable networks.
fn connection_parts(
    cfg: &Config,
    addrman: &AddrMan,
    listen_addrs: &[SocketAddr],
    added: &[PeerSpec],
    max_connections: usize,
    shared: ConnShared,
) -> (ConnParts, OutboundPlanner, ConnSetup) {
    let automatic = cfg.connect.is_empty();
    let anchors_path = cfg.net_dir().join(anchors::ANCHORS_FILE);
    let anchors = if automatic {
        match anchors::take(&anchors_path, cfg.network.magic()) {
            Ok(a) => {
                info!("{} block-relay-only anchors will be tried for connections.", a.len());
                a
            }
            Err(e) => {
                warn!("{e}");
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let mut seed_nodes = cfg.seed_nodes.clone();
    seed_nodes.shuffle(&mut rand::rng());
    let mut rng = rand::rng();
    let now = crate::base::time::unix_now();
    const WEEK: i64 = 7 * 86_400;
    let fixed: Vec<AddrEntry> = seeds::fixed_seeds(cfg.network)
        .into_iter()
        .map(|s| {
            let time = now - WEEK - rng.random_range(0..WEEK);
            AddrEntry::new(s.addr, s.port, ServiceFlags::NETWORK | ServiceFlags::WITNESS, time)
        })
        .collect();
    let reachable =
        if cfg.only_net.is_empty() { vec![AddrNetwork::Ipv4, AddrNetwork::Ipv6] } else { cfg.only_net.clone() };
    let setup = outbound::Setup {
        enabled: automatic,
        seed_nodes,
        fixed_seeds: cfg.fixed_seeds,
        dnsseed: cfg.dnsseed,
        have_addnodes: !cfg.addnode.is_empty(),
        reachable,
        anchors,
        max_connections,
    };
    let mut std_rng: rand::rngs::StdRng = rand::make_rng();
    let planner =
        OutboundPlanner::new(setup, fixed, std::time::Instant::now(), addrman.size(None, None) == 0, &mut std_rng);
    for line in planner.start_log() {
        info!("{line}");
    }
    let parts = ConnParts {
        banman: shared.banman,
        network_active: shared.network_active,
        dialer: Some(shared.dialer),
        anchors_file: automatic.then_some(anchors_path),
        seed_facts: shared.seed_facts,
    };
    let setup = ConnSetup {
        default_port: cfg.network.default_port(),
        local_ips: listen_addrs.iter().map(|a| a.ip()).filter(|ip| !ip.is_unspecified()).collect(),
        added: added.iter().filter_map(|spec| Some(SocketAddr::new(spec.host.parse().ok()?, spec.port))).collect(),
    };
    (parts, planner, setup)
}

fn open_addrman(path: &std::path::Path, magic: [u8; 4], rule: NetGroupRule) -> Result<AddrMan, StartError> {
    use rand::RngExt;
    let mut rng = rand::rng();
    let start = std::time::Instant::now();
    let fresh = |rng: &mut rand::rngs::ThreadRng| AddrMan::new(rng.random(), rng.random(), rule);
    match AddrMan::load(path, magic, rng.random(), rule) {
        Ok(a) => {
            info!("Loaded {} addresses from peers.dat {}ms", a.size(None, None), start.elapsed().as_millis());
            Ok(a)
        }
        Err(e) if e.is_not_found() => {
            info!("Creating peers.dat because the file was not found ({})", path.display());
            let a = fresh(&mut rng);
            a.save(path, magic).map_err(StartError::PeersFile)?;
            Ok(a)
        }
        Err(e) if matches!(e.error, AddrManError::UnsupportedVersion(..)) => {
            let mut backup = path.as_os_str().to_os_string();
            backup.push(".bak");
            std::fs::rename(path, &backup).map_err(|_| StartError::PeersFile(e))?;
            warn!(
                "Creating new peers.dat because the file version was not compatible ({}). Original backed up to peers.dat.bak",
                path.display()
            );
            let a = fresh(&mut rng);
            a.save(path, magic).map_err(StartError::PeersFile)?;
            Ok(a)
        }
        Err(e) => Err(StartError::PeersFile(e)),
    }
}

/// Core's `GetLocalAddresses`: the addresses of the interfaces that are up, loopback excluded
/// (the I/O of `--discover`, done once at start).
fn interface_addresses() -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we only read and free with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a non-null node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        let flags = ifa.ifa_flags as libc::c_int;
        if ifa.ifa_addr.is_null() || flags & libc::IFF_UP == 0 || flags & libc::IFF_LOOPBACK != 0 {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points at a sockaddr whose family says its real type.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        if family == libc::AF_INET {
            // SAFETY: an AF_INET address is a sockaddr_in.
            let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            out.push(std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).into());
        } else if family == libc::AF_INET6 {
            // SAFETY: an AF_INET6 address is a sockaddr_in6.
            let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
            out.push(std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr).into());
        }
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// Core's local-address set-up: `--externalip` (`LOCAL_MANUAL`), with `--discover` and a
/// wildcard bind the interface addresses (`Discover()`, `LOCAL_IF`), and the routable
/// addresses bound to (`LOCAL_BIND`, with `--discover`).
fn local_addresses(cfg: &Config, listen_addrs: &[SocketAddr], rule: NetGroupRule) -> LocalAddrs {
    let port = listen_addrs.first().map_or_else(|| cfg.listen_port(), SocketAddr::port);
    let mut local = LocalAddrs::new(cfg.listen, cfg.discover, port, rule, cfg.log.log_ips);
    for e in &cfg.external_ip {
        local.add(SocketAddr::new(e.ip, e.port.unwrap_or(port)), LOCAL_MANUAL);
    }
    let bind_any = cfg.bind.is_empty() || cfg.bind.iter().any(|b| b.ip().is_unspecified());
    if cfg.discover && bind_any {
        for ip in interface_addresses() {
            if local.add_ip(ip, LOCAL_IF) && cfg.log.log_ips {
                info!("Discover: {ip}");
            }
        }
    }
    for a in listen_addrs {
        local.add(*a, LOCAL_BIND);
    }
    local
}

/// A node thread that ended by panicking, found when [`Node::stop`] joined it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadPanic {
    /// The thread's name (`btcloop-net`, …).
    pub thread: String,
    /// The panic's message.
    pub message: String,
}

/// Joins `t`; a panic it ended with is logged and added to `panics`.
fn join_checked(t: JoinHandle<()>, panics: &mut Vec<ThreadPanic>) {
    let thread = t.thread().name().unwrap_or("<unnamed>").to_string();
    if let Err(payload) = t.join() {
        let message = crate::daemon::panics::payload_message(payload.as_ref()).to_string();
        error!("Thread {thread} had stopped by panicking: {message}");
        panics.push(ThreadPanic { thread, message });
    }
}

/// What the node needs from the process that runs it.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Run-time logging control (the `logging` RPC).
    pub log: Option<Arc<LogControl>>,
    /// Asks the process to shut down (the `stop` RPC).
    pub on_stop: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Resolves DNS seeds (default: the system resolver; tests give a stub).
    pub resolver: Option<crate::daemon::net::seeder::Resolver>,
}

/// A running node. Dropping it without [`Node::stop`] leaves the threads running.
pub struct Node {
    ctl: SocketControl,
    wake: Arc<MsgWake>,
    dial_stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    listen_addrs: Vec<SocketAddr>,
    totals: Arc<NetTotals>,
    rpc: Option<RpcServer>,
    metrics: Option<MetricsServer>,
}

impl Node {
    /// Binds, spawns the threads and starts dialing. `max_connections` is trimmed to the
    /// file-descriptor limit as in Core.
    pub fn start(cfg: &Config, hooks: Hooks) -> Result<Node, StartError> {
        Node::start_gated(cfg, hooks, None)
    }

    /// [`Node::start`] with a test hook: the disk-writer thread waits at `disk_gate` before
    /// each write while it is closed.
    pub fn start_gated(
        cfg: &Config,
        hooks: Hooks,
        disk_gate: Option<Arc<disk_writer::Gate>>,
    ) -> Result<Node, StartError> {
        let net_dir = cfg.net_dir();
        sys::create_private_dir(&net_dir).map_err(|source| StartError::DataDir { path: net_dir.clone(), source })?;
        let stale = sys::remove_stale_temp_files(&net_dir);
        if stale > 0 {
            info!("Removed {stale} temporary files left by an interrupted write in {}", net_dir.display());
        }
        let port = cfg.listen_port();
        let default_port = cfg.network.default_port();
        let parse = |list: &[String]| -> Result<Vec<PeerSpec>, BadPeerSpec> {
            list.iter().filter(|s| s.as_str() != "0").map(|s| PeerSpec::parse(s, default_port)).collect()
        };
        let (connect, added) = (parse(&cfg.connect)?, parse(&cfg.addnode)?);
        if let Some(point) = cfg.test_panic {
            crate::daemon::panics::arm_test_panic(point);
        }
        let banman = Arc::new(BanMan::open(&cfg.net_dir().join(BANLIST_FILE), crate::base::time::unix_now())?);
        let network_active = Arc::new(AtomicBool::new(true));
        let mut listeners = if cfg.listen { listen::bind_all(&cfg.bind, port)? } else { Vec::new() };
        let listen_addrs: Vec<SocketAddr> = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
        // Where our onion service's connections arrive: not advertised, and a failure to bind
        // one is logged, not fatal (Core's onion binds).
        let onion_listeners = if cfg.listen { cfg.onion_listeners() } else { Vec::new() };
        let onion_from = listeners.len();
        let mut onion_bound = Vec::new();
        for a in onion_listeners {
            match listen::bind(a) {
                Ok(l) => {
                    onion_bound.push(a);
                    listeners.push(l);
                }
                Err(e) => error!("{e}"),
            }
        }

        let nbind = listeners.len().max(1) as u64;
        let required = MIN_CORE_FDS + dialer::MAX_ADDNODE_CONNECTIONS as u64 + nbind;
        let available = sys::raise_fd_limit((cfg.max_connections as u64).saturating_add(required));
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
        let (dialer_cmd_tx, dialer_cmd_rx) = crossbeam_channel::unbounded();

        let socket = SocketHandler::new(
            SocketParts {
                poll,
                listeners,
                onion_from,
                commands,
                ctl: ctl.clone(),
                wake: wake.clone(),
                dialer: Some(dialer_tx),
                totals: totals.clone(),
                clock,
                discouraged: discouraged.clone(),
                banman: banman.clone(),
                network_active: network_active.clone(),
            },
            SocketConfig {
                magic: cfg.network.magic(),
                max_receive_buffer: cfg.max_receive_buffer,
                max_send_buffer: cfg.max_send_buffer,
                max_inbound: effective.max_inbound(),
                connect_timeout: cfg.connect_timeout,
                log_ips: cfg.log.log_ips,
                whitelist: cfg.whitelist.clone(),
                v2transport: cfg.v2transport,
                proxy: cfg.proxy.clone(),
            },
        )?;
        let params = ChainParams::new(cfg.network);
        let min_work = cfg.minimum_chain_work.unwrap_or(params.minimum_chain_work);
        let (mut chain, _restored) = Chain::open(params, min_work, &cfg.net_dir().join(HEADERS_FILE))?;
        let validation = blocks::start(
            &cfg.net_dir(),
            cfg.network,
            &mut chain,
            crate::daemon::validation::FlushPolicy::default(),
            wake.clone(),
            crate::base::time::unix_now(),
        )?;
        let block_queries = validation.queries();
        // The header store's file side and peers.dat belong to the disk-writer thread from here.
        let (disk, disk_thread) = disk_writer::spawn(chain.store_mut().and_then(|s| s.detach_file()), disk_gate)?;
        let rule = if cfg.loopback_netgroups { NetGroupRule::LoopbackPerAddress } else { NetGroupRule::Core };
        let addrman = open_addrman(&cfg.net_dir().join(PEERS_FILE), cfg.network.magic(), rule)?;
        let seed_facts = Arc::new(SeedFacts::default());
        let automatic = cfg.connect.is_empty();
        let (conn, planner, conn_setup) = connection_parts(
            cfg,
            &addrman,
            &listen_addrs,
            &added,
            max_connections,
            ConnShared {
                banman: banman.clone(),
                network_active: network_active.clone(),
                dialer: dialer_cmd_tx.clone(),
                seed_facts: seed_facts.clone(),
            },
        );
        let protocol = Protocol::new(ProtocolParts {
            params: ProtocolParams {
                user_agent: cfg.user_agent(),
                // A full node that keeps every block (Core's default, not pruned).
                services: if cfg.v2transport {
                    ServiceFlags::NETWORK | ServiceFlags::WITNESS | ServiceFlags::P2P_V2
                } else {
                    ServiceFlags::NETWORK | ServiceFlags::WITNESS
                },
                peer_timeout: cfg.peer_timeout,
                log_ips: cfg.log.log_ips,
                blocks: true,
            },
            chain,
            max_tip_age: cfg.max_tip_age.as_secs().try_into().unwrap_or(i64::MAX),
            addrman,
            local: local_addresses(cfg, &listen_addrs, rule),
            bans: Box::new(crate::engine::protocol::addr::BanLists {
                banman: banman.clone(),
                discouraged: discouraged.clone(),
            }),
            rng: rand::make_rng(),
        });
        let mgr = PeerManager::new(protocol, planner, conn_setup, rand::make_rng(), std::time::Instant::now());
        let handler = MessageHandler::new(
            mgr,
            HandlerParts {
                magic: cfg.network.magic(),
                wake: wake.clone(),
                ctl: ctl.clone(),
                clock,
                totals: totals.clone(),
                discouraged,
                capture_dir: cfg.capture_messages.then(|| cfg.net_dir()),
                debug_peers: cfg.log.debug_peers.clone(),
                peers_file: Some(cfg.net_dir().join(PEERS_FILE)),
                disk: Some(disk),
                default_port,
                conn,
                validation: Some(validation),
            },
        );

        let mut threads = Vec::new();
        threads.push(std::thread::Builder::new().name("btcloop-net".into()).spawn(move || socket.run())?);
        threads.push(std::thread::Builder::new().name("btcloop-msghand".into()).spawn(move || handler.run())?);
        // Joined right after the message handler: it ends once the handler's last writes are done.
        threads.push(disk_thread);
        let dial_stop = Arc::new(AtomicBool::new(false));
        let plan = DialPlan::with_added(connect, added, std::time::Instant::now());
        let (ctl2, stop2, proxy) = (ctl.clone(), dial_stop.clone(), cfg.proxy.clone());
        threads.push(
            std::thread::Builder::new()
                .name("btcloop-opencon".into())
                .spawn(move || dialer::run(plan, dialer_rx, dialer_cmd_rx, ctl2, stop2, proxy))?,
        );
        if automatic && cfg.dnsseed {
            let mut seeds: Vec<&'static str> = dns_seeds(cfg.network).to_vec();
            seeds.shuffle(&mut rand::rng());
            let seeding = DnsSeeding::new(
                seeds,
                cfg.dnsseed,
                cfg.force_dnsseed,
                !cfg.seed_nodes.is_empty(),
                std::time::Instant::now(),
            );
            let seeder = Seeder {
                seeding,
                facts: seed_facts,
                network_active: network_active.clone(),
                resolver: hooks.resolver.clone().unwrap_or_else(system_resolver),
                wake: wake.clone(),
                dialer: dialer_cmd_tx.clone(),
                port: default_port,
                name_proxy: cfg.proxy.for_ip().is_some(),
            };
            let stop = dial_stop.clone();
            threads.push(std::thread::Builder::new().name("btcloop-dnsseed".into()).spawn(move || seeder.run(stop))?);
        } else if automatic {
            info!("DNS seeding disabled");
        }
        if cfg.listen && cfg.listen_onion {
            let settings = tor::TorSettings {
                control: cfg.tor_control,
                password: cfg.tor_password.clone(),
                target: cfg.onion_target(),
                virtual_port: default_port,
                key_file: cfg.net_dir().join(tor::KEY_FILE),
            };
            let (stop, wake) = (dial_stop.clone(), wake.clone());
            threads.push(std::thread::Builder::new().name("btcloop-torctl".into()).spawn(move || {
                tor::run(settings, stop, |ev| {
                    if let tor::TorEvent::Lost(id) = &ev {
                        info!("tor: onion service {id}.onion is gone (control connection closed)");
                    }
                    wake.post_event(NetEvent::Tor(ev, default_port));
                })
            })?);
        }
        let mut node = Node { ctl, wake, dial_stop, threads, listen_addrs, totals, rpc: None, metrics: None };
        // From here on a failure must stop the threads already running.
        if let Err(e) = node.start_servers(cfg, hooks, banman, network_active, dialer_cmd_tx, block_queries) {
            node.stop();
            return Err(e);
        }
        for a in &node.listen_addrs {
            info!("Bound to {a}");
        }
        for a in &onion_bound {
            info!("Bound to {a} (onion service target)");
        }
        Ok(node)
    }

    fn start_servers(
        &mut self,
        cfg: &Config,
        hooks: Hooks,
        banman: Arc<BanMan>,
        network_active: Arc<AtomicBool>,
        dialer: crossbeam_channel::Sender<dialer::DialerCommand>,
        blocks: Option<crate::daemon::validation::Queries>,
    ) -> Result<(), StartError> {
        if cfg.rpc.server {
            let ctx = RpcContext {
                wake: self.wake.clone(),
                ctl: self.ctl.clone(),
                dialer,
                banman,
                totals: self.totals.clone(),
                log: hooks.log,
                network_active,
                stop_requested: AtomicBool::new(false),
                started: std::time::Instant::now(),
                user_agent: cfg.user_agent(),
                version_number: crate::daemon::rpc::version_number(),
                default_port: cfg.network.default_port(),
                ban_time_secs: crate::engine::policy::banman::ban_duration_secs(cfg.ban_time),
                blocks,
                network: cfg.network.to_bitcoin(),
                v2transport: cfg.v2transport,
                proxy: cfg.proxy.clone(),
            };
            let on_stop = hooks.on_stop.unwrap_or_else(|| Arc::new(|| {}));
            self.rpc = Some(RpcServer::start(cfg, ctx, on_stop)?);
        }
        if let Some(addr) = cfg.metrics_bind {
            self.metrics = Some(MetricsServer::start(addr, self.wake.clone(), self.totals.clone())?);
        }
        Ok(())
    }

    /// The RPC server's addresses (empty without `--server`).
    pub fn rpc_addrs(&self) -> &[SocketAddr] {
        self.rpc.as_ref().map_or(&[], |r| r.bound())
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
    /// stops first, so the message handler still logs each connection's end. Returns the
    /// threads that had ended by panicking (each also logged).
    pub fn stop(mut self) -> Vec<ThreadPanic> {
        // The servers go first: their requests need the message handler to answer.
        if let Some(m) = self.metrics.take() {
            m.stop();
        }
        if let Some(r) = self.rpc.take() {
            r.stop();
        }
        self.dial_stop.store(true, Ordering::Release);
        self.ctl.interrupt();
        let mut threads = self.threads.into_iter();
        // Spawn order: socket handler, message handler, disk writer (it drains what the
        // handler sent at its end, so `stop` returns with headers.dat and peers.dat written),
        // then the dialer and (maybe) the seeder.
        let socket = threads.next();
        let mut panics = Vec::new();
        if let Some(t) = socket {
            join_checked(t, &mut panics);
        }
        self.wake.interrupt();
        for t in threads {
            join_checked(t, &mut panics);
        }
        panics
    }
}
