//! Exceptions (waivers) over HTTP: asked for by a release engineer, approved only by
//! someone else holding the security role, each refusal with its status and nothing
//! written; shown on the promotion's page.

use custody_app::attestations::sha256;
use serde_json::{Value, json};

use crate::support::{Backend, TestServer, now};

fn request(expires_in_days: i64) -> Value {
    let at = |days: i64| {
        custody_model::Timestamp::from_unix_seconds(now().unix_seconds() + days * 86_400)
            .unwrap()
            .to_string()
    };
    json!({
        "finding": {"vulnerability": {"id": "CVE-2024-3094"}},
        "release": "shop@1.0.0",
        "environments": ["production"],
        "plan": {"action": "upgrade", "owner": "team-shop", "due": at(1)},
        "reason": "not reachable: the image never runs sshd",
        "expires_at": at(expires_in_days),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_is_asked_for_and_approved_by_someone_else_with_the_security_role() {
    let server = TestServer::start(Backend::Sqlite).await;
    let promotion = server
        .waiting_in_production("1.0.0", &sha256(b"shop 1.0.0"))
        .await;
    let before = server.size().await;

    // Refused requests, each with its status, and nothing recorded.
    let builder = server.post("bob", "/api/v1/exceptions", &request(3)).await;
    assert_eq!(builder.status, 403, "{}", builder.body);
    let past = server.post("sam", "/api/v1/exceptions", &request(-1)).await;
    assert_eq!(past.status, 400, "{}", past.body);
    assert!(past.error().contains("not after now"), "{}", past.body);
    let mut unknown = request(3);
    unknown["severity"] = json!("low");
    let unknown = server.post("sam", "/api/v1/exceptions", &unknown).await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    let mut missing = request(3);
    missing["release"] = json!("shop@9.9.9");
    let missing = server.post("sam", "/api/v1/exceptions", &missing).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    // A plan due after the waiver lapses, or a pattern for an id: refused, saying why.
    let mut late = request(3);
    late["plan"]["due"] = request(5)["expires_at"].clone();
    let late = server.post("sam", "/api/v1/exceptions", &late).await;
    assert_eq!(late.status, 400, "{}", late.body);
    assert!(
        late.error().contains("after the exception expires"),
        "{}",
        late.body
    );
    let mut pattern = request(3);
    pattern["finding"]["vulnerability"]["id"] = json!("*");
    let pattern = server.post("sam", "/api/v1/exceptions", &pattern).await;
    assert_eq!(pattern.status, 400, "{}", pattern.body);
    assert!(
        pattern.error().contains("is not one id"),
        "{}",
        pattern.body
    );
    assert_eq!(server.size().await, before);

    let asked = TestServer::ok(server.post("sam", "/api/v1/exceptions", &request(3)).await);
    assert_eq!(asked.body["status"], "pending", "{}", asked.body);
    let id = asked.body["id"].as_str().unwrap().to_owned();
    let approve = format!("/api/v1/exceptions/{id}/approve");
    let ok = json!({"rationale": "upgrade is scheduled"});

    // An approver without the security role may call the route, but the use case refuses.
    let approver = server.post("alice", &approve, &ok).await;
    assert_eq!(approver.status, 403, "{}", approver.body);
    assert!(
        approver.error().contains("security role"),
        "{}",
        approver.body
    );
    // The access log records that refusal as a denial, not as the route's "allowed".
    let logged = server.access_log().await;
    let row = logged
        .iter()
        .rev()
        .find(|r| r.entry.path == approve && r.entry.principal == "alice")
        .unwrap();
    assert_eq!(row.entry.status, 403);
    assert!(
        row.entry.outcome.starts_with("denied: by the use case"),
        "{:?}",
        row.entry
    );
    let none = server
        .post("sec", "/api/v1/exceptions/x-0000000000000000/approve", &ok)
        .await;
    assert_eq!(none.status, 404, "{}", none.body);

    let approved = TestServer::ok(server.post("sec", &approve, &ok).await);
    assert_eq!(approved.body["status"], "approved", "{}", approved.body);
    assert_eq!(approved.body["reviewed_by"], "sec");
    let again = server.post("sue", &approve, &ok).await;
    assert_eq!(again.status, 409, "{}", again.body);

    // Read back by a viewer; not without a token.
    let shown = TestServer::ok(
        server
            .call(
                "GET",
                &format!("/api/v1/exceptions/{id}"),
                Some(server.token("vic")),
                None,
                &[],
            )
            .await,
    );
    assert_eq!(shown.body["status"], "approved");
    let listed = TestServer::ok(
        server
            .call(
                "GET",
                "/api/v1/exceptions?limit=5",
                Some(server.token("vic")),
                None,
                &[],
            )
            .await,
    );
    assert_eq!(listed.body[0]["id"], id.as_str(), "{}", listed.body);
    let anonymous = server
        .call("GET", "/api/v1/exceptions", None, None, &[])
        .await;
    assert_eq!(anonymous.status, 401);

    // The promotion's page shows it, approved.
    let cookie = server.sign_in("vic").await;
    let page = server
        .call(
            "GET",
            &format!("/promotions/{promotion}"),
            None,
            None,
            &[("cookie", &cookie)],
        )
        .await;
    let html = page.body.as_str().unwrap();
    assert!(html.contains("id=\"exceptions\""), "{html}");
    assert!(html.contains(&id) && html.contains("CVE-2024-3094") && html.contains("approved"));
}
