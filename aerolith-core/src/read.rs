//! Reads: point look-ups, paging, queries with the planner, counts, explain
//! and accounting, all on a [`Snapshot`] — a fixed version of the database
//! that writes committed later do not change.

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::engine::{with_doc_bytes, with_doc_in_body, Database, DocKey, Inner};
use crate::error::{Error, Result};
use crate::query::{Filter, IndexScan, Projection, QueryError, SortSpec};
use crate::record::{decode_frames, FrameError, FRAMES_AT_ONCE, FRAME_HEADER_BYTES};
use crate::state::{CollectionState, DocEntry, Loc, State};

/// Reads the document at `loc` for a point read: from the record cache if
/// its verified payload is there, otherwise verified from the segment and
/// then remembered in the cache. Only bytes that passed the checksum (and
/// decryption) and parsed as JSON are ever cached.
fn read_doc_cached(inner: &Inner, state: &State, loc: Loc, key: DocKey<'_>) -> Result<Value> {
    let owner = key.owner_hash();
    if let Some(payload) = inner.record_cache.get(loc, owner) {
        // It parsed when it was cached; should it not now, read the record.
        if let Ok(doc) = serde_json::from_slice(&payload) {
            return Ok(doc);
        }
    }
    let (payload, doc) = with_doc_bytes(inner.cipher.as_ref(), state, loc, key, |json| {
        let doc = serde_json::from_slice::<Value>(json)?;
        Ok((Arc::<[u8]>::from(json), doc))
    })?;
    inner.record_cache.insert_verified(loc, owner, payload);
    Ok(doc)
}

/// How one record of a [`VerifiedGroup`] stands.
enum GroupRecord {
    /// A point read cached the record's verified payload.
    Cached(Arc<[u8]>),
    /// The record's bytes, in the group's map number `map`, at
    /// `start..end`; `verdict` holds the frame's length once its body
    /// passed its checksum.
    Framed {
        map: usize,
        start: usize,
        end: usize,
        verdict: std::result::Result<usize, FrameError>,
    },
    /// The record could not be reached (its error, taken when read).
    Unreachable(Option<Error>),
}

/// The records of up to [`FRAMES_AT_ONCE`] documents a query reads next,
/// their checksums verified together ([`decode_frames`]: several records
/// hashed side by side), read in place from the segment maps. A failure is
/// kept with its record and reported only when the query reaches that
/// record, so a query that stops early (a limit) fails exactly when it
/// would reading one record at a time.
struct VerifiedGroup<'q> {
    inner: &'q Inner,
    state: &'q State,
    maps: Vec<(u64, Arc<memmap2::Mmap>)>,
    records: Vec<GroupRecord>,
}

