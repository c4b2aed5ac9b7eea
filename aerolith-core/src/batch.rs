//! Write batches: the unit of atomicity. Every write, even a single insert,
//! is a batch; a batch that spans collections is committed whole or not at
//! all. Documents are validated and encoded when they are added to the
//! batch, outside the commit lock, so the commit path only checks state.

use std::sync::Arc;

use rand::Rng;
use serde_json::{Map, Value};

use crate::error::{InvalidInput, Result};
use crate::limits::{
    validate_collection_name, validate_document, validate_encoded_size, validate_id,
    validate_index_path, BATCH_OPS_MAX, ID_FIELD,
};

/// A validated document with its id and encoded bytes. The `Value` is not
/// kept: it is dropped as soon as it is encoded, while its memory is still
/// in cache, and the commit reads the few members its indexes need back
/// from `bytes` (measured: dropping 1,000 documents' `Value`s at commit
/// time cost about a third of building the commit).
#[derive(Debug, Clone)]
pub(crate) struct PreparedDoc {
    pub(crate) id: Arc<str>,
    pub(crate) bytes: Vec<u8>,
}

/// Length of generated ids.
const GENERATED_ID_CHARS: usize = 22;
const ID_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A fresh random document id: 22 base62 characters (about 131 bits).
pub fn generate_id() -> String {
    let mut rng = rand::rng();
    (0..GENERATED_ID_CHARS)
        .map(|_| ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())] as char)
        .collect()
}

/// Validates `doc`, sets its `_id` (to `id`, to its own, or to a generated
/// one) and encodes it.
pub(crate) fn prepare_doc(doc: Value, id: Option<&str>) -> Result<PreparedDoc> {
    prepare_doc_keeping_value(doc, id).map(|(prepared, _)| prepared)
}

/// [`prepare_doc`], also returning the document as stored (with its `_id`).
pub(crate) fn prepare_doc_keeping_value(
    mut doc: Value,
    id: Option<&str>,
) -> Result<(PreparedDoc, Value)> {
    let own_id = validate_document(&doc)?.map(str::to_owned);
    let id = match (id, own_id) {
        (Some(given), Some(own)) if given != own => return Err(InvalidInput::IdChanged.into()),
        (Some(given), _) => {
            validate_id(given)?;
            given.to_owned()
        }
        (None, Some(own)) => own,
        (None, None) => generate_id(),
    };
    let map = doc
        .as_object_mut()
        .expect("validate_document checked it is an object");
    if !map.contains_key(ID_FIELD) {
        // Put `_id` first so stored documents read naturally.
        let mut with_id = Map::with_capacity(map.len() + 1);
        with_id.insert(ID_FIELD.to_owned(), Value::String(id.clone()));
        with_id.extend(std::mem::take(map));
        *map = with_id;
    }
    let bytes = encode_exact(&doc);
    validate_encoded_size(bytes.len())?;
    Ok((
        PreparedDoc {
            id: Arc::from(id),
            bytes,
        },
        doc,
    ))
}

thread_local! {
    /// The buffer documents are serialized into before their exact copy is
    /// taken; its capacity is kept from one document to the next.
    static ENCODE_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The JSON encoding of `doc` in a vector of exactly its length. Encoded
/// into a buffer that keeps its capacity, then copied once: a vector grown
/// while serializing (128, 256, ... bytes) cost a document of 1 KiB four
/// reallocations, and its 2 KiB block a slower `free` at commit.
fn encode_exact(doc: &Value) -> Vec<u8> {
    ENCODE_SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        scratch.clear();
        serde_json::to_writer(&mut *scratch, doc).expect("serde_json::Value always serializes");
        let bytes = scratch.as_slice().to_vec();
        // A very large document does not keep its memory in every thread.
        if scratch.capacity() > ENCODE_SCRATCH_BYTES_KEPT {
            *scratch = Vec::new();
        }
        bytes
    })
}

/// The most capacity [`ENCODE_SCRATCH`] keeps between documents.
const ENCODE_SCRATCH_BYTES_KEPT: usize = 64 * 1024;

