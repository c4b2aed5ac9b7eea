//! Filters: parsing a MongoDB-style filter document into a [`Filter`],
//! matching documents against it, and listing the conditions a secondary index
//! could serve ([`Filter::index_predicates`]). The language itself is described
//! in the `query` module documentation.

use std::cmp::Ordering;
use std::ops::Bound;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::index_key::{IndexKey, IndexPredicate, IndexScan};
use super::order::{compare_values, values_equal, TypeBracket};
use super::path::FieldPath;
use super::{QueryError, FILTER_DEPTH_MAX, IN_OPERAND_LEN_MAX, OPERAND_DEPTH_MAX};

/// A parsed filter. Parse once with [`Filter::parse`], then test documents
/// with [`Filter::matches`].
///
/// The language, in short (the `query` module documentation has the details):
/// `{"path": value}` is equality; `{"path": {"$op": operand, ...}}` applies
/// `$eq $ne $gt $gte $lt $lte $in $nin $exists $not`; `$and`, `$or` (non-empty
/// arrays of filters) and `$not` (a filter) combine filters. Dotted paths walk
/// nested objects and arrays of objects, and a condition on an array field
/// holds if it holds for the array or for one of its elements. Comparisons
/// only match values of the operand's type bracket (see [`compare_values`]),
/// and all comparison operators of one operator object must hold for the same
/// element. `null` equals a missing field; `$ne` and `$nin` hold when no value
/// is equal.
#[derive(Debug, Clone)]
pub struct Filter {
    root: Node,
    /// The top-level document members the filter's paths start with, sorted
    /// and without duplicates: all that [`Filter::matches_encoded`] parses.
    members: Vec<String>,
}

#[derive(Debug, Clone)]
enum Node {
    /// Every child holds; empty = always.
    And(Vec<Node>),
    /// Some child holds; never empty.
    Or(Vec<Node>),
    Not(Box<Node>),
    Field(FieldCondition),
}

/// The conditions on one path, all of which must hold.
#[derive(Debug, Clone)]
struct FieldCondition {
    path: FieldPath,
    ops: Vec<FieldOp>,
}

#[derive(Debug, Clone)]
enum FieldOp {
    Eq(Value),
    Ne(Value),
    In(ValueSet),
    Nin(ValueSet),
    Exists(bool),
    /// Comparison bounds that must all hold for one candidate.
    Range(Vec<RangeBound>),
    /// The operators (all of them) do not hold.
    Not(Vec<FieldOp>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone)]
struct RangeBound {
    comparison: Comparison,
    operand: Value,
}

/// The values of an `$in`/`$nin`, sorted by [`compare_values`] and without
/// duplicates, so membership is a binary search.
#[derive(Debug, Clone)]
struct ValueSet {
    values: Vec<Value>,
}

static NULL: Value = Value::Null;

const AT_TOP_LEVEL: &str = "at the top level of a filter";
const ON_A_FIELD: &str = "on a field";

impl Filter {
    /// Parses a filter document. See the `query` module documentation for the
    /// language and [`QueryError`] for what is refused.
    pub fn parse(filter: &Value) -> Result<Filter, QueryError> {
        let root = parse_filter_object(filter, 0)?;
        let mut members = Vec::new();
        collect_members(&root, &mut members);
        members.sort();
        members.dedup();
        Ok(Filter { root, members })
    }

    /// The filter that matches every document (the same as parsing `{}`).
    pub fn all() -> Filter {
        Filter {
            root: Node::And(Vec::new()),
            members: Vec::new(),
        }
    }

    /// Whether this filter matches every document without looking at it.
    pub fn matches_everything(&self) -> bool {
        matches!(&self.root, Node::And(children) if children.is_empty())
    }

    /// Whether `doc` satisfies the filter.
    pub fn matches(&self, doc: &Value) -> bool {
        node_matches(&self.root, doc)
    }

    /// The top-level members of a document that the filter reads (the first
    /// segment of each of its paths), sorted, without duplicates.
    pub fn top_level_members(&self) -> &[String] {
        &self.members
    }

    /// Whether the document encoded as the JSON object `json` satisfies the
    /// filter, decided without building the whole document: only the
    /// top-level members that the filter's paths start with are parsed into
    /// values, every other member is skipped over. A path only ever looks
    /// below its first member, so the answer is the one [`Filter::matches`]
    /// gives for the parsed document. `None` when `json` is not a JSON object
    /// (or not valid JSON): the caller must parse it in full to find out.
    pub fn matches_encoded(&self, json: &[u8]) -> Option<bool> {
        if self.matches_everything() {
            return Some(true);
        }
        let partial = parse_members(json, &self.members)?;
        Some(self.matches(&partial))
    }

    /// The top-level conjuncts (members of the filter object, and members of a
    /// top-level `$and`, recursively) that an index on their path could
    /// serve. Every document that [`Filter::matches`] accepts has, for every
    /// returned predicate, at least one of its
    /// [`index_keys`](super::index_keys) on the predicate's path inside the
    /// predicate's scan; so the engine may scan any one of them (or intersect
    /// several) to find the candidates.
    pub fn index_predicates(&self) -> Vec<IndexPredicate> {
        let mut out = Vec::new();
        collect_index_predicates(&self.root, &mut out);
        out
    }
}

/// Adds the first segment of every path in `node` to `out`.
fn collect_members(node: &Node, out: &mut Vec<String>) {
    match node {
        Node::And(children) | Node::Or(children) => children
            .iter()
            .for_each(|child| collect_members(child, out)),
        Node::Not(child) => collect_members(child, out),
        Node::Field(condition) => {
            if let Some(first) = condition.path.segment_names().next() {
                out.push(first.to_owned());
            }
        }
    }
}

/// Parses the JSON object `json` keeping only its top-level members named in
/// `names` (sorted or not). Filter matching, index keys and sort keys on a
/// path that starts with one of `names` are the same on the result as on the
/// whole document. `None` if `json` is not one valid JSON object.
pub(crate) fn parse_members(json: &[u8], names: &[String]) -> Option<Value> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let partial = MembersSeed { names, done: None }
        .deserialize(&mut de)
        .ok()?;
    de.end().ok()?;
    Some(partial)
}

