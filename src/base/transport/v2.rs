//! The BIP324 v2 transport (Core's `V2Transport`) for one connection, I/O-free, on the `bip324`
//! crate: the handshake (our key and garbage, the peer's key, garbage, decoys and version
//! packet), then packets decrypted into the same [`Delivery`] values the v1 decoder produces, and
//! v1-encoded frames from the send queue encrypted into packets in batches.
//!
//! Rules, as Core: the peer's garbage may be 4,095 bytes at most before its terminator; a packet
//! whose contents length is above [`MAX_CONTENTS_LEN`] ends the connection before any of its
//! bytes are buffered; a packet whose tag does not authenticate ends it; decoy packets are
//! ignored; the version packet's contents are ignored; a message whose one-byte short ID nobody
//! assigned is dropped ([`RejectReason::UnknownShortId`]) and the peer kept. Memory follows the
//! bytes that arrived (at most [`ALLOC_AHEAD`] beyond them), and a payload of at least
//! [`OWNED_MIN`] bytes assembled across reads is decrypted in place and handed over by value.
//! Any split of the input into reads gives the same deliveries.
//!
//! The checksum field of a v2 frame is always [`V2_CHECKSUM`] (zeros): v2 packets carry no
//! checksum (the AEAD tag authenticates them), and the message handler only uses a received
//! frame's checksum to reuse it in the header of a reply that echoes the payload (`pong`), a
//! v1 header field that [`V2Transport::encrypt_frames`] drops. Hashing every payload just to
//! fill it would cost a double SHA-256 per message.

mod ids;

pub use bip324::Role;
pub use ids::{Detected, V1_PREFIX_LEN, command_of_short_id, detect, short_id_of};

use std::sync::LazyLock;

use bip324::{
    CipherSession, FillBytes, GarbageResult, Handshake, InboundCipher, OutboundCipher, PacketType, ReceivedGarbage,
    SentVersion, VersionResult,
};
use bitcoin::secp256k1::ellswift::{ElligatorSwift, ElligatorSwiftParty};
use bitcoin::secp256k1::{Secp256k1, SecretKey, SignOnly};

use crate::base::hash::hmac_sha256;

use super::{
    ALLOC_AHEAD, COMMAND_SIZE, Command, Delivery, Frame, HEADER_SIZE, MAX_PROTOCOL_MESSAGE_LENGTH, OWNED_MIN,
    OwnedFrame, RejectReason, Rejected, is_valid_command,
};

/// Core's `MAX_GARBAGE_LEN`: the most garbage bytes either side may send before its terminator.
pub const MAX_GARBAGE_LEN: usize = 4095;
/// Size of a garbage terminator.
pub const GARBAGE_TERMINATOR_LEN: usize = 16;
/// Size of an ElligatorSwift-encoded public key.
pub const ELLSWIFT_LEN: usize = 64;
/// Core's `MAX_CONTENTS_LEN`: a long type encoding (1 + 12 bytes) and the largest payload.
pub const MAX_CONTENTS_LEN: usize = 1 + COMMAND_SIZE + MAX_PROTOCOL_MESSAGE_LENGTH;
/// Bytes a packet adds to its contents: encrypted length (3), header (1), tag (16).
pub const EXPANSION: usize = LENGTH_LEN + 1 + TAG_LEN;
/// The checksum every v2 [`Frame`] and [`OwnedFrame`] carries (see the module documentation).
pub const V2_CHECKSUM: [u8; 4] = [0; 4];

const LENGTH_LEN: usize = 3;
const TAG_LEN: usize = 16;
/// The header bit that marks a decoy packet (Core's `IGNORE_BIT`).
const IGNORE_BIT: u8 = 0x80;
/// A packet that is whole in one input and at most this long is decrypted on the stack.
const STACK_PACKET: usize = 512;
/// Terminator and version packet (empty contents), what we send once the peer's key arrived.
const VERSION_SEND_LEN: usize = GARBAGE_TERMINATOR_LEN + EXPANSION;

static SECP: LazyLock<Secp256k1<SignOnly>> = LazyLock::new(Secp256k1::signing_only);

