//! The append-only on-disk header store: the file in the data directory that keeps every accepted
//! block header, in acceptance order, so a restart rebuilds the header tree from where it was.
//!
//! # File format (version 1)
//!
//! ```text
//! offset  size  field
//! 0       16    format magic  b"btcloop-headers\0"
//! 16      4     version       u32 little-endian, 1
//! 20      4     network       the network's message start (magic), as on the wire
//! 24      84*n  records
//!
//! record i (at offset 24 + 84*i):
//! 0       80    the block header, consensus-encoded (as in a `headers` message)
//! 80      4     checksum      first 4 bytes of sha256d(i as u64 little-endian || header)
//! ```
//!
//! The checksum binds a record to its content *and* its position, so a torn write, a stale block
//! left by the file system, or a record written at a shifted offset fails it.
//!
//! # Crash behaviour
//!
//! A new file is created whole (mode 0600): its file header and first records are written to a
//! temporary file in the same directory, synced, and renamed over the final name (then the
//! directory is synced), so a crash during creation leaves either no file or a complete one.
//! Records are only ever appended, by [`StoreFile::write`], in writes of at most
//! [`MAX_WRITE_RECORDS`] records, each followed by `fdatasync` before the next starts. A crash
//! or `kill -9` can therefore lose only records not yet synced, and at worst leave the last
//! write partial or garbled: damage that starts within the last [`MAX_WRITE_RECORDS`] records,
//! or that no intact record follows, is such a torn tail, and [`HeaderStore::open`] keeps every
//! intact record before it and truncates the rest away (`set_len` + sync), reporting how many
//! bytes it dropped. Damage before that, with intact records after it, cannot come from a crash:
//! opening fails with [`StoreError::Damaged`] naming the file, and the file is left untouched
//! (as Core refuses to start on a corrupted block database). A file that is not a btcloop header
//! file, or belongs to another network or format version, is an error and is never modified.
//!
//! # Who writes
//!
//! [`HeaderStore`] is the in-memory side (the message handler's, inside the chain): appends are
//! queued and taken out as immutable [`RecordBatch`]es. The file side, [`StoreFile`], can be
//! detached and moved to the disk-writer thread ([`crate::daemon::node::disk_writer`]), which writes the
//! batches in order; [`HeaderStore::flush`] does both in the calling thread while the file side
//! is still attached (tools and tests).
//!
//! The store does not check that headers link up or carry their proof of work; the node
//! re-inserts them in order on start and checks each one's proof of work there.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bitcoin::block::Header;
use bitcoin::hashes::{Hash, HashEngine, sha256d};

#[cfg(test)]
mod tests;

/// First 16 bytes of every header store file.
const FORMAT_MAGIC: [u8; 16] = *b"btcloop-headers\0";
/// The file format version this code reads and writes.
const VERSION: u32 = 1;
/// Length of the file header: format magic, version, network magic.
const FILE_HEADER_LEN: usize = 24;
/// Length of a consensus-encoded block header.
const HEADER_LEN: usize = 80;
/// Length of one record: header plus checksum.
const RECORD_LEN: usize = HEADER_LEN + 4;
/// Read buffer used when loading the file at open.
const READ_BUF: usize = 1 << 20;
/// The most records one write appends before it is synced (a full `headers` message): only
/// the last write can be torn by a crash, so damage further from the end is not a torn tail.
pub const MAX_WRITE_RECORDS: u64 = 2000;

/// An error opening or writing the header store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O operation on the store file (or its directory) failed.
    #[error("cannot {action} header store {path}: {source}")]
    Io {
        /// What was being done, e.g. "read" or "sync".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is a header store for another network (different message start).
    #[error(
        "header store {path} belongs to another network (magic {}, expected {}); use the right data directory",
        hex(.found),
        hex(.expected)
    )]
    WrongNetwork {
        /// The store file.
        path: PathBuf,
        /// The network magic this node runs with.
        expected: [u8; 4],
        /// The network magic recorded in the file.
        found: [u8; 4],
    },
    /// The file is not a btcloop header store file; it was left untouched.
    #[error("{path} is not a btcloop header store file ({reason}); refusing to overwrite it")]
    BadFileHeader {
        /// The offending file.
        path: PathBuf,
        /// What did not match.
        reason: &'static str,
    },
    /// A record before the file's last write is damaged while intact records follow it: not a
    /// torn tail a crash can leave, so the file is left untouched and the node does not start.
    #[error(
        "Corrupted header database: {path} is damaged at record {record} of {records} (intact records follow, so this is not a torn tail a crash leaves). The file was left untouched; move it away to sync the headers from peers again"
    )]
    Damaged {
        /// The store file.
        path: PathBuf,
        /// Index of the first damaged record.
        record: u64,
        /// Complete records in the file.
        records: u64,
    },
    /// A stored header does not meet its proof of work: the file was altered (its checksum is
    /// intact), so the node does not start.
    #[error(
        "Corrupted header database: {path} record {record} (block {hash}) fails its proof of work. The file was left untouched; move it away to sync the headers from peers again"
    )]
    BadProofOfWork {
        /// The store file.
        path: PathBuf,
        /// Index of the record.
        record: u64,
        /// The block hash of the header in it.
        hash: bitcoin::BlockHash,
    },
    /// The file is a btcloop header store of a format version this build cannot read; it was left untouched.
    #[error("header store {path} has format version {version}, this build reads version {VERSION} only")]
    UnknownVersion {
        /// The store file.
        path: PathBuf,
        /// The version recorded in the file.
        version: u32,
    },
}

