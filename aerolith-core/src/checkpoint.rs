//! The checkpoint: a snapshot of the in-memory indexes (per collection the
//! id map with each document's location and size, the live byte count, the
//! secondary index definitions and their entries) together with the part of
//! the log it covers, so that opening a database replays only the log after
//! it instead of the whole log.
//!
//! The file is a small directory, checked whole at open, and a region of
//! items it points at: each collection's id table cut into blocks of about
//! 2 KiB (with each block's first id in the directory) and each index's
//! entries, every item with its own checksum. An open checks the directory
//! and maps the file; the items are checked and decoded when first needed
//! (`base`), so opening a large database costs about as much as opening an
//! empty one, and a point read right after costs one block.
//!
//! It is derived data. It is written at a clean close and after compaction,
//! through the atomic replace of `files` (so the fault seam sees every
//! operation), and it is used only if it proves it matches the log: every
//! segment it covers is still the same prefix of the manifest, at least as
//! long as it covered, and the last frame below the covered length still
//! has the checksum the checkpoint recorded. Anything else found at open
//! (missing, damaged, another format version, another database, a key that
//! does not open it, a directory that contradicts itself) is a rejection
//! with a reason, and the caller replays the whole log. Damage in an item,
//! found later, fails the operation that needed it and drops the file (see
//! `base`). With encryption the directory and every item are sealed with the
//! database's record cipher, exactly as log records are, because ids and
//! index keys are document content. The byte layout is in `docs/format.md`
//! ("Checkpoint file").

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use crate::base::{BaseCollection, CheckpointFile, FileBytes, IndexMap};
use crate::crypto::RecordCipher;
use crate::engine::WriteSide;
use crate::error::Result;
use crate::fault::Faults;
use crate::files::{replace_file, Manifest};
use crate::query::IndexKey;
use crate::record::{decode_frame, FRAME_HEADER_BYTES};
use crate::segment::{Segment, SEGMENT_HEADER_BYTES};
use crate::state::{CollectionState, DocEntry, DocMap, IndexState, Loc, State};

/// The checkpoint's file name in the database directory.
pub(crate) const CHECKPOINT_FILE: &str = "CHECKPOINT";
/// First bytes of every checkpoint file.
const MAGIC: [u8; 8] = *b"AEROCKP\x01";
/// The checkpoint format this code reads and writes; any other is ignored.
pub(crate) const CHECKPOINT_VERSION: u32 = 3;
/// Header flag: the directory and every item are sealed with the record cipher.
const FLAG_ENCRYPTED: u32 = 1;
/// Magic (8), version (4), flags (4), directory length (8).
const HEADER_BYTES: usize = 24;
/// The checksum of the header and the directory, after the directory.
const HASH_BYTES: usize = 16;
/// Bytes of an item's checksum.
const ITEM_CHECKSUM_BYTES: usize = 16;
/// A block of an id table is cut once its plain bytes reach this: a point
/// read checks and decodes one block, so blocks are small; the directory
/// holds one first id per block, so they are not tiny.
const BLOCK_BYTES_TARGET: usize = 2048;
/// A checkpoint larger than this is not read (the id map of a database near
/// the limits of one process is far smaller).
const CHECKPOINT_BYTES_MAX: u64 = 1 << 34;
/// Bytes of the frame checksum that identifies a segment's boundary frame.
const FRAME_CHECKSUM_BYTES: usize = 16;

/// Why a checkpoint was not used. Never an error of the database: the
/// caller falls back to replaying the whole log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejected(pub(crate) String);

fn reject<T>(reason: impl Into<String>) -> std::result::Result<T, Rejected> {
    Err(Rejected(reason.into()))
}

/// The last frame below a segment's covered length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Boundary {
    /// Offset of the frame in the segment.
    pub(crate) offset: u64,
    /// The 16-byte checksum stored in the frame's header.
    pub(crate) checksum: [u8; FRAME_CHECKSUM_BYTES],
}

/// One segment of the log as far as the checkpoint covers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CoveredSegment {
    /// Segment id.
    pub(crate) id: u64,
    /// Length covered: the end of the boundary frame (the header's end if none).
    pub(crate) len: u64,
    /// The last frame below `len`; `None` for a segment without frames.
    pub(crate) boundary: Option<Boundary>,
}

/// Where an item (a block of an id table, an index's entries) is stored:
/// its offset from the start of the block region, its stored length, and
/// the checksum of its stored bytes ([`checksum`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) checksum: [u8; ITEM_CHECKSUM_BYTES],
}

/// One block of a collection's id table, as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockRef {
    pub(crate) stored: Stored,
    /// Entries in the block (at least one).
    pub(crate) count: u32,
    /// Where the block's first id is in the collection's `fences`: point
    /// reads find their block by it. (One string for all of them, so that
    /// an open allocates per collection, not per block.)
    pub(crate) first_start: u32,
    pub(crate) first_len: u16,
}

/// What a block of an id table is checked against besides its checksum:
/// its entry count, its first id, and the next block's first id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockBounds<'a> {
    pub(crate) count: u32,
    pub(crate) first: &'a str,
    pub(crate) next_first: Option<&'a str>,
}

/// One index of a collection, as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirIndex {
    pub(crate) path: String,
    pub(crate) unique: bool,
    /// Distinct keys.
    pub(crate) keys: u32,
    pub(crate) stored: Stored,
}

