//! Segment files: the log is a sequence of append-only files, each opened
//! with a small checksummed header. A segment is read through a `memmap2`
//! map; the active segment's map is refreshed when a read reaches past it.
//!
//! The active segment is zero-filled ahead of the appends in steps that
//! double from 64 KiB to [`PREALLOC_STEP_BYTES`] (synced once per step), so
//! that a durable commit overwrites blocks the file already has and its
//! fdatasync does not also have to journal a size change: measured on ext4, p50 145 us instead of 214 us
//! per 1.1 KiB commit (see BENCHMARKS.md). The next step is written on a
//! thread of its own before the zeros run out ([`Segment::fill_ahead`]), so
//! the commit path rarely pays for it. Recovery reads an all-zero tail
//! after the last frame of the last segment as the end of the log; a segment
//! is cut back to its frames when it is sealed and when the database closes.
//!
//! Invariant: bytes of a segment below its append position are never changed
//! while the database is open (recovery truncates a torn tail before any map
//! exists; trimming only removes the zero tail past every record; compaction
//! writes new files and deletes old ones, and an unlinked file stays readable
//! through the maps that snapshots still hold).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::Mmap;
use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::fault::{self, Faults};

/// Magic at the start of every segment file.
const SEGMENT_MAGIC: [u8; 8] = *b"AEROSEG\x01";
/// On-disk format version written into each segment header.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Bytes of the segment header.
pub(crate) const SEGMENT_HEADER_BYTES: u64 = 32;

/// At most how far ahead of the append position the active segment is
/// zero-filled, in one write and one fdatasync (never past the segment size
/// limit). Steps start at [`PREALLOC_STEP_BYTES_MIN`] and double with the
/// file, so a small database (one per tenant) holds few zeros.
pub(crate) const PREALLOC_STEP_BYTES: u64 = 4 << 20;
/// The first zero-fill step of a new segment.
pub(crate) const PREALLOC_STEP_BYTES_MIN: u64 = 64 << 10;
/// A background zero-fill writes its zeros in pieces of this size: a
/// buffered write holds the file's inode lock, and an append of the commit
/// path must not wait behind a whole step (4 MiB took 5-8 ms here).
const FILL_WRITE_BYTES: usize = 256 << 10;
/// The zeros every background fill writes from (no allocation, no faults).
static ZEROS: [u8; FILL_WRITE_BYTES] = [0; FILL_WRITE_BYTES];

/// The file name of segment `id`.
pub(crate) fn segment_file_name(id: u64) -> String {
    format!("seg-{id:016x}.aero")
}

/// Parses a segment file name back into its id.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".aero")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

fn header_bytes(id: u64) -> [u8; SEGMENT_HEADER_BYTES as usize] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES as usize];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&id.to_le_bytes());
    let sum = blake3::hash(&h[..24]);
    h[24..32].copy_from_slice(&sum.as_bytes()[..8]);
    h
}

/// One open segment file.
pub(crate) struct Segment {
    pub(crate) id: u64,
    pub(crate) path: PathBuf,
    file: File,
    map: RwLock<Arc<Mmap>>,
    /// Length of the file including its zero-filled tail (the writer's view).
    allocated_len: AtomicU64,
    /// End of the last record written (what an fsync makes durable).
    written_len: AtomicU64,
    /// Offset of the last frame written or replayed; 0 while there is none.
    /// The checkpoint names this frame as the segment's boundary.
    last_frame_offset: AtomicU64,
    /// The database's fault plan (tests only; `None` otherwise).
    faults: Faults,
    /// Held while the file is zero-filled (inline or in the background)
    /// and while it is cut back: one at a time, and never a fill of a
    /// segment that was trimmed meanwhile.
    fill: Mutex<()>,
    /// A background fill is scheduled or running.
    fill_scheduled: AtomicBool,
    /// Moved on by [`Segment::retire`]: a fill scheduled before it never
    /// writes.
    fill_epoch: AtomicU64,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("id", &self.id)
            .field("path", &self.path)
            .finish()
    }
}

#[allow(unsafe_code)]
fn map_file(file: &File, path: &Path) -> Result<Mmap> {
    // SAFETY: memmap2 requires that the mapped bytes are not modified or
    // truncated while mapped. Segments are append-only while open, the
    // database directory is locked against other processes, recovery
    // truncates before mapping, and deleted segments are unlinked (not
    // truncated), which leaves existing maps valid. Trimming the zero tail
    // (seal, close) shortens a mapped file, but only past the end of every
    // record, and reads only ever touch the bytes of records.
    unsafe { Mmap::map(file) }.map_err(|e| Error::io("map segment", path, e))
}

