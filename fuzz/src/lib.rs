//! The code paths the fuzz targets drive, one function per target, kept in
//! one file so that the fuzzer (`fuzz_targets/*.rs`) and the corpus-replay
//! test in the main workspace (`tests/fuzz_corpus.rs`, which includes this
//! file with `#[path]`) run exactly the same code. Each function must return
//! normally for every input; a panic, abort or hang is a finding.
//!
//! Depends only on `aerolith_core`, `blake3`, `serde_json` and `tempfile`, which both
//! the fuzz crate and the main workspace's facade package provide.

use std::path::Path;
use std::sync::OnceLock;

use aerolith_core::{Database, Durability, Options, Query, RecoveryMode};
use serde_json::{json, Value};

/// The collection the template database holds.
pub const TEMPLATE_COLLECTION: &str = "fuzz";

/// Magic at the start of every log frame (see `docs/format.md`).
const FRAME_MAGIC: [u8; 4] = [0xA7, b'L', b'R', b'1'];
/// Bytes of a segment file's header.
const SEGMENT_HEADER_BYTES: usize = 32;
/// Bytes of a frame's header: magic, body length, checksum.
const FRAME_HEADER_BYTES: usize = 24;

/// Wraps `body` in a frame with a correct checksum, so that fuzzed bodies
/// get past the checksum and reach the operation decoder and replay.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len())
        .expect("fuzz inputs are far below 4 GiB")
        .to_le_bytes();
    let mut hasher = blake3::Hasher::new();
    hasher.update(&len);
    hasher.update(body);
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + body.len());
    out.extend_from_slice(&FRAME_MAGIC);
    out.extend_from_slice(&len);
    out.extend_from_slice(&hasher.finalize().as_bytes()[..16]);
    out.extend_from_slice(body);
    out
}

/// Decodes the bytes as one log frame and its operation, then decodes them
/// again as the body of a correctly checksummed frame (`record_decode`).
/// Returns whether the bytes were a valid frame.
pub fn record_decode(data: &[u8]) -> bool {
    let as_frame = aerolith_core::fuzzing::decode_record(data);
    let _ = aerolith_core::fuzzing::decode_record(&frame(data));
    as_frame
}

/// Parses the bytes as JSON and validates them as a document
/// (`document_validate`). Returns whether the document is valid.
pub fn document_validate(data: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(data) {
        Ok(doc) => aerolith_core::limits::validate_document(&doc).is_ok(),
        Err(_) => false,
    }
}

/// Parses the bytes as JSON, then as a query spec and as a bare filter
/// (`query_parse`). Returns whether either parse succeeded.
pub fn query_parse(data: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(data) {
        Ok(spec) => {
            let as_spec = Query::from_json(&spec).is_ok();
            let as_filter = Query::filter(&spec).is_ok();
            as_spec || as_filter
        }
        Err(_) => false,
    }
}

/// The files of a small real database, produced by the engine: the meta
/// file, the manifest and its single segment.
pub struct TemplateFiles {
    /// `(file name, bytes)` of every file except the segment and the lock.
    pub fixed: Vec<(String, Vec<u8>)>,
    /// The segment's file name (the one the manifest lists).
    pub segment_name: String,
    /// The segment's bytes: a valid log, usable as a seed.
    pub segment: Vec<u8>,
}

/// Builds the template database once per process.
pub fn template_files() -> &'static TemplateFiles {
    static TEMPLATE: OnceLock<TemplateFiles> = OnceLock::new();
    TEMPLATE.get_or_init(build_template)
}

fn build_template() -> TemplateFiles {
    let dir = tempfile::tempdir().expect("temp dir for the template database");
    let db = Database::open(dir.path(), Options::default().durability(Durability::Never))
        .expect("a fresh template database opens");
    db.create_collection(TEMPLATE_COLLECTION)
        .expect("template collection");
    db.create_index(TEMPLATE_COLLECTION, "kind", false)
        .expect("template index");
    for i in 0..4 {
        db.insert(
            TEMPLATE_COLLECTION,
            json!({"_id": format!("d{i}"), "kind": i % 2, "tags": ["a", {"n": i}]}),
        )
        .expect("template insert");
    }
    db.delete(TEMPLATE_COLLECTION, "d3")
        .expect("template delete");
    db.patch(
        TEMPLATE_COLLECTION,
        "d0",
        json!({"kind": null, "extra": 1.5}),
    )
    .expect("template patch");
    db.close().expect("template close");
    drop(db);

    let mut fixed = Vec::new();
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("template dir is readable") {
        let entry = entry.expect("template dir entry");
        let name = entry
            .file_name()
            .into_string()
            .expect("engine file names are UTF-8");
        let bytes = std::fs::read(entry.path()).expect("template file is readable");
        if name.starts_with("seg-") {
            segments.push((name, bytes));
        } else if name != "LOCK" {
            fixed.push((name, bytes));
        }
    }
    assert_eq!(
        segments.len(),
        1,
        "the template database fits in one segment"
    );
    let (segment_name, segment) = segments.pop().expect("one segment");
    TemplateFiles {
        fixed,
        segment_name,
        segment,
    }
}

