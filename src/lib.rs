//! btcloop: a Bitcoin P2P network node built on Bitcoin Core's two-loop design — a
//! socket-handler thread and a message-handler thread joined by per-peer queues.

pub mod addrman;
pub mod capture;
pub mod chain;
pub mod chainparams;
pub mod conffile;
pub mod config;
pub mod counters;
pub mod http;
pub mod inspect;
pub mod logging;
pub mod metrics;
pub mod msg_handler;
pub mod net;
pub mod node;
pub mod panics;
pub mod protocol;
pub mod rpc;
pub mod sim;
pub mod sys;
pub mod time;