/// A fault that ends a v2 connection; the message is what the disconnect log line says.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum V2Error {
    /// The peer sent more than [`MAX_GARBAGE_LEN`] bytes without its garbage terminator.
    #[error("v2 garbage terminator not found within {MAX_GARBAGE_LEN} bytes")]
    NoGarbageTerminator,
    /// A packet's tag did not authenticate (wrong key, garbage, terminator, or altered bytes).
    #[error("v2 packet authentication failed")]
    Authentication,
    /// A packet declared contents longer than [`MAX_CONTENTS_LEN`]; none of it was buffered.
    #[error("v2 packet of {0} bytes exceeds the limit of {MAX_CONTENTS_LEN} bytes")]
    Oversized(usize),
    /// The peer's key starts with our network magic, which the `bip324` crate refuses as the
    /// start of a v1 message (a real v2 key does so with probability 2^-32).
    #[error("v2 peer key starts with the network magic (a v1 peer?)")]
    V1Key,
    /// The key exchange or a cipher step failed inside the `bip324` crate.
    #[error("v2 key exchange failed: {0}")]
    Crypto(String),
    /// Input arrived after an earlier fatal error.
    #[error("v2 transport already failed")]
    Failed,
}

fn crypto(e: impl std::fmt::Display) -> V2Error {
    V2Error::Crypto(e.to_string())
}

/// Hands the crate our stored secret key (the crate draws it through this trait).
struct FixedKey([u8; 32]);

impl FillBytes for FixedKey {
    fn fill_bytes(&mut self, dest: &mut [u8; 32]) {
        *dest = self.0;
    }
}

/// What the receiving side is waiting for.
enum Recv {
    /// The peer's key: how many of its bytes arrived (kept in `their_key`).
    Key(usize),
    /// The peer's garbage and terminator, then its first packet (buffered whole, as its
    /// authentication covers the garbage).
    Garbage(GarbageState),
    /// Decoy packets after the first one, until the version packet.
    Decoys(Box<Handshake<ReceivedGarbage<'static>>>),
    /// Application packets.
    App,
    /// A fatal error happened.
    Failed,
}

struct GarbageState {
    /// The terminator the peer ends its garbage with.
    term: [u8; GARBAGE_TERMINATOR_LEN],
    /// Garbage, terminator, then the first packet's bytes.
    buf: Vec<u8>,
    /// Garbage length once the terminator arrived.
    garbage_len: Option<usize>,
    /// Bytes after the length field of the first packet, once its length is known.
    first_len: Option<usize>,
}

/// The v2 transport of one connection.
pub struct V2Transport {
    magic: [u8; 4],
    role: Role,
    secret: [u8; 32],
    our_key: [u8; ELLSWIFT_LEN],
    /// Handshake bytes not taken yet by [`V2Transport::take_handshake`]: our key and garbage,
    /// then our terminator and version packet once the peer's key arrived (allocated once, with
    /// room for both when neither was taken yet).
    hs_out: Vec<u8>,
    /// Our garbage is this seed's stream ([`garbage_from`]): made again when our version packet
    /// needs it as associated data, so no connection keeps up to 4 KiB of it while the peer's
    /// key is on its way.
    garbage_seed: [u8; 32],
    /// How many garbage bytes we send.
    our_garbage_len: usize,
    their_key: [u8; ELLSWIFT_LEN],
    session_id: Option<[u8; 32]>,
    recv: Recv,
    /// Decrypts what the peer sends, once the handshake is over.
    inbound: Option<InboundCipher>,
    /// Encrypts what we send, until [`V2Transport::take_sender`] hands it to the send side.
    outbound: Option<OutboundCipher>,
    len_buf: [u8; LENGTH_LEN],
    len_pos: usize,
    /// Bytes after the length field of the packet in progress, once its length is known.
    packet_len: Option<usize>,
    /// Ciphertext of a packet that straddles reads (empty, unallocated, otherwise).
    partial: Vec<u8>,
}

impl std::fmt::Debug for V2Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V2Transport")
            .field("role", &self.role)
            .field("ready", &self.is_ready())
            .field("packet_len", &self.packet_len)
            .field("partial", &self.partial.len())
            .finish_non_exhaustive()
    }
}

impl V2Transport {
    /// A transport for `role` on the network with message start `magic`, with a fresh random
    /// key and 0..=4095 random garbage bytes (as Core). Its key and garbage are ready to send.
    pub fn new(magic: [u8; 4], role: Role) -> Result<Self, V2Error> {
        use rand::RngExt;
        let mut rng = rand::rng();
        let secret = loop {
            let s: [u8; 32] = rng.random();
            if SecretKey::from_slice(&s).is_ok() {
                break s;
            }
        };
        let garbage_len = rng.random_range(0..=MAX_GARBAGE_LEN);
        Self::with_key(magic, role, secret, rng.random(), garbage_len)
    }

