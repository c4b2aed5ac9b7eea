//! The database handle and its write path. Writers hand a [`WriteBatch`] to
//! the commit queue (`group_commit`); the leader of a group validates every
//! batch of the group against the newest state in turn and encodes its
//! records, appends the whole group's records to the active segment with
//! one write, then issues one fsync for the whole group and publishes the
//! new state to readers. Readers never take the commit lock: they clone the
//! published `Arc<State>`.
//!
//! Boundary: this module owns committing a group and the segment roll-over;
//! the queue and who leads live in `group_commit`, replay in `recovery`,
//! compaction in `compaction`, reads in `read`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};
use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use crate::batch::{
    merge_patch, prepare_doc_keeping_value, BatchOp, CommitOutcome, OpOutcome, WriteBatch,
};
use crate::cache::RecordCache;
use crate::clock::Clock;
use crate::crypto::RecordCipher;
use crate::error::{Error, Result};
use crate::fault::Faults;
use crate::files::{write_manifest, Manifest};
use crate::group_commit::{GroupCommit, PendingWrite, Slot};
use crate::options::{Durability, Options};
use crate::query::{parse_members_of_encoded, FieldPath};
use crate::record::{
    decode_frame, decode_op, encode_frame, encode_frame_unsummed, encode_frame_unsummed_with,
    encode_op, mark_commit, set_checksums, Op, OpRecord, FRAME_HEADER_BYTES,
};
use crate::recovery::{recover, RecoveryReport};
use crate::segment::{Segment, SEGMENT_HEADER_BYTES};
use crate::state::{CollectionState, DocEntry, IndexState, Loc, State};

/// The writer's side of the engine, guarded by one mutex.
pub(crate) struct WriteSide {
    pub(crate) state: State,
    pub(crate) active: Arc<Segment>,
    pub(crate) active_len: u64,
    pub(crate) manifest: Manifest,
    pub(crate) next_txn: u64,
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) durability: Durability,
    pub(crate) segment_size_bytes_max: u64,
    pub(crate) clock: Arc<dyn Clock>,
    /// The fault plan of the test seam; `None` outside tests.
    pub(crate) faults: Faults,
    pub(crate) cipher: Option<RecordCipher>,
    /// Verified payloads of recent point reads (see `cache`).
    pub(crate) record_cache: RecordCache,
    /// The meta file's database id, written into checkpoints.
    database_id: String,
    /// The manifest's segments and the append position as of the
    /// checkpoint on disk, if it is known to be current: a close with
    /// nothing written since does not rewrite it.
    checkpointed: Mutex<Option<(Vec<u64>, u64)>>,
    pub(crate) published: RwLock<Arc<State>>,
    pub(crate) writer: Mutex<WriteSide>,
    /// The commit queue (see `group_commit`).
    pub(crate) group: Arc<GroupCommit>,
    /// See [`Options::committer_idle`].
    pub(crate) committer_idle: Duration,
    poisoned: Arc<AtomicBool>,
    closed: AtomicBool,
    dirty: AtomicBool,
    pub(crate) compaction: Mutex<()>,
    report: RecoveryReport,
    syncer: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
    /// The directory lock, released by `close`.
    lock: Mutex<Option<std::fs::File>>,
}

/// An open database. Cheap to clone; all clones share one engine. Safe to
/// use from many threads: writes are serialized through group commit, reads
/// run on snapshots and never wait for writes.
#[derive(Clone)]
pub struct Database {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl Database {
    /// Opens (or creates) the database in `dir`, replaying its log.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Database> {
        let recovered = recover(dir.as_ref(), &options)?;
        let state = recovered.write_side.state.clone();
        let checkpointed = recovered.checkpoint_current.then(|| {
            let w = &recovered.write_side;
            (w.manifest.segments.clone(), w.active_len)
        });
        let inner = Arc::new(Inner {
            dir: dir.as_ref().to_path_buf(),
            durability: options.durability,
            segment_size_bytes_max: options.segment_size_bytes_max.max(SEGMENT_HEADER_BYTES + 1),
            clock: options.clock.clone(),
            faults: options.fault_plan.clone(),
            cipher: recovered.cipher,
            record_cache: RecordCache::new(options.record_cache_bytes_max),
            database_id: recovered.database_id,
            checkpointed: Mutex::new(checkpointed),
            published: RwLock::new(Arc::new(state)),
            writer: Mutex::new(recovered.write_side),
            group: Arc::default(),
            committer_idle: options.committer_idle,
            poisoned: Arc::new(AtomicBool::new(false)),
            closed: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
            compaction: Mutex::new(()),
            report: recovered.report,
            syncer: Mutex::new(None),
            lock: Mutex::new(Some(recovered.lock)),
        });
        if let Durability::Periodic(interval) = options.durability {
            let (stop_tx, stop_rx) = bounded::<()>(1);
            let weak = Arc::downgrade(&inner);
            let handle = std::thread::Builder::new()
                .name("aerolith-sync".into())
                .spawn(move || {
                    // Ends when told to stop or when the database is gone.
                    while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                        stop_rx.recv_timeout(interval)
                    {
                        let Some(inner) = weak.upgrade() else { return };
                        inner.background_sync();
                    }
                })
                .map_err(|e| Error::io("spawn sync thread", &inner.dir, e))?;
            *inner.syncer.lock() = Some((stop_tx, handle));
        }
        Ok(Database { inner })
    }

    /// What recovery found when this database was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// The directory of this database.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// True if records are encrypted at rest.
    pub fn is_encrypted(&self) -> bool {
        self.inner.cipher.is_some()
    }

