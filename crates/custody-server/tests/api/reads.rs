//! Reading what custody holds, and asking for what it does not: a release with its signer
//! and standing; a promotion, release or decision that does not exist is a 404; a path no
//! route serves, a method a route does not take, or a path or body that is not UTF-8 is
//! answered with a JSON error like every other API error.

use axum::body::Body;
use axum::http::Request;
use custody_app::attestations::sha256;
use custody_crypto::Signer as _;
use serde_json::json;
use tower::ServiceExt as _;

use crate::support::{Backend, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_reads_with_its_signer_and_where_it_stands() {
    let server = TestServer::start(Backend::Sqlite).await;
    let digest = sha256(b"shop 1.0.0");
    server.release_in_build("1.0.0", &digest).await;
    let vic = Some(server.token("vic"));
    let read = server
        .call("GET", "/api/v1/releases/shop@1.0.0", vic, None, &[])
        .await;
    assert_eq!(read.status, 200, "{}", read.body);
    let r = &read.body;
    assert_eq!(
        (r["name"].as_str(), r["version"].as_str()),
        (Some("shop"), Some("1.0.0"))
    );
    assert_eq!(r["artifacts"][0]["digest"], digest.to_string());
    assert_eq!(
        r["signed_by"],
        server.release_key.public_key().key_id().to_string()
    );
    let standing = r["environments"].as_array().unwrap();
    assert_eq!(standing.len(), 1, "certified in build only: {r}");
    assert_eq!(standing[0]["environment"], "build");
    assert_eq!(standing[0]["current"], true);
    assert_eq!(standing[0]["certification"]["by_rollback"], false);

    // A second version certified in build makes the first one's standing there past.
    let digest2 = sha256(b"shop 1.1.0");
    server.release_in_build("1.1.0", &digest2).await;
    let read = server
        .call("GET", "/api/v1/releases/shop@1.0.0", vic, None, &[])
        .await;
    assert_eq!(
        read.body["environments"][0]["current"], false,
        "{}",
        read.body
    );

    // Unsigned: recorded, but nobody trusted signs it.
    let unsigned = custody_app::RecordRelease::signed(
        "shop",
        "2.0.0",
        &[custody_app::attestations::ManifestArtifact {
            name: "shop".into(),
            digest: digest.clone(),
        }],
        "sam",
        crate::support::now(),
        None,
    )
    .unwrap();
    let unsigned = serde_json::to_value(&unsigned).unwrap();
    TestServer::ok(server.post("sam", "/api/v1/releases", &unsigned).await);
    let read = server
        .call("GET", "/api/v1/releases/shop@2.0.0", vic, None, &[])
        .await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert!(read.body["signed_by"].is_null(), "{}", read.body);
    assert_eq!(read.body["environments"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_does_not_exist_is_not_found() {
    let server = TestServer::start(Backend::Sqlite).await;
    let vic = Some(server.token("vic"));
    for (path, says) in [
        ("/api/v1/releases/shop@9.9.9", "no release shop@9.9.9"),
        ("/api/v1/promotions/prm-none", "no promotion prm-none"),
        ("/api/v1/decisions/dec-none", "no decision dec-none"),
    ] {
        let answer = server.call("GET", path, vic, None, &[]).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
        assert!(answer.error().contains(says), "{path}: {}", answer.body);
    }
    // Not NAME@VERSION is a malformed request, not a release to look for.
    let malformed = server
        .call("GET", "/api/v1/releases/shop", vic, None, &[])
        .await;
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    assert!(
        malformed.error().contains("NAME@VERSION"),
        "{}",
        malformed.body
    );
    // Reading a release needs a credential like every other read.
    let anonymous = server
        .call("GET", "/api/v1/releases/shop@9.9.9", None, None, &[])
        .await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_no_route_serves_are_answered_in_json() {
    let server = TestServer::start(Backend::Sqlite).await;
    let vic = Some(server.token("vic"));
    let unknown = server
        .call("GET", "/api/v1/nothing-here", vic, None, &[])
        .await;
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.error().contains("/api/v1/openapi.json"),
        "{}",
        unknown.body
    );

    let wrong = server
        .call("DELETE", "/api/v1/log/checkpoint", None, None, &[])
        .await;
    assert_eq!(wrong.status, 405);
    assert!(
        wrong.error().contains("does not take DELETE"),
        "{}",
        wrong.body
    );
    assert_eq!(wrong.headers["allow"], "GET,HEAD");

    // A percent-encoded path segment that is not UTF-8.
    let garbled = server
        .call("GET", "/api/v1/promotions/%ff%fe", vic, None, &[])
        .await;
    assert_eq!(garbled.status, 400);
    assert!(garbled.error().contains("UTF-8"), "{}", garbled.body);

    // A cosignature body that is not UTF-8.
    let request = Request::builder()
        .method("POST")
        .uri("/api/v1/log/cosignature")
        .header("content-type", "text/plain")
        .body(Body::from(&b"x\xff\n\n"[..]))
        .unwrap();
    let response = server.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 400);
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(body["error"].as_str().unwrap().contains("UTF-8"), "{body}");

    // Outside the API (the dashboard), plain text.
    let page = server.call("GET", "/no-such-page", None, None, &[]).await;
    assert_eq!(page.status, 404);
    assert_eq!(page.body, "no page /no-such-page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_provenance_is_bad_input_and_records_nothing() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut artifact =
        serde_json::to_value(server.signed_artifact(&sha256(b"shop 1.0.0"), "c-1")).unwrap();
    artifact["provenance"]["payload"] = json!("not base64!");
    let before = server.size().await;
    let refused = server.post("bob", "/api/v1/artifacts", &artifact).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.error().contains("malformed"), "{}", refused.body);
    assert_eq!(server.size().await, before);
    // As malformed: no signature at all, or one that is not base64.
    let good = serde_json::to_value(server.signed_artifact(&sha256(b"shop 1.0.0"), "c-1")).unwrap();
    for (signatures, says) in [
        (json!([]), "no signatures"),
        (json!([{"sig": "%%%"}]), "signature 0 is not base64"),
    ] {
        let mut artifact = good.clone();
        artifact["provenance"]["signatures"] = signatures;
        let refused = server.post("bob", "/api/v1/artifacts", &artifact).await;
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert!(refused.error().contains(says), "{}", refused.body);
    }
    assert_eq!(server.size().await, before);

    // Well formed, but its signature is no trusted builder key's: a denial.
    artifact["provenance"] = serde_json::to_value(
        server.signed_artifact(&sha256(b"shop 1.0.0"), "c-1"),
    )
    .unwrap()["provenance"]
        .clone();
    artifact["provenance"]["signatures"][0]["sig"] = json!("A".repeat(86) + "==");
    let denied = server.post("bob", "/api/v1/artifacts", &artifact).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(
        denied
            .error()
            .contains("not signed by a trusted builder key"),
        "{}",
        denied.body
    );
    assert_eq!(server.size().await, before);
}
