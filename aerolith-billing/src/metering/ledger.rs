//! The usage ledger: hourly aggregates per (tenant, metric), the
//! [`UsageLedger`] storage trait with an in-memory implementation, and the
//! usage queries built on it (period to date, history by hour/day/month).
//!
//! The drain writes partial aggregates (whatever accumulated since the last
//! flush); [`Aggregation::merge`] folds them into the stored entry, so
//! writing a batch is an upsert. Implementations must apply a batch
//! atomically (all entries or none): the pipeline retries a failed batch, and
//! a half-applied batch would then count twice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// Milliseconds in an hour, the ledger's bucket size.
pub const HOUR_MS: i64 = 3_600_000;

/// Start of the hour containing `unix_ms`.
#[inline]
pub fn hour_start(unix_ms: i64) -> i64 {
    unix_ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// How events of a metric combine within an hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Sum of quantities.
    Sum,
    /// Number of events (quantities ignored).
    Count,
    /// Largest quantity.
    Max,
    /// Number of distinct quantities (e.g. distinct user ids) within the
    /// hour. Rolled up over several hours, hourly counts are summed: the
    /// per-hour sets are not kept, so a distinct count over a longer span is
    /// not available.
    UniqueCount,
    /// Quantity of the event with the latest timestamp (a gauge).
    Latest,
}

impl Aggregation {
    /// Folds a newer partial aggregate of the same hour into `stored`.
    ///
    /// Sum and count add (saturating at `u64::MAX`), max keeps the larger,
    /// unique count replaces (the pipeline always writes the hour's whole
    /// distinct count), latest keeps the later event (on a tie, the newer
    /// write).
    pub fn merge(self, stored: &mut LedgerEntry, newer: &LedgerEntry) {
        match self {
            Aggregation::Sum | Aggregation::Count => {
                stored.quantity = stored.quantity.saturating_add(newer.quantity);
            }
            Aggregation::Max => stored.quantity = stored.quantity.max(newer.quantity),
            Aggregation::UniqueCount => stored.quantity = newer.quantity,
            Aggregation::Latest => {
                if newer.latest_at_unix_ms >= stored.latest_at_unix_ms {
                    stored.quantity = newer.quantity;
                    stored.latest_at_unix_ms = newer.latest_at_unix_ms;
                }
            }
        }
    }

    /// Combines hourly entries into one figure for a longer span: sum for
    /// sum, count and unique count; max for max; the latest for latest.
    pub fn roll_up<'a>(self, entries: impl IntoIterator<Item = &'a LedgerEntry>) -> u64 {
        let entries = entries.into_iter();
        match self {
            Aggregation::Sum | Aggregation::Count | Aggregation::UniqueCount => {
                entries.fold(0u64, |acc, e| acc.saturating_add(e.quantity))
            }
            Aggregation::Max => entries.map(|e| e.quantity).max().unwrap_or(0),
            Aggregation::Latest => entries
                .max_by_key(|e| (e.latest_at_unix_ms, e.hour_start_unix_ms))
                .map_or(0, |e| e.quantity),
        }
    }
}

/// One hour of one metric for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The tenant.
    pub tenant: String,
    /// The metric.
    pub metric: String,
    /// Start of the hour (UTC, a multiple of [`HOUR_MS`]).
    pub hour_start_unix_ms: i64,
    /// The aggregate.
    pub quantity: u64,
    /// How `quantity` aggregates.
    pub aggregation: Aggregation,
    /// For [`Aggregation::Latest`]: the timestamp of the event `quantity`
    /// came from; `None` for the other aggregations.
    pub latest_at_unix_ms: Option<i64>,
}

