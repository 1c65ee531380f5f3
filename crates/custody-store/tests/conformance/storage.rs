//! Contract 2 (every connection commits durably) and 12 (storage faults are transient): a
//! real full disk under SQLite, real lost connections and a database refusing connections
//! under PostgreSQL.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use custody_store::{
    AccessEntry, Append, Appended, Durability, IdempotencyKey, Readiness, SqlStore, Store,
    StoreError,
};
use sqlx::Connection;

use super::{Backend, check_checkpoint_chain, log_key, now};
use crate::common;

pub(crate) async fn every_connection_commits_durably(backend: Backend) {
    let db = backend.fresh().await;
    if let Backend::Postgres = backend {
        // This database's own default says otherwise, so only custody's setting on its
        // connections can make it `on`.
        let name = common::postgres_database(&db.location);
        let sql = format!("ALTER DATABASE {name} SET synchronous_commit = off");
        let mut admin = common::postgres_admin().await;
        sqlx::query(&sql).execute(&mut admin).await.unwrap();
        let custody_store::Location::Postgres(url) = &db.location else {
            unreachable!()
        };
        let mut plain = sqlx::PgConnection::connect(url).await.unwrap();
        let default: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&mut plain)
            .await
            .unwrap();
        assert_eq!(default, "off", "the database's default did not take");
    }
    let store = with_one_entry(&db).await;
    let settings = store.durability().await.unwrap();
    match backend {
        Backend::Sqlite => {
            // The writer and all 16 readers (the access log writes through them).
            assert_eq!(settings.len(), 17, "{settings:?}");
            for s in settings {
                assert_eq!(
                    s,
                    Durability::Sqlite {
                        journal_mode: "wal".into(),
                        synchronous: 2
                    }
                );
            }
        }
        Backend::Postgres => {
            assert_eq!(settings.len(), 8, "{settings:?}");
            for s in settings {
                assert_eq!(
                    s,
                    Durability::Postgres {
                        synchronous_commit: "on".into()
                    }
                );
            }
        }
    }
}

pub(crate) async fn storage_faults_are_transient(backend: Backend) {
    match backend {
        Backend::Sqlite => match std::env::var_os(SMALL_FS) {
            Some(dir) => a_full_disk_is_transient(Path::new(&dir)).await,
            None => run_in_a_small_file_system("sqlite::storage_faults_are_transient"),
        },
        Backend::Postgres => {
            lost_connections_are_transient().await;
            a_restarted_server_is_transient().await;
        }
    }
}

/// Set (to a directory on a small tmpfs) in the child process that runs a test there.
const SMALL_FS: &str = "CUSTODY_TEST_SMALL_FS";

/// Runs `test` of this binary again, in a private mount namespace where its directory is a
/// 16 MiB tmpfs: as root, `unshare --mount`; otherwise in a user namespace too. Nothing is
/// mounted outside the child, and the mount goes with it.
fn run_in_a_small_file_system(test: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new("unshare");
    if !running_as_root() {
        command.args(["--user", "--map-root-user"]);
    }
    let output = command
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o size=16m custody-test "$0" && exec "$@""#)
        .arg(dir.path())
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(SMALL_FS, dir.path())
        .output()
        .unwrap_or_else(|e| panic!("running unshare: {e}\n{NEEDS}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{test} in a 16 MiB tmpfs failed ({}):\n{stdout}\n{stderr}\n{NEEDS}",
        output.status
    );
}

const NEEDS: &str = "hint: this test fills a real file system: it needs util-linux's `unshare` \
                     and either root or unprivileged user namespaces to mount a tmpfs";

fn running_as_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap();
    uid.split_whitespace().next() == Some("0")
}

/// Fills `path`'s file system with it, in 64 KiB writes, until the disk is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0x55u8; 64 << 10];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Whatever is left of the last block.
    while file.write(&[0x55]).is_ok_and(|n| n == 1) {}
}

fn padded_event(writer: u64, seq: u64) -> custody_model::CanonicalJson {
    common::json(serde_json::json!({
        "type": "test.padded",
        "writer": writer,
        "seq": seq,
        "pad": "x".repeat(2000),
    }))
}

fn keyed(writer: u64, seq: u64) -> Append {
    Append {
        events: vec![padded_event(writer, seq)],
        idempotency: Some(IdempotencyKey {
            key: format!("{writer}-{seq}"),
            fingerprint: [7; 32],
        }),
        ..Append::default()
    }
}

