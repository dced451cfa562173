//! The per-peer state that really crosses threads (Core's `vProcessMsg`, `vSendMsg`,
//! `fPauseRecv`, `fPauseSend` and the byte counters): the socket, the process queue the socket
//! handler fills, the send queue the message handler fills, and atomic statistics.
//!
//! Queues hold bytes, not per-message allocations: the process queue stores each checked frame
//! as `type (12) | length (4) | receive time (8) | checksum (4) | payload`, the send queue stores encoded
//! v1 frames back to back. A v2 connection's frames are sealed (encrypted) as they are written,
//! a batch at a time ([`Seal`]), into a second byte queue that also carries the handshake. A large payload the decoder assembled across reads is not copied into the
//! byte queue: its entry has no inline payload (bit 31 of the length set) and the buffer itself
//! waits, by value, in a side queue; the message handler takes it over without a copy and frees
//! it after processing. Both count toward the receive limit.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use mio::net::TcpStream;
use parking_lot::Mutex;

use super::transport::TransportKind;
use crate::base::peer::PeerId;
use crate::base::totals::NetTotals;
use crate::base::transport::{COMMAND_SIZE, Command};

const ENTRY_HEADER: usize = COMMAND_SIZE + 4 + 8 + 4;
/// Length-field flag of an entry whose payload waits in the side queue.
const OUT_OF_LINE: u32 = 1 << 31;
/// Consumed process-queue bytes are compacted away once they exceed this.
const COMPACT_AT: usize = 64 * 1024;
/// A drained buffer keeps at most this much capacity.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Allocation size from which the C allocator maps memory directly (and unmaps it on free).
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Makes the process's large buffers (partial payloads, out-of-line messages, send queues)
/// go back to the system when freed: glibc raises its mmap threshold after the first large
/// buffer is freed, after which 4 MB buffers come from the heap arenas and stay there once a
/// flood of large messages is over (hundreds of MB). Fixing the threshold keeps every buffer
/// of 128 KiB or more mapped on its own, grown in place (`mremap`) and returned on free.
/// Call once at start, before the threads; elsewhere than glibc it does nothing.
pub fn bound_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes allocator tuning; it is called before other threads run.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Counters any thread may read.
#[derive(Debug, Default)]
pub struct PeerStats {
    /// Bytes written to the socket.
    pub bytes_sent: AtomicU64,
    /// Bytes read from the socket.
    pub bytes_recv: AtomicU64,
    /// Microseconds since node start of the last write, 0 if none yet.
    pub last_send_us: AtomicU64,
    /// Microseconds since node start of the last read, 0 if none yet.
    pub last_recv_us: AtomicU64,
    /// Whole messages queued for processing.
    pub msgs_recv: AtomicU64,
    /// Messages dropped for a bad checksum or a malformed type.
    pub msgs_rejected: AtomicU64,
    /// Times reading was paused because the process queue was full.
    pub pause_recv_events: AtomicU64,
    /// Times processing was paused because the send queue was full.
    pub pause_send_events: AtomicU64,
    /// Set by the message handler once `verack` has been received.
    pub handshake_complete: AtomicBool,
    /// Smallest ping round trip in µs, 0 before the first pong (set by the message handler,
    /// read by the socket handler's eviction).
    pub min_ping_us: AtomicU64,
    /// The peer offers the services we want from outbound peers (Core's `fRelevantServices`).
    pub relevant_services: AtomicBool,
    /// The peer asked for transaction relay in its `version`.
    pub relay_txs: AtomicBool,
    /// Unix seconds when the peer last gave us a new best header, 0 if never (Core's
    /// `m_last_block_time`; set by the message handler, for inbound eviction's protection of
    /// the four peers that most recently did).
    pub last_block_time: AtomicI64,
    /// The connection's transport (set by the socket handler; read with
    /// [`PeerStats::transport`]).
    transport: std::sync::atomic::AtomicU8,
    /// The BIP324 session id once a v2 handshake has it.
    pub session_id: Mutex<Option<[u8; 32]>>,
}

