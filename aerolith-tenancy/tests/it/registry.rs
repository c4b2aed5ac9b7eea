//! The tenant registry through its public API: lifecycle, persistence,
//! authentication, suspension, deletion and crypto-shredding.

use aerolith_core::{Database, Options, Query};
use aerolith_tenancy::{
    AuditAction, AuditChain, AuthError, IsolationMode, LimitOverride, NewTenant, Permission,
    Principal, QuotaExceeded, QuotaKind, QuotaOverride, Role, Slug, Suspended, SuspensionReason,
    TenancyError, TenantStatus, TenantUpdate, TENANT_KEY_CONTEXT,
};
use serde_json::json;

use crate::fixtures::Fixture;

const MODES: [IsolationMode; 2] = [IsolationMode::Shared, IsolationMode::Dedicated];

#[test]
fn created_tenant_gets_a_working_owner_key() {
    for mode in MODES {
        let fx = Fixture::new();
        let (tenant, key) = fx.create("acme", "starter", mode);
        assert!(key.starts_with("ak_acme_"));
        let principal = fx.tenancy.authenticate(&key).expect("authenticate");
        assert_eq!(
            principal,
            Principal::Tenant {
                tenant: tenant.id,
                role: Role::Owner,
                key_id: match principal {
                    Principal::Tenant { key_id, .. } => key_id,
                    Principal::Operator => unreachable!(),
                },
            }
        );
        let handle = fx.tenancy.handle(&principal, tenant.id).expect("handle");
        handle
            .create_collection("users")
            .expect("create collection");
        let id = handle
            .insert("users", json!({"_id": "u1", "name": "Ada"}))
            .expect("insert");
        assert_eq!(id, "u1");
        assert_eq!(
            handle.get("users", "u1").expect("get"),
            Some(json!({"_id": "u1", "name": "Ada"}))
        );
        assert_eq!(handle.list_collections().expect("list"), vec!["users"]);
    }
}

#[test]
fn duplicate_slug_is_refused_until_the_first_tenant_is_deleted() {
    let fx = Fixture::new();
    let (first, _) = fx.create("acme", "starter", IsolationMode::Shared);
    let again = fx.tenancy.create_tenant(
        &Principal::Operator,
        NewTenant {
            name: "Other".into(),
            slug: Slug::new("acme").expect("slug"),
            plan: "starter".into(),
            isolation: IsolationMode::Dedicated,
        },
    );
    assert!(matches!(again, Err(TenancyError::SlugTaken { slug }) if slug == "acme"));
    fx.tenancy
        .delete_tenant(&Principal::Operator, first.id)
        .expect("delete");
    let (second, _) = fx.create("acme", "starter", IsolationMode::Shared);
    assert_ne!(second.id, first.id);
}

#[test]
fn the_operator_finds_a_live_tenant_by_slug_and_nobody_else_can() {
    let fx = Fixture::new();
    let acme = Slug::new("acme").expect("slug");
    let (first, owner_key) = fx.create("acme", "starter", IsolationMode::Shared);
    let by_slug = |principal: &Principal| fx.tenancy.tenant_id_by_slug(principal, &acme);
    assert_eq!(
        by_slug(&Principal::Operator).expect("found"),
        Some(first.id)
    );
    let owner = fx.tenancy.authenticate(&owner_key).expect("owner key");
    assert!(
        matches!(by_slug(&owner), Err(TenancyError::Forbidden(_))),
        "a tenant may not look tenants up"
    );
    let nobody = Slug::new("nobody").expect("slug");
    assert_eq!(
        fx.tenancy
            .tenant_id_by_slug(&Principal::Operator, &nobody)
            .expect("answers"),
        None
    );
    fx.tenancy
        .delete_tenant(&Principal::Operator, first.id)
        .expect("delete");
    assert_eq!(by_slug(&Principal::Operator).expect("answers"), None);
    let (second, _) = fx.create("acme", "starter", IsolationMode::Shared);
    assert_eq!(
        by_slug(&Principal::Operator).expect("found"),
        Some(second.id)
    );
}

