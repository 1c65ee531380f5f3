//! Contract 10 and 11: a store fails closed when the log's history goes missing, whether
//! while it runs or while it is stopped; and the checkpoint signatures it relies on are
//! checked (at open, and by the full check).

use std::path::Path;

use custody_crypto::note::NoteVerifier;
use custody_ledger::Checkpoint;
use custody_store::{
    Append, CheckpointFile, CheckpointFileStatus, Finding, IntegrityFailure, OnIntegrityFailure,
    OpenOptions, Readiness, SignedCheckpoint, SqlStore, Store, StoreError, Witness,
};

use super::{Backend, check_checkpoint_chain, event, log_key_from_seed, now, random_seed};
use crate::common::{self, TestDb};

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

fn bytes_literal(backend: Backend, bytes: &[u8]) -> String {
    match backend {
        Backend::Sqlite => format!("X'{}'", common::hex(bytes)),
        Backend::Postgres => format!("'\\x{}'::bytea", common::hex(bytes)),
    }
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

pub(crate) async fn a_log_rolled_back_under_a_running_store_turns_it_read_only(backend: Backend) {
    let (db, store, _, checkpoints) = ledger_of(backend, 12).await;
    let (_, file) = db.checkpoint_file();
    drop_guards(backend, &db).await;
    roll_back(backend, &db, &checkpoints[8]).await;
    assert_eq!(stored_checkpoints(&db).await, 9);
    // Not ready at once, before a write finds it (nothing is read-only yet).
    match store.readiness().await {
        Readiness::IntegrityFailed(f) => {
            assert_eq!(
                (f.finding, f.seen.size, f.found_size),
                (Finding::WentBack, 12, 8)
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.integrity(), None);

    let failure = integrity_error(store.append(Append::event(event(1, 0))).await.unwrap_err());
    assert_eq!(failure.finding, Finding::WentBack);
    assert_eq!((failure.seen.size, failure.found_size), (12, 8));
    assert_eq!(
        failure.seen, checkpoints[12],
        "the evidence is the signed head"
    );
    assert_eq!(failure.witness, Witness::ThisProcess);
    assert!(
        failure
            .to_string()
            .contains("the log's head went back from 12 to 8"),
        "{failure}"
    );
    // Read-only from now on: every append fails the same way, nothing is signed, and the
    // status says so; the checkpoint file keeps the evidence.
    assert_eq!(store.integrity(), Some(failure.clone()));
    assert_eq!(
        store.readiness().await,
        Readiness::IntegrityFailed(failure.clone())
    );
    for i in 1..4 {
        let again = store.append(Append::event(event(1, i))).await.unwrap_err();
        assert_eq!(integrity_error(again), failure);
    }
    assert_eq!(stored_checkpoints(&db).await, 9, "a checkpoint was signed");
    assert_eq!(store.size().await.unwrap(), 8);

    // Only the failure the operator saw can be acknowledged.
    let mut other = failure.clone();
    other.found_size = 7;
    let err = store
        .acknowledge_integrity_failure(&other, recovery_record(&other))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err}");
    assert_eq!(store.integrity(), Some(failure.clone()));

    // The acknowledgment commits the operator's record on the head as it stands, and the
    // store appends again.
    let recorded = store
        .acknowledge_integrity_failure(&failure, recovery_record(&failure))
        .await
        .unwrap();
    assert_eq!((recorded.first_index, recorded.tree_size), (8, 9));
    assert_eq!(store.integrity(), None);
    assert_eq!(store.readiness().await, Readiness::Ready);
    let next = store.append(Append::event(event(1, 9))).await.unwrap();
    assert_eq!(next.first_index, 9);
    store.check(|_| {}).await.unwrap();
    check_checkpoint_chain(&store).await;
    let verifier = store.verifier().clone();
    store.close().await;
    assert_eq!(file_checkpoint(&file, &verifier).size, 10);
}

pub(crate) async fn a_fork_under_running_stores_is_refused(backend: Backend) {
    let (db, first, seed, _) = ledger_of(backend, 12).await;
    let second = SqlStore::open_with(&db.location, log_key_from_seed(seed), db.options())
        .await
        .unwrap();
    // `second` commits at 12 → 13, then `first` sees 13 and commits 13 → 14.
    second.append(Append::event(event(2, 0))).await.unwrap();
    first.append(Append::event(event(1, 0))).await.unwrap();
    let at_13 = first.checkpoints(13, 1).await.unwrap().remove(0);

    drop_guards(backend, &db).await;
    roll_back(backend, &db, &first.checkpoints(8, 1).await.unwrap()[0]).await;
    // Another writer grows another history from 8 to 14: the same size as `first` saw.
    other_writer_appends(&db, seed, 7, 6).await;
    let before = stored_checkpoints(&db).await;
    let forked = integrity_error(first.append(Append::event(event(1, 1))).await.unwrap_err());
    assert_eq!(forked.finding, Finding::Forked);
    assert_eq!((forked.seen.size, forked.found_size), (14, 14));
    assert_ne!(forked.seen.root, forked.found_root);
    assert!(forked.to_string().contains("the log forked"), "{forked}");

    // And past it: `second` last saw 13; the head is now 16 but does not contain it.
    other_writer_appends(&db, seed, 8, 2).await;
    let grown = integrity_error(second.append(Append::event(event(2, 1))).await.unwrap_err());
    assert!(
        matches!(grown.finding, Finding::NotAnExtension(_)),
        "{grown}"
    );
    assert_eq!(grown.seen, at_13);
    assert_eq!(grown.found_size, 16);
    assert!(
        grown
            .to_string()
            .contains("does not extend the checkpoint of size 13"),
        "{grown}"
    );
    assert_eq!(
        stored_checkpoints(&db).await,
        before + 2,
        "only the other writer's two checkpoints"
    );
}

pub(crate) async fn a_head_moved_without_the_log_key_is_refused(backend: Backend) {
    let (db, store, seed, _) = ledger_of(backend, 4).await;
    // Another custody writer moves the head on, properly…
    other_writer_appends(&db, seed, 9, 2).await;
    let head = store.checkpoint().await.unwrap();
    assert_eq!(head.size, 6);
    // …then someone puts a checkpoint of the same size and root, signed by a key of the
    // same name that is not the log's, in its place. Only the signature tells them apart.
    let impostor = common::log_key();
    let forged = Checkpoint::open(&head.note, store.verifier())
        .unwrap()
        .sign(&impostor)
        .unwrap();
    let sql = format!(
        "UPDATE log_head SET checkpoint = {} WHERE id = 1",
        text_literal(&forged)
    );
    super::raw_execute(&db.location, &sql).await.unwrap();
    let failure = integrity_error(store.append(Append::event(event(1, 0))).await.unwrap_err());
    assert!(
        matches!(failure.finding, Finding::HeadNotSigned(_)),
        "{failure}"
    );
    assert_eq!((failure.seen.size, failure.found_size), (4, 6));
    assert_eq!(store.size().await.unwrap(), 6, "nothing was appended");
}

/// The head row's size moved without its signed checkpoint: a check finds it without
/// waiting for a write to.
pub(crate) async fn a_head_size_moved_without_its_checkpoint_fails_the_check(backend: Backend) {
    let (db, store, _, _) = ledger_of(backend, 6).await;
    assert_eq!(store.check(|_| {}).await.unwrap().entries, 6);
    drop_guards(backend, &db).await;
    super::raw_execute(
        &db.location,
        "UPDATE log_head SET size = size - 2 WHERE id = 1",
    )
    .await
    .unwrap();
    let err = store.check(|_| {}).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(why)
            if why == "the log head says 4 entries, but its signed checkpoint is of 6"),
        "{err}"
    );
}

