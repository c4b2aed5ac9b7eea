//! Request limits: body size (declared and streamed), JSON syntax, shape,
//! content type and depth, and the request deadline.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::support::{get, post_json, send, test_app, BODY_BYTES_MAX, DEPTH_MAX, TIMEOUT_MS};

#[tokio::test]
async fn body_within_the_limit_is_accepted() {
    let (app, _) = test_app();
    let reply = send(&app, post_json("/test/echo", r#"{"a":[1,2,3]}"#)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"a":[1,2,3]}));
}

#[tokio::test]
async fn declared_content_length_over_the_limit_is_413_before_reading() {
    let (app, _) = test_app();
    let body = format!(
        "\"{}\"",
        "x".repeat(usize::try_from(BODY_BYTES_MAX).expect("small"))
    );
    let request = Request::post("/test/echo")
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Body::from(body))
        .expect("request");
    let reply = send(&app, request).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        reply.json(),
        json!({"error":{"code":"payload_too_large","message":"request body exceeds the limit of 1024 bytes","size_bytes_max":1024}})
    );
}

#[tokio::test]
async fn streamed_body_over_the_limit_is_413() {
    let (app, _) = test_app();
    // No Content-Length: the limit is enforced while reading.
    let body = format!(
        "\"{}\"",
        "x".repeat(usize::try_from(BODY_BYTES_MAX).expect("small"))
    );
    let reply = send(&app, post_json("/test/echo", body)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.json()["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn body_exactly_at_the_limit_is_accepted() {
    let (app, _) = test_app();
    let filler = usize::try_from(BODY_BYTES_MAX).expect("small") - 2;
    let body = format!("\"{}\"", "x".repeat(filler));
    assert_eq!(body.len() as u64, BODY_BYTES_MAX);
    let reply = send(&app, post_json("/test/echo", body)).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn malformed_json_is_400_malformed_json() {
    let (app, _) = test_app();
    let reply = send(&app, post_json("/test/echo", r#"{"a": tru"#)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let body = reply.json();
    assert_eq!(body["error"]["code"], "bad_request");
    assert_eq!(body["error"]["reason"], "malformed_json");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("string")
            .contains("line 1"),
        "{body}"
    );
}

#[tokio::test]
async fn well_formed_json_of_the_wrong_shape_is_422() {
    let (app, _) = test_app();
    let reply = send(&app, post_json("/test/named", r#"{"name": 5}"#)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.json()["error"]["code"], "unprocessable");
    let ok = send(&app, post_json("/test/named", r#"{"name": "x"}"#)).await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn body_without_json_content_type_is_400() {
    let (app, _) = test_app();
    let request = Request::post("/test/echo")
        .header("content-type", "text/plain")
        .body(Body::from("{}"))
        .expect("request");
    let reply = send(&app, request).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"]["reason"], "unsupported_content_type");
}

#[tokio::test]
async fn json_at_the_depth_limit_passes_and_one_deeper_is_refused() {
    let (app, _) = test_app();
    let depth = usize::try_from(DEPTH_MAX).expect("small");
    let at_limit = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert_eq!(
        send(&app, post_json("/test/echo", at_limit)).await.status,
        StatusCode::OK
    );
    let past = format!("{}{}", "[".repeat(depth + 1), "]".repeat(depth + 1));
    let reply = send(&app, post_json("/test/echo", past)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json(),
        json!({"error":{"code":"bad_request","message":"JSON nesting is deeper than the limit of 8","reason":"json_too_deep","depth_max":8}})
    );
}

#[test]
fn depth_bomb_of_100k_brackets_is_refused_on_a_small_stack() {
    // A recursive parser would need far more than 256 KiB of stack for
    // 100,000 levels; the scan needs none.
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let mut limits = crate::support::limits();
                limits.request_body_bytes_max = 1_000_000;
                let state = aerolith_server::AppState::new(
                    limits,
                    aerolith_server::secrets::AdminKeyHash::of(crate::support::ADMIN_KEY),
                );
                state.set_ready(true);
                let app = aerolith_server::app_with_routes(state, crate::support::test_routes());
                let bomb = "[".repeat(100_000);
                let reply = send(&app, post_json("/test/echo", bomb)).await;
                (reply.status, reply.json())
            })
        })
        .expect("thread spawns");
    let (status, body) = handle.join().expect("no stack overflow");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["reason"], "json_too_deep");
}

#[tokio::test]
async fn request_over_the_deadline_is_a_json_408() {
    let (app, _) = test_app();
    let reply = send(&app, get("/test/hang")).await;
    assert_eq!(reply.status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(
        reply.json(),
        json!({"error":{"code":"request_timeout","message":format!("request not completed within {TIMEOUT_MS} ms"),"timeout_ms":TIMEOUT_MS}})
    );
}