/// One collection, as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirCollection {
    pub(crate) name: String,
    pub(crate) live_bytes: u64,
    pub(crate) docs: u64,
    /// In id order; their counts add up to `docs`.
    pub(crate) blocks: Vec<BlockRef>,
    /// The blocks' first ids, one after another.
    pub(crate) fences: String,
    /// In path order.
    pub(crate) indexes: Vec<DirIndex>,
}

impl DirCollection {
    /// The first id of a block of this collection.
    pub(crate) fn first(&self, b: &BlockRef) -> &str {
        let start = b.first_start as usize;
        &self.fences[start..start + usize::from(b.first_len)]
    }

    /// What block `i` is checked against.
    pub(crate) fn bounds(&self, i: usize) -> BlockBounds<'_> {
        let b = &self.blocks[i];
        BlockBounds {
            count: b.count,
            first: self.first(b),
            next_first: self.blocks.get(i + 1).map(|next| self.first(next)),
        }
    }

    pub(crate) fn push_block(&mut self, stored: Stored, count: u32, first: &str) {
        let first_start = u32::try_from(self.fences.len()).expect("fences fit in u32 bytes");
        self.fences.push_str(first);
        self.blocks.push(BlockRef {
            stored,
            count,
            first_start,
            first_len: u16::try_from(first.len()).expect("ids are bounded by the limits"),
        });
    }
}

/// The checkpoint's directory: the log it covers and where everything is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directory {
    /// The `database_id` of the meta file of the database that wrote it.
    pub(crate) database_id: String,
    /// The next transaction id after everything covered.
    pub(crate) next_txn: u64,
    /// The covered segments, in manifest order (a prefix of the manifest).
    pub(crate) segments: Vec<CoveredSegment>,
    /// In name order.
    pub(crate) collections: Vec<DirCollection>,
}

/// The covered length of each covered segment, by segment id: every
/// document location of the checkpoint lies inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Extents(Vec<(u64, u64)>);

impl Extents {
    /// Extents of the given (segment id, covered length) pairs.
    pub(crate) fn new(mut of: Vec<(u64, u64)>) -> Self {
        of.sort_unstable();
        Extents(of)
    }

    /// True if `loc` lies inside its segment's covered part.
    pub(crate) fn contain(&self, loc: &Loc) -> bool {
        let Ok(i) = self.0.binary_search_by_key(&loc.segment, |&(id, _)| id) else {
            return false;
        };
        let covered = self.0[i].1;
        loc.offset >= SEGMENT_HEADER_BYTES
            && (loc.len as usize) > FRAME_HEADER_BYTES
            && loc
                .offset
                .checked_add(u64::from(loc.len))
                .is_some_and(|end| end <= covered)
    }
}

impl Directory {
    /// Covered length of each covered segment.
    pub(crate) fn extents(&self) -> Extents {
        Extents::new(self.segments.iter().map(|s| (s.id, s.len)).collect())
    }

    /// Bytes of the block region the directory describes.
    pub(crate) fn blocks_len(&self) -> u64 {
        self.collections
            .iter()
            .flat_map(|c| {
                c.blocks
                    .iter()
                    .map(|b| &b.stored)
                    .chain(c.indexes.iter().map(|ix| &ix.stored))
            })
            .map(|s| u64::from(s.len))
            .sum()
    }
}

/// The checksum of a stored item, and of the header with the directory:
/// xxh3-128, little-endian. The checkpoint is derived data, rebuilt from the
/// log whenever it fails a check, and unkeyed like the log's checksums (an
/// encrypted checkpoint's items are authenticated by their AEAD tag), so it
/// needs error detection, not a cryptographic hash; a point read after an
/// open checks a 2 KiB block, where blake3 (format 2) was about a seventh of
/// the read (`read_profile cold`: 0.83 against 0.97 ms per 100 reads).
pub(crate) fn checksum(bytes: &[u8]) -> [u8; ITEM_CHECKSUM_BYTES] {
    xxhash_rust::xxh3::xxh3_128(bytes).to_le_bytes()
}

// ---------------------------------------------------------------- encoding

fn put_u32(out: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n).expect("checkpoint counts fit in u32 (ids per collection, keys)");
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).expect("names, ids and paths are bounded by the limits");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_stored(out: &mut Vec<u8>, s: &Stored) {
    out.extend_from_slice(&s.offset.to_le_bytes());
    out.extend_from_slice(&s.len.to_le_bytes());
    out.extend_from_slice(&s.checksum);
}

/// The plain directory: see `docs/format.md`.
pub(crate) fn encode_directory(d: &Directory) -> Vec<u8> {
    let mut out = Vec::new();
    put_str(&mut out, &d.database_id);
    out.extend_from_slice(&d.next_txn.to_le_bytes());
    put_u32(&mut out, d.segments.len());
    for s in &d.segments {
        out.extend_from_slice(&s.id.to_le_bytes());
        out.extend_from_slice(&s.len.to_le_bytes());
        let b = s.boundary.unwrap_or(Boundary {
            offset: 0,
            checksum: [0; FRAME_CHECKSUM_BYTES],
        });
        out.extend_from_slice(&b.offset.to_le_bytes());
        out.extend_from_slice(&b.checksum);
    }
    put_u32(&mut out, d.collections.len());
    for c in &d.collections {
        put_str(&mut out, &c.name);
        out.extend_from_slice(&c.live_bytes.to_le_bytes());
        out.extend_from_slice(&c.docs.to_le_bytes());
        put_u32(&mut out, c.blocks.len());
        for b in &c.blocks {
            put_stored(&mut out, &b.stored);
            out.extend_from_slice(&b.count.to_le_bytes());
            put_str(&mut out, c.first(b));
        }
        put_u32(&mut out, c.indexes.len());
        for ix in &c.indexes {
            put_str(&mut out, &ix.path);
            out.push(u8::from(ix.unique));
            out.extend_from_slice(&ix.keys.to_le_bytes());
            put_stored(&mut out, &ix.stored);
        }
    }
    out
}

