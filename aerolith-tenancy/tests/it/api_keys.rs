use std::sync::Arc;
use std::time::Duration;

use aerolith_core::ManualClock;
use aerolith_tenancy::{
    api_key_hash, parse_api_key, ApiKeyError, ApiKeyParseError, ApiKeyRecord, ApiKeyStore, ApiKeys,
    AuthError, CreatedApiKey, KeyId, MemoryApiKeyStore, NewApiKey, Principal, Role, Slug,
    SlugError, StoreError, TenantId, API_KEY_SECRET_CHARS,
};
use rand::SeedableRng;

const START_MS: i64 = 1_700_000_000_000;

fn keys() -> (ApiKeys<MemoryApiKeyStore>, ManualClock) {
    let clock = ManualClock::new(START_MS);
    (
        ApiKeys::new(MemoryApiKeyStore::new(), Arc::new(clock.clone())),
        clock,
    )
}

fn new_key(tenant: u64, slug: &str, role: Role) -> NewApiKey {
    NewApiKey {
        tenant: TenantId::new(tenant),
        slug: Slug::new(slug).expect("valid slug"),
        role,
        expires_unix_ms: None,
    }
}

fn create(keys: &ApiKeys<MemoryApiKeyStore>, new: NewApiKey) -> CreatedApiKey {
    keys.create(new).expect("key is created")
}

#[test]
fn created_key_authenticates_as_its_tenant_and_role() {
    let (keys, _) = keys();
    let created = create(&keys, new_key(1, "acme", Role::Writer));
    let record = keys
        .authenticate(created.secret.expose())
        .expect("authenticates");
    assert_eq!(record, created.record);
    assert_eq!(
        record.principal(),
        Principal::Tenant {
            tenant: TenantId::new(1),
            role: Role::Writer,
            key_id: created.record.key_id,
        }
    );
}

#[test]
fn stored_record_holds_only_the_hash_and_a_short_prefix() {
    let (keys, _) = keys();
    let created = create(&keys, new_key(1, "acme", Role::Reader));
    let text = created.secret.expose();
    let record = &created.record;
    assert_eq!(record.hash, api_key_hash(text));
    assert_eq!(record.hash, *blake3::hash(text.as_bytes()).as_bytes());
    assert_eq!(
        record.display_prefix,
        text[.."ak_acme_".len() + 6].to_owned()
    );
    assert_eq!(record.created_unix_ms, START_MS);
    let json = serde_json::to_string(record).expect("serializes");
    assert!(!json.contains(&text["ak_acme_".len()..]));
    let back: ApiKeyRecord = serde_json::from_str(&json).expect("parses");
    assert_eq!(&back, record);
}

#[test]
fn keys_carry_256_bits_and_differ_each_time() {
    let (keys, _) = keys();
    let a = create(&keys, new_key(1, "acme", Role::Reader));
    let b = create(&keys, new_key(1, "acme", Role::Reader));
    assert_ne!(a.secret.expose(), b.secret.expose());
    assert_ne!(a.record.key_id, b.record.key_id);
    let secret = &a.secret.expose()["ak_acme_".len()..];
    assert_eq!(secret.len(), API_KEY_SECRET_CHARS);
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(secret)
        .expect("secret is base64url");
    assert_eq!(bytes.len() * 8, 256);
}

#[test]
fn seeded_generation_is_reproducible() {
    let (keys_a, _) = keys();
    let (keys_b, _) = keys();
    let mut rng_a = rand::rngs::StdRng::seed_from_u64(42);
    let mut rng_b = rand::rngs::StdRng::seed_from_u64(42);
    let a = keys_a
        .create_with_rng(new_key(1, "acme", Role::Reader), &mut rng_a)
        .expect("created");
    let b = keys_b
        .create_with_rng(new_key(1, "acme", Role::Reader), &mut rng_b)
        .expect("created");
    assert_eq!(a.secret, b.secret);
}

