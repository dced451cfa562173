//! bitcoin-cli's command line: `-name` / `--name` / `-name=value` options before the command
//! (Core's `ArgsManager::ParseParameters`, the last value of an option wins, `-noname` negates a
//! boolean), then the method and its arguments; and the settings derived from it (network,
//! host and port, cookie path, timeouts) as `bitcoin-cli.cpp` derives them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use btcloop::base::chainparams::Network;

/// Core's `DEFAULT_RPCCONNECT`.
pub const DEFAULT_RPCCONNECT: &str = "127.0.0.1";
/// Core's `DEFAULT_HTTP_CLIENT_TIMEOUT`, seconds.
pub const DEFAULT_HTTP_CLIENT_TIMEOUT: i64 = 900;
/// Longest timeout kept as given (100 years); longer ones are clamped so that deadlines stay
/// representable.
const MAX_TIMEOUT_SECS: u64 = 100 * 365 * 24 * 60 * 60;
/// Core's `DEFAULT_RPC_REQ_ID`.
pub const DEFAULT_RPC_REQ_ID: &str = "1";

/// Options that take no value (read with Core's `GetBoolArg`).
const BOOL_OPTIONS: &[&str] = &[
    "addrinfo", "getinfo", "named", "netinfo", "regtest", "rpcwait", "signet", "stdin", "testnet", "testnet4",
    "version",
];
/// Options that take a value.
const VALUE_OPTIONS: &[&str] = &[
    "chain",
    "color",
    "datadir",
    "rpcclienttimeout",
    "rpcconnect",
    "rpccookiefile",
    "rpcid",
    "rpcpassword",
    "rpcport",
    "rpcuser",
    "rpcwaittimeout",
];
/// The options that each select a command of their own (Core's `CLI_COMMANDS`), sorted.
const CLI_COMMANDS: [&str; 3] = ["addrinfo", "getinfo", "netinfo"];

/// The parsed command line: options (last value last) and the positional arguments.
#[derive(Debug, Default)]
pub struct CommandLine {
    /// `(name, value)` in order; a bare `-name` has the empty value, `-noname` is `("name", "0")`.
    options: Vec<(String, String)>,
    /// The method and its arguments (empty with `-getinfo` / `-netinfo` / `-addrinfo`).
    pub args: Vec<String>,
}

/// What the command line asks for before any connection is made.
#[derive(Debug)]
pub enum Parsed {
    /// `-?`, `-h`, `-help`.
    Help,
    /// `-version`.
    Version,
    /// No arguments at all.
    TooFew,
    /// Run a command.
    Run(CommandLine),
}

/// Parses `argv` (program name first) as Core's `ParseParameters` and the "skip switches" loop
/// of `CommandLineRPC`. The error is the text after `Error parsing command line arguments: `.
pub fn parse(argv: &[String]) -> Result<Parsed, String> {
    let rest = argv.get(1..).unwrap_or_default();
    if rest.is_empty() {
        return Ok(Parsed::TooFew);
    }
    let mut cl = CommandLine::default();
    let mut help = false;
    for arg in rest {
        if arg == "-" || !arg.starts_with('-') {
            break;
        }
        let (key, value) = match arg.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (arg.as_str(), None),
        };
        let name = key.strip_prefix("--").unwrap_or(&key[1..]);
        if matches!(name, "?" | "h" | "help") {
            help = true;
            continue;
        }
        if VALUE_OPTIONS.contains(&name) || BOOL_OPTIONS.contains(&name) {
            cl.options.push((name.to_string(), value.unwrap_or("").to_string()));
        } else if let Some(base) = name.strip_prefix("no").filter(|b| BOOL_OPTIONS.contains(b)) {
            // `-nofoo` is `-foo=0`; `-nofoo=0` is `-foo=1`, as Core reads it.
            let on = value.is_some_and(|v| !interpret_bool(v));
            cl.options.push((base.to_string(), if on { "1" } else { "0" }.to_string()));
        } else if let Some(base) = name.strip_prefix("no").filter(|b| VALUE_OPTIONS.contains(b)) {
            return Err(format!("Negating of -{base} is not supported"));
        } else {
            return Err(format!("Invalid parameter {arg}"));
        }
    }
    if help {
        return Ok(Parsed::Help);
    }
    if cl.get_bool("version") {
        return Ok(Parsed::Version);
    }
    cl.args = rest.iter().skip_while(|a| a.starts_with('-')).cloned().collect();
    Ok(Parsed::Run(cl))
}