/// One plain block of an id table: see `docs/format.md`.
pub(crate) fn encode_block<'a>(
    entries: impl ExactSizeIterator<Item = (&'a str, DocEntry)>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(BLOCK_BYTES_TARGET + 256);
    put_u32(&mut out, entries.len());
    for (id, entry) in entries {
        put_str(&mut out, id);
        out.extend_from_slice(&entry.loc.segment.to_le_bytes());
        out.extend_from_slice(&entry.loc.offset.to_le_bytes());
        out.extend_from_slice(&entry.loc.len.to_le_bytes());
        out.extend_from_slice(&entry.size_bytes.to_le_bytes());
    }
    out
}

/// The plain entries of one index: its keys in order, then per document
/// of the collection (in id order) the positions of its keys in that list.
/// Each id is stored once (in the id table) and shared when loaded.
pub(crate) fn encode_index(
    entries: &IndexMap,
    ordinals: &HashMap<&str, usize>,
    docs: usize,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keys_of_doc: Vec<Vec<u32>> = vec![Vec::new(); docs];
    for (position, (key, ids)) in entries.iter().enumerate() {
        key.encode(&mut out);
        let position = u32::try_from(position).expect("keys are counted in u32");
        for id in ids.iter() {
            let ordinal = ordinals
                .get(&**id)
                .expect("an index names only live documents of its collection");
            keys_of_doc[*ordinal].push(position);
        }
    }
    for keys in keys_of_doc {
        put_u32(&mut out, keys.len());
        for position in keys {
            out.extend_from_slice(&position.to_le_bytes());
        }
    }
    out
}

/// Appends an item to the block region (sealed if `cipher`).
fn store(region: &mut Vec<u8>, cipher: Option<&RecordCipher>, plain: &[u8]) -> Stored {
    let offset = region.len() as u64;
    match cipher {
        Some(c) => c.seal_into(plain, region),
        None => region.extend_from_slice(plain),
    }
    let bytes = &region[offset as usize..];
    Stored {
        offset,
        len: u32::try_from(bytes.len()).expect("blocks and index entries fit in u32 bytes"),
        checksum: checksum(bytes),
    }
}

/// Appends the stored bytes of an item of another checkpoint file,
/// checked, unchanged (same database, same key).
fn copy_stored(region: &mut Vec<u8>, file: &CheckpointFile, at: &Stored) -> Result<Stored> {
    let bytes = file.check(at)?;
    let offset = region.len() as u64;
    region.extend_from_slice(bytes);
    Ok(Stored { offset, ..*at })
}

/// A collection still entirely in a checkpoint (nothing written to it
/// since): its stored items are copied instead of decoded and encoded.
fn untouched(coll: &CollectionState) -> Option<&Arc<BaseCollection>> {
    match &coll.docs {
        DocMap::Base(base) if coll.indexes.values().all(IndexState::is_in_base) => Some(base),
        _ => None,
    }
}

fn encode_collection(
    region: &mut Vec<u8>,
    cipher: Option<&RecordCipher>,
    name: &str,
    coll: &CollectionState,
) -> Result<DirCollection> {
    if let Some(base) = untouched(coll) {
        let dir = base.directory();
        let file = base.file();
        let mut blocks = Vec::with_capacity(dir.blocks.len());
        for b in &dir.blocks {
            blocks.push(BlockRef {
                stored: copy_stored(region, file, &b.stored)?,
                ..b.clone()
            });
        }
        let mut indexes = Vec::with_capacity(dir.indexes.len());
        for ix in &dir.indexes {
            indexes.push(DirIndex {
                stored: copy_stored(region, file, &ix.stored)?,
                ..ix.clone()
            });
        }
        return Ok(DirCollection {
            name: name.to_owned(),
            blocks,
            indexes,
            ..dir.clone()
        });
    }
    let docs = coll.docs.map()?;
    let mut out = DirCollection {
        name: name.to_owned(),
        live_bytes: coll.live_bytes,
        docs: docs.len() as u64,
        blocks: Vec::new(),
        fences: String::new(),
        indexes: Vec::with_capacity(coll.indexes.len()),
    };
    let mut pending: Vec<(&str, DocEntry)> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut flush = |pending: &mut Vec<(&str, DocEntry)>, region: &mut Vec<u8>| {
        let first = pending[0].0;
        let count = u32::try_from(pending.len()).expect("a block holds few entries");
        let plain = encode_block(pending.iter().copied());
        out.push_block(store(region, cipher, &plain), count, first);
        pending.clear();
    };
    for (id, entry) in docs.iter() {
        pending.push((id, *entry));
        pending_bytes += 2 + id.len() + DOC_ENTRY_BYTES;
        if pending_bytes >= BLOCK_BYTES_TARGET {
            flush(&mut pending, region);
            pending_bytes = 0;
        }
    }
    if !pending.is_empty() {
        flush(&mut pending, region);
    }
    if !coll.indexes.is_empty() {
        let ordinals: HashMap<&str, usize> =
            docs.keys().enumerate().map(|(i, id)| (&**id, i)).collect();
        for (path, index) in coll.indexes.iter() {
            let entries = index.entries()?;
            let plain = encode_index(entries, &ordinals, docs.len());
            out.indexes.push(DirIndex {
                path: path.clone(),
                unique: index.unique,
                keys: u32::try_from(entries.len()).expect("keys are counted in u32"),
                stored: store(region, cipher, &plain),
            });
        }
    }
    Ok(out)
}

