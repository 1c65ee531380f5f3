//! The world of the use-case tests: a real SQLite store in a temporary directory, the
//! test pipeline (testdata/flows.toml) put in force by the operator, a builder key and a
//! release key, and the use cases called with the arguments these tests pass.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    dead_code,
    reason = "test code; each test file uses part of this world"
)]

use std::sync::Arc;

use custody_app::attestations::{BuildFields, ManifestArtifact, sha256};
use custody_app::events::Event;
use custody_app::{
    Actor, App, AppResult, ApplyPolicy, AttachEvidence, DeployOutcome, DeployReport, Promote,
    PromotionOutcome, RecordRelease, RegisterArtifact, Rollback, RollbackOutcome,
};
use custody_crypto::note::NoteSigner;
use custody_crypto::{Algorithm, PrivateKey, Signer as _};
use custody_model::{Digest, Timestamp};
use custody_policy::Bundle;
use custody_store::{Location, SqlStore};

/// An artifact to register, as these tests write it: provenance made elsewhere, or a
/// builder key that signs it from the declared build.
#[derive(Default)]
pub(crate) struct NewArtifact<'a> {
    pub(crate) name: String,
    pub(crate) digest: Option<Digest>,
    pub(crate) build: Option<BuildFields>,
    pub(crate) provenance: Option<custody_crypto::dsse::Envelope>,
    pub(crate) builder_key: Option<&'a dyn custody_crypto::Signer>,
}

/// The use cases with the arguments these tests pass (each builds the request type).
pub(crate) trait Calls {
    async fn promote_to(
        &self,
        who: &Actor,
        release: &str,
        env: &str,
        key: Option<&str>,
    ) -> AppResult<PromotionOutcome>;
    async fn break_glass(
        &self,
        who: &Actor,
        release: &str,
        env: &str,
        reason: &str,
    ) -> AppResult<PromotionOutcome>;
    async fn register(
        &self,
        who: &Actor,
        new: NewArtifact<'_>,
    ) -> AppResult<custody_app::ArtifactRegistered>;
    async fn attach(
        &self,
        who: &Actor,
        artifact: &Digest,
        kind: &str,
        format: &str,
        file: Digest,
        key: Option<&str>,
    ) -> AppResult<u64>;
    async fn deploy(
        &self,
        who: &Actor,
        env: &str,
        digests: &[Digest],
        succeeded: bool,
        key: Option<&str>,
    ) -> AppResult<DeployOutcome>;
    async fn roll_back(
        &self,
        who: &Actor,
        env: &str,
        reason: &str,
        key: Option<&str>,
    ) -> AppResult<RollbackOutcome>;
    async fn apply(&self, who: &Actor, bundle: Bundle) -> AppResult<custody_app::PolicyChange>;
}

