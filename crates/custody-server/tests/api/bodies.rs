//! Credentials and bodies: forged, expired and revoked tokens are 401 with a reason; every
//! malformed or impossible body is a 4xx with a message and changes nothing.

use custody_app::CreateToken;

use crate::support::{Backend, TestServer, now};

const GATE: &str = "/api/v1/verify?env=production&digest=sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

async fn tokens_and_bodies(backend: Backend) {
    let server = TestServer::start(backend).await;
    let argo = server.token("argo").to_owned();
    let verdict = server.call("GET", GATE, Some(&argo), None, &[]).await;
    assert_eq!(verdict.status, 403);
    assert_eq!(verdict.body["allowed"], false);
    assert!(
        verdict.body["reasons"][0]
            .as_str()
            .unwrap()
            .contains("nothing is certified in production")
    );
    let bad_digest = server
        .call(
            "GET",
            "/api/v1/verify?env=production&digest=sha256:XYZ",
            Some(&argo),
            None,
            &[],
        )
        .await;
    assert_eq!(bad_digest.status, 400, "{}", bad_digest.body);

    // A forged secret: 401.
    let last = if argo.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &argo[..argo.len() - 1]);
    assert_eq!(
        server
            .call("GET", GATE, Some(&forged), None, &[])
            .await
            .status,
        401
    );
    // The scheme's case does not matter (`bearer` is `Bearer`); another scheme, or bytes
    // that are not visible ASCII, is refused saying what the header holds.
    let lower = format!("bearer {argo}");
    let answer = server
        .call("GET", GATE, None, None, &[("authorization", &lower)])
        .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(answer.body["allowed"], false);
    for (header, holds) in [
        (format!("Basic {argo}"), "another scheme than Bearer"),
        (argo.clone(), "another scheme than Bearer"),
        ("Bearer".to_owned(), "Bearer with no token"),
        ("Bearer \t ".to_owned(), "Bearer with no token"),
    ] {
        let answer = server
            .call("GET", GATE, None, None, &[("authorization", &header)])
            .await;
        assert_eq!(answer.status, 401, "{}", answer.body);
        assert!(answer.error().contains(holds), "{}", answer.body);
    }
    // Tabs or several spaces after the scheme are space like any other.
    let spaced = format!("BEARER \t  {argo}");
    let answer = server
        .call("GET", GATE, None, None, &[("authorization", &spaced)])
        .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    // Two Authorization headers: refused, whichever comes first.
    let twice = server
        .call(
            "GET",
            GATE,
            Some(server.token("vic")),
            None,
            &[("authorization", &lower)],
        )
        .await;
    assert_eq!(twice.status, 401, "{}", twice.body);
    assert!(
        twice.error().contains("two Authorization headers"),
        "{}",
        twice.body
    );
    let request = axum::http::Request::builder()
        .uri(GATE)
        .header(
            "authorization",
            axum::http::HeaderValue::from_bytes(b"Bearer cst_\xc3\xa9").unwrap(),
        )
        .body(axum::body::Body::empty())
        .unwrap();
    let answer = tower::ServiceExt::oneshot(server.router.clone(), request)
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let log = server.access_log().await;
    let outcomes: Vec<&str> = log.iter().map(|r| r.entry.outcome.as_str()).collect();
    for holds in [
        "another scheme than Bearer",
        "not visible ASCII",
        "two Authorization headers",
    ] {
        assert!(
            outcomes.iter().any(|o| o.contains(holds)),
            "{holds}: {outcomes:#?}"
        );
    }
    // An expired token: 401 saying so (the server's clock moves past its expiry).
    let root = custody_app::Actor::new("root", now()).unwrap();
    let short = CreateToken {
        principal: "argo".into(),
        expires: "1h".into(),
        description: String::new(),
    };
    let (_, old) = server
        .state
        .app
        .create_token(&root, &short, None)
        .await
        .unwrap();
    let old = old.unwrap();
    assert_eq!(
        server.call("GET", GATE, Some(&old), None, &[]).await.status,
        403
    );
    server.clock.advance(3601);
    let expired = server.call("GET", GATE, Some(&old), None, &[]).await;
    assert_eq!(expired.status, 401);
    assert!(expired.error().contains("expired"), "{}", expired.body);
    // Revoked through the API by an admin: 401 from the next request on.
    let id = argo.split('_').nth(1).unwrap();
    let revoked = server
        .call(
            "POST",
            &format!("/api/v1/tokens/{id}/revoke"),
            Some(server.token("root")),
            None,
            &[],
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let refused = server.call("GET", GATE, Some(&argo), None, &[]).await;
    assert_eq!(refused.status, 401);
    assert!(refused.error().contains("revoked"), "{}", refused.body);
    // A list names every token, never a secret.
    let list = server
        .call(
            "GET",
            "/api/v1/tokens",
            Some(server.token("audrey")),
            None,
            &[],
        )
        .await;
    assert_eq!(list.status, 200);
    let text = list.body.to_string();
    assert!(text.contains(id));
    for token in server.tokens.values() {
        assert!(
            !text.contains(token.split('_').nth(2).unwrap()),
            "a secret was listed"
        );
    }
    let traversal = server
        .call(
            "POST",
            "/api/v1/tokens/..%2F..%2Flog/revoke",
            Some(server.token("root")),
            None,
            &[],
        )
        .await;
    assert_eq!(traversal.status, 404, "{}", traversal.body);

    // Bad bodies: 4xx with a message, and the ledger unchanged.
    let root = server.token("root").to_owned();
    let before = server.size().await;
    let digest = format!("sha256:{}", "a".repeat(64));
    for (body, status, needle) in [
        ("{not json".to_owned(), 400, ""),
        (
            r#"{"environment":"build","digests":[],"status":"succeeded","extra":1}"#.to_owned(),
            400,
            "unknown field",
        ),
        (
            r#"{"environment":"build","digests":"x","status":"succeeded"}"#.to_owned(),
            400,
            "digests",
        ),
        (
            r#"{"environment":"build","digests":["sha256:ABC"],"status":"succeeded"}"#.to_owned(),
            400,
            "",
        ),
        (
            r#"{"environment":"build","digests":[],"status":"maybe"}"#.to_owned(),
            400,
            "status",
        ),
        (
            format!(r#"{{"environment":"nowhere","digests":["{digest}"],"status":"failed"}}"#),
            404,
            "unknown environment",
        ),
    ] {
        let a = server
            .call("POST", "/api/v1/deploys", Some(&root), Some(&body), &[])
            .await;
        assert_eq!(a.status.as_u16(), status, "{body}: {}", a.body);
        assert!(a.error().contains(needle), "{needle:?}: {}", a.body);
    }
    // An oversized body: 413.
    let huge = format!(
        r#"{{"environment":"build","digests":["{digest}"],"status":"succeeded","pad":"{}"}}"#,
        "x".repeat(2 << 20)
    );
    let too_big = server
        .call("POST", "/api/v1/deploys", Some(&root), Some(&huge), &[])
        .await;
    assert_eq!(too_big.status, 413);
    // Every mutating route: malformed JSON, wrong types, unknown fields: 400 with a
    // message; something that does not exist or may not be: a 4xx with a message.
    let routes = [
        (
            "POST",
            "/api/v1/promotions".to_owned(),
            r#"{"release":"shop@1.0.0","environment":"nowhere"}"#.to_owned(),
        ),
        (
            "POST",
            "/api/v1/promotions/prm-none/approve".to_owned(),
            r#"{"rationale":"x","risk":"low"}"#.to_owned(),
        ),
        (
            "POST",
            "/api/v1/promotions/prm-none/reject".to_owned(),
            r#"{"rationale":"x","risk":"low"}"#.to_owned(),
        ),
        (
            "POST",
            "/api/v1/environments/nowhere/rollback".to_owned(),
            r#"{"reason":"x"}"#.to_owned(),
        ),
        (
            "POST",
            "/api/v1/artifacts".to_owned(),
            format!(r#"{{"name":"Bad Name","digest":"{digest}"}}"#),
        ),
        (
            "POST",
            format!("/api/v1/artifacts/{digest}/evidence"),
            format!(r#"{{"kind":"sbom","format":"spdx","digest":"{digest}"}}"#),
        ),
        (
            "POST",
            "/api/v1/releases".to_owned(),
            r#"{"manifest":{"payloadType":"x","payload":"bm90IGpzb24=","signatures":[]}}"#
                .to_owned(),
        ),
        (
            "PUT",
            "/api/v1/policy".to_owned(),
            r#"{"files":{"custody.toml":"version = 2"}}"#.to_owned(),
        ),
        (
            "POST",
            "/api/v1/tokens".to_owned(),
            r#"{"principal":"has space","expires":"1h"}"#.to_owned(),
        ),
        (
            "POST",
            "/api/v1/tokens".to_owned(),
            r#"{"principal":"someone","expires":"forever"}"#.to_owned(),
        ),
    ];
    for (method, path, semantic) in &routes {
        for bad in ["{not json", r#"{"unexpected":true}"#, "[1,2,3]"] {
            let a = server.call(method, path, Some(&root), Some(bad), &[]).await;
            assert_eq!(a.status, 400, "{method} {path} {bad}: {}", a.body);
            assert!(!a.error().is_empty(), "{method} {path}: {}", a.body);
        }
        let a = server
            .call(method, path, Some(&root), Some(semantic), &[])
            .await;
        assert!(
            a.status.is_client_error(),
            "{method} {path}: {} {}",
            a.status,
            a.body
        );
        assert!(!a.error().is_empty(), "{method} {path}: {}", a.body);
    }
    assert_eq!(
        server.size().await,
        before,
        "a refused request changed the ledger"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_bodies_are_checked_and_refusals_change_nothing_sqlite() {
    tokens_and_bodies(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_bodies_are_checked_and_refusals_change_nothing_postgres() {
    tokens_and_bodies(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_names_no_internals() {
    let server = TestServer::start(Backend::Sqlite).await;
    // Nothing that exists is an error with a message; a 404 for what does not.
    for path in [
        "/api/v1/promotions/prm-none",
        "/api/v1/decisions/dec-none",
        "/api/v1/decisions/dec-none/replay",
    ] {
        let a = server
            .call("GET", path, Some(server.token("audrey")), None, &[])
            .await;
        assert_eq!(a.status, 404, "{path}: {}", a.body);
        assert!(a.error().starts_with("no "), "{path}: {}", a.body);
    }
}
