//! Compact blocks against real regtest blocks (coinbase with witness commitment, spends of
//! made-up outpoints, some with witnesses): the wire round trip, BIP152's short ids, each
//! malformed message and its verdict, the serving rules, `sendcmpct` and the high-bandwidth
//! choice, and proptests that hostile input never panics.

use bitcoin::bip152::{PrefilledTransaction, ShortId};
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::{Hash, sha256, siphash24};
use bitcoin::p2p::message_compact_blocks::GetBlockTxn;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Txid, Witness, absolute, transaction};
use proptest::prelude::*;

use super::*;
use crate::base::chainparams::Network;
use crate::engine::chain::blockgen::{anyone_can_spend, assemble, coinbase};
use crate::engine::chain::params::ChainParams;

/// A transaction spending a made-up outpoint `seed`; with a witness when `witness`.
fn spend(seed: u8, witness: bool) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint { txid: Txid::from_byte_array([seed; 32]), vout: u32::from(seed) },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: if witness { Witness::from_slice(&[vec![seed; 72], vec![2; 33]]) } else { Witness::new() },
        }],
        output: vec![TxOut { value: Amount::from_sat(1_000 + u64::from(seed)), script_pubkey: anyone_can_spend() }],
    }
}

/// A regtest block at height 1: Core's miner coinbase (witness commitment included) and
/// `spends` transactions, every other one with a witness.
fn block(spends: u8) -> Block {
    let params = ChainParams::new(Network::Regtest);
    let mut txs = vec![coinbase(1, Amount::from_sat(50 * 100_000_000))];
    txs.extend((1..=spends).map(|i| spend(i, i % 2 == 1)));
    assemble(&params, &params.genesis, params.genesis.time + 1, txs)
}

/// A `cmpctblock` with `header` and the given fields.
fn cmpct(header: Header, short_ids: Vec<ShortId>, prefilled: Vec<(u16, Transaction)>) -> CmpctBlock {
    let prefilled_txs = prefilled.into_iter().map(|(idx, tx)| PrefilledTransaction { idx, tx }).collect();
    CmpctBlock { compact_block: HeaderAndShortIds { header, nonce: 7, short_ids, prefilled_txs } }
}

fn ids(n: usize) -> Vec<ShortId> {
    (0..n).map(|i| ShortId::from(u64::try_from(i).unwrap().to_le_bytes()[..6].try_into().unwrap_or([0; 6]))).collect()
}

fn err_of(r: Result<PartialBlock, CompactError>) -> CompactError {
    r.expect_err("an error")
}

#[test]
fn round_trip_over_the_wire_gives_the_identical_block() {
    for spends in [0u8, 1, 2, 5, 12] {
        let original = block(spends);
        let sent = compact_from_block(&original, 0x0123_4567_89ab_cdef);
        let received: CmpctBlock = deserialize(&serialize(&sent)).unwrap();
        assert_eq!(received, sent);
        let partial = PartialBlock::new(&received).unwrap();
        assert_eq!(partial.block_hash(), original.block_hash());
        assert_eq!(partial.tx_count(), original.txdata.len());

        let want = partial.missing();
        let expected: Vec<u64> = (1..=u64::from(spends)).collect();
        assert_eq!(want.indexes, expected, "every transaction but the coinbase is missing");
        let getblocktxn: GetBlockTxn = deserialize(&serialize(&GetBlockTxn { txs_request: want })).unwrap();

        let answer = answer_getblocktxn(&original, &getblocktxn.txs_request).unwrap();
        let blocktxn: BlockTxn = deserialize(&serialize(&BlockTxn { transactions: answer })).unwrap();
        let rebuilt = partial.fill(&blocktxn, true).unwrap();

        assert_eq!(rebuilt.block_hash(), original.block_hash());
        assert_eq!(rebuilt.witness_root(), original.witness_root(), "witnesses kept");
        assert_eq!(serialize(&rebuilt), serialize(&original), "same bytes");
    }
}

#[test]
fn the_getblocktxn_indexes_are_differentially_encoded() {
    let req = BlockTransactionsRequest { block_hash: BlockHash::all_zeros(), indexes: vec![1, 2, 5] };
    let bytes = serialize(&req);
    // Hash, count 3, then 1, 2-1-1 = 0, 5-2-1 = 2.
    assert_eq!(&bytes[32..], &[3, 1, 0, 2]);
}

