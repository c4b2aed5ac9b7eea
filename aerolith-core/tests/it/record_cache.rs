//! The record cache of point reads: it serves only payloads that were
//! verified once, a record that is not cached is still verified (damage is
//! `Corrupt`, never a document), and cached reads stay right across
//! overwrites, deletes and compaction.

use std::os::unix::fs::FileExt;
use std::path::Path;

use aerolith_core::{Database, Error, MasterKey, Options};
use serde_json::json;

use crate::{fast, segment_files};

/// Flips one byte of the last segment at `pos` (from its start).
fn damage_byte(dir: &Path, pos: u64) {
    let seg = segment_files(dir).pop().unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(seg)
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, pos).unwrap();
    file.write_all_at(&[byte[0] ^ 0x20], pos).unwrap();
}

fn position_of(dir: &Path, needle: &[u8]) -> u64 {
    let bytes = std::fs::read(segment_files(dir).pop().unwrap()).unwrap();
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap() as u64
}

fn two_docs(options: Options) -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), options).unwrap();
    db.create_collection("c").unwrap();
    db.insert("c", json!({"_id": "hot", "v": "hot-value-1"}))
        .unwrap();
    db.insert("c", json!({"_id": "cold", "v": "cold-value-1"}))
        .unwrap();
    (dir, db)
}

#[test]
fn a_damaged_record_that_is_not_cached_is_corrupt() {
    let (dir, db) = two_docs(fast());
    // Cache `hot` only, then damage both records on disk.
    assert_eq!(db.get("c", "hot").unwrap().unwrap()["v"], "hot-value-1");
    damage_byte(dir.path(), position_of(dir.path(), b"hot-value-1"));
    damage_byte(dir.path(), position_of(dir.path(), b"cold-value-1"));
    assert!(matches!(db.get("c", "cold"), Err(Error::Corrupt { .. })));
    // The cached payload was verified before the damage and is served.
    assert_eq!(db.get("c", "hot").unwrap().unwrap()["v"], "hot-value-1");
    // Damage found on a miss is not cached: it stays an error.
    assert!(matches!(db.get("c", "cold"), Err(Error::Corrupt { .. })));
    // Without the cache every read verifies, so both fail.
    db.close().unwrap();
    drop(db);
    let opened = Database::open(dir.path(), fast().record_cache_bytes_max(0));
    // Recovery refuses the damaged log or cuts it as a torn tail; either
    // way neither damaged document is served again.
    if let Ok(db) = opened {
        assert!(!matches!(db.get("c", "hot"), Ok(Some(_))));
        assert!(!matches!(db.get("c", "cold"), Ok(Some(_))));
    }
}

#[test]
fn a_damaged_encrypted_record_that_is_not_cached_is_corrupt() {
    let options = fast().master_key(MasterKey::from_bytes([5; 32]));
    let (dir, db) = two_docs(options);
    assert_eq!(db.get("c", "hot").unwrap().unwrap()["v"], "hot-value-1");
    // `cold` is the last record: damage its ciphertext near the file's end.
    let seg_len = std::fs::metadata(segment_files(dir.path()).pop().unwrap())
        .unwrap()
        .len();
    damage_byte(dir.path(), seg_len - 20);
    assert!(matches!(db.get("c", "cold"), Err(Error::Corrupt { .. })));
    assert_eq!(db.get("c", "hot").unwrap().unwrap()["v"], "hot-value-1");
}

#[test]
fn cached_reads_follow_overwrites_deletes_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments, so compaction has sealed segments to rewrite.
    let db = Database::open(dir.path(), fast().segment_size_bytes_max(4096)).unwrap();
    db.create_collection("c").unwrap();
    for round in 0..6u64 {
        for i in 0..40u64 {
            let id = format!("d{i}");
            db.upsert(
                "c",
                json!({"_id": id, "round": round, "pad": "x".repeat(64)}),
            )
            .unwrap();
            assert_eq!(db.get("c", &id).unwrap().unwrap()["round"], round);
        }
        db.delete("c", "d0").unwrap();
        assert_eq!(db.get("c", "d0").unwrap(), None);
        if round % 2 == 1 {
            db.compact().unwrap();
        }
        for i in 1..40u64 {
            let doc = db.get("c", &format!("d{i}")).unwrap().unwrap();
            assert_eq!(doc["round"], round, "d{i} after round {round}");
        }
    }
}

#[test]
fn a_tiny_cache_still_answers_every_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast().record_cache_bytes_max(1024)).unwrap();
    db.create_collection("c").unwrap();
    for i in 0..200u64 {
        db.insert("c", json!({"_id": format!("d{i}"), "i": i}))
            .unwrap();
    }
    for _ in 0..2 {
        for i in 0..200u64 {
            assert_eq!(db.get("c", &format!("d{i}")).unwrap().unwrap()["i"], i);
        }
    }
}

#[test]
fn json_byte_reads_share_the_cache_and_never_serve_damage() {
    let (dir, db) = two_docs(fast());
    let expected = |id: &str| serde_json::to_vec(&db.get("c", id).unwrap().unwrap()).unwrap();
    let hot = expected("hot");
    // A byte read fills the cache as a `get` does ...
    assert_eq!(
        db.get_json_bytes("c", "cold").unwrap().unwrap(),
        expected("cold")
    );
    damage_byte(dir.path(), position_of(dir.path(), b"hot-value-1"));
    damage_byte(dir.path(), position_of(dir.path(), b"cold-value-1"));
    // ... so both cached documents (`hot` by `get`, `cold` by bytes) are
    // served from verified copies, by either kind of read.
    assert_eq!(db.get_json_bytes("c", "hot").unwrap().unwrap(), hot);
    assert_eq!(db.get("c", "cold").unwrap().unwrap()["v"], "cold-value-1");
    // An uncached damaged record is an error for a byte read too.
    db.insert("c", json!({"_id": "late", "v": "late-value-1"}))
        .unwrap();
    damage_byte(dir.path(), position_of(dir.path(), b"late-value-1"));
    assert!(matches!(
        db.get_json_bytes("c", "late"),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(db.get_json_bytes("c", "missing").unwrap(), None);
}

#[test]
fn repeated_reads_are_exact_and_unshared() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    db.create_collection("c").unwrap();
    let stored = json!({"_id": "d", "z": 1, "a": [1, {"y": null, "b": true}], "m": {"k": "v"}});
    db.insert("c", stored.clone()).unwrap();
    // The first read verifies and caches the bytes, the later ones parse
    // the cached bytes: all the same, key order included (serde_json keeps
    // insertion order).
    let text = serde_json::to_string(&stored).unwrap();
    for _ in 0..4 {
        let mut doc = db.get("c", "d").unwrap().unwrap();
        assert_eq!(serde_json::to_string(&doc).unwrap(), text);
        // A caller's changes to its copy never reach the next read.
        doc["z"] = json!("changed");
        doc["a"][1]["b"] = json!(false);
    }
    let snapshot = db.snapshot();
    assert_eq!(snapshot.get("c", "d").unwrap().unwrap(), stored);
    assert_eq!(
        db.get_json_bytes("c", "d").unwrap().unwrap(),
        text.as_bytes()
    );
    // A new version is a new record: its reads never see the cached one.
    db.replace("c", "d", json!({"z": 2})).unwrap();
    for _ in 0..3 {
        assert_eq!(
            db.get("c", "d").unwrap().unwrap(),
            json!({"_id": "d", "z": 2})
        );
    }
    // The snapshot taken before still reads the old version.
    assert_eq!(snapshot.get("c", "d").unwrap().unwrap(), stored);
}
