//! Profiling driver for the engine's read path: loads the peer benchmark's
//! data shape into Aerolith only, then loops one workload so `perf record`
//! sees nothing else. Not a benchmark (see `benches/peers.rs` for numbers
//! that compare with the peers). `batch` loops the peer benchmark's
//! `insert_batch1000_nosync` instead: 1,000 new documents per transaction
//! into a fresh database, without fsync.
//!
//! `concurrent` runs `[docs]` threads (64 if not given), each inserting one
//! new document per commit with `Durability::Always`, as the server's load
//! test does over HTTP: the engine's group commit without the server.
//!
//! `cargo run --profile bench --example read_profile -- <get|query|scan|open|cold|replay|batch|concurrent|all> [docs] [seconds]`
//!
//! `open` opens as a user would (through the checkpoint a clean close
//! writes); `replay` deletes the checkpoint before each open, so every open
//! replays the whole log.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use aerolith_core::{Database, Durability, Options, Query, WriteBatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const SEED: u64 = 0xAE20_1174;
const CATEGORIES: u64 = 100;
const REGIONS: u64 = 20;
const DOC_SIZE_BYTES_TARGET: usize = 1024;

fn doc_id(i: u64) -> String {
    format!("doc-{i:010}")
}

fn category(i: u64) -> String {
    format!("cat-{i:03}")
}

