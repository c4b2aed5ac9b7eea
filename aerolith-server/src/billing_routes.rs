//! The billing routes: a tenant's subscription (read, plan-change preview,
//! change, cancel) and invoices (list, read as JSON or text, pay with an
//! `Idempotency-Key`), the operator's invoice routes behind `aerolith invoice
//! list|show` and "mark paid", the opening of the persisted
//! [`BillingService`] in the billing database, and the periodic billing run.
//!
//! Tenant routes act on the caller's own tenant only (no tenant in the path);
//! an invoice id of another tenant is `404`, never `403`, so its existence is
//! not revealed. Billing routes do not go through a `TenantHandle`: a tenant
//! suspended for non-payment can still read and pay its invoices (its data
//! routes answer `402`).
//!
//! Payment providers: `test` (deterministic test cards; also the auto-charge
//! provider for a card on file) and `manual` (bank transfer, settled by the
//! operator's "mark paid" route).

use std::sync::Arc;
use std::time::Duration;

use aerolith_billing::catalog::BillingInterval;
use aerolith_billing::invoice::{Invoice, InvoiceId};
use aerolith_billing::payment::manual::ManualProvider;
use aerolith_billing::payment::test_provider::TestProvider;
use aerolith_billing::payment::PaymentMethod;
use aerolith_billing::{
    BillingService, BillingServiceError, BillingServiceOptions, CancelMode, PayInvoiceRequest,
    SubscribeRequest,
};
use aerolith_tenancy::{Permission, Principal, Tenancy, TenantId, TenantUpdate};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::admin::resolve_tenant;
use crate::app::ApiRouter;
use crate::auth::AdminAuth;
use crate::error::{ApiError, BadRequestReason, ErrorBody};
use crate::json::JsonBody;
use crate::metering::{Billing, UsagePeriodSource};
use crate::state::AppState;

/// Name of the deterministic test-card provider.
pub const TEST_PROVIDER: &str = "test";
/// Name of the bank-transfer provider.
pub const MANUAL_PROVIDER: &str = "manual";
/// Header carrying the idempotency key of `POST /v1/invoices/{id}/pay`.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Longest accepted idempotency key.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 200;

/// Opens the billing service on the server's billing database, with the
/// `test` and `manual` providers and `tenancy` as the tenant control
/// (suspension for non-payment, resumption, audit), and makes usage periods
/// follow the subscriptions.
pub fn open_billing_service(
    billing: &Billing,
    tenancy: &Tenancy,
    clock: Arc<dyn aerolith_core::Clock>,
) -> Result<Arc<BillingService>, Box<BillingServiceError>> {
    let test_provider = Arc::new(TestProvider::new());
    let options = BillingServiceOptions::new(Arc::new(tenancy.clone()))
        .auto_charge(test_provider)
        .provider(Arc::new(ManualProvider::new()))
        .usage_ledger(billing.ledger().clone());
    let service = Arc::new(
        BillingService::open(
            billing.database().clone(),
            billing.catalog().as_ref().clone(),
            clock,
            options,
        )
        .map_err(Box::new)?,
    );
    billing.set_period_source(Arc::new(SubscriptionPeriods(service.clone())));
    Ok(service)
}

/// Usage periods follow the tenant's subscription period.
struct SubscriptionPeriods(Arc<BillingService>);

impl UsagePeriodSource for SubscriptionPeriods {
    fn current_period(&self, tenant: TenantId, now_unix_ms: i64) -> Option<(i64, i64)> {
        self.0
            .subscription(tenant)
            .map(|sub| {
                (
                    sub.current_period_start_unix_ms,
                    sub.current_period_end_unix_ms,
                )
            })
            .filter(|(start, end)| (*start..*end).contains(&now_unix_ms))
    }
}

/// Every `interval`: flushes the meter into the ledger, then runs what is
/// due (trial ends, renewals, dunning). Runs until the runtime stops.
pub async fn billing_run_loop(state: AppState, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let (Ok(service), Ok(billing)) = (state.billing_service(), state.billing()) else {
            continue;
        };
        let (service, billing) = (service.clone(), billing.clone());
        let clock = state.clock().clone();
        let ran = tokio::task::spawn_blocking(move || {
            if let Err(err) = billing.meter().flush() {
                tracing::warn!(error = %err, "meter flush before the billing run failed");
            }
            match service.run_due(clock.now_unix_ms()) {
                Ok(report) => tracing::debug!(?report, "billing run"),
                Err(err) => tracing::error!(error = %err, "billing run failed"),
            }
        })
        .await;
        if let Err(err) = ran {
            tracing::error!(error = %err, "billing run panicked");
        }
    }
}

