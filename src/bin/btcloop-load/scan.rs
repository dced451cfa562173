//! A minimal v1 frame scanner for the `headers` mode: it checks each frame header (network
//! magic, declared length) and, for `headers` frames, reads only the count varint and skips the
//! rest of the payload: no copy, no checksum, no decoding. Every other frame (and a `headers`
//! frame picked for a sampled check) is collected whole and its checksum verified, as
//! [`btcloop::base::transport::V1Decoder`] does. Frames may be split across reads anywhere.

use btcloop::base::transport::{COMMAND_SIZE, Command, HEADER_SIZE, MAX_PROTOCOL_MESSAGE_LENGTH, checksum_of};

/// The message type of `headers` frames, NUL padded.
pub(crate) const HEADERS_CMD: Command = *b"headers\0\0\0\0\0";
/// Length of one header in a `headers` payload: the 80-byte header and its (zero) tx count.
pub(crate) const HEADER_ENTRY: usize = 81;

/// What the scanner found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scanned<'a> {
    /// A `headers` frame skipped unread: its declared header count, and whether the payload
    /// length is exactly the count varint plus 81 bytes per header.
    Skipped {
        /// The count varint (0 if the payload was too short to hold it).
        count: u64,
        /// Payload length.
        len: usize,
        /// `len` == varint length + 81 × `count`.
        consistent: bool,
    },
    /// A whole frame whose checksum matched.
    Frame {
        /// Message type, NUL padded.
        command: &'a Command,
        /// The payload.
        payload: &'a [u8],
    },
    /// A whole frame whose checksum did not match; dropped.
    BadChecksum {
        /// Message type, NUL padded.
        command: &'a Command,
    },
}

#[derive(Clone, Copy, Debug)]
enum State {
    /// Filling the 24-byte frame header.
    Header,
    /// Collecting a payload of `len` bytes into `buf`.
    Collect { len: usize },
    /// Skipping a `headers` payload of `len` bytes, `seen` of them consumed so far; the first
    /// (up to 9) go to `prefix` until the count varint is complete.
    Skip { len: usize, seen: usize, prefix: [u8; 9] },
}

/// Scanner state for one connection.
#[derive(Debug)]
pub(crate) struct Scanner {
    magic: [u8; 4],
    hdr: [u8; HEADER_SIZE],
    hdr_pos: usize,
    state: State,
    /// Payload of a collected frame that straddles reads.
    buf: Vec<u8>,
    /// Collect one `headers` frame in this many (1: all; 0: none).
    collect_every: u64,
    /// `headers` frames seen so far.
    headers_frames: u64,
}

/// Length of a Bitcoin compact-size integer from its first byte.
pub(crate) fn varint_len(first: u8) -> usize {
    match first {
        0xfd => 3,
        0xfe => 5,
        0xff => 9,
        _ => 1,
    }
}

/// Value of a complete compact-size integer (`b` holds at least `varint_len(b[0])` bytes).
fn varint_value(b: &[u8]) -> u64 {
    let n = varint_len(b[0]);
    if n == 1 {
        return u64::from(b[0]);
    }
    let mut le = [0u8; 8];
    le[..n - 1].copy_from_slice(&b[1..n]);
    u64::from_le_bytes(le)
}

impl Scanner {
    /// A scanner for the network with message start `magic` that collects one `headers` frame
    /// in `collect_every` (1: every one; 0: none) and skips the others.
    pub(crate) fn new(magic: [u8; 4], collect_every: u64) -> Scanner {
        Scanner {
            magic,
            hdr: [0; HEADER_SIZE],
            hdr_pos: 0,
            state: State::Header,
            buf: Vec::new(),
            collect_every,
            headers_frames: 0,
        }
    }

    fn command(&self) -> Command {
        let mut c = [0u8; COMMAND_SIZE];
        c.copy_from_slice(&self.hdr[4..4 + COMMAND_SIZE]);
        c
    }

