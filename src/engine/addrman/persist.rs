//! The address manager's peers file: btcloop's own versioned, checksummed binary format, its
//! writer, its defensive reader (the bytes are untrusted) and the atomic save and load.
//!
//! Layout (integers little-endian unless said otherwise):
//!
//! | field | size |
//! |---|---|
//! | [`FILE_MAGIC`] `btcloopA` | 8 |
//! | format version ([`FORMAT_VERSION`]) | 1 |
//! | network magic (message start) | 4 |
//! | body length | 8 |
//! | body | body length |
//! | SHA256d of everything before it | 32 |
//!
//! The body: the placement key (32), the group rule code (1), the number of new buckets (u32),
//! the time of the last `good` (i64), the entry count (u32), then each entry: address (BIP155:
//! network id, CompactSize length, bytes), port (u16 big-endian), services (u64), time, last
//! try, last counted attempt, last success (i64 each), attempts (i32), source address (BIP155),
//! and the number of new buckets it is in (u8, 0 for a tried entry) followed by those buckets
//! (u16 each). Positions in a bucket are not stored: they follow from the key.
//!
//! As Core, reading restores each new entry to the buckets it was in when the group rule and
//! bucket count are unchanged, and otherwise re-buckets it by its primary source; tried entries
//! are placed where the key puts them. Entries that collide, or whose address is not valid and
//! routable (under the rule), are dropped, as Core drops invalid ones.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use bitcoin::consensus::encode::serialize as consensus_serialize;
use bitcoin::hashes::{Hash, sha256d};
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::AddrV2;

use super::table::{self, Id};
use super::{
    ADDRMAN_BUCKET_SIZE, ADDRMAN_NEW_BUCKET_COUNT, ADDRMAN_NEW_BUCKETS_PER_ADDRESS, ADDRMAN_TRIED_BUCKET_COUNT,
    AddrEntry, AddrMan, EntryInfo, Inconsistency,
};
use crate::base::netgroup::{NetGroupRule, View};
use crate::base::sys::write_atomically;

/// The first 8 bytes of a btcloop peers file.
pub const FILE_MAGIC: [u8; 8] = *b"btcloopA";

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Bytes before the body: file magic, version, network magic, body length.
const HEADER_LEN: usize = 8 + 1 + 4 + 8;
/// Bytes of the checksum after the body.
const CHECKSUM_LEN: usize = 32;
/// The most entries the tables can hold.
const MAX_ENTRIES: u64 = ((ADDRMAN_NEW_BUCKET_COUNT + ADDRMAN_TRIED_BUCKET_COUNT) * ADDRMAN_BUCKET_SIZE) as u64;
/// The latest time a stored address time may hold: Core keeps an address's time as a 32-bit
/// count of seconds (until 2106). Later times, and negative address times, are clamped on
/// load (with a warning), so the address manager's time arithmetic never overflows.
pub const MAX_STORED_TIME: i64 = u32::MAX as i64;
/// The longest address BIP155 allows.
const MAX_ADDRV2_SIZE: u64 = 512;

/// Reading a peers file failed.
#[derive(Debug, thiserror::Error)]
pub enum AddrManError {
    /// The file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not a btcloop peers file: it does not start with `btcloopA`.
    #[error("not a btcloop peers file (bad magic)")]
    BadMagic,
    /// A format version this build cannot read.
    #[error("unsupported peers file format version {0} (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion(u8),
    /// The file belongs to another network (its network magic differs).
    #[error("peers file of another network (magic {found:02x?}, expected {expected:02x?})")]
    WrongNetwork {
        /// This node's network magic.
        expected: [u8; 4],
        /// The file's.
        found: [u8; 4],
    },
    /// The file ends before the data it declares.
    #[error("peers file truncated")]
    Truncated,
    /// Bytes follow the checksum.
    #[error("unexpected data after the peers file's checksum")]
    TrailingData,
    /// The checksum does not match the contents: the file was damaged.
    #[error("peers file checksum mismatch")]
    ChecksumMismatch,
    /// The file declares more entries than the tables can hold.
    #[error("peers file declares {0} entries, more than the {MAX_ENTRIES} the tables hold")]
    TooManyEntries(u64),
    /// An entry cannot be restored (a malformed field or a duplicate address).
    #[error("peers file entry {index}: {what}")]
    InconsistentEntry {
        /// The entry's index in the file.
        index: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// The restored tables fail the consistency check.
    #[error("peers file contents are inconsistent: {0}")]
    Inconsistent(Inconsistency),
}

/// Saving or loading a peers file failed; names the file.
#[derive(Debug)]
pub struct AddrManFileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub error: AddrManError,
}

