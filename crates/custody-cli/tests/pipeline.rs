//! The promotion core end to end, through the real `custody` binary on a real SQLite data
//! directory: build → test → staging → production with two approvers, every refusal with
//! its reason, idempotent promotion, a failed deploy rolled back, the deploy gate, decision
//! replay, and what custody signs checked by securesystemslib and in-toto-attestation.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Output;

use common::*;
use serde_json::Value;

struct World {
    _temp: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    now: String,
    /// Each principal's API token, minted by the operator when the world is made.
    tokens: std::collections::BTreeMap<String, String>,
}

/// The pipeline these tests run through.
const POLICY: &str = include_str!("testdata/policies/pipeline.toml");

/// The people and services who act in these tests: each gets a token. Approvers also
/// sign their reviews with a personal key the policy enrols (an approval counts only from
/// its approver, never from a token someone else minted for them).
const PRINCIPALS: [&str; 7] = ["alice", "bob", "carol", "ci-bot", "rita", "argo", "auditor"];
const APPROVERS: [&str; 5] = ["alice", "bob", "carol", "ci-bot", "rita"];

/// Acting as the data directory's operator (`local:USER`): no token.
const OPERATOR: &str = "operator";

impl World {
    fn new() -> World {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().to_owned();
        let data = root.join("data");
        let out = run(custody().args(["init", "--data-dir"]).arg(&data));
        expect_code(&out, 0);
        let policy = root.join("policy");
        fs::create_dir_all(policy.join("keys")).unwrap();
        generate_key(&root, "builder", "ed25519");
        generate_key(&root, "release", "ecdsa-p256");
        generate_key(&root, "rogue", "ecdsa-p256");
        fs::copy(root.join("builder.pub"), policy.join("keys/builder.pub")).unwrap();
        fs::copy(root.join("release.pub"), policy.join("keys/release.pub")).unwrap();
        let mut text = POLICY.replace(
            "[roles]\n",
            &format!(
                "[roles]\nadmin = [{:?}]\nauditor = [\"auditor\"]\n",
                operator(&data)
            ),
        );
        for who in APPROVERS {
            generate_key(&root, &format!("{who}.person"), "ed25519");
            fs::copy(
                root.join(format!("{who}.person.pub")),
                policy.join(format!("keys/{who}.pub")),
            )
            .unwrap();
            text.push_str(&format!(
                "\n[[person_key]]\nprincipal = {who:?}\npath = \"keys/{who}.pub\"\n"
            ));
        }
        fs::write(policy.join("custody.toml"), text).unwrap();
        let mut w = World {
            _temp: temp,
            root,
            data,
            now: "2026-11-02T09:00:00Z".into(),
            tokens: Default::default(),
        };
        // The starter policy has no owners yet: its operator puts the first real one in
        // force (recorded as a bootstrap), then mints everyone's token.
        let out = w.ok(
            &["policy", "propose"],
            OPERATOR,
            &[policy.to_str().unwrap()],
        );
        assert!(out.contains("bootstrap"), "{out}");
        for who in PRINCIPALS {
            let token = w.ok(&["token", "create"], OPERATOR, &["--principal", who]);
            w.tokens.insert(who.into(), token.trim().to_owned());
        }
        w
    }

    fn at(&mut self, now: &str) {
        self.now = now.into();
    }

    /// Runs `custody CMD ARGS` on the data directory as `principal` (by their token; the
    /// operator without one), approvers signing their reviews with their personal key.
    fn run(&self, cmd: &[&str], principal: &str, args: &[&str]) -> Output {
        let mut command = custody();
        command
            .args(cmd)
            .args(args)
            .arg("--data-dir")
            .arg(&self.data)
            .env("CUSTODY_NOW", &self.now)
            .env_remove("CUSTODY_TOKEN");
        if principal != OPERATOR {
            let token = self
                .tokens
                .get(principal)
                .unwrap_or_else(|| panic!("no token for {principal}"));
            command.env("CUSTODY_TOKEN", token);
        }
        let reviews = matches!(cmd.first(), Some(&("approve" | "reject")));
        if reviews && APPROVERS.contains(&principal) {
            command
                .arg("--sign-key")
                .arg(self.root.join(format!("{principal}.person.key")));
        }
        run(&mut command)
    }

