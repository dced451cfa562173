//! Unit tests of the block download scheduler on header trees built without proof of work, with
//! fake time.

use std::time::{Duration, Instant};

use bitcoin::BlockHash;
use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::pow::Work;

use super::*;
use crate::engine::chain::pow::work_of;
use crate::engine::chain::tree::{BlockStatus, EntryId, HeaderTree, Inserted};

const SPACING: Duration = Duration::from_secs(600);

/// A header on `prev` made distinct by `nonce` (the tree does not check proof of work).
pub(super) fn header(prev: BlockHash, nonce: u32) -> Header {
    Header {
        version: bitcoin::block::Version::from_consensus(4),
        prev_blockhash: prev,
        merkle_root: bitcoin::TxMerkleNode::all_zeros(),
        time: 1_600_000_000u32.wrapping_add(nonce),
        bits: bitcoin::CompactTarget::from_consensus(0x207f_ffff),
        nonce,
    }
}

/// A tree with a chain of `len` headers on genesis; `ids[h]` is the entry at height `h`.
pub(super) fn chain(len: u32) -> (HeaderTree, Vec<EntryId>) {
    let genesis = header(BlockHash::all_zeros(), 0);
    let mut tree = HeaderTree::new(genesis, work_of(genesis.bits));
    let mut ids = vec![0];
    ids.extend(branch(&mut tree, 0, len, 1_000_000));
    (tree, ids)
}

/// `len` headers on entry `from`, nonces from `nonce_base + 1`.
pub(super) fn branch(tree: &mut HeaderTree, from: EntryId, len: u32, nonce_base: u32) -> Vec<EntryId> {
    let mut prev = tree.entry(from).map(|e| e.hash).unwrap_or_else(BlockHash::all_zeros);
    let mut ids = Vec::new();
    for i in 1..=len {
        let h = header(prev, nonce_base + i);
        prev = h.block_hash();
        match tree.insert(h, prev, work_of(h.bits)) {
            Some(Inserted::NewTip { id, .. } | Inserted::SideBranch(id)) => ids.push(id),
            other => panic!("unexpected {other:?}"),
        }
    }
    ids
}

fn regtest() -> BlockDownload {
    BlockDownload::new(DownloadParams { segwit_height: 0, minimum_chain_work: Work::from_le_bytes([0; 32]) })
}

fn facts(best: EntryId) -> FetchFacts {
    FetchFacts { best_known: Some(best), limited: false, witness: true, allowed: true }
}

fn heights(tree: &HeaderTree, blocks: &[(EntryId, BlockHash)]) -> Vec<u32> {
    blocks.iter().map(|&(id, _)| tree.entry(id).map_or(u32::MAX, |e| e.height)).collect()
}

/// The block at `id` arrives from `peer` and is stored.
fn deliver(bd: &mut BlockDownload, tree: &mut HeaderTree, id: EntryId, peer: PeerId, now: Instant) -> Received {
    let hash = tree.entry(id).map(|e| e.hash).unwrap_or_else(BlockHash::all_zeros);
    let r = bd.received(&hash, peer, now);
    tree.add_status(id, BlockStatus::HAVE_DATA);
    bd.forget(&hash, now);
    r
}

/// Peer `b` keeps fetching and delivering everything but what peer `a` holds, until it finds
/// nothing more to fetch; returns its last fetch.
fn fill_window(bd: &mut BlockDownload, tree: &mut HeaderTree, b: PeerId, best: EntryId, now: Instant) -> Fetch {
    for _ in 0..200 {
        let f = bd.fetch(tree, b, facts(best), now);
        if f.blocks.is_empty() {
            return f;
        }
        for &(id, _) in &f.blocks {
            assert_eq!(deliver(bd, tree, id, b, now), Received::Requested);
        }
    }
    panic!("the window never filled");
}

