//! Deny by default, walked from the routes the server itself declares: every API route in
//! the OpenAPI document (which the router is built from) and every dashboard page in
//! `PAGES`, signed out and as every role, against the permission the route declares. A new
//! route cannot ship unprotected: it is walked as soon as it exists. Public routes are an
//! explicit list here; a guarded route allows exactly the roles its permission names, and
//! no answer to anyone is ever a 5xx.

use custody_app::{Clock as _, Permission};
use serde_json::Value;

use crate::support::{Backend, PRINCIPALS, TestServer, concrete};

/// The routes anyone may call. A route missing a permission that is not listed here fails.
const PUBLIC: [&str; 8] = [
    "GET /healthz",
    "GET /readyz",
    "GET /api/v1/openapi.json",
    "GET /api/v1/log/checkpoint",
    "POST /api/v1/log/cosignature",
    "GET /api/v1/log/proof/inclusion",
    "GET /api/v1/log/proof/consistency",
    "GET /api/v1/log/handovers",
];

/// The permission an operation of the OpenAPI document declares (`None`: public).
fn declared(operation: &Value) -> Option<Permission> {
    let id = operation[custody_server::PERMISSION_EXTENSION]["id"].as_str()?;
    Some(
        Permission::ALL
            .into_iter()
            .find(|p| format!("{p:?}") == id)
            .unwrap_or_else(|| panic!("unknown permission {id}")),
    )
}

/// The roles the test policy gives `principal` (as `Authenticated` carries them).
async fn roles_of(server: &TestServer, principal: &str) -> Vec<String> {
    server
        .state
        .app
        .authenticate(server.token(principal), crate::support::now())
        .await
        .unwrap()
        .roles
}

