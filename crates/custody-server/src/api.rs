//! The API routes behind identities: reads for auditors, and the mutating use cases. Every
//! body is JSON with unknown fields refused; every mutation takes an `Idempotency-Key`
//! header where the use case has one; every failure is JSON `{"error"}` with a 4xx.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use custody_app::{Actor, Authenticated, HistoryFilter, TokenInfo};
use custody_model::{Digest, Risk, Timestamp, Verdict};
use custody_store::Store;
use serde::Deserialize;
use serde_json::json;

use crate::{ApiError, ServerState, bad_query};

fn now() -> Timestamp {
    Timestamp::from_datetime(time::OffsetDateTime::now_utc())
}

fn actor(who: &Authenticated) -> Result<Actor, ApiError> {
    Actor::new(who.principal.clone(), now()).map_err(ApiError::from)
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 256)
            .map(|k| Some(k.to_owned()))
            .ok_or_else(|| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    "Idempotency-Key must be 1 to 256 visible ASCII characters".into(),
                )
            }),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryQuery {
    artifact: Option<Digest>,
    build: Option<String>,
    principal: Option<String>,
    env: Option<String>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    before: Option<u64>,
    limit: Option<usize>,
}

pub(crate) async fn history(
    State(s): State<Arc<ServerState>>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let filter = HistoryFilter {
        artifact: q.artifact,
        build: q.build,
        principal: q.principal,
        environment: q.env,
        since: q.since,
        until: q.until,
        before: q.before,
        // 0 would mean "all" to the use case; over HTTP a page is at most 1000.
        limit: match q.limit.unwrap_or(100) {
            0 => 1000,
            n => n.min(1000),
        },
    };
    Ok(Json(json!(s.app.history(&filter).await?)).into_response())
}

