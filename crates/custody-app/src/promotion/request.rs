//! Asking for a promotion: the request, evaluated at once.

use custody_model::ReleaseRef;
use custody_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{PromotionOutcome, Superseded, decide::Staged};
use crate::app::{Actor, App, Once, new_id, own_scope};
use crate::events::{Event, EventBody, PromotionRequested};
use crate::records::{BreakGlass, PromotionRecord, PromotionStatus, ReleaseRecord, kind};
use crate::{AppError, AppResult};

/// A request to promote a release into an environment (the body of
/// `POST /api/v1/promotions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Promote {
    /// The release, `NAME@VERSION`.
    #[schema(value_type = String, example = "shop@1.4.2")]
    pub release: ReleaseRef,
    /// The environment.
    pub environment: String,
    /// Break glass, with this reason: if the policy lets the requester break glass into the
    /// environment, the gates that only time, people or a freeze hold closed are overridden
    /// (never the release's signature, naming or provenance); the decision says so, an
    /// alert is raised, and an after-the-fact review by someone else is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<String>,
    /// With `break_glass`: the requester's signed statement of it (an approval statement
    /// of kind `break-glass`, signed with their enrolled personal key), which makes the
    /// break-glass theirs whoever's token relays it. Breaking glass overrides the approvals
    /// gate, so, like an approval, it counts only from the person's own credential: this,
    /// an OIDC sign-in, or a token they made for themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub statement: Option<custody_crypto::dsse::Envelope>,
}

impl<S: Store> App<S> {
    /// Requests the promotion of a release to an environment, evaluates its gates now, and
    /// records the request and the signed decision; if every gate passes, the release
    /// becomes the environment's certified release. An unknown environment is refused.
    /// With an idempotency key, a repeat returns the first result.
    pub async fn promote(
        &self,
        actor: &Actor,
        request: &Promote,
        idempotency_key: Option<&str>,
    ) -> AppResult<PromotionOutcome> {
        let break_glass = request.break_glass.as_deref();
        if break_glass.is_some_and(|r| r.trim().is_empty()) {
            return Err(AppError::invalid(
                "breaking glass needs a reason (--break-glass \"why\")",
            ));
        }
        if let Some(reason) = break_glass {
            crate::limits::text("break_glass", reason, crate::limits::MAX_REASON)?;
        }
        let release_id = request.release.to_string();
        let environment = request.environment.as_str();
        // What identifies the request for its idempotency key (the same as it always was).
        let mut fingerprint =
            json!({"release": release_id, "environment": environment, "actor": actor.principal});
        if let Some(reason) = break_glass {
            fingerprint["break_glass"] = json!(reason);
        }
        if let Some(key) = idempotency_key {
            if let Some(done) = self
                .promotion_replayed(&own_scope("promote", actor), key, &fingerprint)
                .await?
            {
                return Ok(done);
            }
        }
        let policy = self.policy().await?;
        crate::environment::known_environment(&policy, environment)?;
        let glass_breaker = self
            .breaking_glass_as(actor, &policy, request, break_glass)
            .await?;
        let (actor, signed_with) = match &glass_breaker {
            Some((breaker, key)) => (breaker, Some(key.clone())),
            None => (actor, None),
        };
        // A signed break-glass breaks glass once: whoever holds a copy (it is in the
        // ledger) cannot send it again within its validity.
        let used = match (&signed_with, &request.statement) {
            (Some(_), Some(envelope)) => {
                let digest = crate::approval_statement::use_key(envelope)?;
                if let Some(first) = self.get::<String>(kind::STATEMENT_USED, &digest).await? {
                    return Err(AppError::denied(format!(
                        "this signed break-glass was already used (promotion {}): a statement breaks glass once; sign a new one",
                        first.value
                    )));
                }
                Some(digest)
            }
            _ => None,
        };
        use custody_policy::Role;
        crate::identity::may_act_in(
            &policy,
            actor,
            &[Role::Signer, Role::Deployer],
            environment,
            "request promotions",
        )?;
        let release: ReleaseRecord = self
            .require(kind::RELEASE, &release_id, || {
                format!("no release {release_id}\nhint: create it with `custody release create NAME VERSION --artifact NAME=DIGEST …`")
            })
            .await?
            .value;
        let earlier = self.earlier_attempt(&release, environment).await?;
        let through = self.credential_made_by(actor).await?;
        let mut outcome = self
            .retrying(|| async {
                let promotion = PromotionRecord {
                    id: new_id("prm"),
                    release: release.id(),
                    release_digest: release.digest.clone(),
                    environment: environment.into(),
                    requested_by: actor.principal.clone(),
                    requested_through: through.clone(),
                    requested_at: actor.now,
                    status: PromotionStatus::Pending,
                    decisions: Vec::new(),
                    approvals: Vec::new(),
                    break_glass: break_glass.map(|reason| BreakGlass {
                        reason: reason.to_owned(),
                        reviewed_by: None,
                    }),
                };
                let promotion_id = promotion.id.clone();
                let requested = crate::app::event(
                    actor,
                    EventBody::PromotionRequested(PromotionRequested {
                        promotion: promotion.id.clone(),
                        release: release.id(),
                        environment: environment.into(),
                        artifacts: release.artifacts.iter().map(|a| a.digest.clone()).collect(),
                        break_glass: break_glass.map(str::to_owned),
                        statement: signed_with.as_ref().and(request.statement.clone()),
                        keys: signed_with.iter().cloned().collect(),
                    }),
                )?;
                let staged = self
                    .decide(actor, &policy, promotion, &release, &[], None)
                    .await?;
                let once = idempotency_key.map(|key| Once {
                    scope: own_scope("promote", actor),
                    key,
                    request: &fingerprint,
                });
                let state = match &used {
                    Some(digest) => vec![crate::app::write(
                        kind::STATEMENT_USED,
                        digest,
                        &promotion_id,
                        custody_store::Expect::Absent,
                    )?],
                    None => Vec::new(),
                };
                self.commit(Staged::after(requested, staged), state, once)
                    .await
            })
            .await?;
        outcome.supersedes = earlier;
        Ok(outcome)
    }

