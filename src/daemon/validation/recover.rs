//! Keeping what was validated across a crash. The kernel writes every accepted block to its
//! block files at once but its block index and chainstate only when closed (its C API has no
//! flush), so after `kill -9` it reopens at its last flush. btcloop records in
//! `blocks/btcloop-flush` where the block files ended at the last flush and whether the node
//! stopped cleanly; after an unclean stop it reads the block files from there (undoing Core's
//! XOR obfuscation with `blocks/xor.dat`) and feeds the blocks the kernel does not know back
//! through it, headers first, so nothing validated is downloaded again.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bitcoin::block::Header;
use bitcoin::consensus::deserialize;
use bitcoinkernel::{BlockHeader, ProcessBlockHeaderResult, ProcessBlockResult};
use tracing::{debug, info, warn};

use super::kernel::{Kernel, from_hash};

/// The marker file in `blocks/`.
pub const MARKER_FILE: &str = "btcloop-flush";
/// Core's `MESSAGE_START_SIZE` + size field before each block in a block file.
const RECORD_HEADER: usize = 8;

/// Where the blocks in the block files ended at a flush, and whether the node then stopped
/// cleanly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Marker {
    /// Number of the last block file holding blocks (`blkNNNNN.dat`).
    pub file: u32,
    /// Where its last block ends (Core pre-allocates block files, so this is not its length).
    pub offset: u64,
    /// The node closed the kernel (so its index and chainstate are complete on disk).
    pub clean: bool,
}

/// Why recovery could not read the block files.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// A block file or the key could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `xor.dat` is not Core's 8-byte key.
    #[error("{0}: not an 8-byte obfuscation key")]
    BadKey(PathBuf),
}

/// What recovery did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Blocks read from the block files after the marker.
    pub scanned: usize,
    /// Of those, blocks the kernel had lost and took again.
    pub refed: usize,
    /// How long it took.
    pub took: Duration,
}

/// Reads the marker (`None` if there is none or it is unreadable).
pub fn read_marker(blocks: &Path) -> Option<Marker> {
    let text = std::fs::read_to_string(blocks.join(MARKER_FILE)).ok()?;
    let mut m = Marker::default();
    let mut seen = 0;
    for line in text.lines() {
        let (k, v) = line.split_once('=')?;
        match k {
            "file" => m.file = v.parse().ok()?,
            "offset" => m.offset = v.parse().ok()?,
            "clean" => m.clean = v == "1",
            _ => continue,
        }
        seen += 1;
    }
    (seen == 3).then_some(m)
}

/// Records where the blocks in the block files end now (atomically: temp file, fsync,
/// rename; mode 0600). Reads only what was written since the previous marker.
pub fn write_marker(blocks: &Path, magic: [u8; 4], clean: bool) -> std::io::Result<Marker> {
    let from = read_marker(blocks).map_or((0, 0), |m| (m.file, m.offset));
    let (file, offset) = match read_key(blocks) {
        Ok(Some(key)) => data_end(blocks, from, key, magic)?,
        // No block files yet (or no key): nothing to mark beyond the start.
        Ok(None) | Err(_) => from,
    };
    let m = Marker { file, offset, clean };
    let tmp = blocks.join(format!("{MARKER_FILE}.new"));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        write!(f, "file={}\noffset={}\nclean={}\n", m.file, m.offset, u8::from(m.clean))?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, blocks.join(MARKER_FILE))?;
    Ok(m)
}

/// The highest block file number (0 when there is none).
fn last_block_file(blocks: &Path) -> u32 {
    std::fs::read_dir(blocks)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(block_file_number))
        .max()
        .unwrap_or(0)
}

