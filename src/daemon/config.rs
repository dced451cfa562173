//! `Config`: every setting of the node as plain data with Core's defaults (Core's
//! `CConnman::Options` plus the `-flags` that feed it). Built from the command line only in
//! `main.rs`; tests build it directly.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use crate::base::chainparams::Network;

/// Core's `DEFAULT_MAX_PEER_CONNECTIONS`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 125;
/// Core's `DEFAULT_PEER_CONNECT_TIMEOUT` (seconds).
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(60);
/// Core's `DEFAULT_MAXRECEIVEBUFFER` (in units of 1,000 bytes).
pub const DEFAULT_MAX_RECEIVE_BUFFER_KB: usize = 5_000;
/// Core's `DEFAULT_MAXSENDBUFFER` (in units of 1,000 bytes).
pub const DEFAULT_MAX_SEND_BUFFER_KB: usize = 1_000;
/// Core's `DEFAULT_CONNECT_TIMEOUT`: how long a TCP connect may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Outbound slots Core reserves out of `-maxconnections` (8 full-relay, 2 block-relay-only,
/// 1 feeler); inbound connections get the rest.
pub const AUTOMATIC_OUTBOUND_SLOTS: usize = 8 + 2 + 1;

/// Core's `DEFAULT_HTTP_THREADS`: threads answering RPC requests.
pub const DEFAULT_RPC_THREADS: usize = 16;
/// Core's `DEFAULT_HTTP_SERVER_TIMEOUT` (`--rpcservertimeout`).
pub const DEFAULT_RPC_SERVER_TIMEOUT: Duration = Duration::from_secs(30);
/// Core's default `-bantime`: how long `setban` bans without a duration (24 h).
pub const DEFAULT_BANTIME: Duration = Duration::from_secs(24 * 60 * 60);
// --- Accepted ranges of the numeric settings (command line and `btcloop.conf` alike) ---

/// `--peertimeout` in seconds: Core requires a positive value and keeps it as a 64-bit signed
/// count of seconds.
pub const PEER_TIMEOUT_RANGE: RangeInclusive<u64> = 1..=i64::MAX as u64;
/// `--bantime` in seconds: Core keeps it as a 64-bit signed count of seconds; 0 or less would
/// make bans that expire at once, so it must be positive.
pub const BANTIME_RANGE: RangeInclusive<u64> = 1..=i64::MAX as u64;
/// `--maxconnections`: Core rejects negative values and keeps it in an `int`.
pub const MAX_CONNECTIONS_RANGE: RangeInclusive<usize> = 0..=i32::MAX as usize;
/// `--maxreceivebuffer` and `--maxsendbuffer` in units of 1,000 bytes: Core multiplies them by
/// 1,000 into an `unsigned int` of bytes, so larger values would wrap there.
pub const BUFFER_KB_RANGE: RangeInclusive<usize> = 0..=(u32::MAX / 1000) as usize;
/// `--rpcthreads`: Core raises values under 1 to 1; more than 512 threads is refused here
/// (each is an OS thread with its own stack).
pub const RPC_THREADS_RANGE: RangeInclusive<usize> = 1..=512;
/// `--maxtipage`: header times are 32-bit seconds, so a larger age means nothing; Core accepts
/// any positive number.
pub const MAX_TIP_AGE_RANGE: RangeInclusive<u64> = 1..=u32::MAX as u64;
/// `--rpcservertimeout`: Core treats 0 or less as "no timeout"; refused here, since a deadline
/// that can be switched off lets slow clients hold the server again. At most a day.
pub const RPC_SERVER_TIMEOUT_RANGE: RangeInclusive<u64> = 1..=86_400;

/// The RPC cookie file's name in the network's data directory (Core's `.cookie`).
pub const COOKIE_FILE: &str = ".cookie";

/// The JSON-RPC server's settings (Core's `-server`, `-rpc*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcConfig {
    /// Serve JSON-RPC (`--server`).
    pub server: bool,
    /// Addresses to listen on (`--rpcbind`, `ADDR[:PORT]`); used only with `--rpcallowip`, as
    /// in Core. Empty means 127.0.0.1 and ::1.
    pub bind: Vec<String>,
    /// Port for binds that name none (`--rpcport`); `None` is the network's default.
    pub port: Option<u16>,
    /// Clients allowed besides localhost (`--rpcallowip`, `IP`, `IP/BITS` or `IP/MASK`).
    pub allow_ip: Vec<String>,
    /// `--rpcuser`; with `rpc_password` it replaces the cookie.
    pub user: Option<String>,
    /// `--rpcpassword`.
    pub password: Option<String>,
    /// Where the cookie is written (`--rpccookiefile`); relative paths are under the
    /// network's data directory.
    pub cookie_file: Option<std::path::PathBuf>,
    /// Worker threads (`--rpcthreads`).
    pub threads: usize,
    /// How long a client may take to send a whole request, or stay idle between requests
    /// (`--rpcservertimeout`, Core's default 30 s).
    pub server_timeout: Duration,
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig {
            server: true,
            bind: Vec::new(),
            port: None,
            allow_ip: Vec::new(),
            user: None,
            password: None,
            cookie_file: None,
            threads: DEFAULT_RPC_THREADS,
            server_timeout: DEFAULT_RPC_SERVER_TIMEOUT,
        }
    }
}

