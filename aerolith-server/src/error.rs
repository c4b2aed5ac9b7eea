//! The one error type every HTTP handler returns, and the one table that maps
//! each error code to its HTTP status.
//!
//! Every error response has the body
//! `{"error":{"code":"...","message":"...", ...details}}`; the details are
//! facts a client can act on (which limit, how long to wait). `internal`
//! errors log their detail and never echo it. Rejections produced by axum
//! itself are converted into this shape by the extractors in `json` and by
//! the fallbacks in `app`, so a client never sees a plain-text error.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

/// An error as the HTTP API reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request is malformed (400).
    #[error("{reason}")]
    BadRequest {
        /// What is wrong with it.
        reason: BadRequestReason,
    },
    /// No valid credentials were presented (401).
    #[error("{reason}")]
    Unauthenticated {
        /// What is wrong with the credentials.
        reason: AuthFailure,
    },
    /// The tenant is suspended for non-payment (402).
    #[error("tenant {tenant_id} is suspended for non-payment; settle the open invoice to resume")]
    PaymentRequired {
        /// The suspended tenant.
        tenant_id: String,
    },
    /// The credentials are valid but do not allow this (403).
    #[error("not allowed to {action}")]
    Forbidden {
        /// The refused action, in words (`delete tenants`).
        action: String,
    },
    /// A quota of the tenant's plan would be exceeded (403).
    #[error("quota {limit} exceeded: limit {limit_value}, in use {usage}")]
    QuotaExceeded {
        /// Which quota (`storage_bytes`, `documents`).
        limit: String,
        /// The quota's value.
        limit_value: u64,
        /// Current use.
        usage: u64,
    },
    /// The thing addressed does not exist (404).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for (`tenant t_1`, `route GET /x`).
        what: String,
    },
    /// The request conflicts with the current state (409).
    #[error("{what}")]
    Conflict {
        /// The conflict, in words (`tenant acme already exists`).
        what: String,
    },
    /// The request body is larger than allowed (413).
    #[error("request body exceeds the limit of {size_bytes_max} bytes")]
    PayloadTooLarge {
        /// The limit.
        size_bytes_max: u64,
    },
    /// The request is well formed but its content is invalid (422).
    #[error("{detail}")]
    Unprocessable {
        /// What is invalid (`field "plan": unknown variant "gold"`).
        detail: String,
    },
    /// Too many requests; retry later (429, with `Retry-After`).
    #[error("rate limit exceeded; retry in {retry_after_ms} ms")]
    RateLimited {
        /// How long to wait before retrying.
        retry_after_ms: u64,
    },
    /// The route exists but not with this method (405).
    #[error("method {method} is not allowed on this route")]
    MethodNotAllowed {
        /// The method used.
        method: String,
    },
    /// The request took longer than the server allows (408).
    #[error("request not completed within {timeout_ms} ms")]
    RequestTimeout {
        /// The deadline.
        timeout_ms: u64,
    },
    /// The server cannot serve the request right now (503).
    #[error("service unavailable: {reason}")]
    Unavailable {
        /// Why (`starting`, `shutting down`).
        reason: String,
    },
    /// A bug or an environment failure on the server side (500). The detail
    /// is logged, never sent.
    #[error("internal server error")]
    Internal {
        /// What went wrong, for the log only.
        detail: String,
    },
}

/// Why a request is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadRequestReason {
    /// The body is not syntactically valid JSON.
    #[error("malformed JSON: {detail}")]
    MalformedJson {
        /// The parser's message, with line and column.
        detail: String,
    },
    /// The body nests arrays and objects deeper than allowed.
    #[error("JSON nesting is deeper than the limit of {depth_max}")]
    JsonTooDeep {
        /// The limit.
        depth_max: u32,
    },
    /// The body is not declared as JSON.
    #[error("expected a `Content-Type: application/json` body")]
    UnsupportedContentType,
    /// The body could not be read.
    #[error("cannot read request body: {detail}")]
    UnreadableBody {
        /// What failed.
        detail: String,
    },
    /// A path or query parameter is invalid.
    #[error("invalid parameter: {detail}")]
    InvalidParameter {
        /// What is wrong.
        detail: String,
    },
}

impl BadRequestReason {
    /// A stable machine-readable name, sent as `reason`.
    pub fn as_str(&self) -> &'static str {
        match self {
            BadRequestReason::MalformedJson { .. } => "malformed_json",
            BadRequestReason::JsonTooDeep { .. } => "json_too_deep",
            BadRequestReason::UnsupportedContentType => "unsupported_content_type",
            BadRequestReason::UnreadableBody { .. } => "unreadable_body",
            BadRequestReason::InvalidParameter { .. } => "invalid_parameter",
        }
    }
}

