//! Contract 13: witness cosignatures are kept once per witness and checkpoint, forever, and
//! only on checkpoints the log stored.

use custody_store::{Append, SqlStore, Store, StoreError};

use super::{Backend, create, event, raw_execute};

pub(crate) async fn cosignatures_are_kept_once_per_witness_and_never_rewritten(backend: Backend) {
    let (db, store, _) = create(backend).await;
    for i in 0..3 {
        store.append(Append::event(event(0, i))).await.unwrap();
    }
    let sizes: Vec<u64> = store
        .checkpoints(1, 10)
        .await
        .unwrap()
        .iter()
        .map(|c| c.size)
        .collect();
    assert_eq!(sizes, [1, 2, 3], "one checkpoint per awaited append");

    assert!(store.add_cosignature(2, "w1", "— w1 first").await.unwrap());
    assert!(
        !store.add_cosignature(2, "w1", "— w1 second").await.unwrap(),
        "a second line by the same witness on the same checkpoint is not kept"
    );
    assert!(store.add_cosignature(2, "w2", "— w2 line").await.unwrap());
    assert!(
        store
            .add_cosignature(3, "w1", "— w1 on three")
            .await
            .unwrap()
    );
    let on_two: Vec<(String, String)> = store
        .cosignatures(2)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.witness, c.line))
        .collect();
    assert_eq!(
        on_two,
        [
            ("w1".into(), "— w1 first".into()),
            ("w2".into(), "— w2 line".into())
        ]
    );
    assert!(store.cosignatures(1).await.unwrap().is_empty());

    let both = ["w1".to_owned(), "w2".to_owned()];
    assert_eq!(store.latest_cosigned(&both, 2).await.unwrap(), Some(2));
    assert_eq!(store.latest_cosigned(&both, 1).await.unwrap(), Some(3));
    assert_eq!(
        store.latest_cosigned(&["w3".to_owned()], 1).await.unwrap(),
        None
    );
    assert!(matches!(
        store.latest_cosigned(&both, 0).await,
        Err(StoreError::OutOfRange(_))
    ));

    // Only on a stored checkpoint, with a name and a bounded line.
    for (size, witness, line) in [
        (99, "w1", "— w1 x"),
        (2, "", "— x"),
        (2, "w9", &"x".repeat(5000)[..]),
    ] {
        let err = store
            .add_cosignature(size, witness, line)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::OutOfRange(_)), "{err}");
    }
    for sql in [
        "UPDATE log_cosignatures SET line = 'forged'",
        "DELETE FROM log_cosignatures",
    ] {
        let err = raw_execute(&db.location, sql).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let reader = SqlStore::open_read_only(&db.location, store.verifier())
        .await
        .unwrap();
    assert!(matches!(
        reader.add_cosignature(1, "w1", "— w1 x").await,
        Err(StoreError::ReadOnly)
    ));
    assert_eq!(
        reader.cosignatures(2).await.unwrap().len(),
        2,
        "kept for other processes"
    );
}
