use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aerolith_core::{Clock, ManualClock};
use aerolith_tenancy::{
    QuotaLimits, RateLimit, RateLimitConfigError, RateLimited, RateLimiter, TenantId,
    CALLS_PER_HOUR_MAX,
};

const TENANT: TenantId = TenantId::new(1);

fn limiter(calls_per_hour: u64, burst: u32) -> RateLimiter {
    RateLimiter::new(Some(
        RateLimit::new(calls_per_hour, burst).expect("valid limit"),
    ))
}

fn refused(result: Result<(), RateLimited>) -> u64 {
    match result {
        Err(error) => error.retry_after_ms,
        Ok(()) => panic!("expected RateLimited"),
    }
}

#[test]
fn burst_is_allowed_at_once_then_the_next_call_waits_one_interval() {
    // 3600 calls per hour = one call per second.
    let limiter = limiter(3600, 10);
    let clock = ManualClock::new(0);
    for call in 0..10 {
        assert_eq!(
            limiter.check(TENANT, clock.monotonic()),
            Ok(()),
            "call {call}"
        );
    }
    let error = limiter
        .check(TENANT, clock.monotonic())
        .expect_err("limited");
    assert_eq!(error.retry_after_ms, 1_000);
    assert_eq!((error.calls_per_hour, error.burst), (3600, 10));
}

#[test]
fn retry_after_counts_down_exactly_and_the_call_succeeds_at_zero() {
    let limiter = limiter(3600, 1);
    let clock = ManualClock::new(0);
    assert_eq!(limiter.check(TENANT, clock.monotonic()), Ok(()));
    assert_eq!(refused(limiter.check(TENANT, clock.monotonic())), 1_000);
    clock.advance(Duration::from_millis(1));
    assert_eq!(refused(limiter.check(TENANT, clock.monotonic())), 999);
    clock.advance(Duration::from_millis(998));
    assert_eq!(refused(limiter.check(TENANT, clock.monotonic())), 1);
    clock.advance(Duration::from_millis(1));
    assert_eq!(limiter.check(TENANT, clock.monotonic()), Ok(()));
    assert_eq!(refused(limiter.check(TENANT, clock.monotonic())), 1_000);
}

#[test]
fn retry_after_rounds_sub_millisecond_waits_up() {
    // 7 calls per hour: interval 514285714285.71 ns, rounded up to ...286 ns.
    let limiter = limiter(7, 1);
    assert_eq!(limiter.check(TENANT, Duration::ZERO), Ok(()));
    assert_eq!(refused(limiter.check(TENANT, Duration::ZERO)), 514_286);
    let just_before = Duration::from_nanos(514_285_714_285);
    assert_eq!(refused(limiter.check(TENANT, just_before)), 1);
    assert_eq!(
        limiter.check(TENANT, Duration::from_nanos(514_285_714_286)),
        Ok(())
    );
}

#[test]
fn exactly_burst_plus_one_per_interval_is_allowed_over_an_hour() {
    let limiter = limiter(3600, 10);
    let clock = ManualClock::new(1_700_000_000_000);
    let mut allowed = 0u64;
    // Every 100 ms for one hour, call until refused.
    for _ in 0..36_000 {
        while limiter.check(TENANT, clock.monotonic()).is_ok() {
            allowed += 1;
            assert!(allowed <= 10_000, "runaway");
        }
        clock.advance(Duration::from_millis(100));
    }
    // 10 at t=0, then one per whole second from 1 s to 3599 s.
    assert_eq!(allowed, 10 + 3599);
}

#[test]
fn idle_time_refills_at_most_the_burst() {
    let limiter = limiter(3600, 5);
    let clock = ManualClock::new(0);
    for _ in 0..5 {
        assert_eq!(limiter.check(TENANT, clock.monotonic()), Ok(()));
    }
    clock.advance(Duration::from_secs(3600));
    let mut allowed = 0;
    while limiter.check(TENANT, clock.monotonic()).is_ok() {
        allowed += 1;
        assert!(allowed <= 100, "runaway");
    }
    assert_eq!(allowed, 5);
}

#[test]
fn tenants_are_limited_independently() {
    let limiter = limiter(3600, 1);
    let now = Duration::from_secs(10);
    assert_eq!(limiter.check(TenantId::new(1), now), Ok(()));
    assert!(limiter.check(TenantId::new(1), now).is_err());
    assert_eq!(limiter.check(TenantId::new(2), now), Ok(()));
}

#[test]
fn per_tenant_limit_overrides_the_default_and_none_is_unlimited() {
    let limiter = limiter(3600, 1);
    let now = Duration::ZERO;
    limiter.set_limit(TenantId::new(1), None);
    for _ in 0..1_000 {
        assert_eq!(limiter.check(TenantId::new(1), now), Ok(()));
    }
    limiter.set_limit(
        TenantId::new(2),
        Some(RateLimit::new(3600, 3).expect("valid")),
    );
    for _ in 0..3 {
        assert_eq!(limiter.check(TenantId::new(2), now), Ok(()));
    }
    assert!(limiter.check(TenantId::new(2), now).is_err());
    assert_eq!(
        limiter.limit(TenantId::new(3)),
        Some(RateLimit::new(3600, 1).expect("valid"))
    );
}

