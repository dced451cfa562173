//! Where each stored block lies in Core's block files (`blocks/blkNNNNN.dat`), so a block is
//! served as the bytes on disk (Core's `ReadRawBlock`) instead of through the kernel, which
//! parses the block, hashes every transaction and writes it out again: about 4 ms of CPU for a
//! 1 MB block against a quarter of a millisecond for the read. The kernel's C API does not say
//! where it wrote a block, so the files are scanned, record header by record header, on the
//! validation thread between jobs. A block not indexed yet is read through the kernel.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use bitcoin::block::Header;
use bitcoin::consensus::deserialize;
use bitcoin::hashes::Hash;

/// A block file record's header: the network magic, then the block's length (LE u32).
const RECORD_HEADER: usize = 8;
/// What a scan step reads per record: its header and the block's 80-byte header.
const PROBE: usize = RECORD_HEADER + 80;
/// Core's `MAX_BLOCKFILE_SIZE`: no record starts beyond it.
const MAX_FILE: u64 = 0x800_0000;
/// Longest block record accepted (Core's `MAX_BLOCK_SERIALIZED_SIZE`, 4,000,000 bytes).
const MAX_BLOCK: u32 = 4_000_000;

/// The index: the first 8 bytes of a block's hash to its record's place, file number in the
/// high half and offset in the low half. 8-byte keys keep it at about 20 bytes per block
/// (about 18 MB for mainnet); a read checks the whole hash, so two blocks sharing a key cost
/// only a read through the kernel for one of them.
pub struct BlockFiles {
    dir: PathBuf,
    magic: [u8; 4],
    /// Core's obfuscation key (`blocks/xor.dat`; zero when the node is older than the key).
    key: [u8; 8],
    at: HashMap<u64, u64>,
    /// Where the scan goes on: file number and offset of the next record.
    cursor: (u32, u64),
    /// The open file the scan is in.
    open: Option<(u32, File)>,
}

/// Why a raw read gave nothing (the caller reads through the kernel instead).
#[derive(Debug, PartialEq, Eq)]
pub enum RawMiss {
    /// The block is not indexed (not stored, or the scan has not reached it).
    NotIndexed,
    /// Its record could not be read, or holds another block (the index entry is dropped).
    Unreadable,
}

impl BlockFiles {
    /// An empty index over `dir` (the `blocks/` directory, whose `xor.dat` the kernel wrote).
    pub fn new(dir: &Path, magic: [u8; 4]) -> BlockFiles {
        let key = std::fs::read(dir.join("xor.dat")).ok().and_then(|k| <[u8; 8]>::try_from(k).ok()).unwrap_or([0; 8]);
        BlockFiles { dir: dir.to_path_buf(), magic, key, at: HashMap::new(), cursor: (0, 0), open: None }
    }

    /// Blocks indexed.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// Indexes up to `budget` more records; true when the scan has reached the end of the
    /// written data (then new blocks are picked up by the next call).
    pub fn scan(&mut self, budget: usize) -> bool {
        for _ in 0..budget {
            match self.step() {
                Step::Indexed => {}
                Step::End => return true,
            }
        }
        false
    }

    /// Reads one record header and block header at the cursor.
    fn step(&mut self) -> Step {
        let (n, offset) = self.cursor;
        let Some(file) = self.file(n) else { return Step::End };
        let mut probe = [0u8; PROBE];
        let got = read_at(file, &mut probe, offset);
        let record = (got == PROBE).then(|| self.unmask(&mut probe, offset)).and_then(|()| {
            let len = u32::from_le_bytes([probe[4], probe[5], probe[6], probe[7]]);
            let head: Header = deserialize(&probe[RECORD_HEADER..]).ok()?;
            (probe[..4] == self.magic && (80..=MAX_BLOCK).contains(&len)).then_some((len, head))
        });
        match record {
            Some((len, head)) => {
                self.at.insert(key_of(&head.block_hash()), u64::from(n) << 32 | offset);
                let next = offset.saturating_add(RECORD_HEADER as u64).saturating_add(u64::from(len));
                self.cursor = (n, next);
                if next >= MAX_FILE {
                    self.next_file();
                }
                Step::Indexed
            }
            // Zeroed pre-allocation (or a torn write after a crash): the file ends here.
            // Writing goes on in the next file once it exists; until then, this is the end.
            None => {
                if self.dir.join(file_name(n.saturating_add(1))).exists() {
                    self.next_file();
                    Step::Indexed
                } else {
                    Step::End
                }
            }
        }
    }