    #[track_caller]
    fn ok(&self, cmd: &[&str], principal: &str, args: &[&str]) -> String {
        let out = self.run(cmd, principal, args);
        expect_code(&out, 0);
        stdout(&out)
    }

    /// Runs a command that must say no (exit 1) with `reason` in its output.
    #[track_caller]
    fn failed(&self, cmd: &[&str], principal: &str, args: &[&str], reason: &str) {
        let out = self.run(cmd, principal, args);
        expect_code(&out, 2);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            all.contains(reason),
            "{cmd:?} {args:?}: {reason:?} not in:\n{all}"
        );
    }

    fn refused(&self, cmd: &[&str], principal: &str, args: &[&str], reason: &str) {
        let out = self.run(cmd, principal, args);
        expect_code(&out, 1);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            all.contains(reason),
            "{cmd:?} {args:?}: {reason:?} not in:\n{all}"
        );
    }

    fn json(&self, cmd: &[&str], principal: &str, args: &[&str]) -> (i32, Value) {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.run(cmd, principal, &args);
        let code = out.status.code().unwrap();
        let value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}\n{}\n{}", stdout(&out), stderr(&out)));
        (code, value)
    }

    fn key(&self, name: &str) -> String {
        self.root.join(name).to_str().unwrap().to_owned()
    }

    /// Builds, registers (with signed provenance) and attests an artifact; its digest.
    fn build(&self, name: &str, content: &str, commit: &str) -> String {
        let file = self.root.join(format!("{name}-{commit}.bin"));
        fs::write(&file, content).unwrap();
        let digest = self
            .ok(
                &["artifact", "register"],
                "ci-bot",
                &[
                    "--name",
                    name,
                    "--file",
                    file.to_str().unwrap(),
                    "--source-repo",
                    "https://git.example/acme/shop",
                    "--commit",
                    commit,
                    "--builder-id",
                    "https://ci.example/builder/v1",
                    "--param",
                    "profile=release",
                    "--invocation-id",
                    &format!("run-{commit}"),
                    "--builder-key",
                    &self.key("builder.key"),
                ],
            )
            .trim()
            .to_owned();
        for (kind, file_name, body) in [
            (
                "junit",
                "junit.xml",
                r#"<testsuite name="shop" tests="3" failures="0"><testcase name="a"/><testcase name="b"/><testcase name="c"/></testsuite>"#,
            ),
            (
                "sarif",
                "scan.sarif",
                r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"bandit"}},"results":[]}]}"#,
            ),
            (
                "trivy",
                "scan.trivy.json",
                r#"{"SchemaVersion":2,"Results":[]}"#,
            ),
            (
                "cyclonedx",
                "sbom.json",
                r#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"type":"library","name":"left-pad","version":"1.3.0","licenses":[{"license":{"id":"MIT"}}]}]}"#,
            ),
        ] {
            let path = self.root.join(file_name);
            fs::write(&path, body).unwrap();
            self.ok(
                &["attest"],
                "ci-bot",
                &[
                    "--artifact",
                    &digest,
                    "--type",
                    kind,
                    path.to_str().unwrap(),
                ],
            );
        }
        digest
    }

    /// `custody release create` with `shop=A` and `worker=B`, signed with `key` if given.
    fn release(
        &self,
        name: &str,
        version: &str,
        shop: &str,
        worker: &str,
        key: Option<&str>,
    ) -> Output {
        let (shop, worker) = (format!("shop={shop}"), format!("worker={worker}"));
        let mut args = vec![name, version, "--artifact", &shop, "--artifact", &worker];
        let key = key.map(|k| self.key(k));
        if let Some(k) = &key {
            args.extend(["--sign-key", k.as_str()]);
        }
        self.run(&["release", "create"], "rita", &args)
    }

    fn promote(&self, release: &str, env: &str, who: &str) -> (i32, Value) {
        self.json(&["promote"], who, &[release, "--to", env])
    }

    fn ledger_size(&self) -> u64 {
        let out = run(custody()
            .args(["log", "checkpoint", "--json", "--data-dir"])
            .arg(&self.data));
        expect_code(&out, 0);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["size"]
            .as_u64()
            .unwrap()
    }
}

