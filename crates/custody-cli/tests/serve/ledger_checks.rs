//! The ledger re-checked by the server that holds it: tampering at rest found at start,
//! a rollback while serving found by the next periodic check, and a server refusing to
//! start on a rolled-back ledger telling the webhooks.

use super::common::*;
use super::{dashboard_page, delivered, deliveries, grant_roles, poll, trust_new_keys};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_tampered_with_at_rest_raises_an_alert() {
    let temp = tempfile::tempdir().unwrap();
    let (data, received, _receiver) = checked_every_second(temp.path());
    // Someone with the database file rewrites the first entry, past the schema's guard.
    tamper(
        &data,
        &[
            "DROP TRIGGER log_entries_append_only_u",
            "UPDATE log_entries SET leaf = CAST('{\"type\":\"nothing.happened\"}' AS BLOB) WHERE idx = 0",
        ],
    )
    .await;
    // The server still starts (the tree's right edge is intact), and its check finds it.
    let server = Server::start(&data);
    grant_roles(&data, "admin = [\"root\"]");
    let delivery = poll(30, async || {
        let got = deliveries(&received);
        if let Some(d) = got
            .iter()
            .find(|d| d["body"]["alert"]["rule"] == "ledger-consistency-failure")
        {
            return Ok(d.clone());
        }
        Err(format!("no ledger alert arrived: {got:?}"))
    })
    .await;
    let text = delivery["body"]["text"].as_str().unwrap();
    assert!(
        text.contains("subtree level 0 index 0"),
        "the alert names the damaged entry: {text}"
    );
    assert_eq!(delivery["body"]["alert"]["severity"], "critical");
    // Checked every second, raised once: three more checks find it, no second alert.
    let root = token(&data, "root", &[]);
    poll(30, async || {
        let samples = scrape_metrics(&server.base, &root).await;
        let found = metric(
            &samples,
            "custody_ledger_checks_total",
            &[("outcome", "inconsistent")],
        );
        if found >= 4.0 {
            // Scraped though the ledger's first entry cannot be read for the counters.
            assert_eq!(metric(&samples, "custody_ledger_readable", &[]), 0.0);
            return Ok(());
        }
        Err(format!("the check ran {found} times"))
    })
    .await;
    let again = std::fs::read_to_string(&received)
        .unwrap()
        .lines()
        .filter(|l| l.contains("ledger-consistency-failure"))
        .count();
    assert_eq!(again, 1);
    let page = dashboard_page(&data, &server.base, "root", "/alerts").await;
    assert!(
        page.contains("data-rule=\"ledger-consistency-failure\""),
        "{page}"
    );
    assert!(server.stop().success());
}

/// Damage done while the server runs is found by its periodic re-check: after a clean
/// check (counted in `/metrics`), someone with the database moves the head back two
/// entries, and the next check compares the head with the one the last check saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_rolled_back_while_serving_is_found_by_the_next_check() {
    let temp = tempfile::tempdir().unwrap();
    let (data, received, _receiver) = checked_every_second(temp.path());
    let server = Server::start(&data);
    grant_roles(&data, "admin = [\"root\"]");
    let root = token(&data, "root", &[]);
    // Wait for a clean check of the whole ledger as it is now (no writes follow).
    let size = poll(30, async || {
        let samples = scrape_metrics(&server.base, &root).await;
        let entries = metric(&samples, "custody_ledger_entries", &[]);
        if metric(&samples, "custody_ledger_checked_entries", &[]) == entries {
            let checks = |outcome| {
                metric(
                    &samples,
                    "custody_ledger_checks_total",
                    &[("outcome", outcome)],
                )
            };
            assert!(checks("consistent") >= 1.0, "{samples:?}");
            assert_eq!(checks("inconsistent"), 0.0);
            assert_eq!(metric(&samples, "custody_ledger_readable", &[]), 1.0);
            return Ok(entries as u64);
        }
        Err(format!("no clean check of the whole ledger: {samples:?}"))
    })
    .await;
    assert!(size >= 3, "{size}");
    let ledger_alerts = || delivered(&received, "ledger-consistency-failure");
    assert!(ledger_alerts().is_empty());
    // A consistent older database, as a restored backup would have it: the head is the
    // size and signed note of an earlier checkpoint, and nothing past it is kept. Every
    // check of the store alone passes.
    tamper(
        &data,
        &[
            "DROP TRIGGER log_head_forward_only",
            "DROP TRIGGER log_entries_append_only_d",
            "DROP TRIGGER log_nodes_append_only_d",
            "DROP TRIGGER log_checkpoints_append_only_d",
            "UPDATE log_head SET (size, checkpoint) = (SELECT size, note FROM log_checkpoints \
             WHERE size < (SELECT size FROM log_head) ORDER BY size DESC LIMIT 1)",
            "DELETE FROM log_entries WHERE idx >= (SELECT size FROM log_head)",
            "DELETE FROM log_nodes WHERE ((id & 72057594037927935) + 1) << (id >> 56) \
             > (SELECT size FROM log_head)",
            "DELETE FROM log_checkpoints WHERE size > (SELECT size FROM log_head)",
            "DELETE FROM log_terms WHERE idx >= (SELECT size FROM log_head)",
        ],
    )
    .await;
    let delivery = poll(30, async || {
        ledger_alerts()
            .pop()
            .ok_or_else(|| format!("no ledger alert arrived: {:?}", deliveries(&received)))
    })
    .await;
    let text = delivery["body"]["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("fewer than the {size} it had at the last check")),
        "{text}"
    );
    assert!(server.stop().success());
}