/// [`parse_members`] for JSON that this process has just encoded from a
/// `Value` (so it is valid and has no repeated member): stops reading as
/// soon as every name in `names` (distinct) was found, instead of skipping
/// the rest of the document. The commit uses it to index a document from
/// its encoded bytes.
pub(crate) fn parse_members_of_encoded(json: &[u8], names: &[String]) -> Option<Value> {
    let mut done = None;
    let mut de = serde_json::Deserializer::from_slice(json);
    let parsed = MembersSeed {
        names,
        done: Some(&mut done),
    }
    .deserialize(&mut de);
    match parsed {
        // Every name was found: the visitor stopped early with an error on
        // purpose and left the members in `done`.
        Err(_) => done,
        Ok(all) => Some(all),
    }
}

/// Deserializes a JSON object keeping only the members named in `names`
/// (parsed as [`Value`]s exactly as `serde_json` parses a whole document) and
/// skipping the others without building them. A repeated member keeps its
/// last value, as [`Map`] does when a whole document is parsed.
struct MembersSeed<'f> {
    names: &'f [String],
    /// When set, stop once every name was found, leaving the members here
    /// (the parse then ends with an error the caller ignores).
    done: Option<&'f mut Option<Value>>,
}

impl<'de> DeserializeSeed<'de> for MembersSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MembersSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut kept = Map::new();
        let mut done = self.done;
        while let Some(wanted) = map.next_key_seed(MemberName { names: self.names })? {
            match wanted {
                Some(i) => {
                    let value: Value = map.next_value()?;
                    kept.insert(self.names[i].clone(), value);
                    if kept.len() == self.names.len() {
                        if let Some(done) = done.take() {
                            *done = Some(Value::Object(kept));
                            return Err(serde::de::Error::custom("every wanted member read"));
                        }
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(kept))
    }
}

/// A member name, read without allocating: the index of the name in
/// `names`, or `None` for a member to skip. Read as the bytes of the
/// unescaped name, without checking them as UTF-8 (as the skipped values
/// are not checked either): equal bytes are an equal name, and the UTF-8
/// check of every name was a twentieth of a filtered scan.
struct MemberName<'f> {
    names: &'f [String],
}

impl<'de> DeserializeSeed<'de> for MemberName<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for MemberName<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a member name")
    }

    fn visit_bytes<E: serde::de::Error>(self, name: &[u8]) -> Result<Option<usize>, E> {
        Ok(self.names.iter().position(|n| n.as_bytes() == name))
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Option<usize>, E> {
        self.visit_bytes(name.as_bytes())
    }
}

/// Parses a filter object found `depth` logical operators deep.
fn parse_filter_object(filter: &Value, depth: usize) -> Result<Node, QueryError> {
    if depth > FILTER_DEPTH_MAX {
        return Err(QueryError::FilterTooDeep {
            depth_max: FILTER_DEPTH_MAX,
        });
    }
    let Value::Object(members) = filter else {
        return Err(QueryError::NotAnObject { what: "filter" });
    };
    let mut nodes = Vec::with_capacity(members.len());
    for (key, value) in members {
        nodes.push(match key.as_str() {
            "$and" => Node::And(parse_logical("$and", value, depth)?),
            "$or" => Node::Or(parse_logical("$or", value, depth)?),
            "$not" => {
                if !value.is_object() {
                    return Err(QueryError::InvalidOperand {
                        operator: "$not",
                        expected: "a filter object",
                    });
                }
                Node::Not(Box::new(parse_filter_object(value, depth + 1)?))
            }
            operator if operator.starts_with('$') => {
                return Err(operator_error(operator, AT_TOP_LEVEL))
            }
            path => Node::Field(parse_field_condition(path, value, depth)?),
        });
    }
    Ok(if nodes.len() == 1 {
        nodes.pop().expect("length checked just above")
    } else {
        Node::And(nodes)
    })
}

fn parse_logical(
    operator: &'static str,
    operand: &Value,
    depth: usize,
) -> Result<Vec<Node>, QueryError> {
    let Value::Array(items) = operand else {
        return Err(QueryError::InvalidOperand {
            operator,
            expected: "a non-empty array of filter objects",
        });
    };
    if items.is_empty() {
        return Err(QueryError::EmptyLogical { operator });
    }
    items
        .iter()
        .map(|item| {
            if !item.is_object() {
                return Err(QueryError::InvalidOperand {
                    operator,
                    expected: "a non-empty array of filter objects",
                });
            }
            parse_filter_object(item, depth + 1)
        })
        .collect()
}

/// The error for a `$` key that is not valid where it was found.
fn operator_error(operator: &str, position: &'static str) -> QueryError {
    const KNOWN: [&str; 12] = [
        "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$and", "$or", "$not",
    ];
    if KNOWN.contains(&operator) {
        QueryError::MisplacedOperator {
            operator: operator.to_owned(),
            position,
        }
    } else {
        QueryError::UnknownOperator {
            operator: operator.to_owned(),
        }
    }
}

fn parse_field_condition(
    path: &str,
    value: &Value,
    depth: usize,
) -> Result<FieldCondition, QueryError> {
    let path = FieldPath::parse(path)?;
    let ops = match value {
        Value::Object(members) if members.keys().any(|k| k.starts_with('$')) => {
            if !members.keys().all(|k| k.starts_with('$')) {
                return Err(QueryError::MixedOperatorObject {
                    path: path.as_str().to_owned(),
                });
            }
            parse_operators(members, depth)?
        }
        literal => vec![FieldOp::Eq(checked_operand("$eq", literal)?)],
    };
    Ok(FieldCondition { path, ops })
}

