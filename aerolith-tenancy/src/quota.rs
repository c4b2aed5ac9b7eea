//! Quotas: the limits of a plan ([`QuotaLimits`]), per-tenant overrides
//! ([`QuotaOverride`]), and exact enforcement of the storage, document and
//! collection limits under concurrency ([`QuotaGauge`]).
//!
//! Enforcement is reserve-then-commit. Before a write, the caller reserves
//! the amounts it will add; the gauge refuses if committed use plus all
//! reservations in flight plus the request would pass a limit. After the
//! write succeeds the caller commits the [`Reservation`] (the amounts become
//! committed use); if the write fails the reservation is dropped and the
//! amounts are released. Each tenant's gauge has its own small lock, held
//! only for a few additions, so there is no global lock and the check is
//! exact: no interleaving of threads ever takes use above a limit.
//!
//! Negative deltas (deletes) never fail. They are applied only on commit,
//! because until the delete is durable the space is still in use; a failed
//! delete therefore leaves nothing to undo.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::{QuotaExceeded, RateLimitConfigError};
use crate::rate_limit::RateLimit;

/// Names one limit of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum QuotaKind {
    /// Live stored bytes.
    StorageBytes,
    /// Live documents.
    Documents,
    /// Collections.
    Collections,
    /// API calls per hour (rate limit).
    ApiCallsPerHour,
    /// Requests in flight at once.
    ConcurrentRequests,
    /// Longest a single query may run, in milliseconds.
    QueryDurationMs,
}

impl fmt::Display for QuotaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QuotaKind::StorageBytes => "storage bytes",
            QuotaKind::Documents => "documents",
            QuotaKind::Collections => "collections",
            QuotaKind::ApiCallsPerHour => "api calls per hour",
            QuotaKind::ConcurrentRequests => "concurrent requests",
            QuotaKind::QueryDurationMs => "query duration ms",
        })
    }
}

/// The limits that apply to a tenant. `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaLimits {
    /// Most live stored bytes.
    pub storage_bytes_max: Option<u64>,
    /// Most live documents.
    pub documents_max: Option<u64>,
    /// Most collections.
    pub collections_max: Option<u64>,
    /// Most API calls per hour (see [`QuotaLimits::rate_limit`]).
    pub api_calls_per_hour: Option<u64>,
    /// Most requests in flight at once.
    pub concurrent_requests_max: Option<u32>,
    /// Longest a query may run, in milliseconds (the engine's query deadline).
    pub query_duration_ms_max: Option<u64>,
}

/// One field of a [`QuotaOverride`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitOverride<T> {
    /// Keep the plan's value.
    #[default]
    Inherit,
    /// No limit, whatever the plan says.
    Unlimited,
    /// This limit, whatever the plan says.
    Limit(T),
}

impl<T: Copy> LimitOverride<T> {
    fn apply(self, plan: Option<T>) -> Option<T> {
        match self {
            LimitOverride::Inherit => plan,
            LimitOverride::Unlimited => None,
            LimitOverride::Limit(value) => Some(value),
        }
    }
}

/// Per-tenant changes to the plan's limits. Each field inherits by default,
/// so an override names only what differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaOverride {
    /// Override of [`QuotaLimits::storage_bytes_max`].
    pub storage_bytes_max: LimitOverride<u64>,
    /// Override of [`QuotaLimits::documents_max`].
    pub documents_max: LimitOverride<u64>,
    /// Override of [`QuotaLimits::collections_max`].
    pub collections_max: LimitOverride<u64>,
    /// Override of [`QuotaLimits::api_calls_per_hour`].
    pub api_calls_per_hour: LimitOverride<u64>,
    /// Override of [`QuotaLimits::concurrent_requests_max`].
    pub concurrent_requests_max: LimitOverride<u32>,
    /// Override of [`QuotaLimits::query_duration_ms_max`].
    pub query_duration_ms_max: LimitOverride<u64>,
}

