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
mod base;
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
    /// database (header, hash, directory), then checks and decodes every
    /// item it lists, as the first scan and index queries would; never
    /// panics on any input.
    pub fn decode_checkpoint(bytes: &[u8]) -> bool {
        let Ok(mut opened) = crate::checkpoint::open_bytes(bytes.to_vec()) else {
            return false;
        };
        opened
            .take_collections()
            .values()
            .all(|c| c.docs.map().is_ok() && c.indexes.values().all(|ix| ix.entries().is_ok()))
    }

    /// Decodes the bytes as a plain checkpoint directory and returns the
    /// length of the item region it describes. The encoding is canonical,
    /// so a directory that decodes must encode back to exactly the same
    /// bytes; panics if it does not (a finding), never otherwise.
    pub fn decode_checkpoint_directory(bytes: &[u8]) -> Option<u64> {
        let directory = crate::checkpoint::decode_directory(bytes).ok()?;
        assert_eq!(
            crate::checkpoint::encode_directory(&directory),
            bytes,
            "a decoded checkpoint directory re-encodes to the same bytes"
        );
        Some(directory.blocks_len())
    }

    /// Wraps a plain directory into an unencrypted checkpoint file with a
    /// correct header and hash and an empty item region, so fuzzed
    /// directories get past the checksum.
    pub fn checkpoint_file_of_directory(directory: &[u8]) -> Vec<u8> {
        crate::checkpoint::wrap_plain(directory, &[])
    }

    /// Seeds for [`decode_checkpoint_block`] and [`decode_checkpoint_index`]
    /// from a valid unencrypted checkpoint file: its blocks as they are, and
    /// its indexes with the prefix that function expects (empty if the file
    /// does not decode or a collection has more than 255 documents).
    pub fn checkpoint_item_seeds_of_file(file: &[u8]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let Ok(opened) = crate::checkpoint::open_bytes(file.to_vec()) else {
            return (Vec::new(), Vec::new());
        };
        let start = file.len() as u64 - opened.directory.blocks_len();
        let item = |s: &crate::checkpoint::Stored| {
            let at = (start + s.offset) as usize;
            file[at..at + s.len as usize].to_vec()
        };
        let mut blocks = Vec::new();
        let mut indexes = Vec::new();
        for c in &opened.directory.collections {
            blocks.extend(c.blocks.iter().map(|b| item(&b.stored)));
            let Ok(docs) = u8::try_from(c.docs) else {
                continue;
            };
            for ix in &c.indexes {
                let mut seed = vec![docs];
                seed.extend_from_slice(&ix.keys.to_le_bytes());
                seed.extend(item(&ix.stored));
                indexes.push(seed);
            }
        }
        (blocks, indexes)
    }

    /// The directory of an unencrypted checkpoint file.
    pub fn checkpoint_directory_of_file(file: &[u8]) -> &[u8] {
        crate::checkpoint::directory_of(file)
    }

    /// Decodes the bytes as a plain block of an id table whose reference
    /// (count, first id) is read from the block itself, with every location
    /// in segment 1 allowed, and checks it for point reads. A block that
    /// decodes must pass the point-read check, and each decoded id must be
    /// found in place with exactly its entry; a block that only passes the
    /// point-read check must answer look-ups (of its first id, of ids cut
    /// from its bytes, of an absent id) without panicking. Panics on a
    /// finding. Returns whether the block decoded.
    pub fn decode_checkpoint_block(bytes: &[u8]) -> bool {
        use crate::checkpoint::{
            check_block, decode_block, find_in_checked_block, BlockBounds, Extents,
        };
        if bytes.len() < 6 {
            return false;
        }
        let count = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
        let len = usize::from(u16::from_le_bytes([bytes[4], bytes[5]]));
        let Some(Ok(first)) = bytes.get(6..6 + len).map(std::str::from_utf8) else {
            return false;
        };
        let at = BlockBounds {
            count,
            first,
            next_first: None,
        };
        let extents = Extents::new(vec![(1, u64::MAX)]);
        let decoded = decode_block(bytes, at, &extents);
        let checked = check_block(bytes, at);
        if decoded.is_ok() {
            assert!(
                checked.is_ok(),
                "a block that decodes passes the point-read check"
            );
        }
        let Ok(index) = checked else {
            return false;
        };
        let mut absent = first.to_owned();
        absent.push('\u{0}');
        let Ok(entries) = decoded else {
            let _ = find_in_checked_block(bytes, &index, first);
            let _ = find_in_checked_block(bytes, &index, &absent);
            for cut in bytes.chunks(7).filter_map(|c| std::str::from_utf8(c).ok()) {
                let _ = find_in_checked_block(bytes, &index, cut);
            }
            return false;
        };
        for (id, entry) in &entries {
            assert_eq!(
                find_in_checked_block(bytes, &index, id),
                Some(*entry),
                "a decoded id is found in place"
            );
        }
        if entries.iter().all(|(id, _)| **id != *absent) {
            assert_eq!(find_in_checked_block(bytes, &index, &absent), None);
        }
        true
    }

    /// Decodes the bytes as the entries of an index: the first byte gives
    /// the collection's size (up to 255 documents with ids in order), the
    /// next four the key count, the rest the entries. Never panics.
    pub fn decode_checkpoint_index(bytes: &[u8]) -> bool {
        if bytes.len() < 5 {
            return false;
        }
        let ids: Vec<std::sync::Arc<str>> = (0..bytes[0])
            .map(|i| std::sync::Arc::from(format!("{i:03}")))
            .collect();
        let refs: Vec<&std::sync::Arc<str>> = ids.iter().collect();
        let keys = u32::from_le_bytes(bytes[1..5].try_into().expect("4 bytes"));
        crate::checkpoint::decode_index(&bytes[5..], keys, &refs).is_ok()
    }
}
