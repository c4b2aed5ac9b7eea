//! Storage metering: turns samples of each tenant's stored bytes into
//! [`STORAGE_BYTE_SECONDS`] ledger entries, one per hour, exactly.
//!
//! Between two samples a tenant's size is taken as constant at the earlier
//! sample's value (piecewise constant, as in `storage`), so the usage of an
//! interval is `bytes * elapsed`. The interval is split at every hour
//! boundary it crosses and each piece is attributed to its own hour: an
//! interval spanning three hours yields three ledger hours.
//!
//! **Integer exactness.** Time is in milliseconds, the metric in seconds.
//! Each tenant carries the sub-second remainder (`carry_byte_ms`, always
//! below 1,000) from piece to piece, so after any sequence of samples the
//! byte-seconds written for a tenant are exactly
//! `floor(integral_byte_ms / 1000)` and `written * 1000 + carry` is the exact
//! integral. Because the carry is the integral's remainder, the amount an
//! hour receives depends only on the stored-size function, never on how it
//! was sampled: extra samples that repeat the current size change nothing.
//!
//! **Crash safety.** The sampler writes its ledger entries directly into the
//! [`EngineLedger`] together with the tenant's new sampling state (collection
//! [`STORAGE_SAMPLES_COLLECTION`]) in one engine batch, so a crash either
//! keeps both or neither: after a restart the next sample starts from the
//! last committed one, counting no interval twice and losing none. (Going
//! through the [`Meter`](crate::metering::Meter)'s counters could not give
//! this: a drain and the state write would be two commits, and the meter
//! refuses hours older than its acceptance window, which an interval after a
//! long outage reaches.) While the process was down nothing could change the
//! stored size, so the constant-size assumption holds over the outage too.
//!
//! What the sampler cannot know: usage before a tenant's first sample
//! (counted as zero) and size changes between samples (the sampling period,
//! chosen by the caller, bounds that error). A deleted tenant's last
//! interval is closed at its deletion time by [`StorageSampler::sample_all`].

use std::collections::HashMap;
use std::sync::Arc;

use aerolith_core::{Error as CoreError, Query};
use aerolith_tenancy::{Principal, Tenancy, TenancyError, TenantId, TENANT_PAGE_LEN_MAX};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::metering::engine_ledger::EngineLedger;
use crate::metering::ledger::{hour_start, Aggregation, LedgerEntry, LedgerError, HOUR_MS};
use crate::metering::sink::TenantKey;
use crate::metering::STORAGE_BYTE_SECONDS;

/// The collection holding each tenant's last sample.
pub const STORAGE_SAMPLES_COLLECTION: &str = "billing.storage_samples";

/// Longest interval between two samples of a tenant, in hours (a leap
/// year). One sample writes one ledger entry per hour it spans, and all of
/// them in one engine batch; a longer gap is refused rather than written in
/// pieces that could be half applied.
pub const SAMPLE_SPAN_HOURS_MAX: i64 = 366 * 24;

/// Ledger entries gathered before [`StorageSampler::sample_many`] commits a
/// batch; a tenant's entries and state always share a batch.
pub const SAMPLE_BATCH_ENTRIES_MAX: usize = 10_000;

const MS_PER_SECOND: u128 = 1_000;

/// Why a sample was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SamplerError {
    /// The sample is older than the tenant's latest one.
    #[error("sample at {at_unix_ms} for tenant {tenant} is before its latest at {latest_unix_ms}")]
    OutOfOrder {
        /// The tenant.
        tenant: String,
        /// The sample's instant.
        at_unix_ms: i64,
        /// The latest sample's instant.
        latest_unix_ms: i64,
    },
    /// The gap since the tenant's latest sample exceeds
    /// [`SAMPLE_SPAN_HOURS_MAX`].
    #[error("tenant {tenant}: {span_hours} hours since the latest sample exceed {max}", max = SAMPLE_SPAN_HOURS_MAX)]
    SpanTooLong {
        /// The tenant.
        tenant: String,
        /// Hours the interval touches.
        span_hours: i64,
    },
    /// An hour's byte-seconds do not fit in a `u64` ledger quantity (more
    /// than about 5 PB stored).
    #[error("tenant {tenant}: byte-seconds of one hour overflow")]
    Overflow {
        /// The tenant.
        tenant: String,
    },
    /// A stored sampling state could not be read.
    #[error("malformed storage sample document {id}")]
    CorruptState {
        /// The document's id.
        id: String,
    },
    /// The ledger or its database failed; nothing of the batch was written.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Listing tenants failed.
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
}

