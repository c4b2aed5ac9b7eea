//! Aerolith tenancy: the layer that turns one storage engine into many
//! customers who cannot see each other, each held to the limits of a plan.
//!
//! The entry point is [`Tenancy`]: the tenant registry, persisted in an
//! encrypted system database next to the tenants' data. It runs the tenant
//! lifecycle (create with a first owner key, get, list, update, suspend,
//! resume, delete with crypto-shredding), authenticates bearers (API keys
//! and session tokens) into a [`Principal`], and hands out [`TenantHandle`]s,
//! the only way to reach a tenant's data. Tenants are [`IsolationMode::Shared`]
//! (one engine, collections under the tenant's prefix) or
//! [`IsolationMode::Dedicated`] (own engine directory, own derived key).
//!
//! ```
//! use aerolith_core::MasterKey;
//! use aerolith_tenancy::*;
//! use serde_json::json;
//!
//! # fn main() -> Result<(), TenancyError> {
//! let dir = tempfile::tempdir().expect("temp dir");
//! let tenancy = Tenancy::open(dir.path(), TenancyOptions::new(MasterKey::generate()))?;
//! let created = tenancy.create_tenant(&Principal::Operator, NewTenant {
//!     name: "Acme".into(),
//!     slug: Slug::new("acme")?,
//!     plan: "starter".into(),
//!     isolation: IsolationMode::Shared,
//! })?;
//! let principal = tenancy.authenticate(created.owner_key.secret.expose())?;
//! let handle = tenancy.handle(&principal, created.tenant.id)?;
//! handle.create_collection("users")?;
//! handle.insert("users", json!({"_id": "u1", "name": "Ada"}))?;
//! assert_eq!(handle.get("users", "u1")?.expect("just inserted")["name"], "Ada");
//! # Ok(())
//! # }
//! ```
//!
//! Underneath, the building blocks:
//!
//! - **Identity**: [`TenantId`], [`Slug`], [`KeyId`].
//! - **Authentication**: API keys `ak_<slug>_<secret>` ([`ApiKeys`] over an
//!   [`ApiKeyStore`]) stored only as blake3 hashes and checked in constant
//!   time; short-lived session tokens `st_<payload>.<mac>` ([`TokenSigner`]).
//! - **Authorization**: [`Role`] x [`Permission`] in one table ([`allows`]),
//!   checked through [`Principal::authorize`]; read-only suspension
//!   ([`TenantStatus::check`]).
//! - **Limits**: plan [`QuotaLimits`] with per-tenant [`QuotaOverride`];
//!   exact storage/document/collection enforcement by reservation
//!   ([`QuotaGauge`], [`Reservation`]); API calls per hour with GCRA
//!   ([`RateLimiter`]); requests in flight ([`ConcurrencyLimiter`]).
//! - **Audit**: a hash-chained, verifiable [`AuditLog`] over an [`AuditStore`].
//! - **Metering hook**: [`UsageSink`], implemented by aerolith-billing.
//!
//! Records that are persisted ([`ApiKeyRecord`], [`AuditEntry`],
//! [`QuotaLimits`], ...) are serde types, and storage sits behind small
//! traits with in-memory implementations; the registry implements them over
//! its system database.
//!
//! One request, end to end, with the blocks alone (what a [`TenantHandle`]
//! does on every call):
//!
//! ```
//! use std::sync::Arc;
//! use aerolith_core::ManualClock;
//! use aerolith_tenancy::*;
//!
//! # fn main() -> Result<(), TenancyError> {
//! let clock = Arc::new(ManualClock::new(1_700_000_000_000));
//! let keys = ApiKeys::new(MemoryApiKeyStore::new(), clock.clone());
//! let tenant = TenantId::new(1);
//! let created = keys.create(NewApiKey {
//!     tenant,
//!     slug: Slug::new("acme")?,
//!     role: Role::Writer,
//!     expires_unix_ms: None,
//! })?;
//!
//! // Authenticate, authorize, check status, limits and quota, then write.
//! let principal = keys.authenticate(created.secret.expose())?.principal();
//! principal.authorize(tenant, Permission::WriteDocuments)?;
//! TenantStatus::Active.check(tenant, Permission::WriteDocuments)?;
//! let rate = RateLimiter::new(Some(RateLimit::new(3_600, 10)?));
//! rate.check(tenant, std::time::Duration::ZERO)?;
//! let in_flight = ConcurrencyLimiter::new(Some(8));
//! let _permit = in_flight.acquire(tenant)?;
//! let quota = QuotaGauge::new(QuotaLimits { documents_max: Some(100), ..QuotaLimits::UNLIMITED });
//! let reservation = quota.reserve(512, 1, 0)?;
//! // ... the engine write succeeds ...
//! reservation.commit();
//! assert_eq!(quota.usage().documents, 1);
//!
//! // A reader may not write.
//! let reader = Principal::Tenant { tenant, role: Role::Reader, key_id: KeyId::from_u128(2) };
//! assert!(reader.authorize(tenant, Permission::WriteDocuments).is_err());
//! # Ok(())
//! # }
//! ```
//!
//! Time always comes from an [`aerolith_core::Clock`]; errors are typed
//! (one per area, all converting into [`TenancyError`]) and never carry a
//! secret or another tenant's data.

