//! The state cache: the few records every request reads (a token, the policy's digest, an
//! environment), kept in memory by a long-running server and kept exact by a generation
//! counter and a count of this process's writes.
//!
//! Invariants:
//! - An entry is served only while the generation has not moved, and its record has not
//!   been written by this process, since *before* the store read that filled it; a read
//!   racing a write therefore caches nothing that outlives it.
//! - Each append this process makes marks the records it writes as written, before the
//!   append returns to its caller (whatever its outcome): a request in this process never
//!   reads a record older than a write this process has acknowledged. The other records
//!   stay served: a promotion's append does not make every request read the policy again.
//! - Writes from other processes (a CLI on the same data directory, a second server on the
//!   same PostgreSQL) are noticed by the ledger's tail (`App::follow_ledger`): it reads the
//!   log's size every [`FOLLOW_EVERY`] and moves the generation when the log grew by
//!   anything but this process's own appends ([`StateCache::grew`]). Every state change is
//!   appended together with an event, so a changed state always changes the size; such a
//!   write is seen within one interval.
//! - Nothing is served unless the tail looked successfully within the last two intervals:
//!   if it stops or its reads fail, every read goes to the store again.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::tail::FOLLOW_EVERY;

/// Entries kept at most per kind (a kind's entries are dropped when it fills, so random
/// token ids cannot grow it without bound); so are the marks of records written.
const KEPT_PER_KIND: usize = 10_000;

/// Own appends remembered for the tail at most (it forgets them as it passes them).
const KEPT_APPENDS: usize = 100_000;

/// When a read was taken: the generation, and how many writes this process had marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    generation: u64,
    writes: u64,
}

type Entry = (Stamp, Arc<dyn Any + Send + Sync>);

/// Keyed by kinds and record keys, hashed with foldhash rather than SipHash: every hot read
/// looks up twice. Its per-map random seed still spreads keys an attacker chooses (token
/// ids), and [`KEPT_PER_KIND`] bounds a kind's map whatever they do.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Default)]
struct Kept {
    values: Map<&'static str, Map<String, Entry>>,
    /// Each record this process wrote: the count of writes marked when it was last marked.
    written: Map<String, Map<String, u64>>,
}

pub(crate) struct StateCache {
    generation: AtomicU64,
    /// Records this process marked as written, ever (only grows).
    writes: AtomicU64,
    /// When the watcher last read the size successfully, in nanoseconds since `epoch`
    /// (0: never).
    last_look: AtomicU64,
    epoch: Instant,
    kept: Mutex<Kept>,
    /// The entries this process appended that the tail has not passed yet: first index →
    /// end.
    own: Mutex<BTreeMap<u64, u64>>,
}

impl StateCache {
    pub(crate) fn new() -> StateCache {
        StateCache {
            generation: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            last_look: AtomicU64::new(0),
            epoch: Instant::now(),
            kept: Mutex::new(Kept::default()),
            own: Mutex::new(BTreeMap::new()),
        }
    }

    /// The stamp to take before a store read, or `None` when the cache may not be used
    /// (no watcher, or it has not looked lately).
    pub(crate) fn stamp(&self) -> Option<Stamp> {
        let last = self.last_look.load(Ordering::Acquire);
        if last == 0 {
            return None;
        }
        let age = self.elapsed_nanos().saturating_sub(last);
        if u128::from(age) > 2 * FOLLOW_EVERY.as_nanos() {
            return None;
        }
        Some(Stamp {
            generation: self.generation.load(Ordering::Acquire),
            writes: self.writes.load(Ordering::Acquire),
        })
    }

