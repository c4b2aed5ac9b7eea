//! The in-memory view of the database: for each collection, a persistent
//! ordered map from document id to the location of its latest record, the
//! secondary indexes, and exact accounting. Persistent (structurally shared)
//! maps make a snapshot an O(1) clone, so readers work on a fixed version
//! while the writer builds the next one. After an open through a
//! checkpoint, a collection's maps stay in the checkpoint file until they
//! are needed (`base`): point reads find single entries there, and the
//! first scan, index query or write builds them.

use std::sync::Arc;

use imbl::{OrdMap, OrdSet};
use serde_json::Value;

use crate::base::{BaseCollection, IndexMap};
use crate::error::Result;
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

/// A collection's id map: either built in memory, or still in the
/// checkpoint file (see `base`), where point reads find single entries
/// without building it. Cloning is O(1) either way.
#[derive(Clone)]
pub(crate) enum DocMap {
    /// Built: the persistent map itself.
    Map(OrdMap<Arc<str>, DocEntry>),
    /// As the checkpoint holds it, decoded as far as needed so far.
    Base(Arc<BaseCollection>),
}

impl Default for DocMap {
    fn default() -> Self {
        DocMap::Map(OrdMap::new())
    }
}

impl std::fmt::Debug for DocMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DocMap::Map(m) => f.debug_tuple("Map").field(&m.len()).finish(),
            DocMap::Base(b) => f.debug_tuple("Base").field(b).finish(),
        }
    }
}

impl DocMap {
    /// Number of documents.
    pub(crate) fn len(&self) -> usize {
        match self {
            DocMap::Map(m) => m.len(),
            DocMap::Base(b) => b.len(),
        }
    }

    /// The entry of document `id`.
    pub(crate) fn get(&self, id: &str) -> Result<Option<DocEntry>> {
        match self {
            DocMap::Map(m) => Ok(m.get(id).copied()),
            DocMap::Base(b) => b.entry(id),
        }
    }

    /// The entry of document `id`, with the id as the map holds it.
    pub(crate) fn get_key_value(&self, id: &str) -> Result<Option<(Arc<str>, DocEntry)>> {
        match self {
            DocMap::Map(m) => Ok(m.get_key_value(id).map(|(k, v)| (Arc::clone(k), *v))),
            DocMap::Base(b) => b.key_value(id),
        }
    }

    /// The whole map (built on first use if still in the checkpoint).
    pub(crate) fn map(&self) -> Result<&OrdMap<Arc<str>, DocEntry>> {
        match self {
            DocMap::Map(m) => Ok(m),
            DocMap::Base(b) => b.docs(),
        }
    }

    /// The map, to change it: a map still in the checkpoint is built first
    /// and becomes this version's own.
    pub(crate) fn map_mut(&mut self) -> Result<&mut OrdMap<Arc<str>, DocEntry>> {
        if let DocMap::Base(b) = self {
            *self = DocMap::Map(b.docs()?.clone());
        }
        match self {
            DocMap::Map(m) => Ok(m),
            DocMap::Base(_) => unreachable!("replaced above"),
        }
    }
}

/// The entries of a secondary index, built or still in the checkpoint.
#[derive(Clone)]
pub(crate) enum IndexEntries {
    /// Built: key -> ids of the documents holding that key.
    Map(IndexMap),
    /// Index number `.1` of a collection still in the checkpoint.
    Base(Arc<BaseCollection>, usize),
}

impl std::fmt::Debug for IndexEntries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexEntries::Map(m) => f.debug_tuple("Map").field(&m.len()).finish(),
            IndexEntries::Base(_, i) => f.debug_tuple("Base").field(i).finish(),
        }
    }
}

/// A secondary index: key -> ids of the documents holding that key.
#[derive(Debug, Clone)]
pub(crate) struct IndexState {
    pub(crate) unique: bool,
    entries: IndexEntries,
}

impl IndexState {
    pub(crate) fn new(unique: bool) -> Self {
        IndexState {
            unique,
            entries: IndexEntries::Map(OrdMap::new()),
        }
    }

    /// An index of a collection still in the checkpoint.
    pub(crate) fn in_base(unique: bool, base: Arc<BaseCollection>, i: usize) -> Self {
        IndexState {
            unique,
            entries: IndexEntries::Base(base, i),
        }
    }

    /// True while the entries are still in the checkpoint.
    pub(crate) fn is_in_base(&self) -> bool {
        matches!(self.entries, IndexEntries::Base(..))
    }

    /// Number of distinct keys.
    pub(crate) fn key_count(&self) -> usize {
        match &self.entries {
            IndexEntries::Map(m) => m.len(),
            IndexEntries::Base(b, i) => b.index_keys(*i),
        }
    }

    /// The entries (built on first use if still in the checkpoint).
    pub(crate) fn entries(&self) -> Result<&IndexMap> {
        match &self.entries {
            IndexEntries::Map(m) => Ok(m),
            IndexEntries::Base(b, i) => b.index(*i),
        }
    }

