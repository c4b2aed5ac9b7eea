//! A read-mostly map from tenant to per-tenant state, split into shards so
//! that hot-path lookups of different tenants do not contend on one lock.
//!
//! Lookups take one shard's read lock just long enough to clone an `Arc`;
//! the state itself is atomics, so the check that follows takes no lock at
//! all. Writes (first sight of a tenant, a limit change) take one shard's
//! write lock.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::ids::TenantId;

/// Number of shards; a power of two so the shard is a mask of the id hash.
const SHARD_COUNT: usize = 64;

type Shard<V> = RwLock<HashMap<TenantId, Arc<V>>>;

pub(crate) struct TenantShards<V> {
    shards: Box<[Shard<V>]>,
}

impl<V> TenantShards<V> {
    pub(crate) fn new() -> Self {
        TenantShards {
            shards: (0..SHARD_COUNT)
                .map(|_| RwLock::new(HashMap::new()))
                .collect(),
        }
    }

    fn shard(&self, tenant: TenantId) -> &Shard<V> {
        // Sequential ids spread evenly under a multiplicative hash (Fibonacci
        // hashing); the top bits are the best mixed.
        let mixed = tenant.get().wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let index = (mixed >> (64 - SHARD_COUNT.trailing_zeros())) as usize;
        &self.shards[index]
    }

    pub(crate) fn get(&self, tenant: TenantId) -> Option<Arc<V>> {
        self.shard(tenant).read().get(&tenant).cloned()
    }

    pub(crate) fn get_or_insert_with(&self, tenant: TenantId, make: impl FnOnce() -> V) -> Arc<V> {
        if let Some(value) = self.get(tenant) {
            return value;
        }
        self.shard(tenant)
            .write()
            .entry(tenant)
            .or_insert_with(|| Arc::new(make()))
            .clone()
    }

    /// Replaces the value with `make(previous)` under the shard's write lock.
    pub(crate) fn update(&self, tenant: TenantId, make: impl FnOnce(Option<&V>) -> V) {
        let mut shard = self.shard(tenant).write();
        let value = make(shard.get(&tenant).map(|v| &**v));
        shard.insert(tenant, Arc::new(value));
    }

    /// Publishes `value` for `tenant`, replacing any previous one.
    pub(crate) fn insert(&self, tenant: TenantId, value: Arc<V>) {
        self.shard(tenant).write().insert(tenant, value);
    }

    pub(crate) fn remove(&self, tenant: TenantId) -> Option<Arc<V>> {
        self.shard(tenant).write().remove(&tenant)
    }
}
