//! Our own addresses (Core's `mapLocalHost` with `AddLocal`, `SeenLocal`, `GetLocal`,
//! `IsPeerAddrLocalGood` and `GetLocalAddrForPeer`), I/O-free: the protocol owns one
//! [`LocalAddrs`] (inside `Protocol`); `node.rs` builds it at start from `--externalip`, the
//! `--bind` addresses and, with `--discover`, the interface addresses it enumerated.
//!
//! Routability follows the address book's [`NetGroupRule`]: under the test-only
//! `LoopbackPerAddress` rule a `127.x` address counts as a routable IPv4 address, so daemons on
//! one machine can advertise themselves to each other. Under Core's rule nothing changes.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use rand::RngExt;
use rand::rngs::StdRng;
use tracing::info;

use bitcoin::p2p::address::AddrV2;

use crate::engine::addrman::{AddrNetwork, NetGroupRule, from_ip, network};

/// Core's `LOCAL_NONE`: unknown.
pub const LOCAL_NONE: i32 = 0;
/// Core's `LOCAL_IF`: an address of a local interface (`--discover`).
pub const LOCAL_IF: i32 = 1;
/// Core's `LOCAL_BIND`: an address explicitly bound to (`--bind`).
pub const LOCAL_BIND: i32 = 2;
/// Core's `LOCAL_MAPPED`: an address reported by a port-mapping protocol (btcloopd has none).
pub const LOCAL_MAPPED: i32 = 3;
/// Core's `LOCAL_MANUAL`: an address given by `--externalip`.
pub const LOCAL_MANUAL: i32 = 4;

/// An `--externalip` value: an IP with an optional port (the listening port when absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExternalAddr {
    /// The address.
    pub ip: IpAddr,
    /// The port, if given.
    pub port: Option<u16>,
}

/// An `--externalip` value that is not an IP address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExternalAddrError {
    /// Not `IP`, `IP:PORT` or `[IPv6]:PORT` (host names are not resolved: no DNS lookups).
    #[error("Cannot resolve -externalip address: '{0}' (an IP address or IP:PORT is expected)")]
    NotAnAddress(String),
}

impl ExternalAddr {
    /// Parses `IP`, `IP:PORT`, `IPv6` or `[IPv6]:PORT`.
    pub fn parse(s: &str) -> Result<ExternalAddr, ExternalAddrError> {
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(ExternalAddr { ip: sa.ip(), port: Some(sa.port()) });
        }
        s.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map(|ip| ExternalAddr { ip, port: None })
            .map_err(|_| ExternalAddrError::NotAnAddress(s.to_string()))
    }
}

/// What is known about one local address (Core's `LocalServiceInfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalInfo {
    /// How sure we are of it; grows with every peer that confirms it.
    pub score: i32,
    /// The port we advertise with it.
    pub port: u16,
}

/// The node's local addresses and the settings that govern them.
#[derive(Clone, Debug)]
pub struct LocalAddrs {
    /// Keyed by IP, ordered as Core's `std::map<CNetAddr, …>` (IPv4 before IPv6, then bytes).
    map: BTreeMap<IpAddr, LocalInfo>,
    /// Core's `fListen`: we accept inbound connections, so advertising makes sense.
    listen: bool,
    /// Core's `fDiscover`: learn addresses from interfaces, binds and peers.
    discover: bool,
    /// Core's `GetListenPort()`.
    listen_port: u16,
    /// Which addresses count as routable.
    rule: NetGroupRule,
    /// Show addresses in log lines.
    log_ips: bool,
    /// Our onion service while Tor keeps it (`--listenonion`): its address and port, advertised
    /// as Core's `AddLocal(service, LOCAL_MANUAL)` does.
    onion: Option<(AddrV2, u16)>,
}

impl Default for LocalAddrs {
    /// Not listening: nothing is ever advertised.
    fn default() -> Self {
        LocalAddrs::new(false, false, 0, NetGroupRule::Core, false)
    }
}

