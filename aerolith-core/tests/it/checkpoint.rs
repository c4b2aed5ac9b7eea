//! The checkpoint of the in-memory indexes (`aerolith-core/src/checkpoint.rs`):
//! an open through a checkpoint gives exactly the state a full replay gives
//! (ids, documents, index query results, accounting), after random
//! operations, stale checkpoints with writes after them and a kill,
//! compaction, damaged or truncated checkpoint files, and injected faults
//! while the checkpoint is written. A checkpoint whose head does not prove
//! it matches the log is ignored, never an error; damage in an item, found
//! when the item is first read, fails that read as corruption and drops the
//! file, so the next open replays the log.

use std::collections::BTreeMap;
use std::path::Path;

use aerolith_core::fault::{Fault, FaultOp, FaultPlan, EIO};
use aerolith_core::{Database, Error, MasterKey, Options, Query, WriteBatch};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::{fast, segment_files};

const CHECKPOINT: &str = "CHECKPOINT";

/// Everything a user can observe of a database's state.
#[derive(Debug, PartialEq)]
struct Observed {
    collections: Vec<String>,
    docs: BTreeMap<String, Vec<(String, Value)>>,
    stats: Vec<(String, aerolith_core::CollectionStats)>,
    indexes: BTreeMap<String, Vec<aerolith_core::IndexInfo>>,
    /// Results of equality and range queries on every indexed path.
    index_queries: Vec<(String, String, Vec<Value>)>,
    documents: u64,
    live_bytes: u64,
    collection_count: u64,
}

fn observe(db: &Database) -> Observed {
    try_observe(db).unwrap()
}

/// [`observe`], with the first error instead of a panic.
fn try_observe(db: &Database) -> aerolith_core::Result<Observed> {
    let collections = db.list_collections();
    let mut docs = BTreeMap::new();
    let mut stats = Vec::new();
    let mut indexes = BTreeMap::new();
    let mut index_queries = Vec::new();
    for name in &collections {
        let ids = db.snapshot().list_ids(name, None, 10_000)?;
        let mut found: Vec<(String, Value)> = Vec::with_capacity(ids.len());
        for id in ids {
            let doc = db.get(name, &id)?.expect("listed id reads");
            found.push((id, doc));
        }
        docs.insert(name.clone(), found);
        stats.push((name.clone(), db.collection_stats(name)?));
        let infos = db.list_indexes(name)?;
        for info in &infos {
            let mut filters = vec![json!({ info.path.clone(): {"$gte": 2} })];
            for v in 0..4 {
                filters.push(json!({ info.path.clone(): v }));
            }
            filters.push(json!({ info.path.clone(): "s1" }));
            for filter in filters {
                let query = Query::filter(&filter).unwrap();
                let mut got = db.find(name, &query)?;
                got.sort_by_key(|d| d["_id"].as_str().unwrap_or_default().to_owned());
                index_queries.push((name.clone(), filter.to_string(), got));
            }
        }
        indexes.insert(name.clone(), infos);
    }
    let total = db.stats()?;
    Ok(Observed {
        collections,
        docs,
        stats,
        indexes,
        index_queries,
        documents: total.documents,
        live_bytes: total.live_bytes,
        collection_count: total.collections,
    })
}

/// Opens a copy of `dir` without its checkpoint (a full replay) and `dir`
/// itself, and checks that both show the same state. Returns whether `dir`
/// was opened through its checkpoint.
fn same_as_full_replay(dir: &Path, options: &dyn Fn() -> Options) -> bool {
    let twin = crate::crash_image(dir);
    let _ = std::fs::remove_file(twin.path().join(CHECKPOINT));
    let replayed = Database::open(twin.path(), options()).unwrap();
    assert!(!replayed.recovery_report().checkpoint_used);
    let expected = observe(&replayed);
    drop(replayed);
    let db = Database::open(dir, options()).unwrap();
    let used = db.recovery_report().checkpoint_used;
    assert_eq!(observe(&db), expected, "checkpoint used: {used}");
    // Writing after an open through a checkpoint continues the same log.
    if !db.list_collections().iter().any(|c| c == "zz-after-open") {
        db.create_collection("zz-after-open").unwrap();
    }
    let n = db.collection_stats("zz-after-open").unwrap().documents;
    db.insert("zz-after-open", json!({"_id": format!("x{n}"), "k": n}))
        .unwrap();
    db.close().unwrap();
    used
}