    /// [`V2Transport::new`] with a given secret key and garbage (the `garbage_len` first bytes
    /// of `garbage_seed`'s stream), deterministic, for tests.
    pub fn with_key(
        magic: [u8; 4],
        role: Role,
        secret: [u8; 32],
        garbage_seed: [u8; 32],
        garbage_len: usize,
    ) -> Result<Self, V2Error> {
        if garbage_len > MAX_GARBAGE_LEN {
            return Err(V2Error::Crypto(format!("{garbage_len} bytes of garbage to send")));
        }
        let mut garbage = [0u8; MAX_GARBAGE_LEN];
        let garbage = &mut garbage[..garbage_len];
        garbage_from(&garbage_seed, garbage);
        let hs = Handshake::new_with_rng(magic, role, &mut FixedKey(secret), &*SECP).map_err(crypto)?;
        let key_len = ELLSWIFT_LEN + garbage_len;
        let mut hs_out = Vec::with_capacity(key_len + VERSION_SEND_LEN);
        hs_out.resize(key_len, 0);
        hs.send_key(Some(garbage), &mut hs_out).map_err(crypto)?;
        let mut our_key = [0u8; ELLSWIFT_LEN];
        our_key.copy_from_slice(&hs_out[..ELLSWIFT_LEN]);
        Ok(V2Transport {
            magic,
            role,
            secret,
            our_key,
            hs_out,
            garbage_seed,
            our_garbage_len: garbage_len,
            their_key: [0; ELLSWIFT_LEN],
            session_id: None,
            recv: Recv::Key(0),
            inbound: None,
            outbound: None,
            len_buf: [0; LENGTH_LEN],
            len_pos: 0,
            packet_len: None,
            partial: Vec::new(),
        })
    }

    /// Our role: initiator (we dialed) or responder.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The BIP324 session id (for `getpeerinfo`), known once the peer's key arrived.
    pub fn session_id(&self) -> Option<&[u8; 32]> {
        self.session_id.as_ref()
    }

    /// Whether the handshake is over: application messages can be encrypted and arrive.
    pub fn is_ready(&self) -> bool {
        self.inbound.is_some()
    }

    /// Whether handshake bytes wait to be sent.
    pub fn has_handshake(&self) -> bool {
        !self.hs_out.is_empty()
    }

    /// Appends the handshake bytes not sent yet to `out` (an empty `out` is replaced by them,
    /// without a copy): our key and garbage from the start, then our garbage terminator and
    /// version packet once the peer's key arrived.
    pub fn take_handshake(&mut self, out: &mut Vec<u8>) {
        if out.is_empty() {
            *out = std::mem::take(&mut self.hs_out);
        } else {
            out.extend_from_slice(&self.hs_out);
            self.hs_out = Vec::new();
        }
    }

    /// Whether no partial packet is buffered and the handshake is over.
    pub fn is_idle(&self) -> bool {
        matches!(self.recv, Recv::App) && self.len_pos == 0 && self.packet_len.is_none()
    }

    /// Bytes of heap memory held for received data (partial packet, handshake buffers).
    pub fn buffered_capacity(&self) -> usize {
        let hs = match &self.recv {
            Recv::Garbage(g) => g.buf.capacity(),
            _ => 0,
        };
        self.partial.capacity() + hs + self.hs_out.capacity()
    }

