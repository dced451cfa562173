//! Recently misbehaving addresses (Core's `BanMan` discouragement filter): a bounded set,
//! oldest entries forgotten first, shared by the message handler (which adds) and the socket
//! handler (which consults it when accepting).

use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;

use parking_lot::Mutex;

/// Core's filter size (`CRollingBloomFilter{50000, 0.000001}`).
pub const CAPACITY: usize = 50_000;

#[derive(Debug, Default)]
struct Inner {
    set: HashSet<IpAddr>,
    order: VecDeque<IpAddr>,
}

/// The set of discouraged addresses.
#[derive(Debug, Default)]
pub struct Discouraged {
    inner: Mutex<Inner>,
}

impl Discouraged {
    /// Adds `ip`, forgetting the oldest entry when full.
    pub fn add(&self, ip: IpAddr) {
        let mut g = self.inner.lock();
        if !g.set.insert(ip) {
            return;
        }
        g.order.push_back(ip);
        if g.order.len() > CAPACITY {
            if let Some(old) = g.order.pop_front() {
                g.set.remove(&old);
            }
        }
    }

    /// Whether `ip` was discouraged recently.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.inner.lock().set.contains(ip)
    }

    /// How many addresses are held.
    pub fn len(&self) -> usize {
        self.inner.lock().set.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_oldest_forgotten_first() {
        let d = Discouraged::default();
        let ip = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        for i in 0..(CAPACITY as u32 + 10) {
            d.add(ip(i));
        }
        assert_eq!(d.len(), CAPACITY);
        assert!(!d.contains(&ip(9)));
        assert!(d.contains(&ip(10)));
        assert!(d.contains(&ip(CAPACITY as u32 + 9)));
        d.add(ip(10));
        assert_eq!(d.len(), CAPACITY, "re-adding does not grow");
    }
}
