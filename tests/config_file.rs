//! `btcloop.conf`: Core's syntax and sections, the command line winning, clear errors.

mod common;

use std::fs;
use std::time::Duration;

use common::{Daemon, run_to_exit};

#[test]
fn sections_apply_per_network_and_the_command_line_wins() {
    let dir = Daemon::new_dir();
    let conf = "# btcloop.conf\nuacomment=fromconf\nport=1\n\n[regtest]\nlogips=1\npeertimeout=1  # seconds\n[main]\nmaxconnections=1\n";
    fs::write(dir.path().join("btcloop.conf"), conf).unwrap();
    let d = Daemon::start_in(dir, &["--logips=0"]);
    // Default-section options apply on regtest...
    let mut p = d.connect();
    let hs = p.handshake();
    assert_eq!(hs.version.user_agent, format!("/btcloop:{}(fromconf)/", env!("CARGO_PKG_VERSION")));
    // ...[regtest] ones too (peertimeout=1: a silent peer is dropped within seconds)...
    let mut silent = d.connect();
    assert!(silent.is_closed(Duration::from_secs(15)), "peertimeout from [regtest] not applied");
    // ...but --logips=0 on the command line beats logips=1 in the file.
    d.wait_log("disconnected peer=1", Duration::from_secs(10));
    assert!(!d.log().contains("peeraddr="), "command line did not win");
    // Core's network-only options in the default section are for mainnet only.
    d.wait_log("Config setting for --port only applied on main network", Duration::from_secs(5));
}

#[test]
fn bad_configuration_files_are_one_line_errors() {
    for (text, expect) in [
        ("listen=1\nbogus=3\n", "line 2: invalid configuration value bogus"),
        ("-listen=1\n", "without leading -"),
        ("nolisten\n", "use nolisten=1 instead"),
        ("[moon]\nlisten=1\n", "section [moon] is not recognized"),
    ] {
        let dir = Daemon::new_dir();
        fs::write(dir.path().join("btcloop.conf"), text).unwrap();
        let (status, stderr) = run_to_exit(&["--regtest", &format!("--datadir={}", dir.path().display())]);
        assert_eq!(status.code(), Some(1), "{text:?}: {stderr}");
        assert!(stderr.starts_with("Error:") && stderr.contains(expect), "{text:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
    // An explicit --conf that does not exist is an error; the default file may be absent.
    let dir = Daemon::new_dir();
    let (status, stderr) =
        run_to_exit(&["--regtest", &format!("--datadir={}", dir.path().display()), "--conf=nope.conf"]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("cannot read configuration file"), "{stderr}");
}
