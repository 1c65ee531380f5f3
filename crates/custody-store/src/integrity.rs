//! Failing closed when the log's history goes missing.
//!
//! A store remembers the newest checkpoint it signed or verified (`seen`), in memory while
//! it runs and in the checkpoint file (see `checkpoint_file.rs`) across restarts. Whenever
//! it reads the log's head it checks that the head extends `seen`: never smaller, the same
//! root at the same size, and otherwise a consistency proof from the stored hashes. A head
//! that does not is an [`IntegrityFailure`]: the database was rolled back (a restored
//! backup, rows deleted by someone with database access), truncated, or forked. Signing a
//! checkpoint on that history would make the log fork itself, so the store turns read-only
//! until an operator acknowledges the failure.
//!
//! This module also holds the status a server reads ([`Readiness`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use custody_crypto::note::NoteVerifier;
use custody_ledger::{Checkpoint, Hash, consistency_plan, verify_consistency};

use crate::commit::{self, hex};
use crate::sql::Conn;
use crate::{SignedCheckpoint, StoreError};

/// The log's head contradicts a checkpoint the store had signed or verified before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityFailure {
    /// What was found.
    pub finding: Finding,
    /// The newest checkpoint the store had signed or verified before (signed with the log
    /// key: evidence of the history that is now missing).
    pub seen: SignedCheckpoint,
    /// Where `seen` was kept.
    pub witness: Witness,
    /// The size of the head found in the database.
    pub found_size: u64,
    /// The root of the head found in the database.
    pub found_root: Hash,
}

/// What is wrong with the head found, against the checkpoint seen before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The head is smaller than the checkpoint seen: entries were removed.
    WentBack,
    /// The head has the checkpoint's size but another root: the log forked.
    Forked,
    /// The head is larger, but its tree does not contain the checkpoint's: a fork that
    /// grew past it. The text says why the consistency check failed.
    NotAnExtension(String),
    /// The head's checkpoint is not signed by the log key (or does not name the head's
    /// size and root): someone other than custody moved the head.
    HeadNotSigned(String),
    /// The stored hashes do not give the head's root.
    Damaged(String),
}

/// Where a remembered checkpoint was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Witness {
    /// This store signed or verified it since it was opened.
    ThisProcess,
    /// The checkpoint file outside the database held it when the store was opened.
    CheckpointFile(PathBuf),
    /// The database itself still holds it, among the checkpoints the log signed: its
    /// head was moved back over rows it left behind.
    Database,
}

impl fmt::Display for IntegrityFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (seen, found) = (self.seen.size, self.found_size);
        match &self.finding {
            Finding::WentBack => write!(f, "the log's head went back from {seen} to {found}")?,
            Finding::Forked => write!(
                f,
                "the log forked: at size {found} its root is {}, but the checkpoint of that size had {}",
                hex(&self.found_root),
                hex(&self.seen.root)
            )?,
            Finding::NotAnExtension(why) => write!(
                f,
                "the log's head at size {found} does not extend the checkpoint of size {seen}: {why}"
            )?,
            Finding::HeadNotSigned(why) => write!(
                f,
                "the log's head at size {found} does not carry a checkpoint signed by the log key: {why}"
            )?,
            Finding::Damaged(why) => {
                write!(f, "the stored tree does not give the head's root: {why}")?
            }
        }
        match &self.witness {
            Witness::ThisProcess => {
                write!(f, " (size {seen} was signed or verified by this process)")
            }
            Witness::CheckpointFile(path) => {
                write!(f, " (size {seen} was recorded in {})", path.display())
            }
            Witness::Database => write!(
                f,
                " (the database still holds the checkpoint of size {seen} the log signed)"
            ),
        }
    }
}

/// Whether appends can succeed now, for a server's readiness check (`/readyz`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Appends can succeed: no integrity failure, and the last write this store tried
    /// succeeded (or none failed since a probe write succeeded).
    Ready,
    /// The last write failed for a storage reason (disk full, connection lost, database
    /// down) and a probe write still fails.
    StorageFailing(String),
    /// The store is read-only after an integrity failure.
    IntegrityFailed(IntegrityFailure),
    /// Another process handed the log over from the key this store signs with (`custody
    /// key rotate log` while it ran): it writes nothing until restarted with the new key.
    Retired(String),
    /// The store was opened for reading only.
    ReadOnly,
    /// The store was closed.
    Closed,
}

impl Readiness {
    /// True only for [`Readiness::Ready`].
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }
}

impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Readiness::Ready => write!(f, "ready"),
            Readiness::StorageFailing(e) => write!(f, "the ledger's storage is failing: {e}"),
            Readiness::IntegrityFailed(e) => write!(f, "the ledger is read-only: {e}"),
            Readiness::Retired(e) => write!(f, "this process's log key is retired: {e}"),
            Readiness::ReadOnly => write!(f, "the ledger was opened read-only"),
            Readiness::Closed => write!(f, "the ledger is closed"),
        }
    }
}

