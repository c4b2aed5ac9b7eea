//! Isolation attack tests: random operation sequences by three tenants (each
//! shared or dedicated), through the public API only, with hostile names and
//! ids (`..`, `/`, NUL, other tenants' internal prefixes, look-alikes, very
//! long names). Every result is checked against a per-tenant model, and
//! every output (values, listings, exports, error messages) is checked to
//! hold nothing of another tenant.

use std::collections::{BTreeMap, BTreeSet};

use aerolith_core::Query;
use aerolith_tenancy::{EngineError, IsolationMode, TenancyError, TenantHandle, TenantId};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::fixtures::Fixture;

const TENANTS: usize = 3;

/// Collection names: ordinary, shared between tenants, and hostile.
fn name_pool() -> Vec<String> {
    let mut names: Vec<String> = [
        "users",
        "orders",
        "t1",
        "t",
        "T1",
        "t1_users",
        "t2-users",
        "..",
        ".",
        "/",
        "a/b",
        "../shared",
        "t1.users",
        "t2.users",
        "t3.users",
        "t1.",
        "t10.x",
        "users\0",
        "\0",
        "",
        "é",
        "users.",
        "system",
        "tenants",
        "api_keys",
        "audit",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.push("x".repeat(64));
    names.push("x".repeat(65));
    names.push("y".repeat(1000));
    names
}

/// Document ids, including hostile ones.
fn id_pool() -> Vec<String> {
    let mut ids: Vec<String> = [
        "a", "b", "u1", "..", ".", "/", "a/b", "t1.u1", "t2.users", "\0", "", "x y",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ids.push("i".repeat(128));
    ids.push("i".repeat(129));
    ids
}

fn marker(tenant: usize) -> String {
    format!("SECRET-OF-TENANT-{tenant}")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[derive(Debug, Clone)]
enum Op {
    Create(usize),
    Drop(usize),
    Insert(usize, usize, u32),
    InsertMany(usize, usize, usize),
    Get(usize, usize),
    Patch(usize, usize, u32),
    Delete(usize, usize),
    ListIds(usize),
    ListCollections,
    FindAll(usize),
    FindOthers(usize),
    Count(usize),
    CreateIndex(usize),
    ListIndexes(usize),
    Export(usize),
    Stats(usize),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let names = name_pool().len();
    let ids = id_pool().len();
    // Bias towards a few valid names so that data actually accumulates.
    let name = prop_oneof![3 => 0..3usize, 1 => 0..names];
    prop_oneof![
        2 => name.clone().prop_map(Op::Create),
        1 => name.clone().prop_map(Op::Drop),
        4 => (name.clone(), 0..ids, any::<u32>()).prop_map(|(c, i, n)| Op::Insert(c, i, n)),
        1 => (name.clone(), 0..ids, 1..4usize).prop_map(|(c, i, k)| Op::InsertMany(c, i, k)),
        3 => (name.clone(), 0..ids).prop_map(|(c, i)| Op::Get(c, i)),
        1 => (name.clone(), 0..ids, any::<u32>()).prop_map(|(c, i, n)| Op::Patch(c, i, n)),
        1 => (name.clone(), 0..ids).prop_map(|(c, i)| Op::Delete(c, i)),
        1 => name.clone().prop_map(Op::ListIds),
        1 => Just(Op::ListCollections),
        1 => name.clone().prop_map(Op::FindAll),
        1 => name.clone().prop_map(Op::FindOthers),
        1 => name.clone().prop_map(Op::Count),
        1 => name.clone().prop_map(Op::CreateIndex),
        1 => name.clone().prop_map(Op::ListIndexes),
        1 => name.clone().prop_map(Op::Export),
        1 => name.prop_map(Op::Stats),
    ]
}

/// One tenant's expected state.
#[derive(Debug, Default, Clone)]
struct Model {
    collections: BTreeMap<String, (BTreeMap<String, Value>, BTreeSet<String>)>,
}

struct World {
    tenants: Vec<(TenantId, TenantHandle)>,
    models: Vec<Model>,
}

impl World {
    /// True if tenant `me` itself typed `needle`: in this operation's inputs,
    /// or as a name or document id it stored earlier (hostile ids such as
    /// `t1.u1` are legitimate data of the tenant that chose them, and come
    /// back in its exports, lists and queries).
    fn typed_by(&self, me: usize, inputs: &[&str], needle: &str) -> bool {
        inputs.iter().any(|input| input.contains(needle))
            || self.models[me].collections.iter().any(|(name, (docs, _))| {
                name.contains(needle) || docs.keys().any(|id| id.contains(needle))
            })
    }

    /// Asserts `text` (anything tenant `me` was shown, for an operation
    /// whose inputs were `inputs`) holds nothing of another tenant.
    fn assert_no_leak(&self, me: usize, text: &str, inputs: &[&str]) {
        for other in 0..TENANTS {
            if other == me {
                continue;
            }
            assert!(
                !text.contains(&marker(other)),
                "tenant {me} saw tenant {other}'s data: {text}"
            );
            let prefix = format!("t{}.", self.tenants[other].0);
            if !self.typed_by(me, inputs, &prefix) {
                assert!(
                    !text.contains(&prefix),
                    "tenant {me} saw internal prefix {prefix}: {text}"
                );
            }
        }
        // Never the own internal prefix either, unless the caller typed it.
        let own = format!("t{}.", self.tenants[me].0);
        if !self.typed_by(me, inputs, &own) {
            assert!(
                !text.contains(&own),
                "tenant {me} saw its internal prefix: {text}"
            );
        }
        for internal in ["api_keys", "/shared", "/tenants/", "/system"] {
            if !inputs.iter().any(|input| input.contains(internal)) {
                assert!(
                    !text.contains(internal),
                    "tenant {me} saw {internal}: {text}"
                );
            }
        }
    }

    fn check_error(&self, me: usize, error: &TenancyError, name: &str, inputs: &[&str]) {
        self.assert_no_leak(me, &error.to_string(), inputs);
        self.assert_no_leak(me, &format!("{error:?}"), inputs);
        if !valid_name(name) {
            assert!(
                matches!(
                    error,
                    TenancyError::Engine(EngineError::InvalidCollectionName { .. })
                ),
                "invalid name {name:?} gave {error:?}"
            );
        }
    }

    fn doc(&self, me: usize, id: &str, n: u32) -> Value {
        json!({"_id": id, "m": marker(me), "n": n})
    }

    fn apply(&mut self, me: usize, op: &Op) {
        let names = name_pool();
        let ids = id_pool();
        let handle = self.tenants[me].1.clone();
        let model = &mut self.models[me];
        macro_rules! name {
            ($i:expr) => {
                names[*$i].as_str()
            };
        }
        match op {
            Op::Create(c) => {
                let name = name!(c);
                match handle.create_collection(name) {
                    Ok(()) => {
                        assert!(valid_name(name));
                        assert!(model
                            .collections
                            .insert(name.to_owned(), Default::default())
                            .is_none());
                    }
                    Err(e) => {
                        if valid_name(name) {
                            assert!(model.collections.contains_key(name), "{e:?}");
                        }
                        self.check_error(me, &e, name, &[name]);
                    }
                }
            }
            Op::Drop(c) => {
                let name = name!(c);
                match handle.drop_collection(name) {
                    Ok(()) => assert!(model.collections.remove(name).is_some()),
                    Err(e) => {
                        assert!(!model.collections.contains_key(name));
                        self.check_error(me, &e, name, &[name]);
                    }
                }
            }
            Op::Insert(c, i, n) => {
                let (name, id) = (name!(c), ids[*i].as_str());
                let doc = self.doc(me, id, *n);
                let model = &mut self.models[me];
                match handle.insert(name, doc.clone()) {
                    Ok(got) => {
                        assert_eq!(got, id);
                        let (docs, _) = model.collections.get_mut(name).expect("exists");
                        assert!(docs.insert(id.to_owned(), doc).is_none());
                    }
                    Err(e) => self.check_error(me, &e, name, &[name, id]),
                }
            }
            Op::InsertMany(c, i, k) => {
                let name = name!(c);
                let batch: Vec<Value> = (0..*k)
                    .map(|j| self.doc(me, &format!("{}{j}", ids[*i]), j as u32))
                    .collect();
                let model = &mut self.models[me];
                match handle.insert_many(name, batch.clone()) {
                    Ok(_) => {
                        let (docs, _) = model.collections.get_mut(name).expect("exists");
                        for doc in batch {
                            let id = doc["_id"].as_str().expect("id").to_owned();
                            assert!(docs.insert(id, doc).is_none());
                        }
                    }
                    Err(e) => {
                        let id = ids[*i].clone();
                        self.check_error(me, &e, name, &[name, &id])
                    }
                }
            }
            Op::Get(c, i) => {
                let (name, id) = (name!(c), ids[*i].as_str());
                match handle.get(name, id) {
                    Ok(got) => {
                        let (docs, _) = model.collections.get(name).expect("exists");
                        assert_eq!(got.as_ref(), docs.get(id));
                        self.assert_no_leak(me, &format!("{got:?}"), &[name, id]);
                    }
                    Err(e) => {
                        if valid_name(name) {
                            assert!(
                                !model.collections.contains_key(name)
                                    || aerolith_core::limits::validate_id(id).is_err(),
                                "{e:?}"
                            );
                        }
                        self.check_error(me, &e, name, &[name, id]);
                    }
                }
            }
            Op::Patch(c, i, n) => {
                let (name, id) = (name!(c), ids[*i].as_str());
                match handle.patch(name, id, json!({"p": n})) {
                    Ok(got) => {
                        let (docs, _) = model.collections.get_mut(name).expect("exists");
                        let doc = docs.get_mut(id).expect("patched doc exists");
                        doc["p"] = json!(n);
                        assert_eq!(&got, doc);
                    }
                    Err(e) => self.check_error(me, &e, name, &[name, id]),
                }
            }
            Op::Delete(c, i) => {
                let (name, id) = (name!(c), ids[*i].as_str());
                match handle.delete(name, id) {
                    Ok(existed) => {
                        let (docs, _) = model.collections.get_mut(name).expect("exists");
                        assert_eq!(existed, docs.remove(id).is_some());
                    }
                    Err(e) => self.check_error(me, &e, name, &[name, id]),
                }
            }
            Op::ListIds(c) => {
                let name = name!(c);
                match handle.list_ids(name, None, 1000) {
                    Ok(got) => {
                        let (docs, _) = model.collections.get(name).expect("exists");
                        assert_eq!(got, docs.keys().cloned().collect::<Vec<_>>());
                    }
                    Err(e) => {
                        assert!(!model.collections.contains_key(name));
                        self.check_error(me, &e, name, &[name]);
                    }
                }
            }
            Op::ListCollections => {
                let got = handle.list_collections().expect("list");
                assert_eq!(got, model.collections.keys().cloned().collect::<Vec<_>>());
            }
            Op::FindAll(c) | Op::FindOthers(c) | Op::Count(c) => {
                let name = name!(c);
                let other = (me + 1) % TENANTS;
                let filter = match op {
                    Op::FindOthers(_) => json!({"m": marker(other)}),
                    _ => json!({"m": marker(me)}),
                };
                let query = Query::filter(&filter).expect("query");
                let expected: Vec<Value> = match (op, model.collections.get(name)) {
                    (Op::FindOthers(_), Some(_)) => Vec::new(),
                    (_, Some((docs, _))) => docs.values().cloned().collect(),
                    (_, None) => Vec::new(),
                };
                let result = match op {
                    Op::Count(_) => handle.count(name, &query).map(|n| vec![json!(n)]),
                    _ => handle.find(name, &query),
                };
                match result {
                    Ok(got) => {
                        assert!(model.collections.contains_key(name));
                        match op {
                            Op::Count(_) => assert_eq!(got, vec![json!(expected.len())]),
                            _ => assert_eq!(got, expected),
                        }
                    }
                    Err(e) => {
                        assert!(!model.collections.contains_key(name));
                        self.check_error(me, &e, name, &[name]);
                    }
                }
            }
            Op::CreateIndex(c) => {
                let name = name!(c);
                match handle.create_index(name, "n", false) {
                    Ok(()) => {
                        let (_, indexes) = model.collections.get_mut(name).expect("exists");
                        assert!(indexes.insert("n".to_owned()));
                    }
                    Err(e) => self.check_error(me, &e, name, &[name]),
                }
            }
            Op::ListIndexes(c) => {
                let name = name!(c);
                match handle.list_indexes(name) {
                    Ok(got) => {
                        let (_, indexes) = model.collections.get(name).expect("exists");
                        let paths: BTreeSet<String> = got.into_iter().map(|i| i.path).collect();
                        assert_eq!(&paths, indexes);
                    }
                    Err(e) => {
                        assert!(!model.collections.contains_key(name));
                        self.check_error(me, &e, name, &[name]);
                    }
                }
            }
            Op::Export(c) => {
                let name = name!(c);
                let mut out = Vec::new();
                match handle.export_jsonl(name, &mut out) {
                    Ok(n) => {
                        let (docs, _) = model.collections.get(name).expect("exists");
                        assert_eq!(n, docs.len() as u64);
                        let text = String::from_utf8(out).expect("utf8");
                        let lines: Vec<Value> = text
                            .lines()
                            .map(|l| serde_json::from_str(l).expect("json line"))
                            .collect();
                        assert_eq!(lines, docs.values().cloned().collect::<Vec<_>>());
                        self.assert_no_leak(me, &text, &[name]);
                    }
                    Err(e) => {
                        assert!(!model.collections.contains_key(name));
                        self.check_error(me, &e, name, &[name]);
                    }
                }
            }
            Op::Stats(c) => {
                let name = name!(c);
                match handle.collection_stats(name) {
                    Ok(stats) => {
                        let (docs, indexes) = model.collections.get(name).expect("exists");
                        assert_eq!(stats.documents, docs.len() as u64);
                        assert_eq!(stats.indexes, indexes.len());
                    }
                    Err(e) => {
                        assert!(!model.collections.contains_key(name));
                        self.check_error(me, &e, name, &[name]);
                    }
                }
            }
        }
    }

    /// Every tenant's whole state equals its model, and the quota gauge
    /// equals the engine's accounting.
    fn check_all(&self) {
        for (me, (_, handle)) in self.tenants.iter().enumerate() {
            let model = &self.models[me];
            assert_eq!(
                handle.list_collections().expect("list"),
                model.collections.keys().cloned().collect::<Vec<_>>()
            );
            let mut documents = 0;
            for (name, (docs, _)) in &model.collections {
                let all = handle.find(name, &Query::default()).expect("find");
                assert_eq!(all, docs.values().cloned().collect::<Vec<_>>());
                documents += docs.len() as u64;
            }
            let usage = handle.usage().expect("usage");
            assert_eq!(usage.documents, documents);
            assert_eq!(usage.collections, model.collections.len() as u64);
            assert_eq!(handle.quota_in_use(), usage);
        }
    }
}

fn open_world(fx: &Fixture, keys: &[String], tenants: &[TenantId], models: Vec<Model>) -> World {
    let tenants = tenants
        .iter()
        .zip(keys)
        .map(|(id, key)| {
            let principal = fx.tenancy.authenticate(key).expect("auth");
            (*id, fx.tenancy.handle(&principal, *id).expect("handle"))
        })
        .collect();
    World { tenants, models }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn no_tenant_ever_sees_another_tenants_data(
        dedicated in proptest::collection::vec(any::<bool>(), TENANTS),
        ops in proptest::collection::vec((0..TENANTS, op_strategy()), 1..60),
    ) {
        let mut fx = Fixture::new();
        let mut keys = Vec::new();
        let mut ids = Vec::new();
        for (i, dedicated) in dedicated.iter().enumerate() {
            let mode = if *dedicated { IsolationMode::Dedicated } else { IsolationMode::Shared };
            let (tenant, key) = fx.create(&format!("tenant-{i}"), "unlimited", mode);
            ids.push(tenant.id);
            keys.push(key);
        }
        let mut world = open_world(&fx, &keys, &ids, vec![Model::default(); TENANTS]);
        for (me, op) in &ops {
            world.apply(*me, op);
        }
        world.check_all();
        // The same holds after a reopen (and quota gauges start exact).
        let models = std::mem::take(&mut world.models);
        drop(world);
        fx.reopen();
        let world = open_world(&fx, &keys, &ids, models);
        world.check_all();
    }
}

#[test]
fn a_principal_of_one_tenant_cannot_open_another_tenants_handle_in_either_mode() {
    for mode in [IsolationMode::Shared, IsolationMode::Dedicated] {
        let fx = Fixture::new();
        let (a, key_a) = fx.create("tenant-a", "unlimited", mode);
        let (b, _) = fx.create("tenant-b", "unlimited", mode);
        let principal = fx.tenancy.authenticate(&key_a).expect("auth");
        let refused = fx
            .tenancy
            .handle(&principal, b.id)
            .expect_err("other tenant");
        assert!(matches!(refused, TenancyError::Forbidden(_)));
        // A nonexistent tenant id is refused the same way: nothing is revealed.
        let unknown = fx
            .tenancy
            .handle(&principal, TenantId::new(9_999))
            .expect_err("unknown tenant");
        assert_eq!(refused.to_string(), unknown.to_string());
        assert!(fx.tenancy.handle(&principal, a.id).is_ok());
    }
}
