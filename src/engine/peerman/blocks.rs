//! The peer manager's side of the validation thread: its reports (verdicts, tip moves, blocks
//! read for peers) applied to the protocol state, and the peers they concern punished or
//! served.

use bitcoin::BlockHash;
use bitcoin::p2p::message::NetworkMessage;
use tracing::{debug, info};

use super::{Action, Decided, Out, PeerManager, Wire};
use crate::base::peer::PeerId;
use crate::engine::blocks::compact::HbCandidate;
use crate::engine::blocks::validation::{BlockForm, BlockOutcome, InvalidKind, ValidationEvent};
use crate::engine::chain::tree::BlockStatus;
use crate::engine::protocol::{LinkTimes, Now, blocks, cmpct, misbehaving};

/// A wire that drops what is written: for decisions about a peer outside its own calls
/// (punishment needs no message).
struct Mute;

impl Wire for Mute {
    fn send(&mut self, _msg: &NetworkMessage) {}
    fn send_headers<'h>(&mut self, _headers: impl ExactSizeIterator<Item = &'h bitcoin::block::Header>) {}
}

impl PeerManager {
    /// Moves the validation thread's requests into actions.
    pub(super) fn take_validation_requests(&mut self) {
        let mut reqs = Vec::new();
        self.protocol.headers_and_blocks_mut().1.take_requests(&mut reqs);
        let wanted = self.peers.values().any(|m| !m.closing && m.peer.cmpct.remote.requested_hb);
        for r in &mut reqs {
            if let crate::engine::blocks::validation::ValidationRequest::Block { announce, .. } = r {
                *announce = wanted;
            }
        }
        self.actions.extend(reqs.into_iter().map(Action::Validate));
    }

    /// A report from the validation thread (all but block reads, which go to
    /// [`PeerManager::on_block_read`]). Returns what the driver should free off its own thread
    /// (the most recent block it replaced).
    pub fn on_validation(&mut self, event: ValidationEvent, now: Now) -> Option<cmpct::Recent> {
        match event {
            ValidationEvent::Block { hash, outcome, from } => {
                let peers = &self.peers;
                let inbound =
                    |id: PeerId| peers.get(&id).filter(|m| !m.closing).map(|m| m.peer.who.conn_type.is_inbound());
                let (headers, blocks) = self.protocol.headers_and_blocks_mut();
                let verdict = blocks::on_verdict(headers, blocks, hash, &outcome, inbound, now);
                if let Some((id, what)) = verdict.punish {
                    self.punish(id, what, now);
                }
                if let (BlockOutcome::Stored, Some(from)) = (&outcome, from) {
                    self.maybe_select_hb(from, now);
                }
            }
            ValidationEvent::PowValid { block, cmpct: compact } => {
                let (headers, blocks, cmpct) = self.protocol.block_parts_mut();
                let height = headers.chain.tree().get(&block.block_hash()).map_or(0, |(_, e)| e.height);
                let segwit = height >= blocks.download.segwit_height();
                let (push, old) = cmpct::new_pow_valid_block(cmpct, (block, compact), height, segwit);
                if push {
                    debug!(target: "cmpctblock", "new PoW-valid block at height {height}: pushing to high-bandwidth peers");
                }
                return old;
            }
            ValidationEvent::Tip { hash, progress, disk_bytes, .. } => {
                let (headers, blocks) = self.protocol.headers_and_blocks_mut();
                blocks::on_tip(headers, blocks, hash, progress, disk_bytes, now);
            }
            ValidationEvent::HeaderInvalid { hash, invalid } => {
                let (headers, _) = self.protocol.headers_and_blocks_mut();
                let tree = headers.chain.tree_mut();
                let (id, _) = tree.get(&hash)?;
                info!("validation engine refused header {hash}: {} ({})", invalid.reason, invalid.kind.name());
                match invalid.kind {
                    InvalidKind::MissingPrev => {
                        // The kernel lost the headers before it: hand the branch over again.
                        tree.unindex_branch(id);
                    }
                    InvalidKind::TimeFuture | InvalidKind::Unset | InvalidKind::HeaderLowWork => {
                        // Not a verdict on the header: hand it over again next time.
                        tree.remove_status(id, BlockStatus::INDEXED);
                    }
                    _ => {
                        tree.mark_invalid(id);
                    }
                }
            }
            ValidationEvent::Reopened => {
                let (headers, _) = self.protocol.headers_and_blocks_mut();
                headers.chain.tree_mut().unindex_off_active();
            }
            ValidationEvent::Read { .. } => {}
        }
        None
    }

