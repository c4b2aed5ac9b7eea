//! Error types: one enum (or struct) per area, all converting into the
//! umbrella [`TenancyError`].
//!
//! Rule for every message here: it may name the caller's own tenant, key id,
//! limits and usage, but never another tenant's data and never a secret
//! (no API key text, no token text, no MAC, no hash). A failed lookup says
//! "unknown", not "belongs to someone else".

use crate::ids::{KeyId, TenantId};
use crate::quota::QuotaKind;
use crate::role::{Permission, SuspensionReason};

/// A tenant id or key id failed to parse from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdParseError {
    /// The text is empty or has a character other than `0-9`.
    #[error("id is not a decimal number")]
    NotDecimal,
    /// The decimal text has a leading zero (ids have one spelling).
    #[error("id has a leading zero")]
    LeadingZero,
    /// The decimal number does not fit in 64 bits.
    #[error("id is out of range")]
    OutOfRange,
    /// The text has the wrong number of characters.
    #[error("id has {len} characters, expected {expected}")]
    WrongLength {
        /// Characters given.
        len: usize,
        /// Characters required.
        expected: usize,
    },
    /// The text has a character other than `0-9a-f`.
    #[error("id is not lowercase hexadecimal")]
    NotLowerHex,
}

/// A slug failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SlugError {
    /// A character outside `a-z`, `0-9`, `-` at this byte position.
    #[error("slug has an invalid character at byte {position} (allowed: a-z, 0-9, '-')")]
    InvalidChar {
        /// Byte offset of the first invalid character.
        position: usize,
    },
    /// Fewer characters than allowed.
    #[error("slug has {len} characters, minimum {min}")]
    TooShort {
        /// Characters given.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// More characters than allowed.
    #[error("slug has {len} characters, maximum {max}")]
    TooLong {
        /// Characters given.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The slug starts or ends with `-`.
    #[error("slug starts or ends with '-'")]
    EdgeHyphen,
}

/// The principal lacks the permission for this operation on this tenant (or
/// addressed a tenant that is not its own, which is reported identically).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("forbidden: this operation needs the {permission} permission")]
#[non_exhaustive]
pub struct Forbidden {
    /// The permission that was needed.
    pub permission: Permission,
}

impl Forbidden {
    /// A refusal for lack of `permission`.
    pub const fn new(permission: Permission) -> Self {
        Forbidden { permission }
    }
}

/// The tenant is suspended (read-only) and the operation would change data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("tenant {tenant} is suspended ({reason}): {permission} is not allowed until it is resumed")]
#[non_exhaustive]
pub struct Suspended {
    /// The caller's own tenant.
    pub tenant: TenantId,
    /// The permission that was refused.
    pub permission: Permission,
    /// Why the tenant is suspended.
    pub reason: SuspensionReason,
}

/// An API key's text is not well formed. Never carries the key text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyParseError {
    /// The text does not start with `ak_`.
    #[error("api key does not start with \"ak_\"")]
    WrongPrefix,
    /// There is no `_` between the slug and the secret.
    #[error("api key has no '_' between tenant slug and secret")]
    MissingSeparator,
    /// The slug part is not a valid slug.
    #[error("api key has an invalid tenant slug: {0}")]
    BadSlug(#[source] SlugError),
    /// The secret part has the wrong length.
    #[error("api key secret has {len} characters, expected {expected}")]
    SecretLength {
        /// Characters given.
        len: usize,
        /// Characters required.
        expected: usize,
    },
    /// The secret part is not canonical unpadded base64url.
    #[error("api key secret is not unpadded base64url")]
    SecretAlphabet,
}

/// A session token was refused or could not be issued. Never carries the
/// token text or MAC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The text is not `st_<base64url>.<base64url>` with the right sizes.
    #[error("session token is malformed")]
    Malformed,
    /// The payload's version byte is not one this build understands.
    #[error("session token has unknown version {version}")]
    UnknownVersion {
        /// The version byte found.
        version: u8,
    },
    /// The MAC does not match the payload (forged or altered token).
    #[error("session token signature is invalid")]
    BadSignature,
    /// The token's expiry has passed.
    #[error("session token expired at {expired_unix_ms} ms")]
    Expired {
        /// When it expired (Unix ms).
        expired_unix_ms: i64,
    },
    /// The token is valid but for a different tenant than the one addressed.
    #[error("session token is not valid for this tenant")]
    WrongTenant,
    /// A requested lifetime is zero or above the maximum.
    #[error("session token lifetime {requested_ms} ms is outside 1..={max_ms} ms")]
    LifetimeOutOfRange {
        /// The lifetime asked for.
        requested_ms: u64,
        /// The maximum ([`crate::TOKEN_LIFETIME_MS_MAX`]).
        max_ms: u64,
    },
}

