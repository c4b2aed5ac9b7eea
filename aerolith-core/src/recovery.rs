//! Opening a database: lock the directory, read or create the meta file and
//! manifest, check the key, remove files a crash left behind, and replay the
//! log into a fresh in-memory state.
//!
//! Rules (also in `docs/format.md`): a transaction counts only once its
//! commit-marked record is read. A damaged or cut-short record at the end of
//! the last segment is a torn write: it and any uncommitted transaction
//! before it are truncated and reported. Damage anywhere else, or damage
//! followed by valid records, is an error naming the file and offset
//! ([`RecoveryMode::Salvage`] truncates there instead and reports the loss).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use imbl::OrdMap;
use rand::RngCore;
use serde_json::Value;

use crate::checkpoint::{self, Rejected};
use crate::crypto::RecordCipher;
use crate::engine::{with_doc_bytes, DocKey, WriteSide};
use crate::error::{Error, Result};
use crate::files::{
    hex, lock_dir, read_manifest, read_meta, unhex, write_manifest, write_meta, EncryptionMeta,
    Manifest, Meta, TMP_SUFFIX,
};
use crate::options::{Options, RecoveryMode};
use crate::query::{index_keys, parse_members, IndexKey};
use crate::record::{decode_frame, decode_op, Op, FRAME_MAGIC};
use crate::segment::{parse_segment_file_name, Segment, FORMAT_VERSION, SEGMENT_HEADER_BYTES};
use crate::state::{CollectionState, DocEntry, IndexState, Loc, State};

const META_FORMAT: &str = "aerolith-core";
const CIPHER_NAME: &str = "xchacha20poly1305-blake3kdf";

/// What recovery found and did when the database was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// True if the database was created by this open.
    pub created: bool,
    /// Segments replayed.
    pub segments: usize,
    /// Log records replayed.
    pub records: u64,
    /// Committed transactions replayed.
    pub transactions: u64,
    /// A torn or damaged tail that was cut off, if any.
    pub truncated: Option<TruncatedTail>,
    /// Files left by an interrupted compaction or manifest write, removed.
    pub orphan_files_removed: Vec<PathBuf>,
    /// True if the state came from the checkpoint and only the log after it
    /// was replayed (`segments`, `records` and `transactions` then count
    /// only what was replayed).
    pub checkpoint_used: bool,
    /// Why a checkpoint file that was present was not used (it is derived
    /// data: the whole log was replayed instead).
    pub checkpoint_rejected: Option<String>,
}

/// The part of the log that recovery cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TruncatedTail {
    /// The segment file that was cut.
    pub path: PathBuf,
    /// The new length of the file: where the cut was made.
    pub offset: u64,
    /// How many bytes were removed from that file.
    pub bytes_removed: u64,
    /// Why: a cut-short record, a checksum failure, an uncommitted transaction.
    pub reason: String,
    /// Valid-looking records that lay after the damage and were dropped
    /// (only ever non-zero in salvage mode).
    pub records_dropped: u64,
    /// Whole segments after the damage that were dropped (salvage mode).
    pub segments_dropped: usize,
}

pub(crate) struct Recovered {
    pub(crate) write_side: WriteSide,
    pub(crate) cipher: Option<RecordCipher>,
    pub(crate) report: RecoveryReport,
    pub(crate) lock: std::fs::File,
    /// The meta file's database id, which checkpoints are bound to.
    pub(crate) database_id: String,
    /// True if the checkpoint on disk describes exactly the recovered state.
    pub(crate) checkpoint_current: bool,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex(&buf)
}