/// What opening found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// Every intact record, in the order they were appended.
    pub headers: Vec<Header>,
    /// Bytes of torn or corrupt tail (or of a torn file header) that were truncated away.
    pub dropped_tail_bytes: u64,
}

/// Encoded records handed from the [`HeaderStore`] to its [`StoreFile`]: immutable, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordBatch {
    /// Index of the first record.
    first: u64,
    /// Number of records.
    records: u64,
    /// The encoded records (84 bytes each).
    bytes: Vec<u8>,
}

impl RecordBatch {
    /// Number of records in the batch.
    pub fn len(&self) -> u64 {
        self.records
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }
}

/// The header store: the in-memory side (queue of appended records) and, until it is
/// detached for the disk-writer thread, the file side.
///
/// Appends are queued in memory until [`flush`](HeaderStore::flush) or
/// [`take_batch`](HeaderStore::take_batch). Dropping the store does **not** flush: queued
/// records are discarded, exactly as if the process had crashed.
#[derive(Debug)]
pub struct HeaderStore {
    path: PathBuf,
    /// The file side; `None` once [`detach_file`](HeaderStore::detach_file) moved it away.
    file: Option<StoreFile>,
    /// Index of the first queued record (records before it are on disk or handed out).
    next: u64,
    /// Encoded records waiting to be handed out.
    queue: Vec<u8>,
    /// Number of records in `queue`.
    queued: u64,
}

/// The file side of the store: the open file and what is durable in it. Owned by whoever
/// writes (the disk-writer thread in the node).
#[derive(Debug)]
pub struct StoreFile {
    path: PathBuf,
    /// The open file; `None` until the first write creates it (opening never writes).
    file: Option<File>,
    /// The network's message start, for the file header of a file still to be created.
    magic: [u8; 4],
    /// Records durably on disk (written and synced).
    on_disk: u64,
    /// Records handed over but not yet durable (a failed write is retried with the next).
    pending: Vec<u8>,
}

impl HeaderStore {
    /// Opens (creating if missing) the store at `path` for the network with message start
    /// `magic`; reads every intact record; a torn tail (see the module documentation) is
    /// truncated away and reported in `dropped_tail_bytes`; damage before it is
    /// [`StoreError::Damaged`] and the file is not modified.
    ///
    /// A missing or empty file, or one holding only a prefix of this network's file header (a
    /// torn creation by some other writer), is (re)created atomically by the first write that
    /// has records, so opening a new store writes (and syncs) nothing. Anything else that does
    /// not start with this network's file header is an error and the file is left untouched.
    pub fn open(path: &Path, magic: [u8; 4]) -> Result<(HeaderStore, Loaded), StoreError> {
        let path = path.to_path_buf();
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // The file is created by the first flush, but its directory must exist now.
                let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
                std::fs::metadata(dir).map_err(io_err("open", &path))?;
                return Ok(not_yet_created(path, magic, 0));
            }
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        let file_len = file.metadata().map_err(io_err("stat", &path))?.len();
        let mut reader = BufReader::with_capacity(READ_BUF, &file);

        let mut head = [0u8; FILE_HEADER_LEN];
        let got = read_up_to(&mut reader, &mut head).map_err(io_err("read", &path))?;
        let expected = file_header(magic);
        if got < FILE_HEADER_LEN {
            let present = head.get(..got).unwrap_or_default();
            if expected.starts_with(present) {
                // Empty, or a file header cut short: nothing in it worth keeping.
                drop(reader);
                drop(file);
                return Ok(not_yet_created(path, magic, file_len));
            }
            return Err(StoreError::BadFileHeader { path, reason: "file shorter than a header store's file header" });
        }
        check_file_header(&path, &head, magic)?;

