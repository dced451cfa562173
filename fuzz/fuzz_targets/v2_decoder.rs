//! Fuzzes the BIP324 v2 transport's receiving side after a real handshake, as responder and as
//! initiator.
//!
//! Input: byte 0 picks our role (bit 0: 1 = responder) and the peer's garbage length (the next
//! two bytes, modulo 4096; its bytes are a fixed seed's stream). The rest is a list of records
//! `tag, len (1 byte), data`: tag % 4 = 0 appends `data` raw; 1 appends a packet the peer's
//! transport encrypts from a frame whose type is `data[0]` as a short-ID name (or, if that is
//! 0, the next 12 bytes as a long type) and whose payload is the rest of `data`; 2 flips the
//! byte at position `data[0..2]` of the stream so far by `data[2]`; 3 marks a cut point.
//!
//! The stream is the peer's garbage, terminator and version packet, then what the records
//! make. Checks: no panic, and feeding it in the chunks the cut points give yields the same
//! deliveries and result as feeding it at once.

#![no_main]

use btcloop::base::transport::v2::{Role, V2Error, V2Transport, command_of_short_id};
use btcloop::base::transport::{Command, Delivery, RejectReason, encode_frame};
use libfuzzer_sys::fuzz_target;

/// Regtest message start.
const MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Good(Command, Vec<u8>),
    Dropped(Command, RejectReason, usize),
}

/// Our transport after it received the peer's key, the peer (ready to encrypt), and the
/// peer's handshake bytes still to come (garbage, terminator, version packet).
fn setup(responder: bool, garbage_len: usize) -> (V2Transport, V2Transport, Vec<u8>) {
    let (ours, theirs) = if responder { (Role::Responder, Role::Initiator) } else { (Role::Initiator, Role::Responder) };
    let mut us = V2Transport::with_key(MAGIC, ours, [3; 32], [1; 32], 7).expect("our transport");
    let mut peer = V2Transport::with_key(MAGIC, theirs, [4; 32], [5; 32], garbage_len).expect("peer transport");
    let mut to_peer = Vec::new();
    us.take_handshake(&mut to_peer);
    peer.decode_owned(&to_peer, |_| {}).expect("peer takes our key");
    let mut from_peer = Vec::new();
    peer.take_handshake(&mut from_peer);
    us.decode_owned(&from_peer[..64], |_| {}).expect("we take the peer's key");
    to_peer.clear();
    us.take_handshake(&mut to_peer);
    peer.decode_owned(&to_peer, |_| {}).expect("peer takes our version");
    assert!(peer.is_ready());
    (us, peer, from_peer[64..].to_vec())
}

fn feed(us: &mut V2Transport, chunks: &[&[u8]]) -> (Vec<Event>, Result<(), V2Error>) {
    let mut events = Vec::new();
    for chunk in chunks {
        let r = us.decode_owned(chunk, |d| {
            events.push(match d {
                Delivery::Frame(f) => Event::Good(*f.command, f.payload.to_vec()),
                Delivery::Owned(o) => Event::Good(o.command, o.payload),
                Delivery::Rejected(r) => Event::Dropped(*r.command, r.reason, r.len),
            })
        });
        if r.is_err() {
            return (events, r);
        }
    }
    (events, Ok(()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let responder = flags & 1 == 1;
    let glen = usize::from(u16::from_le_bytes([rest.first().copied().unwrap_or(0), rest.get(1).copied().unwrap_or(0)]))
        % 4096;
    let mut records = rest.get(2..).unwrap_or(&[]);
    let (mut whole, mut peer, mut stream) = setup(responder, glen);
    let mut cuts = Vec::new();
    while let [tag, len, tail @ ..] = records {
        let n = usize::from(*len).min(tail.len());
        let (rec, next) = tail.split_at(n);
        records = next;
        match tag % 4 {
            0 => stream.extend_from_slice(rec),
            1 => {
                let (cmd, payload) = match rec.split_first() {
                    Some((&0, r)) if r.len() >= 12 => {
                        let mut c = [0u8; 12];
                        c.copy_from_slice(&r[..12]);
                        (c, &r[12..])
                    }
                    Some((&id, r)) => (command_of_short_id(id).unwrap_or([b'x'; 12]), r),
                    None => ([0u8; 12], rec),
                };
                let mut frame = Vec::new();
                encode_frame(MAGIC, "", &mut frame, |o| o.extend_from_slice(payload));
                frame[4..16].copy_from_slice(&cmd);
                assert_eq!(peer.encrypt_frames(&frame, &mut stream).expect("encrypt"), frame.len());
            }
            2 => {
                if let [a, b, x, ..] = rec {
                    let at = usize::from(u16::from_le_bytes([*a, *b]));
                    if let Some(byte) = stream.get_mut(at) {
                        *byte ^= *x;
                    }
                }
            }
            _ => cuts.push(stream.len()),
        }
    }
    let want = feed(&mut whole, &[&stream]);
    let (mut split, _, _) = setup(responder, glen);
    let mut chunks = Vec::new();
    let mut last = 0;
    for c in cuts {
        let c = c.min(stream.len()).max(last);
        chunks.push(&stream[last..c]);
        last = c;
    }
    chunks.push(&stream[last..]);
    let got = feed(&mut split, &chunks);
    assert_eq!(got, want);
});