impl Calls for App<SqlStore> {
    async fn promote_to(
        &self,
        who: &Actor,
        release: &str,
        env: &str,
        key: Option<&str>,
    ) -> AppResult<PromotionOutcome> {
        let request = Promote {
            release: release.parse().unwrap(),
            environment: env.into(),
            break_glass: None,
            statement: None,
        };
        self.promote(who, &request, key).await
    }
    async fn break_glass(
        &self,
        who: &Actor,
        release: &str,
        env: &str,
        reason: &str,
    ) -> AppResult<PromotionOutcome> {
        let request = Promote {
            release: release.parse().unwrap(),
            environment: env.into(),
            break_glass: Some(reason.into()),
            statement: None,
        };
        self.promote(who, &request, None).await
    }
    async fn register(
        &self,
        who: &Actor,
        new: NewArtifact<'_>,
    ) -> AppResult<custody_app::ArtifactRegistered> {
        let digest = new.digest.unwrap();
        let request = match (new.builder_key, new.build) {
            (Some(key), Some(build)) => {
                RegisterArtifact::signed_by(key, &new.name, digest, None, build)?
            }
            (_, build) => RegisterArtifact {
                name: new.name,
                digest,
                size: None,
                build,
                provenance: new.provenance,
            },
        };
        self.register_artifact(who, &request).await
    }
    async fn attach(
        &self,
        who: &Actor,
        artifact: &Digest,
        kind: &str,
        format: &str,
        file: Digest,
        key: Option<&str>,
    ) -> AppResult<u64> {
        let evidence = AttachEvidence {
            kind: kind.into(),
            format: format.into(),
            digest: file,
            report: None,
        };
        self.attest(who, artifact, &evidence, key).await
    }
    async fn deploy(
        &self,
        who: &Actor,
        env: &str,
        digests: &[Digest],
        succeeded: bool,
        key: Option<&str>,
    ) -> AppResult<DeployOutcome> {
        use custody_app::events::DeployStatus;
        let status = if succeeded {
            DeployStatus::Succeeded
        } else {
            DeployStatus::Failed
        };
        let report = DeployReport {
            environment: env.into(),
            digests: digests.to_vec(),
            status,
        };
        self.deploy_report(who, &report, key).await
    }
    async fn roll_back(
        &self,
        who: &Actor,
        env: &str,
        reason: &str,
        key: Option<&str>,
    ) -> AppResult<RollbackOutcome> {
        self.rollback(
            who,
            env,
            &Rollback {
                reason: reason.into(),
            },
            key,
        )
        .await
    }
    async fn apply(&self, who: &Actor, bundle: Bundle) -> AppResult<custody_app::PolicyChange> {
        self.apply_policy(
            who,
            &ApplyPolicy {
                files: bundle.files,
            },
        )
        .await
    }
}

/// An event as JSON, to look into.
pub(crate) fn v(event: &Event) -> serde_json::Value {
    event.to_value().unwrap()
}

pub(crate) struct Setup {
    pub(crate) app: Arc<App<SqlStore>>,
    pub(crate) builder: PrivateKey,
    pub(crate) release_key: PrivateKey,
    pub(crate) _dir: tempfile::TempDir,
}

pub(crate) const BUILDER: &str = "https://ci.example/builder/v1";
pub(crate) const REPO: &str = "https://git.example/acme/shop";

/// The test pipeline (testdata/flows.toml) with `extra_prod` as prod's gates.
pub(crate) fn policy_text(extra_prod: &str) -> String {
    include_str!("../testdata/flows.toml").replace("# prod's gates\n", &format!("{extra_prod}\n"))
}

pub(crate) fn bundle(text: &str, builder: &PrivateKey, release: Option<&PrivateKey>) -> Bundle {
    let mut b = Bundle::default();
    b.files.insert("custody.toml".into(), text.into());
    b.files
        .insert("keys/builder.pub".into(), builder.public_key().to_pem());
    if let Some(r) = release {
        b.files
            .insert("keys/release.pub".into(), r.public_key().to_pem());
    }
    b
}

pub(crate) fn at(t: &str) -> Timestamp {
    t.parse().unwrap()
}

/// The operator of the data directory, who puts the (ungoverned) test policies in force.
pub(crate) fn operator() -> Actor {
    Actor::new("local:ops", at("2026-11-10T10:00:00Z"))
        .unwrap()
        .authenticated_by(custody_model::Authentication::Local { user: "ops".into() })
}

/// Someone acting at the tests' time, signed in with a credential of their own (so their
/// approvals are theirs).
pub(crate) fn actor(who: &str) -> Actor {
    someone(who, "2026-11-10T10:00:00Z")
}

/// Someone acting at time `t`, signed in with a credential of their own.
pub(crate) fn someone(who: &str, t: &str) -> Actor {
    Actor::new(who, at(t))
        .unwrap()
        .authenticated_by(custody_model::Authentication::Oidc {
            issuer: "https://idp.example".into(),
            subject: who.into(),
        })
}

pub(crate) async fn setup(extra_prod: &str) -> Setup {
    setup_policy(&policy_text(extra_prod)).await
}

