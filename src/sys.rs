//! Process-level set-up Core does at start: raising the open-file limit
//! (`RaiseFileDescriptorLimit`) and locking the data directory (`LockDirectory`); and the
//! atomic file replacement every small persistent file uses (`banlist.json`, `peers.dat`,
//! `anchors.dat`, `.cookie`), with the owner-only modes of the data directory.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of every file btcloopd creates in its data directory: only the owner may read it
/// (`peers.dat` holds the secret bucketing key, `.cookie` the RPC credentials). Core gets the
/// same by running with umask 077; `main` sets that umask too, this is the explicit mode.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of the data directories btcloopd creates.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Distinguishes the temporary files of concurrent writers in one process.
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Creates `dir` and its missing parents with mode 0700 (existing ones are left as they are).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(PRIVATE_DIR_MODE).create(dir)
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new file: a
/// temporary `.NAME.PID.SEQ.tmp` (unique per call, so concurrent writers never share one)
/// created with mode 0600, written, synced, renamed over `path`, then the directory synced.
/// Writers of the same file must still be ordered by their caller (the last rename wins).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(".{}.{seq}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(PRIVATE_FILE_MODE).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir_of(path);
    Ok(())
}

/// Makes a rename or creation in `path`'s directory durable; not every file system allows
/// syncing a directory, so a failure is ignored.
pub fn sync_dir_of(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Raises the soft `RLIMIT_NOFILE` towards `wanted` (up to the hard limit); returns the limit
/// now in force.
pub fn raise_fd_limit(wanted: u64) -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < wanted {
        let new = libc::rlimit { rlim_cur: wanted.min(lim.rlim_max), rlim_max: lim.rlim_max };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            return new.rlim_cur;
        }
    }
    lim.rlim_cur
}

/// An exclusive lock on a data directory, held while the value lives.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

/// The data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error("cannot obtain a lock on data directory {0}; btcloopd is probably already running")]
    Held(PathBuf),
    /// The lock file could not be opened.
    #[error("cannot open lock file {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl DirLock {
    /// Locks `dir` through the file `dir/.lock`.
    pub fn acquire(dir: &Path) -> Result<DirLock, LockError> {
        let path = dir.join(".lock");
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .create(true)
            .mode(PRIVATE_FILE_MODE)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| LockError::Io { path: path.clone(), source })?;
        // SAFETY: flock on a descriptor we own; no memory is passed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(LockError::Held(dir.to_path_buf()));
        }
        Ok(DirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
