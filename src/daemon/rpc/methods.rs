//! The RPC methods, with Bitcoin Core's names, arguments and result fields: the table, `help`,
//! and each method's body. Methods about peers and the chain ask the message handler; the ban
//! list, totals and logging are read here; `addnode` goes to the dialer thread.

use std::sync::atomic::Ordering;

use bitcoin::BlockHash;
use crossbeam_channel::bounded;
use serde_json::{Value, json};

use super::params::{Arg, Ty, arg, check, opt, positional, req};
use super::{RpcContext, block, render};
use crate::base::counters::Dimension;
use crate::base::netgroup::AddrNetwork;
use crate::base::time::unix_now;
use crate::daemon::inspect::{ANSWER_TIMEOUT, PeerRef, Request, RpcError, code};
use crate::daemon::net::dialer::{DialerCommand, PeerSpec};
use crate::daemon::net::wake::SocketCommand;
use crate::engine::policy::banman::Subnet;

type Body = fn(&RpcContext, &[Value]) -> Result<Value, RpcError>;

/// One method.
pub struct Method {
    /// Name.
    pub name: &'static str,
    /// Core's help category.
    pub category: &'static str,
    /// Arguments.
    pub args: &'static [Arg],
    /// The help text (first line: the call signature).
    pub help: &'static str,
    body: Body,
}

macro_rules! method {
    ($name:literal, $cat:literal, [$($arg:expr),*], $help:literal, $body:expr) => {
        Method { name: $name, category: $cat, args: &[$($arg),*], help: $help, body: $body }
    };
}

