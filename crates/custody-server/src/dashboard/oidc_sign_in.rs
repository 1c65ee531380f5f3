//! Signing in to the dashboard through the organisation's OIDC provider (`[dashboard.sign_in]`;
//! the protocol is `crate::oidc::sign_in`'s): `POST /login/oidc` begins, the provider sends
//! the browser back to `GET /login/oidc/callback`, which ends in the same server-side
//! session a token sign-in starts, authenticated as `Authentication::Oidc` (issuer and
//! subject), so events and the access log say how.
//!
//! - The begin form is the sign-in page's, with its CSRF field (session.rs).
//! - The browser holds the flight's id in a cookie of its own, `SameSite=Lax` (the callback
//!   is a top-level navigation from the provider's site, which a `Strict` cookie would not
//!   follow), scoped to `/login/oidc`, lasting as long as the flight; the callback clears it.
//! - The callback takes the flight before looking at anything else, so a second callback
//!   (a replay, a back button, a leaked URL) finds none; a callback from another browser
//!   finds none either. Any failure answers the sign-in page saying why, and starts no
//!   session.
//! - Success answers a page that moves on to the board by a `Refresh` header rather than a
//!   redirect: the session cookie is `SameSite=Strict`, and a browser does not send it on
//!   a redirect chain that began on another site.

use std::sync::Arc;

use crate::extract::PageForm;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use custody_app::Authenticated;
use custody_model::Authentication;
use maud::html;
use serde::Deserialize;

use super::session;
use crate::ServerState;
use crate::access::{mark_caller, same_bytes, shown};
use crate::oidc::sign_in::{FLIGHT_LIFETIME, SignIn, SignInError};

/// The cookie holding a begun sign-in's flight id.
const FLIGHT_COOKIE: &str = "custody_oidc";
/// Its path: the begin and callback routes.
const FLIGHT_PATH: &str = "/login/oidc";
/// The most of a provider's error description shown.
const MAX_DESCRIPTION: usize = 200;

