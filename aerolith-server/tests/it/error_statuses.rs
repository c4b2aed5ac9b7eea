//! The error statuses of the data API on the real routes, over a real
//! tenant registry (no socket, a manual clock): 400 malformed, 401, 402 for a
//! tenant suspended for non-payment, 403 forbidden and 403 quota exceeded
//! (the body names the limit, its value and the use), 404, 409, 413, 422 for
//! an invalid filter or document, 429 with `Retry-After`; bad input is never
//! a 5xx, and a panicking handler leaves the server serving.

use std::collections::BTreeMap;
use std::sync::Arc;

use aerolith_core::ManualClock;
use aerolith_tenancy::QuotaLimits;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};

use crate::support::{
    call, create_tenant, open_live, request, send, Live, Reply, ADMIN_KEY, BODY_BYTES_MAX,
};

const START_UNIX_MS: i64 = 1_795_428_900_000;
const CALLS_PER_HOUR: u64 = 12;

fn plans() -> BTreeMap<String, QuotaLimits> {
    let mut plans = BTreeMap::new();
    plans.insert("roomy".to_owned(), QuotaLimits::UNLIMITED);
    plans.insert(
        "tiny".to_owned(),
        QuotaLimits {
            documents_max: Some(2),
            collections_max: Some(1),
            ..QuotaLimits::UNLIMITED
        },
    );
    plans.insert(
        "throttled".to_owned(),
        QuotaLimits {
            api_calls_per_hour: Some(CALLS_PER_HOUR),
            ..QuotaLimits::UNLIMITED
        },
    );
    plans
}

/// Creates a tenant on `plan`; its id and owner key.
async fn tenant(live: &Live, slug: &str, plan: &str) -> (String, String) {
    create_tenant(live, slug, Some(plan)).await
}

fn expect(reply: &Reply, status: u16, code: &str) -> Value {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["error"]["code"], code, "{body}");
    body
}

fn raw(method: &str, uri: &str, key: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .expect("request")
}

