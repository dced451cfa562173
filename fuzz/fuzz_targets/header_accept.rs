//! Fuzzes `Chain::accept` (validation, insertion, reorganisation) with batches of headers.
//!
//! Input: byte 0 picks the rules — mainnet or signet with their real headers from the shared
//! test data (if the files are there; regtest otherwise), regtest, or regtest's easy proof of
//! work under retargeting rules the input configures (a difficulty period of 2–65 headers,
//! min-difficulty blocks, BIP94, BIP34/65/66 heights), so that retargets, the min-difficulty
//! rule and the timewarp check are reached with headers mined in microseconds. Then a clock
//! offset, then up to 48 operations, each building one batch for `accept`:
//! * a slice of the network's reference chain (real headers, or a regtest chain mined once);
//! * that slice with a few fields mutated (and, on easy networks, re-mined and re-linked so the
//!   mutation reaches the contextual checks rather than the proof of work);
//! * new headers mined on any entry of the tree, with input-chosen time steps, versions and
//!   bits (the required bits, or others);
//! * an 80-byte header from the input, optionally re-parented onto a tree entry;
//! * a reference slice reversed or with duplicates.
//!
//! Checks after each batch: the tree grew by `added`; every header before the failing one is in
//! the tree, the failing one is not and every later one was not looked at (its absence is not
//! required: it may have been added by an earlier batch); `new_tip` is set exactly when the tip
//! changed, and the tip's work never decreases; `last` is the last processed header. After
//! the run, all of the tree's invariants (`common::check_tree`).

#![no_main]

use std::sync::OnceLock;

use bitcoin::block::Header;
use bitcoin::consensus::deserialize;
use bitcoin::pow::Work;
use btcloop::engine::chain::accept::Chain;
use btcloop::engine::chain::params::ChainParams;
use btcloop::engine::chain::pow::{HeaderFacts, next_work_required};
use btcloop::engine::chain::validate::BranchView;
use btcloop::base::chainparams::Network;
use libfuzzer_sys::fuzz_target;

mod common;
use common::{Reader, check_tree, child, mine_spaced, mutate, real_headers, remine};

/// Most operations per input.
const MAX_OPS: usize = 48;
/// Longest regtest reference chain.
const REGTEST_LEN: usize = 3000;

struct Reference {
    main: Option<Vec<Header>>,
    signet: Option<Vec<Header>>,
    regtest: Vec<Header>,
}

fn reference() -> &'static Reference {
    static R: OnceLock<Reference> = OnceLock::new();
    R.get_or_init(|| {
        let params = ChainParams::new(Network::Regtest);
        Reference {
            main: real_headers("mainnet-headers-0-10236.bin"),
            signet: real_headers("signet-headers-0-2015.bin"),
            regtest: mine_spaced(&params, &params.genesis, REGTEST_LEN, 600, 1),
        }
    })
}

/// Regtest's genesis and proof of work under retargeting rules taken from the input.
fn easy_retarget_params(r: &mut Reader) -> ChainParams {
    let mut p = ChainParams::new(Network::Regtest);
    p.no_retargeting = false;
    p.pow_target_spacing = 600;
    p.pow_target_timespan = 600 * (2 + r.below(64) as u32);
    let flags = r.u8();
    p.allow_min_difficulty_blocks = flags & 1 != 0;
    p.enforce_bip94 = flags & 2 != 0;
    p.bip34_height = u32::from(r.u8());
    p.bip66_height = u32::from(r.u8());
    p.bip65_height = u32::from(r.u8());
    p
}

/// The rules, the reference chain (headers after genesis) and whether re-mining is cheap.
fn setup(r: &mut Reader) -> (ChainParams, &'static [Header], bool) {
    let refs = reference();
    match r.u8() % 4 {
        0 => {
            if let Some(h) = &refs.main {
                return (ChainParams::new(Network::Main), h.get(1..).unwrap_or_default(), false);
            }
        }
        1 => {
            if let Some(h) = &refs.signet {
                return (ChainParams::new(Network::Signet), h.get(1..).unwrap_or_default(), false);
            }
        }
        2 => return (easy_retarget_params(r), &refs.regtest, true),
        _ => {}
    }
    (ChainParams::new(Network::Regtest), &refs.regtest, true)
}

/// A slice of the reference chain.
fn slice<'a>(r: &mut Reader, reference: &'a [Header]) -> &'a [Header] {
    if reference.is_empty() {
        return &[];
    }
    let start = r.below(reference.len());
    let len = r.below(2001);
    &reference[start..(start + len).min(reference.len())]
}

/// Points `batch[i]`'s successors at their re-mined predecessors again.
fn relink(params: &ChainParams, batch: &mut [Header], from: usize) {
    for i in from + 1..batch.len() {
        batch[i].prev_blockhash = batch[i - 1].block_hash();
        remine(params, &mut batch[i]);
    }
}

