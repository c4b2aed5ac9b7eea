//! How a database is opened: durability, encryption, recovery policy,
//! segment size and the clock. Plain data with defaults; no behaviour.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::crypto::MasterKey;

/// When an acknowledged write is on stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync before a write is acknowledged. Concurrent writers share one
    /// fsync (group commit). An acknowledged write survives a crash.
    Always,
    /// fsync in the background at this interval. A crash loses at most the
    /// writes of the last interval (plus one fsync's duration).
    Periodic(Duration),
    /// Never fsync while open (only on `close`). A crash of the machine
    /// may lose any write since the last close; a crash of the process alone
    /// loses nothing, since the data is in the operating system's cache.
    Never,
}

/// What recovery does when it finds a damaged record that is followed by
/// valid records (damage in the middle of the log rather than a torn tail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Refuse to open, naming the file and offset. The default: acknowledged
    /// data after the damage would otherwise be silently dropped.
    #[default]
    Strict,
    /// Keep the valid prefix, truncate from the damage on, and report how
    /// many bytes were dropped. For salvaging a damaged database.
    Salvage,
}

/// Options for [`crate::Database::open`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Durability of acknowledged writes. Default: [`Durability::Always`].
    pub durability: Durability,
    /// Encrypt records at rest with a key derived from this master key. A
    /// database created with a key can only be opened with the same key.
    pub master_key: Option<MasterKey>,
    /// Create the database if the directory holds none. Default: true.
    pub create_if_missing: bool,
    /// How to treat damage in the middle of the log. Default: strict.
    pub recovery: RecoveryMode,
    /// A segment is sealed and a new one started once it reaches this size.
    /// Default: 64 MiB.
    pub segment_size_bytes_max: u64,
    /// Upper bound on the memory of the record cache: verified (checksummed
    /// and decrypted) document payloads of recent point reads, so a hot
    /// document is not verified again on every read. Counts payload bytes
    /// plus a small overhead per entry; the bound is per open database.
    /// The payloads of an encrypted database are held decrypted, until
    /// evicted or the database is dropped, as a document being read is.
    /// 0 turns the cache off. Default: [`RECORD_CACHE_BYTES_DEFAULT`].
    pub record_cache_bytes_max: usize,
    /// How long the committer thread of pending writes
    /// ([`crate::Database::write_pending`]) waits idle before it ends; the
    /// next pending write starts it again. Keeps a process with many open
    /// databases (dedicated tenants) from holding a thread for each.
    /// Default: [`COMMITTER_IDLE_DEFAULT`].
    pub committer_idle: Duration,
    /// Source of time for query deadlines and background syncs.
    pub clock: Arc<dyn Clock>,
    /// Test seam: a deterministic schedule of injected I/O faults (see
    /// `docs/format.md`, "Fault injection"). `None` outside tests.
    #[doc(hidden)]
    pub fault_plan: Option<Arc<crate::fault::FaultPlan>>,
}

/// Default segment size: 64 MiB.
pub const SEGMENT_SIZE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// Default idle time after which a committer thread ends: 1 s.
pub const COMMITTER_IDLE_DEFAULT: Duration = Duration::from_secs(1);

/// Default bound of the record cache: 32 MiB per open database.
pub const RECORD_CACHE_BYTES_DEFAULT: usize = 32 * 1024 * 1024;

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Always,
            master_key: None,
            create_if_missing: true,
            recovery: RecoveryMode::Strict,
            segment_size_bytes_max: SEGMENT_SIZE_BYTES_DEFAULT,
            record_cache_bytes_max: RECORD_CACHE_BYTES_DEFAULT,
            committer_idle: COMMITTER_IDLE_DEFAULT,
            clock: Arc::new(SystemClock),
            fault_plan: None,
        }
    }
}

impl Options {
    /// Sets the durability.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Turns on encryption at rest with `key`.
    pub fn master_key(mut self, key: MasterKey) -> Self {
        self.master_key = Some(key);
        self
    }

    /// Sets the recovery mode.
    pub fn recovery(mut self, mode: RecoveryMode) -> Self {
        self.recovery = mode;
        self
    }

    /// Sets the segment size at which the log rolls over.
    pub fn segment_size_bytes_max(mut self, bytes: u64) -> Self {
        self.segment_size_bytes_max = bytes;
        self
    }

    /// Sets the bound of the record cache (0 turns it off).
    pub fn record_cache_bytes_max(mut self, bytes: usize) -> Self {
        self.record_cache_bytes_max = bytes;
        self
    }

    /// Sets how long an idle committer thread lingers.
    pub fn committer_idle(mut self, idle: Duration) -> Self {
        self.committer_idle = idle;
        self
    }

    /// Sets the clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Fails instead of creating a database when the directory holds none.
    pub fn must_exist(mut self) -> Self {
        self.create_if_missing = false;
        self
    }
}
