use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use aerolith_core::{Database, Error, Query, RecoveryMode, WriteBatch};
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::{fast, segment_files};

/// Removes the checkpoint a clean close wrote, so that the next open
/// replays the whole log: the tests of replay rules need that (with a
/// checkpoint, records it covers are verified when read, not at open; see
/// `checkpoint.rs` in this directory).
fn without_checkpoint(dir: &Path) {
    let _ = std::fs::remove_file(dir.join("CHECKPOINT"));
}

fn populate(dir: &Path, docs: usize) {
    let db = Database::open(dir, fast()).unwrap();
    db.create_collection("c").unwrap();
    for i in 0..docs {
        db.insert("c", json!({"_id": format!("d{i:04}"), "i": i}))
            .unwrap();
    }
    db.close().unwrap();
}

#[test]
fn a_torn_tail_is_truncated_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 10);
    let seg = segment_files(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    // A half-written record: the start of a frame, then nothing.
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[0xA7, b'L', b'R', b'1', 200, 0, 0, 0, 1, 2, 3])
        .unwrap();
    drop(f);
    let db = Database::open(dir.path(), fast()).unwrap();
    let cut = db
        .recovery_report()
        .truncated
        .clone()
        .expect("tail reported");
    assert_eq!(cut.path, seg);
    assert_eq!(cut.offset, len);
    assert_eq!(cut.bytes_removed, 11);
    assert_eq!(db.collection_stats("c").unwrap().documents, 10);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
}

#[test]
fn cutting_the_log_anywhere_keeps_a_prefix_of_the_writes() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 30);
    let seg = segment_files(dir.path()).pop().unwrap();
    let original = std::fs::read(&seg).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..40 {
        let cut = rng.random_range(32..original.len());
        std::fs::write(&seg, &original[..cut]).unwrap();
        let db = Database::open(dir.path(), fast()).unwrap();
        // Collection creation is the first record; afterwards a prefix d0000..dN.
        if let Ok(stats) = db.collection_stats("c") {
            let n = stats.documents as usize;
            for i in 0..n {
                assert_eq!(db.get("c", &format!("d{i:04}")).unwrap().unwrap()["i"], i);
            }
            assert_eq!(db.get("c", &format!("d{n:04}")).unwrap(), None);
        }
        drop(db);
        std::fs::write(&seg, &original).unwrap();
    }
}

#[test]
fn damage_before_valid_records_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 20);
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&seg, &bytes).unwrap();
    without_checkpoint(dir.path());
    match Database::open(dir.path(), fast()) {
        Err(Error::Corrupt { path, offset, .. }) => {
            assert_eq!(path, seg);
            assert!(offset <= at as u64);
        }
        other => panic!("expected corruption error, got {other:?}"),
    }
    // Salvage mode keeps the valid prefix and says what it dropped.
    let db = Database::open(dir.path(), fast().recovery(RecoveryMode::Salvage)).unwrap();
    let cut = db.recovery_report().truncated.clone().unwrap();
    assert!(cut.records_dropped > 0);
    assert!(db.collection_stats("c").unwrap().documents < 20);
}

#[test]
fn random_byte_flips_never_yield_unwritten_documents() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 25);
    let seg = segment_files(dir.path()).pop().unwrap();
    let original = std::fs::read(&seg).unwrap();
    let checkpoint = std::fs::read(dir.path().join("CHECKPOINT")).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for round in 0..120 {
        // Odd rounds open through the clean close's checkpoint: the damage
        // is then found by the reads (every read verifies its record), even
        // rounds by the full replay.
        let with_checkpoint = round % 2 == 1;
        let mut bytes = original.clone();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..bytes.len());
            bytes[at] ^= rng.random_range(1..=255u8);
        }
        std::fs::write(&seg, &bytes).unwrap();
        if with_checkpoint {
            std::fs::write(dir.path().join("CHECKPOINT"), &checkpoint).unwrap();
        } else {
            without_checkpoint(dir.path());
        }
        match Database::open(dir.path(), fast()) {
            Err(Error::Corrupt { .. }) => {}
            Err(other) => panic!("round {round}: unexpected error {other}"),
            Ok(db) => {
                if let Ok(stats) = db.collection_stats("c") {
                    let ids = db.snapshot().list_ids("c", None, 100).unwrap();
                    assert_eq!(ids.len() as u64, stats.documents);
                    for id in ids {
                        let i: usize = id[1..].parse().unwrap();
                        assert!(i < 25, "round {round}: unknown id {id}");
                        match db.get("c", &id) {
                            Ok(doc) => assert_eq!(doc.unwrap(), json!({"_id": id, "i": i})),
                            Err(Error::Corrupt { .. }) if with_checkpoint => {}
                            Err(other) => panic!("round {round}: unexpected error {other}"),
                        }
                    }
                }
                // Closing rewrites the checkpoint over the damaged log.
                drop(db);
            }
        }
        std::fs::write(&seg, &original).unwrap();
    }
}

