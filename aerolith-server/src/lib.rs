//! The Aerolith reference server: the HTTP API on axum/tokio, the `aerolith`
//! command line, configuration, operator secrets, Prometheus metrics and the
//! OpenAPI document.
//!
//! The library crates (`aerolith-core`, `aerolith-tenancy`,
//! `aerolith-billing`) are synchronous; this is the only async crate and the
//! only one that knows HTTP. The binary (`src/main.rs`) only calls
//! [`run_cli`]; everything else lives here so tests drive it directly:
//!
//! - [`ServerConfig::resolve`] layers flags > environment > TOML file >
//!   defaults.
//! - [`secrets::load_or_create`] creates or reads the admin key hash and the
//!   master key in the data directory (mode 0600).
//! - [`app`] builds the `Router` (routes, middleware, fallbacks) from an
//!   [`AppState`]; [`app_with_routes`] adds routes registered on an
//!   [`ApiRouter`], which documents each one in `/openapi.json`.
//! - [`serve_until`] runs a router on a listener with slow-client protections
//!   and graceful shutdown; [`run_serve`] is the whole `aerolith serve`.
//! - [`ApiError`] is the one error type of every handler, with the one
//!   code-to-status table; [`JsonBody`] is the JSON extractor with the size
//!   and depth limits.
//!
//! Boundary: no storage, tenancy or billing logic lives here; handlers call
//! the library crates and translate their errors into [`ApiError`].

mod admin;
mod app;
mod auth;
mod billing_routes;
mod cli;
mod client;
pub mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod json;
mod metering;
mod metrics;
pub mod secrets;
mod serve;
mod state;
mod tenant;
mod transfer;
mod usage;

pub use admin::admin_routes;
pub use app::{app, app_with_routes, base_routes, ApiRouter, Health, WhoAmI};
pub use auth::{bearer_token, AdminAuth};
pub use billing_routes::{
    billing_routes, billing_run_loop, open_billing_service, IDEMPOTENCY_KEY_HEADER,
    MANUAL_PROVIDER, TEST_PROVIDER,
};
pub use cli::{run as run_cli, SERVER_URL_DEFAULT};
pub use client::{AdminClient, ClientError};
pub use config::{ConfigError, ConfigLayer, ServerConfig};
pub use error::{ApiError, AuthFailure, BadRequestReason, ErrorBody, ErrorObject};
pub use json::{check_json_depth, parse_json_body, JsonBody, JsonTooDeep};
pub use metering::{
    billing_db_options, run_storage_sampling, Billing, BillingOpenError, UsagePeriodSource,
    BILLING_DIR, BILLING_KEY_CONTEXT, USAGE_METRICS_TENANTS_MAX,
};
pub use metrics::{Labels, Metrics, MetricsSource, MetricsWriter};
pub use serve::{bind, run_serve, serve_until, ConnectionLimits, ServeError, ShutdownSignals};
pub use state::{AppState, HttpLimits, ShutdownHook};
pub use tenant::tenant_routes;
pub use transfer::{transfer_routes, EXPORT_CHANNEL_CHUNKS, EXPORT_CHUNK_BYTES, IMPORT_BATCH_DOCS};
pub use usage::{usage_routes, HISTORY_RANGE_MS_MAX, STORAGE_GB_MONTH_DECIMALS, USAGE_METRICS};
