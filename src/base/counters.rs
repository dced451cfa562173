//! Traffic and connection counters, owned by the message handler: messages and bytes per
//! message type for each peer (`getpeerinfo`'s `bytessent_per_msg`) and node-wide by direction,
//! network, connection type and message type (`getnetmsgstats`, Core #26337), disconnects by
//! reason, and a bounded ring of recent disconnects (`getdisconnects`). Plain data: the RPC
//! renders it as JSON, the metrics server as Prometheus text.

use std::collections::VecDeque;

use crate::base::netaddr::NetKind;
use crate::base::peer::ConnectionType;

/// Core's `ALL_NET_MESSAGE_TYPES`: the types counted by name; any other is `*other*`.
pub const MSG_TYPES: [&str; 36] = [
    "version",
    "verack",
    "addr",
    "addrv2",
    "sendaddrv2",
    "inv",
    "getdata",
    "merkleblock",
    "getblocks",
    "getheaders",
    "tx",
    "headers",
    "block",
    "getaddr",
    "mempool",
    "ping",
    "pong",
    "notfound",
    "filterload",
    "filteradd",
    "filterclear",
    "sendheaders",
    "feefilter",
    "sendcmpct",
    "cmpctblock",
    "getblocktxn",
    "blocktxn",
    "getcfilters",
    "cfilter",
    "getcfheaders",
    "cfheaders",
    "getcfcheckpt",
    "cfcheckpt",
    "wtxidrelay",
    "sendtxrcncl",
    "feature",
];
/// Core's `NET_MESSAGE_TYPE_OTHER`.
pub const OTHER: &str = "*other*";
/// Index of `*other*`.
const OTHER_INDEX: u8 = MSG_TYPES.len() as u8;
const N_TYPES: usize = MSG_TYPES.len() + 1;
const N_CONN: usize = 6;
const N_NET: usize = NetKind::ALL.len();

/// A message type as a small index (`*other*` for unknown types, so a peer cannot grow maps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MsgType(u8);

impl MsgType {
    /// The index of `command`.
    pub fn of(command: &str) -> MsgType {
        MsgType(MSG_TYPES.iter().position(|t| *t == command).map_or(OTHER_INDEX, |i| i as u8))
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        MSG_TYPES.get(usize::from(self.0)).copied().unwrap_or(OTHER)
    }
}

/// Which way a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// We sent it.
    Sent,
    /// We received it.
    Received,
}

impl Direction {
    /// `sent` or `received`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Sent => "sent",
            Direction::Received => "received",
        }
    }
}

fn conn_index(c: ConnectionType) -> usize {
    match c {
        ConnectionType::Inbound => 0,
        ConnectionType::OutboundFullRelay => 1,
        ConnectionType::Manual => 2,
        ConnectionType::Feeler => 3,
        ConnectionType::BlockRelayOnly => 4,
        ConnectionType::AddrFetch => 5,
    }
}

const CONN_TYPES: [ConnectionType; N_CONN] = [
    ConnectionType::Inbound,
    ConnectionType::OutboundFullRelay,
    ConnectionType::Manual,
    ConnectionType::Feeler,
    ConnectionType::BlockRelayOnly,
    ConnectionType::AddrFetch,
];

/// Messages and bytes (frame header included, as Core counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    /// Messages.
    pub message_count: u64,
    /// Bytes, headers included.
    pub byte_count: u64,
}

impl Count {
    fn add(&mut self, bytes: u64) {
        self.message_count += 1;
        self.byte_count += bytes;
    }
}

/// One peer's counts per message type: only the types seen are stored (a handful per peer).
#[derive(Debug, Default)]
pub struct PeerMsgCounts {
    sent: Vec<(MsgType, Count)>,
    recv: Vec<(MsgType, Count)>,
}

impl PeerMsgCounts {
    /// Counts one message of `bytes` (frame header included).
    pub fn add(&mut self, dir: Direction, t: MsgType, bytes: u64) {
        let list = match dir {
            Direction::Sent => &mut self.sent,
            Direction::Received => &mut self.recv,
        };
        match list.iter_mut().find(|(k, _)| *k == t) {
            Some((_, c)) => c.add(bytes),
            None => {
                let mut c = Count::default();
                c.add(bytes);
                list.push((t, c));
            }
        }
    }

