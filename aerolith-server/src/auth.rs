//! Authentication of every request: the [`AdminAuth`] extractor that admits
//! a request only if it carries `Authorization: Bearer <admin key>`, and
//! [`as_tenant`], the one way a tenant route authenticates its caller.
//!
//! The presented admin key is hashed and compared with the stored hash in
//! constant time (`secrets::AdminKeyHash::verify`). Tenant API keys and
//! session tokens are resolved by aerolith-tenancy (`Tenancy::authenticate`,
//! with its credential cache).
//!
//! The rule of a tenant route, in order: the bearer is authenticated; its
//! tenant is taken; the route's permission (if it names one) is authorized
//! on that tenant; the route's work runs. From the moment the bearer is
//! authenticated as a tenant, the request's body bytes are billed to that
//! tenant (`metering::note_tenant`), whatever the outcome — a forbidden
//! request included: the tenant's credential made it and the server carried
//! its bytes, and billing it means a refused request cannot be used to move
//! data for free. An unauthenticated request is billed to nobody.
//!
//! Work runs on the blocking pool, except point reads and the preparation
//! of single-document writes whose credential is in the credential cache
//! ([`as_tenant_inline`]): nothing on those paths reads a file other than
//! the already-open engine's map or waits for a disk, so they run inline on
//! the async worker and save the hand-off. A document write is then awaited
//! as a pending write: no thread waits for its group commit.

use aerolith_tenancy::{Forbidden, Permission, Principal, Tenancy, TenancyError, TenantId};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::error::{ApiError, AuthFailure};
use crate::state::AppState;

/// An authenticated caller of a tenant route, as the route's work sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TenantCaller<'a> {
    /// The registry.
    pub(crate) tenancy: &'a Tenancy,
    /// The presented credential (refreshing a token needs it).
    pub(crate) bearer: &'a str,
    /// Who the credential identifies.
    pub(crate) principal: Principal,
    /// The principal's own tenant.
    pub(crate) tenant: TenantId,
}

impl TenantCaller<'_> {
    /// The caller's handle on its own tenant's data.
    pub(crate) fn handle(&self) -> Result<aerolith_tenancy::TenantHandle, TenancyError> {
        self.tenancy.handle(&self.principal, self.tenant)
    }
}

/// The tenant a request is billed to (once authenticated) and its outcome.
type TenantOutcome<T> = (Option<TenantId>, Result<T, ApiError>);

/// The rule of the module docs, after authentication: take the tenant,
/// authorize `permission`, run `work`.
fn run_as_tenant<T>(
    tenancy: &Tenancy,
    bearer: &str,
    authenticated: Result<Principal, TenancyError>,
    permission: Option<Permission>,
    work: impl FnOnce(TenantCaller<'_>) -> Result<T, ApiError>,
) -> TenantOutcome<T> {
    let principal = match authenticated {
        Ok(principal) => principal,
        Err(error) => return (None, Err(error.into())),
    };
    let forbidden = |permission| ApiError::from(TenancyError::from(Forbidden::new(permission)));
    let Some(tenant) = principal.tenant() else {
        return (
            None,
            Err(forbidden(permission.unwrap_or(Permission::ReadDocuments))),
        );
    };
    if let Some(permission) = permission {
        if let Err(refused) = principal.authorize(tenant, permission) {
            return (Some(tenant), Err(TenancyError::from(refused).into()));
        }
    }
    let caller = TenantCaller {
        tenancy,
        bearer,
        principal,
        tenant,
    };
    (Some(tenant), work(caller))
}

fn bill_to<T>((tenant, result): TenantOutcome<T>) -> Result<T, ApiError> {
    if let Some(tenant) = tenant {
        crate::metering::note_tenant(tenant);
    }
    result
}

/// Authenticates the request's bearer as a tenant, authorizes `permission`
/// (if any) on its own tenant, and runs `work` on the blocking pool; notes
/// the tenant for bandwidth metering as the module docs say.
pub(crate) async fn as_tenant<T, F>(
    state: &AppState,
    headers: &HeaderMap,
    permission: Option<Permission>,
    work: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(TenantCaller<'_>) -> Result<T, ApiError> + Send + 'static,
{
    let bearer = bearer_token(headers)
        .map_err(|reason| ApiError::Unauthenticated { reason })?
        .to_owned();
    let tenancy = state.tenancy()?.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let authenticated = tenancy.authenticate(&bearer);
        run_as_tenant(&tenancy, &bearer, authenticated, permission, work)
    })
    .await
    .map_err(ApiError::internal)?;
    bill_to(outcome)
}

/// [`as_tenant`] for short work that neither reads a file nor waits for a
/// disk: a point read (one document through the caller's handle), or
/// preparing a document write that is then awaited as a pending write
/// (`TenantHandle::*_pending`: admission, validation and the quota
/// reservation; the commit is queued, not waited for). Inline on the async
/// worker when the credential is in the credential cache, so nothing on the
/// path reads the system database; on the blocking pool otherwise. Tenant
/// engines are opened with the registry, never by a request.
pub(crate) async fn as_tenant_inline<T, F>(
    state: &AppState,
    headers: &HeaderMap,
    work: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(TenantCaller<'_>) -> Result<T, ApiError> + Send + 'static,
{
    let bearer = bearer_token(headers).map_err(|reason| ApiError::Unauthenticated { reason })?;
    let tenancy = state.tenancy()?;
    match tenancy.authenticate_cached(bearer) {
        Some(authenticated) => bill_to(run_as_tenant(tenancy, bearer, authenticated, None, work)),
        None => as_tenant(state, headers, None, work).await,
    }
}

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