#[test]
fn each_malformed_key_is_refused_with_its_exact_error() {
    let good_secret = "A".repeat(API_KEY_SECRET_CHARS);
    let cases: Vec<(String, ApiKeyParseError)> = vec![
        (
            format!("sk_acme_{good_secret}"),
            ApiKeyParseError::WrongPrefix,
        ),
        (
            format!("AK_acme_{good_secret}"),
            ApiKeyParseError::WrongPrefix,
        ),
        (String::new(), ApiKeyParseError::WrongPrefix),
        ("ak_acme".to_owned(), ApiKeyParseError::MissingSeparator),
        (
            format!("ak_Acme_{good_secret}"),
            ApiKeyParseError::BadSlug(SlugError::InvalidChar { position: 0 }),
        ),
        (
            format!("ak_ab_{good_secret}"),
            ApiKeyParseError::BadSlug(SlugError::TooShort { len: 2, min: 3 }),
        ),
        (
            format!("ak_-acme_{good_secret}"),
            ApiKeyParseError::BadSlug(SlugError::EdgeHyphen),
        ),
        (
            format!("ak__{good_secret}"),
            ApiKeyParseError::BadSlug(SlugError::TooShort { len: 0, min: 3 }),
        ),
        (
            "ak_acme_short".to_owned(),
            ApiKeyParseError::SecretLength {
                len: 5,
                expected: 43,
            },
        ),
        (
            format!("ak_acme_{good_secret}A"),
            ApiKeyParseError::SecretLength {
                len: 44,
                expected: 43,
            },
        ),
        (
            format!("ak_acme_{}", "+".repeat(API_KEY_SECRET_CHARS)),
            ApiKeyParseError::SecretAlphabet,
        ),
        (
            format!("ak_acme_{}=", "A".repeat(API_KEY_SECRET_CHARS - 1)),
            ApiKeyParseError::SecretAlphabet,
        ),
        // The last character carries 4 unused bits; they must be zero.
        (
            format!("ak_acme_{}B", "A".repeat(API_KEY_SECRET_CHARS - 1)),
            ApiKeyParseError::SecretAlphabet,
        ),
    ];
    let (keys, _) = keys();
    for (text, expected) in cases {
        assert_eq!(
            parse_api_key(&text).err(),
            Some(expected.clone()),
            "{text:?}"
        );
        match keys.authenticate(&text) {
            Err(AuthError::MalformedKey(error)) => assert_eq!(error, expected, "{text:?}"),
            other => panic!("{text:?}: expected MalformedKey, got {other:?}"),
        }
    }
}

#[test]
fn well_formed_but_unknown_key_is_refused() {
    let (keys, _) = keys();
    create(&keys, new_key(1, "acme", Role::Owner));
    let unknown = format!("ak_acme_{}", "A".repeat(API_KEY_SECRET_CHARS));
    assert!(matches!(
        keys.authenticate(&unknown),
        Err(AuthError::UnknownKey)
    ));
}

#[test]
fn key_with_one_character_changed_is_refused() {
    let (keys, _) = keys();
    let created = create(&keys, new_key(1, "acme", Role::Owner));
    let text = created.secret.expose();
    for position in 0..text.len() {
        let mut bytes = text.as_bytes().to_vec();
        bytes[position] = if bytes[position] == b'a' { b'b' } else { b'a' };
        let altered = String::from_utf8(bytes).expect("ascii");
        assert!(keys.authenticate(&altered).is_err(), "position {position}");
    }
}

#[test]
fn revoked_key_is_refused() {
    let (keys, clock) = keys();
    let created = create(&keys, new_key(1, "acme", Role::Owner));
    clock.advance(Duration::from_secs(5));
    let revoked = keys
        .revoke(TenantId::new(1), created.record.key_id)
        .expect("revoked");
    assert_eq!(revoked.revoked_unix_ms, Some(START_MS + 5_000));
    match keys.authenticate(created.secret.expose()) {
        Err(AuthError::KeyRevoked {
            key_id,
            revoked_unix_ms,
        }) => {
            assert_eq!(key_id, created.record.key_id);
            assert_eq!(revoked_unix_ms, START_MS + 5_000);
        }
        other => panic!("expected KeyRevoked, got {other:?}"),
    }
}

#[test]
fn revoking_twice_keeps_the_first_time() {
    let (keys, clock) = keys();
    let created = create(&keys, new_key(1, "acme", Role::Owner));
    keys.revoke(TenantId::new(1), created.record.key_id)
        .expect("revoked");
    clock.advance(Duration::from_secs(60));
    let again = keys
        .revoke(TenantId::new(1), created.record.key_id)
        .expect("still found");
    assert_eq!(again.revoked_unix_ms, Some(START_MS));
}

