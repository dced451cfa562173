use std::fs;
use std::time::Instant;

use bitcoin::block::Version;
use bitcoin::hashes::sha256d;
use bitcoin::{Network, TxMerkleNode};
use tempfile::TempDir;

use super::*;

/// Regtest message start.
const REGTEST: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];
/// Mainnet message start.
const MAIN: [u8; 4] = [0xf9, 0xbe, 0xb4, 0xd9];

const FH: u64 = FILE_HEADER_LEN as u64;
const REC: u64 = RECORD_LEN as u64;

fn genesis() -> Header {
    bitcoin::constants::genesis_block(Network::Regtest).header
}

/// `n` headers extending `parent`, each linked to the previous; `salt` tells branches apart.
fn extend(parent: &Header, n: usize, salt: u32) -> Vec<Header> {
    let mut out = Vec::with_capacity(n);
    let mut prev = *parent;
    for i in 0..n as u32 {
        let seed = [salt.to_le_bytes(), i.to_le_bytes()].concat();
        let header = Header {
            version: Version::from_consensus(0x2000_0000 | (i & 0xff) as i32),
            prev_blockhash: prev.block_hash(),
            merkle_root: TxMerkleNode::from_byte_array(sha256d::Hash::hash(&seed).to_byte_array()),
            time: prev.time + 600 + i % 7,
            bits: prev.bits,
            nonce: i.wrapping_mul(2_654_435_761) ^ salt,
        };
        out.push(header);
        prev = header;
    }
    out
}

/// Regtest genesis followed by `n - 1` linked headers.
fn chain(n: usize) -> Vec<Header> {
    let mut out = vec![genesis()];
    out.extend(extend(&genesis(), n - 1, 0));
    out
}

fn dir() -> TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Opens `path`, expecting success.
fn open_ok(path: &Path) -> (HeaderStore, Loaded) {
    HeaderStore::open(path, REGTEST).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// Writes `headers` to a new store at `path` in one flush.
fn write_store(path: &Path, headers: &[Header]) {
    let (mut store, loaded) = open_ok(path);
    assert!(loaded.headers.is_empty());
    store.append(headers);
    store.flush().expect("flush");
}

/// The bytes of a store holding exactly `headers`, written in one session.
fn clean_bytes(headers: &[Header]) -> Vec<u8> {
    let d = dir();
    let path = d.path().join("headers.dat");
    write_store(&path, headers);
    fs::read(&path).expect("read")
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).expect("read_dir").map(|e| e.expect("entry").file_name().to_string_lossy().into()).collect();
    names.sort();
    names
}