/// Core's `InterpretBool`: empty is true, else the leading integer is non-zero.
fn interpret_bool(v: &str) -> bool {
    v.is_empty() || atoi(v) != 0
}

/// Core's `LocaleIndependentAtoi<int64_t>`: surrounding white space and one leading `+` are
/// skipped, the leading integer is read, out-of-range values saturate, garbage is 0.
pub fn atoi(s: &str) -> i64 {
    let t = s.trim_matches(|c: char| " \t\n\r\x0b\x0c".contains(c));
    let t = match t.strip_prefix('+') {
        Some(r) if r.starts_with('-') => return 0,
        Some(r) => r,
        None => t,
    };
    let (neg, digits) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t),
    };
    let len = digits.bytes().take_while(u8::is_ascii_digit).count();
    if len == 0 {
        return 0;
    }
    let mut v: i64 = 0;
    for b in digits[..len].bytes() {
        let d = i64::from(b - b'0');
        let next = v.checked_mul(10).and_then(|x| if neg { x.checked_sub(d) } else { x.checked_add(d) });
        match next {
            Some(n) => v = n,
            None => return if neg { i64::MIN } else { i64::MAX },
        }
    }
    v
}

/// Core's `ToIntegral<uint16_t>`: digits only (no sign, no spaces), in range.
fn parse_u16(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Core's `SplitHostPort`: `(host, port)` with port 0 when none is given; `None` for an invalid
/// port (not a number, or 0). Brackets around an IPv6 host are removed.
pub fn split_host_port(input: &str) -> Option<(String, u16)> {
    let mut host = input;
    let mut port = 0;
    let mut valid = true;
    if let Some(colon) = input.rfind(':') {
        let bracketed = input.starts_with('[') && colon > 0 && input.as_bytes()[colon - 1] == b']';
        let multi_colon = colon != 0 && input[..colon].contains(':');
        if colon == 0 || bracketed || !multi_colon {
            valid = false;
            if let Some(n) = parse_u16(&input[colon + 1..]) {
                host = &input[..colon];
                port = n;
                valid = n != 0;
            }
        }
    }
    if host.len() >= 2 && host.starts_with('[') && host.ends_with(']') {
        host = &host[1..host.len() - 1];
    }
    valid.then(|| (host.to_string(), port))
}

/// Which command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A method and its arguments.
    Default,
    Getinfo,
    Netinfo,
    Addrinfo,
}

