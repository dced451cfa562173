//! The validation thread against Core's kernel: real regtest blocks made by
//! [`crate::engine::chain::blockgen`], fed through the thread, with the events it reports.

use std::sync::Arc;
use std::time::Duration;

use bitcoin::consensus::serialize;
use bitcoin::hashes::Hash;
use crossbeam_channel::Receiver;

use super::*;
use crate::base::chainparams::Network;
use crate::base::peer::PeerId;
use crate::engine::chain::blockgen::{BlockGen, assemble, coinbase, subsidy};
use crate::engine::chain::params::ChainParams;

const WAIT: Duration = Duration::from_secs(60);

fn start(dir: &std::path::Path) -> (Validation, Receiver<ValidationEvent>) {
    let kernel = Kernel::open(dir, Network::Regtest).expect("kernel opens");
    let (tx, rx) = crossbeam_channel::unbounded();
    let v = Validation::spawn(kernel, FlushPolicy::default(), move |e| {
        let _ = tx.send(e);
    })
    .expect("thread starts");
    (v, rx)
}

fn chain(n: u32, spends: usize) -> Vec<bitcoin::Block> {
    let mut g = BlockGen::new(ChainParams::new(Network::Regtest));
    let t0 = 1_700_000_000;
    (0..n).map(|i| g.next_block(t0 + i, spends)).collect()
}

fn submit(v: &Validation, b: &bitcoin::Block, from: Option<PeerId>) {
    v.submit(ValidationRequest::Block { hash: b.block_hash(), bytes: Arc::new(serialize(b)), from, announce: true })
        .expect("queued");
}

/// Waits for the verdict on `hash`, collecting the tips reported meanwhile.
fn verdict(
    rx: &Receiver<ValidationEvent>,
    hash: bitcoin::BlockHash,
    tips: &mut Vec<(bitcoin::BlockHash, u32)>,
) -> BlockOutcome {
    loop {
        match rx.recv_timeout(WAIT).expect("an event") {
            ValidationEvent::Block { hash: h, outcome, .. } if h == hash => return outcome,
            ValidationEvent::Tip { hash, height, .. } => tips.push((hash, height)),
            _ => {}
        }
    }
}

#[test]
fn valid_blocks_are_stored_connected_and_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocks = chain(120, 2);
    let (v, rx) = start(dir.path());
    let mut tips = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        submit(&v, b, Some(7));
        // The new tip is reported before the verdict (a `submitblock` answered by the verdict
        // sees it).
        assert_eq!(verdict(&rx, b.block_hash(), &mut tips), BlockOutcome::Stored);
        assert_eq!(tips.last(), Some(&(b.block_hash(), i as u32 + 1)));
    }
    // The same block again is a duplicate.
    submit(&v, &blocks[5], None);
    assert_eq!(verdict(&rx, blocks[5].block_hash(), &mut Vec::new()), BlockOutcome::Duplicate);
    // Read back: with witnesses byte for byte, without them as Core strips them, and a block
    // that is not stored is `None`.
    let b = &blocks[110];
    for (form, want) in [(BlockForm::Witness, serialize(b)), (BlockForm::Legacy, legacy(b))] {
        v.submit(ValidationRequest::Read { peer: 3, hash: b.block_hash(), form }).expect("queued");
        let got = loop {
            if let ValidationEvent::Read { peer, hash, bytes, .. } = rx.recv_timeout(WAIT).expect("read") {
                assert_eq!((peer, hash), (3, b.block_hash()));
                break bytes;
            }
        };
        let got = got.expect("stored");
        assert_eq!(got.bytes, want, "{form:?}");
        assert_eq!(got.checksum, crate::base::transport::checksum_of(&want));
    }
    assert!(
        blocks[110].txdata.iter().any(|t| t.input.iter().any(|i| !i.witness.is_empty())),
        "the block has witnesses"
    );
    let unknown = bitcoin::BlockHash::from_byte_array([7; 32]);
    v.submit(ValidationRequest::Read { peer: 3, hash: unknown, form: BlockForm::Witness }).expect("queued");
    loop {
        if let ValidationEvent::Read { bytes, .. } = rx.recv_timeout(WAIT).expect("read") {
            assert!(bytes.is_none());
            break;
        }
    }
}

