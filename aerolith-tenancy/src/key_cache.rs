//! The authenticated-credential cache: a bounded, read-through cache of API
//! key records in front of the system database, so authenticating a bearer
//! on every request does not read, decrypt and decode the key record each
//! time.
//!
//! What it caches is the *record* (key id, tenant, role, hash, expiry,
//! revocation), never a verdict: every authentication still hashes the
//! presented key, confirms the hash in constant time, checks revocation and
//! expiry against the [`Clock`](aerolith_core::Clock), verifies a session
//! token's MAC and expiry, and checks that the tenant is live; tenant status
//! and plan limits are read from the tenant's runtime by every
//! [`TenantHandle`](crate::TenantHandle) call and are not cached here.
//!
//! Only usable-looking records found in the store are cached: an unknown
//! (forged) key, a revoked key, a key of a deleted tenant (its records are
//! deleted) and a failed lookup leave nothing behind and are never answered
//! from the cache.
//!
//! Invariant: the cache never serves a record older than the store. The
//! store's writers (revocation, role change, deletion of a tenant's keys)
//! invalidate after their write is visible, and bump a generation; a reader
//! fills the cache only if the generation it saw *before* reading the store
//! is still current, so a read that raced with a write is never cached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::api_key::ApiKeyRecord;
use crate::ids::{KeyId, TenantId};

/// Most key records held; a fill beyond it empties the cache first (keys
/// of live tenants are few; this only bounds memory).
pub(crate) const KEY_CACHE_ENTRIES_MAX: usize = 65_536;

#[derive(Default)]
struct Entries {
    /// Bumped by every invalidation.
    generation: u64,
    by_hash: HashMap<[u8; 32], ApiKeyRecord>,
    hash_by_id: HashMap<KeyId, [u8; 32]>,
}

/// Key records by hash and by key id. See the module docs.
#[derive(Default)]
pub(crate) struct KeyRecordCache {
    entries: RwLock<Entries>,
    hits: AtomicU64,
}

impl std::fmt::Debug for KeyRecordCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecordCache")
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

impl KeyRecordCache {
    /// The generation to pass to [`Self::fill`] after reading the store.
    pub(crate) fn generation(&self) -> u64 {
        self.entries.read().generation
    }

    /// The cached record whose hash is `hash`.
    pub(crate) fn by_hash(&self, hash: &[u8; 32]) -> Option<ApiKeyRecord> {
        let found = self.entries.read().by_hash.get(hash).cloned();
        self.count_hit(found.is_some());
        found
    }

    /// The cached record of key `key_id`.
    pub(crate) fn by_id(&self, key_id: KeyId) -> Option<ApiKeyRecord> {
        let entries = self.entries.read();
        let found = entries
            .hash_by_id
            .get(&key_id)
            .and_then(|hash| entries.by_hash.get(hash))
            .cloned();
        drop(entries);
        self.count_hit(found.is_some());
        found
    }

    fn count_hit(&self, hit: bool) {
        if hit {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Caches `record`, read from the store after [`Self::generation`]
    /// returned `generation`, unless something was invalidated since. A
    /// revoked record is never cached: it is refused from the store.
    pub(crate) fn fill(&self, generation: u64, record: &ApiKeyRecord) {
        if record.revoked_unix_ms.is_some() {
            return;
        }
        let mut entries = self.entries.write();
        if entries.generation != generation {
            return;
        }
        if entries.by_hash.len() >= KEY_CACHE_ENTRIES_MAX {
            entries.by_hash.clear();
            entries.hash_by_id.clear();
        }
        entries.hash_by_id.insert(record.key_id, record.hash);
        entries.by_hash.insert(record.hash, record.clone());
    }

    /// Forgets key `key_id`; call after its record changed in the store.
    pub(crate) fn invalidate_key(&self, key_id: KeyId) {
        let mut entries = self.entries.write();
        entries.generation += 1;
        if let Some(hash) = entries.hash_by_id.remove(&key_id) {
            entries.by_hash.remove(&hash);
        }
    }

    /// Forgets every key of `tenant`; call after they changed in the store.
    pub(crate) fn invalidate_tenant(&self, tenant: TenantId) {
        let mut entries = self.entries.write();
        entries.generation += 1;
        entries.by_hash.retain(|_, record| record.tenant != tenant);
        let Entries {
            by_hash,
            hash_by_id,
            ..
        } = &mut *entries;
        hash_by_id.retain(|_, hash| by_hash.contains_key(hash));
    }

    /// Records held.
    pub(crate) fn len(&self) -> usize {
        self.entries.read().by_hash.len()
    }

    /// Lookups answered from the cache since it was made.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::Role;

    fn record(key: u128, tenant: u64) -> ApiKeyRecord {
        ApiKeyRecord {
            key_id: KeyId::from_be_bytes(key.to_be_bytes()),
            tenant: TenantId::new(tenant),
            role: Role::Reader,
            display_prefix: "ak_x_".to_owned(),
            hash: *blake3::hash(&key.to_be_bytes()).as_bytes(),
            created_unix_ms: 0,
            expires_unix_ms: None,
            revoked_unix_ms: None,
        }
    }

    #[test]
    fn a_fill_that_raced_with_an_invalidation_is_dropped() {
        let cache = KeyRecordCache::default();
        let r = record(1, 1);
        let seen = cache.generation();
        cache.invalidate_key(r.key_id);
        cache.fill(seen, &r);
        assert_eq!(cache.by_hash(&r.hash), None);
        cache.fill(cache.generation(), &r);
        assert_eq!(cache.by_hash(&r.hash), Some(r.clone()));
        assert_eq!(cache.by_id(r.key_id), Some(r));
        assert_eq!(cache.hits(), 2);
    }

    #[test]
    fn invalidation_forgets_one_key_or_one_tenant() {
        let cache = KeyRecordCache::default();
        let (a, b, c) = (record(1, 1), record(2, 1), record(3, 2));
        for r in [&a, &b, &c] {
            cache.fill(cache.generation(), r);
        }
        cache.invalidate_key(a.key_id);
        assert_eq!(cache.by_hash(&a.hash), None);
        assert_eq!(cache.by_id(b.key_id), Some(b.clone()));
        cache.invalidate_tenant(b.tenant);
        assert_eq!(cache.by_id(b.key_id), None);
        assert_eq!(cache.by_hash(&b.hash), None);
        assert_eq!(cache.by_hash(&c.hash), Some(c));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_cache_never_holds_more_than_its_bound() {
        let cache = KeyRecordCache::default();
        for key in 1..=(KEY_CACHE_ENTRIES_MAX as u128 + 1) {
            cache.fill(cache.generation(), &record(key, 1));
        }
        assert!(cache.len() <= KEY_CACHE_ENTRIES_MAX);
        assert_eq!(cache.len(), 1);
    }
}
