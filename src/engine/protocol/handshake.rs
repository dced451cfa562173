//! The version handshake (Core's `VERSION`/`VERACK`/`WTXIDRELAY`/`SENDADDRV2`/`SENDHEADERS`
//! handling and `PushNodeVersion`): owns what each side told the other and when the
//! connection counts as established.

use std::net::{IpAddr, SocketAddr};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_network::VersionMessage;
use rand::RngExt;
use rand::rngs::StdRng;
use tracing::{debug, info};

use super::{Now, Outbox, Peer, Protocol};
use crate::base::peer::{ConnectionType, DisconnectReason};
use crate::engine::addrman::AddrEntry;
use crate::engine::policy::outbound::has_desirable_services;

/// The protocol version we speak (`WTXID_RELAY_VERSION`).
pub const PROTOCOL_VERSION: i32 = 70016;
pub use crate::base::message::MIN_PEER_PROTO_VERSION;
/// Core's `SENDHEADERS_VERSION`.
pub const SENDHEADERS_VERSION: i32 = 70012;
/// Core's `WTXID_RELAY_VERSION`.
pub const WTXID_RELAY_VERSION: i32 = 70016;
/// Core's `BIP0031_VERSION`: from here on, pings carry a nonce.
pub const BIP0031_VERSION: i32 = 60000;

/// What the peer said in its `version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteVersion {
    /// Its protocol version (Core reads it as a signed int).
    pub version: i32,
    /// Services it offers.
    pub services: ServiceFlags,
    /// Its user agent, sanitized.
    pub user_agent: String,
    /// Its best height when it connected.
    pub start_height: i32,
    /// Whether it wants transaction relay.
    pub relay: bool,
    /// Its clock minus ours, seconds.
    pub time_offset: i64,
}

/// Handshake state of one peer.
#[derive(Clone, Debug)]
pub struct Handshake {
    /// The nonce of our `version` to this peer.
    pub local_nonce: u64,
    /// Whether our `version` went out.
    pub version_sent: bool,
    /// The peer's `version`, once received.
    pub remote: Option<RemoteVersion>,
    /// min(ours, theirs), once their `version` arrived.
    pub common_version: i32,
    /// `verack` received (Core's `fSuccessfullyConnected`).
    pub successfully_connected: bool,
    /// The peer sent `wtxidrelay` (BIP339).
    pub wtxid_relay: bool,
    /// The peer sent `sendaddrv2` (BIP155).
    pub wants_addrv2: bool,
    /// The peer sent `sendheaders` (BIP130).
    pub prefers_headers: bool,
    /// Where the peer sees us, from its `version` (Core's `addrLocal`); `None` when it sent
    /// no usable address.
    pub addr_local: Option<SocketAddr>,
}

impl Handshake {
    /// A handshake that has not started.
    pub fn new(local_nonce: u64) -> Self {
        Handshake {
            local_nonce,
            version_sent: false,
            remote: None,
            common_version: 0,
            successfully_connected: false,
            wtxid_relay: false,
            wants_addrv2: false,
            prefers_headers: false,
            addr_local: None,
        }
    }

    /// The peer's user agent, or a placeholder before its `version`.
    pub fn user_agent(&self) -> &str {
        match &self.remote {
            Some(r) if !r.user_agent.is_empty() => &r.user_agent,
            Some(_) => "<no user agent>",
            None => "<no version>",
        }
    }
}

/// A random non-zero nonce.
pub fn new_nonce(rng: &mut StdRng) -> u64 {
    loop {
        let n: u64 = rng.random();
        if n != 0 {
            return n;
        }
    }
}

fn v1_address(addr: Option<SocketAddr>, services: ServiceFlags) -> Address {
    match addr {
        Some(a) => Address::new(&a, services),
        None => Address { services, address: [0; 8], port: 0 },
    }
}

/// Core's `PushNodeVersion`.
pub fn push_version(proto: &Protocol, peer: &mut Peer, now: Now, out: &mut impl Outbox) {
    let services = proto.params.services;
    // Only a routable peer is told where we see it (Core's `IsRoutable`, under the address
    // book's rule: the test-only loopback rule makes 127.x peers routable).
    let your_addr = proto.local.is_routable(peer.who.addr.ip()).then_some(peer.who.addr);
    let msg = VersionMessage {
        version: PROTOCOL_VERSION as u32,
        services,
        timestamp: now.unix,
        receiver: v1_address(your_addr, ServiceFlags::NONE),
        sender: v1_address(None, services),
        nonce: peer.handshake.local_nonce,
        user_agent: proto.params.user_agent.clone(),
        start_height: proto.best_height(),
        relay: false, // no mempool: we ask peers not to announce transactions
    };
    debug!(target: "net", "send version message: version {}, blocks={}, txrelay=0, peer={}", PROTOCOL_VERSION, proto.best_height(), peer.who.id);
    out.send(&NetworkMessage::Version(msg));
    peer.handshake.version_sent = true;
}

