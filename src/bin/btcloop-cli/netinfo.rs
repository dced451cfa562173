//! `-netinfo [LEVEL [outonly]]`: Core's `NetinfoRequestHandler` dashboard built from the
//! replies of `getpeerinfo` and `getnetworkinfo` — the peer counts per reachable network, with
//! LEVEL 1–4 the peers listing (sorted by direction, then minimum ping), and the local services
//! and addresses. Fields are read with serde_json lookups; a missing field reads as Core reads
//! an absent one (`relaytxes` true, ping times unknown, transport `v1`, …) or as zero/empty.

use btcloop::base::chainparams::Network;
use serde_json::Value;

/// Core's `NETINFO_MAX_LEVEL`.
pub const MAX_LEVEL: u8 = 4;
/// `getpeerinfo`'s `network` values, by Core's network id.
const NETWORKS: [&str; 7] = ["not_publicly_routable", "ipv4", "ipv6", "onion", "i2p", "cjdns", "internal"];
/// Their short names in the dashboard.
const NETWORK_SHORT_NAMES: [&str; 7] = ["npr", "ipv4", "ipv6", "onion", "i2p", "cjdns", "int"];
/// Networks that are never "reachable" but get a column when they have peers.
const UNREACHABLE_NETWORK_IDS: [usize; 2] = [0, 6];

/// The dashboard's arguments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Netinfo {
    /// 0–4.
    pub level: u8,
    /// Only outbound peers in the listing.
    pub outbound_only: bool,
}

/// Whether `args` ask for the help text (`help` or `h`).
pub fn wants_help(args: &[String]) -> bool {
    args.first().is_some_and(|a| a == "h" || a == "help")
}

/// Parses `[LEVEL [outonly]]` as Core: LEVEL is 0–255 (above 4 reads as 4); `outonly` / `o`
/// only with a LEVEL above 0; further arguments are ignored.
pub fn parse_args(args: &[String]) -> Result<Netinfo, String> {
    let mut n = Netinfo::default();
    let Some(first) = args.first() else { return Ok(n) };
    let raw: u8 = (!first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()))
        .then(|| first.parse().ok())
        .flatten()
        .ok_or_else(|| {
            format!("invalid -netinfo level argument: {first}\nFor more information, run: btcloop-cli -netinfo help")
        })?;
    n.level = raw.min(MAX_LEVEL);
    if let Some(s) = args.get(1) {
        if raw > 0 && (s == "o" || s == "outonly") {
            n.outbound_only = true;
        } else if raw > 0 {
            return Err(format!(
                "invalid -netinfo outonly argument: {s}\nFor more information, run: btcloop-cli -netinfo help"
            ));
        } else {
            return Err(format!(
                "invalid -netinfo outonly argument: {s}\nThe outonly argument is only valid for a level greater than 0 \
                 (the first argument). For more information, run: btcloop-cli -netinfo help"
            ));
        }
    }
    Ok(n)
}

fn int(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn flag(v: &Value, key: &str, absent: bool) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(absent)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn network_id(name: &str) -> Option<usize> {
    NETWORKS.iter().position(|n| *n == name)
}

/// One peer's listing data.
struct Peer {
    addr: String,
    sub_version: String,
    conn_type: String,
    network: &'static str,
    age: String,
    services: String,
    transport: String,
    min_ping: f64,
    ping: f64,
    addr_processed: i64,
    addr_rate_limited: i64,
    last_blck: i64,
    last_recv: i64,
    last_send: i64,
    last_trxn: i64,
    id: i64,
    mapped_as: i64,
    version: i64,
    is_addr_relay_enabled: bool,
    is_bip152_hb_from: bool,
    is_bip152_hb_to: bool,
    is_outbound: bool,
    is_tx_relay: bool,
}

/// Core's `PingTimeToString`: milliseconds, empty when unknown, `-` above 999999.
fn ping_ms(seconds: f64) -> String {
    if seconds < 0.0 {
        return String::new();
    }
    let ms = (1000.0 * seconds).round();
    if ms > 999_999.0 { "-".into() } else { format!("{}", ms as i64) }
}

/// The `type` column.
fn connection_type(conn_type: &str) -> &str {
    match conn_type {
        "outbound-full-relay" => "full",
        "block-relay-only" => "block",
        "manual" | "feeler" => conn_type,
        "addr-fetch" => "addr",
        "private-broadcast" => "priv",
        _ => "",
    }
}

/// The `serv` column: one letter per service name.
fn format_services(services: Option<&Value>) -> String {
    let names = services.and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    names
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|s| match s {
            "NETWORK_LIMITED" => Some('l'),
            "P2P_V2" => Some('2'),
            _ => s.chars().next().map(|c| c.to_ascii_lowercase()),
        })
        .collect()
}

