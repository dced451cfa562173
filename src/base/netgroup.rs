//! Address classification and network groups, shared by the address book, eviction and the
//! counters: Core's `CNetAddr` predicates (`IsValid`, `IsLocal`, `IsRoutable`, the RFC ranges,
//! `GetNetwork`, `GetNetClass`, `GetAddrBytes`, `CService::GetKey`) and `NetGroupManager::GetGroup` without asmap, over BIP155
//! [`AddrV2`] addresses.
//!
//! An [`AddrV2`] is first viewed the way Core would hold it after reading it: an IPv6 address of
//! the IPv4-mapped form `::ffff:a.b.c.d` is IPv4 (as Core's `SetLegacyIPv6` stores addresses from
//! IPv6 sockets), an IPv6 address carrying Core's "internal" prefix `fd6b:88c0:8724::/48` is an
//! internal (DNS-seed name) address, and TorV2, TorV2-in-IPv6 (`fd87:d87e:eb43::/48`) and unknown
//! BIP155 networks are the invalid unspecified address `::`, as Core reads them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bitcoin::p2p::address::AddrV2;

/// A network by Core's `enum Network`; the discriminant is Core's value (used in group keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddrNetwork {
    /// Not publicly routable (private, loopback, documentation and other reserved ranges).
    Unroutable = 0,
    /// IPv4.
    Ipv4 = 1,
    /// IPv6.
    Ipv6 = 2,
    /// Tor (v3 onion services).
    Onion = 3,
    /// I2P.
    I2p = 4,
    /// CJDNS.
    Cjdns = 5,
    /// Core's hashed names of DNS seeds; never stored by the address manager.
    Internal = 6,
}

impl AddrNetwork {
    /// Every network, in Core's numeric order.
    pub const ALL: [AddrNetwork; 7] = [
        AddrNetwork::Unroutable,
        AddrNetwork::Ipv4,
        AddrNetwork::Ipv6,
        AddrNetwork::Onion,
        AddrNetwork::I2p,
        AddrNetwork::Cjdns,
        AddrNetwork::Internal,
    ];

    /// The networks `getaddrmaninfo` reports, in Core's order (`GetNetworkNames`).
    pub const REPORTED: [AddrNetwork; 5] =
        [AddrNetwork::Ipv4, AddrNetwork::Ipv6, AddrNetwork::Onion, AddrNetwork::I2p, AddrNetwork::Cjdns];

    /// Core's name (`GetNetworkName`).
    pub fn name(self) -> &'static str {
        match self {
            AddrNetwork::Unroutable => "not_publicly_routable",
            AddrNetwork::Ipv4 => "ipv4",
            AddrNetwork::Ipv6 => "ipv6",
            AddrNetwork::Onion => "onion",
            AddrNetwork::I2p => "i2p",
            AddrNetwork::Cjdns => "cjdns",
            AddrNetwork::Internal => "internal",
        }
    }

    /// A dense index (Core's value).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How addresses are grouped (Core's `NetGroupManager`, which has no other mode without asmap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NetGroupRule {
    /// Core's grouping: IPv4 by /16, IPv6 by /32 (he.net /36), Tor and I2P by their first 4
    /// bits, CJDNS by the 4 bits after its constant first byte; local and unroutable addresses
    /// share one group each, and only publicly routable addresses are accepted.
    #[default]
    Core,
    /// For end-to-end tests on one machine only: every `127.x.y.z` address is accepted as a
    /// routable IPv4 address and forms a group of its own, so that many loopback "peers" spread
    /// over the tables as peers on different networks would. Everything else is as [`Self::Core`].
    /// Never use it on a real network: it gives an attacker on loopback unlimited groups.
    LoopbackPerAddress,
}

impl NetGroupRule {
    /// Its code in the peers file.
    pub(crate) fn code(self) -> u8 {
        match self {
            NetGroupRule::Core => 0,
            NetGroupRule::LoopbackPerAddress => 1,
        }
    }
}

