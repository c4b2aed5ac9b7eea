//! Replays every file of the fuzz seed corpus (`fuzz/corpus/<target>/*`)
//! through the same functions the fuzz targets call, without a fuzzer, so CI
//! checks the seeds and every past crash (`regression-*` files) on stable.
//!
//! Seeds named `valid-*` were produced by the engine or written by hand as
//! valid inputs and must also be accepted, which keeps the harness honest:
//! a harness that rejected everything would never find a crash past the
//! first check.
//!
//! To regenerate the engine-made seeds (after a format change):
//! `AEROLITH_FUZZ_WRITE_SEEDS=1 cargo test -p aerolith --test fuzz_corpus`.

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::{Path, PathBuf};

const TARGETS: [&str; 11] = [
    "record_decode",
    "recovery",
    "recovery_framed",
    "document_validate",
    "query_parse",
    "credentials",
    "catalog_load",
    "webhook_verify",
    "server_json_body",
    "crypto_address",
    "checkpoint_decode",
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
}

/// Runs one input through its target's function; returns whether the
/// input was accepted.
fn replay(target: &str, data: &[u8]) -> bool {
    match target {
        "record_decode" => harness::record_decode(data),
        "recovery" => harness::recovery(data),
        "recovery_framed" => harness::recovery_framed(data),
        "document_validate" => harness::document_validate(data),
        "query_parse" => harness::query_parse(data),
        "credentials" => harness::credentials(data),
        "catalog_load" => harness::catalog_load(data),
        "webhook_verify" => harness::webhook_verify(data),
        "server_json_body" => harness::server_json_body(data),
        "crypto_address" => harness::crypto_address(data),
        "checkpoint_decode" => harness::checkpoint_decode(data),
        other => panic!("fuzz/corpus/{other} has no replay wired in tests/fuzz_corpus.rs"),
    }
}