#[test]
fn at_most_16_blocks_are_in_flight_from_one_peer() {
    let (tree, ids) = chain(100);
    let mut bd = regtest();
    let t0 = Instant::now();
    bd.add_peer(1);
    let f = bd.fetch(&tree, 1, facts(ids[100]), t0);
    assert_eq!(heights(&tree, &f.blocks), (1..=16).collect::<Vec<_>>());
    assert_eq!(bd.in_flight(1), 16);
    assert!(bd.fetch(&tree, 1, facts(ids[100]), t0).blocks.is_empty());
    // One delivered: room for exactly one more, the next in line.
    let hash = tree.entry(ids[1]).map(|e| e.hash).unwrap_or_else(BlockHash::all_zeros);
    assert_eq!(bd.received(&hash, 1, t0), Received::Requested);
    let f = bd.fetch(&tree, 1, facts(ids[100]), t0);
    // Block 1 arrived but is not stored yet: it is no longer in flight, so it is asked again
    // first (Core's behaviour until validation stores it and `forget` runs).
    assert_eq!(heights(&tree, &f.blocks), vec![1]);
    assert_eq!(bd.in_flight(1), 16);
}

#[test]
fn fetching_stops_at_the_peers_best_block_and_when_not_allowed() {
    let (tree, ids) = chain(100);
    let mut bd = regtest();
    let t0 = Instant::now();
    bd.add_peer(1);
    let f = bd.fetch(&tree, 1, facts(ids[5]), t0);
    assert_eq!(heights(&tree, &f.blocks), vec![1, 2, 3, 4, 5]);
    bd.add_peer(2);
    assert!(bd.fetch(&tree, 2, FetchFacts { allowed: false, ..facts(ids[100]) }, t0).blocks.is_empty());
    assert!(bd.fetch(&tree, 2, FetchFacts { best_known: None, ..facts(ids[100]) }, t0).blocks.is_empty());
    // An unknown peer gets nothing and no state.
    assert!(bd.fetch(&tree, 9, facts(ids[100]), t0).blocks.is_empty());
    assert_eq!(bd.in_flight(9), 0);
}

#[test]
fn two_peers_split_the_work_without_duplicates() {
    let (tree, ids) = chain(100);
    let mut bd = regtest();
    let t0 = Instant::now();
    bd.add_peer(1);
    bd.add_peer(2);
    let a = bd.fetch(&tree, 1, facts(ids[100]), t0);
    let b = bd.fetch(&tree, 2, facts(ids[100]), t0);
    assert_eq!(heights(&tree, &a.blocks), (1..=16).collect::<Vec<_>>());
    assert_eq!(heights(&tree, &b.blocks), (17..=32).collect::<Vec<_>>());
    for &(_, h) in &a.blocks {
        assert_eq!(bd.requested_from(&h), Some(1));
    }
    for &(_, h) in &b.blocks {
        assert_eq!(bd.requested_from(&h), Some(2));
        assert!(bd.is_requested(&h));
    }
    assert_eq!(bd.total_in_flight(), 32);
    assert_eq!(bd.peers_downloading_from(), 2);
}

#[test]
fn nothing_beyond_the_last_common_block_plus_the_window_is_requested() {
    let (mut tree, ids) = chain(1100);
    let mut bd = regtest();
    let t0 = Instant::now();
    bd.add_peer(1);
    let first = bd.fetch(&tree, 1, facts(ids[1100]), t0);
    assert_eq!(heights(&tree, &first.blocks)[0], 1);
    // The peer delivers everything but block 1: the last common block stays at genesis, so
    // the window ends at 1024.
    let mut requested = heights(&tree, &first.blocks);
    for &(id, _) in &first.blocks[1..] {
        deliver(&mut bd, &mut tree, id, 1, t0);
    }
    for _ in 0..200 {
        let f = bd.fetch(&tree, 1, facts(ids[1100]), t0);
        if f.blocks.is_empty() {
            // The peer holds the first block itself: it is not its own staller.
            assert_eq!(f.stall_started, None);
            break;
        }
        requested.extend(heights(&tree, &f.blocks));
        for &(id, _) in &f.blocks {
            deliver(&mut bd, &mut tree, id, 1, t0);
        }
    }
    requested.sort_unstable();
    assert_eq!(requested, (1..=1024).collect::<Vec<_>>(), "each block up to the window's end, once");
    assert_eq!(bd.common_height(&tree, 1), Some(0));
    assert_eq!(bd.in_flight(1), 1);
    // Block 1 arrives: every block up to 1024 is stored. As in Core the walk that moves the
    // last common block to 1024 still uses the window it started with (ending at 1024), so
    // the next fetch is the one that moves on.
    deliver(&mut bd, &mut tree, ids[1], 1, t0);
    let f = bd.fetch(&tree, 1, facts(ids[1100]), t0);
    assert_eq!((f.blocks.len(), f.stall_started), (0, None));
    assert_eq!(bd.common_height(&tree, 1), Some(1024));
    let f = bd.fetch(&tree, 1, facts(ids[1100]), t0);
    assert_eq!(heights(&tree, &f.blocks), (1025..=1040).collect::<Vec<_>>());
    assert_eq!(bd.common_height(&tree, 1), Some(1024));
}