pub(crate) async fn a_log_rolled_back_while_stopped_is_refused_at_open(backend: Backend) {
    // Rolled back to an older backup, and truncated to nothing.
    for to in [8, 0] {
        let (db, store, seed, checkpoints) = ledger_of(backend, 12).await;
        let (_, file) = db.checkpoint_file();
        store.close().await;
        drop_guards(backend, &db).await;
        roll_back(backend, &db, &checkpoints[to]).await;

        let open = SqlStore::open_with(&db.location, log_key_from_seed(seed), db.options());
        let failure = integrity_error(open.await.unwrap_err());
        assert_eq!(failure.finding, Finding::WentBack);
        assert_eq!((failure.seen.size, failure.found_size), (12, to as u64));
        assert_eq!(failure.witness, Witness::CheckpointFile(file.clone()));
        assert!(
            failure.to_string().contains(&format!(
                "the log's head went back from 12 to {to} (size 12 was recorded in {})",
                file.display()
            )),
            "{failure}"
        );

        // Opened for recovery: read-only with the failure, until acknowledged.
        let options = OpenOptions {
            on_integrity_failure: OnIntegrityFailure::ReadOnly,
            ..db.options()
        };
        let recover =
            || SqlStore::open_with(&db.location, log_key_from_seed(seed), options.clone());
        let store = recover().await.unwrap();
        assert_eq!(store.integrity(), Some(failure.clone()));
        let refused = store.append(Append::event(event(1, 0))).await.unwrap_err();
        assert_eq!(integrity_error(refused), failure);
        assert_eq!(store.size().await.unwrap(), to as u64);
        // A record the store refuses (here its precondition fails) acknowledges nothing,
        // and the checkpoint file keeps the evidence.
        let refused = Append {
            state: vec![custody_store::StateWrite {
                kind: "recovery".into(),
                key: "last".into(),
                value: common::json(serde_json::json!({})),
                expect: custody_store::Expect::Version(9),
            }],
            ..recovery_record(&failure)
        };
        let err = store
            .acknowledge_integrity_failure(&failure, refused)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
        assert_eq!(store.integrity(), Some(failure.clone()));
        let verifier = store.verifier().clone();
        store.close().await;
        assert_eq!(file_checkpoint(&file, &verifier).size, 12);

        let store = recover().await.unwrap();
        let recorded = store
            .acknowledge_integrity_failure(&failure, recovery_record(&failure))
            .await
            .unwrap();
        assert_eq!(recorded.first_index, to as u64);
        store.close().await;

        let store = SqlStore::open_with(&db.location, log_key_from_seed(seed), db.options())
            .await
            .unwrap();
        assert_eq!(
            store.checkpoint_file(),
            &CheckpointFileStatus::Checked {
                path: file.clone(),
                size: to as u64 + 1
            }
        );
        store.append(Append::event(event(1, 1))).await.unwrap();
        store.check(|_| {}).await.unwrap();
    }
}

