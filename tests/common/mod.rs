//! Shared helpers of the integration tests: a `btcloopd` process in a temporary data directory
//! ([`Daemon`]) and a scripted peer over loopback ([`RawPeer`]) speaking v1 or, as the BIP324
//! initiator, v2 ([`Transport`]; `BTCLOOP_TEST_TRANSPORT=v1|v2` picks it for peers that connect
//! to the node, v1 when unset).
//!
//! Every wait is bounded; a `Daemon` kills its process on drop (also when a test panics) and
//! then removes its data directory.

#![allow(dead_code)]

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_network::VersionMessage;
use btcloop::base::message::encode_message;
use btcloop::base::transport::checksum_of;
use tempfile::TempDir;

/// The regtest message start.
pub const MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];
/// The mainnet message start (a wrong magic on regtest).
pub const MAINNET_MAGIC: [u8; 4] = [0xf9, 0xbe, 0xb4, 0xd9];
/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_btcloopd");
/// Upper bound for anything the daemon should do "now" (generous: loaded 2-core machines).
pub const WAIT: Duration = Duration::from_secs(10);
/// Protocol version we and the daemon speak.
pub const PROTOCOL_VERSION: u32 = 70016;

/// The daemon's user agent, with optional comment.
pub fn daemon_user_agent(comment: Option<&str>) -> String {
    let v = env!("CARGO_PKG_VERSION");
    match comment {
        Some(c) => format!("/btcloop:{v}({c})/"),
        None => format!("/btcloop:{v}/"),
    }
}

/// A random non-zero u64 (std only: a randomly keyed hash of a counter and the time).
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        let n = h.finish();
        if n != 0 {
            return n;
        }
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Accepts one connection on `listener` within `timeout` (panics otherwise); the stream is
/// returned in blocking mode.
pub fn accept_within(listener: &TcpListener, timeout: Duration) -> TcpStream {
    listener.set_nonblocking(true).expect("nonblocking listener");
    let mut accepted = None;
    let ok = poll_until(timeout, || match listener.accept() {
        Ok((s, _)) => {
            accepted = Some(s);
            true
        }
        Err(_) => false,
    });
    assert!(ok, "no connection to {:?} within {timeout:?}", listener.local_addr());
    let stream = accepted.expect("accepted stream");
    stream.set_nonblocking(false).expect("blocking stream");
    stream
}

// ---------------------------------------------------------------------------------------------
// Daemon
// ---------------------------------------------------------------------------------------------

/// A running `btcloopd --regtest`, listening on 127.0.0.1:`port`.
pub struct Daemon {
    child: Child,
    dir: TempDir,
    /// The listening port.
    pub port: u16,
    /// The listening address.
    pub addr: SocketAddr,
    /// `Bound to` lines already in the log when this process started (restarts append).
    starts_before: usize,
    /// The RPC server's IPv4 address, if it runs (the harness gives it `--rpcport=0`).
    pub rpc_addr: Option<SocketAddr>,
}

enum StartError {
    /// The port was taken between choosing and binding it.
    PortTaken(String),
    Other(String),
}

impl Daemon {
    /// Starts with `--debug=net` plus `args` on a free port.
    pub fn start(args: &[&str]) -> Daemon {
        Self::start_with(true, |_| args.iter().map(|s| s.to_string()).collect())
    }

    /// Starts without `--debug=net` (for tests that send very many messages).
    pub fn start_quiet(args: &[&str]) -> Daemon {
        Self::start_with(false, |_| args.iter().map(|s| s.to_string()).collect())
    }

