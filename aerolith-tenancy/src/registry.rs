//! The tenant registry and entry point, [`Tenancy`]: opens the system
//! database, the shared engine and every dedicated tenant's engine under one
//! directory; runs the tenant lifecycle (create, get, list, update, suspend,
//! resume, delete); authenticates bearers; manages API keys; keeps the audit
//! chains; and hands out [`TenantHandle`]s, the only way to reach data.
//!
//! Directory layout:
//! - `<dir>/system`: tenant records, API key records, audit chains
//!   (encrypted with `master.derive(SYSTEM_KEY_CONTEXT, "")`).
//! - `<dir>/shared`: one engine for every `Shared` tenant, collections named
//!   `t<id>.<name>` (encrypted with a key derived for it).
//! - `<dir>/tenants/<id>`: one engine per `Dedicated` tenant, encrypted with
//!   `master.derive(TENANT_KEY_CONTEXT, id || salt)` where the 32-byte salt
//!   lives only in the tenant's record. Deleting the tenant removes the
//!   record's salt and compacts the system database, so copies of the files
//!   left anywhere can no longer be decrypted (crypto-shredding).
//!
//! Deletion is all or nothing across a crash: it first persists the tenant's
//! record with a `deleting` mark; from then on a crash at any step is finished
//! by the next [`Tenancy::open`] (keys, data, salt, tombstone); before it the
//! tenant is untouched.
//!
//! Invariant: lifecycle operations are serialized by one registry lock; the
//! data path never takes it (it reads the tenant's runtime from sharded maps).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aerolith_core::{Clock, Database, Durability, MasterKey, Options, Query, WriteBatch};
use parking_lot::{Mutex, RwLock};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api_key::{ApiKeyRecord, ApiKeyStore, ApiKeys, CreatedApiKey, NewApiKey};
use crate::audit::{
    AuditAction, AuditEntry, AuditLog, AuditOutcome, AuditRecord, BillingAuditKind,
};
use crate::concurrency::ConcurrencyLimiter;
use crate::error::{AuthError, Forbidden, StoreError, TenancyError};
use crate::handle::TenantHandle;
use crate::ids::{KeyId, Slug, TenantId};
use crate::naming::shared_prefix;
use crate::quota::{QuotaGauge, QuotaLimits, QuotaOverride, QuotaUsage};
use crate::rate_limit::RateLimiter;
use crate::role::{Permission, Principal, Role, SuspensionReason, TenantStatus};
use crate::system_store::{backend, ensure_layout, SystemAuditStore, SystemKeyStore, TENANTS};
use crate::tenant_shards::TenantShards;
use crate::token::{SessionClaims, SessionToken, TokenSigner, TOKEN_PREFIX};
use crate::usage::UsageSink;

/// Longest tenant display name, in bytes.
pub const TENANT_NAME_BYTES_MAX: usize = 200;
/// Most tenants returned by one [`Tenancy::list_tenants`] call.
pub const TENANT_PAGE_LEN_MAX: usize = 1000;
/// Bytes of random salt in a dedicated tenant's key derivation.
pub const TENANT_SALT_BYTES: usize = 32;
/// Most times deletion yields while waiting for the tenant's calls in
/// flight to finish before removing its data.
const DELETE_DRAIN_SPINS_MAX: u64 = 10_000_000;
/// Key derivation context of the system database.
pub const SYSTEM_KEY_CONTEXT: &str = "aerolith 2026-01 system database key";
/// Key derivation context of the shared engine.
pub const SHARED_KEY_CONTEXT: &str = "aerolith 2026-01 shared engine key";
/// Key derivation context of a dedicated tenant's engine.
pub const TENANT_KEY_CONTEXT: &str = "aerolith 2026-01 tenant database key";
/// Key derivation context of the session token MAC secret.
pub const TOKEN_SECRET_CONTEXT: &str = "aerolith 2026-01 session token secret";

/// Where a tenant's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolationMode {
    /// In the shared engine, under the tenant's collection prefix.
    Shared,
    /// In its own engine directory, with its own derived key.
    Dedicated,
}

/// The default plans, matching the default billing catalog
/// (`aerolith_billing::Catalog::default_catalog().quota_limits()` feeds the
/// same numbers when billing is in use): collections and calls per hour as
/// the product brief sets them. Storage and documents have no hard cap —
/// storage beyond the included amount is billed as overage, not refused.
/// Concurrency and query time are protective limits the brief leaves open.
pub fn default_plans() -> BTreeMap<String, QuotaLimits> {
    let plan = |collections_max,
                api_calls_per_hour,
                concurrent_requests_max,
                query_duration_ms_max| QuotaLimits {
        storage_bytes_max: None,
        documents_max: None,
        collections_max: Some(collections_max),
        api_calls_per_hour: Some(api_calls_per_hour),
        concurrent_requests_max: Some(concurrent_requests_max),
        query_duration_ms_max: Some(query_duration_ms_max),
    };
    BTreeMap::from([
        ("starter".to_owned(), plan(10, 10_000, 10, 1_000)),
        ("professional".to_owned(), plan(100, 100_000, 50, 5_000)),
        ("enterprise".to_owned(), plan(1_000, 1_000_000, 200, 30_000)),
    ])
}

/// How to open a [`Tenancy`].
#[derive(Clone)]
pub struct TenancyOptions {
    /// The operator's master key; every database key is derived from it.
    pub master_key: MasterKey,
    /// Source of time (key expiry, tokens, rate limits, audit times).
    pub clock: Arc<dyn Clock>,
    /// Receives one event per data operation.
    pub usage_sink: Arc<dyn UsageSink>,
    /// Plan id -> limits.
    pub plans: BTreeMap<String, QuotaLimits>,
    /// Durability of every engine opened.
    pub durability: Durability,
}