#[test]
fn changing_a_limit_keeps_calls_already_counted() {
    let limiter = limiter(3600, 2);
    let now = Duration::ZERO;
    limiter.check(TENANT, now).expect("first");
    limiter.check(TENANT, now).expect("second");
    limiter.set_limit(TENANT, Some(RateLimit::new(3600, 3).expect("valid")));
    assert_eq!(limiter.check(TENANT, now), Ok(()));
    assert_eq!(refused(limiter.check(TENANT, now)), 1_000);
}

#[test]
fn racing_threads_get_exactly_the_burst() {
    let limiter = limiter(1, 500);
    let allowed = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| {
                for _ in 0..100 {
                    if limiter.check(TENANT, Duration::ZERO).is_ok() {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(allowed.load(Ordering::Relaxed), 500);
}

#[test]
fn invalid_limits_are_refused_with_their_exact_error() {
    assert_eq!(RateLimit::new(0, 1), Err(RateLimitConfigError::ZeroCalls));
    assert_eq!(RateLimit::new(1, 0), Err(RateLimitConfigError::ZeroBurst));
    assert_eq!(
        RateLimit::new(CALLS_PER_HOUR_MAX + 1, 1),
        Err(RateLimitConfigError::TooManyCalls {
            calls_per_hour: CALLS_PER_HOUR_MAX + 1,
            max: CALLS_PER_HOUR_MAX
        })
    );
    assert!(RateLimit::new(CALLS_PER_HOUR_MAX, 1).is_ok());
    assert!(serde_json::from_str::<RateLimit>(r#"{"calls_per_hour":0,"burst":1}"#).is_err());
}

#[test]
fn plan_limits_give_a_rate_limit_with_a_minute_of_burst() {
    let limits = QuotaLimits {
        api_calls_per_hour: Some(6_000),
        ..QuotaLimits::UNLIMITED
    };
    assert_eq!(
        limits.rate_limit(),
        Ok(Some(RateLimit::new(6_000, 100).expect("valid")))
    );
    assert_eq!(QuotaLimits::UNLIMITED.rate_limit(), Ok(None));
    let zero = QuotaLimits {
        api_calls_per_hour: Some(0),
        ..QuotaLimits::UNLIMITED
    };
    assert_eq!(zero.rate_limit(), Err(RateLimitConfigError::ZeroCalls));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The GCRA guarantee: over any interval `[a, b]` between two
        /// allowed calls, at most `burst + floor((b - a) / T)` calls are
        /// allowed, where `T` is the emission interval. And a refused call's
        /// retry-after is honest: calling at `now + retry_after` succeeds.
        #[test]
        fn allowed_calls_never_exceed_burst_plus_rate(
            calls_per_hour in 1u64..100_000,
            burst in 1u32..20,
            gaps_us in proptest::collection::vec(0u64..2_000_000, 1..300),
        ) {
            let limit = RateLimit::new(calls_per_hour, burst).expect("valid");
            let interval_ns = 3_600_000_000_000u64.div_ceil(calls_per_hour);
            let limiter = RateLimiter::new(Some(limit));
            let mut now_ns = 0u64;
            let mut allowed_at: Vec<u64> = Vec::new();
            for gap_us in gaps_us {
                now_ns += gap_us * 1_000;
                match limiter.check(TENANT, Duration::from_nanos(now_ns)) {
                    Ok(()) => allowed_at.push(now_ns),
                    Err(error) => {
                        prop_assert!(error.retry_after_ms >= 1);
                        // Probing would count a call, so only check
                        // that the wait is at most one interval, rounded up.
                        prop_assert!(error.retry_after_ms <= interval_ns.div_ceil(1_000_000));
                    }
                }
            }
            for (i, start) in allowed_at.iter().enumerate() {
                for (j, end) in allowed_at.iter().enumerate().skip(i) {
                    let count = (j - i + 1) as u64;
                    let bound = u64::from(burst) + (end - start) / interval_ns;
                    prop_assert!(count <= bound, "{count} calls in {} ns", end - start);
                }
            }
        }

        #[test]
        fn waiting_exactly_retry_after_is_enough(
            calls_per_hour in 1u64..100_000,
            burst in 1u32..5,
        ) {
            let limiter = RateLimiter::new(Some(RateLimit::new(calls_per_hour, burst).expect("valid")));
            let mut now = Duration::from_secs(1);
            for _ in 0..burst {
                prop_assert!(limiter.check(TENANT, now).is_ok());
            }
            let retry_after_ms = limiter.check(TENANT, now).expect_err("limited").retry_after_ms;
            now += Duration::from_millis(retry_after_ms);
            prop_assert!(limiter.check(TENANT, now).is_ok());
        }
    }
}