#[test]
fn bad_tenant_parameters_have_exact_errors() {
    let fx = Fixture::new();
    let new = |name: &str, plan: &str| NewTenant {
        name: name.into(),
        slug: Slug::new("acme").expect("slug"),
        plan: plan.into(),
        isolation: IsolationMode::Shared,
    };
    assert!(matches!(
        fx.tenancy
            .create_tenant(&Principal::Operator, new("", "starter")),
        Err(TenancyError::InvalidTenantName { len: 0, max: 200 })
    ));
    assert!(matches!(
        fx.tenancy
            .create_tenant(&Principal::Operator, new(&"n".repeat(201), "starter")),
        Err(TenancyError::InvalidTenantName { len: 201, .. })
    ));
    assert!(matches!(
        fx.tenancy.create_tenant(&Principal::Operator, new("A", "gold")),
        Err(TenancyError::PlanNotFound { plan }) if plan == "gold"
    ));
    let (tenant, key) = fx.create("acme", "starter", IsolationMode::Shared);
    let owner = fx.tenancy.authenticate(&key).expect("auth");
    // A tenant principal never creates tenants.
    assert!(matches!(
        fx.tenancy.create_tenant(&owner, new("B", "starter")),
        Err(TenancyError::Forbidden(_))
    ));
    assert!(matches!(
        fx.tenancy
            .get_tenant(&Principal::Operator, aerolith_tenancy::TenantId::new(999)),
        Err(TenancyError::TenantNotFound { .. })
    ));
    assert!(matches!(
        fx.tenancy.list_tenants(&Principal::Operator, None, 0),
        Err(TenancyError::InvalidPageSize {
            requested: 0,
            max: 1000
        })
    ));
    assert!(matches!(
        fx.tenancy.list_tenants(&owner, None, 10),
        Err(TenancyError::Forbidden(_))
    ));
    assert_eq!(
        fx.tenancy.get_tenant(&owner, tenant.id).expect("own").id,
        tenant.id
    );
}