/// Teredo (RFC4380, `2001::/32`).
fn rfc4380(v6: &Ipv6Addr) -> bool {
    let s = v6.segments();
    s[0] == 0x2001 && s[1] == 0
}

/// IPv6 forms tunnelling IPv4: 6to4 (RFC3964), NAT64 (RFC6052), SIIT (RFC6145).
fn tunnelled(v6: &Ipv6Addr) -> bool {
    let s = v6.segments();
    s[0] == 0x2002
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0])
        || (s[0..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0)
}

/// The address as Core holds it (IPv4-mapped IPv6 is IPv4).
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Core's networks as `GetExtNetwork` sees them (Teredo apart).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ExtNet {
    Unroutable,
    Ipv4,
    Ipv6,
    Teredo,
}

impl LocalAddrs {
    /// An empty set. `listen`: Core's `fListen`; `discover`: `fDiscover`; `listen_port`:
    /// `GetListenPort()`.
    pub fn new(listen: bool, discover: bool, listen_port: u16, rule: NetGroupRule, log_ips: bool) -> Self {
        LocalAddrs { map: BTreeMap::new(), listen, discover, listen_port, rule, log_ips, onion: None }
    }

    /// Our onion service came up (`Some`) or went away (`None`, Core's `RemoveLocal`).
    pub fn set_onion(&mut self, onion: Option<(AddrV2, u16)>) {
        self.onion = onion;
    }

    /// Our onion service's address and port, while it exists.
    pub fn onion(&self) -> Option<&(AddrV2, u16)> {
        self.onion.as_ref()
    }

    /// Core's `GetLocalAddrForPeer` with our onion service among the local addresses: an onion
    /// peer reaches the onion address best (Core's `REACH_PRIVATE`); any other peer gets
    /// [`LocalAddrs::addr_for_peer`]'s IP address, or the onion address when there is none
    /// (Core's `REACH_DEFAULT` beats having nothing). `None` when there is nothing to advertise.
    pub fn advertised_for(
        &self,
        peer_addr: IpAddr,
        peer_onion: bool,
        inbound: bool,
        addr_local: Option<SocketAddr>,
        rng: &mut StdRng,
    ) -> Option<(AddrV2, u16)> {
        if !self.listen {
            return None;
        }
        if let (Some(onion), true) = (&self.onion, peer_onion) {
            return Some(onion.clone());
        }
        let ip = self.addr_for_peer(peer_addr, inbound, addr_local, rng);
        ip.map(|sa| (from_ip(sa.ip()), sa.port())).or_else(|| self.onion.clone())
    }

    /// Whether we listen (Core's `fListen`).
    pub fn listening(&self) -> bool {
        self.listen
    }

    /// Core's `GetListenPort()`.
    pub fn listen_port(&self) -> u16 {
        self.listen_port
    }

    /// Core's `IsRoutable`, under the address book's rule.
    pub fn is_routable(&self, ip: IpAddr) -> bool {
        !matches!(network(&from_ip(ip), self.rule), AddrNetwork::Unroutable | AddrNetwork::Internal)
    }

    fn ext_net(&self, ip: IpAddr) -> ExtNet {
        match network(&from_ip(ip), self.rule) {
            AddrNetwork::Ipv4 => ExtNet::Ipv4,
            AddrNetwork::Ipv6 => match canonical_ip(ip) {
                IpAddr::V6(v6) if rfc4380(&v6) => ExtNet::Teredo,
                _ => ExtNet::Ipv6,
            },
            _ => ExtNet::Unroutable,
        }
    }

