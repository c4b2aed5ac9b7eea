//! Random operation sequences against a `BTreeMap` model: after every step
//! and across reopen and compaction, every read and every count agree.

use std::collections::BTreeMap;

use aerolith_core::{Database, Error, Query};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::fast;

#[derive(Debug, Clone)]
enum Step {
    Create(u8),
    Drop(u8),
    Insert(u8, u8, i64),
    Upsert(u8, u8, i64),
    Patch(u8, u8, i64),
    Delete(u8, u8),
    Reopen,
    Compact,
}

fn step() -> impl Strategy<Value = Step> {
    let c = 0u8..2;
    let id = 0u8..12;
    prop_oneof![
        1 => c.clone().prop_map(Step::Create),
        1 => c.clone().prop_map(Step::Drop),
        6 => (c.clone(), id.clone(), any::<i64>()).prop_map(|(c, i, v)| Step::Insert(c, i, v)),
        4 => (c.clone(), id.clone(), any::<i64>()).prop_map(|(c, i, v)| Step::Upsert(c, i, v)),
        3 => (c.clone(), id.clone(), any::<i64>()).prop_map(|(c, i, v)| Step::Patch(c, i, v)),
        3 => (c.clone(), id.clone()).prop_map(|(c, i)| Step::Delete(c, i)),
        1 => Just(Step::Reopen),
        1 => Just(Step::Compact),
    ]
}

type Model = BTreeMap<String, BTreeMap<String, Value>>;

fn check(db: &Database, model: &Model) {
    assert_eq!(
        db.list_collections(),
        model.keys().cloned().collect::<Vec<_>>()
    );
    let mut total_docs = 0;
    let mut total_bytes = 0;
    for (name, docs) in model {
        let stats = db.collection_stats(name).unwrap();
        assert_eq!(stats.documents, docs.len() as u64);
        let mut bytes = 0;
        for (id, doc) in docs {
            let stored = db.get(name, id).unwrap().expect("model document present");
            assert_eq!(&stored, doc);
            bytes += serde_json::to_vec(&stored).unwrap().len() as u64;
        }
        assert_eq!(stats.live_bytes, bytes);
        assert_eq!(
            db.snapshot().list_ids(name, None, 100).unwrap(),
            docs.keys().cloned().collect::<Vec<_>>()
        );
        assert_eq!(
            db.count(name, &Query::default()).unwrap(),
            docs.len() as u64
        );
        let odd = docs.values().filter(|d| d["parity"] == json!(1)).count() as u64;
        assert_eq!(
            db.count(name, &Query::filter(&json!({"parity": 1})).unwrap())
                .unwrap(),
            odd
        );
        total_docs += docs.len() as u64;
        total_bytes += bytes;
    }
    let stats = db.stats().unwrap();
    assert_eq!(
        (stats.documents, stats.live_bytes),
        (total_docs, total_bytes)
    );
}

fn run(steps: Vec<Step>) {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let db = Database::open(dir.path(), fast().segment_size_bytes_max(2048)).unwrap();
        for c in ["c0", "c1"] {
            if db.list_collections().iter().any(|n| n == c)
                && db.list_indexes(c).unwrap().is_empty()
            {
                db.create_index(c, "parity", false).unwrap();
            }
        }
        db
    };
    let mut db = open();
    let mut model: Model = BTreeMap::new();
    for step in steps {
        match step {
            Step::Create(c) => {
                let name = format!("c{c}");
                let r = db.create_collection(&name);
                match model.entry(name.clone()) {
                    std::collections::btree_map::Entry::Occupied(_) => {
                        assert!(matches!(r, Err(Error::CollectionExists { .. })))
                    }
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        r.unwrap();
                        db.create_index(&name, "parity", false).unwrap();
                        slot.insert(BTreeMap::new());
                    }
                }
            }
            Step::Drop(c) => {
                let name = format!("c{c}");
                let r = db.drop_collection(&name);
                if model.remove(&name).is_some() {
                    r.unwrap();
                } else {
                    assert!(matches!(r, Err(Error::CollectionNotFound { .. })));
                }
            }
            Step::Insert(c, i, v) | Step::Upsert(c, i, v) => {
                let name = format!("c{c}");
                let id = format!("d{i}");
                let doc = json!({"_id": id, "v": v, "parity": v.rem_euclid(2)});
                let upsert = matches!(step, Step::Upsert(..));
                let r = if upsert {
                    db.upsert(&name, doc.clone())
                } else {
                    db.insert(&name, doc.clone())
                };
                match model.get_mut(&name) {
                    None => assert!(matches!(r, Err(Error::CollectionNotFound { .. }))),
                    Some(docs) if !upsert && docs.contains_key(&id) => {
                        assert!(matches!(r, Err(Error::DocumentExists { .. })))
                    }
                    Some(docs) => {
                        r.unwrap();
                        docs.insert(id, doc);
                    }
                }
            }
            Step::Patch(c, i, v) => {
                let name = format!("c{c}");
                let id = format!("d{i}");
                let r = db.patch(&name, &id, json!({"w": v, "parity": v.rem_euclid(2)}));
                match model.get_mut(&name).map(|d| d.get_mut(&id)) {
                    None => assert!(matches!(r, Err(Error::CollectionNotFound { .. }))),
                    Some(None) => assert!(matches!(r, Err(Error::DocumentNotFound { .. }))),
                    Some(Some(doc)) => {
                        doc["w"] = json!(v);
                        doc["parity"] = json!(v.rem_euclid(2));
                        assert_eq!(&r.unwrap(), doc);
                    }
                }
            }
            Step::Delete(c, i) => {
                let name = format!("c{c}");
                let id = format!("d{i}");
                let r = db.delete(&name, &id);
                match model.get_mut(&name) {
                    None => assert!(matches!(r, Err(Error::CollectionNotFound { .. }))),
                    Some(docs) => assert_eq!(r.unwrap(), docs.remove(&id).is_some()),
                }
            }
            Step::Reopen => {
                db.close().unwrap();
                drop(db);
                db = open();
            }
            Step::Compact => {
                db.compact().unwrap();
            }
        }
        check(&db, &model);
    }
    db.close().unwrap();
    drop(db);
    check(&open(), &model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn the_engine_agrees_with_a_btreemap_model(steps in proptest::collection::vec(step(), 1..60)) {
        run(steps);
    }
}