/// One tenant's latest sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleState {
    /// Stored bytes at the latest sample.
    pub bytes: u64,
    /// Instant of the latest sample.
    pub at_unix_ms: i64,
    /// Byte-milliseconds integrated but not yet written (below 1,000).
    pub carry_byte_ms: u64,
}

/// One observation of a tenant's stored bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSample {
    /// The tenant's meter name (a tenant id in decimal, see
    /// [`TenantKey`](crate::metering::TenantKey)).
    pub tenant: String,
    /// Bytes stored from `at_unix_ms` on.
    pub bytes: u64,
    /// When it was observed.
    pub at_unix_ms: i64,
}

/// Byte-seconds per hour of holding `state.bytes` from `state.at_unix_ms` to
/// `until_unix_ms`: `(hour_start_unix_ms, byte_seconds)` for every hour with
/// a non-zero amount, in order, and the carry left over. Pure; the
/// sampler's arithmetic.
pub fn byte_seconds_by_hour(
    tenant: &str,
    state: SampleState,
    until_unix_ms: i64,
) -> Result<(Vec<(i64, u64)>, u64), SamplerError> {
    if until_unix_ms < state.at_unix_ms {
        return Err(SamplerError::OutOfOrder {
            tenant: tenant.to_owned(),
            at_unix_ms: until_unix_ms,
            latest_unix_ms: state.at_unix_ms,
        });
    }
    let first_hour = hour_start(state.at_unix_ms);
    let span_hours = (until_unix_ms - first_hour).div_euclid(HOUR_MS) + 1;
    if span_hours > SAMPLE_SPAN_HOURS_MAX {
        return Err(SamplerError::SpanTooLong {
            tenant: tenant.to_owned(),
            span_hours,
        });
    }
    let mut carry = u128::from(state.carry_byte_ms);
    let mut pieces = Vec::new();
    let mut from = state.at_unix_ms;
    while from < until_unix_ms {
        let hour = hour_start(from);
        let to = until_unix_ms.min(hour + HOUR_MS);
        // At most 2^64 * 3.6e6 + 999: fits a u128.
        let elapsed_ms = u128::try_from(to - from).expect("to > from");
        let byte_ms = u128::from(state.bytes) * elapsed_ms + carry;
        let byte_seconds =
            u64::try_from(byte_ms / MS_PER_SECOND).map_err(|_| SamplerError::Overflow {
                tenant: tenant.to_owned(),
            })?;
        carry = byte_ms % MS_PER_SECOND;
        if byte_seconds > 0 {
            pieces.push((hour, byte_seconds));
        }
        from = to;
    }
    let carry = u64::try_from(carry).expect("below 1,000");
    Ok((pieces, carry))
}

/// What a call of the sampler did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SampleReport {
    /// Samples applied.
    pub samples: usize,
    /// Ledger entries written (one per tenant and hour).
    pub entries_written: usize,
    /// Byte-seconds written.
    pub byte_seconds: u128,
    /// Deleted tenants whose last interval was closed and state removed.
    pub tenants_closed: usize,
}

/// Samples stored bytes into the [`EngineLedger`] (see the module docs).
pub struct StorageSampler {
    ledger: Arc<EngineLedger>,
    /// Committed state per tenant; the lock also serializes samplers' writes.
    states: Mutex<HashMap<String, SampleState>>,
}

impl std::fmt::Debug for StorageSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSampler")
            .field("tenants", &self.states.lock().len())
            .finish_non_exhaustive()
    }
}

fn ledger_error(e: CoreError) -> SamplerError {
    SamplerError::Ledger(LedgerError::Unavailable {
        detail: e.to_string(),
    })
}

/// A tenant's changes: its ledger entries and its next state (`None`:
/// remove the state).
struct TenantChange {
    tenant: String,
    entries: Vec<LedgerEntry>,
    next: Option<SampleState>,
    byte_seconds: u128,
}