    fn next_file(&mut self) {
        self.cursor = (self.cursor.0.saturating_add(1), 0);
        self.open = None;
    }

    /// The open block file `n`, opening it if needed.
    fn file(&mut self, n: u32) -> Option<&File> {
        if self.open.as_ref().is_none_or(|(m, _)| *m != n) {
            self.open = File::open(self.dir.join(file_name(n))).ok().map(|f| (n, f));
        }
        self.open.as_ref().map(|(_, f)| f)
    }

    /// De-obfuscates `buf`, read at file `offset` (Core's key runs by file offset).
    fn unmask(&self, buf: &mut [u8], offset: u64) {
        let start = (offset % 8) as usize;
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= self.key[(start + i) % 8];
        }
    }

    /// The stored bytes of block `hash`, checked to be that block.
    pub fn read(&mut self, hash: &bitcoin::BlockHash) -> Result<Vec<u8>, RawMiss> {
        let k = key_of(hash);
        let Some(&at) = self.at.get(&k) else { return Err(RawMiss::NotIndexed) };
        let (n, offset) = ((at >> 32) as u32, at & 0xffff_ffff);
        let bytes = self.read_record(n, offset).filter(|b| {
            b.get(..80).and_then(|h| deserialize::<Header>(h).ok()).is_some_and(|h| h.block_hash() == *hash)
        });
        bytes.ok_or_else(|| {
            self.at.remove(&k);
            RawMiss::Unreadable
        })
    }

    fn read_record(&mut self, n: u32, offset: u64) -> Option<Vec<u8>> {
        let mut head = [0u8; RECORD_HEADER];
        let file = self.file(n)?;
        if read_at(file, &mut head, offset) != RECORD_HEADER {
            return None;
        }
        self.unmask(&mut head, offset);
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if head[..4] != self.magic || !(80..=MAX_BLOCK).contains(&len) {
            return None;
        }
        let mut bytes = vec![0u8; len as usize];
        let data_at = offset.checked_add(RECORD_HEADER as u64)?;
        let file = self.file(n)?;
        if read_at(file, &mut bytes, data_at) != bytes.len() {
            return None;
        }
        self.unmask(&mut bytes, data_at);
        Some(bytes)
    }
}

enum Step {
    Indexed,
    End,
}

