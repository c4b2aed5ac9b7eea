//! Storage metering in the server, on a manual clock: the app with a real
//! tenant registry and billing database (no socket), a tenant of known
//! stored size, and samples at known instants. `storage_byte_seconds` in the
//! ledger and in `/v1/usage` is exactly size x time, split per hour, not an
//! API call, and a restart (final sample at shutdown, first sample after)
//! neither double counts nor loses the downtime.

use std::sync::Arc;
use std::time::Duration;

use aerolith_billing::metering::{usage_history, Granularity, TenantKey, STORAGE_BYTE_SECONDS};
use aerolith_core::{Clock, ManualClock};
use aerolith_server::Billing;
use aerolith_tenancy::TenantId;
use serde_json::{json, Value};

use crate::support::{call, open_live as open, ADMIN_KEY};

/// 2026-11-23T10:15:00Z: a quarter past an hour, so intervals cross hours.
const START_UNIX_MS: i64 = 1_795_428_900_000;
const HOUR_MS: i64 = 3_600_000;

fn byte_seconds(usage: &Value) -> u64 {
    usage["metrics"][STORAGE_BYTE_SECONDS]
        .as_u64()
        .unwrap_or_else(|| panic!("no storage metric in {usage}"))
}

fn hourly(billing: &Billing, tenant: TenantId, to_unix_ms: i64) -> Vec<(i64, u64)> {
    let key = TenantKey::new(tenant);
    usage_history(
        billing.ledger().as_ref(),
        key.as_str(),
        STORAGE_BYTE_SECONDS,
        START_UNIX_MS - HOUR_MS,
        to_unix_ms,
        Granularity::Hour,
    )
    .expect("history")
    .into_iter()
    .map(|b| (b.start_unix_ms, b.quantity))
    .collect()
}

#[tokio::test]
async fn storage_byte_seconds_are_exact_per_hour_in_usage_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_UNIX_MS));
    let server = open(dir.path(), &clock, None);
    let created = call(
        &server.app,
        "POST",
        "/v1/admin/tenants",
        ADMIN_KEY,
        Some(json!({"name": "storage-co"})),
    )
    .await;
    let tenant: TenantId = created["id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| created["id"].to_string())
        .parse()
        .expect("tenant id");
    let key = created["owner_key"]["key"]
        .as_str()
        .expect("key")
        .to_owned();
    call(
        &server.app,
        "POST",
        "/v1/collections",
        &key,
        Some(json!({"name": "notes"})),
    )
    .await;
    call(
        &server.app,
        "POST",
        "/v1/collections/notes/docs",
        &key,
        Some(json!({"_id": "n1", "text": "x".repeat(600)})),
    )
    .await;

    // The periodic task's sample: the tenant's integration starts now.
    let first = server
        .billing
        .sample_storage(&server.tenancy)
        .expect("samples");
    assert_eq!(first.samples, 1);
    assert_eq!(first.byte_seconds, 0, "a first sample only starts");
    let usage = call(&server.app, "GET", "/v1/usage", &key, None).await;
    let bytes = usage["storage_bytes"].as_u64().expect("storage bytes");
    assert!(bytes >= 600, "the document is stored: {usage}");
    assert_eq!(byte_seconds(&usage), 0);
    let calls_before = usage["metrics"]["api_calls.read"].as_u64().expect("reads");

    // 1 h 45 min 0.5 s later: 10:15 -> 12:00:00.5, three hours touched.
    clock.advance(Duration::from_millis(105 * 60_000 + 500));
    server
        .billing
        .sample_storage(&server.tenancy)
        .expect("samples");
    let elapsed_ms = 105 * 60_000 + 500;
    let expected = bytes * elapsed_ms / 1_000;
    let usage = call(&server.app, "GET", "/v1/usage", &key, None).await;
    assert_eq!(byte_seconds(&usage), expected, "bytes x seconds, exactly");
    assert_eq!(
        usage["metrics"]["api_calls.read"].as_u64(),
        Some(calls_before),
        "sampling storage is not an API call"
    );
    assert_eq!(
        hourly(&server.billing, tenant, clock.now_unix_ms() + HOUR_MS),
        vec![
            (START_UNIX_MS - 15 * 60_000, bytes * 45 * 60),
            (START_UNIX_MS + 45 * 60_000, bytes * 3_600),
            (START_UNIX_MS + 105 * 60_000, bytes / 2),
        ],
        "the interval is split at the hour boundaries"
    );
    // GB-months: byte-seconds over the calendar month's length (30 days).
    let month_seconds: u128 = 30 * 24 * 3_600;
    let gb_month_nanos = (u128::from(expected) * 1_000_000_000 + month_seconds * 500_000_000)
        / (month_seconds * 1_000_000_000);
    assert_eq!(usage["period"]["basis"], "calendar_month");
    assert_eq!(
        usage["storage_gb_month"],
        format!("0.{gb_month_nanos:09}"),
        "{usage}"
    );

    // Shutdown takes a final sample; 30 min pass while the server is down;
    // the next start counts the downtime at the last size, once.
    clock.advance(Duration::from_millis(10 * 60_000));
    server.shut_down();
    clock.advance(Duration::from_millis(30 * 60_000));
    let server = open(dir.path(), &clock, None);
    let restarted = server
        .billing
        .sample_storage(&server.tenancy)
        .expect("samples");
    assert_eq!(restarted.byte_seconds, u128::from(bytes) * 30 * 60);
    let usage = call(&server.app, "GET", "/v1/usage", &key, None).await;
    let total_ms = u64::try_from(clock.now_unix_ms() - START_UNIX_MS).expect("positive");
    assert_eq!(
        byte_seconds(&usage),
        bytes * total_ms / 1_000,
        "no interval counted twice or lost across the restart"
    );
    // Resampling at the same instant adds nothing.
    server
        .billing
        .sample_storage(&server.tenancy)
        .expect("samples");
    let again = call(&server.app, "GET", "/v1/usage", &key, None).await;
    assert_eq!(byte_seconds(&again), byte_seconds(&usage));
    server.shut_down();
}
