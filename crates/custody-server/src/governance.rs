//! The policy and its proposals: the version in force, and changes to it waiting for its
//! owners (see `custody_app::governance`). Proposing takes the policy permission; reviewing
//! a proposal is guarded only by read access here, because who may review is the policy's
//! own question (its owners, never the proposer), answered by the use case.

use axum::Json;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use custody_app::{ApplyPolicy, ReviewProposal};
use custody_model::Verdict;
use serde::Deserialize;
use serde_json::json;

use crate::api::{Answer, Refusals, json};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};

#[utoipa::path(put, path = "/api/v1/policy", request_body = ApplyPolicy,
    responses(
        (status = 200, description = "in force (a bootstrap) or already in force", body = Value),
        (status = 202, description = "proposed: waiting for the owners' approvals", body = Value),
        Refusals))]
pub(crate) async fn apply_policy(caller: Caller, ApiJson(request): ApiJson<ApplyPolicy>) -> Answer {
    let change = caller.app().apply_policy(&caller.actor, &request).await?;
    let status = if change.proposal.is_some() && !change.changed {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(change)).into_response())
}

#[utoipa::path(get, path = "/api/v1/policy",
    responses((status = 200, description = "the version in force: digest, governance, files", body = Value), Refusals))]
pub(crate) async fn policy(caller: Caller) -> Answer {
    let (record, policy) = caller.app().policy_in_force().await?;
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
pub(crate) async fn proposals(caller: Caller, ApiQuery(q): ApiQuery<ProposalQuery>) -> Answer {
    json(caller.app().proposals(!q.all, caller.actor.now).await?)
}

#[utoipa::path(get, path = "/api/v1/proposals/{id}",
    params(("id" = String, Path, description = "the proposal")),
    responses((status = 200, description = "the proposal, its diff and its reviews", body = Value), Refusals))]
pub(crate) async fn proposal(caller: Caller, ApiPath(id): ApiPath<String>) -> Answer {
    json(caller.app().proposal(&id, caller.actor.now).await?)
}

#[utoipa::path(post, path = "/api/v1/proposals/{id}/approve", request_body = ReviewProposal,
    params(("id" = String, Path, description = "the proposal")),
    responses((status = 200, description = "the proposal, and whether it is now in force", body = Value), Refusals))]
pub(crate) async fn approve_proposal(
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<ReviewProposal>,
) -> Answer {
    review(&caller, &id, Verdict::Approve, &request).await
}

#[utoipa::path(post, path = "/api/v1/proposals/{id}/reject", request_body = ReviewProposal,
    params(("id" = String, Path, description = "the proposal")),
    responses((status = 200, description = "the proposal, closed", body = Value), Refusals))]
pub(crate) async fn reject_proposal(
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<ReviewProposal>,
) -> Answer {
    review(&caller, &id, Verdict::Reject, &request).await
}

/// An approval or rejection of proposal `id`, as `caller`.
async fn review(caller: &Caller, id: &str, verdict: Verdict, request: &ReviewProposal) -> Answer {
    json(
        caller
            .app()
            .review_proposal(&caller.actor, id, verdict, request)
            .await?,
    )
}
