//! `custody serve` as a newcomer runs it: a real process on a loopback port, creating its
//! data directory on first run, answering the ledger's public routes and the deploy gate
//! over real HTTP, and stopping cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::process::Command;

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
    expect_code(&revoke, 0);
    assert!(
        stdout(&revoke).contains("of argo is revoked"),
        "{}",
        stdout(&revoke)
    );
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
    let reader = token(&a, &operator(&a), &[]);
    let remote = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &url, "--log-key", key, "--token", &reader]);
        log_cmd(&all)
    };
    // The checkpoint, the entries and the proofs match the local ones, and verify.
    let out = remote(&["checkpoint", "--json"]);
    expect_code(&out, 0);
    let head: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (head["size"].as_u64(), head["signed"].as_bool()),
        (Some(22), Some(true)) // with the reader's token
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
    expect_refusal(&out, 1, "does not verify with the log key");
    let out = log_cmd(&["checkpoint", "--server", &url]);
    expect_refusal(&out, 0, "not checked");
    let out = log_cmd(&["check", "--server", &url]);
    expect_refusal(&out, 2, "--log-key");
    assert!(server.stop().success());

    // The fork: b, under the same key, is not consistent with the checkpoint kept from a.
    let forked = Server::start(&b);
    let reader_b = token(&b, &operator(&b), &[]);
    let out = log_cmd(&[
        "check",
        "--server",
        &forked.base,
        "--log-key",
        key,
        "--since-checkpoint",
        kept,
        "--token",
        &reader_b,
    ]);
    expect_code(&out, 1);
    assert!(stdout(&out).contains("the log forked"), "{}", stdout(&out));
    assert!(forked.stop().success());
}