#[test]
fn the_cmpctblock_has_the_coinbase_prefilled_and_one_short_id_per_other_transaction() {
    let b = block(4);
    let c = compact_from_block(&b, 99).compact_block;
    assert_eq!(c.header, b.header);
    assert_eq!(c.nonce, 99);
    assert_eq!(c.prefilled_txs, vec![PrefilledTransaction { idx: 0, tx: b.txdata[0].clone() }]);
    assert_eq!(c.short_ids.len(), 4);
    // Only the coinbase: no short ids, still a valid compact block.
    let only = compact_from_block(&block(0), 1).compact_block;
    assert!(only.short_ids.is_empty());
    assert_eq!(only.prefilled_txs.len(), 1);
}

#[test]
fn short_ids_are_siphash_2_4_of_the_wtxid_keyed_by_header_and_nonce() {
    let b = block(3);
    let nonce = 0xfeed_beef_u64;
    let c = compact_from_block(&b, nonce).compact_block;
    // BIP152, computed here independently: k0, k1 = the first two little-endian u64 of
    // SHA256(header || nonce LE); short id = the low 6 bytes of SipHash-2-4(wtxid).
    let mut preimage = serialize(&b.header);
    preimage.extend_from_slice(&nonce.to_le_bytes());
    let key = sha256::Hash::hash(&preimage).to_byte_array();
    let k0 = u64::from_le_bytes(key[0..8].try_into().unwrap());
    let k1 = u64::from_le_bytes(key[8..16].try_into().unwrap());
    for (i, tx) in b.txdata.iter().enumerate().skip(1) {
        let sip = siphash24::Hash::hash_with_keys(k0, k1, tx.compute_wtxid().as_byte_array()).as_u64();
        let expect: [u8; 6] = sip.to_le_bytes()[..6].try_into().unwrap();
        assert_eq!(c.short_ids[i - 1].to_bytes(), expect, "short id of tx {i}");
    }
    // Transaction 1 has a witness: its txid-based id would differ.
    let tx = &b.txdata[1];
    assert_ne!(tx.compute_txid().to_raw_hash(), tx.compute_wtxid().to_raw_hash());
    let by_txid = siphash24::Hash::hash_with_keys(k0, k1, tx.compute_txid().as_byte_array()).as_u64();
    assert_ne!(c.short_ids[0].to_bytes()[..], by_txid.to_le_bytes()[..6], "version 2 hashes the wtxid");
}

#[test]
fn malformed_cmpctblocks_are_punished() {
    let b = block(2);
    let h = b.header;
    let cb = b.txdata[0].clone();

    let mut null = h;
    null.bits = bitcoin::CompactTarget::from_consensus(0);
    let e = err_of(PartialBlock::new(&cmpct(null, ids(2), vec![(0, cb.clone())])));
    assert_eq!(e, CompactError::NullHeader);

    let e = err_of(PartialBlock::new(&cmpct(h, vec![], vec![])));
    assert_eq!(e, CompactError::NoTransactions);

    let empty_tx = Transaction { input: vec![], output: vec![], ..cb.clone() };
    let e = err_of(PartialBlock::new(&cmpct(h, ids(2), vec![(0, cb.clone()), (0, empty_tx)])));
    assert_eq!(e, CompactError::NullPrefilledTx { position: 1 });

    // Index 0, then 0 + 65535 + 1 = 65536: beyond 16 bits.
    let e = err_of(PartialBlock::new(&cmpct(h, ids(2), vec![(0, cb.clone()), (u16::MAX, cb.clone())])));
    assert_eq!(e, CompactError::PrefilledIndexOverflow { position: 1 });

    // Two transactions (one short id, one prefilled) but the prefilled one at index 2.
    let e = err_of(PartialBlock::new(&cmpct(h, ids(1), vec![(2, cb.clone())])));
    assert_eq!(e, CompactError::PrefilledIndexOutOfRange { position: 0, index: 2 });
    // Index 1 with no short id before it: slot 0 would be empty.
    let e = err_of(PartialBlock::new(&cmpct(h, vec![], vec![(1, cb.clone())])));
    assert_eq!(e, CompactError::PrefilledIndexOutOfRange { position: 0, index: 1 });
    // Core judges each index against the slots so far: index 1 as the first of two prefilled
    // with no short id already leaves slot 0 empty (the second entry is never looked at).
    let e = err_of(PartialBlock::new(&cmpct(h, vec![], vec![(1, cb.clone()), (0, cb.clone())])));
    assert_eq!(e, CompactError::PrefilledIndexOutOfRange { position: 0, index: 1 });
    // Second prefilled at 0 + 1 + 1 = 2 with one short id: slot 1 is the short id's, fine.
    assert!(PartialBlock::new(&cmpct(h, ids(1), vec![(0, cb.clone()), (1, cb.clone())])).is_ok());

    for e in [
        CompactError::NullHeader,
        CompactError::NoTransactions,
        CompactError::NullPrefilledTx { position: 1 },
        CompactError::PrefilledIndexOverflow { position: 1 },
        CompactError::PrefilledIndexOutOfRange { position: 0, index: 2 },
    ] {
        assert_eq!(e.verdict(), Verdict::Punish, "{e}");
        assert!(e.is_misbehaviour());
    }
}

