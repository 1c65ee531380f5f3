//! Connecting to a backend: where the database is, its pools, connections, transactions
//! and migrations.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Executor, Postgres, Sqlite};

use crate::StoreError;
use crate::sql::Conn;

/// How long a writer waits for another process's write lock before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(60);
/// How long a PostgreSQL connection is waited for. Lock waits happen inside the server
/// (statements wait there), so this bounds only a free slot in the pool or a new
/// connection: while the server is down, sqlx retries connecting for this long, and every
/// write and readiness probe would hang as long before saying the storage is failing.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Where a ledger lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite database file (the embedded default).
    Sqlite(PathBuf),
    /// A PostgreSQL database, by `postgres://` URL.
    Postgres(String),
}

impl Location {
    /// `postgres://…` or `postgresql://…` is PostgreSQL; `sqlite:PATH` or any other text is
    /// an SQLite file path.
    pub fn parse(text: &str) -> Location {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Location::Postgres(text.to_owned())
        } else {
            Location::Sqlite(PathBuf::from(text.strip_prefix("sqlite:").unwrap_or(text)))
        }
    }

    /// A description for messages, without any password.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres(url) => redact_password(url),
        }
    }
}

fn redact_password(url: &str) -> String {
    // postgres://user:password@host/db → postgres://user:***@host/db
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// The settings that make a commit durable, as one connection has them in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Durability {
    /// An SQLite connection.
    Sqlite {
        /// `PRAGMA journal_mode` (custody sets `wal`).
        journal_mode: String,
        /// `PRAGMA synchronous` (custody sets 2, `FULL`: the WAL is fsync'd at each commit).
        synchronous: i64,
    },
    /// A PostgreSQL connection.
    Postgres {
        /// `SHOW synchronous_commit` (custody sets `on`).
        synchronous_commit: String,
    },
}

/// A pool of either backend.
#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A pooled connection of either backend.
pub(crate) enum PooledConn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl PooledConn {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            PooledConn::Sqlite(c) => Conn::Sqlite(c),
            PooledConn::Postgres(c) => Conn::Postgres(c),
        }
    }
}

/// A write transaction holding the log's write lock, on a connection of its own.
///
/// It is begun, committed and rolled back with plain SQL rather than sqlx's `Transaction`,
/// whose bookkeeping of the connection's transaction depth can part from the database's:
/// when SQLite fails a statement or a `COMMIT` with `SQLITE_FULL` (disk full) it rolls the
/// transaction back itself, sqlx's own `ROLLBACK` then fails, its depth stays at one, and
/// every later `BEGIN` on that pooled connection was refused ("attempted to call begin_with
/// at non-zero transaction depth") until a restart. Here a transaction not finished by a
/// successful `COMMIT` or `ROLLBACK` (an error, a failed commit, a dropped future) closes
/// its connection instead of returning it to the pool: its state is unknown, and a new
/// connection costs far less than a stuck one.
pub(crate) struct Tx {
    conn: PooledConn,
    /// True until `COMMIT` or `ROLLBACK` succeeded.
    open: bool,
}

impl Tx {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        self.conn.conn()
    }

    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.execute("COMMIT").await?;
        self.open = false;
        Ok(())
    }

    /// Ends the transaction writing nothing (a batch that had nothing to write).
    pub(crate) async fn rollback(mut self) -> Result<(), sqlx::Error> {
        self.execute("ROLLBACK").await?;
        self.open = false;
        Ok(())
    }

    async fn execute(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        match &mut self.conn {
            PooledConn::Sqlite(c) => {
                c.execute(sql).await?;
            }
            PooledConn::Postgres(c) => {
                c.execute(sql).await?;
            }
        }
        Ok(())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open {
            match &mut self.conn {
                PooledConn::Sqlite(c) => c.close_on_drop(),
                PooledConn::Postgres(c) => c.close_on_drop(),
            }
        }
    }
}

impl Pool {
    pub(crate) async fn acquire(&self) -> Result<PooledConn, StoreError> {
        Ok(match self {
            Pool::Sqlite(p) => PooledConn::Sqlite(p.acquire().await?),
            Pool::Postgres(p) => PooledConn::Postgres(p.acquire().await?),
        })
    }

