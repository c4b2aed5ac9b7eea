//! The operator's HTTP routes under `/v1/admin`: tenant lifecycle (create,
//! list, get, update, suspend, resume, delete) and tenant API keys. Every
//! route requires the admin key ([`AdminAuth`]) and acts as
//! `Principal::Operator`; the work runs on the blocking pool. A tenant in
//! the path is its decimal id or its slug (`resolve_tenant`).

use std::str::FromStr;

use aerolith_tenancy::{
    ApiKeyRecord, IsolationMode, KeyId, NewTenant, Principal, Role, Slug, SuspensionReason,
    Tenancy, TenancyError, Tenant, TenantId, TenantUpdate,
};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::ApiRouter;
use crate::auth::AdminAuth;
use crate::error::{ApiError, BadRequestReason, ErrorBody};
use crate::json::JsonBody;
use crate::state::AppState;

/// Tenants per page of `GET /v1/admin/tenants` when the client names none.
pub const TENANT_PAGE_SIZE_DEFAULT: usize = 100;

/// Plan a tenant gets when the create request names none.
pub const DEFAULT_PLAN: &str = "starter";

/// Runs `work` against the tenant registry on the blocking pool.
pub(crate) async fn blocking<T, F>(state: &AppState, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Tenancy) -> Result<T, TenancyError> + Send + 'static,
{
    let tenancy = state.tenancy()?.clone();
    tokio::task::spawn_blocking(move || work(&tenancy))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}

/// The tenant a path segment names: its decimal id, or else its slug
/// (live tenants only). Names no tenant = 404.
pub(crate) async fn resolve_tenant(state: &AppState, text: &str) -> Result<TenantId, ApiError> {
    if let Ok(id) = TenantId::from_str(text) {
        return Ok(id);
    }
    let not_found = || ApiError::NotFound {
        what: format!("tenant {text:?}"),
    };
    let Ok(slug) = Slug::new(text) else {
        return Err(not_found());
    };
    let found = blocking(state, move |t| {
        t.tenant_id_by_slug(&Principal::Operator, &slug)
    })
    .await?;
    found.ok_or_else(not_found)
}

fn tenant_json(tenant: &Tenant) -> Result<Value, ApiError> {
    serde_json::to_value(tenant).map_err(ApiError::internal)
}

/// A key record as the API shows it: never the hash.
pub(crate) fn key_json(record: &ApiKeyRecord) -> Value {
    json!({
        "key_id": record.key_id.to_string(),
        "tenant_id": record.tenant.to_string(),
        "role": record.role,
        "display_prefix": record.display_prefix,
        "created_unix_ms": record.created_unix_ms,
        "expires_unix_ms": record.expires_unix_ms,
        "revoked_unix_ms": record.revoked_unix_ms,
    })
}

/// Body of `POST /v1/admin/tenants`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// Display name; also the slug when `slug` is absent.
    pub name: String,
    /// URL-safe unique name (`[a-z0-9-]`, 3..=40).
    #[serde(default)]
    pub slug: Option<String>,
    /// Plan id (default `starter`).
    #[serde(default)]
    pub plan: Option<String>,
    /// `shared` (default) or `dedicated`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub isolation: Option<IsolationMode>,
    /// Trial length of the subscription started on `plan` (default: the
    /// catalog's trial; `0` starts paid service and invoices at once).
    #[serde(default)]
    pub trial_days: Option<u32>,
    /// Card or bank transfer on file, charged for each new invoice
    /// (`{"type":"card","number":"4242424242424242"}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payment_method: Option<aerolith_billing::payment::PaymentMethod>,
}

/// Creates a tenant and starts its subscription on the plan (when the
/// billing service runs); the response carries its owner API key, shown
/// once, and the `subscription`.
#[utoipa::path(
    post,
    path = "/v1/admin/tenants",
    tag = "admin",
    security(("admin_key" = [])),
    request_body = CreateTenantRequest,
    responses(
        (status = 201, description = "Created; `owner_key` is shown only now."),
        (status = 401, description = "Missing or wrong admin key.", body = ErrorBody),
        (status = 409, description = "The slug is taken.", body = ErrorBody),
        (status = 422, description = "Invalid name, slug or plan.", body = ErrorBody)
    )
)]
pub async fn create_tenant(
    _admin: AdminAuth,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CreateTenantRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let slug_text = request.slug.unwrap_or_else(|| request.name.clone());
    let slug = Slug::new(&slug_text).map_err(|err| ApiError::Unprocessable {
        detail: format!("slug {slug_text:?}: {err}"),
    })?;
    let new = NewTenant {
        name: request.name,
        slug,
        plan: request.plan.unwrap_or_else(|| DEFAULT_PLAN.to_owned()),
        isolation: request.isolation.unwrap_or(IsolationMode::Shared),
    };
    let service = state.billing_service().ok().cloned();
    if let Some(service) = &service {
        if service.catalog().plan(&new.plan).is_none() {
            return Err(ApiError::Unprocessable {
                detail: format!("unknown plan {:?}", new.plan),
            });
        }
    }
    let plan = new.plan.clone();
    let created = blocking(&state, move |t| t.create_tenant(&Principal::Operator, new)).await?;
    let mut body = tenant_json(&created.tenant)?;
    body["owner_key"] = json!({
        "key": created.owner_key.secret.expose(),
        "record": key_json(&created.owner_key.record),
    });
    if let Some(service) = service {
        let tenant = created.tenant.id;
        let (trial_days, method) = (request.trial_days, request.payment_method);
        let started = tokio::task::spawn_blocking(move || {
            crate::billing_routes::start_subscription(&service, tenant, &plan, trial_days, method)
        })
        .await
        .map_err(ApiError::internal)??;
        body["subscription"] = started["subscription"].clone();
        body["invoice_id"] = started["invoice_id"].clone();
    }
    Ok((StatusCode::CREATED, Json(body)))
}

