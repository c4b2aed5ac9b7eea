//! Usage metering: counting every billable operation per tenant, exactly
//! once, and persisting hourly aggregates to a usage ledger.
//!
//! - [`Meter::record`] is the hot path: a lookup and an atomic update in a
//!   per-(tenant, metric, hour) cell (see `counters`); no global lock and no
//!   allocation once the cell exists.
//! - Events carrying an idempotency id are counted once even if delivered
//!   twice. Ids are remembered for the acceptance window
//!   ([`MeterConfig::window_hours`], default 2): the current hour and the
//!   `window_hours` before it. Events older than the window are refused with
//!   [`MeterError::TooLate`], so a redelivery can never slip past a
//!   forgotten id.
//! - A background thread drains counters into a [`UsageLedger`] every
//!   [`MeterConfig::flush_interval_ms`], on [`Meter::flush`], and on
//!   [`Meter::shutdown`], which loses nothing (see `pipeline` for the crash
//!   loss window).
//! - `Meter` implements tenancy's [`UsageSink`](aerolith_tenancy::UsageSink),
//!   so every data operation is metered (see [`TenantKey`] for how a
//!   `TenantId` names its counters).
//! - [`StorageIntegrator`] turns storage size changes into byte-milliseconds
//!   and GB-months.
//! - [`period_to_date`] and [`usage_history`] answer usage queries.

mod billable;
mod counters;
mod engine_ledger;
mod ledger;
mod pipeline;
mod sink;
mod storage;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use aerolith_core::Clock;
use crossbeam_channel::Sender;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

pub use billable::{
    billable_usage, BillableQuantity, BillableUsageError, BILLED_API_CALL_METRICS,
    COMPUTE_HOURS_DECIMALS, MICROSECONDS_PER_HOUR, STORAGE_GB_MONTH_DECIMALS,
};
pub use counters::SHARD_COUNT;
pub use engine_ledger::{EngineLedger, LEDGER_COLLECTION};
pub use ledger::{
    hour_start, period_to_date, usage_history, Aggregation, Granularity, InMemoryLedger,
    LedgerEntry, LedgerError, UsageBucket, UsageLedger, HOUR_MS,
};
pub use pipeline::{FlushReport, DRAIN_REQUESTS_MAX};
pub use sink::TenantKey;
pub use storage::{
    gb_months, StorageError, StorageIntegrator, StorageTrack, BYTES_PER_GB, GB_MONTH_DECIMALS_MAX,
};

use counters::{AddRefusal, Counters, Dedup, DedupOutcome};
use pipeline::{DrainRequest, Shared};

/// Reads through the data API.
pub const API_CALLS_READ: &str = "api_calls.read";
/// Writes through the data API.
pub const API_CALLS_WRITE: &str = "api_calls.write";
/// Queries through the data API.
pub const API_CALLS_QUERY: &str = "api_calls.query";
/// Administrative calls.
pub const API_CALLS_ADMIN: &str = "api_calls.admin";
/// Calls of an operation kind this crate does not know yet (tenancy's
/// `OperationKind` is non-exhaustive).
pub const API_CALLS_OTHER: &str = "api_calls.other";
/// Query time, microseconds.
pub const COMPUTE_US: &str = "compute_us";
/// Request bytes received.
pub const BANDWIDTH_IN_BYTES: &str = "bandwidth_in_bytes";
/// Response bytes sent.
pub const BANDWIDTH_OUT_BYTES: &str = "bandwidth_out_bytes";
/// Stored bytes integrated over time, byte-seconds, attributed to the hour
/// in which they were stored (storage is billed in GB-months from this).
pub const STORAGE_BYTE_SECONDS: &str = "storage_byte_seconds";

/// Longest tenant or metric name accepted, in bytes.
pub const NAME_BYTES_MAX: usize = 128;
/// Largest acceptance window, in hours.
pub const WINDOW_HOURS_MAX: u32 = 48;

/// A metric the meter accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricDef {
    /// The metric's name.
    pub name: String,
    /// How its events combine.
    pub aggregation: Aggregation,
}