/// Deterministic pseudo-random bytes (xorshift64).
fn noise(n: usize, mut state: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[test]
fn encoding_matches_consensus_serialization() {
    for header in chain(50) {
        let bytes = encode_header(&header);
        assert_eq!(bytes.as_slice(), bitcoin::consensus::serialize(&header).as_slice());
        let mut record = [0u8; RECORD_LEN];
        record[..HEADER_LEN].copy_from_slice(&bytes);
        record[HEADER_LEN..].copy_from_slice(&checksum(7, &bytes));
        assert_eq!(decode_record(7, &record), Some(header));
        assert_eq!(decode_record(8, &record), None, "checksum binds the position");
    }
}

#[test]
fn new_store_writes_nothing_until_its_first_flush() {
    let d = dir();
    let path = d.path().join("headers.dat");
    let (mut store, loaded) = open_ok(&path);
    assert_eq!(loaded, Loaded { headers: vec![], dropped_tail_bytes: 0 });
    assert_eq!(store.len(), 0);
    assert!(store.is_empty());
    assert_eq!(store.path(), path);
    assert!(!path.exists(), "opening a new store must not touch the disk");
    store.flush().expect("empty flush");
    assert!(!path.exists(), "nothing to write, nothing written");
    let headers = chain(2);
    store.append(&headers);
    store.flush().expect("flush");
    let mut expected = b"btcloop-headers\0".to_vec();
    expected.extend_from_slice(&1u32.to_le_bytes());
    expected.extend_from_slice(&REGTEST);
    assert_eq!(fs::read(&path).expect("read")[..FILE_HEADER_LEN], expected[..]);
    assert_eq!(fs::read(&path).expect("read"), clean_bytes(&headers));
}

#[test]
fn creation_is_atomic_and_leaves_no_temp_file() {
    let d = dir();
    let path = d.path().join("headers.dat");
    // A temp file left by a crash during an earlier creation is replaced, not trusted.
    fs::write(d.path().join(".headers.dat.tmp"), b"half a file").expect("write");
    let (mut store, _) = open_ok(&path);
    store.append(&chain(1));
    store.flush().expect("flush");
    assert_eq!(file_names(d.path()), ["headers.dat"]);
    drop(store);
    open_ok(&path);
    assert_eq!(file_names(d.path()), ["headers.dat"]);
    assert_eq!(fs::metadata(&path).expect("stat").len(), FH + RECORD_LEN as u64);
}

#[test]
fn round_trip_10000_headers_over_several_flushes() {
    let d = dir();
    let path = d.path().join("headers.dat");
    let headers = chain(10_000);
    let (mut store, _) = open_ok(&path);
    let mut rest = headers.as_slice();
    for size in [1usize, 7, 2000, 333, 1659].into_iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (batch, tail) = rest.split_at(size.min(rest.len()));
        store.append(batch);
        assert_eq!(store.len() as usize, headers.len() - tail.len());
        store.flush().expect("flush");
        rest = tail;
    }
    assert_eq!(store.len(), 10_000);
    drop(store);
    assert_eq!(fs::metadata(&path).expect("stat").len(), FH + 10_000 * REC);

    let (store, loaded) = open_ok(&path);
    assert_eq!(loaded.dropped_tail_bytes, 0);
    assert_eq!(loaded.headers, headers);
    assert_eq!(store.len(), 10_000);
    assert_eq!(fs::read(&path).expect("read"), clean_bytes(&headers));
}

#[test]
fn interleaved_branches_keep_acceptance_order() {
    let main = chain(100);
    let fork_a = extend(&main[50], 30, 1);
    let fork_b = extend(&fork_a[10], 5, 2);
    // Every header's parent comes before it, branches interleaved.
    let mut order = Vec::new();
    order.extend_from_slice(&main[..60]);
    order.extend_from_slice(&fork_a[..15]);
    order.extend_from_slice(&main[60..80]);
    order.extend_from_slice(&fork_b);
    order.extend_from_slice(&fork_a[15..]);
    order.extend_from_slice(&main[80..]);

    let d = dir();
    let path = d.path().join("headers.dat");
    let (mut store, _) = open_ok(&path);
    for batch in order.chunks(17) {
        store.append(batch);
        store.flush().expect("flush");
    }
    drop(store);
    assert_eq!(open_ok(&path).1.headers, order);
}

#[test]
fn append_after_reopen_continues_the_file() {
    let d = dir();
    let path = d.path().join("headers.dat");
    let headers = chain(300);
    for part in headers.chunks(100) {
        let (mut store, loaded) = open_ok(&path);
        assert_eq!(loaded.dropped_tail_bytes, 0);
        let before = loaded.headers.len();
        assert_eq!(loaded.headers, headers[..before]);
        assert_eq!(store.len(), before as u64);
        store.append(part);
        assert_eq!(store.len(), (before + part.len()) as u64);
        store.flush().expect("flush");
    }
    let (_, loaded) = open_ok(&path);
    assert_eq!(loaded.headers, headers);
    assert_eq!(fs::read(&path).expect("read"), clean_bytes(&headers));
}

