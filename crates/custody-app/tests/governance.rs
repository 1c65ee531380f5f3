//! Nobody acts alone and nobody acts as someone else, through the use cases on a real
//! SQLite store: a policy change is a proposal a quorum of other owners approves (the
//! quorum in force, never the proposer), the first policy is the one recorded bootstrap,
//! an approval counts only from its approver (their own credential or their signature),
//! and what was decided before a change replays the same after it.
//!
//! Here: the governed world and the bootstrap. The parts: [`proposals`] (a policy change
//! proposed and approved by a quorum of other owners) and [`approvals`] (an approval
//! counts only from its approver, and a confidential one hides its statement).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

#[path = "governance/approvals.rs"]
mod approvals;
#[path = "governance/proposals.rs"]
mod proposals;

use custody_app::approval_statement::{self, ApprovalPredicate, Approved};
use custody_app::attestations::{BuildFields, ManifestArtifact, sha256};
use custody_app::{
    Actor, App, AppError, AppResult, ApplyPolicy, Fault, PolicyChange, Promote, PromotionOutcome,
    RecordRelease, RegisterArtifact, ReviewProposal,
};
use custody_crypto::note::NoteSigner;
use custody_crypto::{Algorithm, PrivateKey, Signer as _};
use custody_model::{Authentication, Risk, Timestamp, Verdict};
use custody_policy::Bundle;
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

/// `who`, signed in with a token an admin (root) made for them: not their own credential.
fn minted(who: &str, token: &str) -> Actor {
    Actor::new(who, at(NOW))
        .unwrap()
        .authenticated_by(Authentication::Token {
            token: token.into(),
            created_by: Some("root".into()),
            personal: false,
        })
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

    /// `who` (with a credential of their own) asks to put `text` in force.
    async fn apply_as(&self, who: &str, text: &str) -> AppResult<PolicyChange> {
        self.app
            .apply_policy(&person(who), &self.bundle(text))
            .await
    }

    /// The operator puts the first policy in force: at once, and recorded as such.
    async fn bootstrap(&self) {
        let first = self
            .app
            .apply_policy(&operator(), &self.bundle(GOVERNED))
            .await
            .unwrap();
        assert!(first.changed && first.bootstrap, "{first:?}");
    }

    /// `who`'s review of proposal `id`, with a credential of their own.
    async fn review_as(
        &self,
        who: &str,
        id: &str,
        verdict: Verdict,
        why: &str,
    ) -> AppResult<PolicyChange> {
        let request = review(why);
        self.app
            .review_proposal(&person(who), id, verdict, &request)
            .await
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
    let store = SqlStore::create(&Location::Sqlite(dir.path().join("c.db")), log(), at(NOW))
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

/// The world's log key (the same each time, so a second process can open its store).
fn log() -> NoteSigner {
    let key = PrivateKey::ed25519_from_seed(&[9; 32]).unwrap();
    NoteSigner::new("test.custody/log", Box::new(key)).unwrap()
}

impl World {
    /// Another process's `App` on the world's store.
    async fn other_process(&self) -> App<SqlStore> {
        let db = Location::Sqlite(self._dir.path().join("c.db"));
        let store = SqlStore::open(&db, log()).await.unwrap();
        App::new(store, Box::new(PrivateKey::generate(Algorithm::Ed25519)))
    }
}

async fn world() -> World {
    let w = empty_world().await;
    // The first policy: put in force by the operator at once, and recorded as such.
    w.bootstrap().await;
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
    w.bootstrap().await;
}
