//! Deploy reports and rollbacks: drift, a report's size limit, only a clean success
//! verifying a deploy, a failed report rolling back once however often it is retried, and
//! rollbacks that say what they change or refuse when nothing passes.

use custody_app::attestations::sha256;
use custody_app::events::{Event, EventBody};
use custody_app::{AppError, AttachEvidence};
use custody_model::Digest;

use super::common::*;
use super::{build_needs, deploy_gate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_revoked_keys_and_rollbacks_that_skip_or_refuse() {
    let s = setup("").await;
    let (d1, d2, d3) = (
        s.artifact("shop", "v1", "c1").await,
        s.artifact("shop", "v2", "c2").await,
        s.artifact("shop", "v3", "c3").await,
    );
    for (v, d) in [("1.0.0", &d1), ("2.0.0", &d2), ("3.0.0", &d3)] {
        let r = s.release(v, d).await;
        assert!(s.promoted(&r, "build").await.decision.decision.allowed);
    }
    // Drift: a digest running that was never certified.
    let stray = sha256(b"hotfix built on a laptop");
    let report = s
        .app
        .deploy(
            &actor("argo"),
            "build",
            &[d3.clone(), stray.clone()],
            true,
            None,
        )
        .await
        .unwrap();
    assert_eq!(report.drift, vec![stray]);

    // Evidence is now required: 2.0.0 gets it, 1.0.0 does not; 3.0.0 fails to deploy.
    // (A report custody reads: a digest alone is evidence of nothing.)
    let sbom = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"type":"library","name":"left-pad","version":"1.3.0","licenses":[{"license":{"id":"MIT"}}]}]}"#;
    for d in [&d2, &d3] {
        s.app
            .attest(
                &actor("ci"),
                d,
                &AttachEvidence::with_report("sbom", "cyclonedx", sbom),
                None,
            )
            .await
            .unwrap();
    }
    // 1.0.0's SBOM comes as a digest alone: it does not count.
    s.app
        .attach(&actor("ci"), &d1, "sbom", "cyclonedx", sha256(b"{}"), None)
        .await
        .unwrap();
    let text = build_needs("sbom");
    s.app
        .apply(&operator(), bundle(&text, &s.builder, Some(&s.release_key)))
        .await
        .unwrap();
    let failed = async |d: &Digest| {
        let argo = actor("argo");
        let report = s
            .app
            .deploy(&argo, "build", std::slice::from_ref(d), false, None);
        report.await.unwrap()
    };
    let report = failed(&d3).await;
    let rb = report.rollback.unwrap();
    assert_eq!(
        (rb.from.as_str(), rb.to.as_str()),
        ("shop@3.0.0", "shop@2.0.0")
    );
    // 2.0.0 fails too: 1.0.0 no longer passes (no sbom), 3.0.0 failed here: none passes.
    let report = failed(&d2).await;
    assert!(report.rollback.is_none());
    let why = report.rollback_refused.unwrap();
    assert!(
        why.contains("shop@1.0.0")
            && why.contains("only a report's digest was given")
            && why.contains("stays certified"),
        "{why}"
    );
    assert!(deploy_gate(&s, "build", &d2).await.allowed);

    // A release key removed from the policy is a revoked key: the gate closes.
    s.app
        .apply(
            &operator(),
            bundle(
                &text.replace("[[release_key]]\npath = \"keys/release.pub\"\n", ""),
                &s.builder,
                None,
            ),
        )
        .await
        .unwrap();
    let v = deploy_gate(&s, "build", &d2).await;
    assert!(!v.allowed);
    assert!(
        v.reasons[0].contains("no longer stands in build")
            && v.reasons[0].contains("not signed by a trusted release key"),
        "{v:?}"
    );
    // A manual rollback names its reason, and with nothing passing it refuses.
    match s
        .app
        .roll_back(&actor("argo"), "build", "bad config", None)
        .await
    {
        Err(AppError::Denied(m)) => assert!(m.contains("passes the current policy"), "{m}"),
        other => panic!("{other:?}"),
    }
    match s.app.roll_back(&actor("argo"), "nowhere", "x", None).await {
        Err(AppError::NotFound(m)) => assert!(m.contains("unknown environment"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// A rollback says what it changes, artifact by artifact (matched by name): those whose
/// digest differs, with each side's source commit and build parameters; those only the
/// restored release has; those only the release left has. One unchanged is not listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_names_the_artifacts_it_changes_adds_and_removes() {
    let s = setup("").await;
    let (shop1, shop2) = (
        s.artifact("shop", "shop v1", "c1").await,
        s.artifact("shop", "shop v2", "c2").await,
    );
    let lib = s.artifact("lib", "lib", "c-lib").await;
    let (old, new) = (
        s.artifact("old", "old", "c-old").await,
        s.artifact("new", "new", "c-new").await,
    );
    let first = s
        .release_of("1.0.0", &[("shop", &shop1), ("lib", &lib), ("old", &old)])
        .await;
    let second = s
        .release_of("2.0.0", &[("shop", &shop2), ("lib", &lib), ("new", &new)])
        .await;
    for r in [&first, &second] {
        assert!(s.promoted(r, "build").await.decision.decision.allowed);
    }
    // The deploy gate's verdict names the ledger entry that certified what it allows (and
    // encodes to the JSON of itself).
    let certified_by = |v: &custody_app::Verification| {
        let index = v.ledger_index.expect("the verdict names its ledger entry");
        let app = &s.app;
        async move {
            let entries = app.log().entries(index, index + 1).await.unwrap();
            Event::from_leaf(&entries[0].leaf).unwrap().body
        }
    };
    let v = deploy_gate(&s, "build", &shop2).await;
    assert!(v.allowed, "{v:?}");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&v.to_json().unwrap()).unwrap(),
        serde_json::to_value(&v).unwrap()
    );
    match certified_by(&v).await {
        EventBody::EnvironmentCertified(c) => assert_eq!(c.release, second),
        other => panic!("{other:?}"),
    }
    let back = s
        .app
        .roll_back(&actor("argo"), "build", "bad config", None)
        .await
        .unwrap();
    let v = deploy_gate(&s, "build", &shop1).await;
    assert!(v.allowed, "{v:?}");
    match certified_by(&v).await {
        EventBody::RolledBack(r) => assert_eq!((&r.from, &r.to), (&second, &first)),
        other => panic!("{other:?}"),
    }
    let side = |digest: &Digest, commit: &str| custody_app::events::BuildSide {
        digest: digest.clone(),
        commit: Some(commit.into()),
        parameters: Some(serde_json::json!({
            "parameters": {"profile": "release"},
            "source": {"commit": commit, "repository": REPO},
        })),
    };
    let named = |name: &str, digest: &Digest| custody_app::events::NamedDigest {
        name: name.into(),
        digest: digest.clone(),
    };
    assert_eq!(
        back.diff,
        custody_app::events::ReleaseDiff {
            from: second,
            to: first,
            changed: vec![custody_app::events::ChangedArtifact {
                name: "shop".into(),
                from: side(&shop2, "c2"),
                to: side(&shop1, "c1"),
            }],
            added: vec![named("old", &old)],
            removed: vec![named("new", &new)],
        }
    );
}

