//! custody's durable ledger and the state projected from it.
//!
//! The [`Store`] trait states the contract every backend keeps (atomic, durable, linear,
//! group-committed, forward-only, append-only, idempotent); [`SqlStore`] keeps it on an
//! embedded SQLite file (the default) or on PostgreSQL (several servers, one log). All of
//! custody's SQL lives in this crate, in `sql/` (blobs' own in `blobs.rs`) and the versioned
//! migrations.
//!
//! A ledger leaf is an event's RFC 8785 canonical JSON ([`CanonicalJson`]); the store keeps
//! the leaves, the hash of every complete subtree (so any proof costs O(log n) reads, see
//! [`custody_ledger::ProofPlan`]), and one signed C2SP checkpoint per committed batch.
//!
//! It fails closed: a head that does not extend the newest checkpoint the store signed or
//! verified (kept in memory, and across restarts in a checkpoint file outside the database)
//! turns it read-only until an operator acknowledges it ([`IntegrityFailure`]). A failed
//! write leaves nothing behind, so appends resume when the storage does ([`Readiness`]).
//! It does not decide what events mean (the app does), keep time, or print.
//!
//! ```no_run
//! # async fn demo(log_key: custody_crypto::note::NoteSigner) -> Result<(), custody_store::StoreError> {
//! use custody_model::{CanonicalJson, Timestamp};
//! use custody_store::{Append, Location, SqlStore, Store};
//!
//! let location = Location::parse("data/custody.db");
//! let store = SqlStore::create(&location, log_key, "2026-11-27T12:00:00Z".parse().unwrap()).await?;
//! let event = CanonicalJson::from_value(&serde_json::json!({"type": "artifact.registered"})).unwrap();
//! let appended = store.append(Append::event(event)).await?;
//! let proof = store.inclusion_proof(appended.first_index, appended.tree_size).await?;
//! # Ok(()) }
//! ```
//!
//! [`CanonicalJson`]: custody_model::CanonicalJson

mod access_log;
mod batch;
mod blobs;
mod check;
mod checkpoint_file;
mod commit;
mod contract;
mod database_file;
mod db;
mod error;
mod faults;
mod integrity;
mod log_keys;
mod open;
pub mod search;
mod sql;
mod sql_store;

pub use check::IntegrityReport;
pub use checkpoint_file::{CheckpointFile, CheckpointFileStatus};
pub use contract::{
    AccessEntry, AccessRecord, Append, Appended, BLOB_CHUNK_BYTES, BlobInfo, BlobPut, Cosignature,
    Entry, Expect, IdempotencyKey, LastUse, MAX_BLOB_BYTES, MAX_ENTRIES_PER_READ, MAX_EVENT_BYTES,
    MAX_EVENTS_PER_APPEND, MAX_KEY_BYTES, MAX_SEARCH_TERMS, SignedCheckpoint, StateRecord,
    StateWrite, Store,
};
pub use db::{Durability, Location};
pub use error::StoreError;
pub use faults::{FaultInjector, FaultPoint};
pub use integrity::{Finding, IntegrityFailure, Readiness, Witness};
pub use open::{OnIntegrityFailure, OpenOptions};
pub use sql_store::SqlStore;
