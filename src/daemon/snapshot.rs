//! The plain structs the message handler answers [`crate::daemon::inspect::Request`]s with:
//! copies of its peer, chain, address-book and counter state, with times already as the RPC
//! shows them (Unix seconds). JSON is rendered from them only in `rpc/render.rs`, Prometheus
//! text only in `metrics.rs`, so a renamed field is a compile error there, not a silent zero.

use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::p2p::ServiceFlags;
use bitcoin::pow::{Target, Work};
use bitcoin::{BlockHash, CompactTarget};

use crate::base::counters::MsgCell;
use crate::base::netaddr::NetKind;
use crate::base::netgroup::AddrNetwork;
use crate::base::peer::{ConnectionType, PeerId};
use crate::engine::addrman::{AddrEntry, NetCounts};
use crate::engine::policy::local::LocalInfo;

/// One connected peer: everything `getpeerinfo` and `/metrics` show.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerSnapshot {
    /// Our id for it.
    pub id: PeerId,
    /// Its address.
    pub addr: SocketAddr,
    /// The name it was dialed by through a proxy (an onion address), shown instead of `addr`.
    pub addr_name: Option<String>,
    /// Our end of the connection, when known.
    pub addr_bind: Option<SocketAddr>,
    /// Our address as it saw it (its `version`), if it told.
    pub addr_local: Option<SocketAddr>,
    /// Its network.
    pub network: NetKind,
    /// The services it announced (none before its `version`).
    pub services: ServiceFlags,
    /// Whether it wants transactions relayed.
    pub relay_txes: bool,
    /// When we last sent to it (Unix seconds; 0: never).
    pub last_send: i64,
    /// When we last received from it (Unix seconds; 0: never).
    pub last_recv: i64,
    /// When its headers last moved our best chain forward (Unix seconds; 0: never).
    pub last_block: i64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_recv: u64,
    /// When it connected (Unix seconds).
    pub conn_time: i64,
    /// Its clock minus ours, from its `version` (seconds).
    pub time_offset: i64,
    /// Last ping round trip.
    pub ping_time: Option<Duration>,
    /// Smallest ping round trip.
    pub min_ping: Option<Duration>,
    /// How long the ping in flight has waited.
    pub ping_wait: Option<Duration>,
    /// Its protocol version (0 before its `version`).
    pub version: i32,
    /// Its user agent, sanitized.
    pub subver: String,
    /// Why the connection exists (also says whether it is inbound).
    pub conn_type: ConnectionType,
    /// The height it announced (-1 before its `version`).
    pub starting_height: i32,
    /// Height its low-work presync reached (-1: none).
    pub presynced_headers: i64,
    /// Height of the best header we know it has (-1: none).
    pub synced_headers: i64,
    /// Height of the last block we and it both have (Core's `pindexLastCommonBlock`; -1: none).
    pub synced_blocks: i64,
    /// Heights of the blocks in flight from it (Core's `vBlocksInFlight`), in request order.
    pub inflight: Vec<u32>,
    /// Whether we relay addresses to it.
    pub addr_relay_enabled: bool,
    /// Addresses it sent that we processed.
    pub addr_processed: u64,
    /// Addresses it sent that the rate limit dropped.
    pub addr_rate_limited: u64,
    /// Its `--whitelist` permissions by Core's names.
    pub permissions: Vec<&'static str>,
    /// Its transport as Core names it: `v1`, `v2` or `detecting`.
    pub transport: &'static str,
    /// The BIP324 session id, hex; empty for v1.
    pub session_id: String,
    /// Bytes sent per message type, by name, zeroes left out.
    pub bytes_sent_per_msg: Vec<(&'static str, u64)>,
    /// Bytes received per message type, by name, zeroes left out.
    pub bytes_recv_per_msg: Vec<(&'static str, u64)>,
    /// Bytes waiting in its send queue.
    pub send_queue_bytes: u64,
    /// Bytes waiting in its process queue.
    pub recv_queue_bytes: u64,
    /// Messages dropped for a bad checksum or type.
    pub msgs_rejected: u64,
    /// Messages whose payload failed to decode.
    pub msgs_undecodable: u64,
    /// Times reading it was paused by a full process queue.
    pub pause_recv_events: u64,
    /// Times processing it was paused by a full send queue.
    pub pause_send_events: u64,
}

/// Connection counts and our own addresses (`getnetworkinfo`, `getconnectioncount`).
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionCounts {
    /// Every connection.
    pub total: usize,
    /// Inbound ones.
    pub inbound: usize,
    /// Outbound ones.
    pub outbound: usize,
    /// Core's `timeoffset`: the median clock offset of the outbound peers (seconds).
    pub time_offset: i64,
    /// Our addresses in text form with their live scores, in Core's order (the IP ones, then
    /// our onion service's while it lasts).
    pub local_addresses: Vec<(String, LocalInfo)>,
}

/// The validated chain (`getblockchaininfo`).
#[derive(Clone, Debug, PartialEq)]
pub struct BlockchainInfo {
    /// The chain's name as Core's `-chain` takes it.
    pub chain: &'static str,
    /// Height of the tip: the last validated block.
    pub height: u32,
    /// Height of the best header.
    pub headers: u32,
    /// Hash of the tip.
    pub best_hash: BlockHash,
    /// Its compact target.
    pub bits: CompactTarget,
    /// The target its bits encode (none if they do not encode a valid one).
    pub target: Option<Target>,
    /// Its timestamp.
    pub time: u32,
    /// Its median time past.
    pub median_time: u32,
    /// Share of the chain's history covered, by header time.
    pub verification_progress: f64,
    /// Whether the node is in initial download.
    pub initial_block_download: bool,
    /// Total work of the best chain.
    pub chain_work: Work,
    /// Bytes of blocks, undo data and headers on disk.
    pub size_on_disk: u64,
}

/// One header and where it sits (`getblockheader`, and the block-level facts of `getblock`).
#[derive(Clone, Debug, PartialEq)]
pub struct HeaderInfo {
    /// Its hash.
    pub hash: BlockHash,
    /// The header itself.
    pub header: Header,
    /// Its height.
    pub height: u32,
    /// Blocks on the active chain from it to the tip, itself included (-1 off the active chain).
    pub confirmations: i64,
    /// Its median time past.
    pub median_time: u32,
    /// The target its bits encode (none if they do not encode a valid one).
    pub target: Option<Target>,
    /// Total work of the chain up to it.
    pub chain_work: Work,
    /// The next block on the active chain, if it is on it and not the tip.
    pub next: Option<BlockHash>,
    /// Whether the block is stored (Core's `BLOCK_HAVE_DATA`): `getblock` can read it.
    pub have_data: bool,
    /// Whether the block was connected once (so its undo data, the outputs it spent, exist).
    pub connected: bool,
    /// Whether the block itself was found invalid (Core's `BLOCK_FAILED_VALID`): the engine
    /// does not mark it stored, but the kernel keeps a block that failed to connect.
    pub invalid: bool,
}

/// One header without children (`getchaintips`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainTip {
    /// Its height.
    pub height: u32,
    /// Its hash.
    pub hash: BlockHash,
    /// Blocks from the fork point with the active chain to it.
    pub branch_len: u32,
    /// What is known of its branch.
    pub status: TipStatus,
}