impl<'q> VerifiedGroup<'q> {
    fn new(
        inner: &'q Inner,
        state: &'q State,
        collection: &str,
        group: &[(&Arc<str>, DocEntry)],
    ) -> VerifiedGroup<'q> {
        let mut verified = VerifiedGroup {
            inner,
            state,
            maps: Vec::new(),
            records: Vec::with_capacity(group.len()),
        };
        for (id, entry) in group {
            let key = DocKey {
                coll: collection,
                id,
            };
            let record = match inner.record_cache.get(entry.loc, key.owner_hash()) {
                Some(payload) => GroupRecord::Cached(payload),
                None => match verified.locate(entry.loc) {
                    Ok((map, start, end)) => GroupRecord::Framed {
                        map,
                        start,
                        end,
                        // Set below, with the group's checksums.
                        verdict: Err(FrameError::Incomplete),
                    },
                    Err(e) => GroupRecord::Unreachable(Some(e)),
                },
            };
            verified.records.push(record);
        }
        let mut frames: Vec<&[u8]> = Vec::with_capacity(group.len());
        let mut framed: Vec<usize> = Vec::with_capacity(group.len());
        for (k, record) in verified.records.iter().enumerate() {
            if let GroupRecord::Framed {
                map, start, end, ..
            } = record
            {
                frames.push(&verified.maps[*map].1[*start..*end]);
                framed.push(k);
            }
        }
        let mut decoded = Vec::with_capacity(frames.len());
        decode_frames(&frames, &mut decoded);
        let verdicts: Vec<_> = decoded
            .into_iter()
            .map(|d| d.map(|(_, total)| total))
            .collect();
        for (k, result) in framed.into_iter().zip(verdicts) {
            if let GroupRecord::Framed { verdict, .. } = &mut verified.records[k] {
                *verdict = result;
            }
        }
        verified
    }

    /// The map holding the frame at `loc` (one map per segment, shared by
    /// the group's records) and the frame's byte range in it.
    fn locate(&mut self, loc: Loc) -> Result<(usize, usize, usize)> {
        let segment = self.segment(loc)?;
        let out_of_range = || Error::Corrupt {
            path: segment.path.clone(),
            offset: loc.offset,
            reason: "record location is past the end of the segment".into(),
        };
        let end = loc
            .offset
            .checked_add(u64::from(loc.len))
            .ok_or_else(out_of_range)?;
        let map = match self
            .maps
            .iter()
            .position(|(id, map)| *id == loc.segment && map.len() as u64 >= end)
        {
            Some(map) => map,
            None => {
                let map = segment.map_reaching(loc.offset, end)?;
                self.maps.push((loc.segment, map));
                self.maps.len() - 1
            }
        };
        let start = usize::try_from(loc.offset).map_err(|_| out_of_range())?;
        let end = usize::try_from(end).map_err(|_| out_of_range())?;
        Ok((map, start, end))
    }

    fn segment(&self, loc: Loc) -> Result<&'q Arc<crate::segment::Segment>> {
        segment_of(self.state, loc)
    }

    /// Calls `f` with the verified JSON of record `k` (at `loc`, document
    /// `key`): the payload a point read cached, else the record verified
    /// in place. Queries do not fill the cache, so a scan does not push
    /// the documents of point reads out.
    fn with_doc_bytes<R>(
        &mut self,
        k: usize,
        loc: Loc,
        key: DocKey<'_>,
        f: impl FnOnce(&[u8]) -> serde_json::Result<R>,
    ) -> Result<R> {
        match &mut self.records[k] {
            GroupRecord::Cached(payload) => f(payload).map_err(|e| Error::Corrupt {
                path: std::path::PathBuf::from(crate::segment::segment_file_name(loc.segment)),
                offset: loc.offset,
                reason: format!("document is not JSON: {e}"),
            }),
            GroupRecord::Unreachable(error) => Err(error.take().unwrap_or(Error::Corrupt {
                path: std::path::PathBuf::from(crate::segment::segment_file_name(loc.segment)),
                offset: loc.offset,
                reason: "record could not be read".into(),
            })),
            GroupRecord::Framed {
                map,
                start,
                end,
                verdict,
            } => {
                let segment = segment_of(self.state, loc)?;
                let total = match verdict {
                    Ok(total) => *total,
                    Err(e) => {
                        return Err(Error::Corrupt {
                            path: segment.path.clone(),
                            offset: loc.offset,
                            reason: e.to_string(),
                        })
                    }
                };
                let frame = &self.maps[*map].1[*start..*end];
                let body = &frame[FRAME_HEADER_BYTES..total];
                with_doc_in_body(self.inner.cipher.as_ref(), segment, loc, body, key, f)
            }
        }
    }
}

/// The segment a location points into, or `Corrupt` if it is not open.
fn segment_of(state: &State, loc: Loc) -> Result<&Arc<crate::segment::Segment>> {
    state
        .segments
        .get(&loc.segment)
        .ok_or_else(|| Error::Corrupt {
            path: std::path::PathBuf::from(crate::segment::segment_file_name(loc.segment)),
            offset: loc.offset,
            reason: "record points into a segment that is not open".into(),
        })
}

/// A query over one collection: filter, sort, skip, limit, projection and
/// an optional time budget.
#[derive(Debug, Clone)]
pub struct Query {
    /// Which documents match.
    pub filter: Filter,
    /// Order of results; without it, results come in index or id order.
    pub sort: Option<SortSpec>,
    /// Matching documents to pass over before returning any.
    pub skip: usize,
    /// Most documents to return.
    pub limit: Option<usize>,
    /// Fields to keep or drop in each result.
    pub projection: Option<Projection>,
    /// Stop with [`Error::Timeout`] once the query has run this long.
    pub time_budget: Option<Duration>,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            filter: Filter::all(),
            sort: None,
            skip: 0,
            limit: None,
            projection: None,
            time_budget: None,
        }
    }
}

impl Query {
    /// A query for documents matching `filter`.
    pub fn filter(filter: &Value) -> Result<Query> {
        Ok(Query {
            filter: Filter::parse(filter)?,
            ..Query::default()
        })
    }

