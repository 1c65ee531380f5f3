//! A policy change, once governed, is a proposal: a quorum of other owners (the quorum in
//! force, never the proposer, never someone else's credential) puts it in force; it cannot
//! lower its own bar, go stale unnoticed, or leave the policy ungoverned; the operator
//! alone changes nothing.

use custody_app::ReviewProposal;
use custody_app::approval_statement::Approved;
use custody_app::events::EventBody;
use custody_model::Verdict;
use custody_policy::Direction;

use super::*;

/// A proposal made with a token another owner minted for the proposer: the minter saw
/// its secret and could have proposed it themselves, so they do not review it either (else
/// one owner, with a token made for another, would change the rules alone).
#[tokio::test]
async fn whoever_minted_the_proposers_token_does_not_review_it() {
    let w = world().await;
    let before = w.in_force().await;
    let through_sol = Actor::new("sam", at(NOW))
        .unwrap()
        .authenticated_by(Authentication::Token {
            token: "tok-sam".into(),
            created_by: Some("sol".into()),
            personal: false,
        });
    let asked = w
        .app
        .apply_policy(&through_sol, &w.bundle(&loosened()))
        .await
        .unwrap();
    let id = asked.proposal.unwrap().record.id;
    denied(
        w.review_as("sol", &id, Verdict::Approve, "lgtm").await,
        "sol made the token sam proposed",
    );
    assert_eq!(w.in_force().await, before);
    // Two owners who had no hand in it still can.
    w.review_as("sasha", &id, Verdict::Approve, "ok")
        .await
        .unwrap();
    assert_eq!(w.in_force().await, before);
}

