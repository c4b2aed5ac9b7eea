//! Verification of signed webhooks from payment providers.
//!
//! The signature header has the form `t=<unix seconds>,v1=<hex>[,v1=<hex>...]`
//! where each `v1` is `hex(HMAC-SHA256(secret, "<t>.<payload>"))` (the scheme
//! Stripe uses). Verification:
//! - parses the header strictly (exactly one `t`, at least one `v1`, other
//!   keys such as `v0` ignored, at most [`SIGNATURES_MAX`] signatures, at most
//!   [`HEADER_BYTES_MAX`] bytes);
//! - accepts the webhook if any `v1` matches the HMAC under any configured
//!   secret (several `v1`s and several secrets both exist for secret
//!   rotation); comparison is constant-time (`Mac::verify_slice`);
//! - then refuses it if `t` is more than the tolerance (default
//!   [`DEFAULT_TOLERANCE_S`]) away from the [`Clock`], which bounds replay.

use aerolith_core::Clock;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Default accepted distance between the signed timestamp and now, seconds.
pub const DEFAULT_TOLERANCE_S: u64 = 300;
/// Longest signature header accepted, in bytes.
pub const HEADER_BYTES_MAX: usize = 4_096;
/// Most `v1` signatures accepted in one header.
pub const SIGNATURES_MAX: usize = 8;
/// Length of an HMAC-SHA256 in bytes.
const SIGNATURE_BYTES: usize = 32;

/// What is wrong with a signature header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderProblem {
    /// Longer than [`HEADER_BYTES_MAX`].
    TooLong,
    /// A part is not `key=value`.
    NotKeyValue,
    /// No `t=`.
    MissingTimestamp,
    /// More than one `t=`.
    DuplicateTimestamp,
    /// `t` is not a non-negative integer.
    BadTimestamp,
    /// No `v1=`.
    MissingSignature,
    /// More than [`SIGNATURES_MAX`] `v1=` parts.
    TooManySignatures,
    /// A `v1` value is not 64 hex digits.
    BadSignatureEncoding,
}

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The header could not be parsed.
    #[error("malformed signature header: {problem:?}")]
    MalformedHeader {
        /// What is wrong with it.
        problem: HeaderProblem,
    },
    /// No signature matched any configured secret.
    #[error("no signature matches")]
    BadSignature,
    /// The signature is valid but the timestamp is too far from now.
    #[error("timestamp {timestamp_unix_s} is more than {tolerance_s}s from now ({now_unix_s})")]
    TimestampOutsideTolerance {
        /// The signed timestamp.
        timestamp_unix_s: i64,
        /// Now, per the clock.
        now_unix_s: i64,
        /// The tolerance.
        tolerance_s: u64,
    },
    /// The verifier was built without any secret.
    #[error("no webhook secret configured")]
    NoSecrets,
}

/// A webhook that passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedWebhook {
    /// The signed timestamp.
    pub timestamp_unix_s: i64,
    /// Which configured secret matched (index into the secrets list).
    pub secret_index: usize,
}

/// Verifies webhook signatures against one or more secrets.
pub struct WebhookVerifier {
    secrets: Vec<Vec<u8>>,
    tolerance_s: u64,
}

impl std::fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secrets.
        f.debug_struct("WebhookVerifier")
            .field("secrets", &self.secrets.len())
            .field("tolerance_s", &self.tolerance_s)
            .finish()
    }
}

fn mac(secret: &[u8], timestamp_unix_s: i64, payload: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp_unix_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn hex_decode_signature(text: &str) -> Option<[u8; SIGNATURE_BYTES]> {
    let bytes = text.as_bytes();
    if bytes.len() != SIGNATURE_BYTES * 2 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; SIGNATURE_BYTES];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// Builds a signature header for `payload` (for providers under test and for
/// operators forwarding events).
pub fn sign(secret: &[u8], timestamp_unix_s: i64, payload: &[u8]) -> String {
    let tag = mac(secret, timestamp_unix_s, payload)
        .finalize()
        .into_bytes();
    format!("t={timestamp_unix_s},v1={}", hex_encode(&tag))
}

struct ParsedHeader {
    timestamp_unix_s: i64,
    signatures: Vec<[u8; SIGNATURE_BYTES]>,
}

fn parse_header(header: &str) -> Result<ParsedHeader, HeaderProblem> {
    if header.len() > HEADER_BYTES_MAX {
        return Err(HeaderProblem::TooLong);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(HeaderProblem::NotKeyValue)?;
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err(HeaderProblem::DuplicateTimestamp);
                }
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(HeaderProblem::BadTimestamp);
                }
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| HeaderProblem::BadTimestamp)?,
                );
            }
            "v1" => {
                if signatures.len() == SIGNATURES_MAX {
                    return Err(HeaderProblem::TooManySignatures);
                }
                signatures
                    .push(hex_decode_signature(value).ok_or(HeaderProblem::BadSignatureEncoding)?);
            }
            _ => {}
        }
    }
    let timestamp_unix_s = timestamp.ok_or(HeaderProblem::MissingTimestamp)?;
    if signatures.is_empty() {
        return Err(HeaderProblem::MissingSignature);
    }
    Ok(ParsedHeader {
        timestamp_unix_s,
        signatures,
    })
}