        let records = file_len.saturating_sub(FILE_HEADER_LEN as u64) / RECORD_LEN as u64;
        let mut headers = Vec::with_capacity(usize::try_from(records.min(1 << 22)).unwrap_or(0));
        let mut record = [0u8; RECORD_LEN];
        // The first bad record, and whether an intact one follows it.
        let mut first_bad: Option<u64> = None;
        let mut intact_after_bad = false;
        for index in 0..records {
            let got = read_up_to(&mut reader, &mut record).map_err(io_err("read", &path))?;
            if got < RECORD_LEN {
                break;
            }
            match (decode_record(index, &record), first_bad) {
                (Some(header), None) => headers.push(header),
                (None, None) => first_bad = Some(index),
                (Some(_), Some(_)) => intact_after_bad = true,
                (None, Some(_)) => {}
            }
        }
        drop(reader);
        if let Some(bad) = first_bad {
            let in_last_write = records - bad <= MAX_WRITE_RECORDS;
            if intact_after_bad && !in_last_write {
                return Err(StoreError::Damaged { path, record: bad, records });
            }
        }

        let on_disk = headers.len() as u64;
        let end = record_offset(on_disk);
        let dropped_tail_bytes = file_len.saturating_sub(end);
        if dropped_tail_bytes > 0 {
            file.set_len(end).map_err(io_err("truncate", &path))?;
            file.sync_all().map_err(io_err("sync", &path))?;
        }
        let file = StoreFile { path: path.clone(), file: Some(file), magic, on_disk, pending: Vec::new() };
        let store = HeaderStore { path, file: Some(file), next: on_disk, queue: Vec::new(), queued: 0 };
        Ok((store, Loaded { headers, dropped_tail_bytes }))
    }

    /// Queues headers for writing (buffered in memory; cheap).
    pub fn append(&mut self, headers: &[Header]) {
        self.queue.reserve(headers.len() * RECORD_LEN);
        for header in headers {
            let index = self.next + self.queued;
            let bytes = encode_header(header);
            self.queue.extend_from_slice(&bytes);
            self.queue.extend_from_slice(&checksum(index, &bytes));
            self.queued += 1;
        }
    }

    /// Takes the queued records out as one immutable batch for the file side (`None` when
    /// nothing is queued). Batches must reach [`StoreFile::write`] in the order taken.
    pub fn take_batch(&mut self) -> Option<RecordBatch> {
        if self.queued == 0 {
            return None;
        }
        let batch = RecordBatch { first: self.next, records: self.queued, bytes: std::mem::take(&mut self.queue) };
        self.next += self.queued;
        self.queued = 0;
        Some(batch)
    }

    /// Moves the file side out (to the disk-writer thread); later batches go to it through
    /// [`take_batch`](HeaderStore::take_batch).
    pub fn detach_file(&mut self) -> Option<StoreFile> {
        self.file.take()
    }

    /// Writes queued records and makes them durable (write + fdatasync), in the calling
    /// thread. While the file side is detached this does nothing and the records stay queued
    /// for [`take_batch`](HeaderStore::take_batch).
    ///
    /// On error the records stay pending in the file side and a later `flush` rewrites all of
    /// them at the same offset (so a partial write is overwritten, and a failed sync is never
    /// trusted to have persisted anything).
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if self.file.is_none() {
            return Ok(());
        }
        let batch = self.take_batch();
        match self.file.as_mut() {
            Some(file) => file.write(batch),
            None => Ok(()),
        }
    }

    /// Number of records on disk plus queued or handed out.
    pub fn len(&self) -> u64 {
        self.next + self.queued
    }

    /// Whether the store holds no records, on disk or queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl StoreFile {
    /// Appends `batch` (if any) after the records already handed over and makes everything
    /// pending durable: writes of at most [`MAX_WRITE_RECORDS`] records, each synced with
    /// `fdatasync` before the next. On error what was not synced stays pending and is written
    /// again, at the same offset, by the next call.
    pub fn write(&mut self, batch: Option<RecordBatch>) -> Result<(), StoreError> {
        if let Some(b) = batch {
            let expected = self.on_disk + (self.pending.len() / RECORD_LEN) as u64;
            if b.first != expected {
                return Err(StoreError::Io {
                    action: "append to",
                    path: self.path.clone(),
                    source: io::Error::other(format!("records out of order: got {}, expected {expected}", b.first)),
                });
            }
            self.pending.extend_from_slice(&b.bytes);
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let Some(file) = self.file.as_mut() else {
            self.file = Some(create(&self.path, self.magic, &self.pending)?);
            self.on_disk += (self.pending.len() / RECORD_LEN) as u64;
            self.pending.clear();
            return Ok(());
        };
        let chunk_len = MAX_WRITE_RECORDS as usize * RECORD_LEN;
        while !self.pending.is_empty() {
            let n = self.pending.len().min(chunk_len);
            let chunk = self.pending.get(..n).unwrap_or_default();
            file.seek(SeekFrom::Start(record_offset(self.on_disk))).map_err(io_err("seek", &self.path))?;
            file.write_all(chunk).map_err(io_err("write", &self.path))?;
            file.sync_data().map_err(io_err("sync", &self.path))?;
            self.on_disk += (n / RECORD_LEN) as u64;
            self.pending.drain(..n);
        }
        Ok(())
    }

    /// Records durably on disk.
    pub fn on_disk(&self) -> u64 {
        self.on_disk
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A store whose file does not exist yet (or is empty or torn and will be replaced); `dropped`
/// is reported as `dropped_tail_bytes`.
fn not_yet_created(path: PathBuf, magic: [u8; 4], dropped: u64) -> (HeaderStore, Loaded) {
    let file = StoreFile { path: path.clone(), file: None, magic, on_disk: 0, pending: Vec::new() };
    let store = HeaderStore { path, file: Some(file), next: 0, queue: Vec::new(), queued: 0 };
    (store, Loaded { headers: Vec::new(), dropped_tail_bytes: dropped })
}

/// Creates the store file at `path` atomically with its first `records` (temp file, sync,
/// rename over whatever empty or torn file was there, sync directory) and opens it.
fn create(path: &Path, magic: [u8; 4], records: &[u8]) -> Result<File, StoreError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);

    let write_tmp = || -> Result<(), StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(crate::base::sys::PRIVATE_FILE_MODE)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        f.write_all(&file_header(magic)).map_err(io_err("write", &tmp))?;
        f.write_all(records).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("sync", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err("rename into place", path))
    };
    if let Err(e) = write_tmp() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(&dir).and_then(|d| d.sync_all()).map_err(io_err("sync directory of", path))?;
    OpenOptions::new().read(true).write(true).open(path).map_err(io_err("open", path))
}

