//! Contract 10: history lost under a running store (rolled back, forked by another writer,
//! or a head moved without the log key or its checkpoint) turns it read-only, signs
//! nothing, and is cleared only by acknowledging that very failure.

use custody_ledger::Checkpoint;
use custody_store::{Append, Finding, Readiness, SqlStore, Store, StoreError, Witness};

use super::{
    Backend, check_checkpoint_chain, drop_guards, event, file_checkpoint, integrity_error,
    ledger_of, log_key_from_seed, other_writer_appends, recovery_record, roll_back,
    stored_checkpoints, text_literal,
};
use crate::common;

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

/// A checkpoint file that cannot be written (here a directory stands at its path) leaves
/// the commits standing and says why (`SqlStore::checkpoint_file_error`); the next write
/// after the cause is gone catches the file up with the head.
pub(crate) async fn a_checkpoint_file_that_cannot_be_written_is_said_and_catches_up(
    backend: Backend,
) {
    let (db, store, _, _) = ledger_of(backend, 2).await;
    let (_, file) = db.checkpoint_file();
    let verifier = store.verifier().clone();
    assert_eq!(store.checkpoint_file_error(), None);
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    store.append(Append::event(event(1, 0))).await.unwrap();
    let error = wait_for(|| store.checkpoint_file_error()).await;
    assert!(error.contains(&file.display().to_string()), "{error}");
    assert_eq!(store.size().await.unwrap(), 3, "the commit stands");

    std::fs::remove_dir(&file).unwrap();
    store.append(Append::event(event(1, 1))).await.unwrap();
    for _ in 0..200 {
        if store.checkpoint_file_error().is_none() && file.is_file() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(store.checkpoint_file_error(), None);
    assert_eq!(file_checkpoint(&file, &verifier).size, 4);
}

/// What `probe` returns once it returns something, within two seconds.
async fn wait_for(probe: impl Fn() -> Option<String>) -> String {
    for _ in 0..200 {
        if let Some(found) = probe() {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("nothing within two seconds")
}