#[test]
fn list_pages_through_every_live_tenant_with_a_cursor() {
    let fx = Fixture::new();
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            fx.create(&format!("tenant-{i}"), "starter", IsolationMode::Shared)
                .0
                .id,
        );
    }
    fx.tenancy
        .delete_tenant(&Principal::Operator, ids[3])
        .expect("delete");
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = fx
            .tenancy
            .list_tenants(&Principal::Operator, cursor, 2)
            .expect("page");
        assert!(page.tenants.len() <= 2);
        seen.extend(page.tenants.iter().map(|t| t.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let expected: Vec<_> = ids.iter().copied().filter(|id| *id != ids[3]).collect();
    assert_eq!(seen, expected);
}

#[test]
fn suspended_tenant_reads_but_every_write_fails_with_suspended() {
    for mode in MODES {
        let fx = Fixture::new();
        let (tenant, key) = fx.create("acme", "unlimited", mode);
        let owner = fx.tenancy.authenticate(&key).expect("auth");
        let handle = fx.tenancy.handle(&owner, tenant.id).expect("handle");
        handle.create_collection("c").expect("create");
        handle
            .insert("c", json!({"_id": "a", "v": 1}))
            .expect("insert");
        fx.tenancy
            .suspend_tenant(
                &Principal::Operator,
                tenant.id,
                SuspensionReason::NonPayment,
            )
            .expect("suspend");
        assert_eq!(
            handle.get("c", "a").expect("read"),
            Some(json!({"_id": "a", "v": 1}))
        );
        assert_eq!(handle.count("c", &Query::default()).expect("count"), 1);
        assert_eq!(handle.list_collections().expect("list"), vec!["c"]);
        let suspended = |result: Result<(), TenancyError>, permission| match result {
            Err(TenancyError::Suspended(Suspended {
                tenant: t,
                permission: p,
                reason: SuspensionReason::NonPayment,
                ..
            })) => {
                assert_eq!((t, p), (tenant.id, permission));
            }
            other => panic!("expected Suspended, got {other:?}"),
        };
        suspended(
            handle.insert("c", json!({"v": 2})).map(drop),
            Permission::WriteDocuments,
        );
        suspended(
            handle.replace("c", "a", json!({"v": 3})),
            Permission::WriteDocuments,
        );
        suspended(
            handle.patch("c", "a", json!({"v": 3})).map(drop),
            Permission::WriteDocuments,
        );
        suspended(
            handle.delete("c", "a").map(drop),
            Permission::WriteDocuments,
        );
        suspended(
            handle.insert_many("c", vec![json!({})]).map(drop),
            Permission::WriteDocuments,
        );
        suspended(handle.create_collection("d"), Permission::ManageCollections);
        suspended(handle.drop_collection("c"), Permission::ManageCollections);
        suspended(
            handle.create_index("c", "v", false),
            Permission::ManageIndexes,
        );
        fx.tenancy
            .resume_tenant(&Principal::Operator, tenant.id)
            .expect("resume");
        handle
            .insert("c", json!({"_id": "b"}))
            .expect("write after resume");
        let status = fx
            .tenancy
            .get_tenant(&owner, tenant.id)
            .expect("get")
            .status;
        assert_eq!(status, TenantStatus::Active);
    }
}

#[test]
fn tenants_keys_data_and_audit_chains_survive_reopen() {
    let mut fx = Fixture::new();
    let (shared, shared_key) = fx.create("shared-co", "starter", IsolationMode::Shared);
    let (dedicated, dedicated_key) =
        fx.create("dedicated-co", "professional", IsolationMode::Dedicated);
    for (tenant, key) in [(&shared, &shared_key), (&dedicated, &dedicated_key)] {
        let principal = fx.tenancy.authenticate(key).expect("auth");
        let handle = fx.tenancy.handle(&principal, tenant.id).expect("handle");
        handle.create_collection("items").expect("create");
        handle
            .insert_many(
                "items",
                vec![
                    json!({"_id": "1", "x": "a"}),
                    json!({"_id": "2", "x": "bb"}),
                ],
            )
            .expect("insert");
    }
    let reader = fx
        .tenancy
        .create_api_key(&Principal::Operator, shared.id, Role::Reader, None)
        .expect("reader key");
    fx.tenancy
        .suspend_tenant(
            &Principal::Operator,
            dedicated.id,
            SuspensionReason::Operator,
        )
        .expect("suspend");
    let usage_before = {
        let p = fx.tenancy.authenticate(&dedicated_key).expect("auth");
        fx.tenancy
            .handle(&p, dedicated.id)
            .expect("h")
            .usage()
            .expect("usage")
    };
    fx.reopen();
    for (tenant, key) in [(&shared, &shared_key), (&dedicated, &dedicated_key)] {
        let principal = fx.tenancy.authenticate(key).expect("auth after reopen");
        let handle = fx.tenancy.handle(&principal, tenant.id).expect("handle");
        assert_eq!(
            handle.list_ids("items", None, 10).expect("ids"),
            vec!["1", "2"]
        );
        // Quota gauges start from the engines' exact accounting.
        assert_eq!(handle.quota_in_use(), handle.usage().expect("usage"));
        assert_eq!(handle.quota_in_use().documents, 2);
        fx.tenancy
            .verify_audit_log(&Principal::Operator, AuditChain::Tenant(tenant.id))
            .expect("tenant chain verifies");
    }
    {
        let p = fx.tenancy.authenticate(&dedicated_key).expect("auth");
        assert_eq!(
            fx.tenancy
                .handle(&p, dedicated.id)
                .expect("h")
                .usage()
                .expect("u"),
            usage_before
        );
    }
    let reader_principal = fx
        .tenancy
        .authenticate(reader.secret.expose())
        .expect("reader key persists");
    assert!(matches!(
        reader_principal,
        Principal::Tenant {
            role: Role::Reader,
            ..
        }
    ));
    let got = fx
        .tenancy
        .get_tenant(&Principal::Operator, dedicated.id)
        .expect("get");
    assert_eq!(
        got.status,
        TenantStatus::Suspended {
            reason: SuspensionReason::Operator
        }
    );
    assert_eq!(got.plan, "professional");
    fx.tenancy
        .verify_audit_log(&Principal::Operator, AuditChain::Operator)
        .expect("operator chain verifies");
    let operator_entries = fx
        .tenancy
        .audit_log(&Principal::Operator, AuditChain::Operator, 0, 100)
        .expect("entries");
    let actions: Vec<AuditAction> = operator_entries.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        vec![
            AuditAction::TenantCreated,
            AuditAction::KeyCreated,
            AuditAction::TenantCreated,
            AuditAction::KeyCreated,
            AuditAction::KeyCreated,
            AuditAction::TenantSuspended,
        ]
    );
    // A new tenant after reopen gets a fresh id.
    let (third, _) = fx.create("third", "starter", IsolationMode::Shared);
    assert!(third.id > dedicated.id);
}