#[tokio::test]
async fn every_error_status_of_the_data_api_on_the_real_routes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_UNIX_MS));
    let live = open_live(dir.path(), &clock, Some(plans()));
    let app = &live.app;
    let (id, owner) = tenant(&live, "acme", "roomy").await;
    call(
        app,
        "POST",
        "/v1/collections",
        &owner,
        Some(json!({"name": "notes"})),
    )
    .await;
    call(
        app,
        "POST",
        "/v1/collections/notes/docs",
        &owner,
        Some(json!({"_id": "n1", "n": 1})),
    )
    .await;

    // 400: malformed JSON, a bad query parameter.
    let reply = send(
        app,
        raw("POST", "/v1/collections/notes/docs", &owner, "{\"n\": "),
    )
    .await;
    let body = expect(&reply, 400, "bad_request");
    assert_eq!(body["error"]["reason"], "malformed_json");
    let reply = request(app, "GET", "/v1/usage/history?metric=nope", &owner, None).await;
    expect(&reply, 400, "bad_request");

    // 401: no key, a wrong key.
    let reply = send(app, crate::support::get("/v1/collections")).await;
    expect(&reply, 401, "unauthenticated");
    assert_eq!(reply.headers["www-authenticate"], "Bearer");
    let reply = request(app, "GET", "/v1/collections", "ak_wrong", None).await;
    expect(&reply, 401, "unauthenticated");

    // 403: a reader may not write.
    let reader = call(
        app,
        "POST",
        &format!("/v1/admin/tenants/{id}/keys"),
        ADMIN_KEY,
        Some(json!({"role": "reader"})),
    )
    .await["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let reply = request(
        app,
        "POST",
        "/v1/collections/notes/docs",
        &reader,
        Some(json!({"n": 2})),
    )
    .await;
    expect(&reply, 403, "forbidden");
    let reply = request(app, "GET", "/v1/collections/notes/docs/n1", &reader, None).await;
    assert_eq!(reply.status, StatusCode::OK, "a reader reads");

    // 404: a missing collection, document, tenant.
    let reply = request(app, "GET", "/v1/collections/ghost/docs/x", &owner, None).await;
    expect(&reply, 404, "not_found");
    let reply = request(app, "GET", "/v1/collections/notes/docs/ghost", &owner, None).await;
    expect(&reply, 404, "not_found");
    let reply = request(app, "GET", "/v1/admin/tenants/nobody-here", ADMIN_KEY, None).await;
    expect(&reply, 404, "not_found");

    // 409: a taken document id, an existing collection, a taken slug.
    let reply = request(
        app,
        "POST",
        "/v1/collections/notes/docs",
        &owner,
        Some(json!({"_id": "n1"})),
    )
    .await;
    expect(&reply, 409, "conflict");
    let reply = request(
        app,
        "POST",
        "/v1/collections",
        &owner,
        Some(json!({"name": "notes"})),
    )
    .await;
    expect(&reply, 409, "conflict");
    let reply = request(
        app,
        "POST",
        "/v1/admin/tenants",
        ADMIN_KEY,
        Some(json!({"name": "acme", "plan": "roomy"})),
    )
    .await;
    expect(&reply, 409, "conflict");

    // 413: a body over the limit.
    let big = json!({"text": "x".repeat(usize::try_from(BODY_BYTES_MAX).expect("small"))});
    let reply = request(app, "POST", "/v1/collections/notes/docs", &owner, Some(big)).await;
    let body = expect(&reply, 413, "payload_too_large");
    assert_eq!(body["error"]["size_bytes_max"], BODY_BYTES_MAX);

    // 422: invalid filters, invalid documents, an invalid collection name.
    for query in [
        json!({"filter": {"n": {"$bogus": 1}}}),
        json!({"filter": "n = 1"}),
        json!({"filter": {"n": 1}, "limit": -3}),
        json!([1, 2]),
        json!({"count": "yes"}),
    ] {
        let reply = request(
            app,
            "POST",
            "/v1/collections/notes/query",
            &owner,
            Some(query.clone()),
        )
        .await;
        expect(&reply, 422, "unprocessable");
    }
    for document in [json!([1, 2]), json!("text"), json!({"_id": 7})] {
        let reply = request(
            app,
            "POST",
            "/v1/collections/notes/docs",
            &owner,
            Some(document.clone()),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 422, "{document}: {}", reply.text());
    }
    let reply = request(
        app,
        "POST",
        "/v1/collections",
        &owner,
        Some(json!({"name": "no/slash"})),
    )
    .await;
    expect(&reply, 422, "unprocessable");

    // 403 quota exceeded: the body names the limit, its value and the use.
    let (_, tiny) = tenant(&live, "tiny-co", "tiny").await;
    call(
        app,
        "POST",
        "/v1/collections",
        &tiny,
        Some(json!({"name": "a"})),
    )
    .await;
    let reply = request(
        app,
        "POST",
        "/v1/collections",
        &tiny,
        Some(json!({"name": "b"})),
    )
    .await;
    let body = expect(&reply, 403, "quota_exceeded");
    assert_eq!(body["error"]["limit"], "collections", "{body}");
    assert_eq!(body["error"]["limit_value"], 1);
    assert_eq!(body["error"]["usage"], 1);
    for n in 0..2 {
        call(
            app,
            "POST",
            "/v1/collections/a/docs",
            &tiny,
            Some(json!({"n": n})),
        )
        .await;
    }
    let reply = request(
        app,
        "POST",
        "/v1/collections/a/docs",
        &tiny,
        Some(json!({"n": 3})),
    )
    .await;
    let body = expect(&reply, 403, "quota_exceeded");
    assert_eq!(body["error"]["limit"], "documents", "{body}");
    assert_eq!(body["error"]["limit_value"], 2);
    assert_eq!(body["error"]["usage"], 2);

    // 402: suspended for non-payment, writes are refused and name the
    // tenant; reads still work. An operator suspension is a 403.
    let suspended = call(
        app,
        "POST",
        &format!("/v1/admin/tenants/{id}/suspend"),
        ADMIN_KEY,
        Some(json!({"reason": "non_payment"})),
    )
    .await;
    assert_eq!(suspended["status"]["reason"], "non_payment", "{suspended}");
    let reply = request(
        app,
        "POST",
        "/v1/collections/notes/docs",
        &owner,
        Some(json!({"n": 5})),
    )
    .await;
    let body = expect(&reply, 402, "payment_required");
    assert_eq!(body["error"]["tenant_id"], id);
    let reply = request(app, "GET", "/v1/collections/notes/docs/n1", &owner, None).await;
    assert_eq!(reply.status, StatusCode::OK, "read-only while suspended");
    call(
        app,
        "POST",
        &format!("/v1/admin/tenants/{id}/resume"),
        ADMIN_KEY,
        None,
    )
    .await;
    call(
        app,
        "POST",
        &format!("/v1/admin/tenants/{id}/suspend"),
        ADMIN_KEY,
        Some(json!({"reason": "operator"})),
    )
    .await;
    let reply = request(
        app,
        "POST",
        "/v1/collections/notes/docs",
        &owner,
        Some(json!({"n": 6})),
    )
    .await;
    expect(&reply, 403, "forbidden");
    call(
        app,
        "POST",
        &format!("/v1/admin/tenants/{id}/resume"),
        ADMIN_KEY,
        None,
    )
    .await;

    // 429 with Retry-After once the hourly calls are used up.
    let (_, throttled) = tenant(&live, "busy-co", "throttled").await;
    let mut limited = None;
    for _ in 0..=CALLS_PER_HOUR {
        let reply = request(app, "GET", "/v1/collections", &throttled, None).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(reply);
            break;
        }
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let reply = limited.expect("the hourly limit is reached");
    let body = expect(&reply, 429, "rate_limited");
    let retry_after: u64 = reply.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("whole seconds");
    assert!((1..=3_600).contains(&retry_after), "{retry_after}");
    assert_eq!(body["error"]["retry_after_seconds"], retry_after);

    live.shut_down();
}