/// Every method, grouped by category as Core's `help` lists them.
pub static METHODS: &[Method] = &[
    method!(
        "getbestblockhash",
        "Blockchain",
        [],
        "getbestblockhash\n\nReturns the hash of the best (tip) block in the most-work fully-validated chain.\n\nResult:\n\"hex\"    (string) the block hash, hex-encoded\n",
        |c, _| { Ok(json!(c.ask(Request::BlockchainInfo)?.best_hash.to_string())) }
    ),
    method!(
        "getblock",
        "Blockchain",
        [req("blockhash", Ty::Str), opt("verbosity|verbose", Ty::Any)],
        "getblock \"blockhash\" ( verbosity )\n\nIf verbosity is 0, returns a string that is serialized, hex-encoded data for block 'hash'.\nIf verbosity is 1, returns an Object with information about block <hash>.\nIf verbosity is 2, returns an Object with information about block <hash> and information about each transaction.\nIf verbosity is 3, returns an Object with information about block <hash> and information about each transaction, including prevout information for inputs (only for blocks connected to the chain once, whose undo data exist).\n\nArguments:\n1. blockhash    (string, required) The block hash\n2. verbosity    (numeric, optional, default=1) 0 for hex-encoded data, 1 for a JSON object, 2 for JSON object with transaction data, and 3 for JSON object with transaction data including prevout information for inputs\n\nResult (verbosity = 1): hash, confirmations, height, version, versionHex, merkleroot, time, mediantime, nonce, bits, target, difficulty, chainwork, nTx, previousblockhash, nextblockhash, strippedsize, size, weight, coinbase_tx, tx (the txids); with verbosity 2 each tx is an object as getrawtransaction shows it, with \"fee\" when the block's undo data exist.\n",
        getblock
    ),
    method!(
        "getblockchaininfo",
        "Blockchain",
        [],
        "getblockchaininfo\n\nReturns an object containing various state info regarding blockchain processing.\n\"blocks\" is the height of the most-work fully-validated chain (blocks validated by Bitcoin Core's kernel), \"headers\" the height of the best header chain; \"verificationprogress\" is the kernel's estimate, \"size_on_disk\" the bytes of blocks/, chainstate/ and headers.dat.\n",
        |c, _| { Ok(render::blockchain_info(&c.ask(Request::BlockchainInfo)?)) }
    ),
    method!(
        "getblockcount",
        "Blockchain",
        [],
        "getblockcount\n\nReturns the height of the most-work fully-validated chain.\nThe genesis block has height 0.\n\nResult:\nn    (numeric) The current block count\n",
        |c, _| { Ok(json!(c.ask(Request::BlockchainInfo)?.height)) }
    ),
    method!(
        "getblockhash",
        "Blockchain",
        [req("height", Ty::Num)],
        "getblockhash height\n\nReturns hash of block in best-block-chain at height provided.\n\nArguments:\n1. height    (numeric, required) The height index\n",
        |c, a| {
            let h = int(a.first())?;
            Ok(json!(c.ask(|r| Request::BlockHash(h, r))?.to_string()))
        }
    ),
    method!(
        "getblockheader",
        "Blockchain",
        [req("blockhash", Ty::Str), opt("verbose", Ty::Bool)],
        "getblockheader \"blockhash\" ( verbose )\n\nIf verbose is false, returns a string that is serialized, hex-encoded data for blockheader 'hash'.\nIf verbose is true, returns an Object with information about blockheader <hash>.\n\nArguments:\n1. blockhash    (string, required) The block hash\n2. verbose      (boolean, optional, default=true) true for a json object, false for the hex-encoded data\n",
        |c, a| {
            let hash = parse_hash(a.first(), "blockhash")?;
            let verbose = arg(a, 1).and_then(Value::as_bool).unwrap_or(true);
            let info = c.ask(|r| Request::BlockHeader(hash, r))?;
            let n_tx = if verbose { block::tx_count(c.blocks.as_ref(), &info)? } else { 0 };
            Ok(render::block_header(&info, n_tx, verbose))
        }
    ),
    method!(
        "getchaintips",
        "Blockchain",
        [],
        "getchaintips\n\nReturn information about all known tips in the header tree, including the main chain as well as orphaned branches.\n",
        |c, _| { Ok(render::chain_tips(&c.ask(Request::ChainTips)?)) }
    ),
    method!(
        "help",
        "Control",
        [opt("command", Ty::Str)],
        "help ( \"command\" )\n\nList all commands, or get help for a specified command.\n\nArguments:\n1. command    (string, optional, default=all commands) The command to get help on\n",
        |_, a| { Ok(json!(help(arg(a, 0).and_then(Value::as_str)))) }
    ),
    method!(
        "logging",
        "Control",
        [opt("include", Ty::Arr), opt("exclude", Ty::Arr)],
        "logging ( [\"include_category\",...] [\"exclude_category\",...] )\n\nGets and sets the logging configuration.\nWhen called without an argument, returns the list of categories with status that are currently being debug logged or not.\nWhen called with arguments, adds or removes categories from debug logging and return the lists above.\nThe arguments are evaluated in order \"include\", \"exclude\".\nIf an item is both included and excluded, it will thus end up being excluded.\nThe valid logging categories are: cmpctblock, http, net, rpc, validation\nIn addition, the following are available as category names with special meanings:\n  - \"all\",  \"1\" : represent all logging categories.\n",
        logging
    ),
    method!("stop", "Control", [], "stop\n\nRequest a graceful shutdown of btcloopd.\n", |c, _| {
        c.stop_requested.store(true, Ordering::Release);
        Ok(json!("btcloopd stopping"))
    }),
    method!(
        "uptime",
        "Control",
        [],
        "uptime\n\nReturns the total uptime of the server.\n\nResult:\nn    (numeric) The number of seconds that the server has been running\n",
        |c, _| { Ok(json!(c.started.elapsed().as_secs())) }
    ),
    method!(
        "submitblock",
        "Mining",
        [req("hexdata", Ty::Str), opt("dummy", Ty::Str)],
        "submitblock \"hexdata\" ( \"dummy\" )\n\nAttempts to submit new block to network.\nSee https://en.bitcoin.it/wiki/BIP_0022 for full specification.\n\nArguments:\n1. hexdata    (string, required) the hex-encoded block data to submit\n2. dummy      (string, optional, default=ignored) dummy value, for compatibility with BIP22. This value is ignored.\n\nResult (If the block was accepted):\nnull    (json null)\n\nResult (Otherwise):\nstr    (string) According to BIP22\n",
        |c, a| {
            use bitcoin::hex::FromHex;
            let hex = a.first().and_then(Value::as_str).unwrap_or_default();
            let bytes = Vec::<u8>::from_hex(hex)
                .map_err(|_| RpcError::new(code::DESERIALIZATION_ERROR, "Block decode failed"))?;
            Ok(match c.ask(|r| Request::SubmitBlock(bytes, r))? {
                None => Value::Null,
                Some(reason) => json!(reason),
            })
        }
    ),
    method!(
        "addnode",
        "Network",
        [req("node", Ty::Str), req("command", Ty::Str), opt("v2transport", Ty::Bool)],
        "addnode \"node\" \"command\" ( v2transport )\n\nAttempts to add or remove a node from the addnode list.\nOr try a connection to a node once.\nAddnode connections are limited to 8 at a time and are counted separately from the -maxconnections limit.\n\nArguments:\n1. node           (string, required) The IP address/hostname optionally followed by :port of the peer to connect to\n2. command        (string, required) 'add' to add a node to the list, 'remove' to remove a node from the list, 'onetry' to try a connection to the node once\n3. v2transport    (boolean, optional, default=false) Attempt to connect using BIP324 v2 transport protocol (ignored for 'remove' command)\n",
        addnode
    ),
    method!("clearbanned", "Network", [], "clearbanned\n\nClear all banned IPs.\n", |c, _| {
        c.banman.clear(unix_now()).map_err(|e| RpcError::new(code::MISC_ERROR, e.to_string()))?;
        Ok(Value::Null)
    }),
    method!(
        "disconnectnode",
        "Network",
        [opt("address", Ty::Str), opt("nodeid", Ty::Num)],
        "disconnectnode ( \"address\" nodeid )\n\nImmediately disconnects from the specified peer node.\n\nStrictly one out of 'address' and 'nodeid' can be provided to identify the node.\n\nArguments:\n1. address    (string, optional, default=fallback to nodeid) The IP address/port of the node\n2. nodeid     (numeric, optional, default=fallback to address) The node ID (see getpeerinfo for node IDs)\n",
        |c, a| {
            let (addr, id) = (arg(a, 0).and_then(Value::as_str), arg(a, 1));
            // Core: an address alone, or an id with no or an empty address.
            let target = match (addr, id) {
                (Some(addr), None) => match addr.parse() {
                    Ok(sa) => PeerRef::Addr(sa),
                    Err(_) => {
                        return Err(RpcError::new(
                            code::CLIENT_NODE_NOT_CONNECTED,
                            "Node not found in connected nodes",
                        ));
                    }
                },
                (None | Some(""), Some(id)) => PeerRef::Id(u64::try_from(int(Some(id))?).ok()),
                _ => {
                    return Err(RpcError::new(
                        code::INVALID_PARAMS,
                        "Only one of address and nodeid should be provided.",
                    ));
                }
            };
            c.ask(|r| Request::Disconnect(target, r))?;
            Ok(Value::Null)
        }
    ),
    method!(
        "getaddednodeinfo",
        "Network",
        [opt("node", Ty::Str)],
        "getaddednodeinfo ( \"node\" )\n\nReturns information about the given added node, or all added nodes\n(note that onetry addnodes are not listed here)\n\nArguments:\n1. node    (string, optional, default=all nodes) If provided, return information about this specific node, otherwise all nodes are returned.\n",
        getaddednodeinfo
    ),
    method!(
        "getaddrmaninfo",
        "Network",
        [],
        "getaddrmaninfo\n\nProvides information about the node's address manager by returning the number of addresses in the `new` and `tried` tables and their sum for all networks.\n",
        |c, _| Ok(render::addrman_info(&c.ask(Request::AddrManInfo)?))
    ),
    method!(
        "getconnectioncount",
        "Network",
        [],
        "getconnectioncount\n\nReturns the number of connections to other nodes.\n",
        |c, _| { Ok(json!(c.ask(Request::ConnectionCounts)?.total)) }
    ),
    method!(
        "getdisconnects",
        "Network",
        [opt("count", Ty::Num)],
        "getdisconnects ( count )\n\nReturns the most recent disconnects, newest first, with peer, reason and time (btcloop).\n\nArguments:\n1. count    (numeric, optional, default=20) How many to return (at most 256 are kept)\n",
        |c, a| {
            let n = match arg(a, 0) {
                None => 20,
                Some(v) => u64::try_from(int(Some(v))?)
                    .map_err(|_| RpcError::invalid_param("count must be a non-negative integer"))?,
            };
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            Ok(render::disconnects(&c.ask(|r| Request::Disconnects(n, r))?))
        }
    ),
    method!(
        "getnettotals",
        "Network",
        [],
        "getnettotals\n\nReturns information about network traffic, including bytes in, bytes out,\nand current system time.\n",
        |c, _| {
            Ok(json!({
                "totalbytesrecv": c.totals.bytes_recv.load(Ordering::Relaxed),
                "totalbytessent": c.totals.bytes_sent.load(Ordering::Relaxed),
                "timemillis": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
                "uploadtarget": {
                    "timeframe": 86400,
                    "target": 0,
                    "target_reached": false,
                    "serve_historical_blocks": true,
                    "bytes_left_in_cycle": 0,
                    "time_left_in_cycle": 0,
                },
            }))
        }
    ),
    method!(
        "getnetmsgstats",
        "Network",
        [opt("aggregate_by", Ty::Arr)],
        "getnetmsgstats ( [\"aggregate_by\",...] )\n\nReturns the messages and bytes sent and received since start, in total and broken down by the\ngiven dimensions, nested in the order given (Bitcoin Core #26337's proposal).\n\nArguments:\n1. aggregate_by    (json array, optional) Any of \"direction\", \"network\", \"connection_type\", \"message_type\"\n",
        |c, a| {
            let mut by = Vec::new();
            for v in arg(a, 0).and_then(Value::as_array).into_iter().flatten() {
                let name = v.as_str().unwrap_or_default();
                let d = Dimension::parse(name)
                    .ok_or_else(|| RpcError::invalid_param(format!("Unknown aggregate_by value: {v}")))?;
                if by.contains(&d) {
                    return Err(RpcError::invalid_param(format!("Duplicate aggregate_by value: {v}")));
                }
                by.push(d);
            }
            Ok(render::net_msg_stats(&c.ask(Request::NetMsgStats)?, &by))
        }
    ),
    method!(
        "getnetworkinfo",
        "Network",
        [],
        "getnetworkinfo\n\nReturns an object containing various state info regarding P2P networking.\n",
        getnetworkinfo
    ),
    method!(
        "getnodeaddresses",
        "Network",
        [opt("count", Ty::Num), opt("network", Ty::Str)],
        "getnodeaddresses ( count \"network\" )\n\nReturn known addresses, after filtering for quality and recency.\n\nArguments:\n1. count      (numeric, optional, default=1) The maximum number of addresses to return. Specify 0 to return all known addresses.\n2. network    (string, optional, default=all networks) Return only addresses of the specified network. Can be one of: ipv4, ipv6, onion, i2p, cjdns.\n",
        |c, a| {
            if arg(a, 0).map(|v| int(Some(v))).transpose()?.is_some_and(|n| n < 0) {
                return Err(RpcError::invalid_param("Address count out of range"));
            }
            if let Some(net) = arg(a, 1).and_then(Value::as_str) {
                if !["ipv4", "ipv6", "onion", "i2p", "cjdns"].contains(&net) {
                    return Err(RpcError::invalid_param(format!("Network not recognized: {net}")));
                }
            }
            let count = arg(a, 0).map(|v| int(Some(v))).transpose()?.unwrap_or(1);
            let network = arg(a, 1)
                .and_then(Value::as_str)
                .and_then(|n| AddrNetwork::REPORTED.into_iter().find(|x| x.name() == n));
            let count = usize::try_from(count).unwrap_or(0);
            Ok(render::node_addresses(&c.ask(|reply| Request::NodeAddresses { count, network, reply })?))
        }
    ),
    method!(
        "getpeerinfo",
        "Network",
        [],
        "getpeerinfo\n\nReturns data about each connected network peer as a json array of objects.\n",
        |c, _| { Ok(Value::Array(c.ask(Request::PeerInfo)?.iter().map(render::peer_info).collect())) }
    ),
    method!("listbanned", "Network", [], "listbanned\n\nList all manually banned IPs/Subnets.\n", |c, _| {
        let now = unix_now();
        Ok(Value::Array(
            c.banman
                .list(now)
                .into_iter()
                .map(|(net, e)| {
                    json!({
                        "address": net.to_string(),
                        "ban_created": e.created,
                        "banned_until": e.until,
                        "ban_duration": e.until - e.created,
                        "time_remaining": e.until - now,
                    })
                })
                .collect(),
        ))
    }),
    method!(
        "ping",
        "Network",
        [],
        "ping\n\nRequests that a ping be sent to all other nodes, to measure ping time.\nResults are provided in getpeerinfo, pingtime and pingwait fields are decimal seconds.\nPing command is handled in queue with all other commands, so it measures processing backlog, not just network ping.\n",
        |c, _| {
            c.ask(Request::PingAll)?;
            Ok(Value::Null)
        }
    ),
    method!(
        "setban",
        "Network",
        [req("subnet", Ty::Str), req("command", Ty::Str), opt("bantime", Ty::Num), opt("absolute", Ty::Bool)],
        "setban \"subnet\" \"command\" ( bantime absolute )\n\nAttempts to add or remove an IP/Subnet from the banned list.\n\nArguments:\n1. subnet      (string, required) The IP/Subnet (see getpeerinfo for nodes IP) with an optional netmask (default is /32 = single IP)\n2. command     (string, required) 'add' to add an IP/Subnet to the list, 'remove' to remove an IP/Subnet from the list\n3. bantime     (numeric, optional, default=0) time in seconds how long (or until when if [absolute] is set) the IP is banned (0 or empty means using the default time of 24h which can also be overwritten by the -bantime startup argument)\n4. absolute    (boolean, optional, default=false) If set, the bantime must be an absolute timestamp expressed in UNIX epoch time\n",
        setban
    ),
    method!(
        "setnetworkactive",
        "Network",
        [req("state", Ty::Bool)],
        "setnetworkactive state\n\nDisable/enable all p2p network activity.\n\nArguments:\n1. state    (boolean, required) true to enable networking, false to disable\n",
        |c, a| {
            let state = a.first().and_then(Value::as_bool).unwrap_or(true);
            c.network_active.store(state, Ordering::Release);
            c.ctl.send(SocketCommand::SetNetworkActive(state));
            Ok(json!(state))
        }
    ),
];