#[test]
fn more_transactions_than_16_bit_indexes_is_dropped_like_core_fails_to_decode_it() {
    let b = block(0);
    let e = err_of(PartialBlock::new(&cmpct(b.header, ids(65_535), vec![(0, b.txdata[0].clone())])));
    assert_eq!(e, CompactError::TxCountOverflow { count: 65_536 });
    assert_eq!(e.verdict(), Verdict::Ignore);
    assert!(!e.is_misbehaviour());
    // One fewer fits.
    assert!(PartialBlock::new(&cmpct(b.header, ids(65_534), vec![(0, b.txdata[0].clone())])).is_ok());
}

#[test]
fn duplicate_short_ids_fall_back_without_punishment() {
    let b = block(3);
    let mut c = compact_from_block(&b, 5);
    c.compact_block.short_ids[2] = c.compact_block.short_ids[0];
    let e = err_of(PartialBlock::new(&c));
    assert_eq!(e, CompactError::ShortIdCollision);
    assert_eq!(e.verdict(), Verdict::FallBack);
    assert!(!e.is_misbehaviour());
    // Core checks the prefilled transactions first: a malformed one still punishes.
    c.compact_block.prefilled_txs[0].idx = 9;
    assert!(err_of(PartialBlock::new(&c)).is_misbehaviour());
}

#[test]
fn a_blocktxn_with_the_wrong_count_is_punished() {
    let b = block(3);
    let partial = || PartialBlock::new(&compact_from_block(&b, 1)).unwrap();
    let txs = b.txdata[1..].to_vec();

    let e = partial().fill_with(txs[..2].to_vec(), true).unwrap_err();
    assert_eq!(e, CompactError::TooFewTransactions { expected: 3, got: 2 });
    assert!(e.is_misbehaviour());

    let mut more = txs.clone();
    more.push(spend(40, false));
    let e = partial().fill_with(more, true).unwrap_err();
    assert_eq!(e, CompactError::TooManyBlockTxn { expected: 3, got: 4 });
    assert!(e.is_misbehaviour());

    assert!(partial().fill_with(txs, true).is_ok());
}

#[test]
fn wrong_transactions_fall_back_as_a_possible_collision() {
    let b = block(3);
    let partial = || PartialBlock::new(&compact_from_block(&b, 1)).unwrap();

    let mut swapped = b.txdata[1..].to_vec();
    swapped.swap(0, 1);
    let e = partial().fill_with(swapped, true).unwrap_err();
    assert_eq!(e, CompactError::Mutated(Mutation::MerkleRoot));
    assert_eq!(e.verdict(), Verdict::FallBack);

    let mut other = b.txdata[1..].to_vec();
    other[2] = spend(77, false);
    assert_eq!(partial().fill_with(other, true).unwrap_err(), CompactError::Mutated(Mutation::MerkleRoot));
}

#[test]
fn same_txids_with_other_witnesses_fail_the_witness_commitment() {
    let b = block(3);
    let partial = || PartialBlock::new(&compact_from_block(&b, 1)).unwrap();
    let mut txs = b.txdata[1..].to_vec();
    // Transaction 1 carries a witness; change it: same txid, another wtxid (a short-id
    // collision on the wtxid could deliver this).
    txs[0].input[0].witness = Witness::from_slice(&[vec![9u8; 71]]);
    assert_eq!(txs[0].compute_txid(), b.txdata[1].compute_txid());
    let e = partial().fill_with(txs.clone(), true).unwrap_err();
    assert_eq!(e, CompactError::Mutated(Mutation::WitnessMerkleMatch));
    assert_eq!(e.verdict(), Verdict::FallBack);
    // Before segwit is active no witness may appear at all.
    assert_eq!(
        partial().fill_with(b.txdata[1..].to_vec(), false).unwrap_err(),
        CompactError::Mutated(Mutation::UnexpectedWitness)
    );
}

