//! The message handler's [`Wire`] for one peer: encodes what the peer manager sends straight
//! into the peer's send queue (no intermediate buffer), captures and counts it, and says what
//! it queued.

use bitcoin::p2p::message::NetworkMessage;
use tracing::{debug, warn};

use crate::base::counters::{Direction, MsgType, NetMsgStats, PeerMsgCounts};
use crate::base::message::{command_of, encode_headers, encode_message_reusing};
use crate::base::netaddr::NetKind;
use crate::base::peer::{ConnectionType, PeerIdentity};
use crate::base::transport::v2::{self, short_id_of};
use crate::base::transport::{COMMAND_SIZE, Checksum, HEADER_SIZE, encode_frame_reusing};
use crate::daemon::capture::PeerCapture;
use crate::daemon::net::peer_queues::PeerQueues;
use crate::daemon::net::transport::TransportKind;
use crate::engine::peerman::Wire;

/// Counts messages for one peer and node-wide.
pub(super) struct Tally<'a> {
    pub(super) peer: &'a mut PeerMsgCounts,
    pub(super) global: &'a mut NetMsgStats,
    pub(super) conn: ConnectionType,
    pub(super) net: NetKind,
    /// The connection speaks BIP324 v2.
    pub(super) v2: bool,
}

impl<'a> Tally<'a> {
    /// The counters of the peer `who`, whose connection is `queues`.
    pub(super) fn of(
        peer: &'a mut PeerMsgCounts,
        global: &'a mut NetMsgStats,
        who: &PeerIdentity,
        queues: &PeerQueues,
    ) -> Self {
        let v2 = queues.stats.transport() == TransportKind::V2;
        Tally { peer, global, conn: who.conn_type, net: who.net, v2 }
    }

    /// Counts one message at its size on the wire, as Core: a v1 frame's header and payload, or
    /// a v2 packet's (length, header byte, type — one byte with a short ID, else 13 —, payload
    /// and tag; Core's `m_raw_message_size`).
    pub(super) fn add(&mut self, dir: Direction, command: &str, payload_len: usize) {
        let t = MsgType::of(command);
        let bytes = if self.v2 {
            let mut c = [0u8; COMMAND_SIZE];
            let n = command.len().min(COMMAND_SIZE);
            c[..n].copy_from_slice(&command.as_bytes()[..n]);
            let type_len = if short_id_of(&c).is_some() { 1 } else { 1 + COMMAND_SIZE };
            (payload_len + type_len + v2::EXPANSION) as u64
        } else {
            (payload_len + HEADER_SIZE) as u64
        };
        self.peer.add(dir, t, bytes);
        self.global.add(dir, self.conn, self.net, t, bytes);
    }
}

/// One peer's wire: encodes straight into its send queue.
pub(super) struct PeerOut<'a> {
    queues: &'a PeerQueues,
    magic: [u8; 4],
    /// The payload being answered and its verified checksum, reused if a reply echoes it.
    echo: Option<(&'a [u8], [u8; 4])>,
    /// Where sent messages are captured, if on.
    capture: Option<&'a mut PeerCapture>,
    /// Log each sent message in detail (`--debugpeer`).
    traced: bool,
    tally: Tally<'a>,
    /// What was queued so far.
    out: Produced,
}

/// What the manager's calls queued for a peer.
#[derive(Default)]
pub(super) struct Produced {
    /// Something was queued.
    pub(super) sent: bool,
    /// Bytes in the send queue after the last message queued.
    pub(super) queued: usize,
}

impl<'a> PeerOut<'a> {
    pub(super) fn new(
        queues: &'a PeerQueues,
        magic: [u8; 4],
        echo: Option<(&'a [u8], [u8; 4])>,
        capture: Option<&'a mut PeerCapture>,
        traced: bool,
        tally: Tally<'a>,
    ) -> Self {
        PeerOut { queues, magic, echo, capture, traced, tally, out: Produced::default() }
    }

    /// What was queued.
    pub(super) fn produced(self) -> Produced {
        self.out
    }

    /// Captures the frame the last `encode` appended to `buf` from `start`.
    fn capture_sent(capture: &mut Option<&'a mut PeerCapture>, command: &str, buf: &[u8], start: usize) {
        if let Some(c) = capture.as_deref_mut() {
            let payload = buf.get(start + HEADER_SIZE..).unwrap_or(&[]);
            if let Err(e) = c.sent(command, payload) {
                warn!("message capture failed: {e}");
            }
        }
    }

    /// Appends one frame with `encode` (which returns its payload length), captures it, counts
    /// it and logs it; returns its payload length.
    /// How to fill the checksum of a frame for this peer: not at all over v2 (its packets
    /// carry none; the connection's transport is known before anything is sent, as an inbound
    /// peer is answered only after its first message and an outbound one is v2 from its
    /// connect), else reusing a `known` verified checksum where the payload matches.
    fn checksum<'p>(&self, known: Option<(&'p [u8], [u8; 4])>) -> Checksum<'p> {
        if self.queues.stats.transport() == TransportKind::V2 {
            return Checksum::Skip;
        }
        known.map_or(Checksum::Compute, |(bytes, sum)| Checksum::Reuse(bytes, sum))
    }

    fn queue(&mut self, command: &str, encode: impl FnOnce(&mut Vec<u8>) -> usize) -> usize {
        let mut len = 0;
        let capture = &mut self.capture;
        self.out.queued = self.queues.queue_send(|buf| {
            let start = buf.len();
            len = encode(buf);
            Self::capture_sent(capture, command, buf, start);
        });
        debug!(target: "net", "sending {command} ({len} bytes) peer={}", self.queues.id);
        self.tally.add(Direction::Sent, command, len);
        self.out.sent = true;
        len
    }
}

