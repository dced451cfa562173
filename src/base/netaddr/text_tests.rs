//! Round trips and refusals against Core's vectors (`base32_tests.cpp`, `net_tests.cpp`'s
//! `cnetaddr_basic`, `cnetaddr_serialize_v2`, `cnetaddr_unserialize_v2`, `netbase_tests.cpp`).

use super::*;
use crate::base::netgroup::internal;

const ONION_A: &str = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion";
const ONION_A_KEY: &str = "79bcc625184b05194975c28b66b66b0469f7f6556fb1ac3189a79b40dda32f1f";
const ONION_B: &str = "kpgvmscirrdqpekbqjsvw5teanhatztpp2gl6eee4zkowvwfxwenqaid.onion";
const ONION_B_KEY: &str = "53cd5648488c4707914182655b7664034e09e66f7e8cbf1084e654eb56c5bd88";
const I2P_A: &str = "ukeu3k5oycgaauneqgtnvselmt4yemvoilkln7jpvamvfx7dnkdq.b32.i2p";
const I2P_A_KEY: &str = "a2894dabaec08c0051a481a6dac88b64f98232ae42d4b6fd2fa81952dfe36a87";

fn key(hex: &str) -> [u8; 32] {
    let v: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    v.try_into().unwrap()
}

fn special(s: &str) -> Result<Option<AddrV2>, AddrTextError> {
    parse_special(s)
}

#[test]
fn base32_like_core_base32_tests() {
    let cases = [
        ("", ""),
        ("f", "my"),
        ("fo", "mzxq"),
        ("foo", "mzxw6"),
        ("foob", "mzxw6yq"),
        ("fooba", "mzxw6ytb"),
        ("foobar", "mzxw6ytboi"),
    ];
    for (plain, enc) in cases {
        assert_eq!(encode_base32(plain.as_bytes()), enc);
        assert_eq!(decode_base32(enc).as_deref(), Some(plain.as_bytes()), "{enc}");
        assert_eq!(decode_base32(&enc.to_uppercase()).as_deref(), Some(plain.as_bytes()), "{enc} upper case");
    }
    // Core's base32_padding, without the padding: 1, 3 and 6 characters leave 5 or more bits.
    for (text, ok) in [("a", false), ("aa", true), ("aaa", false), ("aaaa", true), ("aaaaa", true)] {
        assert_eq!(decode_base32(text).is_some(), ok, "{text}");
    }
    assert_eq!(decode_base32("aaaaaa"), None);
    assert!(decode_base32("aaaaaaa").is_some());
    for bad in ["invalid\0", "AWSX3VPP\0invalid", "a=", "ab1", "mf*g"] {
        assert_eq!(decode_base32(bad), None, "{bad:?}");
    }
    // Stray bits must be zero: "my" is 0x66 and 2 zero bits, "mz" has one of them set.
    assert_eq!(decode_base32("my"), Some(vec![0x66]));
    assert_eq!(decode_base32("mz"), None);
}

#[test]
fn tor_v3_round_trips_like_core() {
    for (text, hex) in [(ONION_A, ONION_A_KEY), (ONION_B, ONION_B_KEY)] {
        let addr = AddrV2::TorV3(key(hex));
        assert_eq!(special(text), Ok(Some(addr.clone())));
        assert_eq!(addr_to_string(&addr), text);
        assert_eq!(addr_port_to_string(&addr, 8333), format!("{text}:8333"));
        assert_eq!(special(&text.to_uppercase()), Ok(Some(addr)), "either case");
    }
    // Every key prints as a name that parses back to it.
    for k in [[0u8; 32], [0xff; 32], key(ONION_B_KEY)] {
        let name = onion_to_string(&k);
        assert_eq!(name.len(), 56 + 6);
        assert_eq!(special(&name), Ok(Some(AddrV2::TorV3(k))));
    }
}

#[test]
fn bad_onions_are_refused_like_core() {
    let cases = [
        ("6hzph5hv6337r6p2.onion", AddrTextError::TorV2),
        ("pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscsad.onion", AddrTextError::OnionChecksum),
        ("pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscrye.onion", AddrTextError::OnionVersion(4)),
        ("pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd\0wtf.onion", AddrTextError::Control),
        ("mfrggzak.onion", AddrTextError::OnionLength),
        ("mf*g zak.onion", AddrTextError::Base32),
        ("pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscrydaa.onion", AddrTextError::OnionLength),
        (".onion", AddrTextError::OnionLength),
    ];
    for (text, why) in cases {
        assert_eq!(special(text), Err(why), "{text:?}");
    }
}

