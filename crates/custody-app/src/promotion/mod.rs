//! Promotions and reviews, along their steps:
//! - [`request`]: a promotion is asked for (breaking glass, if the policy lets the
//!   requester);
//! - [`review`]: an approval or rejection, bound to the release, environment and policy
//!   version; or the after-the-fact review of a break-glass promotion;
//! - [`facts`]: what a decision reads, gathered in one pass over the release's records;
//! - [`decide`]: the pure evaluation, the signed VSA, and the events and state writes that
//!   record it (and the certification, when every gate passes).
//!
//! Each request or review is one append (see `App::append_once`): the request's own event,
//! then the decision's, with the records they change.

mod decide;
mod facts;
pub(crate) use facts::dropped;
mod request;
mod review;

use custody_store::Store;
use serde::{Deserialize, Serialize};

use crate::app::{App, Versioned};
use crate::read_ahead::ReadAhead;
use crate::records::{ApprovalRecord, DecisionRecord, PromotionRecord, PromotionStatus, kind};
use crate::{AppError, AppResult};

pub use request::Promote;
pub use review::Review;

/// The result of a promotion request or a review.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PromotionOutcome {
    /// The promotion.
    pub promotion: PromotionRecord,
    /// The decision just made.
    pub decision: DecisionRecord,
    /// For a review: the approval recorded and whether it counted (and why not).
    pub approval: Option<(ApprovalRecord, Option<String>)>,
    /// Ledger index of the first event written.
    pub ledger_index: u64,
    /// True when this is the stored result of an earlier request with the same key.
    pub replayed: bool,
    /// For a new request: the latest earlier promotion of the same release to the same
    /// environment, if it was left pending or rejected (its reviews stay with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<Superseded>,
}

/// An earlier promotion of the same release to the same environment that a new request
/// starts over from: its reviews do not carry over, because an approval binds to its
/// promotion and to the decision and policy version it was given under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Superseded {
    /// The earlier promotion's id.
    pub promotion: String,
    /// Its status (pending or rejected).
    pub status: PromotionStatus,
    /// How many reviews it holds (none of which count for the new one).
    pub reviews: usize,
    /// The policy version its latest decision was made under.
    pub policy: Option<String>,
    /// Why its reviews do not carry over, for people.
    pub note: String,
}

/// What an idempotency key of a promotion or review stands for: the records it made, from
/// which a retry rebuilds the outcome (the outcome itself holds the decision's facts, too
/// large to store twice).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PromotionReceipt {
    /// The promotion.
    pub(crate) promotion: String,
    /// The decision made.
    pub(crate) decision: String,
    /// For a review: the approval recorded and why it did not count, if it did not.
    pub(crate) approval: Option<(String, Option<String>)>,
}

impl PromotionOutcome {
    fn receipt(&self) -> PromotionReceipt {
        PromotionReceipt {
            promotion: self.promotion.id.clone(),
            decision: self.decision.id.clone(),
            approval: self
                .approval
                .as_ref()
                .map(|(a, why)| (a.id.clone(), why.clone())),
        }
    }
}

/// What a confidential rationale reads as to someone who may not read it.
pub const REDACTED: &str = "(confidential)";

/// Hides the confidential rationales of `reviews` from `viewer` unless they are an auditor
/// or admin, wrote the review, or requested the promotion. The one place this rule lives:
/// every route and page that shows reviews goes through it.
pub(crate) fn redact(
    viewer: &crate::Authenticated,
    promotion: &PromotionRecord,
    reviews: &mut [ApprovalRecord],
) {
    let involved =
        |r: &ApprovalRecord| r.by == viewer.principal || promotion.requested_by == viewer.principal;
    for r in reviews.iter_mut() {
        if r.confidential && !viewer.privileged() && !involved(r) {
            r.rationale = REDACTED.into();
            // The salt would let them test guesses against the ledger's commitment, and
            // the signed statement carries the rationale itself.
            r.rationale_salt = None;
            r.statement = None;
        }
    }
}

impl<S: Store> App<S> {
    /// A promotion and its reviews as `viewer` may see them (see [`redact`]).
    pub async fn promotion_for(
        &self,
        viewer: &crate::Authenticated,
        id: &str,
    ) -> AppResult<(PromotionRecord, Vec<ApprovalRecord>)> {
        let (promotion, mut reviews) = self.promotion(id).await?;
        redact(viewer, &promotion, &mut reviews);
        Ok((promotion, reviews))
    }

