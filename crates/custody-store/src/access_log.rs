//! The access log's helpers: what one batch of entries keeps, and how long its fields may be.

use crate::AccessEntry;
use crate::sql;

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
