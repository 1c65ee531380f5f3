//! The world the keyring tests share: a real SQLite store with a policy trusting a
//! builder key and a release key (and, once enrolled, alice's personal approval key), and
//! the steps the tests take in it: register and release, promote, approve, rotate.

#![allow(dead_code, reason = "each test file uses a part")]

use std::collections::BTreeMap;

use custody_app::attestations::{BuildFields, ManifestArtifact, sha256};
use custody_app::{
    Actor, App, AppError, AppResult, ApplyPolicy, Handover, KeyChanged, Promote, PromotionOutcome,
    RecordRelease, RegisterArtifact, Review, RevokeKey, RotateKey,
};
use custody_crypto::note::NoteSigner;
use custody_crypto::{Algorithm, PrivateKey, Signer as _};
use custody_model::{Digest, Timestamp};
use custody_policy::{Bundle, KeyPurpose};
use custody_store::{Location, SqlStore};

pub(crate) const POLICY: &str = include_str!("../testdata/keyring.toml");

pub(crate) fn at(t: &str) -> Timestamp {
    format!("2026-11-10T{t}Z").parse().unwrap()
}

/// The operator of the data directory, who puts the (ungoverned) test policies in force.
pub(crate) fn operator(t: &str) -> Actor {
    Actor::new("local:ops", at(t))
        .unwrap()
        .authenticated_by(custody_model::Authentication::Local { user: "ops".into() })
}

pub(crate) fn actor(who: &str, t: &str) -> Actor {
    Actor::new(who, at(t))
        .unwrap()
        .authenticated_by(custody_model::Authentication::Oidc {
            issuer: "https://idp.example".into(),
            subject: who.into(),
        })
}

pub(crate) struct Setup {
    pub(crate) app: App<SqlStore>,
    pub(crate) builder: PrivateKey,
    pub(crate) release_key: PrivateKey,
    /// The log's public key, for verifying bundles offline.
    pub(crate) log_pub: custody_crypto::PublicKey,
    /// The attestor's key (PKCS#8 PEM), to open the store again with it.
    attestor: String,
    _dir: tempfile::TempDir,
}

pub(crate) fn bundle(builder: &PrivateKey, release: &PrivateKey) -> Bundle {
    let mut b = Bundle::default();
    b.files.insert("custody.toml".into(), POLICY.into());
    b.files
        .insert("keys/builder.pub".into(), builder.public_key().to_pem());
    b.files
        .insert("keys/release.pub".into(), release.public_key().to_pem());
    b
}

/// A build of shop from `commit` by the trusted builder, with `parameters`.
pub(crate) fn shop_build(commit: String, parameters: BTreeMap<String, String>) -> BuildFields {
    BuildFields {
        builder_id: "https://ci.example/builder/v1".into(),
        source_repo: "https://git.example/acme/shop".into(),
        source_commit: commit,
        parameters,
        environment: Default::default(),
        started: None,
        finished: None,
        nondeterministic_steps: vec![],
        invocation_id: None,
    }
}

pub(crate) async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let log_key = PrivateKey::generate(Algorithm::Ed25519);
    let log_pub = log_key.public_key().clone();
    let log = NoteSigner::new("test.custody/log", Box::new(log_key)).unwrap();
    let store = SqlStore::create(
        &Location::Sqlite(dir.path().join("c.db")),
        log,
        at("08:00:00"),
    )
    .await
    .unwrap();
    let attestor = PrivateKey::generate(Algorithm::Ed25519);
    let attestor_pem = attestor.to_pkcs8_pem().unwrap();
    let app = App::new(store, Box::new(attestor));
    let (builder, release_key) = (
        PrivateKey::generate(Algorithm::Ed25519),
        PrivateKey::generate(Algorithm::EcdsaP256),
    );
    app.apply_policy(
        &operator("09:00:00"),
        &ApplyPolicy {
            files: bundle(&builder, &release_key).files,
        },
    )
    .await
    .unwrap();
    Setup {
        app,
        builder,
        release_key,
        log_pub,
        attestor: attestor_pem,
        _dir: dir,
    }
}