fn populate(db: &Database, docs: usize) {
    db.create_collection("c").unwrap();
    db.create_index("c", "k", false).unwrap();
    db.create_collection("d").unwrap();
    let mut batch = WriteBatch::new();
    for i in 0..docs {
        batch
            .insert(
                "c",
                json!({"_id": format!("c{i:04}"), "k": i % 5, "tags": [i % 3, "s1"]}),
            )
            .unwrap();
        batch
            .insert("d", json!({"_id": format!("d{i:04}"), "i": i}))
            .unwrap();
    }
    db.write(batch).unwrap();
}

#[test]
fn a_clean_close_writes_a_checkpoint_and_the_next_open_replays_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    populate(&db, 50);
    db.create_index("c", "tags", false).unwrap();
    db.close().unwrap();
    assert!(dir.path().join(CHECKPOINT).exists());
    let db = Database::open(dir.path(), fast()).unwrap();
    let report = db.recovery_report().clone();
    assert!(report.checkpoint_used);
    assert_eq!(report.checkpoint_rejected, None);
    assert_eq!(report.records, 0, "nothing after the checkpoint");
    drop(db);
    assert!(same_as_full_replay(dir.path(), &fast));
}

#[test]
fn writes_after_a_checkpoint_then_a_kill_are_replayed_from_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    populate(&db, 30);
    db.close().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    assert!(db.recovery_report().checkpoint_used);
    // Overwrites, deletes, an index created and one dropped, a collection
    // dropped: all after the checkpoint.
    db.upsert("c", json!({"_id": "c0001", "k": 4, "new": true}))
        .unwrap();
    db.delete("c", "c0002").unwrap();
    db.patch("c", "c0003", json!({"k": null})).unwrap();
    db.create_index("d", "i", true).unwrap();
    db.insert("d", json!({"_id": "late", "i": 1000})).unwrap();
    db.drop_index("c", "k").unwrap();
    db.create_index("c", "k", false).unwrap();
    db.insert("c", json!({"_id": "c9999", "k": 2})).unwrap();
    let killed = crate::crash_image(dir.path());
    drop(db);
    let reopened = Database::open(killed.path(), fast()).unwrap();
    let report = reopened.recovery_report().clone();
    assert!(report.checkpoint_used);
    assert_eq!(
        report.transactions, 8,
        "exactly the writes after the checkpoint"
    );
    assert_eq!(reopened.get("c", "c0002").unwrap(), None);
    assert_eq!(reopened.get("d", "late").unwrap().unwrap()["i"], 1000);
    drop(reopened);
    assert!(same_as_full_replay(killed.path(), &fast));
}

#[test]
fn compaction_writes_a_checkpoint_of_the_new_segments() {
    let dir = tempfile::tempdir().unwrap();
    let small = || fast().segment_size_bytes_max(4096);
    let db = Database::open(dir.path(), small()).unwrap();
    populate(&db, 40);
    for i in 0..40 {
        db.upsert("c", json!({"_id": format!("c{i:04}"), "k": (i + 1) % 5}))
            .unwrap();
    }
    db.close().unwrap();
    let db = Database::open(dir.path(), small()).unwrap();
    let before = std::fs::read(dir.path().join(CHECKPOINT)).unwrap();
    db.compact().unwrap();
    let after = std::fs::read(dir.path().join(CHECKPOINT)).unwrap();
    assert_ne!(before, after, "compaction replaced the checkpoint");
    db.insert("d", json!({"_id": "after-compaction"})).unwrap();
    let killed = crate::crash_image(dir.path());
    drop(db);
    let reopened = Database::open(killed.path(), small()).unwrap();
    assert!(reopened.recovery_report().checkpoint_used);
    assert!(reopened.get("d", "after-compaction").unwrap().is_some());
    drop(reopened);
    assert!(same_as_full_replay(killed.path(), &small));

    // The checkpoint from before the compaction names segments that are gone.
    let stale = crate::crash_image(dir.path());
    std::fs::write(stale.path().join(CHECKPOINT), &before).unwrap();
    let db = Database::open(stale.path(), small()).unwrap();
    let report = db.recovery_report().clone();
    assert!(!report.checkpoint_used);
    assert!(report.checkpoint_rejected.is_some());
    drop(db);
}

