//! API keys: generation, parsing, hashing, storage and authentication.
//!
//! A key is the text `ak_<slug>_<secret>`: the tenant's slug (which never
//! contains `_`, so the split is unambiguous) and 32 bytes (256 bits) from a
//! CSPRNG encoded as unpadded base64url (43 characters). The full text is
//! shown once, at creation; only its blake3 hash is stored. Authentication
//! hashes the presented text, looks the record up by hash, then confirms the
//! hash with a constant-time comparison and checks revocation and expiry
//! against the [`Clock`].
//!
//! Storage is behind [`ApiKeyStore`] so the registry can persist records in
//! the engine later; [`MemoryApiKeyStore`] serves tests and embedded use.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aerolith_core::Clock;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use parking_lot::RwLock;
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::error::{ApiKeyError, ApiKeyParseError, AuthError, StoreError};
use crate::ids::{KeyId, Slug, TenantId};
use crate::role::{Principal, Role};

/// Every API key starts with this.
pub const API_KEY_PREFIX: &str = "ak_";
/// Random bytes in a key's secret (256 bits).
pub const API_KEY_SECRET_BYTES: usize = 32;
/// Characters of the encoded secret (unpadded base64url of 32 bytes).
pub const API_KEY_SECRET_CHARS: usize = 43;
/// Characters of the secret kept in [`ApiKeyRecord::display_prefix`] so a
/// person can tell keys apart. Six base64url characters reveal 36 of the 256
/// bits, leaving 220 unknown.
pub const API_KEY_DISPLAY_SECRET_CHARS: usize = 6;

/// The full text of a freshly created key. Shown once; `Debug` and `Display`
/// redact the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    /// The full key text, to hand to the customer exactly once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeySecret({}…)", display_prefix_of(&self.0))
    }
}

/// A syntactically valid API key, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedApiKey {
    /// The tenant slug written in the key.
    pub slug: Slug,
}

/// Checks the shape of an API key without looking it up.
pub fn parse_api_key(text: &str) -> Result<ParsedApiKey, ApiKeyParseError> {
    let rest = text
        .strip_prefix(API_KEY_PREFIX)
        .ok_or(ApiKeyParseError::WrongPrefix)?;
    let (slug_text, secret) = rest
        .split_once('_')
        .ok_or(ApiKeyParseError::MissingSeparator)?;
    let slug = Slug::new(slug_text).map_err(ApiKeyParseError::BadSlug)?;
    if secret.len() != API_KEY_SECRET_CHARS {
        return Err(ApiKeyParseError::SecretLength {
            len: secret.len(),
            expected: API_KEY_SECRET_CHARS,
        });
    }
    // The engine refuses padding and non-zero trailing bits, so each secret
    // has exactly one spelling.
    let decoded = URL_SAFE_NO_PAD
        .decode(secret)
        .map_err(|_| ApiKeyParseError::SecretAlphabet)?;
    if decoded.len() != API_KEY_SECRET_BYTES {
        return Err(ApiKeyParseError::SecretAlphabet);
    }
    Ok(ParsedApiKey { slug })
}

/// The stored hash of a key: blake3 of the full key text.
pub fn api_key_hash(text: &str) -> [u8; 32] {
    *blake3::hash(text.as_bytes()).as_bytes()
}

fn display_prefix_of(text: &str) -> String {
    match text
        .strip_prefix(API_KEY_PREFIX)
        .and_then(|rest| rest.split_once('_'))
    {
        Some((slug, secret)) => {
            let shown: String = secret.chars().take(API_KEY_DISPLAY_SECRET_CHARS).collect();
            format!("{API_KEY_PREFIX}{slug}_{shown}")
        }
        None => API_KEY_PREFIX.to_owned(),
    }
}

/// Generates a new key for `slug` from `rng`, which must be a CSPRNG.
pub fn generate_api_key<R: RngCore + CryptoRng + ?Sized>(slug: &Slug, rng: &mut R) -> ApiKeySecret {
    let mut secret = [0u8; API_KEY_SECRET_BYTES];
    rng.fill_bytes(&mut secret);
    let text = format!("{API_KEY_PREFIX}{slug}_{}", URL_SAFE_NO_PAD.encode(secret));
    debug_assert!(parse_api_key(&text).is_ok(), "generated keys always parse");
    ApiKeySecret(text)
}

/// What is stored about a key. Holds no secret: only the hash and a short
/// display prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// The key's id.
    pub key_id: KeyId,
    /// The tenant the key acts for.
    pub tenant: TenantId,
    /// The key's role.
    pub role: Role,
    /// `ak_<slug>_` plus the first few secret characters, for listings.
    pub display_prefix: String,
    /// blake3 of the full key text.
    pub hash: [u8; 32],
    /// When the key was created (Unix ms).
    pub created_unix_ms: i64,
    /// When the key stops working (Unix ms), if ever.
    pub expires_unix_ms: Option<i64>,
    /// When the key was revoked (Unix ms), if it was.
    pub revoked_unix_ms: Option<i64>,
}

