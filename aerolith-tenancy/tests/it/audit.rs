use std::sync::Arc;
use std::time::Duration;

use aerolith_core::ManualClock;
use aerolith_tenancy::{
    AuditAction, AuditEntry, AuditError, AuditLog, AuditOutcome, AuditRecord, AuditStore, KeyId,
    MemoryAuditStore, Principal, Role, TenantId, AUDIT_GENESIS_HASH, AUDIT_HASH_CONTEXT,
    AUDIT_LIST_LIMIT_MAX, AUDIT_TARGET_BYTES_MAX,
};

const START_MS: i64 = 1_700_000_000_000;

fn owner() -> Principal {
    Principal::Tenant {
        tenant: TenantId::new(3),
        role: Role::Owner,
        key_id: KeyId::from_u128(9),
    }
}

fn record(index: usize) -> AuditRecord {
    let actions = [
        AuditAction::KeyCreated,
        AuditAction::KeyRevoked,
        AuditAction::PlanChanged,
        AuditAction::TenantSuspended,
        AuditAction::RoleChanged,
    ];
    AuditRecord {
        actor: if index.is_multiple_of(3) {
            Principal::Operator
        } else {
            owner()
        },
        action: actions[index % actions.len()],
        target: format!("target-{index}"),
        outcome: if index % 4 == 3 {
            AuditOutcome::Denied
        } else {
            AuditOutcome::Succeeded
        },
    }
}

/// A log of `len` entries, one second apart, and its entries.
fn written_log(len: usize) -> Vec<AuditEntry> {
    let clock = ManualClock::new(START_MS);
    let log = AuditLog::open(MemoryAuditStore::new(), Arc::new(clock.clone())).expect("opens");
    for index in 0..len {
        log.append(record(index)).expect("appends");
        clock.advance(Duration::from_secs(1));
    }
    log.store().entries()
}

fn verify(entries: Vec<AuditEntry>) -> Result<(), AuditError> {
    let clock = Arc::new(ManualClock::new(START_MS));
    AuditLog::open(MemoryAuditStore::from_entries(entries), clock)
        .expect("opens")
        .verify()
}

#[test]
fn appended_entries_are_numbered_timed_and_chained() {
    let entries = written_log(5);
    assert_eq!(entries.len(), 5);
    let mut prev_hash = AUDIT_GENESIS_HASH;
    for (index, entry) in entries.iter().enumerate() {
        assert_eq!(entry.seq, index as u64);
        assert_eq!(entry.at_unix_ms, START_MS + 1_000 * index as i64);
        assert_eq!(entry.prev_hash, prev_hash);
        assert_eq!(entry.hash, entry.compute_hash());
        assert_eq!(entry.target, format!("target-{index}"));
        prev_hash = entry.hash;
    }
    assert_eq!(verify(entries).ok(), Some(()));
}

#[test]
fn empty_log_verifies() {
    assert!(verify(Vec::new()).is_ok());
}

#[test]
fn hash_follows_the_documented_canonical_encoding() {
    let entry = written_log(2).remove(1);
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&entry.seq.to_be_bytes());
    bytes.extend_from_slice(&entry.at_unix_ms.to_be_bytes());
    bytes.push(1);
    bytes.extend_from_slice(&3u64.to_be_bytes());
    bytes.push(Role::Owner.code());
    bytes.extend_from_slice(&9u128.to_be_bytes());
    bytes.extend_from_slice(&AuditAction::KeyRevoked.code().to_be_bytes());
    bytes.extend_from_slice(&(entry.target.len() as u32).to_be_bytes());
    bytes.extend_from_slice(entry.target.as_bytes());
    bytes.push(AuditOutcome::Succeeded.code());
    bytes.extend_from_slice(&entry.prev_hash);
    let expected = blake3::Hasher::new_derive_key(AUDIT_HASH_CONTEXT)
        .update(&bytes)
        .finalize();
    assert_eq!(entry.hash, *expected.as_bytes());
}