#[test]
fn the_window_follows_the_active_tip() {
    let (mut tree, ids) = chain(3000);
    tree.set_active_tip(ids[1500]);
    let mut bd = regtest();
    let t0 = Instant::now();
    bd.add_peer(1);
    let f = bd.fetch(&tree, 1, facts(ids[3000]), t0);
    assert_eq!(heights(&tree, &f.blocks), (1501..=1516).collect::<Vec<_>>());
    assert_eq!(bd.common_height(&tree, 1), Some(1500));
}

#[test]
fn the_staller_is_marked_dropped_after_2_s_and_its_blocks_go_to_the_other_peer() {
    let (mut tree, ids) = chain(1100);
    let mut bd = regtest();
    let t0 = Instant::now();
    bd.add_peer(1);
    bd.add_peer(2);
    let held = bd.fetch(&tree, 1, facts(ids[1100]), t0);
    assert_eq!(heights(&tree, &held.blocks), (1..=16).collect::<Vec<_>>());
    // Peer 2 downloads 17..=1024 and then has nothing to fetch: 1025 is past the window,
    // which peer 1's blocks hold at genesis.
    let last = fill_window(&mut bd, &mut tree, 2, ids[1100], t0);
    assert_eq!(last.stall_started, Some(1));
    assert_eq!(bd.stalling_since(1), Some(t0));
    // Marked once only.
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(bd.fetch(&tree, 2, facts(ids[1100]), t1).stall_started, None);
    assert_eq!(bd.stalling_since(1), Some(t0));
    // Not past 2 s: kept (Core: stalling since < now - timeout).
    assert_eq!(bd.check(1, t0 + Duration::from_secs(2), SPACING), None);
    let t2 = t0 + Duration::from_millis(2001);
    assert_eq!(
        bd.check(1, t2, SPACING),
        Some(DownloadTimeout::Stalling { increased_to: Some(Duration::from_secs(4)) })
    );
    assert_eq!(bd.stalling_timeout(), Duration::from_secs(4));
    assert_eq!(DownloadTimeout::Stalling { increased_to: None }.to_string(), "Peer is stalling block download");
    // Dropped: no second verdict (the timeout does not double again), no new requests.
    assert_eq!(bd.check(1, t0 + Duration::from_secs(10), SPACING), None);
    assert_eq!(bd.stalling_timeout(), Duration::from_secs(4));
    assert!(bd.fetch(&tree, 1, facts(ids[1100]), t2).blocks.is_empty());
    // Its requests are still its own until it is gone; then they go to peer 2.
    assert!(bd.fetch(&tree, 2, facts(ids[1100]), t2).blocks.is_empty());
    let freed = bd.remove_peer(1);
    assert_eq!(freed.len(), 16);
    assert_eq!(bd.peers_downloading_from(), 0);
    let f = bd.fetch(&tree, 2, facts(ids[1100]), t2);
    assert_eq!(heights(&tree, &f.blocks), (1..=16).collect::<Vec<_>>());
    let hashes: Vec<BlockHash> = f.blocks.iter().map(|&(_, h)| h).collect();
    assert_eq!(hashes, freed);
}

#[test]
fn a_request_ending_clears_the_stall() {
    let (mut tree, ids) = chain(1100);
    let mut bd = regtest();
    let t0 = Instant::now();
    bd.add_peer(1);
    bd.add_peer(2);
    bd.fetch(&tree, 1, facts(ids[1100]), t0);
    assert_eq!(fill_window(&mut bd, &mut tree, 2, ids[1100], t0).stall_started, Some(1));
    // Peer 1 delivers one of its blocks (not the first): no longer stalling.
    assert_eq!(deliver(&mut bd, &mut tree, ids[5], 1, t0), Received::Requested);
    assert_eq!(bd.stalling_since(1), None);
    assert_eq!(bd.check(1, t0 + Duration::from_secs(10), SPACING), None);
}

