//! Checking the state against the ledger: the whole comparison, and the live guard the
//! hot paths read through.
//!
//! Invariants:
//! - [`App::check_state`] folds the ledger up to the size it read first, then compares every
//!   checked record: a record written after that size (it names a later entry) is skipped,
//!   never reported, so the check races no writer; anything else that differs is reported,
//!   naming the record, the field and what the ledger says.
//! - Once a server installs the projection ([`App::guard_state`]), every read of a checked
//!   record on a decision's path is compared with it before use. A record newer than the
//!   projection makes it catch up first; a record that still differs is read again from the
//!   store (never the cache), and only a difference that is still there with the row
//!   unchanged is an integrity failure: the read fails ([`crate::Fault::Integrity`]), the
//!   difference is kept for the server to alert on, and nothing acts on the row.
//! - Without a guard (the CLI, which holds the log key and reads its own database), reads
//!   are not compared; `custody log check` runs the whole comparison.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use custody_store::{MAX_ENTRIES_PER_READ, Store};
use serde::de::DeserializeOwned;

use super::Projection;
use super::compare::PolicyDigest;
use crate::app::{App, Versioned};
use crate::identity::TokenRecord;
use crate::records::{CertificationRecord, EnvironmentRecord, PolicyRecord, ReleaseRecord, kind};
use crate::{AppError, AppResult};

/// A record kind the ledger vouches for: what it expects of a record, and how a stored one
/// differs.
pub(crate) trait Projected: DeserializeOwned + Send + Sync + 'static {
    /// The entry that last set `kind/key`, if the ledger says it exists.
    fn expected(p: &Projection, kind: &str, key: &str) -> Option<u64>;
    /// How this stored value of `kind/key` differs from what the ledger says (one line per
    /// field; empty when they agree).
    fn differences(&self, p: &Projection, kind: &str, key: &str) -> Vec<String>;
}

/// A state record that does not hold what the ledger says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateDifference {
    /// The record, `kind/key` (e.g. `token/tok1a2b`), or `ledger entry N` for a leaf that
    /// could not be read.
    pub record: String,
    /// What differs, field by field.
    pub what: String,
}

impl fmt::Display for StateDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "state {} does not match the ledger: {}",
            self.record, self.what
        )
    }
}

/// The outcome of comparing the state with the ledger.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateCheck {
    /// Ledger entries folded.
    pub entries: u64,
    /// State records compared.
    pub records: u64,
    /// Every record that differs.
    pub differences: Vec<StateDifference>,
}

/// How one record compares.
pub(crate) enum Check {
    Agrees,
    /// It names an entry the projection has not folded yet.
    Behind,
    Differs(String),
}

/// Compares one record (`None`: absent) with the projection.
pub(crate) fn check<T: Projected>(
    p: &Projection,
    kind: &str,
    key: &str,
    record: Option<(&T, u64)>,
) -> Check {
    match (record, T::expected(p, kind, key)) {
        (None, None) => Check::Agrees,
        (None, Some(i)) => Check::Differs(format!(
            "it is missing, but ledger entry {i} says it exists"
        )),
        (Some((_, at)), _) if at >= p.next => Check::Behind,
        (Some((_, at)), None) => Check::Differs(format!(
            "it says ledger entry {at} wrote it, but no ledger entry sets it"
        )),
        (Some((value, at)), Some(i)) => {
            let mut lines = value.differences(p, kind, key);
            // The row names the first entry of the append that wrote it, which holds the
            // event that set it: never after that event.
            if at > i {
                lines.push(format!(
                    "it says ledger entry {at} wrote it, but the ledger last set it at entry {i}"
                ));
            }
            if lines.is_empty() {
                Check::Agrees
            } else {
                Check::Differs(format!("{} (ledger entry {i})", lines.join("; ")))
            }
        }
    }
}

/// Differences found on the hot paths, kept at most (for the server's alerts).
const FOUND_KEPT: usize = 1_000;

/// The live projection a server reads through.
pub(crate) struct Guard {
    /// `None`: not guarding (nothing installed).
    live: RwLock<Option<Projection>>,
    /// One catch-up at a time.
    catching_up: tokio::sync::Mutex<()>,
    /// Differences found on the hot paths and not yet taken.
    found: Mutex<Vec<StateDifference>>,
}

impl Guard {
    pub(crate) fn new() -> Guard {
        Guard {
            live: RwLock::new(None),
            catching_up: tokio::sync::Mutex::new(()),
            found: Mutex::new(Vec::new()),
        }
    }

    /// `None` when not guarding; else how `record` compares.
    fn check<T: Projected>(
        &self,
        kind: &str,
        key: &str,
        record: Option<&Versioned<T>>,
    ) -> Option<Check> {
        let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
        let p = live.as_ref()?;
        Some(check(p, kind, key, record.map(|r| (&r.value, r.log_index))))
    }