/// The whole file: header, directory (sealed if `cipher`), the checksum of
/// both, then the block region. Fails only if a collection still in the
/// previous checkpoint turns out damaged there.
pub(crate) fn encode_file(
    cipher: Option<&RecordCipher>,
    database_id: &str,
    next_txn: u64,
    segments: &[CoveredSegment],
    state: &State,
) -> Result<Vec<u8>> {
    let mut region = Vec::new();
    let mut collections = Vec::with_capacity(state.collections.len());
    for (name, coll) in state.collections.iter() {
        collections.push(encode_collection(&mut region, cipher, name, coll)?);
    }
    let directory = Directory {
        database_id: database_id.to_owned(),
        next_txn,
        segments: segments.to_vec(),
        collections,
    };
    let plain = encode_directory(&directory);
    let (flags, dir_stored) = match cipher {
        Some(c) => (FLAG_ENCRYPTED, c.seal(&plain)),
        None => (0, plain),
    };
    Ok(assemble(flags, &dir_stored, &region))
}

fn assemble(flags: u32, dir_stored: &[u8], region: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + dir_stored.len() + HASH_BYTES + region.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&(dir_stored.len() as u64).to_le_bytes());
    out.extend_from_slice(dir_stored);
    let hash = checksum(&out);
    out.extend_from_slice(&hash);
    out.extend_from_slice(region);
    out
}

/// An unencrypted checkpoint file of a plain directory and a block region
/// (for the fuzz targets: a correct header and hash around fuzzed bytes).
pub(crate) fn wrap_plain(directory: &[u8], region: &[u8]) -> Vec<u8> {
    assemble(0, directory, region)
}

// ---------------------------------------------------------------- decoding

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], Rejected> {
        if self.buf.len() < n {
            return reject("cut short");
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> std::result::Result<u8, Rejected> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> std::result::Result<u32, Rejected> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> std::result::Result<u64, Rejected> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    /// A count of items that each take at least `item_bytes_min` bytes: a
    /// count the rest of the input cannot hold is damage, never an allocation.
    fn count(&mut self, item_bytes_min: usize) -> std::result::Result<usize, Rejected> {
        let n = self.u32()? as usize;
        if n.saturating_mul(item_bytes_min) > self.buf.len() {
            return reject("a count exceeds the bytes that follow");
        }
        Ok(n)
    }

    fn str(&mut self) -> std::result::Result<&'a str, Rejected> {
        std::str::from_utf8(self.str_bytes()?).or_else(|_| reject("a name is not UTF-8"))
    }

    /// The bytes of a `str`, not yet checked to be UTF-8.
    fn str_bytes(&mut self) -> std::result::Result<&'a [u8], Rejected> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize;
        self.take(len)
    }

    /// A stored item, which must start where the previous one ended.
    fn stored(&mut self, next: &mut u64) -> std::result::Result<Stored, Rejected> {
        let offset = self.u64()?;
        let len = self.u32()?;
        let checksum = self
            .take(ITEM_CHECKSUM_BYTES)?
            .try_into()
            .expect("16 bytes");
        if offset != *next {
            return reject("items are not stored back to back");
        }
        *next += u64::from(len);
        Ok(Stored {
            offset,
            len,
            checksum,
        })
    }
}

/// Bytes of one document entry without its id: segment, offset, length, size.
const DOC_ENTRY_BYTES: usize = 8 + 8 + 4 + 4;
/// Bytes of a stored item's reference: offset, length, checksum.
const STORED_BYTES: usize = 8 + 4 + ITEM_CHECKSUM_BYTES;

