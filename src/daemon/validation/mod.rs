//! The validation thread: owns Bitcoin Core's kernel (through `bitcoinkernel`), validates and
//! stores the headers and blocks the message handler hands it over a bounded channel, reads
//! stored blocks for peers, and reports every result as a [`ValidationEvent`]. Nothing here
//! decides what to download or whom to punish: that is the engine's, from these events.

pub mod blockfiles;
pub mod kernel;
pub mod recover;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bitcoin::consensus::{deserialize, serialize};
use bitcoinkernel::prelude::*;
use bitcoinkernel::{BlockHeader, ProcessBlockHeaderResult, ProcessBlockResult};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use tracing::{debug, error, info, warn};

use crate::base::transport::checksum_of;
use crate::engine::blocks::validation::{
    BlockForm, BlockOutcome, Invalid, InvalidKind, ReadBlock, ValidationEvent, ValidationRequest,
};
use blockfiles::{BlockFiles, RawMiss};
use kernel::{Kernel, Note, capturing, from_hash, invalid_kind, reject_reason, to_hash};

/// Requests the channel holds before [`Validation::submit`] refuses more: the engine keeps
/// its own byte budget for queued blocks well below what this allows.
pub const REQUEST_QUEUE: usize = 4096;

/// Block file records indexed per idle turn of the thread (each is one 88-byte read), so a
/// request waits at most for that many reads.
const SCAN_STEP: usize = 256;
/// Records scanned when a block to serve is not indexed yet (it was most likely just written).
const SCAN_ON_MISS: usize = 64;

/// When the validation thread makes what it validated durable (see [`Kernel::flush`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Flush once this long has passed since the last flush, if blocks were connected.
    pub interval: Duration,
    /// Flush after this many new blocks even if the interval has not passed.
    pub blocks: u32,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        FlushPolicy { interval: Duration::from_secs(60), blocks: 2000 }
    }
}

/// Why a request could not be queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue is full (the engine's budget should prevent this): the request was dropped.
    #[error("validation queue full ({REQUEST_QUEUE} requests)")]
    Full,
    /// The validation thread has stopped (a fatal kernel error, or shutdown).
    #[error("validation thread stopped")]
    Stopped,
}

/// A question answered on the validation thread with the kernel in hand (`getblock` and other
/// RPC reads), so no other thread touches the kernel.
pub type Query = Box<dyn FnOnce(&Kernel) + Send>;

/// What the validation thread's channel carries.
enum Job {
    /// The engine's work.
    Engine(ValidationRequest),
    /// A daemon thread's question.
    Query(Query),
    /// Finish: everything queued before was done.
    Stop,
}

/// The handle the message handler keeps: submit requests, and join at shutdown.
pub struct Validation {
    tx: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

/// A handle for other daemon threads (RPC) to ask the validation thread questions.
#[derive(Clone)]
pub struct Queries {
    tx: Sender<Job>,
}

/// How long a question waits for the validation thread (it may be validating a large block).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

impl Queries {
    /// Runs `f` on the validation thread and returns its result, waiting at most
    /// [`QUERY_TIMEOUT`].
    pub fn ask<T: Send + 'static>(&self, f: impl FnOnce(&Kernel) -> T + Send + 'static) -> Result<T, SubmitError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let job = Job::Query(Box::new(move |k: &Kernel| {
            let _ = tx.send(f(k));
        }));
        self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => SubmitError::Full,
            TrySendError::Disconnected(_) => SubmitError::Stopped,
        })?;
        rx.recv_timeout(QUERY_TIMEOUT).map_err(|_| SubmitError::Stopped)
    }
}

impl Validation {
    /// Starts the thread over `kernel`; `emit` is called on that thread with every event.
    pub fn spawn(
        kernel: Kernel,
        flush: FlushPolicy,
        emit: impl FnMut(ValidationEvent) + Send + 'static,
    ) -> std::io::Result<Validation> {
        let (tx, rx) = crossbeam_channel::bounded(REQUEST_QUEUE);
        let thread = std::thread::Builder::new().name("btcloop-validation".into()).spawn(move || {
            let files = BlockFiles::new(&kernel.blocks_dir(), kernel.magic());
            let worker = Worker {
                kernel,
                emit,
                flush,
                since_flush: 0,
                last_flush: Instant::now(),
                last_size: None,
                disk_bytes: 0,
                files,
                scanned: false,
            };
            worker.run(rx)
        })?;
        Ok(Validation { tx: Some(tx), thread: Some(thread) })
    }