    /// Flushes everything to disk and refuses further writes. Other clones
    /// of this handle see [`Error::Closed`] on writes afterwards.
    pub fn close(&self) -> Result<()> {
        if let Some((stop, handle)) = self.inner.syncer.lock().take() {
            let _ = stop.send(());
            let _ = handle.join();
        }
        let w = self.inner.writer.lock();
        let was_closed = self.inner.closed.swap(true, Ordering::SeqCst);
        if self.inner.poisoned.load(Ordering::SeqCst) {
            return Err(Error::Poisoned);
        }
        if !was_closed {
            w.active.sync()?;
            w.active.trim(w.active_len)?;
            self.inner.write_checkpoint(&w);
        }
        // Releasing the lock lets this or another process open the directory.
        self.inner.lock.lock().take();
        Ok(())
    }

    /// Forces everything written so far to stable storage, whatever the durability.
    pub fn sync(&self) -> Result<()> {
        let active = Arc::clone(&self.inner.writer.lock().active);
        self.inner.sync_segment(&active)
    }

    /// Commits `batch` atomically, blocking until it is durable as the
    /// database's [`Durability`] promises.
    pub fn write(&self, batch: WriteBatch) -> Result<CommitOutcome> {
        self.inner.commit(batch)
    }

    /// Queues `batch` for group commit and returns at once, holding no
    /// thread while it waits: await the [`PendingWrite`] (any async runtime)
    /// or [`PendingWrite::wait`] for it. The outcome and durability are
    /// those of [`Database::write`]. Dropping the `PendingWrite` does not
    /// cancel the write. A per-database committer thread leads the groups
    /// such writes open; it starts when needed and ends when idle
    /// ([`Options::committer_idle`]).
    ///
    /// ```
    /// use aerolith_core::{Database, Options, WriteBatch};
    /// use serde_json::json;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let db = Database::open(dir.path(), Options::default())?;
    /// db.create_collection("events")?;
    /// let mut batch = WriteBatch::new();
    /// batch.insert("events", json!({"kind": "login"}))?;
    /// let pending = db.write_pending(batch); // returns at once
    /// // In async code: `pending.await?`. Here:
    /// let outcome = pending.wait()?;
    /// assert_eq!(outcome.documents_delta, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_pending(&self, batch: WriteBatch) -> PendingWrite {
        self.inner.commit_pending(batch, None)
    }

    /// [`Database::write_pending`], and `hook` runs once with the outcome on
    /// the committing thread before the `PendingWrite` completes, whether or
    /// not anyone still holds it: for work each committed write must do
    /// exactly once (settling a quota, metering). `hook` must not write to
    /// this database.
    pub fn write_pending_with(
        &self,
        batch: WriteBatch,
        hook: impl FnOnce(&Result<CommitOutcome>) + Send + 'static,
    ) -> PendingWrite {
        self.inner.commit_pending(batch, Some(Box::new(hook)))
    }

    /// Creates an empty collection.
    pub fn create_collection(&self, name: &str) -> Result<()> {
        let mut b = WriteBatch::new();
        b.create_collection(name)?;
        self.write(b).map(drop)
    }

    /// Drops a collection with its documents and indexes.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        let mut b = WriteBatch::new();
        b.drop_collection(name)?;
        self.write(b).map(drop)
    }

    /// Inserts a document; fails with [`Error::DocumentExists`] if its id is
    /// taken. Returns the id.
    pub fn insert(&self, collection: &str, doc: Value) -> Result<String> {
        let mut b = WriteBatch::new();
        let id = b.insert(collection, doc)?;
        self.write(b)?;
        Ok(id)
    }

    /// Inserts or replaces a document by its id. Returns the id.
    pub fn upsert(&self, collection: &str, doc: Value) -> Result<String> {
        let mut b = WriteBatch::new();
        let id = b.upsert(collection, doc)?;
        self.write(b)?;
        Ok(id)
    }

    /// Replaces an existing document.
    pub fn replace(&self, collection: &str, id: &str, doc: Value) -> Result<()> {
        let mut b = WriteBatch::new();
        b.replace(collection, id, doc)?;
        self.write(b).map(drop)
    }

    /// Merge-patches an existing document; returns the merged document.
    pub fn patch(&self, collection: &str, id: &str, patch: Value) -> Result<Value> {
        let mut b = WriteBatch::new();
        b.patch(collection, id, patch)?;
        match self.write(b)?.ops.pop() {
            Some(OpOutcome::Patched { doc }) => Ok(doc),
            _ => unreachable!("a patch batch yields one Patched outcome"),
        }
    }

    /// Deletes a document; returns whether it existed.
    pub fn delete(&self, collection: &str, id: &str) -> Result<bool> {
        let mut b = WriteBatch::new();
        b.delete(collection, id)?;
        match self.write(b)?.ops.pop() {
            Some(OpOutcome::Deleted { existed }) => Ok(existed),
            _ => unreachable!("a delete batch yields one Deleted outcome"),
        }
    }

    /// Creates a secondary index on a dotted field path. Existing documents
    /// are indexed at once; a unique index fails if they hold duplicates.
    pub fn create_index(&self, collection: &str, path: &str, unique: bool) -> Result<()> {
        let mut b = WriteBatch::new();
        b.create_index(collection, path, unique)?;
        self.write(b).map(drop)
    }

    /// Drops the index on `path`.
    pub fn drop_index(&self, collection: &str, path: &str) -> Result<()> {
        let mut b = WriteBatch::new();
        b.drop_index(collection, path)?;
        self.write(b).map(drop)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.group.shut_down();
        if let Some((stop, handle)) = self.syncer.get_mut().take() {
            let _ = stop.send(());
            // The sync thread holds only a weak reference, so it cannot be
            // the one dropping us; joining is safe.
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
        if !self.closed.load(Ordering::SeqCst) && !self.poisoned.load(Ordering::SeqCst) {
            let w = self.writer.lock();
            if w.active.sync().is_ok() && w.active.trim(w.active_len).is_ok() {
                self.write_checkpoint(&w);
            }
        }
        // No background zero-fill may write once the directory is released
        // (a trim above already retired the segment; a poisoned or failed
        // close did not).
        self.writer.lock().active.retire();
    }
}

