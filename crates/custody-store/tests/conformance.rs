//! The Store conformance suite: every contract clause of `custody_store::Store`, run
//! unchanged on SQLite and on a real PostgreSQL server (each test in its own database).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

#[path = "conformance/blobs.rs"]
mod blobs;
mod common;
#[path = "conformance/cosignatures.rs"]
mod cosignatures;
#[path = "conformance/history.rs"]
mod history;
#[path = "conformance/log_keys.rs"]
mod log_keys;
#[path = "conformance/storage.rs"]
mod storage;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{
    Backend, check_checkpoint_chain, event, json, log_key, log_key_from_seed, now, random_seed,
    recompute,
};
use custody_ledger::{leaf_hash, verify_inclusion};
use custody_store::{
    Append, Expect, FaultInjector, FaultPoint, IdempotencyKey, OpenOptions, SqlStore, StateWrite,
    Store, StoreError,
};

use blobs::*;
use cosignatures::*;
use history::*;
use log_keys::*;
use storage::*;

/// Generates one `#[tokio::test]` per suite function per backend.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

conformance!(
    a_new_log_has_a_signed_empty_checkpoint,
    appends_get_dense_indices_and_provable_inclusion,
    concurrent_appenders_form_one_linear_log_with_group_commit,
    two_writers_on_one_database_never_fork,
    state_changes_commit_with_their_events,
    a_failed_precondition_writes_nothing_and_spares_the_batch,
    idempotent_appends_replay_and_conflicts_are_refused,
    bad_requests_are_refused_and_change_nothing,
    reopening_continues_the_same_log,
    the_ledger_is_never_recreated_or_opened_with_another_key,
    the_schema_refuses_to_rewrite_history,
    tampering_is_found_by_open_and_check,
    faults_anywhere_leave_log_and_state_agreeing,
    a_read_only_store_refuses_appends,
    group_commit_respects_its_batch_bound,
    a_record_written_twice_in_a_batch_keeps_the_later_write,
    the_access_log_is_append_only_and_ordered,
    the_access_log_keeps_every_row_of_a_batch_of_any_size,
    the_access_log_keeps_each_principals_latest_use,
    a_null_write_removes_a_record_with_its_event,
    the_index_finds_every_entry_naming_its_terms,
    an_older_ledger_is_indexed_when_a_writer_opens_it,
    a_log_rolled_back_under_a_running_store_turns_it_read_only,
    a_fork_under_running_stores_is_refused,
    a_head_moved_without_the_log_key_is_refused,
    a_head_size_moved_without_its_checkpoint_fails_the_check,
    a_log_rolled_back_while_stopped_is_refused_at_open,
    a_log_forked_while_stopped_is_refused_at_open,
    a_head_moved_back_over_its_rows_is_refused_and_put_back,
    the_checkpoint_file_is_a_lower_bound_and_recreated_when_missing,
    opening_beside_a_busy_writer_is_never_a_rollback,
    the_head_checkpoint_signature_is_checked_at_open,
    every_stored_checkpoint_signature_is_checked,
    every_connection_commits_durably,
    storage_faults_are_transient,
    cosignatures_are_kept_once_per_witness_and_never_rewritten,
    blobs_are_content_addressed_and_kept_once,
    bad_blobs_are_refused_and_change_nothing,
    blobs_are_write_once_and_damage_is_found,
    the_log_key_is_handed_over_with_both_signatures_and_followed_at_open,
    a_hand_over_not_naming_itself_is_refused_and_writes_nothing,
    the_index_only_finds_hand_overs_the_ledger_proves,
    a_hand_over_checkpoint_without_both_signatures_is_refused,
    a_writer_still_on_the_old_key_is_refused_as_retired,
);

async fn create(backend: Backend) -> (common::TestDb, SqlStore, [u8; 32]) {
    let db = backend.fresh().await;
    let seed = random_seed();
    let store = SqlStore::create(&db.location, log_key_from_seed(seed), now())
        .await
        .unwrap();
    (db, store, seed)
}