/// The block files the kernel writes (obfuscated with its own `xor.dat`) are indexed and read
/// back raw, byte for byte, including blocks stored out of order and across a reopen.
#[test]
fn the_kernels_block_files_are_served_raw() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocks = chain(60, 3);
    let (mut v, rx) = start(dir.path());
    // Headers first, then the blocks in reverse, as a parallel download stores them.
    v.submit(ValidationRequest::Headers(blocks.iter().map(|b| b.header).collect())).expect("queued");
    for b in blocks.iter().rev() {
        submit(&v, b, Some(1));
    }
    let last = blocks.last().expect("blocks").block_hash();
    let mut tips = Vec::new();
    while tips.last().map(|t: &(bitcoin::BlockHash, u32)| t.0) != Some(last) {
        if let ValidationEvent::Tip { hash, height, .. } = rx.recv_timeout(WAIT).expect("tips") {
            tips.push((hash, height));
        }
    }
    v.stop();
    let kernel = Kernel::open(dir.path(), Network::Regtest).expect("reopens");
    let mut files = BlockFiles::new(&kernel.blocks_dir(), kernel.magic());
    let key = std::fs::read(kernel.blocks_dir().join("xor.dat")).expect("the kernel's key");
    assert!(key.iter().any(|b| *b != 0), "the kernel obfuscates its block files");
    assert!(files.scan(1000));
    assert_eq!(files.len(), blocks.len() + 1, "the blocks and the genesis block");
    for b in &blocks {
        assert_eq!(files.read(&b.block_hash()), Ok(serialize(b)));
    }
}

/// A block extending the tip out of initial download is reported PoW-valid, with its
/// `cmpctblock`, before its verdict, only when the request asks for it (a peer wants
/// high-bandwidth announcements).
#[test]
fn pow_valid_blocks_get_their_compact_form_only_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as u32;
    let mut g = BlockGen::new(ChainParams::new(Network::Regtest));
    let blocks: Vec<bitcoin::Block> = (0..4).map(|i| g.next_block(now - 100 + i, 2)).collect();
    let (v, rx) = start(dir.path());
    let mut pow_valid = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let announce = i != 3;
        v.submit(ValidationRequest::Block {
            hash: b.block_hash(),
            bytes: Arc::new(serialize(b)),
            from: None,
            announce,
        })
        .expect("queued");
        loop {
            match rx.recv_timeout(WAIT).expect("an event") {
                ValidationEvent::PowValid { block, cmpct } => {
                    assert_eq!(cmpct.compact_block.header, block.header);
                    pow_valid.push(block.block_hash());
                }
                ValidationEvent::Block { hash, outcome, .. } if hash == b.block_hash() => {
                    assert_eq!(outcome, BlockOutcome::Stored);
                    break;
                }
                _ => {}
            }
        }
    }
    // The first block leaves initial download (its time is recent); the next two are
    // announced; the last was not asked for.
    assert_eq!(pow_valid, vec![blocks[1].block_hash(), blocks[2].block_hash()]);
}

fn legacy(b: &bitcoin::Block) -> Vec<u8> {
    let mut b = b.clone();
    for tx in &mut b.txdata {
        for i in &mut tx.input {
            i.witness.clear();
        }
    }
    serialize(&b)
}

