//! Storage metering: samples of stored bytes become `storage_byte_seconds`
//! ledger hours, split at hour boundaries, integer-exact, and resumed after
//! a restart without counting an interval twice or losing one.

use std::collections::BTreeMap;
use std::sync::Arc;

use aerolith_billing::metering::{
    byte_seconds_by_hour, EngineLedger, SampleState, SamplerError, StorageSample, StorageSampler,
    TenantKey, UsageLedger, HOUR_MS, SAMPLE_SPAN_HOURS_MAX, STORAGE_BYTE_SECONDS,
};
use aerolith_core::{Database, Durability, ManualClock, MasterKey, Options};
use aerolith_tenancy::{
    default_plans, IsolationMode, NewTenant, Principal, QuotaLimits, RecordingSink, Slug, Tenancy,
    TenancyOptions,
};
use proptest::prelude::*;
use serde_json::json;

// 2026-03-02T10:00:00Z, an hour boundary.
const T0: i64 = 1_772_445_600_000;
const MINUTE_MS: i64 = 60_000;

fn open_db(dir: &std::path::Path) -> Database {
    Database::open(dir, Options::default().durability(Durability::Never)).expect("opens")
}

fn open(dir: &std::path::Path) -> (Arc<EngineLedger>, StorageSampler) {
    let ledger = Arc::new(EngineLedger::open(open_db(dir)).expect("ledger"));
    let sampler = StorageSampler::open(ledger.clone()).expect("sampler");
    (ledger, sampler)
}

/// `(hour_start, byte_seconds)` of every stored hour of `tenant`.
fn hours(ledger: &dyn UsageLedger, tenant: &str) -> Vec<(i64, u64)> {
    ledger
        .query(tenant, STORAGE_BYTE_SECONDS, i64::MIN, i64::MAX)
        .expect("reads")
        .iter()
        .map(|e| (e.hour_start_unix_ms, e.quantity))
        .collect()
}

#[test]
fn an_interval_spanning_three_hours_yields_three_ledger_hours() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ledger, sampler) = open(dir.path());
    // 1,000 bytes from 10:50 to 12:10.
    sampler
        .sample("7", 1_000, T0 + 50 * MINUTE_MS)
        .expect("first");
    let report = sampler
        .sample("7", 4_000, T0 + 2 * HOUR_MS + 10 * MINUTE_MS)
        .expect("second");
    // 10:50-11:00: 1,000 B x 600 s = 600,000; 11:00-12:00: x 3,600 s =
    // 3,600,000; 12:00-12:10: x 600 s = 600,000.
    assert_eq!(
        hours(ledger.as_ref(), "7"),
        vec![
            (T0, 600_000),
            (T0 + HOUR_MS, 3_600_000),
            (T0 + 2 * HOUR_MS, 600_000)
        ]
    );
    assert_eq!(report.entries_written, 3);
    assert_eq!(report.byte_seconds, 4_800_000);
    assert_eq!(
        sampler.state("7"),
        Some(SampleState {
            bytes: 4_000,
            at_unix_ms: T0 + 2 * HOUR_MS + 10 * MINUTE_MS,
            carry_byte_ms: 0
        })
    );
}

#[test]
fn sub_second_remainders_are_carried_not_rounded_away() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ledger, sampler) = open(dir.path());
    // 3 bytes for 3 x 500 ms = 4,500 byte-ms: 4 byte-seconds written, 500
    // byte-ms carried. Rounding each sample down would have written 3.
    sampler.sample("7", 3, T0).expect("samples");
    for i in 1..=3 {
        sampler.sample("7", 3, T0 + i * 500).expect("samples");
    }
    assert_eq!(hours(ledger.as_ref(), "7"), vec![(T0, 4)]);
    assert_eq!(sampler.state("7").map(|s| s.carry_byte_ms), Some(500));
    // The carry completes a byte-second in the hour where the integral
    // crosses it: 999 carried + 1 B x 500 ms before 11:00 = 1,499 -> one
    // byte-second in the 10:00 hour, 499 carried; + 1 B x 250 ms after
    // 11:00 = 749, still below a byte-second, so the 11:00 hour gets nothing.
    let (pieces, carry) = byte_seconds_by_hour(
        "x",
        SampleState {
            bytes: 1,
            at_unix_ms: T0 + HOUR_MS - 500,
            carry_byte_ms: 999,
        },
        T0 + HOUR_MS + 250,
    )
    .expect("splits");
    assert_eq!((pieces, carry), (vec![(T0, 1)], 749));
}

