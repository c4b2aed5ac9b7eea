//! The usage routes: a tenant's metered usage for the current billing period
//! (`GET /v1/usage`), its history in hour, day or month buckets
//! (`GET /v1/usage/history`), and the operator's view of any tenant
//! (`GET /v1/admin/tenants/{id}/usage`).
//!
//! The period is the tenant's current billing period when a
//! [`UsagePeriodSource`](crate::UsagePeriodSource) (the subscription store)
//! knows it, otherwise the UTC calendar month containing now. Every read
//! flushes the meter first, so it includes every call answered before it
//! (the usage request itself is counted after it answers).
//!
//! Storage: `/v1/usage` samples the tenant's stored bytes before reading, so
//! `storage_byte_seconds` runs up to the request's instant, and reports it
//! as `storage_gb_month` too: byte-seconds over the period's length,
//! `gb_months(byte_seconds x 1000, period_length_ms, 9)` — the rule
//! `aerolith_billing::metering::billable` applies to the catalog's
//! `storage_gb_month` (1 GB = 10^9 bytes held for the whole period), as a
//! decimal string with [`STORAGE_GB_MONTH_DECIMALS`] places.

use aerolith_billing::metering::{
    gb_months, usage_history, Granularity, TenantKey, API_CALLS_ADMIN, API_CALLS_OTHER,
    API_CALLS_QUERY, API_CALLS_READ, API_CALLS_WRITE, BANDWIDTH_IN_BYTES, BANDWIDTH_OUT_BYTES,
    COMPUTE_US, STORAGE_BYTE_SECONDS,
};
use aerolith_billing::period::{period_containing, Interval};
use aerolith_tenancy::{Principal, TenantId};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use crate::app::ApiRouter;
use crate::auth::AdminAuth;
use crate::error::{ApiError, BadRequestReason, ErrorBody};
use crate::metering::Billing;
use crate::state::AppState;

/// The metrics `/v1/usage` reports, in this order.
pub const USAGE_METRICS: [&str; 9] = [
    API_CALLS_READ,
    API_CALLS_WRITE,
    API_CALLS_QUERY,
    API_CALLS_ADMIN,
    API_CALLS_OTHER,
    COMPUTE_US,
    BANDWIDTH_IN_BYTES,
    BANDWIDTH_OUT_BYTES,
    STORAGE_BYTE_SECONDS,
];

/// Decimal places of `storage_gb_month` (as the billing side bills it).
pub const STORAGE_GB_MONTH_DECIMALS: u32 = 9;

/// Widest `from..to` range of one history request (about 13 months), so one
/// request reads a bounded number of ledger entries.
pub const HISTORY_RANGE_MS_MAX: i64 = 400 * 24 * 3_600_000;

/// `[start, end)` and how it was chosen.
struct UsagePeriod {
    start_unix_ms: i64,
    end_unix_ms: i64,
    basis: &'static str,
}

fn current_period(billing: &Billing, tenant: TenantId, now_unix_ms: i64) -> UsagePeriod {
    if let Some((start, end)) = billing
        .period_source()
        .and_then(|source| source.current_period(tenant, now_unix_ms))
    {
        return UsagePeriod {
            start_unix_ms: start,
            end_unix_ms: end,
            basis: "billing_period",
        };
    }
    // Anchored on 1970-01-01T00:00Z: monthly boundaries fall on the first of
    // each month at midnight UTC.
    match period_containing(0, Interval::Monthly, now_unix_ms) {
        Ok(period) => UsagePeriod {
            start_unix_ms: period.start_unix_ms,
            end_unix_ms: period.end_unix_ms,
            basis: "calendar_month",
        },
        Err(_) => UsagePeriod {
            start_unix_ms: now_unix_ms,
            end_unix_ms: now_unix_ms,
            basis: "calendar_month",
        },
    }
}