#[test]
fn invalid_blocks_get_cores_result_and_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let params = ChainParams::new(Network::Regtest);
    let blocks = chain(3, 0);
    let (v, rx) = start(dir.path());
    for b in &blocks {
        submit(&v, b, None);
        assert_eq!(verdict(&rx, b.block_hash(), &mut Vec::new()), BlockOutcome::Stored);
    }
    let tip = blocks[2].header;
    // A coinbase paying one satoshi too much.
    let greedy =
        assemble(&params, &tip, tip.time + 1, vec![coinbase(4, subsidy(&params, 4) + bitcoin::Amount::from_sat(1))]);
    submit(&v, &greedy, Some(1));
    match verdict(&rx, greedy.block_hash(), &mut Vec::new()) {
        BlockOutcome::Invalid(inv) => {
            assert_eq!(inv.kind, InvalidKind::Consensus);
            assert!(inv.reason.starts_with("bad-cb-amount"), "reason: {:?}", inv.reason);
        }
        other => panic!("greedy coinbase: {other:?}"),
    }
    // A block whose merkle root does not match its transactions (mined after the change).
    let mut bad = assemble(&params, &tip, tip.time + 2, vec![coinbase(4, subsidy(&params, 4))]);
    bad.header.merkle_root = bitcoin::TxMerkleNode::from_byte_array([1; 32]);
    let bad = assemble_header(&params, bad);
    submit(&v, &bad, Some(2));
    match verdict(&rx, bad.block_hash(), &mut Vec::new()) {
        BlockOutcome::Invalid(inv) => {
            assert_eq!(inv.kind, InvalidKind::Mutated);
            assert!(inv.reason.starts_with("bad-txnmrklroot"), "reason: {:?}", inv.reason);
        }
        other => panic!("bad merkle root: {other:?}"),
    }
    // A block on an unknown parent.
    let orphan_parent = assemble(&params, &tip, tip.time + 3, vec![coinbase(4, subsidy(&params, 4))]);
    let orphan = assemble(&params, &orphan_parent.header, tip.time + 4, vec![coinbase(5, subsidy(&params, 5))]);
    submit(&v, &orphan, Some(3));
    match verdict(&rx, orphan.block_hash(), &mut Vec::new()) {
        BlockOutcome::Invalid(inv) => assert_eq!(inv.kind, InvalidKind::MissingPrev),
        other => panic!("orphan: {other:?}"),
    }
    // Garbage is refused without touching the kernel.
    v.submit(ValidationRequest::Block {
        hash: bitcoin::BlockHash::all_zeros(),
        bytes: Arc::new(vec![1, 2, 3]),
        from: None,
        announce: false,
    })
    .expect("queued");
    assert!(matches!(verdict(&rx, bitcoin::BlockHash::all_zeros(), &mut Vec::new()), BlockOutcome::Invalid(_)));
    // None of them moved the tip.
    submit(&v, &blocks[2], None);
    assert_eq!(verdict(&rx, blocks[2].block_hash(), &mut Vec::new()), BlockOutcome::Duplicate);
}

/// Re-mines `b`'s header after it was altered.
fn assemble_header(params: &ChainParams, mut b: bitcoin::Block) -> bitcoin::Block {
    while !crate::engine::chain::pow::check_proof_of_work(b.header.block_hash(), b.header.bits, params) {
        b.header.nonce = b.header.nonce.wrapping_add(1);
    }
    b
}

#[test]
fn headers_first_then_blocks_out_of_order_connect_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocks = chain(40, 1);
    let (v, rx) = start(dir.path());
    v.submit(ValidationRequest::Headers(blocks.iter().map(|b| b.header).collect())).expect("queued");
    // Second half first: stored, not connected.
    let mut tips = Vec::new();
    for b in blocks[20..].iter().rev() {
        submit(&v, b, None);
        assert_eq!(verdict(&rx, b.block_hash(), &mut tips), BlockOutcome::Unconnected);
    }
    assert!(tips.is_empty(), "nothing connects without the first half: {tips:?}");
    for b in &blocks[..20] {
        submit(&v, b, None);
        assert_eq!(verdict(&rx, b.block_hash(), &mut tips), BlockOutcome::Stored);
    }
    // The twentieth block connects all forty; its tip came before its verdict.
    assert_eq!(tips.last(), Some(&(blocks[39].block_hash(), 40)));
    // A header on an unknown parent is refused with Core's result.
    let params = ChainParams::new(Network::Regtest);
    let stray = assemble(
        &params,
        &assemble(&params, &blocks[39].header, 1_800_000_000, vec![coinbase(41, subsidy(&params, 41))]).header,
        1_800_000_001,
        vec![coinbase(42, subsidy(&params, 42))],
    );
    v.submit(ValidationRequest::Headers(vec![stray.header])).expect("queued");
    loop {
        if let ValidationEvent::HeaderInvalid { hash, invalid } = rx.recv_timeout(WAIT).expect("event") {
            assert_eq!(hash, stray.block_hash());
            assert_eq!(invalid.kind, InvalidKind::MissingPrev);
            break;
        }
    }
}

