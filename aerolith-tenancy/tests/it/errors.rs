use std::sync::Arc;
use std::time::Duration;

use aerolith_core::ManualClock;
use aerolith_tenancy::{
    ApiKeyParseError, AuthError, ConcurrencyLimiter, Forbidden, KeyId, Permission, Principal,
    QuotaGauge, QuotaLimits, RateLimit, RateLimiter, Role, Slug, SuspensionReason, TenancyError,
    TenantId, TenantStatus, TokenError, TokenSigner,
};

#[test]
fn every_area_error_converts_into_the_umbrella_with_the_same_message() {
    let tenant = TenantId::new(1);
    let gauge = QuotaGauge::new(QuotaLimits {
        documents_max: Some(0),
        ..QuotaLimits::UNLIMITED
    });
    let limiter = RateLimiter::new(Some(RateLimit::new(1, 1).expect("valid")));
    limiter.check(tenant, Duration::ZERO).expect("first call");
    let concurrency = ConcurrencyLimiter::new(Some(0));
    let suspended = TenantStatus::Suspended {
        reason: SuspensionReason::NonPayment,
    };
    let reader = Principal::Tenant {
        tenant,
        role: Role::Reader,
        key_id: KeyId::from_u128(1),
    };

    let cases: Vec<(String, TenancyError)> = vec![
        {
            let e = gauge.reserve(0, 1, 0).expect_err("over quota");
            (e.to_string(), e.into())
        },
        {
            let e = limiter.check(tenant, Duration::ZERO).expect_err("limited");
            (e.to_string(), e.into())
        },
        {
            let e = concurrency.acquire(tenant).expect_err("no slots");
            (e.to_string(), e.into())
        },
        {
            let e = suspended
                .check(tenant, Permission::WriteDocuments)
                .expect_err("read-only");
            (e.to_string(), e.into())
        },
        {
            let e = reader
                .authorize(tenant, Permission::WriteDocuments)
                .expect_err("reader");
            (e.to_string(), e.into())
        },
        {
            let e = Slug::new("X").expect_err("bad slug");
            (e.to_string(), e.into())
        },
        (
            TokenError::Malformed.to_string(),
            TokenError::Malformed.into(),
        ),
        (
            ApiKeyParseError::WrongPrefix.to_string(),
            ApiKeyParseError::WrongPrefix.into(),
        ),
    ];
    for (message, umbrella) in cases {
        assert_eq!(umbrella.to_string(), message);
    }
}

#[test]
fn umbrella_variants_are_the_expected_ones() {
    let forbidden: TenancyError = Forbidden::new(Permission::DeleteTenant).into();
    assert!(matches!(
        forbidden,
        TenancyError::Forbidden(Forbidden {
            permission: Permission::DeleteTenant,
            ..
        })
    ));
    let token: TenancyError = TokenError::BadSignature.into();
    assert!(matches!(
        token,
        TenancyError::Auth(AuthError::Token(TokenError::BadSignature))
    ));
}

#[test]
fn error_messages_say_which_limit_and_the_values() {
    let gauge = QuotaGauge::with_usage(
        QuotaLimits {
            storage_bytes_max: Some(1_000),
            ..QuotaLimits::UNLIMITED
        },
        aerolith_tenancy::QuotaUsage {
            storage_bytes: 900,
            documents: 0,
            collections: 0,
        },
    );
    let message = gauge.reserve(200, 0, 0).expect_err("over").to_string();
    assert_eq!(
        message,
        "storage bytes quota exceeded: limit 1000, current 900, requested 200"
    );
    let limiter = RateLimiter::new(Some(RateLimit::new(3600, 1).expect("valid")));
    limiter
        .check(TenantId::new(1), Duration::ZERO)
        .expect("first");
    let message = limiter
        .check(TenantId::new(1), Duration::ZERO)
        .expect_err("limited")
        .to_string();
    assert_eq!(
        message,
        "rate limit of 3600 calls per hour (burst 1) reached; retry after 1000 ms"
    );
}

#[test]
fn wrong_tenant_error_does_not_name_the_other_tenant() {
    let signer = TokenSigner::new(&[1; 32], Arc::new(ManualClock::new(0)));
    let (token, _) = signer
        .issue(
            TenantId::new(424_242),
            KeyId::from_u128(1),
            Role::Owner,
            1_000,
        )
        .expect("issued");
    let error = signer
        .verify(token.expose(), Some(TenantId::new(7)))
        .expect_err("wrong tenant");
    let text = format!("{error} {error:?}");
    assert!(!text.contains("424242"), "{text}");
}
