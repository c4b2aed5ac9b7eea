//! The part of the state still held by the checkpoint file, read lazily.
//!
//! An open through a checkpoint maps the file and checks only its directory
//! (the log it covers and, per collection, the counts, the first id of each
//! block of the id table, and where the index entries are). A block of the
//! id table is checked (blake3, and the AEAD tag when encrypted) and decoded
//! the first time a point read needs it; a collection's whole id map, or one
//! of its indexes, is built the first time a scan, a query on that index or a
//! write needs it. Every version of the state sharing a collection shares
//! what has been decoded of it, so each block is checked and decoded once.
//!
//! A block that fails its check is damage to derived data, found after the
//! open: the operation that needed it fails with [`Error::Corrupt`] naming
//! the checkpoint, the file is removed (if it is still the file mapped) so
//! that the next open replays the log instead, and no document is lost (the
//! log holds them all). A write is never applied to a partly decoded
//! collection: writes build the whole collection first (see
//! `CollectionState::materialize`).

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use imbl::{OrdMap, OrdSet};
use memmap2::Mmap;
use parking_lot::Mutex;

use crate::checkpoint::{self, BlockRef, DirCollection, Extents, Rejected, Stored};
use crate::crypto::RecordCipher;
use crate::error::{Error, Result};
use crate::query::IndexKey;
use crate::state::DocEntry;

/// An index's entries: key -> ids of the documents holding that key.
pub(crate) type IndexMap = OrdMap<IndexKey, OrdSet<Arc<str>>>;

/// The bytes of a checkpoint file: mapped, or read (the fuzz targets).
pub(crate) enum FileBytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(map) => map,
            FileBytes::Owned(bytes) => bytes,
        }
    }
}

/// An opened checkpoint file: the mapped bytes and what checking them needs.
pub(crate) struct CheckpointFile {
    pub(crate) path: PathBuf,
    map: FileBytes,
    cipher: Option<RecordCipher>,
    /// Offset in the file of the first block (block offsets count from it).
    blocks_start: u64,
    /// Covered length of each covered segment: every location lies inside.
    pub(crate) extents: Extents,
    /// (device, inode) of the file as mapped: it is removed on damage only
    /// if the path still names it (and never if `None`: verification).
    identity: Option<(u64, u64)>,
    removed: AtomicBool,
}

impl fmt::Debug for CheckpointFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointFile")
            .field("path", &self.path)
            .field("bytes", &self.map.len())
            .finish()
    }
}

