//! The in-memory counters of the metering hot path.
//!
//! Counters live in cells, one per (tenant, metric, hour). Cells sit in
//! [`SHARD_COUNT`] shards chosen by a hash of the tenant, each a
//! `RwLock<HashMap<tenant, HashMap<metric, Vec<Cell>>>>`. Recording an event
//! into an existing cell takes its shard's lock in read mode (shared, no
//! writer is ever waited for except during cell creation or removal) and
//! updates atomics: `fetch_add` for sum and count, `fetch_max` for max. No
//! allocation happens after the cell exists: lookups borrow the `&str`
//! names. Creating a cell (first event of a tenant, metric and hour) takes
//! the shard's write lock once.
//!
//! Unique count and latest cannot be single atomics (a set, a pair); their
//! cells use a small per-cell mutex, never a shared one.
//!
//! The drain collects partial aggregates from every cell and removes cells
//! whose hour fell out of the acceptance window; removal holds the write
//! lock, so no event can land in a cell after its final collection.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::metering::ledger::{hour_start, Aggregation, LedgerEntry};

/// Number of counter shards; a power of two comfortably above the core
/// count, so tenants rarely share a lock word.
pub const SHARD_COUNT: usize = 64;
const _: () = assert!(SHARD_COUNT.is_power_of_two() && SHARD_COUNT > 1);

/// The multiply-rotate hash of rustc (FxHash): several times faster than
/// SipHash on short names, which matters because every event hashes its
/// tenant and metric. It is not keyed, so it is used only for names the
/// service controls (tenants are created by an operator, metrics come from
/// the configuration), never for client-chosen keys such as idempotency ids.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NameHash;

/// State of [`NameHash`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NameHasher(u64);

const NAME_HASH_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl NameHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(NAME_HASH_SEED);
    }
}

impl Hasher for NameHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

impl BuildHasher for NameHash {
    type Hasher = NameHasher;

    #[inline]
    fn build_hasher(&self) -> NameHasher {
        NameHasher::default()
    }
}

type NameMap<V> = HashMap<String, V, NameHash>;

/// Counters for one tenant, metric and hour.
#[derive(Debug)]
pub(crate) struct Cell {
    hour_start_unix_ms: i64,
    aggregation: Aggregation,
    value: AtomicU64,
    touched: AtomicBool,
    latest: Mutex<Option<(i64, u64)>>,
    unique: Mutex<HashSet<u64>>,
    unique_emitted: AtomicUsize,
}

impl Cell {
    fn new(hour_start_unix_ms: i64, aggregation: Aggregation) -> Self {
        Cell {
            hour_start_unix_ms,
            aggregation,
            value: AtomicU64::new(0),
            touched: AtomicBool::new(false),
            latest: Mutex::new(None),
            unique: Mutex::new(HashSet::new()),
            unique_emitted: AtomicUsize::new(0),
        }
    }

    #[inline]
    fn add(&self, quantity: u64, at_unix_ms: i64) {
        match self.aggregation {
            Aggregation::Sum => {
                self.value.fetch_add(quantity, Ordering::Relaxed);
            }
            Aggregation::Count => {
                self.value.fetch_add(1, Ordering::Relaxed);
            }
            Aggregation::Max => {
                self.value.fetch_max(quantity, Ordering::Relaxed);
                self.touched.store(true, Ordering::Relaxed);
            }
            Aggregation::UniqueCount => {
                self.unique.lock().insert(quantity);
            }
            Aggregation::Latest => {
                let mut latest = self.latest.lock();
                if latest.is_none_or(|(at, _)| at_unix_ms >= at) {
                    *latest = Some((at_unix_ms, quantity));
                }
            }
        }
    }

