#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn.
//! Metering throughput:
//! - `ingest/*`: the hot path alone, `Meter::record` into the in-memory
//!   counters on one thread (events/s per core), with and without an
//!   idempotency id, and through tenancy's `UsageSink` hook;
//! - `end_to_end/engine_ledger`: recording plus draining into an
//!   `EngineLedger` with `Durability::Always` (every drain fsynced): each
//!   iteration records 100,000 events over 1,000 tenants and waits for
//!   `Meter::flush`, which upserts the 1,000 hourly entries in one batch;
//! - `invoicing/run_due_10000_tenants`: one monthly `BillingService::run_due`
//!   renewing 10,000 Starter subscriptions (`Durability::Always`): per
//!   tenant the ledger read for the closed month (calls over the allowance,
//!   storage), an invoice with base fee and overage, a number, an automatic
//!   charge through the test provider, all committed in batches of 1,000
//!   tenants. Each measured run first writes the month's usage (untimed).
//!
//! **Timing.** `ingest/*` and `invoicing/*` are single-threaded and report
//! the benchmark thread's on-CPU time (Linux `/proc/thread-self/schedstat`;
//! wall time where it is unavailable), so their figures are per core and do
//! not depend on what else the machine runs (on an idle machine the two are
//! the same). `end_to_end/*` involves the drain thread and reports wall
//! time.
//!
//! Run with `cargo bench -p aerolith-billing --bench metering -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aerolith_billing::metering::{
    Aggregation, EngineLedger, InMemoryLedger, LedgerEntry, Meter, MeterConfig, UsageLedger,
    API_CALLS_READ, STORAGE_BYTE_SECONDS,
};
use aerolith_billing::payment::test_provider::{TestProvider, CARD_SUCCEEDS};
use aerolith_billing::payment::PaymentMethod;
use aerolith_billing::{
    BillingInterval, BillingService, BillingServiceOptions, Catalog, InMemoryTenantControl,
    SubscribeRequest,
};
use aerolith_core::{Database, Durability, ManualClock, Options};
use aerolith_tenancy::{OperationKind, TenantId, UsageEvent, UsageSink};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

// 2026-11-23T10:00:00Z.
const T0: i64 = 1_795_428_000_000;
const TENANTS: usize = 1_000;

/// Nanoseconds the calling thread has spent on a CPU, if the kernel says.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Times `f` by the thread's on-CPU time, or by the wall clock if that is
/// unavailable.
fn cpu_timed(f: impl FnOnce()) -> Duration {
    let wall = Instant::now();
    let before = thread_cpu_ns();
    f();
    match (before, thread_cpu_ns()) {
        (Some(before), Some(after)) if after > before => Duration::from_nanos(after - before),
        _ => wall.elapsed(),
    }
}

fn quiet_config() -> MeterConfig {
    MeterConfig {
        // The benchmark drains explicitly (or not at all).
        flush_interval_ms: 24 * 3_600_000,
        ..MeterConfig::default()
    }
}

fn in_memory_meter() -> Meter {
    Meter::start(
        quiet_config(),
        Arc::new(InMemoryLedger::new()),
        Arc::new(ManualClock::new(T0)),
    )
    .expect("starts")
}

fn tenant_names() -> Vec<String> {
    (0..TENANTS).map(|i| (10_000 + i).to_string()).collect()
}

fn ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest");
    const EVENTS: u64 = 1_000_000;
    group.throughput(Throughput::Elements(EVENTS));
    let tenants = tenant_names();

    let meter = in_memory_meter();
    // Cells exist after the first pass; the benchmark measures the steady
    // state (lookup + atomic add, no allocation).
    group.bench_function("record_1000_tenants", |b| {
        b.iter_custom(|iters| {
            cpu_timed(|| {
                for _ in 0..iters {
                    for i in 0..EVENTS {
                        let tenant = &tenants[(i % TENANTS as u64) as usize];
                        black_box(meter.record(tenant, API_CALLS_READ, 1, T0, None)).ok();
                    }
                }
            })
        })
    });

    group.bench_function("record_one_tenant", |b| {
        b.iter_custom(|iters| {
            cpu_timed(|| {
                for _ in 0..iters {
                    for _ in 0..EVENTS {
                        black_box(meter.record("10000", API_CALLS_READ, 1, T0, None)).ok();
                    }
                }
            })
        })
    });

    // Unique ids fill the dedup store, so a fresh meter serves each
    // measured run (its start is not timed).
    group.bench_function("record_with_idempotency_id", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let meter = in_memory_meter();
                elapsed += cpu_timed(|| {
                    for i in 0..EVENTS {
                        let tenant = &tenants[(i % TENANTS as u64) as usize];
                        black_box(meter.record(tenant, API_CALLS_READ, 1, T0, Some(u128::from(i))))
                            .ok();
                    }
                });
            }
            elapsed
        })
    });

    // Tenancy's hook: one event = a call count plus two bandwidth updates.
    let ids: Vec<TenantId> = (0..TENANTS as u64)
        .map(|i| TenantId::new(10_000 + i))
        .collect();
    group.bench_function("usage_sink_event", |b| {
        b.iter_custom(|iters| {
            cpu_timed(|| {
                for _ in 0..iters {
                    for i in 0..EVENTS {
                        UsageSink::record(
                            &meter,
                            UsageEvent {
                                tenant: ids[(i % TENANTS as u64) as usize],
                                kind: OperationKind::Read,
                                at_unix_ms: T0,
                                bytes_in: 100,
                                bytes_out: 1_000,
                                duration_us: 0,
                                idempotency_id: None,
                            },
                        );
                    }
                }
            })
        })
    });
    group.finish();
}