/// An integer argument as UniValue's `getInt<int64_t>` reads it (fractions and out-of-range
/// numbers are refused, not rounded).
fn int(v: Option<&Value>) -> Result<i64, RpcError> {
    v.and_then(Value::as_i64).ok_or_else(|| RpcError::new(code::MISC_ERROR, "JSON integer out of range"))
}

/// Core's `ParseVerbosity` (booleans allowed: true is 1).
fn verbosity(v: Option<&Value>) -> Result<i64, RpcError> {
    match v {
        None => Ok(1),
        Some(Value::Bool(b)) => Ok(i64::from(*b)),
        Some(n @ Value::Number(_)) => {
            let n = int(Some(n))?;
            // UniValue's `getInt<int>`: a 32-bit integer.
            i32::try_from(n).map(i64::from).map_err(|_| RpcError::new(code::MISC_ERROR, "JSON integer out of range"))
        }
        Some(other) => Err(RpcError::new(
            code::MISC_ERROR,
            format!("JSON value of type {} is not of expected type number", super::params::type_name(other)),
        )),
    }
}

/// Core's `getblock`: the header facts from the message handler, the block (and its undo data
/// for verbosity 2 and up) from the validation thread.
fn getblock(c: &RpcContext, a: &[Value]) -> Result<Value, RpcError> {
    let hash = parse_hash(a.first(), "blockhash")?;
    let verbosity = verbosity(arg(a, 1))?;
    let info = c.ask(|r| Request::BlockHeader(hash, r))?;
    let stored = block::fetch(c.blocks.as_ref(), &info, verbosity >= 2)?;
    block::block_json(&info, &stored, verbosity, c.network)
}

