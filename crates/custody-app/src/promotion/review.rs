//! Reviewing a promotion: an approval or rejection while it waits, or the mandatory
//! after-the-fact review of one certified by breaking glass.

use custody_model::{Risk, Verdict};
use custody_policy::{Policy, Standing};
use custody_store::{Expect, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{PromotionOutcome, decide::Staged};
use crate::app::{Actor, App, Once, Versioned, event, new_id, own_scope, write};
use crate::approval_statement::{self, Approved};
use crate::events::{ApprovalRecorded, EventBody, KeyUse};
use crate::records::{
    ApprovalRecord, DecisionRecord, EnvironmentRecord, PromotionRecord, PromotionStatus,
    ReleaseRecord, kind,
};
use crate::{AppError, AppResult};

/// A reviewer's approval or rejection of a promotion (the body of
/// `POST /api/v1/promotions/{id}/approve` and `…/reject`; the route says which).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Review {
    /// Why, for auditors.
    pub rationale: String,
    /// The risk posture the reviewer sees.
    #[schema(value_type = String, example = "low")]
    pub risk: Risk,
    /// Keep the rationale for auditors and the people involved: the ledger then holds
    /// only a commitment to it.
    #[serde(default)]
    pub confidential: bool,
    /// The reviewer's approval statement signed with their enrolled personal key (see
    /// `custody_app::approval_statement`): then the signature, not the request's
    /// credential, says who reviews.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub statement: Option<custody_crypto::dsse::Envelope>,
}

