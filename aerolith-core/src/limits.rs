//! Limits on what the engine accepts, as named constants, and the validation
//! of names, ids and documents against them. Every limit is tested at the
//! limit and one past it.

use serde_json::Value;

use crate::error::{json_type_name, InvalidInput};

/// Largest encoded (JSON) document, in bytes.
pub const DOC_SIZE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Deepest nesting of objects and arrays in a document (the document itself is depth 1).
pub const DOC_DEPTH_MAX: usize = 64;
/// Longest document id, in bytes.
pub const ID_BYTES_MAX: usize = 128;
/// Longest collection name, in bytes.
pub const COLLECTION_NAME_BYTES_MAX: usize = 128;
/// Longest index path, in bytes.
pub const INDEX_PATH_BYTES_MAX: usize = 256;
/// Most operations in one write batch.
pub const BATCH_OPS_MAX: usize = 100_000;

/// The field that holds a document's id.
pub const ID_FIELD: &str = "_id";

fn shorten(s: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 64;
    if s.chars().count() <= SHOWN_CHARS_MAX {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(SHOWN_CHARS_MAX).collect();
        out.push('…');
        out
    }
}

/// Checks a collection name: 1 to [`COLLECTION_NAME_BYTES_MAX`] bytes of ASCII
/// letters, digits, `_`, `-` and `.`, not starting with `.` and without `..`.
pub fn validate_collection_name(name: &str) -> Result<(), InvalidInput> {
    let bad = |reason| {
        Err(InvalidInput::InvalidCollectionName {
            name: shorten(name),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > COLLECTION_NAME_BYTES_MAX {
        return bad("longer than 128 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return bad("only ASCII letters, digits, '_', '-' and '.' are allowed");
    }
    if name.starts_with('.') {
        return bad("must not start with '.'");
    }
    if name.contains("..") {
        return bad("must not contain '..'");
    }
    Ok(())
}

/// Checks a document id: 1 to [`ID_BYTES_MAX`] bytes of ASCII letters, digits
/// and `_ - . : @ + =`; not `.` or `..` (ids travel in URLs).
pub fn validate_id(id: &str) -> Result<(), InvalidInput> {
    let bad = |reason| {
        Err(InvalidInput::InvalidId {
            id: shorten(id),
            reason,
        })
    };
    if id.is_empty() {
        return bad("empty");
    }
    if id.len() > ID_BYTES_MAX {
        return bad("longer than 128 bytes");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-.:@+=".contains(&b))
    {
        return bad("only ASCII letters, digits and _ - . : @ + = are allowed");
    }
    if id == "." || id == ".." {
        return bad("'.' and '..' are reserved");
    }
    Ok(())
}

/// Checks an index path: dotted field names, each non-empty and not starting with `$`.
pub fn validate_index_path(path: &str) -> Result<(), InvalidInput> {
    let bad = |reason| {
        Err(InvalidInput::InvalidIndexPath {
            path: shorten(path),
            reason,
        })
    };
    if path.is_empty() {
        return bad("empty");
    }
    if path.len() > INDEX_PATH_BYTES_MAX {
        return bad("longer than 256 bytes");
    }
    if path.split('.').any(|seg| seg.is_empty()) {
        return bad("empty path segment");
    }
    if path.split('.').any(|seg| seg.starts_with('$')) {
        return bad("path segments must not start with '$'");
    }
    if path.chars().any(char::is_control) {
        return bad("control characters are not allowed");
    }
    Ok(())
}

/// The nesting depth of a JSON value: scalars are 0, `{}` and `[]` are 1.
/// Iterative, so hostile input cannot overflow the stack.
pub fn json_depth(value: &Value) -> usize {
    let mut depth_max = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, depth)) = stack.pop() {
        match v {
            Value::Array(items) => {
                depth_max = depth_max.max(depth + 1);
                stack.extend(items.iter().map(|i| (i, depth + 1)));
            }
            Value::Object(map) => {
                depth_max = depth_max.max(depth + 1);
                stack.extend(map.values().map(|i| (i, depth + 1)));
            }
            _ => {}
        }
    }
    depth_max
}

/// Whether `json_depth(value) <= depth_max`, without building a stack of
/// every member as [`json_depth`] does (that was a twentieth of adding a
/// document to a batch). Recursive, but never deeper than `depth_max`
/// calls, whatever the input.
fn depth_at_most(value: &Value, depth_max: usize) -> bool {
    match value {
        Value::Array(items) => {
            depth_max >= 1 && items.iter().all(|v| depth_at_most(v, depth_max - 1))
        }
        Value::Object(map) => {
            depth_max >= 1 && map.values().all(|v| depth_at_most(v, depth_max - 1))
        }
        _ => true,
    }
}

/// Checks that a document is an object within the depth limit and that its
/// `_id`, if present, is a valid id string. Returns the id if present.
pub fn validate_document(doc: &Value) -> Result<Option<&str>, InvalidInput> {
    let Value::Object(map) = doc else {
        return Err(InvalidInput::NotAnObject {
            found: json_type_name(doc),
        });
    };
    if !depth_at_most(doc, DOC_DEPTH_MAX) {
        return Err(InvalidInput::DocumentTooDeep {
            depth_max: DOC_DEPTH_MAX,
        });
    }
    match map.get(ID_FIELD) {
        None => Ok(None),
        Some(Value::String(id)) => {
            validate_id(id)?;
            Ok(Some(id))
        }
        Some(other) => Err(InvalidInput::IdNotString {
            found: json_type_name(other),
        }),
    }
}

/// Checks the encoded size of a document.
pub fn validate_encoded_size(size_bytes: usize) -> Result<(), InvalidInput> {
    if size_bytes > DOC_SIZE_BYTES_MAX {
        return Err(InvalidInput::DocumentTooLarge {
            size_bytes,
            limit_bytes: DOC_SIZE_BYTES_MAX,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collection_names_at_and_past_the_length_limit() {
        assert!(validate_collection_name(&"a".repeat(COLLECTION_NAME_BYTES_MAX)).is_ok());
        assert!(matches!(
            validate_collection_name(&"a".repeat(COLLECTION_NAME_BYTES_MAX + 1)),
            Err(InvalidInput::InvalidCollectionName { .. })
        ));
    }

    #[test]
    fn collection_names_that_look_like_paths_are_refused() {
        for name in [
            "", "..", ".hidden", "a..b", "a/b", "a\\b", "a\0b", "a b", "ü", "a~b",
        ] {
            assert!(validate_collection_name(name).is_err(), "{name:?} accepted");
        }
        for name in ["users", "t.abc.users", "Users_2", "a-b"] {
            assert!(validate_collection_name(name).is_ok(), "{name:?} refused");
        }
    }

    #[test]
    fn ids_at_and_past_the_length_limit() {
        assert!(validate_id(&"x".repeat(ID_BYTES_MAX)).is_ok());
        assert!(validate_id(&"x".repeat(ID_BYTES_MAX + 1)).is_err());
    }

    #[test]
    fn ids_with_separators_or_control_characters_are_refused() {
        for id in ["", ".", "..", "a/b", "a\0", "a b", "a\n", "é"] {
            assert!(validate_id(id).is_err(), "{id:?} accepted");
        }
        for id in ["a", "user:42", "x@y.z", "a+b=c", "..a"] {
            assert!(validate_id(id).is_ok(), "{id:?} refused");
        }
    }

    #[test]
    fn the_bounded_depth_check_agrees_with_json_depth() {
        let docs = [
            json!(1),
            json!([]),
            json!({}),
            json!([[], [[1]], {"a": {"b": []}}]),
            json!({"a": [1, {"b": [[[]]]}], "c": "x"}),
        ];
        for doc in &docs {
            for depth_max in 0..6 {
                assert_eq!(depth_at_most(doc, depth_max), json_depth(doc) <= depth_max);
            }
        }
        // Far deeper than the bound: answered without going deeper than it.
        let mut deep = json!([]);
        for _ in 0..100_000 {
            deep = Value::Array(vec![deep]);
        }
        assert!(!depth_at_most(&deep, DOC_DEPTH_MAX));
        // Dropping a value this deep recurses in serde_json itself.
        std::mem::forget(deep);
    }

    #[test]
    fn depth_is_checked_at_and_past_the_limit() {
        let mut at_limit = json!({});
        for _ in 1..DOC_DEPTH_MAX {
            at_limit = json!({ "a": at_limit });
        }
        assert_eq!(json_depth(&at_limit), DOC_DEPTH_MAX);
        assert!(validate_document(&at_limit).is_ok());
        let past = json!({ "a": at_limit });
        assert_eq!(json_depth(&past), DOC_DEPTH_MAX + 1);
        assert_eq!(
            validate_document(&past),
            Err(InvalidInput::DocumentTooDeep {
                depth_max: DOC_DEPTH_MAX
            })
        );
    }

    #[test]
    fn documents_must_be_objects_with_string_ids() {
        assert_eq!(
            validate_document(&json!([1])),
            Err(InvalidInput::NotAnObject { found: "array" })
        );
        assert_eq!(
            validate_document(&json!({"_id": 5})),
            Err(InvalidInput::IdNotString { found: "number" })
        );
        assert_eq!(validate_document(&json!({"_id": "k"})), Ok(Some("k")));
    }

    #[test]
    fn size_is_checked_at_and_past_the_limit() {
        assert!(validate_encoded_size(DOC_SIZE_BYTES_MAX).is_ok());
        assert!(validate_encoded_size(DOC_SIZE_BYTES_MAX + 1).is_err());
    }

    #[test]
    fn index_paths_are_validated() {
        assert!(validate_index_path("a.b.c").is_ok());
        for p in ["", "a..b", ".a", "a.", "$a", "a.$b"] {
            assert!(validate_index_path(p).is_err(), "{p:?} accepted");
        }
    }
}
