//! The handle's `*_pending` writes (the server's path: no thread held while
//! a write waits for its group). They must answer exactly like the blocking
//! writes, settle the quota reservation with the exact deltas (or release it
//! on failure) and report usage exactly once — also when the pending write
//! is dropped before it completes.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use aerolith_tenancy::{
    EngineError, IsolationMode, OperationKind, Principal, QuotaKind, QuotaLimits, TenancyError,
    TenantHandle, TenantId,
};
use serde_json::{json, Value};

use crate::fixtures::{test_plans, Fixture};

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls a future on this thread: the pending writes need no runtime.
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

fn plans() -> BTreeMap<String, QuotaLimits> {
    let mut plans = test_plans();
    plans.insert(
        "two-docs".to_owned(),
        QuotaLimits {
            documents_max: Some(2),
            ..QuotaLimits::UNLIMITED
        },
    );
    plans
}

fn owner_handle(fx: &Fixture, slug: &str, plan: &str, mode: IsolationMode) -> TenantHandle {
    owner_of(fx, slug, plan, mode).1
}

fn owner_of(fx: &Fixture, slug: &str, plan: &str, mode: IsolationMode) -> (TenantId, TenantHandle) {
    let (tenant, key) = fx.create(slug, plan, mode);
    let owner = fx.tenancy.authenticate(&key).expect("auth");
    let handle = fx.tenancy.handle(&owner, tenant.id).expect("handle");
    handle.create_collection("c").expect("collection");
    (tenant.id, handle)
}

fn encoded_len(value: &Value) -> u64 {
    serde_json::to_vec(value).expect("serializes").len() as u64
}

#[test]
fn pending_writes_answer_settle_and_report_like_blocking_ones() {
    for mode in [IsolationMode::Shared, IsolationMode::Dedicated] {
        let fx = Fixture::with_plans(plans());
        let h = owner_handle(&fx, "acme", "unlimited", mode);
        fx.sink.take();

        let doc = json!({"_id": "a", "v": 1});
        let id = block_on(h.insert_pending("c", doc.clone()).expect("admitted")).expect("insert");
        assert_eq!(id, "a");
        let ids = h
            .insert_many_pending("c", vec![json!({"_id": "b"}), json!({"_id": "x"})])
            .expect("admitted")
            .wait()
            .expect("insert many");
        assert_eq!(ids, ["b", "x"]);
        block_on(
            h.replace_pending("c", "b", json!({"w": 2}))
                .expect("admitted"),
        )
        .expect("replace");
        let patched = block_on(
            h.patch_pending("c", "a", json!({"p": true}))
                .expect("admitted"),
        )
        .expect("patch");
        assert_eq!(patched, json!({"_id": "a", "v": 1, "p": true}));
        assert!(block_on(h.delete_pending("c", "x").expect("admitted")).expect("delete"));
        assert!(!block_on(h.delete_pending("c", "x").expect("admitted")).expect("delete"));

        // The quota gauge holds exactly what is stored.
        let committed = h.quota_committed();
        let stored = h.usage().expect("usage");
        assert_eq!(committed.documents, 2, "{mode:?}");
        assert_eq!(committed.storage_bytes, stored.storage_bytes, "{mode:?}");
        assert_eq!(committed.documents, stored.documents, "{mode:?}");

        // One write event per write, with its bytes.
        let writes: Vec<_> = fx
            .sink
            .take()
            .into_iter()
            .filter(|e| e.kind == OperationKind::Write)
            .collect();
        assert_eq!(writes.len(), 6, "{mode:?}: {writes:?}");
        assert_eq!(writes[0].bytes_in, encoded_len(&doc));
        assert_eq!(writes[3].bytes_out, encoded_len(&patched));
    }
}

#[test]
fn a_dropped_pending_write_still_commits_settles_and_reports() {
    let fx = Fixture::with_plans(plans());
    let h = owner_handle(&fx, "acme", "unlimited", IsolationMode::Shared);
    fx.sink.take();
    drop(
        h.insert_pending("c", json!({"_id": "gone"}))
            .expect("admitted"),
    );
    // A blocking write queued after it returns after it has completed.
    h.insert("c", json!({"_id": "next"})).expect("insert");
    assert!(h.get("c", "gone").expect("get").is_some());
    assert_eq!(h.quota_committed().documents, 2);
    let writes = fx
        .sink
        .events()
        .into_iter()
        .filter(|e| e.kind == OperationKind::Write)
        .count();
    assert_eq!(writes, 2);
}

#[test]
fn quota_and_validation_fail_before_queueing_and_commit_failures_release() {
    let fx = Fixture::with_plans(plans());
    let h = owner_handle(&fx, "acme", "two-docs", IsolationMode::Shared);
    h.insert("c", json!({"_id": "a"})).expect("first");
    let before = h.quota_committed();
    fx.sink.take();

    // A commit that fails (the id is taken) releases its reservation, is
    // not reported, and names the tenant's own collection.
    let err = h
        .insert_pending("c", json!({"_id": "a"}))
        .expect("admitted")
        .wait()
        .unwrap_err();
    match &err {
        TenancyError::Engine(EngineError::DocumentExists { collection, id }) => {
            assert_eq!((collection.as_str(), id.as_str()), ("c", "a"));
        }
        other => panic!("expected DocumentExists, got {other:?}"),
    }
    assert_eq!(h.quota_committed(), before);
    assert!(fx.sink.events().is_empty(), "{:?}", fx.sink.events());

    // Within quota: accepted. Over it: refused before anything is queued.
    h.insert_pending("c", json!({"_id": "b"}))
        .expect("admitted")
        .wait()
        .expect("second");
    match h.insert_pending("c", json!({"_id": "c"})) {
        Err(TenancyError::QuotaExceeded(e)) => assert_eq!(e.limit, QuotaKind::Documents),
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    // An unknown collection fails at commit and releases as well.
    h.delete("c", "b").expect("room for one");
    let err = h
        .insert_pending("nope", json!({"_id": "z"}))
        .expect("admitted")
        .wait()
        .unwrap_err();
    assert!(
        matches!(
            err,
            TenancyError::Engine(EngineError::CollectionNotFound { .. })
        ),
        "{err:?}"
    );
    h.insert("c", json!({"_id": "b"}))
        .expect("the released room is there");
    assert_eq!(h.quota_committed().documents, 2);
    assert!(h.get("c", "c").expect("get").is_none());
}

/// Deleting a tenant waits for its pending writes (they hold the deletion
/// fence's permit until they complete) and leaves nothing readable.
#[test]
fn tenant_deletion_waits_for_pending_writes() {
    let fx = Fixture::with_plans(plans());
    let (tenant, h) = owner_of(&fx, "acme", "unlimited", IsolationMode::Shared);
    let other = owner_handle(&fx, "other", "unlimited", IsolationMode::Shared);
    other.insert("c", json!({"_id": "keep"})).expect("other");
    let pending: Vec<_> = (0..20)
        .map(|i| h.insert_pending("c", json!({"i": i})).expect("admitted"))
        .collect();
    fx.tenancy
        .delete_tenant(&Principal::Operator, tenant)
        .expect("delete");
    for write in pending {
        // Deletion went on only after each write had committed (had it not
        // waited, writes would find their collection dropped).
        write.wait().expect("committed before the deletion");
    }
    assert!(matches!(
        h.get("c", "keep"),
        Err(TenancyError::TenantNotFound { .. })
    ));
    assert!(other.get("c", "keep").expect("get").is_some());
}
