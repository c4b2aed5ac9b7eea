//! The MongoDB-style query language: filters, sort specifications,
//! projections and the keys of secondary indexes, as pure functions over
//! `serde_json::Value`. Nothing here touches storage or does I/O; the engine
//! parses a filter once, asks it which index scans could serve it
//! ([`Filter::index_predicates`]), fetches candidate documents, and then calls
//! [`Filter::matches`] on every candidate (index use only ever narrows the
//! candidates, it never decides a match), sorts with [`SortSpec::compare`],
//! applies skip/limit and finally [`Projection::apply`].
//!
//! # The order of values
//!
//! [`compare_values`] is the one total order over JSON values, used for
//! sorting, for range operators and for equality:
//!
//! `null` < numbers < strings < objects < arrays < booleans (`false` < `true`).
//!
//! Each of these groups is a *type bracket* ([`TypeBracket`]). Within a
//! bracket:
//! - numbers compare by their exact mathematical value across `i64`, `u64` and
//!   `f64` (so `1 == 1.0`, and `9007199254740993 > 9007199254740992.0`, which a
//!   conversion to `f64` would get wrong);
//! - strings compare by Unicode code point (byte order of their UTF-8);
//! - arrays compare element by element, a proper prefix first;
//! - objects compare member by member *in document order*, first the member
//!   name, then its value, a proper prefix first. `{"a":1,"b":2}` and
//!   `{"b":2,"a":1}` are therefore different values, as in MongoDB.
//!
//! Two values are *equal* exactly when this order says so; `serde_json`'s own
//! `==` (which tells `1` from `1.0` and ignores member order) is not used.
//! A missing field sorts as `null`.
//!
//! # Field paths
//!
//! A path is a dot-separated list of member names (`"a"`, `"address.city"`).
//! Segments must be non-empty and must not start with `$`; a path has at most
//! [`PATH_SEGMENTS_MAX`] segments. Walking a path through a document:
//! - at an object, the segment names a member; if there is none, that branch
//!   of the walk ends *missing*;
//! - at an array, a numeric segment (`a.0`) that is a valid index selects that
//!   element; otherwise the walk continues into every element that is an
//!   object (so `a.b` over `{"a":[{"b":1},{"b":2}]}` reaches `1` and `2`).
//!   Elements that are arrays are not entered. If no element was entered the
//!   branch ends missing;
//! - at a scalar, the branch ends missing.
//!
//! The *candidates* of a path are the values it reaches, plus, for each value
//! reached that is an array, each of its elements. So `{"tags":"x"}` matches
//! `{"tags":["x","y"]}`, and `{"tags":["x","y"]}` matches it too.
//!
//! # Filters
//!
//! A filter is a JSON object whose members are all required to hold
//! (an implicit `$and`); `{}` matches every document. A member is either a
//! logical operator or a field condition:
//!
//! | form | meaning |
//! |------|---------|
//! | `{"$and": [f, ...]}` | every filter holds (non-empty array of filter objects) |
//! | `{"$or": [f, ...]}` | at least one filter holds (non-empty array) |
//! | `{"$not": f}` | the filter object `f` does not hold |
//! | `{"path": value}` | same as `{"path": {"$eq": value}}` |
//! | `{"path": {"$op": operand, ...}}` | every operator holds |
//!
//! An object whose keys all start with `$` is an operator object; an object
//! with no `$` keys (including `{}`) is a value to compare for equality; an
//! object mixing both is an error.
//!
//! Field operators, over the candidates of the path:
//! - `$eq v`: some candidate equals `v`. `null` also matches a missing branch,
//!   so `{"a": null}` matches documents without `a`.
//! - `$ne v`: no candidate equals `v` (so a missing field matches `$ne: 1`).
//! - `$in [v, ...]`: some candidate equals some `v`; `$nin`: none does. The
//!   array holds at most [`IN_OPERAND_LEN_MAX`] values; `null` in it matches a
//!   missing branch, as for `$eq`.
//! - `$gt $gte $lt $lte v`: only values of the same type bracket as `v`
//!   compare (`{"$gt": 5}` never matches a string). **All comparison operators
//!   of one operator object must hold for the same candidate**:
//!   `{"a": {"$gt": 3, "$lt": 7}}` means "some value of `a` lies between 3 and
//!   7" and does not match `{"a": [1, 10]}`. (MongoDB lets different array
//!   elements satisfy different bounds; we do not, so that the range can be
//!   served by one index scan. Put the bounds in separate `$and` members to get
//!   the per-bound behaviour.) For these operators a missing branch counts as
//!   `null`, so `{"$gte": null}` matches a missing field.
//! - `$exists bool`: whether the path reaches any value at all (a `null`
//!   member exists).
//! - `$not {operators}`: the operator object does not hold.
//!
//! Operator nesting (`$and`, `$or`, `$not`) is limited to [`FILTER_DEPTH_MAX`]
//! levels, and operand values to [`OPERAND_DEPTH_MAX`] levels of JSON nesting,
//! so that neither parsing nor matching can exhaust the stack.
//!
//! # Indexes
//!
//! [`index_keys`] gives the keys under which a secondary index on a path
//! files a document: each value the path reaches, and for an array each
//! element instead (multikey). [`Filter::index_predicates`] lists the
//! conditions an index on some path can serve: `$eq` and `$in` of scalars
//! (never `null`, whose matches include documents without the field) as point
//! look-ups, and comparison operators on a number, string or boolean as a key
//! range held within that type bracket. Conditions under `$or`, `$not`, `$ne`,
//! `$nin` and `$exists` are never index-usable.
//!
//! # Sorting and projection
//!
//! [`SortSpec`] orders by each listed path in turn (`1` ascending, `-1`
//! descending). A document's sort key on a path is the smallest candidate (for
//! ascending) or the largest (for descending), where an array contributes its
//! elements, and a missing branch or an empty array counts as `null`.
//! Documents with equal sort keys compare `Equal`; use a stable sort to keep
//! their incoming order.
//!
//! [`Projection`] either keeps only the listed paths (`{"a": 1, "b.c": 1}`) or
//! removes them (`{"a": 0}`); `_id` is kept unless `"_id": 0` is given, which
//! is also allowed inside an inclusion. Paths descend into arrays of objects.

