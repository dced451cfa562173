use super::*;
use crate::base::transport::{command_str, encode_frame};
use bip324::{Initialized, OutboundCipher, ReceivedKey};
use bitcoin::hex::FromHex;
use proptest::prelude::*;

const MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];

fn hex(s: &str) -> Vec<u8> {
    Vec::<u8>::from_hex(s).unwrap()
}

fn frame(command: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(MAGIC, command, &mut out, |o| o.extend_from_slice(payload));
    out
}

#[derive(Debug, PartialEq, Eq, Clone)]
enum Got {
    Msg(String, Vec<u8>),
    Owned(String, Vec<u8>),
    Drop(RejectReason, usize),
}

fn feed(t: &mut V2Transport, input: &[u8], got: &mut Vec<Got>) -> Result<(), V2Error> {
    t.decode_owned(input, |d| match d {
        Delivery::Frame(f) => {
            assert_eq!(f.checksum, V2_CHECKSUM);
            got.push(Got::Msg(command_str(f.command).to_string(), f.payload.to_vec()))
        }
        Delivery::Owned(o) => got.push(Got::Owned(command_str(&o.command).to_string(), o.payload)),
        Delivery::Rejected(r) => got.push(Got::Drop(r.reason, r.len)),
    })
}

/// Deliveries with `Owned` folded into `Msg` (which one depends on the split).
fn flat(got: Vec<Got>) -> Vec<Got> {
    got.into_iter()
        .map(|g| match g {
            Got::Owned(c, p) => Got::Msg(c, p),
            g => g,
        })
        .collect()
}

fn feed_chunks(t: &mut V2Transport, chunks: &[&[u8]]) -> (Vec<Got>, Result<(), V2Error>) {
    let mut got = Vec::new();
    for c in chunks {
        if let Err(e) = feed(t, c, &mut got) {
            return (got, Err(e));
        }
    }
    (got, Ok(()))
}

fn secret(n: u8) -> [u8; 32] {
    [n; 32]
}

/// A peer run by the bip324 crate's own handshake (an independent implementation of the other
/// side): what it sends to our transport `us`, and the cipher it ends with.
struct CratePeer {
    /// Its key, garbage, terminator, decoys and version packet.
    sent: Vec<u8>,
    cipher: CipherSession,
}

