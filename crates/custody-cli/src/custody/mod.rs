//! What a pipeline command talks to: the local data directory's use cases, or a custody
//! server. Both take the use cases' own request types and give back their own result
//! types and errors, so each command makes one call and prints and exits alike either way
//! (the same shape as `ledger_source::Ledger` for the log).

use custody_app::records::{ApprovalRecord, DecisionRecord, PromotionRecord};
use custody_app::{
    Actor, App, AppError, AppResult, ArtifactRegistered, AttachEvidence, CreateToken,
    DeployOutcome, DeployReport, HistoryEntry, HistoryFilter, Promote, PromotionOutcome,
    RecordRelease, RegisterArtifact, ReleaseCreated, Replay, Review, RoleHolding, Rollback,
    RollbackOutcome, TokenInfo, Verification,
};
use custody_model::{Digest, Verdict};
use custody_store::SqlStore;
use serde::Deserialize;
use serde_json::json;

use crate::client::{Client, RemoteArgs, segment};
use crate::context::{ActorArgs, InstanceArgs, ReadTarget, Target};

mod governance;
pub(crate) use governance::PolicyInForce;

pub(crate) fn now() -> AppResult<custody_model::Timestamp> {
    Ok(crate::context::clock()
        .map_err(|e| AppError::Invalid(e.to_string()))?
        .now())
}

/// The local use cases or a server.
pub(crate) enum Custody {
    /// The data directory on this machine, acting as `actor` (if the command names one).
    Local {
        app: Box<App<SqlStore>>,
        actor: Option<Actor>,
    },
    /// A custody server; the token says who acts.
    Remote(Client),
}

#[derive(Deserialize)]
struct RemotePromotion {
    promotion: PromotionRecord,
    reviews: Vec<ApprovalRecord>,
}

/// Who acts, as `custody whoami` shows it.
#[derive(Debug, serde::Serialize, Deserialize)]
pub(crate) struct Whoami {
    pub(crate) principal: String,
    pub(crate) auth: custody_model::Authentication,
    pub(crate) roles: Vec<String>,
}

/// What creating a token gave: its record, and its text the first time only.
#[derive(Debug, Deserialize)]
pub(crate) struct CreatedToken {
    /// The text, shown once (`None` for a replay of the same idempotency key).
    pub(crate) token: Option<String>,
    /// The token's record.
    pub(crate) record: TokenInfo,
}

impl Custody {
    /// For a command that records something: the server if `--server` was given, otherwise
    /// the data directory, acting as `--as`.
    pub(crate) async fn open(target: &Target) -> anyhow::Result<Custody> {
        Custody::connect(&target.instance, &target.remote, Some(&target.actor)).await
    }

    /// For a command that only reads.
    pub(crate) async fn reading(target: &ReadTarget) -> anyhow::Result<Custody> {
        Custody::connect(&target.instance, &target.remote, None).await
    }

    /// The server if `--server` was given, otherwise the data directory. `actor` is who
    /// acts locally (commands that only read pass `None`).
    pub(crate) async fn connect(
        instance: &InstanceArgs,
        remote: &RemoteArgs,
        actor: Option<&ActorArgs>,
    ) -> anyhow::Result<Custody> {
        if let Some(client) = remote.client()? {
            return Ok(Custody::Remote(client));
        }
        let app = instance.app().await?;
        let actor = match actor {
            Some(a) => Some(a.local_actor(&app, remote.token.as_deref()).await?),
            None => None,
        };
        Ok(Custody::Local {
            app: Box::new(app),
            actor,
        })
    }

    fn actor(actor: &Option<Actor>) -> AppResult<&Actor> {
        actor
            .as_ref()
            .ok_or_else(|| AppError::Invalid("this command reads only; nobody acts".into()))
    }

    pub(crate) async fn promote(
        &self,
        request: &Promote,
        key: Option<&str>,
    ) -> AppResult<PromotionOutcome> {
        match self {
            Custody::Local { app, actor } => app.promote(Self::actor(actor)?, request, key).await,
            Custody::Remote(c) => c.post("/api/v1/promotions", request, key).await,
        }
    }

    pub(crate) async fn review(
        &self,
        promotion: &str,
        verdict: Verdict,
        request: &Review,
        key: Option<&str>,
    ) -> AppResult<PromotionOutcome> {
        match self {
            Custody::Local { app, actor } => {
                app.review(Self::actor(actor)?, promotion, verdict, request, key)
                    .await
            }
            Custody::Remote(c) => {
                let action = verdict;
                let path = format!("/api/v1/promotions/{}/{action}", segment(promotion));
                c.post(&path, request, key).await
            }
        }
    }

    pub(crate) async fn deploy_report(
        &self,
        report: &DeployReport,
        key: Option<&str>,
    ) -> AppResult<DeployOutcome> {
        match self {
            Custody::Local { app, actor } => {
                app.deploy_report(Self::actor(actor)?, report, key).await
            }
            Custody::Remote(c) => c.post("/api/v1/deploys", report, key).await,
        }
    }