#[cfg(unix)]
fn identity_of(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn identity_of(_meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

impl CheckpointFile {
    pub(crate) fn new(
        path: PathBuf,
        map: FileBytes,
        drop_on_damage: Option<&std::fs::Metadata>,
        cipher: Option<RecordCipher>,
        blocks_start: u64,
        extents: Extents,
    ) -> Self {
        CheckpointFile {
            path,
            map,
            cipher,
            blocks_start,
            extents,
            identity: drop_on_damage.and_then(identity_of),
            removed: AtomicBool::new(false),
        }
    }

    /// The stored bytes of an item, unchecked (for copying into the next
    /// checkpoint, which checks them with [`CheckpointFile::check`]).
    pub(crate) fn stored_bytes(&self, at: &Stored) -> &[u8] {
        // The directory's items were checked at open to lie inside the file.
        let start = (self.blocks_start + at.offset) as usize;
        &self.map[start..start + at.len as usize]
    }

    /// Checks the stored bytes of an item against the directory's checksum.
    pub(crate) fn check(&self, at: &Stored) -> Result<&[u8]> {
        let bytes = self.stored_bytes(at);
        if checkpoint::checksum(bytes) != at.checksum {
            return Err(self.damaged(at, "an item fails its checksum"));
        }
        Ok(bytes)
    }

    /// The plain bytes of an item, checked (and opened if sealed).
    pub(crate) fn plain(&self, at: &Stored) -> Result<Cow<'_, [u8]>> {
        let bytes = self.check(at)?;
        match &self.cipher {
            None => Ok(Cow::Borrowed(bytes)),
            Some(c) => c
                .open(bytes)
                .map(Cow::Owned)
                .map_err(|_| self.damaged(at, "an item fails authentication")),
        }
    }

    /// The error for damage found in the item at `at`. The checkpoint is
    /// derived data: the file is removed (once, and only if its path still
    /// names the mapped file) so that the next open replays the log.
    pub(crate) fn damaged(&self, at: &Stored, reason: &str) -> Error {
        if !self.removed.swap(true, Ordering::SeqCst) {
            let same = self.identity.is_some()
                && std::fs::metadata(&self.path)
                    .ok()
                    .and_then(|m| identity_of(&m))
                    .is_some_and(|now| Some(now) == self.identity);
            if same {
                let _ = std::fs::remove_file(&self.path);
            }
        }
        Error::Corrupt {
            path: self.path.clone(),
            offset: self.blocks_start + at.offset,
            reason: if self.identity.is_some() {
                format!(
                    "checkpoint: {reason} (the checkpoint is dropped; reopening the \
                     database rebuilds its state from the log, which is intact)"
                )
            } else {
                format!("checkpoint: {reason}")
            },
        }
    }
}

/// A block of an id table once checked for point reads.
struct CheckedBlock {
    /// `None` if the file's bytes are the plain block (no encryption), else
    /// the opened plain bytes.
    plain: Option<Box<[u8]>>,
    /// Where each entry starts in the plain bytes, with its id's tag, in
    /// stored order.
    entries: Box<[checkpoint::EntryAt]>,
}

/// The first ids of a collection's blocks as numbers, so that a point read
/// finds its block by a binary search over one small array instead of over
/// the directory's entries and strings (a cache miss or two at every step).
/// Every first id starts with the same `common` bytes (often all but the
/// last few); a block's key is the eight bytes after them, big-endian and
/// zero-padded. Keys order like the ids they come from, except that ids
/// with equal keys need their strings compared.
struct FenceKeys {
    common: usize,
    keys: Box<[u64]>,
}

impl FenceKeys {
    fn new(dir: &DirCollection) -> Self {
        let (Some(first), Some(last)) = (dir.blocks.first(), dir.blocks.last()) else {
            return FenceKeys {
                common: 0,
                keys: Box::new([]),
            };
        };
        // The ids are in order: what the first and last share, all share.
        let (first, last) = (dir.first(first).as_bytes(), dir.first(last).as_bytes());
        let common = first.iter().zip(last).take_while(|(a, b)| a == b).count();
        let keys = dir
            .blocks
            .iter()
            .map(|b| Self::key(dir.first(b).as_bytes(), common))
            .collect();
        FenceKeys { common, keys }
    }

    fn key(id: &[u8], common: usize) -> u64 {
        let rest = id.get(common..).unwrap_or_default();
        let mut word = [0u8; 8];
        let n = rest.len().min(8);
        word[..n].copy_from_slice(&rest[..n]);
        u64::from_be_bytes(word)
    }

    /// How many blocks have a first id at or below `id` (`dir`'s blocks'
    /// `partition_point(first <= id)`).
    fn blocks_from(&self, dir: &DirCollection, id: &str) -> usize {
        let at_or_below = |b: &BlockRef| dir.first(b) <= id;
        let shares_prefix = dir.blocks.first().is_some_and(|b| {
            id.as_bytes()
                .starts_with(&dir.first(b).as_bytes()[..self.common])
        });
        if !shares_prefix {
            return dir.blocks.partition_point(at_or_below);
        }
        // A smaller key is a smaller id, a larger key a larger one.
        let key = Self::key(id.as_bytes(), self.common);
        let below = self.keys.partition_point(|&k| k < key);
        let equal = self.keys[below..].partition_point(|&k| k == key);
        below + dir.blocks[below..below + equal].partition_point(at_or_below)
    }
}

/// One collection as the checkpoint holds it, decoded as far as it has been
/// needed. Shared by every version of the state until a write replaces it.
pub(crate) struct BaseCollection {
    file: Arc<CheckpointFile>,
    dir: DirCollection,
    /// Per block, once checked for point reads: its plain bytes and where
    /// each entry starts, with its id's tag (point reads then search it in
    /// place).
    checked: Box<[OnceLock<CheckedBlock>]>,
    /// The blocks' first ids as numbers, built on the first point read.
    fences: OnceLock<FenceKeys>,
    docs: OnceLock<OrdMap<Arc<str>, DocEntry>>,
    indexes: Box<[OnceLock<IndexMap>]>,
    /// Serializes the whole-map builds (two threads never build one twice).
    building: Mutex<()>,
}

impl fmt::Debug for BaseCollection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BaseCollection")
            .field("name", &self.dir.name)
            .field("docs", &self.dir.docs)
            .field("blocks", &self.dir.blocks.len())
            .field("docs_built", &self.docs.get().is_some())
            .finish()
    }
}

