//! Reviews that must not count, or must be had: a review posted without the session's
//! CSRF field (or signed out) changes nothing, and a break-glass promotion stays flagged
//! on the board until someone other than who broke glass reviews it.

use fantoccini::Locator;

use super::browser::*;
use super::common::*;
use super::demo_with_a_waiting_promotion;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_without_the_sessions_csrf_field_changes_nothing() {
    let (_temp, data, server, id) = demo_with_a_waiting_promotion();
    let alice = token(&data, "alice", &[]);
    until_servers_see_local_writes();
    let size = || ledger_size(&data);
    let before = size();
    // The board keeps itself current without a script: the browser reloads it.
    let alice_session = session_cookie(&server.base, &alice).await;
    let board = http()
        .get(format!("{}/", server.base))
        .header("cookie", alice_session.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(board.status().as_u16(), 200);
    assert_eq!(board.headers()["refresh"], "30");
    // Signing in behind a TLS proxy marks the session cookie Secure; directly, it cannot be.
    for (proto, secure) in [(None, false), (Some("https"), true)] {
        let cookie = sign_in_http(&server.base, &alice, proto).await;
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        assert_eq!(cookie.contains("; Secure"), secure, "{cookie}");
    }
    // A page on another site posting the form with the approver's cookie (as a browser
    // without SameSite would send it) but without the session's CSRF value.
    let forged = http()
        .post(format!("{}/promotions/{id}/review", server.base))
        .header("cookie", alice_session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=sha256%3A00&verdict=approve&rationale=lgtm&risk=low")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    assert!(forged.text().await.unwrap().contains("CSRF"));
    assert_eq!(size(), before, "a forged review changed the ledger");
    // Signed out, a review is not taken either.
    let anonymous = http()
        .post(format!("{}/promotions/{id}/review", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=&verdict=approve&rationale=x&risk=low")
        .send()
        .await
        .unwrap();
    assert!(anonymous.url().path().ends_with("/login"));
    assert_eq!(size(), before);
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_break_glass_promotion_stays_flagged_until_someone_else_reviews_it() {
    let (_temp, data, server, _) = demo_with_a_waiting_promotion();
    // Olga, on call, breaks glass: shop@1.2.0 into production without its two approvals.
    let out = olga_breaks_glass(
        &data,
        "shop@1.2.0",
        "checkout is down, 1.2.0 has the fix",
        &["--json"],
    );
    expect_code(&out, 0);
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = done["promotion"]["id"].as_str().unwrap().to_owned();
    let (olga, alice) = (token(&data, "olga", &[]), token(&data, "alice", &[]));
    let mine = token(&data, &operator(&data), &[]);
    until_servers_see_local_writes();
    let base = server.base.clone();
    let (_driver, c) = browser().await;

    // The board flags it in production.
    sign_in(&c, &base, &alice).await;
    assert_eq!(
        text(&c, "section[data-env=production] .release").await,
        "shop@1.2.0"
    );
    let flagged = text(
        &c,
        &format!("section[data-env=production] .reviews-due li[data-promotion='{id}']"),
    )
    .await;
    assert!(
        flagged.contains("by olga") && flagged.contains("past approvals"),
        "{flagged}"
    );
    screenshot(&c, "board-break-glass").await;
    click(
        &c,
        &format!(".reviews-due li[data-promotion='{id}'] a"),
        "#break-glass",
    )
    .await;
    let banner = text(&c, "#break-glass").await;
    assert!(
        banner.contains("checkout is down") && banner.contains("review by someone else is due"),
        "{banner}"
    );
    assert!(text(&c, "#gates").await.contains("approvals overridden"));
    screenshot(&c, "promotion-break-glass").await;
    sign_out(&c).await;

    // Olga, who broke it, sees the flag but is offered no review (the use case refuses her
    // too: `flows.rs`).
    sign_in(&c, &base, &olga).await;
    c.goto(&format!("{base}/promotions/{id}")).await.unwrap();
    assert!(text(&c, "#break-glass").await.contains("olga"));
    assert!(c.find(Locator::Css("#review")).await.is_err());
    sign_out(&c).await;

    // The operator, an approver signed in with their own token, reviews it after the
    // fact; the flag goes.
    sign_in(&c, &base, &mine).await;
    c.goto(&format!("{base}/promotions/{id}")).await.unwrap();
    type_into(
        &c,
        "#review textarea",
        "the hotfix diff is what was deployed",
    )
    .await;
    click(&c, "#approve", "#reviews, #notice").await;
    if let Ok(notice) = c.find(Locator::Css("#notice")).await {
        panic!("the review was refused: {}", notice.text().await.unwrap());
    }
    assert!(
        text(&c, "#break-glass")
            .await
            .contains("Reviewed after the fact")
    );
    assert!(c.find(Locator::Css("#review")).await.is_err());
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(c.find(Locator::Css(".reviews-due")).await.is_err());
    screenshot(&c, "board-break-glass-reviewed").await;
    c.close().await.unwrap();
    assert!(server.stop().success());
}