/// Parses an operator object (every key starts with `$`).
fn parse_operators(members: &Map<String, Value>, depth: usize) -> Result<Vec<FieldOp>, QueryError> {
    let mut ops = Vec::with_capacity(members.len());
    let mut bounds = Vec::new();
    for (operator, operand) in members {
        let comparison = match operator.as_str() {
            "$gt" => Some((Comparison::Gt, "$gt")),
            "$gte" => Some((Comparison::Gte, "$gte")),
            "$lt" => Some((Comparison::Lt, "$lt")),
            "$lte" => Some((Comparison::Lte, "$lte")),
            _ => None,
        };
        if let Some((comparison, name)) = comparison {
            bounds.push(RangeBound {
                comparison,
                operand: checked_operand(name, operand)?,
            });
            continue;
        }
        ops.push(match operator.as_str() {
            "$eq" => FieldOp::Eq(checked_operand("$eq", operand)?),
            "$ne" => FieldOp::Ne(checked_operand("$ne", operand)?),
            "$in" => FieldOp::In(ValueSet::parse("$in", operand)?),
            "$nin" => FieldOp::Nin(ValueSet::parse("$nin", operand)?),
            "$exists" => match operand {
                Value::Bool(exists) => FieldOp::Exists(*exists),
                _ => {
                    return Err(QueryError::InvalidOperand {
                        operator: "$exists",
                        expected: "a boolean",
                    })
                }
            },
            "$not" => {
                if depth + 1 > FILTER_DEPTH_MAX {
                    return Err(QueryError::FilterTooDeep {
                        depth_max: FILTER_DEPTH_MAX,
                    });
                }
                match operand {
                    Value::Object(inner)
                        if !inner.is_empty() && inner.keys().all(|k| k.starts_with('$')) =>
                    {
                        FieldOp::Not(parse_operators(inner, depth + 1)?)
                    }
                    _ => {
                        return Err(QueryError::InvalidOperand {
                            operator: "$not",
                            expected: "a non-empty object of operators",
                        })
                    }
                }
            }
            other => return Err(operator_error(other, ON_A_FIELD)),
        });
    }
    if !bounds.is_empty() {
        ops.push(FieldOp::Range(bounds));
    }
    Ok(ops)
}

/// Checks an operand's nesting against [`OPERAND_DEPTH_MAX`] and takes a copy.
fn checked_operand(operator: &'static str, operand: &Value) -> Result<Value, QueryError> {
    if nests_deeper_than(operand, OPERAND_DEPTH_MAX) {
        return Err(QueryError::OperandTooDeep {
            operator,
            depth_max: OPERAND_DEPTH_MAX,
        });
    }
    Ok(operand.clone())
}

/// Whether `value` has more than `levels` levels of nesting (a scalar is one
/// level). Recursion stops at the limit, so any input is safe.
fn nests_deeper_than(value: &Value, levels: usize) -> bool {
    if levels == 0 {
        return true;
    }
    match value {
        Value::Array(items) => items.iter().any(|v| nests_deeper_than(v, levels - 1)),
        Value::Object(members) => members.values().any(|v| nests_deeper_than(v, levels - 1)),
        _ => false,
    }
}

impl ValueSet {
    fn parse(operator: &'static str, operand: &Value) -> Result<ValueSet, QueryError> {
        let Value::Array(items) = operand else {
            return Err(QueryError::InvalidOperand {
                operator,
                expected: "an array",
            });
        };
        if items.len() > IN_OPERAND_LEN_MAX {
            return Err(QueryError::OperandTooLong {
                operator,
                len: items.len(),
                len_max: IN_OPERAND_LEN_MAX,
            });
        }
        let mut values = checked_operand(operator, operand)?
            .as_array_mut()
            .map(std::mem::take)
            .expect("the operand was just checked to be an array");
        values.sort_by(compare_values);
        values.dedup_by(|a, b| values_equal(a, b));
        Ok(ValueSet { values })
    }

    /// Whether a candidate equals a member (a missing branch equals `null`).
    fn contains(&self, candidate: Option<&Value>) -> bool {
        let candidate = candidate.unwrap_or(&NULL);
        self.values
            .binary_search_by(|member| compare_values(member, candidate))
            .is_ok()
    }
}

impl RangeBound {
    fn holds(&self, candidate: &Value) -> bool {
        if TypeBracket::of(candidate) != TypeBracket::of(&self.operand) {
            return false;
        }
        let ord = compare_values(candidate, &self.operand);
        match self.comparison {
            Comparison::Gt => ord == Ordering::Greater,
            Comparison::Gte => ord != Ordering::Less,
            Comparison::Lt => ord == Ordering::Less,
            Comparison::Lte => ord != Ordering::Greater,
        }
    }
}

fn node_matches(node: &Node, doc: &Value) -> bool {
    match node {
        Node::And(children) => children.iter().all(|child| node_matches(child, doc)),
        Node::Or(children) => children.iter().any(|child| node_matches(child, doc)),
        Node::Not(child) => !node_matches(child, doc),
        Node::Field(condition) => condition
            .ops
            .iter()
            .all(|op| op_matches(op, &condition.path, doc)),
    }
}

fn op_matches(op: &FieldOp, path: &FieldPath, doc: &Value) -> bool {
    match op {
        FieldOp::Eq(value) => any_equal(path, doc, value),
        FieldOp::Ne(value) => !any_equal(path, doc, value),
        FieldOp::In(set) => path.any_candidate(doc, |c| set.contains(c)),
        FieldOp::Nin(set) => !path.any_candidate(doc, |c| set.contains(c)),
        FieldOp::Exists(wanted) => {
            let exists = path
                .walk(doc, &mut |reached| match reached {
                    Some(_) => std::ops::ControlFlow::Break(()),
                    None => std::ops::ControlFlow::Continue(()),
                })
                .is_break();
            exists == *wanted
        }
        FieldOp::Range(bounds) => path.any_candidate(doc, |c| {
            let candidate = c.unwrap_or(&NULL);
            bounds.iter().all(|bound| bound.holds(candidate))
        }),
        FieldOp::Not(ops) => !ops.iter().all(|op| op_matches(op, path, doc)),
    }
}

fn any_equal(path: &FieldPath, doc: &Value, value: &Value) -> bool {
    path.any_candidate(doc, |candidate| match candidate {
        Some(candidate) => values_equal(candidate, value),
        None => value.is_null(),
    })
}

fn collect_index_predicates(node: &Node, out: &mut Vec<IndexPredicate>) {
    match node {
        Node::And(children) => {
            for child in children {
                collect_index_predicates(child, out);
            }
        }
        Node::Field(condition) => {
            for op in &condition.ops {
                if let Some(scan) = index_scan(op) {
                    out.push(IndexPredicate {
                        path: condition.path.as_str().to_owned(),
                        scan,
                    });
                }
            }
        }
        // A disjunction or negation is not a conjunct an index can narrow.
        Node::Or(_) | Node::Not(_) => {}
    }
}

/// Whether an index files documents under this value as a key of its own:
/// scalars other than `null` (a null condition also matches documents the
/// index does not hold). Arrays are filed under their elements, and objects
/// are left to the full scan.
fn is_indexable_operand(value: &Value) -> bool {
    matches!(value, Value::Number(_) | Value::String(_) | Value::Bool(_))
}

