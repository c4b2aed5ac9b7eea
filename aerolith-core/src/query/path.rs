//! Dotted field paths: parsing and validation ([`FieldPath`]), and walking a
//! path through a document with a callback, so that matching, sorting and
//! index-key extraction visit the values a path reaches without building
//! intermediate collections. The walking rules (objects, arrays, numeric
//! segments, missing branches) are described in the `query` module documentation.

use std::ops::ControlFlow;

use serde_json::Value;

use super::{PathError, QueryError, PATH_SEGMENTS_MAX};

/// A validated dotted field path such as `"a.b.0"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    name: String,
    /// The array index this segment also denotes, if it is a canonical
    /// decimal number (`"0"`, `"17"`, not `"01"`).
    index: Option<usize>,
}

/// Longest numeric segment read as an array index; longer ones are plain
/// member names (no array that large fits in memory anyway).
const INDEX_DIGITS_MAX: usize = 9;

impl Segment {
    fn new(name: &str) -> Segment {
        let canonical = name.len() <= INDEX_DIGITS_MAX
            && name.bytes().all(|b| b.is_ascii_digit())
            && (name == "0" || !name.starts_with('0'));
        Segment {
            name: name.to_owned(),
            index: if canonical { name.parse().ok() } else { None },
        }
    }
}

