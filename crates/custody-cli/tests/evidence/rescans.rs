//! Scans attached after a release is certified, through a running server: a re-scan that
//! clears a critical finding is announced; a nightly scan that finds one undoes the
//! certification (the gate, an alert, the board, the metrics) until a fixed release is
//! certified, and an exception asked for meanwhile can be withdrawn.

use serde_json::Value;

use super::common::*;
use super::{JUNIT_PASSING, SARIF_CLEAN, SBOM_MIT, TRIVY_CLEAN, TRIVY_CRITICAL, World};

/// Whoever may attach evidence can attach a "re-scan" that clears a critical finding (a
/// genuine one after a fix looks the same to custody): it replaces the last scan of that
/// image for the gates, so custody announces it, critical, naming both reports and who
/// attached each. A scan that finds no fewer findings raises nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescan_that_clears_a_critical_finding_is_announced() {
    let w = World::new();
    let good = [JUNIT_PASSING, SARIF_CLEAN, TRIVY_CLEAN, SBOM_MIT];
    let (code, p, digest) = w.release("1.0.0", good);
    assert_eq!(code, 0, "{p:#}");
    let server = Server::start(&w.data);
    *w.server.borrow_mut() = Some(server.base.clone());
    // A scan with more findings than the last clears nothing.
    expect_code(
        &w.attest(&digest, "trivy", "vulnerability-scan", TRIVY_CRITICAL),
        0,
    );
    let hand_made = TRIVY_CLEAN.replace("\"SchemaVersion\": 2", "\"SchemaVersion\":  2");
    expect_code(
        &w.attest(&digest, "trivy", "vulnerability-scan", &hand_made),
        0,
    );
    let report = |text: &str| {
        format!(
            "sha256:{}",
            custody_app::attestations::sha256(text.as_bytes()).hex()
        )
    };
    let alerts: Vec<Value> = poll_history(
        &w,
        &[
            "history",
            "--json",
            "--type",
            "alert.raised",
            "--limit",
            "0",
        ],
        |history| {
            let alerts: Vec<Value> = history
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["event"]["rule"] == "findings-cleared")
                .cloned()
                .collect();
            (!alerts.is_empty()).then_some(alerts)
        },
    )
    .await;
    assert_eq!(alerts.len(), 1, "one clearing, one alert: {alerts:#?}");
    let alert = &alerts[0]["event"];
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["subject"]["replaced"], report(TRIVY_CRITICAL));
    assert_eq!(alert["subject"]["report"], report(&hand_made));
    assert_eq!(
        alert["subject"]["cleared"],
        serde_json::json!(["1 critical vulnerability"])
    );
    let text = alert["text"].as_str().unwrap();
    assert!(
        text.starts_with("ci-bot attached a trivy report of ")
            && text
                .contains("(shop) that clears 1 critical vulnerability the one ci-bot attached at"),
        "{text}"
    );
}