    /// Feeds received bytes, like [`super::V1Decoder::decode_owned`]: `on_frame` gets every
    /// message completed, in order ([`Delivery::Owned`] for a payload of at least [`OWNED_MIN`]
    /// bytes assembled across calls). Returns an error (and stops; later calls fail) on a fault
    /// that must end the connection; messages completed before it were already delivered.
    pub fn decode_owned<F>(&mut self, input: &[u8], mut on_frame: F) -> Result<(), V2Error>
    where
        F: FnMut(Delivery<'_>),
    {
        let r = self.decode_inner(input, &mut on_frame);
        if r.is_err() {
            self.recv = Recv::Failed;
            self.partial = Vec::new();
            self.hs_out = Vec::new();
            self.inbound = None;
            self.outbound = None;
        }
        r
    }

    /// [`V2Transport::decode_owned`] with every message lent (`Ok`) or rejected (`Err`).
    pub fn decode<F>(&mut self, input: &[u8], mut on_frame: F) -> Result<(), V2Error>
    where
        F: FnMut(Result<Frame<'_>, Rejected<'_>>),
    {
        self.decode_owned(input, |d| d.lend(&mut on_frame))
    }

    fn decode_inner<F>(&mut self, mut input: &[u8], on_frame: &mut F) -> Result<(), V2Error>
    where
        F: FnMut(Delivery<'_>),
    {
        while !input.is_empty() {
            match &mut self.recv {
                Recv::Failed => return Err(V2Error::Failed),
                Recv::Key(have) => {
                    let have_now = *have;
                    let take = (ELLSWIFT_LEN - have_now).min(input.len());
                    let (head, rest) = input.split_at(take);
                    self.their_key[have_now..have_now + take].copy_from_slice(head);
                    input = rest;
                    if have_now + take < ELLSWIFT_LEN {
                        self.recv = Recv::Key(have_now + take);
                    } else {
                        self.on_key()?;
                    }
                }
                Recv::Garbage(_) => input = self.garbage_bytes(input)?,
                Recv::Decoys(_) | Recv::App => return self.read_packets(input, on_frame),
            }
        }
        Ok(())
    }

    /// Builds the crate's handshake up to having sent our version packet (the key exchange is
    /// deterministic given our secret, garbage and the peer's key). Returns it with the bytes
    /// to send: our terminator and version packet.
    fn rebuild(&self) -> Result<(Handshake<SentVersion>, [u8; VERSION_SEND_LEN]), V2Error> {
        let hs = Handshake::new_with_rng(self.magic, self.role, &mut FixedKey(self.secret), &*SECP).map_err(crypto)?;
        let mut garbage = [0u8; MAX_GARBAGE_LEN];
        let garbage = garbage.get_mut(..self.our_garbage_len).ok_or(V2Error::Failed)?;
        garbage_from(&self.garbage_seed, garbage);
        let mut key = [0u8; ELLSWIFT_LEN + MAX_GARBAGE_LEN];
        let key = &mut key[..ELLSWIFT_LEN + garbage.len()];
        let hs = hs.send_key(Some(garbage), key).map_err(crypto)?;
        if key[..ELLSWIFT_LEN] != self.our_key {
            return Err(V2Error::Crypto("key encoding not reproducible".into()));
        }
        let hs = hs.receive_key(self.their_key).map_err(|e| match e {
            bip324::Error::V1Protocol => V2Error::V1Key,
            e => crypto(e),
        })?;
        let mut out = [0u8; VERSION_SEND_LEN];
        let hs = hs.send_version(&mut out, None).map_err(crypto)?;
        Ok((hs, out))
    }

    /// The peer's key is complete: queue our terminator and version packet, learn the session
    /// id and the peer's terminator.
    fn on_key(&mut self) -> Result<(), V2Error> {
        let (_, out) = self.rebuild()?;
        let keys = derive(self.magic, self.role, &self.secret, &self.our_key, &self.their_key)?;
        if out[..GARBAGE_TERMINATOR_LEN] != keys.send_term {
            return Err(V2Error::Crypto("garbage terminator derivation disagrees with bip324".into()));
        }
        self.hs_out.extend_from_slice(&out);
        self.session_id = Some(keys.session_id);
        self.recv =
            Recv::Garbage(GarbageState { term: keys.recv_term, buf: Vec::new(), garbage_len: None, first_len: None });
        Ok(())
    }

    /// Garbage, terminator and first packet bytes; returns the input left once the first
    /// packet is through.
    fn garbage_bytes<'i>(&mut self, mut input: &'i [u8]) -> Result<&'i [u8], V2Error> {
        let Recv::Garbage(g) = &mut self.recv else { return Ok(input) };
        let Some(glen) = g.garbage_len else {
            // Room for what this input can add (up to the length field after the terminator) in
            // one allocation, rather than doubling byte by byte.
            let most = MAX_GARBAGE_LEN + GARBAGE_TERMINATOR_LEN + LENGTH_LEN;
            g.buf.reserve_exact(input.len().min(most.saturating_sub(g.buf.len())));
            // Byte by byte, as Core: the terminator is the first 16 bytes matching it.
            let mut used = 0;
            for &b in input {
                g.buf.push(b);
                used += 1;
                let n = g.buf.len();
                if n >= GARBAGE_TERMINATOR_LEN && g.buf[n - GARBAGE_TERMINATOR_LEN..] == g.term {
                    g.garbage_len = Some(n - GARBAGE_TERMINATOR_LEN);
                    break;
                }
                if n >= MAX_GARBAGE_LEN + GARBAGE_TERMINATOR_LEN {
                    return Err(V2Error::NoGarbageTerminator);
                }
            }
            return Ok(&input[used..]);
        };
        let start = glen + GARBAGE_TERMINATOR_LEN;
        let Some(first) = g.first_len else {
            let have = g.buf.len() - start;
            let take = (LENGTH_LEN - have).min(input.len());
            g.buf.reserve_exact(take);
            g.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            if have + take == LENGTH_LEN {
                return self.first_length(input);
            }
            return Ok(input);
        };
        let have = g.buf.len() - start - LENGTH_LEN;
        let take = (first - have).min(input.len());
        grow(&mut g.buf, start + LENGTH_LEN + first, take);
        g.buf.extend_from_slice(&input[..take]);
        if have + take == first {
            self.finish_first()?;
        }
        Ok(&input[take..])
    }