fn write(kind: &str, key: &str, value: serde_json::Value, expect: Expect) -> StateWrite {
    StateWrite {
        kind: kind.into(),
        key: key.into(),
        value: json(value),
        expect,
    }
}

async fn a_new_log_has_a_signed_empty_checkpoint(backend: Backend) {
    let (_db, store, _) = create(backend).await;
    let cp = store.checkpoint().await.unwrap();
    assert_eq!(cp.size, 0);
    assert_eq!(store.size().await.unwrap(), 0);
    assert_eq!(cp.root, custody_ledger::EMPTY_ROOT);
    let opened = custody_ledger::Checkpoint::open(&cp.note, store.verifier()).unwrap();
    assert_eq!(opened.origin, common::ORIGIN);
    assert_eq!(store.checkpoints(0, 10).await.unwrap().len(), 1);
    assert_eq!(store.root_at(0).await.unwrap(), custody_ledger::EMPTY_ROOT);
}

async fn appends_get_dense_indices_and_provable_inclusion(backend: Backend) {
    let (_db, store, _) = create(backend).await;
    for i in 0..20 {
        let a = store.append(Append::event(event(0, i))).await.unwrap();
        assert_eq!((a.first_index, a.count, a.replayed), (i, 1, false));
        assert!(a.tree_size > i);
    }
    let multi = store
        .append(Append {
            events: vec![event(1, 0), event(1, 1), event(1, 2)],
            ..Append::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (multi.first_index, multi.count, multi.tree_size),
        (20, 3, 23)
    );

    let cp = store.checkpoint().await.unwrap();
    assert_eq!(cp.size, 23);
    assert_eq!(store.size().await.unwrap(), 23);
    let (tree, leaves) = recompute(&store).await;
    assert_eq!(tree.root(23).unwrap(), cp.root);
    assert_eq!(leaves[21], event(1, 1).as_bytes());
    for size in [1, 7, 16, 23] {
        assert_eq!(store.root_at(size).await.unwrap(), tree.root(size).unwrap());
        for index in 0..size {
            let proof = store.inclusion_proof(index, size).await.unwrap();
            let leaf = leaf_hash(&leaves[index as usize]);
            verify_inclusion(&leaf, index, size, &proof, &tree.root(size).unwrap()).unwrap();
        }
    }
    // A proof checked against the wrong leaf fails: the proofs are not vacuous.
    let proof = store.inclusion_proof(3, 23).await.unwrap();
    assert!(verify_inclusion(&leaf_hash(&leaves[4]), 3, 23, &proof, &cp.root).is_err());
    // One checkpoint per append (they came one at a time) and the empty one.
    assert_eq!(check_checkpoint_chain(&store).await, 22);
}

async fn concurrent_appenders_form_one_linear_log_with_group_commit(backend: Backend) {
    let (_db, store, _) = create(backend).await;
    let store = Arc::new(store);
    let (writers, per_writer) = (64u64, 20u64);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for s in 0..per_writer {
                let a = store.append(Append::event(event(w, s))).await.unwrap();
                got.push((a.first_index, w, s));
            }
            got
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let total = writers * per_writer;
    let indices: BTreeSet<u64> = acked.iter().map(|(i, _, _)| *i).collect();
    assert_eq!(indices.len() as u64, total, "an index was handed out twice");
    assert_eq!(
        indices.last().copied(),
        Some(total - 1),
        "the indices have a gap"
    );

    let (tree, leaves) = recompute(&store).await;
    for (index, w, s) in &acked {
        assert_eq!(leaves[*index as usize], event(*w, *s).as_bytes());
    }
    let cp = store.checkpoint().await.unwrap();
    assert_eq!((cp.size, cp.root), (total, tree.root(total).unwrap()));
    let checkpoints = check_checkpoint_chain(&store).await;
    assert!(
        (checkpoints as u64) < total / 2,
        "{checkpoints} checkpoints for {total} appends: appends were not grouped"
    );
}

async fn two_writers_on_one_database_never_fork(backend: Backend) {
    let (db, first, seed) = create(backend).await;
    let second = SqlStore::open(&db.location, log_key_from_seed(seed))
        .await
        .unwrap();
    let (first, second) = (Arc::new(first), Arc::new(second));
    let mut tasks = Vec::new();
    for w in 0..16u64 {
        let store = if w % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            for s in 0..25 {
                store.append(Append::event(event(w, s))).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Each sees the other's entries, and both see one tree.
    let (a, b) = (
        first.checkpoint().await.unwrap(),
        second.checkpoint().await.unwrap(),
    );
    assert_eq!((a.size, a.root), (b.size, b.root));
    assert_eq!(a.size, 400);
    let (tree, leaves) = recompute(&first).await;
    assert_eq!(tree.root(400).unwrap(), a.root);
    let distinct: BTreeSet<&Vec<u8>> = leaves.iter().collect();
    assert_eq!(distinct.len(), 400, "an event was stored twice");
    check_checkpoint_chain(&second).await;
}

async fn state_changes_commit_with_their_events(backend: Backend) {
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
}

async fn a_failed_precondition_writes_nothing_and_spares_the_batch(backend: Backend) {
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

async fn idempotent_appends_replay_and_conflicts_are_refused(backend: Backend) {
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

async fn bad_requests_are_refused_and_change_nothing(backend: Backend) {
    let (_db, store, _) = create(backend).await;
    store.append(Append::event(event(0, 0))).await.unwrap();
    let before = store.checkpoint().await.unwrap();

    let empty = store.append(Append::default()).await.unwrap_err();
    assert!(empty.to_string().contains("at least one event"), "{empty}");
    let many = Append {
        events: vec![event(0, 0); custody_store::MAX_EVENTS_PER_APPEND + 1],
        ..Append::default()
    };
    assert!(matches!(
        store.append(many).await,
        Err(StoreError::InvalidInput(_))
    ));
    let huge = json(serde_json::json!({"blob": "x".repeat(custody_store::MAX_EVENT_BYTES)}));
    let err = store.append(Append::event(huge)).await.unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
    let bad_key = Append {
        events: vec![event(0, 1)],
        state: vec![write("", "k", serde_json::json!({}), Expect::Any)],
        idempotency: None,
    };
    assert!(matches!(
        store.append(bad_key).await,
        Err(StoreError::InvalidInput(_))
    ));

    for (result, needle) in [
        (store.entries(0, 0).await.map(|_| ()), "empty"),
        (store.entries(0, 2).await.map(|_| ()), "beyond"),
        (store.entries(0, 5000).await.map(|_| ()), "at most"),
        (store.inclusion_proof(1, 1).await.map(|_| ()), ""),
        (store.inclusion_proof(0, 2).await.map(|_| ()), "beyond"),
        (store.consistency_proof(0, 1).await.map(|_| ()), ""),
        (store.consistency_proof(1, 2).await.map(|_| ()), "beyond"),
        (store.root_at(9).await.map(|_| ()), "beyond"),
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, StoreError::OutOfRange(_)), "{err}");
        assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
    }
    assert_eq!(store.checkpoint().await.unwrap(), before);
}

async fn reopening_continues_the_same_log(backend: Backend) {
    let (db, store, seed) = create(backend).await;
    for i in 0..37 {
        store.append(Append::event(event(0, i))).await.unwrap();
    }
    let before = store.checkpoint().await.unwrap();
    store.close().await;
    let store = SqlStore::open(&db.location, log_key_from_seed(seed))
        .await
        .unwrap();
    assert_eq!(store.checkpoint().await.unwrap(), before);
    let next = store.append(Append::event(event(1, 0))).await.unwrap();
    assert_eq!(next.first_index, 37);
    let (tree, _) = recompute(&store).await;
    assert_eq!(
        tree.root(38).unwrap(),
        store.checkpoint().await.unwrap().root
    );
    let report = store.check(|_| {}).await.unwrap();
    assert_eq!(report.entries, 38);
    check_checkpoint_chain(&store).await;
}

async fn the_ledger_is_never_recreated_or_opened_with_another_key(backend: Backend) {
    let fresh = backend.fresh().await;
    let missing = SqlStore::open(&fresh.location, log_key())
        .await
        .unwrap_err();
    assert!(
        matches!(missing, StoreError::NotInitialized(_)),
        "{missing}"
    );
    assert!(missing.to_string().contains("custody init"));

    let (db, store, seed) = create(backend).await;
    store.append(Append::event(event(0, 0))).await.unwrap();
    store.close().await;
    let again = SqlStore::create(&db.location, log_key_from_seed(seed), now())
        .await
        .unwrap_err();
    assert!(
        matches!(again, StoreError::AlreadyInitialized(_)),
        "{again}"
    );
    let other = SqlStore::open(&db.location, log_key()).await.unwrap_err();
    assert!(matches!(other, StoreError::KeyMismatch { .. }), "{other}");
    assert!(other.to_string().contains("hint:"));
    // Still intact and usable with the right key.
    let store = SqlStore::open(&db.location, log_key_from_seed(seed))
        .await
        .unwrap();
    assert_eq!(store.checkpoint().await.unwrap().size, 1);
}

/// A raw connection, as an intruder with database access would have.
async fn raw_execute(location: &custody_store::Location, sql: &str) -> Result<u64, sqlx::Error> {
    use sqlx::Connection;
    match location {
        custody_store::Location::Sqlite(path) => {
            let mut c =
                sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display())).await?;
            Ok(sqlx::query(sql).execute(&mut c).await?.rows_affected())
        }
        custody_store::Location::Postgres(url) => {
            let mut c = sqlx::PgConnection::connect(url).await?;
            Ok(sqlx::raw_sql(sql).execute(&mut c).await?.rows_affected())
        }
    }
}

async fn the_schema_refuses_to_rewrite_history(backend: Backend) {
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

async fn tampering_is_found_by_open_and_check(backend: Backend) {
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
        match backend {
            Backend::Sqlite => format!("X'{}'", common::hex(forged.as_bytes())),
            Backend::Postgres => format!("'\\x{}'::bytea", common::hex(forged.as_bytes())),
        }
    );
    assert_eq!(raw_execute(&db.location, &sql).await.unwrap(), 1);
    // The head still verifies (leaves are only read by a full check)…
    let store = SqlStore::open(&db.location, log_key_from_seed(seed))
        .await
        .unwrap();
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
    let zero = match backend {
        Backend::Sqlite => format!(
            "UPDATE log_nodes SET hash = zeroblob(32) WHERE id = {}",
            3i64 << 56
        ),
        Backend::Postgres => format!(
            "UPDATE log_nodes SET hash = '\\x{}'::bytea WHERE id = {}",
            "00".repeat(32),
            3i64 << 56
        ),
    };
    raw_execute(&db.location, &zero).await.unwrap();
    let err = SqlStore::open(&db.location, log_key_from_seed(seed))
        .await
        .unwrap_err();
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

async fn faults_anywhere_leave_log_and_state_agreeing(backend: Backend) {
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

async fn a_read_only_store_refuses_appends(backend: Backend) {
    let (db, store, _) = create(backend).await;
    store.append(Append::event(event(0, 0))).await.unwrap();
    let reader = SqlStore::open_read_only(&db.location, store.verifier())
        .await
        .unwrap();
    assert_eq!(
        reader.checkpoint().await.unwrap(),
        store.checkpoint().await.unwrap()
    );
    let err = reader.append(Append::event(event(0, 1))).await.unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly), "{err}");
    let wrong = common::log_key();
    let err = SqlStore::open_read_only(&db.location, wrong.verifier())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::KeyMismatch { .. }), "{err}");
}

