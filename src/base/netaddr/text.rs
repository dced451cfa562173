//! The text form of every address (Core's `CNetAddr::ToStringAddr`, `CService::ToStringAddrPort`,
//! `CNetAddr::SetSpecial` and `SplitHostPort`): Tor v3 as `<base32(pubkey|checksum|version)>.onion`
//! with the SHA3-256 checksum, I2P as `<base32(hash)>.b32.i2p`, CJDNS and IPv6 in hextets,
//! internal addresses as `<base32>.internal`; and the parsing of `HOST[:PORT]` as the user gives
//! it, where a `.onion` or `.i2p` name is an address, never a name to resolve.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bitcoin::p2p::address::AddrV2;
use sha3::{Digest, Sha3_256};

use crate::base::netgroup::View;

/// Core's base32 alphabet (RFC 4648, lower case).
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Tor v3: bytes of the public key.
const TORV3_KEY_LEN: usize = 32;
/// Tor v3: bytes of the checksum.
const TORV3_CHECKSUM_LEN: usize = 2;
/// Tor v3: the version byte.
const TORV3_VERSION: u8 = 3;
/// Tor v3: decoded length of the name (key, checksum, version).
const TORV3_TOTAL_LEN: usize = TORV3_KEY_LEN + TORV3_CHECKSUM_LEN + 1;
/// Tor v2: decoded length of a (retired) v2 name.
const TORV2_LEN: usize = 10;
/// The suffix of Tor names.
const ONION_SUFFIX: &str = ".onion";
/// The suffix of I2P names of the form Core supports.
const I2P_SUFFIX: &str = ".b32.i2p";
/// The suffix of every I2P name.
const I2P_ANY_SUFFIX: &str = ".i2p";
/// Base32 characters of an I2P name (32 bytes, unpadded).
const I2P_B32_LEN: usize = 52;
/// Longest `HOST[:PORT]` looked at (a DNS name is at most 253 characters).
const MAX_TEXT_LEN: usize = 300;

/// Why a text is not an address or `HOST[:PORT]`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddrTextError {
    /// Nothing was given.
    #[error("empty address")]
    Empty,
    /// Longer than any address or host name.
    #[error("too long")]
    TooLong,
    /// A NUL or other control character.
    #[error("contains a control character")]
    Control,
    /// A `.onion` name of 16 characters: Tor v2, retired by Tor and by Core.
    #[error("Tor v2 onion addresses are no longer supported; use a v3 (56-character) address")]
    TorV2,
    /// A `.onion` name that is not 56 base32 characters.
    #[error("a Tor v3 onion address is 56 base32 characters before .onion")]
    OnionLength,
    /// A `.onion` name whose version byte is not 3.
    #[error("onion address version {0} is not 3")]
    OnionVersion(u8),
    /// A `.onion` name whose checksum does not match its key.
    #[error("onion address checksum mismatch")]
    OnionChecksum,
    /// An `.i2p` name that is not 52 base32 characters before `.b32.i2p`.
    #[error("an I2P address is 52 base32 characters before .b32.i2p")]
    I2pForm,
    /// A character outside the base32 alphabet, or stray bits at the end.
    #[error("invalid base32")]
    Base32,
    /// The port is not a number from 1 to 65535 (0 is allowed for I2P only).
    #[error("invalid port")]
    Port,
    /// The host is neither an IP literal, a special address nor a DNS name.
    #[error("invalid host name")]
    Host,
}

/// Lower-case base32 without padding (Core's `EncodeBase32(.., false)`); the last character
/// carries the leftover bits, zero-filled.
pub fn encode_base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u16, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u16::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[usize::from((acc >> bits) & 31)]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(BASE32[usize::from((acc << (5 - bits)) & 31)]));
    }
    out
}

