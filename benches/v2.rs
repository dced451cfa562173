//! BIP324 v2 transport benchmarks: encrypting send-queue frames into packets and decrypting
//! packets into deliveries, for ping-sized messages and a 1 MB block-sized payload.

use std::hint::black_box;
use std::time::Duration;

use btcloop::base::chainparams::Network;
use btcloop::base::transport::v2::{Role, V2Transport};
use btcloop::base::transport::{Delivery, encode_frame};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const PINGS: usize = 1_000;
const BLOCK: usize = 1_000_000;
/// Socket read size the block is decoded in (it arrives across reads: handed over by value).
const READ: usize = 64 * 1024;

fn magic() -> [u8; 4] {
    Network::Regtest.magic()
}

/// A connected initiator/responder pair.
fn pair() -> (V2Transport, V2Transport) {
    let mut a = V2Transport::new(magic(), Role::Initiator).expect("initiator");
    let mut b = V2Transport::new(magic(), Role::Responder).expect("responder");
    let mut wire = Vec::new();
    for _ in 0..3 {
        a.take_handshake(&mut wire);
        b.decode_owned(&wire, |_| {}).expect("handshake");
        wire.clear();
        b.take_handshake(&mut wire);
        a.decode_owned(&wire, |_| {}).expect("handshake");
        wire.clear();
    }
    assert!(a.is_ready() && b.is_ready());
    (a, b)
}

fn ping_frames() -> Vec<u8> {
    let mut buf = Vec::new();
    for i in 0..PINGS as u64 {
        encode_frame(magic(), "ping", &mut buf, |o| o.extend_from_slice(&i.to_le_bytes()));
    }
    buf
}

fn block_frame() -> Vec<u8> {
    let mut buf = Vec::new();
    encode_frame(magic(), "block", &mut buf, |o| o.extend((0..BLOCK).map(|i| (i * 7) as u8)));
    buf
}

fn decode_all(t: &mut V2Transport, wire: &[u8], read: usize) -> usize {
    let mut n = 0;
    for chunk in wire.chunks(read) {
        t.decode_owned(chunk, |d| {
            if let Delivery::Frame(_) | Delivery::Owned(_) = d {
                n += 1;
            }
        })
        .expect("decode");
    }
    n
}

fn bench(c: &mut Criterion, name: &str, frames: Vec<u8>, count: usize, bytes: usize, read: usize) {
    let mut g = c.benchmark_group(name);
    g.measurement_time(Duration::from_secs(4));
    let (mut a, _) = pair();
    let mut out = Vec::with_capacity(frames.len() * 2);
    g.throughput(Throughput::Elements(count as u64));
    g.bench_function("encode", |bch| {
        bch.iter(|| {
            out.clear();
            black_box(a.encrypt_frames(black_box(&frames), &mut out).expect("encrypt"))
        })
    });
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("encode_bytes", |bch| {
        bch.iter(|| {
            out.clear();
            black_box(a.encrypt_frames(black_box(&frames), &mut out).expect("encrypt"))
        })
    });
    // Decoding: the sender's packets are made outside the timing, in order.
    let (mut a, mut b) = pair();
    for (label, tp) in
        [("decode", Throughput::Elements(count as u64)), ("decode_bytes", Throughput::Bytes(bytes as u64))]
    {
        g.throughput(tp);
        g.bench_function(label, |bch| {
            bch.iter_batched(
                || {
                    let mut wire = Vec::with_capacity(frames.len() * 2);
                    a.encrypt_frames(&frames, &mut wire).expect("encrypt");
                    wire
                },
                |wire| assert_eq!(decode_all(&mut b, &wire, read), count),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn pings(c: &mut Criterion) {
    let frames = ping_frames();
    let bytes = frames.len();
    bench(c, "v2_ping", frames, PINGS, bytes, 64 * 1024);
}

fn block(c: &mut Criterion) {
    bench(c, "v2_block", block_frame(), 1, BLOCK, READ);
}

criterion_group!(benches, pings, block);
criterion_main!(benches);
