//! Nobody acts alone and nobody acts as someone else, through the use cases on a real
//! SQLite store: a policy change is a proposal a quorum of other owners approves (the
//! quorum in force, never the proposer), the first policy is the one recorded bootstrap,
//! an approval counts only from its approver (their own credential or their signature),
//! and what was decided before a change replays the same after it.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use custody_app::approval_statement::{self, ApprovalPredicate, Approved};
use custody_app::attestations::{BuildFields, ManifestArtifact, sha256};
use custody_app::events::EventBody;
use custody_app::{
    Actor, App, AppError, ApplyPolicy, Fault, Promote, PromotionOutcome, RecordRelease,
    RegisterArtifact, Review, ReviewProposal,
};
use custody_crypto::note::NoteSigner;
use custody_crypto::{Algorithm, PrivateKey, Signer as _};
use custody_model::{Authentication, Risk, Timestamp, Verdict};
use custody_policy::{Bundle, Direction};
use custody_store::{Location, SqlStore};

const GOVERNED: &str = include_str!("testdata/governed.toml");

struct World {
    app: App<SqlStore>,
    builder: PrivateKey,
    release: PrivateKey,
    sasha: PrivateKey,
    bob: PrivateKey,
    _dir: tempfile::TempDir,
}

fn at(t: &str) -> Timestamp {
    t.parse().unwrap()
}

const NOW: &str = "2026-11-10T10:00:00Z";

/// `who`, signed in with a credential of their own.
fn person(who: &str) -> Actor {
    Actor::new(who, at(NOW))
        .unwrap()
        .authenticated_by(Authentication::Oidc {
            issuer: "https://idp.example".into(),
            subject: who.into(),
        })
}

/// The operator on the data directory.
fn operator() -> Actor {
    Actor::new("local:ops", at(NOW))
        .unwrap()
        .authenticated_by(Authentication::Local { user: "ops".into() })
}

impl World {
    fn bundle(&self, text: &str) -> ApplyPolicy {
        let mut b = Bundle::default();
        b.files.insert("custody.toml".into(), text.into());
        for (name, key) in [
            ("builder", &self.builder),
            ("release", &self.release),
            ("sasha", &self.sasha),
            ("bob", &self.bob),
        ] {
            b.files
                .insert(format!("keys/{name}.pub"), key.public_key().to_pem());
        }
        ApplyPolicy { files: b.files }
    }

    async fn in_force(&self) -> String {
        self.app.policy_in_force().await.unwrap().0.digest
    }

    async fn release_and_promote(&self, version: &str) -> PromotionOutcome {
        let digest = sha256(version.as_bytes());
        let build = BuildFields {
            builder_id: "https://ci.example/builder/v1".into(),
            source_repo: "https://git.example/acme/shop".into(),
            source_commit: "1".repeat(40),
            parameters: Default::default(),
            environment: Default::default(),
            started: None,
            finished: None,
            nondeterministic_steps: Vec::new(),
            invocation_id: None,
        };
        let registration =
            RegisterArtifact::signed_by(&self.builder, "shop", digest.clone(), None, build)
                .unwrap();
        self.app
            .register_artifact(&person("ci"), &registration)
            .await
            .unwrap();
        let artifacts = vec![ManifestArtifact {
            name: "shop".into(),
            digest,
        }];
        let manifest = RecordRelease::signed(
            "shop",
            version,
            &artifacts,
            "rita",
            at(NOW),
            Some(&self.release),
        )
        .unwrap();
        let rita = person("rita");
        self.app
            .record_release(&rita, &manifest, None)
            .await
            .unwrap();
        for env in ["build", "prod"] {
            let request = Promote {
                release: format!("shop@{version}").parse().unwrap(),
                environment: env.into(),
                break_glass: None,
                statement: None,
            };
            let outcome = self.app.promote(&rita, &request, None).await.unwrap();
            if env == "prod" {
                return outcome;
            }
        }
        unreachable!()
    }
}