/// Why the ledger could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The backing store refused the operation; the batch was not applied.
    #[error("usage ledger unavailable: {detail}")]
    Unavailable {
        /// What failed.
        detail: String,
    },
    /// An entry's hour is not aligned to [`HOUR_MS`].
    #[error("entry hour {hour_start_unix_ms} is not aligned to an hour")]
    UnalignedHour {
        /// The offending value.
        hour_start_unix_ms: i64,
    },
    /// An entry's aggregation differs from the one already stored.
    #[error("metric {metric} is stored as {stored:?}, not {written:?}")]
    AggregationMismatch {
        /// The metric.
        metric: String,
        /// The stored aggregation.
        stored: Aggregation,
        /// The aggregation written.
        written: Aggregation,
    },
}

/// Durable storage of hourly usage.
pub trait UsageLedger: Send + Sync {
    /// Merges `entries` into the stored ones (see [`Aggregation::merge`]),
    /// atomically: all of them or, on error, none.
    fn upsert_batch(&self, entries: &[LedgerEntry]) -> Result<(), LedgerError>;

    /// Entries of `tenant` and `metric` whose hour starts in
    /// `[from_unix_ms, to_unix_ms)`, ordered by hour.
    fn query(
        &self,
        tenant: &str,
        metric: &str,
        from_unix_ms: i64,
        to_unix_ms: i64,
    ) -> Result<Vec<LedgerEntry>, LedgerError>;

    /// Entries of `tenant` for each of `metrics` (one list per metric, in
    /// the order given), hours in `[from_unix_ms, to_unix_ms)`. The default
    /// calls [`UsageLedger::query`] once per metric; a store that can answer
    /// in one look-up (as [`EngineLedger`](super::EngineLedger) does) should.
    fn query_metrics(
        &self,
        tenant: &str,
        metrics: &[&str],
        from_unix_ms: i64,
        to_unix_ms: i64,
    ) -> Result<Vec<Vec<LedgerEntry>>, LedgerError> {
        metrics
            .iter()
            .map(|metric| self.query(tenant, metric, from_unix_ms, to_unix_ms))
            .collect()
    }
}

type LedgerKey = (String, String, i64);

/// A [`UsageLedger`] in memory (tests, embedded use without persistence).
#[derive(Debug, Default)]
pub struct InMemoryLedger {
    entries: RwLock<BTreeMap<LedgerKey, LedgerEntry>>,
    unavailable: AtomicBool,
}

impl InMemoryLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every write fail with [`LedgerError::Unavailable`] (to drill
    /// how the pipeline handles an outage) or work again.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// Every stored entry, ordered by tenant, metric and hour.
    pub fn entries(&self) -> Vec<LedgerEntry> {
        self.entries.read().values().cloned().collect()
    }
}

impl UsageLedger for InMemoryLedger {
    fn upsert_batch(&self, entries: &[LedgerEntry]) -> Result<(), LedgerError> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(LedgerError::Unavailable {
                detail: "in-memory ledger set unavailable".into(),
            });
        }
        let mut stored = self.entries.write();
        // Validate everything first so the batch applies all or nothing.
        for entry in entries {
            if entry.hour_start_unix_ms != hour_start(entry.hour_start_unix_ms) {
                return Err(LedgerError::UnalignedHour {
                    hour_start_unix_ms: entry.hour_start_unix_ms,
                });
            }
            let key = (
                entry.tenant.clone(),
                entry.metric.clone(),
                entry.hour_start_unix_ms,
            );
            if let Some(existing) = stored.get(&key) {
                if existing.aggregation != entry.aggregation {
                    return Err(LedgerError::AggregationMismatch {
                        metric: entry.metric.clone(),
                        stored: existing.aggregation,
                        written: entry.aggregation,
                    });
                }
            }
        }
        for entry in entries {
            let key = (
                entry.tenant.clone(),
                entry.metric.clone(),
                entry.hour_start_unix_ms,
            );
            match stored.get_mut(&key) {
                Some(existing) => entry.aggregation.merge(existing, entry),
                None => {
                    stored.insert(key, entry.clone());
                }
            }
        }
        Ok(())
    }

    fn query(
        &self,
        tenant: &str,
        metric: &str,
        from_unix_ms: i64,
        to_unix_ms: i64,
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        if from_unix_ms >= to_unix_ms {
            return Ok(Vec::new());
        }
        let from = (tenant.to_owned(), metric.to_owned(), from_unix_ms);
        let to = (tenant.to_owned(), metric.to_owned(), to_unix_ms);
        Ok(self
            .entries
            .read()
            .range(from..to)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

/// Bucket size of a usage history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// One bucket per hour.
    Hour,
    /// One bucket per UTC day.
    Day,
    /// One bucket per UTC calendar month.
    Month,
}

/// One bucket of a usage history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageBucket {
    /// Start of the bucket (UTC).
    pub start_unix_ms: i64,
    /// The rolled-up quantity ([`Aggregation::roll_up`]).
    pub quantity: u64,
}