/// Core's `getchaintips` status of a tip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TipStatus {
    /// The active chain's tip.
    Active,
    /// It or an ancestor is invalid.
    Invalid,
    /// Some block of its branch is not stored.
    HeadersOnly,
    /// Fully validated once, no longer on the active chain.
    ValidFork,
    /// Stored but never validated (never part of the most-work chain).
    ValidHeaders,
}

impl TipStatus {
    /// Core's name.
    pub fn name(self) -> &'static str {
        match self {
            TipStatus::Active => "active",
            TipStatus::Invalid => "invalid",
            TipStatus::HeadersOnly => "headers-only",
            TipStatus::ValidFork => "valid-fork",
            TipStatus::ValidHeaders => "valid-headers",
        }
    }
}

/// One address from the address book (`getnodeaddresses`).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeAddress {
    /// The entry: address, port, services, last seen.
    pub entry: AddrEntry,
    /// Its network class (Core's `GetNetClass`).
    pub network: AddrNetwork,
}

/// The address book's counts for one network, or `all_networks` (`getaddrmaninfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrManCounts {
    /// Core's network name.
    pub network: &'static str,
    /// In the new and tried tables.
    pub counts: NetCounts,
}

/// Everything `/metrics` shows from the message handler, gathered in one pass.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsSnapshot {
    /// Every connected peer.
    pub peers: Vec<PeerSnapshot>,
    /// Every non-empty message counter cell.
    pub messages: Vec<MsgCell>,
    /// Closed connections by reason code, sorted by code.
    pub disconnects: Vec<(&'static str, u64)>,
    /// Receive pauses of connections already closed.
    pub closed_pause_recv: u64,
    /// Send pauses of connections already closed.
    pub closed_pause_send: u64,
    /// Height of the best header.
    pub header_height: u32,
    /// Timestamp of the best header.
    pub header_time: u32,
    /// Headers held, all branches.
    pub headers_in_tree: usize,
    /// Highest height a low-work presync reached, if any runs.
    pub presync_height: Option<u32>,
    /// Share of the chain's history the best header covers, by time.
    pub sync_progress: f64,
    /// Height of the active chain's tip (the last validated block).
    pub block_height: u32,
    /// Blocks the validation thread stored and connected since start.
    pub blocks_validated: u64,
    /// Blocks it refused as invalid since start.
    pub blocks_refused: u64,
    /// Blocks requested from peers and not yet received.
    pub blocks_in_flight: usize,
    /// Peers dropped for stalling the block download since start.
    pub block_stalls: u64,
    /// Bytes of `block` messages received since start.
    pub block_bytes: u64,
    /// Core's verification progress of the tip, 0–1.
    pub verification_progress: f64,
    /// Bytes of blocks, undo data, chainstate and headers on disk.
    pub size_on_disk: u64,
}

