//! The system database (`<dir>/system`, encrypted with a key derived from
//! the operator's master key): where the registry keeps tenant records, API
//! key records and audit chains. This module implements [`ApiKeyStore`] and
//! [`AuditStore`] over it; the tenant records are written by the registry.
//!
//! Layout (collections of the system database):
//! - `tenants`: one document per tenant, `_id` = decimal tenant id.
//! - `api_keys`: one document per key, `_id` = hex of the key hash, with
//!   unique index `key_id` and index `tenant`.
//! - `audit`: one document per entry, `_id` = `<chain>-<seq, 20 digits>`, with
//!   index `chain`. Chain `operator` is the operator's, `t<id>` a tenant's.

use std::sync::Arc;

use aerolith_core::{Database, Error as CoreError, Query, WriteBatch};
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::api_key::{ApiKeyRecord, ApiKeyStore};
use crate::audit::{AuditEntry, AuditStore};
use crate::error::StoreError;
use crate::ids::{KeyId, TenantId};
use crate::key_cache::KeyRecordCache;

pub(crate) const TENANTS: &str = "tenants";
pub(crate) const API_KEYS: &str = "api_keys";
pub(crate) const AUDIT: &str = "audit";

/// Wraps an engine error as a store backend failure.
pub(crate) fn backend(error: CoreError) -> StoreError {
    StoreError::Backend {
        source: Box::new(error),
    }
}

fn decode_error(error: serde_json::Error) -> StoreError {
    StoreError::Backend {
        source: Box::new(error),
    }
}