#[test]
fn lifecycle_changes_are_audited_on_both_chains() {
    let fx = Fixture::new();
    let (tenant, key) = fx.create("acme", "starter", IsolationMode::Shared);
    let owner = fx.tenancy.authenticate(&key).expect("auth");
    let writer = fx
        .tenancy
        .create_api_key(&owner, tenant.id, Role::Writer, None)
        .expect("writer");
    fx.tenancy
        .set_api_key_role(&owner, tenant.id, writer.record.key_id, Role::Admin)
        .expect("role change");
    fx.tenancy
        .revoke_api_key(&owner, tenant.id, writer.record.key_id)
        .expect("revoke");
    fx.tenancy
        .update_tenant(
            &owner,
            tenant.id,
            TenantUpdate {
                plan: Some("professional".into()),
                name: Some("Acme Corp".into()),
                ..TenantUpdate::default()
            },
        )
        .expect("plan change");
    fx.tenancy
        .update_tenant(
            &Principal::Operator,
            tenant.id,
            TenantUpdate {
                limits_override: Some(QuotaOverride {
                    documents_max: LimitOverride::Limit(5),
                    ..QuotaOverride::default()
                }),
                ..TenantUpdate::default()
            },
        )
        .expect("override");
    fx.tenancy
        .suspend_tenant(&Principal::Operator, tenant.id, SuspensionReason::Requested)
        .expect("suspend");
    fx.tenancy
        .resume_tenant(&Principal::Operator, tenant.id)
        .expect("resume");
    let entries = fx
        .tenancy
        .audit_log(&owner, AuditChain::Tenant(tenant.id), 0, 100)
        .expect("tenant chain");
    let actions: Vec<AuditAction> = entries.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        vec![
            AuditAction::TenantCreated,
            AuditAction::KeyCreated,
            AuditAction::KeyCreated,
            AuditAction::RoleChanged,
            AuditAction::KeyRevoked,
            AuditAction::TenantUpdated,
            AuditAction::PlanChanged,
            AuditAction::LimitsOverridden,
            AuditAction::TenantSuspended,
            AuditAction::TenantResumed,
        ]
    );
    assert_eq!(entries[3].actor, owner);
    fx.tenancy
        .verify_audit_log(&owner, AuditChain::Tenant(tenant.id))
        .expect("verifies");
    // The revoked key fails at once.
    assert!(matches!(
        fx.tenancy.authenticate(writer.secret.expose()),
        Err(TenancyError::Auth(AuthError::KeyRevoked { .. }))
    ));
    // The override is in force: the sixth document is refused.
    let handle = fx.tenancy.handle(&owner, tenant.id).expect("handle");
    handle.create_collection("c").expect("create");
    for i in 0..5 {
        handle.insert("c", json!({"i": i})).expect("insert");
    }
    match handle.insert("c", json!({"i": 5})) {
        Err(TenancyError::QuotaExceeded(QuotaExceeded {
            limit: QuotaKind::Documents,
            limit_value: 5,
            current: 5,
            requested: 1,
            ..
        })) => {}
        other => panic!("expected documents quota, got {other:?}"),
    }
    // A tenant cannot read the operator chain or another tenant's chain.
    assert!(matches!(
        fx.tenancy.audit_log(&owner, AuditChain::Operator, 0, 10),
        Err(TenancyError::Forbidden(_))
    ));
}

