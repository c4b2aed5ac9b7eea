//! Shared fixtures: a state with known limits and admin key, routes that
//! exist only in tests, a helper to send one request through the app, and
//! the real routes over a real tenant registry and billing database on a
//! manual clock ([`open_live`]).

use aerolith_server::secrets::AdminKeyHash;
use aerolith_server::{app_with_routes, base_routes, ApiRouter, AppState, HttpLimits, JsonBody};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt as _;

/// The admin key of the test state.
pub const ADMIN_KEY: &str = "adm_test_key_0123456789abcdefghijklmnop";
/// Body limit of the test state.
pub const BODY_BYTES_MAX: u64 = 1_024;
/// JSON depth limit of the test state.
pub const DEPTH_MAX: u32 = 8;
/// Request deadline of the test state: generous, so a loaded machine does
/// not turn ordinary requests into timeouts.
pub const TIMEOUT_MS: u64 = 10_000;

pub fn limits() -> HttpLimits {
    HttpLimits {
        request_body_bytes_max: BODY_BYTES_MAX,
        json_depth_max: DEPTH_MAX,
        request_timeout_ms: TIMEOUT_MS,
    }
}

pub fn state() -> AppState {
    let state = AppState::new(limits(), AdminKeyHash::of(ADMIN_KEY));
    state.set_ready(true);
    state
}

/// Echoes a JSON body back.
#[utoipa::path(post, path = "/test/echo", responses((status = 200, description = "The body.")))]
async fn echo(JsonBody(body): JsonBody<Value>) -> axum::Json<Value> {
    axum::Json(body)
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
pub struct Named {
    name: String,
}

/// Requires `{"name": string}`.
#[utoipa::path(post, path = "/test/named", responses((status = 204, description = "Accepted.")))]
async fn named(JsonBody(_body): JsonBody<Named>) -> StatusCode {
    StatusCode::NO_CONTENT
}

/// Always panics.
#[utoipa::path(get, path = "/test/panic", responses((status = 500, description = "Never.")))]
async fn panics() -> &'static str {
    panic!("handler bug for the test")
}

/// Never finishes.
#[utoipa::path(get, path = "/test/hang", responses((status = 408, description = "Always.")))]
async fn hangs() -> &'static str {
    std::future::pending::<()>().await;
    "unreachable"
}

/// An item by id, to check that metrics use the route template.
#[utoipa::path(get, path = "/test/items/{id}", params(("id" = String, Path, description = "Item id.")), responses((status = 200, description = "The id.")))]
async fn item(axum::extract::Path(id): axum::extract::Path<String>) -> String {
    id
}

/// A numeric path parameter, to check axum's own rejections become JSON.
#[utoipa::path(get, path = "/test/numbers/{n}", params(("n" = u32, Path, description = "A number.")), responses((status = 200, description = "The number.")))]
async fn number(axum::extract::Path(n): axum::extract::Path<u32>) -> String {
    n.to_string()
}

pub fn test_routes() -> ApiRouter {
    base_routes()
        .route::<__path_echo, _, _>(echo)
        .route::<__path_named, _, _>(named)
        .route::<__path_panics, _, _>(panics)
        .route::<__path_hangs, _, _>(hangs)
        .route::<__path_item, _, _>(item)
        .route::<__path_number, _, _>(number)
}

pub fn test_app() -> (Router, AppState) {
    let state = state();
    (app_with_routes(state.clone(), test_routes()), state)
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("infallible service");
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("body reads");
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .body(Body::empty())
        .expect("valid request")
}

pub fn post_json(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(body.into())
        .expect("valid request")
}

/// The real data, admin and usage routes over a tenant registry and billing
/// database in a directory, on a manual clock, without a socket.
pub struct Live {
    pub app: Router,
    pub billing: aerolith_server::Billing,
    pub tenancy: aerolith_tenancy::Tenancy,
}

/// Opens [`Live`] in `dir`; `plans` replaces the catalog's quota plans.
pub fn open_live(
    dir: &std::path::Path,
    clock: &std::sync::Arc<aerolith_core::ManualClock>,
    plans: Option<std::collections::BTreeMap<String, aerolith_tenancy::QuotaLimits>>,
) -> Live {
    let master_key = aerolith_core::MasterKey::from_bytes([42; 32]);
    let clock: std::sync::Arc<dyn aerolith_core::Clock> = clock.clone();
    let state = AppState::with_clock(limits(), AdminKeyHash::of(ADMIN_KEY), clock.clone());
    // A flush interval no test outlives: only reads and shutdown flush.
    let billing = aerolith_server::Billing::open(
        dir,
        &master_key,
        clock.clone(),
        3_600_000,
        aerolith_billing::Catalog::default(),
    )
    .expect("billing opens");
    let mut options = aerolith_tenancy::TenancyOptions::new(master_key);
    options.plans = plans.unwrap_or_else(|| billing.catalog().quota_limits());
    options.usage_sink = billing.usage_sink();
    options.clock = clock;
    let tenancy = aerolith_tenancy::Tenancy::open(dir.join("db"), options).expect("tenancy opens");
    state.set_tenancy(tenancy.clone());
    state.set_billing(billing.clone());
    state.set_ready(true);
    let routes = aerolith_server::transfer_routes(aerolith_server::usage_routes(
        aerolith_server::tenant_routes(aerolith_server::admin_routes(test_routes())),
    ));
    Live {
        app: app_with_routes(state, routes),
        billing,
        tenancy,
    }
}

impl Live {
    /// What `aerolith serve`'s shutdown hooks do.
    pub fn shut_down(self) {
        self.billing.shutdown_with_final_sample(&self.tenancy);
        self.tenancy.close().expect("tenancy closes");
    }
}

/// Sends `method uri` with a bearer `key` and an optional JSON body.
pub async fn request(
    app: &Router,
    method: &str,
    uri: &str,
    key: &str,
    body: Option<Value>,
) -> Reply {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    send(app, request).await
}

/// [`request`] that must succeed; its JSON body (`null` when empty).
pub async fn call(app: &Router, method: &str, uri: &str, key: &str, body: Option<Value>) -> Value {
    let reply = request(app, method, uri, key, body).await;
    assert!(
        reply.status.is_success(),
        "{method} {uri}: {} {}",
        reply.status,
        reply.text()
    );
    if reply.body.is_empty() {
        Value::Null
    } else {
        reply.json()
    }
}

/// Creates a tenant through the admin route (on `plan`, or the default
/// plan); its id (as the route prints it) and owner key.
pub async fn create_tenant(live: &Live, slug: &str, plan: Option<&str>) -> (String, String) {
    let mut body = serde_json::json!({"name": slug, "slug": slug});
    if let Some(plan) = plan {
        body["plan"] = Value::from(plan);
    }
    let created = call(
        &live.app,
        "POST",
        "/v1/admin/tenants",
        ADMIN_KEY,
        Some(body),
    )
    .await;
    let id = created["id"]
        .as_str()
        .map_or_else(|| created["id"].to_string(), str::to_owned);
    let key = created["owner_key"]["key"]
        .as_str()
        .expect("owner key")
        .to_owned();
    (id, key)
}
