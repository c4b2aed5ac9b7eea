//! [`TenantHandle`]: the only way to reach a tenant's data. Every call runs
//! the same admission, in this order: the tenant is live; its status allows
//! the operation (a suspended tenant is read-only); the principal's role
//! allows it; the rate limit (GCRA, from the plan's API calls per hour); a
//! concurrency permit; for writes, a quota reservation of an upper bound of
//! the write's growth, settled with the exact deltas the engine reports (or
//! released on failure). Then the engine call, then one [`UsageEvent`] to
//! the usage sink.
//!
//! **Operator handles** ([`Principal::Operator`], e.g. a backup or restore
//! run by the operator) are the operator's work, not the tenant's calls:
//! they skip the tenant's rate limit and report no [`UsageEvent`], so they
//! are neither throttled by nor billed to the tenant. Everything else still
//! applies to them — the tenant's status, the concurrency permit (the
//! deletion fence) and the quotas (imported data is the tenant's storage).
//! Bulk operator work is audited by its caller
//! ([`crate::Tenancy::audit_data_transfer`]).
//!
//! Collection names are the tenant's own (`[A-Za-z0-9_-]{1,64}`); the
//! handle maps them to engine names and rewrites engine errors back
//! ([`crate::naming`]), so nothing a tenant sees names another tenant.
//!
//! Upper bounds used for reservations (all in encoded JSON bytes, the unit
//! of the engine's `live_bytes`): an insert grows storage by exactly the
//! document's encoding, `_id` included (`WriteBatch::document_bytes`); a
//! replace by at most the new document's encoding; a merge patch
//! by at most the patch's encoding (every byte a patch adds to a document is
//! a byte of the patch); deletes and drops only shrink.

use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aerolith_core::{
    CollectionStats, CommitOutcome, Error as CoreError, Explain, IndexInfo, OpOutcome,
    PendingWrite, Query, WriteBatch,
};
use serde_json::Value;

use crate::concurrency::ConcurrencyPermit;
use crate::error::{EngineError, TenancyError};
use crate::ids::TenantId;
use crate::naming::{sanitize, validate_collection_name};
use crate::quota::{QuotaLimits, QuotaUsage, Reservation};
use crate::registry::{Inner, TenantRuntime};
use crate::role::{Permission, Principal};
use crate::usage::{OperationKind, UsageEvent};

/// Bytes the engine adds around an `_id` it inserts (`"_id":"",`), with room
/// to spare.
const ID_FIELD_OVERHEAD_BYTES: u64 = 16;

/// Most ids returned by one [`TenantHandle::list_ids`] call.
pub const LIST_IDS_LIMIT_MAX: usize = 1000;

/// A principal's access to one tenant's data. Obtained from
/// [`crate::Tenancy::handle`]; cheap to clone.
#[derive(Clone)]
pub struct TenantHandle {
    inner: Arc<Inner>,
    runtime: Arc<TenantRuntime>,
    principal: Principal,
}

impl std::fmt::Debug for TenantHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantHandle")
            .field("tenant", &self.runtime.id)
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

/// An admitted operation: holds the concurrency permit until reported.
struct Admitted {
    _permit: ConcurrencyPermit,
    started: Duration,
    kind: OperationKind,
}

/// A write that passed admission, validation and its quota reservation,
/// ready for the engine.
struct PreparedWrite {
    batch: WriteBatch,
    settlement: Settlement,
}

impl PreparedWrite {
    fn new(
        batch: WriteBatch,
        reservation: Reservation,
        admitted: Admitted,
        operation: &'static str,
        bytes_in: u64,
    ) -> PreparedWrite {
        PreparedWrite {
            batch,
            settlement: Settlement {
                reservation,
                admitted,
                operation,
                bytes_in,
                bytes_out: |_| 0,
            },
        }
    }
}

/// What a write owes once its outcome is known: the quota reservation is
/// settled with the exact deltas the engine reports (or released if the
/// write failed) and a committed write is reported to the usage sink. The
/// concurrency permit is held until then.
struct Settlement {
    reservation: Reservation,
    admitted: Admitted,
    operation: &'static str,
    bytes_in: u64,
    /// Bytes of the answer, from the outcome (a patch answers the document).
    bytes_out: fn(&CommitOutcome) -> u64,
}

