//! What a panic in any thread does to the process (Core terminates on an uncaught exception):
//! the panic hook logs it (thread, message, location) and wakes the main thread, which runs the
//! orderly stop under a time bound and exits non-zero. Also the hidden `--test=panic-*`
//! switches that make a thread panic on purpose, for the end-to-end test of this.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Exit status of a process stopped by a thread's panic (Rust's own status for a panic in
/// `main`).
pub const PANIC_EXIT_CODE: u8 = 101;
/// How long the orderly stop after a panic may take before the process exits anyway (a dead
/// thread can leave others waiting for it, e.g. an RPC call for the message handler's answer).
pub const STOP_AFTER_PANIC_LIMIT: Duration = Duration::from_secs(10);

/// A place where `--test=panic-*` makes a thread panic on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TestPanic {
    /// `--test=panic-msghand`: the message handler, at its first new connection.
    MsgHandConnected = 1,
    /// `--test=panic-net`: the socket handler, at its first accepted connection.
    NetAccepted = 2,
}

/// The armed test panic point (0: none). Process-wide because the panic is a property of the
/// process under test; only the hidden test switch sets it.
static TEST_PANIC: AtomicU8 = AtomicU8::new(0);

/// Arms a test panic point (`--test=panic-*`).
pub fn arm_test_panic(point: TestPanic) {
    TEST_PANIC.store(point as u8, Ordering::Relaxed);
}

/// Panics (at the caller's location) if `point` was armed with `--test=panic-*`; does nothing
/// otherwise.
#[track_caller]
pub fn test_panic_point(point: TestPanic) {
    if TEST_PANIC.load(Ordering::Relaxed) == point as u8 {
        panic!("test-only panic ({point:?}, --test=panic-*)");
    }
}

/// The panic's message: the `&str` or `String` it was given, else a placeholder.
pub fn payload_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}

#[derive(Default)]
struct Counts {
    /// Panics the hook has seen begin.
    seen: AtomicUsize,
    /// Panics the hook has finished logging.
    logged: AtomicUsize,
}

/// The installed hook's view for the main thread: whether any thread panicked.
#[derive(Clone)]
pub struct PanicWatch {
    counts: Arc<Counts>,
}

impl PanicWatch {
    /// Whether any thread has panicked since [`install`].
    pub fn panicked(&self) -> bool {
        self.counts.seen.load(Ordering::Acquire) > 0
    }

    /// Waits (at most `limit`) until every panic seen so far has been logged, so the log line
    /// is written before the process exits.
    pub fn wait_logged(&self, limit: Duration) {
        let deadline = Instant::now() + limit.min(Duration::from_secs(60));
        while self.counts.logged.load(Ordering::Acquire) < self.counts.seen.load(Ordering::Acquire)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Replaces the panic hook: on a panic in any thread, `on_panic` is called first (it must only
/// wake the main thread, e.g. close the signal iterator; it runs on the panicking thread), then
/// the panic is logged at error level with the thread's name, the message and the location
/// (and a backtrace when `RUST_BACKTRACE` asks for one). Wake-up comes before logging so that
/// a panic inside the logger itself still stops the process.
pub fn install(on_panic: impl Fn() + Send + Sync + 'static) -> PanicWatch {
    let counts = Arc::new(Counts::default());
    let watch = PanicWatch { counts: counts.clone() };
    std::panic::set_hook(Box::new(move |info| {
        counts.seen.fetch_add(1, Ordering::AcqRel);
        on_panic();
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("<unnamed>");
        let location = info.location().map_or_else(|| "an unknown location".to_string(), |l| l.to_string());
        let message = payload_message(info.payload());
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            tracing::error!(
                "Thread {name} panicked at {location}: {message}; stopping the node\nstack backtrace:\n{backtrace}"
            );
        } else {
            tracing::error!("Thread {name} panicked at {location}: {message}; stopping the node");
        }
        counts.logged.fetch_add(1, Ordering::AcqRel);
    }));
    watch
}

/// Runs `stop` on a thread of its own (`btcloop-shutdown`) and waits for its result; once
/// `panicked()` holds (checked every 50 ms), at most `limit` longer. `None` when it did not
/// finish in time, could not be started, or panicked itself.
pub fn run_bounded<T: Send + 'static>(
    stop: impl FnOnce() -> T + Send + 'static,
    panicked: impl Fn() -> bool,
    limit: Duration,
) -> Option<T> {
    use std::sync::mpsc::RecvTimeoutError;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    if let Err(e) = std::thread::Builder::new().name("btcloop-shutdown".into()).spawn(move || {
        let _ = tx.send(stop());
    }) {
        tracing::error!("cannot start the shutdown thread: {e}");
        return None;
    }
    let mut deadline = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(out) => return Some(out),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return None,
        }
        if panicked() {
            let end = *deadline.get_or_insert_with(|| crate::base::time::instant_after(Instant::now(), limit));
            if Instant::now() >= end {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_messages() {
        let p: Box<dyn std::any::Any + Send> = Box::new("static");
        assert_eq!(payload_message(p.as_ref()), "static");
        let p: Box<dyn std::any::Any + Send> = Box::new(format!("owned {}", 1));
        assert_eq!(payload_message(p.as_ref()), "owned 1");
        let p: Box<dyn std::any::Any + Send> = Box::new(7u32);
        assert_eq!(payload_message(p.as_ref()), "Box<dyn Any>");
    }

    /// A stop that waits for `release` (at most 5 s, so the thread always ends).
    fn stuck_stop() -> (std::sync::mpsc::Sender<()>, impl FnOnce() -> u8 + Send + 'static) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        (release, move || {
            let _ = wait.recv_timeout(Duration::from_secs(5));
            7
        })
    }

    #[test]
    fn run_bounded_waits_for_the_stop_without_a_panic() {
        assert_eq!(run_bounded(|| 3, || false, Duration::ZERO), Some(3));
        let (release, stop) = stuck_stop();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let _ = release.send(());
        });
        // No panic: no bound, even with a zero limit.
        assert_eq!(run_bounded(stop, || false, Duration::ZERO), Some(7));
        releaser.join().unwrap();
    }

    #[test]
    fn run_bounded_gives_up_after_a_panic() {
        let (_release, stop) = stuck_stop();
        assert_eq!(run_bounded(stop, || true, Duration::from_millis(100)), None);
        assert_eq!(run_bounded(|| -> u8 { panic!("in the stop") }, || false, Duration::ZERO), None);
    }

    #[test]
    fn unarmed_test_point_does_nothing() {
        test_panic_point(TestPanic::MsgHandConnected);
    }
}
