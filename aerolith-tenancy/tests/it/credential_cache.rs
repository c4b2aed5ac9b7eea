//! The authenticated-credential cache: a bearer that worked once is served
//! from the cache, and every change that affects who may do what takes
//! effect on the very next call; refused credentials never enter it.

use std::time::Duration;

use aerolith_tenancy::{
    AuthError, IsolationMode, Permission, Principal, QuotaLimits, Role, SuspensionReason,
    TenancyError, TenantStatus, TenantUpdate, TokenError,
};
use serde_json::json;

use crate::fixtures::Fixture;

fn is_auth_error(result: Result<Principal, TenancyError>) -> bool {
    matches!(result, Err(TenancyError::Auth(_)))
}

/// A tenant with collection `c` and a warmed cache for its owner key.
fn warmed(fx: &Fixture, slug: &str) -> (aerolith_tenancy::Tenant, String) {
    let (tenant, key) = fx.create(slug, "unlimited", IsolationMode::Shared);
    let owner = fx.tenancy.authenticate(&key).expect("owner key works");
    let handle = fx.tenancy.handle(&owner, tenant.id).expect("own handle");
    handle.create_collection("c").expect("collection");
    handle.insert("c", json!({"_id": "a"})).expect("insert");
    (tenant, key)
}

#[test]
fn a_repeated_bearer_is_served_from_the_cache() {
    let fx = Fixture::new();
    let (_, key) = warmed(&fx, "acme");
    let (hits_before, entries) = fx.tenancy.credential_cache_stats_for_tests();
    assert_eq!(entries, 1);
    for _ in 0..3 {
        fx.tenancy.authenticate(&key).expect("still works");
    }
    let (hits_after, _) = fx.tenancy.credential_cache_stats_for_tests();
    assert_eq!(hits_after, hits_before + 3);
}

#[test]
fn revocation_takes_effect_on_the_next_call_and_never_hits_the_cache() {
    let fx = Fixture::new();
    let (tenant, key) = warmed(&fx, "acme");
    let principal = fx.tenancy.authenticate(&key).expect("cached");
    let Principal::Tenant { key_id, .. } = principal else {
        panic!("a key authenticates as a tenant principal");
    };
    fx.tenancy
        .revoke_api_key(&Principal::Operator, tenant.id, key_id)
        .expect("revoked");
    let (hits, _) = fx.tenancy.credential_cache_stats_for_tests();
    for _ in 0..3 {
        assert!(matches!(
            fx.tenancy.authenticate(&key),
            Err(TenancyError::Auth(AuthError::KeyRevoked { .. }))
        ));
    }
    assert_eq!(
        fx.tenancy.credential_cache_stats_for_tests(),
        (hits, 0),
        "a revoked key is neither answered from nor put in the cache"
    );
}

#[test]
fn a_role_change_takes_effect_on_the_next_call() {
    let fx = Fixture::new();
    let (tenant, _) = warmed(&fx, "acme");
    let writer = fx
        .tenancy
        .create_api_key(&Principal::Operator, tenant.id, Role::Writer, None)
        .expect("writer key");
    let text = writer.secret.expose();
    let principal = fx.tenancy.authenticate(text).expect("writer works");
    let handle = fx.tenancy.handle(&principal, tenant.id).expect("handle");
    handle
        .insert("c", json!({"_id": "w"}))
        .expect("a writer writes");
    fx.tenancy
        .set_api_key_role(
            &Principal::Operator,
            tenant.id,
            writer.record.key_id,
            Role::Reader,
        )
        .expect("demoted");
    let principal = fx.tenancy.authenticate(text).expect("reader works");
    assert!(matches!(
        principal,
        Principal::Tenant {
            role: Role::Reader,
            ..
        }
    ));
    let handle = fx.tenancy.handle(&principal, tenant.id).expect("handle");
    assert!(matches!(
        handle.insert("c", json!({"_id": "r"})),
        Err(TenancyError::Forbidden(_))
    ));
    handle.get("c", "a").expect("a reader reads");
}

