//! The tenant data routes: collections, documents and queries. Each request
//! authenticates its `Bearer` API key or session token with the tenant
//! registry, and acts on the principal's own tenant only (there is no tenant
//! in the path, so no route can name another tenant's data).

use aerolith_tenancy::{PendingTenantWrite, TenancyError, TenantHandle};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::app::ApiRouter;
use crate::auth::{as_tenant, as_tenant_inline};
use crate::error::{ApiError, ErrorBody};
use crate::json::JsonBody;
use crate::state::AppState;

/// Authenticates the request (`auth::as_tenant`) and runs `work` with the
/// caller's tenant handle on the blocking pool.
async fn with_handle<T, F>(state: &AppState, headers: &HeaderMap, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&TenantHandle) -> Result<T, TenancyError> + Send + 'static,
{
    as_tenant(state, headers, None, move |caller| {
        Ok(caller.handle().and_then(|handle| work(&handle))?)
    })
    .await
}

/// A document write: `prepare` admits, validates and reserves the write
/// through the caller's handle (inline on the async worker when the
/// credential is cached, `auth::as_tenant_inline`) and queues it; the write
/// is then awaited without holding any thread while it waits for its group
/// commit. Quota and usage are settled by the write itself, so a client
/// that disconnects meanwhile changes nothing about what is stored or
/// billed.
async fn write_with_handle<T, F>(
    state: &AppState,
    headers: &HeaderMap,
    prepare: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&TenantHandle) -> Result<PendingTenantWrite<T>, TenancyError> + Send + 'static,
{
    let pending = as_tenant_inline(state, headers, move |caller| {
        Ok(caller.handle().and_then(|handle| prepare(&handle))?)
    })
    .await?;
    Ok(pending.await?)
}

/// Body of `POST /v1/collections`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollectionRequest {
    /// Collection name (`[A-Za-z0-9_-]{1,64}`).
    pub name: String,
}

/// Creates a collection.
#[utoipa::path(
    post,
    path = "/v1/collections",
    tag = "data",
    security(("api_key" = [])),
    request_body = CreateCollectionRequest,
    responses(
        (status = 201, description = "Created."),
        (status = 401, description = "No valid key.", body = ErrorBody),
        (status = 409, description = "It exists.", body = ErrorBody),
        (status = 422, description = "Invalid name.", body = ErrorBody)
    )
)]
pub async fn create_collection(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CreateCollectionRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = request.name;
    let echoed = name.clone();
    with_handle(&state, &headers, move |h| h.create_collection(&name)).await?;
    Ok((StatusCode::CREATED, Json(json!({"name": echoed}))))
}

/// Lists the tenant's collections.
#[utoipa::path(
    get,
    path = "/v1/collections",
    tag = "data",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "`collections`."),
        (status = 401, description = "No valid key.", body = ErrorBody)
    )
)]
pub async fn list_collections(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let names = with_handle(&state, &headers, |h| h.list_collections()).await?;
    Ok(Json(json!({"collections": names})))
}

/// Drops a collection and its documents.
#[utoipa::path(
    delete,
    path = "/v1/collections/{name}",
    tag = "data",
    security(("api_key" = [])),
    params(("name" = String, Path, description = "Collection.")),
    responses(
        (status = 200, description = "Dropped."),
        (status = 404, description = "No such collection.", body = ErrorBody)
    )
)]
pub async fn drop_collection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let echoed = name.clone();
    with_handle(&state, &headers, move |h| h.drop_collection(&name)).await?;
    Ok(Json(json!({"dropped": echoed})))
}

/// Inserts a document, or `{"documents":[..]}` atomically.
#[utoipa::path(
    post,
    path = "/v1/collections/{name}/docs",
    tag = "data",
    security(("api_key" = [])),
    params(("name" = String, Path, description = "Collection.")),
    request_body = Object,
    responses(
        (status = 201, description = "`id`, or `ids` for a bulk insert."),
        (status = 404, description = "No such collection.", body = ErrorBody),
        (status = 409, description = "The id is taken.", body = ErrorBody),
        (status = 422, description = "Invalid document.", body = ErrorBody)
    )
)]
pub async fn insert_document(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let reply = match bulk_documents(&body) {
        Some(docs) => {
            // Preparing many documents is long: on the blocking pool.
            let pending = with_handle(&state, &headers, move |h| {
                h.insert_many_pending(&name, docs)
            })
            .await?;
            let ids = pending.await?;
            json!({"ids": ids})
        }
        None => {
            let id =
                write_with_handle(&state, &headers, move |h| h.insert_pending(&name, body)).await?;
            json!({"id": id})
        }
    };
    Ok((StatusCode::CREATED, Json(reply)))
}

