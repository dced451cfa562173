//! `mkblocks`: builds a chain of valid regtest blocks into a block file for the initial block
//! download benchmark: `coinbase` (blocks holding only their coinbase) or `full` (101 set-up
//! blocks, then blocks of thousands of transactions spending the previous block's outputs,
//! about 1 MB each). Block times end near now, one second apart (strictly increasing, so each
//! is past its median-time-past), so that nodes leave initial block download at the tip.

use bitcoin::blockdata::block::{Block, Header};
use bitcoin::blockdata::script::ScriptBuf;
use bitcoin::blockdata::transaction::{OutPoint, Sequence, Transaction, TxIn, TxOut};
use bitcoin::{Amount, Witness, absolute, transaction};
use btcloop::engine::chain::blockgen::{COINBASE_MATURITY, anyone_can_spend, assemble, coinbase, subsidy};
use btcloop::engine::chain::params::ChainParams;

use super::blockfile::{BlockWriter, MAX_BLOCK_BYTES};
use super::*;

/// Consensus `MAX_BLOCK_WEIGHT`.
const MAX_BLOCK_WEIGHT: u64 = 4_000_000;
/// Fee of each spending transaction, satoshis (small: an output is spent once per block).
const SPEND_FEE: Amount = Amount::from_sat(100);
/// Largest accepted `--count`.
const MAX_COUNT: u32 = 1_000_000;

/// What kind of chain `mkblocks` builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// COUNT blocks holding only their coinbase.
    Coinbase,
    /// 100 coinbase-only blocks, one block splitting the first coinbase into SPENDS outputs,
    /// then COUNT blocks each spending all SPENDS outputs of the block before (one input, one
    /// output per transaction).
    Full,
}

/// What `mkblocks` is given.
pub(crate) struct MkblocksArgs {
    pub(crate) kind: Kind,
    pub(crate) count: u32,
    pub(crate) spends: u32,
    pub(crate) out: std::path::PathBuf,
    /// Time of the last block (unix seconds); `None`: now.
    pub(crate) end_time: Option<u32>,
}

/// The chain under construction.
struct Chain {
    params: ChainParams,
    tip: Header,
    height: u32,
    /// Time of block 1; block h has `first_time + h - 1`.
    first_time: u32,
    out: BlockWriter,
    /// Largest block made: (bytes, weight, transactions).
    largest: (usize, u64, usize),
}

impl Chain {
    /// Adds the next block holding `txs` after its coinbase, which takes subsidy plus `fees`.
    fn push(&mut self, txs: Vec<Transaction>, fees: Amount) -> Result<OutPoint, String> {
        let height = self.height + 1;
        let reward = subsidy(&self.params, height).checked_add(fees).ok_or("fees overflow")?;
        let mut all = Vec::with_capacity(txs.len() + 1);
        all.push(coinbase(height, reward));
        all.extend(txs);
        let time = self.first_time + self.height;
        let block: Block = assemble(&self.params, &self.tip, time, all);
        let bytes = bitcoin::consensus::serialize(&block);
        let weight = block.weight().to_wu();
        if weight > MAX_BLOCK_WEIGHT || bytes.len() > MAX_BLOCK_BYTES {
            return Err(format!(
                "block {height} would weigh {weight} (limit {MAX_BLOCK_WEIGHT}), {} bytes: use fewer --spends",
                bytes.len()
            ));
        }
        if bytes.len() > self.largest.0 {
            self.largest = (bytes.len(), weight, block.txdata.len());
        }
        self.out.push(&bytes)?;
        let cb = block.txdata.first().map(|t| t.compute_txid()).ok_or("block without coinbase")?;
        self.tip = block.header;
        self.height = height;
        Ok(OutPoint { txid: cb, vout: 0 })
    }
}

/// A transaction spending `prev` into `outputs` outputs of `value` each, to `OP_TRUE`.
fn spend(prev: OutPoint, value: Amount, outputs: u32) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: prev,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: (0..outputs).map(|_| TxOut { value, script_pubkey: anyone_can_spend() }).collect(),
    }
}

/// Blocks the chain of `a` holds in all.
fn total_blocks(a: &MkblocksArgs) -> u32 {
    match a.kind {
        Kind::Coinbase => a.count,
        Kind::Full => a.count + COINBASE_MATURITY + 1,
    }
}