/// The document a location is expected to hold. Every verified read checks
/// the record's own collection and id against it, so a wrong location (a
/// bug in the id map, the checkpoint or compaction) is an error, never
/// another document, and never another tenant's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DocKey<'a> {
    pub(crate) coll: &'a str,
    pub(crate) id: &'a str,
}

impl DocKey<'_> {
    /// A 64-bit FNV-1a hash of the collection and id, which the record
    /// cache keeps beside a payload so that a hit is checked against the
    /// document looked up too (cheaply: no strings stored per entry).
    pub(crate) fn owner_hash(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.coll.bytes().chain([0xff]).chain(self.id.bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }
}

/// Reads the document stored at `loc`, verifying its checksum (and
/// decrypting it). A record that fails is an error, never served.
pub(crate) fn read_doc(
    cipher: Option<&RecordCipher>,
    state: &State,
    loc: Loc,
    key: DocKey<'_>,
) -> Result<Value> {
    with_doc_bytes(cipher, state, loc, key, |bytes| {
        serde_json::from_slice(bytes)
    })
}

/// Calls `f` with the encoded JSON of the document stored at `loc`, after
/// verifying the record's checksum (and decrypting it), read with one
/// `pread` (see `Segment::with_read`). A record that fails verification is an
/// error and `f` never sees it; an error from `f` means the verified bytes
/// are not the JSON they should be, and is reported as corruption too.
pub(crate) fn with_doc_bytes<R>(
    cipher: Option<&RecordCipher>,
    state: &State,
    loc: Loc,
    key: DocKey<'_>,
    f: impl FnOnce(&[u8]) -> serde_json::Result<R>,
) -> Result<R> {
    let segment = state
        .segments
        .get(&loc.segment)
        .ok_or_else(|| Error::Corrupt {
            path: PathBuf::from(crate::segment::segment_file_name(loc.segment)),
            offset: loc.offset,
            reason: "record points into a segment that is not open".into(),
        })?;
    let corrupt = |reason: String| Error::Corrupt {
        path: segment.path.clone(),
        offset: loc.offset,
        reason,
    };
    segment.with_read(loc.offset, u64::from(loc.len), |bytes| {
        let (body, _) = decode_frame(bytes).map_err(|e| corrupt(e.to_string()))?;
        with_doc_in_body(cipher, segment, loc, body, key, f)
    })?
}

/// The rest of [`with_doc_bytes`] once the frame at `loc` in `segment`
/// passed its checksum and `body` is its body: decrypts, decodes the
/// operation, compares the record's collection and id with `key`'s, and
/// calls `f` with the document's JSON.
pub(crate) fn with_doc_in_body<R>(
    cipher: Option<&RecordCipher>,
    segment: &Segment,
    loc: Loc,
    body: &[u8],
    key: DocKey<'_>,
    f: impl FnOnce(&[u8]) -> serde_json::Result<R>,
) -> Result<R> {
    let corrupt = |reason: String| Error::Corrupt {
        path: segment.path.clone(),
        offset: loc.offset,
        reason,
    };
    let payload = RecordCipher::open_body(cipher, body)
        .map_err(|_| corrupt("record fails authentication".into()))?;
    match decode_op(&payload).map_err(|e| corrupt(e.0.into()))?.op {
        Op::Put { coll, id, doc } => {
            if coll != key.coll || id != key.id {
                // Names neither document: the message may reach a tenant.
                return Err(corrupt(
                    "record holds another document than the one looked up".into(),
                ));
            }
            f(doc).map_err(|e| corrupt(format!("document is not JSON: {e}")))
        }
        _ => Err(corrupt("location does not hold a document".into())),
    }
}

/// Seals an operation payload into a frame appended to `buf`.
pub(crate) fn encode_record(cipher: Option<&RecordCipher>, rec: &OpRecord<'_>, buf: &mut Vec<u8>) {
    let mut payload = Vec::new();
    encode_op(rec, &mut payload);
    match cipher {
        Some(c) => encode_frame(&c.seal(&payload), buf),
        None => encode_frame(&payload, buf),
    }
}

/// Initial capacity of a commit's payload buffer (`Builder::scratch`).
const SCRATCH_BYTES_INITIAL: usize = 4096;

