//! The node's header chain (Core's `ChainstateManager::ProcessNewBlockHeaders` for a
//! headers-only node): owns the tree and the store; validates and accepts headers, persists
//! them, and restores the tree from the store at start.

use std::path::Path;

use bitcoin::block::Header;
use bitcoin::pow::Work;
use tracing::{info, warn};

use super::params::ChainParams;
use super::pow::work_of;
use super::store::{HeaderStore, StoreError};
use super::tree::{EntryId, HeaderTree, Inserted};
use super::validate::{HeaderError, check_contextual, check_header};

/// What accepting a batch of headers did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Headers newly added to the tree.
    pub added: usize,
    /// The entry of the last header processed (new or already known).
    pub last: Option<EntryId>,
    /// Set when the best tip changed: (fork height, old tip height).
    pub new_tip: Option<(u32, u32)>,
    /// The first header that failed, with its index in the batch; later ones were not looked at.
    pub error: Option<(usize, HeaderError)>,
}

/// What restoring from the store found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Headers read back into the tree (new entries only: a stored genesis or a duplicate
    /// record is not counted).
    pub headers: usize,
    /// Bytes of a torn or corrupt tail the store dropped.
    pub dropped_tail_bytes: u64,
    /// Stored headers whose parent was missing (skipped).
    pub orphans: usize,
}

/// The header chain.
#[derive(Debug)]
pub struct Chain {
    params: ChainParams,
    tree: HeaderTree,
    store: Option<HeaderStore>,
    min_chain_work: Work,
}

impl Chain {
    /// A chain holding only genesis, kept in memory only.
    pub fn in_memory(params: ChainParams, min_chain_work: Work) -> Self {
        let tree = HeaderTree::new(params.genesis, work_of(params.genesis.bits));
        Chain { params, tree, store: None, min_chain_work }
    }

    /// The chain stored at `path` (created if missing), for the network of `params`.
    pub fn open(params: ChainParams, min_chain_work: Work, path: &Path) -> Result<(Chain, Restored), StoreError> {
        let (store, loaded) = HeaderStore::open(path, params.network.magic())?;
        let mut chain = Chain::in_memory(params, min_chain_work);
        let mut restored = Restored { dropped_tail_bytes: loaded.dropped_tail_bytes, ..Restored::default() };
        for (record, h) in (0u64..).zip(&loaded.headers) {
            let hash = h.block_hash();
            // The file is ours but not trusted: a header without its proof of work means the
            // file was altered, and the node refuses to start rather than build on it.
            if check_header(&chain.params, h, hash).is_err() {
                return Err(StoreError::BadProofOfWork { path: path.to_path_buf(), record, hash });
            }
            match chain.tree.insert(*h, hash, work_of(h.bits)) {
                // Already in the tree (genesis, or a record stored twice): nothing added.
                Some(Inserted::Known(_)) => {}
                Some(_) => restored.headers += 1,
                None => restored.orphans += 1,
            }
        }
        if restored.dropped_tail_bytes > 0 {
            warn!("header store {}: dropped a torn tail of {} bytes", path.display(), restored.dropped_tail_bytes);
        }
        info!("Loaded {} headers from {}, best height {}", restored.headers, path.display(), chain.tree.height());
        chain.store = Some(store);
        Ok((chain, restored))
    }

    /// Bytes of the header store on disk (`size_on_disk`; 0 when kept in memory only).
    pub fn store_size(&self) -> u64 {
        self.store.as_ref().and_then(|s| std::fs::metadata(s.path()).ok()).map_or(0, |m| m.len())
    }

    /// The consensus parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The header tree.
    pub fn tree(&self) -> &HeaderTree {
        &self.tree
    }

    /// The header tree, to change what it knows of blocks (statuses, the active chain);
    /// headers enter only through [`Chain::accept`], which also stores them.
    pub fn tree_mut(&mut self) -> &mut HeaderTree {
        &mut self.tree
    }

    /// The minimum chain work (`--minimumchainwork` or the network's).
    pub fn min_chain_work(&self) -> Work {
        self.min_chain_work
    }

    /// Core's `GetAntiDoSWorkThreshold`: headers must lead to at least this much work before
    /// they are stored — the minimum chain work, or our tip's work less 144 headers' worth,
    /// whichever is more.
    pub fn anti_dos_threshold(&self) -> Work {
        let tip = self.tree.tip();
        let proof = work_of(tip.header.bits);
        let mut buffer = Work::from_be_bytes([0; 32]);
        for _ in 0..144 {
            buffer = buffer + proof;
            if buffer >= tip.chain_work {
                buffer = tip.chain_work;
                break;
            }
        }
        let near_tip = tip.chain_work - buffer;
        near_tip.max(self.min_chain_work)
    }

    /// Validates and adds `headers` (each extending the tree), stopping at the first invalid
    /// one. Accepted headers are queued for the store.
    pub fn accept(&mut self, headers: &[Header], now_unix: i64) -> Accepted {
        let mut out = Accepted::default();
        for (i, h) in headers.iter().enumerate() {
            let hash = h.block_hash();
            if let Some((id, _)) = self.tree.get(&hash) {
                out.last = Some(id);
                continue;
            }
            // Core's AcceptBlockHeader: nothing builds on a block known invalid.
            if self.tree.get(&h.prev_blockhash).is_some_and(|(_, p)| p.status.failed()) {
                out.error = Some((i, HeaderError::InvalidParent(h.prev_blockhash)));
                break;
            }
            let checked = check_header(&self.params, h, hash)
                .and_then(|()| check_contextual(&self.params, &self.tree, h, now_unix));
            if let Err(e) = checked {
                out.error = Some((i, e));
                break;
            }
            match self.tree.insert(*h, hash, work_of(h.bits)) {
                Some(Inserted::NewTip { id, fork_height, old_height }) => {
                    out.last = Some(id);
                    out.new_tip = Some(match out.new_tip {
                        Some((f, o)) => (f.min(fork_height), o),
                        None => (fork_height, old_height),
                    });
                }
                Some(Inserted::SideBranch(id)) | Some(Inserted::Known(id)) => out.last = Some(id),
                None => {
                    out.error = Some((i, HeaderError::UnknownParent(h.prev_blockhash)));
                    break;
                }
            }
            out.added += 1;
            if let Some(store) = self.store.as_mut() {
                store.append(std::slice::from_ref(h));
            }
        }
        out
    }

    /// The header store (`None` when kept in memory only): the message handler takes its
    /// batches for the disk-writer thread.
    pub fn store_mut(&mut self) -> Option<&mut HeaderStore> {
        self.store.as_mut()
    }

    /// Makes every accepted header durable.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        match self.store.as_mut() {
            Some(s) => s.flush(),
            None => Ok(()),
        }
    }
}