    /// Takes what accumulated since the last collection, as a partial
    /// aggregate, or `None` if nothing did.
    fn collect(&self, tenant: &str, metric: &str) -> Option<LedgerEntry> {
        let mut latest_at_unix_ms = None;
        let quantity = match self.aggregation {
            Aggregation::Sum | Aggregation::Count => {
                Some(self.value.swap(0, Ordering::AcqRel)).filter(|&v| v > 0)
            }
            Aggregation::Max => {
                let touched = self.touched.swap(false, Ordering::AcqRel);
                let value = self.value.swap(0, Ordering::AcqRel);
                (touched || value > 0).then_some(value)
            }
            Aggregation::UniqueCount => {
                let len = self.unique.lock().len();
                let emitted = self.unique_emitted.swap(len, Ordering::AcqRel);
                (len != emitted).then_some(len as u64)
            }
            Aggregation::Latest => self.latest.lock().take().map(|(at, value)| {
                latest_at_unix_ms = Some(at);
                value
            }),
        }?;
        Some(LedgerEntry {
            tenant: tenant.to_owned(),
            metric: metric.to_owned(),
            hour_start_unix_ms: self.hour_start_unix_ms,
            quantity,
            aggregation: self.aggregation,
            latest_at_unix_ms,
        })
    }
}

/// Passes a precomputed [`NameHash`] through, rotated so that the shard
/// bits (the top ones) do not end up in the map's bucket index or tag.
#[derive(Debug, Clone, Copy, Default)]
struct Prehashed;

#[derive(Debug, Clone, Copy, Default)]
struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed; fold anything else for completeness.
        let mut folded = NameHasher(self.0);
        folded.write(bytes);
        self.0 = folded.finish();
    }

    #[inline]
    fn write_u64(&mut self, hash: u64) {
        self.0 = hash.rotate_left(32);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

impl BuildHasher for Prehashed {
    type Hasher = PrehashedHasher;

    #[inline]
    fn build_hasher(&self) -> PrehashedHasher {
        PrehashedHasher::default()
    }
}

/// One metric's cells of one tenant, one per live hour.
#[derive(Debug)]
struct MetricCells {
    metric: Box<str>,
    hours: Vec<Cell>,
}

/// One tenant's cells.
#[derive(Debug)]
struct TenantCells {
    tenant: Box<str>,
    /// Few per tenant (the configured metrics), so a scan beats a hash.
    metrics: Vec<MetricCells>,
}

impl TenantCells {
    #[inline]
    fn metric(&self, metric: &str) -> Option<&MetricCells> {
        self.metrics.iter().find(|m| &*m.metric == metric)
    }
}

/// A shard: tenants by their name hash (a `Vec` for the rare collisions).
type ShardTable = HashMap<u64, Vec<TenantCells>, Prehashed>;

/// Why an event could not be counted (mapped to `MeterError` by the meter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddRefusal {
    /// The event's hour is older than the acceptance window.
    TooLate { oldest_accepted_unix_ms: i64 },
    /// The meter is shut down.
    Closed,
    /// The metric is not registered.
    UnknownMetric,
    /// Creating a cell would exceed the cell limit.
    CellLimit,
    /// The tenant name is empty or too long.
    InvalidName { len_bytes: usize },
}

/// All counters of a meter.
#[derive(Debug)]
pub(crate) struct Counters {
    shards: Box<[RwLock<ShardTable>]>,
    metrics: NameMap<Aggregation>,
    /// Events whose hour starts before this are refused. Only moves forward.
    oldest_accepted_unix_ms: AtomicI64,
    closed: AtomicBool,
    cells: AtomicUsize,
    cells_max: usize,
}

impl Counters {
    pub(crate) fn new(
        metrics: HashMap<String, Aggregation>,
        oldest_accepted_unix_ms: i64,
        cells_max: usize,
    ) -> Self {
        Counters {
            shards: (0..SHARD_COUNT)
                .map(|_| RwLock::new(ShardTable::default()))
                .collect(),
            metrics: metrics.into_iter().collect(),
            oldest_accepted_unix_ms: AtomicI64::new(oldest_accepted_unix_ms),
            closed: AtomicBool::new(false),
            cells: AtomicUsize::new(0),
            cells_max,
        }
    }

    pub(crate) fn aggregation(&self, metric: &str) -> Option<Aggregation> {
        self.metrics.get(metric).copied()
    }

    pub(crate) fn oldest_accepted_unix_ms(&self) -> i64 {
        self.oldest_accepted_unix_ms.load(Ordering::SeqCst)
    }

