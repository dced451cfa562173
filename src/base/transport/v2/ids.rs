//! BIP324 message-type encoding (the one-byte short IDs, Core's `V2_MESSAGE_IDS`) and the
//! responder's v1/v2 detection from the first bytes a peer sent (Core's `KEY_MAYBE_V1` state).

use crate::base::transport::{COMMAND_SIZE, Command};

/// Core's `V1_PREFIX_LEN`: a v1 peer's first 16 bytes are the magic, `version` and NUL padding.
pub const V1_PREFIX_LEN: usize = 16;

/// Short IDs 1..=37 as BIP324 and Core assign them; `""` marks an ID reserved but unimplemented
/// (Core delivers such a message under the empty type, which nobody handles). 0 is the long form.
const SHORT_IDS: [&str; 38] = [
    "",
    "addr",
    "block",
    "blocktxn",
    "cmpctblock",
    "feefilter",
    "filteradd",
    "filterclear",
    "filterload",
    "getblocks",
    "getblocktxn",
    "getdata",
    "getheaders",
    "headers",
    "inv",
    "mempool",
    "merkleblock",
    "notfound",
    "ping",
    "pong",
    "sendcmpct",
    "tx",
    "getcfilters",
    "cfilter",
    "getcfheaders",
    "cfheaders",
    "getcfcheckpt",
    "cfcheckpt",
    "addrv2",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "feature",
];

/// The type a short ID stands for, NUL padded: `Some` (all NUL for a reserved ID) for 1..=37,
/// `None` for an ID no one assigned (Core drops such a message and keeps the peer).
pub fn command_of_short_id(id: u8) -> Option<Command> {
    let name = SHORT_IDS.get(usize::from(id))?;
    let mut cmd = [0u8; COMMAND_SIZE];
    cmd[..name.len()].copy_from_slice(name.as_bytes());
    Some(cmd)
}

/// The short ID of a NUL-padded type, if BIP324 gives it one.
pub fn short_id_of(command: &Command) -> Option<u8> {
    let end = command.iter().position(|&b| b == 0).unwrap_or(COMMAND_SIZE);
    if end == 0 || command[end..].iter().any(|&b| b != 0) {
        return None;
    }
    let name = &command[..end];
    SHORT_IDS.iter().position(|s| s.as_bytes() == name).and_then(|i| u8::try_from(i).ok())
}

/// What the first bytes of an inbound connection say about its transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    /// The first 16 bytes are the magic, `version` and NUL padding: a v1 peer.
    V1,
    /// A byte differed from the v1 prefix: the peer is sending a v2 key.
    V2,
    /// Every byte so far matches the v1 prefix; wait for more (at most 16 in all).
    NeedMore,
}

/// Core's responder-side detection: compares `received` (the first bytes of the connection)
/// with the v1 prefix byte by byte; a mismatch at any byte means v2.
pub fn detect(magic: [u8; 4], received: &[u8]) -> Detected {
    let mut prefix = [0u8; V1_PREFIX_LEN];
    prefix[..4].copy_from_slice(&magic);
    prefix[4..11].copy_from_slice(b"version");
    let n = received.len().min(V1_PREFIX_LEN);
    if received[..n] != prefix[..n] {
        Detected::V2
    } else if n == V1_PREFIX_LEN {
        Detected::V1
    } else {
        Detected::NeedMore
    }
}
