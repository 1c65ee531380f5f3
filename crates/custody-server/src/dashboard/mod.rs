//! The dashboard: server-rendered HTML (maud) over the same use cases as the API, with no
//! JavaScript build step and no script at all. One file per page group:
//! - `session.rs`: sign-in and sign-out, the session cookie, the CSRF field;
//! - `oidc_sign_in.rs`: sign-in through the organisation's OIDC provider (PKCE);
//! - `layout.rs`: the page frame, error and sign-in pages;
//! - `chart.rs`: the bar chart (SVG with axes, gridlines and values);
//! - `board.rs`: the pipeline board;
//! - `promotion.rs`: a promotion's whole story and the review form;
//! - `history.rs`: history search and its CSV/JSON exports;
//! - `audit.rs`: alerts, artifact lineage, the access review, the ledger, charts;
//! - `keys.rs`: the keys page, and every key shown by name.
//!
//! Every page needs a signed-in [`Viewer`] holding the page's permission, checked by the
//! extractor before the handler runs (the sign-in page, or a 403 saying what is missing,
//! otherwise); [`PAGES`] lists every route with the permission it needs, and the
//! route-walking tests hold the dashboard to it. Use cases' errors become pages through
//! the API's one mapping of faults to statuses.

mod audit;
mod board;
mod chart;
mod governance;
mod history;
mod keys;
mod layout;
mod oidc_sign_in;
mod promotion;
mod session;

use std::marker::PhantomData;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use custody_app::{AppError, Authenticated, Permission};
use custody_model::Timestamp;
use maud::{Markup, html};

use crate::ServerState;
use crate::access::{mark_caller, shown};

pub(crate) use session::{SESSION_COOKIE, Sessions};

/// A dashboard route: its method, path and the permission its pages need (`None`: open to
/// anyone, like the sign-in page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRoute {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path, with `{…}` for a segment.
    pub path: &'static str,
    /// What a viewer must hold.
    pub permission: Option<Permission>,
}

const fn page(method: &'static str, path: &'static str, p: Option<Permission>) -> PageRoute {
    PageRoute {
        method,
        path,
        permission: p,
    }
}

/// How far back the navigation counts alerts (a week).
pub(crate) const ALERTS_COUNTED_SECONDS: i64 = 7 * 86_400;

/// Every dashboard route and what it needs.
pub const PAGES: &[PageRoute] = &[
    page("GET", "/", Some(Permission::Read)),
    page("GET", "/login", None),
    page("POST", "/login", None),
    page("POST", "/login/oidc", None),
    page("GET", "/login/oidc/callback", None),
    page("POST", "/logout", None),
    page("GET", "/promotions/{id}", Some(Permission::Read)),
    page("POST", "/promotions/{id}/review", Some(Permission::Review)),
    page("GET", "/history", Some(Permission::Read)),
    page("GET", "/history.csv", Some(Permission::Read)),
    page("GET", "/history.json", Some(Permission::Read)),
    page("GET", "/alerts", Some(Permission::Read)),
    page("GET", "/artifacts/{digest}", Some(Permission::Read)),
    page("GET", "/reports/{digest}", Some(Permission::Read)),
    page("GET", "/keys", Some(Permission::Read)),
    page("GET", "/keys/{key}", Some(Permission::Read)),
    page("GET", "/policy", Some(Permission::Read)),
    page("GET", "/access", Some(Permission::Audit)),
    page("GET", "/ledger", Some(Permission::Read)),
    page("GET", "/charts", Some(Permission::Read)),
];