impl QuotaLimits {
    /// No limits at all.
    pub const UNLIMITED: QuotaLimits = QuotaLimits {
        storage_bytes_max: None,
        documents_max: None,
        collections_max: None,
        api_calls_per_hour: None,
        concurrent_requests_max: None,
        query_duration_ms_max: None,
    };

    /// The plan's limits with a tenant's override applied.
    pub fn with_override(&self, over: &QuotaOverride) -> QuotaLimits {
        QuotaLimits {
            storage_bytes_max: over.storage_bytes_max.apply(self.storage_bytes_max),
            documents_max: over.documents_max.apply(self.documents_max),
            collections_max: over.collections_max.apply(self.collections_max),
            api_calls_per_hour: over.api_calls_per_hour.apply(self.api_calls_per_hour),
            concurrent_requests_max: over
                .concurrent_requests_max
                .apply(self.concurrent_requests_max),
            query_duration_ms_max: over.query_duration_ms_max.apply(self.query_duration_ms_max),
        }
    }

    /// The value of one limit, widened to `u64`.
    pub fn get(&self, kind: QuotaKind) -> Option<u64> {
        match kind {
            QuotaKind::StorageBytes => self.storage_bytes_max,
            QuotaKind::Documents => self.documents_max,
            QuotaKind::Collections => self.collections_max,
            QuotaKind::ApiCallsPerHour => self.api_calls_per_hour,
            QuotaKind::ConcurrentRequests => self.concurrent_requests_max.map(u64::from),
            QuotaKind::QueryDurationMs => self.query_duration_ms_max,
        }
    }

    /// The query deadline to pass to the engine.
    pub fn query_deadline(&self) -> Option<Duration> {
        self.query_duration_ms_max.map(Duration::from_millis)
    }

    /// The rate limit for `api_calls_per_hour`, with the default burst of
    /// [`RateLimit::from_calls_per_hour`].
    pub fn rate_limit(&self) -> Result<Option<RateLimit>, RateLimitConfigError> {
        self.api_calls_per_hour
            .map(RateLimit::from_calls_per_hour)
            .transpose()
    }
}

/// A tenant's use of the counted resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QuotaUsage {
    /// Live stored bytes.
    pub storage_bytes: u64,
    /// Live documents.
    pub documents: u64,
    /// Collections.
    pub collections: u64,
}

/// Signed changes to the three counted resources, as one reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Delta {
    bytes: i64,
    docs: i64,
    collections: i64,
}

fn positive(delta: i64) -> u64 {
    u64::try_from(delta).unwrap_or(0)
}

/// Committed use, signed: settlements of concurrent writes can arrive in
/// another order than the engine committed them (a delete settling before
/// the insert it follows), so a running total may dip below zero for a
/// moment. Saturating at zero instead would drift from the engine for good.
#[derive(Debug, Clone, Copy, Default)]
struct Signed {
    bytes: i128,
    docs: i128,
    collections: i128,
}

impl Signed {
    fn from_usage(usage: QuotaUsage) -> Signed {
        let signed = i128::from;
        Signed {
            bytes: signed(usage.storage_bytes),
            docs: signed(usage.documents),
            collections: signed(usage.collections),
        }
    }

    /// The use as reported: a dip below zero reads as zero (and, as the
    /// `u64` it is reported in, use saturates at `u64::MAX`).
    fn usage(self) -> QuotaUsage {
        let clamp = |v: i128| u64::try_from(v.max(0)).unwrap_or(u64::MAX);
        QuotaUsage {
            storage_bytes: clamp(self.bytes),
            documents: clamp(self.docs),
            collections: clamp(self.collections),
        }
    }

    fn apply(&mut self, delta_bytes: i64, delta_docs: i64, delta_collections: i64) {
        // i128 holds any u64 use plus any run of i64 deltas a process makes.
        self.bytes = self.bytes.saturating_add(i128::from(delta_bytes));
        self.docs = self.docs.saturating_add(i128::from(delta_docs));
        self.collections = self
            .collections
            .saturating_add(i128::from(delta_collections));
    }
}