#[tokio::test]
async fn bad_input_is_never_a_server_error_and_a_panic_does_not_stop_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_UNIX_MS));
    let live = open_live(dir.path(), &clock, Some(plans()));
    let app = &live.app;
    let (id, owner) = tenant(&live, "acme", "roomy").await;
    call(
        app,
        "POST",
        "/v1/collections",
        &owner,
        Some(json!({"name": "notes"})),
    )
    .await;
    let bad: Vec<(&str, String, &str, String)> = vec![
        ("POST", "/v1/collections".into(), &owner, "[]".into()),
        (
            "POST",
            "/v1/collections".into(),
            &owner,
            "{\"name\": 5}".into(),
        ),
        (
            "POST",
            "/v1/collections".into(),
            &owner,
            "{\"name\": \"\"}".into(),
        ),
        (
            "POST",
            "/v1/collections/notes/docs".into(),
            &owner,
            "\u{0}".into(),
        ),
        (
            "POST",
            "/v1/collections/notes/docs".into(),
            &owner,
            "{\"_id\": \"\"}".into(),
        ),
        (
            "POST",
            "/v1/collections/notes/docs".into(),
            &owner,
            "{\"documents\": [1, 2]}".into(),
        ),
        (
            "PUT",
            "/v1/collections/notes/docs/x".into(),
            &owner,
            "7".into(),
        ),
        (
            "PATCH",
            "/v1/collections/notes/docs/x".into(),
            &owner,
            "{\"$set\": 3}".into(),
        ),
        (
            "POST",
            "/v1/collections/notes/query".into(),
            &owner,
            "{\"sort\": 5}".into(),
        ),
        (
            "POST",
            "/v1/collections/notes/query".into(),
            &owner,
            "{\"filter\": {\"$or\": 1}}".into(),
        ),
        (
            "POST",
            "/v1/collections/notes/query".into(),
            &owner,
            "{\"projection\": [\"a\"]}".into(),
        ),
        (
            "POST",
            "/v1/collections/notes/query".into(),
            &owner,
            "{\"skip\": 1e99}".into(),
        ),
        (
            "POST",
            "/v1/collections/notes/indexes".into(),
            &owner,
            "{\"path\": \"\"}".into(),
        ),
        (
            "POST",
            "/v1/collections/notes/indexes".into(),
            &owner,
            "{}".into(),
        ),
        (
            "DELETE",
            "/v1/collections/notes/indexes/%FF".into(),
            &owner,
            String::new(),
        ),
        (
            "GET",
            "/v1/collections/%2E%2E/docs/x".into(),
            &owner,
            String::new(),
        ),
        (
            "GET",
            "/v1/usage/history?metric=api_calls.read&from=9&to=1".into(),
            &owner,
            String::new(),
        ),
        (
            "GET",
            "/v1/usage/history?metric=api_calls.read&from=x".into(),
            &owner,
            String::new(),
        ),
        (
            "GET",
            "/v1/usage/history?metric=api_calls.read&granularity=week".into(),
            &owner,
            String::new(),
        ),
        (
            "POST",
            "/v1/tokens".into(),
            &owner,
            "{\"ttl_seconds\": -1}".into(),
        ),
        (
            "POST",
            "/v1/admin/tenants".into(),
            ADMIN_KEY,
            "{\"name\": \"x\", \"plan\": \"gold\"}".into(),
        ),
        (
            "POST",
            "/v1/admin/tenants".into(),
            ADMIN_KEY,
            "{\"name\": \"Bad Slug!\"}".into(),
        ),
        (
            "POST",
            format!("/v1/admin/tenants/{id}/keys"),
            ADMIN_KEY,
            "{\"role\": \"god\"}".into(),
        ),
        (
            "POST",
            format!("/v1/admin/tenants/{id}/suspend"),
            ADMIN_KEY,
            "{\"reason\": \"whim\"}".into(),
        ),
        (
            "GET",
            "/v1/admin/tenants?limit=-1".into(),
            ADMIN_KEY,
            String::new(),
        ),
        (
            "GET",
            "/v1/admin/tenants?after=zz".into(),
            ADMIN_KEY,
            String::new(),
        ),
        (
            "POST",
            format!("/v1/admin/tenants/{id}/import"),
            ADMIN_KEY,
            "not json lines\n".into(),
        ),
        (
            "DELETE",
            format!("/v1/admin/tenants/{id}/keys/nope"),
            ADMIN_KEY,
            String::new(),
        ),
    ];
    for (method, uri, key, body) in &bad {
        let reply = send(app, raw(method, uri, key, body)).await;
        assert!(
            reply.status.is_client_error(),
            "{method} {uri} {body:?}: {} {}",
            reply.status,
            reply.text()
        );
        assert!(reply.json()["error"]["code"].is_string(), "JSON error body");
    }
    // A handler bug is a JSON 500, and the next request is served.
    let reply = send(app, crate::support::get("/test/panic")).await;
    expect(&reply, 500, "internal");
    let reply = request(app, "GET", "/v1/collections", &owner, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    live.shut_down();
}