/// Core's `ParseHashV`.
fn parse_hash(v: Option<&Value>, name: &str) -> Result<BlockHash, RpcError> {
    let s = v.and_then(Value::as_str).unwrap_or_default();
    if s.len() != 64 {
        return Err(RpcError::invalid_param(format!("{name} must be of length 64 (not {}, for '{s}')", s.len())));
    }
    s.parse().map_err(|_| RpcError::invalid_param(format!("{name} must be hexadecimal string (not '{s}')")))
}

/// The method called `name`.
fn find(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

/// Core's answer to a bad call: the method's help as a `RPC_MISC_ERROR`.
fn help_error(name: &str) -> RpcError {
    RpcError::new(code::MISC_ERROR, find(name).map_or("", |m| m.help))
}

/// Finds `method` and checks `params` against its arguments: the positional values to run it
/// with, or Core's error.
pub fn prepare(method: &str, params: &Value) -> Result<(&'static Method, Vec<Value>), RpcError> {
    let Some(m) = find(method) else {
        return Err(RpcError::new(code::METHOD_NOT_FOUND, "Method not found"));
    };
    let values = positional(params, m.args)?;
    check(&values, m.args, m.help)?;
    Ok((m, values))
}

/// Runs `method` with `params`.
pub fn execute(ctx: &RpcContext, method: &str, params: &Value) -> Result<Value, RpcError> {
    let (m, values) = prepare(method, params)?;
    (m.body)(ctx, &values)
}

/// Core's `help`: every signature by category, or one method's text.
pub fn help(command: Option<&str>) -> String {
    if let Some(name) = command {
        return match find(name) {
            Some(m) => m.help.trim_end().to_string(),
            None => format!("help: unknown command: {name}"),
        };
    }
    let mut cats: Vec<&str> = METHODS.iter().map(|m| m.category).collect();
    cats.dedup();
    let mut out = Vec::new();
    for cat in cats {
        let mut names: Vec<&Method> = METHODS.iter().filter(|m| m.category == cat).collect();
        names.sort_by_key(|m| m.name);
        let lines: Vec<&str> = names.iter().map(|m| m.help.lines().next().unwrap_or(m.name)).collect();
        out.push(format!("== {cat} ==\n{}", lines.join("\n")));
    }
    out.join("\n\n")
}

fn logging(c: &RpcContext, a: &[Value]) -> Result<Value, RpcError> {
    let Some(log) = &c.log else { return Err(RpcError::new(code::MISC_ERROR, "logging is not set up")) };
    let names = |i: usize| -> Result<Vec<String>, RpcError> {
        arg(a, i)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|v| {
                v.as_str().map(String::from).ok_or_else(|| {
                    RpcError::new(code::TYPE_ERROR, "JSON value of type number is not of expected type string")
                })
            })
            .collect()
    };
    let (include, exclude) = (names(0)?, names(1)?);
    if !include.is_empty() || !exclude.is_empty() {
        log.update(&include, &exclude).map_err(|e| match e {
            crate::daemon::logging::LoggingError::UnknownCategory(cat) => {
                RpcError::invalid_param(format!("unknown logging category {cat}"))
            }
            other => RpcError::new(code::MISC_ERROR, other.to_string()),
        })?;
    }
    Ok(Value::Object(log.categories().into_iter().map(|(c, on)| (c.to_string(), json!(on))).collect()))
}

