//! # aerolith-core
//!
//! The storage engine of Aerolith: a [`Database`] of named collections of
//! JSON documents, kept in an append-only, checksummed log with atomic
//! multi-collection batches, group-committed fsyncs, crash recovery,
//! optional encryption at rest, MongoDB-style queries with secondary
//! indexes, online compaction, backup and exact storage accounting.
//!
//! ```
//! use aerolith_core::{Database, Options, Query};
//! use serde_json::json;
//!
//! let dir = tempfile::tempdir()?;
//! let db = Database::open(dir.path(), Options::default())?;
//! db.create_collection("users")?;
//! db.create_index("users", "email", true)?;
//! db.insert("users", json!({"_id": "u1", "email": "ada@example.com", "age": 36}))?;
//! let found = db.find("users", &Query::filter(&json!({"email": "ada@example.com"}))?)?;
//! assert_eq!(found[0]["_id"], "u1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The engine knows nothing of tenants, money or HTTP; those live in the
//! crates above it. See `ARCHITECTURE.md` for the map and `docs/format.md`
//! for the bytes on disk.

mod backup;
mod batch;
mod cache;
mod checkpoint;
pub mod clock;
mod compaction;
mod crypto;
mod engine;
mod error;
#[doc(hidden)]
pub mod fault;
mod files;
mod group_commit;
pub mod limits;
mod options;
pub mod query;
mod read;
mod record;
mod recovery;
mod segment;
mod state;
mod verify;

pub use backup::{BackupReport, ImportMode, IMPORT_BATCH_LINES};
pub use batch::{generate_id, CommitOutcome, OpOutcome, WriteBatch};
pub use clock::{Clock, ManualClock, SystemClock};
pub use compaction::CompactionReport;
pub use crypto::MasterKey;
pub use engine::Database;
pub use error::{Error, InvalidInput, Result};
pub use group_commit::PendingWrite;
pub use options::{
    Durability, Options, RecoveryMode, COMMITTER_IDLE_DEFAULT, RECORD_CACHE_BYTES_DEFAULT,
    SEGMENT_SIZE_BYTES_DEFAULT,
};
pub use query::{
    compare_values, index_keys, FieldPath, Filter, IndexKey, IndexPredicate, IndexScan, PathError,
    Projection, QueryError, SortDirection, SortSpec, TypeBracket, FILTER_DEPTH_MAX,
    IN_OPERAND_LEN_MAX, OPERAND_DEPTH_MAX, PATH_SEGMENTS_MAX, PROJECTION_PATHS_MAX, SORT_KEYS_MAX,
};
pub use read::{CollectionStats, DatabaseStats, Explain, IndexInfo, Query, Snapshot};
pub use recovery::{RecoveryReport, TruncatedTail};
pub use verify::{CheckpointStatus, VerifyReport};

/// Hooks for the fuzz targets and the corpus-replay tests: the decoders
/// exposed without exposing the format types. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    /// Decodes one frame and its operation; never panics on any input.
    pub fn decode_record(bytes: &[u8]) -> bool {
        match crate::record::decode_frame(bytes) {
            Ok((body, _)) => crate::record::decode_op(body).is_ok(),
            Err(_) => false,
        }
    }

    /// Decodes the bytes as a whole checkpoint file of an unencrypted
    /// database (header, blake3, body); never panics on any input.
    pub fn decode_checkpoint(bytes: &[u8]) -> bool {
        crate::checkpoint::decode_file(bytes, None).is_ok()
    }

    /// Decodes the bytes as a plain checkpoint body. The encoding is
    /// canonical, so a body that decodes must encode back to exactly the
    /// same bytes; panics if it does not (a finding), never otherwise.
    pub fn decode_checkpoint_body(bytes: &[u8]) -> bool {
        let Ok(decoded) = crate::checkpoint::decode_body(bytes) else {
            return false;
        };
        let state = crate::state::State {
            collections: decoded.collections.clone(),
            segments: imbl::OrdMap::new(),
        };
        let file = crate::checkpoint::encode_file(
            None,
            &decoded.database_id,
            decoded.next_txn,
            &decoded.segments,
            &state,
        );
        assert_eq!(
            checkpoint_body_of_file(&file),
            bytes,
            "a decoded checkpoint body re-encodes to the same bytes"
        );
        true
    }

    /// Wraps a plain body into an unencrypted checkpoint file with a correct
    /// header and hash, so fuzzed bodies get past the checksum.
    pub fn checkpoint_file_of_body(body: &[u8]) -> Vec<u8> {
        crate::checkpoint::wrap_plain_body(body)
    }

    /// The body of an unencrypted checkpoint file (without header and hash).
    pub fn checkpoint_body_of_file(file: &[u8]) -> &[u8] {
        crate::checkpoint::plain_body_of(file)
    }
}
