//! `Database::write_pending`: writes queued for the committer thread, which
//! a caller awaits (or waits for) without holding a thread, mixed in the
//! same groups with blocking writers. Checked: outcomes match blocking
//! writes, the hook runs exactly once and before the outcome is seen (even
//! when the `PendingWrite` is dropped), failures reach every write of their
//! group, and acknowledged pending writes survive a power cut.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use aerolith_core::fault::{Fault, FaultOp, FaultPlan, EIO};
use aerolith_core::{Database, Durability, Error, OpOutcome, Options, WriteBatch};
use serde_json::json;

use crate::fresh;

/// Wakes the thread that polls (a minimal executor: no runtime needed).
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

fn insert(id: &str) -> WriteBatch {
    let mut batch = WriteBatch::new();
    batch.insert("c", json!({"_id": id, "v": 1})).unwrap();
    batch
}

#[test]
fn awaited_and_waited_writes_commit_like_blocking_ones() {
    let (_dir, db) = fresh();
    db.create_collection("c").unwrap();
    let awaited = block_on(db.write_pending(insert("a"))).unwrap();
    assert_eq!(awaited.documents_delta, 1);
    let waited = db.write_pending(insert("b")).wait().unwrap();
    assert_eq!(waited.documents_delta, 1);
    assert_eq!(db.get("c", "a").unwrap().unwrap()["v"], 1);
    assert_eq!(db.get("c", "b").unwrap().unwrap()["v"], 1);

    // A failing batch fails alone, with the engine's own error.
    let err = db.write_pending(insert("a")).wait().unwrap_err();
    assert!(matches!(err, Error::DocumentExists { .. }), "{err:?}");
    let mut delete = WriteBatch::new();
    delete.delete("c", "b").unwrap();
    let outcome = block_on(db.write_pending(delete)).unwrap();
    assert!(matches!(
        outcome.ops.as_slice(),
        [OpOutcome::Deleted { existed: true }]
    ));
    assert!(db.get("c", "b").unwrap().is_none());
}

#[test]
fn the_hook_runs_once_before_the_outcome_is_seen_even_if_dropped() {
    let (_dir, db) = fresh();
    db.create_collection("c").unwrap();
    let seen: Arc<Mutex<Vec<Result<i64, String>>>> = Arc::default();
    let hook_for = |seen: &Arc<Mutex<Vec<Result<i64, String>>>>| {
        let seen = Arc::clone(seen);
        move |r: &aerolith_core::Result<aerolith_core::CommitOutcome>| {
            seen.lock().unwrap().push(
                r.as_ref()
                    .map(|o| o.documents_delta)
                    .map_err(|e| e.to_string()),
            );
        }
    };
    // Awaited: the hook has run by the time the outcome is returned.
    db.write_pending_with(insert("x"), hook_for(&seen))
        .wait()
        .unwrap();
    assert_eq!(seen.lock().unwrap().as_slice(), &[Ok(1)]);
    // Dropped at once: the write still commits and the hook still runs.
    drop(db.write_pending_with(insert("y"), hook_for(&seen)));
    // A blocking write queued behind it completes after it.
    db.write(insert("z")).unwrap();
    assert!(db.get("c", "y").unwrap().is_some());
    // A failure reaches the hook as well.
    let err = db
        .write_pending_with(insert("x"), hook_for(&seen))
        .wait()
        .unwrap_err();
    assert!(matches!(err, Error::DocumentExists { .. }));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[1], Ok(1));
    assert!(seen[2].is_err());
}

#[test]
fn a_panicking_hook_does_not_stall_the_queue() {
    let (_dir, db) = fresh();
    db.create_collection("c").unwrap();
    let outcome = db
        .write_pending_with(insert("p"), |_| panic!("a hook's bug"))
        .wait();
    assert_eq!(outcome.unwrap().documents_delta, 1);
    db.write(insert("q")).unwrap();
    assert_eq!(
        db.write_pending(insert("r"))
            .wait()
            .unwrap()
            .documents_delta,
        1
    );
}

