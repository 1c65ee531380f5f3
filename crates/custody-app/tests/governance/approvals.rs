//! An approval counts only from its approver: never through a token someone else made for
//! them unless they signed it with their enrolled key, never a statement signed by another
//! key, tampered with, about something else, expired, or used before; and a confidential
//! signed approval hides its statement with its rationale.

use custody_app::Review;
use custody_app::events::EventBody;

use super::*;

/// A confidential approval signed with the approver's key: its statement carries the
/// rationale, so a reader who may not read the rationale gets neither (an auditor gets
/// both).
#[tokio::test]
async fn a_confidential_signed_approval_hides_its_statement_too() {
    let w = world().await;
    let p = w.release_and_promote("2.0.1").await;
    let promotion = &p.promotion;
    let approves = Approved::promotion(promotion, &w.in_force().await);
    let secret = "the canary hit the payments outage runbook";
    let review = Review {
        rationale: secret.into(),
        risk: Risk::Low,
        confidential: true,
        statement: Some(signed(&w.bob, "bob", approves, Verdict::Approve, secret)),
    };
    w.app
        .review(
            &person("bob"),
            &promotion.id,
            Verdict::Approve,
            &review,
            None,
        )
        .await
        .unwrap();
    let reader = |who: &str, roles: &[&str]| custody_app::Authenticated {
        principal: who.into(),
        auth: Authentication::Oidc {
            issuer: "https://idp.example".into(),
            subject: who.into(),
        },
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    };
    let (_, seen) = w
        .app
        .promotion_for(&reader("vic", &["viewer"]), &promotion.id)
        .await
        .unwrap();
    assert_eq!(seen[0].rationale, custody_app::REDACTED);
    assert!(seen[0].statement.is_none(), "{:?}", seen[0].statement);
    let (_, audited) = w
        .app
        .promotion_for(&reader("audrey", &["auditor"]), &promotion.id)
        .await
        .unwrap();
    assert_eq!(audited[0].rationale, secret);
    assert!(audited[0].statement.is_some());
}

#[tokio::test]
async fn an_approval_counts_only_from_its_approver() {
    let w = world().await;
    let p = w.release_and_promote("2.0.0").await;
    let promotion = &p.promotion;
    let approves = Approved::promotion(promotion, &w.in_force().await);
    let with = |statement| Review {
        rationale: "canary clean".into(),
        risk: Risk::Low,
        confidential: false,
        statement,
    };
    // An admin's token for bob: the approval is not bob's.
    let minted = minted("bob", "tok2");
    denied(
        w.app
            .review(&minted, &promotion.id, Verdict::Approve, &with(None), None)
            .await,
        "root",
    );
    // `who`'s statement with `key` of `verdict` on this promotion.
    let by = |key: &PrivateKey, who: &str, verdict: Verdict| {
        signed(key, who, approves.clone(), verdict, "canary clean")
    };
    // Signed by the wrong key, tampered with, about another promotion, expired: refused.
    let rogue = PrivateKey::generate(Algorithm::Ed25519);
    let bad = [
        (
            by(&rogue, "bob", Verdict::Approve),
            "no enrolled personal key",
        ),
        (
            {
                let mut e = by(&w.bob, "bob", Verdict::Approve);
                // One base64 character changed: other payload bytes, same signature.
                let mut chars: Vec<char> = e.payload.chars().collect();
                chars[20] = if chars[20] == 'A' { 'B' } else { 'A' };
                e.payload = chars.into_iter().collect();
                e
            },
            "no enrolled personal key",
        ),
        (
            signed(
                &w.bob,
                "bob",
                Approved::Promotion {
                    promotion: "prm-other".into(),
                    release: promotion.release.clone(),
                    release_digest: Some(promotion.release_digest.clone()),
                    environment: promotion.environment.clone(),
                    policy: w.in_force().await,
                },
                Verdict::Approve,
                "canary clean",
            ),
            "not promotion",
        ),
        (
            // This promotion, under another policy version: the message says which field.
            signed(
                &w.bob,
                "bob",
                Approved::Promotion {
                    promotion: promotion.id.clone(),
                    release: promotion.release.clone(),
                    release_digest: Some(promotion.release_digest.clone()),
                    environment: promotion.environment.clone(),
                    policy: format!("sha256:{}", "0".repeat(64)),
                },
                Verdict::Approve,
                "canary clean",
            ),
            "but with another policy (signed sha256:0000",
        ),
        (
            signed_at(
                &w.bob,
                "bob",
                approves.clone(),
                Verdict::Approve,
                "canary clean",
                at("2026-11-10T08:00:00Z"),
                3600,
            ),
            "expired",
        ),
        (by(&w.bob, "bob", Verdict::Reject), "Reject"),
        (by(&w.sasha, "sasha", Verdict::Approve), "sasha"),
    ];
    // Sent with bob's admin-made token: refused, saying why.
    let refused = async |statement, why: &str| {
        let sent = with(Some(statement));
        denied(
            w.app
                .review(&minted, &promotion.id, Verdict::Approve, &sent, None)
                .await,
            why,
        );
    };
    for (statement, why) in bad {
        refused(statement, why).await;
    }
    // bob's own signature counts, relayed with his (admin-made) token.
    let good = by(&w.bob, "bob", Verdict::Approve);
    let outcome = w
        .app
        .review(
            &minted,
            &promotion.id,
            Verdict::Approve,
            &with(Some(good.clone())),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        outcome.promotion.status,
        custody_model::PromotionStatus::Certified
    );
    let size = w.app.log().size().await.unwrap();
    let entries = w.app.log().entries(0, size).await.unwrap();
    let approval = entries
        .iter()
        .map(|e| custody_app::events::Event::from_leaf(&e.leaf).unwrap())
        .find(|e| matches!(e.body, EventBody::ApprovalRecorded(_)))
        .unwrap();
    assert_eq!(approval.actor, "bob");
    // The key made it; the event also says which credential carried it (the relaying
    // token, as the access log does).
    match &approval.auth {
        Some(Authentication::PersonalKey { sent_with, .. }) => {
            assert_eq!(
                sent_with.as_deref(),
                minted.auth.as_ref(),
                "{:?}",
                approval.auth
            );
        }
        other => panic!("{other:?}"),
    }
    // The same statement again, even with its unsigned key id changed or its signature
    // repeated, counts no more: a statement counts once.
    let mut copy = good.clone();
    copy.signatures[0].keyid = Some("someone-else".into());
    let twice = {
        let mut e = good.clone();
        e.signatures.push(e.signatures[0].clone());
        e
    };
    for replay in [good.clone(), copy, twice] {
        refused(replay, "this signed approval was already used").await;
    }
    // The ledger holds the signed statement and the (public) rationale, so anyone can
    // check the approval offline.
    let EventBody::ApprovalRecorded(recorded) = approval.body else {
        unreachable!()
    };
    assert_eq!(
        recorded.statement_digest,
        Some(custody_app::attestations::envelope_digest(&good))
    );
    assert_eq!(recorded.statement, Some(good));
    assert_eq!(recorded.rationale.as_deref(), Some("canary clean"));
    assert_eq!(recorded.rationale_digest, Some(sha256(b"canary clean")));
    assert_eq!(recorded.rationale_commitment, None);
}