/// Applies an RFC 7386 JSON merge patch to `target`.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target_map = target.as_object_mut().expect("just made an object");
    for (key, value) in patch_map {
        if value.is_null() {
            target_map.remove(key);
        } else {
            merge_patch(target_map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// One operation of a batch.
#[derive(Debug, Clone)]
pub(crate) enum BatchOp {
    Insert {
        coll: String,
        doc: PreparedDoc,
    },
    Upsert {
        coll: String,
        doc: PreparedDoc,
    },
    Replace {
        coll: String,
        doc: PreparedDoc,
    },
    Patch {
        coll: String,
        id: String,
        patch: Value,
    },
    Delete {
        coll: String,
        id: String,
    },
    CreateCollection {
        coll: String,
    },
    DropCollection {
        coll: String,
    },
    CreateIndex {
        coll: String,
        path: String,
        unique: bool,
    },
    DropIndex {
        coll: String,
        path: String,
    },
}

/// An atomic group of writes, possibly across collections. Build it, then
/// hand it to [`crate::Database::write`]: every operation takes effect, or
/// none does.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    pub(crate) ops: Vec<BatchOp>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch::default()
    }

    /// Operations in the batch.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the batch holds no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The encoded JSON bytes of the documents the batch stores (inserts,
    /// upserts and replaces, each with its `_id`): exactly what they add to
    /// the engine's live bytes before anything they replace is subtracted.
    /// Patches count nothing here (the merged document is only known at
    /// commit).
    pub fn document_bytes(&self) -> u64 {
        self.ops
            .iter()
            .map(|op| match op {
                BatchOp::Insert { doc, .. }
                | BatchOp::Upsert { doc, .. }
                | BatchOp::Replace { doc, .. } => doc.bytes.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// About how many bytes the batch's records will take in the log, so
    /// the commit can size its buffer once: documents and names plus a
    /// frame, operation header and encryption overhead per operation.
    pub(crate) fn encoded_bytes_hint(&self) -> usize {
        const RECORD_OVERHEAD_BYTES: usize = 96;
        self.ops
            .iter()
            .map(|op| match op {
                BatchOp::Insert { coll, doc }
                | BatchOp::Upsert { coll, doc }
                | BatchOp::Replace { coll, doc } => coll.len() + doc.id.len() + doc.bytes.len(),
                _ => 0,
            })
            .sum::<usize>()
            + self.ops.len() * RECORD_OVERHEAD_BYTES
    }

    fn push(&mut self, op: BatchOp) -> Result<()> {
        if self.ops.len() >= BATCH_OPS_MAX {
            return Err(InvalidInput::BatchTooLarge {
                ops: self.ops.len() + 1,
                ops_max: BATCH_OPS_MAX,
            }
            .into());
        }
        self.ops.push(op);
        Ok(())
    }

    /// Inserts `doc`; the commit fails if its id exists. Returns the id
    /// (the document's `_id`, or a generated one).
    pub fn insert(&mut self, collection: &str, doc: Value) -> Result<String> {
        validate_collection_name(collection)?;
        let doc = prepare_doc(doc, None)?;
        let id = doc.id.to_string();
        self.push(BatchOp::Insert {
            coll: collection.to_owned(),
            doc,
        })?;
        Ok(id)
    }

    /// Inserts `doc` or replaces the document with its id. Returns the id.
    pub fn upsert(&mut self, collection: &str, doc: Value) -> Result<String> {
        validate_collection_name(collection)?;
        let doc = prepare_doc(doc, None)?;
        let id = doc.id.to_string();
        self.push(BatchOp::Upsert {
            coll: collection.to_owned(),
            doc,
        })?;
        Ok(id)
    }

    /// Replaces document `id` wholesale; the commit fails if it does not exist.
    pub fn replace(&mut self, collection: &str, id: &str, doc: Value) -> Result<()> {
        validate_collection_name(collection)?;
        let doc = prepare_doc(doc, Some(id))?;
        self.push(BatchOp::Replace {
            coll: collection.to_owned(),
            doc,
        })
    }

    /// Merges `patch` into document `id` (RFC 7386: `null` removes a field).
    pub fn patch(&mut self, collection: &str, id: &str, patch: Value) -> Result<()> {
        validate_collection_name(collection)?;
        validate_id(id)?;
        let Value::Object(map) = &patch else {
            return Err(InvalidInput::PatchNotAnObject.into());
        };
        if let Some(new_id) = map.get(ID_FIELD) {
            if new_id.as_str() != Some(id) {
                return Err(InvalidInput::IdChanged.into());
            }
        }
        self.push(BatchOp::Patch {
            coll: collection.to_owned(),
            id: id.to_owned(),
            patch,
        })
    }

    /// Deletes document `id` if it exists.
    pub fn delete(&mut self, collection: &str, id: &str) -> Result<()> {
        validate_collection_name(collection)?;
        validate_id(id)?;
        self.push(BatchOp::Delete {
            coll: collection.to_owned(),
            id: id.to_owned(),
        })
    }

    /// Creates an empty collection; the commit fails if it exists.
    pub fn create_collection(&mut self, collection: &str) -> Result<()> {
        validate_collection_name(collection)?;
        self.push(BatchOp::CreateCollection {
            coll: collection.to_owned(),
        })
    }

    /// Drops a collection with all its documents and indexes.
    pub fn drop_collection(&mut self, collection: &str) -> Result<()> {
        validate_collection_name(collection)?;
        self.push(BatchOp::DropCollection {
            coll: collection.to_owned(),
        })
    }

    pub(crate) fn create_index(
        &mut self,
        collection: &str,
        path: &str,
        unique: bool,
    ) -> Result<()> {
        validate_collection_name(collection)?;
        validate_index_path(path)?;
        self.push(BatchOp::CreateIndex {
            coll: collection.to_owned(),
            path: path.to_owned(),
            unique,
        })
    }

    pub(crate) fn drop_index(&mut self, collection: &str, path: &str) -> Result<()> {
        validate_collection_name(collection)?;
        validate_index_path(path)?;
        self.push(BatchOp::DropIndex {
            coll: collection.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// What one operation of a committed batch did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum OpOutcome {
    /// A document was stored: `created` is false when it replaced one.
    Written {
        /// The document id.
        id: String,
        /// True for a new document.
        created: bool,
    },
    /// A document was patched; the merged document.
    Patched {
        /// The document after the patch.
        doc: Value,
    },
    /// A delete ran; `existed` says whether there was a document to delete.
    Deleted {
        /// True if a document was removed.
        existed: bool,
    },
    /// A collection or index was created or dropped.
    Schema,
}

/// The result of a committed batch, with its exact accounting effect.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitOutcome {
    /// One entry per operation, in order.
    pub ops: Vec<OpOutcome>,
    /// Change in live document bytes across the database.
    pub live_bytes_delta: i64,
    /// Change in the number of documents.
    pub documents_delta: i64,
    /// Change in the number of collections.
    pub collections_delta: i64,
    /// Bytes appended to the log.
    pub log_bytes_written: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        let mut doc = json!({"a": [1]});
        merge_patch(&mut doc, &json!({"a": {"b": 1}}));
        assert_eq!(doc, json!({"a": {"b": 1}}));
    }

    #[test]
    fn documents_get_an_id_first() {
        let p = prepare_doc(json!({"x": 1}), None).unwrap();
        assert_eq!(p.id.len(), GENERATED_ID_CHARS);
        assert!(String::from_utf8(p.bytes).unwrap().starts_with("{\"_id\":"));
    }

    #[test]
    fn replace_refuses_a_different_id() {
        assert!(prepare_doc(json!({"_id": "a"}), Some("b")).is_err());
        assert!(prepare_doc(json!({"_id": "a"}), Some("a")).is_ok());
    }

    #[test]
    fn patch_cannot_change_the_id() {
        let mut b = WriteBatch::new();
        assert!(b.patch("c", "a", json!({"_id": "b"})).is_err());
        assert!(b.patch("c", "a", json!({"_id": null})).is_err());
        assert!(b.patch("c", "a", json!([1])).is_err());
    }
}
