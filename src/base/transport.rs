//! The v1 transport (Core's `V1Transport`): turns received bytes into whole, checked frames and
//! messages into bytes. Owns the partial header and partial payload of one connection. No I/O.
//!
//! Rules, as Bitcoin Core: a wrong network magic or a declared payload length above
//! [`MAX_PROTOCOL_MESSAGE_LENGTH`] is fatal for the connection (detected before any payload is
//! read, and at the first wrong magic byte); a bad checksum or a malformed message type drops
//! that one message and keeps the peer. Payload memory grows with the bytes that really
//! arrived (at most [`ALLOC_AHEAD`] beyond them), never with the declared length, and the
//! checksum of a payload that straddles reads is hashed as its bytes arrive, so the work of one
//! call is proportional to its input (a 4 MB message costs no 4 MB hash at completion).
//! [`V1Decoder::decode_owned`] hands a completed payload of at least [`OWNED_MIN`] bytes over
//! by value (no copy); no payload buffer is kept between messages.

use bitcoin::hashes::{Hash, HashEngine, sha256, sha256d};

/// Size of a v1 message header: magic (4), type (12), length (4), checksum (4).
pub const HEADER_SIZE: usize = 24;
/// Size of the message-type field of the header.
pub const COMMAND_SIZE: usize = 12;
/// Core's `MAX_PROTOCOL_MESSAGE_LENGTH`: the largest payload a peer may announce.
pub const MAX_PROTOCOL_MESSAGE_LENGTH: usize = 4_000_000;
/// How far ahead of the received bytes a partial payload buffer may be allocated (Core: 256 KiB).
pub const ALLOC_AHEAD: usize = 256 * 1024;
/// A payload assembled across reads is handed over by value from this size on.
pub const OWNED_MIN: usize = 64 * 1024;

/// The 12-byte, NUL-padded message type of a frame.
pub type Command = [u8; COMMAND_SIZE];

/// A fault that ends the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The frame did not start with this network's magic (also what a BIP324 v2 handshake looks
    /// like to a v1 node).
    #[error("wrong network magic {}", hex(&got[..usize::from(*len).min(4)]))]
    WrongMagic {
        /// The bytes received where the magic belongs, up to and including the first wrong
        /// one (zero after it).
        got: [u8; 4],
        /// How many bytes of `got` were received (through the first wrong one).
        len: u8,
    },
    /// The header declared a payload longer than [`MAX_PROTOCOL_MESSAGE_LENGTH`].
    #[error("oversized message: {command} declares {len} bytes")]
    Oversized {
        /// The (sanitized) message type of the offending header.
        command: String,
        /// The declared payload length.
        len: u64,
    },
    /// A fault of the v2 (BIP324) transport.
    #[error(transparent)]
    V2(#[from] v2::V2Error),
}

/// Why a single message was dropped while the connection was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// The payload's double-SHA256 did not match the header checksum.
    BadChecksum,
    /// The message type had a NUL followed by non-NUL bytes, or a non-printable character (or,
    /// in v2, the packet was empty or too short for a 12-byte type).
    InvalidCommand,
    /// A v2 packet named its type by a one-byte short ID that BIP324 (as Core) does not assign.
    UnknownShortId,
}

/// A complete, checked frame.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Message type, NUL padded.
    pub command: &'a Command,
    /// The payload.
    pub payload: &'a [u8],
    /// The header checksum (verified against the payload).
    pub checksum: [u8; 4],
}

/// A complete frame that failed a per-message check.
#[derive(Clone, Copy, Debug)]
pub struct Rejected<'a> {
    /// Message type, NUL padded (may be malformed).
    pub command: &'a Command,
    /// Payload length.
    pub len: usize,
    /// Which check failed.
    pub reason: RejectReason,
}

/// A complete, checked frame whose payload is handed over by value.
#[derive(Debug)]
pub struct OwnedFrame {
    /// Message type, NUL padded.
    pub command: Command,
    /// The payload (allocated to its exact length).
    pub payload: Vec<u8>,
    /// The header checksum (verified against the payload).
    pub checksum: [u8; 4],
}

