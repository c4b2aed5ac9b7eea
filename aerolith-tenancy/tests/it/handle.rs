//! The data path through `TenantHandle`: the role x operation table, exact
//! quotas under 64 racing threads, usage events, naming rules and the query
//! time budget.

use std::sync::{Arc, Barrier};

use aerolith_core::Query;
use aerolith_tenancy::{
    allows, EngineError, IsolationMode, OperationKind, Permission, Principal, QuotaExceeded,
    QuotaKind, QuotaLimits, Role, TenancyError, TenantHandle, TenantUpdate,
};
use proptest::prelude::*;
use serde_json::json;

use crate::fixtures::{test_plans, Fixture};

const MODES: [IsolationMode; 2] = [IsolationMode::Shared, IsolationMode::Dedicated];

/// One handle operation and the permission it must need.
type Op = (
    &'static str,
    Permission,
    fn(&TenantHandle) -> Result<(), TenancyError>,
);

fn ops() -> Vec<Op> {
    vec![
        ("get", Permission::ReadDocuments, |h| {
            h.get("c", "a").map(drop)
        }),
        ("get_json_bytes", Permission::ReadDocuments, |h| {
            h.get_json_bytes("c", "a").map(drop)
        }),
        ("list_ids", Permission::ReadDocuments, |h| {
            h.list_ids("c", None, 10).map(drop)
        }),
        ("list_collections", Permission::ReadDocuments, |h| {
            h.list_collections().map(drop)
        }),
        ("collection_stats", Permission::ReadDocuments, |h| {
            h.collection_stats("c").map(drop)
        }),
        ("list_indexes", Permission::ReadDocuments, |h| {
            h.list_indexes("c").map(drop)
        }),
        ("export", Permission::ReadDocuments, |h| {
            h.export_jsonl("c", &mut Vec::new()).map(drop)
        }),
        ("usage", Permission::ReadUsage, |h| h.usage().map(drop)),
        ("find", Permission::Query, |h| {
            h.find("c", &Query::default()).map(drop)
        }),
        ("count", Permission::Query, |h| {
            h.count("c", &Query::default()).map(drop)
        }),
        ("explain", Permission::Query, |h| {
            h.explain("c", &Query::default()).map(drop)
        }),
        ("insert", Permission::WriteDocuments, |h| {
            h.insert("c", json!({"v": 1})).map(drop)
        }),
        ("insert_many", Permission::WriteDocuments, |h| {
            h.insert_many("c", vec![json!({"v": 1})]).map(drop)
        }),
        ("replace", Permission::WriteDocuments, |h| {
            h.replace("c", "a", json!({"v": 2}))
        }),
        ("patch", Permission::WriteDocuments, |h| {
            h.patch("c", "a", json!({"w": 3})).map(drop)
        }),
        ("delete", Permission::WriteDocuments, |h| {
            h.delete("c", "zz").map(drop)
        }),
        ("insert_pending", Permission::WriteDocuments, |h| {
            h.insert_pending("c", json!({"v": 1}))?.wait().map(drop)
        }),
        ("insert_many_pending", Permission::WriteDocuments, |h| {
            h.insert_many_pending("c", vec![json!({"v": 1})])?
                .wait()
                .map(drop)
        }),
        ("replace_pending", Permission::WriteDocuments, |h| {
            h.replace_pending("c", "a", json!({"v": 2}))?.wait()
        }),
        ("patch_pending", Permission::WriteDocuments, |h| {
            h.patch_pending("c", "a", json!({"w": 3}))?.wait().map(drop)
        }),
        ("delete_pending", Permission::WriteDocuments, |h| {
            h.delete_pending("c", "zz")?.wait().map(drop)
        }),
        ("create_collection", Permission::ManageCollections, |h| {
            h.create_collection("d")
        }),
        ("drop_collection", Permission::ManageCollections, |h| {
            h.drop_collection("e")
        }),
        ("create_index", Permission::ManageIndexes, |h| {
            h.create_index("c", "v", false)
        }),
        ("drop_index", Permission::ManageIndexes, |h| {
            h.drop_index("c", "w")
        }),
    ]
}

