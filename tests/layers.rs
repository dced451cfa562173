//! The crate's layers (see `src/lib.rs`): `base` imports nothing above it, `engine` imports
//! only `base`, neither reaches into the threads (`daemon`) or the simulator (`sim`), and those
//! two drivers of the engine do not import each other. A module that breaks this fails here
//! with its file and line, not in review.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Every `file:line` under `src/<layer>` whose code (comments aside) names one of `forbidden`.
fn violations(layer: &str, forbidden: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(layer);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(!files.is_empty(), "no sources under {}", root.display());
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for f in forbidden {
                if code.contains(f) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn base_imports_nothing_above_it() {
    let v = violations("base", &["crate::engine", "crate::daemon", "crate::sim"]);
    assert!(v.is_empty(), "base imports an upper layer:\n{}", v.join("\n"));
}

#[test]
fn engine_imports_only_base() {
    let v = violations("engine", &["crate::daemon", "crate::sim"]);
    assert!(v.is_empty(), "engine imports an upper layer:\n{}", v.join("\n"));
}

#[test]
fn the_daemon_and_the_simulator_are_two_separate_drivers() {
    let v = violations("daemon", &["crate::sim"]);
    assert!(v.is_empty(), "the daemon imports the simulator:\n{}", v.join("\n"));
    let v = violations("sim", &["crate::daemon"]);
    assert!(v.is_empty(), "the simulator imports the daemon:\n{}", v.join("\n"));
}

#[test]
fn the_checker_sees_an_upward_import() {
    // The daemon does import the engine: the scan must find it, or it checks nothing.
    assert!(!violations("daemon", &["crate::engine"]).is_empty());
}
