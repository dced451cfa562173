//! Property tests for the v1 frame decoder (`V1Decoder`) and the payload codec.
//!
//! * Chunking invariance: any byte stream, split anywhere into any chunks (empty ones included),
//!   gives the same frame events and the same final result as the unsplit stream.
//! * Round trip: frames written with `encode_frame` come back unchanged, whatever the chunking.
//! * `decode_payload` never panics, and what it decodes re-encodes to a frame that decodes to
//!   the same message.
//! * Memory: a partial payload never holds more than the received bytes plus `ALLOC_AHEAD`.

use bitcoin::p2p::message::NetworkMessage;
use btcloop::base::message::{command_of, decode_payload, encode_message};
use btcloop::base::transport::{
    ALLOC_AHEAD, COMMAND_SIZE, Command, HEADER_SIZE, MAX_PROTOCOL_MESSAGE_LENGTH, RejectReason, TransportError,
    V1Decoder, checksum_of, command_str, encode_frame, is_valid_command,
};
use proptest::prelude::*;
use proptest::sample::Index;

/// Regtest message start.
const MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];

/// Every type `decode_payload` knows.
const KNOWN: &[&str] = &[
    "version",
    "verack",
    "addr",
    "inv",
    "getdata",
    "notfound",
    "getblocks",
    "getheaders",
    "mempool",
    "tx",
    "block",
    "headers",
    "sendheaders",
    "getaddr",
    "ping",
    "pong",
    "merkleblock",
    "filterload",
    "filteradd",
    "filterclear",
    "getcfilters",
    "cfilter",
    "getcfheaders",
    "cfheaders",
    "getcfcheckpt",
    "cfcheckpt",
    "sendcmpct",
    "cmpctblock",
    "getblocktxn",
    "blocktxn",
    "alert",
    "reject",
    "feefilter",
    "wtxidrelay",
    "addrv2",
    "sendaddrv2",
];

/// One frame event, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Good { command: Command, payload: Vec<u8> },
    Dropped { command: Command, reason: RejectReason, len: usize },
}

/// What feeding a stream produced: the events, the result of the last `decode` call (the first
/// error ends the feeding) and whether the decoder was idle at the end.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<Event>,
    result: Result<(), TransportError>,
    idle: bool,
}

/// Feeds `chunks` in order, stopping after the first fatal error.
fn feed<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut dec = V1Decoder::new(MAGIC);
    let mut events = Vec::new();
    let mut result = Ok(());
    for chunk in chunks {
        result = dec.decode(chunk, |f| {
            events.push(match f {
                Ok(f) => Event::Good { command: *f.command, payload: f.payload.to_vec() },
                Err(r) => Event::Dropped { command: *r.command, reason: r.reason, len: r.len },
            })
        });
        if result.is_err() {
            break;
        }
    }
    Outcome { events, result, idle: dec.is_idle() }
}

/// Splits `stream` at `cuts` (positions picked by index, sorted, duplicates kept so that empty
/// chunks are fed too).
fn split<'a>(stream: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut pos: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
    pos.sort_unstable();
    let mut chunks = Vec::with_capacity(pos.len() + 1);
    let mut start = 0;
    for p in pos {
        chunks.push(&stream[start..p]);
        start = p;
    }
    chunks.push(&stream[start..]);
    chunks
}

fn check_split_invariance(stream: &[u8], cuts: &[Index]) -> Result<(), TestCaseError> {
    let whole = feed([stream]);
    let chunks = split(stream, cuts);
    let lens: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
    let parts = feed(chunks);
    prop_assert_eq!(&parts, &whole, "chunk lengths {:?}", lens);
    // One byte at a time too, for short streams (the fastest to run).
    if stream.len() <= 512 {
        prop_assert_eq!(&feed(stream.chunks(1)), &whole, "byte by byte");
    }
    Ok(())
}

fn cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..24)
}

/// A message type that passes `is_valid_command`: a known one, or up to 12 printable ASCII
/// characters (possibly empty, possibly a known type spelled differently).
fn valid_command() -> impl Strategy<Value = String> {
    prop_oneof![prop::sample::select(KNOWN).prop_map(str::to_string), "[a-z]{1,12}", "[ -~]{0,12}",]
}

/// Payload sizes skewed small, sometimes a few KB.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..64),
        1 => prop::collection::vec(any::<u8>(), 0..5000),
    ]
}

fn frame(command: &str, payload: &[u8], out: &mut Vec<u8>) {
    encode_frame(MAGIC, command, out, |o| o.extend_from_slice(payload));
}

