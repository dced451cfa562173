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
//! A new file is created whole: its file header is written to a temporary file in the same
//! directory, synced, and renamed over the final name (then the directory is synced), so a crash
//! during creation leaves either no file or a complete one. Records are only ever appended:
//! [`HeaderStore::flush`] writes every queued record with one `write_all` at the end recorded at
//! open and then `fdatasync`s. A crash or `kill -9` can therefore lose only records that were not
//! yet flushed, and at worst leave a partial or garbled tail; [`HeaderStore::open`] keeps every
//! intact record before the first bad one and truncates the rest away (`set_len` + sync),
//! reporting how many bytes it dropped. A file that is not a btcloop header file, or belongs to
//! another network or format version, is an error and is never modified.
//!
//! The store does not check that headers link up; the node re-inserts them in order on start and
//! validates them there.

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

/// The open header store file.
///
/// Appends are queued in memory until [`flush`](HeaderStore::flush). Dropping the store does
/// **not** flush: queued records are discarded, exactly as if the process had crashed. The node
/// flushes explicitly after each accepted batch, on a timer and at shutdown.
#[derive(Debug)]
pub struct HeaderStore {
    path: PathBuf,
    /// The open file; `None` until the first flush creates it (opening never writes).
    file: Option<File>,
    /// The network's message start, for the file header of a file still to be created.
    magic: [u8; 4],
    /// Records durably on disk (written and synced).
    on_disk: u64,
    /// Encoded records waiting for `flush`.
    queue: Vec<u8>,
    /// Number of records in `queue`.
    queued: u64,
}

impl HeaderStore {
    /// Opens (creating if missing) the store at `path` for the network with message start
    /// `magic`; reads every intact record; a torn or corrupt tail (partial record, or a record
    /// whose checksum fails, and everything after it) is truncated away and reported in
    /// `dropped_tail_bytes`.
    ///
    /// A missing or empty file, or one holding only a prefix of this network's file header (a
    /// torn creation by some other writer), is (re)created atomically by the first [`flush`]
    /// that has records to write, so opening a new store writes (and syncs) nothing. Anything
    /// else that does not start with this network's file header is an error and the file is
    /// left untouched.
    ///
    /// [`flush`]: HeaderStore::flush
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

        let capacity = (file_len.saturating_sub(FILE_HEADER_LEN as u64) / RECORD_LEN as u64).min(1 << 22);
        let mut headers = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        let mut record = [0u8; RECORD_LEN];
        loop {
            let got = read_up_to(&mut reader, &mut record).map_err(io_err("read", &path))?;
            if got < RECORD_LEN {
                break;
            }
            match decode_record(headers.len() as u64, &record) {
                Some(header) => headers.push(header),
                None => break,
            }
        }
        drop(reader);

        let on_disk = headers.len() as u64;
        let end = record_offset(on_disk);
        let dropped_tail_bytes = file_len.saturating_sub(end);
        if dropped_tail_bytes > 0 {
            file.set_len(end).map_err(io_err("truncate", &path))?;
            file.sync_all().map_err(io_err("sync", &path))?;
        }
        let store = HeaderStore { path, file: Some(file), magic, on_disk, queue: Vec::new(), queued: 0 };
        Ok((store, Loaded { headers, dropped_tail_bytes }))
    }

    /// Queues headers for writing (buffered in memory; cheap).
    pub fn append(&mut self, headers: &[Header]) {
        self.queue.reserve(headers.len() * RECORD_LEN);
        for header in headers {
            let index = self.on_disk + self.queued;
            let bytes = encode_header(header);
            self.queue.extend_from_slice(&bytes);
            self.queue.extend_from_slice(&checksum(index, &bytes));
            self.queued += 1;
        }
    }

    /// Writes queued records and makes them durable (write + fdatasync). Called after each batch
    /// the node accepts (a `headers` message of up to 2,000), on a timer and at shutdown.
    ///
    /// On error the records stay queued and a later `flush` rewrites all of them at the same
    /// offset (so a partial write is overwritten, and a failed sync is never trusted to have
    /// persisted anything).
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if self.queue.is_empty() {
            return Ok(());
        }
        match self.file.as_mut() {
            Some(file) => {
                let end = record_offset(self.on_disk);
                file.seek(SeekFrom::Start(end)).map_err(io_err("seek", &self.path))?;
                file.write_all(&self.queue).map_err(io_err("write", &self.path))?;
                file.sync_data().map_err(io_err("sync", &self.path))?;
            }
            None => self.file = Some(create(&self.path, self.magic, &self.queue)?),
        }
        self.on_disk += self.queued;
        self.queued = 0;
        self.queue.clear();
        Ok(())
    }

    /// Number of records on disk plus queued.
    pub fn len(&self) -> u64 {
        self.on_disk + self.queued
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

/// A store whose file does not exist yet (or is empty or torn and will be replaced); `dropped`
/// is reported as `dropped_tail_bytes`.
fn not_yet_created(path: PathBuf, magic: [u8; 4], dropped: u64) -> (HeaderStore, Loaded) {
    let store = HeaderStore { path, file: None, magic, on_disk: 0, queue: Vec::new(), queued: 0 };
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
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
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
