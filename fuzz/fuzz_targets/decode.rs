//! Fuzzes the v1 frame decoder and the payload codec.
//!
//! Input: byte 0 is a control byte: its low four bits give the number `n` of cut points
//! (`% 9`), and its top bit asks for the checksums of the stream's leading well-formed frames to
//! be set right before decoding (so that mutated payloads still reach `decode_payload`; without
//! it nearly every mutated frame is dropped for its checksum). The next `2 * n` bytes are the cut
//! points (u16 little endian, taken modulo the stream length + 1), and the rest is the byte
//! stream a peer sent (regtest magic `fa bf b5 da`).
//!
//! Checks:
//! * feeding the stream in the chunks the cut points give yields the same frame events and the
//!   same result as feeding it at once (and no panic either way);
//! * every good frame's payload either fails `decode_payload` or decodes to a message that
//!   `encode_message` turns into one good frame of the same type, whose payload decodes to the
//!   same message and re-encodes to the same bytes.

#![no_main]

use btcloop::base::message::{command_of, decode_payload, encode_message};
use btcloop::base::transport::{
    Command, HEADER_SIZE, MAX_PROTOCOL_MESSAGE_LENGTH, RejectReason, TransportError, V1Decoder, checksum_of,
    command_str,
};
use libfuzzer_sys::fuzz_target;

/// Regtest message start.
const MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];
/// Most cut points one input can ask for.
const MAX_CUTS: usize = 8;

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Good(Command, Vec<u8>),
    Dropped(Command, RejectReason, usize),
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<Event>,
    result: Result<(), TransportError>,
    idle: bool,
}

/// Feeds the chunks in order; stops after the first fatal error (the decoder must not be fed
/// again after one).
fn feed<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut dec = V1Decoder::new(MAGIC);
    let mut events = Vec::new();
    let mut result = Ok(());
    for chunk in chunks {
        result = dec.decode(chunk, |f| {
            events.push(match f {
                Ok(f) => Event::Good(*f.command, f.payload.to_vec()),
                Err(r) => Event::Dropped(*r.command, r.reason, r.len),
            })
        });
        if result.is_err() {
            break;
        }
    }
    Outcome { events, result, idle: dec.is_idle() }
}

/// Sets the checksum of every complete frame at the start of `stream`, up to the first header
/// with a wrong magic, an oversized length or a payload that runs past the end.
fn repair_checksums(stream: &mut [u8]) {
    let mut pos = 0;
    while let Some(header) = stream.get(pos..pos + HEADER_SIZE) {
        if header[..4] != MAGIC {
            return;
        }
        let len = u32::from_le_bytes([header[16], header[17], header[18], header[19]]) as usize;
        let end = pos + HEADER_SIZE + len;
        if len > MAX_PROTOCOL_MESSAGE_LENGTH || end > stream.len() {
            return;
        }
        let checksum = checksum_of(&stream[pos + HEADER_SIZE..end]);
        stream[pos + 20..pos + HEADER_SIZE].copy_from_slice(&checksum);
        pos = end;
    }
}

/// Decodes one good frame's payload and, if that works, checks the encode/decode round trip.
fn check_payload(command: &Command, payload: &[u8]) {
    let command = command_str(command);
    let Ok(msg) = decode_payload(command, payload) else {
        return;
    };
    assert_eq!(command_of(&msg), command);

    let mut out = Vec::new();
    let len = encode_message(MAGIC, &msg, &mut out);
    assert_eq!(out.len(), HEADER_SIZE + len);
    if len > MAX_PROTOCOL_MESSAGE_LENGTH {
        return;
    }
    let again = feed([out.as_slice()]);
    assert_eq!(again.result, Ok(()));
    assert!(again.idle);
    let [Event::Good(cmd2, payload2)] = again.events.as_slice() else {
        panic!("re-encoded {command} is not one good frame: {:?}", again.events);
    };
    assert_eq!(command_str(cmd2), command);
    assert_eq!(payload2.as_slice(), &out[HEADER_SIZE..]);

    let msg2 = match decode_payload(command, payload2) {
        Ok(m) => m,
        Err(e) => panic!("re-encoded {command} does not decode: {e}; payload {payload2:02x?}"),
    };
    assert_eq!(msg2, msg, "{command} changed in an encode/decode round trip");
    let mut out2 = Vec::new();
    encode_message(MAGIC, &msg2, &mut out2);
    assert_eq!(out2, out, "{command} encoding is not a fixed point");
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(control & 0x0f) % (MAX_CUTS + 1);
    let (cut_bytes, stream) = rest.split_at((2 * n).min(rest.len()));
    let mut stream = stream.to_vec();
    if control & 0x80 != 0 {
        repair_checksums(&mut stream);
    }
    let stream = stream.as_slice();
    let mut cuts: Vec<usize> = cut_bytes
        .chunks(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c.get(1).copied().unwrap_or(0)])) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut chunks = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for cut in cuts {
        chunks.push(&stream[start..cut]);
        start = cut;
    }
    chunks.push(&stream[start..]);

    let whole = feed([stream]);
    let parts = feed(chunks.iter().copied());
    assert_eq!(
        parts,
        whole,
        "chunked decode differs (chunk lengths {:?})",
        chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
    );

    for event in &whole.events {
        if let Event::Good(command, payload) = event {
            check_payload(command, payload);
        }
    }
});
