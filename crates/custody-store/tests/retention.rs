//! The access log's retention: `Store::prune_access` removes the entries older than a
//! time, and nothing else can delete from the access log (on SQLite and PostgreSQL).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use common::{Backend, log_key, now};
use custody_store::{AccessEntry, SqlStore, Store};

fn entry(at: &str, who: &str) -> AccessEntry {
    common::access_entry(at, who, "allowed: read history")
}

async fn pruning_removes_only_what_is_past_retention(backend: Backend) {
    let db = backend.fresh().await;
    let store = SqlStore::create(&db.location, log_key(), now())
        .await
        .unwrap();
    assert_eq!(
        store.prune_access("2026-01-01T00:00:00Z").await.unwrap(),
        0,
        "empty"
    );
    let old: Vec<_> = (0..25_000)
        .map(|i| entry("2026-01-01T00:00:00Z", &format!("p{}", i % 7)))
        .collect();
    store.record_access(old).await.unwrap();
    store
        .record_access(vec![
            entry("2026-03-01T00:00:00Z", "recent"),
            entry("2026-04-01T00:00:00Z", "newest"),
        ])
        .await
        .unwrap();
    // Over the chunk size, so more than one transaction.
    let removed = store.prune_access("2026-02-01T00:00:00Z").await.unwrap();
    assert_eq!(removed, 25_000);
    let left = store.access_log(0, 100).await.unwrap();
    let who: Vec<_> = left.iter().map(|r| r.entry.principal.as_str()).collect();
    assert_eq!(who, ["recent", "newest"]);
    // The principals' latest uses outlive the entries.
    assert!(
        store
            .last_uses()
            .await
            .unwrap()
            .iter()
            .any(|u| u.principal == "p3")
    );
    // Nothing else deletes: not by hand, not the entries still within retention.
    let err = common::raw_execute(&db.location, "DELETE FROM access_log")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert_eq!(store.access_log(0, 100).await.unwrap().len(), 2);
    assert_eq!(store.prune_access("2026-03-15T00:00:00Z").await.unwrap(), 1);
    let left = store.access_log(0, 100).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].entry.principal, "newest");
    // Everything older: the whole log goes, and new entries still append after it.
    assert_eq!(store.prune_access("2027-01-01T00:00:00Z").await.unwrap(), 1);
    store
        .record_access(vec![entry("2027-02-01T00:00:00Z", "after")])
        .await
        .unwrap();
    assert_eq!(store.access_log(0, 100).await.unwrap().len(), 1);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_pruning_removes_only_what_is_past_retention() {
    pruning_removes_only_what_is_past_retention(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pruning_removes_only_what_is_past_retention() {
    pruning_removes_only_what_is_past_retention(Backend::Postgres).await;
}
