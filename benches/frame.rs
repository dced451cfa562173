//! Transport benchmarks: v1 frame decoding, message encoding and payload decoding.

use std::hint::black_box;
use std::time::Duration;

use bitcoin::block::{Header, Version};
use bitcoin::consensus::serialize;
use bitcoin::hashes::Hash;
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::{BlockHash, CompactTarget, TxMerkleNode};
use btcloop::base::chainparams::Network;
use btcloop::base::message::{decode_payload, encode_message};
use btcloop::base::transport::V1Decoder;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const PINGS: usize = 1_000;
const HEADERS: usize = 2_000;

fn magic() -> [u8; 4] {
    Network::Regtest.magic()
}

fn version_msg() -> VersionMessage {
    let zero = Address { services: ServiceFlags::NONE, address: [0; 8], port: 0 };
    VersionMessage {
        version: 70016,
        services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
        timestamp: 1_700_000_000,
        receiver: zero.clone(),
        sender: zero,
        nonce: 0x1234_5678_9abc_def0,
        user_agent: "/Satoshi:28.0.0/".into(),
        start_height: 850_000,
        relay: true,
    }
}

fn ping_stream() -> Vec<u8> {
    let mut buf = Vec::new();
    for i in 0..PINGS as u64 {
        encode_message(magic(), &NetworkMessage::Ping(i), &mut buf);
    }
    buf
}

fn headers_frame() -> Vec<u8> {
    let mut prev = BlockHash::all_zeros();
    let headers: Vec<Header> = (0..HEADERS as u32)
        .map(|i| {
            let h = Header {
                version: Version::from_consensus(0x2000_0000),
                prev_blockhash: prev,
                merkle_root: TxMerkleNode::all_zeros(),
                time: 1_700_000_000 + i,
                bits: CompactTarget::from_consensus(0x207f_ffff),
                nonce: i,
            };
            prev = h.block_hash();
            h
        })
        .collect();
    let mut buf = Vec::new();
    encode_message(magic(), &NetworkMessage::Headers(headers), &mut buf);
    buf
}

fn decode_all(dec: &mut V1Decoder, input: &[u8]) -> usize {
    let mut n = 0;
    let r = dec.decode(input, |f| {
        if let Ok(f) = f {
            n += f.payload.len() + 1;
        }
    });
    assert!(r.is_ok());
    n
}

fn bench_decode(c: &mut Criterion) {
    let pings = ping_stream();
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(PINGS as u64));
    g.bench_function("1000_pings_one_call", |b| {
        let mut dec = V1Decoder::new(magic());
        b.iter(|| decode_all(&mut dec, black_box(&pings)))
    });
    g.bench_function("1000_pings_1500B_chunks", |b| {
        let mut dec = V1Decoder::new(magic());
        b.iter(|| {
            let mut n = 0;
            for chunk in black_box(&pings).chunks(1500) {
                n += decode_all(&mut dec, chunk);
            }
            n
        })
    });
    let headers = headers_frame();
    g.throughput(Throughput::Bytes(headers.len() as u64));
    g.bench_function("headers_2000_frame", |b| {
        let mut dec = V1Decoder::new(magic());
        b.iter(|| decode_all(&mut dec, black_box(&headers)))
    });
    g.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    let mut buf = Vec::with_capacity(64 * 1024);
    g.throughput(Throughput::Elements(1));
    g.bench_function("ping", |b| {
        b.iter(|| {
            buf.clear();
            encode_message(magic(), black_box(&NetworkMessage::Ping(42)), &mut buf)
        })
    });
    g.throughput(Throughput::Elements(PINGS as u64));
    g.bench_function("1000_pings", |b| {
        b.iter(|| {
            buf.clear();
            for i in 0..PINGS as u64 {
                encode_message(magic(), &NetworkMessage::Ping(black_box(i)), &mut buf);
            }
            buf.len()
        })
    });
    let version = NetworkMessage::Version(version_msg());
    g.throughput(Throughput::Elements(1));
    g.bench_function("version", |b| {
        b.iter(|| {
            buf.clear();
            encode_message(magic(), black_box(&version), &mut buf)
        })
    });
    g.finish();
}

fn bench_payload(c: &mut Criterion) {
    let mut g = c.benchmark_group("payload");
    let version = serialize(&version_msg());
    g.bench_function("version", |b| b.iter(|| decode_payload("version", black_box(&version)).is_ok()));
    let ping = 42u64.to_le_bytes();
    g.bench_function("ping", |b| b.iter(|| decode_payload("ping", black_box(&ping)).is_ok()));
    g.finish();
}

fn config() -> Criterion {
    Criterion::default().sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_decode, bench_encode, bench_payload
}
criterion_main!(benches);
