//! The HTTP application: routes, the middleware stack, and the OpenAPI
//! document, assembled by [`app`] into an axum `Router` that tests drive with
//! `tower::ServiceExt::oneshot` and `serve` puts on a socket.
//!
//! Routes are registered through [`ApiRouter::route`], which takes the path
//! and method from the handler's `#[utoipa::path]` annotation and adds the
//! same operation to the OpenAPI document: a route cannot exist without being
//! documented, nor be documented under another path.
//!
//! Every request passes one layer, [`serve_request`], which does in this
//! order, outermost first: metrics (route template, method, status,
//! latency) > request tracing (a span at debug level, the 5xx logged at
//! error) > bandwidth metering (body bytes per tenant, see `metering`) >
//! panic catcher (JSON 500) > error-body normaliser (any non-JSON error
//! becomes `{"error":...}`) > request timeout (408) > `Content-Length`
//! check (413 before reading); then the body size limit and the router,
//! whose routes carry the route template out on the response
//! ([`TagRoute`]). One layer instead of seven: one boxed future and one
//! service clone per request instead of one each per layer.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::{Extension, Json, Router};
use serde::Serialize;
use tracing::Instrument as _;
use utoipa::openapi::path::HttpMethod;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi as _;

use crate::auth::AdminAuth;
use crate::error::{ApiError, AuthFailure, BadRequestReason, ErrorBody};
use crate::metrics;
use crate::state::AppState;

/// Longest request path echoed back in a 404 message.
const ECHOED_PATH_CHARS_MAX: usize = 200;
/// Largest non-JSON error body read when converting it to the JSON shape.
const NORMALIZED_BODY_BYTES_MAX: usize = 4 * 1024;

/// The OpenAPI skeleton: title, version, shared schemas, security scheme.
/// Paths are added by [`ApiRouter::route`].
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Aerolith",
        description = "Multi-tenant JSON document database with tenancy, quotas, metering and billing built in."
    ),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The operator admin key (`adm_...`)."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A tenant API key or session token."))
                    .build(),
            ),
        );
    }
}

/// Routes under construction, each with its OpenAPI operation.
pub struct ApiRouter {
    router: Router<AppState>,
    openapi: utoipa::openapi::OpenApi,
}

impl std::fmt::Debug for ApiRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiRouter")
            .field(
                "paths",
                &self.openapi.paths.paths.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Default for ApiRouter {
    fn default() -> Self {
        ApiRouter::new()
    }
}

impl ApiRouter {
    /// No routes yet; the document has the shared schemas and security scheme.
    pub fn new() -> ApiRouter {
        let mut openapi = ApiDoc::openapi();
        openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
        ApiRouter {
            router: Router::new(),
            openapi,
        }
    }

    /// Adds `handler` at the path and methods of its `#[utoipa::path]`
    /// annotation `P` (the `__path_<handler>` struct the macro generates),
    /// and adds the operation and the schemas it references to the document.
    pub fn route<P, H, T>(mut self, handler: H) -> ApiRouter
    where
        P: utoipa::Path + utoipa::__dev::SchemaReferences,
        H: Handler<T, AppState>,
        T: 'static,
    {
        let path = P::path();
        let methods = P::methods();
        let filter = methods
            .iter()
            .map(method_filter)
            .reduce(MethodFilter::or)
            .expect("a #[utoipa::path] annotation names at least one method");
        self.router = self.router.route(&path, on(filter, handler));
        self.openapi
            .paths
            .add_path_operation(&path, methods, P::operation());
        let mut schemas = Vec::new();
        P::schemas(&mut schemas);
        let components = self.openapi.components.get_or_insert_with(Default::default);
        components.schemas.extend(schemas);
        self
    }

    /// The document as it stands.
    pub fn openapi(&self) -> &utoipa::openapi::OpenApi {
        &self.openapi
    }
}

fn method_filter(method: &HttpMethod) -> MethodFilter {
    match method {
        HttpMethod::Get => MethodFilter::GET,
        HttpMethod::Post => MethodFilter::POST,
        HttpMethod::Put => MethodFilter::PUT,
        HttpMethod::Delete => MethodFilter::DELETE,
        HttpMethod::Options => MethodFilter::OPTIONS,
        HttpMethod::Head => MethodFilter::HEAD,
        HttpMethod::Patch => MethodFilter::PATCH,
        HttpMethod::Trace => MethodFilter::TRACE,
    }
}

/// The server's own routes: health, readiness, metrics, the OpenAPI
/// document and the operator identity check.
pub fn base_routes() -> ApiRouter {
    ApiRouter::new()
        .route::<__path_healthz, _, _>(healthz)
        .route::<__path_readyz, _, _>(readyz)
        .route::<__path_metrics_text, _, _>(metrics_text)
        .route::<__path_openapi_json, _, _>(openapi_json)
        .route::<__path_admin_whoami, _, _>(admin_whoami)
}

/// The application with the base routes only.
pub fn app(state: AppState) -> Router {
    app_with_routes(state, base_routes())
}

/// The application serving `routes` (start from [`base_routes`] and add to
/// it) behind the full middleware stack, with the 404/405 fallbacks.
pub fn app_with_routes(state: AppState, routes: ApiRouter) -> Router {
    let ApiRouter { router, openapi } = routes;
    let document = OpenApiDocument(Arc::new(
        openapi
            .to_pretty_json()
            .expect("an OpenAPI document built from typed parts serialises"),
    ));
    let body_limit = usize::try_from(state.limits().request_body_bytes_max).unwrap_or(usize::MAX);
    router
        .route_layer(TagRouteLayer)
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), serve_request))
        .layer(Extension(document))
        .with_state(state)
}

