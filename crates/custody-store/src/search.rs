//! What the ledger can be searched by: the index terms of each entry.
//!
//! When an entry is appended, the same transaction records one row `(term, index)` for each
//! name its event mentions: its type, who acted, the environment, every artifact digest,
//! the build, and when. "Every event about artifact X" or "everything alice did in production" is then
//! a range read of an index, newest first, rather than a scan of the ledger, however long
//! the history.
//!
//! The terms are a projection of the entries, like state: they are derived from the leaf
//! bytes alone, so they can be rebuilt from the ledger (that is how a ledger written before
//! the index existed gets its terms, once, when a writer opens it; see `backfill_terms`).
//!
//! A search narrows; it does not decide. Callers still check each entry they get against
//! what they asked, so a term that names more than it should costs time, never a wrong
//! answer. A term that names less would lose entries, which is why every term is made here,
//! by the functions callers also use to ask.

use custody_model::{EventHeader, Timestamp};

/// The term of events whose `actor` is `principal`.
pub fn actor(principal: &str) -> String {
    format!("actor:{principal}")
}

/// The term of events whose `environment` is `environment`.
pub fn environment(environment: &str) -> String {
    format!("env:{environment}")
}

/// The term of events whose `artifacts` list `digest`.
pub fn artifact(digest: &str) -> String {
    format!("artifact:{digest}")
}

/// The term of events of type `kind` (e.g. `release.created`).
pub fn event_type(kind: &str) -> String {
    format!("type:{kind}")
}

/// The term of events whose `build.invocation_id` is `invocation`.
pub fn build(invocation: &str) -> String {
    format!("build:{invocation}")
}

/// The term of events that recorded a signature by key `key_id` as verified (their
/// `keys`).
pub fn key(key_id: &str) -> String {
    format!("key:{key_id}")
}

/// How long before the latest stamp already in the log an event may be stamped and still
/// count as in order. Events are stamped when their append is built and land when their
/// batch commits, so concurrent appends land a little out of stamp order; an event stamped
/// further back than this (a backfill, a clock stepped back) is marked late.
pub(crate) const LATE_AFTER_NANOS: i128 = 60_000_000_000;

/// The time terms: `max:` + the latest stamp in the log up to and including this entry, and
/// for a late entry `late:` + its own stamp. Nanoseconds since the epoch, zero-padded to a
/// fixed width, so that text order is time order.
///
/// Why these two make a time slice exact and cheap: the running latest stamp never goes
/// down along the log, so the first entry whose `max:` reaches a time is where entries
/// stamped at or after it can begin; and past the first entry whose `max:` reaches a time
/// plus [`LATE_AFTER_NANOS`], an entry stamped before that time is by definition late, so
/// the few `late:` terms give the rest (see `SqlStore::time_range`).
pub(crate) const MAX_PREFIX: &str = "max:";
/// See [`MAX_PREFIX`].
pub(crate) const LATE_PREFIX: &str = "late:";

/// A time term: `prefix` + nanoseconds since the epoch at a fixed width.
pub(crate) fn time_term(prefix: &str, nanos: i128) -> String {
    format!("{prefix}{:020}", nanos.max(0))
}

/// The nanoseconds a time term carries (`None` for another kind of term).
pub(crate) fn term_nanos(prefix: &str, term: &str) -> Option<i128> {
    term.strip_prefix(prefix)?.parse().ok()
}

/// An instant in nanoseconds since the epoch.
pub(crate) fn nanos(t: Timestamp) -> i128 {
    t.as_datetime().unix_timestamp_nanos()
}

/// What the store indexes an event by: the names it mentions, and its stamp (whose terms
/// depend on the log before it, so the committer makes them; see [`MAX_PREFIX`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Indexed {
    pub(crate) terms: Vec<String>,
    pub(crate) stamp: Option<i128>,
}

/// The time terms of an entry stamped `stamp` after a log whose latest stamp is `latest`;
/// returns the new latest stamp.
pub(crate) fn time_terms(
    stamp: Option<i128>,
    latest: Option<i128>,
    out: &mut Vec<String>,
) -> Option<i128> {
    let Some(stamp) = stamp else { return latest };
    if latest.is_some_and(|l| stamp < l - LATE_AFTER_NANOS) {
        out.push(time_term(LATE_PREFIX, stamp));
    }
    let latest = latest.map_or(stamp, |l| l.max(stamp));
    out.push(time_term(MAX_PREFIX, latest));
    Some(latest)
}