/// The documents of a bulk insert body (`{"documents": [...]}` and nothing
/// else); `None` when the body is a single document.
pub(crate) fn bulk_documents(body: &Value) -> Option<Vec<Value>> {
    match body {
        Value::Object(map) if map.len() == 1 => match map.get("documents") {
            Some(Value::Array(docs)) => Some(docs.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn document_not_found(collection: &str, id: &str) -> ApiError {
    ApiError::NotFound {
        what: format!("document {id:?} in collection {collection:?}"),
    }
}

/// Reads one document.
#[utoipa::path(
    get,
    path = "/v1/collections/{name}/docs/{id}",
    tag = "data",
    security(("api_key" = [])),
    params(
        ("name" = String, Path, description = "Collection."),
        ("id" = String, Path, description = "Document id.")
    ),
    responses(
        (status = 200, description = "The document."),
        (status = 404, description = "No such collection or document.", body = ErrorBody)
    )
)]
pub async fn get_document(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (c, i) = (name.clone(), id.clone());
    // The stored JSON text is the body `Json(document)` would write, without
    // parsing and re-serialising it (`TenantHandle::get_json_bytes`).
    let bytes = as_tenant_inline(&state, &headers, move |caller| {
        Ok(caller.handle()?.get_json_bytes(&c, &i)?)
    })
    .await?
    .ok_or_else(|| document_not_found(&name, &id))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response())
}

/// Replaces one document.
#[utoipa::path(
    put,
    path = "/v1/collections/{name}/docs/{id}",
    tag = "data",
    security(("api_key" = [])),
    params(
        ("name" = String, Path, description = "Collection."),
        ("id" = String, Path, description = "Document id.")
    ),
    request_body = Object,
    responses(
        (status = 200, description = "Replaced."),
        (status = 404, description = "No such collection or document.", body = ErrorBody)
    )
)]
pub async fn replace_document(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
    JsonBody(doc): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let echoed = id.clone();
    write_with_handle(&state, &headers, move |h| {
        h.replace_pending(&name, &id, doc)
    })
    .await?;
    Ok(Json(json!({"id": echoed})))
}

/// Patches one document (merge patch); returns the new document.
#[utoipa::path(
    patch,
    path = "/v1/collections/{name}/docs/{id}",
    tag = "data",
    security(("api_key" = [])),
    params(
        ("name" = String, Path, description = "Collection."),
        ("id" = String, Path, description = "Document id.")
    ),
    request_body = Object,
    responses(
        (status = 200, description = "The patched document."),
        (status = 404, description = "No such collection or document.", body = ErrorBody)
    )
)]
pub async fn patch_document(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
    JsonBody(patch): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let doc = write_with_handle(&state, &headers, move |h| {
        h.patch_pending(&name, &id, patch)
    })
    .await?;
    Ok(Json(doc))
}

/// Deletes one document.
#[utoipa::path(
    delete,
    path = "/v1/collections/{name}/docs/{id}",
    tag = "data",
    security(("api_key" = [])),
    params(
        ("name" = String, Path, description = "Collection."),
        ("id" = String, Path, description = "Document id.")
    ),
    responses(
        (status = 200, description = "Deleted."),
        (status = 404, description = "No such collection or document.", body = ErrorBody)
    )
)]
pub async fn delete_document(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (c, i) = (name.clone(), id.clone());
    let deleted = write_with_handle(&state, &headers, move |h| h.delete_pending(&c, &i)).await?;
    if deleted {
        Ok(Json(json!({"deleted": id})))
    } else {
        Err(document_not_found(&name, &id))
    }
}

/// The decoded body of `POST /v1/collections/{name}/query`.
#[derive(Debug)]
pub(crate) struct QueryRequest {
    /// The query itself.
    pub(crate) query: aerolith_core::Query,
    /// `"count": true`: answer with the count only.
    pub(crate) count: bool,
    /// `"explain": true`: answer with the plan only.
    pub(crate) explain: bool,
}

