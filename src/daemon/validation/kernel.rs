//! Bitcoin Core's kernel as the validation thread holds it: opening the block and chainstate
//! databases in the network's data directory, the kernel's callbacks gathered as notes, the
//! kernel's log forwarded to btcloop's `validation` category (and read for reject reasons), and
//! conversions between rust-bitcoin's types and the kernel's.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bitcoin::hashes::Hash;
use bitcoinkernel::prelude::*;
use bitcoinkernel::{
    BlockValidationResult, ChainType, ChainstateManager, Context, ContextBuilder, KernelError, Log, LogCategory,
    LogLevel, Logger, ValidationMode,
};
use parking_lot::Mutex;
use tracing::{debug, error, info, warn};

use crate::base::chainparams::Network;
use crate::engine::blocks::validation::InvalidKind;

/// Why the kernel could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum KernelOpenError {
    /// The kernel's context (chain parameters, callbacks) could not be made.
    #[error("cannot start the validation engine: {0}")]
    Context(String),
    /// The block index or chainstate database at this path could not be opened: damaged, or
    /// made by an incompatible version.
    #[error(
        "cannot open the block database in {path} ({detail}); it may be damaged: move {path}/blocks and {path}/chainstate away to download the chain again"
    )]
    Database {
        /// The network's data directory.
        path: PathBuf,
        /// What the kernel said (its log has more).
        detail: String,
    },
}

/// Something the kernel reported through a callback during one call.
#[derive(Clone, Debug, PartialEq)]
pub enum Note {
    /// A block was fully checked (Core's `BlockChecked`): valid, or invalid for this reason.
    Checked {
        /// The block.
        hash: bitcoin::BlockHash,
        /// `None`: valid.
        invalid: Option<InvalidKind>,
    },
    /// A block's header and proof of work were checked and it extends the tip (Core's
    /// `NewPoWValidBlock`).
    PowValid {
        /// The block.
        hash: bitcoin::BlockHash,
    },
    /// The active tip moved to this block.
    Tip {
        /// The new tip.
        hash: bitcoin::BlockHash,
        /// Core's verification progress, 0–1.
        progress: f64,
    },
    /// The kernel hit an error it cannot go on from (disk full, corrupt data).
    Fatal(String),
}

thread_local! {
    /// Kernel log lines of the current call on this thread, read for reject reasons.
    static CAPTURE: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Forwards the kernel's log to tracing and captures the lines of the current call.
struct LogBridge;

impl Log for LogBridge {
    fn log(&self, message: &str) {
        let line = message.trim_end();
        debug!(target: "validation", "kernel: {line}");
        CAPTURE.with(|c| {
            if let Some(lines) = c.borrow_mut().as_mut() {
                // A call logs a handful of lines; keep the last few only.
                if lines.len() >= 64 {
                    lines.remove(0);
                }
                lines.push(line.to_string());
            }
        });
    }
}

/// Connects the kernel's log to tracing (and to reject-reason capture) for as long as the
/// returned logger lives. The kernel buffers what it logs before (up to 1 MB). The logger
/// stays on the thread that made it.
pub fn connect_log() -> Option<Logger> {
    match Logger::new(LogBridge) {
        Ok(l) => {
            l.enable_category(LogCategory::Validation);
            l.set_level_category(LogCategory::Validation, LogLevel::Debug);
            Some(l)
        }
        Err(e) => {
            warn!("kernel log not available: {e}");
            None
        }
    }
}

/// Runs `f` with the kernel's log lines captured; returns its result and the lines.
pub fn capturing<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    CAPTURE.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let out = f();
    let lines = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (out, lines)
}

/// Core's reject reason (`reason, debug message`) from the log lines of a failed call: the
/// kernel's C API reports only the result code, and Core logs the validation state's text.
pub fn reject_reason(lines: &[String]) -> String {
    const MARKERS: [&str; 6] = [
        "Block validation error: ",
        "AcceptBlock FAILED (",
        "AcceptBlock: ",
        "Consensus::CheckBlock: ",
        "Block mutated: ",
        " failed, ",
    ];
    for line in lines.iter().rev() {
        for m in MARKERS {
            if let Some(pos) = line.find(m) {
                let rest = &line[pos + m.len()..];
                let rest = rest.strip_suffix(')').unwrap_or(rest);
                return rest.trim().to_string();
            }
        }
        // Core's header checks: "...CheckBlockHeader: <hash>, <reason>, <debug>".
        if let Some(pos) = line.find("CheckBlockHeader: ") {
            let rest = &line[pos + "CheckBlockHeader: ".len()..];
            if let Some((_, reason)) = rest.split_once(", ") {
                return reason.trim().to_string();
            }
        }
    }
    String::new()
}

