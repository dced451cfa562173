//! Header validation (Core's `CheckBlockHeader` + `ContextualCheckBlockHeader`): proof of work
//! against the header's own bits, the bits the difficulty rules require, time above the median
//! of the previous 11 and at most two hours ahead, the BIP94 timewarp rule, and the version
//! minimums of BIP34/66/65. Pure functions over the tree; no I/O.

use bitcoin::BlockHash;
use bitcoin::block::Header;

use super::params::ChainParams;
use super::pow::{Ancestry, HeaderFacts, check_proof_of_work, next_work_required};
use super::tree::{EntryId, HeaderTree};

/// Core's `MAX_FUTURE_BLOCK_TIME`.
pub const MAX_FUTURE_BLOCK_TIME: i64 = 2 * 60 * 60;
/// Core's `MAX_TIMEWARP` (BIP94).
pub const MAX_TIMEWARP: u32 = 600;

/// Why a header was rejected. Every variant but [`HeaderError::UnknownParent`] and
/// [`HeaderError::TimeTooNew`] proves the sender misbehaved (see [`HeaderError::is_misbehaviour`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The parent is not in the tree (not a fault: ask for the missing headers).
    #[error("prev-blk-not-found: parent {0} unknown")]
    UnknownParent(BlockHash),
    /// The parent is a block known to be invalid (or a descendant of one).
    #[error("bad-prevblk: previous block {0} is invalid")]
    InvalidParent(BlockHash),
    /// The hash does not meet the target its own bits claim.
    #[error("high-hash: proof of work failed")]
    HighHash,
    /// The bits differ from what the difficulty rules require at this height.
    #[error("bad-diffbits: incorrect proof of work (bits {got:#010x}, expected {expected:#010x})")]
    BadDiffBits {
        /// The header's bits.
        got: u32,
        /// The required bits.
        expected: u32,
    },
    /// Not after the median time of the previous 11 headers.
    #[error("time-too-old: block's timestamp {time} is not after median time past {mtp}")]
    TimeTooOld {
        /// The header's time.
        time: u32,
        /// The median time past of its parent.
        mtp: u32,
    },
    /// More than two hours ahead of our clock (Core's `BLOCK_TIME_FUTURE`): the header may be
    /// valid later, or our clock is slow, so its sender is not punished.
    #[error("time-too-new: block timestamp {time} too far in the future (now {now})")]
    TimeTooNew {
        /// The header's time.
        time: u32,
        /// Our clock.
        now: i64,
    },
    /// BIP94: the first header of a retarget period more than 600 s before its parent.
    #[error("time-timewarp-attack: block's timestamp is too early on diff adjustment block")]
    Timewarp,
    /// Version below the BIP34/66/65 minimum at this height.
    #[error("bad-version({version:#010x}): rejected nVersion={version:#010x} block")]
    BadVersion {
        /// The header's version.
        version: i32,
    },
}

impl HeaderError {
    /// Whether the peer that sent the header should be punished for it (Core's
    /// `MaybePunishNodeForBlock`): not for a missing parent (we ask for it) nor for a time in the
    /// future (`BLOCK_TIME_FUTURE`: with a slow local clock every honest peer relaying a fresh
    /// header would be punished); for every invalid header, yes.
    pub fn is_misbehaviour(&self) -> bool {
        !matches!(self, HeaderError::UnknownParent(_) | HeaderError::TimeTooNew { .. })
    }
}

/// The ancestry of one entry of the tree, as the difficulty rules read it.
pub struct BranchView<'a> {
    tree: &'a HeaderTree,
    tip: EntryId,
}

impl<'a> BranchView<'a> {
    /// The chain ending at `tip`.
    pub fn new(tree: &'a HeaderTree, tip: EntryId) -> Self {
        BranchView { tree, tip }
    }
}

impl Ancestry for BranchView<'_> {
    fn at(&self, height: u32) -> Option<HeaderFacts> {
        let id = self.tree.ancestor(self.tip, height)?;
        let e = self.tree.entry(id)?;
        Some(HeaderFacts { time: e.header.time, bits: e.header.bits })
    }
}

/// Core's `CheckBlockHeader`: the header's proof of work against its own bits.
pub fn check_header(params: &ChainParams, header: &Header, hash: BlockHash) -> Result<(), HeaderError> {
    if check_proof_of_work(hash, header.bits, params) { Ok(()) } else { Err(HeaderError::HighHash) }
}

/// Core's `ContextualCheckBlockHeader` for `header` on top of its parent `parent` in `tree`,
/// at time `now_unix`. Returns the parent's id.
pub fn check_contextual(
    params: &ChainParams,
    tree: &HeaderTree,
    header: &Header,
    now_unix: i64,
) -> Result<EntryId, HeaderError> {
    let (parent, p) = tree.get(&header.prev_blockhash).ok_or(HeaderError::UnknownParent(header.prev_blockhash))?;
    let height = p.height + 1;
    let prev = HeaderFacts { time: p.header.time, bits: p.header.bits };
    let expected =
        next_work_required(params, p.height, prev, header.time, &BranchView::new(tree, parent)).unwrap_or(header.bits);
    if expected != header.bits {
        return Err(HeaderError::BadDiffBits { got: header.bits.to_consensus(), expected: expected.to_consensus() });
    }
    let mtp = tree.median_time_past(parent);
    if header.time <= mtp {
        return Err(HeaderError::TimeTooOld { time: header.time, mtp });
    }
    if params.enforce_bip94
        && height % params.difficulty_adjustment_interval() == 0
        && header.time < p.header.time.saturating_sub(MAX_TIMEWARP)
    {
        return Err(HeaderError::Timewarp);
    }
    if i64::from(header.time) > now_unix + MAX_FUTURE_BLOCK_TIME {
        return Err(HeaderError::TimeTooNew { time: header.time, now: now_unix });
    }
    if header.version.to_consensus() < params.min_version_at(height) {
        return Err(HeaderError::BadVersion { version: header.version.to_consensus() });
    }
    Ok(parent)
}

#[cfg(test)]
mod tests;
