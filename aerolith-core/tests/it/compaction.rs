use std::sync::atomic::{AtomicBool, Ordering};

use aerolith_core::{Database, Query};
use serde_json::json;

use crate::fast;

#[test]
fn compaction_reclaims_space_and_keeps_every_live_document() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast().segment_size_bytes_max(64 * 1024)).unwrap();
    db.create_collection("c").unwrap();
    db.create_index("c", "n", false).unwrap();
    for round in 0..10 {
        for i in 0..100 {
            db.upsert(
                "c",
                json!({"_id": format!("d{i}"), "n": i % 5, "round": round, "pad": "x".repeat(200)}),
            )
            .unwrap();
        }
    }
    for i in 0..50 {
        db.delete("c", &format!("d{i}")).unwrap();
    }
    let before = db.stats().unwrap();
    let report = db.compact().unwrap();
    let after = db.stats().unwrap();
    assert!(report.segments_compacted > 1);
    assert!(
        after.disk_bytes * 5 < before.disk_bytes,
        "{before:?} -> {after:?}"
    );
    assert_eq!(before.live_bytes, after.live_bytes);
    assert_eq!(after.documents, 50);
    assert_eq!(db.get("c", "d77").unwrap().unwrap()["round"], 9);
    assert_eq!(
        db.count("c", &Query::filter(&json!({"n": 3})).unwrap())
            .unwrap(),
        10
    );
    drop(db);
    let db = Database::open(dir.path(), fast()).unwrap();
    assert_eq!(db.stats().unwrap().live_bytes, after.live_bytes);
    assert_eq!(
        db.count("c", &Query::filter(&json!({"n": 3})).unwrap())
            .unwrap(),
        10
    );
    assert_eq!(db.get("c", "d10").unwrap(), None);
}

#[test]
fn reads_and_writes_continue_during_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast().segment_size_bytes_max(32 * 1024)).unwrap();
    db.create_collection("c").unwrap();
    for i in 0..500 {
        db.insert("c", json!({"_id": format!("old{i}"), "v": i}))
            .unwrap();
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..3 {
                db.compact().unwrap();
            }
            done.store(true, Ordering::SeqCst);
        });
        let mut i = 0;
        while !done.load(Ordering::SeqCst) || i < 200 {
            db.insert("c", json!({"_id": format!("new{i}"), "v": i}))
                .unwrap();
            db.upsert("c", json!({"_id": format!("old{}", i % 500), "v": -1}))
                .unwrap();
            assert!(db
                .get("c", &format!("old{}", (i * 7) % 500))
                .unwrap()
                .is_some());
            i += 1;
        }
        let total = db.collection_stats("c").unwrap().documents;
        assert_eq!(total, 500 + i as u64);
    });
    let expected = db.stats().unwrap();
    drop(db);
    let db = Database::open(dir.path(), fast()).unwrap();
    assert_eq!(db.stats().unwrap().documents, expected.documents);
    assert_eq!(db.stats().unwrap().live_bytes, expected.live_bytes);
}

#[test]
fn a_snapshot_taken_before_compaction_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    db.create_collection("c").unwrap();
    db.insert("c", json!({"_id": "a", "v": 1})).unwrap();
    let snap = db.snapshot();
    db.replace("c", "a", json!({"v": 2})).unwrap();
    db.compact().unwrap();
    db.compact().unwrap();
    assert_eq!(snap.get("c", "a").unwrap().unwrap()["v"], 1);
    assert_eq!(db.get("c", "a").unwrap().unwrap()["v"], 2);
}
