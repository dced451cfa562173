//! Which network an IP address belongs to, as Core classifies it (`CNetAddr::GetNetwork`,
//! `IsRoutable`): the `network` field of `getpeerinfo`, the per-network counts of
//! `getnetworkinfo` and the network dimension of the message statistics; [`text`] has the text
//! form of every address (Tor v3, I2P, CJDNS, IP) and the parsing of `HOST[:PORT]`.

pub mod text;

use std::net::IpAddr;

use super::netgroup::{AddrNetwork, NetGroupRule, from_ip, network};

/// A network by Core's `GetNetworkName`; only the ones a peer of ours can be on (Tor: dialed
/// through the onion proxy, or arrived through our onion service).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetKind {
    /// Loopback, private, link-local, documentation and other reserved ranges.
    Unroutable,
    /// Public IPv4.
    Ipv4,
    /// Public IPv6.
    Ipv6,
    /// Tor (Core's `ConnectedThroughNetwork` `NET_ONION`).
    Onion,
}

impl NetKind {
    /// Every kind, in Core's order of `GetNetworkNames` with unroutable last.
    pub const ALL: [NetKind; 4] = [NetKind::Ipv4, NetKind::Ipv6, NetKind::Onion, NetKind::Unroutable];

    /// Core's name.
    pub fn as_str(self) -> &'static str {
        match self {
            NetKind::Unroutable => "not_publicly_routable",
            NetKind::Ipv4 => "ipv4",
            NetKind::Ipv6 => "ipv6",
            NetKind::Onion => "onion",
        }
    }

    /// A dense index (for counter arrays).
    pub fn index(self) -> usize {
        match self {
            NetKind::Ipv4 => 0,
            NetKind::Ipv6 => 1,
            NetKind::Unroutable => 2,
            NetKind::Onion => 3,
        }
    }
}

/// The network of `ip` (IPv4-mapped IPv6 addresses count as IPv4, as in Core): the address
/// manager's classification (Core's `GetNetwork`), of which a TCP peer can only be on these.
pub fn net_kind(ip: IpAddr) -> NetKind {
    match network(&from_ip(ip), NetGroupRule::Core) {
        AddrNetwork::Ipv4 => NetKind::Ipv4,
        AddrNetwork::Ipv6 => NetKind::Ipv6,
        _ => NetKind::Unroutable,
    }
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
