//! The drain: moves counters into the usage ledger.
//!
//! One background thread per meter waits on a bounded crossbeam channel for
//! requests (flush now, shut down) and otherwise wakes every
//! `flush_interval_ms` to drain. A drain:
//! 1. raises the acceptance watermark to `hour_start(now) - window`;
//! 2. collects partial aggregates from every cell (see `counters`), removing
//!    cells whose hour fell behind the watermark;
//! 3. merges them with any batch a previous drain failed to write, and
//!    upserts the whole batch into the ledger in one atomic call;
//! 4. on failure keeps the batch in memory for the next drain (nothing is
//!    lost while the process lives), on success forgets it;
//! 5. forgets idempotency ids of hours behind the watermark.
//!
//! Loss window on a crash: whatever was recorded since the last successful
//! drain, i.e. at most one `flush_interval_ms` of events (plus the duration
//! of a ledger outage, while batches are retried from memory).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aerolith_core::Clock;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use crate::metering::counters::{Counters, Dedup};
use crate::metering::ledger::{hour_start, LedgerEntry, LedgerError, UsageLedger, HOUR_MS};

/// Capacity of the request channel to the drain thread; a full channel
/// makes `flush` wait rather than queue without bound.
pub const DRAIN_REQUESTS_MAX: usize = 16;

/// What a drain did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlushReport {
    /// Ledger entries upserted.
    pub entries_written: usize,
    /// Cells removed because their hour left the acceptance window.
    pub cells_removed: usize,
    /// Idempotency ids forgotten.
    pub ids_pruned: usize,
}

pub(crate) enum DrainRequest {
    Flush(Sender<Result<FlushReport, LedgerError>>),
    Shutdown(Sender<Result<FlushReport, LedgerError>>),
}

/// State shared by the recording threads and the drain.
pub(crate) struct Shared {
    pub(crate) counters: Counters,
    pub(crate) dedup: Dedup,
    pub(crate) ledger: Arc<dyn UsageLedger>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) window_hours: u32,
    /// A batch a previous drain could not write; also serializes drains.
    pub(crate) pending: Mutex<Vec<LedgerEntry>>,
    /// Periodic drains that failed to write.
    pub(crate) failed_drains: AtomicU64,
}

impl Shared {
    pub(crate) fn watermark(&self, now_unix_ms: i64) -> i64 {
        hour_start(now_unix_ms).saturating_sub(i64::from(self.window_hours) * HOUR_MS)
    }

    /// One drain (see the module docs). `exclusive` is for the final drain
    /// at shutdown.
    pub(crate) fn drain(&self, exclusive: bool) -> Result<FlushReport, LedgerError> {
        let mut pending = self.pending.lock();
        let watermark = self
            .counters
            .raise_oldest_accepted(self.watermark(self.clock.now_unix_ms()));
        let collected = self.counters.collect(watermark, exclusive);
        let batch = merge_batch(std::mem::take(&mut *pending), collected.entries);
        if !batch.is_empty() {
            if let Err(error) = self.ledger.upsert_batch(&batch) {
                *pending = batch;
                return Err(error);
            }
        }
        Ok(FlushReport {
            entries_written: batch.len(),
            cells_removed: collected.cells_removed,
            ids_pruned: self.dedup.prune(watermark),
        })
    }
}

/// Folds entries with the same key so a batch holds each key once; older
/// entries come first, so merge order matches write order.
fn merge_batch(older: Vec<LedgerEntry>, newer: Vec<LedgerEntry>) -> Vec<LedgerEntry> {
    let mut index: HashMap<(String, String, i64), usize> = HashMap::new();
    let mut out: Vec<LedgerEntry> = Vec::with_capacity(older.len() + newer.len());
    for entry in older.into_iter().chain(newer) {
        let key = (
            entry.tenant.clone(),
            entry.metric.clone(),
            entry.hour_start_unix_ms,
        );
        match index.get(&key) {
            Some(&i) => entry.aggregation.merge(&mut out[i], &entry),
            None => {
                index.insert(key, out.len());
                out.push(entry);
            }
        }
    }
    out
}

/// The drain thread's loop.
pub(crate) fn run(shared: Arc<Shared>, requests: Receiver<DrainRequest>, interval: Duration) {
    loop {
        match requests.recv_timeout(interval) {
            Ok(DrainRequest::Flush(reply)) => {
                // The requester may have given up waiting; nothing to do then.
                let _ = reply.send(shared.drain(false));
            }
            Ok(DrainRequest::Shutdown(reply)) => {
                let _ = reply.send(shared.drain(true));
                return;
            }
            Err(RecvTimeoutError::Timeout) => {
                // A failed periodic drain keeps its batch for the next one
                // and is counted; `flush` reports the error itself.
                if shared.drain(false).is_err() {
                    shared.failed_drains.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = shared.drain(true);
                return;
            }
        }
    }
}
