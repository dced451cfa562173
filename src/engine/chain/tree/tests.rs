use bitcoin::CompactTarget;
use bitcoin::block::Version;
use bitcoin::hash_types::TxMerkleNode;

use super::*;

/// The `getheaders` answer as the protocol builds it, copied out.
fn headers_after(t: &HeaderTree, locator: &[BlockHash], stop: &BlockHash, max: usize) -> Vec<Header> {
    t.best_headers(t.serve_range(locator, stop, max)).copied().collect()
}

fn work(n: u8) -> Work {
    let mut b = [0u8; 32];
    b[31] = n;
    Work::from_be_bytes(b)
}

fn genesis() -> Header {
    bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header
}

/// A child of `parent`; `salt` makes siblings distinct. No proof of work (the tree does not judge).
fn child(parent: &Header, salt: u32) -> Header {
    Header {
        version: Version::from_consensus(4),
        prev_blockhash: parent.block_hash(),
        merkle_root: TxMerkleNode::all_zeros(),
        time: parent.time + 600,
        bits: CompactTarget::from_consensus(0x207fffff),
        nonce: salt,
    }
}

/// Extends `from` by `n` headers, inserting each with `w` work; returns them.
fn grow(tree: &mut HeaderTree, from: Header, n: usize, salt: u32, w: u8) -> Vec<Header> {
    let mut out = Vec::new();
    let mut cur = from;
    for _ in 0..n {
        let h = child(&cur, salt);
        tree.insert(h, h.block_hash(), work(w)).unwrap();
        out.push(h);
        cur = h;
    }
    out
}

#[test]
fn chain_grows_with_heights_and_work() {
    let mut t = HeaderTree::new(genesis(), work(1));
    let hs = grow(&mut t, genesis(), 5, 0, 1);
    assert_eq!(t.height(), 5);
    assert_eq!(t.tip().hash, hs[4].block_hash());
    assert_eq!(t.tip().chain_work, work(6));
    assert_eq!(t.at_height(3).unwrap().hash, hs[2].block_hash());
    assert_eq!(t.get(&hs[0].block_hash()).unwrap().1.height, 1);
    assert_eq!(t.insert(hs[1], hs[1].block_hash(), work(1)), Some(Inserted::Known(2)));
}

#[test]
fn unknown_parent_is_refused() {
    let mut t = HeaderTree::new(genesis(), work(1));
    let orphan = child(&child(&genesis(), 1), 1);
    assert_eq!(t.insert(orphan, orphan.block_hash(), work(1)), None);
    assert_eq!(t.len(), 1);
}

#[test]
fn heavier_branch_reorgs_and_equal_work_does_not() {
    let mut t = HeaderTree::new(genesis(), work(1));
    let main = grow(&mut t, genesis(), 6, 0, 1);
    // A branch from height 3 with equal total work stays a side branch (first seen wins).
    let side = grow(&mut t, main[2], 3, 7, 1);
    assert_eq!(t.tip().hash, main[5].block_hash());
    assert!(!t.on_best_chain(t.get(&side[2].block_hash()).unwrap().0));
    // One more header on the side branch makes it heavier: reorg with fork at height 3.
    let extra = child(&side[2], 7);
    let r = t.insert(extra, extra.block_hash(), work(1)).unwrap();
    assert!(matches!(r, Inserted::NewTip { fork_height: 3, old_height: 6, .. }), "{r:?}");
    assert_eq!(t.height(), 7);
    assert_eq!(t.at_height(4).unwrap().hash, side[0].block_hash());
    assert_eq!(t.at_height(7).unwrap().hash, extra.block_hash());
    assert!(!t.on_best_chain(t.get(&main[5].block_hash()).unwrap().0));
    // A shorter branch with more work per header also wins.
    let heavy = grow(&mut t, main[0], 1, 9, 100);
    assert_eq!(t.tip().hash, heavy[0].block_hash());
    assert_eq!(t.height(), 2);
}

