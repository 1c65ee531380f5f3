//! Test harness shared by the store's tests: fresh databases on each backend, log keys and
//! events.

#![allow(dead_code, reason = "each test binary uses part of the harness")]

use std::str::FromStr;

use custody_crypto::note::NoteSigner;
use custody_crypto::{Algorithm, PrivateKey};
use custody_ledger::{MemoryTree, leaf_hash};
use custody_model::CanonicalJson;
use custody_store::{AccessEntry, CheckpointFile, Location, OpenOptions, SqlStore, Store};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

pub(crate) const ORIGIN: &str = "custody.test/log";

/// A fresh Ed25519 log key named [`ORIGIN`].
pub(crate) fn log_key() -> NoteSigner {
    NoteSigner::new(ORIGIN, Box::new(PrivateKey::generate(Algorithm::Ed25519))).unwrap()
}

/// The same log key again (a store keeps its signer, tests keep a copy).
pub(crate) fn log_key_from_seed(seed: [u8; 32]) -> NoteSigner {
    NoteSigner::new(
        ORIGIN,
        Box::new(PrivateKey::ed25519_from_seed(&seed).unwrap()),
    )
    .unwrap()
}

/// Opens the store at `location` with the log key of `seed`.
pub(crate) async fn open_with(
    location: &Location,
    seed: [u8; 32],
) -> Result<SqlStore, custody_store::StoreError> {
    SqlStore::open(location, log_key_from_seed(seed)).await
}

pub(crate) fn now() -> custody_model::Timestamp {
    "2026-11-27T12:00:00Z".parse().unwrap()
}

/// A small event with a distinguishing number.
pub(crate) fn event(writer: u64, seq: u64) -> CanonicalJson {
    CanonicalJson::from_value(&serde_json::json!({
        "type": "test.event",
        "writer": writer,
        "seq": seq,
        "note": "an event in the ledger",
    }))
    .unwrap()
}

pub(crate) fn json(value: serde_json::Value) -> CanonicalJson {
    CanonicalJson::from_value(&value).unwrap()
}

/// A backend under test, able to make fresh, empty databases.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database that lives as long as this value, with a temporary directory
/// (SQLite: the database's; PostgreSQL: for the checkpoint file).
pub(crate) struct TestDb {
    pub(crate) location: Location,
    pub(crate) dir: tempfile::TempDir,
}

impl TestDb {
    /// Where a store keeps its checkpoint file: beside the SQLite file (the default), and
    /// for PostgreSQL a file in the temporary directory (what a server's data directory
    /// would hold).
    pub(crate) fn checkpoint_file(&self) -> (CheckpointFile, std::path::PathBuf) {
        match &self.location {
            Location::Sqlite(path) => (
                CheckpointFile::Beside,
                path.with_file_name("custody.db.checkpoint"),
            ),
            Location::Postgres(_) => {
                let path = self.dir.path().join("ledger.checkpoint");
                (CheckpointFile::At(path.clone()), path)
            }
        }
    }

    /// Open options keeping the checkpoint file.
    pub(crate) fn options(&self) -> OpenOptions {
        OpenOptions {
            checkpoint_file: self.checkpoint_file().0,
            ..OpenOptions::default()
        }
    }
}

/// The PostgreSQL server the test command started (`scripts/test-postgres.sh`).
pub(crate) fn postgres_url() -> String {
    std::env::var("CUSTODY_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "CUSTODY_TEST_DATABASE_URL is not set: the PostgreSQL tests need a server.\n\
             Run scripts/test.sh (it starts one), or export the URL that \
             scripts/test-postgres.sh prints."
        )
    })
}