    /// The first packet's length field is complete: check it against the limit before any of
    /// the packet is buffered, and when the whole packet is already in `input` authenticate it
    /// with the same handshake (one key exchange less); otherwise the handshake is dropped and
    /// rebuilt once the packet is complete.
    fn first_length<'i>(&mut self, input: &'i [u8]) -> Result<&'i [u8], V2Error> {
        let (hs, _) = self.rebuild()?;
        let Recv::Garbage(g) = &mut self.recv else { return Err(V2Error::Failed) };
        let start = g.garbage_len.unwrap_or(0) + GARBAGE_TERMINATOR_LEN;
        let buf = std::mem::take(&mut g.buf);
        let (head, len) = buf.split_at(start.min(buf.len()));
        let (mut hs, _) = found(hs.receive_garbage(head).map_err(crypto)?, start)?;
        let n = check_len(hs.decrypt_packet_len(length_bytes(len)).map_err(crypto)?)?;
        let Some(whole) = input.get(..n) else {
            g.buf = buf;
            g.first_len = Some(n);
            return Ok(input);
        };
        let mut packet = whole.to_vec();
        let r = hs.receive_version(&mut packet).map_err(|_| V2Error::Authentication)?;
        self.after_first(r);
        Ok(&input[n..])
    }

    /// The first packet is whole in the buffer: authenticate it (the garbage is its associated
    /// data).
    fn finish_first(&mut self) -> Result<(), V2Error> {
        let (hs, _) = self.rebuild()?;
        let Recv::Garbage(g) = &mut self.recv else { return Err(V2Error::Failed) };
        let start = g.garbage_len.unwrap_or(0) + GARBAGE_TERMINATOR_LEN;
        let mut buf = std::mem::take(&mut g.buf);
        let cut = start.min(buf.len());
        let (head, tail) = buf.split_at_mut(cut);
        let (mut hs, _) = found(hs.receive_garbage(head).map_err(crypto)?, start)?;
        let (len, packet) = tail.split_at_mut(LENGTH_LEN.min(tail.len()));
        hs.decrypt_packet_len(length_bytes(len)).map_err(crypto)?;
        let r = hs.receive_version(packet).map_err(|_| V2Error::Authentication)?;
        self.after_first(r);
        Ok(())
    }

    /// The first packet authenticated: the handshake is over, or decoys follow.
    fn after_first(&mut self, r: VersionResult<'_>) {
        match r {
            VersionResult::Complete { cipher } => self.complete(cipher),
            VersionResult::Decoy(hs) => {
                // SAFETY: a `Handshake<ReceivedGarbage<'a>>` borrows nothing but the peer's
                // garbage (the first packet's associated data), and bip324 0.11.0 (pinned with
                // `=` in Cargo.toml) takes that borrow out (`Option::take`) before decrypting
                // in `receive_version`; after a `Decoy` result the value holds no reference of
                // lifetime 'a, so extending it to 'static cannot dangle. Types that differ only
                // in a lifetime have the same layout.
                let hs: Handshake<ReceivedGarbage<'static>> = unsafe { std::mem::transmute(hs) };
                self.recv = Recv::Decoys(Box::new(hs));
            }
        }
    }

    fn complete(&mut self, cipher: CipherSession) {
        // Our own derivation of the session id (known since the peer's key) is the crate's.
        debug_assert_eq!(Some(cipher.id()), self.session_id.as_ref());
        let (inbound, outbound) = cipher.into_split();
        self.inbound = Some(inbound);
        self.outbound = Some(outbound);
        self.recv = Recv::App;
        // The key exchange is over: the secret key is not needed again.
        self.secret = [0; 32];
    }

    /// Packets after the first: decoys until the version packet, then application messages.
    fn read_packets<F>(&mut self, mut input: &[u8], on_frame: &mut F) -> Result<(), V2Error>
    where
        F: FnMut(Delivery<'_>),
    {
        while !input.is_empty() {
            let Some(n) = self.packet_len else {
                let take = (LENGTH_LEN - self.len_pos).min(input.len());
                self.len_buf[self.len_pos..self.len_pos + take].copy_from_slice(&input[..take]);
                self.len_pos += take;
                input = &input[take..];
                if self.len_pos < LENGTH_LEN {
                    return Ok(());
                }
                self.len_pos = 0;
                let n = match (&mut self.recv, &mut self.inbound) {
                    (Recv::Decoys(hs), _) => hs.decrypt_packet_len(self.len_buf).map_err(crypto)?,
                    (_, Some(c)) => c.decrypt_packet_len(self.len_buf),
                    _ => return Err(V2Error::Failed),
                };
                let n = check_len(n)?;
                if input.len() >= n && n <= STACK_PACKET && matches!(self.recv, Recv::App) {
                    // Fast path: a small packet whole in this input, decrypted on the stack.
                    let mut stack = [0u8; STACK_PACKET];
                    let packet = &mut stack[..n];
                    packet.copy_from_slice(&input[..n]);
                    input = &input[n..];
                    self.open_lent(packet, on_frame)?;
                } else {
                    self.packet_len = Some(n);
                }
                continue;
            };
            let have = self.partial.len();
            let take = (n - have).min(input.len());
            let across = have > 0 || take < n;
            grow(&mut self.partial, n, take);
            self.partial.extend_from_slice(&input[..take]);
            input = &input[take..];
            if have + take == n {
                self.packet_len = None;
                let packet = std::mem::take(&mut self.partial);
                self.open_buffer(packet, across, on_frame)?;
            }
        }
        Ok(())
    }

    /// Decrypts a packet in `packet` and lends its message.
    fn open_lent<F>(&mut self, packet: &mut [u8], on_frame: &mut F) -> Result<(), V2Error>
    where
        F: FnMut(Delivery<'_>),
    {
        if let Some(plain) = self.decrypt(packet)? {
            match classify(plain) {
                Ok((command, skip)) => {
                    let payload = plain.get(skip..).unwrap_or(&[]);
                    on_frame(Delivery::Frame(Frame { command: &command, payload, checksum: V2_CHECKSUM }));
                }
                Err((command, reason, len)) => {
                    on_frame(Delivery::Rejected(Rejected { command: &command, len, reason }))
                }
            }
        }
        Ok(())
    }

    /// Decrypts a buffered packet in place; a large payload assembled `across` reads is handed
    /// over by value.
    fn open_buffer<F>(&mut self, mut packet: Vec<u8>, across: bool, on_frame: &mut F) -> Result<(), V2Error>
    where
        F: FnMut(Delivery<'_>),
    {
        let Some(plain) = self.decrypt(&mut packet)? else { return Ok(()) };
        let (command, skip) = match classify(plain) {
            Ok(ok) => ok,
            Err((command, reason, len)) => {
                on_frame(Delivery::Rejected(Rejected { command: &command, len, reason }));
                return Ok(());
            }
        };
        let payload_len = plain.len().saturating_sub(skip);
        if across && payload_len >= OWNED_MIN {
            // Header byte and type before the payload, tag after it: cut both off in place.
            let end = packet.len().saturating_sub(TAG_LEN);
            packet.truncate(end);
            packet.drain(..(1 + skip).min(end));
            on_frame(Delivery::Owned(OwnedFrame { command, payload: packet, checksum: V2_CHECKSUM }));
        } else {
            let payload = plain.get(skip..).unwrap_or(&[]);
            on_frame(Delivery::Frame(Frame { command: &command, payload, checksum: V2_CHECKSUM }));
        }
        Ok(())
    }

    /// Authenticates and decrypts one packet (after its length field) in place. Returns the
    /// contents of an application message; `None` for a decoy or the version packet.
    fn decrypt<'p>(&mut self, packet: &'p mut [u8]) -> Result<Option<&'p [u8]>, V2Error> {
        if let Recv::Decoys(_) = self.recv {
            let Recv::Decoys(hs) = std::mem::replace(&mut self.recv, Recv::Failed) else { return Err(V2Error::Failed) };
            match hs.receive_version(packet).map_err(|_| V2Error::Authentication)? {
                VersionResult::Complete { cipher } => self.complete(cipher),
                VersionResult::Decoy(hs) => self.recv = Recv::Decoys(Box::new(hs)),
            }
            return Ok(None);
        }
        let Some(cipher) = self.inbound.as_mut() else { return Err(V2Error::Failed) };
        let (_, plain) = cipher.decrypt_in_place(packet, None).map_err(|_| V2Error::Authentication)?;
        match plain.split_first() {
            Some((&header, contents)) if header & IGNORE_BIT == 0 => Ok(Some(contents)),
            _ => Ok(None),
        }
    }

    /// Encrypts whole v1 frames (magic | type | length | checksum | payload, back to back, as
    /// the send queue holds them) into v2 packets appended to `out`, with short IDs where BIP324
    /// has them. Returns how many bytes of `frames` were consumed: a partial frame at the end is
    /// left for the next call, and nothing is consumed before the handshake is over
    /// ([`V2Transport::is_ready`]). No allocation beyond `out`'s growth.
    pub fn encrypt_frames(&mut self, frames: &[u8], out: &mut Vec<u8>) -> Result<usize, V2Error> {
        match self.outbound.as_mut() {
            Some(cipher) => encrypt_frames(cipher, frames, out),
            None => Ok(0),
        }
    }

    /// Once the handshake is over, the sending half, taken once: the send queue encrypts with
    /// it from then on, on whichever thread writes, while this value keeps decrypting.
    pub fn take_sender(&mut self) -> Option<V2Sender> {
        self.outbound.take().map(|cipher| V2Sender { cipher })
    }
}