fn index_scan(op: &FieldOp) -> Option<IndexScan> {
    match op {
        FieldOp::Eq(value) if is_indexable_operand(value) => {
            Some(IndexScan::Keys(vec![IndexKey::from_value(value)]))
        }
        FieldOp::In(set) if set.values.iter().all(is_indexable_operand) => {
            // Sorted and deduplicated by compare_values, which IndexKey's
            // order agrees with.
            Some(IndexScan::Keys(
                set.values.iter().map(IndexKey::from_value).collect(),
            ))
        }
        FieldOp::Range(bounds) => range_scan(bounds),
        _ => None,
    }
}

/// The tightest key range holding every candidate that satisfies all bounds.
fn range_scan(bounds: &[RangeBound]) -> Option<IndexScan> {
    let first = bounds.first()?;
    let bracket = TypeBracket::of(&first.operand);
    if bounds
        .iter()
        .any(|b| TypeBracket::of(&b.operand) != bracket)
    {
        // One candidate would have to be in two brackets at once.
        return Some(IndexScan::Keys(Vec::new()));
    }
    if !is_indexable_operand(&first.operand) {
        return None;
    }
    let mut lower = Bound::Excluded(IndexKey::bracket_start(bracket));
    let mut upper = Bound::Excluded(IndexKey::bracket_end(bracket));
    for bound in bounds {
        let key = IndexKey::from_value(&bound.operand);
        match bound.comparison {
            Comparison::Gt => lower = tighter(lower, Bound::Excluded(key), Ordering::Greater),
            Comparison::Gte => lower = tighter(lower, Bound::Included(key), Ordering::Greater),
            Comparison::Lt => upper = tighter(upper, Bound::Excluded(key), Ordering::Less),
            Comparison::Lte => upper = tighter(upper, Bound::Included(key), Ordering::Less),
        }
    }
    Some(if range_is_empty(&lower, &upper) {
        IndexScan::Keys(Vec::new())
    } else {
        IndexScan::Range { lower, upper }
    })
}

/// Of two bounds on the same side, the one admitting fewer keys. `inward` is
/// the direction that narrows: `Greater` for lower bounds, `Less` for upper.
fn tighter(current: Bound<IndexKey>, new: Bound<IndexKey>, inward: Ordering) -> Bound<IndexKey> {
    let (current_key, new_key) = match (&current, &new) {
        (Bound::Included(c) | Bound::Excluded(c), Bound::Included(n) | Bound::Excluded(n)) => {
            (c, n)
        }
        _ => return new,
    };
    match new_key.cmp(current_key) {
        Ordering::Equal if matches!(new, Bound::Excluded(_)) => new,
        Ordering::Equal => current,
        ord if ord == inward => new,
        _ => current,
    }
}

