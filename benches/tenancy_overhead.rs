#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn.
//! What the tenancy layer adds to an operation: a hot point read through a
//! `TenantHandle` (shared and dedicated tenants) against the bare engine's
//! `Database::get` on an engine opened the same way (encrypted, same
//! document), in the same run; plus the admission steps alone
//! (authorize + status + rate limit + concurrency permit + quota
//! reservation + usage report) and an API key authentication.
//!
//! Run with `cargo bench --bench tenancy_overhead`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use aerolith_core::{Clock, Database, Durability, MasterKey, Options, SystemClock};
use aerolith_tenancy::{
    default_plans, ConcurrencyLimiter, IsolationMode, KeyId, NewTenant, NullSink, OperationKind,
    Permission, Principal, QuotaGauge, QuotaLimits, RateLimit, RateLimiter, Role, Slug, Tenancy,
    TenancyOptions, TenantId, TenantStatus, UsageEvent, UsageSink, CALLS_PER_HOUR_MAX,
};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;

fn document() -> serde_json::Value {
    json!({"_id": "u1", "name": "Ada Lovelace", "email": "ada@example.com", "age": 36,
           "tags": ["math", "engines"], "address": {"city": "London", "zip": "W1"}})
}

fn point_reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tmp");
    let master = MasterKey::from_bytes([9; 32]);
    // A plan whose rate limit is checked on every call but never reached.
    let mut plans = default_plans();
    plans.insert(
        "bench".to_owned(),
        QuotaLimits {
            api_calls_per_hour: Some(CALLS_PER_HOUR_MAX),
            ..plans["enterprise"]
        },
    );
    let tenancy = Tenancy::open(
        dir.path().join("tenancy"),
        TenancyOptions {
            plans,
            durability: Durability::Never,
            ..TenancyOptions::new(master.clone())
        },
    )
    .expect("open tenancy");
    let mut handles = Vec::new();
    for (slug, mode) in [
        ("shared", IsolationMode::Shared),
        ("dedicated", IsolationMode::Dedicated),
    ] {
        let created = tenancy
            .create_tenant(
                &Principal::Operator,
                NewTenant {
                    name: slug.into(),
                    slug: Slug::new(&format!("bench-{slug}")).expect("slug"),
                    plan: "bench".into(),
                    isolation: mode,
                },
            )
            .expect("create tenant");
        // Authenticate once; the handle is what a server keeps per request.
        let principal = tenancy
            .authenticate(created.owner_key.secret.expose())
            .expect("auth");
        let handle = tenancy
            .handle(&principal, created.tenant.id)
            .expect("handle");
        handle.create_collection("users").expect("create");
        handle.insert("users", document()).expect("insert");
        handles.push((slug, handle, created.owner_key.secret));
    }
    let bare = Database::open(
        dir.path().join("bare"),
        Options::default()
            .master_key(master.derive("bench bare engine", b""))
            .durability(Durability::Never),
    )
    .expect("open bare");
    bare.create_collection("users").expect("create");
    bare.insert("users", document()).expect("insert");

    let mut group = c.benchmark_group("point_read");
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("bare_engine_get", |b| {
        b.iter(|| black_box(bare.get("users", "u1").expect("get")))
    });
    for (slug, handle, _) in &handles {
        group.bench_function(format!("tenant_handle_get_{slug}"), |b| {
            b.iter(|| black_box(handle.get("users", "u1").expect("get")))
        });
    }
    group.finish();

    let (_, _, secret) = &handles[0];
    c.bench_function("authenticate_api_key", |b| {
        b.iter(|| black_box(tenancy.authenticate(secret.expose()).expect("auth")))
    });
}

/// The admission steps a handle runs around every engine call, without the
/// engine call.
fn admission(c: &mut Criterion) {
    let tenant = TenantId::new(1);
    let principal = Principal::Tenant {
        tenant,
        role: Role::Writer,
        key_id: KeyId::from_u128(1),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let rate = RateLimiter::new(None);
    rate.set_limit(
        tenant,
        Some(RateLimit::from_calls_per_hour(CALLS_PER_HOUR_MAX).expect("rate")),
    );
    let concurrency = ConcurrencyLimiter::new(Some(1_000));
    let gauge = QuotaGauge::new(QuotaLimits {
        storage_bytes_max: Some(u64::MAX / 2),
        documents_max: Some(u64::MAX / 2),
        ..QuotaLimits::UNLIMITED
    });
    let sink: Arc<dyn UsageSink> = Arc::new(NullSink);
    let status = TenantStatus::Active;
    c.bench_function("admission_authorize_rate_permit_quota_usage", |b| {
        b.iter(|| {
            let started = clock.monotonic();
            status
                .check(tenant, Permission::WriteDocuments)
                .expect("active");
            principal
                .authorize(tenant, Permission::WriteDocuments)
                .expect("allowed");
            rate.check(tenant, clock.monotonic()).expect("rate");
            let permit = concurrency.acquire(tenant).expect("permit");
            let reservation = gauge.reserve(100, 1, 0).expect("quota");
            reservation.commit_exact(-100, -1, 0);
            sink.record(UsageEvent {
                tenant,
                kind: OperationKind::Write,
                bytes_in: 100,
                bytes_out: 0,
                duration_us: clock.monotonic().saturating_sub(started).as_micros() as u64,
                at_unix_ms: clock.now_unix_ms(),
                idempotency_id: None,
            });
            drop(black_box(permit));
        })
    });
}

criterion_group!(benches, point_reads, admission);
criterion_main!(benches);
