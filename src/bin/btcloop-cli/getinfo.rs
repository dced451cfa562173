//! `-getinfo` and `-addrinfo`: Core's `GetinfoRequestHandler` / `ParseGetInfoResult` and
//! `AddrinfoRequestHandler`. `-getinfo` batches `getnetworkinfo`, `getblockchaininfo`,
//! `getwalletinfo` and `getbalances` (the wallet calls may fail) and prints a summary;
//! `-addrinfo` turns `getaddrmaninfo` into address counts per network.

use crate::convert::{reply_with, request};
use crate::json::Json;

const ID_NETWORKINFO: usize = 0;
const ID_BLOCKCHAININFO: usize = 1;
const ID_WALLETINFO: usize = 2;
const ID_BALANCES: usize = 3;
/// Core's `RPC_METHOD_NOT_FOUND`.
const RPC_METHOD_NOT_FOUND: i64 = -32601;

/// The `-getinfo` batch.
pub fn getinfo_requests() -> Vec<Json> {
    ["getnetworkinfo", "getblockchaininfo", "getwalletinfo", "getbalances"]
        .iter()
        .enumerate()
        .map(|(i, m)| request(m, Json::Null, Json::int(i as i64)))
        .collect()
}

/// The batch replies made into one reply: an error of `getnetworkinfo` or `getblockchaininfo`
/// as is, else `result` is the summary object.
pub fn getinfo_reply(batch: &[Json]) -> Json {
    let at = |i: usize| batch.get(i).unwrap_or(&Json::Null);
    for id in [ID_NETWORKINFO, ID_BLOCKCHAININFO] {
        if !at(id).get("error").is_null() {
            return at(id).clone();
        }
    }
    let net = at(ID_NETWORKINFO).get("result");
    let chain = at(ID_BLOCKCHAININFO).get("result");
    let mut r = Json::Object(Vec::new());
    r.push_kv("version", net.get("version").clone());
    r.push_kv("blocks", chain.get("blocks").clone());
    r.push_kv("headers", chain.get("headers").clone());
    r.push_kv("verificationprogress", chain.get("verificationprogress").clone());
    r.push_kv("timeoffset", net.get("timeoffset").clone());
    let connections = Json::Object(vec![
        ("in".into(), net.get("connections_in").clone()),
        ("out".into(), net.get("connections_out").clone()),
        ("total".into(), net.get("connections").clone()),
    ]);
    r.push_kv("connections", connections);
    r.push_kv("networks", net.get("networks").clone());
    r.push_kv("difficulty", chain.get("difficulty").clone());
    r.push_kv("chain", chain.get("chain").clone());
    let wallet = at(ID_WALLETINFO).get("result");
    if !wallet.is_null() {
        r.push_kv("has_wallet", Json::Bool(true));
        r.push_kv("keypoolsize", wallet.get("keypoolsize").clone());
        r.push_kv("walletname", wallet.get("walletname").clone());
        if !wallet.get("unlocked_until").is_null() {
            r.push_kv("unlocked_until", wallet.get("unlocked_until").clone());
        }
    }
    let balances = at(ID_BALANCES).get("result");
    if !balances.is_null() {
        r.push_kv("balance", balances.get("mine").get("trusted").clone());
    }
    r.push_kv("relayfee", net.get("relayfee").clone());
    r.push_kv("warnings", net.get("warnings").clone());
    reply_with(r)
}

/// Whether `-color=WHEN` colours the output; `tty` is whether stdout is a terminal.
pub fn colorize(when: &str, tty: bool) -> Result<bool, String> {
    match when {
        "always" => Ok(true),
        "never" => Ok(false),
        "auto" => Ok(tty),
        _ => Err("Invalid value for -color option. Valid values: always, auto, never.".into()),
    }
}

/// Core's `GetProgressBar`: 5% steps, filled then empty.
fn progress_bar(progress: f64) -> String {
    if !(0.0..=1.0).contains(&progress) {
        return String::new();
    }
    let count = |x: f64| (0..).take_while(|&i| f64::from(i) < x / 0.05).count();
    "\u{2592}".repeat(count(progress)) + &"\u{2591}".repeat(count(1.0 - progress))
}