impl ApiKeyRecord {
    /// Whether the key may be used at `now_unix_ms`: revoked keys never,
    /// expired keys from their expiry instant on.
    pub fn check_usable(&self, now_unix_ms: i64) -> Result<(), AuthError> {
        if let Some(revoked_unix_ms) = self.revoked_unix_ms {
            return Err(AuthError::KeyRevoked {
                key_id: self.key_id,
                revoked_unix_ms,
            });
        }
        match self.expires_unix_ms {
            Some(expired_unix_ms) if now_unix_ms >= expired_unix_ms => Err(AuthError::KeyExpired {
                key_id: self.key_id,
                expired_unix_ms,
            }),
            _ => Ok(()),
        }
    }

    /// The principal this key authenticates as.
    pub fn principal(&self) -> Principal {
        Principal::Tenant {
            tenant: self.tenant,
            role: self.role,
            key_id: self.key_id,
        }
    }
}

/// Where key records live. Implementations must be safe to share between
/// threads; the in-memory one is [`MemoryApiKeyStore`].
pub trait ApiKeyStore: Send + Sync {
    /// Stores a new record. A record with the same hash or key id is a
    /// [`StoreError::Conflict`].
    fn insert(&self, record: ApiKeyRecord) -> Result<(), StoreError>;
    /// The record whose hash is `hash`, if any.
    fn find_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Marks the key revoked at `at_unix_ms` unless it already is, and returns
    /// the record as stored afterwards; `None` if the tenant has no such key.
    fn mark_revoked(
        &self,
        tenant: TenantId,
        key_id: KeyId,
        at_unix_ms: i64,
    ) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// All records of `tenant`, oldest first.
    fn list(&self, tenant: TenantId) -> Result<Vec<ApiKeyRecord>, StoreError>;
}

/// An in-memory [`ApiKeyStore`], keyed by key hash with an index by key id.
#[derive(Debug, Default)]
pub struct MemoryApiKeyStore {
    state: RwLock<MemoryKeys>,
}

#[derive(Debug, Default)]
struct MemoryKeys {
    by_hash: HashMap<[u8; 32], ApiKeyRecord>,
    hash_by_id: HashMap<KeyId, [u8; 32]>,
}

impl MemoryApiKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ApiKeyStore for MemoryApiKeyStore {
    fn insert(&self, record: ApiKeyRecord) -> Result<(), StoreError> {
        let mut state = self.state.write();
        if state.by_hash.contains_key(&record.hash) {
            return Err(StoreError::Conflict { what: "key hash" });
        }
        if state.hash_by_id.contains_key(&record.key_id) {
            return Err(StoreError::Conflict { what: "key id" });
        }
        state.hash_by_id.insert(record.key_id, record.hash);
        state.by_hash.insert(record.hash, record);
        Ok(())
    }

    fn find_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(self.state.read().by_hash.get(hash).cloned())
    }

    fn mark_revoked(
        &self,
        tenant: TenantId,
        key_id: KeyId,
        at_unix_ms: i64,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let mut state = self.state.write();
        let Some(hash) = state.hash_by_id.get(&key_id).copied() else {
            return Ok(None);
        };
        let record = state
            .by_hash
            .get_mut(&hash)
            .expect("hash_by_id and by_hash are updated together");
        if record.tenant != tenant {
            return Ok(None);
        }
        record.revoked_unix_ms.get_or_insert(at_unix_ms);
        Ok(Some(record.clone()))
    }

    fn list(&self, tenant: TenantId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let mut records: Vec<ApiKeyRecord> = self
            .state
            .read()
            .by_hash
            .values()
            .filter(|record| record.tenant == tenant)
            .cloned()
            .collect();
        records.sort_by_key(|record| (record.created_unix_ms, record.key_id));
        Ok(records)
    }
}

/// Parameters of a new key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// The tenant the key acts for.
    pub tenant: TenantId,
    /// The tenant's slug, written into the key text.
    pub slug: Slug,
    /// The key's role.
    pub role: Role,
    /// When the key stops working (Unix ms); must be in the future.
    pub expires_unix_ms: Option<i64>,
}

/// A created key: the text (shown once) and the stored record.
#[derive(Debug, Clone)]
pub struct CreatedApiKey {
    /// The full key text.
    pub secret: ApiKeySecret,
    /// What was stored.
    pub record: ApiKeyRecord,
}

/// Creates, authenticates, lists and revokes API keys over an [`ApiKeyStore`].
#[derive(Debug)]
pub struct ApiKeys<S> {
    store: S,
    clock: Arc<dyn Clock>,
}

