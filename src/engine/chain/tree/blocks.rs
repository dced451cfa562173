//! What the header tree knows of blocks (Core's `nStatus` and `m_chain`): each entry's block
//! status and the active chain of validated blocks, both as the validation thread reports them;
//! marking a block invalid (with its descendants) and reconsidering it.

use bitcoin::BlockHash;

use super::{EntryId, HeaderTree};

/// Core's `BlockStatus` bits that a node mirrors from its validation engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BlockStatus(u8);

impl BlockStatus {
    /// Nothing known beyond the header.
    pub const NONE: BlockStatus = BlockStatus(0);
    /// The full block is stored on disk (Core's `BLOCK_HAVE_DATA`).
    pub const HAVE_DATA: BlockStatus = BlockStatus(1);
    /// The block was fully validated and connected once (Core's `BLOCK_VALID_SCRIPTS`).
    pub const VALID: BlockStatus = BlockStatus(2);
    /// The block itself is invalid (Core's `BLOCK_FAILED_VALID`).
    pub const FAILED: BlockStatus = BlockStatus(4);
    /// The block descends from an invalid block (Core's `BLOCK_FAILED_CHILD`).
    pub const FAILED_CHILD: BlockStatus = BlockStatus(8);
    /// The block arrived and waits for the validation thread's verdict: not to be requested
    /// again meanwhile.
    pub const RECEIVED: BlockStatus = BlockStatus(16);
    /// The header was handed to the kernel's block index (so a block on it can be submitted).
    pub const INDEXED: BlockStatus = BlockStatus(32);

    /// This status with the bits of `other` added.
    pub const fn with(self, other: BlockStatus) -> BlockStatus {
        BlockStatus(self.0 | other.0)
    }

    /// This status with the bits of `other` removed.
    pub const fn without(self, other: BlockStatus) -> BlockStatus {
        BlockStatus(self.0 & !other.0)
    }

    /// Whether every bit of `other` is set.
    pub const fn has(self, other: BlockStatus) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the block is stored or waiting for the validation thread's verdict: either way
    /// it is not to be asked for again.
    pub const fn has_block(self) -> bool {
        self.0 & (Self::HAVE_DATA.0 | Self::RECEIVED.0) != 0
    }

    /// Whether the block or one of its ancestors is known invalid (Core's `BLOCK_FAILED_MASK`).
    pub const fn failed(self) -> bool {
        self.0 & (Self::FAILED.0 | Self::FAILED_CHILD.0) != 0
    }
}

impl HeaderTree {
    /// The active chain's tip (the last validated block).
    pub fn active_tip_id(&self) -> EntryId {
        self.active.last().copied().unwrap_or(0)
    }

    /// Height of the active chain's tip.
    pub fn active_height(&self) -> u32 {
        self.active.len().saturating_sub(1) as u32
    }

    /// The active chain's entry id at `height`.
    pub fn active_id(&self, height: u32) -> Option<EntryId> {
        self.active.get(height as usize).copied()
    }

    /// Whether entry `id` is on the active chain.
    pub fn on_active_chain(&self, id: EntryId) -> bool {
        self.entry(id).is_some_and(|e| self.active.get(e.height as usize) == Some(&id))
    }

    /// Core's `LastCommonAncestor`: the last entry that `a` and `b` both descend from (or are),
    /// `None` if either is unknown. Both are first brought to the lower of their heights
    /// ([`HeaderTree::ancestor`], quick on the best chain), then walked back in step.
    pub fn last_common_ancestor(&self, a: EntryId, b: EntryId) -> Option<EntryId> {
        let height = self.entry(a)?.height.min(self.entry(b)?.height);
        let mut pa = self.ancestor(a, height)?;
        let mut pb = self.ancestor(b, height)?;
        while pa != pb {
            pa = self.entry(pa)?.parent;
            pb = self.entry(pb)?.parent;
        }
        Some(pa)
    }