/// Prefix of IPv4 addresses embedded in IPv6 (`::ffff:0:0/96`).
const IPV4_IN_IPV6_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
/// Prefix of TorV2 addresses embedded in IPv6 (unsupported, read as invalid).
const TORV2_IN_IPV6_PREFIX: [u8; 6] = [0xfd, 0x87, 0xd8, 0x7e, 0xeb, 0x43];
/// Prefix of Core's internal (DNS-seed name) addresses embedded in IPv6.
const INTERNAL_IN_IPV6_PREFIX: [u8; 6] = [0xfd, 0x6b, 0x88, 0xc0, 0x87, 0x24];
/// First byte of every CJDNS address.
const CJDNS_PREFIX: u8 = 0xfc;

/// An address as Core holds it (`CNetAddr`'s `m_net` and `m_addr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum View {
    V4([u8; 4]),
    V6([u8; 16]),
    Onion([u8; 32]),
    I2p([u8; 32]),
    Cjdns([u8; 16]),
    Internal([u8; 10]),
}

/// The invalid address Core reads unsupported addresses as (`::`).
const UNSPECIFIED: View = View::V6([0; 16]);

impl View {
    pub(crate) fn of(addr: &AddrV2) -> View {
        match addr {
            AddrV2::Ipv4(ip) => View::V4(ip.octets()),
            AddrV2::Ipv6(ip) => {
                let b = ip.octets();
                if b[..12] == IPV4_IN_IPV6_PREFIX {
                    View::V4([b[12], b[13], b[14], b[15]])
                } else if b[..6] == TORV2_IN_IPV6_PREFIX {
                    UNSPECIFIED
                } else if b[..6] == INTERNAL_IN_IPV6_PREFIX {
                    let mut name = [0; 10];
                    name.copy_from_slice(&b[6..]);
                    View::Internal(name)
                } else {
                    View::V6(b)
                }
            }
            AddrV2::TorV3(k) => View::Onion(*k),
            AddrV2::I2p(k) => View::I2p(*k),
            AddrV2::Cjdns(ip) => View::Cjdns(ip.octets()),
            AddrV2::TorV2(_) | AddrV2::Unknown(..) => UNSPECIFIED,
        }
    }

    /// The stored network (`m_net`).
    fn base_net(&self) -> AddrNetwork {
        match self {
            View::V4(_) => AddrNetwork::Ipv4,
            View::V6(_) => AddrNetwork::Ipv6,
            View::Onion(_) => AddrNetwork::Onion,
            View::I2p(_) => AddrNetwork::I2p,
            View::Cjdns(_) => AddrNetwork::Cjdns,
            View::Internal(_) => AddrNetwork::Internal,
        }
    }

    fn v4(&self) -> Option<[u8; 4]> {
        match self {
            View::V4(a) => Some(*a),
            _ => None,
        }
    }

    fn v6(&self) -> Option<[u8; 16]> {
        match self {
            View::V6(a) => Some(*a),
            _ => None,
        }
    }

    fn v4_is(&self, f: impl Fn([u8; 4]) -> bool) -> bool {
        self.v4().is_some_and(f)
    }

    fn v6_is(&self, f: impl Fn([u8; 16]) -> bool) -> bool {
        self.v6().is_some_and(f)
    }

    fn rfc1918(&self) -> bool {
        self.v4_is(|a| a[0] == 10 || (a[0] == 192 && a[1] == 168) || (a[0] == 172 && (16..=31).contains(&a[1])))
    }
    fn rfc2544(&self) -> bool {
        self.v4_is(|a| a[0] == 198 && (a[1] == 18 || a[1] == 19))
    }
    fn rfc3927(&self) -> bool {
        self.v4_is(|a| a[0] == 169 && a[1] == 254)
    }
    fn rfc6598(&self) -> bool {
        self.v4_is(|a| a[0] == 100 && (64..=127).contains(&a[1]))
    }
    fn rfc5737(&self) -> bool {
        self.v4_is(|a| matches!(a[..3], [192, 0, 2] | [198, 51, 100] | [203, 0, 113]))
    }
    fn rfc3849(&self) -> bool {
        self.v6_is(|a| a[..4] == [0x20, 0x01, 0x0d, 0xb8])
    }
    fn rfc3964(&self) -> bool {
        self.v6_is(|a| a[..2] == [0x20, 0x02])
    }
    fn rfc6052(&self) -> bool {
        self.v6_is(|a| a[..12] == [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0])
    }
    fn rfc4380(&self) -> bool {
        self.v6_is(|a| a[..4] == [0x20, 0x01, 0x00, 0x00])
    }
    fn rfc4862(&self) -> bool {
        self.v6_is(|a| a[..8] == [0xfe, 0x80, 0, 0, 0, 0, 0, 0])
    }
    fn rfc4193(&self) -> bool {
        self.v6_is(|a| (a[0] & 0xfe) == 0xfc)
    }
    fn rfc6145(&self) -> bool {
        self.v6_is(|a| a[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0])
    }
    fn rfc4843(&self) -> bool {
        self.v6_is(|a| a[..3] == [0x20, 0x01, 0x00] && (a[3] & 0xf0) == 0x10)
    }
    fn rfc7343(&self) -> bool {
        self.v6_is(|a| a[..3] == [0x20, 0x01, 0x00] && (a[3] & 0xf0) == 0x20)
    }
    fn he_net(&self) -> bool {
        self.v6_is(|a| a[..4] == [0x20, 0x01, 0x04, 0x70])
    }

