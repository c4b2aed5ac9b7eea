use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Barrier;

use aerolith_tenancy::{ConcurrencyLimited, ConcurrencyLimiter, TenantId};

const TENANT: TenantId = TenantId::new(1);

#[test]
fn permits_up_to_the_limit_then_refuses_with_the_limit() {
    let limiter = ConcurrencyLimiter::new(Some(2));
    let a = limiter.acquire(TENANT).expect("first");
    let _b = limiter.acquire(TENANT).expect("second");
    assert_eq!(limiter.in_flight(TENANT), 2);
    assert!(matches!(
        limiter.acquire(TENANT),
        Err(ConcurrencyLimited { limit: 2, .. })
    ));
    drop(a);
    assert_eq!(limiter.in_flight(TENANT), 1);
    assert!(limiter.acquire(TENANT).is_ok());
}

#[test]
fn permits_are_released_on_drop_even_on_early_return() {
    let limiter = ConcurrencyLimiter::new(Some(1));
    fn failing_request(limiter: &ConcurrencyLimiter) -> Result<(), &'static str> {
        let _permit = limiter.acquire(TENANT).map_err(|_| "limited")?;
        Err("the request itself failed")
    }
    for _ in 0..3 {
        assert_eq!(failing_request(&limiter), Err("the request itself failed"));
    }
    assert_eq!(limiter.in_flight(TENANT), 0);
}

#[test]
fn tenants_have_separate_slots_and_overrides() {
    let limiter = ConcurrencyLimiter::new(Some(1));
    let _a = limiter.acquire(TenantId::new(1)).expect("tenant 1");
    let _b = limiter.acquire(TenantId::new(2)).expect("tenant 2");
    limiter.set_limit(TenantId::new(3), None);
    let many: Vec<_> = (0..100)
        .map(|_| limiter.acquire(TenantId::new(3)).expect("unlimited"))
        .collect();
    assert_eq!(limiter.in_flight(TenantId::new(3)), 100);
    drop(many);
    assert_eq!(limiter.in_flight(TenantId::new(3)), 0);
}

#[test]
fn lowering_the_limit_keeps_permits_out_counted() {
    let limiter = ConcurrencyLimiter::new(Some(3));
    let held: Vec<_> = (0..3)
        .map(|_| limiter.acquire(TENANT).expect("slot"))
        .collect();
    limiter.set_limit(TENANT, Some(2));
    assert!(matches!(
        limiter.acquire(TENANT),
        Err(ConcurrencyLimited { limit: 2, .. })
    ));
    drop(held);
    assert_eq!(limiter.in_flight(TENANT), 0);
    assert!(limiter.acquire(TENANT).is_ok());
}

#[test]
fn racing_threads_never_exceed_the_limit() {
    const LIMIT: u32 = 5;
    let limiter = ConcurrencyLimiter::new(Some(LIMIT));
    let inside = AtomicU32::new(0);
    let peak = AtomicU32::new(0);
    let barrier = Barrier::new(32);
    std::thread::scope(|scope| {
        for _ in 0..32 {
            scope.spawn(|| {
                barrier.wait();
                for _ in 0..2_000 {
                    if let Ok(_permit) = limiter.acquire(TENANT) {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert!(peak.load(Ordering::SeqCst) <= LIMIT);
    assert_eq!(limiter.in_flight(TENANT), 0);
}
