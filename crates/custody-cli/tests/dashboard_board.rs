//! The pipeline board in a real headless Chromium, on a `custody demo` instance: it answers
//! "can I trust what runs here?" at a glance (running versus certified, signature,
//! provenance, evidence and approval badges, recent rejections and rollbacks), marks a
//! drifted environment, counts alerts in the navigation and offers a viewer no page they
//! may not open. Screenshots at 1400×900 are kept in target/tmp/dashboard/.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod browser;
mod common;

use browser::*;
use common::*;
use fantoccini::Locator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_shows_running_against_certified_with_badges_and_marks_drift() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let server = Server::start(&data);
    expect_code(&run(custody().args(["demo", "--data-dir"]).arg(&data)), 0);
    let alice = token(&data, "alice", &[]);
    let vic = token(&data, "vic", &[]);
    let argo = token(&data, "argo", &[]);
    until_servers_see_local_writes();
    let base = server.base.clone();
    let (_driver, c) = browser().await;

    sign_in(&c, &base, &alice).await;
    // Staging: shop@1.2.0 certified with two approvals of one needed... as the demo's
    // decision recorded them, signed, with provenance and passing evidence, and running.
    let staging = "section[data-env=staging]";
    assert_eq!(text(&c, &format!("{staging} .release")).await, "shop@1.2.0");
    let signature = text(&c, &format!("{staging} [data-badge=signature]")).await;
    // The signing key by the name and holder the demo's policy gives it, its id on hover.
    assert_eq!(signature, "✓ signed: release signer");
    let signature_title = c
        .find(Locator::Css(&format!("{staging} [data-badge=signature]")))
        .await
        .unwrap()
        .attr("title")
        .await
        .unwrap()
        .unwrap();
    assert!(
        signature_title.contains("release signer (release signer, held by rita; key id "),
        "{signature_title}"
    );
    let provenance = c
        .find(Locator::Css(&format!("{staging} [data-badge=provenance]")))
        .await
        .unwrap();
    assert_eq!(
        provenance.attr("class").await.unwrap().as_deref(),
        Some("badge v-passed")
    );
    let evidence = text(&c, &format!("{staging} [data-badge=evidence]")).await;
    assert!(
        evidence.starts_with("✓ evidence ") && evidence.ends_with(" passed"),
        "{evidence}"
    );
    let approvals = text(&c, &format!("{staging} [data-badge=approvals]")).await;
    assert_eq!(approvals, "approvals 1 of 1");
    assert!(
        text(&c, &format!("{staging} .running"))
            .await
            .contains("✓ matches certified")
    );
    assert_eq!(text(&c, &format!("{staging} .health")).await, "in sync");

    // Production: rolled back to 1.0.0 after 1.2.0's rollout failed; 1.1.0 was rejected.
    let production = "section[data-env=production]";
    assert_eq!(
        text(&c, &format!("{production} .release")).await,
        "shop@1.0.0"
    );
    assert!(
        text(&c, &format!("{production} .certified"))
            .await
            .contains("rolled back to")
    );
    let running = text(&c, &format!("{production} .running")).await;
    assert!(running.contains("✗ rollout failed"), "{running}");
    // What failed to roll out is not what is certified: said, and its digests marked.
    assert!(
        running.contains("May still run what failed to roll out, not shop@1.0.0"),
        "{running}"
    );
    assert!(
        c.find(Locator::Css(&format!("{production} .running li.drifted")))
            .await
            .is_ok()
    );
    let recent = text(&c, &format!("{production} ul.recent")).await;
    assert!(
        recent.contains("rolled back shop@1.2.0") && recent.contains("rejected shop@1.1.0"),
        "{recent}"
    );
    // The demo raised alerts (the failed rollout, the rollback): the navigation counts them.
    let count: u32 = text(&c, "header nav a[href='/alerts'] #alert-count")
        .await
        .parse()
        .unwrap();
    assert!(count > 0);
    // The footer's time is to the second, like every time people read.
    let as_of = text(&c, "#as-of time").await;
    assert_eq!(as_of.len(), "2026-11-30T08:00:00Z".len(), "{as_of}");
    assert!(as_of.parse::<custody_model::Timestamp>().is_ok(), "{as_of}");
    screenshot(&c, "board-1400x900").await;

    // Argo reports a digest in staging that was never certified there: drift, in red.
    let rogue = format!("sha256:{}", "d1".repeat(32));
    let out = run(custody()
        .args([
            "deploy",
            "report",
            "--env",
            "staging",
            "--status",
            "succeeded",
        ])
        .args(["--digest", &rogue, "--data-dir"])
        .arg(&data)
        .env("CUSTODY_TOKEN", &argo));
    expect_code(&out, 0);
    until_servers_see_local_writes();
    c.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(text(&c, &format!("{staging} .health")).await, "drift");
    let running = c
        .find(Locator::Css(&format!("{staging} .running")))
        .await
        .unwrap();
    assert_eq!(
        running.attr("class").await.unwrap().as_deref(),
        Some("running drift")
    );
    let drifted = text(&c, &format!("{staging} .running li.drifted code")).await;
    assert_eq!(drifted, format!("sha256:{}", "d1".repeat(6)));
    assert!(
        c.find(Locator::Css("section[data-env=test] .running.drift"))
            .await
            .is_err(),
        "only staging drifted"
    );
    screenshot(&c, "board-drift-1400x900").await;

    // The release certified in staging, asked for there again: it waits on an approval,
    // but nothing waits on it, and the card says so.
    let rita = token(&data, "rita", &[]);
    let again = run(custody()
        .args(["promote", "shop@1.2.0", "--to", "staging", "--data-dir"])
        .arg(&data)
        .env("CUSTODY_TOKEN", &rita));
    expect_code(&again, 1);
    until_servers_see_local_writes();
    c.goto(&format!("{base}/")).await.unwrap();
    let moot = text(&c, &format!("{staging} ul.pending li.moot")).await;
    assert!(
        moot.contains("shop@1.2.0") && moot.contains("already certified here by another promotion"),
        "{moot}"
    );
    sign_out(&c).await;

    // A viewer may not open the access review, so the navigation does not offer it.
    sign_in(&c, &base, &vic).await;
    assert!(
        c.find(Locator::Css("header nav a[href='/access']"))
            .await
            .is_err()
    );
    assert!(
        c.find(Locator::Css("header nav a[href='/history']"))
            .await
            .is_ok()
    );
}
