//! The log's own key rotates, through the `custody` binary: releases and promotions before
//! and after `custody key rotate log`, the server restarted on the new key and promoting
//! through its API, `custody log check` passing locally and against the server (also from
//! the old key and a checkpoint kept before, the server serving the hand-over checkpoint
//! by its size), an independent Python verifier following the hand-over from the old
//! public key alone; and the refusals: a wrong current key rotates nothing, the retired
//! key is named as such, a stranger's key is not followed, a hand-over checkpoint stripped
//! of the old key's signature fails the check.
//!
//! The offline checks (an auditor's bundle, a receipt, the independent follower) are in the
//! part [`offline`].

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

#[path = "audit/bundle.rs"]
mod bundle;
mod common;
#[path = "log_key_rotation/offline.rs"]
mod offline;

use std::path::Path;

use common::*;
use serde_json::Value;
use sqlx::Connection as _;

fn rotate(data: &Path) -> std::process::Output {
    run(custody()
        .args(["key", "rotate", "log", "--json", "--data-dir"])
        .arg(data))
}

fn size(data: &Path) -> u64 {
    let out = log(data, &["checkpoint", "--json"]);
    expect_code(&out, 0);
    serde_json::from_str::<Value>(&stdout(&out)).unwrap()["size"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_key_rotates_and_a_monitor_holding_the_old_key_follows_sqlite() {
    rotates_and_is_followed(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_key_rotates_and_a_monitor_holding_the_old_key_follows_postgres() {
    let url = tokio::task::spawn_blocking(fresh_postgres_database)
        .await
        .unwrap();
    rotates_and_is_followed(Some(url)).await;
}

/// The whole story on one instance: on SQLite in the data directory, or on the PostgreSQL
/// database `postgres` (every later command finds it through the data directory).
async fn rotates_and_is_followed(postgres: Option<String>) {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let mut init = custody();
    init.args(["init", "--data-dir"]).arg(&data);
    if let Some(url) = &postgres {
        init.args(["--database-url", url]);
    }
    expect_code(&run(&mut init), 0);
    expect_code(&run(custody().args(["demo", "--data-dir"]).arg(&data)), 0);
    let rita = token(&data, "rita", &[]);
    let old_pub = temp.path().join("old.pub");
    std::fs::copy(data.join("keys/log.pub"), &old_pub).unwrap();
    let kept = temp.path().join("kept.checkpoint");
    let out = log(&data, &["checkpoint"]);
    expect_code(&out, 0);
    std::fs::write(&kept, stdout(&out)).unwrap();
    let origin = stdout(&out).lines().next().unwrap().to_owned();
    let before: u64 = stdout(&out).lines().nth(1).unwrap().parse().unwrap();

    // A rotation with the wrong current key is refused, and nothing is written.
    let real = std::fs::read(data.join("keys/log.key")).unwrap();
    let (foreign, _) = generate_key(temp.path(), "foreign", "ed25519");
    std::fs::copy(&foreign, data.join("keys/log.key")).unwrap();
    let out = rotate(&data);
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("nothing was written"),
        "{}",
        stderr(&out)
    );
    std::fs::write(data.join("keys/log.key"), &real).unwrap();
    assert_eq!(size(&data), before);
    assert!(!data.join("keys/log.next.key").exists());
    assert!(!data.join("keys/retired").exists());

    // Production runs on the old key (and, against the advice, is not stopped for the
    // rotation: it must then refuse to write rather than sign with the retired key).
    let stale = Server::start(&data);
    // The server appends the alerts it raises on what it reads at start; a hand-over
    // decided while one lands is refused whole ("nothing was written"), and the operator
    // runs it again.
    let mut out = rotate(&data);
    for _ in 0..50 {
        if !stderr(&out).contains("but with it the log has") {
            break;
        }
        out = rotate(&data);
    }
    expect_code(&out, 0);
    let rotated: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let at = rotated["size"].as_u64().unwrap();
    assert!(at > before, "{at}");
    let handover_note = rotated["handover_checkpoint"].as_str().unwrap().to_owned();
    assert_eq!(
        handover_note.matches('\u{2014}').count(),
        2,
        "{handover_note}"
    );
    assert!(Path::new(rotated["retired_pub"].as_str().unwrap()).exists());
    assert!(Path::new(rotated["retired_key"].as_str().unwrap()).exists());
    assert_ne!(
        std::fs::read(data.join("keys/log.pub")).unwrap(),
        std::fs::read(&old_pub).unwrap()
    );

    // The server left running on the old key writes nothing.
    let promote = |base: &str| {
        run(custody()
            .args(["promote", "shop@1.2.0", "--to", "staging", "--json"])
            .args(["--server", base])
            .env("CUSTODY_TOKEN", &rita))
    };
    let out = promote(&stale.base);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("was rotated while it ran") && stderr(&out).contains("restarts it"),
        "{}",
        stderr(&out)
    );
    assert_eq!(size(&data), at);
    // Once the new key signs a checkpoint alone, the stale server cannot vouch for the
    // log's head: its public checkpoint read says why and what to do (not a bare 500).
    token(&data, "vic", &[]);
    let signed_by_new_key = size(&data);
    assert!(signed_by_new_key > at);
    let head = http()
        .get(format!("{}/api/v1/log/checkpoint", stale.base))
        .send()
        .await
        .unwrap();
    let (status, body) = (head.status().as_u16(), head.text().await.unwrap());
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("was rotated while it ran") && body.contains("restarts it"),
        "{body}"
    );
    let ready = http()
        .get(format!("{}/readyz", stale.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status().as_u16(),
        503,
        "a retired server is not ready"
    );
    let said = ready.text().await.unwrap();
    assert!(said.contains("was rotated while it ran"), "{said}");
    assert!(stale.stop().success());

    // The head is still the hand-over checkpoint, which the retired key signed too: with
    // the retired pair put back, nothing opens the ledger to write (not a token, not a
    // second hand-over), and nothing is written.
    let (new_key, new_pub) = (
        std::fs::read(data.join("keys/log.key")).unwrap(),
        std::fs::read(data.join("keys/log.pub")).unwrap(),
    );
    // Moved back, as an operator undoing the rotation by hand would.
    let (retired_key, retired_pub) = (
        rotated["retired_key"].as_str().unwrap(),
        rotated["retired_pub"].as_str().unwrap(),
    );
    std::fs::rename(retired_key, data.join("keys/log.key")).unwrap();
    std::fs::rename(retired_pub, data.join("keys/log.pub")).unwrap();
    for args in [
        &["token", "create", "--principal", "rita", "--expires", "1d"][..],
        &["key", "rotate", "log"][..],
    ] {
        let out = run(custody().args(args).arg("--data-dir").arg(&data));
        assert_ne!(out.status.code(), Some(0), "{args:?}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("is retired"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    std::fs::rename(data.join("keys/log.key"), retired_key).unwrap();
    std::fs::rename(data.join("keys/log.pub"), retired_pub).unwrap();
    std::fs::write(data.join("keys/log.key"), new_key).unwrap();
    std::fs::write(data.join("keys/log.pub"), new_pub).unwrap();
    assert_eq!(size(&data), signed_by_new_key);

    // The retired log key serves the log alone for good: a policy enrolling it as a
    // person's approval key is refused.
    let applied = run(custody()
        .args([
            "history",
            "--type",
            "policy.applied",
            "--json",
            "--limit",
            "0",
        ])
        .args(["--data-dir"])
        .arg(&data));
    expect_code(&applied, 0);
    let applied: Value = serde_json::from_slice(&applied.stdout).unwrap();
    let files = applied.as_array().unwrap().last().unwrap()["event"]["files"]
        .as_object()
        .unwrap()
        .clone();
    let bundle = temp.path().join("bundle");
    for (name, text) in &files {
        let path = bundle.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text.as_str().unwrap()).unwrap();
    }
    std::fs::copy(retired_pub, bundle.join("keys/enrolled.pub")).unwrap();
    let toml = std::fs::read_to_string(bundle.join("custody.toml")).unwrap();
    std::fs::write(
        bundle.join("custody.toml"),
        format!("{toml}\n[[person_key]]\nprincipal = \"rita\"\npath = \"keys/enrolled.pub\"\n"),
    )
    .unwrap();
    let out = run(custody()
        .args(["policy", "propose"])
        .arg(&bundle)
        .args(["--data-dir"])
        .arg(&data));
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("one of this custody instance's own keys"),
        "{}",
        stderr(&out)
    );
    assert_eq!(size(&data), signed_by_new_key);

    // Production restarts on the new key and keeps promoting through the API.
    let server = Server::start(&data);
    let out = promote(&server.base);
    expect_code(&out, 1); // recorded, waiting for its approvals
    let pending: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(pending["promotion"]["id"].is_string(), "{pending}");
    let grown = size(&data);
    assert!(grown > at + 1, "{grown}");

    // A remote monitor fetches the hand-over checkpoint by its size, without a token…
    let base = server.base.clone();
    let get = |query: String| {
        let url = format!("{base}/api/v1/log/checkpoint?{query}");
        async move {
            let response = http().get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(
        get(format!("size={at}")).await,
        (200, handover_note.clone())
    );
    let (status, body) = get(format!("size={}", grown + 10)).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = get(format!("size={at}&final=true")).await;
    assert_eq!(status, 400, "{body}");
    // …and `log check --server` follows it from the old key and the kept checkpoint.
    let reader = token(&data, &operator(&data), &[]);
    let remote_check = |key: &Path| {
        run(custody()
            .args(["log", "check", "--server", &server.base, "--token", &reader])
            .arg("--log-key")
            .arg(key)
            .arg("--since-checkpoint")
            .arg(&kept)
            .env_remove("CUSTODY_TOKEN"))
    };
    let out = remote_check(&old_pub);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains(&format!(
            "consistent with your checkpoint of {before} entries"
        )),
        "{}",
        stdout(&out)
    );
    let out = remote_check(&data.join("keys/log.pub"));
    expect_code(&out, 0);
    let (_, foreign_pub) = generate_key(temp.path(), "stranger", "ed25519");
    let out = remote_check(&foreign_pub);
    expect_code(&out, 1);
    assert!(server.stop().success());

    // The retired key is refused by name where the data directory's key is expected.
    let current_pub = std::fs::read(data.join("keys/log.pub")).unwrap();
    std::fs::copy(&old_pub, data.join("keys/log.pub")).unwrap();
    let out = log(&data, &["check"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("is retired"), "{}", stderr(&out));
    std::fs::write(data.join("keys/log.pub"), &current_pub).unwrap();

    // A successor must be a new key: never the retired log key (its checkpoints could not
    // be told from a rollback to its era), nor the receipt key (one key, one purpose).
    // Each is refused before anything is written.
    let retired = rotated["retired_key"].as_str().unwrap().to_owned();
    let attestor = data.join("keys/attestor.key");
    for (key, expect) in [
        (retired.as_str(), "signed this log before"),
        (attestor.to_str().unwrap(), "receipt key"),
    ] {
        let grown = size(&data);
        let out = run(custody()
            .args(["key", "rotate", "log", "--new-key", key, "--data-dir"])
            .arg(&data));
        expect_code(&out, 2);
        assert!(
            stderr(&out).contains(expect) && stderr(&out).contains("nothing was written"),
            "{}",
            stderr(&out)
        );
        assert_eq!(size(&data), grown);
        assert!(!data.join("keys/log.next.key").exists());
    }

    let out = log(&data, &["check"]);
    expect_code(&out, 0);
    // A monitor that knew only the old key and a checkpoint from before.
    let out = log(
        &data,
        &[
            "check",
            "--log-key",
            old_pub.to_str().unwrap(),
            "--since-checkpoint",
            kept.to_str().unwrap(),
        ],
    );
    expect_code(&out, 0);
    assert!(stdout(&out).contains(&format!(
        "consistent with your checkpoint of {before} entries"
    )));

    // Checked offline, from the old key and the checkpoint kept before the rotation.
    let stripped = offline::checked_offline(offline::Rotated {
        temp: &temp,
        data: data.clone(),
        origin,
        kept,
        old_pub,
        at,
        handover_note,
        rotated,
        foreign,
        foreign_pub,
    });

    // The same forgery in the database: the hand-over checkpoint without the old key's
    // signature. custody refuses to open the ledger and `log check` fails.
    forge_checkpoint(postgres.as_deref(), &data, at, &stripped).await;
    let out = log(&data, &["check"]);
    assert_ne!(out.status.code(), Some(0));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(said.contains("hand-over"), "{said}");
}

/// Replaces the stored checkpoint of `size` entries by `note`, as an intruder with
/// database access would (the append-only guard dropped first).
async fn forge_checkpoint(postgres: Option<&str>, data: &Path, size: u64, note: &str) {
    match postgres {
        None => {
            let url = format!("sqlite:{}", data.join("custody.db").display());
            let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query("DROP TRIGGER log_checkpoints_append_only_u")
                .execute(&mut db)
                .await
                .unwrap();
            sqlx::query("UPDATE log_checkpoints SET note = ? WHERE size = ?")
                .bind(note)
                .bind(size as i64)
                .execute(&mut db)
                .await
                .unwrap();
            db.close().await.unwrap();
        }
        Some(url) => {
            let mut db = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query("DROP TRIGGER log_checkpoints_append_only ON log_checkpoints")
                .execute(&mut db)
                .await
                .unwrap();
            sqlx::query("UPDATE log_checkpoints SET note = $1 WHERE size = $2")
                .bind(note)
                .bind(size as i64)
                .execute(&mut db)
                .await
                .unwrap();
            db.close().await.unwrap();
        }
    }
}