    /// Bytes per type name, sorted by name (as Core's `std::map`), zeroes left out, for
    /// `getpeerinfo`.
    pub fn bytes_per_msg(&self, dir: Direction) -> Vec<(&'static str, u64)> {
        let list = match dir {
            Direction::Sent => &self.sent,
            Direction::Received => &self.recv,
        };
        let mut v: Vec<(&'static str, u64)> =
            list.iter().map(|(t, c)| (t.name(), c.byte_count)).filter(|(_, b)| *b > 0).collect();
        v.sort_unstable();
        v
    }
}

/// A dimension `getnetmsgstats` can break the totals down by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimension {
    /// sent / received.
    Direction,
    /// ipv4 / ipv6 / not_publicly_routable.
    Network,
    /// inbound, outbound-full-relay, ….
    ConnectionType,
    /// version, ping, ….
    MessageType,
}

impl Dimension {
    /// Parses a dimension name of `getnetmsgstats`.
    pub fn parse(s: &str) -> Option<Dimension> {
        Some(match s {
            "direction" => Dimension::Direction,
            "network" => Dimension::Network,
            "connection_type" => Dimension::ConnectionType,
            "message_type" => Dimension::MessageType,
            _ => return None,
        })
    }
}

/// One non-empty cell of [`NetMsgStats`]: the counts of one direction, network, connection
/// type and message type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgCell {
    /// Sent or received.
    pub direction: Direction,
    /// The peers' network.
    pub network: NetKind,
    /// The peers' connection type.
    pub conn_type: ConnectionType,
    /// The message type.
    pub msg_type: MsgType,
    /// Messages and bytes.
    pub count: Count,
}

/// Node-wide counts by direction × connection type × network × message type.
#[derive(Debug)]
pub struct NetMsgStats {
    cells: Vec<Count>,
}

impl Default for NetMsgStats {
    fn default() -> Self {
        NetMsgStats { cells: vec![Count::default(); 2 * N_CONN * N_NET * N_TYPES] }
    }
}

fn cell_index(dir: Direction, conn: usize, net: usize, t: usize) -> usize {
    let d = usize::from(dir == Direction::Received);
    ((d * N_CONN + conn) * N_NET + net) * N_TYPES + t
}

impl NetMsgStats {
    /// Counts one message.
    pub fn add(&mut self, dir: Direction, conn: ConnectionType, net: NetKind, t: MsgType, bytes: u64) {
        if let Some(c) = self.cells.get_mut(cell_index(dir, conn_index(conn), net.index(), usize::from(t.0))) {
            c.add(bytes);
        }
    }

    /// Every non-empty cell.
    pub fn cells(&self) -> impl Iterator<Item = MsgCell> + '_ {
        let dirs = [Direction::Sent, Direction::Received];
        dirs.into_iter().flat_map(move |direction| {
            CONN_TYPES.into_iter().flat_map(move |conn_type| {
                NetKind::ALL.into_iter().flat_map(move |network| {
                    (0..N_TYPES).filter_map(move |t| {
                        let count = self
                            .cells
                            .get(cell_index(direction, conn_index(conn_type), network.index(), t))
                            .copied()?;
                        (count.message_count > 0).then_some(MsgCell {
                            direction,
                            network,
                            conn_type,
                            msg_type: MsgType(t as u8),
                            count,
                        })
                    })
                })
            })
        })
    }
}

/// One closed connection, for `getdisconnects`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisconnectRecord {
    /// Peer id.
    pub id: u64,
    /// Remote address.
    pub addr: String,
    /// Connection type.
    pub connection_type: &'static str,
    /// Short reason code (see [`crate::base::peer::DisconnectReason::code`]).
    pub reason: &'static str,
    /// Human-readable reason, as logged.
    pub message: String,
    /// When the connection closed (Unix seconds).
    pub time: i64,
    /// How long it lasted (seconds).
    pub duration: u64,
    /// The peer's user agent, if it sent one.
    pub subver: String,
    /// Bytes sent on it.
    pub bytessent: u64,
    /// Bytes received on it.
    pub bytesrecv: u64,
}

/// How many disconnects the ring keeps.
pub const DISCONNECT_RING: usize = 256;

