//! Two servers on one PostgreSQL database agree on the deploy gate: a verdict one of them
//! cached is never served once another changed what it was computed from (here, a
//! break-glass promotion rejected in its review after the fact); and the gate re-checks the
//! policy in force, so a tightening denies what a fresh promotion would be refused.

use std::time::{Duration, Instant};

use custody_app::attestations::sha256;
use custody_crypto::Signer as _;
use serde_json::json;

use crate::support::{Answer, Backend, TestServer};

/// Asks `server`'s deploy gate until its answer has `status`, for at most ten seconds
/// (another replica's write reaches it within its tail's interval, 50 ms).
async fn until_gate(server: &TestServer, path: &str, status: u16) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = server
            .call("GET", path, Some(server.token("argo")), None, &[])
            .await;
        if a.status.as_u16() == status || Instant::now() > deadline {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_agree_on_the_gate_after_a_review_and_a_tightening() {
    let a = TestServer::start(Backend::Postgres).await;
    let _a_tasks = custody_server::spawn_background(&a.state);
    let digest = sha256(b"hotfix");
    let artifact = a.signed_artifact(&digest, "h1");
    let ok = TestServer::ok;
    ok(a.call(
        "POST",
        "/api/v1/artifacts",
        Some(a.token("bob")),
        Some(&serde_json::to_string(&artifact).unwrap()),
        &[],
    )
    .await);
    let manifest = a.signed_release("1.0.1", &digest);
    ok(a.call(
        "POST",
        "/api/v1/releases",
        Some(a.token("sam")),
        Some(&serde_json::to_string(&manifest).unwrap()),
        &[],
    )
    .await);
    let to = |env: &str, glass: Option<&str>| {
        let mut body = json!({"release": "shop@1.0.1", "environment": env});
        if let Some(reason) = glass {
            body["break_glass"] = json!(reason);
        }
        body.to_string()
    };
    let built = ok(a
        .call(
            "POST",
            "/api/v1/promotions",
            Some(a.token("sam")),
            Some(&to("build", None)),
            &[],
        )
        .await);
    assert_eq!(
        built.body["promotion"]["status"], "certified",
        "{}",
        built.body
    );
    // Argo, on call, breaks glass into production: certified past the approval.
    let glass = ok(a
        .call(
            "POST",
            "/api/v1/promotions",
            Some(a.token("argo")),
            Some(&to("production", Some("checkout is down"))),
            &[],
        )
        .await);
    assert_eq!(
        glass.body["promotion"]["status"], "certified",
        "{}",
        glass.body
    );
    let promotion = glass.body["promotion"]["id"].as_str().unwrap().to_owned();

    // The second replica answers from its cache: allowed.
    let (b, _b_tasks) = a.replica().await;
    let gate = format!("/api/v1/verify?env=production&digest={digest}");
    let allowed = until_gate(&b, &gate, 200).await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(
        b.call("GET", &gate, Some(b.token("argo")), None, &[])
            .await
            .status,
        200
    );

    // An approver rejects it after the fact, through the first replica…
    let review = json!({"rationale": "the diff touched payments", "risk": "high"}).to_string();
    ok(a.call(
        "POST",
        &format!("/api/v1/promotions/{promotion}/reject"),
        Some(a.token("alice")),
        Some(&review),
        &[],
    )
    .await);
    // …and both gates deny it: the first at once, the second as soon as it sees the write.
    let here = a.call("GET", &gate, Some(a.token("argo")), None, &[]).await;
    assert_eq!(here.status, 403, "{}", here.body);
    let there = until_gate(&b, &gate, 403).await;
    assert_eq!(
        there.status, 403,
        "the replica kept its cached verdict: {}",
        there.body
    );
    assert!(
        there.body["reasons"][0]
            .as_str()
            .unwrap()
            .contains("alice has since rejected it")
    );
    assert!(
        !there.body.to_string().contains("payments"),
        "a rationale was quoted: {}",
        there.body
    );

    // In build it still runs; until the policy stops trusting its repository.
    let build_gate = format!("/api/v1/verify?env=build&digest={digest}");
    assert_eq!(until_gate(&b, &build_gate, 200).await.status, 200);
    let policy = include_str!("policy.toml").replace("acme/**", "acme/payments/**");
    let mut files = serde_json::Map::new();
    files.insert("custody.toml".into(), json!(policy));
    files.insert(
        "keys/builder.pub".into(),
        json!(a.builder.public_key().to_pem()),
    );
    files.insert(
        "keys/release.pub".into(),
        json!(a.release_key.public_key().to_pem()),
    );
    let proposed = ok(a
        .call(
            "PUT",
            "/api/v1/policy",
            Some(a.token("sec")),
            Some(&json!({"files": files}).to_string()),
            &[],
        )
        .await);
    assert_eq!(proposed.status, 202, "a proposal, not yet in force");
    let id = proposed.body["proposal"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        until_gate(&b, &build_gate, 200).await.status,
        200,
        "a proposal changed the gate"
    );
    ok(a.call(
        "POST",
        &format!("/api/v1/proposals/{id}/approve"),
        Some(a.token("sue")),
        Some(&json!({"rationale": "payments only"}).to_string()),
        &[],
    )
    .await);
    let tightened = until_gate(&b, &build_gate, 403).await;
    assert_eq!(tightened.status, 403, "{}", tightened.body);
    assert!(
        tightened.body["reasons"][0]
            .as_str()
            .unwrap()
            .contains("provenance"),
        "{}",
        tightened.body
    );
}
