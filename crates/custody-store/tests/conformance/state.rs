//! Contracts 1 and 7: state writes commit with their events or not at all (a failed
//! precondition refuses its whole append and spares the rest of the batch; the later of two
//! writes to a record holds; a null write removes it), and an idempotency key replays the
//! first result or, with another fingerprint, is refused.

use std::sync::Arc;

use custody_store::{Append, Expect, IdempotencyKey, Store, StoreError};

use super::{Backend, create, event, write};

pub(crate) async fn state_changes_commit_with_their_events(backend: Backend) {
    let (_db, store, _) = create(backend).await;
    let a = store
        .append(Append {
            events: vec![event(0, 0)],
            state: vec![write(
                "promotion",
                "p1",
                serde_json::json!({"status": "pending"}),
                Expect::Absent,
            )],
            idempotency: None,
        })
        .await
        .unwrap();
    let rec = store.state("promotion", "p1").await.unwrap().unwrap();
    assert_eq!((rec.version, rec.log_index), (1, a.first_index));
    assert_eq!(rec.value.to_string(), r#"{"status":"pending"}"#);

    let b = store
        .append(Append {
            events: vec![event(0, 1)],
            state: vec![write(
                "promotion",
                "p1",
                serde_json::json!({"status": "approved"}),
                Expect::Version(1),
            )],
            idempotency: None,
        })
        .await
        .unwrap();
    let rec = store.state("promotion", "p1").await.unwrap().unwrap();
    assert_eq!((rec.version, rec.log_index), (2, b.first_index));
    assert_eq!(rec.value.to_value()["status"], "approved");

    for key in ["p2", "p3", "p4"] {
        store
            .append(Append {
                events: vec![event(2, 0)],
                state: vec![write("promotion", key, serde_json::json!({}), Expect::Any)],
                idempotency: None,
            })
            .await
            .unwrap();
    }
    let page = store.states("promotion", "p1", 2).await.unwrap();
    let keys: Vec<_> = page.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["p2", "p3"]);
    assert!(store.state("promotion", "nope").await.unwrap().is_none());
    assert!(store.states("approval", "", 10).await.unwrap().is_empty());

    // Read together: each key asked, in order, present or not, the same as one by one;
    // more keys than one statement reads, and a key asked twice.
    let mut keys = vec![("promotion", "p3"), ("approval", "p1"), ("promotion", "p1")];
    let filler: Vec<String> = (0..70).map(|i| format!("x{i}")).collect();
    keys.extend(filler.iter().map(|k| ("promotion", k.as_str())));
    keys.push(("promotion", "p4"));
    keys.push(("promotion", "p3"));
    let together = store.states_by_key(&keys).await.unwrap();
    assert_eq!(together.len(), keys.len());
    for ((kind, key), got) in keys.iter().zip(&together) {
        assert_eq!(got, &store.state(kind, key).await.unwrap(), "{kind}/{key}");
    }
    let present: Vec<_> = together.iter().flatten().map(|r| r.key.as_str()).collect();
    assert_eq!(present, ["p3", "p1", "p4", "p3"]);
    assert!(store.states_by_key(&[]).await.unwrap().is_empty());
}

pub(crate) async fn a_failed_precondition_writes_nothing_and_spares_the_batch(backend: Backend) {
    let (_db, store, _) = create(backend).await;
    let store = Arc::new(store);
    store
        .append(Append {
            events: vec![event(0, 0)],
            state: vec![write(
                "env",
                "prod",
                serde_json::json!({"release": "a"}),
                Expect::Absent,
            )],
            idempotency: None,
        })
        .await
        .unwrap();

    // Many appends race on one record with the same precondition: exactly one wins, the
    // others are refused whole, and appends without preconditions all land.
    let mut tasks = Vec::new();
    for w in 0..20u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let contested = store.append(Append {
                events: vec![event(w, 1), event(w, 2)],
                state: vec![
                    write(
                        "env",
                        &format!("side-{w}"),
                        serde_json::json!({}),
                        Expect::Absent,
                    ),
                    write(
                        "env",
                        "prod",
                        serde_json::json!({"release": w}),
                        Expect::Version(1),
                    ),
                ],
                idempotency: None,
            });
            let free = store.append(Append::event(event(w, 3)));
            (contested.await, free.await)
        }));
    }
    let mut winners = 0;
    for t in tasks {
        let (contested, free) = t.await.unwrap();
        free.unwrap();
        match contested {
            Ok(_) => winners += 1,
            Err(StoreError::Conflict {
                kind,
                key,
                expected,
                found,
            }) => {
                assert_eq!((kind.as_str(), key.as_str()), ("env", "prod"));
                assert_eq!((expected, found), (Expect::Version(1), Some(2)));
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(winners, 1);
    let size = store.checkpoint().await.unwrap().size;
    assert_eq!(size, 1 + 2 + 20, "a refused append left events behind");
    let sides = store.states("env", "side-", 100).await.unwrap();
    assert_eq!(sides.len(), 1, "a refused append left state behind");
    let prod = store.state("env", "prod").await.unwrap().unwrap();
    assert_eq!(prod.version, 2);
    // The state's log index points at the winner's events.
    let entry = &store
        .entries(prod.log_index, prod.log_index + 1)
        .await
        .unwrap()[0];
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&entry.leaf).unwrap()["writer"],
        prod.value.to_value()["release"]
    );
}

