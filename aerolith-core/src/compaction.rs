//! Compaction: rewrite the live records of all sealed segments into new
//! segments and swap them in, reclaiming the space of overwritten and
//! deleted versions. Reads and writes go on meanwhile.
//!
//! Protocol: (1) under the writer lock, seal the active segment and take the
//! state as of that instant; (2) without the lock, write that state's
//! collections, index definitions and documents to new segment files and
//! fsync them; (3) under the lock, write a manifest that lists the new
//! segments in place of the sealed ones, and repoint every document that has
//! not been rewritten since; (4) delete the old files. A crash before (3)
//! leaves the new files as orphans; after (3), the old ones. Recovery deletes
//! orphans, so no step loses data.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;

use crate::engine::{encode_record, read_doc, Database, DocKey};
use crate::error::Result;
use crate::files::{sync_dir, write_manifest};
use crate::record::{Op, OpRecord};
use crate::segment::{Segment, SEGMENT_HEADER_BYTES};
use crate::state::Loc;

/// Transaction id of records written by compaction; each is committed on its own.
const COMPACTION_TXN: u64 = 0;

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompactionReport {
    /// Sealed segments rewritten.
    pub segments_compacted: usize,
    /// New segments written.
    pub segments_written: usize,
    /// Bytes of the rewritten segments.
    pub bytes_before: u64,
    /// Bytes of the new segments.
    pub bytes_after: u64,
    /// Documents copied.
    pub documents_moved: u64,
}

struct Output {
    segments: Vec<Arc<Segment>>,
    buf: Vec<u8>,
    len: u64,
}

impl Database {
    /// Compacts the log. Safe to call while other threads read and write.
    pub fn compact(&self) -> Result<CompactionReport> {
        let inner = &self.inner;
        let _one_at_a_time = inner.compaction.lock();
        // (1) Seal and capture.
        let (state, sealed, mut next_id) = {
            let mut w = inner.writer.lock();
            inner.roll_over(&mut w)?;
            let sealed: Vec<u64> = w.manifest.segments[..w.manifest.segments.len() - 1].to_vec();
            // Reserve ids for the output by moving the counter far enough
            // ahead later; take the current one now.
            let next_id = w.manifest.next_segment_id;
            w.manifest.next_segment_id = next_id + sealed.len() as u64 + 1;
            (w.state.clone(), sealed, next_id)
        };
        let sealed_set: HashSet<u64> = sealed.iter().copied().collect();
        let mut bytes_before = 0;
        for id in &sealed {
            if let Some(s) = state.segments.get(id) {
                bytes_before += s.len()?;
            }
        }
        let reserved_end = next_id + sealed.len() as u64 + 1;

        // (2) Rewrite.
        let cipher = inner.cipher.as_ref();
        let mut out = Output {
            segments: Vec::new(),
            buf: Vec::new(),
            len: 0,
        };
        let mut moved: Vec<(String, Arc<str>, Loc, Loc)> = Vec::new();
        let mut start_segment = |out: &mut Output| -> Result<()> {
            if let Some(last) = out.segments.last() {
                last.write_at(&out.buf, SEGMENT_HEADER_BYTES)?;
                last.sync()?;
            }
            out.buf.clear();
            let id = if next_id < reserved_end {
                next_id
            } else {
                // Ran past the reservation: take more ids from the writer.
                let mut w = inner.writer.lock();
                let id = w.manifest.next_segment_id;
                w.manifest.next_segment_id += 1;
                id
            };
            next_id += 1;
            out.segments
                .push(Arc::new(Segment::create(&inner.dir, id, &inner.faults)?));
            out.len = SEGMENT_HEADER_BYTES;
            Ok(())
        };
        start_segment(&mut out)?;
        let mut push = |out: &mut Output, op: Op<'_>| -> Result<Loc> {
            if out.len >= inner.segment_size_bytes_max {
                start_segment(out)?;
            }
            let start = out.buf.len();
            encode_record(
                cipher,
                &OpRecord {
                    txn: COMPACTION_TXN,
                    commit: true,
                    op,
                },
                &mut out.buf,
            );
            let frame_len = (out.buf.len() - start) as u64;
            let loc = Loc {
                segment: out.segments.last().expect("a segment is open").id,
                offset: out.len,
                len: frame_len as u32,
            };
            out.len += frame_len;
            out.segments
                .last()
                .expect("a segment is open")
                .set_last_frame(loc.offset);
            Ok(loc)
        };
        for (name, coll) in state.collections.iter() {
            push(&mut out, Op::CreateCollection { coll: name })?;
            for (path, index) in coll.indexes.iter() {
                push(
                    &mut out,
                    Op::CreateIndex {
                        coll: name,
                        path,
                        unique: index.unique,
                    },
                )?;
            }
            for (id, entry) in coll.docs.map()?.iter() {
                if !sealed_set.contains(&entry.loc.segment) {
                    continue;
                }
                let doc = read_doc(cipher, &state, entry.loc, DocKey { coll: name, id })?;
                let bytes = serde_json::to_vec(&doc).expect("serde_json::Value always serializes");
                let new_loc = push(
                    &mut out,
                    Op::Put {
                        coll: name,
                        id,
                        doc: &bytes,
                    },
                )?;
                moved.push((name.clone(), Arc::clone(id), entry.loc, new_loc));
            }
        }
        let last = out.segments.last().expect("a segment is open");
        last.write_at(&out.buf, SEGMENT_HEADER_BYTES)?;
        last.sync()?;
        sync_dir(&inner.dir, &inner.faults)?;
        let mut bytes_after = 0;
        for s in &out.segments {
            bytes_after += s.len()?;
        }

