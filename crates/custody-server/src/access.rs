//! Who may call what, and the record of every call.
//!
//! Each API route names one [`Permission`]; a permission is a set of roles, and the policy's
//! `[roles]` table says who holds which (`admin` holds every permission). A request without
//! a valid token gets 401, one whose principal lacks the permission 403, both with what to
//! do next. Requests are written to the access log (who, what, when, from where, outcome)
//! as [`AccessLog`](crate::access_log::AccessLog) says: durably before the answer for a request that changed something
//! or was refused, in batches for allowed reads, and sampled for anonymous floods. A client
//! that hangs up does not cut a request short of its entry (see [`record`]).

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use custody_app::{AppError, AppResult, Authenticated, Fault, Permission};
use custody_model::Authentication;
use custody_store::AccessEntry;
use serde_json::json;

use crate::ServerState;
use crate::access_log::Slot;

/// Who made a request and how it went, for the access log (a response extension).
#[derive(Debug, Clone)]
struct Caller {
    principal: String,
    /// The credential used ([`Authentication::describe`]), so that one leaked token's
    /// requests can be told from its principal's others.
    credential: String,
    outcome: String,
}

/// Who a request showed itself to be: a principal and how they authenticated.
pub(crate) type Shown<'a> = Option<(&'a str, &'a Authentication)>;

/// `who`'s principal and credential, for the access log.
pub(crate) fn shown(who: &Authenticated) -> Shown<'_> {
    Some((&who.principal, &who.auth))
}

impl Caller {
    fn of(who: Shown<'_>, outcome: String) -> Caller {
        Caller {
            principal: who.map(|(p, _)| p.to_owned()).unwrap_or_default(),
            credential: who.map(|(_, a)| a.describe()).unwrap_or_default(),
            outcome,
        }
    }
}

fn refuse(status: StatusCode, who: Shown<'_>, message: String, outcome: String) -> Response {
    let mut response = (status, axum::Json(json!({"error": message}))).into_response();
    response.extensions_mut().insert(Caller::of(who, outcome));
    response
}

/// Records who made a request (`None`: nobody shown) and how it went, for a route that
/// checks access itself (the dashboard's pages).
pub(crate) fn mark_caller(response: &mut Response, who: Shown<'_>, outcome: String) {
    response.extensions_mut().insert(Caller::of(who, outcome));
}

/// Who a credentialed request showed itself to be, noted by an extractor that checks
/// access itself (a dashboard page's [`crate::dashboard::Viewer`]) as soon as it knows:
/// when a later extractor refuses the request (a form that did not arrive in time, or is
/// too large), no handler marks the answer, and the row still names its caller.
#[derive(Clone, Default)]
pub(crate) struct CallerNote(Arc<OnceLock<Caller>>);

/// Notes who a request showed itself to be (see [`CallerNote`]); an answer marked by
/// [`mark_caller`] says more and wins.
pub(crate) fn note_caller(extensions: &axum::http::Extensions, who: Shown<'_>, outcome: String) {
    if let Some(note) = extensions.get::<CallerNote>() {
        let _ = note.0.set(Caller::of(who, outcome));
    }
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
    let token = match bearer(request.headers()) {
        Ok(Some(token)) => token.to_owned(),
        Ok(None) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                None,
                format!("this route needs a token: {SEND_TOKEN}"),
                "unauthenticated: no token".into(),
            );
        }
        Err(what) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                None,
                format!(
                    "this route needs one bearer token, and the request holds {what}: {SEND_TOKEN}"
                ),
                format!("unauthenticated: {what} (refused)"),
            );
        }
    };
    let who: Authenticated = match authenticate(&state, &token).await {
        Ok(who) => who,
        Err(e) if e.fault() == Fault::Denied => {
            let why = e.to_string();
            let mut refused = refuse(
                StatusCode::UNAUTHORIZED,
                None,
                why.clone(),
                format!("unauthenticated: {why}"),
            );
            if let Some(caller) = refused.extensions_mut().get_mut::<Caller>() {
                caller.credential = presented(&token);
            }
            return refused;
        }
        Err(e) => {
            let status = crate::error::status(e.fault());
            let message = crate::error::message_for(status, &e);
            return refuse(status, None, message, format!("error: {e}"));
        }
    };
    if !permission.granted_to(&who.roles) {
        let why = format!(
            "{} may not {}: that needs one of the roles {:?} (or admin), and the policy gives {} {:?}\nhint: roles come from the policy's [roles]: propose a policy that grants one (`custody policy propose DIR`); it takes effect when the owners approve",
            who.principal,
            permission.name(),
            permission.roles(),
            who.principal,
            who.roles
        );
        return refuse(
            StatusCode::FORBIDDEN,
            shown(&who),
            why,
            format!("denied: lacks permission to {}", permission.name()),
        );
    }
    let caller = Caller::of(shown(&who), format!("allowed: {}", permission.name()));
    request.extensions_mut().insert(who);
    let mut response = next.run(request).await;
    if response.extensions().get::<Caller>().is_none() {
        // The permission used is recorded, so that an access review can say when each
        // role was last needed.
        response.extensions_mut().insert(caller);
    }
    response
}

