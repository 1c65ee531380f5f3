//! custody's HTTP face: the only crate that knows HTTP.
//!
//! Public (no identity), for anyone who checks the log:
//! - the ledger's public face (DESIGN §8): `GET /api/v1/log/checkpoint` (the signed note,
//!   `text/plain`), `/api/v1/log/entries?start=&end=` (the leaf bytes, one per line),
//!   `/api/v1/log/proof/inclusion?index=&size=`, `/api/v1/log/proof/consistency?from=&to=`;
//! - `GET /healthz` (the process answers) and `GET /readyz` (the store answers).
//!
//! Behind an API token (`Authorization: Bearer cst_…`) and a [`Permission`] (access.rs):
//! - the deploy gate `GET /api/v1/verify?env=&digest=` (200 allowed, 403 denied, the
//!   verdict with its evidence as JSON either way);
//! - `GET /api/v1/history`, `/api/v1/decisions/{id}`, `/api/v1/access-log`;
//! - `POST /api/v1/promotions`, `/api/v1/promotions/{id}/approve|reject`,
//!   `/api/v1/deploys`, `/api/v1/environments/{env}/rollback`, `PUT /api/v1/policy`
//!   (api.rs).
//!
//! Every request is recorded in the access log. Bodies are bounded ([`MAX_BODY`]), reads
//! return at most 1,000 entries, requests time out, and every error is JSON
//! `{"error": "…"}` with a 4xx or 5xx status.

mod access;
pub mod alerting;
mod api;
mod dashboard;
pub mod http_client;
mod metrics;
pub mod oidc;
pub mod openapi;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use custody_app::{App, AppError};
use custody_ledger::Hash;
use custody_model::Digest;
use custody_store::{SqlStore, Store, StoreError};
use serde::Deserialize;
use serde_json::json;

pub use custody_app::Permission;

/// What every handler shares.
pub struct ServerState {
    /// The use cases.
    pub app: App<SqlStore>,
    /// Trusted CI identity issuers.
    pub oidc: oidc::Oidc,
    access: access::AccessLog,
    metrics: metrics::Metrics,
    alerting: alerting::Alerting,
}

impl ServerState {
    /// The state for `app`, with its access-log writer started.
    pub fn new(
        app: App<SqlStore>,
        oidc: oidc::Oidc,
        alerts: alerting::AlertConfig,
    ) -> Arc<ServerState> {
        let state = Arc::new_cyclic(|weak| ServerState {
            app,
            oidc,
            access: access::AccessLog::start(weak.clone()),
            metrics: metrics::Metrics::new(),
            alerting: alerting::Alerting::new(alerts),
        });
        state.metrics.time_appends_of(&state.app);
        state
    }

    /// Writes the access entries still queued; call after the server stopped.
    pub async fn flush_access_log(&self) {
        self.access.flush().await;
    }
}

/// How long a request may take before the server answers 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request body.
pub const MAX_BODY: usize = 1 << 20;