/// Generates a builder key and a release key and writes them into the instance's policy as
/// trusted (applied with the next `grant_roles`); returns the private key files.
fn trust_new_keys(
    dir: &std::path::Path,
    data: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf) {
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
fn register_shop(
    file: &std::path::Path,
    commit: &str,
    builder_key: &std::path::Path,
) -> Vec<String> {
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
fn grant_roles(data: &std::path::Path, roles: &str) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_starts_the_service_and_fills_it_with_the_demo() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let server = Server::start(&data);
    let out = run(custody().args(["demo", "--json", "--data-dir"]).arg(&data));
    expect_code(&out, 0);
    let seeded: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Four releases, the last waiting in staging for an approver.
    let releases = seeded["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 4);
    assert_eq!(releases[3], "shop@1.3.0");
    assert_eq!(
        (seeded["rejected"].as_u64(), seeded["rollbacks"].as_u64()),
        (Some(1), Some(1))
    );
    // It ends with a way in: tokens for its admin (the operator, also an approver), an
    // auditor and a viewer, and the cast with their roles.
    let me = operator(&data);
    let sign_in = seeded["sign_in"].as_array().unwrap();
    let token_of = |who: &str| {
        sign_in
            .iter()
            .find(|s| s["principal"] == who)
            .unwrap_or_else(|| panic!("no token for {who} in {sign_in:?}"))["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let admin = token_of(&me);
    assert!(seeded["dashboard"].as_str().unwrap().ends_with("/login"));
    let cast = seeded["cast"].as_array().unwrap();
    assert!(
        cast.iter()
            .any(|c| c["principal"] == "alice" && c["roles"][0] == "approver"),
        "{cast:?}"
    );
    // A second run would muddle the story: refused.
    expect_code(&run(custody().args(["demo", "--data-dir"]).arg(&data)), 2);
    until_servers_see_local_writes();

    // The demo's admin token signs in to the dashboard, as an admin and approver.
    let cookie = session_cookie(&server.base, &admin).await;
    let board = http()
        .get(format!("{}/", server.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(board.status().as_u16(), 200);
    let board = board.text().await.unwrap();
    assert!(
        board.contains("Waiting (1)") && board.contains(">shop@1.3.0</a> by rita"),
        "{board}"
    );
    let (status, me) = call(
        "GET",
        &format!("{}/api/v1/whoami", server.base),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{me}");
    let roles: Vec<&str> = me["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        roles.contains(&"admin") && roles.contains(&"approver"),
        "{me}"
    );
    // The sign-in page says where tokens come from.
    let (_, login) = get(&format!("{}/login", server.base)).await;
    assert!(
        login.contains("custody token create") && login.contains("custody demo"),
        "{login}"
    );

    // The dashboard's exports answer a script's bearer token (the auditor's printed by the
    // demo), never a redirect to the sign-in page; a bad token gets 401.
    let export = |token: &str, path: &str| {
        let url = format!("{}{path}", server.base);
        let token = token.to_owned();
        async move {
            let client = custody_server::http_client::client_builder(None)
                .unwrap()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let r = client
                .get(url)
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, csv) = export(&token_of("audrey"), "/history.csv?env=production").await;
    assert_eq!(status, 200, "{csv}");
    assert!(csv.starts_with("index,at,type"), "{csv}");
    assert!(csv.contains("rollback"), "{csv}");
    let (status, json) = export(&token_of("vic"), "/history.json?env=production").await;
    assert_eq!(status, 200, "{json}");
    assert!(serde_json::from_str::<Value>(&json).unwrap().is_array());
    let (status, _) = export("cst_not-a-token", "/history.csv").await;
    assert_eq!(status, 401);
    // Pages other than the exports still want a session: a bearer token is not a sign-in.
    let (status, _) = export(&admin, "/").await;
    assert_eq!(status, 303);

    // The running server shows it: an auditor of the demo organisation reads the history.
    let audrey = token(&data, "audrey", &[]);
    let (status, history) = call(
        "GET",
        &format!("{}/api/v1/history?env=production&limit=1000", server.base),
        Some(&audrey),
        None,
    )
    .await;
    assert_eq!(status, 200, "{history}");
    let types: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["type"].as_str().unwrap())
        .collect();
    for t in [
        "environment.certified",
        "approval.recorded",
        "rollback",
        "deploy.reported",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    let out = run(custody()
        .args(["history", "--principal", "carol", "--data-dir"])
        .arg(&data));
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("rejected shop@1.1.0 → production"),
        "{}",
        stdout(&out)
    );
    let check = run(custody().args(["log", "check", "--data-dir"]).arg(&data));
    expect_code(&check, 0);

    // /metrics, parsed by the Prometheus project's own Python parser, counts what the
    // ledger records of the demo.
    // Only with a token of someone who may read the history (here a viewer's).
    let scraper = token(&data, "vic", &[]);
    until_servers_see_local_writes();
    let all = run(custody()
        .args(["history", "--json", "--limit", "0", "--data-dir"])
        .arg(&data));
    let all: Vec<Value> = serde_json::from_slice(&all.stdout).unwrap();
    let recorded = |kind: &str, key: &str, value: &str| {
        all.iter()
            .filter(|e| e["event"]["type"] == kind && e["event"][key] == value)
            .count() as f64
    };
    let anonymous = http()
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let samples = scrape_metrics(&server.base, &scraper).await;
    let sample = |name: &str, labels: &[(&str, &str)]| metric(&samples, name, labels);
    for env in ["build", "test", "staging", "production"] {
        let e = [("environment", env)];
        assert_eq!(
            sample("custody_promotions_requested_total", &e),
            recorded("promotion.requested", "environment", env),
            "{env}"
        );
        assert_eq!(
            sample("custody_certifications_total", &e),
            recorded("environment.certified", "environment", env),
            "{env}"
        );
        assert_eq!(
            sample("custody_decisions_total", &e),
            recorded("decision.recorded", "environment", env),
            "{env}"
        );
        assert_eq!(
            sample("custody_time_to_promotion_seconds_count", &e),
            recorded("environment.certified", "environment", env),
            "every certification had its request in the ledger: {env}"
        );
    }
    for verdict in ["approve", "reject"] {
        assert_eq!(
            sample("custody_reviews_total", &[("verdict", verdict)]),
            recorded("approval.recorded", "verdict", verdict)
        );
    }
    assert_eq!(sample("custody_rollbacks_total", &[]), 1.0);
    assert_eq!(
        sample("custody_deploys_reported_total", &[("status", "failed")]),
        recorded("deploy.reported", "status", "failed")
    );
    assert_eq!(
        sample(
            "custody_gate_results_total",
            &[("gate", "approvals"), ("status", "fail")]
        ),
        1.0,
        "the one rejection"
    );
    assert_eq!(sample("custody_ledger_entries", &[]), all.len() as f64);
    // The demo's reviews come minutes after the requests.
    let production = [("environment", "production")];
    assert!(sample("custody_time_to_promotion_seconds_sum", &production) > 0.0);
    assert!(sample("custody_approval_latency_seconds_sum", &production) > 0.0);
    assert!(
        sample(
            "custody_http_request_duration_seconds_count",
            &[("route", "/api/v1/history")]
        ) >= 1.0
    );

    // The CLI as a client of the server: each person with their own token.
    let remote = |who: &str, args: &[&str]| {
        let t = token(&data, who, &[]);
        run(custody()
            .args(args)
            .env("CUSTODY_SERVER", &server.base)
            .env("CUSTODY_TOKEN", t))
    };
    let out = remote("audrey", &["history", "--principal", "carol", "--json"]);
    expect_code(&out, 0);
    let events: Value = serde_json::from_slice(&out.stdout).unwrap();
    let decision = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"]["type"] == "decision.recorded")
        .unwrap()["event"]["decision"]
        .as_str()
        .unwrap()
        .to_owned();
    expect_code(&remote("audrey", &["decision", "show", &decision]), 0);
    let out = remote("audrey", &["decision", "replay", &decision]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("replayed to the same outcome"),
        "{}",
        stdout(&out)
    );
    let out = remote("audrey", &["decision", "replay", "dec-none"]);
    expect_refusal(&out, 2, "dec-none");
    let out = remote(
        "rita",
        &["promote", "shop@1.2.0", "--to", "staging", "--json"],
    );
    expect_code(&out, 1); // waits for an approval
    let pending: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = pending["promotion"]["id"].as_str().unwrap().to_owned();
    // The operator approves with a token they made for themselves (an admin's token for
    // alice would not make the approval hers).
    let out = remote(
        &operator(&data),
        &[
            "approve",
            &id,
            "--rationale",
            "re-test after the fix",
            "--risk",
            "low",
        ],
    );
    expect_code(&out, 0);
    assert!(stdout(&out).contains("certified"), "{}", stdout(&out));
    // Those went through the server: its appends were timed.
    let samples = scrape_metrics(&server.base, &scraper).await;
    let committed = [("outcome", "committed")];
    assert!(
        metric(
            &samples,
            "custody_ledger_append_duration_seconds_count",
            &committed
        ) >= 2.0
    );
    assert!(
        metric(
            &samples,
            "custody_ledger_append_duration_seconds_sum",
            &committed
        ) > 0.0
    );
    // A refusal over HTTP exits 1 with what is missing, as it would locally.
    let out = remote("vic", &["promote", "shop@1.2.0", "--to", "build"]);
    expect_refusal(&out, 1, "may not request promotions");
    let out = run(custody()
        .args(["history"])
        .env("CUSTODY_SERVER", &server.base));
    expect_refusal(&out, 1, "--token");
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builders_and_signers_work_through_the_server_with_their_keys_at_home() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let server = Server::start(&data);
    let (builder_key, release_key) = trust_new_keys(temp.path(), &data);
    grant_roles(
        &data,
        "builder = [\"ci-bot\"]\nsigner = [\"rita\"]\ndeployer = [\"argo\"]\nsecurity = [\"sec\"]",
    );
    let remote = |who: &str, args: &[&str]| {
        let t = token(&data, who, &[]);
        run(custody()
            .args(args)
            .env("CUSTODY_SERVER", &server.base)
            .env("CUSTODY_TOKEN", t))
    };
    let file = temp.path().join("shop.tar");
    std::fs::write(&file, "shop v1").unwrap();
    let register = register_shop(&file, "abc123", &builder_key);
    let register: Vec<&str> = register.iter().map(String::as_str).collect();
    let out = remote("rita", &register);
    expect_refusal(&out, 1, "may not register artifacts");
    let out = remote("ci-bot", &register);
    expect_code(&out, 0);
    let digest = stdout(&out).trim().to_owned();
    let junit = temp.path().join("junit.xml");
    std::fs::write(&junit, "<testsuite/>").unwrap();
    expect_code(
        &remote(
            "ci-bot",
            &[
                "attest",
                "--artifact",
                &digest,
                "--type",
                "junit",
                junit.to_str().unwrap(),
            ],
        ),
        0,
    );
    let artifact = format!("shop={digest}");
    let out = remote(
        "rita",
        &[
            "release",
            "create",
            "shop",
            "1.0.0",
            "--artifact",
            &artifact,
            "--sign-key",
            builder_key.to_str().unwrap(),
        ],
    );
    expect_refusal(&out, 1, "separation of signing duties");
    let out = remote(
        "rita",
        &[
            "release",
            "create",
            "shop",
            "1.0.0",
            "--artifact",
            &artifact,
            "--sign-key",
            release_key.to_str().unwrap(),
        ],
    );
    expect_code(&out, 0);

    // The deploy gate answers from memory, yet never misses a write: before the promotion…
    let argo = token(&data, "argo", &[]);
    let gate = format!("{}/api/v1/verify?env=build&digest={digest}", server.base);
    for _ in 0..3 {
        let (status, v) = call("GET", &gate, Some(&argo), None).await;
        assert_eq!(status, 403, "{v}");
        assert!(
            v["reasons"].to_string().contains("nothing is certified"),
            "{v}"
        );
    }
    let out = remote("rita", &["promote", "shop@1.0.0", "--to", "build"]);
    expect_code(&out, 0);
    assert!(stdout(&out).contains("certified"), "{}", stdout(&out));
    // …and at once after it, since the promotion went through this server.
    let (status, v) = call("GET", &gate, Some(&argo), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["release"], "shop@1.0.0");

    // Another process removes the release key from the policy: the server notices within
    // its watch interval, and the gate then counts the key as revoked.
    let policy = data.join("policy/custody.toml");
    let trusting = std::fs::read_to_string(&policy).unwrap();
    let text = trusting.replace("[[release_key]]\npath = \"keys/release.pub\"\n\n", "");
    std::fs::write(&policy, text).unwrap();
    let out = run(custody()
        .args(["policy", "propose", "--data-dir"])
        .arg(&data));
    expect_code(&out, 0);
    until_servers_see_local_writes();
    let (status, v) = call("GET", &gate, Some(&argo), None).await;
    assert_eq!(status, 403, "{v}");
    assert!(
        v["reasons"]
            .to_string()
            .contains("no longer stands in build")
            && v["reasons"]
                .to_string()
                .contains("not signed by a trusted release key"),
        "{v}"
    );

    // A security engineer puts the key back through the server: the gate allows at once.
    let bundle = temp.path().join("bundle");
    std::fs::create_dir_all(bundle.join("keys")).unwrap();
    for f in ["keys/builder.pub", "keys/release.pub"] {
        std::fs::copy(data.join("policy").join(f), bundle.join(f)).unwrap();
    }
    std::fs::write(bundle.join("custody.toml"), &trusting).unwrap();
    let out = remote("sec", &["policy", "apply"]);
    expect_refusal(&out, 2, "needs the bundle's directory");
    let out = remote("rita", &["policy", "apply", bundle.to_str().unwrap()]);
    expect_refusal(&out, 1, "may not apply policies");
    // The starter policy names no owners who could approve a change, so nobody changes it
    // through the server; its operator does, on the data directory (a recorded bootstrap).
    let out = remote("sec", &["policy", "apply", bundle.to_str().unwrap()]);
    expect_refusal(&out, 1, "nobody could approve a change");
    let out = run(custody()
        .args(["policy", "propose"])
        .arg(&bundle)
        .arg("--data-dir")
        .arg(&data));
    expect_code(&out, 0);
    assert!(stdout(&out).contains("bootstrap"), "{}", stdout(&out));
    until_servers_see_local_writes();
    let (status, v) = call("GET", &gate, Some(&argo), None).await;
    assert_eq!(status, 200, "{v}");
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_speaks_https_to_a_server_behind_a_tls_proxy() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let server = Server::start(&data);
    grant_roles(&data, "deployer = [\"argo\"]");
    let argo = token(&data, "argo", &[]);
    let (proxy, https) = listening(
        python_script("tls_proxy.py")
            .arg(&server.base)
            .arg(temp.path()),
    );
    let ca = temp.path().join("ca.pem");
    let log_pub = data.join("keys/log.pub");
    let log = |extra: &[&str]| {
        run(custody()
            .args(["log", "checkpoint", "--server", &https, "--log-key"])
            .arg(&log_pub)
            .args(extra))
    };

    // With the proxy's CA the auditor's check and the deploy gate work over HTTPS…
    let out = log(&["--ca-cert", ca.to_str().unwrap()]);
    expect_code(&out, 0);
    assert!(stdout(&out).starts_with("custody/"), "{}", stdout(&out));
    let digest = format!("sha256:{}", "a".repeat(64));
    let out = run(custody()
        .args(["verify", "--env", "build", &digest, "--server", &https])
        .args(["--token", &argo, "--ca-cert", ca.to_str().unwrap()]));
    expect_code(&out, 1);
    assert!(
        stdout(&out).contains("nothing is certified in build"),
        "{}",
        stdout(&out)
    );
    let out = run(custody()
        .args(["history", "--json", "--server", &https, "--token", &argo])
        .env("CUSTODY_CA_CERT", &ca));
    expect_code(&out, 0);
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(history[0]["event"]["type"], "policy.applied");
    // …without it the certificate is not trusted, and the error says what to pass…
    let out = log(&[]);
    expect_refusal(&out, 2, "--ca-cert");
    // …and a CA file that holds no certificate is refused by name.
    let out = log(&["--ca-cert", log_pub.to_str().unwrap()]);
    expect_refusal(&out, 2, "CA certificate");
    drop(proxy);
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_rule_reaches_a_webhook_once_and_a_failing_one_is_kept() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    expect_code(&run(custody().args(["init", "--data-dir"]).arg(&data)), 0);
    let received = temp.path().join("received.jsonl");
    // The receiver refuses the first three deliveries, then takes them.
    let (_receiver, hook) = listening(python_script("webhook_receiver.py").arg(&received).arg("3"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let config = data.join("config.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("approval_sla = \"24h\"", "approval_sla = \"1h\"")
        .replace("denied_threshold = 5", "denied_threshold = 3")
        .replace("expiry_warning = \"2h\"", "expiry_warning = \"73h\"");
    std::fs::write(
        &config,
        format!(
            "{text}\n[[alerts.webhook]]\nname = \"ops\"\nurl = \"{hook}\"\n\n[[alerts.webhook]]\nname = \"down\"\nurl = \"{down}\"\n"
        ),
    )
    .unwrap();
    let (builder_key, release_key) = trust_new_keys(temp.path(), &data);
    // Promotions into build wait for an approver, so one can wait past the SLA.
    let policy = data.join("policy/custody.toml");
    let p = std::fs::read_to_string(&policy).unwrap().replace(
        "[[environment]]\nname = \"build\"\n",
        "[[environment]]\nname = \"build\"\napprovals = { quorum = 2, roles = [\"approver\"], expires = \"72h\" }\nevidence = [\"test-results\"]\nevidence_max_age = \"74h\"\nbreak_glass = [\"signer\"]\n",
    );
    std::fs::write(&policy, p).unwrap();
    // approver-1 signs her approvals with her own key.
    let (approver_key, approver_pub) = generate_key(temp.path(), "approver-1", "ed25519");
    std::fs::copy(&approver_pub, data.join("policy/keys/approver-1.pub")).unwrap();
    // rita signs when she breaks glass: it overrides the approvals, so it takes her key.
    let (rita_key, rita_pub) = generate_key(temp.path(), "rita", "ed25519");
    std::fs::copy(&rita_pub, data.join("policy/keys/rita.pub")).unwrap();
    let enrolled = std::fs::read_to_string(&policy).unwrap()
        + "\n[[person_key]]\nprincipal = \"approver-1\"\npath = \"keys/approver-1.pub\"\n"
        + "\n[[person_key]]\nprincipal = \"rita\"\npath = \"keys/rita.pub\"\n";
    std::fs::write(&policy, enrolled).unwrap();
    let server = Server::start(&data);
    grant_roles(
        &data,
        "admin = [\"root\"]\ndeployer = [\"argo\"]\nviewer = [\"vic\"]\nsigner = [\"rita\"]\nbuilder = [\"ci\"]",
    );
    let tokens: std::collections::BTreeMap<&str, String> = ["ci", "rita", "approver-1", "argo"]
        .into_iter()
        .map(|who| (who, token(&data, who, &[])))
        .collect();
    let local = |who: &str, args: &[&str]| {
        let mut command = custody();
        command
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env("CUSTODY_TOKEN", &tokens[who]);
        if matches!(args.first(), Some(&("approve" | "reject"))) {
            command.arg("--sign-key").arg(&approver_key);
        }
        if args.contains(&"--break-glass") && who == "rita" {
            command.arg("--sign-key").arg(&rita_key);
        }
        run(&mut command)
    };
    let register = |file: &str, body: &str| {
        let path = temp.path().join(file);
        std::fs::write(&path, body).unwrap();
        let args = register_shop(&path, "abc", &builder_key);
        let out = local("ci", &args.iter().map(String::as_str).collect::<Vec<_>>());
        expect_code(&out, 0);
        stdout(&out).trim().to_owned()
    };
    // A provenance discrepancy: the same source and parameters, another digest.
    let digest = register("shop-1.tar", "shop v1");
    let other = register("shop-2.tar", "shop v1, but not quite");
    // The two builds side by side, over HTTP: the same source and parameters.
    let out = run(custody()
        .args([
            "artifact",
            "compare",
            &digest,
            &other,
            "--json",
            "--server",
            &server.base,
        ])
        .env("CUSTODY_TOKEN", &tokens["rita"]));
    expect_code(&out, 0);
    let compared: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(compared["same_source"], true, "{compared:#}");
    assert_eq!(compared["builds"][1]["digest"], other.as_str());
    assert!(
        compared["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(
                |f| f["field"] == "buildDefinition.externalParameters.source.commit"
                    && f["same"] == true
            ),
        "{compared:#}"
    );
    // And on the artifact's page, marked as a discrepancy.
    let cookie = session_cookie(&server.base, &tokens["rita"]).await;
    let artifact = page(&server.base, &cookie, &format!("/artifacts/{digest}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        artifact.contains("Provenance discrepancy") && artifact.contains(&other),
        "{artifact}"
    );
    // An unsigned release promoted: its signature gate fails.
    let artifact = format!("shop={digest}");
    expect_code(
        &local(
            "rita",
            &[
                "release",
                "create",
                "shop",
                "1.0.0",
                "--artifact",
                &artifact,
            ],
        ),
        0,
    );
    let unsigned = local("rita", &["promote", "shop@1.0.0", "--to", "build"]);
    expect_code(&unsigned, 1);
    assert!(
        stdout(&unsigned).contains("FAIL  release-signature"),
        "{}",
        stdout(&unsigned)
    );
    // Its test results, attached two hours ago: 72 h left of the 74 h they stay fresh,
    // within the 73 h warning.
    let two_hours_ago = custody_model::Timestamp::from_unix_seconds(
        custody_app::Clock::now(&custody_app::SystemClock).unix_seconds() - 7200,
    )
    .unwrap();
    let junit = temp.path().join("junit.xml");
    std::fs::write(&junit, "<testsuite tests=\"3\" failures=\"0\"/>").unwrap();
    expect_code(
        &run(custody()
            .args(["attest", "--artifact", &digest, "--type", "junit"])
            .arg(&junit)
            .arg("--data-dir")
            .arg(&data)
            .env("CUSTODY_TOKEN", &tokens["ci"])
            .env("CUSTODY_NOW", two_hours_ago.to_string())),
        0,
    );
    // A signed one, asked for two hours ago, still waiting for its approver.
    expect_code(
        &local(
            "rita",
            &[
                "release",
                "create",
                "shop",
                "1.0.1",
                "--artifact",
                &artifact,
                "--sign-key",
                release_key.to_str().unwrap(),
            ],
        ),
        0,
    );
    // Rita, acting two hours ago.
    let rita_then = |args: &[&str]| {
        let mut command = custody();
        command
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env("CUSTODY_TOKEN", &tokens["rita"])
            .env("CUSTODY_NOW", two_hours_ago.to_string());
        if args.contains(&"--break-glass") {
            command.arg("--sign-key").arg(&rita_key);
        }
        run(&mut command)
    };
    let out = rita_then(&["promote", "shop@1.0.1", "--to", "build", "--json"]);
    expect_code(&out, 1);
    let waiting: Value = serde_json::from_slice(&out.stdout).unwrap();
    let waiting = waiting["promotion"]["id"].as_str().unwrap().to_owned();
    // One of the two approvals it needs, valid 72 h: within the 73 h warning.
    let out = local(
        "approver-1",
        &[
            "approve",
            &waiting,
            "--rationale",
            "looks right",
            "--risk",
            "low",
        ],
    );
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("1 of 2 approvals"),
        "{}",
        stdout(&out)
    );
    // Rita breaks glass into build with the same release, two hours ago: loud at once,
    // and nobody has reviewed it since (past the 1 h SLA).
    let out = rita_then(&[
        "promote",
        "shop@1.0.1",
        "--to",
        "build",
        "--break-glass",
        "hotfix for the outage",
    ]);
    expect_code(&out, 0);
    assert!(stdout(&out).contains("OVER"), "{}", stdout(&out));
    // And once more, now; this one an approver rejects after the fact.
    let out = local(
        "rita",
        &[
            "promote",
            "shop@1.0.1",
            "--to",
            "build",
            "--break-glass",
            "second attempt",
            "--json",
        ],
    );
    expect_code(&out, 0);
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    let again = again["promotion"]["id"].as_str().unwrap().to_owned();
    let out = local(
        "approver-1",
        &[
            "reject",
            &again,
            "--rationale",
            "no incident justified this",
            "--risk",
            "high",
        ],
    );
    expect_code(&out, 0);
    // A digest running in build that was never certified there.
    let stranger = format!("sha256:{}", "e".repeat(64));
    expect_code(
        &local(
            "argo",
            &[
                "deploy",
                "report",
                "--env",
                "build",
                "--digest",
                &stranger,
                "--status",
                "succeeded",
            ],
        ),
        0,
    );
    // A viewer trying, again and again, to report deploys.
    let vic = token(&data, "vic", &[]);
    for _ in 0..3 {
        let (status, _) = call(
            "POST",
            &format!("{}/api/v1/deploys", server.base),
            Some(&vic),
            Some(format!(
                r#"{{"environment":"build","digests":["{stranger}"],"status":"succeeded"}}"#
            )),
        )
        .await;
        assert_eq!(status, 403);
    }

    let rules = [
        "provenance-discrepancy",
        "missing-or-invalid-signature",
        "approval-waiting-past-sla",
        "approval-about-to-expire",
        "evidence-about-to-expire",
        "break-glass-used",
        "break-glass-review-overdue",
        "break-glass-review-rejected",
        "digest-mismatch",
        "repeated-denied-access",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let deliveries = loop {
        let got = deliveries(&received);
        let has = |rule: &str| got.iter().any(|d| d["body"]["alert"]["rule"] == rule);
        if rules.iter().all(|r| has(r)) {
            break got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not every rule's alert arrived: {got:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    // Each alert arrived once, with a Slack-compatible text.
    let mut ids: Vec<&str> = deliveries
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "an alert arrived twice: {deliveries:?}");
    for d in &deliveries {
        assert!(
            d["body"]["text"]
                .as_str()
                .unwrap()
                .starts_with("[custody] "),
            "{d}"
        );
        assert_eq!(d["body"]["alert"]["id"], d["id"]);
    }
    // Each is recorded once in the ledger; the refused attempts are recorded too (the
    // server records the third refusal after the receiver saw it: wait for it).
    let failed_to_ops = |events: &[Value]| {
        events
            .iter()
            .filter(|e| {
                e["event"]["type"] == "alert.delivery_failed" && e["event"]["webhook"] == "ops"
            })
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let events = loop {
        let out = run(custody()
            .args(["history", "--json", "--limit", "0", "--data-dir"])
            .arg(&data));
        let events: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        if failed_to_ops(&events) >= 3 || std::time::Instant::now() >= deadline {
            break events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let of = |kind: &str| {
        events
            .iter()
            .filter(|e| e["event"]["type"] == kind)
            .collect::<Vec<_>>()
    };
    assert_eq!(of("alert.raised").len(), all);
    let scraper = token(&data, "root", &[]);
    until_servers_see_local_writes();
    let samples = scrape_metrics(&server.base, &scraper).await;
    assert_eq!(
        metric(&samples, "custody_alerts_raised_total", &[]),
        all as f64
    );
    assert_eq!(
        metric(
            &samples,
            "custody_break_glass_total",
            &[("environment", "build")]
        ),
        2.0
    );
    assert_eq!(
        metric(
            &samples,
            "custody_alerts_raised_total",
            &[("rule", "digest-mismatch"), ("severity", "critical")]
        ),
        1.0
    );
    assert_eq!(
        failed_to_ops(&events),
        3,
        "the receiver refused three deliveries"
    );
    // The webhook that never answers keeps every alert, shown on the dashboard.
    let page = dashboard_page(&data, &server.base, "root", "/alerts").await;
    for rule in rules {
        assert!(
            page.contains(&format!("data-rule=\"{rule}\"")),
            "{rule} not shown"
        );
    }
    let outbox = page
        .split("id=\"outbox\"")
        .nth(1)
        .expect("the failing deliveries are shown");
    assert_eq!(outbox.matches("<td>down</td>").count(), all, "{outbox}");
    assert!(
        !outbox.contains("<td>ops</td>"),
        "delivered ones left the outbox"
    );
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_tampered_with_at_rest_raises_an_alert() {
    use sqlx::Connection;
    let temp = tempfile::tempdir().unwrap();
    let (data, received, _receiver) = checked_every_second(temp.path());
    // Someone with the database file rewrites the first entry, past the schema's guard.
    {
        let url = format!("sqlite:{}", data.join("custody.db").display());
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        for sql in [
            "DROP TRIGGER log_entries_append_only_u",
            "UPDATE log_entries SET leaf = CAST('{\"type\":\"nothing.happened\"}' AS BLOB) WHERE idx = 0",
        ] {
            sqlx::query(sql).execute(&mut db).await.unwrap();
        }
    }
    // The server still starts (the tree's right edge is intact), and its check finds it.
    let server = Server::start(&data);
    grant_roles(&data, "admin = [\"root\"]");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let delivery = loop {
        let got = deliveries(&received);
        if let Some(d) = got
            .iter()
            .find(|d| d["body"]["alert"]["rule"] == "ledger-consistency-failure")
        {
            break d.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no ledger alert arrived: {got:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let text = delivery["body"]["text"].as_str().unwrap();
    assert!(
        text.contains("subtree level 0 index 0"),
        "the alert names the damaged entry: {text}"
    );
    assert_eq!(delivery["body"]["alert"]["severity"], "critical");
    // Checked every second, raised once: three more checks find it, no second alert.
    let root = token(&data, "root", &[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let samples = scrape_metrics(&server.base, &root).await;
        let found = metric(
            &samples,
            "custody_ledger_checks_total",
            &[("outcome", "inconsistent")],
        );
        if found >= 4.0 {
            // Scraped though the ledger's first entry cannot be read for the counters.
            assert_eq!(metric(&samples, "custody_ledger_readable", &[]), 0.0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the check ran {found} times"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
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
    use sqlx::Connection;
    let temp = tempfile::tempdir().unwrap();
    let (data, received, _receiver) = checked_every_second(temp.path());
    let server = Server::start(&data);
    grant_roles(&data, "admin = [\"root\"]");
    let root = token(&data, "root", &[]);
    // Wait for a clean check of the whole ledger as it is now (no writes follow).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let size = loop {
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
            break entries as u64;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no clean check of the whole ledger: {samples:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(size >= 3, "{size}");
    let ledger_alerts = || {
        deliveries(&received)
            .into_iter()
            .filter(|d| d["body"]["alert"]["rule"] == "ledger-consistency-failure")
            .collect::<Vec<_>>()
    };
    assert!(ledger_alerts().is_empty());
    {
        let url = format!("sqlite:{}", data.join("custody.db").display());
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        // A consistent older database, as a restored backup would have it: the head is
        // the size and signed note of an earlier checkpoint, and nothing past it is kept.
        // Every check of the store alone passes.
        for sql in [
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
        ] {
            sqlx::query(sql).execute(&mut db).await.unwrap();
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let delivery = loop {
        if let Some(d) = ledger_alerts().pop() {
            break d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no ledger alert arrived: {:?}",
            deliveries(&received)
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
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
    let alerts: Vec<Value> = deliveries(&received)
        .into_iter()
        .filter(|d| d["body"]["alert"]["rule"] == "ledger-consistency-failure")
        .collect();
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

/// A dashboard page as `principal` sees it (signed in with a fresh token).
async fn dashboard_page(data: &std::path::Path, base: &str, principal: &str, path: &str) -> String {
    let token = token(data, principal, &[]);
    let cookie = session_cookie(base, &token).await;
    page(base, &cookie, path).await.text().await.unwrap()
}

/// What the webhook receiver has written down so far, one delivery per line.
fn deliveries(received: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(received)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