/// Disconnects by reason code and the most recent ones.
#[derive(Debug, Default)]
pub struct Disconnects {
    by_reason: Vec<(&'static str, u64)>,
    recent: VecDeque<DisconnectRecord>,
}

impl Disconnects {
    /// Records one disconnect.
    pub fn record(&mut self, rec: DisconnectRecord) {
        match self.by_reason.iter_mut().find(|(r, _)| *r == rec.reason) {
            Some((_, n)) => *n += 1,
            None => self.by_reason.push((rec.reason, 1)),
        }
        if self.recent.len() == DISCONNECT_RING {
            self.recent.pop_front();
        }
        self.recent.push_back(rec);
    }

    /// Counts by reason code, sorted by code.
    pub fn by_reason(&self) -> Vec<(&'static str, u64)> {
        let mut v = self.by_reason.clone();
        v.sort_unstable();
        v
    }

    /// Up to `n` most recent disconnects, newest first.
    pub fn recent(&self, n: usize) -> impl Iterator<Item = &DisconnectRecord> {
        self.recent.iter().rev().take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_type_maps_to_itself() {
        for (i, t) in MSG_TYPES.iter().enumerate() {
            assert_eq!(MsgType::of(t), MsgType(i as u8));
            assert_eq!(MsgType::of(t).name(), *t);
        }
    }

    #[test]
    fn unknown_types_share_other() {
        assert_eq!(MsgType::of("ping").name(), "ping");
        assert_eq!(MsgType::of("feature").name(), "feature");
        assert_eq!(MsgType::of("bogus").name(), OTHER);
        assert_eq!(MsgType::of("bogus"), MsgType::of("other-bogus"));
    }

    #[test]
    fn peer_counts_sorted_by_name_without_zeroes() {
        let mut p = PeerMsgCounts::default();
        p.add(Direction::Sent, MsgType::of("version"), 126);
        p.add(Direction::Sent, MsgType::of("ping"), 32);
        p.add(Direction::Sent, MsgType::of("ping"), 32);
        p.add(Direction::Received, MsgType::of("zzz"), 30);
        let sent = p.bytes_per_msg(Direction::Sent);
        assert_eq!(sent.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec!["ping", "version"]);
        assert_eq!(sent.first(), Some(&("ping", 64)));
        assert_eq!(p.bytes_per_msg(Direction::Received), vec![("*other*", 30)]);
    }

    #[test]
    fn net_stats_cells_are_the_non_empty_counts_in_order() {
        // (The nesting by `getnetmsgstats` dimensions is rendered, and tested, in `rpc/render.rs`.)
        let mut s = NetMsgStats::default();
        s.add(Direction::Received, ConnectionType::Manual, NetKind::Unroutable, MsgType::of("pong"), 32);
        s.add(Direction::Sent, ConnectionType::Inbound, NetKind::Ipv4, MsgType::of("ping"), 32);
        s.add(Direction::Sent, ConnectionType::Inbound, NetKind::Ipv4, MsgType::of("ping"), 32);
        let cells: Vec<MsgCell> = s.cells().collect();
        let cell = |direction, conn_type, network, t: &str, message_count, byte_count| MsgCell {
            direction,
            network,
            conn_type,
            msg_type: MsgType::of(t),
            count: Count { message_count, byte_count },
        };
        assert_eq!(
            cells,
            vec![
                cell(Direction::Sent, ConnectionType::Inbound, NetKind::Ipv4, "ping", 2, 64),
                cell(Direction::Received, ConnectionType::Manual, NetKind::Unroutable, "pong", 1, 32),
            ]
        );
    }

    #[test]
    fn disconnect_ring_is_bounded_newest_first() {
        let mut d = Disconnects::default();
        for i in 0..(DISCONNECT_RING as u64 + 10) {
            d.record(DisconnectRecord {
                id: i,
                addr: "127.0.0.1:1".into(),
                connection_type: "inbound",
                reason: if i % 2 == 0 { "peer-closed" } else { "timeout" },
                message: String::new(),
                time: 0,
                duration: 0,
                subver: String::new(),
                bytessent: 0,
                bytesrecv: 0,
            });
        }
        let recent: Vec<u64> = d.recent(3).map(|r| r.id).collect();
        assert_eq!(recent, vec![265, 264, 263]);
        assert_eq!(d.recent(10_000).count(), DISCONNECT_RING);
        assert_eq!(d.by_reason(), vec![("peer-closed", 133), ("timeout", 133)]);
    }
}
