//! Running btcloopd as a service, end to end: `--daemon` started the way
//! `contrib/init/btcloopd.service` starts it (detached, its parent's exit status telling the
//! outcome, start-up errors printed), the PID file (`--pid`), SIGHUP reopening `debug.log`,
//! the systemd unit itself and the sample `contrib/btcloop.conf`.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use btcloop::base::sys::DirLock;
use common::{BIN, Daemon, RawPeer, WAIT, free_port, poll_until, run_to_exit, tail};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/init/btcloopd.service");
const SAMPLE_CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/btcloop.conf");

/// Whether `pid` is a live process (not gone, not a zombie waiting for its reaper).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Field `n` (1-based, as `man 5 proc` counts) of `/proc/PID/stat`.
fn stat_field(pid: i32, n: usize) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(n.checked_sub(3)?)?.parse().ok()
}

/// A detached btcloopd found through its PID file; SIGKILLed on drop if still running (a
/// failing test leaves no process behind).
struct Detached {
    pid: i32,
}

impl Detached {
    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the daemon's pid; no memory is involved.
        assert_eq!(unsafe { libc::kill(self.pid, sig) }, 0, "kill({}, {sig})", self.pid);
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if alive(self.pid) {
            // SAFETY: as above.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

/// Runs `btcloopd args` with stdout and stderr on pipes, reading both to their end: the call
/// returns only once every process holding them (the detached child too) has let go. Returns
/// the exit status, stdout and stderr; panics after `limit` (killing the process `pid_file`
/// names, if any, so that no daemon outlives the test).
fn run_detaching(args: &[String], pid_file: &Path, limit: Duration) -> (ExitStatus, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn btcloopd");
    let (mut out, mut err) = (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut o, mut e) = (String::new(), String::new());
        let _ = out.read_to_string(&mut o);
        let _ = err.read_to_string(&mut e);
        let _ = tx.send((o, e));
    });
    let (stdout, stderr) = match rx.recv_timeout(limit) {
        Ok(x) => x,
        Err(_) => {
            let _ = child.kill();
            if let Some(pid) = std::fs::read_to_string(pid_file).ok().and_then(|t| t.trim().parse().ok()) {
                drop(Detached { pid });
            }
            panic!("btcloopd {args:?}: stdout/stderr still open after {limit:?} (the daemon kept them?)");
        }
    };
    let status = child.wait().expect("wait");
    (status, stdout, stderr)
}

/// The unit's `[Section]` → `Key=value` lines (continuations joined), in order.
fn unit_entries(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with(';')) {
            continue;
        }
        if pending.is_empty() && line.starts_with('[') {
            section = line.trim_matches(['[', ']']).to_string();
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let entry = std::mem::take(&mut pending);
        let (k, v) = entry.split_once('=').unwrap_or_else(|| panic!("not Key=value in [{section}]: {entry}"));
        out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
    }
    assert!(pending.is_empty(), "unit ends in a continuation");
    out
}

fn unit_value(entries: &[(String, String, String)], section: &str, key: &str) -> Option<String> {
    entries.iter().find(|(s, k, _)| s == section && k == key).map(|(_, _, v)| v.clone())
}

/// The long options `btcloopd --help` lists.
fn help_options() -> Vec<String> {
    let out = Command::new(BIN).arg("--help").output().expect("run btcloopd --help");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")))
        .map(|w| w.trim_start_matches('-').trim_end_matches(',').to_string())
        .collect()
}