    pub(crate) fn raise_oldest_accepted(&self, unix_ms: i64) -> i64 {
        self.oldest_accepted_unix_ms
            .fetch_max(unix_ms, Ordering::SeqCst)
            .max(unix_ms)
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub(crate) fn cell_count(&self) -> usize {
        self.cells.load(Ordering::Relaxed)
    }

    /// The tenant's name hash and shard. The top bits pick the shard; the
    /// map inside the shard uses the rotated hash, so the two stay
    /// independent.
    #[inline]
    fn shard(&self, tenant: &str) -> (u64, &RwLock<ShardTable>) {
        let hash = NameHash.hash_one(tenant);
        let top_bits = hash >> (64 - SHARD_COUNT.trailing_zeros());
        (hash, &self.shards[top_bits as usize])
    }

    /// Checks, under the shard lock, that the event may still be counted.
    #[inline]
    fn admit(&self, hour: i64) -> Result<(), AddRefusal> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(AddRefusal::Closed);
        }
        let oldest_accepted_unix_ms = self.oldest_accepted_unix_ms.load(Ordering::SeqCst);
        if hour < oldest_accepted_unix_ms {
            return Err(AddRefusal::TooLate {
                oldest_accepted_unix_ms,
            });
        }
        Ok(())
    }

    /// Counts one event.
    #[inline]
    pub(crate) fn add(
        &self,
        tenant: &str,
        metric: &str,
        quantity: u64,
        at_unix_ms: i64,
    ) -> Result<(), AddRefusal> {
        let hour = hour_start(at_unix_ms);
        let (hash, shard) = self.shard(tenant);
        {
            let table = shard.read();
            if let Some(cell) = table
                .get(&hash)
                .and_then(|tenants| tenants.iter().find(|t| &*t.tenant == tenant))
                .and_then(|cells| cells.metric(metric))
                .and_then(|m| m.hours.iter().find(|c| c.hour_start_unix_ms == hour))
            {
                self.admit(hour)?;
                cell.add(quantity, at_unix_ms);
                return Ok(());
            }
        }
        self.add_creating(hash, shard, tenant, metric, quantity, at_unix_ms, hour)
    }

    #[cold]
    #[allow(clippy::too_many_arguments)] // the hot path's values, passed on once
    fn add_creating(
        &self,
        hash: u64,
        shard: &RwLock<ShardTable>,
        tenant: &str,
        metric: &str,
        quantity: u64,
        at_unix_ms: i64,
        hour: i64,
    ) -> Result<(), AddRefusal> {
        if tenant.is_empty() || tenant.len() > crate::metering::NAME_BYTES_MAX {
            return Err(AddRefusal::InvalidName {
                len_bytes: tenant.len(),
            });
        }
        let aggregation = self.aggregation(metric).ok_or(AddRefusal::UnknownMetric)?;
        let mut table = shard.write();
        self.admit(hour)?;
        // Another thread may have created the cell since the read lock.
        if let Some(cell) = table
            .get(&hash)
            .and_then(|tenants| tenants.iter().find(|t| &*t.tenant == tenant))
            .and_then(|cells| cells.metric(metric))
            .and_then(|m| m.hours.iter().find(|c| c.hour_start_unix_ms == hour))
        {
            cell.add(quantity, at_unix_ms);
            return Ok(());
        }
        // Refuse before inserting anything, so a refusal leaves no empty
        // tenant or metric entries behind.
        if self.cells.load(Ordering::Relaxed) >= self.cells_max {
            return Err(AddRefusal::CellLimit);
        }
        self.cells.fetch_add(1, Ordering::Relaxed);
        let tenants = table.entry(hash).or_default();
        let tenant_index = match tenants.iter().position(|t| &*t.tenant == tenant) {
            Some(index) => index,
            None => {
                tenants.push(TenantCells {
                    tenant: tenant.into(),
                    metrics: Vec::new(),
                });
                tenants.len() - 1
            }
        };
        let metrics = &mut tenants[tenant_index].metrics;
        let metric_index = match metrics.iter().position(|m| &*m.metric == metric) {
            Some(index) => index,
            None => {
                metrics.push(MetricCells {
                    metric: metric.into(),
                    hours: Vec::new(),
                });
                metrics.len() - 1
            }
        };
        let cell = Cell::new(hour, aggregation);
        cell.add(quantity, at_unix_ms);
        metrics[metric_index].hours.push(cell);
        Ok(())
    }

    /// Collects partial aggregates from every cell and removes cells whose
    /// hour is older than `oldest_accepted_unix_ms` (after a final
    /// collection). With `exclusive`, every shard is collected under its
    /// write lock, so no concurrent event can slip past the collection.
    pub(crate) fn collect(&self, oldest_accepted_unix_ms: i64, exclusive: bool) -> Collected {
        let mut collected = Collected::default();
        for shard in self.shards.iter() {
            let mut stale = false;
            if !exclusive {
                let table = shard.read();
                for cells in table.values().flatten() {
                    for m in &cells.metrics {
                        for cell in &m.hours {
                            stale |= cell.hour_start_unix_ms < oldest_accepted_unix_ms;
                            collected
                                .entries
                                .extend(cell.collect(&cells.tenant, &m.metric));
                        }
                    }
                }
            }
            if exclusive || stale {
                let mut table = shard.write();
                for tenants in table.values_mut() {
                    for cells in tenants.iter_mut() {
                        for m in cells.metrics.iter_mut() {
                            for cell in &m.hours {
                                collected
                                    .entries
                                    .extend(cell.collect(&cells.tenant, &m.metric));
                            }
                            let before = m.hours.len();
                            m.hours
                                .retain(|c| c.hour_start_unix_ms >= oldest_accepted_unix_ms);
                            collected.cells_removed += before - m.hours.len();
                        }
                        cells.metrics.retain(|m| !m.hours.is_empty());
                    }
                    tenants.retain(|cells| !cells.metrics.is_empty());
                }
                table.retain(|_, tenants| !tenants.is_empty());
            }
        }
        self.cells
            .fetch_sub(collected.cells_removed, Ordering::Relaxed);
        collected
    }
}