impl BaseCollection {
    pub(crate) fn new(file: Arc<CheckpointFile>, dir: DirCollection) -> Self {
        BaseCollection {
            checked: (0..dir.blocks.len()).map(|_| OnceLock::new()).collect(),
            fences: OnceLock::new(),
            indexes: (0..dir.indexes.len()).map(|_| OnceLock::new()).collect(),
            docs: OnceLock::new(),
            building: Mutex::new(()),
            file,
            dir,
        }
    }

    pub(crate) fn directory(&self) -> &DirCollection {
        &self.dir
    }

    pub(crate) fn file(&self) -> &Arc<CheckpointFile> {
        &self.file
    }

    /// Number of documents (from the directory; checked when the map is built).
    pub(crate) fn len(&self) -> usize {
        self.dir.docs as usize
    }

    /// Number of keys of index `i`.
    pub(crate) fn index_keys(&self, i: usize) -> usize {
        self.dir.indexes[i].keys as usize
    }

    /// Block `i`, checked for point reads once: its plain bytes and where
    /// its entries start, with their ids' tags.
    fn block(&self, i: usize) -> Result<(&[u8], &[checkpoint::EntryAt])> {
        let at = &self.dir.blocks[i];
        let checked = match self.checked[i].get() {
            Some(checked) => checked,
            None => {
                let plain = self.file.plain(&at.stored)?;
                let entries = checkpoint::check_block(&plain, self.dir.bounds(i))
                    .map_err(|e| self.rejected(&at.stored, e))?;
                let plain = match plain {
                    Cow::Borrowed(_) => None,
                    Cow::Owned(plain) => Some(plain.into_boxed_slice()),
                };
                // Two readers may check the same block at once; either
                // result is the same, and the first stored is kept.
                let _ = self.checked[i].set(CheckedBlock { plain, entries });
                self.checked[i].get().expect("set above")
            }
        };
        let plain = match &checked.plain {
            Some(plain) => plain,
            None => self.file.stored_bytes(&at.stored),
        };
        Ok((plain, &checked.entries))
    }

    fn rejected(&self, at: &Stored, Rejected(reason): Rejected) -> Error {
        self.file.damaged(at, &reason)
    }

    /// The entry of document `id`, reading one block at most (checked the
    /// first time, then searched in place).
    pub(crate) fn entry(&self, id: &str) -> Result<Option<DocEntry>> {
        if let Some(map) = self.docs.get() {
            return Ok(map.get(id).copied());
        }
        let fences = self.fences.get_or_init(|| FenceKeys::new(&self.dir));
        let i = fences.blocks_from(&self.dir, id);
        if i == 0 {
            return Ok(None);
        }
        let (plain, entries) = self.block(i - 1)?;
        match checkpoint::find_in_checked_block(plain, entries, id) {
            // Checking a block for point reads leaves the locations to the
            // look-up (`checkpoint::check_block`).
            Some(entry) if !self.file.extents.contain(&entry.loc) => Err(self.rejected(
                &self.dir.blocks[i - 1].stored,
                Rejected("a document's location is outside the covered log".into()),
            )),
            found => Ok(found),
        }
    }

