//! The metering pipeline end to end: concurrency, idempotency, shutdown,
//! ledger outages, a simulated crash, and storage GB-months.

use std::sync::Arc;
use std::time::Duration;

use aerolith_billing::metering::{
    gb_months, period_to_date, usage_history, Granularity, InMemoryLedger, LedgerError, Meter,
    MeterConfig, MeterError, RecordOutcome, StorageIntegrator, UsageLedger, API_CALLS_READ,
    API_CALLS_WRITE, BANDWIDTH_OUT_BYTES, HOUR_MS,
};
use aerolith_core::{Clock, ManualClock};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal_macros::dec;

// 2025-01-15T12:00:00Z
const T0: i64 = 1_736_942_400_000;

fn config() -> MeterConfig {
    MeterConfig {
        // Tests drain explicitly; the periodic drain never fires during them.
        flush_interval_ms: 24 * 3_600_000,
        ..MeterConfig::default()
    }
}

fn start(clock: &ManualClock) -> (Meter, Arc<InMemoryLedger>) {
    let ledger = Arc::new(InMemoryLedger::new());
    let meter = Meter::start(config(), ledger.clone(), Arc::new(clock.clone())).expect("starts");
    (meter, ledger)
}

fn ledger_total(ledger: &dyn UsageLedger, tenant: &str, metric: &str) -> u64 {
    period_to_date(ledger, tenant, &[metric], 0, T0 + 48 * HOUR_MS).expect("reads")[0].1
}

#[test]
fn eight_threads_recording_concurrently_sum_exactly() {
    let clock = ManualClock::new(T0);
    let (meter, ledger) = start(&clock);
    let meter = Arc::new(meter);
    const EVENTS_PER_THREAD: u64 = 50_000;
    let threads: Vec<_> = (0..8u64)
        .map(|thread| {
            let meter = Arc::clone(&meter);
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(thread);
                let mut sent = [0u64; 2];
                for i in 0..EVENTS_PER_THREAD {
                    let tenant = if i % 2 == 0 { "shared" } else { "other" };
                    let quantity = rng.random_range(1..100u64);
                    // Spread over the current and the previous hour.
                    let at = T0 - (i % 2) as i64 * HOUR_MS;
                    meter
                        .record(tenant, API_CALLS_READ, quantity, at, None)
                        .expect("records");
                    sent[(i % 2) as usize] += quantity;
                    if i % 10_000 == 0 {
                        meter.flush().expect("flushes mid-stream");
                    }
                }
                sent
            })
        })
        .collect();
    let mut expected = [0u64; 2];
    for t in threads {
        let sent = t.join().expect("thread ran");
        expected[0] += sent[0];
        expected[1] += sent[1];
    }
    meter.shutdown().expect("shuts down");
    assert_eq!(
        ledger_total(ledger.as_ref(), "shared", API_CALLS_READ),
        expected[0]
    );
    assert_eq!(
        ledger_total(ledger.as_ref(), "other", API_CALLS_READ),
        expected[1]
    );
}

#[test]
fn duplicate_ids_are_counted_once_even_across_flushes_and_threads() {
    let clock = ManualClock::new(T0);
    let (meter, ledger) = start(&clock);
    let meter = Arc::new(meter);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let meter = Arc::clone(&meter);
            std::thread::spawn(move || {
                (0..1_000u128)
                    .filter(|&id| {
                        meter.record("acme", API_CALLS_WRITE, 1, T0, Some(id))
                            == Ok(RecordOutcome::Counted)
                    })
                    .count()
            })
        })
        .collect();
    let counted: usize = threads.into_iter().map(|t| t.join().expect("ran")).sum();
    assert_eq!(counted, 1_000);
    meter.flush().expect("flushes");
    // Redelivery after a flush, an hour later (still inside the window).
    clock.advance(Duration::from_secs(3_600));
    assert_eq!(
        meter.record("acme", API_CALLS_WRITE, 1, T0, Some(7)),
        Ok(RecordOutcome::Duplicate)
    );
    meter.shutdown().expect("shuts down");
    assert_eq!(
        ledger_total(ledger.as_ref(), "acme", API_CALLS_WRITE),
        1_000
    );
}

