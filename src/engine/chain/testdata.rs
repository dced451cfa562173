//! Test-only access to the real headers shipped in the repository (`tests/data`, read relative
//! to the crate only, so a clone of the repository is all the tests need).

use std::path::{Path, PathBuf};

use bitcoin::block::Header;
use bitcoin::consensus::deserialize;

/// The test-data directory inside the crate: `CARGO_MANIFEST_DIR/tests/data`.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("data")
}

/// The raw 80-byte headers of `name`, in order.
pub fn load_headers(name: &str) -> Vec<Header> {
    let path = data_dir().join(name);
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert_eq!(raw.len() % 80, 0, "{} is not a whole number of headers", path.display());
    raw.chunks_exact(80).map(|c| deserialize(c).expect("80-byte header")).collect()
}