/// The sending half of a v2 connection once its handshake is over (the outbound cipher).
pub struct V2Sender {
    cipher: OutboundCipher,
}

impl std::fmt::Debug for V2Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V2Sender").finish_non_exhaustive()
    }
}

impl V2Sender {
    /// [`V2Transport::encrypt_frames`], for the send side.
    pub fn encrypt_frames(&mut self, frames: &[u8], out: &mut Vec<u8>) -> Result<usize, V2Error> {
        encrypt_frames(&mut self.cipher, frames, out)
    }
}

/// Encrypts whole v1 frames from the start of `frames` into packets appended to `out`;
/// returns the bytes of `frames` consumed (see [`V2Transport::encrypt_frames`]).
fn encrypt_frames(cipher: &mut OutboundCipher, frames: &[u8], out: &mut Vec<u8>) -> Result<usize, V2Error> {
    let mut used = 0;
    while let Some(rest) = frames.get(used..) {
        let Some(head) = rest.get(..HEADER_SIZE) else { break };
        let len = u32::from_le_bytes([head[16], head[17], head[18], head[19]]) as usize;
        let Some(payload) = rest.get(HEADER_SIZE..HEADER_SIZE + len) else { break };
        let mut command = [0u8; COMMAND_SIZE];
        command.copy_from_slice(&head[4..16]);
        let (type_bytes, type_len) = match short_id_of(&command) {
            Some(id) => ([id; 13], 1),
            None => {
                let mut t = [0u8; 13];
                t[1..].copy_from_slice(&command);
                (t, 13)
            }
        };
        let contents_len = type_len + len;
        let packet_len = contents_len + EXPANSION;
        let start = out.len();
        // The contents are staged after the packet's room, then encrypted into it.
        out.resize(start + packet_len + contents_len, 0);
        let (packet, stage) = out[start..].split_at_mut(packet_len);
        stage[..type_len].copy_from_slice(&type_bytes[..type_len]);
        stage[type_len..].copy_from_slice(payload);
        let r = cipher.encrypt(stage, packet, PacketType::Genuine, None);
        out.truncate(start + packet_len);
        if let Err(e) = r {
            out.truncate(start);
            return Err(crypto(e));
        }
        used += HEADER_SIZE + len;
    }
    Ok(used)
}

