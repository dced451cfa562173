//! Header validation benchmarks: headers validated and connected per second by
//! `Chain::accept` onto a fresh in-memory chain (the setup, building that chain, is not timed).
//!
//! - `accept/regtest_2000`: a freshly mined 2,000-header regtest chain on top of genesis.
//! - `accept/mainnet_0_10236`: the 10,237 real mainnet headers of `tests/data`
//!   (genesis, already known, then heights 1 – 10,236 with five difficulty retargets), minimum
//!   chain work zero.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::consensus::deserialize;
use bitcoin::pow::Work;
use btcloop::base::chainparams::Network;
use btcloop::engine::chain::accept::Chain;
use btcloop::engine::chain::mine::mine_chain;
use btcloop::engine::chain::params::ChainParams;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// A validation time far after every header here (2033), so none is "too far in the future".
const NOW_UNIX: i64 = 2_000_000_000;
const MAINNET_FILE: &str = "mainnet-headers-0-10236.bin";

/// The test data shipped in the repository: `CARGO_MANIFEST_DIR/tests/data`.
fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("data")
}

fn load_headers(name: &str) -> Vec<Header> {
    let path = data_dir().join(name);
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert_eq!(raw.len() % 80, 0, "{} is not a whole number of headers", path.display());
    raw.chunks_exact(80).map(|c| deserialize(c).expect("80-byte header")).collect()
}

fn zero_work() -> Work {
    Work::from_be_bytes([0; 32])
}

/// Accepts `headers` once onto a fresh chain and checks every one was valid and connected.
fn check_all_accepted(params: &ChainParams, headers: &[Header], new: usize) {
    let mut chain = Chain::in_memory(params.clone(), zero_work());
    let r = chain.accept(headers, NOW_UNIX);
    assert_eq!(r.error, None, "benchmark headers must all be valid");
    assert_eq!(r.added, new, "benchmark headers must all be new (but a known genesis)");
    assert_eq!(chain.tree().height() as usize, new, "benchmark headers must extend the best chain");
}

fn accept(c: &mut Criterion) {
    let regtest = ChainParams::new(Network::Regtest);
    let mined = mine_chain(&regtest, &regtest.genesis, 2_000, 1);
    check_all_accepted(&regtest, &mined, mined.len());

    let main = ChainParams::new(Network::Main);
    let real = load_headers(MAINNET_FILE);
    assert_eq!(real.len(), 10_237);
    assert_eq!(real[0], main.genesis, "{MAINNET_FILE} starts at genesis");
    check_all_accepted(&main, &real, real.len() - 1);

    let mut g = c.benchmark_group("accept");
    g.sample_size(15).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(6));

    g.throughput(Throughput::Elements(mined.len() as u64));
    g.bench_function("regtest_2000", |b| {
        b.iter_batched(
            || Chain::in_memory(regtest.clone(), zero_work()),
            |mut chain| {
                let r = chain.accept(black_box(&mined), NOW_UNIX);
                (chain, r)
            },
            BatchSize::SmallInput,
        )
    });

    g.throughput(Throughput::Elements(real.len() as u64));
    g.bench_function("mainnet_0_10236", |b| {
        b.iter_batched(
            || Chain::in_memory(main.clone(), zero_work()),
            |mut chain| {
                let r = chain.accept(black_box(&real), NOW_UNIX);
                (chain, r)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, accept);
criterion_main!(benches);
