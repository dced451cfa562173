//! Low-work headers sync (Core's `HeadersSyncState`, `headerssync.cpp`), I/O-free: a peer's
//! headers that do not yet reach the minimum chain work are first walked in a low-memory pass
//! that keeps only the running work, the last header and one salted commitment bit every
//! `commitment_period` headers; once the work suffices, the same headers are downloaded again,
//! checked against the commitments, and released for storage in batches of
//! `redownload_buffer_size`. Memory per peer is bounded by the time-derived maximum chain
//! length, whatever the peer sends (CVE-2019-25220).

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};

use bitcoin::BlockHash;
use bitcoin::block::{Header, Version};
use bitcoin::hash_types::TxMerkleNode;
use bitcoin::pow::{CompactTarget, Work};
use tracing::debug;

use super::params::ChainParams;
use super::pow::{permitted_difficulty_transition, work_of};
use crate::base::chainparams::Network;

/// Core's `MAX_FUTURE_BLOCK_TIME`.
const MAX_FUTURE_BLOCK_TIME: i64 = 2 * 60 * 60;

/// Core's `HeadersSyncParams`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncParams {
    /// Distance in headers between commitments.
    pub commitment_period: u32,
    /// Validated headers held back in the redownload phase before release.
    pub redownload_buffer_size: usize,
}

impl SyncParams {
    /// Core's values for `network` (`kernel/chainparams.cpp`).
    pub fn for_network(network: Network) -> SyncParams {
        let (commitment_period, redownload_buffer_size) = match network {
            Network::Main => (641, 15218),
            Network::Test => (673, 14460),
            Network::Testnet4 => (606, 16092),
            Network::Signet => (620, 15724),
            Network::Regtest => (275, 7017),
        };
        SyncParams { commitment_period, redownload_buffer_size }
    }
}

/// Where the peer's chain leaves ours: the last header we share with it.
#[derive(Clone, Debug)]
pub struct ChainStart {
    /// That header.
    pub header: Header,
    /// Its hash.
    pub hash: BlockHash,
    /// Its height.
    pub height: u32,
    /// Total work up to it.
    pub chain_work: Work,
    /// Its median time past.
    pub median_time_past: u32,
    /// Our locator from it.
    pub locator: Vec<BlockHash>,
}

/// The phase of a low-work sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Counting work and storing commitments.
    Presync,
    /// Downloading the same headers again and checking commitments.
    Redownload,
    /// Done (succeeded or gave up); the state may be dropped.
    Final,
}

/// What processing one `headers` message produced.
#[derive(Debug, Default)]
pub struct Processed {
    /// Headers proven to be on a chain with enough work, ready for full validation and storage.
    pub headers: Vec<Header>,
    /// False if the peer's headers broke the sync (the sync is then over).
    pub success: bool,
    /// Whether to ask the peer for more (with [`HeadersSync::next_locator`]).
    pub request_more: bool,
}

/// A header without its previous-block hash (Core's `CompressedHeader`, 48 bytes).
#[derive(Clone, Copy, Debug)]
struct Compressed {
    version: Version,
    merkle_root: TxMerkleNode,
    time: u32,
    bits: CompactTarget,
    nonce: u32,
}

impl Compressed {
    fn of(h: &Header) -> Self {
        Compressed { version: h.version, merkle_root: h.merkle_root, time: h.time, bits: h.bits, nonce: h.nonce }
    }

    fn full(&self, prev_blockhash: BlockHash) -> Header {
        Header {
            version: self.version,
            prev_blockhash,
            merkle_root: self.merkle_root,
            time: self.time,
            bits: self.bits,
            nonce: self.nonce,
        }
    }
}

/// A queue of bits, 64 to a word.
#[derive(Clone, Debug, Default)]
struct BitDeque {
    words: VecDeque<u64>,
    /// Bits already popped from the front word.
    head: u32,
    len: u64,
}

impl BitDeque {
    fn push_back(&mut self, bit: bool) {
        let pos = (u64::from(self.head) + self.len) % 64;
        if pos == 0 {
            self.words.push_back(0);
        }
        if bit {
            if let Some(w) = self.words.back_mut() {
                *w |= 1 << pos;
            }
        }
        self.len += 1;
    }