    /// The entry of document `id` with the id as the map holds it (builds
    /// the map: only writes ask, and they build it anyway).
    pub(crate) fn key_value(&self, id: &str) -> Result<Option<(Arc<str>, DocEntry)>> {
        Ok(self
            .docs()?
            .get_key_value(id)
            .map(|(k, v)| (Arc::clone(k), *v)))
    }

    /// The whole id map, built once; checks the directory's counts.
    pub(crate) fn docs(&self) -> Result<&OrdMap<Arc<str>, DocEntry>> {
        if let Some(map) = self.docs.get() {
            return Ok(map);
        }
        let _building = self.building.lock();
        if let Some(map) = self.docs.get() {
            return Ok(map);
        }
        let mut map = OrdMap::new();
        let mut bytes = 0u64;
        for (i, at) in self.dir.blocks.iter().enumerate() {
            let (plain, _) = self.block(i)?;
            let entries = checkpoint::decode_block(plain, self.dir.bounds(i), &self.file.extents)
                .map_err(|e| self.rejected(&at.stored, e))?;
            for (id, entry) in entries {
                bytes += u64::from(entry.size_bytes);
                map.insert(id, entry);
            }
        }
        if map.len() as u64 != self.dir.docs || bytes != self.dir.live_bytes {
            let at = self.dir.blocks.first().map_or(
                Stored {
                    offset: 0,
                    len: 0,
                    checksum: [0; 16],
                },
                |b| b.stored,
            );
            return Err(self
                .file
                .damaged(&at, "the id table's counts differ from the directory"));
        }
        let _ = self.docs.set(map);
        Ok(self.docs.get().expect("set above"))
    }

