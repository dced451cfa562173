//! The node's clock: one monotonic origin shared by both threads, so times can cross threads
//! as plain microsecond counts. Only the two threads read the clock; protocol logic is given
//! times as arguments.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Monotonic origin of the node.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        Clock { start: Instant::now() }
    }

    /// Microseconds since the node started (never 0: 0 means "never" in the counters).
    pub fn now_us(&self) -> u64 {
        (self.start.elapsed().as_micros() as u64).max(1)
    }

    /// The instant `us` microseconds after the start.
    pub fn instant_at(&self, us: u64) -> Instant {
        self.start + Duration::from_micros(us)
    }

    /// The origin.
    pub fn start(&self) -> Instant {
        self.start
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// `start + d`, or the latest instant this platform can represent on the way there when the
/// sum overflows (a deadline that never comes), for durations taken from the configuration.
pub fn instant_after(start: Instant, d: Duration) -> Instant {
    let mut d = d;
    loop {
        if let Some(t) = start.checked_add(d) {
            return t;
        }
        d /= 2;
    }
}

/// Seconds since the Unix epoch, from the system clock.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_after_saturates() {
        let t = Instant::now();
        assert_eq!(instant_after(t, Duration::from_secs(5)), t + Duration::from_secs(5));
        let far = instant_after(t, Duration::MAX);
        assert!(far > t + Duration::from_secs(100 * 365 * 86_400), "a deadline that never comes");
        assert!(instant_after(far, Duration::MAX) >= far, "never earlier than the start");
    }
}