#[test]
fn after_close_a_pending_write_fails_at_once_and_runs_its_hook() {
    let (_dir, db) = fresh();
    db.create_collection("c").unwrap();
    db.close().unwrap();
    let hooked = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hooked);
    let err = db
        .write_pending_with(insert("a"), move |r| {
            assert!(matches!(r, Err(Error::Closed)));
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .wait()
        .unwrap_err();
    assert!(matches!(err, Error::Closed), "{err:?}");
    assert_eq!(hooked.load(Ordering::SeqCst), 1);
}

/// Many threads mix blocking and pending writes (awaited and waited) into
/// shared groups; every write is acknowledged exactly once and readable, and
/// each hook ran exactly once.
#[test]
fn blocking_and_pending_writers_share_groups() {
    let dir = tempfile::tempdir().unwrap();
    // fsync per commit, so groups form while a leader syncs.
    let db = Database::open(
        dir.path(),
        Options::default().durability(Durability::Always),
    )
    .unwrap();
    db.create_collection("c").unwrap();
    let hooks = Arc::new(AtomicUsize::new(0));
    const THREADS: usize = 6;
    const EACH: usize = 25;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (db, hooks) = (db.clone(), Arc::clone(&hooks));
            s.spawn(move || {
                for i in 0..EACH {
                    let id = format!("t{t}-{i}");
                    let outcome = match (t + i) % 3 {
                        0 => db.write(insert(&id)),
                        1 => {
                            let hooks = Arc::clone(&hooks);
                            block_on(db.write_pending_with(insert(&id), move |_| {
                                hooks.fetch_add(1, Ordering::SeqCst);
                            }))
                        }
                        _ => db.write_pending(insert(&id)).wait(),
                    };
                    assert_eq!(outcome.unwrap().documents_delta, 1, "{id}");
                }
            });
        }
    });
    let expected_hooks = (0..THREADS)
        .flat_map(|t| (0..EACH).map(move |i| (t + i) % 3))
        .filter(|k| *k == 1)
        .count();
    assert_eq!(hooks.load(Ordering::SeqCst), expected_hooks);
    assert_eq!(db.stats().unwrap().documents, (THREADS * EACH) as u64);
    for t in 0..THREADS {
        for i in 0..EACH {
            assert!(db.get("c", &format!("t{t}-{i}")).unwrap().is_some());
        }
    }
}

/// A failed fsync fails every pending write of its group and every later
/// one (the database is poisoned); after a power cut (files cut back to what
/// was synced) every acknowledged pending write is there.
#[test]
fn a_failed_fsync_is_never_acknowledged_to_a_pending_write() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("db");
    let plan = FaultPlan::new();
    let mut options = Options::default().durability(Durability::Always);
    options.fault_plan = Some(Arc::clone(&plan));
    let db = Database::open(&dir, options).unwrap();
    db.create_collection("c").unwrap();
    let wave = |from: usize, to: usize| -> Vec<_> {
        (from..to)
            .map(|i| {
                let id = format!("p{i}");
                (id.clone(), db.write_pending(insert(&id)))
            })
            .collect()
    };
    let mut acked = Vec::new();
    for (id, write) in wave(0, 10) {
        write.wait().unwrap();
        acked.push(id);
    }
    // The next fsync fails.
    plan.add(
        FaultOp::Sync,
        plan.count(FaultOp::Sync) + 1,
        Fault::Fail { errno: EIO },
    );
    let mut failed = 0;
    for (id, write) in wave(10, 40) {
        match write.wait() {
            Ok(_) => acked.push(id),
            Err(e) => {
                assert!(matches!(e, Error::Io { .. } | Error::Poisoned), "{e:?}");
                failed += 1;
            }
        }
    }
    assert_eq!(plan.fired().len(), 1, "the fault fired");
    assert!(failed > 0, "the failed group's writes are not acknowledged");
    assert!(matches!(
        db.write_pending(insert("late")).wait(),
        Err(Error::Poisoned)
    ));
    drop(db);
    crate::cut_segments_to_synced(&plan);
    let db = Database::open(&dir, crate::fast()).unwrap();
    for id in &acked {
        assert!(db.get("c", id).unwrap().is_some(), "acknowledged {id} lost");
    }
}

/// Dropping the last handle while writes are queued: each queued write
/// either committed (and is there on reopen) or fails with `Closed`; none
/// is left waiting forever.
#[test]
fn dropping_the_database_resolves_every_queued_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), crate::fast()).unwrap();
    db.create_collection("c").unwrap();
    let pending: Vec<_> = (0..50)
        .map(|i| {
            let id = format!("d{i}");
            (id.clone(), db.write_pending(insert(&id)))
        })
        .collect();
    drop(db);
    let mut committed = Vec::new();
    for (id, write) in pending {
        match write.wait() {
            Ok(_) => committed.push(id),
            Err(e) => assert!(matches!(e, Error::Closed), "{e:?}"),
        }
    }
    let db = Database::open(dir.path(), crate::fast()).unwrap();
    for id in &committed {
        assert!(db.get("c", id).unwrap().is_some(), "committed {id} lost");
    }
}