fn end_to_end(c: &mut Criterion) {
    let mut group = c.benchmark_group("end_to_end");
    const EVENTS: u64 = 100_000;
    group.throughput(Throughput::Elements(EVENTS));
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::open(
        dir.path(),
        Options::default().durability(Durability::Always),
    )
    .expect("opens");
    let ledger = Arc::new(EngineLedger::open(db).expect("ledger"));
    let meter =
        Meter::start(quiet_config(), ledger, Arc::new(ManualClock::new(T0))).expect("starts");
    let tenants = tenant_names();
    group.bench_function("engine_ledger_always", |b| {
        b.iter(|| {
            for i in 0..EVENTS {
                let tenant = &tenants[(i % TENANTS as u64) as usize];
                black_box(meter.record(tenant, API_CALLS_READ, 1, T0, None)).ok();
            }
            meter.flush().expect("flushes")
        })
    });
    group.finish();
}

const BILLED_TENANTS: u64 = 10_000;
// 2026-11-01T00:00:00Z.
const NOV_1_2026_UNIX_MS: i64 = 1_793_491_200_000;

fn open_service(
    dir: &std::path::Path,
    durability: Durability,
    clock: &Arc<ManualClock>,
) -> (BillingService, Arc<EngineLedger>) {
    let db = Database::open(dir, Options::default().durability(durability)).expect("opens");
    let ledger = Arc::new(EngineLedger::open(db.clone()).expect("ledger"));
    let options = BillingServiceOptions::new(Arc::new(InMemoryTenantControl::new()))
        .auto_charge(Arc::new(TestProvider::new()))
        .usage_ledger(ledger.clone());
    let service = BillingService::open(db, Catalog::default_catalog(), clock.clone(), options)
        .expect("opens the service");
    (service, ledger)
}

/// 250,000 reads and 3 GB stored for a whole hour, for every tenant, in
/// the hour starting at `hour_unix_ms`.
fn write_month_usage(ledger: &EngineLedger, hour_unix_ms: i64) {
    let entries: Vec<LedgerEntry> = (1..=BILLED_TENANTS)
        .flat_map(|tenant| {
            [
                (API_CALLS_READ, 250_000),
                (STORAGE_BYTE_SECONDS, 3_000_000_000 * 3_600 * 24 * 30),
            ]
            .map(|(metric, quantity)| LedgerEntry {
                tenant: tenant.to_string(),
                metric: metric.to_owned(),
                hour_start_unix_ms: hour_unix_ms,
                quantity,
                aggregation: Aggregation::Sum,
                latest_at_unix_ms: None,
            })
        })
        .collect();
    ledger.upsert_batch(&entries).expect("writes usage");
}

fn invoicing(c: &mut Criterion) {
    let mut group = c.benchmark_group("invoicing");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BILLED_TENANTS));
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(NOV_1_2026_UNIX_MS));
    {
        // Setup without fsyncs: 10,000 subscriptions, each invoiced and
        // charged once.
        let (service, _) = open_service(dir.path(), Durability::Never, &clock);
        for tenant in 1..=BILLED_TENANTS {
            service
                .subscribe(
                    TenantId::new(tenant),
                    SubscribeRequest {
                        plan_id: "starter".into(),
                        interval: BillingInterval::Monthly,
                        trial_days: None,
                        payment_method: Some(PaymentMethod::Card {
                            number: CARD_SUCCEEDS.into(),
                        }),
                    },
                )
                .expect("subscribes");
        }
    }
    let (service, ledger) = open_service(dir.path(), Durability::Always, &clock);
    let first = TenantId::new(1);
    group.bench_function("run_due_10000_tenants", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let sub = service.subscription(first).expect("subscribed");
                write_month_usage(&ledger, sub.current_period_start_unix_ms);
                let period_end = sub.current_period_end_unix_ms;
                clock.set_unix_ms(period_end);
                let mut issued = 0;
                elapsed += cpu_timed(|| {
                    issued = service
                        .run_due(period_end)
                        .expect("runs")
                        .invoices_issued
                        .len();
                });
                assert_eq!(issued, BILLED_TENANTS as usize);
            }
            elapsed
        })
    });
    group.finish();
}

criterion_group!(benches, ingest, end_to_end, invoicing);
criterion_main!(benches);