/// Runs the crate's handshake against `us` (which must not have received anything yet). The
/// peer sends `garbage` and `decoys` before its version packet.
fn crate_peer(us: &mut V2Transport, garbage: &[u8], decoys: &[&[u8]]) -> CratePeer {
    let role = match us.role() {
        Role::Initiator => Role::Responder,
        Role::Responder => Role::Initiator,
    };
    let hs = Handshake::new_with_rng(MAGIC, role, &mut FixedKey(secret(0x42)), &*SECP).unwrap();
    let mut sent = vec![0u8; Handshake::<Initialized>::send_key_len(Some(garbage))];
    let hs = hs.send_key(Some(garbage), &mut sent).unwrap();
    let mut ours = Vec::new();
    us.take_handshake(&mut ours);
    let hs = hs.receive_key(ours[..ELLSWIFT_LEN].try_into().unwrap()).unwrap();
    let decoys = if decoys.is_empty() { None } else { Some(decoys) };
    let mut version = vec![0u8; Handshake::<ReceivedKey<'_>>::send_version_len(decoys)];
    let hs = hs.send_version(&mut version, decoys).unwrap();
    sent.extend_from_slice(&version);
    // Our side answers once it has the peer's key.
    let mut got = Vec::new();
    feed(us, &sent[..ELLSWIFT_LEN], &mut got).unwrap();
    us.take_handshake(&mut ours);
    let rest = &ours[ELLSWIFT_LEN..];
    let (mut hs, used) = match hs.receive_garbage(rest).unwrap() {
        GarbageResult::FoundGarbage { handshake, consumed_bytes } => (handshake, consumed_bytes),
        GarbageResult::NeedMoreData(_) => panic!("no terminator from us"),
    };
    let mut rest = rest[used..].to_vec();
    let cipher = loop {
        let n = hs.decrypt_packet_len(rest[..3].try_into().unwrap()).unwrap();
        let mut packet = rest[3..3 + n].to_vec();
        rest.drain(..3 + n);
        match hs.receive_version(&mut packet).unwrap() {
            VersionResult::Complete { cipher } => break cipher,
            VersionResult::Decoy(h) => hs = h,
        }
    };
    assert!(rest.is_empty());
    // The key was already fed: the rest of what the peer sent is still to come.
    sent.drain(..ELLSWIFT_LEN);
    CratePeer { sent, cipher }
}

fn packet(cipher: &mut CipherSession, contents: &[u8], kind: PacketType) -> Vec<u8> {
    let mut p = vec![0u8; OutboundCipher::encryption_buffer_len(contents.len())];
    cipher.outbound().encrypt(contents, &mut p, kind, None).unwrap();
    p
}

fn short(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut c = vec![id];
    c.extend_from_slice(payload);
    c
}

#[test]
fn detection_decides_at_the_first_differing_byte() {
    let mut v1 = MAGIC.to_vec();
    v1.extend_from_slice(b"version\0\0\0\0\0");
    for n in 0..V1_PREFIX_LEN {
        assert_eq!(detect(MAGIC, &v1[..n]), Detected::NeedMore, "{n} bytes");
    }
    assert_eq!(detect(MAGIC, &v1), Detected::V1);
    v1.extend_from_slice(&[0x65, 0, 0, 0]);
    assert_eq!(detect(MAGIC, &v1), Detected::V1);
    // A v2 key whose first bytes happen to be the magic: undecided until a byte differs.
    let mut key = MAGIC.to_vec();
    key.extend_from_slice(b"verX");
    for n in 0..=7 {
        assert_eq!(detect(MAGIC, &key[..n]), Detected::NeedMore, "{n} bytes");
    }
    assert_eq!(detect(MAGIC, &key), Detected::V2);
    assert_eq!(detect(MAGIC, &[0xfa, 0x00]), Detected::V2);
    assert_eq!(detect(MAGIC, &[0x00]), Detected::V2);
    // The last padding byte counts too.
    let mut late = v1[..15].to_vec();
    late.push(1);
    assert_eq!(detect(MAGIC, &late), Detected::V2);
    // Another network's v1 message is v2 to us.
    assert_eq!(detect([0xf9, 0xbe, 0xb4, 0xd9], &v1), Detected::V2);
}

#[test]
fn short_ids_follow_bip324_and_core() {
    let names = [
        (1, "addr"),
        (2, "block"),
        (13, "headers"),
        (18, "ping"),
        (19, "pong"),
        (21, "tx"),
        (28, "addrv2"),
        (37, "feature"),
    ];
    for (id, name) in names {
        let cmd = command_of_short_id(id).unwrap();
        assert_eq!(command_str(&cmd), name);
        assert_eq!(short_id_of(&cmd), Some(id));
    }
    for id in 1..=37u8 {
        let cmd = command_of_short_id(id).unwrap();
        if (29..=36).contains(&id) {
            assert_eq!(cmd, [0; COMMAND_SIZE]);
        } else {
            assert_eq!(short_id_of(&cmd), Some(id));
        }
    }
    for id in 38..=255u8 {
        assert_eq!(command_of_short_id(id), None);
    }
    for long in ["version", "verack", "sendheaders", "wtxidrelay", "sendaddrv2", "getaddr", ""] {
        let mut cmd = [0u8; COMMAND_SIZE];
        cmd[..long.len()].copy_from_slice(long.as_bytes());
        assert_eq!(short_id_of(&cmd), None, "{long}");
    }
}

/// The key schedule (session id, both garbage terminators) of every BIP324 packet-encoding
/// vector, through this module's derivation (the one the terminator search relies on).
#[test]
fn key_schedule_matches_bip324_vectors() {
    let data = include_str!("packet_vectors.csv");
    let mut n = 0;
    for line in data.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let role = if f[4] == "1" { Role::Initiator } else { Role::Responder };
        let secret: [u8; 32] = hex(f[1]).try_into().unwrap();
        let ours: [u8; 64] = hex(f[2]).try_into().unwrap();
        let theirs: [u8; 64] = hex(f[3]).try_into().unwrap();
        // The vectors are for mainnet.
        let d = derive([0xf9, 0xbe, 0xb4, 0xd9], role, &secret, &ours, &theirs).unwrap();
        assert_eq!(d.send_term.to_vec(), hex(f[5]), "vector {}", f[0]);
        assert_eq!(d.recv_term.to_vec(), hex(f[6]), "vector {}", f[0]);
        assert_eq!(d.session_id.to_vec(), hex(f[7]), "vector {}", f[0]);
        n += 1;
    }
    assert_eq!(n, 7);
}

