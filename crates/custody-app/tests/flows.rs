//! The use cases on a real SQLite store, beyond the CLI's end-to-end run: concurrent
//! requests, provenance made elsewhere, discrepancies, drift, revoked keys, and rollbacks
//! that must skip or refuse.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use common::*;
use custody_app::attestations::{BuildFields, ManifestArtifact, sha256, sign_provenance};
use custody_app::events::{Event, EventBody};
use custody_app::{Actor, AppError, AttachEvidence, RecordRelease};
use custody_crypto::{Algorithm, PrivateKey};
use custody_model::{Digest, Timestamp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_of_one_promotion_make_one_promotion() {
    let s = setup("").await;
    let d = s.artifact("shop", "v1", "a1").await;
    let r = s.release("1.0.0", &d).await;
    let before = s.app.log().size().await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (app, r) = (s.app.clone(), r.clone());
            tokio::spawn(async move {
                app.promote_to(&actor("rita"), &r, "build", Some("deploy-77"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    let mut fresh = 0;
    for t in tasks {
        let o = t.await.unwrap();
        ids.insert(o.promotion.id.clone());
        fresh += usize::from(!o.replayed);
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(fresh, 1);
    // promotion.requested, decision.recorded, environment.certified: once.
    let after = s.app.log().size().await.unwrap();
    assert_eq!(after, before + 3);
    // The same key for another request is refused, not replayed.
    let d2 = s.artifact("shop", "v2", "a2").await;
    let r2 = s.release("2.0.0", &d2).await;
    let after = s.app.log().size().await.unwrap();
    match s
        .app
        .promote_to(&actor("rita"), &r2, "build", Some("deploy-77"))
        .await
    {
        Err(AppError::Conflict(m)) => {
            assert!(m.contains("already used for a different request"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.app.log().size().await.unwrap(), after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_certifications_leave_the_last_in_the_ledger_certified() {
    let s = setup("").await;
    let mut releases = Vec::new();
    for i in 0..12 {
        let d = s.artifact("shop", &format!("v{i}"), &format!("c{i}")).await;
        releases.push((s.release(&format!("1.{i}.0"), &d).await, d));
    }
    let tasks: Vec<_> = releases
        .iter()
        .map(|(r, _)| {
            let (app, r) = (s.app.clone(), r.clone());
            tokio::spawn(async move {
                app.promote_to(&actor("rita"), &r, "build", None)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().decision.decision.allowed);
    }
    let history = s
        .app
        .history(&custody_app::HistoryFilter {
            environment: Some("build".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let last = history
        .iter()
        .rev()
        .find(|e| v(&e.event)["type"] == "environment.certified")
        .unwrap();
    // Paging back through the same slice, newest first, gives it all exactly once.
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .app
            .history(&custody_app::HistoryFilter {
                environment: Some("build".into()),
                before,
                limit: 7,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.len() <= 7);
        assert!(
            page.windows(2).all(|w| w[0].index < w[1].index),
            "oldest first"
        );
        let Some(first) = page.first() else { break };
        before = Some(first.index);
        pages.splice(0..0, page);
    }
    let all: Vec<u64> = history.iter().map(|e| e.index).collect();
    assert_eq!(pages.iter().map(|e| e.index).collect::<Vec<_>>(), all);
    let last_index = last.index;
    let last = v(&last.event);
    let release = last["release"].as_str().unwrap();
    let (_, digest) = releases.iter().find(|(r, _)| r == release).unwrap();
    let v = s
        .app
        .verify("build", digest, at("2026-11-10T10:00:00Z"))
        .await
        .unwrap();
    assert!(v.allowed, "{v:?}");
    assert_eq!(v.release.as_deref(), Some(release));
    assert!(v.overridden.is_empty(), "a clean pass: {v:?}");
    // The verdict points at the certification itself, not its append's first entry.
    let at = v.ledger_index.unwrap();
    assert_eq!(at, last_index, "{v:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_subject_custody_cannot_check_is_refused_not_ignored() {
    use custody_crypto::statement::Statement;
    let s = setup("").await;
    let d = s.artifact("shop", "v1", "a1").await;
    let good = RecordRelease::signed(
        "shop",
        "1.0.0",
        &[ManifestArtifact {
            name: "shop".into(),
            digest: d.clone(),
        }],
        "rita",
        at("2026-11-10T10:00:00Z"),
        Some(&s.release_key),
    )
    .unwrap();
    // The same manifest with a `backdoor` subject named only by a SHA-1.
    let payload = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        &good.manifest.payload,
    )
    .unwrap();
    let mut statement: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    statement["subject"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "backdoor", "digest": {"sha1": "0123456789abcdef0123456789abcdef01234567"}}));
    let tampered = Statement::from_json(statement.to_string().as_bytes()).unwrap();
    let manifest = custody_app::attestations::sign_release(&s.release_key, &tampered).unwrap();
    match s
        .app
        .record_release(&actor("rita"), &RecordRelease { manifest }, None)
        .await
    {
        Err(AppError::Invalid(m)) => {
            assert!(m.contains("\"backdoor\" has no sha256 or sha512"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    s.app
        .record_release(&actor("rita"), &good, None)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provenance_made_elsewhere_is_checked_and_discrepancies_recorded() {
    let s = setup("").await;
    let digest = sha256(b"external");
    let good = sign_provenance(&s.builder, "shop", &digest, &build("e1", "release")).unwrap();
    let rogue = PrivateKey::generate(Algorithm::Ed25519);
    let forged = sign_provenance(&rogue, "shop", &digest, &build("e1", "release")).unwrap();
    let other = sign_provenance(
        &s.builder,
        "shop",
        &sha256(b"else"),
        &build("e1", "release"),
    )
    .unwrap();
    let register = |env, declared: Option<BuildFields>| {
        let app = s.app.clone();
        let digest = digest.clone();
        async move {
            app.register(
                &actor("ci"),
                NewArtifact {
                    name: "shop".into(),
                    digest: Some(digest),
                    provenance: Some(env),
                    build: declared,
                    ..NewArtifact::default()
                },
            )
            .await
        }
    };
    let denied = |r: Result<_, AppError>, needle: &str| match r {
        Err(AppError::Denied(m)) => assert!(m.contains(needle), "{m}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("accepted"),
    };
    denied(
        register(forged, None).await,
        "not signed by a trusted builder key",
    );
    denied(register(other, None).await, "about another artifact");
    // Provenance for `tools` does not make this digest a `shop`.
    let renamed = sign_provenance(&s.builder, "tools", &digest, &build("e1", "release")).unwrap();
    denied(register(renamed, None).await, "names digest");
    let mut wrong = build("e1", "release");
    wrong.source_repo = "https://git.example/acme/other".into();
    denied(
        register(good.clone(), Some(wrong)).await,
        "the build declares",
    );
    let ok = register(good, Some(build("e1", "release"))).await.unwrap();
    assert_eq!(ok.provenance.unwrap().source_commit, "e1");
    // The same source and parameters building another digest is a discrepancy.
    let mut rerun = build("e1", "release");
    rerun.environment = [("TZ".to_owned(), "Europe/Paris".to_owned())].into();
    rerun.nondeterministic_steps =
        vec!["embeds build time".into(), "zips in directory order".into()];
    let second = s
        .app
        .register(
            &actor("ci"),
            NewArtifact {
                name: "shop".into(),
                digest: Some(sha256(b"rebuilt")),
                build: Some(rerun),
                builder_key: Some(&s.builder),
                ..NewArtifact::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(second.discrepancy, vec![digest.clone()]);
    let events = s
        .app
        .history(&custody_app::HistoryFilter::default())
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| v(&e.event)["type"] == "provenance.discrepancy")
    );
    // The two builds side by side: the same source and parameters, and exactly where they
    // differ (the environment and the steps declared non-deterministic).
    let rebuilt = sha256(b"rebuilt");
    assert_eq!(
        s.app.discrepant_builds(&digest).await.unwrap(),
        vec![rebuilt.clone()]
    );
    assert_eq!(
        s.app.discrepant_builds(&rebuilt).await.unwrap(),
        vec![digest.clone()]
    );
    let c = s.app.compare_builds(&digest, &rebuilt).await.unwrap();
    assert!(c.same_source, "{c:#?}");
    assert_eq!(c.builds[0].digest, digest);
    assert_eq!(c.builds[1].digest, rebuilt);
    let differing: Vec<&str> = c
        .fields
        .iter()
        .filter(|f| !f.same)
        .map(|f| f.field.as_str())
        .collect();
    assert_eq!(
        differing,
        [
            "buildDefinition.internalParameters.environment.TZ",
            "buildDefinition.internalParameters.nondeterministicSteps",
        ],
        "{c:#?}"
    );
    let env = c
        .fields
        .iter()
        .find(|f| f.field.ends_with(".environment.TZ"))
        .unwrap();
    assert_eq!(env.values, [None, Some(serde_json::json!("Europe/Paris"))]);
    assert!(
        c.fields
            .iter()
            .any(|f| f.field == "buildDefinition.externalParameters.source.commit" && f.same)
    );
    let unknown = s.app.compare_builds(&digest, &sha256(b"never")).await;
    assert!(
        matches!(unknown, Err(AppError::NotFound(ref m)) if m.contains("is registered")),
        "{unknown:?}"
    );
    // Another build profile is another build: no discrepancy.
    let third = s
        .app
        .register(
            &actor("ci"),
            NewArtifact {
                name: "shop".into(),
                digest: Some(sha256(b"debug")),
                build: Some(build("e1", "debug")),
                builder_key: Some(&s.builder),
                ..NewArtifact::default()
            },
        )
        .await
        .unwrap();
    assert!(third.discrepancy.is_empty());
}

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
        assert!(
            s.app
                .promote_to(&actor("rita"), &r, "build", None)
                .await
                .unwrap()
                .decision
                .decision
                .allowed
        );
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
    let text = policy_text("").replace(
        "name = \"build\"",
        "name = \"build\"\nevidence = [\"sbom\"]",
    );
    s.app
        .apply(&operator(), bundle(&text, &s.builder, Some(&s.release_key)))
        .await
        .unwrap();
    let report = s
        .app
        .deploy(
            &actor("argo"),
            "build",
            std::slice::from_ref(&d3),
            false,
            None,
        )
        .await
        .unwrap();
    let rb = report.rollback.unwrap();
    assert_eq!(
        (rb.from.as_str(), rb.to.as_str()),
        ("shop@3.0.0", "shop@2.0.0")
    );
    // 2.0.0 fails too: 1.0.0 no longer passes (no sbom), 3.0.0 failed here: none passes.
    let report = s
        .app
        .deploy(
            &actor("argo"),
            "build",
            std::slice::from_ref(&d2),
            false,
            None,
        )
        .await
        .unwrap();
    assert!(report.rollback.is_none());
    let why = report.rollback_refused.unwrap();
    assert!(
        why.contains("shop@1.0.0")
            && why.contains("only a report's digest was given")
            && why.contains("stays certified"),
        "{why}"
    );
    assert!(
        s.app
            .verify("build", &d2, at("2026-11-10T10:00:00Z"))
            .await
            .unwrap()
            .allowed
    );

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
    let v = s
        .app
        .verify("build", &d2, at("2026-11-10T10:00:00Z"))
        .await
        .unwrap();
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
        let outcome = s.app.promote_to(&actor("rita"), r, "build", None).await;
        assert!(outcome.unwrap().decision.decision.allowed);
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
    let v = s
        .app
        .verify("build", &shop2, at("2026-11-10T10:00:00Z"))
        .await
        .unwrap();
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
    let v = s
        .app
        .verify("build", &shop1, at("2026-11-10T10:00:00Z"))
        .await
        .unwrap();
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
    let promoted = s.app.promote_to(&actor("rita"), &r, "build", None).await;
    assert!(promoted.unwrap().decision.decision.allowed);
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
    let waiting = s
        .app
        .promote_to(&actor("rita"), &r, "prod", None)
        .await
        .unwrap();
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
    let promoted = s
        .app
        .promote_to(&actor("rita"), &r, "prod", None)
        .await
        .unwrap();
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
        s.app
            .promote_to(&actor("rita"), &r, "build", None)
            .await
            .unwrap();
    }
    // Two hours after the releases were certified.
    let argo = Actor::new("argo", at("2026-11-10T12:00:00Z"))
        .unwrap()
        .authenticated_by(custody_model::Authentication::Oidc {
            issuer: "https://idp.example".into(),
            subject: "argo".into(),
        });
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
    assert!(
        s.app
            .verify("build", &d2, at("2026-11-10T10:00:00Z"))
            .await
            .unwrap()
            .allowed
    );
    let first = report().await.unwrap();
    // … and after the rollback, no: a cached verdict is not served past a change.
    assert!(
        !s.app
            .verify("build", &d2, at("2026-11-10T10:00:00Z"))
            .await
            .unwrap()
            .allowed
    );
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
    let restored = s
        .app
        .verify("build", &d1, at("2026-11-10T10:00:00Z"))
        .await
        .unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_slices_are_exactly_what_a_scan_of_the_ledger_finds() {
    use custody_app::HistoryFilter;
    let s = setup("").await;
    // Forty releases promoted to build by three engineers, a day apart each.
    let mut digests = Vec::new();
    for i in 0..40_i64 {
        let d = s.artifact("shop", &format!("h{i}"), &format!("c{i}")).await;
        let r = s.release(&format!("3.{i}.0"), &d).await;
        let when = Timestamp::from_unix_seconds(1_794_300_000 + i * 86_400).unwrap();
        let who = ["rita", "sam", "tom"][(i % 3) as usize];
        s.app
            .promote_to(&Actor::new(who, when).unwrap(), &r, "build", None)
            .await
            .unwrap();
        digests.push(d);
    }
    // The whole ledger, read in order.
    let size = s.app.log().size().await.unwrap();
    let mut all = Vec::new();
    for start in (0..size).step_by(1000) {
        for e in s
            .app
            .log()
            .entries(start, size.min(start + 1000))
            .await
            .unwrap()
        {
            all.push((
                e.index,
                serde_json::from_slice::<serde_json::Value>(&e.leaf).unwrap(),
            ));
        }
    }
    let day = |n: i64| Timestamp::from_unix_seconds(1_794_300_000 + n * 86_400).unwrap();
    let filters = [
        HistoryFilter {
            principal: Some("sam".into()),
            ..Default::default()
        },
        HistoryFilter {
            principal: Some("tom".into()),
            environment: Some("build".into()),
            ..Default::default()
        },
        HistoryFilter {
            artifact: Some(digests[7].clone()),
            ..Default::default()
        },
        HistoryFilter {
            build: Some(digests[9].to_string()),
            ..Default::default()
        },
        HistoryFilter {
            since: Some(day(10)),
            until: Some(day(20)),
            ..Default::default()
        },
        HistoryFilter {
            environment: Some("build".into()),
            since: Some(day(30)),
            ..Default::default()
        },
        HistoryFilter {
            principal: Some("rita".into()),
            until: Some(day(5)),
            ..Default::default()
        },
        HistoryFilter {
            principal: Some("nobody".into()),
            ..Default::default()
        },
    ];
    for filter in filters {
        // What a reader of the whole ledger would pick out, written independently here.
        let expected: Vec<u64> = all
            .iter()
            .filter(|(_, e)| {
                let s = |k: &str| e[k].as_str();
                let at = s("at").and_then(|t| t.parse::<Timestamp>().ok());
                let names = |d: &Digest| {
                    e["artifacts"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == &d.to_string()))
                };
                filter
                    .principal
                    .as_deref()
                    .is_none_or(|p| s("actor") == Some(p))
                    && filter
                        .environment
                        .as_deref()
                        .is_none_or(|v| s("environment") == Some(v))
                    && filter.artifact.as_ref().is_none_or(names)
                    && filter
                        .build
                        .as_ref()
                        .is_none_or(|b| names(&b.parse().unwrap()))
                    && filter.since.is_none_or(|t| at.is_some_and(|a| a >= t))
                    && filter.until.is_none_or(|t| at.is_some_and(|a| a < t))
            })
            .map(|(i, _)| *i)
            .collect();
        let found: Vec<u64> = s
            .app
            .history(&filter)
            .await
            .unwrap()
            .iter()
            .map(|e| e.index)
            .collect();
        assert_eq!(found, expected, "{filter:?}");
        if filter.principal.as_deref() != Some("nobody") {
            assert!(!expected.is_empty(), "{filter:?} finds something");
        }
        // Paged newest first, three at a time, the same entries.
        let mut paged = Vec::new();
        let mut before = None;
        loop {
            let page = s
                .app
                .history(&HistoryFilter {
                    before,
                    limit: 3,
                    ..filter.clone()
                })
                .await
                .unwrap();
            let Some(first) = page.first() else { break };
            before = Some(first.index);
            paged.splice(0..0, page.iter().map(|e| e.index));
        }
        assert_eq!(paged, expected, "{filter:?} paged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_lineage_lists_its_releases_and_the_newest_events() {
    let s = setup("").await;
    let d = s.artifact("shop", "long", "l1").await;
    let first = s.release("4.0.0", &d).await;
    let second = s.release("4.0.1", &d).await;
    for i in 0..80 {
        let r = if i % 2 == 0 { &first } else { &second };
        s.app
            .promote_to(&actor("rita"), r, "build", None)
            .await
            .unwrap();
    }
    let all = s
        .app
        .history(&custody_app::HistoryFilter {
            artifact: Some(d.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(all.len() > custody_app::LINEAGE_EVENTS, "{}", all.len());
    let l = s.app.lineage(&d).await.unwrap();
    let releases: Vec<String> = l
        .releases
        .iter()
        .map(|e| v(&e.event)["release"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(releases, [first.as_str(), second.as_str()]);
    assert_eq!(l.events.len(), custody_app::LINEAGE_EVENTS);
    let newest = &all[all.len() - custody_app::LINEAGE_EVENTS..];
    assert_eq!(
        l.events.iter().map(|e| e.index).collect::<Vec<_>>(),
        newest.iter().map(|e| e.index).collect::<Vec<_>>()
    );
    // History continues where the lineage stops.
    assert_eq!(l.older, Some(newest[0].index));
    let older = s
        .app
        .history(&custody_app::HistoryFilter {
            artifact: Some(d.clone()),
            before: l.older,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(older.len() + l.events.len(), all.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_goes_past_a_freeze_loudly_and_waits_for_someone_elses_review() {
    let prod = "approvals = { quorum = 1, roles = [\"approver\"] }\nbreak_glass = [\"deployer\"]\nfreeze = [{ from = \"2026-11-10T00:00:00Z\", until = \"2026-11-12T00:00:00Z\", reason = \"change freeze\" }]";
    let text = policy_text(prod).replace("[roles]\n", "[roles]\n\"deployer:prod\" = [\"olga\"]\n");
    let s = setup_policy(&text).await;
    let d = s.artifact("shop", "hotfix", "h1").await;
    let r = s.release("5.0.1", &d).await;
    s.app
        .promote_to(&actor("rita"), &r, "build", None)
        .await
        .unwrap();
    // The freeze holds an ordinary request.
    let held = s
        .app
        .promote_to(&actor("rita"), &r, "prod", None)
        .await
        .unwrap();
    assert!(!held.decision.decision.allowed);
    assert!(
        held.decision
            .decision
            .blocking()
            .any(|g| g.gate == custody_policy::Gate::Freeze)
    );
    // A reason is required, and the role.
    match s.app.break_glass(&actor("olga"), &r, "prod", "  ").await {
        Err(AppError::Invalid(m)) => assert!(m.contains("needs a reason"), "{m}"),
        other => panic!("{other:?}"),
    }
    let refused = s
        .app
        .break_glass(&actor("bob"), &r, "prod", "it is urgent")
        .await
        .unwrap();
    assert!(!refused.decision.decision.allowed);
    assert_eq!(
        refused.promotion.status,
        custody_app::records::PromotionStatus::Rejected
    );
    assert!(
        !s.app
            .verify("prod", &d, at("2026-11-10T10:00:00Z"))
            .await
            .unwrap()
            .allowed
    );

    // Olga, on call, breaks glass: certified, and the deploy gate lets it run.
    let glass = s
        .app
        .break_glass(&actor("olga"), &r, "prod", "checkout is down")
        .await
        .unwrap();
    assert!(glass.decision.decision.allowed && glass.decision.decision.broke_glass());
    let gate = s
        .app
        .verify("prod", &d, at("2026-11-10T10:00:00Z"))
        .await
        .unwrap();
    assert!(gate.allowed);
    // An exception, and the deploy gate says so.
    assert!(!gate.overridden.is_empty(), "{gate:?}");
    assert!(
        gate.reasons.iter().any(|r| r.contains("break-glass")),
        "{gate:?}"
    );
    let id = glass.promotion.id.clone();
    // Loud: the ledger says so, the decision replays, the board shows the review due.
    let events = s
        .app
        .history(&custody_app::HistoryFilter {
            principal: Some("olga".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let decided = events
        .iter()
        .find(|e| v(&e.event)["type"] == "decision.recorded" && v(&e.event)["promotion"] == *id)
        .unwrap();
    assert_eq!(v(&decided.event)["break_glass"], "checkout is down");
    let alerts = custody_app::alerts::alerts_for_event(decided.index, &decided.event);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].rule, "break-glass-used");
    assert!(s.app.replay(&glass.decision.id).await.unwrap().same);
    let due = |board: &[custody_app::BoardColumn]| {
        board
            .iter()
            .find(|c| c.environment == "prod")
            .unwrap()
            .reviews_due
            .iter()
            .map(|(id, r)| (id.clone(), r.overridden.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        due(&s.app.board(actor("any").now).await.unwrap()),
        [(
            id.clone(),
            vec!["freeze".to_owned(), "approvals".to_owned()]
        )]
    );

    // The review after the fact: not by the one who broke the glass, nor the release's
    // signer, nor someone without a reviewing role.
    let review = custody_app::Review {
        rationale: "checked the hotfix diff and the incident".into(),
        risk: custody_app::records::Risk::Medium,
        confidential: false,
        statement: None,
    };
    for (who, why) in [
        ("olga", "requested the promotion"),
        ("rita", "signed the release"),
        ("ci", "built an artifact"),
        ("mallory", "holds none of the roles"),
    ] {
        match s
            .app
            .review(
                &actor(who),
                &id,
                custody_app::records::Verdict::Approve,
                &review,
                None,
            )
            .await
        {
            Err(AppError::Denied(m)) => assert!(m.contains(why), "{who}: {m}"),
            other => panic!("{who}: {other:?}"),
        }
    }
    let reviewed = s
        .app
        .review(
            &actor("alice"),
            &id,
            custody_app::records::Verdict::Reject,
            &review,
            None,
        )
        .await
        .unwrap();
    let (approval, _) = reviewed.approval.unwrap();
    assert_eq!(
        reviewed.promotion.break_glass.unwrap().reviewed_by,
        Some(approval.id)
    );
    assert!(due(&s.app.board(actor("any").now).await.unwrap()).is_empty());
    // A rejection after the fact is an alert for people to act on; nothing else changes.
    let last = s
        .app
        .history(&custody_app::HistoryFilter {
            principal: Some("alice".into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(v(&last[0].event)["after_the_fact"], true);
    let alerts = custody_app::alerts::alerts_for_event(last[0].index, &last[0].event);
    assert_eq!(alerts[0].rule, "break-glass-review-rejected");
    // The deploy gate stops letting it run at once (the review changed the promotion the
    // cached verdict was computed from).
    let gate = s
        .app
        .verify("prod", &d, at("2026-11-10T10:00:00Z"))
        .await
        .unwrap();
    assert!(!gate.allowed, "{gate:?}");
    assert!(
        gate.reasons[0].contains("alice has since rejected it"),
        "{gate:?}"
    );
    // Once reviewed, it is closed.
    match s
        .app
        .review(
            &actor("bob"),
            &id,
            custody_app::records::Verdict::Approve,
            &review,
            None,
        )
        .await
    {
        Err(AppError::Conflict(m)) => assert!(m.contains("already certified"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_scoped_to_one_environment_stops_at_the_next() {
    let text = policy_text("").replace("[roles]\n", "[roles]\n\"deployer:build\" = [\"dora\"]\n");
    let s = setup_policy(&text).await;
    let d = s.artifact("shop", "v1", "a1").await;
    let r = s.release("1.0.0", &d).await;
    // A deployer of build may not request a promotion into prod, nor report or roll back
    // there; in build she may.
    match s.app.promote_to(&actor("dora"), &r, "prod", None).await {
        Err(AppError::Denied(m)) => {
            assert!(m.contains("dora may not request promotions in prod"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    for result in [
        s.app
            .deploy(&actor("dora"), "prod", std::slice::from_ref(&d), true, None)
            .await
            .map(|_| ()),
        s.app
            .roll_back(&actor("dora"), "prod", "x", None)
            .await
            .map(|_| ()),
    ] {
        match result {
            Err(AppError::Denied(m)) => assert!(m.contains("holds deployer:build"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    let built = s
        .app
        .promote_to(&actor("dora"), &r, "build", None)
        .await
        .unwrap();
    assert!(built.decision.decision.allowed);
    s.app
        .deploy(
            &actor("dora"),
            "build",
            std::slice::from_ref(&d),
            true,
            None,
        )
        .await
        .unwrap();
}

/// A failing test report cannot be hidden behind a newer piece of the same type recorded
/// by its digest alone: the rules read the newest report custody read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_alone_does_not_hide_a_failing_report() {
    let s = setup_policy(&policy_text("").replace(
        "name = \"build\"",
        "name = \"build\"\nevidence = [\"test-results\"]",
    ))
    .await;
    let d = s.artifact("shop", "v1", "c1").await;
    let failing = br#"<testsuite name="shop"><testcase name="a"/><testcase name="b"><failure message="boom"/></testcase></testsuite>"#;
    s.app
        .attest(
            &actor("ci"),
            &d,
            &AttachEvidence::with_report("test-results", "junit", failing),
            None,
        )
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
    let outcome = s
        .app
        .promote_to(&actor("rita"), &r, "build", None)
        .await
        .unwrap();
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
        let ci = Actor::new("ci", at(t))
            .unwrap()
            .authenticated_by(custody_model::Authentication::Local { user: "ci".into() });
        let report = sha256(t.as_bytes());
        s.app
            .attach(&ci, d, "test-results", "junit", report, None)
            .await
            .unwrap();
    }
    let r = s
        .release_of("1.0.0", &[("shop", &shop), ("lib", &lib)])
        .await;
    let promoted = s.app.promote_to(&actor("rita"), &r, "build", None).await;
    let decision = promoted.unwrap().decision.id;
    let text = policy_text("").replace(
        "name = \"build\"",
        "name = \"build\"\nevidence = [\"test-results\"]",
    );
    s.app
        .apply(&operator(), bundle(&text, &s.builder, Some(&s.release_key)))
        .await
        .unwrap();
    for d in [&shop, &lib] {
        let v = s
            .app
            .verify("build", d, at("2026-11-10T10:00:00Z"))
            .await
            .unwrap();
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
    let ci = Actor::new("ci", at("2026-11-10T10:00:00Z"))
        .unwrap()
        .authenticated_by(custody_model::Authentication::Local { user: "ci".into() });
    app.attach(&ci, &shop, "sbom", "cyclonedx", sha256(b"{}"), None)
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
    let s = setup_policy(&policy_text("").replace(
        "name = \"build\"",
        "name = \"build\"\nevidence = [\"test-results\"]",
    ))
    .await;
    let d = s.artifact("shop", "v1", "c1").await;
    let junit = |failing: bool| {
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
    };
    s.app
        .attest(&actor("ci"), &d, &junit(false), None)
        .await
        .unwrap();
    let r = s.release("1.0.0", &d).await;
    let outcome = s
        .app
        .promote_to(&actor("rita"), &r, "build", None)
        .await
        .unwrap();
    assert!(outcome.decision.decision.allowed);
    // Asked twice: the second answer is the cached one.
    for _ in 0..2 {
        assert!(
            s.app
                .verify("build", &d, at("2026-11-10T10:00:00Z"))
                .await
                .unwrap()
                .allowed
        );
    }
    s.app
        .attest(&actor("ci"), &d, &junit(true), None)
        .await
        .unwrap();
    let v = s
        .app
        .verify("build", &d, at("2026-11-10T10:00:00Z"))
        .await
        .unwrap();
    assert!(!v.allowed, "{v:?}");
    assert!(v.reasons[0].contains("1 of 2 tests failed"), "{v:?}");
    s.app
        .attest(&actor("ci"), &d, &junit(false), None)
        .await
        .unwrap();
    assert!(
        s.app
            .verify("build", &d, at("2026-11-10T10:00:00Z"))
            .await
            .unwrap()
            .allowed
    );
}

/// A certified card's "N of M" counts against the quorum of the policy version its
/// decision was made under: raising the quorum afterwards does not make the release look
/// short of approvals, nor lowering it, over-approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certified_card_keeps_the_quorum_it_was_decided_under() {
    let quorum = |n: u32| format!("approvals = {{ quorum = {n}, roles = [\"approver\"] }}");
    let s = setup(&quorum(1)).await;
    let d = s.artifact("shop", "v1", "c1").await;
    let r = s.release("1.0.0", &d).await;
    s.app
        .promote_to(&actor("rita"), &r, "build", None)
        .await
        .unwrap();
    let waiting = s
        .app
        .promote_to(&actor("rita"), &r, "prod", None)
        .await
        .unwrap();
    let review = custody_app::Review {
        rationale: "looked at the diff".into(),
        risk: custody_app::records::Risk::Low,
        confidential: false,
        statement: None,
    };
    let approved = s
        .app
        .review(
            &actor("alice"),
            &waiting.promotion.id,
            custody_app::records::Verdict::Approve,
            &review,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        approved.promotion.status,
        custody_model::PromotionStatus::Certified
    );
    let approvals = |board: Vec<custody_app::BoardColumn>| {
        let prod = board.into_iter().find(|c| c.environment == "prod").unwrap();
        prod.standing.unwrap().approvals
    };
    assert_eq!(
        approvals(s.app.board(actor("any").now).await.unwrap()),
        (1, Some(1))
    );
    for later in [2, 1, 2] {
        s.app
            .apply(
                &operator(),
                bundle(
                    &policy_text(&quorum(later)),
                    &s.builder,
                    Some(&s.release_key),
                ),
            )
            .await
            .unwrap();
        let now = s.app.policy().await.unwrap();
        let rule = now.environment("prod").unwrap().approvals.as_ref().unwrap();
        assert_eq!(rule.quorum, later);
        assert_eq!(
            approvals(s.app.board(actor("any").now).await.unwrap()),
            (1, Some(1)),
            "after the quorum became {later}"
        );
    }
}