impl Backend {
    /// A fresh database: a new SQLite file, or a new PostgreSQL database on the test server.
    pub(crate) async fn fresh(self) -> TestDb {
        match self {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                TestDb {
                    location: Location::Sqlite(dir.path().join("custody.db")),
                    dir,
                }
            }
            Backend::Postgres => {
                let admin = postgres_url();
                let mut conn =
                    PgConnection::connect_with(&PgConnectOptions::from_str(&admin).unwrap())
                        .await
                        .unwrap();
                let mut name = [0u8; 8];
                getrandom(&mut name);
                let db = format!("custody_test_{}", hex(&name));
                sqlx::query(&format!("CREATE DATABASE {db}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let (base, _) = admin.rsplit_once('/').unwrap();
                TestDb {
                    location: Location::Postgres(format!("{base}/{db}")),
                    dir: tempfile::tempdir().unwrap(),
                }
            }
        }
    }
}

fn getrandom(buf: &mut [u8]) {
    use rand_core::RngCore;
    rand_core::OsRng.fill_bytes(buf);
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    getrandom(&mut seed);
    seed
}

/// Reads the whole log and recomputes its tree from the leaves alone.
pub(crate) async fn recompute(store: &SqlStore) -> (MemoryTree, Vec<Vec<u8>>) {
    let size = store.checkpoint().await.unwrap().size;
    let mut tree = MemoryTree::new();
    let mut leaves = Vec::new();
    let mut start = 0;
    while start < size {
        let end = size.min(start + custody_store::MAX_ENTRIES_PER_READ);
        for entry in store.entries(start, end).await.unwrap() {
            assert_eq!(entry.index, tree.size());
            tree.append(leaf_hash(&entry.leaf));
            leaves.push(entry.leaf);
        }
        start = end;
    }
    (tree, leaves)
}

/// Checks every stored checkpoint against the next with a consistency proof from the
/// store, verified offline; returns how many there were.
pub(crate) async fn check_checkpoint_chain(store: &SqlStore) -> usize {
    let mut all = Vec::new();
    let mut from = 0;
    loop {
        let page = store.checkpoints(from, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        from = last.size + 1;
        all.extend(page);
    }
    for pair in all.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(a.size < b.size, "checkpoints out of order");
        if a.size == 0 {
            continue; // consistency with the empty tree is trivial (RFC 9162 has no proof)
        }
        let proof = store.consistency_proof(a.size, b.size).await.unwrap();
        custody_ledger::verify_consistency(a.size, b.size, &proof, &a.root, &b.root)
            .unwrap_or_else(|e| panic!("checkpoint {} → {}: {e}", a.size, b.size));
    }
    all.len()
}

/// The database's name on the PostgreSQL server.
pub(crate) fn postgres_database(location: &Location) -> String {
    match location {
        Location::Postgres(url) => url.rsplit_once('/').unwrap().1.to_owned(),
        Location::Sqlite(_) => panic!("not a PostgreSQL database"),
    }
}

/// A connection to the PostgreSQL test server's administrative database.
pub(crate) async fn postgres_admin() -> PgConnection {
    PgConnection::connect_with(&PgConnectOptions::from_str(&postgres_url()).unwrap())
        .await
        .unwrap()
}

/// A raw connection, as an intruder with database access would have. On PostgreSQL the
/// text may hold several statements.
pub(crate) async fn raw_execute(location: &Location, sql: &str) -> Result<u64, sqlx::Error> {
    match location {
        Location::Sqlite(path) => {
            let mut c =
                sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display())).await?;
            Ok(sqlx::query(sql).execute(&mut c).await?.rows_affected())
        }
        Location::Postgres(url) => {
            let mut c = PgConnection::connect(url).await?;
            Ok(sqlx::raw_sql(sql).execute(&mut c).await?.rows_affected())
        }
    }
}

/// `bytes` as an SQL literal of the backend's binary type.
pub(crate) fn bytes_literal(backend: Backend, bytes: &[u8]) -> String {
    match backend {
        Backend::Sqlite => format!("X'{}'", hex(bytes)),
        Backend::Postgres => format!("'\\x{}'::bytea", hex(bytes)),
    }
}

/// An access-log entry of `principal` reading history at `at`, answered 200 with `outcome`.
pub(crate) fn access_entry(at: &str, principal: &str, outcome: &str) -> AccessEntry {
    AccessEntry {
        at: at.into(),
        principal: principal.into(),
        credential: String::new(),
        method: "GET".into(),
        path: "/api/v1/history".into(),
        remote: "127.0.0.1:5000".into(),
        status: 200,
        outcome: outcome.into(),
    }
}