    /// Who breaks glass: the signer of a break-glass statement signed with an enrolled
    /// personal key (checked against the release, environment, policy and reason), or the
    /// caller if their credential is their own. Breaking glass overrides the approvals
    /// gate, so a token someone else made (an admin, who saw its secret) never breaks glass
    /// in its holder's name. `None` when the caller acts (no break-glass, or one on their
    /// own credential); with a statement, its signer and their key.
    async fn breaking_glass_as(
        &self,
        actor: &Actor,
        policy: &custody_policy::Policy,
        request: &Promote,
        reason: Option<&str>,
    ) -> AppResult<Option<(Actor, crate::events::KeyUse)>> {
        use crate::approval_statement::{self, Approved};
        let Some(reason) = reason else {
            if request.statement.is_some() {
                return Err(AppError::invalid(
                    "a signed statement goes with breaking glass only (--break-glass REASON --sign-key KEY)",
                ));
            }
            return Ok(None);
        };
        let Some(envelope) = &request.statement else {
            // Where only signed approvals count, breaking glass (which overrides them) must
            // be signed too: else a sign-in the server's configuration vouches for would
            // certify what no signed approval could.
            if policy
                .environment(&request.environment)
                .is_some_and(|e| e.counts_only_signed_approvals())
            {
                return Err(AppError::denied(format!(
                    "{} counts only signed approvals (approvals signed = true), so breaking glass there, which overrides them, must be signed too\nhint: --break-glass REASON --sign-key YOUR_KEY",
                    request.environment
                )));
            }
            if let Some(how) = crate::identity::why_not_personal(actor) {
                return Err(AppError::denied(format!(
                    "breaking glass overrides the approvals gate, so it counts only from {}'s own credential, and {how}\nhint: sign it with your enrolled personal key (`--break-glass REASON --sign-key KEY`), or sign in with your organisation's identity provider",
                    actor.principal
                )));
            }
            return Ok(None);
        };
        let expected = Approved::BreakGlass {
            release: request.release.to_string(),
            environment: request.environment.clone(),
            policy: policy.digest().into(),
        };
        let claim = approval_statement::Claim {
            approves: &expected,
            verdict: custody_model::Verdict::Approve,
            rationale: reason,
            risk: None,
        };
        let signed = self
            .personally_signed(envelope, policy, actor, claim, None)
            .await?;
        Ok(Some((signed.actor, signed.key)))
    }

    /// The latest earlier promotion of `release` to `environment`, if it was left pending
    /// or rejected: a new request starts over, and the requester should hear that the
    /// reviews given to the old one stay there.
    async fn earlier_attempt(
        &self,
        release: &ReleaseRecord,
        environment: &str,
    ) -> AppResult<Option<Superseded>> {
        use custody_store::search;
        let Some(first) = release.artifacts.first() else {
            return Ok(None);
        };
        let terms = [
            search::event_type("promotion.requested"),
            search::environment(environment),
            search::artifact(&first.digest.to_string()),
        ];
        let size = self.store.size().await?;
        // Newest first: the first request of this release is the one to name.
        for entry in self.store.search(&terms, 0, size, SEARCHED).await? {
            let event = Event::from_leaf(&entry.leaf)
                .map_err(|e| AppError::Integrity(format!("ledger entry {}: {e}", entry.index)))?;
            let EventBody::PromotionRequested(requested) = &event.body else {
                continue;
            };
            if requested.release != release.id() || requested.environment != environment {
                continue;
            }
            let (before, reviews) = self.promotion(&requested.promotion).await?;
            if before.status == PromotionStatus::Certified {
                return Ok(None);
            }
            let policy = match before.decisions.last() {
                Some(id) => Some(self.decision(id).await?.decision.policy_digest),
                None => None,
            };
            let status = match before.status {
                PromotionStatus::Rejected => "rejected",
                _ => "pending",
            };
            // Who reviewed it, so that they know to look again.
            let mut by: Vec<String> = reviews
                .iter()
                .filter(|r| r.superseded_by.is_none())
                .map(|r| {
                    let verdict = match r.verdict {
                        custody_model::Verdict::Approve => "approved",
                        custody_model::Verdict::Reject => "rejected",
                    };
                    format!("{} {verdict}", r.by)
                })
                .collect();
            by.dedup();
            let who = if by.is_empty() {
                String::new()
            } else {
                format!(" ({})", by.join(", "))
            };
            let note = format!(
                "this is a new promotion: the earlier {} of {} to {environment} ({status}) keeps its {} review(s){who}, which do not carry over, because an approval binds to its promotion and to the decision and policy version it was given under{}",
                before.id,
                before.release,
                reviews.len(),
                policy
                    .as_deref()
                    .map(|p| format!(" (policy {p})"))
                    .unwrap_or_default()
            );
            return Ok(Some(Superseded {
                promotion: before.id,
                status: before.status,
                reviews: reviews.len(),
                policy,
                note,
            }));
        }
        Ok(None)
    }
}

/// Earlier requests of the same release to the same environment looked at.
const SEARCHED: u64 = 16;