/// Decodes a plain directory and checks that it is consistent in itself:
/// names, paths and block fences strictly ascending, block counts adding up,
/// items stored back to back from the start of the region. Never panics,
/// whatever the input.
pub(crate) fn decode_directory(plain: &[u8]) -> std::result::Result<Directory, Rejected> {
    let mut r = Reader { buf: plain };
    let database_id = r.str()?.to_owned();
    let next_txn = r.u64()?;
    if next_txn == 0 || next_txn == u64::MAX {
        return reject("transaction id out of range");
    }
    let segment_count = r.count(8 + 8 + 8 + FRAME_CHECKSUM_BYTES)?;
    if segment_count == 0 {
        return reject("no covered segment");
    }
    let mut segments = Vec::with_capacity(segment_count);
    let mut ids: HashMap<u64, ()> = HashMap::with_capacity(segment_count);
    for _ in 0..segment_count {
        let id = r.u64()?;
        let len = r.u64()?;
        let offset = r.u64()?;
        let checksum: [u8; FRAME_CHECKSUM_BYTES] =
            r.take(FRAME_CHECKSUM_BYTES)?.try_into().expect("16 bytes");
        let boundary = if offset == 0 {
            if len != SEGMENT_HEADER_BYTES {
                return reject("a segment without a boundary frame covers records");
            }
            // Written as zeros; anything else is not an encoding this
            // version makes (found by the `checkpoint_decode` fuzzer).
            if checksum != [0; FRAME_CHECKSUM_BYTES] {
                return reject("a segment without a boundary frame has a checksum");
            }
            None
        } else {
            let frame_min = offset.checked_add(FRAME_HEADER_BYTES as u64);
            if offset < SEGMENT_HEADER_BYTES || frame_min.is_none_or(|end| end > len) {
                return reject("a boundary frame lies outside its covered length");
            }
            Some(Boundary { offset, checksum })
        };
        if ids.insert(id, ()).is_some() {
            return reject("a segment is covered twice");
        }
        segments.push(CoveredSegment { id, len, boundary });
    }
    let collection_count = r.count(2 + 8 + 8 + 4 + 4)?;
    let mut collections: Vec<DirCollection> = Vec::with_capacity(collection_count);
    let mut next = 0u64;
    for _ in 0..collection_count {
        let name = r.str()?;
        if collections.last().is_some_and(|p| p.name.as_str() >= name) {
            return reject("collections out of order");
        }
        let live_bytes = r.u64()?;
        let docs = r.u64()?;
        let block_count = r.count(STORED_BYTES + 4 + 2)?;
        let mut blocks = Vec::with_capacity(block_count);
        // The first ids are gathered as bytes and checked to be UTF-8 all
        // at once (one pass over one buffer instead of a call per block,
        // which was a tenth of opening a large checkpoint); each must also
        // start on a character boundary, so that each is UTF-8 alone. Not
        // reserved ahead: an estimate too large (twice the need) cost an
        // open of 1,000,000 documents 40% more in fresh pages, where
        // growing by doubling reuses what the allocator already holds.
        let mut fences: Vec<u8> = Vec::new();
        let mut counted = 0u64;
        let mut previous: Option<&[u8]> = None;
        for _ in 0..block_count {
            let stored = r.stored(&mut next)?;
            let count = r.u32()?;
            let first = r.str_bytes()?;
            if count == 0 || first.is_empty() {
                return reject("an empty block or an empty first id");
            }
            if previous.is_some_and(|p| p >= first) {
                return reject("blocks out of order");
            }
            previous = Some(first);
            counted += u64::from(count);
            blocks.push(BlockRef {
                stored,
                count,
                first_start: u32::try_from(fences.len())
                    .or_else(|_| reject("the first ids exceed 4 GiB"))?,
                first_len: u16::try_from(first.len()).expect("read with a u16 length"),
            });
            fences.extend_from_slice(first);
        }
        let Ok(fences) = String::from_utf8(fences) else {
            return reject("a name is not UTF-8");
        };
        if !blocks
            .iter()
            .all(|b| fences.is_char_boundary(b.first_start as usize))
        {
            return reject("a name is not UTF-8");
        }
        if counted != docs {
            return reject("the blocks' counts differ from the documents");
        }
        let mut coll = DirCollection {
            name: name.to_owned(),
            live_bytes,
            docs,
            blocks,
            fences,
            indexes: Vec::new(),
        };
        let index_count = r.count(2 + 1 + 4 + STORED_BYTES)?;
        coll.indexes.reserve(index_count);
        for _ in 0..index_count {
            let path = r.str()?;
            if coll.indexes.last().is_some_and(|p| p.path.as_str() >= path) {
                return reject("indexes out of order");
            }
            let unique = match r.u8()? {
                0 => false,
                1 => true,
                _ => return reject("index flag is neither 0 nor 1"),
            };
            let keys = r.u32()?;
            let stored = r.stored(&mut next)?;
            coll.indexes.push(DirIndex {
                path: path.to_owned(),
                unique,
                keys,
                stored,
            });
        }
        collections.push(coll);
    }
    if !r.buf.is_empty() {
        return reject("bytes after the last collection");
    }
    Ok(Directory {
        database_id,
        next_txn,
        segments,
        collections,
    })
}

/// A block's entry count, read from its start, which must be the
/// directory's count and fit in the bytes that follow.
fn block_count(
    r: &mut Reader<'_>,
    bounds: BlockBounds<'_>,
) -> std::result::Result<usize, Rejected> {
    let count = r.count(2 + DOC_ENTRY_BYTES)?;
    if count != bounds.count as usize {
        return reject("a block's count differs from the directory");
    }
    Ok(count)
}

/// The entries of a plain block of an id table, read in place and checked
/// against the block's reference as they are read: the count, the first id,
/// ids strictly ascending and below the next block's first id, every
/// location inside a covered segment, nothing after the last entry.
struct BlockEntries<'a> {
    r: Reader<'a>,
    bounds: BlockBounds<'a>,
    extents: &'a Extents,
    left: usize,
    previous: Option<&'a str>,
}

impl<'a> BlockEntries<'a> {
    fn new(
        plain: &'a [u8],
        bounds: BlockBounds<'a>,
        extents: &'a Extents,
    ) -> std::result::Result<Self, Rejected> {
        let mut r = Reader { buf: plain };
        let count = block_count(&mut r, bounds)?;
        Ok(BlockEntries {
            r,
            bounds,
            extents,
            left: count,
            previous: None,
        })
    }

    /// The next entry; `Ok(None)` after the last (checked to end the block).
    fn next_entry(&mut self) -> std::result::Result<Option<(&'a str, DocEntry)>, Rejected> {
        if self.left == 0 {
            if !self.r.buf.is_empty() {
                return reject("bytes after a block's last entry");
            }
            return Ok(None);
        }
        self.left -= 1;
        let id = self.r.str()?;
        let in_order = match self.previous {
            Some(p) => p < id,
            None => id == self.bounds.first,
        };
        if !in_order {
            return reject("a block's ids are out of order or not its first id");
        }
        if self.left == 0 && self.bounds.next_first.is_some_and(|next| id >= next) {
            return reject("a block's last id is not below the next block's first");
        }
        self.previous = Some(id);
        let loc = Loc {
            segment: self.r.u64()?,
            offset: self.r.u64()?,
            len: self.r.u32()?,
        };
        let size_bytes = self.r.u32()?;
        if !self.extents.contain(&loc) {
            return reject("a document's location is outside the covered log");
        }
        Ok(Some((id, DocEntry { loc, size_bytes })))
    }
}