#[test]
fn a_duplicated_subtree_with_the_same_merkle_root_is_mutated() {
    // Three transactions: the tree pairs the last with itself, so [cb, a, b, b] has the same
    // root as [cb, a, b] (CVE-2012-2459). A cmpctblock claiming four transactions and a
    // blocktxn repeating b rebuild a block whose root matches but which is not the block.
    let b = block(2);
    let c = cmpct(b.header, ids(3), vec![(0, b.txdata[0].clone())]);
    let txs = vec![b.txdata[1].clone(), b.txdata[2].clone(), b.txdata[2].clone()];
    let forged = Block { header: b.header, txdata: [vec![b.txdata[0].clone()], txs.clone()].concat() };
    assert!(forged.check_merkle_root(), "the root alone cannot tell");
    let e = PartialBlock::new(&c).unwrap().fill_with(txs, true).unwrap_err();
    assert_eq!(e, CompactError::Mutated(Mutation::DuplicateTransactions));
    assert_eq!(e.verdict(), Verdict::FallBack);
}

#[test]
fn mutation_checks_follow_core() {
    let b = block(2);
    assert_eq!(is_block_mutated(&b, true), None);
    let with_root = |txdata: Vec<Transaction>| {
        let mut blk = Block { header: b.header, txdata };
        blk.header.merkle_root = blk.compute_merkle_root().unwrap();
        blk
    };
    // No coinbase first: a 64-byte transaction (base size) makes the block mutated.
    let mut short = spend(3, false);
    short.output[0].script_pubkey = ScriptBuf::from_bytes(vec![0x51; 4]);
    assert_eq!(short.base_size(), 64);
    let no_coinbase = with_root(vec![spend(1, false), short.clone()]);
    assert_eq!(is_block_mutated(&no_coinbase, true), Some(Mutation::SixtyFourByteTransaction));
    assert_eq!(is_block_mutated(&with_root(vec![spend(1, false), spend(2, false)]), true), None);
    // With a coinbase the 64-byte rule does not apply.
    let mut cb_only = b.txdata[0].clone();
    cb_only.input[0].witness = Witness::new();
    cb_only.output.truncate(1);
    assert_eq!(is_block_mutated(&with_root(vec![cb_only.clone(), short]), true), None);
    // A commitment without the 32-byte reserved value.
    let mut bare = b.txdata.clone();
    bare[0].input[0].witness = Witness::new();
    assert_eq!(is_block_mutated(&with_root(bare), true), Some(Mutation::WitnessNonceSize));
    // No commitment: no witness allowed anywhere.
    assert_eq!(
        is_block_mutated(&with_root(vec![cb_only.clone(), spend(1, true)]), true),
        Some(Mutation::UnexpectedWitness)
    );
    assert_eq!(is_block_mutated(&with_root(vec![cb_only, spend(1, false)]), true), None);
    // Empty: Core's root of nothing is zero.
    let mut empty = Block { header: b.header, txdata: vec![] };
    assert_eq!(is_block_mutated(&empty, true), Some(Mutation::MerkleRoot));
    empty.header.merkle_root = bitcoin::TxMerkleNode::all_zeros();
    assert_eq!(is_block_mutated(&empty, true), None);
}

#[test]
fn a_coinbase_only_block_needs_no_round_trip() {
    let b = block(0);
    let partial = PartialBlock::new(&compact_from_block(&b, 3)).unwrap();
    assert!(partial.missing().indexes.is_empty());
    assert_eq!(partial.fill_with(vec![], true).unwrap(), b);
}