/// A path and what answers it.
type Served = (&'static str, MethodRouter<Arc<ServerState>>);

/// The sign-in routes: open to anyone, whatever credential is shown.
fn sign_in_routes() -> [Served; 3] {
    [
        ("/login", get(session::login_form).post(session::login)),
        ("/login/oidc", post(oidc_sign_in::begin)),
        ("/login/oidc/callback", get(oidc_sign_in::callback)),
    ]
}

/// Every other route: each page's extractor checks its permission (see [`PAGES`]).
fn page_routes() -> [Served; 16] {
    [
        ("/", get(board::board)),
        ("/logout", post(session::logout)),
        ("/promotions/{id}", get(promotion::promotion)),
        ("/promotions/{id}/review", post(promotion::review)),
        ("/history", get(history::history)),
        ("/history.csv", get(history::export_csv)),
        ("/history.json", get(history::export_json)),
        ("/alerts", get(audit::alerts)),
        ("/artifacts/{digest}", get(audit::lineage)),
        ("/reports/{digest}", get(audit::report)),
        ("/keys", get(keys::keys)),
        ("/keys/{key}", get(keys::key)),
        ("/policy", get(governance::policy)),
        ("/access", get(audit::access)),
        ("/ledger", get(audit::ledger)),
        ("/charts", get(audit::charts)),
    ]
}

/// The dashboard's routes. Invariant: every route comes from the two tables above, never
/// chained here beside them, and [`PAGES`] lists every path they serve (a unit test
/// compares the two), so the route-walking tests reach every page.
pub(crate) fn routes(state: &Arc<ServerState>) -> Router<Arc<ServerState>> {
    let serve = |routes: &mut dyn Iterator<Item = Served>| {
        routes.fold(Router::new(), |router, (path, answer)| {
            router.route(path, answer)
        })
    };
    let sign_in = serve(&mut sign_in_routes().into_iter()).route_layer(
        axum::middleware::from_fn_with_state(state.clone(), crate::access::public),
    );
    serve(&mut page_routes().into_iter())
        .merge(sign_in)
        .layer(axum::middleware::map_response(layout::secure_headers))
}

/// The permission a page needs, as a type (so the extractor knows it before the handler).
pub(crate) trait Need: Send + Sync + 'static {
    /// The permission.
    const PERMISSION: Permission;
    /// Whether a script may fetch it with `Authorization: Bearer` instead of a session
    /// (the exports: a GET that changes nothing, so no CSRF to guard against).
    const BEARER: bool = false;
}

/// Pages anyone who may read the history may see.
pub(crate) struct ToRead;
impl Need for ToRead {
    const PERMISSION: Permission = Permission::Read;
}

/// The history exports (CSV, JSON): readers, signed in or with a bearer token.
pub(crate) struct ToExport;
impl Need for ToExport {
    const PERMISSION: Permission = Permission::Read;
    const BEARER: bool = true;
}

/// The access review (auditors).
pub(crate) struct ToAudit;
impl Need for ToAudit {
    const PERMISSION: Permission = Permission::Audit;
}

/// The review form (approvers).
pub(crate) struct ToReview;
impl Need for ToReview {
    const PERMISSION: Permission = Permission::Review;
}

/// A signed-in viewer holding `N`'s permission.
pub(crate) struct Viewer<N: Need = ToRead> {
    pub(crate) who: Authenticated,
    /// This session's CSRF field (forms carry it; see session.rs).
    pub(crate) csrf: String,
    /// The time of the request, by the server's clock.
    pub(crate) now: Timestamp,
    /// Critical and warning alerts of the last [`ALERTS_COUNTED_SECONDS`], for the nav.
    pub(crate) alerts: Option<usize>,
    need: PhantomData<N>,
}

impl<N: Need> FromRequestParts<Arc<ServerState>> for Viewer<N> {
    /// The sign-in page, or a 403 page saying what is missing.
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ServerState>,
    ) -> Result<Self, Response> {
        let (who, csrf) = match crate::access::bearer(&parts.headers).ok().flatten() {
            Some(token) if N::BEARER => (bearer_viewer(state, token).await?, String::new()),
            _ => session::signed_in(state, &parts.headers).await?,
        };
        let permission = N::PERMISSION;
        if !permission.granted_to(&who.roles) {
            let why = format!(
                "{} may not {}: that needs one of the roles {} (or admin)",
                who.principal,
                permission.name(),
                permission.roles().join(", ")
            );
            let signed = layout::Signed {
                who: &who,
                csrf: &csrf,
                alerts: None,
            };
            let mut r = layout::error_page(Some(signed), axum::http::StatusCode::FORBIDDEN, &why);
            mark_caller(
                &mut r,
                shown(&who),
                format!("denied: lacks permission to {}", permission.name()),
            );
            return Err(r);
        }
        let now = state.now();
        // One state read (the recent-alerts record); a failure to read it costs the count,
        // not the page.
        let alerts = match state.app.recent_alerts().await {
            Ok(recent) => Some(
                recent
                    .iter()
                    .filter(|(a, at)| {
                        matches!(a.severity.as_str(), "critical" | "warning")
                            && now.unix_seconds() - at.unix_seconds() < ALERTS_COUNTED_SECONDS
                    })
                    .count(),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "the navigation's alert count could not be read");
                None
            }
        };
        crate::access::note_caller(
            &parts.extensions,
            shown(&who),
            format!("allowed: {}", permission.name()),
        );
        Ok(Viewer {
            who,
            csrf,
            now,
            alerts,
            need: PhantomData,
        })
    }
}

