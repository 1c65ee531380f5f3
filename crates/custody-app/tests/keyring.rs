//! The keyring on a real SQLite store: a key rotated with a hand-over signed by both keeps
//! what it signed while trusted and signs nothing after; a key revoked with a compromise
//! time denies exactly what the ledger recorded after that time, and `key_impact` lists
//! exactly those; the state record is checked against the ledger like every other.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod keyring_world;

use custody_app::attestations::{BuildFields, sha256};
use custody_app::audit::Scope;
use custody_app::{AppError, ApplyPolicy, Handover, RegisterArtifact, RotateKey};
use custody_crypto::{Algorithm, PrivateKey, Signer as _};
use custody_policy::KeyPurpose;
use keyring_world::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_keeps_what_it_signed_and_only_its_successor_signs_after() {
    let s = setup().await;
    let old = &s.release_key;
    let new = PrivateKey::generate(Algorithm::Ed25519);
    let d1 = s.release("1.0.0", old, "10:00:00").await;
    assert!(s.promote("1.0.0", "build", "10:01:00").await.0);

    // A hand-over signed only by the successor (or only by the old key) changes nothing.
    let mut half = Handover::sign(KeyPurpose::ReleaseSigner, old, &new).unwrap();
    half.signatures.remove(0);
    match s
        .app
        .rotate_key(&actor("sec", "10:30:00"), &RotateKey { handover: half })
        .await
    {
        Err(AppError::Denied(m)) => assert!(m.contains("signed by both"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A successor that already serves another purpose is refused: one key, one purpose.
    match s.rotate(old, &s.builder, "10:30:00").await {
        Err(AppError::Invalid(m)) => assert!(m.contains("already in the keyring"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(s.app.keyring().await.unwrap().get(&id(&new)).is_none());

    s.rotate(old, &new, "11:00:00").await.unwrap();
    // Production keeps running: what the old key signed while trusted still stands.
    assert!(
        s.app
            .verify("build", &d1, at("10:00:00"))
            .await
            .unwrap()
            .allowed
    );
    // The same hand-over again: the old key has already handed over.
    match s.rotate(old, &new, "11:05:00").await {
        Err(AppError::Conflict(m)) => assert!(m.contains("already rotated"), "{m}"),
        other => panic!("{other:?}"),
    }

    // After the hand-over the old key signs nothing that counts; the successor does, in
    // its place, though the bundle still names the old key.
    s.release("2.0.0", old, "12:00:00").await;
    let (allowed, why) = s.promote("2.0.0", "build", "12:01:00").await;
    assert!(!allowed);
    assert!(
        why.contains("retired at") && why.contains(&id(&new)),
        "{why}"
    );
    let d3 = s.release("3.0.0", &new, "12:10:00").await;
    assert!(s.promote("3.0.0", "build", "12:11:00").await.0);
    assert!(
        s.promote("1.0.0", "prod", "12:20:00").await.0,
        "an old release still promotes"
    );

    // The bundle catches up: the successor at the old key's file. Both still stand.
    let mut b = bundle(&s.builder, &new);
    b.files.insert(
        "custody.toml".into(),
        POLICY.replace("name = \"build\"", "name = \"build\"\n# caught up"),
    );
    s.app
        .apply_policy(&operator("13:00:00"), &ApplyPolicy { files: b.files })
        .await
        .unwrap();
    assert!(
        s.app
            .verify("build", &d3, at("10:00:00"))
            .await
            .unwrap()
            .allowed
    );
    assert!(
        s.app
            .verify("prod", &d1, at("10:00:00"))
            .await
            .unwrap()
            .allowed
    );

    // The hand-over that retired the old key counts among its uses.
    let impact = s.app.key_impact(&id(old), at("10:00:00")).await.unwrap();
    let handover = impact
        .uses
        .iter()
        .find(|u| u.what == "key hand-over")
        .unwrap();
    assert!(handover.counts, "{handover:?}");
    let ring = s.app.keyring().await.unwrap();
    let (o, n) = (ring.get(&id(old)).unwrap(), ring.get(&id(&new)).unwrap());
    assert_eq!((o.status(), n.status()), ("retired", "active"));
    assert_eq!(o.successor.as_deref(), Some(id(&new).as_str()));
    assert_eq!(
        (n.name.as_str(), n.owner.as_deref()),
        ("release signer", Some("rita"))
    );
    let check = s.app.check_state(|_| {}).await.unwrap();
    assert!(check.differences.is_empty(), "{:?}", check.differences);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_with_a_compromise_time_denies_exactly_what_was_signed_after() {
    let s = setup().await;
    let key = &s.release_key;
    let d1 = s.release("1.0.0", key, "10:00:00").await;
    assert!(s.promote("1.0.0", "build", "10:01:00").await.0);
    assert!(s.promote("1.0.0", "prod", "10:02:00").await.0);
    let d2 = s.release("2.0.0", key, "12:00:00").await;
    assert!(s.promote("2.0.0", "build", "12:01:00").await.0);
    assert!(
        s.app
            .verify("build", &d2, at("10:00:00"))
            .await
            .unwrap()
            .allowed
    );

    let revoke = revocation;
    // Bad requests change nothing.
    for (request, t, expect) in [
        (revoke(" ", None), "13:00:00", "needs a reason"),
        (revoke("x", Some("14:00:00")), "13:00:00", "in the future"),
        (
            revoke("stolen\u{202E}gnp.exe", None),
            "13:00:00",
            "invisible character U+202E",
        ),
    ] {
        match s.app.revoke_key(&actor("sec", t), &id(key), &request).await {
            Err(AppError::Invalid(m)) => assert!(m.contains(expect), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    match s
        .app
        .revoke_key(&actor("sec", "13:00:00"), "ab12", &revoke("x", None))
        .await
    {
        Err(AppError::Invalid(m)) => assert!(m.contains("too short"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Someone without the policy permission cannot revoke.
    assert!(matches!(
        s.app
            .revoke_key(&actor("ci", "13:00:00"), &id(key), &revoke("x", None))
            .await,
        Err(AppError::Denied(_))
    ));
    assert!(
        s.app
            .verify("build", &d2, at("10:00:00"))
            .await
            .unwrap()
            .allowed
    );

    s.app
        .revoke_key(
            &actor("sec", "13:00:00"),
            &id(key),
            &revoke("laptop stolen", Some("11:00:00")),
        )
        .await
        .unwrap();
    // Exactly what the ledger recorded after the compromise is denied, at once.
    let v = s.app.verify("build", &d2, at("10:00:00")).await.unwrap();
    assert!(!v.allowed);
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("was revoked") && r.contains("laptop stolen")),
        "{v:?}"
    );
    assert!(
        s.app
            .verify("prod", &d1, at("10:00:00"))
            .await
            .unwrap()
            .allowed
    );

    let impact = s.app.key_impact(&id(key), at("10:00:00")).await.unwrap();
    let releases: Vec<(&str, bool)> = impact
        .uses
        .iter()
        .filter(|u| u.what == "release")
        .map(|u| (u.name.as_str(), u.counts))
        .collect();
    assert_eq!(releases, [("shop@2.0.0", false), ("shop@1.0.0", true)]);
    let env = |name: &str| {
        impact
            .environments
            .iter()
            .find(|e| e.environment == name)
            .unwrap()
    };
    use custody_app::{Dependence, GateNow};
    assert_eq!(
        (&env("build").depends[..], env("build").gate),
        (&[Dependence::Manifest][..], Some(GateNow::Denies))
    );
    assert_eq!(
        (&env("prod").depends[..], env("prod").gate),
        (&[Dependence::Manifest][..], Some(GateNow::Allows))
    );

    // The event names what stopped counting, and so does its alert.
    let last = s.app.history(&Default::default()).await.unwrap();
    let revoked = last
        .iter()
        .find(|e| e.event.body.kind() == "key.revoked")
        .unwrap();
    let alerts = custody_app::alerts::alerts_for_event(revoked.index, &revoked.event);
    let text = &alerts
        .iter()
        .find(|a| a.rule == "key-revoked")
        .unwrap()
        .text;
    assert!(
        text.contains("shop@2.0.0")
            && text.contains("certified in build")
            && !text.contains("shop@1.0.0"),
        "{text}"
    );

    // Revoked once: a second revocation is refused; the keyring record agrees with the
    // ledger.
    assert!(matches!(
        s.app
            .revoke_key(&actor("sec", "13:10:00"), &id(key), &revoke("again", None))
            .await,
        Err(AppError::Conflict(_))
    ));
    let check = s.app.check_state(|_| {}).await.unwrap();
    assert!(check.differences.is_empty(), "{:?}", check.differences);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_builder_key_registers_nothing_and_takes_its_successors_with_it() {
    let s = setup().await;
    // The release key hands over at 11:00; compromised since 10:30, the hand-over itself
    // is suspect, so the successor is revoked with it.
    let new = PrivateKey::generate(Algorithm::Ed25519);
    s.rotate(&s.release_key, &new, "11:00:00").await.unwrap();
    let done = s
        .app
        .revoke_key(
            &actor("sec", "12:00:00"),
            &id(&s.release_key),
            &revocation("key file leaked", Some("10:30:00")),
        )
        .await
        .unwrap();
    assert_eq!(done.revoked_with, [id(&new)]);
    // The history names the successor revoked with it.
    let line = s
        .app
        .history(&custody_app::HistoryFilter {
            kind: Some("key.revoked".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|e| custody_app::describe(&e.event))
        .collect::<String>();
    assert!(
        line.contains(&format!("its successor(s) {}", &id(&new)[..12])),
        "{line}"
    );
    let ring = s.app.keyring().await.unwrap();
    assert_eq!(ring.get(&id(&new)).unwrap().status(), "revoked");

    s.app
        .revoke_key(
            &actor("sec", "12:00:00"),
            &id(&s.builder),
            &revocation("CI runner compromised", None),
        )
        .await
        .unwrap();
    let build = BuildFields {
        builder_id: "https://ci.example/builder/v1".into(),
        source_repo: "https://git.example/acme/shop".into(),
        source_commit: "c".repeat(40),
        parameters: Default::default(),
        environment: Default::default(),
        started: None,
        finished: None,
        nondeterministic_steps: vec![],
        invocation_id: None,
    };
    let request =
        RegisterArtifact::signed_by(&s.builder, "shop", sha256(b"late"), None, build).unwrap();
    match s
        .app
        .register_artifact(&actor("ci", "12:30:00"), &request)
        .await
    {
        Err(AppError::Denied(m)) => {
            assert!(
                m.contains("was revoked") && m.contains("CI runner compromised"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_signed_by_a_revoked_personal_key_stop_counting_from_its_compromise() {
    let s = setup().await;
    let alice = PrivateKey::generate(Algorithm::Ed25519);
    s.enroll_alice(&alice).await;
    let approve = |version, t| s.approve(&alice, version, t);
    s.release("1.0.0", &s.release_key, "10:00:00").await;
    assert!(s.promote("1.0.0", "build", "10:01:00").await.0);
    let out = approve("1.0.0", "10:02:00").await.unwrap();
    assert!(out.decision.decision.allowed);
    let d2 = s.release("2.0.0", &s.release_key, "12:00:00").await;
    assert!(s.promote("2.0.0", "build", "12:01:00").await.0);
    assert!(
        approve("2.0.0", "12:02:00")
            .await
            .unwrap()
            .decision
            .decision
            .allowed
    );
    assert!(
        s.app
            .verify("prod", &d2, at("10:00:00"))
            .await
            .unwrap()
            .allowed
    );

    s.app
        .revoke_key(
            &actor("sec", "13:00:00"),
            &id(&alice),
            &revocation("alice's laptop stolen", Some("11:00:00")),
        )
        .await
        .unwrap();
    // The revocation (and so its alert) names her approval since the compromise and the
    // certification it helped make, not her approval of 1.0.0 before.
    let history = s.app.history(&Default::default()).await.unwrap();
    let revoked = history
        .iter()
        .find_map(|e| match &e.event.body {
            custody_app::events::EventBody::KeyRevoked(r) => Some(r.affected.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        revoked,
        [
            "approval by alice of shop@2.0.0 in prod",
            "certified in prod: shop@2.0.0 (through an approval: the gate re-counts its quorum)"
        ],
    );
    // Her approval of 2.0.0, recorded after the compromise, no longer makes the quorum.
    let v = s.app.verify("prod", &d2, at("10:00:00")).await.unwrap();
    assert!(!v.allowed);
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("no longer make the quorum") && r.contains("alice")),
        "{v:?}"
    );
    // The key signs no new approval.
    match approve("1.0.0", "13:05:00").await {
        Err(AppError::Denied(m)) => assert!(m.contains("was revoked"), "{m}"),
        other => panic!("{other:?}"),
    }
    // What it approved before is untouched; impact lists both approvals.
    let impact = s.app.key_impact(&id(&alice), at("10:00:00")).await.unwrap();
    let approvals: Vec<bool> = impact
        .uses
        .iter()
        .filter(|u| u.what == "approval")
        .map(|u| u.counts)
        .collect();
    assert_eq!(approvals, [false, true]);

    // An auditor's bundle, whole or of prod alone, names her approval of 2.0.0 as taken
    // back, and marks prod, whose quorum it made, but not build (no approval needed).
    for scope in [
        Scope::All,
        Scope::Environment {
            environment: "prod".into(),
        },
    ] {
        let report = s.audit(scope.clone()).await;
        assert!(report.ok(), "{scope:?}: {:?}", report.failures);
        let withdrawn: Vec<(&str, &str, &[String])> = report
            .story
            .withdrawn
            .iter()
            .map(|w| (w.what, w.key.as_str(), w.environments.as_slice()))
            .collect();
        assert_eq!(
            withdrawn,
            [("approval", id(&alice).as_str(), &["prod".to_owned()][..])],
            "{scope:?}"
        );
        assert!(report.story.withdrawn[0].name.contains("by alice"));
        let marked: Vec<(&str, bool)> = report
            .story
            .environments
            .iter()
            .map(|e| (e.name.as_str(), e.trust_withdrawn))
            .collect();
        assert!(marked.contains(&("prod", true)), "{marked:?}");
        assert!(!marked.contains(&("build", true)), "{marked:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_past_its_validity_signs_nothing_and_an_alert_warns_before() {
    let s = setup().await;
    let mut b = bundle(&s.builder, &s.release_key);
    b.files.insert(
        "custody.toml".into(),
        POLICY.replace(
            "owner = \"rita\"\n",
            "owner = \"rita\"\nexpires = \"2026-11-10T12:00:00Z\"\n",
        ),
    );
    s.app
        .apply_policy(&operator("09:30:00"), &ApplyPolicy { files: b.files })
        .await
        .unwrap();
    // An hour before the end, the alert sweep finds it (and not two hours before).
    assert!(
        s.app
            .expiring_keys(at("10:00:00"), 3600)
            .await
            .unwrap()
            .is_empty()
    );
    let soon = s.app.expiring_keys(at("11:30:00"), 3600).await.unwrap();
    assert_eq!(soon.len(), 1);
    assert_eq!(
        (soon[0].0.key_id.as_str(), soon[0].1),
        (id(&s.release_key).as_str(), 1800)
    );
    let alert = custody_app::alerts::key_expiring_alert(&soon[0].0, soon[0].1);
    assert_eq!(alert.rule, "key-about-to-expire");
    assert!(
        alert.text.contains("custody key rotate release-signer"),
        "{}",
        alert.text
    );

    let d1 = s.release("1.0.0", &s.release_key, "11:00:00").await;
    assert!(s.promote("1.0.0", "build", "11:01:00").await.0);
    s.release("2.0.0", &s.release_key, "12:30:00").await;
    let (allowed, why) = s.promote("2.0.0", "build", "12:31:00").await;
    assert!(!allowed && why.contains("expired at"), "{why}");
    // What it signed while valid keeps standing after the end.
    assert!(s.promote("1.0.0", "prod", "12:40:00").await.0);
    assert!(
        s.app
            .verify("prod", &d1, at("10:00:00"))
            .await
            .unwrap()
            .allowed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rotations_of_one_key_at_once_leave_one_successor() {
    let s = setup().await;
    let (a, b) = (
        PrivateKey::generate(Algorithm::Ed25519),
        PrivateKey::generate(Algorithm::Ed25519),
    );
    let (first, second) = tokio::join!(
        s.rotate(&s.release_key, &a, "11:00:00"),
        s.rotate(&s.release_key, &b, "11:00:00")
    );
    let outcomes = [first, second];
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    let lost = outcomes.iter().find_map(|o| o.as_ref().err()).unwrap();
    assert!(
        matches!(lost, AppError::Conflict(m) if m.contains("run the command again") || m.contains("already rotated")),
        "{lost:?}"
    );
    let ring = s.app.keyring().await.unwrap();
    let active: Vec<_> = ring
        .entries()
        .filter(|e| e.purpose == KeyPurpose::ReleaseSigner && e.in_force())
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(
        ring.get(&id(&s.release_key)).unwrap().successor.as_deref(),
        Some(active[0].key_id.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_may_not_trust_a_key_against_the_keyring() {
    let s = setup().await;
    let new = PrivateKey::generate(Algorithm::Ed25519);
    s.rotate(&s.release_key, &new, "10:00:00").await.unwrap();
    let apply = |extra: &str, key: &PrivateKey, t: &str| {
        let mut b = bundle(&s.builder, &s.release_key);
        b.files
            .insert("keys/other.pub".into(), key.public_key().to_pem());
        b.files
            .insert("custody.toml".into(), format!("{POLICY}{extra}"));
        let app = &s.app;
        let t = t.to_owned();
        async move {
            app.apply_policy(&operator(&t), &ApplyPolicy { files: b.files })
                .await
        }
    };
    // The successor release key as a builder too: one key, one purpose.
    let builder = "[[builder]]\nid = \"https://ci.example/builder/v2\"\nkey = \"keys/other.pub\"\nsource_repos = [\"https://git.example/acme/*\"]\n";
    match apply(builder, &new, "11:00:00").await {
        Err(AppError::Invalid(m)) => {
            assert!(m.contains("one key never serves two purposes"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    // A revoked key is never trusted again.
    let gone = PrivateKey::generate(Algorithm::Ed25519);
    s.rotate(&new, &gone, "11:10:00").await.unwrap();
    s.app
        .revoke_key(
            &actor("sec", "11:20:00"),
            &id(&gone),
            &revocation("lost", None),
        )
        .await
        .unwrap();
    let release = "[[release_key]]\npath = \"keys/other.pub\"\nname = \"second\"\n";
    match apply(release, &gone, "11:30:00").await {
        Err(AppError::Invalid(m)) => assert!(m.contains("never trusted again"), "{m}"),
        other => panic!("{other:?}"),
    }
    // An expiry already past would revoke silently.
    let fresh = PrivateKey::generate(Algorithm::Ed25519);
    let past = format!("{release}expires = \"2026-11-10T11:00:00Z\"\n");
    match apply(&past, &fresh, "11:30:00").await {
        Err(AppError::Invalid(m)) => assert!(m.contains("which is past"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A widening revocation reaches further back; a narrower one is refused.
    let widen = |since: &str| revocation("it was earlier", Some(since));
    assert!(matches!(
        s.app
            .revoke_key(&actor("sec", "11:40:00"), &id(&gone), &widen("11:30:00"))
            .await,
        Err(AppError::Conflict(_))
    ));
    s.app
        .revoke_key(&actor("sec", "11:40:00"), &id(&gone), &widen("11:15:00"))
        .await
        .unwrap();
    let ring = s.app.keyring().await.unwrap();
    assert_eq!(
        ring.get(&id(&gone))
            .unwrap()
            .revoked
            .as_ref()
            .unwrap()
            .cutoff(),
        at("11:15:00")
    );
}

/// The log's key hands over only to a new key: one the keyring holds for another purpose
/// (a builder's) is refused, so no builder can come to sign checkpoints, and nothing is
/// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_key_never_hands_over_to_a_keyring_key() {
    let s = setup().await;
    let size = s.app.log().size().await.unwrap();
    let builder =
        custody_crypto::note::NoteVerifier::new("test.custody/log", s.builder.public_key())
            .unwrap();
    match s.app.check_log_successor(&builder).await {
        Err(AppError::Invalid(m)) => assert!(
            m.contains("in the keyring as a builder key")
                && m.contains("one key never serves two purposes"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.app.log().size().await.unwrap(), size);
}

/// An environment a rollback restored rests on the restored promotion's approvals: when a
/// later revocation withdraws the one that made its quorum, the auditor's report marks it,
/// as the gate denies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_marks_a_rolled_back_environment_whose_approval_was_withdrawn() {
    let s = setup().await;
    let alice = PrivateKey::generate(Algorithm::Ed25519);
    s.enroll_alice(&alice).await;
    let d2 = s.release("2.0.0", &s.release_key, "12:00:00").await;
    assert!(s.promote("2.0.0", "build", "12:01:00").await.0);
    assert!(
        s.approve(&alice, "2.0.0", "12:02:00")
            .await
            .unwrap()
            .decision
            .decision
            .allowed
    );
    s.release("3.0.0", &s.release_key, "12:10:00").await;
    assert!(s.promote("3.0.0", "build", "12:11:00").await.0);
    assert!(
        s.approve(&alice, "3.0.0", "12:12:00")
            .await
            .unwrap()
            .decision
            .decision
            .allowed
    );
    let back = custody_app::Rollback {
        reason: "3.0.0 fails its health checks".into(),
    };
    s.app
        .rollback(&actor("argo", "12:20:00"), "prod", &back, None)
        .await
        .unwrap();
    assert!(
        s.app
            .verify("prod", &d2, at("10:00:00"))
            .await
            .unwrap()
            .allowed
    );
    s.app
        .revoke_key(
            &actor("sec", "13:00:00"),
            &id(&alice),
            &revocation("alice's laptop stolen", Some("12:00:30")),
        )
        .await
        .unwrap();
    assert!(
        !s.app
            .verify("prod", &d2, at("10:00:00"))
            .await
            .unwrap()
            .allowed
    );

    let report = s.audit(Scope::All).await;
    assert!(report.ok(), "{:?}", report.failures);
    let prod = report
        .story
        .environments
        .iter()
        .find(|e| e.name == "prod")
        .unwrap();
    assert_eq!(prod.release, "shop@2.0.0");
    assert!(prod.trust_withdrawn, "{:?}", report.story);
    // Both approvals were given after the compromise; 2.0.0's made the restored quorum.
    let mut marked: Vec<Vec<String>> = report
        .story
        .withdrawn
        .iter()
        .filter(|w| w.what == "approval")
        .map(|w| w.environments.clone())
        .collect();
    marked.sort();
    assert_eq!(marked, [vec![], vec!["prod".to_owned()]]);
}