impl Settlement {
    fn settle(self, handle: &TenantHandle, result: &Result<CommitOutcome, CoreError>) {
        let Settlement {
            reservation,
            admitted,
            operation,
            bytes_in,
            bytes_out,
        } = self;
        let Ok(outcome) = result else {
            drop(reservation);
            return;
        };
        let (bytes, docs, collections) = reservation.deltas();
        debug_assert!(
            outcome.live_bytes_delta <= bytes.max(0)
                && outcome.documents_delta <= docs.max(0)
                && outcome.collections_delta <= collections.max(0),
            "{operation}: the reservation ({bytes}, {docs}, {collections}) was not an \
             upper bound of the write ({}, {}, {})",
            outcome.live_bytes_delta,
            outcome.documents_delta,
            outcome.collections_delta,
        );
        reservation.commit_exact(
            outcome.live_bytes_delta,
            outcome.documents_delta,
            outcome.collections_delta,
        );
        handle.report(admitted, bytes_in, bytes_out(outcome));
    }
}

/// A tenant write queued for group commit, from the handle's `*_pending`
/// methods: the caller holds no thread while it waits. Await it (it is a
/// `Future`, independent of any async runtime) or [`Self::wait`] for it.
///
/// Dropping it does not cancel the write. Whatever happens to it, the
/// write's quota reservation is settled and its usage reported exactly once,
/// on the committing thread, before its outcome can be seen.
#[must_use = "a pending write commits anyway; await it or wait() to learn its outcome"]
pub struct PendingTenantWrite<T> {
    pending: PendingWrite,
    runtime: Arc<TenantRuntime>,
    operation: &'static str,
    finish: Option<Finish<T>>,
}

/// Turns a pending write's outcome into its answer.
type Finish<T> = Box<dyn FnOnce(CommitOutcome) -> Result<T, TenancyError> + Send>;

impl<T> std::fmt::Debug for PendingTenantWrite<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingTenantWrite")
            .field("tenant", &self.runtime.id)
            .field("operation", &self.operation)
            .finish_non_exhaustive()
    }
}

impl<T> PendingTenantWrite<T> {
    /// Blocks until the write's group is committed (or failed).
    pub fn wait(self) -> Result<T, TenancyError> {
        let PendingTenantWrite {
            pending,
            runtime,
            operation,
            finish,
        } = self;
        let finish = finish.expect("a pending write finishes once");
        conclude(pending.wait(), &runtime.prefix, operation, finish)
    }
}

/// A pending write's answer from the engine's outcome.
fn conclude<T>(
    result: Result<CommitOutcome, CoreError>,
    prefix: &str,
    operation: &'static str,
    finish: impl FnOnce(CommitOutcome) -> Result<T, TenancyError>,
) -> Result<T, TenancyError> {
    match result {
        Ok(outcome) => finish(outcome),
        Err(error) => Err(TenancyError::Engine(sanitize(error, prefix, operation))),
    }
}