/// The serialised OpenAPI document, built once per application.
#[derive(Clone)]
struct OpenApiDocument(Arc<String>);

/// Response of `/healthz` and `/readyz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
}

/// Response of `/v1/admin/whoami`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// Who the credentials identify: always `operator` on this route.
    pub principal: String,
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process is alive.", body = Health))
)]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

/// Readiness: state is loaded and the server is not shutting down.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready to serve.", body = Health),
        (status = 503, description = "Starting or shutting down.", body = ErrorBody)
    )
)]
async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    if state.is_ready() {
        Ok(Json(Health {
            status: "ready".to_owned(),
        }))
    } else {
        Err(ApiError::Unavailable {
            reason: "not ready".to_owned(),
        })
    }
}

/// Metrics in the Prometheus text exposition format 0.0.4.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4.", content_type = "text/plain; version=0.0.4", body = String))
)]
async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics().render(),
    )
        .into_response()
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document.", content_type = "application/json"))
)]
async fn openapi_json(Extension(document): Extension<OpenApiDocument>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.0.as_str().to_owned(),
    )
        .into_response()
}

/// Checks the operator admin key.
#[utoipa::path(
    get,
    path = "/v1/admin/whoami",
    tag = "admin",
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The admin key is valid.", body = WhoAmI),
        (status = 401, description = "Missing, malformed or wrong key.", body = ErrorBody)
    )
)]
async fn admin_whoami(_admin: AdminAuth) -> Json<WhoAmI> {
    Json(WhoAmI {
        principal: "operator".to_owned(),
    })
}

async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    let path: String = uri.path().chars().take(ECHOED_PATH_CHARS_MAX).collect();
    ApiError::NotFound {
        what: format!("route {method} {path}"),
    }
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
    }
}

/// Adds the route template (`MatchedPath`, known only inside routing) to
/// the response, for the metrics of [`serve_request`]. A plain service
/// wrapper: no boxing, no allocation (the template is shared).
#[derive(Debug, Clone, Copy)]
struct TagRouteLayer;

impl<S> tower::Layer<S> for TagRouteLayer {
    type Service = TagRoute<S>;

    fn layer(&self, inner: S) -> TagRoute<S> {
        TagRoute { inner }
    }
}

/// The service of [`TagRouteLayer`].
#[derive(Debug, Clone)]
struct TagRoute<S> {
    inner: S,
}

impl<S> tower::Service<Request> for TagRoute<S>
where
    S: tower::Service<Request, Response = Response>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TaggedResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let template = request.extensions().get::<MatchedPath>().cloned();
        TaggedResponse {
            inner: self.inner.call(request),
            template,
        }
    }
}

/// The future of [`TagRoute`].
struct TaggedResponse<F> {
    inner: F,
    template: Option<MatchedPath>,
}