impl<S: Store> App<S> {
    /// Records `verdict` on a pending promotion by `actor`, bound to the release digest,
    /// the environment and the policy version, expiring per the policy; an earlier review
    /// by the same reviewer is superseded (never edited). Then the gates are evaluated
    /// again, and the release certified if they all pass. On a promotion certified by
    /// breaking glass, it is the after-the-fact review instead.
    pub async fn review(
        &self,
        actor: &Actor,
        promotion_id: &str,
        verdict: Verdict,
        review: &Review,
        idempotency_key: Option<&str>,
    ) -> AppResult<PromotionOutcome> {
        if review.rationale.trim().is_empty() {
            return Err(AppError::invalid(
                "a review needs a rationale (--rationale)",
            ));
        }
        crate::limits::text("rationale", &review.rationale, crate::limits::MAX_RATIONALE)?;
        let fingerprint = json!({"promotion": promotion_id, "verdict": verdict,
            "rationale": review.rationale, "risk": review.risk,
            "confidential": review.confidential, "actor": actor.principal});
        if let Some(key) = idempotency_key {
            if let Some(done) = self
                .promotion_replayed(&own_scope("review", actor), key, &fingerprint)
                .await?
            {
                return Ok(done);
            }
        }
        let once = || {
            idempotency_key.map(|key| Once {
                scope: own_scope("review", actor),
                key,
                request: &fingerprint,
            })
        };
        let policy = self.policy().await?;
        let (reviewer, signed_with, read) = self
            .reviewer(actor, &policy, promotion_id, verdict, review)
            .await?;
        // The promotion the signature was checked against serves the first attempt.
        let read = std::sync::Mutex::new(read);
        let actor = &reviewer;
        let signed_with = &signed_with;
        self.retrying(|| async {
            let first = read.lock().ok().and_then(|mut r| r.take());
            let current: Versioned<PromotionRecord> = match first {
                Some(current) => current,
                None => {
                    self.require(kind::PROMOTION, promotion_id, || {
                        format!("no promotion {promotion_id}")
                    })
                    .await?
                }
            };
            let after_the_fact = current.value.status == PromotionStatus::Certified
                && current
                    .value
                    .break_glass
                    .as_ref()
                    .is_some_and(|b| b.reviewed_by.is_none());
            if after_the_fact {
                return self
                    .review_after_the_fact(
                        actor,
                        &policy,
                        current,
                        verdict,
                        (review, signed_with.clone()),
                        once(),
                    )
                    .await;
            }
            let mut promotion = current.value;
            if promotion.status != PromotionStatus::Pending {
                let status = match promotion.status {
                    PromotionStatus::Certified => "certified",
                    _ => "rejected",
                };
                return Err(AppError::conflict(format!(
                    "promotion {promotion_id} is already {status}; request a new promotion to decide again"
                )));
            }
            let env = policy.environment(&promotion.environment).ok_or_else(|| {
                AppError::denied(format!(
                    "environment {} is no longer in the policy",
                    promotion.environment
                ))
            })?;
            let rule = env.approvals.as_ref().ok_or_else(|| {
                AppError::invalid(format!("environment {} needs no approvals", env.name))
            })?;
            // The release, the environment and the reviews so far, read together.
            let mut keys = vec![
                (kind::RELEASE, promotion.release.clone()),
                (kind::ENVIRONMENT, promotion.environment.clone()),
            ];
            keys.extend(promotion.approvals.iter().map(|id| (kind::APPROVAL, id.clone())));
            let ahead = self.read_ahead(keys).await?;
            let release: ReleaseRecord = self
                .get_checked_ahead(&ahead, kind::RELEASE, &promotion.release)
                .await?
                .ok_or_else(|| AppError::not_found(format!("no release {}", promotion.release)))?
                .value;
            let mut approvals = self.approvals_ahead(&ahead, &promotion).await?;
            let earlier = approvals
                .iter()
                .rev()
                .find(|a| a.value.by == actor.principal && a.value.superseded_by.is_none())
                .map(|a| (a.value.id.clone(), a.version));
            let context = self
                .get_ahead::<EnvironmentRecord>(&ahead, kind::ENVIRONMENT, &promotion.environment)
                .await?
                .and_then(|e| e.value.certified.map(|c| c.release));
            let record = ApprovalRecord {
                id: new_id("apr"),
                promotion: promotion.id.clone(),
                verdict,
                by: actor.principal.clone(),
                rationale: review.rationale.clone(),
                confidential: review.confidential,
                rationale_salt: review
                    .confidential
                    .then(crate::review_commitment::new_salt),
                risk: review.risk,
                at: actor.now,
                expires_at: actor.now.plus_seconds(rule.expires.seconds()),
                release_digest: promotion.release_digest.clone(),
                environment: promotion.environment.clone(),
                policy_digest: policy.digest().into(),
                context,
                supersedes: earlier.as_ref().map(|(id, _)| id.clone()),
                superseded_by: None,
                statement: review.statement.clone(),
                signed_with: signed_with.clone(),
            };
            let mut state = vec![write(kind::APPROVAL, &record.id, &record, Expect::Absent)?];
            if let Some(envelope) = &review.statement {
                // Its one use (checked in `reviewer`; a concurrent second use conflicts here).
                let used = approval_statement::use_key(envelope)?;
                state.push(write(kind::STATEMENT_USED, &used, &record.id, Expect::Absent)?);
            }
            if let Some((id, version)) = &earlier {
                if let Some(old) = approvals.iter_mut().find(|a| &a.value.id == id) {
                    old.value.superseded_by = Some(record.id.clone());
                    state.push(write(kind::APPROVAL, id, &old.value, Expect::Version(*version))?);
                }
            }
            promotion.approvals.push(record.id.clone());
            let recorded = approval_event(actor, &record, &promotion, &release, false)?;
            let mut all: Vec<ApprovalRecord> = approvals.into_iter().map(|a| a.value).collect();
            all.push(record.clone());
            let mut staged = self
                .decide(actor, &policy, promotion, &release, &all, Some(current.version))
                .await?;
            // A rejection ends a promotion, so only someone who could have approved it in
            // this environment may reject it (not a reviewer of another environment, an
            // admin, the requester, a builder or the signer): anyone else is refused and
            // nothing is recorded. (An approval that does not count is recorded, ignored.)
            if verdict == Verdict::Reject {
                let facts = &staged.outcome.decision.facts;
                if let Err(why) = custody_policy::may_review(
                    &policy,
                    facts,
                    &actor.principal,
                    actor.now.unix_seconds(),
                ) {
                    return Err(AppError::denied(format!(
                        "{} may not reject promotion {promotion_id}: {why}; it still waits for someone who could approve it",
                        actor.principal
                    )));
                }
            }
            let standing =
                custody_policy::approval_standings(&policy, &staged.outcome.decision.facts)
                    .and_then(|s| s.into_iter().find(|(id, _)| *id == record.id))
                    .map(|(_, s)| s);
            let why_not = match standing {
                Some(Standing::Ignored(why)) => Some(why),
                _ => None,
            };
            staged.outcome.approval = Some((record, why_not));
            self.commit(Staged::after(recorded, staged), state, once())
                .await
                .map_err(already_used)
        })
        .await
    }