/// Bytes of the checkpoint's header, and of the hash after its directory.
const HEADER_BYTES: usize = 24;
const HASH_BYTES: usize = 16;

/// Where a checkpoint file's item region starts (after header, directory, hash).
fn region_start(file: &[u8]) -> usize {
    let dir_len = u64::from_le_bytes(file[16..24].try_into().unwrap()) as usize;
    HEADER_BYTES + dir_len + HASH_BYTES
}

#[test]
fn every_damaged_or_truncated_checkpoint_byte_is_found_and_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    // Enough documents for several blocks per id table.
    populate(&db, 400);
    db.close().unwrap();
    let good = std::fs::read(dir.path().join(CHECKPOINT)).unwrap();
    let expected = {
        let db = Database::open(dir.path(), fast()).unwrap();
        assert!(db.recovery_report().checkpoint_used);
        observe(&db)
    };
    let region = region_start(&good);
    assert!(good.len() - region > 3 * 2048, "several blocks");

    // Damage the open checks (header, directory, its hash, the length):
    // the checkpoint is not used and the whole log is replayed.
    let mut rejected: Vec<(String, Vec<u8>)> = Vec::new();
    let head_positions: Vec<usize> = (0..HEADER_BYTES)
        .chain((HEADER_BYTES..region - HASH_BYTES).step_by(13))
        .chain(region - HASH_BYTES..region)
        .collect();
    for &at in &head_positions {
        let mut bytes = good.clone();
        bytes[at] ^= 0x41;
        rejected.push((format!("flip at {at}"), bytes));
    }
    let cuts = [
        0,
        4,
        8,
        12,
        16,
        20,
        24,
        25,
        region - 1,
        region,
        good.len() - 1,
    ];
    for len in cuts.into_iter().chain((region..good.len()).step_by(997)) {
        rejected.push((format!("cut to {len}"), good[..len].to_vec()));
    }
    let mut longer = good.clone();
    longer.push(0);
    rejected.push(("one byte more".into(), longer));
    // Another format version (the previous one, a later one) with a
    // correct checksum (xxh3-128, little-endian): ignored, not misread.
    for other in [2u8, 4] {
        let mut version = good.clone();
        version[8] = other;
        let hash = xxhash_rust::xxh3::xxh3_128(&version[..region - HASH_BYTES]).to_le_bytes();
        version[region - HASH_BYTES..region].copy_from_slice(&hash);
        rejected.push((format!("version {other}"), version));
    }
    for (what, bytes) in rejected {
        let case = crate::crash_image(dir.path());
        std::fs::write(case.path().join(CHECKPOINT), &bytes).unwrap();
        let db = Database::open(case.path(), fast()).unwrap();
        let report = db.recovery_report().clone();
        assert!(!report.checkpoint_used, "{what}");
        assert!(report.checkpoint_rejected.is_some(), "{what}");
        assert_eq!(observe(&db), expected, "{what}");
    }

    // Damage an item (a block of an id table, an index's entries): the open
    // checks only the directory, so it is found when the item is first read.
    // That read fails as corruption of the checkpoint, never serves what
    // it read, and drops the file; the next open replays the log.
    let item_positions: Vec<usize> = std::iter::once(region)
        .chain((region..good.len()).step_by(211))
        .chain(std::iter::once(good.len() - 1))
        .collect();
    for at in item_positions {
        let case = crate::crash_image(dir.path());
        let path = case.path().join(CHECKPOINT);
        let mut bytes = good.clone();
        bytes[at] ^= 0x41;
        std::fs::write(&path, &bytes).unwrap();
        let db = Database::open(case.path(), fast()).unwrap();
        assert!(db.recovery_report().checkpoint_used, "flip at {at}");
        match try_observe(&db) {
            Err(Error::Corrupt { path: found, .. }) => assert_eq!(found, path, "flip at {at}"),
            other => panic!("flip at {at}: expected corruption, got {other:?}"),
        }
        assert!(
            !path.exists(),
            "flip at {at}: the damaged checkpoint is dropped"
        );
        drop(db);
        let db = Database::open(case.path(), fast()).unwrap();
        assert!(!db.recovery_report().checkpoint_used, "flip at {at}");
        assert_eq!(observe(&db), expected, "flip at {at}");
    }
}