fn id(v: &Value) -> String {
    v["promotion"]["id"].as_str().unwrap().to_owned()
}

fn status(v: &Value) -> &str {
    v["promotion"]["status"].as_str().unwrap()
}

#[test]
fn a_release_moves_from_build_to_production_and_every_refusal_says_why() {
    let mut w = World::new();
    let shop = w.build(
        "shop",
        "shop v1",
        "1111111111111111111111111111111111111111",
    );
    let worker = w.build(
        "worker",
        "worker v1",
        "1111111111111111111111111111111111111111",
    );
    let refused = |out: Output, reason: &str| {
        expect_code(&out, 1);
        assert!(
            stderr(&out).contains(reason),
            "{reason:?} not in {}",
            stderr(&out)
        );
    };
    let signer = Some("release.key");

    // Releases that cannot be made.
    refused(
        w.release("Shop_App", "1.0.0", &shop, &worker, signer),
        "naming rule",
    );
    let unknown = format!("sha256:{}", "0".repeat(64));
    refused(
        w.release("shop", "0.1.0", &unknown, &worker, signer),
        "unknown digest",
    );
    refused(
        w.release("shop", "0.2.0", &worker, &worker, signer),
        "digest mismatch",
    );
    refused(
        w.release("shop", "0.3.0", &shop, &worker, Some("builder.key")),
        "separation of signing duties",
    );
    refused(w.release("shop", "1.0", &shop, &worker, signer), "SemVer");

    // An unsigned release is recorded, and no gate passes it; nor one signed by a key
    // the policy does not trust.
    expect_code(&w.release("shop", "0.9.0", &shop, &worker, None), 0);
    w.refused(
        &["promote"],
        "rita",
        &["shop@0.9.0", "--to", "build"],
        "the release is unsigned",
    );
    expect_code(
        &w.release("shop", "0.9.1", &shop, &worker, Some("rogue.key")),
        0,
    );
    w.refused(
        &["promote"],
        "rita",
        &["shop@0.9.1", "--to", "build"],
        "not signed by a trusted release key",
    );

    // The real release.
    expect_code(&w.release("shop", "1.0.0", &shop, &worker, signer), 0);
    // An environment the pipeline does not have is "not found" (exit 2, HTTP 404).
    w.failed(
        &["promote"],
        "rita",
        &["shop@1.0.0", "--to", "prod"],
        "not found: unknown environment \"prod\"",
    );
    w.refused(
        &["promote"],
        "rita",
        &["shop@1.0.0", "--to", "staging"],
        "never certified in test",
    );

    // build and test: no approvals needed.
    let (code, p) = w.promote("shop@1.0.0", "build", "rita");
    assert_eq!((code, status(&p)), (0, "certified"), "{p:#}");
    let (code, p) = w.promote("shop@1.0.0", "test", "rita");
    assert_eq!((code, status(&p)), (0, "certified"), "{p:#}");

    // Idempotent: the same key twice is one promotion and one set of ledger entries.
    w.at("2026-11-02T10:00:00Z");
    let before = w.ledger_size();
    let (c1, first) = w.json(
        &["promote"],
        "rita",
        &[
            "shop@1.0.0",
            "--to",
            "staging",
            "--idempotency-key",
            "ci-run-42",
        ],
    );
    let after_first = w.ledger_size();
    let (c2, second) = w.json(
        &["promote"],
        "rita",
        &[
            "shop@1.0.0",
            "--to",
            "staging",
            "--idempotency-key",
            "ci-run-42",
        ],
    );
    assert_eq!((c1, c2), (1, 1), "staging waits for an approval");
    assert_eq!(id(&first), id(&second));
    assert_eq!(second["replayed"], true);
    assert!(after_first > before);
    assert_eq!(
        w.ledger_size(),
        after_first,
        "the replay wrote to the ledger"
    );
    let staging = id(&first);
    assert_eq!(status(&first), "pending");
    let out = w.ok(
        &["approve"],
        "alice",
        &[
            &staging,
            "--rationale",
            "tests green, scan clean",
            "--risk",
            "low",
        ],
    );
    assert!(out.contains("certified"), "{out}");

    // production: one promotion that fails on the way, each approval that does not count.
    w.at("2026-11-02T10:30:00Z");
    let (code, p) = w.promote("shop@1.0.0", "production", "alice");
    assert_eq!(code, 1);
    let reasons = p["decision"]["decision"]["gates"].to_string();
    assert!(
        reasons.contains("soaking in staging") && reasons.contains("no successful deploy"),
        "{reasons}"
    );
    let prod1 = id(&p);
    w.ok(
        &["deploy", "report"],
        "argo",
        &[
            "--env",
            "staging",
            "--digest",
            &shop,
            "--digest",
            &worker,
            "--status",
            "succeeded",
        ],
    );
    w.at("2026-11-02T12:00:00Z");
    w.refused(
        &["approve"],
        "alice",
        &[&prod1, "--rationale", "mine"],
        "requested the promotion",
    );
    w.refused(
        &["approve"],
        "ci-bot",
        &[&prod1, "--rationale", "lgtm"],
        "built an artifact of the release",
    );
    w.refused(
        &["approve"],
        "rita",
        &[&prod1, "--rationale", "lgtm"],
        "signed the release",
    );
    let (code, one) = w.json(
        &["approve"],
        "bob",
        &[
            &prod1,
            "--rationale",
            "reviewed the diff",
            "--risk",
            "medium",
        ],
    );
    assert_eq!((code, status(&one)), (0, "pending"));
    assert!(
        one["decision"]["decision"]["gates"]
            .to_string()
            .contains("1 of 2 approvals"),
        "{one:#}"
    );
    w.at("2026-11-03T13:00:00Z"); // 25 hours later: bob's approval has expired
    let (_, late) = w.json(
        &["approve"],
        "carol",
        &[&prod1, "--rationale", "ok", "--risk", "low"],
    );
    let gates = late["decision"]["decision"]["gates"].to_string();
    assert!(
        gates.contains("1 of 2 approvals") && gates.contains("bob (expired at"),
        "{gates}"
    );
    w.at("2026-11-03T13:05:00Z"); // carol changes her mind: a new record supersedes hers
    let (code, rejected) = w.json(
        &["reject"],
        "carol",
        &[&prod1, "--rationale", "change freeze", "--risk", "high"],
    );
    assert_eq!((code, status(&rejected)), (0, "rejected"));
    assert_eq!(
        rejected["approval"][0]["supersedes"],
        late["approval"][0]["id"]
    );
    // A decided promotion is a conflict with the record (exit 2, HTTP 409), not a denial.
    w.failed(
        &["approve"],
        "bob",
        &[&prod1, "--rationale", "again"],
        "conflict: promotion",
    );

    // A second production promotion, approved by two distinct approvers.
    w.at("2026-11-03T14:00:00Z");
    let (code, p) = w.promote("shop@1.0.0", "production", "rita");
    assert_eq!(code, 1);
    let prod2 = id(&p);
    let (_, superseded) = w.json(
        &["approve"],
        "bob",
        &[&prod2, "--rationale", "fine", "--risk", "low"],
    );
    w.json(
        &["reject"],
        "bob",
        &[&prod2, "--rationale", "wait, no", "--risk", "high"],
    );
    // Rejected: a new request is needed; bob's approval was superseded by his rejection.
    assert_ne!(superseded["approval"][0]["id"], Value::Null);
    let (_, p) = w.promote("shop@1.0.0", "production", "rita");
    let prod3 = id(&p);
    w.ok(
        &["approve"],
        "bob",
        &[&prod3, "--rationale", "fine", "--risk", "low"],
    );
    // Bob approving again supersedes his first approval: still one of two.
    let (_, again) = w.json(
        &["approve"],
        "bob",
        &[&prod3, "--rationale", "still fine", "--risk", "low"],
    );
    let gates = again["decision"]["decision"]["gates"].to_string();
    assert!(
        gates.contains("1 of 2 approvals")
            && gates.contains("bob (superseded by a later decision)"),
        "{gates}"
    );
    let out = w.ok(
        &["approve"],
        "carol",
        &[
            &prod3,
            "--rationale",
            "freeze over; incident INC-42 is closed",
            "--risk",
            "low",
            "--confidential",
        ],
    );
    assert!(out.contains("certified"), "{out}");

    // The deploy gate.
    let (code, v) = w.json(&["verify"], "argo", &["--env", "production", &shop]);
    assert_eq!(code, 0, "{v:#}");
    assert!(v["decision"]["vsa"]["signatures"].is_array());
    let other = format!("sha256:{}", "e".repeat(64));
    w.refused(
        &["verify"],
        "argo",
        &["--env", "production", &other],
        "digest mismatch",
    );
    w.refused(
        &["verify"],
        "argo",
        &["--env", "qa", &shop],
        "unknown environment",
    );

    // Version 1.1.0 reaches production, fails to deploy, and production rolls back.
    let shop2 = w.build(
        "shop",
        "shop v2",
        "2222222222222222222222222222222222222222",
    );
    expect_code(&w.release("shop", "1.1.0", &shop2, &worker, signer), 0);
    w.at("2026-11-04T09:00:00Z");
    w.promote("shop@1.1.0", "build", "rita");
    w.promote("shop@1.1.0", "test", "rita");
    let (_, p) = w.promote("shop@1.1.0", "staging", "rita");
    w.ok(&["approve"], "alice", &[&id(&p), "--rationale", "ok"]);
    w.ok(
        &["deploy", "report"],
        "argo",
        &[
            "--env",
            "staging",
            "--digest",
            &shop2,
            "--digest",
            &worker,
            "--status",
            "succeeded",
        ],
    );
    w.at("2026-11-04T11:00:00Z");
    let (_, p) = w.promote("shop@1.1.0", "production", "rita");
    w.ok(&["approve"], "alice", &[&id(&p), "--rationale", "ok"]);
    w.ok(&["approve"], "bob", &[&id(&p), "--rationale", "ok"]);
    w.ok(&["verify"], "argo", &["--env", "production", &shop2]);
    let (code, report) = w.json(
        &["deploy", "report"],
        "argo",
        &[
            "--env",
            "production",
            "--digest",
            &shop2,
            "--status",
            "failed",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(report["rollback"]["from"], "shop@1.1.0");
    assert_eq!(report["rollback"]["to"], "shop@1.0.0");
    let diff = report["rollback"]["diff"]["changed"][0].clone();
    assert_eq!(diff["name"], "shop");
    assert_eq!(
        diff["from"]["commit"],
        "2222222222222222222222222222222222222222"
    );
    assert_eq!(
        diff["to"]["commit"],
        "1111111111111111111111111111111111111111"
    );
    w.refused(
        &["verify"],
        "argo",
        &["--env", "production", &shop2],
        "digest mismatch",
    );
    w.ok(&["verify"], "argo", &["--env", "production", &shop]);
    // Deploy tooling asks the server the same question.
    let server = Server::start(&w.data);
    let token = w.ok(&["token", "create"], OPERATOR, &["--principal", "argo"]);
    let ask = |digest: &str| {
        run(custody()
            .args([
                "verify",
                "--env",
                "production",
                "--server",
                &server.base,
                digest,
            ])
            .env("CUSTODY_TOKEN", token.trim()))
    };
    let allowed = ask(&shop);
    expect_code(&allowed, 0);
    assert!(stdout(&allowed).contains("allowed"), "{}", stdout(&allowed));
    let denied = ask(&shop2);
    expect_code(&denied, 1);
    assert!(
        stdout(&denied).contains("digest mismatch"),
        "{}",
        stdout(&denied)
    );
    // A confidential rationale: its author and auditors read it, others do not, and the
    // public ledger holds only its digest.
    let read_as = |principal: &str| {
        let t = w.ok(&["token", "create"], OPERATOR, &["--principal", principal]);
        let url = format!("{}/api/v1/promotions/{prod3}", server.base);
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            http()
                .get(&url)
                .bearer_auth(t.trim())
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    let rationale_of = |v: &Value| {
        v["reviews"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["by"] == "carol")
            .unwrap()["rationale"]
            .clone()
    };
    assert_eq!(
        rationale_of(&read_as("carol")),
        "freeze over; incident INC-42 is closed"
    );
    assert_eq!(rationale_of(&read_as("argo")), "(confidential)");
    let entries = run(custody()
        .args(["log", "entries", "--data-dir"])
        .arg(&w.data));
    assert!(
        !stdout(&entries).contains("INC-42"),
        "a confidential rationale is in the public ledger"
    );
    assert!(stdout(&entries).contains("rationale_digest"));
    assert!(server.stop().success());
    // The failed promotion's history is intact.
    let (_, history) = w.json(
        &["history"],
        "auditor",
        &["--env", "production", "--limit", "0"],
    );
    let types: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"rollback")
            && types
                .iter()
                .filter(|t| **t == "environment.certified")
                .count()
                == 2,
        "{types:?}"
    );

    // History slices.
    let (_, by_carol) = w.json(
        &["history"],
        "auditor",
        &["--principal", "carol", "--limit", "0"],
    );
    assert!(
        by_carol
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["event"]["actor"] == "carol")
    );
    // Her three reviews, the decision each one triggered, and the certification she
    // completed.
    let reviews = by_carol
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["type"] == "approval.recorded");
    assert_eq!(reviews.count(), 3);
    assert_eq!(by_carol.as_array().unwrap().len(), 7);
    let (_, about_shop2) = w.json(
        &["history"],
        "auditor",
        &["--artifact", &shop2, "--limit", "0"],
    );
    assert!(
        about_shop2
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"]["type"] == "rollback")
    );
    let (_, build) = w.json(
        &["history"],
        "auditor",
        &[
            "--build",
            "run-2222222222222222222222222222222222222222",
            "--limit",
            "0",
        ],
    );
    assert_eq!(build.as_array().unwrap().len(), 1);
    let (_, window) = w.json(
        &["history"],
        "auditor",
        &[
            "--since",
            "2026-11-04T00:00:00Z",
            "--env",
            "staging",
            "--limit",
            "0",
        ],
    );
    assert!(!window.as_array().unwrap().is_empty());
    assert!(
        window
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["event"]["at"].as_str().unwrap() >= "2026-11-04")
    );

    // Every recorded decision replays to the same outcome.
    let (_, decisions) = w.json(&["history"], "auditor", &["--limit", "0"]);
    let ids: Vec<String> = decisions
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["type"] == "decision.recorded")
        .map(|e| e["event"]["decision"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.len() > 15, "{}", ids.len());
    for d in &ids {
        let out = w.ok(&["decision", "replay"], "auditor", &[d]);
        assert!(out.contains("same outcome"), "{out}");
    }

    check_interop(&w, &decisions);
}