impl AddrManFileError {
    /// Whether the file does not exist (a first start, not an error to report).
    pub fn is_not_found(&self) -> bool {
        matches!(&self.error, AddrManError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

impl fmt::Display for AddrManFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)?;
        if !matches!(self.error, AddrManError::Io(_)) {
            write!(f, "; move the file away to start with an empty address manager")?;
        }
        Ok(())
    }
}

impl std::error::Error for AddrManFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// A cursor over untrusted bytes; running past the end is [`AddrManError::Truncated`].
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], AddrManError> {
        let end = self.pos.checked_add(n).ok_or(AddrManError::Truncated)?;
        let s = self.bytes.get(self.pos..end).ok_or(AddrManError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], AddrManError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, AddrManError> {
        Ok(u8::from_le_bytes(self.array()?))
    }

    fn u16_le(&mut self) -> Result<u16, AddrManError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32_le(&mut self) -> Result<u32, AddrManError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn i32_le(&mut self) -> Result<i32, AddrManError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    fn u64_le(&mut self) -> Result<u64, AddrManError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i64_le(&mut self) -> Result<i64, AddrManError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// Bitcoin's CompactSize (non-canonical forms accepted; the caller bounds the value).
    fn compact_size(&mut self) -> Result<u64, AddrManError> {
        Ok(match self.u8()? {
            n @ 0..=252 => u64::from(n),
            253 => u64::from(u16::from_le_bytes(self.array()?)),
            254 => u64::from(self.u32_le()?),
            _ => self.u64_le()?,
        })
    }

    /// A BIP155 address; unknown networks (and TorV2) are read as [`AddrV2::Unknown`] /
    /// [`AddrV2::TorV2`], which are not valid and get dropped, as Core reads them.
    fn addr(&mut self, index: usize) -> Result<AddrV2, AddrManError> {
        let bad = |what| AddrManError::InconsistentEntry { index, what };
        let net = self.u8()?;
        let len = self.compact_size()?;
        if len > MAX_ADDRV2_SIZE {
            return Err(bad("address longer than BIP155 allows"));
        }
        let bytes = self.take(len as usize)?;
        let wrong = |_| bad("address length wrong for its network");
        Ok(match net {
            1 => AddrV2::Ipv4(<[u8; 4]>::try_from(bytes).map_err(wrong)?.into()),
            2 => AddrV2::Ipv6(<[u8; 16]>::try_from(bytes).map_err(wrong)?.into()),
            4 => AddrV2::TorV3(<[u8; 32]>::try_from(bytes).map_err(wrong)?),
            5 => AddrV2::I2p(<[u8; 32]>::try_from(bytes).map_err(wrong)?),
            6 => AddrV2::Cjdns(<[u8; 16]>::try_from(bytes).map_err(wrong)?.into()),
            other => AddrV2::Unknown(other, bytes.to_vec()),
        })
    }

    fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

impl AddrMan {
    /// The peers file for network `magic` (see the module documentation for the layout).
    pub fn serialize(&self, magic: [u8; 4]) -> Vec<u8> {
        let mut buckets: BTreeMap<Id, Vec<u16>> = BTreeMap::new();
        for (bucket, _, id) in self.new_table.occupied() {
            buckets.entry(id).or_default().push(bucket as u16);
        }
        let mut body = Vec::with_capacity(64 + self.map_info.len() * 80);
        body.extend_from_slice(&self.key);
        body.push(self.rule.code());
        body.extend_from_slice(&(ADDRMAN_NEW_BUCKET_COUNT as u32).to_le_bytes());
        body.extend_from_slice(&self.last_good.to_le_bytes());
        body.extend_from_slice(&(self.map_info.len() as u32).to_le_bytes());
        for (id, slot) in &self.map_info {
            let info = &slot.info;
            body.extend_from_slice(&consensus_serialize(&info.entry.addr));
            body.extend_from_slice(&info.entry.port.to_be_bytes());
            body.extend_from_slice(&info.entry.services.to_u64().to_le_bytes());
            for t in [info.entry.time, info.last_try, info.last_count_attempt, info.last_success] {
                body.extend_from_slice(&t.to_le_bytes());
            }
            body.extend_from_slice(&info.attempts.to_le_bytes());
            body.extend_from_slice(&consensus_serialize(&info.source));
            let in_buckets = buckets.get(id).map(Vec::as_slice).unwrap_or_default();
            body.push(in_buckets.len() as u8);
            for b in in_buckets {
                body.extend_from_slice(&b.to_le_bytes());
            }
        }
        let mut out = Vec::with_capacity(HEADER_LEN + body.len() + CHECKSUM_LEN);
        out.extend_from_slice(&FILE_MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&magic);
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&body);
        let checksum = sha256d::Hash::hash(&out).to_byte_array();
        out.extend_from_slice(&checksum);
        out
    }

    /// Reads a peers file written by [`Self::serialize`] for network `magic`, with randomness
    /// seeded by `seed` and grouping by `rule`.
    pub fn deserialize(bytes: &[u8], magic: [u8; 4], seed: u64, rule: NetGroupRule) -> Result<AddrMan, AddrManError> {
        let mut r = Reader { bytes, pos: 0 };
        let file_magic: [u8; 8] = match r.array() {
            Ok(m) => m,
            // Too short to hold the magic: bad magic unless what is there is its beginning.
            Err(_) if !FILE_MAGIC.starts_with(bytes) => return Err(AddrManError::BadMagic),
            Err(e) => return Err(e),
        };
        if file_magic != FILE_MAGIC {
            return Err(AddrManError::BadMagic);
        }
        let version = r.u8()?;
        if version != FORMAT_VERSION {
            return Err(AddrManError::UnsupportedVersion(version));
        }
        let found: [u8; 4] = r.array()?;
        if found != magic {
            return Err(AddrManError::WrongNetwork { expected: magic, found });
        }
        let body_len = usize::try_from(r.u64_le()?).map_err(|_| AddrManError::Truncated)?;
        let total = HEADER_LEN.checked_add(body_len).and_then(|n| n.checked_add(CHECKSUM_LEN));
        match total {
            Some(t) if bytes.len() > t => return Err(AddrManError::TrailingData),
            Some(t) if bytes.len() == t => {}
            _ => return Err(AddrManError::Truncated),
        }
        let (covered, checksum) = bytes.split_at_checked(HEADER_LEN + body_len).ok_or(AddrManError::Truncated)?;
        if sha256d::Hash::hash(covered).to_byte_array()[..] != *checksum {
            return Err(AddrManError::ChecksumMismatch);
        }
        let mut body = Reader { bytes: covered.get(HEADER_LEN..).ok_or(AddrManError::Truncated)?, pos: 0 };
        let man = read_body(&mut body, seed, rule)?;
        if !body.at_end() {
            return Err(AddrManError::TrailingData);
        }
        man.check().map_err(AddrManError::Inconsistent)?;
        Ok(man)
    }

    /// Writes the peers file for network `magic` to `path` atomically (a crash leaves the old
    /// file or the new one).
    pub fn save(&self, path: &Path, magic: [u8; 4]) -> Result<(), AddrManFileError> {
        write_atomically(path, &self.serialize(magic))
            .map_err(|e| AddrManFileError { path: path.to_path_buf(), error: AddrManError::Io(e) })
    }

    /// Reads the peers file at `path` for network `magic` (see [`Self::deserialize`]).
    pub fn load(path: &Path, magic: [u8; 4], seed: u64, rule: NetGroupRule) -> Result<AddrMan, AddrManFileError> {
        let named = |error| AddrManFileError { path: path.to_path_buf(), error };
        let bytes = std::fs::read(path).map_err(|e| named(AddrManError::Io(e)))?;
        AddrMan::deserialize(&bytes, magic, seed, rule).map_err(named)
    }

    /// Puts a read entry back. `buckets` empty means tried. Returns whether it found a place.
    fn restore(&mut self, info: EntryInfo, buckets: &[u16], keep_buckets: bool) -> bool {
        if buckets.is_empty() {
            let (bucket, pos) = self.tried_position(&info.entry);
            if self.tried_table.get(bucket, pos).is_some() {
                return false;
            }
            let id = self.create(info.entry.clone(), info.source.clone());
            let net = View::of(&info.entry.addr).network(self.rule).index();
            if let Some(slot) = self.slot_mut(id) {
                slot.info = info;
                slot.in_tried = true;
            }
            self.n_new -= 1;
            self.n_tried += 1;
            self.network_counts[net].new -= 1;
            self.network_counts[net].tried += 1;
            self.tried_table.set(bucket, pos, Some(id));
            return true;
        }
        let (addr, port) = (info.entry.addr.clone(), info.entry.port);
        let (primary, _) = self.primary_new_position(&info);
        let id = self.create(info.entry.clone(), info.source.clone());
        if let Some(slot) = self.slot_mut(id) {
            slot.info = info;
        }
        let mut refs = 0u8;
        for &b in buckets {
            let b = usize::from(b);
            let stored = (keep_buckets && b < ADDRMAN_NEW_BUCKET_COUNT)
                .then(|| (b, table::bucket_position(&self.key, true, b, &addr, port)))
                .filter(|&(b, p)| self.new_table.get(b, p).is_none());
            let (bucket, pos) =
                stored.unwrap_or_else(|| (primary, table::bucket_position(&self.key, true, primary, &addr, port)));
            if self.new_table.get(bucket, pos).is_none() {
                self.new_table.set(bucket, pos, Some(id));
                refs += 1;
            }
        }
        if let Some(slot) = self.slot_mut(id) {
            slot.ref_count = refs;
        }
        if refs == 0 {
            self.delete(id);
        }
        refs > 0
    }
}