/// The router: public routes, then each API route behind the roles that may use it.
pub fn router(state: Arc<ServerState>) -> Router {
    use custody_app::Permission as P;
    let guarded = |permission: P| {
        middleware::from_fn_with_state(state.clone(), move |s, req, next| {
            access::require(s, permission, req, next)
        })
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route(
            "/api/v1/openapi.json",
            get(|| async { axum::Json(openapi::document()) }),
        )
        .route("/api/v1/log/checkpoint", get(checkpoint))
        .route("/api/v1/log/entries", get(entries))
        .route("/api/v1/log/proof/inclusion", get(inclusion))
        .route("/api/v1/log/proof/consistency", get(consistency))
        .route(
            "/api/v1/verify",
            get(verify).route_layer(guarded(P::Verify)),
        )
        .route(
            "/api/v1/history",
            get(api::history).route_layer(guarded(P::Read)),
        )
        .route(
            "/api/v1/decisions/{id}",
            get(api::decision).route_layer(guarded(P::Read)),
        )
        .route(
            "/api/v1/access-log",
            get(api::access_log).route_layer(guarded(P::Audit)),
        )
        .route(
            "/api/v1/promotions",
            post(api::promote).route_layer(guarded(P::Promote)),
        )
        .route(
            "/api/v1/artifacts",
            post(api::register_artifact).route_layer(guarded(P::Register)),
        )
        .route(
            "/api/v1/artifacts/{digest}/evidence",
            post(api::attest).route_layer(guarded(P::Attest)),
        )
        .route(
            "/api/v1/releases",
            post(api::record_release).route_layer(guarded(P::Release)),
        )
        .route(
            "/api/v1/promotions/{id}",
            get(api::promotion).route_layer(guarded(P::Read)),
        )
        .route(
            "/api/v1/promotions/{id}/approve",
            post(api::approve).route_layer(guarded(P::Review)),
        )
        .route(
            "/api/v1/promotions/{id}/reject",
            post(api::reject).route_layer(guarded(P::Review)),
        )
        .route(
            "/api/v1/deploys",
            post(api::deploy).route_layer(guarded(P::Deploy)),
        )
        .route(
            "/api/v1/environments/{env}/rollback",
            post(api::rollback).route_layer(guarded(P::Deploy)),
        )
        .route(
            "/api/v1/policy",
            put(api::apply_policy).route_layer(guarded(P::Policy)),
        )
        .route(
            "/api/v1/decisions/{id}/replay",
            get(api::replay).route_layer(guarded(P::Read)),
        )
        .route(
            "/api/v1/access-review",
            get(api::access_review).route_layer(guarded(P::Audit)),
        )
        .route(
            "/api/v1/tokens",
            post(api::create_token)
                .route_layer(guarded(P::Tokens))
                .merge(get(api::tokens).route_layer(guarded(P::Audit))),
        )
        .route(
            "/api/v1/tokens/{id}/revoke",
            post(api::revoke_token).route_layer(guarded(P::Tokens)),
        )
        // The dashboard: its pages check the session themselves.
        .route("/", get(dashboard::board))
        .route("/login", get(dashboard::login_form).post(dashboard::login))
        .route("/logout", post(dashboard::logout))
        .route("/promotions/{id}", get(dashboard::promotion))
        .route("/promotions/{id}/review", post(dashboard::review))
        .route("/history", get(dashboard::history))
        .route("/alerts", get(dashboard::alerts))
        .route("/artifacts/{digest}", get(dashboard::lineage))
        .route("/keys", get(dashboard::keys))
        .route("/access", get(dashboard::access))
        .route("/ledger", get(dashboard::ledger))
        .route("/charts", get(dashboard::charts))
        .route("/history.csv", get(dashboard::export_csv))
        .route("/history.json", get(dashboard::export_json))
        // Counts per environment, gate and route: for those who may read the history.
        .route(
            "/metrics",
            get(metrics::render).route_layer(guarded(P::Read)),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::time_requests,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            access::record,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY))
        .with_state(state)
}

/// An error as the API reports it.
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

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
            AppError::Store(StoreError::IdempotencyConflict(k)) => ApiError(
                StatusCode::CONFLICT,
                format!("idempotency key {k:?} was already used for a different request"),
            ),
            AppError::Store(s) => s.into(),
            AppError::Denied(m) => ApiError(StatusCode::FORBIDDEN, m),
            AppError::Invalid(m) => ApiError(StatusCode::BAD_REQUEST, m),
            // A statement, envelope or key the caller sent that does not parse.
            AppError::Crypto(c) => ApiError(StatusCode::BAD_REQUEST, c.to_string()),
            AppError::Policy(p) => ApiError(
                StatusCode::BAD_REQUEST,
                format!("the policy has mistakes:\n{p}"),
            ),
        }
    }
}

pub(crate) fn bad_query(e: QueryRejection) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.body_text())
}

pub(crate) fn hex(h: &Hash) -> String {
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
    let body = verdict
        .to_json()
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_vec(),
    )
        .into_response())
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish and writes the access entries still queued.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ServerState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    // Keeps tokens, the policy's digest and environments in memory, exact for this
    // server's writes and within custody_app::STATE_WATCH_EVERY for other processes'.
    let watcher = tokio::spawn({
        let state = state.clone();
        async move { state.app.watch_for_other_writers().await }
    });
    // Raises alerts from the ledger and the clock, and delivers them to webhooks.
    let alerts = tokio::spawn(alerting::run(state.clone()));
    let ledger_audit = tokio::spawn(alerting::audit_ledger(state.clone()));
    // Folds the ledger into the metrics as it grows, ahead of scrapes and the charts.
    let metrics_follower = tokio::spawn({
        let state = state.clone();
        async move { state.metrics.follow(state.app.store()).await }
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    watcher.abort();
    alerts.abort();
    ledger_audit.abort();
    metrics_follower.abort();
    state.flush_access_log().await;
    served
}
