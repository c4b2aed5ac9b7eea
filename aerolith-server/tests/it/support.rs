//! Shared fixtures: a state with known limits and admin key, routes that
//! exist only in tests, and a helper to send one request through the app.

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
/// Request deadline of the test state.
pub const TIMEOUT_MS: u64 = 50;

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

pub fn test_routes() -> ApiRouter {
    base_routes()
        .route::<__path_echo, _, _>(echo)
        .route::<__path_named, _, _>(named)
        .route::<__path_panics, _, _>(panics)
        .route::<__path_hangs, _, _>(hangs)
        .route::<__path_item, _, _>(item)
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