/// A server that refuses to start on a ledger rolled back while it was stopped (a backup
/// restored over a newer database) tells the webhooks, not only its exit code: the ledger
/// cannot record the alert, so it is delivered directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusing_to_start_on_a_rolled_back_ledger_alerts_the_webhooks() {
    let temp = tempfile::tempdir().unwrap();
    let (data, received, _receiver) = checked_every_second(temp.path());
    // The database with its write-ahead log, as a file-level backup takes it.
    let files = ["custody.db", "custody.db-wal", "custody.db-shm"];
    let backup = temp.path().join("backup");
    std::fs::create_dir(&backup).unwrap();
    for f in files {
        if data.join(f).exists() {
            std::fs::copy(data.join(f), backup.join(f)).unwrap();
        }
    }
    let appended = run(custody()
        .args(["bench", "append", "--writers", "1", "--events", "3"])
        .arg("--data-dir")
        .arg(&data));
    expect_code(&appended, 0);
    for f in files {
        let _ = std::fs::remove_file(data.join(f));
        if backup.join(f).exists() {
            std::fs::copy(backup.join(f), data.join(f)).unwrap();
        }
    }

    let refused = run(custody()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data));
    expect_code(&refused, 2);
    assert!(
        stderr(&refused).contains("went back"),
        "{}",
        stderr(&refused)
    );
    let alerts = delivered(&received, "ledger-consistency-failure");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let text = alerts[0]["body"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("[custody] critical: custody refused to start: ")
            && text.contains("the log's head went back from"),
        "{text}"
    );
}

/// A new instance under `root` whose whole ledger is re-checked every second, alerting
/// the webhook `ops` (a receiver writing what it gets to the file returned).
fn checked_every_second(
    root: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, Helper) {
    let data = root.join("data");
    expect_code(&run(custody().args(["init", "--data-dir"]).arg(&data)), 0);
    trust_new_keys(root, &data);
    let received = root.join("received.jsonl");
    let (receiver, hook) = listening(python_script("webhook_receiver.py").arg(&received).arg("0"));
    let config = data.join("config.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("ledger_check = \"1h\"", "ledger_check = \"1s\"");
    std::fs::write(
        &config,
        format!("{text}\n[[alerts.webhook]]\nname = \"ops\"\nurl = \"{hook}\"\n"),
    )
    .unwrap();
    (data, received, receiver)
}

/// Runs `statements` on the data directory's SQLite database, as someone holding the file
/// would.
async fn tamper(data: &std::path::Path, statements: &[&str]) {
    use sqlx::Connection as _;
    let url = format!("sqlite:{}", data.join("custody.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    for sql in statements {
        sqlx::query(sql).execute(&mut db).await.unwrap();
    }
}
