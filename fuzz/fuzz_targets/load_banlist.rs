//! Fuzzes loading `banlist.json` (`BanMan::open`): the input is written as the file.
//!
//! Input: the file (any bytes; valid ban lists in the seeds).
//!
//! Checks: no panic and no error; a file that does not parse is set aside byte for byte as
//! `banlist.json.bak` and the node starts with an empty list (Core's recovery); a file
//! that loads keeps only unexpired bans, and survives a save and a load: after banning one more
//! subnet (which rewrites the file), opening the file again gives the bans seen before plus
//! that one.

#![no_main]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use btcloop::engine::policy::banman::{BanEntry, BanListError, BanMan, Subnet};
use libfuzzer_sys::fuzz_target;

mod common;
use common::TempDir;

/// The clock of the run: bans ending before this are expired.
const NOW: i64 = 1_700_000_000;

/// The one call into the loader.
fn open(path: &Path) -> Result<BanMan, BanListError> {
    BanMan::open(path, NOW)
}

fn run(dir: &Path, data: &[u8]) {
    let path = dir.join("banlist.json");
    std::fs::write(&path, data).expect("write banlist.json");
    let aside = dir.join("banlist.json.bak");
    let man = open(&path).unwrap_or_else(|e| panic!("unexpected error: {e}"));
    if aside.exists() {
        assert!(man.list(NOW).is_empty(), "a damaged file left bans behind");
        assert_eq!(std::fs::read(&aside).expect("read .bak"), data, "the damaged file was not kept as it was");
        assert!(!path.exists(), "the damaged file is still in place");
        std::fs::remove_file(&aside).expect("remove .bak");
        return;
    }
    let before: BTreeMap<Subnet, BanEntry> = man.list(NOW).into_iter().collect();
    assert!(before.values().all(|e| e.until >= NOW), "an expired ban was loaded");

    let extra: Subnet = "192.0.2.0/24".parse().expect("subnet");
    let until = NOW + 3600;
    let mut expected = before.clone();
    if expected.get(&extra).is_none_or(|e| e.until < until) {
        expected.insert(extra, BanEntry { created: NOW, until });
    }
    man.ban(extra, NOW, until).expect("saving the ban list");
    drop(man);
    let again = open(&path).unwrap_or_else(|e| panic!("the saved ban list does not load: {e}"));
    let after: BTreeMap<Subnet, BanEntry> = again.list(NOW).into_iter().collect();
    assert_eq!(after, expected, "bans changed in a save/load round trip");
}

fuzz_target!(|data: &[u8]| {
    static DIR: Mutex<Option<TempDir>> = Mutex::new(None);
    let mut dir = DIR.lock().unwrap_or_else(|e| e.into_inner());
    let dir = dir.get_or_insert_with(|| TempDir::new("banlist"));
    run(&dir.0, data);
});