/// A peer for tests: an inbound IPv4 peer after its `version`, with every field set to a value
/// of its own so a test can tell them apart.
#[cfg(test)]
pub(crate) fn test_peer() -> PeerSnapshot {
    PeerSnapshot {
        id: 7,
        addr: SocketAddr::from(([1, 2, 3, 4], 8333)),
        addr_name: None,
        addr_bind: Some(SocketAddr::from(([10, 0, 0, 1], 18444))),
        addr_local: None,
        network: NetKind::Ipv4,
        services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
        relay_txes: true,
        last_send: 1_700_000_010,
        last_recv: 1_700_000_011,
        last_block: 1_700_000_005,
        bytes_sent: 1_000,
        bytes_recv: 2_000,
        conn_time: 1_700_000_000,
        time_offset: -3,
        ping_time: Some(Duration::from_millis(250)),
        min_ping: Some(Duration::from_millis(125)),
        ping_wait: None,
        version: 70016,
        subver: "/Satoshi:27.0.0/".into(),
        conn_type: ConnectionType::Inbound,
        starting_height: 120,
        presynced_headers: -1,
        synced_headers: 119,
        synced_blocks: 117,
        inflight: vec![118, 119],
        addr_relay_enabled: true,
        addr_processed: 12,
        addr_rate_limited: 2,
        permissions: vec!["noban"],
        transport: "v1",
        session_id: String::new(),
        bytes_sent_per_msg: vec![("ping", 64), ("version", 126)],
        bytes_recv_per_msg: vec![("*other*", 30)],
        send_queue_bytes: 10,
        recv_queue_bytes: 3,
        msgs_rejected: 4,
        msgs_undecodable: 5,
        pause_recv_events: 1,
        pause_send_events: 0,
    }
}
