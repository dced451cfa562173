//! `btcloop-load`: a load generator for any Bitcoin node's P2P port (btcloopd or Bitcoin Core),
//! speaking the v1 wire protocol, or BIP324 v2 with `--v2` (every mode that opens P2P
//! connections: `ping`, `latency`, `conns`, `headers`, `bigflood`, `ibd`; the others refuse it).
//!
//! Modes:
//! - `ping`: K handshaken peers each keep W pings in flight; reports pongs/s.
//! - `latency`: one peer, sequential ping/pong round trips; reports percentiles in µs.
//! - `conns`: opens N handshaken connections and reports the node's RSS per peer.
//! - `headers`: K handshaken peers each keep W `getheaders` for random 2,000-header ranges of
//!   the node's best chain in flight; reports headers/s served.
//! - `bigflood`: N handshaken peers send maximum-size messages of an unknown type back to back
//!   while one more peer pings; reports the node's RSS before/peak/after and the ping
//!   percentiles (threads with blocking sockets: the node's reading speed is what is measured).
//! - `mkchain`: mines a regtest header chain into a data directory before a node starts on it
//!   (no network).
//! - `mkblocks`: builds a chain of valid regtest blocks (coinbase-only, or about 1 MB each full
//!   of spending transactions) into a block file (no network).
//! - `submit`: loads a node (btcloopd or bitcoind) with a block file's blocks over its
//!   `submitblock` RPC and checks its tip.
//! - `ibd`: times a node's initial block download (RPC polled from its start to the tip) while
//!   one peer measures ping round trips; reports the node's CPU time per thread.
//!
//! `ping`, `conns` and `headers` run on one single-threaded `mio` event loop (non-blocking
//! sockets, TCP_NODELAY, one shared read buffer of 64 KiB, 1 MiB for `headers`, one write call
//! per peer per read batch) so that the node under test, not this tool, is the bottleneck.
//! Every mode stops by itself and has a hard deadline on the handshake. Results are printed as
//! human-readable lines followed by one final JSON line.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_network::VersionMessage;
use btcloop::base::chainparams::Network;
use btcloop::base::message::{decode_payload, encode_message};
use btcloop::base::transport::{Frame, V1Decoder, command_str};
use clap::{Parser, Subcommand};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};
use rand::RngExt;

mod bigflood;
mod blockfile;
mod engine;
mod headers;
mod ibd;
mod mkblocks;
mod mkchain;
mod modes;
mod rpc;
mod scan;
mod submit;

use bigflood::{FloodArgs, bigflood_mode};
use headers::headers_mode;
use ibd::{IbdArgs, ibd_mode};
use mkblocks::{Kind, MkblocksArgs, mkblocks_mode};
use mkchain::mkchain_mode;
use modes::{conns_mode, latency_mode, ping_mode};

/// Protocol version we announce (`WTXID_RELAY_VERSION`).
const PROTOCOL_VERSION: u32 = 70016;
/// Our user agent.
const USER_AGENT: &str = "/btcloop-load:0.1.0/";
/// How long a connection may take to complete the version handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the latency mode waits for any single reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Size of the shared read buffer.
const READ_BUF: usize = 64 * 1024;
/// Largest accepted `--inflight`.
const MAX_INFLIGHT: usize = 1 << 16;