/// Given keys and garbage, the handshake is deterministic and both sides agree, with the
/// crate's session id.
#[test]
fn handshake_with_given_keys() {
    let run = || {
        let mut a = V2Transport::with_key(MAGIC, Role::Initiator, secret(1), [7; 32], 10).unwrap();
        let mut b = V2Transport::with_key(MAGIC, Role::Responder, secret(2), [9; 32], 3).unwrap();
        let (mut ab, mut ba) = (Vec::new(), Vec::new());
        a.take_handshake(&mut ab);
        assert_eq!(ab.len(), 64 + 10);
        // The garbage is the seed's: the same with another key, another with another seed.
        let garbage_of = |secret, seed| {
            let mut out = Vec::new();
            V2Transport::with_key(MAGIC, Role::Initiator, secret, seed, 10).unwrap().take_handshake(&mut out);
            out.split_off(64)
        };
        assert_eq!(&ab[64..], garbage_of(secret(5), [7; 32]));
        assert_ne!(&ab[64..], garbage_of(secret(1), [8; 32]));
        feed(&mut b, &ab, &mut Vec::new()).unwrap();
        b.take_handshake(&mut ba);
        assert_eq!(ba.len(), 64 + 3 + 16 + 20);
        assert!(b.session_id().is_some() && !b.is_ready());
        feed(&mut a, &ba, &mut Vec::new()).unwrap();
        assert!(a.is_ready());
        let mut ab2 = Vec::new();
        a.take_handshake(&mut ab2);
        assert_eq!(ab2.len(), 16 + 20);
        feed(&mut b, &ab2, &mut Vec::new()).unwrap();
        assert!(b.is_ready() && a.is_idle() && b.is_idle());
        assert_eq!((a.buffered_capacity(), b.buffered_capacity()), (0, 0), "no handshake buffer kept");
        assert_eq!(a.session_id(), b.session_id());
        ([ab, ab2].concat(), ba, *a.session_id().unwrap())
    };
    assert_eq!(run(), run());
}

/// A connected pair of transports (initiator, responder) with random keys and garbage.
fn pair() -> (V2Transport, V2Transport) {
    let mut a = V2Transport::new(MAGIC, Role::Initiator).unwrap();
    let mut b = V2Transport::new(MAGIC, Role::Responder).unwrap();
    let mut wire = Vec::new();
    for _ in 0..3 {
        a.take_handshake(&mut wire);
        feed(&mut b, &wire, &mut Vec::new()).unwrap();
        wire.clear();
        b.take_handshake(&mut wire);
        feed(&mut a, &wire, &mut Vec::new()).unwrap();
        wire.clear();
    }
    assert!(a.is_ready() && b.is_ready() && !a.has_handshake() && !b.has_handshake());
    (a, b)
}

fn all_types() -> Vec<String> {
    let mut names: Vec<String> = (1..=37u8)
        .filter_map(command_of_short_id)
        .map(|c| command_str(&c).to_string())
        .filter(|s| !s.is_empty())
        .collect();
    names.extend(["version", "verack", "sendheaders", "wtxidrelay", "sendaddrv2", "getaddr"].map(String::from));
    names
}

#[test]
fn every_message_type_round_trips_through_a_pipe() {
    let (mut a, mut b) = pair();
    let types = all_types();
    let mut frames = Vec::new();
    let mut want = Vec::new();
    for (i, t) in types.iter().enumerate() {
        let payload: Vec<u8> = (0..i * 7).map(|x| x as u8).collect();
        frames.extend(frame(t, &payload));
        want.push(Got::Msg(t.clone(), payload));
    }
    for flip in [false, true] {
        let (from, to) = if flip { (&mut b, &mut a) } else { (&mut a, &mut b) };
        let mut wire = Vec::new();
        assert_eq!(from.encrypt_frames(&frames, &mut wire).unwrap(), frames.len());
        // Short IDs save 12 bytes each: the wire is the frames minus 24-byte headers plus
        // 20 bytes of expansion and 1 or 13 type bytes.
        let short_n = types.iter().filter(|t| short_id_of(&cmd(t)).is_some()).count();
        let payloads: usize = (0..types.len()).map(|i| i * 7).sum();
        assert_eq!(wire.len(), payloads + types.len() * (EXPANSION + 13) - short_n * 12);
        let (got, r) = feed_chunks(to, &[&wire]);
        r.unwrap();
        assert_eq!(got, want);
    }
}