/// Marks `peer` as stalling since `since` (as `fetch` does for a staller).
fn stall(bd: &mut BlockDownload, peer: PeerId, since: Instant) {
    if let Some(s) = bd.peers.get_mut(&peer) {
        s.stalling_since = Some(since);
    }
}

#[test]
fn the_stalling_timeout_doubles_to_64_s_and_decays_back_as_blocks_connect() {
    let mut bd = regtest();
    let t0 = Instant::now();
    let mut expected = 2;
    for peer in 0..7u64 {
        bd.add_peer(peer);
        stall(&mut bd, peer, t0);
        // Just inside the current timeout: kept.
        assert_eq!(bd.check(peer, t0 + Duration::from_secs(expected), SPACING), None);
        let next = (expected * 2).min(64);
        let verdict = bd.check(peer, t0 + Duration::from_secs(expected) + Duration::from_millis(1), SPACING);
        let increased_to = (next != expected).then(|| Duration::from_secs(next));
        assert_eq!(verdict, Some(DownloadTimeout::Stalling { increased_to }));
        assert_eq!(bd.stalling_timeout(), Duration::from_secs(next));
        expected = next;
    }
    assert_eq!(bd.stalling_timeout(), BLOCK_STALLING_TIMEOUT_MAX);
    // Each connected block: × 0.85, truncated to whole seconds, not below 2 s.
    let mut seen = Vec::new();
    while let Some(t) = bd.connected() {
        seen.push(t.as_secs());
    }
    assert_eq!(seen, vec![54, 45, 38, 32, 27, 22, 18, 15, 12, 10, 8, 6, 5, 4, 3, 2]);
    assert_eq!(bd.stalling_timeout(), BLOCK_STALLING_TIMEOUT_DEFAULT);
    assert_eq!(bd.connected(), None);
}

#[test]
fn the_block_download_timeout_is_one_interval_plus_half_per_other_downloading_peer() {
    let (mut tree, ids) = chain(100);
    let mut bd = regtest();
    let t0 = Instant::now();
    bd.add_peer(1);
    let f = bd.fetch(&tree, 1, facts(ids[100]), t0);
    let first = f.blocks[0].1;
    // Alone: 600 s.
    assert_eq!(bd.check(1, t0 + SPACING, SPACING), None);
    // A second downloading peer: 600 × (1 + 0.5) = 900 s.
    bd.add_peer(2);
    let t1 = t0 + Duration::from_secs(10);
    assert_eq!(bd.fetch(&tree, 2, facts(ids[100]), t1).blocks.len(), 16);
    assert_eq!(bd.check(1, t0 + Duration::from_secs(900), SPACING), None);
    let late = t0 + Duration::from_millis(900_001);
    assert_eq!(bd.check(1, late, SPACING), Some(DownloadTimeout::Timeout { hash: first }));
    assert_eq!(DownloadTimeout::Timeout { hash: first }.to_string(), format!("Timeout downloading block {first}"));
    // Peer 2 started at t1; delivering its first block at t1 + 800 s restarts its clock, so it
    // is not late at t1 + 1000 s (with peer 1 still counted: 900 s from t1 + 800 s).
    assert_eq!(deliver(&mut bd, &mut tree, ids[17], 2, t1 + Duration::from_secs(800)), Received::Requested);
    assert_eq!(bd.check(2, t1 + Duration::from_secs(1000), SPACING), None);
    let t2 = t1 + Duration::from_millis(1_700_001);
    assert!(matches!(bd.check(2, t2, SPACING), Some(DownloadTimeout::Timeout { .. })));
    // Delivering a later block does not restart the clock.
    let (mut tree, ids) = chain(100);
    let mut bd = regtest();
    bd.add_peer(3);
    bd.fetch(&tree, 3, facts(ids[100]), t0);
    deliver(&mut bd, &mut tree, ids[2], 3, t0 + Duration::from_secs(500));
    assert!(matches!(bd.check(3, t0 + Duration::from_millis(600_001), SPACING), Some(DownloadTimeout::Timeout { .. })));
}

