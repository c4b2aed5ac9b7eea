//! Per-tenant rate limiting of API calls with GCRA (the generic cell rate
//! algorithm, equivalent to a token bucket without a refill timer).
//!
//! Each tenant has one `AtomicU64` holding its theoretical arrival time (TAT)
//! in nanoseconds of monotonic time. With emission interval `T = 1 h / rate`
//! and burst `B`, a call at time `t` is allowed iff
//! `max(TAT, t) + T - B*T <= t`, and then TAT becomes `max(TAT, t) + T`.
//! The update is a compare-and-swap loop: no lock is held while checking.
//! `T` is rounded up to a whole nanosecond, so the limiter never allows more
//! than the configured rate.
//!
//! Time is passed in (`now`, a monotonic reading such as
//! [`aerolith_core::Clock::monotonic`]) so tests drive it with a
//! `ManualClock`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{RateLimitConfigError, RateLimited};
use crate::ids::TenantId;
use crate::tenant_shards::TenantShards;

const HOUR_NS: u64 = 3_600_000_000_000;
const MS_NS: u64 = 1_000_000;

/// Most calls per hour a limit may allow: one per nanosecond.
pub const CALLS_PER_HOUR_MAX: u64 = HOUR_NS;
/// [`RateLimit::from_calls_per_hour`] allows a burst of one minute's worth of
/// calls: `ceil(calls_per_hour / RATE_BURST_DIVISOR)`.
pub const RATE_BURST_DIVISOR: u64 = 60;

/// A validated rate: `calls_per_hour` sustained, with up to `burst` calls at
/// once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RateLimitFields", into = "RateLimitFields")]
pub struct RateLimit {
    calls_per_hour: u64,
    burst: u32,
}

#[derive(Serialize, Deserialize)]
struct RateLimitFields {
    calls_per_hour: u64,
    burst: u32,
}

impl TryFrom<RateLimitFields> for RateLimit {
    type Error = RateLimitConfigError;

    fn try_from(fields: RateLimitFields) -> Result<Self, Self::Error> {
        RateLimit::new(fields.calls_per_hour, fields.burst)
    }
}

impl From<RateLimit> for RateLimitFields {
    fn from(limit: RateLimit) -> Self {
        RateLimitFields {
            calls_per_hour: limit.calls_per_hour,
            burst: limit.burst,
        }
    }
}

impl RateLimit {
    /// A limit of `calls_per_hour` (1..=[`CALLS_PER_HOUR_MAX`]) with `burst`
    /// (at least 1) calls allowed at once.
    pub fn new(calls_per_hour: u64, burst: u32) -> Result<Self, RateLimitConfigError> {
        if calls_per_hour == 0 {
            return Err(RateLimitConfigError::ZeroCalls);
        }
        if calls_per_hour > CALLS_PER_HOUR_MAX {
            return Err(RateLimitConfigError::TooManyCalls {
                calls_per_hour,
                max: CALLS_PER_HOUR_MAX,
            });
        }
        if burst == 0 {
            return Err(RateLimitConfigError::ZeroBurst);
        }
        Ok(RateLimit {
            calls_per_hour,
            burst,
        })
    }

    /// A limit with the default burst of one minute's worth of calls (see
    /// [`RATE_BURST_DIVISOR`]), as used for a plan's `api_calls_per_hour`.
    pub fn from_calls_per_hour(calls_per_hour: u64) -> Result<Self, RateLimitConfigError> {
        let burst = calls_per_hour.div_ceil(RATE_BURST_DIVISOR).max(1);
        RateLimit::new(calls_per_hour, u32::try_from(burst).unwrap_or(u32::MAX))
    }

    /// Sustained calls per hour.
    pub fn calls_per_hour(&self) -> u64 {
        self.calls_per_hour
    }

    /// Calls allowed at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    fn emission_interval_ns(&self) -> u64 {
        HOUR_NS.div_ceil(self.calls_per_hour)
    }

    /// `B * T`: how far ahead of now the TAT may run after an allowed call.
    fn window_ns(&self) -> u64 {
        self.emission_interval_ns()
            .saturating_mul(u64::from(self.burst))
    }
}