/// A `version` from the peer.
pub fn on_version(proto: &mut Protocol, peer: &mut Peer, v: &VersionMessage, now: Now, out: &mut impl Outbox) {
    let hs = &peer.handshake;
    if hs.remote.is_some() {
        debug!(target: "net", "redundant version message from peer={}", peer.who.id);
        return;
    }
    let version = v.version as i32;
    if version < MIN_PEER_PROTO_VERSION {
        return out.disconnect(DisconnectReason::ObsoleteVersion(version));
    }
    if peer.who.conn_type.is_inbound() && proto.local_nonces.contains(&v.nonce) {
        info!(target: "net", "connected to self at {}, disconnecting", if proto.params.log_ips { peer.who.addr.to_string() } else { format!("peer={}", peer.who.id) });
        return out.disconnect(DisconnectReason::SelfConnection);
    }
    // Core's `SetAddrLocal` and `SeenLocal`: an inbound peer's view of us is a vote for it.
    let addr_local = v.receiver.socket_addr().ok().filter(|a| !a.ip().is_unspecified()).map(|a| match a.ip() {
        IpAddr::V6(v6) => SocketAddr::new(v6.to_ipv4_mapped().map_or(a.ip(), IpAddr::V4), a.port()),
        IpAddr::V4(_) => a,
    });
    if let Some(me) = addr_local.filter(|a| peer.who.conn_type.is_inbound() && proto.local.is_routable(a.ip())) {
        proto.local.seen(me.ip());
    }
    peer.handshake.addr_local = addr_local;
    if peer.who.conn_type.is_inbound() {
        push_version(proto, peer, now, out);
    }
    let book_entry = AddrEntry::from_socket(peer.who.addr, v.services, now.unix);
    if !peer.who.conn_type.is_inbound() {
        proto.addrman.set_services(&book_entry.addr, book_entry.port, v.services);
    }
    let expects_services = matches!(
        peer.who.conn_type,
        ConnectionType::OutboundFullRelay | ConnectionType::BlockRelayOnly | ConnectionType::AddrFetch
    );
    if expects_services && !has_desirable_services(v.services, proto.headers.tip_depth(now.unix)) {
        debug!(target: "net", "peer does not offer the expected services ({:08x} offered), peer={}", v.services.to_u64(), peer.who.id);
        return out.disconnect(DisconnectReason::MissingServices(v.services.to_u64()));
    }
    let common = version.min(PROTOCOL_VERSION);
    let hs = &mut peer.handshake;
    hs.common_version = common;
    hs.remote = Some(RemoteVersion {
        version,
        services: v.services,
        user_agent: v.user_agent.clone(),
        start_height: v.start_height,
        relay: v.relay,
        time_offset: v.timestamp.max(0) - now.unix,
    });
    let ua = hs.user_agent().to_string();
    debug!(target: "net", "receive version message: {ua}: version {version}, blocks={}, txrelay={}, {}", v.start_height, u8::from(v.relay), peer.label(proto.params.log_ips));
    if common >= WTXID_RELAY_VERSION {
        out.send(&NetworkMessage::WtxidRelay);
    }
    if common >= 70016 {
        out.send(&NetworkMessage::SendAddrV2);
    }
    out.send(&NetworkMessage::Verack);
    super::addr::on_outbound_version(peer, out);
    if !peer.who.conn_type.is_inbound() {
        // Record the success: the address moves to the tried table.
        proto.addrman.good(&book_entry.addr, book_entry.port, now.unix);
    }
    if peer.who.conn_type == ConnectionType::Feeler {
        debug!(target: "net", "feeler connection completed, peer={}", peer.who.id);
        out.disconnect(DisconnectReason::FeelerDone);
    }
}

/// A `verack`: the connection is established.
pub fn on_verack(proto: &Protocol, peer: &mut Peer, out: &mut impl Outbox) {
    if peer.handshake.successfully_connected {
        debug!(target: "net", "ignoring redundant verack message from peer={}", peer.who.id);
        return;
    }
    peer.handshake.successfully_connected = true;
    let hs = &peer.handshake;
    info!(
        target: "net",
        "New {} peer connected: transport: {}, version: {}, user agent: {}, {}",
        peer.who.conn_type,
        out.transport(),
        hs.remote.as_ref().map_or(0, |r| r.version),
        hs.user_agent(),
        peer.label(proto.params.log_ips)
    );
    if hs.common_version >= SENDHEADERS_VERSION {
        out.send(&NetworkMessage::SendHeaders);
    }
    if proto.params.blocks {
        super::cmpct::on_established(peer, out);
    }
}

/// `sendheaders` (BIP130): announce new headers to this peer with `headers`.
pub fn on_sendheaders(peer: &mut Peer) {
    peer.handshake.prefers_headers = true;
}

/// `wtxidrelay` (BIP339): only between `version` and `verack`.
pub fn on_wtxidrelay(peer: &mut Peer, out: &mut impl Outbox) {
    let hs = &mut peer.handshake;
    if hs.successfully_connected {
        return out.disconnect(DisconnectReason::AfterVerack("wtxidrelay"));
    }
    if hs.common_version < WTXID_RELAY_VERSION {
        debug!(target: "net", "ignoring wtxidrelay due to old common version={} from peer={}", hs.common_version, peer.who.id);
    } else if hs.wtxid_relay {
        debug!(target: "net", "ignoring duplicate wtxidrelay from peer={}", peer.who.id);
    } else {
        hs.wtxid_relay = true;
    }
}

/// `sendaddrv2` (BIP155): only between `version` and `verack`.
pub fn on_sendaddrv2(peer: &mut Peer, out: &mut impl Outbox) {
    if peer.handshake.successfully_connected {
        return out.disconnect(DisconnectReason::AfterVerack("sendaddrv2"));
    }
    peer.handshake.wants_addrv2 = true;
}
