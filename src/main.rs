//! `btcloopd`: parses the command line into a `Config`, detaches with `--daemon`, sets up
//! logging and the PID file, starts the node, reopens `debug.log` on SIGHUP and stops cleanly
//! on SIGINT/SIGTERM.

use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use btcloop::base::chainparams::Network;
use btcloop::base::sys::DirLock;
use btcloop::daemon::conffile::ConfFile;
use btcloop::daemon::config::{
    BANTIME_RANGE, BUFFER_KB_RANGE, Config, LogConfig, MAX_CONNECTIONS_RANGE, MAX_TIP_AGE_RANGE, PEER_TIMEOUT_RANGE,
    RPC_SERVER_TIMEOUT_RANGE, RPC_THREADS_RANGE, RpcConfig,
};
use btcloop::daemon::net::dialer::PeerSpec;
use btcloop::daemon::net::proxy::ProxyConfig;
use btcloop::daemon::node::{Hooks, Node};
use btcloop::daemon::panics::{PANIC_EXIT_CODE, STOP_AFTER_PANIC_LIMIT, TestPanic};
use btcloop::daemon::service::{self, Forked, PidFile};
use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{error, info};

/// Core's boolean form: `--flag`, `--flag=1`, `--flag=0` (also `true`/`false`).
fn core_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(format!("expected 0 or 1, got '{s}'")),
    }
}

/// Core's `-minimumchainwork`: a hex number of at most 256 bits (optional `0x`).
fn parse_work(s: &str) -> Result<bitcoin::pow::Work, String> {
    let hex = s.strip_prefix("0x").unwrap_or(s);
    if hex.is_empty() || hex.len() > 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("'{s}' is not a hex number of at most 256 bits"));
    }
    let padded = format!("{hex:0>64}");
    let mut be = [0u8; 32];
    for (i, byte) in be.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&padded[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(bitcoin::pow::Work::from_be_bytes(be))
}