#[test]
fn altering_any_field_of_an_entry_is_reported_as_tampered_at_its_seq() {
    type Alteration = fn(&mut AuditEntry);
    let alterations: [(&str, Alteration); 7] = [
        ("time", |e| e.at_unix_ms += 1),
        ("actor", |e| e.actor = Principal::Operator),
        ("action", |e| e.action = AuditAction::TenantDeleted),
        ("target", |e| e.target.push('!')),
        ("outcome", |e| e.outcome = AuditOutcome::Failed),
        ("prev_hash", |e| e.prev_hash[0] ^= 1),
        ("hash", |e| e.hash[31] ^= 1),
    ];
    for (name, alter) in alterations {
        let mut entries = written_log(6);
        alter(&mut entries[4]);
        assert!(
            matches!(verify(entries), Err(AuditError::Tampered { seq: 4 })),
            "{name}"
        );
    }
}

#[test]
fn altering_seq_is_tampered_at_the_new_seq() {
    let mut entries = written_log(6);
    entries[2].seq = 7;
    assert!(matches!(
        verify(entries),
        Err(AuditError::Tampered { seq: 7 })
    ));
}

#[test]
fn first_of_several_tampered_entries_is_reported() {
    let mut entries = written_log(8);
    entries[5].target.push('x');
    entries[2].target.push('x');
    assert!(matches!(
        verify(entries),
        Err(AuditError::Tampered { seq: 2 })
    ));
}

#[test]
fn deleted_entry_is_reported_as_a_gap_at_its_seq() {
    let mut entries = written_log(6);
    entries.remove(3);
    assert!(matches!(
        verify(entries),
        Err(AuditError::Gap { expected_seq: 3 })
    ));
    let mut entries = written_log(6);
    entries.remove(0);
    assert!(matches!(
        verify(entries),
        Err(AuditError::Gap { expected_seq: 0 })
    ));
}

#[test]
fn reordered_entries_are_reported_where_the_order_breaks() {
    let mut entries = written_log(6);
    entries.swap(2, 3);
    assert!(matches!(
        verify(entries),
        Err(AuditError::Gap { expected_seq: 2 })
    ));
}

#[test]
fn duplicated_entry_is_reported_as_out_of_order() {
    let mut entries = written_log(6);
    let copy = entries[2].clone();
    entries.insert(3, copy);
    assert!(matches!(
        verify(entries),
        Err(AuditError::OutOfOrder {
            expected_seq: 3,
            found_seq: 2
        })
    ));
}

#[test]
fn swapped_hashes_are_reported_as_tampered_at_the_first_swapped_entry() {
    let mut entries = written_log(6);
    let (a, b) = (entries[1].hash, entries[4].hash);
    entries[1].hash = b;
    entries[4].hash = a;
    assert!(matches!(
        verify(entries),
        Err(AuditError::Tampered { seq: 1 })
    ));
}

#[test]
fn rewritten_entry_with_a_recomputed_hash_breaks_the_chain_at_the_next_entry() {
    let mut entries = written_log(6);
    entries[2].outcome = AuditOutcome::Failed;
    entries[2].hash = entries[2].compute_hash();
    assert!(matches!(
        verify(entries),
        Err(AuditError::BrokenChain { seq: 3 })
    ));
}

#[test]
fn reordered_entries_renumbered_and_rehashed_break_the_chain() {
    let mut entries = written_log(6);
    entries.swap(2, 3);
    for (index, entry) in entries.iter_mut().enumerate().skip(2).take(2) {
        entry.seq = index as u64;
        entry.hash = entry.compute_hash();
    }
    assert!(matches!(
        verify(entries),
        Err(AuditError::BrokenChain { seq: 2 })
    ));
}

#[test]
fn a_fully_rewritten_log_is_caught_by_an_anchor() {
    let clock = Arc::new(ManualClock::new(START_MS));
    let log = AuditLog::open(MemoryAuditStore::new(), clock.clone()).expect("opens");
    for index in 0..4 {
        log.append(record(index)).expect("appends");
    }
    let anchor = log.head().expect("non-empty");
    assert_eq!(anchor.seq, 3);
    assert!(log.verify_against(&anchor).is_ok());

    // Rewrite entry 1 and re-chain everything after it: verify alone cannot
    // tell, the anchor can.
    let mut entries = log.store().entries();
    entries[1].target = "forged".to_owned();
    let mut prev_hash = entries[0].hash;
    for entry in entries.iter_mut().skip(1) {
        entry.prev_hash = prev_hash;
        entry.hash = entry.compute_hash();
        prev_hash = entry.hash;
    }
    let forged = AuditLog::open(MemoryAuditStore::from_entries(entries), clock).expect("opens");
    assert!(forged.verify().is_ok());
    assert!(matches!(
        forged.verify_against(&anchor),
        Err(AuditError::HeadMismatch)
    ));
}