#[derive(Parser, Debug)]
#[command(
    name = "btcloop-load",
    version,
    about = "P2P load generator for Bitcoin nodes (v1 transport; --v2 for BIP324 in every mode that opens P2P connections)"
)]
struct Cli {
    /// The node's P2P address (the only address this tool connects to); required by every
    /// mode except `mkchain`, `mkblocks` and `submit`.
    #[arg(long, global = true)]
    connect: Option<SocketAddr>,
    /// Network whose magic to use: main, test, testnet4, signet, regtest.
    #[arg(long, global = true, default_value = "regtest")]
    network: Network,
    /// Speak BIP324 v2 to the node on every P2P connection the mode opens (`ping`, `latency`,
    /// `conns`, `headers`, `bigflood`, `ibd`); `mkchain`, `mkblocks` and `submit` open none and
    /// refuse it.
    #[arg(long, global = true)]
    v2: bool,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Throughput: K peers each keep W pings in flight; reports pongs/s.
    Ping {
        /// Number of connections.
        #[arg(long, default_value_t = 8)]
        peers: usize,
        /// Pings kept outstanding per connection.
        #[arg(long, default_value_t = 16)]
        inflight: usize,
        /// Length of the measurement window, seconds (after the warm-up).
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Warm-up before the measurement window, seconds.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
    },
    /// Round-trip latency of sequential pings on one connection.
    Latency {
        /// Measured round trips.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// Unmeasured round trips before the measured ones.
        #[arg(long, default_value_t = 1_000)]
        warmup: usize,
    },
    /// Memory per connection: opens N handshaken connections and reads the node's RSS.
    Conns {
        /// Number of connections.
        #[arg(long)]
        count: usize,
        /// Process id of the node (its /proc/PID/status is read).
        #[arg(long)]
        pid: u32,
        /// Seconds to hold the connections before reading RSS again.
        #[arg(long, default_value_t = 3.0)]
        hold: f64,
        /// Connections opened at once (keeps the node's listen backlog from overflowing).
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Serving throughput: K peers each keep W `getheaders` (random 2,000-header ranges of the
    /// node's best chain) in flight; reports headers/s.
    Headers {
        /// Number of connections.
        #[arg(long, default_value_t = 8)]
        peers: usize,
        /// Requests kept outstanding per connection.
        #[arg(long, default_value_t = 4)]
        inflight: usize,
        /// Length of the measurement window, seconds (after the warm-up).
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Warm-up before the measurement window, seconds.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Decode and check every response (slower; for correctness testing).
        #[arg(long)]
        verify: bool,
    },
    /// Memory and fairness under a flood: N peers send maximum-size messages of an unknown
    /// type back to back while one more peer measures ping round trips.
    Bigflood {
        /// Flooding connections.
        #[arg(long, default_value_t = 20)]
        peers: usize,
        /// Payload bytes per message (at most 4,000,000).
        #[arg(long, default_value_t = 4_000_000)]
        size: usize,
        /// Length of the flood, seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Seconds to wait after the flood (peers connected) and after they leave before
        /// reading RSS.
        #[arg(long, default_value_t = 3.0)]
        settle: f64,
        /// Process id of the node (its /proc/PID/status is read).
        #[arg(long)]
        pid: u32,
    },
    /// Mines N regtest headers on top of genesis into DIR/regtest/headers.dat (run before the
    /// node starts on DIR).
    Mkchain {
        /// The node's data directory (the header store goes in its `regtest` sub-directory).
        #[arg(long)]
        datadir: std::path::PathBuf,
        /// Headers to mine.
        #[arg(long)]
        count: usize,
        /// Makes the chain distinct from chains mined with other salts.
        #[arg(long, default_value_t = 0)]
        salt: u64,
    },
    /// Builds a chain of valid regtest blocks into FILE (Core's blk*.dat record format).
    Mkblocks {
        /// `coinbase`: COUNT coinbase-only blocks. `full`: 101 set-up blocks, then COUNT blocks
        /// each holding SPENDS transactions that spend the block before's outputs.
        #[arg(long, value_enum)]
        kind: Kind,
        /// Blocks to build (for `full`: after the 101 set-up blocks).
        #[arg(long)]
        count: u32,
        /// Spending transactions per `full` block (16,000 make blocks of about 976 kB, weight
        /// 3.9M).
        #[arg(long, default_value_t = 16_000)]
        spends: u32,
        /// Time of the last block, unix seconds [default: now]; blocks are one second apart.
        #[arg(long)]
        end_time: Option<u32>,
        /// The block file to write.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Submits a block file's blocks, in order, to a node's `submitblock` RPC and checks its tip.
    Submit {
        /// The node's RPC address.
        #[arg(long)]
        rpc: SocketAddr,
        /// The node's RPC cookie file.
        #[arg(long)]
        cookie: std::path::PathBuf,
        /// The block file (from `mkblocks`).
        #[arg(long)]
        blocks: std::path::PathBuf,
        /// Seconds one call may take.
        #[arg(long, default_value_t = 300.0)]
        timeout: f64,
    },
    /// Times a node's initial block download from its start (`--since`) until its
    /// `getblockchaininfo` shows HEIGHT blocks, while one peer (at --connect) pings it.
    Ibd {
        /// The node's RPC address.
        #[arg(long)]
        rpc: SocketAddr,
        /// The node's RPC cookie file (it may not exist yet).
        #[arg(long)]
        cookie: std::path::PathBuf,
        /// Height of the tip to reach.
        #[arg(long)]
        height: u64,
        /// Hash of that tip (checked when given).
        #[arg(long)]
        tip: Option<String>,
        /// When the node was launched, unix seconds with a fraction (`date +%s.%N`).
        #[arg(long)]
        since: f64,
        /// The node's process id (liveness, CPU time per thread).
        #[arg(long)]
        pid: Option<u32>,
        /// Seconds to wait for the tip.
        #[arg(long, default_value_t = 1800.0)]
        timeout: f64,
        /// Seconds `blocks` may stay the same (once above 0) before the download counts as
        /// failed.
        #[arg(long, default_value_t = 60.0)]
        stall: f64,
        /// Milliseconds between RPC polls.
        #[arg(long, default_value_t = 100)]
        poll_ms: u64,
        /// Microseconds to wait after each pong before the next ping (0: back to back).
        #[arg(long, default_value_t = 1000)]
        ping_gap_us: u64,
        /// When the pinging peer connects: `headers` once the node has a header from its source
        /// (so the node has picked that source as its headers-sync peer), `start` as soon as the
        /// node listens.
        #[arg(long, value_enum, default_value_t = PingFrom::Headers)]
        ping_from: PingFrom,
        /// PREFIX=N: give the node's threads whose names start with PREFIX the nice value N
        /// (-20..=19), as they appear (repeatable; an experiment on scheduling latency).
        #[arg(long)]
        renice: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("btcloop-load: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    let magic = cli.network.magic();
    let connect = cli.connect.ok_or_else(|| "--connect ADDR:PORT is required".to_string());
    if cli.v2 {
        check_v2(&cli.mode)?;
    }
    match cli.mode {
        Mode::Ping { peers, inflight, duration, warmup } => {
            let load = LoadArgs::check(peers, inflight, duration, warmup)?;
            ping_mode(connect?, magic, cli.v2, load)
        }
        Mode::Latency { count, warmup } => {
            if count == 0 {
                return Err("--count must be at least 1".into());
            }
            latency_mode(connect?, magic, cli.v2, count, warmup)
        }
        Mode::Conns { count, pid, hold, batch } => {
            if count == 0 || batch == 0 {
                return Err("--count and --batch must be at least 1".into());
            }
            let hold = secs_arg("--hold", hold, true)?;
            conns_mode(connect?, magic, cli.v2, count, pid, hold, batch)
        }
        Mode::Headers { peers, inflight, duration, warmup, verify } => {
            let load = LoadArgs::check(peers, inflight, duration, warmup)?;
            headers_mode(connect?, cli.network, cli.v2, load, verify)
        }
        Mode::Bigflood { peers, size, duration, settle, pid } => {
            if peers == 0 || peers > 1000 {
                return Err("--peers must be in 1..=1000".into());
            }
            if size > btcloop::base::transport::MAX_PROTOCOL_MESSAGE_LENGTH {
                return Err("--size must be at most 4000000".into());
            }
            let duration = secs_arg("--duration", duration, false)?;
            let settle = secs_arg("--settle", settle, true)?;
            bigflood_mode(connect?, magic, FloodArgs { peers, size, duration, settle, pid, v2: cli.v2 })
        }
        Mode::Mkchain { datadir, count, salt } => mkchain_mode(&datadir, cli.network, count, salt),
        Mode::Mkblocks { kind, count, spends, end_time, out } => {
            mkblocks_mode(cli.network, MkblocksArgs { kind, count, spends, out, end_time })
        }
        Mode::Submit { rpc, cookie, blocks, timeout } => {
            let timeout = secs_arg("--timeout", timeout, false)?;
            submit::submit_mode(cli.network, rpc, &cookie, &blocks, timeout)
        }
        Mode::Ibd { rpc, cookie, height, tip, since, pid, timeout, stall, poll_ms, ping_gap_us, ping_from, renice } => {
            let timeout = secs_arg("--timeout", timeout, false)?;
            let stall = secs_arg("--stall", stall, false)?;
            if !since.is_finite() || since <= 0.0 {
                return Err("--since must be a positive unix time".into());
            }
            let since = Duration::try_from_secs_f64(since)
                .ok()
                .and_then(|d| UNIX_EPOCH.checked_add(d))
                .ok_or("--since is out of range")?;
            if poll_ms == 0 || poll_ms > 60_000 {
                return Err("--poll-ms must be in 1..=60000".into());
            }
            if ping_gap_us > 1_000_000 {
                return Err("--ping-gap-us must be at most 1000000".into());
            }
            let renice = renice.iter().map(|r| parse_renice(r)).collect::<Result<Vec<_>, _>>()?;
            if !renice.is_empty() && pid.is_none() {
                return Err("--renice needs --pid".into());
            }
            let a = IbdArgs {
                renice,
                p2p: connect?,
                v2: cli.v2,
                rpc,
                cookie,
                height,
                tip,
                since,
                pid,
                timeout,
                stall,
                poll: Duration::from_millis(poll_ms),
                ping_gap: Duration::from_micros(ping_gap_us),
                ping_after_headers: ping_from == PingFrom::Headers,
            };
            ibd_mode(cli.network.magic(), a)
        }
    }
}

/// Refuses `--v2` for a mode that opens no P2P connection (it would silently do nothing).
fn check_v2(mode: &Mode) -> Result<(), String> {
    let (name, what) = match mode {
        Mode::Ping { .. }
        | Mode::Latency { .. }
        | Mode::Conns { .. }
        | Mode::Headers { .. }
        | Mode::Bigflood { .. }
        | Mode::Ibd { .. } => return Ok(()),
        Mode::Mkchain { .. } => ("mkchain", "it writes a header file"),
        Mode::Mkblocks { .. } => ("mkblocks", "it writes a block file"),
        Mode::Submit { .. } => ("submit", "it talks to the node's RPC only"),
    };
    Err(format!("--v2 does not apply to the `{name}` mode: it opens no P2P connection ({what})"))
}

/// The name of the transport the P2P connections speak, as the JSON lines give it.
pub(crate) fn transport_name(v2: bool) -> &'static str {
    if v2 { "v2" } else { "v1" }
}

/// When `ibd`'s pinging peer connects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum PingFrom {
    /// Once the node has a header beyond genesis.
    Headers,
    /// As soon as the node listens.
    Start,
}

/// The knobs of the measuring modes (`ping`, `headers`): K peers each keeping W requests in
/// flight, measured for `duration` after `warmup`.
pub(crate) struct LoadArgs {
    pub(crate) peers: usize,
    pub(crate) inflight: usize,
    pub(crate) duration: Duration,
    pub(crate) warmup: Duration,
}

impl LoadArgs {
    /// Checks `--peers`, `--inflight`, `--duration` and `--warmup`, in that order.
    fn check(peers: usize, inflight: usize, duration: f64, warmup: f64) -> Result<LoadArgs, String> {
        if peers == 0 {
            return Err("--peers must be at least 1".into());
        }
        if inflight == 0 || inflight > MAX_INFLIGHT {
            return Err(format!("--inflight must be in 1..={MAX_INFLIGHT}"));
        }
        let duration = secs_arg("--duration", duration, false)?;
        let warmup = secs_arg("--warmup", warmup, true)?;
        Ok(LoadArgs { peers, inflight, duration, warmup })
    }
}

/// `PREFIX=N` with N a nice value.
fn parse_renice(arg: &str) -> Result<(String, i32), String> {
    let bad = || format!("--renice {arg:?}: expected PREFIX=N with N in -20..=19");
    let (prefix, n) = arg.rsplit_once('=').ok_or_else(bad)?;
    let n: i32 = n.parse().map_err(|_| bad())?;
    if prefix.is_empty() || !(-20..=19).contains(&n) {
        return Err(bad());
    }
    Ok((prefix.to_string(), n))
}

fn secs_arg(name: &str, v: f64, zero_ok: bool) -> Result<Duration, String> {
    let lo_ok = if zero_ok { v >= 0.0 } else { v > 0.0 };
    if !v.is_finite() || !lo_ok || v > 86_400.0 {
        let lo = if zero_ok { "at least 0" } else { "more than 0" };
        return Err(format!("{name} must be {lo} and at most 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Appends our `version` frame to `out`.
fn push_version(magic: [u8; 4], out: &mut Vec<u8>) {
    let zero = Address { services: ServiceFlags::NONE, address: [0; 8], port: 0 };
    let msg = VersionMessage {
        version: PROTOCOL_VERSION,
        services: ServiceFlags::NONE,
        timestamp: unix_now(),
        receiver: zero.clone(),
        sender: zero,
        nonce: rand::rng().random::<u64>() | 1,
        user_agent: USER_AGENT.to_string(),
        start_height: 0,
        relay: false,
    };
    encode_message(magic, &NetworkMessage::Version(msg), out);
}

/// The first 8 payload bytes as a little-endian nonce.
fn nonce_of(payload: &[u8]) -> Option<u64> {
    payload.first_chunk::<8>().map(|b| u64::from_le_bytes(*b))
}

/// What the node said about itself in its `version` (user agent is sanitized: no quotes).
#[derive(Clone, Debug)]
struct NodeInfo {
    version: u32,
    user_agent: String,
    start_height: i32,
}

fn node_info(payload: &[u8]) -> Option<NodeInfo> {
    match decode_payload("version", payload) {
        Ok(NetworkMessage::Version(v)) => {
            Some(NodeInfo { version: v.version, user_agent: v.user_agent, start_height: v.start_height })
        }
        _ => None,
    }
}

/// Pre-encoded ping frames: frame `i` carries nonce `base + i`. Cycling through more frames than
/// any peer keeps in flight keeps outstanding nonces distinct without hashing on the hot path.
struct PingTable {
    frames: Vec<[u8; 32]>,
    base: u64,
    mask: u64,
}

impl PingTable {
    fn new(magic: [u8; 4], inflight: usize) -> PingTable {
        let size = (inflight * 2).max(1024).next_power_of_two();
        let base = rand::rng().random::<u64>();
        let mut frames = Vec::with_capacity(size);
        let mut buf = Vec::with_capacity(32);
        for i in 0..size as u64 {
            buf.clear();
            encode_message(magic, &NetworkMessage::Ping(base.wrapping_add(i)), &mut buf);
            let mut f = [0u8; 32];
            f.copy_from_slice(&buf);
            frames.push(f);
        }
        PingTable { frames, base, mask: size as u64 - 1 }
    }

    fn empty() -> PingTable {
        PingTable { frames: Vec::new(), base: 0, mask: 0 }
    }

    /// Appends ping number `seq` to `out`; returns its nonce.
    #[inline]
    fn push(&self, seq: u64, out: &mut Vec<u8>) -> u64 {
        let i = seq & self.mask;
        out.extend_from_slice(&self.frames[i as usize]);
        self.base.wrapping_add(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("btcloop-load").chain(args.iter().copied())).expect("valid arguments")
    }

    #[test]
    fn v2_is_accepted_by_every_p2p_mode_and_refused_by_the_others() {
        let p2p: [&[&str]; 6] = [
            &["ping"],
            &["latency"],
            &["conns", "--count", "1", "--pid", "1"],
            &["headers"],
            &["bigflood", "--pid", "1"],
            &["ibd", "--rpc", "127.0.0.1:1", "--cookie", "c", "--height", "1", "--since", "1"],
        ];
        for args in p2p {
            assert_eq!(check_v2(&parse(args).mode), Ok(()), "{args:?}");
        }
        let none: [(&str, &[&str]); 3] = [
            ("mkchain", &["mkchain", "--datadir", "/nonexistent/btcloop-load-test", "--count", "1"]),
            ("mkblocks", &["mkblocks", "--kind", "coinbase", "--count", "1", "--out", "/nonexistent/x.blk"]),
            ("submit", &["submit", "--rpc", "127.0.0.1:1", "--cookie", "c", "--blocks", "/nonexistent/x.blk"]),
        ];
        for (name, args) in none {
            let mut with_v2 = vec!["--v2"];
            with_v2.extend_from_slice(args);
            // Refused before the mode does anything (no file is written, no RPC is called).
            let err = run(parse(&with_v2)).expect_err("refused");
            assert!(err.contains(&format!("`{name}`")) && err.contains("opens no P2P connection"), "{err}");
        }
    }
}
