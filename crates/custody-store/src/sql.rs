//! Every SQL statement custody runs. The same text serves SQLite and PostgreSQL (both read
//! `$n` placeholders); the few places they differ say so.
//!
//! Each function takes a [`Conn`], which is either backend's connection, and runs its
//! query through `on_conn!`, which compiles the one body once per backend. That keeps one
//! copy of each statement without sqlx's generic-database bounds.

use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;

use crate::StoreError;
use crate::search::{self, LATE_PREFIX, MAX_PREFIX};

/// A borrowed connection of either backend.
pub(crate) enum Conn<'a> {
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
}

/// Runs `$body` with `$c` bound to the backend's `&mut &mut Connection`.
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            Conn::Sqlite($c) => $body,
            Conn::Postgres($c) => $body,
        }
    };
}
pub(crate) use on_conn;

/// Rows per multi-row `INSERT` (well under SQLite's 32,766 bound parameters).
const INSERT_CHUNK: usize = 500;

/// Whether a multi-row statement of `rows` rows is kept prepared in the connection's
/// statement cache: the few shapes that recur (small batches, full chunks). A group commit's
/// batches come in every size, and keeping each size's statement (up to the cache's 100 per
/// connection, each holding its parsed SQL for up to 500 rows) made a busy server's memory
/// creep up by tens of MiB.
fn kept(rows: usize) -> bool {
    rows <= 8 || rows == INSERT_CHUNK
}

impl Conn<'_> {
    fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(_) => Dialect::Postgres,
        }
    }
}

/// How a backend's SQL spells a bound parameter.
#[derive(Debug, Clone, Copy)]
enum Dialect {
    /// An anonymous `?`. (SQLite finds a numbered parameter's name by scanning all of them,
    /// so binding a 500-row insert written with `$n` took time quadratic in its parameters.)
    Sqlite,
    /// `$n`.
    Postgres,
}

impl Dialect {
    /// `(…),(…)` for `rows` rows of `width` parameters, bound in order.
    fn values_list(self, rows: usize, width: usize) -> String {
        let mut s = String::with_capacity(rows * width * 5);
        let mut n = 0;
        for r in 0..rows {
            s.push_str(if r == 0 { "(" } else { ",(" });
            for c in 0..width {
                if c > 0 {
                    s.push(',');
                }
                n += 1;
                self.push_parameter(&mut s, n);
            }
            s.push(')');
        }
        s
    }

    /// `n` parameters separated by commas, bound in order.
    fn placeholders(self, n: usize) -> String {
        let mut s = String::with_capacity(n * 5);
        for i in 1..=n {
            if i > 1 {
                s.push(',');
            }
            self.push_parameter(&mut s, i);
        }
        s
    }

    fn push_parameter(self, s: &mut String, n: usize) {
        match self {
            Dialect::Sqlite => s.push('?'),
            Dialect::Postgres => {
                s.push('$');
                s.push_str(&n.to_string());
            }
        }
    }
}

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

/// Changes the probe row: a write outside the ledger, to learn whether a write transaction
/// can commit (see `Readiness`).
pub(crate) async fn probe(c: &mut Conn<'_>) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE store_probe SET n = n + 1 WHERE id = 1";
    on_conn!(c, c => {
        sqlx::query(SQL).execute(&mut **c).await?;
    });
    Ok(())
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
    for chunk in leaves.chunks(INSERT_CHUNK) {
        let sql = format!(
            "INSERT INTO log_entries (idx, leaf) VALUES {}",
            c.dialect().values_list(chunk.len(), 2)
        );
        on_conn!(c, c => {
            let mut q = sqlx::query(&sql).persistent(kept(chunk.len()));
            for leaf in chunk {
                q = q.bind(index).bind(*leaf);
                index += 1;
            }
            q.execute(&mut **c).await?;
        });
    }
    Ok(())
}