pub(crate) async fn decision(
    State(s): State<Arc<ServerState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let d = s.app.decision(&id).await.map_err(not_found)?;
    Ok(Json(json!(d)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessQuery {
    after: Option<u64>,
    limit: Option<u64>,
}

pub(crate) async fn access_log(
    State(s): State<Arc<ServerState>>,
    q: Result<Query<AccessQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let log = s
        .app
        .store()
        .access_log(q.after.unwrap_or(0), q.limit.unwrap_or(100))
        .await?;
    Ok(Json(json!(log)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PromoteBody {
    release: custody_model::ReleaseRef,
    environment: String,
    /// Break glass, with this reason (see `App::promote_with`).
    #[serde(default)]
    break_glass: Option<String>,
}

pub(crate) async fn promote(
    State(s): State<Arc<ServerState>>,
    Extension(who): Extension<Authenticated>,
    headers: HeaderMap,
    b: Result<Json<PromoteBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let key = idempotency_key(&headers)?;
    let outcome = s
        .app
        .promote_with(
            &actor(&who)?,
            &b.release.to_string(),
            &b.environment,
            key.as_deref(),
            b.break_glass.as_deref(),
        )
        .await?;
    Ok(Json(json!(outcome)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewBody {
    rationale: String,
    risk: Risk,
    #[serde(default)]
    confidential: bool,
}

async fn review(
    s: Arc<ServerState>,
    who: Authenticated,
    id: String,
    headers: HeaderMap,
    b: Result<Json<ReviewBody>, JsonRejection>,
    verdict: Verdict,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let key = idempotency_key(&headers)?;
    let outcome = s
        .app
        .review(
            &actor(&who)?,
            &id,
            &custody_app::Review {
                verdict,
                rationale: b.rationale,
                risk: b.risk,
                confidential: b.confidential,
            },
            key.as_deref(),
        )
        .await?;
    Ok(Json(json!(outcome)).into_response())
}

pub(crate) async fn approve(
    State(s): State<Arc<ServerState>>,
    Extension(who): Extension<Authenticated>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Result<Json<ReviewBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    review(s, who, id, headers, b, Verdict::Approve).await
}

pub(crate) async fn reject(
    State(s): State<Arc<ServerState>>,
    Extension(who): Extension<Authenticated>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Result<Json<ReviewBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    review(s, who, id, headers, b, Verdict::Reject).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub(crate) enum DeployStatus {
    Succeeded,
    Failed,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeployBody {
    environment: String,
    digests: Vec<Digest>,
    status: DeployStatus,
}

pub(crate) async fn deploy(
    State(s): State<Arc<ServerState>>,
    Extension(who): Extension<Authenticated>,
    headers: HeaderMap,
    b: Result<Json<DeployBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let key = idempotency_key(&headers)?;
    if b.digests.len() > 1000 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "at most 1000 digests per report".into(),
        ));
    }
    let outcome = s
        .app
        .deploy_report(
            &actor(&who)?,
            &b.environment,
            &b.digests,
            matches!(b.status, DeployStatus::Succeeded),
            key.as_deref(),
        )
        .await?;
    Ok(Json(json!(outcome)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RollbackBody {
    reason: String,
}

pub(crate) async fn rollback(
    State(s): State<Arc<ServerState>>,
    Extension(who): Extension<Authenticated>,
    Path(env): Path<String>,
    headers: HeaderMap,
    b: Result<Json<RollbackBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let key = idempotency_key(&headers)?;
    let outcome = s
        .app
        .rollback(&actor(&who)?, &env, &b.reason, key.as_deref())
        .await?;
    Ok(Json(json!(outcome)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyBody {
    files: std::collections::BTreeMap<String, String>,
}

pub(crate) async fn apply_policy(
    State(s): State<Arc<ServerState>>,
    Extension(who): Extension<Authenticated>,
    b: Result<Json<PolicyBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let bundle = custody_policy::Bundle { files: b.files };
    let applied = s.app.apply_policy(&actor(&who)?, bundle).await?;
    Ok(Json(json!(applied)).into_response())
}

/// A promotion with its reviews. A confidential rationale is shown only to auditors,
/// admins, its author and the requester; others see that it is confidential.
pub(crate) async fn promotion(
    State(s): State<Arc<ServerState>>,
    Extension(who): Extension<Authenticated>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (promotion, mut reviews) = s.app.promotion(&id).await.map_err(not_found)?;
    let privileged = who.roles.iter().any(|r| r == "auditor" || r == "admin");
    for r in &mut reviews {
        let involved = r.by == who.principal || promotion.requested_by == who.principal;
        if r.confidential && !privileged && !involved {
            r.rationale = "(confidential)".into();
        }
    }
    Ok(Json(json!({"promotion": promotion, "reviews": reviews})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ArtifactBody {
    name: String,
    digest: Digest,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    build: Option<custody_app::attestations::BuildFields>,
    provenance: Option<custody_crypto::dsse::Envelope>,
}

/// Registers an artifact; its provenance is signed by the builder before it is sent.
pub(crate) async fn register_artifact(
    State(s): State<Arc<ServerState>>,
    Extension(who): Extension<Authenticated>,
    b: Result<Json<ArtifactBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let registered = s
        .app
        .register_artifact(
            &actor(&who)?,
            custody_app::NewArtifact {
                name: b.name,
                digest: Some(b.digest),
                size: b.size,
                build: b.build,
                provenance: b.provenance,
                builder_key: None,
            },
        )
        .await?;
    Ok(Json(json!(registered)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EvidenceBody {
    kind: String,
    format: String,
    /// Digest of the evidence file (the file stays with the caller).
    digest: Digest,
}

pub(crate) async fn attest(
    State(s): State<Arc<ServerState>>,
    Extension(who): Extension<Authenticated>,
    Path(artifact): Path<String>,
    headers: HeaderMap,
    b: Result<Json<EvidenceBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let key = idempotency_key(&headers)?;
    let artifact: Digest = artifact
        .parse()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("artifact digest: {e}")))?;
    if b.format.is_empty() || b.format.len() > 32 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "format must be 1 to 32 characters".into(),
        ));
    }
    let index = s
        .app
        .attest(
            &actor(&who)?,
            &artifact,
            &b.kind,
            &b.format,
            b.digest,
            key.as_deref(),
        )
        .await?;
    Ok(Json(json!({"ledger_index": index})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseBody {
    /// The release manifest statement in a DSSE envelope, signed by the release signer.
    manifest: custody_crypto::dsse::Envelope,
}

pub(crate) async fn record_release(
    State(s): State<Arc<ServerState>>,
    Extension(who): Extension<Authenticated>,
    headers: HeaderMap,
    b: Result<Json<ReleaseBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let key = idempotency_key(&headers)?;
    let created = s
        .app
        .record_release(&actor(&who)?, b.manifest, key.as_deref())
        .await?;
    Ok(Json(json!(created)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenBody {
    principal: String,
    /// How long it is valid: 90s, 30m, 24h, 90d.
    #[serde(default = "ninety_days")]
    expires: String,
    #[serde(default)]
    description: String,
}

fn ninety_days() -> String {
    "90d".into()
}

/// Creates a token: 201 with the token text, shown this once. A retry with the same
/// Idempotency-Key creates nothing and answers 200 with the first token's record, without
/// its text.
pub(crate) async fn create_token(
    State(s): State<Arc<ServerState>>,
    Extension(who): Extension<Authenticated>,
    headers: HeaderMap,
    b: Result<Json<TokenBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let b = body(b)?;
    let span = custody_policy::Span::parse(&b.expires)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("expires: {e}")))?;
    let seconds = i64::try_from(span.seconds()).unwrap_or(i64::MAX);
    let (record, token) = s
        .app
        .create_token(
            &actor(&who)?,
            &b.principal,
            seconds,
            &b.description,
            key.as_deref(),
        )
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

/// Every token, never a secret.
pub(crate) async fn tokens(State(s): State<Arc<ServerState>>) -> Result<Response, ApiError> {
    let tokens = s.app.tokens().await?;
    Ok(Json(json!(
        tokens.iter().map(TokenInfo::from).collect::<Vec<_>>()
    ))
    .into_response())
}

/// Revokes a token (revoking a revoked one changes nothing).
pub(crate) async fn revoke_token(
    State(s): State<Arc<ServerState>>,
    Extension(who): Extension<Authenticated>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = s
        .app
        .revoke_token(&actor(&who)?, &id)
        .await
        .map_err(not_found)?;
    Ok(Json(json!(TokenInfo::from(&record))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewQuery {
    unused_days: Option<i64>,
}

/// Who holds which role, when each last used it, and what went unused.
pub(crate) async fn access_review(
    State(s): State<Arc<ServerState>>,
    q: Result<Query<ReviewQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let days = q.unused_days.unwrap_or(90);
    if !(1..=3650).contains(&days) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "unused_days must be 1 to 3650".into(),
        ));
    }
    Ok(Json(json!(s.app.access_review(now(), days).await?)).into_response())
}

/// A decision evaluated again from its recorded facts and policy version.
pub(crate) async fn replay(
    State(s): State<Arc<ServerState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let replay = s.app.replay(&id).await.map_err(not_found)?;
    Ok(Json(json!(replay)).into_response())
}

/// "No such thing" from a use case is a 404 on a route that names it.
fn not_found(e: custody_app::AppError) -> ApiError {
    match e {
        custody_app::AppError::Invalid(m) => ApiError(StatusCode::NOT_FOUND, m),
        other => other.into(),
    }
}