    /// Parses `{"filter":{..},"sort":{..},"skip":n,"limit":n,"projection":{..}}`;
    /// every member is optional. Unknown members are an error.
    pub fn from_json(spec: &Value) -> Result<Query> {
        let Value::Object(map) = spec else {
            return Err(QueryError::QueryNotAnObject.into());
        };
        let mut q = Query::default();
        for (key, value) in map {
            match key.as_str() {
                "filter" => q.filter = Filter::parse(value)?,
                "sort" => q.sort = Some(SortSpec::parse(value)?),
                "projection" => q.projection = Some(Projection::parse(value)?),
                "skip" => q.skip = count_member("skip", value)?,
                "limit" => q.limit = Some(count_member("limit", value)?),
                other => {
                    return Err(QueryError::UnknownQueryMember {
                        member: other.to_owned(),
                    }
                    .into())
                }
            }
        }
        Ok(q)
    }

    /// Sets the time budget.
    pub fn time_budget(mut self, budget: Duration) -> Self {
        self.time_budget = Some(budget);
        self
    }
}

fn count_member(member: &'static str, value: &Value) -> Result<usize> {
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| QueryError::InvalidCount { member }.into())
}

/// How a query was (or would be) executed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explain {
    /// `"index_keys"`, `"index_range"` or `"full_scan"`.
    pub plan: &'static str,
    /// The indexed path used, if any.
    pub index: Option<String>,
    /// Documents read and tested against the filter.
    pub documents_examined: u64,
    /// Documents returned (after skip and limit).
    pub returned: u64,
}

/// Exact accounting for one collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CollectionStats {
    /// Live documents.
    pub documents: u64,
    /// Sum of the encoded JSON sizes of the live documents.
    pub live_bytes: u64,
    /// Secondary indexes.
    pub indexes: usize,
}

/// Exact accounting for a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseStats {
    /// Collections.
    pub collections: u64,
    /// Live documents across all collections.
    pub documents: u64,
    /// Sum of the encoded JSON sizes of all live documents.
    pub live_bytes: u64,
    /// Segment files in use.
    pub segments: u64,
    /// Bytes of those files on disk (live data, overwritten versions not yet
    /// compacted, framing and encryption overhead).
    pub disk_bytes: u64,
}

/// Description of a secondary index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexInfo {
    /// The indexed field path.
    pub path: String,
    /// True if the index rejects duplicate keys.
    pub unique: bool,
    /// Distinct keys in the index.
    pub keys: u64,
}

/// A consistent, read-only version of the database.
#[derive(Clone)]
pub struct Snapshot {
    inner: Arc<Inner>,
    state: Arc<State>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("collections", &self.state.collections.len())
            .finish()
    }
}

/// The collection `name` of `state`, or [`Error::CollectionNotFound`].
fn collection_in<'s>(state: &'s State, name: &str) -> Result<&'s CollectionState> {
    state
        .collections
        .get(name)
        .ok_or_else(|| Error::CollectionNotFound {
            collection: name.to_owned(),
        })
}

/// The documents a plan reads, as (id, entry) pairs.
type Candidates<'s> = Box<dyn Iterator<Item = (&'s Arc<str>, DocEntry)> + 's>;

/// Plan chosen for a query.
enum Plan {
    FullScan,
    Index { path: String, scan: IndexScan },
}