/// A nightly scan finds a fixable critical CVE in what production runs: over HTTP, the
/// deploy gate then denies it naming the CVE, a critical alert is raised, the board marks
/// it, and the metrics count the finding open; the fixed release closes its window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nightly_scan_undoes_a_certified_release_until_a_fixed_one_is_certified() {
    let w = World::new();
    let good = [JUNIT_PASSING, SARIF_CLEAN, TRIVY_CLEAN, SBOM_MIT];
    let (code, p, digest) = w.release("1.0.0", good);
    assert_eq!(code, 0, "{p:#}");
    let server = Server::start(&w.data);
    *w.server.borrow_mut() = Some(server.base.clone());
    let verify = |digest: &str| w.run(&["verify", "--env", "production", digest], "auditor");
    expect_code(&verify(&digest), 0);
    let findings = |samples: &[Value], severity: &str| {
        metric(
            samples,
            "custody_open_findings",
            &[("environment", "production"), ("severity", severity)],
        )
    };
    let samples = scrape_metrics(&server.base, &w.tokens["auditor"]).await;
    assert_eq!(findings(&samples, "critical"), 0.0);

    // The nightly scan, attached through the server, which keeps it: it can be fetched
    // back, byte for byte.
    expect_code(
        &w.attest(&digest, "trivy", "vulnerability-scan", TRIVY_CRITICAL),
        0,
    );
    let scan = format!(
        "sha256:{}",
        custody_app::attestations::sha256(TRIVY_CRITICAL.as_bytes()).hex()
    );
    assert_eq!(w.ok(&["report", &scan], "auditor"), TRIVY_CRITICAL);
    let denied = verify(&digest);
    expect_code(&denied, 1);
    assert!(
        stdout(&denied).contains("CVE-2021-23337"),
        "{}",
        stdout(&denied)
    );
    // The server's follower raises the alert once it has read the new entry.
    let alert = poll_history(&w, &["history", "--json", "--limit", "20"], |history| {
        history
            .as_array()
            .into_iter()
            .flatten()
            .map(Value::to_string)
            .find(|e| e.contains("certified-release-no-longer-stands"))
    })
    .await;
    assert!(alert.contains("shop@1.0.0"), "no alert raised: {alert:?}");
    let cookie = session_cookie(&server.base, &w.tokens["auditor"]).await;
    let board = page(&server.base, &cookie, "/").await.text().await.unwrap();
    assert!(
        board.contains("no longer stands") && board.contains("CVE-2021-23337"),
        "{board}"
    );
    // The artifact's page says what each report says, and hands the report over as a
    // download (never rendered).
    let artifact = page(&server.base, &cookie, &format!("/artifacts/{digest}"))
        .await
        .text()
        .await
        .unwrap();
    for said in [
        "2/2 tests passed",
        "no static-analysis results",
        "vulnerabilities: 1 critical (1 with a fix)",
        "1 components, licences: MIT",
    ] {
        assert!(artifact.contains(said), "{said:?} not in {artifact}");
    }
    let download = page(&server.base, &cookie, &format!("/reports/{scan}")).await;
    assert_eq!(download.status(), 200);
    assert_eq!(
        download.headers()["content-type"],
        "application/octet-stream"
    );
    assert!(
        download.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    assert_eq!(download.text().await.unwrap(), TRIVY_CRITICAL);
    let samples = scrape_metrics(&server.base, &w.tokens["auditor"]).await;
    assert_eq!(findings(&samples, "critical"), 1.0);
    let windows = |samples: &[Value]| {
        metric(
            samples,
            "custody_vulnerability_window_seconds_count",
            &[("environment", "production")],
        )
    };
    assert_eq!(windows(&samples), 0.0);

    // The fixed release, certified through the server, closes the window.
    let (code, p, fixed) = w.release("1.0.1", good);
    assert_eq!(code, 0, "{p:#}");
    expect_code(&verify(&fixed), 0);
    let samples = scrape_metrics(&server.base, &w.tokens["auditor"]).await;
    assert_eq!(findings(&samples, "critical"), 0.0);
    assert_eq!(windows(&samples), 1.0);

    // An exception asked for over HTTP can be withdrawn by its requester (and only by a
    // security reviewer otherwise): it then says REVOKED, and the ledger says who and why.
    let asked: Value = serde_json::from_str(&w.ok(
        &[
            "exception",
            "request",
            "--vulnerability",
            "CVE-2021-23337",
            "--release",
            "shop@1.0.0",
            "--plan",
            "upgrade",
            "--owner",
            "team-shop",
            "--due",
            "7d",
            "--expires",
            "14d",
            "--reason",
            "lodash is bundled but never called",
            "--json",
        ],
        "rita",
    ))
    .unwrap();
    let id = asked["id"].as_str().unwrap();
    let refused = w.run(
        &["exception", "revoke", id, "--rationale", "not mine"],
        "auditor",
    );
    expect_refusal(&refused, 1, "takes the security role");
    let revoked = w.ok(
        &[
            "exception",
            "revoke",
            id,
            "--rationale",
            "1.0.1 fixes it instead",
        ],
        "rita",
    );
    assert!(revoked.contains("REVOKED"), "{revoked}");
    let shown = w.ok(&["exception", "show", id], "auditor");
    assert!(
        shown.contains("revoked by rita") && shown.contains("1.0.1 fixes it instead"),
        "{shown}"
    );
    server.stop();
}

/// Reads the history (`args`, as the auditor) every 100 ms, 50 times at most, until `find`
/// finds what it looks for in it; else what `T` is by default.
async fn poll_history<T: Default>(
    w: &World,
    args: &[&str],
    find: impl Fn(&Value) -> Option<T>,
) -> T {
    for _ in 0..50 {
        let history: Value = serde_json::from_str(&w.ok(args, "auditor")).unwrap();
        if let Some(found) = find(&history) {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    T::default()
}
