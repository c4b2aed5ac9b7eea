//! Getting data out and back in: a consistent online backup of the whole
//! database to another directory (which opens as a database with the same
//! master key), and export/import of one collection as JSON Lines.

use std::io::{BufRead, Write};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::batch::WriteBatch;
use crate::engine::{read_doc, Database, DocKey};
use crate::error::{Error, Result};
use crate::fault;
use crate::files::{read_meta, sync_dir, write_manifest, write_meta, Manifest};
use crate::segment::segment_file_name;

/// Lines committed per batch when importing.
pub const IMPORT_BATCH_LINES: usize = 1_000;

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupReport {
    /// Segment files copied.
    pub segments: usize,
    /// Bytes copied.
    pub bytes: u64,
}

/// What an import does when a line's `_id` already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// Fail on an existing id.
    Insert,
    /// Replace the existing document.
    Upsert,
}

impl Database {
    /// Writes a consistent copy of the database to `dest`, which must not
    /// exist or be empty. Writers pause only while the active segment is
    /// sealed; the copy is taken from immutable segments.
    pub fn backup_to(&self, dest: impl AsRef<Path>) -> Result<BackupReport> {
        let dest = dest.as_ref();
        let inner = &self.inner;
        let (segments, manifest) = {
            let mut w = inner.writer.lock();
            inner.roll_over(&mut w)?;
            let ids: Vec<u64> = w.manifest.segments[..w.manifest.segments.len() - 1].to_vec();
            let segments: Vec<_> = ids
                .iter()
                .map(|id| {
                    w.state
                        .segments
                        .get(id)
                        .cloned()
                        .expect("manifest segments are open")
                })
                .collect();
            (
                segments,
                Manifest {
                    version: 1,
                    segments: ids,
                    next_segment_id: w.manifest.next_segment_id,
                },
            )
        };
        if dest.exists() {
            let mut entries =
                std::fs::read_dir(dest).map_err(|e| Error::io("list backup directory", dest, e))?;
            if entries.next().is_some() {
                return Err(Error::io(
                    "back up",
                    dest,
                    std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "destination is not empty",
                    ),
                ));
            }
        }
        std::fs::create_dir_all(dest).map_err(|e| Error::io("create backup directory", dest, e))?;
        let meta = read_meta(&inner.dir)?.expect("an open database has a meta file");
        write_meta(dest, &meta, &inner.faults)?;
        let mut bytes = 0;
        for segment in &segments {
            let map = segment.map()?;
            let path = dest.join(segment_file_name(segment.id));
            let mut f = fault::create(
                &inner.faults,
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true),
                &path,
            )
            .map_err(|e| Error::io("create backup segment", &path, e))?;
            fault::write_all(&inner.faults, &mut f, &path, &map)
                .map_err(|e| Error::io("write backup segment", &path, e))?;
            fault::sync_all(&inner.faults, &f, &path)
                .map_err(|e| Error::io("sync backup segment", &path, e))?;
            bytes += map.len() as u64;
        }
        write_manifest(dest, &manifest, &inner.faults)?;
        sync_dir(dest, &inner.faults)?;
        Ok(BackupReport {
            segments: segments.len(),
            bytes,
        })
    }

    /// Writes every document of `collection` as one JSON object per line,
    /// in id order, from one snapshot. Returns the number of documents.
    pub fn export_jsonl(&self, collection: &str, out: &mut dyn Write) -> Result<u64> {
        let snapshot = self.inner.snapshot_state();
        let coll =
            snapshot
                .collections
                .get(collection)
                .ok_or_else(|| Error::CollectionNotFound {
                    collection: collection.to_owned(),
                })?;
        let mut n = 0;
        for (id, entry) in coll.docs.map()?.iter() {
            let key = DocKey {
                coll: collection,
                id,
            };
            let doc = read_doc(self.inner.cipher.as_ref(), &snapshot, entry.loc, key)?;
            serde_json::to_writer(&mut *out, &doc)
                .map_err(|e| Error::io("export", collection, e.into()))?;
            out.write_all(b"\n")
                .map_err(|e| Error::io("export", collection, e))?;
            n += 1;
        }
        Ok(n)
    }

    /// Reads JSON Lines into `collection` (which must exist), committing
    /// every [`IMPORT_BATCH_LINES`] lines atomically. Blank lines are
    /// skipped. On a bad line the error names it; batches before it stay
    /// committed, the batch holding it does not. Returns documents written.
    pub fn import_jsonl(
        &self,
        collection: &str,
        input: &mut dyn BufRead,
        mode: ImportMode,
    ) -> Result<u64> {
        let mut batch = WriteBatch::new();
        let mut written = 0u64;
        let mut line_no = 0u64;
        let mut line = String::new();
        loop {
            line.clear();
            let n = input.read_line(&mut line).map_err(|e| Error::Import {
                line: line_no + 1,
                reason: e.to_string(),
            })?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if line.trim().is_empty() {
                continue;
            }
            let doc: Value = serde_json::from_str(&line).map_err(|e| Error::Import {
                line: line_no,
                reason: format!("not JSON: {e}"),
            })?;
            let added = match mode {
                ImportMode::Insert => batch.insert(collection, doc),
                ImportMode::Upsert => batch.upsert(collection, doc),
            };
            added.map_err(|e| Error::Import {
                line: line_no,
                reason: e.to_string(),
            })?;
            if batch.len() >= IMPORT_BATCH_LINES {
                written += self.flush_import(std::mem::take(&mut batch), line_no)?;
            }
        }
        if !batch.is_empty() {
            written += self.flush_import(batch, line_no)?;
        }
        Ok(written)
    }

    fn flush_import(&self, batch: WriteBatch, line_no: u64) -> Result<u64> {
        let n = batch.len() as u64;
        self.write(batch).map_err(|e| match e {
            Error::DocumentExists { .. }
            | Error::UniqueViolation { .. }
            | Error::CollectionNotFound { .. } => Error::Import {
                line: line_no,
                reason: format!("batch ending at this line: {e}"),
            },
            other => other,
        })?;
        Ok(n)
    }
}
