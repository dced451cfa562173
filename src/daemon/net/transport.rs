//! Each connection's transport, chosen per connection (Core's `Transport`, `V1Transport` and
//! `V2Transport`): v1; BIP324 v2; or, for an inbound peer while v2 is on, not known until its
//! first 16 bytes say which. The receiving side lives here, on the socket handler; the sending
//! side is the peer's send queue, which holds frames back during a v2 handshake and, once it
//! is over, seals them with the transport's sending half ([`Seal`]).

use crate::base::transport::v2::{self, Detected, Role, V1_PREFIX_LEN, V2Error, V2Sender, V2Transport};
use crate::base::transport::{Delivery, HEADER_SIZE, TransportError, V1Decoder};

use super::peer_queues::{PeerQueues, Seal};

/// Which transport a connection speaks (`getpeerinfo`'s `transport_protocol_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// Inbound, v2 on, first bytes not in yet.
    Detecting,
    /// Plaintext v1.
    V1,
    /// BIP324.
    V2,
}

impl TransportKind {
    /// Its code in an atomic byte ([`PeerStats`](super::peer_queues::PeerStats)).
    pub(crate) fn code(self) -> u8 {
        match self {
            TransportKind::V1 => 0,
            TransportKind::V2 => 1,
            TransportKind::Detecting => 2,
        }
    }

    /// The kind a [`TransportKind::code`] stands for (v1 for any other byte).
    pub(crate) fn from_code(code: u8) -> TransportKind {
        match code {
            1 => TransportKind::V2,
            2 => TransportKind::Detecting,
            _ => TransportKind::V1,
        }
    }

    /// Core's name for it.
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::Detecting => "detecting",
            TransportKind::V1 => "v1",
            TransportKind::V2 => "v2",
        }
    }
}

/// The receiving side of one connection's transport.
#[derive(Debug)]
pub enum ConnTransport {
    /// Plaintext frames.
    V1(V1Decoder),
    /// An inbound peer's first bytes (at most [`V1_PREFIX_LEN`]), until they tell v1 from v2.
    Detecting(Vec<u8>),
    /// BIP324: the handshake, then packets.
    V2 {
        /// The codec.
        codec: Box<V2Transport>,
        /// Whether anything was received (Core's `ShouldReconnectV1` asks).
        received: bool,
    },
}

/// What a call to [`ConnTransport::receive`] asks of the socket handler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Bytes were queued for the wire (handshake) or held frames may now go: write.
    pub write: bool,
}

/// The v2 sending half as the send queue's [`Seal`].
#[derive(Debug)]
struct Sealer(V2Sender);

impl Seal for Sealer {
    fn seal(&mut self, frames: &[u8], wire: &mut Vec<u8>, budget: usize) -> Result<usize, String> {
        // Whole frames up to about `budget` bytes (at least one), so the wire buffer stays small.
        let mut end = 0;
        while let Some(head) = frames.get(end..end + HEADER_SIZE) {
            let len = u32::from_le_bytes([head[16], head[17], head[18], head[19]]) as usize;
            let next = end + HEADER_SIZE + len;
            if next > frames.len() || (end > 0 && next > budget) {
                break;
            }
            end = next;
        }
        self.0.encrypt_frames(frames.get(..end).unwrap_or(&[]), wire).map_err(|e| e.to_string())
    }
}

impl ConnTransport {
    /// A v1 connection.
    pub fn v1(magic: [u8; 4]) -> Self {
        ConnTransport::V1(V1Decoder::new(magic))
    }

    /// An inbound connection: detected from its first bytes when `v2` is on (frames are held
    /// until then), v1 otherwise.
    pub fn inbound(magic: [u8; 4], v2: bool, queues: &PeerQueues) -> Self {
        if !v2 {
            return Self::v1(magic);
        }
        queues.hold_frames();
        ConnTransport::Detecting(Vec::with_capacity(V1_PREFIX_LEN))
    }