/// How to authenticate, as the refusals say.
const SEND_TOKEN: &str =
    "send Authorization: Bearer cst_… (an admin creates one with `custody token create`)";

/// The bearer credential in `headers`' Authorization, if there is one. The scheme's case
/// does not matter (HTTP's auth schemes are case-insensitive: `bearer` is `Bearer`), nor
/// how much space or tab follows it. A header that holds something else is refused by what
/// it holds (another scheme, no token, bytes that are not visible ASCII, a second
/// Authorization header), never by its content, which is the sender's text.
pub(crate) fn bearer(headers: &header::HeaderMap) -> Result<Option<&str>, &'static str> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err("two Authorization headers");
    }
    let value = value
        .to_str()
        .map_err(|_| "an Authorization header whose bytes are not visible ASCII")?;
    let (scheme, token) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("an Authorization header of another scheme than Bearer");
    }
    match token.trim_matches([' ', '\t']) {
        "" => Err("an Authorization header saying Bearer with no token"),
        token => Ok(Some(token)),
    }
}

/// What a refused bearer credential was, for the access log: a custody token by its id
/// (never its secret), so that a leaked, revoked or expired token being tried can be told
/// apart; anything else by its kind alone (what it claims is not shown: it did not check
/// out, and it is the sender's text). Only an id of the form custody issues (`tok` and 16
/// lowercase hex digits) is named, so a secret sent where the id goes is never written.
fn presented(token: &str) -> String {
    let Some(rest) = token.strip_prefix("cst_") else {
        return "a bearer credential that is not a custody token (refused)".into();
    };
    match rest.split_once('_') {
        Some((id, _)) if custody_app::is_token_id(id) => format!("token {id} (refused)"),
        _ => "a malformed custody token (refused)".into(),
    }
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

/// A request's path as the access log keeps it: without anything that looks like a
/// secret, since a credential pasted where an id goes (a leaked token given to `token
/// revoke`, an ID token in a link) must not be written where auditors read. Each segment
/// is judged as the router reads it (percent-decoded, any case):
/// - from a JWT's `eyJ` (the encoding of `{"` every JWT header starts with) to the
///   segment's end is `[a JWT, withheld]`;
/// - a run of 32 or more letters and digits is `…`, unless it is a SHA-256 or SHA-512 in
///   lowercase hex that makes up the whole segment (a key id) or follows `sha256:` or
///   `sha512:` (a digest): a custody token's secret (64 hex digits after its id) never is.
///
/// A segment with nothing withheld is written as it came; one with something withheld is
/// written decoded, with what was withheld marked.
fn logged_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (n, segment) in path.split('/').enumerate() {
        if n > 0 {
            out.push('/');
        }
        match withheld(segment) {
            Some(kept) => out.push_str(&kept),
            None => out.push_str(segment),
        }
    }
    out
}

/// `segment` with its secrets withheld (see [`logged_path`]), or `None` if it holds none.
fn withheld(segment: &str) -> Option<String> {
    // Most segments are short words and ids: too short to hold a secret (decoding only
    // shortens them).
    if segment.len() < 32 {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
    let (text, jwt) = match decoded.find("eyJ") {
        Some(at) => (&decoded[..at], true),
        None => (&decoded[..], false),
    };
    let mut kept = String::with_capacity(text.len());
    let mut changed = jwt;
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphanumeric()) {
        let run_len = rest[start..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len() - start);
        let (before, run) = (&rest[..start], &rest[start..start + run_len]);
        kept.push_str(before);
        if run.len() >= 32
            && !is_named_hash(&kept, run, start + run_len == rest.len() && kept.is_empty())
        {
            kept.push('…');
            changed = true;
        } else {
            kept.push_str(run);
        }
        rest = &rest[start + run_len..];
    }
    kept.push_str(rest);
    if jwt {
        kept.push_str("[a JWT, withheld]");
    }
    changed.then(|| {
        kept.chars()
            .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
            .collect()
    })
}

