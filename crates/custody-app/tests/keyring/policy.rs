//! What a policy says about keys: a key past the validity it gives signs nothing (what it
//! signed before keeps standing) and an alert warns before; a policy may not trust a key
//! against the keyring (one key, one purpose; a revoked key never again; no expiry already
//! past), and a revocation only ever widens.

use custody_app::{AppError, ApplyPolicy};
use custody_crypto::{Algorithm, PrivateKey, Signer as _};

use super::keyring_world::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_past_its_validity_signs_nothing_and_an_alert_warns_before() {
    let s = setup().await;
    let expiring = POLICY.replace(
        "owner = \"rita\"\n",
        "owner = \"rita\"\nexpires = \"2026-11-10T12:00:00Z\"\n",
    );
    s.apply(expiring, &s.release_key, "09:30:00").await;
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
    assert!(s.allows("prod", &d1).await);
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
    s.revoke("11:20:00", &id(&gone), "lost", None)
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
    let gone_id = id(&gone);
    let widen = |since| s.revoke("11:40:00", &gone_id, "it was earlier", Some(since));
    assert!(matches!(
        widen("11:30:00").await,
        Err(AppError::Conflict(_))
    ));
    widen("11:15:00").await.unwrap();
    let ring = s.app.keyring().await.unwrap();
    assert_eq!(
        ring.get(&gone_id)
            .unwrap()
            .revoked
            .as_ref()
            .unwrap()
            .cutoff(),
        at("11:15:00")
    );
}
