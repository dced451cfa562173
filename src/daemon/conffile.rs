//! `btcloop.conf`: Bitcoin Core's configuration-file syntax (`key=value`, `#` comments,
//! `[main]`/`[test]`/`[testnet4]`/`[signet]`/`[regtest]` sections, `section.key=value`,
//! `nokey=1` negation) read into the command-line arguments it stands for. Parsing only; the
//! caller decides precedence (command line wins) and which keys exist. Also the sample file
//! (`contrib/btcloop.conf`), rendered from btcloopd's option definitions ([`sample`]).

use std::path::{Path, PathBuf};

use crate::base::chainparams::Network;

/// The configuration file's name in the data directory.
pub const CONF_FILE: &str = "btcloop.conf";
/// Options that, in the default section, apply to mainnet only (Core's `NETWORK_ONLY`).
pub const NETWORK_ONLY: [&str; 6] = ["addnode", "bind", "connect", "port", "rpcbind", "rpcport"];
/// Options that select the network.
pub const NETWORK_KEYS: [&str; 6] = ["network", "chain", "testnet", "testnet4", "signet", "regtest"];

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is neither a section header nor `key=value`.
    #[error("{path}: parse error on line {line}: {text}{hint}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The offending text.
        text: String,
        /// Advice, if any.
        hint: String,
    },
    /// A key is not an option btcloopd knows, or not one allowed in a file.
    #[error("{path}: line {line}: invalid configuration value {key}{hint}")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The key as written.
        key: String,
        /// Advice, if any.
        hint: String,
    },
    /// A section is not a network name.
    #[error("{path}: line {line}: section [{section}] is not recognized (use main, test, testnet4, signet or regtest)")]
    UnknownSection {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The section name.
        section: String,
    },
}

/// One `key=value` setting of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The network section it is in (`None`: the default section).
    pub section: Option<Network>,
    /// The option name, negation resolved (`nolisten=1` is `listen` = `0`).
    pub key: String,
    /// The value.
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

/// A parsed configuration file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its settings in file order.
    pub settings: Vec<Setting>,
}

/// Core's section name for a network.
fn section_network(name: &str) -> Option<Network> {
    match name {
        "main" => Some(Network::Main),
        "test" => Some(Network::Test),
        "testnet4" => Some(Network::Testnet4),
        "signet" => Some(Network::Signet),
        "regtest" => Some(Network::Regtest),
        _ => None,
    }
}

/// Core's negation: `nofoo=1` means `foo=0`, `nofoo=0` means `foo=1`.
fn resolve_negation(key: &str, value: &str) -> (String, String) {
    match key.strip_prefix("no") {
        Some(rest) if !rest.is_empty() => {
            let truthy = !matches!(value, "0" | "false" | "");
            (rest.to_string(), if truthy { "0" } else { "1" }.to_string())
        }
        _ => (key.to_string(), value.to_string()),
    }
}