impl FieldPath {
    /// Parses and validates a dotted path.
    ///
    /// Refused with [`QueryError::InvalidPath`]: the empty path, an empty
    /// segment (`"a..b"`, `".a"`), a segment starting with `$`, more than
    /// [`PATH_SEGMENTS_MAX`] segments.
    pub fn parse(text: &str) -> Result<FieldPath, QueryError> {
        let invalid = |reason| QueryError::InvalidPath {
            path: text.to_owned(),
            reason,
        };
        if text.is_empty() {
            return Err(invalid(PathError::Empty));
        }
        let mut segments = Vec::new();
        for name in text.split('.') {
            if segments.len() == PATH_SEGMENTS_MAX {
                return Err(invalid(PathError::TooManySegments {
                    segments_max: PATH_SEGMENTS_MAX,
                }));
            }
            if name.is_empty() {
                return Err(invalid(PathError::EmptySegment));
            }
            if name.starts_with('$') {
                return Err(invalid(PathError::OperatorSegment));
            }
            segments.push(Segment::new(name));
        }
        Ok(FieldPath {
            text: text.to_owned(),
            segments,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this path is the single segment `name`.
    pub(crate) fn is_single(&self, name: &str) -> bool {
        self.segments.len() == 1 && self.segments[0].name == name
    }

    /// The segment names, in order.
    pub(crate) fn segment_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().map(|s| s.name.as_str())
    }

    /// Calls `visit` with every value the path reaches in `doc` (`Some`), and
    /// once for every branch of the walk that ends missing (`None`). Stops as
    /// soon as `visit` breaks, and returns whether it did.
    pub(crate) fn walk<'a, F>(&self, doc: &'a Value, visit: &mut F) -> ControlFlow<()>
    where
        F: FnMut(Option<&'a Value>) -> ControlFlow<()>,
    {
        walk_from(doc, &self.segments, visit)
    }

    /// Like [`FieldPath::walk`], but also visits each element of every array
    /// the path reaches: the candidates that filter operators test.
    pub(crate) fn for_each_candidate<'a, F>(&self, doc: &'a Value, visit: &mut F) -> ControlFlow<()>
    where
        F: FnMut(Option<&'a Value>) -> ControlFlow<()>,
    {
        self.walk(doc, &mut |reached| {
            visit(reached)?;
            if let Some(Value::Array(items)) = reached {
                for item in items {
                    visit(Some(item))?;
                }
            }
            ControlFlow::Continue(())
        })
    }

    /// Whether some candidate satisfies `test`.
    pub(crate) fn any_candidate<'a>(
        &self,
        doc: &'a Value,
        mut test: impl FnMut(Option<&'a Value>) -> bool,
    ) -> bool {
        self.for_each_candidate(doc, &mut |candidate| {
            if test(candidate) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .is_break()
    }
}

fn walk_from<'a, F>(value: &'a Value, segments: &[Segment], visit: &mut F) -> ControlFlow<()>
where
    F: FnMut(Option<&'a Value>) -> ControlFlow<()>,
{
    let Some((segment, rest)) = segments.split_first() else {
        return visit(Some(value));
    };
    match value {
        Value::Object(members) => match members.get(&segment.name) {
            Some(child) => walk_from(child, rest, visit),
            None => visit(None),
        },
        Value::Array(items) => {
            if let Some(item) = segment.index.and_then(|i| items.get(i)) {
                return walk_from(item, rest, visit);
            }
            let mut entered = false;
            for item in items.iter().filter(|item| item.is_object()) {
                entered = true;
                // The element is an object: this segment names its member.
                walk_from(item, segments, visit)?;
            }
            if entered {
                ControlFlow::Continue(())
            } else {
                visit(None)
            }
        }
        _ => visit(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reached(doc: &Value, path: &str) -> Vec<Option<Value>> {
        let path = FieldPath::parse(path).expect("test paths are valid");
        let mut out = Vec::new();
        let _ = path.walk(doc, &mut |v| {
            out.push(v.cloned());
            ControlFlow::Continue(())
        });
        out
    }

    fn candidates(doc: &Value, path: &str) -> Vec<Option<Value>> {
        let path = FieldPath::parse(path).expect("test paths are valid");
        let mut out = Vec::new();
        let _ = path.for_each_candidate(doc, &mut |v| {
            out.push(v.cloned());
            ControlFlow::Continue(())
        });
        out
    }

    #[test]
    fn malformed_paths_are_refused_with_their_reason() {
        let reason = |p: &str| match FieldPath::parse(p) {
            Err(QueryError::InvalidPath { reason, .. }) => Some(reason),
            _ => None,
        };
        assert_eq!(reason(""), Some(PathError::Empty));
        assert_eq!(reason("a..b"), Some(PathError::EmptySegment));
        assert_eq!(reason(".a"), Some(PathError::EmptySegment));
        assert_eq!(reason("a."), Some(PathError::EmptySegment));
        assert_eq!(reason("a.$b"), Some(PathError::OperatorSegment));
        assert_eq!(reason("$a"), Some(PathError::OperatorSegment));
        assert_eq!(reason("a.b$"), None);
    }

    #[test]
    fn path_segment_count_is_limited_at_the_limit_and_one_past() {
        let at_limit = vec!["a"; PATH_SEGMENTS_MAX].join(".");
        assert!(FieldPath::parse(&at_limit).is_ok());
        let past = vec!["a"; PATH_SEGMENTS_MAX + 1].join(".");
        assert_eq!(
            FieldPath::parse(&past),
            Err(QueryError::InvalidPath {
                path: past.clone(),
                reason: PathError::TooManySegments {
                    segments_max: PATH_SEGMENTS_MAX
                }
            })
        );
    }

    #[test]
    fn dotted_path_walks_nested_objects() {
        let doc = json!({"a": {"b": {"c": 7}}});
        assert_eq!(reached(&doc, "a.b.c"), vec![Some(json!(7))]);
        assert_eq!(reached(&doc, "a.x"), vec![None]);
        assert_eq!(reached(&doc, "a.b.c.d"), vec![None]);
    }

    #[test]
    fn dotted_path_walks_into_each_object_of_an_array() {
        let doc = json!({"a": [{"b": 1}, {"b": 2}, {"c": 3}, 4, [{"b": 5}]]});
        assert_eq!(
            reached(&doc, "a.b"),
            vec![Some(json!(1)), Some(json!(2)), None]
        );
        assert_eq!(reached(&json!({"a": [1, 2]}), "a.b"), vec![None]);
        assert_eq!(reached(&json!({"a": []}), "a.b"), vec![None]);
    }

    #[test]
    fn numeric_segment_indexes_arrays() {
        let doc = json!({"a": [10, 20], "o": {"0": "zero"}, "n": [{"x": 1}, {"x": 2}]});
        assert_eq!(reached(&doc, "a.1"), vec![Some(json!(20))]);
        assert_eq!(reached(&doc, "a.2"), vec![None]);
        assert_eq!(reached(&doc, "o.0"), vec![Some(json!("zero"))]);
        assert_eq!(reached(&doc, "n.1.x"), vec![Some(json!(2))]);
        assert_eq!(reached(&doc, "a.01"), vec![None]);
    }

    #[test]
    fn candidates_add_the_elements_of_reached_arrays() {
        let doc = json!({"t": ["x", ["y"]], "a": [{"b": [1, 2]}, {"b": 3}]});
        assert_eq!(
            candidates(&doc, "t"),
            vec![
                Some(json!(["x", ["y"]])),
                Some(json!("x")),
                Some(json!(["y"]))
            ]
        );
        assert_eq!(
            candidates(&doc, "a.b"),
            vec![
                Some(json!([1, 2])),
                Some(json!(1)),
                Some(json!(2)),
                Some(json!(3))
            ]
        );
    }
}