    /// Makes `id` the active tip (the kernel connected it, disconnecting whatever of the old
    /// active chain is not its ancestor). Every block on the new active chain is marked
    /// stored and valid. Returns the height where the old and new active chains meet, or
    /// `None` if `id` is unknown.
    pub fn set_active_tip(&mut self, id: EntryId) -> Option<u32> {
        self.entry(id)?;
        let mut branch = Vec::new();
        let mut cur = id;
        while !self.on_active_chain(cur) {
            branch.push(cur);
            cur = self.entry(cur)?.parent;
        }
        let fork = self.entry(cur)?.height;
        self.active.truncate(fork as usize + 1);
        for &b in branch.iter().rev() {
            self.active.push(b);
            if let Some(e) = self.entries.get_mut(b as usize) {
                let connected = BlockStatus::HAVE_DATA.with(BlockStatus::VALID).with(BlockStatus::INDEXED);
                e.status = e.status.with(connected).without(BlockStatus::RECEIVED);
            }
        }
        Some(fork)
    }

    /// Makes the active chain the best header chain, without marking any block stored or
    /// valid: a node without blocks (the simulator, protocol tests) treats its best header as
    /// its tip.
    pub fn follow_best(&mut self) {
        self.active.clone_from(&self.best);
    }

    /// The kernel no longer has the headers from `id` back to the active chain (it reported a
    /// missing parent): they are to be handed to it again.
    pub fn unindex_branch(&mut self, id: EntryId) {
        let mut cur = id;
        while !self.on_active_chain(cur) {
            let Some(e) = self.entries.get_mut(cur as usize) else { break };
            e.status = e.status.without(BlockStatus::INDEXED);
            if e.height == 0 {
                break;
            }
            cur = e.parent;
        }
    }

    /// The kernel was reopened: what it keeps of headers without stored blocks is not relied
    /// on; every entry off the active chain is handed to it again when needed.
    pub fn unindex_off_active(&mut self) {
        for i in 0..self.entries.len() {
            if !self.on_active_chain(i as EntryId) {
                self.entries[i].status = self.entries[i].status.without(BlockStatus::INDEXED);
            }
        }
    }

    /// Adds status bits to entry `id`.
    pub fn add_status(&mut self, id: EntryId, bits: BlockStatus) {
        if let Some(e) = self.entries.get_mut(id as usize) {
            e.status = e.status.with(bits);
        }
    }

    /// Removes status bits from entry `id`.
    pub fn remove_status(&mut self, id: EntryId, bits: BlockStatus) {
        if let Some(e) = self.entries.get_mut(id as usize) {
            e.status = e.status.without(bits);
        }
    }

    /// The status of the block with this hash, if its header is known.
    pub fn status(&self, hash: &BlockHash) -> Option<BlockStatus> {
        self.get(hash).map(|(_, e)| e.status)
    }

    /// Marks `id` invalid and every descendant as a child of an invalid block, then moves the
    /// best header chain to the most-work entry that is not invalid (Core's
    /// `InvalidBlockFound` and `InvalidateBlock` for the header tree). The active chain is the
    /// kernel's to move; the caller follows its report. Returns the number of entries marked.
    pub fn mark_invalid(&mut self, id: EntryId) -> usize {
        if self.entry(id).is_none() {
            return 0;
        }
        let mut marked = 0;
        if let Some(e) = self.entries.get_mut(id as usize) {
            e.status = e.status.with(BlockStatus::FAILED);
            marked += 1;
        }
        // Children come after their parents in the arena, so one forward pass from `id` sees
        // every descendant after its parent.
        for i in (id as usize + 1)..self.entries.len() {
            let parent = self.entries[i].parent as usize;
            if self.entries.get(parent).is_some_and(|p| p.status.failed()) && !self.entries[i].status.failed() {
                self.entries[i].status = self.entries[i].status.with(BlockStatus::FAILED_CHILD);
                marked += 1;
            }
        }
        self.reselect_best();
        marked
    }

