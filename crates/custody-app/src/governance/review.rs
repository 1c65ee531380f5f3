//! An owner's review of a proposal: one rejection closes it; the quorum-th approval, from
//! owners other than the proposer each on their own credential, puts it in force.

use custody_model::Verdict;
use custody_store::{Expect, Store};
use serde::{Deserialize, Serialize};

use super::{
    PolicyChange, ProposalRecord, ProposalStatus, ProposalVote, owner_names, policy_writes,
};
use crate::app::{Actor, App, Versioned, event, write};
use crate::approval_statement::{self, Approved};
use crate::events::{self, EventBody};
use crate::records::{PolicyRecord, kind};
use crate::{AppError, AppResult};

/// An owner's verdict on a proposal (the body of `POST /api/v1/proposals/{id}/approve` and
/// `…/reject`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewProposal {
    /// Why, for auditors.
    pub rationale: String,
    /// The owner's approval statement signed with their enrolled personal key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub statement: Option<custody_crypto::dsse::Envelope>,
}

impl<S: Store> App<S> {
    /// An owner's approval or rejection of a proposal. One rejection closes it; the
    /// quorum-th approval puts it in force in the same append.
    pub async fn review_proposal(
        &self,
        actor: &Actor,
        id: &str,
        verdict: Verdict,
        request: &ReviewProposal,
    ) -> AppResult<PolicyChange> {
        if request.rationale.trim().is_empty() {
            return Err(AppError::invalid(
                "a review needs a rationale (--rationale)",
            ));
        }
        self.retrying(|| async {
            let current: Versioned<PolicyRecord> = self
                .require(kind::POLICY, "current", || "no policy is in force".into())
                .await?;
            let policy = custody_policy::compile_recorded(&current.value.bundle)?;
            let stored: Versioned<ProposalRecord> = self
                .require(kind::PROPOSAL, id, || format!("no proposal {id}"))
                .await?;
            let mut proposal = stored.value;
            let in_force = current.value.digest.as_str();
            let view = proposal.clone().view(Some(in_force), actor.now);
            match view.standing.as_str() {
                "open" => {}
                "stale" => {
                    return Err(AppError::conflict(format!(
                        "proposal {id} was made against policy {}, but {in_force} is in force now: it would not change what its diff says\nhint: propose the new version again (`custody policy propose DIR`)",
                        proposal.previous.as_deref().unwrap_or("(none)")
                    )));
                }
                other => {
                    return Err(AppError::conflict(format!(
                        "proposal {id} is {other}; propose the version again to decide anew"
                    )));
                }
            }
            // (A rejection keeps the rules as they are and loosens nothing: it needs no
            // signature.)
            if policy.governance().signed
                && verdict == Verdict::Approve
                && request.statement.is_none()
            {
                return Err(AppError::denied(
                    format!("the policy in force counts only approvals of its changes signed with an enrolled personal key ([governance] signed = true), and this one is not signed\nhint: custody policy approve {id} --sign-key YOUR_KEY --rationale …"),
                ));
            }
            let (reviewer, signed_with) = match &request.statement {
                Some(envelope) => {
                    let expected = Approved::Proposal {
                        proposal: proposal.id.clone(),
                        policy: proposal.policy.clone(),
                        previous: proposal.previous.clone(),
                    };
                    let claim = approval_statement::Claim {
                        approves: &expected,
                        verdict,
                        rationale: &request.rationale,
                        risk: None,
                    };
                    let signed = self
                        .personally_signed(envelope, &policy, actor, claim, None)
                        .await?;
                    (signed.actor, Some(signed.key))
                }
                None => {
                    if let Some(why) = crate::identity::not_personal(actor) {
                        return Err(AppError::denied(why));
                    }
                    (actor.clone(), None)
                }
            };
            let who = reviewer.principal.as_str();
            if who == proposal.proposed_by {
                return Err(AppError::denied(format!(
                    "{who} proposed {id} and may not review it: {} other owner(s) must",
                    proposal.quorum
                )));
            }
            if proposal.proposed_through.as_deref() == Some(who) {
                return Err(AppError::denied(format!(
                    "{who} made the token {} proposed {id} with, and so may not review it; {} owner(s) who had no hand in it must approve it",
                    proposal.proposed_by, proposal.quorum
                )));
            }
            if !policy.owns(who, actor.now.unix_seconds()) {
                return Err(AppError::denied(format!(
                    "{who} may not review policy changes: that takes {} (unscoped) in the policy in force",
                    owner_names(&policy)
                )));
            }
            if proposal.reviews.iter().any(|v| v.by == who) {
                return Err(AppError::conflict(format!(
                    "{who} already reviewed proposal {id}"
                )));
            }
            proposal.reviews.push(ProposalVote {
                by: who.into(),
                at: actor.now,
                verdict,
                rationale: request.rationale.clone(),
                auth: reviewer.auth.clone(),
                statement: request.statement.clone(),
            });
            let reviewed = event(
                &reviewer,
                EventBody::ProposalReviewed(events::ProposalReviewed {
                    proposal: proposal.id.clone(),
                    policy: proposal.policy.clone(),
                    verdict,
                    rationale: request.rationale.clone(),
                    statement: request.statement.clone(),
                    keys: signed_with.into_iter().collect(),
                }),
            )?;
            let approvals = u32::try_from(proposal.approvers().len()).unwrap_or(u32::MAX);
            let applies = verdict == Verdict::Approve && approvals >= proposal.quorum;
            proposal.status = match (verdict, applies) {
                (Verdict::Reject, _) => ProposalStatus::Rejected,
                (_, true) => ProposalStatus::Applied,
                _ => ProposalStatus::Open,
            };
            let mut events = vec![reviewed];
            let mut state = vec![write(
                kind::PROPOSAL,
                id,
                &proposal,
                Expect::Version(stored.version),
            )?];
            if applies {
                // The keyring may have changed since it was proposed (a rotation made one
                // of its keys the log's, a revocation): checked again as it takes effect.
                let proposed = custody_policy::compile(&proposal.bundle)?;
                self.keys_may_be_trusted(&proposed, actor.now).await?;
                let (applied, writes) = applied_event(&reviewer, &proposal, &current)?;
                events.push(applied);
                state.extend(writes);
            }
            let appended = self.append(events, state, None).await?;
            Ok(PolicyChange {
                digest: proposal.policy.clone(),
                changed: applies,
                ledger_index: Some(appended.first_index + appended.count - 1),
                bootstrap: false,
                changes: proposal.changes.clone(),
                proposal: Some(proposal.view(
                    Some(if applies {
                        &current.value.digest
                    } else {
                        in_force
                    }),
                    actor.now,
                )),
            })
        })
        .await
    }
}

/// `policy.applied` for an approved proposal, and the state that puts it in force.
fn applied_event(
    actor: &Actor,
    proposal: &ProposalRecord,
    current: &Versioned<PolicyRecord>,
) -> AppResult<(custody_model::CanonicalJson, Vec<custody_store::StateWrite>)> {
    let record = PolicyRecord {
        digest: proposal.policy.clone(),
        bundle: proposal.bundle.clone(),
        applied_at: actor.now,
        applied_by: actor.principal.clone(),
    };
    let leaf = event(
        actor,
        EventBody::PolicyApplied(events::PolicyApplied {
            policy: proposal.policy.clone(),
            previous: Some(current.value.digest.clone()),
            files: proposal.bundle.files.clone(),
            proposal: Some(proposal.id.clone()),
            proposed_by: Some(proposal.proposed_by.clone()),
            approvers: proposal.approvers(),
            changes: proposal.changes.clone(),
            bootstrap: false,
        }),
    )?;
    Ok((
        leaf,
        policy_writes(&record, Expect::Version(current.version))?,
    ))
}
