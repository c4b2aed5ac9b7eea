//! Per-tenant limit on requests in flight. [`ConcurrencyLimiter::acquire`]
//! hands out a [`ConcurrencyPermit`] that gives its slot back when dropped,
//! so an early return or a panic cannot leak a slot.
//!
//! Each tenant has an `AtomicU32` count; acquiring is a compare-and-swap that
//! never takes the count above the limit, so the limit is exact under any
//! number of racing threads.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::error::ConcurrencyLimited;
use crate::ids::TenantId;
use crate::tenant_shards::TenantShards;

/// Shared between the limiter and its permits: the limit and the count. A
/// limit change replaces the limit but keeps the same counter, so permits
/// already out are still counted.
struct Slots {
    in_flight: Arc<AtomicU32>,
    limit: Option<u32>,
}

/// Limits requests in flight per tenant. Tenants without a limit of their own
/// use the default given at construction (`None` = unlimited, but still
/// counted).
pub struct ConcurrencyLimiter {
    default_limit: Option<u32>,
    slots: TenantShards<Slots>,
}

impl std::fmt::Debug for ConcurrencyLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConcurrencyLimiter")
            .field("default_limit", &self.default_limit)
            .finish_non_exhaustive()
    }
}

/// One request slot; released on drop.
#[derive(Debug)]
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct ConcurrencyPermit {
    in_flight: Arc<AtomicU32>,
}

impl Drop for ConcurrencyPermit {
    fn drop(&mut self) {
        let previous = self.in_flight.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(previous > 0, "a permit exists, so the count is positive");
    }
}

impl ConcurrencyLimiter {
    /// A limiter applying `default_limit` to tenants with no limit of their own.
    pub fn new(default_limit: Option<u32>) -> Self {
        ConcurrencyLimiter {
            default_limit,
            slots: TenantShards::new(),
        }
    }

    /// Sets `tenant`'s limit (`None` = unlimited). Permits already out stay
    /// counted; lowering the limit below them refuses new requests until
    /// enough finish.
    pub fn set_limit(&self, tenant: TenantId, limit: Option<u32>) {
        self.slots.update(tenant, |previous| Slots {
            in_flight: previous
                .map_or_else(|| Arc::new(AtomicU32::new(0)), |s| s.in_flight.clone()),
            limit,
        });
    }

    /// Requests of `tenant` in flight now.
    pub fn in_flight(&self, tenant: TenantId) -> u32 {
        self.slots
            .get(tenant)
            .map_or(0, |slots| slots.in_flight.load(Ordering::Acquire))
    }

    /// Takes a slot for one request of `tenant`, or refuses with the limit.
    pub fn acquire(&self, tenant: TenantId) -> Result<ConcurrencyPermit, ConcurrencyLimited> {
        let slots = self.slots.get_or_insert_with(tenant, || Slots {
            in_flight: Arc::new(AtomicU32::new(0)),
            limit: self.default_limit,
        });
        let limit = slots.limit.unwrap_or(u32::MAX);
        slots
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                (count < limit).then_some(count + 1)
            })
            .map_err(|_| ConcurrencyLimited { limit })?;
        Ok(ConcurrencyPermit {
            in_flight: slots.in_flight.clone(),
        })
    }
}
