//! The promotion core end to end, through the real `custody` binary on a real SQLite data
//! directory: build → test → staging → production with two approvers, every refusal with
//! its reason, idempotent promotion, a failed deploy rolled back, the deploy gate, decision
//! replay, and what custody signs checked by securesystemslib and in-toto-attestation.
//!
//! The parts: [`world`] (the data directory, its people and their steps), [`interop`] (what
//! custody signed, checked by the Python references) and [`bad_input`] (mistakes refused,
//! nothing recorded).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

#[path = "pipeline/bad_input.rs"]
mod bad_input;
mod common;
#[path = "pipeline/interop.rs"]
mod interop;
#[path = "pipeline/world.rs"]
mod world;

use std::process::Output;

use common::*;
use interop::check_interop;
use serde_json::Value;
use world::{OPERATOR, World, id, status};

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
    let rogue = w.release("shop", "0.9.1", &shop, &worker, Some("rogue.key"));
    expect_code(&rogue, 0);
    assert!(
        stderr(&rogue).contains("is no release key the policy in force trusts"),
        "warned at once: {}",
        stderr(&rogue)
    );
    let signed = w.release("shop", "0.9.2", &shop, &worker, signer);
    expect_code(&signed, 0);
    assert!(!stderr(&signed).contains("warning"), "{}", stderr(&signed));
    // A retry warns of the release it returns, the first call's, not of its own arguments.
    let (shop_at, worker_at) = (format!("shop={shop}"), format!("worker={worker}"));
    let release = |key: Option<&str>| {
        let mut args = vec![
            "shop",
            "0.9.3",
            "--artifact",
            &shop_at,
            "--artifact",
            &worker_at,
        ];
        args.extend(["--idempotency-key", "release-0.9.3"]);
        let key = key.map(|k| w.key(k));
        if let Some(k) = &key {
            args.extend(["--sign-key", k.as_str()]);
        }
        w.run(&["release", "create"], "rita", &args)
    };
    expect_code(&release(signer), 0);
    let retried = release(None);
    expect_code(&retried, 0);
    assert!(
        !stderr(&retried).contains("warning"),
        "{}",
        stderr(&retried)
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
    // The release reads with where it stands; what does not exist is "not found" (exit 2).
    let shown = w.ok(&["release", "show"], "auditor", &["shop@1.0.0"]);
    assert!(
        shown.contains("test: certified now (by promotion"),
        "{shown}"
    );
    assert!(shown.contains("signed by release key"), "{shown}");
    let shown = w.ok(&["promotion", "show"], "auditor", &[&id(&p), "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["promotion"]["environment"], "test", "{shown}");
    assert_eq!(shown["promotion"]["status"], "certified", "{shown}");
    w.failed(
        &["release", "show"],
        "auditor",
        &["shop@9.9.9"],
        "not found: no release shop@9.9.9",
    );
    w.failed(
        &["promotion", "show"],
        "auditor",
        &["prm-none"],
        "not found: no promotion prm-none",
    );

    // Idempotent: the same key twice is one promotion and one set of ledger entries.
    w.at("2026-11-02T10:00:00Z");
    let before = w.ledger_size();
    let keyed = [
        "shop@1.0.0",
        "--to",
        "staging",
        "--idempotency-key",
        "ci-run-42",
    ];
    let (c1, first) = w.json(&["promote"], "rita", &keyed);
    let after_first = w.ledger_size();
    let (c2, second) = w.json(&["promote"], "rita", &keyed);
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
    w.deployed("staging", &[&shop, &worker]);
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
    w.deployed("staging", &[&shop2, &worker]);
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
    let types = event_types(&history);
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
