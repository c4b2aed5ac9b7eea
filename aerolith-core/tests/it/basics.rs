use aerolith_core::{Database, Error, InvalidInput, OpOutcome, WriteBatch};
use serde_json::json;

use crate::{fast, fresh};

#[test]
fn insert_get_replace_patch_delete_round_trip() {
    let (_dir, db) = fresh();
    db.create_collection("users").unwrap();
    let id = db
        .insert("users", json!({"name": "Ada", "age": 36}))
        .unwrap();
    assert_eq!(db.get("users", &id).unwrap().unwrap()["name"], "Ada");
    db.replace("users", &id, json!({"name": "Ada L."})).unwrap();
    let doc = db.get("users", &id).unwrap().unwrap();
    assert_eq!(doc, json!({"_id": id, "name": "Ada L."}));
    let patched = db
        .patch("users", &id, json!({"age": 37, "name": null}))
        .unwrap();
    assert_eq!(patched, json!({"_id": id, "age": 37}));
    assert!(db.delete("users", &id).unwrap());
    assert!(!db.delete("users", &id).unwrap());
    assert_eq!(db.get("users", &id).unwrap(), None);
}

#[test]
fn insert_of_an_existing_id_is_refused_and_changes_nothing() {
    let (_dir, db) = fresh();
    db.create_collection("c").unwrap();
    db.insert("c", json!({"_id": "a", "v": 1})).unwrap();
    let err = db.insert("c", json!({"_id": "a", "v": 2})).unwrap_err();
    assert!(
        matches!(err, Error::DocumentExists { ref id, .. } if id == "a"),
        "{err}"
    );
    assert_eq!(db.get("c", "a").unwrap().unwrap()["v"], 1);
}

#[test]
fn upsert_creates_then_replaces() {
    let (_dir, db) = fresh();
    db.create_collection("c").unwrap();
    db.upsert("c", json!({"_id": "a", "v": 1})).unwrap();
    db.upsert("c", json!({"_id": "a", "v": 2})).unwrap();
    assert_eq!(db.get("c", "a").unwrap().unwrap()["v"], 2);
    assert_eq!(db.collection_stats("c").unwrap().documents, 1);
}

#[test]
fn replace_and_patch_of_a_missing_document_fail() {
    let (_dir, db) = fresh();
    db.create_collection("c").unwrap();
    assert!(matches!(
        db.replace("c", "x", json!({})),
        Err(Error::DocumentNotFound { .. })
    ));
    assert!(matches!(
        db.patch("c", "x", json!({})),
        Err(Error::DocumentNotFound { .. })
    ));
}

#[test]
fn writes_to_a_missing_collection_fail() {
    let (_dir, db) = fresh();
    assert!(matches!(
        db.insert("nope", json!({})),
        Err(Error::CollectionNotFound { .. })
    ));
    assert!(matches!(
        db.get("nope", "a"),
        Err(Error::CollectionNotFound { .. })
    ));
}

#[test]
fn collections_are_created_listed_and_dropped() {
    let (_dir, db) = fresh();
    db.create_collection("b").unwrap();
    db.create_collection("a").unwrap();
    assert!(matches!(
        db.create_collection("a"),
        Err(Error::CollectionExists { .. })
    ));
    assert_eq!(db.list_collections(), vec!["a", "b"]);
    db.insert("a", json!({"_id": "x"})).unwrap();
    db.drop_collection("a").unwrap();
    assert_eq!(db.list_collections(), vec!["b"]);
    assert!(matches!(
        db.drop_collection("a"),
        Err(Error::CollectionNotFound { .. })
    ));
    db.create_collection("a").unwrap();
    assert_eq!(
        db.get("a", "x").unwrap(),
        None,
        "a dropped collection's documents do not come back"
    );
}

#[test]
fn a_failing_batch_leaves_nothing_behind() {
    let (_dir, db) = fresh();
    db.create_collection("a").unwrap();
    db.create_collection("b").unwrap();
    db.insert("b", json!({"_id": "taken"})).unwrap();
    let mut batch = WriteBatch::new();
    batch.insert("a", json!({"_id": "new"})).unwrap();
    batch.create_collection("c").unwrap();
    batch.insert("b", json!({"_id": "taken"})).unwrap();
    assert!(matches!(db.write(batch), Err(Error::DocumentExists { .. })));
    assert_eq!(db.get("a", "new").unwrap(), None);
    assert_eq!(db.list_collections(), vec!["a", "b"]);
}