/// Why credentials were not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// No `Authorization` header.
    #[error("missing `Authorization: Bearer <key>` header")]
    MissingCredentials,
    /// An `Authorization` header that is not `Bearer <key>`.
    #[error("malformed `Authorization` header; expected `Bearer <key>`")]
    MalformedCredentials,
    /// A well-formed key that is not valid here.
    #[error("invalid credentials")]
    InvalidCredentials,
}

impl AuthFailure {
    /// A stable machine-readable name, sent as `reason`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthFailure::MissingCredentials => "missing_credentials",
            AuthFailure::MalformedCredentials => "malformed_credentials",
            AuthFailure::InvalidCredentials => "invalid_credentials",
        }
    }
}

/// The JSON body of every error response (for the OpenAPI document; the
/// response is built from [`ApiError::body`]).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorObject,
}

/// The `error` member of an error response. Besides `code` and `message` it
/// carries details that depend on the code: `reason` (bad_request,
/// unauthenticated), `limit`/`limit_value`/`usage` (quota_exceeded),
/// `size_bytes_max` (payload_too_large), `retry_after_seconds`
/// (rate_limited), `timeout_ms` (request_timeout), `tenant_id`
/// (payment_required), `depth_max` (json too deep).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorObject {
    /// Stable machine-readable code (`not_found`, `quota_exceeded`, ...).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// The error's code and HTTP status: the one table of the API.
    pub fn code_and_status(&self) -> (&'static str, StatusCode) {
        match self {
            ApiError::BadRequest { .. } => ("bad_request", StatusCode::BAD_REQUEST),
            ApiError::Unauthenticated { .. } => ("unauthenticated", StatusCode::UNAUTHORIZED),
            ApiError::PaymentRequired { .. } => ("payment_required", StatusCode::PAYMENT_REQUIRED),
            ApiError::Forbidden { .. } => ("forbidden", StatusCode::FORBIDDEN),
            ApiError::QuotaExceeded { .. } => ("quota_exceeded", StatusCode::FORBIDDEN),
            ApiError::NotFound { .. } => ("not_found", StatusCode::NOT_FOUND),
            ApiError::Conflict { .. } => ("conflict", StatusCode::CONFLICT),
            ApiError::PayloadTooLarge { .. } => {
                ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE)
            }
            ApiError::Unprocessable { .. } => ("unprocessable", StatusCode::UNPROCESSABLE_ENTITY),
            ApiError::RateLimited { .. } => ("rate_limited", StatusCode::TOO_MANY_REQUESTS),
            ApiError::MethodNotAllowed { .. } => {
                ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED)
            }
            ApiError::RequestTimeout { .. } => ("request_timeout", StatusCode::REQUEST_TIMEOUT),
            ApiError::Unavailable { .. } => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
            ApiError::Internal { .. } => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code_and_status().0
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.code_and_status().1
    }

    /// The JSON body sent for this error.
    pub fn body(&self) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), Value::from(self.code()));
        error.insert("message".into(), Value::from(self.to_string()));
        match self {
            ApiError::BadRequest { reason } => {
                error.insert("reason".into(), Value::from(reason.as_str()));
                if let BadRequestReason::JsonTooDeep { depth_max } = reason {
                    error.insert("depth_max".into(), Value::from(*depth_max));
                }
            }
            ApiError::Unauthenticated { reason } => {
                error.insert("reason".into(), Value::from(reason.as_str()));
            }
            ApiError::PaymentRequired { tenant_id } => {
                error.insert("tenant_id".into(), Value::from(tenant_id.as_str()));
            }
            ApiError::QuotaExceeded {
                limit,
                limit_value,
                usage,
            } => {
                error.insert("limit".into(), Value::from(limit.as_str()));
                error.insert("limit_value".into(), Value::from(*limit_value));
                error.insert("usage".into(), Value::from(*usage));
            }
            ApiError::PayloadTooLarge { size_bytes_max } => {
                error.insert("size_bytes_max".into(), Value::from(*size_bytes_max));
            }
            ApiError::RateLimited { retry_after_ms } => {
                error.insert(
                    "retry_after_seconds".into(),
                    Value::from(retry_after_seconds(*retry_after_ms)),
                );
            }
            ApiError::RequestTimeout { timeout_ms } => {
                error.insert("timeout_ms".into(), Value::from(*timeout_ms));
            }
            ApiError::Forbidden { .. }
            | ApiError::NotFound { .. }
            | ApiError::Conflict { .. }
            | ApiError::Unprocessable { .. }
            | ApiError::MethodNotAllowed { .. }
            | ApiError::Unavailable { .. }
            | ApiError::Internal { .. } => {}
        }
        let mut body = Map::new();
        body.insert("error".into(), Value::Object(error));
        Value::Object(body)
    }

    /// An internal error from anything displayable; the text is only logged.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        ApiError::Internal {
            detail: detail.to_string(),
        }
    }
}