fn load_or_create_meta(dir: &Path, options: &Options, report: &mut RecoveryReport) -> Result<Meta> {
    if let Some(meta) = read_meta(dir)? {
        check_meta_format(dir, &meta)?;
        return Ok(meta);
    }
    if !options.create_if_missing {
        return Err(Error::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let has_segments = std::fs::read_dir(dir)
        .map_err(|e| Error::io("list directory", dir, e))?
        .filter_map(|e| e.ok())
        .any(|e| parse_segment_file_name(&e.file_name().to_string_lossy()).is_some());
    if has_segments {
        return Err(Error::Corrupt {
            path: dir.join(crate::files::META_FILE),
            offset: 0,
            reason: "segment files exist but the meta file is missing".into(),
        });
    }
    let encryption = options.master_key.as_ref().map(|key| {
        let salt_hex = random_hex(16);
        let salt = unhex(&salt_hex).expect("just encoded");
        EncryptionMeta {
            algorithm: CIPHER_NAME.into(),
            key_check_hex: hex(&RecordCipher::new(key, &salt).key_check()),
            salt_hex,
        }
    });
    let meta = Meta {
        format: META_FORMAT.into(),
        version: FORMAT_VERSION,
        database_id: random_hex(16),
        encryption,
    };
    write_meta(dir, &meta, &options.fault_plan)?;
    report.created = true;
    Ok(meta)
}

/// Refuses a meta file of another format or version.
pub(crate) fn check_meta_format(dir: &Path, meta: &Meta) -> Result<()> {
    if meta.format != META_FORMAT || meta.version != FORMAT_VERSION {
        return Err(Error::Corrupt {
            path: dir.join(crate::files::META_FILE),
            offset: 0,
            reason: format!(
                "unsupported format {:?} version {}",
                meta.format, meta.version
            ),
        });
    }
    Ok(())
}

pub(crate) fn cipher_for(
    dir: &Path,
    meta: &Meta,
    options: &Options,
) -> Result<Option<RecordCipher>> {
    match (&meta.encryption, &options.master_key) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(Error::NotEncrypted {
            path: dir.to_path_buf(),
        }),
        (Some(_), None) => Err(Error::KeyRequired {
            path: dir.to_path_buf(),
        }),
        (Some(enc), Some(key)) => {
            let salt = unhex(&enc.salt_hex).ok_or_else(|| Error::Corrupt {
                path: dir.join(crate::files::META_FILE),
                offset: 0,
                reason: "encryption salt is not hex".into(),
            })?;
            let cipher = RecordCipher::new(key, &salt);
            if hex(&cipher.key_check()) != enc.key_check_hex {
                return Err(Error::WrongKey {
                    path: dir.to_path_buf(),
                });
            }
            Ok(Some(cipher))
        }
    }
}

fn remove_orphans(dir: &Path, manifest: &Manifest, report: &mut RecoveryReport) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("list directory", dir, e))? {
        let entry = entry.map_err(|e| Error::io("list directory", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let orphan = name.ends_with(TMP_SUFFIX)
            || parse_segment_file_name(&name).is_some_and(|id| !manifest.segments.contains(&id));
        if orphan {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| Error::io("remove orphan file", &path, e))?;
            report.orphan_files_removed.push(path);
        }
    }
    Ok(())
}

/// An operation read from the log, waiting for its transaction's commit.
enum Replayed {
    Put {
        coll: String,
        id: Arc<str>,
        entry: DocEntry,
        /// Index keys of the new document for the collection's indexed
        /// paths at the time the record was read, derived from the payload
        /// the replay has just verified (so the document is not read twice).
        keys: Vec<(String, Vec<IndexKey>)>,
    },
    Delete {
        coll: String,
        id: String,
    },
    CreateCollection {
        coll: String,
    },
    DropCollection {
        coll: String,
    },
    CreateIndex {
        coll: String,
        path: String,
        unique: bool,
    },
    DropIndex {
        coll: String,
        path: String,
    },
}

/// The top-level members the indexed `paths` start with: all the index
/// keys need parsed out of a document.
fn index_members(paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.split('.').next().unwrap_or(p).to_owned())
        .collect()
}

/// Parses only `members` of the encoded document `json` (the whole document
/// if it is not an object, so that a full parse decides and reports).
fn parse_for_index(json: &[u8], members: &[String]) -> serde_json::Result<Value> {
    match parse_members(json, members) {
        Some(partial) => Ok(partial),
        None => serde_json::from_slice(json),
    }
}

/// The index keys, per path, of the document stored at `loc` (a verified read).
fn keys_at(
    cipher: Option<&RecordCipher>,
    state: &State,
    loc: Loc,
    key: DocKey<'_>,
    paths: &[String],
) -> Result<Vec<(String, Vec<IndexKey>)>> {
    let members = index_members(paths);
    let doc = with_doc_bytes(cipher, state, loc, key, |json| {
        parse_for_index(json, &members)
    })?;
    Ok(paths
        .iter()
        .map(|p| (p.clone(), index_keys(&doc, p)))
        .collect())
}