async fn group_commit_respects_its_batch_bound(backend: Backend) {
    let (db, store, seed) = create(backend).await;
    store.close().await;
    let store = SqlStore::open_with(
        &db.location,
        log_key_from_seed(seed),
        OpenOptions {
            max_batch_events: 1,
            ..OpenOptions::default()
        },
    )
    .await
    .unwrap();
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..32u64)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move { store.append(Append::event(event(w, 0))).await.unwrap() })
        })
        .collect();
    for t in tasks {
        let a = t.await.unwrap();
        // With one event per batch, each append gets its own checkpoint.
        assert_eq!(a.tree_size, a.first_index + 1);
    }
    assert_eq!(check_checkpoint_chain(&store).await, 33);
}

async fn a_record_written_twice_in_a_batch_keeps_the_later_write(backend: Backend) {
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

async fn the_access_log_is_append_only_and_ordered(backend: Backend) {
    let (db, store, _) = create(backend).await;
    let entry = |who: &str, status: u16| custody_store::AccessEntry {
        at: "2026-11-27T12:00:00Z".into(),
        principal: who.into(),
        credential: format!("token tok_{who}"),
        method: "POST".into(),
        path: "/api/v1/promotions".into(),
        remote: "127.0.0.1:5000".into(),
        status,
        outcome: if status < 400 {
            "allowed".into()
        } else {
            "denied: needs role signer".into()
        },
    };
    store
        .record_access(vec![entry("alice", 200), entry("mallory", 403)])
        .await
        .unwrap();
    let mut long = entry("bob", 200);
    long.path = "/x".repeat(5000);
    store.record_access(vec![long]).await.unwrap();
    let log = store.access_log(0, 100).await.unwrap();
    let who: Vec<_> = log.iter().map(|r| r.entry.principal.as_str()).collect();
    assert_eq!(who, ["alice", "mallory", "bob"]);
    assert!(log.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(log[1].entry.status, 403);
    assert_eq!(log[1].entry.credential, "token tok_mallory");
    assert_eq!(
        log[2].entry.path.len(),
        2048,
        "an oversized field was stored whole"
    );
    assert_eq!(store.access_log(log[0].id, 100).await.unwrap().len(), 2);
    for sql in [
        "UPDATE access_log SET principal = 'x'",
        "DELETE FROM access_log",
    ] {
        let err = raw_execute(&db.location, sql).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    // The ledger is untouched by it.
    assert_eq!(store.checkpoint().await.unwrap().size, 0);
}

/// A batch is written in pieces (full chunks, then power-of-two remainders): every size
/// around the piece boundaries keeps every row, once, in order.
async fn the_access_log_keeps_every_row_of_a_batch_of_any_size(backend: Backend) {
    let (_db, store, _) = create(backend).await;
    let mut written = 0u64;
    for size in [
        1usize, 2, 3, 7, 63, 64, 65, 255, 256, 257, 300, 511, 513, 1000,
    ] {
        let batch: Vec<_> = (0..size)
            .map(|i| custody_store::AccessEntry {
                at: "2026-11-30T12:00:00Z".into(),
                principal: format!("p{size}-{i}"),
                credential: String::new(),
                method: "GET".into(),
                path: "/api/v1/verify".into(),
                remote: "127.0.0.1:5000".into(),
                status: 200,
                outcome: "allowed".into(),
            })
            .collect();
        store.record_access(batch).await.unwrap();
        let mut rows = Vec::new();
        let mut after = written;
        while rows.len() < size {
            let page = store.access_log(after, 1000).await.unwrap();
            assert!(
                !page.is_empty(),
                "batch of {size}: only {} rows",
                rows.len()
            );
            after = page.last().unwrap().id;
            rows.extend(page);
        }
        let names: Vec<_> = rows.iter().map(|r| r.entry.principal.clone()).collect();
        let expected: Vec<_> = (0..size).map(|i| format!("p{size}-{i}")).collect();
        assert_eq!(names, expected, "a batch of {size} rows");
        assert!(store.access_log(after, 10).await.unwrap().is_empty());
        written = after;
    }
}

async fn the_access_log_keeps_each_principals_latest_use(backend: Backend) {
    let (_db, store, _) = create(backend).await;
    let entry = |who: &str, outcome: &str, at: &str| custody_store::AccessEntry {
        at: at.into(),
        principal: who.into(),
        credential: String::new(),
        method: "GET".into(),
        path: "/api/v1/history".into(),
        remote: "127.0.0.1:5000".into(),
        status: 200,
        outcome: outcome.into(),
    };
    assert!(store.last_uses().await.unwrap().is_empty());
    store
        .record_access(vec![
            entry("alice", "allowed: read history", "2026-11-27T12:00:00.5Z"),
            // Later, though shorter as text and earlier in the batch.
            entry("alice", "allowed: read history", "2026-11-27T12:00:00.51Z"),
            entry("alice", "allowed: read history", "2026-11-27T12:00:00Z"),
            entry("alice", "allowed: verify", "2026-11-27T11:00:00Z"),
            entry("", "unauthenticated: no token", "2026-11-27T12:00:00Z"),
        ])
        .await
        .unwrap();
    // A later batch with an older time (another server's clock, or a late batch) does not
    // move the last use back; a newer one moves it forward.
    store
        .record_access(vec![
            entry("alice", "allowed: read history", "2026-11-27T10:00:00Z"),
            entry("alice", "allowed: verify", "2026-11-28T09:00:00Z"),
            entry(
                "bob",
                "denied: lacks permission to verify",
                "2026-11-27T08:00:00Z",
            ),
        ])
        .await
        .unwrap();
    let uses: Vec<(String, String, String)> = store
        .last_uses()
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.principal, u.outcome, u.at))
        .collect();
    let own = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        uses,
        [
            own("alice", "allowed: read history", "2026-11-27T12:00:00.51Z"),
            own("alice", "allowed: verify", "2026-11-28T09:00:00Z"),
            own(
                "bob",
                "denied: lacks permission to verify",
                "2026-11-27T08:00:00Z"
            ),
        ]
    );
}