    /// Clears the invalid marks of `id`, its descendants and its ancestors (Core's
    /// `ResetBlockFailureFlags`, for `reconsiderblock`), then reselects the best header chain.
    pub fn clear_invalid(&mut self, id: EntryId) {
        let Some(start) = self.entry(id).map(|e| e.height) else { return };
        let mut cur = id;
        while let Some(e) = self.entries.get_mut(cur as usize) {
            e.status = e.status.without(BlockStatus::FAILED).without(BlockStatus::FAILED_CHILD);
            if e.height == 0 {
                break;
            }
            cur = e.parent;
        }
        for i in (id as usize + 1)..self.entries.len() {
            let e = &self.entries[i];
            if e.height > start && self.ancestor_is(i as EntryId, id) {
                let e = &mut self.entries[i];
                e.status = e.status.without(BlockStatus::FAILED).without(BlockStatus::FAILED_CHILD);
            }
        }
        self.reselect_best();
    }

    /// Whether `ancestor` is `id` or one of its ancestors (a walk of parents).
    fn ancestor_is(&self, mut id: EntryId, ancestor: EntryId) -> bool {
        let Some(target) = self.entry(ancestor).map(|e| e.height) else { return false };
        loop {
            if id == ancestor {
                return true;
            }
            match self.entry(id) {
                Some(e) if e.height > target => id = e.parent,
                _ => return false,
            }
        }
    }

