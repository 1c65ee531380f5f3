//! Contract 14: the log's own key is handed over by `rotate_log_key` alone (the hand-over
//! checkpoint signed by the old and the new key), and every open follows the hand-overs
//! the ledger proves, never what the search index merely says.

use custody_crypto::note::NoteSigner;
use custody_ledger::{Checkpoint, LOG_KEY_ROTATED, LogKeyRotation};
use custody_model::CanonicalJson;
use custody_store::{Append, Readiness, SqlStore, Store, StoreError};

use super::{
    Backend, create, event, log_key, log_key_from_seed, open_with, random_seed, raw_execute,
};

/// The `log.key_rotated` event handing `old` over to `new` at `size` entries.
fn rotation(old: &NoteSigner, new: &NoteSigner, size: u64) -> CanonicalJson {
    let mut fields =
        serde_json::to_value(LogKeyRotation::new(old.verifier(), new.verifier(), size)).unwrap();
    fields["type"] = LOG_KEY_ROTATED.into();
    fields["at"] = "2026-11-27T12:00:00Z".into();
    fields["actor"] = "local:ops".into();
    CanonicalJson::from_value(&fields).unwrap()
}

/// A ledger of three events, then handed over from its first key (`seed`) to a second
/// (`next`) at four entries: the store, reopened with the second key.
async fn rotated(backend: Backend) -> (super::common::TestDb, [u8; 32], [u8; 32]) {
    let (db, store, seed) = create(backend).await;
    for i in 0..3 {
        store.append(Append::event(event(0, i))).await.unwrap();
    }
    let (old, next) = (log_key_from_seed(seed), random_seed());
    let new = log_key_from_seed(next);
    let handover = store
        .rotate_log_key(new, rotation(&old, &log_key_from_seed(next), 4))
        .await
        .unwrap();
    assert_eq!(handover.size, 4);
    (db, seed, next)
}

pub(crate) async fn the_log_key_is_handed_over_with_both_signatures_and_followed_at_open(
    backend: Backend,
) {
    let (db, seed, next) = rotated(backend).await;
    let (old, new) = (log_key_from_seed(seed), log_key_from_seed(next));
    // Right after the hand-over its checkpoint is the head, and the retired key signed it
    // too: still the retired key opens nothing (it would sign after its hand-over).
    let early = open_with(&db.location, seed).await.unwrap_err();
    assert!(matches!(early, StoreError::RetiredKey { .. }), "{early}");
    let store = open_with(&db.location, next).await.unwrap();
    assert_eq!(store.log_keys().handovers().collect::<Vec<_>>(), [4]);
    assert_eq!(store.log_keys().first(), old.verifier());
    assert_eq!(store.verifier(), new.verifier());
    // The hand-over checkpoint verifies with each key alone; the ones before with the
    // old key only, the ones after with the new key only.
    let handover = store.checkpoints(4, 1).await.unwrap().pop().unwrap();
    assert_eq!(handover.size, 4);
    for key in [&old, &new] {
        Checkpoint::open(&handover.note, key.verifier()).unwrap();
    }
    let before = store.checkpoints(3, 1).await.unwrap().pop().unwrap();
    assert!(Checkpoint::open(&before.note, old.verifier()).is_ok());
    assert!(Checkpoint::open(&before.note, new.verifier()).is_err());
    store.append(Append::event(event(0, 4))).await.unwrap();
    let after = store.checkpoint().await.unwrap();
    assert_eq!(after.size, 5);
    assert!(Checkpoint::open(&after.note, new.verifier()).is_ok());
    assert!(Checkpoint::open(&after.note, old.verifier()).is_err());
    let report = store.check(|_| {}).await.unwrap();
    assert_eq!(report.entries, 5);
    store.close().await;

    // Read-only readers follow too; the retired key is refused by name, another log's
    // key as a mismatch.
    let reader = SqlStore::open_read_only(&db.location, new.verifier())
        .await
        .unwrap();
    assert_eq!(reader.checkpoint().await.unwrap().size, 5);
    reader.close().await;
    for retired in [
        open_with(&db.location, seed).await.unwrap_err(),
        SqlStore::open_read_only(&db.location, old.verifier())
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(retired, StoreError::RetiredKey { at: 4, .. }),
            "{retired}"
        );
        let said = retired.to_string();
        assert!(said.contains("is retired"), "{said}");
        assert!(said.contains(&new.verifier().to_text()), "{said}");
    }
    let other = SqlStore::open(&db.location, log_key()).await.unwrap_err();
    assert!(matches!(other, StoreError::KeyMismatch { .. }), "{other}");
}

