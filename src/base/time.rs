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

/// Unix seconds as Core's `FormatISO8601DateTime` writes them (`2009-01-03T18:15:05Z`), by
/// the proleptic Gregorian calendar.
pub fn iso8601(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Days since 1970-01-01 to a civil date: shift the epoch to 0000-03-01, count 400-year
    // eras of 146,097 days, then years, then months of a March-based year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_matches_known_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        // Bitcoin's genesis block and a leap day.
        assert_eq!(iso8601(1_231_006_505), "2009-01-03T18:15:05Z");
        assert_eq!(iso8601(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn instant_after_saturates() {
        let t = Instant::now();
        assert_eq!(instant_after(t, Duration::from_secs(5)), t + Duration::from_secs(5));
        let far = instant_after(t, Duration::MAX);
        assert!(far > t + Duration::from_secs(100 * 365 * 86_400), "a deadline that never comes");
        assert!(instant_after(far, Duration::MAX) >= far, "never earlier than the start");
    }
}
