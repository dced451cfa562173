//! Payload codec: decodes the payload of a checked frame with Bitcoin Core's tolerance
//! (trailing bytes ignored, optional `version` fields) — one typed decoder per message type the
//! protocol handles, and [`decode_payload`] into the `bitcoin` crate's [`NetworkMessage`] for
//! any type — and encodes messages straight into a send buffer. No I/O.

use bitcoin::consensus::encode::{self, Decodable, Encodable, deserialize_partial};
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::{AddrV2Message, Address};
use bitcoin::p2p::message::{CommandString, NetworkMessage};
use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};
use bitcoin::p2p::message_network::VersionMessage;

use super::transport::{Checksum, encode_frame_reusing};
use bitcoin::block::Header;
use bitcoin::hashes::Hash;

/// Core's `MAX_SUBVERSION_LENGTH`: the longest user agent accepted in `version`.
pub const MAX_SUBVERSION_LENGTH: usize = 256;
/// Core's `MIN_PEER_PROTO_VERSION`: peers below it are disconnected after the `version` head.
pub const MIN_PEER_PROTO_VERSION: i32 = 31800;

/// Why a payload could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The payload ended early or held an invalid value.
    #[error("malformed {command} payload: {source}")]
    Malformed {
        /// The message type.
        command: String,
        /// What the decoder reported.
        source: encode::Error,
    },
    /// The `version` user agent was longer than [`MAX_SUBVERSION_LENGTH`].
    #[error("user agent of {0} bytes exceeds {MAX_SUBVERSION_LENGTH}")]
    UserAgentTooLong(usize),
}

fn partial<T: Decodable>(command: &str, payload: &[u8]) -> Result<T, PayloadError> {
    deserialize_partial::<T>(payload)
        .map(|(v, _)| v)
        .map_err(|source| PayloadError::Malformed { command: command.to_string(), source })
}

/// `ping`: the nonce (bytes after it ignored).
pub fn decode_ping(payload: &[u8]) -> Result<u64, PayloadError> {
    partial("ping", payload)
}

/// `pong`: the nonce; a payload too short to hold one reads as 0, as in Core (it cancels the
/// ping all the same).
pub fn decode_pong(payload: &[u8]) -> u64 {
    partial("pong", payload).unwrap_or(0)
}

/// `getheaders`: version, locator and stop hash.
pub fn decode_getheaders(payload: &[u8]) -> Result<GetHeadersMessage, PayloadError> {
    partial("getheaders", payload)
}

/// `inv`: the inventory list.
pub fn decode_inv(payload: &[u8]) -> Result<Vec<Inventory>, PayloadError> {
    partial("inv", payload)
}

/// `block`: its header (the first 80 bytes). The rest is the validation thread's to decode,
/// off the message handler.
pub fn decode_block_header(payload: &[u8]) -> Result<Header, PayloadError> {
    partial("block", payload)
}

/// `sendcmpct`: its raw announce byte and version (Core punishes an announce byte other than
/// 0 or 1, which the `bitcoin` crate's decoder refuses as malformed).
pub fn decode_sendcmpct(payload: &[u8]) -> Result<(u8, u64), PayloadError> {
    partial("sendcmpct", payload)
}

/// `cmpctblock` (BIP152).
pub fn decode_cmpctblock(payload: &[u8]) -> Result<bitcoin::p2p::message_compact_blocks::CmpctBlock, PayloadError> {
    partial("cmpctblock", payload)
}

/// `getblocktxn` (BIP152).
pub fn decode_getblocktxn(payload: &[u8]) -> Result<bitcoin::p2p::message_compact_blocks::GetBlockTxn, PayloadError> {
    partial("getblocktxn", payload)
}

/// `blocktxn` (BIP152).
pub fn decode_blocktxn(payload: &[u8]) -> Result<bitcoin::p2p::message_compact_blocks::BlockTxn, PayloadError> {
    partial("blocktxn", payload)
}

/// `addr`: (time, address) pairs.
pub fn decode_addr(payload: &[u8]) -> Result<Vec<(u32, Address)>, PayloadError> {
    partial("addr", payload)
}

/// `addrv2` (BIP155): the address entries.
pub fn decode_addrv2(payload: &[u8]) -> Result<Vec<AddrV2Message>, PayloadError> {
    partial("addrv2", payload)
}

