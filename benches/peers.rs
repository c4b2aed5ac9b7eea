//! Side-by-side benchmarks: the same workloads, on the same seeded data, on
//! Aerolith, SQLite (rusqlite, bundled library, WAL), redb and sled, in one
//! run. Every criterion group holds the four engines side by side, so
//! `target/criterion/<group>/<engine>/` lines up for the chart script
//! (`scripts/bench_chart.py`) and the table in `BENCHMARKS.md`.
//!
//! Durability is matched per group: `*_fsync` groups make every commit
//! durable before it returns (Aerolith `Durability::Always`, SQLite
//! `synchronous=FULL`, redb `Durability::Immediate`, sled `flush()` after the
//! commit); `*_nosync` groups never wait for the disk (Aerolith
//! `Durability::Never`, SQLite `synchronous=OFF`, redb `Durability::None`,
//! sled without background flushing).
//!
//! Every engine receives and returns `serde_json::Value` documents, so the
//! peers pay for JSON (de)serialization just as Aerolith does; a user of a
//! key-value store storing JSON would pay the same.
//!
//! Environment:
//! - `AEROLITH_BENCH_DOCS` — documents in the loaded database (default 100,000).
//! - `AEROLITH_BENCH_QUICK=1` — a tiny data set and short measurements, for a
//!   CI smoke run: `AEROLITH_BENCH_QUICK=1 cargo bench --bench peers -- --test`.
//!
//! Database size on disk after the load is not something criterion measures:
//! it is printed as a table and written to `target/criterion/peer-sizes.json`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Documents in the loaded database unless `AEROLITH_BENCH_DOCS` says otherwise.
const DOCS_DEFAULT: u64 = 100_000;
/// Documents in the loaded database in quick (CI smoke) mode.
const DOCS_QUICK: u64 = 2_000;
/// Target encoded size of one document.
const DOC_SIZE_BYTES_TARGET: usize = 1024;
/// Distinct values of the indexed `category` field.
const CATEGORIES: u64 = 100;
/// Distinct values of the unindexed `region` field used by the full scan.
const REGIONS: u64 = 20;
/// Documents per transaction in the batched workloads and the load.
const BATCH_DOCS: u64 = 1_000;
/// Point reads timed right after each reopen in the cold-read group.
const COLD_READS_PER_REOPEN: usize = 100;
/// Random ids cycled through by the hot-read group.
const HOT_READ_IDS: usize = 10_000;
/// Seed of every random choice in this file.
const SEED: u64 = 0xAE20_1174;
/// The single collection / table / tree the documents live in.
const COLLECTION: &str = "docs";
/// The unindexed value the full scan filters on (1 in `REGIONS` documents).
const SCAN_REGION: &str = "region-07";

/// Whether a commit waits for the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sync {
    /// Durable before the commit returns (fsync per commit).
    Fsync,
    /// Never waits for the disk.
    None,
}

/// The engines compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Aerolith,
    Sqlite,
    Redb,
    Sled,
}

const ENGINES: [Engine; 4] = [Engine::Aerolith, Engine::Sqlite, Engine::Redb, Engine::Sled];

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Aerolith => "aerolith",
            Engine::Sqlite => "sqlite",
            Engine::Redb => "redb",
            Engine::Sled => "sled",
        }
    }

    /// Opens (creating if missing) this engine's store in `dir`.
    fn open(self, dir: &Path, sync: Sync) -> Box<dyn Store> {
        std::fs::create_dir_all(dir).expect("bench data directory can be created");
        match self {
            Engine::Aerolith => Box::new(AerolithStore::open(dir, sync)),
            Engine::Sqlite => Box::new(SqliteStore::open(dir, sync)),
            Engine::Redb => Box::new(RedbStore::open(dir, sync)),
            Engine::Sled => Box::new(SledStore::open(dir, sync)),
        }
    }
}

/// The workloads, as each engine's natural API would run them.
trait Store {
    /// Inserts one document in its own transaction.
    fn insert_one(&mut self, doc: Value);
    /// Inserts documents in one transaction.
    fn insert_batch(&mut self, docs: Vec<Value>);
    /// Reads one document by id.
    fn get(&self, id: &str) -> Option<Value>;
    /// Documents whose indexed `category` equals `category`.
    fn find_category(&self, category: &str) -> Vec<Value>;
    /// Documents whose unindexed `region` equals `region` (a full scan).
    fn scan_region(&self, region: &str) -> Vec<Value>;
    /// Makes everything durable and releases the store.
    fn close(self: Box<Self>);
}

