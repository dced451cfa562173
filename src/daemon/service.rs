//! Running btcloopd as a service: `--daemon` (Core's `fork_daemon` with its token pipe: the
//! parent waits until the child has started, or failed to, and exits with the outcome), the
//! PID file (`--pid`, written at start and removed at a clean stop), and the main thread's wait
//! for a stop signal, reopening `debug.log` on each SIGHUP.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::daemon::logging::LogControl;

/// The PID file's default name in the network's data directory (Core's `bitcoind.pid`).
pub const PID_FILE: &str = "btcloopd.pid";

/// The first byte the child sends: start-up succeeded.
const TOKEN_OK: u8 = 1;
/// The first byte the child sends: start-up failed, the error text follows.
const TOKEN_FAILED: u8 = 0;
/// At most this much of the child's error text is read.
const MAX_REPORT: u64 = 64 * 1024;
/// How long the parent waits for the child's exit status after the pipe closed unreported.
const REAP_WAIT: Duration = Duration::from_secs(5);

/// Detaching or the PID file failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Forking must happen before any other thread exists; some did.
    #[error("cannot detach: {0} threads are running already")]
    Threads(usize),
    /// The report pipe could not be made.
    #[error("cannot create the start-up pipe: {0}")]
    Pipe(io::Error),
    /// `fork` failed.
    #[error("cannot fork: {0}")]
    Fork(io::Error),
    /// The child could not detach from the terminal's session.
    #[error("setsid failed: {0}")]
    Setsid(io::Error),
    /// The child's start-up failed; its error.
    #[error("{0}")]
    ChildFailed(String),
    /// The child ended without saying how its start-up went.
    #[error("btcloopd exited during start-up ({0}); see debug.log for details")]
    ChildDied(String),
    /// The PID file could not be written.
    #[error("unable to create the PID file {path}: {source}")]
    PidFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// Which side of the fork this process is on.
pub enum Forked {
    /// The original process: wait for the child's report, then exit.
    Parent(ParentWait),
    /// The detached child: start the node, then report.
    Child(StartupReport),
}

/// The parent's end of the report pipe.
pub struct ParentWait {
    pipe: File,
    child: libc::pid_t,
}

impl ParentWait {
    /// Waits until the child reports; `Ok` when its start-up succeeded, else its error.
    pub fn outcome(mut self) -> Result<(), ServiceError> {
        let mut report = Vec::new();
        // A read error counts as no report.
        let _ = (&mut self.pipe).take(MAX_REPORT).read_to_end(&mut report);
        match report.split_first() {
            Some((&TOKEN_OK, _)) => Ok(()),
            Some((&TOKEN_FAILED, text)) => Err(ServiceError::ChildFailed(String::from_utf8_lossy(text).into_owned())),
            _ => Err(ServiceError::ChildDied(self.reap())),
        }
    }

