//! Promotions and their reviews through the use cases on a real SQLite store: who reads a
//! confidential rationale, and what a retry with an idempotency key gets back.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;
#[path = "promotion/concurrency.rs"]
mod concurrency;

use common::*;
use custody_app::attestations::{ManifestArtifact, sha256};
use custody_app::events::{Event, EventBody};
use custody_app::records::{Risk, Verdict};
use custody_app::{
    Actor, AppError, AttachEvidence, Authenticated, REDACTED, RecordRelease, Review, Superseded,
};
use custody_crypto::{Algorithm, PrivateKey, Signer as _};
use custody_model::{Authentication, PromotionStatus};
use custody_policy::Status;

fn review(rationale: &str, confidential: bool) -> Review {
    Review {
        rationale: rationale.into(),
        risk: Risk::Low,
        confidential,
        statement: None,
    }
}

/// `who` reading with `roles`.
fn viewer(who: &str, roles: &[&str]) -> Authenticated {
    Authenticated {
        principal: who.into(),
        auth: Authentication::Oidc {
            issuer: "https://idp.example".into(),
            subject: who.into(),
        },
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

/// A confidential rationale is read by auditors, admins, its reviewer and the promotion's
/// requester; anyone else reads it as `(confidential)`, without the salt that would let
/// them test guesses against the ledger's commitment. One that is not confidential is read
/// by anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confidential_rationale_is_read_only_by_auditors_admins_and_the_people_involved() {
    let s = setup("approvals = { quorum = 2, roles = [\"approver\"] }").await;
    let id = s.waiting_in_prod().await;
    let secret = "the fix touches the payment provider's contract";
    for (who, text, confidential) in [("alice", secret, true), ("bob", "diff read", false)] {
        s.app
            .review(
                &actor(who),
                &id,
                Verdict::Approve,
                &review(text, confidential),
                None,
            )
            .await
            .unwrap();
    }
    // In the ledger: the public rationale and its digest; for the confidential one only
    // the salted commitment to it.
    let size = s.app.log().size().await.unwrap();
    let entries = s.app.log().entries(0, size).await.unwrap();
    let recorded: Vec<_> = entries
        .iter()
        .filter_map(|e| match Event::from_leaf(&e.leaf).unwrap().body {
            EventBody::ApprovalRecorded(a) => Some(a),
            _ => None,
        })
        .collect();
    let (_, reviews) = s.app.promotion(&id).await.unwrap();
    let salt = reviews[0].rationale_salt.as_deref().unwrap();
    let alices = &recorded[0];
    assert_eq!(
        (
            alices.rationale.as_deref(),
            alices.rationale_digest.as_ref(),
            alices.rationale_commitment.clone(),
        ),
        (
            None,
            None,
            custody_app::review_commitment::commit(salt, secret)
        )
    );
    assert!(alices.confidential && alices.rationale_commitment.is_some());
    let bobs = &recorded[1];
    assert_eq!(
        (
            bobs.rationale.as_deref(),
            bobs.rationale_digest.clone(),
            bobs.rationale_commitment.as_deref()
        ),
        (Some("diff read"), Some(sha256(b"diff read")), None)
    );
    for (who, roles, reads) in [
        ("alice", &[][..], true), // wrote it
        ("sam", &[], true),       // asked for the promotion
        ("audrey", &["auditor"], true),
        ("ada", &["admin"], true),
        ("bob", &["approver"], false), // reviewed too, but not this review
        ("paul", &["admin:prod"], false),
        ("mallory", &[], false),
    ] {
        let (_, reviews) = s.app.promotion_for(&viewer(who, roles), &id).await.unwrap();
        let by = |name: &str| reviews.iter().find(|r| r.by == name).unwrap();
        let alices = by("alice");
        if reads {
            assert_eq!(alices.rationale, secret, "{who}");
            assert!(alices.rationale_salt.is_some(), "{who}");
        } else {
            assert_eq!(alices.rationale, REDACTED, "{who}");
            assert_eq!(alices.rationale_salt, None, "{who}");
        }
        assert_eq!(by("bob").rationale, "diff read", "{who}");
    }
}

/// A promotion's idempotency key recorded before receipts existed (it names the promotion
/// and the request's fingerprint) still converges: the same request again gets that
/// promotion back, replayed, and another request with the key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_recorded_before_receipts_existed_replays_its_promotion() {
    let s = setup("").await;
    let d = s.artifact("shop", "v1", "c1").await;
    let r = s.release("1.0.0", &d).await;
    let first = s.promoted(&r, "build").await;
    // What that version kept for `--idempotency-key retry-1`: the RFC 8785 bytes of the
    // request are hashed.
    let request = format!(r#"{{"actor":"rita","environment":"build","release":"{r}"}}"#);
    let legacy = serde_json::json!({
        "promotion": first.promotion.id,
        "fingerprint": custody_app::attestations::sha256(request.as_bytes()),
    });
    let sqlite = s.sqlite().await;
    sqlx::query("INSERT INTO state (kind, key, version, value, log_index) VALUES ('idempotency', ?, 1, ?, ?)")
        .bind("promote:4:rita:retry-1")
        .bind(legacy.to_string())
        .bind(i64::try_from(first.ledger_index).unwrap())
        .execute(&sqlite)
        .await
        .unwrap();
    sqlite.close().await;
    let app = s.reopened().await;
    let size = app.log().size().await.unwrap();

    let again = app
        .promote_to(&actor("rita"), &r, "build", Some("retry-1"))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.promotion.id, first.promotion.id);
    assert_eq!(again.decision.id, first.decision.id);
    assert_eq!(
        app.log().size().await.unwrap(),
        size,
        "a replay writes nothing"
    );

    match app
        .promote_to(&actor("rita"), &r, "prod", Some("retry-1"))
        .await
    {
        Err(AppError::Conflict(m)) => {
            assert!(m.contains("already used for a different request"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(app.log().size().await.unwrap(), size);
}

/// What waits in an environment is listed with the gates it waits on, from the moment it
/// waits until it is decided: certified, it leaves the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_is_listed_as_waiting_until_it_is_decided() {
    let s = setup("approvals = { quorum = 2, roles = [\"approver\"] }").await;
    let d = s.artifact("shop", "v1", "c1").await;
    let r = s.release("1.0.0", &d).await;
    s.promoted(&r, "build").await;
    let waiting_in = |board: Vec<custody_app::BoardColumn>, env: &str| {
        let column = board.into_iter().find(|c| c.environment == env).unwrap();
        column
            .pending
            .into_iter()
            .map(|(id, p)| {
                let gates = p.blocking.into_iter().map(|b| (b.gate, b.status));
                (id, gates.collect::<Vec<_>>())
            })
            .collect::<Vec<_>>()
    };
    // Certified at once: never listed.
    assert_eq!(
        waiting_in(s.app.board(actor("any").now).await.unwrap(), "build"),
        []
    );
    let id = s
        .app
        .promote_to(&actor("sam"), &r, "prod", None)
        .await
        .unwrap()
        .promotion
        .id;
    // Waiting on approvals, the one gate that has not passed.
    let listed = [(id.clone(), vec![("approvals".to_owned(), Status::Waiting)])];
    assert_eq!(
        waiting_in(s.app.board(actor("any").now).await.unwrap(), "prod"),
        listed
    );
    // One approval of two: still waiting.
    let approve = |who: &'static str| {
        let (app, id) = (&s.app, &id);
        async move {
            app.review(
                &actor(who),
                id,
                Verdict::Approve,
                &review("ok", false),
                None,
            )
            .await
            .unwrap()
        }
    };
    approve("alice").await;
    assert_eq!(
        waiting_in(s.app.board(actor("any").now).await.unwrap(), "prod"),
        listed
    );
    let done = approve("bob").await;
    assert_eq!(done.promotion.status, PromotionStatus::Certified);
    assert_eq!(
        waiting_in(s.app.board(actor("any").now).await.unwrap(), "prod"),
        []
    );
}

/// An approval counts only from its approver's own credential: one made with a token an
/// admin created for them, or with a token made with such a token, or by custody itself,
/// is refused, saying why and what to use instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_from_a_credential_not_the_approvers_own_is_refused() {
    let s = setup("approvals = { quorum = 1, roles = [\"approver\"] }").await;
    let id = s.waiting_in_prod().await;
    let token = |created_by: Option<&str>| Authentication::Token {
        token: "tok0123456789abcdef".into(),
        created_by: created_by.map(str::to_owned),
        personal: false,
    };
    for (auth, why) in [
        (
            token(Some("ada")),
            "token tok0123456789abcdef was created by ada, who saw its secret",
        ),
        (
            token(Some("alice")),
            "token tok0123456789abcdef was created with a credential that is not alice's own",
        ),
        (
            token(None),
            "token tok0123456789abcdef was created with a credential that is not alice's own",
        ),
    ] {
        let alice = custody_app::Actor::new("alice", at("2026-11-10T10:00:00Z"))
            .unwrap()
            .authenticated_by(auth);
        match s
            .app
            .review(&alice, &id, Verdict::Approve, &review("ok", false), None)
            .await
        {
            Err(AppError::Denied(m)) => assert!(
                m.starts_with(&format!("an approval counts only from alice's own credential, and {why}\nhint: sign it with your enrolled personal key")),
                "{m}"
            ),
            other => panic!("{why}: {other:?}"),
        }
    }
}

/// The rules read the newest test report of an artifact: the one with the latest time,
/// whatever order the pieces were recorded in, and of two at the same time the one
/// recorded last. A newer piece of another type hides nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_read_the_newest_report_of_each_type() {
    let s = setup_policy(&policy_text("").replace(
        "name = \"build\"",
        "name = \"build\"\nevidence = [\"test-results\"]",
    ))
    .await;
    let junit = |passing: bool| {
        let case = if passing {
            r#"<testcase name="b"/>"#
        } else {
            r#"<testcase name="b"><failure message="boom"/></testcase>"#
        };
        let report = format!(r#"<testsuite name="shop"><testcase name="a"/>{case}</testsuite>"#);
        AttachEvidence::with_report("test-results", "junit", report.as_bytes())
    };
    let sbom = AttachEvidence::with_report(
        "sbom",
        "cyclonedx",
        br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"type":"library","name":"left-pad","version":"1.3.0","licenses":[{"license":{"id":"MIT"}}]}]}"#,
    );
    let (pass, fail) = (junit(true), junit(false));
    // (what, when), in the order recorded; whether the newest report passes.
    let cases: [(&[(&AttachEvidence, &str)], bool); 8] = [
        (&[(&pass, "09:00"), (&fail, "09:30")], false),
        (&[(&fail, "09:00"), (&pass, "09:30")], true),
        (&[(&fail, "09:30"), (&pass, "09:00")], false),
        (&[(&pass, "09:30"), (&fail, "09:00")], true),
        (&[(&pass, "09:00"), (&fail, "09:00")], false),
        (&[(&fail, "09:00"), (&pass, "09:00")], true),
        (&[(&fail, "09:00"), (&sbom, "09:30")], false),
        (&[(&pass, "09:00"), (&sbom, "09:30")], true),
    ];
    for (i, (pieces, passes)) in cases.into_iter().enumerate() {
        let d = s.artifact("shop", &format!("case {i}"), "c1").await;
        for (evidence, time) in pieces {
            let ci = Actor::new("ci", at(&format!("2026-11-10T{time}:00Z")))
                .unwrap()
                .authenticated_by(Authentication::Local { user: "ci".into() });
            s.app.attest(&ci, &d, evidence, None).await.unwrap();
        }
        let r = s.release(&format!("1.0.{i}"), &d).await;
        let decided = s.promoted(&r, "build").await.decision.decision;
        assert_eq!(decided.allowed, passes, "case {i}: {decided:#?}");
        if !passes {
            let tests = decided.gates.iter().find(|g| g.gate.to_string() == "tests");
            let reason = &tests.unwrap().reason;
            assert!(reason.contains("1 of 2 tests failed"), "case {i}: {reason}");
        }
    }
}