fn access(n: u64) -> Vec<AccessEntry> {
    vec![AccessEntry {
        at: "2026-11-27T12:00:00Z".into(),
        principal: "alice".into(),
        credential: String::new(),
        method: "GET".into(),
        path: format!("/api/v1/history/{n}"),
        remote: "127.0.0.1:5000".into(),
        status: 200,
        outcome: "allowed".into(),
    }]
}

type Outcomes = Vec<((u64, u64), Result<Appended, StoreError>)>;

/// `writers` tasks each appending `keyed` events until `stop` says so.
async fn appenders(
    store: &Arc<SqlStore>,
    writers: u64,
    first_seq: u64,
    stop: impl Fn(u64, usize) -> bool + Send + Sync + Copy + 'static,
) -> Outcomes {
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                let mut failures = 0;
                for seq in first_seq.. {
                    if stop(seq - first_seq, failures) {
                        break;
                    }
                    let result = store.append(keyed(w, seq)).await;
                    failures += usize::from(result.is_err());
                    out.push(((w, seq), result));
                }
                out
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.extend(t.await.unwrap());
    }
    outcomes
}

/// Every failure is a storage fault, reported as one; returns how many failed.
fn storage_failures(outcomes: &Outcomes) -> usize {
    let failed: Vec<_> = outcomes
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    for e in &failed {
        assert!(
            matches!(
                e,
                StoreError::Unavailable(_) | StoreError::OutcomeUnknown(_)
            ),
            "not a storage fault: {e}"
        );
    }
    failed.len()
}

/// While the fault stands: access-log writes fail and readiness says the storage is
/// failing (what `/readyz` answers).
async fn says_it_is_failing(store: &SqlStore) {
    assert!(store.record_access(access(0)).await.is_err());
    let readiness = store.readiness().await;
    assert!(
        matches!(readiness, Readiness::StorageFailing(_)),
        "{readiness}"
    );
}

/// Once the fault cleared: the same store (no reopening) is ready and writes again, and
/// of everything before, nothing acknowledged was lost and nothing refused was written.
async fn writes_again(store: &Arc<SqlStore>, mut outcomes: Outcomes) {
    assert_eq!(store.readiness().await, Readiness::Ready);
    let back = appenders(store, 4, 20_000, |n, _| n >= 5).await;
    assert_eq!(storage_failures(&back), 0);
    outcomes.extend(back);
    store.record_access(access(1)).await.unwrap();
    nothing_lost_nothing_invented(store, &outcomes).await;
}

/// After the storage recovered: every acknowledged append is where it was acknowledged;
/// an append refused before its commit wrote nothing; one whose outcome was unknown
/// converges when retried with its key; and the whole log checks.
async fn nothing_lost_nothing_invented(store: &SqlStore, outcomes: &Outcomes) {
    let size = store.size().await.unwrap();
    let mut at: HashMap<(u64, u64), Vec<u64>> = HashMap::new();
    let mut start = 0;
    while start < size {
        let end = size.min(start + custody_store::MAX_ENTRIES_PER_READ);
        for e in store.entries(start, end).await.unwrap() {
            let v: serde_json::Value = serde_json::from_slice(&e.leaf).unwrap();
            if v["type"] == "test.padded" {
                let id = (v["writer"].as_u64().unwrap(), v["seq"].as_u64().unwrap());
                at.entry(id).or_default().push(e.index);
            }
        }
        start = end;
    }
    for (id, result) in outcomes {
        match result {
            Ok(appended) => assert_eq!(at.get(id), Some(&vec![appended.first_index]), "{id:?}"),
            Err(StoreError::Unavailable(_)) => {
                assert_eq!(at.get(id), None, "{id:?} was refused but written")
            }
            Err(_) => {
                let retry = store.append(keyed(id.0, id.1)).await.unwrap();
                assert!(at.get(id).is_none_or(|i| *i == vec![retry.first_index]));
                assert_eq!(retry.replayed, at.contains_key(id), "{id:?}");
            }
        }
    }
    store.check(|_| {}).await.unwrap();
    check_checkpoint_chain(store).await;
}

