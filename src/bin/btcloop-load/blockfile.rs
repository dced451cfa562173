//! The block file that `mkblocks` writes and `submit` reads: Bitcoin Core's `blk*.dat` record
//! format (network magic, 4-byte little-endian length, serialized block), one record per block
//! in chain order, written to a temporary name (mode 0600), synced, then renamed.

use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bitcoin::BlockHash;
use bitcoin::blockdata::block::Header;

use super::*;

/// Core's `MAX_BLOCK_SERIALIZED_SIZE`: no record may claim more.
pub(crate) const MAX_BLOCK_BYTES: usize = 4_000_000;
/// A serialized header's size: the shortest possible record.
const HEADER_BYTES: usize = 80;

/// Writes block records to `<path>.tmp`; [`BlockWriter::finish`] syncs and renames it, and
/// dropping it unfinished removes the temporary file.
pub(crate) struct BlockWriter {
    /// `None` once finished.
    out: Option<BufWriter<File>>,
    tmp: PathBuf,
    path: PathBuf,
    magic: [u8; 4],
    /// Blocks written.
    pub(crate) blocks: u64,
    /// Bytes written (records included).
    pub(crate) bytes: u64,
}

impl BlockWriter {
    /// Creates `<path>.tmp` (replacing a leftover one), mode 0600.
    pub(crate) fn create(path: &Path, magic: [u8; 4]) -> Result<BlockWriter, String> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        let out = BufWriter::with_capacity(1 << 20, file);
        Ok(BlockWriter { out: Some(out), tmp, path: path.to_path_buf(), magic, blocks: 0, bytes: 0 })
    }

    /// Appends one serialized block.
    pub(crate) fn push(&mut self, block: &[u8]) -> Result<(), String> {
        if block.len() < HEADER_BYTES || block.len() > MAX_BLOCK_BYTES {
            return Err(format!("a block of {} bytes cannot be stored", block.len()));
        }
        let len = (block.len() as u32).to_le_bytes();
        let out = self.out.as_mut().ok_or("block file already finished")?;
        for part in [&self.magic[..], &len[..], block] {
            out.write_all(part).map_err(|e| format!("write {}: {e}", self.tmp.display()))?;
        }
        self.blocks += 1;
        self.bytes += 8 + block.len() as u64;
        Ok(())
    }

    /// Flushes, syncs and renames the file to its final name (removing it on failure).
    pub(crate) fn finish(mut self) -> Result<(), String> {
        let out = self.out.take().ok_or("block file already finished")?;
        let tmp = self.tmp.display();
        let done = out
            .into_inner()
            .map_err(|e| format!("write {tmp}: {}", e.error()))
            .and_then(|file| file.sync_all().map_err(|e| format!("sync {tmp}: {e}")))
            .and_then(|()| {
                std::fs::rename(&self.tmp, &self.path)
                    .map_err(|e| format!("rename {tmp} to {}: {e}", self.path.display()))
            });
        if done.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        done
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Reads block records in order, checking each record's magic and length.
pub(crate) struct BlockReader {
    input: BufReader<File>,
    path: PathBuf,
    magic: [u8; 4],
    /// Records read so far.
    pub(crate) read: u64,
}

impl BlockReader {
    pub(crate) fn open(path: &Path, magic: [u8; 4]) -> Result<BlockReader, String> {
        let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        Ok(BlockReader { input: BufReader::with_capacity(1 << 20, file), path: path.to_path_buf(), magic, read: 0 })
    }

    /// The next serialized block, `None` at a clean end of file.
    pub(crate) fn next_block(&mut self) -> Result<Option<Vec<u8>>, String> {
        let mut head = [0u8; 8];
        let mut got = 0;
        while got < head.len() {
            match self.input.read(&mut head[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(self.bad("truncated record header")),
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read {}: {e}", self.path.display())),
            }
        }
        let (magic, len) = head.split_at(4);
        if magic != self.magic {
            return Err(self.bad("wrong network magic"));
        }
        let len = len.first_chunk::<4>().map_or(0, |b| u32::from_le_bytes(*b)) as usize;
        if !(HEADER_BYTES..=MAX_BLOCK_BYTES).contains(&len) {
            return Err(self.bad(&format!("record length {len} out of range")));
        }
        let mut block = vec![0u8; len];
        self.input.read_exact(&mut block).map_err(|e| self.bad(&format!("truncated block ({e})")))?;
        self.read += 1;
        Ok(Some(block))
    }

    fn bad(&self, what: &str) -> String {
        format!("{}: record {}: {what}", self.path.display(), self.read + 1)
    }
}

/// The hash of a serialized block (its first 80 bytes are the header).
pub(crate) fn block_hash(block: &[u8]) -> Result<BlockHash, String> {
    let head = block.get(..HEADER_BYTES).ok_or("block shorter than a header")?;
    bitcoin::consensus::deserialize::<Header>(head)
        .map(|h| h.block_hash())
        .map_err(|e| format!("undecodable header: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.blk");
        let magic = Network::Regtest.magic();
        let mut w = BlockWriter::create(&path, magic).unwrap();
        let (a, b) = (vec![1u8; 80], vec![2u8; 300]);
        w.push(&a).unwrap();
        w.push(&b).unwrap();
        assert!(w.push(&[0u8; 79]).is_err());
        w.finish().unwrap();
        let mut r = BlockReader::open(&path, magic).unwrap();
        assert_eq!(r.next_block().unwrap(), Some(a));
        assert_eq!(r.next_block().unwrap(), Some(b));
        assert_eq!(r.next_block().unwrap(), None);

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let mut r = BlockReader::open(&path, magic).unwrap();
        r.next_block().unwrap();
        assert!(r.next_block().unwrap_err().contains("record 2: truncated block"));
        let mut r = BlockReader::open(&path, Network::Main.magic()).unwrap();
        assert!(r.next_block().unwrap_err().contains("wrong network magic"));
        let mut huge = bytes[..8].to_vec();
        huge[4..8].copy_from_slice(&(MAX_BLOCK_BYTES as u32 + 1).to_le_bytes());
        std::fs::write(&path, &huge).unwrap();
        let mut r = BlockReader::open(&path, magic).unwrap();
        assert!(r.next_block().unwrap_err().contains("out of range"));
    }
}