/// What one collection found.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub(crate) entries: Vec<LedgerEntry>,
    pub(crate) cells_removed: usize,
}

type IdsByHour = HashMap<i64, HashSet<u128>>;

/// Idempotency ids seen recently, one set per event hour, in shards chosen
/// by id. An id is remembered while its event hour is inside the acceptance
/// window; redeliveries of an id in any remembered hour are duplicates.
#[derive(Debug)]
pub(crate) struct Dedup {
    shards: Box<[Mutex<IdsByHour>]>,
    ids: AtomicUsize,
    ids_max: usize,
}

/// Result of offering an id to [`Dedup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DedupOutcome {
    /// First time: count the event.
    New,
    /// Seen before: do not count it.
    Duplicate,
    /// The id store is full.
    Full,
}

impl Dedup {
    pub(crate) fn new(ids_max: usize) -> Self {
        Dedup {
            shards: (0..SHARD_COUNT)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            ids: AtomicUsize::new(0),
            ids_max,
        }
    }

    pub(crate) fn offer(&self, id: u128, hour: i64) -> DedupOutcome {
        // Ids are expected to be random; fold all bits to pick the shard.
        let folded = (id as u64) ^ ((id >> 64) as u64);
        let mut shard = self.shards[(folded as usize) & (SHARD_COUNT - 1)].lock();
        if shard.values().any(|ids| ids.contains(&id)) {
            return DedupOutcome::Duplicate;
        }
        if self.ids.load(Ordering::Relaxed) >= self.ids_max {
            return DedupOutcome::Full;
        }
        self.ids.fetch_add(1, Ordering::Relaxed);
        shard.entry(hour).or_default().insert(id);
        DedupOutcome::New
    }

    /// Forgets one id again (its event was refused after the id was
    /// accepted, so a redelivery must be counted).
    pub(crate) fn forget(&self, id: u128, hour: i64) {
        let folded = (id as u64) ^ ((id >> 64) as u64);
        let mut shard = self.shards[(folded as usize) & (SHARD_COUNT - 1)].lock();
        if shard.get_mut(&hour).is_some_and(|ids| ids.remove(&id)) {
            self.ids.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Forgets ids of hours older than `oldest_accepted_unix_ms`.
    pub(crate) fn prune(&self, oldest_accepted_unix_ms: i64) -> usize {
        let mut pruned = 0;
        for shard in self.shards.iter() {
            shard.lock().retain(|&hour, ids| {
                let keep = hour >= oldest_accepted_unix_ms;
                if !keep {
                    pruned += ids.len();
                }
                keep
            });
        }
        self.ids.fetch_sub(pruned, Ordering::Relaxed);
        pruned
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.load(Ordering::Relaxed)
    }
}