impl PeerStats {
    /// The connection's transport.
    pub fn transport(&self) -> TransportKind {
        TransportKind::from_code(self.transport.load(Ordering::Relaxed))
    }

    /// Publishes the connection's transport (socket handler).
    pub fn set_transport(&self, kind: TransportKind) {
        self.transport.store(kind.code(), Ordering::Relaxed);
    }
}

/// One message taken off the process queue.
#[derive(Clone, Copy, Debug)]
pub struct Popped {
    /// Message type.
    pub command: Command,
    /// When the socket handler decoded it (µs since node start).
    pub recv_time_us: u64,
    /// Its verified header checksum.
    pub checksum: [u8; 4],
    /// Whether more messages remain queued.
    pub more: bool,
    /// Whether this pop brought the queue back under the receive limit (reading may resume).
    pub resumed: bool,
}

/// Result of handing frames to the process queue.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pushed {
    /// The queue was not in the message handler's work set and now is.
    pub newly_ready: bool,
    /// The queue is over the receive limit: stop reading this peer.
    pub paused: bool,
}

/// Result of writing the send queue.
#[derive(Clone, Copy, Debug, Default)]
pub struct Written {
    /// Bytes written by this call.
    pub bytes: usize,
    /// Bytes still queued.
    pub left: usize,
    /// The queue fell from above the send limit to at most it.
    pub unpaused: bool,
}

/// A byte FIFO: appended at the back, consumed from the front. Consumed bytes are reclaimed
/// when the queue empties (dropping a buffer grown past [`KEEP_CAPACITY`]) or once they are
/// more than half of it and over [`COMPACT_AT`].
#[derive(Debug, Default)]
struct ByteQueue {
    buf: Vec<u8>,
    pos: usize,
}

impl ByteQueue {
    fn len(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn unread(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            }
        } else if self.pos > COMPACT_AT && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Frees the buffer if nothing is queued.
    fn release_if_empty(&mut self) {
        if self.len() == 0 && self.buf.capacity() > 0 {
            *self = ByteQueue::default();
        }
    }
}

#[derive(Debug, Default)]
struct RecvQueue {
    bytes: ByteQueue,
    /// Payloads of out-of-line entries, in queue order.
    big: VecDeque<Vec<u8>>,
    /// Total length of `big`.
    big_bytes: usize,
    paused: bool,
    in_work_set: bool,
}

impl RecvQueue {
    /// Bytes queued, as the receive limit counts them.
    fn queued(&self) -> usize {
        self.bytes.len() + self.big_bytes
    }
}

/// Turns whole v1-encoded frames of the send queue into the bytes that go on the wire: the v2
/// transport's encryption (v1 writes its frames as they are and has none).
pub trait Seal: Send + std::fmt::Debug {
    /// Appends to `wire` the wire form of whole frames from the start of `frames`, stopping
    /// after the frame that takes `wire` past `budget` more bytes; returns how many bytes of
    /// `frames` it consumed (a partial frame at the end is left for later), or why the
    /// connection cannot go on.
    fn seal(&mut self, frames: &[u8], wire: &mut Vec<u8>, budget: usize) -> Result<usize, String>;
}

/// How queued frames reach the socket.
#[derive(Debug, Default)]
enum Sealing {
    /// As they are (v1).
    #[default]
    Plain,
    /// Not yet: only `wire` bytes (a v2 handshake) are written, frames wait.
    Hold,
    /// Through the transport's encryption.
    Sealed(Box<dyn Seal>),
}

/// Frames sealed per step of a write, so the wire buffer stays about this size.
const SEAL_BATCH: usize = 256 * 1024;

#[derive(Debug, Default)]
struct SendQueue {
    /// Encoded v1 frames, as the message handler queued them.
    bytes: ByteQueue,
    /// Bytes for the wire that are no longer frames: handshake bytes and sealed packets.
    wire: ByteQueue,
    sealing: Sealing,
    /// The socket handler is responsible for writing (the socket was full).
    socket_owned: bool,
    /// The connection is closed; nothing more is written.
    closed: bool,
}