#[test]
fn getblocktxn_answers_the_asked_transactions_and_punishes_out_of_range() {
    let b = block(4);
    let req = |indexes: Vec<u64>| BlockTransactionsRequest { block_hash: b.block_hash(), indexes };
    let answer = answer_getblocktxn(&b, &req(vec![0, 2, 4])).unwrap();
    assert_eq!(answer.block_hash, b.block_hash());
    assert_eq!(answer.transactions, vec![b.txdata[0].clone(), b.txdata[2].clone(), b.txdata[4].clone()]);

    let e = answer_getblocktxn(&b, &req(vec![1, 5])).unwrap_err();
    assert_eq!(e, CompactError::RequestIndexOutOfRange { index: 5, tx_count: 5 });
    assert!(e.is_misbehaviour());
    assert_eq!(e.to_string(), "getblocktxn with out-of-bounds tx indices: 5 of 5");

    let e = answer_getblocktxn(&b, &req(vec![1, 70_000])).unwrap_err();
    assert_eq!(e, CompactError::RequestIndexOverflow { index: 70_000 });
    assert_eq!(e.verdict(), Verdict::Ignore);
}

#[test]
fn getblocktxn_is_answered_with_blocktxn_up_to_ten_deep() {
    use GetBlockTxnReply::*;
    assert_eq!(getblocktxn_reply(100, 100, false), BlockTxn);
    assert_eq!(getblocktxn_reply(90, 100, false), BlockTxn, "Core: height >= tip - 10");
    assert_eq!(getblocktxn_reply(89, 100, false), FullBlock);
    assert_eq!(getblocktxn_reply(10, 100, true), BlockTxn, "the most recent block, whatever its height");
    assert_eq!(getblocktxn_reply(0, 5, false), BlockTxn, "no underflow near genesis");
    assert_eq!(getblocktxn_reply(101, 100, false), BlockTxn, "a block above the tip's height");
}

#[test]
fn getdata_cmpct_gets_a_cmpctblock_up_to_five_deep_when_the_tip_is_recent() {
    use CmpctGetDataReply::*;
    assert_eq!(getdata_cmpct_reply(95, 100, true), CmpctBlock);
    assert_eq!(getdata_cmpct_reply(94, 100, true), FullBlock);
    assert_eq!(getdata_cmpct_reply(100, 100, false), FullBlock, "old tip: the peer has no use for short ids");
    assert_eq!(getdata_cmpct_reply(0, 3, true), CmpctBlock);
}

#[test]
fn sendcmpct_records_version_2_only_and_punishes_a_bad_announce_byte() {
    let mut p = PeerCompact::default();
    assert_eq!(p.on_sendcmpct(0, 1), Ok(SendCmpctEffect::IgnoredVersion));
    assert_eq!(p.on_sendcmpct(1, 3), Ok(SendCmpctEffect::IgnoredVersion));
    assert_eq!(p, PeerCompact::default(), "version 1 and unknown versions change nothing");

    assert_eq!(p.on_sendcmpct(1, 2), Ok(SendCmpctEffect::Recorded));
    assert_eq!(p, PeerCompact { provides_cmpctblocks: true, requested_hb: true });
    assert_eq!(p.on_sendcmpct(0, 1), Ok(SendCmpctEffect::IgnoredVersion));
    assert!(p.requested_hb, "a later version 1 does not undo version 2");
    assert_eq!(p.on_sendcmpct_msg(&SendCmpct { send_compact: false, version: 2 }), SendCmpctEffect::Recorded);
    assert_eq!(p, PeerCompact { provides_cmpctblocks: true, requested_hb: false });

    let e = p.on_sendcmpct(2, 2).unwrap_err();
    assert_eq!(e, CompactError::InvalidAnnounce { value: 2 });
    assert!(e.is_misbehaviour());
    assert_eq!(p, PeerCompact { provides_cmpctblocks: true, requested_hb: false }, "unchanged");

    assert_eq!(sendcmpct_after_verack(70_013), None);
    assert_eq!(sendcmpct_after_verack(70_014), Some(SendCmpct { send_compact: false, version: 2 }));
}

#[test]
fn new_blocks_are_fast_announced_once_by_height_to_high_bandwidth_peers_only() {
    let mut fa = FastAnnounce::default();
    assert!(!fa.new_pow_valid_block(0, true), "Core starts at height 0: genesis never");
    assert!(fa.new_pow_valid_block(5, true));
    assert!(!fa.new_pow_valid_block(5, true), "same height again (a competing block)");
    assert!(!fa.new_pow_valid_block(4, true));
    assert!(!fa.new_pow_valid_block(6, false), "segwit inactive");
    assert!(!fa.new_pow_valid_block(6, true), "height 6 was recorded anyway");
    assert!(fa.new_pow_valid_block(7, true));

    let hb = PeerCompact { provides_cmpctblocks: true, requested_hb: true };
    assert!(fast_announce_to(&hb, 70_016, false, false, true));
    assert!(!fast_announce_to(&hb, 70_014, false, false, true), "too old a version");
    assert!(!fast_announce_to(&hb, 70_015, true, false, true), "disconnecting");
    assert!(!fast_announce_to(&hb, 70_015, false, true, true), "has the block");
    assert!(!fast_announce_to(&hb, 70_015, false, false, false), "lacks the parent");
    let lb = PeerCompact { requested_hb: false, ..hb };
    assert!(!fast_announce_to(&lb, 70_016, false, false, true), "low bandwidth");
}