#[test]
fn ancestors_on_and_off_the_best_chain() {
    let mut t = HeaderTree::new(genesis(), work(1));
    let main = grow(&mut t, genesis(), 20, 0, 1);
    let side = grow(&mut t, main[9], 5, 3, 1);
    let side_tip = t.get(&side[4].block_hash()).unwrap().0;
    assert_eq!(t.entry(t.ancestor(side_tip, 12).unwrap()).unwrap().hash, side[1].block_hash());
    assert_eq!(t.entry(t.ancestor(side_tip, 5).unwrap()).unwrap().hash, main[4].block_hash());
    assert_eq!(t.ancestor(side_tip, 16), None, "above the entry");
    assert_eq!(t.ancestor(side_tip, 0), Some(0));
}

#[test]
fn median_time_past_of_last_eleven() {
    let mut t = HeaderTree::new(genesis(), work(1));
    let g = genesis();
    let mut cur = g;
    let mut times = vec![g.time];
    for i in 0..12u32 {
        let mut h = child(&cur, i);
        // Out-of-order times.
        h.time = g.time + [5, 1, 9, 3, 7, 2, 8, 4, 6, 10, 11, 0][i as usize] * 100 + 1;
        t.insert(h, h.block_hash(), work(1)).unwrap();
        times.push(h.time);
        cur = h;
    }
    let mut last11: Vec<u32> = times[times.len() - 11..].to_vec();
    last11.sort_unstable();
    assert_eq!(t.median_time_past(t.tip_id()), last11[5]);
    // With fewer than 11 ancestors (genesis + 2): median of 3.
    let id2 = t.at_height(2).map(|e| t.get(&e.hash).unwrap().0).unwrap();
    let mut first3 = times[..3].to_vec();
    first3.sort_unstable();
    assert_eq!(t.median_time_past(id2), first3[1]);
}

#[test]
fn locator_is_dense_then_exponential_and_ends_at_genesis() {
    let mut t = HeaderTree::new(genesis(), work(1));
    grow(&mut t, genesis(), 1000, 0, 1);
    let loc = t.locator(t.tip_id());
    let heights: Vec<u32> = loc.iter().map(|h| t.get(h).unwrap().1.height).collect();
    assert_eq!(&heights[..11], &[1000, 999, 998, 997, 996, 995, 994, 993, 992, 991, 990]);
    // Core doubles the step after computing the next height.
    assert_eq!(&heights[11..15], &[989, 987, 983, 975]);
    assert_eq!(*heights.last().unwrap(), 0);
    assert!(loc.len() <= MAX_LOCATOR_SZ);
    assert_eq!(t.locator(0), vec![genesis().block_hash()]);
}

#[test]
fn find_fork_and_headers_after_serve_the_best_chain() {
    let mut t = HeaderTree::new(genesis(), work(1));
    let main = grow(&mut t, genesis(), 3000, 0, 1);
    let stop = no_stop();
    // Peer knows up to height 100: we serve 101..=2100.
    let got = headers_after(&t, &[main[99].block_hash()], &stop, 2000);
    assert_eq!(got.len(), 2000);
    assert_eq!(got[0], main[100]);
    assert_eq!(got[1999], main[2099]);
    // hashStop cuts the answer short (inclusive).
    let got = headers_after(&t, &[main[99].block_hash()], &main[104].block_hash(), 2000);
    assert_eq!(got.len(), 5);
    // Unknown locator entries are skipped; none known → from genesis.
    let unknown = child(&genesis(), 99).block_hash();
    assert_eq!(t.find_fork(&[unknown, main[9].block_hash()]), 10);
    assert_eq!(t.find_fork(&[unknown]), 0);
    // At the tip: nothing to serve.
    assert!(headers_after(&t, &[main[2999].block_hash()], &stop, 2000).is_empty());
    // A locator on a stale branch meets the best chain at the fork.
    let side = grow(&mut t, main[49], 3, 5, 1);
    let side_loc = t.locator(t.get(&side[2].block_hash()).unwrap().0);
    assert_eq!(t.find_fork(&side_loc), 50);
}