/// A value parser for an integer setting that must lie in `range` (`unit` says what it
/// counts); clap names the flag in the error, e.g. `invalid value '0' for '--peertimeout
/// <SECONDS>': must be an integer from 1 to 9223372036854775807 (seconds)`.
fn in_range<T>(range: RangeInclusive<T>, unit: &'static str) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync
where
    T: FromStr + PartialOrd + Display + Clone + Send + Sync + 'static,
{
    move |s: &str| match s.parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!("must be an integer from {} to {} ({unit})", range.start(), range.end())),
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "btcloopd",
    version,
    about = "btcloop: a Bitcoin P2P network node on Bitcoin Core's two-loop design",
    args_override_self = true
)]
struct Cli {
    /// Network: main, test, testnet4, signet or regtest.
    #[arg(long, value_name = "NAME")]
    network: Option<Network>,
    /// Use testnet3 (same as --network=test).
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_parser = core_bool, value_name = "0|1")]
    testnet: Option<bool>,
    /// Use testnet4.
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_parser = core_bool, value_name = "0|1")]
    testnet4: Option<bool>,
    /// Use the default signet.
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_parser = core_bool, value_name = "0|1")]
    signet: Option<bool>,
    /// Use regtest.
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_parser = core_bool, value_name = "0|1")]
    regtest: Option<bool>,
    /// Data directory [default: ~/.btcloop]; other networks use a sub-directory.
    #[arg(long, value_name = "DIR")]
    datadir: Option<PathBuf>,
    /// Configuration file, relative to the data directory unless absolute [default:
    /// btcloop.conf]. Core's syntax; the command line wins over it.
    #[arg(long, value_name = "FILE")]
    conf: Option<PathBuf>,
    /// Connect only to this peer (repeatable); --connect=0 disables outbound connections.
    #[arg(long, value_name = "HOST[:PORT]")]
    connect: Vec<String>,
    /// Keep a connection to this peer, redialing with back-off (repeatable).
    #[arg(long, value_name = "HOST[:PORT]")]
    addnode: Vec<String>,
    /// Accept inbound connections [default: 1, or 0 with --connect].
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_parser = core_bool, value_name = "0|1")]
    listen: Option<bool>,
    /// Listen on this address (repeatable) [default: all interfaces].
    #[arg(long, value_name = "ADDR[:PORT]")]
    bind: Vec<String>,
    /// Listening port [default: the network's].
    #[arg(long)]
    port: Option<u16>,
    /// Maximum connections (inbound get what 11 outbound slots leave); 0 to 2147483647.
    #[arg(long, default_value_t = btcloop::daemon::config::DEFAULT_MAX_CONNECTIONS,
          value_parser = in_range(MAX_CONNECTIONS_RANGE, "connections"), value_name = "N")]
    maxconnections: usize,
    /// Seconds a new connection has to finish the handshake before inactivity checks start; 1
    /// to 9223372036854775807.
    #[arg(long, value_parser = in_range(PEER_TIMEOUT_RANGE, "seconds"), default_value = "60", value_name = "SECONDS")]
    peertimeout: u64,
    /// Per-peer receive queue limit, in units of 1,000 bytes; 0 to 4294967.
    #[arg(long, default_value_t = btcloop::daemon::config::DEFAULT_MAX_RECEIVE_BUFFER_KB,
          value_parser = in_range(BUFFER_KB_RANGE, "units of 1,000 bytes"), value_name = "N")]
    maxreceivebuffer: usize,
    /// Per-peer send queue limit, in units of 1,000 bytes; 0 to 4294967.
    #[arg(long, default_value_t = btcloop::daemon::config::DEFAULT_MAX_SEND_BUFFER_KB,
          value_parser = in_range(BUFFER_KB_RANGE, "units of 1,000 bytes"), value_name = "N")]
    maxsendbuffer: usize,
    /// Minimum total chain work (hex) a header chain needs before its headers are stored
    /// [default: the network's].
    #[arg(long, value_parser = parse_work, value_name = "HEX")]
    minimumchainwork: Option<bitcoin::pow::Work>,
    /// Maximum age of the best header, in seconds, before the node counts itself in initial
    /// download (`initialblockdownload`; no self-advertisement, no extra block-relay peer)
    /// [default: 86400; at most 4294967295].
    #[arg(long, value_parser = in_range(MAX_TIP_AGE_RANGE, "seconds"), value_name = "SECONDS")]
    maxtipage: Option<u64>,
    /// Comment appended to the user agent (repeatable).
    #[arg(long, value_name = "TEXT")]
    uacomment: Vec<String>,
    /// Log debug lines of a category (repeatable): cmpctblock, http, net, rpc, validation, or
    /// all.
    #[arg(long, value_name = "CATEGORY")]
    debug: Vec<String>,
    /// Accept JSON-RPC commands [default: 1].
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_parser = core_bool, value_name = "0|1")]
    server: Option<bool>,
    /// Bind the RPC server to this address (repeatable; only with --rpcallowip) [default:
    /// 127.0.0.1 and ::1].
    #[arg(long, value_name = "ADDR[:PORT]")]
    rpcbind: Vec<String>,
    /// RPC port [default: P2P port + 2: 8335, 18335 testnet3, 48335 testnet4, 38335 signet,
    /// 18446 regtest].
    #[arg(long)]
    rpcport: Option<u16>,
    /// Allow RPC clients from this IP, IP/BITS or IP/NETMASK besides localhost (repeatable).
    #[arg(long, value_name = "IP[/MASK]")]
    rpcallowip: Vec<String>,
    /// RPC user name (with --rpcpassword; otherwise a cookie file is used).
    #[arg(long, value_name = "USER")]
    rpcuser: Option<String>,
    /// RPC password; when empty, a random cookie is written to the data directory.
    #[arg(long, value_name = "PASSWORD")]
    rpcpassword: Option<String>,
    /// Cookie file location, relative to the network's data directory unless absolute
    /// [default: .cookie].
    #[arg(long, value_name = "PATH")]
    rpccookiefile: Option<PathBuf>,
    /// Threads answering RPC calls; 1 to 512.
    #[arg(long, default_value_t = btcloop::daemon::config::DEFAULT_RPC_THREADS,
          value_parser = in_range(RPC_THREADS_RANGE, "threads"), value_name = "N")]
    rpcthreads: usize,
    /// Seconds an RPC client may take to send a whole request (or stay idle between requests)
    /// before it is disconnected.
    #[arg(
        long,
        default_value_t = btcloop::daemon::config::DEFAULT_RPC_SERVER_TIMEOUT.as_secs(),
        value_parser = in_range(RPC_SERVER_TIMEOUT_RANGE, "seconds"),
        value_name = "SECONDS"
    )]
    rpcservertimeout: u64,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics.
    #[arg(long, value_name = "ADDR:PORT")]
    metricsbind: Option<SocketAddr>,
    /// Grant permissions to peers from an address: [PERMS@]IP[/MASK] (repeatable). PERMS is a
    /// comma list of bloomfilter, noban, forcerelay, relay, mempool, download, addr, all, in,
    /// out; without PERMS: noban, relay, mempool, download for inbound peers.
    #[arg(long, value_name = "[PERMS@]IP[/MASK]")]
    whitelist: Vec<String>,
    /// Default duration of setban, in seconds; 1 to 9223372036854775807.
    #[arg(long, value_parser = in_range(BANTIME_RANGE, "seconds"), default_value = "86400", value_name = "SECONDS")]
    bantime: u64,
    /// Capture every message sent and received, per peer, in Bitcoin Core's format under
    /// `message_capture/` in the network's data directory.
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_parser = core_bool, value_name = "0|1")]
    capturemessages: Option<bool>,
    /// Log this peer's traffic in detail, each message decoded (repeatable): a peer id, an IP
    /// (every connection from it) or IP:PORT.
    #[arg(long, value_parser = btcloop::daemon::config::PeerSelector::parse, value_name = "ID|ADDR")]
    debugpeer: Vec<btcloop::daemon::config::PeerSelector>,
    /// Show peer IP addresses in the log.
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_parser = core_bool, value_name = "0|1")]
    logips: Option<bool>,
    /// Speak the BIP324 v2 encrypted transport: serve inbound peers in the transport they open
    /// with, open manual connections (and automatic ones to NODE_P2P_V2 addresses) with v2,
    /// retrying once in v1; advertise NODE_P2P_V2 [default: 1].
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_parser = core_bool, value_name = "0|1")]
    v2transport: Option<bool>,
    /// Also log to stderr [default: 1, or 0 with --daemon].
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_parser = core_bool, value_name = "0|1")]
    printtoconsole: Option<bool>,
    /// Log line format.
    #[arg(long = "log-format", value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
    /// Run in the background: detach once start-up has succeeded (data directory locked, ports
    /// bound, state loaded); the exit status says whether it did, and a failure's error is
    /// printed.
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_parser = core_bool, value_name = "0|1")]
    daemon: Option<bool>,
    /// PID file, relative to the network's data directory unless absolute; removed at
    /// shutdown [default: btcloopd.pid].
    #[arg(long, value_name = "FILE")]
    pid: Option<PathBuf>,
    /// Connect to this peer to learn addresses, then disconnect (repeatable); asked when the
    /// address book is empty, and one more every 10 s while fewer than 2 outbound peers are up.
    #[arg(long, value_name = "HOST[:PORT]")]
    seednode: Vec<String>,
    /// Ask the DNS seeds for addresses when the address book is small [default: 1, or 0 with
    /// --connect].
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_parser = core_bool, value_name = "0|1")]
    dnsseed: Option<bool>,
    /// Ask the DNS seeds at every start, whatever the address book holds.
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_parser = core_bool, value_name = "0|1")]
    forcednsseed: Option<bool>,
    /// Fall back to the built-in seed addresses when no other source gives any [default: 1].
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_parser = core_bool, value_name = "0|1")]
    fixedseeds: Option<bool>,
    /// Make automatic outbound connections only to this network (repeatable): ipv4, ipv6.
    #[arg(long, value_name = "NET")]
    onlynet: Vec<String>,
    /// Make every outbound connection through this SOCKS5 proxy (names go to it unresolved);
    /// the port defaults to 9050, 0 turns it off.
    #[arg(long, value_parser = parse_proxy, value_name = "IP[:PORT]")]
    proxy: Option<ProxyArg>,
    /// Reach onion services through this SOCKS5 proxy [default: --proxy]; 0 turns it off.
    #[arg(long, value_parser = parse_proxy, value_name = "IP[:PORT]")]
    onion: Option<ProxyArg>,
    /// Give the proxy new random credentials for every connection, so Tor puts each on a
    /// circuit of its own [default: 1].
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_parser = core_bool, value_name = "0|1")]
    proxyrandomize: Option<bool>,
    /// While listening, create an onion service through Tor's control port (its key kept in
    /// onion_v3_private_key) [default: 1].
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_parser = core_bool, value_name = "0|1")]
    listenonion: Option<bool>,
    /// Tor's control port [default: 127.0.0.1:9051].
    #[arg(long, value_name = "IP:PORT")]
    torcontrol: Option<String>,
    /// Password for Tor's control port (HASHEDPASSWORD authentication).
    #[arg(long, value_name = "PASS")]
    torpassword: Option<String>,

    // --- Local addresses (own-address advertisement) ---
    /// Our own public address, advertised to peers (repeatable); the port defaults to the
    /// listening port. Turns --discover off unless it is given.
    #[arg(long, value_parser = btcloop::engine::policy::local::ExternalAddr::parse, value_name = "IP[:PORT]")]
    externalip: Vec<btcloop::engine::policy::local::ExternalAddr>,
    /// Discover our own addresses from the network interfaces and peers [default: 1 when
    /// listening and no --externalip].
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_parser = core_bool, value_name = "0|1")]
    discover: Option<bool>,
    /// Test-only behaviour (hidden, repeatable): loopback-netgroups makes each 127.x address a
    /// routable network group of its own, so many local processes can fill the outbound slots;
    /// panic-msghand (panic-net)
    /// makes the message handler (socket handler) panic at its first new connection, to test
    /// what a thread's panic does.
    #[arg(long = "test", hide = true,
          value_parser = ["loopback-netgroups", "panic-msghand", "panic-net"])]
    test: Vec<String>,
}

