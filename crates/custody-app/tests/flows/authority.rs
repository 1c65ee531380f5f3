//! Who may act where, and what their acts count for: break-glass past a freeze, loud and
//! reviewed after the fact by someone else; nobody reviewing what a token they minted
//! asked for; a role scoped to one environment; a certified
//! card's approvals counted against the quorum its decision was made under.

use custody_app::AppError;
use custody_app::records::{PromotionStatus, Verdict};

use super::common::*;
use super::deploy_gate;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_goes_past_a_freeze_loudly_and_waits_for_someone_elses_review() {
    let prod = "approvals = { quorum = 1, roles = [\"approver\"] }\nbreak_glass = [\"deployer\"]\nfreeze = [{ from = \"2026-11-10T00:00:00Z\", until = \"2026-11-12T00:00:00Z\", reason = \"change freeze\" }]";
    let text = policy_text(prod).replace("[roles]\n", "[roles]\n\"deployer:prod\" = [\"olga\"]\n");
    let s = setup_policy(&text).await;
    let d = s.artifact("shop", "hotfix", "h1").await;
    let r = s.release("5.0.1", &d).await;
    s.promoted(&r, "build").await;
    // The freeze holds an ordinary request.
    let held = s.promoted(&r, "prod").await;
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
    assert!(!deploy_gate(&s, "prod", &d).await.allowed);

    // Olga, on call, breaks glass: certified, and the deploy gate lets it run.
    let glass = s
        .app
        .break_glass(&actor("olga"), &r, "prod", "checkout is down")
        .await
        .unwrap();
    assert!(glass.decision.decision.allowed && glass.decision.decision.broke_glass());
    let gate = deploy_gate(&s, "prod", &d).await;
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
    let review_as = async |who: &str, verdict: Verdict| {
        s.app.review(&actor(who), &id, verdict, &review, None).await
    };
    for (who, why) in [
        ("olga", "requested the promotion"),
        ("rita", "signed the release"),
        ("ci", "built an artifact"),
        ("mallory", "holds none of the roles"),
    ] {
        match review_as(who, Verdict::Approve).await {
            Err(AppError::Denied(m)) => assert!(m.contains(why), "{who}: {m}"),
            other => panic!("{who}: {other:?}"),
        }
    }
    let reviewed = review_as("alice", Verdict::Reject).await.unwrap();
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
    let gate = deploy_gate(&s, "prod", &d).await;
    assert!(!gate.allowed, "{gate:?}");
    assert!(
        gate.reasons[0].contains("alice has since rejected it"),
        "{gate:?}"
    );
    // Once reviewed, it is closed.
    match review_as("bob", Verdict::Approve).await {
        Err(AppError::Conflict(m)) => assert!(m.contains("already certified"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// A promotion asked for with a token an approver minted for the requester: the approver
/// saw its secret and could have asked themselves, so they do not review it (else one
/// person, with a token made for someone else, would ask and approve alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoever_minted_the_requesters_token_does_not_review_the_promotion() {
    let s = setup("approvals = { quorum = 1, roles = [\"approver\"] }").await;
    let d = s.artifact("shop", "v1", "c1").await;
    let r = s.release("1.0.0", &d).await;
    let built = s.app.promote_to(&actor("rita"), &r, "build", None).await;
    assert!(built.unwrap().decision.decision.allowed);
    let through_alice = custody_app::Actor::new("sam", actor("sam").now)
        .unwrap()
        .authenticated_by(custody_model::Authentication::Token {
            token: "tok-sam".into(),
            created_by: Some("alice".into()),
            personal: false,
        });
    let waiting = s.app.promote_to(&through_alice, &r, "prod", None).await;
    let id = waiting.unwrap().promotion.id;
    let review = custody_app::Review {
        rationale: "looks fine".into(),
        risk: custody_app::records::Risk::Low,
        confidential: false,
        statement: None,
    };
    // Recorded, as an approval that does not count is, and not counted, saying why.
    let by_alice = s
        .app
        .review(&actor("alice"), &id, Verdict::Approve, &review, None)
        .await
        .unwrap();
    assert_eq!(by_alice.promotion.status, PromotionStatus::Pending);
    let why = by_alice.approval.unwrap().1.unwrap();
    assert!(
        why.contains("alice (made the token the promotion was requested with)"),
        "{why}"
    );
    // Nor may she reject it: a rejection counts only from someone who could approve.
    match s
        .app
        .review(&actor("alice"), &id, Verdict::Reject, &review, None)
        .await
    {
        Err(AppError::Denied(m)) => {
            assert!(
                m.contains("made the token the promotion was requested with"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Someone with no hand in the request approves it.
    let approved = s
        .app
        .review(&actor("bob"), &id, Verdict::Approve, &review, None)
        .await;
    assert_eq!(
        approved.unwrap().promotion.status,
        PromotionStatus::Certified
    );
}

/// The same through a token the requester made for themselves with the one an admin
/// minted for them: the admin still saw the secret that made it, and still does not review.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_made_with_a_minted_one_still_names_its_minter() {
    let text = policy_text("approvals = { quorum = 1, roles = [\"approver\"] }")
        .replace("[roles]\n", "[roles]\nadmin = [\"alice\"]\n");
    let s = setup_policy(&text).await;
    let d = s.artifact("shop", "v1", "c1").await;
    let r = s.release("1.0.0", &d).await;
    let built = s.app.promote_to(&actor("rita"), &r, "build", None).await;
    assert!(built.unwrap().decision.decision.allowed);
    let as_token = |t: &custody_app::TokenRecord| {
        custody_app::Actor::new("sam", actor("sam").now)
            .unwrap()
            .authenticated_by(custody_model::Authentication::Token {
                token: t.id.clone(),
                created_by: Some(t.created_by.clone()),
                personal: t.personal,
            })
    };
    let ask = |expires: &str| custody_app::CreateToken {
        principal: "sam".into(),
        expires: expires.into(),
        description: String::new(),
    };
    let (minted, _) = s
        .app
        .create_token(&actor("alice"), &ask("2h"), None)
        .await
        .unwrap();
    let (laundered, _) = s
        .app
        .create_token(&as_token(&minted), &ask("1h"), None)
        .await
        .unwrap();
    assert_eq!(laundered.created_by, "sam");
    let waiting = s
        .app
        .promote_to(&as_token(&laundered), &r, "prod", None)
        .await
        .unwrap();
    assert_eq!(
        waiting.promotion.requested_through.as_deref(),
        Some("alice")
    );
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

/// A certified card's "N of M" counts against the quorum of the policy version its
/// decision was made under: raising the quorum afterwards does not make the release look
/// short of approvals, nor lowering it, over-approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certified_card_keeps_the_quorum_it_was_decided_under() {
    let quorum = |n: u32| format!("approvals = {{ quorum = {n}, roles = [\"approver\"] }}");
    let s = setup(&quorum(1)).await;
    let d = s.artifact("shop", "v1", "c1").await;
    let r = s.release("1.0.0", &d).await;
    s.promoted(&r, "build").await;
    let waiting = s.promoted(&r, "prod").await;
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
            Verdict::Approve,
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