#[test]
fn suspension_and_resumption_take_effect_on_the_next_call() {
    let fx = Fixture::new();
    let (tenant, key) = warmed(&fx, "acme");
    fx.tenancy
        .suspend_tenant(
            &Principal::Operator,
            tenant.id,
            SuspensionReason::NonPayment,
        )
        .expect("suspended");
    let principal = fx.tenancy.authenticate(&key).expect("authenticates");
    let handle = fx.tenancy.handle(&principal, tenant.id).expect("handle");
    assert!(matches!(
        handle.insert("c", json!({"_id": "s"})),
        Err(TenancyError::Suspended(_))
    ));
    handle
        .get("c", "a")
        .expect("a suspended tenant still reads");
    fx.tenancy
        .resume_tenant(&Principal::Operator, tenant.id)
        .expect("resumed");
    let principal = fx.tenancy.authenticate(&key).expect("authenticates");
    let handle = fx.tenancy.handle(&principal, tenant.id).expect("handle");
    handle
        .insert("c", json!({"_id": "s"}))
        .expect("writes again");
    assert_eq!(
        fx.tenancy
            .get_tenant(&principal, tenant.id)
            .expect("get")
            .status,
        TenantStatus::Active
    );
}

#[test]
fn deletion_takes_effect_on_the_next_call_and_empties_the_tenants_entries() {
    let fx = Fixture::new();
    let (tenant, key) = warmed(&fx, "acme");
    let (_, other_key) = warmed(&fx, "other");
    assert_eq!(fx.tenancy.credential_cache_stats_for_tests().1, 2);
    fx.tenancy
        .delete_tenant(&Principal::Operator, tenant.id)
        .expect("deleted");
    assert!(is_auth_error(fx.tenancy.authenticate(&key)));
    assert_eq!(fx.tenancy.credential_cache_stats_for_tests().1, 1);
    fx.tenancy
        .authenticate(&other_key)
        .expect("another tenant's key still works");
}

#[test]
fn a_plan_change_takes_effect_on_the_next_call() {
    let mut plans = crate::fixtures::test_plans();
    plans.insert(
        "one-collection".to_owned(),
        QuotaLimits {
            collections_max: Some(1),
            ..QuotaLimits::UNLIMITED
        },
    );
    let fx = Fixture::with_plans(plans);
    let (tenant, key) = warmed(&fx, "acme");
    fx.tenancy
        .update_tenant(
            &Principal::Operator,
            tenant.id,
            TenantUpdate {
                plan: Some("one-collection".to_owned()),
                ..TenantUpdate::default()
            },
        )
        .expect("plan changed");
    let principal = fx.tenancy.authenticate(&key).expect("authenticates");
    let handle = fx.tenancy.handle(&principal, tenant.id).expect("handle");
    assert!(matches!(
        handle.create_collection("d"),
        Err(TenancyError::QuotaExceeded(_))
    ));
}

#[test]
fn key_expiry_is_checked_against_the_clock_on_every_call() {
    let fx = Fixture::new();
    let (tenant, _) = warmed(&fx, "acme");
    let now = fx.tenancy.get_tenant(&Principal::Operator, tenant.id);
    let expires = now.expect("tenant").created_unix_ms + 60_000;
    let key = fx
        .tenancy
        .create_api_key(&Principal::Operator, tenant.id, Role::Reader, Some(expires))
        .expect("key");
    let text = key.secret.expose();
    fx.tenancy.authenticate(text).expect("works before expiry");
    fx.tenancy.authenticate(text).expect("works from the cache");
    fx.clock.advance(Duration::from_millis(60_000));
    assert!(matches!(
        fx.tenancy.authenticate(text),
        Err(TenancyError::Auth(AuthError::KeyExpired { .. }))
    ));
}

