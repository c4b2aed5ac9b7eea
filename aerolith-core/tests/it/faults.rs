//! Fault injection through the engine's file layer (the hidden
//! `aerolith_core::fault` seam). A seeded workload of batches, segment
//! roll-overs, compactions, an index build and backups runs once to count
//! its file operations; then once per (operation kind x position x fault):
//! ENOSPC and short writes on writes, EIO on fsyncs, ENOSPC on creates, EIO
//! on renames. For every run:
//!
//! - every error is typed: `Io` naming a path, or `Poisoned`;
//! - a fault during a write fails that write;
//! - after a failed append or fsync of a log segment, no later write is
//!   acknowledged (an fsync is never followed by a success for data written
//!   before it);
//! - a backup that succeeds opens as one state the model allows;
//! - then a simulated power cut (every file cut back to its length at its
//!   last successful fsync) and a reopen without faults: the contents are
//!   exactly one state the model allows: every acknowledged batch, and each
//!   failed batch either whole or not at all.
//!
//! The model is a set of candidate `BTreeMap`s: a failed batch forks it.
//! Runs use `/dev/shm` when present (fsync is free there; the faults are
//! injected all the same). `AEROLITH_FAULT_SEEDS` runs more workloads.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aerolith_core::fault::{Fault, FaultOp, FaultPlan, EIO, ENOSPC};
use aerolith_core::{Database, Durability, Error, Options, Query, WriteBatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const COLLECTIONS: [&str; 2] = ["a", "b"];
/// Small segments so that the workload rolls over several times.
const SEGMENT_BYTES: u64 = 1024;
/// Steps per workload.
const STEPS: usize = 28;

/// (collection, id) -> document.
type Model = BTreeMap<(String, String), Value>;

/// One operation of a batch: (collection index, id, Some((value, padding))
/// = upsert, None = delete).
type BatchOp = (usize, u32, Option<(i64, usize)>);

#[derive(Debug, Clone)]
enum Step {
    Batch(Vec<BatchOp>),
    Compact,
    CreateIndex,
    Backup,
}

fn workload(seed: u64) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps: Vec<Step> = (0..STEPS)
        .map(|_| {
            let n = rng.random_range(1..=4);
            Step::Batch(
                (0..n)
                    .map(|_| {
                        let c = rng.random_range(0..COLLECTIONS.len());
                        let id = rng.random_range(0..12);
                        let put = rng
                            .random_bool(0.8)
                            .then(|| (rng.random_range(-50..50), rng.random_range(0..160)));
                        (c, id, put)
                    })
                    .collect(),
            )
        })
        .collect();
    steps[STEPS / 4] = Step::CreateIndex;
    steps[STEPS / 3] = Step::Compact;
    steps[STEPS / 2] = Step::Backup;
    steps[2 * STEPS / 3] = Step::Compact;
    steps[STEPS - 2] = Step::Backup;
    steps
}

fn doc(id: u32, v: i64, pad: usize) -> Value {
    json!({"_id": format!("d{id}"), "v": v, "pad": "x".repeat(pad)})
}

fn apply(model: &mut Model, ops: &[BatchOp]) {
    for &(c, id, put) in ops {
        let key = (COLLECTIONS[c].to_string(), format!("d{id}"));
        match put {
            Some((v, pad)) => model.insert(key, doc(id, v, pad)),
            None => model.remove(&key),
        };
    }
}

/// A failed batch may or may not have been applied: keep both.
fn fork(candidates: &mut Vec<Model>, ops: &[BatchOp]) {
    let mut applied: Vec<Model> = candidates
        .iter()
        .map(|m| {
            let mut m = m.clone();
            apply(&mut m, ops);
            m
        })
        .collect();
    applied.retain(|m| !candidates.contains(m));
    candidates.append(&mut applied);
    assert!(candidates.len() <= 64, "too many failed batches to model");
}

fn read_all(db: &Database) -> Model {
    let mut m = Model::new();
    for c in COLLECTIONS {
        for d in db.find(c, &Query::filter(&json!({})).unwrap()).unwrap() {
            let id = d["_id"].as_str().unwrap().to_string();
            m.insert((c.to_string(), id), d);
        }
    }
    m
}

fn options(plan: Option<Arc<FaultPlan>>) -> Options {
    let mut o = Options::default()
        .durability(Durability::Always)
        .segment_size_bytes_max(SEGMENT_BYTES);
    o.fault_plan = plan;
    o
}

fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().expect("temp dir")
}

fn segment_files(dir: &Path) -> HashSet<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "aero"))
        .collect()
}

fn file_lengths(dir: &Path) -> HashMap<PathBuf, u64> {
    segment_files(dir)
        .into_iter()
        .map(|p| {
            let len = std::fs::metadata(&p).unwrap().len();
            (p, len)
        })
        .collect()
}

fn assert_typed(e: &Error, context: &str) {
    match e {
        Error::Poisoned => {}
        Error::Io { path, .. } if !path.as_os_str().is_empty() => {}
        other => panic!("{context}: untyped or unexpected error {other:?}"),
    }
}

/// Runs `steps` with `plan` installed; returns the plan's operation counts.
fn run(steps: &[Step], plan: Arc<FaultPlan>, label: &str) {
    let root = scratch();
    let db_dir = root.path().join("db");
    {
        let db = Database::open(&db_dir, options(None)).unwrap();
        for c in COLLECTIONS {
            db.create_collection(c).unwrap();
        }
        db.close().unwrap();
    }
    // What a power cut keeps of files the plan never sees synced.
    let mut synced = file_lengths(&db_dir);
    let mut candidates: Vec<Model> = vec![Model::new()];
    let mut poisoned_at: Option<usize> = None;
    let db = Database::open(&db_dir, options(Some(Arc::clone(&plan))))
        .unwrap_or_else(|e| panic!("{label}: open with an idle plan failed: {e}"));
    let mut seen_faults = 0;
    for (i, step) in steps.iter().enumerate() {
        let before = segment_files(&db_dir);
        let result: Result<(), Error> = match step {
            Step::Batch(ops) => {
                let mut b = WriteBatch::new();
                for &(c, id, put) in ops {
                    match put {
                        Some((v, pad)) => b.upsert(COLLECTIONS[c], doc(id, v, pad)).map(drop),
                        None => b.delete(COLLECTIONS[c], &format!("d{id}")),
                    }
                    .unwrap();
                }
                let r = db.write(b).map(drop);
                match &r {
                    Ok(()) => {
                        assert!(
                            poisoned_at.is_none(),
                            "{label}: step {i} acknowledged after a log append/fsync \
                             failed at step {poisoned_at:?}"
                        );
                        for m in &mut candidates {
                            apply(m, ops);
                        }
                    }
                    // Single-threaded, `Poisoned` comes from the check before
                    // the batch is queued: it was never written.
                    Err(Error::Poisoned) => {}
                    Err(_) => fork(&mut candidates, ops),
                }
                r
            }
            Step::Compact => db.compact().map(drop),
            Step::CreateIndex => db.create_index("a", "v", false),
            Step::Backup => {
                let dest = root.path().join(format!("backup-{i}"));
                let r = db.backup_to(&dest).map(drop);
                if r.is_ok() {
                    let copy = Database::open(&dest, options(None).must_exist())
                        .unwrap_or_else(|e| panic!("{label}: backup at step {i} opens: {e}"));
                    let got = read_all(&copy);
                    assert!(
                        candidates.contains(&got),
                        "{label}: backup at step {i} is not a state the model allows"
                    );
                }
                r
            }
        };
        if let Err(e) = &result {
            assert_typed(e, &format!("{label}: step {i} ({step:?})"));
        }
        let fired = plan.fired();
        for f in &fired[seen_faults..] {
            if matches!(step, Step::Batch(_)) {
                assert!(
                    result.is_err(),
                    "{label}: fault {f:?} in a write, which succeeded"
                );
            }
            if matches!(f.op, FaultOp::Sync | FaultOp::Write) && before.contains(&f.path) {
                poisoned_at.get_or_insert(i);
            }
        }
        seen_faults = fired.len();
    }
    // A last write: refused after a log failure; otherwise the database
    // still serves and reads as one allowed state.
    let mut probe = WriteBatch::new();
    probe.upsert("b", doc(99, 0, 0)).unwrap();
    match db.write(probe) {
        Ok(_) => {
            assert!(
                poisoned_at.is_none(),
                "{label}: probe write acknowledged after poisoning"
            );
            for m in &mut candidates {
                m.insert(("b".into(), "d99".into()), doc(99, 0, 0));
            }
            assert!(
                candidates.contains(&read_all(&db)),
                "{label}: the live database is not a state the model allows"
            );
        }
        Err(e) => assert_typed(&e, &format!("{label}: probe")),
    }
    drop(db);
    // Power cut: every file keeps only what its last successful fsync covered.
    synced.extend(plan.synced_lengths());
    for path in segment_files(&db_dir) {
        if let Some(&len) = synced.get(&path) {
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            if f.metadata().unwrap().len() > len {
                f.set_len(len).unwrap();
            }
        }
    }
    let db = Database::open(&db_dir, options(None))
        .unwrap_or_else(|e| panic!("{label}: reopen after the fault failed: {e}"));
    let got = read_all(&db);
    assert!(
        candidates.contains(&got),
        "{label}: after reopen the contents are not a state the model allows \
         ({} candidates; faults {:?})",
        candidates.len(),
        plan.fired()
    );
    if db.list_indexes("a").unwrap().iter().any(|_| true) {
        let via_index = db
            .count("a", &Query::filter(&json!({"v": {"$gte": 0}})).unwrap())
            .unwrap();
        let expected = got
            .iter()
            .filter(|((c, _), d)| c == "a" && d["v"].as_i64().unwrap() >= 0)
            .count() as u64;
        assert_eq!(
            via_index, expected,
            "{label}: index disagrees with the data"
        );
    }
    db.upsert("a", doc(100, 1, 1))
        .unwrap_or_else(|e| panic!("{label}: write after reopen failed: {e}"));
}