fn bucket_start(granularity: Granularity, hour_start_unix_ms: i64) -> i64 {
    let Some(at) = DateTime::<Utc>::from_timestamp_millis(hour_start_unix_ms) else {
        return hour_start_unix_ms;
    };
    let date = match granularity {
        Granularity::Hour => return hour_start_unix_ms,
        Granularity::Day => at.date_naive(),
        Granularity::Month => {
            NaiveDate::from_ymd_opt(at.year(), at.month(), 1).unwrap_or(at.date_naive())
        }
    };
    date.and_hms_opt(0, 0, 0)
        .map_or(hour_start_unix_ms, |n| n.and_utc().timestamp_millis())
}

/// Usage of `metric` by `tenant` over `[from, to)`, one bucket per hour, day
/// or month that has any usage, in time order.
pub fn usage_history(
    ledger: &dyn UsageLedger,
    tenant: &str,
    metric: &str,
    from_unix_ms: i64,
    to_unix_ms: i64,
    granularity: Granularity,
) -> Result<Vec<UsageBucket>, LedgerError> {
    let entries = ledger.query(tenant, metric, from_unix_ms, to_unix_ms)?;
    let mut buckets: BTreeMap<i64, Vec<&LedgerEntry>> = BTreeMap::new();
    for entry in &entries {
        buckets
            .entry(bucket_start(granularity, entry.hour_start_unix_ms))
            .or_default()
            .push(entry);
    }
    Ok(buckets
        .into_iter()
        .map(|(start_unix_ms, group)| UsageBucket {
            start_unix_ms,
            quantity: group[0].aggregation.roll_up(group.iter().copied()),
        })
        .collect())
}