    /// Core's `CNetAddr::GetReachabilityFrom` for IP addresses: how well `partner` can reach
    /// `ours` (unreachable 0, default 1, Teredo 2, weak IPv6 3, IPv4 4, strong IPv6 5).
    fn reachability(&self, ours: IpAddr, partner: IpAddr) -> i32 {
        const DEFAULT: i32 = 1;
        const TEREDO: i32 = 2;
        const IPV6_WEAK: i32 = 3;
        const IPV4: i32 = 4;
        const IPV6_STRONG: i32 = 5;
        if !self.is_routable(ours) {
            return 0;
        }
        let our_net = self.ext_net(ours);
        let tunnel = matches!(canonical_ip(ours), IpAddr::V6(v6) if tunnelled(&v6));
        match (self.ext_net(partner), our_net) {
            (ExtNet::Ipv4, ExtNet::Ipv4) => IPV4,
            (ExtNet::Ipv4, _) => DEFAULT,
            (ExtNet::Ipv6, ExtNet::Teredo) => TEREDO,
            (ExtNet::Ipv6, ExtNet::Ipv4) => IPV4,
            (ExtNet::Ipv6, ExtNet::Ipv6) if tunnel => IPV6_WEAK,
            (ExtNet::Ipv6, ExtNet::Ipv6) => IPV6_STRONG,
            (ExtNet::Ipv6, _) => DEFAULT,
            (ExtNet::Teredo | ExtNet::Unroutable, ExtNet::Teredo) => TEREDO,
            (ExtNet::Teredo | ExtNet::Unroutable, ExtNet::Ipv6) => IPV6_WEAK,
            (ExtNet::Teredo | ExtNet::Unroutable, ExtNet::Ipv4) => IPV4,
            (ExtNet::Teredo | ExtNet::Unroutable, ExtNet::Unroutable) => DEFAULT,
        }
    }

    /// Core's `AddLocal`: learns `addr` with `score`. Refused when not routable, or when
    /// discovery is off and the score is below [`LOCAL_MANUAL`]. Known addresses get the
    /// higher of the scores, plus one, and the new port. (Every IP network btcloopd speaks is
    /// reachable, so Core's reachability check never refuses one here.)
    pub fn add(&mut self, addr: SocketAddr, score: i32) -> bool {
        let ip = canonical_ip(addr.ip());
        if !self.is_routable(ip) || (!self.discover && score < LOCAL_MANUAL) {
            return false;
        }
        if self.log_ips {
            info!("AddLocal({},{score})", SocketAddr::new(ip, addr.port()));
        }
        match self.map.get_mut(&ip) {
            None => {
                self.map.insert(ip, LocalInfo { score, port: addr.port() });
            }
            Some(info) if score >= info.score => {
                *info = LocalInfo { score: score.saturating_add(1), port: addr.port() };
            }
            Some(_) => {}
        }
        true
    }

    /// Core's `AddLocal(CNetAddr)`: `ip` with the listening port.
    pub fn add_ip(&mut self, ip: IpAddr, score: i32) -> bool {
        self.add(SocketAddr::new(ip, self.listen_port), score)
    }

    /// Core's `RemoveLocal`.
    pub fn remove(&mut self, ip: IpAddr) {
        self.map.remove(&canonical_ip(ip));
    }

    /// Core's `SeenLocal`: a peer saw us at `ip`; a known local address gains a point.
    pub fn seen(&mut self, ip: IpAddr) -> bool {
        match self.map.get_mut(&canonical_ip(ip)) {
            Some(info) => {
                info.score = info.score.saturating_add(1);
                true
            }
            None => false,
        }
    }

    /// Core's `IsLocal(CService)`: whether `ip` is one of ours.
    pub fn is_local(&self, ip: IpAddr) -> bool {
        self.map.contains_key(&canonical_ip(ip))
    }

    /// Core's `GetnScore`: the score of `ip` (0 when unknown).
    pub fn score(&self, ip: IpAddr) -> i32 {
        self.map.get(&canonical_ip(ip)).map_or(0, |i| i.score)
    }