pub(crate) async fn setup_policy(policy: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::create(
        &Location::Sqlite(dir.path().join("c.db")),
        log_key(),
        at("2026-11-10T09:00:00Z"),
    )
    .await
    .unwrap();
    let app = App::new(store, Box::new(PrivateKey::generate(Algorithm::Ed25519)));
    let (builder, release_key) = (
        PrivateKey::generate(Algorithm::Ed25519),
        PrivateKey::generate(Algorithm::EcdsaP256),
    );
    app.apply(&operator(), bundle(policy, &builder, Some(&release_key)))
        .await
        .unwrap();
    Setup {
        app: Arc::new(app),
        builder,
        release_key,
        _dir: dir,
    }
}

/// The tests' log key (the same each time, so a test can open its store again).
pub(crate) fn log_key() -> NoteSigner {
    let key = PrivateKey::ed25519_from_seed(&[7; 32]).unwrap();
    NoteSigner::new("test.custody/log", Box::new(key)).unwrap()
}

pub(crate) fn build(commit: &str, profile: &str) -> BuildFields {
    BuildFields {
        builder_id: BUILDER.into(),
        source_repo: REPO.into(),
        source_commit: commit.into(),
        parameters: [("profile".to_owned(), profile.to_owned())].into(),
        environment: Default::default(),
        started: None,
        finished: None,
        nondeterministic_steps: vec!["embeds build time".into()],
        invocation_id: None,
    }
}

impl Setup {
    /// The store's SQLite file, to edit as an older version of custody left it.
    pub(crate) async fn sqlite(&self) -> sqlx::SqlitePool {
        let db = self._dir.path().join("c.db");
        sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display()))
            .await
            .unwrap()
    }

    /// Another `App` on the same store, opened after it was edited behind the first's back
    /// (so nothing the first one cached hides the edit).
    pub(crate) async fn reopened(&self) -> App<SqlStore> {
        let db = Location::Sqlite(self._dir.path().join("c.db"));
        let store = SqlStore::open(&db, log_key()).await.unwrap();
        App::new(store, Box::new(PrivateKey::generate(Algorithm::Ed25519)))
    }

    pub(crate) async fn artifact(&self, name: &str, content: &str, commit: &str) -> Digest {
        let digest = sha256(content.as_bytes());
        self.app
            .register(
                &actor("ci"),
                NewArtifact {
                    name: name.into(),
                    digest: Some(digest.clone()),
                    build: Some(build(commit, "release")),
                    builder_key: Some(&self.builder),
                    ..NewArtifact::default()
                },
            )
            .await
            .unwrap();
        digest
    }

    pub(crate) async fn release(&self, version: &str, digest: &Digest) -> String {
        self.release_of(version, &[("shop", digest)]).await
    }

    /// Release 1.0.0 of shop, certified in build by rita and asked for in prod by sam,
    /// where it waits on the approvals the test's policy asks for: that promotion's id.
    pub(crate) async fn waiting_in_prod(&self) -> String {
        let d = self.artifact("shop", "v1", "c1").await;
        let r = self.release("1.0.0", &d).await;
        let certified = self.app.promote_to(&actor("rita"), &r, "build", None).await;
        assert!(certified.unwrap().decision.decision.allowed);
        let waiting = self.app.promote_to(&actor("sam"), &r, "prod", None).await;
        let waiting = waiting.unwrap();
        assert!(!waiting.decision.decision.allowed);
        waiting.promotion.id
    }

    /// Rita asks to promote `release` into `env` at the tests' time: certified, or waiting.
    pub(crate) async fn promoted(&self, release: &str, env: &str) -> PromotionOutcome {
        self.app
            .promote_to(&actor("rita"), release, env, None)
            .await
            .unwrap()
    }

    /// Release `version` of shop made of the named artifacts.
    pub(crate) async fn release_of(&self, version: &str, named: &[(&str, &Digest)]) -> String {
        let artifacts: Vec<ManifestArtifact> = named
            .iter()
            .map(|(name, digest)| ManifestArtifact {
                name: (*name).into(),
                digest: (*digest).clone(),
            })
            .collect();
        let manifest = RecordRelease::signed(
            "shop",
            version,
            &artifacts,
            "rita",
            at("2026-11-10T10:00:00Z"),
            Some(&self.release_key),
        )
        .unwrap();
        self.app
            .record_release(&actor("rita"), &manifest, None)
            .await
            .unwrap()
            .release
    }
}
