//! Dashboard sessions: sign-in, sign-out, the session cookie and the CSRF fields.
//!
//! A session is a server-side record: who (the principal), how they authenticated (an API
//! token, or the organisation's OIDC provider: oidc_sign_in.rs makes the same record) and
//! until when. The
//! cookie holds only a random session id (`HttpOnly`, `SameSite=Strict`, `Secure` behind a
//! TLS proxy), never a credential; the server keeps the SHA-256 of the id, so its memory
//! holds nothing a cookie could be rebuilt from. Signing out ends the record at once; so
//! does its expiry (`[server] session_lifetime`) and the revocation or expiry of the token
//! it signed in with, checked on every page. Sessions live in this process's memory: a
//! restart signs everyone out, and servers sharing one database do not share sessions
//! (put a sticky load balancer in front).
//!
//! Every form carries a CSRF field, checked before anything happens: the session's,
//! derived from its id, on every page of a session (sign-out included); and the sign-in
//! form's, derived from a random value the sign-in page sets in a short-lived cookie of
//! its own, so that another site cannot sign a browser in under its own token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::extract::PageForm;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use custody_app::{Authenticated, Fault};
use custody_model::{Authentication, Timestamp};
use serde::Deserialize;

use super::layout::{error_page, login_page};
use crate::ServerState;
use crate::access::{mark_caller, shown};

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "custody_session";
/// The sign-in form's own cookie (its CSRF value).
pub(super) const LOGIN_COOKIE: &str = "custody_login";
/// How long a sign-in form stays good, in seconds.
const LOGIN_FORM_LIFETIME: i64 = 900;
/// Sessions kept at most (the soonest to expire go first when full).
const MAX_SESSIONS: usize = 100_000;

/// One signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    /// Who.
    pub(crate) principal: String,
    /// How they authenticated when they signed in.
    pub(crate) auth: Authentication,
    /// When it ends.
    pub(crate) expires_at: Timestamp,
}

/// The sessions of this server, by the SHA-256 of their id.
#[derive(Default)]
pub(crate) struct Sessions {
    by_id: Mutex<HashMap<[u8; 32], Session>>,
}

fn id_hash(id: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(id.as_bytes()).into()
}

/// 32 random bytes, hex: a session id or a sign-in form's CSRF value.
fn random_hex() -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a session; its id (for the cookie).
    pub(crate) fn start(&self, session: Session, now: Timestamp) -> String {
        let id = random_hex();
        let mut all = self.lock();
        crate::expiring::make_room(&mut all, MAX_SESSIONS, now, |s| s.expires_at);
        all.insert(id_hash(&id), session);
        id
    }

    /// The session `id` names, unless it ended or expired (an expired one is removed).
    pub(crate) fn get(&self, id: &str, now: Timestamp) -> Option<Session> {
        let key = id_hash(id);
        let mut all = self.lock();
        match all.get(&key) {
            Some(s) if s.expires_at > now => Some(s.clone()),
            Some(_) => {
                all.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session `id` names.
    pub(crate) fn end(&self, id: &str) {
        self.lock().remove(&id_hash(id));
    }
}

/// A cookie's value, by name.
pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The CSRF field of the session (or sign-in form) `secret`: unguessable without it, fixed
/// for its life.
pub(super) fn csrf_of(purpose: &str, secret: &str) -> String {
    custody_app::attestations::sha256(
        format!("custody dashboard {purpose} csrf\n{secret}").as_bytes(),
    )
    .to_string()
}

/// Whether a submitted CSRF field is the expected one (compared in constant time).
pub(crate) fn csrf_matches(submitted: &str, expected: &str) -> bool {
    crate::access::same_bytes(submitted.as_bytes(), expected.as_bytes())
}

/// A `Set-Cookie` value: `name=value`, HttpOnly, SameSite=Strict, `Secure` over HTTPS.
pub(super) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
    https: bool,
) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if https { "; Secure" } else { "" }
    ))
    .ok()
}

