//! Process-level set-up Core does at start: raising the open-file limit
//! (`RaiseFileDescriptorLimit`) and locking the data directory (`LockDirectory`); and the
//! atomic file replacement every small persistent file uses (`banlist.json`, `peers.dat`,
//! `.cookie`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Mode of files anyone may read (before the umask).
pub const PUBLIC_FILE_MODE: u32 = 0o666;
/// Mode of files only the owner may read (the RPC cookie).
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new file: a
/// temporary `NAME.new` created with `mode`, written, synced, renamed over `path`, then the
/// directory synced.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".new");
    let tmp = path.with_file_name(tmp_name);
    {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // Make the rename itself durable; not every file system allows syncing a directory.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
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
        let file = OpenOptions::new()
            .create(true)
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
