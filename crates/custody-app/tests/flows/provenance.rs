//! What a registration or a release must prove: provenance made elsewhere checked against
//! the trusted builders and the declared build, a manifest subject custody cannot check
//! refused, and the same source building another digest recorded as a discrepancy.

use custody_app::attestations::{BuildFields, ManifestArtifact, sha256, sign_provenance};
use custody_app::{AppError, RecordRelease};
use custody_crypto::{Algorithm, PrivateKey};

use super::common::*;

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
    let rebuild = async |content: &[u8], declared: BuildFields| {
        let new = NewArtifact {
            name: "shop".into(),
            digest: Some(sha256(content)),
            build: Some(declared),
            builder_key: Some(&s.builder),
            ..NewArtifact::default()
        };
        s.app.register(&actor("ci"), new).await.unwrap()
    };
    let mut rerun = build("e1", "release");
    rerun.environment = [("TZ".to_owned(), "Europe/Paris".to_owned())].into();
    rerun.nondeterministic_steps =
        vec!["embeds build time".into(), "zips in directory order".into()];
    let second = rebuild(b"rebuilt", rerun).await;
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
    let third = rebuild(b"debug", build("e1", "debug")).await;
    assert!(third.discrepancy.is_empty());
}
