//! The daemon binary's own tests: command-line parsing into `Config`, the sample config file.

use super::*;

fn cfg(args: &[&str]) -> Result<Config, String> {
    let argv = std::iter::once("btcloopd".to_string()).chain(args.iter().map(|s| s.to_string()));
    let cli = Cli::try_parse_from(normalize_args(argv)).map_err(|e| e.to_string())?;
    build_config(cli)
}

#[test]
fn core_style_flags() {
    let c = cfg(&["-regtest", "-listen=0", "-nologips"]).unwrap();
    assert_eq!(c.network, Network::Regtest);
    assert!(!c.listen);
    let c = cfg(&["--testnet4", "--listen"]).unwrap();
    assert_eq!(c.network, Network::Testnet4);
    assert!(c.listen);
}

#[test]
fn connect_turns_listen_off_bind_on() {
    assert!(!cfg(&["--connect=127.0.0.1:1"]).unwrap().listen);
    assert!(cfg(&["--connect=127.0.0.1:1", "--bind=127.0.0.1"]).unwrap().listen);
    assert!(cfg(&["--connect=127.0.0.1:1", "--listen=1"]).unwrap().listen);
    assert!(cfg(&[]).unwrap().listen);
}

#[test]
fn bad_values_are_errors() {
    assert!(cfg(&["--listen=2"]).is_err());
    assert!(cfg(&["--regtest", "--signet"]).is_err());
    assert!(cfg(&["--peertimeout=0"]).is_err());
    assert!(cfg(&["--connect=host:notaport"]).is_err());
    assert!(cfg(&["--uacomment=a/b"]).is_err());
    assert!(cfg(&["--debug=bogus"]).is_err());
    assert!(cfg(&["--bind=nope"]).is_err());
    assert!(cfg(&["--network=mars"]).is_err());
    assert!(cfg(&["--minimumchainwork=xyz"]).is_err());
    assert!(cfg(&["--maxtipage=0"]).is_err());
    assert!(cfg(&["--maxtipage=-5"]).is_err());
    assert!(cfg(&["--maxtipage=4294967296"]).is_err());
    assert!(cfg(&["--minimumchainwork=1".repeat(65).as_str()]).is_err());
}

#[test]
fn max_tip_age_is_seconds_with_cores_default() {
    assert_eq!(cfg(&[]).unwrap().max_tip_age, Duration::from_secs(86_400));
    assert_eq!(cfg(&["--maxtipage=600"]).unwrap().max_tip_age, Duration::from_secs(600));
    assert_eq!(cfg(&["--maxtipage=4294967295"]).unwrap().max_tip_age, Duration::from_secs(u64::from(u32::MAX)));
}

#[test]
fn minimum_chain_work_is_hex() {
    let c = cfg(&["--minimumchainwork=0x100"]).unwrap();
    let mut be = [0u8; 32];
    be[30] = 1;
    assert_eq!(c.minimum_chain_work, Some(bitcoin::pow::Work::from_be_bytes(be)));
    assert_eq!(
        cfg(&["--minimumchainwork=0"]).unwrap().minimum_chain_work,
        Some(bitcoin::pow::Work::from_be_bytes([0; 32]))
    );
}

#[test]
fn discover_follows_listen_and_externalip() {
    assert!(cfg(&[]).unwrap().discover);
    assert!(!cfg(&["--listen=0"]).unwrap().discover);
    assert!(!cfg(&["--connect=127.0.0.1:1"]).unwrap().discover, "--connect turns listening off");
    let c = cfg(&["--externalip=1.2.3.4", "--externalip=[2a00::1]:9"]).unwrap();
    assert!(!c.discover);
    assert_eq!(c.external_ip.len(), 2);
    assert_eq!(c.external_ip[1].port, Some(9));
    assert!(cfg(&["--externalip=1.2.3.4", "--discover"]).unwrap().discover);
    assert!(!cfg(&["--discover=0"]).unwrap().discover);
    assert!(cfg(&["--externalip=somehost"]).is_err());
    assert!(cfg(&["--test=loopback-netgroups"]).unwrap().loopback_netgroups);
    assert!(!cfg(&[]).unwrap().loopback_netgroups);
    assert!(cfg(&["--test=other"]).is_err());
}

/// Every numeric flag: both ends of its range accepted, one past either end refused with a
/// message naming the flag and the range.
#[test]
fn numeric_flags_have_core_ranges() {
    let cases: [(&str, &str, &str, &str, &str); 6] = [
        ("peertimeout", "1", "9223372036854775807", "0", "9223372036854775808"),
        ("bantime", "1", "9223372036854775807", "0", "9223372036854775808"),
        ("maxconnections", "0", "2147483647", "-1", "2147483648"),
        ("maxreceivebuffer", "0", "4294967", "-1", "4294968"),
        ("maxsendbuffer", "0", "4294967", "-1", "4294968"),
        ("rpcthreads", "1", "512", "0", "513"),
    ];
    for (flag, low, high, below, above) in cases {
        for ok in [low, high] {
            assert!(cfg(&[&format!("--{flag}={ok}")]).is_ok(), "--{flag}={ok} refused");
        }
        for bad in [below, above, "18446744073709551616", "x"] {
            let err = cfg(&[&format!("--{flag}={bad}")]).expect_err(&format!("--{flag}={bad} accepted"));
            assert!(err.contains(&format!("'--{flag} ")), "--{flag}={bad}: {err}");
            assert!(err.contains(&format!("from {low} to {high}")), "--{flag}={bad}: {err}");
        }
    }
    let c = cfg(&["--peertimeout=9223372036854775807", "--bantime=9223372036854775807"]).unwrap();
    assert_eq!(c.peer_timeout, Duration::from_secs(i64::MAX as u64));
    assert_eq!(c.ban_time, Duration::from_secs(i64::MAX as u64));
    let c = cfg(&["--maxconnections=2147483647", "--maxreceivebuffer=4294967", "--maxsendbuffer=0"]).unwrap();
    assert_eq!((c.max_connections, c.max_receive_buffer, c.max_send_buffer), (2_147_483_647, 4_294_967_000, 0));
    assert_eq!(cfg(&["--rpcthreads=512"]).unwrap().rpc.threads, 512);
}