/// A block rewritten with a valid checksum (as only someone writing the
/// file on purpose could) whose first entry points outside the log the
/// checkpoint covers: the point read checks the location before using it,
/// answers corruption, never a document, and the next open replays the log.
#[test]
fn a_forged_block_location_outside_the_covered_log_is_refused_by_a_point_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    populate(&db, 400);
    db.close().unwrap();
    let good = std::fs::read(dir.path().join(CHECKPOINT)).unwrap();
    let region = region_start(&good);
    // The first item is collection "c"'s first id block: u32 entries, then
    // per entry `str id, u64 segment, u64 offset, u32 len, u32 size`.
    let id_len = usize::from(u16::from_le_bytes([good[region + 4], good[region + 5]]));
    assert_eq!(&good[region + 6..region + 6 + id_len], b"c0000");
    let block_len = {
        // The block ends where the next item starts: find its length from
        // the directory entry holding its checksum.
        let mut end = region + 6 + id_len + 24;
        let count = u32::from_le_bytes(good[region..region + 4].try_into().unwrap());
        for _ in 1..count {
            let len = usize::from(u16::from_le_bytes([good[end], good[end + 1]]));
            end += 2 + len + 24;
        }
        end - region
    };
    let old_sum = xxhash_rust::xxh3::xxh3_128(&good[region..region + block_len]).to_le_bytes();
    let mut forged = good.clone();
    let segment_at = region + 6 + id_len;
    forged[segment_at..segment_at + 8].copy_from_slice(&99u64.to_le_bytes());
    let new_sum = xxhash_rust::xxh3::xxh3_128(&forged[region..region + block_len]).to_le_bytes();
    let directory = HEADER_BYTES..region - HASH_BYTES;
    let at = forged[directory.clone()]
        .windows(16)
        .position(|w| w == old_sum)
        .expect("the directory holds the block's checksum")
        + HEADER_BYTES;
    forged[at..at + 16].copy_from_slice(&new_sum);
    let head = xxhash_rust::xxh3::xxh3_128(&forged[..region - HASH_BYTES]).to_le_bytes();
    forged[region - HASH_BYTES..region].copy_from_slice(&head);

    let case = crate::crash_image(dir.path());
    let path = case.path().join(CHECKPOINT);
    std::fs::write(&path, &forged).unwrap();
    let db = Database::open(case.path(), fast()).unwrap();
    assert!(db.recovery_report().checkpoint_used, "the head is valid");
    match db.get("c", "c0000") {
        Err(Error::Corrupt { path: found, .. }) => assert_eq!(found, path),
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(!path.exists(), "the forged checkpoint is dropped");
    drop(db);
    let db = Database::open(case.path(), fast()).unwrap();
    assert!(!db.recovery_report().checkpoint_used);
    assert_eq!(
        db.get("c", "c0000").unwrap().unwrap()["_id"],
        json!("c0000")
    );
}

