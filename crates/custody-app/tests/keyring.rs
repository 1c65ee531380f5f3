//! The keyring on a real SQLite store: a key rotated with a hand-over signed by both keeps
//! what it signed while trusted and signs nothing after; a key revoked with a compromise
//! time denies exactly what the ledger recorded after that time, and `key_impact` lists
//! exactly those; the state record is checked against the ledger like every other.
//!
//! Here: rotation (one hand-over, one successor; the log key never to a keyring key). The
//! parts: [`revocation`] (what a revoked key stops counting, and from when) and [`policy`]
//! (a key's validity, and what a policy may not trust against the keyring).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod keyring_world;
#[path = "keyring/policy.rs"]
mod policy;
#[path = "keyring/revocation.rs"]
mod revocation;

use custody_app::{AppError, Handover, RotateKey};
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
    // Production keeps running: what the old key signed while trusted still stands, and
    // the release reads as signed by it.
    assert!(s.allows("build", &d1).await);
    let view = s
        .app
        .release_view("shop@1.0.0", at("11:01:00"))
        .await
        .unwrap();
    assert_eq!(view.signed_by.as_deref(), Some(id(old).as_str()));
    assert!(view.environments[0].gate_refuses.is_empty());
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
    let view = s
        .app
        .release_view("shop@2.0.0", at("12:02:00"))
        .await
        .unwrap();
    assert_eq!(
        view.signed_by, None,
        "signed by the old key after it retired"
    );
    assert!(
        view.signature_refused
            .iter()
            .any(|w| w.contains("retired at")),
        "{:?}",
        view.signature_refused
    );
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
    let caught_up = POLICY.replace("name = \"build\"", "name = \"build\"\n# caught up");
    s.apply(caught_up, &new, "13:00:00").await;
    assert!(s.allows("build", &d3).await);
    assert!(s.allows("prod", &d1).await);

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