/// Applies one committed operation to `state`, keeping the secondary
/// indexes up to date: the keys of a new document come with the operation;
/// those of a replaced or deleted one are read back (verified) from its
/// record, which only happens for documents overwritten or deleted in an
/// indexed collection.
fn apply_replayed(
    cipher: Option<&RecordCipher>,
    state: &mut State,
    op: Replayed,
    corrupt: &dyn Fn(String) -> Error,
) -> Result<()> {
    match op {
        Replayed::Put {
            coll,
            id,
            entry,
            keys,
        } => {
            let c = state.collections.get(&coll).ok_or_else(|| {
                corrupt(format!("document written to missing collection {coll:?}"))
            })?;
            if !c.indexes.is_empty() {
                let paths: Vec<String> = c.indexes.keys().cloned().collect();
                let old = match c.docs.get(&id)? {
                    Some(old) => {
                        let key = DocKey {
                            coll: &coll,
                            id: &id,
                        };
                        keys_at(cipher, state, old.loc, key, &paths)?
                    }
                    None => Vec::new(),
                };
                let missing: Vec<String> = paths
                    .iter()
                    .filter(|p| !keys.iter().any(|(k, _)| k == *p))
                    .cloned()
                    .collect();
                // An index created earlier in the same transaction: read the
                // new document back for it.
                let more = if missing.is_empty() {
                    Vec::new()
                } else {
                    let key = DocKey {
                        coll: &coll,
                        id: &id,
                    };
                    keys_at(cipher, state, entry.loc, key, &missing)?
                };
                let c = state.collections.get_mut(&coll).expect("checked above");
                for (path, old_keys) in &old {
                    if let Some(index) = c.indexes.get_mut(path) {
                        index.remove(old_keys, &id)?;
                    }
                }
                for (path, new_keys) in keys.iter().chain(more.iter()) {
                    if let Some(index) = c.indexes.get_mut(path) {
                        index.insert(new_keys, &id)?;
                    }
                }
            }
            state
                .collections
                .get_mut(&coll)
                .expect("checked above")
                .put_entry(id, entry)?;
        }
        Replayed::Delete { coll, id } => {
            let Some(c) = state.collections.get(&coll) else {
                return Ok(());
            };
            let old = match c.docs.get(id.as_str())? {
                Some(old) if !c.indexes.is_empty() => {
                    let paths: Vec<String> = c.indexes.keys().cloned().collect();
                    let key = DocKey {
                        coll: &coll,
                        id: &id,
                    };
                    keys_at(cipher, state, old.loc, key, &paths)?
                }
                _ => Vec::new(),
            };
            let c = state.collections.get_mut(&coll).expect("checked above");
            for (path, old_keys) in &old {
                if let Some(index) = c.indexes.get_mut(path) {
                    index.remove(old_keys, &id)?;
                }
            }
            c.remove_entry(&id)?;
        }
        Replayed::CreateCollection { coll } => {
            state.collections.entry(coll).or_default();
        }
        Replayed::DropCollection { coll } => {
            state.collections.remove(&coll);
        }
        Replayed::CreateIndex { coll, path, unique } => {
            let Some(c) = state.collections.get(&coll) else {
                return Ok(());
            };
            if c.indexes.contains_key(&path) {
                return Ok(());
            }
            // An index created after its documents (compaction writes
            // indexes first, so this is only a user's create_index): read
            // each document back once.
            let mut index = IndexState::new(unique);
            let paths = vec![path.clone()];
            for (id, entry) in c.docs.map()?.iter() {
                let key = DocKey { coll: &coll, id };
                for (_, keys) in keys_at(cipher, state, entry.loc, key, &paths)? {
                    index.insert(&keys, id)?;
                }
            }
            state
                .collections
                .get_mut(&coll)
                .expect("checked above")
                .indexes
                .insert(path, index);
        }
        Replayed::DropIndex { coll, path } => {
            if let Some(c) = state.collections.get_mut(&coll) {
                c.indexes.remove(&path);
            }
        }
    }
    Ok(())
}

/// Counts frames with valid checksums at or after `from`, found by their magic.
pub(crate) fn valid_frames_after(bytes: &[u8], from: usize) -> u64 {
    let mut count = 0;
    let mut pos = from;
    while pos + FRAME_MAGIC.len() <= bytes.len() {
        let Some(found) = bytes[pos..].iter().position(|&b| b == FRAME_MAGIC[0]) else {
            break;
        };
        let at = pos + found;
        if let Ok((_, len)) = decode_frame(&bytes[at..]) {
            count += 1;
            pos = at + len;
        } else {
            pos = at + 1;
        }
    }
    count
}

