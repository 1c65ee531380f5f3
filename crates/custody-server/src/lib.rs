//! custody's HTTP face: the only crate that knows HTTP.
//!
//! Served today, all reads that need no identity:
//! - the ledger's public face (DESIGN §8): `GET /api/v1/log/checkpoint` (the signed note,
//!   `text/plain`), `/api/v1/log/entries?start=&end=` (the leaf bytes, one per line),
//!   `/api/v1/log/proof/inclusion?index=&size=`, `/api/v1/log/proof/consistency?from=&to=`;
//! - the deploy gate: `GET /api/v1/verify?env=&digest=` (200 allowed, 403 denied, the
//!   verdict with its evidence as JSON either way);
//! - `GET /healthz` (the process answers) and `GET /readyz` (the store answers).
//!
//! Every route is bounded (no request body is read; a read returns at most 1,000 entries;
//! requests time out) and every error is JSON `{"error": "…"}` with a 4xx or 5xx status.
//! The mutating API, identities and roles come with the service issue.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use custody_app::{App, AppError};
use custody_ledger::Hash;
use custody_model::Digest;
use custody_store::{SqlStore, Store, StoreError};
use serde::Deserialize;
use serde_json::json;

/// What every handler shares.
pub struct ServerState {
    /// The use cases.
    pub app: App<SqlStore>,
}

/// How long a request may take before the server answers 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The router.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/api/v1/log/checkpoint", get(checkpoint))
        .route("/api/v1/log/entries", get(entries))
        .route("/api/v1/log/proof/inclusion", get(inclusion))
        .route("/api/v1/log/proof/consistency", get(consistency))
        .route("/api/v1/verify", get(verify))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(1 << 20))
        .with_state(state)
}

/// An error as the API reports it.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"error": self.1}))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match e {
            StoreError::OutOfRange(_) | StoreError::InvalidInput(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Store(s) => s.into(),
            AppError::Denied(m) => ApiError(StatusCode::FORBIDDEN, m),
            AppError::Invalid(m) => ApiError(StatusCode::BAD_REQUEST, m),
            other => ApiError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

fn bad_query(e: QueryRejection) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.body_text())
}

fn hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

async fn ready(State(s): State<Arc<ServerState>>) -> Result<&'static str, ApiError> {
    s.app
        .store()
        .checkpoint()
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok("ready\n")
}

async fn checkpoint(State(s): State<Arc<ServerState>>) -> Result<Response, ApiError> {
    let cp = s.app.store().checkpoint().await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        cp.note,
    )
        .into_response())
}

#[derive(Deserialize)]
struct Range {
    start: u64,
    end: u64,
}

async fn entries(
    State(s): State<Arc<ServerState>>,
    q: Result<Query<Range>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let mut body = Vec::new();
    for e in s.app.store().entries(q.start, q.end).await? {
        body.extend_from_slice(&e.leaf);
        body.push(b'\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

#[derive(Deserialize)]
struct InclusionQuery {
    index: u64,
    size: u64,
}

async fn inclusion(
    State(s): State<Arc<ServerState>>,
    q: Result<Query<InclusionQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let store = s.app.store();
    let proof = store.inclusion_proof(q.index, q.size).await?;
    let root = store.root_at(q.size).await?;
    Ok(axum::Json(json!({
        "index": q.index,
        "tree_size": q.size,
        "root": hex(&root),
        "hashes": proof.iter().map(hex).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    from: u64,
    to: u64,
}

async fn consistency(
    State(s): State<Arc<ServerState>>,
    q: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let store = s.app.store();
    let proof = store.consistency_proof(q.from, q.to).await?;
    let (old, new) = (store.root_at(q.from).await?, store.root_at(q.to).await?);
    Ok(axum::Json(json!({
        "from": q.from,
        "to": q.to,
        "from_root": hex(&old),
        "to_root": hex(&new),
        "hashes": proof.iter().map(hex).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[derive(Deserialize)]
struct VerifyQuery {
    env: String,
    digest: String,
}

async fn verify(
    State(s): State<Arc<ServerState>>,
    q: Result<Query<VerifyQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let digest: Digest = q
        .digest
        .parse()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("digest: {e}")))?;
    let verdict = s.app.verify(&q.env, &digest).await?;
    let status = if verdict.allowed {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    };
    Ok((status, axum::Json(json!(verdict))).into_response())
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ServerState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