/// What custody signed, checked by the Python reference implementations.
fn check_interop(w: &World, history: &Value) {
    let attestor = w.data.join("keys/attestor.pub");
    let (mut checked, mut approvals) = (0, 0);
    for e in history.as_array().unwrap() {
        let event = &e["event"];
        let (envelope, key) = match event["type"].as_str().unwrap() {
            // An approval signed with the approver's own key: anyone holding that key's
            // public half checks it offline, with custody or with securesystemslib.
            "approval.recorded" if event["statement"].is_object() => {
                approvals += 1;
                let actor = event["actor"].as_str().unwrap();
                let key = w.root.join(format!("{actor}.person.pub"));
                let path = w.root.join(format!("approval-{}.json", e["index"]));
                fs::write(&path, event["statement"].to_string()).unwrap();
                let out = run(custody()
                    .args(["dsse", "verify", "--key"])
                    .arg(&key)
                    .arg(&path));
                expect_code(&out, 0);
                let other = w.root.join("rogue.pub");
                let out = run(custody()
                    .args(["dsse", "verify", "--key"])
                    .arg(&other)
                    .arg(&path));
                expect_code(&out, 1);
                (&event["statement"], key)
            }
            "decision.recorded" => (&event["vsa"], attestor.clone()),
            "release.created" if event["release"] == "shop@1.0.0" => {
                (&event["manifest"], w.root.join("release.pub"))
            }
            "artifact.registered" => (&event["provenance"], w.root.join("builder.pub")),
            _ => continue,
        };
        let env_path = w.root.join(format!("envelope-{}.json", e["index"]));
        fs::write(&env_path, envelope.to_string()).unwrap();
        let out = run(python_script("sslib_verify.py")
            .arg(&env_path)
            .arg("1")
            .arg(&key));
        expect_code(&out, 0);
        let payload = base64_decode(envelope["payload"].as_str().unwrap());
        let statement_path = w.root.join(format!("statement-{}.json", e["index"]));
        fs::write(&statement_path, &payload).unwrap();
        let out = run(python_script("statement_validate.py").arg(&statement_path));
        expect_code(&out, 0);
        checked += 1;
    }
    assert!(checked > 20, "{checked}");
    assert!(approvals >= 3, "signed approvals checked: {approvals}");
    // And a tampered VSA does not verify.
    let vsa = history
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"]["type"] == "decision.recorded")
        .unwrap();
    let mut forged = vsa["event"]["vsa"].clone();
    let payload = base64_decode(forged["payload"].as_str().unwrap());
    let text = String::from_utf8(payload)
        .unwrap()
        .replace("FAILED", "PASSED");
    forged["payload"] = Value::from(base64_encode(text.as_bytes()));
    let path = w.root.join("forged.json");
    fs::write(&path, forged.to_string()).unwrap();
    let out = run(python_script("sslib_verify.py")
        .arg(&path)
        .arg("1")
        .arg(&attestor));
    expect_code(&out, REFUSED);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn policy_mistakes_name_the_line_and_change_nothing() {
    let w = World::new();
    let dir = w.root.join("broken");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("custody.toml"),
        "version = 1\n\n[roles]\napprover = [\"alice\"]\n\n[[environment]]\nname = \"build\"\n\n[[environment]]\nname = \"prod\"\nafter = \"staging\"\napprovals = { quorum = 2, roles = [\"approver\"] }\n",
    )
    .unwrap();
    let out = run(custody().args(["policy", "check"]).arg(&dir));
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("custody.toml:11:9: unknown environment \"staging\" in `after`"),
        "{err}"
    );
    assert!(err.contains("custody.toml:12:"), "{err}");
    assert!(
        err.contains("a quorum of 2 can never be met: only 1 people"),
        "{err}"
    );
    let (code, json) = {
        let out = run(custody().args(["policy", "check", "--json"]).arg(&dir));
        (
            out.status.code(),
            serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        )
    };
    assert_eq!(code, Some(1));
    assert_eq!(json["errors"][0]["line"], 11);

    let before = w.ledger_size();
    let out = w.run(&["policy", "propose"], OPERATOR, &[dir.to_str().unwrap()]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("custody.toml:11:9"),
        "{}",
        stderr(&out)
    );
    assert_eq!(w.ledger_size(), before, "a refused policy was recorded");

    // The good one checks clean, and applying it again records nothing.
    let good = w.root.join("policy");
    let out = run(custody().args(["policy", "check"]).arg(&good));
    expect_code(&out, 0);
    assert!(stdout(&out).contains("build → test → staging → production"));
    let out = w.ok(&["policy", "propose"], OPERATOR, &[good.to_str().unwrap()]);
    assert!(out.contains("already in force"), "{out}");
    assert_eq!(w.ledger_size(), before);
}