    /// Starts on a free port; `args` gets the port (for flags that must name it). Retries with
    /// another port if the chosen one was taken meanwhile.
    pub fn start_with(debug: bool, args: impl Fn(u16) -> Vec<String>) -> Daemon {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            match Self::try_start(port, debug, &args(port)) {
                Ok(d) => return d,
                Err(StartError::PortTaken(e)) => last = e,
                Err(StartError::Other(e)) => panic!("btcloopd did not start: {e}"),
            }
        }
        panic!("btcloopd could not bind a free port: {last}");
    }

    /// Starts on the given port (no retry).
    pub fn start_on_port(port: u16, args: &[&str]) -> Daemon {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match Self::try_start(port, true, &args) {
            Ok(d) => d,
            Err(StartError::PortTaken(e) | StartError::Other(e)) => panic!("btcloopd did not start: {e}"),
        }
    }

    /// Starts (with `--debug=net`) on a free port in an existing data directory, e.g. one whose
    /// `regtest/headers.dat` the test wrote.
    pub fn start_in(dir: TempDir, args: &[&str]) -> Daemon {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match Self::try_start_in(free_port(), true, &args, Some(dir)) {
            Ok(d) => d,
            Err(StartError::PortTaken(e) | StartError::Other(e)) => panic!("btcloopd did not start: {e}"),
        }
    }

    /// A fresh temporary data directory.
    pub fn new_dir() -> TempDir {
        tempfile::Builder::new().prefix("btcloop-it-").tempdir().expect("tempdir")
    }

    /// The network's data directory (`<datadir>/regtest`).
    pub fn net_dir(&self) -> PathBuf {
        self.dir.path().join("regtest")
    }

    /// Stops the daemon with SIGTERM and starts it again on the same data directory and port.
    pub fn restart(mut self, args: &[&str]) -> Daemon {
        let status = self.sigterm_and_wait(Duration::from_secs(10));
        assert!(status.success(), "btcloopd exited with {status}");
        self.start_again(args)
    }

    /// Kills the daemon with SIGKILL (no shutdown code runs) and starts it again on the same
    /// data directory and port.
    pub fn kill9_and_restart(mut self, args: &[&str]) -> Daemon {
        let status = self.signal_and_wait(libc::SIGKILL, Duration::from_secs(10));
        assert!(!status.success(), "btcloopd exited normally after SIGKILL: {status}");
        self.start_again(args)
    }

    /// Starts a new daemon on this (exited) one's data directory and port.
    fn start_again(mut self, args: &[&str]) -> Daemon {
        let dir = std::mem::replace(&mut self.dir, Self::new_dir());
        let port = self.port;
        drop(self);
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match Self::try_start_in(port, true, &args, Some(dir)) {
            Ok(d) => d,
            Err(StartError::PortTaken(e) | StartError::Other(e)) => panic!("btcloopd did not restart: {e}"),
        }
    }

    /// The data directory (`--datadir`).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn try_start(port: u16, debug: bool, extra: &[String]) -> Result<Daemon, StartError> {
        Self::try_start_in(port, debug, extra, None)
    }

    fn try_start_in(port: u16, debug: bool, extra: &[String], dir: Option<TempDir>) -> Result<Daemon, StartError> {
        let dir = match dir {
            Some(d) => d,
            None => tempfile::Builder::new()
                .prefix("btcloop-it-")
                .tempdir()
                .map_err(|e| StartError::Other(e.to_string()))?,
        };
        let stderr = fs::File::create(dir.path().join("stderr.txt")).map_err(|e| StartError::Other(e.to_string()))?;
        let mut cmd = Command::new(BIN);
        cmd.arg("--regtest")
            .arg(format!("--datadir={}", dir.path().display()))
            .arg("--printtoconsole=0")
            .arg(format!("--bind=127.0.0.1:{port}"));
        if debug {
            cmd.arg("--debug=net");
        }
        if !extra.iter().any(|a| a.starts_with("--rpcport")) {
            // An OS-chosen port: parallel daemons never collide on the default RPC port.
            cmd.arg("--rpcport=0");
        }
        cmd.args(extra).stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
        // Count earlier starts' lines before this process can write its own (restarts append).
        let starts_before =
            fs::read_to_string(dir.path().join("regtest/debug.log")).unwrap_or_default().matches("Bound to").count();
        let child = cmd.spawn().map_err(|e| StartError::Other(format!("spawn {BIN}: {e}")))?;
        let mut d =
            Daemon { child, dir, port, addr: SocketAddr::from(([127, 0, 0, 1], port)), starts_before, rpc_addr: None };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = d.log();
            if log.matches("Bound to").count() > d.starts_before {
                // The latest start's line is the last one (restarts append).
                d.rpc_addr = log
                    .lines()
                    .rev()
                    .find_map(|l| l.split_once("RPC listening on 127.0.0.1:").and_then(|(_, p)| p.trim().parse().ok()))
                    .map(|p: u16| SocketAddr::from(([127, 0, 0, 1], p)));
                return Ok(d);
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                let err = format!("exited with {status}: {} {}", d.stderr().trim(), tail(&d.log(), 5));
                return Err(if err.contains("unable to bind") {
                    StartError::PortTaken(err)
                } else {
                    StartError::Other(err)
                });
            }
            if Instant::now() >= deadline {
                return Err(StartError::Other(format!(
                    "no 'Bound to' in debug.log within 60 s:\n{}",
                    tail(&d.log(), 20)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `<datadir>/regtest/debug.log`.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("regtest").join("debug.log")
    }

    /// The contents of debug.log (empty if it does not exist yet).
    pub fn log(&self) -> String {
        fs::read(self.log_path()).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// What the process wrote to stderr.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr.txt")).unwrap_or_default()
    }

    /// How many log lines contain `pattern`.
    pub fn log_count(&self, pattern: &str) -> usize {
        self.log().lines().filter(|l| l.contains(pattern)).count()
    }

    /// Waits until a log line contains `pattern`; returns that line. Panics with the log's tail
    /// after `timeout`.
    pub fn wait_log(&self, pattern: &str, timeout: Duration) -> String {
        self.wait_log_all(&[pattern], timeout)
    }

    /// Waits until one log line contains every one of `patterns`; returns that line.
    pub fn wait_log_all(&self, patterns: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| patterns.iter().all(|p| l.contains(p))) {
                return line.to_string();
            }
            if Instant::now() >= deadline {
                panic!("no log line with {patterns:?} within {timeout:?}; debug.log ends with:\n{}", tail(&log, 40));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until at least `n` log lines contain `pattern`.
    pub fn wait_log_count(&self, pattern: &str, n: usize, timeout: Duration) {
        if !poll_until(timeout, || self.log_count(pattern) >= n) {
            panic!(
                "fewer than {n} log lines with {pattern:?} within {timeout:?}; debug.log ends with:\n{}",
                tail(&self.log(), 40)
            );
        }
    }

    /// Resident set size in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid());
    }

    /// The exit status if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Sends `sig` and waits (polling `try_wait`) for the exit; panics after `timeout`.
    pub fn signal_and_wait(&mut self, sig: i32, timeout: Duration) -> ExitStatus {
        self.signal(sig);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "btcloopd still running {timeout:?} after signal {sig}; debug.log ends with:\n{}",
                    tail(&self.log(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then wait for the exit.
    pub fn sigterm_and_wait(&mut self, timeout: Duration) -> ExitStatus {
        self.signal_and_wait(libc::SIGTERM, timeout)
    }

    /// Connects a raw peer to the daemon over [`Transport::from_env`]'s transport.
    pub fn connect(&self) -> RawPeer {
        RawPeer::connect(self.addr)
    }

    /// Connects a raw peer over v1 whatever the environment says (hand-made v1 bytes).
    pub fn connect_v1(&self) -> RawPeer {
        RawPeer::connect_v1(self.addr)
    }

    /// Connects a raw peer and completes the handshake (answering the daemon's first ping).
    pub fn connect_ready(&self) -> RawPeer {
        Self::ready(self.connect())
    }

    /// [`Daemon::connect_ready`] over v1 whatever the environment says.
    pub fn connect_ready_v1(&self) -> RawPeer {
        Self::ready(self.connect_v1())
    }

    fn ready(mut p: RawPeer) -> RawPeer {
        let hs = p.handshake();
        p.send(&NetworkMessage::Pong(hs.ping_nonce));
        p
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill(); // SIGKILL
        }
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- btcloopd debug.log (tail) ----\n{}\n---- stderr ----\n{}",
                tail(&self.log(), 60),
                self.stderr()
            );
        }
    }
}

/// Runs `btcloopd` with `args` (and a throw-away data directory unless `args` names one) to
/// completion, for command-line checks; returns (exit status, stderr). Killed after 10 s.
pub fn run_to_exit(args: &[&str]) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let err_path = dir.path().join("stderr.txt");
    let stderr = fs::File::create(&err_path).expect("create stderr file");
    let mut cmd = Command::new(BIN);
    if !args.iter().any(|a| a.starts_with("--datadir")) {
        cmd.arg(format!("--datadir={}", dir.path().display()));
    }
    let mut child = cmd
        .arg("--printtoconsole=0")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn btcloopd");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("btcloopd {args:?} did not exit within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status, fs::read_to_string(&err_path).unwrap_or_default())
}

// ---------------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------------

/// A v1 frame with a raw 12-byte type field, the given magic and (optionally) a forced checksum.
pub fn raw_frame(magic: [u8; 4], command: &[u8], payload: &[u8], checksum: Option<[u8; 4]>) -> Vec<u8> {
    assert!(command.len() <= 12);
    let mut out = Vec::with_capacity(24 + payload.len());
    out.extend_from_slice(&magic);
    let mut cmd = [0u8; 12];
    cmd[..command.len()].copy_from_slice(command);
    out.extend_from_slice(&cmd);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum.unwrap_or_else(|| checksum_of(payload)));
    out.extend_from_slice(payload);
    out
}

/// `msg` as a regtest frame.
pub fn frame(msg: &NetworkMessage) -> Vec<u8> {
    let mut out = Vec::new();
    encode_message(MAGIC, msg, &mut out);
    out
}

/// A `version` as a current peer sends it.
pub fn version_msg(version: u32, user_agent: &str, nonce: u64) -> VersionMessage {
    let zero = Address { services: ServiceFlags::NONE, address: [0; 8], port: 0 };
    VersionMessage {
        version,
        services: ServiceFlags::NONE,
        timestamp: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64),
        receiver: zero.clone(),
        sender: zero,
        nonce,
        user_agent: user_agent.to_string(),
        start_height: 0,
        relay: false,
    }
}

mod raw_peer;
pub use raw_peer::*;

mod http;
#[allow(unused_imports)] // Not every test crate uses the HTTP helpers.
pub use http::*;
pub mod bitcoind;
pub mod socks5;
pub mod tor;
