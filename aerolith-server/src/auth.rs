//! Operator authentication: the [`AdminAuth`] extractor that admits a request
//! only if it carries `Authorization: Bearer <admin key>`.
//!
//! The presented key is hashed and compared with the stored hash in constant
//! time (`secrets::AdminKeyHash::verify`). Tenant API keys and session tokens
//! are resolved by aerolith-tenancy and get their own extractor there.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::error::{ApiError, AuthFailure};
use crate::state::AppState;

/// Proof that the request was made with the operator's admin key. Take it as
/// a handler argument to make the route operator-only.
#[derive(Debug, Clone, Copy)]
pub struct AdminAuth {
    _private: (),
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is
/// case-insensitive; exactly one space separates it from a non-empty token.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthFailure> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or(AuthFailure::MissingCredentials)?;
    let value = value
        .to_str()
        .map_err(|_| AuthFailure::MalformedCredentials)?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(AuthFailure::MalformedCredentials)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(AuthFailure::MalformedCredentials);
    }
    Ok(token)
}

impl<S> FromRequestParts<S> for AdminAuth
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let token =
            bearer_token(&parts.headers).map_err(|reason| ApiError::Unauthenticated { reason })?;
        if state.admin_key_hash().verify(token) {
            Ok(AdminAuth { _private: () })
        } else {
            Err(ApiError::Unauthenticated {
                reason: AuthFailure::InvalidCredentials,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value.parse().expect("header value"));
        headers
    }

    #[test]
    fn bearer_token_is_extracted_case_insensitively() {
        assert_eq!(bearer_token(&headers("Bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(&headers("bearer abc")), Ok("abc"));
    }

    #[test]
    fn malformed_authorization_headers_are_told_apart_from_missing_ones() {
        assert_eq!(
            bearer_token(&HeaderMap::new()),
            Err(AuthFailure::MissingCredentials)
        );
        for bad in ["Basic abc", "Bearer", "Bearer ", "Bearer a b", "abc"] {
            assert_eq!(
                bearer_token(&headers(bad)),
                Err(AuthFailure::MalformedCredentials),
                "{bad:?}"
            );
        }
    }
}
