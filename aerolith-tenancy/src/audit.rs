//! The audit log: append-only, hash-chained, verifiable.
//!
//! Each [`AuditEntry`] carries the blake3 hash of the entry before it, so
//! altering, removing or reordering any entry breaks the chain from that
//! point on, and [`AuditLog::verify`] reports the first entry where it
//! breaks. An attacker who can rewrite the whole store can recompute every
//! hash (there is no key); [`AuditLog::head`] gives an anchor to keep
//! elsewhere and [`AuditLog::verify_against`] checks the log still contains it.
//!
//! ## Canonical encoding
//!
//! `hash = blake3::Hasher::new_derive_key(AUDIT_HASH_CONTEXT)` over these
//! bytes, in order (integers big-endian):
//!
//! 1. `seq`: u64 (8 bytes). The first entry has seq 0.
//! 2. `at_unix_ms`: i64 (8 bytes).
//! 3. `actor`: one tag byte; `0` = operator (nothing follows); `1` = tenant,
//!    followed by tenant id u64 (8), role code u8 (1), key id u128 (16).
//! 4. `action`: u16 code (2 bytes), [`AuditAction::code`].
//! 5. `target`: length u32 (4 bytes) then that many UTF-8 bytes.
//! 6. `outcome`: u8 code (1 byte), [`AuditOutcome::code`].
//! 7. `prev_hash`: 32 bytes; all zero for the first entry.
//!
//! Every variable-length field is length-prefixed and every enum has a
//! fixed code, so two different entries never encode to the same bytes.
//!
//! Storage is behind [`AuditStore`] (append, read by position, length);
//! entry at position `i` must have seq `i`. [`MemoryAuditStore`] serves tests.

use std::sync::Arc;

use aerolith_core::Clock;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::error::{AuditError, StoreError};
use crate::role::Principal;

/// blake3 `derive_key` context for entry hashes.
pub const AUDIT_HASH_CONTEXT: &str = "aerolith 2026-01 audit entry v1";
/// Longest target text, in bytes.
pub const AUDIT_TARGET_BYTES_MAX: usize = 1024;
/// Most entries returned by one [`AuditLog::list`] call.
pub const AUDIT_LIST_LIMIT_MAX: usize = 1000;
/// Entries read per page while verifying.
const AUDIT_VERIFY_PAGE_LEN: usize = 1024;
/// `prev_hash` of the first entry.
pub const AUDIT_GENESIS_HASH: [u8; 32] = [0; 32];

/// What was done. Codes are stable: they are part of every entry's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditAction {
    /// A tenant was created.
    TenantCreated,
    /// A tenant's name or settings changed.
    TenantUpdated,
    /// A tenant was suspended.
    TenantSuspended,
    /// A tenant was resumed.
    TenantResumed,
    /// A tenant was deleted.
    TenantDeleted,
    /// A tenant's plan changed.
    PlanChanged,
    /// A tenant's limits override changed.
    LimitsOverridden,
    /// An API key was created.
    KeyCreated,
    /// An API key was revoked.
    KeyRevoked,
    /// A key's role changed.
    RoleChanged,
    /// A collection was created.
    CollectionCreated,
    /// A collection was dropped.
    CollectionDropped,
    /// An index was created.
    IndexCreated,
    /// An index was dropped.
    IndexDropped,
    /// An invoice was paid.
    InvoicePaid,
    /// An authentication attempt failed.
    AuthenticationFailed,
    /// Billing: a subscription changed (started, plan change, renewal,
    /// cancellation, suspension or restore).
    BillingSubscription,
    /// Billing: an invoice was issued, paid, voided or credited.
    BillingInvoice,
    /// Billing: a dunning step (payment failure, retry, suspension,
    /// cancellation for non-payment, restore).
    BillingDunning,
}

impl AuditAction {
    /// The stable code hashed into entries.
    pub const fn code(self) -> u16 {
        match self {
            AuditAction::TenantCreated => 1,
            AuditAction::TenantUpdated => 2,
            AuditAction::TenantSuspended => 3,
            AuditAction::TenantResumed => 4,
            AuditAction::TenantDeleted => 5,
            AuditAction::PlanChanged => 6,
            AuditAction::LimitsOverridden => 7,
            AuditAction::KeyCreated => 8,
            AuditAction::KeyRevoked => 9,
            AuditAction::RoleChanged => 10,
            AuditAction::CollectionCreated => 11,
            AuditAction::CollectionDropped => 12,
            AuditAction::IndexCreated => 13,
            AuditAction::IndexDropped => 14,
            AuditAction::InvoicePaid => 15,
            AuditAction::AuthenticationFailed => 16,
            AuditAction::BillingSubscription => 17,
            AuditAction::BillingInvoice => 18,
            AuditAction::BillingDunning => 19,
        }
    }
}

/// The billing events a billing layer may append to a tenant's audit chain
/// (see `Tenancy::audit_billing_event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingAuditKind {
    /// A subscription transition.
    Subscription,
    /// An invoice transition.
    Invoice,
    /// A dunning transition.
    Dunning,
}