/// A damage applied to an encoded stream of frames.
#[derive(Clone, Debug)]
enum Damage {
    /// Overwrite any byte.
    Byte(Index, u8),
    /// Overwrite a header byte (magic, type, length or checksum) of one frame.
    Header(Index, usize, u8),
    /// Declare another payload length in one frame's header.
    Length(Index, u32),
    /// Cut the stream short.
    Truncate(Index),
    /// Insert bytes somewhere.
    Insert(Index, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Byte(i, b)),
        (any::<Index>(), 0..HEADER_SIZE, any::<u8>()).prop_map(|(i, o, b)| Damage::Header(i, o, b)),
        (any::<Index>(), prop_oneof![0..64u32, 0..=(MAX_PROTOCOL_MESSAGE_LENGTH as u32 + 2), any::<u32>()])
            .prop_map(|(i, l)| Damage::Length(i, l)),
        any::<Index>().prop_map(Damage::Truncate),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..32)).prop_map(|(i, b)| Damage::Insert(i, b)),
    ]
}

/// Encodes `frames` and applies `damages` (positions resolved against the current stream).
fn damaged_stream(frames: &[(String, Vec<u8>)], damages: &[Damage]) -> Vec<u8> {
    let mut stream = Vec::new();
    let mut starts = Vec::new();
    for (command, payload) in frames {
        starts.push(stream.len());
        frame(command, payload, &mut stream);
    }
    for d in damages {
        match d {
            Damage::Byte(i, b) if !stream.is_empty() => {
                let at = i.index(stream.len());
                stream[at] = *b;
            }
            Damage::Header(i, off, b) if !starts.is_empty() => {
                let at = starts[i.index(starts.len())] + off;
                if at < stream.len() {
                    stream[at] = *b;
                }
            }
            Damage::Length(i, len) if !starts.is_empty() => {
                let at = starts[i.index(starts.len())] + 16;
                if at + 4 <= stream.len() {
                    stream[at..at + 4].copy_from_slice(&len.to_le_bytes());
                }
            }
            Damage::Truncate(i) => {
                let at = i.index(stream.len() + 1);
                stream.truncate(at);
            }
            Damage::Insert(i, bytes) => {
                let at = i.index(stream.len() + 1);
                stream.splice(at..at, bytes.iter().copied());
            }
            _ => {}
        }
    }
    stream
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random bytes: almost always a wrong magic, at the first byte or further in.
    #[test]
    fn random_bytes_split_anywhere_decode_identically(
        stream in prop::collection::vec(any::<u8>(), 0..4096),
        cuts in cuts(),
    ) {
        check_split_invariance(&stream, &cuts)?;
    }

    /// The magic, then random bytes: exercises random headers (bad checksums, invalid types,
    /// oversized lengths, partial payloads) rather than only the magic check.
    #[test]
    fn magic_then_random_bytes_split_anywhere_decode_identically(
        magic_len in 0..=4usize,
        rest in prop::collection::vec(any::<u8>(), 0..4096),
        cuts in cuts(),
    ) {
        let mut stream = MAGIC[..magic_len].to_vec();
        stream.extend_from_slice(&rest);
        check_split_invariance(&stream, &cuts)?;
    }

    /// Valid frames of random types and payloads, damaged at random.
    #[test]
    fn damaged_frames_split_anywhere_decode_identically(
        frames in prop::collection::vec((valid_command(), payload()), 0..8),
        damages in prop::collection::vec(damage(), 0..4),
        cuts in cuts(),
    ) {
        let stream = damaged_stream(&frames, &damages);
        check_split_invariance(&stream, &cuts)?;
    }

    /// Valid frames come back as they were sent, whatever the chunking, and leave the decoder
    /// idle with no payload buffer held.
    #[test]
    fn valid_frames_round_trip_in_any_chunks(
        frames in prop::collection::vec((valid_command(), payload()), 0..16),
        cuts in cuts(),
    ) {
        let mut stream = Vec::new();
        for (command, payload) in &frames {
            frame(command, payload, &mut stream);
        }
        let mut dec = V1Decoder::new(MAGIC);
        let mut got = Vec::new();
        let mut dropped = 0;
        for chunk in split(&stream, &cuts) {
            let r = dec.decode(chunk, |f| match f {
                Ok(f) => got.push((command_str(f.command).to_string(), f.payload.to_vec())),
                Err(_) => dropped += 1,
            });
            prop_assert_eq!(r, Ok(()));
        }
        prop_assert_eq!(dropped, 0);
        prop_assert_eq!(got, frames);
        prop_assert!(dec.is_idle());
        prop_assert_eq!(dec.buffered_capacity(), 0);
    }
}

/// A message type for `decode_payload`: a known one, a valid unknown one, or any string.
fn any_command() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(KNOWN).prop_map(str::to_string),
        1 => "[ -~]{0,12}",
        1 => ".{0,16}",
        1 => prop::sample::select(&["", "\0", "ping\0", "ping\0\0x", "version\u{e9}", "thirteenchars"][..])
            .prop_map(str::to_string),
    ]
}

