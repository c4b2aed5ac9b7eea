use std::sync::Arc;
use std::time::Duration;

use aerolith_core::ManualClock;
use aerolith_tenancy::{
    KeyId, Role, SessionClaims, TenantId, TokenError, TokenSigner, TOKEN_LIFETIME_MS_MAX,
    TOKEN_MAC_CONTEXT, TOKEN_PAYLOAD_BYTES,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

const START_MS: i64 = 1_700_000_000_000;
const SECRET: [u8; 32] = [7; 32];
const TENANT: TenantId = TenantId::new(11);
const KEY: KeyId = KeyId::from_u128(0xfeed);

fn signer() -> (TokenSigner, ManualClock) {
    let clock = ManualClock::new(START_MS);
    (TokenSigner::new(&SECRET, Arc::new(clock.clone())), clock)
}

fn issue(signer: &TokenSigner, lifetime_ms: u64) -> String {
    let (token, _) = signer
        .issue(TENANT, KEY, Role::Writer, lifetime_ms)
        .expect("issued");
    token.expose().to_owned()
}

/// Builds a token the way the server does, from raw payload bytes, to test
/// what verification does with payloads the signer would never produce.
fn sign_raw(payload: &[u8]) -> String {
    let key = blake3::derive_key(TOKEN_MAC_CONTEXT, &SECRET);
    let mac = blake3::keyed_hash(&key, payload);
    format!(
        "st_{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(mac.as_bytes())
    )
}

fn payload_of(token: &str) -> Vec<u8> {
    let body = token.strip_prefix("st_").expect("prefix");
    let (payload, _) = body.split_once('.').expect("dot");
    URL_SAFE_NO_PAD.decode(payload).expect("base64")
}

#[test]
fn issued_token_verifies_with_its_claims() {
    let (signer, _) = signer();
    let (token, claims) = signer
        .issue(TENANT, KEY, Role::Writer, 60_000)
        .expect("issued");
    assert_eq!(
        claims,
        SessionClaims {
            tenant: TENANT,
            key_id: KEY,
            role: Role::Writer,
            issued_unix_ms: START_MS,
            expires_unix_ms: START_MS + 60_000,
        }
    );
    assert_eq!(signer.verify(token.expose(), Some(TENANT)), Ok(claims));
    assert_eq!(signer.verify(token.expose(), None), Ok(claims));
    assert!(token.expose().starts_with("st_"));
    assert_eq!(payload_of(token.expose()).len(), TOKEN_PAYLOAD_BYTES);
    assert!(!format!("{token:?}").contains('.'));
}

#[test]
fn flipping_any_bit_of_any_byte_of_a_token_is_refused() {
    let (signer, _) = signer();
    let token = issue(&signer, 60_000);
    for position in 0..token.len() {
        for bit in 0..8 {
            let mut bytes = token.as_bytes().to_vec();
            bytes[position] ^= 1 << bit;
            // Non-UTF-8 results cannot even be presented as text.
            let Ok(altered) = String::from_utf8(bytes) else {
                continue;
            };
            assert!(
                signer.verify(&altered, None).is_err(),
                "byte {position} bit {bit} accepted"
            );
        }
    }
}

#[test]
fn flipping_any_payload_bit_is_a_bad_signature_or_unknown_version() {
    let (signer, _) = signer();
    let token = issue(&signer, 60_000);
    let (payload_text, mac_text) = token["st_".len()..].split_once('.').expect("dot");
    let payload = URL_SAFE_NO_PAD.decode(payload_text).expect("base64");
    for position in 0..payload.len() {
        for bit in 0..8 {
            let mut altered = payload.clone();
            altered[position] ^= 1 << bit;
            let text = format!("st_{}.{mac_text}", URL_SAFE_NO_PAD.encode(&altered));
            let expected = if position == 0 {
                TokenError::UnknownVersion {
                    version: altered[0],
                }
            } else {
                TokenError::BadSignature
            };
            assert_eq!(signer.verify(&text, None), Err(expected));
        }
    }
}

#[test]
fn token_signed_with_another_secret_is_refused() {
    let clock = Arc::new(ManualClock::new(START_MS));
    let other = TokenSigner::new(&[8; 32], clock);
    let (signer, _) = signer();
    let token = issue(&other, 60_000);
    assert_eq!(signer.verify(&token, None), Err(TokenError::BadSignature));
}

#[test]
fn expired_token_is_refused_from_its_expiry_instant() {
    let (signer, clock) = signer();
    let token = issue(&signer, 1_000);
    clock.advance(Duration::from_millis(999));
    assert!(signer.verify(&token, None).is_ok());
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        signer.verify(&token, None),
        Err(TokenError::Expired {
            expired_unix_ms: START_MS + 1_000
        })
    );
}

#[test]
fn token_for_another_tenant_is_refused() {
    let (signer, _) = signer();
    let token = issue(&signer, 1_000);
    assert_eq!(
        signer.verify(&token, Some(TenantId::new(12))),
        Err(TokenError::WrongTenant)
    );
}