/// Decodes a whole plain block of an id table (see [`BlockEntries`]).
pub(crate) fn decode_block(
    plain: &[u8],
    bounds: BlockBounds<'_>,
    extents: &Extents,
) -> std::result::Result<Vec<(Arc<str>, DocEntry)>, Rejected> {
    let mut entries = BlockEntries::new(plain, bounds, extents)?;
    let mut out = Vec::with_capacity(bounds.count as usize);
    while let Some((id, entry)) = entries.next_entry()? {
        out.push((Arc::from(id), entry));
    }
    Ok(out)
}

/// Where one entry of a checked block starts in the plain bytes, with a
/// hash of its id ([`id_tag`]) beside it: a point look-up scans the tags,
/// which lie together in a few cache lines, and compares ids only where a
/// tag matches. (A binary search over the block instead waited, at every
/// step, on one cache miss for the entry's start and one for its id: three
/// quarters of the engine's part of a hot point read.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryAt {
    tag: u32,
    start: u32,
}

/// A 32-bit hash of an id for [`EntryAt`]: a multiply-rotate mix of its
/// bytes eight at a time. Not a defence against chosen ids: equal tags only
/// cost an id comparison each, never a wrong answer.
pub(crate) fn id_tag(id: &[u8]) -> u32 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(K);
    let mut h = id.len() as u64;
    let mut chunks = id.chunks_exact(8);
    for chunk in &mut chunks {
        h = mix(h, u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = mix(h, u64::from_le_bytes(word));
    }
    // The high half is the best mixed.
    (h >> 32) as u32
}

/// Indexes a plain block of an id table for point reads: where each entry
/// starts, with its id's tag, in stored order. The block's checksum has
/// passed, so its bytes are the ones the checkpoint wrote; this checks
/// what a look-up relies on (the count, every entry inside the block and
/// nothing after the last, the first id, the last id below the next
/// block's first) and leaves the rest to the look-up and the read: the id
/// found is compared byte for byte, its location is checked against the
/// covered log before use ([`Extents::contain`]), and the record there
/// against its own checksum and owner. The rules a look-up does not rely on
/// (ids valid UTF-8 and strictly ascending, every location covered) are
/// checked by [`decode_block`] when the collection's whole map is built.
/// (Checking them here as well was a fifth of a point read after reopen.)
pub(crate) fn check_block(
    plain: &[u8],
    bounds: BlockBounds<'_>,
) -> std::result::Result<Box<[EntryAt]>, Rejected> {
    let mut r = Reader { buf: plain };
    let count = block_count(&mut r, bounds)?;
    let mut at = Vec::with_capacity(count);
    let mut last: &[u8] = &[];
    for i in 0..count {
        let start = plain.len() - r.buf.len();
        let id = r.str_bytes()?;
        r.take(DOC_ENTRY_BYTES)?;
        if i == 0 && id != bounds.first.as_bytes() {
            return reject("a block's ids are out of order or not its first id");
        }
        at.push(EntryAt {
            tag: id_tag(id),
            start: u32::try_from(start).expect("a block is far below 4 GiB"),
        });
        last = id;
    }
    if bounds
        .next_first
        .is_some_and(|next| last >= next.as_bytes())
    {
        return reject("a block's last id is not below the next block's first");
    }
    if !r.buf.is_empty() {
        return reject("bytes after a block's last entry");
    }
    Ok(at.into_boxed_slice())
}

/// The entry of `id` in a block checked by [`check_block`] (`entries` is
/// what it returned): the entries whose tag is `id`'s, compared in place.
pub(crate) fn find_in_checked_block(
    plain: &[u8],
    entries: &[EntryAt],
    id: &str,
) -> Option<DocEntry> {
    let tag = id_tag(id.as_bytes());
    let found = entries.iter().filter(|e| e.tag == tag).find_map(|e| {
        let start = e.start as usize;
        let len = usize::from(u16::from_le_bytes([plain[start], plain[start + 1]]));
        let end = start + 2 + len;
        (&plain[start + 2..end] == id.as_bytes()).then_some(end)
    })?;
    let rest = &plain[found..];
    let u64_at = |k: usize| u64::from_le_bytes(rest[k..k + 8].try_into().expect("8 bytes"));
    let u32_at = |k: usize| u32::from_le_bytes(rest[k..k + 4].try_into().expect("4 bytes"));
    Some(DocEntry {
        loc: Loc {
            segment: u64_at(0),
            offset: u64_at(8),
            len: u32_at(16),
        },
        size_bytes: u32_at(20),
    })
}