    /// Something may have changed: every entry is stale from now on.
    pub(crate) fn moved(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// This process appended writes to `records` (kind, key), committed or perhaps not:
    /// each is stale from now on. `appended`: the entries the append added, if it did.
    pub(crate) fn wrote<'a>(
        &self,
        records: impl Iterator<Item = (&'a str, &'a str)>,
        appended: Option<(u64, u64)>,
    ) {
        let Ok(mut kept) = self.kept.lock() else {
            self.moved();
            return;
        };
        let kept = &mut *kept;
        for (kind, key) in records {
            let count = self.writes.fetch_add(1, Ordering::AcqRel) + 1;
            if let Some(values) = kept.values.get_mut(kind) {
                values.remove(key);
            }
            let marks = kept.written.entry(kind.to_owned()).or_default();
            if marks.len() >= KEPT_PER_KIND && !marks.contains_key(key) {
                // Forgetting marks would serve what they cover: everything goes stale.
                marks.clear();
                self.moved();
            }
            marks.insert(key.to_owned(), count);
        }
        if let (Some((first, count)), Ok(mut own)) = (appended, self.own.lock()) {
            if count > 0 {
                if own.len() >= KEPT_APPENDS {
                    // The tail is not passing them: it will read the growth as foreign.
                    own.clear();
                }
                own.insert(first, first + count);
            }
        }
    }

    /// The tail saw the log grow from `from` to `to` entries: whether anything but this
    /// process's own appends (already marked in [`Self::wrote`]) wrote them. The own
    /// appends it passes are forgotten.
    pub(crate) fn grew(&self, from: u64, to: u64) -> bool {
        let Ok(mut own) = self.own.lock() else {
            return true;
        };
        let mut next = from;
        let mut passed = Vec::new();
        for (&first, &end) in own.range(..to) {
            passed.push(first);
            if first == next {
                next = end;
            }
        }
        for first in passed {
            own.remove(&first);
        }
        next != to
    }

