//! The log's own tables: its identity (`log_meta`), its head (`log_head`, moved only by
//! compare-and-swap on its size), the entries, the stored subtree hashes and the signed
//! checkpoints.

use super::{Conn, INSERT_CHUNK, insert_chunked, on_conn};
use crate::StoreError;

/// The log head row.
pub(crate) struct HeadRow {
    pub(crate) size: i64,
    pub(crate) root: Vec<u8>,
    pub(crate) checkpoint: String,
}

/// The log head. `lock` takes the row lock that serialises appenders on PostgreSQL; on
/// SQLite the `BEGIN IMMEDIATE` that opened the transaction already holds the write lock.
pub(crate) async fn head(c: &mut Conn<'_>, lock: bool) -> Result<Option<HeadRow>, StoreError> {
    const PLAIN: &str = "SELECT size, root, checkpoint FROM log_head WHERE id = 1";
    const LOCKING: &str = "SELECT size, root, checkpoint FROM log_head WHERE id = 1 FOR UPDATE";
    let row: Option<(i64, Vec<u8>, String)> = match c {
        Conn::Sqlite(c) => sqlx::query_as(PLAIN).fetch_optional(&mut **c).await?,
        Conn::Postgres(c) => {
            let sql = if lock { LOCKING } else { PLAIN };
            sqlx::query_as(sql).fetch_optional(&mut **c).await?
        }
    };
    Ok(row.map(|(size, root, checkpoint)| HeadRow {
        size,
        root,
        checkpoint,
    }))
}

/// Whether the ledger's tables exist (checked before migrating, so that opening a wrong
/// database never creates an empty ledger in it).
pub(crate) async fn has_ledger(c: &mut Conn<'_>) -> Result<bool, StoreError> {
    const SQLITE: &str =
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'log_meta'";
    const POSTGRES: &str = "SELECT COUNT(*) FROM pg_catalog.pg_tables \
                            WHERE tablename = 'log_meta' AND schemaname = current_schema()";
    let (n,): (i64,) = match c {
        Conn::Sqlite(c) => sqlx::query_as(SQLITE).fetch_one(&mut **c).await?,
        Conn::Postgres(c) => sqlx::query_as(POSTGRES).fetch_one(&mut **c).await?,
    };
    Ok(n > 0)
}

/// The log's origin and verifier key, if the ledger was created.
pub(crate) async fn meta(c: &mut Conn<'_>) -> Result<Option<(String, String)>, StoreError> {
    const SQL: &str = "SELECT origin, log_key FROM log_meta WHERE id = 1";
    Ok(on_conn!(c, c => sqlx::query_as(SQL).fetch_optional(&mut **c).await?))
}

/// Records the log's identity and its empty head (ledger creation).
pub(crate) async fn create_log(
    c: &mut Conn<'_>,
    origin: &str,
    log_key: &str,
    created_at: &str,
    empty_root: &[u8],
    checkpoint: &str,
) -> Result<(), StoreError> {
    const META: &str =
        "INSERT INTO log_meta (id, origin, log_key, created_at) VALUES (1, $1, $2, $3)";
    const HEAD: &str = "INSERT INTO log_head (id, size, root, checkpoint) VALUES (1, 0, $1, $2)";
    const CHECKPOINT: &str = "INSERT INTO log_checkpoints (size, note) VALUES (0, $1)";
    on_conn!(c, c => {
        sqlx::query(META).bind(origin).bind(log_key).bind(created_at).execute(&mut **c).await?;
        sqlx::query(HEAD).bind(empty_root).bind(checkpoint).execute(&mut **c).await?;
        sqlx::query(CHECKPOINT).bind(checkpoint).execute(&mut **c).await?;
    });
    Ok(())
}

/// Moves the head from `old_size` to a new checkpoint; the compare-and-swap that keeps the
/// head moving forward only. Returns false if the head was not at `old_size`.
pub(crate) async fn advance_head(
    c: &mut Conn<'_>,
    old_size: i64,
    new_size: i64,
    root: &[u8],
    checkpoint: &str,
) -> Result<bool, StoreError> {
    const SQL: &str =
        "UPDATE log_head SET size = $1, root = $2, checkpoint = $3 WHERE id = 1 AND size = $4";
    let rows = on_conn!(c, c => sqlx::query(SQL)
        .bind(new_size).bind(root).bind(checkpoint).bind(old_size)
        .execute(&mut **c).await?.rows_affected());
    Ok(rows == 1)
}