impl TenancyOptions {
    /// Options with the system clock, no usage sink, the default plans and
    /// fsync on every commit.
    pub fn new(master_key: MasterKey) -> Self {
        TenancyOptions {
            master_key,
            clock: Arc::new(aerolith_core::SystemClock),
            usage_sink: Arc::new(crate::usage::NullSink),
            plans: default_plans(),
            durability: Durability::Always,
        }
    }
}

impl std::fmt::Debug for TenancyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenancyOptions")
            .field("plans", &self.plans)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

/// A tenant as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// Unique among live tenants; part of its API keys.
    pub slug: Slug,
    /// Plan id in the catalog.
    pub plan: String,
    /// Where its data lives.
    pub isolation: IsolationMode,
    /// Active or suspended (read-only).
    pub status: TenantStatus,
    /// Per-tenant changes to the plan's limits.
    pub limits_override: QuotaOverride,
    /// When it was created (Unix ms).
    pub created_unix_ms: i64,
    /// When it was deleted (Unix ms); a deleted tenant has no data and no keys.
    pub deleted_unix_ms: Option<i64>,
}

impl Tenant {
    /// Whether the tenant was deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted_unix_ms.is_some()
    }
}

/// The persisted form: the tenant plus its key salt (dedicated only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredTenant {
    pub(crate) tenant: Tenant,
    pub(crate) key_salt: Option<[u8; TENANT_SALT_BYTES]>,
    /// Set (durably) before a deletion removes anything: a registry opened
    /// over a record with this flag and no tombstone finishes the deletion.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) deleting: bool,
}

/// Parameters of a new tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTenant {
    /// Display name (1..=[`TENANT_NAME_BYTES_MAX`] bytes).
    pub name: String,
    /// Slug, unique among live tenants.
    pub slug: Slug,
    /// Plan id in the catalog.
    pub plan: String,
    /// Where its data lives.
    pub isolation: IsolationMode,
}

/// A created tenant and its first owner key (the key text is shown once).
#[derive(Debug, Clone)]
pub struct CreatedTenant {
    /// The tenant.
    pub tenant: Tenant,
    /// Its first API key, with role owner.
    pub owner_key: CreatedApiKey,
}

/// Changes to a tenant; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantUpdate {
    /// New display name (needs [`Permission::UpdateTenant`]).
    pub name: Option<String>,
    /// New plan (needs [`Permission::ManageSubscription`]: owner or operator).
    pub plan: Option<String>,
    /// New limits override (operator only).
    pub limits_override: Option<QuotaOverride>,
}

/// One page of [`Tenancy::list_tenants`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPage {
    /// Live tenants in id order.
    pub tenants: Vec<Tenant>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next_cursor: Option<TenantId>,
}

/// Which audit chain to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditChain {
    /// The operator's chain (every lifecycle event of every tenant).
    Operator,
    /// One tenant's chain.
    Tenant(TenantId),
}

/// What the data path needs of one live tenant.
pub(crate) struct TenantRuntime {
    pub(crate) id: TenantId,
    pub(crate) engine: Arc<Database>,
    /// `t<id>.` in shared mode, empty in dedicated mode.
    pub(crate) prefix: String,
    pub(crate) state: RwLock<RuntimeState>,
    pub(crate) gauge: QuotaGauge,
    /// The tenant's collection names (as the tenant names them). Collection
    /// creates and drops hold this lock across the engine call, so it always
    /// matches the engine; listing it costs nothing per other tenant.
    pub(crate) collections: Mutex<BTreeSet<String>>,
    pub(crate) deleted: AtomicBool,
}

/// A tenant's data as found when its runtime starts.
#[derive(Debug, Default)]
struct Footprint {
    usage: QuotaUsage,
    collections: BTreeSet<String>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct RuntimeState {
    pub(crate) status: TenantStatus,
    pub(crate) limits: QuotaLimits,
}

struct Registry {
    records: BTreeMap<TenantId, StoredTenant>,
    slugs: HashMap<Slug, TenantId>,
    next_id: u64,
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) master_key: MasterKey,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) usage_sink: Arc<dyn UsageSink>,
    pub(crate) plans: BTreeMap<String, QuotaLimits>,
    pub(crate) durability: Durability,
    pub(crate) system: Arc<Database>,
    pub(crate) shared: Arc<Database>,
    pub(crate) keys: ApiKeys<SystemKeyStore>,
    pub(crate) tokens: TokenSigner,
    pub(crate) operator_audit: AuditLog<SystemAuditStore>,
    tenant_audits: TenantShards<AuditLog<SystemAuditStore>>,
    pub(crate) runtimes: TenantShards<TenantRuntime>,
    registry: Mutex<Registry>,
    pub(crate) rate: RateLimiter,
    pub(crate) concurrency: ConcurrencyLimiter,
}

/// The tenant registry and the entry point to every tenant's data.
/// Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Tenancy {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Tenancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenancy")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

fn engine_error(error: aerolith_core::Error) -> TenancyError {
    TenancyError::Store(backend(error))
}

fn json_error(error: serde_json::Error) -> TenancyError {
    TenancyError::Store(StoreError::Backend {
        source: Box::new(error),
    })
}

fn io_error(error: std::io::Error) -> TenancyError {
    TenancyError::Store(StoreError::Backend {
        source: Box::new(error),
    })
}

fn validate_name(name: &str) -> Result<(), TenancyError> {
    if name.is_empty() || name.len() > TENANT_NAME_BYTES_MAX {
        return Err(TenancyError::InvalidTenantName {
            len: name.len(),
            max: TENANT_NAME_BYTES_MAX,
        });
    }
    Ok(())
}

