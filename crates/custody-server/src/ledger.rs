//! The ledger's public face (DESIGN §8): the signed checkpoint and the proofs are hashes
//! only, so anyone may watch the log's consistency without a token.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use custody_app::{ConsistencyProof, InclusionProof};
use serde::{Deserialize, Serialize};

use crate::ServerState;
use crate::api::ErrorBody;
use crate::error::ApiError;
use crate::extract::{ApiQuery, ApiText};

/// Which checkpoint.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CheckpointQuery {
    /// Only the latest checkpoint enough witnesses cosigned (the quorum configured in
    /// config.toml's `[log] witness_quorum`); 404 while there is none.
    #[serde(default, rename = "final")]
    final_: bool,
    /// The checkpoint the log signed at exactly this many entries (404 if none): how a
    /// monitor holding a retired log key fetches the hand-over checkpoint, signed by the
    /// old and the new key, at the size a `log.key_rotated` event names. Not with `final`.
    #[serde(default)]
    size: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/log/checkpoint", params(CheckpointQuery),
    responses((status = 200, description = "the latest signed checkpoint: a C2SP signed note, with the cosignatures witnesses added", content_type = "text/plain", body = String),
              (status = 400, description = "size and final=true together", body = ErrorBody),
              (status = 404, description = "final=true and no checkpoint has the quorum of cosignatures yet, or no checkpoint of that size", body = ErrorBody),
              (status = 503, description = "the latest: the ledger's history was changed behind custody's back, and it vouches for no head until an operator resolves it", body = ErrorBody)))]
pub(crate) async fn checkpoint(
    State(s): State<Arc<ServerState>>,
    ApiQuery(q): ApiQuery<CheckpointQuery>,
) -> Result<Response, ApiError> {
    let published = if let Some(size) = q.size {
        if q.final_ {
            return Err(ApiError::bad_request(
                "size and final=true cannot be combined: ask for one checkpoint or the other",
            ));
        }
        s.app.log().published_at(size).await?
    } else if q.final_ {
        let w = s.witnesses();
        s.app
            .log()
            .final_checkpoint(&w.keys, w.quorum)
            .await?
            .ok_or_else(|| {
                ApiError(
                    axum::http::StatusCode::NOT_FOUND,
                    format!(
                        "no checkpoint has {} witness cosignatures yet (of {} witnesses configured)",
                        w.quorum,
                        w.keys.len()
                    ),
                )
            })?
    } else {
        // The head of a history changed behind custody's back is not vouched for as the
        // log's: refused until an operator resolves it (the sizes asked for by name are
        // what the log signed then, and are still served).
        let readiness = s.app.log().readiness().await;
        if let custody_store::Readiness::IntegrityFailed(_) = readiness {
            return Err(unavailable(&readiness));
        }
        s.app.log().published().await?
    };
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        published.note,
    )
        .into_response())
}

/// What a cosignature did.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Cosigned {
    /// The checkpoint's size.
    size: u64,
    /// The witnesses whose cosignatures it now carries.
    witnesses: Vec<String>,
    /// Whether it now has the quorum (and is served by `?final=true`).
    #[serde(rename = "final")]
    final_: bool,
}

#[utoipa::path(post, path = "/api/v1/log/cosignature",
    request_body(content = String, content_type = "text/plain", description = "a checkpoint this log published, as a signed note with the witness's C2SP tlog-cosignature line(s) added"),
    responses((status = 200, body = Cosigned), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn cosign(
    State(s): State<Arc<ServerState>>,
    ApiText(body): ApiText,
) -> Result<Json<Cosigned>, ApiError> {
    let w = s.witnesses();
    if w.keys.is_empty() {
        return Err(ApiError::bad_request(
            "this server accepts no cosignatures: no witness is configured ([log] witnesses in config.toml)",
        ));
    }
    let published = s.app.log().add_cosignatures(&body, &w.keys).await?;
    let known = published
        .witnesses
        .iter()
        .filter(|n| w.keys.iter().any(|k| k.name() == n.as_str()))
        .count();
    Ok(Json(Cosigned {
        size: published.size,
        final_: w.quorum > 0 && known >= w.quorum,
        witnesses: published.witnesses,
    }))
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

/// Where to start listing hand-overs.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HandoversQuery {
    /// The first ledger index to look at (default 0).
    #[serde(default)]
    from: u64,
}

/// A log-key hand-over: the `log.key_rotated` entry, the last leaf of the hand-over
/// checkpoint of `index + 1` entries (`GET /api/v1/log/checkpoint?size=…`).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Handover {
    /// Its ledger index.
    index: u64,
    /// The leaf, as the log holds it.
    leaf: String,
}

#[utoipa::path(get, path = "/api/v1/log/handovers", params(HandoversQuery),
    responses((status = 200, description = "the log-key hand-overs from that index, oldest first: a monitor holding an old log key follows them (each proved by its checkpoint, signed by both keys, and an inclusion proof)", body = Vec<Handover>), (status = 400, body = ErrorBody)))]
pub(crate) async fn handovers(
    State(s): State<Arc<ServerState>>,
    ApiQuery(q): ApiQuery<HandoversQuery>,
) -> Result<Json<Vec<Handover>>, ApiError> {
    let entries = s.app.log().handovers(q.from).await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| Handover {
                index: e.index,
                leaf: String::from_utf8_lossy(&e.leaf).into_owned(),
            })
            .collect(),
    ))
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
        tracing::debug!(%readiness, "not ready");
        return Err(unavailable(&readiness));
    }
    s.app.log().checkpoint().await?;
    Ok("ready\n")
}

/// A 503 saying why: a history changed behind custody's back, or a retired log key, waits
/// for an operator, not for a retry. (Not logged: a probe asks every few seconds, and the cause is in the log
/// once already, from where it was found.)
fn unavailable(readiness: &custody_store::Readiness) -> ApiError {
    use custody_store::Readiness;
    let why = match readiness {
        Readiness::IntegrityFailed(_) => crate::error::HISTORY_CHANGED,
        Readiness::Retired(_) => crate::error::KEY_RETIRED,
        _ => crate::error::NOT_ANSWERING,
    };
    ApiError(axum::http::StatusCode::SERVICE_UNAVAILABLE, why.to_owned())
}