/// A `--proxy`/`--onion` value: the proxy's address, or none (`0`).
#[derive(Clone, Debug)]
struct ProxyArg(Option<SocketAddr>);

/// Parses a `--proxy`/`--onion` value: an IP address with an optional port (9050, Tor's, by
/// default), or 0 for none.
fn parse_proxy(s: &str) -> Result<ProxyArg, String> {
    if s == "0" {
        return Ok(ProxyArg(None));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(ProxyArg(Some(sa)));
    }
    let ip = s.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<IpAddr>()
        .map(|ip| ProxyArg(Some(SocketAddr::new(ip, 9050))))
        .map_err(|_| format!("Invalid proxy address '{s}': expected IP, IP:PORT or [IPv6]:PORT"))
}

/// Core style `-flag` becomes `--flag`, and `-noflag` / `--noflag` becomes `--flag=0`.
fn normalize_args(args: impl Iterator<Item = String>) -> Vec<String> {
    const BOOLS: [&str; 16] = [
        "daemon",
        "listenonion",
        "proxyrandomize",
        "v2transport",
        "listen",
        "logips",
        "printtoconsole",
        "testnet",
        "testnet4",
        "signet",
        "regtest",
        "debug",
        "dnsseed",
        "fixedseeds",
        "forcednsseed",
        "discover",
    ];
    args.enumerate()
        .map(|(i, a)| {
            if i == 0 {
                return a;
            }
            let long =
                if a.starts_with('-') && !a.starts_with("--") && a.len() > 2 && a.as_bytes()[1].is_ascii_alphabetic() {
                    format!("-{a}")
                } else {
                    a
                };
            if let Some(name) = long.strip_prefix("--no") {
                if BOOLS.contains(&name) {
                    return format!("--{name}=0");
                }
            }
            long
        })
        .collect()
}

