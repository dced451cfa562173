use super::*;

const MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];

fn frame(command: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(MAGIC, command, &mut out, |o| o.extend_from_slice(payload));
    out
}

#[derive(Debug, PartialEq, Eq)]
enum Got {
    Msg(String, Vec<u8>),
    Drop(RejectReason, usize),
}

fn feed_all(dec: &mut V1Decoder, chunks: &[&[u8]]) -> (Vec<Got>, Result<(), TransportError>) {
    let mut got = Vec::new();
    for chunk in chunks {
        let r = dec.decode(chunk, |f| match f {
            Ok(f) => got.push(Got::Msg(command_str(f.command).to_string(), f.payload.to_vec())),
            Err(r) => got.push(Got::Drop(r.reason, r.len)),
        });
        if r.is_err() {
            return (got, r);
        }
    }
    (got, Ok(()))
}

#[test]
fn encodes_core_compatible_header() {
    let f = frame("ping", &7u64.to_le_bytes());
    assert_eq!(&f[..4], &MAGIC);
    assert_eq!(&f[4..16], b"ping\0\0\0\0\0\0\0\0");
    assert_eq!(&f[16..20], &8u32.to_le_bytes());
    // Checksum of a ping with nonce 7, as the bitcoin crate computes it.
    let raw = bitcoin::p2p::message::RawNetworkMessage::new(
        bitcoin::p2p::Magic::REGTEST,
        bitcoin::p2p::message::NetworkMessage::Ping(7),
    );
    assert_eq!(f, bitcoin::consensus::serialize(&raw));
}

#[test]
fn frames_split_at_every_byte_decode_identically() {
    let mut stream = frame("version", &[1, 2, 3, 4, 5]);
    stream.extend(frame("verack", &[]));
    stream.extend(frame("ping", &42u64.to_le_bytes()));
    let whole = feed_all(&mut V1Decoder::new(MAGIC), &[&stream]);
    assert_eq!(whole.0.len(), 3);
    for cut in 0..=stream.len() {
        let (a, b) = stream.split_at(cut);
        let split = feed_all(&mut V1Decoder::new(MAGIC), &[a, b]);
        assert_eq!(split, whole, "split at {cut}");
    }
    // And one byte at a time.
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(feed_all(&mut V1Decoder::new(MAGIC), &bytes), whole);
}

#[test]
fn several_frames_in_one_read() {
    let mut stream = Vec::new();
    for i in 0..100u64 {
        stream.extend(frame("ping", &i.to_le_bytes()));
    }
    let (got, r) = feed_all(&mut V1Decoder::new(MAGIC), &[&stream]);
    assert!(r.is_ok());
    assert_eq!(got.len(), 100);
    assert_eq!(got[99], Got::Msg("ping".into(), 99u64.to_le_bytes().to_vec()));
}

#[test]
fn wrong_magic_fails_at_first_wrong_byte() {
    let mut dec = V1Decoder::new(MAGIC);
    // The first byte already differs: fatal with one byte received.
    let r = dec.decode(&[0xf9], |_| panic!("no frame"));
    assert_eq!(r, Err(TransportError::WrongMagic { got: [0xf9, 0, 0, 0], len: 1 }));
    assert_eq!(r.unwrap_err().to_string(), "wrong network magic f9");
    // A mainnet frame sent to a regtest decoder.
    let mut main = Vec::new();
    encode_frame([0xf9, 0xbe, 0xb4, 0xd9], "verack", &mut main, |_| {});
    let (_, r) = feed_all(&mut V1Decoder::new(MAGIC), &[&main]);
    assert!(matches!(r, Err(TransportError::WrongMagic { .. })));
}

#[test]
fn wrong_magic_after_good_frames_keeps_earlier_frames() {
    let mut stream = frame("verack", &[]);
    stream.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let (got, r) = feed_all(&mut V1Decoder::new(MAGIC), &[&stream]);
    assert_eq!(got, vec![Got::Msg("verack".into(), vec![])]);
    assert!(matches!(r, Err(TransportError::WrongMagic { .. })));
}

#[test]
fn oversized_length_is_fatal_before_payload() {
    let mut hdr = Vec::new();
    hdr.extend_from_slice(&MAGIC);
    hdr.extend_from_slice(b"block\0\0\0\0\0\0\0");
    hdr.extend_from_slice(&4_000_001u32.to_le_bytes());
    hdr.extend_from_slice(&[0; 4]);
    let mut dec = V1Decoder::new(MAGIC);
    let r = dec.decode(&hdr, |_| panic!("no frame"));
    assert_eq!(r, Err(TransportError::Oversized { command: "block".into(), len: 4_000_001 }));
    assert_eq!(dec.buffered_capacity(), 0, "nothing allocated for the declared length");
}

#[test]
fn exactly_max_length_is_accepted() {
    let payload = vec![0u8; MAX_PROTOCOL_MESSAGE_LENGTH];
    let f = frame("block", &payload);
    let (got, r) = feed_all(&mut V1Decoder::new(MAGIC), &[&f[..1000], &f[1000..]]);
    assert!(r.is_ok());
    assert!(matches!(&got[..], [Got::Msg(c, p)] if c == "block" && p.len() == MAX_PROTOCOL_MESSAGE_LENGTH));
}

#[test]
fn declared_length_is_not_allocated_ahead_of_bytes() {
    let mut hdr = Vec::new();
    hdr.extend_from_slice(&MAGIC);
    hdr.extend_from_slice(b"block\0\0\0\0\0\0\0");
    hdr.extend_from_slice(&3_999_999u32.to_le_bytes());
    hdr.extend_from_slice(&[0; 4]);
    hdr.extend_from_slice(&[1, 2, 3]);
    let mut dec = V1Decoder::new(MAGIC);
    dec.decode(&hdr, |_| panic!("incomplete")).unwrap();
    assert!(dec.buffered_capacity() <= 3 + ALLOC_AHEAD, "capacity {}", dec.buffered_capacity());
    assert!(!dec.is_idle());
}

