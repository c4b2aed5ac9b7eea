//! The checkpoint: a snapshot of the in-memory indexes (per collection the
//! id map with each document's location and size, the live byte count, the
//! secondary index definitions and their entries) together with the part of
//! the log it covers, so that opening a database replays only the log after
//! it instead of the whole log.
//!
//! It is derived data. It is written at a clean close and after compaction,
//! through the atomic replace of `files` (so the fault seam sees every
//! operation), and it is used only if it proves it matches the log: every
//! segment it covers is still the same prefix of the manifest, at least as
//! long as it covered, and the last frame below the covered length still
//! has the checksum the checkpoint recorded. Anything else (missing,
//! damaged, another format version, another database, a key that does not
//! open it, entries that contradict each other) is a rejection with a
//! reason, and the caller replays the whole log: a checkpoint can make an
//! open faster, never wrong, and never stop it. With encryption the body is
//! sealed with the database's record cipher, exactly as log records are,
//! because ids and index keys are document content. The byte layout is in
//! `docs/format.md` ("Checkpoint file").

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use crate::crypto::RecordCipher;
use crate::engine::WriteSide;
use crate::error::Result;
use crate::fault::Faults;
use crate::files::{replace_file, Manifest};
use crate::query::IndexKey;
use crate::record::{decode_frame, FRAME_HEADER_BYTES};
use crate::segment::{Segment, SEGMENT_HEADER_BYTES};
use crate::state::{CollectionState, DocEntry, IndexState, Loc, State};

/// The checkpoint's file name in the database directory.
pub(crate) const CHECKPOINT_FILE: &str = "CHECKPOINT";
/// First bytes of every checkpoint file.
const MAGIC: [u8; 8] = *b"AEROCKP\x01";
/// The checkpoint format this code reads and writes; any other is ignored.
pub(crate) const CHECKPOINT_VERSION: u32 = 1;
/// Header flag: the body is sealed with the record cipher.
const FLAG_ENCRYPTED: u32 = 1;
/// Magic (8), version (4), flags (4), body length (8).
const HEADER_BYTES: usize = 24;
/// The blake3 of everything before it, at the end of the file.
const HASH_BYTES: usize = 32;
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