mod api_key;
mod audit;
mod concurrency;
mod error;
mod handle;
mod ids;
mod key_cache;
mod naming;
mod offline;
mod quota;
mod rate_limit;
mod registry;
mod role;
mod system_store;
mod tenant_shards;
mod token;
mod usage;

pub use api_key::{
    api_key_hash, generate_api_key, parse_api_key, ApiKeyRecord, ApiKeySecret, ApiKeyStore,
    ApiKeys, CreatedApiKey, MemoryApiKeyStore, NewApiKey, ParsedApiKey,
    API_KEY_DISPLAY_SECRET_CHARS, API_KEY_PREFIX, API_KEY_SECRET_BYTES, API_KEY_SECRET_CHARS,
};
pub use audit::{
    AuditAction, AuditEntry, AuditHead, AuditLog, AuditOutcome, AuditRecord, AuditStore,
    BillingAuditKind, MemoryAuditStore, AUDIT_GENESIS_HASH, AUDIT_HASH_CONTEXT,
    AUDIT_LIST_LIMIT_MAX, AUDIT_TARGET_BYTES_MAX,
};
pub use concurrency::{ConcurrencyLimiter, ConcurrencyPermit};
pub use error::{
    ApiKeyError, ApiKeyParseError, AuditError, AuthError, ConcurrencyLimited, EngineError,
    Forbidden, IdParseError, QuotaExceeded, RateLimitConfigError, RateLimited, SlugError,
    StoreError, Suspended, TenancyError, TokenError,
};
pub use handle::{PendingTenantWrite, TenantHandle, LIST_IDS_LIMIT_MAX};
pub use ids::{KeyId, Slug, TenantId, KEY_ID_TEXT_LEN, SLUG_LEN_MAX, SLUG_LEN_MIN};
pub use naming::COLLECTION_NAME_LEN_MAX;
pub use offline::{
    compact_offline, verify_offline, EngineCheck, OfflineError, OfflineVerifyReport,
};
pub use quota::{
    LimitOverride, QuotaGauge, QuotaKind, QuotaLimits, QuotaOverride, QuotaUsage, Reservation,
};
pub use rate_limit::{RateLimit, RateLimiter, CALLS_PER_HOUR_MAX, RATE_BURST_DIVISOR};
pub use registry::{
    default_plans, AuditChain, CreatedTenant, IsolationMode, NewTenant, Tenancy, TenancyOptions,
    Tenant, TenantPage, TenantUpdate, SHARED_KEY_CONTEXT, SYSTEM_KEY_CONTEXT, TENANT_KEY_CONTEXT,
    TENANT_NAME_BYTES_MAX, TENANT_PAGE_LEN_MAX, TENANT_SALT_BYTES, TOKEN_SECRET_CONTEXT,
};
pub use role::{allows, Permission, Principal, Role, SuspensionReason, TenantStatus};
pub use token::{
    SessionClaims, SessionToken, TokenSigner, TOKEN_LIFETIME_MS_DEFAULT, TOKEN_LIFETIME_MS_MAX,
    TOKEN_MAC_BYTES, TOKEN_MAC_CONTEXT, TOKEN_PAYLOAD_BYTES, TOKEN_PREFIX, TOKEN_VERSION,
};
pub use usage::{NullSink, OperationKind, RecordingSink, UsageEvent, UsageSink};