/// The file header for a store of the network with message start `magic`.
fn file_header(magic: [u8; 4]) -> [u8; FILE_HEADER_LEN] {
    let mut out = [0u8; FILE_HEADER_LEN];
    let (format, rest) = out.split_at_mut(FORMAT_MAGIC.len());
    format.copy_from_slice(&FORMAT_MAGIC);
    let (version, network) = rest.split_at_mut(4);
    version.copy_from_slice(&VERSION.to_le_bytes());
    network.copy_from_slice(&magic);
    out
}

/// Checks a complete file header read from disk against this network's.
fn check_file_header(path: &Path, head: &[u8; FILE_HEADER_LEN], magic: [u8; 4]) -> Result<(), StoreError> {
    let (format, rest) = head.split_at(FORMAT_MAGIC.len());
    if format != FORMAT_MAGIC {
        return Err(StoreError::BadFileHeader { path: path.to_path_buf(), reason: "format magic does not match" });
    }
    let (version, network) = rest.split_at(4);
    let version = version.try_into().map(u32::from_le_bytes).unwrap_or(0);
    if version != VERSION {
        return Err(StoreError::UnknownVersion { path: path.to_path_buf(), version });
    }
    let found: [u8; 4] = network.try_into().unwrap_or_default();
    if found != magic {
        return Err(StoreError::WrongNetwork { path: path.to_path_buf(), expected: magic, found });
    }
    Ok(())
}

/// File offset of record `index`.
fn record_offset(index: u64) -> u64 {
    FILE_HEADER_LEN as u64 + index * RECORD_LEN as u64
}

/// Consensus encoding of a block header (the same bytes as `bitcoin::consensus::serialize`).
fn encode_header(h: &Header) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    let fields: [&[u8]; 6] = [
        &h.version.to_consensus().to_le_bytes(),
        h.prev_blockhash.as_byte_array(),
        h.merkle_root.as_byte_array(),
        &h.time.to_le_bytes(),
        &h.bits.to_consensus().to_le_bytes(),
        &h.nonce.to_le_bytes(),
    ];
    let mut at = 0;
    for field in fields {
        out[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    out
}

/// The checksum of record `index` holding `header`.
fn checksum(index: u64, header: &[u8; HEADER_LEN]) -> [u8; 4] {
    let mut engine = sha256d::Hash::engine();
    engine.input(&index.to_le_bytes());
    engine.input(header);
    let [a, b, c, d, ..] = sha256d::Hash::from_engine(engine).to_byte_array();
    [a, b, c, d]
}

/// The header in record `index`, or `None` if the record is corrupt or misplaced.
fn decode_record(index: u64, record: &[u8; RECORD_LEN]) -> Option<Header> {
    let (header, sum) = record.split_first_chunk::<HEADER_LEN>()?;
    if sum != checksum(index, header) {
        return None;
    }
    bitcoin::consensus::deserialize(header).ok()
}

/// Reads until `buf` is full or end of file; returns the bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let Some(rest) = buf.get_mut(filled..) else { break };
        match r.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Builds the `map_err` closure for an I/O failure doing `action` on `path`.
fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    move |source| StoreError::Io { action, path: path.to_path_buf(), source }
}

/// Lower-case hex of a network magic, for messages.
fn hex(bytes: &[u8; 4]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
