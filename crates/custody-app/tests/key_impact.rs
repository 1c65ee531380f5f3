//! `key_impact` as the engineer handling a compromised key reads it, on a real SQLite
//! store: a key is named by a unique prefix of its id (and a revocation so named records
//! the whole id); each environment says how its release depends on the key (its manifest,
//! its provenance, or only an approval, which re-approval fixes); and what the deploy gate
//! denies lists only what the key caused, not a release denied for another reason.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod keyring_world;

use custody_app::{AppError, ApplyPolicy, Dependence, GateNow, KeyImpact};
use custody_crypto::{Algorithm, PrivateKey, Signer as _};
use custody_policy::KeyPurpose;
use keyring_world::*;

/// The environment `name` of an impact.
fn env<'a>(impact: &'a KeyImpact, name: &str) -> &'a custody_app::EnvironmentImpact {
    impact
        .environments
        .iter()
        .find(|e| e.environment == name)
        .unwrap()
}

/// Two Ed25519 keys whose ids share their first 9 hex digits (`ffa467b65…`): seeds found
/// by a birthday search over `u32` seeds.
fn twins() -> [PrivateKey; 2] {
    [89u32, 42_240].map(|n| {
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&n.to_le_bytes());
        PrivateKey::ed25519_from_seed(&seed).unwrap()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_named_by_a_unique_prefix_and_revoked_by_its_whole_id() {
    let s = setup().await;
    let whole = id(&s.release_key);
    s.release("1.0.0", &s.release_key, "10:00:00").await;

    // Twelve digits, as `custody history` prints them: the same impact as the whole id.
    let by_prefix = s
        .app
        .key_impact(&whole[..12], at("10:00:00"))
        .await
        .unwrap();
    assert_eq!(by_prefix.key.key_id, whole);
    assert_eq!(by_prefix.uses.len(), 1);

    // Too short, not hex, unknown: refused, naming what is wrong.
    match s.app.key_impact(&whole[..7], at("10:00:00")).await {
        Err(AppError::Invalid(m)) => assert!(m.contains("at least 8 hex digits"), "{m}"),
        other => panic!("{other:?}"),
    }
    match s.app.key_impact("release signer", at("10:00:00")).await {
        Err(AppError::Invalid(m)) => assert!(m.contains("is not a key id"), "{m}"),
        other => panic!("{other:?}"),
    }
    let ring = s.app.keyring().await.unwrap();
    let unknown = ["00000000", "11111111", "22222222"]
        .into_iter()
        .find(|p| ring.entries().all(|e| !e.key_id.starts_with(p)))
        .unwrap();
    match s.app.key_impact(unknown, at("10:00:00")).await {
        Err(AppError::NotFound(m)) => assert_eq!(
            m,
            format!("no key {unknown} in the keyring; `custody key list` shows them")
        ),
        other => panic!("{other:?}"),
    }
    // A refused revocation changes nothing.
    assert!(matches!(
        s.app
            .revoke_key(
                &actor("sec", "11:00:00"),
                unknown,
                &revocation("lost", None)
            )
            .await,
        Err(AppError::NotFound(_))
    ));
    assert_eq!(ring.get(&whole).unwrap().status(), "active");

    // Revoked by ten upper-case digits: the ledger and the keyring record the whole id.
    let done = s
        .app
        .revoke_key(
            &actor("sec", "11:00:00"),
            &whole[..10].to_ascii_uppercase(),
            &revocation("laptop stolen", None),
        )
        .await
        .unwrap();
    assert_eq!(done.key, whole);
    assert_eq!(done.revocation.as_ref().unwrap().revocation.key, whole);
    let ring = s.app.keyring().await.unwrap();
    assert_eq!(
        ring.get(&whole).unwrap().revoked.as_ref().unwrap().key,
        whole
    );
    let events = s
        .app
        .history(&custody_app::HistoryFilter {
            kind: Some("key.revoked".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let custody_app::events::EventBody::KeyRevoked(revoked) = &events[0].event.body else {
        panic!("{:?}", events[0].event.body)
    };
    assert_eq!(revoked.keys[0].key, whole);
    let check = s.app.check_state(|_| {}).await.unwrap();
    assert!(check.differences.is_empty(), "{:?}", check.differences);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_prefix_is_refused_naming_both_keys() {
    let s = setup().await;
    let [alice, bob] = twins();
    let mut b = bundle(&s.builder, &s.release_key);
    for (who, key) in [("alice", &alice), ("bob", &bob)] {
        b.files
            .insert(format!("keys/{who}.pub"), key.public_key().to_pem());
    }
    b.files.insert(
        "custody.toml".into(),
        POLICY.replace(
            "security = [\"sec\"]\n",
            "security = [\"sec\"]\napprover = [\"alice\", \"bob\"]\n",
        ) + "[[person_key]]\nprincipal = \"alice\"\npath = \"keys/alice.pub\"\n\
               [[person_key]]\nprincipal = \"bob\"\npath = \"keys/bob.pub\"\n",
    );
    s.app
        .apply_policy(&operator("09:30:00"), &ApplyPolicy { files: b.files })
        .await
        .unwrap();
    let (a, b) = (id(&alice), id(&bob));
    for refused in [
        s.app.key_impact(&a[..9], at("10:00:00")).await.map(|_| ()),
        s.app
            .revoke_key(&actor("sec", "10:00:00"), &a[..8], &revocation("x", None))
            .await
            .map(|_| ()),
    ] {
        match refused {
            Err(AppError::Invalid(m)) => assert!(
                m.contains("ambiguous") && m.contains(&a) && m.contains(&b),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }
    // Neither was revoked; ten digits tell them apart.
    let ring = s.app.keyring().await.unwrap();
    assert!(ring.entries().all(|e| e.revoked.is_none()));
    assert_eq!(
        s.app
            .key_impact(&b[..10], at("10:00:00"))
            .await
            .unwrap()
            .key
            .key_id,
        b
    );
    assert_eq!(ring.get(&b).unwrap().purpose, KeyPurpose::PersonalApproval);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_rests_on_a_key_only_through_an_approval_says_so() {
    let s = setup().await;
    let alice = PrivateKey::generate(Algorithm::Ed25519);
    s.enroll_alice(&alice).await;
    let d1 = s.release("1.0.0", &s.release_key, "10:00:00").await;
    assert!(s.promote("1.0.0", "build", "10:01:00").await.0);
    let out = s.approve(&alice, "1.0.0", "10:02:00").await.unwrap();
    assert!(out.decision.decision.allowed);
    s.running("prod", std::slice::from_ref(&d1), "10:03:00")
        .await;

    // Alice's key: production's release rests on it only through her approval; build's
    // not at all (no approval was asked there).
    let impact = s.app.key_impact(&id(&alice), at("10:00:00")).await.unwrap();
    let prod = env(&impact, "prod");
    assert_eq!(prod.depends, [Dependence::Approval]);
    assert_eq!(prod.running.len(), 1);
    assert_eq!(prod.running[0].depends, [Dependence::Approval]);
    assert_eq!(prod.gate, Some(GateNow::Allows));
    assert!(env(&impact, "build").depends.is_empty());
    assert!(impact.denied.is_empty());
    // The release key: its manifest, in both.
    let impact = s
        .app
        .key_impact(&id(&s.release_key), at("10:00:00"))
        .await
        .unwrap();
    for e in ["build", "prod"] {
        assert_eq!(env(&impact, e).depends, [Dependence::Manifest], "{e}");
    }

    // Alice's key was compromised before she approved: production is denied, and the
    // engineer is told that re-approval, not re-signing, restores it.
    s.app
        .revoke_key(
            &actor("sec", "11:00:00"),
            &id(&alice),
            &revocation("alice's laptop stolen", Some("09:45:00")),
        )
        .await
        .unwrap();
    let impact = s.app.key_impact(&id(&alice), at("10:00:00")).await.unwrap();
    assert_eq!(env(&impact, "prod").gate, Some(GateNow::Denies));
    assert_eq!(impact.denied.len(), 1);
    let denied = &impact.denied[0];
    assert_eq!(
        (denied.environment.as_str(), denied.release.as_str()),
        ("prod", "shop@1.0.0")
    );
    assert_eq!(denied.depends, [Dependence::Approval]);
    assert!(denied.depends[0].remedy().starts_with("re-approve"));
    assert!(
        denied
            .reasons
            .iter()
            .all(|r| r.contains("no longer make the quorum") && r.contains(&id(&alice))),
        "{denied:?}"
    );
    // The release key did nothing wrong: production's denial is not its doing.
    let impact = s
        .app
        .key_impact(&id(&s.release_key), at("10:00:00"))
        .await
        .unwrap();
    let prod = env(&impact, "prod");
    assert_eq!(
        (&prod.depends[..], prod.gate),
        (&[Dependence::Manifest][..], Some(GateNow::DeniesOtherwise))
    );
    assert!(
        prod.reasons.is_empty() && impact.denied.is_empty(),
        "{impact:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_denials_listed_are_only_those_the_key_caused() {
    let s = setup().await;
    let key = &s.release_key;
    let d1 = s.release("1.0.0", key, "10:00:00").await;
    assert!(s.promote("1.0.0", "build", "10:01:00").await.0);
    assert!(s.promote("1.0.0", "prod", "10:02:00").await.0);
    // Production now asks for an SBOM its release never had: denied, for that.
    let mut b = bundle(&s.builder, key);
    b.files.insert(
        "custody.toml".into(),
        POLICY.replace("name = \"prod\"", "name = \"prod\"\nevidence = [\"sbom\"]"),
    );
    s.app
        .apply_policy(&operator("10:30:00"), &ApplyPolicy { files: b.files })
        .await
        .unwrap();
    let v = s.app.verify("prod", &d1, at("10:00:00")).await.unwrap();
    assert!(!v.allowed, "{v:?}");
    // Build moves on to a release signed after the key's compromise.
    s.release("2.0.0", key, "12:00:00").await;
    assert!(s.promote("2.0.0", "build", "12:01:00").await.0);
    s.app
        .revoke_key(
            &actor("sec", "13:00:00"),
            &id(key),
            &revocation("laptop stolen", Some("11:00:00")),
        )
        .await
        .unwrap();

    let impact = s.app.key_impact(&id(key), at("10:00:00")).await.unwrap();
    // Only build's release is listed: denied because of the key.
    let listed: Vec<(&str, &str)> = impact
        .denied
        .iter()
        .map(|d| (d.environment.as_str(), d.release.as_str()))
        .collect();
    assert_eq!(listed, [("build", "shop@2.0.0")]);
    let build = env(&impact, "build");
    assert_eq!(build.gate, Some(GateNow::Denies));
    assert!(
        !build.reasons.is_empty()
            && build
                .reasons
                .iter()
                .all(|r| r.contains(&id(key)) && r.contains("was revoked")),
        "{build:?}"
    );
    // Production's release depends on the key (signed before the compromise, it still
    // counts) but is denied for its missing SBOM: not the key's doing, so not listed.
    let prod = env(&impact, "prod");
    assert_eq!(prod.depends, [Dependence::Manifest]);
    assert_eq!(prod.gate, Some(GateNow::DeniesOtherwise));
    assert!(prod.reasons.is_empty(), "{prod:?}");
    // And the builder key, which signed both releases' provenance, is blamed for neither.
    let impact = s
        .app
        .key_impact(&id(&s.builder), at("10:00:00"))
        .await
        .unwrap();
    assert!(impact.denied.is_empty(), "{:?}", impact.denied);
    assert_eq!(
        env(&impact, "build").depends,
        [Dependence::Provenance],
        "{impact:?}"
    );
}
