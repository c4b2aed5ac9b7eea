use aerolith_tenancy::{IdParseError, KeyId, Slug, SlugError, TenantId};
use proptest::prelude::*;

#[test]
fn valid_slugs_are_accepted() {
    for text in ["abc", "acme-corp", "a1-b2-c3", "123", "x-y"] {
        assert_eq!(Slug::new(text).map(|s| s.to_string()), Ok(text.to_owned()));
    }
}

#[test]
fn each_bad_slug_is_refused_with_its_exact_error() {
    assert_eq!(Slug::new("ab"), Err(SlugError::TooShort { len: 2, min: 3 }));
    assert_eq!(Slug::new(""), Err(SlugError::TooShort { len: 0, min: 3 }));
    assert_eq!(
        Slug::new(&"a".repeat(41)),
        Err(SlugError::TooLong { len: 41, max: 40 })
    );
    assert_eq!(
        Slug::new("Acme"),
        Err(SlugError::InvalidChar { position: 0 })
    );
    assert_eq!(
        Slug::new("ac_me"),
        Err(SlugError::InvalidChar { position: 2 })
    );
    assert_eq!(
        Slug::new("acme corp"),
        Err(SlugError::InvalidChar { position: 4 })
    );
    assert_eq!(
        Slug::new("acmé"),
        Err(SlugError::InvalidChar { position: 3 })
    );
    assert_eq!(
        Slug::new("ac\0me"),
        Err(SlugError::InvalidChar { position: 2 })
    );
    assert_eq!(
        Slug::new("../etc"),
        Err(SlugError::InvalidChar { position: 0 })
    );
    assert_eq!(Slug::new("-acme"), Err(SlugError::EdgeHyphen));
    assert_eq!(Slug::new("acme-"), Err(SlugError::EdgeHyphen));
}

#[test]
fn slug_deserialization_validates() {
    let ok: Slug = serde_json::from_str("\"acme\"").expect("valid slug");
    assert_eq!(ok.as_str(), "acme");
    assert!(serde_json::from_str::<Slug>("\"A\"").is_err());
}

#[test]
fn key_id_text_is_checked() {
    assert_eq!(
        "abc".parse::<KeyId>(),
        Err(IdParseError::WrongLength {
            len: 3,
            expected: 32
        })
    );
    assert_eq!(
        "0123456789ABCDEF0123456789abcdef".parse::<KeyId>(),
        Err(IdParseError::NotLowerHex)
    );
    assert_eq!(
        "+123456789abcdef0123456789abcdef".parse::<KeyId>(),
        Err(IdParseError::NotLowerHex)
    );
}

#[test]
fn ids_serialize_as_documented() {
    assert_eq!(
        serde_json::to_string(&TenantId::new(42)).expect("serializes"),
        "42"
    );
    let key_id = KeyId::from_u128(255);
    assert_eq!(
        serde_json::to_string(&key_id).expect("serializes"),
        "\"000000000000000000000000000000ff\""
    );
    let back: KeyId = serde_json::from_str("\"000000000000000000000000000000ff\"").expect("parses");
    assert_eq!(back, key_id);
}

proptest! {
    #[test]
    fn every_accepted_slug_matches_the_rules(text in "[a-z0-9_A-Z-]{0,45}") {
        match Slug::new(&text) {
            Ok(slug) => {
                prop_assert!((3..=40).contains(&slug.as_str().len()));
                prop_assert!(slug.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
                prop_assert!(!slug.as_str().starts_with('-') && !slug.as_str().ends_with('-'));
            }
            Err(_) => {
                let valid = (3..=40).contains(&text.len())
                    && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !text.starts_with('-') && !text.ends_with('-');
                prop_assert!(!valid);
            }
        }
    }

    #[test]
    fn tenant_id_text_round_trips(raw in any::<u64>()) {
        let id = TenantId::new(raw);
        prop_assert_eq!(id.to_string().parse::<TenantId>(), Ok(id));
    }

    #[test]
    fn key_id_text_round_trips(raw in any::<u128>()) {
        let id = KeyId::from_u128(raw);
        prop_assert_eq!(id.to_string().parse::<KeyId>(), Ok(id));
    }
}