/// Paging of `GET /v1/admin/tenants`.
#[derive(Debug, Deserialize)]
pub struct TenantListParams {
    /// Continue after this tenant id.
    pub after: Option<String>,
    /// Page size.
    pub limit: Option<usize>,
}

/// Lists live tenants, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/admin/tenants",
    tag = "admin",
    security(("admin_key" = [])),
    params(
        ("after" = Option<String>, Query, description = "Continue after this tenant id."),
        ("limit" = Option<usize>, Query, description = "Page size.")
    ),
    responses(
        (status = 200, description = "`tenants` and `next_cursor`."),
        (status = 401, description = "Missing or wrong admin key.", body = ErrorBody)
    )
)]
pub async fn list_tenants(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Query(params): Query<TenantListParams>,
) -> Result<Json<Value>, ApiError> {
    let after = params
        .after
        .as_deref()
        .map(TenantId::from_str)
        .transpose()
        .map_err(|err| ApiError::BadRequest {
            reason: BadRequestReason::InvalidParameter {
                detail: format!("after: {err}"),
            },
        })?;
    let limit = params.limit.unwrap_or(TENANT_PAGE_SIZE_DEFAULT);
    let page = blocking(&state, move |t| {
        t.list_tenants(&Principal::Operator, after, limit)
    })
    .await?;
    let tenants = page
        .tenants
        .iter()
        .map(tenant_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({
        "tenants": tenants,
        "next_cursor": page.next_cursor.map(|id| id.to_string()),
    })))
}

/// Shows one tenant.
#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}",
    tag = "admin",
    security(("admin_key" = [])),
    params(("id" = String, Path, description = "Tenant id or slug.")),
    responses(
        (status = 200, description = "The tenant."),
        (status = 404, description = "No such tenant.", body = ErrorBody)
    )
)]
pub async fn get_tenant(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = resolve_tenant(&state, &id).await?;
    let tenant = blocking(&state, move |t| t.get_tenant(&Principal::Operator, id)).await?;
    Ok(Json(tenant_json(&tenant)?))
}

/// Body of `PATCH /v1/admin/tenants/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenantRequest {
    /// New display name.
    #[serde(default)]
    pub name: Option<String>,
    /// New plan id (quotas only; a billed plan change goes through
    /// `POST /v1/subscription/change`).
    #[serde(default)]
    pub plan: Option<String>,
    /// New per-tenant limits, replacing the previous override; each field
    /// `"inherit"`, `"unlimited"` or `{"limit": n}`
    /// (`{"documents_max": {"limit": 2}}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub limits_override: Option<aerolith_tenancy::QuotaOverride>,
}

/// Renames a tenant, changes its plan or overrides its limits.
#[utoipa::path(
    patch,
    path = "/v1/admin/tenants/{id}",
    tag = "admin",
    security(("admin_key" = [])),
    params(("id" = String, Path, description = "Tenant id or slug.")),
    request_body = UpdateTenantRequest,
    responses(
        (status = 200, description = "The updated tenant."),
        (status = 404, description = "No such tenant.", body = ErrorBody),
        (status = 422, description = "Invalid name or plan.", body = ErrorBody)
    )
)]
pub async fn update_tenant(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<UpdateTenantRequest>,
) -> Result<Json<Value>, ApiError> {
    let id = resolve_tenant(&state, &id).await?;
    let update = TenantUpdate {
        name: request.name,
        plan: request.plan,
        limits_override: request.limits_override,
    };
    let tenant = blocking(&state, move |t| {
        t.update_tenant(&Principal::Operator, id, update)
    })
    .await?;
    Ok(Json(tenant_json(&tenant)?))
}

/// Deletes a tenant and its data.
#[utoipa::path(
    delete,
    path = "/v1/admin/tenants/{id}",
    tag = "admin",
    security(("admin_key" = [])),
    params(("id" = String, Path, description = "Tenant id or slug.")),
    responses(
        (status = 200, description = "The deleted tenant."),
        (status = 404, description = "No such tenant.", body = ErrorBody)
    )
)]
pub async fn delete_tenant(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = resolve_tenant(&state, &id).await?;
    let tenant = blocking(&state, move |t| t.delete_tenant(&Principal::Operator, id)).await?;
    Ok(Json(tenant_json(&tenant)?))
}