#[test]
fn unknown_version_is_refused_even_with_a_valid_mac() {
    let (signer, _) = signer();
    let mut payload = payload_of(&issue(&signer, 1_000));
    payload[0] = 2;
    assert_eq!(
        signer.verify(&sign_raw(&payload), None),
        Err(TokenError::UnknownVersion { version: 2 })
    );
}

#[test]
fn unknown_role_code_is_malformed_even_with_a_valid_mac() {
    let (signer, _) = signer();
    let mut payload = payload_of(&issue(&signer, 1_000));
    payload[25] = 9;
    assert_eq!(
        signer.verify(&sign_raw(&payload), None),
        Err(TokenError::Malformed)
    );
}

#[test]
fn malformed_tokens_are_refused_as_malformed() {
    let (signer, _) = signer();
    let token = issue(&signer, 1_000);
    let body = &token["st_".len()..];
    let (payload, mac) = body.split_once('.').expect("dot");
    let mut short_payload = payload_of(&token);
    short_payload.pop();
    let cases = [
        String::new(),
        "st_".to_owned(),
        body.to_owned(),
        format!("ST_{body}"),
        format!("st_{payload}{mac}"),
        format!("st_{payload}.{mac}.{mac}"),
        format!("st_{payload}=.{mac}"),
        format!("st_{payload}.{}", &mac[..mac.len() - 1]),
        format!("st_{payload}.{mac}AA"),
        format!("st_.{mac}"),
        format!("st_{payload}."),
        format!("st_{payload}.{mac} "),
        sign_raw(&short_payload),
        format!("{token}{}", "A".repeat(200)),
    ];
    for case in cases {
        assert_eq!(
            signer.verify(&case, None),
            Err(TokenError::Malformed),
            "{case:?}"
        );
    }
}

#[test]
fn lifetime_must_be_positive_and_at_most_the_maximum() {
    let (signer, _) = signer();
    assert!(signer
        .issue(TENANT, KEY, Role::Reader, TOKEN_LIFETIME_MS_MAX)
        .is_ok());
    for lifetime_ms in [0, TOKEN_LIFETIME_MS_MAX + 1] {
        assert_eq!(
            signer
                .issue(TENANT, KEY, Role::Reader, lifetime_ms)
                .map(|(_, c)| c),
            Err(TokenError::LifetimeOutOfRange {
                requested_ms: lifetime_ms,
                max_ms: TOKEN_LIFETIME_MS_MAX
            })
        );
    }
}

#[test]
fn refresh_extends_a_valid_token() {
    let (signer, clock) = signer();
    let token = issue(&signer, 10_000);
    clock.advance(Duration::from_millis(9_000));
    let (fresh, claims) = signer.refresh(&token, 10_000).expect("refreshed");
    assert_eq!(claims.issued_unix_ms, START_MS + 9_000);
    assert_eq!(claims.expires_unix_ms, START_MS + 19_000);
    assert_eq!(
        (claims.tenant, claims.key_id, claims.role),
        (TENANT, KEY, Role::Writer)
    );
    clock.advance(Duration::from_millis(5_000));
    assert!(signer.verify(&token, None).is_err());
    assert_eq!(signer.verify(fresh.expose(), Some(TENANT)), Ok(claims));
}

#[test]
fn expired_or_forged_token_cannot_be_refreshed() {
    let (signer, clock) = signer();
    let token = issue(&signer, 1_000);
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'Q' } else { b'A' };
    let forged = String::from_utf8(forged).expect("ascii");
    assert!(signer.refresh(&forged, 1_000).is_err());
    clock.advance(Duration::from_millis(1_000));
    assert_eq!(
        signer.refresh(&token, 1_000).map(|(_, c)| c),
        Err(TokenError::Expired {
            expired_unix_ms: START_MS + 1_000
        })
    );
}

#[test]
fn token_errors_never_echo_the_token() {
    let (signer, clock) = signer();
    let token = issue(&signer, 1_000);
    clock.advance(Duration::from_secs(2));
    let error = signer.verify(&token, Some(TENANT)).expect_err("expired");
    let (payload, mac) = token["st_".len()..].split_once('.').expect("dot");
    let text = format!("{error} {error:?} {signer:?}");
    assert!(!text.contains(payload) && !text.contains(mac), "{text}");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn claims_round_trip_for_any_tenant_key_and_role(
            tenant in any::<u64>(),
            key in any::<u128>(),
            role_index in 0usize..4,
            lifetime_ms in 1..=TOKEN_LIFETIME_MS_MAX,
        ) {
            let (signer, _) = signer();
            let role = Role::ALL[role_index];
            let (token, claims) = signer
                .issue(TenantId::new(tenant), KeyId::from_u128(key), role, lifetime_ms)
                .expect("issued");
            prop_assert_eq!(signer.verify(token.expose(), Some(TenantId::new(tenant))), Ok(claims));
        }

        #[test]
        fn arbitrary_text_never_verifies(text in "st_[A-Za-z0-9_.-]{0,120}") {
            let (signer, _) = signer();
            prop_assert!(signer.verify(&text, None).is_err());
        }
    }
}