impl<T> std::future::Future for PendingTenantWrite<T> {
    type Output = Result<T, TenancyError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match std::pin::Pin::new(&mut self.pending).poll(cx) {
            std::task::Poll::Ready(result) => {
                let finish = self.finish.take().expect("a pending write finishes once");
                let answer = conclude(result, &self.runtime.prefix, self.operation, finish);
                std::task::Poll::Ready(answer)
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

/// The document a patch's outcome carries.
fn patched_document(outcome: CommitOutcome) -> Result<Value, TenancyError> {
    match outcome.ops.into_iter().next() {
        Some(OpOutcome::Patched { doc }) => Ok(doc),
        _ => Err(TenancyError::Engine(EngineError::Unavailable {
            operation: "patch",
        })),
    }
}

/// Whether a delete's outcome found the document.
fn existed(outcome: &CommitOutcome) -> bool {
    matches!(
        outcome.ops.first(),
        Some(OpOutcome::Deleted { existed: true })
    )
}

/// Counts bytes written through it.
struct ByteCounter(u64);

impl Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Passes bytes to `out` and counts them.
struct CountingWriter<'a> {
    out: &'a mut dyn Write,
    bytes: u64,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn encoded_len(value: &Value) -> u64 {
    let mut counter = ByteCounter(0);
    serde_json::to_writer(&mut counter, value).expect("a Value always serializes");
    counter.0
}

fn as_delta(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

impl TenantHandle {
    pub(crate) fn new(
        inner: Arc<Inner>,
        runtime: Arc<TenantRuntime>,
        principal: Principal,
    ) -> Self {
        TenantHandle {
            inner,
            runtime,
            principal,
        }
    }

    /// The tenant this handle reaches.
    pub fn tenant(&self) -> TenantId {
        self.runtime.id
    }

    /// Who is acting.
    pub fn principal(&self) -> Principal {
        self.principal
    }

    /// The tenant's effective limits (plan with override).
    pub fn limits(&self) -> QuotaLimits {
        self.runtime.state.read().limits
    }

    /// Use counted against the quotas, including reservations in flight.
    pub fn quota_in_use(&self) -> QuotaUsage {
        self.runtime.gauge.in_use()
    }

    /// Committed use only (no reservations in flight): exactly what the
    /// engine holds for the tenant after its acknowledged writes. Like
    /// [`Self::quota_in_use`] it is a read of in-memory counters: no
    /// permission, rate limit or usage event is involved, so an operator's
    /// storage sampling is neither throttled nor billed as an API call.
    pub fn quota_committed(&self) -> QuotaUsage {
        self.runtime.gauge.usage()
    }

    fn admit(&self, permission: Permission, kind: OperationKind) -> Result<Admitted, TenancyError> {
        let runtime = &self.runtime;
        let tenant = runtime.id;
        if runtime.deleted.load(Ordering::Acquire) {
            return Err(TenancyError::TenantNotFound { tenant });
        }
        let status = runtime.state.read().status;
        status.check(tenant, permission)?;
        self.principal.authorize(tenant, permission)?;
        let started = self.inner.clock.monotonic();
        if self.principal != Principal::Operator {
            self.inner.rate.check(tenant, started)?;
        }
        let permit = self.inner.concurrency.acquire(tenant)?;
        // Pairs with the fence in `Tenancy::delete_tenant`: either deletion
        // sees this permit in flight and waits for it, or this call sees the
        // tenant deleted.
        std::sync::atomic::fence(Ordering::SeqCst);
        if runtime.deleted.load(Ordering::Relaxed) {
            return Err(TenancyError::TenantNotFound { tenant });
        }
        Ok(Admitted {
            _permit: permit,
            started,
            kind,
        })
    }

    fn report(&self, admitted: Admitted, bytes_in: u64, bytes_out: u64) {
        if self.principal == Principal::Operator {
            return; // the operator's work, not the tenant's usage
        }
        let clock = &self.inner.clock;
        let elapsed = clock.monotonic().saturating_sub(admitted.started);
        self.inner.usage_sink.record(UsageEvent {
            tenant: self.runtime.id,
            kind: admitted.kind,
            bytes_in,
            bytes_out,
            duration_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            at_unix_ms: clock.now_unix_ms(),
            idempotency_id: None,
        });
    }

    /// The engine name of a tenant collection, after checking the name.
    fn internal<'a>(&self, name: &'a str) -> Result<Cow<'a, str>, TenancyError> {
        validate_collection_name(name)?;
        let prefix = &self.runtime.prefix;
        if prefix.is_empty() {
            return Ok(Cow::Borrowed(name));
        }
        let mut internal = String::with_capacity(prefix.len() + name.len());
        internal.push_str(prefix);
        internal.push_str(name);
        Ok(Cow::Owned(internal))
    }

    fn engine_error(&self, error: CoreError, operation: &'static str) -> TenancyError {
        TenancyError::Engine(sanitize(error, &self.runtime.prefix, operation))
    }

    fn reserve(
        &self,
        bytes: i64,
        docs: i64,
        collections: i64,
    ) -> Result<Reservation, TenancyError> {
        Ok(self.runtime.gauge.reserve(bytes, docs, collections)?)
    }

    /// Commits a prepared write now, blocking this thread.
    fn commit_now(&self, write: PreparedWrite) -> Result<CommitOutcome, TenancyError> {
        let PreparedWrite { batch, settlement } = write;
        let operation = settlement.operation;
        let result = self.runtime.engine.write(batch);
        settlement.settle(self, &result);
        conclude(result, &self.runtime.prefix, operation, Ok)
    }

    /// Queues a prepared write for group commit (see [`PendingTenantWrite`]).
    /// Its settlement runs with the outcome on the committing thread, so a
    /// dropped `PendingTenantWrite` still settles its quota and reports its
    /// usage exactly once.
    fn commit_later<T>(
        &self,
        write: PreparedWrite,
        finish: impl FnOnce(CommitOutcome) -> Result<T, TenancyError> + Send + 'static,
    ) -> PendingTenantWrite<T> {
        let PreparedWrite { batch, settlement } = write;
        let operation = settlement.operation;
        let handle = self.clone();
        let pending = self
            .runtime
            .engine
            .write_pending_with(batch, move |result| settlement.settle(&handle, result));
        PendingTenantWrite {
            pending,
            runtime: Arc::clone(&self.runtime),
            operation,
            finish: Some(Box::new(finish)),
        }
    }

    fn batch_error(&self, error: CoreError, operation: &'static str) -> TenancyError {
        self.engine_error(error, operation)
    }

    // ---- collections ----

    /// Creates a collection (counts against the collections quota).
    pub fn create_collection(&self, name: &str) -> Result<(), TenancyError> {
        let admitted = self.admit(Permission::ManageCollections, OperationKind::Admin)?;
        let internal = self.internal(name)?;
        let mut batch = WriteBatch::new();
        batch
            .create_collection(&internal)
            .map_err(|e| self.batch_error(e, "create collection"))?;
        let mut names = self.runtime.collections.lock();
        let reservation = self.reserve(0, 0, 1)?;
        let write = PreparedWrite::new(batch, reservation, admitted, "create collection", 0);
        self.commit_now(write)?;
        names.insert(name.to_owned());
        Ok(())
    }

    /// Drops a collection and all its documents.
    pub fn drop_collection(&self, name: &str) -> Result<(), TenancyError> {
        let admitted = self.admit(Permission::ManageCollections, OperationKind::Admin)?;
        let internal = self.internal(name)?;
        let mut batch = WriteBatch::new();
        batch
            .drop_collection(&internal)
            .map_err(|e| self.batch_error(e, "drop collection"))?;
        let mut names = self.runtime.collections.lock();
        let reservation = self.reserve(0, 0, 0)?;
        let write = PreparedWrite::new(batch, reservation, admitted, "drop collection", 0);
        self.commit_now(write)?;
        names.remove(name);
        Ok(())
    }

    fn own_collections(&self) -> Vec<String> {
        self.runtime.collections.lock().iter().cloned().collect()
    }

    /// The tenant's collections, sorted.
    pub fn list_collections(&self) -> Result<Vec<String>, TenancyError> {
        let admitted = self.admit(Permission::ReadDocuments, OperationKind::Read)?;
        let names = self.own_collections();
        self.report(admitted, 0, names.iter().map(|n| n.len() as u64).sum());
        Ok(names)
    }

    /// Exact accounting of one collection.
    pub fn collection_stats(&self, name: &str) -> Result<CollectionStats, TenancyError> {
        let admitted = self.admit(Permission::ReadDocuments, OperationKind::Read)?;
        let internal = self.internal(name)?;
        let stats = self
            .runtime
            .engine
            .collection_stats(&internal)
            .map_err(|e| self.engine_error(e, "collection stats"))?;
        self.report(admitted, 0, 0);
        Ok(stats)
    }

    /// The tenant's storage use, exact from the engine's accounting.
    pub fn usage(&self) -> Result<QuotaUsage, TenancyError> {
        let admitted = self.admit(Permission::ReadUsage, OperationKind::Read)?;
        // Holding the names keeps creates and drops out while we add up.
        let names = self.runtime.collections.lock();
        let snapshot = self.runtime.engine.snapshot();
        let mut usage = QuotaUsage::default();
        for name in names.iter() {
            let stats = snapshot
                .collection_stats(&format!("{}{name}", self.runtime.prefix))
                .map_err(|e| self.engine_error(e, "usage"))?;
            usage.storage_bytes += stats.live_bytes;
            usage.documents += stats.documents;
            usage.collections += 1;
        }
        drop(names);
        self.report(admitted, 0, 0);
        Ok(usage)
    }

    // ---- documents ----

    /// Inserts a document (an `_id` is generated if missing); returns its id.
    pub fn insert(&self, collection: &str, doc: Value) -> Result<String, TenancyError> {
        let (write, id) = self.prepare_insert(collection, doc)?;
        self.commit_now(write)?;
        Ok(id)
    }

    /// [`Self::insert`] without blocking: admission, validation and the
    /// quota reservation happen now (their errors are returned now), the
    /// commit with its group later (see [`PendingTenantWrite`]).
    pub fn insert_pending(
        &self,
        collection: &str,
        doc: Value,
    ) -> Result<PendingTenantWrite<String>, TenancyError> {
        let (write, id) = self.prepare_insert(collection, doc)?;
        Ok(self.commit_later(write, move |_| Ok(id)))
    }

    fn prepare_insert(
        &self,
        collection: &str,
        doc: Value,
    ) -> Result<(PreparedWrite, String), TenancyError> {
        let admitted = self.admit(Permission::WriteDocuments, OperationKind::Write)?;
        let internal = self.internal(collection)?;
        let mut batch = WriteBatch::new();
        let id = batch
            .insert(&internal, doc)
            .map_err(|e| self.batch_error(e, "insert"))?;
        // Exactly the stored size, `_id` included.
        let bytes = batch.document_bytes();
        let reservation = self.reserve(as_delta(bytes), 1, 0)?;
        let write = PreparedWrite::new(batch, reservation, admitted, "insert", bytes);
        Ok((write, id))
    }

    /// Inserts documents atomically: all or none.
    pub fn insert_many(
        &self,
        collection: &str,
        docs: Vec<Value>,
    ) -> Result<Vec<String>, TenancyError> {
        let (write, ids) = self.prepare_insert_many(collection, docs)?;
        self.commit_now(write)?;
        Ok(ids)
    }

    /// [`Self::insert_many`] without blocking (see [`Self::insert_pending`]).
    pub fn insert_many_pending(
        &self,
        collection: &str,
        docs: Vec<Value>,
    ) -> Result<PendingTenantWrite<Vec<String>>, TenancyError> {
        let (write, ids) = self.prepare_insert_many(collection, docs)?;
        Ok(self.commit_later(write, move |_| Ok(ids)))
    }

    fn prepare_insert_many(
        &self,
        collection: &str,
        docs: Vec<Value>,
    ) -> Result<(PreparedWrite, Vec<String>), TenancyError> {
        let admitted = self.admit(Permission::WriteDocuments, OperationKind::Write)?;
        let internal = self.internal(collection)?;
        let mut batch = WriteBatch::new();
        let mut ids = Vec::with_capacity(docs.len());
        let count = docs.len();
        for doc in docs {
            ids.push(
                batch
                    .insert(&internal, doc)
                    .map_err(|e| self.batch_error(e, "insert many"))?,
            );
        }
        let bytes = batch.document_bytes();
        let reservation = self.reserve(as_delta(bytes), as_delta(count as u64), 0)?;
        let write = PreparedWrite::new(batch, reservation, admitted, "insert many", bytes);
        Ok((write, ids))
    }

    /// The document with this id, if any.
    pub fn get(&self, collection: &str, id: &str) -> Result<Option<Value>, TenancyError> {
        let admitted = self.admit(Permission::ReadDocuments, OperationKind::Read)?;
        let internal = self.internal(collection)?;
        let doc = self
            .runtime
            .engine
            .get(&internal, id)
            .map_err(|e| self.engine_error(e, "get"))?;
        let bytes_out = doc.as_ref().map_or(0, encoded_len);
        self.report(admitted, 0, bytes_out);
        Ok(doc)
    }

    /// The document with this id as its stored JSON text, if any: the bytes
    /// `serde_json::to_vec` of [`Self::get`]'s document gives, without
    /// parsing them. Admitted, metered and reported exactly like a get.
    pub fn get_json_bytes(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>, TenancyError> {
        let admitted = self.admit(Permission::ReadDocuments, OperationKind::Read)?;
        let internal = self.internal(collection)?;
        let doc = self
            .runtime
            .engine
            .get_json_bytes(&internal, id)
            .map_err(|e| self.engine_error(e, "get"))?;
        let bytes_out = doc.as_ref().map_or(0, |bytes| bytes.len() as u64);
        self.report(admitted, 0, bytes_out);
        Ok(doc)
    }

    /// Replaces the document with this id (it must exist).
    pub fn replace(&self, collection: &str, id: &str, doc: Value) -> Result<(), TenancyError> {
        let write = self.prepare_replace(collection, id, doc)?;
        self.commit_now(write).map(drop)
    }

    /// [`Self::replace`] without blocking (see [`Self::insert_pending`]).
    pub fn replace_pending(
        &self,
        collection: &str,
        id: &str,
        doc: Value,
    ) -> Result<PendingTenantWrite<()>, TenancyError> {
        let write = self.prepare_replace(collection, id, doc)?;
        Ok(self.commit_later(write, |_| Ok(())))
    }

    fn prepare_replace(
        &self,
        collection: &str,
        id: &str,
        doc: Value,
    ) -> Result<PreparedWrite, TenancyError> {
        let admitted = self.admit(Permission::WriteDocuments, OperationKind::Write)?;
        let internal = self.internal(collection)?;
        let bytes = encoded_len(&doc);
        let mut batch = WriteBatch::new();
        batch
            .replace(&internal, id, doc)
            .map_err(|e| self.batch_error(e, "replace"))?;
        // The `_id` the engine may add is at most as long as the id given.
        let bound = bytes.saturating_add(id.len() as u64 + ID_FIELD_OVERHEAD_BYTES);
        let reservation = self.reserve(as_delta(bound), 0, 0)?;
        Ok(PreparedWrite::new(
            batch,
            reservation,
            admitted,
            "replace",
            bytes,
        ))
    }

    /// Applies an RFC 7386 merge patch; returns the patched document.
    pub fn patch(&self, collection: &str, id: &str, patch: Value) -> Result<Value, TenancyError> {
        let write = self.prepare_patch(collection, id, patch)?;
        patched_document(self.commit_now(write)?)
    }

    /// [`Self::patch`] without blocking (see [`Self::insert_pending`]).
    pub fn patch_pending(
        &self,
        collection: &str,
        id: &str,
        patch: Value,
    ) -> Result<PendingTenantWrite<Value>, TenancyError> {
        let write = self.prepare_patch(collection, id, patch)?;
        Ok(self.commit_later(write, patched_document))
    }

    fn prepare_patch(
        &self,
        collection: &str,
        id: &str,
        patch: Value,
    ) -> Result<PreparedWrite, TenancyError> {
        let admitted = self.admit(Permission::WriteDocuments, OperationKind::Write)?;
        let internal = self.internal(collection)?;
        let bytes = encoded_len(&patch);
        let mut batch = WriteBatch::new();
        batch
            .patch(&internal, id, patch)
            .map_err(|e| self.batch_error(e, "patch"))?;
        let reservation = self.reserve(as_delta(bytes), 0, 0)?;
        let mut write = PreparedWrite::new(batch, reservation, admitted, "patch", bytes);
        // The patched document is the answer.
        write.settlement.bytes_out = |outcome| match outcome.ops.first() {
            Some(OpOutcome::Patched { doc }) => encoded_len(doc),
            _ => 0,
        };
        Ok(write)
    }

    /// Deletes a document; returns whether it existed.
    pub fn delete(&self, collection: &str, id: &str) -> Result<bool, TenancyError> {
        let write = self.prepare_delete(collection, id)?;
        Ok(existed(&self.commit_now(write)?))
    }

    /// [`Self::delete`] without blocking (see [`Self::insert_pending`]).
    pub fn delete_pending(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<PendingTenantWrite<bool>, TenancyError> {
        let write = self.prepare_delete(collection, id)?;
        Ok(self.commit_later(write, |outcome| Ok(existed(&outcome))))
    }

    fn prepare_delete(&self, collection: &str, id: &str) -> Result<PreparedWrite, TenancyError> {
        let admitted = self.admit(Permission::WriteDocuments, OperationKind::Write)?;
        let internal = self.internal(collection)?;
        let mut batch = WriteBatch::new();
        batch
            .delete(&internal, id)
            .map_err(|e| self.batch_error(e, "delete"))?;
        let reservation = self.reserve(0, 0, 0)?;
        Ok(PreparedWrite::new(
            batch,
            reservation,
            admitted,
            "delete",
            0,
        ))
    }

    /// Up to `limit` (1..=[`LIST_IDS_LIMIT_MAX`]) ids in id order after `after`.
    pub fn list_ids(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, TenancyError> {
        let admitted = self.admit(Permission::ReadDocuments, OperationKind::Read)?;
        if limit == 0 || limit > LIST_IDS_LIMIT_MAX {
            return Err(TenancyError::InvalidPageSize {
                requested: limit,
                max: LIST_IDS_LIMIT_MAX,
            });
        }
        let internal = self.internal(collection)?;
        let ids = self
            .runtime
            .engine
            .snapshot()
            .list_ids(&internal, after, limit)
            .map_err(|e| self.engine_error(e, "list ids"))?;
        self.report(admitted, 0, ids.iter().map(|id| id.len() as u64).sum());
        Ok(ids)
    }

    // ---- queries ----

    /// `query` with its time budget capped by the plan's query duration.
    fn budgeted(&self, query: &Query) -> Query {
        let mut query = query.clone();
        if let Some(deadline) = self.runtime.state.read().limits.query_deadline() {
            query.time_budget = Some(query.time_budget.map_or(deadline, |own| own.min(deadline)));
        }
        query
    }

    /// Runs a query.
    pub fn find(&self, collection: &str, query: &Query) -> Result<Vec<Value>, TenancyError> {
        let admitted = self.admit(Permission::Query, OperationKind::Query)?;
        let internal = self.internal(collection)?;
        let docs = self
            .runtime
            .engine
            .find(&internal, &self.budgeted(query))
            .map_err(|e| self.engine_error(e, "find"))?;
        self.report(admitted, 0, docs.iter().map(encoded_len).sum());
        Ok(docs)
    }

    /// Counts the documents matching a query.
    pub fn count(&self, collection: &str, query: &Query) -> Result<u64, TenancyError> {
        let admitted = self.admit(Permission::Query, OperationKind::Query)?;
        let internal = self.internal(collection)?;
        let n = self
            .runtime
            .engine
            .count(&internal, &self.budgeted(query))
            .map_err(|e| self.engine_error(e, "count"))?;
        self.report(admitted, 0, 0);
        Ok(n)
    }

    /// Runs a query and says how it was executed.
    pub fn explain(&self, collection: &str, query: &Query) -> Result<Explain, TenancyError> {
        let admitted = self.admit(Permission::Query, OperationKind::Query)?;
        let internal = self.internal(collection)?;
        let explain = self
            .runtime
            .engine
            .explain(&internal, &self.budgeted(query))
            .map_err(|e| self.engine_error(e, "explain"))?;
        self.report(admitted, 0, 0);
        Ok(explain)
    }

    // ---- indexes ----

    /// Creates a secondary index on `path`.
    pub fn create_index(
        &self,
        collection: &str,
        path: &str,
        unique: bool,
    ) -> Result<(), TenancyError> {
        let admitted = self.admit(Permission::ManageIndexes, OperationKind::Admin)?;
        let internal = self.internal(collection)?;
        self.runtime
            .engine
            .create_index(&internal, path, unique)
            .map_err(|e| self.engine_error(e, "create index"))?;
        self.report(admitted, 0, 0);
        Ok(())
    }

    /// The indexes of a collection.
    pub fn list_indexes(&self, collection: &str) -> Result<Vec<IndexInfo>, TenancyError> {
        let admitted = self.admit(Permission::ReadDocuments, OperationKind::Read)?;
        let internal = self.internal(collection)?;
        let indexes = self
            .runtime
            .engine
            .list_indexes(&internal)
            .map_err(|e| self.engine_error(e, "list indexes"))?;
        self.report(admitted, 0, 0);
        Ok(indexes)
    }

    /// Drops the index on `path`.
    pub fn drop_index(&self, collection: &str, path: &str) -> Result<(), TenancyError> {
        let admitted = self.admit(Permission::ManageIndexes, OperationKind::Admin)?;
        let internal = self.internal(collection)?;
        self.runtime
            .engine
            .drop_index(&internal, path)
            .map_err(|e| self.engine_error(e, "drop index"))?;
        self.report(admitted, 0, 0);
        Ok(())
    }

    // ---- export ----

    /// Writes every document of a collection as JSON Lines; returns the
    /// number of documents.
    pub fn export_jsonl(&self, collection: &str, out: &mut dyn Write) -> Result<u64, TenancyError> {
        let admitted = self.admit(Permission::ReadDocuments, OperationKind::Read)?;
        let internal = self.internal(collection)?;
        let mut counting = CountingWriter { out, bytes: 0 };
        let n = self
            .runtime
            .engine
            .export_jsonl(&internal, &mut counting)
            .map_err(|e| self.engine_error(e, "export"))?;
        let bytes = counting.bytes;
        self.report(admitted, 0, bytes);
        Ok(n)
    }
}