/// Authentication with an API key or session token failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The API key text is malformed.
    #[error(transparent)]
    MalformedKey(#[from] ApiKeyParseError),
    /// No key with this secret exists.
    #[error("unknown api key")]
    UnknownKey,
    /// The key was revoked.
    #[error("api key {key_id} was revoked at {revoked_unix_ms} ms")]
    KeyRevoked {
        /// The key.
        key_id: KeyId,
        /// When it was revoked (Unix ms).
        revoked_unix_ms: i64,
    },
    /// The key's expiry has passed.
    #[error("api key {key_id} expired at {expired_unix_ms} ms")]
    KeyExpired {
        /// The key.
        key_id: KeyId,
        /// When it expired (Unix ms).
        expired_unix_ms: i64,
    },
    /// The session token was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The key store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creating, listing or revoking API keys failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyError {
    /// The requested expiry is not after the current time.
    #[error("api key expiry {expires_unix_ms} ms is not after now ({now_unix_ms} ms)")]
    ExpiryNotInFuture {
        /// The expiry asked for.
        expires_unix_ms: i64,
        /// The current time.
        now_unix_ms: i64,
    },
    /// No key with this id exists for this tenant.
    #[error("api key {key_id} not found")]
    NotFound {
        /// The key id asked for.
        key_id: KeyId,
    },
    /// The key store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A storage backend (key store, audit store) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A record with the same identity already exists.
    #[error("a record with the same {what} already exists")]
    Conflict {
        /// Which identity collided (for example "key id").
        what: &'static str,
    },
    /// The backend failed (I/O, corruption); the source says how.
    #[error("storage backend failed")]
    Backend {
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// A call was refused by the per-tenant rate limit (API calls per hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limit of {calls_per_hour} calls per hour (burst {burst}) reached; retry after {retry_after_ms} ms")]
#[non_exhaustive]
pub struct RateLimited {
    /// Milliseconds until the next call will be allowed (rounded up).
    pub retry_after_ms: u64,
    /// The limit.
    pub calls_per_hour: u64,
    /// The burst allowed above the steady rate.
    pub burst: u32,
}

/// A rate limit configuration is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitConfigError {
    /// Zero calls per hour (use a suspension to stop a tenant instead).
    #[error("rate limit must allow at least one call per hour")]
    ZeroCalls,
    /// A burst of zero would refuse every call.
    #[error("rate limit burst must be at least 1")]
    ZeroBurst,
    /// More calls per hour than the limiter's time resolution can express.
    #[error("rate limit of {calls_per_hour} calls per hour is above the maximum {max}")]
    TooManyCalls {
        /// The rate asked for.
        calls_per_hour: u64,
        /// The maximum ([`crate::CALLS_PER_HOUR_MAX`]).
        max: u64,
    },
}

/// The tenant already has as many requests in flight as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("concurrent request limit of {limit} reached")]
#[non_exhaustive]
pub struct ConcurrencyLimited {
    /// The limit.
    pub limit: u32,
}

/// A reservation would take usage above a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{limit} quota exceeded: limit {limit_value}, current {current}, requested {requested}")]
#[non_exhaustive]
pub struct QuotaExceeded {
    /// Which limit.
    pub limit: QuotaKind,
    /// The limit's value.
    pub limit_value: u64,
    /// Current use, including reservations in flight.
    pub current: u64,
    /// The amount asked for.
    pub requested: u64,
}

/// The audit log failed, or its verification found tampering.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The entry's hash does not match its contents.
    #[error("audit entry {seq} was altered")]
    Tampered {
        /// The entry's sequence number.
        seq: u64,
    },
    /// An entry is missing: the next entry found has a higher sequence number.
    #[error("audit log is missing entry {expected_seq}")]
    Gap {
        /// The sequence number that should have come next.
        expected_seq: u64,
    },
    /// An entry appears again or out of order (lower sequence number than
    /// expected).
    #[error("audit entry {found_seq} found where {expected_seq} was expected")]
    OutOfOrder {
        /// The sequence number that should have come next.
        expected_seq: u64,
        /// The sequence number found.
        found_seq: u64,
    },
    /// The entry's `prev_hash` is not the hash of the entry before it.
    #[error("audit chain is broken at entry {seq}")]
    BrokenChain {
        /// The entry whose `prev_hash` does not match.
        seq: u64,
    },
    /// The log's head does not match an externally kept anchor.
    #[error("audit log head does not match the expected anchor")]
    HeadMismatch,
    /// The target text is longer than allowed.
    #[error("audit target has {len} bytes, maximum {max}")]
    TargetTooLong {
        /// Bytes given.
        len: usize,
        /// The maximum ([`crate::AUDIT_TARGET_BYTES_MAX`]).
        max: usize,
    },
    /// The audit store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A data operation failed inside the storage engine. Rewritten from the
/// engine's error so that it names collections as the tenant knows them
/// (never the internal `t<id>.` prefix of shared mode) and carries no file
/// path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A collection name breaks the tenant naming rule
    /// (`[A-Za-z0-9_-]{1,64}`).
    #[error("invalid collection name {name:?}: {reason}")]
    InvalidCollectionName {
        /// The name as given (truncated for display).
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The collection does not exist.
    #[error("collection {collection:?} does not exist")]
    CollectionNotFound {
        /// The collection, as the tenant names it.
        collection: String,
    },
    /// The collection already exists.
    #[error("collection {collection:?} already exists")]
    CollectionExists {
        /// The collection, as the tenant names it.
        collection: String,
    },
    /// No document with this id.
    #[error("document {id:?} not found in collection {collection:?}")]
    DocumentNotFound {
        /// The collection, as the tenant names it.
        collection: String,
        /// The document id.
        id: String,
    },
    /// An insert named an id that is already taken.
    #[error("document {id:?} already exists in collection {collection:?}")]
    DocumentExists {
        /// The collection, as the tenant names it.
        collection: String,
        /// The document id.
        id: String,
    },
    /// A unique index already holds the value.
    #[error("unique index on {path:?} in {collection:?} already holds this value (document {existing_id:?})")]
    UniqueViolation {
        /// The collection, as the tenant names it.
        collection: String,
        /// The indexed path.
        path: String,
        /// The tenant's own document that holds the value.
        existing_id: String,
    },
    /// The index does not exist.
    #[error("no index on {path:?} in collection {collection:?}")]
    IndexNotFound {
        /// The collection, as the tenant names it.
        collection: String,
        /// The field path.
        path: String,
    },
    /// The index already exists.
    #[error("an index on {path:?} already exists in collection {collection:?}")]
    IndexExists {
        /// The collection, as the tenant names it.
        collection: String,
        /// The field path.
        path: String,
    },
    /// A document, id, index path or batch broke an engine rule.
    #[error(transparent)]
    Invalid(aerolith_core::InvalidInput),
    /// A malformed filter, sort or projection.
    #[error(transparent)]
    Query(aerolith_core::QueryError),
    /// The query ran past the plan's query time budget.
    #[error("query stopped after {elapsed_ms} ms: the plan's query time budget is {budget_ms} ms")]
    Timeout {
        /// The budget.
        budget_ms: u64,
        /// How long it had run.
        elapsed_ms: u64,
    },
    /// The storage failed (I/O, corruption, closed); details are for the
    /// operator's logs, not for the tenant.
    #[error("storage is unavailable during {operation}")]
    Unavailable {
        /// What was being done.
        operation: &'static str,
    },
}

/// Any error of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TenancyError {
    /// Authentication failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Permission denied.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The tenant is suspended.
    #[error(transparent)]
    Suspended(#[from] Suspended),
    /// A storage, document or collection quota was exceeded.
    #[error(transparent)]
    QuotaExceeded(#[from] QuotaExceeded),
    /// The rate limit was reached.
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// The concurrent request limit was reached.
    #[error(transparent)]
    ConcurrencyLimited(#[from] ConcurrencyLimited),
    /// API key management failed.
    #[error(transparent)]
    ApiKey(#[from] ApiKeyError),
    /// The audit log failed or was found tampered with.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A slug was invalid.
    #[error(transparent)]
    Slug(#[from] SlugError),
    /// An id failed to parse.
    #[error(transparent)]
    IdParse(#[from] IdParseError),
    /// A rate limit configuration was invalid.
    #[error(transparent)]
    RateLimitConfig(#[from] RateLimitConfigError),
    /// A storage backend failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such tenant (or it was deleted). Also what a principal of another
    /// tenant would see, so the answer reveals nothing.
    #[error("tenant {tenant} not found")]
    TenantNotFound {
        /// The tenant asked for.
        tenant: TenantId,
    },
    /// Another live tenant already has this slug.
    #[error("slug {slug:?} is already taken")]
    SlugTaken {
        /// The slug asked for.
        slug: String,
    },
    /// The plan id is not in the plan catalog.
    #[error("unknown plan {plan:?}")]
    PlanNotFound {
        /// The plan asked for.
        plan: String,
    },
    /// A tenant display name is empty or too long.
    #[error("tenant name has {len} bytes; allowed 1..={max}")]
    InvalidTenantName {
        /// Bytes given.
        len: usize,
        /// The maximum ([`crate::TENANT_NAME_BYTES_MAX`]).
        max: usize,
    },
    /// A page size of zero or above the maximum.
    #[error("page size {requested} is outside 1..={max}")]
    InvalidPageSize {
        /// The size asked for.
        requested: usize,
        /// The maximum.
        max: usize,
    },
    /// A data operation failed in the engine (message sanitized).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<TokenError> for TenancyError {
    fn from(error: TokenError) -> Self {
        TenancyError::Auth(AuthError::Token(error))
    }
}

impl From<ApiKeyParseError> for TenancyError {
    fn from(error: ApiKeyParseError) -> Self {
        TenancyError::Auth(AuthError::MalformedKey(error))
    }
}