/// Starts a new tenant's subscription on `plan_id`: the catalog's trial
/// unless `trial_days` says otherwise, and the card on file if given.
pub(crate) fn start_subscription(
    service: &BillingService,
    tenant: TenantId,
    plan_id: &str,
    trial_days: Option<u32>,
    payment_method: Option<PaymentMethod>,
) -> Result<Value, ApiError> {
    let catalog_trial = service
        .catalog()
        .plan(plan_id)
        .map(|plan| plan.trial_days)
        .ok_or_else(|| ApiError::Unprocessable {
            detail: format!("unknown plan {plan_id:?}"),
        })?;
    let trial_days = trial_days.unwrap_or(catalog_trial);
    let outcome = service.subscribe(
        tenant,
        SubscribeRequest {
            plan_id: plan_id.to_owned(),
            interval: BillingInterval::Monthly,
            trial_days: (trial_days > 0).then_some(trial_days),
            payment_method,
        },
    )?;
    Ok(json!({
        "subscription": outcome.subscription,
        "invoice_id": outcome.invoice.as_ref().map(|invoice| invoice.id().0.clone()),
    }))
}

/// Authenticates the caller, checks `permission` on its own tenant, and runs
/// `work` with the billing service on the blocking pool (`auth::as_tenant`:
/// bandwidth of billing calls is metered like any other call).
async fn as_tenant<T, F>(
    state: &AppState,
    headers: &HeaderMap,
    permission: Permission,
    work: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&BillingService, &Tenancy, &Principal, TenantId) -> Result<T, ApiError>
        + Send
        + 'static,
{
    let service = state.billing_service()?.clone();
    crate::auth::as_tenant(state, headers, Some(permission), move |caller| {
        work(&service, caller.tenancy, &caller.principal, caller.tenant)
    })
    .await
}

/// Runs operator `work` with the billing service on the blocking pool.
async fn as_operator<T, F>(state: &AppState, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&BillingService) -> Result<T, ApiError> + Send + 'static,
{
    let service = state.billing_service()?.clone();
    tokio::task::spawn_blocking(move || work(&service))
        .await
        .map_err(ApiError::internal)?
}

fn invoice_json(invoice: &Invoice) -> Result<Value, ApiError> {
    serde_json::to_value(invoice).map_err(ApiError::internal)
}

fn invoices_json(invoices: &[Invoice]) -> Result<Value, ApiError> {
    let list = invoices
        .iter()
        .map(invoice_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({ "invoices": list }))
}

/// One of `tenant`'s invoices by id, or by number for the operator's CLI.
fn find_invoice(
    service: &BillingService,
    tenant: TenantId,
    text: &str,
    by_number: bool,
) -> Result<Invoice, ApiError> {
    match service.invoice(tenant, &InvoiceId(text.to_owned())) {
        Ok(invoice) => Ok(invoice),
        Err(BillingServiceError::InvoiceNotFound { .. }) if by_number => service
            .invoices(tenant)
            .into_iter()
            .find(|invoice| invoice.number().is_some_and(|n| n.to_string() == text))
            .ok_or_else(|| ApiError::NotFound {
                what: format!("invoice {text:?}"),
            }),
        Err(err) => Err(err.into()),
    }
}

/// `?format=` of an invoice read.
#[derive(Debug, Deserialize)]
pub struct InvoiceFormat {
    /// `json` (default) or `text`.
    pub format: Option<String>,
}

fn wants_text(format: &InvoiceFormat, headers: &HeaderMap) -> Result<bool, ApiError> {
    match format.format.as_deref() {
        Some("text") => return Ok(true),
        Some("json") => return Ok(false),
        Some(other) => {
            return Err(ApiError::BadRequest {
                reason: BadRequestReason::InvalidParameter {
                    detail: format!("format {other:?}: expected `json` or `text`"),
                },
            })
        }
        None => {}
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    Ok(accept.contains("text/plain") && !accept.contains("application/json"))
}

fn invoice_response(invoice: &Invoice, text: bool) -> Result<Response, ApiError> {
    if text {
        Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            invoice.render_text(),
        )
            .into_response())
    } else {
        Ok(Json(invoice_json(invoice)?).into_response())
    }
}