/// Whether `run` (after `before` in its segment) is a hash custody names in paths: 64 or
/// 128 lowercase hex digits that are the whole segment or follow `sha256:` / `sha512:`.
fn is_named_hash(before: &str, run: &str, whole: bool) -> bool {
    matches!(run.len(), 64 | 128)
        && run.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && (whole || before.ends_with("sha256:") || before.ends_with("sha512:"))
}

/// Whether a request carries a credential (a bearer token or a dashboard session): one
/// without is anonymous, and its client's anonymous requests in flight are bounded.
fn carries_credential(request: &Request) -> bool {
    request.headers().contains_key(header::AUTHORIZATION)
        || request
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains(crate::dashboard::SESSION_COOKIE))
}

/// One of the anonymous requests in flight `peer`'s address may have (marked on
/// `request`, so that it is taken once); `None` when it has all it may.
fn anonymous_slot(state: &ServerState, peer: SocketAddr, request: &mut Request) -> Option<Slot> {
    let slot = state
        .access
        .enter(peer.ip(), state.settings.anonymous_in_flight_per_client)?;
    request.extensions_mut().insert(CountedAsAnonymous);
    Some(slot)
}

/// The answer to one anonymous request too many from an address.
fn too_many_anonymous() -> Response {
    let mut r = refuse(
        StatusCode::TOO_MANY_REQUESTS,
        None,
        "too many requests without credentials from this address at once; retry in a moment".into(),
        "refused: too many anonymous requests in flight".into(),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    r
}

/// Marks a request counted among its address's anonymous requests in flight.
#[derive(Clone, Copy)]
struct CountedAsAnonymous;

/// The layer of the routes anyone may call (the ledger's public face, sign-in): a request
/// there is anonymous whatever credential it shows, since none is checked. Without this, a
/// made-up cookie or bearer header would exempt a slow request from its address's bound
/// on anonymous requests in flight.
pub(crate) async fn public(
    State(state): State<Arc<ServerState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let slot = match peer {
        Some(peer) if request.extensions().get::<CountedAsAnonymous>().is_none() => {
            match anonymous_slot(&state, peer, &mut request) {
                Some(slot) => Some(slot),
                None => return too_many_anonymous(),
            }
        }
        _ => None,
    };
    let response = next.run(request).await;
    drop(slot);
    response
}

/// Records every request after it is answered, as the access log's guarantee says (see
/// [`AccessLog`](crate::access_log::AccessLog)); bounds each client's anonymous requests in flight.
pub(crate) async fn record(
    State(state): State<Arc<ServerState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = logged_path(request.uri().path());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let remote = peer.map(|p| p.to_string()).unwrap_or_default();
    let credentialed = carries_credential(&request);
    let note = credentialed.then(|| {
        let note = CallerNote::default();
        request.extensions_mut().insert(note.clone());
        note
    });
    let slot = match (credentialed, peer) {
        (false, Some(peer)) => match anonymous_slot(&state, peer, &mut request) {
            Some(slot) => Some(slot),
            None => {
                let r = too_many_anonymous();
                return finish(&state, method, path, remote, Some(peer), None, r).await;
            }
        },
        _ => None,
    };
    // A client that hangs up drops this future. A request that can change something, or
    // be refused for the credential it showed, must still end in its access-log row (the
    // change itself may already be on its way to the ledger), so it runs to the end
    // ([`RunToEnd`]). Anonymous reads stay on the cheap path. (The body's bounds are
    // inside: their 408 and 413 come back here like any answer.)
    let mutating = !matches!(method, axum::http::Method::GET | axum::http::Method::HEAD);
    let handled = async move {
        let response = next.run(request).await;
        drop(slot);
        finish(&state, method, path, remote, peer, note, response).await
    };
    if !(credentialed || mutating) {
        return handled.await;
    }
    RunToEnd(Some(Box::pin(handled))).await
}

/// A request's handling that runs to its end whoever stops waiting for it: dropped before
/// it is done (the client hung up), the rest of it is handed to a task of its own. It runs
/// in the connection's task until then, so the common case costs no task and no wake-up
/// across threads. A handling that panics is answered 500 like any failure (the cause goes
/// to the server's log).
struct RunToEnd<F: Future<Output = Response> + Send + 'static>(Option<Pin<Box<F>>>);

impl<F: Future<Output = Response> + Send + 'static> Future for RunToEnd<F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let this = self.get_mut();
        // Polled again after it answered: never ready again, as a fused future.
        let Some(handling) = this.0.as_mut() else {
            return Poll::Pending;
        };
        let answer = match std::panic::catch_unwind(AssertUnwindSafe(|| handling.as_mut().poll(cx)))
        {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(response)) => response,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                crate::error::ApiError::from(AppError::Integrity(format!(
                    "handling a request panicked: {why}"
                )))
                .into_response()
            }
        };
        this.0 = None;
        Poll::Ready(answer)
    }
}