    /// The entries, to change them (built and made this version's own).
    pub(crate) fn entries_mut(&mut self) -> Result<&mut IndexMap> {
        if let IndexEntries::Base(b, i) = &self.entries {
            self.entries = IndexEntries::Map(b.index(*i)?.clone());
        }
        match &mut self.entries {
            IndexEntries::Map(m) => Ok(m),
            IndexEntries::Base(..) => unreachable!("replaced above"),
        }
    }

    /// Another document already holding one of `keys`, if any.
    pub(crate) fn conflict(&self, keys: &[IndexKey], id: &str) -> Result<Option<Arc<str>>> {
        let entries = self.entries()?;
        Ok(keys.iter().find_map(|k| {
            entries
                .get(k)
                .and_then(|ids| ids.iter().find(|other| &***other != id).cloned())
        }))
    }

    pub(crate) fn insert(&mut self, keys: &[IndexKey], id: &Arc<str>) -> Result<()> {
        let entries = self.entries_mut()?;
        for k in keys {
            entries.entry(k.clone()).or_default().insert(Arc::clone(id));
        }
        Ok(())
    }

    /// [`IndexState::insert`] taking the keys, so none is cloned, and
    /// descending the map once for a key it holds (`entry` descends twice).
    pub(crate) fn insert_owned(&mut self, keys: Vec<IndexKey>, id: &Arc<str>) -> Result<()> {
        let entries = self.entries_mut()?;
        for k in keys {
            match entries.get_mut(&k) {
                Some(ids) => {
                    ids.insert(Arc::clone(id));
                }
                None => {
                    entries.insert(k, OrdSet::unit(Arc::clone(id)));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn remove(&mut self, keys: &[IndexKey], id: &str) -> Result<()> {
        let entries = self.entries_mut()?;
        for k in keys {
            let now_empty = match entries.get_mut(k) {
                Some(ids) => {
                    ids.remove(id);
                    ids.is_empty()
                }
                None => false,
            };
            if now_empty {
                entries.remove(k);
            }
        }
        Ok(())
    }
}

/// One collection.
#[derive(Debug, Clone, Default)]
pub(crate) struct CollectionState {
    pub(crate) docs: DocMap,
    pub(crate) indexes: OrdMap<String, IndexState>,
    pub(crate) live_bytes: u64,
}

impl CollectionState {
    /// A collection still in the checkpoint.
    pub(crate) fn in_base(base: Arc<BaseCollection>) -> Self {
        let dir = base.directory();
        let indexes = dir
            .indexes
            .iter()
            .enumerate()
            .map(|(i, ix)| {
                (
                    ix.path.clone(),
                    IndexState::in_base(ix.unique, Arc::clone(&base), i),
                )
            })
            .collect();
        CollectionState {
            live_bytes: dir.live_bytes,
            indexes,
            docs: DocMap::Base(base),
        }
    }

    /// Builds whatever of this collection is still in the checkpoint, so
    /// that a write changes only maps of its own version (and a damaged
    /// checkpoint fails the write before it changes anything).
    pub(crate) fn materialize(&mut self) -> Result<()> {
        if matches!(self.docs, DocMap::Base(_)) {
            // Built on copies (O(1) clones) and kept only if all of it
            // builds: a failure leaves this collection exactly as it was.
            let mut docs = self.docs.clone();
            docs.map_mut()?;
            let mut indexes = OrdMap::new();
            for (path, index) in self.indexes.iter() {
                let mut index = index.clone();
                index.entries_mut()?;
                indexes.insert(path.clone(), index);
            }
            self.docs = docs;
            self.indexes = indexes;
        }
        Ok(())
    }

    /// Records `id` at `entry`, replacing any earlier version, keeping the
    /// byte count exact. Index upkeep is the caller's (it needs the documents).
    pub(crate) fn put_entry(&mut self, id: Arc<str>, entry: DocEntry) -> Result<()> {
        if let Some(old) = self.docs.map_mut()?.insert(id, entry) {
            self.live_bytes -= u64::from(old.size_bytes);
        }
        self.live_bytes += u64::from(entry.size_bytes);
        Ok(())
    }

    pub(crate) fn remove_entry(&mut self, id: &str) -> Result<Option<DocEntry>> {
        let Some(old) = self.docs.map_mut()?.remove(id) else {
            return Ok(None);
        };
        self.live_bytes -= u64::from(old.size_bytes);
        Ok(Some(old))
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
    ) -> Result<()> {
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
                index.remove(&keys(old), id)?;
            }
            if let Some(new) = new {
                index.insert_owned(keys(new), id)?;
            }
        }
        Ok(())
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
    pub(crate) fn unique_conflict(
        &self,
        id: &str,
        doc: &Value,
    ) -> Result<Option<(String, Arc<str>)>> {
        for (path, ix) in self.indexes.iter().filter(|(_, ix)| ix.unique) {
            if let Some(other) = ix.conflict(&index_keys(doc, path), id)? {
                return Ok(Some((path.clone(), other)));
            }
        }
        Ok(None)
    }
}

/// A version of the whole database.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    pub(crate) collections: OrdMap<String, CollectionState>,
    /// Every segment a location in this version may point into.
    pub(crate) segments: OrdMap<u64, Arc<Segment>>,
}