pub(crate) fn mkblocks_mode(network: Network, a: MkblocksArgs) -> Result<ExitCode, String> {
    if network != Network::Regtest {
        return Err("mkblocks builds regtest blocks only (--network regtest)".into());
    }
    if a.count == 0 || a.count > MAX_COUNT {
        return Err(format!("--count must be in 1..={MAX_COUNT}"));
    }
    let params = ChainParams::new(network);
    let each = match a.kind {
        Kind::Coinbase => Amount::ZERO,
        Kind::Full => split_value(&params, a.count, a.spends)?,
    };
    let total = total_blocks(&a);
    let end = match a.end_time {
        Some(t) => t,
        None => u32::try_from(unix_now()).map_err(|_| "the clock is past 2106")?,
    };
    let first_time = end
        .checked_sub(total - 1)
        .filter(|&t| t > params.genesis.time)
        .ok_or_else(|| format!("--end-time {end} leaves no room for {total} blocks one second apart after genesis"))?;
    let out = BlockWriter::create(&a.out, network.magic())?;
    let tip = params.genesis;
    let mut chain = Chain { params, tip, height: 0, first_time, out, largest: (0, 0, 0) };
    let t0 = Instant::now();
    let mut txs = 0u64;
    match a.kind {
        Kind::Coinbase => {
            for _ in 0..a.count {
                chain.push(Vec::new(), Amount::ZERO)?;
            }
        }
        Kind::Full => txs = build_full(&mut chain, a.count, a.spends, each)?,
    }
    let secs = t0.elapsed().as_secs_f64();
    let (tip, height, blocks, bytes, largest) =
        (chain.tip.block_hash(), chain.height, chain.out.blocks, chain.out.bytes, chain.largest);
    chain.out.finish()?;
    let kind = format!("{:?}", a.kind).to_lowercase();
    println!(
        "built {blocks} {kind} regtest blocks ({txs} spending transactions, {:.1} MB) in {secs:.1} s into {}",
        bytes as f64 / 1e6,
        a.out.display()
    );
    println!("largest block: {} bytes, weight {}, {} transactions", largest.0, largest.1, largest.2);
    println!("tip {tip} height {height}, block times {first_time}..={end}");
    println!(
        r#"{{"mode":"mkblocks","kind":"{kind}","blocks":{blocks},"height":{height},"tip":"{tip}","bytes":{bytes},"spending_txs":{txs},"largest_bytes":{},"largest_weight":{},"first_time":{first_time},"end_time":{end},"secs":{secs:.3}}}"#,
        largest.0, largest.1
    );
    Ok(ExitCode::SUCCESS)
}

/// The value of each of the `spends` outputs the first coinbase is split into: enough to pay
/// one [`SPEND_FEE`] in each of the `count` blocks that spend it again.
fn split_value(params: &ChainParams, count: u32, spends: u32) -> Result<Amount, String> {
    if spends == 0 {
        return Err("--spends must be at least 1".into());
    }
    let each = (subsidy(params, 1) - SPEND_FEE) / u64::from(spends);
    if each <= SPEND_FEE * u64::from(count) {
        return Err(format!(
            "--spends {spends} splits 50 BTC into outputs of {each}, too small to pay {count} fees of {SPEND_FEE}"
        ));
    }
    Ok(each)
}