/// What else was done to the rows past a head moved back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PastTheHead {
    /// Nothing: they are as the log signed them.
    Kept,
    /// An entry deleted.
    EntryGone,
    /// A stored hash replaced.
    HashChanged,
    /// The newest checkpoint deleted (the one before it still past the head, and the
    /// entry it added still stored).
    NewestCheckpointGone,
    /// Every checkpoint past the head deleted (the entries still stored).
    CheckpointsGone,
}

/// The head row alone moved back to an older checkpoint while no store ran, over the rows
/// the database keeps (append-only), and the checkpoint file deleted too: the database's
/// own newest signed checkpoint shows it, at open and in a check. Acknowledging puts the
/// head back on that checkpoint, losing nothing, once the entries past the head give its
/// root and every stored hash they make; otherwise nothing changes and the store stays
/// read-only. Entries past the head that no checkpoint covers refuse the open.
pub(crate) async fn a_head_moved_back_over_its_rows_is_refused_and_put_back(backend: Backend) {
    use PastTheHead::*;
    for damage in [
        Kept,
        EntryGone,
        HashChanged,
        NewestCheckpointGone,
        CheckpointsGone,
    ] {
        let (db, store, seed, checkpoints) = ledger_of(backend, 12).await;
        let (_, file) = db.checkpoint_file();
        store.close().await;
        drop_guards(backend, &db).await;
        let back = &checkpoints[8];
        let mut edits = vec![format!(
            "UPDATE log_head SET size = 8, root = {}, checkpoint = {} WHERE id = 1",
            bytes_literal(backend, &back.root),
            text_literal(&back.note)
        )];
        match damage {
            Kept => {}
            EntryGone => edits.push("DELETE FROM log_entries WHERE idx = 10".into()),
            // The leaf hash of entry 9 (level 0, index 9).
            HashChanged => edits.extend([
                "DELETE FROM log_nodes WHERE id = 9".into(),
                format!(
                    "INSERT INTO log_nodes (id, hash) VALUES (9, {})",
                    bytes_literal(backend, &[0; 32])
                ),
            ]),
            NewestCheckpointGone => {
                edits.push("DELETE FROM log_checkpoints WHERE size = 12".into())
            }
            CheckpointsGone => edits.push("DELETE FROM log_checkpoints WHERE size > 8".into()),
        }
        for sql in &edits {
            super::raw_execute(&db.location, sql).await.unwrap();
        }
        std::fs::remove_file(&file).unwrap();

        let open = |options| SqlStore::open_with(&db.location, log_key_from_seed(seed), options);
        if damage == CheckpointsGone {
            let err = open(db.options()).await.unwrap_err();
            assert!(
                matches!(&err, StoreError::Corrupt(why) if why.starts_with(
                    "the database holds entries 8..=11 past its head of 8 that no checkpoint the log signed covers"
                )),
                "{err}"
            );
            continue;
        }
        let newest = if damage == NewestCheckpointGone {
            11
        } else {
            12
        };
        let failure = integrity_error(open(db.options()).await.unwrap_err());
        assert_eq!(failure.finding, Finding::WentBack);
        assert_eq!((failure.seen.size, failure.found_size), (newest, 8));
        assert_eq!(failure.seen.note, checkpoints[newest as usize].note);
        assert_eq!(failure.witness, Witness::Database);
        assert!(
            failure.to_string().contains(&format!(
                "the log's head went back from {newest} to 8 (the database still holds the checkpoint of size {newest} the log signed"
            )),
            "{failure}"
        );
        assert!(
            !file.exists(),
            "the file is not written from the moved head"
        );

        let read_only = OpenOptions {
            on_integrity_failure: OnIntegrityFailure::ReadOnly,
            ..db.options()
        };
        let store = open(read_only.clone()).await.unwrap();
        assert_eq!(
            store.checkpoint_file(),
            &CheckpointFileStatus::Unchecked { path: file.clone() }
        );
        // A check names it as the same failure.
        assert_eq!(
            integrity_error(store.check(|_| {}).await.unwrap_err()),
            failure
        );
        let acknowledged = store
            .acknowledge_integrity_failure(&failure, recovery_record(&failure))
            .await;
        let refused = match damage {
            EntryGone => Some("entries 8..12 past the head are not all stored"),
            HashChanged => Some(
                "the stored hash of subtree level 0 index 9 is not what the entries past the head give",
            ),
            NewestCheckpointGone => Some("the database holds entries 11..=11 past its head of 11"),
            _ => None,
        };
        if let Some(why) = refused {
            let err = acknowledged.unwrap_err();
            assert!(
                matches!(&err, StoreError::Corrupt(text) if text.starts_with(why)),
                "{damage:?}: {err}"
            );
            assert_eq!(store.integrity(), Some(failure));
            assert_eq!(
                store.size().await.unwrap(),
                8,
                "{damage:?}: nothing changed"
            );
            store.close().await;
            continue;
        }
        assert_eq!(acknowledged.unwrap().first_index, 12, "after the 12 kept");
        assert_eq!(store.integrity(), None);
        assert_eq!(store.check(|_| {}).await.unwrap().entries, 13);
        store.close().await;
        let store = open(db.options()).await.unwrap();
        assert_eq!(
            store.checkpoint_file(),
            &CheckpointFileStatus::Checked {
                path: file.clone(),
                size: 13
            }
        );
        store.append(Append::event(event(1, 1))).await.unwrap();
        store.close().await;
    }
}

