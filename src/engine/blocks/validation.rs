//! The validation thread's vocabulary: what the engine asks of the block-validation engine
//! (Bitcoin Core's kernel, on its own thread) and what it reports back, plus Core's rule for
//! punishing the sender of an invalid block (`MaybePunishNodeForBlock`).

use std::sync::Arc;

use bitcoin::BlockHash;
use bitcoin::block::Header;

use crate::base::peer::PeerId;

/// Work for the validation thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValidationRequest {
    /// Headers that passed btcloop's presync and header checks, in order, for the kernel's
    /// block index (Core's `ProcessNewBlockHeaders`).
    Headers(Vec<Header>),
    /// A complete block as it arrived (its serialization, witness included).
    Block {
        /// The block's hash (from its first 80 bytes).
        hash: BlockHash,
        /// The serialized block.
        bytes: Arc<Vec<u8>>,
        /// The peer that sent it (`None`: submitted locally).
        from: Option<PeerId>,
        /// Whether to make its `cmpctblock` once its proof of work is checked (Core's
        /// `NewPoWValidBlock`): only while a peer wants high-bandwidth announcements, as
        /// parsing and hashing a large block costs the thread milliseconds.
        announce: bool,
    },
    /// Read a stored block for a peer that asked for it.
    Read {
        /// The peer to answer.
        peer: PeerId,
        /// The block.
        hash: BlockHash,
        /// In which form.
        form: BlockForm,
    },
}

/// The form in which a peer asked for a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockForm {
    /// With witnesses (`MSG_WITNESS_BLOCK`).
    Witness,
    /// Stripped of witnesses (`MSG_BLOCK`).
    Legacy,
    /// As a BIP152 compact block (`MSG_CMPCT_BLOCK`): the thread reads the witness block and
    /// the engine makes the compact form.
    Compact,
}

/// Core's `BlockValidationResult`: why a block or header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidKind {
    /// No reason recorded.
    Unset,
    /// Invalid by consensus rules.
    Consensus,
    /// Known invalid already (the reason was not kept).
    CachedInvalid,
    /// The header has invalid proof of work or a timestamp too old.
    InvalidHeader,
    /// The block's data does not match its header's commitment (it may be mutated in transit).
    Mutated,
    /// Its parent is unknown.
    MissingPrev,
    /// It builds on an invalid block.
    InvalidPrev,
    /// Its timestamp is more than two hours ahead of our clock.
    TimeFuture,
    /// Its header may be on a chain with too little work.
    HeaderLowWork,
}

impl InvalidKind {
    /// Core's `MaybePunishNodeForBlock`: whether the peer that sent a block refused for this
    /// reason is to be disconnected and discouraged. `via_compact_block` spares a peer whose
    /// compact block failed transaction checks (BIP152 lets high-bandwidth peers relay a block
    /// before validating it); a block already known invalid costs only outbound peers (an
    /// inbound one may simply be on the invalid chain).
    pub fn punishes(self, via_compact_block: bool, inbound: bool) -> bool {
        match self {
            InvalidKind::Consensus | InvalidKind::Mutated => !via_compact_block,
            InvalidKind::CachedInvalid => !via_compact_block && !inbound,
            InvalidKind::InvalidHeader | InvalidKind::InvalidPrev | InvalidKind::MissingPrev => true,
            InvalidKind::Unset | InvalidKind::TimeFuture | InvalidKind::HeaderLowWork => false,
        }
    }

    /// Core's name for the result.
    pub fn name(self) -> &'static str {
        match self {
            InvalidKind::Unset => "unset",
            InvalidKind::Consensus => "consensus",
            InvalidKind::CachedInvalid => "cached-invalid",
            InvalidKind::InvalidHeader => "invalid-header",
            InvalidKind::Mutated => "mutated",
            InvalidKind::MissingPrev => "missing-prev",
            InvalidKind::InvalidPrev => "invalid-prev",
            InvalidKind::TimeFuture => "time-future",
            InvalidKind::HeaderLowWork => "header-low-work",
        }
    }
}