struct Replayer<'a> {
    cipher: Option<&'a RecordCipher>,
    state: State,
    pending: Vec<Replayed>,
    pending_txn: Option<u64>,
    max_txn: u64,
    report: RecoveryReport,
    /// Offset of the last frame of a committed transaction in the segment
    /// being replayed (0: none yet); becomes the segment's boundary frame.
    last_frame: u64,
}

/// How replay of one segment ended.
enum SegmentEnd {
    /// Every frame read; the frames end at this offset (the file may go on
    /// with zeros, in the last segment only).
    Clean { end: u64 },
    /// Damage at this offset, for this reason.
    Damaged { offset: u64, reason: String },
}

impl Replayer<'_> {
    /// The index keys of a document being replayed into `coll`, for the
    /// paths indexed there now, parsed from its verified payload.
    fn derive_keys(
        &self,
        coll: &str,
        doc: &[u8],
    ) -> serde_json::Result<Vec<(String, Vec<IndexKey>)>> {
        let Some(c) = self.state.collections.get(coll) else {
            return Ok(Vec::new());
        };
        if c.indexes.is_empty() {
            return Ok(Vec::new());
        }
        let paths: Vec<String> = c.indexes.keys().cloned().collect();
        let parsed = parse_for_index(doc, &index_members(&paths))?;
        Ok(paths
            .into_iter()
            .map(|p| {
                let keys = index_keys(&parsed, &p);
                (p, keys)
            })
            .collect())
    }

    /// Replays one segment. In the last segment (`is_last`), a frame position
    /// from which the rest of the file is all zeros is the end of the log:
    /// the zero-filled tail the writer allocates ahead of its appends.
    ///
    /// Replay starts at `start`: the segment's header end, or the length a
    /// checkpoint covers.
    fn replay_segment(
        &mut self,
        segment: &Segment,
        is_last: bool,
        start: u64,
    ) -> Result<(SegmentEnd, u64)> {
        let map = segment.map()?;
        let bytes: &[u8] = &map;
        let Ok(mut offset) = usize::try_from(start) else {
            return Ok((
                SegmentEnd::Damaged {
                    offset: start,
                    reason: "start past the end of the segment".into(),
                },
                start,
            ));
        };
        let mut txn_start = offset;
        while offset < bytes.len() {
            let (body, len) = match decode_frame(&bytes[offset..]) {
                Ok(found) => found,
                Err(_) if is_last && bytes[offset..].iter().all(|&b| b == 0) => {
                    return Ok((SegmentEnd::Clean { end: offset as u64 }, txn_start as u64))
                }
                Err(e) => {
                    return Ok((
                        SegmentEnd::Damaged {
                            offset: offset as u64,
                            reason: e.to_string(),
                        },
                        txn_start as u64,
                    ))
                }
            };
            let corrupt = |reason: String| Error::Corrupt {
                path: segment.path.clone(),
                offset: offset as u64,
                reason,
            };
            let payload = RecordCipher::open_body(self.cipher, body)
                .map_err(|_| corrupt("record fails authentication".into()))?;
            let rec = decode_op(&payload).map_err(|e| corrupt(e.0.into()))?;
            if rec.txn == u64::MAX {
                // The writer never reaches this id (the next one would overflow);
                // only a hostile or damaged file carries it.
                return Err(corrupt("transaction id out of range".into()));
            }
            match self.pending_txn {
                Some(t) if t != rec.txn => {
                    return Err(corrupt(format!(
                        "transaction {t} never committed before transaction {}",
                        rec.txn
                    )))
                }
                Some(_) => {}
                None => txn_start = offset,
            }
            self.pending_txn = Some(rec.txn);
            let loc = Loc {
                segment: segment.id,
                offset: offset as u64,
                len: len as u32,
            };
            self.pending.push(match rec.op {
                Op::Put { coll, id, doc } => Replayed::Put {
                    keys: self
                        .derive_keys(coll, doc)
                        .map_err(|e| corrupt(format!("document is not JSON: {e}")))?,
                    coll: coll.into(),
                    id: Arc::from(id),
                    entry: DocEntry {
                        loc,
                        size_bytes: doc.len() as u32,
                    },
                },
                Op::Delete { coll, id } => Replayed::Delete {
                    coll: coll.into(),
                    id: id.into(),
                },
                Op::CreateCollection { coll } => Replayed::CreateCollection { coll: coll.into() },
                Op::DropCollection { coll } => Replayed::DropCollection { coll: coll.into() },
                Op::CreateIndex { coll, path, unique } => Replayed::CreateIndex {
                    coll: coll.into(),
                    path: path.into(),
                    unique,
                },
                Op::DropIndex { coll, path } => Replayed::DropIndex {
                    coll: coll.into(),
                    path: path.into(),
                },
            });
            self.report.records += 1;
            if rec.commit {
                for op in self.pending.drain(..) {
                    apply_replayed(self.cipher, &mut self.state, op, &corrupt)?;
                }
                self.pending_txn = None;
                self.last_frame = offset as u64;
                self.report.transactions += 1;
                self.max_txn = self.max_txn.max(rec.txn);
            }
            offset += len;
        }
        Ok((
            SegmentEnd::Clean {
                end: bytes.len() as u64,
            },
            txn_start as u64,
        ))
    }
}

