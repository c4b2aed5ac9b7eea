//! Crash test: a child process writes with `Durability::Always` from several
//! threads and prints each acknowledged id; the parent kills it with SIGKILL
//! after a random number of acknowledgements (while another thread compacts
//! in a loop), reopens, and checks that every acknowledged write is present
//! and intact. `AEROLITH_CRASH_CYCLES` raises
//! the number of cycles for a soak run (default 50). A second run uses
//! larger segments and documents, so kills land while the active segment's
//! zero-fill runs on its background thread.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use aerolith_core::{Database, Options};
use rand::{Rng, SeedableRng};
use serde_json::json;

const CHILD_ENV: &str = "AEROLITH_CRASH_CHILD_DIR";
/// The child's segment size and payload bytes per document.
const SHAPE_ENV: &str = "AEROLITH_CRASH_SHAPE";
const WRITER_THREADS: usize = 4;

/// The child's body: runs only when the parent re-executes this test binary.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let cycle: u64 = std::env::var("AEROLITH_CRASH_CYCLE")
        .unwrap()
        .parse()
        .unwrap();
    // Small segments and a thread compacting in a loop, so kills also land
    // in the middle of roll-overs and compactions; or (the shape) larger
    // segments and documents, so they land during background zero-fills.
    let (segment_bytes, payload_bytes): (u64, u64) = match std::env::var(SHAPE_ENV) {
        Ok(shape) => {
            let (a, b) = shape.split_once(',').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        }
        Err(_) => (16 * 1024, 50),
    };
    let db = Database::open(
        &dir,
        Options::default().segment_size_bytes_max(segment_bytes),
    )
    .unwrap();
    if !db.list_collections().contains(&"acked".to_string()) {
        db.create_collection("acked").unwrap();
    }
    let stdout = std::sync::Mutex::new(std::io::stdout());
    std::thread::scope(|s| {
        let compactor = db.clone();
        s.spawn(move || loop {
            compactor.compact().unwrap();
        });
        for t in 0..WRITER_THREADS {
            let db = db.clone();
            let stdout = &stdout;
            s.spawn(move || {
                for i in 0u64.. {
                    let id = format!("c{cycle}-t{t}-{i}");
                    let payload = "p".repeat((i % payload_bytes) as usize);
                    db.insert(
                        "acked",
                        json!({"_id": id, "cycle": cycle, "payload": payload}),
                    )
                    .unwrap();
                    use std::io::Write;
                    let mut out = stdout.lock().unwrap();
                    writeln!(out, "{id}").unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    sigkill_cycles(50, 120, None);
}

/// 1 MiB segments and documents up to 4 KiB: the zero-fill steps grow to
/// 512 KiB and run on the background thread while the writers append.
#[test]
fn acknowledged_writes_survive_sigkill_during_background_zero_fills() {
    sigkill_cycles(20, 600, Some("1048576,4096"));
}

/// `cycles` (or `AEROLITH_CRASH_CYCLES`) rounds of: start the child writer
/// (of the given shape), kill it after up to `acks_max` acknowledgements,
/// reopen and check every acknowledged write.
fn sigkill_cycles(cycles: u64, acks_max: usize, shape: Option<&str>) {
    let cycles: u64 = std::env::var("AEROLITH_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cycles);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xC0FFEE);
    let mut acked: Vec<String> = Vec::new();
    let mut truncations = 0;
    let mut orphans_removed = 0;
    for cycle in 0..cycles {
        let kill_after: usize = rng.random_range(1..acks_max);
        let mut command = Command::new(&exe);
        if let Some(shape) = shape {
            command.env(SHAPE_ENV, shape);
        }
        let mut child = command
            .args([
                "--exact",
                "crash::crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env("AEROLITH_CRASH_CYCLE", cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let reader = BufReader::new(child.stdout.take().unwrap());
        let mut seen = 0;
        for line in reader.lines() {
            let line = line.unwrap();
            if !line.starts_with('c') {
                continue; // the test harness's own output
            }
            acked.push(line);
            seen += 1;
            if seen >= kill_after {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let db = Database::open(dir.path(), Options::default()).unwrap();
        if db.recovery_report().truncated.is_some() {
            truncations += 1;
        }
        orphans_removed += db.recovery_report().orphan_files_removed.len();
        for id in &acked {
            let doc = db
                .get("acked", id)
                .unwrap()
                .unwrap_or_else(|| panic!("cycle {cycle}: acknowledged {id} lost"));
            assert_eq!(doc["_id"], id.as_str());
        }
        db.close().unwrap();
    }
    eprintln!(
        "crash test: {cycles} SIGKILL cycles, {} acknowledged writes checked, {truncations} torn tails repaired, \
         {orphans_removed} files of interrupted compactions removed",
        acked.len()
    );
}
