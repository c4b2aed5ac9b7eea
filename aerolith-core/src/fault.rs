//! Fault injection: a deterministic test seam between the engine and the
//! file system. Every write, fsync, `set_len`, file creation and rename the
//! engine performs on its own files (segments, the manifest, the meta file,
//! backups) goes through the helpers here; with a [`FaultPlan`] installed
//! (the hidden `Options::fault_plan` field) the Nth operation of a kind can
//! fail with an errno, or a write can be cut short after K bytes. Without a
//! plan each helper costs one `Option` check.
//!
//! Not a stable API and not part of the documented surface: it exists so the
//! fault suite (`aerolith-core/tests/it/faults.rs`) can prove the commit
//! protocol of `docs/format.md` under failing disks.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// `ENOSPC`: no space left on the device.
pub const ENOSPC: i32 = 28;
/// `EIO`: an input/output error (a failed fsync reports this).
pub const EIO: i32 = 5;

/// A kind of file-system operation the engine performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// A positioned or streaming write of bytes.
    Write,
    /// `fsync`/`fdatasync` of a file or a directory.
    Sync,
    /// `set_len` (truncation of a torn tail).
    SetLen,
    /// Creation of a file (segment, temp file, backup file).
    Create,
    /// A rename (the atomic replace of the manifest or meta file).
    Rename,
}

impl FaultOp {
    /// Every kind, in a fixed order.
    pub const ALL: [FaultOp; 5] = [
        FaultOp::Write,
        FaultOp::Sync,
        FaultOp::SetLen,
        FaultOp::Create,
        FaultOp::Rename,
    ];

    fn index(self) -> usize {
        match self {
            FaultOp::Write => 0,
            FaultOp::Sync => 1,
            FaultOp::SetLen => 2,
            FaultOp::Create => 3,
            FaultOp::Rename => 4,
        }
    }
}

/// What happens to an operation chosen by a [`FaultPlan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The operation does nothing and fails with this errno.
    Fail {
        /// The raw OS error, e.g. [`ENOSPC`] or [`EIO`].
        errno: i32,
    },
    /// A write stores only its first `bytes` bytes, then fails with `ENOSPC`.
    /// On other operations it behaves like `Fail { errno: ENOSPC }`.
    ShortWrite {
        /// Bytes actually written before the failure.
        bytes: usize,
    },
    /// The operation panics: a stand-in for a bug on that path, to test
    /// that a panic fails the writers involved instead of stalling the
    /// database.
    Panic,
}

/// One fault that fired: which operation, its 1-based number among
/// operations of its kind, and the file it was on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiredFault {
    /// The kind of operation.
    pub op: FaultOp,
    /// Its number among operations of that kind since the plan was made.
    pub nth: u64,
    /// The file or directory it was on.
    pub path: PathBuf,
    /// What was injected.
    pub fault: Fault,
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    op: FaultOp,
    nth: u64,
    fault: Fault,
}

/// A deterministic schedule of faults, shared by every file of one database.
/// Counts every operation by kind (also with no rules, for a dry run that
/// learns how many positions a workload has).
#[derive(Debug, Default)]
pub struct FaultPlan {
    counts: [AtomicU64; 5],
    rules: Mutex<Vec<Rule>>,
    fired: Mutex<Vec<FiredFault>>,
    /// Length of each file at its last successful fsync: what a power cut
    /// right now would be guaranteed to keep.
    synced_lens: Mutex<HashMap<PathBuf, u64>>,
}

impl FaultPlan {
    /// A plan with no faults: it only counts.
    pub fn new() -> Arc<FaultPlan> {
        Arc::new(FaultPlan::default())
    }

    /// A plan that injects `fault` into the `nth` (1-based) operation of kind `op`.
    pub fn at(op: FaultOp, nth: u64, fault: Fault) -> Arc<FaultPlan> {
        let plan = FaultPlan::default();
        plan.add(op, nth, fault);
        Arc::new(plan)
    }

    /// Adds a rule: inject `fault` into the `nth` (1-based, counted from
    /// the plan's creation) operation of kind `op`.
    pub fn add(&self, op: FaultOp, nth: u64, fault: Fault) {
        self.rules.lock().push(Rule { op, nth, fault });
    }

    /// Operations of kind `op` seen so far.
    pub fn count(&self, op: FaultOp) -> u64 {
        self.counts[op.index()].load(Ordering::SeqCst)
    }

    /// The faults that have fired, in order.
    pub fn fired(&self) -> Vec<FiredFault> {
        self.fired.lock().clone()
    }

    /// The length of every file this plan saw fsynced, as of its last
    /// successful fsync. Cutting each file back to it simulates a power cut
    /// that loses every write not yet synced.
    pub fn synced_lengths(&self) -> HashMap<PathBuf, u64> {
        self.synced_lens.lock().clone()
    }

    fn record_synced_len(&self, path: &Path, len: u64) {
        self.synced_lens.lock().insert(path.to_path_buf(), len);
    }

    fn record_synced(&self, file: &File, path: &Path) {
        if let Ok(meta) = file.metadata() {
            if meta.is_file() {
                self.synced_lens
                    .lock()
                    .insert(path.to_path_buf(), meta.len());
            }
        }
    }