/// Base32 without padding, either case (Core's `DecodeBase32` on a padded input): `None` for a
/// character outside the alphabet, or when the leftover bits are 5 or more or not zero.
pub fn decode_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut acc, mut bits) = (0u16, 0u32);
    for c in text.bytes() {
        let v = match c.to_ascii_lowercase() {
            l @ b'a'..=b'z' => l - b'a',
            d @ b'2'..=b'7' => d - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u16::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    (bits < 5 && acc == 0).then_some(out)
}

/// Tor v3's checksum: `SHA3-256(".onion checksum" | pubkey | version)[..2]`.
fn onion_checksum(key: &[u8; TORV3_KEY_LEN]) -> [u8; TORV3_CHECKSUM_LEN] {
    let mut h = Sha3_256::new();
    h.update(b".onion checksum");
    h.update(key);
    h.update([TORV3_VERSION]);
    let digest = h.finalize();
    [digest[0], digest[1]]
}

/// Core's `OnionToString`: `base32(pubkey | checksum | version) + ".onion"`.
pub fn onion_to_string(key: &[u8; TORV3_KEY_LEN]) -> String {
    let mut name = Vec::with_capacity(TORV3_TOTAL_LEN);
    name.extend_from_slice(key);
    name.extend_from_slice(&onion_checksum(key));
    name.push(TORV3_VERSION);
    encode_base32(&name) + ONION_SUFFIX
}

/// Whether `s` ends with `suffix`, in either case.
fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len()
        .checked_sub(suffix.len())
        .and_then(|start| s.as_bytes().get(start..))
        .is_some_and(|end| end.eq_ignore_ascii_case(suffix.as_bytes()))
}

/// Core's `SetTor` on the name without `.onion`.
fn parse_onion(name: &str) -> Result<AddrV2, AddrTextError> {
    let bytes = decode_base32(name).ok_or(AddrTextError::Base32)?;
    if bytes.len() == TORV2_LEN {
        return Err(AddrTextError::TorV2);
    }
    let (Some(key), Some(&[c0, c1, version])) = (bytes.first_chunk::<TORV3_KEY_LEN>(), bytes.get(TORV3_KEY_LEN..))
    else {
        return Err(AddrTextError::OnionLength);
    };
    if version != TORV3_VERSION {
        return Err(AddrTextError::OnionVersion(version));
    }
    if onion_checksum(key) != [c0, c1] {
        return Err(AddrTextError::OnionChecksum);
    }
    Ok(AddrV2::TorV3(*key))
}

/// Core's `SetI2P` on the whole name.
fn parse_i2p(text: &str) -> Result<AddrV2, AddrTextError> {
    let name = text.get(..text.len().saturating_sub(I2P_SUFFIX.len())).unwrap_or_default();
    if !ends_with_ignore_case(text, I2P_SUFFIX) || name.len() != I2P_B32_LEN {
        return Err(AddrTextError::I2pForm);
    }
    let bytes = decode_base32(name).ok_or(AddrTextError::Base32)?;
    let key: [u8; 32] = bytes.try_into().map_err(|_| AddrTextError::I2pForm)?;
    Ok(AddrV2::I2p(key))
}

/// Core's `SetSpecial`: `Ok(Some(..))` for a valid Tor v3 `.onion` or I2P `.b32.i2p` address
/// (either case), `Ok(None)` for a text of neither suffix, and an error for a text that ends in
/// `.onion` or `.i2p` but is not a valid address (unlike Core, such a name is never handed to
/// the DNS resolver, which must not see `.onion` names).
pub fn parse_special(text: &str) -> Result<Option<AddrV2>, AddrTextError> {
    if text.bytes().any(|b| b.is_ascii_control()) {
        return Err(AddrTextError::Control);
    }
    if ends_with_ignore_case(text, ONION_SUFFIX) {
        let name = text.get(..text.len() - ONION_SUFFIX.len()).unwrap_or_default();
        return parse_onion(name).map(Some);
    }
    if ends_with_ignore_case(text, I2P_ANY_SUFFIX) {
        return parse_i2p(text).map(Some);
    }
    Ok(None)
}

