//! Crash test of the tenant lifecycle: a child process (this test binary,
//! re-executed) creates shared and dedicated tenants, writes documents to
//! them and deletes some, printing every acknowledgement; the parent kills it
//! with SIGKILL after a seeded number of lines, reopens the registry and
//! checks:
//!
//! - a live tenant has every acknowledged document and its owner key works;
//! - a tenant whose deletion was acknowledged is gone: no handle, no key, no
//!   dedicated directory or key salt, no collection left in the shared engine;
//! - an interrupted deletion (started, not acknowledged) is all or nothing:
//!   once its `deleting` mark is durable the next open finishes it (the tenant
//!   is then exactly as above), before that the tenant is fully intact.
//!
//! Half the cycles kill the child the moment it announces a deletion, so
//! the kill lands inside `delete_tenant`. `AEROLITH_CRASH_CYCLES` raises the
//! number of cycles (default 6).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use aerolith_core::{Database, Durability, ManualClock, MasterKey, Options};
use aerolith_tenancy::{
    IsolationMode, NewTenant, Principal, RecordingSink, Slug, Tenancy, TenancyOptions, TenantId,
    SHARED_KEY_CONTEXT,
};
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::fixtures::{test_plans, START_UNIX_MS};

const CHILD_ENV: &str = "AEROLITH_TENANCY_CRASH_DIR";
const CYCLE_ENV: &str = "AEROLITH_TENANCY_CRASH_CYCLE";
const COLLECTION: &str = "docs";

fn master() -> MasterKey {
    MasterKey::from_bytes([42; 32])
}

fn open(dir: &std::path::Path) -> Tenancy {
    let options = TenancyOptions {
        master_key: master(),
        clock: Arc::new(ManualClock::new(START_UNIX_MS)),
        usage_sink: Arc::new(RecordingSink::new()),
        plans: test_plans(),
        durability: Durability::Always,
    };
    Tenancy::open(dir, options).expect("open the registry")
}