/// A world with no policy in force yet.
async fn empty_world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let log = NoteSigner::new(
        "test.custody/log",
        Box::new(PrivateKey::generate(Algorithm::Ed25519)),
    )
    .unwrap();
    let store = SqlStore::create(&Location::Sqlite(dir.path().join("c.db")), log, at(NOW))
        .await
        .unwrap();
    World {
        app: App::new(store, Box::new(PrivateKey::generate(Algorithm::Ed25519))),
        builder: PrivateKey::generate(Algorithm::Ed25519),
        release: PrivateKey::generate(Algorithm::EcdsaP256),
        sasha: PrivateKey::generate(Algorithm::Ed25519),
        bob: PrivateKey::generate(Algorithm::Ed25519),
        _dir: dir,
    }
}

async fn world() -> World {
    let w = empty_world().await;
    // The first policy: put in force by the operator at once, and recorded as such.
    let first = w
        .app
        .apply_policy(&operator(), &w.bundle(GOVERNED))
        .await
        .unwrap();
    assert!(first.changed && first.bootstrap, "{first:?}");
    w
}

fn denied(result: Result<impl std::fmt::Debug, AppError>, needle: &str) {
    let err = result.expect_err(needle);
    assert_eq!(err.fault(), Fault::Denied, "{err}");
    assert!(err.to_string().contains(needle), "{needle:?} not in: {err}");
}

fn review(why: &str) -> ReviewProposal {
    ReviewProposal {
        rationale: why.into(),
        statement: None,
    }
}

/// prod without its approval gate: what the insider wanted.
fn loosened() -> String {
    GOVERNED.replace(
        "approvals = { quorum = 1, roles = [\"approver\"], expires = \"24h\" }\n",
        "",
    )
}

#[tokio::test]
async fn only_the_data_directorys_operator_puts_the_first_policy_in_force() {
    let w = empty_world().await;
    // Neither a person with a credential of their own nor a caller whose authentication
    // is unknown bootstraps; nothing is recorded.
    let unknown = Actor::new("local:ops", at(NOW)).unwrap();
    for who in [person("sam"), unknown] {
        denied(
            w.app.apply_policy(&who, &w.bundle(GOVERNED)).await,
            "no policy is in force yet",
        );
    }
    assert_eq!(w.app.log().size().await.unwrap(), 0);
    let first = w
        .app
        .apply_policy(&operator(), &w.bundle(GOVERNED))
        .await
        .unwrap();
    assert!(first.changed && first.bootstrap, "{first:?}");
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
    let asked = w
        .app
        .apply_policy(&person("sam"), &w.bundle(&loosened()))
        .await
        .unwrap();
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
    let again = w
        .app
        .apply_policy(&person("sam"), &w.bundle(&loosened()))
        .await
        .unwrap();
    assert_eq!(again.proposal.unwrap().record.id, proposal.record.id);

    let id = proposal.record.id.as_str();
    // The proposer never counts; someone who owns nothing never counts.
    denied(
        w.app
            .review_proposal(&person("sam"), id, Verdict::Approve, &review("mine"))
            .await,
        "may not review it",
    );
    denied(
        w.app
            .review_proposal(&person("bob"), id, Verdict::Approve, &review("lgtm"))
            .await,
        "may not review policy changes",
    );
    // A token an admin minted for sol is not sol's.
    let minted = Actor::new("sol", at(NOW))
        .unwrap()
        .authenticated_by(Authentication::Token {
            token: "tok1".into(),
            created_by: Some("root".into()),
            personal: false,
        });
    denied(
        w.app
            .review_proposal(&minted, id, Verdict::Approve, &review("ok"))
            .await,
        "root",
    );

    // One other owner is not enough for a quorum of two.
    let one = w
        .app
        .review_proposal(&person("sol"), id, Verdict::Approve, &review("fine by me"))
        .await
        .unwrap();
    assert!(!one.changed);
    assert_eq!(one.proposal.as_ref().unwrap().approvals_needed, 1);
    let twice = w
        .app
        .review_proposal(&person("sol"), id, Verdict::Approve, &review("again"))
        .await
        .unwrap_err();
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
    let asked = w
        .app
        .apply_policy(&person("sam"), &w.bundle(&lower))
        .await
        .unwrap();
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
    let one = w
        .app
        .review_proposal(
            &person("sol"),
            &p.record.id,
            Verdict::Approve,
            &review("ok"),
        )
        .await
        .unwrap();
    assert!(!one.changed);
    // A rejection closes it; it cannot be approved afterwards.
    let no = w
        .app
        .review_proposal(
            &person("sasha"),
            &p.record.id,
            Verdict::Reject,
            &review("no"),
        )
        .await
        .unwrap();
    assert!(!no.changed);
    assert_eq!(no.proposal.unwrap().standing, "rejected");
    let late = w
        .app
        .review_proposal(&person("sam"), &p.record.id, Verdict::Approve, &review("x"))
        .await
        .unwrap_err();
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
    let a = w
        .app
        .apply_policy(&person("sam"), &w.bundle(&loosened()))
        .await
        .unwrap()
        .proposal
        .unwrap();
    let stricter = GOVERNED.replace("expires = \"24h\"", "expires = \"12h\"");
    let b = w
        .app
        .apply_policy(&person("sam"), &w.bundle(&stricter))
        .await
        .unwrap()
        .proposal
        .unwrap();
    for who in ["sol", "sasha"] {
        w.app
            .review_proposal(&person(who), &b.record.id, Verdict::Approve, &review("ok"))
            .await
            .unwrap();
    }
    let stale = w
        .app
        .review_proposal(
            &person("sol"),
            &a.record.id,
            Verdict::Approve,
            &review("ok"),
        )
        .await
        .unwrap_err();
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
        .app
        .apply_policy(&person("sam"), &w.bundle(&ungoverned))
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
    let asked = w
        .app
        .apply_policy(&person("sam"), &w.bundle(&smaller))
        .await
        .unwrap();
    assert!(asked.proposal.is_some());
}

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