impl Wire for PeerOut<'_> {
    fn send(&mut self, msg: &NetworkMessage) {
        let (magic, sum) = (self.magic, self.checksum(self.echo));
        let command = command_of(msg);
        let len = self.queue(command, |buf| encode_message_reusing(magic, msg, buf, sum));
        if self.traced {
            debug!(target: "debugpeer", "peer={} sent {command} ({len} bytes): {msg:?}", self.queues.id);
        }
    }

    fn send_payload(&mut self, command: &'static str, payload: &[u8], checksum: Option<[u8; 4]>) {
        let (magic, sum) = (self.magic, self.checksum(checksum.map(|c| (payload, c))));
        let len =
            self.queue(command, |buf| encode_frame_reusing(magic, command, buf, |b| b.extend_from_slice(payload), sum));
        if self.traced {
            debug!(target: "debugpeer", "peer={} sent {command} ({len} bytes)", self.queues.id);
        }
    }

    fn send_paused(&self) -> bool {
        self.queues.send_paused()
    }

    fn transport(&self) -> &'static str {
        self.queues.stats.transport().name()
    }

    fn send_headers<'h>(&mut self, headers: impl ExactSizeIterator<Item = &'h bitcoin::block::Header>) {
        let (magic, sum) = (self.magic, self.checksum(None));
        let len = self.queue("headers", |buf| encode_headers(magic, headers, buf, sum));
        if self.traced {
            debug!(target: "debugpeer", "peer={} sent headers ({len} bytes)", self.queues.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::Arc;

    use super::*;
    use crate::base::totals::NetTotals;

    /// The frame a `ping` becomes in the send queue of a connection of transport `kind`, as it
    /// reaches the socket (unsealed here: the test looks at the frame the sealing gets).
    fn queued_ping(kind: TransportKind) -> Vec<u8> {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let q =
            PeerQueues::new(1, mio::net::TcpStream::from_std(server), 1 << 20, 1 << 20, Arc::new(NetTotals::default()));
        q.stats.set_transport(kind);
        let (mut peer, mut global) = (PeerMsgCounts::default(), NetMsgStats::default());
        let tally = Tally {
            peer: &mut peer,
            global: &mut global,
            conn: ConnectionType::Inbound,
            net: NetKind::Unroutable,
            v2: false,
        };
        let mut out = PeerOut::new(&q, [1, 2, 3, 4], None, None, false, tally);
        out.send(&NetworkMessage::Ping(7));
        q.flush_from_handler(1).unwrap();
        let mut frame = vec![0u8; HEADER_SIZE + 8];
        client.read_exact(&mut frame).unwrap();
        frame
    }

    #[test]
    fn frames_for_v2_peers_are_not_hashed_v1_ones_are() {
        let v1 = queued_ping(TransportKind::V1);
        let v2 = queued_ping(TransportKind::V2);
        assert_eq!(v1[20..24], crate::base::transport::checksum_of(&7u64.to_le_bytes()), "v1: the real checksum");
        assert_eq!(v2[20..24], [0; 4], "v2: no double SHA-256 for a field the sealing drops");
        assert_eq!((v1[..20].to_vec(), v1[24..].to_vec()), (v2[..20].to_vec(), v2[24..].to_vec()), "the rest alike");
    }
}

#[cfg(test)]
mod tally_tests {
    use super::*;

    /// Bytes counted for a message as each transport carries it.
    fn counted(v2: bool, command: &str, payload: usize) -> u64 {
        let (mut peer, mut global) = (PeerMsgCounts::default(), NetMsgStats::default());
        let mut t =
            Tally { peer: &mut peer, global: &mut global, conn: ConnectionType::Inbound, net: NetKind::Ipv4, v2 };
        t.add(Direction::Received, command, payload);
        global.cells().map(|c| c.count.byte_count).sum()
    }

    #[test]
    fn messages_count_at_their_size_on_the_wire_as_core() {
        assert_eq!(counted(false, "ping", 8), 32, "v1: 24-byte header and payload");
        assert_eq!(counted(true, "ping", 8), 29, "v2: length 3, header 1, short ID 1, payload, tag 16");
        assert_eq!(counted(true, "version", 102), 3 + 1 + 13 + 102 + 16, "no short ID: the 12-byte type");
        assert_eq!(counted(true, "bigflood", 1000), 3 + 1 + 13 + 1000 + 16);
    }
}