/// A policy that counts only signed approvals (`signed = true`, for prod and for changes
/// of the policy): a sign-in or token vouched for by the server's configuration, which its
/// operator controls (an identity provider added there could name anyone), does not count;
/// a signature by the approver's enrolled key, checkable offline, does.
#[tokio::test]
async fn where_the_policy_counts_only_signed_approvals_a_sign_in_does_not_count() {
    let w = world().await;
    let strict = GOVERNED
        .replace("quorum = 2\n", "quorum = 2\nsigned = true\n")
        .replace(
            "approvals = { quorum = 1, roles = [\"approver\"], expires = \"24h\" }",
            "approvals = { quorum = 1, roles = [\"approver\"], expires = \"24h\", signed = true }\nbreak_glass = [\"approver\"]",
        );
    // Signed approvals of changes take enough owners with keys: sol and sam enrol theirs.
    let refused = w.apply_as("sam", &strict).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("needs 3 owners with an enrolled personal key"),
        "{refused}"
    );
    let (sol, sam) = (
        PrivateKey::generate(Algorithm::Ed25519),
        PrivateKey::generate(Algorithm::Ed25519),
    );
    let strict = format!(
        "{strict}[[person_key]]\nprincipal = \"sol\"\npath = \"keys/sol.pub\"\n[[person_key]]\nprincipal = \"sam\"\npath = \"keys/sam.pub\"\n"
    );
    let mut files = w.bundle(&strict);
    for (name, key) in [("sol", &sol), ("sam", &sam)] {
        files
            .files
            .insert(format!("keys/{name}.pub"), key.public_key().to_pem());
    }
    let asked = w.app.apply_policy(&person("sam"), &files).await.unwrap();
    let proposal = asked.proposal.unwrap();
    assert!(
        asked
            .changes
            .iter()
            .any(|c| c.direction == custody_policy::Direction::Stricter
                && c.what
                    == "prod: approvals count only when signed with an enrolled personal key"),
        "{:?}",
        asked.changes
    );
    // The version in force does not ask for signatures yet: two owners' sign-ins do.
    for who in ["sol", "sasha"] {
        w.review_as(who, &proposal.record.id, Verdict::Approve, "stricter")
            .await
            .unwrap();
    }
    assert_eq!(w.in_force().await, proposal.record.policy);

    // Carol signed in: recorded, not counted, saying why; bob's signature counts.
    let p = w.release_and_promote("3.0.0").await;
    let promotion = &p.promotion;
    let plain = Review {
        rationale: "fine".into(),
        risk: Risk::Low,
        confidential: false,
        statement: None,
    };
    let by_carol = w
        .app
        .review(
            &person("carol"),
            &promotion.id,
            Verdict::Approve,
            &plain,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        by_carol.promotion.status,
        custody_model::PromotionStatus::Pending
    );
    let why = by_carol.approval.unwrap().1.unwrap();
    assert!(
        why.contains("this environment counts only signed approvals"),
        "{why}"
    );
    let approves = Approved::promotion(promotion, &w.in_force().await);
    let signed_review = Review {
        statement: Some(signed(&w.bob, "bob", approves, Verdict::Approve, "fine")),
        ..plain.clone()
    };
    let by_bob = w
        .app
        .review(
            &person("bob"),
            &promotion.id,
            Verdict::Approve,
            &signed_review,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        by_bob.promotion.status,
        custody_model::PromotionStatus::Certified
    );
    // The decision replays, and an auditor's bundle traces the signed approval.
    assert!(w.app.replay(&by_bob.decision.id).await.unwrap().same);
    // Breaking glass overrides the approvals, so there it must be signed too.
    let glass = w.release_and_promote("3.0.1").await;
    let break_glass = |who: &'static str, statement| {
        let request = custody_app::Promote {
            release: glass.promotion.release.parse().unwrap(),
            environment: "prod".into(),
            break_glass: Some("checkout is down".into()),
            statement,
        };
        let app = &w.app;
        async move { app.promote(&person(who), &request, None).await }
    };
    let refused = break_glass("carol", None).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("breaking glass there, which overrides them, must be signed too"),
        "{refused}"
    );
    // A break-glass request signed for another release is refused as what it is.
    let elsewhere = Approved::BreakGlass {
        release: "shop@9.9.9".into(),
        environment: "prod".into(),
        policy: w.in_force().await,
    };
    let statement = signed(
        &w.bob,
        "bob",
        elsewhere,
        Verdict::Approve,
        "checkout is down",
    );
    let refused = break_glass("bob", Some(statement)).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .starts_with("the signed break-glass request does not count: "),
        "{refused}"
    );

    // A change of the policy now needs signed approvals: a sign-in is refused.
    let next = w.apply_as("sam", &loosened()).await.unwrap();
    let id = next.proposal.unwrap().record.id;
    let refused = w.review_as("sol", &id, Verdict::Approve, "ok").await;
    let err = refused.unwrap_err();
    assert_eq!(err.fault(), Fault::Denied);
    assert!(
        err.to_string()
            .contains("counts only approvals of its changes signed with an enrolled personal key"),
        "{err}"
    );
    // A rejection loosens nothing and needs no signature.
    w.review_as("sol", &id, Verdict::Reject, "no")
        .await
        .unwrap();
}

