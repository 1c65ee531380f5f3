//! Dashboard sessions: server-side, ended by signing out, signed in only through this
//! site's own form, and pages never framed or cached.

use axum::http::StatusCode;

use crate::support::{Backend, TestServer};

/// `POST path` with a form `body` and an optional cookie: the status and `Set-Cookie`s.
async fn post_form(
    server: &TestServer,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> (StatusCode, Vec<String>) {
    let mut request = axum::http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        request = request.header("cookie", c);
    }
    let request = request
        .body(axum::body::Body::from(body.to_owned()))
        .unwrap();
    let out = tower::ServiceExt::oneshot(server.router.clone(), request)
        .await
        .unwrap();
    let cookies = out
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .collect();
    (out.status(), cookies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_session_and_a_forged_sign_in_is_refused() {
    let server = TestServer::start(Backend::Sqlite).await;
    let cookie = server.sign_in("audrey").await;
    // The cookie is a session id, never the API token.
    assert!(!cookie.contains(server.token("audrey")), "{cookie}");
    let page = server
        .call("GET", "/ledger", None, None, &[("cookie", &cookie)])
        .await;
    assert_eq!(page.status, 200);
    for (name, value) in [("cache-control", "no-store"), ("x-frame-options", "DENY")] {
        assert_eq!(page.headers[name], value);
    }
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    // Sign-out needs the session's CSRF field...
    let (forged, _) = post_form(&server, "/logout", Some(&cookie), "csrf=").await;
    assert_eq!(forged, 403);
    let csrf = csrf_field(&server, &cookie).await;
    let (out, _) = post_form(&server, "/logout", Some(&cookie), &format!("csrf={csrf}")).await;
    assert!(out.is_redirection(), "{out}");
    // ...and then the same cookie, replayed, no longer signs anyone in.
    let after = server
        .call("GET", "/ledger", None, None, &[("cookie", &cookie)])
        .await;
    assert!(after.status.is_redirection(), "{}", after.status);
    assert_eq!(after.headers["location"], "/login");
    // A sign-in posted from elsewhere (no sign-in cookie, no field) starts no session,
    // even with a good token.
    let body = format!("token={}&csrf=", server.token("audrey"));
    let (elsewhere, cookies) = post_form(&server, "/login", None, &body).await;
    assert_eq!(elsewhere, 403);
    assert!(
        cookies.iter().all(|c| !c.starts_with("custody_session=")),
        "{cookies:?}"
    );
}

/// The CSRF field of the forms on a page `cookie`'s session sees, form-encoded.
async fn csrf_field(server: &TestServer, cookie: &str) -> String {
    let page = server
        .call("GET", "/ledger", None, None, &[("cookie", cookie)])
        .await;
    page.body
        .as_str()
        .unwrap()
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .replace(':', "%3A")
}

/// A form's CSRF field is its session's own: another session's, even the same person's
/// from another browser, is refused, so a page that learnt one session's field (or the
/// person's name) cannot post as another session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csrf_field_is_its_own_sessions_and_no_other() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (first, second) = (
        server.sign_in("audrey").await,
        server.sign_in("audrey").await,
    );
    let (first_csrf, second_csrf) = (
        csrf_field(&server, &first).await,
        csrf_field(&server, &second).await,
    );
    assert_ne!(first_csrf, second_csrf, "two sessions, one CSRF field");
    let (crossed, _) = post_form(
        &server,
        "/logout",
        Some(&first),
        &format!("csrf={second_csrf}"),
    )
    .await;
    assert_eq!(crossed, 403);
    let still = server
        .call("GET", "/ledger", None, None, &[("cookie", &first)])
        .await;
    assert_eq!(still.status, 200, "a refused sign-out ended the session");
    let (own, _) = post_form(
        &server,
        "/logout",
        Some(&first),
        &format!("csrf={first_csrf}"),
    )
    .await;
    assert!(own.is_redirection(), "{own}");
}

/// A signed-in reviewer's form that is refused before the page's handler runs (its body
/// did not arrive in time, is over the limit, or is malformed) is recorded under the
/// reviewer (alice), not as an anonymous request (which would be sampled away in a flood).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_form_is_recorded_under_the_signed_in_caller() {
    let settings = custody_server::Settings {
        request_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let server = TestServer::start_with(Backend::Sqlite, settings).await;
    let promotion = server
        .waiting_in_production("1.0.0", &custody_app::attestations::sha256(b"shop 1.0.0"))
        .await;
    let cookie = server.sign_in("alice").await;
    let path = format!("/promotions/{promotion}/review");
    let before = server.size().await;
    let form = |body: axum::body::Body, length: Option<&str>| {
        let mut request = axum::http::Request::builder()
            .method("POST")
            .uri(&path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", &cookie);
        if let Some(length) = length {
            request = request.header("content-length", length);
        }
        request.body(body).unwrap()
    };
    let never = futures_util::stream::pending::<Result<Vec<u8>, std::io::Error>>();
    for (request, status) in [
        (form(axum::body::Body::from_stream(never), None), 408),
        (form(axum::body::Body::empty(), Some("100000000")), 413),
        (form(axum::body::Body::from("decision=%ZZ"), None), 400),
    ] {
        let answer = tower::ServiceExt::oneshot(server.router.clone(), request)
            .await
            .unwrap();
        assert_eq!(answer.status(), status);
    }
    let rows: Vec<(u16, String)> = server
        .access_log()
        .await
        .into_iter()
        .filter(|r| r.entry.path == path)
        .map(|r| (r.entry.status, r.entry.principal))
        .collect();
    assert_eq!(
        rows,
        [408, 413, 400].map(|s| (s, "alice".to_owned())),
        "{rows:?}"
    );
    assert_eq!(server.size().await, before, "a refused form wrote");
}