/// The caller's subscription and dunning state.
#[utoipa::path(
    get,
    path = "/v1/subscription",
    tag = "billing",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "`subscription` and `dunning` (null when none)."),
        (status = 401, description = "No valid key.", body = ErrorBody),
        (status = 404, description = "The tenant never subscribed.", body = ErrorBody)
    )
)]
pub async fn get_subscription(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let body = as_tenant(
        &state,
        &headers,
        Permission::ReadInvoices,
        |service, _, _, tenant| {
            let subscription = service
                .subscription(tenant)
                .ok_or(BillingServiceError::NoSubscription { tenant })?;
            Ok(json!({
                "subscription": subscription,
                "dunning": service.dunning(tenant),
            }))
        },
    )
    .await?;
    Ok(Json(body))
}

/// Body of the plan-change routes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanChangeRequest {
    /// The new plan id (`starter`, `professional`, `enterprise`).
    pub plan: String,
}

/// The proration lines a plan change now would invoice; changes nothing.
#[utoipa::path(
    post,
    path = "/v1/subscription/preview",
    tag = "billing",
    security(("api_key" = [])),
    request_body = PlanChangeRequest,
    responses(
        (status = 200, description = "The proration preview: `lines` and `net_minor`."),
        (status = 404, description = "No subscription.", body = ErrorBody),
        (status = 422, description = "Unknown plan.", body = ErrorBody)
    )
)]
pub async fn preview_plan_change(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<PlanChangeRequest>,
) -> Result<Json<Value>, ApiError> {
    let preview = as_tenant(
        &state,
        &headers,
        Permission::ReadInvoices,
        move |service, _, _, tenant| Ok(service.preview_plan_change(tenant, &request.plan)?),
    )
    .await?;
    Ok(Json(
        serde_json::to_value(preview).map_err(ApiError::internal)?,
    ))
}

/// Changes the plan now: the previewed proration lines are invoiced and
/// charged to the card on file; the tenant's quotas follow the new plan.
#[utoipa::path(
    post,
    path = "/v1/subscription/change",
    tag = "billing",
    security(("api_key" = [])),
    request_body = PlanChangeRequest,
    responses(
        (status = 200, description = "`preview`, `subscription` and `invoice` (null during a trial)."),
        (status = 403, description = "The key may not manage the subscription.", body = ErrorBody),
        (status = 404, description = "No subscription.", body = ErrorBody),
        (status = 422, description = "Unknown plan.", body = ErrorBody)
    )
)]
pub async fn change_plan(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<PlanChangeRequest>,
) -> Result<Json<Value>, ApiError> {
    let body = as_tenant(
        &state,
        &headers,
        Permission::ManageSubscription,
        move |service, tenancy, principal, tenant| {
            // Refuse before anything is billed when the quotas could not
            // follow (the catalog and tenancy's plans are the same list when
            // the server starts; this guards a catalog that drifted).
            if !tenancy.plans().contains_key(&request.plan) {
                return Err(ApiError::Unprocessable {
                    detail: format!("unknown plan {:?}", request.plan),
                });
            }
            let outcome = service.change_plan(tenant, &request.plan)?;
            // Billing committed (and charged) first: from here the change has
            // happened, so a failure to move the quotas is reported in the
            // answer and logged for the operator, not as an error the client
            // would retry.
            let quota_plan = match tenancy.update_tenant(
                principal,
                tenant,
                TenantUpdate {
                    plan: Some(request.plan.clone()),
                    ..TenantUpdate::default()
                },
            ) {
                Ok(_) => json!({"plan": request.plan, "updated": true}),
                Err(err) => {
                    tracing::error!(tenant = %tenant, plan = %request.plan, error = %err,
                        "plan billed but the tenant's quota plan was not updated");
                    json!({"plan": request.plan, "updated": false, "error": err.to_string()})
                }
            };
            Ok(json!({
                "preview": outcome.preview,
                "subscription": outcome.subscription,
                "invoice": outcome.invoice.as_ref().map(invoice_json).transpose()?,
                "quota_plan": quota_plan,
            }))
        },
    )
    .await?;
    Ok(Json(body))
}

/// Body of `POST /v1/subscription/cancel`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// `at_period_end` (default) or `now`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub mode: Option<CancelMode>,
}

