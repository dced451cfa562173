//! A real Bitcoin Core `bitcoind` on regtest for interop tests ([`Bitcoind`]): found through
//! `BTCLOOP_BITCOIND` or built once by `scripts/build-bitcoind`, started in a temporary data
//! directory with loopback-only P2P and RPC on free ports, and driven over JSON-RPC (cookie
//! auth, `ureq`).
//!
//! Every wait is bounded; a `Bitcoind` stops its process on drop (the `stop` RPC, then SIGKILL
//! after a bounded wait, also when a test panics) and then removes its data directory.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::{free_port, poll_until, random_u64, tail};

/// How long bitcoind may take to answer RPC after it was spawned.
pub const CORE_START_WAIT: Duration = Duration::from_secs(60);
/// How long one RPC call may take (`generate` of a few hundred blocks included).
pub const CORE_RPC_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `stop` (RPC or drop) waits for the process to exit before SIGKILL.
pub const CORE_STOP_WAIT: Duration = Duration::from_secs(30);

/// The script output of `generate`: `OP_TRUE`, anyone can spend it (no wallet needed).
pub const MINE_TO: &str = "raw(51)";

/// A failed RPC call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreRpcError {
    /// bitcoind answered with a JSON-RPC error (e.g. -28 while warming up).
    Rpc {
        /// Core's error code.
        code: i64,
        /// Core's message.
        message: String,
    },
    /// No JSON-RPC answer: connection refused, timeout, no cookie yet, HTTP error without a
    /// JSON-RPC body.
    Transport(String),
}

impl std::fmt::Display for CoreRpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CoreRpcError::Rpc { code, message } => write!(f, "RPC error {code}: {message}"),
            CoreRpcError::Transport(e) => write!(f, "transport: {e}"),
        }
    }
}

/// The bitcoind binary: `$BTCLOOP_BITCOIND`, else what `scripts/build-bitcoind` prints (it
/// builds Core once into a cache outside the repository; its progress goes to stderr). Panics
/// with the script's error when it fails: interop tests are never skipped silently.
pub fn bitcoind_binary() -> PathBuf {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BINARY.get_or_init(find_binary) {
        Ok(p) => p.clone(),
        Err(e) => panic!("no bitcoind for the interop tests: {e}"),
    }
}

fn find_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("BTCLOOP_BITCOIND").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(format!("BTCLOOP_BITCOIND={} is not a file", p.display())) };
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-bitcoind");
    let mut child = Command::new(&script)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", script.display()))?;
    // Progress goes straight to the process's stderr (not captured by the test harness, so a
    // long first build shows what it does); the lines are kept for the error message.
    let stderr = child.stderr.take().ok_or("no stderr pipe")?;
    let forward = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(std::io::stderr(), "{line}");
            lines.push(line);
        }
        lines
    });
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_string(&mut out, &mut stdout).map_err(|e| format!("read build-bitcoind: {e}"))?;
    }
    let status = child.wait().map_err(|e| format!("wait for build-bitcoind: {e}"))?;
    let errors = forward.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("{} exited with {status}:\n{}", script.display(), tail(&errors.join("\n"), 20)));
    }
    let path = stdout.lines().last().map(str::trim).unwrap_or_default();
    if path.is_empty() || !Path::new(path).is_file() {
        return Err(format!("{} printed {path:?}, not a bitcoind binary", script.display()));
    }
    Ok(PathBuf::from(path))
}

/// Polls `cond` every 20 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, cond: impl FnMut() -> bool) {
    assert!(poll_until(timeout, cond), "timed out after {timeout:?} waiting for {what}");
}

/// A running `bitcoind -regtest` with P2P on 127.0.0.1:`p2p_port` and RPC on
/// 127.0.0.1:`rpc_port`.
pub struct Bitcoind {
    child: Child,
    dir: TempDir,
    /// The P2P listening port.
    pub p2p_port: u16,
    /// The RPC port.
    pub rpc_port: u16,
    agent: ureq::Agent,
}

/// Why a start failed.
enum StartError {
    /// A port was taken between choosing and binding it.
    PortTaken(String),
    Other(String),
}

/// The default arguments as `(name, value)`; a default is left out when the caller passes the
/// same option (`-name`, `-name=…` or `-noname`).
const DEFAULTS: &[(&str, &str)] = &[
    ("listen", "1"),
    ("dnsseed", "0"),
    ("fixedseeds", "0"),
    ("listenonion", "0"),
    ("discover", "0"),
    ("natpmp", "0"),
    ("connect", "0"),
    ("checkblockindex", "1"),
    ("debug", "net"),
    ("printtoconsole", "0"),
];