/// Core's result code as btcloop names it.
pub fn invalid_kind(result: BlockValidationResult) -> InvalidKind {
    match result {
        BlockValidationResult::Unset => InvalidKind::Unset,
        BlockValidationResult::Consensus => InvalidKind::Consensus,
        BlockValidationResult::CachedInvalid => InvalidKind::CachedInvalid,
        BlockValidationResult::InvalidHeader => InvalidKind::InvalidHeader,
        BlockValidationResult::Mutated => InvalidKind::Mutated,
        BlockValidationResult::MissingPrev => InvalidKind::MissingPrev,
        BlockValidationResult::InvalidPrev => InvalidKind::InvalidPrev,
        BlockValidationResult::TimeFuture => InvalidKind::TimeFuture,
        BlockValidationResult::HeaderLowWork => InvalidKind::HeaderLowWork,
    }
}

/// A kernel block hash as rust-bitcoin's.
pub fn to_hash(h: &impl BlockHashExt) -> bitcoin::BlockHash {
    bitcoin::BlockHash::from_byte_array(h.to_bytes())
}

/// A rust-bitcoin block hash as the kernel's.
pub fn from_hash(h: &bitcoin::BlockHash) -> bitcoinkernel::BlockHash {
    bitcoinkernel::BlockHash::from(h.to_byte_array())
}

/// The kernel's chain type for a network.
fn chain_type(network: Network) -> ChainType {
    match network {
        Network::Main => ChainType::Mainnet,
        Network::Test => ChainType::Testnet,
        Network::Testnet4 => ChainType::Testnet4,
        Network::Signet => ChainType::Signet,
        Network::Regtest => ChainType::Regtest,
    }
}

/// The kernel: its context, its chainstate manager and what its callbacks report.
pub struct Kernel {
    /// The chainstate manager (blocks/ and chainstate/ under `dir`); `None` only if reopening
    /// it after a flush failed, after which the validation thread stops.
    chainman: Option<ChainstateManager>,
    /// Kept alive for the manager.
    _context: Context,
    /// What the callbacks noted since [`Kernel::take_notes`] was last called.
    notes: Arc<Mutex<Vec<Note>>>,
    /// The network's data directory.
    dir: PathBuf,
    /// The network.
    network: Network,
}

