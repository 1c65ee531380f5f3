//! The API behind identities: reads for auditors, and the use cases. Each handler takes
//! the use case's own request type (a JSON body with unknown fields refused), the caller
//! and, for mutations, an `Idempotency-Key`; each answers the use case's own result type.
//! The OpenAPI document is derived from these handlers' annotations (see routes.rs).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use custody_app::{
    AttachEvidence, CreateToken, DeployReport, HistoryFilter, Promote, RecordRelease,
    RegisterArtifact, Review, Rollback, TokenInfo,
};
use custody_model::{Digest, Verdict};
use serde::Deserialize;
use serde_json::json;

use crate::ServerState;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller, IdempotencyKey};

/// Most entries one page of history or of the access log holds.
pub(crate) const MAX_PAGE: usize = custody_store::MAX_ENTRIES_PER_READ as usize;
/// Entries a page holds when the caller does not say.
pub(crate) const DEFAULT_PAGE: usize = 100;
/// Longest "unused for" an access review looks back.
pub(crate) const MAX_UNUSED_DAYS: i64 = 3650;

pub(crate) type Answer = Result<Response, ApiError>;

pub(crate) fn json(value: impl serde::Serialize) -> Answer {
    Ok(Json(value).into_response())
}

/// An error body: `{"error": "…"}`, saying what was wrong and what to do.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the error body's shape")]
pub(crate) struct ErrorBody {
    error: String,
}

/// How a use case refuses (every route behind a credential may answer these; see
/// error.rs for the one mapping of faults to statuses).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, reason = "documents the refusals' shapes")]
pub(crate) enum Refusals {
    /// The request is malformed; the message says what.
    #[response(status = 400)]
    Invalid(ErrorBody),
    /// A check said no (or the caller may not call the route).
    #[response(status = 403)]
    Denied(ErrorBody),
    /// What the request names does not exist.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// It conflicts with what is recorded (an idempotency key used for another request,
    /// a decided promotion).
    #[response(status = 409)]
    Conflict(ErrorBody),
}

/// The `Idempotency-Key` header of a mutating route.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code, reason = "documents the header")]
pub(crate) struct Retry {
    /// Makes a retry return the first result (1 to 256 visible ASCII characters).
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
}

/// `GET /api/v1/verify`: the deploy gate.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct VerifyQuery {
    /// The environment.
    env: String,
    /// The digest that wants to run, `sha256:HEX`.
    digest: String,
}

#[utoipa::path(get, path = "/api/v1/verify", params(VerifyQuery),
    responses((status = 200, description = "allowed: the verdict with its evidence", body = Value),
              (status = 403, description = "denied: the verdict with its reasons", body = Value), Refusals))]
pub(crate) async fn verify(
    State(s): State<Arc<ServerState>>,
    ApiQuery(q): ApiQuery<VerifyQuery>,
) -> Answer {
    let digest: Digest = q
        .digest
        .parse()
        .map_err(|e| ApiError::bad_request(format!("digest: {e}")))?;
    let verdict = s.app.verify(&q.env, &digest, s.now()).await?;
    let status = if verdict.allowed {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    };
    let body = verdict
        .to_json()
        .map_err(|e| ApiError::from(custody_app::AppError::Integrity(e.to_string())))?;
    Ok((status, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[utoipa::path(get, path = "/api/v1/history", params(HistoryFilter),
    responses((status = 200, description = "events, oldest first", body = Value), Refusals))]
pub(crate) async fn history(
    State(s): State<Arc<ServerState>>,
    ApiQuery(mut filter): ApiQuery<HistoryFilter>,
) -> Answer {
    // 0 would mean "all" to the use case; over HTTP a page is bounded.
    filter.limit = match filter.limit {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    };
    json(s.app.history(&filter).await?)
}

#[utoipa::path(get, path = "/api/v1/decisions/{id}", params(("id" = String, Path, description = "the decision")),
    responses((status = 200, body = Value), Refusals))]
pub(crate) async fn decision(
    State(s): State<Arc<ServerState>>,
    ApiPath(id): ApiPath<String>,
) -> Answer {
    json(s.app.decision(&id).await?)
}

#[utoipa::path(get, path = "/api/v1/decisions/{id}/replay", params(("id" = String, Path, description = "the decision")),
    responses((status = 200, description = "the decision evaluated again from its recorded facts and policy version", body = Value), Refusals))]
pub(crate) async fn replay(
    State(s): State<Arc<ServerState>>,
    ApiPath(id): ApiPath<String>,
) -> Answer {
    json(s.app.replay(&id).await?)
}

/// A page of the access log.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AccessQuery {
    /// Entries after this id.
    after: Option<u64>,
    /// At most this many (default 100, at most 1000).
    limit: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/access-log", params(AccessQuery),
    responses((status = 200, body = Value), Refusals))]
pub(crate) async fn access_log(
    State(s): State<Arc<ServerState>>,
    ApiQuery(q): ApiQuery<AccessQuery>,
) -> Answer {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE as u64).min(MAX_PAGE as u64);
    json(s.app.log().access_log(q.after.unwrap_or(0), limit).await?)
}