/// Why the kernel refused a block: Core's result code and reject reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The result code, which decides punishment.
    pub kind: InvalidKind,
    /// Core's reject reason and debug message (e.g. `bad-txnmrklroot, hashMerkleRoot mismatch`),
    /// from the kernel's log; empty when the kernel logged none.
    pub reason: String,
}

/// What became of one submitted block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockOutcome {
    /// New, stored, fully checked and connected (Core's `BlockChecked` fired for it).
    Stored,
    /// New and stored but not checked yet: it does not extend the most-work chain, or its
    /// parent is missing (Core's `submitblock` answers `inconclusive`).
    Unconnected,
    /// Already known and not invalid.
    Duplicate,
    /// Refused.
    Invalid(Invalid),
}

/// A block read from disk for a peer, serialized, with the checksum its `block` frame needs
/// (computed on the validation thread, not the message handler's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadBlock {
    /// The serialized block (or compact block source).
    pub bytes: Vec<u8>,
    /// The first four bytes of its double SHA-256.
    pub checksum: [u8; 4],
}

/// A report from the validation thread.
#[derive(Clone, Debug, PartialEq)]
pub enum ValidationEvent {
    /// Headers the kernel refused: the first bad one and why.
    HeaderInvalid {
        /// The refused header.
        hash: BlockHash,
        /// Why.
        invalid: Invalid,
    },
    /// What became of a submitted block.
    Block {
        /// The block.
        hash: BlockHash,
        /// Who sent it.
        from: Option<PeerId>,
        /// The verdict.
        outcome: BlockOutcome,
    },
    /// A block connected to the active chain has proof of work and a valid header, before its
    /// transactions are checked (Core's `NewPoWValidBlock`): the moment to relay it to
    /// high-bandwidth compact-block peers.
    PowValid {
        /// The block.
        block: Arc<bitcoin::Block>,
        /// Its BIP152 compact form (made on the validation thread: hashing every transaction
        /// of a large block costs milliseconds).
        cmpct: Arc<bitcoin::p2p::message_compact_blocks::CmpctBlock>,
    },
    /// The active chain's tip moved (after connecting and disconnecting what it took).
    Tip {
        /// The new tip.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// Core's estimate of the share of all transactions now validated, 0–1.
        progress: f64,
        /// Bytes of `blocks/` and `chainstate/` on disk (measured at most once a second).
        disk_bytes: u64,
    },
    /// The kernel was closed and reopened (a flush): headers handed to it without their
    /// blocks may be gone and are handed again when needed.
    Reopened,
    /// A block was read for a peer.
    Read {
        /// The peer to answer.
        peer: PeerId,
        /// The block asked for.
        hash: BlockHash,
        /// In which form it was asked.
        form: BlockForm,
        /// The block in the asked form with its frame checksum; `None` if it is not stored.
        bytes: Option<Arc<ReadBlock>>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punishment_follows_cores_result_codes() {
        // A bad header, a child of an invalid block or a missing parent always costs the peer.
        for k in [InvalidKind::InvalidHeader, InvalidKind::InvalidPrev, InvalidKind::MissingPrev] {
            for (cmpct, inbound) in [(false, false), (true, false), (false, true), (true, true)] {
                assert!(k.punishes(cmpct, inbound), "{k:?}");
            }
        }
        // Consensus failures and mutation cost the peer unless the block came as a compact block.
        for k in [InvalidKind::Consensus, InvalidKind::Mutated] {
            assert!(k.punishes(false, true) && !k.punishes(true, false), "{k:?}");
        }
        // A block known invalid costs only an outbound peer that sent it in full.
        assert!(InvalidKind::CachedInvalid.punishes(false, false));
        assert!(!InvalidKind::CachedInvalid.punishes(false, true) && !InvalidKind::CachedInvalid.punishes(true, false));
        // A future timestamp or low work is not the peer's fault.
        for k in [InvalidKind::TimeFuture, InvalidKind::HeaderLowWork, InvalidKind::Unset] {
            assert!(!k.punishes(false, false) && !k.punishes(true, true), "{k:?}");
        }
    }
}