    /// Every local address with its score and port, in Core's order (`getnetworkinfo`'s
    /// `localaddresses`).
    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, LocalInfo)> + '_ {
        self.map.iter().map(|(ip, info)| (*ip, *info))
    }

    /// Core's `GetLocal`: the local address `peer` reaches best, the higher score among
    /// equals; none when not listening. (Core's privacy-network separation has nothing to
    /// separate here: btcloopd's local addresses and peers are all IP.)
    pub fn best_for(&self, peer: IpAddr) -> Option<SocketAddr> {
        if !self.listen {
            return None;
        }
        let mut best: Option<(i32, i32, SocketAddr)> = None;
        for (ip, info) in &self.map {
            let reach = self.reachability(*ip, peer);
            if best.is_none_or(|(r, s, _)| reach > r || (reach == r && info.score > s)) {
                best = Some((reach, info.score, SocketAddr::new(*ip, info.port)));
            }
        }
        best.map(|(_, _, a)| a)
    }

    /// Core's `IsPeerAddrLocalGood`: whether the peer's view of us (`addr_local`, from its
    /// `version`) may be a useful source of our external address.
    pub fn peer_view_good(&self, peer: IpAddr, addr_local: Option<SocketAddr>) -> bool {
        self.discover && self.is_routable(peer) && addr_local.is_some_and(|a| self.is_routable(a.ip()))
    }

    /// Core's `GetLocalAddrForPeer`: the address to advertise to `peer` (at `peer_addr`,
    /// `inbound` or not, which said it sees us at `addr_local`): our best local address, but
    /// when that is not routable, or by chance (1 in 2, or 1 in 8 once the best address's
    /// score is over [`LOCAL_MANUAL`]) and the peer's view is good, the peer's view — its
    /// address and port for an inbound peer, its address with our port for an outbound one
    /// (it cannot see our listening port). `None` when the result is not routable.
    pub fn addr_for_peer(
        &self,
        peer_addr: IpAddr,
        inbound: bool,
        addr_local: Option<SocketAddr>,
        rng: &mut StdRng,
    ) -> Option<SocketAddr> {
        let mut ours =
            self.best_for(peer_addr).unwrap_or_else(|| SocketAddr::new([0, 0, 0, 0].into(), self.listen_port));
        if let Some(seen) = addr_local.filter(|_| self.peer_view_good(peer_addr, addr_local)) {
            let bits = if self.score(ours.ip()) > LOCAL_MANUAL { 3 } else { 1 };
            if !self.is_routable(ours.ip()) || rng.random_range(0..1u32 << bits) == 0 {
                ours = if inbound { seen } else { SocketAddr::new(seen.ip(), ours.port()) };
            }
        }
        let ip = canonical_ip(ours.ip());
        if !self.is_routable(ip) {
            return None;
        }
        Some(SocketAddr::new(ip, ours.port()))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn local(discover: bool) -> LocalAddrs {
        LocalAddrs::new(true, discover, 8333, NetGroupRule::Core, false)
    }

    #[test]
    fn externalip_values_parse_without_name_lookups() {
        assert_eq!(ExternalAddr::parse("1.2.3.4").unwrap(), ExternalAddr { ip: ip("1.2.3.4"), port: None });
        assert_eq!(ExternalAddr::parse("1.2.3.4:5").unwrap(), ExternalAddr { ip: ip("1.2.3.4"), port: Some(5) });
        assert_eq!(ExternalAddr::parse("[2a00::1]:7").unwrap(), ExternalAddr { ip: ip("2a00::1"), port: Some(7) });
        assert_eq!(ExternalAddr::parse("2a00::1").unwrap().port, None);
        assert!(ExternalAddr::parse("example.com").is_err());
    }

    #[test]
    fn add_local_scores_like_core() {
        let mut l = local(true);
        assert!(!l.add(sa("10.0.0.1:8333"), LOCAL_MANUAL), "unroutable addresses are refused");
        assert!(!l.add(sa("127.0.0.1:8333"), LOCAL_MANUAL), "loopback is not routable under Core's rule");
        assert!(l.add(sa("1.2.3.4:8333"), LOCAL_IF));
        assert_eq!(l.score(ip("1.2.3.4")), LOCAL_IF);
        // A higher or equal score replaces it, plus one; a lower one leaves it.
        assert!(l.add(sa("1.2.3.4:9000"), LOCAL_BIND));
        assert_eq!(l.score(ip("1.2.3.4")), LOCAL_BIND + 1);
        assert!(l.add(sa("1.2.3.4:9999"), LOCAL_IF));
        assert_eq!(l.iter().next().unwrap().1, LocalInfo { score: LOCAL_BIND + 1, port: 9000 });
        // IPv4-mapped IPv6 is the IPv4 address.
        assert!(l.is_local(ip("::ffff:1.2.3.4")));
        // SeenLocal: one point per confirmation, only for known addresses.
        assert!(l.seen(ip("1.2.3.4")));
        assert_eq!(l.score(ip("1.2.3.4")), LOCAL_BIND + 2);
        assert!(!l.seen(ip("5.6.7.8")));
        assert_eq!(l.score(ip("5.6.7.8")), LOCAL_NONE);
        l.remove(ip("1.2.3.4"));
        assert!(!l.is_local(ip("1.2.3.4")));
        // Without discovery only manual addresses are learnt.
        let mut l = local(false);
        assert!(!l.add_ip(ip("1.2.3.4"), LOCAL_BIND));
        assert!(l.add_ip(ip("1.2.3.4"), LOCAL_MANUAL));
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![(ip("1.2.3.4"), LocalInfo { score: LOCAL_MANUAL, port: 8333 })]);
    }

    #[test]
    fn get_local_prefers_reachability_then_score() {
        let mut l = local(true);
        l.add(sa("1.2.3.4:8333"), LOCAL_IF);
        l.add(sa("[2a00:1::1]:8333"), LOCAL_IF);
        l.add(sa("[2002:102:304::1]:8333"), LOCAL_MANUAL); // 6to4: tunnelled IPv6
        // An IPv4 peer reaches our IPv4 address best, whatever the scores.
        assert_eq!(l.best_for(ip("8.8.8.8")), Some(sa("1.2.3.4:8333")));
        // An IPv6 peer: native IPv6 (strong) over IPv4 over tunnelled IPv6.
        assert_eq!(l.best_for(ip("2a01::5")), Some(sa("[2a00:1::1]:8333")));
        l.remove(ip("2a00:1::1"));
        assert_eq!(l.best_for(ip("2a01::5")), Some(sa("1.2.3.4:8333")));
        l.remove(ip("1.2.3.4"));
        assert_eq!(l.best_for(ip("2a01::5")), Some(sa("[2002:102:304::1]:8333")));
        // Equal reachability: the higher score.
        let mut l = local(true);
        l.add(sa("1.2.3.4:1"), LOCAL_IF);
        l.add(sa("5.6.7.8:2"), LOCAL_BIND);
        assert_eq!(l.best_for(ip("8.8.8.8")), Some(sa("5.6.7.8:2")));
        l.seen(ip("1.2.3.4"));
        l.seen(ip("1.2.3.4"));
        assert_eq!(l.best_for(ip("8.8.8.8")), Some(sa("1.2.3.4:1")));
        // Not listening: nothing.
        let mut quiet = LocalAddrs::new(false, true, 8333, NetGroupRule::Core, false);
        quiet.add(sa("1.2.3.4:1"), LOCAL_MANUAL);
        assert_eq!(quiet.best_for(ip("8.8.8.8")), None);
    }

    #[test]
    fn peer_view_is_used_when_we_know_nothing_routable() {
        let mut rng = StdRng::seed_from_u64(1);
        let l = local(true);
        let seen = Some(sa("9.9.9.9:4444"));
        // Inbound: the peer's view, address and port; outbound: its address with our port.
        assert_eq!(l.addr_for_peer(ip("8.8.8.8"), true, seen, &mut rng), Some(sa("9.9.9.9:4444")));
        assert_eq!(l.addr_for_peer(ip("8.8.8.8"), false, seen, &mut rng), Some(sa("9.9.9.9:8333")));
        // No view, or an unroutable one, or an unroutable peer: nothing to advertise.
        assert_eq!(l.addr_for_peer(ip("8.8.8.8"), true, None, &mut rng), None);
        assert_eq!(l.addr_for_peer(ip("8.8.8.8"), true, Some(sa("192.168.1.1:1")), &mut rng), None);
        assert_eq!(l.addr_for_peer(ip("10.0.0.1"), true, seen, &mut rng), None);
        // Without discovery the peer's view is never used.
        assert_eq!(local(false).addr_for_peer(ip("8.8.8.8"), true, seen, &mut rng), None);
    }

    #[test]
    fn peer_view_replaces_our_address_one_time_in_two_or_eight() {
        let count = |l: &LocalAddrs| {
            let mut rng = StdRng::seed_from_u64(7);
            let seen = Some(sa("9.9.9.9:4444"));
            (0..4000).filter(|_| l.addr_for_peer(ip("8.8.8.8"), true, seen, &mut rng) == seen).count()
        };
        let mut l = local(true);
        l.add(sa("1.2.3.4:8333"), LOCAL_MANUAL);
        let half = count(&l);
        assert!((1700..2300).contains(&half), "{half} of 4000");
        // Over LOCAL_MANUAL (confirmed by a peer): one time in eight.
        l.seen(ip("1.2.3.4"));
        let eighth = count(&l);
        assert!((350..650).contains(&eighth), "{eighth} of 4000");
        // Otherwise our own address.
        let mut rng = StdRng::seed_from_u64(3);
        let n = (0..100).filter(|_| l.addr_for_peer(ip("8.8.8.8"), true, None, &mut rng) == Some(sa("1.2.3.4:8333")));
        assert_eq!(n.count(), 100);
    }

    #[test]
    fn loopback_rule_makes_127_addresses_advertisable() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut l = LocalAddrs::new(true, false, 8333, NetGroupRule::LoopbackPerAddress, false);
        assert!(l.add(sa("127.0.0.5:18444"), LOCAL_MANUAL));
        assert!(!l.add(sa("[::1]:18444"), LOCAL_MANUAL), "only 127/8 becomes routable");
        assert_eq!(l.addr_for_peer(ip("127.0.0.1"), false, None, &mut rng), Some(sa("127.0.0.5:18444")));
    }

    #[test]
    fn our_onion_service_goes_to_onion_peers_and_to_others_only_without_an_ip_address() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut l = local(false);
        let onion = AddrV2::TorV3([9; 32]);
        assert_eq!(l.advertised_for(ip("8.8.8.8"), false, true, None, &mut rng), None, "nothing to advertise");
        l.set_onion(Some((onion.clone(), 8333)));
        assert_eq!(l.advertised_for(ip("127.0.0.1"), true, true, None, &mut rng), Some((onion.clone(), 8333)));
        assert_eq!(l.advertised_for(ip("8.8.8.8"), false, true, None, &mut rng), Some((onion.clone(), 8333)));
        assert!(l.add(sa("1.2.3.4:8333"), LOCAL_MANUAL));
        let ipv4 = (from_ip(ip("1.2.3.4")), 8333);
        assert_eq!(l.advertised_for(ip("8.8.8.8"), false, true, None, &mut rng), Some(ipv4), "an IP peer: the IP");
        assert_eq!(l.advertised_for(ip("127.0.0.1"), true, true, None, &mut rng), Some((onion, 8333)), "onion peer");
        l.set_onion(None);
        assert_eq!(l.onion(), None);
        let quiet =
            LocalAddrs { onion: l.onion.clone(), ..LocalAddrs::new(false, false, 8333, NetGroupRule::Core, false) };
        assert_eq!(quiet.advertised_for(ip("127.0.0.1"), true, true, None, &mut rng), None, "not listening: nothing");
    }
}