impl Setup {
    /// The instance with `leaf` appended behind the use cases' back, as whoever holds the
    /// database could: what an auditor's verification must catch.
    pub(crate) async fn forge(self, leaf: custody_model::CanonicalJson) -> Setup {
        use custody_store::{Append, Store as _};
        let store = self.app.into_store();
        store.append(Append::event(leaf)).await.unwrap();
        let attestor = PrivateKey::from_pkcs8_pem(&self.attestor).unwrap();
        Setup {
            app: App::new(store, Box::new(attestor)),
            ..self
        }
    }

    /// Exports `scope` as an auditor and verifies the bundle offline with the log's key.
    pub(crate) async fn audit(
        &self,
        scope: custody_app::audit::Scope,
    ) -> custody_app::audit::Report {
        let auditor = custody_app::Authenticated {
            principal: "audrey".into(),
            auth: custody_model::Authentication::System,
            roles: vec!["auditor".into()],
        };
        let request = custody_app::audit::ExportRequest {
            scope,
            prove_from: None,
        };
        let (_, bundle) = self
            .app
            .audit_export(
                &auditor,
                &request,
                at("14:00:00"),
                Vec::new(),
                &mut |_, _| {},
            )
            .await
            .unwrap();
        custody_app::audit::verify_bundle(&bundle[..], &self.log_pub, &mut |_| {}).unwrap()
    }

    /// Registers an artifact built at `t` and records release `version` of it signed by
    /// `key` at `t`; returns its digest.
    pub(crate) async fn release(&self, version: &str, key: &PrivateKey, t: &str) -> Digest {
        let digest = sha256(version.as_bytes());
        let parameters = [("v".to_owned(), version.to_owned())].into();
        let build = shop_build(format!("{:040x}", version.len()), parameters);
        let request =
            RegisterArtifact::signed_by(&self.builder, "shop", digest.clone(), None, build)
                .unwrap();
        self.app
            .register_artifact(&actor("ci", t), &request)
            .await
            .unwrap();
        let manifest = RecordRelease::signed(
            "shop",
            version,
            &[ManifestArtifact {
                name: "shop".into(),
                digest: digest.clone(),
            }],
            "rita",
            at(t),
            Some(key),
        )
        .unwrap();
        self.app
            .record_release(&actor("rita", t), &manifest, None)
            .await
            .unwrap();
        digest
    }

    /// The deploy gate's answer for `digest` in `env`, asked at 10:00: whether it allows it.
    pub(crate) async fn allows(&self, env: &str, digest: &Digest) -> bool {
        let v = self.app.verify(env, digest, at("10:00:00")).await.unwrap();
        v.allowed
    }

    /// The operator puts `policy` in force at `t`, with `release` as the release key.
    pub(crate) async fn apply(&self, policy: String, release: &PrivateKey, t: &str) {
        let mut b = bundle(&self.builder, release);
        b.files.insert("custody.toml".into(), policy);
        self.app
            .apply_policy(&operator(t), &ApplyPolicy { files: b.files })
            .await
            .unwrap();
    }

    /// sec revokes the key `key_id` at `t` for `reason`, compromised since `since`.
    pub(crate) async fn revoke(
        &self,
        t: &str,
        key_id: &str,
        reason: &str,
        since: Option<&str>,
    ) -> AppResult<KeyChanged> {
        let request = revocation(reason, since);
        self.app
            .revoke_key(&actor("sec", t), key_id, &request)
            .await
    }

    /// Argo reports `digests` running in `env` at `t`.
    pub(crate) async fn running(&self, env: &str, digests: &[Digest], t: &str) {
        let report = custody_app::DeployReport {
            environment: env.into(),
            digests: digests.to_vec(),
            status: custody_app::events::DeployStatus::Succeeded,
        };
        self.app
            .deploy_report(&actor("argo", t), &report, None)
            .await
            .unwrap();
    }