/// SQLite on a 16 MiB tmpfs at `dir`: appends fill the disk under load; then, with the disk
/// completely full, appends, access-log writes and the readiness probe fail; once space is
/// freed, all succeed again without reopening.
async fn a_full_disk_is_transient(dir: &Path) {
    let location = custody_store::Location::Sqlite(dir.join("custody.db"));
    let store = Arc::new(SqlStore::create(&location, log_key(), now()).await.unwrap());
    // Leave about 1 MiB free, then let eight writers fill it.
    std::fs::write(dir.join("reserve"), vec![0u8; 1 << 20]).unwrap();
    fill(&dir.join("ballast"));
    std::fs::remove_file(dir.join("reserve")).unwrap();
    let mut outcomes = appenders(&store, 8, 0, |n, failures| failures >= 3 || n >= 2000).await;
    assert!(
        storage_failures(&outcomes) > 0,
        "the disk never filled: the test tested nothing"
    );

    // A completely full disk, with an empty write-ahead log: no write has room at all.
    std::fs::remove_file(dir.join("ballast")).unwrap();
    let url = format!("sqlite:{}", dir.join("custody.db").display());
    let mut raw = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    assert_eq!(busy, 0);
    raw.close().await.unwrap();
    fill(&dir.join("ballast"));
    let full = appenders(&store, 4, 10_000, |n, _| n >= 3).await;
    assert_eq!(storage_failures(&full), full.len(), "an append found room");
    outcomes.extend(full);
    says_it_is_failing(&store).await;

    // Space again: the same store writes again.
    std::fs::remove_file(dir.join("ballast")).unwrap();
    writes_again(&store, outcomes).await;
    // The checkpoint file (on the same full disk) caught up too.
    let store = Arc::into_inner(store).unwrap();
    let (head, verifier) = (store.checkpoint().await.unwrap(), store.verifier().clone());
    store.close().await;
    let note = std::fs::read_to_string(dir.join("custody.db.checkpoint")).unwrap();
    assert_eq!(
        custody_ledger::Checkpoint::open(&note, &verifier)
            .unwrap()
            .size,
        head.size
    );
}

/// PostgreSQL: the server drops the store's connections while a batch waits inside its
/// transaction, under load; then the database refuses connections for a while.
async fn lost_connections_are_transient() {
    let db = Backend::Postgres.fresh().await;
    let name = common::postgres_database(&db.location);
    let custody_store::Location::Postgres(url) = &db.location else {
        unreachable!()
    };
    let store = Arc::new(
        SqlStore::create(&db.location, log_key(), now())
            .await
            .unwrap(),
    );
    let mut admin = common::postgres_admin().await;

    // A lock the committer needs in the middle of its transaction (to store the batch's
    // checkpoint), held until its connection is gone.
    let mut locker = sqlx::PgConnection::connect(url).await.unwrap();
    let locker_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut locker)
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE log_checkpoints IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let load = {
        let store = store.clone();
        tokio::spawn(async move { appenders(&store, 4, 0, |n, _| n >= 25).await })
    };
    // Polled until it holds (a state to reach, not a time to wait); a minute at most.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let waiting: bool = sqlx::query_scalar(
            "SELECT COUNT(*) > 0 FROM pg_stat_activity \
             WHERE datname = $1 AND wait_event_type = 'Lock'",
        )
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if waiting {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no batch ever waited on the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    terminate(&mut admin, &name, Some(locker_pid)).await;
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    let mut outcomes = load.await.unwrap();
    assert!(
        storage_failures(&outcomes) > 0,
        "the waiting batch did not fail"
    );
    assert!(outcomes.iter().any(|(_, r)| r.is_ok()));

    // The database refuses connections: appends, access-log writes and the probe fail.
    drop(locker);
    let allow = |yes: bool| format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {yes}");
    sqlx::query(&allow(false))
        .execute(&mut admin)
        .await
        .unwrap();
    terminate(&mut admin, &name, None).await;
    let down = appenders(&store, 2, 10_000, |n, _| n >= 2).await;
    assert_eq!(storage_failures(&down), down.len());
    outcomes.extend(down);
    says_it_is_failing(&store).await;

    // Back: the same store writes again.
    sqlx::query(&allow(true)).execute(&mut admin).await.unwrap();
    writes_again(&store, outcomes).await;
}

/// Ends every connection to database `name` but `spare`'s.
async fn terminate(admin: &mut sqlx::PgConnection, name: &str, spare: Option<i32>) {
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> COALESCE($2, 0) AND pid <> pg_backend_pid()",
    )
    .bind(name)
    .bind(spare)
    .execute(admin)
    .await
    .unwrap();
}