    /// The value cached for `kind`/`key`, if it was read at a stamp still current for it.
    pub(crate) fn get<T: Send + Sync + 'static>(
        &self,
        now: Stamp,
        kind: &str,
        key: &str,
    ) -> Option<Arc<T>> {
        let kept = self.kept.lock().ok()?;
        let (stamp, value) = kept.values.get(kind)?.get(key)?;
        if stamp.generation != now.generation {
            return None;
        }
        let written = kept.written.get(kind).and_then(|m| m.get(key));
        if written.is_some_and(|&w| w > stamp.writes) {
            return None;
        }
        value.clone().downcast::<T>().ok()
    }

    /// Keeps `value`, read from the store after `stamp` was taken.
    pub(crate) fn put<T: Send + Sync + 'static>(
        &self,
        stamp: Stamp,
        kind: &'static str,
        key: &str,
        value: Arc<T>,
    ) {
        if let Ok(mut kept) = self.kept.lock() {
            let of_kind = kept.values.entry(kind).or_default();
            if of_kind.len() >= KEPT_PER_KIND && !of_kind.contains_key(key) {
                of_kind.clear();
            }
            of_kind.insert(key.to_owned(), (stamp, value));
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
        cache.looked();
        cache
    }

    #[test]
    fn nothing_is_served_before_the_watcher_has_looked() {
        let cache = StateCache::new();
        assert_eq!(cache.stamp(), None);
    }

    #[test]
    fn an_entry_is_served_only_while_nothing_moved_the_generation() {
        let cache = watched();
        let s = cache.stamp().unwrap();
        cache.put(s, "token", "t1", Arc::new(7u32));
        assert_eq!(cache.get::<u32>(s, "token", "t1").as_deref(), Some(&7));
        assert_eq!(cache.get::<u32>(s, "token", "t2"), None);
        assert_eq!(cache.get::<String>(s, "token", "t1"), None, "wrong type");
        cache.moved();
        let later = cache.stamp().unwrap();
        assert_ne!(later, s);
        assert_eq!(cache.get::<u32>(later, "token", "t1"), None);
    }

    #[test]
    fn a_read_that_raced_a_write_is_never_served() {
        let cache = watched();
        let before = cache.stamp().unwrap();
        // A write commits and moves the generation while the read is in flight…
        cache.moved();
        // …and the read then keeps the old value under the stamp it started at.
        cache.put(before, "environment", "production", Arc::new("old"));
        let now = cache.stamp().unwrap();
        assert_eq!(cache.get::<&str>(now, "environment", "production"), None);
    }

    #[test]
    fn an_own_write_makes_only_the_records_it_wrote_stale() {
        let cache = watched();
        let s = cache.stamp().unwrap();
        cache.put(s, "environment", "production", Arc::new("old"));
        cache.put(s, "policy_digest", "current", Arc::new("p1"));
        cache.wrote([("environment", "production")].into_iter(), Some((0, 2)));
        let now = cache.stamp().unwrap();
        assert_eq!(cache.get::<&str>(now, "environment", "production"), None);
        assert_eq!(
            cache
                .get::<&str>(now, "policy_digest", "current")
                .as_deref(),
            Some(&"p1"),
            "a record the append did not write stays served"
        );
        // Read again after the write: served.
        cache.put(now, "environment", "production", Arc::new("new"));
        assert_eq!(
            cache
                .get::<&str>(now, "environment", "production")
                .as_deref(),
            Some(&"new")
        );
    }

    #[test]
    fn a_read_that_raced_an_own_write_of_its_record_is_never_served() {
        let cache = watched();
        let before = cache.stamp().unwrap();
        cache.wrote([("environment", "production")].into_iter(), None);
        // The read that started before the write keeps what it read, under its stamp…
        cache.put(before, "environment", "production", Arc::new("old"));
        // …which is never served, while a read of another record from then is.
        cache.put(before, "environment", "staging", Arc::new("s"));
        let now = cache.stamp().unwrap();
        assert_eq!(cache.get::<&str>(now, "environment", "production"), None);
        assert_eq!(
            cache.get::<&str>(now, "environment", "staging").as_deref(),
            Some(&"s")
        );
    }

    #[test]
    fn the_tail_tells_own_appends_from_anyone_elses() {
        let cache = watched();
        cache.wrote(std::iter::empty(), Some((10, 2)));
        cache.wrote(std::iter::empty(), Some((12, 1)));
        assert!(!cache.grew(10, 13), "10..13 is all this process's");
        // Another process's entry between two of ours.
        cache.wrote(std::iter::empty(), Some((13, 1)));
        cache.wrote(std::iter::empty(), Some((15, 1)));
        assert!(cache.grew(13, 16), "14 is someone else's");
        // Passed appends are forgotten: the same growth again is not ours.
        assert!(cache.grew(10, 13));
        // An append of unknown outcome adds no range: its growth reads as foreign.
        cache.wrote([("promotion", "p1")].into_iter(), None);
        assert!(cache.grew(16, 17));
    }

    #[test]
    fn a_silent_watcher_turns_the_cache_off() {
        let cache = StateCache::new();
        // Looked three intervals ago.
        let long_ago = cache.elapsed_nanos() + 1;
        cache.last_look.store(long_ago, Ordering::Release);
        std::thread::sleep(3 * FOLLOW_EVERY);
        assert_eq!(cache.stamp(), None);
    }

    #[test]
    fn a_kind_never_holds_more_than_its_bound() {
        let cache = watched();
        let s = cache.stamp().unwrap();
        for i in 0..(KEPT_PER_KIND + 5) {
            cache.put(s, "token", &format!("t{i}"), Arc::new(i));
            cache.wrote([("token", format!("w{i}").as_str())].into_iter(), None);
        }
        let kept = cache.kept.lock().unwrap();
        assert!(kept.values["token"].len() <= KEPT_PER_KIND);
        assert!(kept.written["token"].len() <= KEPT_PER_KIND);
    }

    #[test]
    fn forgetting_the_marks_of_writes_makes_everything_stale() {
        let cache = watched();
        let s = cache.stamp().unwrap();
        cache.put(s, "environment", "production", Arc::new("old"));
        for i in 0..=KEPT_PER_KIND {
            cache.wrote([("token", format!("w{i}").as_str())].into_iter(), None);
        }
        let now = cache.stamp().unwrap();
        assert_eq!(cache.get::<&str>(now, "environment", "production"), None);
    }
}