#[test]
fn a_batch_across_collections_is_atomic_and_reports_accounting() {
    let (_dir, db) = fresh();
    let mut batch = WriteBatch::new();
    batch.create_collection("a").unwrap();
    batch.insert("a", json!({"_id": "1", "v": "x"})).unwrap();
    batch.patch("a", "1", json!({"w": 2})).unwrap();
    batch.create_collection("b").unwrap();
    batch.insert("b", json!({"_id": "2"})).unwrap();
    batch.delete("b", "2").unwrap();
    let outcome = db.write(batch).unwrap();
    assert_eq!(outcome.collections_delta, 2);
    assert_eq!(outcome.documents_delta, 1);
    let doc = db.get("a", "1").unwrap().unwrap();
    assert_eq!(doc, json!({"_id": "1", "v": "x", "w": 2}));
    assert_eq!(
        outcome.live_bytes_delta,
        serde_json::to_vec(&doc).unwrap().len() as i64
    );
    assert!(matches!(
        outcome.ops[5],
        OpOutcome::Deleted { existed: true }
    ));
    assert_eq!(db.get("b", "2").unwrap(), None);
}

#[test]
fn bad_documents_are_typed_errors() {
    let (_dir, db) = fresh();
    db.create_collection("c").unwrap();
    let cases = [
        (json!([1, 2]), "NotAnObject"),
        (json!({"_id": 7}), "IdNotString"),
        (json!({"_id": "a/b"}), "InvalidId"),
        (json!({"_id": ""}), "InvalidId"),
    ];
    for (doc, want) in cases {
        let err = db.insert("c", doc).unwrap_err();
        assert!(format!("{err:?}").contains(want), "{err:?} is not {want}");
    }
    let big = json!({"blob": "x".repeat(aerolith_core::limits::DOC_SIZE_BYTES_MAX)});
    assert!(matches!(
        db.insert("c", big),
        Err(Error::Invalid(InvalidInput::DocumentTooLarge { .. }))
    ));
    assert!(matches!(
        db.create_collection("../etc"),
        Err(Error::Invalid(InvalidInput::InvalidCollectionName { .. }))
    ));
    assert_eq!(db.collection_stats("c").unwrap().documents, 0);
}

#[test]
fn a_document_at_the_size_limit_is_stored() {
    let (_dir, db) = fresh();
    db.create_collection("c").unwrap();
    let overhead = serde_json::to_vec(&json!({"_id": "big", "blob": ""}))
        .unwrap()
        .len();
    let blob = "x".repeat(aerolith_core::limits::DOC_SIZE_BYTES_MAX - overhead);
    db.insert("c", json!({"_id": "big", "blob": blob})).unwrap();
    assert_eq!(
        db.collection_stats("c").unwrap().live_bytes,
        aerolith_core::limits::DOC_SIZE_BYTES_MAX as u64
    );
}

#[test]
fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path(), fast()).unwrap();
        db.create_collection("c").unwrap();
        db.create_index("c", "n", false).unwrap();
        for i in 0..100 {
            db.insert("c", json!({"_id": format!("d{i}"), "n": i % 7}))
                .unwrap();
        }
        db.delete("c", "d5").unwrap();
        db.close().unwrap();
        assert!(matches!(db.insert("c", json!({})), Err(Error::Closed)));
    }
    let db = Database::open(dir.path(), fast()).unwrap();
    assert_eq!(db.collection_stats("c").unwrap().documents, 99);
    assert_eq!(db.get("c", "d6").unwrap().unwrap()["n"], 6);
    assert_eq!(db.list_indexes("c").unwrap()[0].path, "n");
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let (dir, _db) = fresh();
    assert!(matches!(
        Database::open(dir.path(), fast()),
        Err(Error::Locked { .. })
    ));
}

#[test]
fn opening_a_missing_database_without_create_fails() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    assert!(matches!(
        Database::open(&missing, fast().must_exist()),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn concurrent_writers_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), aerolith_core::Options::default()).unwrap();
    db.create_collection("c").unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let db = db.clone();
            s.spawn(move || {
                for i in 0..50 {
                    db.insert("c", json!({"_id": format!("t{t}-{i}")})).unwrap();
                }
            });
        }
    });
    assert_eq!(db.collection_stats("c").unwrap().documents, 400);
}

