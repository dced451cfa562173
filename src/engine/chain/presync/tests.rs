use bitcoin::hashes::Hash;

use super::*;

fn regtest() -> ChainParams {
    ChainParams::new(Network::Regtest)
}

/// `n` headers on top of `parent`, regtest bits, no proof of work (presync does not check it).
fn chain_from(parent: &Header, n: usize, salt: u32) -> Vec<Header> {
    let mut out = Vec::with_capacity(n);
    let mut prev = *parent;
    for i in 0..n {
        let h = Header {
            version: Version::from_consensus(4),
            prev_blockhash: prev.block_hash(),
            merkle_root: TxMerkleNode::all_zeros(),
            time: prev.time + 1,
            bits: prev.bits,
            nonce: salt.wrapping_mul(1_000_003).wrapping_add(i as u32),
        };
        out.push(h);
        prev = h;
    }
    out
}

fn start(params: &ChainParams) -> ChainStart {
    let g = params.genesis;
    ChainStart {
        header: g,
        hash: g.block_hash(),
        height: 0,
        chain_work: work_of(g.bits),
        median_time_past: g.time,
        locator: vec![g.block_hash()],
    }
}

/// Work of `n` regtest headers (each header's work is the same).
fn work_n(params: &ChainParams, n: usize) -> Work {
    let one = work_of(params.genesis.bits);
    (0..n).fold(work_of(params.genesis.bits), |w, _| w + one)
}

const NOW: i64 = 1_900_000_000;

fn feed(sync: &mut HeadersSync, headers: &[Header]) -> (Vec<Header>, bool, bool) {
    let mut released = Vec::new();
    let (mut ok, mut more) = (true, true);
    for chunk in headers.chunks(2000) {
        let r = sync.process(chunk, chunk.len() == 2000);
        released.extend(r.headers);
        ok = r.success;
        more = r.request_more;
        if !ok || !more {
            break;
        }
    }
    (released, ok, more)
}

#[test]
fn enough_work_is_presynced_then_redownloaded_and_released() {
    let p = regtest();
    let chain = chain_from(&p.genesis, 10_000, 1);
    let min = work_n(&p, 9_000);
    let mut sync = HeadersSync::new(p.clone(), SyncParams::for_network(Network::Regtest), start(&p), min, NOW, 17);
    // Presync: nothing is released, only counted.
    let (released, ok, more) = feed(&mut sync, &chain);
    assert!(ok && more);
    assert!(released.is_empty());
    assert_eq!(sync.phase(), Phase::Redownload);
    assert_eq!(sync.next_locator()[0], p.genesis.block_hash(), "redownload restarts at the chain start");
    // Redownload: headers come back in order, identical, once the buffer fills and at the end.
    let mut got = Vec::new();
    for chunk in chain.chunks(2000) {
        let r = sync.process(chunk, chunk.len() == 2000);
        assert!(r.success);
        got.extend(r.headers);
    }
    assert_eq!(got, chain);
    assert_eq!(sync.phase(), Phase::Final);
}

#[test]
fn low_work_chain_of_100000_headers_stays_in_bounded_memory() {
    let p = regtest();
    let chain = chain_from(&p.genesis, 100_000, 2);
    let min = work_n(&p, 1_000_000);
    let mut sync = HeadersSync::new(p.clone(), SyncParams::for_network(Network::Regtest), start(&p), min, NOW, 3);
    let mut peak = 0;
    for chunk in chain.chunks(2000) {
        let r = sync.process(chunk, true);
        assert!(r.success && r.request_more && r.headers.is_empty());
        peak = peak.max(sync.memory_usage());
    }
    // 100,000 headers at one commitment bit per 275 headers: a few dozen bytes.
    assert!(peak <= 64, "presync held {peak} bytes");
    assert_eq!(sync.presync_height(), 100_000);
    // The peer's chain ends short of the minimum work: the sync ends, nothing stored.
    let tail = chain_from(chain.last().unwrap(), 10, 2);
    let r = sync.process(&tail, false);
    assert!(r.success && !r.request_more && r.headers.is_empty());
    assert_eq!(sync.phase(), Phase::Final);
}

#[test]
fn a_different_chain_on_redownload_is_caught_by_commitments() {
    let p = regtest();
    let honest = chain_from(&p.genesis, 20_000, 4);
    let other = chain_from(&p.genesis, 20_000, 5);
    let min = work_n(&p, 19_000);
    let mut sync = HeadersSync::new(p.clone(), SyncParams::for_network(Network::Regtest), start(&p), min, NOW, 0);
    let (_, ok, _) = feed(&mut sync, &honest);
    assert!(ok && sync.phase() == Phase::Redownload);
    // ~69 commitments before the work threshold: a different chain slips past all of them with
    // probability 2^-69.
    let (released, ok, _) = feed(&mut sync, &other);
    assert!(!ok, "swapped chain accepted");
    assert!(released.len() <= SyncParams::for_network(Network::Regtest).redownload_buffer_size + 2000);
    assert_eq!(sync.phase(), Phase::Final);
}

#[test]
fn non_connecting_headers_and_chains_longer_than_time_allows_abort() {
    let p = regtest();
    let min = work_n(&p, 1_000_000);
    let sp = SyncParams::for_network(Network::Regtest);
    let mut sync = HeadersSync::new(p.clone(), sp, start(&p), min, NOW, 0);
    let stray = chain_from(&chain_from(&p.genesis, 1, 9)[0], 5, 9);
    assert!(!sync.process(&stray, true).success);
    // Started just after genesis' time: at most 6 headers/s for 2 h + a moment can exist.
    let mut sync = HeadersSync::new(p.clone(), sp, start(&p), min, i64::from(p.genesis.time) + 10, 0);
    let long = chain_from(&p.genesis, 60_000, 6);
    let (_, ok, _) = feed(&mut sync, &long);
    assert!(!ok, "a chain longer than time allows must abort");
}

#[test]
fn bit_deque_is_fifo() {
    let mut d = BitDeque::default();
    let bits: Vec<bool> = (0..300).map(|i| (i * 7 + i / 3) % 2 == 0).collect();
    for &b in &bits[..150] {
        d.push_back(b);
    }
    let mut got: Vec<bool> = (0..100).filter_map(|_| d.pop_front()).collect();
    for &b in &bits[150..] {
        d.push_back(b);
    }
    while let Some(b) = d.pop_front() {
        got.push(b);
    }
    assert_eq!(got, bits);
    assert_eq!(d.len(), 0);
}