#[test]
fn state_survives_a_restart_without_double_counting_or_loss() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let (_ledger, sampler) = open(dir.path());
        sampler.sample("7", 2_000, T0).expect("samples");
        sampler.sample("7", 5_000, T0 + 1_500).expect("samples");
        // 2,000 B x 1.5 s = 3,000 byte-seconds written.
    }
    let (ledger, sampler) = open(dir.path());
    assert_eq!(
        sampler.state("7"),
        Some(SampleState {
            bytes: 5_000,
            at_unix_ms: T0 + 1_500,
            carry_byte_ms: 0
        })
    );
    // The interval across the restart continues from the committed sample:
    // 5,000 B x 10 s = 50,000 byte-seconds.
    sampler.sample("7", 5_000, T0 + 11_500).expect("samples");
    assert_eq!(hours(ledger.as_ref(), "7"), vec![(T0, 53_000)]);
}

#[test]
fn out_of_order_and_overlong_intervals_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ledger, sampler) = open(dir.path());
    sampler.sample("7", 10, T0).expect("samples");
    assert!(matches!(
        sampler.sample("7", 10, T0 - 1),
        Err(SamplerError::OutOfOrder {
            at_unix_ms,
            latest_unix_ms: T0,
            ..
        }) if at_unix_ms == T0 - 1
    ));
    // The last hour allowed is the SAMPLE_SPAN_HOURS_MAX-th one touched.
    assert!(matches!(
        sampler.sample("7", 10, T0 + SAMPLE_SPAN_HOURS_MAX * HOUR_MS),
        Err(SamplerError::SpanTooLong { span_hours, .. }) if span_hours == SAMPLE_SPAN_HOURS_MAX + 1
    ));
    // Over 5 PB for a whole hour does not fit a u64 of byte-seconds.
    sampler.sample("7", u64::MAX, T0 + 1).expect("samples");
    assert!(matches!(
        sampler.sample("7", 0, T0 + HOUR_MS),
        Err(SamplerError::Overflow { .. })
    ));
    assert_eq!(hours(ledger.as_ref(), "7"), vec![]);
    assert_eq!(sampler.state("7").map(|s| s.carry_byte_ms), Some(10));
}

#[test]
fn sample_all_meters_every_live_tenant_without_a_key_and_closes_deleted_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(T0));
    let sink = Arc::new(RecordingSink::new());
    let mut plans = default_plans();
    plans.insert("unlimited".to_owned(), QuotaLimits::UNLIMITED);
    let tenancy = Tenancy::open(
        dir.path().join("tenancy"),
        TenancyOptions {
            master_key: MasterKey::from_bytes([3; 32]),
            clock: clock.clone(),
            usage_sink: sink.clone(),
            plans,
            durability: Durability::Never,
        },
    )
    .expect("tenancy");
    let create = |slug: &str, isolation| {
        tenancy
            .create_tenant(
                &Principal::Operator,
                NewTenant {
                    name: slug.to_owned(),
                    slug: Slug::new(slug).expect("slug"),
                    plan: "unlimited".to_owned(),
                    isolation,
                },
            )
            .expect("creates")
            .tenant
    };
    let shared = create("acme", IsolationMode::Shared);
    let dedicated = create("globex", IsolationMode::Dedicated);
    for (tenant, docs) in [(&shared, 3), (&dedicated, 5)] {
        let handle = tenancy
            .handle(&Principal::Operator, tenant.id)
            .expect("handle");
        handle.create_collection("notes").expect("collection");
        for i in 0..docs {
            handle
                .insert("notes", json!({"i": i, "text": "x".repeat(100)}))
                .expect("inserts");
        }
    }
    let bytes_of = |id| {
        tenancy
            .handle(&Principal::Operator, id)
            .expect("handle")
            .quota_committed()
            .storage_bytes
    };
    let (shared_bytes, dedicated_bytes) = (bytes_of(shared.id), bytes_of(dedicated.id));
    assert!(shared_bytes > 0 && dedicated_bytes > shared_bytes);
    let events_before = sink.events().len();

    let ledger_dir = dir.path().join("billing");
    let (ledger, sampler) = open(&ledger_dir);
    let first = sampler.sample_all(&tenancy, T0).expect("samples");
    assert_eq!((first.samples, first.entries_written), (2, 0));
    let second = sampler
        .sample_all(&tenancy, T0 + 90 * MINUTE_MS)
        .expect("samples");
    assert_eq!(second.entries_written, 4, "two tenants x two hours");
    assert_eq!(
        sink.events().len(),
        events_before,
        "sampling is not an API call"
    );
    let key = |id| TenantKey::new(id).as_str().to_owned();
    assert_eq!(
        hours(ledger.as_ref(), &key(shared.id)),
        vec![
            (T0, shared_bytes * 3_600),
            (T0 + HOUR_MS, shared_bytes * 1_800)
        ]
    );

    // Deleted at 12:00; sampled again at 12:30: its last interval is closed
    // at the deletion and its state removed.
    clock.set_unix_ms(T0 + 2 * HOUR_MS);
    tenancy
        .delete_tenant(&Principal::Operator, dedicated.id)
        .expect("deletes");
    let third = sampler
        .sample_all(&tenancy, T0 + 150 * MINUTE_MS)
        .expect("samples");
    assert_eq!(third.tenants_closed, 1);
    assert_eq!(sampler.state(&key(dedicated.id)), None);
    assert_eq!(
        hours(ledger.as_ref(), &key(dedicated.id)),
        vec![
            (T0, dedicated_bytes * 3_600),
            (T0 + HOUR_MS, dedicated_bytes * 3_600)
        ]
    );
    drop((sampler, ledger));
    let (_, reopened) = open(&ledger_dir);
    assert_eq!(reopened.state(&key(dedicated.id)), None);
    assert_eq!(
        reopened.state(&key(shared.id)).map(|s| s.at_unix_ms),
        Some(T0 + 150 * MINUTE_MS)
    );
}