/// A release signed by two trusted release keys stands while either is trusted (the first
/// that counts is the one it is signed with); when the policy in force names neither (nor
/// a successor), the decision says the key that signed it is no longer trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_signed_by_two_keys_stands_while_either_is_trusted() {
    let s = setup("").await;
    let second = PrivateKey::generate(Algorithm::EcdsaP256);
    let line = |name: &str| format!("[[release_key]]\npath = \"keys/{name}.pub\"\n");
    let both = policy_text("").replace(&line("release"), &(line("release") + &line("second")));
    // Keys are tried in the order of their ids: keep the first, drop the last.
    let (kept, dropped) = if s.release_key.key_id() < second.key_id() {
        ("release", "second")
    } else {
        ("second", "release")
    };
    let put = |text: String, time: &str| {
        let mut b = bundle(&text, &s.builder, Some(&s.release_key));
        b.files
            .insert("keys/second.pub".into(), second.public_key().to_pem());
        let ops = Actor::new("local:ops", at(time))
            .unwrap()
            .authenticated_by(Authentication::Local { user: "ops".into() });
        let app = &s.app;
        async move { app.apply(&ops, b).await.unwrap() }
    };
    put(both.clone(), "2026-11-10T10:00:00Z").await;
    let d = s.artifact("shop", "v1", "c1").await;
    let mut releases = Vec::new();
    for version in ["1.0.0", "1.0.1"] {
        let artifacts = [ManifestArtifact {
            name: "shop".into(),
            digest: d.clone(),
        }];
        let mut manifest = RecordRelease::signed(
            "shop",
            version,
            &artifacts,
            "rita",
            at("2026-11-10T10:00:00Z"),
            Some(&s.release_key),
        )
        .unwrap();
        manifest
            .manifest
            .add_signature(&second, custody_crypto::dsse::KeyIdHint::KeyId)
            .unwrap();
        let recorded = s.app.record_release(&actor("rita"), &manifest, None).await;
        releases.push(recorded.unwrap().release);
    }
    let rita = Actor::new("rita", at("2026-11-10T11:30:00Z"))
        .unwrap()
        .authenticated_by(Authentication::Oidc {
            issuer: "https://idp.example".into(),
            subject: "rita".into(),
        });
    let without_last = both.replace(&line(dropped), "");
    put(without_last.clone(), "2026-11-10T11:00:00Z").await;
    let promoted = s.app.promote_to(&rita, &releases[0], "build", None).await;
    let decided = promoted.unwrap().decision.decision;
    assert!(decided.allowed, "signed by {kept}, trusted: {decided:#?}");

    put(
        without_last.replace(&line(kept), ""),
        "2026-11-10T11:00:00Z",
    )
    .await;
    let promoted = s.app.promote_to(&rita, &releases[1], "build", None).await;
    let decided = promoted.unwrap().decision.decision;
    assert!(!decided.allowed);
    let reasons: Vec<&str> = decided.gates.iter().map(|g| g.reason.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains(&format!(
            "({kept}) signed it, but the policy in force no longer trusts that key and names no successor"
        ))),
        "{reasons:#?}"
    );
}

