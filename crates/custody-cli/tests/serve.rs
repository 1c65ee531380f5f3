//! `custody serve` as a newcomer runs it: a real process on a loopback port, creating its
//! data directory on first run, answering the ledger's public routes and the deploy gate
//! over real HTTP, and stopping cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_creates_its_instance_and_answers_over_http() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let server = Server::start(&data);
    assert!(
        data.join("keys/log.key").exists(),
        "the first run did not create the instance"
    );
    let b = &server.base;

    assert_eq!(get(&format!("{b}/healthz")).await, (200, "ok\n".into()));
    assert_eq!(get(&format!("{b}/readyz")).await, (200, "ready\n".into()));
    let (status, note) = get(&format!("{b}/api/v1/log/checkpoint")).await;
    assert_eq!(status, 200);
    let cli = run(custody()
        .args(["log", "checkpoint", "--data-dir"])
        .arg(&data));
    expect_code(&cli, 0);
    assert_eq!(
        note,
        stdout(&cli),
        "the server and the CLI disagree on the checkpoint"
    );

    let (status, leaves) = get(&format!("{b}/api/v1/log/entries?start=0&end=1")).await;
    assert_eq!(status, 200);
    let first: Value = serde_json::from_str(leaves.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "policy.applied");
    let (status, proof) = get(&format!("{b}/api/v1/log/proof/inclusion?index=0&size=1")).await;
    assert_eq!(status, 200);
    let proof: Value = serde_json::from_str(&proof).unwrap();
    let leaf = custody_ledger::leaf_hash(leaves.lines().next().unwrap().as_bytes());
    let root: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&proof["root"].as_str().unwrap()[i..i + 2], 16).unwrap())
        .collect();
    custody_ledger::verify_inclusion(&leaf, 0, 1, &Vec::<Vec<u8>>::new(), &root).unwrap();

    // The deploy gate, and bad requests: 4xx with a JSON message.
    let digest = format!("sha256:{}", "a".repeat(64));
    let (status, body) = get(&format!("{b}/api/v1/verify?env=production&digest={digest}")).await;
    assert_eq!(status, 403);
    assert!(
        body.contains("nothing is certified in production"),
        "{body}"
    );
    for (path, needle) in [
        ("/api/v1/verify?env=production&digest=sha256:XYZ", "digest"),
        ("/api/v1/log/entries?start=0&end=5000", "at most"),
        ("/api/v1/log/entries?start=x&end=1", "start"),
        ("/api/v1/log/proof/inclusion?index=5&size=1", "index"),
        ("/api/v1/log/proof/consistency?from=1&to=9", "beyond"),
        ("/api/v1/log/proof/consistency", "missing field"),
    ] {
        let (status, body) = get(&format!("{b}{path}")).await;
        assert_eq!(status, 400, "{path}: {body}");
        let err: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}"));
        assert!(
            err["error"].as_str().unwrap().contains(needle),
            "{path}: {body}"
        );
    }

    // SIGTERM: a clean stop; a second start opens the same instance.
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    let again = Server::start(&data);
    let (_, note2) = get(&format!("{}/api/v1/log/checkpoint", again.base)).await;
    assert_eq!(note2, note);
    assert!(again.stop().success());
}

fn log_cmd(args: &[&str]) -> std::process::Output {
    run(custody().arg("log").args(args))
}

#[test]
fn an_auditor_checks_a_servers_log_with_nothing_but_its_public_key() {
    let temp = tempfile::tempdir().unwrap();
    let (a, b) = (temp.path().join("a"), temp.path().join("b"));
    expect_code(&run(custody().args(["init", "--data-dir"]).arg(&a)), 0);
    // b: a copy of a, which will then grow differently (a fork under the same key).
    expect_code(&run(Command::new("cp").arg("-r").arg(&a).arg(&b)), 0);
    let append = |dir: &std::path::Path, n: &str| {
        expect_code(
            &run(custody()
                .args([
                    "bench",
                    "append",
                    "--writers",
                    "2",
                    "--events",
                    n,
                    "--data-dir",
                ])
                .arg(dir)),
            0,
        );
    };
    append(&a, "20");
    append(&b, "35");
    let kept = temp.path().join("kept.note");
    let out = log_cmd(&["checkpoint", "--data-dir", a.to_str().unwrap()]);
    expect_code(&out, 0);
    std::fs::write(&kept, &out.stdout).unwrap();
    let key = a.join("keys/log.pub");
    let (key, kept) = (key.to_str().unwrap(), kept.to_str().unwrap());

    let server = Server::start(&a);
    let url = server.base.clone();
    let remote = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &url, "--log-key", key]);
        log_cmd(&all)
    };
    // The checkpoint, the entries and the proofs match the local ones, and verify.
    let out = remote(&["checkpoint", "--json"]);
    expect_code(&out, 0);
    let head: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (head["size"].as_u64(), head["signed"].as_bool()),
        (Some(21), Some(true))
    );
    let local = log_cmd(&["entries", "--data-dir", a.to_str().unwrap()]);
    assert_eq!(remote(&["entries"]).stdout, local.stdout);
    let out = remote(&["proof", "inclusion", "--index", "7", "--json"]);
    expect_code(&out, 0);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["root_signed"],
        true
    );
    expect_code(&remote(&["proof", "consistency", "--from", "3"]), 0);
    let out = remote(&["check", "--since-checkpoint", kept, "--json"]);
    expect_code(&out, 0);
    let check: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (check["ok"].as_bool(), check["consistent_since"].as_u64()),
        (Some(true), Some(21))
    );

    // The wrong key: the checkpoint does not verify (exit 1); no key: not trusted.
    let other = temp.path().join("other");
    generate_key(temp.path(), "other", "ed25519");
    let out = log_cmd(&[
        "checkpoint",
        "--server",
        &url,
        "--log-key",
        &format!("{}.pub", other.display()),
    ]);
    expect_code(&out, 1);
    assert!(
        stderr(&out).contains("does not verify with the log key"),
        "{}",
        stderr(&out)
    );
    let out = log_cmd(&["checkpoint", "--server", &url]);
    expect_code(&out, 0);
    assert!(stderr(&out).contains("not checked"), "{}", stderr(&out));
    let out = log_cmd(&["check", "--server", &url]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("--log-key"), "{}", stderr(&out));
    assert!(server.stop().success());

    // The fork: b, under the same key, is not consistent with the checkpoint kept from a.
    let forked = Server::start(&b);
    let out = log_cmd(&[
        "check",
        "--server",
        &forked.base,
        "--log-key",
        key,
        "--since-checkpoint",
        kept,
    ]);
    expect_code(&out, 1);
    assert!(stdout(&out).contains("the log forked"), "{}", stdout(&out));
    assert!(forked.stop().success());
}
