//! Scripts as Core's RPC shows them (`core_io.cpp`'s `ScriptToAsmStr` and `ScriptToUniv`):
//! the `asm` text, the output type (`Solver`'s classes), the address and the inferred
//! descriptor with its checksum. Formatting only: nothing here judges validity for consensus.

use bitcoin::{Address, Network, Script};
use serde_json::{Map, Value, json};

/// One parsed script element: an opcode, or a push with its data.
enum Op<'a> {
    /// A push opcode (`OP_0` … `OP_PUSHDATA4`): the bytes it pushes.
    Push(&'a [u8]),
    /// Any other opcode.
    Code(u8),
}

/// Core's `CScript::GetOp` over `script`: each element, and `None` at a truncated push.
fn ops(script: &[u8]) -> impl Iterator<Item = Option<Op<'_>>> + '_ {
    let mut pos = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || pos >= script.len() {
            return None;
        }
        let code = *script.get(pos)?;
        pos += 1;
        if code > 0x4e {
            return Some(Some(Op::Code(code)));
        }
        let len_bytes = match code {
            0x4c => 1,
            0x4d => 2,
            0x4e => 4,
            _ => 0,
        };
        let len = if len_bytes == 0 {
            Some(usize::from(code))
        } else {
            script.get(pos..pos.saturating_add(len_bytes)).map(|b| {
                let mut n = 0usize;
                for (i, byte) in b.iter().enumerate() {
                    n |= usize::from(*byte) << (8 * i);
                }
                n
            })
        };
        let data = len.and_then(|n| {
            let start = pos.checked_add(len_bytes)?;
            let end = start.checked_add(n)?;
            script.get(start..end).map(|d| (d, end))
        });
        match data {
            Some((d, end)) => {
                pos = end;
                Some(Some(Op::Push(d)))
            }
            None => {
                failed = true;
                Some(None)
            }
        }
    })
}

/// Core's `GetOpName`.
fn op_name(code: u8) -> String {
    let name = match code {
        0x00 => "0",
        0x4c => "OP_PUSHDATA1",
        0x4d => "OP_PUSHDATA2",
        0x4e => "OP_PUSHDATA4",
        0x4f => "-1",
        0x50 => "OP_RESERVED",
        0x51..=0x60 => return (code - 0x50).to_string(),
        0x61 => "OP_NOP",
        0x62 => "OP_VER",
        0x63 => "OP_IF",
        0x64 => "OP_NOTIF",
        0x65 => "OP_VERIF",
        0x66 => "OP_VERNOTIF",
        0x67 => "OP_ELSE",
        0x68 => "OP_ENDIF",
        0x69 => "OP_VERIFY",
        0x6a => "OP_RETURN",
        0x6b => "OP_TOALTSTACK",
        0x6c => "OP_FROMALTSTACK",
        0x6d => "OP_2DROP",
        0x6e => "OP_2DUP",
        0x6f => "OP_3DUP",
        0x70 => "OP_2OVER",
        0x71 => "OP_2ROT",
        0x72 => "OP_2SWAP",
        0x73 => "OP_IFDUP",
        0x74 => "OP_DEPTH",
        0x75 => "OP_DROP",
        0x76 => "OP_DUP",
        0x77 => "OP_NIP",
        0x78 => "OP_OVER",
        0x79 => "OP_PICK",
        0x7a => "OP_ROLL",
        0x7b => "OP_ROT",
        0x7c => "OP_SWAP",
        0x7d => "OP_TUCK",
        0x7e => "OP_CAT",
        0x7f => "OP_SUBSTR",
        0x80 => "OP_LEFT",
        0x81 => "OP_RIGHT",
        0x82 => "OP_SIZE",
        0x83 => "OP_INVERT",
        0x84 => "OP_AND",
        0x85 => "OP_OR",
        0x86 => "OP_XOR",
        0x87 => "OP_EQUAL",
        0x88 => "OP_EQUALVERIFY",
        0x89 => "OP_RESERVED1",
        0x8a => "OP_RESERVED2",
        0x8b => "OP_1ADD",
        0x8c => "OP_1SUB",
        0x8d => "OP_2MUL",
        0x8e => "OP_2DIV",
        0x8f => "OP_NEGATE",
        0x90 => "OP_ABS",
        0x91 => "OP_NOT",
        0x92 => "OP_0NOTEQUAL",
        0x93 => "OP_ADD",
        0x94 => "OP_SUB",
        0x95 => "OP_MUL",
        0x96 => "OP_DIV",
        0x97 => "OP_MOD",
        0x98 => "OP_LSHIFT",
        0x99 => "OP_RSHIFT",
        0x9a => "OP_BOOLAND",
        0x9b => "OP_BOOLOR",
        0x9c => "OP_NUMEQUAL",
        0x9d => "OP_NUMEQUALVERIFY",
        0x9e => "OP_NUMNOTEQUAL",
        0x9f => "OP_LESSTHAN",
        0xa0 => "OP_GREATERTHAN",
        0xa1 => "OP_LESSTHANOREQUAL",
        0xa2 => "OP_GREATERTHANOREQUAL",
        0xa3 => "OP_MIN",
        0xa4 => "OP_MAX",
        0xa5 => "OP_WITHIN",
        0xa6 => "OP_RIPEMD160",
        0xa7 => "OP_SHA1",
        0xa8 => "OP_SHA256",
        0xa9 => "OP_HASH160",
        0xaa => "OP_HASH256",
        0xab => "OP_CODESEPARATOR",
        0xac => "OP_CHECKSIG",
        0xad => "OP_CHECKSIGVERIFY",
        0xae => "OP_CHECKMULTISIG",
        0xaf => "OP_CHECKMULTISIGVERIFY",
        0xb0 => "OP_NOP1",
        0xb1 => "OP_CHECKLOCKTIMEVERIFY",
        0xb2 => "OP_CHECKSEQUENCEVERIFY",
        0xb3 => "OP_NOP4",
        0xb4 => "OP_NOP5",
        0xb5 => "OP_NOP6",
        0xb6 => "OP_NOP7",
        0xb7 => "OP_NOP8",
        0xb8 => "OP_NOP9",
        0xb9 => "OP_NOP10",
        0xba => "OP_CHECKSIGADD",
        0xff => "OP_INVALIDOPCODE",
        _ => "OP_UNKNOWN",
    };
    name.to_string()
}