    /// A handle to ask the thread questions from other threads.
    pub fn queries(&self) -> Option<Queries> {
        self.tx.as_ref().map(|tx| Queries { tx: tx.clone() })
    }

    /// Queues a request without waiting.
    pub fn submit(&self, req: ValidationRequest) -> Result<(), SubmitError> {
        let Some(tx) = self.tx.as_ref() else { return Err(SubmitError::Stopped) };
        tx.try_send(Job::Engine(req)).map_err(|e| match e {
            TrySendError::Full(_) => SubmitError::Full,
            TrySendError::Disconnected(_) => SubmitError::Stopped,
        })
    }

    /// Requests waiting in the queue.
    pub fn queued(&self) -> usize {
        self.tx.as_ref().map_or(0, Sender::len)
    }

    /// Hands `garbage` to the validation thread to be dropped there: freeing a large block's
    /// thousands of transactions takes the message handler milliseconds. Dropped here if the
    /// queue is full.
    pub fn release(&self, garbage: Box<dyn Send>) {
        if let Some(tx) = self.tx.as_ref() {
            let _ = tx.try_send(Job::Query(Box::new(move |_| drop(garbage))));
        }
    }

    /// Lets the thread finish what is queued, close the kernel (which writes everything to
    /// disk) and exit; waits for it.
    pub fn stop(&mut self) {
        if let Some(tx) = self.tx.take() {
            // Blocks only while the queue is full: the thread is working through it.
            let _ = tx.send(Job::Stop);
        }
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                error!("the validation thread panicked");
            }
        }
    }
}

impl Drop for Validation {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread's state.
struct Worker<E> {
    kernel: Kernel,
    emit: E,
    flush: FlushPolicy,
    /// Blocks stored since the last flush.
    since_flush: u32,
    last_flush: Instant,
    /// When the databases' size was last measured, and what it was.
    last_size: Option<Instant>,
    disk_bytes: u64,
    /// Where stored blocks lie, for serving them raw.
    files: BlockFiles,
    /// Whether `files` has scanned to the end of what is written.
    scanned: bool,
}

impl<E: FnMut(ValidationEvent)> Worker<E> {
    fn run(mut self, rx: Receiver<Job>) {
        let _log = kernel::connect_log();
        loop {
            // Index the block files while idle; flush when idle (or due), never in the middle
            // of a burst unless it is long.
            let req = if !self.scanned {
                match rx.try_recv() {
                    Ok(r) => Some(r),
                    Err(crossbeam_channel::TryRecvError::Empty) => {
                        self.scanned = self.files.scan(SCAN_STEP);
                        None
                    }
                    Err(crossbeam_channel::TryRecvError::Disconnected) => break,
                }
            } else if self.since_flush > 0 {
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(r) => Some(r),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(r) => Some(r),
                    Err(_) => break,
                }
            };
            match req {
                Some(Job::Engine(req)) => self.handle(req),
                Some(Job::Query(q)) => q(&self.kernel),
                Some(Job::Stop) => break,
                None => {}
            }
            let due = self.since_flush >= self.flush.blocks
                || (self.since_flush > 0 && self.last_flush.elapsed() >= self.flush.interval);
            if due && (req_idle(&rx) || self.since_flush >= self.flush.blocks) && !self.do_flush() {
                break;
            }
            if self.kernel.chainman().is_none() {
                break;
            }
        }
        info!("validation thread: closing the block database");
        let (blocks, magic) = (self.kernel.blocks_dir(), self.kernel.magic());
        // Closing writes the block index and chainstate; only then is the stop clean.
        drop(self);
        if let Err(e) = recover::write_marker(&blocks, magic, true) {
            warn!("cannot write {}: {e}", blocks.join(recover::MARKER_FILE).display());
        }
    }