/// A decoded checkpoint: the state it holds and the log it covers.
#[derive(Debug, Clone)]
pub(crate) struct Decoded {
    /// The `database_id` of the meta file of the database that wrote it.
    pub(crate) database_id: String,
    /// The next transaction id after everything covered.
    pub(crate) next_txn: u64,
    /// The covered segments, in manifest order (a prefix of the manifest).
    pub(crate) segments: Vec<CoveredSegment>,
    /// Every collection with its documents, indexes and live bytes.
    pub(crate) collections: OrdMap<String, CollectionState>,
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

/// The plain body: see `docs/format.md`.
fn encode_body(
    database_id: &str,
    next_txn: u64,
    segments: &[CoveredSegment],
    state: &State,
) -> Vec<u8> {
    let mut out = Vec::new();
    put_str(&mut out, database_id);
    out.extend_from_slice(&next_txn.to_le_bytes());
    put_u32(&mut out, segments.len());
    for s in segments {
        out.extend_from_slice(&s.id.to_le_bytes());
        out.extend_from_slice(&s.len.to_le_bytes());
        let b = s.boundary.unwrap_or(Boundary {
            offset: 0,
            checksum: [0; FRAME_CHECKSUM_BYTES],
        });
        out.extend_from_slice(&b.offset.to_le_bytes());
        out.extend_from_slice(&b.checksum);
    }
    put_u32(&mut out, state.collections.len());
    for (name, coll) in state.collections.iter() {
        put_str(&mut out, name);
        out.extend_from_slice(&coll.live_bytes.to_le_bytes());
        put_u32(&mut out, coll.docs.len());
        for (id, entry) in coll.docs.iter() {
            put_str(&mut out, id);
            out.extend_from_slice(&entry.loc.segment.to_le_bytes());
            out.extend_from_slice(&entry.loc.offset.to_le_bytes());
            out.extend_from_slice(&entry.loc.len.to_le_bytes());
            out.extend_from_slice(&entry.size_bytes.to_le_bytes());
        }
        put_u32(&mut out, coll.indexes.len());
        if coll.indexes.is_empty() {
            continue;
        }
        // Index entries are stored per document, in the order of the id
        // map above, as positions in the index's key list: each id is stored
        // (and allocated on load) once, and loading reads the documents in
        // order instead of jumping around the id map once per key.
        let ordinals: HashMap<&str, usize> = coll
            .docs
            .keys()
            .enumerate()
            .map(|(i, id)| (&**id, i))
            .collect();
        for (path, index) in coll.indexes.iter() {
            put_str(&mut out, path);
            out.push(u8::from(index.unique));
            put_u32(&mut out, index.entries.len());
            let mut keys_of_doc: Vec<Vec<u32>> = vec![Vec::new(); coll.docs.len()];
            for (position, (key, ids)) in index.entries.iter().enumerate() {
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
        }
    }
    out
}

/// The whole file: header, body (sealed if `cipher`), blake3 of all before.
pub(crate) fn encode_file(
    cipher: Option<&RecordCipher>,
    database_id: &str,
    next_txn: u64,
    segments: &[CoveredSegment],
    state: &State,
) -> Vec<u8> {
    let plain = encode_body(database_id, next_txn, segments, state);
    match cipher {
        Some(c) => wrap(&c.seal(&plain), FLAG_ENCRYPTED),
        None => wrap(&plain, 0),
    }
}

fn wrap(body: &[u8], flags: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len() + HASH_BYTES);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    let hash = blake3::hash(&out);
    out.extend_from_slice(hash.as_bytes());
    out
}

/// An unencrypted checkpoint file around `body` (for the fuzz targets).
pub(crate) fn wrap_plain_body(body: &[u8]) -> Vec<u8> {
    wrap(body, 0)
}

/// The body of a file made by `wrap` (empty if too short).
pub(crate) fn plain_body_of(file: &[u8]) -> &[u8] {
    if file.len() < HEADER_BYTES + HASH_BYTES {
        return &[];
    }
    &file[HEADER_BYTES..file.len() - HASH_BYTES]
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
        let len = u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize;
        std::str::from_utf8(self.take(len)?).or_else(|_| reject("a name is not UTF-8"))
    }
}

/// Bytes of one document entry without its id: segment, offset, length, size.
const DOC_ENTRY_BYTES: usize = 8 + 8 + 4 + 4;