/// Cancels the subscription, at the end of the period unless `mode` is `now`.
#[utoipa::path(
    post,
    path = "/v1/subscription/cancel",
    tag = "billing",
    security(("api_key" = [])),
    request_body = CancelRequest,
    responses(
        (status = 200, description = "The subscription after cancellation."),
        (status = 404, description = "No subscription.", body = ErrorBody),
        (status = 409, description = "Already canceled.", body = ErrorBody)
    )
)]
pub async fn cancel_subscription(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CancelRequest>,
) -> Result<Json<Value>, ApiError> {
    let mode = request.mode.unwrap_or(CancelMode::AtPeriodEnd);
    let subscription = as_tenant(
        &state,
        &headers,
        Permission::ManageSubscription,
        move |service, _, _, tenant| Ok(service.cancel(tenant, mode)?),
    )
    .await?;
    Ok(Json(json!({ "subscription": subscription })))
}

/// The caller's invoices in issue order.
#[utoipa::path(
    get,
    path = "/v1/invoices",
    tag = "billing",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "`invoices`, oldest first."),
        (status = 401, description = "No valid key.", body = ErrorBody)
    )
)]
pub async fn list_invoices(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let body = as_tenant(
        &state,
        &headers,
        Permission::ReadInvoices,
        |service, _, _, tenant| invoices_json(&service.invoices(tenant)),
    )
    .await?;
    Ok(Json(body))
}

/// One of the caller's invoices, as JSON, or as text with `?format=text` or
/// `Accept: text/plain`.
#[utoipa::path(
    get,
    path = "/v1/invoices/{id}",
    tag = "billing",
    security(("api_key" = [])),
    params(
        ("id" = String, Path, description = "Invoice id."),
        ("format" = Option<String>, Query, description = "`json` (default) or `text`.")
    ),
    responses(
        (status = 200, description = "The invoice."),
        (status = 404, description = "No such invoice of this tenant.", body = ErrorBody)
    )
)]
pub async fn get_invoice(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(format): Query<InvoiceFormat>,
) -> Result<Response, ApiError> {
    let text = wants_text(&format, &headers)?;
    let invoice = as_tenant(
        &state,
        &headers,
        Permission::ReadInvoices,
        move |service, _, _, tenant| find_invoice(service, tenant, &id, false),
    )
    .await?;
    invoice_response(&invoice, text)
}

/// Body of `POST /v1/invoices/{id}/pay`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayRequest {
    /// `test` (default; cards) or `manual` (bank transfer).
    #[serde(default)]
    pub provider: Option<String>,
    /// `{"type":"card","number":"4242 4242 4242 4242"}` or
    /// `{"type":"bank_transfer"}`.
    #[schema(value_type = Object)]
    pub method: PaymentMethod,
}

/// Pays one of the caller's invoices. The `Idempotency-Key` header is
/// required: repeating a request with the same key returns the first
/// outcome and never charges twice.
#[utoipa::path(
    post,
    path = "/v1/invoices/{id}/pay",
    tag = "billing",
    security(("api_key" = [])),
    params(
        ("id" = String, Path, description = "Invoice id."),
        ("Idempotency-Key" = String, Header, description = "Client-chosen key; the same key never charges twice.")
    ),
    request_body = PayRequest,
    responses(
        (status = 200, description = "`outcome` (succeeded, pending or declined) and the `invoice`."),
        (status = 400, description = "No `Idempotency-Key`.", body = ErrorBody),
        (status = 404, description = "No such invoice of this tenant.", body = ErrorBody),
        (status = 409, description = "The invoice is already paid or void.", body = ErrorBody),
        (status = 422, description = "Unknown provider or unusable method.", body = ErrorBody)
    )
)]
pub async fn pay_invoice(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<PayRequest>,
) -> Result<Json<Value>, ApiError> {
    let key = idempotency_key(&headers)?;
    let attempt = as_tenant(
        &state,
        &headers,
        Permission::PayInvoices,
        move |service, _, _, tenant| {
            let attempt = service.pay_invoice(
                tenant,
                &InvoiceId(id),
                PayInvoiceRequest {
                    provider: request.provider.unwrap_or_else(|| TEST_PROVIDER.to_owned()),
                    method: request.method,
                    idempotency_key: key,
                },
            )?;
            Ok(json!({
                "outcome": attempt.outcome,
                "invoice": invoice_json(&attempt.invoice)?,
            }))
        },
    )
    .await?;
    Ok(Json(attempt))
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let invalid = |detail: &str| ApiError::BadRequest {
        reason: BadRequestReason::InvalidParameter {
            detail: detail.to_owned(),
        },
    };
    let value = headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .ok_or_else(|| invalid("the Idempotency-Key header is required"))?;
    let key = value
        .to_str()
        .map_err(|_| invalid("the Idempotency-Key header is not visible ASCII"))?
        .trim();
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_BYTES_MAX {
        return Err(invalid("the Idempotency-Key header must be 1..=200 bytes"));
    }
    Ok(key.to_owned())
}

