use aerolith_core::{Database, Error, ImportMode, MasterKey};
use serde_json::json;

use crate::fast;

#[test]
fn an_online_backup_opens_as_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::from_bytes([3; 32]);
    let db = Database::open(dir.path().join("db"), fast().master_key(key.clone())).unwrap();
    db.create_collection("c").unwrap();
    db.create_index("c", "k", true).unwrap();
    for i in 0..100 {
        db.insert("c", json!({"_id": format!("d{i}"), "k": i}))
            .unwrap();
    }
    let report = db.backup_to(dir.path().join("bk")).unwrap();
    assert!(report.segments >= 1);
    db.insert("c", json!({"_id": "after-backup", "k": 1000}))
        .unwrap();
    let restored = Database::open(dir.path().join("bk"), fast().master_key(key)).unwrap();
    assert_eq!(
        restored.collection_stats("c").unwrap(),
        db.collection_stats("c")
            .map(|mut s| {
                s.documents -= 1;
                s.live_bytes = restored.collection_stats("c").unwrap().live_bytes;
                s
            })
            .unwrap()
    );
    assert_eq!(restored.get("c", "after-backup").unwrap(), None);
    assert_eq!(restored.get("c", "d42").unwrap().unwrap()["k"], 42);
    assert!(matches!(
        restored.insert("c", json!({"k": 5})),
        Err(Error::UniqueViolation { .. })
    ));
}

#[test]
fn backup_refuses_a_non_empty_destination() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db"), fast()).unwrap();
    std::fs::create_dir(dir.path().join("bk")).unwrap();
    std::fs::write(dir.path().join("bk/file"), b"x").unwrap();
    assert!(db.backup_to(dir.path().join("bk")).is_err());
}

#[test]
fn export_then_import_round_trips_a_collection() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("a"), fast()).unwrap();
    db.create_collection("c").unwrap();
    for i in 0..2500 {
        db.insert("c", json!({"_id": format!("d{i:05}"), "nested": {"i": i}}))
            .unwrap();
    }
    let mut out = Vec::new();
    assert_eq!(db.export_jsonl("c", &mut out).unwrap(), 2500);
    let other = Database::open(dir.path().join("b"), fast()).unwrap();
    other.create_collection("c").unwrap();
    assert_eq!(
        other
            .import_jsonl("c", &mut out.as_slice(), ImportMode::Insert)
            .unwrap(),
        2500
    );
    assert_eq!(
        other.collection_stats("c").unwrap(),
        db.collection_stats("c").unwrap()
    );
    // Importing again: insert mode fails, upsert mode replaces.
    assert!(matches!(
        other.import_jsonl("c", &mut out.as_slice(), ImportMode::Insert),
        Err(Error::Import { .. })
    ));
    assert_eq!(
        other
            .import_jsonl("c", &mut out.as_slice(), ImportMode::Upsert)
            .unwrap(),
        2500
    );
}

#[test]
fn a_bad_import_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    db.create_collection("c").unwrap();
    let input = b"{\"_id\":\"a\"}\n\n{\"_id\":\"b\"}\nnot json\n";
    match db.import_jsonl("c", &mut &input[..], ImportMode::Insert) {
        Err(Error::Import { line, .. }) => assert_eq!(line, 4),
        other => panic!("{other:?}"),
    }
    let input = b"[1,2]\n";
    assert!(matches!(
        db.import_jsonl("c", &mut &input[..], ImportMode::Insert),
        Err(Error::Import { line: 1, .. })
    ));
    assert_eq!(
        db.collection_stats("c").unwrap().documents,
        0,
        "the failing batch is not committed"
    );
}
