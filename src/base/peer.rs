//! What every layer says about a connection: its id, its type, its fixed identity, its
//! permissions, and why it ended.

use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use super::netaddr::NetKind;

use super::transport::TransportError;

/// Node-unique connection id (Core's `NodeId`), never reused while the node runs.
pub type PeerId = u64;

/// Why a connection exists (Core's `ConnectionType`, by the names `getpeerinfo` shows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionType {
    /// The peer connected to us.
    Inbound,
    /// We dialed it because the user asked (`--connect`, `--addnode`).
    Manual,
    /// We dialed it to relay blocks, transactions and addresses.
    OutboundFullRelay,
    /// We dialed it to relay blocks only.
    BlockRelayOnly,
    /// A short-lived probe of an address.
    Feeler,
    /// A short-lived connection to fetch addresses.
    AddrFetch,
}

impl ConnectionType {
    /// Core's name for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionType::Inbound => "inbound",
            ConnectionType::Manual => "manual",
            ConnectionType::OutboundFullRelay => "outbound-full-relay",
            ConnectionType::BlockRelayOnly => "block-relay-only",
            ConnectionType::Feeler => "feeler",
            ConnectionType::AddrFetch => "addr-fetch",
        }
    }

    /// Whether the peer dialed us.
    pub fn is_inbound(self) -> bool {
        self == ConnectionType::Inbound
    }
}