/// The access review's window.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReviewQuery {
    /// A role unused this many days is reported (default 90, 1 to 3650).
    unused_days: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/access-review", params(ReviewQuery),
    responses((status = 200, description = "role holdings", body = Value), Refusals))]
pub(crate) async fn access_review(
    State(s): State<Arc<ServerState>>,
    ApiQuery(q): ApiQuery<ReviewQuery>,
) -> Answer {
    let days = q.unused_days.unwrap_or(90);
    if !(1..=MAX_UNUSED_DAYS).contains(&days) {
        return Err(ApiError::bad_request(format!(
            "unused_days must be 1 to {MAX_UNUSED_DAYS}"
        )));
    }
    json(s.app.access_review(s.now(), days).await?)
}

#[utoipa::path(post, path = "/api/v1/promotions", request_body = Promote,
    params(Retry),
    responses((status = 200, description = "the promotion and its decision", body = Value), Refusals))]
pub(crate) async fn promote(
    caller: Caller,
    key: IdempotencyKey,
    ApiJson(request): ApiJson<Promote>,
) -> Answer {
    json(
        caller
            .app()
            .promote(&caller.actor, &request, key.as_deref())
            .await?,
    )
}

#[utoipa::path(get, path = "/api/v1/promotions/{id}", params(("id" = String, Path, description = "the promotion")),
    responses((status = 200, description = "the promotion and its reviews; confidential rationales only for auditors, admins and the people involved", body = Value), Refusals))]
pub(crate) async fn promotion(caller: Caller, ApiPath(id): ApiPath<String>) -> Answer {
    let (promotion, reviews) = caller.app().promotion_for(&caller.who, &id).await?;
    json(json!({"promotion": promotion, "reviews": reviews}))
}

async fn review(
    caller: Caller,
    id: &str,
    verdict: Verdict,
    key: IdempotencyKey,
    request: Review,
) -> Answer {
    json(
        caller
            .app()
            .review(&caller.actor, id, verdict, &request, key.as_deref())
            .await?,
    )
}

#[utoipa::path(post, path = "/api/v1/promotions/{id}/approve", request_body = Review,
    params(("id" = String, Path, description = "the promotion"),
           Retry),
    responses((status = 200, description = "the approval, whether it counted, and the new decision", body = Value), Refusals))]
pub(crate) async fn approve(
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    key: IdempotencyKey,
    ApiJson(request): ApiJson<Review>,
) -> Answer {
    review(caller, &id, Verdict::Approve, key, request).await
}

#[utoipa::path(post, path = "/api/v1/promotions/{id}/reject", request_body = Review,
    params(("id" = String, Path, description = "the promotion"),
           Retry),
    responses((status = 200, description = "the rejection and the new decision", body = Value), Refusals))]
pub(crate) async fn reject(
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    key: IdempotencyKey,
    ApiJson(request): ApiJson<Review>,
) -> Answer {
    review(caller, &id, Verdict::Reject, key, request).await
}

#[utoipa::path(post, path = "/api/v1/deploys", request_body = DeployReport,
    params(Retry),
    responses((status = 200, description = "drift found, and the rollback a failure caused", body = Value), Refusals))]
pub(crate) async fn deploy(
    caller: Caller,
    key: IdempotencyKey,
    ApiJson(report): ApiJson<DeployReport>,
) -> Answer {
    json(
        caller
            .app()
            .deploy_report(&caller.actor, &report, key.as_deref())
            .await?,
    )
}

#[utoipa::path(post, path = "/api/v1/environments/{env}/rollback", request_body = Rollback,
    params(("env" = String, Path, description = "the environment"),
           Retry),
    responses((status = 200, description = "the rollback", body = Value), Refusals))]
pub(crate) async fn rollback(
    caller: Caller,
    ApiPath(env): ApiPath<String>,
    key: IdempotencyKey,
    ApiJson(request): ApiJson<Rollback>,
) -> Answer {
    json(
        caller
            .app()
            .rollback(&caller.actor, &env, &request, key.as_deref())
            .await?,
    )
}

#[utoipa::path(post, path = "/api/v1/artifacts", request_body = RegisterArtifact,
    responses((status = 200, description = "what registering did", body = Value), Refusals))]
pub(crate) async fn register_artifact(
    caller: Caller,
    ApiJson(request): ApiJson<RegisterArtifact>,
) -> Answer {
    json(
        caller
            .app()
            .register_artifact(&caller.actor, &request)
            .await?,
    )
}

#[utoipa::path(post, path = "/api/v1/artifacts/{digest}/evidence", request_body = AttachEvidence,
    params(("digest" = String, Path, description = "the artifact, sha256:HEX"),
           Retry),
    responses((status = 200, description = "the ledger index of the evidence", body = Value), Refusals))]