    /// Begins a write transaction. SQLite takes the database write lock at `BEGIN
    /// IMMEDIATE` (so two processes never deadlock upgrading a read lock); PostgreSQL takes
    /// the log head's row lock at its first locking read.
    pub(crate) async fn begin_write(&self) -> Result<Tx, StoreError> {
        let (conn, begin) = match self {
            Pool::Sqlite(p) => (PooledConn::Sqlite(p.acquire().await?), "BEGIN IMMEDIATE"),
            Pool::Postgres(p) => (PooledConn::Postgres(p.acquire().await?), "BEGIN"),
        };
        // Open from the start: a `BEGIN` that failed midway leaves the state unknown too.
        let mut tx = Tx { conn, open: true };
        tx.execute(begin).await?;
        Ok(tx)
    }

    pub(crate) async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Pool::Sqlite(p) => sqlx::migrate!("./migrations/sqlite").run(p).await?,
            Pool::Postgres(p) => sqlx::migrate!("./migrations/postgres").run(p).await?,
        }
        Ok(())
    }

    /// The durability settings in effect on every connection the pool can hold: it
    /// acquires as many as it may open and holds them all while it reads, so each answer
    /// is a distinct connection's.
    pub(crate) async fn durability(&self) -> Result<Vec<Durability>, StoreError> {
        let mut out = Vec::new();
        match self {
            Pool::Sqlite(p) => {
                for c in &mut every_connection(p).await? {
                    let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                        .fetch_one(&mut **c)
                        .await?;
                    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                        .fetch_one(&mut **c)
                        .await?;
                    out.push(Durability::Sqlite {
                        journal_mode,
                        synchronous,
                    });
                }
            }
            Pool::Postgres(p) => {
                for c in &mut every_connection(p).await? {
                    let synchronous_commit: String = sqlx::query_scalar("SHOW synchronous_commit")
                        .fetch_one(&mut **c)
                        .await?;
                    out.push(Durability::Postgres { synchronous_commit });
                }
            }
        }
        Ok(out)
    }

    pub(crate) async fn close(&self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

/// As many connections as `pool` may open, all held at once.
async fn every_connection<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
) -> Result<Vec<PoolConnection<DB>>, sqlx::Error> {
    let mut held = Vec::new();
    for _ in 0..pool.options().get_max_connections() {
        held.push(pool.acquire().await?);
    }
    Ok(held)
}

/// The pools of an open store: one for the committer's writes, one for reads.
pub(crate) struct Pools {
    pub(crate) write: Pool,
    pub(crate) read: Pool,
}

/// Connects. `create` allows creating a missing SQLite file (ledger creation only).
pub(crate) async fn connect(location: &Location, create: bool) -> Result<Pools, StoreError> {
    match location {
        Location::Sqlite(path) => {
            if !create && !path.exists() {
                return Err(StoreError::NotInitialized(location.describe()));
            }
            // WAL with synchronous=FULL: a commit returns after the WAL is fsync'd, so an
            // acknowledged append survives power loss, and readers never block the writer.
            let options = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(create)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(LOCK_WAIT)
                .foreign_keys(true);
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(LOCK_WAIT)
                .connect_with(options.clone())
                .await?;
            // Readers never block the writer in WAL mode; enough of them that concurrent
            // requests do not queue for a connection (measured: 4 → 16 took the deploy gate
            // over HTTP from 6,000 to 8,400 requests/s on two cores).
            let read = SqlitePoolOptions::new()
                .max_connections(16)
                .connect_with(options.create_if_missing(false))
                .await?;
            Ok(Pools {
                write: Pool::Sqlite(write),
                read: Pool::Sqlite(read),
            })
        }
        Location::Postgres(url) => {
            // Durable commits are custody's to ask for, not the server's default to supply:
            // every connection starts with `synchronous_commit=on` (a commit returns after
            // its WAL record is flushed to disk), whatever the server or role says.
            let options = PgConnectOptions::from_str(url)?.options([("synchronous_commit", "on")]);
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(CONNECT_WAIT)
                .connect_with(options)
                .await?;
            Ok(Pools {
                write: Pool::Postgres(pool.clone()),
                read: Pool::Postgres(pool),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_told_apart_and_passwords_never_shown() {
        let pg = Location::parse("postgres://custody:s3cret@db.internal:5432/custody");
        assert!(matches!(pg, Location::Postgres(_)));
        assert_eq!(
            pg.describe(),
            "postgres://custody:***@db.internal:5432/custody"
        );
        assert_eq!(
            Location::parse("sqlite:data/custody.db"),
            Location::Sqlite("data/custody.db".into())
        );
        assert_eq!(
            Location::parse("postgresql://localhost/x").describe(),
            "postgresql://localhost/x"
        );
    }
}
