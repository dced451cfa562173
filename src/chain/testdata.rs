//! Test-only access to the real headers in the shared test data (`../shared/data`).

use std::path::{Path, PathBuf};

use bitcoin::block::Header;
use bitcoin::consensus::deserialize;

/// The shared test-data directory: `../shared/data` next to the crate (worktrees), else
/// `/work/shared/data`. Panics if neither exists: these tests never skip silently.
pub fn data_dir() -> PathBuf {
    let candidates = [Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"), PathBuf::from("/work/shared/data")];
    for dir in &candidates {
        if dir.is_dir() {
            return dir.clone();
        }
    }
    panic!("test data directory not found; looked in {candidates:?}");
}

/// The raw 80-byte headers of `name`, in order.
pub fn load_headers(name: &str) -> Vec<Header> {
    let path = data_dir().join(name);
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert_eq!(raw.len() % 80, 0, "{} is not a whole number of headers", path.display());
    raw.chunks_exact(80).map(|c| deserialize(c).expect("80-byte header")).collect()
}