#[test]
fn shutdown_flushes_everything_and_refuses_later_events() {
    let clock = ManualClock::new(T0);
    let (meter, ledger) = start(&clock);
    for i in 0..1_000 {
        meter
            .record("acme", BANDWIDTH_OUT_BYTES, 1_500, T0 + i, None)
            .expect("records");
    }
    assert!(ledger.entries().is_empty(), "nothing drained yet");
    let report = meter.shutdown().expect("shuts down");
    assert_eq!(report.entries_written, 1);
    assert_eq!(
        ledger_total(ledger.as_ref(), "acme", BANDWIDTH_OUT_BYTES),
        1_500_000
    );
    assert_eq!(
        meter.record("acme", BANDWIDTH_OUT_BYTES, 1, T0, None),
        Err(MeterError::ShutDown)
    );
    assert_eq!(meter.flush(), Err(MeterError::ShutDown));
    assert_eq!(meter.shutdown(), Err(MeterError::ShutDown));
}

#[test]
fn a_ledger_outage_loses_nothing_and_counts_nothing_twice() {
    let clock = ManualClock::new(T0);
    let (meter, ledger) = start(&clock);
    meter
        .record("acme", API_CALLS_READ, 10, T0, None)
        .expect("records");
    ledger.set_unavailable(true);
    assert!(matches!(
        meter.flush(),
        Err(MeterError::Ledger(LedgerError::Unavailable { .. }))
    ));
    meter
        .record("acme", API_CALLS_READ, 5, T0, None)
        .expect("records");
    assert!(meter.flush().is_err());
    ledger.set_unavailable(false);
    meter
        .record("acme", API_CALLS_READ, 1, T0, None)
        .expect("records");
    assert_eq!(meter.flush().map(|r| r.entries_written), Ok(1));
    assert_eq!(ledger_total(ledger.as_ref(), "acme", API_CALLS_READ), 16);
    meter.shutdown().expect("shuts down");
    assert_eq!(ledger_total(ledger.as_ref(), "acme", API_CALLS_READ), 16);
}

#[test]
fn failed_final_flush_can_be_retried() {
    let clock = ManualClock::new(T0);
    let (meter, ledger) = start(&clock);
    meter
        .record("acme", API_CALLS_READ, 3, T0, None)
        .expect("records");
    ledger.set_unavailable(true);
    assert!(meter.shutdown().is_err());
    ledger.set_unavailable(false);
    assert_eq!(meter.retry_final_flush().map(|r| r.entries_written), Ok(1));
    assert_eq!(ledger_total(ledger.as_ref(), "acme", API_CALLS_READ), 3);
}

/// A crash is simulated by abandoning the meter without shutdown
/// (`mem::forget`: no final drain runs). The ledger then holds at least what
/// was flushed and never more than what was sent.
#[test]
fn crash_during_ingest_keeps_what_was_flushed_and_never_more_than_sent() {
    let clock = ManualClock::new(T0);
    let (meter, ledger) = start(&clock);
    let mut rng = StdRng::seed_from_u64(42);
    let mut sent = 0u64;
    let mut flushed = 0u64;
    for i in 0..10_000u64 {
        let quantity = rng.random_range(1..10u64);
        meter
            .record("acme", API_CALLS_READ, quantity, T0, Some(u128::from(i)))
            .expect("records");
        sent += quantity;
        if i == 6_000 {
            meter.flush().expect("flushes");
            flushed = sent;
        }
    }
    std::mem::forget(meter);
    let persisted = ledger_total(ledger.as_ref(), "acme", API_CALLS_READ);
    assert!(persisted >= flushed && persisted <= sent);
    assert_eq!(
        persisted, flushed,
        "nothing after the last flush reached the ledger"
    );

    // "Reopen": a new meter over the same ledger; replaying every event with
    // its id is safe only inside the dedup memory, which died with the
    // process, so the replay sends just what was not flushed.
    let meter = Meter::start(config(), ledger.clone(), Arc::new(clock.clone())).expect("starts");
    meter
        .record("acme", API_CALLS_READ, sent - flushed, T0, None)
        .expect("records");
    meter.shutdown().expect("shuts down");
    assert_eq!(ledger_total(ledger.as_ref(), "acme", API_CALLS_READ), sent);
}