/// An operation of a batch as it will be logged, before encoding.
enum Logged {
    Put {
        coll: String,
        id: Arc<str>,
        bytes: Vec<u8>,
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

impl Logged {
    fn as_op(&self) -> Op<'_> {
        match self {
            Logged::Put { coll, id, bytes } => Op::Put {
                coll,
                id,
                doc: bytes,
            },
            Logged::Delete { coll, id } => Op::Delete { coll, id },
            Logged::CreateCollection { coll } => Op::CreateCollection { coll },
            Logged::DropCollection { coll } => Op::DropCollection { coll },
            Logged::CreateIndex { coll, path, unique } => Op::CreateIndex {
                coll,
                path,
                unique: *unique,
            },
            Logged::DropIndex { coll, path } => Op::DropIndex { coll, path },
        }
    }
}

/// The records a group has encoded and not yet written: the segment gets
/// them in one write when the group ends, instead of one per batch
/// (profiled under 64 concurrent HTTP inserts: the per-batch writes took
/// about a fifth of the commit thread's time). They start at `offset` of
/// the active segment and end at the writer's append position.
struct Unwritten {
    bytes: Vec<u8>,
    offset: u64,
}

/// Most bytes a group keeps unwritten ([`Unwritten`]): past it they are
/// written before the next batch. Large enough that a write per this many
/// bytes costs nothing worth measuring.
const GROUP_UNWRITTEN_BYTES_MAX: usize = 1 << 20;

impl Unwritten {
    fn at(offset: u64) -> Unwritten {
        Unwritten {
            bytes: Vec::new(),
            offset,
        }
    }
}

/// Validates one batch against `state`, applying it in place, and encodes
/// each operation's record as soon as it is applied, so every document
/// written gets its final location at once (no second pass over the id
/// map, no set of pending documents). The last record is encoded again
/// with the commit mark by `finish`: same length, so the locations stand.
struct Builder<'a> {
    cipher: Option<&'a RecordCipher>,
    txn: u64,
    /// The segment and offset `buf` will be written at.
    segment: u64,
    base_offset: u64,
    /// The group's records encoded so far (see [`Unwritten`]): earlier
    /// batches' from 0, this batch's from `batch_start`.
    buf: Vec<u8>,
    batch_start: usize,
    /// The payload of the last operation logged, not yet framed: it is
    /// framed once, when the next operation is logged (as an ordinary
    /// record) or when the batch finishes (marked as the commit record), so
    /// no record is encoded, sealed or checksummed twice.
    scratch: Vec<u8>,
    /// Where the last operation's frame goes in `buf` (its end, as nothing
    /// is appended before it is framed).
    last: Option<usize>,
    /// Where the frames in `buf` whose checksums are not set yet start:
    /// they are summed several at a time (`record::set_checksums`).
    unsummed: Vec<usize>,
    /// Index upkeep's view of the collection written last; dropped by every
    /// schema operation.
    indexing: Option<Indexing>,
    outcome: CommitOutcome,
}

/// What index upkeep needs of one collection, worked out once for a run of
/// writes to it instead of for every document (measured: per document,
/// copying and parsing the index paths and listing their members was a
/// tenth of the commit of a batch of 1,000).
struct Indexing {
    coll: String,
    /// The index paths, parsed.
    paths: Vec<(String, Option<FieldPath>)>,
    /// The top-level members the index paths start with, sorted, distinct.
    members: Vec<String>,
}

impl Indexing {
    fn of(coll: &str, c: &CollectionState) -> Indexing {
        let mut members: Vec<String> = c
            .indexes
            .keys()
            .map(|p| p.split('.').next().unwrap_or(p).to_owned())
            .collect();
        members.sort_unstable();
        members.dedup();
        Indexing {
            coll: coll.to_owned(),
            paths: c.index_paths(),
            members,
        }
    }
}

impl<'a> Builder<'a> {
    /// The [`Indexing`] of `coll` (whose state is `c`), taken out of the
    /// builder; the caller puts it back when done.
    fn take_indexing(&mut self, coll: &str, c: &CollectionState) -> Indexing {
        match self.indexing.take() {
            Some(indexing) if indexing.coll == coll => indexing,
            _ => Indexing::of(coll, c),
        }
    }