#[test]
fn a_point_read_after_open_reads_one_block_and_damage_elsewhere_is_not_in_its_way() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    // Items are stored in collection name order, each collection's index
    // entries after its id table: the last byte belongs to the index of "z".
    db.create_collection("a").unwrap();
    db.create_collection("z").unwrap();
    db.create_index("z", "k", false).unwrap();
    let mut batch = WriteBatch::new();
    for i in 0..400 {
        batch
            .insert("a", json!({"_id": format!("a{i:04}"), "i": i}))
            .unwrap();
        batch
            .insert("z", json!({"_id": format!("z{i:04}"), "k": i % 5}))
            .unwrap();
    }
    db.write(batch).unwrap();
    db.close().unwrap();
    let path = dir.path().join(CHECKPOINT);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    assert!(db.recovery_report().checkpoint_used);
    // Point reads, counts and the id table of "z" never read the index.
    for i in [0, 17, 399] {
        let id = format!("z{i:04}");
        assert_eq!(db.get("z", &id).unwrap().unwrap()["k"], i % 5);
        let id = format!("a{i:04}");
        assert_eq!(db.get("a", &id).unwrap().unwrap()["i"], i);
    }
    assert_eq!(db.get("z", "z9999").unwrap(), None);
    assert_eq!(db.get("z", "a").unwrap(), None);
    assert_eq!(db.collection_stats("z").unwrap().documents, 400);
    assert_eq!(db.snapshot().list_ids("z", None, 3).unwrap().len(), 3);
    // A query through the index reads it.
    let query = Query::filter(&json!({"k": 1})).unwrap();
    assert!(matches!(db.find("z", &query), Err(Error::Corrupt { .. })));
    assert!(!path.exists());
    // Other collections still work, and a write to the damaged collection
    // fails before it changes anything.
    db.insert("a", json!({"_id": "a-new"})).unwrap();
    assert!(matches!(
        db.insert("z", json!({"_id": "z-new", "k": 1})),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(db.get("z", "z-new").unwrap(), None);
    drop(db);
    let db = Database::open(dir.path(), fast()).unwrap();
    assert!(!db.recovery_report().checkpoint_used);
    assert_eq!(db.find("z", &query).unwrap().len(), 80);
    assert!(db.get("a", "a-new").unwrap().is_some());
    assert_eq!(db.get("z", "z-new").unwrap(), None);
}

#[test]
fn damage_in_the_checkpoint_with_records_after_it_falls_back_to_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    populate(&db, 400);
    db.close().unwrap();
    // Writes after the checkpoint, then a kill: the open replays them over
    // the checkpoint's collections, so it builds those first.
    let db = Database::open(dir.path(), fast()).unwrap();
    db.upsert("c", json!({"_id": "c0003", "k": 4})).unwrap();
    db.delete("d", "d0007").unwrap();
    let image = crate::crash_image(dir.path());
    drop(db);
    let expected = {
        let twin = crate::crash_image(image.path());
        std::fs::remove_file(twin.path().join(CHECKPOINT)).unwrap();
        observe(&Database::open(twin.path(), fast()).unwrap())
    };
    let intact = crate::crash_image(image.path());
    let db = Database::open(intact.path(), fast()).unwrap();
    assert!(db.recovery_report().checkpoint_used);
    assert_eq!(observe(&db), expected);
    drop(db);
    let path = image.path().join(CHECKPOINT);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = region_start(&bytes) + 100;
    bytes[at] ^= 0x41;
    std::fs::write(&path, &bytes).unwrap();
    let db = Database::open(image.path(), fast()).unwrap();
    let report = db.recovery_report().clone();
    assert!(!report.checkpoint_used);
    assert!(report.checkpoint_rejected.is_some());
    assert_eq!(observe(&db), expected);
}