    /// The child's exit status, if it ends within [`REAP_WAIT`].
    fn reap(&self) -> String {
        let deadline = Instant::now() + REAP_WAIT;
        loop {
            let mut status = 0;
            // SAFETY: waitpid on our own child; it writes only `status`.
            let r = unsafe { libc::waitpid(self.child, &mut status, libc::WNOHANG) };
            if r == self.child {
                if libc::WIFEXITED(status) {
                    return format!("exit status {}", libc::WEXITSTATUS(status));
                }
                if libc::WIFSIGNALED(status) {
                    return format!("killed by signal {}", libc::WTERMSIG(status));
                }
                return format!("status {status}");
            }
            if r < 0 || Instant::now() >= deadline {
                return "no status".into();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The child's end of the report pipe. Dropping it without a report (a panic, an early
/// return) closes the pipe, which the parent takes as a failed start.
pub struct StartupReport {
    pipe: File,
}

impl StartupReport {
    /// Start-up succeeded: tells the parent (which exits 0) and detaches from the terminal
    /// (stdin, stdout and stderr become `/dev/null`, so console logging ends here, as Core's).
    pub fn success(mut self) -> io::Result<()> {
        // If the parent is gone the write fails; the node runs on regardless.
        let _ = self.pipe.write_all(&[TOKEN_OK]);
        drop(self.pipe);
        redirect_stdio_to_null()
    }

    /// Start-up failed with `error`: the parent prints it and exits 1.
    pub fn failure(mut self, error: &str) {
        let mut msg = vec![TOKEN_FAILED];
        msg.extend_from_slice(error.as_bytes());
        let _ = self.pipe.write_all(&msg);
    }
}

/// How many threads this process has (`/proc/self/task`), if the system says.
fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

/// Forks (Core's `fork_daemon`, without the `chdir`): the parent gets [`Forked::Parent`] and
/// should wait for the child's outcome; the child, in a new session, gets [`Forked::Child`] and
/// must report. Must be called before any thread is started (checked where `/proc` allows).
pub fn daemonize() -> Result<Forked, ServiceError> {
    if let Some(n) = thread_count().filter(|n| *n > 1) {
        return Err(ServiceError::Threads(n));
    }
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(ServiceError::Pipe(io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created by pipe2 and are owned by nothing else.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the process has one thread (checked above), so the child is a full copy with no
    // lock held by a thread that does not exist in it.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(ServiceError::Fork(io::Error::last_os_error()));
    }
    if pid > 0 {
        drop(write_end);
        return Ok(Forked::Parent(ParentWait { pipe: File::from(read_end), child: pid }));
    }
    drop(read_end);
    let report = StartupReport { pipe: File::from(write_end) };
    // SAFETY: setsid takes no arguments and touches no memory.
    if unsafe { libc::setsid() } < 0 {
        let e = ServiceError::Setsid(io::Error::last_os_error());
        report.failure(&e.to_string());
        std::process::exit(1);
    }
    Ok(Forked::Child(report))
}

/// Points stdin, stdout and stderr at `/dev/null`.
fn redirect_stdio_to_null() -> io::Result<()> {
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
    for target in [libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: dup2 between descriptors we hold; the standard streams stay open, now on
        // /dev/null.
        if unsafe { libc::dup2(null.as_raw_fd(), target) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Waits for SIGINT or SIGTERM (returned) or for the iterator to be closed (`None`: the `stop`
/// RPC or a panic), reopening `debug.log` on each SIGHUP (Core's log rotation). `signals` must
/// have SIGHUP registered, or SIGHUP keeps its default action (the process ends).
pub fn wait_for_stop(signals: &mut signal_hook::iterator::Signals, log: &LogControl) -> Option<i32> {
    for sig in signals.forever() {
        if sig != signal_hook::consts::SIGHUP {
            return Some(sig);
        }
        match log.reopen_file() {
            Ok(Some(path)) => tracing::info!("Reopened {} (SIGHUP)", path.display()),
            Ok(None) => {}
            Err(e) => tracing::warn!("SIGHUP: {e}; still writing to the old file"),
        }
    }
    None
}

/// The PID file of this process, removed when dropped (at the end of `main`).
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    pid: u32,
}

impl PidFile {
    /// Writes this process's id and a newline to `path`, atomically and owner-only.
    pub fn create(path: &Path) -> Result<PidFile, ServiceError> {
        let pid = std::process::id();
        crate::base::sys::write_atomically(path, format!("{pid}\n").as_bytes())
            .map_err(|source| ServiceError::PidFile { path: path.to_path_buf(), source })?;
        Ok(PidFile { path: path.to_path_buf(), pid })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Removed only while it still names this process: a later instance's file is kept.
        match std::fs::read_to_string(&self.path) {
            Ok(text) if text.trim() == self.pid.to_string() => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    tracing::warn!("Unable to remove PID file ({}): {e}", self.path.display());
                }
            }
            Ok(_) => tracing::warn!("PID file {} names another process now; left in place", self.path.display()),
            Err(e) => tracing::warn!("Unable to remove PID file ({}): {e}", self.path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn pid_file_is_owner_only_and_removed_only_while_it_is_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PID_FILE);
        let f = PidFile::create(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}\n", std::process::id()));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        drop(f);
        assert!(!path.exists());
        // Another process's file written over ours is left alone.
        let f = PidFile::create(&path).unwrap();
        std::fs::write(&path, "1\n").unwrap();
        drop(f);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n");
        let e = PidFile::create(&dir.path().join("no/such/dir/x.pid")).unwrap_err().to_string();
        assert!(e.contains("unable to create the PID file") && e.contains("no/such/dir"), "{e}");
    }
}