fn signed(
    key: &PrivateKey,
    who: &str,
    approves: Approved,
    verdict: Verdict,
    why: &str,
) -> custody_crypto::dsse::Envelope {
    signed_at(key, who, approves, verdict, why, at(NOW), 3600)
}

fn signed_at(
    key: &PrivateKey,
    who: &str,
    approves: Approved,
    verdict: Verdict,
    why: &str,
    when: Timestamp,
    valid: u64,
) -> custody_crypto::dsse::Envelope {
    let risk = matches!(approves, Approved::Promotion { .. }).then_some(Risk::Low);
    let predicate = ApprovalPredicate {
        approver: who.into(),
        verdict,
        rationale: why.into(),
        risk,
        approves,
        signed_at: when,
        expires: when.plus_seconds(valid),
    };
    approval_statement::sign(key, &predicate).unwrap()
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
    let minted = Actor::new("bob", at(NOW))
        .unwrap()
        .authenticated_by(Authentication::Token {
            token: "tok2".into(),
            created_by: Some("root".into()),
            personal: false,
        });
    denied(
        w.app
            .review(&minted, &promotion.id, Verdict::Approve, &with(None), None)
            .await,
        "root",
    );
    // Signed by the wrong key, tampered with, about another promotion, expired: refused.
    let rogue = PrivateKey::generate(Algorithm::Ed25519);
    let bad = [
        (
            signed(
                &rogue,
                "bob",
                approves.clone(),
                Verdict::Approve,
                "canary clean",
            ),
            "no enrolled personal key",
        ),
        (
            {
                let mut e = signed(
                    &w.bob,
                    "bob",
                    approves.clone(),
                    Verdict::Approve,
                    "canary clean",
                );
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
        (
            signed(
                &w.bob,
                "bob",
                approves.clone(),
                Verdict::Reject,
                "canary clean",
            ),
            "Reject",
        ),
        (
            signed(
                &w.sasha,
                "sasha",
                approves.clone(),
                Verdict::Approve,
                "canary clean",
            ),
            "sasha",
        ),
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
    let good = signed(&w.bob, "bob", approves, Verdict::Approve, "canary clean");
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
    assert!(
        matches!(approval.auth, Some(Authentication::PersonalKey { .. })),
        "{:?}",
        approval.auth
    );
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