fn addnode(c: &RpcContext, a: &[Value]) -> Result<Value, RpcError> {
    let node = a.first().and_then(Value::as_str).unwrap_or_default();
    let command = a.get(1).and_then(Value::as_str).unwrap_or_default();
    if !["add", "remove", "onetry"].contains(&command) {
        return Err(help_error("addnode"));
    }
    // Core: v2 asked of a node that does not speak it is an error; without the argument, the
    // node's own setting.
    let v2 = arg(a, 2).and_then(Value::as_bool).unwrap_or(c.v2transport);
    if command != "remove" && v2 && !c.v2transport {
        return Err(RpcError::invalid_param("Error: v2transport requested but not enabled (see -v2transport)"));
    }
    let spec = PeerSpec::parse(node, c.default_port).map_err(|e| RpcError::invalid_param(format!("Error: {e}")))?;
    let (tx, rx) = bounded(1);
    let cmd = match command {
        "add" => DialerCommand::Add(spec, v2, tx),
        "remove" => DialerCommand::Remove(spec, tx),
        _ => {
            c.dialer.send(DialerCommand::OneTry(spec, v2)).map_err(|_| warmup())?;
            return Ok(Value::Null);
        }
    };
    c.dialer.send(cmd).map_err(|_| warmup())?;
    match rx.recv_timeout(ANSWER_TIMEOUT).map_err(|_| warmup())? {
        true => Ok(Value::Null),
        false if command == "add" => Err(RpcError::new(code::CLIENT_NODE_ALREADY_ADDED, "Error: Node already added")),
        false => Err(RpcError::new(
            code::CLIENT_NODE_NOT_ADDED,
            "Error: Node could not be removed. It has not been added previously.",
        )),
    }
}