fn make_doc(i: u64) -> Value {
    let mut rng = StdRng::seed_from_u64(SEED ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let tags: Vec<&str> = ["alpha", "beta", "gamma"]
        .into_iter()
        .take(rng.random_range(1..=3))
        .collect();
    let mut doc = json!({
        "_id": doc_id(i),
        "category": category(rng.random_range(0..CATEGORIES)),
        "region": format!("region-{:02}", rng.random_range(0..REGIONS)),
        "score": rng.random_range(0..10_000u32),
        "active": rng.random_bool(0.7),
        "name": format!("user {i}"),
        "email": format!("user{i}@example.com"),
        "tags": tags,
        "created_unix_ms": 1_700_000_000_000u64 + rng.random_range(0..31_536_000_000u64),
    });
    let encoded_bytes = serde_json::to_vec(&doc).expect("serializes").len();
    let padding = DOC_SIZE_BYTES_TARGET.saturating_sub(encoded_bytes + 13);
    let payload: String = (0..padding)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect();
    doc["payload"] = Value::String(payload);
    doc
}

fn open(dir: &Path) -> Database {
    Database::open(dir, Options::default().durability(Durability::Never)).expect("opens")
}

fn run(name: &str, seconds: u64, per_iter: u64, mut f: impl FnMut(u64)) {
    let budget = Duration::from_secs(seconds);
    let started = Instant::now();
    let mut iters = 0u64;
    while started.elapsed() < budget {
        f(iters);
        iters += 1;
    }
    let each = started.elapsed() / iters as u32;
    println!(
        "{name:<6} {iters:>9} iterations, {each:>12.2?} each, {:>10.2?} per document",
        each / per_iter as u32
    );
}

/// Batches of 1,000 new documents into a fresh database without fsync; the
/// documents are built outside the timed loop's engine calls, as in the
/// peer benchmark (there they are built untimed by criterion).
fn profile_batches(seconds: u64) {
    let dir = std::env::temp_dir().join(format!("aerolith-batch-profile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = open(&dir);
    db.create_collection("docs").expect("collection");
    db.create_index("docs", "category", false).expect("index");
    let budget = Duration::from_secs(seconds);
    let started = Instant::now();
    let mut engine_time = Duration::ZERO;
    let mut prepare_time = Duration::ZERO;
    let mut batches = 0u64;
    while started.elapsed() < budget {
        let docs: Vec<Value> = (batches * 1000..(batches + 1) * 1000)
            .map(make_doc)
            .collect();
        let t = Instant::now();
        let mut batch = WriteBatch::new();
        for doc in docs {
            batch.insert("docs", doc).expect("insert");
        }
        prepare_time += t.elapsed();
        db.write(batch).expect("commit");
        engine_time += t.elapsed();
        batches += 1;
    }
    println!(
        "batch  {batches:>9} batches of 1000, {:>12.2?} each in the engine \
         ({:.2?} adding to the batch, the rest committing)",
        engine_time / batches as u32,
        prepare_time / batches as u32
    );
    db.close().expect("close");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Times opening the database and reading one document, as the peer
/// benchmark's `open_loaded` does (closing is not timed). With
/// `full_replay`, the checkpoint is removed before each open.
fn run_opens(name: &str, seconds: u64, dir: &Path, full_replay: bool) {
    let budget = Duration::from_secs(seconds);
    let started = Instant::now();
    let mut timed = Duration::ZERO;
    let mut iters = 0u32;
    while started.elapsed() < budget {
        if full_replay {
            let _ = std::fs::remove_file(dir.join("CHECKPOINT"));
        }
        let opened = Instant::now();
        let db = open(dir);
        black_box(db.get("docs", &doc_id(0)).expect("get"));
        timed += opened.elapsed();
        assert_eq!(db.recovery_report().checkpoint_used, !full_replay);
        db.close().expect("close");
        iters += 1;
    }
    println!(
        "{name:<6} {iters:>9} iterations, {:>12.2?} each",
        timed / iters
    );
}

/// `threads` writers, each committing one new document at a time with
/// fsync, for `seconds`: commits per second and documents per fsync.
fn profile_concurrent_inserts(threads: u64, seconds: u64) {
    let dir = std::env::temp_dir().join(format!("aerolith-group-profile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db =
        Database::open(&dir, Options::default().durability(Durability::Always)).expect("opens");
    db.create_collection("docs").expect("collection");
    let docs: Vec<Value> = (0..1000).map(make_doc).collect();
    let budget = Duration::from_secs(seconds);
    let started = Instant::now();
    let commits: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (db, docs) = (&db, &docs);
                scope.spawn(move || {
                    let mut n = 0u64;
                    while started.elapsed() < budget {
                        let mut doc = docs[(n % 1000) as usize].clone();
                        doc["_id"] = Value::String(format!("t{t}-{n}"));
                        db.insert("docs", doc).expect("insert");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("writer")).sum()
    });
    let took = started.elapsed();
    println!(
        "concurrent {threads} writers: {commits} commits in {took:.2?}, {:.0} commits/s",
        commits as f64 / took.as_secs_f64()
    );
    db.close().expect("close");
    let _ = std::fs::remove_dir_all(&dir);
}

/// As the peer benchmark's `get_cold_after_reopen`: open (not timed), time
/// 100 reads of random ids, close.
fn run_cold_reads(seconds: u64, dir: &Path, docs: u64) {
    let budget = Duration::from_secs(seconds);
    let started = Instant::now();
    let mut timed = Duration::ZERO;
    let mut rounds = 0u64;
    while started.elapsed() < budget {
        let db = open(dir);
        let mut rng = StdRng::seed_from_u64(SEED ^ rounds);
        let ids: Vec<String> = (0..100)
            .map(|_| doc_id(rng.random_range(0..docs)))
            .collect();
        let t = Instant::now();
        for id in &ids {
            black_box(db.get("docs", id).expect("get"));
        }
        timed += t.elapsed();
        db.close().expect("close");
        rounds += 1;
    }
    println!(
        "cold   {rounds:>9} rounds, {:>12.2?} per 100 reads after reopen",
        timed / rounds as u32
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map_or("all", String::as_str).to_owned();
    let docs: u64 = args.get(2).map_or(100_000, |s| s.parse().expect("docs"));
    let seconds: u64 = args.get(3).map_or(5, |s| s.parse().expect("seconds"));
    if what == "batch" {
        profile_batches(seconds);
        return;
    }
    if what == "concurrent" {
        let threads = args.get(2).map_or(64, |s| s.parse().expect("threads"));
        profile_concurrent_inserts(threads, seconds);
        return;
    }
    let dir = std::env::temp_dir().join(format!("aerolith-read-profile-{docs}"));
    if !dir.join("MANIFEST").exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let db = open(&dir);
        db.create_collection("docs").expect("collection");
        db.create_index("docs", "category", false).expect("index");
        let started = Instant::now();
        for b in 0..docs.div_ceil(1000) {
            let mut batch = WriteBatch::new();
            for i in b * 1000..((b + 1) * 1000).min(docs) {
                batch.insert("docs", make_doc(i)).expect("insert");
            }
            db.write(batch).expect("commit");
        }
        db.close().expect("close");
        println!("loaded {docs} in {:.2?}", started.elapsed());
    }
    let all = what == "all";
    if all || what == "replay" {
        run_opens("replay", seconds, &dir, true);
    }
    if all || what == "open" {
        run_opens("open", seconds, &dir, false);
    }
    if all || what == "cold" {
        run_cold_reads(seconds, &dir, docs);
    }
    let db = open(&dir);
    let mut rng = StdRng::seed_from_u64(SEED);
    let ids: Vec<String> = (0..10_000)
        .map(|_| doc_id(rng.random_range(0..docs)))
        .collect();
    if all || what == "get" {
        run("get", seconds, 1, |i| {
            black_box(db.get("docs", &ids[i as usize % ids.len()]).expect("get"));
        });
    }
    if all || what == "query" {
        let queries: Vec<Query> = (0..CATEGORIES)
            .map(|c| Query::filter(&json!({ "category": category(c) })).expect("filter"))
            .collect();
        run("query", seconds, docs / CATEGORIES, |i| {
            black_box(
                db.find("docs", &queries[i as usize % queries.len()])
                    .expect("find"),
            );
        });
    }
    if all || what == "scan" {
        let q = Query::filter(&json!({ "region": "region-07" })).expect("filter");
        run("scan", seconds, docs, |_| {
            black_box(db.find("docs", &q).expect("scan"));
        });
    }
}
