//! The usage ledger stored in an Aerolith database, so metered usage
//! survives restarts and crashes. One document per (tenant, metric, hour):
//! `{"_id": "<tenant>:<metric>:<hour>", "series": "<tenant>:<metric>",
//! "hour_start_unix_ms", "quantity", "aggregation", "latest_at_unix_ms"}`,
//! with a secondary index on `series` for the queries.
//!
//! A batch is one engine `WriteBatch`, so it is applied atomically — all of
//! its entries or none, also across a crash — which the pipeline's retry
//! relies on. Writes are serialized by a mutex because merging is a
//! read-modify-write.

use parking_lot::Mutex;
use serde_json::{json, Value};

use aerolith_core::{Database, Error as CoreError, Query, WriteBatch};

use super::ledger::{hour_start, LedgerEntry, LedgerError, UsageLedger};

/// The collection that holds the ledger.
pub const LEDGER_COLLECTION: &str = "billing.usage_ledger";
const SERIES_FIELD: &str = "series";

/// A [`UsageLedger`] persisted in an Aerolith [`Database`].
#[derive(Debug)]
pub struct EngineLedger {
    db: Database,
    write_lock: Mutex<()>,
}

fn unavailable(e: CoreError) -> LedgerError {
    LedgerError::Unavailable {
        detail: e.to_string(),
    }
}

fn series(tenant: &str, metric: &str) -> String {
    format!("{tenant}:{metric}")
}

fn doc_id(entry: &LedgerEntry) -> String {
    format!(
        "{}:{}",
        series(&entry.tenant, &entry.metric),
        entry.hour_start_unix_ms
    )
}

fn to_doc(entry: &LedgerEntry) -> Value {
    json!({
        "_id": doc_id(entry),
        SERIES_FIELD: series(&entry.tenant, &entry.metric),
        "tenant": entry.tenant,
        "metric": entry.metric,
        "hour_start_unix_ms": entry.hour_start_unix_ms,
        "quantity": entry.quantity,
        "aggregation": entry.aggregation,
        "latest_at_unix_ms": entry.latest_at_unix_ms,
    })
}

fn from_doc(doc: &Value) -> Result<LedgerEntry, LedgerError> {
    let corrupt = || LedgerError::Unavailable {
        detail: format!("malformed ledger document {}", doc["_id"]),
    };
    Ok(LedgerEntry {
        tenant: doc["tenant"].as_str().ok_or_else(corrupt)?.to_owned(),
        metric: doc["metric"].as_str().ok_or_else(corrupt)?.to_owned(),
        hour_start_unix_ms: doc["hour_start_unix_ms"].as_i64().ok_or_else(corrupt)?,
        quantity: doc["quantity"].as_u64().ok_or_else(corrupt)?,
        aggregation: serde_json::from_value(doc["aggregation"].clone()).map_err(|_| corrupt())?,
        latest_at_unix_ms: doc["latest_at_unix_ms"].as_i64(),
    })
}

impl EngineLedger {
    /// Uses (creating if needed) the ledger collection of `db`.
    pub fn open(db: Database) -> Result<EngineLedger, LedgerError> {
        match db.create_collection(LEDGER_COLLECTION) {
            Ok(()) | Err(CoreError::CollectionExists { .. }) => {}
            Err(e) => return Err(unavailable(e)),
        }
        match db.create_index(LEDGER_COLLECTION, SERIES_FIELD, false) {
            Ok(()) | Err(CoreError::IndexExists { .. }) => {}
            Err(e) => return Err(unavailable(e)),
        }
        Ok(EngineLedger {
            db,
            write_lock: Mutex::new(()),
        })
    }
}

impl EngineLedger {
    /// The database holding the ledger (the storage sampler keeps its state
    /// beside it, so both change in one engine batch).
    pub(crate) fn database(&self) -> &Database {
        &self.db
    }

    /// Upserts `entries` and applies `more` to the same engine batch, so the
    /// ledger change and the caller's documents commit atomically: all of
    /// them or none, also across a crash.
    pub(crate) fn upsert_batch_with(
        &self,
        entries: &[LedgerEntry],
        more: impl FnOnce(&mut WriteBatch) -> Result<(), CoreError>,
    ) -> Result<(), LedgerError> {
        let _serialized = self.write_lock.lock();
        let mut batch = self.merged_batch(entries)?;
        more(&mut batch).map_err(unavailable)?;
        if batch.is_empty() {
            return Ok(());
        }
        self.db.write(batch).map_err(unavailable)?;
        Ok(())
    }

    /// The engine batch that merges `entries` into the stored ones; the
    /// caller holds `write_lock`.
    fn merged_batch(&self, entries: &[LedgerEntry]) -> Result<WriteBatch, LedgerError> {
        let snapshot = self.db.snapshot();
        let mut merged: std::collections::BTreeMap<String, LedgerEntry> =
            std::collections::BTreeMap::new();
        for entry in entries {
            if entry.hour_start_unix_ms != hour_start(entry.hour_start_unix_ms) {
                return Err(LedgerError::UnalignedHour {
                    hour_start_unix_ms: entry.hour_start_unix_ms,
                });
            }
            let id = doc_id(entry);
            let stored = match merged.remove(&id) {
                Some(e) => Some(e),
                None => snapshot
                    .get(LEDGER_COLLECTION, &id)
                    .map_err(unavailable)?
                    .map(|d| from_doc(&d))
                    .transpose()?,
            };
            let next = match stored {
                Some(mut existing) => {
                    if existing.aggregation != entry.aggregation {
                        return Err(LedgerError::AggregationMismatch {
                            metric: entry.metric.clone(),
                            stored: existing.aggregation,
                            written: entry.aggregation,
                        });
                    }
                    entry.aggregation.merge(&mut existing, entry);
                    existing
                }
                None => entry.clone(),
            };
            merged.insert(id, next);
        }
        let mut batch = WriteBatch::new();
        for entry in merged.values() {
            batch
                .upsert(LEDGER_COLLECTION, to_doc(entry))
                .map_err(unavailable)?;
        }
        Ok(batch)
    }
}

