//! A bounded cache of verified document payloads, keyed by where their
//! record lives: (segment id, byte offset of the frame). A payload enters
//! only after its record passed the checksum (and decryption) and parsed as
//! JSON, so a hit serves bytes that were verified once; a miss goes to the
//! segment and verifies as before, so damaged bytes on disk are still an
//! error and never a document.
//!
//! No invalidation is needed: a record is never rewritten in place, and
//! segment ids are never reused (compaction writes new segments under new
//! ids and deletes the old files), so a key always names the same bytes.
//! Compaction calls [`RecordCache::forget_segment`] only to free the memory
//! of segments it deleted.
//!
//! The cache is split into shards, each a mutex around a hash map and a
//! CLOCK ring (second chance): a hit marks its entry, eviction passes over
//! marked entries once before dropping them. Each shard holds at most its
//! share of the byte bound, counting payload bytes plus a fixed overhead per
//! entry.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::state::Loc;

/// Shards of the cache: enough that concurrent readers rarely share a lock.
const SHARDS: usize = 16;
/// Bytes charged per entry on top of its payload (map slot, ring slot, `Arc`
/// header), so that a cache of tiny documents still respects the bound.
const ENTRY_OVERHEAD_BYTES: usize = 64;

/// Where a record lives, as the cache keys it: (segment, frame offset).
type Key = (u64, u64);

struct Entry {
    /// Frame length of the record, checked on a hit as a guard.
    frame_len: u32,
    /// [`DocKey::owner_hash`](crate::engine::DocKey::owner_hash) of the
    /// document the payload was verified as; a hit must name the same one.
    owner: u64,
    payload: Arc<[u8]>,
    /// Set on a hit; eviction clears it once instead of evicting.
    referenced: bool,
}

/// Keys are two integers: foldhash (seeded per process, so positions cannot
/// be chosen to collide) hashes them several times faster than the
/// standard library's SipHash, which was a tenth of a cached point read.
type Hasher = foldhash::fast::RandomState;

#[derive(Default)]
struct Shard {
    entries: HashMap<Key, Entry, Hasher>,
    /// Keys in CLOCK order; every key in `entries` is here exactly once.
    ring: VecDeque<Key>,
    bytes: usize,
}

/// The cache of one open database. `capacity_bytes == 0` turns it off.
pub(crate) struct RecordCache {
    shards: Box<[Mutex<Shard>]>,
    shard_capacity_bytes: usize,
}

fn charge(payload_len: usize) -> usize {
    payload_len + ENTRY_OVERHEAD_BYTES
}