impl Kernel {
    /// Opens (creating if missing) the block store and chainstate in `dir` for `network`.
    pub fn open(dir: &Path, network: Network) -> Result<Kernel, KernelOpenError> {
        let notes: Arc<Mutex<Vec<Note>>> = Arc::new(Mutex::new(Vec::new()));
        let (n1, n2, n3, n4, n5) = (notes.clone(), notes.clone(), notes.clone(), notes.clone(), notes.clone());
        let context = ContextBuilder::new()
            .chain_type(chain_type(network))
            .notifications(move |n| {
                n.register_block_tip(move |_state, hash: bitcoinkernel::BlockHash, progress| {
                    n1.lock().push(Note::Tip { hash: to_hash(&hash), progress });
                });
                n.register_fatal_error(move |msg: String| {
                    error!("validation engine: fatal error: {msg}");
                    n2.lock().push(Note::Fatal(msg.to_string()));
                });
                n.register_flush_error(move |msg: String| {
                    error!("validation engine: cannot write to disk: {msg}");
                    n3.lock().push(Note::Fatal(msg.to_string()));
                });
            })
            .validation(move |v| {
                v.register_block_checked(
                    move |block: bitcoinkernel::Block, state: bitcoinkernel::BlockValidationStateRef<'_>| {
                        let invalid = (state.mode() != ValidationMode::Valid).then(|| invalid_kind(state.result()));
                        n4.lock().push(Note::Checked { hash: to_hash(&block.hash()), invalid });
                    },
                );
                v.register_new_pow_valid_block(move |entry: bitcoinkernel::BlockTreeEntry<'_>, _block| {
                    n5.lock().push(Note::PowValid { hash: to_hash(&entry.block_hash()) });
                });
            })
            .build()
            .map_err(|e| KernelOpenError::Context(e.to_string()))?;
        let chainman = open_chainman(&context, dir)?;
        Ok(Kernel { chainman: Some(chainman), _context: context, notes, dir: dir.to_path_buf(), network })
    }

    /// The network's magic (which also starts each record of the block files).
    pub fn magic(&self) -> [u8; 4] {
        self.network.magic()
    }

    /// The block files' directory (`blocks/`).
    pub fn blocks_dir(&self) -> PathBuf {
        self.dir.join("blocks")
    }

    /// The chainstate manager (`None` once a reopen failed).
    pub fn chainman(&self) -> Option<&ChainstateManager> {
        self.chainman.as_ref()
    }

    /// Takes what the callbacks noted.
    pub fn take_notes(&self) -> Vec<Note> {
        std::mem::take(&mut *self.notes.lock())
    }

    /// Closes and reopens the chainstate manager: closing writes the block index and the
    /// chainstate to disk (the kernel's C API has no flush call), so what was validated
    /// survives a crash.
    pub fn flush(&mut self) -> Result<(), KernelOpenError> {
        let started = std::time::Instant::now();
        // The old manager must release the databases before the new one opens them.
        self.chainman = None;
        self.chainman = Some(open_chainman(&self._context, &self.dir)?);
        info!("Flushed the block index and chainstate to disk in {:?}", started.elapsed());
        Ok(())
    }

    /// Bytes of `blocks/` and `chainstate/` on disk (Core's `size_on_disk` counts the block
    /// and undo files; the databases are small beside them).
    pub fn disk_bytes(&self) -> u64 {
        fn size(dir: &Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        size(&self.dir.join("blocks")).saturating_add(size(&self.dir.join("chainstate")))
    }

    /// The active chain's tip: hash and height.
    pub fn tip(&self) -> (bitcoin::BlockHash, u32) {
        let Some(cm) = self.chainman() else { return (bitcoin::BlockHash::all_zeros(), 0) };
        let chain = cm.active_chain();
        let height = chain.height();
        if height < 0 {
            return (bitcoin::BlockHash::all_zeros(), 0);
        }
        let tip = chain.tip();
        (to_hash(&tip.block_hash()), u32::try_from(tip.height()).unwrap_or(0))
    }

    /// Headers of the active chain from `height` up to its tip.
    pub fn active_headers_from(&self, height: u32) -> Vec<bitcoin::block::Header> {
        let Some(cm) = self.chainman() else { return Vec::new() };
        let chain = cm.active_chain();
        let top = u32::try_from(chain.height()).unwrap_or(0);
        let mut out = Vec::with_capacity(top.saturating_sub(height) as usize + 1);
        for h in height..=top {
            let Some(entry) = chain.at_height(h as usize) else { break };
            let Ok(bytes) = entry.header().consensus_encode() else { break };
            match bitcoin::consensus::deserialize(&bytes) {
                Ok(header) => out.push(header),
                Err(_) => break,
            }
        }
        out
    }

    /// The hash of the active chain's block at `height`.
    pub fn active_hash(&self, height: u32) -> Option<bitcoin::BlockHash> {
        let chain = self.chainman()?.active_chain();
        chain.at_height(height as usize).map(|e| to_hash(&e.block_hash()))
    }
}

/// Opens the chainstate manager in `dir` (`dir/blocks`, `dir/chainstate`) and loads it. A
/// failure carries the kernel's own words (its log lines about the error).
fn open_chainman(context: &Context, dir: &Path) -> Result<ChainstateManager, KernelOpenError> {
    let _log = connect_log();
    let (r, lines) = capturing(|| open_chainman_quiet(context, dir));
    r.map_err(|e| match e {
        KernelOpenError::Database { path, detail } => {
            let mut said: Vec<&str> = Vec::new();
            for l in &lines {
                if ["rror", "orrupt", "ailed", "annot"].iter().any(|k| l.contains(k)) && !said.contains(&l.as_str()) {
                    said.push(l);
                }
            }
            let detail = if said.is_empty() { detail } else { said.join("; ") };
            KernelOpenError::Database { path, detail }
        }
        other => other,
    })
}

fn open_chainman_quiet(context: &Context, dir: &Path) -> Result<ChainstateManager, KernelOpenError> {
    let db_err = |e: KernelError| KernelOpenError::Database { path: dir.to_path_buf(), detail: e.to_string() };
    let blocks = dir.join("blocks");
    let (Some(d), Some(b)) = (dir.to_str(), blocks.to_str()) else {
        return Err(KernelOpenError::Database { path: dir.to_path_buf(), detail: "the path is not UTF-8".into() });
    };
    let chainman = ChainstateManager::builder(context, d, b).map_err(db_err)?.build().map_err(db_err)?;
    // Loads the chainstate and connects the best stored chain (Core's start-up import).
    chainman.import_blocks().map_err(db_err)?;
    Ok(chainman)
}
