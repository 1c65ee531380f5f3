//! Why a store operation failed, with what to do about it.

use std::path::PathBuf;

use crate::{Expect, IntegrityFailure};

/// A store failure. Messages name what is wrong; `hint:` lines say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No ledger at this location.
    #[error("no custody ledger at {0}\nhint: create one with `custody init`")]
    NotInitialized(String),
    /// `create` found a ledger already there.
    #[error(
        "a custody ledger already exists at {0}; refusing to overwrite it\nhint: use it as it is, or choose another --data-dir / --database-url"
    )]
    AlreadyInitialized(String),
    /// The log key given is not this ledger's: not the key it was created with nor one it
    /// was handed over to.
    #[error(
        "the log key does not match this ledger: the ledger's log key is {expected}, the key given is {found}\nhint: restore the data directory's keys/log.key; the ledger is never re-created implicitly"
    )]
    KeyMismatch {
        /// The verifier key the ledger's history of hand-overs ends with.
        expected: String,
        /// The verifier key of the key given.
        found: String,
    },
    /// The log key given is one this ledger handed over to a successor (`custody key rotate
    /// log`): it signs nothing any more.
    #[error(
        "the log key given, {retired}, is retired: the log handed it over to {successor} at {at} entries{}\nhint: start custody with the current key (after `custody key rotate log` it is keys/log.key; the retired pair is kept in keys/retired/)",
        signing_now(.successor, .current)
    )]
    RetiredKey {
        /// The retired verifier key given.
        retired: String,
        /// The key it was handed over to.
        successor: String,
        /// The size of that hand-over checkpoint.
        at: u64,
        /// The key signing now (the last of the history).
        current: String,
    },
    /// Stored data contradicts itself (a hash, root or checkpoint that does not match).
    #[error(
        "the ledger is damaged: {0}\nhint: stop writing to it, keep a copy, and run `custody log check` to locate the damage"
    )]
    Corrupt(String),
    /// The log's history contradicts a checkpoint this store signed or verified before (the
    /// database was rolled back, truncated or forked): the store refuses to append or sign
    /// until an operator acknowledges it ([`crate::Store::acknowledge_integrity_failure`]).
    #[error(
        "the ledger's history was changed behind custody's back: {0}\nthe ledger is read-only: nothing is appended or signed until an operator resolves this\nhint: {hint}",
        hint = recovery_hint(.0)
    )]
    Integrity(Box<IntegrityFailure>),
    /// The checkpoint file kept outside the database holds something that is not a
    /// checkpoint of this log.
    #[error(
        "the checkpoint file {path} is not a checkpoint of this log: {reason}\nhint: custody writes this file itself after every commit; find out who changed it, then move it aside: the next open recreates it from the ledger's head"
    )]
    CheckpointFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A state precondition failed; nothing of the append was written.
    #[error("state {kind}/{key} is at version {found:?}, the append expected {expected:?}")]
    Conflict {
        /// The record's type.
        kind: String,
        /// Its key.
        key: String,
        /// The precondition.
        expected: Expect,
        /// The version found (`None`: absent).
        found: Option<u64>,
    },
    /// An idempotency key was reused for a different request.
    #[error(
        "idempotency key {0:?} was already used for a different request\nhint: use a new key for a new request"
    )]
    IdempotencyConflict(String),
    /// A request outside what exists (index past the head, sizes out of order).
    #[error("{0}")]
    OutOfRange(String),
    /// A request the store refuses before touching anything (empty, oversized).
    #[error("{0}")]
    InvalidInput(String),
    /// The store was opened for reading only.
    #[error("this store was opened read-only (no log key); appends need the log key")]
    ReadOnly,
    /// The commit's outcome is unknown; retry with the same idempotency key.
    #[error(
        "the append's outcome is unknown: {0}\nhint: retry with the same idempotency key; it returns the original result if the first attempt committed"
    )]
    OutcomeUnknown(String),
    /// Signing the checkpoint failed.
    #[error("signing the checkpoint failed: {0}")]
    Signing(String),
    /// The database failed before the commit; nothing of the append was written.
    #[error(
        "the database failed and nothing was written: {0}\nhint: retry; the ledger is unchanged"
    )]
    Unavailable(String),
    /// The committer stopped (the store is shutting down).
    #[error("the store is shut down")]
    Closed,
    /// A fault injected by a test.
    #[error("injected fault at {0}")]
    Injected(&'static str),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying schema migrations failed.
    #[error(
        "schema migration failed: {0}\nhint: a newer custody may have written this database; run the same or a newer version"
    )]
    Migration(#[from] sqlx::migrate::MigrateError),
}

/// How a retired key's refusal names the key signing now: only when a later hand-over
/// replaced the successor too.
fn signing_now(successor: &str, current: &str) -> String {
    if successor == current {
        ", which signs now".into()
    } else {
        format!(", and {current} signs now")
    }
}

/// What an operator does about `failure`: a head moved back over rows the database still
/// holds loses nothing when recovered; anything else loses what the database no longer has.
fn recovery_hint(failure: &IntegrityFailure) -> &'static str {
    match failure.witness {
        crate::Witness::Database => {
            "find out who moved the log's head; with every server of the instance stopped, `custody log recover --reason TEXT` puts the head back on the checkpoint the database still holds (nothing is lost, if the entries past the head still give its root; else it changes nothing, and the database must be restored from a backup) and records that decision in the ledger"
        }
        _ => {
            "find out who changed the database; then, with every server of the instance stopped, `custody log recover --reason TEXT` records the decision in the ledger: it puts the head back if the database still holds what the log signed, and otherwise accepts the database as it stands (restore the lost entries from a backup first, if you can)"
        }
    }
}
