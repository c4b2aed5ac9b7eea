//! The operator's export and import are the operator's work: they are not
//! metered as the tenant's calls and not throttled by the tenant's hourly
//! call limit, but both are in the tenant's audit chain.

use std::collections::BTreeMap;
use std::sync::Arc;

use aerolith_core::ManualClock;
use aerolith_tenancy::{AuditAction, AuditChain, Principal, QuotaLimits, TenantId};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};

use crate::support::{call, create_tenant, open_live, request, send, Live, ADMIN_KEY};

const START_UNIX_MS: i64 = 1_795_428_900_000;
const CALLS_PER_HOUR: u64 = 600;
/// The burst of 600 calls per hour: one minute's worth, all at once.
const BURST: u64 = 10;
const COLLECTIONS: usize = 5;

async fn tenant(live: &Live, slug: &str, plan: &str) -> (TenantId, String) {
    let (id, key) = create_tenant(live, slug, Some(plan)).await;
    (id.parse().expect("tenant id"), key)
}

fn calls(usage: &Value) -> u64 {
    let metrics = usage["metrics"].as_object().expect("metrics");
    metrics
        .iter()
        .filter(|(name, _)| name.starts_with("api_calls."))
        .map(|(_, q)| q.as_u64().expect("count"))
        .sum()
}

fn actions(live: &Live, tenant: TenantId) -> Vec<(AuditAction, String)> {
    live.tenancy
        .audit_log(&Principal::Operator, AuditChain::Tenant(tenant), 0, 1_000)
        .expect("audit log")
        .into_iter()
        .map(|entry| (entry.action, entry.target))
        .collect()
}

#[tokio::test]
async fn operator_export_and_import_are_audited_but_not_metered_or_throttled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_UNIX_MS));
    let mut plans = BTreeMap::new();
    plans.insert("roomy".to_owned(), QuotaLimits::UNLIMITED);
    plans.insert(
        "throttled".to_owned(),
        QuotaLimits {
            api_calls_per_hour: Some(CALLS_PER_HOUR),
            ..QuotaLimits::UNLIMITED
        },
    );
    let live = open_live(dir.path(), &clock, Some(plans));
    let app = &live.app;

    // A source tenant with more collections than the target may make calls.
    let (source, source_key) = tenant(&live, "source-co", "roomy").await;
    for c in 0..COLLECTIONS {
        let name = format!("c{c}");
        call(
            app,
            "POST",
            "/v1/collections",
            &source_key,
            Some(json!({"name": name})),
        )
        .await;
        call(
            app,
            "POST",
            &format!("/v1/collections/{name}/indexes"),
            &source_key,
            Some(json!({"path": "n"})),
        )
        .await;
        let docs: Vec<Value> = (0..3)
            .map(|n| json!({"_id": format!("d{n}"), "n": n}))
            .collect();
        call(
            app,
            "POST",
            &format!("/v1/collections/{name}/docs"),
            &source_key,
            Some(json!({"documents": docs})),
        )
        .await;
    }
    let export = send(
        app,
        Request::get("/v1/admin/tenants/source-co/export")
            .header("authorization", format!("Bearer {ADMIN_KEY}"))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.text());
    let export = export.text();

    let (target, target_key) = tenant(&live, "target-co", "throttled").await;
    let imported = send(
        app,
        Request::post("/v1/admin/tenants/target-co/import")
            .header("authorization", format!("Bearer {ADMIN_KEY}"))
            .header("content-type", "application/x-ndjson")
            .body(Body::from(export.clone()))
            .expect("request"),
    )
    .await;
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.text());
    let report = imported.json();
    assert_eq!(report["collections"], COLLECTIONS);
    assert_eq!(report["documents"], COLLECTIONS * 3);
    // Far more tenant operations than the target's burst, yet none
    // were metered as its calls.
    let usage = call(
        app,
        "GET",
        "/v1/admin/tenants/target-co/usage",
        ADMIN_KEY,
        None,
    )
    .await;
    assert_eq!(
        calls(&usage),
        0,
        "operator transfers are not billed: {usage}"
    );
    assert_eq!(usage["documents"], COLLECTIONS * 3);

    // The tenant's own allowance is untouched: its whole burst is left.
    for n in 0..BURST {
        let reply = request(app, "GET", "/v1/collections/c0/docs/d0", &target_key, None).await;
        assert_eq!(reply.status, StatusCode::OK, "call {n}: {}", reply.text());
    }
    let reply = request(app, "GET", "/v1/collections/c0/docs/d0", &target_key, None).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    let usage = call(
        app,
        "GET",
        "/v1/admin/tenants/target-co/usage",
        ADMIN_KEY,
        None,
    )
    .await;
    assert_eq!(calls(&usage), BURST, "the tenant's own calls are metered");
    // The operator is not limited by the throttled tenant either.
    let again = send(
        app,
        Request::get("/v1/admin/tenants/target-co/export")
            .header("authorization", format!("Bearer {ADMIN_KEY}"))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.text().lines().count(), export.lines().count());

    // Both ends are audited.
    let exported: Vec<_> = actions(&live, source)
        .into_iter()
        .filter(|(action, _)| *action == AuditAction::DataExported)
        .collect();
    assert_eq!(exported.len(), 1, "{exported:?}");
    assert_eq!(
        exported[0].1,
        format!("export of {COLLECTIONS} collections")
    );
    let target_actions = actions(&live, target);
    assert!(
        target_actions.contains(&(
            AuditAction::DataImported,
            format!(
                "import of {COLLECTIONS} collections, {COLLECTIONS} indexes, {} documents",
                COLLECTIONS * 3
            )
        )),
        "{target_actions:?}"
    );
    assert!(target_actions.contains(&(
        AuditAction::DataExported,
        format!("export of {COLLECTIONS} collections")
    )));
    live.shut_down();
}
