//! Exceptions (waivers) over HTTP (see `custody_app::exceptions`): asking takes the
//! promote permission, reviewing the review permission (the use case then checks the
//! security role where the exception holds, that the reviewer is not the requester, and
//! that the credential is their own), reading and revoking the read permission (the use
//! case checks that the revoker asked for it or holds the security role where it holds).

use std::sync::Arc;

use axum::extract::State;
use custody_app::{RequestException, ReviewException, RevokeException};
use custody_model::Verdict;
use serde::Deserialize;

use crate::ServerState;
use crate::api::{Answer, DEFAULT_PAGE, MAX_PAGE, Refusals, Retry, json};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller, IdempotencyKey};

#[utoipa::path(post, path = "/api/v1/exceptions", request_body = RequestException,
    params(Retry),
    responses((status = 200, description = "the exception, pending until a security reviewer approves it", body = Value), Refusals))]
pub(crate) async fn request_exception(
    caller: Caller,
    key: IdempotencyKey,
    ApiJson(request): ApiJson<RequestException>,
) -> Answer {
    json(
        caller
            .app()
            .request_exception(&caller.actor, &request, key.as_deref())
            .await?,
    )
}

/// How many exceptions to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExceptionQuery {
    /// At most this many, newest first (default 100, at most 1000).
    #[serde(default)]
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/exceptions", params(ExceptionQuery),
    responses((status = 200, description = "exceptions, newest first", body = Value), Refusals))]
pub(crate) async fn exceptions(
    State(s): State<Arc<ServerState>>,
    ApiQuery(q): ApiQuery<ExceptionQuery>,
) -> Answer {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    json(s.app.exceptions(limit).await?)
}

#[utoipa::path(get, path = "/api/v1/exceptions/{id}",
    params(("id" = String, Path, description = "the exception")),
    responses((status = 200, description = "the exception", body = Value), Refusals))]
pub(crate) async fn exception(
    State(s): State<Arc<ServerState>>,
    ApiPath(id): ApiPath<String>,
) -> Answer {
    json(s.app.exception(&id).await?)
}

#[utoipa::path(post, path = "/api/v1/exceptions/{id}/approve", request_body = ReviewException,
    params(("id" = String, Path, description = "the exception")),
    responses((status = 200, description = "the exception, approved", body = Value), Refusals))]
pub(crate) async fn approve_exception(
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(review): ApiJson<ReviewException>,
) -> Answer {
    decide(&caller, &id, Verdict::Approve, &review).await
}

#[utoipa::path(post, path = "/api/v1/exceptions/{id}/reject", request_body = ReviewException,
    params(("id" = String, Path, description = "the exception")),
    responses((status = 200, description = "the exception, rejected", body = Value), Refusals))]
pub(crate) async fn reject_exception(
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(review): ApiJson<ReviewException>,
) -> Answer {
    decide(&caller, &id, Verdict::Reject, &review).await
}

#[utoipa::path(post, path = "/api/v1/exceptions/{id}/revoke", request_body = RevokeException,
    params(("id" = String, Path, description = "the exception")),
    responses((status = 200, description = "the exception, revoked: it no longer counts", body = Value), Refusals))]
pub(crate) async fn revoke_exception(
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(revoke): ApiJson<RevokeException>,
) -> Answer {
    json(
        caller
            .app()
            .revoke_exception(&caller.actor, &id, &revoke)
            .await?,
    )
}

async fn decide(caller: &Caller, id: &str, verdict: Verdict, review: &ReviewException) -> Answer {
    json(
        caller
            .app()
            .review_exception(&caller.actor, id, verdict, review)
            .await?,
    )
}