#[test]
fn bad_checksum_drops_message_and_keeps_going() {
    let mut bad = frame("ping", &1u64.to_le_bytes());
    bad[20] ^= 0xff;
    let mut stream = bad;
    stream.extend(frame("pong", &2u64.to_le_bytes()));
    let (got, r) = feed_all(&mut V1Decoder::new(MAGIC), &[&stream]);
    assert!(r.is_ok());
    assert_eq!(
        got,
        vec![Got::Drop(RejectReason::BadChecksum, 8), Got::Msg("pong".into(), 2u64.to_le_bytes().to_vec())]
    );
}

#[test]
fn malformed_command_drops_message() {
    for cmd in [&b"ping\0x\0\0\0\0\0\0"[..], &b"pi\x01g\0\0\0\0\0\0\0\0"[..], &b"p\x7fng\0\0\0\0\0\0\0\0"[..]] {
        let mut f = frame("ping", &[]);
        f[4..16].copy_from_slice(cmd);
        f.extend(frame("verack", &[]));
        let (got, r) = feed_all(&mut V1Decoder::new(MAGIC), &[&f]);
        assert!(r.is_ok());
        assert_eq!(got, vec![Got::Drop(RejectReason::InvalidCommand, 0), Got::Msg("verack".into(), vec![])]);
    }
}

#[test]
fn command_validity_matches_core() {
    assert!(is_valid_command(b"version\0\0\0\0\0"));
    assert!(is_valid_command(b"abcdefghijkl"));
    assert!(is_valid_command(&[0; 12]));
    assert!(!is_valid_command(b"ver\0sion\0\0\0\0"));
    assert!(!is_valid_command(b"ver\nion\0\0\0\0\0"));
    assert_eq!(sanitize_command(b"ab\x01c\0\0\0\0\0\0\0\0"), "abc");
}

#[test]
fn partial_buffer_released_after_frame() {
    let f = frame("headers", &vec![7u8; 5000]);
    let mut dec = V1Decoder::new(MAGIC);
    let (got, r) = feed_all(&mut dec, &[&f[..100], &f[100..]]);
    assert!(r.is_ok());
    assert_eq!(got.len(), 1);
    assert!(dec.is_idle());
    assert_eq!(dec.buffered_capacity(), 0);
}

/// Feeds `chunks` through `decode_owned`: (owned?, command, payload) per good frame, and the
/// rejected ones.
fn feed_owned(dec: &mut V1Decoder, chunks: &[&[u8]]) -> Vec<(bool, Got)> {
    let mut got = Vec::new();
    for chunk in chunks {
        dec.decode_owned(chunk, |d| match d {
            Delivery::Frame(f) => got.push((false, Got::Msg(command_str(f.command).into(), f.payload.to_vec()))),
            Delivery::Owned(o) => {
                assert_eq!(o.payload.capacity(), o.payload.len(), "allocated to its exact length");
                got.push((true, Got::Msg(command_str(&o.command).into(), o.payload)))
            }
            Delivery::Rejected(r) => got.push((false, Got::Drop(r.reason, r.len))),
        })
        .unwrap();
    }
    got
}

#[test]
fn large_payloads_assembled_across_reads_are_handed_over_small_ones_lent() {
    let big: Vec<u8> = (0..OWNED_MIN + 10).map(|i| i as u8).collect();
    let f = frame("junk", &big);
    let chunks: Vec<&[u8]> = f.chunks(1000).collect();
    let mut dec = V1Decoder::new(MAGIC);
    assert_eq!(feed_owned(&mut dec, &chunks), vec![(true, Got::Msg("junk".into(), big.clone()))]);
    assert_eq!((dec.buffered_capacity(), dec.partial_len()), (0, 0), "nothing kept");
    // The same frame in one read is lent from the input (no copy, no allocation).
    assert_eq!(feed_owned(&mut dec, &[&f]), vec![(false, Got::Msg("junk".into(), big))]);
    // A small one across reads is lent from the decoder's buffer, which is then freed.
    let small = frame("ping", &5u64.to_le_bytes());
    assert_eq!(
        feed_owned(&mut dec, &[&small[..26], &small[26..]]),
        vec![(false, Got::Msg("ping".into(), 5u64.to_le_bytes().to_vec()))]
    );
    assert_eq!(dec.buffered_capacity(), 0);
}

#[test]
fn checksum_hashed_as_bytes_arrive_matches_the_whole_payload() {
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
    let good = frame("junk", &payload);
    let mut bad = good.clone();
    bad[HEADER_SIZE + 150_000] ^= 1;
    for cuts in [vec![1usize, 24, 25, 70_000, 299_000], vec![30], vec![100_000, 200_000, 300_023]] {
        for (input, want_ok) in [(&good, true), (&bad, false)] {
            let mut parts: Vec<&[u8]> = Vec::new();
            let mut last = 0;
            for &c in &cuts {
                parts.push(&input[last..c]);
                last = c;
            }
            parts.push(&input[last..]);
            let got = feed_owned(&mut V1Decoder::new(MAGIC), &parts);
            let expect = if want_ok {
                (true, Got::Msg("junk".into(), payload.clone()))
            } else {
                (false, Got::Drop(RejectReason::BadChecksum, payload.len()))
            };
            assert_eq!(got, vec![expect], "cuts {cuts:?}");
        }
    }
}