/// Decodes a plain body and checks that it is consistent in itself: ids in
/// strictly ascending order, every location inside a covered segment, live
/// bytes equal to the sum of the sizes, index entries in order and naming
/// existing documents. Never panics, whatever the input.
pub(crate) fn decode_body(body: &[u8]) -> std::result::Result<Decoded, Rejected> {
    let mut r = Reader { buf: body };
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
    let mut extents: HashMap<u64, u64> = HashMap::with_capacity(segment_count);
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
            None
        } else {
            let frame_min = offset.checked_add(FRAME_HEADER_BYTES as u64);
            if offset < SEGMENT_HEADER_BYTES || frame_min.is_none_or(|end| end > len) {
                return reject("a boundary frame lies outside its covered length");
            }
            Some(Boundary { offset, checksum })
        };
        if extents.insert(id, len).is_some() {
            return reject("a segment is covered twice");
        }
        segments.push(CoveredSegment { id, len, boundary });
    }
    let collection_count = r.count(2 + 8 + 4 + 4)?;
    let mut decoded: Vec<DecodedCollection> = Vec::with_capacity(collection_count);
    let mut previous_name: Option<&str> = None;
    for _ in 0..collection_count {
        let name = r.str()?;
        if previous_name.is_some_and(|p| p >= name) {
            return reject("collections out of order");
        }
        previous_name = Some(name);
        let live_bytes = r.u64()?;
        let doc_count = r.count(2 + DOC_ENTRY_BYTES)?;
        let mut ids: Vec<Arc<str>> = Vec::with_capacity(doc_count);
        let mut entries: Vec<(Arc<str>, DocEntry)> = Vec::with_capacity(doc_count);
        let mut size_sum: u64 = 0;
        for _ in 0..doc_count {
            let id = r.str()?;
            if id.is_empty() || ids.last().is_some_and(|p| &**p >= id) {
                return reject("document ids empty or out of order");
            }
            let loc = Loc {
                segment: r.u64()?,
                offset: r.u64()?,
                len: r.u32()?,
            };
            let size_bytes = r.u32()?;
            let inside = extents.get(&loc.segment).is_some_and(|&covered| {
                loc.offset >= SEGMENT_HEADER_BYTES
                    && (loc.len as usize) > FRAME_HEADER_BYTES
                    && loc
                        .offset
                        .checked_add(u64::from(loc.len))
                        .is_some_and(|end| end <= covered)
            });
            if !inside {
                return reject("a document's location is outside the covered log");
            }
            size_sum += u64::from(size_bytes);
            let id: Arc<str> = Arc::from(id);
            entries.push((Arc::clone(&id), DocEntry { loc, size_bytes }));
            ids.push(id);
        }
        if size_sum != live_bytes {
            return reject("live bytes differ from the sum of the document sizes");
        }
        let index_count = r.count(2 + 1 + 4)?;
        let mut indexes: Vec<DecodedIndex> = Vec::with_capacity(index_count);
        let mut previous_path: Option<&str> = None;
        for _ in 0..index_count {
            let path = r.str()?;
            if previous_path.is_some_and(|p| p >= path) {
                return reject("indexes out of order");
            }
            previous_path = Some(path);
            let unique = match r.u8()? {
                0 => false,
                1 => true,
                _ => return reject("index flag is neither 0 nor 1"),
            };
            let key_count = r.count(1)?;
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
            // Per document, in id order, the positions of its keys: each
            // key's documents come out in ascending id order.
            let mut members: Vec<Vec<Arc<str>>> = vec![Vec::new(); key_count];
            for id in &ids {
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
            if members.iter().any(Vec::is_empty) {
                return reject("an index key without documents");
            }
            indexes.push(DecodedIndex {
                path: path.to_owned(),
                unique,
                keys: keys.into_iter().zip(members).collect(),
            });
        }
        decoded.push(DecodedCollection {
            name: name.to_owned(),
            live_bytes,
            entries,
            indexes,
        });
    }
    if !r.buf.is_empty() {
        return reject("bytes after the last collection");
    }
    Ok(Decoded {
        database_id,
        next_txn,
        segments,
        collections: build_collections(decoded),
    })
}

/// A collection as decoded and checked, before its maps are built.
struct DecodedCollection {
    name: String,
    live_bytes: u64,
    /// In id order.
    entries: Vec<(Arc<str>, DocEntry)>,
    indexes: Vec<DecodedIndex>,
}

struct DecodedIndex {
    path: String,
    unique: bool,
    /// In key order, each key's documents in id order.
    keys: Vec<(IndexKey, Vec<Arc<str>>)>,
}

/// Below this many map entries (ids plus index entries) the maps are built
/// on the calling thread: a second thread costs more than it saves.
const PARALLEL_BUILD_ENTRIES_MIN: usize = 16 * 1024;

