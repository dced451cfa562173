//! The header tree (Core's `BlockMap` + `CChain` for headers): every accepted header with its
//! height, cumulative work and parent; the best (most-work) chain with lookups by hash and by
//! height; reorganisation to a heavier branch; block locators and the fork point of a peer's
//! locator. It does not judge headers: callers validate first.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use bitcoin::BlockHash;
use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::pow::Work;

/// Position of an entry in the tree's arena.
pub type EntryId = u32;

/// One accepted header.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The header.
    pub header: Header,
    /// Its hash.
    pub hash: BlockHash,
    /// Its height (genesis: 0).
    pub height: u32,
    /// Total work of the chain ending here.
    pub chain_work: Work,
    /// The parent entry (genesis: itself).
    pub parent: EntryId,
    /// What the node knows of the block itself (Core's `nStatus`), as the validation thread
    /// reported it.
    pub status: BlockStatus,
}

/// Block hashes are proof-of-work outputs whose first bytes are uniformly random, so those
/// bytes serve as the map's hash directly.
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockHashHasher(u64);

impl Hasher for BlockHashHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut first = [0u8; 8];
        let n = bytes.len().min(8);
        first[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(first);
    }

    fn write_usize(&mut self, _len: usize) {
        // The length prefix of the 32-byte array carries no information.
    }
}

/// How an insertion changed the best chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// The header was already in the tree.
    Known(EntryId),
    /// Added on a branch with no more work than the best chain.
    SideBranch(EntryId),
    /// Added as the new best tip. `fork_height` is the height of the last header the old and
    /// new best chains share (the old tip's height when the chain simply grew).
    NewTip {
        /// The new tip.
        id: EntryId,
        /// Height of the common ancestor of the old and new best chains.
        fork_height: u32,
        /// Height of the old tip.
        old_height: u32,
    },
}

/// The tree.
#[derive(Debug)]
pub struct HeaderTree {
    entries: Vec<Entry>,
    by_hash: HashMap<BlockHash, EntryId, BuildHasherDefault<BlockHashHasher>>,
    /// Best chain: height → entry.
    best: Vec<EntryId>,
    /// The active chain (Core's `m_chain`): height → entry of every block the kernel has
    /// validated and connected.
    active: Vec<EntryId>,
}

/// Core's `MAX_LOCATOR_SZ`: longest locator a peer may send.
pub const MAX_LOCATOR_SZ: usize = 101;

impl HeaderTree {
    /// A tree holding only `genesis`, whose own work is `genesis_work`.
    pub fn new(genesis: Header, genesis_work: Work) -> Self {
        let hash = genesis.block_hash();
        let mut by_hash = HashMap::default();
        by_hash.insert(hash, 0);
        HeaderTree {
            entries: vec![Entry {
                header: genesis,
                hash,
                height: 0,
                chain_work: genesis_work,
                parent: 0,
                // The kernel connects genesis when it creates its chainstate.
                status: BlockStatus::HAVE_DATA.with(BlockStatus::VALID).with(BlockStatus::INDEXED),
            }],
            by_hash,
            best: vec![0],
            active: vec![0],
        }
    }

    /// Number of headers in the tree (all branches).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether only genesis is known.
    pub fn is_empty(&self) -> bool {
        self.entries.len() <= 1
    }

    /// The entry `id`.
    pub fn entry(&self, id: EntryId) -> Option<&Entry> {
        self.entries.get(id as usize)
    }

    /// The entry with this hash.
    pub fn get(&self, hash: &BlockHash) -> Option<(EntryId, &Entry)> {
        let id = *self.by_hash.get(hash)?;
        self.entry(id).map(|e| (id, e))
    }

    /// Whether a header with this hash is in the tree.
    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// The best tip.
    pub fn tip(&self) -> &Entry {
        let id = self.best.last().copied().unwrap_or(0);
        &self.entries[id as usize]
    }

    /// Id of the best tip.
    pub fn tip_id(&self) -> EntryId {
        self.best.last().copied().unwrap_or(0)
    }