/// Payload bytes for `decode_payload`: random, or random with a small leading count (so that
/// list-shaped messages get past their count and into their elements).
fn any_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        (0..4u8, prop::collection::vec(any::<u8>(), 0..2048)).prop_map(|(n, mut p)| {
            p.insert(0, n);
            p
        }),
    ]
}

/// Encodes `msg` as a frame and decodes that frame's payload again.
fn reencode(msg: &NetworkMessage) -> Result<NetworkMessage, TestCaseError> {
    let mut out = Vec::new();
    let len = encode_message(MAGIC, msg, &mut out);
    prop_assert_eq!(out.len(), HEADER_SIZE + len);
    prop_assert_eq!(&out[20..24], &checksum_of(&out[HEADER_SIZE..]));
    let mut frames = Vec::new();
    let r = V1Decoder::new(MAGIC).decode(&out, |f| match f {
        Ok(f) => frames.push((command_str(f.command).to_string(), f.payload.to_vec())),
        Err(r) => frames.push((format!("dropped: {:?}", r.reason), Vec::new())),
    });
    prop_assert_eq!(r, Ok(()));
    prop_assert_eq!(frames.len(), 1);
    let (command, payload) = frames.pop().unwrap_or_default();
    prop_assert_eq!(command.as_str(), command_of(msg));
    decode_payload(&command, &payload).map_err(|e| TestCaseError::fail(format!("re-decode failed: {e}")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// `decode_payload` never panics; a message it decodes (of a type that can be framed)
    /// re-encodes to a frame that decodes to the same message.
    #[test]
    fn decode_payload_never_panics_and_round_trips(command in any_command(), payload in any_payload()) {
        let decoded = decode_payload(&command, &payload);
        // What `command_str` can return for a frame that passed `is_valid_command`: at most 12
        // printable ASCII characters. (A string holding a NUL, e.g. "\0", is accepted by
        // `decode_payload` as an unknown type but cannot survive framing: the NUL is padding.)
        let frameable = command.len() <= COMMAND_SIZE && command.bytes().all(|b| (b' '..=0x7e).contains(&b));
        if let (Ok(msg), true) = (decoded, frameable) {
            let mut cmd: Command = [0; COMMAND_SIZE];
            cmd[..command.len()].copy_from_slice(command.as_bytes());
            prop_assert!(is_valid_command(&cmd));
            prop_assert_eq!(command_of(&msg), command.as_str());
            let again = reencode(&msg)?;
            prop_assert_eq!(again, msg);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A header declaring `len` bytes followed by fewer than `len` bytes holds at most the
    /// received payload bytes plus `ALLOC_AHEAD`, after every read.
    #[test]
    fn partial_payload_memory_is_bounded_by_received_bytes(
        (len, body) in prop_oneof![1..=MAX_PROTOCOL_MESSAGE_LENGTH, 1..=12_000usize]
            .prop_flat_map(|len| (Just(len), prop::collection::vec(any::<u8>(), 0..len.min(10_240)))),
        command in valid_command(),
        checksum in any::<[u8; 4]>(),
        cuts in cuts(),
    ) {
        let mut stream = Vec::with_capacity(HEADER_SIZE + body.len());
        frame(&command, &[], &mut stream);
        stream[16..20].copy_from_slice(&(len as u32).to_le_bytes());
        stream[20..24].copy_from_slice(&checksum);
        stream.extend_from_slice(&body);

        let mut dec = V1Decoder::new(MAGIC);
        let mut fed = 0;
        for chunk in split(&stream, &cuts) {
            let r = dec.decode(chunk, |_| panic!("no frame completes"));
            prop_assert_eq!(r, Ok(()));
            fed += chunk.len();
            let received = fed.saturating_sub(HEADER_SIZE);
            prop_assert!(
                dec.buffered_capacity() <= received + ALLOC_AHEAD,
                "capacity {} after {} payload bytes of {}", dec.buffered_capacity(), received, len
            );
        }
        prop_assert!(dec.buffered_capacity() <= body.len() + ALLOC_AHEAD);
        prop_assert!(!dec.is_idle());
    }
}

/// The reported magic bytes stop at the first wrong one, so the error does not depend on how
/// the stream was split into reads.
#[test]
fn wrong_magic_report_is_independent_of_the_split() {
    let stream = [0xfa, 0x00, 0x11, 0x22];
    let mut dec = V1Decoder::new(MAGIC);
    assert_eq!(dec.decode(&stream, |_| ()), Err(TransportError::WrongMagic { got: [0xfa, 0x00, 0, 0], len: 2 }));
    let mut dec = V1Decoder::new(MAGIC);
    assert_eq!(dec.decode(&stream[..2], |_| ()), Err(TransportError::WrongMagic { got: [0xfa, 0x00, 0, 0], len: 2 }));
}
