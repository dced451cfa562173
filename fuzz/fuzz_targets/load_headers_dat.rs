//! Fuzzes loading `headers.dat`: the input is written as the file, then opened by the store
//! (`HeaderStore::open`) and by the chain (`Chain::open`, which rebuilds the tree from it).
//!
//! Input: byte 0 is a control byte: its low bit asks for every whole record's checksum to be
//! set right (records are checksummed over their content and position, so without it nearly
//! every mutated record is a corrupt tail and nothing past it is read); bit 1 asks for this
//! network's file header to be put in front. The rest is the file.
//!
//! Checks: no panic and no unbounded allocation; a bad file header is an error that leaves the
//! file as it was; otherwise the store reads a run of records and truncates the rest, so that
//! opening again reads the same records with nothing dropped, and the chain built from the file
//! places every record in the tree or counts it as an orphan, its tree holding nothing but the
//! file's headers and obeying the tree's invariants (all but proof of work, which loading does
//! not check today).

#![no_main]

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use bitcoin::hashes::{Hash, HashEngine, sha256d};
use bitcoin::pow::Work;
use btcloop::engine::chain::accept::Chain;
use btcloop::engine::chain::params::ChainParams;
use btcloop::engine::chain::store::{HeaderStore, Loaded, StoreError};
use btcloop::base::chainparams::Network;
use libfuzzer_sys::fuzz_target;

mod common;
use common::{TempDir, check_tree_with};

/// The store's layout (`src/chain/store.rs`): a 24-byte file header, then 84-byte records of
/// header + checksum.
const FILE_HEADER_LEN: usize = 24;
const RECORD_LEN: usize = 84;

/// This network's file header, as the store itself writes it.
fn file_header(dir: &Path, params: &ChainParams) -> Vec<u8> {
    static HEAD: OnceLock<Vec<u8>> = OnceLock::new();
    HEAD.get_or_init(|| {
        let path = dir.join("written.dat");
        let _ = std::fs::remove_file(&path);
        let (mut store, _) = HeaderStore::open(&path, params.network.magic()).expect("new store");
        store.append(&[params.genesis]);
        store.flush().expect("flush");
        let bytes = std::fs::read(&path).expect("read");
        let _ = std::fs::remove_file(&path);
        bytes[..FILE_HEADER_LEN].to_vec()
    })
    .clone()
}

/// Sets each whole record's checksum: sha256d(index LE ‖ header), first four bytes.
fn fix_checksums(file: &mut [u8]) {
    let Some(records) = file.get_mut(FILE_HEADER_LEN..) else { return };
    for (i, rec) in records.chunks_exact_mut(RECORD_LEN).enumerate() {
        let mut engine = sha256d::Hash::engine();
        engine.input(&(i as u64).to_le_bytes());
        engine.input(&rec[..80]);
        let sum = sha256d::Hash::from_engine(engine).to_byte_array();
        rec[80..].copy_from_slice(&sum[..4]);
    }
}

/// The one call into the store.
fn open_store(path: &Path, magic: [u8; 4]) -> Result<Loaded, StoreError> {
    HeaderStore::open(path, magic).map(|(_, loaded)| loaded)
}

fn run(dir: &Path, data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else { return };
    let params = ChainParams::new(Network::Regtest);
    let magic = params.network.magic();
    let mut file = if control & 2 != 0 { file_header(dir, &params) } else { Vec::new() };
    file.extend_from_slice(rest);
    if control & 1 != 0 {
        fix_checksums(&mut file);
    }
    let path = dir.join("headers.dat");
    std::fs::write(&path, &file).expect("write headers.dat");

    let loaded = match open_store(&path, magic) {
        Ok(l) => l,
        Err(e) => {
            assert!(
                matches!(
                    e,
                    StoreError::BadFileHeader { .. }
                        | StoreError::UnknownVersion { .. }
                        | StoreError::WrongNetwork { .. }
                        | StoreError::Damaged { .. }
                ),
                "unexpected error: {e}"
            );
            assert_eq!(std::fs::read(&path).expect("read back"), file, "a rejected file was changed");
            return;
        }
    };
    let n = loaded.headers.len();
    let len = std::fs::metadata(&path).expect("stat").len() as usize;
    if file.len() < FILE_HEADER_LEN {
        // Empty or a torn file header: nothing read, nothing written until the first flush.
        assert_eq!(n, 0);
        assert_eq!(len, file.len());
        assert_eq!(loaded.dropped_tail_bytes as usize, file.len());
        return;
    }
    assert_eq!(len, FILE_HEADER_LEN + n * RECORD_LEN, "file not truncated to its good records");
    assert_eq!(loaded.dropped_tail_bytes as usize, file.len() - len, "dropped bytes");

    let kept = std::fs::read(&path).expect("read back");
    let (chain, restored) = match Chain::open(params, Work::from_be_bytes([0; 32]), &path) {
        Ok(x) => x,
        Err(e) => {
            // A stored header without its proof of work refuses the start, file untouched.
            assert!(matches!(e, StoreError::BadProofOfWork { .. }), "unexpected error on reopen: {e}");
            assert_eq!(std::fs::read(&path).expect("read back"), kept, "a refused file was changed");
            return;
        }
    };
    assert_eq!(restored.dropped_tail_bytes, 0, "the second open dropped more");
    // Records already in the tree (genesis, duplicates) are neither counted nor added.
    assert!(restored.headers + restored.orphans <= n, "more placed than stored");
    assert_eq!(chain.tree().len(), 1 + restored.headers, "restored count differs from the tree");
    let in_file: std::collections::HashSet<_> = loaded.headers.iter().map(|h| h.block_hash()).collect();
    assert!(chain.tree().entries()[1..].iter().all(|e| in_file.contains(&e.hash)), "a tree entry not in the file");
    // Proof of work is checked on load now, so the deep check (hashes and work) must hold.
    check_tree_with(chain.tree(), chain.params(), true);
}

fuzz_target!(|data: &[u8]| {
    static DIR: Mutex<Option<TempDir>> = Mutex::new(None);
    let mut dir = DIR.lock().unwrap_or_else(|e| e.into_inner());
    let dir = dir.get_or_insert_with(|| TempDir::new("headers"));
    run(&dir.0, data);
});