/// Decodes the payload of a frame of type `command` into a [`NetworkMessage`] (for logs and
/// captures; the protocol's dispatch uses the typed decoders above, the same ones). Types the
/// `bitcoin` crate does not know become [`NetworkMessage::Unknown`]. Like Core, bytes after
/// the fields a message defines are ignored, and a `pong` too short to hold a nonce reads as
/// nonce 0 (both cancel the ping).
pub fn decode_payload(command: &str, payload: &[u8]) -> Result<NetworkMessage, PayloadError> {
    use NetworkMessage as M;
    let c = command;
    Ok(match command {
        "version" => M::Version(decode_version(payload)?),
        "verack" => M::Verack,
        "addr" => M::Addr(decode_addr(payload)?),
        "inv" => M::Inv(decode_inv(payload)?),
        "getdata" => M::GetData(partial(c, payload)?),
        "notfound" => M::NotFound(partial(c, payload)?),
        "getblocks" => M::GetBlocks(partial(c, payload)?),
        "getheaders" => M::GetHeaders(decode_getheaders(payload)?),
        "mempool" => M::MemPool,
        "tx" => M::Tx(partial(c, payload)?),
        "block" => M::Block(partial(c, payload)?),
        "headers" => M::Headers(decode_headers(payload)?),
        "sendheaders" => M::SendHeaders,
        "getaddr" => M::GetAddr,
        "ping" => M::Ping(decode_ping(payload)?),
        "pong" => M::Pong(decode_pong(payload)),
        "merkleblock" => M::MerkleBlock(partial(c, payload)?),
        "filterload" => M::FilterLoad(partial(c, payload)?),
        "filteradd" => M::FilterAdd(partial(c, payload)?),
        "filterclear" => M::FilterClear,
        "getcfilters" => M::GetCFilters(partial(c, payload)?),
        "cfilter" => M::CFilter(partial(c, payload)?),
        "getcfheaders" => M::GetCFHeaders(partial(c, payload)?),
        "cfheaders" => M::CFHeaders(partial(c, payload)?),
        "getcfcheckpt" => M::GetCFCheckpt(partial(c, payload)?),
        "cfcheckpt" => M::CFCheckpt(partial(c, payload)?),
        "sendcmpct" => M::SendCmpct(partial(c, payload)?),
        "cmpctblock" => M::CmpctBlock(partial(c, payload)?),
        "getblocktxn" => M::GetBlockTxn(partial(c, payload)?),
        "blocktxn" => M::BlockTxn(partial(c, payload)?),
        "alert" => M::Alert(partial(c, payload)?),
        "reject" => M::Reject(partial(c, payload)?),
        "feefilter" => M::FeeFilter(partial(c, payload)?),
        "wtxidrelay" => M::WtxidRelay,
        "addrv2" => M::AddrV2(decode_addrv2(payload)?),
        "sendaddrv2" => M::SendAddrV2,
        other => M::Unknown {
            command: CommandString::try_from(other.to_string()).map_err(|_| PayloadError::Malformed {
                command: other.to_string(),
                source: encode::Error::ParseFailed("message type is not a valid command string"),
            })?,
            payload: payload.to_vec(),
        },
    })
}

/// `headers`: a count, then that many 80-byte headers each followed by a transaction count
/// (zero; Core ignores its value).
pub fn decode_headers(payload: &[u8]) -> Result<Vec<bitcoin::block::Header>, PayloadError> {
    let malformed = |source| PayloadError::Malformed { command: "headers".into(), source };
    let mut r = payload;
    let n = encode::VarInt::consensus_decode(&mut r).map_err(malformed)?.0;
    // Each entry takes 81 bytes, so the count can never ask for more than the payload holds.
    let fits = r.len() / 81;
    if n as usize > fits {
        return Err(malformed(encode::Error::ParseFailed("headers count exceeds payload")));
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        out.push(bitcoin::block::Header::consensus_decode(&mut r).map_err(malformed)?);
        // Core reads the transaction count and ignores it ("assume it is 0").
        encode::VarInt::consensus_decode(&mut r).map_err(malformed)?;
    }
    Ok(out)
}