// ---------------------------------------------------------------- Aerolith

struct AerolithStore {
    db: aerolith_core::Database,
}

impl AerolithStore {
    fn open(dir: &Path, sync: Sync) -> Self {
        use aerolith_core::{Database, Durability, Options};
        let durability = match sync {
            Sync::Fsync => Durability::Always,
            Sync::None => Durability::Never,
        };
        let db =
            Database::open(dir, Options::default().durability(durability)).expect("aerolith opens");
        if !db.list_collections().iter().any(|c| c == COLLECTION) {
            db.create_collection(COLLECTION)
                .expect("aerolith creates the collection");
            db.create_index(COLLECTION, "category", false)
                .expect("aerolith creates the index");
        }
        AerolithStore { db }
    }
}

impl Store for AerolithStore {
    fn insert_one(&mut self, doc: Value) {
        self.db.insert(COLLECTION, doc).expect("aerolith insert");
    }

    fn insert_batch(&mut self, docs: Vec<Value>) {
        let mut batch = aerolith_core::WriteBatch::new();
        for doc in docs {
            batch
                .insert(COLLECTION, doc)
                .expect("aerolith batch insert");
        }
        self.db.write(batch).expect("aerolith batch commit");
    }

    fn get(&self, id: &str) -> Option<Value> {
        self.db.get(COLLECTION, id).expect("aerolith get")
    }

    fn find_category(&self, category: &str) -> Vec<Value> {
        let query =
            aerolith_core::Query::filter(&json!({ "category": category })).expect("valid filter");
        self.db.find(COLLECTION, &query).expect("aerolith find")
    }

    fn scan_region(&self, region: &str) -> Vec<Value> {
        let query =
            aerolith_core::Query::filter(&json!({ "region": region })).expect("valid filter");
        self.db.find(COLLECTION, &query).expect("aerolith scan")
    }

    fn close(self: Box<Self>) {
        self.db.close().expect("aerolith close");
    }
}

// ------------------------------------------------------------------ SQLite

/// JSON as text with the id as primary key, WAL, and a JSON expression
/// index on `category`; otherwise SQLite's defaults (2 MiB page cache, no mmap).
struct SqliteStore {
    conn: rusqlite::Connection,
}

impl SqliteStore {
    fn open(dir: &Path, sync: Sync) -> Self {
        let conn = rusqlite::Connection::open(dir.join("docs.sqlite")).expect("sqlite opens");
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .expect("sqlite WAL mode");
        assert_eq!(mode.to_lowercase(), "wal");
        let synchronous = match sync {
            Sync::Fsync => "FULL",
            Sync::None => "OFF",
        };
        conn.pragma_update(None, "synchronous", synchronous)
            .expect("sqlite synchronous");
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS docs (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS docs_category ON docs (json_extract(doc, '$.category'));",
        )
        .expect("sqlite schema");
        SqliteStore { conn }
    }

    fn insert_in(conn: &rusqlite::Connection, doc: &Value) {
        let id = doc["_id"].as_str().expect("bench documents carry an id");
        let text = serde_json::to_string(doc).expect("documents serialize");
        conn.prepare_cached("INSERT INTO docs (id, doc) VALUES (?1, ?2)")
            .expect("sqlite prepare insert")
            .execute(rusqlite::params![id, text])
            .expect("sqlite insert");
    }

    fn docs_from(&self, sql: &str, param: &str) -> Vec<Value> {
        let mut stmt = self.conn.prepare_cached(sql).expect("sqlite prepare query");
        let mut rows = stmt.query(rusqlite::params![param]).expect("sqlite query");
        let mut docs = Vec::new();
        while let Some(row) = rows.next().expect("sqlite row") {
            let text = row
                .get_ref(0)
                .expect("doc column")
                .as_str()
                .expect("doc is text");
            docs.push(serde_json::from_str(text).expect("stored JSON parses"));
        }
        docs
    }
}

impl Store for SqliteStore {
    fn insert_one(&mut self, doc: Value) {
        SqliteStore::insert_in(&self.conn, &doc);
    }