/// Body of `POST /v1/admin/tenants/{id}/suspend`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendRequest {
    /// `operator` (default), `non_payment` or `requested`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub reason: Option<SuspensionReason>,
}

/// Suspends a tenant: it becomes read-only.
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/suspend",
    tag = "admin",
    security(("admin_key" = [])),
    params(("id" = String, Path, description = "Tenant id or slug.")),
    request_body = SuspendRequest,
    responses(
        (status = 200, description = "The suspended tenant."),
        (status = 404, description = "No such tenant.", body = ErrorBody)
    )
)]
pub async fn suspend_tenant(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<SuspendRequest>,
) -> Result<Json<Value>, ApiError> {
    let id = resolve_tenant(&state, &id).await?;
    let reason = request.reason.unwrap_or(SuspensionReason::Operator);
    let tenant = blocking(&state, move |t| {
        t.suspend_tenant(&Principal::Operator, id, reason)
    })
    .await?;
    Ok(Json(tenant_json(&tenant)?))
}

/// Resumes a suspended tenant.
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/resume",
    tag = "admin",
    security(("admin_key" = [])),
    params(("id" = String, Path, description = "Tenant id or slug.")),
    responses(
        (status = 200, description = "The resumed tenant."),
        (status = 404, description = "No such tenant.", body = ErrorBody)
    )
)]
pub async fn resume_tenant(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = resolve_tenant(&state, &id).await?;
    let tenant = blocking(&state, move |t| t.resume_tenant(&Principal::Operator, id)).await?;
    Ok(Json(tenant_json(&tenant)?))
}

/// Body of `POST /v1/admin/tenants/{id}/keys`. Other members (the CLI's
/// `name` label) are ignored: keys carry no label.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateKeyRequest {
    /// `owner`, `admin`, `writer` or `reader`.
    #[schema(value_type = String)]
    pub role: Role,
    /// Expiry, Unix milliseconds.
    #[serde(default)]
    pub expires_unix_ms: Option<i64>,
}

/// Creates an API key for a tenant; the key text is shown once.
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/keys",
    tag = "admin",
    security(("admin_key" = [])),
    params(("id" = String, Path, description = "Tenant id or slug.")),
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "`key` (shown once) and `record`."),
        (status = 404, description = "No such tenant.", body = ErrorBody)
    )
)]
pub async fn create_key(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<CreateKeyRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = resolve_tenant(&state, &id).await?;
    let (role, expires) = (request.role, request.expires_unix_ms);
    let created = blocking(&state, move |t| {
        t.create_api_key(&Principal::Operator, id, role, expires)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"key": created.secret.expose(), "record": key_json(&created.record)})),
    ))
}

/// Lists a tenant's API keys (never their secrets).
#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}/keys",
    tag = "admin",
    security(("admin_key" = [])),
    params(("id" = String, Path, description = "Tenant id or slug.")),
    responses(
        (status = 200, description = "`keys`."),
        (status = 404, description = "No such tenant.", body = ErrorBody)
    )
)]
pub async fn list_keys(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = resolve_tenant(&state, &id).await?;
    let keys = blocking(&state, move |t| t.list_api_keys(&Principal::Operator, id)).await?;
    Ok(Json(
        json!({"keys": keys.iter().map(key_json).collect::<Vec<_>>()}),
    ))
}

/// Revokes one of a tenant's API keys.
#[utoipa::path(
    delete,
    path = "/v1/admin/tenants/{id}/keys/{key_id}",
    tag = "admin",
    security(("admin_key" = [])),
    params(
        ("id" = String, Path, description = "Tenant id or slug."),
        ("key_id" = String, Path, description = "Key id.")
    ),
    responses(
        (status = 200, description = "The revoked key's record."),
        (status = 404, description = "No such tenant or key.", body = ErrorBody)
    )
)]
pub async fn revoke_key(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = resolve_tenant(&state, &id).await?;
    let key_id = KeyId::from_str(&key_id).map_err(|_| ApiError::NotFound {
        what: format!("key {key_id:?}"),
    })?;
    let record = blocking(&state, move |t| {
        t.revoke_api_key(&Principal::Operator, id, key_id)
    })
    .await?;
    Ok(Json(key_json(&record)))
}

/// Adds the admin routes to `routes`.
pub fn admin_routes(routes: ApiRouter) -> ApiRouter {
    routes
        .route::<__path_create_tenant, _, _>(create_tenant)
        .route::<__path_list_tenants, _, _>(list_tenants)
        .route::<__path_get_tenant, _, _>(get_tenant)
        .route::<__path_update_tenant, _, _>(update_tenant)
        .route::<__path_delete_tenant, _, _>(delete_tenant)
        .route::<__path_suspend_tenant, _, _>(suspend_tenant)
        .route::<__path_resume_tenant, _, _>(resume_tenant)
        .route::<__path_create_key, _, _>(create_key)
        .route::<__path_list_keys, _, _>(list_keys)
        .route::<__path_revoke_key, _, _>(revoke_key)
}
