//! Session tokens: short-lived, signed proofs of an authenticated API key.
//!
//! Text form: `st_<payload>.<mac>`, both parts unpadded base64url. There is
//! no algorithm field: the version byte selects the one layout and the one
//! MAC this build knows, so a token cannot ask to be checked differently.
//!
//! Payload, version 1 (42 bytes, integers big-endian):
//!
//! | offset | size | field                         |
//! |-------:|-----:|-------------------------------|
//! | 0      | 1    | version = 1                   |
//! | 1      | 8    | tenant id (u64)               |
//! | 9      | 16   | key id (u128)                 |
//! | 25     | 1    | role code ([`Role::code`])    |
//! | 26     | 8    | issued at, Unix ms (i64)      |
//! | 34     | 8    | expires at, Unix ms (i64)     |
//!
//! MAC: `blake3::keyed_hash(k, payload)` (32 bytes) where
//! `k = blake3::derive_key(TOKEN_MAC_CONTEXT, server_secret)`, so the server
//! secret is never used directly and cannot collide with another use of it.
//! Verification order: shape, version, sizes, MAC (constant time), expiry,
//! tenant. Nothing from the payload is trusted before the MAC passes except
//! the version byte, which only selects the layout.
//!
//! A token stays valid until its expiry even if its key is revoked; callers
//! that need revocation to bite at once re-check the key by
//! [`SessionClaims::key_id`]. Lifetimes are capped by
//! [`TOKEN_LIFETIME_MS_MAX`].

use std::fmt;
use std::sync::Arc;

use aerolith_core::Clock;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::error::TokenError;
use crate::ids::{KeyId, TenantId};
use crate::role::{Principal, Role};

/// Every session token starts with this.
pub const TOKEN_PREFIX: &str = "st_";
/// The payload layout version this build issues and accepts.
pub const TOKEN_VERSION: u8 = 1;
/// Size of a version-1 payload in bytes.
pub const TOKEN_PAYLOAD_BYTES: usize = 42;
/// Size of the MAC in bytes.
pub const TOKEN_MAC_BYTES: usize = 32;
/// Longest lifetime a token may be issued with: 12 hours.
pub const TOKEN_LIFETIME_MS_MAX: u64 = 12 * 60 * 60 * 1000;
/// A sensible default lifetime: 15 minutes.
pub const TOKEN_LIFETIME_MS_DEFAULT: u64 = 15 * 60 * 1000;
/// blake3 `derive_key` context for the MAC key.
pub const TOKEN_MAC_CONTEXT: &str = "aerolith 2026-01 session token mac v1";
/// Longest token text accepted before decoding (a version-1 token is 103
/// characters); longer input is refused without work.
const TOKEN_TEXT_LEN_MAX: usize = 128;

/// What a valid token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionClaims {
    /// The tenant the token acts for.
    pub tenant: TenantId,
    /// The API key the token was issued from.
    pub key_id: KeyId,
    /// The role carried over from the key when the token was issued.
    /// [`crate::Tenancy::authenticate`] acts with the key's current role,
    /// so a role change applies to the tokens already issued.
    pub role: Role,
    /// When the token was issued (Unix ms).
    pub issued_unix_ms: i64,
    /// When the token stops working (Unix ms).
    pub expires_unix_ms: i64,
}

impl SessionClaims {
    /// The principal this token authenticates as.
    pub fn principal(&self) -> Principal {
        Principal::Tenant {
            tenant: self.tenant,
            role: self.role,
            key_id: self.key_id,
        }
    }

    fn encode(&self) -> [u8; TOKEN_PAYLOAD_BYTES] {
        let mut payload = [0u8; TOKEN_PAYLOAD_BYTES];
        payload[0] = TOKEN_VERSION;
        payload[1..9].copy_from_slice(&self.tenant.to_be_bytes());
        payload[9..25].copy_from_slice(&self.key_id.to_be_bytes());
        payload[25] = self.role.code();
        payload[26..34].copy_from_slice(&self.issued_unix_ms.to_be_bytes());
        payload[34..42].copy_from_slice(&self.expires_unix_ms.to_be_bytes());
        payload
    }

    fn decode(payload: &[u8; TOKEN_PAYLOAD_BYTES]) -> Result<Self, TokenError> {
        let field = |range: std::ops::Range<usize>| &payload[range];
        Ok(SessionClaims {
            tenant: TenantId::from_be_bytes(field(1..9).try_into().expect("8 bytes")),
            key_id: KeyId::from_be_bytes(field(9..25).try_into().expect("16 bytes")),
            role: Role::from_code(payload[25]).ok_or(TokenError::Malformed)?,
            issued_unix_ms: i64::from_be_bytes(field(26..34).try_into().expect("8 bytes")),
            expires_unix_ms: i64::from_be_bytes(field(34..42).try_into().expect("8 bytes")),
        })
    }
}

/// A token's text. `Debug` hides the MAC.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    /// The token text, to hand to the client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(…)")
    }
}

