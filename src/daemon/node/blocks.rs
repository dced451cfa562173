//! Start-up of the block side: opens Bitcoin Core's kernel in the network's data directory,
//! brings the header tree into agreement with the kernel's active chain (the kernel is the
//! source of truth for what was validated), and starts the validation thread, whose reports
//! go to the message handler.

use std::path::Path;
use std::sync::Arc;

use tracing::{info, warn};

use crate::base::chainparams::Network;
use crate::daemon::net::wake::{MsgWake, NetEvent};
use crate::daemon::validation::kernel::{Kernel, KernelOpenError};
use crate::daemon::validation::{FlushPolicy, Validation, recover};
use crate::engine::chain::accept::Chain;

/// Opens the kernel in `dir`, mirrors its active chain into `chain`'s tree, and starts the
/// validation thread.
pub fn start(
    dir: &Path,
    network: Network,
    chain: &mut Chain,
    flush: FlushPolicy,
    wake: Arc<MsgWake>,
    now_unix: i64,
) -> Result<Validation, BlocksStartError> {
    let kernel = Kernel::open(dir, network)?;
    let blocks = kernel.blocks_dir();
    match recover::recover(&kernel, &blocks, network.magic()) {
        Ok(_) => {}
        Err(e) => warn!("recovery after an unclean stop failed: {e}"),
    }
    // From now until a clean stop, a crash is an unclean stop.
    recover::write_marker(&blocks, network.magic(), false)
        .map_err(|source| BlocksStartError::Marker { path: blocks.clone(), source })?;
    mirror_active_chain(&kernel, chain, now_unix);
    let emit = move |ev| wake.post_event(NetEvent::Validation(Box::new(ev)));
    Validation::spawn(kernel, flush, emit).map_err(BlocksStartError::Thread)
}

/// Why the block side could not start.
#[derive(Debug, thiserror::Error)]
pub enum BlocksStartError {
    /// The kernel or its databases could not be opened.
    #[error(transparent)]
    Kernel(#[from] KernelOpenError),
    /// The validation thread could not be started.
    #[error("cannot start the validation thread: {0}")]
    Thread(std::io::Error),
    /// The flush marker could not be written.
    #[error("cannot write the flush marker in {path}: {source}")]
    Marker {
        /// The blocks directory.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Makes the tree's active chain the kernel's. Headers of the kernel's chain that the tree
/// lacks (its header store lost a tail the kernel kept) are accepted first.
fn mirror_active_chain(kernel: &Kernel, chain: &mut Chain, now_unix: i64) {
    let (tip, height) = kernel.tip();
    if chain.tree().get(&tip).is_none() {
        // The highest block of the kernel's chain the tree knows, stepping down.
        let mut known = 0;
        let mut step = 1u32;
        let mut h = height;
        while h > 0 {
            if kernel.active_hash(h).is_some_and(|hash| chain.tree().contains(&hash)) {
                known = h;
                break;
            }
            h = h.saturating_sub(step);
            step = step.saturating_mul(2);
        }
        let missing = kernel.active_headers_from(known + 1);
        let r = chain.accept(&missing, now_unix);
        if let Some((i, e)) = r.error {
            warn!("the block database's chain has a header this node refuses (#{i}): {e}");
        }
        info!("Loaded {} headers of the validated chain from the block database", r.added);
    }
    match chain.tree().get(&tip).map(|(id, _)| id) {
        Some(id) => {
            chain.tree_mut().set_active_tip(id);
            info!("Validated chain: height {height}, tip {tip}");
        }
        None => warn!("the block database's tip {tip} (height {height}) is not in the header tree"),
    }
}
