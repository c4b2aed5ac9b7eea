//! Sort specifications: parsing `{"a": 1, "b.c": -1}` into a [`SortSpec`]
//! and comparing two documents by it, under the order of
//! [`compare_values`](super::compare_values).

use std::cmp::Ordering;
use std::ops::ControlFlow;

use serde_json::Value;

use super::order::compare_values;
use super::path::FieldPath;
use super::{QueryError, SORT_KEYS_MAX};

/// The direction of one sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDirection {
    /// Smallest first (`1`).
    Ascending,
    /// Largest first (`-1`).
    Descending,
}

/// A parsed sort specification: paths in priority order, each with a
/// direction. The empty specification orders nothing (every pair is `Equal`).
#[derive(Debug, Clone, Default)]
pub struct SortSpec {
    keys: Vec<(FieldPath, SortDirection)>,
}

static NULL: Value = Value::Null;

impl SortSpec {
    /// Parses `{"path": 1 | -1, ...}`; member order is priority order. At most
    /// [`SORT_KEYS_MAX`] paths.
    pub fn parse(spec: &Value) -> Result<SortSpec, QueryError> {
        let Value::Object(members) = spec else {
            return Err(QueryError::NotAnObject { what: "sort" });
        };
        if members.len() > SORT_KEYS_MAX {
            return Err(QueryError::TooManyPaths {
                what: "sort",
                len: members.len(),
                len_max: SORT_KEYS_MAX,
            });
        }
        let mut keys = Vec::with_capacity(members.len());
        for (path, direction) in members {
            let path_parsed = FieldPath::parse(path)?;
            let direction = match direction.as_f64() {
                Some(1.0) => SortDirection::Ascending,
                Some(-1.0) => SortDirection::Descending,
                _ => return Err(QueryError::InvalidSortDirection { path: path.clone() }),
            };
            keys.push((path_parsed, direction));
        }
        Ok(SortSpec { keys })
    }

    /// Whether the specification has no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The paths and directions, in priority order.
    pub fn keys(&self) -> impl Iterator<Item = (&str, SortDirection)> {
        self.keys.iter().map(|(path, dir)| (path.as_str(), *dir))
    }