#[test]
fn panic_test_switch() {
    assert_eq!(cfg(&["--test=panic-msghand"]).unwrap().test_panic, Some(TestPanic::MsgHandConnected));
    assert_eq!(cfg(&["--test=panic-net"]).unwrap().test_panic, Some(TestPanic::NetAccepted));
    assert_eq!(cfg(&[]).unwrap().test_panic, None);
}

/// `contrib/btcloop.conf` is exactly what the option definitions render: an option added
/// to `Cli` without regenerating the sample fails here (regenerate with
/// `BTCLOOP_WRITE_SAMPLE_CONF=1 cargo test --bin btcloopd sample_conf`).
#[test]
fn sample_conf_is_generated_from_the_options() {
    use clap::CommandFactory;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/btcloop.conf");
    let want = btcloop::daemon::conffile::sample(&Cli::command());
    if std::env::var_os("BTCLOOP_WRITE_SAMPLE_CONF").is_some() {
        std::fs::write(path, &want).unwrap();
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(have == want, "{path} is out of date; regenerate it (see this test's doc)");
}

/// Every option a file may set is in the sample as `#key=…`, every key there is one the
/// configuration file accepts, and the sample parses as it is and uncommented.
#[test]
fn sample_conf_lists_every_option_and_only_accepted_ones() {
    use clap::CommandFactory;
    let text = btcloop::daemon::conffile::sample(&Cli::command());
    let keys = btcloop::daemon::conffile::sample_keys(&Cli::command());
    assert!(keys.len() > 40, "{keys:?}");
    for k in &keys {
        assert!(text.lines().any(|l| l.starts_with(&format!("#{k}="))), "--{k} missing from the sample");
    }
    for hidden in ["test", "conf", "datadir", "help"] {
        assert!(!text.lines().any(|l| l.starts_with(&format!("#{hidden}="))), "{hidden} in the sample");
    }
    for name in ["daemon", "pid", "printtoconsole", "metricsbind"] {
        assert!(keys.iter().any(|k| k == name), "--{name} not listed");
    }
    let path = std::path::Path::new("btcloop.conf");
    let parsed = ConfFile::parse(&text, path, conf_key_known).unwrap();
    assert_eq!(parsed.settings, Vec::new(), "everything is commented out");
    let options: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with('#') && l.as_bytes().get(1).is_some_and(u8::is_ascii_lowercase))
        .collect();
    let uncommented: String = options.iter().filter_map(|l| l.strip_prefix('#')).map(|l| format!("{l}\n")).collect();
    let parsed = ConfFile::parse(&uncommented, path, conf_key_known).unwrap();
    assert_eq!(parsed.settings.len(), keys.len(), "{uncommented}");
}

#[test]
fn daemon_and_pid_options() {
    let c = cfg(&[]).unwrap();
    assert!(!c.daemon && c.log.print_to_console);
    assert_eq!(c.pid_file, PathBuf::from("btcloopd.pid"));
    // Core: no console logging by default when detached, unless asked for.
    let c = cfg(&["-daemon", "--pid=/run/x.pid"]).unwrap();
    assert!(c.daemon && !c.log.print_to_console);
    assert_eq!(c.pid_path(), PathBuf::from("/run/x.pid"));
    assert!(cfg(&["--daemon", "--printtoconsole"]).unwrap().log.print_to_console);
    assert!(!cfg(&["--daemon", "-nodaemon"]).unwrap().daemon);
    assert!(cfg(&["--daemon=2"]).is_err());
}

#[test]
fn limits_in_kilobytes() {
    let c = cfg(&["--maxreceivebuffer=10", "--maxsendbuffer=2", "--bind=127.0.0.1", "--port=1234"]).unwrap();
    assert_eq!((c.max_receive_buffer, c.max_send_buffer), (10_000, 2_000));
    assert_eq!(c.bind, vec!["127.0.0.1:1234".parse::<SocketAddr>().unwrap()]);
}

#[test]
fn proxy_options() {
    let c = cfg(&["--proxy=127.0.0.1"]).unwrap();
    let tor: SocketAddr = "127.0.0.1:9050".parse().unwrap();
    assert_eq!((c.proxy.proxy, c.proxy.onion, c.proxy.randomize), (Some(tor), Some(tor), true), "port 9050, onion too");
    let c = cfg(&["--proxy=[::1]:1080", "--onion=127.0.0.1:9150", "-noproxyrandomize"]).unwrap();
    assert_eq!(c.proxy.proxy, Some("[::1]:1080".parse().unwrap()));
    assert_eq!((c.proxy.onion, c.proxy.randomize), (Some("127.0.0.1:9150".parse().unwrap()), false));
    let c = cfg(&["--proxy=127.0.0.1:9050", "--onion=0"]).unwrap();
    assert_eq!(c.proxy.onion, None, "--onion=0: no onion proxy even with --proxy");
    assert_eq!(cfg(&[]).unwrap().proxy, ProxyConfig::default());
    let e = cfg(&["--proxy=tor.example:9050"]).unwrap_err();
    assert!(e.contains("Invalid proxy address 'tor.example:9050'"), "{e}");
}