/// Whether a TLS proxy in front says the browser came over HTTPS.
pub(super) fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// The session's viewer and CSRF field; otherwise the answer to give (the sign-in page).
pub(crate) async fn signed_in(
    s: &ServerState,
    headers: &HeaderMap,
) -> Result<(Authenticated, String), Response> {
    let now = s.now();
    let Some((id, session)) =
        cookie(headers, SESSION_COOKIE).and_then(|id| s.sessions.get(&id, now).map(|x| (id, x)))
    else {
        let mut r = Redirect::to("/login").into_response();
        if cookie(headers, SESSION_COOKIE).is_some() {
            clear(&mut r, SESSION_COOKIE, "/");
        }
        return Err(r);
    };
    // The credential it signed in with must still stand (not revoked, not expired).
    match s
        .app
        .reauthenticate(&session.principal, &session.auth, now)
        .await
    {
        Ok(who) => Ok((who, csrf_of("session", &id))),
        Err(e) if e.fault() == Fault::Denied => {
            s.sessions.end(&id);
            let why = e.to_string();
            let mut r =
                (StatusCode::UNAUTHORIZED, login_page(Some(&why), None, None)).into_response();
            clear(&mut r, SESSION_COOKIE, "/");
            mark_caller(&mut r, None, format!("unauthenticated: {why}"));
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

pub(super) fn clear(r: &mut Response, name: &str, path: &str) {
    if let Some(v) = set_cookie(name, "", path, 0, false) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// `GET /login`: the sign-in form, with a fresh CSRF value in its own cookie.
pub(crate) async fn login_form(State(s): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    fresh_login_form(&s, &headers, StatusCode::OK, None)
}

/// The sign-in page with a fresh form (and `error`, if the last attempt failed), offering
/// the OIDC provider when one is configured: then the page's policy lets its form lead
/// there (a browser holds a form's redirect to `form-action` too).
pub(super) fn fresh_login_form(
    s: &ServerState,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let nonce = random_hex();
    let csrf = csrf_of("sign-in", &nonce);
    let provider = s.sign_in().map(|p| p.name());
    let mut r = (status, login_page(error, Some(&csrf), provider)).into_response();
    if let Some(sign_in) = s.sign_in() {
        let origins = sign_in.origins().join(" ");
        if let Ok(v) = HeaderValue::from_str(&super::layout::policy_allowing_forms_to(&origins)) {
            r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    if let Some(v) = set_cookie(
        LOGIN_COOKIE,
        &nonce,
        "/login",
        LOGIN_FORM_LIFETIME,
        over_https(headers),
    ) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /login`: checks the form's CSRF field against its cookie, then the token; starts a
/// session.
pub(crate) async fn login(
    State(s): State<Arc<ServerState>>,
    headers: HeaderMap,
    PageForm(f): PageForm<LoginForm>,
) -> Response {
    if let Some(refused) = refuse_forged_form(&s, &headers, &f.csrf) {
        return refused;
    }
    let token = f.token.trim();
    match crate::access::authenticate(&s, token).await {
        Ok(who) => {
            let mut r = Redirect::to("/").into_response();
            start(&s, &headers, &who, None, &mut r);
            mark_caller(&mut r, shown(&who), "allowed: sign in".into());
            r
        }
        Err(e) if e.fault() != Fault::Denied => {
            let status = crate::error::status(e.fault());
            error_page(None, status, &crate::error::message_for(status, &e))
        }
        Err(_) => {
            let why = "that token is not valid (expired, revoked or mistyped)";
            let mut r = fresh_login_form(&s, &headers, StatusCode::UNAUTHORIZED, Some(why));
            mark_caller(&mut r, None, format!("unauthenticated: {why}"));
            r
        }
    }
}

/// The answer to a sign-in form (of either kind) whose CSRF field is not its cookie's: the
/// form again, saying why; `None` when it is.
pub(super) fn refuse_forged_form(
    s: &ServerState,
    headers: &HeaderMap,
    csrf: &str,
) -> Option<Response> {
    let form_ok = cookie(headers, LOGIN_COOKIE)
        .is_some_and(|nonce| csrf_matches(csrf, &csrf_of("sign-in", &nonce)));
    if form_ok {
        return None;
    }
    let why = "the sign-in form expired or did not come from this site: sign in again";
    let mut r = fresh_login_form(s, headers, StatusCode::FORBIDDEN, Some(why));
    mark_caller(&mut r, None, "denied: sign-in CSRF check failed".into());
    Some(r)
}

/// Starts a session for `who` (however they authenticated) and sets its cookie on `r`,
/// clearing the sign-in form's (`Secure` too when a TLS proxy in front says the browser
/// came over HTTPS: `X-Forwarded-Proto: https`). It lasts `[server] session_lifetime`, and
/// no longer than `vouched_until` (Unix seconds) when the credential it began with says
/// how long it holds: an OIDC sign-in lasts as long as the provider's ID token, so that
/// someone disabled at the provider is out once it lapses, and signs in there again.
pub(super) fn start(
    s: &ServerState,
    headers: &HeaderMap,
    who: &Authenticated,
    vouched_until: Option<i64>,
    r: &mut Response,
) {
    let now = s.now();
    let lifetime = match vouched_until {
        Some(until) => s
            .settings
            .session_lifetime
            .min(until.saturating_sub(now.unix_seconds()))
            .max(0),
        None => s.settings.session_lifetime,
    };
    let expires_at =
        Timestamp::from_unix_seconds(now.unix_seconds().saturating_add(lifetime)).unwrap_or(now);
    let session = Session {
        principal: who.principal.clone(),
        auth: who.auth.clone(),
        expires_at,
    };
    let id = s.sessions.start(session, now);
    let https = over_https(headers);
    if let Some(v) = set_cookie(SESSION_COOKIE, &id, "/", lifetime, https) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    clear(r, LOGIN_COOKIE, "/login");
}

#[derive(Deserialize)]
pub(crate) struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: ends the session (its record goes: the cookie stops working at once,
/// wherever it was copied), if the form's CSRF field is the session's.
pub(crate) async fn logout(
    State(s): State<Arc<ServerState>>,
    headers: HeaderMap,
    PageForm(f): PageForm<LogoutForm>,
) -> Response {
    let Some(id) = cookie(&headers, SESSION_COOKIE) else {
        return Redirect::to("/login").into_response();
    };
    let who = s.sessions.get(&id, s.now());
    if !csrf_matches(&f.csrf, &csrf_of("session", &id)) {
        let mut r = error_page(
            None,
            StatusCode::FORBIDDEN,
            "the sign-out form's CSRF field is missing or wrong: use the Sign out button",
        );
        mark_caller(
            &mut r,
            who.as_ref().map(|w| (w.principal.as_str(), &w.auth)),
            "denied: CSRF check failed".into(),
        );
        return r;
    }
    s.sessions.end(&id);
    let mut r = Redirect::to("/login").into_response();
    clear(&mut r, SESSION_COOKIE, "/");
    if let Some(w) = &who {
        mark_caller(
            &mut r,
            Some((&w.principal, &w.auth)),
            "allowed: sign out".into(),
        );
    }
    r
}