fn parse_bind(s: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, port))
        .map_err(|_| format!("invalid --bind address '{s}': expected IP or IP:PORT"))
}

/// Core's `SAFE_CHARS_UA_COMMENT` check and `MAX_SUBVERSION_LENGTH`.
fn check_ua_comment(c: &str) -> Result<(), String> {
    let ok = c.chars().all(|ch| ch.is_ascii_alphanumeric() || " .,;-_?@".contains(ch));
    if ok { Ok(()) } else { Err(format!("user agent comment ({c}) contains unsafe characters")) }
}

fn build_config(cli: Cli) -> Result<Config, String> {
    let shortcuts = [
        (cli.testnet, Network::Test),
        (cli.testnet4, Network::Testnet4),
        (cli.signet, Network::Signet),
        (cli.regtest, Network::Regtest),
    ];
    let mut chosen: Vec<Network> = shortcuts.iter().filter(|(f, _)| *f == Some(true)).map(|(_, n)| *n).collect();
    if let Some(n) = cli.network {
        chosen.push(n);
    }
    chosen.dedup();
    if chosen.len() > 1 {
        return Err(
            "invalid combination of --network, --regtest, --signet, --testnet and --testnet4: can only use one".into(),
        );
    }
    let network = chosen.first().copied().unwrap_or_default();
    let mut cfg = Config { network, ..Config::default() };
    if let Some(d) = cli.datadir {
        cfg.datadir = d;
    }
    let default_port = network.default_port();
    for s in cli.connect.iter().filter(|s| s.as_str() != "0").chain(&cli.addnode) {
        PeerSpec::parse(s, default_port).map_err(|e| e.to_string())?;
    }
    let port = cli.port.unwrap_or(default_port);
    for b in &cli.bind {
        match b.strip_suffix("=onion") {
            Some(onion) => cfg.onion_bind.push(parse_bind(onion, port.wrapping_add(1))?),
            None => cfg.bind.push(parse_bind(b, port)?),
        }
    }
    // Core's parameter interaction: --bind implies listening, --connect implies not.
    let listen_default = if !cli.bind.is_empty() { true } else { cli.connect.is_empty() };
    cfg.listen = cli.listen.unwrap_or(listen_default);
    // Core: --connect also turns DNS seeding off unless asked for.
    cfg.dnsseed = cli.dnsseed.unwrap_or(cli.connect.is_empty());
    cfg.force_dnsseed = cli.forcednsseed.unwrap_or(false);
    if cfg.force_dnsseed && !cfg.dnsseed {
        return Err("Cannot set -forcednsseed to true when setting -dnsseed to false.".into());
    }
    cfg.fixed_seeds = cli.fixedseeds.unwrap_or(true);
    for s in &cli.seednode {
        PeerSpec::parse(s, default_port).map_err(|e| e.to_string())?;
    }
    cfg.seed_nodes = cli.seednode;
    cfg.only_net = cli
        .onlynet
        .iter()
        .map(|n| match n.to_ascii_lowercase().as_str() {
            "ipv4" => Ok(btcloop::engine::addrman::AddrNetwork::Ipv4),
            "ipv6" => Ok(btcloop::engine::addrman::AddrNetwork::Ipv6),
            "onion" | "i2p" | "cjdns" => Err(format!(
                "-onlynet={n}: btcloop makes no automatic connections over {n} (only by hand: --connect/--addnode)"
            )),
            _ => Err(format!("Unknown network specified in -onlynet: '{n}'")),
        })
        .collect::<Result<_, _>>()?;
    cfg.loopback_netgroups = cli.test.iter().any(|t| t == "loopback-netgroups");
    if cli.test.iter().any(|t| t == "panic-msghand") {
        cfg.test_panic = Some(TestPanic::MsgHandConnected);
    }
    if cli.test.iter().any(|t| t == "panic-net") {
        cfg.test_panic = Some(TestPanic::NetAccepted);
    }
    cfg.connect = cli.connect;
    cfg.addnode = cli.addnode;
    cfg.port = cli.port;
    cfg.max_connections = cli.maxconnections;
    cfg.peer_timeout = Duration::from_secs(cli.peertimeout);
    cfg.max_receive_buffer = cli.maxreceivebuffer.saturating_mul(1000);
    cfg.max_send_buffer = cli.maxsendbuffer.saturating_mul(1000);
    for c in &cli.uacomment {
        check_ua_comment(c)?;
    }
    cfg.ua_comments = cli.uacomment;
    cfg.minimum_chain_work = cli.minimumchainwork;
    if let Some(secs) = cli.maxtipage {
        cfg.max_tip_age = Duration::from_secs(secs);
    }
    cfg.capture_messages = cli.capturemessages.unwrap_or(false);
    cfg.v2transport = cli.v2transport.unwrap_or(true);
    let proxy = cli.proxy.and_then(|p| p.0);
    cfg.proxy =
        ProxyConfig { proxy, onion: cli.onion.map_or(proxy, |p| p.0), randomize: cli.proxyrandomize.unwrap_or(true) };
    cfg.listen_onion = cli.listenonion.unwrap_or(true);
    if let Some(c) = &cli.torcontrol {
        cfg.tor_control = c.parse().map_err(|_| format!("Invalid --torcontrol address '{c}': expected IP:PORT"))?;
    }
    cfg.tor_password = cli.torpassword.filter(|p| !p.is_empty());
    cfg.rpc = RpcConfig {
        server: cli.server.unwrap_or(true),
        bind: cli.rpcbind,
        port: cli.rpcport,
        allow_ip: cli.rpcallowip,
        user: cli.rpcuser,
        password: cli.rpcpassword,
        cookie_file: cli.rpccookiefile,
        threads: cli.rpcthreads,
        server_timeout: Duration::from_secs(cli.rpcservertimeout),
    };
    cfg.metrics_bind = cli.metricsbind;
    cfg.ban_time = Duration::from_secs(cli.bantime);
    cfg.whitelist = cli
        .whitelist
        .iter()
        .map(|w| btcloop::engine::policy::permissions::Whitelist::parse(w).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    // Core's parameter interaction: -listen=0 or -externalip set -> -discover=0.
    cfg.discover = cli.discover.unwrap_or(cfg.listen && cli.externalip.is_empty());
    cfg.external_ip = cli.externalip;
    let ua_len = cfg.user_agent().len();
    if ua_len > btcloop::base::message::MAX_SUBVERSION_LENGTH {
        return Err(format!(
            "total length of network version string ({ua_len}) exceeds maximum length (256); reduce the number or size of --uacomment"
        ));
    }
    btcloop::daemon::logging::expand_categories(&cli.debug).map_err(|e| e.to_string())?;
    cfg.daemon = cli.daemon.unwrap_or(false);
    if let Some(p) = cli.pid {
        cfg.pid_file = p;
    }
    cfg.log = LogConfig {
        categories: cli.debug,
        log_ips: cli.logips.unwrap_or(false),
        // Core: no console output by default when detached.
        print_to_console: cli.printtoconsole.unwrap_or(!cfg.daemon),
        to_file: true,
        json: cli.log_format == "json",
        debug_peers: cli.debugpeer,
    };
    Ok(cfg)
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("Error: {msg}");
    ExitCode::from(1)
}

/// One-line error for a clap failure; `None` for `--help`/`--version` (printed, exit 0).
fn clap_error(e: clap::Error) -> Option<String> {
    if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) {
        let _ = e.print();
        return None;
    }
    let rendered = e.to_string();
    Some(rendered.lines().next().unwrap_or("invalid command line").trim_start_matches("error: ").to_string())
}