/// Whether `args` names the option `name` (`-name`, `--name`, `-name=…`, `-noname`).
fn names_option(args: &[String], name: &str) -> bool {
    args.iter().any(|a| {
        let a = a.trim_start_matches('-');
        let key = a.split('=').next().unwrap_or_default();
        key == name || key.strip_prefix("no") == Some(name)
    })
}

impl Bitcoind {
    /// Starts bitcoind on regtest with the defaults plus `extra` (which may replace a default,
    /// e.g. `-connect=127.0.0.1:P`), and waits until its RPC answers. Retries with other ports
    /// if a chosen one was taken meanwhile.
    pub fn start(extra: &[&str]) -> Bitcoind {
        let binary = bitcoind_binary();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start(&binary, free_port(), free_port(), &extra) {
                Ok(b) => return b,
                Err(StartError::PortTaken(e)) => last = e,
                Err(StartError::Other(e)) => panic!("bitcoind did not start: {e}"),
            }
        }
        panic!("bitcoind could not bind free ports: {last}");
    }

    fn try_start(binary: &Path, p2p_port: u16, rpc_port: u16, extra: &[String]) -> Result<Bitcoind, StartError> {
        if p2p_port == rpc_port {
            return Err(StartError::PortTaken("the same port twice".into()));
        }
        let dir =
            tempfile::Builder::new().prefix("btcloop-core-").tempdir().map_err(|e| StartError::Other(e.to_string()))?;
        let stderr = fs::File::create(dir.path().join("stderr.txt")).map_err(|e| StartError::Other(e.to_string()))?;
        let stdout = fs::File::create(dir.path().join("stdout.txt")).map_err(|e| StartError::Other(e.to_string()))?;
        let mut cmd = Command::new(binary);
        cmd.arg("-regtest")
            .arg(format!("-datadir={}", dir.path().display()))
            .arg(format!("-bind=127.0.0.1:{p2p_port}"))
            .arg("-rpcbind=127.0.0.1")
            .arg("-rpcallowip=127.0.0.1")
            .arg(format!("-rpcport={rpc_port}"));
        for (name, value) in DEFAULTS {
            if !names_option(extra, name) {
                cmd.arg(format!("-{name}={value}"));
            }
        }
        cmd.args(extra).stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        let child = cmd.spawn().map_err(|e| StartError::Other(format!("spawn {}: {e}", binary.display())))?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .timeout_global(Some(CORE_RPC_TIMEOUT))
            .build()
            .into();
        let mut b = Bitcoind { child, dir, p2p_port, rpc_port, agent };
        match b.wait_ready_or_exit(CORE_START_WAIT) {
            Ok(()) => Ok(b),
            Err(e) if e.contains("Unable to bind") => Err(StartError::PortTaken(e)),
            Err(e) => Err(StartError::Other(e)),
        }
    }

    /// Waits until RPC answers (`getblockchaininfo` succeeds: past warm-up) or the process
    /// exits; the error names the exit and the log's tail.
    fn wait_ready_or_exit(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.rpc("getblockchaininfo", json!([])) {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "bitcoind exited with {status}: {}\n{}",
                    self.stderr().trim(),
                    tail(&self.log(), 10)
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "bitcoind RPC not ready within {timeout:?} ({last}); debug.log ends with:\n{}",
                    tail(&self.log(), 20)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until RPC answers; panics with the log's tail after `timeout` or if bitcoind exits.
    pub fn wait_ready(&mut self, timeout: Duration) {
        if let Err(e) = self.wait_ready_or_exit(timeout) {
            panic!("{e}");
        }
    }

    /// The data directory (`-datadir`).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
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

    /// Waits until a debug.log line contains `pattern`; returns that line. Panics with the log's
    /// tail after `timeout`.
    pub fn wait_log(&self, pattern: &str, timeout: Duration) -> String {
        let mut found = None;
        let ok = poll_until(timeout, || {
            found = self.log().lines().find(|l| l.contains(pattern)).map(str::to_string);
            found.is_some()
        });
        if !ok {
            panic!(
                "bitcoind logged no line with {pattern:?} within {timeout:?}; debug.log ends with:\n{}",
                tail(&self.log(), 40)
            );
        }
        found.unwrap_or_default()
    }

    /// The P2P listening address.
    pub fn p2p_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.p2p_port))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `Authorization` value from `<datadir>/regtest/.cookie` (rewritten at every start).
    fn cookie_auth(&self) -> Result<String, CoreRpcError> {
        let path = self.dir.path().join("regtest").join(".cookie");
        let text =
            fs::read_to_string(&path).map_err(|e| CoreRpcError::Transport(format!("read {}: {e}", path.display())))?;
        let line = text.lines().next().unwrap_or_default();
        Ok(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(line)))
    }

    /// A JSON-RPC 2.0 call; `params` is an array or an object. A JSON-RPC error is `Err`.
    pub fn rpc(&self, method: &str, params: Value) -> Result<Value, CoreRpcError> {
        let auth = self.cookie_auth()?;
        let id = random_u64() >> 12;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        let url = format!("http://127.0.0.1:{}/", self.rpc_port);
        let mut resp = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Authorization", &auth)
            .send(body.as_str())
            .map_err(|e| CoreRpcError::Transport(format!("{method}: {e}")))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| CoreRpcError::Transport(format!("{method}: reading the reply: {e}")))?;
        let reply: Value = serde_json::from_str(&text)
            .map_err(|_| CoreRpcError::Transport(format!("{method}: HTTP {status} {text:?}")))?;
        if reply["id"] != json!(id) {
            return Err(CoreRpcError::Transport(format!("{method}: reply for another id: {reply}")));
        }
        match reply.get("error") {
            Some(e) if !e.is_null() => Err(CoreRpcError::Rpc {
                code: e["code"].as_i64().unwrap_or_default(),
                message: e["message"].as_str().unwrap_or_default().to_string(),
            }),
            _ => reply
                .get("result")
                .cloned()
                .ok_or_else(|| CoreRpcError::Transport(format!("{method}: reply without result: {reply}"))),
        }
    }

    /// A call that must succeed.
    pub fn rpc_ok(&self, method: &str, params: Value) -> Value {
        self.rpc(method, params.clone()).unwrap_or_else(|e| panic!("bitcoind {method} {params} failed: {e}"))
    }

    /// Mines `n` blocks to [`MINE_TO`]; returns their hashes.
    pub fn generate(&self, n: u32) -> Vec<String> {
        let hashes = self.rpc_ok("generatetodescriptor", json!([n, MINE_TO]));
        let hashes: Vec<String> = hashes
            .as_array()
            .unwrap_or_else(|| panic!("generatetodescriptor returned {hashes}"))
            .iter()
            .filter_map(|h| h.as_str().map(str::to_string))
            .collect();
        assert_eq!(hashes.len(), n as usize, "generatetodescriptor {n} mined {}", hashes.len());
        hashes
    }

    /// The active chain's tip: (height, hash), from one `getblockchaininfo`.
    pub fn tip(&self) -> (u64, String) {
        let info = self.rpc_ok("getblockchaininfo", json!([]));
        let height = info["blocks"].as_u64().unwrap_or_else(|| panic!("getblockchaininfo: {info}"));
        let hash = info["bestblockhash"].as_str().unwrap_or_else(|| panic!("getblockchaininfo: {info}"));
        (height, hash.to_string())
    }

    /// `getpeerinfo`: one object per connected peer.
    pub fn peers(&self) -> Vec<Value> {
        let v = self.rpc_ok("getpeerinfo", json!([]));
        v.as_array().unwrap_or_else(|| panic!("getpeerinfo returned {v}")).clone()
    }

    /// `addnode <addr> <command>` (`"onetry"`, `"add"` or `"remove"`), with Core's default
    /// transport (v2 first, then v1).
    pub fn addnode(&self, addr: SocketAddr, command: &str) {
        self.rpc_ok("addnode", json!([addr.to_string(), command]));
    }

    /// Stops through the `stop` RPC and waits (bounded by [`CORE_STOP_WAIT`]) for the exit;
    /// SIGKILL if it does not come. Returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.shutdown().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Bitcoind::stop`] without panicking (also used on drop).
    fn shutdown(&mut self) -> Result<ExitStatus, String> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Ok(status);
        }
        let _ = self.rpc("stop", json!([]));
        let deadline = Instant::now() + CORE_STOP_WAIT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = self.child.kill(); // SIGKILL
                    return self.child.wait().map_err(|e| format!("wait for bitcoind: {e}"));
                }
            }
        }
    }
}

impl Drop for Bitcoind {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- bitcoind debug.log (tail) ----\n{}\n---- stderr ----\n{}",
                tail(&self.log(), 60),
                self.stderr()
            );
        }
        let _ = self.shutdown();
        // The data directory goes with `self.dir`.
    }
}
