//! The ledger's public face (DESIGN §8): the signed checkpoint and the proofs are hashes
//! only, so anyone may watch the log's consistency without a token.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use custody_app::{ConsistencyProof, InclusionProof};
use serde::Deserialize;

use crate::ServerState;
use crate::api::ErrorBody;
use crate::error::ApiError;
use crate::extract::ApiQuery;

#[utoipa::path(get, path = "/api/v1/log/checkpoint",
    responses((status = 200, description = "the latest signed checkpoint: a C2SP signed note", content_type = "text/plain", body = String)))]
pub(crate) async fn checkpoint(State(s): State<Arc<ServerState>>) -> Result<Response, ApiError> {
    let cp = s.app.log().checkpoint().await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        cp.note,
    )
        .into_response())
}

/// A range of entries.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Range {
    /// The first entry.
    start: u64,
    /// One past the last (at most 1,000 entries a request).
    end: u64,
}

#[utoipa::path(get, path = "/api/v1/log/entries", params(Range),
    responses((status = 200, description = "the leaves' RFC 8785 bytes, one per line", content_type = "application/x-ndjson", body = String),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn entries(
    State(s): State<Arc<ServerState>>,
    ApiQuery(q): ApiQuery<Range>,
) -> Result<Response, ApiError> {
    let mut body = Vec::new();
    for e in s.app.log().entries(q.start, q.end).await? {
        body.extend_from_slice(&e.leaf);
        body.push(b'\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// An inclusion proof's question.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct InclusionQuery {
    /// The entry.
    index: u64,
    /// The tree's size.
    size: u64,
}

#[utoipa::path(get, path = "/api/v1/log/proof/inclusion", params(InclusionQuery),
    responses((status = 200, body = InclusionProof), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn inclusion(
    State(s): State<Arc<ServerState>>,
    ApiQuery(q): ApiQuery<InclusionQuery>,
) -> Result<Json<InclusionProof>, ApiError> {
    Ok(Json(s.app.log().inclusion(q.index, q.size).await?))
}

/// A consistency proof's question.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ConsistencyQuery {
    /// The older tree's size.
    from: u64,
    /// The newer tree's size.
    to: u64,
}

#[utoipa::path(get, path = "/api/v1/log/proof/consistency", params(ConsistencyQuery),
    responses((status = 200, body = ConsistencyProof), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn consistency(
    State(s): State<Arc<ServerState>>,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    Ok(Json(s.app.log().consistency(q.from, q.to).await?))
}

#[utoipa::path(get, path = "/healthz",
    responses((status = 200, description = "the process answers", content_type = "text/plain", body = String)))]
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

#[utoipa::path(get, path = "/readyz",
    responses((status = 200, description = "writes can succeed", content_type = "text/plain", body = String),
              (status = 503, body = ErrorBody)))]
pub(crate) async fn readyz(State(s): State<Arc<ServerState>>) -> Result<&'static str, ApiError> {
    // Not ready while writes cannot succeed: storage failing (until a probe write passes),
    // or read-only after the log's history was found rolled back or forked.
    let readiness = s.app.log().readiness().await;
    if !readiness.is_ready() {
        return Err(custody_app::AppError::Unavailable(format!(
            "custody cannot write: {readiness:?}"
        ))
        .into());
    }
    s.app.log().checkpoint().await?;
    Ok("ready\n")
}