    /// Flushes; false if the kernel could not be reopened (the thread stops).
    fn do_flush(&mut self) -> bool {
        self.since_flush = 0;
        self.last_flush = Instant::now();
        match self.kernel.flush() {
            Ok(()) => {
                let blocks = self.kernel.blocks_dir();
                if let Err(e) = recover::write_marker(&blocks, self.kernel.magic(), false) {
                    warn!("cannot write {}: {e}", blocks.join(recover::MARKER_FILE).display());
                }
                (self.emit)(ValidationEvent::Reopened);
                true
            }
            Err(e) => {
                error!("{e}");
                false
            }
        }
    }

    fn handle(&mut self, req: ValidationRequest) {
        match req {
            ValidationRequest::Headers(headers) => self.headers(&headers),
            ValidationRequest::Block { hash, bytes, from, announce } => self.block(hash, &bytes, from, announce),
            ValidationRequest::Read { peer, hash, form } => {
                let bytes =
                    self.read(&hash, form).map(|bytes| Arc::new(ReadBlock { checksum: checksum_of(&bytes), bytes }));
                (self.emit)(ValidationEvent::Read { peer, hash, form, bytes });
            }
        }
    }

    /// Hands headers to the kernel's block index, stopping at the first refused one.
    fn headers(&mut self, headers: &[bitcoin::block::Header]) {
        let Some(cm) = self.kernel.chainman() else { return };
        for h in headers {
            let Ok(kh) = BlockHeader::new(&serialize(h)) else { continue };
            let (result, lines) = capturing(|| cm.process_block_header(&kh));
            match result {
                Ok(ProcessBlockHeaderResult::Valid) => {}
                Ok(ProcessBlockHeaderResult::Invalid(state)) => {
                    let invalid = Invalid { kind: invalid_kind(state.result()), reason: reject_reason(&lines) };
                    debug!(target: "validation", "header {} refused: {} {}", h.block_hash(), invalid.kind.name(), invalid.reason);
                    (self.emit)(ValidationEvent::HeaderInvalid { hash: h.block_hash(), invalid });
                    return;
                }
                Err(e) => {
                    warn!("validation engine failed on header {}: {e}", h.block_hash());
                    return;
                }
            }
        }
        self.kernel.take_notes();
    }

    /// Validates and stores one block, then reports its verdict and any tip change.
    fn block(
        &mut self,
        hash: bitcoin::BlockHash,
        bytes: &[u8],
        from: Option<crate::base::peer::PeerId>,
        announce: bool,
    ) {
        let Some(cm) = self.kernel.chainman() else { return };
        let started = Instant::now();
        let Ok(kblock) = bitcoinkernel::Block::new(bytes) else {
            let invalid = Invalid { kind: InvalidKind::Unset, reason: "block does not deserialize".into() };
            (self.emit)(ValidationEvent::Block { hash, from, outcome: BlockOutcome::Invalid(invalid) });
            return;
        };
        // The header first: its verdict carries Core's result code (the block call reports
        // only accepted or not).
        let header_verdict = match bytes.get(..80).map(BlockHeader::new) {
            Some(Ok(kh)) => {
                let (r, lines) = capturing(|| cm.process_block_header(&kh));
                match r {
                    Ok(ProcessBlockHeaderResult::Invalid(state)) => {
                        Some(Invalid { kind: invalid_kind(state.result()), reason: reject_reason(&lines) })
                    }
                    _ => None,
                }
            }
            _ => Some(Invalid { kind: InvalidKind::Unset, reason: "block header does not deserialize".into() }),
        };
        if let Some(invalid) = header_verdict {
            self.kernel.take_notes();
            (self.emit)(ValidationEvent::Block { hash, from, outcome: BlockOutcome::Invalid(invalid) });
            return;
        }
        let (result, lines) = capturing(|| cm.process_block(&kblock));
        let notes = self.kernel.take_notes();
        let checked_invalid = notes.iter().find_map(|n| match n {
            Note::Checked { hash: h, invalid: Some(kind) } if *h == hash => Some(*kind),
            _ => None,
        });
        let checked = notes.iter().any(|n| matches!(n, Note::Checked { hash: h, .. } if *h == hash));
        let outcome = match (result, checked_invalid) {
            (_, Some(kind)) => BlockOutcome::Invalid(Invalid { kind, reason: reject_reason(&lines) }),
            (ProcessBlockResult::Rejected, None) => {
                BlockOutcome::Invalid(Invalid { kind: InvalidKind::Unset, reason: reject_reason(&lines) })
            }
            (ProcessBlockResult::NewBlock, None) => {
                self.since_flush = self.since_flush.saturating_add(1);
                self.scanned = false;
                if checked { BlockOutcome::Stored } else { BlockOutcome::Unconnected }
            }
            (ProcessBlockResult::Duplicate, None) => BlockOutcome::Duplicate,
        };
        debug!(target: "validation", "block {hash}: {outcome:?} in {:?}", started.elapsed());
        if let BlockOutcome::Invalid(inv) = &outcome {
            info!("block {hash} invalid: {} ({})", inv.reason, inv.kind.name());
        }
        for n in &notes {
            if let Note::PowValid { hash: h } = n {
                if *h == hash && announce {
                    if let Ok(block) = deserialize::<bitcoin::Block>(bytes) {
                        let cmpct =
                            Arc::new(crate::engine::blocks::compact::compact_from_block(&block, rand::random()));
                        (self.emit)(ValidationEvent::PowValid { block: Arc::new(block), cmpct });
                    }
                }
            }
        }
        // The tip first, then the verdict: whoever the verdict answers (`submitblock`) then
        // sees the new tip, as Core's caller does once ProcessNewBlock returns.
        self.report_tip(&notes);
        (self.emit)(ValidationEvent::Block { hash, from, outcome });
    }