async fn a_null_write_removes_a_record_with_its_event(backend: Backend) {
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

/// An event naming an actor, an environment, an artifact, a build and a time, each from a
/// small set so that searches have many hits.
fn named_event(i: u64) -> custody_model::CanonicalJson {
    let at = custody_model::Timestamp::from_unix_seconds(1_795_780_800 + i as i64).unwrap();
    let actor = ["alice", "bob", "carol"][(i % 3) as usize];
    let environment = ["staging", "production"][(i % 2) as usize];
    json(serde_json::json!({
        "type": "test.named",
        "seq": i,
        "actor": actor,
        "environment": environment,
        "artifacts": [format!("sha256:{:064x}", i % 50), format!("sha256:{:064x}", 1000 + i % 7)],
        "build": {"invocation_id": format!("run-{}", i % 11)},
        "at": at.to_string(),
    }))
}

/// Every entry (as JSON) in the log, by index.
async fn all_events(store: &SqlStore) -> Vec<serde_json::Value> {
    let size = store.checkpoint().await.unwrap().size;
    let mut out = Vec::new();
    let mut start = 0;
    while start < size {
        let end = size.min(start + custody_store::MAX_ENTRIES_PER_READ);
        for e in store.entries(start, end).await.unwrap() {
            out.push(serde_json::from_slice(&e.leaf).unwrap());
        }
        start = end;
    }
    out
}

/// Every index `search` finds for `terms` in `[start, end)`, paging newest first with
/// pages of `page`.
async fn search_all(
    store: &SqlStore,
    terms: &[String],
    start: u64,
    end: u64,
    page: u64,
) -> Vec<u64> {
    let mut found = Vec::new();
    let mut end = end;
    loop {
        let batch = store.search(terms, start, end, page).await.unwrap();
        assert!(batch.len() as u64 <= page);
        for pair in batch.windows(2) {
            assert!(pair[0].index > pair[1].index, "newest first");
        }
        found.extend(batch.iter().map(|e| e.index));
        match batch.last() {
            Some(last) if batch.len() as u64 == page => end = last.index,
            _ => return found,
        }
    }
}

/// The indices in `[start, end)` whose events satisfy `pred`, newest first.
fn scan(
    events: &[serde_json::Value],
    start: u64,
    end: u64,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Vec<u64> {
    (start..end)
        .rev()
        .filter(|&i| pred(&events[i as usize]))
        .collect()
}

async fn the_index_finds_every_entry_naming_its_terms(backend: Backend) {
    use custody_store::search;
    let (_db, store, _) = create(backend).await;
    let store = Arc::new(store);
    // Concurrent appends of one and of several events, so batches mix both.
    let mut tasks = Vec::new();
    for w in 0..4_u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..60_u64 {
                let first = (w * 60 + k) * 5;
                let events = (first..first + 1 + k % 5).map(named_event).collect();
                store
                    .append(Append {
                        events,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // A refused append leaves no terms behind.
    let refused = store
        .append(Append {
            events: vec![json(serde_json::json!({"actor": "mallory", "type": "x"}))],
            state: vec![write("k", "v", serde_json::json!(1), Expect::Version(9))],
            idempotency: None,
        })
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict { .. })));
    assert!(
        store
            .search(&[search::actor("mallory")], 0, u64::MAX >> 2, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let events = all_events(&store).await;
    let size = events.len() as u64;
    assert_eq!(size, 720);
    let has = |k: &'static str, v: &'static str| move |e: &serde_json::Value| e[k] == v;
    for (terms, pred) in [
        (
            vec![search::actor("alice")],
            Box::new(has("actor", "alice")) as Box<dyn Fn(&serde_json::Value) -> bool>,
        ),
        (
            vec![search::environment("production"), search::actor("bob")],
            Box::new(|e: &serde_json::Value| {
                e["environment"] == "production" && e["actor"] == "bob"
            }),
        ),
        (
            vec![search::artifact(&format!("sha256:{:064x}", 5))],
            Box::new(|e: &serde_json::Value| e["artifacts"][0] == format!("sha256:{:064x}", 5)),
        ),
        (
            vec![
                search::build("run-3"),
                search::artifact(&format!("sha256:{:064x}", 1002)),
            ],
            Box::new(|e: &serde_json::Value| {
                e["build"]["invocation_id"] == "run-3"
                    && e["artifacts"][1] == format!("sha256:{:064x}", 1002)
            }),
        ),
    ] {
        let expected = scan(&events, 0, size, &pred);
        assert!(expected.len() > 3, "{terms:?} finds too few to page");
        // Three pages and a bit.
        let page = expected.len() as u64 / 3;
        assert_eq!(
            search_all(&store, &terms, 0, size, page).await,
            expected,
            "{terms:?}"
        );
        // A window of the log.
        let (lo, hi) = (size / 4, size / 2);
        assert_eq!(
            search_all(&store, &terms, lo, hi, page).await,
            scan(&events, lo, hi, &pred),
            "{terms:?} in {lo}..{hi}"
        );
    }
    let neither = [search::actor("alice"), search::actor("bob")];
    assert!(
        store
            .search(&neither, 0, size, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .search(&[search::actor("nobody")], 0, size, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .search(&[search::actor("alice")], 5, 5, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Time. The writers' stamps interleave out of order (writer 3's run up to 20 minutes
    // ahead of writer 0's), and one more event is stamped a day before all of them.
    let backdated = json(serde_json::json!({"type": "late", "at": "2026-11-26T12:00:00Z"}));
    store.append(Append::event(backdated)).await.unwrap();
    let events = all_events(&store).await;
    let size = events.len() as u64;
    let stamp = |e: &serde_json::Value| {
        e["at"]
            .as_str()
            .unwrap()
            .parse::<custody_model::Timestamp>()
            .unwrap()
    };
    let t = |s: i64| custody_model::Timestamp::from_unix_seconds(1_795_780_800 + s).unwrap();
    for (since, until) in [
        (None, None),
        (Some(t(0)), None),
        (Some(t(300)), Some(t(600))),
        (None, Some(t(100))),
        (Some(t(1150)), None),
        (Some(t(5000)), None),
        (Some(t(-86_401)), Some(t(-86_399))),
        (None, Some(t(-80_000))),
    ] {
        let (start, end) = store.time_range(since, until).await.unwrap();
        assert!(
            start <= end && end <= size,
            "{since:?}..{until:?}: {start}..{end}"
        );
        let inside: Vec<u64> = (0..size)
            .filter(|&i| {
                let at = stamp(&events[i as usize]);
                since.is_none_or(|s| at >= s) && until.is_none_or(|u| at < u)
            })
            .collect();
        assert!(
            inside.iter().all(|i| (start..end).contains(i)),
            "{since:?}..{until:?}: {start}..{end} leaves out some of {inside:?}"
        );
        // The start is tight: the first entry stamped at or after `since`.
        let first = (0..size).find(|&i| since.is_none_or(|s| stamp(&events[i as usize]) >= s));
        assert_eq!(start, first.unwrap_or(size), "{since:?}");
    }
    // Only the backdated event is stamped before the others: a window ending before them
    // reaches it (it is late), and nothing in the window's range is stamped inside but it.
    let (start, end) = store.time_range(None, Some(t(-80_000))).await.unwrap();
    assert_eq!((start, end), (0, size));

    for bad in [
        vec![],
        vec![search::actor("a"); custody_store::MAX_SEARCH_TERMS + 1],
    ] {
        let err = store.search(&bad, 0, size, 10).await.unwrap_err();
        assert!(matches!(err, StoreError::OutOfRange(_)), "{err}");
        assert!(err.to_string().contains("terms"), "{err}");
    }
}

async fn an_older_ledger_is_indexed_when_a_writer_opens_it(backend: Backend) {
    use custody_store::search;
    let (db, store, seed) = create(backend).await;
    for k in 0..5_u64 {
        store
            .append(Append {
                events: (k * 500..(k + 1) * 500).map(named_event).collect(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let size = 2500;
    let alice = search_all(&store, &[search::actor("alice")], 0, size, 1000).await;
    assert_eq!(alice.len(), 834);
    let t = |s: i64| Some(custody_model::Timestamp::from_unix_seconds(1_795_780_800 + s).unwrap());
    let window = store.time_range(t(300), t(600)).await.unwrap();
    assert_eq!(
        window,
        (300, 660),
        "in order: up to a minute past the window"
    );
    store.close().await;
    // As a ledger from before the index: no terms, everything still to backfill.
    raw_execute(&db.location, "DELETE FROM log_terms")
        .await
        .unwrap();
    raw_execute(
        &db.location,
        "UPDATE log_terms_backfill SET upto = 2500, done = 0",
    )
    .await
    .unwrap();
    let reader = SqlStore::open_read_only(&db.location, log_key_from_seed(seed).verifier())
        .await
        .unwrap();
    let err = reader
        .search(&[search::actor("alice")], 0, size, 10)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(
        err.to_string().contains("open it once for writing"),
        "{err}"
    );
    reader.close().await;

    let store = SqlStore::open(&db.location, log_key_from_seed(seed))
        .await
        .unwrap();
    assert_eq!(
        search_all(&store, &[search::actor("alice")], 0, size, 1000).await,
        alice
    );
    assert_eq!(store.time_range(t(300), t(600)).await.unwrap(), window);
    let next = store
        .append(Append::event(named_event(2500)))
        .await
        .unwrap();
    assert_eq!(next.first_index, 2500);
    let bob = search_all(&store, &[search::actor("bob")], 0, size + 1, 1000).await;
    assert_eq!(bob.first(), Some(&2500));
    assert_eq!(bob.len(), 834);
    let reader = SqlStore::open_read_only(&db.location, store.verifier())
        .await
        .unwrap();
    assert_eq!(
        search_all(&reader, &[search::actor("alice")], 0, size, 100).await,
        alice
    );
}