fn cand(peer: PeerId, inbound: bool) -> HbCandidate {
    HbCandidate { peer, inbound, provides_cmpctblocks: true, fully_connected: true }
}

fn sel(select: PeerId, deselect: Option<PeerId>) -> HbChange {
    HbChange { select: Some(select), deselect }
}

#[test]
fn at_most_three_high_bandwidth_peers_the_oldest_dropped() {
    let mut hb = HighBandwidthPeers::new();
    assert_eq!(hb.maybe_select(cand(1, false), false), HbChange::default(), "policy off");
    let no_cmpct = HbCandidate { provides_cmpctblocks: false, ..cand(1, false) };
    assert_eq!(hb.maybe_select(no_cmpct, true), HbChange::default(), "peer never sent sendcmpct 2");
    assert_eq!(hb.peers().count(), 0);

    assert_eq!(hb.maybe_select(cand(1, false), true), sel(1, None));
    assert_eq!(hb.maybe_select(cand(2, false), true), sel(2, None));
    assert_eq!(hb.maybe_select(cand(3, false), true), sel(3, None));
    assert_eq!(hb.maybe_select(cand(4, false), true), sel(4, Some(1)));
    assert_eq!(hb.peers().collect::<Vec<_>>(), vec![2, 3, 4]);
    assert!(!hb.is_selected(1) && hb.is_selected(2));

    // Selecting a chosen peer again moves it to the newest place, sending nothing.
    assert_eq!(hb.maybe_select(cand(2, false), true), HbChange::default());
    assert_eq!(hb.maybe_select(cand(5, false), true), sel(5, Some(3)));
    assert_eq!(hb.peers().collect::<Vec<_>>(), vec![4, 2, 5]);

    // Not fully connected: not added.
    let leaving = HbCandidate { fully_connected: false, ..cand(6, false) };
    assert_eq!(hb.maybe_select(leaving, true), HbChange::default());
    assert_eq!(hb.peers().count(), 3);
}

#[test]
fn an_inbound_peer_never_pushes_out_the_last_outbound_one() {
    let mut hb = HighBandwidthPeers::new();
    hb.maybe_select(cand(1, false), true);
    hb.maybe_select(cand(2, true), true);
    hb.maybe_select(cand(3, true), true);
    // The oldest is the only outbound: it moves to second place and inbound 2 goes.
    assert_eq!(hb.maybe_select(cand(4, true), true), sel(4, Some(2)));
    assert_eq!(hb.peers().collect::<Vec<_>>(), vec![1, 3, 4]);
    assert_eq!(hb.maybe_select(cand(5, true), true), sel(5, Some(3)));
    assert_eq!(hb.peers().collect::<Vec<_>>(), vec![1, 4, 5]);
    // An outbound newcomer gets no such care for others: the oldest goes, outbound or not.
    assert_eq!(hb.maybe_select(cand(6, false), true), sel(6, Some(1)));
    // With two outbound peers an inbound newcomer may push out the oldest outbound.
    hb.maybe_select(cand(7, false), true);
    assert_eq!(hb.peers().collect::<Vec<_>>(), vec![5, 6, 7]);
    assert_eq!(hb.maybe_select(cand(8, true), true), sel(8, Some(5)));
    assert_eq!(hb.maybe_select(cand(9, true), true), sel(9, Some(6)));
}

