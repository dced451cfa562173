//! What crosses from the RPC and metrics threads to the message handler, which answers from
//! the state it owns (peers, chain, counters): a [`Request`] that carries a [`Reply`] of its
//! own answer type (plain structs of [`crate::daemon::snapshot`]), posted as a
//! `NetEvent::Inspect` so the handler wakes for it. Asking for the wrong type does not compile;
//! no JSON crosses the thread (the RPC renders it, metrics renders Prometheus text).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::BlockHash;
use crossbeam_channel::{Sender, bounded};

use crate::base::counters::{DisconnectRecord, MsgCell};
use crate::daemon::snapshot::{
    AddrManCounts, BlockchainInfo, ChainTip, ConnectionCounts, HeaderInfo, MetricsSnapshot, NodeAddress, PeerSnapshot,
};
use crate::engine::addrman::AddrNetwork;
use crate::engine::policy::banman::Subnet;

/// Core's RPC error codes (`rpc/protocol.h`) that btcloopd uses.
pub mod code {
    /// Standard JSON-RPC 2.0: invalid request object.
    pub const INVALID_REQUEST: i32 = -32600;
    /// Standard JSON-RPC 2.0: method not found.
    pub const METHOD_NOT_FOUND: i32 = -32601;
    /// Standard JSON-RPC 2.0: invalid method parameters.
    pub const INVALID_PARAMS: i32 = -32602;
    /// Standard JSON-RPC 2.0: parse error.
    pub const PARSE_ERROR: i32 = -32700;
    /// Error parsing or validating structure in raw format.
    pub const DESERIALIZATION_ERROR: i32 = -22;
    /// Error during block validation (or the node does not validate).
    pub const VERIFY_ERROR: i32 = -25;
    /// Generic error (also the help text on a wrong number of arguments).
    pub const MISC_ERROR: i32 = -1;
    /// Unexpected type passed as parameter.
    pub const TYPE_ERROR: i32 = -3;
    /// Invalid address or key (block not found).
    pub const INVALID_ADDRESS_OR_KEY: i32 = -5;
    /// Invalid, missing or duplicate parameter.
    pub const INVALID_PARAMETER: i32 = -8;
    /// The node is still starting or stopping.
    pub const IN_WARMUP: i32 = -28;
    /// Node is already added (or address already banned).
    pub const CLIENT_NODE_ALREADY_ADDED: i32 = -23;
    /// Node has not been added before.
    pub const CLIENT_NODE_NOT_ADDED: i32 = -24;
    /// Node to disconnect not found in connected nodes.
    pub const CLIENT_NODE_NOT_CONNECTED: i32 = -29;
    /// Invalid IP/Subnet.
    pub const CLIENT_INVALID_IP_OR_SUBNET: i32 = -30;
    /// No valid connection manager instance found (P2P disabled).
    pub const CLIENT_P2P_DISABLED: i32 = -31;
}

/// A JSON-RPC error: Core's code and message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct RpcError {
    /// Core's error code.
    pub code: i32,
    /// The message.
    pub message: String,
}

impl RpcError {
    /// An error with `code`.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into() }
    }

    /// `RPC_INVALID_PARAMETER`.
    pub fn invalid_param(message: impl Into<String>) -> Self {
        RpcError::new(code::INVALID_PARAMETER, message)
    }
}

/// Where one answer of type `T` goes: a bounded channel of one, which the asker reads.
pub struct Reply<T>(Sender<Result<T, RpcError>>);

impl<T> Reply<T> {
    /// Sends the answer. The asker may have timed out and gone; nothing to do then.
    pub fn send(self, answer: Result<T, RpcError>) {
        let _ = self.0.send(answer);
    }
}

impl<T> fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reply")
    }
}

/// Which peer `disconnectnode` means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRef {
    /// By address (`IP:PORT`).
    Addr(SocketAddr),
    /// By id; `None` when the id given is not one any peer can have (negative).
    Id(Option<u64>),
}