/// Usage of each of `metrics` by `tenant` from `period_start_unix_ms` up to
/// `now_unix_ms`: the ledger hours from the one containing the period start
/// through the one containing `now` — the same hours invoicing bills to the
/// period (`metering::billable`). Metrics without usage report 0. Flush the
/// meter first to include unflushed counters.
pub fn period_to_date(
    ledger: &dyn UsageLedger,
    tenant: &str,
    metrics: &[&str],
    period_start_unix_ms: i64,
    now_unix_ms: i64,
) -> Result<Vec<(String, u64)>, LedgerError> {
    let to = hour_start(now_unix_ms) + HOUR_MS;
    metrics
        .iter()
        .map(|&metric| {
            let entries = ledger.query(tenant, metric, hour_start(period_start_unix_ms), to)?;
            let quantity = entries
                .first()
                .map_or(0, |first| first.aggregation.roll_up(&entries));
            Ok((metric.to_owned(), quantity))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-03-31T22:00:00Z
    const T: i64 = 1_711_922_400_000;

    fn entry(metric: &str, hour: i64, quantity: u64, aggregation: Aggregation) -> LedgerEntry {
        LedgerEntry {
            tenant: "acme".into(),
            metric: metric.into(),
            hour_start_unix_ms: hour,
            quantity,
            aggregation,
            latest_at_unix_ms: (aggregation == Aggregation::Latest)
                .then_some(hour + quantity as i64),
        }
    }

    #[test]
    fn upsert_merges_each_aggregation_by_its_rule() {
        let ledger = InMemoryLedger::new();
        for (metric, aggregation) in [
            ("s", Aggregation::Sum),
            ("m", Aggregation::Max),
            ("u", Aggregation::UniqueCount),
            ("l", Aggregation::Latest),
        ] {
            ledger
                .upsert_batch(&[entry(metric, T, 5, aggregation)])
                .expect("writes");
            ledger
                .upsert_batch(&[entry(metric, T, 3, aggregation)])
                .expect("writes");
        }
        let q = |m| ledger.query("acme", m, T, T + HOUR_MS).expect("reads")[0].quantity;
        assert_eq!(q("s"), 8);
        assert_eq!(q("m"), 5);
        assert_eq!(q("u"), 3);
        // The second latest came from an earlier event (T + 3 < T + 5).
        assert_eq!(q("l"), 5);
    }

    #[test]
    fn a_failing_batch_applies_nothing() {
        let ledger = InMemoryLedger::new();
        let batch = [
            entry("s", T, 5, Aggregation::Sum),
            entry("s", T + 1, 5, Aggregation::Sum),
        ];
        assert_eq!(
            ledger.upsert_batch(&batch),
            Err(LedgerError::UnalignedHour {
                hour_start_unix_ms: T + 1
            })
        );
        assert!(ledger.entries().is_empty());
        ledger.upsert_batch(&batch[..1]).expect("writes");
        assert_eq!(
            ledger.upsert_batch(&[entry("s", T, 1, Aggregation::Max)]),
            Err(LedgerError::AggregationMismatch {
                metric: "s".into(),
                stored: Aggregation::Sum,
                written: Aggregation::Max
            })
        );
        ledger.set_unavailable(true);
        assert!(matches!(
            ledger.upsert_batch(&batch[..1]),
            Err(LedgerError::Unavailable { .. })
        ));
        assert_eq!(ledger.entries()[0].quantity, 5);
    }

    #[test]
    fn history_rolls_hours_into_days_and_months() {
        let ledger = InMemoryLedger::new();
        // 22:00 and 23:00 on Mar 31, 00:00 on Apr 1, and Apr 2 12:00.
        let hours = [T, T + HOUR_MS, T + 2 * HOUR_MS, T + 38 * HOUR_MS];
        let batch: Vec<LedgerEntry> = hours
            .iter()
            .zip([1u64, 2, 4, 8])
            .map(|(&h, q)| entry("api", h, q, Aggregation::Sum))
            .collect();
        ledger.upsert_batch(&batch).expect("writes");
        let history = |g| {
            usage_history(&ledger, "acme", "api", 0, i64::MAX, g)
                .expect("reads")
                .into_iter()
                .map(|b| (b.start_unix_ms, b.quantity))
                .collect::<Vec<_>>()
        };
        assert_eq!(history(Granularity::Hour).len(), 4);
        let mar_31 = T - 22 * HOUR_MS;
        let apr_1 = mar_31 + 24 * HOUR_MS;
        let apr_2 = apr_1 + 24 * HOUR_MS;
        assert_eq!(
            history(Granularity::Day),
            vec![(mar_31, 3), (apr_1, 4), (apr_2, 8)]
        );
        let mar_1 = 1_709_251_200_000;
        assert_eq!(history(Granularity::Month), vec![(mar_1, 3), (apr_1, 12)]);
        assert_eq!(
            period_to_date(&ledger, "acme", &["api", "none"], apr_1, apr_1 + 5).expect("reads"),
            vec![("api".to_owned(), 4), ("none".to_owned(), 0)]
        );
    }

    #[test]
    fn roll_up_uses_the_aggregation_rule() {
        let max = [
            entry("m", T, 5, Aggregation::Max),
            entry("m", T + HOUR_MS, 3, Aggregation::Max),
        ];
        assert_eq!(Aggregation::Max.roll_up(&max), 5);
        let latest = [
            entry("l", T + HOUR_MS, 3, Aggregation::Latest),
            entry("l", T, 5, Aggregation::Latest),
        ];
        assert_eq!(Aggregation::Latest.roll_up(&latest), 3);
        assert_eq!(Aggregation::Sum.roll_up(&[]), 0);
    }
}
