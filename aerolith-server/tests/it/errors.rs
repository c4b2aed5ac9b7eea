//! Every `ApiError` variant's status and body, the 404/405 fallbacks, the
//! panic catcher, and the admin authentication failures.

use aerolith_server::{ApiError, AuthFailure, BadRequestReason};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse as _;
use serde_json::json;

use crate::support::{get, send, test_app, ADMIN_KEY};

async fn render(error: ApiError) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    let response = error.into_response();
    let status = response.status();
    let headers = response.headers().clone();
    assert_eq!(
        headers
            .get("content-type")
            .map(|v| v.to_str().expect("ascii")),
        Some("application/json")
    );
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        headers,
        serde_json::from_slice(&body).expect("JSON body"),
    )
}

#[tokio::test]
async fn every_error_variant_has_its_status_and_body_snapshot() {
    let cases = vec![
        (
            ApiError::BadRequest {
                reason: BadRequestReason::MalformedJson {
                    detail: "EOF while parsing a value at line 1 column 0".into(),
                },
            },
            400,
            json!({"error":{"code":"bad_request","message":"malformed JSON: EOF while parsing a value at line 1 column 0","reason":"malformed_json"}}),
        ),
        (
            ApiError::BadRequest {
                reason: BadRequestReason::JsonTooDeep { depth_max: 64 },
            },
            400,
            json!({"error":{"code":"bad_request","message":"JSON nesting is deeper than the limit of 64","reason":"json_too_deep","depth_max":64}}),
        ),
        (
            ApiError::BadRequest {
                reason: BadRequestReason::UnsupportedContentType,
            },
            400,
            json!({"error":{"code":"bad_request","message":"expected a `Content-Type: application/json` body","reason":"unsupported_content_type"}}),
        ),
        (
            ApiError::BadRequest {
                reason: BadRequestReason::UnreadableBody {
                    detail: "connection reset".into(),
                },
            },
            400,
            json!({"error":{"code":"bad_request","message":"cannot read request body: connection reset","reason":"unreadable_body"}}),
        ),
        (
            ApiError::BadRequest {
                reason: BadRequestReason::InvalidParameter {
                    detail: "limit must be a number".into(),
                },
            },
            400,
            json!({"error":{"code":"bad_request","message":"invalid parameter: limit must be a number","reason":"invalid_parameter"}}),
        ),
        (
            ApiError::Unauthenticated {
                reason: AuthFailure::InvalidCredentials,
            },
            401,
            json!({"error":{"code":"unauthenticated","message":"invalid credentials","reason":"invalid_credentials"}}),
        ),
        (
            ApiError::PaymentRequired {
                tenant_id: "t_acme".into(),
            },
            402,
            json!({"error":{"code":"payment_required","message":"tenant t_acme is suspended for non-payment; settle the open invoice to resume","tenant_id":"t_acme"}}),
        ),
        (
            ApiError::Forbidden {
                action: "delete tenants".into(),
            },
            403,
            json!({"error":{"code":"forbidden","message":"not allowed to delete tenants"}}),
        ),
        (
            ApiError::QuotaExceeded {
                limit: "documents".into(),
                limit_value: 1000,
                usage: 1000,
            },
            403,
            json!({"error":{"code":"quota_exceeded","message":"quota documents exceeded: limit 1000, in use 1000","limit":"documents","limit_value":1000,"usage":1000}}),
        ),
        (
            ApiError::NotFound {
                what: "tenant t_1".into(),
            },
            404,
            json!({"error":{"code":"not_found","message":"tenant t_1 not found"}}),
        ),
        (
            ApiError::Conflict {
                what: "tenant acme already exists".into(),
            },
            409,
            json!({"error":{"code":"conflict","message":"tenant acme already exists"}}),
        ),
        (
            ApiError::PayloadTooLarge {
                size_bytes_max: 1024,
            },
            413,
            json!({"error":{"code":"payload_too_large","message":"request body exceeds the limit of 1024 bytes","size_bytes_max":1024}}),
        ),
        (
            ApiError::Unprocessable {
                detail: "unknown operator $foo".into(),
            },
            422,
            json!({"error":{"code":"unprocessable","message":"unknown operator $foo"}}),
        ),
        (
            ApiError::RateLimited {
                retry_after_ms: 1_500,
            },
            429,
            json!({"error":{"code":"rate_limited","message":"rate limit exceeded; retry in 1500 ms","retry_after_seconds":2}}),
        ),
        (
            ApiError::MethodNotAllowed {
                method: "PATCH".into(),
            },
            405,
            json!({"error":{"code":"method_not_allowed","message":"method PATCH is not allowed on this route"}}),
        ),
        (
            ApiError::RequestTimeout { timeout_ms: 30_000 },
            408,
            json!({"error":{"code":"request_timeout","message":"request not completed within 30000 ms","timeout_ms":30000}}),
        ),
        (
            ApiError::Unavailable {
                reason: "shutting down".into(),
            },
            503,
            json!({"error":{"code":"unavailable","message":"service unavailable: shutting down"}}),
        ),
        (
            ApiError::Internal {
                detail: "segment 7 checksum mismatch at /var/lib/x".into(),
            },
            500,
            json!({"error":{"code":"internal","message":"internal server error"}}),
        ),
    ];
    for (error, status, expected) in cases {
        let code = error.code();
        let (got_status, _, body) = render(error).await;
        assert_eq!(got_status.as_u16(), status, "{code}");
        assert_eq!(body, expected, "{code}");
        // Key order is part of the snapshot: code and message come first.
        let keys: Vec<&String> = body["error"].as_object().expect("object").keys().collect();
        assert_eq!(keys[..2], ["code", "message"], "{code}");
    }
}