/// Flushes the meter and reads `tenant`'s usage for its current period, plus
/// its live storage figures.
async fn usage_report(state: &AppState, tenant: TenantId) -> Result<Value, ApiError> {
    let billing = state.billing()?.clone();
    let tenancy = state.tenancy()?.clone();
    let clock = state.clock().clone();
    tokio::task::spawn_blocking(move || {
        // The quota gauge: exact, and reading it is not itself a metered call.
        let storage = tenancy
            .handle(&Principal::Operator, tenant)
            .map(|handle| handle.quota_committed())
            .map_err(ApiError::from)?;
        billing
            .sample_tenant_storage(tenant, storage.storage_bytes)
            .map_err(|err| ApiError::Unavailable {
                reason: format!("storage sampler: {err}"),
            })?;
        let now_unix_ms = clock.now_unix_ms();
        let period = current_period(&billing, tenant, now_unix_ms);
        let key = TenantKey::new(tenant);
        let metrics = billing
            .meter()
            .usage_to_date(key.as_str(), &USAGE_METRICS, period.start_unix_ms)
            .map_err(|err| ApiError::Unavailable {
                reason: format!("usage meter: {err}"),
            })?;
        let byte_seconds = metrics
            .iter()
            .find(|(m, _)| m == STORAGE_BYTE_SECONDS)
            .map_or(0, |(_, q)| *q);
        let storage_gb_month = gb_months(
            u128::from(byte_seconds) * 1_000,
            (period.end_unix_ms - period.start_unix_ms).max(1),
            STORAGE_GB_MONTH_DECIMALS,
        )
        .map_err(|err| ApiError::Unavailable {
            reason: format!("storage GB-months: {err}"),
        })?;
        let metrics: serde_json::Map<String, Value> =
            metrics.into_iter().map(|(m, q)| (m, json!(q))).collect();
        Ok(json!({
            "tenant_id": tenant.to_string(),
            "period": {
                "start_unix_ms": period.start_unix_ms,
                "end_unix_ms": period.end_unix_ms,
                "basis": period.basis,
            },
            "as_of_unix_ms": now_unix_ms,
            "metrics": metrics,
            "storage_gb_month": storage_gb_month.to_string(),
            "storage_bytes": storage.storage_bytes,
            "documents": storage.documents,
            "collections": storage.collections,
        }))
    })
    .await
    .map_err(ApiError::internal)?
}

/// Authenticates a tenant API key or token (any role may read its usage)
/// and returns its tenant (`auth::as_tenant`).
async fn caller_tenant(state: &AppState, headers: &HeaderMap) -> Result<TenantId, ApiError> {
    crate::auth::as_tenant(
        state,
        headers,
        Some(aerolith_tenancy::Permission::ReadUsage),
        |caller| Ok(caller.tenant),
    )
    .await
}

/// The caller's usage in the current billing period, per metric.
#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "usage",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "`period`, `metrics` (metric -> quantity), `storage_gb_month` (decimal string), `storage_bytes`, `documents`, `collections`."),
        (status = 401, description = "No valid key.", body = ErrorBody)
    )
)]
pub async fn usage(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller_tenant(&state, &headers).await?;
    Ok(Json(usage_report(&state, tenant).await?))
}

/// Query of `GET /v1/usage/history`.
#[derive(Debug, serde::Deserialize)]
pub struct HistoryParams {
    /// The metric (`api_calls.read`, `bandwidth_out_bytes`, ...).
    pub metric: String,
    /// `hour`, `day` (default) or `month`.
    pub granularity: Option<String>,
    /// Start (Unix ms, inclusive); default the current period's start.
    pub from: Option<i64>,
    /// End (Unix ms, exclusive); default now (the current hour included).
    pub to: Option<i64>,
}

fn invalid(detail: String) -> ApiError {
    ApiError::BadRequest {
        reason: BadRequestReason::InvalidParameter { detail },
    }
}

