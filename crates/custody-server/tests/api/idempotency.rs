//! Every mutating route honours an `Idempotency-Key`: a retry returns the first result and
//! writes nothing; the same key for another request is a 409.

use custody_app::attestations::sha256;
use serde_json::{Value, json};

use crate::support::{Backend, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutating_route_honours_an_idempotency_key() {
    let server = TestServer::start(Backend::Sqlite).await;
    let digest = sha256(b"shop v1");
    let artifact = server.signed_artifact(&digest, "abc");
    let registered = server
        .call(
            "POST",
            "/api/v1/artifacts",
            Some(server.token("bob")),
            Some(&serde_json::to_string(&artifact).unwrap()),
            &[],
        )
        .await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    let manifest = server.signed_release("1.0.0", &digest);
    let other_manifest = server.signed_release("1.0.1", &digest);
    // (method, path, who, a request, another request)
    let calls: Vec<(&str, String, &str, Value, Value)> = vec![
        (
            "POST",
            format!("/api/v1/artifacts/{digest}/evidence"),
            "bob",
            json!({"kind": "test-results", "format": "junit", "digest": sha256(b"<testsuite/>")}),
            json!({"kind": "sbom", "format": "spdx", "digest": sha256(b"{}")}),
        ),
        (
            "POST",
            "/api/v1/releases".into(),
            "sam",
            serde_json::to_value(&manifest).unwrap(),
            serde_json::to_value(&other_manifest).unwrap(),
        ),
        (
            "POST",
            "/api/v1/promotions".into(),
            "sam",
            json!({"release": "shop@1.0.0", "environment": "production"}),
            json!({"release": "shop@1.0.0", "environment": "build"}),
        ),
        (
            "POST",
            "/api/v1/deploys".into(),
            "argo",
            json!({"environment": "build", "digests": [digest], "status": "succeeded"}),
            json!({"environment": "build", "digests": [digest], "status": "failed"}),
        ),
        (
            "POST",
            "/api/v1/tokens".into(),
            "root",
            json!({"principal": "carol", "expires": "1h"}),
            json!({"principal": "dave", "expires": "1h"}),
        ),
    ];
    let mut first_promotion = None;
    for (method, path, who, body, other) in &calls {
        let body = body.to_string();
        let key = [("idempotency-key", "k-1")];
        let first = server
            .call(method, path, Some(server.token(who)), Some(&body), &key)
            .await;
        assert!(
            first.status.is_success(),
            "{path}: {} {}",
            first.status,
            first.body
        );
        let size = server.size().await;
        let again = server
            .call(method, path, Some(server.token(who)), Some(&body), &key)
            .await;
        assert!(
            again.status.is_success(),
            "{path}: {} {}",
            again.status,
            again.body
        );
        assert_eq!(
            server.size().await,
            size,
            "{path}: the retry wrote to the ledger"
        );
        let id = |v: &Value| {
            v.get("promotion")
                .map(|p| p["id"].clone())
                .or_else(|| v.get("record").map(|r| r["id"].clone()))
                .unwrap_or_else(|| v["ledger_index"].clone())
        };
        assert_eq!(id(&first.body), id(&again.body), "{path}");
        assert!(!id(&first.body).is_null(), "{path}: {}", first.body);
        if path.ends_with("promotions") {
            first_promotion = Some(first.body["promotion"]["id"].as_str().unwrap().to_owned());
        }
        if path.ends_with("tokens") {
            assert!(first.body["token"].is_string());
            assert!(
                again.body["token"].is_null(),
                "a retry shows no secret: {}",
                again.body
            );
        }
        // The same key for another request: 409, nothing written.
        let conflict = server
            .call(
                method,
                path,
                Some(server.token(who)),
                Some(&other.to_string()),
                &key,
            )
            .await;
        assert_eq!(conflict.status, 409, "{path}: {}", conflict.body);
        assert!(
            conflict.error().contains("already used"),
            "{}",
            conflict.body
        );
        assert_eq!(
            server.size().await,
            size,
            "{path}: the conflict wrote to the ledger"
        );
    }
    // Reviews and rollbacks too: approve once, retry, and roll back twice.
    let promotion = first_promotion.unwrap();
    let review = json!({"rationale": "fine", "risk": "low"}).to_string();
    let approve = format!("/api/v1/promotions/{promotion}/approve");
    let key = [("idempotency-key", "k-review")];
    let approve_once = || {
        server.call(
            "POST",
            &approve,
            Some(server.token("alice")),
            Some(&review),
            &key,
        )
    };
    let first = approve_once().await;
    assert_eq!(first.status, 200, "{}", first.body);
    let size = server.size().await;
    let again = approve_once().await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["replayed"], true);
    assert_eq!(server.size().await, size);
    assert_eq!(
        first.body["approval"][0]["id"],
        again.body["approval"][0]["id"]
    );
}

/// An idempotency key is its caller's own: another principal using the same key neither
/// gets the first caller's result, nor a 409 that would tell them the key was used (and
/// block their request); each principal's retry still replays their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_is_its_callers_own() {
    let server = TestServer::start(Backend::Sqlite).await;
    let key = [("idempotency-key", "deploy-42")];
    let call = |who: &'static str, principal: &'static str| {
        let server = &server;
        async move {
            let body = json!({"principal": principal, "expires": "1h"}).to_string();
            server
                .call(
                    "POST",
                    "/api/v1/tokens",
                    Some(server.token(who)),
                    Some(&body),
                    &key,
                )
                .await
        }
    };
    let roots = call("root", "carol").await;
    assert_eq!(roots.status, 201, "{}", roots.body);
    let size = server.size().await;
    // vic, with the same key, for a token of his own: a new request, not root's.
    let vics = call("vic", "vic").await;
    assert_eq!(vics.status, 201, "{}", vics.body);
    assert_eq!(vics.body["record"]["principal"], "vic");
    assert!(vics.body["token"].is_string(), "{}", vics.body);
    assert_eq!(server.size().await, size + 1, "vic's token was written");
    // Each one's retry replays their own, writing nothing.
    let size = server.size().await;
    for (who, principal, first) in [("root", "carol", &roots), ("vic", "vic", &vics)] {
        let again = call(who, principal).await;
        assert_eq!(again.status, 200, "{}", again.body);
        assert_eq!(again.body["replayed"], true);
        assert_eq!(again.body["record"]["id"], first.body["record"]["id"]);
        assert!(again.body["token"].is_null());
    }
    assert_eq!(server.size().await, size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_idempotency_keys_on_one_request_are_refused() {
    let server = TestServer::start(Backend::Sqlite).await;
    let size = server.size().await;
    let body = json!({"principal": "vic"}).to_string();
    let keys = [("Idempotency-Key", "a1"), ("Idempotency-Key", "a2")];
    let refused = server
        .call(
            "POST",
            "/api/v1/tokens",
            Some(server.token("root")),
            Some(&body),
            &keys,
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.error().contains("one Idempotency-Key"),
        "{}",
        refused.body
    );
    assert_eq!(server.size().await, size, "nothing was written");
    // Either key alone is a first request.
    for key in ["a1", "a2"] {
        let made = server
            .call(
                "POST",
                "/api/v1/tokens",
                Some(server.token("root")),
                Some(&body),
                &[("Idempotency-Key", key)],
            )
            .await;
        assert_eq!(made.status, 201, "{}", made.body);
    }
}