/// Reserves room for `take` more bytes of a packet of `total` bytes: at most [`ALLOC_AHEAD`]
/// beyond what arrived, never the declared length at once.
fn grow(buf: &mut Vec<u8>, total: usize, take: usize) {
    let want = buf.len() + take;
    if buf.capacity() < want {
        let target = total.min(want.saturating_add(ALLOC_AHEAD));
        buf.reserve_exact(target.saturating_sub(buf.len()));
    }
}

/// Fills `out` with the stream of a seeded CSPRNG: our garbage, the same every time for a seed.
fn garbage_from(seed: &[u8; 32], out: &mut [u8]) {
    use rand::{RngExt, SeedableRng};
    rand::rngs::StdRng::from_seed(*seed).fill(out);
}

fn length_bytes(b: &[u8]) -> [u8; LENGTH_LEN] {
    let mut len = [0u8; LENGTH_LEN];
    for (d, s) in len.iter_mut().zip(b) {
        *d = *s;
    }
    len
}

/// The decrypted length (header + contents + tag) checked against Core's contents limit.
fn check_len(n: usize) -> Result<usize, V2Error> {
    let contents = n.saturating_sub(1 + TAG_LEN);
    if contents > MAX_CONTENTS_LEN { Err(V2Error::Oversized(contents)) } else { Ok(n) }
}