/// What a new request names as superseded: promotion `id`, in `status` with `reviews`.
#[track_caller]
fn superseded(
    named: Option<Superseded>,
    id: &str,
    status: PromotionStatus,
    reviews: usize,
) -> Superseded {
    let earlier = named.expect("names the earlier promotion");
    assert_eq!(
        (earlier.promotion.as_str(), earlier.status, earlier.reviews),
        (id, status, reviews)
    );
    earlier
}

/// Asking again for a release left waiting starts a new promotion, and the answer names
/// the earlier one, whose reviews stay with it; another release that happens to share its
/// first artifact is a promotion of its own, superseding nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_request_names_the_earlier_promotion_of_the_same_release_only() {
    let s = setup("approvals = { quorum = 1, roles = [\"approver\"] }").await;
    let (shop, lib) = (
        s.artifact("shop", "v1", "c1").await,
        s.artifact("lib", "lib", "c2").await,
    );
    let first = s.release_of("1.0.0", &[("shop", &shop)]).await;
    let other = s
        .release_of("1.1.0", &[("shop", &shop), ("lib", &lib)])
        .await;
    for r in [&first, &other] {
        s.promoted(r, "build").await;
    }
    let waiting = s
        .app
        .promote_to(&actor("sam"), &first, "prod", None)
        .await
        .unwrap();
    assert_eq!(waiting.supersedes, None);
    let alongside = s
        .app
        .promote_to(&actor("sam"), &other, "prod", None)
        .await
        .unwrap();
    assert_eq!(alongside.supersedes, None, "{other} supersedes nothing");
    let again = s.promoted(&first, "prod").await;
    assert_ne!(again.promotion.id, waiting.promotion.id);
    let earlier = superseded(
        again.supersedes,
        &waiting.promotion.id,
        PromotionStatus::Pending,
        0,
    );
    assert!(
        earlier.note.starts_with(&format!(
            "this is a new promotion: the earlier {} of {first} to prod (pending) keeps its 0 review(s)",
            waiting.promotion.id
        )),
        "{}",
        earlier.note
    );
    // Rejected, then asked for again: the answer says so.
    s.app
        .review(
            &actor("alice"),
            &again.promotion.id,
            Verdict::Reject,
            &review("not this week", false),
            None,
        )
        .await
        .unwrap();
    let third = s.promoted(&first, "prod").await;
    let earlier = superseded(
        third.supersedes,
        &again.promotion.id,
        PromotionStatus::Rejected,
        1,
    );
    assert!(
        earlier
            .note
            .contains("to prod (rejected) keeps its 1 review(s)"),
        "{}",
        earlier.note
    );
}