#[tokio::test]
async fn rate_limited_sends_retry_after_rounded_up_to_seconds() {
    let (_, headers, _) = render(ApiError::RateLimited {
        retry_after_ms: 2_001,
    })
    .await;
    assert_eq!(headers.get("retry-after").expect("header"), "3");
}

#[tokio::test]
async fn unauthenticated_sends_www_authenticate_bearer() {
    let (_, headers, _) = render(ApiError::Unauthenticated {
        reason: AuthFailure::MissingCredentials,
    })
    .await;
    assert_eq!(headers.get("www-authenticate").expect("header"), "Bearer");
}

#[tokio::test]
async fn unknown_route_is_a_json_404_naming_the_route() {
    let (app, _) = test_app();
    let reply = send(&app, get("/v1/nothing/here?x=1")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.json(),
        json!({"error":{"code":"not_found","message":"route GET /v1/nothing/here not found"}})
    );
}

#[tokio::test]
async fn wrong_method_on_a_known_route_is_a_json_405() {
    let (app, _) = test_app();
    let request = Request::delete("/healthz")
        .body(Body::empty())
        .expect("request");
    let reply = send(&app, request).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.json()["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn panicking_handler_gives_json_500_and_the_app_keeps_serving() {
    let (app, _) = test_app();
    let reply = send(&app, get("/test/panic")).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        reply.json(),
        json!({"error":{"code":"internal","message":"internal server error"}})
    );
    assert!(
        !reply.text().contains("handler bug"),
        "panic message is not echoed"
    );
    assert_eq!(send(&app, get("/healthz")).await.status, StatusCode::OK);
}

fn whoami(authorization: Option<&str>) -> Request<Body> {
    let mut request = Request::get("/v1/admin/whoami");
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.body(Body::empty()).expect("request")
}

#[tokio::test]
async fn admin_route_accepts_the_admin_key() {
    let (app, _) = test_app();
    let reply = send(&app, whoami(Some(&format!("Bearer {ADMIN_KEY}")))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"principal":"operator"}));
}

#[tokio::test]
async fn admin_route_refuses_missing_malformed_and_wrong_keys_with_401() {
    let (app, _) = test_app();
    let cases = [
        (None, "missing_credentials"),
        (Some(format!("Basic {ADMIN_KEY}")), "malformed_credentials"),
        (Some("Bearer".to_owned()), "malformed_credentials"),
        (
            Some(format!("Bearer {ADMIN_KEY} extra")),
            "malformed_credentials",
        ),
        (Some("Bearer adm_wrong".to_owned()), "invalid_credentials"),
        (Some(format!("Bearer {ADMIN_KEY}x")), "invalid_credentials"),
    ];
    for (header, reason) in cases {
        let reply = send(&app, whoami(header.as_deref())).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{header:?}");
        let body = reply.json();
        assert_eq!(body["error"]["code"], "unauthenticated", "{header:?}");
        assert_eq!(body["error"]["reason"], reason, "{header:?}");
        assert_eq!(
            reply.headers.get("www-authenticate").expect("header"),
            "Bearer"
        );
    }
}
