//! Message capture (Core's `-capturemessages`): every message a peer sent us and we sent it,
//! at processing time, appended to `message_capture/<addr>/msgs_recv.dat` and `msgs_sent.dat`
//! in the network's data directory in Core's record format, so Core's
//! `message-capture-parser.py` reads them; and the reader `btcloop-cli decode-capture` uses.
//!
//! Record: time (µs since the Unix epoch, u64 LE) | message type (12 bytes, NUL padded) |
//! payload length (u32 LE) | payload.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::base::transport::COMMAND_SIZE;

/// Bytes before the payload in a record.
pub const RECORD_HEADER: usize = 8 + COMMAND_SIZE + 4;

/// Core's directory name for a peer: its `addr:port` with every `:` replaced by `_`.
pub fn peer_dir_name(addr: &SocketAddr) -> String {
    addr.to_string().replace(':', "_")
}

/// Appends one record to `out`.
pub fn encode_record(time_us: u64, command: &str, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&time_us.to_le_bytes());
    let mut cmd = [0u8; COMMAND_SIZE];
    let n = command.len().min(COMMAND_SIZE);
    cmd[..n].copy_from_slice(&command.as_bytes()[..n]);
    out.extend_from_slice(&cmd);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
}

/// One record read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// µs since the Unix epoch.
    pub time_us: u64,
    /// The message type (up to the first NUL).
    pub command: String,
    /// The payload.
    pub payload: &'a [u8],
}

/// Reads the records of a capture file's contents. A truncated last record (a capture cut
/// short by a crash) ends the list; its offset is returned as the second value.
pub fn parse_records(bytes: &[u8]) -> (Vec<Record<'_>>, Option<usize>) {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let Some(head) = bytes.get(pos..pos + RECORD_HEADER) else { return (out, Some(pos)) };
        let mut t = [0u8; 8];
        t.copy_from_slice(&head[..8]);
        let cmd = &head[8..8 + COMMAND_SIZE];
        let mut l = [0u8; 4];
        l.copy_from_slice(&head[8 + COMMAND_SIZE..]);
        let len = u32::from_le_bytes(l) as usize;
        let Some(payload) = bytes.get(pos + RECORD_HEADER..pos + RECORD_HEADER + len) else { return (out, Some(pos)) };
        let end = cmd.iter().position(|&b| b == 0).unwrap_or(COMMAND_SIZE);
        let command = String::from_utf8_lossy(&cmd[..end]).into_owned();
        out.push(Record { time_us: u64::from_le_bytes(t), command, payload });
        pos += RECORD_HEADER + len;
    }
    (out, None)
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// The open capture files of one peer (message handler only).
#[derive(Debug)]
pub struct PeerCapture {
    recv: File,
    sent: File,
    record: Vec<u8>,
}

impl PeerCapture {
    /// Opens (appending) the capture files of the peer at `addr` under `net_dir`.
    pub fn open(net_dir: &Path, addr: &SocketAddr) -> io::Result<PeerCapture> {
        let dir: PathBuf = net_dir.join("message_capture").join(peer_dir_name(addr));
        std::fs::create_dir_all(&dir)?;
        let open = |name| OpenOptions::new().create(true).append(true).open(dir.join(name));
        Ok(PeerCapture { recv: open("msgs_recv.dat")?, sent: open("msgs_sent.dat")?, record: Vec::new() })
    }

    /// Records a message received from the peer.
    pub fn received(&mut self, command: &str, payload: &[u8]) -> io::Result<()> {
        self.record.clear();
        encode_record(now_us(), command, payload, &mut self.record);
        self.recv.write_all(&self.record)
    }

    /// Records a message sent to the peer.
    pub fn sent(&mut self, command: &str, payload: &[u8]) -> io::Result<()> {
        self.record.clear();
        encode_record(now_us(), command, payload, &mut self.record);
        self.sent.write_all(&self.record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_in_cores_layout() {
        let mut buf = Vec::new();
        encode_record(1_700_000_000_123_456, "ping", &7u64.to_le_bytes(), &mut buf);
        encode_record(1_700_000_000_200_000, "verack", &[], &mut buf);
        assert_eq!(&buf[..8], &1_700_000_000_123_456u64.to_le_bytes());
        assert_eq!(&buf[8..20], b"ping\0\0\0\0\0\0\0\0");
        assert_eq!(&buf[20..24], &8u32.to_le_bytes());
        let (records, torn) = parse_records(&buf);
        assert_eq!(torn, None);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].command, "ping");
        assert_eq!(records[0].payload, &7u64.to_le_bytes());
        assert_eq!(records[1].command, "verack");
        // A record cut short is reported, the ones before it kept.
        let (records, torn) = parse_records(&buf[..buf.len() - 3]);
        assert_eq!((records.len(), torn), (1, Some(32)));
    }

    #[test]
    fn directory_names_follow_core() {
        assert_eq!(peer_dir_name(&"127.0.0.1:18444".parse().unwrap()), "127.0.0.1_18444");
        assert_eq!(peer_dir_name(&"[::1]:8333".parse().unwrap()), "[__1]_8333");
    }
}
