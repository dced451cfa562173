//! The Tor control thread (Core's `TorController`, `btcloop-torctl`): keeps a connection to
//! Tor's control port, creates our onion service there ([`crate::base::torcontrol`] decides
//! what to say), keeps its private key in the data directory (`onion_v3_private_key`, mode
//! 0600, written atomically) so the address survives restarts, reports the service while the
//! connection lasts (Tor removes the service when it closes), and reconnects when it drops,
//! after 1 s, then 1.5 times longer each time up to 10 minutes (Core's timings).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::base::torcontrol::{COOKIE_LEN, ReplyReader, TorError, TorSession, TorStep};

/// Core's `RECONNECT_TIMEOUT_START`.
const RECONNECT_START: Duration = Duration::from_secs(1);
/// Core's `RECONNECT_TIMEOUT_EXP`.
const RECONNECT_EXP: f64 = 1.5;
/// Core's `RECONNECT_TIMEOUT_MAX`.
const RECONNECT_MAX: Duration = Duration::from_secs(600);
/// How long connecting to the control port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a blocked read wakes to look at the stop flag.
const READ_SLICE: Duration = Duration::from_millis(200);
/// The key file's name in the network's data directory (Core's).
pub const KEY_FILE: &str = "onion_v3_private_key";

/// What the thread needs (plain data).
#[derive(Clone, Debug)]
pub struct TorSettings {
    /// The control port (`--torcontrol`).
    pub control: SocketAddr,
    /// `--torpassword`.
    pub password: Option<String>,
    /// Where the service's connections arrive (our onion listener).
    pub target: SocketAddr,
    /// The service's port as peers see it: the network's default port, as Core.
    pub virtual_port: u16,
    /// The private key file.
    pub key_file: PathBuf,
}

/// What the thread reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TorEvent {
    /// The onion service is up: `<service_id>.onion` at the virtual port.
    Service(String),
    /// The control connection closed: the service is gone until it is made again.
    Lost(String),
}

/// The thread body: runs until `stop` is set.
pub fn run(settings: TorSettings, stop: Arc<AtomicBool>, on_event: impl Fn(TorEvent)) {
    let mut wait = RECONNECT_START;
    while !stop.load(Ordering::Acquire) {
        let mut service = None;
        match session(&settings, &stop, &mut |id| {
            info!("Got tor service ID {id}, advertising service {id}.onion:{}", settings.virtual_port);
            on_event(TorEvent::Service(id.clone()));
            service = Some(id);
        }) {
            Ok(Connected::Yes) => wait = RECONNECT_START,
            Ok(Connected::No(e)) => {
                debug!(target: "tor", "Not connected to Tor control port {}, will retry: {e}", settings.control)
            }
            Err(e) => warn!("tor: {e}"),
        }
        if let Some(id) = service.filter(|_| !stop.load(Ordering::Acquire)) {
            on_event(TorEvent::Lost(id));
        }
        let until = Instant::now() + wait;
        while !stop.load(Ordering::Acquire) && Instant::now() < until {
            std::thread::sleep(READ_SLICE.min(until.saturating_duration_since(Instant::now())));
        }
        wait = wait.mul_f64(RECONNECT_EXP).min(RECONNECT_MAX);
    }
}

/// Whether the control port answered the connect.
enum Connected {
    Yes,
    No(io::Error),
}

/// Why a session ended other than by a close.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("{0}")]
    Protocol(#[from] TorError),
    #[error("control port connection: {0}")]
    Io(#[from] io::Error),
}

/// One connection to the control port, until it closes or `stop`.
fn session(s: &TorSettings, stop: &AtomicBool, on_service: &mut dyn FnMut(String)) -> Result<Connected, SessionError> {
    let mut stream = match TcpStream::connect_timeout(&s.control, CONNECT_TIMEOUT) {
        Ok(c) => c,
        Err(e) => return Ok(Connected::No(e)),
    };
    debug!(target: "tor", "Successfully connected to Tor control port {}", s.control);
    stream.set_read_timeout(Some(READ_SLICE))?;
    let saved = std::fs::read_to_string(&s.key_file).ok().map(|k| k.trim().to_string()).filter(|k| !k.is_empty());
    if saved.is_some() {
        debug!(target: "tor", "Reading cached private key from {}", s.key_file.display());
    }
    let (mut tor, first) =
        TorSession::start(s.password.clone(), saved, s.virtual_port, s.target.to_string(), rand::random());
    let mut failed: Option<TorError> = None;
    let mut act = |step: TorStep, tor: &mut TorSession, stream: &mut TcpStream| -> Result<(), SessionError> {
        let mut step = step;
        loop {
            match step {
                TorStep::Send(line) => stream.write_all(line.as_bytes())?,
                TorStep::ReadCookie(path) => {
                    debug!(target: "tor", "Using SAFECOOKIE authentication, reading cookie authentication from {path}");
                    let bytes = read_cookie(&path).map_err(|_| TorError::BadCookie(path.clone()))?;
                    step = tor.cookie(&path, bytes)?;
                    continue;
                }
                TorStep::Ready { service_id, private_key } => {
                    match crate::base::sys::write_atomically(&s.key_file, private_key.as_bytes()) {
                        Ok(()) => debug!(target: "tor", "Cached service private key to {}", s.key_file.display()),
                        Err(e) => warn!("tor: Error writing service private key to {}: {e}", s.key_file.display()),
                    }
                    on_service(service_id);
                }
                TorStep::Wait => {}
            }
            return Ok(());
        }
    };
    act(first, &mut tor, &mut stream)?;
    let mut reader = ReplyReader::default();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Acquire) {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        let mut replies = Vec::new();
        reader.feed(&buf[..n], |r| replies.push(r))?;
        for r in replies {
            if failed.is_some() {
                continue;
            }
            // As Core, a refusal ends the attempt but not the connection: nothing more is asked
            // until Tor closes it (a restart of Tor brings a new attempt).
            match tor.on_reply(&r).map_err(SessionError::from).and_then(|step| act(step, &mut tor, &mut stream)) {
                Ok(()) => {}
                Err(SessionError::Protocol(e)) => {
                    warn!("tor: {e}");
                    failed = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(Connected::Yes)
}

/// Reads the cookie file: exactly [`COOKIE_LEN`] bytes, or an error (never a big read).
fn read_cookie(path: &str) -> io::Result<Vec<u8>> {
    let f = std::fs::File::open(path)?;
    let mut bytes = Vec::with_capacity(COOKIE_LEN + 1);
    f.take(COOKIE_LEN as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}