/// A personal key revoked by another process on the same store (a CLI on the data
/// directory, a second server) signs nothing from then on, at once: a server whose cache
/// still holds the keyring from before the revocation reads the keyring's record afresh to
/// check a signed approval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_by_another_process_signs_nothing_at_once() {
    let w = world().await;
    let body = async {
        // The tail has looked, so the cache serves; the promotion reads (and keeps) the
        // keyring.
        tokio::time::sleep(custody_app::FOLLOW_EVERY * 2).await;
        let p = w.release_and_promote("2.0.2").await;
        let approves = Approved::promotion(&p.promotion, &w.in_force().await);
        let bob_key = w.bob.public_key().key_id().to_string();
        w.other_process()
            .await
            .revoke_key(
                &person("sam"),
                &bob_key,
                &custody_app::RevokeKey {
                    reason: "laptop stolen".into(),
                    compromised_since: None,
                },
            )
            .await
            .unwrap();
        let review = Review {
            rationale: "fine".into(),
            risk: Risk::Low,
            confidential: false,
            statement: Some(signed(&w.bob, "bob", approves, Verdict::Approve, "fine")),
        };
        let refused = w
            .app
            .review(
                &person("bob"),
                &p.promotion.id,
                Verdict::Approve,
                &review,
                None,
            )
            .await;
        denied(refused, "was revoked");
    };
    tokio::select! {
        () = w.app.follow_ledger() => unreachable!("the tail follows until dropped"),
        () = body => {}
    }
}