#[test]
fn every_role_can_do_exactly_what_the_table_allows_through_the_handle() {
    let fx = Fixture::new();
    let (tenant, key) = fx.create("acme", "unlimited", IsolationMode::Shared);
    let owner = fx.tenancy.authenticate(&key).expect("auth");
    for role in Role::ALL {
        for (name, permission, op) in ops() {
            // Fresh state for every attempt, prepared by the owner.
            let setup = fx.tenancy.handle(&owner, tenant.id).expect("handle");
            for collection in setup.list_collections().expect("list") {
                setup.drop_collection(&collection).expect("drop");
            }
            setup.create_collection("c").expect("c");
            setup.create_collection("e").expect("e");
            setup.insert("c", json!({"_id": "a", "v": 0})).expect("a");
            setup.create_index("c", "w", false).expect("index");
            let created = fx
                .tenancy
                .create_api_key(&owner, tenant.id, role, None)
                .expect("key");
            let principal = fx
                .tenancy
                .authenticate(created.secret.expose())
                .expect("auth");
            let handle = fx.tenancy.handle(&principal, tenant.id).expect("handle");
            let result = op(&handle);
            if allows(role, permission) {
                assert!(result.is_ok(), "{role} {name}: {result:?}");
            } else {
                match result {
                    Err(TenancyError::Forbidden(forbidden)) => {
                        assert_eq!(forbidden.permission, permission, "{role} {name}")
                    }
                    other => panic!("{role} {name}: expected Forbidden, got {other:?}"),
                }
            }
        }
    }
}

#[test]
fn key_management_and_tenant_deletion_follow_the_roles() {
    let fx = Fixture::new();
    let (tenant, key) = fx.create("acme", "unlimited", IsolationMode::Shared);
    let owner = fx.tenancy.authenticate(&key).expect("auth");
    let principal_with = |role| {
        let created = fx
            .tenancy
            .create_api_key(&owner, tenant.id, role, None)
            .expect("key");
        fx.tenancy
            .authenticate(created.secret.expose())
            .expect("auth")
    };
    let (admin, writer, reader) = (
        principal_with(Role::Admin),
        principal_with(Role::Writer),
        principal_with(Role::Reader),
    );
    for p in [&writer, &reader] {
        assert!(matches!(
            fx.tenancy.create_api_key(p, tenant.id, Role::Reader, None),
            Err(TenancyError::Forbidden(_))
        ));
        assert!(matches!(
            fx.tenancy.list_api_keys(p, tenant.id),
            Err(TenancyError::Forbidden(_))
        ));
    }
    // An admin manages keys but cannot mint an owner.
    assert!(fx
        .tenancy
        .create_api_key(&admin, tenant.id, Role::Writer, None)
        .is_ok());
    assert!(matches!(
        fx.tenancy
            .create_api_key(&admin, tenant.id, Role::Owner, None),
        Err(TenancyError::Forbidden(_))
    ));
    let Principal::Tenant {
        key_id: owner_key_id,
        ..
    } = owner
    else {
        unreachable!()
    };
    // ... nor demote the owner's key.
    assert!(matches!(
        fx.tenancy
            .set_api_key_role(&admin, tenant.id, owner_key_id, Role::Reader),
        Err(TenancyError::Forbidden(_))
    ));
    let plan = TenantUpdate {
        plan: Some("starter".into()),
        ..TenantUpdate::default()
    };
    for p in [&admin, &writer, &reader] {
        assert!(matches!(
            fx.tenancy.update_tenant(p, tenant.id, plan.clone()),
            Err(TenancyError::Forbidden(_))
        ));
        assert!(matches!(
            fx.tenancy.delete_tenant(p, tenant.id),
            Err(TenancyError::Forbidden(_))
        ));
    }
    // Principals of another tenant are refused everything.
    let (other, other_key) = fx.create("other", "unlimited", IsolationMode::Dedicated);
    let stranger = fx.tenancy.authenticate(&other_key).expect("auth");
    assert!(matches!(
        fx.tenancy.handle(&stranger, tenant.id),
        Err(TenancyError::Forbidden(_))
    ));
    assert!(matches!(
        fx.tenancy.delete_tenant(&stranger, tenant.id),
        Err(TenancyError::Forbidden(_))
    ));
    assert!(matches!(
        fx.tenancy.list_api_keys(&stranger, tenant.id),
        Err(TenancyError::Forbidden(_))
    ));
    assert!(fx.tenancy.handle(&stranger, other.id).is_ok());
    // Owner-only operations succeed for the owner.
    fx.tenancy
        .update_tenant(&owner, tenant.id, plan)
        .expect("owner plan change");
    let keys = fx.tenancy.list_api_keys(&owner, tenant.id).expect("list");
    assert_eq!(keys.len(), 5);
    assert!(keys.iter().all(|k| k.display_prefix.len() < 20));
    fx.tenancy
        .delete_tenant(&owner, tenant.id)
        .expect("owner deletes");
}