    /// Points the best header chain at the most-work entry that is not invalid (the earliest
    /// such entry on a tie, as Core prefers the header it saw first).
    fn reselect_best(&mut self) {
        let mut best: EntryId = 0;
        for (i, e) in self.entries.iter().enumerate() {
            let cur = &self.entries[best as usize];
            if !e.status.failed() && e.chain_work > cur.chain_work {
                best = i as EntryId;
            }
        }
        let mut chain = Vec::new();
        let mut cur = best;
        loop {
            chain.push(cur);
            match self.entry(cur) {
                Some(e) if e.height > 0 => cur = e.parent,
                _ => break,
            }
        }
        chain.reverse();
        self.best = chain;
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::block::Header;
    use bitcoin::hashes::Hash;

    use super::*;
    use crate::engine::chain::pow::work_of;

    /// A header on `prev` made distinct by `nonce` (the tree does not check proof of work).
    fn header(prev: BlockHash, nonce: u32) -> Header {
        Header {
            version: bitcoin::block::Version::from_consensus(4),
            prev_blockhash: prev,
            merkle_root: bitcoin::TxMerkleNode::all_zeros(),
            time: 1_600_000_000 + nonce,
            bits: bitcoin::CompactTarget::from_consensus(0x207f_ffff),
            nonce,
        }
    }

    fn tree_with(len: u32, nonce_base: u32) -> (HeaderTree, Vec<EntryId>) {
        let genesis = header(BlockHash::all_zeros(), 0);
        let mut tree = HeaderTree::new(genesis, work_of(genesis.bits));
        let mut ids = vec![0];
        let mut prev = genesis.block_hash();
        for i in 1..=len {
            let h = header(prev, nonce_base + i);
            prev = h.block_hash();
            let id = match tree.insert(h, prev, work_of(h.bits)) {
                Some(super::super::Inserted::NewTip { id, .. }) => id,
                other => panic!("unexpected {other:?}"),
            };
            ids.push(id);
        }
        (tree, ids)
    }

    fn branch(tree: &mut HeaderTree, from: EntryId, len: u32, nonce_base: u32) -> Vec<EntryId> {
        let mut prev = tree.entry(from).map(|e| e.hash).unwrap_or_else(BlockHash::all_zeros);
        let mut ids = Vec::new();
        for i in 1..=len {
            let h = header(prev, nonce_base + i);
            prev = h.block_hash();
            let id = match tree.insert(h, prev, work_of(h.bits)) {
                Some(super::super::Inserted::NewTip { id, .. } | super::super::Inserted::SideBranch(id)) => id,
                other => panic!("unexpected {other:?}"),
            };
            ids.push(id);
        }
        ids
    }

    #[test]
    fn the_active_chain_starts_at_genesis_and_follows_reorgs() {
        let (mut tree, ids) = tree_with(10, 100);
        assert_eq!(tree.active_height(), 0);
        assert!(tree.entry(0).is_some_and(|e| e.status.has(BlockStatus::VALID)));
        assert_eq!(tree.set_active_tip(ids[6]), Some(0));
        assert_eq!(tree.active_height(), 6);
        assert!(tree.on_active_chain(ids[3]) && !tree.on_active_chain(ids[7]));
        assert!(tree.entry(ids[6]).is_some_and(|e| e.status.has(BlockStatus::HAVE_DATA.with(BlockStatus::VALID))));
        // A branch from height 4 becomes active: the fork is at 4, 5 and 6 leave the chain.
        let side = branch(&mut tree, ids[4], 5, 900);
        assert_eq!(tree.set_active_tip(side[4]), Some(4));
        assert_eq!(tree.active_height(), 9);
        assert!(!tree.on_active_chain(ids[5]) && tree.on_active_chain(side[0]));
        assert_eq!(tree.active_id(5), Some(side[0]));
    }

    #[test]
    fn the_last_common_ancestor_of_two_branches_is_their_fork() {
        let (mut tree, ids) = tree_with(10, 100);
        let side = branch(&mut tree, ids[4], 3, 900);
        let deeper = branch(&mut tree, side[0], 2, 1900);
        assert_eq!(tree.last_common_ancestor(ids[10], side[2]), Some(ids[4]));
        assert_eq!(tree.last_common_ancestor(side[2], ids[10]), Some(ids[4]));
        assert_eq!(tree.last_common_ancestor(deeper[1], side[2]), Some(side[0]));
        // One an ancestor of the other: the ancestor itself.
        assert_eq!(tree.last_common_ancestor(ids[7], ids[3]), Some(ids[3]));
        assert_eq!(tree.last_common_ancestor(ids[7], ids[7]), Some(ids[7]));
        assert_eq!(tree.last_common_ancestor(side[1], 0), Some(0));
        assert_eq!(tree.last_common_ancestor(ids[7], 9999), None);
    }

    #[test]
    fn an_invalid_block_taints_its_descendants_and_moves_the_best_header() {
        let (mut tree, ids) = tree_with(10, 100);
        let side = branch(&mut tree, ids[4], 3, 900);
        assert_eq!(tree.height(), 10);
        // Invalidate height 6 of the main chain: 6..=10 fail, best moves to the side branch
        // (height 7), which has the most work among the rest.
        assert_eq!(tree.mark_invalid(ids[6]), 5);
        assert!(tree.entry(ids[6]).is_some_and(|e| e.status.has(BlockStatus::FAILED)));
        assert!(tree.entry(ids[10]).is_some_and(|e| e.status.has(BlockStatus::FAILED_CHILD)));
        assert!(!tree.entry(ids[5]).is_some_and(|e| e.status.failed()));
        assert_eq!(tree.tip_id(), side[2]);
        // A header on an invalid block is born failed and never becomes the best.
        let child = branch(&mut tree, ids[10], 3, 5000);
        assert!(tree.entry(child[2]).is_some_and(|e| e.status.failed()));
        assert_eq!(tree.tip_id(), side[2]);
        // Reconsidering clears the marks and the longer main chain is best again.
        tree.clear_invalid(ids[6]);
        assert_eq!(tree.tip_id(), child[2]);
        assert!(!tree.entry(ids[8]).is_some_and(|e| e.status.failed()));
        assert!(!tree.entry(side[0]).is_some_and(|e| e.status.failed()));
    }
}
