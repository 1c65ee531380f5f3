//! custody's HTTP face: the only crate that knows HTTP. It serves the use cases of
//! `custody_app` and nothing else: no SQL, no ledger logic, no trust decisions of its own.
//!
//! - routes.rs: every API route in one table, each with its [`Permission`] and its OpenAPI
//!   description (derived from the handlers, served at `/api/v1/openapi.json`);
//! - ledger.rs: the ledger's public face (checkpoint, proofs) and health;
//! - api.rs: the API behind identities (the use cases' own request and result types);
//! - access.rs: bearer credentials → principal → roles → the route's permission; each
//!   request's access-log entry; access_log.rs: the access log's writer;
//! - body.rs: a request body's deadline and size limit;
//! - dashboard/: the server-rendered dashboard; audit_report.rs: the printable report of
//!   a verified audit bundle (rendered offline by `custody audit verify --html`);
//! - metrics.rs, alerting/: `/metrics` and alerts, both following the ledger's tail;
//! - error.rs, extract.rs, state.rs: one error mapping, the extractors, the shared state.
//!
//! Every request is recorded in the access log. Bodies are bounded in size ([`MAX_BODY`])
//! and time (body.rs), reads return at most 1,000 entries, and every API error is JSON
//! `{"error": "…"}` whose status comes from the use case's fault (error.rs).

mod access;
mod access_log;
pub mod alerting;
mod api;
pub mod audit_report;
mod body;
mod connections;
mod dashboard;
mod error;
mod exceptions;
mod expiring;
mod extract;
mod governance;
pub mod http_client;
mod keyring;
mod ledger;
mod metrics;
pub mod oidc;
mod routes;
mod settings;
mod state;

use std::sync::Arc;

use axum::Router;
use axum::middleware;

pub use custody_app::Permission;
pub use dashboard::{PAGES, PageRoute};
pub use routes::{PERMISSION_EXTENSION, openapi};
pub use settings::{AccessLogConfig, AccessLogSettings, ConnectionLimits, ServerConfig, Settings};
pub use state::{OwnKey, OwnKeys, ServerState, Witnesses};

/// Largest request body.
pub const MAX_BODY: usize = 1 << 20;

/// Largest body of `POST /api/v1/artifacts/{digest}/evidence`, which carries the raw report
/// (a JSON string: a large SBOM or scan, escaped) for custody to read: 128 MiB. The
/// report's own bound is `custody_evidence::MAX_INPUT_BYTES`.
pub const MAX_REPORT_BODY: usize = 128 << 20;

/// The router: the API (public routes, then each route behind its permission), the
/// OpenAPI document, the dashboard, and the layers every request passes.
pub fn router(state: Arc<ServerState>) -> Router {
    let (api, _) = routes::api(&state);
    api.merge(dashboard::routes(&state))
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::wrong_method)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::time_requests,
        ))
        // The body's bounds (body.rs): the extractors answer 408 and 413, after the
        // route's guard, so the row names the caller; a handler is never cut short.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            body::bound_body,
        ))
        // Outermost, so that the access log records the answer the client gets.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            access::record,
        ))
        .with_state(state)
}

/// Starts what a serving instance runs beside its routes: the ledger's tail (the state
/// cache's freshness and every subscriber's wake-up), alert rules and deliveries, the
/// periodic ledger and state re-check, the access log's retention and the metrics
/// follower. They stop when the handles drop.
pub fn spawn_background(state: &Arc<ServerState>) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn({
            let state = state.clone();
            async move { state.app.follow_ledger().await }
        }),
        tokio::spawn(alerting::follow_ledger(state.clone())),
        tokio::spawn(alerting::run(state.clone())),
        tokio::spawn(alerting::audit_ledger(state.clone())),
        tokio::spawn(access_log::prune(state.clone())),
        tokio::spawn({
            let state = state.clone();
            async move { state.metrics.follow(&state.app).await }
        }),
        tokio::spawn({
            let state = state.clone();
            async move { state.oidc.keep_fresh().await }
        }),
        tokio::spawn({
            let state = state.clone();
            async move {
                if let Some(sign_in) = state.sign_in() {
                    sign_in.warm_up().await;
                }
            }
        }),
    ]
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish and writes the access entries still queued.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ServerState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    alerting::check_state_at_start(&state).await;
    let background = spawn_background(&state);
    let served = connections::serve(listener, app, state.settings.connections, shutdown).await;
    for task in background {
        task.abort();
    }
    state.flush_access_log().await;
    served
}