/// Who a bearer token on an export is; 401 (never a redirect to the sign-in page, which a
/// script cannot follow) when it does not check out.
async fn bearer_viewer(state: &ServerState, token: &str) -> Result<Authenticated, Response> {
    match crate::access::authenticate(state, token).await {
        Ok(who) => Ok(who),
        Err(e) => {
            let status = match e.fault() {
                custody_app::Fault::Denied => axum::http::StatusCode::UNAUTHORIZED,
                fault => crate::error::status(fault),
            };
            let message = crate::error::message_for(status, &e);
            let mut r = (status, message).into_response();
            mark_caller(&mut r, None, format!("unauthenticated: {e}"));
            Err(r)
        }
    }
}

impl<N: Need> Viewer<N> {
    /// This viewer and their session's CSRF field, for the page frame.
    pub(crate) fn signed(&self) -> layout::Signed<'_> {
        layout::Signed {
            who: &self.who,
            csrf: &self.csrf,
            alerts: self.alerts,
        }
    }

    /// A page for this viewer, recorded as a use of the page's permission.
    pub(crate) fn shown(&self, title: &str, body: Markup) -> Response {
        self.allowed(layout::page(title, Some(self.signed()), body).into_response())
    }

    /// `response`, recorded as a use of the page's permission.
    pub(crate) fn allowed(&self, mut response: Response) -> Response {
        mark_caller(
            &mut response,
            shown(&self.who),
            format!("allowed: {}", N::PERMISSION.name()),
        );
        response
    }

    /// A use case's error as a page, with the API's status for its fault.
    pub(crate) fn fail(&self, e: AppError) -> Response {
        let status = crate::error::status(e.fault());
        let message = crate::error::message_for(status, &e);
        layout::error_page(Some(self.signed()), status, &message)
    }
}

/// A time as people read it, to the second like the CLI's human output (so columns line
/// up); the recorded instant, at full precision, is in `datetime` and on hover.
pub(crate) fn when(t: Timestamp) -> Markup {
    html! { time datetime=(t) title=(t) { (t.to_second()) } }
}

/// How long ago `since` was at `now`, in the largest whole unit.
pub(crate) fn age(since: Timestamp, now: Timestamp) -> String {
    let s = now
        .unix_seconds()
        .saturating_sub(since.unix_seconds())
        .max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn pages_lists_every_path_served_and_only_signing_in_and_out_are_open() {
        let paths = |routes: &[Served]| routes.iter().map(|(p, _)| *p).collect::<BTreeSet<_>>();
        let sign_in = paths(&sign_in_routes());
        let served: BTreeSet<_> = sign_in.union(&paths(&page_routes())).copied().collect();
        let listed: BTreeSet<_> = PAGES.iter().map(|p| p.path).collect();
        assert_eq!(
            served, listed,
            "a route served but not in PAGES, or the reverse"
        );
        // Open to anyone: the sign-in routes, and signing out (which takes the session's
        // own CSRF field). Any other page without a permission would be unguarded.
        let open: BTreeSet<_> = PAGES
            .iter()
            .filter(|p| p.permission.is_none())
            .map(|p| p.path)
            .collect();
        let mut expected = sign_in;
        expected.insert("/logout");
        assert_eq!(open, expected);
    }
}
