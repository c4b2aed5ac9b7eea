//! Aerolith core (work in progress).
#![warn(missing_docs)]
pub mod clock;
pub use clock::{Clock, ManualClock, SystemClock};
mod query;
pub use query::{
    compare_values, index_keys, FieldPath, Filter, IndexKey, IndexPredicate, IndexScan, PathError,
    Projection, QueryError, SortDirection, SortSpec, TypeBracket, FILTER_DEPTH_MAX,
    IN_OPERAND_LEN_MAX, OPERAND_DEPTH_MAX, PATH_SEGMENTS_MAX, PROJECTION_PATHS_MAX, SORT_KEYS_MAX,
};