#[test]
fn torn_tail_at_every_offset_in_the_last_two_records_is_recovered() {
    let headers = chain(10);
    let full = clean_bytes(&headers);
    let n = headers.len() as u64;
    assert_eq!(full.len() as u64, FH + n * REC);
    for cut in (FH + (n - 2) * REC)..(FH + n * REC) {
        let d = dir();
        let path = d.path().join("headers.dat");
        fs::write(&path, &full[..cut as usize]).expect("write");

        let kept = ((cut - FH) / REC) as usize;
        let end = FH + kept as u64 * REC;
        let (mut store, loaded) = open_ok(&path);
        assert_eq!(loaded.headers, headers[..kept], "cut at {cut}");
        assert_eq!(loaded.dropped_tail_bytes, cut - end, "cut at {cut}");
        assert_eq!(store.len(), kept as u64);
        assert_eq!(fs::metadata(&path).expect("stat").len(), end, "tail truncated on disk");

        store.append(&headers[kept..]);
        store.flush().expect("flush");
        drop(store);
        assert_eq!(fs::read(&path).expect("read"), full, "clean file after recovery, cut at {cut}");
        let (_, again) = open_ok(&path);
        assert_eq!(again, Loaded { headers: headers.clone(), dropped_tail_bytes: 0 });
    }
}

#[test]
fn torn_file_header_is_recreated() {
    let headers = chain(3);
    let full = clean_bytes(&headers);
    for cut in 0..FILE_HEADER_LEN {
        let d = dir();
        let path = d.path().join("headers.dat");
        fs::write(&path, &full[..cut]).expect("write");
        let (mut store, loaded) = open_ok(&path);
        assert_eq!(loaded, Loaded { headers: vec![], dropped_tail_bytes: cut as u64 }, "cut at {cut}");
        store.append(&headers);
        store.flush().expect("flush");
        assert_eq!(fs::read(&path).expect("read"), full, "cut at {cut}");
    }
}

#[test]
fn empty_file_is_treated_as_new() {
    let d = dir();
    let path = d.path().join("headers.dat");
    fs::write(&path, b"").expect("write");
    let (mut store, loaded) = open_ok(&path);
    assert_eq!(loaded, Loaded { headers: vec![], dropped_tail_bytes: 0 });
    let headers = chain(5);
    store.append(&headers);
    store.flush().expect("flush");
    assert_eq!(fs::read(&path).expect("read"), clean_bytes(&headers));
}

#[test]
fn flipped_byte_in_the_last_write_drops_that_record_and_everything_after() {
    let headers = chain(20);
    let full = clean_bytes(&headers);
    for k in [0usize, 7, 19] {
        for byte in 0..RECORD_LEN {
            let d = dir();
            let path = d.path().join("headers.dat");
            let mut bytes = full.clone();
            bytes[FILE_HEADER_LEN + k * RECORD_LEN + byte] ^= 1 << (byte % 8);
            fs::write(&path, &bytes).expect("write");

            let (store, loaded) = open_ok(&path);
            let end = FH + k as u64 * REC;
            assert_eq!(loaded.headers, headers[..k], "record {k} byte {byte}");
            assert_eq!(loaded.dropped_tail_bytes, full.len() as u64 - end, "record {k} byte {byte}");
            assert_eq!(store.len(), k as u64);
            assert_eq!(fs::read(&path).expect("read"), full[..end as usize]);
        }
    }
}

#[test]
fn records_at_the_wrong_position_fail_their_checksum() {
    let headers = chain(10);
    let full = clean_bytes(&headers);
    let record = |i: usize| FILE_HEADER_LEN + i * RECORD_LEN..FILE_HEADER_LEN + (i + 1) * RECORD_LEN;

    // Two records swapped.
    let mut swapped = full.clone();
    swapped[record(3)].copy_from_slice(&full[record(4)]);
    swapped[record(4)].copy_from_slice(&full[record(3)]);
    // A stale copy of record 5 where record 6 should be.
    let mut stale = full.clone();
    stale[record(6)].copy_from_slice(&full[record(5)]);
    // The record section shifted by one byte (a write at the wrong offset).
    let mut shifted = full[..FILE_HEADER_LEN].to_vec();
    shifted.push(0);
    shifted.extend_from_slice(&full[FILE_HEADER_LEN..]);

    for (name, bytes, kept) in [("swapped", swapped, 3), ("stale", stale, 6), ("shifted", shifted, 0)] {
        let d = dir();
        let path = d.path().join("headers.dat");
        fs::write(&path, &bytes).expect("write");
        let (_, loaded) = open_ok(&path);
        assert_eq!(loaded.headers, headers[..kept], "{name}");
        assert_eq!(loaded.dropped_tail_bytes, bytes.len() as u64 - (FH + kept as u64 * REC), "{name}");
    }
}