/// Longest name a term is made from; a longer one is not indexed (the store's keys are
/// bounded the same way, and no name custody writes comes near it).
const MAX_TERM_NAME: usize = 512;

/// The name terms and the stamp of one ledger leaf: what its [`EventHeader`] names (the
/// model's header of every event; everything else in the leaf is skipped unread). A leaf
/// whose header does not read yields no terms, and an over-long name no term.
pub(crate) fn index(leaf: &[u8]) -> Indexed {
    let Ok(header) = EventHeader::read(leaf) else {
        // Still index its time if it has one, so a time range never leaves it out.
        #[derive(serde::Deserialize)]
        struct Stamped {
            at: Timestamp,
        }
        return Indexed {
            terms: Vec::new(),
            stamp: serde_json::from_slice::<Stamped>(leaf)
                .ok()
                .map(|s| nanos(s.at)),
        };
    };
    let name = |s: &str| (!s.is_empty() && s.len() <= MAX_TERM_NAME).then(|| s.to_owned());
    let mut out = Vec::new();
    out.extend(name(&header.kind).map(|k| event_type(&k)));
    out.extend(name(&header.actor).map(|p| actor(&p)));
    out.extend(
        header
            .environment
            .as_deref()
            .and_then(name)
            .map(|e| environment(&e)),
    );
    out.extend(
        header
            .artifacts
            .iter()
            .filter_map(|d| name(d))
            .map(|d| artifact(&d)),
    );
    out.extend(header.invocation_id().and_then(name).map(|b| build(&b)));
    out.extend(
        header
            .keys
            .iter()
            .filter_map(|k| name(&k.key))
            .map(|k| key(&k)),
    );
    out.sort();
    out.dedup();
    Indexed {
        terms: out,
        stamp: Some(nanos(header.at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_indexed_by_every_name_it_mentions() {
        let leaf = br#"{"actor":"alice","artifacts":["sha256:aa","sha256:bb","sha256:aa"],"at":"2026-11-27T12:00:00.5Z","build":{"invocation_id":"run-7"},"environment":"production","keys":[{"algorithm":"ed25519","key":"k1"}],"type":"x"}"#;
        assert_eq!(
            index(leaf),
            Indexed {
                terms: vec![
                    "actor:alice".to_owned(),
                    "artifact:sha256:aa".into(),
                    "artifact:sha256:bb".into(),
                    "build:run-7".into(),
                    "env:production".into(),
                    "key:k1".into(),
                    "type:x".into(),
                ],
                stamp: Some(1_795_780_800_500_000_000),
            }
        );
    }

    #[test]
    fn odd_shapes_yield_fewer_terms_not_errors() {
        assert_eq!(index(b"not json"), Indexed::default());
        assert_eq!(index(b"[1,2]"), Indexed::default());
        assert_eq!(
            index(
                br#"{"actor":7,"artifacts":"sha256:aa","environment":"","at":"yesterday","build":"b"}"#
            ),
            Indexed::default()
        );
        let long = format!(r#"{{"actor":"{}"}}"#, "a".repeat(MAX_TERM_NAME + 1));
        assert!(index(long.as_bytes()).terms.is_empty());
    }

    #[test]
    fn the_running_latest_stamp_only_rises_and_backdated_entries_are_late() {
        let second = 1_000_000_000_i128;
        let mut latest = None;
        let mut terms_of = |stamp: Option<i128>| {
            let mut out = Vec::new();
            latest = time_terms(stamp, latest, &mut out);
            out
        };
        assert_eq!(
            terms_of(Some(100 * second)),
            vec![time_term(MAX_PREFIX, 100 * second)]
        );
        // A little out of order: in order for searching, the latest stays.
        assert_eq!(
            terms_of(Some(90 * second)),
            vec![time_term(MAX_PREFIX, 100 * second)]
        );
        assert_eq!(terms_of(None), Vec::<String>::new());
        // Far back: late.
        assert_eq!(
            terms_of(Some(10 * second)),
            vec![
                time_term(LATE_PREFIX, 10 * second),
                time_term(MAX_PREFIX, 100 * second)
            ]
        );
        assert_eq!(
            terms_of(Some(200 * second)),
            vec![time_term(MAX_PREFIX, 200 * second)]
        );
        assert!(time_term(MAX_PREFIX, 9 * second) < time_term(MAX_PREFIX, 10 * second));
        assert_eq!(term_nanos(MAX_PREFIX, &time_term(MAX_PREFIX, 77)), Some(77));
        assert_eq!(term_nanos(MAX_PREFIX, "actor:x"), None);
    }
}