#[derive(Debug)]
struct GaugeState {
    limits: QuotaLimits,
    /// Use made permanent by committed reservations (or `set_usage`).
    committed: Signed,
    /// Positive amounts of reservations not yet committed or dropped.
    reserved: QuotaUsage,
}

impl GaugeState {
    fn check(
        &self,
        kind: QuotaKind,
        committed: u64,
        reserved: u64,
        requested: u64,
    ) -> Result<(), QuotaExceeded> {
        let current = committed.saturating_add(reserved);
        match self.limits.get(kind) {
            Some(limit_value)
                if requested > 0 && current.saturating_add(requested) > limit_value =>
            {
                Err(QuotaExceeded {
                    limit: kind,
                    limit_value,
                    current,
                    requested,
                })
            }
            _ => Ok(()),
        }
    }
}

/// One tenant's counted use and limits. Cloning shares the same gauge.
#[derive(Debug, Clone)]
pub struct QuotaGauge {
    state: Arc<Mutex<GaugeState>>,
}

impl QuotaGauge {
    /// A gauge with no use yet.
    pub fn new(limits: QuotaLimits) -> Self {
        Self::with_usage(limits, QuotaUsage::default())
    }

    /// A gauge starting from `usage` (the engine's exact accounting on open).
    pub fn with_usage(limits: QuotaLimits, usage: QuotaUsage) -> Self {
        QuotaGauge {
            state: Arc::new(Mutex::new(GaugeState {
                limits,
                committed: Signed::from_usage(usage),
                reserved: QuotaUsage::default(),
            })),
        }
    }

    /// Replaces the limits. Use above a lowered limit is kept; only new
    /// growth is refused.
    pub fn set_limits(&self, limits: QuotaLimits) {
        self.state.lock().limits = limits;
    }

    /// The limits in force.
    pub fn limits(&self) -> QuotaLimits {
        self.state.lock().limits
    }

    /// Replaces committed use with the engine's exact accounting.
    /// Reservations in flight are unaffected.
    pub fn set_usage(&self, usage: QuotaUsage) {
        self.state.lock().committed = Signed::from_usage(usage);
    }

    /// Committed use.
    pub fn usage(&self) -> QuotaUsage {
        self.state.lock().committed.usage()
    }

    /// Positive amounts reserved but not yet committed or released.
    pub fn reserved(&self) -> QuotaUsage {
        self.state.lock().reserved
    }

    /// Committed use plus reservations in flight, read at one instant: the
    /// amount the limits are checked against.
    pub fn in_use(&self) -> QuotaUsage {
        let state = self.state.lock();
        let committed = state.committed.usage();
        QuotaUsage {
            storage_bytes: committed
                .storage_bytes
                .saturating_add(state.reserved.storage_bytes),
            documents: committed.documents.saturating_add(state.reserved.documents),
            collections: committed
                .collections
                .saturating_add(state.reserved.collections),
        }
    }

    /// Reserves the positive parts of the deltas, or refuses with the first
    /// limit (storage, then documents, then collections) they would pass.
    pub fn reserve(
        &self,
        delta_bytes: i64,
        delta_docs: i64,
        delta_collections: i64,
    ) -> Result<Reservation, QuotaExceeded> {
        let delta = Delta {
            bytes: delta_bytes,
            docs: delta_docs,
            collections: delta_collections,
        };
        let mut state = self.state.lock();
        let (committed, reserved) = (state.committed.usage(), state.reserved);
        state.check(
            QuotaKind::StorageBytes,
            committed.storage_bytes,
            reserved.storage_bytes,
            positive(delta.bytes),
        )?;
        state.check(
            QuotaKind::Documents,
            committed.documents,
            reserved.documents,
            positive(delta.docs),
        )?;
        state.check(
            QuotaKind::Collections,
            committed.collections,
            reserved.collections,
            positive(delta.collections),
        )?;
        let reserved = &mut state.reserved;
        reserved.storage_bytes = reserved.storage_bytes.saturating_add(positive(delta.bytes));
        reserved.documents = reserved.documents.saturating_add(positive(delta.docs));
        reserved.collections = reserved
            .collections
            .saturating_add(positive(delta.collections));
        drop(state);
        Ok(Reservation {
            state: self.state.clone(),
            delta,
            settled: false,
        })
    }
}