#[test]
fn bad_input_is_refused_with_a_message_and_records_nothing() {
    let w = World::new();
    let shop = w.build(
        "shop",
        "shop v1",
        "1111111111111111111111111111111111111111",
    );
    let before = w.ledger_size();
    let missing = w.root.join("missing.xml");
    let junit = w.root.join("junit.xml").to_str().unwrap().to_owned();
    let not_json = w.root.join("not.json");
    fs::write(&not_json, "this is not JSON").unwrap();
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec![
                "artifact",
                "register",
                "--name",
                "shop",
                "--digest",
                "sha256:ABC",
            ],
            "ci-bot",
            "lowercase",
        ),
        (
            vec!["artifact", "register", "--name", "shop"],
            "ci-bot",
            "--file PATH",
        ),
        (
            vec![
                "artifact",
                "register",
                "--name",
                "shop",
                "--file",
                missing.to_str().unwrap(),
            ],
            "ci-bot",
            "missing.xml",
        ),
        (
            vec![
                "artifact",
                "register",
                "--name",
                "x",
                "--digest",
                &shop,
                "--source-repo",
                "r",
                "--commit",
                "c",
            ],
            "ci-bot",
            "--builder-id",
        ),
        (
            vec![
                "artifact",
                "register",
                "--name",
                "x",
                "--digest",
                &shop,
                "--source-repo",
                "r",
                "--commit",
                "c",
                "--builder-id",
                "b",
                "--param",
                "novalue",
                "--builder-key",
                "k",
            ],
            "ci-bot",
            "NAME=VALUE",
        ),
        (
            vec![
                "attest",
                "--artifact",
                &shop,
                "--type",
                "sarif",
                not_json.to_str().unwrap(),
            ],
            "ci-bot",
            "sarif: $: expected ident at line 1",
        ),
        (
            vec![
                "attest",
                "--artifact",
                &shop,
                "--type",
                "junit",
                missing.to_str().unwrap(),
            ],
            "ci-bot",
            "missing.xml",
        ),
        (
            vec![
                "attest",
                "--artifact",
                &shop,
                "--type",
                "junit",
                "--kind",
                "Code Review",
                &junit,
            ],
            "ci-bot",
            "evidence type \"Code Review\"",
        ),
        (
            vec!["release", "create", "shop", "2.0.0", "--artifact", "shop"],
            "rita",
            "NAME=sha256:HEX",
        ),
        (
            vec!["promote", "shop-9.9.9", "--to", "build"],
            "rita",
            "write NAME@VERSION",
        ),
        (
            vec!["promote", "shop@9.9.9", "--to", "build"],
            "rita",
            "no release shop@9.9.9",
        ),
        (
            vec!["approve", "prm-nope", "--rationale", "x"],
            "alice",
            "no promotion prm-nope",
        ),
        (
            vec!["approve", "prm-nope", "--rationale", " "],
            "alice",
            "needs a rationale",
        ),
        (
            vec!["rollback", "--env", "build", "--reason", ""],
            "rita",
            "needs a reason",
        ),
        (
            vec!["decision", "show", "dec-nope"],
            "auditor",
            "no decision dec-nope",
        ),
        (
            vec!["token", "create", "--principal", "two words"],
            OPERATOR,
            "without spaces",
        ),
    ];
    for (args, who, needle) in cases {
        let out = w.run(&args, who, &[]);
        expect_code(&out, 2);
        assert!(
            stderr(&out).contains(needle),
            "{args:?}: {needle:?} not in {}",
            stderr(&out)
        );
    }
    // Nobody claims a name: `--as` is refused, and without a token the operator acts.
    let out = w.run(
        &["promote"],
        "rita",
        &["shop@1.0.0", "--to", "build", "--as", "rita"],
    );
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("nobody can claim a name"),
        "{}",
        stderr(&out)
    );
    let me = w.ok(&["whoami"], OPERATOR, &[]);
    assert!(
        me.starts_with("local:") && me.contains("local operator") && me.contains("admin"),
        "{me}"
    );
    // Nor can an admin mint a token under another operator's name.
    let out = w.run(
        &["token", "create"],
        OPERATOR,
        &["--principal", "local:alice"],
    );
    expect_code(&out, 1);
    assert!(
        stderr(&out).contains("a name only that operator holds"),
        "{}",
        stderr(&out)
    );
    let rita = w.ok(&["whoami"], "rita", &[]);
    assert!(
        rita.starts_with("rita\n") && rita.contains("token tok"),
        "{rita}"
    );
    let out = w.run(&["history"], "auditor", &["--since", "yesterday"]);
    expect_code(&out, 2);
    assert_eq!(w.ledger_size(), before, "bad input changed the ledger");
}