fn key_of(hash: &bitcoin::BlockHash) -> u64 {
    let b = hash.as_byte_array();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn file_name(n: u32) -> String {
    format!("blk{n:05}.dat")
}

/// Reads as much of `buf` as the file has at `offset`; the count read.
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> usize {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while let Some(rest) = buf.get_mut(done..).filter(|r| !r.is_empty()) {
        match file.read_at(rest, offset.saturating_add(done as u64)) {
            Ok(0) => break,
            Ok(k) => done += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use bitcoin::consensus::serialize;

    use super::*;
    use crate::base::chainparams::Network;
    use crate::engine::chain::blockgen::BlockGen;
    use crate::engine::chain::params::ChainParams;

    const MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];
    const KEY: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 0x80];

    fn blocks(n: u32) -> Vec<bitcoin::Block> {
        let mut g = BlockGen::new(ChainParams::new(Network::Regtest));
        (0..n).map(|i| g.next_block(1_700_000_000 + i, 3)).collect()
    }

    /// Appends `blocks` as Core writes them (masked with KEY by file offset), then `zeros`
    /// bytes of pre-allocation.
    fn append(path: &Path, blocks: &[bitcoin::Block], zeros: usize) {
        let mut data = std::fs::read(path).unwrap_or_default();
        let base = data.len();
        for b in blocks {
            let raw = serialize(b);
            data.extend_from_slice(&MAGIC);
            data.extend_from_slice(&(raw.len() as u32).to_le_bytes());
            data.extend_from_slice(&raw);
        }
        for (i, b) in data.iter_mut().enumerate().skip(base) {
            *b ^= KEY[i % 8];
        }
        // Pre-allocation is zeros on disk, not masked zeros: Core writes only records.
        let mut f = std::fs::File::create(path).expect("create");
        f.write_all(&data).expect("write");
        f.write_all(&vec![0u8; zeros]).expect("write");
    }

    fn dir_with_key() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("xor.dat"), KEY).expect("key");
        d
    }

    #[test]
    fn scanned_blocks_read_back_as_their_bytes_across_files() {
        let d = dir_with_key();
        let bs = blocks(7);
        append(&d.path().join("blk00000.dat"), &bs[..4], 4096);
        append(&d.path().join("blk00001.dat"), &bs[4..], 0);
        let mut f = BlockFiles::new(d.path(), MAGIC);
        assert!(f.scan(100), "the scan reaches the end");
        assert_eq!(f.len(), 7);
        for b in &bs {
            assert_eq!(f.read(&b.block_hash()), Ok(serialize(b)));
        }
    }

    #[test]
    fn the_scan_is_bounded_per_call_and_picks_up_blocks_written_later() {
        let d = dir_with_key();
        let bs = blocks(6);
        let path = d.path().join("blk00000.dat");
        // Written the way Core does it: records appended, the rest of the file kept zero.
        let mut data = Vec::new();
        for b in &bs[..3] {
            let raw = serialize(b);
            data.extend_from_slice(&MAGIC);
            data.extend_from_slice(&(raw.len() as u32).to_le_bytes());
            data.extend_from_slice(&raw);
        }
        let first_len = data.len();
        for b in &bs[3..] {
            let raw = serialize(b);
            data.extend_from_slice(&MAGIC);
            data.extend_from_slice(&(raw.len() as u32).to_le_bytes());
            data.extend_from_slice(&raw);
        }
        let masked: Vec<u8> = data.iter().enumerate().map(|(i, b)| b ^ KEY[i % 8]).collect();
        let mut on_disk = masked[..first_len].to_vec();
        on_disk.resize(masked.len() + 1000, 0);
        std::fs::write(&path, &on_disk).expect("write");
        let mut f = BlockFiles::new(d.path(), MAGIC);
        assert!(!f.scan(2), "two records per call: not at the end yet");
        assert_eq!(f.len(), 2);
        assert!(f.scan(10));
        assert_eq!(f.len(), 3);
        assert_eq!(f.read(&bs[4].block_hash()), Err(RawMiss::NotIndexed));
        // The kernel writes the next blocks over the zeroes.
        on_disk[first_len..masked.len()].copy_from_slice(&masked[first_len..]);
        std::fs::write(&path, &on_disk).expect("write");
        assert!(f.scan(10));
        assert_eq!(f.len(), 6);
        assert_eq!(f.read(&bs[4].block_hash()), Ok(serialize(&bs[4])));
    }

    #[test]
    fn a_record_that_no_longer_holds_its_block_is_a_miss_and_leaves_the_index() {
        let d = dir_with_key();
        let bs = blocks(2);
        let path = d.path().join("blk00000.dat");
        append(&path, &bs, 0);
        let mut f = BlockFiles::new(d.path(), MAGIC);
        assert!(f.scan(10));
        // Damage the first block's header (its version field) on disk.
        let mut data = std::fs::read(&path).expect("read");
        data[RECORD_HEADER] ^= 0xff;
        std::fs::write(&path, &data).expect("write");
        assert_eq!(f.read(&bs[0].block_hash()), Err(RawMiss::Unreadable));
        assert_eq!(f.read(&bs[0].block_hash()), Err(RawMiss::NotIndexed));
        assert_eq!(f.read(&bs[1].block_hash()), Ok(serialize(&bs[1])));
    }

    #[test]
    fn garbage_lengths_and_wrong_magic_end_a_file_without_reading_past_it() {
        let d = dir_with_key();
        let bs = blocks(3);
        let path = d.path().join("blk00000.dat");
        append(&path, &bs[..1], 0);
        // A record claiming 4 GB, masked like real data.
        let mut data = std::fs::read(&path).expect("read");
        let base = data.len();
        let mut bad = MAGIC.to_vec();
        bad.extend_from_slice(&u32::MAX.to_le_bytes());
        bad.extend_from_slice(&[7u8; 80]);
        for (i, b) in bad.iter_mut().enumerate() {
            *b ^= KEY[(base + i) % 8];
        }
        data.extend_from_slice(&bad);
        std::fs::write(&path, &data).expect("write");
        append(&d.path().join("blk00001.dat"), &bs[1..], 0);
        let mut f = BlockFiles::new(d.path(), MAGIC);
        assert!(f.scan(100));
        assert_eq!(f.len(), 3, "the bad record ends file 0; file 1 is scanned");
        // A scan of a directory with no block files ends at once.
        let empty = tempfile::tempdir().expect("tempdir");
        let mut none = BlockFiles::new(empty.path(), MAGIC);
        assert!(none.scan(10));
        assert!(none.is_empty());
    }
}
