//! JSON request bodies: the nesting-depth guard and the [`JsonBody`]
//! extractor that every handler taking JSON uses instead of `axum::Json`.
//!
//! The depth guard is a single forward scan over the raw bytes with a counter,
//! no recursion, run before serde sees the body: a body of 100,000 `[` costs
//! one pass and a 400, never a stack overflow. The extractor turns every way a
//! body can be wrong (content type, size, syntax, depth, shape) into an
//! [`ApiError`] with the shape of every other error.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, BadRequestReason};
use crate::state::AppState;

/// The JSON nesting found to exceed the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonTooDeep {
    /// The limit that was exceeded.
    pub depth_max: u32,
    /// Byte offset of the bracket that went one level too deep.
    pub offset: usize,
}

/// Checks that `bytes` never nests arrays and objects deeper than
/// `depth_max` (a scalar has depth 0, `[]` depth 1, `[{}]` depth 2).
///
/// Brackets inside strings (escapes included) do not count. The scan does
/// not validate the JSON otherwise: the parser does that afterwards, and
/// malformed input can only make the count larger, never bypass it.
pub fn check_json_depth(bytes: &[u8], depth_max: u32) -> Result<(), JsonTooDeep> {
    let mut depth: u32 = 0;
    let mut offset = 0;
    while let Some(&byte) = bytes.get(offset) {
        match byte {
            b'"' => offset = string_end(bytes, offset + 1),
            b'[' | b'{' => {
                depth += 1;
                if depth > depth_max {
                    return Err(JsonTooDeep { depth_max, offset });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        offset += 1;
    }
    Ok(())
}

/// Bytes of a string's contents [`string_end`] looks at together.
const STRING_CHUNK_BYTES: usize = 16;

/// The offset of the quote that closes a string whose contents start at
/// `from` (`bytes.len()` if none does). Runs without a quote or a backslash
/// are skipped [`STRING_CHUNK_BYTES`] at a time, without a branch per byte:
/// most of a document's bytes are inside strings (measured: the byte-wise
/// scan of a 1 KiB insert was about as long as parsing it).
fn string_end(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    loop {
        while let Some(chunk) = bytes.get(at..at + STRING_CHUNK_BYTES) {
            let special = chunk
                .iter()
                .fold(false, |found, &b| found | (b == b'"') | (b == b'\\'));
            if special {
                break;
            }
            at += STRING_CHUNK_BYTES;
        }
        match bytes.get(at) {
            None => return bytes.len(),
            Some(b'"') => return at,
            // The escaped byte is skipped, whatever it is.
            Some(b'\\') => at += 2,
            Some(_) => at += 1,
        }
    }
}

/// Whether the request declares a JSON body (`application/json` or any
/// `application/*+json`, parameters ignored).
fn has_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a JSON body already read into memory, enforcing the depth limit.
/// Syntax errors are 400 `malformed_json`; well-formed JSON of the wrong
/// shape (missing field, wrong type) is 422 `unprocessable`.
pub fn parse_json_body<T: DeserializeOwned>(bytes: &[u8], depth_max: u32) -> Result<T, ApiError> {
    check_json_depth(bytes, depth_max).map_err(|too_deep| ApiError::BadRequest {
        reason: BadRequestReason::JsonTooDeep {
            depth_max: too_deep.depth_max,
        },
    })?;
    serde_json::from_slice(bytes).map_err(|err| {
        use serde_json::error::Category;
        match err.classify() {
            Category::Data => ApiError::Unprocessable {
                detail: err.to_string(),
            },
            Category::Syntax | Category::Eof => ApiError::BadRequest {
                reason: BadRequestReason::MalformedJson {
                    detail: err.to_string(),
                },
            },
            Category::Io => ApiError::BadRequest {
                reason: BadRequestReason::UnreadableBody {
                    detail: err.to_string(),
                },
            },
        }
    })
}

/// A JSON request body of type `T`, with the server's size and depth limits
/// applied. Use it instead of `axum::Json` in every handler.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let app_state = AppState::from_ref(state);
        let limits = app_state.limits();
        if !has_json_content_type(req.headers()) {
            return Err(ApiError::BadRequest {
                reason: BadRequestReason::UnsupportedContentType,
            });
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| body_rejection(rejection, limits.request_body_bytes_max))?;
        parse_json_body(&bytes, limits.json_depth_max).map(JsonBody)
    }
}

/// Maps a failure to read the body into the API's error shape.
pub(crate) fn body_rejection(rejection: BytesRejection, size_bytes_max: u64) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { size_bytes_max }
    } else {
        ApiError::BadRequest {
            reason: BadRequestReason::UnreadableBody {
                detail: rejection.body_text(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn depth_of(value: &Value) -> u32 {
        match value {
            Value::Array(items) => 1 + items.iter().map(depth_of).max().unwrap_or(0),
            Value::Object(map) => 1 + map.values().map(depth_of).max().unwrap_or(0),
            _ => 0,
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[\\[\\]{}\"\\\\a-z ]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(8, 64, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[\\[{\"a-z]{0,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// The scan as first written, a byte at a time: the reference the
    /// chunked scan must agree with on any input, JSON or not.
    fn depth_bytewise(bytes: &[u8], depth_max: u32) -> Result<(), JsonTooDeep> {
        let mut depth: u32 = 0;
        let mut in_string = false;
        let mut escaped = false;
        for (offset, &byte) in bytes.iter().enumerate() {
            if in_string {
                if escaped {
                    escaped = false;
                } else if byte == b'\\' {
                    escaped = true;
                } else if byte == b'"' {
                    in_string = false;
                }
                continue;
            }
            match byte {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > depth_max {
                        return Err(JsonTooDeep { depth_max, offset });
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn chunked_scan_agrees_with_the_bytewise_one(
            text in prop::collection::vec(
                prop::sample::select(b"[]{}\"\\\\ax".to_vec()),
                0..300,
            ),
            plain_run in 0usize..40,
            limit in 0u32..6,
        ) {
            // Long plain runs inside strings, where chunks are skipped.
            let mut bytes = Vec::new();
            for (i, &b) in text.iter().enumerate() {
                bytes.push(b);
                if i % 7 == 0 {
                    bytes.extend(std::iter::repeat_n(b'x', plain_run));
                }
            }
            prop_assert_eq!(check_json_depth(&bytes, limit), depth_bytewise(&bytes, limit));
        }

        #[test]
        fn scan_accepts_exactly_the_documents_within_the_limit(value in arb_json(), limit in 0u32..10) {
            let text = serde_json::to_vec(&value).expect("serialises");
            let depth = depth_of(&value);
            prop_assert_eq!(check_json_depth(&text, limit).is_ok(), depth <= limit);
        }
    }

    #[test]
    fn hundred_thousand_open_brackets_are_refused_without_recursion() {
        let bomb = vec![b'['; 100_000];
        let err = check_json_depth(&bomb, 64).expect_err("too deep");
        assert_eq!(
            err,
            JsonTooDeep {
                depth_max: 64,
                offset: 64
            }
        );
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let text = br#"{"a":"[[[[[[\"{{{{"}"#;
        assert_eq!(check_json_depth(text, 1), Ok(()));
    }

    #[test]
    fn depth_at_the_limit_passes_and_one_past_fails() {
        assert_eq!(check_json_depth(b"[[1]]", 2), Ok(()));
        assert!(check_json_depth(b"[[[1]]]", 2).is_err());
    }

    #[test]
    fn json_content_types_are_recognised() {
        let mut headers = HeaderMap::new();
        assert!(!has_json_content_type(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "Application/JSON; charset=utf-8".parse().expect("v"),
        );
        assert!(has_json_content_type(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "application/merge-patch+json".parse().expect("v"),
        );
        assert!(has_json_content_type(&headers));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().expect("v"));
        assert!(!has_json_content_type(&headers));
    }

    #[test]
    fn wrong_shape_is_unprocessable_and_bad_syntax_is_bad_request() {
        #[derive(Debug, serde::Deserialize)]
        struct Wanted {
            #[allow(dead_code)]
            name: String,
        }
        let shape = parse_json_body::<Wanted>(br#"{"name":1}"#, 8).expect_err("shape");
        assert_eq!(shape.code(), "unprocessable");
        let syntax = parse_json_body::<Wanted>(br#"{"name":"#, 8).expect_err("syntax");
        assert!(matches!(
            syntax,
            ApiError::BadRequest {
                reason: BadRequestReason::MalformedJson { .. }
            }
        ));
    }
}