mod filter;
mod index_key;
mod order;
mod path;
mod projection;
mod sort;

#[cfg(test)]
mod proptests;

pub use filter::Filter;
pub(crate) use filter::{parse_members, parse_members_of_encoded};
pub(crate) use index_key::index_keys_at;
pub use index_key::{index_keys, IndexKey, IndexPredicate, IndexScan};
pub use order::{compare_values, TypeBracket};
pub use path::FieldPath;
pub use projection::Projection;
pub use sort::{SortDirection, SortSpec};

/// Deepest nesting of logical operators (`$and`, `$or`, `$not`, and `$not`
/// on a field) in one filter.
pub const FILTER_DEPTH_MAX: usize = 32;

/// Deepest JSON nesting of an operand value (an `$eq` value, an `$in` array,
/// a comparison bound), counting the operand itself as level 1.
pub const OPERAND_DEPTH_MAX: usize = 64;

/// Most values in one `$in` or `$nin` array.
pub const IN_OPERAND_LEN_MAX: usize = 10_000;

/// Most segments in one dotted field path.
pub const PATH_SEGMENTS_MAX: usize = 64;

/// Most keys in one sort specification.
pub const SORT_KEYS_MAX: usize = 32;

/// Most paths in one projection.
pub const PROJECTION_PATHS_MAX: usize = 1_024;