/// Reads the body (after the checksum has been verified).
fn read_body(r: &mut Reader<'_>, seed: u64, rule: NetGroupRule) -> Result<AddrMan, AddrManError> {
    let key: [u8; 32] = r.array()?;
    let rule_code = r.u8()?;
    let new_buckets = r.u32_le()?;
    let last_good = r.i64_le()?;
    let count = u64::from(r.u32_le()?);
    if count > MAX_ENTRIES {
        return Err(AddrManError::TooManyEntries(count));
    }
    let keep_buckets = rule_code == rule.code() && new_buckets as usize == ADDRMAN_NEW_BUCKET_COUNT;
    let mut man = AddrMan::new(key, seed, rule);
    let mut clamped = usize::from(!(0..=MAX_STORED_TIME).contains(&last_good));
    man.last_good = last_good.clamp(0, MAX_STORED_TIME);
    // No allocation sized by the count: entries are read and placed one at a time.
    for index in 0..count as usize {
        let bad = |what| AddrManError::InconsistentEntry { index, what };
        let addr = r.addr(index)?;
        let port = u16::from_be_bytes(r.array()?);
        let services = ServiceFlags::from(r.u64_le()?);
        let time = r.i64_le()?;
        let last_try = r.i64_le()?;
        let last_count_attempt = r.i64_le()?;
        let last_success = r.i64_le()?;
        let attempts = r.i32_le()?;
        let source = r.addr(index)?;
        let refs = r.u8()?;
        if refs > ADDRMAN_NEW_BUCKETS_PER_ADDRESS {
            return Err(bad("in more new buckets than an address can be"));
        }
        let mut buckets = [0u16; ADDRMAN_NEW_BUCKETS_PER_ADDRESS as usize];
        for b in buckets.iter_mut().take(usize::from(refs)) {
            *b = r.u16_le()?;
        }
        if last_try < 0 || last_success < 0 || last_count_attempt < 0 || attempts < 0 {
            return Err(bad("negative time or attempt count"));
        }
        if refs == 0 && last_success == 0 {
            return Err(bad("tried but never connected"));
        }
        // As Core drops invalid addresses (and unknown networks) on load.
        let view = View::of(&addr);
        if !view.is_valid() || !view.routable_under(rule) {
            continue;
        }
        let addr = super::canonical(&addr);
        if man.find(&addr, port).is_some() {
            return Err(bad("duplicate address"));
        }
        let in_range = |t: i64| t.clamp(0, MAX_STORED_TIME);
        let (time, last_try, last_count_attempt, last_success) =
            if [time, last_try, last_count_attempt, last_success].iter().all(|t| (0..=MAX_STORED_TIME).contains(t)) {
                (time, last_try, last_count_attempt, last_success)
            } else {
                clamped += 1;
                (in_range(time), in_range(last_try), in_range(last_count_attempt), in_range(last_success))
            };
        let entry = AddrEntry { addr, port, services, time };
        let source = super::canonical(&source);
        let info = EntryInfo { entry, source, last_try, last_count_attempt, last_success, attempts };
        man.restore(info, &buckets[..usize::from(refs)], keep_buckets);
    }
    if clamped > 0 {
        tracing::warn!("peers.dat: {clamped} address times out of range (0..={MAX_STORED_TIME}) clamped on load");
    }
    Ok(man)
}
