//! Contract 8: the search index finds every entry naming its terms (alone or combined,
//! paged newest first, in any window of the log) and nothing a refused append named; time
//! ranges hold every entry stamped inside them, late ones included; and a ledger from before
//! the index is indexed when a writer opens it.

use std::sync::Arc;

use custody_store::{Append, Expect, SqlStore, Store, StoreError};

use super::{Backend, create, json, log_key_from_seed, open_with, raw_execute, write};

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

pub(crate) async fn the_index_finds_every_entry_naming_its_terms(backend: Backend) {
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

pub(crate) async fn an_older_ledger_is_indexed_when_a_writer_opens_it(backend: Backend) {
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

    let store = open_with(&db.location, seed).await.unwrap();
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