/// The caller's usage of one metric over time.
#[utoipa::path(
    get,
    path = "/v1/usage/history",
    tag = "usage",
    security(("api_key" = [])),
    params(
        ("metric" = String, Query, description = "Metric name."),
        ("granularity" = Option<String>, Query, description = "`hour`, `day` (default) or `month`."),
        ("from" = Option<i64>, Query, description = "Start, Unix ms (default: period start)."),
        ("to" = Option<i64>, Query, description = "End, Unix ms, exclusive (default: end of the current hour).")
    ),
    responses(
        (status = 200, description = "`buckets`: `start_unix_ms` and `quantity`, buckets without usage omitted."),
        (status = 400, description = "Unknown metric or granularity, or a bad range.", body = ErrorBody),
        (status = 401, description = "No valid key.", body = ErrorBody)
    )
)]
pub async fn usage_history_route(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HistoryParams>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller_tenant(&state, &headers).await?;
    let metric = USAGE_METRICS
        .iter()
        .find(|m| **m == params.metric)
        .copied()
        .ok_or_else(|| {
            invalid(format!(
                "unknown metric {:?}; one of {}",
                params.metric,
                USAGE_METRICS.join(", ")
            ))
        })?;
    let granularity = match params.granularity.as_deref().unwrap_or("day") {
        "hour" => Granularity::Hour,
        "day" => Granularity::Day,
        "month" => Granularity::Month,
        other => {
            return Err(invalid(format!(
                "granularity {other:?} is not hour, day or month"
            )))
        }
    };
    let billing = state.billing()?.clone();
    let clock = state.clock().clone();
    let reply = tokio::task::spawn_blocking(move || {
        let meter = billing.meter();
        let now_unix_ms = clock.now_unix_ms();
        // By default the period's ledger hours: from the hour the period
        // starts in, as invoicing counts them (`metering::billable`).
        let from = params.from.unwrap_or_else(|| {
            aerolith_billing::metering::hour_start(
                current_period(&billing, tenant, now_unix_ms).start_unix_ms,
            )
        });
        let to = params.to.unwrap_or_else(|| {
            aerolith_billing::metering::hour_start(now_unix_ms)
                + aerolith_billing::metering::HOUR_MS
        });
        if to <= from
            || to
                .checked_sub(from)
                .is_none_or(|width| width > HISTORY_RANGE_MS_MAX)
        {
            return Err(invalid(format!(
                "range [{from}, {to}) is empty or wider than {HISTORY_RANGE_MS_MAX} ms"
            )));
        }
        meter.flush().map_err(|err| ApiError::Unavailable {
            reason: format!("usage meter: {err}"),
        })?;
        let key = TenantKey::new(tenant);
        let buckets = usage_history(
            billing.ledger().as_ref(),
            key.as_str(),
            metric,
            from,
            to,
            granularity,
        )
        .map_err(|err| ApiError::Unavailable {
            reason: format!("usage ledger: {err}"),
        })?;
        Ok(json!({
            "tenant_id": tenant.to_string(),
            "metric": metric,
            "granularity": granularity,
            "from_unix_ms": from,
            "to_unix_ms": to,
            "buckets": buckets,
        }))
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(Json(reply))
}

/// Any tenant's usage in its current billing period (operator).
#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}/usage",
    tag = "admin",
    security(("admin_key" = [])),
    params(("id" = String, Path, description = "Tenant id or slug.")),
    responses(
        (status = 200, description = "As `GET /v1/usage`."),
        (status = 401, description = "Missing or wrong admin key.", body = ErrorBody),
        (status = 404, description = "No such tenant.", body = ErrorBody)
    )
)]
pub async fn admin_tenant_usage(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = crate::admin::resolve_tenant(&state, &id).await?;
    Ok(Json(usage_report(&state, tenant).await?))
}

/// Adds the usage routes to `routes`.
pub fn usage_routes(routes: ApiRouter) -> ApiRouter {
    routes
        .route::<__path_usage, _, _>(usage)
        .route::<__path_usage_history_route, _, _>(usage_history_route)
        .route::<__path_admin_tenant_usage, _, _>(admin_tenant_usage)
}