#[test]
fn session_token_expiry_and_key_revocation_take_effect_on_the_next_call() {
    let fx = Fixture::new();
    let (tenant, key) = warmed(&fx, "acme");
    let owner = fx.tenancy.authenticate(&key).expect("owner");
    let (token, _) = fx.tenancy.issue_token(&owner, 60_000).expect("token");
    fx.tenancy
        .authenticate(token.expose())
        .expect("token works");
    fx.tenancy
        .authenticate(token.expose())
        .expect("token works from the cache");
    fx.clock.advance(Duration::from_millis(60_000));
    assert!(matches!(
        fx.tenancy.authenticate(token.expose()),
        Err(TenancyError::Auth(AuthError::Token(
            TokenError::Expired { .. }
        )))
    ));

    let (token, _) = fx.tenancy.issue_token(&owner, 60_000).expect("token");
    fx.tenancy.authenticate(token.expose()).expect("works");
    let Principal::Tenant { key_id, .. } = owner else {
        panic!("a tenant principal");
    };
    fx.tenancy
        .revoke_api_key(&Principal::Operator, tenant.id, key_id)
        .expect("revoked");
    assert!(matches!(
        fx.tenancy.authenticate(token.expose()),
        Err(TenancyError::Auth(AuthError::KeyRevoked { .. }))
    ));
}

#[test]
fn forged_and_foreign_keys_never_hit_the_cache() {
    let fx = Fixture::new();
    let (tenant, key) = warmed(&fx, "acme");
    let (other, other_key) = warmed(&fx, "other");
    let (hits, entries) = fx.tenancy.credential_cache_stats_for_tests();
    // The same slug and length with one secret character changed.
    let mut forged = key.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("ascii");
    for _ in 0..3 {
        assert!(matches!(
            fx.tenancy.authenticate(&forged),
            Err(TenancyError::Auth(AuthError::UnknownKey))
        ));
    }
    assert_eq!(
        fx.tenancy.credential_cache_stats_for_tests(),
        (hits, entries),
        "a forged key is neither answered from nor put in the cache"
    );
    // Another tenant's (cached, valid) key reaches only its own tenant.
    let foreign = fx.tenancy.authenticate(&other_key).expect("cached");
    assert_eq!(foreign.tenant(), Some(other.id));
    assert!(matches!(
        fx.tenancy.handle(&foreign, tenant.id),
        Err(TenancyError::Forbidden(f)) if f.permission == Permission::ReadDocuments
    ));
}

#[test]
fn authenticate_cached_answers_only_from_the_cache() {
    let fx = Fixture::new();
    let (tenant, _) = warmed(&fx, "acme");
    let key = fx
        .tenancy
        .create_api_key(&Principal::Operator, tenant.id, Role::Reader, None)
        .expect("key");
    let text = key.secret.expose();
    assert!(
        fx.tenancy.authenticate_cached(text).is_none(),
        "a key never seen needs the store"
    );
    assert!(matches!(
        fx.tenancy.authenticate_cached("ak_acme_short"),
        Some(Err(TenancyError::Auth(AuthError::MalformedKey(_))))
    ));
    let principal = fx.tenancy.authenticate(text).expect("works");
    assert_eq!(
        fx.tenancy
            .authenticate_cached(text)
            .expect("cached")
            .expect("works"),
        principal
    );
    fx.tenancy
        .revoke_api_key(&Principal::Operator, tenant.id, key.record.key_id)
        .expect("revoked");
    assert!(
        fx.tenancy.authenticate_cached(text).is_none(),
        "a revoked key is not answered from the cache"
    );
}

#[test]
fn a_role_change_applies_to_the_keys_session_tokens_on_the_next_call() {
    let fx = Fixture::new();
    let (tenant, _) = warmed(&fx, "acme");
    let writer = fx
        .tenancy
        .create_api_key(&Principal::Operator, tenant.id, Role::Writer, None)
        .expect("writer key");
    let principal = fx
        .tenancy
        .authenticate(writer.secret.expose())
        .expect("works");
    let (token, _) = fx.tenancy.issue_token(&principal, 60_000).expect("token");
    fx.tenancy
        .authenticate(token.expose())
        .expect("token works");
    fx.tenancy
        .set_api_key_role(
            &Principal::Operator,
            tenant.id,
            writer.record.key_id,
            Role::Reader,
        )
        .expect("demoted");
    let principal = fx.tenancy.authenticate(token.expose()).expect("works");
    let handle = fx.tenancy.handle(&principal, tenant.id).expect("handle");
    assert!(matches!(
        handle.insert("c", json!({"_id": "t"})),
        Err(TenancyError::Forbidden(_))
    ));
}
