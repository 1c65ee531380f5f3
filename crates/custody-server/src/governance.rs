//! The policy and its proposals: the version in force, and changes to it waiting for its
//! owners (see `custody_app::governance`). Proposing takes the policy permission; reviewing
//! a proposal is guarded only by read access here, because who may review is the policy's
//! own question (its owners, never the proposer), answered by the use case.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use custody_app::{ApplyPolicy, ReviewProposal};
use custody_model::Verdict;
use serde::Deserialize;
use serde_json::json;

use crate::ServerState;
use crate::api::{Answer, Refusals, json};
use crate::extract::{ApiJson, ApiQuery, Caller};

#[utoipa::path(put, path = "/api/v1/policy", request_body = ApplyPolicy,
    responses(
        (status = 200, description = "in force (a bootstrap) or already in force", body = Value),
        (status = 202, description = "proposed: waiting for the owners' approvals", body = Value),
        Refusals))]
pub(crate) async fn apply_policy(
    State(s): State<Arc<ServerState>>,
    caller: Caller,
    ApiJson(request): ApiJson<ApplyPolicy>,
) -> Answer {
    let change = s.app.apply_policy(&caller.actor, &request).await?;
    let status = if change.proposal.is_some() && !change.changed {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(change)).into_response())
}

#[utoipa::path(get, path = "/api/v1/policy",
    responses((status = 200, description = "the version in force: digest, governance, files", body = Value), Refusals))]
pub(crate) async fn policy(State(s): State<Arc<ServerState>>, _caller: Caller) -> Answer {
    let (record, policy) = s.app.policy_in_force().await?;
    let governance = policy.governance();
    json(json!({
        "digest": record.digest,
        "applied_at": record.applied_at,
        "applied_by": record.applied_by,
        "governance": {"owners": governance.owners, "quorum": governance.quorum},
        "files": record.bundle.files,
    }))
}

/// Which proposals to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProposalQuery {
    /// Every proposal, not only the open ones.
    #[serde(default)]
    all: bool,
}

#[utoipa::path(get, path = "/api/v1/proposals", params(ProposalQuery),
    responses((status = 200, description = "proposals, newest first", body = Value), Refusals))]
pub(crate) async fn proposals(
    State(s): State<Arc<ServerState>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ProposalQuery>,
) -> Answer {
    json(s.app.proposals(!q.all, caller.actor.now).await?)
}

#[utoipa::path(get, path = "/api/v1/proposals/{id}",
    params(("id" = String, Path, description = "the proposal")),
    responses((status = 200, description = "the proposal, its diff and its reviews", body = Value), Refusals))]
pub(crate) async fn proposal(
    State(s): State<Arc<ServerState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Answer {
    json(s.app.proposal(&id, caller.actor.now).await?)
}

#[utoipa::path(post, path = "/api/v1/proposals/{id}/approve", request_body = ReviewProposal,
    params(("id" = String, Path, description = "the proposal")),
    responses((status = 200, description = "the proposal, and whether it is now in force", body = Value), Refusals))]
pub(crate) async fn approve_proposal(
    State(s): State<Arc<ServerState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ReviewProposal>,
) -> Answer {
    json(
        s.app
            .review_proposal(&caller.actor, &id, Verdict::Approve, &request)
            .await?,
    )
}

#[utoipa::path(post, path = "/api/v1/proposals/{id}/reject", request_body = ReviewProposal,
    params(("id" = String, Path, description = "the proposal")),
    responses((status = 200, description = "the proposal, closed", body = Value), Refusals))]
pub(crate) async fn reject_proposal(
    State(s): State<Arc<ServerState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ReviewProposal>,
) -> Answer {
    json(
        s.app
            .review_proposal(&caller.actor, &id, Verdict::Reject, &request)
            .await?,
    )
}