    /// Core's `IsLocal`: 127.0.0.0/8, 0.0.0.0/8 and ::1.
    pub(crate) fn is_local(&self) -> bool {
        self.v4_is(|a| a[0] == 127 || a[0] == 0) || self.v6() == Some(Ipv6Addr::LOCALHOST.octets())
    }

    /// Core's `IsValid`.
    pub(crate) fn is_valid(&self) -> bool {
        match self {
            View::V6(a) => *a != [0; 16] && !self.rfc3849(),
            View::Cjdns(a) => a[0] == CJDNS_PREFIX,
            View::Internal(_) => false,
            View::V4(a) => *a != [0; 4] && *a != [255; 4],
            View::Onion(_) | View::I2p(_) => true,
        }
    }

    /// Core's `IsRoutable`.
    pub(crate) fn is_routable(&self) -> bool {
        self.is_valid()
            && !(self.rfc1918()
                || self.rfc2544()
                || self.rfc3927()
                || self.rfc4862()
                || self.rfc6598()
                || self.rfc5737()
                || self.rfc4193()
                || self.rfc4843()
                || self.rfc7343()
                || self.is_local()
                || matches!(self, View::Internal(_)))
    }

    /// Whether `rule` treats this as a 127/8 address with a group of its own.
    fn loopback_per_address(&self, rule: NetGroupRule) -> bool {
        rule == NetGroupRule::LoopbackPerAddress && self.v4_is(|a| a[0] == 127)
    }

    /// `IsRoutable` under `rule`.
    pub(crate) fn routable_under(&self, rule: NetGroupRule) -> bool {
        self.is_routable() || self.loopback_per_address(rule)
    }

    /// Core's `GetLinkedIPv4` for routable addresses that have one (`HasLinkedIPv4`).
    fn linked_ipv4(&self) -> Option<u32> {
        if !self.is_routable() {
            return None;
        }
        let be = |b: &[u8]| b.iter().fold(0u32, |acc, x| (acc << 8) | u32::from(*x));
        match self {
            View::V4(a) => Some(be(a)),
            View::V6(a) if self.rfc6052() || self.rfc6145() => Some(be(&a[12..])),
            View::V6(a) if self.rfc3964() => Some(be(&a[2..6])),
            View::V6(a) if self.rfc4380() => Some(!be(&a[12..])),
            _ => None,
        }
    }

    /// Core's `GetNetwork` under `rule`.
    pub(crate) fn network(&self, rule: NetGroupRule) -> AddrNetwork {
        match self {
            View::Internal(_) => AddrNetwork::Internal,
            _ if !self.routable_under(rule) => AddrNetwork::Unroutable,
            _ => self.base_net(),
        }
    }

    /// Core's `GetNetClass` under `rule` (IPv6 forms carrying an IPv4 address count as IPv4).
    pub(crate) fn net_class(&self, rule: NetGroupRule) -> AddrNetwork {
        match self {
            View::Internal(_) => AddrNetwork::Internal,
            _ if !self.routable_under(rule) => AddrNetwork::Unroutable,
            _ if self.linked_ipv4().is_some() => AddrNetwork::Ipv4,
            _ => self.base_net(),
        }
    }

