//! The peer manager's side of the validation thread: its reports (verdicts, tip moves, blocks
//! read for peers) applied to the protocol state, and the peers they concern punished or
//! served.

use bitcoin::BlockHash;
use bitcoin::p2p::message::NetworkMessage;
use tracing::{debug, info};

use super::{Action, Decided, Out, PeerManager, Wire};
use crate::base::peer::PeerId;
use crate::engine::blocks::validation::{BlockForm, InvalidKind, ValidationEvent};
use crate::engine::chain::tree::BlockStatus;
use crate::engine::protocol::{LinkTimes, Now, blocks, misbehaving};

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
        self.actions.extend(reqs.into_iter().map(Action::Validate));
    }

    /// A report from the validation thread (all but block reads, which go to
    /// [`PeerManager::on_block_read`]).
    pub fn on_validation(&mut self, event: ValidationEvent, now: Now) {
        match event {
            ValidationEvent::Block { hash, outcome, .. } => {
                let peers = &self.peers;
                let inbound =
                    |id: PeerId| peers.get(&id).filter(|m| !m.closing).map(|m| m.peer.who.conn_type.is_inbound());
                let (headers, blocks) = self.protocol.headers_and_blocks_mut();
                let verdict = blocks::on_verdict(headers, blocks, hash, &outcome, inbound, now);
                if let Some((id, what)) = verdict.punish {
                    self.punish(id, what, now);
                }
            }
            ValidationEvent::Tip { hash, progress, disk_bytes, .. } => {
                let (headers, blocks) = self.protocol.headers_and_blocks_mut();
                blocks::on_tip(headers, blocks, hash, progress, disk_bytes, now);
            }
            ValidationEvent::HeaderInvalid { hash, invalid } => {
                let (headers, _) = self.protocol.headers_and_blocks_mut();
                let tree = headers.chain.tree_mut();
                let Some((id, _)) = tree.get(&hash) else { return };
                info!("validation engine refused header {hash}: {} ({})", invalid.reason, invalid.kind.name());
                match invalid.kind {
                    InvalidKind::MissingPrev
                    | InvalidKind::TimeFuture
                    | InvalidKind::Unset
                    | InvalidKind::HeaderLowWork => {
                        // Not a verdict on the header: hand it over again next time.
                        tree.remove_status(id, BlockStatus::INDEXED);
                    }
                    _ => {
                        tree.mark_invalid(id);
                    }
                }
            }
            ValidationEvent::PowValid { block } => {
                debug!(target: "net", "new PoW-valid block {}", block.block_hash());
            }
            ValidationEvent::Read { .. } => {}
        }
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
        blocks::on_read(&mut m.peer, hash, form, bytes, checksum, &mut out);
        let decided = Decided::from(out);
        if !self.apply(id, decided, now) {
            self.send_messages(id, now, link, wire);
        }
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