    fn insert_batch(&mut self, docs: Vec<Value>) {
        let tx = self.conn.transaction().expect("sqlite begin");
        for doc in &docs {
            SqliteStore::insert_in(&tx, doc);
        }
        tx.commit().expect("sqlite commit");
    }

    fn get(&self, id: &str) -> Option<Value> {
        self.docs_from("SELECT doc FROM docs WHERE id = ?1", id)
            .pop()
    }

    fn find_category(&self, category: &str) -> Vec<Value> {
        self.docs_from(
            "SELECT doc FROM docs WHERE json_extract(doc, '$.category') = ?1",
            category,
        )
    }

    fn scan_region(&self, region: &str) -> Vec<Value> {
        self.docs_from(
            "SELECT doc FROM docs WHERE json_extract(doc, '$.region') = ?1",
            region,
        )
    }

    fn close(self: Box<Self>) {
        self.conn.close().map_err(|(_, e)| e).expect("sqlite close");
    }
}

// -------------------------------------------------------------------- redb

const REDB_DOCS: redb::TableDefinition<'_, &str, &[u8]> = redb::TableDefinition::new("docs");
/// The hand-maintained secondary index: category -> ids.
const REDB_BY_CATEGORY: redb::MultimapTableDefinition<'_, &str, &str> =
    redb::MultimapTableDefinition::new("docs_by_category");

struct RedbStore {
    db: redb::Database,
    durability: redb::Durability,
}

impl RedbStore {
    fn open(dir: &Path, sync: Sync) -> Self {
        let db = redb::Database::create(dir.join("docs.redb")).expect("redb opens");
        let durability = match sync {
            Sync::Fsync => redb::Durability::Immediate,
            Sync::None => redb::Durability::None,
        };
        let store = RedbStore { db, durability };
        store.write(|_, _| {});
        store
    }

    fn write(
        &self,
        fill: impl FnOnce(&mut redb::Table<'_, &str, &[u8]>, &mut redb::MultimapTable<'_, &str, &str>),
    ) {
        let mut tx = self.db.begin_write().expect("redb begin");
        tx.set_durability(self.durability).expect("redb durability");
        {
            let mut docs = tx.open_table(REDB_DOCS).expect("redb docs table");
            let mut by_category = tx
                .open_multimap_table(REDB_BY_CATEGORY)
                .expect("redb index table");
            fill(&mut docs, &mut by_category);
        }
        tx.commit().expect("redb commit");
    }

    fn insert_in(
        docs: &mut redb::Table<'_, &str, &[u8]>,
        index: &mut redb::MultimapTable<'_, &str, &str>,
        doc: &Value,
    ) {
        let id = doc["_id"].as_str().expect("bench documents carry an id");
        let category = doc["category"]
            .as_str()
            .expect("bench documents carry a category");
        let bytes = serde_json::to_vec(doc).expect("documents serialize");
        docs.insert(id, bytes.as_slice()).expect("redb insert");
        index.insert(category, id).expect("redb index insert");
    }
}

impl Store for RedbStore {
    fn insert_one(&mut self, doc: Value) {
        self.write(|docs, index| RedbStore::insert_in(docs, index, &doc));
    }

    fn insert_batch(&mut self, batch: Vec<Value>) {
        self.write(|docs, index| {
            for doc in &batch {
                RedbStore::insert_in(docs, index, doc);
            }
        });
    }

    fn get(&self, id: &str) -> Option<Value> {
        use redb::ReadableDatabase;
        let tx = self.db.begin_read().expect("redb read");
        let docs = tx.open_table(REDB_DOCS).expect("redb docs table");
        let found = docs.get(id).expect("redb get");
        found.map(|guard| serde_json::from_slice(guard.value()).expect("stored JSON parses"))
    }

    fn find_category(&self, category: &str) -> Vec<Value> {
        use redb::ReadableDatabase;
        let tx = self.db.begin_read().expect("redb read");
        let docs = tx.open_table(REDB_DOCS).expect("redb docs table");
        let index = tx
            .open_multimap_table(REDB_BY_CATEGORY)
            .expect("redb index table");
        let mut out = Vec::new();
        for id in index.get(category).expect("redb index get") {
            let id = id.expect("redb index entry");
            let guard = docs
                .get(id.value())
                .expect("redb get")
                .expect("index points at a document");
            out.push(serde_json::from_slice(guard.value()).expect("stored JSON parses"));
        }
        out
    }