/// Core's `CScriptNum(vch, false).getint()` for a push of at most 4 bytes.
fn script_num(data: &[u8]) -> i64 {
    let Some((&last, _)) = data.split_last() else { return 0 };
    let mut v: i64 = 0;
    for (i, b) in data.iter().enumerate() {
        v |= i64::from(*b) << (8 * i);
    }
    if last & 0x80 != 0 { -(v & !(0x80i64 << (8 * (data.len() - 1)))) } else { v }
}

/// Core's `IsValidSignatureEncoding` (BIP66's strict DER form, with the hash type byte).
fn is_der_signature(sig: &[u8]) -> bool {
    let n = sig.len();
    let at = |i: usize| sig.get(i).copied().map(usize::from);
    let (Some(0x30), Some(len)) = (at(0), at(1)) else { return false };
    if !(9..=73).contains(&n) || len + 3 != n {
        return false;
    }
    let Some(len_r) = at(3) else { return false };
    let Some(len_s) = at(5 + len_r) else { return false };
    if len_r + len_s + 7 != n {
        return false;
    }
    // An integer: tag 0x02, not empty, not negative, no needless leading zero.
    let int_ok = |tag: Option<usize>, v: Option<&[u8]>| match (tag, v) {
        (Some(0x02), Some([first, rest @ ..])) => {
            first & 0x80 == 0 && !(*first == 0 && rest.first().is_some_and(|b| b & 0x80 == 0))
        }
        _ => false,
    };
    int_ok(at(2), sig.get(4..4 + len_r)) && int_ok(at(4 + len_r), sig.get(6 + len_r..6 + len_r + len_s))
}

/// Core's `mapSigHashTypes` name of a defined hash type.
fn sighash_name(t: u8) -> Option<&'static str> {
    Some(match t {
        0x01 => "ALL",
        0x81 => "ALL|ANYONECANPAY",
        0x02 => "NONE",
        0x82 => "NONE|ANYONECANPAY",
        0x03 => "SINGLE",
        0x83 => "SINGLE|ANYONECANPAY",
        _ => return None,
    })
}

/// Core's `CScript::IsUnspendable`.
fn is_unspendable(script: &[u8]) -> bool {
    script.first() == Some(&0x6a) || script.len() > 10_000
}