/// A question for the message handler, with the channel its answer goes to.
#[derive(Debug)]
pub enum Request {
    /// `getpeerinfo` (and `/metrics`' peers): every connected peer.
    PeerInfo(Reply<Vec<PeerSnapshot>>),
    /// Connection counts and local addresses for `getnetworkinfo` / `getconnectioncount`.
    ConnectionCounts(Reply<ConnectionCounts>),
    /// `ping`: ping every peer at its next `SendMessages`.
    PingAll(Reply<()>),
    /// `disconnectnode` by address or id.
    Disconnect(PeerRef, Reply<()>),
    /// Drop every connection from a newly banned subnet (`setban add`).
    DisconnectBanned(Subnet, Reply<()>),
    /// `getblockchaininfo` (also `getbestblockhash`, `getblockcount`).
    BlockchainInfo(Reply<BlockchainInfo>),
    /// `getblockhash HEIGHT`: on the active chain.
    BlockHash(i64, Reply<BlockHash>),
    /// `getblockheader HASH` and `getblock HASH`: the header, where it sits on the active
    /// chain and whether its block is stored (the block itself comes from the validation
    /// thread).
    BlockHeader(BlockHash, Reply<HeaderInfo>),
    /// `getchaintips`.
    ChainTips(Reply<Vec<ChainTip>>),
    /// `getnetmsgstats`: every non-empty counter cell (the RPC aggregates them).
    NetMsgStats(Reply<Vec<MsgCell>>),
    /// `getdisconnects`: up to this many, newest first.
    Disconnects(usize, Reply<Vec<DisconnectRecord>>),
    /// Everything `/metrics` shows.
    Metrics(Reply<MetricsSnapshot>),
    /// `getnodeaddresses`: up to `count` (0: all) good addresses, of one network or all.
    NodeAddresses {
        /// How many at most.
        count: usize,
        /// Only this network.
        network: Option<AddrNetwork>,
        /// Where the answer goes.
        reply: Reply<Vec<NodeAddress>>,
    },
    /// `getaddrmaninfo`.
    AddrManInfo(Reply<Vec<AddrManCounts>>),
    /// `submitblock`: a serialized block; the answer is Core's (`None`: accepted, else the
    /// reason it was not), given once the validation thread has judged it.
    SubmitBlock(Vec<u8>, Reply<Option<String>>),
}

/// How long an RPC thread waits for the message handler before giving up.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the request `make` makes around a fresh reply channel, hands it to `post` (which
/// delivers it to the message handler) and waits at most [`ANSWER_TIMEOUT`] for the answer.
/// `make` is usually a variant: `ask_with(post, Request::PeerInfo)`. The answer's type is the
/// request's:
///
/// ```
/// use btcloop::daemon::inspect::{Request, RpcError, ask_with};
/// use btcloop::daemon::snapshot::ChainTip;
/// // (Dropped unanswered here, so it is an error; the type is what matters.)
/// let tips: Result<Vec<ChainTip>, RpcError> = ask_with(drop, Request::ChainTips);
/// assert!(tips.is_err());
/// ```
///
/// and asking for another type does not compile:
///
/// ```compile_fail,E0308
/// use btcloop::daemon::inspect::{Request, RpcError, ask_with};
/// use btcloop::daemon::snapshot::PeerSnapshot;
/// let peers: Result<Vec<PeerSnapshot>, RpcError> = ask_with(drop, Request::ChainTips);
/// ```
pub fn ask_with<T>(post: impl FnOnce(Request), make: impl FnOnce(Reply<T>) -> Request) -> Result<T, RpcError> {
    let (tx, rx) = bounded(1);
    post(make(Reply(tx)));
    rx.recv_timeout(ANSWER_TIMEOUT)
        .map_err(|_| RpcError::new(code::IN_WARMUP, "the message handler did not answer (shutting down?)"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_comes_back_typed() {
        let got = ask_with(
            |req| match req {
                Request::BlockHash(h, reply) => {
                    assert_eq!(h, 7);
                    reply.send(Err(RpcError::invalid_param("Block height out of range")));
                }
                other => panic!("wrong request {other:?}"),
            },
            |r| Request::BlockHash(7, r),
        );
        assert_eq!(got, Err(RpcError::new(code::INVALID_PARAMETER, "Block height out of range")));
        let got = ask_with(
            |req| match req {
                Request::PingAll(reply) => reply.send(Ok(())),
                other => panic!("wrong request {other:?}"),
            },
            Request::PingAll,
        );
        assert_eq!(got, Ok(()));
    }

    /// Every `.rs` file under `dir`.
    fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn no_json_is_built_below_the_rpc() {
        // Answers cross as typed snapshots: the handler, this module, the vocabulary and the
        // engine make no JSON (banman's banlist.json is a file format, not an answer).
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![src.join("daemon/inspect.rs"), src.join("daemon/snapshot.rs")];
        for dir in ["base", "engine", "daemon/msg_handler"] {
            sources(&src.join(dir), &mut files);
        }
        assert!(files.len() > 20, "found only {files:?}");
        let needle = ["serde", "_json"].concat();
        let offenders: Vec<String> = files
            .iter()
            .filter(|f| !f.ends_with("engine/policy/banman.rs"))
            .filter(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains(&needle)))
            .map(|f| f.display().to_string())
            .collect();
        assert!(offenders.is_empty(), "JSON built outside rpc/: {offenders:?}");
    }

    #[test]
    fn a_request_dropped_unanswered_is_an_error_not_a_hang() {
        // The handler dropped the request (shutting down): the asker learns at once.
        let got = ask_with(drop, Request::ChainTips);
        assert_eq!(got.map(|v| v.len()).map_err(|e| e.code), Err(code::IN_WARMUP));
    }
}