#[test]
fn a_restart_keeps_what_was_validated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocks = chain(30, 1);
    {
        let (mut v, rx) = start(dir.path());
        for b in &blocks {
            submit(&v, b, None);
            assert_eq!(verdict(&rx, b.block_hash(), &mut Vec::new()), BlockOutcome::Stored);
        }
        v.stop();
    }
    let kernel = Kernel::open(dir.path(), Network::Regtest).expect("reopens");
    assert_eq!(kernel.tip(), (blocks[29].block_hash(), 30));
    let headers = kernel.active_headers_from(28);
    assert_eq!(
        headers.iter().map(|h| h.block_hash()).collect::<Vec<_>>(),
        vec![blocks[27].block_hash(), blocks[28].block_hash(), blocks[29].block_hash()]
    );
}

#[test]
fn a_flush_makes_blocks_durable_without_closing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocks = chain(25, 0);
    let mut kernel = Kernel::open(dir.path(), Network::Regtest).expect("opens");
    for b in &blocks[..20] {
        let kb = bitcoinkernel::Block::new(&serialize(b)).expect("decodes");
        assert!(kernel.chainman().expect("open").process_block(&kb).is_new_block());
    }
    kernel.flush().expect("flushes");
    assert_eq!(kernel.tip(), (blocks[19].block_hash(), 20));
    for b in &blocks[20..] {
        let kb = bitcoinkernel::Block::new(&serialize(b)).expect("decodes");
        assert!(kernel.chainman().expect("open").process_block(&kb).is_new_block());
    }
    assert_eq!(kernel.tip(), (blocks[24].block_hash(), 25));
}

#[test]
fn reject_reasons_come_from_cores_log_lines() {
    let lines = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        reject_reason(&lines(&["x", "ProcessNewBlock: AcceptBlock FAILED (bad-txnmrklroot, hashMerkleRoot mismatch)"])),
        "bad-txnmrklroot, hashMerkleRoot mismatch"
    );
    assert_eq!(
        reject_reason(&lines(&["Block validation error: bad-cb-amount, coinbase pays too much"])),
        "bad-cb-amount, coinbase pays too much"
    );
    assert_eq!(
        reject_reason(&lines(&["ConnectTip: ConnectBlock 00ab failed, bad-txns-inputs-missingorspent"])),
        "bad-txns-inputs-missingorspent"
    );
    assert_eq!(reject_reason(&lines(&["UpdateTip: new best=00"])), "");
}

#[test]
fn headers_handed_before_a_reopen_are_what_the_kernel_keeps() {
    // What the engine must expect of the kernel across a flush (close and reopen): headers
    // handed to it whose blocks it has not stored.
    let dir = tempfile::tempdir().expect("tempdir");
    let blocks = chain(30, 0);
    let mut kernel = Kernel::open(dir.path(), Network::Regtest).expect("opens");
    let cm = kernel.chainman().expect("open");
    for b in &blocks[..10] {
        let kb = bitcoinkernel::Block::new(&serialize(b)).expect("decodes");
        assert!(cm.process_block(&kb).is_new_block());
    }
    for b in &blocks[10..] {
        let kh = bitcoinkernel::BlockHeader::new(&serialize(&b.header)).expect("header");
        assert!(matches!(cm.process_block_header(&kh), Ok(bitcoinkernel::ProcessBlockHeaderResult::Valid)));
    }
    kernel.flush().expect("flushes");
    let cm = kernel.chainman().expect("open");
    let kept =
        blocks[10..].iter().filter(|b| cm.get_block_tree_entry(&kernel::from_hash(&b.block_hash())).is_some()).count();
    eprintln!("headers kept across a reopen: {kept} of 20");
    assert_eq!(kernel.tip(), (blocks[9].block_hash(), 10));
}
