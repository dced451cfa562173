//! Which network an IP address belongs to, as Core classifies it (`CNetAddr::GetNetwork`,
//! `IsRoutable`): the `network` field of `getpeerinfo`, the per-network counts of
//! `getnetworkinfo` and the network dimension of the message statistics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A network by Core's `GetNetworkName`; only the ones a TCP peer can be on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetKind {
    /// Loopback, private, link-local, documentation and other reserved ranges.
    Unroutable,
    /// Public IPv4.
    Ipv4,
    /// Public IPv6.
    Ipv6,
}

impl NetKind {
    /// Every kind, in Core's order of `GetNetworkNames` with unroutable last.
    pub const ALL: [NetKind; 3] = [NetKind::Ipv4, NetKind::Ipv6, NetKind::Unroutable];

    /// Core's name.
    pub fn as_str(self) -> &'static str {
        match self {
            NetKind::Unroutable => "not_publicly_routable",
            NetKind::Ipv4 => "ipv4",
            NetKind::Ipv6 => "ipv6",
        }
    }

    /// A dense index (for counter arrays).
    pub fn index(self) -> usize {
        match self {
            NetKind::Ipv4 => 0,
            NetKind::Ipv6 => 1,
            NetKind::Unroutable => 2,
        }
    }
}

/// The network of `ip` (IPv4-mapped IPv6 addresses count as IPv4, as in Core).
pub fn net_kind(ip: IpAddr) -> NetKind {
    match ip {
        IpAddr::V4(v4) if routable_v4(v4) => NetKind::Ipv4,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) if routable_v4(v4) => NetKind::Ipv4,
            Some(_) => NetKind::Unroutable,
            None if routable_v6(v6) => NetKind::Ipv6,
            None => NetKind::Unroutable,
        },
        IpAddr::V4(_) => NetKind::Unroutable,
    }
}

/// Core's `IsRoutable` for IPv4 (RFC 1918, 2544, 3927, 6598, 5737, local and unspecified are not).
fn routable_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let reserved = a == 10
        || (a == 192 && b == 168)
        || (a == 172 && (16..=31).contains(&b))
        || (a == 198 && (b == 18 || b == 19))
        || (a == 169 && b == 254)
        || (a == 100 && (64..=127).contains(&b))
        || (a == 192 && b == 0 && c == 2)
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a == 127
        || a == 0
        // Core's IsValid: the broadcast address is not a peer.
        || ip == Ipv4Addr::BROADCAST;
    !reserved
}

/// Core's `IsRoutable` for IPv6 (RFC 4862, 4193, 4843, 7343, 3849, loopback, unspecified are not).
fn routable_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let reserved = (s[0] == 0xfe80 && s[1] == 0 && s[2] == 0 && s[3] == 0)
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0010)
        || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0020)
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || ip.is_loopback()
        || ip.is_unspecified();
    !reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> NetKind {
        net_kind(s.parse().unwrap())
    }

    #[test]
    fn classifies_like_core() {
        assert_eq!(kind("1.2.3.4"), NetKind::Ipv4);
        assert_eq!(kind("8.8.8.8"), NetKind::Ipv4);
        for unroutable in ["127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.0.1", "172.31.255.255", "169.254.1.1"] {
            assert_eq!(kind(unroutable), NetKind::Unroutable, "{unroutable}");
        }
        for unroutable in ["100.64.0.1", "198.18.0.1", "192.0.2.1", "203.0.113.9", "0.0.0.0", "::1", "fe80::1"] {
            assert_eq!(kind(unroutable), NetKind::Unroutable, "{unroutable}");
        }
        assert_eq!(kind("172.32.0.1"), NetKind::Ipv4);
        assert_eq!(kind("2a01:4f8::1"), NetKind::Ipv6);
        assert_eq!(kind("fd00::1"), NetKind::Unroutable);
        assert_eq!(kind("2001:db8::1"), NetKind::Unroutable);
        assert_eq!(kind("2001:10::1"), NetKind::Unroutable);
        assert_eq!(kind("::ffff:1.2.3.4"), NetKind::Ipv4);
        assert_eq!(kind("::ffff:127.0.0.1"), NetKind::Unroutable);
    }
}
