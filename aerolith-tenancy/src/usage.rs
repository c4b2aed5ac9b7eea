//! Usage hooks: every data operation reports a [`UsageEvent`] to a
//! [`UsageSink`]. Metering (aerolith-billing) implements the trait; this
//! crate only defines it, so tenancy never depends on billing.
//!
//! `record` is called on the hot path of every operation: implementations
//! must be cheap and must not block (count into atomics or a bounded queue,
//! persist elsewhere).

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::ids::TenantId;

/// The class of operation, as metered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OperationKind {
    /// A read by id or a listing.
    Read,
    /// An insert, update or delete.
    Write,
    /// A query or count.
    Query,
    /// A management operation (collections, indexes, keys, tenant).
    Admin,
}

/// One operation, as reported to metering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UsageEvent {
    /// The tenant billed.
    pub tenant: TenantId,
    /// What kind of operation.
    pub kind: OperationKind,
    /// Request bytes received.
    pub bytes_in: u64,
    /// Response bytes sent.
    pub bytes_out: u64,
    /// Time spent, in microseconds.
    pub duration_us: u64,
    /// When it happened (Unix ms).
    pub at_unix_ms: i64,
    /// Identifies the operation so a retried report is counted once.
    pub idempotency_id: Option<u128>,
}

/// Receives usage events. Must be cheap and non-blocking.
pub trait UsageSink: Send + Sync {
    /// Records one event.
    fn record(&self, event: UsageEvent);
}

/// Discards every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;

impl UsageSink for NullSink {
    fn record(&self, _event: UsageEvent) {}
}

/// Keeps every event in memory, in arrival order (for tests).
#[derive(Debug, Default)]
pub struct RecordingSink {
    events: Mutex<Vec<UsageEvent>>,
}

impl RecordingSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the events recorded so far.
    pub fn events(&self) -> Vec<UsageEvent> {
        self.events.lock().clone()
    }

    /// Removes and returns the events recorded so far.
    pub fn take(&self) -> Vec<UsageEvent> {
        std::mem::take(&mut *self.events.lock())
    }
}

impl UsageSink for RecordingSink {
    fn record(&self, event: UsageEvent) {
        self.events.lock().push(event);
    }
}

impl<T: UsageSink + ?Sized> UsageSink for std::sync::Arc<T> {
    fn record(&self, event: UsageEvent) {
        (**self).record(event);
    }
}
