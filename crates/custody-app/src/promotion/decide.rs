//! Deciding: the facts evaluated purely into a decision, the VSA signed, and what records
//! it staged for the caller's append.

use custody_model::CanonicalJson;
use custody_policy::{Policy, Status};
use custody_store::{Expect, StateWrite, Store};

use super::PromotionOutcome;
use crate::AppResult;
use crate::app::{Actor, App, Once, event, new_id, write};
use crate::attestations::{self, envelope_digest};
use crate::events::{DecisionRecorded, EnvironmentCertified, EventBody};
use crate::read_ahead::ReadAhead;
use crate::records::{
    ApprovalRecord, Certification, CertificationRecord, DecisionRecord, EnvironmentRecord,
    PendingPromotion, PromotionRecord, PromotionStatus, ReleaseRecord, ReviewDue, kind,
};

/// A decision made but not yet recorded: its outcome, and the events and state writes
/// that record it, in ledger order. Nothing is written until [`App::commit`].
pub(super) struct Staged {
    pub(super) outcome: PromotionOutcome,
    pub(super) events: Vec<CanonicalJson>,
    pub(super) state: Vec<StateWrite>,
}

impl Staged {
    /// `first` (the request's or the review's own event) before the decision's events.
    pub(super) fn after(first: CanonicalJson, mut staged: Staged) -> Staged {
        staged.events.insert(0, first);
        staged
    }
}

impl<S: Store> App<S> {
    /// Gathers the facts, evaluates, signs the VSA, and stages the decision (and the
    /// certification, if allowed). `promotion_version` is the version of the promotion
    /// record read (None for a new promotion).
    pub(super) async fn decide(
        &self,
        actor: &Actor,
        policy: &Policy,
        mut promotion: PromotionRecord,
        release: &ReleaseRecord,
        approvals: &[ApprovalRecord],
        promotion_version: Option<u64>,
    ) -> AppResult<Staged> {
        let gathered = self
            .facts(policy, &promotion, release, approvals, actor.now)
            .await?;
        let decision = custody_policy::evaluate(policy, &gathered.facts);
        let vsa = attestations::sign_vsa(
            self.attestor.as_ref(),
            &release.artifacts,
            &release.id(),
            &promotion.id,
            decision.allowed,
            decision.broke_glass(),
            policy.digest(),
            &gathered.provenance,
            actor.now,
        )?;
        let record = DecisionRecord {
            id: new_id("dec"),
            promotion: promotion.id.clone(),
            at: actor.now,
            facts: gathered.facts,
            decision: decision.clone(),
            vsa: vsa.clone(),
        };
        let was_pending =
            promotion_version.is_some() && promotion.status == PromotionStatus::Pending;
        promotion.decisions.push(record.id.clone());
        promotion.status = if decision.allowed {
            PromotionStatus::Certified
        } else if decision.ends_promotion() {
            PromotionStatus::Rejected
        } else {
            PromotionStatus::Pending
        };
        let artifacts: Vec<_> = release.artifacts.iter().map(|a| a.digest.clone()).collect();
        let mut events = vec![event(
            actor,
            EventBody::DecisionRecorded(DecisionRecorded {
                decision: record.id.clone(),
                promotion: promotion.id.clone(),
                release: promotion.release.clone(),
                environment: promotion.environment.clone(),
                allowed: decision.allowed,
                gates: decision.gates.clone(),
                policy: decision.policy_digest.clone(),
                input: decision.input_digest.clone(),
                engine: decision.engine.clone(),
                vsa_digest: envelope_digest(&vsa),
                vsa,
                keys: vec![crate::events::KeyUse::of(self.attestor.public_key())],
                artifacts: artifacts.clone(),
                break_glass: promotion.break_glass.as_ref().map(|g| g.reason.clone()),
            }),
        )?];
        let mut state = Vec::new();
        if was_pending || promotion.status == PromotionStatus::Pending {
            state.push(pending_write(&promotion, &decision)?);
        }
        state.push(write(kind::DECISION, &record.id, &record, Expect::Absent)?);
        state.push(write(
            kind::PROMOTION,
            &promotion.id,
            &promotion,
            promotion_version.map_or(Expect::Absent, Expect::Version),
        )?);
        if decision.allowed {
            let certification = Certification {
                release: promotion.release.clone(),
                release_digest: promotion.release_digest.clone(),
                promotion: promotion.id.clone(),
                decision: record.id.clone(),
                at: actor.now,
                by_rollback: false,
            };
            events.push(event(
                actor,
                EventBody::EnvironmentCertified(EnvironmentCertified {
                    environment: promotion.environment.clone(),
                    release: promotion.release.clone(),
                    promotion: promotion.id.clone(),
                    decision: record.id.clone(),
                    artifacts,
                }),
            )?);
            state.extend(
                self.stage_certification(
                    &promotion.environment,
                    certification,
                    Expect::Any,
                    Some(&gathered.ahead),
                )
                .await?,
            );
            if let (true, Some(glass)) = (decision.broke_glass(), &promotion.break_glass) {
                // The mandatory after-the-fact review, due from now (see review.rs).
                let due = ReviewDue {
                    release: promotion.release.clone(),
                    requested_by: promotion.requested_by.clone(),
                    reason: glass.reason.clone(),
                    at: actor.now,
                    overridden: decision
                        .gates
                        .iter()
                        .filter(|g| g.status == Status::Overridden)
                        .map(|g| g.gate.to_string())
                        .collect(),
                };
                state.push(write(
                    kind::REVIEW_DUE,
                    &format!("{}/{}", promotion.environment, promotion.id),
                    &due,
                    Expect::Absent,
                )?);
            }
        }
        Ok(Staged {
            outcome: PromotionOutcome {
                promotion,
                decision: record,
                approval: None,
                ledger_index: 0,
                replayed: false,
                supersedes: None,
            },
            events,
            state,
        })
    }