/// Amounts held by [`QuotaGauge::reserve`]. Dropping it releases them;
/// [`Reservation::commit`] makes them permanent.
#[derive(Debug)]
#[must_use = "dropping a reservation releases it at once"]
pub struct Reservation {
    state: Arc<Mutex<GaugeState>>,
    delta: Delta,
    settled: bool,
}

impl Reservation {
    /// The reserved deltas: (bytes, documents, collections).
    pub fn deltas(&self) -> (i64, i64, i64) {
        (self.delta.bytes, self.delta.docs, self.delta.collections)
    }

    /// Makes the reservation permanent: positive amounts move from reserved
    /// to committed use, negative amounts are subtracted from committed use
    /// (which reads as zero while a reordered settlement has it below).
    pub fn commit(mut self) {
        let mut state = self.state.lock();
        release(&mut state.reserved, self.delta);
        let d = self.delta;
        state.committed.apply(d.bytes, d.docs, d.collections);
        self.settled = true;
    }

    /// Settles the reservation with the exact deltas the write turned out to
    /// have (from the engine's commit outcome): the reserved amounts are
    /// released and the exact ones applied, under one lock, so no other
    /// reservation can slip in between. The exact positive amounts must not
    /// exceed the reserved ones (the reservation is an upper bound); if a
    /// caller's bound was wrong the exact amounts still win, so the gauge
    /// never drifts from the engine's accounting.
    pub fn commit_exact(mut self, delta_bytes: i64, delta_docs: i64, delta_collections: i64) {
        let mut state = self.state.lock();
        release(&mut state.reserved, self.delta);
        state
            .committed
            .apply(delta_bytes, delta_docs, delta_collections);
        self.settled = true;
    }
}

fn release(reserved: &mut QuotaUsage, delta: Delta) {
    // Saturation never triggers: each reservation adds exactly what it later
    // removes, once.
    reserved.storage_bytes = reserved.storage_bytes.saturating_sub(positive(delta.bytes));
    reserved.documents = reserved.documents.saturating_sub(positive(delta.docs));
    reserved.collections = reserved
        .collections
        .saturating_sub(positive(delta.collections));
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            release(&mut self.state.lock().reserved, self.delta);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (found by the root `stress` test): an insert and the
    /// delete that follows it in the engine can settle in the other order.
    /// Saturating at zero lost the delete and left the gauge one document
    /// (and its bytes) above the engine for good.
    #[test]
    fn settlements_in_another_order_than_the_commits_do_not_drift() {
        let gauge = QuotaGauge::new(QuotaLimits::UNLIMITED);
        let insert = gauge.reserve(100, 1, 0).unwrap();
        let delete = gauge.reserve(0, 0, 0).unwrap();
        delete.commit_exact(-100, -1, 0);
        assert_eq!(gauge.usage(), QuotaUsage::default());
        insert.commit_exact(100, 1, 0);
        assert_eq!(gauge.usage(), QuotaUsage::default());
        assert_eq!(gauge.in_use(), QuotaUsage::default());
    }

    #[test]
    fn override_can_inherit_replace_or_lift_each_limit() {
        let plan = QuotaLimits {
            storage_bytes_max: Some(100),
            documents_max: Some(10),
            collections_max: Some(3),
            ..QuotaLimits::UNLIMITED
        };
        let over = QuotaOverride {
            documents_max: LimitOverride::Limit(20),
            collections_max: LimitOverride::Unlimited,
            query_duration_ms_max: LimitOverride::Limit(500),
            ..QuotaOverride::default()
        };
        let merged = plan.with_override(&over);
        assert_eq!(merged.storage_bytes_max, Some(100));
        assert_eq!(merged.documents_max, Some(20));
        assert_eq!(merged.collections_max, None);
        assert_eq!(merged.query_deadline(), Some(Duration::from_millis(500)));
    }
}
