//! Numeric flags have Core's ranges: a value outside is refused at start with one line naming
//! the flag and the range (from the command line or `btcloop.conf`); the largest accepted
//! values work (no overflow when a peer connects or a ban is set).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// `i64::MAX`: the largest `--peertimeout` and `--bantime`.
const MAX_SECS: &str = "9223372036854775807";

/// Runs btcloopd with `args` (on loopback, OS-chosen ports, should it start at all) and checks
/// it is refused with one line naming `flag` and `range`.
fn assert_refused(args: &[&str], flag: &str, range: &str) {
    let mut all = vec!["--bind=127.0.0.1:0", "--rpcport=0"];
    all.extend_from_slice(args);
    let (status, stderr) = run_to_exit(&all);
    assert_eq!(status.code(), Some(1), "{args:?}: exit status {status}, stderr {stderr:?}");
    assert!(stderr.starts_with("Error: invalid value"), "{args:?}: {stderr:?}");
    assert!(stderr.contains(&format!("'--{flag} ")) && stderr.contains(range), "{args:?}: {stderr:?}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr:?}");
}

#[test]
fn out_of_range_values_are_refused_at_start() {
    let max_secs = format!("from 1 to {MAX_SECS}");
    for (flag, value, range) in [
        ("peertimeout", "18446744073709551615", max_secs.as_str()),
        ("peertimeout", "0", &max_secs),
        ("bantime", "18446744073709551615", &max_secs),
        ("maxconnections", "18446744073709551615", "from 0 to 2147483647"),
        ("maxreceivebuffer", "4294968", "from 0 to 4294967"),
        ("maxsendbuffer", "18446744073709551615", "from 0 to 4294967"),
        ("rpcthreads", "0", "from 1 to 512"),
    ] {
        assert_refused(&["--regtest", &format!("--{flag}={value}")], flag, range);
    }
}

#[test]
fn out_of_range_values_in_the_conf_file_are_refused_at_start() {
    let dir = Daemon::new_dir();
    std::fs::write(dir.path().join("btcloop.conf"), "regtest=1\n[regtest]\npeertimeout=18446744073709551615\n")
        .unwrap();
    let datadir = format!("--datadir={}", dir.path().display());
    assert_refused(&[&datadir], "peertimeout", &format!("from 1 to {MAX_SECS}"));
    let (_, stderr) = run_to_exit(&[&datadir, "--bind=127.0.0.1:0", "--rpcport=0"]);
    assert!(stderr.contains("btcloop.conf"), "the error does not say the value is the file's: {stderr:?}");
}

/// The largest `--peertimeout` used to overflow `Instant + Duration` (a panic in the message
/// handler) at the first connection; now the grace period simply never ends.
#[test]
fn the_largest_peertimeout_survives_connections() {
    let mut d = Daemon::start(&[&format!("--peertimeout={MAX_SECS}")]);
    let mut a = d.connect_ready();
    a.ping_pong(1);
    // Several 100 ms timer steps run the inactivity and ping checks on every peer.
    std::thread::sleep(Duration::from_millis(500));
    let mut b = d.connect_ready();
    b.ping_pong(2);
    a.ping_pong(3);
    assert!(d.try_wait().is_none(), "btcloopd exited");
    assert_eq!(d.sigterm_and_wait(WAIT).code(), Some(0));
}

/// `setban` without a duration at the largest `--bantime` bans until the end of time (it used
/// to overflow `now + bantime`).
#[test]
fn the_largest_bantime_bans_for_good() {
    let d = Daemon::start(&[&format!("--bantime={MAX_SECS}")]);
    assert_eq!(d.rpc_ok("setban", json!(["127.0.0.2", "add"])), Value::Null);
    let list = d.rpc_ok("listbanned", json!([]));
    assert_eq!(list[0]["address"], json!("127.0.0.2/32"), "{list}");
    // Clamped to the end of year 9999 (the ban list's range), not wrapped round to a ban that
    // has already expired.
    assert_eq!(list[0]["banned_until"], json!(253_402_300_799i64), "{list}");
    assert!(list[0]["time_remaining"].as_i64().is_some_and(|t| t > 100 * 365 * 86_400), "{list}");
    let mut banned = RawPeer::connect_from("127.0.0.2".parse().unwrap(), d.addr);
    assert!(banned.is_closed(WAIT), "a banned address got in");
}