    /// Core's `GetAddrBytes`: IPv4, IPv6 and internal addresses in their 16-byte legacy form,
    /// the others raw.
    pub(crate) fn addr_bytes(&self) -> Vec<u8> {
        match self {
            View::V4(a) => [&IPV4_IN_IPV6_PREFIX[..], &a[..]].concat(),
            View::V6(a) | View::Cjdns(a) => a.to_vec(),
            View::Internal(a) => [&INTERNAL_IN_IPV6_PREFIX[..], &a[..]].concat(),
            View::Onion(a) | View::I2p(a) => a.to_vec(),
        }
    }

    /// Core's `GetGroup` without asmap, under `rule`.
    pub(crate) fn group(&self, rule: NetGroupRule) -> Vec<u8> {
        let mut group = vec![self.net_class(rule) as u8];
        if let Some(a) = self.v4().filter(|_| self.loopback_per_address(rule)) {
            group.extend_from_slice(&a);
            return group;
        }
        let bytes = self.addr_bytes();
        let (start, bits) = if self.is_local() {
            return group;
        } else if let View::Internal(_) = self {
            (INTERNAL_IN_IPV6_PREFIX.len(), 80)
        } else if !self.is_routable() {
            return group;
        } else if let Some(ip) = self.linked_ipv4() {
            group.extend_from_slice(&ip.to_be_bytes()[..2]);
            return group;
        } else {
            match self {
                View::Onion(_) | View::I2p(_) => (0, 4),
                View::Cjdns(_) => (0, 12),
                _ if self.he_net() => (0, 36),
                _ => (0, 32),
            }
        };
        let whole = bits / 8;
        group.extend(bytes.iter().skip(start).take(whole));
        if bits % 8 > 0 {
            let partial = bytes.get(start + whole).copied().unwrap_or(0);
            group.push(partial | ((1u8 << (8 - bits % 8)) - 1));
        }
        group
    }
}

/// The address of a socket peer, as Core stores it (IPv4-mapped IPv6 becomes IPv4).
pub fn from_ip(ip: IpAddr) -> AddrV2 {
    match ip {
        IpAddr::V4(v4) => AddrV2::Ipv4(v4),
        IpAddr::V6(v6) => canonical(&AddrV2::Ipv6(v6)),
    }
}

/// Core's `SetInternal(name)`: the address standing for a name (a DNS seed, "fixedseeds") as
/// the source of the addresses it gave: the internal prefix and the name's SHA-256, truncated.
pub fn internal(name: &str) -> AddrV2 {
    use bitcoin::hashes::{Hash, sha256};
    let digest = sha256::Hash::hash(name.as_bytes()).to_byte_array();
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&INTERNAL_IN_IPV6_PREFIX);
    bytes[6..].copy_from_slice(&digest[..10]);
    AddrV2::Ipv6(Ipv6Addr::from(bytes))
}

/// The address Core would hold for `addr` (IPv4-mapped IPv6 as IPv4; unsupported forms as `::`).
pub fn canonical(addr: &AddrV2) -> AddrV2 {
    match View::of(addr) {
        View::V4(a) => AddrV2::Ipv4(Ipv4Addr::from(a)),
        View::V6(a) => AddrV2::Ipv6(Ipv6Addr::from(a)),
        View::Onion(a) => AddrV2::TorV3(a),
        View::I2p(a) => AddrV2::I2p(a),
        View::Cjdns(a) => AddrV2::Cjdns(Ipv6Addr::from(a)),
        View::Internal(_) => addr.clone(),
    }
}

/// Core's `IsValid`: could refer to a real host.
pub fn is_valid(addr: &AddrV2) -> bool {
    View::of(addr).is_valid()
}

/// Core's `IsLocal`: 127.0.0.0/8, 0.0.0.0/8 or ::1.
pub fn is_local(addr: &AddrV2) -> bool {
    View::of(addr).is_local()
}

/// Core's `IsRoutable`: valid and not in a private, reserved, documentation or local range.
pub fn is_routable(addr: &AddrV2) -> bool {
    View::of(addr).is_routable()
}

/// Core's `GetNetwork` (under `rule`, which can make loopback addresses IPv4).
pub fn network(addr: &AddrV2, rule: NetGroupRule) -> AddrNetwork {
    View::of(addr).network(rule)
}