/// A store that can lose its tail behind the log's back.
#[derive(Default)]
struct TruncatingStore {
    inner: MemoryAuditStore,
    visible: std::sync::atomic::AtomicU64,
}

impl AuditStore for TruncatingStore {
    fn append(&self, entry: &AuditEntry) -> Result<(), aerolith_tenancy::StoreError> {
        self.visible
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.append(entry)
    }

    fn read_range(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, aerolith_tenancy::StoreError> {
        let visible = self.visible.load(std::sync::atomic::Ordering::SeqCst);
        let available = usize::try_from(visible.saturating_sub(from_position)).unwrap_or(0);
        self.inner.read_range(from_position, limit.min(available))
    }

    fn len(&self) -> Result<u64, aerolith_tenancy::StoreError> {
        Ok(self.visible.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[test]
fn entries_lost_from_the_end_while_open_are_reported_as_a_gap() {
    let clock = Arc::new(ManualClock::new(START_MS));
    let log = AuditLog::open(TruncatingStore::default(), clock).expect("opens");
    for index in 0..5 {
        log.append(record(index)).expect("appends");
    }
    log.store()
        .visible
        .store(3, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(
        log.verify(),
        Err(AuditError::Gap { expected_seq: 3 })
    ));
}

#[test]
fn reopened_log_continues_the_chain() {
    let clock = Arc::new(ManualClock::new(START_MS));
    let entries = written_log(3);
    let log =
        AuditLog::open(MemoryAuditStore::from_entries(entries.clone()), clock).expect("opens");
    let next = log.append(record(3)).expect("appends");
    assert_eq!(next.seq, 3);
    assert_eq!(next.prev_hash, entries[2].hash);
    assert!(log.verify().is_ok());
}

#[test]
fn list_pages_from_a_seq_and_caps_the_limit() {
    let clock = Arc::new(ManualClock::new(START_MS));
    let log = AuditLog::open(MemoryAuditStore::new(), clock).expect("opens");
    for index in 0..(AUDIT_LIST_LIMIT_MAX + 5) {
        log.append(record(index)).expect("appends");
    }
    let page = log.list(3, 2).expect("lists");
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(
        log.list(0, usize::MAX).expect("lists").len(),
        AUDIT_LIST_LIMIT_MAX
    );
    assert!(log.list(5_000, 10).expect("lists").is_empty());
    assert!(log.verify().is_ok());
}

#[test]
fn target_longer_than_the_maximum_is_refused() {
    let clock = Arc::new(ManualClock::new(START_MS));
    let log = AuditLog::open(MemoryAuditStore::new(), clock).expect("opens");
    let at_limit = AuditRecord {
        target: "x".repeat(AUDIT_TARGET_BYTES_MAX),
        ..record(0)
    };
    assert!(log.append(at_limit).is_ok());
    let past = AuditRecord {
        target: "x".repeat(AUDIT_TARGET_BYTES_MAX + 1),
        ..record(0)
    };
    assert!(matches!(
        log.append(past),
        Err(AuditError::TargetTooLong {
            len: 1025,
            max: 1024
        })
    ));
    assert_eq!(log.store().entries().len(), 1);
}

#[test]
fn concurrent_appends_form_one_valid_chain() {
    let clock = Arc::new(ManualClock::new(START_MS));
    let log = AuditLog::open(MemoryAuditStore::new(), clock).expect("opens");
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let log = &log;
            scope.spawn(move || {
                for index in 0..50 {
                    log.append(record(thread * 50 + index)).expect("appends");
                }
            });
        }
    });
    assert_eq!(log.store().entries().len(), 400);
    assert!(log.verify().is_ok());
}

#[test]
fn entries_round_trip_through_json() {
    let entries = written_log(3);
    let json = serde_json::to_string(&entries).expect("serializes");
    let back: Vec<AuditEntry> = serde_json::from_str(&json).expect("parses");
    assert_eq!(back, entries);
    assert!(verify(back).is_ok());
}