impl QueryRequest {
    /// Splits the two flags off the body and parses the rest as a query
    /// spec; every failure is 422 `unprocessable`.
    pub(crate) fn from_body(body: Value) -> Result<QueryRequest, ApiError> {
        let Value::Object(mut spec) = body else {
            return Err(ApiError::Unprocessable {
                detail: "a query is a JSON object".to_owned(),
            });
        };
        let flag = |spec: &mut serde_json::Map<String, Value>, key: &str| match spec.remove(key) {
            None | Some(Value::Bool(false)) => Ok(false),
            Some(Value::Bool(true)) => Ok(true),
            Some(_) => Err(ApiError::Unprocessable {
                detail: format!("`{key}` must be a boolean"),
            }),
        };
        let count = flag(&mut spec, "count")?;
        let explain = flag(&mut spec, "explain")?;
        let query = aerolith_core::Query::from_json(&Value::Object(spec)).map_err(|err| {
            ApiError::Unprocessable {
                detail: err.to_string(),
            }
        })?;
        Ok(QueryRequest {
            query,
            count,
            explain,
        })
    }
}

/// Runs a query: body `{"filter","sort","skip","limit","projection"}` plus
/// `"count":true` (only the count) or `"explain":true` (only the plan).
#[utoipa::path(
    post,
    path = "/v1/collections/{name}/query",
    tag = "data",
    security(("api_key" = [])),
    params(("name" = String, Path, description = "Collection.")),
    request_body = Object,
    responses(
        (status = 200, description = "`documents`, `count` or `explain`."),
        (status = 404, description = "No such collection.", body = ErrorBody),
        (status = 422, description = "Invalid query.", body = ErrorBody)
    )
)]
pub async fn query_documents(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let QueryRequest {
        query,
        count,
        explain,
    } = QueryRequest::from_body(body)?;
    let reply = with_handle(&state, &headers, move |h| {
        if explain {
            let plan = h.explain(&name, &query)?;
            Ok(json!({"explain": plan}))
        } else if count {
            Ok(json!({"count": h.count(&name, &query)?}))
        } else {
            Ok(json!({"documents": h.find(&name, &query)?}))
        }
    })
    .await?;
    Ok(Json(reply))
}

/// Statistics of one collection.
#[utoipa::path(
    get,
    path = "/v1/collections/{name}/stats",
    tag = "data",
    security(("api_key" = [])),
    params(("name" = String, Path, description = "Collection.")),
    responses(
        (status = 200, description = "`documents`, `live_bytes`, `indexes`."),
        (status = 404, description = "No such collection.", body = ErrorBody)
    )
)]
pub async fn collection_stats(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let stats = with_handle(&state, &headers, move |h| h.collection_stats(&name)).await?;
    Ok(Json(
        serde_json::to_value(stats).map_err(ApiError::internal)?,
    ))
}

/// Documents per page of `GET /v1/collections/{name}/docs` by default.
pub const DOCUMENT_PAGE_SIZE_DEFAULT: usize = 100;

/// Paging of `GET /v1/collections/{name}/docs`.
#[derive(Debug, serde::Deserialize)]
pub struct DocumentListParams {
    /// Continue after this document id.
    pub after: Option<String>,
    /// Page size.
    pub limit: Option<usize>,
}

/// Lists documents in id order, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/collections/{name}/docs",
    tag = "data",
    security(("api_key" = [])),
    params(
        ("name" = String, Path, description = "Collection."),
        ("after" = Option<String>, Query, description = "Continue after this id."),
        ("limit" = Option<usize>, Query, description = "Page size.")
    ),
    responses(
        (status = 200, description = "`documents` and `next_after`."),
        (status = 404, description = "No such collection.", body = ErrorBody),
        (status = 422, description = "Invalid page size.", body = ErrorBody)
    )
)]
pub async fn list_documents(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(params): Query<DocumentListParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = params.limit.unwrap_or(DOCUMENT_PAGE_SIZE_DEFAULT);
    let reply = with_handle(&state, &headers, move |h| {
        let ids = h.list_ids(&name, params.after.as_deref(), limit)?;
        let mut documents = Vec::with_capacity(ids.len());
        for id in &ids {
            // A document deleted between the two reads is skipped.
            if let Some(doc) = h.get(&name, id)? {
                documents.push(doc);
            }
        }
        let next_after = if ids.len() == limit {
            ids.last().cloned()
        } else {
            None
        };
        Ok(json!({"documents": documents, "next_after": next_after}))
    })
    .await?;
    Ok(Json(reply))
}

/// Body of `POST /v1/collections/{name}/indexes`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIndexRequest {
    /// The field path (`address.city`).
    pub path: String,
    /// Whether values must be unique.
    #[serde(default)]
    pub unique: bool,
}