/// Hour totals the exact integral implies: with `C(t)` the byte-ms
/// integrated from the first sample to `t`, hour `h` receives
/// `floor(C(end of h) / 1000) - floor(C(start of h) / 1000)`.
fn expected_hours(segments: &[(u64, i64)], start: i64) -> (BTreeMap<i64, u64>, u128) {
    let mut cumulative = 0u128;
    let mut written = 0u128;
    let mut out = BTreeMap::new();
    let mut at = start;
    for &(bytes, duration_ms) in segments {
        let end = at + duration_ms;
        while at < end {
            let hour = at.div_euclid(HOUR_MS) * HOUR_MS;
            let to = end.min(hour + HOUR_MS);
            cumulative += u128::from(bytes) * u128::try_from(to - at).expect("positive");
            let now_written = cumulative / 1_000;
            if now_written > written {
                *out.entry(hour).or_insert(0) +=
                    u64::try_from(now_written - written).expect("fits");
                written = now_written;
            }
            at = to;
        }
    }
    (out, cumulative)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A piecewise-constant size function, sampled at its changes plus
    /// arbitrary extra points: the byte-seconds written plus the carry equal
    /// the exact integral, and every hour gets what the integral implies,
    /// however the samples split the function.
    #[test]
    fn total_byte_seconds_equal_the_exact_integral_however_sampled(
        start_offset_ms in 0i64..HOUR_MS,
        segments in prop::collection::vec((0u64..5_000_000_000, 1i64..3 * HOUR_MS), 1..8),
        extra_cuts_permille in prop::collection::vec(0i64..1_000, 0..12),
    ) {
        let start = T0 + start_offset_ms;
        let mut samples = Vec::new();
        let mut at = start;
        for (i, &(bytes, duration_ms)) in segments.iter().enumerate() {
            samples.push((bytes, at));
            // Extra samples repeating the size inside this segment.
            for (j, permille) in extra_cuts_permille.iter().enumerate() {
                if j % segments.len() == i {
                    samples.push((bytes, at + duration_ms * permille / 1_000));
                }
            }
            at += duration_ms;
        }
        samples.sort_by_key(|&(_, t)| t);
        let end = at;
        samples.push((0, end));

        let dir = tempfile::tempdir().expect("temp dir");
        let (ledger, sampler) = open(dir.path());
        // Half sample by sample, half as one call.
        let (one_by_one, together) = samples.split_at(samples.len() / 2);
        for &(bytes, t) in one_by_one {
            sampler.sample("7", bytes, t).expect("samples");
        }
        let batch: Vec<StorageSample> = together
            .iter()
            .map(|&(bytes, t)| StorageSample { tenant: "7".into(), bytes, at_unix_ms: t })
            .collect();
        sampler.sample_many(&batch).expect("samples");

        let (expected, integral_byte_ms) = expected_hours(&segments, start);
        let got: BTreeMap<i64, u64> = hours(ledger.as_ref(), "7").into_iter().collect();
        prop_assert_eq!(&got, &expected);
        let written: u128 = got.values().map(|&q| u128::from(q)).sum();
        let carry = sampler.state("7").expect("sampled").carry_byte_ms;
        prop_assert_eq!(written * 1_000 + u128::from(carry), integral_byte_ms);
    }
}