impl BillingAuditKind {
    /// The audit action recorded for this kind.
    pub const fn action(self) -> AuditAction {
        match self {
            BillingAuditKind::Subscription => AuditAction::BillingSubscription,
            BillingAuditKind::Invoice => AuditAction::BillingInvoice,
            BillingAuditKind::Dunning => AuditAction::BillingDunning,
        }
    }
}

/// How it ended. Codes are stable: they are part of every entry's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// The action was carried out.
    Succeeded,
    /// The action was refused (authentication, permission, quota).
    Denied,
    /// The action was attempted and failed.
    Failed,
}

impl AuditOutcome {
    /// The stable code hashed into entries.
    pub const fn code(self) -> u8 {
        match self {
            AuditOutcome::Succeeded => 1,
            AuditOutcome::Denied => 2,
            AuditOutcome::Failed => 3,
        }
    }
}

/// What the caller asks to record; the log adds seq, time and hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Who did it.
    pub actor: Principal,
    /// What was done.
    pub action: AuditAction,
    /// What it was done to (a tenant id, key id, collection name...), at most
    /// [`AUDIT_TARGET_BYTES_MAX`] bytes.
    pub target: String,
    /// How it ended.
    pub outcome: AuditOutcome,
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, from 0.
    pub seq: u64,
    /// When it was recorded (Unix ms).
    pub at_unix_ms: i64,
    /// Who did it.
    pub actor: Principal,
    /// What was done.
    pub action: AuditAction,
    /// What it was done to.
    pub target: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Hash of the previous entry ([`AUDIT_GENESIS_HASH`] for the first).
    pub prev_hash: [u8; 32],
    /// Hash of this entry's canonical encoding (see the module docs).
    pub hash: [u8; 32],
}

impl AuditEntry {
    /// Recomputes the hash from the fields (everything but `hash`).
    pub fn compute_hash(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_derive_key(AUDIT_HASH_CONTEXT);
        hasher.update(&self.seq.to_be_bytes());
        hasher.update(&self.at_unix_ms.to_be_bytes());
        match self.actor {
            Principal::Operator => {
                hasher.update(&[0]);
            }
            Principal::Tenant {
                tenant,
                role,
                key_id,
            } => {
                hasher.update(&[1]);
                hasher.update(&tenant.to_be_bytes());
                hasher.update(&[role.code()]);
                hasher.update(&key_id.to_be_bytes());
            }
        }
        hasher.update(&self.action.code().to_be_bytes());
        // Targets longer than u32::MAX bytes are refused at append; a longer
        // one read back from a tampered store hashes with a saturated length
        // and so fails verification.
        let target_len = u32::try_from(self.target.len()).unwrap_or(u32::MAX);
        hasher.update(&target_len.to_be_bytes());
        hasher.update(self.target.as_bytes());
        hasher.update(&[self.outcome.code()]);
        hasher.update(&self.prev_hash);
        *hasher.finalize().as_bytes()
    }
}