/// Decodes the plain entries of an index of `key_count` keys over the
/// collection's ids (in id order): keys strictly ascending, each document's
/// positions strictly ascending and naming a key, every key with at least
/// one document.
pub(crate) fn decode_index(
    plain: &[u8],
    key_count: u32,
    ids: &[&Arc<str>],
) -> std::result::Result<IndexMap, Rejected> {
    let mut r = Reader { buf: plain };
    let key_count = key_count as usize;
    if key_count > r.buf.len() {
        return reject("more keys than bytes");
    }
    let mut keys: Vec<IndexKey> = Vec::with_capacity(key_count);
    for _ in 0..key_count {
        let Some(key) = IndexKey::decode(&mut r.buf) else {
            return reject("an index key does not decode");
        };
        if keys.last().is_some_and(|p| *p >= key) {
            return reject("index keys out of order");
        }
        keys.push(key);
    }
    // Per document, in id order, the positions of its keys: each key's
    // documents come out in ascending id order.
    let mut members: Vec<Vec<Arc<str>>> = vec![Vec::new(); key_count];
    for id in ids {
        let n = r.count(4)?;
        let mut previous: Option<u32> = None;
        for _ in 0..n {
            let position = r.u32()?;
            if previous.is_some_and(|p| p >= position) {
                return reject("a document's index keys out of order");
            }
            previous = Some(position);
            let Some(of_key) = members.get_mut(position as usize) else {
                return reject("an index entry names a missing key");
            };
            of_key.push(Arc::clone(id));
        }
    }
    if !r.buf.is_empty() {
        return reject("bytes after the last document's keys");
    }
    if members.iter().any(Vec::is_empty) {
        return reject("an index key without documents");
    }
    Ok(keys
        .into_iter()
        .zip(members)
        .map(|(key, of_key)| (key, OrdSet::from_iter(of_key)))
        .collect())
}