/// A checkpoint that matches the log, with the segments it covers opened.
type UsableCheckpoint = (checkpoint::Opened, Vec<Arc<Segment>>);

/// The checkpoint of `dir`, if one is present and still matches the log,
/// with its covered segments opened. `Err` says why one present was not used.
fn load_checkpoint(
    dir: &Path,
    meta: &Meta,
    cipher: Option<&RecordCipher>,
    manifest: &Manifest,
    faults: &crate::fault::Faults,
) -> std::result::Result<Option<UsableCheckpoint>, Rejected> {
    let Some(opened) = checkpoint::open_file(dir, cipher, true)? else {
        return Ok(None);
    };
    let segments = checkpoint::match_log(&opened.directory, &meta.database_id, manifest, |id| {
        Segment::open(dir, id, faults)
    })?;
    Ok(Some((opened, segments)))
}

/// True if records may follow the part of the log a checkpoint covers: a
/// segment after the covered ones, or bytes other than the zero tail after
/// the covered length of the last covered one.
fn log_after(
    covered: &[checkpoint::CoveredSegment],
    opened: &[Arc<Segment>],
    manifest: &Manifest,
) -> Result<bool> {
    if manifest.segments.len() > covered.len() {
        return Ok(true);
    }
    let (Some(c), Some(segment)) = (covered.last(), opened.last()) else {
        return Ok(false);
    };
    if segment.len()? <= c.len {
        return Ok(false);
    }
    segment.with_bytes(c.len, 1, |first| first[0] != 0)
}

/// Builds every collection still in the checkpoint (replaying records
/// after it changes them). `Err` is damage found in the checkpoint.
fn materialize_all(
    collections: OrdMap<String, CollectionState>,
) -> Result<OrdMap<String, CollectionState>> {
    collections
        .into_iter()
        .map(|(name, mut c)| {
            c.materialize()?;
            Ok((name, c))
        })
        .collect()
}