    /// The entries of index `i`, built once (with the id map, which every
    /// query through the index reads).
    pub(crate) fn index(&self, i: usize) -> Result<&IndexMap> {
        if let Some(map) = self.indexes[i].get() {
            return Ok(map);
        }
        let docs = self.docs()?;
        let _building = self.building.lock();
        if let Some(map) = self.indexes[i].get() {
            return Ok(map);
        }
        let ids: Vec<&Arc<str>> = docs.keys().collect();
        let at = &self.dir.indexes[i];
        let plain = self.file.plain(&at.stored)?;
        let map = checkpoint::decode_index(&plain, at.keys, &ids)
            .map_err(|e| self.rejected(&at.stored, e))?;
        let _ = self.indexes[i].set(map);
        Ok(self.indexes[i].get().expect("set above"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::checkpoint::{
        check_block, encode_block, find_in_checked_block, id_tag, BlockBounds,
    };
    use crate::state::Loc;

    fn directory(firsts: &BTreeSet<String>) -> DirCollection {
        let mut dir = DirCollection {
            name: "c".into(),
            live_bytes: 0,
            docs: 0,
            blocks: Vec::new(),
            fences: String::new(),
            indexes: Vec::new(),
        };
        let stored = Stored {
            offset: 0,
            len: 0,
            checksum: [0; 16],
        };
        for first in firsts {
            dir.push_block(stored, 1, first);
        }
        dir
    }

    /// Ids that mostly share a long prefix, as generated and numbered ids
    /// do, with short ones, NULs and non-ASCII among them.
    fn id_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => (0u32..5_000).prop_map(|n| format!("doc-{n:08}")),
            2 => "doc-0000[0-9a\u{0}\u{e9}]{0,12}",
            1 => "[a-e\u{0}]{0,4}",
            1 => "doc-[0-9]{0,10}",
        ]
    }

    proptest! {
        /// The fence keys find every id's block exactly as a search over
        /// the first ids' strings does.
        #[test]
        fn fence_keys_find_the_block_a_string_search_finds(
            firsts in proptest::collection::btree_set(id_strategy(), 0..60),
            probes in proptest::collection::vec(id_strategy(), 1..40),
        ) {
            let dir = directory(&firsts);
            let keys = FenceKeys::new(&dir);
            let probes = probes.iter().map(String::as_str).chain(firsts.iter().map(String::as_str));
            for id in probes {
                prop_assert_eq!(
                    keys.blocks_from(&dir, id),
                    dir.blocks.partition_point(|b| dir.first(b) <= id),
                    "id {:?}", id
                );
            }
        }
    }

    /// The directory checks its blocks' first ids as UTF-8 all at once:
    /// first ids that are UTF-8 only when run together (one ends inside a
    /// character the next one finishes) are still refused, and the same
    /// directory with whole characters decodes.
    #[test]
    fn first_ids_split_inside_a_character_are_refused() {
        use crate::checkpoint::{decode_directory, encode_directory, CoveredSegment, Directory};
        use crate::segment::SEGMENT_HEADER_BYTES;
        let firsts: BTreeSet<String> = ["zz".to_owned(), "zzz".to_owned()].into();
        let mut coll = directory(&firsts);
        coll.docs = 2;
        let encoded = encode_directory(&Directory {
            database_id: "db".into(),
            next_txn: 1,
            segments: vec![CoveredSegment {
                id: 1,
                len: SEGMENT_HEADER_BYTES,
                boundary: None,
            }],
            collections: vec![coll],
        });
        assert!(decode_directory(&encoded).is_ok());
        let find = |pattern: &[u8]| {
            encoded
                .windows(pattern.len())
                .position(|w| w == pattern)
                .expect("the first id is encoded")
        };
        let mut split = encoded.clone();
        // "z\xC3" then "\xA9zz": together "zézz", apart neither is UTF-8.
        split[find(&[2, 0, b'z', b'z']) + 3] = 0xC3;
        split[find(&[3, 0, b'z', b'z', b'z']) + 2] = 0xA9;
        assert!(decode_directory(&split).is_err());
    }

    /// Two ids with the same tag in one block are both found, each with
    /// its own entry (a tag only narrows the search; the id decides).
    #[test]
    fn ids_with_equal_tags_in_one_block_are_told_apart() {
        let mut seen = std::collections::HashMap::new();
        let (a, b) = (0u64..)
            .find_map(|n| {
                let id = format!("id-{n}");
                seen.insert(id_tag(id.as_bytes()), id.clone())
                    .map(|other| (other, id))
            })
            .expect("32-bit tags collide within a few hundred thousand ids");
        let (a, b) = if a < b { (a, b) } else { (b, a) };
        let entry = |segment: u64| DocEntry {
            loc: Loc {
                segment,
                offset: 64,
                len: 100,
            },
            size_bytes: 70,
        };
        let ids = [
            "a-first".to_owned(),
            a.clone(),
            b.clone(),
            "z-last".to_owned(),
        ];
        let plain = encode_block(
            ids.iter()
                .enumerate()
                .map(|(i, id)| (id.as_str(), entry(i as u64 + 1))),
        );
        let bounds = BlockBounds {
            count: 4,
            first: "a-first",
            next_first: None,
        };
        let at = check_block(&plain, bounds).expect("a good block");
        assert_eq!(find_in_checked_block(&plain, &at, &a), Some(entry(2)));
        assert_eq!(find_in_checked_block(&plain, &at, &b), Some(entry(3)));
        assert_eq!(find_in_checked_block(&plain, &at, "z-last"), Some(entry(4)));
        assert_eq!(find_in_checked_block(&plain, &at, "id-x"), None);
    }
}
