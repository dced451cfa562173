//! The largest accepted values of the numeric flags work (no overflow when a peer connects or
//! a ban is set).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// `i64::MAX`: the largest `--peertimeout` and `--bantime`.
const MAX_SECS: &str = "9223372036854775807";

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
    assert_eq!(list[0]["banned_until"], json!(i64::MAX), "{list}");
    let mut banned = RawPeer::connect_from("127.0.0.2".parse().unwrap(), d.addr);
    assert!(banned.is_closed(WAIT), "a banned address got in");
}