/// Core's `ScriptToAsmStr`; `sighash` decodes signatures' hash types (scriptSigs).
pub fn asm(script: &[u8], sighash: bool) -> String {
    let mut out = String::new();
    for op in ops(script) {
        if !out.is_empty() {
            out.push(' ');
        }
        match op {
            None => {
                out.push_str("[error]");
                return out;
            }
            Some(Op::Push(data)) if data.len() <= 4 => out.push_str(&script_num(data).to_string()),
            Some(Op::Push(data)) => {
                let decoded = (sighash && !is_unspendable(script) && is_der_signature(data))
                    .then(|| data.split_last())
                    .flatten()
                    .and_then(|(t, sig)| sighash_name(*t).map(|name| (sig, name)));
                match decoded {
                    Some((sig, name)) => {
                        out.push_str(&hex(sig));
                        out.push('[');
                        out.push_str(name);
                        out.push(']');
                    }
                    None => out.push_str(&hex(data)),
                }
            }
            Some(Op::Code(code)) => out.push_str(&op_name(code)),
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Core's `TxoutType`, as `GetTxnOutputType` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputType {
    /// `nonstandard`.
    NonStandard,
    /// `pubkey`.
    PubKey,
    /// `pubkeyhash`.
    PubKeyHash,
    /// `scripthash`.
    ScriptHash,
    /// `multisig`.
    Multisig,
    /// `nulldata`.
    NullData,
    /// `anchor`.
    Anchor,
    /// `witness_v0_keyhash`.
    WitnessV0KeyHash,
    /// `witness_v0_scripthash`.
    WitnessV0ScriptHash,
    /// `witness_v1_taproot`.
    WitnessV1Taproot,
    /// `witness_unknown`.
    WitnessUnknown,
}

impl OutputType {
    /// Core's name.
    pub fn name(self) -> &'static str {
        match self {
            OutputType::NonStandard => "nonstandard",
            OutputType::PubKey => "pubkey",
            OutputType::PubKeyHash => "pubkeyhash",
            OutputType::ScriptHash => "scripthash",
            OutputType::Multisig => "multisig",
            OutputType::NullData => "nulldata",
            OutputType::Anchor => "anchor",
            OutputType::WitnessV0KeyHash => "witness_v0_keyhash",
            OutputType::WitnessV0ScriptHash => "witness_v0_scripthash",
            OutputType::WitnessV1Taproot => "witness_v1_taproot",
            OutputType::WitnessUnknown => "witness_unknown",
        }
    }
}

/// Core's `CPubKey::ValidSize`: the length its first byte announces.
fn pubkey_valid_size(k: &[u8]) -> bool {
    match k.first() {
        Some(2 | 3) => k.len() == 33,
        Some(4 | 6 | 7) => k.len() == 65,
        _ => false,
    }
}

/// A `Solver` number: `OP_1`…`OP_16`, or a minimal push of a small number, within `min..=max`.
fn small_number(op: &Op<'_>, min: i64, max: i64) -> Option<i64> {
    let n = match op {
        Op::Code(c @ 0x51..=0x60) => i64::from(*c - 0x50),
        Op::Push(d) if !d.is_empty() && d.len() <= 4 => script_num(d),
        _ => return None,
    };
    (min..=max).contains(&n).then_some(n)
}

/// Core's `MatchPayToPubkey`: the key of `<33 or 65-byte key> OP_CHECKSIG`.
fn pay_to_pubkey(b: &[u8]) -> Option<&[u8]> {
    let (&len, rest) = b.split_first()?;
    let (&last, key) = rest.split_last()?;
    ((len == 33 || len == 65) && key.len() == usize::from(len) && last == 0xac && pubkey_valid_size(key)).then_some(key)
}

/// Core's `MatchMultisig`: the required count and the keys.
fn multisig(script: &[u8]) -> Option<(i64, Vec<&[u8]>)> {
    if script.last() != Some(&0xae) {
        return None;
    }
    let mut it = ops(script);
    let first = it.next()??;
    let required = small_number(&first, 1, 20)?;
    let mut keys = Vec::new();
    let mut count = None;
    for op in it.by_ref() {
        match op? {
            Op::Push(d) if pubkey_valid_size(d) => keys.push(d),
            other => {
                count = Some(small_number(&other, required, 20)?);
                break;
            }
        }
    }
    if usize::try_from(count?).ok()? != keys.len() {
        return None;
    }
    // Only OP_CHECKMULTISIG may follow.
    match (it.next(), it.next()) {
        (Some(Some(Op::Code(0xae))), None) => Some((required, keys)),
        _ => None,
    }
}

/// Core's `Solver`: the output type of `script`.
pub fn output_type(script: &Script) -> OutputType {
    let b = script.as_bytes();
    if script.is_p2sh() {
        return OutputType::ScriptHash;
    }
    if let Some(version) = script.witness_version() {
        let program = b.get(2..).unwrap_or_default();
        return match (version.to_num(), program.len()) {
            (0, 20) => OutputType::WitnessV0KeyHash,
            (0, 32) => OutputType::WitnessV0ScriptHash,
            (1, 32) => OutputType::WitnessV1Taproot,
            (1, 2) if program == [0x4e, 0x73] => OutputType::Anchor,
            (0, _) => OutputType::NonStandard,
            _ => OutputType::WitnessUnknown,
        };
    }
    if let [0x6a, rest @ ..] = b {
        if ops(rest).all(|op| matches!(op, Some(Op::Push(_)) | Some(Op::Code(0x4f..=0x60)))) {
            return OutputType::NullData;
        }
    }
    if pay_to_pubkey(b).is_some() {
        return OutputType::PubKey;
    }
    if script.is_p2pkh() {
        return OutputType::PubKeyHash;
    }
    if multisig(b).is_some() {
        return OutputType::Multisig;
    }
    OutputType::NonStandard
}

/// Core's `InferDescriptor` with no keys known, checksum included.
pub fn descriptor(script: &Script, ty: OutputType, network: Network) -> String {
    let b = script.as_bytes();
    let valid_non_hybrid = |k: &[u8]| matches!(k.first(), Some(2..=4)) && pubkey_valid_size(k);
    let inner = match ty {
        OutputType::PubKey => pay_to_pubkey(b).filter(|k| valid_non_hybrid(k)).map(|k| format!("pk({})", hex(k))),
        OutputType::Multisig => multisig(b).and_then(|(k, keys)| {
            keys.iter()
                .all(|key| valid_non_hybrid(key))
                .then(|| format!("multi({k},{})", keys.iter().map(|key| hex(key)).collect::<Vec<_>>().join(",")))
        }),
        OutputType::WitnessV1Taproot => b
            .get(2..)
            .filter(|x| bitcoin::key::XOnlyPublicKey::from_slice(x).is_ok())
            .map(|x| format!("rawtr({})", hex(x))),
        _ => None,
    };
    let inner = inner
        .or_else(|| address(script, ty, network).map(|a| format!("addr({a})")))
        .unwrap_or_else(|| format!("raw({})", hex(b)));
    with_checksum(&inner)
}

/// Core's `ExtractDestination` as an address string, for the types that have one (not for
/// `pubkey`, which Core shows without an address).
pub fn address(script: &Script, ty: OutputType, network: Network) -> Option<String> {
    match ty {
        OutputType::PubKeyHash
        | OutputType::ScriptHash
        | OutputType::WitnessV0KeyHash
        | OutputType::WitnessV0ScriptHash
        | OutputType::WitnessV1Taproot
        | OutputType::WitnessUnknown
        | OutputType::Anchor => Address::from_script(script, network).ok().map(|a| a.to_string()),
        _ => None,
    }
}

/// Core's `ScriptToUniv` with hex and address: `asm`, `desc`, `hex`, `address`, `type`.
pub fn script_pub_key(script: &Script, network: Network) -> Value {
    let ty = output_type(script);
    let mut o = Map::new();
    o.insert("asm".into(), json!(asm(script.as_bytes(), false)));
    o.insert("desc".into(), json!(descriptor(script, ty, network)));
    o.insert("hex".into(), json!(hex(script.as_bytes())));
    if let Some(a) = address(script, ty, network) {
        o.insert("address".into(), json!(a));
    }
    o.insert("type".into(), json!(ty.name()));
    Value::Object(o)
}

/// BIP380's descriptor checksum (Core's `DescriptorChecksum`) appended after `#`.
pub fn with_checksum(desc: &str) -> String {
    const INPUT: &str =
        "0123456789()[],'/*abcdefgh@:$%{}IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~ijklmnopqrstuvwxyzABCDEFGH`#\"\\ ";
    const CHECKSUM: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    fn polymod(c: u64, v: u64) -> u64 {
        let c0 = c >> 35;
        let mut c = ((c & 0x7_ffff_ffff) << 5) ^ v;
        for (i, g) in [0xf5dee51989u64, 0xa9fdca3312, 0x1bab10e32d, 0x3706b1677a, 0x644d626ffd].iter().enumerate() {
            if c0 & (1 << i) != 0 {
                c ^= g;
            }
        }
        c
    }
    let mut c = 1u64;
    let mut cls = 0u64;
    let mut clscount = 0;
    for ch in desc.chars() {
        // A character outside the set makes no descriptor Core would print.
        let Some(pos) = INPUT.find(ch) else { return desc.to_string() };
        let pos = pos as u64;
        c = polymod(c, pos & 31);
        cls = cls * 3 + (pos >> 5);
        clscount += 1;
        if clscount == 3 {
            c = polymod(c, cls);
            cls = 0;
            clscount = 0;
        }
    }
    if clscount > 0 {
        c = polymod(c, cls);
    }
    for _ in 0..8 {
        c = polymod(c, 0);
    }
    c ^= 1;
    let sum: String = (0..8).map(|j| char::from(CHECKSUM[((c >> (5 * (7 - j))) & 31) as usize])).collect();
    format!("{desc}#{sum}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::ScriptBuf;

    #[test]
    fn checksums_match_bip380() {
        // BIP380's examples.
        assert_eq!(with_checksum("raw(deadbeef)"), "raw(deadbeef)#89f8spxm");
    }

    #[test]
    fn asm_as_core() {
        let s = ScriptBuf::from_bytes(vec![0x00, 0x51, 0x60, 0x4f, 0x02, 0x01, 0x80, 0x76, 0xa9, 0xb1, 0xfe]);
        assert_eq!(asm(s.as_bytes(), false), "0 1 16 -1 -1 OP_DUP OP_HASH160 OP_CHECKLOCKTIMEVERIFY OP_UNKNOWN");
        assert_eq!(asm(&[0x4c], false), "[error]");
        assert_eq!(asm(&[0x51, 0x05, 0x01], false), "1 [error]");
        assert_eq!(asm(&[0x03, 0xff, 0xff, 0x7f], false), "8388607");
    }

    #[test]
    fn der_signatures_as_bip66() {
        let sig = |r: &str, s: &str| {
            let (r, s) = (r.len() / 2, s.len() / 2);
            let hexes = format!("30{:02x}02{r:02x}{}02{s:02x}{}01", r + s + 4, "79".repeat(r), "7b".repeat(s));
            (0..hexes.len()).step_by(2).map(|i| u8::from_str_radix(&hexes[i..i + 2], 16).unwrap()).collect::<Vec<u8>>()
        };
        assert!(is_der_signature(&sig(&"79".repeat(32), &"7b".repeat(32))));
        let good = sig(&"79".repeat(32), &"7b".repeat(32));
        let mut negative = good.clone();
        negative[4] = 0x80;
        assert!(!is_der_signature(&negative));
        assert!(!is_der_signature(&good[..good.len() - 1]), "lengths must add up");
        assert!(!is_der_signature(&[0x30; 8]));
        let p2pk_sig = asm(&[&[good.len() as u8][..], &good].concat(), true);
        assert!(p2pk_sig.ends_with("[ALL]"), "{p2pk_sig}");
        assert!(!asm(&[&[good.len() as u8][..], &good].concat(), false).contains('['));
    }

    proptest::proptest! {
        #[test]
        fn any_script_renders_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..120)) {
            let s = ScriptBuf::from_bytes(bytes);
            let v = script_pub_key(&s, Network::Regtest);
            proptest::prop_assert!(v["desc"].as_str().is_some_and(|d| d.contains('#')));
            let _ = asm(s.as_bytes(), true);
        }
    }

    #[test]
    fn types_as_core_solver() {
        let op_true = ScriptBuf::from_bytes(vec![0x51]);
        assert_eq!(output_type(&op_true), OutputType::NonStandard);
        let nulldata = ScriptBuf::from_bytes(vec![0x6a, 0x02, 0xaa, 0xbb]);
        assert_eq!(output_type(&nulldata), OutputType::NullData);
        let anchor = ScriptBuf::from_bytes(vec![0x51, 0x02, 0x4e, 0x73]);
        assert_eq!(output_type(&anchor), OutputType::Anchor);
        let mut ms = vec![0x51, 0x21];
        ms.extend([2u8; 33]);
        ms.extend([0x51, 0xae]);
        assert_eq!(output_type(&ScriptBuf::from_bytes(ms)), OutputType::Multisig);
        let mut pk = vec![33, 2];
        pk.extend([1u8; 32]);
        pk.push(0xac);
        assert_eq!(output_type(&ScriptBuf::from_bytes(pk.clone())), OutputType::PubKey);
        pk[1] = 5;
        assert_eq!(output_type(&ScriptBuf::from_bytes(pk)), OutputType::NonStandard, "not a key's length byte");
    }
}
