//! What is written beside the ledger, by the read pool and outside the log's lock: the
//! access log (appended in bounded pieces, pruned only below a bound its trigger checks),
//! each principal's last use, and witnesses' cosignatures of stored checkpoints.

use super::{Conn, INSERT_CHUNK, insert_chunked, on_conn};
use crate::StoreError;

/// Appends access log rows in as few statements as possible without preparing a statement
/// for every length: full chunks of [`ACCESS_CHUNK`] rows, then the rest in power-of-two
/// pieces (a remainder of 100 is 64 + 32 + 4), so a batch of `n` rows takes at most
/// `n / ACCESS_CHUNK + log2(ACCESS_CHUNK)` statements and only `log2(ACCESS_CHUNK) + 1`
/// shapes are ever prepared in a connection's statement cache. (Each statement is a round
/// trip to SQLite's worker thread: writing the remainder a row at a time cost a busy deploy
/// gate a fifth of its CPU.)
pub(crate) async fn insert_access(
    c: &mut Conn<'_>,
    rows: &[crate::AccessEntry],
) -> Result<(), StoreError> {
    let mut rest = rows;
    while !rest.is_empty() {
        let size = if rest.len() >= ACCESS_CHUNK {
            ACCESS_CHUNK
        } else {
            1 << rest.len().ilog2()
        };
        let (piece, after) = rest.split_at(size);
        rest = after;
        let sql = format!(
            "INSERT INTO access_log (at, principal, credential, method, path, remote, status, outcome) VALUES {}",
            c.dialect().values_list(size, 8)
        );
        on_conn!(c, c => {
            let mut q = sqlx::query(&sql);
            for r in piece {
                q = q
                    .bind(&r.at)
                    .bind(&r.principal)
                    .bind(&r.credential)
                    .bind(&r.method)
                    .bind(&r.path)
                    .bind(&r.remote)
                    .bind(i64::from(r.status))
                    .bind(&r.outcome);
            }
            q.execute(&mut **c).await?;
        });
    }
    Ok(())
}

/// A last use to keep: (principal, outcome, at, at in nanoseconds since the epoch).
pub(crate) type LastUseRow<'a> = (&'a str, &'a str, &'a str, i64);

/// Keeps the latest use of each (principal, outcome): a row is replaced only by a later
/// one, whichever server's batch commits first.
pub(crate) async fn upsert_last_uses(
    c: &mut Conn<'_>,
    rows: &[LastUseRow<'_>],
) -> Result<(), StoreError> {
    insert_chunked!(
        c,
        rows,
        INSERT_CHUNK / 4,
        "INSERT INTO access_last_use (principal, outcome, at, at_ns) VALUES {} \
         ON CONFLICT (principal, outcome) DO UPDATE SET at = excluded.at, at_ns = excluded.at_ns \
         WHERE excluded.at_ns > access_last_use.at_ns",
        4,
        |q, (principal, outcome, at, ns)| q.bind(*principal).bind(*outcome).bind(*at).bind(*ns)
    );
    Ok(())
}

/// Every (principal, outcome, at) kept by [`upsert_last_uses`].
pub(crate) async fn last_uses(
    c: &mut Conn<'_>,
) -> Result<Vec<(String, String, String)>, StoreError> {
    const SQL: &str =
        "SELECT principal, outcome, at FROM access_last_use ORDER BY principal, outcome";
    Ok(on_conn!(c, c => sqlx::query_as(SQL).fetch_all(&mut **c).await?))
}

/// Rows per access-log insert statement at most (a power of two, 2,048 parameters).
const ACCESS_CHUNK: usize = 256;

/// An access log row: `(id, at, principal, credential, method, path, remote, status, outcome)`.
pub(crate) type AccessRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    String,
);