/// Flips the first byte of `needle` in the last segment file, in place
/// (bit rot under an open database).
fn damage_last_segment(dir: &std::path::Path, needle: &[u8]) {
    let seg = segment_files(dir).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let pos = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    bytes[pos] = b'X';
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
}

#[test]
fn a_damaged_record_is_never_served_by_a_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    db.create_collection("c").unwrap();
    db.insert("c", json!({"_id": "victim", "secret": "original-value"}))
        .unwrap();
    // Damage the record on disk while the database is open (bit rot).
    damage_last_segment(dir.path(), b"original-value");
    assert!(matches!(db.get("c", "victim"), Err(Error::Corrupt { .. })));
}

#[test]
fn a_damaged_record_fails_a_query_even_when_the_filter_would_reject_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    db.create_collection("c").unwrap();
    db.create_index("c", "kind", false).unwrap();
    db.insert("c", json!({"_id": "a", "kind": "k", "region": "north"}))
        .unwrap();
    db.insert(
        "c",
        json!({"_id": "victim", "kind": "k", "region": "south", "note": "original-value"}),
    )
    .unwrap();
    damage_last_segment(dir.path(), b"original-value");
    // The damaged document does not match either filter: a query that
    // skipped verification for rejected documents would answer `a` alone.
    for filter in [
        json!({"region": "north"}),
        json!({"kind": "k", "region": "north"}),
        json!({"kind": "k"}),
    ] {
        let q = Query::filter(&filter).unwrap();
        assert!(
            matches!(db.find("c", &q), Err(Error::Corrupt { .. })),
            "{filter} was answered from a damaged record"
        );
    }
}

/// A full scan verifies its records' checksums in groups (1–2 KiB records
/// hashed side by side): damage to one record of a group fails the scan
/// whatever the filter, and a scan that stops before the damaged record
/// (a limit without a sort) answers as a one-by-one read would.
#[test]
fn damage_inside_a_group_of_verified_records_fails_a_scan_that_reaches_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    db.create_collection("c").unwrap();
    let padding = "p".repeat(1100);
    let mut batch = WriteBatch::new();
    for i in 0..40 {
        let note = if i == 25 {
            "original-value"
        } else {
            "ordinary-value"
        };
        batch
            .insert(
                "c",
                json!({"_id": format!("d{i:02}"), "note": note, "padding": padding}),
            )
            .unwrap();
    }
    db.write(batch).unwrap();
    damage_last_segment(dir.path(), b"original-value");
    for filter in [json!({"note": "none"}), json!({})] {
        let q = Query::filter(&filter).unwrap();
        assert!(
            matches!(db.find("c", &q), Err(Error::Corrupt { .. })),
            "{filter} was answered past a damaged record"
        );
    }
    let mut first_three = Query::filter(&json!({"note": "ordinary-value"})).unwrap();
    first_three.limit = Some(3);
    assert_eq!(db.find("c", &first_three).unwrap().len(), 3);
}

#[test]
fn a_missing_segment_listed_in_the_manifest_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 3);
    std::fs::remove_file(segment_files(dir.path()).pop().unwrap()).unwrap();
    assert!(matches!(
        Database::open(dir.path(), fast()),
        Err(Error::Io { .. })
    ));
}

#[test]
fn stray_files_from_an_interrupted_compaction_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 3);
    let stray = dir.path().join("seg-00000000000000ff.aero");
    std::fs::write(&stray, b"half a compaction").unwrap();
    std::fs::write(dir.path().join("MANIFEST.tmp"), b"{").unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    assert_eq!(db.recovery_report().orphan_files_removed.len(), 2);
    assert!(!stray.exists());
    assert_eq!(db.collection_stats("c").unwrap().documents, 3);
}

/// Regression (found by the `recovery` fuzz target): a record with a valid
/// checksum and transaction id u64::MAX made replay overflow `max + 1`.
#[test]
fn a_record_with_the_largest_transaction_id_is_corruption_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 1);
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    // A committed CreateCollection record for "z" with txn u64::MAX, framed by hand.
    let mut payload = vec![3 | 0x80];
    payload.extend_from_slice(&u64::MAX.to_le_bytes());
    payload.extend_from_slice(&1u16.to_le_bytes());
    payload.push(b'z');
    let len = (payload.len() as u32).to_le_bytes();
    let mut hasher = blake3::Hasher::new();
    hasher.update(&len);
    hasher.update(&payload);
    bytes.extend_from_slice(&[0xA7, b'L', b'R', b'1']);
    bytes.extend_from_slice(&len);
    bytes.extend_from_slice(&hasher.finalize().as_bytes()[..16]);
    bytes.extend_from_slice(&payload);
    std::fs::write(&seg, &bytes).unwrap();
    assert!(matches!(
        Database::open(dir.path(), fast()),
        Err(Error::Corrupt { .. })
    ));
}