fn quota_fixture(limits: QuotaLimits) -> Fixture {
    let mut plans = test_plans();
    plans.insert("limited".to_owned(), limits);
    Fixture::with_plans(plans)
}

#[test]
fn sixty_four_threads_never_exceed_the_documents_quota() {
    for mode in MODES {
        let fx = quota_fixture(QuotaLimits {
            documents_max: Some(100),
            ..QuotaLimits::UNLIMITED
        });
        let (tenant, key) = fx.create("race", "limited", mode);
        let owner = fx.tenancy.authenticate(&key).expect("auth");
        let handle = fx.tenancy.handle(&owner, tenant.id).expect("handle");
        handle.create_collection("c").expect("create");
        let barrier = Arc::new(Barrier::new(64));
        let threads: Vec<_> = (0..64)
            .map(|t| {
                let handle = handle.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut ok = 0u64;
                    for i in 0..4 {
                        // Mix single inserts and batches of two.
                        let result = if i % 2 == 0 {
                            handle.insert("c", json!({"t": t, "i": i})).map(|_| 1)
                        } else {
                            handle
                                .insert_many("c", vec![json!({"t": t}), json!({"t": t})])
                                .map(|_| 2)
                        };
                        match result {
                            Ok(n) => ok += n,
                            Err(TenancyError::QuotaExceeded(QuotaExceeded {
                                limit: QuotaKind::Documents,
                                limit_value: 100,
                                ..
                            })) => {}
                            Err(other) => panic!("unexpected {other:?}"),
                        }
                    }
                    ok
                })
            })
            .collect();
        let inserted: u64 = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        let usage = handle.usage().expect("usage");
        assert_eq!(usage.documents, inserted);
        assert!(inserted <= 100, "{mode:?}: {inserted} documents stored");
        assert!(
            inserted >= 99,
            "{mode:?}: only {inserted} stored; quota under-used"
        );
        assert_eq!(handle.quota_in_use(), usage);
    }
}

