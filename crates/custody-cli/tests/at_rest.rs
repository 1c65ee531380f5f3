//! What someone with the data directory's files can leave for custody to find, through the
//! `custody` binary: a log rolled back while nothing ran is refused at the next start
//! (`log check` fails locally, `log recover` records the operator's decision); text with
//! terminal escapes that reached the ledger (an older version let it in) is printed
//! escaped by `custody history`; a decision whose recorded facts were edited does not
//! replay to its record (exit 1); and the access log, after the server is killed with
//! SIGKILL, holds every mutating or refused request it answered, and honours the retention
//! config.toml sets.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use custody_app::Clock as _;
use serde_json::{Value, json};
use sqlx::Connection as _;

/// A new data directory made by `custody init`.
fn initialised() -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    expect_code(&run(custody().args(["init", "--data-dir"]).arg(&data)), 0);
    (temp, data)
}

fn append_events(data: &Path, events: u64) {
    let out = run(custody()
        .args(["bench", "append", "--writers", "1", "--events"])
        .arg(events.to_string())
        .arg("--data-dir")
        .arg(data));
    expect_code(&out, 0);
}

/// The data directory's SQLite database, opened behind custody's back.
async fn database(data: &Path) -> sqlx::SqliteConnection {
    let url = format!("sqlite:{}", data.join("custody.db").display());
    sqlx::SqliteConnection::connect(&url).await.unwrap()
}