    /// Compares two documents: by the first key, then the next on a tie, and
    /// so on. Each document's value for a key is its smallest candidate on
    /// that path when ascending, its largest when descending (arrays give
    /// their elements; missing and empty arrays count as `null`).
    pub fn compare(&self, a: &Value, b: &Value) -> Ordering {
        for (path, direction) in &self.keys {
            let ord = compare_values(
                sort_value(a, path, *direction),
                sort_value(b, path, *direction),
            );
            let ord = match direction {
                SortDirection::Ascending => ord,
                SortDirection::Descending => ord.reverse(),
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }
}

/// The value a document sorts by on one path.
fn sort_value<'a>(doc: &'a Value, path: &FieldPath, direction: SortDirection) -> &'a Value {
    let wanted = match direction {
        SortDirection::Ascending => Ordering::Less,
        SortDirection::Descending => Ordering::Greater,
    };
    let mut best: Option<&'a Value> = None;
    let mut consider = |value: &'a Value| match best {
        Some(current) if compare_values(value, current) != wanted => {}
        _ => best = Some(value),
    };
    let _ = path.walk(doc, &mut |reached| {
        match reached {
            Some(Value::Array(items)) if !items.is_empty() => items.iter().for_each(&mut consider),
            Some(Value::Array(_)) | None => consider(&NULL),
            Some(value) => consider(value),
        }
        ControlFlow::Continue(())
    });
    best.unwrap_or(&NULL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::PathError;
    use serde_json::json;

    fn sorted(spec: Value, mut docs: Vec<Value>) -> Vec<Value> {
        let spec = SortSpec::parse(&spec).expect("test specs are valid");
        docs.sort_by(|a, b| spec.compare(a, b));
        docs
    }

    #[test]
    fn sorts_ascending_and_descending() {
        let docs = vec![json!({"n": 2}), json!({"n": 1.5}), json!({"n": 3})];
        assert_eq!(
            sorted(json!({"n": 1}), docs.clone()),
            vec![json!({"n": 1.5}), json!({"n": 2}), json!({"n": 3})]
        );
        assert_eq!(
            sorted(json!({"n": -1}), docs),
            vec![json!({"n": 3}), json!({"n": 2}), json!({"n": 1.5})]
        );
    }

    #[test]
    fn later_keys_break_ties_in_member_order() {
        let docs = vec![
            json!({"a": 1, "b": 1}),
            json!({"a": 0, "b": 5}),
            json!({"a": 1, "b": 2}),
        ];
        assert_eq!(
            sorted(json!({"a": 1, "b": -1}), docs.clone()),
            vec![
                json!({"a": 0, "b": 5}),
                json!({"a": 1, "b": 2}),
                json!({"a": 1, "b": 1})
            ]
        );
        assert_eq!(
            sorted(json!({"b": 1, "a": 1}), docs),
            vec![
                json!({"a": 1, "b": 1}),
                json!({"a": 1, "b": 2}),
                json!({"a": 0, "b": 5})
            ]
        );
    }

    #[test]
    fn mixed_types_sort_by_bracket_and_ties_keep_their_order() {
        let docs = vec![
            json!({"id": 0, "v": true}),
            json!({"id": 1, "v": "s"}),
            json!({"id": 2}),
            json!({"id": 3, "v": 1}),
            json!({"id": 4, "v": null}),
            json!({"id": 5, "v": {"o": 1}}),
            json!({"id": 6, "v": 1.0}),
            json!({"id": 7, "v": false}),
        ];
        let ids: Vec<_> = sorted(json!({"v": 1}), docs)
            .iter()
            .map(|d| d["id"].clone())
            .collect();
        // Missing and null tie (2 before 4, as given); 1 and 1.0 tie (3, 6).
        assert_eq!(
            ids,
            vec![
                json!(2),
                json!(4),
                json!(3),
                json!(6),
                json!(1),
                json!(5),
                json!(7),
                json!(0)
            ]
        );
    }

    #[test]
    fn arrays_sort_by_their_smallest_or_largest_element() {
        let docs = vec![
            json!({"id": "a", "v": [5, 1]}),
            json!({"id": "b", "v": [3, 4]}),
        ];
        let ids = |v: Vec<Value>| v.iter().map(|d| d["id"].clone()).collect::<Vec<_>>();
        assert_eq!(
            ids(sorted(json!({"v": 1}), docs.clone())),
            vec![json!("a"), json!("b")]
        );
        assert_eq!(
            ids(sorted(json!({"v": -1}), docs)),
            vec![json!("a"), json!("b")]
        );
        let with_empty = vec![json!({"id": "a", "v": [0]}), json!({"id": "b", "v": []})];
        assert_eq!(
            ids(sorted(json!({"v": 1}), with_empty)),
            vec![json!("b"), json!("a")]
        );
    }

    #[test]
    fn sorts_by_dotted_paths() {
        let docs = vec![
            json!({"a": {"b": 2}}),
            json!({"a": {"b": 1}}),
            json!({"a": [{"b": 0}]}),
        ];
        assert_eq!(
            sorted(json!({"a.b": 1}), docs),
            vec![
                json!({"a": [{"b": 0}]}),
                json!({"a": {"b": 1}}),
                json!({"a": {"b": 2}})
            ]
        );
    }

    #[test]
    fn empty_spec_orders_nothing() {
        let spec = SortSpec::parse(&json!({})).expect("empty spec is valid");
        assert!(spec.is_empty());
        assert_eq!(
            spec.compare(&json!({"a": 1}), &json!({"a": 2})),
            Ordering::Equal
        );
    }

    #[test]
    fn keys_are_listed_in_priority_order() {
        let spec = SortSpec::parse(&json!({"z": -1, "a": 1.0})).expect("valid");
        assert_eq!(
            spec.keys().collect::<Vec<_>>(),
            vec![
                ("z", SortDirection::Descending),
                ("a", SortDirection::Ascending)
            ]
        );
    }

    #[test]
    fn bad_sort_specs_are_refused() {
        assert_eq!(
            SortSpec::parse(&json!([["a", 1]])).err(),
            Some(QueryError::NotAnObject { what: "sort" })
        );
        for bad in [
            json!(0),
            json!(2),
            json!("asc"),
            json!(true),
            json!(null),
            json!(0.5),
        ] {
            assert_eq!(
                SortSpec::parse(&json!({"a": bad})).err(),
                Some(QueryError::InvalidSortDirection { path: "a".into() })
            );
        }
        assert_eq!(
            SortSpec::parse(&json!({"a..b": 1})).err(),
            Some(QueryError::InvalidPath {
                path: "a..b".into(),
                reason: PathError::EmptySegment
            })
        );
    }

    #[test]
    fn sort_key_count_is_limited_at_the_limit_and_one_past() {
        let spec = |n: usize| Value::Object((0..n).map(|i| (format!("k{i}"), json!(1))).collect());
        assert!(SortSpec::parse(&spec(SORT_KEYS_MAX)).is_ok());
        assert_eq!(
            SortSpec::parse(&spec(SORT_KEYS_MAX + 1)).err(),
            Some(QueryError::TooManyPaths {
                what: "sort",
                len: SORT_KEYS_MAX + 1,
                len_max: SORT_KEYS_MAX
            })
        );
    }
}