/// Meter settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterConfig {
    /// Accepted metrics; [`MeterConfig::default`] has the built-in ones
    /// (api calls by kind, compute, bandwidth; all sums). Add custom metrics
    /// here.
    pub metrics: Vec<MetricDef>,
    /// How often the drain runs, milliseconds: the bound on what a crash
    /// loses.
    pub flush_interval_ms: u64,
    /// Hours before the current one in which events are still accepted and
    /// idempotency ids remembered.
    pub window_hours: u32,
    /// Most idempotency ids remembered at once; beyond it events with ids
    /// are refused ([`MeterError::DedupFull`]) until the window moves on.
    pub dedup_ids_max: usize,
    /// Most live counter cells (tenant x metric x hour).
    pub cells_max: usize,
}

impl Default for MeterConfig {
    fn default() -> Self {
        let sum = |name: &str| MetricDef {
            name: name.to_owned(),
            aggregation: Aggregation::Sum,
        };
        MeterConfig {
            metrics: [
                API_CALLS_READ,
                API_CALLS_WRITE,
                API_CALLS_QUERY,
                API_CALLS_ADMIN,
                API_CALLS_OTHER,
                COMPUTE_US,
                BANDWIDTH_IN_BYTES,
                BANDWIDTH_OUT_BYTES,
                STORAGE_BYTE_SECONDS,
            ]
            .into_iter()
            .map(sum)
            .collect(),
            flush_interval_ms: 1_000,
            window_hours: 2,
            dedup_ids_max: 10_000_000,
            cells_max: 1_000_000,
        }
    }
}

/// Why an event was not counted or a meter not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MeterError {
    /// The metric is not in the meter's configuration.
    #[error("unknown metric {metric}")]
    UnknownMetric {
        /// The metric.
        metric: String,
    },
    /// The event's hour is older than the acceptance window.
    #[error(
        "event at {at_unix_ms} is older than the window starting at {oldest_accepted_unix_ms}"
    )]
    TooLate {
        /// The event's time.
        at_unix_ms: i64,
        /// Start of the oldest accepted hour.
        oldest_accepted_unix_ms: i64,
    },
    /// The idempotency id store is full.
    #[error("idempotency store full ({ids_max} ids)")]
    DedupFull {
        /// The configured limit.
        ids_max: usize,
    },
    /// The counter cell limit is reached.
    #[error("counter cell limit of {cells_max} reached")]
    CellLimit {
        /// The configured limit.
        cells_max: usize,
    },
    /// A tenant or metric name is empty or longer than [`NAME_BYTES_MAX`]
    /// (tenant names are checked when their first cell is created).
    #[error("name of {len_bytes} bytes is outside 1..={max}", max = NAME_BYTES_MAX)]
    InvalidName {
        /// The name's length.
        len_bytes: usize,
    },
    /// The configuration is invalid.
    #[error("invalid meter configuration: {problem}")]
    InvalidConfig {
        /// What is wrong.
        problem: &'static str,
    },
    /// The meter was shut down.
    #[error("meter is shut down")]
    ShutDown,
    /// The drain could not write to the ledger; the batch is kept and
    /// retried by the next drain.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Whether an event was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Counted.
    Counted,
    /// Its idempotency id was seen before; not counted again.
    Duplicate,
}

/// The usage meter: counters plus their drain thread.
pub struct Meter {
    shared: Arc<Shared>,
    requests: Sender<DrainRequest>,
    thread: Mutex<Option<JoinHandle<()>>>,
    dedup_ids_max: usize,
    cells_max: usize,
    /// Events the `UsageSink` path could not count (it cannot return errors).
    dropped_events: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("cells", &self.shared.counters.cell_count())
            .field("dedup_ids", &self.shared.dedup.len())
            .finish_non_exhaustive()
    }
}

fn check_name(name: &str) -> Result<(), MeterError> {
    if name.is_empty() || name.len() > NAME_BYTES_MAX {
        return Err(MeterError::InvalidName {
            len_bytes: name.len(),
        });
    }
    Ok(())
}