/// What [`V1Decoder::decode_owned`] delivers.
#[derive(Debug)]
pub enum Delivery<'a> {
    /// A good frame whose payload is borrowed (from the input or the decoder's buffer).
    Frame(Frame<'a>),
    /// A good frame of at least [`OWNED_MIN`] bytes assembled across reads, by value.
    Owned(OwnedFrame),
    /// A frame dropped by a per-message rule.
    Rejected(Rejected<'a>),
}

impl Delivery<'_> {
    /// Hands the delivery to `on_frame` as a lent frame (`Ok`, an owned payload lent too) or a
    /// rejection (`Err`): what the `decode` methods of both transports give.
    pub fn lend<F>(self, on_frame: &mut F)
    where
        F: FnMut(Result<Frame<'_>, Rejected<'_>>),
    {
        match self {
            Delivery::Frame(f) => on_frame(Ok(f)),
            Delivery::Owned(o) => {
                on_frame(Ok(Frame { command: &o.command, payload: &o.payload, checksum: o.checksum }))
            }
            Delivery::Rejected(r) => on_frame(Err(r)),
        }
    }
}

/// Decoder state for one connection.
pub struct V1Decoder {
    magic: [u8; 4],
    hdr: [u8; HEADER_SIZE],
    hdr_pos: usize,
    /// Declared payload length once the header is complete.
    payload_len: Option<usize>,
    /// Payload bytes of a frame that straddles reads (empty, unallocated, otherwise).
    partial: Vec<u8>,
    /// Running first SHA-256 of `partial`.
    hasher: sha256::HashEngine,
}

impl std::fmt::Debug for V1Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V1Decoder")
            .field("hdr_pos", &self.hdr_pos)
            .field("payload_len", &self.payload_len)
            .field("partial", &self.partial.len())
            .finish_non_exhaustive()
    }
}

impl V1Decoder {
    /// A decoder for frames of the network with message start `magic`.
    pub fn new(magic: [u8; 4]) -> Self {
        V1Decoder {
            magic,
            hdr: [0; HEADER_SIZE],
            hdr_pos: 0,
            payload_len: None,
            partial: Vec::new(),
            hasher: sha256d::Hash::engine(),
        }
    }

    /// Payload bytes received of the frame in progress (0 between frames).
    pub fn partial_len(&self) -> usize {
        self.partial.len()
    }

    /// Whether no partial frame is buffered.
    pub fn is_idle(&self) -> bool {
        self.hdr_pos == 0 && self.payload_len.is_none()
    }

    /// Bytes of heap memory held for a partial payload.
    pub fn buffered_capacity(&self) -> usize {
        self.partial.capacity()
    }

    /// Feeds received bytes. Calls `on_frame` for every complete frame, in order: `Ok` for a
    /// good one, `Err` for one dropped by a per-message rule. Returns an error (and stops) on a
    /// fault that must end the connection; frames completed before it were already delivered.
    pub fn decode<F>(&mut self, input: &[u8], mut on_frame: F) -> Result<(), TransportError>
    where
        F: FnMut(Result<Frame<'_>, Rejected<'_>>),
    {
        self.decode_owned(input, |d| d.lend(&mut on_frame))
    }

