#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn.
//! The monthly billing run for 10,000 tenants: `BillingService::run_due`
//! at a period end, where every tenant renews — one invoice each (base fee
//! in advance + API-call overage of the closed month read from an
//! `EngineLedger` in the same database), a gapless number, an automatic
//! charge through the test provider — committed in batches to a database
//! with `Durability::Always`. Each iteration is the next month's run on the
//! same service. Tenancy is an `InMemoryTenantControl` (audit appends to a
//! real registry are measured by tenancy's own benchmarks).
//!
//! Each run also prints its wall time and the CPU time of the calling thread
//! (the engine's group commit runs on the caller, so this is the run's CPU
//! cost even on a shared machine), and reopening the service (reloading
//! every subscription, invoice and counter) is timed once.
//!
//! Run with `cargo bench --bench billing_run`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aerolith_billing::metering::{
    Aggregation, EngineLedger, LedgerEntry, UsageLedger, API_CALLS_READ, HOUR_MS,
};
use aerolith_billing::payment::test_provider::{TestProvider, CARD_SUCCEEDS};
use aerolith_billing::payment::PaymentMethod;
use aerolith_billing::{
    BillingInterval, BillingService, BillingServiceOptions, Catalog, InMemoryTenantControl,
    SubscribeRequest,
};
use aerolith_core::{Clock, Database, Durability, ManualClock, Options};
use aerolith_tenancy::TenantId;
use criterion::{criterion_group, criterion_main, Criterion};

const TENANTS: u64 = 10_000;
/// 2026-01-01T00:00:00Z.
const JAN_1_2026_UNIX_MS: i64 = 1_767_225_600_000;

fn open(
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
        .expect("service");
    (service, ledger)
}

/// CPU time (user + system) of the calling thread, from
/// `/proc/thread-self/stat` (Linux; zero elsewhere). The machine running the
/// benchmark may be shared, so wall time alone can overstate the cost.
fn thread_cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which is in parentheses).
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after ')'.
    // Clock ticks are 100 per second on Linux.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn monthly_run(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(ManualClock::new(JAN_1_2026_UNIX_MS));
    {
        // Setup without fsync: 10,000 subscriptions, each with an invoice.
        let (service, _) = open(dir.path(), Durability::Never, &clock);
        for raw in 1..=TENANTS {
            service
                .subscribe(
                    TenantId::new(raw),
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
    let started = Instant::now();
    let (service, ledger) = open(dir.path(), Durability::Always, &clock);
    println!(
        "reopen with {TENANTS} subscriptions and invoices: {:?}",
        started.elapsed()
    );

    let mut month = 0i64;
    let mut group = c.benchmark_group("billing_run");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("run_due_10k_tenants_renewing", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                // Usage for the month about to close: 150,000 reads each, so
                // every invoice has an overage line.
                let period_start = clock.now_unix_ms();
                let entries: Vec<LedgerEntry> = (1..=TENANTS)
                    .map(|raw| LedgerEntry {
                        tenant: raw.to_string(),
                        metric: API_CALLS_READ.into(),
                        hour_start_unix_ms: period_start - period_start % HOUR_MS + HOUR_MS,
                        quantity: 150_000,
                        aggregation: Aggregation::Sum,
                        latest_at_unix_ms: None,
                    })
                    .collect();
                ledger.upsert_batch(&entries).expect("usage");
                month += 1;
                let next = chrono::DateTime::from_timestamp_millis(JAN_1_2026_UNIX_MS)
                    .expect("in range")
                    .checked_add_months(chrono::Months::new(month as u32))
                    .expect("in range")
                    .timestamp_millis();
                clock.set_unix_ms(next);
                let started = Instant::now();
                let cpu_before = thread_cpu_time();
                let report = service.run_due(next).expect("runs");
                total += started.elapsed();
                println!(
                    "run_due for {TENANTS} tenants: wall {:?}, cpu {:?}",
                    started.elapsed(),
                    thread_cpu_time() - cpu_before
                );
                assert_eq!(report.invoices_issued.len() as u64, TENANTS);
                assert_eq!(report.invoices_paid as u64, TENANTS);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, monthly_run);
criterion_main!(benches);
