//! Contract 10 and 11: a store fails closed when the log's history goes missing, whether
//! while it runs or while it is stopped; and the checkpoint signatures it relies on are
//! checked (at open, and by the full check).
//!
//! This file holds what the tests share: a ledger with a checkpoint at every size, and
//! what someone with database access does to it (drop the guards, roll back, append as
//! another writer, count behind the store's back). `running.rs` moves the history under a
//! running store; `at_open.rs` while no store runs, and checks the signatures opening
//! relies on.

use std::path::Path;

use custody_crypto::note::NoteVerifier;
use custody_ledger::Checkpoint;
use custody_store::{
    Append, CheckpointFile, IntegrityFailure, OpenOptions, SignedCheckpoint, SqlStore, Store,
    StoreError,
};

use super::{
    Backend, check_checkpoint_chain, event, log_key_from_seed, now, random_seed, raw_execute,
};
use crate::common::{self, TestDb, bytes_literal};

mod at_open;
mod running;

pub(crate) use at_open::*;
pub(crate) use running::*;

/// A fresh ledger keeping its checkpoint file, with `n` events appended one at a time (so
/// there is a stored checkpoint at every size). Returns its checkpoints by size.
async fn ledger_of(
    backend: Backend,
    n: u64,
) -> (TestDb, SqlStore, [u8; 32], Vec<SignedCheckpoint>) {
    let db = backend.fresh().await;
    let seed = random_seed();
    let store = SqlStore::create_with(&db.location, log_key_from_seed(seed), now(), db.options())
        .await
        .unwrap();
    for i in 0..n {
        store.append(Append::event(event(0, i))).await.unwrap();
    }
    let checkpoints = store.checkpoints(0, 1000).await.unwrap();
    assert_eq!(checkpoints.len() as u64, n + 1);
    (db, store, seed, checkpoints)
}

fn text_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Drops the schema's guards against rewriting history, as anyone with database access can.
async fn drop_guards(backend: Backend, db: &TestDb) {
    let statements: &[&str] = match backend {
        Backend::Sqlite => &[
            "DROP TRIGGER log_entries_append_only_d",
            "DROP TRIGGER log_nodes_append_only_d",
            "DROP TRIGGER log_checkpoints_append_only_u",
            "DROP TRIGGER log_checkpoints_append_only_d",
            "DROP TRIGGER log_head_forward_only",
        ],
        Backend::Postgres => &[
            "DROP TRIGGER log_entries_append_only ON log_entries",
            "DROP TRIGGER log_nodes_append_only ON log_nodes",
            "DROP TRIGGER log_checkpoints_append_only ON log_checkpoints",
            "DROP TRIGGER log_head_forward_only ON log_head",
        ],
    };
    for sql in statements {
        super::raw_execute(&db.location, sql).await.unwrap();
    }
}

/// Rolls the log back to `to` (one of its stored checkpoints), as restoring an older
/// backup does: the entries, hashes, checkpoints, search terms and idempotency records past
/// it go, and the head is that checkpoint, validly signed.
async fn roll_back(backend: Backend, db: &TestDb, to: &SignedCheckpoint) {
    let k = to.size;
    // A stored hash's id is `level << 56 | index`; it covers leaves up to
    // (index + 1) << level.
    let shift = match backend {
        Backend::Sqlite => "(id >> 56)",
        Backend::Postgres => "((id >> 56)::int)",
    };
    for sql in [
        format!("DELETE FROM log_entries WHERE idx >= {k}"),
        format!("DELETE FROM log_nodes WHERE ((id & 72057594037927935) + 1) << {shift} > {k}"),
        format!("DELETE FROM log_checkpoints WHERE size > {k}"),
        format!("DELETE FROM log_terms WHERE idx >= {k}"),
        format!("DELETE FROM idempotency WHERE first_index >= {k}"),
        format!(
            "UPDATE log_head SET size = {k}, root = {}, checkpoint = {} WHERE id = 1",
            bytes_literal(backend, &to.root),
            text_literal(&to.note)
        ),
    ] {
        super::raw_execute(&db.location, &sql).await.unwrap();
    }
}

/// Another writer on the same database that keeps no checkpoint file (a replica elsewhere,
/// or a process started after the rollback): it appends `n` events of its own.
async fn other_writer_appends(db: &TestDb, seed: [u8; 32], writer: u64, n: u64) {
    let options = OpenOptions {
        checkpoint_file: CheckpointFile::Off,
        ..OpenOptions::default()
    };
    let other = SqlStore::open_with(&db.location, log_key_from_seed(seed), options)
        .await
        .unwrap();
    for i in 0..n {
        other.append(Append::event(event(writer, i))).await.unwrap();
    }
    other.close().await;
}

/// The number of stored checkpoints, counted behind the store's back.
async fn stored_checkpoints(db: &TestDb) -> i64 {
    use sqlx::Connection;
    const SQL: &str = "SELECT COUNT(*) FROM log_checkpoints";
    match &db.location {
        custody_store::Location::Sqlite(path) => {
            let url = format!("sqlite:{}", path.display());
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query_scalar(SQL).fetch_one(&mut c).await.unwrap()
        }
        custody_store::Location::Postgres(url) => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_scalar(SQL).fetch_one(&mut c).await.unwrap()
        }
    }
}

/// The checkpoint the file holds.
fn file_checkpoint(path: &Path, verifier: &NoteVerifier) -> Checkpoint {
    Checkpoint::open(&std::fs::read_to_string(path).unwrap(), verifier).unwrap()
}

/// The operator's record of accepting the database as it stands.
fn recovery_record(failure: &IntegrityFailure) -> Append {
    Append::event(common::json(serde_json::json!({
        "type": "log.recovered",
        "reason": "restored from the nightly backup; entries past it are lost",
        "failure": failure.to_string(),
        "seen": failure.seen.note,
    })))
}

fn integrity_error(err: StoreError) -> IntegrityFailure {
    let text = err.to_string();
    assert!(
        text.contains("hint:") && text.contains("custody log recover"),
        "{text}"
    );
    match err {
        StoreError::Integrity(failure) => *failure,
        other => panic!("expected an integrity failure, got {other}"),
    }
}
