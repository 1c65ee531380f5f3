//! Contracts 3 to 5 and what an append may be: appends get dense indices and provable
//! inclusion, from any number of tasks and of writers on one database, grouped into batches
//! within their bound, each ending in a signed checkpoint; a ledger reopens where it was,
//! is never created twice nor opened with another key, and refuses appends when opened
//! read-only; bad requests and out-of-range reads are refused and change nothing.

use std::collections::BTreeSet;
use std::sync::Arc;

use custody_ledger::{leaf_hash, verify_inclusion};
use custody_store::{Append, Expect, OpenOptions, SqlStore, Store, StoreError};

use super::{
    Backend, check_checkpoint_chain, create, event, json, log_key, log_key_from_seed, now,
    open_with, recompute, write,
};
use crate::common;

pub(crate) async fn a_new_log_has_a_signed_empty_checkpoint(backend: Backend) {
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

pub(crate) async fn appends_get_dense_indices_and_provable_inclusion(backend: Backend) {
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

pub(crate) async fn concurrent_appenders_form_one_linear_log_with_group_commit(backend: Backend) {
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

pub(crate) async fn two_writers_on_one_database_never_fork(backend: Backend) {
    let (db, first, seed) = create(backend).await;
    let second = open_with(&db.location, seed).await.unwrap();
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

pub(crate) async fn group_commit_respects_its_batch_bound(backend: Backend) {
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

pub(crate) async fn bad_requests_are_refused_and_change_nothing(backend: Backend) {
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

pub(crate) async fn reopening_continues_the_same_log(backend: Backend) {
    let (db, store, seed) = create(backend).await;
    for i in 0..37 {
        store.append(Append::event(event(0, i))).await.unwrap();
    }
    let before = store.checkpoint().await.unwrap();
    store.close().await;
    let store = open_with(&db.location, seed).await.unwrap();
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

pub(crate) async fn the_ledger_is_never_recreated_or_opened_with_another_key(backend: Backend) {
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
    let store = open_with(&db.location, seed).await.unwrap();
    assert_eq!(store.checkpoint().await.unwrap().size, 1);
}

pub(crate) async fn a_read_only_store_refuses_appends(backend: Backend) {
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