impl Meter {
    /// Starts a meter writing to `ledger`, with its drain thread.
    pub fn start(
        config: MeterConfig,
        ledger: Arc<dyn UsageLedger>,
        clock: Arc<dyn Clock>,
    ) -> Result<Meter, MeterError> {
        if config.window_hours > WINDOW_HOURS_MAX {
            return Err(MeterError::InvalidConfig {
                problem: "window_hours exceeds WINDOW_HOURS_MAX",
            });
        }
        if config.flush_interval_ms == 0 {
            return Err(MeterError::InvalidConfig {
                problem: "flush_interval_ms is zero",
            });
        }
        let mut metrics = HashMap::new();
        for def in &config.metrics {
            check_name(&def.name)?;
            if metrics.insert(def.name.clone(), def.aggregation).is_some() {
                return Err(MeterError::InvalidConfig {
                    problem: "a metric is defined twice",
                });
            }
        }
        let shared = Arc::new(Shared {
            counters: Counters::new(metrics, i64::MIN, config.cells_max),
            dedup: Dedup::new(config.dedup_ids_max),
            ledger,
            clock,
            window_hours: config.window_hours,
            pending: Mutex::new(Vec::new()),
            failed_drains: std::sync::atomic::AtomicU64::new(0),
        });
        let now = shared.clock.now_unix_ms();
        shared.counters.raise_oldest_accepted(shared.watermark(now));
        let (requests, receiver) = crossbeam_channel::bounded(DRAIN_REQUESTS_MAX);
        let interval = Duration::from_millis(config.flush_interval_ms);
        let drain_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("aerolith-meter-drain".into())
            .spawn(move || pipeline::run(drain_shared, receiver, interval))
            .map_err(|_| MeterError::InvalidConfig {
                problem: "could not spawn the drain thread",
            })?;
        Ok(Meter {
            shared,
            requests,
            thread: Mutex::new(Some(thread)),
            dedup_ids_max: config.dedup_ids_max,
            cells_max: config.cells_max,
            dropped_events: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Records `quantity` of `metric` used by `tenant` at `at_unix_ms`.
    ///
    /// With an `idempotency_id`, a second delivery of the same id inside the
    /// acceptance window returns [`RecordOutcome::Duplicate`] and counts
    /// nothing.
    #[inline]
    pub fn record(
        &self,
        tenant: &str,
        metric: &str,
        quantity: u64,
        at_unix_ms: i64,
        idempotency_id: Option<u128>,
    ) -> Result<RecordOutcome, MeterError> {
        let counters = &self.shared.counters;
        let hour = hour_start(at_unix_ms);
        if let Some(id) = idempotency_id {
            // Checks before the id is remembered, so a refused event does
            // not make its redelivery look like a duplicate.
            if counters.is_closed() {
                return Err(MeterError::ShutDown);
            }
            let oldest_accepted_unix_ms = counters.oldest_accepted_unix_ms();
            if hour < oldest_accepted_unix_ms {
                return Err(MeterError::TooLate {
                    at_unix_ms,
                    oldest_accepted_unix_ms,
                });
            }
            if counters.aggregation(metric).is_none() {
                return Err(MeterError::UnknownMetric {
                    metric: metric.to_owned(),
                });
            }
            match self.shared.dedup.offer(id, hour) {
                DedupOutcome::New => {}
                DedupOutcome::Duplicate => return Ok(RecordOutcome::Duplicate),
                DedupOutcome::Full => {
                    return Err(MeterError::DedupFull {
                        ids_max: self.dedup_ids_max,
                    })
                }
            }
        }
        match counters.add(tenant, metric, quantity, at_unix_ms) {
            Ok(()) => Ok(RecordOutcome::Counted),
            Err(refusal) => {
                if let Some(id) = idempotency_id {
                    self.shared.dedup.forget(id, hour);
                }
                Err(self.refusal_error(refusal, metric, at_unix_ms))
            }
        }
    }

    #[cold]
    fn refusal_error(&self, refusal: AddRefusal, metric: &str, at_unix_ms: i64) -> MeterError {
        match refusal {
            AddRefusal::TooLate {
                oldest_accepted_unix_ms,
            } => MeterError::TooLate {
                at_unix_ms,
                oldest_accepted_unix_ms,
            },
            AddRefusal::Closed => MeterError::ShutDown,
            AddRefusal::UnknownMetric => MeterError::UnknownMetric {
                metric: metric.to_owned(),
            },
            AddRefusal::InvalidName { len_bytes } => MeterError::InvalidName { len_bytes },
            AddRefusal::CellLimit => MeterError::CellLimit {
                cells_max: self.cells_max,
            },
        }
    }

    fn request(
        &self,
        make: impl FnOnce(Sender<Result<FlushReport, LedgerError>>) -> DrainRequest,
    ) -> Result<FlushReport, MeterError> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.requests
            .send(make(reply))
            .map_err(|_| MeterError::ShutDown)?;
        Ok(answer.recv().map_err(|_| MeterError::ShutDown)??)
    }

    /// Drains every counter into the ledger now and waits for the write.
    pub fn flush(&self) -> Result<FlushReport, MeterError> {
        if self.shared.counters.is_closed() {
            return Err(MeterError::ShutDown);
        }
        self.request(DrainRequest::Flush)
    }

    /// Stops accepting events, drains everything into the ledger and joins
    /// the drain thread. Events recorded before `shutdown` was called are
    /// all in the ledger when it returns `Ok`. If the final write fails, the
    /// batch stays in memory and [`Meter::retry_final_flush`] can retry it.
    pub fn shutdown(&self) -> Result<FlushReport, MeterError> {
        let Some(thread) = self.thread.lock().take() else {
            return Err(MeterError::ShutDown);
        };
        self.shared.counters.close();
        let result = self.request(DrainRequest::Shutdown);
        // The thread exits right after answering; a panic in it would
        // already have failed the request.
        let _ = thread.join();
        result
    }

    /// After a failed shutdown, retries writing what is still held.
    pub fn retry_final_flush(&self) -> Result<FlushReport, MeterError> {
        if self.thread.lock().is_some() {
            return self.flush();
        }
        Ok(self.shared.drain(true)?)
    }

    /// Usage of each of `metrics` by `tenant` from `period_start_unix_ms` to
    /// now (per the meter's clock), including events not yet drained: the
    /// meter flushes first, then reads the ledger.
    pub fn usage_to_date(
        &self,
        tenant: &str,
        metrics: &[&str],
        period_start_unix_ms: i64,
    ) -> Result<Vec<(String, u64)>, MeterError> {
        self.flush()?;
        let now_unix_ms = self.shared.clock.now_unix_ms();
        Ok(period_to_date(
            self.shared.ledger.as_ref(),
            tenant,
            metrics,
            period_start_unix_ms,
            now_unix_ms,
        )?)
    }

    /// Number of periodic drains that failed to write (their batches were
    /// kept and retried).
    pub fn failed_drains(&self) -> u64 {
        self.shared.failed_drains.load(Ordering::Relaxed)
    }

    /// Metric updates that arrived through the `UsageSink` hook and were
    /// refused (too late, a limit, shut down); that hook cannot return
    /// errors, so they are counted here for monitoring.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events.load(Ordering::Relaxed)
    }

    /// Number of live counter cells.
    pub fn cell_count(&self) -> usize {
        self.shared.counters.cell_count()
    }

    /// Number of idempotency ids remembered.
    pub fn dedup_id_count(&self) -> usize {
        self.shared.dedup.len()
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if self.thread.lock().is_some() {
            // Best effort: a meter dropped without shutdown still flushes.
            let _ = self.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerolith_core::ManualClock;

    // 2024-05-01T10:00:00Z
    const T0: i64 = 1_714_557_600_000;

    fn meter(clock: &ManualClock) -> (Meter, Arc<InMemoryLedger>) {
        let ledger = Arc::new(InMemoryLedger::new());
        let config = MeterConfig {
            flush_interval_ms: 3_600_000, // tests flush explicitly
            metrics: MeterConfig::default()
                .metrics
                .into_iter()
                .chain([
                    MetricDef {
                        name: "peak_conn".into(),
                        aggregation: Aggregation::Max,
                    },
                    MetricDef {
                        name: "users".into(),
                        aggregation: Aggregation::UniqueCount,
                    },
                    MetricDef {
                        name: "docs".into(),
                        aggregation: Aggregation::Latest,
                    },
                    MetricDef {
                        name: "events".into(),
                        aggregation: Aggregation::Count,
                    },
                ])
                .collect(),
            ..MeterConfig::default()
        };
        let meter = Meter::start(config, ledger.clone(), Arc::new(clock.clone())).expect("starts");
        (meter, ledger)
    }

    fn total(ledger: &InMemoryLedger, tenant: &str, metric: &str) -> u64 {
        period_to_date(ledger, tenant, &[metric], 0, T0 + 10 * HOUR_MS).expect("reads")[0].1
    }

    #[test]
    fn each_aggregation_lands_in_the_ledger() {
        let clock = ManualClock::new(T0);
        let (meter, ledger) = meter(&clock);
        for (q, at) in [(5, T0), (9, T0 + 1), (2, T0 + 2)] {
            meter
                .record("acme", API_CALLS_READ, q, at, None)
                .expect("records");
            meter
                .record("acme", "peak_conn", q, at, None)
                .expect("records");
            meter
                .record("acme", "events", q, at, None)
                .expect("records");
            meter.record("acme", "docs", q, at, None).expect("records");
        }
        for user in [7, 8, 7, 9, 8] {
            meter
                .record("acme", "users", user, T0, None)
                .expect("records");
        }
        meter.flush().expect("flushes");
        meter
            .record("acme", "users", 10, T0, None)
            .expect("records");
        meter
            .record("acme", "docs", 1, T0 - 5, None)
            .expect("older gauge reading");
        assert_eq!(
            meter
                .usage_to_date("acme", &[API_CALLS_READ, "events"], T0)
                .expect("reads"),
            vec![(API_CALLS_READ.to_owned(), 16), ("events".to_owned(), 3)]
        );
        meter.shutdown().expect("shuts down");
        assert_eq!(total(&ledger, "acme", API_CALLS_READ), 16);
        assert_eq!(total(&ledger, "acme", "peak_conn"), 9);
        assert_eq!(total(&ledger, "acme", "events"), 3);
        assert_eq!(total(&ledger, "acme", "docs"), 2);
        assert_eq!(total(&ledger, "acme", "users"), 4);
    }

    #[test]
    fn unknown_metric_bad_names_and_late_events_are_refused() {
        let clock = ManualClock::new(T0);
        let (meter, _ledger) = meter(&clock);
        assert_eq!(
            meter.record("acme", "nope", 1, T0, None),
            Err(MeterError::UnknownMetric {
                metric: "nope".into()
            })
        );
        assert_eq!(
            meter.record("acme", "nope", 1, T0, Some(1)),
            Err(MeterError::UnknownMetric {
                metric: "nope".into()
            })
        );
        assert_eq!(
            meter.record("", API_CALLS_READ, 1, T0, None),
            Err(MeterError::InvalidName { len_bytes: 0 })
        );
        // Window: current hour and the 2 before it.
        let oldest = T0 - 2 * HOUR_MS;
        assert!(meter
            .record("acme", API_CALLS_READ, 1, oldest, None)
            .is_ok());
        assert_eq!(
            meter.record("acme", API_CALLS_READ, 1, oldest - 1, Some(5)),
            Err(MeterError::TooLate {
                at_unix_ms: oldest - 1,
                oldest_accepted_unix_ms: oldest
            })
        );
        // Refused with an id: the id was not consumed.
        assert_eq!(
            meter.record("acme", API_CALLS_READ, 1, T0, Some(5)),
            Ok(RecordOutcome::Counted)
        );
    }

    #[test]
    fn old_cells_and_ids_leave_memory_when_the_window_moves() {
        let clock = ManualClock::new(T0);
        let (meter, ledger) = meter(&clock);
        meter
            .record("acme", API_CALLS_READ, 3, T0, Some(1))
            .expect("records");
        assert_eq!((meter.cell_count(), meter.dedup_id_count()), (1, 1));
        clock.advance(Duration::from_secs(3 * 3_600));
        let report = meter.flush().expect("flushes");
        assert_eq!(report.cells_removed, 1);
        assert_eq!(report.ids_pruned, 1);
        assert_eq!((meter.cell_count(), meter.dedup_id_count()), (0, 0));
        assert_eq!(total(&ledger, "acme", API_CALLS_READ), 3);
        assert!(matches!(
            meter.record("acme", API_CALLS_READ, 3, T0, Some(1)),
            Err(MeterError::TooLate { .. })
        ));
    }

    #[test]
    fn limits_refuse_new_cells_and_ids() {
        let clock = ManualClock::new(T0);
        let config = MeterConfig {
            cells_max: 1,
            dedup_ids_max: 1,
            ..MeterConfig::default()
        };
        let meter =
            Meter::start(config, Arc::new(InMemoryLedger::new()), Arc::new(clock)).expect("starts");
        meter
            .record("a", API_CALLS_READ, 1, T0, Some(1))
            .expect("records");
        assert_eq!(
            meter.record("a", API_CALLS_READ, 1, T0, Some(2)),
            Err(MeterError::DedupFull { ids_max: 1 })
        );
        assert_eq!(
            meter.record("b", API_CALLS_READ, 1, T0, None),
            Err(MeterError::CellLimit { cells_max: 1 })
        );
        assert!(meter.record("a", API_CALLS_READ, 1, T0, None).is_ok());
    }

    #[test]
    fn an_id_refused_for_a_limit_is_not_burnt() {
        let clock = ManualClock::new(T0);
        let config = MeterConfig {
            cells_max: 1,
            ..MeterConfig::default()
        };
        let meter =
            Meter::start(config, Arc::new(InMemoryLedger::new()), Arc::new(clock)).expect("starts");
        meter
            .record("a", API_CALLS_READ, 1, T0, None)
            .expect("records");
        assert_eq!(
            meter.record("b", API_CALLS_READ, 1, T0, Some(9)),
            Err(MeterError::CellLimit { cells_max: 1 })
        );
        assert_eq!(meter.dedup_id_count(), 0);
        // Once there is room, the redelivery counts.
        assert_eq!(
            meter.record("a", API_CALLS_READ, 1, T0, Some(9)),
            Ok(RecordOutcome::Counted)
        );
    }

    #[test]
    fn thousands_of_tenants_keep_separate_counters() {
        let clock = ManualClock::new(T0);
        let (meter, ledger) = meter(&clock);
        let tenants: Vec<String> = (0..5_000).map(|i| format!("tenant-{i}")).collect();
        for round in 0..3u64 {
            for (i, tenant) in tenants.iter().enumerate() {
                meter
                    .record(tenant, API_CALLS_QUERY, i as u64 + round, T0, None)
                    .expect("records");
            }
        }
        assert_eq!(meter.cell_count(), 5_000);
        meter.shutdown().expect("shuts down");
        for (i, tenant) in tenants.iter().enumerate() {
            assert_eq!(total(&ledger, tenant, API_CALLS_QUERY), 3 * i as u64 + 3);
        }
    }

    #[test]
    fn invalid_configurations_are_refused() {
        let start = |config| {
            Meter::start(
                config,
                Arc::new(InMemoryLedger::new()),
                Arc::new(ManualClock::new(T0)),
            )
            .map(|_| ())
        };
        assert_eq!(
            start(MeterConfig {
                window_hours: WINDOW_HOURS_MAX + 1,
                ..MeterConfig::default()
            }),
            Err(MeterError::InvalidConfig {
                problem: "window_hours exceeds WINDOW_HOURS_MAX"
            })
        );
        let mut twice = MeterConfig::default();
        twice.metrics.push(twice.metrics[0].clone());
        assert_eq!(
            start(twice),
            Err(MeterError::InvalidConfig {
                problem: "a metric is defined twice"
            })
        );
    }
}