/// Where log lines go and how they look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Debug categories switched on (`--debug=CAT`); see [`crate::daemon::logging::CATEGORIES`].
    pub categories: Vec<String>,
    /// Show peer IP addresses in log lines (`--logips`).
    pub log_ips: bool,
    /// Also write log lines to stderr (`--printtoconsole`).
    pub print_to_console: bool,
    /// Write `debug.log` in the network's data directory.
    pub to_file: bool,
    /// One JSON object per line instead of Core-style text (`--log-format=json`).
    pub json: bool,
    /// Peers whose traffic is logged in detail (`--debugpeer`).
    pub debug_peers: Vec<PeerSelector>,
}

/// Which peer `--debugpeer` means: a peer id, every connection from an IP, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerSelector {
    /// A peer id (`peer=N` in the log).
    Id(u64),
    /// Every connection with this IP.
    Ip(std::net::IpAddr),
    /// The connection with this address and port.
    Addr(SocketAddr),
}

impl PeerSelector {
    /// Parses `N`, `IP` or `IP:PORT` (`[IPv6]:PORT`).
    pub fn parse(s: &str) -> Result<PeerSelector, String> {
        if let Ok(id) = s.parse::<u64>() {
            return Ok(PeerSelector::Id(id));
        }
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(PeerSelector::Addr(a));
        }
        s.trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map(PeerSelector::Ip)
            .map_err(|_| format!("'{s}' is not a peer id, IP or IP:PORT"))
    }

    /// Whether the connection `id` with `addr` is meant.
    pub fn matches(&self, id: u64, addr: &SocketAddr) -> bool {
        match self {
            PeerSelector::Id(i) => *i == id,
            PeerSelector::Ip(ip) => *ip == addr.ip(),
            PeerSelector::Addr(a) => a == addr,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            categories: Vec::new(),
            log_ips: false,
            print_to_console: true,
            to_file: true,
            json: false,
            debug_peers: Vec::new(),
        }
    }
}