/// Inserts node hashes.
pub(crate) async fn insert_nodes(
    c: &mut Conn<'_>,
    rows: &[(i64, [u8; 32])],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(INSERT_CHUNK) {
        let sql = format!(
            "INSERT INTO log_nodes (id, hash) VALUES {}",
            c.dialect().values_list(chunk.len(), 2)
        );
        on_conn!(c, c => {
            let mut q = sqlx::query(&sql).persistent(kept(chunk.len()));
            for (id, hash) in chunk {
                q = q.bind(*id).bind(&hash[..]);
            }
            q.execute(&mut **c).await?;
        });
    }
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

/// Records the search terms of entries: `(term, index)` rows. A row already there is left
/// as it is (two writers may backfill the same entries).
pub(crate) async fn insert_terms(
    c: &mut Conn<'_>,
    rows: &[(String, i64)],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(INSERT_CHUNK) {
        let sql = format!(
            "INSERT INTO log_terms (term, idx) VALUES {} ON CONFLICT (term, idx) DO NOTHING",
            c.dialect().values_list(chunk.len(), 2)
        );
        on_conn!(c, c => {
            let mut q = sqlx::query(&sql).persistent(kept(chunk.len()));
            for (term, idx) in chunk {
                q = q.bind(term).bind(*idx);
            }
            q.execute(&mut **c).await?;
        });
    }
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
    for chunk in rows.chunks(INSERT_CHUNK / 3) {
        let sql = format!(
            "INSERT INTO state (kind, key, version, value, log_index) VALUES {} \
             ON CONFLICT (kind, key) DO UPDATE SET version = excluded.version, \
             value = excluded.value, log_index = excluded.log_index",
            c.dialect().values_list(chunk.len(), 5)
        );
        on_conn!(c, c => {
            let mut q = sqlx::query(&sql).persistent(kept(chunk.len()));
            for (kind, key, version, value, log_index) in chunk {
                q = q.bind(kind).bind(key).bind(*version).bind(value).bind(*log_index);
            }
            q.execute(&mut **c).await?;
        });
    }
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
    for chunk in rows.chunks(INSERT_CHUNK / 3) {
        let sql = format!(
            "INSERT INTO idempotency (key, fingerprint, first_index, count, tree_size) VALUES {}",
            c.dialect().values_list(chunk.len(), 5)
        );
        on_conn!(c, c => {
            let mut q = sqlx::query(&sql).persistent(kept(chunk.len()));
            for (key, fingerprint, first, count, size) in chunk {
                q = q.bind(*key).bind(*fingerprint).bind(*first).bind(*count).bind(*size);
            }
            q.execute(&mut **c).await?;
        });
    }
    Ok(())
}

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
    for chunk in rows.chunks(INSERT_CHUNK / 4) {
        let sql = format!(
            "INSERT INTO access_last_use (principal, outcome, at, at_ns) VALUES {} \
             ON CONFLICT (principal, outcome) DO UPDATE SET at = excluded.at, at_ns = excluded.at_ns \
             WHERE excluded.at_ns > access_last_use.at_ns",
            c.dialect().values_list(chunk.len(), 4)
        );
        on_conn!(c, c => {
            let mut q = sqlx::query(&sql).persistent(kept(chunk.len()));
            for (principal, outcome, at, ns) in chunk {
                q = q.bind(*principal).bind(*outcome).bind(*at).bind(*ns);
            }
            q.execute(&mut **c).await?;
        });
    }
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

/// Whether a checkpoint of `size` is stored.
pub(crate) async fn checkpoint_stored(c: &mut Conn<'_>, size: i64) -> Result<bool, StoreError> {
    const SQL: &str = "SELECT COUNT(*) FROM log_checkpoints WHERE size = $1";
    let (n,): (i64,) = on_conn!(c, c => sqlx::query_as(SQL).bind(size).fetch_one(&mut **c).await?);
    Ok(n > 0)
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

/// Bytes the database occupies (SQLite: pages in the main file; PostgreSQL: the database).
pub(crate) async fn database_bytes(c: &mut Conn<'_>) -> Result<i64, StoreError> {
    const SQLITE: &str =
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()";
    const POSTGRES: &str = "SELECT pg_database_size(current_database())";
    let (bytes,): (i64,) = match c {
        Conn::Sqlite(c) => sqlx::query_as(SQLITE).fetch_one(&mut **c).await?,
        Conn::Postgres(c) => sqlx::query_as(POSTGRES).fetch_one(&mut **c).await?,
    };
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_lists_number_every_column() {
        let pg = Dialect::Postgres;
        assert_eq!(pg.values_list(2, 3), "($1,$2,$3),($4,$5,$6)");
        assert_eq!(pg.placeholders(3), "$1,$2,$3");
        let sqlite = Dialect::Sqlite;
        assert_eq!(sqlite.values_list(2, 2), "(?,?),(?,?)");
        assert_eq!(sqlite.placeholders(3), "?,?,?");
    }
}