#[test]
fn a_checkpoint_is_checked_against_the_log_it_covers() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    populate(&db, 10);
    db.close().unwrap();
    let seg = segment_files(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&seg).unwrap();

    // The log cut short below the covered length (a salvage, a lost tail).
    let cut = crate::crash_image(dir.path());
    std::fs::write(
        cut.path().join(seg.file_name().unwrap()),
        &bytes[..bytes.len() - 7],
    )
    .unwrap();
    let db = Database::open(cut.path(), fast()).unwrap();
    assert!(!db.recovery_report().checkpoint_used);
    assert!(db.recovery_report().truncated.is_some());
    drop(db);

    // The boundary frame changed (a different log of the same length).
    let changed = crate::crash_image(dir.path());
    let mut other = bytes.clone();
    let last = other.len() - 1;
    other[last] ^= 1;
    std::fs::write(changed.path().join(seg.file_name().unwrap()), &other).unwrap();
    let db = Database::open(
        changed.path(),
        fast().recovery(aerolith_core::RecoveryMode::Salvage),
    )
    .unwrap();
    assert!(!db.recovery_report().checkpoint_used);
    drop(db);

    // A checkpoint of another database is never used.
    let stranger = tempfile::tempdir().unwrap();
    let db = Database::open(stranger.path(), fast()).unwrap();
    populate(&db, 10);
    db.close().unwrap();
    let foreign = crate::crash_image(dir.path());
    std::fs::copy(
        stranger.path().join(CHECKPOINT),
        foreign.path().join(CHECKPOINT),
    )
    .unwrap();
    let db = Database::open(foreign.path(), fast()).unwrap();
    let report = db.recovery_report().clone();
    assert!(!report.checkpoint_used);
    assert!(report
        .checkpoint_rejected
        .unwrap()
        .contains("another database"));
}

#[test]
fn damage_under_a_checkpoint_is_found_by_reads_and_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    db.create_collection("c").unwrap();
    for i in 0..20 {
        db.insert(
            "c",
            json!({"_id": format!("d{i:02}"), "body": "x".repeat(100)}),
        )
        .unwrap();
    }
    db.close().unwrap();
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&seg, &bytes).unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    assert!(db.recovery_report().checkpoint_used);
    let failures = (0..20)
        .filter(|i| matches!(db.get("c", &format!("d{i:02}")), Err(Error::Corrupt { .. })))
        .count();
    assert_eq!(
        failures, 1,
        "the damaged record is an error, the others read"
    );
    drop(db);
    assert!(matches!(
        Database::verify_offline(dir.path(), &fast()),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn verify_offline_reports_the_checkpoint_and_a_damaged_one_is_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    populate(&db, 10);
    db.close().unwrap();
    let report = Database::verify_offline(dir.path(), &fast()).unwrap();
    assert_eq!(report.checkpoint, aerolith_core::CheckpointStatus::Valid);
    let path = dir.path().join(CHECKPOINT);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[30] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let report = Database::verify_offline(dir.path(), &fast()).unwrap();
    match report.checkpoint {
        aerolith_core::CheckpointStatus::Rejected { reason } => {
            assert!(reason.contains("checksum"), "{reason}")
        }
        other => panic!("expected a rejected checkpoint, got {other:?}"),
    }
    std::fs::remove_file(&path).unwrap();
    let report = Database::verify_offline(dir.path(), &fast()).unwrap();
    assert_eq!(report.checkpoint, aerolith_core::CheckpointStatus::Absent);
}

#[test]
fn an_encrypted_database_has_an_encrypted_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::from_bytes([9; 32]);
    let keyed = || fast().master_key(key.clone());
    let db = Database::open(dir.path(), keyed()).unwrap();
    db.create_collection("secrets").unwrap();
    db.create_index("secrets", "who", false).unwrap();
    db.insert(
        "secrets",
        json!({"_id": "plaintext-id-7", "who": "plaintext-key-9"}),
    )
    .unwrap();
    db.close().unwrap();
    let bytes = std::fs::read(dir.path().join(CHECKPOINT)).unwrap();
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(b"plaintext-id-7") && !contains(b"plaintext-key-9") && !contains(b"secrets"));
    assert!(same_as_full_replay(dir.path(), &keyed));

    // A plain database's checkpoint copied in is refused, whatever it says.
    let plain = tempfile::tempdir().unwrap();
    let db = Database::open(plain.path(), fast()).unwrap();
    populate(&db, 3);
    db.close().unwrap();
    std::fs::copy(plain.path().join(CHECKPOINT), dir.path().join(CHECKPOINT)).unwrap();
    let db = Database::open(dir.path(), keyed()).unwrap();
    assert!(!db.recovery_report().checkpoint_used);
    assert_eq!(
        db.get("secrets", "plaintext-id-7").unwrap().unwrap()["who"],
        "plaintext-key-9"
    );
}