    /// Counts one operation and returns the fault to inject, if any.
    fn check(&self, op: FaultOp, path: &Path) -> Option<Fault> {
        let nth = self.counts[op.index()].fetch_add(1, Ordering::SeqCst) + 1;
        let fault = self
            .rules
            .lock()
            .iter()
            .find(|r| r.op == op && r.nth == nth)
            .map(|r| r.fault)?;
        self.fired.lock().push(FiredFault {
            op,
            nth,
            path: path.to_path_buf(),
            fault,
        });
        Some(fault)
    }
}

/// The fault plan of one database, if any.
pub(crate) type Faults = Option<Arc<FaultPlan>>;

fn injected(fault: Fault) -> std::io::Error {
    match fault {
        Fault::Fail { errno } => std::io::Error::from_raw_os_error(errno),
        Fault::ShortWrite { .. } => std::io::Error::from_raw_os_error(ENOSPC),
        Fault::Panic => panic!("injected panic (fault plan)"),
    }
}

fn plain(faults: &Faults, op: FaultOp, path: &Path) -> std::io::Result<()> {
    match faults.as_deref().and_then(|p| p.check(op, path)) {
        Some(fault) => Err(injected(fault)),
        None => Ok(()),
    }
}

/// `write_all_at` through the plan.
pub(crate) fn write_all_at(
    faults: &Faults,
    file: &File,
    path: &Path,
    bytes: &[u8],
    offset: u64,
) -> std::io::Result<()> {
    if let Some(fault) = faults
        .as_deref()
        .and_then(|p| p.check(FaultOp::Write, path))
    {
        if let Fault::ShortWrite { bytes: k } = fault {
            file.write_all_at(&bytes[..k.min(bytes.len())], offset)?;
        }
        return Err(injected(fault));
    }
    file.write_all_at(bytes, offset)
}

/// `write_all` through the plan.
pub(crate) fn write_all(
    faults: &Faults,
    file: &mut File,
    path: &Path,
    bytes: &[u8],
) -> std::io::Result<()> {
    if let Some(fault) = faults
        .as_deref()
        .and_then(|p| p.check(FaultOp::Write, path))
    {
        if let Fault::ShortWrite { bytes: k } = fault {
            file.write_all(&bytes[..k.min(bytes.len())])?;
        }
        return Err(injected(fault));
    }
    file.write_all(bytes)
}

/// `sync_data` through the plan for a file whose meaningful bytes end at
/// `data_len` (a segment with a zero-filled tail): the plan records
/// `data_len`, not the file length, as what the fsync made durable, so a
/// simulated power cut still loses appends made after it.
pub(crate) fn sync_data_len(
    faults: &Faults,
    file: &File,
    path: &Path,
    data_len: u64,
) -> std::io::Result<()> {
    plain(faults, FaultOp::Sync, path)?;
    file.sync_data()?;
    if let Some(plan) = faults {
        plan.record_synced_len(path, data_len);
    }
    Ok(())
}

/// `sync_all` through the plan.
pub(crate) fn sync_all(faults: &Faults, file: &File, path: &Path) -> std::io::Result<()> {
    plain(faults, FaultOp::Sync, path)?;
    file.sync_all()?;
    if let Some(plan) = faults {
        plan.record_synced(file, path);
    }
    Ok(())
}

/// `set_len` through the plan.
pub(crate) fn set_len(faults: &Faults, file: &File, path: &Path, len: u64) -> std::io::Result<()> {
    plain(faults, FaultOp::SetLen, path)?;
    file.set_len(len)
}

/// Opens (creating) `path` with `options` through the plan.
pub(crate) fn create(faults: &Faults, options: &OpenOptions, path: &Path) -> std::io::Result<File> {
    plain(faults, FaultOp::Create, path)?;
    options.open(path)
}

/// `std::fs::rename` through the plan (the fault names the destination).
pub(crate) fn rename(faults: &Faults, from: &Path, to: &Path) -> std::io::Result<()> {
    plain(faults, FaultOp::Rename, to)?;
    std::fs::rename(from, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nth_operation_fails_and_is_recorded() {
        let plan = FaultPlan::at(FaultOp::Sync, 2, Fault::Fail { errno: EIO });
        let faults: Faults = Some(Arc::clone(&plan));
        let p = Path::new("x");
        assert!(plain(&faults, FaultOp::Sync, p).is_ok());
        let err = plain(&faults, FaultOp::Sync, p).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(EIO));
        assert!(plain(&faults, FaultOp::Sync, p).is_ok());
        assert_eq!(plan.count(FaultOp::Sync), 3);
        assert_eq!(plan.fired().len(), 1);
        assert_eq!(plan.fired()[0].nth, 2);
    }

    #[test]
    fn a_short_write_stores_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let faults: Faults = Some(FaultPlan::at(
            FaultOp::Write,
            1,
            Fault::ShortWrite { bytes: 3 },
        ));
        let err = write_all_at(&faults, &file, &path, b"hello", 0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(ENOSPC));
        assert_eq!(std::fs::read(&path).unwrap(), b"hel");
    }
}
