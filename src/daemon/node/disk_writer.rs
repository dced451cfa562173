//! The disk-writer thread (`btcloop-diskwrite`): owns the header store's file side and writes
//! `peers.dat`, so no `write`/`fdatasync`/rename of those files runs on the message-handler
//! thread. The message handler sends immutable snapshots ([`DiskJob`]): the header records it
//! accepted in a round, or a complete serialized `peers.dat` image. The thread writes them in
//! the order sent (headers appended and synced, `peers.dat` replaced atomically) and, when the
//! handler drops its [`DiskWriter`] at shutdown, writes everything still queued before it
//! exits; [`super::Node::stop`] joins it after the message handler.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Condvar, Mutex};
use tracing::{debug, error, warn};

use crate::engine::chain::store::{RecordBatch, StoreFile};

/// One snapshot for the writer.
#[derive(Debug)]
pub enum DiskJob {
    /// Header records to append to `headers.dat` (in the order the store handed them out).
    Headers(RecordBatch),
    /// A whole `peers.dat` image to put in place atomically.
    Peers {
        /// The file.
        path: PathBuf,
        /// Its new content.
        bytes: Vec<u8>,
        /// How many addresses it holds (for the log).
        addresses: usize,
    },
}

/// A `peers.dat` image waiting for the writer.
type PeersImage = (PathBuf, Vec<u8>, usize);

/// What crosses the channel: header batches in order, and a wake-up for the one `peers.dat`
/// slot (so a slow disk holds at most one unwritten image, not one per dump interval).
#[derive(Debug)]
enum Msg {
    Headers(RecordBatch),
    Peers,
}

/// The message handler's handle on the writer thread: sending never blocks and never touches
/// the disk. Dropping it tells the thread to finish what is queued and exit.
#[derive(Debug)]
pub struct DiskWriter {
    tx: Sender<Msg>,
    /// The newest `peers.dat` image not yet taken by the writer; a newer one replaces it.
    peers: Arc<Mutex<Option<PeersImage>>>,
}

impl DiskWriter {
    /// Queues `job` for the writer thread. If the thread is gone (it panicked), the job is
    /// lost and an error logged: nothing else can be done from the message handler.
    pub fn send(&self, job: DiskJob) {
        let msg = match job {
            DiskJob::Headers(b) => Msg::Headers(b),
            DiskJob::Peers { path, bytes, addresses } => {
                if self.peers.lock().replace((path, bytes, addresses)).is_some() {
                    return; // the writer has not taken the older image yet: it takes this one
                }
                Msg::Peers
            }
        };
        if self.tx.send(msg).is_err() {
            error!("the disk-writer thread is gone; a write was dropped");
        }
    }

    /// Messages waiting for the writer (header batches plus at most one `peers.dat` wake-up).
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.tx.len()
    }
}

/// A test hook that holds the writer before each write while closed (to show the message
/// handler does not wait for the disk, and that shutdown waits for the writer).
#[derive(Debug, Default)]
pub struct Gate {
    closed: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    /// A gate, closed or open.
    pub fn new(closed: bool) -> Arc<Gate> {
        Arc::new(Gate { closed: Mutex::new(closed), changed: Condvar::new() })
    }

    /// Opens or closes it.
    pub fn set_closed(&self, closed: bool) {
        *self.closed.lock() = closed;
        self.changed.notify_all();
    }

    fn wait_open(&self) {
        let mut closed = self.closed.lock();
        while *closed {
            self.changed.wait(&mut closed);
        }
    }
}

/// Starts the writer thread, which owns `headers` (the store's file side, if any).
pub fn spawn(headers: Option<StoreFile>, gate: Option<Arc<Gate>>) -> std::io::Result<(DiskWriter, JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let peers = Arc::new(Mutex::new(None));
    let slot = peers.clone();
    let thread =
        std::thread::Builder::new().name("btcloop-diskwrite".into()).spawn(move || run(rx, &slot, headers, gate))?;
    Ok((DiskWriter { tx, peers }, thread))
}