fn corpus_files() -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    for target_dir in std::fs::read_dir(corpus_dir()).expect("fuzz/corpus exists") {
        let target_dir = target_dir.expect("corpus entry").path();
        let target = target_dir
            .file_name()
            .expect("named")
            .to_string_lossy()
            .into_owned();
        for file in std::fs::read_dir(&target_dir).expect("target corpus dir is readable") {
            let path = file.expect("corpus file").path();
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if path.is_file() && !hidden {
                files.push((target.clone(), path));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_corpus_file_replays_without_panicking() {
    let files = corpus_files();
    for target in TARGETS {
        let seeds = files.iter().filter(|(t, _)| t == target).count();
        assert!(
            seeds >= 3,
            "fuzz/corpus/{target} should hold a handful of seeds, has {seeds}"
        );
    }
    for (target, path) in &files {
        let data = std::fs::read(path).expect("corpus file is readable");
        let accepted = replay(target, &data);
        let name = path.file_name().expect("named").to_string_lossy();
        if name.starts_with("valid-") {
            assert!(
                accepted,
                "{} is a valid seed but {target} rejected it",
                path.display()
            );
        }
    }
}

#[test]
fn every_frame_of_an_engine_written_segment_decodes() {
    let template = harness::template_files();
    let frames = harness::frames_of(&template.segment);
    assert!(
        frames.len() >= 8,
        "the template log has its records, found {}",
        frames.len()
    );
    for frame in &frames {
        assert!(harness::record_decode(frame));
        assert!(
            !harness::record_decode(&frame[..frame.len() - 1]),
            "a cut frame is rejected"
        );
    }
}

#[test]
fn the_engine_written_segment_recovers_strictly() {
    assert!(harness::recovery(&harness::template_files().segment));
}

#[test]
fn reframing_the_engine_records_rebuilds_the_same_segment() {
    let segment = &harness::template_files().segment;
    assert_eq!(
        &harness::segment_of_bodies(&harness::bodies_of(segment)),
        segment
    );
}

#[test]
fn seeds_are_regenerated_on_request() {
    if std::env::var("AEROLITH_FUZZ_WRITE_SEEDS").as_deref() != Ok("1") {
        return;
    }
    let template = harness::template_files();
    let write = |target: &str, name: &str, bytes: &[u8]| {
        std::fs::write(corpus_dir().join(target).join(name), bytes).expect("seed is written");
    };
    let frames = harness::frames_of(&template.segment);
    for (i, frame) in frames.iter().enumerate() {
        write("record_decode", &format!("valid-frame-{i:02}"), frame);
    }
    write("recovery", "valid-engine-segment", &template.segment);
    let last = frames.last().expect("frames");
    let torn = &template.segment[..template.segment.len() - last.len() / 2];
    write("recovery", "torn-tail", torn);
    let mut flipped = template.segment.clone();
    let middle = 32
        + frames[..frames.len() / 2]
            .iter()
            .map(Vec::len)
            .sum::<usize>()
        + 30;
    flipped[middle] ^= 0x55;
    write("recovery", "corrupt-middle", &flipped);
    write("recovery", "header-only", &template.segment[..32]);
    let bodies = harness::bodies_of(&template.segment);
    write("recovery_framed", "valid-engine-records", &bodies);
    write(
        "recovery_framed",
        "cut-last-record",
        &bodies[..bodies.len() - 5],
    );
    write_signed_and_catalog_seeds(&write);
    write_checkpoint_seeds(&write);
    let first_body_len = usize::from(u16::from_le_bytes([bodies[0], bodies[1]]));
    write(
        "recovery_framed",
        "without-create-collection",
        &bodies[2 + first_body_len..],
    );
}

/// Checkpoint seeds: the file an engine writes at close for a database with
/// indexed keys of every JSON type, its plain body, and damaged variants.
fn write_checkpoint_seeds(write: &dyn Fn(&str, &str, &[u8])) {
    use aerolith_core::fuzzing::{checkpoint_directory_of_file, checkpoint_item_seeds_of_file};
    let dir = tempfile::tempdir().expect("temp dir");
    let db = aerolith_core::Database::open(dir.path(), aerolith_core::Options::default())
        .expect("opens");
    db.create_collection("c").expect("collection");
    db.create_index("c", "k", false).expect("index");
    db.create_index("c", "u", true).expect("index");
    db.create_collection("empty").expect("collection");
    for (i, k) in [
        serde_json::json!(null),
        serde_json::json!(true),
        serde_json::json!(-3),
        serde_json::json!(2.5),
        serde_json::json!("s"),
        serde_json::json!([1, "a", [false]]),
        serde_json::json!({"x": {"y": 1}}),
    ]
    .into_iter()
    .enumerate()
    {
        db.insert(
            "c",
            serde_json::json!({"_id": format!("d{i}"), "k": k, "u": i}),
        )
        .expect("insert");
    }
    db.close().expect("close");
    let file = std::fs::read(dir.path().join("CHECKPOINT")).expect("checkpoint written");
    let directory = checkpoint_directory_of_file(&file);
    write("checkpoint_decode", "valid-engine-file", &file);
    write("checkpoint_decode", "valid-engine-directory", directory);
    write(
        "checkpoint_decode",
        "cut-directory",
        &directory[..directory.len() / 2],
    );
    write("checkpoint_decode", "cut-file", &file[..file.len() - 1]);
    write("checkpoint_decode", "empty", b"");
    let (blocks, indexes) = checkpoint_item_seeds_of_file(&file);
    assert!(
        !blocks.is_empty() && indexes.len() == 2,
        "the seed database has items"
    );
    write("checkpoint_decode", "valid-engine-block", &blocks[0]);
    for (i, index) in indexes.iter().enumerate() {
        write(
            "checkpoint_decode",
            &format!("valid-engine-index-{i}"),
            index,
        );
    }
}

/// The seeds that need a signature or a serialiser: a session token signed
/// with the `credentials` target's secret (issued at 0, which is the time the
/// target's clock reads for an input this short), and the default catalog
/// in both formats.
fn write_signed_and_catalog_seeds(write: &dyn Fn(&str, &str, &[u8])) {
    let clock = std::sync::Arc::new(aerolith_core::ManualClock::new(0));
    let signer = aerolith_tenancy::TokenSigner::new(b"aerolith fuzz token secret 32 b.", clock);
    let (token, _) = signer
        .issue(
            aerolith_tenancy::TenantId::new(7),
            aerolith_tenancy::KeyId::from_u128(0x00c0_ffee),
            aerolith_tenancy::Role::Writer,
            aerolith_tenancy::TOKEN_LIFETIME_MS_DEFAULT,
        )
        .expect("default lifetime");
    write(
        "credentials",
        "valid-session-token",
        token.expose().as_bytes(),
    );
    let catalog = aerolith_billing::Catalog::default_catalog();
    let toml = catalog.to_toml_string().expect("default catalog as TOML");
    write("catalog_load", "valid-default-toml", toml.as_bytes());
    write(
        "catalog_load",
        "valid-default-json",
        catalog.to_json_string().as_bytes(),
    );
}

/// Found by `recovery_framed` on 2026-11-23: a committed record whose
/// transaction id is `u64::MAX` made recovery compute `max_txn + 1` and
/// panic with an overflow (`aerolith-core/src/recovery.rs`, `next_txn`).
#[test]
fn recovery_survives_a_transaction_id_of_u64_max() {
    let data = std::fs::read(
        corpus_dir()
            .join("recovery_framed")
            .join("regression-txn-id-u64-max"),
    )
    .expect("regression seed is present");
    harness::recovery_framed(&data);
}