        // (3) Swap.
        {
            let mut w = inner.writer.lock();
            // Collections still in the checkpoint become this version's own
            // before anything changes (the rewrite above built their maps,
            // so this cannot fail halfway through the swap below).
            let names: Vec<String> = w.state.collections.keys().cloned().collect();
            for name in &names {
                if let Some(c) = w.state.collections.get_mut(name) {
                    c.materialize()?;
                }
            }
            let mut manifest = w.manifest.clone();
            let new_ids: Vec<u64> = out.segments.iter().map(|s| s.id).collect();
            manifest.segments.retain(|id| !sealed_set.contains(id));
            manifest.segments.splice(0..0, new_ids);
            write_manifest(&inner.dir, &manifest, &inner.faults)?;
            w.manifest = manifest;
            for s in &out.segments {
                w.state.segments.insert(s.id, Arc::clone(s));
            }
            for (coll, id, old, new) in &moved {
                let entry = match w.state.collections.get_mut(coll) {
                    Some(c) => c.docs.map_mut()?.get_mut(id),
                    None => None,
                };
                if let Some(entry) = entry {
                    if entry.loc == *old {
                        entry.loc = *new;
                    }
                }
            }
            for id in &sealed {
                w.state.segments.remove(id);
            }
            *inner.published.write() = Arc::new(w.state.clone());
        }

        // (4) Reclaim. Snapshots still holding the old segments keep reading
        // them through their maps; the space returns when they are dropped.
        for id in &sealed {
            if let Some(s) = state.segments.get(id) {
                let _ = std::fs::remove_file(&s.path);
            }
            // Its id is never reused, so this only frees memory.
            inner.record_cache.forget_segment(*id);
        }
        sync_dir(&inner.dir, &inner.faults)?;

        // (5) Checkpoint the new layout, so the next open need not replay
        // the rewritten segments. Everything it covers must be durable
        // first; a failed fsync poisons, as for any commit.
        inner.checkpoint_after_compaction()?;
        Ok(CompactionReport {
            segments_compacted: sealed.len(),
            segments_written: out.segments.len(),
            bytes_before,
            bytes_after,
            documents_moved: moved.len() as u64,
        })
    }
}