impl ConfFile {
    /// Parses `text` (read from `path`), checking every key with `known` (a key with its
    /// negation resolved, e.g. `listen`).
    pub fn parse(text: &str, path: &Path, known: impl Fn(&str) -> bool) -> Result<ConfFile, ConfError> {
        let path = path.to_path_buf();
        let mut section: Option<Network> = None;
        let mut settings = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or("").trim_matches([' ', '\t', '\r', '\n']);
            if content.is_empty() {
                continue;
            }
            if let Some(name) = content.strip_prefix('[').and_then(|c| c.strip_suffix(']')) {
                section = Some(section_network(name).ok_or_else(|| ConfError::UnknownSection {
                    path: path.clone(),
                    line,
                    section: name.to_string(),
                })?);
                continue;
            }
            if content.starts_with('-') {
                return Err(ConfError::Parse {
                    path,
                    line,
                    text: content.to_string(),
                    hint: ", options in configuration file must be specified without leading -".into(),
                });
            }
            let Some((k, v)) = content.split_once('=') else {
                let hint = if content.starts_with("no") && content.len() >= 2 {
                    format!(", if you intended to specify a negated option, use {content}=1 instead")
                } else {
                    String::new()
                };
                return Err(ConfError::Parse { path, line, text: content.to_string(), hint });
            };
            let (mut k, v) = (k.trim_matches([' ', '\t']), v.trim_matches([' ', '\t']));
            let mut entry_section = section;
            // `regtest.port=1` in the default section targets that network's section.
            if let Some((sec, rest)) = k.split_once('.') {
                entry_section = Some(section_network(sec).ok_or_else(|| ConfError::UnknownSection {
                    path: path.clone(),
                    line,
                    section: sec.to_string(),
                })?);
                k = rest;
            }
            let (key, value) = resolve_negation(k, v);
            let hint = match key.as_str() {
                "conf" => Some(": conf cannot be set in the configuration file"),
                "includeconf" => Some(": includeconf is not supported"),
                "datadir" => Some(": datadir cannot be set in the configuration file"),
                _ => None,
            };
            if hint.is_some() || !known(&key) {
                return Err(ConfError::UnknownKey {
                    path,
                    line,
                    key: k.to_string(),
                    hint: hint.unwrap_or("").to_string(),
                });
            }
            settings.push(Setting { section: entry_section, key, value, line });
        }
        Ok(ConfFile { path, settings })
    }

    /// Reads and parses `path`. A missing file is `Ok(None)` unless `required`.
    pub fn read(path: &Path, required: bool, known: impl Fn(&str) -> bool) -> Result<Option<ConfFile>, ConfError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path, known).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
            Err(source) => Err(ConfError::Io { path: path.to_path_buf(), source }),
        }
    }

    /// The network-selecting settings of the default section, as arguments.
    pub fn network_args(&self) -> Vec<String> {
        self.settings
            .iter()
            .filter(|s| s.section.is_none() && NETWORK_KEYS.contains(&s.key.as_str()))
            .map(|s| format!("--{}={}", if s.key == "chain" { "network" } else { &s.key }, s.value))
            .collect()
    }

    /// The settings that apply on `network`, as arguments: the network's section, then the
    /// default section (without the network selectors, and without Core's network-only
    /// options unless the network is mainnet).
    pub fn args_for(&self, network: Network) -> Vec<String> {
        let in_section = self.settings.iter().filter(|s| s.section == Some(network));
        let default = self.settings.iter().filter(|s| {
            s.section.is_none()
                && !NETWORK_KEYS.contains(&s.key.as_str())
                && (network == Network::Main || !NETWORK_ONLY.contains(&s.key.as_str()))
        });
        in_section.chain(default).map(|s| format!("--{}={}", s.key, s.value)).collect()
    }

    /// Default-section network-only settings ignored on `network` (Core warns about them).
    pub fn ignored_on(&self, network: Network) -> Vec<&Setting> {
        if network == Network::Main {
            return Vec::new();
        }
        self.settings.iter().filter(|s| s.section.is_none() && NETWORK_ONLY.contains(&s.key.as_str())).collect()
    }
}

/// Options the sample leaves out: they cannot be set in a file (or print and exit).
const NOT_IN_FILE: [&str; 4] = ["conf", "datadir", "help", "version"];
/// Width of the sample's comment lines.
const SAMPLE_WIDTH: usize = 92;