/// The `full` chain on top of genesis, the first coinbase split into `spends` outputs of
/// `each`; returns the number of spending transactions.
fn build_full(chain: &mut Chain, count: u32, spends: u32, each: Amount) -> Result<u64, String> {
    // Set-up: 100 coinbase-only blocks; block 101 splits the (now mature) first coinbase.
    let first = chain.push(Vec::new(), Amount::ZERO)?;
    let first_value = subsidy(&chain.params, 1);
    for _ in 1..COINBASE_MATURITY {
        chain.push(Vec::new(), Amount::ZERO)?;
    }
    let split = spend(first, each, spends);
    let split_fee = first_value - each * u64::from(spends);
    let split_id = split.compute_txid();
    chain.push(vec![split], split_fee)?;
    let mut outputs: Vec<OutPoint> = (0..spends).map(|vout| OutPoint { txid: split_id, vout }).collect();
    let mut value = each;
    let mut made = 1u64;
    let t0 = Instant::now();
    for i in 0..count {
        value = value.checked_sub(SPEND_FEE).ok_or("output value exhausted")?;
        let txs: Vec<Transaction> = outputs.iter().map(|&prev| spend(prev, value, 1)).collect();
        outputs = txs.iter().map(|t| OutPoint { txid: t.compute_txid(), vout: 0 }).collect();
        made += txs.len() as u64;
        chain.push(txs, SPEND_FEE * u64::from(spends))?;
        if (i + 1) % 100 == 0 {
            println!("  {} of {count} full blocks built ({:.1} s)", i + 1, t0.elapsed().as_secs_f64());
        }
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::super::blockfile::{BlockReader, block_hash};
    use super::*;

    /// A small `full` chain: the right number of blocks, linked, spending the block before.
    #[test]
    fn full_chain_links_and_spends_the_block_before() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("full.blk");
        let a =
            MkblocksArgs { kind: Kind::Full, count: 3, spends: 50, out: out.clone(), end_time: Some(2_000_000_000) };
        mkblocks_mode(Network::Regtest, a).unwrap();
        let mut r = BlockReader::open(&out, Network::Regtest.magic()).unwrap();
        let mut prev = ChainParams::new(Network::Regtest).genesis_hash();
        let mut blocks = Vec::new();
        while let Some(bytes) = r.next_block().unwrap() {
            let b: Block = bitcoin::consensus::deserialize(&bytes).unwrap();
            assert_eq!(b.header.prev_blockhash, prev);
            assert_eq!(block_hash(&bytes).unwrap(), b.block_hash());
            prev = b.block_hash();
            blocks.push(b);
        }
        assert_eq!(blocks.len(), 104);
        assert_eq!(blocks.last().unwrap().header.time, 2_000_000_000);
        assert!(blocks.windows(2).all(|w| w[1].header.time == w[0].header.time + 1));
        assert_eq!(blocks[100].txdata.len(), 2, "the split");
        assert_eq!(blocks[100].txdata[1].output.len(), 50);
        assert_eq!(blocks[100].txdata[1].input[0].previous_output.txid, blocks[0].txdata[0].compute_txid());
        for h in 101..104 {
            let spent: Vec<_> = blocks[h].txdata[1..].iter().map(|t| t.input[0].previous_output).collect();
            assert_eq!(spent.len(), 50);
            assert!(spent.iter().all(|o| blocks[h - 1].txdata.iter().any(|t| t.compute_txid() == o.txid)));
            // The coinbase takes subsidy plus every fee.
            let cb = blocks[h].txdata[0].output[0].value;
            assert_eq!(cb, subsidy(&ChainParams::new(Network::Regtest), h as u32 + 1) + SPEND_FEE * 50);
        }
    }

    /// Bitcoin Core's kernel (the validation btcloopd uses) connects every block of both kinds.
    #[test]
    fn the_kernel_connects_both_kinds() {
        use btcloop::daemon::validation::kernel::Kernel;
        for (kind, count, height) in [(Kind::Coinbase, 150, 150), (Kind::Full, 5, 106)] {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("chain.blk");
            mkblocks_mode(
                Network::Regtest,
                MkblocksArgs { kind, count, spends: 200, out: out.clone(), end_time: None },
            )
            .unwrap();
            let kernel = Kernel::open(&dir.path().join("node"), Network::Regtest).unwrap();
            let cm = kernel.chainman().unwrap();
            let mut r = BlockReader::open(&out, Network::Regtest.magic()).unwrap();
            let mut last = None;
            while let Some(bytes) = r.next_block().unwrap() {
                let _ = cm.process_block(&bitcoinkernel::Block::new(&bytes).unwrap());
                last = Some(block_hash(&bytes).unwrap());
            }
            assert_eq!(kernel.tip(), (last.unwrap(), height), "{kind:?}");
        }
    }

    #[test]
    fn too_many_spends_or_blocks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = |kind, count, spends| MkblocksArgs {
            kind,
            count,
            spends,
            out: dir.path().join("x.blk"),
            end_time: Some(2_000_000_000),
        };
        // 20,000 one-in one-out transactions weigh more than 4M.
        let e = mkblocks_mode(Network::Regtest, a(Kind::Full, 1, 20_000)).unwrap_err();
        assert!(e.contains("would weigh"), "{e}");
        let e = mkblocks_mode(Network::Regtest, a(Kind::Full, 100_000, 16_000)).unwrap_err();
        assert!(e.contains("too small"), "{e}");
        let e = mkblocks_mode(Network::Main, a(Kind::Coinbase, 1, 0)).unwrap_err();
        assert!(e.contains("regtest"), "{e}");
    }
}