/// Access log rows after `after`, oldest first.
pub(crate) async fn access_log(
    c: &mut Conn<'_>,
    after: i64,
    limit: i64,
) -> Result<Vec<AccessRow>, StoreError> {
    const SQL: &str = "SELECT id, at, principal, credential, method, path, remote, status, outcome \
                       FROM access_log WHERE id > $1 ORDER BY id LIMIT $2";
    Ok(on_conn!(c, c => sqlx::query_as(SQL).bind(after).bind(limit).fetch_all(&mut **c).await?))
}

/// Keeps a cosignature line unless the witness already cosigned that size; whether it did.
pub(crate) async fn insert_cosignature(
    c: &mut Conn<'_>,
    size: i64,
    witness: &str,
    line: &str,
) -> Result<bool, StoreError> {
    const SQL: &str = "INSERT INTO log_cosignatures (size, witness, line) VALUES ($1, $2, $3) \
                       ON CONFLICT (size, witness) DO NOTHING";
    let done = on_conn!(c, c => sqlx::query(SQL).bind(size).bind(witness).bind(line).execute(&mut **c).await?.rows_affected());
    Ok(done == 1)
}

/// The cosignature lines on the checkpoint of `size`: (witness, line).
pub(crate) async fn cosignatures(
    c: &mut Conn<'_>,
    size: i64,
) -> Result<Vec<(String, String)>, StoreError> {
    const SQL: &str = "SELECT witness, line FROM log_cosignatures WHERE size = $1 ORDER BY witness";
    Ok(on_conn!(c, c => sqlx::query_as(SQL).bind(size).fetch_all(&mut **c).await?))
}

/// The largest size at least `quorum` of `witnesses` cosigned.
pub(crate) async fn latest_cosigned(
    c: &mut Conn<'_>,
    witnesses: &[String],
    quorum: i64,
) -> Result<Option<i64>, StoreError> {
    let sql = format!(
        "SELECT size FROM log_cosignatures WHERE witness IN ({}) GROUP BY size \
         HAVING COUNT(*) >= {} ORDER BY size DESC LIMIT 1",
        c.dialect().placeholders(witnesses.len()),
        quorum
    );
    let row: Option<(i64,)> = on_conn!(c, c => {
        let mut q = sqlx::query_as(&sql);
        for w in witnesses {
            q = q.bind(w);
        }
        q.fetch_optional(&mut **c).await?
    });
    Ok(row.map(|(s,)| s))
}

/// The id of the first access-log entry recorded at or after `before`, if any (scans from
/// the oldest: it reads exactly the entries a prune removes, plus one).
pub(crate) async fn first_access_since(
    c: &mut Conn<'_>,
    before: &str,
) -> Result<Option<i64>, StoreError> {
    const SQL: &str = "SELECT id FROM access_log WHERE at >= $1 ORDER BY id LIMIT 1";
    Ok(on_conn!(c, c => sqlx::query_scalar(SQL).bind(before).fetch_optional(&mut **c).await?))
}

/// The smallest and largest access-log ids, if there is an entry.
pub(crate) async fn access_ids(c: &mut Conn<'_>) -> Result<Option<(i64, i64)>, StoreError> {
    const SQL: &str = "SELECT MIN(id), MAX(id) FROM access_log";
    let (low, high): (Option<i64>, Option<i64>) =
        on_conn!(c, c => sqlx::query_as(SQL).fetch_one(&mut **c).await?);
    Ok(low.zip(high))
}

/// Removes the access-log entries with ids in `[from, below)`: the bound is raised first,
/// so the table's trigger lets exactly those go.
pub(crate) async fn prune_access(
    c: &mut Conn<'_>,
    from: i64,
    below: i64,
) -> Result<u64, StoreError> {
    const BOUND: &str = "UPDATE access_prune SET below = $1 WHERE id = 1 AND below < $1";
    const DELETE: &str = "DELETE FROM access_log WHERE id >= $1 AND id < $2";
    Ok(on_conn!(c, c => {
        sqlx::query(BOUND).bind(below).execute(&mut **c).await?;
        sqlx::query(DELETE).bind(from).bind(below).execute(&mut **c).await?.rows_affected()
    }))
}