impl UsageLedger for EngineLedger {
    fn upsert_batch(&self, entries: &[LedgerEntry]) -> Result<(), LedgerError> {
        self.upsert_batch_with(entries, |_| Ok(()))
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
        let query = Query::from_json(&json!({
            "filter": {
                SERIES_FIELD: series(tenant, metric),
                "hour_start_unix_ms": {"$gte": from_unix_ms, "$lt": to_unix_ms},
            },
            "sort": {"hour_start_unix_ms": 1},
        }))
        .map_err(unavailable)?;
        self.db
            .find(LEDGER_COLLECTION, &query)
            .map_err(unavailable)?
            .iter()
            .map(from_doc)
            .collect()
    }

    /// One index look-up (`series $in [...]`) for all the metrics.
    fn query_metrics(
        &self,
        tenant: &str,
        metrics: &[&str],
        from_unix_ms: i64,
        to_unix_ms: i64,
    ) -> Result<Vec<Vec<LedgerEntry>>, LedgerError> {
        let mut by_metric: Vec<Vec<LedgerEntry>> = vec![Vec::new(); metrics.len()];
        if from_unix_ms >= to_unix_ms || metrics.is_empty() {
            return Ok(by_metric);
        }
        let all_series: Vec<String> = metrics.iter().map(|m| series(tenant, m)).collect();
        let query = Query::from_json(&json!({
            "filter": {
                SERIES_FIELD: {"$in": all_series},
                "hour_start_unix_ms": {"$gte": from_unix_ms, "$lt": to_unix_ms},
            },
            "sort": {"hour_start_unix_ms": 1},
        }))
        .map_err(unavailable)?;
        for doc in self
            .db
            .find(LEDGER_COLLECTION, &query)
            .map_err(unavailable)?
        {
            let entry = from_doc(&doc)?;
            if let Some(index) = metrics.iter().position(|m| *m == entry.metric) {
                by_metric[index].push(entry);
            }
        }
        Ok(by_metric)
    }
}

#[cfg(test)]
mod tests {
    use super::super::ledger::Aggregation;
    use super::*;
    use aerolith_core::{Durability, Options};

    fn entry(
        tenant: &str,
        metric: &str,
        hour: i64,
        quantity: u64,
        aggregation: Aggregation,
    ) -> LedgerEntry {
        LedgerEntry {
            tenant: tenant.into(),
            metric: metric.into(),
            hour_start_unix_ms: hour * super::super::HOUR_MS,
            quantity,
            aggregation,
            latest_at_unix_ms: None,
        }
    }

    #[test]
    fn entries_merge_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            Database::open(
                dir.path(),
                Options::default().durability(Durability::Always),
            )
            .unwrap()
        };
        {
            let ledger = EngineLedger::open(open()).unwrap();
            ledger
                .upsert_batch(&[
                    entry("7", "api_calls.read", 10, 5, Aggregation::Sum),
                    entry("7", "api_calls.read", 11, 1, Aggregation::Sum),
                ])
                .unwrap();
            ledger
                .upsert_batch(&[
                    entry("7", "api_calls.read", 10, 3, Aggregation::Sum),
                    entry("7", "api_calls.read", 10, 2, Aggregation::Sum),
                ])
                .unwrap();
            ledger
                .upsert_batch(&[entry("8", "api_calls.read", 10, 100, Aggregation::Sum)])
                .unwrap();
        }
        let ledger = EngineLedger::open(open()).unwrap();
        let got = ledger
            .query("7", "api_calls.read", 0, 100 * super::super::HOUR_MS)
            .unwrap();
        assert_eq!(
            got.iter().map(|e| e.quantity).collect::<Vec<_>>(),
            vec![10, 1]
        );
        assert_eq!(
            ledger.query("8", "api_calls.read", 0, i64::MAX).unwrap()[0].quantity,
            100
        );
        assert!(ledger
            .query("7", "api_calls.write", 0, i64::MAX)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_refused_batch_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = EngineLedger::open(
            Database::open(dir.path(), Options::default().durability(Durability::Never)).unwrap(),
        )
        .unwrap();
        ledger
            .upsert_batch(&[entry("1", "m", 1, 5, Aggregation::Sum)])
            .unwrap();
        let err = ledger
            .upsert_batch(&[
                entry("1", "m", 2, 9, Aggregation::Sum),
                entry("1", "m", 1, 1, Aggregation::Max),
            ])
            .unwrap_err();
        assert!(matches!(err, LedgerError::AggregationMismatch { .. }));
        let mut unaligned = entry("1", "m", 3, 1, Aggregation::Sum);
        unaligned.hour_start_unix_ms += 1;
        assert!(matches!(
            ledger.upsert_batch(&[unaligned]),
            Err(LedgerError::UnalignedHour { .. })
        ));
        let got = ledger.query("1", "m", 0, i64::MAX).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].quantity, 5);
    }
}