/// Checks the header, the hash and the directory of a checkpoint file's
/// bytes (opening the directory with `cipher` if sealed) and that the block
/// region is exactly as long as the directory says. Returns the directory
/// and where the block region starts. The blocks themselves are checked
/// when read (`base`).
pub(crate) fn decode_head(
    bytes: &[u8],
    cipher: Option<&RecordCipher>,
) -> std::result::Result<(Directory, u64), Rejected> {
    if bytes.len() < HEADER_BYTES + HASH_BYTES {
        return reject("shorter than a header");
    }
    if bytes[..8] != MAGIC {
        return reject("not a checkpoint (magic)");
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != CHECKPOINT_VERSION {
        return reject(format!(
            "format version {version}, not {CHECKPOINT_VERSION}"
        ));
    }
    let flags = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    let dir_len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    let hashed_end = dir_len
        .checked_add(HEADER_BYTES as u64)
        .filter(|&end| end.saturating_add(HASH_BYTES as u64) <= bytes.len() as u64)
        .ok_or_else(|| Rejected("the directory length exceeds the file".into()))?
        as usize;
    let (hashed, rest) = bytes.split_at(hashed_end);
    if checksum(hashed)[..] != rest[..HASH_BYTES] {
        return reject("checksum mismatch");
    }
    let stored = &hashed[HEADER_BYTES..];
    let directory = match (flags, cipher) {
        (0, None) => decode_directory(stored)?,
        (FLAG_ENCRYPTED, Some(c)) => match c.open(stored) {
            Ok(plain) => decode_directory(&plain)?,
            Err(_) => return reject("the directory does not open with this database's key"),
        },
        (0, Some(_)) => return reject("a plain checkpoint in an encrypted database"),
        (FLAG_ENCRYPTED, None) => return reject("an encrypted checkpoint in a plain database"),
        _ => return reject(format!("unknown flags {flags:#x}")),
    };
    let blocks_start = (hashed_end + HASH_BYTES) as u64;
    if bytes.len() as u64 - blocks_start != directory.blocks_len() {
        return reject("the block region's length differs from the directory");
    }
    Ok((directory, blocks_start))
}

/// An opened checkpoint: its directory and the mapped file its collections
/// are read from.
pub(crate) struct Opened {
    pub(crate) directory: Directory,
    pub(crate) file: Arc<CheckpointFile>,
}

impl Opened {
    /// The collections, still in the file, as state (taken out of the
    /// directory, which keeps the rest).
    pub(crate) fn take_collections(&mut self) -> OrdMap<String, CollectionState> {
        std::mem::take(&mut self.directory.collections)
            .into_iter()
            .map(|c| {
                let name = c.name.clone();
                let base = BaseCollection::new(Arc::clone(&self.file), c);
                (name, CollectionState::in_base(Arc::new(base)))
            })
            .collect()
    }
}

/// Maps the checkpoint file of `dir`, if there is one, and checks its head
/// (see [`decode_head`]). With `drop_on_damage`, damage found later in an
/// item removes the file (an open); without, nothing on disk is changed
/// (verification).
pub(crate) fn open_file(
    dir: &Path,
    cipher: Option<&RecordCipher>,
    drop_on_damage: bool,
) -> std::result::Result<Option<Opened>, Rejected> {
    let path = dir.join(CHECKPOINT_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return reject(format!("cannot open: {e}")),
    };
    let meta = file
        .metadata()
        .or_else(|e| reject(format!("cannot stat: {e}")))?;
    if meta.len() > CHECKPOINT_BYTES_MAX {
        return reject(format!("{} bytes is over the limit", meta.len()));
    }
    if meta.len() < (HEADER_BYTES + HASH_BYTES) as u64 {
        return reject("shorter than a header");
    }
    let map = map_checkpoint(&file).or_else(|e| reject(format!("cannot map: {e}")))?;
    let (directory, blocks_start) = decode_head(&map, cipher)?;
    let map = FileBytes::Mapped(map);
    let extents = directory.extents();
    let file = CheckpointFile::new(
        path,
        map,
        drop_on_damage.then_some(&meta),
        cipher.cloned(),
        blocks_start,
        extents,
    );
    Ok(Some(Opened {
        directory,
        file: Arc::new(file),
    }))
}

/// The checkpoint in `bytes` of an unencrypted database, its head checked
/// (for the fuzz targets, which then read every item through `base`).
pub(crate) fn open_bytes(bytes: Vec<u8>) -> std::result::Result<Opened, Rejected> {
    let (directory, blocks_start) = decode_head(&bytes, None)?;
    let extents = directory.extents();
    let file = CheckpointFile::new(
        CHECKPOINT_FILE.into(),
        FileBytes::Owned(bytes),
        None,
        None,
        blocks_start,
        extents,
    );
    Ok(Opened {
        directory,
        file: Arc::new(file),
    })
}

/// The stored directory of a checkpoint file (empty if it has none).
pub(crate) fn directory_of(file: &[u8]) -> &[u8] {
    if file.len() < HEADER_BYTES {
        return &[];
    }
    let len = u64::from_le_bytes(file[16..24].try_into().expect("8 bytes"));
    let end = (HEADER_BYTES as u64)
        .saturating_add(len)
        .min(file.len() as u64) as usize;
    &file[HEADER_BYTES..end]
}

#[allow(unsafe_code)]
fn map_checkpoint(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: memmap2 requires that the mapped bytes are not modified or
    // truncated while mapped. The checkpoint is only ever replaced whole
    // (written under another name, then renamed over it) or removed, which
    // leaves existing maps valid, and the database directory is locked
    // against other processes.
    unsafe { memmap2::Mmap::map(file) }
}

// ------------------------------------------------------- matching the log

/// Checks that the checkpoint still describes the log: it belongs to this
/// database, its segments are the first segments of the manifest, each
/// (opened by `open_segment`) at least as long as covered, with the same
/// boundary frame. Returns the covered segments, opened.
pub(crate) fn match_log(
    decoded: &Directory,
    database_id: &str,
    manifest: &Manifest,
    mut open_segment: impl FnMut(u64) -> Result<Segment>,
) -> std::result::Result<Vec<Arc<Segment>>, Rejected> {
    if decoded.database_id != database_id {
        return reject("written by another database");
    }
    if decoded.segments.len() > manifest.segments.len()
        || decoded
            .segments
            .iter()
            .zip(&manifest.segments)
            .any(|(c, &id)| c.id != id)
    {
        return reject("its segments are no longer the first segments of the manifest");
    }
    let mut opened = Vec::with_capacity(decoded.segments.len());
    for (i, covered) in decoded.segments.iter().enumerate() {
        let segment = open_segment(covered.id)
            .or_else(|e| reject(format!("segment {} does not open: {e}", covered.id)))?;
        let len = segment
            .len()
            .or_else(|e| reject(format!("segment {}: {e}", covered.id)))?;
        if len < covered.len {
            return reject(format!(
                "segment {} is shorter ({len} bytes) than covered ({})",
                covered.id, covered.len
            ));
        }
        // Only the last covered segment may have grown since: every other
        // one was sealed when the checkpoint was written, and a sealed
        // segment never changes (extra bytes are damage for replay to report).
        if i + 1 < decoded.segments.len() && len != covered.len {
            return reject(format!(
                "sealed segment {} is {len} bytes, not the {} covered",
                covered.id, covered.len
            ));
        }
        if let Some(b) = covered.boundary {
            let same = segment
                .with_bytes(b.offset, covered.len - b.offset, |bytes| {
                    matches!(decode_frame(bytes), Ok((_, total)) if total == bytes.len())
                        && bytes[8..8 + FRAME_CHECKSUM_BYTES] == b.checksum
                })
                .unwrap_or(false);
            if !same {
                return reject(format!(
                    "segment {}: the boundary frame at {} has changed",
                    covered.id, b.offset
                ));
            }
        }
        segment.set_last_frame(covered.boundary.map_or(0, |b| b.offset));
        opened.push(Arc::new(segment));
    }
    Ok(opened)
}

// ---------------------------------------------------------------- writing

/// The covered extent of `segment`: up to the end of its last frame.
fn covered_segment(segment: &Segment) -> Result<CoveredSegment> {
    let Some(offset) = segment.last_frame() else {
        return Ok(CoveredSegment {
            id: segment.id,
            len: SEGMENT_HEADER_BYTES,
            boundary: None,
        });
    };
    let (body_len, checksum) = segment.with_bytes(offset, FRAME_HEADER_BYTES as u64, |header| {
        let body_len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let checksum: [u8; FRAME_CHECKSUM_BYTES] = header[8..24].try_into().expect("16 bytes");
        (body_len, checksum)
    })?;
    Ok(CoveredSegment {
        id: segment.id,
        len: offset + (FRAME_HEADER_BYTES as u64) + u64::from(body_len),
        boundary: Some(Boundary { offset, checksum }),
    })
}

/// Writes a checkpoint of `w` (the writer's state, every record of which is
/// in the log up to `w.active_len`, already synced by the caller) through
/// the atomic replace. Returns false without writing if the segments'
/// recorded boundaries do not add up to the writer's view (a bug; the old
/// checkpoint, if any, is still checked on open).
pub(crate) fn write(
    dir: &Path,
    faults: &Faults,
    cipher: Option<&RecordCipher>,
    database_id: &str,
    w: &WriteSide,
) -> Result<bool> {
    let mut segments = Vec::with_capacity(w.manifest.segments.len());
    for id in &w.manifest.segments {
        let Some(segment) = w.state.segments.get(id) else {
            return Ok(false);
        };
        segments.push(covered_segment(segment)?);
    }
    let consistent = segments
        .last()
        .is_some_and(|last| last.id == w.active.id && last.len == w.active_len);
    if !consistent {
        return Ok(false);
    }
    let bytes = encode_file(cipher, database_id, w.next_txn, &segments, &w.state)?;
    replace_file(dir, CHECKPOINT_FILE, &bytes, faults)?;
    Ok(true)
}