#[test]
fn session_tokens_authenticate_refresh_and_die_with_their_key() {
    let fx = Fixture::new();
    let (tenant, key) = fx.create("acme", "starter", IsolationMode::Shared);
    let owner = fx.tenancy.authenticate(&key).expect("auth");
    let (token, claims) = fx.tenancy.issue_token(&owner, 60_000).expect("issue");
    assert_eq!(claims.tenant, tenant.id);
    assert_eq!(
        fx.tenancy.authenticate(token.expose()).expect("token auth"),
        owner
    );
    let (refreshed, _) = fx
        .tenancy
        .refresh_token(token.expose(), 60_000)
        .expect("refresh");
    fx.clock.advance(std::time::Duration::from_millis(60_000));
    assert!(matches!(
        fx.tenancy.authenticate(token.expose()),
        Err(TenancyError::Auth(AuthError::Token(
            aerolith_tenancy::TokenError::Expired { .. }
        )))
    ));
    let Principal::Tenant { key_id, .. } = owner else {
        unreachable!()
    };
    let (fresh, _) = fx.tenancy.issue_token(&owner, 60_000).expect("issue");
    fx.tenancy
        .revoke_api_key(&Principal::Operator, tenant.id, key_id)
        .expect("revoke");
    assert!(matches!(
        fx.tenancy.authenticate(fresh.expose()),
        Err(TenancyError::Auth(AuthError::KeyRevoked { .. }))
    ));
    drop(refreshed);
    assert!(matches!(
        fx.tenancy.issue_token(&Principal::Operator, 1_000),
        Err(TenancyError::Forbidden(_))
    ));
    assert!(matches!(
        fx.tenancy.refresh_token(&key, 1_000),
        Err(TenancyError::Auth(_))
    ));
}

#[test]
fn deleted_tenant_key_fails_data_is_unreachable_and_dedicated_dir_is_removed() {
    for mode in MODES {
        let mut fx = Fixture::new();
        let (tenant, key) = fx.create("gone", "starter", mode);
        let (other, other_key) = fx.create("stays", "starter", mode);
        let owner = fx.tenancy.authenticate(&key).expect("auth");
        let handle = fx.tenancy.handle(&owner, tenant.id).expect("handle");
        handle.create_collection("c").expect("create");
        handle
            .insert("c", json!({"_id": "x", "secret": "s3cr3t"}))
            .expect("insert");
        let other_principal = fx.tenancy.authenticate(&other_key).expect("auth");
        let other_handle = fx.tenancy.handle(&other_principal, other.id).expect("h");
        other_handle.create_collection("c").expect("create");
        other_handle
            .insert("c", json!({"_id": "y"}))
            .expect("insert");
        let dir = fx.tenancy.dedicated_dir_of(tenant.id);
        assert_eq!(dir.exists(), mode == IsolationMode::Dedicated);

        // A writer may not delete; the owner may.
        let writer = fx
            .tenancy
            .create_api_key(&owner, tenant.id, Role::Admin, None)
            .expect("admin key");
        let admin = fx
            .tenancy
            .authenticate(writer.secret.expose())
            .expect("auth");
        assert!(matches!(
            fx.tenancy.delete_tenant(&admin, tenant.id),
            Err(TenancyError::Forbidden(_))
        ));
        let deleted = fx.tenancy.delete_tenant(&owner, tenant.id).expect("delete");
        assert!(deleted.is_deleted());

        assert!(matches!(
            fx.tenancy.authenticate(&key),
            Err(TenancyError::Auth(AuthError::UnknownKey))
        ));
        assert!(matches!(
            handle.get("c", "x"),
            Err(TenancyError::TenantNotFound { .. })
        ));
        assert!(matches!(
            fx.tenancy.handle(&Principal::Operator, tenant.id),
            Err(TenancyError::TenantNotFound { .. })
        ));
        assert!(!dir.exists());
        assert!(matches!(
            fx.tenancy.get_tenant(&owner, tenant.id),
            Err(TenancyError::TenantNotFound { .. })
        ));
        // The other tenant is untouched.
        assert_eq!(
            other_handle
                .get("c", "y")
                .expect("get")
                .map(|d| d["_id"].clone()),
            Some(json!("y"))
        );
        drop((handle, other_handle));
        fx.reopen();
        assert!(fx.tenancy.authenticate(&key).is_err());
        assert!(fx
            .tenancy
            .get_tenant(&Principal::Operator, tenant.id)
            .expect("tombstone")
            .is_deleted());
        let other_principal = fx.tenancy.authenticate(&other_key).expect("auth");
        let other_handle = fx.tenancy.handle(&other_principal, other.id).expect("h");
        assert_eq!(
            other_handle.list_ids("c", None, 10).expect("ids"),
            vec!["y"]
        );
    }
}