impl Database {
    /// A snapshot of the current committed state.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            inner: Arc::clone(&self.inner),
            state: self.inner.snapshot_state(),
        }
    }

    /// Reads one document.
    pub fn get(&self, collection: &str, id: &str) -> Result<Option<Value>> {
        // The published state alone, without a whole `Snapshot`.
        let state = self.inner.snapshot_state();
        let c = collection_in(&state, collection)?;
        match c.docs.get(id)? {
            Some(entry) => {
                let key = DocKey {
                    coll: collection,
                    id,
                };
                read_doc_cached(&self.inner, &state, entry.loc, key).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Reads one document as the JSON bytes it is stored as, verified (and
    /// decrypted) like [`Database::get`] and through the same record cache,
    /// but never built into a `Value`: for callers that pass the document on
    /// as JSON text. The bytes are what `serde_json::to_vec` of the document
    /// [`Database::get`] returns gives.
    pub fn get_json_bytes(&self, collection: &str, id: &str) -> Result<Option<Vec<u8>>> {
        let state = self.inner.snapshot_state();
        let c = collection_in(&state, collection)?;
        let Some(entry) = c.docs.get(id)? else {
            return Ok(None);
        };
        let key = DocKey {
            coll: collection,
            id,
        };
        let owner = key.owner_hash();
        if let Some(payload) = self.inner.record_cache.get(entry.loc, owner) {
            return Ok(Some(payload.to_vec()));
        }
        let payload = with_doc_bytes(self.inner.cipher.as_ref(), &state, entry.loc, key, |json| {
            // Checked like every point read before it may enter the cache.
            serde_json::from_slice::<serde::de::IgnoredAny>(json)?;
            Ok(Arc::<[u8]>::from(json))
        })?;
        self.inner
            .record_cache
            .insert_verified(entry.loc, owner, Arc::clone(&payload));
        Ok(Some(payload.to_vec()))
    }

    /// Names of all collections, sorted.
    pub fn list_collections(&self) -> Vec<String> {
        self.snapshot().list_collections()
    }

    /// Runs a query.
    pub fn find(&self, collection: &str, query: &Query) -> Result<Vec<Value>> {
        self.snapshot().find(collection, query)
    }

    /// Counts the documents matching a query (skip and limit apply).
    pub fn count(&self, collection: &str, query: &Query) -> Result<u64> {
        self.snapshot().count(collection, query)
    }

    /// Runs a query and says how it was executed.
    pub fn explain(&self, collection: &str, query: &Query) -> Result<Explain> {
        self.snapshot().explain(collection, query)
    }

    /// Accounting for one collection.
    pub fn collection_stats(&self, collection: &str) -> Result<CollectionStats> {
        self.snapshot().collection_stats(collection)
    }

    /// Accounting for the whole database.
    pub fn stats(&self) -> Result<DatabaseStats> {
        self.snapshot().stats()
    }

    /// The indexes of a collection.
    pub fn list_indexes(&self, collection: &str) -> Result<Vec<IndexInfo>> {
        self.snapshot().list_indexes(collection)
    }
}

impl Snapshot {
    fn collection(&self, name: &str) -> Result<&CollectionState> {
        collection_in(&self.state, name)
    }

    /// Reads one document.
    pub fn get(&self, collection: &str, id: &str) -> Result<Option<Value>> {
        let c = self.collection(collection)?;
        match c.docs.get(id)? {
            Some(entry) => {
                let key = DocKey {
                    coll: collection,
                    id,
                };
                read_doc_cached(&self.inner, &self.state, entry.loc, key).map(Some)
            }
            None => Ok(None),
        }
    }

    /// True if the collection exists.
    pub fn has_collection(&self, collection: &str) -> bool {
        self.state.collections.contains_key(collection)
    }

    /// Names of all collections, sorted.
    pub fn list_collections(&self) -> Vec<String> {
        self.state.collections.keys().cloned().collect()
    }

    /// Up to `limit` document ids in id order, starting after `after`.
    pub fn list_ids(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let c = self.collection(collection)?;
        let lower = match after {
            Some(a) => Bound::Excluded(Arc::<str>::from(a)),
            None => Bound::Unbounded,
        };
        Ok(c.docs
            .map()?
            .range((lower, Bound::Unbounded))
            .take(limit)
            .map(|(id, _)| id.to_string())
            .collect())
    }

    /// Accounting for one collection.
    pub fn collection_stats(&self, collection: &str) -> Result<CollectionStats> {
        let c = self.collection(collection)?;
        Ok(CollectionStats {
            documents: c.docs.len() as u64,
            live_bytes: c.live_bytes,
            indexes: c.indexes.len(),
        })
    }

    /// Accounting for the whole database.
    pub fn stats(&self) -> Result<DatabaseStats> {
        let mut disk_bytes = 0;
        for segment in self.state.segments.values() {
            disk_bytes += segment.len()?;
        }
        Ok(DatabaseStats {
            collections: self.state.collections.len() as u64,
            documents: self
                .state
                .collections
                .values()
                .map(|c| c.docs.len() as u64)
                .sum(),
            live_bytes: self.state.collections.values().map(|c| c.live_bytes).sum(),
            segments: self.state.segments.len() as u64,
            disk_bytes,
        })
    }

    /// The indexes of a collection.
    pub fn list_indexes(&self, collection: &str) -> Result<Vec<IndexInfo>> {
        Ok(self
            .collection(collection)?
            .indexes
            .iter()
            .map(|(path, ix)| IndexInfo {
                path: path.clone(),
                unique: ix.unique,
                keys: ix.key_count() as u64,
            })
            .collect())
    }

    /// Runs a query.
    pub fn find(&self, collection: &str, query: &Query) -> Result<Vec<Value>> {
        Ok(self.execute(collection, query)?.0)
    }

    /// Counts the documents matching a query (skip and limit apply).
    pub fn count(&self, collection: &str, query: &Query) -> Result<u64> {
        let c = self.collection(collection)?;
        if query.filter.matches_everything() {
            let total = c.docs.len().saturating_sub(query.skip);
            return Ok(query.limit.map_or(total, |l| total.min(l)) as u64);
        }
        let counting = Query {
            sort: None,
            projection: None,
            ..query.clone()
        };
        Ok(self.execute(collection, &counting)?.0.len() as u64)
    }

    /// Runs a query and says how it was executed.
    pub fn explain(&self, collection: &str, query: &Query) -> Result<Explain> {
        Ok(self.execute(collection, query)?.1)
    }

    fn plan(c: &CollectionState, filter: &Filter) -> Plan {
        let mut best: Option<(u8, String, IndexScan)> = None;
        for predicate in filter.index_predicates() {
            let Some(index) = c.indexes.get(&predicate.path) else {
                continue;
            };
            // Point look-ups on a unique index beat point look-ups, which beat ranges.
            let rank = match (&predicate.scan, index.unique) {
                (IndexScan::Keys(_), true) => 0,
                (IndexScan::Keys(_), false) => 1,
                (IndexScan::Range { .. }, _) => 2,
            };
            if best.as_ref().is_none_or(|(r, _, _)| rank < *r) {
                best = Some((rank, predicate.path, predicate.scan));
            }
        }
        match best {
            Some((_, path, scan)) => Plan::Index { path, scan },
            None => Plan::FullScan,
        }
    }

    fn execute<'s>(&'s self, collection: &str, query: &Query) -> Result<(Vec<Value>, Explain)> {
        let c = self.collection(collection)?;
        let clock = &self.inner.clock;
        let started = clock.monotonic();
        let check_deadline = || -> Result<()> {
            if let Some(budget) = query.time_budget {
                let elapsed = clock.monotonic().saturating_sub(started);
                if elapsed > budget {
                    return Err(Error::Timeout {
                        budget_ms: budget.as_millis() as u64,
                        elapsed_ms: elapsed.as_millis() as u64,
                    });
                }
            }
            Ok(())
        };
        let plan = Self::plan(c, &query.filter);
        // Candidates as (id, entry) pairs: a full scan walks the id map once
        // instead of looking each id up again.
        let (plan_name, index_path, candidates, prefilter): (
            &'static str,
            Option<String>,
            Candidates<'s>,
            bool,
        ) = match &plan {
            Plan::FullScan => (
                "full_scan",
                None,
                Box::new(c.docs.map()?.iter().map(|(id, entry)| (id, *entry))),
                true,
            ),
            Plan::Index { path, scan } => {
                let index = c
                    .indexes
                    .get(path)
                    .expect("planned from this collection's indexes");
                // One key's set holds each id once; only several keys (or
                // a range) can name a document twice.
                let single_key = matches!(scan, IndexScan::Keys(keys) if keys.len() == 1);
                let index_entries = index.entries()?;
                let docs = c.docs.map()?;
                let mut seen: HashSet<&Arc<str>> = HashSet::new();
                let mut entries: Vec<(&Arc<str>, DocEntry)> = Vec::new();
                let mut take = |set: &'s imbl::OrdSet<Arc<str>>| {
                    for id in set.iter() {
                        if single_key || seen.insert(id) {
                            let entry = docs.get(id).expect("indexes only hold live ids");
                            entries.push((id, *entry));
                        }
                    }
                };
                let name = match scan {
                    IndexScan::Keys(keys) => {
                        for key in keys {
                            if let Some(set) = index_entries.get(key) {
                                take(set);
                            }
                        }
                        "index_keys"
                    }
                    IndexScan::Range { lower, upper } => {
                        for (_, set) in index_entries.range((lower.clone(), upper.clone())) {
                            take(set);
                        }
                        "index_range"
                    }
                };
                // When the filter looks at nothing but the indexed member,
                // the index has already done the rejecting and a cheap
                // pre-check would only parse each candidate twice.
                let first = path.split('.').next().unwrap_or(path);
                let prefilter = query.filter.top_level_members() != [first];
                (
                    name,
                    Some(path.clone()),
                    Box::new(entries.into_iter()),
                    prefilter,
                )
            }
        };
        // Without a sort, stop as soon as skip + limit documents matched.
        let stop_after = match (&query.sort, query.limit) {
            (None, Some(limit)) => Some(query.skip.saturating_add(limit)),
            _ => None,
        };
        let mut matched = Vec::new();
        let mut examined = 0u64;
        let mut candidates = candidates;
        let mut group: Vec<(&Arc<str>, DocEntry)> = Vec::with_capacity(FRAMES_AT_ONCE);
        'scan: loop {
            group.clear();
            group.extend(candidates.by_ref().take(FRAMES_AT_ONCE));
            if group.is_empty() {
                break;
            }
            // The checksum (or tag) is verified before the filter sees a
            // byte: the group's checksums together, here.
            let mut verified = VerifiedGroup::new(&self.inner, &self.state, collection, &group);
            for (k, (id, entry)) in group.iter().enumerate() {
                check_deadline()?;
                if stop_after.is_some_and(|n| matched.len() >= n) {
                    break 'scan;
                }
                examined += 1;
                let key = DocKey {
                    coll: collection,
                    id,
                };
                let doc = verified.with_doc_bytes(k, entry.loc, key, |json| {
                    // Reject on the few members the filter reads before building
                    // the whole document; a match is confirmed on the full parse.
                    if prefilter && query.filter.matches_encoded(json) == Some(false) {
                        return Ok(None);
                    }
                    serde_json::from_slice::<Value>(json).map(Some)
                })?;
                if let Some(doc) = doc {
                    if query.filter.matches(&doc) {
                        matched.push(doc);
                    }
                }
            }
        }
        if let Some(sort) = &query.sort {
            check_deadline()?;
            matched.sort_by(|a, b| sort.compare(a, b));
        }
        let results: Vec<Value> = matched
            .into_iter()
            .skip(query.skip)
            .take(query.limit.unwrap_or(usize::MAX))
            .map(|doc| match &query.projection {
                Some(p) => p.apply(&doc),
                None => doc,
            })
            .collect();
        let explain = Explain {
            plan: plan_name,
            index: index_path,
            documents_examined: examined,
            returned: results.len() as u64,
        };
        Ok((results, explain))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Durability, Options};

    /// A location that holds another document (as a bug in the id map, the
    /// checkpoint or compaction could produce) is an error on every read
    /// path, cached or not; the other document, which may be another
    /// tenant's in a shared engine, is never served.
    #[test]
    fn a_location_holding_another_document_is_corrupt_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let db =
            Database::open(dir.path(), Options::default().durability(Durability::Never)).unwrap();
        db.create_collection("t1.c").unwrap();
        db.create_collection("t2.c").unwrap();
        db.insert("t1.c", json!({"_id": "x", "v": "one"})).unwrap();
        db.insert("t2.c", json!({"_id": "x", "v": "two"})).unwrap();
        db.create_index("t1.c", "v", false).unwrap();
        // Cache t2.c/x's verified payload first.
        assert_eq!(db.get("t2.c", "x").unwrap().unwrap()["v"], "two");
        {
            let mut published = db.inner.published.write();
            let mut state = (**published).clone();
            let theirs = state
                .collections
                .get("t2.c")
                .unwrap()
                .docs
                .get("x")
                .unwrap()
                .unwrap()
                .loc;
            let ours = state.collections.get_mut("t1.c").unwrap();
            ours.docs.map_mut().unwrap().get_mut("x").unwrap().loc = theirs;
            *published = Arc::new(state);
        }
        let corrupt = |r: &Result<_>| matches!(r, Err(Error::Corrupt { .. }));
        assert!(corrupt(&db.get("t1.c", "x").map(|_| ())));
        assert!(corrupt(&db.get_json_bytes("t1.c", "x").map(|_| ())));
        assert!(corrupt(&db.snapshot().get("t1.c", "x").map(|_| ())));
        let all = Query::filter(&json!({})).unwrap();
        assert!(corrupt(&db.find("t1.c", &all).map(|_| ())));
        let by_index = Query::filter(&json!({"v": "one"})).unwrap();
        assert!(corrupt(&db.find("t1.c", &by_index).map(|_| ())));
        assert_eq!(db.get("t2.c", "x").unwrap().unwrap()["v"], "two");
    }
}