/// Where entries live. Entry at position `i` has seq `i`.
pub trait AuditStore: Send + Sync {
    /// Appends one entry at the end.
    fn append(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// Up to `limit` entries from position `from_position` on.
    fn read_range(&self, from_position: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
    /// Number of entries stored.
    fn len(&self) -> Result<u64, StoreError>;
    /// Whether no entry is stored.
    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}

/// An in-memory [`AuditStore`].
#[derive(Debug, Default)]
pub struct MemoryAuditStore {
    entries: RwLock<Vec<AuditEntry>>,
}

impl MemoryAuditStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `entries` as given, unchecked (for loading, and for
    /// tests that tamper with a log).
    pub fn from_entries(entries: Vec<AuditEntry>) -> Self {
        MemoryAuditStore {
            entries: RwLock::new(entries),
        }
    }

    /// A copy of every entry.
    pub fn entries(&self) -> Vec<AuditEntry> {
        self.entries.read().clone()
    }
}

impl AuditStore for MemoryAuditStore {
    fn append(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.entries.write().push(entry.clone());
        Ok(())
    }

    fn read_range(&self, from_position: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let entries = self.entries.read();
        let start = usize::try_from(from_position)
            .unwrap_or(usize::MAX)
            .min(entries.len());
        let end = start.saturating_add(limit).min(entries.len());
        Ok(entries[start..end].to_vec())
    }

    fn len(&self) -> Result<u64, StoreError> {
        Ok(u64::try_from(self.entries.read().len()).expect("usize fits in u64"))
    }
}

/// The last entry of a log: keep it somewhere else to detect a rewritten log
/// with [`AuditLog::verify_against`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    /// The last entry's seq.
    pub seq: u64,
    /// The last entry's hash.
    pub hash: [u8; 32],
}

#[derive(Debug, Clone, Copy)]
struct Tail {
    next_seq: u64,
    last_hash: [u8; 32],
}

/// A hash-chained audit log over an [`AuditStore`]. Appends are serialized
/// by one lock per log; reads and verification do not take it.
#[derive(Debug)]
pub struct AuditLog<S> {
    store: S,
    clock: Arc<dyn Clock>,
    tail: Mutex<Tail>,
}

impl<S: AuditStore> AuditLog<S> {
    /// Opens the log in `store`, continuing after its last entry. Does not
    /// verify; call [`AuditLog::verify`] for that.
    pub fn open(store: S, clock: Arc<dyn Clock>) -> Result<Self, AuditError> {
        let len = store.len()?;
        let tail = match len.checked_sub(1) {
            None => Tail {
                next_seq: 0,
                last_hash: AUDIT_GENESIS_HASH,
            },
            Some(last_position) => {
                let last = store
                    .read_range(last_position, 1)?
                    .pop()
                    .ok_or(AuditError::Gap {
                        expected_seq: last_position,
                    })?;
                Tail {
                    next_seq: last.seq.saturating_add(1),
                    last_hash: last.hash,
                }
            }
        };
        Ok(AuditLog {
            store,
            clock,
            tail: Mutex::new(tail),
        })
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Appends `record` with the current time and returns the entry written.
    pub fn append(&self, record: AuditRecord) -> Result<AuditEntry, AuditError> {
        if record.target.len() > AUDIT_TARGET_BYTES_MAX {
            return Err(AuditError::TargetTooLong {
                len: record.target.len(),
                max: AUDIT_TARGET_BYTES_MAX,
            });
        }
        let mut tail = self.tail.lock();
        let mut entry = AuditEntry {
            seq: tail.next_seq,
            at_unix_ms: self.clock.now_unix_ms(),
            actor: record.actor,
            action: record.action,
            target: record.target,
            outcome: record.outcome,
            prev_hash: tail.last_hash,
            hash: [0; 32],
        };
        entry.hash = entry.compute_hash();
        self.store.append(&entry)?;
        *tail = Tail {
            next_seq: entry.seq + 1,
            last_hash: entry.hash,
        };
        Ok(entry)
    }

    /// Up to `limit` (at most [`AUDIT_LIST_LIMIT_MAX`]) entries from
    /// `from_seq` on.
    pub fn list(&self, from_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, AuditError> {
        Ok(self
            .store
            .read_range(from_seq, limit.min(AUDIT_LIST_LIMIT_MAX))?)
    }

    /// The last entry written, if any.
    pub fn head(&self) -> Option<AuditHead> {
        let tail = *self.tail.lock();
        tail.next_seq.checked_sub(1).map(|seq| AuditHead {
            seq,
            hash: tail.last_hash,
        })
    }

    /// Walks the whole chain and reports the first problem: an entry whose
    /// hash does not match its contents ([`AuditError::Tampered`]), a missing
    /// or misplaced entry ([`AuditError::Gap`], [`AuditError::OutOfOrder`]),
    /// or an entry not linked to the one before ([`AuditError::BrokenChain`]).
    /// Entries dropped from the end since this log was opened are reported
    /// as a gap.
    pub fn verify(&self) -> Result<(), AuditError> {
        let tail = *self.tail.lock();
        let len = self.store.len()?;
        let mut expected_seq = 0u64;
        let mut prev_hash = AUDIT_GENESIS_HASH;
        while expected_seq < len {
            let page = self.store.read_range(expected_seq, AUDIT_VERIFY_PAGE_LEN)?;
            if page.is_empty() {
                return Err(AuditError::Gap { expected_seq });
            }
            for entry in &page {
                check_entry(entry, expected_seq, &prev_hash)?;
                prev_hash = entry.hash;
                expected_seq += 1;
            }
        }
        // Entries appended through this log since it was opened must all
        // still be there.
        if expected_seq < tail.next_seq {
            return Err(AuditError::Gap { expected_seq });
        }
        if expected_seq == tail.next_seq && prev_hash != tail.last_hash {
            return Err(AuditError::HeadMismatch);
        }
        Ok(())
    }

    /// [`AuditLog::verify`], then checks that the entry at `anchor.seq` still
    /// has the anchored hash (detects a log rewritten from scratch).
    pub fn verify_against(&self, anchor: &AuditHead) -> Result<(), AuditError> {
        self.verify()?;
        match self.store.read_range(anchor.seq, 1)?.first() {
            Some(entry) if entry.seq == anchor.seq && entry.hash == anchor.hash => Ok(()),
            _ => Err(AuditError::HeadMismatch),
        }
    }
}

fn check_entry(
    entry: &AuditEntry,
    expected_seq: u64,
    prev_hash: &[u8; 32],
) -> Result<(), AuditError> {
    if entry.compute_hash() != entry.hash {
        return Err(AuditError::Tampered { seq: entry.seq });
    }
    if entry.seq > expected_seq {
        return Err(AuditError::Gap { expected_seq });
    }
    if entry.seq < expected_seq {
        return Err(AuditError::OutOfOrder {
            expected_seq,
            found_seq: entry.seq,
        });
    }
    if entry.prev_hash != *prev_hash {
        return Err(AuditError::BrokenChain { seq: entry.seq });
    }
    Ok(())
}
