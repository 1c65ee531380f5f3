//! The state as a checked projection of the ledger: a token row edited in the database
//! (a database login without the log key) is found by the check a server runs before its
//! first connection, which names the record, and the server then refuses to act on it,
//! on SQLite and PostgreSQL; so are a deleted certification and an environment's certified
//! release edited. A log rolled back or rewritten under the server stops its
//! writes, and the dashboard's Ledger page never vouches for it while that stands.

use custody_store::Location;
use serde_json::json;

use crate::support::{Backend, TestServer};

/// Runs `sql` on the database behind `location`, as someone with a database login would.
pub(crate) async fn behind_the_ledger(location: &Location, sql: &str) -> u64 {
    use sqlx::Connection as _;
    match location {
        Location::Sqlite(path) => {
            let url = format!("sqlite:{}", path.display());
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query(sql)
                .execute(&mut c)
                .await
                .unwrap()
                .rows_affected()
        }
        Location::Postgres(url) => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(sql)
                .execute(&mut c)
                .await
                .unwrap()
                .rows_affected()
        }
    }
}

async fn a_viewer_token_edited_to_root_is_found_and_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    // vic's token row now says it is root's; the ledger still says vic's.
    let changed = behind_the_ledger(
        &server.location,
        "UPDATE state SET value = replace(value, '\"principal\":\"vic\"', '\"principal\":\"root\"') \
         WHERE kind = 'token' AND value LIKE '%\"principal\":\"vic\"%'",
    )
    .await;
    assert_eq!(changed, 1);
    // A server starting on the database (a replica, or this one restarted).
    let (replica, tasks) = server.replica().await;
    custody_server::alerting::check_state_at_start(&replica.state).await;
    let report = replica.state.app.check_state(|_| {}).await.unwrap();
    assert_eq!(report.differences.len(), 1, "{:?}", report.differences);
    let difference = &report.differences[0];
    assert!(difference.record.starts_with("token/"), "{difference}");
    assert!(difference.what.contains("root"), "{difference}");
    // The tampered token may not mint tokens as root: custody refuses to act on the row.
    let request = json!({"principal": "mallory", "expires": "1d", "description": "x"});
    let minted = replica
        .call(
            "POST",
            "/api/v1/tokens",
            Some(server.token("vic")),
            Some(&request.to_string()),
            &[],
        )
        .await;
    assert!(
        minted.status.is_server_error() || minted.status.is_client_error(),
        "{} {}",
        minted.status,
        minted.body
    );
    assert_ne!(minted.status, 201);
    for t in tasks {
        t.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_token_edited_to_root_is_found_and_refused_sqlite() {
    a_viewer_token_edited_to_root_is_found_and_refused(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_token_edited_to_root_is_found_and_refused_postgres() {
    a_viewer_token_edited_to_root_is_found_and_refused(Backend::Postgres).await;
}

/// Counts rows of `sql` (a `SELECT COUNT(*)`) on the SQLite database behind `location`.
async fn count(location: &Location, sql: &str) -> i64 {
    use sqlx::Connection as _;
    let Location::Sqlite(path) = location else {
        unreachable!("SQLite only")
    };
    let url = format!("sqlite:{}", path.display());
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_rolled_back_under_the_server_stops_its_writes_and_readyz() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mint = || async {
        let request = json!({"principal": "vic", "expires": "1d", "description": "x"});
        server
            .call(
                "POST",
                "/api/v1/tokens",
                Some(server.token("root")),
                Some(&request.to_string()),
                &[],
            )
            .await
    };
    assert_eq!(mint().await.status, 201);
    assert_eq!(
        server.call("GET", "/readyz", None, None, &[]).await.status,
        200
    );
    let cookie = server.sign_in("audrey").await;
    assert!(ledger_page(&server, &cookie).await.contains(VOUCHES));
    let signed = "SELECT COUNT(*) FROM log_checkpoints";
    let before = count(&server.location, signed).await;
    // Someone with the database moves the head back two entries.
    behind_the_ledger(&server.location, "DROP TRIGGER log_head_forward_only").await;
    behind_the_ledger(&server.location, "UPDATE log_head SET size = size - 2").await;
    // Not ready at once, before any write finds it.
    let ready = server.call("GET", "/readyz", None, None, &[]).await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    // Writes are refused (every time, nothing signed on the shorter history) and the
    // server says it is not ready.
    for _ in 0..2 {
        let refused = mint().await;
        assert!(
            refused.status.is_server_error(),
            "{} {}",
            refused.status,
            refused.body
        );
    }
    assert_eq!(
        count(&server.location, signed).await,
        before,
        "a checkpoint was signed"
    );
    let ready = server.call("GET", "/readyz", None, None, &[]).await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        ready.body["error"]
            .as_str()
            .unwrap()
            .starts_with("the ledger's history was changed behind custody's back"),
        "not a retry-later: {}",
        ready.body
    );
    // Nor is the shorter head served as the log's; a size asked for by name still is.
    let head = server
        .call("GET", "/api/v1/log/checkpoint", None, None, &[])
        .await;
    assert_eq!(head.status, 503, "{}", head.body);
    let named = server
        .call("GET", "/api/v1/log/checkpoint?size=1", None, None, &[])
        .await;
    assert_eq!(named.status, 200, "{}", named.body);
    // The Ledger page says what was found, and vouches for nothing.
    let page = ledger_page(&server, &cookie).await;
    assert!(!page.contains(VOUCHES), "{page}");
    assert!(
        page.contains("NOT VOUCHED FOR") && page.contains("went back"),
        "{page}"
    );
}

/// What the Ledger page says of a ledger it can vouch for.
const VOUCHES: &str = "nothing recorded was changed or removed";

/// The dashboard's Ledger page, as the session `cookie` sees it.
async fn ledger_page(server: &TestServer, cookie: &str) -> String {
    let page = server
        .call("GET", "/ledger", None, None, &[("cookie", cookie)])
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.body.as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_page_never_vouches_while_an_integrity_alert_stands() {
    let server = TestServer::start(Backend::Sqlite).await;
    let cookie = server.sign_in("audrey").await;
    assert!(ledger_page(&server, &cookie).await.contains(VOUCHES));
    // Someone with the database file rewrites the first entry under its stored hashes: the
    // consistency proof over stored hashes still holds, the full check does not.
    behind_the_ledger(&server.location, "DROP TRIGGER log_entries_append_only_u").await;
    behind_the_ledger(
        &server.location,
        "UPDATE log_entries SET leaf = CAST('{\"type\":\"nothing.happened\"}' AS BLOB) WHERE idx = 0",
    )
    .await;
    // The server's check at start raises the alert.
    let tasks = custody_server::spawn_background(&server.state);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let alerts = server.state.app.recent_alerts().await.unwrap();
        if alerts
            .iter()
            .any(|(a, _)| a.rule == "ledger-consistency-failure")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no alert: {alerts:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let page = ledger_page(&server, &cookie).await;
    assert!(!page.contains(VOUCHES), "{page}");
    assert!(
        page.contains("NOT VOUCHED FOR") && page.contains("ledger-consistency-failure"),
        "{page}"
    );
    for t in tasks {
        t.abort();
    }
}

/// A certification deleted, or an environment's certified release edited, behind the
/// ledger's back: the check names each record.
async fn certifications_edited_behind_the_ledger_are_named(backend: Backend) {
    let server = TestServer::start(backend).await;
    let digest = custody_app::attestations::sha256(b"shop 1.0.0");
    server.release_in_build("1.0.0", &digest).await;
    let deleted = behind_the_ledger(
        &server.location,
        "DELETE FROM state WHERE kind = 'certification'",
    )
    .await;
    assert!(deleted >= 1);
    let edited = behind_the_ledger(
        &server.location,
        "UPDATE state SET value = replace(value, '\"release\":\"shop@1.0.0\"', '\"release\":\"shop@9.9.9\"') \
         WHERE kind = 'environment' AND key = 'build'",
    )
    .await;
    assert_eq!(edited, 1);
    let (replica, tasks) = server.replica().await;
    let report = replica.state.app.check_state(|_| {}).await.unwrap();
    let named: Vec<&str> = report
        .differences
        .iter()
        .map(|d| d.record.as_str())
        .collect();
    assert!(
        named.iter().any(|r| r.starts_with("certification/")),
        "{named:?}"
    );
    assert!(named.contains(&"environment/build"), "{named:?}");
    // The field is named within its record, and only the field that differs.
    let build = report
        .differences
        .iter()
        .find(|d| d.record == "environment/build")
        .unwrap();
    assert!(
        build.what.starts_with(
            "certified.release is \"shop@9.9.9\", the ledger says \"shop@1.0.0\" (ledger entry"
        ),
        "{build}"
    );
    for t in tasks {
        t.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certifications_edited_behind_the_ledger_are_named_sqlite() {
    certifications_edited_behind_the_ledger_are_named(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certifications_edited_behind_the_ledger_are_named_postgres() {
    certifications_edited_behind_the_ledger_are_named(Backend::Postgres).await;
}