fn warmup() -> RpcError {
    RpcError::new(code::IN_WARMUP, "Node is shutting down")
}

fn getaddednodeinfo(c: &RpcContext, a: &[Value]) -> Result<Value, RpcError> {
    let (tx, rx) = bounded(1);
    c.dialer.send(DialerCommand::Info(tx)).map_err(|_| warmup())?;
    let mut nodes = rx.recv_timeout(ANSWER_TIMEOUT).map_err(|_| warmup())?;
    if let Some(name) = arg(a, 0).and_then(Value::as_str) {
        let wanted = PeerSpec::parse(name, c.default_port).ok();
        nodes.retain(|n| Some(&n.spec) == wanted.as_ref() || n.spec.to_string() == name);
        if nodes.is_empty() {
            return Err(RpcError::new(code::CLIENT_NODE_NOT_ADDED, "Error: Node has not been added."));
        }
    }
    Ok(Value::Array(
        nodes
            .into_iter()
            .map(|n| {
                let addresses: Vec<Value> = match (n.connected, n.addr) {
                    (true, Some(addr)) => vec![json!({"address": addr.to_string(), "connected": "outbound"})],
                    _ => Vec::new(),
                };
                json!({"addednode": n.spec.to_string(), "connected": n.connected, "addresses": addresses})
            })
            .collect(),
    ))
}