    /// Appends what `staged` recorded (with `extra` state writes) as one request; with an
    /// idempotency key, a concurrent twin that committed first gives its outcome instead.
    pub(super) async fn commit(
        &self,
        staged: Staged,
        extra: Vec<StateWrite>,
        once: Option<Once<'_>>,
    ) -> AppResult<PromotionOutcome> {
        let Staged {
            mut outcome,
            events,
            mut state,
        } = staged;
        state.extend(extra);
        match self
            .append_once(events, state, once, &outcome.receipt())
            .await?
        {
            Ok(appended) => {
                outcome.ledger_index = appended.first_index;
                Ok(outcome)
            }
            Err((receipt, index)) => self.outcome_of(receipt, index).await,
        }
    }

    /// Stages `certification` as the environment's certified release: the environment
    /// record (with `expect`: anything for a promotion, see [`EnvironmentRecord`]; the
    /// version it read for a rollback) and the release's standing there (read ahead with
    /// the decision's facts, if it was).
    pub(crate) async fn stage_certification(
        &self,
        environment: &str,
        certification: Certification,
        expect: Expect,
        ahead: Option<&ReadAhead>,
    ) -> AppResult<Vec<StateWrite>> {
        let key = CertificationRecord::key(environment, &certification.release);
        let standing = match ahead {
            Some(ahead) => {
                self.get_checked_ahead::<CertificationRecord>(ahead, kind::CERTIFICATION, &key)
                    .await?
            }
            None => {
                self.get_checked::<CertificationRecord>(kind::CERTIFICATION, &key)
                    .await?
            }
        };
        let first = standing.map_or(certification.at, |s| s.value.first_certified_at);
        let standing = CertificationRecord {
            environment: environment.into(),
            certification: certification.clone(),
            first_certified_at: first,
            failed: false,
        };
        let env = EnvironmentRecord {
            name: environment.into(),
            certified: Some(certification),
        };
        Ok(vec![
            write(kind::ENVIRONMENT, environment, &env, expect)?,
            write(kind::CERTIFICATION, &key, &standing, Expect::Any)?,
        ])
    }
}

/// The promotion's entry among those waiting in its environment: written while it waits
/// (with the gates `decision` did not pass), removed once decided.
fn pending_write(
    promotion: &PromotionRecord,
    decision: &custody_policy::Decision,
) -> AppResult<StateWrite> {
    let key = format!("{}/{}", promotion.environment, promotion.id);
    if promotion.status != PromotionStatus::Pending {
        return write(kind::PENDING, &key, &serde_json::Value::Null, Expect::Any);
    }
    let blocking = decision
        .gates
        .iter()
        .filter(|g| g.status != Status::Pass)
        .map(|g| crate::records::Blocking {
            gate: g.gate.to_string(),
            status: if g.status == Status::Fail {
                Status::Fail
            } else {
                Status::Waiting
            },
            reason: g.reason.clone(),
        })
        .collect();
    let entry = PendingPromotion {
        release: promotion.release.clone(),
        requested_by: promotion.requested_by.clone(),
        requested_at: promotion.requested_at,
        blocking,
    };
    write(kind::PENDING, &key, &entry, Expect::Any)
}
