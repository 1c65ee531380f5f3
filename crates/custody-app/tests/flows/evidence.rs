//! Evidence is what custody read: a digest alone never hides a failing report, a release
//! certified before digests alone stopped counting keeps standing, and the deploy gate
//! follows evidence attached after certification.

use custody_app::attestations::sha256;
use custody_app::{Actor, AttachEvidence};

use super::common::*;
use super::{build_needs, deploy_gate};

/// A JUnit report of shop's two tests, the second `failing` or not.
fn junit(failing: bool) -> AttachEvidence {
    let case = if failing {
        r#"<testcase name="b"><failure message="boom"/></testcase>"#
    } else {
        r#"<testcase name="b"/>"#
    };
    AttachEvidence::with_report(
        "test-results",
        "junit",
        format!(r#"<testsuite name="shop"><testcase name="a"/>{case}</testsuite>"#).as_bytes(),
    )
}

/// ci, signed in locally at `t`.
fn ci(t: &str) -> Actor {
    Actor::new("ci", at(t))
        .unwrap()
        .authenticated_by(custody_model::Authentication::Local { user: "ci".into() })
}

/// A failing test report cannot be hidden behind a newer piece of the same type recorded
/// by its digest alone: the rules read the newest report custody read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_alone_does_not_hide_a_failing_report() {
    let s = setup_policy(&build_needs("test-results")).await;
    let d = s.artifact("shop", "v1", "c1").await;
    s.app
        .attest(&actor("ci"), &d, &junit(true), None)
        .await
        .unwrap();
    // Later, the same type again, as a digest alone.
    s.app
        .attach(
            &actor("ci"),
            &d,
            "test-results",
            "junit",
            sha256(b"trust me"),
            None,
        )
        .await
        .unwrap();
    let r = s.release("1.0.0", &d).await;
    let outcome = s.promoted(&r, "build").await;
    let decision = &outcome.decision.decision;
    assert!(!decision.allowed, "{decision:#?}");
    let tests = decision
        .gates
        .iter()
        .find(|g| g.gate.to_string() == "tests")
        .unwrap_or_else(|| panic!("no tests gate: {decision:#?}"));
    assert!(
        tests.reason.contains("1 of 2 tests failed"),
        "{}",
        tests.reason
    );
}

/// A release certified before a digest alone stopped being evidence keeps standing: the
/// decision that certified it recorded its evidence without saying whether custody read
/// it, and each piece (matched by artifact, type and time) counts as that decision
/// counted it. The same decision recorded today, saying the pieces were digests alone,
/// does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_certified_before_digests_stopped_counting_keeps_standing() {
    let s = setup("").await;
    let (shop, lib) = (
        s.artifact("shop", "shop", "c1").await,
        s.artifact("lib", "lib", "c2").await,
    );
    // Each artifact's test results, by digest alone, at different times.
    for (d, t) in [
        (&shop, "2026-11-10T10:00:00Z"),
        (&lib, "2026-11-10T10:05:00Z"),
    ] {
        let report = sha256(t.as_bytes());
        s.app
            .attach(&ci(t), d, "test-results", "junit", report, None)
            .await
            .unwrap();
    }
    let r = s
        .release_of("1.0.0", &[("shop", &shop), ("lib", &lib)])
        .await;
    let decision = s.promoted(&r, "build").await.decision.id;
    let text = build_needs("test-results");
    s.app
        .apply(&operator(), bundle(&text, &s.builder, Some(&s.release_key)))
        .await
        .unwrap();
    for d in [&shop, &lib] {
        let v = deploy_gate(&s, "build", d).await;
        assert!(!v.allowed, "{v:?}");
        assert!(
            v.reasons[0].contains("only a report's digest was given"),
            "{v:?}"
        );
    }

    // The decision as the version before `read` was kept recorded it.
    let sqlite = s.sqlite().await;
    let (value,): (String,) =
        sqlx::query_as("SELECT value FROM state WHERE kind = 'decision' AND key = ?")
            .bind(&decision)
            .fetch_one(&sqlite)
            .await
            .unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&value).unwrap();
    for artifact in value["facts"]["release"]["artifacts"]
        .as_array_mut()
        .unwrap()
    {
        for piece in artifact["evidence"].as_array_mut().unwrap() {
            assert_eq!(piece["read"], false);
            piece.as_object_mut().unwrap().remove("read");
        }
    }
    sqlx::query("UPDATE state SET value = ? WHERE kind = 'decision' AND key = ?")
        .bind(value.to_string())
        .bind(&decision)
        .execute(&sqlite)
        .await
        .unwrap();
    sqlite.close().await;
    let app = s.reopened().await;
    for d in [&shop, &lib] {
        let v = app
            .verify("build", d, at("2026-11-10T10:00:00Z"))
            .await
            .unwrap();
        assert!(v.allowed, "{v:?}");
    }

    // A piece recorded since, even in the same second as one the decision counted, must
    // have been read.
    app.attach(
        &ci("2026-11-10T10:00:00Z"),
        &shop,
        "sbom",
        "cyclonedx",
        sha256(b"{}"),
        None,
    )
    .await
    .unwrap();
    let text = text.replace("[\"test-results\"]", "[\"test-results\", \"sbom\"]");
    app.apply(&operator(), bundle(&text, &s.builder, Some(&s.release_key)))
        .await
        .unwrap();
    let v = app
        .verify("build", &shop, at("2026-11-10T10:00:00Z"))
        .await
        .unwrap();
    assert!(!v.allowed, "{v:?}");
    assert!(
        v.reasons[0].contains("sbom") && v.reasons[0].contains("only a report's digest was given"),
        "{v:?}"
    );
}

/// The deploy gate's cached answer follows the evidence: a failing test report attached to
/// a certified artifact closes the gate at once (the cache is stamped with the artifact
/// records' versions), and a passing rerun opens it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_gate_follows_evidence_attached_after_certification() {
    let s = setup_policy(&build_needs("test-results")).await;
    let d = s.artifact("shop", "v1", "c1").await;
    s.app
        .attest(&actor("ci"), &d, &junit(false), None)
        .await
        .unwrap();
    let r = s.release("1.0.0", &d).await;
    assert!(s.promoted(&r, "build").await.decision.decision.allowed);
    // Asked twice: the second answer is the cached one.
    for _ in 0..2 {
        assert!(deploy_gate(&s, "build", &d).await.allowed);
    }
    s.app
        .attest(&actor("ci"), &d, &junit(true), None)
        .await
        .unwrap();
    let v = deploy_gate(&s, "build", &d).await;
    assert!(!v.allowed, "{v:?}");
    assert!(v.reasons[0].contains("1 of 2 tests failed"), "{v:?}");
    s.app
        .attest(&actor("ci"), &d, &junit(false), None)
        .await
        .unwrap();
    assert!(deploy_gate(&s, "build", &d).await.allowed);
}