fn faults_for(op: FaultOp) -> Vec<Fault> {
    match op {
        FaultOp::Write => vec![
            Fault::Fail { errno: ENOSPC },
            Fault::ShortWrite { bytes: 11 },
        ],
        FaultOp::Sync => vec![Fault::Fail { errno: EIO }],
        FaultOp::SetLen | FaultOp::Create => vec![Fault::Fail { errno: ENOSPC }],
        FaultOp::Rename => vec![Fault::Fail { errno: EIO }],
    }
}

fn seeds() -> Vec<u64> {
    let n: u64 = std::env::var("AEROLITH_FAULT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    (0..n).map(|i| 0xFA17 + i).collect()
}

#[test]
fn every_fault_position_keeps_acknowledged_writes_and_atomicity() {
    let mut runs = 0;
    for seed in seeds() {
        let steps = workload(seed);
        let dry = FaultPlan::new();
        run(&steps, Arc::clone(&dry), &format!("seed {seed:#x} dry run"));
        assert!(dry.fired().is_empty());
        for op in FaultOp::ALL {
            for nth in 1..=dry.count(op) {
                for fault in faults_for(op) {
                    let plan = FaultPlan::at(op, nth, fault);
                    run(
                        &steps,
                        Arc::clone(&plan),
                        &format!("seed {seed:#x} {op:?} #{nth} {fault:?}"),
                    );
                    runs += 1;
                }
            }
        }
        // The workload reaches every area the suite means to cover.
        assert!(
            dry.count(FaultOp::Rename) >= 4,
            "roll-overs and compactions write manifests"
        );
        assert!(
            dry.count(FaultOp::Create) >= 6,
            "segments, temp files, backup files"
        );
    }
    eprintln!("{runs} fault runs");
    assert!(runs > 100, "only {runs} fault positions");
}

/// Regression: when one batch of a commit group failed to append, the
/// batches before it in the group were acknowledged although the group was
/// never fsynced. Several writers share groups; after a failed append and a
/// power cut, every acknowledged write must still be there. (A group is one
/// append: opening and creating the collection write 5 times, and each
/// thread's 12 upserts make at least 12 groups, so every `nth` below is
/// reached however the groups form.)
#[test]
fn a_failed_append_acknowledges_no_batch_of_its_group() {
    for nth in [6u64, 9, 12, 16] {
        // On a real disk an fsync takes long enough for groups to form.
        let root = tempfile::tempdir().unwrap();
        let plan = FaultPlan::at(FaultOp::Write, nth, Fault::ShortWrite { bytes: 5 });
        let mut opts = options(Some(Arc::clone(&plan)));
        opts.segment_size_bytes_max = 1 << 20;
        let dir = root.path().join("db");
        let db = Database::open(&dir, opts).unwrap();
        db.create_collection("a").unwrap();
        let acked: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|t| {
                    let db = db.clone();
                    s.spawn(move || {
                        let mut acked = Vec::new();
                        for i in 0..12 {
                            let id = format!("t{t}-{i}");
                            match db.upsert("a", json!({"_id": id, "v": i})) {
                                Ok(_) => acked.push(id),
                                Err(e) => assert_typed(&e, "group writer"),
                            }
                        }
                        acked
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(plan.fired().len(), 1, "the fault fired");
        drop(db);
        crate::cut_segments_to_synced(&plan);
        let db = Database::open(&dir, options(None)).unwrap();
        for id in &acked {
            assert!(
                db.get("a", id).unwrap().is_some(),
                "fault at write #{nth}: acknowledged {id} lost in a power cut"
            );
        }
    }
}

/// Regression: a roll-over whose new segment could not be created left the
/// id taken, so every later roll-over failed with "file exists" and the
/// database could never write again. Now the failed write reports the error
/// and the next ones go on (into a fresh id).
#[test]
fn a_failed_roll_over_keeps_the_database_writing() {
    let root = scratch();
    let dir = root.path().join("db");
    Database::open(&dir, options(None))
        .unwrap()
        .create_collection("a")
        .unwrap();
    // The new segment's header write: the first write of the first upsert
    // that rolls over (a dry run on a copy finds its number).
    let header_write = {
        let copy = scratch();
        let copy_dir = copy.path().join("db");
        std::fs::create_dir_all(&copy_dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), copy_dir.join(entry.file_name())).unwrap();
        }
        let dry = FaultPlan::new();
        let db = Database::open(&copy_dir, options(Some(Arc::clone(&dry)))).unwrap();
        let mut found = None;
        for i in 0..60u32 {
            let writes_before = dry.count(FaultOp::Write);
            db.upsert("a", doc(i, 1, 100)).unwrap();
            if dry.count(FaultOp::Create) > 0 {
                found = Some(writes_before + 1);
                break;
            }
        }
        found.expect("the workload rolls over")
    };
    let plan = FaultPlan::at(FaultOp::Write, header_write, Fault::Fail { errno: ENOSPC });
    let db = Database::open(&dir, options(Some(Arc::clone(&plan)))).unwrap();
    let mut acked = Vec::new();
    let mut failed = 0;
    for i in 0..60u32 {
        match db.upsert("a", doc(i, 1, 100)) {
            Ok(_) => acked.push(i),
            Err(e) => {
                assert_typed(&e, "roll-over");
                failed += 1;
            }
        }
    }
    assert_eq!(plan.fired().len(), 1);
    assert_eq!(failed, 1, "only the write that hit the fault fails");
    assert!(plan.fired()[0]
        .path
        .extension()
        .is_some_and(|e| e == "aero"));
    assert!(plan.count(FaultOp::Create) > 1, "later roll-overs happened");
    drop(db);
    let db = Database::open(&dir, options(None)).unwrap();
    for i in acked {
        assert!(db.get("a", &format!("d{i}")).unwrap().is_some());
    }
}

/// Faults while recovery cuts a torn tail (`set_len`, then its fsync): the
/// open fails with a typed error naming the segment and changes nothing
/// that matters; the next open without faults repairs the tail and serves
/// every document.
#[test]
fn a_fault_while_recovery_truncates_fails_the_open_cleanly() {
    for (op, fault) in [
        (FaultOp::SetLen, Fault::Fail { errno: EIO }),
        (FaultOp::Sync, Fault::Fail { errno: EIO }),
    ] {
        let root = scratch();
        let dir = root.path().join("db");
        {
            let db = Database::open(&dir, options(None)).unwrap();
            db.create_collection("a").unwrap();
            for i in 0..5 {
                db.upsert("a", doc(i, 1, 10)).unwrap();
            }
            db.close().unwrap();
        }
        let last = segment_files(&dir).into_iter().max().unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&last)
            .unwrap();
        std::io::Write::write_all(&mut f, &[0xAB; 7]).unwrap();
        drop(f);
        let plan = FaultPlan::at(op, 1, fault);
        match Database::open(&dir, options(Some(Arc::clone(&plan)))) {
            Err(Error::Io { path, .. }) => assert_eq!(path, last, "{op:?}"),
            other => panic!("{op:?}: expected an I/O error, got {other:?}"),
        }
        assert_eq!(plan.fired().len(), 1);
        let db = Database::open(&dir, options(None)).unwrap();
        if op == FaultOp::SetLen {
            // (After a failed fsync the cut itself was made already.)
            assert!(db.recovery_report().truncated.is_some());
        }
        for i in 0..5 {
            assert!(db.get("a", &format!("d{i}")).unwrap().is_some(), "{op:?}");
        }
    }
}