/// A deploy report names at most `MAX_DIGESTS_PER_REPORT` digests; drift is recorded as its
/// own event only when there is some; and only a success without drift counts as the
/// verified deploy the next environment waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_clean_successful_deploy_report_verifies_a_deploy() {
    let s = setup("verified = true").await;
    let d1 = s.artifact("shop", "v1", "c1").await;
    let r = s.release("1.0.0", &d1).await;
    assert!(s.promoted(&r, "build").await.decision.decision.allowed);
    let argo = actor("argo");
    let strays = |n: usize| -> Vec<Digest> {
        (0..n)
            .map(|i| sha256(format!("stray {i}").as_bytes()))
            .collect()
    };
    let max = custody_app::MAX_DIGESTS_PER_REPORT;
    // One digest too many: refused, nothing recorded.
    let size = s.app.log().size().await.unwrap();
    let mut too_many = strays(max);
    too_many.push(d1.clone());
    match s.app.deploy(&argo, "build", &too_many, true, None).await {
        Err(AppError::Invalid(m)) => assert!(m.contains(&format!("at most {max}")), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.app.log().size().await.unwrap(), size);
    // Exactly the most: taken. Its drift is a second event, and it verifies nothing.
    let mut most = strays(max - 1);
    most.push(d1.clone());
    let report = s
        .app
        .deploy(&argo, "build", &most, true, None)
        .await
        .unwrap();
    assert_eq!(report.drift.len(), max - 1);
    assert_eq!(
        s.app.log().size().await.unwrap(),
        size + 2,
        "report and drift"
    );
    let waiting = s.promoted(&r, "prod").await;
    let previous = waiting
        .decision
        .decision
        .gates
        .iter()
        .find(|g| g.gate == custody_policy::Gate::PreviousEnvironment)
        .unwrap();
    assert!(
        previous
            .reason
            .contains("no successful deploy of it has been reported in build"),
        "{previous:?}"
    );
    // A clean success: one event, and the deploy is verified.
    let size = s.app.log().size().await.unwrap();
    let report = s
        .app
        .deploy(&argo, "build", std::slice::from_ref(&d1), true, None)
        .await
        .unwrap();
    assert!(report.drift.is_empty());
    assert_eq!(
        s.app.log().size().await.unwrap(),
        size + 1,
        "no drift event"
    );
    let promoted = s.promoted(&r, "prod").await;
    assert!(
        promoted.decision.decision.allowed,
        "{:?}",
        promoted.decision.decision
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_failed_deploy_report_rolls_back_once() {
    let s = setup("").await;
    let (d1, d2) = (
        s.artifact("shop", "v1", "c1").await,
        s.artifact("shop", "v2", "c2").await,
    );
    for (v, d) in [("1.0.0", &d1), ("2.0.0", &d2)] {
        let r = s.release(v, d).await;
        s.promoted(&r, "build").await;
    }
    // Two hours after the releases were certified.
    let argo = someone("argo", "2026-11-10T12:00:00Z");
    let report = || {
        s.app.deploy(
            &argo,
            "build",
            std::slice::from_ref(&d2),
            false,
            Some("rollout-9"),
        )
    };
    // Asked before the failure (and so cached), the gate says yes to 2.0.0 …
    assert!(deploy_gate(&s, "build", &d2).await.allowed);
    let first = report().await.unwrap();
    // … and after the rollback, no: a cached verdict is not served past a change.
    assert!(!deploy_gate(&s, "build", &d2).await.allowed);
    let size = s.app.log().size().await.unwrap();
    let again = report().await.unwrap();
    assert_eq!(first.rollback.as_ref().unwrap().to, "shop@1.0.0");
    assert_eq!(again.rollback.as_ref().unwrap().to, "shop@1.0.0");
    assert_eq!(again.ledger_index, first.ledger_index);
    assert_eq!(
        s.app.log().size().await.unwrap(),
        size,
        "the retry acted again"
    );
    // 1.0.0 is certified again, when the rollback happened and by it.
    let restored = deploy_gate(&s, "build", &d1).await;
    assert!(restored.allowed, "{restored:?}");
    assert!(
        restored.reasons[0].ends_with("certified in build at 2026-11-10T12:00:00Z by rollback"),
        "{restored:?}"
    );
    // The same key for another report is refused.
    match s
        .app
        .deploy(
            &actor("argo"),
            "build",
            std::slice::from_ref(&d1),
            true,
            Some("rollout-9"),
        )
        .await
    {
        Err(AppError::Conflict(m)) => assert!(m.contains("already used"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A manual rollback retried: once.
    let rb = s
        .app
        .roll_back(&actor("argo"), "build", "manual", Some("rb-1"))
        .await;
    assert!(
        matches!(rb, Err(AppError::Denied(_))),
        "2.0.0 failed; nothing else to roll back to: {rb:?}"
    );
}