/// Why a filter, sort specification or projection was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The filter, sort specification or projection is not a JSON object.
    #[error("the {what} must be a JSON object")]
    NotAnObject {
        /// Which part of the query: `"filter"`, `"sort"` or `"projection"`.
        what: &'static str,
    },
    /// A `$`-prefixed key is not an operator this language knows.
    #[error("unknown operator `{operator}`")]
    UnknownOperator {
        /// The key as given.
        operator: String,
    },
    /// A known operator used where it does not belong (`$and` on a field,
    /// `$eq` at the top level of a filter).
    #[error("operator `{operator}` is not allowed {position}")]
    MisplacedOperator {
        /// The operator as given.
        operator: String,
        /// Where it was found: `"at the top level of a filter"` or `"on a field"`.
        position: &'static str,
    },
    /// An operator's operand has the wrong JSON type.
    #[error("the operand of `{operator}` must be {expected}")]
    InvalidOperand {
        /// The operator.
        operator: &'static str,
        /// What it takes, in words.
        expected: &'static str,
    },
    /// `$and` or `$or` with an empty array.
    #[error("`{operator}` needs at least one filter")]
    EmptyLogical {
        /// `"$and"` or `"$or"`.
        operator: &'static str,
    },
    /// The condition on a field mixes `$` operators and plain member names.
    #[error("the condition on `{path}` mixes operators and plain field names")]
    MixedOperatorObject {
        /// The field path the condition is on.
        path: String,
    },
    /// A field path is malformed.
    #[error("invalid field path `{path}`: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: PathError,
    },
    /// Logical operators nest deeper than [`FILTER_DEPTH_MAX`].
    #[error("the filter nests operators deeper than {depth_max} levels")]
    FilterTooDeep {
        /// The limit, [`FILTER_DEPTH_MAX`].
        depth_max: usize,
    },
    /// An operand value nests deeper than [`OPERAND_DEPTH_MAX`].
    #[error("the operand of `{operator}` nests deeper than {depth_max} levels")]
    OperandTooDeep {
        /// The operator whose operand it is (`"$eq"` for an implicit equality).
        operator: &'static str,
        /// The limit, [`OPERAND_DEPTH_MAX`].
        depth_max: usize,
    },
    /// An `$in` or `$nin` array is longer than [`IN_OPERAND_LEN_MAX`].
    #[error("`{operator}` has {len} values, more than {len_max}")]
    OperandTooLong {
        /// `"$in"` or `"$nin"`.
        operator: &'static str,
        /// How many values it has.
        len: usize,
        /// The limit, [`IN_OPERAND_LEN_MAX`].
        len_max: usize,
    },
    /// A sort specification or projection lists more paths than allowed.
    #[error("the {what} lists {len} paths, more than {len_max}")]
    TooManyPaths {
        /// `"sort"` or `"projection"`.
        what: &'static str,
        /// How many it lists.
        len: usize,
        /// The limit: [`SORT_KEYS_MAX`] or [`PROJECTION_PATHS_MAX`].
        len_max: usize,
    },
    /// A sort direction other than `1` or `-1`.
    #[error("the sort direction of `{path}` must be 1 or -1")]
    InvalidSortDirection {
        /// The path whose direction is wrong.
        path: String,
    },
    /// A projection value other than `0`, `1`, `false` or `true`.
    #[error("the projection value of `{path}` must be 0, 1, false or true")]
    InvalidProjectionValue {
        /// The path whose value is wrong.
        path: String,
    },
    /// A projection that both includes and excludes paths (other than `_id`).
    #[error("the projection mixes inclusion and exclusion (at `{path}`)")]
    MixedProjection {
        /// The first path whose mode disagrees with the ones before it.
        path: String,
    },
    /// A query specification (`{"filter":..,"sort":..}`) is not an object.
    #[error("a query must be a JSON object")]
    QueryNotAnObject,
    /// A query specification has a member other than filter, sort, skip,
    /// limit and projection.
    #[error("unknown query member `{member}`")]
    UnknownQueryMember {
        /// The member name.
        member: String,
    },
    /// `skip` or `limit` is not a non-negative integer.
    #[error("`{member}` must be a non-negative integer")]
    InvalidCount {
        /// `"skip"` or `"limit"`.
        member: &'static str,
    },
}

/// What is wrong with a field path.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is the empty string.
    #[error("the path is empty")]
    Empty,
    /// Two dots in a row, or a leading or trailing dot.
    #[error("a segment is empty")]
    EmptySegment,
    /// A segment starts with `$`, which is reserved for operators.
    #[error("a segment starts with `$`")]
    OperatorSegment,
    /// More segments than [`PATH_SEGMENTS_MAX`].
    #[error("the path has more than {segments_max} segments")]
    TooManySegments {
        /// The limit, [`PATH_SEGMENTS_MAX`].
        segments_max: usize,
    },
}