#[derive(Deserialize)]
pub(crate) struct BeginForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /login/oidc`: checks the sign-in form's CSRF field, begins a flight and sends the
/// browser to the provider's authorization endpoint.
pub(crate) async fn begin(
    State(s): State<Arc<ServerState>>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    PageForm(f): PageForm<BeginForm>,
) -> Response {
    if let Some(refused) = session::refuse_forged_form(&s, &headers, &f.csrf) {
        return refused;
    }
    let Some(sign_in) = s.sign_in() else {
        return not_configured(&s, &headers);
    };
    let client = peer.map(|p| p.0.0.ip());
    match sign_in.begin(s.now().unix_seconds(), client).await {
        Ok((id, url)) => {
            let mut r = Redirect::to(&url).into_response();
            let cookie = flight_cookie(&id, FLIGHT_LIFETIME, session::over_https(&headers));
            if let Some(v) = cookie {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            mark_caller(&mut r, None, "allowed: OIDC sign-in begun".into());
            r
        }
        Err(e) => failed(&s, &headers, status_of(&e), &e.to_string()),
    }
}

/// What the provider sends back (RFC 6749 §4.1.2 and §4.1.2.1, RFC 9207's `iss`).
#[derive(Deserialize)]
pub(crate) struct Callback {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    iss: Option<String>,
}

/// `GET /login/oidc/callback`: the provider's answer, checked against the flight this
/// browser began; a session on success.
pub(crate) async fn callback(
    State(s): State<Arc<ServerState>>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let Some(sign_in) = s.sign_in() else {
        return not_configured(&s, &headers);
    };
    let mut r = match complete(&s, sign_in, &headers, q).await {
        Ok((who, vouched_until)) => {
            let mut r = signed_in_page(&who);
            session::start(&s, &headers, &who, Some(vouched_until), &mut r);
            mark_caller(&mut r, shown(&who), "allowed: sign in (OIDC)".into());
            r
        }
        Err((status, why)) => failed(&s, &headers, status, &why),
    };
    if let Some(v) = flight_cookie("", 0, false) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// The callback's checks, in order; who signed in and until when the provider vouches
/// for it (its ID token's `exp`), or the status and reason to show.
async fn complete(
    s: &ServerState,
    sign_in: &SignIn,
    headers: &HeaderMap,
    q: Callback,
) -> Result<(Authenticated, i64), (StatusCode, String)> {
    let now = s.now();
    // Taken first: whatever follows, this is the flight's one callback.
    let flight = session::cookie(headers, FLIGHT_COOKIE)
        .and_then(|id| sign_in.take(&id, now.unix_seconds()))
        .ok_or_else(|| {
            (
                StatusCode::BAD_REQUEST,
                format!(
                    "this sign-in is not one this browser has in progress here: it was already completed, it expired (after {} minutes), or it began in another browser. Sign in again",
                    FLIGHT_LIFETIME / 60
                ),
            )
        })?;
    let state = q.state.unwrap_or_default();
    if !same_bytes(state.as_bytes(), flight.state.as_bytes()) {
        return Err((
            StatusCode::BAD_REQUEST,
            "the provider's answer does not belong to the sign-in this browser began (its state differs): sign in again".into(),
        ));
    }
    // RFC 9207: an answer naming another issuer came from another provider (a mix-up).
    if let Some(iss) = q.iss.filter(|iss| iss != sign_in.issuer()) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "the answer comes from {iss:?}, not from {}",
                sign_in.issuer()
            ),
        ));
    }
    if let Some(error) = q.error {
        let about: String = q
            .error_description
            .unwrap_or_default()
            .chars()
            .take(MAX_DESCRIPTION)
            .collect();
        return Err((
            StatusCode::UNAUTHORIZED,
            format!(
                "{} did not sign you in: {error}{}",
                sign_in.name(),
                if about.is_empty() {
                    String::new()
                } else {
                    format!(" ({about})")
                }
            ),
        ));
    }
    let code = q.code.filter(|c| !c.is_empty()).ok_or((
        StatusCode::BAD_REQUEST,
        "the provider's answer carries no authorization code".to_owned(),
    ))?;
    let id = sign_in
        .finish(&flight, &code, now.unix_seconds())
        .await
        .map_err(|e| (status_of(&e), e.to_string()))?;
    let auth = Authentication::Oidc {
        issuer: id.issuer,
        subject: id.subject,
    };
    let who = s
        .app
        .authenticated(&id.principal, auth, now)
        .await
        .map_err(|e| {
            let status = crate::error::status(e.fault());
            (status, crate::error::message_for(status, &e))
        })?;
    Ok((who, id.expires_at))
}

fn status_of(e: &SignInError) -> StatusCode {
    match e {
        SignInError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        SignInError::Refused(_) => StatusCode::UNAUTHORIZED,
    }
}

/// The sign-in page again, saying why this sign-in failed (and logged: a 5xx's cause too).
fn failed(s: &ServerState, headers: &HeaderMap, status: StatusCode, why: &str) -> Response {
    if status.is_server_error() {
        tracing::warn!(reason = %why, "an OIDC sign-in failed");
    }
    let mut r = session::fresh_login_form(s, headers, status, Some(why));
    mark_caller(
        &mut r,
        None,
        format!("unauthenticated: OIDC sign-in: {why}"),
    );
    r
}

fn not_configured(s: &ServerState, headers: &HeaderMap) -> Response {
    let why = "signing in through an OIDC provider is not configured here ([dashboard.sign_in] in config.toml): sign in with an API token";
    failed(s, headers, StatusCode::NOT_FOUND, why)
}

/// The flight's cookie (`Max-Age=0` with an empty id: cleared).
fn flight_cookie(id: &str, max_age: i64, https: bool) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{FLIGHT_COOKIE}={id}; Path={FLIGHT_PATH}; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if https { "; Secure" } else { "" }
    ))
    .ok()
}

/// "Signed in", moving on to the board at once (see the module's note on `Refresh`).
fn signed_in_page(who: &Authenticated) -> Response {
    let body = html! {
        h1 { "Signed in" }
        p #signed-in { "Signed in as " strong { (who.principal) } "." }
        p { a #continue href="/" { "Continue to the pipeline" } }
    };
    let mut r = super::layout::page("Signed in", None, body).into_response();
    r.headers_mut()
        .insert(header::REFRESH, HeaderValue::from_static("0; url=/"));
    r
}