#[test]
fn wrong_network_is_an_error_and_leaves_the_file_untouched() {
    let d = dir();
    let path = d.path().join("headers.dat");
    write_store(&path, &chain(3));
    let before = fs::read(&path).expect("read");
    let err = HeaderStore::open(&path, MAIN).expect_err("must refuse");
    match &err {
        StoreError::WrongNetwork { path: p, expected, found } => {
            assert_eq!(p, &path);
            assert_eq!(*expected, MAIN);
            assert_eq!(*found, REGTEST);
        }
        other => panic!("expected WrongNetwork, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()) && msg.contains("fabfb5da") && msg.contains("f9beb4d9"), "{msg}");
    assert_eq!(fs::read(&path).expect("read"), before);
}

#[test]
fn foreign_file_is_an_error_naming_the_path_and_left_untouched() {
    let cases: [(&str, Vec<u8>); 4] = [
        ("random", noise(1000, 0x9e37_79b9_7f4a_7c15)),
        ("text", b"this is somebody's important notes file, not a header store\n".to_vec()),
        ("short", b"hello".to_vec()),
        ("one wrong byte", {
            let mut b = clean_bytes(&chain(2));
            b[3] ^= 0x20;
            b
        }),
    ];
    for (name, bytes) in cases {
        let d = dir();
        let path = d.path().join("headers.dat");
        fs::write(&path, &bytes).expect("write");
        let err = HeaderStore::open(&path, REGTEST).expect_err(name);
        assert!(matches!(err, StoreError::BadFileHeader { .. }), "{name}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{name}: {msg}");
        assert!(msg.contains("not a btcloop header store file"), "{name}: {msg}");
        assert_eq!(fs::read(&path).expect("read"), bytes, "{name}: file must be untouched");
        assert_eq!(file_names(d.path()), ["headers.dat"], "{name}");
    }
}

#[test]
fn unknown_version_is_an_error_and_leaves_the_file_untouched() {
    let d = dir();
    let path = d.path().join("headers.dat");
    let mut bytes = clean_bytes(&chain(2));
    bytes[16..20].copy_from_slice(&2u32.to_le_bytes());
    fs::write(&path, &bytes).expect("write");
    let err = HeaderStore::open(&path, REGTEST).expect_err("must refuse");
    assert!(matches!(err, StoreError::UnknownVersion { version: 2, .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert_eq!(fs::read(&path).expect("read"), bytes);
}

#[test]
fn unflushed_headers_are_lost_and_flushed_ones_survive() {
    let d = dir();
    let path = d.path().join("headers.dat");
    let headers = chain(150);
    let (mut store, _) = open_ok(&path);
    store.append(&headers[..100]);
    store.flush().expect("flush");
    store.append(&headers[100..]);
    assert_eq!(store.len(), 150);
    drop(store); // a "crash": Drop does not flush.

    let (mut store, loaded) = open_ok(&path);
    assert_eq!(loaded, Loaded { headers: headers[..100].to_vec(), dropped_tail_bytes: 0 });
    // The lost headers can be appended again and get the right positions.
    store.append(&headers[100..]);
    store.flush().expect("flush");
    drop(store);
    assert_eq!(fs::read(&path).expect("read"), clean_bytes(&headers));
}

#[test]
fn flush_with_nothing_queued_is_a_no_op() {
    let d = dir();
    let path = d.path().join("headers.dat");
    let (mut store, _) = open_ok(&path);
    store.flush().expect("flush");
    assert!(!path.exists());
    store.append(&chain(3));
    store.flush().expect("flush");
    store.flush().expect("flush");
    store.flush().expect("flush");
    assert_eq!(fs::metadata(&path).expect("stat").len(), FH + 3 * RECORD_LEN as u64);
}

#[test]
fn missing_directory_is_an_io_error_naming_the_path() {
    let d = dir();
    let path = d.path().join("no-such-dir").join("headers.dat");
    let err = HeaderStore::open(&path, REGTEST).expect_err("must fail");
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

/// Timing of the node's pattern: 100,000 headers in 50 `headers`-sized batches, flushed after each;
/// then reopening the file. Prints figures, asserts only correctness.
#[test]
#[ignore = "timing printout; run with --ignored --nocapture"]
fn perf_100k_headers_in_50_batches() {
    let d = dir();
    let path = d.path().join("headers.dat");
    let headers = chain(100_000);

    let (mut store, _) = open_ok(&path);
    let start = Instant::now();
    let mut slowest_flush = std::time::Duration::ZERO;
    for batch in headers.chunks(2000) {
        store.append(batch);
        let t = Instant::now();
        store.flush().expect("flush");
        slowest_flush = slowest_flush.max(t.elapsed());
    }
    let write = start.elapsed();
    drop(store);

    let start = Instant::now();
    let (_, loaded) = open_ok(&path);
    let open = start.elapsed();
    assert_eq!(loaded.headers.len(), 100_000);
    assert_eq!(loaded.dropped_tail_bytes, 0);
    eprintln!(
        "header store: append+flush 100,000 headers in 50 batches: {:.1} ms ({:.2} ms/batch, slowest flush {:.2} ms); \
         open {} bytes: {:.1} ms",
        write.as_secs_f64() * 1e3,
        write.as_secs_f64() * 1e3 / 50.0,
        slowest_flush.as_secs_f64() * 1e3,
        fs::metadata(&path).expect("stat").len(),
        open.as_secs_f64() * 1e3,
    );
}

#[test]
fn damage_before_the_last_write_refuses_to_open_and_leaves_the_file() {
    let n = MAX_WRITE_RECORDS as usize + 200;
    let headers = chain(n);
    let full = clean_bytes(&headers);
    for k in [0usize, 1, 150, 199] {
        let d = dir();
        let path = d.path().join("headers.dat");
        let mut bytes = full.clone();
        bytes[FILE_HEADER_LEN + k * RECORD_LEN + 40] ^= 0x10;
        fs::write(&path, &bytes).expect("write");
        let err = HeaderStore::open(&path, REGTEST).expect_err("middle damage is refused");
        assert!(
            matches!(err, StoreError::Damaged { record, records, .. } if record == k as u64 && records == n as u64),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()) && text.contains("Corrupted header database"), "{text}");
        assert_eq!(fs::read(&path).expect("read"), bytes, "file untouched");
    }
}

#[test]
fn damage_within_the_last_write_is_a_torn_tail() {
    let n = MAX_WRITE_RECORDS as usize + 200;
    let headers = chain(n);
    let full = clean_bytes(&headers);
    // The first record of the last possible write, and a zeroed page in the middle of it with
    // intact records after (pages of one write can reach the disk out of order).
    for (k, len) in [(200usize, RECORD_LEN), (1000, 4096)] {
        let d = dir();
        let path = d.path().join("headers.dat");
        let mut bytes = full.clone();
        let at = FILE_HEADER_LEN + k * RECORD_LEN;
        bytes[at..at + len].fill(0);
        fs::write(&path, &bytes).expect("write");
        let (store, loaded) = open_ok(&path);
        assert_eq!(loaded.headers, headers[..k]);
        assert_eq!(store.len(), k as u64);
        assert_eq!(fs::metadata(&path).expect("stat").len(), FH + k as u64 * REC);
    }
}

#[test]
fn a_long_tail_with_nothing_intact_after_it_is_cut() {
    let headers = chain(10);
    let mut bytes = clean_bytes(&headers);
    bytes.extend(std::iter::repeat_n(0u8, (MAX_WRITE_RECORDS as usize + 5) * RECORD_LEN + 7));
    let d = dir();
    let path = d.path().join("headers.dat");
    fs::write(&path, &bytes).expect("write");
    let (_, loaded) = open_ok(&path);
    assert_eq!(loaded.headers, headers);
}

#[test]
fn created_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir();
    let path = d.path().join("headers.dat");
    write_store(&path, &chain(3));
    assert_eq!(fs::metadata(&path).expect("stat").permissions().mode() & 0o777, 0o600);
}

#[test]
fn batches_written_by_another_thread_match_a_direct_flush() {
    let headers = chain(MAX_WRITE_RECORDS as usize * 2 + 77);
    let d = dir();
    let path = d.path().join("headers.dat");
    let (mut store, _) = open_ok(&path);
    let mut file = store.detach_file().expect("file side");
    assert!(store.detach_file().is_none());
    let (tx, rx) = std::sync::mpsc::channel::<RecordBatch>();
    let writer = std::thread::spawn(move || {
        for b in rx {
            file.write(Some(b)).expect("write");
        }
        file
    });
    for part in headers.chunks(1500) {
        store.append(part);
        store.flush().expect("flush is a no-op while detached");
        let batch = store.take_batch().expect("queued records");
        tx.send(batch).expect("send");
    }
    assert!(store.take_batch().is_none());
    drop(tx);
    let file = writer.join().expect("writer");
    assert_eq!(file.on_disk(), headers.len() as u64);
    assert_eq!(store.len(), headers.len() as u64);
    assert_eq!(fs::read(&path).expect("read"), clean_bytes(&headers));
}

#[test]
fn a_batch_out_of_order_is_refused() {
    let d = dir();
    let path = d.path().join("headers.dat");
    let (mut store, _) = open_ok(&path);
    let mut file = store.detach_file().expect("file side");
    store.append(&chain(3));
    let first = store.take_batch().expect("batch");
    store.append(&extend(&genesis(), 2, 9));
    let second = store.take_batch().expect("batch");
    assert!(file.write(Some(second)).is_err(), "the second batch before the first");
    file.write(Some(first)).expect("in order");
    assert_eq!(file.on_disk(), 3);
}

/// The real mainnet headers of `tests/data` in a mainnet store, reloaded through the node's
/// load path: every one is restored; one record altered (valid checksum, nonce changed so its
/// proof of work fails) refuses the start naming the file.
#[test]
fn load_path_checks_proof_of_work_of_real_headers() {
    use crate::engine::chain::accept::Chain;
    use crate::engine::chain::params::ChainParams;
    use crate::engine::chain::testdata::load_headers;
    let params = ChainParams::new(crate::base::chainparams::Network::Main);
    let zero = bitcoin::pow::Work::from_be_bytes([0; 32]);
    let headers = load_headers("mainnet-headers-0-10236.bin");
    assert_eq!(headers.len(), 10_237);

    let d = dir();
    let path = d.path().join("headers.dat");
    let (mut store, _) = HeaderStore::open(&path, MAIN).expect("open");
    store.append(&headers);
    store.flush().expect("flush");
    drop(store);
    let (chain, restored) = Chain::open(params.clone(), zero, &path).expect("intact file loads");
    // The stored genesis is already in the tree: 10,236 headers are new.
    assert_eq!((restored.headers, restored.orphans), (10_236, 0));
    assert_eq!(chain.tree().height(), 10_236);
    drop(chain);

    // A record stored twice is read back once (found by fuzzing: it used to be counted twice).
    let d = dir();
    let path = d.path().join("headers.dat");
    let (mut store, _) = HeaderStore::open(&path, MAIN).expect("open");
    store.append(&headers[..10]);
    store.append(&headers[5..10]);
    store.flush().expect("flush");
    drop(store);
    let (chain, restored) = Chain::open(params.clone(), zero, &path).expect("loads");
    assert_eq!((restored.headers, restored.orphans, chain.tree().len()), (9, 0, 10));
    drop(chain);

    let mut altered = headers.clone();
    altered[5000].nonce ^= 1;
    let d = dir();
    let path = d.path().join("headers.dat");
    let (mut store, _) = HeaderStore::open(&path, MAIN).expect("open");
    store.append(&altered);
    store.flush().expect("flush");
    drop(store);
    let before = fs::read(&path).expect("read");
    let err = Chain::open(params, zero, &path).expect_err("a header without its proof of work refuses the start");
    assert!(matches!(err, StoreError::BadProofOfWork { record: 5000, .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert_eq!(fs::read(&path).expect("read"), before, "file untouched");
}
