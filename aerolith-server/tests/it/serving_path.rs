//! The fast serving path keeps every answer as it was: a point read serves
//! the stored JSON text byte for byte as `Json(document)` wrote it, a cached
//! credential stops working on the request after its revocation (and after
//! a suspension, the tenant's writes stop), and a request authenticated as
//! a tenant is billed to it even when it is forbidden.

use std::sync::Arc;

use aerolith_core::ManualClock;
use aerolith_tenancy::TenantId;
use serde_json::{json, Value};

use crate::support::{call, create_tenant, open_live, request, Live, ADMIN_KEY};

const START_UNIX_MS: i64 = 1_795_428_900_000;

/// A live app with one tenant and its collection `c`; returns the tenant id
/// and the owner key.
async fn tenant_with_collection(live: &Live, slug: &str) -> (String, String) {
    let (id, key) = create_tenant(live, slug, None).await;
    call(
        &live.app,
        "POST",
        "/v1/collections",
        &key,
        Some(json!({"name": "c"})),
    )
    .await;
    (id, key)
}

#[tokio::test]
async fn a_point_read_serves_exactly_the_json_of_the_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_UNIX_MS));
    let live = open_live(dir.path(), &clock, None);
    let (id, key) = tenant_with_collection(&live, "reader-co").await;
    let tenant: TenantId = id.parse().expect("tenant id");
    let docs = [
        json!({"_id": "a", "n": 1}),
        json!({"z": 1, "a": [1.5, -0.0, 1e300, 12_345_678_901_234_567_890u64], "_id": "b"}),
        json!({"s": "quote \" backslash \\ tab \t nul \u{0} é 🦀 \u{2028}", "_id": "c"}),
        json!({"nested": {"deep": [{"x": null, "y": true}], "f": 0.1}}),
    ];
    let handle = live
        .tenancy
        .handle(&aerolith_tenancy::Principal::Operator, tenant)
        .expect("operator handle");
    for doc in docs {
        let inserted = call(&live.app, "POST", "/v1/collections/c/docs", &key, Some(doc)).await;
        let doc_id = inserted["id"].as_str().expect("id");
        let stored = handle.get("c", doc_id).expect("get").expect("exists");
        for _ in 0..2 {
            // The first read may authenticate from the store, the second
            // from the credential cache (inline); both answer the same.
            let reply = request(
                &live.app,
                "GET",
                &format!("/v1/collections/c/docs/{doc_id}"),
                &key,
                None,
            )
            .await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            assert_eq!(reply.headers["content-type"], "application/json");
            let expected = axum::Json(stored.clone());
            let expected = axum::response::IntoResponse::into_response(expected);
            let expected = axum::body::to_bytes(expected.into_body(), usize::MAX)
                .await
                .expect("body");
            assert_eq!(reply.body, expected, "{doc_id}");
        }
    }
    let missing = request(&live.app, "GET", "/v1/collections/c/docs/nope", &key, None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "not_found");
    live.shut_down();
}

#[tokio::test]
async fn revocation_and_suspension_take_effect_on_the_next_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_UNIX_MS));
    let live = open_live(dir.path(), &clock, None);
    let (id, _owner) = tenant_with_collection(&live, "revoke-co").await;
    let writer = call(
        &live.app,
        "POST",
        &format!("/v1/admin/tenants/{id}/keys"),
        ADMIN_KEY,
        Some(json!({"role": "writer"})),
    )
    .await;
    let key = writer["key"].as_str().expect("key").to_owned();
    let key_id = writer["record"]["key_id"].as_str().expect("key id");
    call(
        &live.app,
        "POST",
        "/v1/collections/c/docs",
        &key,
        Some(json!({"_id": "d"})),
    )
    .await;
    for _ in 0..3 {
        call(&live.app, "GET", "/v1/collections/c/docs/d", &key, None).await;
    }

    call(
        &live.app,
        "POST",
        &format!("/v1/admin/tenants/{id}/suspend"),
        ADMIN_KEY,
        Some(json!({"reason": "non_payment"})),
    )
    .await;
    let write = request(
        &live.app,
        "POST",
        "/v1/collections/c/docs",
        &key,
        Some(json!({"_id": "e"})),
    )
    .await;
    assert_eq!(write.status, 402, "{}", write.text());
    call(&live.app, "GET", "/v1/collections/c/docs/d", &key, None).await;
    call(
        &live.app,
        "POST",
        &format!("/v1/admin/tenants/{id}/resume"),
        ADMIN_KEY,
        None,
    )
    .await;

    call(
        &live.app,
        "DELETE",
        &format!("/v1/admin/tenants/{id}/keys/{key_id}"),
        ADMIN_KEY,
        None,
    )
    .await;
    for _ in 0..2 {
        let read = request(&live.app, "GET", "/v1/collections/c/docs/d", &key, None).await;
        assert_eq!(read.status, 401, "{}", read.text());
    }
    // Writes are prepared inline with a cached credential too: the revoked
    // key writes nothing, whatever the route.
    let writes = [
        ("POST", "/v1/collections/c/docs", Some(json!({"_id": "f"}))),
        ("PUT", "/v1/collections/c/docs/d", Some(json!({"v": 2}))),
        ("PATCH", "/v1/collections/c/docs/d", Some(json!({"v": 3}))),
        ("DELETE", "/v1/collections/c/docs/d", None),
    ];
    for (method, path, body) in writes {
        let refused = request(&live.app, method, path, &key, body).await;
        assert_eq!(refused.status, 401, "{method} {path}: {}", refused.text());
    }
    let tenant: TenantId = id.parse().expect("tenant id");
    let handle = live
        .tenancy
        .handle(&aerolith_tenancy::Principal::Operator, tenant)
        .expect("operator handle");
    assert_eq!(
        handle.get("c", "d").expect("get"),
        Some(json!({"_id": "d"})),
        "the revoked key changed nothing"
    );
    assert!(handle.get("c", "f").expect("get").is_none());
    live.shut_down();
}

fn metric(usage: &Value, name: &str) -> u64 {
    usage["metrics"][name].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn a_forbidden_request_is_billed_to_its_tenant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_UNIX_MS));
    let live = open_live(dir.path(), &clock, None);
    let (id, owner) = tenant_with_collection(&live, "forbid-co").await;
    let reader = call(
        &live.app,
        "POST",
        &format!("/v1/admin/tenants/{id}/keys"),
        ADMIN_KEY,
        Some(json!({"role": "reader"})),
    )
    .await;
    let reader = reader["key"].as_str().expect("key").to_owned();
    let before = call(&live.app, "GET", "/v1/usage", &owner, None).await;
    let before_bytes = serde_json::to_vec(&before).expect("serialises").len() as u64;
    let body = json!({"_id": "x", "pad": "p".repeat(100)});
    let refused = request(
        &live.app,
        "POST",
        "/v1/collections/c/docs",
        &reader,
        Some(body.clone()),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    let after = call(&live.app, "GET", "/v1/usage", &owner, None).await;
    assert_eq!(
        metric(&after, "bandwidth_in_bytes"),
        metric(&before, "bandwidth_in_bytes") + body.to_string().len() as u64,
        "{after}"
    );
    assert_eq!(
        metric(&after, "bandwidth_out_bytes"),
        metric(&before, "bandwidth_out_bytes") + before_bytes + refused.body.len() as u64,
        "{after}"
    );
    live.shut_down();
}