/// Core's `ParseGetInfoResult`: the summary object as text.
pub fn format_getinfo(r: &Json, color: bool) -> String {
    let c = |code: &'static str| if color { code } else { "" };
    let (reset, green, blue, yellow, magenta, cyan) =
        (c("\x1B[0m"), c("\x1B[32m"), c("\x1B[34m"), c("\x1B[33m"), c("\x1B[35m"), c("\x1B[36m"));
    let v = |k: &str| r.get(k).val_str().to_string();
    let mut s = format!("{blue}Chain: {}{reset}\n", v("chain"));
    s += &format!("Blocks: {}\n", v("blocks"));
    s += &format!("Headers: {}\n", v("headers"));
    let progress = r.get("verificationprogress").as_f64().unwrap_or(0.0);
    let bar = if progress < 0.99 { progress_bar(progress) + " " } else { String::new() };
    s += &format!("Verification progress: {bar}{:.4}%\n", progress * 100.0);
    s += &format!("Difficulty: {}\n\n", v("difficulty"));
    let conn = r.get("connections");
    s += &format!(
        "{green}Network: in {}, out {}, total {}{reset}\n",
        conn.get("in").val_str(),
        conn.get("out").val_str(),
        conn.get("total").val_str()
    );
    s += &format!("Version: {}\n", v("version"));
    s += &format!("Time offset (s): {}\n", v("timeoffset"));
    let mut proxies: Vec<(String, Vec<String>)> = Vec::new();
    if let Json::Array(nets) = r.get("networks") {
        for n in nets {
            let proxy = n.get("proxy").val_str();
            if proxy.is_empty() {
                continue;
            }
            let name = n.get("name").val_str().to_string();
            match proxies.iter_mut().find(|(p, _)| p == proxy) {
                Some((_, names)) => names.push(name),
                None => proxies.push((proxy.to_string(), vec![name])),
            }
        }
    }
    let proxies: Vec<String> = proxies.iter().map(|(p, n)| format!("{p} ({})", n.join(", "))).collect();
    s += &format!("Proxies: {}\n", if proxies.is_empty() { "n/a".into() } else { proxies.join(", ") });
    s += &format!("Min tx relay fee rate (BTC/kvB): {}\n\n", v("relayfee"));
    if !r.get("has_wallet").is_null() {
        let name = v("walletname");
        s += &format!("{magenta}Wallet: {}{reset}\n", if name.is_empty() { "\"\"" } else { &name });
        s += &format!("Keypool size: {}\n", v("keypoolsize"));
        if !r.get("unlocked_until").is_null() {
            s += &format!("Unlocked until: {}\n", v("unlocked_until"));
        }
    }
    if !r.get("balance").is_null() {
        s += &format!("{cyan}Balance:{reset} {}\n\n", v("balance"));
    }
    let warnings = v("warnings");
    s += &format!("{yellow}Warnings:{reset} {}", if warnings.is_empty() { "(none)" } else { &warnings });
    s
}

/// The `-addrinfo` request.
pub fn addrinfo_request() -> Json {
    request("getaddrmaninfo", Json::Null, Json::int(1))
}