/// Core's `GetNetClass`: as [`network`], but IPv6 forms carrying an IPv4 address (6to4, Teredo,
/// NAT64, SIIT) are IPv4.
pub fn net_class(addr: &AddrV2, rule: NetGroupRule) -> AddrNetwork {
    View::of(addr).net_class(rule)
}

/// The network group of `addr` (Core's `NetGroupManager::GetGroup` without asmap): the first
/// byte is the network class, then IPv4 (also when carried in IPv6) by /16, IPv6 by /32 (he.net
/// by /36), Tor and I2P by 4 bits, CJDNS by 12 bits; all local addresses share the group `[0]`,
/// as do all other unroutable ones.
pub fn netgroup(addr: &AddrV2, rule: NetGroupRule) -> Vec<u8> {
    View::of(addr).group(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> AddrV2 {
        AddrV2::Ipv4(s.parse().unwrap())
    }

    fn v6(s: &str) -> AddrV2 {
        AddrV2::Ipv6(s.parse().unwrap())
    }

    fn group(a: &AddrV2) -> Vec<u8> {
        netgroup(a, NetGroupRule::Core)
    }

    #[test]
    fn properties_like_core_netbase_tests() {
        // netbase_properties in Core's netbase_tests.cpp.
        assert!(is_local(&v4("127.0.0.1")) && is_local(&v6("::1")) && is_local(&v4("0.1.2.3")));
        assert!(!is_routable(&v4("10.0.0.1")) && !is_routable(&v4("192.168.1.1")));
        assert!(!is_routable(&v4("172.31.255.255")) && is_routable(&v4("172.32.0.1")));
        assert!(!is_routable(&v4("198.18.0.0")) && !is_routable(&v4("198.19.255.255")));
        assert!(!is_routable(&v4("169.254.1.1")) && !is_routable(&v4("100.64.1.1")));
        assert!(
            !is_routable(&v4("192.0.2.1")) && !is_routable(&v4("198.51.100.1")) && !is_routable(&v4("203.0.113.1"))
        );
        assert!(!is_valid(&v6("2001:db8::1")) && !is_routable(&v6("fe80::1")) && !is_routable(&v6("fc00::1")));
        assert!(!is_routable(&v6("2001:10::1")) && !is_routable(&v6("2001:20::1")));
        assert!(!is_valid(&v4("0.0.0.0")) && !is_valid(&v4("255.255.255.255")) && !is_valid(&v6("::")));
        assert!(is_routable(&v6("2001::1")) && is_routable(&v6("2002::1")) && is_routable(&v6("64:ff9b::1")));
        assert!(is_routable(&v4("250.1.1.1")), "Core does not exclude 240/4");
        assert!(is_routable(&AddrV2::TorV3([7; 32])) && is_routable(&AddrV2::I2p([7; 32])));
        assert!(is_routable(&AddrV2::Cjdns("fc00::1".parse().unwrap())));
        assert!(!is_valid(&AddrV2::Cjdns("fd00::1".parse().unwrap())));
        assert!(!is_valid(&AddrV2::TorV2([7; 10])) && !is_valid(&AddrV2::Unknown(42, vec![1, 2, 3])));
        assert!(!is_valid(&v6("fd87:d87e:eb43::1")), "TorV2 in IPv6 is read as ::");
        assert!(!is_valid(&v6("fd6b:88c0:8724::1")), "internal addresses are never valid");
    }

    #[test]
    fn networks_like_core() {
        let r = NetGroupRule::Core;
        assert_eq!(network(&v4("1.2.3.4"), r), AddrNetwork::Ipv4);
        assert_eq!(network(&v6("::ffff:1.2.3.4"), r), AddrNetwork::Ipv4);
        assert_eq!(network(&v4("127.0.0.1"), r), AddrNetwork::Unroutable);
        assert_eq!(network(&v6("2001:470::1"), r), AddrNetwork::Ipv6);
        assert_eq!(network(&AddrV2::TorV3([1; 32]), r), AddrNetwork::Onion);
        assert_eq!(network(&AddrV2::I2p([1; 32]), r), AddrNetwork::I2p);
        assert_eq!(network(&AddrV2::Cjdns("fc00::1".parse().unwrap()), r), AddrNetwork::Cjdns);
        assert_eq!(network(&v6("fd6b:88c0:8724::1"), r), AddrNetwork::Internal);
        // Teredo and 6to4 are IPv6 networks but IPv4 classes.
        assert_eq!(network(&v6("2002:102:304::1"), r), AddrNetwork::Ipv6);
        assert_eq!(net_class(&v6("2002:102:304::1"), r), AddrNetwork::Ipv4);
        assert_eq!(canonical(&v6("::ffff:1.2.3.4")), v4("1.2.3.4"));
        let l = NetGroupRule::LoopbackPerAddress;
        assert_eq!(network(&v4("127.0.0.1"), l), AddrNetwork::Ipv4);
        assert_eq!(network(&v4("10.0.0.1"), l), AddrNetwork::Unroutable);
    }

    #[test]
    fn groups_like_core_netbase_tests() {
        // netbase_getgroup in Core's netbase_tests.cpp.
        let local = vec![0u8];
        assert_eq!(group(&v4("127.0.0.1")), local);
        assert_eq!(group(&v4("0.1.2.3")), local);
        assert_eq!(group(&v4("10.0.0.1")), local);
        assert_eq!(group(&v4("169.254.1.1")), local);
        assert_eq!(group(&v4("1.2.3.4")), vec![1, 1, 2]);
        assert_eq!(group(&v6("::FFFF:0:102:304")), vec![1, 1, 2], "RFC6145");
        assert_eq!(group(&v6("64:FF9B::102:304")), vec![1, 1, 2], "RFC6052");
        assert_eq!(group(&v6("2002:102:304:9999:9999:9999:9999:9999")), vec![1, 1, 2], "RFC3964");
        assert_eq!(group(&v6("2001:0:9999:9999:9999:9999:FEFD:FCFB")), vec![1, 1, 2], "RFC4380");
        assert_eq!(
            group(&v6("2001:470:abcd:9999:9999:9999:9999:9999")),
            vec![2, 0x20, 0x01, 0x04, 0x70, 0xaf],
            "he.net"
        );
        assert_eq!(group(&v6("2001:2001:9999:9999:9999:9999:9999:9999")), vec![2, 0x20, 0x01, 0x20, 0x01], "IPv6");
        assert_eq!(group(&v6("::ffff:1.2.3.4")), vec![1, 1, 2], "IPv4-mapped is IPv4");
        assert_eq!(group(&v6("::1")), local);
        assert_eq!(group(&v6("::")), local, "the invalid address");
        let mut onion = [0u8; 32];
        onion[0] = 0x35;
        assert_eq!(group(&AddrV2::TorV3(onion)), vec![3, 0x3f]);
        assert_eq!(group(&AddrV2::I2p(onion)), vec![4, 0x3f]);
        assert_eq!(group(&AddrV2::Cjdns("fc12:3456::1".parse().unwrap())), vec![5, 0xfc, 0x1f]);
        // Core's internal address for "baz.net": the prefix and sha256("baz.net")[..10].
        use bitcoin::hashes::{Hash, sha256};
        let name = sha256::Hash::hash(b"baz.net").to_byte_array();
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&INTERNAL_IN_IPV6_PREFIX);
        bytes[6..].copy_from_slice(&name[..10]);
        let internal = vec![6, 0x12, 0x92, 0x94, 0x00, 0xeb, 0x46, 0x07, 0xc4, 0xac, 0x07];
        assert_eq!(group(&AddrV2::Ipv6(Ipv6Addr::from(bytes))), internal);
    }

    #[test]
    fn loopback_rule_gives_each_loopback_address_its_own_group() {
        let l = NetGroupRule::LoopbackPerAddress;
        assert_eq!(netgroup(&v4("127.0.0.1"), l), vec![1, 127, 0, 0, 1]);
        assert_eq!(netgroup(&v4("127.0.0.2"), l), vec![1, 127, 0, 0, 2]);
        assert_eq!(netgroup(&v4("1.2.3.4"), l), vec![1, 1, 2]);
        assert_eq!(netgroup(&v6("::1"), l), vec![0]);
        assert!(View::of(&v4("127.3.2.1")).routable_under(l));
        assert!(!View::of(&v4("127.3.2.1")).routable_under(NetGroupRule::Core));
    }
}