/// `version`, as Core reads it: the first four fields are required; a peer below
/// [`MIN_PEER_PROTO_VERSION`] is judged on those alone (Core disconnects it before reading
/// further, so a malformed tail does not save it); otherwise sender address + nonce, user agent
/// (at most 256 bytes), start height and relay flag are read, each only if bytes remain.
/// The `version` field is kept as the raw 32 bits; Core reads it as a signed `int`.
pub fn decode_version(payload: &[u8]) -> Result<VersionMessage, PayloadError> {
    let malformed = |source| PayloadError::Malformed { command: "version".into(), source };
    let mut r = payload;
    let version = u32::consensus_decode(&mut r).map_err(malformed)?;
    let services = ServiceFlags::from(u64::consensus_decode(&mut r).map_err(malformed)?);
    let timestamp = i64::consensus_decode(&mut r).map_err(malformed)?;
    let receiver = Address::consensus_decode(&mut r).map_err(malformed)?;
    let mut msg = VersionMessage {
        version,
        services,
        timestamp,
        receiver,
        sender: Address { services: ServiceFlags::NONE, address: [0; 8], port: 0 },
        nonce: 1,
        user_agent: String::new(),
        start_height: -1,
        relay: true,
    };
    if (version as i32) < MIN_PEER_PROTO_VERSION {
        return Ok(msg);
    }
    if !r.is_empty() {
        msg.sender = Address::consensus_decode(&mut r).map_err(malformed)?;
        msg.nonce = u64::consensus_decode(&mut r).map_err(malformed)?;
    }
    if !r.is_empty() {
        let len = encode::VarInt::consensus_decode(&mut r).map_err(malformed)?.0;
        if len > MAX_SUBVERSION_LENGTH as u64 {
            return Err(PayloadError::UserAgentTooLong(len as usize));
        }
        let len = len as usize;
        let Some((ua, rest)) = r.split_at_checked(len) else {
            return Err(malformed(encode::Error::ParseFailed("user agent runs past the payload")));
        };
        msg.user_agent = sanitize_string(ua);
        r = rest;
    }
    if !r.is_empty() {
        msg.start_height = i32::consensus_decode(&mut r).map_err(malformed)?;
    }
    if !r.is_empty() {
        msg.relay = u8::consensus_decode(&mut r).map_err(malformed)? != 0;
    }
    Ok(msg)
}

/// Core's `SanitizeString` (default rule): keep letters, digits, space and `.,;-_/:?@()`.
pub fn sanitize_string(bytes: &[u8]) -> String {
    bytes.iter().filter(|b| b.is_ascii_alphanumeric() || b" .,;-_/:?@()".contains(b)).map(|&b| b as char).collect()
}

/// The message type of `msg` (the real type for [`NetworkMessage::Unknown`]).
pub fn command_of(msg: &NetworkMessage) -> &str {
    match msg {
        NetworkMessage::Unknown { command, .. } => command.as_ref(),
        other => other.cmd(),
    }
}

/// The message type and payload of `msg`, as a frame carries them (the simulator and tests
/// hand these to `Protocol::process_message`, which decodes them as it decodes the wire's).
pub fn encode_payload(msg: &NetworkMessage) -> (&str, Vec<u8>) {
    let mut payload = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = msg.consensus_encode(&mut payload);
    (command_of(msg), payload)
}

/// Appends a `headers` frame carrying `headers` to `out`, writing each header's 80 bytes and
/// its zero transaction count directly (the hot path of serving `getheaders`), the checksum as
/// `sum` says. Returns the payload length.
pub fn encode_headers<'h>(
    magic: [u8; 4],
    headers: impl ExactSizeIterator<Item = &'h Header>,
    out: &mut Vec<u8>,
    sum: Checksum<'_>,
) -> usize {
    encode_frame_reusing(
        magic,
        "headers",
        out,
        |buf| {
            let n = headers.len();
            buf.reserve(9 + n * 81);
            // Writing into a Vec cannot fail.
            let _ = encode::VarInt(n as u64).consensus_encode(buf);
            for h in headers {
                buf.extend_from_slice(&h.version.to_consensus().to_le_bytes());
                buf.extend_from_slice(h.prev_blockhash.as_byte_array());
                buf.extend_from_slice(h.merkle_root.as_byte_array());
                buf.extend_from_slice(&h.time.to_le_bytes());
                buf.extend_from_slice(&h.bits.to_consensus().to_le_bytes());
                buf.extend_from_slice(&h.nonce.to_le_bytes());
                buf.push(0);
            }
        },
        sum,
    )
}

/// Appends `msg` as a v1 frame to `out`; returns the payload length.
pub fn encode_message(magic: [u8; 4], msg: &NetworkMessage, out: &mut Vec<u8>) -> usize {
    encode_message_reusing(magic, msg, out, Checksum::Compute)
}

