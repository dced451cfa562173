//! Manual bans (Core's `BanMan` without discouragement, which is [`super::discourage`]): subnets
//! banned until a time, set by the `setban` RPC, refused at accept, and persisted atomically in
//! `banlist.json` in Core's format so they survive restarts. The RPC workers change the list
//! (each change is written before `setban` answers, writes serialised so the file on disk is
//! always the newest whole list); the socket handler only asks [`BanMan::is_banned`]. A damaged
//! `banlist.json` is set aside as `banlist.json.bak` and the node starts with no bans, as Core
//! recreates an unreadable ban list.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use parking_lot::Mutex;
use tracing::warn;

use crate::base::sys::write_atomically;
use serde_json::{Value, json};

/// The ban list's file name in the network's data directory (as Core).
pub const BANLIST_FILE: &str = "banlist.json";
/// Suffix of the copy a damaged ban list is moved to (Core's `.bak`, as for `peers.dat`).
pub const DAMAGED_SUFFIX: &str = ".bak";
/// The latest time a ban can last until (9999-12-31T23:59:59Z): longer bans, and times read
/// from the file beyond it, are clamped to it, so no arithmetic on ban times can overflow and
/// a "ban forever" never wraps round into a ban that has already expired.
pub const MAX_BAN_UNTIL: i64 = 253_402_300_799;

/// The end of a ban of `secs` seconds starting at `now` (a `--bantime` or `setban` duration),
/// clamped to [`MAX_BAN_UNTIL`] whatever the inputs.
pub fn ban_until(now: i64, secs: u64) -> i64 {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    now.saturating_add(secs).min(MAX_BAN_UNTIL)
}

/// A ban duration (`--bantime`) as seconds that can be added to any time up to
/// [`MAX_BAN_UNTIL`] without overflow: at most [`MAX_BAN_UNTIL`].
pub fn ban_duration_secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX).min(MAX_BAN_UNTIL)
}

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

/// Writing `banlist.json` failed.
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
}