pub(crate) async fn a_log_forked_while_stopped_is_refused_at_open(backend: Backend) {
    let (db, store, seed, checkpoints) = ledger_of(backend, 12).await;
    store.close().await;
    drop_guards(backend, &db).await;
    roll_back(backend, &db, &checkpoints[8]).await;
    let open = || SqlStore::open_with(&db.location, log_key_from_seed(seed), db.options());

    // Another history of the same size.
    other_writer_appends(&db, seed, 7, 4).await;
    let failure = integrity_error(open().await.unwrap_err());
    assert_eq!(failure.finding, Finding::Forked);
    assert_eq!((failure.seen.size, failure.found_size), (12, 12));
    // And grown past it.
    other_writer_appends(&db, seed, 7, 3).await;
    let failure = integrity_error(open().await.unwrap_err());
    assert!(
        matches!(failure.finding, Finding::NotAnExtension(_)),
        "{failure}"
    );
    assert_eq!((failure.seen.size, failure.found_size), (12, 15));
}

pub(crate) async fn the_checkpoint_file_is_a_lower_bound_and_recreated_when_missing(
    backend: Backend,
) {
    let (db, store, seed, checkpoints) = ledger_of(backend, 3).await;
    let (_, file) = db.checkpoint_file();
    let verifier = store.verifier().clone();
    store.close().await;
    assert_eq!(
        file_checkpoint(&file, &verifier).size,
        3,
        "written after commits"
    );
    let open = || SqlStore::open_with(&db.location, log_key_from_seed(seed), db.options());

    // Behind the head (a crash before the last write reached the disk): accepted, and
    // brought up to the head.
    std::fs::write(&file, &checkpoints[1].note).unwrap();
    let store = open().await.unwrap();
    assert_eq!(
        store.checkpoint_file(),
        &CheckpointFileStatus::Checked {
            path: file.clone(),
            size: 1
        }
    );
    assert_eq!(file_checkpoint(&file, store.verifier()).size, 3);
    store.close().await;

    // Missing, or empty (a crash can leave that): written from the head, and said so.
    for missing in [None, Some("")] {
        match missing {
            None => std::fs::remove_file(&file).unwrap(),
            Some(text) => std::fs::write(&file, text).unwrap(),
        }
        let store = open().await.unwrap();
        assert_eq!(
            store.checkpoint_file(),
            &CheckpointFileStatus::Recreated { path: file.clone() }
        );
        let head = store.size().await.unwrap();
        assert_eq!(file_checkpoint(&file, store.verifier()).size, head);
        store.append(Append::event(event(1, 0))).await.unwrap();
        store.close().await;
    }

    // Anything else is refused: it is not what custody writes.
    let log_key = log_key_from_seed(seed);
    let foreign = Checkpoint::open(&checkpoints[3].note, log_key.verifier())
        .unwrap()
        .sign(&common::log_key())
        .unwrap();
    for bad in [foreign.as_str(), "not a checkpoint\n"] {
        std::fs::write(&file, bad).unwrap();
        let err = open().await.unwrap_err();
        assert!(
            matches!(&err, StoreError::CheckpointFile { path, .. } if *path == file),
            "{err}"
        );
        assert!(err.to_string().contains("hint:"), "{err}");
    }
}

