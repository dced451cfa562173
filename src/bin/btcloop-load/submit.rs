//! `submit`: loads a node (btcloopd or bitcoind) with the blocks of a block file through its
//! `submitblock` RPC, in order, then checks that its tip is the file's last block.

use std::path::Path;

use bitcoin::hex::DisplayHex;
use serde_json::{Value, json};

use super::blockfile::{BlockReader, block_hash};
use super::rpc::{Rpc, tip_of};
use super::*;

/// How long the node's RPC may take to come up.
const READY_WAIT: Duration = Duration::from_secs(120);
/// How often progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

pub(crate) fn submit_mode(
    network: Network,
    rpc_addr: SocketAddr,
    cookie: &Path,
    blocks: &Path,
    timeout: Duration,
) -> Result<ExitCode, String> {
    let mut rpc = Rpc::new(rpc_addr, cookie.to_path_buf(), timeout);
    let info = rpc.wait_ready(Instant::now() + READY_WAIT, || Ok(()))?;
    let (start_height, _) = tip_of(&info).ok_or("getblockchaininfo without blocks/bestblockhash")?;
    let mut reader = BlockReader::open(blocks, network.magic())?;
    let t0 = Instant::now();
    let mut next_progress = t0 + PROGRESS_EVERY;
    let (mut accepted, mut duplicates, mut bytes) = (0u64, 0u64, 0u64);
    let mut last = None;
    while let Some(block) = reader.next_block()? {
        let hash = block_hash(&block)?;
        let n = reader.read;
        match rpc.call("submitblock", json!([block.to_lower_hex_string()])) {
            Ok(Value::Null) => accepted += 1,
            Ok(Value::String(s)) if s == "duplicate" => duplicates += 1,
            Ok(other) => return Err(format!("block {n} ({hash}) refused: {other}")),
            Err(e) => return Err(format!("block {n} ({hash}): {e}")),
        }
        bytes += block.len() as u64;
        last = Some(hash);
        if Instant::now() >= next_progress {
            next_progress += PROGRESS_EVERY;
            println!("  {n} blocks submitted in {:.1} s", t0.elapsed().as_secs_f64());
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let last = last.ok_or_else(|| format!("{} holds no blocks", blocks.display()))?.to_string();
    let count = reader.read;
    let info = rpc.call("getblockchaininfo", json!([])).map_err(|e| e.to_string())?;
    let (height, best) = tip_of(&info).ok_or("getblockchaininfo without blocks/bestblockhash")?;
    if best != last || height != count {
        return Err(format!(
            "after submitting {count} blocks the node's tip is {best} at height {height}, not {last} at {count}"
        ));
    }
    println!(
        "submitted {count} blocks ({:.1} MB; {accepted} accepted, {duplicates} duplicates) in {secs:.1} s; tip {best} height {height} (was {start_height})",
        bytes as f64 / 1e6
    );
    println!(
        r#"{{"mode":"submit","blocks":{count},"accepted":{accepted},"duplicates":{duplicates},"bytes":{bytes},"secs":{secs:.3},"tip":"{best}","height":{height}}}"#
    );
    Ok(ExitCode::SUCCESS)
}