    fn pop_front(&mut self) -> Option<bool> {
        if self.len == 0 {
            return None;
        }
        let bit = self.words.front().is_some_and(|w| (w >> self.head) & 1 == 1);
        self.head += 1;
        self.len -= 1;
        if self.head == 64 || self.len == 0 {
            self.words.pop_front();
            self.head = 0;
            if self.len == 0 {
                self.words.clear();
            }
        }
        Some(bit)
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// One peer's low-work headers sync.
#[derive(Debug)]
pub struct HeadersSync {
    params: ChainParams,
    sync: SyncParams,
    start: ChainStart,
    min_work: Work,
    /// Secret, per-sync salt: the peer cannot predict which bit a header commits to.
    hasher: RandomState,
    commit_offset: u32,
    commitments: BitDeque,
    max_commitments: u64,
    phase: Phase,
    // Presync.
    current_work: Work,
    last_header: Header,
    current_height: u32,
    // Redownload.
    redownloaded: VecDeque<Compressed>,
    buffer_last_height: u32,
    buffer_last_hash: BlockHash,
    buffer_first_prev_hash: BlockHash,
    redownload_work: Work,
    process_all_remaining: bool,
}

impl HeadersSync {
    /// Starts a sync from `start` towards `min_work`; `now_unix` bounds the chain length;
    /// `commit_offset` is a random value below the commitment period.
    pub fn new(
        params: ChainParams,
        sync: SyncParams,
        start: ChainStart,
        min_work: Work,
        now_unix: i64,
        commit_offset: u32,
    ) -> Self {
        let since = (now_unix - i64::from(start.median_time_past)).max(0) + MAX_FUTURE_BLOCK_TIME;
        let max_commitments = 6 * since as u64 / u64::from(sync.commitment_period.max(1));
        debug!(
            target: "net",
            "Initial headers sync started: height={}, max_commitments={max_commitments}",
            start.height
        );
        HeadersSync {
            current_work: start.chain_work,
            last_header: start.header,
            current_height: start.height,
            redownloaded: VecDeque::new(),
            buffer_last_height: 0,
            buffer_last_hash: start.hash,
            buffer_first_prev_hash: start.hash,
            redownload_work: start.chain_work,
            process_all_remaining: false,
            params,
            commit_offset: commit_offset % sync.commitment_period.max(1),
            sync,
            start,
            min_work,
            hasher: RandomState::new(),
            commitments: BitDeque::default(),
            max_commitments,
            phase: Phase::Presync,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Height reached in the presync phase (for progress logs).
    pub fn presync_height(&self) -> u32 {
        self.current_height
    }

    /// Time of the last presynced header.
    pub fn presync_time(&self) -> u32 {
        self.last_header.time
    }

    /// Work counted so far in the presync phase.
    pub fn presync_work(&self) -> Work {
        self.current_work
    }

    /// Heap bytes held (commitment bits and redownload buffer), for tests and metrics.
    pub fn memory_usage(&self) -> usize {
        self.commitments.words.len() * 8 + self.redownloaded.len() * std::mem::size_of::<Compressed>()
    }

    fn commitment_bit(&self, hash: &BlockHash) -> bool {
        self.hasher.hash_one(hash) & 1 == 1
    }

    /// Processes one `headers` message (`full` when it held the maximum 2,000 headers).
    pub fn process(&mut self, headers: &[Header], full: bool) -> Processed {
        let mut out = Processed::default();
        if headers.is_empty() || self.phase == Phase::Final {
            return out;
        }
        match self.phase {
            Phase::Presync => {
                out.success = self.presync(headers);
                if out.success {
                    if full || self.phase == Phase::Redownload {
                        out.request_more = true;
                    } else {
                        debug!(target: "net", "Initial headers sync aborted: incomplete headers message at height={} (presync phase)", self.current_height);
                    }
                }
            }
            Phase::Redownload => {
                out.success = headers.iter().all(|h| self.redownload_one(h));
                if out.success {
                    out.headers = self.pop_ready();
                    if self.redownloaded.is_empty() && self.process_all_remaining {
                        debug!(target: "net", "Initial headers sync complete: releasing all at height={} (redownload phase)", self.buffer_last_height);
                    } else if full {
                        out.request_more = true;
                    } else {
                        debug!(target: "net", "Initial headers sync aborted: incomplete headers message at height={} (redownload phase)", self.buffer_last_height);
                    }
                }
            }
            Phase::Final => {}
        }
        if !(out.success && out.request_more) {
            self.finish();
        }
        out
    }

    fn finish(&mut self) {
        self.commitments = BitDeque::default();
        self.redownloaded = VecDeque::new();
        self.process_all_remaining = false;
        self.phase = Phase::Final;
    }

    fn presync(&mut self, headers: &[Header]) -> bool {
        if headers.first().map(|h| h.prev_blockhash) != Some(self.last_header.block_hash()) {
            debug!(target: "net", "Initial headers sync aborted: non-continuous headers at height={} (presync phase)", self.current_height);
            return false;
        }
        for h in headers {
            let next = self.current_height + 1;
            if !permitted_difficulty_transition(&self.params, next, self.last_header.bits, h.bits) {
                debug!(target: "net", "Initial headers sync aborted: invalid difficulty transition at height={next} (presync phase)");
                return false;
            }
            if next % self.sync.commitment_period == self.commit_offset {
                let bit = self.commitment_bit(&h.block_hash());
                self.commitments.push_back(bit);
                if self.commitments.len() > self.max_commitments {
                    debug!(target: "net", "Initial headers sync aborted: exceeded max commitments at height={next} (presync phase)");
                    return false;
                }
            }
            self.current_work = self.current_work + work_of(h.bits);
            self.last_header = *h;
            self.current_height = next;
        }
        if self.current_work >= self.min_work {
            self.redownloaded.clear();
            self.buffer_last_height = self.start.height;
            self.buffer_first_prev_hash = self.start.hash;
            self.buffer_last_hash = self.start.hash;
            self.redownload_work = self.start.chain_work;
            self.phase = Phase::Redownload;
            debug!(
                target: "net",
                "Initial headers sync transition: reached sufficient work at height={}, redownloading from height={}",
                self.current_height, self.buffer_last_height
            );
        }
        true
    }

    fn redownload_one(&mut self, h: &Header) -> bool {
        let next = self.buffer_last_height + 1;
        if h.prev_blockhash != self.buffer_last_hash {
            debug!(target: "net", "Initial headers sync aborted: non-continuous headers at height={next} (redownload phase)");
            return false;
        }
        let prev_bits = self.redownloaded.back().map_or(self.start.header.bits, |c| c.bits);
        if !permitted_difficulty_transition(&self.params, next, prev_bits, h.bits) {
            debug!(target: "net", "Initial headers sync aborted: invalid difficulty transition at height={next} (redownload phase)");
            return false;
        }
        self.redownload_work = self.redownload_work + work_of(h.bits);
        if self.redownload_work >= self.min_work {
            self.process_all_remaining = true;
        }
        let hash = h.block_hash();
        if !self.process_all_remaining && next % self.sync.commitment_period == self.commit_offset {
            let Some(expected) = self.commitments.pop_front() else {
                debug!(target: "net", "Initial headers sync aborted: commitment overrun at height={next} (redownload phase)");
                return false;
            };
            if self.commitment_bit(&hash) != expected {
                debug!(target: "net", "Initial headers sync aborted: commitment mismatch at height={next} (redownload phase)");
                return false;
            }
        }
        self.redownloaded.push_back(Compressed::of(h));
        self.buffer_last_height = next;
        self.buffer_last_hash = hash;
        true
    }

    fn pop_ready(&mut self) -> Vec<Header> {
        let mut out = Vec::new();
        while self.redownloaded.len() > self.sync.redownload_buffer_size
            || (!self.redownloaded.is_empty() && self.process_all_remaining)
        {
            let Some(c) = self.redownloaded.pop_front() else { break };
            let h = c.full(self.buffer_first_prev_hash);
            self.buffer_first_prev_hash = h.block_hash();
            out.push(h);
        }
        out
    }

    /// The locator for the next `getheaders`: the last header received (or stored, when
    /// redownloading), then our locator from the chain start.
    pub fn next_locator(&self) -> Vec<BlockHash> {
        let last = match self.phase {
            Phase::Presync => self.last_header.block_hash(),
            Phase::Redownload => self.buffer_last_hash,
            Phase::Final => return Vec::new(),
        };
        std::iter::once(last).chain(self.start.locator.iter().copied()).collect()
    }
}

#[cfg(test)]
mod tests;