    fn agrees<T: Projected>(&self, kind: &str, key: &str, record: Option<&Versioned<T>>) -> bool {
        matches!(self.check(kind, key, record), None | Some(Check::Agrees))
    }

    fn next(&self) -> Option<u64> {
        let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
        live.as_ref().map(|p| p.next)
    }

    fn keep(&self, difference: StateDifference) {
        let mut found = self.found.lock().unwrap_or_else(PoisonError::into_inner);
        if found.len() < FOUND_KEPT && !found.contains(&difference) {
            found.push(difference);
        }
    }
}

impl<S: Store> App<S> {
    /// Folds the whole ledger into the expected records and compares every checked state
    /// record with it (tokens, the policy in force and its versions, releases,
    /// environments, each release's standing in an environment), calling `progress` with
    /// the entries folded so far.
    pub async fn check_state(&self, progress: impl FnMut(u64) + Send) -> AppResult<StateCheck> {
        check_state(&self.store, progress).await
    }

    /// [`App::check_state`], then keeps the projection so that every later read of a
    /// checked record is compared with it (a server calls this once at start).
    pub async fn guard_state(&self, progress: impl FnMut(u64) + Send) -> AppResult<StateCheck> {
        let _one = self.projection.catching_up.lock().await;
        let (report, projection) = fold_and_compare(&self.store, progress).await?;
        *self
            .projection
            .live
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(projection);
        Ok(report)
    }

    /// Folds the entries appended since into the live projection (a server calls this
    /// often, so that a hot read rarely has to).
    pub async fn follow_state(&self) -> AppResult<()> {
        let _one = self.projection.catching_up.lock().await;
        let Some(mut next) = self.projection.next() else {
            return Ok(());
        };
        let size = self.store.size().await?;
        while next < size {
            let end = size.min(next + MAX_ENTRIES_PER_READ);
            let entries = self.store.entries(next, end).await?;
            // Parsed outside the lock; folded under it, in order.
            let read: Vec<_> = entries
                .iter()
                .map(|e| (e.index, Projection::read(&e.leaf)))
                .collect();
            let mut live = self
                .projection
                .live
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let Some(p) = live.as_mut() else {
                return Ok(());
            };
            for (index, event) in read {
                p.fold_read(index, event);
            }
            next = end;
        }
        Ok(())
    }

