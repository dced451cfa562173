//! Ping/pong (Core's `MaybeSendPing` and `ProcessPong`): owns the outstanding ping, the last and
//! minimum round-trip times, and the ping timeout.

use std::time::{Duration, Instant};

use bitcoin::p2p::message::NetworkMessage;
use rand::rngs::StdRng;
use tracing::debug;

use super::handshake::{BIP0031_VERSION, new_nonce};
use super::{Outbox, Peer};
use crate::base::peer::DisconnectReason;

/// Core's `PING_INTERVAL`.
pub const PING_INTERVAL: Duration = Duration::from_secs(2 * 60);
/// Core's `TIMEOUT_INTERVAL`: an unanswered ping, or a silent socket, is dropped after this.
pub const TIMEOUT_INTERVAL: Duration = Duration::from_secs(20 * 60);

/// Ping state of one peer.
#[derive(Clone, Debug, Default)]
pub struct PingState {
    /// Nonce of the outstanding ping, 0 if none.
    pub nonce_sent: u64,
    /// When the last ping was sent.
    pub ping_start: Option<Instant>,
    /// Round-trip time of the last answered ping.
    pub last_ping: Option<Duration>,
    /// Smallest round-trip time seen.
    pub min_ping: Option<Duration>,
    /// A ping was requested (RPC) and goes out at the next chance.
    pub queued: bool,
}

impl PingState {
    /// How long the outstanding ping has waited (`pingwait`), if one is outstanding.
    pub fn waiting(&self, now: Instant) -> Option<Duration> {
        (self.nonce_sent != 0).then(|| self.ping_start.map(|s| now.saturating_duration_since(s))).flatten()
    }
}

/// A `ping`: answer with the same nonce (peers after BIP31).
pub fn on_ping(peer: &mut Peer, nonce: u64, out: &mut impl Outbox) {
    if peer.handshake.common_version > BIP0031_VERSION {
        out.send(&NetworkMessage::Pong(nonce));
    }
}

/// A `pong`, received at `received`. A matching nonce completes the ping and records its time;
/// a zero nonce (or a payload too short to hold one) cancels it; any other nonce is ignored.
pub fn on_pong(peer: &mut Peer, nonce: u64, received: Instant) {
    let ping = &mut peer.ping;
    let expected = ping.nonce_sent;
    let problem = if ping.nonce_sent == 0 {
        Some("Unsolicited pong without ping")
    } else if nonce == ping.nonce_sent {
        if let Some(start) = ping.ping_start {
            let rtt = received.saturating_duration_since(start);
            ping.last_ping = Some(rtt);
            ping.min_ping = Some(ping.min_ping.map_or(rtt, |m| m.min(rtt)));
        }
        ping.nonce_sent = 0;
        None
    } else if nonce == 0 {
        ping.nonce_sent = 0;
        Some("Nonce zero")
    } else {
        Some("Nonce mismatch")
    };
    if let Some(problem) = problem {
        debug!(target: "net", "pong peer={}: {problem}, {expected:x} expected, {nonce:x} received", peer.who.id);
    }
}

/// Disconnects on a ping unanswered for [`TIMEOUT_INTERVAL`]; sends a ping every
/// [`PING_INTERVAL`] (or when queued) if none is outstanding.
pub fn maybe_send_ping(peer: &mut Peer, now: Instant, peer_timeout: Duration, rng: &mut StdRng, out: &mut impl Outbox) {
    let checks_run = super::timeouts::checks_run(peer, now, peer_timeout);
    let ping = &mut peer.ping;
    if ping.nonce_sent != 0 {
        if let Some(start) = ping.ping_start {
            if checks_run && now > start + TIMEOUT_INTERVAL {
                return out.disconnect(DisconnectReason::PingTimeout(now.duration_since(start).as_secs()));
            }
        }
    }
    let due = ping.nonce_sent == 0 && ping.ping_start.is_none_or(|s| now > s + PING_INTERVAL);
    if !(ping.queued || due) {
        return;
    }
    ping.queued = false;
    ping.ping_start = Some(now);
    if peer.handshake.common_version > BIP0031_VERSION {
        ping.nonce_sent = new_nonce(rng);
        out.send(&NetworkMessage::Ping(ping.nonce_sent));
    } else {
        // Too old for nonces: a pong will never come. The old ping carried no payload.
        ping.nonce_sent = 0;
        if let Ok(command) = bitcoin::p2p::message::CommandString::try_from_static("ping") {
            out.send(&NetworkMessage::Unknown { command, payload: Vec::new() });
        }
    }
}