/// A panic on the commit path (injected on the group's fsync) fails every
/// writer of the group, blocking and pending, with `Poisoned` — none waits
/// forever for the lost leader — and every later write too; the committer
/// thread survives it, and a reopen recovers what was acknowledged.
#[test]
fn a_panic_while_committing_fails_the_group_instead_of_stalling_it() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("db");
    for panic_in_committer in [true, false] {
        let _ = std::fs::remove_dir_all(&dir);
        let plan = FaultPlan::new();
        let mut options = Options::default().durability(Durability::Always);
        options.fault_plan = Some(Arc::clone(&plan));
        let db = Database::open(&dir, options).unwrap();
        db.create_collection("c").unwrap();
        db.write(insert("before")).unwrap();
        plan.add(FaultOp::Sync, plan.count(FaultOp::Sync) + 1, Fault::Panic);
        let outcome = if panic_in_committer {
            db.write_pending(insert("doomed")).wait()
        } else {
            // The blocking writer leads and panics itself; its call still
            // returns (with the error) instead of unwinding into the caller.
            db.write(insert("doomed"))
        };
        assert!(matches!(outcome, Err(Error::Poisoned)), "{outcome:?}");
        assert!(matches!(
            db.write_pending(insert("after")).wait(),
            Err(Error::Poisoned)
        ));
        assert!(matches!(db.write(insert("after")), Err(Error::Poisoned)));
        drop(db);
        let db = Database::open(&dir, crate::fast()).unwrap();
        assert!(db.get("c", "before").unwrap().is_some());
        assert!(db.get("c", "after").unwrap().is_none());
    }
}

/// With no idle time the committer thread ends after every group it leads
/// and the next pending write starts another: each write still commits
/// exactly once, from one thread or from many.
#[test]
fn a_committer_that_ends_when_idle_is_started_again() {
    let dir = tempfile::tempdir().unwrap();
    let options = crate::fast().committer_idle(std::time::Duration::ZERO);
    let db = Database::open(dir.path(), options).unwrap();
    db.create_collection("c").unwrap();
    for i in 0..40 {
        let id = format!("seq{i}");
        assert_eq!(
            db.write_pending(insert(&id))
                .wait()
                .unwrap()
                .documents_delta,
            1
        );
    }
    std::thread::scope(|s| {
        for t in 0..4 {
            let db = db.clone();
            s.spawn(move || {
                for i in 0..25 {
                    let id = format!("t{t}-{i}");
                    let outcome = if i % 2 == 0 {
                        block_on(db.write_pending(insert(&id)))
                    } else {
                        db.write_pending(insert(&id)).wait()
                    };
                    assert_eq!(outcome.unwrap().documents_delta, 1, "{id}");
                }
            });
        }
    });
    assert_eq!(db.stats().unwrap().documents, 140);
}