/// The node's configuration. Plain data: no parsing, no I/O.
#[derive(Clone, Debug)]
pub struct Config {
    /// The network to join.
    pub network: Network,
    /// Base data directory (`--datadir`); the network's own directory is [`Config::net_dir`].
    pub datadir: PathBuf,
    /// `--connect` targets (`HOST[:PORT]`): when non-empty, only these peers are dialed.
    pub connect: Vec<String>,
    /// `--addnode` targets (`HOST[:PORT]`): kept connected in addition to anything else.
    pub addnode: Vec<String>,
    /// Accept inbound connections (`--listen`).
    pub listen: bool,
    /// Addresses to listen on (`--bind`); empty means all interfaces on `port`.
    pub bind: Vec<SocketAddr>,
    /// Listening port (`--port`); `None` means the network's default.
    pub port: Option<u16>,
    /// Maximum automatic + inbound connections (`--maxconnections`).
    pub max_connections: usize,
    /// Handshake / first-message deadline and grace period before inactivity checks
    /// (`--peertimeout`).
    pub peer_timeout: Duration,
    /// TCP connect timeout for outbound dials.
    pub connect_timeout: Duration,
    /// Stop reading a peer while its unprocessed messages exceed this many bytes
    /// (`--maxreceivebuffer` × 1,000).
    pub max_receive_buffer: usize,
    /// Stop processing a peer's messages while its send queue exceeds this many bytes
    /// (`--maxsendbuffer` × 1,000).
    pub max_send_buffer: usize,
    /// Comments appended to the user agent (`--uacomment`).
    pub ua_comments: Vec<String>,
    /// Overrides the network's minimum chain work (`--minimumchainwork`).
    pub minimum_chain_work: Option<bitcoin::pow::Work>,
    /// A best header older than this means initial download (`--maxtipage`, Core's
    /// `-maxtipage`).
    pub max_tip_age: Duration,
    /// Write every message sent and received to `message_capture/` (`--capturemessages`).
    pub capture_messages: bool,
    /// Speak BIP324 v2 (`--v2transport`, Core's default on): inbound peers are served in the
    /// transport they open with, manual connections and automatic ones to addresses that
    /// advertise `NODE_P2P_V2` open with v2 (and retry once in v1), and `NODE_P2P_V2` is
    /// advertised.
    pub v2transport: bool,
    /// SOCKS5 proxies for outbound connections (`--proxy`, `--onion`, `--proxyrandomize`).
    pub proxy: crate::daemon::net::proxy::ProxyConfig,
    /// Create an onion service through Tor's control port while listening (`--listenonion`).
    pub listen_onion: bool,
    /// Tor's control port (`--torcontrol`).
    pub tor_control: SocketAddr,
    /// Tor control password (`--torpassword`).
    pub tor_password: Option<String>,
    /// Listeners for connections that arrive through our onion service (`--bind=ADDR:PORT=onion`);
    /// without any, and without `--bind`, `127.0.0.1:` the listening port + 1, as Core.
    pub onion_bind: Vec<SocketAddr>,
    /// Logging settings.
    pub log: LogConfig,
    /// JSON-RPC server settings.
    pub rpc: RpcConfig,
    /// Serve Prometheus metrics at `http://ADDR:PORT/metrics` (`--metricsbind`).
    pub metrics_bind: Option<SocketAddr>,
    /// Default ban duration of `setban` (`--bantime`).
    pub ban_time: Duration,
    /// Permissions granted to addresses (`--whitelist`).
    pub whitelist: Vec<crate::engine::policy::permissions::Whitelist>,
    /// `--seednode`: peers asked for addresses (addr-fetch) when the book is empty or outbound short.
    pub seed_nodes: Vec<String>,
    /// `--dnsseed`: ask the DNS seeds when the address book is small.
    pub dnsseed: bool,
    /// `--forcednsseed`: ask them at every start.
    pub force_dnsseed: bool,
    /// `--fixedseeds`: the built-in addresses as the last fallback.
    pub fixed_seeds: bool,
    /// `--onlynet`: the networks of automatic connections (empty: IPv4 and IPv6).
    pub only_net: Vec<crate::engine::addrman::AddrNetwork>,
    /// `--test=loopback-netgroups`, for end-to-end tests only: each 127.x address is a routable
    /// network group of its own ([`crate::engine::addrman::NetGroupRule::LoopbackPerAddress`]), for the
    /// address book and the local addresses.
    pub loopback_netgroups: bool,
    /// `--test=panic-msghand`/`panic-net`, for end-to-end tests only: a thread panics on purpose (see
    /// [`crate::daemon::panics::TestPanic`]).
    pub test_panic: Option<crate::daemon::panics::TestPanic>,

    // --- Local addresses (own-address advertisement; `src/net/local.rs`) ---
    /// Our public addresses (`--externalip`), advertised with score `LOCAL_MANUAL`.
    pub external_ip: Vec<crate::engine::policy::local::ExternalAddr>,
    /// Learn our addresses from the interfaces, `--bind` and peers (`--discover`; Core's
    /// default: on unless `--listen=0` or `--externalip`).
    pub discover: bool,

    // --- Running as a service (`src/daemon/service.rs`; used by `main.rs` only) ---
    /// Detach once start-up succeeded (`--daemon`).
    pub daemon: bool,
    /// The PID file (`--pid`), relative to the network's data directory unless absolute; see
    /// [`Config::pid_path`].
    pub pid_file: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            network: Network::Main,
            datadir: default_datadir(),
            connect: Vec::new(),
            addnode: Vec::new(),
            listen: true,
            bind: Vec::new(),
            port: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            peer_timeout: DEFAULT_PEER_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_receive_buffer: DEFAULT_MAX_RECEIVE_BUFFER_KB * 1000,
            max_send_buffer: DEFAULT_MAX_SEND_BUFFER_KB * 1000,
            ua_comments: Vec::new(),
            minimum_chain_work: None,
            max_tip_age: Duration::from_secs(crate::engine::protocol::headers::DEFAULT_MAX_TIP_AGE.unsigned_abs()),
            capture_messages: false,
            v2transport: true,
            proxy: Default::default(),
            listen_onion: true,
            tor_control: SocketAddr::from(([127, 0, 0, 1], crate::base::torcontrol::DEFAULT_TOR_CONTROL_PORT)),
            tor_password: None,
            onion_bind: Vec::new(),
            log: LogConfig::default(),
            rpc: RpcConfig::default(),
            metrics_bind: None,
            ban_time: DEFAULT_BANTIME,
            whitelist: Vec::new(),
            seed_nodes: Vec::new(),
            dnsseed: true,
            force_dnsseed: false,
            fixed_seeds: true,
            only_net: Vec::new(),
            loopback_netgroups: false,
            test_panic: None,
            external_ip: Vec::new(),
            discover: true,
            daemon: false,
            pid_file: PathBuf::from(crate::daemon::service::PID_FILE),
        }
    }
}

impl Config {
    /// The directory holding this network's files (`debug.log`, …): the data directory itself
    /// for mainnet, a sub-directory named as Core names it otherwise.
    pub fn net_dir(&self) -> PathBuf {
        match self.network.datadir_name() {
            Some(sub) => self.datadir.join(sub),
            None => self.datadir.clone(),
        }
    }

