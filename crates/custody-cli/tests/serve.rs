//! `custody serve` as a newcomer runs it: a real process on a loopback port, creating its
//! data directory on first run, answering the ledger's public routes and the deploy gate
//! over real HTTP, and stopping cleanly on SIGTERM.
//!
//! The parts: [`clients`] (the CLI as the server's client), [`demo`] (a newcomer's demo on
//! a running server), [`alerts`] (every alert rule to a webhook) and [`ledger_checks`] (the
//! ledger re-checked while it serves).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

#[path = "serve/alerts.rs"]
mod alerts;
#[path = "serve/clients.rs"]
mod clients;
mod common;
#[path = "serve/demo.rs"]
mod demo;
#[path = "serve/ledger_checks.rs"]
mod ledger_checks;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use serde_json::Value;

async fn get(url: &str) -> (u16, String) {
    let r = http().get(url).send().await.unwrap();
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

    // The checkpoint and proofs are public; the entries (principals, roles, rationales)
    // are not.
    let entries = format!("{b}/api/v1/log/entries?start=0&end=1");
    let (status, _) = get(&entries).await;
    assert_eq!(status, 401);
    let reader = token(&data, &operator(&data), &[]);
    let answer = http()
        .get(&entries)
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let leaves = answer.text().await.unwrap();
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

    // Bad requests: 4xx with a JSON message.
    for (path, needle) in [
        ("/api/v1/log/entries?start=0&end=5000", "at most"),
        ("/api/v1/log/entries?start=x&end=1", "start"),
        ("/api/v1/log/proof/inclusion?index=5&size=1", "index"),
        ("/api/v1/log/proof/consistency?from=1&to=9", "beyond"),
        ("/api/v1/log/proof/consistency", "missing field"),
    ] {
        let answer = http()
            .get(format!("{b}{path}"))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap();
        let (status, body) = (answer.status().as_u16(), answer.text().await.unwrap());
        assert_eq!(status, 400, "{path}: {body}");
        let err: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}"));
        assert!(
            err["error"].as_str().unwrap().contains(needle),
            "{path}: {body}"
        );
    }
    // The deploy gate needs an identity.
    let digest = format!("sha256:{}", "a".repeat(64));
    let (status, body) = get(&format!("{b}/api/v1/verify?env=production&digest={digest}")).await;
    assert_eq!(status, 401);
    assert!(body.contains("Authorization: Bearer"), "{body}");

    // A leaked token is revoked by its whole text, as found: only its id is sent, and the
    // secret is nowhere in the access log.
    let leaked = token(&data, "argo", &[]);
    let secret = leaked.rsplit('_').next().unwrap().to_owned();
    let revoke = run(custody().args([
        "token", "revoke", &leaked, "--server", b, "--token", &reader,
    ]));
    expect_saying(&revoke, "of argo is revoked");
    let gate = format!("{b}/api/v1/verify?env=production&digest={digest}");
    assert_eq!(call("GET", &gate, Some(&leaked), None).await.0, 401);
    let (_, log) = call(
        "GET",
        &format!("{b}/api/v1/access-log?limit=1000"),
        Some(&reader),
        None,
    )
    .await;
    let log = log.to_string();
    assert!(log.contains("/revoke"), "{log}");
    assert!(!log.contains(&secret), "the secret was logged: {log}");

    // SIGTERM: a clean stop; a second start opens the same instance.
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    let again = Server::start(&data);
    let (_, note2) = get(&format!("{}/api/v1/log/checkpoint", again.base)).await;
    let cli = run(custody()
        .args(["log", "checkpoint", "--data-dir"])
        .arg(&data));
    assert_eq!(note2, stdout(&cli));
    assert!(again.stop().success());
}

/// Generates a builder key and a release key and writes them into the instance's policy as
/// trusted (applied with the next `grant_roles`); returns the private key files.
fn trust_new_keys(dir: &Path, data: &Path) -> (PathBuf, PathBuf) {
    let (builder_key, builder_pub) = generate_key(dir, "builder", "ed25519");
    let (release_key, release_pub) = generate_key(dir, "release", "ecdsa-p256");
    std::fs::create_dir_all(data.join("policy/keys")).unwrap();
    std::fs::copy(&builder_pub, data.join("policy/keys/builder.pub")).unwrap();
    std::fs::copy(&release_pub, data.join("policy/keys/release.pub")).unwrap();
    let policy = data.join("policy/custody.toml");
    let text = std::fs::read_to_string(&policy).unwrap().replace(
        "[[environment]]\nname = \"build\"",
        "[[release_key]]\npath = \"keys/release.pub\"\n\n[[builder]]\nid = \"https://ci.example/b\"\nkey = \"keys/builder.pub\"\nsource_repos = [\"https://git.example/acme/*\"]\n\n[[environment]]\nname = \"build\"",
    );
    std::fs::write(&policy, text).unwrap();
    (builder_key, release_key)
}

/// `artifact register` of `file` as shop, built from git.example/acme/shop at `commit` by
/// the trusted test builder (whose key `trust_new_keys` made).
fn register_shop(file: &Path, commit: &str, builder_key: &Path) -> Vec<String> {
    [
        "artifact",
        "register",
        "--name",
        "shop",
        "--file",
        file.to_str().unwrap(),
        "--source-repo",
        "https://git.example/acme/shop",
        "--commit",
        commit,
        "--builder-id",
        "https://ci.example/b",
        "--builder-key",
        builder_key.to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Adds role bindings to the instance's starter policy and applies it (as its operator).
fn grant_roles(data: &Path, roles: &str) {
    let path = data.join("policy/custody.toml");
    let text = with_roles(&std::fs::read_to_string(&path).unwrap(), roles);
    std::fs::write(&path, text).unwrap();
    let out = run(custody()
        .args(["policy", "propose", "--data-dir"])
        .arg(data));
    expect_code(&out, 0);
    until_servers_see_local_writes();
}

async fn call(method: &str, url: &str, token: Option<&str>, body: Option<String>) -> (u16, Value) {
    let client = http();
    let mut r = client.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.header("content-type", "application/json").body(b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A dashboard page as `principal` sees it (signed in with a fresh token).
async fn dashboard_page(data: &Path, base: &str, principal: &str, path: &str) -> String {
    let token = token(data, principal, &[]);
    let cookie = session_cookie(base, &token).await;
    page(base, &cookie, path).await.text().await.unwrap()
}

/// What the webhook receiver has written down so far, one delivery per line.
fn deliveries(received: &Path) -> Vec<Value> {
    std::fs::read_to_string(received)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The deliveries so far of the alerts raised by `rule`.
fn delivered(received: &Path, rule: &str) -> Vec<Value> {
    deliveries(received)
        .into_iter()
        .filter(|d| d["body"]["alert"]["rule"] == rule)
        .collect()
}

/// Asks `probe` every 200 ms until it answers `Ok`; once `secs` seconds have passed, fails
/// with what it last said.
async fn poll<T>(secs: u64, mut probe: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        match probe().await {
            Ok(found) => return found,
            Err(why) => assert!(std::time::Instant::now() < deadline, "{why}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// `custody ARGS` as a client of the server at `base`, with a fresh token of `who`'s.
fn as_client(data: &Path, base: &str, who: &str, args: &[&str]) -> Output {
    let t = token(data, who, &[]);
    run(custody()
        .args(args)
        .env("CUSTODY_SERVER", base)
        .env("CUSTODY_TOKEN", t))
}