#[test]
fn i2p_round_trips_and_refusals_like_core() {
    let addr = AddrV2::I2p(key(I2P_A_KEY));
    assert_eq!(special(I2P_A), Ok(Some(addr.clone())));
    assert_eq!(addr_to_string(&addr), I2P_A);
    assert_eq!(addr_port_to_string(&addr, 0), format!("{I2P_A}:0"));
    let mixed = "UDHDrtrcetjm5sxzskjyr5ztpeszydbh4dpl3pl4utgqqw2v4jna.b32.I2P";
    let parsed = special(mixed).unwrap().unwrap();
    assert_eq!(addr_to_string(&parsed), mixed.to_lowercase());
    let cases = [
        ("udhdrtrcetjm5sxzskjyr5ztpeszydbh4dpl3pl4utgqqw2v4jn=.b32.i2p", AddrTextError::Base32),
        ("udhdrtrcetjm5sxzskjyr5ztpeszydbh4dpl3pl4utgqqw2v4jna=.b32.i2p", AddrTextError::I2pForm),
        ("udhdrtrcetjm5sxzskjyr5ztpeszydbh4dpl3pl4utgqqw2v\0wtf.b32.i2p", AddrTextError::Control),
        ("pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscsad.b32.i2p", AddrTextError::I2pForm),
        ("tp*szydbh4dp.b32.i2p", AddrTextError::I2pForm),
        ("forum.i2p", AddrTextError::I2pForm),
        // 52 characters whose last one carries stray bits (4 bits must be zero).
        ("udhdrtrcetjm5sxzskjyr5ztpeszydbh4dpl3pl4utgqqw2v4jnb.b32.i2p", AddrTextError::Base32),
    ];
    for (text, why) in cases {
        assert_eq!(special(text), Err(why), "{text:?}");
    }
}

#[test]
fn other_networks_print_like_core() {
    let cjdns = AddrV2::Cjdns("fc00:3344:5566:7788:9900:aabb:ccdd:eeff".parse().unwrap());
    assert_eq!(addr_to_string(&cjdns), "fc00:3344:5566:7788:9900:aabb:ccdd:eeff");
    assert_eq!(addr_port_to_string(&cjdns, 8333), "[fc00:3344:5566:7788:9900:aabb:ccdd:eeff]:8333");
    let v6 = AddrV2::Ipv6("1a1b:2a2b:3a3b:4a4b:5a5b:6a6b:7a7b:8a8b".parse().unwrap());
    assert_eq!(addr_port_to_string(&v6, 1), "[1a1b:2a2b:3a3b:4a4b:5a5b:6a6b:7a7b:8a8b]:1");
    assert_eq!(addr_port_to_string(&AddrV2::Ipv6("::ffff:1.2.3.4".parse().unwrap()), 8), "1.2.3.4:8");
    assert_eq!(addr_port_to_string(&AddrV2::Ipv4("127.0.0.1".parse().unwrap()), 8333), "127.0.0.1:8333");
    assert_eq!(addr_to_string(&internal("esffpp")), "esffpvrt3wpeaygy.internal");
    assert_eq!(addr_to_string(&AddrV2::TorV2([1; 10])), "::", "read as the invalid address");
    assert_eq!(special("example.com"), Ok(None));
    assert_eq!(special("totally bogus"), Ok(None));
}

#[test]
fn host_port_parsing_like_core_lookups() {
    let p = |s: &str| parse_host_port(s, 18444);
    let onion = AddrV2::TorV3(key(ONION_A_KEY));
    assert_eq!(p(ONION_A), Ok((Host::Special(onion.clone()), 18444)));
    assert_eq!(p(&format!("{ONION_A}:8333")), Ok((Host::Special(onion.clone()), 8333)));
    assert_eq!(p(&format!("[{ONION_A}]:8333")), Ok((Host::Special(onion), 8333)));
    let i2p = AddrV2::I2p(key(I2P_A_KEY));
    assert_eq!(p(I2P_A), Ok((Host::Special(i2p.clone()), 0)), "I2P's default port is 0");
    assert_eq!(p(&format!("{I2P_A}:0")), Ok((Host::Special(i2p), 0)));
    assert_eq!(p("127.0.0.1"), Ok((Host::Ip("127.0.0.1".parse().unwrap()), 18444)));
    assert_eq!(p("127.0.0.1:8333"), Ok((Host::Ip("127.0.0.1".parse().unwrap()), 8333)));
    assert_eq!(p("[::]:8333"), Ok((Host::Ip("::".parse().unwrap()), 8333)));
    assert_eq!(p("::"), Ok((Host::Ip("::".parse().unwrap()), 18444)));
    assert_eq!(p("[127.0.0.1]"), Ok((Host::Ip("127.0.0.1".parse().unwrap()), 18444)));
    assert_eq!(p("fc00::1"), Ok((Host::Ip("fc00::1".parse().unwrap()), 18444)), "CJDNS text is an IPv6 literal");
    assert_eq!(p("localhost:9"), Ok((Host::Name("localhost".into()), 9)));
    let refused = [
        ("", AddrTextError::Empty),
        ("127.0.0.1:0", AddrTextError::Port),
        ("127.0.0.1:", AddrTextError::Port),
        ("127.0.0.1:65536", AddrTextError::Port),
        ("127.0.0.1:1E2", AddrTextError::Port),
        ("www.bitcoincore.org:0", AddrTextError::Port),
        (&format!("{ONION_A}:0"), AddrTextError::Port),
        ("6hzph5hv6337r6p2.onion:8333", AddrTextError::TorV2),
        ("pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscsad.onion:8333", AddrTextError::OnionChecksum),
        ("a b:1", AddrTextError::Host),
        ("[]", AddrTextError::Host),
        (&"a".repeat(301), AddrTextError::TooLong),
        ("host\0.com", AddrTextError::Control),
    ];
    for (text, why) in refused {
        assert_eq!(p(text), Err(why), "{text:?}");
    }
}
