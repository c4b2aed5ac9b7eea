#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn.
//! Metering throughput:
//! - `ingest/*`: the hot path alone, `Meter::record` into the in-memory
//!   counters on one thread (events/s per core), with and without an
//!   idempotency id, and through tenancy's `UsageSink` hook;
//! - `end_to_end/engine_ledger`: recording plus draining into an
//!   `EngineLedger` with `Durability::Always` (every drain fsynced): each
//!   iteration records 100,000 events over 1,000 tenants and waits for
//!   `Meter::flush`, which upserts the 1,000 hourly entries in one batch;
//!
//! The billing run for 10,000 tenants has its own benchmark in the root
//! package (`cargo bench --bench billing_run`).
//!
//! **Timing.** `ingest/*` is single-threaded and report
//! the benchmark thread's on-CPU time (Linux `/proc/thread-self/schedstat`;
//! wall time where it is unavailable), so its figures are per core and do
//! not depend on what else the machine runs (on an idle machine the two are
//! the same). `end_to_end/*` involves the drain thread and reports wall
//! time.
//!
//! Run with `cargo bench -p aerolith-billing --bench metering -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aerolith_billing::metering::{
    EngineLedger, InMemoryLedger, Meter, MeterConfig, API_CALLS_READ,
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

criterion_group!(benches, ingest, end_to_end);
criterion_main!(benches);
