use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aerolith_core::{Clock, Database, Error, Query, QueryError};
use serde_json::{json, Value};

use crate::fast;

const CITIES: [&str; 4] = ["Oslo", "Lima", "Pune", "Kyiv"];

fn people() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    db.create_collection("people").unwrap();
    for i in 0..200 {
        db.insert(
            "people",
            json!({
                "_id": format!("p{i:03}"),
                "age": i % 90,
                "city": CITIES[i % 4],
                "tags": if i % 10 == 0 { json!(["vip", "early"]) } else { json!(["regular"]) },
                "address": {"zip": format!("{:05}", i * 7)},
            }),
        )
        .unwrap();
    }
    (dir, db)
}

fn q(spec: Value) -> Query {
    Query::from_json(&spec).unwrap()
}

#[test]
fn the_planner_uses_an_index_for_equality_in_and_ranges() {
    let (_dir, db) = people();
    let eq = q(json!({"filter": {"city": "Lima"}}));
    assert_eq!(db.explain("people", &eq).unwrap().plan, "full_scan");
    db.create_index("people", "city", false).unwrap();
    db.create_index("people", "age", false).unwrap();
    let explain = db.explain("people", &eq).unwrap();
    assert_eq!(
        (explain.plan, explain.index.as_deref()),
        ("index_keys", Some("city"))
    );
    assert_eq!(explain.documents_examined, 50);
    assert_eq!(explain.returned, 50);
    let inq = q(json!({"filter": {"city": {"$in": ["Lima", "Kyiv"]}}}));
    assert_eq!(db.count("people", &inq).unwrap(), 100);
    assert_eq!(db.explain("people", &inq).unwrap().plan, "index_keys");
    let range = q(json!({"filter": {"age": {"$gte": 80, "$lt": 85}}}));
    let explain = db.explain("people", &range).unwrap();
    assert_eq!(
        (explain.plan, explain.index.as_deref()),
        ("index_range", Some("age"))
    );
    assert_eq!(
        explain.returned,
        db.find("people", &range).unwrap().len() as u64
    );
    // Results agree with a full scan of the same filter.
    let scanned = db
        .find(
            "people",
            &q(json!({"filter": {"$and": [{"age": {"$gte": 80}}, {"age": {"$lt": 85}}]}})),
        )
        .unwrap();
    assert_eq!(scanned.len() as u64, explain.returned);
}

#[test]
fn indexes_follow_updates_deletes_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    db.create_collection("c").unwrap();
    db.create_index("c", "k", false).unwrap();
    db.insert("c", json!({"_id": "a", "k": 1})).unwrap();
    db.insert("c", json!({"_id": "b", "k": 1})).unwrap();
    db.patch("c", "a", json!({"k": 2})).unwrap();
    db.delete("c", "b").unwrap();
    let by_k = |db: &Database, k: i64| db.count("c", &q(json!({"filter": {"k": k}}))).unwrap();
    assert_eq!((by_k(&db, 1), by_k(&db, 2)), (0, 1));
    db.close().unwrap();
    drop(db);
    let db = Database::open(dir.path(), fast()).unwrap();
    assert_eq!((by_k(&db, 1), by_k(&db, 2)), (0, 1));
    assert_eq!(
        db.explain("c", &q(json!({"filter": {"k": 2}})))
            .unwrap()
            .plan,
        "index_keys"
    );
}

#[test]
fn a_unique_index_rejects_duplicates_with_a_clear_error() {
    let (_dir, db) = people();
    assert!(matches!(
        db.create_index("people", "city", true),
        Err(Error::UniqueViolation { .. })
    ));
    db.create_index("people", "address.zip", true).unwrap();
    let err = db
        .insert("people", json!({"address": {"zip": "00007"}}))
        .unwrap_err();
    match err {
        Error::UniqueViolation {
            path, existing_id, ..
        } => {
            assert_eq!(path, "address.zip");
            assert_eq!(existing_id, "p001");
        }
        other => panic!("{other}"),
    }
    // Replacing a document with its own key is not a conflict.
    db.patch("people", "p001", json!({"age": 5})).unwrap();
    assert!(matches!(
        db.create_index("people", "address.zip", true),
        Err(Error::IndexExists { .. })
    ));
    db.drop_index("people", "address.zip").unwrap();
    assert!(matches!(
        db.drop_index("people", "address.zip"),
        Err(Error::IndexNotFound { .. })
    ));
    db.insert("people", json!({"address": {"zip": "00007"}}))
        .unwrap();
}