/// The child's body: runs only when the parent re-executes this binary.
#[test]
fn tenant_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let cycle: u64 = std::env::var(CYCLE_ENV).unwrap().parse().unwrap();
    let tenancy = open(std::path::Path::new(&dir));
    let op = Principal::Operator;
    let mut live: Vec<TenantId> = tenancy
        .list_tenants(&op, None, 1000)
        .unwrap()
        .tenants
        .iter()
        .map(|t| t.id)
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7E4A17 ^ cycle);
    let mut out = std::io::stdout();
    for i in 0u64.. {
        let roll = rng.random_range(0..100);
        if live.len() < 2 || roll < 12 {
            let isolation = if rng.random_bool(0.5) {
                IsolationMode::Shared
            } else {
                IsolationMode::Dedicated
            };
            let created = tenancy
                .create_tenant(
                    &op,
                    NewTenant {
                        name: format!("crash {cycle} {i}"),
                        slug: Slug::new(&format!("c{cycle}n{i}")).unwrap(),
                        plan: "unlimited".to_owned(),
                        isolation,
                    },
                )
                .unwrap();
            let id = created.tenant.id;
            writeln!(
                out,
                "created {id} {isolation:?} {}",
                created.owner_key.secret.expose()
            )
            .unwrap();
            live.push(id);
        } else if roll < 20 {
            let id = live.swap_remove(rng.random_range(0..live.len()));
            writeln!(out, "deleting {id}").unwrap();
            out.flush().unwrap();
            tenancy.delete_tenant(&op, id).unwrap();
            writeln!(out, "deleted {id}").unwrap();
        } else {
            let id = live[rng.random_range(0..live.len())];
            let handle = tenancy.handle(&op, id).unwrap();
            if !handle
                .list_collections()
                .unwrap()
                .iter()
                .any(|c| c == COLLECTION)
            {
                handle.create_collection(COLLECTION).unwrap();
            }
            let doc_id = format!("c{cycle}-{i}");
            handle
                .insert(COLLECTION, json!({"_id": doc_id, "v": i}))
                .unwrap();
            writeln!(out, "ack {id} {doc_id} {i}").unwrap();
        }
        out.flush().unwrap();
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Fate {
    Live,
    Deleting,
    Deleted,
}

#[derive(Debug)]
struct Known {
    key: Option<String>,
    isolation: Option<IsolationMode>,
    docs: BTreeMap<String, u64>,
    fate: Fate,
}

fn check_gone(tenancy: &Tenancy, id: TenantId, known: &Known, context: &str) {
    let t = tenancy.get_tenant(&Principal::Operator, id).unwrap();
    assert!(t.is_deleted(), "{context}: tenant {id} not deleted");
    assert!(
        tenancy.handle(&Principal::Operator, id).is_err(),
        "{context}: deleted tenant {id} has a handle"
    );
    if let Some(key) = &known.key {
        assert!(
            tenancy.authenticate(key).is_err(),
            "{context}: deleted tenant {id}'s key still works"
        );
    }
    assert!(
        !tenancy.dedicated_dir_of(id).exists(),
        "{context}: deleted tenant {id}'s directory is left"
    );
    assert!(
        tenancy.dedicated_key_for_tests(id).is_none(),
        "{context}: deleted tenant {id}'s key salt is left"
    );
}

fn check_intact(tenancy: &Tenancy, id: TenantId, known: &Known, context: &str) {
    let t = tenancy.get_tenant(&Principal::Operator, id).unwrap();
    assert!(!t.is_deleted(), "{context}: live tenant {id} is deleted");
    if let Some(key) = &known.key {
        let principal = tenancy
            .authenticate(key)
            .unwrap_or_else(|e| panic!("{context}: tenant {id}'s owner key fails: {e}"));
        assert_eq!(principal.tenant(), Some(id));
    }
    let handle = tenancy.handle(&Principal::Operator, id).unwrap();
    for (doc_id, v) in &known.docs {
        let doc = handle
            .get(COLLECTION, doc_id)
            .unwrap_or_else(|e| panic!("{context}: tenant {id} read {doc_id}: {e}"))
            .unwrap_or_else(|| panic!("{context}: tenant {id} lost acknowledged {doc_id}"));
        assert_eq!(doc["v"], *v);
    }
}

#[test]
fn tenant_deletion_survives_sigkill() {
    let cycles: u64 = std::env::var("AEROLITH_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    // A SIGKILL leaves the page cache intact, so fsync buys nothing here:
    // use /dev/shm when present, where it is free.
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xDE1E7E);
    let mut known: BTreeMap<TenantId, Known> = BTreeMap::new();
    let (mut completed, mut intact, mut acked_deletes, mut acked_docs) = (0, 0, 0, 0);
    for cycle in 0..cycles {
        let kill_after: usize = rng.random_range(5..80);
        // Half the cycles kill the child as soon as it starts a deletion, so
        // the kill lands somewhere inside `delete_tenant`.
        let kill_in_delete = rng.random_bool(0.5);
        // How long after the announcement: the kill moment is the random
        // variable of this test (not a synchronisation), so a seeded pause
        // is what spreads kills over the steps of a deletion.
        let kill_delay_us: u64 = rng.random_range(0..4000);
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_delete::tenant_crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env(CYCLE_ENV, cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let reader = BufReader::new(child.stdout.take().unwrap());
        let mut seen = 0;
        for line in reader.lines() {
            let line = line.unwrap();
            let words: Vec<&str> = line.split(' ').collect();
            let id = |w: &str| TenantId::new(w.parse().unwrap());
            match words.as_slice() {
                ["created", t, iso, key] => {
                    let isolation = if *iso == "Shared" {
                        IsolationMode::Shared
                    } else {
                        IsolationMode::Dedicated
                    };
                    known.insert(
                        id(t),
                        Known {
                            key: Some((*key).to_owned()),
                            isolation: Some(isolation),
                            docs: BTreeMap::new(),
                            fate: Fate::Live,
                        },
                    );
                }
                ["ack", t, doc, v] => {
                    let entry = known.entry(id(t)).or_insert(Known {
                        key: None,
                        isolation: None,
                        docs: BTreeMap::new(),
                        fate: Fate::Live,
                    });
                    entry.docs.insert((*doc).to_owned(), v.parse().unwrap());
                    acked_docs += 1;
                }
                ["deleting", t] => {
                    if let Some(k) = known.get_mut(&id(t)) {
                        k.fate = Fate::Deleting;
                    }
                    if kill_in_delete {
                        std::thread::sleep(std::time::Duration::from_micros(kill_delay_us));
                        break;
                    }
                }
                ["deleted", t] => {
                    if let Some(k) = known.get_mut(&id(t)) {
                        k.fate = Fate::Deleted;
                    }
                    acked_deletes += 1;
                }
                _ => continue, // the test harness's own output
            }
            seen += 1;
            if seen >= kill_after {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();

        let context = format!("cycle {cycle}");
        let tenancy = open(dir.path());
        for (&id, k) in known.iter_mut() {
            match k.fate {
                Fate::Live => check_intact(&tenancy, id, k, &context),
                Fate::Deleted => check_gone(&tenancy, id, k, &context),
                Fate::Deleting => {
                    let t = tenancy.get_tenant(&Principal::Operator, id).unwrap();
                    if t.is_deleted() {
                        check_gone(&tenancy, id, k, &context);
                        k.fate = Fate::Deleted;
                        completed += 1;
                    } else {
                        check_intact(&tenancy, id, k, &context);
                        k.fate = Fate::Live;
                        intact += 1;
                    }
                }
            }
        }
        tenancy.close().unwrap();
        // Nothing of a deleted tenant is left in the shared engine.
        let shared = Database::open(
            dir.path().join("shared"),
            Options::default().master_key(master().derive(SHARED_KEY_CONTEXT, b"")),
        )
        .unwrap();
        let collections = shared.list_collections();
        for (id, k) in &known {
            if k.fate == Fate::Deleted && k.isolation != Some(IsolationMode::Dedicated) {
                let prefix = format!("t{id}.");
                assert!(
                    !collections.iter().any(|c| c.starts_with(&prefix)),
                    "{context}: deleted tenant {id} left {collections:?} in the shared engine"
                );
            }
        }
        shared.close().unwrap();
    }
    eprintln!(
        "tenant crash test: {cycles} SIGKILL cycles, {} tenants, {acked_docs} acknowledged \
         writes, {acked_deletes} acknowledged deletions, interrupted deletions: {completed} \
         completed on open, {intact} left intact",
        known.len()
    );
}
