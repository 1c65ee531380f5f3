//! Signing in to the dashboard through the organisation's OpenID Provider, against a real
//! one (the OpenID-certified `oidc-provider` package run with Node.js: tests/oidc_provider)
//! on another site than custody (`localhost` against custody's `127.0.0.1`), in a real
//! headless Chromium: sign in at the provider, land on the board as the mapped principal,
//! approve a promotion (an OIDC sign-in is the person's own credential, so the approval
//! counts, where a token an admin made for them does not), and sign out.
//!
//! Over HTTP, each check of the callback: a replayed callback, a wrong state, a code from
//! another browser's sign-in, a tampered code, a code bound to another PKCE verifier, a
//! denial at the provider, a forged begin form, and an unreachable provider are all
//! refused with a page saying why, and start no session.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod browser;
mod common;
mod oidc_provider;

use std::path::PathBuf;

use browser::*;
use common::stepping_client as client;
use common::*;
use oidc_provider::{free_port, log_in};

const SECRET: &str = "a client secret only custody and the provider know";

/// An instance whose dashboard signs people in through a fresh provider.
struct Instance {
    _temp: tempfile::TempDir,
    data: PathBuf,
    server: Server,
    _provider: Option<Helper>,
    issuer: String,
}

/// `custody init`, `[dashboard.sign_in]` naming a provider started for it (or, with
/// `unreachable`, a port nobody listens on), and `custody serve`.
fn instance(unreachable: bool) -> Instance {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    expect_code(&run(custody().args(["init", "--data-dir"]).arg(&data)), 0);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let redirect = format!("{base}/login/oidc/callback");
    let (provider, issuer) = if unreachable {
        (None, format!("http://127.0.0.1:{}", free_port()))
    } else {
        let (p, issuer) = oidc_provider::start("localhost", "custody", SECRET, &redirect);
        (Some(p), issuer)
    };
    std::fs::write(data.join("oidc-client-secret"), format!("{SECRET}\n")).unwrap();
    let config = data.join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        r#"
[dashboard.sign_in]
name = "Acme SSO"
issuer = "{issuer}"
client_id = "custody"
client_secret_file = "oidc-client-secret"
redirect_url = "{redirect}"
scopes = ["openid", "email"]
insecure_http = true

[[dashboard.sign_in.rule]]
claims = {{ email = "alice@acme.example" }}
principal = "{{sub}}"
"#
    ));
    std::fs::write(&config, text).unwrap();
    let server = Server::spawn(
        custody()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(&data)
            .stderr(std::process::Stdio::null()),
    );
    assert_eq!(server.base, base);
    Instance {
        _temp: temp,
        data,
        server,
        _provider: provider,
        issuer,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_signs_in_at_the_provider_approves_as_themselves_and_signs_out() {
    let i = instance(false);
    let (data, base) = (&i.data, i.server.base.clone());
    expect_code(&run(custody().args(["demo", "--data-dir"]).arg(data)), 0);
    let out = run(custody()
        .args([
            "promote",
            "shop@1.2.0",
            "--to",
            "staging",
            "--json",
            "--data-dir",
        ])
        .arg(data)
        .env("CUSTODY_TOKEN", token(data, "rita", &[])));
    expect_code(&out, 1);
    let pending: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = pending["promotion"]["id"].as_str().unwrap().to_owned();
    let minted = token(data, "alice", &[]);
    until_servers_see_local_writes();
    let (_driver, c) = browser().await;

    // With the token an admin made for her, alice's approval is not hers alone.
    sign_in(&c, &base, &minted).await;
    c.goto(&format!("{base}/promotions/{id}")).await.unwrap();
    type_into(&c, "#review textarea", "looks fine").await;
    click(&c, "#approve", "#reviews, #notice").await;
    assert!(text(&c, "#notice").await.contains("own credential"));
    sign_out(&c).await;

    // Through the provider: its own login and consent forms, on its own site.
    assert_eq!(text(&c, "#sign-in-oidc").await, "Sign in with Acme SSO");
    screenshot(&c, "oidc-sign-in-page").await;
    click(&c, "#sign-in-oidc", "input[name=login]").await;
    let at = c.current_url().await.unwrap();
    assert_eq!(at.host_str(), Some("localhost"), "{at}");
    type_into(&c, "input[name=login]", "alice").await;
    type_into(&c, "input[name=password]", "correct horse battery staple").await;
    click(
        &c,
        "button.login-submit",
        "input[name=prompt][value=consent]",
    )
    .await;
    screenshot(&c, "oidc-provider-consent").await;
    click(&c, "button.login-submit", "div.board").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/");
    let who = text(&c, "span.who").await;
    assert!(
        who.starts_with("alice · ") && who.contains("approver"),
        "{who}"
    );
    screenshot(&c, "oidc-signed-in").await;

    // Her approval through the provider's sign-in is hers: the promotion is certified.
    c.goto(&format!("{base}/promotions/{id}")).await.unwrap();
    type_into(&c, "#review textarea", "checked the rollout plan").await;
    click(&c, "#approve", "#reviews, #notice").await;
    if let Ok(notice) = c.find(fantoccini::Locator::Css("#notice")).await {
        panic!("the approval was refused: {}", notice.text().await.unwrap());
    }
    assert_eq!(text(&c, "#status").await, "certified");

    // The ledger records how she approved: through the provider, as her subject there.
    let out = run(custody()
        .args(["log", "entries", "--json", "--data-dir"])
        .arg(data));
    expect_code(&out, 0);
    let reviewed = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"].clone())
        .filter(|e| e["type"] == "approval.recorded" && e["promotion"] == id.as_str())
        .collect::<Vec<_>>();
    assert_eq!(
        reviewed.len(),
        1,
        "only the approval that counted: {reviewed:?}"
    );
    assert_eq!(reviewed[0]["actor"], "alice");
    assert_eq!(reviewed[0]["auth"]["method"], "oidc");
    assert_eq!(reviewed[0]["auth"]["issuer"], i.issuer.as_str());
    assert_eq!(reviewed[0]["auth"]["subject"], "alice");

    // Signing out ends the session's record: its cookie leads to the sign-in page.
    let session = c.get_named_cookie("custody_session").await.unwrap();
    let cookie = format!("custody_session={}", session.value());
    let before = client()
        .get(format!("{base}/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(before.status(), 200);
    sign_out(&c).await;
    let after = client()
        .get(format!("{base}/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(after.status().is_redirection());
    assert_eq!(after.headers()["location"], "/login");
}

/// Posts the sign-in page's "Sign in with …" form as a browser does.
async fn post_begin(base: &str) -> reqwest::Response {
    let (cookie, csrf) = login_form(&client(), base).await;
    client()
        .post(format!("{base}/login/oidc"))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap()
}

/// Begins a sign-in as a browser: its flight cookie and the provider's authorization URL.
async fn begin(base: &str) -> (String, String) {
    let r = post_begin(base).await;
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with("custody_oidc="), "{set}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/login/oidc"] {
        assert!(set.contains(attribute), "{set}");
    }
    let authorize = r.headers()["location"].to_str().unwrap().to_owned();
    let url = reqwest::Url::parse(&authorize).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["code_challenge"].len(), 43);
    assert!(query["state"].len() >= 43 && query["nonce"].len() >= 43);
    assert!(!query.contains_key("code_verifier"));
    (set.split(';').next().unwrap().to_owned(), authorize)
}

/// The callback `url` as the browser holding `cookie` (none: another browser) sends it:
/// its status, page and the session cookie's `Max-Age`; asserts it started a session
/// exactly when it answered 200.
async fn callback(url: &str, cookie: Option<&str>) -> (u16, String, Option<i64>) {
    let mut request = client().get(url);
    if let Some(c) = cookie {
        request = request.header("cookie", c);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("custody_session="));
    let max_age = session.as_ref().map(|c| {
        let at = c.find("Max-Age=").unwrap() + "Max-Age=".len();
        let digits: String = c[at..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().unwrap()
    });
    let page = r.text().await.unwrap();
    assert_eq!(session.is_some(), status == 200, "{status}: {page}");
    (status, page, max_age)
}

/// `url` with its query parameter `name` set to `value`.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut u = reqwest::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == name {
                (k, value.to_owned())
            } else {
                (k, v)
            }
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

fn param(url: &str, name: &str) -> String {
    let u = reqwest::Url::parse(url).unwrap();
    u.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_counts_once_for_the_browser_that_began_it_and_is_checked() {
    let i = instance(false);
    let base = i.server.base.clone();

    // A sign-in completes once: its callback again, or from another browser, is refused.
    let (flight, authorize) = begin(&base).await;
    let back = log_in(&authorize, "alice", &base, false).await;
    let (status, page, max_age) = callback(&back, Some(&flight)).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Signed in as <strong>alice</strong>"),
        "{page}"
    );
    // The session lasts as long as the provider's ID token (15 minutes there), not the
    // 12 hours of `session_lifetime`: then the person signs in at the provider again.
    let max_age = max_age.unwrap();
    assert!((800..=900).contains(&max_age), "Max-Age={max_age}");
    let (status, page, _) = callback(&back, Some(&flight)).await;
    assert_eq!(status, 400);
    assert!(page.contains("already completed"), "{page}");
    assert_eq!(callback(&back, None).await.0, 400);

    // A wrong state is refused, and spends the sign-in: the right one after it is too.
    let (flight, authorize) = begin(&base).await;
    let back = log_in(&authorize, "alice", &base, false).await;
    let (status, page, _) = callback(&with_param(&back, "state", "forged"), Some(&flight)).await;
    assert_eq!(status, 400);
    assert!(page.contains("state differs"), "{page}");
    assert_eq!(callback(&back, Some(&flight)).await.0, 400);

    // A code from another browser's sign-in, delivered to this browser (login CSRF).
    let (mine, _) = begin(&base).await;
    let (_, theirs) = begin(&base).await;
    let back = log_in(&theirs, "alice", &base, false).await;
    let (status, page, _) = callback(&back, Some(&mine)).await;
    assert_eq!(status, 400);
    assert!(page.contains("state differs"), "{page}");

    // A tampered code: the provider refuses it at the token endpoint.
    let (flight, authorize) = begin(&base).await;
    let back = log_in(&authorize, "alice", &base, false).await;
    let tampered = with_param(&back, "code", &format!("{}x", param(&back, "code")));
    let (status, page, _) = callback(&tampered, Some(&flight)).await;
    assert_eq!(status, 401);
    assert!(page.contains("code: invalid_grant"), "{page}");

    // A real code, with the state of another flight: that flight's PKCE verifier is not
    // the one the code was issued for, and the provider refuses the exchange.
    let (one, first) = begin(&base).await;
    let (two, second) = begin(&base).await;
    let back = log_in(&first, "alice", &base, false).await;
    let crossed = with_param(&back, "state", &param(&second, "state"));
    let (status, page, _) = callback(&crossed, Some(&two)).await;
    assert_eq!(status, 401);
    assert!(page.contains("invalid_grant"), "{page}");
    drop(one);

    // The person cancels at the provider.
    let (flight, authorize) = begin(&base).await;
    let back = log_in(&authorize, "alice", &base, true).await;
    let (status, page, _) = callback(&back, Some(&flight)).await;
    assert_eq!(status, 401);
    assert!(
        page.contains("Acme SSO did not sign you in: access_denied"),
        "{page}"
    );

    // Someone the provider knows but no rule maps to a principal.
    let (flight, authorize) = begin(&base).await;
    let back = log_in(&authorize, "mallory", &base, false).await;
    let (status, page, _) = callback(&back, Some(&flight)).await;
    assert_eq!(status, 401);
    assert!(page.contains("no [[dashboard.sign_in.rule]]"), "{page}");

    // A begin form from another site (no CSRF cookie) begins nothing.
    let r = client()
        .post(format!("{base}/login/oidc"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("location").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_is_a_clear_page_and_tokens_still_sign_in() {
    let i = instance(true);
    let base = i.server.base.clone();
    let r = post_begin(&base).await;
    assert_eq!(r.status(), 503);
    let page = r.text().await.unwrap();
    assert!(
        page.contains(&format!(
            "the sign-in provider {} cannot be used now",
            i.issuer
        )),
        "{page}"
    );
    let me = operator(&i.data);
    let mine = token(&i.data, &me, &[]);
    until_servers_see_local_writes();
    assert!(
        session_cookie(&base, &mine)
            .await
            .starts_with("custody_session=")
    );
}
