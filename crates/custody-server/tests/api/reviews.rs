//! Reviews over HTTP: only someone who could have approved a promotion in its environment
//! may reject it; a confidential rationale never leaves through the deploy gate, and the
//! ledger's commitment to it is salted, so a word list cannot open it.

use custody_app::attestations::sha256;
use serde_json::{Value, json};

use crate::support::{Backend, TestServer};

/// A confidential rationale short enough for a word list.
const SECRET: &str = "ok, CVE-2026-1234 accepted";

fn review(rationale: &str, confidential: bool) -> Value {
    json!({"rationale": rationale, "risk": "high", "confidential": confidential})
}

/// Alice rejects `promotion` with [`SECRET`], confidentially.
async fn reject_confidentially(server: &TestServer, promotion: &str) {
    let reject = format!("/api/v1/promotions/{promotion}/reject");
    TestServer::ok(server.post("alice", &reject, &review(SECRET, true)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_approver_of_the_environment_may_reject_a_promotion() {
    let server = TestServer::start(Backend::Sqlite).await;
    let promotion = server
        .waiting_in_production("1.0.0", &sha256(b"shop 1.0.0"))
        .await;
    let reject = format!("/api/v1/promotions/{promotion}/reject");
    let show = format!("/api/v1/promotions/{promotion}");
    let before = server.size().await;
    // stella approves for build only; root is an admin, not a reviewer. Both pass the
    // route's guard (it knows no environment); the use case refuses them.
    for (who, why) in [
        ("stella", "only for other environments than production"),
        ("root", "holds none of the roles"),
    ] {
        let refused = server
            .post(who, &reject, &review("not on my watch", false))
            .await;
        assert_eq!(refused.status, 403, "{who}: {}", refused.body);
        assert!(
            refused.error().contains(why) && refused.error().contains("may not reject"),
            "{who}: {}",
            refused.body
        );
    }
    assert_eq!(
        server.size().await,
        before,
        "a refused rejection was recorded"
    );
    let still = server
        .call("GET", &show, Some(server.token("audrey")), None, &[])
        .await;
    assert_eq!(
        still.body["promotion"]["status"], "pending",
        "{}",
        still.body
    );
    // An approver of production ends it.
    let rejected = TestServer::ok(
        server
            .post(
                "alice",
                &reject,
                &review("the diff touches payments", false),
            )
            .await,
    );
    assert_eq!(
        rejected.body["promotion"]["status"], "rejected",
        "{}",
        rejected.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_gate_never_quotes_a_confidential_rejection() {
    let server = TestServer::start(Backend::Sqlite).await;
    let digest = sha256(b"hotfix");
    server.release_in_build("1.0.1", &digest).await;
    // Argo breaks glass into production; alice rejects it after the fact, confidentially.
    let glass = json!({"release": "shop@1.0.1", "environment": "production", "break_glass": "checkout is down"});
    let glass = TestServer::ok(server.post("argo", "/api/v1/promotions", &glass).await);
    assert_eq!(
        glass.body["promotion"]["status"], "certified",
        "{}",
        glass.body
    );
    let promotion = glass.body["promotion"]["id"].as_str().unwrap();
    reject_confidentially(&server, promotion).await;
    let gate = format!("/api/v1/verify?env=production&digest={digest}");
    // Every role that may ask the gate (a deployer, a viewer, security, an auditor) and
    // those who may not (approvers of any environment, nobody): a denial naming the
    // review, never its text.
    for who in ["argo", "vic", "sec", "audrey", "alice", "stella", "nobody"] {
        let answer = server
            .call("GET", &gate, Some(server.token(who)), None, &[])
            .await;
        assert_eq!(answer.status, 403, "{who}: {}", answer.body);
        let text = answer.body.to_string();
        assert!(!text.contains("CVE-2026-1234"), "{who} read it: {text}");
        if answer.body["allowed"] == false {
            assert!(
                text.contains("alice has since rejected it"),
                "{who}: {text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_commits_to_a_confidential_rationale_with_a_salt() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut commitments = Vec::new();
    for version in ["2.0.0", "2.0.1"] {
        let digest = sha256(format!("shop {version}").as_bytes());
        let promotion = server.waiting_in_production(version, &digest).await;
        let at = server.size().await;
        reject_confidentially(&server, &promotion).await;
        let size = server.size().await;
        let leaves = server
            .call(
                "GET",
                &format!("/api/v1/log/entries?start={at}&end={size}"),
                Some(server.token("audrey")),
                None,
                &[],
            )
            .await;
        let text = match &leaves.body {
            Value::String(lines) => lines.clone(),
            one => one.to_string(),
        };
        let recorded: Value = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|e| e["type"] == "approval.recorded")
            .unwrap();
        // Neither the text nor its bare digest (what a word list reverses) is in the leaf.
        let bare = sha256(SECRET.as_bytes()).hex();
        assert!(!text.contains("CVE-2026-1234"), "{text}");
        assert!(
            !text.contains(&bare),
            "the bare SHA-256 is in the ledger: {text}"
        );
        let commitment = recorded["rationale_commitment"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(commitment.starts_with("hmac-sha256:"), "{recorded}");
        commitments.push(commitment);
    }
    assert_ne!(
        commitments[0], commitments[1],
        "the same text committed twice alike: the commitment is not salted"
    );
}