struct Bucket {
    limit: Option<RateLimit>,
    tat_ns: AtomicU64,
}

/// GCRA rate limiter keyed by tenant. Tenants without an explicit limit use
/// the default given at construction (`None` = unlimited). One bucket (two
/// words) is kept per tenant seen; only authenticated tenants reach the
/// limiter, and [`RateLimiter::remove`] forgets a deleted one.
pub struct RateLimiter {
    default_limit: Option<RateLimit>,
    buckets: TenantShards<Bucket>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("default_limit", &self.default_limit)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter applying `default_limit` to tenants with no limit of their own.
    pub fn new(default_limit: Option<RateLimit>) -> Self {
        RateLimiter {
            default_limit,
            buckets: TenantShards::new(),
        }
    }

    /// Sets `tenant`'s limit (`None` = unlimited). Calls already counted
    /// stay counted: the TAT carries over. A call racing with the change may
    /// be counted against the old bucket only; limit changes are rare (plan
    /// changes), so this is accepted rather than locking the hot path.
    pub fn set_limit(&self, tenant: TenantId, limit: Option<RateLimit>) {
        self.buckets.update(tenant, |previous| Bucket {
            limit,
            tat_ns: AtomicU64::new(previous.map_or(0, |b| b.tat_ns.load(Ordering::Acquire))),
        });
    }

    /// Forgets `tenant` (for example when it is deleted).
    pub fn remove(&self, tenant: TenantId) {
        self.buckets.remove(tenant);
    }

    /// The limit that applies to `tenant`.
    pub fn limit(&self, tenant: TenantId) -> Option<RateLimit> {
        self.buckets
            .get(tenant)
            .map_or(self.default_limit, |bucket| bucket.limit)
    }

    /// Counts one call by `tenant` at monotonic time `now`, or refuses it
    /// with the time until the next call would be allowed.
    pub fn check(&self, tenant: TenantId, now: Duration) -> Result<(), RateLimited> {
        let bucket = self.buckets.get_or_insert_with(tenant, || Bucket {
            limit: self.default_limit,
            tat_ns: AtomicU64::new(0),
        });
        let Some(limit) = bucket.limit else {
            return Ok(());
        };
        let now_ns = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        let interval_ns = limit.emission_interval_ns();
        let window_ns = limit.window_ns();
        let mut tat_ns = bucket.tat_ns.load(Ordering::Acquire);
        // Each failed CAS means another call on this tenant succeeded, so the
        // loop ends after at most as many rounds as there are racing callers.
        loop {
            let new_tat_ns = tat_ns.max(now_ns).saturating_add(interval_ns);
            let allowed_at_ns = new_tat_ns.saturating_sub(window_ns);
            if allowed_at_ns > now_ns {
                return Err(RateLimited {
                    retry_after_ms: (allowed_at_ns - now_ns).div_ceil(MS_NS),
                    calls_per_hour: limit.calls_per_hour,
                    burst: limit.burst,
                });
            }
            match bucket.tat_ns.compare_exchange_weak(
                tat_ns,
                new_tat_ns,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(current) => tat_ns = current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emission_interval_rounds_up_so_the_rate_is_never_exceeded() {
        let limit = RateLimit::new(7, 1).expect("valid");
        assert!(limit.emission_interval_ns() * 7 >= HOUR_NS);
        assert_eq!(
            RateLimit::new(3600, 1)
                .expect("valid")
                .emission_interval_ns(),
            1_000_000_000
        );
    }

    #[test]
    fn default_burst_is_a_minute_of_calls() {
        assert_eq!(
            RateLimit::from_calls_per_hour(6000).expect("valid").burst(),
            100
        );
        assert_eq!(
            RateLimit::from_calls_per_hour(61).expect("valid").burst(),
            2
        );
        assert_eq!(RateLimit::from_calls_per_hour(1).expect("valid").burst(), 1);
    }
}