/// Creates a secondary index.
#[utoipa::path(
    post,
    path = "/v1/collections/{name}/indexes",
    tag = "data",
    security(("api_key" = [])),
    params(("name" = String, Path, description = "Collection.")),
    request_body = CreateIndexRequest,
    responses(
        (status = 201, description = "Created."),
        (status = 404, description = "No such collection.", body = ErrorBody),
        (status = 409, description = "It exists, or existing values are not unique.", body = ErrorBody)
    )
)]
pub async fn create_index(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<CreateIndexRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let reply = json!({"path": request.path, "unique": request.unique});
    with_handle(&state, &headers, move |h| {
        h.create_index(&name, &request.path, request.unique)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(reply)))
}

/// Lists a collection's indexes.
#[utoipa::path(
    get,
    path = "/v1/collections/{name}/indexes",
    tag = "data",
    security(("api_key" = [])),
    params(("name" = String, Path, description = "Collection.")),
    responses(
        (status = 200, description = "`indexes`."),
        (status = 404, description = "No such collection.", body = ErrorBody)
    )
)]
pub async fn list_indexes(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let indexes = with_handle(&state, &headers, move |h| h.list_indexes(&name)).await?;
    Ok(Json(json!({"indexes": indexes})))
}

/// Drops an index.
#[utoipa::path(
    delete,
    path = "/v1/collections/{name}/indexes/{path}",
    tag = "data",
    security(("api_key" = [])),
    params(
        ("name" = String, Path, description = "Collection."),
        ("path" = String, Path, description = "Indexed field path.")
    ),
    responses(
        (status = 200, description = "Dropped."),
        (status = 404, description = "No such collection or index.", body = ErrorBody)
    )
)]
pub async fn drop_index(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, path)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let echoed = path.clone();
    with_handle(&state, &headers, move |h| h.drop_index(&name, &path)).await?;
    Ok(Json(json!({"dropped": echoed})))
}

/// Exports a collection as JSON Lines (one document per line).
#[utoipa::path(
    get,
    path = "/v1/collections/{name}/export",
    tag = "data",
    security(("api_key" = [])),
    params(("name" = String, Path, description = "Collection.")),
    responses(
        (status = 200, description = "JSON Lines.", content_type = "application/x-ndjson"),
        (status = 404, description = "No such collection.", body = ErrorBody)
    )
)]
pub async fn export_collection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    let lines = with_handle(&state, &headers, move |h| {
        let mut out = Vec::new();
        h.export_jsonl(&name, &mut out)?;
        Ok(out)
    })
    .await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        lines,
    )
        .into_response())
}

/// Authenticates the request (`auth::as_tenant`) and runs `work` with the
/// registry, the presented bearer and the caller's principal on the
/// blocking pool.
async fn with_principal<T, F>(state: &AppState, headers: &HeaderMap, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(
            &aerolith_tenancy::Tenancy,
            &str,
            aerolith_tenancy::Principal,
        ) -> Result<T, TenancyError>
        + Send
        + 'static,
{
    as_tenant(state, headers, None, move |caller| {
        Ok(work(caller.tenancy, caller.bearer, caller.principal)?)
    })
    .await
}

/// Body of `POST /v1/tokens` and `POST /v1/tokens/refresh`.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Lifetime of the token (default 15 minutes, at most 12 hours).
    #[serde(default)]
    pub lifetime_ms: Option<u64>,
}

fn token_json(
    token: &aerolith_tenancy::SessionToken,
    claims: &aerolith_tenancy::SessionClaims,
) -> Value {
    json!({
        "token": token.expose(),
        "tenant_id": claims.tenant.to_string(),
        "key_id": claims.key_id.to_string(),
        "role": claims.role,
        "issued_unix_ms": claims.issued_unix_ms,
        "expires_unix_ms": claims.expires_unix_ms,
    })
}

/// Issues a short-lived session token for the presented API key.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "auth",
    security(("api_key" = [])),
    request_body = TokenRequest,
    responses(
        (status = 201, description = "`token` and its claims."),
        (status = 401, description = "No valid key.", body = ErrorBody),
        (status = 422, description = "Lifetime out of range.", body = ErrorBody)
    )
)]
pub async fn issue_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<TokenRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let lifetime_ms = request
        .lifetime_ms
        .unwrap_or(aerolith_tenancy::TOKEN_LIFETIME_MS_DEFAULT);
    let reply = with_principal(&state, &headers, move |t, _, principal| {
        let (token, claims) = t.issue_token(&principal, lifetime_ms)?;
        Ok(token_json(&token, &claims))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(reply)))
}

