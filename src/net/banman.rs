//! Manual bans (Core's `BanMan` without discouragement, which is [`super::discourage`]): subnets
//! banned until a time, set by the `setban` RPC, refused at accept, and persisted atomically in
//! `banlist.json` in Core's format so they survive restarts. The message handler changes the
//! list; the socket handler only asks [`BanMan::is_banned`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use parking_lot::Mutex;

use crate::sys::{PUBLIC_FILE_MODE, write_atomically};
use serde_json::{Value, json};

/// The ban list's file name in the network's data directory (as Core).
pub const BANLIST_FILE: &str = "banlist.json";

/// An IP network: an address and a prefix length (a single address is /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    base: IpAddr,
    bits: u8,
}

/// Not an `IP`, `IP/BITS` or `IP/NETMASK`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid IP/subnet '{0}'")]
pub struct BadSubnet(pub String);

fn to_bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

fn mask(bits: u8, width: u8) -> u128 {
    let all = if width == 32 { u128::from(u32::MAX) } else { u128::MAX };
    match bits {
        0 => 0,
        b if b >= width => all,
        b => all & !(all >> b),
    }
}

impl Subnet {
    /// The single address `ip`.
    pub fn host(ip: IpAddr) -> Subnet {
        let ip = canonical(ip);
        Subnet { base: ip, bits: if ip.is_ipv4() { 32 } else { 128 } }
    }

    /// `ip/bits`, with the host bits cleared; `None` if `bits` is too long.
    pub fn new(ip: IpAddr, bits: u8) -> Option<Subnet> {
        let ip = canonical(ip);
        let (v, width) = to_bits(ip);
        if bits > width {
            return None;
        }
        let net = v & mask(bits, width);
        let base = if width == 32 {
            IpAddr::V4(std::net::Ipv4Addr::from(net as u32))
        } else {
            IpAddr::V6(std::net::Ipv6Addr::from(net))
        };
        Some(Subnet { base, bits })
    }

    /// Its first address.
    pub fn base(&self) -> IpAddr {
        self.base
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let (v, width) = to_bits(ip);
        let (b, bw) = to_bits(self.base);
        width == bw && (v & mask(self.bits, width)) == b
    }
}

/// IPv4-mapped IPv6 addresses are IPv4 (as Core stores them).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for Subnet {
    type Err = BadSubnet;

    /// Core's `LookupSubNet` for IP literals: `IP`, `IP/BITS` or `IP/NETMASK` (a contiguous mask).
    fn from_str(s: &str) -> Result<Subnet, BadSubnet> {
        let bad = || BadSubnet(s.to_string());
        let (addr, suffix) = match s.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (s, None),
        };
        let ip: IpAddr = addr.trim_start_matches('[').trim_end_matches(']').parse().map_err(|_| bad())?;
        let ip = canonical(ip);
        let Some(m) = suffix else { return Ok(Subnet::host(ip)) };
        if let Ok(bits) = m.parse::<u8>() {
            return Subnet::new(ip, bits).ok_or_else(bad);
        }
        let mask_ip: IpAddr = m.parse().map_err(|_| bad())?;
        let (mv, mw) = to_bits(canonical(mask_ip));
        let (_, w) = to_bits(ip);
        let ones = if mw == 32 { (mv as u32).leading_ones() as u8 } else { mv.leading_ones() as u8 };
        if mw != w || mask(ones, w) != mv {
            return Err(bad());
        }
        Subnet::new(ip, ones).ok_or_else(bad)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.bits)
    }
}

/// One ban.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BanEntry {
    /// When it was set (Unix seconds).
    pub created: i64,
    /// When it ends (Unix seconds).
    pub until: i64,
}

/// Reading or writing `banlist.json` failed.
#[derive(Debug, thiserror::Error)]
pub enum BanListError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a ban list.
    #[error("{path}: not a valid ban list ({what}); move it away to start with no bans")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
}

/// The ban list, shared by the message handler (changes) and the socket handler (checks).
#[derive(Debug, Default)]
pub struct BanMan {
    banned: Mutex<BTreeMap<Subnet, BanEntry>>,
    /// Where the list is persisted, if anywhere.
    path: Option<PathBuf>,
}

