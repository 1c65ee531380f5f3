//! Sign-in and sign-out. Sign-in takes an API token and keeps it in an `HttpOnly`,
//! `SameSite=Strict` cookie (also `Secure` when a TLS proxy says the browser came over
//! HTTPS); every page authenticates it as the API does. Every form that changes something
//! carries a CSRF field derived from the session's token, checked before anything is done.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use custody_app::{Authenticated, Fault};
use maud::Markup;
use serde::Deserialize;

use super::layout::{error_page, login_page};
use crate::ServerState;
use crate::access::mark_caller;

const COOKIE: &str = "custody_token";

/// The session's token, from its cookie.
fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// The CSRF field for a session: unguessable without its token, fixed for its life.
fn csrf_of(token: &str) -> String {
    custody_app::attestations::sha256(format!("custody dashboard csrf\n{token}").as_bytes())
        .to_string()
}

/// Whether a submitted CSRF field is this session's (compared in constant time).
pub(crate) fn csrf_matches(submitted: &str, expected: &str) -> bool {
    crate::access::same_bytes(submitted.as_bytes(), expected.as_bytes())
}

/// The session's viewer and CSRF field; otherwise the answer to give (the sign-in page).
pub(crate) async fn signed_in(
    s: &ServerState,
    headers: &HeaderMap,
) -> Result<(Authenticated, String), Response> {
    let Some(token) = session_token(headers) else {
        return Err(Redirect::to("/login").into_response());
    };
    match s.app.authenticate(&token, s.now()).await {
        Ok(who) => Ok((who, csrf_of(&token))),
        Err(e) if e.fault() == Fault::Denied => {
            let why = e.to_string();
            let mut r = (StatusCode::UNAUTHORIZED, login_page(Some(&why))).into_response();
            r.headers_mut().insert(header::SET_COOKIE, clear_cookie());
            mark_caller(&mut r, "", format!("unauthenticated: {why}"));
            Err(r)
        }
        Err(e) => {
            let status = crate::error::status(e.fault());
            Err(error_page(
                None,
                status,
                &crate::error::message_for(status, &e),
            ))
        }
    }
}

fn clear_cookie() -> header::HeaderValue {
    header::HeaderValue::from_static("custody_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// `GET /login`.
pub(crate) async fn login_form() -> Markup {
    login_page(None)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
}

/// `POST /login`: checks the token, then keeps it in the session cookie (`Secure` too when a
/// TLS proxy in front says the browser came over HTTPS: `X-Forwarded-Proto: https`).
pub(crate) async fn login(
    State(s): State<Arc<ServerState>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let over_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let token = f.token.trim();
    let well_formed = token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b',');
    match s.app.authenticate(token, s.now()).await {
        Ok(who) if well_formed => {
            let mut r = Redirect::to("/").into_response();
            if let Ok(v) = header::HeaderValue::from_str(&format!(
                "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
                if over_https { "; Secure" } else { "" }
            )) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            mark_caller(&mut r, &who.principal, "allowed: sign in".into());
            r
        }
        Err(e) if e.fault() != Fault::Denied => {
            let status = crate::error::status(e.fault());
            error_page(None, status, &crate::error::message_for(status, &e))
        }
        _ => {
            let why = "that token is not valid (expired, revoked or mistyped)";
            let mut r = (StatusCode::UNAUTHORIZED, login_page(Some(why))).into_response();
            mark_caller(&mut r, "", format!("unauthenticated: {why}"));
            r
        }
    }
}

/// `POST /logout`.
pub(crate) async fn logout() -> Response {
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(header::SET_COOKIE, clear_cookie());
    r
}
