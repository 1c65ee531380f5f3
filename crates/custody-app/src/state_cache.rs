//! The state cache: the few records every request reads (a token, the policy's digest, an
//! environment), kept in memory by a long-running server and kept exact by a generation
//! counter.
//!
//! Invariants:
//! - An entry is served only while the generation has not moved since *before* the store
//!   read that filled it; a read racing a write therefore caches nothing that outlives it.
//! - The generation moves after every append this process makes, before the append returns
//!   to its caller: a request in this process never reads a record older than a write this
//!   process has acknowledged.
//! - Writes from other processes (a CLI on the same data directory, a second server on the
//!   same PostgreSQL) are noticed by the ledger's tail (`App::follow_ledger`): it reads the
//!   log's size every [`FOLLOW_EVERY`] and moves the generation when the size changed. Every
//!   state change is appended together with an event, so a changed state always changes the
//!   size; such a write is seen within one interval.
//! - Nothing is served unless the tail looked successfully within the last two intervals:
//!   if it stops or its reads fail, every read goes to the store again.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::tail::FOLLOW_EVERY;

/// Entries kept at most per kind (a kind's entries are dropped when it fills, so random
/// token ids cannot grow it without bound).
const KEPT_PER_KIND: usize = 10_000;

type Entry = (u64, Arc<dyn Any + Send + Sync>);

/// Keyed by kinds and record keys, hashed with foldhash rather than SipHash: every hot read
/// looks up twice. Its per-map random seed still spreads keys an attacker chooses (token
/// ids), and [`KEPT_PER_KIND`] bounds a kind's map whatever they do.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

pub(crate) struct StateCache {
    generation: AtomicU64,
    /// When the watcher last read the size successfully, in nanoseconds since `epoch`
    /// (0: never).
    last_look: AtomicU64,
    epoch: Instant,
    entries: Mutex<Map<&'static str, Map<String, Entry>>>,
}

impl StateCache {
    pub(crate) fn new() -> StateCache {
        StateCache {
            generation: AtomicU64::new(0),
            last_look: AtomicU64::new(0),
            epoch: Instant::now(),
            entries: Mutex::new(Map::default()),
        }
    }

    /// The generation to stamp a read with, or `None` when the cache may not be used
    /// (no watcher, or it has not looked lately).
    pub(crate) fn generation(&self) -> Option<u64> {
        let last = self.last_look.load(Ordering::Acquire);
        if last == 0 {
            return None;
        }
        let age = self.elapsed_nanos().saturating_sub(last);
        if u128::from(age) > 2 * FOLLOW_EVERY.as_nanos() {
            return None;
        }
        Some(self.generation.load(Ordering::Acquire))
    }

    /// Something may have changed: every entry is stale from now on.
    pub(crate) fn moved(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The value cached for `kind`/`key` at `generation`.
    pub(crate) fn get<T: Send + Sync + 'static>(
        &self,
        generation: u64,
        kind: &'static str,
        key: &str,
    ) -> Option<Arc<T>> {
        let entries = self.entries.lock().ok()?;
        let (stamp, value) = entries.get(kind)?.get(key)?;
        if *stamp != generation {
            return None;
        }
        value.clone().downcast::<T>().ok()
    }

    /// Keeps `value`, read from the store after `generation` was taken.
    pub(crate) fn put<T: Send + Sync + 'static>(
        &self,
        generation: u64,
        kind: &'static str,
        key: &str,
        value: Arc<T>,
    ) {
        if let Ok(mut entries) = self.entries.lock() {
            let of_kind = entries.entry(kind).or_default();
            if of_kind.len() >= KEPT_PER_KIND {
                of_kind.clear();
            }
            of_kind.insert(key.to_owned(), (generation, value));
        }
    }

    /// The tail read the log's size just now: entries may be served again.
    pub(crate) fn looked(&self) {
        self.last_look
            .store(self.elapsed_nanos().max(1), Ordering::Release);
    }

    /// The tail could not read the log: serve nothing until it can again.
    pub(crate) fn lost(&self) {
        self.last_look.store(0, Ordering::Release);
        self.moved();
    }

    fn elapsed_nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache whose watcher has just looked.
    fn watched() -> StateCache {
        let cache = StateCache::new();
        cache
            .last_look
            .store(cache.elapsed_nanos().max(1), Ordering::Release);
        cache
    }

    #[test]
    fn nothing_is_served_before_the_watcher_has_looked() {
        let cache = StateCache::new();
        assert_eq!(cache.generation(), None);
    }

    #[test]
    fn an_entry_is_served_only_at_the_generation_it_was_read_at() {
        let cache = watched();
        let g = cache.generation().unwrap();
        cache.put(g, "token", "t1", Arc::new(7u32));
        assert_eq!(cache.get::<u32>(g, "token", "t1").as_deref(), Some(&7));
        assert_eq!(cache.get::<u32>(g, "token", "t2"), None);
        assert_eq!(cache.get::<String>(g, "token", "t1"), None, "wrong type");
        cache.moved();
        let later = cache.generation().unwrap();
        assert_ne!(later, g);
        assert_eq!(cache.get::<u32>(later, "token", "t1"), None);
    }

    #[test]
    fn a_read_that_raced_a_write_is_never_served() {
        let cache = watched();
        let before = cache.generation().unwrap();
        // A write commits and moves the generation while the read is in flight…
        cache.moved();
        // …and the read then keeps the old value under the generation it started at.
        cache.put(before, "environment", "production", Arc::new("old"));
        let now = cache.generation().unwrap();
        assert_eq!(cache.get::<&str>(now, "environment", "production"), None);
    }

    #[test]
    fn a_silent_watcher_turns_the_cache_off() {
        let cache = StateCache::new();
        // Looked three intervals ago.
        let long_ago = cache.elapsed_nanos() + 1;
        cache.last_look.store(long_ago, Ordering::Release);
        std::thread::sleep(3 * FOLLOW_EVERY);
        assert_eq!(cache.generation(), None);
    }

    #[test]
    fn a_kind_never_holds_more_than_its_bound() {
        let cache = StateCache::new();
        for i in 0..(KEPT_PER_KIND + 5) {
            cache.put(0, "token", &format!("t{i}"), Arc::new(i));
        }
        let entries = cache.entries.lock().unwrap();
        assert!(entries["token"].len() <= KEPT_PER_KIND);
    }
}