/// Whether `key` is an option a configuration file may set.
fn conf_key_known(key: &str) -> bool {
    use clap::CommandFactory;
    !matches!(key, "help" | "version") && Cli::command().get_arguments().any(|a| a.get_long() == Some(key))
}

/// The command line with the configuration file's settings in front of it (so the command line
/// wins), the file's default-section network-only settings that do not apply, and the file's
/// path if one was read.
type WithConf = (Vec<String>, Vec<String>, Option<PathBuf>);

fn with_conf_file(args: Vec<String>) -> Result<WithConf, Option<String>> {
    let first = Cli::try_parse_from(&args).map_err(clap_error)?;
    let datadir = first.datadir.clone().unwrap_or_else(btcloop::daemon::config::default_datadir);
    let path = match &first.conf {
        Some(p) if p.is_absolute() => p.clone(),
        Some(p) => datadir.join(p),
        None => datadir.join(btcloop::daemon::conffile::CONF_FILE),
    };
    let Some(conf) = ConfFile::read(&path, first.conf.is_some(), conf_key_known).map_err(|e| Some(e.to_string()))?
    else {
        return Ok((args, Vec::new(), None));
    };
    let (prog, rest) = args.split_first().map_or((String::new(), &[][..]), |(p, r)| (p.clone(), r));
    let mut with_net = vec![prog.clone()];
    with_net.extend(conf.network_args());
    with_net.extend(rest.iter().cloned());
    let network = build_config(Cli::try_parse_from(&with_net).map_err(clap_error)?).map_err(Some)?.network;
    let mut merged = vec![prog];
    merged.extend(conf.network_args());
    merged.extend(conf.args_for(network));
    merged.extend(rest.iter().cloned());
    let ignored = conf
        .ignored_on(network)
        .iter()
        .map(|s| {
            format!(
                "Config setting for --{} only applied on main network when in [main] section ({}:{}).",
                s.key,
                conf.path.display(),
                s.line
            )
        })
        .collect();
    Ok((merged, ignored, Some(conf.path.clone())))
}