#[test]
fn sixty_four_threads_never_exceed_the_storage_quota_by_one_byte() {
    for mode in MODES {
        const LIMIT_BYTES: u64 = 20_000;
        let fx = quota_fixture(QuotaLimits {
            storage_bytes_max: Some(LIMIT_BYTES),
            ..QuotaLimits::UNLIMITED
        });
        let (tenant, key) = fx.create("race", "limited", mode);
        let owner = fx.tenancy.authenticate(&key).expect("auth");
        let handle = fx.tenancy.handle(&owner, tenant.id).expect("handle");
        handle.create_collection("c").expect("create");
        let barrier = Arc::new(Barrier::new(64));
        let threads: Vec<_> = (0..64)
            .map(|t| {
                let handle = handle.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    for i in 0..30u64 {
                        let id = format!("d{t}-{i}");
                        let padding = "x".repeat(((t * 7 + i as usize * 13) % 90) + 1);
                        let result = match i % 3 {
                            0 | 1 => handle
                                .insert("c", json!({"_id": id, "p": padding}))
                                .map(drop),
                            _ => handle
                                .patch("c", &format!("d{t}-0"), json!({"q": padding}))
                                .map(drop),
                        };
                        match result {
                            Ok(()) => {}
                            Err(TenancyError::QuotaExceeded(QuotaExceeded {
                                limit: QuotaKind::StorageBytes,
                                ..
                            })) => {}
                            Err(TenancyError::Engine(EngineError::DocumentNotFound { .. })) => {}
                            Err(other) => panic!("unexpected {other:?}"),
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread");
        }
        let usage = handle.usage().expect("usage");
        assert!(
            usage.storage_bytes <= LIMIT_BYTES,
            "{mode:?}: {} bytes stored",
            usage.storage_bytes
        );
        assert!(
            usage.storage_bytes > LIMIT_BYTES - 200,
            "quota under-used: {usage:?}"
        );
        assert_eq!(handle.quota_in_use(), usage);
        // Deleting frees room, exactly.
        let stats_before = handle.collection_stats("c").expect("stats");
        let first = handle.list_ids("c", None, 1).expect("ids");
        assert!(handle.delete("c", &first[0]).expect("delete"));
        let after = handle.usage().expect("usage");
        assert_eq!(after.documents, stats_before.documents - 1);
        assert_eq!(handle.quota_in_use(), after);
    }
}

#[test]
fn collections_quota_is_exact_and_dropping_frees_it() {
    let fx = quota_fixture(QuotaLimits {
        collections_max: Some(2),
        ..QuotaLimits::UNLIMITED
    });
    let (tenant, key) = fx.create("acme", "limited", IsolationMode::Shared);
    let owner = fx.tenancy.authenticate(&key).expect("auth");
    let handle = fx.tenancy.handle(&owner, tenant.id).expect("handle");
    handle.create_collection("a").expect("a");
    handle.create_collection("b").expect("b");
    match handle.create_collection("c") {
        Err(TenancyError::QuotaExceeded(QuotaExceeded {
            limit: QuotaKind::Collections,
            limit_value: 2,
            current: 2,
            requested: 1,
            ..
        })) => {}
        other => panic!("expected collections quota, got {other:?}"),
    }
    // A failed create (already exists) releases its reservation.
    assert!(matches!(
        handle.create_collection("a"),
        Err(TenancyError::QuotaExceeded(_))
    ));
    handle.drop_collection("b").expect("drop");
    assert!(matches!(
        handle.create_collection("a"),
        Err(TenancyError::Engine(EngineError::CollectionExists { collection })) if collection == "a"
    ));
    handle.create_collection("c").expect("room again");
    assert_eq!(handle.quota_in_use().collections, 2);
}

#[test]
fn every_operation_reports_one_usage_event_with_its_bytes() {
    let fx = Fixture::new();
    let (tenant, key) = fx.create("acme", "unlimited", IsolationMode::Dedicated);
    let owner = fx.tenancy.authenticate(&key).expect("auth");
    let handle = fx.tenancy.handle(&owner, tenant.id).expect("handle");
    fx.sink.take();
    handle.create_collection("c").expect("create");
    let doc = json!({"_id": "a", "name": "Ada"});
    let doc_bytes = serde_json::to_vec(&doc).expect("json").len() as u64;
    handle.insert("c", doc.clone()).expect("insert");
    handle.get("c", "a").expect("get");
    handle.find("c", &Query::default()).expect("find");
    // A refused call reports nothing.
    assert!(handle.get("no-such", "a").is_err());
    let events = fx.sink.take();
    let summary: Vec<_> = events
        .iter()
        .map(|e| (e.tenant, e.kind, e.bytes_in, e.bytes_out))
        .collect();
    assert_eq!(
        summary,
        vec![
            (tenant.id, OperationKind::Admin, 0, 0),
            (tenant.id, OperationKind::Write, doc_bytes, 0),
            (tenant.id, OperationKind::Read, 0, doc_bytes),
            (tenant.id, OperationKind::Query, 0, doc_bytes),
        ]
    );
    assert!(events
        .iter()
        .all(|e| e.at_unix_ms == crate::fixtures::START_UNIX_MS));
}

#[test]
fn collection_names_that_could_escape_are_refused_with_invalid_collection_name() {
    for mode in MODES {
        let fx = Fixture::new();
        let (tenant, key) = fx.create("acme", "unlimited", mode);
        let owner = fx.tenancy.authenticate(&key).expect("auth");
        let handle = fx.tenancy.handle(&owner, tenant.id).expect("handle");
        let long = "x".repeat(65);
        for bad in [
            "",
            "..",
            ".",
            "a/b",
            "../t1.x",
            "t1.x",
            "a\0b",
            "a.b",
            "é",
            long.as_str(),
        ] {
            for result in [
                handle.create_collection(bad),
                handle.get(bad, "a").map(drop),
                handle.insert(bad, json!({})).map(drop),
                handle.find(bad, &Query::default()).map(drop),
            ] {
                assert!(
                    matches!(
                        result,
                        Err(TenancyError::Engine(
                            EngineError::InvalidCollectionName { .. }
                        ))
                    ),
                    "{bad:?}: {result:?}"
                );
            }
        }
        handle
            .create_collection(&"x".repeat(64))
            .expect("64 bytes is allowed");
        assert!(matches!(
            handle.list_ids("c", None, 0),
            Err(TenancyError::InvalidPageSize {
                requested: 0,
                max: 1000
            })
        ));
    }
}

/// A clock whose monotonic time moves 1 ms every time it is read, so a
/// query's elapsed time grows with the work it does, deterministically.
#[derive(Debug, Default)]
struct TickingClock {
    ticks_ms: std::sync::atomic::AtomicU64,
}

impl aerolith_core::Clock for TickingClock {
    fn now_unix_ms(&self) -> i64 {
        crate::fixtures::START_UNIX_MS
    }

    fn monotonic(&self) -> std::time::Duration {
        let ms = self
            .ticks_ms
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::time::Duration::from_millis(ms)
    }
}

#[test]
fn the_plan_query_duration_becomes_the_query_time_budget() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut plans = test_plans();
    plans.insert(
        "limited".to_owned(),
        QuotaLimits {
            query_duration_ms_max: Some(5),
            ..QuotaLimits::UNLIMITED
        },
    );
    let tenancy = aerolith_tenancy::Tenancy::open(
        dir.path(),
        aerolith_tenancy::TenancyOptions {
            clock: Arc::new(TickingClock::default()),
            plans,
            durability: aerolith_core::Durability::Never,
            ..aerolith_tenancy::TenancyOptions::new(aerolith_core::MasterKey::from_bytes([1; 32]))
        },
    )
    .expect("open");
    let created = tenancy
        .create_tenant(
            &Principal::Operator,
            aerolith_tenancy::NewTenant {
                name: "Acme".into(),
                slug: aerolith_tenancy::Slug::new("acme").expect("slug"),
                plan: "unlimited".into(),
                isolation: IsolationMode::Shared,
            },
        )
        .expect("create");
    let tenant = created.tenant.id;
    let owner = tenancy
        .authenticate(created.owner_key.secret.expose())
        .expect("auth");
    let handle = tenancy.handle(&owner, tenant).expect("handle");
    handle.create_collection("c").expect("create");
    let docs = (0..2000).map(|i| json!({"i": i})).collect();
    handle.insert_many("c", docs).expect("insert");
    let query = Query::filter(&json!({"i": {"$gte": 1000}})).expect("query");
    assert_eq!(
        handle.count("c", &query).expect("no budget on this plan"),
        1000
    );
    let set_plan = |plan: &str| {
        tenancy
            .update_tenant(
                &Principal::Operator,
                tenant,
                TenantUpdate {
                    plan: Some(plan.into()),
                    ..TenantUpdate::default()
                },
            )
            .expect("plan")
    };
    set_plan("limited");
    match handle.find("c", &query) {
        Err(TenancyError::Engine(EngineError::Timeout { budget_ms: 5, .. })) => {}
        other => panic!("expected the plan's budget to stop the scan, got {other:?}"),
    }
    // A caller's own smaller budget is kept; a larger one is capped.
    let generous = query
        .clone()
        .time_budget(std::time::Duration::from_secs(60));
    assert!(matches!(
        handle.count("c", &generous),
        Err(TenancyError::Engine(EngineError::Timeout {
            budget_ms: 5,
            ..
        }))
    ));
    set_plan("unlimited");
    assert_eq!(
        handle.find("c", &query).expect("no budget again").len(),
        1000
    );
}

/// A writer that, on its first write, tells the test it is inside the
/// export and then waits until the test lets it go: it holds the export's
/// concurrency permit for as long as the test needs, without sleeping.
struct GateWriter {
    entered: std::sync::mpsc::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
    first: bool,
}

impl std::io::Write for GateWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.first {
            self.first = false;
            self.entered.send(()).expect("test waits");
            self.release.recv().expect("test releases");
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_call_past_the_concurrent_request_limit_is_refused_until_one_finishes() {
    let fx = quota_fixture(QuotaLimits {
        concurrent_requests_max: Some(1),
        ..QuotaLimits::UNLIMITED
    });
    let (tenant, key) = fx.create("acme", "limited", IsolationMode::Shared);
    let owner = fx.tenancy.authenticate(&key).expect("auth");
    let handle = fx.tenancy.handle(&owner, tenant.id).expect("handle");
    handle.create_collection("c").expect("create");
    handle.insert("c", json!({"_id": "a"})).expect("insert");
    let (entered_tx, entered_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let exporter = {
        let handle = handle.clone();
        std::thread::spawn(move || {
            let mut gate = GateWriter {
                entered: entered_tx,
                release: release_rx,
                first: true,
            };
            handle.export_jsonl("c", &mut gate)
        })
    };
    entered_rx.recv().expect("export started");
    match handle.get("c", "a") {
        Err(TenancyError::ConcurrencyLimited(limited)) => assert_eq!(limited.limit, 1),
        other => panic!("expected ConcurrencyLimited, got {other:?}"),
    }
    release_tx.send(()).expect("release");
    assert_eq!(exporter.join().expect("exporter").expect("export"), 1);
    assert!(handle.get("c", "a").expect("permit returned").is_some());
}

fn json_leaf() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (-1e6f64..1e6).prop_map(serde_json::Value::from),
        // Characters that need escaping change encoded sizes.
        "[a-z\"\\\\\n\t\u{1}é😀]{0,12}".prop_map(serde_json::Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-d]{1,2}", inner, 0..4)
                .prop_map(|m| { serde_json::Value::Object(m.into_iter().collect()) }),
        ]
    })
}

