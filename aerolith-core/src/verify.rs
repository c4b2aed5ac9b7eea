//! Offline verification: reading every record of a closed database and
//! checking its frame checksum, its authentication tag (when encrypted) and
//! its encoding, without changing a byte.
//!
//! Unlike opening (recovery), verification never truncates: it reports. A
//! record cut short at the very end of the last segment, with nothing but
//! zeros or nothing at all after it, is what a crash mid-write leaves; it is
//! reported as a torn tail (the next open truncates it) and is not a
//! failure. Any other damage is [`Error::Corrupt`] with the file and offset.
//! The directory lock is taken, so a database open elsewhere (a running
//! server) is [`Error::Locked`].
//!
//! The checkpoint file, if present, is checked too (its checksum, its
//! decoding, that it matches the log, and that every document entry points
//! at a `Put` record of that collection, id and size) and reported in
//! [`VerifyReport::checkpoint`]. A damaged or stale checkpoint is not a
//! failure: it is derived data that the next open ignores (it replays the
//! whole log and writes a new one at close), so verification says so and
//! goes on.

use std::path::{Path, PathBuf};

use crate::checkpoint::{self, Rejected};
use crate::engine::Database;
use crate::error::{Error, Result};
use crate::files::{lock_dir, read_manifest, read_meta};
use crate::options::Options;
use crate::record::{decode_frame, decode_op, FrameError, Op};
use crate::recovery::{check_meta_format, cipher_for, valid_frames_after};
use crate::segment::{Segment, SEGMENT_HEADER_BYTES};

/// What [`Database::verify_offline`] checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Segments read.
    pub segments: usize,
    /// Records whose checksum, tag and encoding were checked.
    pub records: u64,
    /// Bytes of segment files read.
    pub bytes: u64,
    /// A torn write at the end of the last segment (file and offset), which
    /// the next open truncates; not corruption.
    pub torn_tail: Option<(PathBuf, u64)>,
    /// What was found of the checkpoint file.
    pub checkpoint: CheckpointStatus,
}

/// The state of a database's checkpoint file, as [`Database::verify_offline`]
/// found it. Never a failure: the checkpoint is derived data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointStatus {
    /// There is no checkpoint (the next open replays the whole log).
    #[default]
    Absent,
    /// The checkpoint is intact, matches the log, and each of its document
    /// entries points at that document's record: the next open uses it.
    Valid,
    /// The checkpoint is damaged or does not match the log: the next open
    /// ignores it and replays the whole log.
    Rejected {
        /// What is wrong with it.
        reason: String,
    },
}

impl Database {
    /// Checks every record of the closed database in `dir` (see the module
    /// documentation); `options` supplies the master key of an encrypted
    /// database. Changes nothing on disk.
    pub fn verify_offline(dir: impl AsRef<Path>, options: &Options) -> Result<VerifyReport> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(Error::NotFound {
                path: dir.to_path_buf(),
            });
        }
        let _lock = lock_dir(dir)?;
        let meta = read_meta(dir)?.ok_or_else(|| Error::NotFound {
            path: dir.to_path_buf(),
        })?;
        check_meta_format(dir, &meta)?;
        let cipher = cipher_for(dir, &meta, options)?;
        let manifest = read_manifest(dir)?.ok_or_else(|| Error::Corrupt {
            path: dir.join(crate::files::MANIFEST_FILE),
            offset: 0,
            reason: "the manifest is missing".into(),
        })?;
        let mut report = VerifyReport::default();
        for (i, &id) in manifest.segments.iter().enumerate() {
            let is_last = i + 1 == manifest.segments.len();
            let segment = Segment::open(dir, id, &None)?;
            let map = segment.map()?;
            let bytes: &[u8] = &map;
            report.segments += 1;
            report.bytes += bytes.len() as u64;
            let mut offset = SEGMENT_HEADER_BYTES as usize;
            while offset < bytes.len() {
                let corrupt = |reason: String| Error::Corrupt {
                    path: segment.path.clone(),
                    offset: offset as u64,
                    reason,
                };
                let (body, len) = match decode_frame(&bytes[offset..]) {
                    Ok(found) => found,
                    Err(err) => {
                        let rest = &bytes[offset..];
                        // The active segment is zero-filled ahead of its
                        // appends (docs/format.md): zeros to the end of the
                        // last segment are the end of the log, not damage.
                        if is_last && rest.iter().all(|&b| b == 0) {
                            break;
                        }
                        let torn = is_last
                            && (matches!(err, FrameError::Incomplete)
                                || rest.iter().all(|&b| b == 0))
                            && valid_frames_after(bytes, offset + 1) == 0;
                        if torn {
                            report.torn_tail = Some((segment.path.clone(), offset as u64));
                            break;
                        }
                        return Err(corrupt(err.to_string()));
                    }
                };
                let payload = crate::crypto::RecordCipher::open_body(cipher.as_ref(), body)
                    .map_err(|_| corrupt("record fails authentication".into()))?;
                decode_op(&payload).map_err(|e| corrupt(e.0.into()))?;
                report.records += 1;
                offset += len;
            }
        }
        report.checkpoint = check_checkpoint(dir, &meta.database_id, &manifest, cipher.as_ref());
        Ok(report)
    }
}