pub(crate) async fn idempotent_appends_replay_and_conflicts_are_refused(backend: Backend) {
    let (_db, store, _) = create(backend).await;
    let store = Arc::new(store);
    let key = |k: &str, f: u8| {
        Some(IdempotencyKey {
            key: k.into(),
            fingerprint: [f; 32],
        })
    };
    let promote_x = || Append {
        events: vec![event(0, 0)],
        state: vec![write(
            "promotion",
            "x",
            serde_json::json!({}),
            Expect::Absent,
        )],
        idempotency: key("promote-x", 1),
    };
    let first = store.append(promote_x()).await.unwrap();
    assert!(!first.replayed);
    // The replay would fail its precondition if it ran again; it does not run.
    let again = store.append(promote_x()).await.unwrap();
    assert_eq!(
        again,
        custody_store::Appended {
            replayed: true,
            ..first
        }
    );
    let conflict = store
        .append(Append {
            events: vec![event(9, 9)],
            idempotency: key("promote-x", 2),
            ..Append::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(conflict, StoreError::IdempotencyConflict(ref k) if k == "promote-x"));
    assert!(conflict.to_string().contains("hint:"));

    // Concurrent retries of one request (same key, likely in one batch) converge.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .append(Append {
                    events: vec![event(5, 5)],
                    idempotency: key("retry-storm", 7),
                    ..Append::default()
                })
                .await
                .unwrap()
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| !r.replayed).count(), 1);
    assert!(
        results
            .iter()
            .all(|r| r.first_index == results[0].first_index)
    );
    assert_eq!(store.checkpoint().await.unwrap().size, 2);
}

pub(crate) async fn a_record_written_twice_in_a_batch_keeps_the_later_write(backend: Backend) {
    let (_db, store, _) = create(backend).await;
    // Twice in one append, and by many appends that share group commits.
    let twice = Append {
        events: vec![event(0, 0)],
        state: vec![
            write(
                "env",
                "prod",
                serde_json::json!({"n": "first"}),
                Expect::Absent,
            ),
            write(
                "env",
                "prod",
                serde_json::json!({"n": "second"}),
                Expect::Version(1),
            ),
        ],
        idempotency: None,
    };
    store.append(twice).await.unwrap();
    let rec = store.state("env", "prod").await.unwrap().unwrap();
    assert_eq!(
        (rec.version, rec.value.to_value()["n"].clone()),
        (2, "second".into())
    );
    let store = Arc::new(store);
    let appends = (0..40u64).map(|w| {
        let store = store.clone();
        async move {
            store
                .append(Append {
                    events: vec![event(w, 1)],
                    state: vec![write(
                        "env",
                        "prod",
                        serde_json::json!({"n": w}),
                        Expect::Any,
                    )],
                    idempotency: None,
                })
                .await
                .unwrap()
        }
    });
    let results = futures_util::future::join_all(appends).await;
    let last = results.iter().max_by_key(|a| a.first_index).unwrap();
    let rec = store.state("env", "prod").await.unwrap().unwrap();
    assert_eq!(rec.version, 42);
    assert_eq!(
        rec.log_index, last.first_index,
        "the state is not the latest write's"
    );
    let entry = &store
        .entries(rec.log_index, rec.log_index + 1)
        .await
        .unwrap()[0];
    let writer =
        serde_json::from_slice::<serde_json::Value>(&entry.leaf).unwrap()["writer"].clone();
    assert_eq!(rec.value.to_value()["n"], writer);
}

pub(crate) async fn a_null_write_removes_a_record_with_its_event(backend: Backend) {
    let (_db, store, _) = create(backend).await;
    let put = |key: &str, value: serde_json::Value, expect: Expect| Append {
        events: vec![event(7, 0)],
        state: vec![write("pending", key, value, expect)],
        ..Append::default()
    };
    store
        .append(put("build/p1", serde_json::json!({"n": 1}), Expect::Absent))
        .await
        .unwrap();
    store
        .append(put("build/p2", serde_json::json!({"n": 2}), Expect::Absent))
        .await
        .unwrap();
    // Removing needs the version it was read at, like any write.
    let stale = store
        .append(put("build/p1", serde_json::Value::Null, Expect::Version(9)))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
    let before = store.size().await.unwrap();
    store
        .append(put("build/p1", serde_json::Value::Null, Expect::Version(1)))
        .await
        .unwrap();
    assert_eq!(
        store.size().await.unwrap(),
        before + 1,
        "the removal's event"
    );
    assert!(store.state("pending", "build/p1").await.unwrap().is_none());
    let left: Vec<String> = store
        .states("pending", "", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(left, ["build/p2"]);
    // Gone means absent: it can be created again, from version 1.
    store
        .append(put("build/p1", serde_json::json!({"n": 3}), Expect::Absent))
        .await
        .unwrap();
    assert_eq!(
        store
            .state("pending", "build/p1")
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
    // Written and removed in one append: the later write (the removal) holds.
    store
        .append(Append {
            events: vec![event(7, 1)],
            state: vec![
                write(
                    "pending",
                    "build/p3",
                    serde_json::json!({"n": 4}),
                    Expect::Absent,
                ),
                write(
                    "pending",
                    "build/p3",
                    serde_json::Value::Null,
                    Expect::Version(1),
                ),
            ],
            ..Append::default()
        })
        .await
        .unwrap();
    assert!(store.state("pending", "build/p3").await.unwrap().is_none());
}