pub(crate) async fn a_hand_over_not_naming_itself_is_refused_and_writes_nothing(backend: Backend) {
    let (db, store, seed) = create(backend).await;
    store.append(Append::event(event(0, 0))).await.unwrap();
    let old = log_key_from_seed(seed);
    let next = random_seed();
    // An ordinary append cannot carry a hand-over (it would have no checkpoint of its own).
    let smuggled = store
        .append(Append::event(rotation(&old, &log_key_from_seed(next), 2)))
        .await
        .unwrap_err();
    assert!(
        matches!(smuggled, StoreError::InvalidInput(_)),
        "{smuggled}"
    );
    assert!(smuggled.to_string().contains(LOG_KEY_ROTATED), "{smuggled}");
    store.close().await;

    let wrong: [(&str, CanonicalJson); 4] = [
        (
            "the wrong size",
            rotation(&old, &log_key_from_seed(next), 7),
        ),
        ("another successor", rotation(&old, &log_key(), 2)),
        (
            "another old key",
            rotation(&log_key(), &log_key_from_seed(next), 2),
        ),
        ("not a hand-over", event(0, 1)),
    ];
    for (what, event) in wrong {
        let store = open_with(&db.location, seed).await.unwrap();
        let err = store
            .rotate_log_key(log_key_from_seed(next), event)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput(_)), "{what}: {err}");
    }
    // Nothing was written: the old key still opens it, at the same size.
    let store = open_with(&db.location, seed).await.unwrap();
    assert_eq!(store.checkpoint().await.unwrap().size, 1);
    assert_eq!(store.log_keys().handovers().count(), 0);
    let refused = open_with(&db.location, next).await.unwrap_err();
    assert!(
        matches!(refused, StoreError::KeyMismatch { .. }),
        "{refused}"
    );
}

pub(crate) async fn the_index_only_finds_hand_overs_the_ledger_proves(backend: Backend) {
    let (db, seed, next) = rotated(backend).await;
    let term = format!("type:{LOG_KEY_ROTATED}");
    // A row naming an ordinary event as a hand-over: the leaf is no hand-over, so the
    // open refuses the ledger rather than skip it.
    raw_execute(
        &db.location,
        &format!("INSERT INTO log_terms (term, idx) VALUES ('{term}', 1)"),
    )
    .await
    .unwrap();
    let err = open_with(&db.location, next).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("hand-over"), "{err}");
    raw_execute(
        &db.location,
        &format!("DELETE FROM log_terms WHERE term = '{term}' AND idx = 1"),
    )
    .await
    .unwrap();
    open_with(&db.location, next).await.unwrap().close().await;

    // The real hand-over's row taken out: the history stops at the first key, so the
    // successor is not this ledger's key and nothing opens it.
    raw_execute(
        &db.location,
        &format!("DELETE FROM log_terms WHERE term = '{term}' AND idx = 3"),
    )
    .await
    .unwrap();
    let err = open_with(&db.location, next).await.unwrap_err();
    assert!(matches!(err, StoreError::KeyMismatch { .. }), "{err}");
    // Nor does the retired key: the head's own leaf is the hand-over its checkpoint ends
    // with (signed by both keys), and the index no longer lists it.
    let err = open_with(&db.location, seed).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt(_)) && err.to_string().contains("does not list"),
        "{err}"
    );
}

pub(crate) async fn a_hand_over_checkpoint_without_both_signatures_is_refused(backend: Backend) {
    let (db, seed, next) = rotated(backend).await;
    let store = open_with(&db.location, next).await.unwrap();
    let handover = store.checkpoints(4, 1).await.unwrap().pop().unwrap();
    store.close().await;
    // The same checkpoint signed by the new key alone (the old key's line gone).
    let new = log_key_from_seed(next);
    let stripped = Checkpoint::open(&handover.note, new.verifier())
        .unwrap()
        .sign(&new)
        .unwrap();
    assert!(Checkpoint::open(&stripped, log_key_from_seed(seed).verifier()).is_err());
    let guard = match backend {
        Backend::Sqlite => "DROP TRIGGER log_checkpoints_append_only_u",
        Backend::Postgres => "DROP TRIGGER log_checkpoints_append_only ON log_checkpoints",
    };
    raw_execute(&db.location, guard).await.unwrap();
    raw_execute(
        &db.location,
        &format!(
            "UPDATE log_checkpoints SET note = '{}' WHERE size = 4",
            stripped.replace('\'', "''")
        ),
    )
    .await
    .unwrap();
    let err = open_with(&db.location, next).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("hand-over at 4"), "{err}");
}

pub(crate) async fn a_writer_still_on_the_old_key_is_refused_as_retired(backend: Backend) {
    let (db, running, seed) = create(backend).await;
    running.append(Append::event(event(0, 0))).await.unwrap();
    // Another process rotates the key while this writer runs on the old one.
    let (old, next) = (log_key_from_seed(seed), random_seed());
    let rotating = open_with(&db.location, seed).await.unwrap();
    rotating
        .rotate_log_key(
            log_key_from_seed(next),
            rotation(&old, &log_key_from_seed(next), 2),
        )
        .await
        .unwrap();
    let err = running
        .append(Append::event(event(0, 1)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::RetiredKey { at: 2, .. }), "{err}");
    assert!(
        running.integrity().is_none(),
        "a rotation is not lost history"
    );
    // Not ready from then on (a load balancer stops sending it writes), and it stays so.
    assert!(
        matches!(running.readiness().await, Readiness::Retired(_)),
        "{}",
        running.readiness().await
    );
    running.close().await;
    // Nothing was signed by the old key after the hand-over: the new key opens it.
    let store = open_with(&db.location, next).await.unwrap();
    assert_eq!(store.checkpoint().await.unwrap().size, 2);
    store.check(|_| {}).await.unwrap();
}