impl StorageSampler {
    /// A sampler writing into `ledger`, resuming from the states committed
    /// in the ledger's database (creating [`STORAGE_SAMPLES_COLLECTION`] if
    /// needed).
    pub fn open(ledger: Arc<EngineLedger>) -> Result<StorageSampler, SamplerError> {
        let db = ledger.database();
        match db.create_collection(STORAGE_SAMPLES_COLLECTION) {
            Ok(()) | Err(CoreError::CollectionExists { .. }) => {}
            Err(e) => return Err(ledger_error(e)),
        }
        let mut states = HashMap::new();
        for doc in db
            .find(STORAGE_SAMPLES_COLLECTION, &Query::default())
            .map_err(ledger_error)?
        {
            let id = doc["_id"].as_str().unwrap_or_default().to_owned();
            let state: SampleState = serde_json::from_value(doc["state"].clone())
                .map_err(|_| SamplerError::CorruptState { id: id.clone() })?;
            states.insert(id, state);
        }
        Ok(StorageSampler {
            ledger,
            states: Mutex::new(states),
        })
    }

    /// The committed state of `tenant`, if it was ever sampled.
    pub fn state(&self, tenant: &str) -> Option<SampleState> {
        self.states.lock().get(tenant).copied()
    }

    /// Records that `tenant` stores `bytes` from `at_unix_ms` on, writing
    /// the interval since its previous sample (see [`Self::sample_many`]).
    pub fn sample(
        &self,
        tenant: &str,
        bytes: u64,
        at_unix_ms: i64,
    ) -> Result<SampleReport, SamplerError> {
        self.sample_many(&[StorageSample {
            tenant: tenant.to_owned(),
            bytes,
            at_unix_ms,
        }])
    }

    /// Applies `samples` in order. A tenant's first sample only starts its
    /// integration; each later one writes the byte-seconds since the
    /// previous one, hour by hour. Every tenant's entries commit with its
    /// new state; on an error, the samples before the failing batch are
    /// committed and nothing after it is.
    pub fn sample_many(&self, samples: &[StorageSample]) -> Result<SampleReport, SamplerError> {
        let mut states = self.states.lock();
        let mut report = SampleReport::default();
        let mut pending: Vec<TenantChange> = Vec::new();
        let mut pending_entries = 0;
        // Later samples of the same tenant in one call build on the
        // uncommitted state of earlier ones.
        let mut staged: HashMap<&str, SampleState> = HashMap::new();
        for sample in samples {
            let previous = staged
                .get(sample.tenant.as_str())
                .or_else(|| states.get(&sample.tenant))
                .copied();
            let next_state = |carry_byte_ms| SampleState {
                bytes: sample.bytes,
                at_unix_ms: sample.at_unix_ms,
                carry_byte_ms,
            };
            let change = match previous {
                None => TenantChange {
                    tenant: sample.tenant.clone(),
                    entries: Vec::new(),
                    next: Some(next_state(0)),
                    byte_seconds: 0,
                },
                Some(state) => {
                    let (pieces, carry) =
                        byte_seconds_by_hour(&sample.tenant, state, sample.at_unix_ms)?;
                    Self::change(&sample.tenant, &pieces, Some(next_state(carry)))
                }
            };
            staged.insert(&sample.tenant, change.next.expect("a sample keeps a state"));
            pending_entries += change.entries.len();
            pending.push(change);
            report.samples += 1;
            if pending_entries >= SAMPLE_BATCH_ENTRIES_MAX {
                self.commit(&mut states, std::mem::take(&mut pending), &mut report)?;
                pending_entries = 0;
            }
        }
        self.commit(&mut states, pending, &mut report)?;
        Ok(report)
    }

    fn change(tenant: &str, pieces: &[(i64, u64)], next: Option<SampleState>) -> TenantChange {
        let entries = pieces
            .iter()
            .map(|&(hour, byte_seconds)| LedgerEntry {
                tenant: tenant.to_owned(),
                metric: STORAGE_BYTE_SECONDS.to_owned(),
                hour_start_unix_ms: hour,
                quantity: byte_seconds,
                aggregation: Aggregation::Sum,
                latest_at_unix_ms: None,
            })
            .collect();
        TenantChange {
            tenant: tenant.to_owned(),
            entries,
            next,
            byte_seconds: pieces.iter().map(|&(_, q)| u128::from(q)).sum(),
        }
    }

