//! How a tenant's collection names map to engine collection names, and how
//! engine errors are rewritten before a tenant sees them.
//!
//! In shared mode every collection of tenant `7` is stored as
//! `t7.<name>`. Tenant names are restricted to `[A-Za-z0-9_-]{1,64}`, so a
//! name can never contain the `.` separator, never be `..` or a path, and
//! never spell another tenant's prefix: the mapping is injective and the
//! prefix of one tenant is never a prefix of another's (`t1.` vs `t12.`
//! differ at the `.`). Dedicated tenants use the name as is. Engine errors
//! name the internal collection; [`sanitize`] strips the prefix and drops
//! file paths.

use aerolith_core::{Error as CoreError, InvalidInput};

use crate::error::EngineError;

/// Longest tenant collection name, in bytes.
pub const COLLECTION_NAME_LEN_MAX: usize = 64;

/// Characters of an invalid name echoed back in an error.
const SHOWN_NAME_CHARS_MAX: usize = 64;

/// Checks a tenant collection name against `[A-Za-z0-9_-]{1,64}`.
pub(crate) fn validate_collection_name(name: &str) -> Result<(), EngineError> {
    let bad = |reason| {
        Err(EngineError::InvalidCollectionName {
            name: name.chars().take(SHOWN_NAME_CHARS_MAX).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > COLLECTION_NAME_LEN_MAX {
        return bad("longer than 64 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return bad("only ASCII letters, digits, '_' and '-' are allowed");
    }
    Ok(())
}

/// The engine-side prefix of one tenant in shared mode.
pub(crate) fn shared_prefix(tenant: crate::TenantId) -> String {
    format!("t{tenant}.")
}

/// Rewrites an engine error for a tenant whose collections carry `prefix`
/// (empty for dedicated tenants).
pub(crate) fn sanitize(error: CoreError, prefix: &str, operation: &'static str) -> EngineError {
    let strip = |name: String| match name.strip_prefix(prefix) {
        Some(rest) => rest.to_owned(),
        None => name,
    };
    match error {
        CoreError::CollectionNotFound { collection } => EngineError::CollectionNotFound {
            collection: strip(collection),
        },
        CoreError::CollectionExists { collection } => EngineError::CollectionExists {
            collection: strip(collection),
        },
        CoreError::DocumentNotFound { collection, id } => EngineError::DocumentNotFound {
            collection: strip(collection),
            id,
        },
        CoreError::DocumentExists { collection, id } => EngineError::DocumentExists {
            collection: strip(collection),
            id,
        },
        CoreError::UniqueViolation {
            collection,
            path,
            existing_id,
        } => EngineError::UniqueViolation {
            collection: strip(collection),
            path,
            existing_id,
        },
        CoreError::IndexNotFound { collection, path } => EngineError::IndexNotFound {
            collection: strip(collection),
            path,
        },
        CoreError::IndexExists { collection, path } => EngineError::IndexExists {
            collection: strip(collection),
            path,
        },
        CoreError::Invalid(InvalidInput::InvalidCollectionName { name, reason }) => {
            EngineError::InvalidCollectionName {
                name: strip(name),
                reason,
            }
        }
        CoreError::Invalid(invalid) => EngineError::Invalid(invalid),
        CoreError::Query(query) => EngineError::Query(query),
        CoreError::Timeout {
            budget_ms,
            elapsed_ms,
        } => EngineError::Timeout {
            budget_ms,
            elapsed_ms,
        },
        // I/O, corruption, key, lock and import errors carry paths or
        // internal names; the tenant learns only that storage failed.
        _ => EngineError::Unavailable { operation },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_are_refused() {
        for bad in ["", "..", "a/b", "a.b", "t1.x", "a\0b", "é", &"x".repeat(65)] {
            assert!(validate_collection_name(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "A_b-9", &"x".repeat(64)] {
            assert!(validate_collection_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn sanitize_strips_the_shared_prefix() {
        let error = CoreError::DocumentNotFound {
            collection: "t7.users".into(),
            id: "u1".into(),
        };
        let clean = sanitize(error, "t7.", "get");
        assert_eq!(
            clean,
            EngineError::DocumentNotFound {
                collection: "users".into(),
                id: "u1".into()
            }
        );
        assert!(!clean.to_string().contains("t7."));
    }
}