/// The port of the PostgreSQL server this test stops and starts (its own cluster, made by
/// `scripts/test-postgres.sh`, so that the server the other tests share stays up).
const RESTARTED_PORT: &str = "55433";

/// `scripts/test-postgres.sh ACTION` for the cluster this test owns; its stdout.
fn own_cluster(action: &str) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/test-postgres.sh"
    );
    let dir = std::env::temp_dir().join(format!(
        "custody-test-postgres-restarted-{}",
        if running_as_root() { "root" } else { "user" }
    ));
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg(action)
        .env("CUSTODY_TEST_PG_PORT", RESTARTED_PORT)
        .env("CUSTODY_TEST_PG_DIR", &dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "test-postgres.sh {action}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A real PostgreSQL server stopped under load (a fast shutdown: every connection cut, new
/// ones refused at the socket) and started again: appends in flight fail as storage faults,
/// readiness says so while the server is down, the same store writes again once it is back
/// (no restart of custody), and nothing acknowledged is lost.
async fn a_restarted_server_is_transient() {
    let admin_url = own_cluster("start");
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    // Not named `custody_test_…`: starting the cluster drops those (an earlier run's).
    let name = format!("restarted_{}", std::process::id());
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    drop(admin);
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let location = custody_store::Location::Postgres(format!("{base}/{name}"));
    let store = Arc::new(SqlStore::create(&location, log_key(), now()).await.unwrap());

    // Writers append until each has seen a failure; the server stops once some of their
    // appends were acknowledged (a state to reach, polled; a minute at most). While it is
    // down, a write fails after the store's connection wait (10 s), not at once.
    let load = {
        let store = store.clone();
        tokio::spawn(async move { appenders(&store, 4, 0, |_, failures| failures >= 1).await })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.size().await.unwrap() < 40 {
        assert!(Instant::now() < deadline, "the writers made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::task::spawn_blocking(|| own_cluster("stop"))
        .await
        .unwrap();
    let outcomes = load.await.unwrap();
    assert_eq!(
        storage_failures(&outcomes),
        4,
        "each writer stops at its first failure"
    );
    assert!(outcomes.iter().any(|(_, r)| r.is_ok()));
    says_it_is_failing(&store).await;

    // Started again: the same store, untouched, writes again.
    tokio::task::spawn_blocking(|| own_cluster("start"))
        .await
        .unwrap();
    writes_again(&store, outcomes).await;
}

/// SQLite only (PostgreSQL has no file): a database file removed, or replaced by another,
/// under a running store refuses writes (a storage fault) instead of acknowledging entries
/// written into a file nothing names any more; the store is not ready; with the file back,
/// it writes again and nothing refused was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_database_file_removed_under_a_running_store_refuses_writes() {
    let db = Backend::Sqlite.fresh().await;
    let custody_store::Location::Sqlite(path) = &db.location else {
        unreachable!()
    };
    let store = with_one_entry(&db).await;
    let aside = path.with_extension("aside");
    std::fs::rename(path, &aside).unwrap();
    let refused = store
        .append(Append::event(common::event(0, 1)))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::Unavailable(why) if why.contains("removed or replaced")),
        "{refused}"
    );
    // Said once, not wrapped again on its way out of the batch.
    let said = refused.to_string();
    assert_eq!(said.matches("nothing was written").count(), 1, "{said}");
    let readiness = store.readiness().await;
    assert!(
        matches!(&readiness, Readiness::StorageFailing(why) if why.contains("removed or replaced")),
        "{readiness}"
    );
    // Another file at the path is no better.
    std::fs::copy(&aside, path).unwrap();
    assert!(
        store
            .append(Append::event(common::event(0, 2)))
            .await
            .is_err()
    );
    std::fs::remove_file(path).unwrap();

    std::fs::rename(&aside, path).unwrap();
    assert_eq!(store.readiness().await, Readiness::Ready);
    store
        .append(Append::event(common::event(0, 3)))
        .await
        .unwrap();
    assert_eq!(
        store.size().await.unwrap(),
        2,
        "only the writes acknowledged stand"
    );
}

/// A new ledger in `db` holding one entry.
async fn with_one_entry(db: &common::TestDb) -> SqlStore {
    let store = SqlStore::create(&db.location, log_key(), now())
        .await
        .unwrap();
    store
        .append(Append::event(common::event(0, 0)))
        .await
        .unwrap();
    store
}
