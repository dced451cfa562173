//! Code shared by the fuzz targets: a reader that turns the fuzz input into numbers (zeros
//! once it runs out, so every input decodes), the header tree's invariants, regtest chains
//! mined once per process, and the real header files of the shared test data.

#![allow(dead_code)]

use std::path::PathBuf;

use bitcoin::block::{Header, Version};
use bitcoin::consensus::deserialize;
use bitcoin::hash_types::TxMerkleNode;
use bitcoin::hashes::Hash;
use btcloop::engine::chain::mine::mine_child;
use btcloop::engine::chain::params::ChainParams;
use btcloop::engine::chain::pow::{check_proof_of_work, work_of};
use btcloop::engine::chain::tree::HeaderTree;

/// Reads numbers off the fuzz input, little endian; past the end every read is zero.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Up to `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let b = self.bytes(N);
        out[..b.len()].copy_from_slice(b);
        out
    }

    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    pub fn i32(&mut self) -> i32 {
        i32::from_le_bytes(self.array())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// A number below `n` (`n` > 0), from one or two bytes.
    pub fn below(&mut self, n: usize) -> usize {
        if n <= 256 { usize::from(self.u8()) % n } else { usize::from(self.u16()) % n }
    }
}

/// Checks what must hold of any header tree, whatever was fed to it: every entry's parent
/// comes before it and links to it by hash, heights and cumulative work add up, the map finds
/// every entry, the best chain runs from genesis to the tip through parents, and no entry has
/// more work than the tip; every entry has proof of work.
pub fn check_tree(tree: &HeaderTree, params: &ChainParams) {
    check_tree_with(tree, params, true);
}

/// [`check_tree`]; with `deep` false it neither hashes the headers again nor checks their
/// proof of work (a tree loaded from a file is not validated; and hashing thousands of
/// headers per input slows the sequence targets down tenfold).
pub fn check_tree_with(tree: &HeaderTree, params: &ChainParams, deep: bool) {
    let entries = tree.entries();
    assert_eq!(entries.len(), tree.len());
    let genesis = &entries[0];
    assert_eq!(genesis.hash, params.genesis_hash());
    assert_eq!(genesis.height, 0);
    let tip = tree.tip();
    for (i, e) in entries.iter().enumerate() {
        assert!(!deep || e.hash == e.header.block_hash(), "entry {i}: stored hash is not the header's");
        let (id, found) = tree.get(&e.hash).expect("every entry is found by its hash");
        assert_eq!(id as usize, i);
        assert_eq!(found.hash, e.hash);
        assert!(e.chain_work <= tip.chain_work, "entry {i} (height {}) has more work than the tip", e.height);
        if i == 0 {
            continue;
        }
        assert!((e.parent as usize) < i, "entry {i}: parent {} is not older", e.parent);
        let p = &entries[e.parent as usize];
        assert_eq!(e.header.prev_blockhash, p.hash, "entry {i}: parent link");
        assert_eq!(e.height, p.height + 1, "entry {i}: height");
        assert_eq!(e.chain_work, p.chain_work + work_of(e.header.bits), "entry {i}: chain work");
        assert!(
            !deep || check_proof_of_work(e.hash, e.header.bits, params),
            "entry {i}: accepted without proof of work"
        );
    }
    let height = tree.height();
    assert_eq!(tip.height, height);
    assert_eq!(tree.at_height(height).map(|e| e.hash), Some(tip.hash));
    assert!(tree.at_height(height + 1).is_none());
    for h in 0..=height {
        let e = tree.at_height(h).expect("the best chain has every height up to the tip");
        assert_eq!(e.height, h);
        let id = tree.best_id(h).expect("best_id at every height");
        assert!(tree.on_best_chain(id));
        if h > 0 {
            assert_eq!(Some(e.parent), tree.best_id(h - 1), "best chain at {h} does not link to {}", h - 1);
        }
    }
}

/// `n` regtest headers on top of `parent`, `spacing` seconds apart, each salted by `salt`.
pub fn mine_spaced(params: &ChainParams, parent: &Header, n: usize, spacing: u32, salt: u64) -> Vec<Header> {
    let mut out = Vec::with_capacity(n);
    let mut prev = *parent;
    for i in 0..n {
        let h = mine_child(params, &prev, prev.time.wrapping_add(spacing), salt.wrapping_mul(1_000_003) ^ i as u64);
        out.push(h);
        prev = h;
    }
    out
}

/// A fresh directory for one run of a file-loading target (in `/dev/shm` when there is one,
/// so that syncing costs nothing), removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(target: &str) -> TempDir {
        let base =
            if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let dir = base.join(format!("btcloop-fuzz-{target}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Re-mines `h` (its nonce) at its own bits, if its bits are regtest-easy; returns whether it
/// now has proof of work (a hard target is left alone: a few hundred tries at most).
pub fn remine(params: &ChainParams, h: &mut Header) -> bool {
    for _ in 0..512 {
        if check_proof_of_work(h.block_hash(), h.bits, params) {
            return true;
        }
        h.nonce = h.nonce.wrapping_add(1);
    }
    false
}

/// A header built from raw fields on top of `parent`.
pub fn child(parent: &Header, version: i32, time: u32, salt: u64) -> Header {
    let mut root = [0u8; 32];
    root[..8].copy_from_slice(&salt.to_le_bytes());
    Header {
        version: Version::from_consensus(version),
        prev_blockhash: parent.block_hash(),
        merkle_root: TxMerkleNode::from_byte_array(root),
        time,
        bits: parent.bits,
        nonce: 0,
    }
}

/// Changes one field of `h` by the input: `field` picks which, `value` what to put in.
pub fn mutate(h: &mut Header, field: u8, value: u32) {
    match field % 6 {
        0 => h.version = Version::from_consensus(value as i32),
        1 => h.time = value,
        2 => h.time = h.time.wrapping_add(value % 7200).wrapping_sub(3600),
        3 => h.bits = bitcoin::CompactTarget::from_consensus(value),
        4 => h.nonce = value,
        _ => {
            let mut prev = h.prev_blockhash.to_byte_array();
            prev[(value % 32) as usize] ^= (value >> 8) as u8 | 1;
            h.prev_blockhash = bitcoin::BlockHash::from_byte_array(prev);
        }
    }
}

/// The real headers in `name` (`$BTCLOOP_TEST_DATA`, else the repository's `tests/data`), or
/// `None` if the file is not there (the targets then fuzz regtest only).
pub fn real_headers(name: &str) -> Option<Vec<Header>> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut dirs: Vec<PathBuf> = std::env::var_os("BTCLOOP_TEST_DATA").map(PathBuf::from).into_iter().collect();
    dirs.push(manifest.join("../tests/data"));
    let raw = dirs.iter().find_map(|d| std::fs::read(d.join(name)).ok())?;
    raw.chunks_exact(80).map(|c| deserialize::<Header>(c).ok()).collect()
}