/// `Retry-After` is whole seconds; round up so a client never retries early.
fn retry_after_seconds(retry_after_ms: u64) -> u64 {
    retry_after_ms.div_ceil(1_000)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal { detail } = &self {
            tracing::error!(detail = %detail, "internal error");
        }
        let status = self.status();
        let mut response = (status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::RateLimited { retry_after_ms } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_seconds(*retry_after_ms)),
                );
            }
            ApiError::Unauthenticated { .. } => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

/// The billing service's errors: another tenant's (or no) invoice is 404,
/// an unknown plan or provider 422, a paid invoice or a second subscription
/// 409; storage and broken invariants are 500.
impl From<aerolith_billing::BillingServiceError> for ApiError {
    fn from(error: aerolith_billing::BillingServiceError) -> ApiError {
        use aerolith_billing::subscription::SubscriptionError;
        use aerolith_billing::BillingServiceError as E;
        match &error {
            E::InvoiceNotFound { invoice_id, .. } => ApiError::NotFound {
                what: format!("invoice {:?}", invoice_id.0),
            },
            E::NoSubscription { .. } => ApiError::NotFound {
                what: "subscription".to_owned(),
            },
            // The provider's text names the earlier payment; say only what
            // the caller needs to know.
            E::Payment(aerolith_billing::payment::PaymentError::IdempotencyConflict(_)) => {
                ApiError::Conflict {
                    what: "the idempotency key was already used for a different payment".to_owned(),
                }
            }
            E::InvoiceNotPayable { .. }
            | E::AlreadySubscribed { .. }
            | E::DuplicateCoupon { .. }
            | E::Subscription(SubscriptionError::IllegalTransition { .. }) => ApiError::Conflict {
                what: error.to_string(),
            },
            E::UnknownPlan { .. }
            | E::NoPriceForInterval { .. }
            | E::UnknownProvider { .. }
            | E::ReservedIdempotencyKey { .. }
            | E::InvalidCoupon { .. }
            | E::InvalidCredit { .. }
            | E::TaxRateOutOfRange { .. }
            | E::Proration(_)
            | E::Payment(_) => ApiError::Unprocessable {
                detail: error.to_string(),
            },
            _ => ApiError::internal(&error),
        }
    }
}

/// How a library error of the tenancy layer is reported over HTTP. Bad input
/// is always a 4xx; only storage failures are 5xx.
impl From<aerolith_tenancy::TenancyError> for ApiError {
    fn from(error: aerolith_tenancy::TenancyError) -> ApiError {
        use aerolith_tenancy::{AuthError, SuspensionReason, TenancyError};
        let unprocessable = |detail: &dyn std::fmt::Display| ApiError::Unprocessable {
            detail: detail.to_string(),
        };
        match &error {
            TenancyError::Auth(AuthError::Store(_)) | TenancyError::Store(_) => {
                ApiError::internal(&error)
            }
            TenancyError::Auth(AuthError::Token(
                aerolith_tenancy::TokenError::LifetimeOutOfRange { .. },
            )) => unprocessable(&error),
            TenancyError::Auth(_) => ApiError::Unauthenticated {
                reason: AuthFailure::InvalidCredentials,
            },
            TenancyError::Forbidden(forbidden) => ApiError::Forbidden {
                action: forbidden.permission.to_string(),
            },
            TenancyError::Suspended(suspended) => match suspended.reason {
                SuspensionReason::NonPayment => ApiError::PaymentRequired {
                    tenant_id: suspended.tenant.to_string(),
                },
                _ => ApiError::Forbidden {
                    action: format!(
                        "{} while the tenant is suspended ({})",
                        suspended.permission, suspended.reason
                    ),
                },
            },
            TenancyError::QuotaExceeded(quota) => ApiError::QuotaExceeded {
                limit: quota.limit.to_string(),
                limit_value: quota.limit_value,
                usage: quota.current,
            },
            TenancyError::RateLimited(limited) => ApiError::RateLimited {
                retry_after_ms: limited.retry_after_ms,
            },
            TenancyError::ConcurrencyLimited(_) => ApiError::RateLimited {
                retry_after_ms: CONCURRENCY_RETRY_AFTER_MS,
            },
            TenancyError::ApiKey(aerolith_tenancy::ApiKeyError::NotFound { .. }) => {
                ApiError::NotFound {
                    what: error.to_string(),
                }
            }
            TenancyError::ApiKey(aerolith_tenancy::ApiKeyError::Store(_)) => {
                ApiError::internal(&error)
            }
            TenancyError::Audit(aerolith_tenancy::AuditError::Store(_)) => {
                ApiError::internal(&error)
            }
            TenancyError::Audit(_) => ApiError::Conflict {
                what: error.to_string(),
            },
            TenancyError::TenantNotFound { .. } => ApiError::NotFound {
                what: format!("{error}").trim_end_matches(" not found").to_owned(),
            },
            TenancyError::SlugTaken { .. } => ApiError::Conflict {
                what: error.to_string(),
            },
            TenancyError::Engine(engine) => engine_error(engine),
            _ => unprocessable(&error),
        }
    }
}