/// `Local services:` text: the names, lower case, `_` as spaces.
fn services_list(services: Option<&Value>) -> String {
    let names = services.and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let joined: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
    joined.join(", ").chars().map(|c| if c == '_' { ' ' } else { c.to_ascii_lowercase() }).collect()
}

/// The chain as the header names it (Core's `ChainToString`).
fn chain_suffix(network: Network) -> &'static str {
    match network {
        Network::Main => "",
        Network::Test => " testnet",
        Network::Testnet4 => " testnet4",
        Network::Signet => " signet",
        Network::Regtest => " regtest",
    }
}

/// The dashboard for `peers` (`getpeerinfo`'s result) and `info` (`getnetworkinfo`'s), as of
/// `now` (Unix seconds). `network` is the client's chain, as in Core's header.
pub fn render(args: Netinfo, network: Network, peers: &Value, info: &Value, now: i64) -> String {
    let details = args.level > 0;
    let show_address = args.level == 2 || args.level == 4;
    let show_version = args.level == 3 || args.level == 4;
    let mut counts = [[0u32; NETWORKS.len() + 1]; 3];
    let (mut block_relay, mut manual) = (0u32, 0u32);
    let mut list = Vec::new();
    let (mut w_addr, mut w_addrp, mut w_addrl, mut w_age, mut w_id, mut w_serv) = (0, 5, 6, 5, 2, 6);
    let mut asmap_on = false;

    for peer in peers.as_array().map_or(&[][..], Vec::as_slice) {
        let Some(net) = network_id(text(peer, "network")) else { continue };
        let is_outbound = !flag(peer, "inbound", false);
        let conn_type = text(peer, "connection_type");
        let dir = usize::from(is_outbound);
        counts[dir][net] += 1;
        counts[dir][NETWORKS.len()] += 1;
        counts[2][net] += 1;
        counts[2][NETWORKS.len()] += 1;
        block_relay += u32::from(conn_type == "block-relay-only");
        manual += u32::from(conn_type == "manual");
        if !details || (args.outbound_only && !is_outbound) {
            continue;
        }
        let conn_time = int(peer, "conntime");
        let p = Peer {
            addr: text(peer, "addr").to_string(),
            sub_version: text(peer, "subver").to_string(),
            conn_type: conn_type.to_string(),
            network: NETWORK_SHORT_NAMES[net],
            age: if conn_time == 0 { String::new() } else { (now.saturating_sub(conn_time) / 60).to_string() },
            services: format_services(peer.get("servicesnames")),
            transport: peer.get("transport_protocol_type").and_then(Value::as_str).unwrap_or("v1").to_string(),
            min_ping: peer.get("minping").and_then(Value::as_f64).unwrap_or(-1.0),
            ping: peer.get("pingtime").and_then(Value::as_f64).unwrap_or(-1.0),
            addr_processed: int(peer, "addr_processed"),
            addr_rate_limited: int(peer, "addr_rate_limited"),
            last_blck: int(peer, "last_block"),
            last_recv: int(peer, "lastrecv"),
            last_send: int(peer, "lastsend"),
            last_trxn: int(peer, "last_transaction"),
            id: int(peer, "id"),
            mapped_as: int(peer, "mapped_as"),
            version: int(peer, "version"),
            is_addr_relay_enabled: flag(peer, "addr_relay_enabled", false),
            is_bip152_hb_from: flag(peer, "bip152_hb_from", false),
            is_bip152_hb_to: flag(peer, "bip152_hb_to", false),
            is_outbound,
            is_tx_relay: flag(peer, "relaytxes", true),
        };
        w_addr = w_addr.max(p.addr.len() + 1);
        w_addrp = w_addrp.max(p.addr_processed.to_string().len());
        w_addrl = w_addrl.max(p.addr_rate_limited.to_string().len());
        w_age = w_age.max(p.age.len());
        w_id = w_id.max(p.id.to_string().len());
        w_serv = w_serv.max(p.services.len());
        asmap_on |= p.mapped_as != 0;
        list.push(p);
    }

    let services = if details {
        format!(" - services {}", format_services(info.get("localservicesnames")))
    } else {
        String::new()
    };
    let mut out = format!(
        "btcloop client v{}{} - server {}{}{}\n\n",
        env!("CARGO_PKG_VERSION"),
        chain_suffix(network),
        int(info, "protocolversion"),
        text(info, "subversion"),
        services
    );

    if details && !list.is_empty() {
        list.sort_by(|a, b| a.is_outbound.cmp(&b.is_outbound).then(a.min_ping.total_cmp(&b.min_ping)));
        out += &format!(
            "<->   type   net {:>w_serv$}  v  mping   ping send recv  txn  blk  hb {:>w_addrp$}{:>w_addrl$}{:>w_age$} ",
            "serv", "addrp", "addrl", "age"
        );
        if asmap_on {
            out += " asmap ";
        }
        let w_address = if show_address { w_addr } else { 0 };
        out += &format!(
            "{:>w_id$} {:<w_address$}{}\n",
            "id",
            if show_address { "address" } else { "" },
            if show_version { "version" } else { "" }
        );
        let since = |t: i64, div: i64| if t != 0 { (now.saturating_sub(t) / div).to_string() } else { String::new() };
        for p in &list {
            let version = format!("{}{}", p.version, p.sub_version);
            let v = match p.transport.as_bytes() {
                [b'v', c] => char::from(*c),
                _ => ' ',
            };
            let txn = if p.last_trxn != 0 {
                since(p.last_trxn, 60)
            } else if p.is_tx_relay {
                String::new()
            } else {
                "*".into()
            };
            let addrp = if p.addr_processed != 0 {
                p.addr_processed.to_string()
            } else if p.is_addr_relay_enabled {
                String::new()
            } else {
                ".".into()
            };
            let addrl = if p.addr_rate_limited != 0 { p.addr_rate_limited.to_string() } else { String::new() };
            let hb =
                format!("{}{}", if p.is_bip152_hb_to { "." } else { " " }, if p.is_bip152_hb_from { "*" } else { " " });
            let w_asmap = if asmap_on { 7 } else { 0 };
            let asmap = if asmap_on && p.mapped_as != 0 { p.mapped_as.to_string() } else { String::new() };
            out += &format!(
                "{:>3} {:>6} {:>5} {:>w_serv$} {:>2}{:>7}{:>7}{:>5}{:>5}{:>5}{:>5}  {:>2} {:>w_addrp$}{:>w_addrl$}{:>w_age$}\
                 {:>w_asmap$} {:>w_id$} {:<w_address$}{}\n",
                if p.is_outbound { "out" } else { "in" },
                connection_type(&p.conn_type),
                p.network,
                p.services,
                v,
                ping_ms(p.min_ping),
                ping_ms(p.ping),
                since(p.last_send, 1),
                since(p.last_recv, 1),
                txn,
                since(p.last_blck, 60),
                hb,
                addrp,
                addrl,
                p.age,
                asmap,
                p.id,
                if show_address { p.addr.as_str() } else { "" },
                if show_version && version != "0" { version.as_str() } else { "" },
            );
        }
        out += &format!(
            "                {:>w_serv$}         ms     ms  sec  sec  min  min                {:>w_age$}\n\n",
            "", "min"
        );
    }

    // Peer counts by network.
    out += "     ";
    let mut columns = Vec::new();
    for net in info.get("networks").and_then(Value::as_array).map_or(&[][..], Vec::as_slice) {
        if !flag(net, "reachable", false) {
            continue;
        }
        let name = text(net, "name");
        let Some(id) = network_id(name) else { continue };
        out += &format!("{name:>8}");
        columns.push(id);
    }
    for id in UNREACHABLE_NETWORK_IDS {
        if counts[2][id] != 0 {
            out += &format!("{:>8}", NETWORK_SHORT_NAMES[id]);
            columns.push(id);
        }
    }
    out += "   total   block";
    if manual != 0 {
        out += "  manual";
    }
    for (i, row) in ["in", "out", "total"].iter().enumerate() {
        out += &format!("\n{row:<5}");
        for &id in &columns {
            out += &format!("{:>8}", counts[i][id]);
        }
        out += &format!("   {:>5}", counts[i][NETWORKS.len()]);
        if i == 1 {
            out += &format!("   {block_relay:>5}");
            if manual != 0 {
                out += &format!("   {manual:>5}");
            }
        }
    }

    if !details {
        out += &format!("\n\nLocal services: {}", services_list(info.get("localservicesnames")));
    }
    out += "\n\nLocal addresses";
    let locals = info.get("localaddresses").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    if locals.is_empty() {
        out += ": n/a\n";
    } else {
        let w = locals.iter().map(|a| text(a, "address").len() + 1).max().unwrap_or(0);
        for a in locals {
            out +=
                &format!("\n{:<w$}    port {:>6}    score {:>6}", text(a, "address"), int(a, "port"), int(a, "score"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn networkinfo() -> Value {
        json!({
            "version": 100, "subversion": "/btcloop:0.1.0/", "protocolversion": 70016,
            "localservicesnames": ["NETWORK", "WITNESS", "NETWORK_LIMITED", "P2P_V2"],
            "networks": [
                {"name": "ipv4", "reachable": true}, {"name": "ipv6", "reachable": true},
                {"name": "onion", "reachable": false}, {"name": "i2p", "reachable": false},
                {"name": "cjdns", "reachable": false}
            ],
            "localaddresses": []
        })
    }

    fn peers() -> Value {
        json!([
            {"id": 0, "addr": "1.2.3.4:8333", "network": "ipv4", "inbound": false,
             "connection_type": "outbound-full-relay", "minping": 0.0123, "pingtime": 0.02,
             "lastsend": NOW - 5, "lastrecv": NOW - 7, "last_transaction": 0, "last_block": NOW - 600,
             "conntime": NOW - 3600, "version": 70016, "subver": "/Satoshi:27.0.0/", "relaytxes": true,
             "addr_processed": 1234, "addr_rate_limited": 0, "addr_relay_enabled": true,
             "bip152_hb_to": true, "bip152_hb_from": false, "transport_protocol_type": "v2",
             "servicesnames": ["NETWORK", "WITNESS", "NETWORK_LIMITED", "P2P_V2"]},
            {"id": 12, "addr": "[2001:db8::1]:8333", "network": "ipv6", "inbound": false,
             "connection_type": "block-relay-only", "minping": 0.001, "pingtime": 0.0015,
             "lastsend": NOW - 1, "lastrecv": NOW - 2, "conntime": NOW - 120, "version": 70016,
             "subver": "/Satoshi:26.0.0/", "relaytxes": false, "transport_protocol_type": "v1"},
            {"id": 3, "addr": "127.0.0.1:50000", "network": "not_publicly_routable", "inbound": true,
             "connection_type": "inbound", "lastsend": 0, "lastrecv": 0, "conntime": NOW - 60, "version": 0,
             "subver": ""},
            {"id": 4, "addr": "5.6.7.8:8333", "network": "ipv4", "inbound": false, "connection_type": "manual",
             "minping": 0.5, "conntime": NOW - 60, "version": 70016, "subver": "/x/", "bip152_hb_from": true},
            {"id": 5, "addr": "weird", "network": "bogus", "inbound": true}
        ])
    }

    #[test]
    fn args_as_core() {
        assert_eq!(parse_args(&[]).unwrap(), Netinfo::default());
        assert_eq!(parse_args(&strings(&["2"])).unwrap(), Netinfo { level: 2, outbound_only: false });
        assert_eq!(parse_args(&strings(&["255", "o"])).unwrap(), Netinfo { level: 4, outbound_only: true });
        assert!(parse_args(&strings(&["1", "outonly", "ignored"])).unwrap().outbound_only);
        assert!(parse_args(&strings(&["256"])).unwrap_err().starts_with("invalid -netinfo level argument: 256\n"));
        assert!(parse_args(&strings(&["-1"])).is_err());
        assert!(parse_args(&strings(&["+1"])).is_err());
        assert!(
            parse_args(&strings(&["1", "x"])).unwrap_err().starts_with("invalid -netinfo outonly argument: x\nFor")
        );
        assert!(parse_args(&strings(&["0", "o"])).unwrap_err().contains("only valid for a level greater than 0"));
        assert!(wants_help(&strings(&["help"])) && wants_help(&strings(&["h", "2"])) && !wants_help(&strings(&["2"])));
    }

    #[test]
    fn level_0_counts_and_local_info() {
        let out = render(Netinfo::default(), Network::Regtest, &peers(), &networkinfo(), NOW);
        let expected = "btcloop client v".to_string()
            + env!("CARGO_PKG_VERSION")
            + " regtest - server 70016/btcloop:0.1.0/\n\n"
            + "         ipv4    ipv6     npr   total   block  manual\n"
            + "in          0       0       1       1\n"
            + "out         2       1       0       3       1       1\n"
            + "total       2       1       1       4\n\n"
            + "Local services: network, witness, network limited, p2p v2\n\n"
            + "Local addresses: n/a\n";
        assert_eq!(out, expected);
    }

    #[test]
    fn level_4_peer_rows_sorted_as_core() {
        let out = render(Netinfo { level: 4, outbound_only: false }, Network::Main, &peers(), &networkinfo(), NOW);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            format!("btcloop client v{} - server 70016/btcloop:0.1.0/ - services nwl2", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(lines[1], "");
        // Expected rows printed by C printf with the format strings of Core's NetinfoRequestHandler.
        let expected = [
            "<->   type   net   serv  v  mping   ping send recv  txn  blk  hb addrp addrl  age id address            version",
            " in          npr         1                                           .          1  3 127.0.0.1:50000    ",
            "out  block  ipv6         1      1      2    1    2    *              .          2 12 [2001:db8::1]:8333 70016/Satoshi:26.0.0/",
            "out   full  ipv4   nwl2  2     12     20    5    7        10  .   1234         60  0 1.2.3.4:8333       70016/Satoshi:27.0.0/",
            "out manual  ipv4         1    500                              *     .          1  4 5.6.7.8:8333       70016/x/",
            "                               ms     ms  sec  sec  min  min                  min",
        ];
        // Inbound first, then outbound by minimum ping (unknown = -1 first).
        assert_eq!(lines[2..8], expected);
        assert_eq!(lines[8], "");
        assert_eq!(lines[9], "         ipv4    ipv6     npr   total   block  manual");
        assert!(!out.contains("Local services"), "only at level 0");
        assert!(out.ends_with("Local addresses: n/a\n"));
    }

    #[test]
    fn levels_1_to_3_columns_and_outonly() {
        let l1 = render(Netinfo { level: 1, outbound_only: true }, Network::Main, &peers(), &networkinfo(), NOW);
        let lines: Vec<&str> = l1.lines().collect();
        assert!(lines[2].ends_with("addrl  age id "), "{:?}", lines[2]);
        let rows: Vec<&str> = lines[3..].iter().take_while(|l| !l.trim_start().starts_with("ms")).copied().collect();
        assert_eq!(rows.len(), 3, "outonly: {rows:?}");
        assert!(rows.iter().all(|r| r.starts_with("out ")));
        assert!(l1.contains("\nin          0       0       1       1\n"), "counts still include inbound");
        let l2 = render(Netinfo { level: 2, outbound_only: false }, Network::Main, &peers(), &networkinfo(), NOW);
        assert!(l2.contains(" 1.2.3.4:8333 ") && !l2.contains("Satoshi"));
        let l3 = render(Netinfo { level: 3, outbound_only: false }, Network::Main, &peers(), &networkinfo(), NOW);
        assert!(!l3.contains("1.2.3.4:8333") && l3.contains("  0 70016/Satoshi:27.0.0/"));
    }

    #[test]
    fn missing_fields_asmap_and_local_addresses() {
        let peers = json!([
            {"network": "ipv4"},
            {"network": "onion", "inbound": true, "mapped_as": 64512, "id": 123456, "conntime": NOW - 60},
            "not an object",
            {"network": "internal", "inbound": true}
        ]);
        let info = json!({
            "networks": [{"name": "ipv4", "reachable": true}, {"name": "onion", "reachable": true}, {"name": "x", "reachable": true}],
            "localaddresses": [{"address": "1.2.3.4", "port": 8333, "score": 4}, {"address": "2001:db8::2", "port": 8333, "score": 1}]
        });
        let out = render(Netinfo { level: 1, outbound_only: false }, Network::Signet, &peers, &info, NOW);
        assert!(
            out.starts_with(&format!(
                "btcloop client v{} signet - server 0 - services \n\n",
                env!("CARGO_PKG_VERSION")
            ))
        );
        assert!(out.contains("  age  asmap     id \n"), "{out}");
        assert!(out.contains(".          1  64512 123456 \n"), "{out}");
        assert!(out.contains(".                        0 \n"), "no age, no AS: empty columns {out}");
        assert!(out.contains("         ipv4   onion     int   total   block\n"), "{out}");
        assert!(out.contains("\nin          0       1       1       2\n"), "{out}");
        assert!(out.ends_with(
            "Local addresses\n1.2.3.4         port   8333    score      4\n2001:db8::2     port   8333    score      1"
        ));
        // Nothing at all: still a dashboard, no panic.
        let empty = render(Netinfo { level: 4, outbound_only: false }, Network::Main, &Value::Null, &Value::Null, NOW);
        let expected =
            "server 0 - services \n\n        total   block\nin          0\nout         0       0\ntotal       0\n\n";
        assert!(empty.ends_with(&(expected.to_string() + "Local addresses: n/a\n")), "{empty}");
    }

    #[test]
    fn ping_and_services_formatting() {
        assert_eq!(ping_ms(-1.0), "");
        assert_eq!(ping_ms(0.0004), "0");
        assert_eq!(ping_ms(0.0125), "13");
        assert_eq!(ping_ms(1000.0), "-");
        assert_eq!(format_services(Some(&json!(["BLOOM", "COMPACT_FILTERS", "UNKNOWN[1 << 12]", 5]))), "bcu");
        assert_eq!(services_list(Some(&json!(["NETWORK_LIMITED"]))), "network limited");
        assert_eq!(services_list(None), "");
    }
}