#[test]
fn a_limited_peer_is_asked_only_for_its_last_288_blocks_less_two() {
    let (mut tree, ids) = chain(1000);
    let mut bd = regtest();
    let t0 = Instant::now();
    bd.add_peer(1);
    let limited = FetchFacts { limited: true, ..facts(ids[1000]) };
    let f = bd.fetch(&tree, 1, limited, t0);
    // 1000 - 714 = 286 = 288 - 2: skipped; 715 is the first asked.
    assert_eq!(heights(&tree, &f.blocks), (715..=730).collect::<Vec<_>>());
    // A full peer starts at 1.
    bd.add_peer(2);
    assert_eq!(heights(&tree, &bd.fetch(&tree, 2, facts(ids[1000]), t0).blocks)[0], 1);
    // Near the tip a limited peer gets the next blocks as usual.
    tree.set_active_tip(ids[900]);
    bd.add_peer(3);
    let f = bd.fetch(&tree, 3, FetchFacts { limited: true, ..facts(ids[1000]) }, t0);
    assert_eq!(heights(&tree, &f.blocks), (901..=916).collect::<Vec<_>>());
}

#[test]
fn a_peer_with_less_work_or_an_invalid_best_chain_gets_nothing() {
    let (mut tree, ids) = chain(30);
    tree.set_active_tip(ids[10]);
    let mut bd = regtest();
    let t0 = Instant::now();
    bd.add_peer(1);
    // Its best block is below our active tip.
    assert!(bd.fetch(&tree, 1, facts(ids[5]), t0).blocks.is_empty());
    // A side branch with less work than the active chain.
    let side = branch(&mut tree, ids[4], 5, 500);
    assert!(bd.fetch(&tree, 1, facts(side[4]), t0).blocks.is_empty());
    // Equal work counts as interesting (Core: less work is not); the fork's blocks are asked.
    let side2 = branch(&mut tree, ids[4], 6, 900);
    let f = bd.fetch(&tree, 1, facts(side2[5]), t0);
    assert_eq!(f.blocks.iter().map(|&(id, _)| id).collect::<Vec<_>>(), side2);
    // An invalid best chain: nothing, though the blocks before the invalid one are missing.
    bd.add_peer(2);
    tree.mark_invalid(ids[20]);
    assert!(bd.fetch(&tree, 2, facts(ids[30]), t0).blocks.is_empty());
    assert!(bd.fetch(&tree, 2, facts(ids[20]), t0).blocks.is_empty());
    // Its valid prefix, as another peer's best, is fetched.
    let f = bd.fetch(&tree, 2, facts(ids[19]), t0);
    assert_eq!(heights(&tree, &f.blocks), (11..=19).collect::<Vec<_>>());
    // A failed block the tree has not (yet) propagated to its descendants stops the walk
    // there, as in Core: the blocks before it are asked, none from it on.
    let (mut tree2, ids2) = chain(30);
    tree2.add_status(ids2[25], BlockStatus::FAILED);
    let mut bd2 = regtest();
    bd2.add_peer(1);
    let mut got = heights(&tree2, &bd2.fetch(&tree2, 1, facts(ids2[30]), t0).blocks);
    for &h in &got {
        tree2.add_status(ids2[h as usize], BlockStatus::HAVE_DATA);
        bd2.forget(&tree2.entry(ids2[h as usize]).map(|e| e.hash).unwrap_or_else(BlockHash::all_zeros), t0);
    }
    got.extend(heights(&tree2, &bd2.fetch(&tree2, 1, facts(ids2[30]), t0).blocks));
    assert_eq!(got, (1..=24).collect::<Vec<_>>());
    // Below the minimum chain work: nothing.
    let mut strict = BlockDownload::new(DownloadParams {
        segwit_height: 0,
        minimum_chain_work: tree.entry(ids[19]).map_or(Work::from_le_bytes([0xff; 32]), |e| e.chain_work)
            + work_of(bitcoin::CompactTarget::from_consensus(0x207f_ffff)),
    });
    strict.add_peer(1);
    assert!(strict.fetch(&tree, 1, facts(ids[19]), t0).blocks.is_empty());
}

#[test]
fn stored_and_active_blocks_are_skipped() {
    let (mut tree, ids) = chain(40);
    tree.set_active_tip(ids[10]);
    tree.add_status(ids[12], BlockStatus::HAVE_DATA);
    // Received and waiting for the validation thread: not asked for again either.
    tree.add_status(ids[13], BlockStatus::RECEIVED);
    let mut bd = regtest();
    let t0 = Instant::now();
    bd.add_peer(1);
    let f = bd.fetch(&tree, 1, facts(ids[40]), t0);
    let mut want = vec![11];
    want.extend(14..=28);
    assert_eq!(heights(&tree, &f.blocks), want);
    // Stored blocks after a missing one do not move the last common block.
    assert_eq!(bd.common_height(&tree, 1), Some(10));
}