/// A reviewer's second review supersedes their first (never another's); an approval that
/// cannot count is recorded and says why it is ignored; a rejection from someone who
/// could not have approved is refused and records nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_review_supersedes_the_first_and_only_an_eligible_reviewer_rejects() {
    let s = setup("approvals = { quorum = 2, roles = [\"approver\"] }").await;
    let id = s.waiting_in_prod().await;
    let approve = |who: &'static str, text: &'static str| {
        let (app, id) = (&s.app, &id);
        async move {
            app.review(
                &actor(who),
                id,
                Verdict::Approve,
                &review(text, false),
                None,
            )
            .await
            .unwrap()
            .approval
            .unwrap()
        }
    };
    let (first, why) = approve("alice", "first look").await;
    assert_eq!(why, None);
    let (second, why) = approve("alice", "second look").await;
    assert_eq!(why, None);
    assert_eq!(second.supersedes.as_deref(), Some(first.id.as_str()));
    assert_eq!(first.supersedes, None);

    // Rita signed the release: her approval is recorded, and ignored, saying why.
    let (ritas, why) = approve("rita", "lgtm").await;
    let why = why.expect("an approval by the release's signer does not count");
    assert!(why.contains("signed the release"), "{why}");

    // Mallory could not have approved: her rejection is refused, and nothing is written.
    let size = s.app.log().size().await.unwrap();
    match s
        .app
        .review(
            &actor("mallory"),
            &id,
            Verdict::Reject,
            &review("no", false),
            None,
        )
        .await
    {
        Err(AppError::Denied(m)) => assert!(
            m.starts_with(&format!("mallory may not reject promotion {id}: "))
                && m.ends_with("it still waits for someone who could approve it"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.app.log().size().await.unwrap(), size);
    let (promotion, _) = s.app.promotion(&id).await.unwrap();
    assert_eq!(promotion.status, PromotionStatus::Pending);

    // Bob's approval makes two with alice's latest; each earlier one stays, superseded by
    // its author's next, never by another's.
    let (bobs, why) = approve("bob", "read it").await;
    assert_eq!(why, None);
    let (promotion, reviews) = s.app.promotion(&id).await.unwrap();
    assert_eq!(promotion.status, PromotionStatus::Certified);
    let superseded_by = |id: &str| {
        let review = reviews.iter().find(|r| r.id == id).unwrap();
        review.superseded_by.clone()
    };
    assert_eq!(superseded_by(&first.id), Some(second.id.clone()));
    for id in [&second.id, &ritas.id, &bobs.id] {
        assert_eq!(superseded_by(id), None);
    }
}
