//! Contract 11: history lost while no store ran (rolled back, forked, or the head row
//! moved back over the rows the database keeps) is refused at open, by the checkpoint file
//! or the database's own newest checkpoint; the file is a lower bound of the head and
//! rewritten when missing; every checkpoint signature opening and the full check rely on
//! is checked; and opening beside a busy writer is never mistaken for a rollback.

use custody_ledger::Checkpoint;
use custody_store::{
    Append, CheckpointFileStatus, Finding, OnIntegrityFailure, OpenOptions, Readiness,
    SignedCheckpoint, SqlStore, Store, StoreError, Witness,
};

use super::{
    Backend, bytes_literal, drop_guards, event, file_checkpoint, integrity_error, ledger_of,
    log_key_from_seed, other_writer_appends, recovery_record, roll_back, text_literal,
};
use crate::common;

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