#[test]
fn usage_history_and_period_to_date_read_the_ledger() {
    let clock = ManualClock::new(T0);
    let (meter, ledger) = start(&clock);
    // Three hours of traffic: 12:00, 13:00, 14:00 on Jan 15.
    for h in 0..3 {
        clock.set_unix_ms(T0 + h * HOUR_MS);
        meter
            .record(
                "acme",
                API_CALLS_READ,
                100 * (h as u64 + 1),
                T0 + h * HOUR_MS,
                None,
            )
            .expect("records");
        meter.flush().expect("flushes");
    }
    meter.shutdown().expect("shuts down");
    let hourly = usage_history(
        ledger.as_ref(),
        "acme",
        API_CALLS_READ,
        T0,
        T0 + 3 * HOUR_MS,
        Granularity::Hour,
    )
    .expect("reads");
    let quantities: Vec<u64> = hourly.iter().map(|b| b.quantity).collect();
    assert_eq!(quantities, vec![100, 200, 300]);
    let daily = usage_history(
        ledger.as_ref(),
        "acme",
        API_CALLS_READ,
        0,
        i64::MAX,
        Granularity::Day,
    )
    .expect("reads");
    assert_eq!(daily.len(), 1);
    assert_eq!(daily[0].start_unix_ms, T0 - 12 * HOUR_MS);
    assert_eq!(daily[0].quantity, 600);
    // Period to date from 13:00 includes 13:00 and 14:00.
    assert_eq!(
        period_to_date(
            ledger.as_ref(),
            "acme",
            &[API_CALLS_READ],
            T0 + HOUR_MS,
            clock.now_unix_ms()
        )
        .expect("reads"),
        vec![(API_CALLS_READ.to_owned(), 500)]
    );
}

