//! Separation of duties, decided in one place: who may approve, reject or review after the
//! fact, and rejections that count only from those who could have approved.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod fixture;

use custody_policy::{
    Facts, Gate, NotEligible, Policy, Role, Standing, Status, approval_standings, compile,
    evaluate, may_review,
};
use fixture::{HOUR, NOW, POLICY, bundle, keys, passing_facts};

/// The fixture, plus: an approver for staging only, an admin, a contractor whose production
/// approval ended an hour ago, and a security engineer for production only.
fn policy() -> (Policy, fixture::Keys) {
    let k = keys();
    let ended = custody_model::Timestamp::from_unix_seconds(NOW - HOUR).unwrap();
    let text = POLICY.replace(
        "[roles]\n",
        &format!(
            "[roles]\n\"approver:staging\" = [\"stella\"]\nadmin = [\"root\"]\n\"approver:production\" = [{{ principal = \"cleo\", until = \"{ended}\" }}]\n\"security:production\" = [\"pat\"]\n"
        ),
    );
    (compile(&bundle(&text, &k)).unwrap(), k)
}

fn reject(facts: &mut Facts, by: &str) {
    let mut r = facts.approvals[0].clone();
    r.id = format!("reject-{by}");
    r.by = by.into();
    r.approve = false;
    facts.approvals.push(r);
}

#[test]
fn one_function_says_who_may_review_and_why_not() {
    let (policy, k) = policy();
    let facts = passing_facts(&policy, &k, 2);
    for who in ["alice", "sam", "pat"] {
        assert_eq!(may_review(&policy, &facts, who, NOW), Ok(()), "{who}");
    }
    let why = |who: &str| {
        may_review(&policy, &facts, who, NOW)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(why("rita"), "requested the promotion");
    assert_eq!(why("ci-bot"), "built an artifact of the release");
    let mut signed = facts.clone();
    signed.release.signed_by = "bob".into();
    assert_eq!(
        may_review(&policy, &signed, "bob", NOW),
        Err(NotEligible::SignedRelease)
    );
    assert_eq!(
        why("mallory"),
        "holds none of the roles [\"approver\", \"security\"]"
    );
    assert_eq!(
        why("root"),
        "holds none of the roles [\"approver\", \"security\"]",
        "admin is not a reviewer"
    );
    assert!(
        why("stella").contains("only for other environments than production"),
        "{}",
        why("stella")
    );
    assert!(why("cleo").contains("ended at"), "{}", why("cleo"));
    // The time is the caller's: before the contractor's grant ended, they could.
    assert_eq!(may_review(&policy, &facts, "cleo", NOW - 2 * HOUR), Ok(()));
    // In staging, stella may; pat (production security) may not.
    let mut staging = facts.clone();
    staging.environment = "staging".into();
    assert_eq!(may_review(&policy, &staging, "stella", NOW), Ok(()));
    assert!(may_review(&policy, &staging, "pat", NOW).is_err());
    // An environment the policy does not declare has no reviewers.
    let mut nowhere = facts.clone();
    nowhere.environment = "prod".into();
    assert!(matches!(
        may_review(&policy, &nowhere, "alice", NOW),
        Err(NotEligible::UnknownEnvironment(_))
    ));
}

#[test]
fn an_environment_without_an_approvals_rule_is_reviewed_by_approvers_and_security() {
    let (policy, k) = policy();
    let mut facts = passing_facts(&policy, &k, 1);
    facts.environment = "test".into();
    assert_eq!(may_review(&policy, &facts, "alice", NOW), Ok(()));
    assert_eq!(may_review(&policy, &facts, "sam", NOW), Ok(()));
    assert!(may_review(&policy, &facts, "root", NOW).is_err());
    assert_eq!(
        custody_policy::DEFAULT_REVIEWERS,
        [Role::Approver, Role::Security]
    );
}

#[test]
fn a_rejection_counts_only_from_someone_who_could_have_approved() {
    let (policy, k) = policy();
    let base = passing_facts(&policy, &k, 2);
    // Neither a staging approver, an admin, the requester, a builder, nor an approver
    // whose grant has ended can end a production promotion.
    for who in ["stella", "root", "rita", "ci-bot", "cleo", "mallory"] {
        let mut f = base.clone();
        reject(&mut f, who);
        let d = evaluate(&policy, &f);
        assert!(d.allowed, "{who}'s rejection counted: {d:#?}");
        assert!(!d.ends_promotion());
        let standings = approval_standings(&policy, &f).unwrap();
        let (_, standing) = standings.last().unwrap();
        assert!(
            matches!(standing, Standing::Ignored(why) if why.starts_with(&format!("{who} ("))),
            "{who}: {standing:?}"
        );
    }
    // Someone who could have approved ends it.
    for who in ["dave", "pat"] {
        let mut f = base.clone();
        reject(&mut f, who);
        let d = evaluate(&policy, &f);
        let g = d.gates.iter().find(|g| g.gate == Gate::Approvals).unwrap();
        assert_eq!(g.status, Status::Fail, "{who}: {g:?}");
        assert_eq!(g.reason, format!("rejected by {who}"));
        assert!(d.ends_promotion());
    }
    // A superseded or expired rejection does not count either (as before).
    let mut f = base.clone();
    reject(&mut f, "dave");
    f.approvals.last_mut().unwrap().superseded = true;
    assert!(evaluate(&policy, &f).allowed);
}

#[test]
fn approvals_and_after_the_fact_reviews_agree() {
    // Whatever may_review says of an approver is what the approvals gate does with
    // their approval, for every kind of principal.
    let (policy, k) = policy();
    let base = passing_facts(&policy, &k, 1);
    for who in [
        "alice", "sam", "pat", "stella", "root", "rita", "ci-bot", "cleo", "mallory",
    ] {
        let mut f = base.clone();
        f.approvals.truncate(1);
        f.approvals[0].by = who.into();
        let (_, standing) = approval_standings(&policy, &f).unwrap().remove(0);
        match may_review(&policy, &f, who, f.now) {
            Ok(()) => assert_eq!(standing, Standing::Counted, "{who}"),
            Err(why) => assert_eq!(
                standing,
                Standing::Ignored(format!("{who} ({why})")),
                "{who}"
            ),
        }
    }
}
