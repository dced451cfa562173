//! btcloop: a Bitcoin P2P network node built on Bitcoin Core's two-loop design — a
//! socket-handler thread and a message-handler thread joined by per-peer queues.
//!
//! The crate is three layers; each imports only from the layers below it (checked by
//! `tests/layers.rs`):
//!
//! - [`base`] — shared vocabulary: peer ids, connection types, disconnect reasons, addresses,
//!   message types, the wire codec, counters, time and file helpers.
//! - [`engine`] — the I/O-free node: the per-peer protocol, the chain, the address book,
//!   connection policy and the peer manager that ties them together. It takes events and the
//!   time and says what to send, whom to disconnect and whom to dial.
//! - [`daemon`] — the threads that own sockets, clocks, channels and files, driving the
//!   engine with real time; and [`sim`], which drives the same engine with fake time over an
//!   in-memory network.

pub mod base;
pub mod daemon;
pub mod engine;
pub mod sim;