fn cmd(name: &str) -> Command {
    let mut c = [0u8; COMMAND_SIZE];
    c[..name.len()].copy_from_slice(name.as_bytes());
    c
}

#[test]
fn encrypt_frames_leaves_a_partial_frame_and_waits_for_the_handshake() {
    let mut a = V2Transport::new(MAGIC, Role::Initiator).unwrap();
    let frames = [frame("ping", &[1; 8]), frame("inv", &[2; 37])].concat();
    let mut out = Vec::new();
    assert_eq!(a.encrypt_frames(&frames, &mut out).unwrap(), 0);
    assert!(out.is_empty());
    let (mut a, mut b) = pair();
    let first = HEADER_SIZE + 8;
    for cut in [0, 1, HEADER_SIZE - 1, HEADER_SIZE, first - 1] {
        assert_eq!(a.encrypt_frames(&frames[..cut], &mut out).unwrap(), 0, "cut {cut}");
    }
    assert!(out.is_empty());
    let used = a.encrypt_frames(&frames[..frames.len() - 1], &mut out).unwrap();
    assert_eq!(used, first);
    let used2 = a.encrypt_frames(&frames[used..], &mut out).unwrap();
    assert_eq!(used2, frames.len() - first);
    let (got, r) = feed_chunks(&mut b, &[&out]);
    r.unwrap();
    assert_eq!(got, vec![Got::Msg("ping".into(), vec![1; 8]), Got::Msg("inv".into(), vec![2; 37])]);
}

/// What a crate-run initiator sends a responder: garbage, two decoys, the version packet,
/// then application packets (including decoys, an unknown short ID, a reserved short ID, an
/// empty packet and a large payload).
fn peer_stream(us: &mut V2Transport) -> (Vec<u8>, Vec<Got>) {
    let mut p = crate_peer(us, &[0x55; 300], &[&[1, 2, 3], &[]]);
    let c = &mut p.cipher;
    let mut s = std::mem::take(&mut p.sent);
    let big: Vec<u8> = (0..OWNED_MIN + 5000).map(|i| (i * 31) as u8).collect();
    let mut long = vec![0u8];
    long.extend_from_slice(&cmd("version"));
    long.extend_from_slice(&[7; 20]);
    s.extend(packet(c, &short(18, &[9; 8]), PacketType::Genuine));
    s.extend(packet(c, &[0xde; 40], PacketType::Decoy));
    s.extend(packet(c, &long, PacketType::Genuine));
    s.extend(packet(c, &short(200, &[1; 5]), PacketType::Genuine));
    s.extend(packet(c, &short(30, &[2; 3]), PacketType::Genuine));
    s.extend(packet(c, &[], PacketType::Genuine));
    s.extend(packet(c, &short(2, &big), PacketType::Genuine));
    s.extend(packet(c, &short(19, &[9; 8]), PacketType::Genuine));
    let want = vec![
        Got::Msg("ping".into(), vec![9; 8]),
        Got::Msg("version".into(), vec![7; 20]),
        Got::Drop(RejectReason::UnknownShortId, 5),
        Got::Msg(String::new(), vec![2; 3]),
        Got::Drop(RejectReason::InvalidCommand, 0),
        Got::Msg("block".into(), big),
        Got::Msg("pong".into(), vec![9; 8]),
    ];
    (s, want)
}

fn responder() -> V2Transport {
    V2Transport::with_key(MAGIC, Role::Responder, secret(3), [0xaa; 32], 50).unwrap()
}

#[test]
fn garbage_decoys_and_unknown_ids_from_the_crates_peer() {
    let mut us = responder();
    let (stream, want) = peer_stream(&mut us);
    let (got, r) = feed_chunks(&mut us, &[&stream]);
    r.unwrap();
    assert_eq!(flat(got), want);
    assert!(us.is_idle() && us.buffered_capacity() == 0);
}