impl<S: ApiKeyStore> ApiKeys<S> {
    /// Keys over `store`, with time from `clock`.
    pub fn new(store: S, clock: Arc<dyn Clock>) -> Self {
        ApiKeys { store, clock }
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Creates a key with the thread-local CSPRNG.
    pub fn create(&self, new: NewApiKey) -> Result<CreatedApiKey, ApiKeyError> {
        self.create_with_rng(new, &mut rand::rng())
    }

    /// Creates a key with `rng` (a CSPRNG; tests pass a seeded one).
    pub fn create_with_rng<R: RngCore + CryptoRng + ?Sized>(
        &self,
        new: NewApiKey,
        rng: &mut R,
    ) -> Result<CreatedApiKey, ApiKeyError> {
        let now_unix_ms = self.clock.now_unix_ms();
        if let Some(expires_unix_ms) = new.expires_unix_ms {
            if expires_unix_ms <= now_unix_ms {
                return Err(ApiKeyError::ExpiryNotInFuture {
                    expires_unix_ms,
                    now_unix_ms,
                });
            }
        }
        let secret = generate_api_key(&new.slug, rng);
        let mut key_id_bytes = [0u8; 16];
        rng.fill_bytes(&mut key_id_bytes);
        let record = ApiKeyRecord {
            key_id: KeyId::from_be_bytes(key_id_bytes),
            tenant: new.tenant,
            role: new.role,
            display_prefix: display_prefix_of(secret.expose()),
            hash: api_key_hash(secret.expose()),
            created_unix_ms: now_unix_ms,
            expires_unix_ms: new.expires_unix_ms,
            revoked_unix_ms: None,
        };
        self.store.insert(record.clone())?;
        Ok(CreatedApiKey { secret, record })
    }

    /// Authenticates the presented key text and returns its record (use
    /// [`ApiKeyRecord::principal`] for the caller).
    pub fn authenticate(&self, presented: &str) -> Result<ApiKeyRecord, AuthError> {
        self.authenticate_by(presented, |hash| Some(self.store.find_by_hash(hash)))
            .expect("a lookup in the store always answers")
    }

    /// [`Self::authenticate`] with the record looked up by `find` (given
    /// the presented key's hash), which may decline to answer (`None`, e.g.
    /// a cache that would have to read the store): then so does this.
    pub(crate) fn authenticate_by(
        &self,
        presented: &str,
        find: impl FnOnce(&[u8; 32]) -> Option<Result<Option<ApiKeyRecord>, StoreError>>,
    ) -> Option<Result<ApiKeyRecord, AuthError>> {
        if let Err(error) = parse_api_key(presented) {
            return Some(Err(error.into()));
        }
        let hash = api_key_hash(presented);
        let found = match find(&hash)? {
            Ok(found) => found,
            Err(error) => return Some(Err(error.into())),
        };
        let Some(record) = found else {
            return Some(Err(AuthError::UnknownKey));
        };
        // The map lookup already matched; confirming in constant time keeps
        // the final decision independent of how a backend compares keys.
        if !bool::from(record.hash.ct_eq(&hash)) {
            return Some(Err(AuthError::UnknownKey));
        }
        Some(
            record
                .check_usable(self.clock.now_unix_ms())
                .map(|()| record),
        )
    }

    /// Revokes a key of `tenant`; revoking twice keeps the first time.
    pub fn revoke(&self, tenant: TenantId, key_id: KeyId) -> Result<ApiKeyRecord, ApiKeyError> {
        self.store
            .mark_revoked(tenant, key_id, self.clock.now_unix_ms())?
            .ok_or(ApiKeyError::NotFound { key_id })
    }

    /// The keys of `tenant`, oldest first (records hold prefixes, never
    /// secrets).
    pub fn list(&self, tenant: TenantId) -> Result<Vec<ApiKeyRecord>, ApiKeyError> {
        Ok(self.store.list(tenant)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn generated_key_has_the_documented_shape() {
        let slug = Slug::new("acme").expect("valid slug");
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let key = generate_api_key(&slug, &mut rng);
        let text = key.expose();
        assert!(text.starts_with("ak_acme_"));
        assert_eq!(text.len(), "ak_acme_".len() + API_KEY_SECRET_CHARS);
        assert_eq!(parse_api_key(text).map(|p| p.slug), Ok(slug));
    }

    #[test]
    fn debug_output_redacts_the_secret() {
        let slug = Slug::new("acme").expect("valid slug");
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let key = generate_api_key(&slug, &mut rng);
        let debug = format!("{key:?}");
        let secret_part = &key.expose()["ak_acme_".len()..];
        assert!(!debug.contains(secret_part));
        assert!(debug.contains(&secret_part[..API_KEY_DISPLAY_SECRET_CHARS]));
    }
}
