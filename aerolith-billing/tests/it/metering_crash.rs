//! Crash test of the metering pipeline: a child process (this test binary,
//! re-executed) meters events from several threads into a `Meter` over an
//! `EngineLedger` (`Durability::Always`, 5 ms flush interval). Before
//! recording a block of events a thread prints `sent <n>`; after each
//! acknowledged `Meter::flush` the main thread prints `flushed <n>`, the
//! count of events recorded before that flush began. The parent SIGKILLs
//! the child after a seeded random number of acknowledged flushes, reopens
//! the ledger and checks: the total grew by no more than was sent and by no
//! less than was acknowledged flushed. `AEROLITH_CRASH_CYCLES` (the variable
//! the core crash test reads) raises the number of cycles for a soak run
//! (default 6, a few seconds).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use aerolith_billing::metering::{
    period_to_date, EngineLedger, Meter, MeterConfig, API_CALLS_READ, API_CALLS_WRITE, HOUR_MS,
};
use aerolith_core::{Database, Durability, ManualClock, Options};
use rand::{Rng, SeedableRng};

const CHILD_ENV: &str = "AEROLITH_METER_CRASH_CHILD_DIR";
const RECORDING_THREADS: u64 = 4;
const BLOCK_EVENTS: u64 = 200;
const TENANTS: [&str; 2] = ["17", "42"];
const METRICS: [&str; 2] = [API_CALLS_READ, API_CALLS_WRITE];
// 2026-11-23T10:00:00Z; the child's clock stands still, so every event
// stays inside the acceptance window.
const T0: i64 = 1_795_428_000_000;

fn open_db(dir: &str) -> Database {
    Database::open(dir, Options::default().durability(Durability::Always)).expect("opens")
}

/// The ledger's total over every tenant and metric the child uses.
fn ledger_total(ledger: &EngineLedger) -> u64 {
    TENANTS
        .iter()
        .map(|tenant| {
            period_to_date(ledger, tenant, &METRICS, T0, T0 + HOUR_MS)
                .expect("reads")
                .iter()
                .map(|(_, quantity)| quantity)
                .sum::<u64>()
        })
        .sum()
}

/// The child's body: runs only when the parent re-executes this binary.
#[test]
fn crash_child_meter() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let cycle: u64 = std::env::var("AEROLITH_METER_CRASH_CYCLE")
        .expect("cycle given")
        .parse()
        .expect("a number");
    let ledger = Arc::new(EngineLedger::open(open_db(&dir)).expect("ledger"));
    let config = MeterConfig {
        flush_interval_ms: 5,
        ..MeterConfig::default()
    };
    let meter = Meter::start(config, ledger, Arc::new(ManualClock::new(T0))).expect("starts");
    let recorded = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let stdout = std::sync::Mutex::new(std::io::stdout());
    let print = |line: String| {
        let mut out = stdout.lock().expect("stdout lock");
        writeln!(out, "{line}").expect("writes");
        out.flush().expect("flushes");
    };
    std::thread::scope(|s| {
        for t in 0..RECORDING_THREADS {
            let (meter, recorded, stop, print) = (&meter, &recorded, &stop, &print);
            s.spawn(move || {
                let mut next_id = 0u128;
                while !stop.load(Ordering::Relaxed) {
                    // Announced before any of the block is recorded: the
                    // parent's upper bound.
                    print(format!("sent {BLOCK_EVENTS}"));
                    for i in 0..BLOCK_EVENTS {
                        let tenant = TENANTS[(i % 2) as usize];
                        let metric = METRICS[((i / 2) % 2) as usize];
                        // Half the threads use idempotency ids (unique per
                        // process: cycle, thread, sequence).
                        let id = (t % 2 == 0).then(|| {
                            next_id += 1;
                            (u128::from(cycle) << 96) | (u128::from(t) << 64) | next_id
                        });
                        meter.record(tenant, metric, 1, T0, id).expect("records");
                        recorded.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
        for _ in 0..10_000 {
            let before_flush = recorded.load(Ordering::SeqCst);
            meter.flush().expect("flushes");
            print(format!("flushed {before_flush}"));
        }
        // Only reached if the parent never kills us.
        stop.store(true, Ordering::Relaxed);
    });
}

#[test]
fn ledger_totals_after_sigkill_lie_between_acknowledged_and_sent() {
    let cycles: u64 = std::env::var("AEROLITH_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let dir = tempfile::tempdir().expect("temp dir");
    let dir_text = dir.path().to_str().expect("UTF-8 temp path").to_owned();
    let exe = std::env::current_exe().expect("test binary");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x006D_6574_6572);
    let mut total_before = 0u64;
    let mut above_acknowledged = 0u64;
    for cycle in 0..cycles {
        let kill_after_flushes: u64 = rng.random_range(1..40);
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "metering_crash::crash_child_meter",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir_text)
            .env("AEROLITH_METER_CRASH_CYCLE", cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawns the child");
        let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let (mut sent, mut acknowledged, mut flushes) = (0u64, 0u64, 0u64);
        let mut killed = false;
        // Reads to the end of the pipe, also after the kill: blocks the
        // child announced between our last read and its death count as sent.
        for line in lines {
            let line = line.expect("reads the child's output");
            // The harness prints "test <name> ... " without a newline, so
            // the child's first line may follow it.
            let line = line.rsplit("... ").next().unwrap_or_default();
            if let Some(n) = line.strip_prefix("sent ") {
                sent += n.parse::<u64>().expect("a number");
            } else if let Some(n) = line.strip_prefix("flushed ") {
                acknowledged = acknowledged.max(n.parse().expect("a number"));
                flushes += 1;
                if flushes == kill_after_flushes {
                    child.kill().expect("SIGKILL");
                    killed = true;
                }
            }
        }
        assert!(
            killed,
            "cycle {cycle}: the child stopped before it was killed"
        );
        let status = child.wait().expect("reaped");
        assert!(!status.success(), "cycle {cycle}: the child was killed");
        let ledger = EngineLedger::open(open_db(&dir_text)).expect("reopens");
        let total = ledger_total(&ledger);
        assert!(
            total >= total_before + acknowledged,
            "cycle {cycle}: lost acknowledged usage: {total} < {total_before} + {acknowledged}"
        );
        assert!(
            total <= total_before + sent,
            "cycle {cycle}: counted more than was sent: {total} > {total_before} + {sent}"
        );
        above_acknowledged += total - total_before - acknowledged;
        total_before = total;
    }
    eprintln!(
        "metering crash test: {cycles} SIGKILL cycles, {total_before} events in the ledger, \
         {above_acknowledged} of them from drains after the last acknowledged flush"
    );
}