#[test]
fn deleted_dedicated_tenant_files_cannot_be_decrypted_afterwards() {
    let mut fx = Fixture::new();
    let (tenant, key) = fx.create("shred", "starter", IsolationMode::Dedicated);
    let owner = fx.tenancy.authenticate(&key).expect("auth");
    let handle = fx.tenancy.handle(&owner, tenant.id).expect("handle");
    handle.create_collection("c").expect("create");
    handle
        .insert("c", json!({"_id": "x", "card": "4111-1111-1111-1111"}))
        .expect("insert");
    drop(handle);
    let key_before = fx
        .tenancy
        .dedicated_key_for_tests(tenant.id)
        .expect("live tenant has a key");

    // Copy the tenant's files aside, as a stolen backup would be.
    let copy = tempfile::tempdir().expect("tmp");
    for entry in std::fs::read_dir(fx.tenancy.dedicated_dir_of(tenant.id)).expect("dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() && entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), copy.path().join(entry.file_name())).expect("copy");
        }
    }
    fx.tenancy.delete_tenant(&owner, tenant.id).expect("delete");
    assert!(fx.tenancy.dedicated_key_for_tests(tenant.id).is_none());
    fx.reopen();
    assert!(fx.tenancy.dedicated_key_for_tests(tenant.id).is_none());

    // The copy is encrypted: without a key, with the master key, or with a
    // key derived without the destroyed salt, it does not open.
    let open = |options: Options| Database::open(copy.path(), options.must_exist());
    assert!(matches!(
        open(Options::default()),
        Err(aerolith_core::Error::KeyRequired { .. })
    ));
    let attempts = [
        fx.master.clone(),
        fx.master
            .derive(TENANT_KEY_CONTEXT, &tenant.id.to_be_bytes()),
        fx.master.derive(
            TENANT_KEY_CONTEXT,
            &[&tenant.id.to_be_bytes()[..], &[0u8; 32]].concat(),
        ),
    ];
    for attempt in attempts {
        assert!(matches!(
            open(Options::default().master_key(attempt)),
            Err(aerolith_core::Error::WrongKey { .. })
        ));
    }
    // The copy is real data: the key the registry held before opens it.
    let db = open(Options::default().master_key(key_before)).expect("the destroyed key opened it");
    assert!(db.get("c", "x").expect("get").is_some());
    // And no byte of the registry's directory holds the plaintext.
    for entry in walk(fx.dir.path()) {
        let bytes = std::fs::read(&entry).expect("read");
        assert!(
            !bytes.windows(19).any(|w| w == b"4111-1111-1111-1111"),
            "plaintext found in {entry:?}"
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn plan_change_updates_the_rate_limit_and_quotas_at_once() {
    let fx = Fixture::new();
    let (tenant, key) = fx.create("acme", "starter", IsolationMode::Shared);
    let owner = fx.tenancy.authenticate(&key).expect("auth");
    let handle = fx.tenancy.handle(&owner, tenant.id).expect("handle");
    assert_eq!(handle.limits(), fx.plans["starter"]);
    // Starter allows a burst of ceil(10_000 / 60) = 167 calls.
    for _ in 0..167 {
        handle.list_collections().expect("within burst");
    }
    match handle.list_collections() {
        Err(TenancyError::RateLimited(limited)) => {
            assert_eq!(limited.calls_per_hour, 10_000);
            assert_eq!(limited.retry_after_ms, 360);
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    fx.clock.advance(std::time::Duration::from_millis(360));
    handle
        .list_collections()
        .expect("allowed again after retry_after");
    // Only the owner changes the plan.
    let admin_key = fx
        .tenancy
        .create_api_key(&owner, tenant.id, Role::Admin, None)
        .expect("admin");
    let admin = fx
        .tenancy
        .authenticate(admin_key.secret.expose())
        .expect("auth");
    let change = TenantUpdate {
        plan: Some("enterprise".into()),
        ..TenantUpdate::default()
    };
    assert!(matches!(
        fx.tenancy.update_tenant(&admin, tenant.id, change.clone()),
        Err(TenancyError::Forbidden(_))
    ));
    // Nor does the owner override limits: only the operator.
    assert!(matches!(
        fx.tenancy.update_tenant(
            &owner,
            tenant.id,
            TenantUpdate {
                limits_override: Some(QuotaOverride::default()),
                ..TenantUpdate::default()
            }
        ),
        Err(TenancyError::Forbidden(_))
    ));
    fx.tenancy
        .update_tenant(&owner, tenant.id, change)
        .expect("owner changes plan");
    assert_eq!(handle.limits(), fx.plans["enterprise"]);
    // Calls already counted stay counted (the GCRA state carries over); once
    // that debt is paid, the enterprise burst applies.
    fx.clock.advance(std::time::Duration::from_secs(60));
    for _ in 0..1000 {
        handle
            .list_collections()
            .expect("enterprise burst is larger");
    }
}

#[test]
fn deleting_a_shared_tenant_under_concurrent_writes_leaves_nothing_in_the_shared_engine() {
    let mut fx = Fixture::new();
    let (tenant, key) = fx.create("busy", "unlimited", IsolationMode::Shared);
    let (_, other_key) = fx.create("neighbour", "unlimited", IsolationMode::Shared);
    let owner = fx.tenancy.authenticate(&key).expect("auth");
    let handle = fx.tenancy.handle(&owner, tenant.id).expect("handle");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(17));
    let writers: Vec<_> = (0..16)
        .map(|t| {
            let handle = handle.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..10_000u32 {
                    let name = format!("c{t}-{}", i % 5);
                    let result = handle
                        .create_collection(&name)
                        .or_else(|e| match e {
                            TenancyError::Engine(
                                aerolith_tenancy::EngineError::CollectionExists { .. },
                            ) => Ok(()),
                            other => Err(other),
                        })
                        .and_then(|()| handle.insert(&name, json!({"i": i})).map(drop));
                    match result {
                        Ok(()) => {}
                        Err(TenancyError::TenantNotFound { .. }) => return,
                        // The collection was dropped by the deletion between
                        // the two calls.
                        Err(TenancyError::Engine(
                            aerolith_tenancy::EngineError::CollectionNotFound { .. },
                        )) => {}
                        Err(other) => panic!("unexpected {other:?}"),
                    }
                }
                panic!("writer {t} never saw the deletion");
            })
        })
        .collect();
    barrier.wait();
    // Let the writers get going before deleting.
    while handle.quota_in_use().documents < 100 {
        std::thread::yield_now();
    }
    fx.tenancy.delete_tenant(&owner, tenant.id).expect("delete");
    for writer in writers {
        writer.join().expect("writer");
    }
    drop(handle);
    fx.tenancy.close().expect("close");
    let shared = Database::open(
        fx.dir.path().join("shared"),
        Options::default()
            .master_key(fx.master.derive(aerolith_tenancy::SHARED_KEY_CONTEXT, b""))
            .must_exist(),
    )
    .expect("open shared engine");
    let prefix = format!("t{}.", tenant.id);
    let left: Vec<String> = shared
        .list_collections()
        .into_iter()
        .filter(|name| name.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    drop(shared);
    fx.reopen();
    assert!(fx.tenancy.authenticate(&other_key).is_ok());
}

#[test]
fn an_audit_entry_altered_on_disk_is_reported_by_verify() {
    let mut fx = Fixture::new();
    let (tenant, _) = fx.create("acme", "starter", IsolationMode::Shared);
    fx.tenancy
        .suspend_tenant(&Principal::Operator, tenant.id, SuspensionReason::Operator)
        .expect("suspend");
    fx.tenancy.close().expect("close");
    {
        // Someone with the operator's key rewrites history in the system
        // database: the suspension (tenant chain entry 2) becomes a resume.
        let system = Database::open(
            fx.dir.path().join("system"),
            Options::default()
                .master_key(fx.master.derive(aerolith_tenancy::SYSTEM_KEY_CONTEXT, b""))
                .must_exist(),
        )
        .expect("open system database");
        let id = format!("t{}-{:020}", tenant.id, 2);
        let mut doc = system
            .get("audit", &id)
            .expect("get")
            .expect("entry 2 exists");
        assert_eq!(doc["entry"]["action"], json!("tenant_suspended"));
        doc["entry"]["action"] = json!("tenant_resumed");
        system.replace("audit", &id, doc).expect("tamper");
        system.close().expect("close");
    }
    fx.reopen();
    match fx
        .tenancy
        .verify_audit_log(&Principal::Operator, AuditChain::Tenant(tenant.id))
    {
        Err(TenancyError::Audit(aerolith_tenancy::AuditError::Tampered { seq: 2 })) => {}
        other => panic!("expected Tampered at 2, got {other:?}"),
    }
    // The operator's chain was not touched and still verifies.
    fx.tenancy
        .verify_audit_log(&Principal::Operator, AuditChain::Operator)
        .expect("operator chain intact");
}

#[test]
fn billing_events_are_appended_to_the_tenant_chain_by_the_operator_only() {
    use aerolith_tenancy::{BillingAuditKind, TenantId};
    let fx = Fixture::new();
    let (tenant, key) = fx.create("acme", "starter", IsolationMode::Shared);
    fx.tenancy
        .audit_billing_event(
            &Principal::Operator,
            tenant.id,
            BillingAuditKind::Invoice,
            "invoice inv_1 (AER-2026-000001) Issued: 2900 USD".into(),
        )
        .expect("operator appends");
    let owner = fx.tenancy.authenticate(&key).expect("authenticate");
    assert!(matches!(
        fx.tenancy.audit_billing_event(
            &owner,
            tenant.id,
            BillingAuditKind::Dunning,
            "forged".into()
        ),
        Err(TenancyError::Forbidden(_))
    ));
    assert!(matches!(
        fx.tenancy.audit_billing_event(
            &Principal::Operator,
            TenantId::new(999),
            BillingAuditKind::Subscription,
            "nobody".into()
        ),
        Err(TenancyError::TenantNotFound { .. })
    ));
    let log = fx
        .tenancy
        .audit_log(&Principal::Operator, AuditChain::Tenant(tenant.id), 0, 100)
        .expect("log");
    let last = log.last().expect("entries");
    assert_eq!(last.action, AuditAction::BillingInvoice);
    assert_eq!(last.actor, Principal::Operator);
    assert!(last.target.contains("AER-2026-000001"));
    fx.tenancy
        .verify_audit_log(&Principal::Operator, AuditChain::Tenant(tenant.id))
        .expect("chain intact");
}

/// A dedicated tenant whose creation was interrupted after its directory
/// was made but before its record was persisted leaves a directory under an
/// id that the next tenant gets. Found by the crash test: a *shared* tenant
/// inherited the directory and its deletion left it behind.
#[test]
fn a_directory_left_by_an_interrupted_creation_goes_whatever_the_next_isolation() {
    let fx = Fixture::new();
    let (first, _) = fx.create("first", "starter", IsolationMode::Shared);
    let next = aerolith_tenancy::TenantId::new(first.id.get() + 1);
    let orphan = fx.tenancy.dedicated_dir_of(next);
    std::fs::create_dir_all(&orphan).expect("orphan dir");
    std::fs::write(orphan.join("junk"), b"left by a crash").expect("junk");
    let (second, _) = fx.create("second", "starter", IsolationMode::Shared);
    assert_eq!(second.id, next, "the id was never taken");
    assert!(!orphan.exists(), "the orphan directory is removed");
    fx.tenancy
        .delete_tenant(&Principal::Operator, second.id)
        .expect("delete");
    assert!(!fx.tenancy.dedicated_dir_of(second.id).exists());
}
