//! The dashboard in a real headless Chromium (Debian's `chromium`, driven through
//! `chromedriver`; scripts/test.sh installs both): sign in, read the pipeline board, open a
//! promotion, approve it, and see the board change; a viewer sees neither the review form
//! nor a confidential rationale. A screenshot of each page is kept in
//! target/tmp/dashboard/ (CARGO_TARGET_TMPDIR).
//!
//! The parts: [`charts`] (the charts page against the ledger) and [`reviews`] (a review
//! without the CSRF field, a break-glass promotion flagged until reviewed).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod browser;
#[path = "dashboard/charts.rs"]
mod charts;
mod common;
#[path = "dashboard/reviews.rs"]
mod reviews;

use std::path::PathBuf;

use browser::*;
use common::*;
use fantoccini::Locator;

/// A server filled by the demo, whose shop@1.3.0 waits in staging for an approver (asked
/// for by the demo's rita, with no token the operator made, so the operator may approve it):
/// (its directory, the data directory, the server, the promotion).
fn demo_with_a_waiting_promotion() -> (tempfile::TempDir, PathBuf, Server, String) {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let server = Server::start(&data);
    expect_code(&run(custody().args(["demo", "--data-dir"]).arg(&data)), 0);
    let out = run(custody()
        .args([
            "history",
            "--env",
            "staging",
            "--json",
            "--limit",
            "0",
            "--data-dir",
        ])
        .arg(&data));
    expect_code(&out, 0);
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event"])
        .find(|e| e["type"] == "promotion.requested" && e["release"] == "shop@1.3.0")
        .and_then(|e| e["promotion"].as_str())
        .expect("the demo's shop@1.3.0 waits in staging")
        .to_owned();
    (temp, data, server, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_approves_in_the_browser_and_a_viewer_sees_only_what_is_theirs() {
    let (_temp, data, server, id) = demo_with_a_waiting_promotion();
    let alice = token(&data, "alice", &[]);
    // The operator's token for themselves is theirs alone: their approvals count.
    let me = operator(&data);
    let mine = token(&data, &me, &[]);
    let vic = token(&data, "vic", &[]);
    let audrey = token(&data, "audrey", &[]);
    until_servers_see_local_writes();
    let base = server.base.clone();
    let (_driver, c) = browser().await;

    // Signed out, every page leads to the sign-in form; a wrong token is refused there.
    c.goto(&format!("{base}/promotions/{id}")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    type_into(&c, "#token", "cst_nobody_secret").await;
    click(&c, "#sign-in", ".error").await;
    assert!(text(&c, ".error").await.contains("not valid"));
    screenshot(&c, "login-refused").await;

    // The approver's board: four environments, the staging request waiting with the gate
    // that fails marked.
    sign_in(&c, &base, &alice).await;
    let columns = c.find_all(Locator::Css("section.column h2")).await.unwrap();
    let mut names = Vec::new();
    for col in columns {
        names.push(col.text().await.unwrap());
    }
    assert_eq!(names, ["build", "test", "staging", "production"]);
    let waiting = text(
        &c,
        &format!("section[data-env=staging] li[data-promotion='{id}']"),
    )
    .await;
    assert!(
        waiting.contains("shop@1.3.0") && waiting.contains("by rita"),
        "{waiting}"
    );
    assert!(waiting.contains("○ approvals"), "{waiting}");
    assert_eq!(
        text(&c, "section[data-env=production] .release").await,
        "shop@1.0.0",
        "the demo rolled production back"
    );
    screenshot(&c, "board-before").await;

    // The promotion's page: gates, signatures verified, the ledger entry proven.
    click(&c, &format!("li[data-promotion='{id}'] a"), "#status").await;
    assert_eq!(
        c.current_url().await.unwrap().path(),
        format!("/promotions/{id}")
    );
    assert_eq!(text(&c, "#status").await, "pending");
    // Its decision's VSA says FAILED so far: shown as waiting, not as a failure.
    let vsa = c.find(Locator::Css("#vsa-result")).await.unwrap();
    assert_eq!(vsa.text().await.unwrap(), "FAILED");
    assert_eq!(
        vsa.attr("class").await.unwrap().as_deref(),
        Some("pill v-waiting")
    );
    assert!(text(&c, "#vsa").await.contains("the promotion still waits"));
    let gates = text(&c, "#gates").await;
    assert!(gates.contains("approvals waiting"), "{gates}");
    assert!(gates.contains("release-signature pass"), "{gates}");
    // The release's signature verifies with the release signer, shown by name.
    let signatures = text(&c, "#signatures").await;
    assert!(
        signatures
            .contains("✓ release signer (release signer, held by rita), ecdsa-p256 · key id "),
        "{signatures}"
    );
    // custody's key id is the one the Keys page shows; the signer's hint is labelled as such.
    assert!(signatures.contains("signer's key id hint"), "{signatures}");
    // Pending: the decision so far did not pass, and the VSA custody signed says so.
    let vsa = text(&c, "#vsa").await;
    assert!(vsa.contains("✓ signed by custody attestor"), "{vsa}");
    assert_eq!(text(&c, "#vsa-result").await, "FAILED");
    assert!(
        text(&c, "#inclusion")
            .await
            .contains("verified against the signed checkpoint")
    );
    assert!(
        text(&c, "#artifacts")
            .await
            .contains("https://ci.acme.example/builder/v1")
    );
    screenshot(&c, "promotion-pending").await;

    // Alice's token was made by an admin, who saw its secret: her approval with it would
    // not be hers, and the page says so.
    type_into(&c, "#review textarea", "looks fine").await;
    click(&c, "#approve", "#reviews, #notice").await;
    let notice = text(&c, "#notice").await;
    assert!(notice.contains("own credential"), "{notice}");
    assert_eq!(text(&c, "#status").await, "pending");
    sign_out(&c).await;

    // Approve, confidentially, with a credential of one's own.
    sign_in(&c, &base, &mine).await;
    c.goto(&format!("{base}/promotions/{id}")).await.unwrap();
    type_into(&c, "#review textarea", "re-test after the fix passed").await;
    click(&c, "#review input[name=confidential]", "").await;
    click(&c, "#approve", "#reviews, #notice").await;
    if let Ok(notice) = c.find(Locator::Css("#notice")).await {
        panic!("the approval was refused: {}", notice.text().await.unwrap());
    }
    assert_eq!(text(&c, "#status").await, "certified");
    assert_eq!(text(&c, "#vsa-result").await, "PASSED");
    assert!(
        text(&c, "#reviews")
            .await
            .contains("re-test after the fix passed")
    );
    assert!(
        c.find(Locator::Css("#review")).await.is_err(),
        "a decided promotion offers no review"
    );
    screenshot(&c, "promotion-certified").await;

    // The board changed: nothing waits in staging any more.
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(
        c.find(Locator::Css(&format!("li[data-promotion='{id}']")))
            .await
            .is_err()
    );
    assert_eq!(
        text(&c, "section[data-env=staging] .release").await,
        "shop@1.3.0"
    );
    screenshot(&c, "board-after").await;
    sign_out(&c).await;

    // A viewer: the board and the page, but no review form and no confidential rationale.
    sign_in(&c, &base, &vic).await;
    c.goto(&format!("{base}/promotions/{id}")).await.unwrap();
    let reviews = text(&c, "#reviews").await;
    assert!(reviews.contains("(confidential)"), "{reviews}");
    assert!(!reviews.contains("re-test after the fix"), "{reviews}");
    assert!(c.find(Locator::Css("#approve")).await.is_err());
    screenshot(&c, "promotion-as-viewer").await;
    sign_out(&c).await;

    // An auditor reads the confidential rationale.
    sign_in(&c, &base, &audrey).await;
    c.goto(&format!("{base}/promotions/{id}")).await.unwrap();
    assert!(
        text(&c, "#reviews")
            .await
            .contains("re-test after the fix passed")
    );

    // The auditor searches the history by engineer and environment.
    click(&c, "header nav a[href='/history']", "#search").await;
    type_into(&c, "#search input[name=principal]", "carol").await;
    type_into(&c, "#search input[name=env]", "production").await;
    click(&c, "#search-button", "#history, .none").await;
    let rows = c
        .find_all(Locator::Css("#history tr[data-actor]"))
        .await
        .unwrap();
    assert!(!rows.is_empty(), "carol acted in production in the demo");
    for row in &rows {
        assert_eq!(
            row.attr("data-actor").await.unwrap().as_deref(),
            Some("carol")
        );
        assert_eq!(
            row.attr("data-environment").await.unwrap().as_deref(),
            Some("production")
        );
    }
    assert!(
        text(&c, "#history")
            .await
            .contains("rejected shop@1.1.0 → production")
    );
    screenshot(&c, "history-carol-production").await;
    // The same search exported: CSV and JSON with the same events.
    let export = |format: &str| {
        let path = format!("/history.{format}?principal=carol&env=production");
        let base = base.clone();
        let audrey = audrey.clone();
        async move {
            let cookie = session_cookie(&base, &audrey).await;
            let r = page(&base, &cookie, &path).await;
            assert_eq!(r.status().as_u16(), 200);
            r.text().await.unwrap()
        }
    };
    let csv = export("csv").await;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "index,at,type,actor,environment,release,promotion,what"
    );
    let csv_rows: Vec<&str> = lines.collect();
    assert_eq!(csv_rows.len(), rows.len());
    assert!(
        csv_rows.iter().all(|l| l.contains(",carol,production,")),
        "{csv}"
    );
    let json: serde_json::Value = serde_json::from_str(&export("json").await).unwrap();
    assert_eq!(json.as_array().unwrap().len(), rows.len());

    // From the promotion to an artifact's lineage: built from its commit, released,
    // promoted, certified.
    c.goto(&format!("{base}/promotions/{id}")).await.unwrap();
    click(&c, "#artifacts a", "#lineage").await;
    let story = text(&c, "#lineage").await;
    for kind in [
        "artifact.registered",
        "release.created",
        "promotion.requested",
        "environment.certified",
    ] {
        assert!(story.contains(kind), "{kind} missing: {story}");
    }
    assert!(
        text(&c, "#build")
            .await
            .contains("https://git.acme.example/acme/")
    );
    // Build parameters one `name = value` a line, not raw JSON.
    let parameters = text(&c, "#build td.parameters").await;
    assert!(
        parameters.contains(" = ") && !parameters.contains('{'),
        "{parameters}"
    );
    assert!(
        text(&c, "#certified-in")
            .await
            .contains("staging: shop@1.3.0")
    );
    assert!(text(&c, "#releases").await.contains("created shop@1.3.0"));
    screenshot(&c, "artifact-lineage").await;
    // The history found by the start of that artifact's digest, as pages show it, is the
    // one found by the whole digest; a misspelt engineer gets a hint, not a bare "none".
    let url = c.current_url().await.unwrap();
    let digest = url.path().rsplit('/').next().unwrap().replace("%3A", ":");
    let cookie = session_cookie(&base, &audrey).await;
    let history_page = |query: String| {
        let (base, cookie) = (base.clone(), cookie.clone());
        async move {
            let r = page(&base, &cookie, &format!("/history?{query}")).await;
            assert_eq!(r.status().as_u16(), 200);
            r.text().await.unwrap()
        }
    };
    let rows_of = |html: &str| html.matches("data-actor=").count();
    let whole = history_page(format!("artifact={digest}")).await;
    let short = history_page(format!("artifact={}", &digest[..7 + 12])).await;
    assert!(rows_of(&whole) > 0, "{whole}");
    assert_eq!(rows_of(&short), rows_of(&whole), "{short}");
    let too_short = history_page("artifact=sha256%3Aab".to_owned()).await;
    assert!(
        too_short.contains("at least its first 8 hex digits"),
        "{too_short}"
    );
    let misspelt = history_page("principal=Carol".to_owned()).await;
    assert!(misspelt.contains("did you mean carol?"), "{misspelt}");
    // Keys, the access review and the ledger, proven consistent.
    // Keys by name: what each is for, who holds it, its file, since when; hex on hover.
    c.goto(&format!("{base}/keys")).await.unwrap();
    let release = text(&c, "#release-keys").await;
    for shown in [
        "release signer",
        "rita",
        "keys/release-signer.pub",
        "ecdsa-p256",
    ] {
        assert!(release.contains(shown), "{shown}: {release}");
    }
    let builders = text(&c, "#builders").await;
    assert!(
        builders.contains("https://ci.acme.example/builder/v1")
            && builders.contains("keys/builder.pub"),
        "{builders}"
    );
    let people = text(&c, "#person-keys").await;
    assert!(
        people.contains("alice") && people.contains("keys/alice.pub"),
        "{people}"
    );
    assert!(text(&c, "#own-keys").await.contains("custody attestor"));
    // Trusted since the demo put its policy in force: a time to the second, and an age.
    let since = text(&c, "#release-keys tr[data-key-id] td:nth-child(5)").await;
    let (at, age) = since.split_once(' ').unwrap();
    assert!(
        at.parse::<custody_model::Timestamp>().is_ok() && at.len() == 20,
        "{since}"
    );
    assert!(age.starts_with('(') && age.ends_with(')'), "{since}");
    // No 64-digit id on the page's face: twelve digits, the rest on hover.
    let id_cell = c
        .find(Locator::Css(
            "#release-keys tr[data-key-id] td:last-child code",
        ))
        .await
        .unwrap();
    let full = id_cell.attr("title").await.unwrap().unwrap();
    assert_eq!(full.len(), 64);
    assert_eq!(id_cell.text().await.unwrap(), format!("{}…", &full[..12]));
    screenshot(&c, "keys").await;
    c.goto(&format!("{base}/access")).await.unwrap();
    assert!(text(&c, "#access").await.contains("approver"));
    screenshot(&c, "access-review").await;
    c.goto(&format!("{base}/ledger")).await.unwrap();
    let consistency = text(&c, "main").await;
    assert!(consistency.contains("provably extends"), "{consistency}");
    screenshot(&c, "ledger").await;
    c.goto(&format!("{base}/policy")).await.unwrap();
    assert!(text(&c, "#governance").await.contains("security"));
    // How the policy came to be in force: the demo's first version, a bootstrap.
    let versions = text(&c, "#versions").await;
    assert!(
        versions.contains("bootstrap") && versions.contains("in force"),
        "{versions}"
    );
    screenshot(&c, "policy").await;
    c.goto(&format!("{base}/alerts")).await.unwrap();
    // The demo's policy changed in its backfilled past; the server raised the alert on
    // starting, now. The page says when it happened, and when it was raised.
    let happened = c
        .find(Locator::Css("#alerts tr[data-rule=policy-changed] td time"))
        .await
        .unwrap();
    let happened: custody_model::Timestamp = happened
        .attr("datetime")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    let raised = text(&c, "#alerts tr[data-rule=policy-changed] td small").await;
    assert!(raised.starts_with("raised "), "{raised}");
    let raised: custody_model::Timestamp = raised["raised ".len()..].trim().parse().unwrap();
    assert!(
        raised.unix_seconds() - happened.unix_seconds() > 3_600,
        "happened {happened}, raised {raised}"
    );
    // The demo's backfill set the ledger's time back after the instance's first entry (the
    // server's): announced at the first entry set back (newest first: the last row).
    let mut set_back = Vec::new();
    for row in c
        .find_all(Locator::Css("#alerts tr[data-rule=ledger-time-went-back]"))
        .await
        .unwrap()
    {
        set_back.push(row.text().await.unwrap());
    }
    let first = set_back.last().expect("no ledger-time-went-back alert");
    assert!(
        first.contains("ledger entry 1 is stamped") && first.contains("before entry 0"),
        "{set_back:?}"
    );
    screenshot(&c, "alerts").await;
    // The charts count what the ledger records, day by day.
    c.goto(&format!("{base}/charts")).await.unwrap();
    let events = charts::the_charts_count_what_the_ledger_records(&c, &data).await;
    screenshot(&c, "charts").await;
    // The promotion the demo's rollback undid says so, beside its certification.
    let rollback = events
        .iter()
        .find(|e| e["event"]["type"] == "rollback")
        .expect("the demo rolls back");
    let failed = rollback["event"]["failed_promotion"].as_str().unwrap();
    c.goto(&format!("{base}/promotions/{failed}"))
        .await
        .unwrap();
    let status = text(&c, "#status").await;
    let rolled = text(&c, "#rolled-back").await;
    assert_eq!(
        (status.as_str(), rolled.as_str()),
        ("certified", "rolled back")
    );
    sign_out(&c).await;
    // The access review is the auditors': a viewer is refused, and told why.
    sign_in(&c, &base, &vic).await;
    c.goto(&format!("{base}/access")).await.unwrap();
    assert!(
        text(&c, ".error")
            .await
            .contains("may not read the access log")
    );
    c.close().await.unwrap();
    assert!(server.stop().success());
}