    fn scan_region(&self, region: &str) -> Vec<Value> {
        use redb::{ReadableDatabase, ReadableTable};
        let tx = self.db.begin_read().expect("redb read");
        let docs = tx.open_table(REDB_DOCS).expect("redb docs table");
        let mut out = Vec::new();
        for entry in docs.iter().expect("redb iter") {
            let (_, value) = entry.expect("redb entry");
            let doc: Value = serde_json::from_slice(value.value()).expect("stored JSON parses");
            if doc["region"] == region {
                out.push(doc);
            }
        }
        out
    }

    fn close(self: Box<Self>) {
        // A final durable commit makes earlier `Durability::None` commits durable.
        let store = RedbStore {
            db: self.db,
            durability: redb::Durability::Immediate,
        };
        store.write(|_, _| {});
    }
}

// -------------------------------------------------------------------- sled

/// Documents in one tree, the hand-maintained index (`category \0 id`) in
/// another, both written in one sled transaction so they cannot disagree.
struct SledStore {
    db: sled::Db,
    docs: sled::Tree,
    by_category: sled::Tree,
    sync: Sync,
}

type SledTxResult = Result<(), sled::transaction::ConflictableTransactionError<()>>;

impl SledStore {
    fn open(dir: &Path, sync: Sync) -> Self {
        // No background flushing: durability comes only from the explicit
        // flush after each commit in the fsync groups.
        let db = sled::Config::new()
            .path(dir.join("sled"))
            .flush_every_ms(None)
            .open()
            .expect("sled opens");
        let docs = db.open_tree(COLLECTION).expect("sled docs tree");
        let by_category = db.open_tree("docs_by_category").expect("sled index tree");
        SledStore {
            db,
            docs,
            by_category,
            sync,
        }
    }

    fn index_key(category: &str, id: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(category.len() + 1 + id.len());
        key.extend_from_slice(category.as_bytes());
        key.push(0);
        key.extend_from_slice(id.as_bytes());
        key
    }

    fn encoded(doc: &Value) -> (String, Vec<u8>, Vec<u8>) {
        let id = doc["_id"].as_str().expect("bench documents carry an id");
        let category = doc["category"]
            .as_str()
            .expect("bench documents carry a category");
        let bytes = serde_json::to_vec(doc).expect("documents serialize");
        (id.to_owned(), SledStore::index_key(category, id), bytes)
    }

    fn commit(&self, encoded: &[(String, Vec<u8>, Vec<u8>)]) {
        use sled::Transactional;
        (&self.docs, &self.by_category)
            .transaction(|(docs, index)| -> SledTxResult {
                for (id, index_key, bytes) in encoded {
                    docs.insert(id.as_bytes(), bytes.as_slice())?;
                    index.insert(index_key.as_slice(), &[][..])?;
                }
                Ok(())
            })
            .expect("sled transaction");
        if self.sync == Sync::Fsync {
            self.db.flush().expect("sled flush");
        }
    }
}

impl Store for SledStore {
    fn insert_one(&mut self, doc: Value) {
        self.commit(&[SledStore::encoded(&doc)]);
    }

    fn insert_batch(&mut self, docs: Vec<Value>) {
        let encoded: Vec<_> = docs.iter().map(SledStore::encoded).collect();
        self.commit(&encoded);
    }

    fn get(&self, id: &str) -> Option<Value> {
        let found = self.docs.get(id).expect("sled get");
        found.map(|bytes| serde_json::from_slice(&bytes).expect("stored JSON parses"))
    }

    fn find_category(&self, category: &str) -> Vec<Value> {
        let mut prefix = category.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for entry in self.by_category.scan_prefix(&prefix) {
            let (key, _) = entry.expect("sled index entry");
            let id = &key[prefix.len()..];
            let bytes = self
                .docs
                .get(id)
                .expect("sled get")
                .expect("index points at a document");
            out.push(serde_json::from_slice(&bytes).expect("stored JSON parses"));
        }
        out
    }

    fn scan_region(&self, region: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for entry in self.docs.iter() {
            let (_, bytes) = entry.expect("sled entry");
            let doc: Value = serde_json::from_slice(&bytes).expect("stored JSON parses");
            if doc["region"] == region {
                out.push(doc);
            }
        }
        out
    }