/// Storage over a 30-day period, by hand:
/// - days 0-10: 2 GB   -> 2e9 * 10 days
/// - days 10-25: 8 GB  -> 8e9 * 15 days
/// - days 25-30: 0.5 GB -> 0.5e9 * 5 days
///
/// byte-days = 20e9 + 120e9 + 2.5e9 = 142.5e9; over a 30-day period that is
/// 142.5 / 30 = 4.75 GB-months.
#[test]
fn storage_integration_over_a_timeline_matches_the_hand_computation() {
    const DAY: Duration = Duration::from_secs(86_400);
    const DAY_MS: u128 = 86_400_000;
    let clock = ManualClock::new(T0);
    let storage = StorageIntegrator::new();
    storage
        .sample("acme", 2_000_000_000, clock.now_unix_ms())
        .expect("samples");
    clock.advance(DAY * 4);
    // A sample without a change does not alter the integral.
    storage
        .sample("acme", 2_000_000_000, clock.now_unix_ms())
        .expect("samples");
    clock.advance(DAY * 6);
    storage
        .sample("acme", 8_000_000_000, clock.now_unix_ms())
        .expect("samples");
    clock.advance(DAY * 15);
    storage
        .sample("acme", 500_000_000, clock.now_unix_ms())
        .expect("samples");
    clock.advance(DAY * 5);
    let byte_ms = storage
        .close_period("acme", clock.now_unix_ms())
        .expect("closes");
    assert_eq!(byte_ms, 142_500_000_000 * DAY_MS);
    let period_ms = 30 * 86_400_000;
    assert_eq!(gb_months(byte_ms, period_ms, 4), Ok(dec!(4.7500)));
    // The next period starts from the carried-over 0.5 GB.
    clock.advance(DAY * 30);
    let next = storage
        .close_period("acme", clock.now_unix_ms())
        .expect("closes");
    assert_eq!(gb_months(next, period_ms, 2), Ok(dec!(0.50)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The ledger total equals the sum of accepted events, and replaying the
    /// same events (same ids) afterwards changes nothing.
    #[test]
    fn ledger_total_equals_accepted_events_and_replay_changes_nothing(
        events in prop::collection::vec((0u128..200, 1u64..1_000, 0i64..3, any::<bool>()), 1..300),
        flush_every in 1usize..50,
    ) {
        let clock = ManualClock::new(T0);
        let (meter, ledger) = start(&clock);
        let mut expected = 0u64;
        let mut seen = std::collections::HashSet::new();
        for (i, &(id, quantity, hours_back, with_id)) in events.iter().enumerate() {
            let at = T0 - hours_back * HOUR_MS;
            let id = with_id.then_some(id);
            let outcome = meter.record("acme", API_CALLS_READ, quantity, at, id).expect("records");
            let new = id.is_none_or(|id| seen.insert(id));
            prop_assert_eq!(outcome == RecordOutcome::Counted, new);
            if new {
                expected += quantity;
            }
            if i % flush_every == 0 {
                meter.flush().expect("flushes");
            }
        }
        meter.flush().expect("flushes");
        prop_assert_eq!(ledger_total(ledger.as_ref(), "acme", API_CALLS_READ), expected);
        for &(id, quantity, hours_back, with_id) in &events {
            if with_id {
                let at = T0 - hours_back * HOUR_MS;
                prop_assert_eq!(
                    meter.record("acme", API_CALLS_READ, quantity, at, Some(id)),
                    Ok(RecordOutcome::Duplicate)
                );
            }
        }
        meter.shutdown().expect("shuts down");
        prop_assert_eq!(ledger_total(ledger.as_ref(), "acme", API_CALLS_READ), expected);
    }
}

#[test]
fn usage_persisted_in_the_engine_survives_shutdown_and_reopen() {
    use aerolith_billing::metering::{period_to_date, EngineLedger};
    use aerolith_core::{Database, Durability, Options};
    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::new(T0);
    let open = || {
        Database::open(
            dir.path(),
            Options::default().durability(Durability::Always),
        )
        .expect("opens")
    };
    let per_thread = 2_000u64;
    {
        let ledger = Arc::new(EngineLedger::open(open()).expect("ledger"));
        let meter = Meter::start(config(), ledger, Arc::new(clock.clone())).expect("starts");
        std::thread::scope(|s| {
            for t in 0..4 {
                let meter = &meter;
                s.spawn(move || {
                    for i in 0..per_thread {
                        let at = T0 + ((i % 3) as i64) * 3_600_000;
                        meter
                            .record(
                                "tenant-1",
                                API_CALLS_READ,
                                1,
                                at,
                                Some(u128::from(t * per_thread + i)),
                            )
                            .expect("records");
                    }
                });
            }
        });
        // A redelivered event is counted once.
        meter
            .record("tenant-1", API_CALLS_READ, 1, T0, Some(0))
            .expect("records");
        meter.shutdown().expect("flushes");
    }
    let ledger = EngineLedger::open(open()).expect("ledger");
    let totals = period_to_date(
        &ledger,
        "tenant-1",
        &[API_CALLS_READ],
        T0,
        T0 + 3 * 3_600_000,
    )
    .expect("query");
    assert_eq!(totals, vec![(API_CALLS_READ.to_string(), 4 * per_thread)]);
}