/// What start-up made, kept until the process ends (the lock and the PID file go last).
struct Started {
    node: Node,
    signals: Signals,
    panics: btcloop::daemon::panics::PanicWatch,
    log_control: std::sync::Arc<btcloop::daemon::logging::LogControl>,
    _pid_file: PidFile,
    _lock: DirLock,
}

/// Start-up after the fork: lock the data directory, open the log, write the PID file,
/// install the signal handlers and start the node.
fn start(cfg: &Config, conf_warnings: &[String]) -> Result<Started, String> {
    let net_dir = cfg.net_dir();
    std::fs::create_dir_all(&net_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", net_dir.display()))?;
    let lock = DirLock::acquire(&net_dir).map_err(|e| e.to_string())?;
    let log_control =
        std::sync::Arc::new(btcloop::daemon::logging::init(&cfg.log, &net_dir).map_err(|e| e.to_string())?);
    // After the lock, so a second instance cannot overwrite the running one's file.
    let pid_file = PidFile::create(&cfg.pid_path()).map_err(|e| e.to_string())?;
    // Register the handlers before any thread starts so every thread inherits the mask.
    let signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(|e| format!("cannot install signal handlers: {e}"))?;
    // From here on a panic in any thread is logged and stops the whole process (exit 101).
    let panic_wake = signals.handle();
    let panics = btcloop::daemon::panics::install(move || panic_wake.close());
    info!("btcloopd version v{} ({})", env!("CARGO_PKG_VERSION"), cfg.user_agent());
    info!("Using data directory {} (network {})", net_dir.display(), cfg.network);
    info!("PID file {} (pid {})", pid_file.path().display(), std::process::id());
    for w in conf_warnings {
        tracing::warn!("{w}");
    }
    let handle = signals.handle();
    let hooks = Hooks {
        log: Some(log_control.clone()),
        on_stop: Some(std::sync::Arc::new(move || handle.close())),
        resolver: None,
    };
    let node = Node::start(cfg, hooks).map_err(|e| e.to_string())?;
    Ok(Started { node, signals, panics, log_control, _pid_file: pid_file, _lock: lock })
}

fn main() -> ExitCode {
    // Core's umask 077: every file and directory the process creates is its owner's only.
    // SAFETY: umask only sets the process's file-creation mask; no memory is involved.
    unsafe { libc::umask(0o077) };
    btcloop::daemon::net::peer_queues::bound_allocator();
    let (args, conf_warnings, conf_path) = match with_conf_file(normalize_args(std::env::args())) {
        Ok(x) => x,
        Err(None) => return ExitCode::SUCCESS,
        Err(Some(e)) => return fail(e),
    };
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        // The command line alone parsed, so the configuration file's value is the bad one.
        Err(e) => {
            return clap_error(e).map_or(ExitCode::SUCCESS, |m| match &conf_path {
                Some(p) => fail(format!("{m} (set in {})", p.display())),
                None => fail(m),
            });
        }
    };
    let cfg = match build_config(cli) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    // Detach before any thread exists (Core forks before locking the data directory); the
    // child does the start-up and tells the parent how it went.
    let report = if cfg.daemon {
        println!("btcloopd starting");
        match service::daemonize() {
            Ok(Forked::Parent(wait)) => {
                return match wait.outcome() {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(e),
                };
            }
            Ok(Forked::Child(report)) => Some(report),
            Err(e) => return fail(e),
        }
    } else {
        None
    };
    let started = match start(&cfg, &conf_warnings) {
        Ok(s) => s,
        Err(e) => {
            return match report {
                Some(r) => {
                    r.failure(&e);
                    ExitCode::from(1)
                }
                None => fail(e),
            };
        }
    };
    if let Some(r) = report {
        if let Err(e) = r.success() {
            tracing::warn!("Cannot point stdin, stdout and stderr at /dev/null: {e}");
        }
    }
    run(started)
}