fn found(r: GarbageResult<'_>, start: usize) -> Result<(Handshake<ReceivedGarbage<'_>>, usize), V2Error> {
    match r {
        GarbageResult::FoundGarbage { handshake, consumed_bytes } if consumed_bytes == start => {
            Ok((handshake, consumed_bytes))
        }
        _ => Err(V2Error::Crypto("garbage terminator not where it was found".into())),
    }
}

/// Core's `GetMessageType`: the type and how many bytes of `contents` it took, or the reason
/// the message is dropped with the type (zeros when unknown) and the payload length.
fn classify(contents: &[u8]) -> Result<(Command, usize), (Command, RejectReason, usize)> {
    let Some((&first, rest)) = contents.split_first() else {
        return Err(([0; COMMAND_SIZE], RejectReason::InvalidCommand, 0));
    };
    if first != 0 {
        return match command_of_short_id(first) {
            Some(command) => Ok((command, 1)),
            None => Err(([0; COMMAND_SIZE], RejectReason::UnknownShortId, rest.len())),
        };
    }
    let Some(name) = rest.get(..COMMAND_SIZE) else {
        return Err(([0; COMMAND_SIZE], RejectReason::InvalidCommand, rest.len()));
    };
    let mut command = [0u8; COMMAND_SIZE];
    command.copy_from_slice(name);
    if is_valid_command(&command) {
        Ok((command, 1 + COMMAND_SIZE))
    } else {
        Err((command, RejectReason::InvalidCommand, rest.len() - COMMAND_SIZE))
    }
}

/// What both sides derive from the key exchange that the crate keeps private.
struct Derived {
    session_id: [u8; 32],
    send_term: [u8; GARBAGE_TERMINATOR_LEN],
    recv_term: [u8; GARBAGE_TERMINATOR_LEN],
}

/// BIP324's key derivation (HKDF-SHA256 over the x-only ECDH secret) for the session id and the
/// garbage terminators.
fn derive(
    magic: [u8; 4],
    role: Role,
    secret: &[u8; 32],
    ours: &[u8; ELLSWIFT_LEN],
    theirs: &[u8; ELLSWIFT_LEN],
) -> Result<Derived, V2Error> {
    let sk = SecretKey::from_slice(secret).map_err(crypto)?;
    let (a, b, party) = match role {
        Role::Initiator => (ours, theirs, ElligatorSwiftParty::A),
        Role::Responder => (theirs, ours, ElligatorSwiftParty::B),
    };
    let shared = ElligatorSwift::shared_secret(
        ElligatorSwift::from_array(*a),
        ElligatorSwift::from_array(*b),
        sk,
        party,
        Some(b"bip324_ellswift_xonly_ecdh"),
    );
    let mut salt = [0u8; 28];
    salt[..24].copy_from_slice(b"bitcoin_v2_shared_secret");
    salt[24..].copy_from_slice(&magic);
    let prk = hmac_sha256(&salt, &[shared.as_secret_bytes()]);
    let session_id = hmac_sha256(&prk, &[b"session_id", &[1]]);
    let terms = hmac_sha256(&prk, &[b"garbage_terminators", &[1]]);
    let mut initiator = [0u8; GARBAGE_TERMINATOR_LEN];
    let mut responder = [0u8; GARBAGE_TERMINATOR_LEN];
    initiator.copy_from_slice(&terms[..16]);
    responder.copy_from_slice(&terms[16..]);
    let (send_term, recv_term) = match role {
        Role::Initiator => (initiator, responder),
        Role::Responder => (responder, initiator),
    };
    Ok(Derived { session_id, send_term, recv_term })
}

#[cfg(test)]
mod tests;