impl<F: Future<Output = Response> + Send + 'static> Drop for RunToEnd<F> {
    fn drop(&mut self) {
        // Not done: the client stopped waiting. (Outside a runtime, as when one shuts
        // down, there is nothing left to run it on.)
        if let (Some(rest), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(rest);
        }
    }
}

/// Records an answered request, then hands its answer back: after the entry is written
/// when the request changed something or was refused (see [`AccessLog`](crate::access_log::AccessLog)).
async fn finish(
    state: &Arc<ServerState>,
    method: axum::http::Method,
    path: String,
    remote: String,
    peer: Option<SocketAddr>,
    note: Option<CallerNote>,
    response: Response,
) -> Response {
    let mut caller = response
        .extensions()
        .get::<Caller>()
        .cloned()
        .or_else(|| note.and_then(|n| n.0.get().cloned()))
        .unwrap_or_else(|| Caller::of(None, "public".into()));
    let refused = caller.outcome.starts_with("denied:")
        || caller.outcome.starts_with("unauthenticated:")
        || caller.outcome.starts_with("refused:");
    // Refused access (not a refused promotion or deploy, which are answers, not denials).
    if refused {
        let who = if caller.principal.is_empty() {
            peer.map(|p| p.ip().to_string()).unwrap_or_default()
        } else {
            caller.principal.clone()
        };
        if let Some(alert) = state.alerting.denied(&who, state.now()) {
            let state = state.clone();
            tokio::spawn(async move { crate::alerting::raise(&state, &alert).await });
        }
    }
    // A route's guard let the credential through and the use case then refused (an approval
    // that may not count, a role scoped elsewhere): the record says denied, not allowed.
    if response
        .extensions()
        .get::<crate::error::DeniedByUseCase>()
        .is_some()
    {
        if let Some(route) = caller.outcome.strip_prefix("allowed: ") {
            caller.outcome = format!("denied: by the use case, past the route's guard ({route})");
        }
    }
    // Anonymous requests are sampled per client address (a request with no address, as
    // in-process tests send, is recorded).
    if let (true, Some(peer)) = (caller.principal.is_empty(), peer) {
        match state.access.sample(peer.ip(), state.now().unix_seconds()) {
            None => return response,
            Some(0) => {}
            Some(skipped) => caller.outcome.push_str(&format!(
                " (after {skipped} more anonymous request(s) from this address, not recorded one by one)"
            )),
        }
    }
    let durable = refused || !matches!(method, axum::http::Method::GET | axum::http::Method::HEAD);
    let entry = AccessEntry {
        at: state.now().to_string(),
        principal: caller.principal,
        credential: caller.credential,
        method: method.to_string(),
        path,
        remote,
        status: response.status().as_u16(),
        outcome: caller.outcome,
    };
    if !durable {
        state.access.push(entry).await;
        return response;
    }
    if state.access.push_durable(entry).await {
        return response;
    }
    // The request was handled, but its record could not be written: it is not answered
    // as done (a retry with the same Idempotency-Key converges).
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"error": "custody could not record this request in its access log; it may have taken effect: retry it (with the same Idempotency-Key)"})),
    )
        .into_response()
}
