//! What a revoked key stops counting, and from when: what the ledger recorded after its
//! compromise (releases, registrations, approvals) is denied at once and named in the
//! revocation, its alert and `key_impact`; its successors are revoked with it; an
//! auditor's bundle marks the environments whose trust it took back.

use custody_app::AppError;
use custody_app::RegisterArtifact;
use custody_app::attestations::sha256;
use custody_app::audit::Scope;
use custody_crypto::{Algorithm, PrivateKey};

use super::keyring_world::*;

/// Alice's approval of `version` at `t` (asked for by rita): whether prod certified it.
async fn approved(s: &Setup, alice: &PrivateKey, version: &str, t: &str) -> bool {
    let out = s.approve(alice, version, t).await.unwrap();
    out.decision.decision.allowed
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
    assert!(s.allows("build", &d2).await);

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
    match s.revoke("13:00:00", "ab12", "x", None).await {
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
    assert!(s.allows("build", &d2).await);

    s.revoke("13:00:00", &id(key), "laptop stolen", Some("11:00:00"))
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
    assert!(s.allows("prod", &d1).await);
    // A release reads as the gate judges it: signed before the compromise, it counts;
    // after, it does not, and build's gate refuses it now.
    let view = s
        .app
        .release_view("shop@1.0.0", at("13:01:00"))
        .await
        .unwrap();
    assert_eq!(view.signed_by.as_deref(), Some(id(key).as_str()));
    let view = s
        .app
        .release_view("shop@2.0.0", at("13:01:00"))
        .await
        .unwrap();
    assert_eq!(view.signed_by, None);
    assert!(
        view.signature_refused
            .iter()
            .any(|w| w.contains("laptop stolen")),
        "{:?}",
        view.signature_refused
    );
    let build = &view.environments[0];
    assert_eq!((build.environment.as_str(), build.current), ("build", true));
    assert!(
        build.gate_refuses.iter().any(|r| r.contains("was revoked")),
        "{:?}",
        build.gate_refuses
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
        s.revoke("13:10:00", &id(key), "again", None).await,
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
    let (old, leaked) = (id(&s.release_key), "key file leaked");
    let done = s.revoke("12:00:00", &old, leaked, Some("10:30:00")).await;
    let done = done.unwrap();
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

    s.revoke("12:00:00", &id(&s.builder), "CI runner compromised", None)
        .await
        .unwrap();
    let build = shop_build("c".repeat(40), Default::default());
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
    s.release("1.0.0", &s.release_key, "10:00:00").await;
    assert!(s.promote("1.0.0", "build", "10:01:00").await.0);
    assert!(approved(&s, &alice, "1.0.0", "10:02:00").await);
    let d2 = s.release("2.0.0", &s.release_key, "12:00:00").await;
    assert!(s.promote("2.0.0", "build", "12:01:00").await.0);
    assert!(approved(&s, &alice, "2.0.0", "12:02:00").await);
    assert!(s.allows("prod", &d2).await);

    let stolen = "alice's laptop stolen";
    s.revoke("13:00:00", &id(&alice), stolen, Some("11:00:00"))
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
    match s.approve(&alice, "1.0.0", "13:05:00").await {
        Err(AppError::Denied(m)) => assert!(m.contains("was revoked"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Nor one backdated before the compromise (the data directory's operator sets the
    // clock): it would be recorded after the revocation, and the ledger's order decides.
    match s.approve(&alice, "1.0.0", "10:30:00").await {
        Err(AppError::Denied(m)) => assert!(
            m.contains("signs nothing recorded after its revocation, whatever time"),
            "{m}"
        ),
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

    // Her approval of 1.0.0 (signed before the compromise) recorded again after the
    // revocation, behind custody's back: its time and signature are as good as the
    // first's, but no personal statement recorded after its key's revocation counts.
    let first = history
        .iter()
        .filter(|e| {
            matches!(
                e.event.body,
                custody_app::events::EventBody::ApprovalRecorded(_)
            )
        })
        .min_by_key(|e| e.event.at)
        .unwrap();
    let forged_at = s.app.log().size().await.unwrap();
    let s = s.forge(first.event.to_leaf().unwrap()).await;
    let report = s.audit(Scope::All).await;
    assert!(
        report.failures.iter().any(|f| f.entry == Some(forged_at)
            && f.check.name() == "approval"
            && f.detail.contains("was revoked at entry")),
        "{:#?}",
        report.failures
    );
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
    assert!(approved(&s, &alice, "2.0.0", "12:02:00").await);
    s.release("3.0.0", &s.release_key, "12:10:00").await;
    assert!(s.promote("3.0.0", "build", "12:11:00").await.0);
    assert!(approved(&s, &alice, "3.0.0", "12:12:00").await);
    let back = custody_app::Rollback {
        reason: "3.0.0 fails its health checks".into(),
    };
    s.app
        .rollback(&actor("argo", "12:20:00"), "prod", &back, None)
        .await
        .unwrap();
    assert!(s.allows("prod", &d2).await);
    let stolen = "alice's laptop stolen";
    s.revoke("13:00:00", &id(&alice), stolen, Some("12:00:30"))
        .await
        .unwrap();
    assert!(!s.allows("prod", &d2).await);

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