impl RecordCache {
    /// A cache holding at most `capacity_bytes` (payloads plus overhead).
    pub(crate) fn new(capacity_bytes: usize) -> Self {
        RecordCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_capacity_bytes: capacity_bytes / SHARDS,
        }
    }

    fn shard(&self, key: Key) -> &Mutex<Shard> {
        // Frames are at least 24 bytes apart; mix the segment in so that
        // records at equal offsets of different segments spread too.
        let mixed = (key.1 >> 5) ^ key.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        &self.shards[(mixed % SHARDS as u64) as usize]
    }

    fn enabled(&self) -> bool {
        self.shard_capacity_bytes > 0
    }

    /// The verified payload of the record at `loc`, if cached as the
    /// document whose owner hash is `owner`.
    pub(crate) fn get(&self, loc: Loc, owner: u64) -> Option<Arc<[u8]>> {
        if !self.enabled() {
            return None;
        }
        let key = (loc.segment, loc.offset);
        let mut shard = self.shard(key).lock();
        let entry = shard.entries.get_mut(&key)?;
        if entry.frame_len != loc.len || entry.owner != owner {
            // Cannot happen while keys are never reused and locations are
            // right; a miss is safe: the read verifies the record itself.
            return None;
        }
        entry.referenced = true;
        Some(Arc::clone(&entry.payload))
    }

    /// Remembers the payload of the record at `loc`. The caller must have
    /// verified it (checksum, decryption, JSON) first.
    pub(crate) fn insert_verified(&self, loc: Loc, owner: u64, payload: Arc<[u8]>) {
        let cost = charge(payload.len());
        if !self.enabled() || cost > self.shard_capacity_bytes {
            return;
        }
        let key = (loc.segment, loc.offset);
        let mut shard = self.shard(key).lock();
        if shard.entries.contains_key(&key) {
            return;
        }
        // Each pass either evicts an entry or clears one mark, and a cleared
        // entry is evicted on its next turn: at most two turns of the ring.
        let mut turns_left = 2 * shard.ring.len();
        while shard.bytes + cost > self.shard_capacity_bytes && turns_left > 0 {
            turns_left -= 1;
            let Some(victim) = shard.ring.pop_front() else {
                break;
            };
            let Some(entry) = shard.entries.get_mut(&victim) else {
                continue;
            };
            if entry.referenced {
                entry.referenced = false;
                shard.ring.push_back(victim);
            } else if let Some(gone) = shard.entries.remove(&victim) {
                shard.bytes -= charge(gone.payload.len());
            }
        }
        if shard.bytes + cost > self.shard_capacity_bytes {
            return;
        }
        shard.bytes += cost;
        shard.ring.push_back(key);
        shard.entries.insert(
            key,
            Entry {
                frame_len: loc.len,
                owner,
                payload,
                referenced: false,
            },
        );
    }

    /// Drops every entry of `segment` (deleted by compaction). Only frees
    /// memory: the id is never used again, so its entries could never hit.
    pub(crate) fn forget_segment(&self, segment: u64) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            let Shard {
                entries,
                ring,
                bytes,
            } = &mut *shard;
            entries.retain(|key, entry| {
                let keep = key.0 != segment;
                if !keep {
                    *bytes -= charge(entry.payload.len());
                }
                keep
            });
            ring.retain(|key| key.0 != segment);
        }
    }

    /// Bytes charged to the cache now (payloads plus overhead).
    #[cfg(test)]
    fn charged_bytes(&self) -> usize {
        self.shards.iter().map(|s| s.lock().bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(segment: u64, offset: u64) -> Loc {
        Loc {
            segment,
            offset,
            len: 100,
        }
    }

    fn payload(byte: u8, len: usize) -> Arc<[u8]> {
        vec![byte; len].into()
    }

    /// The owner hash every test entry is cached under.
    const OWNER: u64 = 0x5eed;

    #[test]
    fn a_hit_must_name_the_document_the_payload_was_verified_as() {
        let cache = RecordCache::new(1 << 20);
        cache.insert_verified(loc(1, 64), OWNER, payload(7, 10));
        assert!(cache.get(loc(1, 64), OWNER + 1).is_none());
        assert!(cache.get(loc(1, 64), OWNER).is_some());
    }

    #[test]
    fn a_cached_payload_is_returned_for_its_location_only() {
        let cache = RecordCache::new(1 << 20);
        cache.insert_verified(loc(1, 64), OWNER, payload(7, 10));
        assert_eq!(
            cache.get(loc(1, 64), OWNER).as_deref(),
            Some(&[7u8; 10][..])
        );
        assert!(cache.get(loc(2, 64), OWNER).is_none());
        assert!(cache.get(loc(1, 96), OWNER).is_none());
        let other_len = Loc {
            len: 99,
            ..loc(1, 64)
        };
        assert!(cache.get(other_len, OWNER).is_none());
    }

    #[test]
    fn the_byte_bound_holds_under_many_inserts() {
        let capacity_bytes = 64 * 1024;
        let cache = RecordCache::new(capacity_bytes);
        for i in 0..10_000u64 {
            cache.insert_verified(loc(1, i * 32), OWNER, payload(1, 500));
            assert!(cache.charged_bytes() <= capacity_bytes);
        }
        assert!(
            cache.charged_bytes() > capacity_bytes / 2,
            "the cache is used"
        );
    }

    #[test]
    fn recently_read_entries_survive_eviction() {
        // One shard's worth of traffic: every key maps by offset and segment.
        let cache = RecordCache::new(SHARDS * 8 * charge(100));
        let hot = loc(1, 0);
        cache.insert_verified(hot, OWNER, payload(9, 100));
        for i in 1..1_000u64 {
            assert!(cache.get(hot, OWNER).is_some(), "hot entry evicted at {i}");
            cache.insert_verified(loc(1, i * 32), OWNER, payload(1, 100));
        }
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let cache = RecordCache::new(0);
        cache.insert_verified(loc(1, 0), OWNER, payload(1, 1));
        assert!(cache.get(loc(1, 0), OWNER).is_none());
    }

    #[test]
    fn forgetting_a_segment_frees_its_entries_only() {
        let cache = RecordCache::new(1 << 20);
        for i in 0..100u64 {
            cache.insert_verified(loc(1, i * 32), OWNER, payload(1, 10));
            cache.insert_verified(loc(2, i * 32), OWNER, payload(2, 10));
        }
        let before = cache.charged_bytes();
        cache.forget_segment(1);
        assert_eq!(cache.charged_bytes(), before / 2);
        assert!(cache.get(loc(1, 0), OWNER).is_none());
        assert!(cache.get(loc(2, 0), OWNER).is_some());
    }
}
