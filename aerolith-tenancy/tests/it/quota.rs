use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;

use aerolith_tenancy::{
    LimitOverride, QuotaExceeded, QuotaGauge, QuotaKind, QuotaLimits, QuotaOverride, QuotaUsage,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

fn limits(bytes: Option<u64>, docs: Option<u64>, collections: Option<u64>) -> QuotaLimits {
    QuotaLimits {
        storage_bytes_max: bytes,
        documents_max: docs,
        collections_max: collections,
        ..QuotaLimits::UNLIMITED
    }
}

fn usage(storage_bytes: u64, documents: u64, collections: u64) -> QuotaUsage {
    QuotaUsage {
        storage_bytes,
        documents,
        collections,
    }
}

fn exceeded(error: QuotaExceeded) -> (QuotaKind, u64, u64, u64) {
    (
        error.limit,
        error.limit_value,
        error.current,
        error.requested,
    )
}

#[test]
fn reservation_up_to_the_limit_succeeds_and_one_past_is_refused() {
    let gauge = QuotaGauge::new(limits(Some(100), Some(10), Some(2)));
    gauge
        .reserve(100, 10, 2)
        .expect("exactly at the limits")
        .commit();
    assert_eq!(gauge.usage(), usage(100, 10, 2));
    let error = gauge.reserve(1, 0, 0).expect_err("one byte past");
    assert_eq!(exceeded(error), (QuotaKind::StorageBytes, 100, 100, 1));
    let error = gauge.reserve(0, 1, 0).expect_err("one doc past");
    assert_eq!(exceeded(error), (QuotaKind::Documents, 10, 10, 1));
    let error = gauge.reserve(0, 0, 1).expect_err("one collection past");
    assert_eq!(exceeded(error), (QuotaKind::Collections, 2, 2, 1));
}

#[test]
fn error_counts_reservations_in_flight_as_current_use() {
    let gauge = QuotaGauge::new(limits(Some(100), None, None));
    let held = gauge.reserve(60, 0, 0).expect("fits");
    let error = gauge
        .reserve(50, 0, 0)
        .expect_err("does not fit beside the held one");
    assert_eq!(exceeded(error), (QuotaKind::StorageBytes, 100, 60, 50));
    let message = error.to_string();
    assert!(message.contains("storage bytes") && message.contains("100") && message.contains("60"));
    drop(held);
    assert!(gauge.reserve(100, 0, 0).is_ok());
}

#[test]
fn storage_is_checked_before_documents_before_collections() {
    let gauge = QuotaGauge::new(limits(Some(0), Some(0), Some(0)));
    assert_eq!(
        gauge.reserve(1, 1, 1).map_err(|e| e.limit).err(),
        Some(QuotaKind::StorageBytes)
    );
    assert_eq!(
        gauge.reserve(0, 1, 1).map_err(|e| e.limit).err(),
        Some(QuotaKind::Documents)
    );
    assert_eq!(
        gauge.reserve(0, 0, 1).map_err(|e| e.limit).err(),
        Some(QuotaKind::Collections)
    );
}

#[test]
fn refused_reservation_holds_nothing() {
    let gauge = QuotaGauge::new(limits(Some(100), Some(1), None));
    assert!(gauge.reserve(50, 2, 0).is_err());
    assert_eq!(gauge.reserved(), QuotaUsage::default());
    assert!(gauge.reserve(100, 1, 0).is_ok());
}

#[test]
fn dropped_reservation_is_released_and_committed_one_is_kept() {
    let gauge = QuotaGauge::new(limits(Some(100), None, None));
    let reservation = gauge.reserve(70, 1, 0).expect("fits");
    assert_eq!(gauge.reserved(), usage(70, 1, 0));
    assert_eq!(gauge.usage(), QuotaUsage::default());
    drop(reservation);
    assert_eq!(gauge.reserved(), QuotaUsage::default());
    let reservation = gauge.reserve(70, 1, 0).expect("fits again");
    assert_eq!(reservation.deltas(), (70, 1, 0));
    reservation.commit();
    assert_eq!(gauge.usage(), usage(70, 1, 0));
    assert_eq!(gauge.reserved(), QuotaUsage::default());
}

#[test]
fn deletes_never_fail_and_apply_only_on_commit() {
    let gauge = QuotaGauge::with_usage(limits(Some(100), Some(10), Some(1)), usage(150, 12, 3));
    // Above every limit (limits were lowered), yet deletes go through.
    let delete = gauge.reserve(-60, -3, -2).expect("deletes never fail");
    assert_eq!(
        gauge.usage(),
        usage(150, 12, 3),
        "nothing applied before commit"
    );
    delete.commit();
    assert_eq!(gauge.usage(), usage(90, 9, 1));
    // A failed delete (dropped) leaves use as it was.
    drop(gauge.reserve(-90, -9, -1).expect("deletes never fail"));
    assert_eq!(gauge.usage(), usage(90, 9, 1));
}

#[test]
fn space_freed_by_a_pending_delete_cannot_be_used_yet() {
    let gauge = QuotaGauge::with_usage(limits(Some(100), None, None), usage(100, 0, 0));
    let delete = gauge.reserve(-50, 0, 0).expect("deletes never fail");
    assert!(gauge.reserve(10, 0, 0).is_err());
    delete.commit();
    assert!(gauge.reserve(50, 0, 0).is_ok());
}

#[test]
fn mixed_delta_checks_only_the_growing_parts() {
    let gauge = QuotaGauge::with_usage(limits(Some(100), Some(5), None), usage(100, 5, 0));
    // An update that shrinks the document but adds nothing else passes even
    // though storage and documents are at their limits.
    gauge.reserve(-10, 0, 0).expect("shrink").commit();
    let error = gauge
        .reserve(20, -1, 0)
        .expect_err("grows storage past the limit");
    assert_eq!(exceeded(error), (QuotaKind::StorageBytes, 100, 90, 20));
}

#[test]
fn commit_below_zero_stops_at_zero() {
    let gauge = QuotaGauge::new(QuotaLimits::UNLIMITED);
    gauge
        .reserve(-5, -5, -5)
        .expect("deletes never fail")
        .commit();
    assert_eq!(gauge.usage(), QuotaUsage::default());
}

#[test]
fn set_usage_initialises_from_engine_accounting() {
    let gauge = QuotaGauge::new(limits(Some(1_000), None, None));
    gauge.set_usage(usage(990, 4, 1));
    assert_eq!(gauge.usage(), usage(990, 4, 1));
    assert!(gauge.reserve(10, 0, 0).is_ok());
    let error = gauge.reserve(11, 0, 0).expect_err("past the limit");
    assert_eq!(exceeded(error), (QuotaKind::StorageBytes, 1_000, 990, 11));
}

#[test]
fn unlimited_kinds_never_refuse() {
    let gauge = QuotaGauge::new(QuotaLimits::UNLIMITED);
    for _ in 0..3 {
        gauge.reserve(i64::MAX, 1, 1).expect("unlimited").commit();
    }
    // Three times i64::MAX bytes does not fit in u64: use saturates.
    assert_eq!(gauge.usage(), usage(u64::MAX, 3, 3));
}

#[test]
fn lowering_limits_keeps_use_and_refuses_only_growth() {
    let gauge = QuotaGauge::with_usage(limits(None, Some(100), None), usage(0, 50, 0));
    gauge.set_limits(limits(None, Some(10), None));
    assert_eq!(gauge.limits().documents_max, Some(10));
    assert_eq!(gauge.usage().documents, 50);
    assert!(gauge.reserve(0, 1, 0).is_err());
    assert!(gauge.reserve(100, 0, 1).is_ok());
}

#[test]
fn plan_and_override_merge_field_by_field() {
    let plan = QuotaLimits {
        storage_bytes_max: Some(1 << 30),
        documents_max: Some(100_000),
        collections_max: Some(20),
        api_calls_per_hour: Some(10_000),
        concurrent_requests_max: Some(8),
        query_duration_ms_max: Some(2_000),
    };
    let over = QuotaOverride {
        storage_bytes_max: LimitOverride::Limit(5 << 30),
        collections_max: LimitOverride::Unlimited,
        concurrent_requests_max: LimitOverride::Limit(32),
        ..QuotaOverride::default()
    };
    let merged = plan.with_override(&over);
    assert_eq!(
        merged,
        QuotaLimits {
            storage_bytes_max: Some(5 << 30),
            documents_max: Some(100_000),
            collections_max: None,
            api_calls_per_hour: Some(10_000),
            concurrent_requests_max: Some(32),
            query_duration_ms_max: Some(2_000),
        }
    );
    assert_eq!(plan.with_override(&QuotaOverride::default()), plan);
    assert_eq!(merged.get(QuotaKind::ConcurrentRequests), Some(32));
    assert_eq!(merged.get(QuotaKind::Collections), None);
}

#[test]
fn limits_and_overrides_have_a_stable_json_form() {
    let limits: QuotaLimits =
        serde_json::from_str(r#"{"documents_max": 10}"#).expect("missing fields are unlimited");
    assert_eq!(
        limits,
        QuotaLimits {
            documents_max: Some(10),
            ..QuotaLimits::UNLIMITED
        }
    );
    assert!(serde_json::from_str::<QuotaLimits>(r#"{"document_max": 10}"#).is_err());
    let over: QuotaOverride = serde_json::from_str(
        r#"{"storage_bytes_max": {"limit": 5}, "documents_max": "unlimited"}"#,
    )
    .expect("parses");
    assert_eq!(over.storage_bytes_max, LimitOverride::Limit(5));
    assert_eq!(over.documents_max, LimitOverride::Unlimited);
    assert_eq!(over.collections_max, LimitOverride::Inherit);
    let json = serde_json::to_string(&over).expect("serializes");
    assert_eq!(
        serde_json::from_str::<QuotaOverride>(&json).expect("parses"),
        over
    );
}

/// 64 threads race to fill one tenant's quota with random reservations,
/// committing most and abandoning some, with occasional deletes of their own
/// earlier writes. At every step use in flight stays within the limits, and
/// at the end committed use equals the sum of committed deltas exactly.
#[test]
fn sixty_four_threads_racing_never_exceed_the_quota_by_one_byte_or_document() {
    const THREADS: u64 = 64;
    const STEPS: usize = 400;
    const BYTES_MAX: u64 = 200_000;
    const DOCS_MAX: u64 = 1_500;
    const COLLECTIONS_MAX: u64 = 40;
    let gauge = QuotaGauge::new(limits(
        Some(BYTES_MAX),
        Some(DOCS_MAX),
        Some(COLLECTIONS_MAX),
    ));
    let committed_bytes = AtomicU64::new(0);
    let committed_docs = AtomicU64::new(0);
    let committed_collections = AtomicU64::new(0);
    let refusals = AtomicU64::new(0);
    let barrier = Barrier::new(THREADS as usize);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (gauge, barrier) = (&gauge, &barrier);
            let (committed_bytes, committed_docs, committed_collections, refusals) = (
                &committed_bytes,
                &committed_docs,
                &committed_collections,
                &refusals,
            );
            scope.spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(thread);
                let mut own = (0u64, 0u64, 0u64);
                barrier.wait();
                for _ in 0..STEPS {
                    let deleting = own.1 > 0 && rng.random_ratio(1, 20);
                    let delta = if deleting {
                        let docs = rng.random_range(1..=own.1);
                        let bytes = rng.random_range(0..=own.0);
                        (-(bytes as i64), -(docs as i64), 0i64)
                    } else {
                        let collections = i64::from(rng.random_ratio(1, 50));
                        (
                            rng.random_range(1..=400),
                            rng.random_range(1..=3),
                            collections,
                        )
                    };
                    match gauge.reserve(delta.0, delta.1, delta.2) {
                        Ok(reservation) => {
                            let in_use = gauge.in_use();
                            assert!(in_use.storage_bytes <= BYTES_MAX, "{in_use:?}");
                            assert!(in_use.documents <= DOCS_MAX, "{in_use:?}");
                            assert!(in_use.collections <= COLLECTIONS_MAX, "{in_use:?}");
                            if rng.random_ratio(3, 4) {
                                reservation.commit();
                                own.0 = own.0.saturating_add_signed(delta.0);
                                own.1 = own.1.saturating_add_signed(delta.1);
                                own.2 = own.2.saturating_add_signed(delta.2);
                                let add = |counter: &AtomicU64, d: i64| {
                                    if d >= 0 {
                                        counter.fetch_add(d as u64, Ordering::SeqCst);
                                    } else {
                                        counter.fetch_sub(d.unsigned_abs(), Ordering::SeqCst);
                                    }
                                };
                                add(committed_bytes, delta.0);
                                add(committed_docs, delta.1);
                                add(committed_collections, delta.2);
                            }
                        }
                        Err(error) => {
                            assert!(!deleting, "deletes never fail");
                            assert!(error.current + error.requested > error.limit_value);
                            refusals.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    let final_usage = gauge.usage();
    assert_eq!(gauge.reserved(), QuotaUsage::default());
    assert_eq!(
        final_usage,
        usage(
            committed_bytes.load(Ordering::SeqCst),
            committed_docs.load(Ordering::SeqCst),
            committed_collections.load(Ordering::SeqCst)
        )
    );
    assert!(final_usage.storage_bytes <= BYTES_MAX);
    assert!(final_usage.documents <= DOCS_MAX);
    assert!(final_usage.collections <= COLLECTIONS_MAX);
    assert!(
        refusals.load(Ordering::Relaxed) > 0,
        "the race must actually hit the quota"
    );
}

/// Unit-sized reservations from 64 threads fill the quota exactly to the
/// limit: not one more, not one less.
#[test]
fn sixty_four_threads_fill_a_document_quota_exactly_to_the_limit() {
    const DOCS_MAX: u64 = 1_000;
    const BYTES_MAX: u64 = 3_000;
    let gauge = QuotaGauge::new(limits(Some(BYTES_MAX), Some(DOCS_MAX), None));
    let successes = AtomicU64::new(0);
    let barrier = Barrier::new(64);
    std::thread::scope(|scope| {
        for _ in 0..64 {
            scope.spawn(|| {
                barrier.wait();
                for _ in 0..50 {
                    if let Ok(reservation) = gauge.reserve(3, 1, 0) {
                        reservation.commit();
                        successes.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(successes.load(Ordering::SeqCst), DOCS_MAX);
    assert_eq!(gauge.usage(), usage(BYTES_MAX, DOCS_MAX, 0));
}

#[derive(Debug, Clone)]
enum Op {
    Reserve(i64, i64, i64),
    Commit(usize),
    Drop(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (-50i64..100, -3i64..5, -1i64..2).prop_map(|(b, d, c)| Op::Reserve(b, d, c)),
        2 => any::<usize>().prop_map(Op::Commit),
        1 => any::<usize>().prop_map(Op::Drop),
    ]
}

proptest! {
    /// The gauge against a model: committed use is the clamped sum of
    /// committed deltas, and a reservation succeeds iff its positive parts
    /// fit beside committed use plus open reservations.
    #[test]
    fn gauge_matches_a_simple_model(ops in proptest::collection::vec(op(), 0..60)) {
        let max = [300u64, 10, 3];
        let gauge = QuotaGauge::new(limits(Some(max[0]), Some(max[1]), Some(max[2])));
        // Signed: a commit may take use below zero for a while (settlements
        // arrive out of order); the gauge reports that as zero.
        let mut committed = [0i128; 3];
        let shown = |c: i128| c.max(0) as u64;
        let mut open: Vec<(aerolith_tenancy::Reservation, [i64; 3])> = Vec::new();
        for op in ops {
            match op {
                Op::Reserve(b, d, c) => {
                    let delta = [b, d, c];
                    let held: Vec<u64> = (0..3)
                        .map(|i| open.iter().map(|(_, r)| r[i].max(0) as u64).sum())
                        .collect();
                    let fits = (0..3).all(|i| delta[i] <= 0 || shown(committed[i]) + held[i] + delta[i] as u64 <= max[i]);
                    match gauge.reserve(b, d, c) {
                        Ok(reservation) => {
                            prop_assert!(fits);
                            open.push((reservation, delta));
                        }
                        Err(_) => prop_assert!(!fits),
                    }
                }
                Op::Commit(index) if !open.is_empty() => {
                    let (reservation, delta) = open.remove(index % open.len());
                    reservation.commit();
                    for i in 0..3 {
                        committed[i] += i128::from(delta[i]);
                    }
                }
                Op::Drop(index) if !open.is_empty() => {
                    let (reservation, _) = open.remove(index % open.len());
                    drop(reservation);
                }
                Op::Commit(_) | Op::Drop(_) => {}
            }
            prop_assert_eq!(
                gauge.usage(),
                usage(shown(committed[0]), shown(committed[1]), shown(committed[2]))
            );
        }
    }
}