/// `getaddrmaninfo`'s reply as address counts per network (`all_networks` as `total`). An
/// error is passed on, except "method not found", which is reported as needing a newer server.
pub fn addrinfo_reply(reply: &Json) -> Result<Json, String> {
    let error = reply.get("error");
    if !error.is_null() {
        if error.get("code").as_i64() == Some(RPC_METHOD_NOT_FOUND) {
            return Err("-addrinfo requires a server that supports the getaddrmaninfo RPC.".into());
        }
        return Ok(reply.clone());
    }
    let mut addresses = Json::Object(Vec::new());
    if let Json::Object(nets) = reply.get("result") {
        for (name, counts) in nets {
            let key = if name == "all_networks" { "total" } else { name.as_str() };
            addresses.push_kv(key, counts.get("total").clone());
        }
    }
    Ok(reply_with(Json::Object(vec![("addresses_known".into(), addresses)])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Json {
        Json::parse(s).unwrap()
    }

    #[test]
    fn getinfo_requests_and_summary() {
        let reqs: Vec<String> = getinfo_requests().iter().map(Json::write).collect();
        assert_eq!(reqs[0], r#"{"method":"getnetworkinfo","params":null,"id":0,"jsonrpc":"2.0"}"#);
        assert_eq!(reqs[3], r#"{"method":"getbalances","params":null,"id":3,"jsonrpc":"2.0"}"#);
        let batch = [
            p(r#"{"result":{"version":100,"timeoffset":0,"connections_in":1,"connections_out":2,"connections":3,
                "networks":[{"name":"ipv4","proxy":"127.0.0.1:9050"},{"name":"onion","proxy":"127.0.0.1:9050"},
                {"name":"i2p","proxy":""}],"relayfee":0.00001000,"warnings":""},"id":0}"#),
            p(
                r#"{"result":{"chain":"regtest","blocks":10,"headers":12,"verificationprogress":0.5,"difficulty":4.656542373906925e-10},"id":1}"#,
            ),
            p(r#"{"error":{"code":-32601,"message":"Method not found"},"id":2}"#),
            p(r#"{"error":{"code":-32601,"message":"Method not found"},"id":3}"#),
        ];
        let reply = getinfo_reply(&batch);
        let r = reply.get("result");
        assert!(r.get("has_wallet").is_null() && r.get("balance").is_null());
        let text = format_getinfo(r, false);
        let bar = "\u{2592}".repeat(10) + &"\u{2591}".repeat(10);
        let expected = format!(
            "Chain: regtest\nBlocks: 10\nHeaders: 12\nVerification progress: {bar} 50.0000%\n\
             Difficulty: 4.656542373906925e-10\n\nNetwork: in 1, out 2, total 3\nVersion: 100\nTime offset (s): 0\n\
             Proxies: 127.0.0.1:9050 (ipv4, onion)\nMin tx relay fee rate (BTC/kvB): 0.00001000\n\nWarnings: (none)"
        );
        assert_eq!(text, expected);
        assert!(format_getinfo(r, true).starts_with("\x1B[34mChain: regtest\x1B[0m\n"));
        // An error of a required call is the reply.
        let failed = [batch[0].clone(), p(r#"{"error":{"code":-28,"message":"Loading"},"id":1}"#)];
        assert_eq!(getinfo_reply(&failed).get("error").get("code").as_i64(), Some(-28));
    }

    #[test]
    fn colour_setting_and_progress_bar() {
        assert_eq!(colorize("auto", true), Ok(true));
        assert_eq!(colorize("auto", false), Ok(false));
        assert_eq!(colorize("always", false), Ok(true));
        assert_eq!(colorize("never", true), Ok(false));
        assert!(colorize("sometimes", true).is_err());
        assert_eq!(progress_bar(1.5), "");
        assert_eq!(progress_bar(0.0).chars().count(), 20);
        assert_eq!(progress_bar(0.42).chars().filter(|&c| c == '\u{2592}').count(), 9);
    }

    #[test]
    fn addrinfo_counts() {
        let reply = p(
            r#"{"result":{"ipv4":{"new":5,"tried":2,"total":7},"onion":{"total":1},"all_networks":{"total":8}},"id":1}"#,
        );
        let out = addrinfo_reply(&reply).unwrap();
        assert_eq!(out.get("result").write(), r#"{"addresses_known":{"ipv4":7,"onion":1,"total":8}}"#);
        let missing = p(r#"{"error":{"code":-32601,"message":"Method not found"},"id":1}"#);
        assert!(addrinfo_reply(&missing).is_err());
        let other = p(r#"{"error":{"code":-1,"message":"x"},"id":1}"#);
        assert_eq!(addrinfo_reply(&other).unwrap(), other);
    }
}