/// Waits for SIGINT/SIGTERM, the `stop` RPC or a panic, reopening `debug.log` on each SIGHUP,
/// then stops the node.
fn run(started: Started) -> ExitCode {
    let Started { node, mut signals, panics, log_control, _pid_file, _lock } = started;
    let stop_signal = service::wait_for_stop(&mut signals, &log_control);
    match stop_signal {
        Some(sig) => info!("Shutdown requested (signal {sig}), stopping"),
        None if panics.panicked() => error!("Shutdown after a thread panicked, stopping"),
        None => info!("Shutdown requested (RPC stop), stopping"),
    }
    // On its own thread, so that after a panic the wait can be bounded.
    let watch = panics.clone();
    let joined =
        btcloop::daemon::panics::run_bounded(move || node.stop(), move || watch.panicked(), STOP_AFTER_PANIC_LIMIT);
    if joined.is_none() {
        error!("Shutdown did not finish within {STOP_AFTER_PANIC_LIMIT:?} of a thread's panic");
    }
    if panics.panicked() || joined.as_ref().is_none_or(|p| !p.is_empty()) {
        panics.wait_logged(Duration::from_secs(1));
        error!("Exiting with status {PANIC_EXIT_CODE} after a thread panicked");
        return ExitCode::from(PANIC_EXIT_CODE);
    }
    info!("Shutdown done");
    ExitCode::SUCCESS
}

#[cfg(test)]
#[path = "main_tests.rs"]
mod tests;
