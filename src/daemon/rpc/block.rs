//! `getblock`'s data and JSON: the stored block (and, for verbosity 2 and 3, the outputs its
//! transactions spent, from the undo data) read on the validation thread through
//! [`Queries::ask`], and Core's `blockToJSON`, `coinbaseTxToJSON` and `TxToUniv` shapes.

use bitcoin::consensus::deserialize;
use bitcoin::{Amount, Block, BlockHash, Network, ScriptBuf, Transaction};
use bitcoinkernel::prelude::*;
use serde_json::{Map, Value, json};

use super::render::{block_header, hex};
use super::script::{asm, script_pub_key};
use crate::daemon::inspect::{RpcError, code};
use crate::daemon::snapshot::HeaderInfo;
use crate::daemon::validation::kernel::{Kernel, from_hash};
use crate::daemon::validation::{Queries, SubmitError};

/// An output a transaction spent, from the block's undo data (Core's `Coin`).
#[derive(Clone, Debug, PartialEq)]
pub struct Spent {
    /// Its value.
    pub value: Amount,
    /// Its script.
    pub script: ScriptBuf,
    /// Height of the block that created it.
    pub height: u32,
    /// Whether a coinbase created it.
    pub coinbase: bool,
}

/// A stored block as the validation thread read it.
#[derive(Clone, Debug)]
pub struct StoredBlock {
    /// Its bytes as stored (with witnesses).
    pub bytes: Vec<u8>,
    /// Per non-coinbase transaction, the outputs its inputs spent; `None` without undo data.
    pub spent: Option<Vec<Vec<Spent>>>,
}

/// Reads block `hash` (on the validation thread); with `undo`, also the outputs it spent.
/// `None` if the kernel has no such block or cannot read it.
pub fn read(k: &Kernel, hash: &BlockHash, undo: bool) -> Option<StoredBlock> {
    let cm = k.chainman()?;
    let entry = cm.get_block_tree_entry(&from_hash(hash))?;
    let bytes = cm.read_block_data(&entry).ok()?.consensus_encode().ok()?;
    let spent = if undo {
        cm.read_spent_outputs(&entry).ok().map(|undo| {
            undo.iter()
                .map(|tx| {
                    tx.coins()
                        .map(|coin| {
                            let out = coin.output();
                            Spent {
                                value: Amount::from_sat(u64::try_from(out.value()).unwrap_or(0)),
                                script: ScriptBuf::from_bytes(out.script_pubkey().to_bytes()),
                                height: coin.confirmation_height(),
                                coinbase: coin.is_coinbase(),
                            }
                        })
                        .collect()
                })
                .collect()
        })
    } else {
        None
    };
    Some(StoredBlock { bytes, spent })
}

/// Why reading a block through the validation thread failed, as Core's RPC error.
fn asked(e: SubmitError) -> RpcError {
    RpcError::new(code::IN_WARMUP, format!("cannot read the block: {e}"))
}

/// The stored block `h` names, or Core's error when it is not available.
pub fn fetch(queries: Option<&Queries>, h: &HeaderInfo, undo: bool) -> Result<StoredBlock, RpcError> {
    let not_downloaded = || RpcError::new(code::MISC_ERROR, "Block not available (not fully downloaded)");
    // An invalid block may still be stored (Core keeps one that failed to connect): the
    // kernel knows.
    if !h.have_data && !h.invalid {
        return Err(not_downloaded());
    }
    let q = queries.ok_or_else(|| RpcError::new(code::MISC_ERROR, "Block not found on disk"))?;
    let hash = h.hash;
    // Undo data exists only for blocks connected once (genesis has none to spend).
    let undo = undo && h.connected && h.height > 0;
    match q.ask(move |k| read(k, &hash, undo)).map_err(asked)? {
        Some(block) => Ok(block),
        None if !h.have_data => Err(not_downloaded()),
        None => Err(RpcError::new(code::MISC_ERROR, "Block not found on disk")),
    }
}

/// The number of transactions in stored block `h` (Core's `nTx`), 0 when it is not stored.
pub fn tx_count(queries: Option<&Queries>, h: &HeaderInfo) -> Result<u64, RpcError> {
    if !h.have_data && !h.invalid {
        return Ok(0);
    }
    let Some(q) = queries else { return Ok(0) };
    let hash = h.hash;
    let n = q
        .ask(move |k| {
            let cm = k.chainman()?;
            let entry = cm.get_block_tree_entry(&from_hash(&hash))?;
            cm.read_block_data(&entry).ok().map(|b| b.transaction_count())
        })
        .map_err(asked)?;
    Ok(n.map_or(0, |n| n as u64))
}

/// Core's `ValueFromAmount`: bitcoins as a JSON number.
fn btc(a: Amount) -> Value {
    json!(a.to_btc())
}

/// Core's `coinbaseTxToJSON`.
fn coinbase_json(tx: &Transaction) -> Value {
    let mut o = Map::new();
    o.insert("version".into(), json!(tx.version.0));
    o.insert("locktime".into(), json!(tx.lock_time.to_consensus_u32()));
    if let Some(input) = tx.input.first() {
        o.insert("sequence".into(), json!(input.sequence.0));
        o.insert("coinbase".into(), json!(hex(input.script_sig.as_bytes())));
        if let Some(w) = input.witness.iter().next() {
            o.insert("witness".into(), json!(hex(w)));
        }
    }
    Value::Object(o)
}

