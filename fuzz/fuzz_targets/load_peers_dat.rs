//! Fuzzes reading `peers.dat` (`AddrMan::deserialize`, what `AddrMan::load` does with the
//! file's bytes).
//!
//! Input: byte 0 is a control byte: its low bit asks for the body length field and the
//! trailing checksum to be set right (the file is checksummed, so without it nearly every
//! mutated file stops at the checksum); bit 1 picks the test-only loopback grouping rule. The
//! rest is the file (without its checksum when the low bit is set).
//!
//! Checks: no panic and no unbounded allocation (the input's counts are not trusted); a file
//! that loads serializes to a file that loads again and serializes to the same bytes.

#![no_main]

use bitcoin::hashes::{Hash, sha256d};
use btcloop::engine::addrman::{AddrMan, AddrManError, NetGroupRule};
use btcloop::base::chainparams::Network;
use libfuzzer_sys::fuzz_target;

/// The file's layout (`src/addrman/persist.rs`): magic (8), format version (1), network
/// magic (4), body length (8, little endian), body, sha256d of everything before (32).
const BODY_LEN_AT: usize = 13;
const HEADER_LEN: usize = 21;

/// Sets the body length and appends the checksum.
fn fix(file: &mut Vec<u8>) {
    if file.len() >= HEADER_LEN {
        let body = (file.len() - HEADER_LEN) as u64;
        file[BODY_LEN_AT..HEADER_LEN].copy_from_slice(&body.to_le_bytes());
    }
    let sum = sha256d::Hash::hash(file).to_byte_array();
    file.extend_from_slice(&sum);
}

/// The one call into the loader.
fn load(bytes: &[u8], magic: [u8; 4], rule: NetGroupRule) -> Result<AddrMan, AddrManError> {
    AddrMan::deserialize(bytes, magic, 1, rule)
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else { return };
    let mut file = rest.to_vec();
    if control & 1 != 0 {
        fix(&mut file);
    }
    let rule = if control & 2 != 0 { NetGroupRule::LoopbackPerAddress } else { NetGroupRule::Core };
    let magic = Network::Regtest.magic();
    let Ok(man) = load(&file, magic, rule) else { return };
    let once = man.serialize(magic);
    let again = match load(&once, magic, rule) {
        Ok(m) => m,
        Err(e) => panic!("a loaded address book does not load after saving: {e}"),
    };
    assert_eq!(again.serialize(magic), once, "saving is not a fixed point");
});