/// Builds the persistent maps of checked collections. Building them is most
/// of an open through a checkpoint (one ordered insert per id and per index
/// entry), so the id maps and the index maps are built on two threads when
/// there is enough of both and more than one core.
fn build_collections(decoded: Vec<DecodedCollection>) -> OrdMap<String, CollectionState> {
    let ids: usize = decoded.iter().map(|c| c.entries.len()).sum();
    let index_entries: usize = decoded
        .iter()
        .flat_map(|c| &c.indexes)
        .flat_map(|ix| &ix.keys)
        .map(|(_, of_key)| of_key.len())
        .sum();
    let parallel = ids.min(index_entries) >= PARALLEL_BUILD_ENTRIES_MIN / 2
        && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    let mut heads = Vec::with_capacity(decoded.len());
    let mut id_maps = Vec::with_capacity(decoded.len());
    let mut index_lists = Vec::with_capacity(decoded.len());
    for c in decoded {
        heads.push((c.name, c.live_bytes));
        id_maps.push(c.entries);
        index_lists.push(c.indexes);
    }
    let build_docs = |id_maps: Vec<Vec<(Arc<str>, DocEntry)>>| -> Vec<OrdMap<Arc<str>, DocEntry>> {
        id_maps.into_iter().map(OrdMap::from_iter).collect()
    };
    let build_indexes = |lists: Vec<Vec<DecodedIndex>>| -> Vec<OrdMap<String, IndexState>> {
        lists
            .into_iter()
            .map(|indexes| {
                indexes
                    .into_iter()
                    .map(|ix| {
                        let mut index = IndexState::new(ix.unique);
                        for (key, of_key) in ix.keys {
                            index.entries.insert(key, OrdSet::from_iter(of_key));
                        }
                        (ix.path, index)
                    })
                    .collect()
            })
            .collect()
    };
    let (docs, indexes) = if parallel {
        // The lists go to the second thread only if it starts.
        let lists = std::sync::Mutex::new(Some(index_lists));
        std::thread::scope(|scope| {
            let spawned = std::thread::Builder::new()
                .name("aerolith-open".into())
                .spawn_scoped(scope, || {
                    let lists = lists.lock().expect("not poisoned").take();
                    build_indexes(lists.expect("taken once"))
                });
            let docs = build_docs(id_maps);
            let indexes = match spawned {
                Ok(handle) => handle.join().expect("building index maps does not panic"),
                // No thread to be had: build them here.
                Err(_) => build_indexes(
                    lists
                        .lock()
                        .expect("not poisoned")
                        .take()
                        .expect("the thread did not start"),
                ),
            };
            (docs, indexes)
        })
    } else {
        (build_docs(id_maps), build_indexes(index_lists))
    };
    heads
        .into_iter()
        .zip(docs.into_iter().zip(indexes))
        .map(|((name, live_bytes), (docs, indexes))| {
            (
                name,
                CollectionState {
                    docs,
                    indexes,
                    live_bytes,
                },
            )
        })
        .collect()
}

/// Checks and decodes a whole checkpoint file: magic, version, the blake3
/// over the file, the encryption flag against `cipher`, then the body
/// (opened with `cipher` if sealed).
pub(crate) fn decode_file(
    bytes: &[u8],
    cipher: Option<&RecordCipher>,
) -> std::result::Result<Decoded, Rejected> {
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
    let (covered, hash) = bytes.split_at(bytes.len() - HASH_BYTES);
    if blake3::hash(covered).as_bytes() != hash {
        return reject("checksum mismatch");
    }
    let flags = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    let body_len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    if body_len != (covered.len() - HEADER_BYTES) as u64 {
        return reject("body length does not match the file");
    }
    let body = &covered[HEADER_BYTES..];
    match (flags, cipher) {
        (0, None) => decode_body(body),
        (FLAG_ENCRYPTED, Some(c)) => match c.open(body) {
            Ok(plain) => decode_body(&plain),
            Err(_) => reject("the body does not open with this database's key"),
        },
        (0, Some(_)) => reject("a plain checkpoint in an encrypted database"),
        (FLAG_ENCRYPTED, None) => reject("an encrypted checkpoint in a plain database"),
        _ => reject(format!("unknown flags {flags:#x}")),
    }
}

// ------------------------------------------------------- matching the log

/// Checks that the checkpoint still describes the log: it belongs to this
/// database, its segments are the first segments of the manifest, each
/// (opened by `open_segment`) at least as long as covered, with the same
/// boundary frame. Returns the covered segments, opened.
pub(crate) fn match_log(
    decoded: &Decoded,
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

/// Reads the checkpoint file of `dir`, if there is one.
pub(crate) fn read_file(dir: &Path) -> std::result::Result<Option<Vec<u8>>, Rejected> {
    let path = dir.join(CHECKPOINT_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return reject(format!("cannot open: {e}")),
    };
    let len = file
        .metadata()
        .or_else(|e| reject(format!("cannot stat: {e}")))?
        .len();
    if len > CHECKPOINT_BYTES_MAX {
        return reject(format!("{len} bytes is over the limit"));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    std::io::Read::read_to_end(&mut &file, &mut bytes)
        .or_else(|e| reject(format!("cannot read: {e}")))?;
    Ok(Some(bytes))
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
    let bytes = encode_file(cipher, database_id, w.next_txn, &segments, &w.state);
    replace_file(dir, CHECKPOINT_FILE, &bytes, faults)?;
    Ok(true)
}
