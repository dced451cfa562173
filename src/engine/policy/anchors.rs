//! `anchors.dat` (Core's anchors): the block-relay-only peers open at shutdown, dialed first at
//! the next start so that a restart does not hand an attacker a fresh set of slots. Own format:
//! network magic, version byte, count, then per address its services (u64 LE), time (i64 LE),
//! BIP155 address and port (u16 BE), and a SHA256d checksum of all that. Written atomically;
//! read once at start and deleted, as Core does.

use std::io;
use std::path::Path;

use bitcoin::consensus::{Decodable, Encodable};
use bitcoin::hashes::{Hash, sha256d};
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::AddrV2;

use crate::engine::addrman::AddrEntry;
use crate::engine::policy::outbound::MAX_ANCHORS;

/// The file's name in the network's data directory.
pub const ANCHORS_FILE: &str = "anchors.dat";
/// The format version written.
pub const VERSION: u8 = 1;
/// The latest address time read back (Core's 32-bit seconds, as `peers.dat`'s); later and
/// negative times are clamped so no arithmetic on them can overflow.
const MAX_ADDR_TIME: i64 = u32::MAX as i64;

/// Why `anchors.dat` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AnchorsError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// The content is damaged, of another network or another version.
    #[error("invalid {path}: {what}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        what: &'static str,
    },
}

/// The file's bytes for `anchors` (at most [`MAX_ANCHORS`] are kept).
pub fn serialize(magic: [u8; 4], anchors: &[AddrEntry]) -> Vec<u8> {
    let mut out = magic.to_vec();
    out.push(VERSION);
    let kept = &anchors[..anchors.len().min(MAX_ANCHORS)];
    out.push(kept.len() as u8);
    for a in kept {
        out.extend_from_slice(&a.services.to_u64().to_le_bytes());
        out.extend_from_slice(&a.time.to_le_bytes());
        // Writing to a Vec cannot fail.
        let _ = a.addr.consensus_encode(&mut out);
        out.extend_from_slice(&a.port.to_be_bytes());
    }
    let sum = sha256d::Hash::hash(&out).to_byte_array();
    out.extend_from_slice(&sum);
    out
}

/// Parses the file's bytes.
pub fn deserialize(bytes: &[u8], magic: [u8; 4]) -> Result<Vec<AddrEntry>, &'static str> {
    let body_len = bytes.len().checked_sub(32).ok_or("too short")?;
    let (body, sum) = bytes.split_at(body_len);
    if sha256d::Hash::hash(body).to_byte_array() != sum {
        return Err("checksum mismatch");
    }
    let (head, mut rest) = body.split_at_checked(6).ok_or("too short")?;
    if head[..4] != magic {
        return Err("written for another network");
    }
    if head[4] != VERSION {
        return Err("unknown version");
    }
    let count = usize::from(head[5]);
    if count > MAX_ANCHORS {
        return Err("too many entries");
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let (fixed, tail) = rest.split_at_checked(16).ok_or("truncated")?;
        let services = u64::from_le_bytes(fixed[..8].try_into().map_err(|_| "truncated")?);
        let time = i64::from_le_bytes(fixed[8..].try_into().map_err(|_| "truncated")?);
        let mut cursor = tail;
        let addr = AddrV2::consensus_decode(&mut cursor).map_err(|_| "bad address")?;
        let (port, tail) = cursor.split_at_checked(2).ok_or("truncated")?;
        let port = u16::from_be_bytes([port[0], port[1]]);
        // As peers.dat's: address times are Core's 32-bit seconds; anything else is clamped.
        let time = time.clamp(0, MAX_ADDR_TIME);
        out.push(AddrEntry::new(addr, port, ServiceFlags::from(services), time));
        rest = tail;
    }
    if !rest.is_empty() {
        return Err("trailing bytes");
    }
    Ok(out)
}

/// Writes `anchors` to `path` atomically.
pub fn save(path: &Path, magic: [u8; 4], anchors: &[AddrEntry]) -> io::Result<()> {
    crate::base::sys::write_atomically(path, &serialize(magic, anchors))
}

/// Reads and deletes `path` (Core's `ReadAnchors`): a missing file is no anchors.
pub fn take(path: &Path, magic: [u8; 4]) -> Result<Vec<AddrEntry>, AnchorsError> {
    let shown = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(AnchorsError::Io { path: shown, source }),
    };
    // Removed whatever it holds: anchors are used once.
    let _ = std::fs::remove_file(path);
    deserialize(&bytes, magic).map_err(|what| AnchorsError::Invalid { path: shown, what })
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];

    fn entries() -> Vec<AddrEntry> {
        vec![
            AddrEntry::new(AddrV2::Ipv4(Ipv4Addr::new(1, 2, 3, 4)), 8333, ServiceFlags::NETWORK, 1_700_000_000),
            AddrEntry::new(AddrV2::Ipv6(Ipv6Addr::new(0x2a00, 1, 0, 0, 0, 0, 0, 5)), 18444, ServiceFlags::WITNESS, 7),
        ]
    }

    #[test]
    fn round_trip_and_at_most_two() {
        let mut three = entries();
        three.push(entries()[0].clone());
        let bytes = serialize(MAGIC, &three);
        assert_eq!(deserialize(&bytes, MAGIC).unwrap(), entries());
    }

    #[test]
    fn damage_is_reported_never_panics() {
        let bytes = serialize(MAGIC, &entries());
        assert_eq!(deserialize(&bytes, [0; 4]), Err("written for another network"));
        for cut in 0..bytes.len() {
            assert!(deserialize(&bytes[..cut], MAGIC).is_err(), "truncated at {cut}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(deserialize(&b, MAGIC).is_err(), "flipped byte {i}");
        }
    }

    #[test]
    fn times_out_of_range_are_clamped() {
        let mut far = entries();
        far[0].time = i64::MIN;
        far[1].time = i64::MAX;
        let read = deserialize(&serialize(MAGIC, &far), MAGIC).unwrap();
        assert_eq!((read[0].time, read[1].time), (0, MAX_ADDR_TIME));
    }

    #[test]
    fn take_reads_once_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ANCHORS_FILE);
        assert!(take(&path, MAGIC).unwrap().is_empty(), "missing file: no anchors");
        save(&path, MAGIC, &entries()).unwrap();
        assert_eq!(take(&path, MAGIC).unwrap(), entries());
        assert!(!path.exists(), "deleted after reading");
        std::fs::write(&path, b"garbage").unwrap();
        let err = take(&path, MAGIC).unwrap_err().to_string();
        assert!(err.contains("anchors.dat"), "{err}");
        assert!(!path.exists());
    }
}