fn range_is_empty(lower: &Bound<IndexKey>, upper: &Bound<IndexKey>) -> bool {
    match (lower, upper) {
        (Bound::Included(l), Bound::Included(u)) => l > u,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Included(u) | Bound::Excluded(u)) => {
            l >= u
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::PathError;
    use serde_json::json;

    fn filter(v: Value) -> Filter {
        Filter::parse(&v).unwrap_or_else(|e| panic!("{v} should parse: {e}"))
    }

    fn matches(f: Value, doc: Value) -> bool {
        filter(f).matches(&doc)
    }

    fn parse_err(v: Value) -> QueryError {
        match Filter::parse(&v) {
            Ok(f) => panic!("{v} should be refused, parsed as {f:?}"),
            Err(e) => e,
        }
    }

    fn key(v: Value) -> IndexKey {
        IndexKey::from_value(&v)
    }

    // --- equality -------------------------------------------------------

    #[test]
    fn encoded_matching_parses_only_what_the_filter_reads() {
        let f = filter(json!({"region": "r7", "$or": [{"a.b": 1}, {"tags": {"$exists": false}}]}));
        assert_eq!(f.top_level_members(), ["a", "region", "tags"]);
        let doc = br#"{"_id":"x","payload":"zz\"z","region":"r7","a":{"b":[0,1]},"tags":[]}"#;
        assert_eq!(f.matches_encoded(doc), Some(true));
        let other = br#"{"_id":"x","region":"r8","a":{"b":1}}"#;
        assert_eq!(f.matches_encoded(other), Some(false));
        // Escaped member names are names like any other.
        assert_eq!(
            f.matches_encoded(br#"{"regio\u006e":"r7","a":{"b":1}}"#),
            Some(true)
        );
    }

    #[test]
    fn encoded_matching_keeps_the_last_of_repeated_members() {
        let f = filter(json!({"a": 2}));
        let doc = br#"{"a":1,"b":0,"a":2}"#;
        let parsed: Value = serde_json::from_slice(doc).unwrap();
        assert_eq!(f.matches_encoded(doc), Some(f.matches(&parsed)));
        assert_eq!(f.matches_encoded(doc), Some(true));
    }

    #[test]
    fn encoded_matching_defers_on_what_is_not_a_json_object() {
        let f = filter(json!({"a": 1}));
        assert_eq!(f.matches_encoded(b"[1]"), None);
        assert_eq!(f.matches_encoded(br#"{"a":1"#), None);
        assert_eq!(f.matches_encoded(br#"{"a":1} x"#), None);
        assert_eq!(Filter::all().matches_encoded(b"[1]"), Some(true));
    }

    #[test]
    fn empty_filter_matches_everything() {
        assert!(matches(json!({}), json!({"a": 1})));
        assert!(Filter::all().matches(&json!({})));
        assert!(Filter::all().matches_everything());
        assert!(filter(json!({})).matches_everything());
        assert!(!filter(json!({"a": 1})).matches_everything());
    }

    #[test]
    fn implicit_equality_matches_equal_values_only() {
        assert!(matches(json!({"a": 1}), json!({"a": 1})));
        assert!(matches(json!({"a": 1}), json!({"a": 1.0})));
        assert!(!matches(json!({"a": 1}), json!({"a": 2})));
        assert!(!matches(json!({"a": 1}), json!({"a": "1"})));
        assert!(!matches(json!({"a": 1}), json!({"b": 1})));
        assert!(matches(
            json!({"a": 1, "b": "x"}),
            json!({"a": 1, "b": "x"})
        ));
        assert!(!matches(
            json!({"a": 1, "b": "x"}),
            json!({"a": 1, "b": "y"})
        ));
    }

    #[test]
    fn explicit_eq_is_the_same_as_implicit() {
        assert!(matches(json!({"a": {"$eq": "x"}}), json!({"a": "x"})));
        assert!(!matches(json!({"a": {"$eq": "x"}}), json!({"a": "y"})));
        // An operand that looks like an operator object is still a value.
        assert!(matches(
            json!({"a": {"$eq": {"$gt": 1}}}),
            json!({"a": {"$gt": 1}})
        ));
    }

    #[test]
    fn object_without_operators_is_an_exact_match_on_the_object() {
        assert!(matches(json!({"a": {"b": 1}}), json!({"a": {"b": 1}})));
        assert!(!matches(
            json!({"a": {"b": 1}}),
            json!({"a": {"b": 1, "c": 2}})
        ));
        assert!(!matches(
            json!({"a": {"b": 1, "c": 2}}),
            json!({"a": {"c": 2, "b": 1}})
        ));
        assert!(matches(json!({"a": {}}), json!({"a": {}})));
        assert!(!matches(json!({"a": {}}), json!({"a": {"b": 1}})));
    }

    #[test]
    fn numbers_are_compared_exactly_across_representations() {
        let doc = json!({"n": 9007199254740993_u64});
        assert!(!matches(json!({"n": 9007199254740992.0}), doc.clone()));
        assert!(matches(
            json!({"n": {"$gt": 9007199254740992.0}}),
            doc.clone()
        ));
        assert!(matches(json!({"n": 9007199254740993_i64}), doc));
        assert!(matches(json!({"n": u64::MAX}), json!({"n": u64::MAX})));
        assert!(!matches(
            json!({"n": u64::MAX}),
            json!({"n": 18446744073709551615.0_f64})
        ));
    }

    #[test]
    fn null_matches_missing_and_null_fields() {
        assert!(matches(json!({"a": null}), json!({"a": null})));
        assert!(matches(json!({"a": null}), json!({"b": 1})));
        assert!(!matches(json!({"a": null}), json!({"a": 0})));
        assert!(matches(json!({"a.b": null}), json!({"a": 5})));
        assert!(matches(
            json!({"a.b": null}),
            json!({"a": [{"b": 1}, {"c": 1}]})
        ));
        assert!(!matches(json!({"a.b": null}), json!({"a": [{"b": 1}]})));
        assert!(matches(json!({"a": null}), json!({"a": [1, null]})));
    }

    // --- arrays and paths -------------------------------------------------

    #[test]
    fn array_field_matches_by_element_or_as_a_whole() {
        let doc = json!({"tags": ["x", "y"]});
        assert!(matches(json!({"tags": "x"}), doc.clone()));
        assert!(matches(json!({"tags": "y"}), doc.clone()));
        assert!(!matches(json!({"tags": "z"}), doc.clone()));
        assert!(matches(json!({"tags": ["x", "y"]}), doc.clone()));
        assert!(!matches(json!({"tags": ["y", "x"]}), doc.clone()));
        assert!(!matches(json!({"tags": ["x"]}), doc));
        // Only one level of arrays is opened.
        assert!(!matches(json!({"a": 1}), json!({"a": [[1]]})));
        assert!(matches(json!({"a": [1]}), json!({"a": [[1]]})));
    }

    #[test]
    fn dotted_paths_walk_objects_and_arrays_of_objects() {
        let doc = json!({"a": [{"b": 1}, {"b": 2}], "o": {"p": {"q": true}}});
        assert!(matches(json!({"a.b": 1}), doc.clone()));
        assert!(matches(json!({"a.b": 2}), doc.clone()));
        assert!(!matches(json!({"a.b": 3}), doc.clone()));
        assert!(matches(json!({"o.p.q": true}), doc.clone()));
        assert!(matches(json!({"a.1.b": 2}), doc.clone()));
        assert!(!matches(json!({"a.0.b": 2}), doc.clone()));
        assert!(matches(json!({"a.b": {"$gt": 1}}), doc));
        assert!(matches(
            json!({"x.0": "first"}),
            json!({"x": ["first", "second"]})
        ));
    }

    // --- comparisons ------------------------------------------------------

    #[test]
    fn comparison_operators_hold_at_and_around_the_bound() {
        let cases = [
            ("$gt", [false, false, true]),
            ("$gte", [false, true, true]),
            ("$lt", [true, false, false]),
            ("$lte", [true, true, false]),
        ];
        for (op, expected) in cases {
            for (value, want) in [4, 5, 6].into_iter().zip(expected) {
                assert_eq!(
                    matches(json!({"a": {op: 5}}), json!({"a": value})),
                    want,
                    "{op} 5 on {value}"
                );
            }
        }
    }

    #[test]
    fn comparisons_only_match_within_the_type_bracket() {
        assert!(!matches(json!({"a": {"$gt": 5}}), json!({"a": "6"})));
        assert!(!matches(json!({"a": {"$lt": 5}}), json!({"a": null})));
        assert!(!matches(json!({"a": {"$lt": 5}}), json!({})));
        assert!(!matches(json!({"a": {"$gt": 5}}), json!({"a": true})));
        assert!(matches(json!({"a": {"$gt": "b"}}), json!({"a": "c"})));
        assert!(!matches(json!({"a": {"$gt": "b"}}), json!({"a": 100})));
        assert!(matches(json!({"a": {"$gte": false}}), json!({"a": true})));
        assert!(matches(json!({"a": {"$gt": [1]}}), json!({"a": [[2]]})));
        assert!(matches(json!({"a": {"$gte": null}}), json!({})));
        assert!(matches(json!({"a": {"$lte": null}}), json!({"a": null})));
        assert!(!matches(json!({"a": {"$gt": null}}), json!({"a": null})));
    }

    #[test]
    fn comparison_matches_any_array_element() {
        assert!(matches(json!({"a": {"$gt": 5}}), json!({"a": [1, 10]})));
        assert!(!matches(json!({"a": {"$gt": 50}}), json!({"a": [1, 10]})));
    }

    #[test]
    fn bounds_in_one_operator_object_must_hold_for_the_same_element() {
        let between = json!({"a": {"$gt": 3, "$lt": 7}});
        assert!(matches(between.clone(), json!({"a": 5})));
        assert!(matches(between.clone(), json!({"a": [1, 5, 10]})));
        assert!(!matches(between.clone(), json!({"a": [1, 10]})));
        assert!(!matches(between, json!({"a": 7})));
        // Split into $and members, each bound may use its own element.
        assert!(matches(
            json!({"$and": [{"a": {"$gt": 3}}, {"a": {"$lt": 7}}]}),
            json!({"a": [1, 10]})
        ));
    }

    // --- $ne, $in, $nin, $exists -----------------------------------------

    #[test]
    fn ne_matches_when_no_candidate_is_equal() {
        assert!(matches(json!({"a": {"$ne": 1}}), json!({"a": 2})));
        assert!(!matches(json!({"a": {"$ne": 1}}), json!({"a": 1.0})));
        assert!(matches(json!({"a": {"$ne": 1}}), json!({})));
        assert!(!matches(json!({"a": {"$ne": 1}}), json!({"a": [2, 1]})));
        assert!(!matches(json!({"a": {"$ne": null}}), json!({})));
        assert!(matches(json!({"a": {"$ne": null}}), json!({"a": 0})));
    }

    #[test]
    fn in_matches_when_some_candidate_is_listed() {
        let f = json!({"a": {"$in": [1, "x", [2]]}});
        assert!(matches(f.clone(), json!({"a": 1.0})));
        assert!(matches(f.clone(), json!({"a": "x"})));
        assert!(matches(f.clone(), json!({"a": [0, "x"]})));
        assert!(matches(f.clone(), json!({"a": [2]})));
        assert!(!matches(f.clone(), json!({"a": 2})));
        assert!(!matches(f, json!({})));
        assert!(matches(json!({"a": {"$in": [null]}}), json!({})));
        assert!(!matches(json!({"a": {"$in": []}}), json!({"a": 1})));
    }

    #[test]
    fn nin_matches_when_no_candidate_is_listed() {
        let f = json!({"a": {"$nin": [1, 2]}});
        assert!(matches(f.clone(), json!({"a": 3})));
        assert!(matches(f.clone(), json!({})));
        assert!(!matches(f.clone(), json!({"a": 2.0})));
        assert!(!matches(f, json!({"a": [3, 1]})));
        assert!(!matches(json!({"a": {"$nin": [null]}}), json!({})));
        assert!(matches(json!({"a": {"$nin": []}}), json!({"a": 1})));
    }

    #[test]
    fn exists_tells_present_from_missing() {
        assert!(matches(json!({"a": {"$exists": true}}), json!({"a": null})));
        assert!(!matches(json!({"a": {"$exists": true}}), json!({})));
        assert!(matches(json!({"a": {"$exists": false}}), json!({})));
        assert!(!matches(json!({"a": {"$exists": false}}), json!({"a": 0})));
        assert!(matches(
            json!({"a.b": {"$exists": true}}),
            json!({"a": [{"c": 1}, {"b": 1}]})
        ));
        assert!(!matches(
            json!({"a.b": {"$exists": true}}),
            json!({"a": [1, 2]})
        ));
    }

    // --- logical operators ------------------------------------------------

    #[test]
    fn and_requires_every_member() {
        let f = json!({"$and": [{"a": 1}, {"b": {"$gt": 2}}]});
        assert!(matches(f.clone(), json!({"a": 1, "b": 3})));
        assert!(!matches(f.clone(), json!({"a": 1, "b": 2})));
        assert!(!matches(f, json!({"a": 2, "b": 3})));
    }

    #[test]
    fn or_requires_some_member() {
        let f = json!({"$or": [{"a": 1}, {"b": 2}]});
        assert!(matches(f.clone(), json!({"a": 1})));
        assert!(matches(f.clone(), json!({"b": 2})));
        assert!(!matches(f, json!({"a": 2, "b": 1})));
        let nested = json!({"c": 0, "$or": [{"$and": [{"a": 1}, {"b": 1}]}, {"d": 1}]});
        assert!(matches(nested.clone(), json!({"c": 0, "a": 1, "b": 1})));
        assert!(!matches(nested.clone(), json!({"c": 0, "a": 1})));
        assert!(!matches(nested, json!({"c": 1, "d": 1})));
    }

    #[test]
    fn not_negates_an_operator_object_or_a_filter() {
        let f = json!({"a": {"$not": {"$gt": 5}}});
        assert!(matches(f.clone(), json!({"a": 5})));
        assert!(matches(f.clone(), json!({"a": "x"})));
        assert!(matches(f.clone(), json!({})));
        assert!(!matches(f, json!({"a": 6})));
        let top = json!({"$not": {"a": 1, "b": 1}});
        assert!(matches(top.clone(), json!({"a": 1})));
        assert!(!matches(top, json!({"a": 1, "b": 1})));
        let double = json!({"a": {"$not": {"$not": {"$eq": 1}}}});
        assert!(matches(double.clone(), json!({"a": 1})));
        assert!(!matches(double, json!({"a": 2})));
    }

    #[test]
    fn several_operators_on_one_field_all_hold() {
        let f = json!({"a": {"$exists": true, "$ne": 3, "$in": [1, 2, 3]}});
        assert!(matches(f.clone(), json!({"a": 1})));
        assert!(!matches(f.clone(), json!({"a": 3})));
        assert!(!matches(f, json!({})));
    }

    // --- errors -----------------------------------------------------------

    #[test]
    fn filter_that_is_not_an_object_is_refused() {
        for v in [json!(null), json!(1), json!("a"), json!([{"a": 1}])] {
            assert_eq!(parse_err(v), QueryError::NotAnObject { what: "filter" });
        }
    }

    #[test]
    fn unknown_operators_are_refused() {
        assert_eq!(
            parse_err(json!({"$where": "1"})),
            QueryError::UnknownOperator {
                operator: "$where".into()
            }
        );
        assert_eq!(
            parse_err(json!({"a": {"$regex": "x"}})),
            QueryError::UnknownOperator {
                operator: "$regex".into()
            }
        );
        assert_eq!(
            parse_err(json!({"a": {"$not": {"$size": 1}}})),
            QueryError::UnknownOperator {
                operator: "$size".into()
            }
        );
    }

    #[test]
    fn known_operators_in_the_wrong_place_are_refused() {
        assert_eq!(
            parse_err(json!({"$eq": 1})),
            QueryError::MisplacedOperator {
                operator: "$eq".into(),
                position: AT_TOP_LEVEL
            }
        );
        assert_eq!(
            parse_err(json!({"a": {"$or": [{"b": 1}]}})),
            QueryError::MisplacedOperator {
                operator: "$or".into(),
                position: ON_A_FIELD
            }
        );
    }

    #[test]
    fn wrong_operand_types_are_refused() {
        let invalid = |operator, expected| QueryError::InvalidOperand { operator, expected };
        assert_eq!(
            parse_err(json!({"a": {"$in": 1}})),
            invalid("$in", "an array")
        );
        assert_eq!(
            parse_err(json!({"a": {"$nin": {}}})),
            invalid("$nin", "an array")
        );
        assert_eq!(
            parse_err(json!({"a": {"$exists": 1}})),
            invalid("$exists", "a boolean")
        );
        assert_eq!(
            parse_err(json!({"a": {"$not": 5}})),
            invalid("$not", "a non-empty object of operators")
        );
        assert_eq!(
            parse_err(json!({"a": {"$not": {}}})),
            invalid("$not", "a non-empty object of operators")
        );
        assert_eq!(
            parse_err(json!({"a": {"$not": {"b": 1}}})),
            invalid("$not", "a non-empty object of operators")
        );
        assert_eq!(
            parse_err(json!({"$and": {"a": 1}})),
            invalid("$and", "a non-empty array of filter objects")
        );
        assert_eq!(
            parse_err(json!({"$or": [1]})),
            invalid("$or", "a non-empty array of filter objects")
        );
        assert_eq!(
            parse_err(json!({"$not": [1]})),
            invalid("$not", "a filter object")
        );
    }

    #[test]
    fn empty_and_or_are_refused() {
        assert_eq!(
            parse_err(json!({"$and": []})),
            QueryError::EmptyLogical { operator: "$and" }
        );
        assert_eq!(
            parse_err(json!({"$or": []})),
            QueryError::EmptyLogical { operator: "$or" }
        );
    }

    #[test]
    fn mixing_operators_and_fields_is_refused() {
        assert_eq!(
            parse_err(json!({"a.b": {"$gt": 1, "c": 2}})),
            QueryError::MixedOperatorObject { path: "a.b".into() }
        );
    }

    #[test]
    fn malformed_paths_are_refused() {
        assert_eq!(
            parse_err(json!({"": 1})),
            QueryError::InvalidPath {
                path: "".into(),
                reason: PathError::Empty
            }
        );
        assert_eq!(
            parse_err(json!({"a..b": 1})),
            QueryError::InvalidPath {
                path: "a..b".into(),
                reason: PathError::EmptySegment
            }
        );
        assert_eq!(
            parse_err(json!({"$or": [{"a.$b": 1}]})),
            QueryError::InvalidPath {
                path: "a.$b".into(),
                reason: PathError::OperatorSegment
            }
        );
    }

    /// `{key: value}`, built by moving `value` (the `json!` macro would
    /// serialise a copy of it, recursively).
    fn wrap(key: &str, value: Value) -> Value {
        Value::Object(std::iter::once((key.to_owned(), value)).collect())
    }

    fn nested_ands(levels: usize) -> Value {
        let mut f = json!({"a": 1});
        for _ in 0..levels {
            f = wrap("$and", Value::Array(vec![f]));
        }
        f
    }

    fn nested_field_nots(levels: usize) -> Value {
        let mut op = json!({"$eq": 1});
        for _ in 0..levels {
            op = wrap("$not", op);
        }
        wrap("a", op)
    }

    #[test]
    fn nesting_is_limited_at_the_limit_and_one_past() {
        assert!(Filter::parse(&nested_ands(FILTER_DEPTH_MAX)).is_ok());
        assert_eq!(
            parse_err(nested_ands(FILTER_DEPTH_MAX + 1)),
            QueryError::FilterTooDeep {
                depth_max: FILTER_DEPTH_MAX
            }
        );
        assert!(Filter::parse(&nested_field_nots(FILTER_DEPTH_MAX)).is_ok());
        assert_eq!(
            parse_err(nested_field_nots(FILTER_DEPTH_MAX + 1)),
            QueryError::FilterTooDeep {
                depth_max: FILTER_DEPTH_MAX
            }
        );
        // Far past the limit is refused, not a stack overflow.
        assert!(Filter::parse(&nested_ands(1_000)).is_err());
    }

    #[test]
    fn operand_nesting_is_limited_at_the_limit_and_one_past() {
        let nested = |levels: usize| {
            let mut v = json!(1);
            for _ in 1..levels {
                v = Value::Array(vec![v]);
            }
            v
        };
        assert!(Filter::parse(&json!({"a": nested(OPERAND_DEPTH_MAX)})).is_ok());
        assert_eq!(
            parse_err(json!({"a": nested(OPERAND_DEPTH_MAX + 1)})),
            QueryError::OperandTooDeep {
                operator: "$eq",
                depth_max: OPERAND_DEPTH_MAX
            }
        );
        assert_eq!(
            parse_err(json!({"a": {"$lt": nested(OPERAND_DEPTH_MAX + 1)}})),
            QueryError::OperandTooDeep {
                operator: "$lt",
                depth_max: OPERAND_DEPTH_MAX
            }
        );
        // The $in array itself is one level.
        assert!(Filter::parse(&json!({"a": {"$in": [nested(OPERAND_DEPTH_MAX - 1)]}})).is_ok());
        assert_eq!(
            parse_err(json!({"a": {"$in": [nested(OPERAND_DEPTH_MAX)]}})),
            QueryError::OperandTooDeep {
                operator: "$in",
                depth_max: OPERAND_DEPTH_MAX
            }
        );
    }

    #[test]
    fn in_length_is_limited_at_the_limit_and_one_past() {
        let list = |n: usize| Value::Array((0..n).map(|i| json!(i)).collect());
        let f = filter(json!({"a": {"$in": list(IN_OPERAND_LEN_MAX)}}));
        assert!(f.matches(&json!({"a": IN_OPERAND_LEN_MAX - 1})));
        assert!(!f.matches(&json!({"a": IN_OPERAND_LEN_MAX})));
        assert_eq!(
            parse_err(json!({"a": {"$nin": list(IN_OPERAND_LEN_MAX + 1)}})),
            QueryError::OperandTooLong {
                operator: "$nin",
                len: IN_OPERAND_LEN_MAX + 1,
                len_max: IN_OPERAND_LEN_MAX
            }
        );
    }

    // --- index predicates -------------------------------------------------

    fn predicates(f: Value) -> Vec<(String, IndexScan)> {
        filter(f)
            .index_predicates()
            .into_iter()
            .map(|p| (p.path, p.scan))
            .collect()
    }

    fn range(lower: Bound<IndexKey>, upper: Bound<IndexKey>) -> IndexScan {
        IndexScan::Range { lower, upper }
    }

    #[test]
    fn equality_on_a_scalar_is_a_point_lookup() {
        assert_eq!(
            predicates(json!({"a": 1.0, "b.c": "x"})),
            vec![
                ("a".into(), IndexScan::Keys(vec![key(json!(1))])),
                ("b.c".into(), IndexScan::Keys(vec![key(json!("x"))]))
            ]
        );
        assert_eq!(
            predicates(json!({"a": {"$eq": true}})),
            vec![("a".into(), IndexScan::Keys(vec![key(json!(true))]))]
        );
    }

    #[test]
    fn equality_on_null_arrays_and_objects_is_not_index_usable() {
        assert!(predicates(json!({"a": null})).is_empty());
        assert!(predicates(json!({"a": [1]})).is_empty());
        assert!(predicates(json!({"a": {"b": 1}})).is_empty());
        assert!(predicates(json!({"a": {"$in": [1, null]}})).is_empty());
        assert!(predicates(json!({"a": {"$in": [1, [2]]}})).is_empty());
    }

    #[test]
    fn in_of_scalars_is_a_sorted_set_of_point_lookups() {
        assert_eq!(
            predicates(json!({"a": {"$in": ["b", 2, 1.0, 1, "a"]}})),
            vec![(
                "a".into(),
                IndexScan::Keys(vec![
                    key(json!(1)),
                    key(json!(2)),
                    key(json!("a")),
                    key(json!("b"))
                ])
            )]
        );
        assert_eq!(
            predicates(json!({"a": {"$in": []}})),
            vec![("a".into(), IndexScan::Keys(vec![]))]
        );
    }

    #[test]
    fn one_sided_ranges_stop_at_the_end_of_the_type_bracket() {
        assert_eq!(
            predicates(json!({"a": {"$gt": 5}})),
            vec![(
                "a".into(),
                range(
                    Bound::Excluded(key(json!(5))),
                    Bound::Excluded(IndexKey::bracket_end(TypeBracket::Number))
                )
            )]
        );
        assert_eq!(
            predicates(json!({"a": {"$lte": "m"}})),
            vec![(
                "a".into(),
                range(
                    Bound::Excluded(IndexKey::bracket_start(TypeBracket::String)),
                    Bound::Included(key(json!("m")))
                )
            )]
        );
    }

    #[test]
    fn two_bounds_on_one_path_make_one_range() {
        assert_eq!(
            predicates(json!({"a": {"$gte": 3, "$lt": 7}})),
            vec![(
                "a".into(),
                range(
                    Bound::Included(key(json!(3))),
                    Bound::Excluded(key(json!(7)))
                )
            )]
        );
        assert_eq!(
            predicates(json!({"a": {"$gte": 3, "$gt": 3, "$lte": 9, "$lt": 8}})),
            vec![(
                "a".into(),
                range(
                    Bound::Excluded(key(json!(3))),
                    Bound::Excluded(key(json!(8)))
                )
            )]
        );
    }

    #[test]
    fn unsatisfiable_ranges_are_empty_key_sets() {
        for f in [
            json!({"a": {"$gt": 5, "$lt": 5}}),
            json!({"a": {"$gte": 5, "$lt": 5}}),
            json!({"a": {"$gt": 7, "$lt": 3}}),
            json!({"a": {"$gt": 1, "$lt": "z"}}),
        ] {
            assert_eq!(
                predicates(f.clone()),
                vec![("a".into(), IndexScan::Keys(vec![]))],
                "{f}"
            );
        }
        assert_eq!(
            predicates(json!({"a": {"$gte": 5, "$lte": 5}})),
            vec![(
                "a".into(),
                range(
                    Bound::Included(key(json!(5))),
                    Bound::Included(key(json!(5)))
                )
            )]
        );
    }

    #[test]
    fn ranges_on_null_arrays_and_objects_are_not_index_usable() {
        assert!(predicates(json!({"a": {"$gte": null}})).is_empty());
        assert!(predicates(json!({"a": {"$gt": [1]}})).is_empty());
        assert!(predicates(json!({"a": {"$gt": {}}})).is_empty());
    }

    #[test]
    fn members_of_a_top_level_and_are_conjuncts() {
        assert_eq!(
            predicates(json!({"$and": [{"a": 1}, {"$and": [{"b": 2}]}], "c": 3})),
            vec![
                ("a".into(), IndexScan::Keys(vec![key(json!(1))])),
                ("b".into(), IndexScan::Keys(vec![key(json!(2))])),
                ("c".into(), IndexScan::Keys(vec![key(json!(3))]))
            ]
        );
    }

    #[test]
    fn or_not_ne_nin_and_exists_are_not_index_usable() {
        for f in [
            json!({"$or": [{"a": 1}]}),
            json!({"$not": {"a": 1}}),
            json!({"a": {"$not": {"$eq": 1}}}),
            json!({"a": {"$ne": 1}}),
            json!({"a": {"$nin": [1]}}),
            json!({"a": {"$exists": true}}),
            json!({"$and": [{"$or": [{"a": 1}, {"a": 2}]}]}),
        ] {
            assert!(predicates(f.clone()).is_empty(), "{f}");
        }
    }

    #[test]
    fn members_of_encoded_json_are_those_of_a_full_read() {
        let docs = [
            json!({"_id": "a", "category": "c1", "n": {"x": [1, 2]}, "pad": "z".repeat(500)}),
            json!({"_id": "b", "pad": "z", "n": 3}),
            json!({"_id": "c", "category": null}),
            json!({}),
        ];
        let name_sets: [&[&str]; 4] = [&["category"], &["category", "n"], &["n", "_id"], &[]];
        for doc in &docs {
            let json = serde_json::to_vec(doc).unwrap();
            for names in name_sets {
                let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
                let full = parse_members(&json, &names).unwrap();
                let early = parse_members_of_encoded(&json, &names).unwrap();
                assert_eq!(early, full, "{doc} {names:?}");
            }
        }
    }
}
