//! Projections: parsing `{"a": 1, "b.c": 1}` (keep only these paths) or
//! `{"a": 0}` (drop these paths) into a [`Projection`], and applying it to a
//! document. Member order of the document is preserved.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::path::FieldPath;
use super::{QueryError, PROJECTION_PATHS_MAX};

/// The member every document keeps unless the projection says `"_id": 0`.
const ID_FIELD: &str = "_id";

/// A parsed projection.
#[derive(Debug, Clone)]
pub struct Projection {
    mode: Mode,
    tree: Tree,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Keep only the listed paths (and `_id`, unless excluded).
    Include,
    /// Keep everything except the listed paths.
    Exclude,
}

/// The listed paths as a tree of member names.
#[derive(Debug, Clone, Default)]
struct Tree {
    children: BTreeMap<String, Node>,
}

#[derive(Debug, Clone)]
enum Node {
    /// The whole member is listed.
    Whole,
    /// Only some paths below the member are listed.
    Below(Tree),
}

impl Tree {
    /// Adds a path. A listed member covers any longer path below it, whichever
    /// was listed first.
    fn insert(&mut self, names: &[&str]) {
        let Some((name, rest)) = names.split_first() else {
            return;
        };
        if rest.is_empty() {
            self.children.insert((*name).to_owned(), Node::Whole);
            return;
        }
        let node = self
            .children
            .entry((*name).to_owned())
            .or_insert_with(|| Node::Below(Tree::default()));
        if let Node::Below(subtree) = node {
            subtree.insert(rest);
        }
    }
}

impl Projection {
    /// Parses a projection: an object of paths to `1`/`true` (include) or
    /// `0`/`false` (exclude), not both, except that `"_id": 0` may accompany
    /// inclusions (and `"_id": 1` exclusions, where it changes nothing). `{}`
    /// keeps the whole document. At most [`PROJECTION_PATHS_MAX`] paths.
    pub fn parse(spec: &Value) -> Result<Projection, QueryError> {
        let Value::Object(members) = spec else {
            return Err(QueryError::NotAnObject { what: "projection" });
        };
        if members.len() > PROJECTION_PATHS_MAX {
            return Err(QueryError::TooManyPaths {
                what: "projection",
                len: members.len(),
                len_max: PROJECTION_PATHS_MAX,
            });
        }
        let mut mode = None;
        let mut keep_id = true;
        let mut tree = Tree::default();
        for (path, value) in members {
            let parsed = FieldPath::parse(path)?;
            let include = match value {
                Value::Bool(b) => *b,
                Value::Number(n) if n.as_f64() == Some(1.0) => true,
                Value::Number(n) if n.as_f64() == Some(0.0) => false,
                _ => {
                    return Err(QueryError::InvalidProjectionValue { path: path.clone() });
                }
            };
            if parsed.is_single(ID_FIELD) {
                keep_id = include;
                continue;
            }
            let wanted = if include {
                Mode::Include
            } else {
                Mode::Exclude
            };
            if *mode.get_or_insert(wanted) != wanted {
                return Err(QueryError::MixedProjection { path: path.clone() });
            }
            tree.insert(&parsed.segment_names().collect::<Vec<_>>());
        }
        let mode = match mode {
            Some(mode) => mode,
            // Only `_id` was named: `{"_id": 0}` drops it, `{"_id": 1}` keeps
            // only it.
            None if keep_id => {
                if members.is_empty() {
                    Mode::Exclude
                } else {
                    Mode::Include
                }
            }
            None => Mode::Exclude,
        };
        match (mode, keep_id) {
            (Mode::Include, true) => {
                tree.children.insert(ID_FIELD.to_owned(), Node::Whole);
            }
            (Mode::Exclude, false) => {
                tree.children.insert(ID_FIELD.to_owned(), Node::Whole);
            }
            _ => {}
        }
        Ok(Projection { mode, tree })
    }

    /// The projected copy of `doc`. A document that is not an object is
    /// returned unchanged.
    pub fn apply(&self, doc: &Value) -> Value {
        let Value::Object(members) = doc else {
            return doc.clone();
        };
        Value::Object(match self.mode {
            Mode::Include => include(members, &self.tree),
            Mode::Exclude => exclude(members, &self.tree),
        })
    }
}

fn include(members: &Map<String, Value>, tree: &Tree) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, value) in members {
        match tree.children.get(name) {
            None => {}
            Some(Node::Whole) => {
                out.insert(name.clone(), value.clone());
            }
            Some(Node::Below(subtree)) => {
                if let Some(projected) = include_below(value, subtree) {
                    out.insert(name.clone(), projected);
                }
            }
        }
    }
    out
}

/// The parts of `value` below a member that the subtree lists; scalars have
/// none.
fn include_below(value: &Value, subtree: &Tree) -> Option<Value> {
    match value {
        Value::Object(members) => Some(Value::Object(include(members, subtree))),
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .filter_map(|item| include_below(item, subtree))
                .collect(),
        )),
        _ => None,
    }
}

fn exclude(members: &Map<String, Value>, tree: &Tree) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, value) in members {
        match tree.children.get(name) {
            None => {
                out.insert(name.clone(), value.clone());
            }
            Some(Node::Whole) => {}
            Some(Node::Below(subtree)) => {
                out.insert(name.clone(), exclude_below(value, subtree));
            }
        }
    }
    out
}

