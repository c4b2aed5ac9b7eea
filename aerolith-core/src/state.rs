//! The in-memory view of the database: for each collection, a persistent
//! ordered map from document id to the location of its latest record, the
//! secondary indexes, and exact accounting. Persistent (structurally shared)
//! maps make a snapshot an O(1) clone, so readers work on a fixed version
//! while the writer builds the next one.

use std::sync::Arc;

use imbl::{OrdMap, OrdSet};
use serde_json::Value;

use crate::query::{index_keys, index_keys_at, FieldPath, IndexKey};
use crate::segment::Segment;

/// Where a record lives: segment, byte offset of its frame, frame length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

/// One live document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DocEntry {
    pub(crate) loc: Loc,
    /// Encoded JSON length of the document: what accounting counts.
    pub(crate) size_bytes: u32,
}

/// A secondary index: key -> ids of the documents holding that key.
#[derive(Debug, Clone)]
pub(crate) struct IndexState {
    pub(crate) unique: bool,
    pub(crate) entries: OrdMap<IndexKey, OrdSet<Arc<str>>>,
}

impl IndexState {
    pub(crate) fn new(unique: bool) -> Self {
        IndexState {
            unique,
            entries: OrdMap::new(),
        }
    }

    /// Another document already holding one of `keys`, if any.
    pub(crate) fn conflict(&self, keys: &[IndexKey], id: &str) -> Option<Arc<str>> {
        keys.iter().find_map(|k| {
            self.entries
                .get(k)
                .and_then(|ids| ids.iter().find(|other| &***other != id).cloned())
        })
    }

    pub(crate) fn insert(&mut self, keys: &[IndexKey], id: &Arc<str>) {
        for k in keys {
            self.entries
                .entry(k.clone())
                .or_default()
                .insert(Arc::clone(id));
        }
    }

    /// [`IndexState::insert`] taking the keys, so none is cloned, and
    /// descending the map once for a key it holds (`entry` descends twice).
    pub(crate) fn insert_owned(&mut self, keys: Vec<IndexKey>, id: &Arc<str>) {
        for k in keys {
            match self.entries.get_mut(&k) {
                Some(ids) => {
                    ids.insert(Arc::clone(id));
                }
                None => {
                    self.entries.insert(k, OrdSet::unit(Arc::clone(id)));
                }
            }
        }
    }

    pub(crate) fn remove(&mut self, keys: &[IndexKey], id: &str) {
        for k in keys {
            let now_empty = match self.entries.get_mut(k) {
                Some(ids) => {
                    ids.remove(id);
                    ids.is_empty()
                }
                None => false,
            };
            if now_empty {
                self.entries.remove(k);
            }
        }
    }
}

/// One collection.
#[derive(Debug, Clone, Default)]
pub(crate) struct CollectionState {
    pub(crate) docs: OrdMap<Arc<str>, DocEntry>,
    pub(crate) indexes: OrdMap<String, IndexState>,
    pub(crate) live_bytes: u64,
}

impl CollectionState {
    /// Records `id` at `entry`, replacing any earlier version, keeping the
    /// byte count exact. Index upkeep is the caller's (it needs the documents).
    pub(crate) fn put_entry(&mut self, id: Arc<str>, entry: DocEntry) {
        if let Some(old) = self.docs.insert(id, entry) {
            self.live_bytes -= u64::from(old.size_bytes);
        }
        self.live_bytes += u64::from(entry.size_bytes);
    }

    pub(crate) fn remove_entry(&mut self, id: &str) -> Option<DocEntry> {
        let old = self.docs.remove(id)?;
        self.live_bytes -= u64::from(old.size_bytes);
        Some(old)
    }

    /// Moves index entries from `old` to `new` versions of document `id`.
    /// `paths` are this collection's index paths, parsed (the caller keeps
    /// them for a whole batch rather than copying and parsing them again
    /// for every document).
    pub(crate) fn reindex(
        &mut self,
        paths: &[(String, Option<FieldPath>)],
        id: &Arc<str>,
        old: Option<&Value>,
        new: Option<&Value>,
    ) {
        for (path, parsed) in paths {
            let index = self
                .indexes
                .get_mut(path)
                .expect("the caller's paths are this collection's indexes");
            // A path that does not parse has no keys, as in `index_keys`.
            let keys = |doc| {
                parsed
                    .as_ref()
                    .map_or_else(Vec::new, |p| index_keys_at(doc, p))
            };
            if let Some(old) = old {
                index.remove(&keys(old), id);
            }
            if let Some(new) = new {
                index.insert_owned(keys(new), id);
            }
        }
    }

    /// This collection's index paths with their parsed form (`None` for a
    /// path that does not parse: it indexes nothing), in path order.
    pub(crate) fn index_paths(&self) -> Vec<(String, Option<FieldPath>)> {
        self.indexes
            .keys()
            .map(|path| (path.clone(), FieldPath::parse(path).ok()))
            .collect()
    }

    /// The first unique index that `doc` (as document `id`) would violate.
    pub(crate) fn unique_conflict(&self, id: &str, doc: &Value) -> Option<(String, Arc<str>)> {
        self.indexes
            .iter()
            .filter(|(_, ix)| ix.unique)
            .find_map(|(path, ix)| {
                ix.conflict(&index_keys(doc, path), id)
                    .map(|other| (path.clone(), other))
            })
    }
}

/// A version of the whole database.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    pub(crate) collections: OrdMap<String, CollectionState>,
    /// Every segment a location in this version may point into.
    pub(crate) segments: OrdMap<u64, Arc<Segment>>,
}
