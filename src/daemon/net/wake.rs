//! How the two threads wake each other (Core's `condMsgProc` / `WakeMessageHandler`, and the
//! poll wake-up a send needs): a `parking_lot` condvar the message handler sleeps on, carrying
//! the socket handler's events and ready peers, and a `mio::Waker` plus command channel that
//! interrupts the socket handler's poll.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Condvar, Mutex};

use super::peer_queues::PeerQueues;
use crate::base::peer::PeerIdentity;
use crate::base::peer::{ConnectionType, DisconnectReason, PeerId};
use crate::daemon::inspect::{Reply, Request, RpcError, ask_with};

/// What the socket handler (and the threads beside it) tell the message handler.
#[derive(Debug)]
pub enum NetEvent {
    /// A connection is open (accepted, or an outbound connect completed).
    Connected(Box<NewPeer>),
    /// A connection was closed; the socket is gone.
    Closed {
        /// Which peer.
        id: PeerId,
        /// Why.
        reason: DisconnectReason,
    },
    /// An RPC or metrics thread asks about the handler's state.
    Inspect(Box<Request>),
    /// An automatic outbound connection (not `--connect`/`--addnode`) could not be opened.
    ConnectFailed {
        /// Where to.
        addr: SocketAddr,
        /// Which kind.
        conn_type: ConnectionType,
    },
    /// A DNS seed answered (the seeding thread).
    SeedAddrs {
        /// The name resolved (the source recorded in the address book).
        source: String,
        /// What it returned (at the network's default port).
        ips: Vec<std::net::IpAddr>,
    },
    /// The validation thread reports.
    Validation(Box<crate::engine::blocks::validation::ValidationEvent>),
    /// The Tor control thread reports our onion service, at this port.
    Tor(super::tor::TorEvent, u16),
}

/// A freshly opened connection.
#[derive(Debug)]
pub struct NewPeer {
    /// The shared queues.
    pub queues: Arc<PeerQueues>,
    /// What is fixed about it.
    pub who: Arc<PeerIdentity>,
}

#[derive(Default)]
struct Inbox {
    ready: Vec<PeerId>,
    events: Vec<NetEvent>,
    woken: bool,
}

/// The message handler's wake-up: the socket handler posts events and peers that gained
/// messages; the message handler takes them and sleeps when there are none.
#[derive(Default)]
pub struct MsgWake {
    inbox: Mutex<Inbox>,
    cv: Condvar,
    interrupted: AtomicBool,
    /// Set with every post, so a spinning handler can see one without taking the lock.
    posted: AtomicBool,
}

impl MsgWake {
    /// Posts peers that now have messages and connection events, and wakes the handler.
    /// Drains both vectors. Does nothing (no lock) when both are empty.
    pub fn post(&self, ready: &mut Vec<PeerId>, events: &mut Vec<NetEvent>) {
        if ready.is_empty() && events.is_empty() {
            return;
        }
        let mut inbox = self.inbox.lock();
        inbox.ready.append(ready);
        inbox.events.append(events);
        inbox.woken = true;
        self.posted.store(true, Ordering::Release);
        drop(inbox);
        self.cv.notify_one();
    }

    /// Posts one event.
    pub fn post_event(&self, event: NetEvent) {
        self.post(&mut Vec::new(), &mut vec![event]);
    }