/// Mines `n` headers on the tree entry `parent` with input-chosen times, versions and bits.
fn mine_on(r: &mut Reader, chain: &Chain, easy: bool) -> Vec<Header> {
    let params = chain.params();
    let tree = chain.tree();
    let entries = tree.entries();
    let parent_id = r.below(entries.len()) as u32;
    let n = r.below(40);
    let Some(start) = tree.entry(parent_id) else { return Vec::new() };
    let (mut prev, mut height) = (start.header, start.height);
    let mut out = Vec::with_capacity(n);
    let mut ancestry: Vec<HeaderFacts> = Vec::new();
    for i in 0..n {
        let step = i32::from(r.u16() as i16);
        let time = prev.time.wrapping_add_signed(step);
        let version = match r.u8() % 4 {
            0 => r.i32(),
            1 => 1,
            _ => 0x2000_0000,
        };
        let mut h = child(&prev, version, time, r.u64() ^ i as u64);
        // The bits the rules require, unless the input asks for others.
        let bits_choice = r.u8();
        if bits_choice & 0x0f != 0 || !easy {
            let view = Extended { chain: BranchView::new(tree, parent_id), base: start.height, extra: &ancestry };
            if let Some(b) = next_work_required(params, height, HeaderFacts::of(&prev), time, &view) {
                h.bits = b;
            }
        } else {
            h.bits = bitcoin::CompactTarget::from_consensus(r.u32());
        }
        if easy {
            remine(params, &mut h);
        }
        ancestry.push(HeaderFacts::of(&h));
        out.push(h);
        prev = h;
        height += 1;
    }
    out
}

/// The ancestry of a header mined on top of a tree entry plus the headers mined after it.
struct Extended<'a> {
    chain: BranchView<'a>,
    base: u32,
    extra: &'a [HeaderFacts],
}

impl btcloop::engine::chain::pow::Ancestry for Extended<'_> {
    fn at(&self, height: u32) -> Option<HeaderFacts> {
        if height <= self.base {
            self.chain.at(height)
        } else {
            self.extra.get((height - self.base - 1) as usize).copied()
        }
    }
}

/// The batch of one operation.
fn batch(r: &mut Reader, chain: &Chain, reference: &[Header], easy: bool) -> Vec<Header> {
    match r.u8() % 6 {
        0 | 1 => slice(r, reference).to_vec(),
        2 => {
            let mut b = slice(r, reference).to_vec();
            for _ in 0..=r.below(3) {
                if b.is_empty() {
                    break;
                }
                let i = r.below(b.len());
                mutate(&mut b[i], r.u8(), r.u32());
                if easy && r.bool() {
                    remine(chain.params(), &mut b[i]);
                    relink(chain.params(), &mut b, i);
                }
            }
            b
        }
        3 => mine_on(r, chain, easy),
        4 => {
            let raw: [u8; 80] = r.array();
            let Ok(mut h) = deserialize::<Header>(&raw) else { return Vec::new() };
            if r.bool() {
                let entries = chain.tree().entries();
                h.prev_blockhash = entries[r.below(entries.len())].hash;
                if easy {
                    remine(chain.params(), &mut h);
                }
            }
            vec![h]
        }
        _ => {
            let mut b = slice(r, reference).to_vec();
            if r.bool() {
                b.reverse();
            } else if !b.is_empty() {
                let i = r.below(b.len());
                let dup = b[i];
                b.insert(r.below(b.len() + 1), dup);
            }
            b
        }
    }
}

/// Feeds one batch and checks what `accept` says against the tree.
fn accept_and_check(chain: &mut Chain, headers: &[Header], now_unix: i64) {
    let (len_before, tip_before) = (chain.tree().len(), chain.tree().tip().clone());
    let known_before: Vec<bool> = headers.iter().map(|h| chain.tree().contains(&h.block_hash())).collect();
    let r = chain.accept(headers, now_unix);
    let tree = chain.tree();
    assert_eq!(tree.len(), len_before + r.added, "tree grew by other than `added`");
    let processed = r.error.as_ref().map_or(headers.len(), |(i, _)| *i);
    assert!(processed <= headers.len());
    for h in &headers[..processed] {
        assert!(tree.contains(&h.block_hash()), "a header before the failing one is not in the tree");
    }
    if let Some((i, e)) = &r.error {
        let bad = headers[*i].block_hash();
        assert!(!known_before[*i], "a known header failed: {e}");
        assert!(!tree.contains(&bad), "the failing header was added: {e}");
    }
    let tip = tree.tip();
    assert!(tip.chain_work >= tip_before.chain_work, "the tip lost work");
    assert_eq!(r.new_tip.is_some(), tip.hash != tip_before.hash, "new_tip does not match the tip change");
    if let Some((fork, old)) = r.new_tip {
        assert_eq!(old, tip_before.height);
        assert!(fork <= old && fork <= tip.height);
        // The old tip's chain and the new best chain agree up to the fork height.
        let old_tip = tree.get(&tip_before.hash).map(|(id, _)| id).expect("old tip still in the tree");
        assert_eq!(tree.ancestor(old_tip, fork), tree.best_id(fork), "fork height {fork} is not shared");
        assert!(tip.chain_work > tip_before.chain_work);
    }
    match (processed.checked_sub(1), r.last) {
        (Some(i), Some(id)) => assert_eq!(tree.entry(id).map(|e| e.hash), Some(headers[i].block_hash())),
        (None, None) => {}
        (p, l) => panic!("`last` {l:?} does not match the headers processed ({p:?})"),
    }
}

/// The one call into the code under test per batch (kept small so it is easy to adapt).
fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let (params, reference, easy) = setup(&mut r);
    let last_time = reference.last().map_or(params.genesis.time, |h| h.time);
    let now_unix = i64::from(last_time) + i64::from(r.i32()) / 64;
    let mut chain = Chain::in_memory(params, Work::from_be_bytes([0; 32]));
    for _ in 0..MAX_OPS {
        if r.is_empty() {
            break;
        }
        let b = batch(&mut r, &chain, reference, easy);
        accept_and_check(&mut chain, &b, now_unix);
    }
    check_tree(chain.tree(), chain.params());
}

fuzz_target!(|data: &[u8]| run(data));