/// How long a client refused for too many requests in flight should wait.
const CONCURRENCY_RETRY_AFTER_MS: u64 = 1_000;

fn engine_error(error: &aerolith_tenancy::EngineError) -> ApiError {
    use aerolith_tenancy::EngineError;
    match error {
        EngineError::CollectionNotFound { .. }
        | EngineError::DocumentNotFound { .. }
        | EngineError::IndexNotFound { .. } => ApiError::NotFound {
            what: error.to_string(),
        },
        EngineError::CollectionExists { .. }
        | EngineError::DocumentExists { .. }
        | EngineError::UniqueViolation { .. }
        | EngineError::IndexExists { .. } => ApiError::Conflict {
            what: error.to_string(),
        },
        EngineError::Timeout { budget_ms, .. } => ApiError::RequestTimeout {
            timeout_ms: *budget_ms,
        },
        EngineError::Unavailable { .. } => ApiError::Unavailable {
            reason: error.to_string(),
        },
        _ => ApiError::Unprocessable {
            detail: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(0), 0);
        assert_eq!(retry_after_seconds(1), 1);
        assert_eq!(retry_after_seconds(1_000), 1);
        assert_eq!(retry_after_seconds(1_001), 2);
    }

    fn status_of(error: aerolith_tenancy::TenancyError) -> StatusCode {
        ApiError::from(error).status()
    }

    #[test]
    fn tenancy_errors_map_to_their_statuses_and_bad_input_is_never_500() {
        use aerolith_tenancy::{
            AuthError, EngineError, Permission, SuspensionReason, TenancyError, TenantId,
            TenantStatus,
        };
        use std::str::FromStr;
        let tenant = TenantId::from_str("7").expect("a valid id");
        let suspended = |reason| {
            TenantStatus::Suspended { reason }
                .check(tenant, Permission::WriteDocuments)
                .expect_err("a suspended tenant cannot write")
        };
        let cases = [
            (
                TenancyError::Suspended(suspended(SuspensionReason::NonPayment)),
                StatusCode::PAYMENT_REQUIRED,
            ),
            (
                TenancyError::Suspended(suspended(SuspensionReason::Operator)),
                StatusCode::FORBIDDEN,
            ),
            (
                TenancyError::Auth(AuthError::UnknownKey),
                StatusCode::UNAUTHORIZED,
            ),
            (
                TenancyError::TenantNotFound { tenant },
                StatusCode::NOT_FOUND,
            ),
            (
                TenancyError::SlugTaken {
                    slug: "acme".into(),
                },
                StatusCode::CONFLICT,
            ),
            (
                TenancyError::PlanNotFound {
                    plan: "gold".into(),
                },
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                TenancyError::Engine(EngineError::DocumentExists {
                    collection: "c".into(),
                    id: "1".into(),
                }),
                StatusCode::CONFLICT,
            ),
            (
                TenancyError::Engine(EngineError::CollectionNotFound {
                    collection: "c".into(),
                }),
                StatusCode::NOT_FOUND,
            ),
            (
                TenancyError::Engine(EngineError::InvalidCollectionName {
                    name: "a b".into(),
                    reason: "space",
                }),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                TenancyError::Engine(EngineError::Timeout {
                    budget_ms: 10,
                    elapsed_ms: 11,
                }),
                StatusCode::REQUEST_TIMEOUT,
            ),
            (
                TenancyError::Engine(EngineError::Unavailable { operation: "read" }),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ];
        for (error, status) in cases {
            let shown = error.to_string();
            assert_eq!(status_of(error), status, "{shown}");
        }
    }

    #[test]
    fn payment_suspension_names_the_tenant_in_the_body() {
        let error = aerolith_tenancy::TenantStatus::Suspended {
            reason: aerolith_tenancy::SuspensionReason::NonPayment,
        }
        .check(
            "7".parse().expect("a valid id"),
            aerolith_tenancy::Permission::WriteDocuments,
        )
        .expect_err("refused");
        let body = ApiError::from(aerolith_tenancy::TenancyError::Suspended(error)).body();
        assert_eq!(body["error"]["code"], "payment_required");
        assert_eq!(body["error"]["tenant_id"], "7");
    }

    #[test]
    fn internal_error_never_echoes_its_detail() {
        let err = ApiError::internal("disk /secret/path exploded");
        let body = err.body().to_string();
        assert!(!body.contains("secret"), "{body}");
        assert_eq!(err.to_string(), "internal server error");
    }
}