#[test]
fn witness_blocks_come_only_from_witness_peers() {
    let (tree, ids) = chain(40);
    let t0 = Instant::now();
    let legacy = FetchFacts { witness: false, ..facts(ids[40]) };
    let mut bd = regtest();
    bd.add_peer(1);
    assert!(bd.fetch(&tree, 1, legacy, t0).blocks.is_empty());
    let mut bd =
        BlockDownload::new(DownloadParams { segwit_height: 5, minimum_chain_work: Work::from_le_bytes([0; 32]) });
    bd.add_peer(1);
    assert_eq!(heights(&tree, &bd.fetch(&tree, 1, legacy, t0).blocks), vec![1, 2, 3, 4]);
    assert_eq!(heights(&tree, &bd.direct_fetch(&tree, 1, ids[8], false, t0).blocks), Vec::<u32>::new());
    assert_eq!(segwit_height(Network::Main), 481_824);
    assert_eq!(DownloadParams::for_chain(&ChainParams::new(Network::Regtest)).segwit_height, 0);
}

#[test]
fn received_blocks_are_matched_to_their_requests() {
    let (mut tree, ids) = chain(40);
    let mut bd = regtest();
    let t0 = Instant::now();
    bd.add_peer(1);
    bd.add_peer(2);
    bd.fetch(&tree, 1, facts(ids[40]), t0);
    let h2 = tree.entry(ids[2]).map(|e| e.hash).unwrap_or_else(BlockHash::all_zeros);
    let h30 = tree.entry(ids[30]).map(|e| e.hash).unwrap_or_else(BlockHash::all_zeros);
    // Not requested from anyone.
    let r = bd.received(&h30, 1, t0);
    assert_eq!(r, Received::Unrequested);
    assert!(!r.force_processing());
    // Requested from peer 1 but sent by peer 2: peer 1's request stays.
    let r = bd.received(&h2, 2, t0);
    assert_eq!(r, Received::FromOther(1));
    assert!(r.force_processing());
    assert_eq!(bd.requested_from(&h2), Some(1));
    // Once stored, it is no longer in flight anywhere.
    tree.add_status(ids[2], BlockStatus::HAVE_DATA);
    bd.forget(&h2, t0);
    assert!(!bd.is_requested(&h2));
    assert_eq!(bd.in_flight(1), 15);
    assert_eq!(deliver(&mut bd, &mut tree, ids[1], 1, t0), Received::Requested);
    assert_eq!(bd.in_flight(1), 14);
}

#[test]
fn not_found_frees_the_requests_for_other_peers() {
    let (tree, ids) = chain(40);
    let mut bd = regtest();
    let t0 = Instant::now();
    bd.add_peer(1);
    bd.add_peer(2);
    let f = bd.fetch(&tree, 1, facts(ids[40]), t0);
    let missing: Vec<BlockHash> = f.blocks[..3].iter().map(|&(_, h)| h).collect();
    // A notfound from a peer the blocks were not asked of changes nothing.
    assert_eq!(bd.not_found(2, &missing, t0), 0);
    assert_eq!(bd.not_found(1, &missing, t0), 3);
    assert_eq!(bd.in_flight(1), 13);
    assert!(missing.iter().all(|h| !bd.is_requested(h)));
    // Not asked of peer 1 again: it gets the next blocks instead.
    let again = bd.fetch(&tree, 1, facts(ids[40]), t0);
    assert_eq!(heights(&tree, &again.blocks), vec![17, 18, 19]);
    // Peer 2 gets them.
    let other = bd.fetch(&tree, 2, facts(ids[40]), t0);
    assert_eq!(heights(&tree, &other.blocks)[..3], [1, 2, 3]);
}