    /// Who reviews: the signer of an approval statement signed with an enrolled personal
    /// key (checked against the promotion and the policy in force), or else the caller, if
    /// their credential is their own. An approval by anyone else's hand never counts.
    /// With a statement, also the promotion as read to check it.
    async fn reviewer(
        &self,
        actor: &Actor,
        policy: &Policy,
        promotion_id: &str,
        verdict: Verdict,
        review: &Review,
    ) -> AppResult<(Actor, Option<KeyUse>, Option<Versioned<PromotionRecord>>)> {
        let Some(envelope) = &review.statement else {
            if let Some(why) = crate::identity::not_personal(actor) {
                return Err(AppError::denied(why));
            }
            return Ok((actor.clone(), None, None));
        };
        // The promotion, whether the statement was used before, and the keyring's record
        // (a revocation by another process is not missed), read together.
        let used = approval_statement::use_key(envelope)?;
        let ahead = self
            .read_ahead(vec![
                (kind::PROMOTION, promotion_id.to_owned()),
                (kind::STATEMENT_USED, used.clone()),
                (kind::KEYRING, "current".to_owned()),
            ])
            .await?;
        let keyring = self
            .get_checked_ahead(&ahead, kind::KEYRING, "current")
            .await?;
        let read: Versioned<PromotionRecord> = self
            .get_ahead(&ahead, kind::PROMOTION, promotion_id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no promotion {promotion_id}")))?;
        let promotion = &read.value;
        let expected = Approved::Promotion {
            promotion: promotion.id.clone(),
            release: promotion.release.clone(),
            release_digest: Some(promotion.release_digest.clone()),
            environment: promotion.environment.clone(),
            policy: policy.digest().into(),
        };
        let claim = approval_statement::Claim {
            approves: &expected,
            verdict,
            rationale: &review.rationale,
            risk: Some(review.risk),
        };
        let signed = self
            .personally_signed(envelope, policy, actor, claim, Some(keyring))
            .await?;
        // A signed approval counts once: whoever holds a copy (the promotion's readers)
        // cannot send it again to renew it (its review is recorded with its use).
        if let Some(first) = self
            .get_ahead::<String>(&ahead, kind::STATEMENT_USED, &used)
            .await?
        {
            return Err(AppError::denied(format!(
                "this signed approval was already used (review {}): a statement counts once; sign a new one to review again",
                first.value
            )));
        }
        Ok((signed.actor, Some(signed.key), Some(read)))
    }

    /// The mandatory review of a promotion certified by break-glass, by someone who could
    /// have approved it (not its requester, builders or signer; holding a role that reviews
    /// the environment). It changes no gate: it records the verdict, closes the review due,
    /// and a rejection is an alert for people to act on (roll back, investigate).
    async fn review_after_the_fact(
        &self,
        actor: &Actor,
        policy: &Policy,
        current: Versioned<PromotionRecord>,
        verdict: Verdict,
        (review, signed_with): (&Review, Option<KeyUse>),
        once: Option<Once<'_>>,
    ) -> AppResult<PromotionOutcome> {
        let mut promotion = current.value;
        let who = actor.principal.as_str();
        let decision_id = promotion.decisions.last().cloned().unwrap_or_default();
        let decision: DecisionRecord = self
            .require(kind::DECISION, &decision_id, || {
                format!("no decision {decision_id}")
            })
            .await?
            .value;
        if let Err(why) =
            custody_policy::may_review(policy, &decision.facts, who, actor.now.unix_seconds())
        {
            return Err(AppError::denied(format!(
                "{who} may not review break-glass promotion {}: {why}; someone else must",
                promotion.id
            )));
        }
        let release = self.release(&promotion.release).await?;
        let record = ApprovalRecord {
            id: new_id("apr"),
            promotion: promotion.id.clone(),
            verdict,
            by: who.into(),
            rationale: review.rationale.clone(),
            confidential: review.confidential,
            rationale_salt: review.confidential.then(crate::review_commitment::new_salt),
            risk: review.risk,
            at: actor.now,
            // It lets nothing through from now on: the certification already happened.
            expires_at: actor.now,
            release_digest: promotion.release_digest.clone(),
            environment: promotion.environment.clone(),
            policy_digest: policy.digest().into(),
            context: None,
            supersedes: None,
            superseded_by: None,
            statement: review.statement.clone(),
            signed_with,
        };
        promotion.approvals.push(record.id.clone());
        if let Some(glass) = &mut promotion.break_glass {
            glass.reviewed_by = Some(record.id.clone());
        }
        let events = vec![approval_event(actor, &record, &promotion, &release, true)?];
        let state = vec![
            write(kind::APPROVAL, &record.id, &record, Expect::Absent)?,
            write(
                kind::PROMOTION,
                &promotion.id,
                &promotion,
                Expect::Version(current.version),
            )?,
            write(
                kind::REVIEW_DUE,
                &format!("{}/{}", promotion.environment, promotion.id),
                &serde_json::Value::Null,
                Expect::Any,
            )?,
        ];
        let staged = Staged {
            outcome: PromotionOutcome {
                promotion,
                decision,
                approval: Some((record, None)),
                ledger_index: 0,
                replayed: false,
                supersedes: None,
            },
            events,
            state,
        };
        self.commit(staged, Vec::new(), once).await
    }
}

/// A signed approval whose use another review recorded first (the same statement sent
/// twice at once) is refused, not retried: its second use would never land.
fn already_used(e: AppError) -> AppError {
    match e {
        AppError::Store(custody_store::StoreError::Conflict { kind, .. })
            if kind == kind::STATEMENT_USED =>
        {
            AppError::denied(
                "this signed approval was already used by a review recorded a moment ago: a statement counts once; sign a new one to review again",
            )
        }
        e => e,
    }
}

/// The `approval.recorded` event of `record`. A confidential rationale stays out of the
/// (public) ledger: only its salted commitment is there, binding the text kept in state
/// (see `review_commitment`); a public one is there with its digest.
fn approval_event(
    actor: &Actor,
    record: &ApprovalRecord,
    promotion: &PromotionRecord,
    release: &ReleaseRecord,
    after_the_fact: bool,
) -> AppResult<custody_model::CanonicalJson> {
    event(
        actor,
        EventBody::ApprovalRecorded(ApprovalRecorded {
            approval: record.id.clone(),
            promotion: promotion.id.clone(),
            verdict: record.verdict,
            rationale: (!record.confidential).then(|| record.rationale.clone()),
            rationale_digest: (!record.confidential)
                .then(|| crate::attestations::sha256(record.rationale.as_bytes())),
            rationale_commitment: match (&record.rationale_salt, record.confidential) {
                (Some(salt), true) => Some(
                    crate::review_commitment::commit(salt, &record.rationale).ok_or_else(|| {
                        AppError::Integrity("a rationale's salt is not hex".into())
                    })?,
                ),
                _ => None,
            },
            confidential: record.confidential,
            risk: record.risk,
            expires_at: record.expires_at,
            release: promotion.release.clone(),
            release_digest: record.release_digest.clone(),
            environment: record.environment.clone(),
            policy: record.policy_digest.clone(),
            context: record.context.clone(),
            supersedes: record.supersedes.clone(),
            artifacts: release.artifacts.iter().map(|a| a.digest.clone()).collect(),
            after_the_fact,
            statement: record.statement.clone().filter(|_| !record.confidential),
            statement_digest: record
                .statement
                .as_ref()
                .map(crate::attestations::envelope_digest),
            keys: record.signed_with.iter().cloned().collect(),
        }),
    )
}