    /// Feeds received bytes, calling `on` for every complete frame in order. A wrong magic or
    /// an oversized length is an error that ends the connection.
    pub(crate) fn scan(&mut self, mut input: &[u8], mut on: impl FnMut(Scanned<'_>)) -> Result<(), String> {
        while !input.is_empty() {
            match self.state {
                State::Header => {
                    let take = (HEADER_SIZE - self.hdr_pos).min(input.len());
                    self.hdr[self.hdr_pos..self.hdr_pos + take].copy_from_slice(&input[..take]);
                    let before = self.hdr_pos;
                    self.hdr_pos += take;
                    input = &input[take..];
                    if before < 4 {
                        let seen = self.hdr_pos.min(4);
                        if self.hdr[..seen] != self.magic[..seen] {
                            return Err(format!("wrong network magic {:02x?}", &self.hdr[..seen]));
                        }
                    }
                    if self.hdr_pos < HEADER_SIZE {
                        return Ok(());
                    }
                    self.hdr_pos = 0;
                    let len = u32::from_le_bytes([self.hdr[16], self.hdr[17], self.hdr[18], self.hdr[19]]) as usize;
                    if len > MAX_PROTOCOL_MESSAGE_LENGTH {
                        return Err(format!("oversized message: {len} bytes"));
                    }
                    let is_headers = self.hdr[4..4 + COMMAND_SIZE] == HEADERS_CMD;
                    let collect = !is_headers || {
                        self.headers_frames += 1;
                        self.collect_every != 0 && self.headers_frames % self.collect_every == 0
                    };
                    if len == 0 && collect {
                        self.finish(&[], &mut on);
                    } else if len == 0 {
                        on(Scanned::Skipped { count: 0, len: 0, consistent: false });
                    } else if collect {
                        self.state = State::Collect { len };
                    } else {
                        self.state = State::Skip { len, seen: 0, prefix: [0; 9] };
                    }
                }
                State::Collect { len } => {
                    if self.buf.is_empty() && input.len() >= len {
                        // The whole payload is in this read: no copy.
                        let (payload, rest) = input.split_at(len);
                        input = rest;
                        self.finish(payload, &mut on);
                        continue;
                    }
                    let take = (len - self.buf.len()).min(input.len());
                    self.buf.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.buf.len() == len {
                        let payload = std::mem::take(&mut self.buf);
                        self.finish(&payload, &mut on);
                        self.buf = payload;
                        self.buf.clear();
                    }
                }
                State::Skip { len, mut seen, mut prefix } => {
                    // Bytes of the count varint still missing (0 once it is complete).
                    let need = if seen == 0 { 1 } else { varint_len(prefix[0]).saturating_sub(seen) };
                    let take = if need > 0 {
                        let take = need.min(len - seen).min(input.len());
                        prefix[seen..seen + take].copy_from_slice(&input[..take]);
                        take
                    } else {
                        (len - seen).min(input.len())
                    };
                    seen += take;
                    input = &input[take..];
                    if seen == len {
                        self.state = State::Header;
                        let vlen = varint_len(prefix[0]);
                        let count = if len >= vlen { varint_value(&prefix) } else { 0 };
                        let consistent =
                            len >= vlen && (count as u128) * (HEADER_ENTRY as u128) + vlen as u128 == len as u128;
                        on(Scanned::Skipped { count, len, consistent });
                    } else {
                        self.state = State::Skip { len, seen, prefix };
                    }
                }
            }
        }
        Ok(())
    }

    /// Delivers a collected payload and returns to reading frame headers.
    fn finish(&mut self, payload: &[u8], on: &mut impl FnMut(Scanned<'_>)) {
        self.state = State::Header;
        let command = self.command();
        let sum = [self.hdr[20], self.hdr[21], self.hdr[22], self.hdr[23]];
        if checksum_of(payload) == sum {
            on(Scanned::Frame { command: &command, payload });
        } else {
            on(Scanned::BadChecksum { command: &command });
        }
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::block::Header;
    use bitcoin::p2p::message::NetworkMessage;
    use btcloop::base::chainparams::Network;
    use btcloop::base::message::encode_message;
    use btcloop::base::transport::command_str;
    use btcloop::engine::chain::mine::mine_chain;
    use btcloop::engine::chain::params::ChainParams;

    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Got {
        Skipped(u64, usize, bool),
        Frame(String, Vec<u8>),
        Bad(String),
    }

    fn run(sc: &mut Scanner, input: &[u8], cuts: &[usize]) -> Result<Vec<Got>, String> {
        let mut got = Vec::new();
        let mut at = 0;
        for &c in cuts.iter().chain(std::iter::once(&input.len())) {
            sc.scan(&input[at..c], |s| {
                got.push(match s {
                    Scanned::Skipped { count, len, consistent } => Got::Skipped(count, len, consistent),
                    Scanned::Frame { command, payload } => Got::Frame(command_str(command).into(), payload.to_vec()),
                    Scanned::BadChecksum { command } => Got::Bad(command_str(command).into()),
                })
            })?;
            at = c;
        }
        Ok(got)
    }

    fn stream() -> (Vec<u8>, Vec<Header>) {
        let magic = Network::Regtest.magic();
        let params = ChainParams::new(Network::Regtest);
        let headers = mine_chain(&params, &params.genesis, 300, 7);
        let mut out = Vec::new();
        encode_message(magic, &NetworkMessage::Ping(5), &mut out);
        encode_message(magic, &NetworkMessage::Headers(headers.clone()), &mut out);
        encode_message(magic, &NetworkMessage::Verack, &mut out);
        encode_message(magic, &NetworkMessage::Headers(headers[..3].to_vec()), &mut out);
        encode_message(magic, &NetworkMessage::Headers(Vec::new()), &mut out);
        (out, headers)
    }

    #[test]
    fn every_split_gives_the_same_frames() {
        let (bytes, _) = stream();
        let expect = vec![
            Got::Frame("ping".into(), 5u64.to_le_bytes().to_vec()),
            Got::Skipped(300, 3 + 300 * 81, true),
            Got::Frame("verack".into(), Vec::new()),
            Got::Skipped(3, 1 + 3 * 81, true),
            Got::Skipped(0, 1, true),
        ];
        let mut whole = Scanner::new(Network::Regtest.magic(), 0);
        assert_eq!(run(&mut whole, &bytes, &[]).unwrap(), expect);
        for cut in 0..bytes.len() {
            let mut sc = Scanner::new(Network::Regtest.magic(), 0);
            assert_eq!(run(&mut sc, &bytes, &[cut]).unwrap(), expect, "cut at {cut}");
        }
        let mut bytewise = Scanner::new(Network::Regtest.magic(), 0);
        let cuts: Vec<usize> = (1..bytes.len()).collect();
        assert_eq!(run(&mut bytewise, &bytes, &cuts).unwrap(), expect);
    }

    #[test]
    fn collects_sampled_headers_and_checks_checksums() {
        let (mut bytes, headers) = stream();
        let mut sc = Scanner::new(Network::Regtest.magic(), 2);
        let got = run(&mut sc, &bytes, &[100, 5000]).unwrap();
        assert!(matches!(got[1], Got::Skipped(300, _, true)));
        match &got[3] {
            Got::Frame(cmd, payload) => {
                assert_eq!(cmd, "headers");
                assert_eq!(payload.len(), 1 + 3 * 81);
                assert_eq!(&payload[1..81], &bitcoin::consensus::serialize(&headers[0])[..]);
            }
            other => panic!("expected a collected headers frame, got {other:?}"),
        }
        // Corrupt the ping's payload: its checksum fails, the rest is unaffected.
        bytes[HEADER_SIZE] ^= 1;
        let mut sc = Scanner::new(Network::Regtest.magic(), 1);
        let got = run(&mut sc, &bytes, &[10]).unwrap();
        assert_eq!(got[0], Got::Bad("ping".into()));
        assert_eq!(got.len(), 5);
        assert!(matches!(&got[1], Got::Frame(c, _) if c == "headers"));
    }

    #[test]
    fn inconsistent_length_and_fatal_errors() {
        let magic = Network::Regtest.magic();
        let mut frame = Vec::new();
        // A headers frame claiming 2 headers in a 10-byte payload.
        btcloop::base::transport::encode_frame(magic, "headers", &mut frame, |p| p.extend_from_slice(&[2; 10]));
        let mut sc = Scanner::new(magic, 0);
        assert_eq!(run(&mut sc, &frame, &[25]).unwrap(), vec![Got::Skipped(2, 10, false)]);
        // A varint cut short by the end of the payload.
        frame.clear();
        btcloop::base::transport::encode_frame(magic, "headers", &mut frame, |p| p.extend_from_slice(&[0xfd, 1]));
        assert_eq!(run(&mut sc, &frame, &[]).unwrap(), vec![Got::Skipped(0, 2, false)]);

        let mut bad = frame.clone();
        bad[2] ^= 0xff;
        assert!(Scanner::new(magic, 0).scan(&bad[..3], |_| {}).is_err());
        let mut huge = frame.clone();
        huge[16..20].copy_from_slice(&(MAX_PROTOCOL_MESSAGE_LENGTH as u32 + 1).to_le_bytes());
        assert!(Scanner::new(magic, 0).scan(&huge, |_| {}).is_err());
    }
}