/// Writes the template's meta file and manifest plus `segment` as its
/// segment file into `dir`.
fn lay_out(dir: &Path, segment: &[u8]) {
    let template = template_files();
    for (name, bytes) in &template.fixed {
        std::fs::write(dir.join(name), bytes).expect("write template file");
    }
    std::fs::write(dir.join(&template.segment_name), segment).expect("write fuzzed segment");
}

/// Reads everything an opened database will show, so that damage accepted
/// by recovery is also exercised by the read path.
fn read_everything(db: &Database) {
    let _ = db.stats();
    for collection in db.list_collections() {
        let _ = db.collection_stats(&collection);
        let _ = db.list_indexes(&collection);
        if let Ok(docs) = db.find(&collection, &Query::default()) {
            for doc in docs {
                if let Some(id) = doc.get("_id").and_then(Value::as_str) {
                    let _ = db.get(&collection, id);
                }
            }
        }
        if let Ok(q) = Query::filter(&json!({"kind": 1})) {
            let _ = db.find(&collection, &q);
        }
    }
    let _ = db.close();
}

/// Opens a database whose only segment holds `data` (`recovery`): strict
/// first, then in salvage mode on a fresh copy. Returns whether the strict
/// open succeeded.
pub fn recovery(data: &[u8]) -> bool {
    let strict_ok = open_with(data, RecoveryMode::Strict);
    if !strict_ok {
        open_with(data, RecoveryMode::Salvage);
    }
    strict_ok
}

/// Builds a segment from the template's header and the bodies in `data`,
/// each framed with a correct checksum, then recovers it like [`recovery`]
/// (`recovery_framed`). `data` is a sequence of `len u16 LE | body`
/// chunks; a short last chunk takes what is left. This reaches replay with
/// arbitrary operations, which checksums keep raw fuzzed files from doing.
pub fn recovery_framed(data: &[u8]) -> bool {
    recovery(&segment_of_bodies(data))
}

/// The segment `recovery_framed` builds from `data`.
pub fn segment_of_bodies(data: &[u8]) -> Vec<u8> {
    let mut segment = template_files().segment[..SEGMENT_HEADER_BYTES].to_vec();
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let body = &rest[2..(2 + len).min(rest.len())];
        segment.extend_from_slice(&frame(body));
        rest = &rest[2 + body.len()..];
    }
    segment
}

/// The inverse of [`segment_of_bodies`] for an engine-written segment:
/// its frame bodies as `len u16 LE | body` chunks (for seeds).
pub fn bodies_of(segment: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames_of(segment) {
        let body = &frame[FRAME_HEADER_BYTES..];
        let len = u16::try_from(body.len()).expect("template records are small");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(body);
    }
    out
}

fn open_with(data: &[u8], mode: RecoveryMode) -> bool {
    let dir = tempfile::tempdir().expect("temp dir for a fuzzed database");
    lay_out(dir.path(), data);
    let options = Options::default()
        .durability(Durability::Never)
        .recovery(mode)
        .must_exist();
    match Database::open(dir.path(), options) {
        Ok(db) => {
            read_everything(&db);
            true
        }
        Err(_) => false,
    }
}

/// Splits a segment produced by the engine into its frames (header of 32
/// bytes, then `magic 4 | body_len u32 LE | checksum 16 | body`), for seeds.
pub fn frames_of(segment: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut at = SEGMENT_HEADER_BYTES;
    while at + FRAME_HEADER_BYTES <= segment.len() {
        let len_bytes: [u8; 4] = segment[at + 4..at + 8].try_into().expect("four bytes");
        let end = at + FRAME_HEADER_BYTES + u32::from_le_bytes(len_bytes) as usize;
        if end > segment.len() {
            break;
        }
        frames.push(segment[at..end].to_vec());
        at = end;
    }
    frames
}
