//! Fuzzes BIP152 reconstruction and serving (`engine::blocks::compact`).
//!
//! Input: byte 0 is a control byte. Its low bit picks the source of the two messages: raw (the
//! rest is a u16 length, then that many bytes of `cmpctblock` payload, then the `blocktxn`
//! payload) or made (a regtest block of `byte % 16` spends, some with witnesses, under a nonce
//! from the input; its `cmpctblock` and the `blocktxn` answering its `getblocktxn`, each with
//! up to 7 input-chosen bytes overwritten and optionally cut short, so that most still decode
//! and the checks past decoding are reached without seeds). Bit 1 says whether segwit is active.
//!
//! Checks, besides never panicking:
//! * a `PartialBlock` asks for exactly its non-prefilled slots, ascending and in range, and the
//!   request survives the wire;
//! * too few or too many transactions, and only that, is punished at `fill`;
//! * a filled block carries the header announced, as many transactions as announced, and is
//!   not mutated; compacting it again (under another nonce) gives a `PartialBlock` (or, for a
//!   block repeating a transaction, a short-id collision) whose `getblocktxn`, answered from the
//!   block, fills to the same bytes;
//! * the `blocktxn` bytes read as a `getblocktxn` are answered from the made block exactly when
//!   every index is in range, with the transactions asked for.

#![no_main]

use bitcoin::bip152::BlockTransactionsRequest;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::p2p::message_compact_blocks::{BlockTxn, CmpctBlock, GetBlockTxn};
use bitcoin::{Amount, Block, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness};
use btcloop::base::chainparams::Network;
use btcloop::engine::blocks::compact::{
    CompactError, PartialBlock, answer_getblocktxn, compact_from_block, is_block_mutated,
};
use btcloop::engine::chain::blockgen::{anyone_can_spend, assemble, coinbase};
use btcloop::engine::chain::params::ChainParams;
use libfuzzer_sys::fuzz_target;

mod common;
use common::Reader;

fn spend(seed: u8, witness: bool) -> Transaction {
    Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint { txid: Txid::from_byte_array([seed; 32]), vout: 0 },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: if witness { Witness::from_slice(&[vec![seed; 72]]) } else { Witness::new() },
        }],
        output: vec![TxOut { value: Amount::from_sat(1_000), script_pubkey: anyone_can_spend() }],
    }
}

fn made_block(spends: u8) -> Block {
    let params = ChainParams::new(Network::Regtest);
    let mut txs = vec![coinbase(1, Amount::from_sat(50 * 100_000_000))];
    txs.extend((1..=spends).map(|i| spend(i, i % 3 == 1)));
    assemble(&params, &params.genesis, params.genesis.time + 1, txs)
}

fn mutate(r: &mut Reader, mut bytes: Vec<u8>) -> Vec<u8> {
    let len = bytes.len();
    for _ in 0..r.below(8) {
        let at = r.below(len.max(1));
        let v = r.u8();
        if let Some(b) = bytes.get_mut(at) {
            *b = v;
        }
    }
    if r.bool() {
        bytes.truncate(r.below(len + 1));
    }
    bytes
}

fn check(cmpct_bytes: &[u8], txn_bytes: &[u8], segwit: bool, block: &Block) {
    if let Ok(req) = deserialize::<GetBlockTxn>(txn_bytes) {
        let req = req.txs_request;
        let in_range = req.indexes.iter().all(|i| usize::try_from(*i).is_ok_and(|i| i < block.txdata.len()));
        match answer_getblocktxn(block, &req) {
            Ok(answer) => {
                assert!(in_range);
                assert_eq!(answer.transactions.len(), req.indexes.len());
                for (i, tx) in req.indexes.iter().zip(&answer.transactions) {
                    assert_eq!(Some(tx), usize::try_from(*i).ok().and_then(|i| block.txdata.get(i)));
                }
            }
            Err(e) => assert!(!in_range, "{e}"),
        }
    }
    let Ok(cmpct) = deserialize::<CmpctBlock>(cmpct_bytes) else { return };
    let Ok(partial) = PartialBlock::new(&cmpct) else { return };
    let count = partial.tx_count();
    let prefilled = cmpct.compact_block.prefilled_txs.len();
    let missing = partial.missing();
    assert_eq!(missing.indexes.len(), count - prefilled);
    assert!(missing.indexes.windows(2).all(|w| w[0] < w[1]));
    assert!(missing.indexes.iter().all(|i| usize::try_from(*i).is_ok_and(|i| i < count)));
    let wire: GetBlockTxn = deserialize(&serialize(&GetBlockTxn { txs_request: missing.clone() })).expect("round trip");
    assert_eq!(wire.txs_request, missing);

    let Ok(txn) = deserialize::<BlockTxn>(txn_bytes) else { return };
    let sent = txn.transactions.transactions.len();
    let header = *partial.header();
    match partial.fill(&txn, segwit) {
        Ok(rebuilt) => {
            assert_eq!(sent, missing.indexes.len());
            assert_eq!(rebuilt.header, header);
            assert_eq!(rebuilt.txdata.len(), count);
            assert_eq!(is_block_mutated(&rebuilt, segwit), None);
            round_trip(&rebuilt, segwit);
        }
        Err(CompactError::TooFewTransactions { .. } | CompactError::TooManyBlockTxn { .. }) => {
            assert_ne!(sent, missing.indexes.len());
        }
        Err(e) => {
            assert_eq!(sent, missing.indexes.len(), "{e}");
            assert!(!e.is_misbehaviour(), "{e}");
        }
    }
}

fn round_trip(block: &Block, segwit: bool) {
    let again = compact_from_block(block, 0x5eed);
    match PartialBlock::new(&again) {
        Ok(p) => {
            let req: BlockTransactionsRequest = p.missing();
            let answer = answer_getblocktxn(block, &req).expect("indexes from the block itself");
            let refilled = p.fill(&BlockTxn { transactions: answer }, segwit).expect("the same transactions");
            assert_eq!(serialize(&refilled), serialize(block));
        }
        Err(e) => assert_eq!(e, CompactError::ShortIdCollision, "a block repeating a transaction"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let control = r.u8();
    let segwit = control & 2 != 0;
    let block = made_block(r.u8() % 16);
    if control & 1 == 0 {
        let n = usize::from(r.u16());
        let cmpct = r.bytes(n).to_vec();
        let txn = r.bytes(usize::MAX).to_vec();
        check(&cmpct, &txn, segwit, &block);
    } else {
        let c = compact_from_block(&block, r.u64());
        let missing = PartialBlock::new(&c).map(|p| p.missing()).expect("a made block");
        let answer = answer_getblocktxn(&block, &missing).expect("a made request");
        let cmpct = mutate(&mut r, serialize(&c));
        let txn = mutate(&mut r, serialize(&BlockTxn { transactions: answer }));
        check(&cmpct, &txn, segwit, &block);
    }
});