pub(crate) fn recover(dir: &Path, options: &Options) -> Result<Recovered> {
    if !dir.exists() {
        if !options.create_if_missing {
            return Err(Error::NotFound {
                path: dir.to_path_buf(),
            });
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create database directory", dir, e))?;
    }
    let lock = lock_dir(dir)?;
    let mut report = RecoveryReport::default();
    let meta = load_or_create_meta(dir, options, &mut report)?;
    let cipher = cipher_for(dir, &meta, options)?;
    let mut manifest = read_manifest(dir)?.unwrap_or(Manifest {
        version: 1,
        segments: Vec::new(),
        next_segment_id: 1,
    });
    remove_orphans(dir, &manifest, &mut report)?;

    let mut state = State::default();
    let mut max_txn = 0;
    let (covered, covered_segments) =
        match load_checkpoint(dir, &meta, cipher.as_ref(), &manifest, &options.fault_plan) {
            Ok(Some((mut opened, segments))) => {
                let covered = opened.directory.segments.clone();
                let collections = opened.take_collections();
                // Records after the checkpoint change its collections: build
                // them now, and replay everything if the checkpoint is damaged.
                let built = if log_after(&covered, &segments, &manifest)? {
                    materialize_all(collections)
                } else {
                    Ok(collections)
                };
                match built {
                    Ok(collections) => {
                        state.collections = collections;
                        max_txn = opened.directory.next_txn - 1;
                        report.checkpoint_used = true;
                        (covered, segments)
                    }
                    Err(e) => {
                        report.checkpoint_rejected = Some(e.to_string());
                        (Vec::new(), Vec::new())
                    }
                }
            }
            Ok(None) => (Vec::new(), Vec::new()),
            Err(Rejected(reason)) => {
                report.checkpoint_rejected = Some(reason);
                (Vec::new(), Vec::new())
            }
        };
    let mut replayer = Replayer {
        cipher: cipher.as_ref(),
        state,
        pending: Vec::new(),
        pending_txn: None,
        max_txn,
        report,
        last_frame: 0,
    };
    let mut segments: Vec<Arc<Segment>> = Vec::new();
    let ids = manifest.segments.clone();
    // Where the frames of the last segment end (the append position).
    let mut last_end = SEGMENT_HEADER_BYTES;
    for (i, &id) in ids.iter().enumerate() {
        let segment = match covered_segments.get(i) {
            Some(opened) => Arc::clone(opened),
            None => Arc::new(Segment::open(dir, id, &options.fault_plan)?),
        };
        replayer.state.segments.insert(id, Arc::clone(&segment));
        segments.push(Arc::clone(&segment));
        let is_last = i + 1 == ids.len();
        // Segments the checkpoint covers are not read, except the part of
        // the last of them written after the checkpoint.
        let start = match covered.get(i) {
            Some(_) if i + 1 < covered.len() => continue,
            Some(c) => {
                replayer.last_frame = c.boundary.map_or(0, |b| b.offset);
                c.len
            }
            None => {
                replayer.last_frame = 0;
                SEGMENT_HEADER_BYTES
            }
        };
        let (end, txn_start) = replayer.replay_segment(&segment, is_last, start)?;
        segment.set_last_frame(replayer.last_frame);
        let (cut_at, reason, records_dropped) = match end {
            SegmentEnd::Clean { end } if replayer.pending.is_empty() => {
                last_end = end;
                continue;
            }
            SegmentEnd::Clean { .. } => (
                txn_start,
                "transaction without its commit record".to_string(),
                0,
            ),
            SegmentEnd::Damaged { offset, reason } => {
                let map = segment.map()?;
                let later = valid_frames_after(&map, offset as usize + 1);
                let strict = options.recovery == RecoveryMode::Strict;
                if strict && (!is_last || later > 0) {
                    return Err(Error::Corrupt {
                        path: segment.path.clone(),
                        offset,
                        reason: format!(
                            "{reason}; {later} valid records and {} segments follow",
                            ids.len() - i - 1
                        ),
                    });
                }
                let cut = if replayer.pending.is_empty() {
                    offset
                } else {
                    txn_start
                };
                (cut, reason, later)
            }
        };
        let old_len = segment.len()?;
        segment.truncate(cut_at)?;
        last_end = cut_at;
        let segments_dropped = ids.len() - i - 1;
        replayer.pending.clear();
        replayer.pending_txn = None;
        if segments_dropped > 0 {
            manifest.segments.truncate(i + 1);
            write_manifest(dir, &manifest, &options.fault_plan)?;
            remove_orphans(dir, &manifest, &mut replayer.report)?;
        }
        replayer.report.truncated = Some(TruncatedTail {
            path: segment.path.clone(),
            offset: cut_at,
            bytes_removed: old_len - cut_at,
            reason,
            records_dropped,
            segments_dropped,
        });
        break;
    }
    replayer.report.segments = segments.len();

    let (active, active_len) = match segments.last() {
        Some(last) => (Arc::clone(last), last_end),
        None => {
            let id = manifest.next_segment_id;
            let segment = Arc::new(Segment::create(dir, id, &options.fault_plan)?);
            manifest.segments.push(id);
            manifest.next_segment_id = id + 1;
            write_manifest(dir, &manifest, &options.fault_plan)?;
            replayer.state.segments.insert(id, Arc::clone(&segment));
            (segment, SEGMENT_HEADER_BYTES)
        }
    };
    let Replayer {
        state,
        max_txn,
        report,
        ..
    } = replayer;
    let database_id = meta.database_id;
    // Nothing was written after the checkpoint: closing need not rewrite it.
    let checkpoint_current = report.checkpoint_used
        && covered
            .iter()
            .map(|c| c.id)
            .eq(manifest.segments.iter().copied())
        && covered.last().is_some_and(|c| c.len == active_len);
    Ok(Recovered {
        write_side: WriteSide {
            state,
            active,
            active_len,
            manifest,
            next_txn: max_txn + 1,
        },
        cipher,
        report,
        lock,
        database_id,
        checkpoint_current,
    })
}