/// `text` as `# ` comment lines of at most [`SAMPLE_WIDTH`] columns (longer words stay whole).
fn comment_lines(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() > 1 && line.len() + 1 + word.len() > SAMPLE_WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    if line.len() > 1 {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The sample configuration file (Core's `share/examples/bitcoin.conf`, made by
/// `gen-bitcoin-conf.sh` from `bitcoind --help`): every option of `cmd` a file may set, each
/// commented out after its help text; a `0|1` option shows `=1`, one with a default shows the
/// default, others their value's name.
pub fn sample(cmd: &clap::Command) -> String {
    let mut out = String::from(
        "##\n\
         ## btcloop.conf: the configuration file of btcloopd.\n\
         ## Generated from btcloopd's options (src/main.rs); to regenerate it, run\n\
         ##   BTCLOOP_WRITE_SAMPLE_CONF=1 cargo test --bin btcloopd sample_conf\n\
         ##\n\
         ## Lines beginning with # are comments. Every option a configuration file may set is\n\
         ## below, commented out, after its help text. To use it, copy this file to the data\n\
         ## directory (or name it with --conf=FILE), uncomment the options you want and set them.\n\
         ## Bitcoin Core's syntax: key=value (no leading -), nokey=1 for key=0, repeatable options\n\
         ## on several lines. --conf and --datadir can only be given on the command line, which\n\
         ## wins over this file.\n\
         ##\n\n\
         ### Options\n\n",
    );
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let Some(name) = arg.get_long() else { continue };
        if NOT_IN_FILE.contains(&name) {
            continue;
        }
        let mut help = arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
        if !help.is_empty() && !help.ends_with('.') {
            help.push('.');
        }
        let possible: Vec<String> = arg.get_possible_values().iter().map(|v| v.get_name().to_string()).collect();
        if !possible.is_empty() {
            help.push_str(&format!(" One of: {}.", possible.join(", ")));
        }
        out.push_str(&comment_lines(&help));
        let value_name =
            arg.get_value_names().and_then(|v| v.first()).map_or_else(|| "VALUE".to_string(), |v| v.to_string());
        let value = match arg.get_default_values().first() {
            _ if value_name == "0|1" => "1".to_string(),
            Some(default) => default.to_string_lossy().into_owned(),
            None => format!("<{value_name}>"),
        };
        out.push_str(&format!("#{name}={value}\n\n"));
    }
    out.push_str(
        "# [Sections]\n\
         # Most options apply to every network. To confine an option to one network, put it under\n\
         # that network's section below (or write e.g. regtest.port=18444).\n\
         #\n\
         # Note: outside a section, the options addnode, bind, connect, port, rpcbind and rpcport\n\
         # apply to mainnet only (a warning says so on other networks).\n\n\
         # Options for mainnet\n[main]\n\n\
         # Options for testnet3\n[test]\n\n\
         # Options for testnet4\n[testnet4]\n\n\
         # Options for signet\n[signet]\n\n\
         # Options for regtest\n[regtest]\n",
    );
    out
}

/// The options [`sample`] lists for `cmd`: every long option a file may set.
pub fn sample_keys(cmd: &clap::Command) -> Vec<String> {
    cmd.get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long())
        .filter(|n| !NOT_IN_FILE.contains(n))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(k: &str) -> bool {
        [
            "listen",
            "port",
            "connect",
            "debug",
            "regtest",
            "testnet",
            "maxconnections",
            "network",
            "chain",
            "logips",
            "rpcport",
            "rpcbind",
            "seednode",
        ]
        .contains(&k)
    }

    fn parse(text: &str) -> Result<ConfFile, ConfError> {
        ConfFile::parse(text, Path::new("/d/btcloop.conf"), known)
    }

    #[test]
    fn core_syntax_sections_comments_and_negation() {
        let c = parse(
            "# comment\n  listen = 1  # trailing\nnologips=1\nregtest=1\nport=1\n\n[regtest]\nport=18555\nconnect=127.0.0.1:1\n[main]\nmaxconnections=9\nregtest.debug=net\n",
        )
        .unwrap();
        assert_eq!(c.network_args(), vec!["--regtest=1"]);
        assert_eq!(
            c.args_for(Network::Regtest),
            vec!["--port=18555", "--connect=127.0.0.1:1", "--debug=net", "--listen=1", "--logips=0"]
        );
        // The default-section port applies to mainnet only.
        assert_eq!(c.ignored_on(Network::Regtest).len(), 1);
        assert_eq!(c.args_for(Network::Main), vec!["--maxconnections=9", "--listen=1", "--logips=0", "--port=1"]);
        // So do rpcport and rpcbind (Core's NETWORK_ONLY list); seednode does not.
        let c = parse("rpcport=5\nrpcbind=127.0.0.1\nseednode=127.0.0.1:1\n").unwrap();
        assert_eq!(c.args_for(Network::Regtest), vec!["--seednode=127.0.0.1:1"]);
        assert_eq!(c.ignored_on(Network::Regtest).len(), 2);
        assert_eq!(c.args_for(Network::Main).len(), 3);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("listen=1\n-port=2\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("without leading -"), "{e}");
        let e = parse("nolisten\n").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("use nolisten=1 instead"), "{e}");
        let e = parse("listen=1\nbogus=3\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("invalid configuration value bogus"), "{e}");
        let e = parse("[moon]\n").unwrap_err().to_string();
        assert!(e.contains("[moon]"), "{e}");
        let e = parse("conf=/x\n").unwrap_err().to_string();
        assert!(e.contains("conf cannot be set"), "{e}");
        assert!(e.contains("/d/btcloop.conf"), "{e}");
    }

    #[test]
    fn missing_file_is_fine_unless_required() {
        let p = Path::new("/nonexistent-dir-btcloop/btcloop.conf");
        assert!(ConfFile::read(p, false, known).unwrap().is_none());
        assert!(matches!(ConfFile::read(p, true, known), Err(ConfError::Io { .. })));
    }
}