impl fmt::Display for ConnectionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of permission flags (Core's bit values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Permissions(u32);

impl Permissions {
    /// No permission.
    pub const NONE: Permissions = Permissions(0);
    /// May ask for BIP37 filters.
    pub const BLOOM_FILTER: Permissions = Permissions(1 << 1);
    /// Transactions relayed even in blocks-only mode.
    pub const RELAY: Permissions = Permissions(1 << 3);
    /// Transactions relayed even if already known (implies relay).
    pub const FORCE_RELAY: Permissions = Permissions((1 << 2) | (1 << 3));
    /// Served during initial sync and past upload limits.
    pub const DOWNLOAD: Permissions = Permissions(1 << 6);
    /// Never discouraged, banned or evicted for misbehaviour (implies download).
    pub const NO_BAN: Permissions = Permissions((1 << 4) | (1 << 6));
    /// May ask for the mempool.
    pub const MEMPOOL: Permissions = Permissions(1 << 5);
    /// `getaddr` answered without the cache; its `addr`s are not rate-limited.
    pub const ADDR: Permissions = Permissions(1 << 7);
    /// Set when the entry named no permissions: resolved by [`Permissions::resolve_implicit`].
    pub const IMPLICIT: Permissions = Permissions(1 << 31);
    /// Every permission.
    pub const ALL: Permissions =
        Permissions((1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7));

    /// Whether every flag of `other` is set.
    pub fn has(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets.
    pub fn union(self, other: Permissions) -> Permissions {
        Permissions(self.0 | other.0)
    }

    /// Core's implicit whitelist permissions: relay (by default), mempool and noban.
    pub fn resolve_implicit(self) -> Permissions {
        if !self.has(Permissions::IMPLICIT) {
            return self;
        }
        Permissions(self.0 & !Permissions::IMPLICIT.0)
            .union(Permissions::RELAY)
            .union(Permissions::MEMPOOL)
            .union(Permissions::NO_BAN)
    }

    /// Core's names (`NetPermissions::ToStrings`), for `getpeerinfo`'s `permissions`.
    pub fn names(self) -> Vec<&'static str> {
        let table = [
            (Permissions::BLOOM_FILTER, "bloomfilter"),
            (Permissions::NO_BAN, "noban"),
            (Permissions::FORCE_RELAY, "forcerelay"),
            (Permissions::RELAY, "relay"),
            (Permissions::MEMPOOL, "mempool"),
            (Permissions::DOWNLOAD, "download"),
            (Permissions::ADDR, "addr"),
        ];
        table.iter().filter(|(p, _)| self.has(*p)).map(|(_, n)| *n).collect()
    }
}

/// What is fixed about a connection from the moment it opens (the constant part of Core's
/// `CNode`): made once by whoever opened the connection (the socket handler, or the simulator)
/// and shared read-only by everything that deals with the peer.
#[derive(Clone, Debug)]
pub struct PeerIdentity {
    /// Node-unique connection id.
    pub id: PeerId,
    /// The peer's address (for a peer reached by name through a proxy, only its port counts:
    /// the IP is unspecified, as Core's invalid `CService` with an `m_addr_name`).
    pub addr: SocketAddr,
    /// The destination as named when it was dialed through a proxy without an IP address: an
    /// onion address or a host name the proxy resolved (Core's `m_addr_name`).
    pub name: Option<String>,
    /// Our end of the connection, when the socket could say.
    pub local_addr: Option<SocketAddr>,
    /// Why the connection exists.
    pub conn_type: ConnectionType,
    /// What `--whitelist` grants it.
    pub permissions: Permissions,
    /// When the connection opened.
    pub connected_at: Instant,
    /// The peer's network.
    pub net: NetKind,
    /// Its network group hashed with the node's secret key (Core's `nKeyedNetGroup`), for
    /// inbound eviction.
    pub keyed_group: u64,
}

impl PeerIdentity {
    /// The identity of a connection to `addr` opened at `connected_at`, with no permissions, no
    /// local address and no eviction key (the socket handler fills those in; tests and the
    /// fuzzer use this as it is, or with [`PeerIdentity::with_permissions`]).
    pub fn new(id: PeerId, addr: SocketAddr, conn_type: ConnectionType, connected_at: Instant) -> Self {
        PeerIdentity {
            id,
            addr,
            name: None,
            local_addr: None,
            conn_type,
            permissions: Permissions::NONE,
            connected_at,
            net: super::netaddr::net_kind(addr.ip()),
            keyed_group: 0,
        }
    }

    /// The same identity with `permissions`.
    pub fn with_permissions(self, permissions: Permissions) -> Self {
        PeerIdentity { permissions, ..self }
    }

    /// `peer=N` (with the address under `--logips`), for log lines.
    pub fn label(&self, log_ips: bool) -> String {
        if log_ips { format!("peer={}, peeraddr={}", self.id, self.shown_addr()) } else { format!("peer={}", self.id) }
    }

    /// The address as `getpeerinfo` and the logs show it: the name it was dialed by, else the
    /// IP address and port.
    pub fn shown_addr(&self) -> String {
        match &self.name {
            Some(name) => format!("{name}:{}", self.addr.port()),
            None => self.addr.to_string(),
        }
    }
}

/// Why a connection was closed. Shown in the info-level disconnect line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The peer closed the TCP connection.
    PeerClosed,
    /// Reading the socket failed.
    ReadError(String),
    /// Writing the socket failed.
    WriteError(String),
    /// The outbound TCP connect did not complete.
    ConnectFailed(String),
    /// A framing fault (wrong magic, oversized length).
    Transport(TransportError),
    /// No `version`/`verack` exchange within `--peertimeout`.
    HandshakeTimeout,
    /// Nothing received, or nothing sent, within `--peertimeout` of connecting.
    NoFirstMessage {
        /// Whether anything was ever received.
        received: bool,
        /// Whether anything was ever sent.
        sent: bool,
    },
    /// Nothing sent for 20 minutes.
    SendTimeout(u64),
    /// Nothing received for 20 minutes.
    RecvTimeout(u64),
    /// Our ping went unanswered for 20 minutes.
    PingTimeout(u64),
    /// The peer's protocol version is below 31800.
    ObsoleteVersion(i32),
    /// The `version` nonce was one of ours: we connected to ourselves.
    SelfConnection,
    /// A handshake-only message arrived after `verack`.
    AfterVerack(&'static str),
    /// The node is at `--maxconnections` for inbound peers.
    TooManyInbound,
    /// The peer broke a protocol rule (Core's `Misbehaving`).
    Misbehaving(String),
    /// Our only initial-headers-sync peer stalled while others were available.
    HeadersTimeout,
    /// The node is shutting down.
    Shutdown,
    /// The operator asked for it (`disconnectnode`).
    Requested,
    /// The operator banned the peer's address (`setban`).
    Banned,
    /// Network activity was switched off (`setnetworkactive false`).
    NetworkInactive,
    /// Inbound slots were full and Core's eviction chose this peer for a newcomer.
    Evicted,
    /// An automatic outbound peer lacks the services we need (Core's `HasAllDesirableServiceFlags`).
    MissingServices(u64),
    /// A feeler connection completed its handshake: the address works.
    FeelerDone,
    /// An addr-fetch peer sent its addresses.
    AddrFetchDone,
    /// The extra block-relay-only peer (Core's rotation) brought nothing newer than the others.
    ExtraBlockRelay,
    /// An outbound peer stayed behind our best header past Core's chain-sync timeout
    /// (`ConsiderEviction`).
    OldChain,
    /// One outbound full-relay peer too many (the stale-tip extra one or another): the one that
    /// least recently announced a new best header goes (Core's `EvictExtraOutboundPeers`).
    ExtraOutbound,
    /// The peer stalled the block download window or took too long to send blocks we asked
    /// for (Core's stalling and block download timeouts).
    BlockDownload(String),
}

impl DisconnectReason {
    /// A short stable code for counters and metrics labels.
    pub fn code(&self) -> &'static str {
        use DisconnectReason as R;
        match self {
            R::PeerClosed => "peer-closed",
            R::ReadError(_) => "read-error",
            R::WriteError(_) => "write-error",
            R::ConnectFailed(_) => "connect-failed",
            R::Transport(_) => "transport-error",
            R::HandshakeTimeout => "handshake-timeout",
            R::NoFirstMessage { .. } => "no-first-message",
            R::SendTimeout(_) => "send-timeout",
            R::RecvTimeout(_) => "recv-timeout",
            R::PingTimeout(_) => "ping-timeout",
            R::ObsoleteVersion(_) => "obsolete-version",
            R::SelfConnection => "self-connection",
            R::AfterVerack(_) => "handshake-after-verack",
            R::TooManyInbound => "too-many-inbound",
            R::Misbehaving(_) => "misbehaving",
            R::HeadersTimeout => "headers-timeout",
            R::Shutdown => "shutdown",
            R::Requested => "disconnectnode",
            R::Banned => "banned",
            R::NetworkInactive => "network-inactive",
            R::Evicted => "evicted",
            R::MissingServices(_) => "missing-services",
            R::FeelerDone => "feeler-done",
            R::AddrFetchDone => "addr-fetch-done",
            R::ExtraBlockRelay => "extra-block-relay",
            R::OldChain => "old-chain",
            R::ExtraOutbound => "extra-outbound",
            R::BlockDownload(_) => "block-download",
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DisconnectReason as R;
        match self {
            R::PeerClosed => f.write_str("socket closed by peer"),
            R::ReadError(e) => write!(f, "socket recv error: {e}"),
            R::WriteError(e) => write!(f, "socket send error: {e}"),
            R::ConnectFailed(e) => write!(f, "connect failed: {e}"),
            R::Transport(e) => write!(f, "transport error: {e}"),
            R::HandshakeTimeout => f.write_str("version handshake timeout"),
            R::NoFirstMessage { received, sent } => {
                f.write_str("socket no message in first period")?;
                if !received {
                    f.write_str(", never received from peer")?;
                }
                if !sent {
                    f.write_str(", never sent to peer")?;
                }
                Ok(())
            }
            R::SendTimeout(s) => write!(f, "socket sending timeout: {s}s"),
            R::RecvTimeout(s) => write!(f, "socket receive timeout: {s}s"),
            R::PingTimeout(s) => write!(f, "ping timeout: {s}s"),
            R::ObsoleteVersion(v) => write!(f, "peer using obsolete version {v}"),
            R::SelfConnection => f.write_str("connected to self"),
            R::AfterVerack(m) => write!(f, "{m} received after verack"),
            R::TooManyInbound => f.write_str("too many inbound connections"),
            R::Misbehaving(what) => write!(f, "misbehaving: {what}"),
            R::HeadersTimeout => f.write_str("timeout downloading headers"),
            R::Shutdown => f.write_str("shutting down"),
            R::Requested => f.write_str("disconnectnode requested"),
            R::Banned => f.write_str("address banned"),
            R::NetworkInactive => f.write_str("network activity disabled"),
            R::Evicted => f.write_str("evicted to make room for a new inbound peer"),
            R::MissingServices(s) => write!(f, "peer does not offer the expected services ({s:08x} offered)"),
            R::FeelerDone => f.write_str("feeler connection completed"),
            R::AddrFetchDone => f.write_str("addr-fetch peer sent its addresses"),
            R::ExtraBlockRelay => f.write_str("extra block-relay-only peer no longer needed"),
            R::OldChain => f.write_str("outbound peer has old chain"),
            R::ExtraOutbound => f.write_str("extra outbound peer no longer needed"),
            R::BlockDownload(why) => f.write_str(why),
        }
    }
}

/// Hasher for maps keyed by [`PeerId`]. Ids are assigned by us, sequentially, never chosen by a
/// peer, so a multiplicative hash is safe and far cheaper than SipHash on the per-message path.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by peer id.
pub type PeerMap<V> = std::collections::HashMap<PeerId, V, std::hash::BuildHasherDefault<IdHasher>>;
