//! Peer permissions granted by `--whitelist=[perms@]ADDR[/MASK]` (Core's `NetPermissionFlags`
//! and `NetWhitelistPermissions`): which flags a connection from an address gets, with Core's
//! names, implications (`noban` implies `download`, `forcerelay` implies `relay`) and its
//! "implicit" default for entries without `perms@`.

use std::net::IpAddr;

pub use crate::base::peer::Permissions;
use crate::engine::policy::banman::Subnet;

/// Which connections a whitelist entry applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Direction {
    /// Inbound connections.
    pub inbound: bool,
    /// Outbound connections.
    pub outbound: bool,
}

/// One `--whitelist` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Whitelist {
    /// The permissions it grants.
    pub permissions: Permissions,
    /// The addresses it covers.
    pub subnet: Subnet,
    /// The connections it covers (inbound only unless `in`/`out` were given).
    pub direction: Direction,
}

/// A `--whitelist` value Core would refuse, with Core's message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WhitelistError {
    /// A permission name Core does not know.
    #[error("Invalid P2P permission: '{0}'")]
    UnknownPermission(String),
    /// `in`/`out` without any permission.
    #[error("Only direction was set, no permissions: '{0}'")]
    DirectionOnly(String),
    /// The address part is not a subnet.
    #[error("Invalid netmask specified in -whitelist: '{0}'")]
    BadSubnet(String),
}

impl Whitelist {
    /// Parses `[perm1,perm2,…@]ADDR[/MASK]` as Core's `NetWhitelistPermissions::TryParse`.
    pub fn parse(s: &str) -> Result<Whitelist, WhitelistError> {
        let mut permissions = Permissions::NONE;
        let mut direction = Direction::default();
        let net = match s.split_once('@') {
            None => {
                permissions = Permissions::IMPLICIT;
                s
            }
            Some((perms, net)) => {
                for p in perms.split(',') {
                    permissions = permissions.union(match p {
                        "bloomfilter" | "bloom" => Permissions::BLOOM_FILTER,
                        "noban" => Permissions::NO_BAN,
                        "forcerelay" => Permissions::FORCE_RELAY,
                        "mempool" => Permissions::MEMPOOL,
                        "download" => Permissions::DOWNLOAD,
                        "all" => Permissions::ALL,
                        "relay" => Permissions::RELAY,
                        "addr" => Permissions::ADDR,
                        "in" => {
                            direction.inbound = true;
                            Permissions::NONE
                        }
                        "out" => {
                            direction.outbound = true;
                            Permissions::NONE
                        }
                        "" => Permissions::NONE,
                        other => return Err(WhitelistError::UnknownPermission(other.to_string())),
                    });
                }
                net
            }
        };
        if direction == Direction::default() {
            direction.inbound = true;
        } else if permissions == Permissions::NONE {
            return Err(WhitelistError::DirectionOnly(s.to_string()));
        }
        let subnet = net.parse().map_err(|_| WhitelistError::BadSubnet(net.to_string()))?;
        Ok(Whitelist { permissions, subnet, direction })
    }
}

/// The permissions a connection with `ip` gets from `list` (Core's
/// `AddWhitelistPermissionFlags`), implicit ones resolved.
pub fn permissions_for(list: &[Whitelist], ip: IpAddr, inbound: bool) -> Permissions {
    list.iter()
        .filter(|w| if inbound { w.direction.inbound } else { w.direction.outbound })
        .filter(|w| w.subnet.contains(ip))
        .fold(Permissions::NONE, |acc, w| acc.union(w.permissions))
        .resolve_implicit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_like_core() {
        let w = Whitelist::parse("1.2.3.4").unwrap();
        assert_eq!(w.permissions, Permissions::IMPLICIT);
        assert_eq!(w.direction, Direction { inbound: true, outbound: false });
        let w = Whitelist::parse("noban,addr@10.0.0.0/8").unwrap();
        assert!(w.permissions.has(Permissions::NO_BAN) && w.permissions.has(Permissions::DOWNLOAD));
        assert!(w.permissions.has(Permissions::ADDR) && !w.permissions.has(Permissions::RELAY));
        let w = Whitelist::parse("out,noban@::1").unwrap();
        assert_eq!(w.direction, Direction { inbound: false, outbound: true });
        assert_eq!(Whitelist::parse("bogus@1.2.3.4"), Err(WhitelistError::UnknownPermission("bogus".into())));
        assert_eq!(Whitelist::parse("in,out@1.2.3.4"), Err(WhitelistError::DirectionOnly("in,out@1.2.3.4".into())));
        assert_eq!(Whitelist::parse("noban@nope"), Err(WhitelistError::BadSubnet("nope".into())));
        assert!(Whitelist::parse("forcerelay@1.2.3.4").unwrap().permissions.has(Permissions::RELAY));
    }

    #[test]
    fn connections_get_the_union_of_matching_entries() {
        let list = vec![
            Whitelist::parse("10.0.0.0/8").unwrap(),
            Whitelist::parse("addr@10.1.0.0/16").unwrap(),
            Whitelist::parse("out,bloom@10.1.2.3").unwrap(),
        ];
        let p = permissions_for(&list, ip("10.1.2.3"), true);
        assert_eq!(p.names(), vec!["noban", "relay", "mempool", "download", "addr"]);
        assert_eq!(permissions_for(&list, ip("10.1.2.3"), false).names(), vec!["bloomfilter"]);
        assert_eq!(permissions_for(&list, ip("11.0.0.1"), true), Permissions::NONE);
        assert_eq!(Permissions::ALL.names().len(), 7);
    }
}
