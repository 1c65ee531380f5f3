//! The access log's helpers: what one batch of entries keeps, how long its fields may be,
//! pruning past the retention, and a stored row read back.

use crate::commit::to_u64;
use crate::sql;
use crate::{AccessEntry, AccessRecord, SqlStore, StoreError};

/// The latest entry of each identified (principal, outcome) in a batch, with its time in
/// nanoseconds since the epoch (an entry whose time does not parse counts as 0).
pub(crate) fn latest_uses(entries: &[AccessEntry]) -> Vec<sql::LastUseRow<'_>> {
    let mut latest: std::collections::HashMap<(&str, &str), (&str, i64)> =
        std::collections::HashMap::new();
    for e in entries.iter().filter(|e| !e.principal.is_empty()) {
        let ns =
            e.at.parse::<custody_model::Timestamp>()
                .ok()
                .and_then(|t| i64::try_from(t.as_datetime().unix_timestamp_nanos()).ok())
                .unwrap_or(0);
        let slot = latest
            .entry((&e.principal, &e.outcome))
            .or_insert((&e.at, ns));
        if ns >= slot.1 {
            *slot = (&e.at, ns);
        }
    }
    let mut rows: Vec<_> = latest
        .into_iter()
        .map(|((principal, outcome), (at, ns))| (principal, outcome, at, ns))
        .collect();
    // One order for every writer, so two concurrent batches lock rows alike.
    rows.sort_unstable();
    rows
}

/// Cuts an access entry's free-text fields to a sane length (they come from requests).
pub(crate) fn bounded_access(mut e: AccessEntry) -> AccessEntry {
    for (field, max) in [
        (&mut e.principal, 256),
        (&mut e.credential, 512),
        (&mut e.method, 16),
        (&mut e.path, 2048),
        (&mut e.remote, 128),
        (&mut e.outcome, 1024),
    ] {
        if field.len() > max {
            let mut cut = max;
            while !field.is_char_boundary(cut) {
                cut -= 1;
            }
            field.truncate(cut);
        }
    }
    e
}

/// Removes the entries older than `before` (a timestamp), oldest first, in short
/// transactions so that access-log writes never wait long: how many were removed.
pub(crate) async fn prune(store: &SqlStore, before: &str) -> Result<u64, StoreError> {
    /// Entries removed per transaction (short, so that access-log writes never wait long).
    const CHUNK: i64 = 10_000;
    let (first, until) = {
        let mut conn = store.read.acquire().await?;
        let mut c = conn.conn();
        let Some((first, last)) = sql::access_ids(&mut c).await? else {
            return Ok(0);
        };
        let until = match sql::first_access_since(&mut c, before).await? {
            Some(id) => id,
            None => last.saturating_add(1), // every entry is older
        };
        (first, until)
    };
    let mut removed = 0;
    let mut from = first;
    while from < until {
        let below = until.min(from.saturating_add(CHUNK));
        let mut tx = store.read.begin_write().await?;
        let pruned = sql::prune_access(&mut tx.conn(), from, below).await;
        let pruned = match pruned {
            Ok(n) => tx.commit().await.map(|()| n).map_err(StoreError::from),
            Err(e) => Err(e),
        };
        store.status.wrote(&pruned);
        removed += pruned?;
        from = below;
    }
    Ok(removed)
}

/// A stored access-log row as the store hands it out.
pub(crate) fn record(row: sql::AccessRow) -> Result<AccessRecord, StoreError> {
    let (id, at, principal, credential, method, path, remote, status, outcome) = row;
    Ok(AccessRecord {
        id: to_u64(id)?,
        entry: AccessEntry {
            at,
            principal,
            credential,
            method,
            path,
            remote,
            status: u16::try_from(status).unwrap_or(0),
            outcome,
        },
    })
}
