//! The small files beside the segments: `AEROLITH` (the meta file, written
//! once at creation: format version, database id, encryption salt and key
//! check) and `MANIFEST` (which segments make up the log, in replay order,
//! replaced atomically on every change). Also the directory lock and the
//! atomic-replace helper they share.

use std::fs::{File, OpenOptions};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fault::{self, Faults};

pub(crate) const META_FILE: &str = "AEROLITH";
pub(crate) const MANIFEST_FILE: &str = "MANIFEST";
pub(crate) const LOCK_FILE: &str = "LOCK";
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// Contents of the meta file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) format: String,
    pub(crate) version: u32,
    pub(crate) database_id: String,
    pub(crate) encryption: Option<EncryptionMeta>,
}

/// Encryption parameters in the meta file (never the key).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct EncryptionMeta {
    pub(crate) algorithm: String,
    pub(crate) salt_hex: String,
    pub(crate) key_check_hex: String,
}

/// Contents of the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) version: u32,
    pub(crate) segments: Vec<u64>,
    pub(crate) next_segment_id: u64,
}

#[derive(Serialize, Deserialize)]
struct Checked<T> {
    body: T,
    blake3_hex: String,
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// fsyncs a directory so that created, renamed and removed entries survive a crash.
pub(crate) fn sync_dir(dir: &Path, faults: &Faults) -> Result<()> {
    File::open(dir)
        .and_then(|d| fault::sync_all(faults, &d, dir))
        .map_err(|e| Error::io("sync directory", dir, e))
}

/// Writes `bytes` to `dir/name` atomically: temp file, fsync, rename, fsync dir.
///
/// An error before the rename leaves the old file in place (and a `*.tmp`
/// leftover that recovery removes); an error from the rename or the directory
/// fsync leaves it unknown which version a crash would keep.
pub(crate) fn replace_file(dir: &Path, name: &str, bytes: &[u8], faults: &Faults) -> Result<()> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let path = dir.join(name);
    let mut f = fault::create(
        faults,
        OpenOptions::new().write(true).create(true).truncate(true),
        &tmp,
    )
    .map_err(|e| Error::io("create temp file", &tmp, e))?;
    fault::write_all(faults, &mut f, &tmp, bytes)
        .map_err(|e| Error::io("write temp file", &tmp, e))?;
    fault::sync_all(faults, &f, &tmp).map_err(|e| Error::io("sync temp file", &tmp, e))?;
    fault::rename(faults, &tmp, &path).map_err(|e| Error::io("rename into place", &path, e))?;
    sync_dir(dir, faults)
}

fn write_checked<T: Serialize>(dir: &Path, name: &str, body: &T, faults: &Faults) -> Result<()> {
    let body_json = serde_json::to_vec(body).expect("meta types serialize");
    let checked = Checked {
        body,
        blake3_hex: hex(blake3::hash(&body_json).as_bytes()),
    };
    let bytes = serde_json::to_vec_pretty(&checked).expect("meta types serialize");
    replace_file(dir, name, &bytes, faults)
}

fn read_checked<T: Serialize + for<'de> Deserialize<'de>>(
    dir: &Path,
    name: &str,
) -> Result<Option<T>> {
    let path = dir.join(name);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let corrupt = |reason: &str| Error::Corrupt {
        path: path.clone(),
        offset: 0,
        reason: reason.to_string(),
    };
    let checked: Checked<T> =
        serde_json::from_slice(&bytes).map_err(|_| corrupt("not a valid checksummed JSON file"))?;
    let body_json = serde_json::to_vec(&checked.body).expect("meta types serialize");
    if hex(blake3::hash(&body_json).as_bytes()) != checked.blake3_hex {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(Some(checked.body))
}

pub(crate) fn read_meta(dir: &Path) -> Result<Option<Meta>> {
    read_checked(dir, META_FILE)
}

pub(crate) fn write_meta(dir: &Path, meta: &Meta, faults: &Faults) -> Result<()> {
    write_checked(dir, META_FILE, meta, faults)
}

pub(crate) fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    read_checked(dir, MANIFEST_FILE)
}

pub(crate) fn write_manifest(dir: &Path, manifest: &Manifest, faults: &Faults) -> Result<()> {
    write_checked(dir, MANIFEST_FILE, manifest, faults)
}

/// Takes the exclusive directory lock; held for as long as the file is open.
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io("open lock file", &path, e))?;
    // A child process forked by this one (by any thread) holds a copy of
    // every descriptor until it calls exec, and with it our flock; so a lock
    // just released by `close` can look taken for a moment. Retry briefly
    // before calling the directory locked by someone else.
    for attempt in 0..=LOCK_ATTEMPTS {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if attempt < LOCK_ATTEMPTS => {
                std::thread::sleep(LOCK_RETRY_INTERVAL);
            }
            Err(std::fs::TryLockError::WouldBlock) => break,
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io("lock directory", &path, e))
            }
        }
    }
    Err(Error::Locked {
        path: dir.to_path_buf(),
    })
}

/// Attempts to take the directory lock before reporting it held.
const LOCK_ATTEMPTS: u32 = 20;
/// Pause between attempts (20 x 5 ms = 100 ms at most).
const LOCK_RETRY_INTERVAL: std::time::Duration = std::time::Duration::from_millis(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0xAB, 0xFF];
        assert_eq!(unhex(&hex(&bytes)).unwrap(), bytes);
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }

    #[test]
    fn a_tampered_manifest_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let m = Manifest {
            version: 1,
            segments: vec![1, 2],
            next_segment_id: 3,
        };
        write_manifest(dir.path(), &m, &None).unwrap();
        assert_eq!(read_manifest(dir.path()).unwrap(), Some(m));
        let path = dir.path().join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).unwrap().replace("2", "9");
        std::fs::write(&path, text).unwrap();
        assert!(matches!(
            read_manifest(dir.path()),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn the_directory_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_dir(dir.path()).unwrap();
        assert!(matches!(lock_dir(dir.path()), Err(Error::Locked { .. })));
        drop(held);
        assert!(lock_dir(dir.path()).is_ok());
    }
}