/// Core's obfuscation key (`blocks/xor.dat`), `None` before the kernel made one.
fn read_key(blocks: &Path) -> Result<Option<[u8; 8]>, RecoverError> {
    let path = blocks.join("xor.dat");
    match std::fs::read(&path) {
        Ok(k) => k.try_into().map(Some).map_err(|_| RecoverError::BadKey(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RecoverError::Read { path, source }),
    }
}

/// Block file `n` from `offset` on (empty if it does not exist).
fn read_from(blocks: &Path, n: u32, offset: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let path = blocks.join(format!("blk{n:05}.dat"));
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    f.seek(SeekFrom::Start(offset))?;
    let mut out = Vec::new();
    f.read_to_end(&mut out)?;
    Ok(out)
}

/// Where the last block in the block files ends, reading from `from` on.
fn data_end(blocks: &Path, from: (u32, u64), key: [u8; 8], magic: [u8; 4]) -> std::io::Result<(u32, u64)> {
    let mut end = from;
    for n in from.0..=last_block_file(blocks) {
        let start = if n == from.0 { from.1 } else { 0 };
        let data = read_from(blocks, n, start)?;
        if let Some((pos, block)) = records(&data, start, key, magic).last() {
            end = (n, start + (pos - start as usize + RECORD_HEADER + block.len()) as u64);
        }
    }
    Ok(end)
}

/// `NNNNN` of `blkNNNNN.dat`.
fn block_file_number(name: &str) -> Option<u32> {
    name.strip_prefix("blk")?.strip_suffix(".dat")?.parse().ok()
}

/// After an unclean stop (the marker is missing or not clean), feeds the blocks written since
/// the marker's position that the kernel does not know back through it. Does nothing after a
/// clean stop.
pub fn recover(kernel: &Kernel, blocks: &Path, magic: [u8; 4]) -> Result<Recovered, RecoverError> {
    let marker = read_marker(blocks);
    if marker.is_some_and(|m| m.clean) {
        return Ok(Recovered::default());
    }
    let started = Instant::now();
    let (from_file, from_offset) = marker.map_or((0, 0), |m| (m.file, m.offset));
    let Some(key) = read_key(blocks)? else { return Ok(Recovered::default()) };
    let Some(cm) = kernel.chainman() else { return Ok(Recovered::default()) };
    // The blocks the kernel lost, in file order (the order they were accepted).
    let mut lost: Vec<Vec<u8>> = Vec::new();
    let mut scanned = 0;
    for n in from_file..=last_block_file(blocks) {
        let path = blocks.join(format!("blk{n:05}.dat"));
        let start = if n == from_file { from_offset } else { 0 };
        let data = read_from(blocks, n, start).map_err(|source| RecoverError::Read { path: path.clone(), source })?;
        for (offset, raw) in records(&data, start, key, magic) {
            scanned += 1;
            let Some(hash) = raw.get(..80).and_then(|h| deserialize::<Header>(h).ok()).map(|h| h.block_hash()) else {
                warn!("{}: unreadable block at offset {offset}, recovery stops there", path.display());
                break;
            };
            // Every block after the marker goes back through the kernel, also one whose header
            // its index kept from a flush: the kernel answers "duplicate" for what it has.
            let _ = hash;
            lost.push(raw);
        }
    }
    if lost.is_empty() {
        return Ok(Recovered { scanned, refed: 0, took: started.elapsed() });
    }
    debug!(target: "validation", "unclean stop: feeding {} blocks from the block files again", lost.len());
    feed_headers(kernel, &lost);
    let mut refed = 0;
    for raw in &lost {
        let Ok(block) = bitcoinkernel::Block::new(raw) else { continue };
        if matches!(cm.process_block(&block), ProcessBlockResult::NewBlock) {
            refed += 1;
        }
    }
    let took = started.elapsed();
    if refed > 0 {
        info!("Recovered {refed} blocks (of {scanned} read from the block files) after an unclean stop in {took:?}");
    }
    Ok(Recovered { scanned, refed, took })
}

/// Hands the lost blocks' headers to the kernel parents first (downloads store blocks out of
/// order; the kernel takes a block only on a header it has).
fn feed_headers(kernel: &Kernel, lost: &[Vec<u8>]) {
    let Some(cm) = kernel.chainman() else { return };
    let mut headers: HashMap<bitcoin::BlockHash, Header> = HashMap::new();
    for raw in lost {
        if let Some(h) = raw.get(..80).and_then(|h| deserialize::<Header>(h).ok()) {
            headers.insert(h.block_hash(), h);
        }
    }
    let mut done: HashSet<bitcoin::BlockHash> = HashSet::new();
    loop {
        let mut progress = false;
        for (hash, h) in &headers {
            if done.contains(hash) {
                continue;
            }
            let parent_known =
                done.contains(&h.prev_blockhash) || cm.get_block_tree_entry(&from_hash(&h.prev_blockhash)).is_some();
            if !parent_known {
                continue;
            }
            let Ok(kh) = BlockHeader::new(&bitcoin::consensus::serialize(h)) else { continue };
            if let Ok(ProcessBlockHeaderResult::Valid) = cm.process_block_header(&kh) {
                progress = true;
            }
            done.insert(*hash);
        }
        if !progress {
            break;
        }
    }
}

/// The block records in `data`, which is a block file's content from offset `base` on:
/// (file offset, block bytes), de-obfuscated (Core's key runs by file offset).
fn records(data: &[u8], base: u64, key: [u8; 8], magic: [u8; 4]) -> Vec<(usize, Vec<u8>)> {
    let base = usize::try_from(base).unwrap_or(usize::MAX);
    let read = |from: usize, len: usize| -> Option<Vec<u8>> {
        let rel = from.checked_sub(base)?;
        let bytes = data.get(rel..rel.checked_add(len)?)?;
        Some(bytes.iter().enumerate().map(|(i, b)| b ^ key[(from + i) % 8]).collect())
    };
    let mut out = Vec::new();
    let mut pos = base;
    while let Some(head) = read(pos, RECORD_HEADER) {
        if head[..4] != magic {
            // The rest of a block file is zeroed pre-allocation, or a torn write.
            break;
        }
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let Some(block) = read(pos + RECORD_HEADER, len) else { break };
        out.push((pos, block));
        pos += RECORD_HEADER + len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("blk00000.dat"), [0u8; 100]).expect("write");
        std::fs::write(dir.path().join("blk00001.dat"), [0u8; 42]).expect("write");
        // No key yet: the marker stays at the start.
        let m = write_marker(dir.path(), [0xfa, 0xbf, 0xb5, 0xda], false).expect("written");
        assert_eq!(m, Marker { file: 0, offset: 0, clean: false });
        assert_eq!(read_marker(dir.path()), Some(m));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(MARKER_FILE)).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(MARKER_FILE), "file=x\n").expect("write");
        assert_eq!(read_marker(dir.path()), None);
    }

    #[test]
    fn records_are_read_through_the_key_and_stop_at_zeroes() {
        let key = [1, 2, 3, 4, 5, 6, 7, 8];
        let magic = [0xfa, 0xbf, 0xb5, 0xda];
        let mut plain = Vec::new();
        for body in [&b"first block"[..], &b"second"[..]] {
            plain.extend_from_slice(&magic);
            plain.extend_from_slice(&(body.len() as u32).to_le_bytes());
            plain.extend_from_slice(body);
        }
        plain.extend_from_slice(&[0u8; 16]);
        let file: Vec<u8> = plain.iter().enumerate().map(|(i, b)| b ^ key[i % 8]).collect();
        let got = records(&file, 0, key, magic);
        assert_eq!(
            got.iter().map(|(_, b)| b.as_slice()).collect::<Vec<_>>(),
            vec![&b"first block"[..], &b"second"[..]]
        );
        // From the second record's offset only the second is read (the key still runs by file
        // offset); a torn length stops.
        let second = got[1].0;
        assert_eq!(records(&file[second..], second as u64, key, magic), vec![(second, b"second".to_vec())]);
        // The first record is 19 bytes: cut inside the second, only the first is read; cut
        // inside the first, nothing.
        assert_eq!(records(&file[..25], 0, key, magic).len(), 1);
        assert!(records(&file[..18], 0, key, magic).is_empty());
    }
}
