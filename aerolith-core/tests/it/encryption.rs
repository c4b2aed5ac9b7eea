use aerolith_core::{Database, Error, MasterKey, Query};
use serde_json::json;

use crate::fast;

fn all_file_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            out.extend(std::fs::read(p).unwrap());
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_plaintext_document_bytes_reach_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::from_bytes([42; 32]);
    let db = Database::open(dir.path(), fast().master_key(key.clone())).unwrap();
    db.create_collection("patients").unwrap();
    db.create_index("patients", "ssn", true).unwrap();
    for i in 0..50 {
        db.insert("patients", json!({"_id": format!("pid-{i}"), "ssn": format!("SSN-SECRET-{i:03}"), "diagnosis": "confidential-diagnosis"})).unwrap();
    }
    db.compact().unwrap();
    db.backup_to(dir.path().join("backup")).unwrap();
    db.close().unwrap();
    let bytes = all_file_bytes(dir.path());
    for needle in [
        &b"SSN-SECRET"[..],
        b"confidential-diagnosis",
        b"pid-1",
        b"patients",
        b"ssn",
    ] {
        assert!(
            !contains(&bytes, needle),
            "plaintext {:?} on disk",
            String::from_utf8_lossy(needle)
        );
    }
    assert!(!contains(
        &all_file_bytes(&dir.path().join("backup")),
        b"SSN-SECRET"
    ));
    let db = Database::open(dir.path(), fast().master_key(key)).unwrap();
    assert_eq!(
        db.get("patients", "pid-7").unwrap().unwrap()["ssn"],
        "SSN-SECRET-007"
    );
    let found = db
        .find(
            "patients",
            &Query::filter(&json!({"ssn": "SSN-SECRET-003"})).unwrap(),
        )
        .unwrap();
    assert_eq!(found.len(), 1);
}

#[test]
fn the_wrong_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(
        dir.path(),
        fast().master_key(MasterKey::from_bytes([1; 32])),
    )
    .unwrap();
    db.create_collection("c").unwrap();
    db.close().unwrap();
    drop(db);
    let wrong = Database::open(
        dir.path(),
        fast().master_key(MasterKey::from_bytes([2; 32])),
    );
    assert!(matches!(wrong, Err(Error::WrongKey { .. })));
    assert!(matches!(
        Database::open(dir.path(), fast()),
        Err(Error::KeyRequired { .. })
    ));
}

#[test]
fn a_key_for_an_unencrypted_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Database::open(dir.path(), fast()).unwrap());
    let err = Database::open(dir.path(), fast().master_key(MasterKey::generate()));
    assert!(matches!(err, Err(Error::NotEncrypted { .. })));
}

#[test]
fn databases_sharing_a_master_key_use_different_record_keys() {
    let key = MasterKey::from_bytes([9; 32]);
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for dir in [&a, &b] {
        let db = Database::open(dir.path(), fast().master_key(key.clone())).unwrap();
        db.create_collection("c").unwrap();
        db.close().unwrap();
    }
    // Swap segment files: b's records must not open under a's salt.
    let seg = "seg-0000000000000001.aero";
    std::fs::copy(b.path().join(seg), a.path().join(seg)).unwrap();
    assert!(matches!(
        Database::open(a.path(), fast().master_key(key)),
        Err(Error::Corrupt { .. })
    ));
}