    /// An outbound v2 connection: our key and garbage are queued at once, frames held until
    /// the handshake is over.
    pub fn outbound_v2(magic: [u8; 4], queues: &PeerQueues) -> Result<Self, V2Error> {
        let mut codec = Box::new(V2Transport::new(magic, Role::Initiator)?);
        queues.hold_frames();
        let mut hs = Vec::new();
        codec.take_handshake(&mut hs);
        queues.push_wire(hs);
        Ok(ConnTransport::V2 { codec, received: false })
    }

    /// Which transport this is.
    pub fn kind(&self) -> TransportKind {
        match self {
            ConnTransport::V1(_) => TransportKind::V1,
            ConnTransport::Detecting(_) => TransportKind::Detecting,
            ConnTransport::V2 { .. } => TransportKind::V2,
        }
    }

    /// The BIP324 session id once known.
    pub fn session_id(&self) -> Option<[u8; 32]> {
        match self {
            ConnTransport::V2 { codec, .. } => codec.session_id().copied(),
            _ => None,
        }
    }

    /// Core's `ShouldReconnectV1`: an outbound v2 connection that received nothing (the peer
    /// closed on our key: a v1-only peer) is worth one more try in v1.
    pub fn should_reconnect_v1(&self) -> bool {
        matches!(self, ConnTransport::V2 { codec, received: false } if codec.role() == Role::Initiator)
    }

    /// Feeds received bytes: frames go to `on_frame`; handshake bytes go to `queues`.
    pub fn receive<F>(
        &mut self,
        magic: [u8; 4],
        input: &[u8],
        queues: &PeerQueues,
        mut on_frame: F,
    ) -> Result<Received, TransportError>
    where
        F: FnMut(Delivery<'_>),
    {
        let ConnTransport::Detecting(got) = self else { return self.feed(input, queues, &mut on_frame) };
        let take = V1_PREFIX_LEN.saturating_sub(got.len()).min(input.len());
        let (head, rest) = input.split_at(take);
        got.extend_from_slice(head);
        let first = std::mem::take(got);
        let mut done = Received::default();
        match v2::detect(magic, &first) {
            Detected::NeedMore => {
                *got = first;
                return Ok(done);
            }
            Detected::V1 => {
                *self = Self::v1(magic);
                queues.send_plain();
            }
            Detected::V2 => {
                // Our key and garbage go out with whatever the rest of this input lets us add
                // (terminator and version packet), in one piece.
                let codec = Box::new(V2Transport::new(magic, Role::Responder)?);
                *self = ConnTransport::V2 { codec, received: false };
            }
        }
        done.write = true;
        // The bytes that decided, then the rest of this input.
        self.decode(&first, &mut on_frame)?;
        self.decode(rest, &mut on_frame)?;
        self.hand_over(queues);
        Ok(done)
    }

    /// [`ConnTransport::receive`] once the transport is known.
    fn feed<F>(&mut self, input: &[u8], queues: &PeerQueues, on_frame: &mut F) -> Result<Received, TransportError>
    where
        F: FnMut(Delivery<'_>),
    {
        self.decode(input, on_frame)?;
        Ok(self.hand_over(queues))
    }

    fn decode<F>(&mut self, input: &[u8], on_frame: &mut F) -> Result<(), TransportError>
    where
        F: FnMut(Delivery<'_>),
    {
        match self {
            ConnTransport::V1(d) => d.decode_owned(input, on_frame)?,
            ConnTransport::V2 { codec, received } => {
                *received |= !input.is_empty();
                codec.decode_owned(input, on_frame)?;
            }
            ConnTransport::Detecting(_) => {}
        }
        Ok(())
    }

    /// Gives the send queue what a v2 handshake produced: bytes to send, then, once it is over,
    /// the sending half that seals held frames.
    fn hand_over(&mut self, queues: &PeerQueues) -> Received {
        let mut done = Received::default();
        let ConnTransport::V2 { codec, .. } = self else { return done };
        if codec.has_handshake() {
            let mut hs = Vec::new();
            codec.take_handshake(&mut hs);
            queues.push_wire(hs);
            done.write = true;
        }
        if let Some(sender) = codec.is_ready().then(|| codec.take_sender()).flatten() {
            queues.start_sealing(Box::new(Sealer(sender)));
            done.write = true;
        }
        done
    }
}

#[cfg(test)]
mod tests;