    fn close(self: Box<Self>) {
        self.db.flush().expect("sled flush");
    }
}

// -------------------------------------------------------------------- data

fn doc_id(prefix: &str, i: u64) -> String {
    format!("{prefix}-{i:010}")
}

fn category(i: u64) -> String {
    format!("cat-{i:03}")
}

/// Document `i` of a series, about `DOC_SIZE_BYTES_TARGET` bytes of JSON;
/// the same `i` always gives the same document.
fn make_doc(prefix: &str, i: u64) -> Value {
    let mut rng = StdRng::seed_from_u64(SEED ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let tags: Vec<&str> = ["alpha", "beta", "gamma"]
        .into_iter()
        .take(rng.random_range(1..=3))
        .collect();
    let mut doc = json!({
        "_id": doc_id(prefix, i),
        "category": category(rng.random_range(0..CATEGORIES)),
        "region": format!("region-{:02}", rng.random_range(0..REGIONS)),
        "score": rng.random_range(0..10_000u32),
        "active": rng.random_bool(0.7),
        "name": format!("user {i}"),
        "email": format!("user{i}@example.com"),
        "tags": tags,
        "created_unix_ms": 1_700_000_000_000u64 + rng.random_range(0..31_536_000_000u64),
    });
    let encoded_bytes = serde_json::to_vec(&doc).expect("documents serialize").len();
    // `,"payload":""` adds 13 bytes around the padding.
    let padding = DOC_SIZE_BYTES_TARGET.saturating_sub(encoded_bytes + 13);
    let payload: String = (0..padding)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect();
    doc["payload"] = Value::String(payload);
    doc
}

fn load_batches(docs: u64) -> impl Iterator<Item = Vec<Value>> {
    (0..docs.div_ceil(BATCH_DOCS)).map(move |b| {
        let end = ((b + 1) * BATCH_DOCS).min(docs);
        (b * BATCH_DOCS..end).map(|i| make_doc("doc", i)).collect()
    })
}

/// Sum of the sizes of the files under `path`.
fn disk_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .expect("bench directory is readable")
        .map(|entry| disk_bytes(&entry.expect("directory entry").path()))
        .sum()
}

// ----------------------------------------------------------------- harness

struct Setup {
    docs: u64,
    quick: bool,
    root: tempfile::TempDir,
}

impl Setup {
    fn from_env() -> Setup {
        let quick = std::env::var("AEROLITH_BENCH_QUICK").is_ok_and(|v| v == "1");
        let docs = match std::env::var("AEROLITH_BENCH_DOCS") {
            Ok(v) => v
                .replace('_', "")
                .parse()
                .expect("AEROLITH_BENCH_DOCS is a number of documents"),
            Err(_) if quick => DOCS_QUICK,
            Err(_) => DOCS_DEFAULT,
        };
        let root = tempfile::Builder::new()
            .prefix("aerolith-peers-")
            .tempdir()
            .expect("temp dir");
        Setup { docs, quick, root }
    }

    fn loaded_dir(&self, engine: Engine) -> PathBuf {
        self.root.path().join(format!("{}-loaded", engine.name()))
    }

    fn fresh_dir(&self, engine: Engine, group: &str) -> PathBuf {
        self.root.path().join(format!("{}-{group}", engine.name()))
    }

    fn configure<'a>(
        &self,
        c: &'a mut Criterion,
        group: &str,
        heavy: bool,
    ) -> BenchmarkGroup<'a, criterion::measurement::WallTime> {
        let mut g = c.benchmark_group(group);
        g.sample_size(10);
        if self.quick {
            g.warm_up_time(Duration::from_millis(100))
                .measurement_time(Duration::from_millis(300));
        } else {
            g.warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(if heavy { 5 } else { 3 }));
        }
        if heavy {
            g.sampling_mode(SamplingMode::Flat);
        }
        g
    }
}

/// What the load phase measured for one engine.
struct LoadReport {
    engine: Engine,
    load: Duration,
    disk_bytes: u64,
}