    /// Height of the best tip.
    pub fn height(&self) -> u32 {
        (self.best.len() - 1) as u32
    }

    /// The best chain's entry at `height`.
    pub fn at_height(&self, height: u32) -> Option<&Entry> {
        self.best_id(height).and_then(|id| self.entry(id))
    }

    /// Id of the best chain's entry at `height`.
    pub fn best_id(&self, height: u32) -> Option<EntryId> {
        self.best.get(height as usize).copied()
    }

    /// Whether entry `id` is on the best chain.
    pub fn on_best_chain(&self, id: EntryId) -> bool {
        self.entry(id).is_some_and(|e| self.best.get(e.height as usize) == Some(&id))
    }

    /// The ancestor of `id` at `height` (itself if `height` is its own), if `height` is not
    /// above it. Walks parents only until the branch meets the best chain.
    pub fn ancestor(&self, id: EntryId, height: u32) -> Option<EntryId> {
        self.ancestor_in(&self.best, id, height)
    }

    /// Core's `GetMedianTimePast`: the median time of `id` and up to 10 of its ancestors.
    pub fn median_time_past(&self, mut id: EntryId) -> u32 {
        let mut times = [0u32; 11];
        let mut n = 0;
        while n < 11 {
            let Some(e) = self.entry(id) else { break };
            times[n] = e.header.time;
            n += 1;
            if e.height == 0 {
                break;
            }
            id = e.parent;
        }
        let times = &mut times[..n];
        times.sort_unstable();
        times[n / 2]
    }

    /// Adds a header whose parent is in the tree, with `own_work` (the work its bits prove).
    /// Returns `None` if the parent is unknown.
    pub fn insert(&mut self, header: Header, hash: BlockHash, own_work: Work) -> Option<Inserted> {
        if let Some(&id) = self.by_hash.get(&hash) {
            return Some(Inserted::Known(id));
        }
        let &parent = self.by_hash.get(&header.prev_blockhash)?;
        let p = self.entry(parent)?;
        // A child of an invalid block is invalid too (Core's `BLOCK_FAILED_CHILD`).
        let status = if p.status.failed() { BlockStatus::FAILED_CHILD } else { BlockStatus::NONE };
        let entry = Entry { header, hash, height: p.height + 1, chain_work: p.chain_work + own_work, parent, status };
        let id = self.entries.len() as EntryId;
        let more_work = !status.failed() && entry.chain_work > self.tip().chain_work;
        self.entries.push(entry);
        self.by_hash.insert(hash, id);
        if !more_work {
            return Some(Inserted::SideBranch(id));
        }
        let old_height = self.height();
        let fork_height = self.activate(id);
        Some(Inserted::NewTip { id, fork_height, old_height })
    }

    /// Makes `id` the best tip; returns the fork height with the old best chain.
    fn activate(&mut self, id: EntryId) -> u32 {
        let mut branch = Vec::new();
        let mut cur = id;
        while !self.on_best_chain(cur) {
            branch.push(cur);
            match self.entry(cur) {
                Some(e) => cur = e.parent,
                None => break,
            }
        }
        let fork_height = self.entry(cur).map_or(0, |e| e.height);
        self.best.truncate(fork_height as usize + 1);
        self.best.extend(branch.iter().rev());
        fork_height
    }

    /// Core's `LocatorEntries`: hashes from `id` back to genesis, one by one for the first ten,
    /// then doubling the step; always ends with genesis.
    pub fn locator(&self, id: EntryId) -> Vec<BlockHash> {
        let mut out = Vec::with_capacity(32);
        let mut cur = Some(id);
        let mut step = 1u32;
        while let Some(c) = cur {
            let Some(e) = self.entry(c) else { break };
            out.push(e.hash);
            if e.height == 0 {
                break;
            }
            let next = e.height.saturating_sub(step);
            if out.len() > 10 {
                step = step.saturating_mul(2);
            }
            cur = self.ancestor(c, next);
        }
        out
    }