/// Every write, fsync, create and rename of a close and of a compaction
/// (the checkpoint's among them) fails once in turn: the database then
/// opens with every acknowledged write, through a checkpoint or not.
#[test]
fn faults_while_a_checkpoint_is_written_never_break_the_next_open() {
    let workload = |db: &Database| {
        populate(db, 8);
        db.upsert("c", json!({"_id": "c0001", "k": 3})).unwrap();
    };
    for compact in [false, true] {
        let dry = FaultPlan::new();
        let dir = tempfile::tempdir().unwrap();
        let mut options = fast();
        options.fault_plan = Some(dry.clone());
        let db = Database::open(dir.path(), options).unwrap();
        workload(&db);
        let before: Vec<u64> = FaultOp::ALL.iter().map(|&op| dry.count(op)).collect();
        if compact {
            db.compact().unwrap();
        }
        db.close().unwrap();
        let expected = {
            let db = Database::open(dir.path(), fast()).unwrap();
            observe(&db)
        };
        for (k, &op) in FaultOp::ALL.iter().enumerate() {
            for nth in before[k] + 1..=dry.count(op) {
                // A write is cut short (the worst a write can do); any other
                // operation fails.
                let fault = match op {
                    FaultOp::Write => Fault::ShortWrite { bytes: 9 },
                    _ => Fault::Fail { errno: EIO },
                };
                {
                    let dir = tempfile::tempdir().unwrap();
                    let plan = FaultPlan::new();
                    let mut options = fast();
                    options.fault_plan = Some(plan.clone());
                    let db = Database::open(dir.path(), options).unwrap();
                    workload(&db);
                    plan.add(op, nth, fault);
                    let compacted = !compact || db.compact().is_ok();
                    let _ = db.close();
                    drop(db);
                    let what = format!("compact {compact}, {op:?} #{nth} {fault:?}");
                    let db = Database::open(dir.path(), fast())
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(
                        observe(&db),
                        expected,
                        "{what} (compaction ok: {compacted})"
                    );
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Create(u8),
    Drop(u8),
    Put(u8, u8, u8),
    Patch(u8, u8, u8),
    Delete(u8, u8),
    CreateIndex(u8, u8),
    DropIndex(u8, u8),
    /// A clean close and reopen (writes a checkpoint).
    Reopen,
    /// A kill: continue on a copy of the files, without closing.
    Kill,
    Compact,
}

fn step() -> impl Strategy<Value = Step> {
    let c = 0u8..2;
    let id = 0u8..10;
    let v = 0u8..6;
    let path = 0u8..2;
    prop_oneof![
        1 => c.clone().prop_map(Step::Create),
        1 => c.clone().prop_map(Step::Drop),
        8 => (c.clone(), id.clone(), v.clone()).prop_map(|(c, i, v)| Step::Put(c, i, v)),
        3 => (c.clone(), id.clone(), v).prop_map(|(c, i, v)| Step::Patch(c, i, v)),
        3 => (c.clone(), id).prop_map(|(c, i)| Step::Delete(c, i)),
        2 => (c.clone(), path.clone()).prop_map(|(c, p)| Step::CreateIndex(c, p)),
        1 => (c, path).prop_map(|(c, p)| Step::DropIndex(c, p)),
        2 => Just(Step::Reopen),
        2 => Just(Step::Kill),
        1 => Just(Step::Compact),
    ]
}

const PATHS: [&str; 2] = ["k", "nested.v"];

fn apply(db: &Database, step: &Step) {
    let coll = |c: &u8| format!("c{c}");
    // Errors (missing collection, existing index, ...) are part of the
    // workload: the state they leave is what both opens must agree on.
    let _ = match step {
        Step::Create(c) => db.create_collection(&coll(c)).map(drop),
        Step::Drop(c) => db.drop_collection(&coll(c)).map(drop),
        Step::Put(c, i, v) => db
            .upsert(
                &coll(c),
                json!({"_id": format!("i{i}"), "k": v, "nested": {"v": [v, "s1"]}}),
            )
            .map(drop),
        Step::Patch(c, i, v) => db
            .patch(&coll(c), &format!("i{i}"), json!({"k": format!("s{v}")}))
            .map(drop),
        Step::Delete(c, i) => db.delete(&coll(c), &format!("i{i}")).map(drop),
        Step::CreateIndex(c, p) => db.create_index(&coll(c), PATHS[*p as usize], false),
        Step::DropIndex(c, p) => db.drop_index(&coll(c), PATHS[*p as usize]),
        Step::Reopen | Step::Kill | Step::Compact => Ok(()),
    };
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn opening_through_a_checkpoint_equals_a_full_replay(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        let mut dir = tempfile::tempdir().unwrap();
        let small = || fast().segment_size_bytes_max(2048);
        let mut db = Database::open(dir.path(), small()).unwrap();
        for step in &steps {
            match step {
                Step::Reopen => {
                    db.close().unwrap();
                    drop(db);
                    same_as_full_replay(dir.path(), &small);
                    db = Database::open(dir.path(), small()).unwrap();
                }
                Step::Kill => {
                    let killed = crate::crash_image(dir.path());
                    drop(db);
                    dir = killed;
                    same_as_full_replay(dir.path(), &small);
                    db = Database::open(dir.path(), small()).unwrap();
                }
                Step::Compact => {
                    db.compact().unwrap();
                }
                other => apply(&db, other),
            }
        }
        db.close().unwrap();
        drop(db);
        prop_assert!(same_as_full_replay(dir.path(), &small));
    }
}

/// Large enough for many blocks per id table and a large index: an open
/// through the checkpoint (lazily built) equals a full replay.
#[test]
fn a_large_checkpoint_read_lazily_matches_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    populate(&db, 4_200);
    db.create_index("c", "tags", false).unwrap();
    db.close().unwrap();
    assert!(same_as_full_replay(dir.path(), &fast));
}

/// Readers of a collection still in the checkpoint (point reads, scans,
/// index queries) run beside a writer that builds it: every reader sees a
/// consistent version, and every block and map is built once for all.
#[test]
fn readers_and_a_writer_share_a_collection_still_in_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    populate(&db, 600);
    db.close().unwrap();
    let db = Database::open(dir.path(), fast()).unwrap();
    assert!(db.recovery_report().checkpoint_used);
    let query = Query::filter(&json!({"k": 2})).unwrap();
    std::thread::scope(|scope| {
        for t in 0..3 {
            let db = &db;
            scope.spawn(move || {
                for i in (t..600).step_by(7) {
                    let id = format!("c{i:04}");
                    assert_eq!(db.get("c", &id).unwrap().unwrap()["k"], i % 5);
                }
            });
        }
        let (db, query) = (&db, &query);
        scope.spawn(move || {
            for _ in 0..3 {
                // 120 of the populated documents have k = 2; the writer
                // below adds more, never removes any.
                assert!(db.find("c", query).unwrap().len() >= 120);
                assert!(db.snapshot().list_ids("d", None, 1_000).unwrap().len() >= 600);
            }
        });
        scope.spawn(move || {
            for i in 0..50 {
                db.insert("c", json!({"_id": format!("new{i:02}"), "k": 2}))
                    .unwrap();
            }
        });
    });
    assert_eq!(db.find("c", &query).unwrap().len(), 170);
    assert_eq!(db.collection_stats("c").unwrap().documents, 650);
    drop(db);
    assert!(same_as_full_replay(dir.path(), &fast));
}
