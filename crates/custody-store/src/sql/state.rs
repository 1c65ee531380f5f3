//! The state cache (`state`: the records projected from the ledger, written in the
//! transaction of the events that change them) and the idempotency records of appends.

use super::{Conn, INSERT_CHUNK, insert_chunked, on_conn};
use crate::StoreError;

/// A state row: `(kind, key, version, value, log_index)`.
pub(crate) type StateRow = (String, String, i64, String, i64);

/// The version of one state record.
pub(crate) async fn state_version(
    c: &mut Conn<'_>,
    kind: &str,
    key: &str,
) -> Result<Option<i64>, StoreError> {
    const SQL: &str = "SELECT version FROM state WHERE kind = $1 AND key = $2";
    let row: Option<(i64,)> =
        on_conn!(c, c => sqlx::query_as(SQL).bind(kind).bind(key).fetch_optional(&mut **c).await?);
    Ok(row.map(|(v,)| v))
}

/// Removes state records (each row's kind and key).
pub(crate) async fn delete_state(c: &mut Conn<'_>, rows: &[StateRow]) -> Result<(), StoreError> {
    const SQL: &str = "DELETE FROM state WHERE kind = $1 AND key = $2";
    for (kind, key, ..) in rows {
        on_conn!(c, c => { sqlx::query(SQL).bind(kind).bind(key).execute(&mut **c).await?; });
    }
    Ok(())
}

/// Writes state records (insert or overwrite).
pub(crate) async fn upsert_state(c: &mut Conn<'_>, rows: &[StateRow]) -> Result<(), StoreError> {
    insert_chunked!(
        c,
        rows,
        INSERT_CHUNK / 3,
        "INSERT INTO state (kind, key, version, value, log_index) VALUES {} \
         ON CONFLICT (kind, key) DO UPDATE SET version = excluded.version, \
         value = excluded.value, log_index = excluded.log_index",
        5,
        |q, (kind, key, version, value, log_index)| q
            .bind(kind)
            .bind(key)
            .bind(*version)
            .bind(value)
            .bind(*log_index)
    );
    Ok(())
}

/// One state record.
pub(crate) async fn state(
    c: &mut Conn<'_>,
    kind: &str,
    key: &str,
) -> Result<Option<StateRow>, StoreError> {
    const SQL: &str =
        "SELECT kind, key, version, value, log_index FROM state WHERE kind = $1 AND key = $2";
    Ok(on_conn!(c, c => sqlx::query_as(SQL).bind(kind).bind(key).fetch_optional(&mut **c).await?))
}

/// State records by kind and key, in one round trip: the rows that exist, in no order.
/// At most [`STATES_AT_ONCE`] keys a call.
pub(crate) async fn states_by_key(
    c: &mut Conn<'_>,
    keys: &[(&str, &str)],
) -> Result<Vec<StateRow>, StoreError> {
    by_keys(c, "kind, key, version, value, log_index", keys).await
}

/// The versions of the state records that exist among `keys`, in one round trip, in no
/// order. At most [`STATES_AT_ONCE`] keys a call.
pub(crate) async fn state_versions(
    c: &mut Conn<'_>,
    keys: &[(&str, &str)],
) -> Result<Vec<(String, String, i64)>, StoreError> {
    by_keys(c, "kind, key, version", keys).await
}

/// `columns` of the state records that exist among `keys`.
async fn by_keys<R>(
    c: &mut Conn<'_>,
    columns: &str,
    keys: &[(&str, &str)],
) -> Result<Vec<R>, StoreError>
where
    R: Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {columns} FROM state WHERE {}", any_of(keys.len()));
    Ok(on_conn!(c, c => {
        let mut q = sqlx::query_as(&sql);
        for (kind, key) in keys {
            q = q.bind(*kind).bind(*key);
        }
        q.persistent(keys.len() <= 16).fetch_all(&mut **c).await?
    }))
}

/// The condition matching `n` kind/key pairs bound in order: one statement shape per key
/// count, `(kind = $1 AND key = $2) OR …`, which SQLite and PostgreSQL both answer with one
/// primary-key lookup a key.
fn any_of(n: usize) -> String {
    let wanted: Vec<String> = (0..n)
        .map(|i| format!("(kind = ${} AND key = ${})", 2 * i + 1, 2 * i + 2))
        .collect();
    wanted.join(" OR ")
}

/// Keys [`states_by_key`] and [`state_versions`] read at most in one call.
pub(crate) const STATES_AT_ONCE: usize = 64;

/// State records of `kind` after `after` in key order.
pub(crate) async fn states(
    c: &mut Conn<'_>,
    kind: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<StateRow>, StoreError> {
    const SQL: &str = "SELECT kind, key, version, value, log_index FROM state \
                       WHERE kind = $1 AND key > $2 ORDER BY key LIMIT $3";
    Ok(
        on_conn!(c, c => sqlx::query_as(SQL).bind(kind).bind(after).bind(limit).fetch_all(&mut **c).await?),
    )
}

/// An idempotency row: `(fingerprint, first_index, count, tree_size)`.
pub(crate) type IdempotencyRow = (Vec<u8>, i64, i64, i64);

/// The stored result of an append with this idempotency key.
pub(crate) async fn idempotency(
    c: &mut Conn<'_>,
    key: &str,
) -> Result<Option<IdempotencyRow>, StoreError> {
    const SQL: &str =
        "SELECT fingerprint, first_index, count, tree_size FROM idempotency WHERE key = $1";
    Ok(on_conn!(c, c => sqlx::query_as(SQL).bind(key).fetch_optional(&mut **c).await?))
}

/// A new idempotency record: `(key, fingerprint, first_index, count, tree_size)`.
pub(crate) type NewIdempotencyRow<'a> = (&'a str, &'a [u8], i64, i64, i64);

/// Records appends' results under their idempotency keys.
pub(crate) async fn insert_idempotency(
    c: &mut Conn<'_>,
    rows: &[NewIdempotencyRow<'_>],
) -> Result<(), StoreError> {
    insert_chunked!(
        c,
        rows,
        INSERT_CHUNK / 3,
        "INSERT INTO idempotency (key, fingerprint, first_index, count, tree_size) VALUES {}",
        5,
        |q, (key, fingerprint, first, count, size)| q
            .bind(*key)
            .bind(*fingerprint)
            .bind(*first)
            .bind(*count)
            .bind(*size)
    );
    Ok(())
}
