//! Time as a dependency. Everything in Aerolith that reads the wall clock or
//! measures elapsed time does it through [`Clock`], so tests can drive time by
//! hand ([`ManualClock`]) instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of time.
///
/// `now_unix_ms` is wall-clock time (milliseconds since the Unix epoch, UTC),
/// used for timestamps, expiries, billing periods. `monotonic` is for measuring
/// durations and deadlines; it never goes backwards.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    fn now_unix_ms(&self) -> i64;
    /// A monotonic instant, as a duration since an arbitrary fixed origin.
    fn monotonic(&self) -> Duration;
}

/// The real clock: `SystemTime` for wall time, `Instant` for monotonic time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

fn process_origin() -> std::time::Instant {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(std::time::Instant::now)
}

impl Clock for SystemClock {
    fn now_unix_ms(&self) -> i64 {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    }

    fn monotonic(&self) -> Duration {
        process_origin().elapsed()
    }
}

/// A clock that only moves when told to. Wall time and monotonic time advance
/// together. Cloning shares the same underlying time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now_unix_ms: Arc<AtomicI64>,
    origin_unix_ms: i64,
}

impl ManualClock {
    /// A clock frozen at `now_unix_ms`.
    pub fn new(now_unix_ms: i64) -> Self {
        ManualClock {
            now_unix_ms: Arc::new(AtomicI64::new(now_unix_ms)),
            origin_unix_ms: now_unix_ms,
        }
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by_ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.now_unix_ms.fetch_add(by_ms, Ordering::SeqCst);
    }

    /// Sets wall time. Moving backwards is allowed for wall time (clocks get
    /// corrected) but monotonic time never goes below its previous value.
    pub fn set_unix_ms(&self, now_unix_ms: i64) {
        self.now_unix_ms.store(now_unix_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix_ms(&self) -> i64 {
        self.now_unix_ms.load(Ordering::SeqCst)
    }

    fn monotonic(&self) -> Duration {
        let elapsed_ms = self
            .now_unix_ms()
            .saturating_sub(self.origin_unix_ms)
            .max(0);
        Duration::from_millis(u64::try_from(elapsed_ms).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_unix_ms(), 1_000);
        assert_eq!(clock.monotonic(), Duration::ZERO);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now_unix_ms(), 3_000);
        assert_eq!(clock.monotonic(), Duration::from_secs(2));
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_unix_ms() > 1_577_836_800_000);
    }
}