/// [`encode_message`] with the checksum filled as `sum` says.
pub fn encode_message_reusing(magic: [u8; 4], msg: &NetworkMessage, out: &mut Vec<u8>, sum: Checksum<'_>) -> usize {
    let write = |buf: &mut Vec<u8>| {
        // Writing into a Vec cannot fail.
        let _ = msg.consensus_encode(buf);
    };
    encode_frame_reusing(magic, command_of(msg), out, write, sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::consensus::serialize;

    fn our_version() -> VersionMessage {
        VersionMessage {
            version: 70016,
            services: ServiceFlags::NONE,
            timestamp: 1_700_000_000,
            receiver: Address { services: ServiceFlags::NONE, address: [0; 8], port: 0 },
            sender: Address { services: ServiceFlags::NONE, address: [0; 8], port: 0 },
            nonce: 99,
            user_agent: "/btcloop:0.1.0/".into(),
            start_height: 5,
            relay: false,
        }
    }

    #[test]
    fn version_round_trips() {
        let v = our_version();
        let bytes = serialize(&v);
        assert_eq!(decode_payload("version", &bytes).unwrap(), NetworkMessage::Version(v));
    }

    #[test]
    fn version_optional_fields_default_as_core() {
        let v = our_version();
        let bytes = serialize(&v);
        // Only version, services, time and addr_recv (4 + 8 + 8 + 26 bytes).
        let NetworkMessage::Version(short) = decode_payload("version", &bytes[..46]).unwrap() else {
            panic!("not a version");
        };
        assert_eq!((short.nonce, short.start_height, short.relay), (1, -1, true));
        assert!(short.user_agent.is_empty());
        // Without the relay byte.
        let NetworkMessage::Version(norelay) = decode_payload("version", &bytes[..bytes.len() - 1]).unwrap() else {
            panic!("not a version");
        };
        assert!(norelay.relay);
        assert_eq!(norelay.start_height, 5);
        // Truncated inside the required fields.
        assert!(decode_payload("version", &bytes[..30]).is_err());
    }

    #[test]
    fn obsolete_version_judged_on_head_alone() {
        let mut v = our_version();
        v.version = 31799;
        v.user_agent = "x".repeat(300);
        let NetworkMessage::Version(d) = decode_payload("version", &serialize(&v)).unwrap() else { panic!() };
        assert_eq!(d.version, 31799);
        v.version = 31800;
        assert!(decode_payload("version", &serialize(&v)).is_err());
    }

    #[test]
    fn long_user_agent_rejected() {
        let mut v = our_version();
        v.user_agent = "x".repeat(257);
        assert!(matches!(decode_payload("version", &serialize(&v)), Err(PayloadError::UserAgentTooLong(257))));
        v.user_agent = "x".repeat(256);
        assert!(decode_payload("version", &serialize(&v)).is_ok());
    }

    #[test]
    fn trailing_bytes_ignored_and_short_pong_is_zero() {
        let mut p = 5u64.to_le_bytes().to_vec();
        p.extend_from_slice(&[1, 2, 3]);
        assert_eq!(decode_payload("ping", &p).unwrap(), NetworkMessage::Ping(5));
        assert_eq!(decode_payload("pong", &[1, 2]).unwrap(), NetworkMessage::Pong(0));
        assert!(decode_payload("ping", &[1, 2]).is_err());
    }

    #[test]
    fn unknown_type_kept_verbatim() {
        let m = decode_payload("foo", &[1, 2]).unwrap();
        assert_eq!(command_of(&m), "foo");
    }

    #[test]
    fn headers_tx_count_is_ignored_as_core_does() {
        let g = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
        let mut p = vec![1u8];
        p.extend_from_slice(&serialize(&g));
        p.push(3);
        assert_eq!(decode_payload("headers", &p).unwrap(), NetworkMessage::Headers(vec![g]));
    }

    #[test]
    fn huge_headers_count_rejected_without_allocating() {
        let mut p = Vec::new();
        encode::VarInt(u64::MAX).consensus_encode(&mut p).unwrap();
        assert!(decode_payload("headers", &p).is_err());
    }

    #[test]
    fn direct_headers_encoding_matches_bitcoin_crate() {
        let g = bitcoin::constants::genesis_block(bitcoin::Network::Bitcoin).header;
        let mut h2 = g;
        h2.nonce = 7;
        h2.version = bitcoin::block::Version::from_consensus(-5);
        let mut out = Vec::new();
        encode_headers([0xfa, 0xbf, 0xb5, 0xda], [g, h2].iter(), &mut out, Checksum::Compute);
        let mut expected = Vec::new();
        encode_message([0xfa, 0xbf, 0xb5, 0xda], &NetworkMessage::Headers(vec![g, h2]), &mut expected);
        assert_eq!(out, expected);
        let mut empty = Vec::new();
        encode_headers([0xfa, 0xbf, 0xb5, 0xda], [].iter(), &mut empty, Checksum::Compute);
        let mut expected = Vec::new();
        encode_message([0xfa, 0xbf, 0xb5, 0xda], &NetworkMessage::Headers(vec![]), &mut expected);
        assert_eq!(empty, expected);
    }

    #[test]
    fn encode_matches_bitcoin_crate() {
        let msg = NetworkMessage::Version(our_version());
        let mut out = Vec::new();
        encode_message([0xfa, 0xbf, 0xb5, 0xda], &msg, &mut out);
        let raw = bitcoin::p2p::message::RawNetworkMessage::new(bitcoin::p2p::Magic::REGTEST, msg);
        assert_eq!(out, serialize(&raw));
    }
}