#[test]
fn decoder_fed_every_split_of_a_stream() {
    let mut base = responder();
    let (stream, want) = peer_stream(&mut base);
    let fresh = || {
        let mut t = responder();
        let _ = crate_peer(&mut t, &[0x55; 300], &[&[1, 2, 3], &[]]);
        t
    };
    // Every two-way split (stepping through the large packet, every byte elsewhere).
    let big_from = stream.len() - 80 - OWNED_MIN - 5000;
    let mut i = 0;
    while i <= stream.len() {
        let mut t = fresh();
        let (got, r) = feed_chunks(&mut t, &[&stream[..i], &stream[i..]]);
        r.unwrap();
        assert_eq!(flat(got), want, "split at {i}");
        i += if i > big_from && i + 100 < stream.len() { 997 } else { 1 };
    }
    // Byte at a time up to the large packet, then in 1000-byte reads (Owned delivery).
    let mut t = fresh();
    let mut got = Vec::new();
    for b in stream[..big_from].chunks(1).chain(stream[big_from..].chunks(1000)) {
        feed(&mut t, b, &mut got).unwrap();
    }
    assert!(got.iter().any(|g| matches!(g, Got::Owned(c, p) if c == "block" && p.len() == OWNED_MIN + 5000)));
    assert_eq!(flat(got), want);
}

#[test]
fn garbage_up_to_4095_bytes_and_no_more() {
    for n in [0, 1, 15, 16, 4095] {
        let mut us = responder();
        let mut p = crate_peer(&mut us, &vec![0x33; n], &[]);
        let mut s = std::mem::take(&mut p.sent);
        s.extend(packet(&mut p.cipher, &short(18, &[1; 8]), PacketType::Genuine));
        let (got, r) = feed_chunks(&mut us, &[&s]);
        r.unwrap();
        assert_eq!(got, vec![Got::Msg("ping".into(), vec![1; 8])], "{n} bytes of garbage");
    }
    // 4096 garbage bytes: the terminator would end at byte 4112; fatal at byte 4111.
    let mut us = responder();
    let p = crate_peer(&mut us, &[], &[]);
    let _ = p;
    let junk = vec![0x33; MAX_GARBAGE_LEN + GARBAGE_TERMINATOR_LEN];
    let mut got = Vec::new();
    feed(&mut us, &junk[..junk.len() - 1], &mut got).unwrap();
    assert_eq!(feed(&mut us, &junk[junk.len() - 1..], &mut got), Err(V2Error::NoGarbageTerminator));
    assert_eq!(V2Error::NoGarbageTerminator.to_string(), "v2 garbage terminator not found within 4095 bytes");
    assert_eq!(feed(&mut us, &[0], &mut got), Err(V2Error::Failed));
}

#[test]
fn bad_tag_is_fatal() {
    // In an application packet.
    let mut us = responder();
    let mut p = crate_peer(&mut us, &[1; 20], &[]);
    let mut s = std::mem::take(&mut p.sent);
    let good = packet(&mut p.cipher, &short(18, &[1; 8]), PacketType::Genuine);
    let mut bad = packet(&mut p.cipher, &short(18, &[2; 8]), PacketType::Genuine);
    bad[10] ^= 1;
    s.extend(good);
    s.extend(bad);
    let (got, r) = feed_chunks(&mut us, &[&s]);
    assert_eq!(r, Err(V2Error::Authentication));
    assert_eq!(got, vec![Got::Msg("ping".into(), vec![1; 8])]);
    assert_eq!(V2Error::Authentication.to_string(), "v2 packet authentication failed");
    // In the garbage (authenticated by the version packet).
    let mut us = responder();
    let mut p = crate_peer(&mut us, &[1; 20], &[]);
    p.sent[3] ^= 0x80;
    assert_eq!(feed_chunks(&mut us, &[&p.sent]).1, Err(V2Error::Authentication));
    // In a decoy during the handshake.
    let mut us = responder();
    let mut p = crate_peer(&mut us, &[1; 20], &[&[5; 10], &[6; 10]]);
    let second_decoy = 20 + 16 + 30 + 5;
    p.sent[second_decoy] ^= 4;
    assert_eq!(feed_chunks(&mut us, &[&p.sent]).1, Err(V2Error::Authentication));
}