/// Checks the checkpoint file of `dir` against the (already verified) log.
fn check_checkpoint(
    dir: &Path,
    database_id: &str,
    manifest: &crate::files::Manifest,
    cipher: Option<&crate::crypto::RecordCipher>,
) -> CheckpointStatus {
    let checked = || -> std::result::Result<bool, Rejected> {
        let Some(mut opened) = checkpoint::open_file(dir, cipher, false)? else {
            return Ok(false);
        };
        let segments = checkpoint::match_log(&opened.directory, database_id, manifest, |id| {
            Segment::open(dir, id, &None)
        })?;
        for (name, coll) in opened.take_collections().iter() {
            let docs = coll
                .docs
                .map()
                .and_then(|docs| {
                    for index in coll.indexes.values() {
                        index.entries()?;
                    }
                    Ok(docs)
                })
                .map_err(|e| Rejected(e.to_string()))?;
            for (id, entry) in docs.iter() {
                let segment = segments
                    .iter()
                    .find(|s| s.id == entry.loc.segment)
                    .ok_or_else(|| Rejected(format!("document {id:?} in an uncovered segment")))?;
                let points_there = segment
                    .with_bytes(entry.loc.offset, u64::from(entry.loc.len), |bytes| {
                        let Ok((body, _)) = decode_frame(bytes) else {
                            return false;
                        };
                        let plain;
                        let payload: &[u8] = match cipher {
                            Some(c) => match c.open(body) {
                                Ok(p) => {
                                    plain = p;
                                    &plain
                                }
                                Err(_) => return false,
                            },
                            None => body,
                        };
                        matches!(decode_op(payload), Ok(rec) if matches!(rec.op,
                            Op::Put { coll, id: found, doc }
                                if coll == name.as_str()
                                    && found == &**id
                                    && doc.len() as u64 == u64::from(entry.size_bytes)))
                    })
                    .unwrap_or(false);
                if !points_there {
                    return Err(Rejected(format!(
                        "document {id:?} of {name:?} does not point at its record"
                    )));
                }
            }
        }
        Ok(true)
    };
    match checked() {
        Ok(true) => CheckpointStatus::Valid,
        Ok(false) => CheckpointStatus::Absent,
        Err(Rejected(reason)) => CheckpointStatus::Rejected { reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use serde_json::json;

    fn filled(dir: &Path, options: Options) {
        let db = Database::open(dir, options).expect("opens");
        db.create_collection("c").expect("created");
        for i in 0..20 {
            db.insert("c", json!({"_id": format!("d{i}"), "n": i}))
                .expect("inserted");
        }
        db.close().expect("closes");
    }

    fn only_segment(dir: &Path) -> PathBuf {
        let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("lists")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                crate::segment::parse_segment_file_name(
                    &p.file_name().expect("name").to_string_lossy(),
                )
                .is_some()
            })
            .collect();
        segments.sort();
        segments.pop().expect("a segment")
    }

    #[test]
    fn a_clean_encrypted_database_verifies_and_a_wrong_key_does_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = MasterKey::from_bytes([7; 32]);
        filled(dir.path(), Options::default().master_key(key.clone()));
        let report = Database::verify_offline(dir.path(), &Options::default().master_key(key))
            .expect("verifies");
        assert_eq!(report.segments, 1);
        assert_eq!(report.records, 21, "one collection and twenty documents");
        assert_eq!(report.torn_tail, None);
        let wrong = Options::default().master_key(MasterKey::from_bytes([8; 32]));
        assert!(matches!(
            Database::verify_offline(dir.path(), &wrong),
            Err(Error::WrongKey { .. })
        ));
    }

    #[test]
    fn a_flipped_byte_is_reported_with_its_file_and_offset_and_nothing_changes() {
        let dir = tempfile::tempdir().expect("temp dir");
        filled(dir.path(), Options::default());
        let path = only_segment(dir.path());
        let mut bytes = std::fs::read(&path).expect("reads");
        let target = SEGMENT_HEADER_BYTES as usize + 40;
        bytes[target] ^= 0x01;
        std::fs::write(&path, &bytes).expect("writes");
        let err = Database::verify_offline(dir.path(), &Options::default())
            .expect_err("the flipped byte is found");
        match err {
            Error::Corrupt {
                path: found,
                offset,
                ..
            } => {
                assert_eq!(found, path);
                assert!(
                    (SEGMENT_HEADER_BYTES..=target as u64).contains(&offset),
                    "the record holding byte {target} starts at {offset}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            std::fs::read(&path).expect("reads"),
            bytes,
            "nothing repaired"
        );
    }

    #[test]
    fn a_torn_tail_is_reported_but_is_not_a_failure() {
        let dir = tempfile::tempdir().expect("temp dir");
        filled(dir.path(), Options::default());
        let path = only_segment(dir.path());
        let len = std::fs::metadata(&path).expect("stat").len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("opens");
        file.set_len(len - 3).expect("cuts");
        let report = Database::verify_offline(dir.path(), &Options::default()).expect("verifies");
        assert_eq!(report.records, 20);
        assert!(report.torn_tail.is_some());
    }

    #[test]
    fn an_open_database_is_locked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Database::open(dir.path(), Options::default()).expect("opens");
        assert!(matches!(
            Database::verify_offline(dir.path(), &Options::default()),
            Err(Error::Locked { .. })
        ));
        db.close().expect("closes");
    }
}