fn exclude_below(value: &Value, subtree: &Tree) -> Value {
    match value {
        Value::Object(members) => Value::Object(exclude(members, subtree)),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| exclude_below(item, subtree))
                .collect(),
        ),
        scalar => scalar.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::PathError;
    use serde_json::json;

    fn project(spec: Value, doc: Value) -> Value {
        Projection::parse(&spec)
            .expect("test projections are valid")
            .apply(&doc)
    }

    fn doc() -> Value {
        json!({
            "_id": "d1",
            "a": 1,
            "b": {"c": 2, "d": 3},
            "e": [{"c": 4, "d": 5}, {"d": 6}, 7, [{"c": 8}]],
            "f": "x"
        })
    }

    #[test]
    fn inclusion_keeps_listed_paths_and_id() {
        assert_eq!(
            project(json!({"f": 1, "a": true}), doc()),
            json!({"_id": "d1", "a": 1, "f": "x"})
        );
    }

    #[test]
    fn inclusion_of_nested_paths_keeps_the_enclosing_objects() {
        assert_eq!(
            project(json!({"b.c": 1}), doc()),
            json!({"_id": "d1", "b": {"c": 2}})
        );
        assert_eq!(
            project(json!({"e.c": 1, "_id": 0}), doc()),
            json!({"e": [{"c": 4}, {}, [{"c": 8}]]})
        );
        assert_eq!(project(json!({"a.z": 1, "_id": 0}), doc()), json!({}));
        assert_eq!(
            project(json!({"b": 1, "b.c": 1, "_id": 0}), doc()),
            json!({"b": {"c": 2, "d": 3}})
        );
    }

    #[test]
    fn exclusion_drops_listed_paths_only() {
        assert_eq!(
            project(json!({"a": 0, "b.d": false}), doc()),
            json!({
                "_id": "d1",
                "b": {"c": 2},
                "e": [{"c": 4, "d": 5}, {"d": 6}, 7, [{"c": 8}]],
                "f": "x"
            })
        );
        assert_eq!(
            project(json!({"e.d": 0, "_id": 0, "b": 0}), doc()),
            json!({"a": 1, "e": [{"c": 4}, {}, 7, [{"c": 8}]], "f": "x"})
        );
        assert_eq!(project(json!({"a.z": 0}), json!({"a": 1})), json!({"a": 1}));
    }

    #[test]
    fn id_alone_can_be_dropped_or_kept() {
        assert_eq!(
            project(json!({"_id": 0}), json!({"_id": 1, "a": 2})),
            json!({"a": 2})
        );
        assert_eq!(
            project(json!({"_id": 1}), json!({"_id": 1, "a": 2})),
            json!({"_id": 1})
        );
        assert_eq!(
            project(json!({"a": 0, "_id": 1}), json!({"_id": 1, "a": 2})),
            json!({"_id": 1})
        );
    }

    #[test]
    fn empty_projection_keeps_the_document() {
        assert_eq!(project(json!({}), doc()), doc());
        assert_eq!(project(json!({"a": 1}), json!(5)), json!(5));
    }

    #[test]
    fn member_order_of_the_document_is_kept() {
        let out = project(json!({"f": 1, "a": 1, "_id": 0}), doc());
        let names: Vec<_> = out
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect();
        assert_eq!(names, vec!["a", "f"]);
    }

    #[test]
    fn mixed_inclusion_and_exclusion_is_refused() {
        assert_eq!(
            Projection::parse(&json!({"a": 1, "b": 0})).err(),
            Some(QueryError::MixedProjection { path: "b".into() })
        );
        assert_eq!(
            Projection::parse(&json!({"a": false, "b.c": true})).err(),
            Some(QueryError::MixedProjection { path: "b.c".into() })
        );
    }

    #[test]
    fn bad_projections_are_refused() {
        assert_eq!(
            Projection::parse(&json!(["a"])).err(),
            Some(QueryError::NotAnObject { what: "projection" })
        );
        for bad in [
            json!(2),
            json!("yes"),
            json!(null),
            json!({"$slice": 1}),
            json!(-1),
        ] {
            assert_eq!(
                Projection::parse(&json!({"a": bad})).err(),
                Some(QueryError::InvalidProjectionValue { path: "a".into() })
            );
        }
        assert_eq!(
            Projection::parse(&json!({"a.$": 1})).err(),
            Some(QueryError::InvalidPath {
                path: "a.$".into(),
                reason: PathError::OperatorSegment
            })
        );
    }

    #[test]
    fn projection_size_is_limited_at_the_limit_and_one_past() {
        let spec = |n: usize| Value::Object((0..n).map(|i| (format!("k{i}"), json!(1))).collect());
        assert!(Projection::parse(&spec(PROJECTION_PATHS_MAX)).is_ok());
        assert_eq!(
            Projection::parse(&spec(PROJECTION_PATHS_MAX + 1)).err(),
            Some(QueryError::TooManyPaths {
                what: "projection",
                len: PROJECTION_PATHS_MAX + 1,
                len_max: PROJECTION_PATHS_MAX
            })
        );
    }
}