    pub(crate) async fn rollback(
        &self,
        environment: &str,
        request: &Rollback,
        key: Option<&str>,
    ) -> AppResult<RollbackOutcome> {
        match self {
            Custody::Local { app, actor } => {
                app.rollback(Self::actor(actor)?, environment, request, key)
                    .await
            }
            Custody::Remote(c) => {
                let path = format!("/api/v1/environments/{}/rollback", segment(environment));
                c.post(&path, request, key).await
            }
        }
    }

    pub(crate) async fn register_artifact(
        &self,
        request: &RegisterArtifact,
    ) -> AppResult<ArtifactRegistered> {
        match self {
            Custody::Local { app, actor } => {
                app.register_artifact(Self::actor(actor)?, request).await
            }
            Custody::Remote(c) => c.post("/api/v1/artifacts", request, None).await,
        }
    }

    pub(crate) async fn attest(
        &self,
        artifact: &Digest,
        request: &AttachEvidence,
        key: Option<&str>,
    ) -> AppResult<u64> {
        match self {
            Custody::Local { app, actor } => {
                app.attest(Self::actor(actor)?, artifact, request, key)
                    .await
            }
            Custody::Remote(c) => {
                let path = format!(
                    "/api/v1/artifacts/{}/evidence",
                    segment(&artifact.to_string())
                );
                let answer: serde_json::Value = c.post(&path, request, key).await?;
                answer["ledger_index"].as_u64().ok_or_else(|| {
                    AppError::Invalid("the server's answer names no ledger_index".into())
                })
            }
        }
    }

    pub(crate) async fn record_release(
        &self,
        request: &RecordRelease,
        key: Option<&str>,
    ) -> AppResult<ReleaseCreated> {
        match self {
            Custody::Local { app, actor } => {
                app.record_release(Self::actor(actor)?, request, key).await
            }
            Custody::Remote(c) => c.post("/api/v1/releases", request, key).await,
        }
    }

    /// A promotion as recorded (for signing an approval of it).
    /// A promotion and its reviews, oldest first: all of them to the operator on the data
    /// directory; from a server, confidential rationales only to those who may read them.
    pub(crate) async fn promotion(
        &self,
        id: &str,
    ) -> AppResult<(PromotionRecord, Vec<ApprovalRecord>)> {
        match self {
            Custody::Local { app, .. } => app.promotion(id).await,
            Custody::Remote(c) => {
                let read: RemotePromotion = c
                    .get(&format!("/api/v1/promotions/{}", segment(id)), &())
                    .await?;
                Ok((read.promotion, read.reviews))
            }
        }
    }

    /// Who acts, and the roles they hold now.
    pub(crate) async fn whoami(&self) -> AppResult<Whoami> {
        match self {
            Custody::Local { app, actor } => {
                let actor = Self::actor(actor)?;
                let auth = actor
                    .auth
                    .clone()
                    .unwrap_or(custody_model::Authentication::System);
                let who = app.authenticated(&actor.principal, auth, actor.now).await?;
                Ok(Whoami {
                    principal: who.principal,
                    auth: who.auth,
                    roles: who.roles,
                })
            }
            Custody::Remote(c) => c.get("/api/v1/whoami", &()).await,
        }
    }

    pub(crate) async fn create_token(
        &self,
        request: &CreateToken,
        key: Option<&str>,
    ) -> AppResult<CreatedToken> {
        match self {
            Custody::Local { app, actor } => {
                let (record, token) = app.create_token(Self::actor(actor)?, request, key).await?;
                Ok(CreatedToken {
                    token,
                    record: TokenInfo::from(&record),
                })
            }
            Custody::Remote(c) => c.post("/api/v1/tokens", request, key).await,
        }
    }

    pub(crate) async fn tokens(&self) -> AppResult<Vec<TokenInfo>> {
        match self {
            Custody::Local { app, .. } => {
                Ok(app.tokens().await?.iter().map(TokenInfo::from).collect())
            }
            Custody::Remote(c) => c.get("/api/v1/tokens", &()).await,
        }
    }

    pub(crate) async fn revoke_token(&self, id: &str) -> AppResult<TokenInfo> {
        match self {
            Custody::Local { app, actor } => Ok(TokenInfo::from(
                &app.revoke_token(Self::actor(actor)?, id).await?,
            )),
            Custody::Remote(c) => {
                c.post(
                    &format!("/api/v1/tokens/{}/revoke", segment(id)),
                    &json!({}),
                    None,
                )
                .await
            }
        }
    }

    pub(crate) async fn keys(&self) -> AppResult<Vec<custody_app::keyring::KeyView>> {
        match self {
            Custody::Local { app, .. } => app.keys().await,
            Custody::Remote(c) => c.get("/api/v1/keys", &()).await,
        }
    }

    pub(crate) async fn key_impact(&self, key: &str) -> AppResult<custody_app::KeyImpact> {
        match self {
            Custody::Local { app, .. } => app.key_impact(key, now()?).await,
            Custody::Remote(c) => {
                c.get(&format!("/api/v1/keys/{}/impact", segment(key)), &())
                    .await
            }
        }
    }