/// The key of a dedicated tenant's engine.
pub(crate) fn tenant_key(
    master: &MasterKey,
    tenant: TenantId,
    salt: &[u8; TENANT_SALT_BYTES],
) -> MasterKey {
    let mut material = Vec::with_capacity(8 + TENANT_SALT_BYTES);
    material.extend_from_slice(&tenant.to_be_bytes());
    material.extend_from_slice(salt);
    master.derive(TENANT_KEY_CONTEXT, &material)
}

impl Tenancy {
    /// Opens (or creates) the registry in `dir`, with every tenant's engine.
    /// Quota gauges start from the engines' exact accounting.
    pub fn open(dir: impl AsRef<Path>, options: TenancyOptions) -> Result<Tenancy, TenancyError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(dir.join("tenants")).map_err(io_error)?;
        let engine_options = |key: MasterKey| {
            Options::default()
                .master_key(key)
                .durability(options.durability)
                .clock(options.clock.clone())
        };
        let master = &options.master_key;
        let system = Arc::new(
            Database::open(
                dir.join("system"),
                engine_options(master.derive(SYSTEM_KEY_CONTEXT, b"")),
            )
            .map_err(engine_error)?,
        );
        ensure_layout(&system)?;
        let shared = Arc::new(
            Database::open(
                dir.join("shared"),
                engine_options(master.derive(SHARED_KEY_CONTEXT, b"")),
            )
            .map_err(engine_error)?,
        );
        let token_secret = *master.derive(TOKEN_SECRET_CONTEXT, b"").as_bytes();
        let operator_audit = AuditLog::open(
            SystemAuditStore::operator(system.clone()),
            options.clock.clone(),
        )?;
        let inner = Inner {
            keys: ApiKeys::new(SystemKeyStore::new(system.clone()), options.clock.clone()),
            tokens: TokenSigner::new(&token_secret, options.clock.clone()),
            operator_audit,
            tenant_audits: TenantShards::new(),
            runtimes: TenantShards::new(),
            registry: Mutex::new(Registry {
                records: BTreeMap::new(),
                slugs: HashMap::new(),
                next_id: 1,
            }),
            rate: RateLimiter::new(None),
            concurrency: ConcurrencyLimiter::new(None),
            dir,
            master_key: options.master_key.clone(),
            clock: options.clock,
            usage_sink: options.usage_sink,
            plans: options.plans,
            durability: options.durability,
            system,
            shared,
        };
        let tenancy = Tenancy {
            inner: Arc::new(inner),
        };
        tenancy.load()?;
        Ok(tenancy)
    }

    /// Reads every tenant record and opens the live tenants' runtimes.
    fn load(&self) -> Result<(), TenancyError> {
        let inner = &self.inner;
        let docs = inner
            .system
            .find(TENANTS, &Query::default())
            .map_err(engine_error)?;
        let mut shared_footprints: HashMap<TenantId, Footprint> = HashMap::new();
        let mut finished_deletions: Vec<TenantId> = Vec::new();
        let snapshot = inner.shared.snapshot();
        for collection in snapshot.list_collections() {
            let Some((id, name)) = collection
                .strip_prefix('t')
                .and_then(|rest| rest.split_once('.'))
                .and_then(|(id, name)| Some((id.parse::<TenantId>().ok()?, name)))
            else {
                continue;
            };
            let stats = snapshot
                .collection_stats(&collection)
                .map_err(engine_error)?;
            let footprint = shared_footprints.entry(id).or_default();
            footprint.collections.insert(name.to_owned());
            let usage = &mut footprint.usage;
            usage.storage_bytes += stats.live_bytes;
            usage.documents += stats.documents;
            usage.collections += 1;
        }
        let mut registry = inner.registry.lock();
        for mut doc in docs {
            let mut stored: StoredTenant = serde_json::from_value(
                doc.get_mut("record")
                    .map(Value::take)
                    .unwrap_or(Value::Null),
            )
            .map_err(json_error)?;
            let id = stored.tenant.id;
            registry.next_id = registry.next_id.max(id.get() + 1);
            if stored.deleting && !stored.tenant.is_deleted() {
                // A deletion was interrupted after it became durable: finish it.
                shared_footprints.remove(&id);
                self.remove_tenant_data(&stored, None)?;
                stored = self.write_tombstone(stored)?;
                finished_deletions.push(id);
            }
            if !stored.tenant.is_deleted() {
                let footprint = shared_footprints.remove(&id).unwrap_or_default();
                self.start_runtime(&stored, footprint)?;
                registry.slugs.insert(stored.tenant.slug.clone(), id);
            }
            registry.records.insert(id, stored);
        }
        drop(registry);
        for id in &finished_deletions {
            self.audit(
                &Principal::Operator,
                *id,
                AuditAction::TenantDeleted,
                "deleted (interrupted deletion completed on open)".to_owned(),
            )?;
        }
        if !finished_deletions.is_empty() {
            inner.system.compact().map_err(engine_error)?;
        }
        Ok(())
    }

    /// Removes a tenant's data: its API keys, then its engine's contents
    /// (dedicated: the engine is closed if `runtime` is open and the
    /// directory removed; shared: its collections dropped and the shared
    /// engine compacted). Idempotent, so an interrupted deletion can run it
    /// again on open.
    fn remove_tenant_data(
        &self,
        stored: &StoredTenant,
        runtime: Option<&TenantRuntime>,
    ) -> Result<(), TenancyError> {
        let inner = &self.inner;
        let tenant = stored.tenant.id;
        inner.keys.store().delete_all(tenant)?;
        match stored.tenant.isolation {
            IsolationMode::Dedicated => {
                if let Some(runtime) = runtime {
                    runtime.engine.close().map_err(engine_error)?;
                }
                let dir = self.dedicated_dir(tenant);
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).map_err(io_error)?;
                }
            }
            IsolationMode::Shared => {
                let prefix = shared_prefix(tenant);
                let mut batch = WriteBatch::new();
                for name in inner.shared.list_collections() {
                    if name.starts_with(&prefix) {
                        batch.drop_collection(&name).map_err(engine_error)?;
                    }
                }
                if !batch.is_empty() {
                    inner.shared.write(batch).map_err(engine_error)?;
                }
                inner.shared.compact().map_err(engine_error)?;
            }
        }
        Ok(())
    }

    /// Replaces the record by its tombstone (no key salt) and returns it.
    fn write_tombstone(&self, mut stored: StoredTenant) -> Result<StoredTenant, TenancyError> {
        stored.tenant.deleted_unix_ms = Some(self.inner.clock.now_unix_ms());
        stored.key_salt = None;
        stored.deleting = false;
        self.persist(&stored, false)?;
        Ok(stored)
    }

    /// Opens a tenant's engine (dedicated) and publishes its runtime.
    /// `shared` is the tenant's footprint in the shared engine.
    fn start_runtime(
        &self,
        stored: &StoredTenant,
        shared: Footprint,
    ) -> Result<Arc<TenantRuntime>, TenancyError> {
        let inner = &self.inner;
        let tenant = &stored.tenant;
        let limits = self.limits_of(tenant)?;
        let (engine, prefix, footprint) = match (tenant.isolation, &stored.key_salt) {
            (IsolationMode::Shared, _) => (inner.shared.clone(), shared_prefix(tenant.id), shared),
            (IsolationMode::Dedicated, Some(salt)) => {
                let options = Options::default()
                    .master_key(tenant_key(&inner.master_key, tenant.id, salt))
                    .durability(inner.durability)
                    .clock(inner.clock.clone());
                let db =
                    Database::open(self.dedicated_dir(tenant.id), options).map_err(engine_error)?;
                let stats = db.stats().map_err(engine_error)?;
                let footprint = Footprint {
                    usage: QuotaUsage {
                        storage_bytes: stats.live_bytes,
                        documents: stats.documents,
                        collections: stats.collections,
                    },
                    collections: db.list_collections().into_iter().collect(),
                };
                (Arc::new(db), String::new(), footprint)
            }
            (IsolationMode::Dedicated, None) => {
                return Err(TenancyError::Store(StoreError::Conflict {
                    what: "dedicated tenant without key salt",
                }))
            }
        };
        inner.rate.set_limit(tenant.id, limits.rate_limit()?);
        inner
            .concurrency
            .set_limit(tenant.id, limits.concurrent_requests_max);
        let runtime = Arc::new(TenantRuntime {
            id: tenant.id,
            engine,
            prefix,
            state: RwLock::new(RuntimeState {
                status: tenant.status,
                limits,
            }),
            gauge: QuotaGauge::with_usage(limits, footprint.usage),
            collections: Mutex::new(footprint.collections),
            deleted: AtomicBool::new(false),
        });
        inner.runtimes.insert(tenant.id, runtime.clone());
        Ok(runtime)
    }

    fn dedicated_dir(&self, tenant: TenantId) -> PathBuf {
        self.inner.dir.join("tenants").join(tenant.to_string())
    }

    fn limits_of(&self, tenant: &Tenant) -> Result<QuotaLimits, TenancyError> {
        let plan =
            self.inner
                .plans
                .get(&tenant.plan)
                .ok_or_else(|| TenancyError::PlanNotFound {
                    plan: tenant.plan.clone(),
                })?;
        Ok(plan.with_override(&tenant.limits_override))
    }

    fn persist(&self, stored: &StoredTenant, insert: bool) -> Result<(), TenancyError> {
        let id = stored.tenant.id.to_string();
        let doc = json!({
            "_id": id,
            "record": serde_json::to_value(stored).map_err(json_error)?,
        });
        let mut batch = WriteBatch::new();
        let added = if insert {
            batch.insert(TENANTS, doc).map(|_| ())
        } else {
            batch.replace(TENANTS, &id, doc)
        };
        added.map_err(engine_error)?;
        self.inner.system.write(batch).map_err(engine_error)?;
        Ok(())
    }

    fn tenant_audit(
        &self,
        tenant: TenantId,
    ) -> Result<Arc<AuditLog<SystemAuditStore>>, TenancyError> {
        let inner = &self.inner;
        if let Some(log) = inner.tenant_audits.get(tenant) {
            return Ok(log);
        }
        let log = AuditLog::open(
            SystemAuditStore::tenant(inner.system.clone(), tenant),
            inner.clock.clone(),
        )?;
        Ok(inner.tenant_audits.get_or_insert_with(tenant, || log))
    }

    /// Appends to the tenant's chain and the operator's chain.
    fn audit(
        &self,
        actor: &Principal,
        tenant: TenantId,
        action: AuditAction,
        target: String,
    ) -> Result<(), TenancyError> {
        let record = AuditRecord {
            actor: *actor,
            action,
            target,
            outcome: AuditOutcome::Succeeded,
        };
        self.tenant_audit(tenant)?.append(record.clone())?;
        self.inner.operator_audit.append(AuditRecord {
            target: format!("tenant {tenant}: {}", record.target),
            ..record
        })?;
        Ok(())
    }

    /// The plan catalog in use.
    pub fn plans(&self) -> &BTreeMap<String, QuotaLimits> {
        &self.inner.plans
    }

    /// Creates a tenant (operator only) and its first owner key.
    pub fn create_tenant(
        &self,
        principal: &Principal,
        new: NewTenant,
    ) -> Result<CreatedTenant, TenancyError> {
        principal.authorize_global(Permission::AdminTenants)?;
        validate_name(&new.name)?;
        if !self.inner.plans.contains_key(&new.plan) {
            return Err(TenancyError::PlanNotFound { plan: new.plan });
        }
        let mut registry = self.inner.registry.lock();
        if registry.slugs.contains_key(&new.slug) {
            return Err(TenancyError::SlugTaken {
                slug: new.slug.as_str().to_owned(),
            });
        }
        let id = TenantId::new(registry.next_id);
        let key_salt = match new.isolation {
            IsolationMode::Shared => None,
            IsolationMode::Dedicated => {
                let mut salt = [0u8; TENANT_SALT_BYTES];
                rand::rng().fill_bytes(&mut salt);
                Some(salt)
            }
        };
        let stored = StoredTenant {
            tenant: Tenant {
                id,
                name: new.name,
                slug: new.slug.clone(),
                plan: new.plan,
                isolation: new.isolation,
                status: TenantStatus::Active,
                limits_override: QuotaOverride::default(),
                created_unix_ms: self.inner.clock.now_unix_ms(),
                deleted_unix_ms: None,
            },
            key_salt,
            deleting: false,
        };
        // A directory under this id was left by an attempt interrupted
        // before its record was persisted (the id was never taken). It holds
        // nothing anyone can decrypt (the salt was never persisted either),
        // and it must go whatever this tenant's isolation: a shared tenant
        // would otherwise inherit it, and its deletion would leave it behind.
        let dir = self.dedicated_dir(id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_error)?;
        }
        let runtime = self.start_runtime(&stored, Footprint::default())?;
        if let Err(error) = self.persist(&stored, true) {
            self.inner.runtimes.remove(id);
            if !Arc::ptr_eq(&runtime.engine, &self.inner.shared) {
                // Best effort: the dedicated engine is new and empty; a failure
                // to close it changes nothing the caller could act on.
                let _ = runtime.engine.close();
            }
            return Err(error);
        }
        registry.next_id += 1;
        registry.slugs.insert(new.slug.clone(), id);
        registry.records.insert(id, stored.clone());
        drop(registry);
        let owner_key = self.inner.keys.create(NewApiKey {
            tenant: id,
            slug: new.slug,
            role: Role::Owner,
            expires_unix_ms: None,
        })?;
        let tenant = stored.tenant;
        self.audit(
            principal,
            id,
            AuditAction::TenantCreated,
            format!(
                "slug {} plan {} isolation {:?}",
                tenant.slug, tenant.plan, tenant.isolation
            ),
        )?;
        self.audit(
            principal,
            id,
            AuditAction::KeyCreated,
            format!("key {} role {}", owner_key.record.key_id, Role::Owner),
        )?;
        Ok(CreatedTenant { tenant, owner_key })
    }

    /// One tenant. A tenant principal may read only its own; others (and
    /// deleted tenants, for tenant principals) are [`TenancyError::TenantNotFound`]
    /// or [`TenancyError::Forbidden`].
    pub fn get_tenant(
        &self,
        principal: &Principal,
        tenant: TenantId,
    ) -> Result<Tenant, TenancyError> {
        principal.authorize(tenant, Permission::ReadUsage)?;
        let registry = self.inner.registry.lock();
        match registry.records.get(&tenant) {
            Some(stored) if !stored.tenant.is_deleted() || *principal == Principal::Operator => {
                Ok(stored.tenant.clone())
            }
            _ => Err(TenancyError::TenantNotFound { tenant }),
        }
    }

    /// The live tenant whose slug is `slug`, if any; operator only. A
    /// deleted tenant's slug is free again and names nobody.
    pub fn tenant_id_by_slug(
        &self,
        principal: &Principal,
        slug: &Slug,
    ) -> Result<Option<TenantId>, TenancyError> {
        principal.authorize_global(Permission::AdminTenants)?;
        let registry = self.inner.registry.lock();
        Ok(registry
            .slugs
            .get(slug)
            .copied()
            .filter(|id| live_record(&registry, *id).is_ok()))
    }

    /// Live tenants in id order after `after`, at most `limit`
    /// (1..=[`TENANT_PAGE_LEN_MAX`]); operator only.
    pub fn list_tenants(
        &self,
        principal: &Principal,
        after: Option<TenantId>,
        limit: usize,
    ) -> Result<TenantPage, TenancyError> {
        principal.authorize_global(Permission::AdminTenants)?;
        if limit == 0 || limit > TENANT_PAGE_LEN_MAX {
            return Err(TenancyError::InvalidPageSize {
                requested: limit,
                max: TENANT_PAGE_LEN_MAX,
            });
        }
        let registry = self.inner.registry.lock();
        let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let mut live = registry
            .records
            .range((start, std::ops::Bound::Unbounded))
            .filter(|(_, stored)| !stored.tenant.is_deleted())
            .map(|(_, stored)| stored.tenant.clone());
        let tenants: Vec<Tenant> = live.by_ref().take(limit).collect();
        let next_cursor = match live.next() {
            Some(_) => tenants.last().map(|t| t.id),
            None => None,
        };
        Ok(TenantPage {
            tenants,
            next_cursor,
        })
    }

    /// Changes a tenant's name, plan or limits override. Each change needs
    /// its own permission (see [`TenantUpdate`]) and is audited.
    pub fn update_tenant(
        &self,
        principal: &Principal,
        tenant: TenantId,
        update: TenantUpdate,
    ) -> Result<Tenant, TenancyError> {
        if update.name.is_some() {
            principal.authorize(tenant, Permission::UpdateTenant)?;
        }
        if update.plan.is_some() {
            principal.authorize(tenant, Permission::ManageSubscription)?;
        }
        if update.limits_override.is_some() {
            principal.authorize_global(Permission::AdminTenants)?;
        }
        if let Some(name) = &update.name {
            validate_name(name)?;
        }
        if let Some(plan) = &update.plan {
            if !self.inner.plans.contains_key(plan) {
                return Err(TenancyError::PlanNotFound { plan: plan.clone() });
            }
        }
        let mut registry = self.inner.registry.lock();
        let mut stored = live_record(&registry, tenant)?.clone();
        let before = stored.tenant.clone();
        if let Some(name) = update.name {
            stored.tenant.name = name;
        }
        if let Some(plan) = update.plan {
            stored.tenant.plan = plan;
        }
        if let Some(limits_override) = update.limits_override {
            stored.tenant.limits_override = limits_override;
        }
        let limits = self.limits_of(&stored.tenant)?;
        let rate = limits.rate_limit()?;
        self.persist(&stored, false)?;
        registry.records.insert(tenant, stored.clone());
        drop(registry);
        self.apply_limits(tenant, limits, rate);
        let after = &stored.tenant;
        if before.name != after.name {
            self.audit(
                principal,
                tenant,
                AuditAction::TenantUpdated,
                "name changed".to_owned(),
            )?;
        }
        if before.plan != after.plan {
            self.audit(
                principal,
                tenant,
                AuditAction::PlanChanged,
                format!("plan {} -> {}", before.plan, after.plan),
            )?;
        }
        if before.limits_override != after.limits_override {
            self.audit(
                principal,
                tenant,
                AuditAction::LimitsOverridden,
                format!("{:?}", after.limits_override),
            )?;
        }
        Ok(stored.tenant)
    }

    fn apply_limits(&self, tenant: TenantId, limits: QuotaLimits, rate: Option<crate::RateLimit>) {
        let inner = &self.inner;
        inner.rate.set_limit(tenant, rate);
        inner
            .concurrency
            .set_limit(tenant, limits.concurrent_requests_max);
        if let Some(runtime) = inner.runtimes.get(tenant) {
            runtime.state.write().limits = limits;
            runtime.gauge.set_limits(limits);
        }
    }

    fn set_status(
        &self,
        principal: &Principal,
        tenant: TenantId,
        status: TenantStatus,
        action: AuditAction,
        target: String,
    ) -> Result<Tenant, TenancyError> {
        principal.authorize_global(Permission::AdminTenants)?;
        let mut registry = self.inner.registry.lock();
        let mut stored = live_record(&registry, tenant)?.clone();
        stored.tenant.status = status;
        self.persist(&stored, false)?;
        registry.records.insert(tenant, stored.clone());
        drop(registry);
        if let Some(runtime) = self.inner.runtimes.get(tenant) {
            runtime.state.write().status = status;
        }
        self.audit(principal, tenant, action, target)?;
        Ok(stored.tenant)
    }

    /// Makes a tenant read-only (operator only); audited with the reason.
    pub fn suspend_tenant(
        &self,
        principal: &Principal,
        tenant: TenantId,
        reason: SuspensionReason,
    ) -> Result<Tenant, TenancyError> {
        self.set_status(
            principal,
            tenant,
            TenantStatus::Suspended { reason },
            AuditAction::TenantSuspended,
            format!("reason: {reason}"),
        )
    }

    /// Ends a suspension (operator only); audited.
    pub fn resume_tenant(
        &self,
        principal: &Principal,
        tenant: TenantId,
    ) -> Result<Tenant, TenancyError> {
        self.set_status(
            principal,
            tenant,
            TenantStatus::Active,
            AuditAction::TenantResumed,
            "resumed".to_owned(),
        )
    }

    /// Appends a billing event to the tenant's audit chain (and the
    /// operator's), with operator authority: billing acts on the operator's
    /// behalf. `target` says what happened (at most
    /// [`AUDIT_TARGET_BYTES_MAX`](crate::audit::AUDIT_TARGET_BYTES_MAX) bytes).
    pub fn audit_billing_event(
        &self,
        principal: &Principal,
        tenant: TenantId,
        kind: BillingAuditKind,
        target: String,
    ) -> Result<(), TenancyError> {
        principal.authorize_global(Permission::AdminTenants)?;
        live_record(&self.inner.registry.lock(), tenant)?;
        self.audit(principal, tenant, kind.action(), target)
    }

    /// Deletes a tenant (owner or operator): its keys stop working at once,
    /// its data is removed (dedicated: engine closed and directory removed;
    /// shared: collections dropped and the shared engine compacted), and
    /// its key salt is destroyed (record replaced by a tombstone and the
    /// system database compacted), so leftover copies cannot be decrypted.
    pub fn delete_tenant(
        &self,
        principal: &Principal,
        tenant: TenantId,
    ) -> Result<Tenant, TenancyError> {
        principal.authorize(tenant, Permission::DeleteTenant)?;
        let inner = &self.inner;
        let mut registry = inner.registry.lock();
        let mut stored = live_record(&registry, tenant)?.clone();
        // The point of no return: once this flag is durable, a crash at any
        // later step is finished by the next open; before it, the tenant is
        // untouched.
        stored.deleting = true;
        self.persist(&stored, false)?;
        registry.records.insert(tenant, stored.clone());
        let runtime = inner.runtimes.remove(tenant);
        if let Some(runtime) = &runtime {
            runtime.deleted.store(true, Ordering::SeqCst);
            // Pairs with the fence in the handle's admission: calls admitted
            // before the flag was set finish before the data goes.
            std::sync::atomic::fence(Ordering::SeqCst);
            let mut spins = 0u64;
            while inner.concurrency.in_flight(tenant) > 0 && spins < DELETE_DRAIN_SPINS_MAX {
                std::thread::yield_now();
                spins += 1;
            }
        }
        self.remove_tenant_data(&stored, runtime.as_deref())?;
        inner.rate.remove(tenant);
        inner.concurrency.set_limit(tenant, None);
        let stored = self.write_tombstone(stored)?;
        registry.slugs.remove(&stored.tenant.slug);
        registry.records.insert(tenant, stored.clone());
        drop(registry);
        self.audit(
            principal,
            tenant,
            AuditAction::TenantDeleted,
            "deleted".to_owned(),
        )?;
        // Compaction rewrites only live records: the salt-bearing version of
        // the tenant record is physically gone afterwards.
        inner.system.compact().map_err(engine_error)?;
        Ok(stored.tenant)
    }

    /// Authenticates a bearer: an API key (`ak_...`) or a session token
    /// (`st_...`). Revoked or expired keys, tokens of revoked keys and
    /// credentials of deleted tenants are refused.
    ///
    /// Key records come through the credential cache (`key_cache`), which
    /// revocation, role changes and tenant deletion invalidate before they
    /// return; the hash comparison, the expiry and token checks and the
    /// tenant's liveness are evaluated on every call.
    pub fn authenticate(&self, bearer: &str) -> Result<Principal, TenancyError> {
        self.authenticate_by(bearer, true)
            .expect("a lookup that may read the system database always answers")
    }

    /// [`Tenancy::authenticate`] when it can answer without reading the
    /// system database, that is when the credential's key record is in the
    /// credential cache (or the bearer is refused on its face: malformed,
    /// bad token signature, expired token); `None` otherwise. It does no
    /// I/O, so a server may call it on an async worker and fall back to
    /// [`Tenancy::authenticate`] on a blocking thread.
    pub fn authenticate_cached(&self, bearer: &str) -> Option<Result<Principal, TenancyError>> {
        self.authenticate_by(bearer, false)
    }

    fn authenticate_by(
        &self,
        bearer: &str,
        may_read_store: bool,
    ) -> Option<Result<Principal, TenancyError>> {
        let inner = &self.inner;
        let store = inner.keys.store();
        let record = if bearer.starts_with(TOKEN_PREFIX) {
            let claims = match inner.tokens.verify(bearer, None) {
                Ok(claims) => claims,
                Err(error) => return Some(Err(AuthError::from(error).into())),
            };
            let found = if may_read_store {
                store.get(claims.key_id)
            } else {
                Ok(Some(store.cache().by_id(claims.key_id)?))
            };
            found
                .map_err(AuthError::from)
                .and_then(|found| {
                    found
                        .filter(|record| record.tenant == claims.tenant)
                        .ok_or(AuthError::UnknownKey)
                })
                .and_then(|record| {
                    record.check_usable(inner.clock.now_unix_ms())?;
                    Ok(record)
                })
        } else {
            inner.keys.authenticate_by(bearer, |hash| {
                if may_read_store {
                    Some(store.find_by_hash(hash))
                } else {
                    Some(Ok(Some(store.cache().by_hash(hash)?)))
                }
            })?
        };
        // A token acts with its key's current role: a role change applies
        // to the tokens already issued for the key, from the next call on.
        let principal = match record {
            Ok(record) => record.principal(),
            Err(error) => return Some(Err(error.into())),
        };
        let tenant = principal
            .tenant()
            .expect("key principals are tenant principals");
        if inner.runtimes.get(tenant).is_none() {
            return Some(Err(AuthError::UnknownKey.into()));
        }
        Some(Ok(principal))
    }

    /// Issues a session token for an authenticated tenant principal.
    pub fn issue_token(
        &self,
        principal: &Principal,
        lifetime_ms: u64,
    ) -> Result<(SessionToken, SessionClaims), TenancyError> {
        match *principal {
            Principal::Tenant {
                tenant,
                role,
                key_id,
            } => Ok(self.inner.tokens.issue(tenant, key_id, role, lifetime_ms)?),
            Principal::Operator => Err(Forbidden::new(Permission::ManageKeys).into()),
        }
    }

    /// Exchanges a valid session token for a new one with a new expiry.
    pub fn refresh_token(
        &self,
        token: &str,
        lifetime_ms: u64,
    ) -> Result<(SessionToken, SessionClaims), TenancyError> {
        let principal = self.authenticate(token)?;
        if !token.starts_with(TOKEN_PREFIX) {
            return Err(AuthError::Token(crate::TokenError::Malformed).into());
        }
        self.issue_token(&principal, lifetime_ms)
    }

    /// The handle through which `principal` reaches `tenant`'s data.
    /// A principal of another tenant gets [`TenancyError::Forbidden`].
    pub fn handle(
        &self,
        principal: &Principal,
        tenant: TenantId,
    ) -> Result<TenantHandle, TenancyError> {
        if let Principal::Tenant { tenant: own, .. } = principal {
            if *own != tenant {
                return Err(Forbidden::new(Permission::ReadDocuments).into());
            }
        }
        let runtime = self
            .inner
            .runtimes
            .get(tenant)
            .ok_or(TenancyError::TenantNotFound { tenant })?;
        Ok(TenantHandle::new(self.inner.clone(), runtime, *principal))
    }

    /// Creates an API key for `tenant` with `role` (needs
    /// [`Permission::ManageKeys`] and the right to grant `role`); audited.
    pub fn create_api_key(
        &self,
        principal: &Principal,
        tenant: TenantId,
        role: Role,
        expires_unix_ms: Option<i64>,
    ) -> Result<CreatedApiKey, TenancyError> {
        principal.authorize_grant(tenant, role)?;
        let slug = live_record(&self.inner.registry.lock(), tenant)?
            .tenant
            .slug
            .clone();
        let created = self.inner.keys.create(NewApiKey {
            tenant,
            slug,
            role,
            expires_unix_ms,
        })?;
        self.audit(
            principal,
            tenant,
            AuditAction::KeyCreated,
            format!("key {} role {role}", created.record.key_id),
        )?;
        Ok(created)
    }

    /// Revokes a key of `tenant` (needs [`Permission::ManageKeys`]); audited.
    pub fn revoke_api_key(
        &self,
        principal: &Principal,
        tenant: TenantId,
        key_id: KeyId,
    ) -> Result<ApiKeyRecord, TenancyError> {
        principal.authorize(tenant, Permission::ManageKeys)?;
        live_record(&self.inner.registry.lock(), tenant)?;
        let record = self.inner.keys.revoke(tenant, key_id)?;
        self.audit(
            principal,
            tenant,
            AuditAction::KeyRevoked,
            format!("key {key_id}"),
        )?;
        Ok(record)
    }

    /// The keys of `tenant` (records: prefixes, never secrets).
    pub fn list_api_keys(
        &self,
        principal: &Principal,
        tenant: TenantId,
    ) -> Result<Vec<ApiKeyRecord>, TenancyError> {
        principal.authorize(tenant, Permission::ManageKeys)?;
        live_record(&self.inner.registry.lock(), tenant)?;
        Ok(self.inner.keys.list(tenant)?)
    }

    /// Changes a key's role; the principal must be allowed to grant both the
    /// old and the new role; audited.
    pub fn set_api_key_role(
        &self,
        principal: &Principal,
        tenant: TenantId,
        key_id: KeyId,
        role: Role,
    ) -> Result<ApiKeyRecord, TenancyError> {
        principal.authorize_grant(tenant, role)?;
        live_record(&self.inner.registry.lock(), tenant)?;
        let store = self.inner.keys.store();
        let current = store
            .get(key_id)?
            .filter(|record| record.tenant == tenant)
            .ok_or(crate::ApiKeyError::NotFound { key_id })?;
        principal.authorize_grant(tenant, current.role)?;
        let record = store
            .set_role(tenant, key_id, role)?
            .ok_or(crate::ApiKeyError::NotFound { key_id })?;
        self.audit(
            principal,
            tenant,
            AuditAction::RoleChanged,
            format!("key {key_id} role {} -> {role}", current.role),
        )?;
        Ok(record)
    }

    fn audit_log_of(
        &self,
        principal: &Principal,
        chain: AuditChain,
    ) -> Result<Arc<AuditLog<SystemAuditStore>>, TenancyError> {
        match chain {
            AuditChain::Operator => {
                principal.authorize_global(Permission::AdminTenants)?;
                Ok(Arc::new(AuditLog::open(
                    SystemAuditStore::operator(self.inner.system.clone()),
                    self.inner.clock.clone(),
                )?))
            }
            AuditChain::Tenant(tenant) => {
                principal.authorize(tenant, Permission::ReadAudit)?;
                self.tenant_audit(tenant)
            }
        }
    }

    /// Records in the tenant's audit chain (and the operator's) that the
    /// operator exported (`imported == false`) or imported its data;
    /// `target` says what (at most
    /// [`AUDIT_TARGET_BYTES_MAX`](crate::audit::AUDIT_TARGET_BYTES_MAX)
    /// bytes). Operator only. Operator handles are not metered or rate
    /// limited (see [`TenantHandle`]), so this entry is their trace.
    pub fn audit_data_transfer(
        &self,
        principal: &Principal,
        tenant: TenantId,
        imported: bool,
        target: String,
    ) -> Result<(), TenancyError> {
        principal.authorize_global(Permission::AdminTenants)?;
        live_record(&self.inner.registry.lock(), tenant)?;
        let action = if imported {
            AuditAction::DataImported
        } else {
            AuditAction::DataExported
        };
        self.audit(principal, tenant, action, target)
    }

    /// Up to `limit` audit entries of a chain from `from_seq` on (tenant
    /// chains need [`Permission::ReadAudit`], the operator chain the
    /// operator).
    pub fn audit_log(
        &self,
        principal: &Principal,
        chain: AuditChain,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, TenancyError> {
        Ok(self.audit_log_of(principal, chain)?.list(from_seq, limit)?)
    }

    /// Walks a chain and reports the first tampered entry.
    pub fn verify_audit_log(
        &self,
        principal: &Principal,
        chain: AuditChain,
    ) -> Result<(), TenancyError> {
        Ok(self.audit_log_of(principal, chain)?.verify()?)
    }

    /// Closes every engine (system, shared, dedicated). Handles still held
    /// fail afterwards; reopen with [`Tenancy::open`].
    pub fn close(&self) -> Result<(), TenancyError> {
        let inner = &self.inner;
        let ids: Vec<TenantId> = inner.registry.lock().records.keys().copied().collect();
        for id in ids {
            if let Some(runtime) = inner.runtimes.get(id) {
                if !Arc::ptr_eq(&runtime.engine, &inner.shared) {
                    runtime.engine.close().map_err(engine_error)?;
                }
            }
        }
        inner.shared.close().map_err(engine_error)?;
        inner.system.close().map_err(engine_error)?;
        Ok(())
    }

    /// The key a dedicated tenant's engine is encrypted with, if the
    /// registry still holds its salt. For tests of crypto-shredding only.
    #[doc(hidden)]
    pub fn dedicated_key_for_tests(&self, tenant: TenantId) -> Option<MasterKey> {
        let registry = self.inner.registry.lock();
        let salt = registry.records.get(&tenant)?.key_salt?;
        Some(tenant_key(&self.inner.master_key, tenant, &salt))
    }

    /// Lookups the credential cache answered since open, and the key records
    /// it holds. For tests of the cache only.
    #[doc(hidden)]
    pub fn credential_cache_stats_for_tests(&self) -> (u64, usize) {
        let cache = self.inner.keys.store().cache();
        (cache.hits(), cache.len())
    }

    /// Where a dedicated tenant's engine lives (for operators' tooling and
    /// tests; data is reached only through a [`TenantHandle`]).
    pub fn dedicated_dir_of(&self, tenant: TenantId) -> PathBuf {
        self.dedicated_dir(tenant)
    }
}

fn live_record(registry: &Registry, tenant: TenantId) -> Result<&StoredTenant, TenancyError> {
    registry
        .records
        .get(&tenant)
        .filter(|stored| !stored.tenant.is_deleted())
        .ok_or(TenancyError::TenantNotFound { tenant })
}
