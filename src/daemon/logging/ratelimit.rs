//! Per-call-site rate limit of unconditional log lines written to disk (Core's
//! `LogRateLimiter`, against disk-filling attacks, CVE-2025-54604): each source location may
//! write at most [`RATELIMIT_MAX_BYTES`] per [`RATELIMIT_WINDOW`]; then its lines stop going to
//! `debug.log` (the console is unaffected) until the window resets. I/O-free: the file layer
//! asks and writes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Core's `RATELIMIT_MAX_BYTES`.
pub const RATELIMIT_MAX_BYTES: u64 = 1024 * 1024;
/// Core's `RATELIMIT_WINDOW`.
pub const RATELIMIT_WINDOW: Duration = Duration::from_secs(60 * 60);

/// A call site: file and line.
pub type Site = (&'static str, u32);

/// What to do with one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write it.
    Write,
    /// Write it, then the given warning: this site is suppressed from now on.
    WriteThenSuppress(String),
    /// Drop it.
    Drop,
}

#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    used: u64,
    dropped: u64,
}

/// The limiter.
#[derive(Debug)]
pub struct RateLimiter {
    max_bytes: u64,
    window: Duration,
    window_start: Instant,
    sites: HashMap<Site, Stats>,
}

impl RateLimiter {
    /// A limiter whose window starts at `now`.
    pub fn new(max_bytes: u64, window: Duration, now: Instant) -> Self {
        RateLimiter { max_bytes, window, window_start: now, sites: HashMap::new() }
    }

    /// Whether some site is being suppressed (Core then prefixes every line with `[*] `).
    pub fn suppressing(&self) -> bool {
        self.sites.values().any(|s| s.dropped > 0)
    }

    /// Starts a new window if the current one is over; returns the "restarting" lines for the
    /// sites that dropped output in the old one.
    pub fn roll(&mut self, now: Instant) -> Vec<String> {
        if now < self.window_start + self.window {
            return Vec::new();
        }
        self.window_start = now;
        let secs = self.window.as_secs();
        let mut out: Vec<String> = std::mem::take(&mut self.sites)
            .into_iter()
            .filter(|(_, s)| s.dropped > 0)
            .map(|((file, line), s)| {
                format!(
                    "Restarting logging from {file}:{line}: {} bytes were dropped during the last {secs}s.",
                    s.dropped
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Accounts a line of `bytes` from `site`.
    pub fn consume(&mut self, site: Site, bytes: u64) -> Verdict {
        let max = self.max_bytes;
        let s = self.sites.entry(site).or_default();
        if s.dropped > 0 {
            s.dropped += bytes;
            return Verdict::Drop;
        }
        if s.used + bytes <= max {
            s.used += bytes;
            return Verdict::Write;
        }
        s.dropped += bytes;
        Verdict::WriteThenSuppress(format!(
            "Excessive logging detected from {}:{}: >{max} bytes logged during the last time window of {}s. \
             Suppressing logging to disk from this source location until time window resets. Console logging \
             unaffected. Last log entry.",
            site.0,
            site.1,
            self.window.as_secs()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_is_suppressed_past_its_budget_until_the_window_resets() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(100, Duration::from_secs(3600), t0);
        let a = ("net.rs", 10);
        let b = ("node.rs", 20);
        assert_eq!(r.consume(a, 60), Verdict::Write);
        assert_eq!(r.consume(a, 40), Verdict::Write);
        assert!(!r.suppressing());
        assert!(
            matches!(r.consume(a, 1), Verdict::WriteThenSuppress(w) if w.contains("net.rs:10") && w.contains(">100 bytes"))
        );
        assert!(r.suppressing());
        assert_eq!(r.consume(a, 50), Verdict::Drop);
        // Other sites are not affected.
        assert_eq!(r.consume(b, 100), Verdict::Write);
        // Within the window nothing changes; after it the site writes again and the drop is reported.
        assert!(r.roll(t0 + Duration::from_secs(3599)).is_empty());
        let restarted = r.roll(t0 + Duration::from_secs(3600));
        assert_eq!(restarted, vec!["Restarting logging from net.rs:10: 51 bytes were dropped during the last 3600s."]);
        assert!(!r.suppressing());
        assert_eq!(r.consume(a, 100), Verdict::Write);
    }
}