fn getnetworkinfo(c: &RpcContext, _: &[Value]) -> Result<Value, RpcError> {
    let counts = c.ask(Request::ConnectionCounts)?;
    // Reachable as Core says: IP always here, Tor with an onion proxy (`--onion` or `--proxy`),
    // I2P and CJDNS never (no SAM, no `-cjdnsreachable`).
    let networks: Vec<Value> = ["ipv4", "ipv6", "onion", "i2p", "cjdns"]
        .iter()
        .map(|n| {
            let proxy = match *n {
                "ipv4" | "ipv6" => c.proxy.for_ip(),
                "onion" => c.proxy.for_onion(),
                _ => None,
            };
            let reachable = matches!(*n, "ipv4" | "ipv6") || (*n == "onion" && proxy.is_some());
            json!({
                "name": n,
                "limited": !reachable,
                "reachable": reachable,
                "proxy": proxy.map_or_else(String::new, |p| p.to_string()),
                "proxy_randomize_credentials": proxy.is_some() && c.proxy.randomize,
            })
        })
        .collect();
    Ok(json!({
        "version": c.version_number,
        "subversion": c.user_agent,
        "protocolversion": crate::engine::protocol::handshake::PROTOCOL_VERSION,
        "localservices": "0000000000000000",
        "localservicesnames": [],
        "localrelay": false,
        "timeoffset": counts.time_offset,
        "networkactive": c.network_active.load(Ordering::Acquire),
        "connections": counts.total,
        "connections_in": counts.inbound,
        "connections_out": counts.outbound,
        "networks": networks,
        "relayfee": 0.00001,
        "incrementalfee": 0.00001,
        "localaddresses": render::local_addresses(&counts.local_addresses),
        "warnings": [],
    }))
}