/// Exchanges the presented (valid) session token for a new one.
#[utoipa::path(
    post,
    path = "/v1/tokens/refresh",
    tag = "auth",
    security(("api_key" = [])),
    request_body = TokenRequest,
    responses(
        (status = 201, description = "`token` and its claims."),
        (status = 401, description = "Not a valid session token.", body = ErrorBody)
    )
)]
pub async fn refresh_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<TokenRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let lifetime_ms = request
        .lifetime_ms
        .unwrap_or(aerolith_tenancy::TOKEN_LIFETIME_MS_DEFAULT);
    let reply = with_principal(&state, &headers, move |t, bearer, _| {
        let (token, claims) = t.refresh_token(bearer, lifetime_ms)?;
        Ok(token_json(&token, &claims))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(reply)))
}

/// Audit entries per page by default.
pub const AUDIT_PAGE_SIZE_DEFAULT: usize = 100;

/// Paging of `GET /v1/audit`.
#[derive(Debug, serde::Deserialize)]
pub struct AuditParams {
    /// First sequence number to return.
    pub from_seq: Option<u64>,
    /// Page size.
    pub limit: Option<usize>,
}

fn own_chain(
    principal: &aerolith_tenancy::Principal,
) -> Result<aerolith_tenancy::AuditChain, TenancyError> {
    principal
        .tenant()
        .map(aerolith_tenancy::AuditChain::Tenant)
        .ok_or(TenancyError::Forbidden(aerolith_tenancy::Forbidden::new(
            aerolith_tenancy::Permission::ReadAudit,
        )))
}

/// The caller's tenant audit log, oldest first.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "auth",
    security(("api_key" = [])),
    params(
        ("from_seq" = Option<u64>, Query, description = "First sequence number."),
        ("limit" = Option<usize>, Query, description = "Page size.")
    ),
    responses(
        (status = 200, description = "`entries`."),
        (status = 403, description = "The role may not read the audit log.", body = ErrorBody)
    )
)]
pub async fn audit_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<AuditParams>,
) -> Result<Json<Value>, ApiError> {
    let from_seq = params.from_seq.unwrap_or(0);
    let limit = params.limit.unwrap_or(AUDIT_PAGE_SIZE_DEFAULT);
    let entries = with_principal(&state, &headers, move |t, _, principal| {
        t.audit_log(&principal, own_chain(&principal)?, from_seq, limit)
    })
    .await?;
    Ok(Json(json!({"entries": entries})))
}

/// Verifies the caller's tenant audit chain; a broken chain is reported in
/// the body (`verified: false` with the finding), not as an error status.
#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    tag = "auth",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "`verified` and, when false, `finding`."),
        (status = 403, description = "The role may not read the audit log.", body = ErrorBody)
    )
)]
pub async fn verify_audit(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let reply = with_principal(&state, &headers, move |t, _, principal| {
        match t.verify_audit_log(&principal, own_chain(&principal)?) {
            Ok(()) => Ok(json!({"verified": true})),
            Err(TenancyError::Audit(finding))
                if !matches!(finding, aerolith_tenancy::AuditError::Store(_)) =>
            {
                Ok(json!({"verified": false, "finding": finding.to_string()}))
            }
            Err(other) => Err(other),
        }
    })
    .await?;
    Ok(Json(reply))
}

/// Adds the tenant data routes to `routes`.
pub fn tenant_routes(routes: ApiRouter) -> ApiRouter {
    routes
        .route::<__path_create_collection, _, _>(create_collection)
        .route::<__path_list_collections, _, _>(list_collections)
        .route::<__path_drop_collection, _, _>(drop_collection)
        .route::<__path_insert_document, _, _>(insert_document)
        .route::<__path_get_document, _, _>(get_document)
        .route::<__path_replace_document, _, _>(replace_document)
        .route::<__path_patch_document, _, _>(patch_document)
        .route::<__path_delete_document, _, _>(delete_document)
        .route::<__path_query_documents, _, _>(query_documents)
        .route::<__path_collection_stats, _, _>(collection_stats)
        .route::<__path_list_documents, _, _>(list_documents)
        .route::<__path_create_index, _, _>(create_index)
        .route::<__path_list_indexes, _, _>(list_indexes)
        .route::<__path_drop_index, _, _>(drop_index)
        .route::<__path_export_collection, _, _>(export_collection)
        .route::<__path_issue_token, _, _>(issue_token)
        .route::<__path_refresh_token, _, _>(refresh_token)
        .route::<__path_audit_log, _, _>(audit_log)
        .route::<__path_verify_audit, _, _>(verify_audit)
}