    /// The differences the hot paths found since the last call (each once).
    pub fn take_state_differences(&self) -> Vec<StateDifference> {
        std::mem::take(
            &mut *self
                .projection
                .found
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// A checked record, compared with the ledger when a guard is installed.
    pub(crate) async fn get_checked<T: Projected>(
        &self,
        kind: &'static str,
        key: &str,
    ) -> AppResult<Option<Versioned<T>>> {
        let read = self.get::<T>(kind, key).await?;
        self.checked(kind, key, read).await
    }

    /// `read`, a record just read, if it agrees with the ledger; else read again (see
    /// [`App::get_checked`]).
    pub(crate) async fn checked<T: Projected>(
        &self,
        kind: &'static str,
        key: &str,
        read: Option<Versioned<T>>,
    ) -> AppResult<Option<Versioned<T>>> {
        if self.projection.agrees(kind, key, read.as_ref()) {
            return Ok(read);
        }
        self.vouch_again(kind, key).await
    }

    /// [`App::get_checked`] through the state cache.
    pub(crate) async fn get_hot_checked<T: Projected>(
        &self,
        kind: &'static str,
        key: &str,
    ) -> AppResult<Option<Arc<Versioned<T>>>> {
        let read = self.get_hot::<T>(kind, key).await?;
        if self.projection.agrees(kind, key, read.as_deref()) {
            return Ok(read);
        }
        Ok(self.vouch_again(kind, key).await?.map(Arc::new))
    }

    /// Whether a record read in a page of `kind` agrees with the ledger (read again
    /// through [`App::get_checked`] when it does not at first sight).
    pub(crate) async fn checked_in_page<T: Projected>(
        &self,
        kind: &'static str,
        key: &str,
        record: Versioned<T>,
    ) -> AppResult<Versioned<T>> {
        if self.projection.agrees(kind, key, Some(&record)) {
            return Ok(record);
        }
        self.vouch_again(kind, key).await?.ok_or_else(|| {
            AppError::Integrity(format!("state {kind}/{key} disappeared while it was read"))
        })
    }

    /// The slow path: catch up, read the row from the store again, and fail closed on a
    /// difference that stays.
    async fn vouch_again<T: Projected>(
        &self,
        kind: &'static str,
        key: &str,
    ) -> AppResult<Option<Versioned<T>>> {
        for _ in 0..4 {
            self.follow_state().await?;
            let fresh = self.get::<T>(kind, key).await?;
            match self.projection.check(kind, key, fresh.as_ref()) {
                None | Some(Check::Agrees) => return Ok(fresh),
                Some(Check::Behind) => continue,
                Some(Check::Differs(what)) => {
                    // Changed meanwhile by a legitimate write? Then look again.
                    let again = self.store.state(kind, key).await?;
                    let stamp = |v: Option<(u64, u64)>| v;
                    if stamp(fresh.as_ref().map(|r| (r.version, r.log_index)))
                        != stamp(again.as_ref().map(|r| (r.version, r.log_index)))
                    {
                        continue;
                    }
                    let difference = StateDifference {
                        record: format!("{kind}/{key}"),
                        what,
                    };
                    let message = format!(
                        "{difference}\ncustody refuses to act on it: someone changed the database behind the ledger\nhint: `custody log check` lists every record that differs; restore the database from a backup"
                    );
                    self.projection.keep(difference);
                    return Err(AppError::Integrity(message));
                }
            }
        }
        Err(AppError::Unavailable(format!(
            "state {kind}/{key} kept changing while custody checked it against the ledger; retry"
        )))
    }
}

/// The keys of `m`.
fn keys<T>(m: &std::collections::HashMap<String, T>) -> Vec<String> {
    m.keys().cloned().collect()
}

/// Folds the whole ledger into the expected records and compares every checked state
/// record of `store` with it: what `custody log check` runs on a ledger opened read-only
/// (see [`App::check_state`]).
pub async fn check_state<S: Store>(
    store: &S,
    progress: impl FnMut(u64) + Send,
) -> AppResult<StateCheck> {
    Ok(fold_and_compare(store, progress).await?.0)
}

async fn fold_and_compare<S: Store>(
    store: &S,
    mut progress: impl FnMut(u64) + Send,
) -> AppResult<(StateCheck, Projection)> {
    let size = store.size().await?;
    let mut p = Projection::default();
    let mut start = 0;
    while start < size {
        let end = size.min(start + MAX_ENTRIES_PER_READ);
        for e in store.entries(start, end).await? {
            p.fold(e.index, &e.leaf);
        }
        start = end;
        progress(end);
    }
    let mut report = StateCheck {
        entries: size,
        records: 0,
        differences: p
            .unreadable
            .iter()
            .map(|(i, why)| StateDifference {
                record: format!("ledger entry {i}"),
                what: format!("it does not read as an event: {why}"),
            })
            .collect(),
    };
    let current: Vec<String> = p.policy.iter().map(|_| "current".to_owned()).collect();
    compare_kind::<_, TokenRecord>(store, &p, kind::TOKEN, keys(&p.tokens), &mut report).await?;
    compare_kind::<_, PolicyRecord>(store, &p, kind::POLICY, current.clone(), &mut report).await?;
    compare_kind::<_, PolicyDigest>(store, &p, kind::POLICY_DIGEST, current, &mut report).await?;
    let versions = keys(&p.policy_versions);
    compare_kind::<_, PolicyRecord>(store, &p, kind::POLICY_VERSION, versions, &mut report).await?;
    compare_kind::<_, ReleaseRecord>(store, &p, kind::RELEASE, keys(&p.releases), &mut report)
        .await?;
    let environments = keys(&p.environments);
    compare_kind::<_, EnvironmentRecord>(store, &p, kind::ENVIRONMENT, environments, &mut report)
        .await?;
    let standings = keys(&p.standings);
    compare_kind::<_, CertificationRecord>(store, &p, kind::CERTIFICATION, standings, &mut report)
        .await?;
    let keyring: Vec<String> = p.keyring.iter().map(|_| "current".to_owned()).collect();
    compare_kind::<_, crate::keyring::KeyringRecord>(
        store,
        &p,
        kind::KEYRING,
        keyring,
        &mut report,
    )
    .await?;
    Ok((report, p))
}

/// Compares every stored record of `kind`, and reports each of `expected` missing.
async fn compare_kind<S: Store, T: Projected>(
    store: &S,
    p: &Projection,
    kind: &str,
    mut expected: Vec<String>,
    report: &mut StateCheck,
) -> AppResult<()> {
    let mut after = String::new();
    loop {
        let page = store.states(kind, &after, MAX_ENTRIES_PER_READ).await?;
        let Some(last) = page.last() else { break };
        after = last.key.clone();
        for record in page {
            report.records += 1;
            expected.retain(|k| *k != record.key);
            let differs = |what: String| StateDifference {
                record: format!("{kind}/{}", record.key),
                what,
            };
            match serde_json::from_slice::<T>(record.value.as_bytes()) {
                Err(e) => report
                    .differences
                    .push(differs(format!("it does not parse: {e}"))),
                Ok(value) => {
                    if let Check::Differs(what) =
                        check(p, kind, &record.key, Some((&value, record.log_index)))
                    {
                        report.differences.push(differs(what));
                    }
                }
            }
        }
    }
    for key in expected {
        if let Check::Differs(what) = check::<T>(p, kind, &key, None) {
            report.differences.push(StateDifference {
                record: format!("{kind}/{key}"),
                what,
            });
        }
    }
    Ok(())
}
