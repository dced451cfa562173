//! `mkchain`: mines a regtest header chain into a data directory's header store, so a node
//! started on that directory begins with a long best chain.

use std::path::Path;

use btcloop::base::sys::DirLock;
use btcloop::daemon::node::HEADERS_FILE;
use btcloop::engine::chain::mine::mine_chain;
use btcloop::engine::chain::params::ChainParams;
use btcloop::engine::chain::store::HeaderStore;

use super::*;

/// Largest accepted `--count` (the store file grows by 84 bytes per header).
const MAX_COUNT: usize = 10_000_000;

pub(crate) fn mkchain_mode(datadir: &Path, network: Network, count: usize, salt: u64) -> Result<ExitCode, String> {
    if network != Network::Regtest {
        return Err("mkchain mines regtest headers only (--network regtest)".into());
    }
    if count == 0 || count > MAX_COUNT {
        return Err(format!("--count must be in 1..={MAX_COUNT}"));
    }
    let net_dir = match network.datadir_name() {
        Some(sub) => datadir.join(sub),
        None => datadir.to_path_buf(),
    };
    std::fs::create_dir_all(&net_dir).map_err(|e| format!("cannot create {}: {e}", net_dir.display()))?;
    // The node holds this lock while it runs: never write under a live node.
    let _lock = DirLock::acquire(&net_dir).map_err(|e| e.to_string())?;
    let path = net_dir.join(HEADERS_FILE);
    let (mut store, loaded) = HeaderStore::open(&path, network.magic()).map_err(|e| e.to_string())?;
    if !loaded.headers.is_empty() {
        return Err(format!(
            "{} already holds {} headers; refusing to add to it (use an empty data directory)",
            path.display(),
            loaded.headers.len()
        ));
    }

    let params = ChainParams::new(network);
    let t0 = Instant::now();
    let headers = mine_chain(&params, &params.genesis, count, salt);
    let mine_secs = t0.elapsed().as_secs_f64();
    store.append(&headers);
    store.flush().map_err(|e| e.to_string())?;
    let tip = headers.last().map_or_else(|| params.genesis_hash(), |h| h.block_hash());
    println!("mined {count} {network} headers (salt {salt}) in {mine_secs:.2} s into {}", path.display());
    println!("tip {tip} height {count}");
    println!(
        r#"{{"mode":"mkchain","count":{count},"salt":{salt},"tip":"{tip}","height":{count},"mine_secs":{mine_secs:.3}}}"#
    );
    Ok(ExitCode::SUCCESS)
}