#[test]
fn a_gone_peer_keeps_its_place_but_is_sent_nothing_and_not_protected() {
    let mut hb = HighBandwidthPeers::new();
    hb.maybe_select(cand(1, false), true);
    hb.maybe_select(cand(2, true), true);
    hb.maybe_select(cand(3, true), true);
    hb.closed(1);
    assert!(!hb.is_selected(1));
    assert_eq!(hb.peers().collect::<Vec<_>>(), vec![2, 3], "Core keeps the id until pushed out");
    // The gone outbound peer is not kept: it is dropped, and nothing is sent to it.
    assert_eq!(hb.maybe_select(cand(4, true), true), sel(4, None));
    assert_eq!(hb.peers().collect::<Vec<_>>(), vec![2, 3, 4]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any bytes that decode as a `cmpctblock` give a PartialBlock or an error, never a panic,
    /// and any `blocktxn` bytes then fill it or fail cleanly. The bytes are real messages with
    /// random bytes overwritten and the end cut, so that most still decode.
    #[test]
    fn hostile_bytes_never_panic(spends in 0u8..6,
                                 edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
                                 cut in any::<usize>(), cut_it in any::<bool>(), noise in proptest::collection::vec(any::<u8>(), 0..300)) {
        let b = block(spends);
        let c = compact_from_block(&b, 11);
        let mutate = |mut bytes: Vec<u8>| {
            let len = bytes.len();
            for (at, v) in &edits {
                bytes[at % len] = *v;
            }
            if cut_it {
                bytes.truncate(cut % (len + 1));
            }
            bytes
        };
        let txn = BlockTxn { transactions: answer_getblocktxn(&b, &PartialBlock::new(&c).unwrap().missing()).unwrap() };
        for (cmpct_bytes, txn_bytes) in [(mutate(serialize(&c)), mutate(serialize(&txn))), (noise.clone(), noise.clone())] {
            if let Ok(c) = deserialize::<CmpctBlock>(&cmpct_bytes)
                && let Ok(partial) = PartialBlock::new(&c)
            {
                let _ = partial.missing();
                if let Ok(txn) = deserialize::<BlockTxn>(&txn_bytes) {
                    let _ = partial.fill(&txn, true);
                }
            }
        }
    }

    /// Structured: real headers and transactions, arbitrary counts and prefilled indexes, any
    /// number of filling transactions. Never a panic; a block that comes out matches its header.
    #[test]
    fn arbitrary_shapes_never_panic(spends in 0u8..6, n_ids in 0usize..8,
                                    prefill in proptest::collection::vec(any::<u16>().prop_map(|i| i % 6), 0..5),
                                    n_fill in 0usize..10, dup in any::<bool>(), segwit in any::<bool>()) {
        let b = block(spends);
        let mut short_ids = ids(n_ids);
        if dup && n_ids > 1 {
            short_ids[1] = short_ids[0];
        }
        let prefilled = prefill.iter().map(|i| (*i, b.txdata[0].clone())).collect();
        if let Ok(partial) = PartialBlock::new(&cmpct(b.header, short_ids, prefilled)) {
            let missing = partial.missing();
            prop_assert!(missing.indexes.iter().all(|i| usize::try_from(*i).unwrap() < partial.tx_count()));
            let fill: Vec<Transaction> = b.txdata.iter().cycle().take(n_fill).cloned().collect();
            if let Ok(rebuilt) = partial.fill_with(fill, segwit) {
                prop_assert!(rebuilt.check_merkle_root());
            }
        }
        let req = BlockTransactionsRequest { block_hash: b.block_hash(), indexes: prefill.iter().map(|i| u64::from(*i)).collect() };
        let _ = answer_getblocktxn(&b, &req);
    }

    /// The high-bandwidth set never holds more than three peers, whatever the sequence.
    #[test]
    fn never_more_than_three_high_bandwidth_peers(ops in proptest::collection::vec((0u64..8, any::<bool>(), any::<bool>(), any::<bool>()), 0..60)) {
        let mut hb = HighBandwidthPeers::new();
        let mut selected = std::collections::BTreeSet::new();
        for (peer, inbound, close, full) in ops {
            if close {
                hb.closed(peer);
                selected.remove(&peer);
                continue;
            }
            let change = hb.maybe_select(HbCandidate { peer, inbound, provides_cmpctblocks: true, fully_connected: full }, true);
            if let Some(p) = change.select { selected.insert(p); }
            if let Some(p) = change.deselect { selected.remove(&p); }
            prop_assert!(hb.peers().count() <= MAX_HIGH_BANDWIDTH_PEERS);
            // The messages sent track the set exactly (Core's m_bip152_highbandwidth_to).
            prop_assert_eq!(hb.peers().collect::<std::collections::BTreeSet<_>>(), selected.clone());
        }
    }
}