#[test]
fn oversized_packet_is_fatal_before_its_payload() {
    let mut us = responder();
    let mut p = crate_peer(&mut us, &[], &[]);
    feed(&mut us, &std::mem::take(&mut p.sent), &mut Vec::new()).unwrap();
    // The largest allowed packet is accepted at its length field, and memory follows arrivals.
    let mut us2 = responder();
    let mut p2 = crate_peer(&mut us2, &[], &[]);
    feed(&mut us2, &std::mem::take(&mut p2.sent), &mut Vec::new()).unwrap();
    let max2 = packet(&mut p2.cipher, &vec![0; MAX_CONTENTS_LEN], PacketType::Genuine);
    feed(&mut us2, &max2[..1000], &mut Vec::new()).unwrap();
    assert!(us2.buffered_capacity() <= 1000 + ALLOC_AHEAD, "{}", us2.buffered_capacity());
    // One byte more is refused at its 3-byte length.
    let big = packet(&mut p.cipher, &vec![0; MAX_CONTENTS_LEN + 1], PacketType::Genuine);
    assert_eq!(feed(&mut us, &big[..3], &mut Vec::new()), Err(V2Error::Oversized(MAX_CONTENTS_LEN + 1)));
    assert_eq!(us.buffered_capacity(), 0);
    assert_eq!(
        V2Error::Oversized(MAX_CONTENTS_LEN + 1).to_string(),
        "v2 packet of 4000014 bytes exceeds the limit of 4000013 bytes"
    );
    // Also as the first packet after the garbage: the version packet's length field is the
    // keystream itself (contents length 0), so XOR gives any length wanted.
    let mut us = responder();
    let p = crate_peer(&mut us, &[4; 8], &[]);
    let mut crafted = p.sent[..8 + 16].to_vec();
    crafted.extend(p.sent[24..27].iter().map(|b| b ^ 0xff));
    assert_eq!(feed(&mut us, &crafted, &mut Vec::new()), Err(V2Error::Oversized(0xff_ffff)));
    assert_eq!(us.buffered_capacity(), 0);
}

#[test]
fn v1_looking_key_is_refused_by_the_crate() {
    let mut us = V2Transport::new(MAGIC, Role::Initiator).unwrap();
    let mut key = [0x11u8; 64];
    key[..4].copy_from_slice(&MAGIC);
    assert_eq!(feed(&mut us, &key, &mut Vec::new()), Err(V2Error::V1Key));
}

/// A stream after a real handshake: the crate peer's garbage, version and some messages, then
/// arbitrary bytes.
fn fuzz_base() -> (V2Transport, Vec<u8>) {
    let mut us = responder();
    let mut p = crate_peer(&mut us, &[8; 5], &[]);
    let mut s = std::mem::take(&mut p.sent);
    s.extend(packet(&mut p.cipher, &short(18, &[1; 8]), PacketType::Genuine));
    (us, s)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_stream_split_anywhere_decodes_as_unsplit(
        tail in proptest::collection::vec(any::<u8>(), 0..600),
        mutate in proptest::option::of((0usize..200, any::<u8>())),
        cuts in proptest::collection::vec(any::<u16>(), 0..6),
    ) {
        let (mut whole, mut s) = fuzz_base();
        let mut split = {
            // The same handshake again (deterministic keys): same state, same stream.
            let (t, s2) = fuzz_base();
            prop_assert_eq!(&s, &s2);
            t
        };
        s.extend_from_slice(&tail);
        if let Some((at, x)) = mutate {
            let at = at % s.len();
            s[at] ^= x;
        }
        let (want, want_r) = feed_chunks(&mut whole, &[&s]);
        let mut pos: Vec<usize> = cuts.iter().map(|&c| usize::from(c) % (s.len() + 1)).collect();
        pos.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in pos {
            chunks.push(&s[last..p]);
            last = p;
        }
        chunks.push(&s[last..]);
        let (got, got_r) = feed_chunks(&mut split, &chunks);
        prop_assert_eq!(flat(got), flat(want));
        prop_assert_eq!(got_r, want_r);
    }
}