    /// Reports the last tip change among `notes`.
    fn report_tip(&mut self, notes: &[Note]) {
        let Some(cm) = self.kernel.chainman() else { return };
        let last = notes.iter().rev().find_map(|n| match n {
            Note::Tip { hash, progress } => Some((*hash, *progress)),
            _ => None,
        });
        for n in notes {
            if let Note::Fatal(msg) = n {
                error!("validation engine: {msg}");
            }
        }
        if let Some((hash, progress)) = last {
            let height =
                cm.get_block_tree_entry(&from_hash(&hash)).map_or(0, |e| u32::try_from(e.height()).unwrap_or(0));
            if self.last_size.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                self.last_size = Some(Instant::now());
                self.disk_bytes = self.kernel.disk_bytes();
            }
            (self.emit)(ValidationEvent::Tip { hash, height, progress, disk_bytes: self.disk_bytes });
        }
    }

    /// A stored block in the asked form, or `None` if it is not stored: the bytes on disk
    /// when the block files are indexed that far, else through the kernel.
    fn read(&mut self, hash: &bitcoin::BlockHash, form: BlockForm) -> Option<Vec<u8>> {
        if form != BlockForm::Legacy {
            let mut raw = self.files.read(hash);
            if raw == Err(RawMiss::NotIndexed) && !self.scanned {
                self.scanned = self.files.scan(SCAN_ON_MISS);
                raw = self.files.read(hash);
            }
            match raw {
                Ok(bytes) => return Some(bytes),
                Err(RawMiss::Unreadable) => {
                    warn!("block {hash}: its record in the block files is unreadable; reading it through the kernel")
                }
                Err(RawMiss::NotIndexed) => {}
            }
        }
        let cm = self.kernel.chainman()?;
        let entry = cm.get_block_tree_entry(&from_hash(hash))?;
        let block = cm.read_block_data(&entry).ok()?;
        let bytes = block.consensus_encode().ok()?;
        if to_hash(&block.hash()) != *hash {
            warn!("block file returned {} for {hash}", to_hash(&block.hash()));
            return None;
        }
        match form {
            BlockForm::Witness | BlockForm::Compact => Some(bytes),
            BlockForm::Legacy => {
                let mut b: bitcoin::Block = deserialize(&bytes).ok()?;
                for tx in &mut b.txdata {
                    for input in &mut tx.input {
                        input.witness.clear();
                    }
                }
                Some(serialize(&b))
            }
        }
    }
}

/// Whether nothing is waiting in the queue.
fn req_idle(rx: &Receiver<Job>) -> bool {
    rx.is_empty()
}
