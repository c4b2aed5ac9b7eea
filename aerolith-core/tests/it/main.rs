//! Integration tests for aerolith-core, one binary (see ARCHITECTURE.md).

mod backup;
mod basics;
mod checkpoint;
mod compaction;
mod crash;
mod encryption;
mod faults;
mod model;
mod pending_write;
mod queries;
mod record_cache;
mod recovery;

use aerolith_core::{Database, Durability, Options};

/// Options for tests: no fsync (tests that need it say so).
pub fn fast() -> Options {
    Options::default().durability(Durability::Never)
}

/// The segment files of a database directory, in id order.
pub fn segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .expect("database directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "aero"))
        .collect();
    files.sort();
    files
}

/// A power cut after a fault plan ran: cuts every segment file back to its
/// length at its last successful fsync (what the disk is guaranteed to keep).
pub fn cut_segments_to_synced(plan: &aerolith_core::fault::FaultPlan) {
    for (path, len) in plan.synced_lengths() {
        if path.extension().is_some_and(|e| e == "aero") {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("segment file");
            if f.metadata().expect("metadata").len() > len {
                f.set_len(len).expect("cut");
            }
        }
    }
}

/// Copies the database files of `from` (open or not) into a new directory,
/// all but the lock: what a kill at this moment leaves once the page cache
/// reaches the disk.
pub fn crash_image(from: &std::path::Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(from).expect("database directory") {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().expect("file name");
        if name != "LOCK" {
            std::fs::copy(&path, to.path().join(name)).expect("copy");
        }
    }
    to
}

/// Opens a fresh database in a temp dir.
pub fn fresh() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::open(dir.path(), fast()).expect("open");
    (dir, db)
}