/// Loads `setup.docs` documents into each engine (1,000 per transaction,
/// no fsync, one durable close), checks the engines agree, measures size.
fn load_all(setup: &Setup) -> Vec<LoadReport> {
    let mut reports = Vec::new();
    for engine in ENGINES {
        let dir = setup.loaded_dir(engine);
        let mut store = engine.open(&dir, Sync::None);
        let started = Instant::now();
        for batch in load_batches(setup.docs) {
            store.insert_batch(batch);
        }
        store.close();
        let load = started.elapsed();
        reports.push(LoadReport {
            engine,
            load,
            disk_bytes: disk_bytes(&dir),
        });
    }
    // The engines must agree before their timings mean anything.
    let mut expected: Option<(usize, usize, bool)> = None;
    for engine in ENGINES {
        let store = engine.open(&setup.loaded_dir(engine), Sync::None);
        let first = store.get(&doc_id("doc", 0)).expect("document 0 is present");
        let answer = (
            store.find_category(&category(7)).len(),
            store.scan_region(SCAN_REGION).len(),
            first == make_doc("doc", 0),
        );
        assert!(answer.2, "{} returned document 0 changed", engine.name());
        match expected {
            None => expected = Some(answer),
            Some(e) => assert_eq!(e, answer, "{} disagrees with aerolith", engine.name()),
        }
        store.close();
    }
    reports
}

fn report_sizes(setup: &Setup, reports: &[LoadReport]) {
    let logical_bytes: u64 = load_batches(setup.docs)
        .flatten()
        .map(|d| serde_json::to_vec(&d).expect("serializes").len() as u64)
        .sum();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "\nLoad of {} documents ({} bytes of JSON), 1,000 per transaction, no fsync:",
        setup.docs, logical_bytes
    );
    let _ = writeln!(
        table,
        "{:<10} {:>12} {:>14} {:>16} {:>12}",
        "engine", "load_s", "docs_per_s", "disk_bytes", "x_json"
    );
    let mut json_rows = Vec::new();
    for r in reports {
        let secs = r.load.as_secs_f64();
        let _ = writeln!(
            table,
            "{:<10} {:>12.2} {:>14.0} {:>16} {:>12.2}",
            r.engine.name(),
            secs,
            setup.docs as f64 / secs,
            r.disk_bytes,
            r.disk_bytes as f64 / logical_bytes as f64
        );
        json_rows.push(json!({
            "engine": r.engine.name(),
            "load_ms": r.load.as_millis() as u64,
            "disk_bytes": r.disk_bytes,
        }));
    }
    println!("{table}");
    // `--test` runs each benchmark once and records no estimates; keep the
    // sizes of the last real run beside them.
    if std::env::args().any(|arg| arg == "--test") {
        return;
    }
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let out_dir = Path::new(&target).join("criterion");
    std::fs::create_dir_all(&out_dir).expect("criterion output directory");
    let body = json!({ "docs": setup.docs, "json_bytes": logical_bytes, "engines": json_rows });
    std::fs::write(
        out_dir.join("peer-sizes.json"),
        serde_json::to_vec_pretty(&body).expect("serializes"),
    )
    .expect("peer-sizes.json is written");
}

fn bench_inserts(c: &mut Criterion, setup: &Setup) {
    for (sync, suffix) in [(Sync::Fsync, "fsync"), (Sync::None, "nosync")] {
        let group_name = format!("insert_single_{suffix}");
        let mut g = setup.configure(c, &group_name, sync == Sync::Fsync);
        g.throughput(Throughput::Elements(1));
        for engine in ENGINES {
            let dir = setup.fresh_dir(engine, &group_name);
            let mut store = engine.open(&dir, sync);
            let mut next = 0u64;
            g.bench_function(engine.name(), |b| {
                b.iter_batched(
                    || {
                        next += 1;
                        make_doc("single", next)
                    },
                    |doc| store.insert_one(doc),
                    BatchSize::SmallInput,
                )
            });
            store.close();
            std::fs::remove_dir_all(&dir).expect("bench directory is removed");
        }
        g.finish();

        let group_name = format!("insert_batch1000_{suffix}");
        let mut g = setup.configure(c, &group_name, true);
        g.throughput(Throughput::Elements(BATCH_DOCS));
        for engine in ENGINES {
            let dir = setup.fresh_dir(engine, &group_name);
            let mut store = engine.open(&dir, sync);
            let mut next = 0u64;
            g.bench_function(engine.name(), |b| {
                b.iter_batched(
                    || {
                        let first = next;
                        next += BATCH_DOCS;
                        (first..next)
                            .map(|i| make_doc("batch", i))
                            .collect::<Vec<_>>()
                    },
                    |docs| store.insert_batch(docs),
                    BatchSize::PerIteration,
                )
            });
            store.close();
            std::fs::remove_dir_all(&dir).expect("bench directory is removed");
        }
        g.finish();
    }
}