/// A tenant's invoices (operator; `aerolith invoice list`).
#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}/invoices",
    tag = "admin",
    security(("admin_key" = [])),
    params(("id" = String, Path, description = "Tenant id or slug.")),
    responses(
        (status = 200, description = "`invoices`, oldest first."),
        (status = 404, description = "No such tenant.", body = ErrorBody)
    )
)]
pub async fn admin_list_invoices(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = resolve_tenant(&state, &id).await?;
    let body = as_operator(&state, move |service| {
        invoices_json(&service.invoices(tenant))
    })
    .await?;
    Ok(Json(body))
}

/// One of a tenant's invoices by id or number (operator; `aerolith invoice
/// show`), as JSON or text.
#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}/invoices/{invoice}",
    tag = "admin",
    security(("admin_key" = [])),
    params(
        ("id" = String, Path, description = "Tenant id or slug."),
        ("invoice" = String, Path, description = "Invoice id or number."),
        ("format" = Option<String>, Query, description = "`json` (default) or `text`.")
    ),
    responses(
        (status = 200, description = "The invoice."),
        (status = 404, description = "No such tenant or invoice.", body = ErrorBody)
    )
)]
pub async fn admin_get_invoice(
    _admin: AdminAuth,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, invoice)): Path<(String, String)>,
    Query(format): Query<InvoiceFormat>,
) -> Result<Response, ApiError> {
    let text = wants_text(&format, &headers)?;
    let tenant = resolve_tenant(&state, &id).await?;
    let invoice = as_operator(&state, move |service| {
        find_invoice(service, tenant, &invoice, true)
    })
    .await?;
    invoice_response(&invoice, text)
}

/// Body of the operator's "mark paid" route.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkPaidRequest {
    /// The bank transfer's reference, as received.
    pub reference: String,
}

/// Records a payment received outside the providers (a bank transfer).
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/invoices/{invoice}/mark-paid",
    tag = "admin",
    security(("admin_key" = [])),
    params(
        ("id" = String, Path, description = "Tenant id or slug."),
        ("invoice" = String, Path, description = "Invoice id or number.")
    ),
    request_body = MarkPaidRequest,
    responses(
        (status = 200, description = "The paid invoice."),
        (status = 404, description = "No such tenant or invoice.", body = ErrorBody),
        (status = 409, description = "Already paid or void.", body = ErrorBody)
    )
)]
pub async fn admin_mark_paid(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path((id, invoice)): Path<(String, String)>,
    JsonBody(request): JsonBody<MarkPaidRequest>,
) -> Result<Json<Value>, ApiError> {
    let tenant = resolve_tenant(&state, &id).await?;
    let paid = as_operator(&state, move |service| {
        let found = find_invoice(service, tenant, &invoice, true)?;
        Ok(service.mark_paid(tenant, found.id(), &request.reference)?)
    })
    .await?;
    Ok(Json(invoice_json(&paid)?))
}

/// Adds the billing routes to `routes`.
pub fn billing_routes(routes: ApiRouter) -> ApiRouter {
    routes
        .route::<__path_get_subscription, _, _>(get_subscription)
        .route::<__path_preview_plan_change, _, _>(preview_plan_change)
        .route::<__path_change_plan, _, _>(change_plan)
        .route::<__path_cancel_subscription, _, _>(cancel_subscription)
        .route::<__path_list_invoices, _, _>(list_invoices)
        .route::<__path_get_invoice, _, _>(get_invoice)
        .route::<__path_pay_invoice, _, _>(pay_invoice)
        .route::<__path_admin_list_invoices, _, _>(admin_list_invoices)
        .route::<__path_admin_get_invoice, _, _>(admin_get_invoice)
        .route::<__path_admin_mark_paid, _, _>(admin_mark_paid)
}