    /// A promotion and its reviews (superseded ones too), oldest first, unredacted (for
    /// the operator on the data directory, and the use cases).
    pub async fn promotion(&self, id: &str) -> AppResult<(PromotionRecord, Vec<ApprovalRecord>)> {
        let promotion: PromotionRecord = self
            .require(kind::PROMOTION, id, || format!("no promotion {id}"))
            .await?
            .value;
        let reviews = self
            .approvals_of(&promotion)
            .await?
            .into_iter()
            .map(|a| a.value)
            .collect();
        Ok((promotion, reviews))
    }

    pub(crate) async fn approvals_of(
        &self,
        promotion: &PromotionRecord,
    ) -> AppResult<Vec<Versioned<ApprovalRecord>>> {
        let keys = promotion
            .approvals
            .iter()
            .map(|id| (kind::APPROVAL, id.clone()))
            .collect();
        self.approvals_ahead(&self.read_ahead(keys).await?, promotion)
            .await
    }

    /// [`App::approvals_of`], read ahead.
    pub(crate) async fn approvals_ahead(
        &self,
        ahead: &ReadAhead,
        promotion: &PromotionRecord,
    ) -> AppResult<Vec<Versioned<ApprovalRecord>>> {
        let mut out = Vec::with_capacity(promotion.approvals.len());
        for id in &promotion.approvals {
            out.push(
                self.get_ahead(ahead, kind::APPROVAL, id)
                    .await?
                    .ok_or_else(|| AppError::not_found(format!("no approval {id}")))?,
            );
        }
        Ok(out)
    }

    /// The outcome a receipt stands for, as a replay (`ledger_index` is the first event
    /// the original request wrote).
    async fn outcome_of(
        &self,
        receipt: PromotionReceipt,
        ledger_index: u64,
    ) -> AppResult<PromotionOutcome> {
        let promotion: PromotionRecord = self
            .require(kind::PROMOTION, &receipt.promotion, || {
                format!("no promotion {}", receipt.promotion)
            })
            .await?
            .value;
        let decision: DecisionRecord = self
            .require(kind::DECISION, &receipt.decision, || {
                format!("no decision {}", receipt.decision)
            })
            .await?
            .value;
        let approval = match receipt.approval {
            None => None,
            Some((id, why)) => Some((
                self.require::<ApprovalRecord>(kind::APPROVAL, &id, || format!("no approval {id}"))
                    .await?
                    .value,
                why,
            )),
        };
        Ok(PromotionOutcome {
            promotion,
            decision,
            approval,
            ledger_index,
            replayed: true,
            supersedes: None,
        })
    }

    /// The stored outcome of an earlier promotion or review made with this key, if any (the
    /// same key with another request is refused).
    async fn promotion_replayed(
        &self,
        scope: &str,
        key: &str,
        request: &serde_json::Value,
    ) -> AppResult<Option<PromotionOutcome>> {
        if let Some((receipt, index)) = self
            .replayed::<PromotionReceipt>(scope, key, request)
            .await?
        {
            return Ok(Some(self.outcome_of(receipt, index).await?));
        }
        // Keys used before receipts existed (kept readable so a retry across an upgrade
        // still converges): they name the promotion; its latest decision is the outcome.
        let Some(legacy) = self
            .get::<crate::records::IdempotencyRecord>(kind::IDEMPOTENCY, &format!("{scope}:{key}"))
            .await?
        else {
            return Ok(None);
        };
        if legacy.value.fingerprint != crate::app::fingerprint(request)? {
            return Err(crate::app::key_reused(key));
        }
        let promotion: PromotionRecord = self
            .require(kind::PROMOTION, &legacy.value.promotion, || {
                format!("no promotion {}", legacy.value.promotion)
            })
            .await?
            .value;
        let receipt = PromotionReceipt {
            decision: promotion.decisions.last().cloned().unwrap_or_default(),
            promotion: promotion.id,
            approval: None,
        };
        Ok(Some(self.outcome_of(receipt, legacy.log_index).await?))
    }
}
