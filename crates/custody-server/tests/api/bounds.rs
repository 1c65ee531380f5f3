//! What one request may ask of the server: free text within its documented bound (a 400
//! naming the field, nothing written), reads of the ledger and of history bounded per
//! request, a chunked body over the limit refused 413; and the small refusals that must
//! say the right thing: an unknown environment is 404, an `Idempotency-Key` with a tab or
//! a blank evidence format 400, a failed deploy naming no digests 400 (never a rollback).

use custody_app::attestations::sha256;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use crate::connections::{serve, until_closed};
use crate::support::{Backend, TestServer};

/// Asserts `answer` is a 400 whose message names `field`.
fn refused_naming(answer: &crate::support::Answer, field: &str) {
    if let Some(problem) = not_refused_naming(answer, field) {
        panic!("{problem}");
    }
}

/// Why `answer` is not a 400 whose message names `field`, if it is not.
fn not_refused_naming(answer: &crate::support::Answer, field: &str) -> Option<String> {
    (answer.status != 400 || !answer.error().contains(field)).then(|| {
        let body = answer.body.to_string();
        let shown = body.get(..300).unwrap_or(&body);
        format!("{field}: {} {shown}", answer.status)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_text_over_its_bound_is_refused_naming_the_field() {
    let server = TestServer::start(Backend::Sqlite).await;
    let promotion = server
        .waiting_in_production("1.0.0", &sha256(b"shop 1.0.0"))
        .await;
    let before = server.size().await;
    let over = |bound: usize| "x".repeat(bound + 1);
    let review = json!({"rationale": over(custody_app::limits::MAX_RATIONALE), "risk": "low"});
    let approve = format!("/api/v1/promotions/{promotion}/approve");
    let reject = format!("/api/v1/promotions/{promotion}/reject");
    let glass = json!({"release": "shop@1.0.0", "environment": "production", "break_glass": over(custody_app::limits::MAX_REASON)});
    let rollback = json!({"reason": over(custody_app::limits::MAX_REASON)});
    let token = json!({"principal": "vic", "expires": "1d", "description": over(custody_app::limits::MAX_DESCRIPTION)});
    // (who, where, what, the field the refusal must name)
    let requests = [
        ("alice", approve.as_str(), &review, "rationale"),
        ("alice", reject.as_str(), &review, "rationale"),
        ("argo", "/api/v1/promotions", &glass, "break_glass"),
        (
            "argo",
            "/api/v1/environments/build/rollback",
            &rollback,
            "reason",
        ),
        ("root", "/api/v1/tokens", &token, "description"),
    ];
    // Every field is tried, and every one not refused is named.
    let mut problems = Vec::new();
    for (who, path, body, field) in requests {
        problems.extend(not_refused_naming(
            &server.post(who, path, body).await,
            field,
        ));
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(server.size().await, before, "a refused request wrote");
    // At the bound, it is taken.
    let review =
        json!({"rationale": "y".repeat(custody_app::limits::MAX_RATIONALE), "risk": "low"});
    TestServer::ok(server.post("alice", &approve, &review).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_reads_and_history_exports_are_bounded_per_request() {
    let server = TestServer::start(Backend::Sqlite).await;
    // Past every bound: copies of the last entry, appended by another writer.
    let size = server.size().await;
    let last = server
        .state
        .app
        .log()
        .entries(size - 1, size)
        .await
        .unwrap();
    let leaf: Value = serde_json::from_slice(&last[0].leaf).unwrap();
    let leaf = custody_model::CanonicalJson::from_value(&leaf).unwrap();
    server.append_elsewhere(vec![leaf; 10_050]).await;
    let size = server.size().await;
    let audrey = Some(server.token("audrey"));

    let entries = server
        .call(
            "GET",
            "/api/v1/log/entries?start=0&end=1001",
            audrey,
            None,
            &[],
        )
        .await;
    refused_naming(&entries, "at most 1000");
    let history = server
        .call("GET", "/api/v1/history?limit=100000", audrey, None, &[])
        .await;
    assert_eq!(history.status, 200, "{}", history.body);
    assert_eq!(history.body.as_array().unwrap().len(), 1000);

    let cookie = server.sign_in("audrey").await;
    let export = server
        .call("GET", "/history.json", None, None, &[("cookie", &cookie)])
        .await;
    assert_eq!(export.status, 200);
    let exported = export.body.as_array().unwrap();
    assert_eq!(exported.len(), 10_000, "the export holds the newest 10,000");
    assert_eq!(exported.last().unwrap()["index"], json!(size - 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_report_must_name_its_digests_and_an_empty_one_changes_nothing() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (old, new) = (sha256(b"shop 1.0.0"), sha256(b"shop 1.0.1"));
    server.release_in_build("1.0.0", &old).await;
    server.release_in_build("1.0.1", &new).await;
    let before = server.size().await;
    for status in ["failed", "succeeded"] {
        let report = json!({"environment": "build", "digests": [], "status": status});
        let refused = server.post("argo", "/api/v1/deploys", &report).await;
        refused_naming(&refused, "digests");
        assert_eq!(
            server.size().await,
            before,
            "the refused {status} report wrote"
        );
    }
    // 1.0.1 is still what build runs.
    let gate = format!("/api/v1/verify?env=build&digest={new}");
    let verdict = server
        .call("GET", &gate, Some(server.token("argo")), None, &[])
        .await;
    assert_eq!(verdict.status, 200, "{}", verdict.body);
    assert!(
        verdict.body.to_string().contains("shop@1.0.1"),
        "{}",
        verdict.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_refusals_say_the_right_thing() {
    let server = TestServer::start(Backend::Sqlite).await;
    let before = server.size().await;
    let digest = sha256(b"anything");
    // An environment the policy does not declare: 404 wherever it is acted on. (The
    // deploy gate answers every question with a verdict: there it is a denial.)
    let nowhere: [(&str, String, &str, Value); 3] = [
        (
            "POST",
            "/api/v1/promotions".into(),
            "sam",
            json!({"release": "shop@1.0.0", "environment": "nowhere"}),
        ),
        (
            "POST",
            "/api/v1/environments/nowhere/rollback".into(),
            "argo",
            json!({"reason": "bad deploy"}),
        ),
        (
            "POST",
            "/api/v1/deploys".into(),
            "argo",
            json!({"environment": "nowhere", "digests": [digest], "status": "succeeded"}),
        ),
    ];
    // Every case is tried, and every one not refused as it should be is named.
    let mut problems = Vec::new();
    for (method, path, who, body) in &nowhere {
        let body = body.to_string();
        let a = server
            .call(method, path, Some(server.token(who)), Some(&body), &[])
            .await;
        if a.status != 404 || !a.error().contains("nowhere") {
            problems.push(format!("{method} {path}: {} {}", a.status, a.body));
        }
    }
    // An Idempotency-Key holding a tab (or a space) is refused before anything runs.
    let token = json!({"principal": "vic", "expires": "1d", "description": "x"}).to_string();
    for key in ["a\tb", "a b"] {
        let a = server
            .call(
                "POST",
                "/api/v1/tokens",
                Some(server.token("root")),
                Some(&token),
                &[("idempotency-key", key)],
            )
            .await;
        problems.extend(not_refused_naming(&a, "Idempotency-Key"));
    }
    // An evidence format that is only spaces names nothing.
    let path = format!("/api/v1/artifacts/{digest}/evidence");
    for format in ["   ", "\t", ""] {
        let evidence = json!({"kind": "sbom", "format": format, "digest": sha256(b"{}")});
        problems.extend(not_refused_naming(
            &server.post("bob", &path, &evidence).await,
            "format",
        ));
    }
    // A malformed gate query is a 400 naming the field (the gate parses its query on a
    // fast path and names the problem on a second parse).
    for (query, needle) in [
        (format!("env=production&digets={digest}"), "digets"),
        ("env=production".to_owned(), "digest"),
        (format!("env=production&digest={digest}&env=build"), "env"),
        ("env=production&digest=sha256:zz".to_owned(), "digest"),
        // An environment name no policy could hold: blank, over the bound, a control
        // character (not a verdict "unknown environment", which is cached).
        (format!("env=&digest={digest}"), "the environment"),
        (format!("env=%20%20&digest={digest}"), "the environment"),
        (
            format!("env={}&digest={digest}", "e".repeat(129)),
            "the environment",
        ),
        (
            format!("env=prod%1Buction&digest={digest}"),
            "the environment",
        ),
        // Bytes that are not UTF-8 (read as U+FFFD): not a name either.
        (format!("env=%FF&digest={digest}"), "the environment"),
    ] {
        let a = server
            .call(
                "GET",
                &format!("/api/v1/verify?{query}"),
                Some(server.token("argo")),
                None,
                &[],
            )
            .await;
        problems.extend(not_refused_naming(&a, needle));
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(server.size().await, before, "a refused request wrote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_is_413() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (addr, _stop) = serve(&server).await;
    let before = server.size().await;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST /api/v1/deploys HTTP/1.1\r\nhost: custody\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        server.token("argo")
    );
    // Twice the limit in 64 KiB chunks, no length announced; the server may answer and
    // close before it is all sent, so a failed write is expected.
    let sender = tokio::spawn(async move {
        write.write_all(head.as_bytes()).await?;
        write.write_all(b"10000\r\n{\"pad\":\"").await?;
        let chunk = vec![b'x'; 0x10000];
        write.write_all(&chunk[8..]).await?;
        write.write_all(b"\r\n").await?;
        for _ in 0..(2 * custody_server::MAX_BODY / chunk.len()) {
            write.write_all(b"10000\r\n").await?;
            write.write_all(&chunk).await?;
            write.write_all(b"\r\n").await?;
        }
        write.write_all(b"0\r\n\r\n").await
    });
    let answer = until_closed(&mut read).await;
    let _ = sender.await;
    let status = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(status.starts_with("HTTP/1.1 413"), "{status:?}");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.contains("over custody's limit of 1048576 bytes"),
        "{text}"
    );
    assert_eq!(server.size().await, before);
}

/// The evidence route takes a raw report far over the 1 MiB every other body is held to
/// (custody reads it: a JUnit report of 60,000 cases, about 2.8 MiB and base64 in the body,
/// is counted), up to its own limit; a body declared over that is refused before it is read, and the 1 MiB limit
/// still holds elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_over_a_mebibyte_is_read_on_the_evidence_route_only() {
    let server = TestServer::start(Backend::Sqlite).await;
    let digest = sha256(b"shop 1.0.0");
    server.release_in_build("1.0.0", &digest).await;
    let mut junit = String::from(r#"<testsuite name="shop">"#);
    for i in 0..60_000 {
        junit.push_str(&format!(
            r#"<testcase classname="shop.c{}" name="t{i}"/>"#,
            i % 50
        ));
    }
    junit.push_str("</testsuite>");
    assert!(
        junit.len() > 2 * custody_server::MAX_BODY,
        "{}",
        junit.len()
    );
    let evidence =
        custody_app::AttachEvidence::with_report("test-results", "junit", junit.as_bytes());
    let evidence = serde_json::to_value(&evidence).unwrap();
    let path = format!("/api/v1/artifacts/{digest}/evidence");
    let attached = TestServer::ok(server.post("bob", &path, &evidence).await);
    let index = attached.body["ledger_index"].as_u64().unwrap();
    let entry = server
        .call(
            "GET",
            &format!("/api/v1/log/entries?start={index}&end={}", index + 1),
            Some(server.token("audrey")),
            None,
            &[],
        )
        .await;
    assert!(
        entry.body.to_string().contains("60000"),
        "the report was read and counted: {}",
        entry.body
    );
    // Declared over the route's limit: refused before reading, nothing written.
    let before = server.size().await;
    let declared = (custody_server::MAX_REPORT_BODY + 1).to_string();
    let over = server
        .call(
            "POST",
            &path,
            Some(server.token("bob")),
            Some("{}"),
            &[("content-length", declared.as_str())],
        )
        .await;
    assert_eq!(over.status, 413, "{}", over.body);
    assert!(over.error().contains("134217728"), "{}", over.body);
    // Elsewhere the 1 MiB limit holds.
    let padded = json!({"environment": "build", "digests": [digest.to_string()], "status": "succeeded",
        "pad": "x".repeat(custody_server::MAX_BODY)});
    let deploy = server.post("argo", "/api/v1/deploys", &padded).await;
    assert_eq!(deploy.status, 413, "{}", deploy.body);
    assert_eq!(server.size().await, before);
}