#[test]
fn a_tenant_cannot_revoke_another_tenants_key() {
    let (keys, _) = keys();
    let victim = create(&keys, new_key(1, "victim", Role::Owner));
    let result = keys.revoke(TenantId::new(2), victim.record.key_id);
    assert!(
        matches!(result, Err(ApiKeyError::NotFound { key_id }) if key_id == victim.record.key_id)
    );
    assert!(keys.authenticate(victim.secret.expose()).is_ok());
}

#[test]
fn revoking_an_unknown_key_is_not_found() {
    let (keys, _) = keys();
    let result = keys.revoke(TenantId::new(1), KeyId::from_u128(5));
    assert!(matches!(result, Err(ApiKeyError::NotFound { .. })));
}

#[test]
fn expired_key_is_refused_from_its_expiry_instant() {
    let (keys, clock) = keys();
    let expires_unix_ms = START_MS + 60_000;
    let created = create(
        &keys,
        NewApiKey {
            expires_unix_ms: Some(expires_unix_ms),
            ..new_key(1, "acme", Role::Reader)
        },
    );
    clock.set_unix_ms(expires_unix_ms - 1);
    assert!(keys.authenticate(created.secret.expose()).is_ok());
    clock.set_unix_ms(expires_unix_ms);
    match keys.authenticate(created.secret.expose()) {
        Err(AuthError::KeyExpired {
            key_id,
            expired_unix_ms,
        }) => {
            assert_eq!(key_id, created.record.key_id);
            assert_eq!(expired_unix_ms, expires_unix_ms);
        }
        other => panic!("expected KeyExpired, got {other:?}"),
    }
}

#[test]
fn key_cannot_be_created_already_expired() {
    let (keys, _) = keys();
    let result = keys.create(NewApiKey {
        expires_unix_ms: Some(START_MS),
        ..new_key(1, "acme", Role::Reader)
    });
    assert!(matches!(
        result,
        Err(ApiKeyError::ExpiryNotInFuture {
            expires_unix_ms: START_MS,
            now_unix_ms: START_MS
        })
    ));
}

#[test]
fn listing_shows_only_the_tenants_own_keys_oldest_first() {
    let (keys, clock) = keys();
    let first = create(&keys, new_key(1, "acme", Role::Owner));
    clock.advance(Duration::from_millis(1));
    create(&keys, new_key(2, "other", Role::Owner));
    let second = create(&keys, new_key(1, "acme", Role::Reader));
    let listed = keys.list(TenantId::new(1)).expect("listed");
    assert_eq!(listed, vec![first.record, second.record]);
    assert!(listed.iter().all(|r| r.tenant == TenantId::new(1)));
}

#[test]
fn store_refuses_duplicate_records() {
    let (keys, _) = keys();
    let created = create(&keys, new_key(1, "acme", Role::Owner));
    let same = created.record.clone();
    assert!(matches!(
        keys.store().insert(same),
        Err(StoreError::Conflict { what: "key hash" })
    ));
    let same_id = ApiKeyRecord {
        hash: [9; 32],
        ..created.record
    };
    assert!(matches!(
        keys.store().insert(same_id),
        Err(StoreError::Conflict { what: "key id" })
    ));
}

#[test]
fn auth_errors_never_echo_the_key() {
    let (keys, clock) = keys();
    let created = create(
        &keys,
        NewApiKey {
            expires_unix_ms: Some(START_MS + 1),
            ..new_key(1, "acme", Role::Owner)
        },
    );
    let secret_part = created.secret.expose()["ak_acme_".len()..].to_owned();
    clock.advance(Duration::from_secs(1));
    let expired = keys
        .authenticate(created.secret.expose())
        .expect_err("expired");
    let mut bad = created.secret.expose().to_owned();
    bad.push('x');
    let malformed = keys.authenticate(&bad).expect_err("malformed");
    for error in [expired, malformed] {
        let text = format!("{error} {error:?}");
        assert!(!text.contains(&secret_part), "{text}");
    }
}