    fn collection<'s>(state: &'s mut State, coll: &str) -> Result<&'s mut CollectionState> {
        state
            .collections
            .get_mut(coll)
            .ok_or_else(|| Error::CollectionNotFound {
                collection: coll.to_owned(),
            })
    }

    /// Logs the record of `logged` (framed later, see `scratch`) and returns
    /// its location.
    fn log(&mut self, logged: Logged) -> Loc {
        self.frame_last(false);
        let start = self.buf.len();
        self.scratch.clear();
        encode_op(
            &OpRecord {
                txn: self.txn,
                commit: false,
                op: logged.as_op(),
            },
            &mut self.scratch,
        );
        self.last = Some(start);
        let sealed = match self.cipher {
            Some(_) => RecordCipher::SEAL_OVERHEAD_BYTES,
            None => 0,
        };
        Loc {
            segment: self.segment,
            offset: self.base_offset + start as u64,
            len: u32::try_from(FRAME_HEADER_BYTES + self.scratch.len() + sealed)
                .expect("frames are bounded"),
        }
    }

    /// Frames the last logged operation's payload into `buf`, marked as the
    /// commit record if `commit`.
    fn frame_last(&mut self, commit: bool) {
        let Some(start) = self.last.take() else {
            return;
        };
        debug_assert_eq!(start, self.buf.len(), "nothing is appended before it");
        if commit {
            mark_commit(&mut self.scratch);
        }
        self.unsummed.push(start);
        let payload = &self.scratch;
        match self.cipher {
            Some(c) => encode_frame_unsummed_with(&mut self.buf, |out| c.seal_into(payload, out)),
            None => encode_frame_unsummed(payload, &mut self.buf),
        }
    }

    /// Sets the checksums of the frames encoded since the last call.
    fn sum_frames(&mut self) {
        set_checksums(&mut self.buf, &self.unsummed);
        self.unsummed.clear();
    }

    /// The current version of a document that exists in `state`: from the
    /// group's unwritten bytes if this batch or an earlier one of its group
    /// wrote it, else from its segment.
    fn current(&mut self, state: &State, key: DocKey<'_>, entry: DocEntry) -> Result<Value> {
        let loc = entry.loc;
        if loc.segment != self.segment || loc.offset < self.base_offset {
            return read_doc(self.cipher, state, loc, key);
        }
        // Past the written part of the active segment: only this group can
        // have put a location there, and its bytes are in `buf` (earlier
        // batches' frames are complete, checksums included), or in
        // `scratch` for this batch's last operation (not framed yet).
        let start = usize::try_from(loc.offset - self.base_offset).expect("within buf");
        let payload = if self.last == Some(start) {
            std::borrow::Cow::Borrowed(self.scratch.as_slice())
        } else {
            // The frames read back must carry their checksums.
            self.sum_frames();
            let frame = &self.buf[start..start + loc.len as usize];
            let (body, _) = decode_frame(frame).expect("a frame this batch encoded decodes");
            RecordCipher::open_body(self.cipher, body).expect("a record this batch sealed opens")
        };
        match decode_op(&payload)
            .expect("an op this batch encoded decodes")
            .op
        {
            Op::Put { coll, id, doc } => {
                assert!(
                    coll == key.coll && id == key.id,
                    "a location this batch made points at its own document"
                );
                Ok(serde_json::from_slice(doc).expect("this batch encoded the document"))
            }
            _ => unreachable!("document locations point at Put records"),
        }
    }

    fn put(
        &mut self,
        state: &mut State,
        coll: String,
        doc: crate::batch::PreparedDoc,
        must: Existence,
    ) -> Result<()> {
        let c = Self::collection(state, &coll)?;
        let indexing = self.take_indexing(&coll, c);
        self.put_indexed(state, coll, doc, must, &indexing)?;
        self.indexing = Some(indexing);
        Ok(())
    }

    fn put_indexed(
        &mut self,
        state: &mut State,
        coll: String,
        doc: crate::batch::PreparedDoc,
        must: Existence,
        indexing: &Indexing,
    ) -> Result<()> {
        let c = Self::collection(state, &coll)?;
        let existing = c.docs.get(&doc.id)?;
        match (must, existing) {
            (Existence::MustNotExist, Some(_)) => {
                return Err(Error::DocumentExists {
                    collection: coll.to_owned(),
                    id: doc.id.to_string(),
                })
            }
            (Existence::MustExist, None) => {
                return Err(Error::DocumentNotFound {
                    collection: coll.to_owned(),
                    id: doc.id.to_string(),
                })
            }
            _ => {}
        }
        // What the indexes see of the new version: only the top-level
        // members their paths start with, read back from the encoded bytes.
        let indexed = if c.indexes.is_empty() {
            None
        } else {
            Some(
                parse_members_of_encoded(&doc.bytes, &indexing.members)
                    .expect("prepared documents are JSON objects"),
            )
        };
        if let Some(indexed) = &indexed {
            if let Some((path, existing_id)) = c.unique_conflict(&doc.id, indexed)? {
                return Err(Error::UniqueViolation {
                    collection: coll,
                    path,
                    existing_id: existing_id.to_string(),
                });
            }
        }
        let old = match existing {
            Some(entry) if !c.indexes.is_empty() => {
                let key = DocKey {
                    coll: &coll,
                    id: &doc.id,
                };
                Some(self.current(state, key, entry)?)
            }
            _ => None,
        };
        let size_bytes =
            u32::try_from(doc.bytes.len()).expect("documents are bounded by DOC_SIZE_BYTES_MAX");
        let created = existing.is_none();
        let id = Arc::clone(&doc.id);
        let c = Self::collection(state, &coll)?;
        c.reindex(&indexing.paths, &id, old.as_ref(), indexed.as_ref())?;
        let loc = self.log(Logged::Put {
            coll,
            id: Arc::clone(&id),
            bytes: doc.bytes,
        });
        c.put_entry(Arc::clone(&id), DocEntry { loc, size_bytes })?;
        let old_size = existing.map_or(0, |e| i64::from(e.size_bytes));
        self.outcome.live_bytes_delta += i64::from(size_bytes) - old_size;
        self.outcome.documents_delta += i64::from(created);
        self.outcome.ops.push(OpOutcome::Written {
            id: id.to_string(),
            created,
        });
        Ok(())
    }

    fn patch(&mut self, state: &mut State, coll: &str, id: &str, patch: &Value) -> Result<()> {
        let c = Self::collection(state, coll)?;
        let Some((id, entry)) = c.docs.get_key_value(id)? else {
            return Err(Error::DocumentNotFound {
                collection: coll.to_owned(),
                id: id.to_owned(),
            });
        };
        let mut merged = self.current(state, DocKey { coll, id: &id }, entry)?;
        merge_patch(&mut merged, patch);
        let (doc, result) = prepare_doc_keeping_value(merged, Some(&id))?;
        self.put(state, coll.to_owned(), doc, Existence::MustExist)?;
        *self.outcome.ops.last_mut().expect("put pushed an outcome") =
            OpOutcome::Patched { doc: result };
        Ok(())
    }

    fn delete(&mut self, state: &mut State, coll: &str, id: &str) -> Result<()> {
        let c = Self::collection(state, coll)?;
        let Some((id, entry)) = c.docs.get_key_value(id)? else {
            self.outcome.ops.push(OpOutcome::Deleted { existed: false });
            return Ok(());
        };
        let old = if c.indexes.is_empty() {
            None
        } else {
            Some(self.current(state, DocKey { coll, id: &id }, entry)?)
        };
        let c = Self::collection(state, coll)?;
        let indexing = self.take_indexing(coll, c);
        c.reindex(&indexing.paths, &id, old.as_ref(), None)?;
        self.indexing = Some(indexing);
        c.remove_entry(&id)?;
        self.outcome.live_bytes_delta -= i64::from(entry.size_bytes);
        self.outcome.documents_delta -= 1;
        self.outcome.ops.push(OpOutcome::Deleted { existed: true });
        self.log(Logged::Delete {
            coll: coll.to_owned(),
            id: id.to_string(),
        });
        Ok(())
    }

    fn create_index(
        &mut self,
        state: &mut State,
        coll: &str,
        path: &str,
        unique: bool,
    ) -> Result<()> {
        let c = Self::collection(state, coll)?;
        if c.indexes.contains_key(path) {
            return Err(Error::IndexExists {
                collection: coll.to_owned(),
                path: path.to_owned(),
            });
        }
        let entries: Vec<(Arc<str>, DocEntry)> = c
            .docs
            .map()?
            .iter()
            .map(|(k, v)| (Arc::clone(k), *v))
            .collect();
        let mut index = IndexState::new(unique);
        for (id, entry) in entries {
            let doc = self.current(state, DocKey { coll, id: &id }, entry)?;
            let keys = crate::query::index_keys(&doc, path);
            if unique {
                if let Some(other) = index.conflict(&keys, &id)? {
                    return Err(Error::UniqueViolation {
                        collection: coll.to_owned(),
                        path: path.to_owned(),
                        existing_id: other.to_string(),
                    });
                }
            }
            index.insert(&keys, &id)?;
        }
        Self::collection(state, coll)?
            .indexes
            .insert(path.to_owned(), index);
        self.outcome.ops.push(OpOutcome::Schema);
        self.log(Logged::CreateIndex {
            coll: coll.to_owned(),
            path: path.to_owned(),
            unique,
        });
        Ok(())
    }

    /// Applies `op` to `state` and logs its record. An operation that fails
    /// does so before it changes `state` (every check comes before the
    /// first change), which `Inner::commit_one` relies on to apply a batch
    /// of one operation in place.
    fn apply(&mut self, state: &mut State, op: BatchOp) -> Result<()> {
        let writes_documents = matches!(
            op,
            BatchOp::Insert { .. }
                | BatchOp::Upsert { .. }
                | BatchOp::Replace { .. }
                | BatchOp::Patch { .. }
                | BatchOp::Delete { .. }
        );
        if !writes_documents {
            // Collections and indexes may change: work the view out again.
            self.indexing = None;
        }
        // A collection still in the checkpoint is built before a write
        // changes it, so that every fallible step comes first.
        let changes = match &op {
            BatchOp::Insert { coll, .. }
            | BatchOp::Upsert { coll, .. }
            | BatchOp::Replace { coll, .. }
            | BatchOp::Patch { coll, .. }
            | BatchOp::Delete { coll, .. }
            | BatchOp::CreateIndex { coll, .. }
            | BatchOp::DropIndex { coll, .. } => Some(coll.as_str()),
            BatchOp::CreateCollection { .. } | BatchOp::DropCollection { .. } => None,
        };
        if let Some(c) = changes.and_then(|coll| state.collections.get_mut(coll)) {
            c.materialize()?;
        }
        match op {
            BatchOp::Insert { coll, doc } => self.put(state, coll, doc, Existence::MustNotExist),
            BatchOp::Upsert { coll, doc } => self.put(state, coll, doc, Existence::Either),
            BatchOp::Replace { coll, doc } => self.put(state, coll, doc, Existence::MustExist),
            BatchOp::Patch { coll, id, patch } => self.patch(state, &coll, &id, &patch),
            BatchOp::Delete { coll, id } => self.delete(state, &coll, &id),
            BatchOp::CreateCollection { coll } => {
                if state.collections.contains_key(&coll) {
                    return Err(Error::CollectionExists { collection: coll });
                }
                state
                    .collections
                    .insert(coll.clone(), CollectionState::default());
                self.outcome.collections_delta += 1;
                self.outcome.ops.push(OpOutcome::Schema);
                self.log(Logged::CreateCollection { coll });
                Ok(())
            }
            BatchOp::DropCollection { coll } => {
                let Some(dropped) = state.collections.remove(&coll) else {
                    return Err(Error::CollectionNotFound { collection: coll });
                };
                self.outcome.collections_delta -= 1;
                self.outcome.documents_delta -= dropped.docs.len() as i64;
                self.outcome.live_bytes_delta -= dropped.live_bytes as i64;
                self.outcome.ops.push(OpOutcome::Schema);
                self.log(Logged::DropCollection { coll });
                Ok(())
            }
            BatchOp::CreateIndex { coll, path, unique } => {
                self.create_index(state, &coll, &path, unique)
            }
            BatchOp::DropIndex { coll, path } => {
                let c = Self::collection(state, &coll)?;
                if c.indexes.remove(&path).is_none() {
                    return Err(Error::IndexNotFound {
                        collection: coll,
                        path,
                    });
                }
                self.outcome.ops.push(OpOutcome::Schema);
                self.log(Logged::DropIndex { coll, path });
                Ok(())
            }
        }
    }

    /// Marks the last record as the transaction's commit and returns the
    /// group's bytes (this batch's at their end) with the outcome, and where
    /// in those bytes the transaction's last frame starts (for the
    /// checkpoint's boundary).
    fn finish(mut self) -> (Vec<u8>, CommitOutcome, usize) {
        let last_start = self.last.unwrap_or(self.batch_start);
        self.frame_last(true);
        self.sum_frames();
        let mut outcome = self.outcome;
        outcome.log_bytes_written = (self.buf.len() - self.batch_start) as u64;
        (self.buf, outcome, last_start)
    }
}