impl Segment {
    /// Creates a new, empty segment with its header, synced to disk.
    pub(crate) fn create(dir: &Path, id: u64, faults: &Faults) -> Result<Segment> {
        let path = dir.join(segment_file_name(id));
        let file = fault::create(
            faults,
            OpenOptions::new().read(true).write(true).create_new(true),
            &path,
        )
        .map_err(|e| Error::io("create segment", &path, e))?;
        fault::write_all_at(faults, &file, &path, &header_bytes(id), 0)
            .map_err(|e| Error::io("write segment header", &path, e))?;
        fault::sync_all(faults, &file, &path).map_err(|e| Error::io("sync segment", &path, e))?;
        let map = map_file(&file, &path)?;
        Ok(Segment {
            id,
            path,
            file,
            map: RwLock::new(Arc::new(map)),
            allocated_len: AtomicU64::new(SEGMENT_HEADER_BYTES),
            written_len: AtomicU64::new(SEGMENT_HEADER_BYTES),
            last_frame_offset: AtomicU64::new(0),
            faults: faults.clone(),
            fill: Mutex::new(()),
            fill_scheduled: AtomicBool::new(false),
            fill_epoch: AtomicU64::new(0),
        })
    }

    /// Opens an existing segment and checks its header.
    pub(crate) fn open(dir: &Path, id: u64, faults: &Faults) -> Result<Segment> {
        let path = dir.join(segment_file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open segment", &path, e))?;
        let mut header = [0u8; SEGMENT_HEADER_BYTES as usize];
        file.read_exact_at(&mut header, 0)
            .map_err(|_| Error::Corrupt {
                path: path.clone(),
                offset: 0,
                reason: "segment header is missing or cut short".into(),
            })?;
        if header != header_bytes(id) {
            return Err(Error::Corrupt {
                path,
                offset: 0,
                reason: "segment header does not match (wrong magic, version, id or checksum)"
                    .into(),
            });
        }
        let map = map_file(&file, &path)?;
        let len = map.len() as u64;
        Ok(Segment {
            id,
            path,
            file,
            map: RwLock::new(Arc::new(map)),
            allocated_len: AtomicU64::new(len),
            written_len: AtomicU64::new(len),
            last_frame_offset: AtomicU64::new(0),
            faults: faults.clone(),
            fill: Mutex::new(()),
            fill_scheduled: AtomicBool::new(false),
            fill_epoch: AtomicU64::new(0),
        })
    }

    /// Records that the last frame of this segment (so far) starts at
    /// `offset`: set by whoever appends or replays frames.
    pub(crate) fn set_last_frame(&self, offset: u64) {
        self.last_frame_offset.store(offset, Ordering::SeqCst);
    }

    /// Where the last frame starts, if any frame was written or replayed.
    pub(crate) fn last_frame(&self) -> Option<u64> {
        match self.last_frame_offset.load(Ordering::SeqCst) {
            0 => None,
            offset => Some(offset),
        }
    }

    /// The current length of the file.
    pub(crate) fn len(&self) -> Result<u64> {
        Ok(self
            .file
            .metadata()
            .map_err(|e| Error::io("stat segment", &self.path, e))?
            .len())
    }

    /// A map of the whole file as it is now.
    pub(crate) fn map(&self) -> Result<Arc<Mmap>> {
        self.refresh_map()
    }

    fn refresh_map(&self) -> Result<Arc<Mmap>> {
        let mut guard = self.map.write();
        let len = self.len()?;
        if guard.len() as u64 != len {
            *guard = Arc::new(map_file(&self.file, &self.path)?);
        }
        Ok(Arc::clone(&guard))
    }

    /// Calls `f` with `len` bytes at `offset`, remapping if the current map
    /// is too short (the active segment grows).
    pub(crate) fn with_bytes<R>(
        &self,
        offset: u64,
        len: u64,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        let end = offset
            .checked_add(len)
            .ok_or_else(|| self.out_of_range(offset))?;
        let map = self.map_reaching(offset, end)?;
        let start = usize::try_from(offset).map_err(|_| self.out_of_range(offset))?;
        let end = usize::try_from(end).map_err(|_| self.out_of_range(offset))?;
        Ok(f(&map[start..end]))
    }

    /// Calls `f` with `len` bytes at `offset`, read with one `pread` into a
    /// buffer of their own rather than through the map. For point reads: a
    /// first touch of a mapped page costs a page fault that maps its
    /// neighbours too (fault-around), several times the cost of the read,
    /// and every page mapped is unmapped again at close.
    pub(crate) fn with_read<R>(
        &self,
        offset: u64,
        len: u64,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        offset
            .checked_add(len)
            .ok_or_else(|| self.out_of_range(offset))?;
        let len = usize::try_from(len).map_err(|_| self.out_of_range(offset))?;
        let mut buf = vec![0u8; len];
        match self.file.read_exact_at(&mut buf, offset) {
            Ok(()) => Ok(f(&buf)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(self.out_of_range(offset))
            }
            Err(e) => Err(Error::io("read segment", &self.path, e)),
        }
    }

    /// The map of this segment, covering at least `..end` (remapped if the
    /// current map is too short: the active segment grows); `offset` is
    /// the record's, for the error.
    pub(crate) fn map_reaching(&self, offset: u64, end: u64) -> Result<Arc<Mmap>> {
        let map = {
            let guard = self.map.read();
            if guard.len() as u64 >= end {
                Some(Arc::clone(&guard))
            } else {
                None
            }
        };
        let map = match map {
            Some(m) => m,
            None => self.refresh_map()?,
        };
        if (map.len() as u64) < end {
            return Err(self.out_of_range(offset));
        }
        Ok(map)
    }

    fn out_of_range(&self, offset: u64) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            offset,
            reason: "record location is past the end of the segment".into(),
        }
    }

    /// Writes `bytes` at `offset` (the caller owns the append position).
    pub(crate) fn write_at(&self, bytes: &[u8], offset: u64) -> Result<()> {
        fault::write_all_at(&self.faults, &self.file, &self.path, bytes, offset)
            .map_err(|e| Error::io("append to segment", &self.path, e))?;
        let end = offset + bytes.len() as u64;
        self.written_len.fetch_max(end, Ordering::SeqCst);
        self.allocated_len.fetch_max(end, Ordering::SeqCst);
        Ok(())
    }

    /// Makes sure the file holds at least `end` bytes, zero-filling ahead in
    /// steps as large as the file (64 KiB to 4 MiB, not past `limit_bytes`) and
    /// syncing the zeros, so later appends below that length rewrite existing
    /// blocks. Called by the writer before an append; bytes past the append
    /// position are always zero. Waits for a background fill in progress
    /// ([`Segment::fill_ahead`]), which usually leaves nothing to do.
    pub(crate) fn reserve(&self, end: u64, limit_bytes: u64) -> Result<()> {
        if end <= self.allocated_len.load(Ordering::SeqCst) {
            return Ok(());
        }
        let _filling = self.fill.lock();
        let allocated = self.allocated_len.load(Ordering::SeqCst);
        if end <= allocated {
            return Ok(());
        }
        let target = Self::fill_target(allocated, limit_bytes).max(end);
        let n = usize::try_from(target - allocated).map_err(|_| self.out_of_range(end))?;
        // One write: a fresh zeroed allocation of this size costs no copying.
        let zeros = vec![0u8; n];
        fault::write_all_at(&self.faults, &self.file, &self.path, &zeros, allocated)
            .map_err(|e| Error::io("zero-fill segment", &self.path, e))?;
        let written = self.written_len.load(Ordering::SeqCst);
        fault::sync_data_len(&self.faults, &self.file, &self.path, written)
            .map_err(|e| Error::io("sync segment", &self.path, e))?;
        self.allocated_len.store(target, Ordering::SeqCst);
        Ok(())
    }

    /// The zero-fill step of a file of `allocated` bytes: as large as the
    /// file, 64 KiB to 4 MiB.
    fn fill_step_bytes(allocated: u64) -> u64 {
        allocated.clamp(PREALLOC_STEP_BYTES_MIN, PREALLOC_STEP_BYTES)
    }

    /// Where a zero-fill from `allocated` ends: one step further, never
    /// past `limit_bytes`.
    fn fill_target(allocated: u64, limit_bytes: u64) -> u64 {
        (allocated + Self::fill_step_bytes(allocated))
            .min(limit_bytes)
            .max(allocated)
    }

    /// After an append ending at `end`: once less than half a step of
    /// zeros is left ahead, starts the next step's zero-fill on a thread of
    /// its own, so that the commit path rarely pays for one (a 4 MiB fill
    /// and its fdatasync took 7-11 ms on the commit thread, every ~3,800
    /// inserts of 1 KiB: the p99 of durable HTTP inserts). The fill writes
    /// through a file description of its own, so a failed fdatasync there
    /// is still reported to the writer's next fdatasync (Linux reports a
    /// writeback error to every open file description), and `on_failure`
    /// (the database's poison) runs before the fill's lock is released.
    /// With a fault plan (tests) fills stay inline, in `reserve`, where the
    /// plan's order of operations is deterministic.
    pub(crate) fn fill_ahead(
        self: &Arc<Self>,
        end: u64,
        limit_bytes: u64,
        on_failure: impl FnOnce(&Error) + Send + 'static,
    ) -> Option<std::thread::JoinHandle<()>> {
        let allocated = self.allocated_len.load(Ordering::SeqCst);
        if self.faults.is_some()
            || allocated >= limit_bytes
            || allocated.saturating_sub(end) > Self::fill_step_bytes(allocated) / 2
            || self.fill_scheduled.swap(true, Ordering::SeqCst)
        {
            return None;
        }
        let epoch = self.fill_epoch.load(Ordering::SeqCst);
        let segment = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("aerolith-fill".into())
            .spawn(move || {
                let _filling = segment.fill.lock();
                // Retired (sealed, closed, dropped), or filled inline, since:
                // nothing to do.
                if segment.fill_epoch.load(Ordering::SeqCst) == epoch
                    && segment.allocated_len.load(Ordering::SeqCst) == allocated
                {
                    if let Err(e) = segment.fill_step(allocated, limit_bytes) {
                        on_failure(&e);
                    }
                }
                segment.fill_scheduled.store(false, Ordering::SeqCst);
            });
        match spawned {
            Ok(handle) => Some(handle),
            Err(_) => {
                // No thread: the next append that needs room fills inline.
                self.fill_scheduled.store(false, Ordering::SeqCst);
                None
            }
        }
    }

    /// One step of zeros from `allocated`, written in pieces through a file
    /// description of its own and synced; called with `fill` held.
    fn fill_step(&self, allocated: u64, limit_bytes: u64) -> Result<()> {
        let target = Self::fill_target(allocated, limit_bytes);
        let file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(|e| Error::io("open segment to zero-fill", &self.path, e))?;
        let mut at = allocated;
        while at < target {
            let n = (target - at).min(FILL_WRITE_BYTES as u64) as usize;
            file.write_all_at(&ZEROS[..n], at)
                .map_err(|e| Error::io("zero-fill segment", &self.path, e))?;
            at += n as u64;
        }
        file.sync_data()
            .map_err(|e| Error::io("sync segment", &self.path, e))?;
        self.allocated_len.store(target, Ordering::SeqCst);
        Ok(())
    }

    /// Ends background fills: waits for one in progress and makes any
    /// scheduled one do nothing. Called when the segment stops being the
    /// active one (sealed, closed, the database dropped), so that no fill
    /// ever writes to a file another writer may own next.
    pub(crate) fn retire(&self) {
        let _filling = self.fill.lock();
        self.fill_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// fdatasync: the data written so far survives a crash.
    pub(crate) fn sync(&self) -> Result<()> {
        let written = self.written_len.load(Ordering::SeqCst);
        fault::sync_data_len(&self.faults, &self.file, &self.path, written)
            .map_err(|e| Error::io("sync segment", &self.path, e))
    }

    /// Cuts the file at `len` (recovery of a torn tail, before serving reads).
    pub(crate) fn truncate(&self, len: u64) -> Result<()> {
        let _filling = self.fill.lock();
        fault::set_len(&self.faults, &self.file, &self.path, len)
            .map_err(|e| Error::io("truncate segment", &self.path, e))?;
        fault::sync_all(&self.faults, &self.file, &self.path)
            .map_err(|e| Error::io("sync segment", &self.path, e))?;
        self.allocated_len.store(len, Ordering::SeqCst);
        self.written_len.store(len, Ordering::SeqCst);
        *self.map.write() = Arc::new(map_file(&self.file, &self.path)?);
        Ok(())
    }

    /// Cuts the zero-filled tail off at `len`, the end of the last record
    /// (sealing a segment, closing the database). No-op if there is none.
    pub(crate) fn trim(&self, len: u64) -> Result<()> {
        self.retire();
        if self.len()? > len {
            self.truncate(len)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
        assert_eq!(parse_segment_file_name("seg-xyz.aero"), None);
        assert_eq!(parse_segment_file_name("MANIFEST"), None);
    }

    #[test]
    fn a_damaged_header_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let seg = Segment::create(dir.path(), 7, &None).unwrap();
        seg.write_at(&[0xFF], 3).unwrap();
        drop(seg);
        assert!(matches!(
            Segment::open(dir.path(), 7, &None),
            Err(Error::Corrupt { offset: 0, .. })
        ));
    }

    #[test]
    fn zero_fill_steps_double_stop_at_the_limit_and_trim_cuts_them_off() {
        let dir = tempfile::tempdir().unwrap();
        let seg = Segment::create(dir.path(), 1, &None).unwrap();
        let limit = 1 << 20;
        seg.reserve(SEGMENT_HEADER_BYTES + 10, limit).unwrap();
        let first = SEGMENT_HEADER_BYTES + PREALLOC_STEP_BYTES_MIN;
        assert_eq!(seg.len().unwrap(), first);
        seg.write_at(&[7; 10], SEGMENT_HEADER_BYTES).unwrap();
        // Within the allocation: nothing written.
        seg.reserve(first, limit).unwrap();
        assert_eq!(seg.len().unwrap(), first);
        seg.reserve(first + 1, limit).unwrap();
        assert_eq!(seg.len().unwrap(), 2 * first);
        seg.reserve(2 * first + 1, limit).unwrap();
        assert_eq!(seg.len().unwrap(), 4 * first);
        // Never past the limit, unless the append itself needs it.
        seg.reserve(4 * first + 1, 5 * first).unwrap();
        assert_eq!(seg.len().unwrap(), 5 * first);
        seg.reserve(limit + 5, limit).unwrap();
        assert_eq!(seg.len().unwrap(), limit + 5);
        let bytes = seg.map().unwrap();
        assert_eq!(&bytes[32..42], &[7; 10]);
        assert!(bytes[42..].iter().all(|&b| b == 0));
        seg.trim(SEGMENT_HEADER_BYTES + 10).unwrap();
        assert_eq!(seg.len().unwrap(), SEGMENT_HEADER_BYTES + 10);
        // The next append zero-fills again from the trimmed end.
        seg.reserve(SEGMENT_HEADER_BYTES + 11, limit).unwrap();
        assert_eq!(
            seg.len().unwrap(),
            SEGMENT_HEADER_BYTES + 10 + PREALLOC_STEP_BYTES_MIN
        );
    }

    #[test]
    fn reads_past_the_map_remap_the_growing_file() {
        let dir = tempfile::tempdir().unwrap();
        let seg = Segment::create(dir.path(), 1, &None).unwrap();
        seg.write_at(b"hello", SEGMENT_HEADER_BYTES).unwrap();
        let got = seg
            .with_bytes(SEGMENT_HEADER_BYTES, 5, |b| b.to_vec())
            .unwrap();
        assert_eq!(got, b"hello");
        assert!(seg.with_bytes(SEGMENT_HEADER_BYTES, 6, |_| ()).is_err());
    }

    /// A new segment with its first zero-fill step done (1 MiB limit).
    fn filled_segment(dir: &Path, faults: &Faults) -> Arc<Segment> {
        let seg = Arc::new(Segment::create(dir, 1, faults).unwrap());
        seg.reserve(SEGMENT_HEADER_BYTES + 10, FILL_TEST_LIMIT)
            .unwrap();
        seg
    }

    const FILL_TEST_LIMIT: u64 = 1 << 20;

    #[test]
    fn background_fills_extend_ahead_of_the_appends_with_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let seg = filled_segment(dir.path(), &None);
        let limit = FILL_TEST_LIMIT;
        let first = SEGMENT_HEADER_BYTES + PREALLOC_STEP_BYTES_MIN;
        seg.write_at(&[7; 10], SEGMENT_HEADER_BYTES).unwrap();
        let failed = Arc::new(AtomicBool::new(false));
        let on_failure = |failed: &Arc<AtomicBool>| {
            let failed = Arc::clone(failed);
            move |_: &Error| failed.store(true, Ordering::SeqCst)
        };
        // Plenty of zeros ahead: nothing is started.
        assert!(seg
            .fill_ahead(SEGMENT_HEADER_BYTES + 10, limit, on_failure(&failed))
            .is_none());
        // Less than half a step ahead: the next step, on a thread.
        let end = first - PREALLOC_STEP_BYTES_MIN / 4;
        seg.write_at(&[8; 10], end - 10).unwrap();
        seg.fill_ahead(end, limit, on_failure(&failed))
            .expect("a fill starts")
            .join()
            .unwrap();
        assert_eq!(seg.len().unwrap(), 2 * first);
        // The appends below it need no fill of their own.
        seg.reserve(2 * first, limit).unwrap();
        assert_eq!(seg.len().unwrap(), 2 * first);
        let bytes = seg.map().unwrap();
        assert_eq!(&bytes[32..42], &[7; 10]);
        assert_eq!(&bytes[(end - 10) as usize..end as usize], &[8; 10]);
        assert!(bytes[end as usize..].iter().all(|&b| b == 0));
        assert!(bytes[42..(end - 10) as usize].iter().all(|&b| b == 0));
        // Never past the limit.
        assert!(seg
            .fill_ahead(2 * first, 2 * first, on_failure(&failed))
            .is_none());
        assert!(!failed.load(Ordering::SeqCst));
    }

    #[test]
    fn a_background_fill_of_a_segment_trimmed_meanwhile_does_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let seg = filled_segment(dir.path(), &None);
        let limit = FILL_TEST_LIMIT;
        seg.write_at(&[7; 10], SEGMENT_HEADER_BYTES).unwrap();
        let end = SEGMENT_HEADER_BYTES + PREALLOC_STEP_BYTES_MIN - 100;
        // The fill waits for the lock; meanwhile the segment is cut back.
        let filling = seg.fill.lock();
        let fill = seg.fill_ahead(end, limit, |_| {}).expect("a fill starts");
        // Another scheduled fill is not started twice.
        assert!(seg.fill_ahead(end, limit, |_| {}).is_none());
        fault::set_len(&None, &seg.file, &seg.path, SEGMENT_HEADER_BYTES + 10).unwrap();
        seg.allocated_len
            .store(SEGMENT_HEADER_BYTES + 10, Ordering::SeqCst);
        drop(filling);
        fill.join().unwrap();
        assert_eq!(seg.len().unwrap(), SEGMENT_HEADER_BYTES + 10);
        assert!(!seg.fill_scheduled.load(Ordering::SeqCst));
    }

    #[test]
    fn fills_stay_inline_under_a_fault_plan() {
        let dir = tempfile::tempdir().unwrap();
        let faults: Faults = Some(Arc::new(crate::fault::FaultPlan::default()));
        let seg = filled_segment(dir.path(), &faults);
        let end = SEGMENT_HEADER_BYTES + PREALLOC_STEP_BYTES_MIN - 100;
        assert!(seg.fill_ahead(end, FILL_TEST_LIMIT, |_| {}).is_none());
    }

    #[test]
    fn a_fill_scheduled_before_the_segment_retires_never_writes() {
        let dir = tempfile::tempdir().unwrap();
        let seg = filled_segment(dir.path(), &None);
        let limit = FILL_TEST_LIMIT;
        let allocated = SEGMENT_HEADER_BYTES + PREALLOC_STEP_BYTES_MIN;
        // The fill is scheduled and waits for the lock; the segment retires
        // (what `retire` does under the lock) before the fill gets it.
        let filling = seg.fill.lock();
        let fill = seg
            .fill_ahead(allocated - 100, limit, |_| {})
            .expect("a fill starts");
        seg.fill_epoch.fetch_add(1, Ordering::SeqCst);
        drop(filling);
        fill.join().unwrap();
        assert_eq!(seg.len().unwrap(), allocated, "the retired fill wrote");
        // A fill scheduled after the retire works again (a trimmed segment
        // that stays active in this test), and `retire` waits for it.
        let fill = seg
            .fill_ahead(allocated - 100, limit, |_| {})
            .expect("a fill starts");
        fill.join().unwrap();
        seg.retire();
        assert_eq!(seg.len().unwrap(), 2 * allocated);
    }
}