/// The systemd unit's own command line, run with its paths moved under a temporary directory
/// (and `--regtest` on a loopback port added): the first process exits 0 only after start-up,
/// having printed nothing but `btcloopd starting` and holding no pipe of ours; the daemon is
/// in its own session with its standard streams on /dev/null, writes the unit's `PIDFile` (mode
/// 0600, its pid), logs to debug.log only, serves peers, and at SIGTERM stops cleanly and
/// removes the PID file. Also loads the sample `contrib/btcloop.conf` as its `--conf`.
#[test]
fn the_units_command_line_detaches_after_start_up_and_keeps_a_pid_file() {
    let entries = unit_entries(&std::fs::read_to_string(UNIT).expect("read the unit"));
    let exec = unit_value(&entries, "Service", "ExecStart").expect("ExecStart");
    let pid_file = unit_value(&entries, "Service", "PIDFile").expect("PIDFile");
    let root = tempfile::Builder::new().prefix("btcloop-svc-").tempdir().expect("tempdir");
    let moved = |p: &str| -> String {
        let mut s = p.to_string();
        for prefix in ["/var/lib/", "/etc/", "/run/"] {
            s = s.replace(prefix, &format!("{}{prefix}", root.path().display()));
        }
        s
    };
    let etc = PathBuf::from(moved("/etc/btcloop"));
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::copy(SAMPLE_CONF, etc.join("btcloop.conf")).unwrap();
    std::fs::create_dir_all(moved("/run/btcloopd")).unwrap();
    let pid_path = PathBuf::from(moved(&pid_file));
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/btcloopd"));
    let mut args: Vec<String> = words.map(moved).collect();
    assert!(args.contains(&"--daemon".to_string()), "{args:?}");
    assert!(args.iter().any(|a| a.starts_with("--pid=") && moved(&pid_file).ends_with(&a["--pid=".len()..])));
    let port = free_port();
    args.extend(["--regtest".into(), format!("--bind=127.0.0.1:{port}"), "--rpcport=0".into()]);

    let (status, stdout, stderr) = run_detaching(&args, &pid_path, Duration::from_secs(60));
    let datadir = PathBuf::from(moved("/var/lib/btcloopd"));
    let log_path = datadir.join("regtest/debug.log");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(status.success(), "exit {status}: {stderr}\n{}", tail(&log(), 20));
    assert_eq!(stdout, "btcloopd starting\n");
    assert_eq!(stderr, "", "console logging is off when detached, as Core's");
    // Start-up was over when the parent exited: the PID file is there, the ports bound.
    let text = std::fs::read_to_string(&pid_path).expect("PID file written before the parent exits");
    let pid: i32 = text.trim_end().parse().unwrap_or_else(|_| panic!("PID file holds {text:?}"));
    assert_eq!(text, format!("{pid}\n"));
    let daemon = Detached { pid };
    assert!(alive(pid), "the daemon runs");
    assert!(log().contains("Bound to"), "{}", log());
    assert_eq!(std::fs::metadata(&pid_path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(stat_field(pid, 6), Some(i64::from(pid)), "the daemon leads its own session (setsid)");
    for fd in 0..3 {
        let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
        assert_eq!(target, Path::new("/dev/null"), "fd {fd}");
    }
    // It serves: a peer completes the handshake.
    let mut peer = RawPeer::connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    peer.handshake();

    daemon.signal(libc::SIGTERM);
    assert!(poll_until(Duration::from_secs(30), || !alive(pid)), "still running:\n{}", tail(&log(), 20));
    assert!(log().trim_end().ends_with("Shutdown done"), "{}", tail(&log(), 10));
    assert!(!pid_path.exists(), "PID file left after a clean stop");
}

/// A detached start that fails says why on stderr and exits 1, and leaves no process: the data
/// directory already locked by a running node (whose default PID file, `btcloopd.pid` in the
/// network's directory, names it), and a `--pid` whose directory does not exist (relative
/// paths are under the network's data directory).
#[test]
fn a_failed_detached_start_prints_the_error_and_exits_1() {
    let running = Daemon::start(&[]);
    let default_pid = running.net_dir().join("btcloopd.pid");
    assert_eq!(std::fs::read_to_string(&default_pid).unwrap(), format!("{}\n", running.pid()));
    let args = vec![
        "--daemon".to_string(),
        "--regtest".into(),
        format!("--datadir={}", running.data_dir().display()),
        format!("--bind=127.0.0.1:{}", free_port()),
        "--rpcport=0".into(),
    ];
    let (status, stdout, stderr) = run_detaching(&args, &running.net_dir().join("unused.pid"), WAIT);
    assert_eq!(status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.starts_with("Error: cannot obtain a lock on data directory"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(std::fs::read_to_string(&default_pid).unwrap(), format!("{}\n", running.pid()), "PID file kept");

    let dir = Daemon::new_dir();
    let args = vec![
        "--daemon".to_string(),
        "--regtest".into(),
        format!("--datadir={}", dir.path().display()),
        "--pid=no/such/dir/btcloopd.pid".into(),
        format!("--bind=127.0.0.1:{}", free_port()),
        "--rpcport=0".into(),
    ];
    let (status, _, stderr) = run_detaching(&args, &dir.path().join("regtest/btcloopd.pid"), WAIT);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let want =
        format!("unable to create the PID file {}", dir.path().join("regtest/no/such/dir/btcloopd.pid").display());
    assert!(stderr.starts_with("Error: ") && stderr.contains(&want), "{stderr}");
    // The child is gone: its lock on the data directory is free again.
    let net = dir.path().join("regtest");
    assert!(poll_until(WAIT, || DirLock::acquire(&net).is_ok()), "the failed child still holds the lock");
}

/// logrotate's way: rename debug.log, send SIGHUP; a new debug.log appears and new lines go
/// there, the renamed file gets no more, and the node keeps running (SIGHUP used to kill it).
#[test]
fn sighup_reopens_debug_log_after_a_rename() {
    let mut d = Daemon::start(&[]);
    let rotated = d.net_dir().join("debug.log.1");
    std::fs::rename(d.log_path(), &rotated).unwrap();
    d.signal(libc::SIGHUP);
    d.wait_log("Reopened", WAIT);
    assert!(d.try_wait().is_none(), "SIGHUP stopped the node");
    let mut p = d.connect();
    p.handshake();
    d.wait_log("New inbound peer connected", WAIT);
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("Bound to") && !old.contains("New inbound peer"), "{}", tail(&old, 5));
    assert!(!d.log().contains("Bound to"), "the new file starts at the reopen");
    assert_eq!(std::fs::metadata(d.log_path()).unwrap().permissions().mode() & 0o777, 0o600);
    let status = d.sigterm_and_wait(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(d.log().contains("Shutdown done"));
    assert!(!d.net_dir().join("btcloopd.pid").exists(), "PID file left after a clean stop");
}

/// The systemd unit: the sections and keys a hardened forking service needs, every option of
/// its command line one btcloopd has, and — where systemd-analyze is installed — `verify`
/// finds nothing to say about it.
#[test]
fn the_systemd_unit_is_hardened_and_uses_only_real_options() {
    let text = std::fs::read_to_string(UNIT).expect("read the unit");
    let e = unit_entries(&text);
    for (section, key, want) in [
        ("Unit", "After", "network-online.target"),
        ("Service", "Type", "forking"),
        ("Service", "User", "btcloop"),
        ("Service", "RuntimeDirectory", "btcloopd"),
        ("Service", "StateDirectory", "btcloopd"),
        ("Service", "PrivateTmp", "true"),
        ("Service", "ProtectSystem", "full"),
        ("Service", "ProtectHome", "true"),
        ("Service", "NoNewPrivileges", "true"),
        ("Service", "PrivateDevices", "true"),
        ("Service", "MemoryDenyWriteExecute", "true"),
        ("Service", "SystemCallArchitectures", "native"),
        ("Install", "WantedBy", "multi-user.target"),
    ] {
        assert_eq!(unit_value(&e, section, key).as_deref(), Some(want), "[{section}] {key}");
    }
    let exec = unit_value(&e, "Service", "ExecStart").expect("ExecStart");
    let pid_file = unit_value(&e, "Service", "PIDFile").expect("PIDFile");
    assert!(exec.contains(&format!("--pid={pid_file}")), "ExecStart writes the unit's PIDFile: {exec}");
    assert!(pid_file.starts_with("/run/btcloopd/"), "{pid_file}");
    let known = help_options();
    assert!(known.contains(&"daemon".to_string()) && known.contains(&"pid".to_string()), "{known:?}");
    for word in exec.split_whitespace().skip(1) {
        let name = word.strip_prefix("--").unwrap_or_else(|| panic!("not an option: {word}"));
        let name = name.split('=').next().unwrap_or(name);
        assert!(known.iter().any(|k| k == name), "ExecStart uses --{name}, which btcloopd does not have");
    }
    let Ok(analyze) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze not installed: unit not verified by systemd");
        return;
    };
    assert!(analyze.status.success());
    // verify wants the executables to exist: point ExecStart at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("btcloopd.service");
    std::fs::write(&unit, text.replace("/usr/local/bin/btcloopd", BIN)).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&unit).output().expect("systemd-analyze verify");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
}

/// `contrib/btcloop.conf` lists every option `btcloopd --help` shows (but the command-line-only
/// ones), commented out, and btcloopd reads it as it is.
#[test]
fn the_sample_conf_lists_every_option_of_the_binary() {
    let sample = std::fs::read_to_string(SAMPLE_CONF).expect("read the sample");
    let options = help_options();
    assert!(options.len() > 40, "{options:?}");
    for name in options.iter().filter(|n| !["help", "version", "conf", "datadir"].contains(&n.as_str())) {
        assert!(sample.lines().any(|l| l.starts_with(&format!("#{name}="))), "--{name} missing from {SAMPLE_CONF}");
    }
    // Two networks are refused only after the file was read (a bad file is refused first).
    let (status, stderr) = run_to_exit(&["--regtest", "--signet", &format!("--conf={SAMPLE_CONF}")]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("invalid combination") && !stderr.contains("btcloop.conf"), "{stderr}");
}

/// The PID file goes on the other ways a node stops in order: the `stop` RPC, and the orderly
/// stop after a thread's panic (exit status 101).
#[test]
fn the_pid_file_is_removed_after_an_rpc_stop_and_after_a_panic() {
    let mut d = Daemon::start(&["--pid=node.pid"]);
    let pid_path = d.net_dir().join("node.pid");
    assert_eq!(std::fs::read_to_string(&pid_path).unwrap(), format!("{}\n", d.pid()));
    assert!(!d.net_dir().join("btcloopd.pid").exists(), "--pid replaces the default");
    assert_eq!(d.rpc_ok("stop", serde_json::json!([])), serde_json::json!("btcloopd stopping"));
    assert!(poll_until(WAIT, || d.try_wait().is_some()), "still running after stop");
    assert!(!pid_path.exists(), "PID file left after the stop RPC");

    let mut d = Daemon::start(&["--test=panic-msghand"]);
    let pid_path = d.net_dir().join("btcloopd.pid");
    assert!(pid_path.exists());
    let _p = d.connect();
    let mut status = None;
    assert!(poll_until(WAIT, || {
        status = d.try_wait();
        status.is_some()
    }));
    assert_eq!(status.and_then(|s| s.code()), Some(101));
    assert!(!pid_path.exists(), "PID file left after the stop that follows a panic");
}