pub(crate) async fn attest(
    caller: Caller,
    ApiPath(artifact): ApiPath<String>,
    key: IdempotencyKey,
    ApiJson(request): ApiJson<AttachEvidence, { crate::MAX_REPORT_BODY }>,
) -> Answer {
    let artifact: Digest = artifact
        .parse()
        .map_err(|e| ApiError::bad_request(format!("artifact digest: {e}")))?;
    let index = caller
        .app()
        .attest(&caller.actor, &artifact, &request, key.as_deref())
        .await?;
    json(json!({"ledger_index": index}))
}

#[utoipa::path(get, path = "/api/v1/artifacts/{digest}/compare/{other}",
    params(("digest" = String, Path, description = "one build's artifact, sha256:HEX"),
           ("other" = String, Path, description = "the other build's artifact, sha256:HEX")),
    responses((status = 200, description = "the two builds' provenance side by side, field by field", body = Value), Refusals))]
pub(crate) async fn compare_builds(
    State(s): State<Arc<ServerState>>,
    ApiPath((a, b)): ApiPath<(String, String)>,
) -> Answer {
    let digest = |text: String| {
        text.parse::<Digest>()
            .map_err(|e| ApiError::bad_request(format!("artifact digest {text:?}: {e}")))
    };
    json(s.app.compare_builds(&digest(a)?, &digest(b)?).await?)
}

#[utoipa::path(get, path = "/api/v1/reports/{digest}",
    params(("digest" = String, Path, description = "the report, sha256:HEX, as its evidence.attached event names it")),
    responses((status = 200, description = "the stored report, byte for byte as attached", content_type = "application/octet-stream", body = Vec<u8>), Refusals))]
pub(crate) async fn report(
    State(s): State<Arc<ServerState>>,
    ApiPath(digest): ApiPath<String>,
) -> Answer {
    let digest: Digest = digest
        .parse()
        .map_err(|e| ApiError::bad_request(format!("report digest: {e}")))?;
    let bytes = s.app.report(&digest).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        bytes,
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/releases/{release}",
    params(("release" = String, Path, description = "the release, NAME@VERSION")),
    responses((status = 200, description = "the release: its manifest and artifacts, the key whose signature counts (as the gates judge it) and why any other does not, and where it is certified (with why the deploy gate refuses it now, where it does)", body = Value), Refusals))]
pub(crate) async fn release(caller: Caller, ApiPath(release): ApiPath<String>) -> Answer {
    json(
        caller
            .app()
            .release_view(&release, caller.actor.now)
            .await?,
    )
}

#[utoipa::path(post, path = "/api/v1/releases", request_body = RecordRelease,
    params(Retry),
    responses((status = 200, description = "the release recorded", body = Value), Refusals))]
pub(crate) async fn record_release(
    caller: Caller,
    key: IdempotencyKey,
    ApiJson(request): ApiJson<RecordRelease>,
) -> Answer {
    json(
        caller
            .app()
            .record_release(&caller.actor, &request, key.as_deref())
            .await?,
    )
}

/// Creates a token: 201 with the token text, shown this once. A retry with the same
/// Idempotency-Key creates nothing and answers 200 with the first token's record, without
/// its text.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = CreateToken,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retry return the first token's record (never its text)")),
    responses((status = 201, description = "the token, shown once", body = Value),
              (status = 200, description = "a retry: the first token's record", body = Value), Refusals))]
pub(crate) async fn create_token(
    caller: Caller,
    key: IdempotencyKey,
    ApiJson(request): ApiJson<CreateToken>,
) -> Answer {
    let (record, token) = caller
        .app()
        .create_token(&caller.actor, &request, key.as_deref())
        .await?;
    let info = TokenInfo::from(&record);
    Ok(match token {
        Some(token) => (
            StatusCode::CREATED,
            Json(json!({"token": token, "record": info})),
        )
            .into_response(),
        None => Json(json!({
            "token": null,
            "record": info,
            "replayed": true,
            "note": "this idempotency key already created the token; its text was shown once (revoke it and create another if it is lost)",
        }))
        .into_response(),
    })
}

#[utoipa::path(get, path = "/api/v1/tokens",
    responses((status = 200, description = "the caller's tokens (an auditor's or admin's: every token), never a secret", body = Value), Refusals))]
pub(crate) async fn tokens(caller: Caller) -> Answer {
    let tokens = caller.app().tokens_for(&caller.who).await?;
    json(tokens.iter().map(TokenInfo::from).collect::<Vec<_>>())
}

#[utoipa::path(post, path = "/api/v1/tokens/{id}/revoke", params(("id" = String, Path, description = "the token's id")),
    responses((status = 200, description = "the token's record (revoking a revoked one changes nothing)", body = Value), Refusals))]
pub(crate) async fn revoke_token(caller: Caller, ApiPath(id): ApiPath<String>) -> Answer {
    let record = caller.app().revoke_token(&caller.actor, &id).await?;
    json(TokenInfo::from(&record))
}

#[utoipa::path(get, path = "/api/v1/whoami",
    responses((status = 200, description = "the caller: principal, how they authenticated, their roles now", body = Value), Refusals))]
pub(crate) async fn whoami(caller: Caller) -> Answer {
    json(json!({
        "principal": caller.who.principal,
        "auth": caller.who.auth,
        "roles": caller.who.roles,
    }))
}