    pub(crate) async fn rotate_key(
        &self,
        request: &custody_app::RotateKey,
    ) -> AppResult<custody_app::KeyChanged> {
        match self {
            Custody::Local { app, actor } => app.rotate_key(Self::actor(actor)?, request).await,
            Custody::Remote(c) => c.post("/api/v1/keys/rotate", request, None).await,
        }
    }

    pub(crate) async fn revoke_key(
        &self,
        key: &str,
        request: &custody_app::RevokeKey,
    ) -> AppResult<custody_app::KeyChanged> {
        match self {
            Custody::Local { app, actor } => {
                app.revoke_key(Self::actor(actor)?, key, request).await
            }
            Custody::Remote(c) => {
                c.post(
                    &format!("/api/v1/keys/{}/revoke", segment(key)),
                    request,
                    None,
                )
                .await
            }
        }
    }

    /// The artifact `given` names: a whole digest, or (on the data directory) the start of
    /// one as `custody history` prints it (`App::artifact_by_prefix`).
    pub(crate) async fn artifact_by_prefix(&self, given: &str) -> AppResult<custody_model::Digest> {
        if let Ok(digest) = given.trim().parse() {
            return Ok(digest);
        }
        match self {
            Custody::Local { app, .. } => app.artifact_by_prefix(given).await,
            Custody::Remote(_) => Err(custody_app::AppError::Invalid(format!(
                "{given:?} is not a whole digest: through a server give sha256:<64 hex digits> (`custody history --json` prints them); on the data directory its first 8 or more will do"
            ))),
        }
    }

    pub(crate) async fn history(&self, filter: &HistoryFilter) -> AppResult<Vec<HistoryEntry>> {
        match self {
            Custody::Local { app, .. } => app.history(filter).await,
            Custody::Remote(c) => {
                // A server answers a bounded page (its newest entries before `before`):
                // page back in time until the limit (0: all) is met or the log runs out.
                let page = custody_store::MAX_ENTRIES_PER_READ as usize;
                let mut all: Vec<HistoryEntry> = Vec::new();
                let mut asked = filter.clone();
                loop {
                    let left = match filter.limit {
                        0 => page,
                        limit => (limit - all.len()).min(page),
                    };
                    asked.limit = left;
                    let mut got: Vec<HistoryEntry> = c.get("/api/v1/history", &asked).await?;
                    let (count, first) = (got.len(), got.first().map(|e| e.index));
                    got.append(&mut all);
                    all = got;
                    let done = filter.limit != 0 && all.len() >= filter.limit;
                    match first {
                        Some(index) if count == left && !done => asked.before = Some(index),
                        _ => return Ok(all),
                    }
                }
            }
        }
    }

    pub(crate) async fn decision(&self, id: &str) -> AppResult<DecisionRecord> {
        match self {
            Custody::Local { app, .. } => app.decision(id).await,
            Custody::Remote(c) => {
                c.get(&format!("/api/v1/decisions/{}", segment(id)), &())
                    .await
            }
        }
    }

    pub(crate) async fn replay(&self, id: &str) -> AppResult<Replay> {
        match self {
            Custody::Local { app, .. } => app.replay(id).await,
            Custody::Remote(c) => {
                c.get(&format!("/api/v1/decisions/{}/replay", segment(id)), &())
                    .await
            }
        }
    }

    pub(crate) async fn access_review(&self, unused_days: i64) -> AppResult<Vec<RoleHolding>> {
        match self {
            Custody::Local { app, .. } => {
                let now = crate::context::clock()
                    .map_err(|e| AppError::Invalid(e.to_string()))?
                    .now();
                app.access_review(now, unused_days).await
            }
            Custody::Remote(c) => {
                c.get("/api/v1/access-review", &[("unused_days", unused_days)])
                    .await
            }
        }
    }

    /// The deploy gate. A denial is an answer (a verdict that says no), not an error.
    pub(crate) async fn verify(
        &self,
        environment: &str,
        digest: &Digest,
    ) -> AppResult<Verification> {
        match self {
            Custody::Local { app, .. } => {
                Ok((*app.verify(environment, digest, now()?).await?).clone())
            }
            Custody::Remote(c) => {
                let query = [
                    ("env", environment.to_owned()),
                    ("digest", digest.to_string()),
                ];
                let (status, body) = c
                    .exchange(
                        reqwest::Method::GET,
                        "/api/v1/verify",
                        &query,
                        None::<&()>,
                        None,
                    )
                    .await?;
                // 403 with a verdict is a denial; a 403 without one (the token may not ask)
                // is an error like any other.
                if status.is_success() || status == reqwest::StatusCode::FORBIDDEN {
                    if let Ok(verdict) = serde_json::from_slice::<Verification>(&body) {
                        return Ok(verdict);
                    }
                }
                Err(crate::client::error_of(status, &body))
            }
        }
    }
}
