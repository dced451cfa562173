//! The onion service against a real Tor (`common::tor`: Debian's tor, offline, its control
//! port on loopback): btcloopd authenticates (SAFECOOKIE, or `--torpassword`), gets an
//! ED25519-V3 service with `ADD_ONION`, keeps its key (mode 0600) so a restart gets the same
//! address, logs a wrong password, and makes the service again when Tor comes back.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::tor::Tor;
use common::*;

const TOR_WAIT: Duration = Duration::from_secs(30);

/// `getnetworkinfo`'s `localaddresses`.
fn local_addresses(d: &Daemon) -> Vec<serde_json::Value> {
    d.rpc_ok("getnetworkinfo", serde_json::json!([]))["localaddresses"].as_array().cloned().unwrap_or_default()
}

/// The service id of the last "Got tor service ID" line of `d`'s log.
fn service_id(d: &Daemon) -> String {
    let log = d.wait_log("Got tor service ID ", TOR_WAIT);
    let line = log.lines().rev().find(|l| l.contains("Got tor service ID ")).expect("the line");
    let id = line.split("Got tor service ID ").nth(1).and_then(|r| r.split(',').next()).unwrap_or("").to_string();
    assert_eq!(id.len(), 56, "a v3 service id: {line}");
    assert!(id.chars().all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)), "base32: {id}");
    id
}

#[test]
fn a_real_tor_gives_an_onion_service_whose_key_survives_a_restart() {
    let tor = Tor::start(None);
    let args = [&format!("--torcontrol={}", tor.control), "--debug=tor"];
    let d = Daemon::start(&args);
    let first = service_id(&d);
    d.wait_log("Using SAFECOOKIE authentication", TOR_WAIT);
    let key_file = d.net_dir().join("onion_v3_private_key");
    let key = std::fs::read_to_string(&key_file).expect("the key is kept");
    assert!(key.starts_with("ED25519-V3:"), "{key}");
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    let log = d.log();
    assert!(log.contains(&format!("advertising service {first}.onion:18444")), "{}", tail(&log, 20));
    // One of our advertised addresses now, as Core's AddLocal(service, LOCAL_MANUAL).
    let onion_local = serde_json::json!({"address": format!("{first}.onion"), "port": 18444, "score": 4});
    assert!(poll_until(WAIT, || local_addresses(&d).contains(&onion_local)), "{:?}", local_addresses(&d));
    let d = d.restart(&args);
    d.wait_log("Reading cached private key", TOR_WAIT);
    assert_eq!(service_id(&d), first, "the same address after a restart");
}

#[test]
fn password_authentication_and_a_wrong_password() {
    let tor = Tor::start(Some("right horse"));
    let good = Daemon::start(&[&format!("--torcontrol={}", tor.control), "--torpassword=right horse"]);
    service_id(&good);
    let bad = Daemon::start(&[&format!("--torcontrol={}", tor.control), "--torpassword=wrong"]);
    bad.wait_log("tor: authentication failed (code 515)", TOR_WAIT);
    // Without a password, a Tor that wants one is reported, as Core says it.
    let none = Daemon::start(&[&format!("--torcontrol={}", tor.control)]);
    none.wait_log("no password provided with --torpassword", TOR_WAIT);
    assert!(!none.log().contains("Got tor service ID"));
}

#[test]
fn the_service_comes_back_when_tor_does() {
    let tor = Tor::start(None);
    let port = tor.control.port();
    let d = Daemon::start(&[&format!("--torcontrol={}", tor.control)]);
    let first = service_id(&d);
    assert!(poll_until(WAIT, || local_addresses(&d).len() == 1), "{:?}", local_addresses(&d));
    let dir = tor.stop();
    d.wait_log(&format!("tor: onion service {first}.onion is gone"), TOR_WAIT);
    assert!(poll_until(WAIT, || local_addresses(&d).is_empty()), "no longer advertised: {:?}", local_addresses(&d));
    let _tor = Tor::start_on(port, None, Some(dir));
    d.wait_log_count("Got tor service ID ", 2, TOR_WAIT);
    assert_eq!(service_id(&d), first, "made again with the kept key");
}