impl CommandLine {
    /// The last value of `-name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.options.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// `-name` read as Core's `GetBoolArg(name, false)`.
    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name).is_some_and(interpret_bool)
    }

    /// `-name` read as Core's `GetIntArg`.
    pub fn get_int(&self, name: &str, default: i64) -> i64 {
        self.get(name).map_or(default, atoi)
    }

    /// The network, as Core's `GetChainArg` (at most one selector). The error is the text after
    /// `Error: `.
    pub fn network(&self) -> Result<Network, String> {
        let flags = [
            (self.get_bool("regtest"), Network::Regtest),
            (self.get_bool("signet"), Network::Signet),
            (self.get_bool("testnet"), Network::Test),
            (self.get_bool("testnet4"), Network::Testnet4),
        ];
        let chain = self.get("chain");
        if usize::from(chain.is_some()) + flags.iter().filter(|(on, _)| *on).count() > 1 {
            return Err(
                "Invalid combination of -regtest, -signet, -testnet, -testnet4 and -chain. Can use at most one.".into(),
            );
        }
        if let Some(name) = chain {
            return name.parse().map_err(|_| format!("Unknown chain {name}."));
        }
        Ok(flags.iter().find(|(on, _)| *on).map_or(Network::Main, |(_, n)| *n))
    }

    /// The command, checking that at most one of `-addrinfo`, `-getinfo`, `-netinfo` is given
    /// (Core's `CheckMultipleCLIArgs`; error text after `error: `).
    pub fn mode(&self) -> Result<Mode, String> {
        let found: Vec<String> =
            CLI_COMMANDS.iter().filter(|c| self.get(c).is_some()).map(|c| format!("-{c}")).collect();
        if found.len() > 1 {
            return Err(format!("Only one of {} may be specified.", found.join(", ")));
        }
        Ok(if self.get_bool("getinfo") {
            Mode::Getinfo
        } else if self.get_bool("netinfo") {
            Mode::Netinfo
        } else if self.get_bool("addrinfo") {
            Mode::Addrinfo
        } else {
            Mode::Default
        })
    }

    /// `-datadir` if given and not empty.
    pub fn datadir_arg(&self) -> Option<&str> {
        self.get("datadir").filter(|d| !d.is_empty())
    }

    /// The data directory.
    pub fn datadir(&self) -> PathBuf {
        self.datadir_arg().map_or_else(btcloop::daemon::config::default_datadir, PathBuf::from)
    }

    /// The cookie file: `-rpccookiefile` (relative to the network's directory) or `.cookie`
    /// there.
    pub fn cookie_path(&self, network: Network) -> PathBuf {
        let datadir = self.datadir();
        let net_dir = match network.datadir_name() {
            Some(sub) => datadir.join(sub),
            None => datadir,
        };
        let file = self.get("rpccookiefile").filter(|f| !f.is_empty()).unwrap_or(btcloop::daemon::config::COOKIE_FILE);
        if Path::new(file).is_absolute() { PathBuf::from(file) } else { net_dir.join(file) }
    }

    /// Host and port as `CallRPC` picks them: `-rpcport`, else a port in `-rpcconnect`, else
    /// the network's default. Also whether both named a port (Core warns). Error text after
    /// `error: `.
    pub fn host_port(&self, network: Network) -> Result<(String, u16, bool), String> {
        let connect = self.get("rpcconnect").unwrap_or(DEFAULT_RPCCONNECT);
        let (host, connect_port) =
            split_host_port(connect).ok_or_else(|| format!("Invalid port provided in -rpcconnect: {connect}"))?;
        match self.get("rpcport") {
            Some(p) => {
                let port = parse_u16(p)
                    .filter(|&n| n != 0)
                    .ok_or_else(|| format!("Invalid port provided in -rpcport: {p}"))?;
                Ok((host, port, connect_port != 0))
            }
            None if connect_port != 0 => Ok((host, connect_port, false)),
            None => Ok((host, network.default_rpc_port(), false)),
        }
    }

    /// `-rpcclienttimeout` (default 900 s); `None` (no timeout) for 0 or less.
    pub fn client_timeout(&self) -> Option<Duration> {
        let secs = self.get_int("rpcclienttimeout", DEFAULT_HTTP_CLIENT_TIMEOUT);
        (secs > 0).then(|| Duration::from_secs(secs.unsigned_abs().min(MAX_TIMEOUT_SECS)))
    }

    /// `-rpcwaittimeout`; `None` (wait forever) for 0 or less.
    pub fn wait_timeout(&self) -> Option<Duration> {
        let secs = self.get_int("rpcwaittimeout", 0);
        (secs > 0).then(|| Duration::from_secs(secs.unsigned_abs().min(MAX_TIMEOUT_SECS)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> CommandLine {
        let argv: Vec<String> = std::iter::once("btcloop-cli").chain(args.iter().copied()).map(String::from).collect();
        match parse(&argv) {
            Ok(Parsed::Run(cl)) => cl,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn options_then_method_and_args() {
        let cl = run(&["-regtest", "--rpcuser=u", "-rpcpassword=p=q", "-named", "getblockhash", "-5", "-x"]);
        assert_eq!(cl.args, ["getblockhash", "-5", "-x"]);
        assert_eq!(cl.get("rpcuser"), Some("u"));
        assert_eq!(cl.get("rpcpassword"), Some("p=q"), "only the first '=' splits");
        assert!(cl.get_bool("named"));
        assert_eq!(cl.network().unwrap(), Network::Regtest);
        let cl = run(&["-rpcport=1", "-rpcport=2", "-norpcwait", "-rpcwait=0", "-stdin=1", "getblockcount"]);
        assert_eq!(cl.get("rpcport"), Some("2"), "last wins");
        assert!(!cl.get_bool("rpcwait"));
        assert!(cl.get_bool("stdin"));
        assert!(run(&["-nonamed=0", "x"]).get_bool("named"));
        assert_eq!(run(&["-netinfo", "4", "o"]).args, ["4", "o"]);
        assert_eq!(run(&["", "a"]).args, ["", "a"]);
    }

    #[test]
    fn help_version_and_errors() {
        let argv = |a: &[&str]| -> Vec<String> { ["btcloop-cli"].iter().chain(a).map(|s| s.to_string()).collect() };
        assert!(matches!(parse(&argv(&[])), Ok(Parsed::TooFew)));
        assert!(matches!(parse(&argv(&["-regtest", "-h"])), Ok(Parsed::Help)));
        assert!(parse(&argv(&["--help", "-bogus"])).is_err(), "invalid options are reported first");
        assert!(matches!(parse(&argv(&["-?"])), Ok(Parsed::Help)));
        assert!(matches!(parse(&argv(&["-version"])), Ok(Parsed::Version)));
        assert_eq!(parse(&argv(&["-bogus=1", "x"])).unwrap_err(), "Invalid parameter -bogus=1");
        assert!(parse(&argv(&["-nodatadir", "x"])).is_err());
        // An unknown option after the method is an argument, not an option.
        assert_eq!(run(&["help", "-bogus"]).args, ["help", "-bogus"]);
        // A lone '-' ends option parsing; the dash arguments after it are skipped like Core.
        let cl = run(&["-", "-regtest", "getblockcount"]);
        assert_eq!(cl.args, ["getblockcount"]);
        assert_eq!(cl.network().unwrap(), Network::Main);
    }

    #[test]
    fn network_selection() {
        assert_eq!(run(&["x"]).network().unwrap(), Network::Main);
        assert_eq!(run(&["-testnet", "x"]).network().unwrap(), Network::Test);
        assert_eq!(run(&["-testnet4", "x"]).network().unwrap(), Network::Testnet4);
        assert_eq!(run(&["-signet", "x"]).network().unwrap(), Network::Signet);
        assert_eq!(run(&["-chain=regtest", "x"]).network().unwrap(), Network::Regtest);
        assert_eq!(run(&["-regtest=0", "-signet", "x"]).network().unwrap(), Network::Signet);
        assert!(run(&["-regtest", "-chain=main", "x"]).network().unwrap_err().starts_with("Invalid combination"));
        assert_eq!(run(&["-chain=foo", "x"]).network().unwrap_err(), "Unknown chain foo.");
    }

    #[test]
    fn modes() {
        assert_eq!(run(&["x"]).mode().unwrap(), Mode::Default);
        assert_eq!(run(&["-netinfo"]).mode().unwrap(), Mode::Netinfo);
        assert_eq!(run(&["-getinfo"]).mode().unwrap(), Mode::Getinfo);
        assert_eq!(run(&["-addrinfo"]).mode().unwrap(), Mode::Addrinfo);
        assert_eq!(run(&["-netinfo=0", "x"]).mode().unwrap(), Mode::Default);
        assert_eq!(
            run(&["-netinfo", "-getinfo"]).mode().unwrap_err(),
            "Only one of -getinfo, -netinfo may be specified."
        );
    }

    #[test]
    fn host_and_port_as_core() {
        let hp = |a: &[&str]| run(&[a, &["x"]].concat()).host_port(Network::Regtest);
        assert_eq!(hp(&[]).unwrap(), ("127.0.0.1".into(), Network::Regtest.default_rpc_port(), false));
        assert_eq!(hp(&["-rpcconnect=127.0.0.1:9000"]).unwrap(), ("127.0.0.1".into(), 9000, false));
        assert_eq!(hp(&["-rpcconnect=[::1]:9000"]).unwrap(), ("::1".into(), 9000, false));
        assert_eq!(hp(&["-rpcconnect=::1"]).unwrap().0, "::1");
        assert_eq!(hp(&["-rpcconnect=[::1]"]).unwrap().0, "::1");
        assert_eq!(hp(&["-rpcconnect=localhost:1", "-rpcport=2"]).unwrap(), ("localhost".into(), 2, true));
        assert_eq!(hp(&["-rpcport=7"]).unwrap(), ("127.0.0.1".into(), 7, false));
        assert_eq!(hp(&["-rpcconnect=h:0"]).unwrap_err(), "Invalid port provided in -rpcconnect: h:0");
        assert_eq!(hp(&["-rpcconnect=h:x"]).unwrap_err(), "Invalid port provided in -rpcconnect: h:x");
        assert_eq!(hp(&["-rpcport=70000"]).unwrap_err(), "Invalid port provided in -rpcport: 70000");
        assert_eq!(hp(&["-rpcport=+5"]).unwrap_err(), "Invalid port provided in -rpcport: +5");
    }

    #[test]
    fn paths_and_timeouts() {
        let cl = run(&["-datadir=/d", "x"]);
        assert_eq!(cl.cookie_path(Network::Main), PathBuf::from("/d/.cookie"));
        assert_eq!(cl.cookie_path(Network::Test), PathBuf::from("/d/testnet3/.cookie"));
        let cl = run(&["-datadir=/d", "-rpccookiefile=c/k", "x"]);
        assert_eq!(cl.cookie_path(Network::Regtest), PathBuf::from("/d/regtest/c/k"));
        let cl = run(&["-datadir=/d", "-rpccookiefile=/abs", "x"]);
        assert_eq!(cl.cookie_path(Network::Regtest), PathBuf::from("/abs"));
        assert_eq!(run(&["x"]).client_timeout(), Some(Duration::from_secs(900)));
        assert_eq!(run(&["-rpcclienttimeout=0", "x"]).client_timeout(), None);
        assert_eq!(run(&["-rpcclienttimeout=5s", "x"]).client_timeout(), Some(Duration::from_secs(5)));
        assert_eq!(run(&["x"]).wait_timeout(), None);
        assert_eq!(run(&["-rpcwaittimeout=3", "x"]).wait_timeout(), Some(Duration::from_secs(3)));
        let huge = run(&["-rpcclienttimeout=99999999999999999999", "x"]).client_timeout();
        assert_eq!(huge, Some(Duration::from_secs(MAX_TIMEOUT_SECS)));
    }

    #[test]
    fn atoi_as_core() {
        for (s, v) in [("12", 12), (" 7x", 7), ("+3", 3), ("+-3", 0), ("-4", -4), ("abc", 0), ("", 0)] {
            assert_eq!(atoi(s), v, "{s:?}");
        }
        assert_eq!(atoi("99999999999999999999"), i64::MAX);
        assert_eq!(atoi("-99999999999999999999"), i64::MIN);
    }
}
