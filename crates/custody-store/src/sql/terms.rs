//! The search index (`log_terms`: one row per term an entry carries, see `search.rs`) and
//! the backfill that indexes entries written before it existed.

use super::{Conn, INSERT_CHUNK, insert_chunked, on_conn};
use crate::StoreError;
use crate::search::{self, LATE_PREFIX, MAX_PREFIX};

/// Records the search terms of entries: `(term, index)` rows. A row already there is left
/// as it is (two writers may backfill the same entries).
pub(crate) async fn insert_terms(
    c: &mut Conn<'_>,
    rows: &[(String, i64)],
) -> Result<(), StoreError> {
    insert_chunked!(
        c,
        rows,
        INSERT_CHUNK,
        "INSERT INTO log_terms (term, idx) VALUES {} ON CONFLICT (term, idx) DO NOTHING",
        2,
        |q, (term, idx)| q.bind(term).bind(*idx)
    );
    Ok(())
}

/// Entries in `[start, end)` carrying every one of `terms` (at least one), newest first.
/// The first term drives the read (its index rows, newest first); each other term is a
/// lookup per candidate.
pub(crate) async fn search(
    c: &mut Conn<'_>,
    terms: &[String],
    start: i64,
    end: i64,
    limit: i64,
) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
    let d = c.dialect();
    let mut n = 0;
    let mut next = || {
        n += 1;
        let mut s = String::new();
        d.push_parameter(&mut s, n);
        s
    };
    // Parameters are numbered in the order they appear in the text, and bound so.
    // The matching indices first (at most `limit`, read newest first off the (term, idx)
    // key), then their leaves: the planner never walks the entries to meet the terms.
    let mut sql = String::from("SELECT e.idx, e.leaf FROM (SELECT t0.idx FROM log_terms t0");
    for i in 1..terms.len() {
        sql.push_str(&format!(
            " JOIN log_terms t{i} ON t{i}.term = {} AND t{i}.idx = t0.idx",
            next()
        ));
    }
    sql.push_str(&format!(
        " WHERE t0.term = {} AND t0.idx >= {} AND t0.idx < {} ORDER BY t0.idx DESC LIMIT {}) m \
         JOIN log_entries e ON e.idx = m.idx ORDER BY e.idx DESC",
        next(),
        next(),
        next(),
        next()
    ));
    Ok(on_conn!(c, c => {
        let mut q = sqlx::query_as(&sql);
        for term in &terms[1..] {
            q = q.bind(term);
        }
        q.bind(&terms[0]).bind(start).bind(end).bind(limit).fetch_all(&mut **c).await?
    }))
}

/// The latest stamp in the log: the greatest `max:` term.
pub(crate) async fn latest_stamp(c: &mut Conn<'_>) -> Result<Option<i128>, StoreError> {
    const SQL: &str = "SELECT term FROM log_terms WHERE term >= $1 AND term < $2 \
                       ORDER BY term DESC LIMIT 1";
    let row: Option<(String,)> = on_conn!(c, c => sqlx::query_as(SQL)
        .bind(MAX_PREFIX)
        .bind(MAX_END)
        .fetch_optional(&mut **c)
        .await?);
    Ok(row.and_then(|(t,)| search::term_nanos(MAX_PREFIX, &t)))
}

/// The first entry whose running latest stamp (`max:` term) is at least `term`'s.
pub(crate) async fn first_reaching(
    c: &mut Conn<'_>,
    term: &str,
) -> Result<Option<i64>, StoreError> {
    const SQL: &str = "SELECT idx FROM log_terms WHERE term >= $1 AND term < $2 \
                       ORDER BY term, idx LIMIT 1";
    let row: Option<(i64,)> = on_conn!(c, c => sqlx::query_as(SQL).bind(term).bind(MAX_END).fetch_optional(&mut **c).await?);
    Ok(row.map(|(i,)| i))
}

/// The last late entry (`late:` term) stamped before `term`'s time.
pub(crate) async fn last_late_before(
    c: &mut Conn<'_>,
    term: &str,
) -> Result<Option<i64>, StoreError> {
    const SQL: &str = "SELECT MAX(idx) FROM log_terms WHERE term >= $1 AND term < $2";
    let (i,): (Option<i64>,) = on_conn!(c, c => sqlx::query_as(SQL).bind(LATE_PREFIX).bind(term).fetch_one(&mut **c).await?);
    Ok(i)
}

/// Just past every `max:` term (`;` follows `:`).
const MAX_END: &str = "max;";

/// The backfill still to do: `(done, upto)`; `None` before migration 0004.
pub(crate) async fn terms_backfill(c: &mut Conn<'_>) -> Result<Option<(i64, i64)>, StoreError> {
    const SQL: &str = "SELECT done, upto FROM log_terms_backfill WHERE id = 1";
    Ok(on_conn!(c, c => sqlx::query_as(SQL).fetch_optional(&mut **c).await?))
}

/// Moves the backfill's progress forward to `done`.
pub(crate) async fn advance_terms_backfill(c: &mut Conn<'_>, done: i64) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE log_terms_backfill SET done = $1 WHERE id = 1 AND done < $1";
    on_conn!(c, c => { sqlx::query(SQL).bind(done).execute(&mut **c).await?; });
    Ok(())
}
