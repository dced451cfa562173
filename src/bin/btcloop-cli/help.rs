//! The texts of `btcloop-cli -help`, `-version` and `-netinfo help`, laid out as bitcoin-cli's.

use btcloop::base::chainparams::Network;

use crate::netinfo::MAX_LEVEL;

/// First line of `-help` and `-version`.
pub fn version_line() -> String {
    format!("btcloop RPC client version v{}\n", env!("CARGO_PKG_VERSION"))
}

/// `-version`.
pub fn version() -> String {
    version_line() + "\nThis is free software, distributed under the MIT software license.\n"
}

/// `-help`.
pub fn usage() -> String {
    let ports = Network::ALL.map(|n| format!("{}: {}", n.name(), n.default_rpc_port())).join(", ");
    let options: &[(&str, String)] = &[
        ("?, -h, -help", "Show this text and exit".into()),
        ("version", "Show the version and exit".into()),
        ("datadir=<dir>", "btcloopd's data directory (default: ~/.btcloop)".into()),
        ("named", "Arguments are name=value pairs instead of positional values".into()),
        ("rpcclienttimeout=<n>", "Seconds an HTTP request may take, 0 for no limit (default: 900)".into()),
        ("rpcconnect=<ip>[:<port>]", "Address of the btcloopd RPC server (default: 127.0.0.1)".into()),
        (
            "rpccookiefile=<loc>",
            "Cookie file; relative paths are under the network's data directory (default: .cookie)".into(),
        ),
        ("rpcid=<id>", "JSON-RPC request id (default: 1)".into()),
        ("rpcpassword=<pw>", "RPC password (without it, the cookie file is used)".into()),
        ("rpcport=<port>", format!("RPC port (default: {ports})")),
        ("rpcuser=<user>", "RPC user name".into()),
        ("rpcwait", "Keep trying until the RPC server is up and out of warmup".into()),
        ("rpcwaittimeout=<n>", "Give up -rpcwait after this many seconds, 0 for never (default: 0)".into()),
        ("stdin", "Append arguments read from standard input, one per line, until end of file".into()),
        (
            "color=<when>",
            "Colours in the -getinfo output: always, auto (when stdout is a terminal) or never (default: auto)".into(),
        ),
        ("chain=<chain>", "Network: main, test, testnet4, signet or regtest (default: main)".into()),
        ("regtest, -signet, -testnet, -testnet4", "Short for -chain=regtest, signet, test, testnet4".into()),
        ("getinfo", "Summary of the node, from several RPC calls".into()),
        ("addrinfo", "Number of addresses the node knows, per network".into()),
        (
            "netinfo [level [outonly]]",
            format!("Peer connections dashboard, levels 0 to {MAX_LEVEL}; \"-netinfo help\" explains it"),
        ),
    ];
    let mut s = version_line();
    s += "\nbtcloop-cli sends commands to btcloopd's JSON-RPC server, with bitcoin-cli's conventions.\n\
          \"help\" lists the server's commands; \"help <command>\" explains one.\n\n\
          Usage: btcloop-cli [options] <command> [params]\n\
          or:    btcloop-cli [options] -named <command> [name=value]...\n\
          or:    btcloop-cli [options] -netinfo [level [outonly]]\n\
          or:    btcloop-cli decode-capture <path>...   (message captures as JSON lines)\n\n\
          Options (before the command; -name or --name, values as -name=value):\n\n";
    for (name, text) in options {
        s += &format!("  -{name}\n       {text}\n\n");
    }
    s
}

/// `-netinfo help`.
pub fn netinfo() -> String {
    let m = MAX_LEVEL;
    format!(
        "-netinfo [level [outonly]] | help

A dashboard of the node's peer connections, built from getpeerinfo and getnetworkinfo.
Its layout follows bitcoin-cli's and may change; do not parse it.

Arguments:
1. level    0 to {m} (larger values up to 255 count as {m}; default 0)
            0 - peer counts per reachable network, block-relay and manual peers, local services and addresses
            1 - the same, after a listing of the peers without address and version
            2 - level 1 with an address column
            3 - level 1 with a version column
            4 - level 1 with both
2. outonly  \"outonly\" or \"o\": list outbound peers only (needs a level above 0)
help        \"help\" or \"h\": show this text

Peers listing (inbound first, then by minimum ping):
  <->      in: the peer connected to us; out: we connected to it
  type     full (full relay), block (block relay only), manual (addnode/-connect), feeler, addr (address fetch),
           priv (private broadcast)
  net      ipv4, ipv6, onion, i2p, cjdns, or npr (not publicly routable)
  serv     the peer's services: n network, b bloom, w witness, c compact filters, l network limited,
           2 P2P v2 transport, u unknown
  v        transport protocol version
  mping    lowest ping seen, ms
  ping     last ping, ms
  send     seconds since we last sent to the peer
  recv     seconds since we last received from it
  txn      minutes since its last new transaction; \"*\": we do not relay transactions to it
  blk      minutes since its last new block
  hb       BIP152 high-bandwidth compact blocks: \".\" we chose the peer, \"*\" the peer chose us
  addrp    addresses processed from the peer; \".\": we do not relay addresses to it
  addrl    addresses dropped by rate limiting
  age      minutes connected
  asmap    the peer's AS number (only when the node uses an asmap)
  id       peer id
  address  the peer's address and port
  version  protocol version and user agent

Examples:
> btcloop-cli -netinfo
> btcloop-cli -netinfo 1
> btcloop-cli -netinfo {m} outonly
> watch --interval 1 --no-title btcloop-cli -netinfo {m}
"
    )
}