async fn walk_the_api(backend: Backend) {
    let server = TestServer::start(backend).await;
    let doc = serde_json::to_value(custody_server::openapi()).unwrap();
    let mut walked = 0;
    let mut denials = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let route = format!("{method} {path}");
            let url = concrete(path);
            let body = (method != "GET").then_some("{}");
            walked += 1;
            let Some(permission) = declared(operation) else {
                assert!(
                    PUBLIC.contains(&route.as_str()),
                    "{route} declares no permission and is not on the public list"
                );
                for token in [None, Some(server.token("nobody"))] {
                    let a = server.call(&method, &url, token, body, &[]).await;
                    assert!(
                        !matches!(a.status.as_u16(), 401 | 403 | 405) && a.status.as_u16() < 500,
                        "public {route}: {} {}",
                        a.status,
                        a.body
                    );
                }
                continue;
            };
            assert!(
                !PUBLIC.contains(&route.as_str()),
                "{route} is public and guarded"
            );
            let signed_out = server.call(&method, &url, None, body, &[]).await;
            assert_eq!(
                signed_out.status, 401,
                "{route} signed out: {}",
                signed_out.body
            );
            assert!(
                signed_out.error().contains("needs a token"),
                "{route}: {}",
                signed_out.body
            );
            for who in PRINCIPALS {
                let a = server
                    .call(&method, &url, Some(server.token(who)), body, &[])
                    .await;
                let refused = a.status == 403 && a.error().contains(" may not ");
                assert!(
                    a.status.as_u16() < 500,
                    "{who} {route}: {} {}",
                    a.status,
                    a.body
                );
                if permission.granted_to(&roles_of(&server, who).await) {
                    assert!(
                        !refused && a.status != 401,
                        "{who} {route}: {} {}",
                        a.status,
                        a.body
                    );
                } else {
                    assert!(
                        refused,
                        "{who} {route}: expected a permission denial, got {} {}",
                        a.status, a.body
                    );
                    assert!(a.error().contains("hint:"), "{}", a.error());
                    denials += 1;
                }
            }
        }
    }
    assert!(walked >= 27, "only {walked} operations documented");
    // Every denial is in the access log: who, what, and that it was a lack of permission.
    let log = server.access_log().await;
    let logged = log
        .iter()
        .filter(|e| e.entry.outcome.starts_with("denied: lacks permission"))
        .count();
    assert_eq!(logged, denials, "not every denial was logged");
    // Each names the token it came with (one per principal here); a request without one
    // names none.
    let mut credentials = std::collections::BTreeMap::new();
    for e in &log {
        if e.entry.outcome.starts_with("denied: lacks permission") {
            assert!(e.entry.credential.starts_with("token tok"), "{:?}", e.entry);
            let first = credentials
                .entry(e.entry.principal.clone())
                .or_insert_with(|| e.entry.credential.clone());
            assert_eq!(*first, e.entry.credential, "{:?}", e.entry);
        }
        if e.entry.status == 401 {
            assert_eq!(e.entry.credential, "", "{:?}", e.entry);
        }
    }
    let distinct: std::collections::BTreeSet<_> = credentials.values().collect();
    assert_eq!(distinct.len(), credentials.len(), "{credentials:?}");
    assert!(log.iter().filter(|e| e.entry.status == 401).count() >= walked - PUBLIC.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_route_allows_exactly_its_roles_sqlite() {
    walk_the_api(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_route_allows_exactly_its_roles_postgres() {
    walk_the_api(Backend::Postgres).await;
}

/// Signs `principal` in to the dashboard; the session cookie.
async fn sign_in(server: &TestServer, principal: &str) -> String {
    server.sign_in(principal).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_page_allows_exactly_its_roles() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut sessions = Vec::new();
    for who in PRINCIPALS {
        sessions.push((
            who,
            sign_in(&server, who).await,
            roles_of(&server, who).await,
        ));
    }
    for page in custody_server::PAGES {
        let url = concrete(page.path);
        let body = (page.method == "POST").then_some("");
        let signed_out = server.call(page.method, &url, None, body, &[]).await;
        let Some(permission) = page.permission else {
            assert!(
                signed_out.status.as_u16() < 500,
                "{page:?}: {}",
                signed_out.status
            );
            continue;
        };
        // Signed out: to the sign-in page, never the content.
        assert!(
            signed_out.status.is_redirection() && signed_out.headers["location"] == "/login",
            "{page:?} signed out: {} {}",
            signed_out.status,
            signed_out.body
        );
        for (who, cookie, roles) in &sessions {
            let a = server
                .call(
                    page.method,
                    &url,
                    None,
                    body,
                    &[("cookie", cookie.as_str())],
                )
                .await;
            assert!(
                a.status.as_u16() < 500,
                "{who} {page:?}: {} {}",
                a.status,
                a.body
            );
            let refused = a.status == 403
                && a.body
                    .as_str()
                    .is_some_and(|html| html.contains(" may not "));
            assert_eq!(
                refused,
                !permission.granted_to(roles),
                "{who} {page:?}: {} {}",
                a.status,
                a.body
            );
        }
    }
    // A method PAGES does not list on a path it does is not served (a handler added to a
    // listed path would otherwise go unwalked).
    for page in custody_server::PAGES {
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            let listed = custody_server::PAGES
                .iter()
                .any(|p| p.path == page.path && p.method == method);
            if !listed {
                let body = (method == "POST").then_some("");
                let a = server
                    .call(method, &concrete(page.path), None, body, &[])
                    .await;
                assert_eq!(a.status, 405, "{method} {}: {}", page.path, a.body);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_review_counts_what_each_role_was_used_for() {
    let server = TestServer::start(Backend::Sqlite).await;
    // A use in the middle of a second (the access log keeps nanoseconds, the review says
    // the second).
    let now = server.clock.now();
    let mid_second = format!(
        "{}.123456789Z",
        now.to_second().to_string().trim_end_matches('Z')
    );
    server.clock.set(mid_second.parse().unwrap());
    let digest = format!("sha256:{}", "a".repeat(64));
    let report =
        format!(r#"{{"environment":"build","digests":["{digest}"],"status":"succeeded"}}"#);
    let a = server
        .call(
            "POST",
            "/api/v1/deploys",
            Some(server.token("argo")),
            Some(&report),
            &[],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    server.access_log().await; // written before the review reads it
    let review = server
        .call(
            "GET",
            "/api/v1/access-review?unused_days=30",
            Some(server.token("audrey")),
            None,
            &[],
        )
        .await;
    assert_eq!(review.status, 200, "{}", review.body);
    let holding = |who: &str, role: &str| {
        review
            .body
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["principal"] == who && h["role"] == role)
            .cloned()
            .unwrap_or_else(|| panic!("no {who}/{role} in {}", review.body))
    };
    assert_eq!(holding("argo", "deployer")["unused"], false);
    // One precision whichever record the use came from: to the second.
    let used = holding("argo", "deployer")["last_used"].clone();
    let used = used.as_str().unwrap_or_else(|| panic!("{used}"));
    assert!(
        used.parse::<custody_model::Timestamp>().is_ok() && !used.contains('.'),
        "{used}"
    );
    // amy never acted, but was granted the role moments ago: new, not a candidate for
    // removal (held for less than the window).
    assert_eq!(holding("amy", "approver")["last_used"], Value::Null);
    assert_eq!(holding("amy", "approver")["unused"], false);
    assert!(
        holding("amy", "approver")["held_since"].is_string(),
        "{}",
        review.body
    );
    // The same as the use case answers on the data directory.
    let local = server
        .state
        .app
        .access_review(crate::support::now(), 30)
        .await
        .unwrap();
    assert_eq!(review.body, serde_json::to_value(&local).unwrap());
    // Only for auditors.
    let refused = server
        .call(
            "GET",
            "/api/v1/access-review",
            Some(server.token("argo")),
            None,
            &[],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert!(refused.error().contains("may not read the access log"));
}