impl<F, E> Future for TaggedResponse<F>
where
    F: Future<Output = Result<Response, E>> + Unpin,
{
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut result = std::task::ready!(Pin::new(&mut this.inner).poll(cx));
        if let (Ok(response), Some(template)) = (&mut result, this.template.take()) {
            response.extensions_mut().insert(template);
        }
        Poll::Ready(result)
    }
}

/// The application's one per-request layer; see the module docs for what
/// it does, in order.
async fn serve_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = state.clock().monotonic();
    let method = request.method().clone();
    let span = tracing::debug_span!(
        "request",
        method = %method,
        uri = %request.uri(),
        version = ?request.version(),
    );
    let response = async {
        tracing::debug!("started processing request");
        let response = crate::metering::meter_bandwidth(&state, request, |request| {
            guard(&state, &method, request, next)
        })
        .await;
        let elapsed = state.clock().monotonic().saturating_sub(started);
        let status = response.status();
        if status.is_server_error() {
            tracing::error!(
                status = status.as_u16(),
                latency_ms = elapsed.as_millis(),
                "response failed"
            );
        } else {
            tracing::debug!(
                status = status.as_u16(),
                latency_ms = elapsed.as_millis(),
                "finished processing request"
            );
        }
        let route = response
            .extensions()
            .get::<MatchedPath>()
            .map_or(metrics::UNMATCHED_ROUTE, MatchedPath::as_str);
        state
            .metrics()
            .record_request(route, method.as_str(), status.as_u16(), elapsed);
        response
    }
    .instrument(span)
    .await;
    response
}

/// Inside the metering: the panic catcher around the error-body
/// normaliser, the timeout and the `Content-Length` check.
async fn guard(state: &AppState, method: &Method, request: Request, next: Next) -> Response {
    let limits = state.limits();
    let mut handled = pin!(async {
        let response = if let Some(size_bytes_max) = oversized_content_length(state, &request) {
            ApiError::PayloadTooLarge { size_bytes_max }.into_response()
        } else {
            match tokio::time::timeout(limits.request_timeout(), next.run(request)).await {
                Ok(response) => response,
                Err(_elapsed) => ApiError::RequestTimeout {
                    timeout_ms: limits.request_timeout_ms,
                }
                .into_response(),
            }
        };
        normalize_error_body(state, method, response).await
    });
    // A panic in a handler (or anything it polls) is caught here, where the
    // future is polled, so it answers 500 and the connection lives on.
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| handled.as_mut().poll(cx))) {
            Ok(Poll::Ready(response)) => Poll::Ready(response),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(panic_response(panic)),
        }
    })
    .await
}

/// The limit a declared body exceeds, refused before reading any of it.
fn oversized_content_length(state: &AppState, request: &Request) -> Option<u64> {
    let size_bytes_max = state.limits().request_body_bytes_max;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > size_bytes_max => Some(size_bytes_max),
        _ => None,
    }
}

/// A safety net: any error response that is not JSON (an axum rejection a
/// handler did not convert, a layer's plain-text error) is rewritten into the
/// API's error shape, so clients can always parse errors the same way.
async fn normalize_error_body(state: &AppState, method: &Method, response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, NORMALIZED_BODY_BYTES_MAX).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    };
    let error = match status {
        StatusCode::BAD_REQUEST => ApiError::BadRequest {
            reason: BadRequestReason::InvalidParameter { detail: text },
        },
        StatusCode::UNAUTHORIZED => ApiError::Unauthenticated {
            reason: AuthFailure::MissingCredentials,
        },
        StatusCode::NOT_FOUND => ApiError::NotFound {
            what: "resource".to_owned(),
        },
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed {
            method: method.to_string(),
        },
        StatusCode::REQUEST_TIMEOUT => ApiError::RequestTimeout {
            timeout_ms: state.limits().request_timeout_ms,
        },
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            size_bytes_max: state.limits().request_body_bytes_max,
        },
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::BadRequest {
            reason: BadRequestReason::UnsupportedContentType,
        },
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::Unprocessable { detail: text },
        s if s.is_server_error() => ApiError::internal(format!("{s}: {text}")),
        _ => return Response::from_parts(parts, axum::body::Body::from(text)),
    };
    error.into_response()
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// A handler panicked: log it, answer 500, keep serving.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    ApiError::internal(format!("handler panicked: {detail}")).into_response()
}
