//! Connection liveness (Core's `InactivityCheck`): after `--peertimeout` of grace, a peer that
//! never exchanged bytes, has been silent for 20 minutes in either direction, or has not
//! finished the version handshake is disconnected.

use std::time::{Duration, Instant};

use super::ping::TIMEOUT_INTERVAL;
use super::{LinkTimes, Peer};
use crate::base::peer::DisconnectReason;

/// Whether the grace period after connecting is over (Core's `ShouldRunInactivityChecks`); a
/// `peer_timeout` too long to add to the connect time never ends.
pub fn checks_run(peer: &Peer, now: Instant, peer_timeout: Duration) -> bool {
    peer.who.connected_at.checked_add(peer_timeout).is_some_and(|end| now > end)
}

/// The reason to drop `peer` now, if any.
pub fn inactivity(peer: &Peer, now: Instant, link: LinkTimes, peer_timeout: Duration) -> Option<DisconnectReason> {
    if !checks_run(peer, now, peer_timeout) {
        return None;
    }
    let (Some(last_send), Some(last_recv)) = (link.last_send, link.last_recv) else {
        return Some(DisconnectReason::NoFirstMessage {
            received: link.last_recv.is_some(),
            sent: link.last_send.is_some(),
        });
    };
    if now > last_send + TIMEOUT_INTERVAL {
        return Some(DisconnectReason::SendTimeout(now.duration_since(last_send).as_secs()));
    }
    if now > last_recv + TIMEOUT_INTERVAL {
        return Some(DisconnectReason::RecvTimeout(now.duration_since(last_recv).as_secs()));
    }
    if !peer.handshake.successfully_connected {
        return Some(DisconnectReason::HandshakeTimeout);
    }
    None
}