/// The thread body: writes each job in order until the sender is dropped and the queue is
/// empty. Jobs already queued are taken together: header batches in one append, and only the
/// newest `peers.dat` image (the one in the slot) written.
fn run(
    rx: Receiver<Msg>,
    peers_slot: &Mutex<Option<PeersImage>>,
    mut headers: Option<StoreFile>,
    gate: Option<Arc<Gate>>,
) {
    while let Ok(first) = rx.recv() {
        if let Some(g) = &gate {
            g.wait_open();
        }
        let mut batches = Vec::new();
        let mut peers = None;
        for msg in std::iter::once(first).chain(rx.try_iter()) {
            match msg {
                Msg::Headers(b) => batches.push(b),
                Msg::Peers => peers = peers_slot.lock().take().or(peers),
            }
        }
        if !batches.is_empty() {
            write_headers(headers.as_mut(), batches);
        }
        if let Some((path, bytes, addresses)) = peers {
            let start = Instant::now();
            match crate::base::sys::write_atomically(&path, &bytes) {
                Ok(()) => debug!(
                    target: "net",
                    "Flushed {addresses} addresses to peers.dat {}ms",
                    start.elapsed().as_millis()
                ),
                Err(e) => warn!("cannot write {}: {e}", path.display()),
            }
        }
    }
    // The handler is gone and everything it sent was written; a write that failed is tried
    // once more so nothing accepted is given up without a last attempt.
    if let Some(file) = headers.as_mut() {
        if let Err(e) = file.write(None) {
            error!("headers not written at shutdown: {e}");
        }
    }
}

/// Appends `batches` to the store's file and syncs; on error the records stay pending in the
/// file side and are written again with the next batch.
fn write_headers(file: Option<&mut StoreFile>, batches: Vec<RecordBatch>) {
    let Some(file) = file else {
        warn!("header records queued without a store file; dropped");
        return;
    };
    for b in batches {
        if let Err(e) = file.write(Some(b)) {
            warn!("cannot write headers: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::chainparams::Network;
    use crate::engine::chain::store::HeaderStore;

    fn headers(n: usize) -> Vec<bitcoin::block::Header> {
        let params = crate::engine::chain::params::ChainParams::new(Network::Regtest);
        let mut out = vec![params.genesis];
        out.extend(crate::engine::chain::mine::mine_chain(&params, &params.genesis, n - 1, 7));
        out
    }

    /// Sending returns while the writer is held; the records reach the file only through the
    /// thread, and dropping the handle drains everything before the thread ends.
    #[test]
    fn writes_go_through_the_thread_and_dropping_the_handle_drains_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("headers.dat");
        let peers = dir.path().join("peers.dat");
        let (mut store, _) = HeaderStore::open(&path, Network::Regtest.magic()).unwrap();
        let gate = Gate::new(true);
        let (writer, thread) = spawn(store.detach_file(), Some(gate.clone())).unwrap();
        let all = headers(300);
        for part in all.chunks(50) {
            store.append(part);
            writer.send(DiskJob::Headers(store.take_batch().unwrap()));
        }
        for n in 0..3u8 {
            writer.send(DiskJob::Peers { path: peers.clone(), bytes: vec![n; 10], addresses: 0 });
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        // A held writer keeps one peers.dat image, not one per dump: 6 header batches (less
        // the one the writer took before the gate) and one peers.dat wake-up.
        assert!(writer.queued() <= 7, "{} messages queued", writer.queued());
        for n in 3..100u8 {
            writer.send(DiskJob::Peers { path: peers.clone(), bytes: vec![n; 10], addresses: 0 });
        }
        assert!(writer.queued() <= 7, "peers.dat images pile up: {} messages queued", writer.queued());
        assert!(!path.exists() && !peers.exists(), "nothing written while the writer is held");
        drop(writer);
        assert!(!thread.is_finished(), "the thread waits to write what is queued");
        gate.set_closed(false);
        thread.join().unwrap();
        let (_, loaded) = HeaderStore::open(&path, Network::Regtest.magic()).unwrap();
        assert_eq!(loaded.headers, all, "every record queued before the drop is on disk");
        assert_eq!(std::fs::read(&peers).unwrap(), vec![99u8; 10], "the newest peers.dat image");
    }
}