    /// Promotes `shop@version` to `env` at `t`: whether it was certified, and the reasons.
    pub(crate) async fn promote(&self, version: &str, env: &str, t: &str) -> (bool, String) {
        let out = self
            .app
            .promote(
                &actor("rita", t),
                &Promote {
                    release: format!("shop@{version}").parse().unwrap(),
                    environment: env.into(),
                    break_glass: None,
                    statement: None,
                },
                None,
            )
            .await
            .unwrap();
        let d = out.decision.decision;
        let reasons = d
            .gates
            .iter()
            .map(|g| format!("{}: {}", g.gate, g.reason))
            .collect::<Vec<_>>()
            .join(" | ");
        (d.allowed, reasons)
    }

    pub(crate) async fn rotate(
        &self,
        old: &PrivateKey,
        new: &PrivateKey,
        t: &str,
    ) -> Result<(), AppError> {
        let handover = Handover::sign(KeyPurpose::ReleaseSigner, old, new).unwrap();
        self.app
            .rotate_key(&actor("sec", t), &RotateKey { handover })
            .await
            .map(|_| ())
    }
}

impl Setup {
    /// Puts in force (at 09:30) a policy that enrols `alice`'s personal approval key and
    /// asks one approver's approval for `prod`.
    pub(crate) async fn enroll_alice(&self, alice: &PrivateKey) {
        let mut b = bundle(&self.builder, &self.release_key);
        b.files
            .insert("keys/alice.pub".into(), alice.public_key().to_pem());
        b.files.insert(
            "custody.toml".into(),
            POLICY.replace(
                "security = [\"sec\"]\n",
                "security = [\"sec\"]\napprover = [\"alice\"]\n",
            ) + "approvals = { quorum = 1, roles = [\"approver\"], expires = \"72h\" }\n\
                   [[person_key]]\nprincipal = \"alice\"\npath = \"keys/alice.pub\"\n",
        );
        self.app
            .apply_policy(&operator("09:30:00"), &ApplyPolicy { files: b.files })
            .await
            .unwrap();
    }

    /// Rita asks to promote `shop@version` to `prod` at `t`, and alice approves it with a
    /// statement signed by her key `alice`.
    pub(crate) async fn approve(
        &self,
        alice: &PrivateKey,
        version: &str,
        t: &str,
    ) -> Result<PromotionOutcome, AppError> {
        use custody_app::approval_statement::{self, ApprovalPredicate, Approved};
        use custody_model::{Risk, Verdict};
        let pending = self
            .app
            .promote(
                &actor("rita", t),
                &Promote {
                    release: format!("shop@{version}").parse().unwrap(),
                    environment: "prod".into(),
                    break_glass: None,
                    statement: None,
                },
                None,
            )
            .await
            .unwrap();
        let who = actor("alice", t);
        let predicate = ApprovalPredicate {
            approver: "alice".into(),
            verdict: Verdict::Approve,
            rationale: "reviewed".into(),
            risk: Some(Risk::Low),
            approves: Approved::promotion(
                &pending.promotion,
                &pending.decision.decision.policy_digest,
            ),
            signed_at: who.now,
            expires: who.now.plus_seconds(3600),
        };
        let review = Review {
            rationale: "reviewed".into(),
            risk: Risk::Low,
            confidential: false,
            statement: Some(approval_statement::sign(alice, &predicate).unwrap()),
        };
        self.app
            .review(&who, &pending.promotion.id, Verdict::Approve, &review, None)
            .await
    }
}

/// A revocation for `reason`, compromised since `since` (a time of the tests' day).
pub(crate) fn revocation(reason: &str, since: Option<&str>) -> RevokeKey {
    RevokeKey {
        reason: reason.into(),
        compromised_since: since.map(at),
    }
}

pub(crate) fn id(key: &PrivateKey) -> String {
    key.public_key().key_id().to_string()
}
