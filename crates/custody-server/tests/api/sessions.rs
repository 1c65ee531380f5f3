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
    let html = page.body.as_str().unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .replace(':', "%3A");
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
