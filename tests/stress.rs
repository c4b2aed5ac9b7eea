//! Concurrency stress across the crates: many threads run a seeded mix of
//! data operations for shared and dedicated tenants on tight plans
//! (documents, storage, collections, concurrent requests, and for half of
//! them a rate limit), with billing's `Meter` over an `InMemoryLedger` as the
//! usage sink. Checked:
//!
//! - no quota is ever exceeded: every thread checks its tenant's gauge after
//!   every call, and a monitor thread samples every tenant meanwhile;
//! - at the end each tenant's quota accounting equals a recount of its
//!   stored data (documents listed one by one, bytes and collections from the
//!   engine's statistics);
//! - after `meter.shutdown()` the ledger holds, per tenant and kind, exactly
//!   the calls that succeeded (the test counts them itself).
//!
//! Short by default (a fixed number of calls per thread);
//! `AEROLITH_STRESS_SECONDS=60` runs each thread for that long instead.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aerolith::billing::metering::{InMemoryLedger, Meter, MeterConfig, TenantKey};
use aerolith::core::{Durability, ManualClock, MasterKey, Query};
use aerolith::tenancy::{
    default_plans, EngineError, IsolationMode, NewTenant, PendingTenantWrite, Principal,
    QuotaLimits, QuotaUsage, Slug, Tenancy, TenancyError, TenancyOptions, TenantHandle, TenantId,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const THREADS: usize = 8;
const CALLS_PER_THREAD: usize = 300;
const TENANTS: usize = 6;
/// `c0` and `c1` exist from the start; `c2` comes and goes (with a fourth
/// name it would hit the collections quota).
const COLLECTIONS: [&str; 4] = ["c0", "c1", "c2", "c3"];
const START_UNIX_MS: i64 = 1_750_000_000_000;

fn tight(rate: Option<u64>) -> QuotaLimits {
    QuotaLimits {
        storage_bytes_max: Some(6_000),
        documents_max: Some(25),
        collections_max: Some(3),
        api_calls_per_hour: rate,
        concurrent_requests_max: Some(3),
        query_duration_ms_max: None,
    }
}

/// Successful calls per (tenant, metric), as the test saw them.
type Calls = HashMap<(TenantId, &'static str), u64>;

fn within(used: QuotaUsage, limits: &QuotaLimits, context: &str) {
    let ok = |used: u64, max: Option<u64>| max.is_none_or(|m| used <= m);
    assert!(
        ok(used.documents, limits.documents_max)
            && ok(used.storage_bytes, limits.storage_bytes_max)
            && ok(used.collections, limits.collections_max),
        "{context}: quota exceeded: {used:?} over {limits:?}"
    );
}

/// A write through the blocking call or through its pending form, waited.
fn either<T>(
    pending: bool,
    now: impl FnOnce() -> Result<T, TenancyError>,
    later: impl FnOnce() -> Result<PendingTenantWrite<T>, TenancyError>,
) -> Result<T, TenancyError> {
    if pending {
        later()?.wait()
    } else {
        now()
    }
}

/// One seeded call: the metric it is billed under if it succeeded, else
/// the kind of refusal.
fn one_call(h: &TenantHandle, rng: &mut StdRng, tag: &str) -> Result<&'static str, &'static str> {
    let coll = match rng.random_range(0..10) {
        0..=3 => COLLECTIONS[0],
        4..=7 => COLLECTIONS[1],
        8 => COLLECTIONS[2],
        _ => COLLECTIONS[3],
    };
    let id = format!("d{}", rng.random_range(0..40));
    let pad = "x".repeat(rng.random_range(10..400));
    // Half the writes go through the pending path (group commit awaited
    // without a thread), as the server's document routes do.
    let pending = rng.random_bool(0.5);
    let (metric, result): (&'static str, Result<(), TenancyError>) = match rng.random_range(0..100)
    {
        0..=4 => ("api_calls.admin", h.create_collection(coll)),
        5 => ("api_calls.admin", h.drop_collection(coll)),
        6..=29 => (
            "api_calls.write",
            either(
                pending,
                || h.insert(coll, json!({"_id": id, "pad": pad, "by": tag})),
                || h.insert_pending(coll, json!({"_id": id, "pad": pad, "by": tag})),
            )
            .map(drop),
        ),
        30..=36 => {
            let docs: Vec<serde_json::Value> = (0..rng.random_range(2..4))
                .map(|i| json!({"_id": format!("{id}-{i}"), "pad": pad}))
                .collect();
            let many = docs.clone();
            (
                "api_calls.write",
                either(
                    pending,
                    || h.insert_many(coll, docs),
                    || h.insert_many_pending(coll, many),
                )
                .map(drop),
            )
        }
        37..=49 => (
            "api_calls.write",
            either(
                pending,
                || h.replace(coll, &id, json!({"_id": id, "pad": pad})),
                || h.replace_pending(coll, &id, json!({"_id": id, "pad": pad})),
            ),
        ),
        50..=56 => ("api_calls.write", {
            let patch = json!({"n": rng.random_range(0..9)});
            let later = patch.clone();
            either(
                pending,
                || h.patch(coll, &id, patch),
                || h.patch_pending(coll, &id, later),
            )
            .map(drop)
        }),
        57..=71 => (
            "api_calls.write",
            either(
                pending,
                || h.delete(coll, &id),
                || h.delete_pending(coll, &id),
            )
            .map(drop),
        ),
        72..=86 => ("api_calls.read", h.get(coll, &id).map(drop)),
        87..=93 => (
            "api_calls.query",
            h.find(
                coll,
                &Query::filter(&json!({"pad": {"$exists": true}})).unwrap(),
            )
            .map(drop),
        ),
        _ => (
            "api_calls.query",
            h.count(coll, &Query::default()).map(drop),
        ),
    };
    // Expected refusals under tight limits and racing threads.
    match result {
        Ok(()) => Ok(metric),
        Err(TenancyError::QuotaExceeded(_)) => Err("quota"),
        Err(TenancyError::RateLimited(_)) => Err("rate"),
        Err(TenancyError::ConcurrencyLimited(_)) => Err("concurrency"),
        Err(TenancyError::Engine(
            EngineError::CollectionNotFound { .. } | EngineError::CollectionExists { .. },
        )) => Err("collection state"),
        Err(TenancyError::Engine(
            EngineError::DocumentExists { .. } | EngineError::DocumentNotFound { .. },
        )) => Err("document state"),
        Err(other) => panic!("{tag}: unexpected error {other:?}"),
    }
}

#[test]
fn tenants_under_concurrent_load_keep_quotas_and_metering_exact() {
    let run_for = std::env::var("AEROLITH_STRESS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs);
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START_UNIX_MS));
    let ledger = Arc::new(InMemoryLedger::new());
    let meter = Arc::new(
        Meter::start(MeterConfig::default(), ledger.clone(), clock.clone()).expect("meter"),
    );
    let mut plans = default_plans();
    plans.insert("tight".into(), tight(None));
    plans.insert("tight_rated".into(), tight(Some(12_000)));
    let tenancy = Tenancy::open(
        dir.path(),
        TenancyOptions {
            master_key: MasterKey::from_bytes([9; 32]),
            clock: clock.clone(),
            usage_sink: meter.clone(),
            plans: plans.clone(),
            durability: Durability::Never,
        },
    )
    .unwrap();
    let op = Principal::Operator;
    let tenants: Vec<(TenantId, QuotaLimits, Principal)> = (0..TENANTS)
        .map(|i| {
            let plan = if i % 3 == 2 { "tight_rated" } else { "tight" };
            let created = tenancy
                .create_tenant(
                    &op,
                    NewTenant {
                        name: format!("stress {i}"),
                        slug: Slug::new(&format!("stress{i}")).unwrap(),
                        plan: plan.into(),
                        isolation: if i % 2 == 0 {
                            IsolationMode::Shared
                        } else {
                            IsolationMode::Dedicated
                        },
                    },
                )
                .unwrap();
            // Data calls go through the tenant's own owner key, as a client
            // would: operator handles are neither metered nor rate limited.
            let principal = tenancy
                .authenticate(created.owner_key.secret.expose())
                .unwrap();
            (created.tenant.id, plans[plan], principal)
        })
        .collect();
    let mut setup_calls = Calls::new();
    for (id, _, principal) in &tenants {
        let h = tenancy.handle(principal, *id).unwrap();
        for c in &COLLECTIONS[..2] {
            h.create_collection(c).unwrap();
            *setup_calls.entry((*id, "api_calls.admin")).or_default() += 1;
        }
    }

    let stop = AtomicBool::new(false);
    let (calls, refused, samples) = std::thread::scope(|s| {
        let monitor = s.spawn(|| {
            let mut samples = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (id, limits, _) in &tenants {
                    let h = tenancy.handle(&op, *id).unwrap();
                    within(h.quota_in_use(), limits, "monitor");
                    samples += 1;
                }
                std::thread::yield_now();
            }
            samples
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (tenancy, tenants, clock) = (&tenancy, &tenants, &clock);
                s.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(0x57E55 + t as u64);
                    let mut calls = Calls::new();
                    let mut refused: BTreeMap<&'static str, u64> = BTreeMap::new();
                    let started = Instant::now();
                    for n in 0.. {
                        let done = match run_for {
                            Some(d) => started.elapsed() >= d,
                            None => n >= CALLS_PER_THREAD,
                        };
                        if done {
                            break;
                        }
                        let (id, limits, principal) = &tenants[rng.random_range(0..tenants.len())];
                        let h = tenancy.handle(principal, *id).unwrap();
                        match one_call(&h, &mut rng, &format!("thread {t}")) {
                            Ok(metric) => *calls.entry((*id, metric)).or_default() += 1,
                            Err(why) => *refused.entry(why).or_default() += 1,
                        }
                        within(h.quota_in_use(), limits, &format!("thread {t}"));
                        // Simulated time moves on, so the rate limits refill.
                        clock.advance(Duration::from_millis(5));
                    }
                    (calls, refused)
                })
            })
            .collect();
        let mut calls = setup_calls;
        let mut refused: BTreeMap<&'static str, u64> = BTreeMap::new();
        for w in workers {
            let (c, r) = w.join().unwrap();
            for (k, v) in r {
                *refused.entry(k).or_default() += v;
            }
            for (k, v) in c {
                *calls.entry(k).or_default() += v;
            }
        }
        stop.store(true, Ordering::Relaxed);
        (calls, refused, monitor.join().unwrap())
    });
    // Accounting equals a recount of what is stored, made by the operator:
    // operator calls are neither metered nor rate limited, so the recount
    // adds nothing to the ledger.
    for (id, limits, _) in &tenants {
        let h = tenancy.handle(&op, *id).unwrap();
        let gauge = h.quota_in_use();
        within(gauge, limits, "end");
        let recount = h.usage().unwrap();
        assert_eq!(
            gauge, recount,
            "tenant {id}: gauge differs from the engine's stats"
        );
        let mut documents = 0u64;
        let names = h.list_collections().unwrap();
        for name in &names {
            documents += h.find(name, &Query::default()).unwrap().len() as u64;
        }
        assert_eq!(
            gauge.documents, documents,
            "tenant {id}: documents recounted"
        );
        assert_eq!(
            gauge.collections,
            names.len() as u64,
            "tenant {id}: collections"
        );
    }

    // The ledger holds exactly the successful calls.
    tenancy.close().unwrap();
    meter.shutdown().unwrap();
    assert_eq!(meter.dropped_events(), 0);
    let mut ledger_calls: BTreeMap<(String, String), u64> = BTreeMap::new();
    for e in ledger.entries() {
        if e.metric.starts_with("api_calls.") {
            *ledger_calls.entry((e.tenant, e.metric)).or_default() += e.quantity;
        }
    }
    // Creating the tenants is not a data call (no handle), so every
    // counted call is one the test made.
    let expected: BTreeMap<(String, String), u64> = calls
        .iter()
        .map(|((id, metric), n)| {
            (
                (
                    TenantKey::new(*id).as_str().to_owned(),
                    (*metric).to_owned(),
                ),
                *n,
            )
        })
        .collect();
    assert_eq!(ledger_calls, expected, "ledger differs from the calls made");
    let total: u64 = expected.values().sum();
    eprintln!(
        "stress: {THREADS} threads, {TENANTS} tenants, {total} calls succeeded, refused: \
         {refused:?}, {samples} monitor samples"
    );
    for why in ["quota", "rate", "concurrency"] {
        assert!(refused.contains_key(why), "no call was refused for {why}");
    }
}