    /// Core's `FindForkInGlobalIndex`: the height on the best chain where a peer's locator
    /// meets it (0 when nothing matches).
    pub fn find_fork(&self, locator: &[BlockHash]) -> u32 {
        self.find_fork_in(&self.best, locator)
    }

    /// [`HeaderTree::find_fork`] on the active chain (what a node with blocks serves).
    pub fn find_fork_active(&self, locator: &[BlockHash]) -> u32 {
        self.find_fork_in(&self.active, locator)
    }

    fn find_fork_in(&self, chain: &[EntryId], locator: &[BlockHash]) -> u32 {
        let on = |id: EntryId, e: &Entry| chain.get(e.height as usize) == Some(&id);
        let top = chain.len().saturating_sub(1) as u32;
        let tip = chain.last().copied().unwrap_or(0);
        for hash in locator {
            if let Some((id, e)) = self.get(hash) {
                if on(id, e) {
                    return e.height;
                }
                if self.ancestor_in(chain, id, top) == Some(tip) {
                    return top;
                }
            }
        }
        0
    }

    /// The ancestor of `id` at `height`, walking parents until the branch meets `chain`.
    fn ancestor_in(&self, chain: &[EntryId], mut id: EntryId, height: u32) -> Option<EntryId> {
        loop {
            let e = self.entry(id)?;
            if height > e.height {
                return None;
            }
            if height == e.height {
                return Some(id);
            }
            if chain.get(e.height as usize) == Some(&id) {
                return chain.get(height as usize).copied();
            }
            id = e.parent;
        }
    }

    /// Heights of the best chain after the locator's fork point, at most `max` of them, ending
    /// with `stop` if it is among them (Core's `getheaders` answer).
    pub fn serve_range(&self, locator: &[BlockHash], stop: &BlockHash, max: usize) -> std::ops::Range<u32> {
        self.serve_range_in(&self.best, locator, stop, max)
    }

    /// [`HeaderTree::serve_range`] on the active chain (Core serves `getheaders` from it).
    pub fn serve_range_active(&self, locator: &[BlockHash], stop: &BlockHash, max: usize) -> std::ops::Range<u32> {
        self.serve_range_in(&self.active, locator, stop, max)
    }

    fn serve_range_in(
        &self,
        chain: &[EntryId],
        locator: &[BlockHash],
        stop: &BlockHash,
        max: usize,
    ) -> std::ops::Range<u32> {
        let start = self.find_fork_in(chain, locator) + 1;
        let mut end = (start as usize).saturating_add(max).min(chain.len()).max(start as usize) as u32;
        // The stop header ends the answer if it is on the chain within the range (a lookup,
        // not a scan; the null hash of "no stop" is never found).
        if let Some((id, e)) = self.get(stop) {
            if e.height >= start && e.height < end && chain.get(e.height as usize) == Some(&id) {
                end = e.height + 1;
            }
        }
        start..end
    }

    /// The best chain's headers at `heights`.
    pub fn best_headers(&self, heights: std::ops::Range<u32>) -> impl ExactSizeIterator<Item = &Header> + '_ {
        self.headers_in(&self.best, heights)
    }

    /// The active chain's headers at `heights`.
    pub fn active_headers(&self, heights: std::ops::Range<u32>) -> impl ExactSizeIterator<Item = &Header> + '_ {
        self.headers_in(&self.active, heights)
    }

    fn headers_in<'a>(
        &'a self,
        chain: &'a [EntryId],
        heights: std::ops::Range<u32>,
    ) -> impl ExactSizeIterator<Item = &'a Header> + 'a {
        let lo = (heights.start as usize).min(chain.len());
        let hi = (heights.end as usize).clamp(lo, chain.len());
        // Ids on a chain are the tree's own, always in the arena.
        chain[lo..hi].iter().map(|&id| &self.entries[id as usize].header)
    }

    /// Entries in insertion order (parents before children), for persistence.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

/// The null hash, as a `getheaders` `hashStop` meaning "as many as allowed".
pub fn no_stop() -> BlockHash {
    BlockHash::all_zeros()
}

mod blocks;
pub use blocks::BlockStatus;

#[cfg(test)]
mod tests;