    /// [`V1Decoder::decode`], but a payload of at least [`OWNED_MIN`] bytes that was assembled
    /// across calls is handed over by value ([`Delivery::Owned`]) instead of being lent.
    pub fn decode_owned<F>(&mut self, mut input: &[u8], mut on_frame: F) -> Result<(), TransportError>
    where
        F: FnMut(Delivery<'_>),
    {
        while !input.is_empty() {
            let Some(len) = self.payload_len else {
                let take = (HEADER_SIZE - self.hdr_pos).min(input.len());
                let (head, rest) = input.split_at(take);
                self.hdr[self.hdr_pos..self.hdr_pos + take].copy_from_slice(head);
                let before = self.hdr_pos;
                self.hdr_pos += take;
                input = rest;
                if before < 4 {
                    let seen = self.hdr_pos.min(4);
                    if let Some(bad) = (0..seen).find(|&i| self.hdr[i] != self.magic[i]) {
                        // Report the bytes up to the first wrong one, so the error does not
                        // depend on how the bytes were split into reads.
                        let mut got = [0u8; 4];
                        got[..=bad].copy_from_slice(&self.hdr[..=bad]);
                        return Err(TransportError::WrongMagic { got, len: bad as u8 + 1 });
                    }
                }
                if self.hdr_pos < HEADER_SIZE {
                    return Ok(());
                }
                let declared = u32::from_le_bytes([self.hdr[16], self.hdr[17], self.hdr[18], self.hdr[19]]);
                let declared = declared as usize;
                if declared > MAX_PROTOCOL_MESSAGE_LENGTH {
                    return Err(TransportError::Oversized {
                        command: sanitize_command(self.command()),
                        len: declared as u64,
                    });
                }
                if input.len() >= declared {
                    // Fast path: the whole payload is in this read; no copy.
                    let (payload, rest) = input.split_at(declared);
                    let sum = checksum_of(payload);
                    self.deliver(payload, sum, &mut on_frame);
                    input = rest;
                } else {
                    self.payload_len = Some(declared);
                    self.hasher = sha256d::Hash::engine();
                }
                continue;
            };
            let need = len - self.partial.len();
            let take = need.min(input.len());
            let (chunk, rest) = input.split_at(take);
            let want = self.partial.len() + take;
            if self.partial.capacity() < want {
                let target = len.min(want.saturating_add(ALLOC_AHEAD));
                self.partial.reserve_exact(target - self.partial.len());
            }
            self.partial.extend_from_slice(chunk);
            self.hasher.input(chunk);
            input = rest;
            if self.partial.len() == len {
                let engine = std::mem::replace(&mut self.hasher, sha256d::Hash::engine());
                let hash = sha256d::Hash::from_engine(engine);
                let b = hash.as_byte_array();
                let sum = [b[0], b[1], b[2], b[3]];
                // The buffer is never kept: an idle connection holds no payload memory.
                let payload = std::mem::take(&mut self.partial);
                if len >= OWNED_MIN {
                    self.deliver_owned(payload, sum, &mut on_frame);
                } else {
                    self.deliver(&payload, sum, &mut on_frame);
                }
            }
        }
        Ok(())
    }

    fn command(&self) -> &Command {
        // The header array is exactly HEADER_SIZE bytes; bytes 4..16 are the type.
        let (_, rest) = self.hdr.split_at(4);
        let (cmd, _) = rest.split_at(COMMAND_SIZE);
        <&Command>::try_from(cmd).unwrap_or(&[0; COMMAND_SIZE])
    }

    /// The per-message checks of a complete frame whose payload hashes to `sum`; resets the
    /// header state. `None` when it passes.
    fn check(&mut self, sum: [u8; 4]) -> (Command, [u8; 4], Option<RejectReason>) {
        let checksum = [self.hdr[20], self.hdr[21], self.hdr[22], self.hdr[23]];
        let command = *self.command();
        self.hdr_pos = 0;
        self.payload_len = None;
        let reason = if sum != checksum {
            Some(RejectReason::BadChecksum)
        } else if !is_valid_command(&command) {
            Some(RejectReason::InvalidCommand)
        } else {
            None
        };
        (command, checksum, reason)
    }

    fn deliver<F>(&mut self, payload: &[u8], sum: [u8; 4], on_frame: &mut F)
    where
        F: FnMut(Delivery<'_>),
    {
        match self.check(sum) {
            (command, checksum, None) => on_frame(Delivery::Frame(Frame { command: &command, payload, checksum })),
            (command, _, Some(reason)) => {
                on_frame(Delivery::Rejected(Rejected { command: &command, len: payload.len(), reason }))
            }
        }
    }

    fn deliver_owned<F>(&mut self, payload: Vec<u8>, sum: [u8; 4], on_frame: &mut F)
    where
        F: FnMut(Delivery<'_>),
    {
        match self.check(sum) {
            (command, checksum, None) => on_frame(Delivery::Owned(OwnedFrame { command, payload, checksum })),
            (command, _, Some(reason)) => {
                on_frame(Delivery::Rejected(Rejected { command: &command, len: payload.len(), reason }))
            }
        }
    }
}

/// First four bytes of the payload's double SHA-256.
pub fn checksum_of(payload: &[u8]) -> [u8; 4] {
    let hash = sha256d::Hash::hash(payload);
    let b = hash.as_byte_array();
    [b[0], b[1], b[2], b[3]]
}

/// Core's `CMessageHeader::IsMessageTypeValid`: printable ASCII, then only NUL padding.
pub fn is_valid_command(command: &Command) -> bool {
    let mut seen_nul = false;
    for &b in command {
        if seen_nul {
            if b != 0 {
                return false;
            }
        } else if b == 0 {
            seen_nul = true;
        } else if !(b' '..=0x7e).contains(&b) {
            return false;
        }
    }
    true
}

/// The type as text: up to the first NUL, non-printable bytes dropped (Core's `SanitizeString`).
pub fn sanitize_command(command: &Command) -> String {
    command.iter().take_while(|&&b| b != 0).filter(|b| (b' '..=0x7e).contains(*b)).map(|&b| b as char).collect()
}

/// The type of a frame that passed [`is_valid_command`], as text (no allocation).
pub fn command_str(command: &Command) -> &str {
    let end = command.iter().position(|&b| b == 0).unwrap_or(COMMAND_SIZE);
    std::str::from_utf8(&command[..end]).unwrap_or("")
}

/// Appends one frame to `out`: a header for `command` and the payload `write_payload` appends.
/// No allocation beyond `out`'s growth. Returns the payload length.
///
/// `command` must be at most 12 bytes (every type the `bitcoin` crate knows is).
pub fn encode_frame(
    magic: [u8; 4],
    command: &str,
    out: &mut Vec<u8>,
    write_payload: impl FnOnce(&mut Vec<u8>),
) -> usize {
    encode_frame_reusing(magic, command, out, write_payload, Checksum::Compute)
}

/// How a frame's checksum field is filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum<'a> {
    /// The payload's double SHA-256 (v1).
    Compute,
    /// This checksum if the payload is byte-identical to these bytes (a `pong` echoes the
    /// `ping` just verified), else computed.
    Reuse(&'a [u8], [u8; 4]),
    /// Zeros: the frame goes out over BIP324 v2, whose packets carry no checksum (the sealing
    /// drops the whole v1 header), so hashing the payload would be work thrown away.
    Skip,
}

/// [`encode_frame`] with the checksum filled as `sum` says.
pub fn encode_frame_reusing(
    magic: [u8; 4],
    command: &str,
    out: &mut Vec<u8>,
    write_payload: impl FnOnce(&mut Vec<u8>),
    sum: Checksum<'_>,
) -> usize {
    let start = out.len();
    out.extend_from_slice(&magic);
    let mut cmd = [0u8; COMMAND_SIZE];
    let n = command.len().min(COMMAND_SIZE);
    cmd[..n].copy_from_slice(&command.as_bytes()[..n]);
    out.extend_from_slice(&cmd);
    out.extend_from_slice(&[0u8; 8]);
    write_payload(out);
    let payload = &out[start + HEADER_SIZE..];
    let payload_len = payload.len();
    let checksum = match sum {
        Checksum::Reuse(bytes, sum) if bytes == payload => sum,
        Checksum::Skip => [0; 4],
        _ => checksum_of(payload),
    };
    out[start + 16..start + 20].copy_from_slice(&(payload_len as u32).to_le_bytes());
    out[start + 20..start + 24].copy_from_slice(&checksum);
    payload_len
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub mod v2;

#[cfg(test)]
mod tests;
