//! Who may call what, and the record of every call.
//!
//! Each API route names one [`Permission`]; a permission is a set of roles, and the policy's
//! `[roles]` table says who holds which (`admin` holds every permission). A request without
//! a valid token gets 401, one whose principal lacks the permission 403, both with what to
//! do next. Every request, allowed or denied, public or not, is written to the access log
//! (who, what, when, from where, outcome) by a background writer in batches.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use custody_app::{AppError, AppResult, Authenticated, Fault, Permission};
use custody_model::Authentication;
use custody_store::AccessEntry;
use serde_json::json;
use tokio::sync::mpsc;

use crate::ServerState;

/// Who made a request and how it went, for the access log (a response extension).
#[derive(Debug, Clone)]
struct Caller {
    principal: String,
    outcome: String,
}

fn refuse(status: StatusCode, principal: &str, message: String, outcome: String) -> Response {
    let mut response = (status, axum::Json(json!({"error": message}))).into_response();
    response.extensions_mut().insert(Caller {
        principal: principal.into(),
        outcome,
    });
    response
}

/// Records who made a request and how it went, for a route that checks access itself
/// (the dashboard's pages).
pub(crate) fn mark_caller(response: &mut Response, principal: &str, outcome: String) {
    response.extensions_mut().insert(Caller {
        principal: principal.into(),
        outcome,
    });
}

/// Constant-time equality (no early exit on the first difference).
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The guard of one route: a valid token whose principal holds `permission`.
pub(crate) async fn require(
    State(state): State<Arc<ServerState>>,
    permission: Permission,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some(token) = token else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "",
            "this route needs a token: send Authorization: Bearer cst_… (an admin creates one with `custody token create`)".into(),
            "unauthenticated: no token".into(),
        );
    };
    let who: Authenticated = match authenticate(&state, &token).await {
        Ok(who) => who,
        Err(e) if e.fault() == Fault::Denied => {
            let why = e.to_string();
            return refuse(
                StatusCode::UNAUTHORIZED,
                "",
                why.clone(),
                format!("unauthenticated: {why}"),
            );
        }
        Err(e) => {
            let status = crate::error::status(e.fault());
            let message = crate::error::message_for(status, &e);
            return refuse(status, "", message, format!("error: {e}"));
        }
    };
    if !permission.granted_to(&who.roles) {
        let why = format!(
            "{} may not {}: that needs one of the roles {:?} (or admin), and the policy gives {} {:?}\nhint: a security admin adds the principal to a role in the policy's [roles]",
            who.principal,
            permission.name(),
            permission.roles(),
            who.principal,
            who.roles
        );
        return refuse(
            StatusCode::FORBIDDEN,
            &who.principal,
            why,
            format!("denied: lacks permission to {}", permission.name()),
        );
    }
    let principal = who.principal.clone();
    request.extensions_mut().insert(who);
    let mut response = next.run(request).await;
    if response.extensions().get::<Caller>().is_none() {
        // The permission used is recorded, so that an access review can say when each
        // role was last needed.
        response.extensions_mut().insert(Caller {
            principal,
            outcome: format!("allowed: {}", permission.name()),
        });
    }
    response
}

/// Who a bearer credential is: an API token (`cst_…`), or a CI job's OIDC ID token when
/// issuers are configured. A credential that does not check out is [`Fault::Denied`].
pub(crate) async fn authenticate(state: &ServerState, token: &str) -> AppResult<Authenticated> {
    if token.starts_with("cst_") || state.oidc.is_empty() {
        return state.app.authenticate(token, state.now()).await;
    }
    let id = state
        .oidc
        .principal(token, state.now().unix_seconds())
        .await
        .map_err(AppError::Denied)?;
    let auth = Authentication::Oidc {
        issuer: id.issuer,
        subject: id.subject,
    };
    state
        .app
        .authenticated(&id.principal, auth, state.now())
        .await
}

/// Records every request after it is answered.
pub(crate) async fn record(
    State(state): State<Arc<ServerState>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let response = next.run(request).await;
    let caller = response
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or(Caller {
            principal: String::new(),
            outcome: "public".into(),
        });
    // Refused access (not a refused promotion or deploy, which are answers, not denials).
    if caller.outcome.starts_with("denied:") || caller.outcome.starts_with("unauthenticated:") {
        let who = if caller.principal.is_empty() {
            remote.split(':').next().unwrap_or_default().to_owned()
        } else {
            caller.principal.clone()
        };
        if let Some(alert) = state.alerting.denied(&who, state.now()) {
            let state = state.clone();
            tokio::spawn(async move { crate::alerting::raise(&state, &alert).await });
        }
    }
    state
        .access
        .push(AccessEntry {
            at: state.now().to_string(),
            principal: caller.principal,
            method,
            path,
            remote,
            status: response.status().as_u16(),
            outcome: caller.outcome,
        })
        .await;
    response
}

/// The access log writer: a bounded queue and a task that writes it in batches. When the
/// writer falls behind, requests wait to enqueue (backpressure) rather than any entry being
/// dropped or the queue growing without bound.
pub(crate) struct AccessLog {
    queue: Mutex<Option<mpsc::Sender<AccessEntry>>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Entries waiting at most; most entries written per batch; how long a small batch waits
/// for company.
const QUEUE: usize = 20_000;
const BATCH: usize = 4_096;
const BATCH_WAIT: Duration = Duration::from_millis(20);

impl AccessLog {
    pub(crate) fn start(state: Weak<ServerState>) -> AccessLog {
        let (tx, mut rx) = mpsc::channel::<AccessEntry>(QUEUE);
        let writer = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                if rx.is_empty() {
                    tokio::time::sleep(BATCH_WAIT).await;
                }
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
                let Some(state) = state.upgrade() else { break };
                if let Err(e) = state.app.log().record_access(batch).await {
                    // The request was answered; its record is what failed. Say so loudly.
                    tracing::error!(error = %e, "writing the access log failed");
                }
            }
        });
        AccessLog {
            queue: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
        }
    }

    async fn push(&self, entry: AccessEntry) {
        let tx = self.queue.lock().ok().and_then(|q| q.clone());
        if let Some(tx) = tx {
            let _ = tx.send(entry).await;
        }
    }

    /// Closes the queue and waits for the writer to write what is in it.
    pub(crate) async fn flush(&self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(writer) = writer {
            let _ = writer.await;
        }
    }
}
