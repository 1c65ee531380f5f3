//! Every SQL statement custody runs. The same text serves SQLite and PostgreSQL (both read
//! `$n` placeholders); the few places they differ say so.
//!
//! Each function takes a [`Conn`], which is either backend's connection, and runs its
//! query through `on_conn!`, which compiles the one body once per backend. That keeps one
//! copy of each statement without sqlx's generic-database bounds.
//!
//! The statements are grouped by the tables they touch: `ledger.rs` (the log's head,
//! entries, stored hashes and checkpoints), `terms.rs` (the search index and its backfill),
//! `state.rs` (the state cache and idempotency records), `side.rs` (what is written beside
//! the ledger, outside its lock: the access log, last uses, witness cosignatures). This file
//! holds what they share: the connection, the parameter dialect and chunked inserts.

use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;

use crate::StoreError;

mod ledger;
mod side;
mod state;
mod terms;

pub(crate) use ledger::{
    HeadRow, advance_head, checkpoint_stored, checkpoints, create_log, entries, has_ledger, head,
    insert_checkpoint, insert_entries, insert_nodes, meta, newest_checkpoint, newest_entry, nodes,
};
pub(crate) use side::{
    AccessRow, LastUseRow, access_ids, access_log, cosignatures, first_access_since, insert_access,
    insert_cosignature, last_uses, latest_cosigned, prune_access, upsert_last_uses,
};
pub(crate) use state::{
    NewIdempotencyRow, STATES_AT_ONCE, StateRow, delete_state, idempotency, insert_idempotency,
    state, state_version, state_versions, states, states_by_key, upsert_state,
};
pub(crate) use terms::{
    advance_terms_backfill, first_reaching, insert_terms, last_late_before, latest_stamp, search,
    terms_backfill,
};

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

/// Inserts `$rows` with one multi-row statement per chunk of at most `$chunk` rows: `$sql`
/// is the statement with `{}` where its `VALUES` list goes, `$width` parameters a row, and
/// `|$q, $row| $bind` binds one row's parameters to the query `$q`, in column order. Only
/// the shapes [`kept`] names stay prepared.
macro_rules! insert_chunked {
    ($c:expr, $rows:expr, $chunk:expr, $sql:literal, $width:expr, |$q:ident, $row:pat_param| $bind:expr $(,)?) => {
        for chunk in $rows.chunks($chunk) {
            let sql = format!($sql, $c.dialect().values_list(chunk.len(), $width));
            $crate::sql::on_conn!($c, c => {
                let mut q = sqlx::query(&sql).persistent($crate::sql::kept(chunk.len()));
                for $row in chunk {
                    let $q = q;
                    q = $bind;
                }
                q.execute(&mut **c).await?;
            });
        }
    };
}
use insert_chunked;

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

/// Changes the probe row: a write outside the ledger, to learn whether a write transaction
/// can commit (see `Readiness`).
pub(crate) async fn probe(c: &mut Conn<'_>) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE store_probe SET n = n + 1 WHERE id = 1";
    on_conn!(c, c => {
        sqlx::query(SQL).execute(&mut **c).await?;
    });
    Ok(())
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