/// Writes queued back to back share groups, and each reads what the ones
/// before it wrote although a group's records reach the segment only when
/// the group ends (one write per group): a patch, a replace or an upsert of
/// a document inserted earlier in the same group reads it back (a unique
/// index makes every write read the old version), a failing batch in the
/// middle of a group leaves no trace, and small segments roll over inside
/// groups. The outcomes are those of the writes one by one, whatever the
/// grouping, and a reopen replays the same state from the log.
#[test]
fn writes_in_one_group_read_what_the_earlier_ones_wrote() {
    const DOCS: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let mut options = crate::fast();
    options.segment_size_bytes_max = 4096;
    let db = Database::open(dir.path(), options.clone()).unwrap();
    db.create_collection("c").unwrap();
    db.create_index("c", "u", true).unwrap();
    let batch = |f: &dyn Fn(&mut WriteBatch) -> Result<(), Error>| {
        let mut b = WriteBatch::new();
        f(&mut b).unwrap();
        b
    };
    let mut queued = Vec::new();
    for k in 0..DOCS {
        let id = format!("d{k}");
        let steps = [
            batch(&|b| {
                b.insert("c", json!({"_id": id, "v": 0, "u": format!("a{k}")}))
                    .map(drop)
            }),
            batch(&|b| b.patch("c", &id, json!({"v": 1}))),
            batch(&|b| b.replace("c", &id, json!({"v": 2, "u": format!("b{k}")}))),
            // Fails: the id is taken.
            batch(&|b| b.insert("c", json!({"_id": id, "v": 9})).map(drop)),
            // Fails as a whole: its second document takes `u` of the first.
            batch(&|b| {
                b.patch("c", &id, json!({"v": 9}))?;
                b.insert("c", json!({"_id": format!("e{k}"), "u": format!("b{k}")}))
                    .map(drop)
            }),
            batch(&|b| {
                b.upsert("c", json!({"_id": id, "v": 4, "u": format!("c{k}")}))
                    .map(drop)
            }),
            batch(&|b| {
                if k % 2 == 1 {
                    b.delete("c", &id)
                } else {
                    b.patch("c", &id, json!({"w": k}))
                }
            }),
        ];
        queued.extend(steps.into_iter().map(|b| db.write_pending(b)));
    }
    for (i, pending) in queued.into_iter().enumerate() {
        let result = pending.wait();
        match i % 7 {
            3 => assert!(
                matches!(result, Err(Error::DocumentExists { .. })),
                "{i}: {result:?}"
            ),
            4 => assert!(
                matches!(result, Err(Error::UniqueViolation { .. })),
                "{i}: {result:?}"
            ),
            _ => assert!(result.is_ok(), "{i}: {result:?}"),
        }
    }
    let check = |db: &Database| {
        for k in 0..DOCS {
            let got = db.get("c", &format!("d{k}")).unwrap();
            let by_u = |u: String| {
                db.find(
                    "c",
                    &aerolith_core::Query::filter(&json!({"u": u})).unwrap(),
                )
                .unwrap()
                .len()
            };
            assert_eq!(by_u(format!("a{k}")) + by_u(format!("b{k}")), 0, "d{k}");
            assert!(db.get("c", &format!("e{k}")).unwrap().is_none());
            if k % 2 == 1 {
                assert!(got.is_none(), "d{k} was deleted");
                assert_eq!(by_u(format!("c{k}")), 0);
            } else {
                let expected =
                    json!({"_id": format!("d{k}"), "v": 4, "u": format!("c{k}"), "w": k});
                assert_eq!(got, Some(expected));
                assert_eq!(by_u(format!("c{k}")), 1);
            }
        }
        assert_eq!(db.stats().unwrap().documents, (DOCS / 2) as u64);
    };
    check(&db);
    assert!(
        crate::segment_files(dir.path()).len() > 2,
        "segments rolled over"
    );
    db.close().unwrap();
    drop(db);
    check(&Database::open(dir.path(), options).unwrap());
}

/// A group of large batches is written out in parts (past the most bytes a
/// group keeps unwritten) instead of all at its end; the batches after a
/// part read what the batches before it wrote from the segment, and the
/// outcome is the same as one by one.
#[test]
fn a_group_of_large_batches_reads_back_across_its_partial_writes() {
    const BATCHES: usize = 12;
    const DOCS: usize = 60;
    let (dir, db) = fresh();
    db.create_collection("c").unwrap();
    let pad = "p".repeat(4096);
    let queued: Vec<_> = (0..BATCHES)
        .map(|b| {
            let mut batch = WriteBatch::new();
            for d in 0..DOCS {
                batch
                    .insert("c", json!({"_id": format!("b{b}-{d}"), "pad": pad}))
                    .unwrap();
                if b > 0 {
                    // Reads the document the batch before wrote.
                    batch
                        .patch("c", &format!("b{}-{d}", b - 1), json!({"next": b}))
                        .unwrap();
                }
            }
            db.write_pending(batch)
        })
        .collect();
    for pending in queued {
        pending.wait().unwrap();
    }
    let check = |db: &Database| {
        for b in 0..BATCHES {
            for d in 0..DOCS {
                let doc = db.get("c", &format!("b{b}-{d}")).unwrap().unwrap();
                assert_eq!(doc["pad"].as_str().map(str::len), Some(4096));
                let next = (b + 1 < BATCHES).then_some(b + 1);
                assert_eq!(doc["next"].as_u64(), next.map(|n| n as u64), "b{b}-{d}");
            }
        }
    };
    check(&db);
    db.close().unwrap();
    drop(db);
    check(&Database::open(dir.path(), crate::fast()).unwrap());
}
