//! What crosses from the RPC and metrics threads to the message handler, which answers from
//! the state it owns (peers, chain, counters): a [`Query`] with a reply channel, posted as a
//! [`crate::daemon::net::wake::NetEvent::Inspect`] so the handler wakes for it.

use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::BlockHash;
use crossbeam_channel::Sender;
use serde_json::Value;

use crate::base::counters::Dimension;
use crate::daemon::net::wake::{MsgWake, NetEvent};
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

/// A question for the message handler.
#[derive(Clone, Debug)]
pub enum Query {
    /// `getpeerinfo`.
    PeerInfo,
    /// Connection counts for `getnetworkinfo` / `getconnectioncount`.
    ConnectionCounts,
    /// `ping`: ping every peer at its next `SendMessages`.
    PingAll,
    /// `disconnectnode` by address or id.
    Disconnect {
        /// Address (`IP:PORT`) of the peer.
        addr: Option<SocketAddr>,
        /// Id of the peer.
        id: Option<u64>,
    },
    /// Drop every connection from a newly banned subnet (`setban add`).
    DisconnectBanned(Subnet),
    /// `getblockchaininfo`.
    BlockchainInfo,
    /// `getblockhash HEIGHT`.
    BlockHash(i64),
    /// `getblockheader HASH VERBOSE`.
    BlockHeader {
        /// The header's hash.
        hash: BlockHash,
        /// JSON object (true) or hex (false).
        verbose: bool,
    },
    /// `getchaintips`.
    ChainTips,
    /// `getnetmsgstats`.
    NetMsgStats(Vec<Dimension>),
    /// `getdisconnects`.
    Disconnects(usize),
    /// Everything `/metrics` shows.
    Metrics,
    /// `getnodeaddresses`: up to `count` (0: all) good addresses, of one network or all.
    NodeAddresses {
        /// How many at most.
        count: usize,
        /// Only this network (Core's name).
        network: Option<String>,
    },
    /// `getaddrmaninfo`.
    AddrManInfo,
}

/// The handler's answer.
pub type Answer = Result<Value, RpcError>;

/// A query and where its answer goes.
#[derive(Debug)]
pub struct Request {
    /// The question.
    pub query: Query,
    /// Where to answer (a bounded channel of one).
    pub reply: Sender<Answer>,
}

/// How long an RPC thread waits for the message handler before giving up.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Posts `query` to the message handler and waits (at most [`ANSWER_TIMEOUT`]) for its answer.
pub fn ask(wake: &MsgWake, query: Query) -> Answer {
    let (reply, answer) = crossbeam_channel::bounded(1);
    wake.post_event(NetEvent::Inspect(Box::new(Request { query, reply })));
    answer
        .recv_timeout(ANSWER_TIMEOUT)
        .map_err(|_| RpcError::new(code::IN_WARMUP, "the message handler did not answer (shutting down?)"))?
}