/// Creates the system collections and indexes if missing.
pub(crate) fn ensure_layout(db: &Database) -> Result<(), StoreError> {
    for name in [TENANTS, API_KEYS, AUDIT] {
        match db.create_collection(name) {
            Ok(()) | Err(CoreError::CollectionExists { .. }) => {}
            Err(error) => return Err(backend(error)),
        }
    }
    for (collection, path, unique) in [
        (API_KEYS, "key_id", true),
        (API_KEYS, "tenant", false),
        (AUDIT, "chain", false),
    ] {
        match db.create_index(collection, path, unique) {
            Ok(()) | Err(CoreError::IndexExists { .. }) => {}
            Err(error) => return Err(backend(error)),
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// API key records in the system database, read through a
/// [`KeyRecordCache`] that every write of this store invalidates.
#[derive(Debug, Clone)]
pub(crate) struct SystemKeyStore {
    db: Arc<Database>,
    /// Serializes read-modify-write updates (revocation, role changes).
    update: Arc<Mutex<()>>,
    cache: Arc<KeyRecordCache>,
}

impl SystemKeyStore {
    pub(crate) fn new(db: Arc<Database>) -> Self {
        SystemKeyStore {
            db,
            update: Arc::new(Mutex::new(())),
            cache: Arc::new(KeyRecordCache::default()),
        }
    }

    /// The credential cache in front of this store.
    pub(crate) fn cache(&self) -> &KeyRecordCache {
        &self.cache
    }

    fn decode(doc: Value) -> Result<ApiKeyRecord, StoreError> {
        serde_json::from_value(doc).map_err(decode_error)
    }

    fn find_by_key_id(&self, key_id: KeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        let query = Query::filter(&json!({ "key_id": key_id.to_string() })).map_err(backend)?;
        let mut found = self.db.find(API_KEYS, &query).map_err(backend)?;
        found.pop().map(Self::decode).transpose()
    }

    fn store(&self, record: &ApiKeyRecord, insert: bool) -> Result<(), StoreError> {
        let mut doc = serde_json::to_value(record).map_err(decode_error)?;
        let id = hex(&record.hash);
        if let Value::Object(map) = &mut doc {
            map.insert("_id".to_owned(), Value::String(id.clone()));
        }
        let mut batch = WriteBatch::new();
        let added = if insert {
            batch.insert(API_KEYS, doc).map(|_| ())
        } else {
            batch.replace(API_KEYS, &id, doc)
        };
        added.map_err(backend)?;
        match self.db.write(batch) {
            Ok(_) => Ok(()),
            Err(CoreError::DocumentExists { .. }) => Err(StoreError::Conflict { what: "key hash" }),
            Err(CoreError::UniqueViolation { .. }) => Err(StoreError::Conflict { what: "key id" }),
            Err(error) => Err(backend(error)),
        }
    }

    /// Changes the role of a key of `tenant`; `None` if there is no such key.
    pub(crate) fn set_role(
        &self,
        tenant: TenantId,
        key_id: KeyId,
        role: crate::Role,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let _one_writer = self.update.lock();
        let Some(mut record) = self.find_by_key_id(key_id)? else {
            return Ok(None);
        };
        if record.tenant != tenant {
            return Ok(None);
        }
        record.role = role;
        let stored = self.store(&record, false);
        // Even a failed write may have reached the log: forget the old role.
        self.cache.invalidate_key(key_id);
        stored?;
        Ok(Some(record))
    }

    /// The record of a key by id, whichever tenant it belongs to (through
    /// the cache).
    pub(crate) fn get(&self, key_id: KeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        if let Some(record) = self.cache.by_id(key_id) {
            return Ok(Some(record));
        }
        let generation = self.cache.generation();
        let found = self.find_by_key_id(key_id)?;
        if let Some(record) = &found {
            self.cache.fill(generation, record);
        }
        Ok(found)
    }

    /// Deletes every key record of `tenant` in one batch.
    pub(crate) fn delete_all(&self, tenant: TenantId) -> Result<(), StoreError> {
        let _one_writer = self.update.lock();
        let records = self.list(tenant)?;
        if records.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        for record in &records {
            batch
                .delete(API_KEYS, &hex(&record.hash))
                .map_err(backend)?;
        }
        let written = self.db.write(batch);
        self.cache.invalidate_tenant(tenant);
        written.map_err(backend)?;
        Ok(())
    }
}

impl ApiKeyStore for SystemKeyStore {
    fn insert(&self, record: ApiKeyRecord) -> Result<(), StoreError> {
        self.store(&record, true)
    }

    fn find_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKeyRecord>, StoreError> {
        if let Some(record) = self.cache.by_hash(hash) {
            return Ok(Some(record));
        }
        let generation = self.cache.generation();
        let found = self
            .db
            .get(API_KEYS, &hex(hash))
            .map_err(backend)?
            .map(Self::decode)
            .transpose()?;
        if let Some(record) = &found {
            self.cache.fill(generation, record);
        }
        Ok(found)
    }

    fn mark_revoked(
        &self,
        tenant: TenantId,
        key_id: KeyId,
        at_unix_ms: i64,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let _one_writer = self.update.lock();
        let Some(mut record) = self.find_by_key_id(key_id)? else {
            return Ok(None);
        };
        if record.tenant != tenant {
            return Ok(None);
        }
        if record.revoked_unix_ms.is_none() {
            record.revoked_unix_ms = Some(at_unix_ms);
            let stored = self.store(&record, false);
            // Even a failed write may have reached the log: forget the key.
            self.cache.invalidate_key(key_id);
            stored?;
        }
        Ok(Some(record))
    }

    fn list(&self, tenant: TenantId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let query = Query::filter(&json!({ "tenant": tenant.get() })).map_err(backend)?;
        let mut records = self
            .db
            .find(API_KEYS, &query)
            .map_err(backend)?
            .into_iter()
            .map(Self::decode)
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by_key(|record| (record.created_unix_ms, record.key_id));
        Ok(records)
    }
}

/// One audit chain in the system database.
#[derive(Debug, Clone)]
pub(crate) struct SystemAuditStore {
    db: Arc<Database>,
    chain: String,
}

impl SystemAuditStore {
    /// The operator's chain.
    pub(crate) fn operator(db: Arc<Database>) -> Self {
        SystemAuditStore {
            db,
            chain: "operator".to_owned(),
        }
    }

    /// One tenant's chain.
    pub(crate) fn tenant(db: Arc<Database>, tenant: TenantId) -> Self {
        SystemAuditStore {
            db,
            chain: format!("t{tenant}"),
        }
    }

    fn doc_id(&self, seq: u64) -> String {
        format!("{}-{seq:020}", self.chain)
    }
}

impl AuditStore for SystemAuditStore {
    fn append(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let doc = json!({
            "_id": self.doc_id(entry.seq),
            "chain": self.chain,
            "entry": serde_json::to_value(entry).map_err(decode_error)?,
        });
        let mut batch = WriteBatch::new();
        batch.insert(AUDIT, doc).map_err(backend)?;
        match self.db.write(batch) {
            Ok(_) => Ok(()),
            Err(CoreError::DocumentExists { .. }) => {
                Err(StoreError::Conflict { what: "audit seq" })
            }
            Err(error) => Err(backend(error)),
        }
    }

    fn read_range(&self, from_position: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let snapshot = self.db.snapshot();
        let prefix = format!("{}-", self.chain);
        // Ids of one chain are contiguous in id order; `<chain>-` sorts just
        // before the chain's first entry.
        let after = match from_position.checked_sub(1) {
            Some(previous) => self.doc_id(previous),
            None => prefix.clone(),
        };
        let ids = snapshot
            .list_ids(AUDIT, Some(&after), limit)
            .map_err(backend)?;
        let mut entries = Vec::new();
        for id in ids.iter().take_while(|id| id.starts_with(&prefix)) {
            let Some(mut doc) = snapshot.get(AUDIT, id).map_err(backend)? else {
                break;
            };
            let entry = doc
                .get_mut("entry")
                .map(Value::take)
                .ok_or(StoreError::Conflict {
                    what: "audit document shape",
                })?;
            entries.push(serde_json::from_value(entry).map_err(decode_error)?);
        }
        Ok(entries)
    }

    fn len(&self) -> Result<u64, StoreError> {
        let query = Query::filter(&json!({ "chain": self.chain })).map_err(backend)?;
        self.db.count(AUDIT, &query).map_err(backend)
    }
}
