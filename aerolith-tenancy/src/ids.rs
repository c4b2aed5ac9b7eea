//! Identifiers: [`TenantId`], [`Slug`] and [`KeyId`].
//!
//! A `TenantId` is a `u64` allocated sequentially by the tenant registry. It is
//! not a secret and isolation never depends on it being hard to guess: every
//! access goes through an authenticated principal, so a small, dense number
//! keeps keys, tokens and indexes compact. It renders as plain decimal text.
//!
//! A `Slug` is the human, URL-safe name of a tenant (`acme-corp`), validated
//! on construction so an invalid slug cannot exist. A `KeyId` names one API key
//! and is 128 random bits, rendered as 32 lowercase hex digits; it is public
//! (it appears in listings and audit entries), unlike the key's secret.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{IdParseError, SlugError};

/// Identifies one tenant. Allocated sequentially by the registry; not secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(u64);

impl TenantId {
    /// Wraps a raw id (as allocated by the registry or read back from disk).
    pub const fn new(raw: u64) -> Self {
        TenantId(raw)
    }

    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Fixed 8-byte big-endian encoding, used in token payloads and hashes.
    pub const fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// Inverse of [`TenantId::to_be_bytes`].
    pub const fn from_be_bytes(bytes: [u8; 8]) -> Self {
        TenantId(u64::from_be_bytes(bytes))
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for TenantId {
    type Err = IdParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // `u64::from_str` accepts a leading '+'; ids have exactly one spelling.
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdParseError::NotDecimal);
        }
        if text.len() > 1 && text.starts_with('0') {
            return Err(IdParseError::LeadingZero);
        }
        text.parse::<u64>()
            .map(TenantId)
            .map_err(|_| IdParseError::OutOfRange)
    }
}

/// Shortest allowed slug, in characters.
pub const SLUG_LEN_MIN: usize = 3;
/// Longest allowed slug, in characters.
pub const SLUG_LEN_MAX: usize = 40;

/// A validated tenant slug: 3..=40 characters of `a-z`, `0-9` and `-`, not
/// starting or ending with `-`. It never contains `_`, which is what lets an
/// API key `ak_<slug>_<secret>` be split unambiguously.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Slug(String);

impl Slug {
    /// Validates `text` as a slug.
    pub fn new(text: &str) -> Result<Self, SlugError> {
        validate_slug(text)?;
        Ok(Slug(text.to_owned()))
    }

    /// The slug text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate_slug(text: &str) -> Result<(), SlugError> {
    // Check the alphabet first so that lengths below are byte == char counts.
    if let Some(position) = text
        .bytes()
        .position(|b| !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    {
        return Err(SlugError::InvalidChar { position });
    }
    let len = text.len();
    if len < SLUG_LEN_MIN {
        return Err(SlugError::TooShort {
            len,
            min: SLUG_LEN_MIN,
        });
    }
    if len > SLUG_LEN_MAX {
        return Err(SlugError::TooLong {
            len,
            max: SLUG_LEN_MAX,
        });
    }
    if text.starts_with('-') || text.ends_with('-') {
        return Err(SlugError::EdgeHyphen);
    }
    Ok(())
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Slug {
    type Err = SlugError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Slug::new(text)
    }
}

impl TryFrom<String> for Slug {
    type Error = SlugError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        validate_slug(&text)?;
        Ok(Slug(text))
    }
}

impl From<Slug> for String {
    fn from(slug: Slug) -> Self {
        slug.0
    }
}

/// Identifies one API key: 128 random bits, public, rendered as 32 lowercase
/// hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(u128);

/// Length of a rendered [`KeyId`], in characters.
pub const KEY_ID_TEXT_LEN: usize = 32;

impl KeyId {
    /// Wraps a raw id.
    pub const fn from_u128(raw: u128) -> Self {
        KeyId(raw)
    }

    /// The raw number.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// A fresh id from the thread-local CSPRNG.
    pub fn random() -> Self {
        KeyId(rand::random())
    }

    /// Fixed 16-byte big-endian encoding, used in token payloads.
    pub const fn to_be_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// Inverse of [`KeyId::to_be_bytes`].
    pub const fn from_be_bytes(bytes: [u8; 16]) -> Self {
        KeyId(u128::from_be_bytes(bytes))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl FromStr for KeyId {
    type Err = IdParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != KEY_ID_TEXT_LEN {
            return Err(IdParseError::WrongLength {
                len: text.len(),
                expected: KEY_ID_TEXT_LEN,
            });
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(IdParseError::NotLowerHex);
        }
        u128::from_str_radix(text, 16)
            .map(KeyId)
            .map_err(|_| IdParseError::NotLowerHex)
    }
}

impl TryFrom<String> for KeyId {
    type Error = IdParseError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<KeyId> for String {
    fn from(id: KeyId) -> Self {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_at_both_length_limits_is_accepted_and_one_past_is_refused() {
        assert!(Slug::new(&"a".repeat(SLUG_LEN_MIN)).is_ok());
        assert!(Slug::new(&"a".repeat(SLUG_LEN_MAX)).is_ok());
        assert_eq!(
            Slug::new(&"a".repeat(SLUG_LEN_MIN - 1)),
            Err(SlugError::TooShort { len: 2, min: 3 })
        );
        assert_eq!(
            Slug::new(&"a".repeat(SLUG_LEN_MAX + 1)),
            Err(SlugError::TooLong { len: 41, max: 40 })
        );
    }

    #[test]
    fn key_id_round_trips_through_text() {
        let id = KeyId::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        assert_eq!(id.to_string(), "0123456789abcdef0011223344556677");
        assert_eq!(id.to_string().parse::<KeyId>(), Ok(id));
    }

    #[test]
    fn tenant_id_has_one_spelling() {
        assert_eq!("42".parse::<TenantId>(), Ok(TenantId::new(42)));
        assert_eq!("0".parse::<TenantId>(), Ok(TenantId::new(0)));
        assert_eq!("+42".parse::<TenantId>(), Err(IdParseError::NotDecimal));
        assert_eq!("042".parse::<TenantId>(), Err(IdParseError::LeadingZero));
        assert_eq!(
            "18446744073709551616".parse::<TenantId>(),
            Err(IdParseError::OutOfRange)
        );
    }
}
