//! The access log, kept beside the ledger: append-only and ordered, oversized fields cut,
//! a batch of any size kept whole and in order, and each principal's latest use kept
//! whatever order the batches commit in.

use custody_store::Store;

use super::{Backend, create, raw_execute};
use crate::common::access_entry;

pub(crate) async fn the_access_log_is_append_only_and_ordered(backend: Backend) {
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
pub(crate) async fn the_access_log_keeps_every_row_of_a_batch_of_any_size(backend: Backend) {
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

pub(crate) async fn the_access_log_keeps_each_principals_latest_use(backend: Backend) {
    let (_db, store, _) = create(backend).await;
    let entry = |who: &str, outcome: &str, at: &str| access_entry(at, who, outcome);
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