fn bench_reads(c: &mut Criterion, setup: &Setup) {
    let mut rng = StdRng::seed_from_u64(SEED);
    let hot_ids: Vec<String> = (0..HOT_READ_IDS)
        .map(|_| doc_id("doc", rng.random_range(0..setup.docs)))
        .collect();

    let mut g = setup.configure(c, "get_hot", false);
    g.throughput(Throughput::Elements(1));
    for engine in ENGINES {
        let store = engine.open(&setup.loaded_dir(engine), Sync::None);
        let mut ids = hot_ids.iter().cycle();
        g.bench_function(engine.name(), |b| {
            b.iter(|| {
                let id = ids.next().expect("cycle never ends");
                black_box(store.get(id)).expect("loaded id is present")
            })
        });
        store.close();
    }
    g.finish();

    // Each iteration: reopen (not timed), then time the first
    // COLD_READS_PER_REOPEN reads of random ids. The OS page cache stays
    // warm (the machine is shared; it is not dropped); the engine's own
    // caches and maps start empty.
    let mut g = setup.configure(c, "get_cold_after_reopen", true);
    g.throughput(Throughput::Elements(COLD_READS_PER_REOPEN as u64));
    for engine in ENGINES {
        let dir = setup.loaded_dir(engine);
        let mut round = 0u64;
        g.bench_function(engine.name(), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let store = engine.open(&dir, Sync::None);
                    round += 1;
                    let mut rng = StdRng::seed_from_u64(SEED ^ round);
                    let ids: Vec<String> = (0..COLD_READS_PER_REOPEN)
                        .map(|_| doc_id("doc", rng.random_range(0..setup.docs)))
                        .collect();
                    let started = Instant::now();
                    for id in &ids {
                        black_box(store.get(id)).expect("loaded id is present");
                    }
                    timed += started.elapsed();
                    store.close();
                }
                timed
            })
        });
    }
    g.finish();

    // Time to open the loaded database and answer the first read: Aerolith
    // replays its log to rebuild the in-memory id index, the peers do not.
    let mut g = setup.configure(c, "open_loaded", true);
    for engine in ENGINES {
        let dir = setup.loaded_dir(engine);
        let first_id = doc_id("doc", 0);
        g.bench_function(engine.name(), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let store = engine.open(&dir, Sync::None);
                    black_box(store.get(&first_id)).expect("loaded id is present");
                    timed += started.elapsed();
                    store.close();
                }
                timed
            })
        });
    }
    g.finish();

    let expected_per_category = setup.docs / CATEGORIES;
    let mut g = setup.configure(c, "query_indexed_eq", false);
    g.throughput(Throughput::Elements(expected_per_category));
    for engine in ENGINES {
        let store = engine.open(&setup.loaded_dir(engine), Sync::None);
        let mut next = 0u64;
        g.bench_function(engine.name(), |b| {
            b.iter(|| {
                next = (next + 1) % CATEGORIES;
                black_box(store.find_category(&category(next)))
            })
        });
        store.close();
    }
    g.finish();

    let mut g = setup.configure(c, "scan_filter_unindexed", true);
    g.throughput(Throughput::Elements(setup.docs));
    for engine in ENGINES {
        let store = engine.open(&setup.loaded_dir(engine), Sync::None);
        g.bench_function(engine.name(), |b| {
            b.iter(|| black_box(store.scan_region(SCAN_REGION)))
        });
        store.close();
    }
    g.finish();
}

fn main() {
    let setup = Setup::from_env();
    println!(
        "peer benchmarks: {} documents of ~{} bytes{}; data in {}",
        setup.docs,
        DOC_SIZE_BYTES_TARGET,
        if setup.quick { " (quick mode)" } else { "" },
        setup.root.path().display()
    );
    let reports = load_all(&setup);
    report_sizes(&setup, &reports);
    let mut c = Criterion::default().configure_from_args();
    bench_reads(&mut c, &setup);
    bench_inserts(&mut c, &setup);
    c.final_summary();
}