pub(crate) async fn the_head_checkpoint_signature_is_checked_at_open(backend: Backend) {
    let (db, store, seed, _) = ledger_of(backend, 5).await;
    let head = store.checkpoint().await.unwrap();
    store.close().await;
    // Same size, same root, same body: only the signature is wrong.
    for forged in forgeries(&head, &log_key_from_seed(seed)) {
        let sql = format!(
            "UPDATE log_head SET checkpoint = {} WHERE id = 1",
            text_literal(&forged)
        );
        super::raw_execute(&db.location, &sql).await.unwrap();
        let err = SqlStore::open_with(&db.location, log_key_from_seed(seed), db.options())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        assert!(
            err.to_string()
                .contains("the head checkpoint does not verify with the log key"),
            "{err}"
        );
    }
    let sql = format!(
        "UPDATE log_head SET checkpoint = {} WHERE id = 1",
        text_literal(&head.note)
    );
    super::raw_execute(&db.location, &sql).await.unwrap();
    SqlStore::open_with(&db.location, log_key_from_seed(seed), db.options())
        .await
        .unwrap();
}

pub(crate) async fn every_stored_checkpoint_signature_is_checked(backend: Backend) {
    let (db, store, seed, checkpoints) = ledger_of(backend, 10).await;
    drop_guards(backend, &db).await;
    for forged in forgeries(&checkpoints[5], &log_key_from_seed(seed)) {
        let sql = format!(
            "UPDATE log_checkpoints SET note = {} WHERE size = 5",
            text_literal(&forged)
        );
        super::raw_execute(&db.location, &sql).await.unwrap();
        let err = store.check(|_| {}).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        assert!(err.to_string().contains("stored checkpoint 5"), "{err}");
        let err = store.checkpoints(5, 1).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    }
    let sql = format!(
        "UPDATE log_checkpoints SET note = {} WHERE size = 5",
        text_literal(&checkpoints[5].note)
    );
    super::raw_execute(&db.location, &sql).await.unwrap();
    assert_eq!(store.check(|_| {}).await.unwrap().checkpoints, 11);
}

