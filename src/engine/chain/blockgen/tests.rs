//! The generated blocks are well formed as Core's miner would make them: BIP34 height, merkle
//! root, witness commitment, proof of work, subsidy plus fees, and spends of mature outputs
//! only, each spent once.

use std::collections::HashSet;

use super::*;
use crate::base::chainparams::Network;

fn regtest() -> ChainParams {
    ChainParams::new(Network::Regtest)
}

#[test]
fn every_block_is_well_formed_and_links_to_the_last() {
    let params = regtest();
    let mut chain = BlockGen::new(params.clone());
    let mut prev = params.genesis;
    for h in 1..=20u32 {
        let b = chain.next_block(params.genesis.time + h, 0);
        assert_eq!(b.header.prev_blockhash, prev.block_hash(), "links to its parent");
        // Core's BIP34 test: the script starts with `CScript() << height` (OP_1..OP_16 below 17).
        let expect = bitcoin::blockdata::script::Builder::new().push_int(i64::from(h)).into_script();
        assert!(b.txdata[0].input[0].script_sig.as_bytes().starts_with(expect.as_bytes()), "BIP34 height {h}");
        if h > 16 {
            assert_eq!(b.bip34_block_height().ok(), Some(u64::from(h)));
        }
        assert!(b.check_merkle_root(), "merkle root at {h}");
        assert!(b.check_witness_commitment(), "witness commitment at {h}");
        assert!(check_proof_of_work(b.block_hash(), b.header.bits, &params), "proof of work at {h}");
        let cb = &b.txdata[0];
        assert!(cb.is_coinbase());
        let len = cb.input[0].script_sig.len();
        assert!((2..=100).contains(&len), "coinbase script of {len} bytes at {h}");
        assert_eq!(cb.output[0].value, Amount::from_btc(50.0).unwrap(), "subsidy only: no fees yet");
        assert_eq!(chain.height(), h);
        prev = b.header;
    }
}

#[test]
fn spends_start_at_maturity_pay_fees_and_never_spend_twice() {
    let params = regtest();
    let mut chain = BlockGen::new(params.clone());
    let mut spent = HashSet::new();
    // Every output the chain made: the height of its block and whether a coinbase made it.
    let mut created = std::collections::HashMap::new();
    for h in 1..=130u32 {
        let b = chain.next_block(params.genesis.time + h, 3);
        let spends = &b.txdata[1..];
        match h {
            ..=100 => assert!(spends.is_empty(), "nothing is mature at {h}"),
            101 => assert_eq!(spends.len(), 1, "only block 1's coinbase is mature at 101"),
            103.. => assert_eq!(spends.len(), 3, "three spends at {h}"),
            _ => {}
        }
        for tx in spends {
            let prev = tx.input[0].previous_output;
            let (at, coinbase): (u32, bool) = *created.get(&prev).unwrap_or_else(|| panic!("{prev} was never made"));
            assert!(at < h, "spends an output of an earlier block");
            assert!(!coinbase || h >= at + COINBASE_MATURITY, "coinbase of {at} spent at {h}");
            assert!(spent.insert(prev), "{prev} spent twice");
        }
        let fees = FEE * spends.len() as u64;
        assert_eq!(b.txdata[0].output[0].value, subsidy(&params, h) + fees, "reward at {h}");
        for (i, tx) in b.txdata.iter().enumerate() {
            created.insert(OutPoint { txid: tx.compute_txid(), vout: 0 }, (h, i == 0));
        }
        assert!(b.check_merkle_root() && b.check_witness_commitment());
    }
}

#[test]
fn subsidy_halves_on_regtests_schedule() {
    let p = regtest();
    assert_eq!(subsidy(&p, 149), Amount::from_sat(5_000_000_000));
    assert_eq!(subsidy(&p, 150), Amount::from_sat(2_500_000_000));
    assert_eq!(subsidy(&p, 150 * 64), Amount::ZERO);
    assert_eq!(subsidy(&ChainParams::new(Network::Main), 210_000), Amount::from_sat(2_500_000_000));
}

#[test]
fn a_tampered_block_fails_the_checks_it_should() {
    let params = regtest();
    let mut chain = BlockGen::new(params.clone());
    let mut b = chain.next_block(params.genesis.time + 1, 0);
    b.header.merkle_root = TxMerkleNode::all_zeros();
    assert!(!b.check_merkle_root(), "a wrong merkle root is seen");
    let mut b = chain.next_block(params.genesis.time + 2, 0);
    b.txdata[0].output[0].value += Amount::from_sat(1);
    assert!(!b.check_merkle_root(), "changing the coinbase changes its id");
}
