//! Hash helpers the codecs share: HMAC-SHA256 (BIP324's key schedule, Tor's SAFECOOKIE).

use bitcoin::hashes::{Hash, HashEngine, hmac, sha256};

/// HMAC-SHA256 of the concatenated `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut engine = hmac::HmacEngine::<sha256::Hash>::new(key);
    for p in parts {
        engine.input(p);
    }
    hmac::Hmac::<sha256::Hash>::from_engine(engine).to_byte_array()
}