/// An open database whose active segment has its zero-filled tail, its
/// crash image (synced), and the length of the segment's records.
fn image_with_zero_tail(docs: usize) -> (tempfile::TempDir, PathBuf, u64) {
    let dir = tempfile::tempdir().unwrap();
    // Only durable commits zero-fill ahead (docs/format.md).
    let durable = aerolith_core::Options::default().durability(aerolith_core::Durability::Always);
    let db = Database::open(dir.path(), durable).unwrap();
    db.create_collection("c").unwrap();
    for i in 0..docs {
        db.insert("c", json!({"_id": format!("d{i:04}"), "i": i}))
            .unwrap();
    }
    db.sync().unwrap();
    let image = crate::crash_image(dir.path());
    db.close().unwrap();
    // Closing cut the tail off: the original now ends at its last record.
    let frames_len = std::fs::metadata(segment_files(dir.path()).pop().unwrap())
        .unwrap()
        .len();
    let seg = segment_files(image.path()).pop().unwrap();
    let image_len = std::fs::metadata(&seg).unwrap().len();
    assert!(
        image_len > frames_len,
        "the open segment is zero-filled ahead ({image_len} <= {frames_len})"
    );
    let bytes = std::fs::read(&seg).unwrap();
    assert!(bytes[frames_len as usize..].iter().all(|&b| b == 0));
    (image, seg, frames_len)
}

#[test]
fn a_zero_filled_tail_is_the_end_of_the_log_not_damage() {
    let (image, seg, frames_len) = image_with_zero_tail(10);
    let db = Database::open(image.path(), fast()).unwrap();
    assert_eq!(db.recovery_report().truncated, None);
    assert_eq!(db.collection_stats("c").unwrap().documents, 10);
    // Appends continue at the end of the records, inside the zero tail.
    for i in 10..15 {
        db.insert("c", json!({"_id": format!("d{i:04}"), "i": i}))
            .unwrap();
    }
    db.sync().unwrap();
    let again = crate::crash_image(image.path());
    db.close().unwrap();
    assert!(std::fs::metadata(&seg).unwrap().len() > frames_len);
    // Reopen-append-reopen, both from a crash image and after a clean close.
    for dir in [again.path(), image.path()] {
        let db = Database::open(dir, fast()).unwrap();
        assert_eq!(db.recovery_report().truncated, None);
        assert_eq!(db.collection_stats("c").unwrap().documents, 15);
        for i in 0..15 {
            let doc = db.get("c", &format!("d{i:04}")).unwrap().unwrap();
            assert_eq!(doc["i"], json!(i));
        }
    }
}

#[test]
fn garbage_in_the_zero_tail_is_a_torn_tail_and_a_frame_after_it_is_corruption() {
    // Garbage after the records: a torn write, cut back to the last record.
    let (image, seg, frames_len) = image_with_zero_tail(10);
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = frames_len as usize + 1000;
    bytes[at..at + 3].copy_from_slice(&[1, 2, 3]);
    std::fs::write(&seg, &bytes).unwrap();
    let db = Database::open(image.path(), fast()).unwrap();
    let cut = db.recovery_report().truncated.clone().expect("reported");
    assert_eq!(cut.offset, frames_len);
    assert_eq!(cut.bytes_removed, bytes.len() as u64 - frames_len);
    assert_eq!(db.collection_stats("c").unwrap().documents, 10);
    drop(db);

    // A valid record after zeros: damage followed by data is an error.
    let (image, seg, frames_len) = image_with_zero_tail(10);
    let mut bytes = std::fs::read(&seg).unwrap();
    let last_record = bytes[..frames_len as usize]
        .windows(4)
        .rposition(|w| w == [0xA7, b'L', b'R', b'1'])
        .expect("a frame magic");
    let record = bytes[last_record..frames_len as usize].to_vec();
    let at = frames_len as usize + 4096;
    bytes[at..at + record.len()].copy_from_slice(&record);
    std::fs::write(&seg, &bytes).unwrap();
    match Database::open(image.path(), fast()) {
        Err(Error::Corrupt { path, offset, .. }) => {
            assert_eq!(path, seg);
            assert_eq!(offset, frames_len);
        }
        other => panic!("expected corruption error, got {other:?}"),
    }
}

#[test]
fn a_zero_tail_in_a_sealed_segment_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast().segment_size_bytes_max(2048)).unwrap();
    db.create_collection("c").unwrap();
    for i in 0..40 {
        db.insert("c", json!({"_id": format!("d{i:04}"), "i": i}))
            .unwrap();
    }
    db.close().unwrap();
    let segs = segment_files(dir.path());
    assert!(segs.len() >= 2);
    let sealed = &segs[0];
    let len = std::fs::metadata(sealed).unwrap().len();
    let mut f = OpenOptions::new().append(true).open(sealed).unwrap();
    f.write_all(&[0u8; 512]).unwrap();
    drop(f);
    // Also with the checkpoint in place: a sealed segment that grew makes it
    // unusable, and the full replay reports the damage.
    assert!(dir.path().join("CHECKPOINT").exists());
    match Database::open(dir.path(), fast()) {
        Err(Error::Corrupt { path, offset, .. }) => {
            assert_eq!(&path, sealed);
            assert_eq!(offset, len);
        }
        other => panic!("expected corruption error, got {other:?}"),
    }
}