impl WebhookVerifier {
    /// A verifier accepting any of `secrets` (the current one first, then
    /// ones being rotated out), with the default tolerance.
    pub fn new(secrets: Vec<Vec<u8>>) -> Result<Self, WebhookError> {
        if secrets.is_empty() {
            return Err(WebhookError::NoSecrets);
        }
        Ok(WebhookVerifier {
            secrets,
            tolerance_s: DEFAULT_TOLERANCE_S,
        })
    }

    /// Sets the timestamp tolerance in seconds.
    pub fn with_tolerance_s(mut self, tolerance_s: u64) -> Self {
        self.tolerance_s = tolerance_s;
        self
    }

    /// Verifies `payload` (the raw request body) against `header`.
    pub fn verify(
        &self,
        header: &str,
        payload: &[u8],
        clock: &dyn Clock,
    ) -> Result<VerifiedWebhook, WebhookError> {
        let parsed =
            parse_header(header).map_err(|problem| WebhookError::MalformedHeader { problem })?;
        let secret_index = self
            .secrets
            .iter()
            .position(|secret| {
                parsed.signatures.iter().any(|signature| {
                    mac(secret, parsed.timestamp_unix_s, payload)
                        .verify_slice(signature)
                        .is_ok()
                })
            })
            .ok_or(WebhookError::BadSignature)?;
        let now_unix_s = clock.now_unix_ms().div_euclid(1_000);
        if now_unix_s.abs_diff(parsed.timestamp_unix_s) > self.tolerance_s {
            return Err(WebhookError::TimestampOutsideTolerance {
                timestamp_unix_s: parsed.timestamp_unix_s,
                now_unix_s,
                tolerance_s: self.tolerance_s,
            });
        }
        Ok(VerifiedWebhook {
            timestamp_unix_s: parsed.timestamp_unix_s,
            secret_index,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerolith_core::ManualClock;

    const NOW_S: i64 = 1_700_000_000;
    const PAYLOAD: &[u8] = br#"{"type":"payment.succeeded","invoice":"inv_1"}"#;

    fn clock() -> ManualClock {
        ManualClock::new(NOW_S * 1_000 + 500)
    }

    fn verifier() -> WebhookVerifier {
        WebhookVerifier::new(vec![b"whsec_new".to_vec(), b"whsec_old".to_vec()]).expect("secrets")
    }

    fn malformed(problem: HeaderProblem) -> Result<VerifiedWebhook, WebhookError> {
        Err(WebhookError::MalformedHeader { problem })
    }

    #[test]
    fn known_vector_matches_the_reference_hmac() {
        // HMAC-SHA256(key="secret", msg="1700000000.hello"), computed with
        // Python's hmac module.
        assert_eq!(
            sign(b"secret", 1_700_000_000, b"hello"),
            "t=1700000000,v1=47b1df0ab12338b2685470b0d2b37033add7c3b2bc8172f313e77413f1bb78c8"
        );
    }

    #[test]
    fn valid_signature_within_tolerance_is_accepted() {
        let header = sign(b"whsec_new", NOW_S - 299, PAYLOAD);
        assert_eq!(
            verifier().verify(&header, PAYLOAD, &clock()),
            Ok(VerifiedWebhook {
                timestamp_unix_s: NOW_S - 299,
                secret_index: 0
            })
        );
    }

    #[test]
    fn old_secret_and_extra_signatures_are_accepted_during_rotation() {
        let old = sign(b"whsec_old", NOW_S, PAYLOAD);
        assert_eq!(
            verifier()
                .verify(&old, PAYLOAD, &clock())
                .map(|v| v.secret_index),
            Ok(1)
        );
        // A provider signing with two secrets sends two v1 values.
        let unknown = sign(b"whsec_other", NOW_S, PAYLOAD);
        let unknown_sig = unknown.split_once(",v1=").expect("has v1").1;
        let header = format!(
            "t={NOW_S},v1={unknown_sig},v0=ignored,{}",
            &old[old.find("v1").expect("v1")..]
        );
        assert!(verifier().verify(&header, PAYLOAD, &clock()).is_ok());
    }

    #[test]
    fn tampered_payload_or_wrong_secret_is_a_bad_signature() {
        let header = sign(b"whsec_new", NOW_S, PAYLOAD);
        assert_eq!(
            verifier().verify(&header, b"{\"type\":\"payment.failed\"}", &clock()),
            Err(WebhookError::BadSignature)
        );
        let header = sign(b"whsec_attacker", NOW_S, PAYLOAD);
        assert_eq!(
            verifier().verify(&header, PAYLOAD, &clock()),
            Err(WebhookError::BadSignature)
        );
        // Re-signing the same signature with another timestamp fails too.
        let sig = sign(b"whsec_new", NOW_S, PAYLOAD);
        let moved = sig.replace(&format!("t={NOW_S}"), &format!("t={}", NOW_S + 1));
        assert_eq!(
            verifier().verify(&moved, PAYLOAD, &clock()),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn timestamps_outside_tolerance_are_refused_both_ways() {
        for t in [NOW_S - 301, NOW_S + 301] {
            let header = sign(b"whsec_new", t, PAYLOAD);
            assert_eq!(
                verifier().verify(&header, PAYLOAD, &clock()),
                Err(WebhookError::TimestampOutsideTolerance {
                    timestamp_unix_s: t,
                    now_unix_s: NOW_S,
                    tolerance_s: 300
                })
            );
        }
        let header = sign(b"whsec_new", NOW_S + 300, PAYLOAD);
        assert!(verifier().verify(&header, PAYLOAD, &clock()).is_ok());
        let strict = verifier().with_tolerance_s(10);
        let header = sign(b"whsec_new", NOW_S - 11, PAYLOAD);
        assert!(matches!(
            strict.verify(&header, PAYLOAD, &clock()),
            Err(WebhookError::TimestampOutsideTolerance {
                tolerance_s: 10,
                ..
            })
        ));
    }

    #[test]
    fn malformed_headers_are_refused_with_their_problem() {
        let v = verifier();
        let c = clock();
        let sig = "ab".repeat(32);
        assert_eq!(
            v.verify("", PAYLOAD, &c),
            malformed(HeaderProblem::NotKeyValue)
        );
        assert_eq!(
            v.verify(&format!("v1={sig}"), PAYLOAD, &c),
            malformed(HeaderProblem::MissingTimestamp)
        );
        assert_eq!(
            v.verify("t=1,t=2,v1=00", PAYLOAD, &c),
            malformed(HeaderProblem::DuplicateTimestamp)
        );
        assert_eq!(
            v.verify(&format!("t=-5,v1={sig}"), PAYLOAD, &c),
            malformed(HeaderProblem::BadTimestamp)
        );
        assert_eq!(
            v.verify(&format!("t=99999999999999999999,v1={sig}"), PAYLOAD, &c),
            malformed(HeaderProblem::BadTimestamp)
        );
        assert_eq!(
            v.verify("t=1", PAYLOAD, &c),
            malformed(HeaderProblem::MissingSignature)
        );
        assert_eq!(
            v.verify("t=1,v1=zz", PAYLOAD, &c),
            malformed(HeaderProblem::BadSignatureEncoding)
        );
        assert_eq!(
            v.verify(&format!("t=1,v1={}", "g".repeat(64)), PAYLOAD, &c),
            malformed(HeaderProblem::BadSignatureEncoding)
        );
        let many = vec![format!("v1={sig}"); SIGNATURES_MAX + 1].join(",");
        assert_eq!(
            v.verify(&format!("t=1,{many}"), PAYLOAD, &c),
            malformed(HeaderProblem::TooManySignatures)
        );
        let long = format!("t=1,v1={sig},x={}", "a".repeat(HEADER_BYTES_MAX));
        assert_eq!(
            v.verify(&long, PAYLOAD, &c),
            malformed(HeaderProblem::TooLong)
        );
        assert_eq!(
            WebhookVerifier::new(vec![]).map(|_| ()),
            Err(WebhookError::NoSecrets)
        );
    }
}