#[test]
fn arrays_match_by_element_and_through_an_index() {
    let (_dir, db) = people();
    let vip = q(json!({"filter": {"tags": "vip"}}));
    assert_eq!(db.count("people", &vip).unwrap(), 20);
    db.create_index("people", "tags", false).unwrap();
    assert_eq!(db.count("people", &vip).unwrap(), 20);
    assert_eq!(db.explain("people", &vip).unwrap().documents_examined, 20);
}

#[test]
fn sort_skip_limit_and_projection_compose() {
    let (_dir, db) = people();
    let page = db
        .find(
            "people",
            &q(json!({
                "filter": {"city": "Oslo", "age": {"$lt": 50}},
                "sort": {"age": -1, "_id": 1},
                "skip": 2,
                "limit": 3,
                "projection": {"age": 1, "_id": 0}
            })),
        )
        .unwrap();
    let ages: Vec<i64> = page.iter().map(|d| d["age"].as_i64().unwrap()).collect();
    let mut all: Vec<i64> = (0..200)
        .filter(|i| i % 4 == 0 && i % 90 < 50)
        .map(|i| (i % 90) as i64)
        .collect();
    all.sort_by(|a, b| b.cmp(a));
    assert_eq!(ages, all[2..5].to_vec());
    assert!(page.iter().all(|d| d.as_object().unwrap().len() == 1));
}

#[test]
fn bad_filters_are_typed_errors_not_empty_results() {
    let cases = [
        json!({"filter": {"age": {"$regexp": "x"}}}),
        json!({"filter": {"age": {"$in": 5}}}),
        json!({"filter": {"$or": []}}),
        json!({"filter": [1]}),
        json!({"sort": {"age": 2}}),
        json!({"limit": -1}),
        json!({"filterz": {}}),
    ];
    for spec in cases {
        assert!(
            matches!(Query::from_json(&spec), Err(Error::Query(_))),
            "{spec} accepted"
        );
    }
    assert!(matches!(
        Query::from_json(&json!({"filter": {"a": {"$gt": 1, "$bogus": 2}}})),
        Err(Error::Query(QueryError::UnknownOperator { .. }))
    ));
}

/// A clock whose monotonic time moves 1 ms every time it is read, so a
/// query's budget runs out after a known number of documents.
#[derive(Debug, Default)]
struct TickingClock(AtomicU64);

impl Clock for TickingClock {
    fn now_unix_ms(&self) -> i64 {
        0
    }
    fn monotonic(&self) -> Duration {
        Duration::from_millis(self.0.fetch_add(1, Ordering::SeqCst))
    }
}

#[test]
fn a_query_past_its_time_budget_stops_with_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast().clock(Arc::new(TickingClock::default()))).unwrap();
    db.create_collection("c").unwrap();
    for i in 0..100 {
        db.insert("c", json!({"i": i})).unwrap();
    }
    let slow = Query::filter(&json!({"i": {"$gte": 0}}))
        .unwrap()
        .time_budget(Duration::from_millis(10));
    match db.find("c", &slow) {
        Err(Error::Timeout {
            budget_ms,
            elapsed_ms,
        }) => {
            assert_eq!(budget_ms, 10);
            assert!(elapsed_ms > 10);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let generous = slow.clone().time_budget(Duration::from_secs(3600));
    assert_eq!(db.find("c", &generous).unwrap().len(), 100);
}