#[tokio::test]
async fn loosening_the_rules_takes_a_quorum_of_other_owners() {
    let w = world().await;
    let before = w.in_force().await;
    let old = w.release_and_promote("1.0.0").await;
    assert_eq!(
        old.promotion.status,
        custody_model::PromotionStatus::Pending
    );

    // sam (security) asks to drop prod's approvals: a proposal, not a change.
    let asked = w.apply_as("sam", &loosened()).await.unwrap();
    assert!(!asked.changed && !asked.bootstrap);
    let proposal = asked.proposal.clone().unwrap();
    assert_eq!(proposal.standing, "open");
    assert_eq!(proposal.approvals_needed, 2);
    assert!(
        asked
            .changes
            .iter()
            .any(|c| c.direction == Direction::Looser && c.what.contains("prod")),
        "{:?}",
        asked.changes
    );
    assert_eq!(w.in_force().await, before, "a proposal changed the rules");
    let pending = w.release_and_promote("1.0.1").await;
    assert_eq!(
        pending.promotion.status,
        custody_model::PromotionStatus::Pending,
        "prod certified without approval while the loosening only waits"
    );
    // Asking again reuses the open proposal.
    let again = w.apply_as("sam", &loosened()).await.unwrap();
    assert_eq!(again.proposal.unwrap().record.id, proposal.record.id);

    let id = proposal.record.id.as_str();
    // The proposer never counts; someone who owns nothing never counts.
    denied(
        w.review_as("sam", id, Verdict::Approve, "mine").await,
        "may not review it",
    );
    denied(
        w.review_as("bob", id, Verdict::Approve, "lgtm").await,
        "may not review policy changes",
    );
    // A token an admin minted for sol is not sol's.
    let minted = minted("sol", "tok1");
    denied(
        w.app
            .review_proposal(&minted, id, Verdict::Approve, &review("ok"))
            .await,
        "root",
    );

    // One other owner is not enough for a quorum of two.
    let one = w.review_as("sol", id, Verdict::Approve, "fine by me").await;
    let one = one.unwrap();
    assert!(!one.changed);
    assert_eq!(one.proposal.as_ref().unwrap().approvals_needed, 1);
    let twice = w.review_as("sol", id, Verdict::Approve, "again").await;
    let twice = twice.unwrap_err();
    assert_eq!(twice.fault(), Fault::Conflict);
    assert_eq!(w.in_force().await, before);

    // The second, signed with sasha's enrolled key: now it is in force.
    let approves = Approved::Proposal {
        proposal: id.into(),
        policy: proposal.record.policy.clone(),
        previous: proposal.record.previous.clone(),
    };
    let statement = signed(
        &w.sasha,
        "sasha",
        approves,
        Verdict::Approve,
        "accepted risk",
    );
    let two = w
        .app
        .review_proposal(
            &person("sasha"),
            id,
            Verdict::Approve,
            &ReviewProposal {
                rationale: "accepted risk".into(),
                statement: Some(statement),
            },
        )
        .await
        .unwrap();
    assert!(two.changed, "{two:?}");
    let after = w.in_force().await;
    assert_eq!(after, proposal.record.policy);
    let applied_at = two.ledger_index.unwrap();

    // The ledger says who approved, and an alert goes out naming it looser.
    let log = w.app.log();
    let leaf = &log.entries(applied_at, applied_at + 1).await.unwrap()[0];
    let event = custody_app::events::Event::from_leaf(&leaf.leaf).unwrap();
    let EventBody::PolicyApplied(applied) = &event.body else {
        panic!("{event:?}")
    };
    assert_eq!(applied.proposal.as_deref(), Some(id));
    assert_eq!(applied.approvers, ["sol", "sasha"]);
    let alerts = custody_app::alerts::alerts_for_event(applied_at, &event);
    assert!(
        alerts
            .iter()
            .any(|a| a.rule == "policy-changed" && a.severity == "critical"),
        "{alerts:?}"
    );

    // It takes effect from its recorded version: new promotions certify without approval,
    // the decision made before it replays exactly as recorded.
    let now_open = w.release_and_promote("1.0.2").await;
    assert_eq!(
        now_open.promotion.status,
        custody_model::PromotionStatus::Certified
    );
    let replay = w.app.replay(&old.decision.id).await.unwrap();
    assert!(replay.same);
    assert!(!replay.replayed.allowed);

    // Sasha's key turns out compromised since before her review: the revocation (and so
    // its alert) names that review, so the owners know which version to look at again.
    let sasha_key = w.sasha.public_key().key_id().to_string();
    w.app
        .revoke_key(
            &person("sam"),
            &sasha_key,
            &custody_app::RevokeKey {
                reason: "sasha phished".into(),
                compromised_since: Some(at(NOW)),
            },
        )
        .await
        .unwrap();
    let history = w.app.history(&Default::default()).await.unwrap();
    let affected = history
        .iter()
        .find_map(|e| match &e.event.body {
            EventBody::KeyRevoked(r) => Some(r.affected.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        affected
            .iter()
            .any(|l| l.starts_with(&format!("policy review by sasha of proposal {id}"))),
        "{affected:?}"
    );
}

#[tokio::test]
async fn a_proposal_cannot_lower_its_own_bar() {
    let w = world().await;
    let lower = GOVERNED.replace("quorum = 2\n", "quorum = 1\n");
    let asked = w.apply_as("sam", &lower).await.unwrap();
    let p = asked.proposal.unwrap();
    assert_eq!(p.record.quorum, 2, "the quorum in force decides");
    assert!(
        asked
            .changes
            .iter()
            .any(|c| c.direction == Direction::Looser
                && c.what.contains("approvals from owners (was 2)")),
        "{:?}",
        asked.changes
    );
    let id = &p.record.id;
    let one = w
        .review_as("sol", id, Verdict::Approve, "ok")
        .await
        .unwrap();
    assert!(!one.changed);
    // A rejection closes it; it cannot be approved afterwards.
    let no = w
        .review_as("sasha", id, Verdict::Reject, "no")
        .await
        .unwrap();
    assert!(!no.changed);
    assert_eq!(no.proposal.unwrap().standing, "rejected");
    let late = w.review_as("sam", id, Verdict::Approve, "x").await;
    let late = late.unwrap_err();
    assert_eq!(late.fault(), Fault::Conflict);
}

#[tokio::test]
async fn once_governed_nobody_puts_a_policy_in_force_alone() {
    let w = world().await;
    // Not the operator of the data directory either: the policy now has owners.
    let asked = w
        .app
        .apply_policy(&operator(), &w.bundle(&loosened()))
        .await;
    let err = asked.expect_err("the operator changed a governed policy alone");
    assert_eq!(err.fault(), Fault::Denied, "{err}");
    // A stale proposal: another version came into force since it was made.
    let a = w.apply_as("sam", &loosened()).await.unwrap().proposal;
    let stricter = GOVERNED.replace("expires = \"24h\"", "expires = \"12h\"");
    let b = w.apply_as("sam", &stricter).await.unwrap().proposal;
    let (a, b) = (a.unwrap().record.id, b.unwrap().record.id);
    for who in ["sol", "sasha"] {
        w.review_as(who, &b, Verdict::Approve, "ok").await.unwrap();
    }
    let stale = w.review_as("sol", &a, Verdict::Approve, "ok").await;
    let stale = stale.unwrap_err();
    assert_eq!(stale.fault(), Fault::Conflict);
    assert!(
        stale.to_string().contains("propose the new version again"),
        "{stale}"
    );
}

/// A governed policy cannot be approved into one that names too few owners: that would
/// leave the next change to the operator alone, the bootstrap reopened. Nothing is
/// proposed; the same owners with a quorum they meet are.
#[tokio::test]
async fn a_proposal_never_leaves_the_policy_ungoverned() {
    let w = world().await;
    let before = w.in_force().await;
    // Without its [governance] section and its owners (the compiler refuses a section
    // naming too few; without one, the owners are security's holders, quorum 1).
    let ungoverned = GOVERNED
        .replace("[governance]\nowners = [\"security\"]\nquorum = 2\n", "")
        .replace(
            "security = [\"sam\", \"sasha\", \"sol\"]",
            "security = [\"sam\"]",
        );
    assert_ne!(ungoverned, GOVERNED);
    let err = w
        .apply_as("sam", &ungoverned)
        .await
        .expect_err("proposed a policy nobody could change");
    assert_eq!(err.fault(), Fault::Invalid, "{err}");
    assert!(
        err.to_string().contains(
            "nobody could approve a change of it, and the operator alone could replace it"
        ),
        "{err}"
    );
    assert!(w.app.proposals(true, at(NOW)).await.unwrap().is_empty());
    assert_eq!(w.in_force().await, before);
    let smaller = GOVERNED
        .replace(
            "security = [\"sam\", \"sasha\", \"sol\"]",
            "security = [\"sam\", \"sol\"]",
        )
        .replace("quorum = 2\n", "quorum = 1\n");
    let asked = w.apply_as("sam", &smaller).await.unwrap();
    assert!(asked.proposal.is_some());
}
