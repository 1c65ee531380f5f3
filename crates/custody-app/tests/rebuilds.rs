//! Reproducible builds on a real SQLite store: a second trusted builder building the same
//! digest is recorded as agreeing evidence, and an environment asking for two agreeing
//! builders certifies only once it is.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use common::*;
use custody_app::events::EventBody;
use custody_app::{AppError, RegisterArtifact};
use custody_crypto::{Algorithm, PrivateKey, Signer as _};
use custody_model::Digest;
use custody_policy::{Decision, Status};

const SECOND: &str = "https://rebuild.example/builder/v1";

/// The test pipeline with prod asking for two agreeing builders, a second builder trusted
/// beside the first, and that builder's key.
async fn two_builders() -> (Setup, PrivateKey) {
    let second = PrivateKey::generate(Algorithm::Ed25519);
    let text = policy_text("reproducible = 2").replace(
        "[[environment]]\nname = \"build\"",
        &format!(
            "[[builder]]\nid = \"{SECOND}\"\nkey = \"keys/rebuilder.pub\"\nsource_repos = [\"https://git.example/acme/*\"]\n[[environment]]\nname = \"build\""
        ),
    );
    let s = setup("").await;
    let mut b = bundle(&text, &s.builder, Some(&s.release_key));
    b.files
        .insert("keys/rebuilder.pub".into(), second.public_key().to_pem());
    s.app.apply(&operator(), b).await.unwrap();
    (s, second)
}

/// `digest` built again by the second builder, from the same source.
fn rebuild(digest: &Digest, key: &PrivateKey, builder_id: &str) -> RegisterArtifact {
    let mut fields = build("c1", "release");
    fields.builder_id = builder_id.into();
    RegisterArtifact::signed_by(key, "shop", digest.clone(), None, fields).unwrap()
}

fn reproducible(d: &Decision) -> (Status, String) {
    let g = d
        .gates
        .iter()
        .find(|g| g.gate.to_string() == "reproducible")
        .expect("a reproducible gate");
    (g.status, g.reason.clone())
}

#[tokio::test]
async fn a_second_builder_agreeing_on_the_digest_lets_the_release_through() {
    let (s, second) = two_builders().await;
    let d = s.artifact("shop", "v1", "c1").await;
    let r = s.release("1.0.0", &d).await;
    let built = s.app.promote_to(&actor("rita"), &r, "build", None).await;
    assert!(built.unwrap().decision.decision.allowed);

    // One builder alone does not make prod.
    let first = s.app.promote_to(&actor("sam"), &r, "prod", None).await;
    let first = first.unwrap().decision.decision;
    assert!(!first.allowed);
    let (status, why) = reproducible(&first);
    assert_eq!(status, Status::Fail);
    assert!(
        why.contains("1 of the 2 independent trusted builders") && why.contains(BUILDER),
        "{why}"
    );

    // The second builder builds the same bytes.
    let before = s.app.log().size().await.unwrap();
    let again = s
        .app
        .register_artifact(&actor("ci"), &rebuild(&d, &second, SECOND))
        .await
        .unwrap();
    assert!(again.created);
    assert_eq!(again.agreeing, vec![BUILDER.to_owned(), SECOND.to_owned()]);
    assert_eq!(again.ledger_index, Some(before));
    let entries = s.app.log().entries(before, before + 1).await.unwrap();
    let event = custody_app::events::Event::from_leaf(&entries[0].leaf).unwrap();
    let EventBody::ArtifactRebuilt(e) = &event.body else {
        panic!("not a rebuild: {event:?}")
    };
    assert_eq!(e.artifact.digest, d);
    assert_eq!(e.builder_id, SECOND);
    assert_eq!(e.agreeing.len(), 2);
    assert_eq!(e.keys.len(), 1, "the key that signed it is named");
    assert_eq!(v(&event)["artifacts"][0], d.to_string());

    // The same rebuild again writes nothing.
    let size = s.app.log().size().await.unwrap();
    let same = s
        .app
        .register_artifact(&actor("ci"), &rebuild(&d, &second, SECOND))
        .await
        .unwrap();
    assert!(!same.created);
    assert_eq!(same.agreeing.len(), 2);
    assert_eq!(s.app.log().size().await.unwrap(), size);

    let now = s.app.promote_to(&actor("sam"), &r, "prod", None).await;
    let now = now.unwrap().decision.decision;
    assert_eq!(reproducible(&now).0, Status::Pass, "{now:#?}");
    assert!(now.allowed, "{now:#?}");
}

#[tokio::test]
async fn the_first_builder_again_or_a_stranger_does_not_agree() {
    let (s, _second) = two_builders().await;
    let d = s.artifact("shop", "v1", "c1").await;
    let size = s.app.log().size().await.unwrap();

    // The first builder registering its own build again adds nothing.
    let same = s
        .app
        .register_artifact(&actor("ci"), &rebuild(&d, &s.builder, BUILDER))
        .await
        .unwrap();
    assert!(!same.created);
    assert_eq!(same.agreeing, vec![BUILDER.to_owned()]);

    // A trusted builder claiming the digest from other source, or other parameters, is
    // no rebuild of it: refused, naming what differs, rather than counted as agreeing or
    // dropped as already registered.
    for (field, change) in [
        (
            "source commit",
            Box::new(|b: &mut custody_app::attestations::BuildFields| b.source_commit = "c2".into())
                as Box<dyn Fn(&mut _)>,
        ),
        (
            "build parameters",
            Box::new(|b: &mut custody_app::attestations::BuildFields| {
                b.parameters.insert("profile".into(), "debug".into());
            }),
        ),
    ] {
        for (key, id) in [(&_second, SECOND), (&s.builder, BUILDER)] {
            let mut fields = build("c1", "release");
            fields.builder_id = id.into();
            change(&mut fields);
            let other = RegisterArtifact::signed_by(key, "shop", d.clone(), None, fields).unwrap();
            let refused = s.app.register_artifact(&actor("ci"), &other).await;
            let Err(AppError::Denied(why)) = refused else {
                panic!("{refused:?}")
            };
            assert!(
                why.contains("is registered from another build") && why.contains(field),
                "{why}"
            );
        }
    }

    // A key the policy does not trust is refused, naming why; nothing is written.
    let stranger = PrivateKey::generate(Algorithm::Ed25519);
    let refused = s
        .app
        .register_artifact(&actor("ci"), &rebuild(&d, &stranger, SECOND))
        .await;
    assert!(matches!(refused, Err(AppError::Denied(_))), "{refused:?}");

    // Provenance about another digest is refused too.
    let other = custody_app::attestations::sha256(b"other bytes");
    let mut wrong = rebuild(&other, &s.builder, BUILDER);
    wrong.digest = d.clone();
    let refused = s.app.register_artifact(&actor("ci"), &wrong).await;
    let Err(AppError::Denied(why)) = refused else {
        panic!("{refused:?}")
    };
    assert!(why.contains("another artifact"), "{why}");
    assert_eq!(s.app.log().size().await.unwrap(), size);
}