#[derive(Clone, Copy)]
enum Existence {
    MustExist,
    MustNotExist,
    Either,
}

impl Inner {
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(Error::Poisoned);
        }
        Ok(())
    }

    pub(crate) fn snapshot_state(&self) -> Arc<State> {
        Arc::clone(&self.published.read())
    }

    pub(crate) fn poison(&self) {
        self.poisoned.store(true, Ordering::SeqCst);
    }

    /// Commits a group of batches with one write and one fsync, then
    /// publishes; returns how long the fsync took (zero without one).
    ///
    /// Each batch is validated and encoded in turn into the group's
    /// [`Unwritten`] bytes; they reach the segment in one write at the end
    /// of the group (or before a roll-over), not one per batch. Nothing is
    /// acknowledged or published before that write (and its fsync, under
    /// `Durability::Always`): a crash in between loses only writes nobody
    /// was told about.
    pub(crate) fn lead_group(&self, group: &[Arc<Slot>]) -> Duration {
        let mut sync_took = Duration::ZERO;
        let mut w = self.writer.lock();
        let mut results: Vec<Result<CommitOutcome>> = Vec::with_capacity(group.len());
        let mut unwritten = Unwritten::at(w.active_len);
        let mut wrote_any = false;
        for slot in group {
            let batch = slot.take_batch().expect("each slot is led once");
            let result = self
                .check_open()
                .and_then(|()| self.commit_one(&mut w, batch, &mut unwritten));
            if let Ok(outcome) = &result {
                wrote_any |= outcome.log_bytes_written > 0;
            }
            results.push(result);
        }
        if !self.poisoned.load(Ordering::SeqCst) {
            if let Err(e) = self.write_out(&mut w, &mut unwritten) {
                // Every batch of the group was in that write: none of them
                // may be acknowledged (`write_out` poisoned the database).
                let reason = e.to_string();
                for r in results.iter_mut().filter(|r| r.is_ok()) {
                    *r = Err(Error::io(
                        "append to segment",
                        &w.active.path,
                        std::io::Error::other(reason.clone()),
                    ));
                }
            }
        }
        if self.poisoned.load(Ordering::SeqCst) {
            // A later batch of the group failed to append: the group is never
            // fsynced, so the batches before it must not be acknowledged
            // either (they may or may not survive a crash).
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(Error::Poisoned);
            }
        }
        if wrote_any && !self.poisoned.load(Ordering::SeqCst) {
            match self.durability {
                Durability::Always => {
                    let sync_started = self.clock.monotonic();
                    let synced = w.active.sync();
                    sync_took = self.clock.monotonic().saturating_sub(sync_started);
                    if let Err(e) = synced {
                        // The data may or may not be on disk; it must never be
                        // reported safe, and an fsync is not retried.
                        self.poison();
                        let reason = e.to_string();
                        for r in results.iter_mut().filter(|r| r.is_ok()) {
                            *r = Err(Error::io(
                                "sync segment",
                                &w.active.path,
                                std::io::Error::other(reason.clone()),
                            ));
                        }
                    }
                }
                Durability::Periodic(_) => self.dirty.store(true, Ordering::SeqCst),
                Durability::Never => {}
            }
        }
        // Published exactly when something of the group is acknowledged:
        // every failure above (an append, a poisoning before the fsync, the
        // fsync) turned all its results into errors. Not `!poisoned`: a
        // background zero-fill may poison after this group's own fsync
        // succeeded, and what that fsync made durable is acknowledged.
        if results.iter().any(Result::is_ok) {
            *self.published.write() = Arc::new(w.state.clone());
        }
        drop(w);
        for (slot, result) in group.iter().zip(results) {
            slot.complete(result);
        }
        sync_took
    }

    /// Writes the group's records encoded so far to the active segment, in
    /// one write at the append position they were encoded for (zero-filling
    /// ahead first under `Durability::Always`, see `Segment::reserve`). A
    /// failure poisons the database: a partial append may sit at the tail
    /// (recovery cuts it), and the zero-fill's fsync may have failed, so
    /// unsynced appends before it are of unknown durability.
    fn write_out(&self, w: &mut WriteSide, unwritten: &mut Unwritten) -> Result<()> {
        if !unwritten.bytes.is_empty() {
            debug_assert_eq!(
                unwritten.offset + unwritten.bytes.len() as u64,
                w.active_len,
                "the unwritten bytes end at the append position"
            );
            // Zero-filling ahead pays off only when commits wait for
            // fdatasync (docs/format.md); otherwise it would add a write and
            // a sync for nothing (measured: batched inserts without fsync
            // 1.6x slower).
            if matches!(self.durability, Durability::Always) {
                w.active
                    .reserve(w.active_len, self.segment_size_bytes_max)
                    .inspect_err(|_| self.poison())?;
            }
            w.active
                .write_at(&unwritten.bytes, unwritten.offset)
                .inspect_err(|_| self.poison())?;
            if matches!(self.durability, Durability::Always) {
                // The next step of zeros, off the commit path. A failure
                // there poisons: its fdatasync may have consumed errors of
                // appends not yet synced (they are reported to this
                // writer's own fdatasync too, see `Segment::fill_ahead`).
                let poisoned = Arc::clone(&self.poisoned);
                w.active
                    .fill_ahead(w.active_len, self.segment_size_bytes_max, move |_| {
                        poisoned.store(true, Ordering::SeqCst);
                    });
            }
        }
        unwritten.bytes.clear();
        unwritten.offset = w.active_len;
        Ok(())
    }

    /// Validates `batch` against the writer's state and encodes its records
    /// after the group's `unwritten` ones; on success the writer's state,
    /// append position and transaction number move past it (its bytes are
    /// written by `write_out`). A batch that fails validation leaves all of
    /// them as they were; a failed write poisons the database.
    fn commit_one(
        &self,
        w: &mut WriteSide,
        batch: WriteBatch,
        unwritten: &mut Unwritten,
    ) -> Result<CommitOutcome> {
        if w.active_len >= self.segment_size_bytes_max {
            // The sealed segment must hold the group's records so far.
            self.write_out(w, unwritten)?;
            self.roll_over(w)?;
            unwritten.offset = w.active_len;
        }
        // A batch of one operation is applied to the writer's state in
        // place: an operation that fails leaves the state as it was (see
        // `Builder::apply`), so there is nothing to roll back, and the
        // group's later batches change the nodes this one copied instead of
        // copying the paths again (profiled under 64 concurrent HTTP inserts:
        // copying and freeing them per batch took about a sixth of the
        // commit thread's time). A longer batch works on a copy, kept only
        // if every operation succeeds.
        let in_place = batch.ops.len() == 1;
        let mut copy = if in_place {
            None
        } else {
            Some(w.state.clone())
        };
        let mut buf = std::mem::take(&mut unwritten.bytes);
        let batch_start = buf.len();
        buf.reserve(batch.encoded_bytes_hint());
        let mut builder = Builder {
            cipher: self.cipher.as_ref(),
            txn: w.next_txn,
            segment: w.active.id,
            base_offset: unwritten.offset,
            batch_start,
            buf,
            // Most records fit; a larger one grows it once or twice.
            scratch: Vec::with_capacity(SCRATCH_BYTES_INITIAL),
            unsummed: Vec::with_capacity(batch.ops.len()),
            last: None,
            indexing: None,
            outcome: CommitOutcome {
                ops: Vec::with_capacity(batch.ops.len()),
                live_bytes_delta: 0,
                documents_delta: 0,
                collections_delta: 0,
                log_bytes_written: 0,
            },
        };
        let state = copy.as_mut().unwrap_or(&mut w.state);
        for op in batch.ops {
            if let Err(e) = builder.apply(state, op) {
                let mut buf = builder.buf;
                buf.truncate(batch_start);
                unwritten.bytes = buf;
                return Err(e);
            }
        }
        if builder.last.is_none() {
            unwritten.bytes = std::mem::take(&mut builder.buf);
            if let Some(copy) = copy {
                w.state = copy;
            }
            return Ok(builder.outcome);
        }
        let (buf, outcome, last_start) = builder.finish();
        w.active
            .set_last_frame(unwritten.offset + last_start as u64);
        w.active_len = unwritten.offset + buf.len() as u64;
        unwritten.bytes = buf;
        w.next_txn += 1;
        if let Some(copy) = copy {
            w.state = copy;
        }
        if unwritten.bytes.len() >= GROUP_UNWRITTEN_BYTES_MAX {
            // A group of large batches does not hold all of its bytes twice
            // (the batches and their encoding) until it ends.
            self.write_out(w, unwritten)?;
        }
        Ok(outcome)
    }

    /// Seals the active segment and starts a new one, recorded in the manifest.
    ///
    /// A failed fsync of the sealed segment poisons the database (its data is
    /// of unknown durability). A failed creation of the new segment does not:
    /// the database goes on appending to the current one, the id is not
    /// reused, and a file left behind is an orphan that recovery deletes. A
    /// failed manifest write poisons: a crash might keep either manifest, and
    /// appending on to a segment that is no longer the last could leave a torn
    /// tail where recovery only accepts clean data.
    ///
    /// A poisoned database never rolls over: its active segment may end in a
    /// torn append, which recovery accepts only at the end of the last
    /// segment (so compaction and backup fail with `Poisoned` too).
    pub(crate) fn roll_over(&self, w: &mut WriteSide) -> Result<()> {
        self.check_open()?;
        w.active.sync().inspect_err(|_| self.poison())?;
        // A sealed segment ends at its last record: recovery accepts a zero
        // tail only in the last segment.
        w.active.trim(w.active_len).inspect_err(|_| self.poison())?;
        let id = w.manifest.next_segment_id;
        w.manifest.next_segment_id = id + 1;
        let segment = Arc::new(Segment::create(&self.dir, id, &self.faults)?);
        let mut manifest = w.manifest.clone();
        manifest.segments.push(id);
        write_manifest(&self.dir, &manifest, &self.faults).inspect_err(|_| self.poison())?;
        w.manifest = manifest;
        w.state.segments.insert(id, Arc::clone(&segment));
        w.active = segment;
        w.active_len = SEGMENT_HEADER_BYTES;
        Ok(())
    }

    /// Writes a checkpoint of the writer's state (see `checkpoint`). The
    /// caller has synced everything it covers. A failure is not an error of
    /// the operation that asked for it (close, compaction): the checkpoint
    /// is derived data, and an old or missing one only makes the next open
    /// replay more of the log; a leftover temp file is removed on open.
    pub(crate) fn write_checkpoint(&self, w: &WriteSide) {
        let covers = (w.manifest.segments.clone(), w.active_len);
        let mut checkpointed = self.checkpointed.lock();
        if checkpointed.as_ref() == Some(&covers) {
            return;
        }
        let written = crate::checkpoint::write(
            &self.dir,
            &self.faults,
            self.cipher.as_ref(),
            &self.database_id,
            w,
        );
        *checkpointed = matches!(written, Ok(true)).then_some(covers);
    }

    /// The last step of a compaction: under the writer lock, unless the
    /// database was closed or poisoned meanwhile (then there is nothing to
    /// do: the compaction itself is complete), make the active segment
    /// durable (a failure poisons) and checkpoint the new layout.
    pub(crate) fn checkpoint_after_compaction(&self) -> Result<()> {
        let w = self.writer.lock();
        if self.check_open().is_err() {
            return Ok(());
        }
        w.active.sync().inspect_err(|_| self.poison())?;
        self.write_checkpoint(&w);
        Ok(())
    }

    fn sync_segment(&self, segment: &Segment) -> Result<()> {
        segment.sync().inspect_err(|_| self.poison())
    }

    fn background_sync(&self) {
        if self.dirty.swap(false, Ordering::SeqCst) {
            let active = Arc::clone(&self.writer.lock().active);
            let _ = self.sync_segment(&active);
        }
    }
}