    /// A block the validation thread read for `id`: sent in the asked form (or `notfound`),
    /// then the peer's next `getdata` entry is served.
    #[allow(clippy::too_many_arguments)]
    pub fn on_block_read(
        &mut self,
        id: PeerId,
        hash: BlockHash,
        form: BlockForm,
        bytes: Option<&[u8]>,
        checksum: Option<[u8; 4]>,
        now: Now,
        link: LinkTimes,
        wire: &mut impl Wire,
    ) {
        let Some(m) = self.peers.get_mut(&id).filter(|m| !m.closing) else { return };
        let mut out = Out::new(wire);
        match (form, bytes) {
            (BlockForm::Compact, Some(bytes)) => {
                m.peer.blocks.reading = false;
                match bitcoin::consensus::deserialize::<bitcoin::Block>(bytes) {
                    Ok(block) => {
                        let (headers, _, cmpct) = self.protocol.block_parts_mut();
                        cmpct::on_read(cmpct, headers, &mut m.peer, &block, bytes, checksum, now, &mut out);
                    }
                    Err(e) => debug!(target: "net", "stored block {hash} does not decode: {e}"),
                }
            }
            _ => blocks::on_read(&mut m.peer, hash, form, bytes, checksum, &mut out),
        }
        let decided = Decided::from(out);
        if !self.apply(id, decided, now) {
            self.send_messages(id, now, link, wire);
        }
    }

    /// Core's `MaybeSetPeerAsAnnouncingHeaderAndIDs` after `from` gave us a good new block
    /// that was the only one in flight, outside initial download: the `sendcmpct`s go out at
    /// the peers' next `SendMessages`.
    fn maybe_select_hb(&mut self, from: PeerId, now: Now) {
        if self.protocol.in_ibd(now) || self.protocol.blocks().download.total_in_flight() > 0 {
            return;
        }
        let Some(m) = self.peers.get(&from).filter(|m| !m.closing) else { return };
        let candidate = HbCandidate {
            peer: from,
            inbound: m.peer.who.conn_type.is_inbound(),
            provides_cmpctblocks: m.peer.cmpct.remote.provides_cmpctblocks,
            fully_connected: m.peer.handshake.successfully_connected,
        };
        let (_, _, cmpct) = self.protocol.block_parts_mut();
        let Some((select, deselect)) = cmpct::maybe_select_hb(cmpct, candidate) else { return };
        if let Some(m) = self.peers.get_mut(&select) {
            m.peer.cmpct.send_hb = Some(true);
        }
        if let Some(m) = deselect.and_then(|d| self.peers.get_mut(&d)) {
            m.peer.cmpct.send_hb = Some(false);
        }
    }

    /// The validation thread refused `req` (its queue was full): undone so it happens again.
    pub fn validation_dropped(&mut self, req: &crate::engine::blocks::validation::ValidationRequest, now: Now) {
        if let crate::engine::blocks::validation::ValidationRequest::Read { peer, .. } = req {
            if let Some(m) = self.peers.get_mut(peer) {
                m.peer.blocks.reading = false;
            }
        }
        let (headers, blocks) = self.protocol.headers_and_blocks_mut();
        blocks.dropped(headers, req, now);
    }

    /// `submitblock`: hands the operator's block to the validation thread; its verdict comes
    /// back as a [`ValidationEvent::Block`] with no sender.
    pub fn submit_block(&mut self, bytes: Vec<u8>, now: Now) -> Result<BlockHash, blocks::SubmitRefused> {
        let (headers, blocks) = self.protocol.headers_and_blocks_mut();
        blocks::submit(headers, blocks, bytes, now)
    }

    /// Core's `Misbehaving` for a peer outside its own message (a block it sent was invalid).
    fn punish(&mut self, id: PeerId, what: String, now: Now) {
        let Some(m) = self.peers.get(&id).filter(|m| !m.closing) else { return };
        let mut mute = Mute;
        let mut out = Out::new(&mut mute);
        misbehaving(&m.peer, &mut out, what);
        let decided = Decided::from(out);
        self.apply(id, decided, now);
    }
}