    /// The RPC cookie file's path.
    pub fn cookie_path(&self) -> PathBuf {
        match &self.rpc.cookie_file {
            Some(p) => self.net_dir().join(p),
            None => self.net_dir().join(COOKIE_FILE),
        }
    }

    /// The PID file's path: `--pid` under the network's data directory, or as given when
    /// absolute (Core's `-pid`).
    pub fn pid_path(&self) -> PathBuf {
        self.net_dir().join(&self.pid_file)
    }

    /// The port RPC listens on when a bind names none.
    pub fn rpc_port(&self) -> u16 {
        self.rpc.port.unwrap_or_else(|| self.network.default_rpc_port())
    }

    /// The port we listen on.
    pub fn listen_port(&self) -> u16 {
        self.port.unwrap_or_else(|| self.network.default_port())
    }

    /// Where our onion service's connections arrive (Core's `onion_service_target`): the first
    /// onion bind, else the first `--bind`, else `127.0.0.1:` the listening port + 1.
    pub fn onion_target(&self) -> SocketAddr {
        self.onion_bind
            .first()
            .or(self.bind.first())
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], self.listen_port().wrapping_add(1))))
    }

    /// The onion listeners to bind: the `--bind=…=onion` ones, or Core's default one when there
    /// is no `--bind` at all.
    pub fn onion_listeners(&self) -> Vec<SocketAddr> {
        if self.onion_bind.is_empty() && self.bind.is_empty() {
            vec![self.onion_target()]
        } else {
            self.onion_bind.clone()
        }
    }

    /// How many inbound connections may be open at once (Core's `m_max_inbound`).
    pub fn max_inbound(&self) -> usize {
        self.max_connections.saturating_sub(AUTOMATIC_OUTBOUND_SLOTS)
    }

    /// Our BIP14 user agent: `/btcloop:<version>/`, or `/btcloop:<version>(c1; c2)/` with
    /// `--uacomment`s, as Core's `FormatSubVersion`.
    pub fn user_agent(&self) -> String {
        let version = env!("CARGO_PKG_VERSION");
        if self.ua_comments.is_empty() {
            format!("/btcloop:{version}/")
        } else {
            format!("/btcloop:{version}({})/", self.ua_comments.join("; "))
        }
    }
}

/// `~/.btcloop`, or `./.btcloop` when no home directory is known.
pub fn default_datadir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home).join(".btcloop"),
        _ => PathBuf::from(".btcloop"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dir_follows_core_names() {
        let mut c = Config { datadir: PathBuf::from("/d"), ..Config::default() };
        assert_eq!(c.net_dir(), PathBuf::from("/d"));
        c.network = Network::Test;
        assert_eq!(c.net_dir(), PathBuf::from("/d/testnet3"));
        c.network = Network::Regtest;
        assert_eq!(c.net_dir(), PathBuf::from("/d/regtest"));
        assert_eq!(c.pid_path(), PathBuf::from("/d/regtest/btcloopd.pid"));
        c.pid_file = PathBuf::from("run/x.pid");
        assert_eq!(c.pid_path(), PathBuf::from("/d/regtest/run/x.pid"));
        c.pid_file = PathBuf::from("/run/btcloopd/btcloopd.pid");
        assert_eq!(c.pid_path(), PathBuf::from("/run/btcloopd/btcloopd.pid"));
    }

    #[test]
    fn user_agent_with_comments() {
        let mut c = Config::default();
        assert_eq!(c.user_agent(), format!("/btcloop:{}/", env!("CARGO_PKG_VERSION")));
        c.ua_comments = vec!["a".into(), "b".into()];
        assert_eq!(c.user_agent(), format!("/btcloop:{}(a; b)/", env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn debugpeer_selectors() {
        let a: SocketAddr = "127.0.0.1:5".parse().unwrap();
        assert!(PeerSelector::parse("3").unwrap().matches(3, &a));
        assert!(!PeerSelector::parse("4").unwrap().matches(3, &a));
        assert!(PeerSelector::parse("127.0.0.1").unwrap().matches(9, &a));
        assert!(PeerSelector::parse("127.0.0.1:5").unwrap().matches(9, &a));
        assert!(!PeerSelector::parse("127.0.0.1:6").unwrap().matches(9, &a));
        assert!(PeerSelector::parse("[::1]").is_ok());
        assert!(PeerSelector::parse("peer7").is_err());
    }

    #[test]
    fn inbound_slots_leave_room_for_outbound() {
        let c = Config::default();
        assert_eq!(c.max_inbound(), 114);
        let c = Config { max_connections: 5, ..Config::default() };
        assert_eq!(c.max_inbound(), 0);
    }
}