#[test]
fn removing_a_peer_frees_its_requests_and_counts() {
    let (tree, ids) = chain(40);
    let mut bd = regtest();
    let t0 = Instant::now();
    for p in 1..=3 {
        bd.add_peer(p);
    }
    bd.fetch(&tree, 1, facts(ids[40]), t0);
    bd.fetch(&tree, 2, facts(ids[40]), t0);
    assert_eq!(bd.peers_downloading_from(), 2);
    assert_eq!(bd.remove_peer(3), Vec::<BlockHash>::new());
    assert_eq!(bd.peers_downloading_from(), 2);
    let freed = bd.remove_peer(1);
    assert_eq!(freed.len(), 16);
    assert_eq!(bd.peers_downloading_from(), 1);
    assert_eq!(bd.total_in_flight(), 16);
    assert!(freed.iter().all(|h| !bd.is_requested(h)));
    assert_eq!(bd.remove_peer(1), Vec::<BlockHash>::new());
    bd.remove_peer(2);
    assert_eq!((bd.peers_downloading_from(), bd.total_in_flight()), (0, 0));
}

#[test]
fn direct_fetch_asks_for_the_new_blocks_toward_the_announced_header() {
    let (mut tree, ids) = chain(103);
    tree.set_active_tip(ids[100]);
    let mut bd = regtest();
    let t0 = Instant::now();
    bd.add_peer(1);
    bd.add_peer(2);
    let d = bd.direct_fetch(&tree, 1, ids[103], true, t0);
    assert_eq!(heights(&tree, &d.blocks), vec![101, 102, 103]);
    assert!(!d.large_reorg);
    // Already in flight: not again.
    assert!(bd.direct_fetch(&tree, 2, ids[103], true, t0).blocks.is_empty());
    // Less work than the active tip: nothing.
    let side = branch(&mut tree, ids[98], 1, 5000);
    assert_eq!(bd.direct_fetch(&tree, 2, side[0], true, t0), DirectFetch::default());
    // A fork deeper than 17 missing blocks: a large reorg, nothing fetched.
    let deep = branch(&mut tree, ids[60], 50, 7000);
    let d = bd.direct_fetch(&tree, 2, deep[49], true, t0);
    assert!(d.large_reorg && d.blocks.is_empty());
    // A fork of 17 blocks: fetched up to the per-peer limit, earliest first.
    let fork = branch(&mut tree, ids[90], 17, 9000);
    let d = bd.direct_fetch(&tree, 2, fork[16], true, t0);
    assert!(!d.large_reorg);
    assert_eq!(d.blocks.iter().map(|&(id, _)| id).collect::<Vec<_>>(), fork[..16].to_vec());
    assert_eq!(bd.in_flight(2), 16);
    // An invalid header: nothing.
    tree.mark_invalid(fork[16]);
    bd.add_peer(3);
    assert!(bd.direct_fetch(&tree, 3, fork[16], true, t0).blocks.is_empty());
}

#[test]
fn the_last_common_block_follows_the_active_chain_and_the_peers_branch() {
    let (mut tree, ids) = chain(80);
    tree.set_active_tip(ids[30]);
    let mut bd = regtest();
    let t0 = Instant::now();
    bd.add_peer(1);
    let f = bd.fetch(&tree, 1, facts(ids[80]), t0);
    assert_eq!(bd.common_height(&tree, 1), Some(30));
    // Its requests end without the blocks being stored (e.g. refused).
    for &(_, h) in &f.blocks {
        bd.forget(&h, t0);
    }
    // The active chain moved ahead: the fork with it has more work, so it is the new start.
    tree.set_active_tip(ids[50]);
    let f = bd.fetch(&tree, 1, facts(ids[80]), t0);
    assert_eq!(bd.common_height(&tree, 1), Some(50));
    assert_eq!(heights(&tree, &f.blocks)[0], 51);
    for &(_, h) in &f.blocks {
        bd.forget(&h, t0);
    }
    // The peer switches to a heavier branch forking at 20: the last common block (50) is not
    // on it, so it goes back to the fork and the branch's blocks are asked.
    let side = branch(&mut tree, ids[20], 70, 3000);
    let f = bd.fetch(&tree, 1, facts(side[69]), t0);
    assert_eq!(bd.common_height(&tree, 1), Some(20));
    assert_eq!(f.blocks.iter().map(|&(id, _)| id).collect::<Vec<_>>(), side[..16].to_vec());
}

#[test]
fn direct_fetch_applies_within_20_block_intervals_of_now() {
    let now = 1_700_000_000i64;
    assert!(can_direct_fetch((now - 11_999) as u32, now, 600));
    assert!(!can_direct_fetch((now - 12_000) as u32, now, 600));
    assert!(can_direct_fetch(now as u32 + 100, now, 600));
    assert!(!can_direct_fetch(0, i64::MAX, u32::MAX));
}
