//! Contracts 6 and 9: the schema refuses to rewrite history, rows changed behind its back
//! are found (by the full check, or at open for the tree's right edge), and a commit that
//! fails at any point leaves the log and the state agreeing (an unknown outcome named as
//! such), with a retry converging.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use custody_store::{
    Append, Expect, FaultInjector, FaultPoint, IdempotencyKey, OpenOptions, SqlStore, Store,
    StoreError,
};

use super::{
    Backend, check_checkpoint_chain, create, event, log_key_from_seed, open_with, raw_execute,
    recompute, write,
};
use crate::common::{self, bytes_literal};

pub(crate) async fn the_schema_refuses_to_rewrite_history(backend: Backend) {
    let (db, store, _) = create(backend).await;
    for i in 0..4 {
        store.append(Append::event(event(0, i))).await.unwrap();
    }
    for sql in [
        "UPDATE log_entries SET leaf = leaf WHERE idx = 1",
        "DELETE FROM log_entries WHERE idx = 3",
        "UPDATE log_nodes SET hash = hash",
        "DELETE FROM log_checkpoints",
        "UPDATE log_head SET size = 1",
        "DELETE FROM log_head",
    ] {
        let err = raw_execute(&db.location, sql).await.unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("append-only") || msg.contains("head"),
            "{sql}: {msg}"
        );
    }
    assert_eq!(store.checkpoint().await.unwrap().size, 4);
    store.check(|_| {}).await.unwrap();
}

pub(crate) async fn tampering_is_found_by_open_and_check(backend: Backend) {
    let (db, store, seed) = create(backend).await;
    for i in 0..10 {
        store.append(Append::event(event(0, i))).await.unwrap();
    }
    store.close().await;
    // An intruder drops the guard and rewrites one leaf's JSON.
    let drop_guard = match backend {
        Backend::Sqlite => "DROP TRIGGER log_entries_append_only_u",
        Backend::Postgres => "DROP TRIGGER log_entries_append_only ON log_entries",
    };
    raw_execute(&db.location, drop_guard).await.unwrap();
    let forged = common::event(0, 99);
    let sql = format!(
        "UPDATE log_entries SET leaf = {} WHERE idx = 4",
        bytes_literal(backend, forged.as_bytes())
    );
    assert_eq!(raw_execute(&db.location, &sql).await.unwrap(), 1);
    // The head still verifies (leaves are only read by a full check)…
    let store = open_with(&db.location, seed).await.unwrap();
    // …and the full check names the damage.
    let err = store.check(|_| {}).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("level 0 index 4"), "{err}");
    store.close().await;

    // Damage to the tree's right edge is found as soon as the log is opened.
    let drop_guard = match backend {
        Backend::Sqlite => "DROP TRIGGER log_nodes_append_only_u",
        Backend::Postgres => "DROP TRIGGER log_nodes_append_only ON log_nodes",
    };
    raw_execute(&db.location, drop_guard).await.unwrap();
    // Level 3, index 0 covers leaves 0..8, part of the edge of a 10-leaf tree.
    let sql = format!("UPDATE log_nodes SET hash = hash WHERE id = {}", 3i64 << 56);
    raw_execute(&db.location, &sql).await.unwrap();
    let zero = format!(
        "UPDATE log_nodes SET hash = {} WHERE id = {}",
        bytes_literal(backend, &[0; 32]),
        3i64 << 56
    );
    raw_execute(&db.location, &zero).await.unwrap();
    let err = open_with(&db.location, seed).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("signed checkpoint"), "{err}");
}

/// Fails the commit at one point, a given number of times.
struct FailAt {
    point: FaultPoint,
    remaining: AtomicUsize,
}

impl FaultInjector for FailAt {
    fn fail_at(&self, point: FaultPoint) -> bool {
        point == self.point
            && self
                .remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
    }
}

pub(crate) async fn faults_anywhere_leave_log_and_state_agreeing(backend: Backend) {
    for point in FaultPoint::ALL {
        let (db, store, seed) = create(backend).await;
        store.append(Append::event(event(0, 0))).await.unwrap();
        store.close().await;
        let faults = Arc::new(FailAt {
            point,
            remaining: AtomicUsize::new(1),
        });
        let store = SqlStore::open_with(
            &db.location,
            log_key_from_seed(seed),
            OpenOptions {
                faults: Some(faults),
                ..OpenOptions::default()
            },
        )
        .await
        .unwrap();
        let request = || Append {
            events: vec![event(1, 0), event(1, 1)],
            state: vec![write(
                "promotion",
                "p",
                serde_json::json!({"n": 1}),
                Expect::Absent,
            )],
            idempotency: Some(IdempotencyKey {
                key: "k".into(),
                fingerprint: [3; 32],
            }),
        };
        let err = store.append(request()).await.unwrap_err();
        let committed = point == FaultPoint::AfterCommit;
        if committed {
            assert!(
                matches!(err, StoreError::OutcomeUnknown(_)),
                "{point:?}: {err}"
            );
        } else {
            assert!(matches!(err, StoreError::Injected(_)), "{point:?}: {err}");
        }
        // The log and the state agree: both have the append, or neither has.
        let size = store.checkpoint().await.unwrap().size;
        let state = store.state("promotion", "p").await.unwrap();
        if committed {
            assert_eq!(size, 3, "{point:?}");
            assert_eq!(state.unwrap().log_index, 1, "{point:?}");
        } else {
            assert_eq!(
                size, 1,
                "{point:?}: events written although the commit failed"
            );
            assert!(
                state.is_none(),
                "{point:?}: state written although the commit failed"
            );
        }
        // Retrying converges (a replay if it had committed), and the log stays sound.
        let retry = store.append(request()).await.unwrap();
        assert_eq!(
            (retry.first_index, retry.replayed),
            (1, committed),
            "{point:?}"
        );
        store.append(Append::event(event(2, 0))).await.unwrap();
        let (tree, _) = recompute(&store).await;
        let cp = store.checkpoint().await.unwrap();
        assert_eq!((cp.size, cp.root), (4, tree.root(4).unwrap()), "{point:?}");
        store.check(|_| {}).await.unwrap();
        check_checkpoint_chain(&store).await;
    }
}