#[test]
fn snapshots_do_not_see_later_writes() {
    let (_dir, db) = fresh();
    db.create_collection("c").unwrap();
    db.insert("c", json!({"_id": "a", "v": 1})).unwrap();
    let snap = db.snapshot();
    db.replace("c", "a", json!({"v": 2})).unwrap();
    db.insert("c", json!({"_id": "b"})).unwrap();
    assert_eq!(snap.get("c", "a").unwrap().unwrap()["v"], 1);
    assert_eq!(snap.get("c", "b").unwrap(), None);
    assert_eq!(db.get("c", "a").unwrap().unwrap()["v"], 2);
}

#[test]
fn ids_page_in_order() {
    let (_dir, db) = fresh();
    db.create_collection("c").unwrap();
    for id in ["d", "a", "c", "b"] {
        db.insert("c", json!({"_id": id})).unwrap();
    }
    let snap = db.snapshot();
    assert_eq!(snap.list_ids("c", None, 2).unwrap(), vec!["a", "b"]);
    assert_eq!(snap.list_ids("c", Some("b"), 10).unwrap(), vec!["c", "d"]);
}

#[test]
fn a_batch_reads_back_the_documents_it_wrote_earlier() {
    use aerolith_core::{MasterKey, Query};
    for key in [None, Some(MasterKey::from_bytes([3; 32]))] {
        let dir = tempfile::tempdir().unwrap();
        let options = match &key {
            Some(k) => fast().master_key(k.clone()),
            None => fast(),
        };
        let db = Database::open(dir.path(), options.clone()).unwrap();
        db.create_collection("c").unwrap();
        db.create_index("c", "kind", false).unwrap();
        let mut b = WriteBatch::new();
        b.insert("c", json!({"_id": "a", "kind": "x", "n": 1}))
            .unwrap();
        b.insert("c", json!({"_id": "b", "kind": "x"})).unwrap();
        // Each of these needs the version written earlier in the batch.
        b.patch("c", "a", json!({"kind": "y", "m": 2})).unwrap();
        b.upsert("c", json!({"_id": "a", "kind": "z", "n": 3}))
            .unwrap();
        b.delete("c", "b").unwrap();
        b.patch("c", "a", json!({"p": true})).unwrap();
        let outcome = db.write(b).unwrap();
        assert_eq!(
            outcome.ops[5],
            OpOutcome::Patched {
                doc: json!({"_id": "a", "kind": "z", "n": 3, "p": true})
            }
        );
        for reopen in [false, true] {
            let db = if reopen {
                db.close().unwrap();
                Database::open(dir.path(), options.clone()).unwrap()
            } else {
                db.clone()
            };
            let a = json!({"_id": "a", "kind": "z", "n": 3, "p": true});
            assert_eq!(db.get("c", "a").unwrap(), Some(a.clone()));
            assert_eq!(db.get("c", "b").unwrap(), None);
            for (kind, expected) in [("x", vec![]), ("y", vec![]), ("z", vec![a.clone()])] {
                let q = Query::filter(&json!({ "kind": kind })).unwrap();
                assert_eq!(db.find("c", &q).unwrap(), expected, "kind {kind}");
            }
        }
    }
}

/// `WriteBatch::document_bytes` is exactly what stored documents add to the
/// live bytes (the tenancy layer reserves quota with it).
#[test]
fn document_bytes_are_the_live_bytes_a_write_adds() {
    let (_dir, db) = crate::fresh();
    db.create_collection("c").unwrap();
    let mut batch = aerolith_core::WriteBatch::new();
    batch
        .insert("c", serde_json::json!({"a": "é", "n": [1, 2]}))
        .unwrap();
    batch
        .upsert("c", serde_json::json!({"_id": "u", "x": null}))
        .unwrap();
    let expected = batch.document_bytes();
    let outcome = db.write(batch).unwrap();
    assert_eq!(outcome.live_bytes_delta, expected as i64);
    let mut replace = aerolith_core::WriteBatch::new();
    replace
        .replace("c", "u", serde_json::json!({"x": 1}))
        .unwrap();
    let replaced = replace.document_bytes();
    assert_eq!(replaced, br#"{"_id":"u","x":1}"#.len() as u64);
    let before = br#"{"_id":"u","x":null}"#.len() as i64;
    assert_eq!(
        db.write(replace).unwrap().live_bytes_delta,
        replaced as i64 - before
    );
}