async fn execute(db: &mut sqlx::SqliteConnection, sql: &str) {
    sqlx::query(sql).execute(&mut *db).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_rolled_back_while_stopped_is_refused_until_the_operator_recovers_it() {
    let (_temp, data) = initialised();
    append_events(&data, 5);
    let out = log(&data, &["checkpoint", "--json"]);
    expect_code(&out, 0);
    let backup: Value = serde_json::from_slice(&out.stdout).unwrap();
    let k = backup["size"].as_u64().unwrap();
    append_events(&data, 5);
    expect_code(&log(&data, &["check"]), 0);
    let out = log(&data, &["checkpoint", "--json"]);
    let seen = serde_json::from_slice::<Value>(&out.stdout).unwrap()["size"]
        .as_u64()
        .unwrap();

    // Restored from the backup taken at `k` entries: the entries, hashes, checkpoints and
    // search terms past it go, and the head is that checkpoint, validly signed.
    {
        let mut db = database(&data).await;
        for trigger in [
            "log_entries_append_only_d",
            "log_nodes_append_only_d",
            "log_checkpoints_append_only_d",
            "log_head_forward_only",
        ] {
            execute(&mut db, &format!("DROP TRIGGER {trigger}")).await;
        }
        let note = backup["note"].as_str().unwrap().replace('\'', "''");
        for sql in [
            format!("DELETE FROM log_entries WHERE idx >= {k}"),
            format!(
                "DELETE FROM log_nodes WHERE ((id & 72057594037927935) + 1) << (id >> 56) > {k}"
            ),
            format!("DELETE FROM log_checkpoints WHERE size > {k}"),
            format!("DELETE FROM log_terms WHERE idx >= {k}"),
            format!("DELETE FROM idempotency WHERE first_index >= {k}"),
            format!(
                "UPDATE log_head SET size = {k}, root = X'{}', checkpoint = '{note}' WHERE id = 1",
                backup["root"].as_str().unwrap()
            ),
        ] {
            execute(&mut db, &sql).await;
        }
    }
    // The checkpoint file beside the database remembers more: refused, locally, with what
    // to do.
    let check = log(&data, &["check"]);
    expect_code(&check, 1);
    let said = stdout(&check);
    assert!(
        said.contains(&format!("went back from {seen} to {k}"))
            && said.contains("custody log recover"),
        "{said}"
    );
    // Nor is the restored head printed as a checkpoint to keep.
    let kept = log(&data, &["checkpoint"]);
    expect_code(&kept, 2);
    assert!(
        stderr(&kept).contains(&format!("went back from {seen} to {k}")),
        "{}",
        stderr(&kept)
    );
    // Nothing appends either.
    let out = run(custody()
        .args([
            "bench",
            "append",
            "--writers",
            "1",
            "--events",
            "1",
            "--data-dir",
        ])
        .arg(&data));
    assert_ne!(out.status.code(), Some(0));

    // The operator accepts the log as it stands, on the record; then all is well again.
    let recovered = run(custody()
        .args([
            "log",
            "recover",
            "--reason",
            "restored the nightly backup",
            "--json",
        ])
        .arg("--data-dir")
        .arg(&data)
        .env_remove("CUSTODY_TOKEN"));
    expect_code(&recovered, 0);
    let recovered: Value = serde_json::from_slice(&recovered.stdout).unwrap();
    assert_eq!(
        (
            recovered["lost_size"].as_u64(),
            recovered["found_size"].as_u64()
        ),
        (Some(seen), Some(k))
    );
    expect_code(&log(&data, &["check"]), 0);
    append_events(&data, 1);
}

/// Only the head row moved back while custody was stopped, and the checkpoint file deleted
/// to hide it: the database's own newest signed checkpoint still shows it, and recovering
/// puts the head back on it, losing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_row_moved_back_is_found_without_the_checkpoint_file_and_put_back() {
    let (_temp, data) = initialised();
    append_events(&data, 5);
    let checkpoint = |data: &Path| {
        let out = log(data, &["checkpoint", "--json"]);
        expect_code(&out, 0);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let back = checkpoint(&data);
    let k = back["size"].as_u64().unwrap();
    append_events(&data, 5);
    let seen = checkpoint(&data)["size"].as_u64().unwrap();
    {
        let mut db = database(&data).await;
        execute(&mut db, "DROP TRIGGER log_head_forward_only").await;
        let note = back["note"].as_str().unwrap().replace('\'', "''");
        let root = back["root"].as_str().unwrap();
        let sql = format!(
            "UPDATE log_head SET size = {k}, root = X'{root}', checkpoint = '{note}' WHERE id = 1"
        );
        execute(&mut db, &sql).await;
    }
    std::fs::remove_file(data.join("custody.db.checkpoint")).unwrap();

    let check = log(&data, &["check"]);
    expect_code(&check, 1);
    let said = stdout(&check);
    assert!(
        said.contains(&format!(
            "went back from {seen} to {k} (the database still holds the checkpoint of size {seen} the log signed"
        )) && said.contains("custody log recover"),
        "{said}"
    );
    // Nothing vouches for the moved head meanwhile: no checkpoint to keep, no proof to it.
    for read in [
        &["checkpoint"][..],
        &["proof", "consistency", "--from", "1"],
    ] {
        let out = log(&data, read);
        expect_code(&out, 2);
        assert!(
            stderr(&out).starts_with("integrity failure: ")
                && stderr(&out).contains(&format!("went back from {seen} to {k}")),
            "{read:?}: {}",
            stderr(&out)
        );
    }
    let recovered = run(custody()
        .args(["log", "recover", "--reason", "someone edited the head row"])
        .arg("--data-dir")
        .arg(&data)
        .env_remove("CUSTODY_TOKEN"));
    expect_code(&recovered, 0);
    let said = stdout(&recovered);
    assert!(
        said.contains(&format!(
            "recorded at ledger index {seen}: local:"
        )) && said.contains(&format!(
            "put the log's head back on the checkpoint of {seen} entries, which the database still held whole (the head had been moved back to {k}); nothing was lost"
        )),
        "{said}"
    );
    expect_code(&log(&data, &["check"]), 0);
    assert_eq!(checkpoint(&data)["size"].as_u64(), Some(seen + 1));
    append_events(&data, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_escapes_in_the_ledger_are_printed_escaped_by_history() {
    let (_temp, data) = initialised();
    // An entry an older custody accepted: a rationale with ESC (clear the screen), CR
    // (rewrite the line) and NUL, appended under the log key.
    let out = log(&data, &["checkpoint", "--json"]);
    let origin = serde_json::from_slice::<Value>(&out.stdout).unwrap()["origin"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = std::fs::read_to_string(data.join("keys/log.key")).unwrap();
    let key = custody_crypto::PrivateKey::from_pkcs8_pem(&key).unwrap();
    let signer = custody_crypto::note::NoteSigner::new(&origin, Box::new(key)).unwrap();
    let location = custody_store::Location::Sqlite(data.join("custody.db"));
    let store = custody_store::SqlStore::open(&location, signer)
        .await
        .unwrap();
    let rationale = "fine\u{1b}[2J\rAPPROVED BY EVERYONE\0";
    let leaf = json!({
        "type": "proposal.reviewed", "at": "2026-11-10T10:00:00Z", "actor": "mallory",
        "proposal": "prp-1", "policy": format!("sha256:{}", "a".repeat(64)),
        "verdict": "reject", "rationale": rationale,
    });
    let leaf = custody_model::CanonicalJson::from_value(&leaf).unwrap();
    custody_store::Store::append(&store, custody_store::Append::event(leaf))
        .await
        .unwrap();
    store.close().await;

    let history = run(custody()
        .args(["history", "--data-dir"])
        .arg(&data)
        .env_remove("CUSTODY_TOKEN"));
    expect_code(&history, 0);
    let shown = String::from_utf8(history.stdout).unwrap();
    assert!(
        !shown.contains(['\u{1b}', '\r', '\0']),
        "a control character reached the terminal raw: {shown:?}"
    );
    assert!(
        shown
            .contains(r"mallory rejected proposal prp-1: fine\u{1b}[2J\rAPPROVED BY EVERYONE\u{0}"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_keeps_answered_writes_and_denials_through_sigkill_and_its_retention() {
    let (_temp, data) = initialised();
    // config.toml keeps the access log an hour; an entry from two hours ago is past it,
    // one from half an hour ago is not.
    let config = data.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("retention = \"90d\""), "{text}");
    std::fs::write(
        &config,
        text.replace("retention = \"90d\"", "retention = \"1h\""),
    )
    .unwrap();
    let now = custody_app::SystemClock.now().unix_seconds();
    let at = |ago: i64| {
        custody_model::Timestamp::from_unix_seconds(now - ago)
            .unwrap()
            .to_string()
    };
    {
        let mut db = database(&data).await;
        for (ago, path) in [(7200, "/old"), (1800, "/recent")] {
            let sql = format!(
                "INSERT INTO access_log (at, principal, method, path, remote, status, outcome) \
                 VALUES ('{}', 'vic', 'GET', '{path}', '127.0.0.1:1', 200, 'allowed: read')",
                at(ago)
            );
            execute(&mut db, &sql).await;
        }
    }
    let admin = token(&data, &operator(&data), &[]);
    let nobody = token(&data, "nobody", &[]);
    let server = Server::start(&data);
    // The server prunes at start.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while paths(&data).await.contains(&"/old".to_owned()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the entry past the retention was kept"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(paths(&data).await.contains(&"/recent".to_owned()));

    // Mutations and denials, each answered; then SIGKILL at once.
    let tokens = format!("{}/api/v1/tokens", server.base);
    for i in 0..10 {
        let made = http()
            .post(&tokens)
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(
                json!({"principal": "vic", "expires": "1d", "description": format!("t{i}")})
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(made.status().as_u16(), 201);
        let denied = http()
            .get(&tokens)
            .bearer_auth(&nobody)
            .send()
            .await
            .unwrap();
        assert_eq!(denied.status().as_u16(), 403);
    }
    drop(server); // SIGKILL
    let mut db = database(&data).await;
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT method, status, principal FROM access_log WHERE path = '/api/v1/tokens'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let count = |method: &str, status: i64| {
        rows.iter()
            .filter(|(m, s, _)| m == method && *s == status)
            .count()
    };
    assert_eq!(count("POST", 201), 10, "{rows:?}");
    assert_eq!(count("GET", 403), 10, "{rows:?}");
}

/// The paths the access log holds now.
async fn paths(data: &Path) -> Vec<String> {
    let mut db = database(data).await;
    sqlx::query_scalar("SELECT path FROM access_log")
        .fetch_all(&mut db)
        .await
        .unwrap()
}

/// `decision replay` says when a decision does not replay to its record, and exits 1: the
/// facts of a production certification edited in the database (an approval turned into a
/// rejection) evaluate to another outcome under the same policy version. Untouched, the
/// same decision replays to its record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_whose_recorded_facts_were_edited_does_not_replay_to_its_record() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    expect_code(&run(custody().args(["demo", "--data-dir"]).arg(&data)), 0);
    let history = run(custody()
        .args(["history", "--json", "--env", "production", "--data-dir"])
        .arg(&data)
        .env_remove("CUSTODY_TOKEN"));
    let history: Value = serde_json::from_slice(&history.stdout).unwrap();
    let decision = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event"])
        .find(|e| e["type"] == "decision.recorded" && e["allowed"] == true)
        .unwrap()["decision"]
        .as_str()
        .unwrap()
        .to_owned();
    let replay = |json: bool| {
        let mut c = custody();
        c.args(["decision", "replay", &decision]);
        if json {
            c.arg("--json");
        }
        run(c.arg("--data-dir").arg(&data).env_remove("CUSTODY_TOKEN"))
    };
    let out = replay(false);
    expect_saying(&out, "replayed to the same outcome");

    let mut db = database(&data).await;
    execute(
        &mut db,
        &format!(
            "UPDATE state SET value = replace(value, '\"approve\":true', '\"approve\":false') \
             WHERE kind = 'decision' AND key = '{decision}'"
        ),
    )
    .await;
    db.close().await.unwrap();
    let out = replay(false);
    expect_code(&out, 1);
    assert!(
        stdout(&out).contains("replay DIFFERS from the record"),
        "{}",
        stdout(&out)
    );
    let out = replay(true);
    expect_code(&out, 1);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["same"], false);
    assert_eq!(r["recorded"]["allowed"], true);
    assert_eq!(r["replayed"]["allowed"], false, "{r:#}");
}