/// The status the committer and the store's callers share.
#[derive(Debug, Default)]
pub(crate) struct Status {
    /// Set by the committer on an integrity failure, cleared only by an acknowledgment.
    integrity: Mutex<Option<IntegrityFailure>>,
    /// The last storage error of a write (a batch, an access-log write), cleared by the
    /// next write that succeeds or a probe.
    storage: Mutex<Option<String>>,
    /// The last failure to write the checkpoint file, cleared by the next write.
    checkpoint_file: Mutex<Option<String>>,
    /// Set when a write found the log handed over from this store's key; never cleared (a
    /// retired key never signs again).
    retired: Mutex<Option<String>>,
    /// The newest checkpoint the committer signed or verified, for readiness to compare
    /// the head with between writes.
    seen: Mutex<Option<SignedCheckpoint>>,
}

impl Status {
    pub(crate) fn integrity(&self) -> Option<IntegrityFailure> {
        lock(&self.integrity).clone()
    }

    pub(crate) fn fail_integrity(&self, failure: IntegrityFailure) {
        lock(&self.integrity).get_or_insert(failure);
    }

    pub(crate) fn clear_integrity(&self) {
        *lock(&self.integrity) = None;
    }

    pub(crate) fn seen(&self) -> Option<SignedCheckpoint> {
        lock(&self.seen).clone()
    }

    pub(crate) fn saw(&self, checkpoint: &SignedCheckpoint) {
        *lock(&self.seen) = Some(checkpoint.clone());
    }

    pub(crate) fn storage(&self) -> Option<String> {
        lock(&self.storage).clone()
    }

    pub(crate) fn retired(&self) -> Option<String> {
        lock(&self.retired).clone()
    }

    pub(crate) fn checkpoint_file_error(&self) -> Option<String> {
        lock(&self.checkpoint_file).clone()
    }

    /// Records the outcome of a write of the checkpoint file. The first failure of a run
    /// of them is logged as a warning (nothing else fails, so nothing else would say
    /// it), and the first success after one.
    pub(crate) fn file_written(&self, error: Option<String>) {
        let mut last = lock(&self.checkpoint_file);
        match (&*last, &error) {
            (None, Some(why)) => tracing::warn!(
                error = %why,
                "the checkpoint file could not be written: the ledger's commits stand, but a rollback of the database while custody is stopped goes unnoticed past the file's last checkpoint until it is written again; make its directory writable"
            ),
            (Some(_), None) => tracing::info!("the checkpoint file is written again"),
            _ => {}
        }
        *last = error;
    }

    /// Records the outcome of a write: `Err` with a storage fault marks writes failing.
    pub(crate) fn wrote<T>(&self, outcome: &Result<T, StoreError>) {
        match outcome {
            Ok(_) => *lock(&self.storage) = None,
            Err(e) if is_storage_fault(e) => *lock(&self.storage) = Some(e.to_string()),
            Err(e @ StoreError::RetiredKey { .. }) => *lock(&self.retired) = Some(e.to_string()),
            Err(_) => {}
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values are plain data, always whole: a panic elsewhere cannot leave one
    // half-written.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether `e` says the storage failed (rather than the request, or the log's integrity).
pub(crate) fn is_storage_fault(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Unavailable(_)
            | StoreError::OutcomeUnknown(_)
            | StoreError::Database(_)
            | StoreError::Injected(_)
            | StoreError::Signing(_)
    )
}

/// Checks a signed checkpoint note against the head row's size and root.
pub(crate) fn verify_head_note(
    note: &str,
    verifier: &NoteVerifier,
    size: u64,
    root: &[u8],
) -> Result<(), String> {
    let cp = Checkpoint::open(note, verifier).map_err(|e| e.to_string())?;
    if cp.size != size || cp.root[..] != root[..] {
        return Err(format!(
            "its checkpoint names size {} and root {}",
            cp.size,
            hex(&cp.root)
        ));
    }
    Ok(())
}

/// Whether the tree of `found_size` leaves with root `found_root`, as stored, extends
/// `seen`. `Err` for a database failure; `Ok(Some)` for what is wrong.
pub(crate) async fn check_extends(
    c: &mut Conn<'_>,
    seen: &SignedCheckpoint,
    found_size: u64,
    found_root: &Hash,
) -> Result<Option<Finding>, StoreError> {
    if found_size < seen.size {
        return Ok(Some(Finding::WentBack));
    }
    if found_size == seen.size {
        return Ok((*found_root != seen.root).then_some(Finding::Forked));
    }
    if seen.size == 0 {
        return Ok(None); // every tree extends the empty one
    }
    // The consistency proof between the two sizes, from the stored hashes, must take the
    // seen root to the head's: then the first `seen.size` leaves are the ones it signed.
    let plan = consistency_plan(seen.size, found_size)
        .map_err(|e| StoreError::OutOfRange(e.to_string()))?;
    let proof = match commit::read_nodes(c, plan.nodes()).await {
        Ok(hashes) => plan.assemble(&hashes),
        Err(StoreError::Corrupt(why)) => return Ok(Some(Finding::NotAnExtension(why))),
        Err(e) => return Err(e),
    };
    let proof = match proof {
        Ok(proof) => proof,
        Err(e) => return Ok(Some(Finding::NotAnExtension(e.to_string()))),
    };
    Ok(
        verify_consistency(seen.size, found_size, &proof, &seen.root, found_root)
            .err()
            .map(|e| Finding::NotAnExtension(format!("the consistency proof fails: {e}"))),
    )
}