/// Two notes with `cp`'s body whose signature fails: one signed by another key of the log
/// key's name, and one with the log key's signature corrupted.
fn forgeries(cp: &SignedCheckpoint, log_key: &custody_crypto::note::NoteSigner) -> [String; 2] {
    let body = Checkpoint::open(&cp.note, log_key.verifier()).unwrap();
    let other_key = body.sign(&common::log_key()).unwrap();
    // The signature line is `— NAME BASE64` (4 bytes of key hash, 64 of signature); one
    // base64 digit well inside the signature changed.
    let (head, line) = cp.note.trim_end().rsplit_once('\n').unwrap();
    let (prefix, signature) = line.rsplit_once(' ').unwrap();
    let mut signature = signature.as_bytes().to_vec();
    signature[80] = if signature[80] == b'A' { b'B' } else { b'A' };
    let corrupted = format!(
        "{head}\n{prefix} {}\n",
        String::from_utf8(signature).unwrap()
    );
    assert_ne!(corrupted, cp.note);
    [other_key, corrupted]
}

/// A store opened while another process appends is never mistaken for a rollback: the
/// other writer moves its checkpoint file only after its commit, so the opener reads the
/// file before the head (read the other way round, a commit in between looked like the
/// head going back, and a CLI command next to a busy server was refused).
pub(crate) async fn opening_beside_a_busy_writer_is_never_a_rollback(backend: Backend) {
    let (db, store, seed, _) = ledger_of(backend, 1).await;
    let store = std::sync::Arc::new(store);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut appended = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store
                    .append(Append::event(event(1, appended)))
                    .await
                    .unwrap();
                appended += 1;
            }
            appended
        })
    };
    for _ in 0..30 {
        let other = SqlStore::open_with(&db.location, log_key_from_seed(seed), db.options())
            .await
            .unwrap_or_else(|e| panic!("opened beside a busy writer: {e}"));
        assert_eq!(other.readiness().await, Readiness::Ready);
        other.close().await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(writer.await.unwrap() > 0, "the writer never appended");
}
