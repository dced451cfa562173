//! Fuzzes reading `anchors.dat` (`anchors::deserialize`, what `anchors::take` does with the
//! file's bytes).
//!
//! Input: byte 0 is a control byte: its low bit asks for the trailing checksum to be appended
//! (the file is checksummed, so without it nearly every mutated file stops there). The rest is
//! the file.
//!
//! Checks: no panic; at most `MAX_ANCHORS` entries; a file that loads serializes to one that
//! loads to the same entries.

#![no_main]

use bitcoin::hashes::{Hash, sha256d};
use btcloop::engine::addrman::AddrEntry;
use btcloop::base::chainparams::Network;
use btcloop::engine::policy::anchors;
use btcloop::engine::policy::outbound::MAX_ANCHORS;
use libfuzzer_sys::fuzz_target;

/// The one call into the loader.
fn load(bytes: &[u8], magic: [u8; 4]) -> Result<Vec<AddrEntry>, String> {
    anchors::deserialize(bytes, magic).map_err(|e| e.to_string())
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else { return };
    let mut file = rest.to_vec();
    if control & 1 != 0 {
        let sum = sha256d::Hash::hash(&file).to_byte_array();
        file.extend_from_slice(&sum);
    }
    let magic = Network::Regtest.magic();
    let Ok(list) = load(&file, magic) else { return };
    assert!(list.len() <= MAX_ANCHORS);
    let again = load(&anchors::serialize(magic, &list), magic).expect("saved anchors load");
    assert_eq!(again, list, "anchors changed in a save/load round trip");
});
