//! Node-wide network counters (Core's `nTotalBytesSent`/`nTotalBytesRecv` and friends), updated
//! by both threads with relaxed atomics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Totals across all connections since start.
#[derive(Debug, Default)]
pub struct NetTotals {
    /// Bytes written to peers.
    pub bytes_sent: AtomicU64,
    /// Bytes read from peers.
    pub bytes_recv: AtomicU64,
    /// Messages dropped for a bad checksum or malformed type.
    pub msgs_rejected: AtomicU64,
    /// Messages whose payload failed to decode.
    pub msgs_undecodable: AtomicU64,
    /// Inbound connections accepted.
    pub inbound_accepted: AtomicU64,
    /// Inbound connections refused because the node was full.
    pub inbound_refused: AtomicU64,
}

impl NetTotals {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