impl SendQueue {
    /// Bytes waiting, as the send limit counts them.
    fn queued(&self) -> usize {
        self.bytes.len() + self.wire.len()
    }
}

/// The shared half of a peer.
#[derive(Debug)]
pub struct PeerQueues {
    /// The peer's id.
    pub id: PeerId,
    stream: TcpStream,
    recv_limit: usize,
    send_limit: usize,
    recv: Mutex<RecvQueue>,
    send: Mutex<SendQueue>,
    /// Statistics.
    pub stats: PeerStats,
    totals: Arc<NetTotals>,
}

impl PeerQueues {
    /// Queues for a connected socket, with the receive and send limits in bytes.
    pub fn new(id: PeerId, stream: TcpStream, recv_limit: usize, send_limit: usize, totals: Arc<NetTotals>) -> Self {
        PeerQueues {
            id,
            stream,
            recv_limit,
            send_limit,
            recv: Mutex::new(RecvQueue::default()),
            send: Mutex::new(SendQueue::default()),
            stats: PeerStats::default(),
            totals,
        }
    }

    /// The socket (for registration with the poll and for reading, by the socket handler).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Reads from the socket into `buf` (socket handler only).
    pub fn read_socket(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.stream).read(buf)
    }

    // ---- process queue (vProcessMsg) ----

    /// Appends checked frames: `fill` is called with an appender (socket handler only).
    pub fn push_frames(&self, fill: impl FnOnce(&mut FrameAppender<'_>)) -> Pushed {
        let mut q = self.recv.lock();
        let mut app = FrameAppender { q: &mut q, count: 0 };
        fill(&mut app);
        let count = app.count;
        if count == 0 {
            return Pushed { newly_ready: false, paused: q.paused };
        }
        self.stats.msgs_recv.fetch_add(count, Ordering::Relaxed);
        let newly_ready = !q.in_work_set;
        q.in_work_set = true;
        let paused = q.queued() > self.recv_limit;
        if paused && !q.paused {
            self.stats.pause_recv_events.fetch_add(1, Ordering::Relaxed);
        }
        q.paused = paused;
        Pushed { newly_ready, paused }
    }

    /// Whether reading is paused because the process queue is over the limit.
    pub fn recv_paused(&self) -> bool {
        self.recv.lock().paused
    }

    /// Takes the oldest message into `payload` (message handler only): a small payload is
    /// copied; a large one replaces `payload`'s buffer (no copy). A buffer grown past 64 KiB by
    /// an earlier large payload is dropped when a small one follows.
    pub fn pop_message(&self, payload: &mut Vec<u8>) -> Option<Popped> {
        let mut q = self.recv.lock();
        let q = &mut *q;
        let avail = q.bytes.unread();
        let Some((head, rest)) = avail.split_at_checked(ENTRY_HEADER) else {
            q.in_work_set = false;
            return None;
        };
        let mut command = [0u8; COMMAND_SIZE];
        command.copy_from_slice(&head[..COMMAND_SIZE]);
        let mut len4 = [0u8; 4];
        len4.copy_from_slice(&head[COMMAND_SIZE..COMMAND_SIZE + 4]);
        let mut t8 = [0u8; 8];
        t8.copy_from_slice(&head[COMMAND_SIZE + 4..COMMAND_SIZE + 12]);
        let mut checksum = [0u8; 4];
        checksum.copy_from_slice(&head[COMMAND_SIZE + 12..]);
        let len_field = u32::from_le_bytes(len4);
        if len_field & OUT_OF_LINE != 0 {
            let big = q.big.pop_front().unwrap_or_default();
            q.big_bytes = q.big_bytes.saturating_sub(big.len());
            *payload = big;
            q.bytes.consume(ENTRY_HEADER);
        } else {
            let len = len_field as usize;
            let body = rest.get(..len).unwrap_or(rest);
            if payload.capacity() > KEEP_CAPACITY && body.len() <= KEEP_CAPACITY {
                *payload = Vec::new();
            }
            payload.clear();
            payload.extend_from_slice(body);
            let used = ENTRY_HEADER + body.len();
            q.bytes.consume(used);
        }
        let more = q.bytes.len() > 0;
        if !more {
            q.in_work_set = false;
        }
        let resumed = q.paused && q.queued() <= self.recv_limit;
        if resumed {
            q.paused = false;
        }
        Some(Popped { command, recv_time_us: u64::from_le_bytes(t8), checksum, more, resumed })
    }

    /// Bytes waiting in the process queue.
    pub fn recv_queued(&self) -> usize {
        self.recv.lock().queued()
    }

    // ---- send queue (vSendMsg) ----

    /// Appends to the send queue with `fill` (message handler only). Returns the bytes now
    /// queued.
    pub fn queue_send(&self, fill: impl FnOnce(&mut Vec<u8>)) -> usize {
        let mut q = self.send.lock();
        if q.closed {
            return 0;
        }
        let before = q.queued();
        fill(&mut q.bytes.buf);
        let after = q.queued();
        if before <= self.send_limit && after > self.send_limit {
            self.stats.pause_send_events.fetch_add(1, Ordering::Relaxed);
        }
        after
    }

    /// Whether processing this peer's messages must wait for its send queue to drain
    /// (Core's `fPauseSend`).
    pub fn send_paused(&self) -> bool {
        self.send.lock().queued() > self.send_limit
    }

    /// Bytes waiting in the send queue.
    pub fn send_queued(&self) -> usize {
        self.send.lock().queued()
    }

    /// Holds queued frames back (a v2 handshake is under way, or the inbound transport is not
    /// known yet); bytes given to [`PeerQueues::push_wire`] are still written (socket handler
    /// only).
    pub fn hold_frames(&self) {
        self.send.lock().sealing = Sealing::Hold;
    }

    /// Writes queued frames as they are (v1) from now on (socket handler only).
    pub fn send_plain(&self) {
        self.send.lock().sealing = Sealing::Plain;
    }

    /// Writes queued frames through `seal` from now on (socket handler only).
    pub fn start_sealing(&self, seal: Box<dyn Seal>) {
        self.send.lock().sealing = Sealing::Sealed(seal);
    }

    /// Queues bytes that go on the wire as they are, ahead of frames not yet sealed: a v2
    /// handshake's (socket handler only). The buffer itself becomes the queue when nothing else
    /// waits there: no copy.
    pub fn push_wire(&self, bytes: Vec<u8>) {
        let mut q = self.send.lock();
        if q.closed {
            return;
        }
        if q.wire.len() == 0 {
            q.wire = ByteQueue { buf: bytes, pos: 0 };
        } else {
            q.wire.buf.extend_from_slice(&bytes);
        }
    }

    /// The message handler's optimistic write (Core's `PushMessage` → `SocketSendData`):
    /// writes now unless the socket handler already owns the queue. `Ok(true)` when bytes remain
    /// that the socket handler must now take over.
    pub fn flush_from_handler(&self, now_us: u64) -> io::Result<(Written, bool)> {
        let mut q = self.send.lock();
        if q.socket_owned || q.closed {
            return Ok((Written::default(), false));
        }
        let w = self.write_locked(&mut q, now_us)?;
        if w.left > 0 {
            q.socket_owned = true;
            return Ok((w, true));
        }
        Ok((w, false))
    }

    /// The socket handler's write: drains as much as the socket takes; when the queue empties,
    /// hands write duty back to the message handler.
    pub fn flush_from_socket(&self, now_us: u64) -> io::Result<Written> {
        let mut q = self.send.lock();
        if q.closed {
            return Ok(Written::default());
        }
        let w = self.write_locked(&mut q, now_us)?;
        q.socket_owned = w.left > 0;
        Ok(w)
    }

    fn write_locked(&self, q: &mut SendQueue, now_us: u64) -> io::Result<Written> {
        let before = q.queued();
        let mut written = 0;
        loop {
            if let Sealing::Sealed(seal) = &mut q.sealing {
                if q.wire.len() == 0 && q.bytes.len() > 0 {
                    let used = seal.seal(q.bytes.unread(), &mut q.wire.buf, SEAL_BATCH).map_err(io::Error::other)?;
                    q.bytes.consume(used);
                }
            }
            // Wire bytes first (handshake, sealed packets); then plain frames (v1).
            let from_wire = q.wire.len() > 0;
            let queue = match (&q.sealing, from_wire) {
                (_, true) => &mut q.wire,
                (Sealing::Plain, false) => &mut q.bytes,
                _ => break,
            };
            if queue.len() == 0 {
                break;
            }
            match (&self.stream).write(queue.unread()) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "socket wrote 0 bytes")),
                Ok(n) => {
                    queue.consume(n);
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if written > 0 {
            self.stats.bytes_sent.fetch_add(written as u64, Ordering::Relaxed);
            NetTotals::add(&self.totals.bytes_sent, written as u64);
            self.stats.last_send_us.store(now_us.max(1), Ordering::Relaxed);
        }
        // Frames held back (a v2 handshake under way) are not the socket's to write.
        let left = if matches!(q.sealing, Sealing::Hold) {
            // Handshake bytes written: free their buffer now rather than at the next sweep, so
            // the many handshakes of a burst of connections do not each keep theirs.
            q.wire.release_if_empty();
            q.wire.len()
        } else {
            q.queued()
        };
        let total = q.queued();
        Ok(Written { bytes: written, left, unpaused: before > self.send_limit && total <= self.send_limit })
    }

    /// Closes the connection: no more writes, both directions shut down (socket handler only).
    pub fn close(&self) {
        let mut q = self.send.lock();
        q.closed = true;
        q.bytes = ByteQueue::default();
        q.wire = ByteQueue::default();
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Releases idle buffer capacity (message handler's periodic sweep).
    pub fn trim(&self) {
        let mut q = self.recv.lock();
        q.bytes.release_if_empty();
        if q.big.is_empty() && q.big.capacity() > 0 {
            q.big = VecDeque::new();
        }
        drop(q);
        let mut q = self.send.lock();
        q.bytes.release_if_empty();
        q.wire.release_if_empty();
    }
}

/// Appends frames to a locked process queue.
pub struct FrameAppender<'a> {
    q: &'a mut RecvQueue,
    count: u64,
}

impl FrameAppender<'_> {
    /// Appends one checked frame (its verified `checksum` kept) received at `recv_time_us`.
    /// `payload` must be shorter than 2^31 bytes (the transport allows 4,000,000).
    pub fn push(&mut self, command: &Command, payload: &[u8], checksum: [u8; 4], recv_time_us: u64) {
        let buf = &mut self.q.bytes.buf;
        buf.reserve(ENTRY_HEADER + payload.len());
        Self::header(buf, command, payload.len() as u32 & !OUT_OF_LINE, checksum, recv_time_us);
        buf.extend_from_slice(payload);
        self.count += 1;
    }

    /// Appends a frame whose payload buffer is handed over (kept as it is, not copied).
    pub fn push_owned(&mut self, command: &Command, payload: Vec<u8>, checksum: [u8; 4], recv_time_us: u64) {
        Self::header(&mut self.q.bytes.buf, command, OUT_OF_LINE, checksum, recv_time_us);
        self.q.big_bytes += payload.len();
        self.q.big.push_back(payload);
        self.count += 1;
    }

    fn header(buf: &mut Vec<u8>, command: &Command, len_field: u32, checksum: [u8; 4], recv_time_us: u64) {
        buf.extend_from_slice(command);
        buf.extend_from_slice(&len_field.to_le_bytes());
        buf.extend_from_slice(&recv_time_us.to_le_bytes());
        buf.extend_from_slice(&checksum);
    }
}

#[cfg(test)]
mod tests;