/// Core's `ToStringAddr`: the address as Core holds it (IPv4-mapped IPv6 as IPv4; Tor v2 and
/// unknown networks as `::`), IPv6 and CJDNS in RFC 5952 hextets, Tor v3 and I2P in base32.
pub fn addr_to_string(addr: &AddrV2) -> String {
    match View::of(addr) {
        View::V4(a) => Ipv4Addr::from(a).to_string(),
        View::V6(a) | View::Cjdns(a) => Ipv6Addr::from(a).to_string(),
        View::Onion(k) => onion_to_string(&k),
        View::I2p(k) => encode_base32(&k) + I2P_SUFFIX,
        View::Internal(n) => encode_base32(&n) + ".internal",
    }
}

/// Core's `ToStringAddrPort`: `ADDR:PORT`, with IPv6 and CJDNS addresses in brackets.
pub fn addr_port_to_string(addr: &AddrV2, port: u16) -> String {
    match View::of(addr) {
        View::V6(_) | View::Cjdns(_) => format!("[{}]:{port}", addr_to_string(addr)),
        _ => format!("{}:{port}", addr_to_string(addr)),
    }
}

/// A host as the user gave it, once understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// An IP literal (an address in fc00::/8 stays IPv6, as in Core without `-cjdnsreachable`).
    Ip(IpAddr),
    /// A Tor v3 or I2P address.
    Special(AddrV2),
    /// A DNS name, to be resolved.
    Name(String),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Special(a) => f.write_str(&addr_to_string(a)),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// Core's `SplitHostPort`: the port after the last `:` when the host before it is bracketed or
/// has no other `:`; a bracketed host loses its brackets. `Ok(None)` for no port.
fn split_host_port(text: &str) -> Result<(&str, Option<u16>), AddrTextError> {
    let mut host = text;
    let mut port = None;
    if let Some(colon) = text.rfind(':') {
        let before = &text[..colon];
        let bracketed = before.starts_with('[') && before.ends_with(']');
        if colon == 0 || bracketed || !before.contains(':') {
            let p = text[colon + 1..].parse::<u16>().map_err(|_| AddrTextError::Port)?;
            host = before;
            port = Some(p);
        }
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        host = inner;
    }
    Ok((host, port))
}

/// Parses `HOST`, `HOST:PORT`, `IPv4[:PORT]`, `IPv6`, `[IPv6]` or `[IPv6]:PORT` where HOST may be
/// a Tor v3 `.onion` or I2P `.b32.i2p` address (never resolved) or a DNS name. Without a port,
/// `default_port`, but 0 for I2P (Core's `I2P_SAM31_PORT`: SAM 3.1 has no ports); port 0 given
/// is refused except for I2P.
pub fn parse_host_port(text: &str, default_port: u16) -> Result<(Host, u16), AddrTextError> {
    if text.is_empty() {
        return Err(AddrTextError::Empty);
    }
    if text.len() > MAX_TEXT_LEN {
        return Err(AddrTextError::TooLong);
    }
    if text.bytes().any(|b| b.is_ascii_control()) {
        return Err(AddrTextError::Control);
    }
    let (host_text, port) = split_host_port(text)?;
    let host = if let Ok(ip) = host_text.parse::<IpAddr>() {
        Host::Ip(ip)
    } else if let Some(special) = parse_special(host_text)? {
        Host::Special(special)
    } else {
        let valid = !host_text.is_empty()
            && host_text.len() <= 253
            && host_text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
        if !valid {
            return Err(AddrTextError::Host);
        }
        Host::Name(host_text.to_string())
    };
    let i2p = matches!(host, Host::Special(AddrV2::I2p(_)));
    let port = match port {
        Some(0) if !i2p => return Err(AddrTextError::Port),
        Some(p) => p,
        None if i2p => 0,
        None => default_port,
    };
    Ok((host, port))
}

#[cfg(test)]
#[path = "text_tests.rs"]
mod tests;
