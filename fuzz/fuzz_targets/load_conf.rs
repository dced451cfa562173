//! Fuzzes parsing `btcloop.conf` (`ConfFile::parse`, what `ConfFile::read` does with the file's
//! text; a file that is not UTF-8 is an I/O error there, before parsing).
//!
//! Input: the file.
//!
//! Checks: no panic; every setting has a known key and a 1-based line number within the file,
//! a value without `#` or surrounding blanks; the settings, written back out as a file (one
//! `section.key=value` line each), parse to the same settings; the command-line arguments
//! built from them are `--key=value` with a known key.

#![no_main]

use std::path::Path;

use btcloop::base::chainparams::Network;
use btcloop::daemon::conffile::{ConfError, ConfFile};
use libfuzzer_sys::fuzz_target;

/// btcloopd's long options (those of `Cli` in `src/main.rs`; the daemon asks clap).
const KNOWN: [&str; 40] = [
    "network",
    "testnet",
    "testnet4",
    "signet",
    "regtest",
    "datadir",
    "conf",
    "connect",
    "addnode",
    "listen",
    "bind",
    "port",
    "maxconnections",
    "peertimeout",
    "maxreceivebuffer",
    "maxsendbuffer",
    "minimumchainwork",
    "uacomment",
    "debug",
    "server",
    "rpcbind",
    "rpcport",
    "rpcallowip",
    "rpcuser",
    "rpcpassword",
    "rpccookiefile",
    "rpcthreads",
    "metricsbind",
    "whitelist",
    "bantime",
    "capturemessages",
    "debugpeer",
    "logips",
    "printtoconsole",
    "log-format",
    "seednode",
    "dnsseed",
    "forcednsseed",
    "fixedseeds",
    "onlynet",
];

fn known(k: &str) -> bool {
    KNOWN.contains(&k)
}

/// The one call into the parser.
fn parse(text: &str) -> Result<ConfFile, ConfError> {
    ConfFile::parse(text, Path::new("btcloop.conf"), known)
}

fn section_name(n: Network) -> &'static str {
    match n {
        Network::Main => "main",
        Network::Test => "test",
        Network::Testnet4 => "testnet4",
        Network::Signet => "signet",
        Network::Regtest => "regtest",
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(conf) = parse(text) else { return };
    let lines = text.lines().count();
    let mut rewritten = String::new();
    for s in &conf.settings {
        assert!(known(&s.key), "unknown key {:?} accepted", s.key);
        assert!((1..=lines).contains(&s.line), "line {} of {lines}", s.line);
        assert!(!s.value.contains('#'), "value {:?} holds a comment", s.value);
        assert_eq!(s.value.trim_matches([' ', '\t']), s.value, "value not trimmed");
        match s.section {
            Some(n) => rewritten.push_str(&format!("{}.{}={}\n", section_name(n), s.key, s.value)),
            None => rewritten.push_str(&format!("{}={}\n", s.key, s.value)),
        }
    }
    let again = parse(&rewritten).unwrap_or_else(|e| panic!("rewritten file does not parse: {e}\n{rewritten}"));
    let strip =
        |c: &ConfFile| c.settings.iter().map(|s| (s.section, s.key.clone(), s.value.clone())).collect::<Vec<_>>();
    assert_eq!(strip(&again), strip(&conf), "settings changed when written back out");
    for network in [Network::Main, Network::Test, Network::Testnet4, Network::Signet, Network::Regtest] {
        for arg in conf.network_args().into_iter().chain(conf.args_for(network)) {
            let body = arg.strip_prefix("--").expect("arguments start with --");
            let (key, _) = body.split_once('=').expect("arguments are --key=value");
            assert!(KNOWN.contains(&key), "argument {arg} has an unknown key");
        }
    }
});