/// Stored node hashes for `ids` (any order; missing ids are absent).
pub(crate) async fn nodes(
    c: &mut Conn<'_>,
    ids: &[i64],
) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id, hash FROM log_nodes WHERE id IN ({})",
        c.dialect().placeholders(ids.len())
    );
    Ok(on_conn!(c, c => {
        let mut q = sqlx::query_as(&sql);
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(&mut **c).await?
    }))
}

/// Inserts leaves at consecutive indices from `first`.
pub(crate) async fn insert_entries(
    c: &mut Conn<'_>,
    first: i64,
    leaves: &[&[u8]],
) -> Result<(), StoreError> {
    let mut index = first;
    insert_chunked!(
        c,
        leaves,
        INSERT_CHUNK,
        "INSERT INTO log_entries (idx, leaf) VALUES {}",
        2,
        |q, leaf| {
            let q = q.bind(index).bind(*leaf);
            index += 1;
            q
        }
    );
    Ok(())
}

/// Inserts node hashes.
pub(crate) async fn insert_nodes(
    c: &mut Conn<'_>,
    rows: &[(i64, [u8; 32])],
) -> Result<(), StoreError> {
    insert_chunked!(
        c,
        rows,
        INSERT_CHUNK,
        "INSERT INTO log_nodes (id, hash) VALUES {}",
        2,
        |q, (id, hash)| q.bind(*id).bind(&hash[..])
    );
    Ok(())
}

/// Stores a signed checkpoint.
pub(crate) async fn insert_checkpoint(
    c: &mut Conn<'_>,
    size: i64,
    note: &str,
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO log_checkpoints (size, note) VALUES ($1, $2)";
    on_conn!(c, c => {
        sqlx::query(SQL).bind(size).bind(note).execute(&mut **c).await?;
    });
    Ok(())
}

/// Stored checkpoints from `from_size` on, oldest first.
pub(crate) async fn checkpoints(
    c: &mut Conn<'_>,
    from_size: i64,
    limit: i64,
) -> Result<Vec<(i64, String)>, StoreError> {
    const SQL: &str =
        "SELECT size, note FROM log_checkpoints WHERE size >= $1 ORDER BY size LIMIT $2";
    Ok(on_conn!(c, c => sqlx::query_as(SQL).bind(from_size).bind(limit).fetch_all(&mut **c).await?))
}

/// The newest checkpoint stored (its size and signed note), if any.
pub(crate) async fn newest_checkpoint(
    c: &mut Conn<'_>,
) -> Result<Option<(i64, String)>, StoreError> {
    const SQL: &str = "SELECT size, note FROM log_checkpoints ORDER BY size DESC LIMIT 1";
    Ok(on_conn!(c, c => sqlx::query_as(SQL).fetch_optional(&mut **c).await?))
}

/// The index of the last entry stored, if any.
pub(crate) async fn newest_entry(c: &mut Conn<'_>) -> Result<Option<i64>, StoreError> {
    const SQL: &str = "SELECT MAX(idx) FROM log_entries";
    let (last,): (Option<i64>,) = on_conn!(c, c => sqlx::query_as(SQL).fetch_one(&mut **c).await?);
    Ok(last)
}

/// Leaves `[start, end)`.
pub(crate) async fn entries(
    c: &mut Conn<'_>,
    start: i64,
    end: i64,
) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
    const SQL: &str = "SELECT idx, leaf FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx";
    Ok(on_conn!(c, c => sqlx::query_as(SQL).bind(start).bind(end).fetch_all(&mut **c).await?))
}

/// Whether a checkpoint of `size` is stored.
pub(crate) async fn checkpoint_stored(c: &mut Conn<'_>, size: i64) -> Result<bool, StoreError> {
    const SQL: &str = "SELECT COUNT(*) FROM log_checkpoints WHERE size = $1";
    let (n,): (i64,) = on_conn!(c, c => sqlx::query_as(SQL).bind(size).fetch_one(&mut **c).await?);
    Ok(n > 0)
}