/// Issues, verifies and refreshes session tokens with one server secret.
pub struct TokenSigner {
    mac_key: [u8; 32],
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner")
            .field("mac_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// A signer keyed by `server_secret` (32 random bytes kept by the
    /// operator), with time from `clock`.
    pub fn new(server_secret: &[u8; 32], clock: Arc<dyn Clock>) -> Self {
        TokenSigner {
            mac_key: blake3::derive_key(TOKEN_MAC_CONTEXT, server_secret),
            clock,
        }
    }

    /// Issues a token for an authenticated key (tenant, key id, role) valid for
    /// `lifetime_ms` from now.
    pub fn issue(
        &self,
        tenant: TenantId,
        key_id: KeyId,
        role: Role,
        lifetime_ms: u64,
    ) -> Result<(SessionToken, SessionClaims), TokenError> {
        if lifetime_ms == 0 || lifetime_ms > TOKEN_LIFETIME_MS_MAX {
            return Err(TokenError::LifetimeOutOfRange {
                requested_ms: lifetime_ms,
                max_ms: TOKEN_LIFETIME_MS_MAX,
            });
        }
        let issued_unix_ms = self.clock.now_unix_ms();
        let lifetime_ms = i64::try_from(lifetime_ms).expect("bounded by TOKEN_LIFETIME_MS_MAX");
        let claims = SessionClaims {
            tenant,
            key_id,
            role,
            issued_unix_ms,
            expires_unix_ms: issued_unix_ms.saturating_add(lifetime_ms),
        };
        let payload = claims.encode();
        let mac = blake3::keyed_hash(&self.mac_key, &payload);
        let text = format!(
            "{TOKEN_PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(mac.as_bytes())
        );
        Ok((SessionToken(text), claims))
    }

    /// Verifies `text`. With `expected_tenant`, a token for any other tenant
    /// is refused with [`TokenError::WrongTenant`].
    pub fn verify(
        &self,
        text: &str,
        expected_tenant: Option<TenantId>,
    ) -> Result<SessionClaims, TokenError> {
        let (payload, mac) = split_token(text)?;
        let expected_mac = blake3::keyed_hash(&self.mac_key, &payload);
        if !bool::from(expected_mac.as_bytes().ct_eq(&mac)) {
            return Err(TokenError::BadSignature);
        }
        let claims = SessionClaims::decode(&payload)?;
        if self.clock.now_unix_ms() >= claims.expires_unix_ms {
            return Err(TokenError::Expired {
                expired_unix_ms: claims.expires_unix_ms,
            });
        }
        match expected_tenant {
            Some(tenant) if tenant != claims.tenant => Err(TokenError::WrongTenant),
            _ => Ok(claims),
        }
    }

    /// Issues a new token with the same tenant, key and role and a new
    /// expiry, if `text` is still valid.
    pub fn refresh(
        &self,
        text: &str,
        lifetime_ms: u64,
    ) -> Result<(SessionToken, SessionClaims), TokenError> {
        let claims = self.verify(text, None)?;
        self.issue(claims.tenant, claims.key_id, claims.role, lifetime_ms)
    }
}

/// Splits and decodes the two parts, checking version and sizes.
fn split_token(
    text: &str,
) -> Result<([u8; TOKEN_PAYLOAD_BYTES], [u8; TOKEN_MAC_BYTES]), TokenError> {
    if text.len() > TOKEN_TEXT_LEN_MAX {
        return Err(TokenError::Malformed);
    }
    let rest = text
        .strip_prefix(TOKEN_PREFIX)
        .ok_or(TokenError::Malformed)?;
    let (payload_text, mac_text) = rest.split_once('.').ok_or(TokenError::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload_text)
        .map_err(|_| TokenError::Malformed)?;
    let mac = URL_SAFE_NO_PAD
        .decode(mac_text)
        .map_err(|_| TokenError::Malformed)?;
    let version = *payload.first().ok_or(TokenError::Malformed)?;
    if version != TOKEN_VERSION {
        return Err(TokenError::UnknownVersion { version });
    }
    let payload: [u8; TOKEN_PAYLOAD_BYTES] =
        payload.try_into().map_err(|_| TokenError::Malformed)?;
    let mac: [u8; TOKEN_MAC_BYTES] = mac.try_into().map_err(|_| TokenError::Malformed)?;
    Ok((payload, mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_layout_round_trips() {
        let claims = SessionClaims {
            tenant: TenantId::new(0x0102_0304_0506_0708),
            key_id: KeyId::from_u128(u128::MAX - 5),
            role: Role::Writer,
            issued_unix_ms: -3,
            expires_unix_ms: i64::MAX,
        };
        let payload = claims.encode();
        assert_eq!(payload[0], TOKEN_VERSION);
        assert_eq!(&payload[1..9], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(payload[25], Role::Writer.code());
        assert_eq!(SessionClaims::decode(&payload), Ok(claims));
    }
}