/// What is wrong with a `banlist.json` that cannot be used.
#[derive(Debug, thiserror::Error)]
enum Damage {
    /// Not JSON.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but not Core's ban-list layout.
    #[error("{0}")]
    Layout(&'static str),
}

/// The ban list, shared by the RPC workers (changes) and the socket handler (checks).
#[derive(Debug, Default)]
pub struct BanMan {
    banned: Mutex<BTreeMap<Subnet, BanEntry>>,
    /// Held across each save (Core's `dump_mutex`): the list is read and written under it, so
    /// saves are ordered and the last one written holds every change made before it.
    save_lock: Mutex<()>,
    /// Where the list is persisted, if anywhere.
    path: Option<PathBuf>,
}

/// Reads Core's `{"banned_nets": [{"address", "ban_created", "banned_until", ...}]}`; expired
/// bans are dropped, times outside `0..=MAX_BAN_UNTIL` clamped (counted in the second value).
fn parse_banlist(bytes: &[u8], now: i64) -> Result<(BTreeMap<Subnet, BanEntry>, usize), Damage> {
    let v: Value = serde_json::from_slice(bytes)?;
    let nets = v.get("banned_nets").and_then(Value::as_array).ok_or(Damage::Layout("no banned_nets"))?;
    let mut banned = BTreeMap::new();
    let mut clamped = 0;
    for n in nets {
        let net = n.get("address").and_then(Value::as_str).and_then(|a| a.parse::<Subnet>().ok());
        let created = n.get("ban_created").and_then(Value::as_i64);
        let until = n.get("banned_until").and_then(Value::as_i64);
        let (Some(net), Some(created), Some(until)) = (net, created, until) else {
            return Err(Damage::Layout("an entry lacks a valid address, ban_created or banned_until"));
        };
        let entry = BanEntry { created: created.clamp(0, MAX_BAN_UNTIL), until: until.min(MAX_BAN_UNTIL) };
        if entry.created != created || entry.until != until {
            clamped += 1;
        }
        if entry.until >= now {
            let entry = BanEntry { created: entry.created.min(entry.until), ..entry };
            banned.insert(net, entry);
        }
    }
    Ok((banned, clamped))
}

impl BanMan {
    /// A list persisted at `path`, loaded from it if it exists (expired bans dropped). A file
    /// that is not a ban list is moved to `banlist.json.bak` with a warning and the list starts
    /// empty (Core's "Recreating the banlist database"); only an I/O error is returned.
    pub fn open(path: &Path, now: i64) -> Result<BanMan, BanListError> {
        let io = |source| BanListError::Io { path: path.to_path_buf(), source };
        let banned = match std::fs::read(path) {
            Ok(bytes) => match parse_banlist(&bytes, now) {
                Ok((banned, clamped)) => {
                    if clamped > 0 {
                        warn!("{}: {clamped} ban times out of range clamped to 0..={MAX_BAN_UNTIL}", path.display());
                    }
                    banned
                }
                Err(damage) => {
                    let mut aside = path.as_os_str().to_os_string();
                    aside.push(DAMAGED_SUFFIX);
                    std::fs::rename(path, &aside).map_err(io)?;
                    crate::base::sys::sync_dir_of(path);
                    warn!(
                        "Cannot load banlist {}: {damage}. Moved it to {} and recreating the banlist database",
                        path.display(),
                        PathBuf::from(aside).display()
                    );
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(io(source)),
        };
        Ok(BanMan { banned: Mutex::new(banned), save_lock: Mutex::new(()), path: Some(path.to_path_buf()) })
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

    /// Bans `net` until `until` (at most [`MAX_BAN_UNTIL`]); a longer existing ban is kept.
    /// Returns whether the list changed; when it did, the list is on disk before this returns.
    pub fn ban(&self, net: Subnet, now: i64, until: i64) -> Result<bool, BanListError> {
        let until = until.min(MAX_BAN_UNTIL);
        {
            let mut banned = self.banned.lock();
            if banned.get(&net).is_some_and(|e| e.until >= until) {
                return Ok(false);
            }
            banned.insert(net, BanEntry { created: now.clamp(0, until.max(0)), until });
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

    /// Writes the list atomically (temporary file, fsync, rename, fsync of the directory).
    /// The snapshot is taken under `save_lock`, so concurrent saves write in order and the
    /// file ends up holding the newest list.
    fn save(&self, now: i64) -> Result<(), BanListError> {
        let Some(path) = &self.path else { return Ok(()) };
        let _order = self.save_lock.lock();
        let nets: Vec<Value> = self
            .list(now)
            .iter()
            .map(|(n, e)| json!({"version": 1, "ban_created": e.created, "banned_until": e.until, "address": n.to_string()}))
            .collect();
        let text = serde_json::to_string_pretty(&json!({ "banned_nets": nets })).unwrap_or_default();
        write_atomically(path, text.as_bytes()).map_err(|source| BanListError::Io { path: path.clone(), source })
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
    fn damaged_file_is_set_aside_and_the_list_starts_empty() {
        let bad: [&[u8]; 4] = [
            b"{not json",
            br#"{"banned_nets":[{"address":"nope","ban_created":1,"banned_until":2}]}"#,
            br#"{"something_else":[]}"#,
            b"",
        ];
        for bytes in bad {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(BANLIST_FILE);
            std::fs::write(&path, bytes).unwrap();
            let b = BanMan::open(&path, 0).expect("a damaged ban list does not stop the start");
            assert!(b.list(0).is_empty());
            assert_eq!(std::fs::read(dir.path().join("banlist.json.bak")).unwrap(), bytes, "damaged file kept aside");
            assert!(!path.exists(), "nothing at banlist.json until the next save");
            assert!(b.ban(Subnet::host(ip("1.2.3.4")), 10, 20).unwrap());
            assert_eq!(BanMan::open(&path, 10).unwrap().list(10).len(), 1, "a new list is written over it");
        }
    }

    /// Eight threads ban 40 subnets each at once; every ban must be in the file afterwards
    /// (the old writer shared one temporary name and saved outside the lock, so writes
    /// clobbered each other or an older snapshot was renamed last).
    #[test]
    fn concurrent_bans_all_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BANLIST_FILE);
        let b = std::sync::Arc::new(BanMan::open(&path, 1000).unwrap());
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for i in 0..40u8 {
                        let net = Subnet::host(IpAddr::from([10, t, i, 1]));
                        b.ban(net, 1000, 100_000).expect("save");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let again = BanMan::open(&path, 1000).unwrap();
        assert_eq!(again.list(1000).len(), 320, "every acknowledged ban is on disk");
        assert!(!dir.path().join("banlist.json.bak").exists(), "the file was never damaged");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left: {leftovers:?}");
    }

    #[test]
    fn the_longest_ban_does_not_expire_at_once() {
        let now = 1_700_000_000;
        for secs in [u64::MAX, i64::MAX as u64, i64::MAX as u64 + 1, MAX_BAN_UNTIL as u64] {
            let until = ban_until(now, secs);
            assert_eq!(until, MAX_BAN_UNTIL, "{secs}");
            let d = ban_duration_secs(std::time::Duration::from_secs(secs));
            assert!(d > 0 && now.checked_add(d).is_some_and(|u| u > now), "{secs}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BANLIST_FILE);
        let b = BanMan::open(&path, now).unwrap();
        let net = Subnet::host(ip("1.2.3.4"));
        assert!(b.ban(net, now, i64::MAX).unwrap());
        assert!(b.is_banned(ip("1.2.3.4"), now + 100 * 365 * 86_400));
        let listed = b.list(now);
        assert_eq!(listed[0].1.until, MAX_BAN_UNTIL);
        assert!(listed[0].1.until.checked_sub(listed[0].1.created).is_some());
        assert!(BanMan::open(&path, now).unwrap().is_banned(ip("1.2.3.4"), now + 1));
    }

    #[test]
    fn times_out_of_range_in_the_file_are_clamped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BANLIST_FILE);
        let text = format!(
            r#"{{"banned_nets":[
                {{"address":"1.1.1.1","ban_created":{min},"banned_until":{max}}},
                {{"address":"2.2.2.2","ban_created":{max},"banned_until":{max}}},
                {{"address":"3.3.3.3","ban_created":5,"banned_until":{min}}}]}}"#,
            min = i64::MIN,
            max = i64::MAX
        );
        std::fs::write(&path, text).unwrap();
        let b = BanMan::open(&path, 1000).unwrap();
        let list = b.list(1000);
        assert_eq!(list.len(), 2, "the ban that ended at i64::MIN is expired");
        for (_, e) in &list {
            assert!((0..=MAX_BAN_UNTIL).contains(&e.created) && e.until == MAX_BAN_UNTIL && e.created <= e.until);
            assert!(e.until.checked_sub(e.created).is_some());
        }
        assert!(b.is_banned(ip("1.1.1.1"), MAX_BAN_UNTIL) && !b.is_banned(ip("3.3.3.3"), 1000));
    }
}