    /// Takes what was posted into `ready` and `events`. Unless `more_work`, first waits until
    /// something is posted, the node is interrupted, or `timeout` passes: spinning for up to
    /// `spin` (a post then costs the poster no futex wake and the handler no context switch),
    /// then sleeping on the condvar.
    pub fn take(
        &self,
        more_work: bool,
        spin: Duration,
        timeout: Duration,
        ready: &mut Vec<PeerId>,
        events: &mut Vec<NetEvent>,
    ) {
        if !more_work && !spin.is_zero() {
            let until = Instant::now() + spin;
            'spin: loop {
                for _ in 0..64 {
                    if self.posted.load(Ordering::Acquire) || self.interrupted.load(Ordering::Acquire) {
                        break 'spin;
                    }
                    std::hint::spin_loop();
                }
                if Instant::now() >= until {
                    break;
                }
            }
        }
        let mut inbox = self.inbox.lock();
        if !more_work && !inbox.woken && !self.interrupted.load(Ordering::Acquire) {
            self.cv.wait_for(&mut inbox, timeout);
        }
        inbox.woken = false;
        self.posted.store(false, Ordering::Release);
        ready.append(&mut inbox.ready);
        events.append(&mut inbox.events);
    }

    /// Asks the message handler (posting a [`NetEvent::Inspect`]) and waits at most
    /// [`crate::daemon::inspect::ANSWER_TIMEOUT`] for its answer, typed by the request:
    /// `wake.ask(Request::PeerInfo)` is a `Vec<PeerSnapshot>`.
    pub fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, RpcError> {
        ask_with(|req| self.post_event(NetEvent::Inspect(Box::new(req))), make)
    }

    /// Whether anything is waiting to be taken (no sleep).
    pub fn has_posts(&self) -> bool {
        self.inbox.lock().woken
    }

    /// Asks the message handler to stop.
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::Release);
        let _guard = self.inbox.lock();
        self.cv.notify_all();
    }

    /// Whether [`MsgWake::interrupt`] was called.
    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::Acquire)
    }
}

/// What other threads ask of the socket handler.
#[derive(Debug)]
pub enum SocketCommand {
    /// Open an outbound connection.
    Connect {
        /// Where to (for a `name`, only the port counts).
        addr: SocketAddr,
        /// The destination as named, for the proxy to reach without any lookup here: an onion
        /// address, or a host name while a proxy is set.
        name: Option<String>,
        /// Why.
        conn_type: ConnectionType,
        /// The dialer's index of the `--connect`/`--addnode` target, if any.
        target: Option<usize>,
        /// Open with BIP324 v2 when `--v2transport` is on (manual and addr-fetch connections;
        /// automatic ones to addresses that advertise `NODE_P2P_V2`).
        v2: bool,
    },
    /// Close a connection.
    Disconnect {
        /// Which peer.
        id: PeerId,
        /// Why (logged by the message handler when the close is confirmed).
        reason: DisconnectReason,
    },
    /// The peer's send queue holds bytes the socket did not take: write when writable.
    Flush(PeerId),
    /// The peer's process queue fell under the receive limit: read again.
    Resume(PeerId),
    /// Stop or restart all network activity (`setnetworkactive`): when stopping, every
    /// connection is closed and none is accepted or opened until restarted.
    SetNetworkActive(bool),
}

/// A handle that queues commands for the socket handler and interrupts its poll. Cheap to
/// clone; redundant wake-ups are coalesced.
#[derive(Clone)]
pub struct SocketControl {
    tx: Sender<SocketCommand>,
    waker: Arc<mio::Waker>,
    pending: Arc<AtomicBool>,
    interrupted: Arc<AtomicBool>,
}

impl SocketControl {
    /// A control handle and the receiving end the socket handler reads.
    pub fn new(waker: mio::Waker) -> (SocketControl, Receiver<SocketCommand>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let ctl = SocketControl {
            tx,
            waker: Arc::new(waker),
            pending: Arc::new(AtomicBool::new(false)),
            interrupted: Arc::new(AtomicBool::new(false)),
        };
        (ctl, rx)
    }

    /// Queues `cmd` and wakes the poll (once per batch of commands).
    pub fn send(&self, cmd: SocketCommand) {
        // The socket handler owns the receiver for the node's whole life; a send can only fail
        // during shutdown, when the command no longer matters.
        let _ = self.tx.send(cmd);
        self.wake();
    }

    /// Interrupts the poll without a command.
    pub fn wake(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    /// Called by the socket handler when it sees the wake-up, before draining commands.
    pub fn clear_pending(&self) {
        self.pending.store(false, Ordering::Release);
    }

    /// Asks the socket handler to stop.
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::Release);
        let _ = self.waker.wake();
    }

    /// Whether [`SocketControl::interrupt`] was called.
    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::Acquire)
    }
}