fn json_object() -> impl Strategy<Value = serde_json::Value> {
    proptest::collection::btree_map("[a-d]{1,2}", json_value(), 0..5)
        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
}

#[derive(Debug, Clone)]
enum WriteOp {
    Insert(u8, serde_json::Value),
    Replace(u8, serde_json::Value),
    Patch(u8, serde_json::Value),
    Delete(u8),
}

fn write_op() -> impl Strategy<Value = WriteOp> {
    prop_oneof![
        (0..6u8, json_object()).prop_map(|(i, d)| WriteOp::Insert(i, d)),
        (0..6u8, json_object()).prop_map(|(i, d)| WriteOp::Replace(i, d)),
        (0..6u8, json_object()).prop_map(|(i, d)| WriteOp::Patch(i, d)),
        (0..6u8).prop_map(WriteOp::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Every write's reservation is an upper bound of its exact growth (the
    /// handle asserts it in debug builds), so storage never passes the
    /// limit, and the gauge always equals the engine's accounting.
    #[test]
    fn random_writes_never_pass_the_storage_quota(
        limit in 50u64..2_000,
        ops in proptest::collection::vec(write_op(), 1..40),
    ) {
        let fx = quota_fixture(QuotaLimits {
            storage_bytes_max: Some(limit),
            ..QuotaLimits::UNLIMITED
        });
        let (tenant, key) = fx.create("acme", "limited", IsolationMode::Shared);
        let owner = fx.tenancy.authenticate(&key).expect("auth");
        let handle = fx.tenancy.handle(&owner, tenant.id).expect("handle");
        handle.create_collection("c").expect("create");
        for op in ops {
            let result = match op {
                WriteOp::Insert(i, mut doc) => {
                    doc["_id"] = json!(format!("d{i}"));
                    handle.insert("c", doc).map(drop)
                }
                WriteOp::Replace(i, doc) => handle.replace("c", &format!("d{i}"), doc),
                WriteOp::Patch(i, patch) => handle.patch("c", &format!("d{i}"), patch).map(drop),
                WriteOp::Delete(i) => handle.delete("c", &format!("d{i}")).map(drop),
            };
            match result {
                Ok(())
                | Err(TenancyError::QuotaExceeded(_))
                | Err(TenancyError::Engine(EngineError::DocumentNotFound { .. }))
                | Err(TenancyError::Engine(EngineError::DocumentExists { .. })) => {}
                Err(other) => panic!("unexpected {other:?}"),
            }
            let usage = handle.usage().expect("usage");
            prop_assert!(usage.storage_bytes <= limit);
            prop_assert_eq!(handle.quota_in_use(), usage);
        }
    }
}

#[test]
fn operator_handles_are_neither_metered_nor_rate_limited_but_keep_quotas() {
    let mut plans = test_plans();
    plans.insert(
        "metered".to_owned(),
        QuotaLimits {
            // A burst of one call: the second call at once is refused.
            api_calls_per_hour: Some(60),
            documents_max: Some(3),
            ..QuotaLimits::UNLIMITED
        },
    );
    let fx = Fixture::with_plans(plans);
    let (tenant, key) = fx.create("acme", "metered", IsolationMode::Shared);
    let operator = fx
        .tenancy
        .handle(&Principal::Operator, tenant.id)
        .expect("handle");
    fx.sink.take();
    operator.create_collection("c").expect("create");
    for n in 0..3 {
        operator.insert("c", json!({"n": n})).expect("insert");
    }
    assert_eq!(
        operator.find("c", &Query::default()).expect("find").len(),
        3
    );
    assert!(fx.sink.take().is_empty(), "operator work is not metered");
    assert!(
        matches!(
            operator.insert("c", json!({"n": 4})),
            Err(TenancyError::QuotaExceeded(_))
        ),
        "quotas still apply"
    );
    // The tenant's own calls are metered and limited, its burst untouched.
    let owner = fx.tenancy.authenticate(&key).expect("auth");
    let handle = fx.tenancy.handle(&owner, tenant.id).expect("handle");
    handle.get("c", "missing").expect("get");
    assert!(matches!(
        handle.get("c", "missing"),
        Err(TenancyError::RateLimited(_))
    ));
    assert_eq!(fx.sink.take().len(), 1, "the tenant's call is metered");
}

#[test]
fn stored_json_bytes_are_the_serialised_document_and_metered_like_a_get() {
    for mode in MODES {
        let fx = Fixture::new();
        let (tenant, key) = fx.create("acme", "unlimited", mode);
        let principal = fx.tenancy.authenticate(&key).expect("auth");
        let h = fx.tenancy.handle(&principal, tenant.id).expect("handle");
        h.create_collection("c").expect("collection");
        let docs = [
            json!({"_id": "a", "n": 1}),
            json!({"z": 1, "a": [1.5, -0.0, 1e300, 12345678901234567890u64], "_id": "b"}),
            json!({"_id": "c", "s": "quote \" backslash \\ tab \t nul \u{0} é 🦀 \u{2028}"}),
            json!({"_id": "d", "nested": {"deep": [{"x": null, "y": true}], "f": 0.1}}),
        ];
        for doc in docs {
            let id = h.insert("c", doc).expect("insert");
            let value = h.get("c", &id).expect("get").expect("exists");
            fx.sink.take();
            let bytes = h.get_json_bytes("c", &id).expect("bytes").expect("exists");
            assert_eq!(
                bytes,
                serde_json::to_vec(&value).expect("serialises"),
                "{mode:?} {id}"
            );
            let events = fx.sink.take();
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].kind, OperationKind::Read);
            assert_eq!(events[0].bytes_out, bytes.len() as u64);
        }
        assert_eq!(h.get_json_bytes("c", "missing").expect("reads"), None);
        assert!(h.get_json_bytes("nope", "a").is_err());
    }
}
