//! The engine's errors. Every fallible public call returns [`Error`]; each
//! variant says whose fault it is (the caller's input, the disk, or a limit)
//! and carries the facts (which collection, which file, which offset) as data.

use std::path::PathBuf;

use crate::query::QueryError;

/// Result alias for the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `aerolith-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed.
    #[error("I/O error during {operation} on {path}: {source}")]
    Io {
        /// What the engine was doing.
        operation: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A record failed its checksum, or a file is malformed, somewhere other
    /// than the torn tail of the log. The database refuses to open rather than
    /// silently skip data.
    #[error("corruption in {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damaged record or header.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The database is encrypted and no key was given.
    #[error("the database at {path} is encrypted: a master key is required")]
    KeyRequired {
        /// The database directory.
        path: PathBuf,
    },
    /// The given master key is not the one this database was created with.
    #[error("wrong master key for the database at {path}")]
    WrongKey {
        /// The database directory.
        path: PathBuf,
    },
    /// A key was given but the database was created without encryption.
    #[error("the database at {path} is not encrypted, but a master key was given")]
    NotEncrypted {
        /// The database directory.
        path: PathBuf,
    },
    /// Another process (or another `Database` in this process) holds the directory.
    #[error("the database at {path} is already open elsewhere")]
    Locked {
        /// The database directory.
        path: PathBuf,
    },
    /// The directory holds no database and `create_if_missing` is off.
    #[error("no database at {path}")]
    NotFound {
        /// The directory that was looked at.
        path: PathBuf,
    },
    /// A previous write hit an I/O error (for example a failed fsync), so the
    /// engine can no longer promise durability. Reopen the database to recover.
    #[error("the database refuses writes after an earlier I/O failure; reopen it to recover")]
    Poisoned,
    /// The database has been closed.
    #[error("the database is closed")]
    Closed,
    /// The named collection does not exist.
    #[error("collection {collection:?} does not exist")]
    CollectionNotFound {
        /// The collection name.
        collection: String,
    },
    /// A collection with this name already exists.
    #[error("collection {collection:?} already exists")]
    CollectionExists {
        /// The collection name.
        collection: String,
    },
    /// No document with this id.
    #[error("document {id:?} not found in collection {collection:?}")]
    DocumentNotFound {
        /// The collection name.
        collection: String,
        /// The document id.
        id: String,
    },
    /// An insert named an id that is already taken.
    #[error("document {id:?} already exists in collection {collection:?}")]
    DocumentExists {
        /// The collection name.
        collection: String,
        /// The document id.
        id: String,
    },
    /// A write would put a second document under the same key of a unique index.
    #[error("unique index on {path:?} in {collection:?} already holds this value (document {existing_id:?})")]
    UniqueViolation {
        /// The collection name.
        collection: String,
        /// The indexed field path.
        path: String,
        /// The document that already holds the value.
        existing_id: String,
    },
    /// The named index does not exist.
    #[error("no index on {path:?} in collection {collection:?}")]
    IndexNotFound {
        /// The collection name.
        collection: String,
        /// The field path.
        path: String,
    },
    /// An index on this path already exists.
    #[error("an index on {path:?} already exists in collection {collection:?}")]
    IndexExists {
        /// The collection name.
        collection: String,
        /// The field path.
        path: String,
    },
    /// Input rejected by a validation rule or limit (document, id, name).
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// A malformed filter, sort or projection.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A query ran past its time budget and was stopped.
    #[error("query stopped after {elapsed_ms} ms: its time budget was {budget_ms} ms")]
    Timeout {
        /// The budget the query was given.
        budget_ms: u64,
        /// How long it had run when stopped.
        elapsed_ms: u64,
    },
    /// A line of a JSON Lines import could not be used.
    #[error("import line {line}: {reason}")]
    Import {
        /// 1-based line number.
        line: u64,
        /// What was wrong with it.
        reason: String,
    },
}

/// Input that breaks a rule: the rule and the offending facts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidInput {
    /// A document must be a JSON object.
    #[error("a document must be a JSON object, got {found}")]
    NotAnObject {
        /// The JSON type that was given.
        found: &'static str,
    },
    /// The encoded document is larger than the limit.
    #[error("document is {size_bytes} bytes; the limit is {limit_bytes}")]
    DocumentTooLarge {
        /// Encoded size.
        size_bytes: usize,
        /// The limit.
        limit_bytes: usize,
    },
    /// The document nests objects/arrays deeper than the limit.
    #[error("document nests deeper than {depth_max} levels")]
    DocumentTooDeep {
        /// The limit.
        depth_max: usize,
    },
    /// `_id` must be a string.
    #[error("`_id` must be a string, got {found}")]
    IdNotString {
        /// The JSON type that was given.
        found: &'static str,
    },
    /// An id breaks the id rules.
    #[error("invalid document id {id:?}: {reason}")]
    InvalidId {
        /// The id (truncated for display).
        id: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A collection name breaks the naming rules.
    #[error("invalid collection name {name:?}: {reason}")]
    InvalidCollectionName {
        /// The name (truncated for display).
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An index path is malformed.
    #[error("invalid index path {path:?}: {reason}")]
    InvalidIndexPath {
        /// The path (truncated for display).
        path: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A write batch holds more operations than allowed.
    #[error("a write batch holds {ops} operations; the limit is {ops_max}")]
    BatchTooLarge {
        /// Operations in the batch.
        ops: usize,
        /// The limit.
        ops_max: usize,
    },
    /// A patch must be a JSON object (RFC 7386 merge patch on a document).
    #[error("a patch must be a JSON object")]
    PatchNotAnObject,
    /// A patch or replace tried to change `_id`.
    #[error("`_id` cannot be changed")]
    IdChanged,
}

impl Error {
    pub(crate) fn io(
        operation: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            operation,
            path: path.into(),
            source,
        }
    }
}

/// The JSON type name of a value, for error messages.
pub(crate) fn json_type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}
