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

/// Removes the temporary files a crash can leave in `dir` (`.NAME….tmp`, from
/// [`write_atomically`] and the header store's creation); returns how many. Only for a
/// directory this process has locked, so no other writer's file is removed.
pub fn remove_stale_temp_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        if is_file && name.starts_with('.') && name.ends_with(".tmp") && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_writes_are_owner_only_and_concurrent_writers_never_share_a_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.dat");
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let path = &path;
                s.spawn(move || {
                    for i in 0..50u8 {
                        write_atomically(path, &[t; 1000][..usize::from(i) * 20]).expect("no writer fails");
                    }
                });
            }
        });
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 49 * 20, "a whole last write of some thread");
        assert!(bytes.iter().all(|b| *b == bytes[0]), "one writer's content, not a mix");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn private_dirs_and_stale_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("a").join("regtest");
        create_private_dir(&net).unwrap();
        assert_eq!(std::fs::metadata(&net).unwrap().permissions().mode() & 0o777, 0o700);
        for name in [".banlist.json.12.3.tmp", ".headers.dat.tmp", "keep.tmp", ".keep", "peers.dat"] {
            std::fs::write(net.join(name), b"x").unwrap();
        }
        assert_eq!(remove_stale_temp_files(&net), 2);
        let mut left: Vec<_> = std::fs::read_dir(&net).unwrap().map(|e| e.unwrap().file_name()).collect();
        left.sort();
        assert_eq!(left, [".keep", "keep.tmp", "peers.dat"]);
    }
}