    /// Writes `changes` in one engine batch, then publishes their states.
    fn commit(
        &self,
        states: &mut HashMap<String, SampleState>,
        changes: Vec<TenantChange>,
        report: &mut SampleReport,
    ) -> Result<(), SamplerError> {
        if changes.is_empty() {
            return Ok(());
        }
        let entries: Vec<LedgerEntry> = changes
            .iter()
            .flat_map(|c| c.entries.iter().cloned())
            .collect();
        self.ledger.upsert_batch_with(&entries, |batch| {
            for change in &changes {
                match change.next {
                    Some(state) => {
                        batch.upsert(
                            STORAGE_SAMPLES_COLLECTION,
                            json!({"_id": change.tenant, "state": state}),
                        )?;
                    }
                    None => batch.delete(STORAGE_SAMPLES_COLLECTION, &change.tenant)?,
                }
            }
            Ok(())
        })?;
        report.entries_written += entries.len();
        for change in changes {
            report.byte_seconds += change.byte_seconds;
            match change.next {
                Some(state) => {
                    states.insert(change.tenant, state);
                }
                None => {
                    states.remove(&change.tenant);
                    report.tenants_closed += 1;
                }
            }
        }
        Ok(())
    }

    /// Samples every live tenant of `tenancy` at `now_unix_ms` (its
    /// committed stored bytes, read without a tenant key and without being
    /// metered as a call), and closes the last interval of tenants deleted
    /// since their latest sample at their deletion time. Meant to be called
    /// periodically (e.g. every minute) by the server.
    pub fn sample_all(
        &self,
        tenancy: &Tenancy,
        now_unix_ms: i64,
    ) -> Result<SampleReport, SamplerError> {
        let operator = Principal::Operator;
        let mut samples = Vec::new();
        let mut live = std::collections::HashSet::new();
        let mut after = None;
        loop {
            let page = tenancy.list_tenants(&operator, after, TENANT_PAGE_LEN_MAX)?;
            for tenant in &page.tenants {
                let bytes = match tenancy.handle(&operator, tenant.id) {
                    Ok(handle) => handle.quota_committed().storage_bytes,
                    // Deleted since the listing: closed below or next time.
                    Err(TenancyError::TenantNotFound { .. }) => continue,
                    Err(e) => return Err(e.into()),
                };
                let key = TenantKey::new(tenant.id);
                live.insert(tenant.id);
                samples.push(StorageSample {
                    tenant: key.as_str().to_owned(),
                    bytes,
                    at_unix_ms: now_unix_ms,
                });
            }
            match page.next_cursor {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        let mut report = self.sample_many(&samples)?;
        let closed = self.close_deleted(tenancy, &live)?;
        report.entries_written += closed.entries_written;
        report.byte_seconds += closed.byte_seconds;
        report.tenants_closed += closed.tenants_closed;
        Ok(report)
    }

    /// Closes tenants with a state that are deleted in `tenancy`.
    fn close_deleted(
        &self,
        tenancy: &Tenancy,
        live: &std::collections::HashSet<TenantId>,
    ) -> Result<SampleReport, SamplerError> {
        let mut states = self.states.lock();
        let mut changes = Vec::new();
        for (name, state) in states.iter() {
            let Ok(id) = name.parse::<TenantId>() else {
                continue; // not a tenancy tenant: sampled by hand
            };
            if live.contains(&id) {
                continue;
            }
            let deleted_unix_ms = match tenancy.get_tenant(&Principal::Operator, id) {
                Ok(tenant) => tenant.deleted_unix_ms,
                Err(TenancyError::TenantNotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            };
            let Some(deleted_unix_ms) = deleted_unix_ms else {
                continue; // created after the listing: sampled next time
            };
            let until = deleted_unix_ms.max(state.at_unix_ms);
            let (pieces, _carry) = byte_seconds_by_hour(name, *state, until)?;
            changes.push(Self::change(name, &pieces, None));
        }
        let mut report = SampleReport::default();
        self.commit(&mut states, changes, &mut report)?;
        Ok(report)
    }
}