/// Core's `TxToUniv` (with hex, no block hash); `spent` from the undo data gives `fee`, and
/// with `prevout` each input's spent output.
fn tx_json(tx: &Transaction, spent: Option<&[Spent]>, prevout: bool, network: Network) -> Value {
    let weight = tx.weight().to_wu();
    let mut o = Map::new();
    o.insert("txid".into(), json!(tx.compute_txid().to_string()));
    o.insert("hash".into(), json!(tx.compute_wtxid().to_string()));
    o.insert("version".into(), json!(tx.version.0));
    o.insert("size".into(), json!(tx.total_size()));
    o.insert("vsize".into(), json!(weight.div_ceil(4)));
    o.insert("weight".into(), json!(weight));
    o.insert("locktime".into(), json!(tx.lock_time.to_consensus_u32()));
    let coinbase = tx.is_coinbase();
    // Undo data matching the inputs one to one, or none.
    let spent = spent.filter(|s| s.len() == tx.input.len() && !coinbase);
    let mut vin = Vec::with_capacity(tx.input.len());
    for (i, input) in tx.input.iter().enumerate() {
        let mut v = Map::new();
        if coinbase {
            v.insert("coinbase".into(), json!(hex(input.script_sig.as_bytes())));
        } else {
            v.insert("txid".into(), json!(input.previous_output.txid.to_string()));
            v.insert("vout".into(), json!(input.previous_output.vout));
            v.insert(
                "scriptSig".into(),
                json!({"asm": asm(input.script_sig.as_bytes(), true), "hex": hex(input.script_sig.as_bytes())}),
            );
        }
        if !input.witness.is_empty() {
            v.insert("txinwitness".into(), Value::Array(input.witness.iter().map(|w| json!(hex(w))).collect()));
        }
        if let (true, Some(coin)) = (prevout, spent.and_then(|s| s.get(i))) {
            v.insert(
                "prevout".into(),
                json!({
                    "generated": coin.coinbase,
                    "height": coin.height,
                    "value": btc(coin.value),
                    "scriptPubKey": script_pub_key(&coin.script, network),
                }),
            );
        }
        v.insert("sequence".into(), json!(input.sequence.0));
        vin.push(Value::Object(v));
    }
    o.insert("vin".into(), Value::Array(vin));
    let vout: Vec<Value> = tx
        .output
        .iter()
        .enumerate()
        .map(|(n, out)| {
            json!({"value": btc(out.value), "n": n, "scriptPubKey": script_pub_key(&out.script_pubkey, network)})
        })
        .collect();
    o.insert("vout".into(), Value::Array(vout));
    if let Some(spent) = spent {
        let total_in = spent.iter().try_fold(Amount::ZERO, |a, c| a.checked_add(c.value));
        let total_out = tx.output.iter().try_fold(Amount::ZERO, |a, out| a.checked_add(out.value));
        if let Some(fee) = total_in.zip(total_out).and_then(|(i, o)| i.checked_sub(o)) {
            o.insert("fee".into(), btc(fee));
        }
    }
    o.insert("hex".into(), json!(bitcoin::consensus::encode::serialize_hex(tx)));
    Value::Object(o)
}

/// Core's `getblock` result for `verbosity` (0: hex; 1: txids; 2: transactions; 3: with
/// prevouts) of stored block `stored` that header `h` describes.
pub fn block_json(h: &HeaderInfo, stored: &StoredBlock, verbosity: i64, network: Network) -> Result<Value, RpcError> {
    if verbosity <= 0 {
        return Ok(json!(hex(&stored.bytes)));
    }
    let block: Block =
        deserialize(&stored.bytes).map_err(|_| RpcError::new(code::MISC_ERROR, "Block not found on disk"))?;
    let mut header = h.clone();
    header.header = block.header;
    let Value::Object(mut o) = block_header(&header, block.txdata.len() as u64, true) else {
        return Err(RpcError::new(code::MISC_ERROR, "Block not found on disk"));
    };
    let stripped = bitcoin::consensus::encode::serialize(&Block {
        header: block.header,
        txdata: block
            .txdata
            .iter()
            .map(|tx| {
                let mut t = tx.clone();
                t.input.iter_mut().for_each(|i| i.witness.clear());
                t
            })
            .collect(),
    })
    .len();
    o.insert("strippedsize".into(), json!(stripped));
    o.insert("size".into(), json!(stored.bytes.len()));
    o.insert("weight".into(), json!(block.weight().to_wu()));
    if let Some(cb) = block.txdata.first() {
        o.insert("coinbase_tx".into(), coinbase_json(cb));
    }
    let txs: Vec<Value> = if verbosity == 1 {
        block.txdata.iter().map(|tx| json!(tx.compute_txid().to_string())).collect()
    } else {
        let prevout = verbosity >= 3;
        block
            .txdata
            .iter()
            .enumerate()
            .map(|(i, tx)| {
                let spent =
                    i.checked_sub(1).and_then(|j| stored.spent.as_ref().and_then(|s| s.get(j))).map(Vec::as_slice);
                tx_json(tx, spent, prevout, network)
            })
            .collect()
    };
    o.insert("tx".into(), Value::Array(txs));
    Ok(Value::Object(o))
}