impl BanMan {
    /// A list persisted at `path`, loaded from it if it exists (expired bans dropped).
    pub fn open(path: &Path, now: i64) -> Result<BanMan, BanListError> {
        let mut banned = BTreeMap::new();
        match std::fs::read(path) {
            Ok(bytes) => {
                let corrupt = |what: &str| BanListError::Corrupt { path: path.to_path_buf(), what: what.into() };
                let v: Value = serde_json::from_slice(&bytes).map_err(|e| corrupt(&e.to_string()))?;
                let nets = v.get("banned_nets").and_then(Value::as_array).ok_or_else(|| corrupt("no banned_nets"))?;
                for n in nets {
                    let net = n.get("address").and_then(Value::as_str).and_then(|a| a.parse::<Subnet>().ok());
                    let created = n.get("ban_created").and_then(Value::as_i64);
                    let until = n.get("banned_until").and_then(Value::as_i64);
                    let (Some(net), Some(created), Some(until)) = (net, created, until) else {
                        return Err(corrupt("an entry lacks address, ban_created or banned_until"));
                    };
                    if until >= now {
                        banned.insert(net, BanEntry { created, until });
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(BanListError::Io { path: path.to_path_buf(), source }),
        }
        Ok(BanMan { banned: Mutex::new(banned), path: Some(path.to_path_buf()) })
    }

    /// Whether `ip` is inside an unexpired ban.
    pub fn is_banned(&self, ip: IpAddr, now: i64) -> bool {
        let banned = self.banned.lock();
        !banned.is_empty() && banned.iter().any(|(n, e)| e.until >= now && n.contains(ip))
    }

    /// Whether exactly `net` is banned (Core's `IsBanned(CSubNet)`).
    pub fn is_banned_exactly(&self, net: &Subnet, now: i64) -> bool {
        self.banned.lock().get(net).is_some_and(|e| e.until >= now)
    }

    /// Bans `net` until `until`; a longer existing ban is kept. Returns whether the list changed.
    pub fn ban(&self, net: Subnet, now: i64, until: i64) -> Result<bool, BanListError> {
        {
            let mut banned = self.banned.lock();
            if banned.get(&net).is_some_and(|e| e.until >= until) {
                return Ok(false);
            }
            banned.insert(net, BanEntry { created: now, until });
        }
        self.save(now)?;
        Ok(true)
    }

    /// Lifts the ban on exactly `net`; false if there was none.
    pub fn unban(&self, net: &Subnet, now: i64) -> Result<bool, BanListError> {
        let removed = self.banned.lock().remove(net).is_some();
        if removed {
            self.save(now)?;
        }
        Ok(removed)
    }

    /// Lifts every ban.
    pub fn clear(&self, now: i64) -> Result<(), BanListError> {
        self.banned.lock().clear();
        self.save(now)
    }

    /// The unexpired bans, sorted by subnet.
    pub fn list(&self, now: i64) -> Vec<(Subnet, BanEntry)> {
        let mut banned = self.banned.lock();
        banned.retain(|_, e| e.until >= now);
        banned.iter().map(|(n, e)| (*n, *e)).collect()
    }

    /// Writes the list atomically: a temporary file, fsync, rename, fsync of the directory.
    fn save(&self, now: i64) -> Result<(), BanListError> {
        let Some(path) = &self.path else { return Ok(()) };
        let nets: Vec<Value> = self
            .list(now)
            .iter()
            .map(|(n, e)| json!({"version": 1, "ban_created": e.created, "banned_until": e.until, "address": n.to_string()}))
            .collect();
        let text = serde_json::to_string_pretty(&json!({ "banned_nets": nets })).unwrap_or_default();
        write_atomically(path, text.as_bytes(), PUBLIC_FILE_MODE)
            .map_err(|source| BanListError::Io { path: path.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn subnets_parse_like_core() {
        assert_eq!("1.2.3.4".parse::<Subnet>().unwrap().to_string(), "1.2.3.4/32");
        assert_eq!("1.2.3.4/24".parse::<Subnet>().unwrap().to_string(), "1.2.3.0/24");
        assert_eq!("1.2.3.4/255.255.0.0".parse::<Subnet>().unwrap().to_string(), "1.2.0.0/16");
        assert_eq!("::ffff:1.2.3.4".parse::<Subnet>().unwrap().to_string(), "1.2.3.4/32");
        assert_eq!("2001:db8::1/32".parse::<Subnet>().unwrap().to_string(), "2001:db8::/32");
        for bad in ["1.2.3.4/33", "1.2.3.4/255.0.255.0", "example.com", "1.2.3.4/", "", "1.2.3.4/ffff::"] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
        let n: Subnet = "10.0.0.0/8".parse().unwrap();
        assert!(n.contains(ip("10.200.1.1")) && !n.contains(ip("11.0.0.1")) && !n.contains(ip("::1")));
        assert!("0.0.0.0/0".parse::<Subnet>().unwrap().contains(ip("8.8.8.8")));
    }

    #[test]
    fn bans_expire_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BANLIST_FILE);
        let b = BanMan::open(&path, 1000).unwrap();
        assert!(b.ban("10.0.0.0/8".parse().unwrap(), 1000, 2000).unwrap());
        assert!(b.ban(Subnet::host(ip("1.2.3.4")), 1000, 1100).unwrap());
        assert!(!b.ban(Subnet::host(ip("1.2.3.4")), 1000, 1050).unwrap(), "a shorter ban keeps the longer");
        assert!(b.is_banned(ip("10.1.1.1"), 1500));
        assert!(b.is_banned(ip("1.2.3.4"), 1100) && !b.is_banned(ip("1.2.3.4"), 1101));
        let again = BanMan::open(&path, 1500).unwrap();
        assert_eq!(again.list(1500).len(), 1, "the expired ban is dropped on load");
        assert!(again.is_banned(ip("10.9.9.9"), 1500));
        assert!(again.unban(&"10.0.0.0/8".parse().unwrap(), 1500).unwrap());
        assert!(!again.unban(&"10.0.0.0/8".parse().unwrap(), 1500).unwrap());
        assert!(BanMan::open(&path, 1500).unwrap().list(1500).is_empty());
    }

    #[test]
    fn corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BANLIST_FILE);
        std::fs::write(&path, b"{not json").unwrap();
        let err = BanMan::open(&path, 0).unwrap_err().to_string();
        assert!(err.contains("banlist.json") && err.contains("not a valid ban list"), "{err}");
        std::fs::write(&path, br#"{"banned_nets":[{"address":"nope","ban_created":1,"banned_until":2}]}"#).unwrap();
        assert!(BanMan::open(&path, 0).is_err());
    }
}