fn setban(c: &RpcContext, a: &[Value]) -> Result<Value, RpcError> {
    let subnet = a.first().and_then(Value::as_str).unwrap_or_default();
    let command = a.get(1).and_then(Value::as_str).unwrap_or_default();
    if command != "add" && command != "remove" {
        return Err(help_error("setban"));
    }
    let net: Subnet =
        subnet.parse().map_err(|_| RpcError::new(code::CLIENT_INVALID_IP_OR_SUBNET, "Error: Invalid IP/Subnet"))?;
    let now = unix_now();
    let io = |e: crate::engine::policy::banman::BanListError| RpcError::new(code::MISC_ERROR, e.to_string());
    if command == "remove" {
        if !c.banman.unban(&net, now).map_err(io)? {
            return Err(RpcError::new(
                code::CLIENT_INVALID_IP_OR_SUBNET,
                "Error: Unban failed. Requested address/subnet was not previously manually banned.",
            ));
        }
        return Ok(Value::Null);
    }
    let already =
        if subnet.contains('/') { c.banman.is_banned_exactly(&net, now) } else { c.banman.is_banned(net.base(), now) };
    if already {
        return Err(RpcError::new(code::CLIENT_NODE_ALREADY_ADDED, "Error: IP/Subnet already banned"));
    }
    let bantime = arg(a, 2).map(|v| int(Some(v))).transpose()?.unwrap_or(0);
    let absolute = arg(a, 3).and_then(Value::as_bool).unwrap_or(false);
    if absolute && bantime < now {
        return Err(RpcError::invalid_param("Error: Absolute timestamp is in the past"));
    }
    let until = match (bantime <= 0, absolute) {
        (true, _) => now.saturating_add(c.ban_time_secs),
        (false, true) => bantime,
        (false, false) => now.saturating_add(bantime),
    };
    c.banman.ban(net, now, until).map_err(io)?;
    c.ask(|r| Request::DisconnectBanned(net, r))?;
    Ok(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_has_help_starting_with_its_name_and_unique_names() {
        for m in METHODS {
            assert!(m.help.starts_with(m.name), "{}", m.name);
            assert_eq!(METHODS.iter().filter(|n| n.name == m.name).count(), 1);
        }
        let all = help(None);
        assert!(all.starts_with("== Blockchain ==\ngetbestblockhash"), "{all}");
        assert!(all.contains("== Network ==") && all.contains("setban \"subnet\" \"command\" ( bantime absolute )"));
        assert!(help(Some("getblockhash")).contains("The height index"));
        assert!(help(Some("getblock")).starts_with("getblock \"blockhash\" ( verbosity )"));
        assert_eq!(help(Some("getblocks")), "help: unknown command: getblocks");
    }

    #[test]
    fn verbosity_parses_like_core() {
        assert_eq!(verbosity(None), Ok(1));
        assert_eq!(verbosity(Some(&json!(true))), Ok(1));
        assert_eq!(verbosity(Some(&json!(false))), Ok(0));
        assert_eq!(verbosity(Some(&json!(3))), Ok(3));
        assert_eq!(verbosity(Some(&json!(1.5))).unwrap_err().message, "JSON integer out of range");
        assert_eq!(verbosity(Some(&json!(1u64 << 40))).unwrap_err().message, "JSON integer out of range");
        let e = verbosity(Some(&json!("1"))).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (code::MISC_ERROR, "JSON value of type string is not of expected type number")
        );
    }

    #[test]
    fn hashes_parse_like_core() {
        let e = parse_hash(Some(&json!("abc")), "blockhash").unwrap_err();
        assert_eq!(e.message, "blockhash must be of length 64 (not 3, for 'abc')");
        let e = parse_hash(Some(&json!("z".repeat(64))), "blockhash").unwrap_err();
        assert!(e.message.starts_with("blockhash must be hexadecimal string"), "{e:?}");
        assert!(parse_hash(Some(&json!("00".repeat(32))), "blockhash").is_ok());
    }
}
