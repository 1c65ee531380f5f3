//! The dashboard: server-rendered HTML (maud) over the same use cases as the API, no
//! JavaScript build step and no script at all.
//!
//! Sign-in takes an API token and keeps it in an `HttpOnly`, `SameSite=Strict` cookie (also
//! `Secure` when a TLS proxy says the browser came over HTTPS); every
//! page authenticates it as the API does and shows only what the principal's roles allow
//! (`read` for pages; the review form only to those who may review; a confidential rationale
//! only to auditors, admins and the people involved). Every form that changes something
//! carries a CSRF field derived from the session's token, checked before anything is done.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use custody_app::{
    Actor, AppError, Authenticated, BoardColumn, HistoryFilter, Permission, PromotionView, Review,
};
use custody_model::{Digest, Risk, Timestamp, Verdict};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

use crate::ServerState;
use crate::access::mark_caller;

/// The signed-in viewer holding a permission; otherwise returns, from the handler, the
/// answer for one who is not (the sign-in page, or a 403 saying what is missing).
macro_rules! signed_in {
    ($s:expr, $headers:expr, $permission:expr) => {
        match viewer($s, $headers, $permission).await {
            Ok(v) => v,
            Err(answer) => return answer,
        }
    };
}

/// The value of a use case's result; otherwise returns, from the handler, the error page.
macro_rules! or_fail {
    ($v:expr, $result:expr) => {
        match $result {
            Ok(value) => value,
            Err(e) => return failure(&$v.who, e),
        }
    };
}

/// A use case's error as a page: not found (404), refused (403) or failed (500).
fn failure(who: &Authenticated, e: AppError) -> Response {
    let status = match &e {
        AppError::Invalid(_) => StatusCode::NOT_FOUND,
        AppError::Denied(_) => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = match e {
        AppError::Invalid(m) | AppError::Denied(m) => m,
        other => other.to_string(),
    };
    error_page(Some(who), status, &message)
}

const COOKIE: &str = "custody_token";

fn now() -> Timestamp {
    Timestamp::from_datetime(time::OffsetDateTime::now_utc())
}

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

/// A signed-in viewer.
struct Viewer {
    who: Authenticated,
    csrf: String,
}

/// Authenticates the session and checks `permission`; otherwise the answer to give
/// (the sign-in page, or a 403 page saying what is missing).
async fn viewer(
    s: &ServerState,
    headers: &HeaderMap,
    permission: Permission,
) -> Result<Viewer, Response> {
    let Some(token) = session_token(headers) else {
        return Err(Redirect::to("/login").into_response());
    };
    let who = match s.app.authenticate(&token, now()).await {
        Ok(who) => who,
        Err(AppError::Denied(why)) => {
            let mut r = (StatusCode::UNAUTHORIZED, login_page(Some(&why))).into_response();
            r.headers_mut().insert(header::SET_COOKIE, clear_cookie());
            mark_caller(&mut r, "", format!("unauthenticated: {why}"));
            return Err(r);
        }
        Err(e) => {
            return Err(error_page(
                None,
                StatusCode::INTERNAL_SERVER_ERROR,
                &e.to_string(),
            ));
        }
    };
    if !permission.granted_to(&who.roles) {
        let why = format!(
            "{} may not {}: that needs one of the roles {:?} (or admin)",
            who.principal,
            permission.name(),
            permission.roles()
        );
        let mut r = error_page(Some(&who), StatusCode::FORBIDDEN, &why);
        mark_caller(
            &mut r,
            &who.principal,
            format!("denied: lacks permission to {}", permission.name()),
        );
        return Err(r);
    }
    Ok(Viewer {
        csrf: csrf_of(&token),
        who,
    })
}

fn clear_cookie() -> header::HeaderValue {
    header::HeaderValue::from_static("custody_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

fn page(title: &str, who: Option<&Authenticated>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · custody" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a.brand href="/" { "custody" }
                    @if let Some(who) = who {
                        nav {
                            a href="/" { "Pipeline" } " "
                            a href="/history" { "History" } " "
                            a href="/alerts" { "Alerts" } " "
                            a href="/keys" { "Keys" } " "
                            a href="/access" { "Access" } " "
                            a href="/ledger" { "Ledger" } " "
                            a href="/charts" { "Charts" }
                        }
                        span.who { (who.principal) " · " (who.roles.join(", ")) }
                        form method="post" action="/logout" { button type="submit" { "Sign out" } }
                    }
                }
                main { (body) }
            }
        }
    }
}

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{display:flex;gap:1.5rem;align-items:center;padding:.6rem 1.2rem;background:#1d2330;color:#fff}
header a{color:#fff;text-decoration:none}.brand{font-weight:700}.who{margin-left:auto;opacity:.8}
header form{margin:0}main{padding:1.2rem}
.board{display:flex;gap:1rem;align-items:flex-start}
.column{background:#fff;border:1px solid #d7dbe2;border-radius:6px;padding:.8rem;min-width:14rem;flex:1}
.column h2{margin:.1rem 0 .6rem;font-size:1.1rem}
.certified{background:#e8f5ec;border-radius:4px;padding:.4rem}.none{color:#777}
.pending{list-style:none;padding:0}.pending li{border-top:1px solid #eee;padding:.4rem 0}
.fail{color:#b3261e;font-weight:600}.pass{color:#1b7a3a}.warn{color:#a15c00}
.overridden{color:#a15c00;font-weight:600}
table{border-collapse:collapse;background:#fff;margin:.4rem 0 1.2rem}
td,th{border:1px solid #d7dbe2;padding:.3rem .5rem;text-align:left;vertical-align:top}
.error{background:#fdecea;border:1px solid #b3261e;padding:.6rem;border-radius:4px}
code{font-size:.85em;word-break:break-all}
";

fn error_page(who: Option<&Authenticated>, status: StatusCode, message: &str) -> Response {
    (
        status,
        page(
            "Not allowed",
            who,
            html! { p.error { (message) } p { a href="/" { "Back to the pipeline" } } },
        ),
    )
        .into_response()
}

fn login_page(error: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(e) = error { p.error { (e) } }
            form method="post" action="/login" {
                label for="token" { "API token " }
                input #token type="password" name="token" autocomplete="off" required;
                " "
                button #sign-in type="submit" { "Sign in" }
            }
            p { "An admin creates your token with " code { "custody token create --principal YOU" } "." }
        },
    )
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
    match s.app.authenticate(token, now()).await {
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
        Ok(_) | Err(AppError::Denied(_)) => {
            let why = "that token is not valid (expired, revoked or mistyped)";
            let mut r = (StatusCode::UNAUTHORIZED, login_page(Some(why))).into_response();
            mark_caller(&mut r, "", format!("unauthenticated: {why}"));
            r
        }
        Err(e) => error_page(None, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `POST /logout`.
pub(crate) async fn logout() -> Response {
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(header::SET_COOKIE, clear_cookie());
    r
}

fn age(since: Timestamp, now: Timestamp) -> String {
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

/// A page shown to `v`, recorded as a use of `permission`.
fn shown(v: &Viewer, title: &str, body: Markup, permission: Permission) -> Response {
    allowed(
        page(title, Some(&v.who), body).into_response(),
        &v.who,
        permission,
    )
}

fn allowed(r: Response, who: &Authenticated, permission: Permission) -> Response {
    let mut r = r;
    mark_caller(
        &mut r,
        &who.principal,
        format!("allowed: {}", permission.name()),
    );
    r
}

/// How often the board reloads itself (the HTTP `Refresh` header: live without a script).
const BOARD_REFRESH_SECONDS: u32 = 30;

/// `GET /`: the pipeline board.
pub(crate) async fn board(State(s): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    let v = signed_in!(&s, &headers, Permission::Read);
    let columns = or_fail!(v, s.app.board().await);
    let now = now();
    let body = html! {
        h1 { "Pipeline" }
        div.board {
            @for c in &columns { (column(c, now)) }
        }
        p.none { "As of " (now) "; this page refreshes every " (BOARD_REFRESH_SECONDS) " s." }
    };
    let mut r = shown(&v, "Pipeline", body, Permission::Read);
    r.headers_mut().insert(
        axum::http::header::REFRESH,
        axum::http::HeaderValue::from(BOARD_REFRESH_SECONDS),
    );
    r
}

fn column(c: &BoardColumn, now: Timestamp) -> Markup {
    html! {
        section.column data-env=(c.environment) {
            h2 { (c.environment) }
            @match &c.certified {
                Some(cert) => div.certified {
                    strong.release { (cert.release) }
                    br;
                    small {
                        @if cert.by_rollback { "rolled back to, " }
                        "certified " (age(cert.at, now)) " ago · "
                        a href={ "/promotions/" (cert.promotion) } { "promotion" }
                    }
                },
                None => p.none { "nothing certified" },
            }
            @if !c.reviews_due.is_empty() {
                h3.fail { "Break-glass, review due (" (c.reviews_due.len()) ")" }
                ul.pending.reviews-due {
                    @for (id, r) in &c.reviews_due {
                        li data-promotion=(id) {
                            a href={ "/promotions/" (id) } { (r.release) }
                            " by " (r.requested_by) ", " (age(r.at, now)) " ago"
                            br;
                            span.fail title=(r.reason) { "⚠ past " (r.overridden.join(", ")) }
                        }
                    }
                }
            }
            @if !c.pending.is_empty() {
                h3 { "Waiting (" (c.pending.len()) @if c.more_pending { "+" } ")" }
            }
            ul.pending {
                @for (id, p) in &c.pending {
                    li data-promotion=(id) {
                        a href={ "/promotions/" (id) } { (p.release) }
                        " by " (p.requested_by) ", " (age(p.requested_at, now))
                        @for (gate, status, reason) in &p.blocking {
                            br;
                            @if status == "fail" {
                                span.fail title=(reason) { "✗ " (gate) }
                            } @else {
                                span.warn title=(reason) { "○ " (gate) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /promotions/{id}`.
pub(crate) async fn promotion(
    State(s): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let v = signed_in!(&s, &headers, Permission::Read);
    render_promotion(&s, &v, &id, None, StatusCode::OK).await
}

async fn render_promotion(
    s: &ServerState,
    v: &Viewer,
    id: &str,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    let view = or_fail!(v, s.app.promotion_view(id).await);
    let inclusion = match &view.decision {
        Some((_, index)) => s.app.check_inclusion(*index).await.ok(),
        None => None,
    };
    let body = promotion_body(&view, v, inclusion.as_ref(), notice);
    let mut r = (status, page(&format!("Promotion {id}"), Some(&v.who), body)).into_response();
    if status.is_success() {
        r = allowed(r, &v.who, Permission::Read);
    }
    r
}

fn promotion_body(
    view: &PromotionView,
    v: &Viewer,
    inclusion: Option<&custody_app::InclusionCheck>,
    notice: Option<&str>,
) -> Markup {
    let p = &view.promotion;
    let privileged = v.who.roles.iter().any(|r| r == "auditor" || r == "admin");
    let review_due = p
        .break_glass
        .as_ref()
        .is_some_and(|b| b.reviewed_by.is_none())
        && p.status == custody_model::PromotionStatus::Certified;
    let may_review = Permission::Review.granted_to(&v.who.roles)
        && (p.status == custody_model::PromotionStatus::Pending || review_due);
    html! {
        h1 { (p.release) " → " (p.environment) }
        p {
            "Promotion " code { (p.id) } " requested by " (p.requested_by) " at " (p.requested_at)
            ". Status: " strong #status { (p.status) }
        }
        @if let Some(n) = notice { p.error #notice { (n) } }
        @if let Some(glass) = &p.break_glass {
            p.error #break-glass {
                strong { "Break-glass" } " by " (p.requested_by) ": " (glass.reason) ". "
                @match &glass.reviewed_by {
                    Some(a) => { "Reviewed after the fact (" code { (a) } ")." },
                    None => { "An after-the-fact review by someone else is due." },
                }
            }
        }
        @if let Some((d, index)) = &view.decision {
            h2 { "Gates" }
            table #gates {
                tr { th { "gate" } th { "status" } th { "reason" } }
                @for g in &d.decision.gates {
                    @let class = format!("{:?}", g.status).to_lowercase();
                    tr { td { (g.gate) } td class=(class) { (class) } td { (g.reason) } }
                }
            }
            p {
                "Decision " code { (d.id) } " at " (d.at) " under policy " code { (d.decision.policy_digest) }
                ", input " code { (d.decision.input_digest) } "."
            }
            h2 { "Ledger" }
            @match inclusion {
                Some(check) => p #inclusion {
                    "Entry " (index) " of " (check.size) ": "
                    @match &check.verified {
                        Ok(()) => span.pass { "inclusion proof (" (check.proof_hashes) " hashes) verified against the signed checkpoint, root " code { (check.root) } },
                        Err(e) => span.fail { "inclusion proof FAILED: " (e) },
                    }
                },
                None => p.fail { "the inclusion proof could not be read" },
            }
            h2 { "Verification summary (SLSA VSA)" }
            p {
                "Signed by custody's attestor"
                @for sig in &d.vsa.signatures {
                    " · key " code { (sig.keyid.as_deref().unwrap_or("?")) }
                }
                ", payload type " code { (d.vsa.payload_type) } "."
            }
        }
        h2 { "Reviews" }
        @if view.reviews.is_empty() { p.none { "none yet" } } @else {
            table #reviews {
                tr { th { "by" } th { "verdict" } th { "at" } th { "risk" } th { "expires" } th { "rationale" } }
                @for r in &view.reviews {
                    @let involved = r.by == v.who.principal || p.requested_by == v.who.principal;
                    tr {
                        td { (r.by) }
                        td { (format!("{:?}", r.verdict).to_lowercase()) @if r.supersedes.is_some() { " (changes an earlier review)" } }
                        td { (r.at) }
                        td { (format!("{:?}", r.risk).to_lowercase()) }
                        td { (r.expires_at) }
                        td.rationale {
                            @if r.confidential && !privileged && !involved { em { "(confidential)" } }
                            @else { (r.rationale) @if r.confidential { " " em { "(confidential)" } } }
                        }
                    }
                }
            }
        }
        @if may_review {
            h2 { @if review_due { "Review after the fact" } @else { "Review" } }
            form #review method="post" action={ "/promotions/" (p.id) "/review" } {
                input type="hidden" name="csrf" value=(v.csrf);
                p { label { "Rationale" br; textarea name="rationale" rows="3" cols="60" required {} } }
                p {
                    label { "Risk " select name="risk" { option value="low" { "low" } option value="medium" { "medium" } option value="high" { "high" } } }
                    " "
                    label { input type="checkbox" name="confidential" value="true"; " confidential" }
                }
                button #approve type="submit" name="verdict" value="approve" { "Approve" }
                " "
                button #reject type="submit" name="verdict" value="reject" { "Reject" }
            }
        }
        h2 { "Release signatures" }
        table #signatures {
            tr { th { "key id (as signed)" } th { "verifies with" } }
            @for sig in &view.signatures {
                tr {
                    td { code { (sig.keyid.as_deref().unwrap_or("(none)")) } }
                    @match &sig.verified_by {
                        Some((alg, key)) => td.pass { (alg) " key " code { (key) } },
                        None => td.fail { "no trusted release key" },
                    }
                }
            }
        }
        h2 { "Artifacts and provenance" }
        table #artifacts {
            tr { th { "artifact" } th { "builder" } th { "source" } th { "parameters" } }
            @for a in &view.artifacts {
                tr {
                    td { (a.artifact.name) br; a href={ "/artifacts/" (a.artifact.digest) } { code { (a.artifact.digest) } } }
                    @match &a.provenance {
                        Some(pv) => {
                            td { (pv.builder_id) }
                            td { (pv.source_repo) br; code { (pv.source_commit) } }
                            td { code { (pv.parameters) } }
                        },
                        None => td.fail colspan="3" { "no verified provenance" },
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ReviewForm {
    csrf: String,
    verdict: Verdict,
    rationale: String,
    risk: Risk,
    #[serde(default)]
    confidential: Option<String>,
}

/// `POST /promotions/{id}/review`: the review form; the gates decide, as over the API.
pub(crate) async fn review(
    State(s): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<ReviewForm>,
) -> Response {
    let v = signed_in!(&s, &headers, Permission::Review);
    if !crate::access::same_bytes(f.csrf.as_bytes(), v.csrf.as_bytes()) {
        let mut r = error_page(
            Some(&v.who),
            StatusCode::FORBIDDEN,
            "the form's CSRF field is missing or wrong: reload the page and submit it again",
        );
        mark_caller(&mut r, &v.who.principal, "denied: CSRF check failed".into());
        return r;
    }
    let actor = match Actor::new(v.who.principal.clone(), now()) {
        Ok(a) => a,
        Err(e) => return error_page(Some(&v.who), StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let review = Review {
        verdict: f.verdict,
        rationale: f.rationale,
        risk: f.risk,
        confidential: f.confidential.is_some(),
    };
    match s.app.review(&actor, &id, &review, None).await {
        Ok(_) => allowed(
            Redirect::to(&format!("/promotions/{id}")).into_response(),
            &v.who,
            Permission::Review,
        ),
        Err(AppError::Denied(why) | AppError::Invalid(why)) => {
            render_promotion(&s, &v, &id, Some(&why), StatusCode::FORBIDDEN).await
        }
        Err(e) => error_page(
            Some(&v.who),
            StatusCode::INTERNAL_SERVER_ERROR,
            &e.to_string(),
        ),
    }
}

/// The history search's form, as a query string (every field optional; empty is unset).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct HistoryQuery {
    #[serde(default)]
    principal: String,
    #[serde(default)]
    env: String,
    #[serde(default)]
    artifact: String,
    #[serde(default)]
    build: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    before: Option<u64>,
}

/// Entries per history page, and at most per export.
const PAGE: usize = 50;
const EXPORT: usize = 10_000;

impl HistoryQuery {
    fn filter(&self, limit: usize) -> Result<HistoryFilter, String> {
        let text = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        let time = |name: &str, s: &str| {
            text(s)
                .map(|t| t.parse::<Timestamp>().map_err(|e| format!("{name}: {e}")))
                .transpose()
        };
        Ok(HistoryFilter {
            artifact: text(&self.artifact)
                .map(|d| d.parse::<Digest>().map_err(|e| format!("artifact: {e}")))
                .transpose()?,
            build: text(&self.build),
            principal: text(&self.principal),
            environment: text(&self.env),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            before: self.before,
            limit,
        })
    }

    /// This search as a query string, with `before` replaced.
    fn query_string(&self, before: Option<u64>) -> String {
        let mut q = url_encoded(&[
            ("principal", &self.principal),
            ("env", &self.env),
            ("artifact", &self.artifact),
            ("build", &self.build),
            ("since", &self.since),
            ("until", &self.until),
        ]);
        if let Some(b) = before {
            q.push_str(&format!("&before={b}"));
        }
        q
    }
}

fn url_encoded(pairs: &[(&str, &String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        char::from(b).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `GET /history`: search by engineer, environment, artifact, build and time; newest
/// first, a page at a time, with CSV and JSON exports of the same search.
pub(crate) async fn history(
    State(s): State<Arc<ServerState>>,
    headers: HeaderMap,
    Query(q): Query<HistoryQuery>,
) -> Response {
    let v = signed_in!(&s, &headers, Permission::Read);
    let (entries, problem) = match q.filter(PAGE) {
        Ok(filter) => match s.app.history(&filter).await {
            Ok(entries) => (entries, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        },
        Err(why) => (Vec::new(), Some(why)),
    };
    let older = (entries.len() == PAGE)
        .then(|| entries.first().map(|e| e.index))
        .flatten();
    let field = |name: &str, label: &str, value: &str, hint: &str| {
        html! {
            label { (label) " " input name=(name) value=(value) placeholder=(hint) size="18"; } " "
        }
    };
    let body = html! {
        h1 { "History" }
        form #search method="get" action="/history" {
            (field("principal", "Engineer", &q.principal, "alice"))
            (field("env", "Environment", &q.env, "production"))
            (field("artifact", "Artifact", &q.artifact, "sha256:…"))
            (field("build", "Build", &q.build, "invocation id"))
            (field("since", "Since", &q.since, "2026-11-01T00:00:00Z"))
            (field("until", "Until", &q.until, "RFC 3339"))
            button #search-button type="submit" { "Search" }
        }
        p {
            "Export this search: "
            a #export-csv href={ "/history.csv?" (q.query_string(q.before)) } { "CSV" } " · "
            a #export-json href={ "/history.json?" (q.query_string(q.before)) } { "JSON" }
            " (the newest " (EXPORT) " at most)"
        }
        @if let Some(p) = &problem { p.error { (p) } }
        @if entries.is_empty() && problem.is_none() { p.none { "no events match" } }
        @else {
            table #history {
                tr { th { "ledger index" } th { "at" } th { "event" } th { "what" } }
                @for e in entries.iter().rev() {
                    @let at = e.event.get("at").and_then(|t| t.as_str()).unwrap_or("");
                    @let kind = e.event.get("type").and_then(|t| t.as_str()).unwrap_or("");
                    tr data-actor=(e.event.get("actor").and_then(|t| t.as_str()).unwrap_or(""))
                       data-environment=(e.event.get("environment").and_then(|t| t.as_str()).unwrap_or("")) {
                        td { (e.index) }
                        td { (at) }
                        td { (kind) }
                        td {
                            @match e.event.get("promotion").and_then(|p| p.as_str()) {
                                Some(p) => a href={ "/promotions/" (p) } { (custody_app::describe(&e.event)) },
                                None => (custody_app::describe(&e.event)),
                            }
                        }
                    }
                }
            }
        }
        @if let Some(before) = older {
            p { a #older href={ "/history?" (q.query_string(Some(before))) } { "Older events →" } }
        }
    };
    shown(&v, "History", body, Permission::Read)
}

/// `GET /history.csv`.
pub(crate) async fn export_csv(
    State(s): State<Arc<ServerState>>,
    headers: HeaderMap,
    Query(q): Query<HistoryQuery>,
) -> Response {
    export(&s, &headers, Export::Csv, &q).await
}

/// `GET /history.json`.
pub(crate) async fn export_json(
    State(s): State<Arc<ServerState>>,
    headers: HeaderMap,
    Query(q): Query<HistoryQuery>,
) -> Response {
    export(&s, &headers, Export::Json, &q).await
}

/// The formats history exports to.
#[derive(Clone, Copy)]
enum Export {
    Csv,
    Json,
}

/// The search's events (the newest [`EXPORT`]), oldest first, as a file.
async fn export(
    s: &ServerState,
    headers: &HeaderMap,
    format: Export,
    q: &HistoryQuery,
) -> Response {
    let v = signed_in!(s, headers, Permission::Read);
    let entries = match q.filter(EXPORT) {
        Ok(filter) => match s.app.history(&filter).await {
            Ok(entries) => entries,
            Err(e) => return error_page(Some(&v.who), StatusCode::BAD_REQUEST, &e.to_string()),
        },
        Err(why) => return error_page(Some(&v.who), StatusCode::BAD_REQUEST, &why),
    };
    let encoded = match format {
        Export::Json => serde_json::to_vec(&entries).map_err(|e| e.to_string()),
        Export::Csv => history_csv(&entries),
    };
    let body = match encoded {
        Ok(b) => b,
        Err(e) => return error_page(Some(&v.who), StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let (format, content_type) = match format {
        Export::Json => ("history.json", "application/json"),
        Export::Csv => ("history.csv", "text/csv; charset=utf-8"),
    };
    let disposition = format!("attachment; filename=\"custody-{format}\"");
    allowed(
        (
            [
                (header::CONTENT_TYPE, content_type.to_owned()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            body,
        )
            .into_response(),
        &v.who,
        Permission::Read,
    )
}

fn history_csv(entries: &[custody_app::HistoryEntry]) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let columns = [
        "index",
        "at",
        "type",
        "actor",
        "environment",
        "release",
        "promotion",
        "what",
    ];
    w.write_record(columns).map_err(|e| e.to_string())?;
    for e in entries {
        let s = |k: &str| {
            e.event
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned()
        };
        w.write_record([
            e.index.to_string(),
            s("at"),
            s("type"),
            s("actor"),
            s("environment"),
            s("release"),
            s("promotion"),
            custody_app::describe(&e.event),
        ])
        .map_err(|e| e.to_string())?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

/// `GET /alerts`: the latest alerts, and every delivery not yet made with why.
pub(crate) async fn alerts(State(s): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    let v = signed_in!(&s, &headers, Permission::Read);
    let raised = or_fail!(v, s.app.recent_alerts().await);
    let outbox = or_fail!(v, s.app.outbox().await);
    let body = html! {
        h1 { "Alerts" }
        @if raised.is_empty() { p.none { "no alerts" } } @else {
            table #alerts {
                tr { th { "at" } th { "severity" } th { "rule" } th { "what" } }
                @for (a, at) in &raised {
                    tr data-rule=(a.rule) {
                        td { (at) }
                        td class=(if a.severity == "critical" { "fail" } else { "warn" }) { (a.severity) }
                        td { (a.rule) }
                        td { (a.text) }
                    }
                }
            }
        }
        h2 { "Deliveries not yet made" }
        @if outbox.is_empty() { p.none { "every alert reached every webhook" } } @else {
            table #outbox {
                tr { th { "alert" } th { "webhook" } th { "attempts" } th { "next attempt" } th { "last error" } }
                @for d in &outbox {
                    tr {
                        td { (d.alert.text) }
                        td { (d.webhook) }
                        td { (d.attempts) }
                        td { (d.next_at) }
                        td.fail { (d.last_error.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    };
    shown(&v, "Alerts", body, Permission::Read)
}

/// `GET /artifacts/{digest}`: commit → build → artifact → releases → promotions →
/// environments, with rollbacks and drift.
pub(crate) async fn lineage(
    State(s): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(digest): Path<String>,
) -> Response {
    let v = signed_in!(&s, &headers, Permission::Read);
    let digest: Digest = match digest.parse() {
        Ok(d) => d,
        Err(e) => return error_page(Some(&v.who), StatusCode::BAD_REQUEST, &format!("{e}")),
    };
    let l = or_fail!(v, s.app.lineage(&digest).await);
    let a = &l.artifact;
    let body = html! {
        h1 { (a.name) }
        p { code { (a.digest) } " registered by " (a.registered_by) " at " (a.registered_at) }
        h2 { "Built from" }
        @match &a.provenance_facts {
            Some(p) => table #build {
                tr { th { "source" } td { (p.source_repo) " @ " code { (p.source_commit) } } }
                tr { th { "builder" } td { (p.builder_id) } }
                tr { th { "parameters" } td { code { (p.parameters) } } }
                tr { th { "provenance signed by" } td { code { (p.signing_key) } } }
            },
            None => p.fail { "no verified provenance" },
        }
        @if !a.evidence.is_empty() {
            h2 { "Evidence" }
            ul { @for e in &a.evidence { li { (e.kind) " (" (e.format) ") by " (e.by) " at " (e.at) } } }
        }
        h2 { "Released in" }
        @if l.releases.is_empty() { p.none { "no release" } } @else {
            ul #releases {
                @for e in &l.releases {
                    li { (custody_app::describe(&e.event)) " at " (e.event.get("at").and_then(|t| t.as_str()).unwrap_or("")) }
                }
            }
        }
        h2 { "Certified now in" }
        @if l.certified_in.is_empty() { p.none { "no environment" } } @else {
            ul #certified-in { @for (env, release) in &l.certified_in { li { (env) ": " (release) } } }
        }
        h2 { "Its story" }
        @if let Some(before) = l.older {
            p {
                "The newest " (custody_app::LINEAGE_EVENTS) " events; "
                a #older href={ "/history?artifact=" (a.digest) "&before=" (before) } { "older ones in history →" }
            }
        }
        table #lineage {
            tr { th { "ledger index" } th { "at" } th { "event" } th { "what" } }
            @for e in &l.events {
                @let kind = e.event.get("type").and_then(|t| t.as_str()).unwrap_or("");
                tr data-type=(kind) {
                    td { (e.index) }
                    td { (e.event.get("at").and_then(|t| t.as_str()).unwrap_or("")) }
                    td { (kind) }
                    td {
                        @match e.event.get("promotion").and_then(|p| p.as_str()) {
                            Some(p) => a href={ "/promotions/" (p) } { (custody_app::describe(&e.event)) },
                            None => (custody_app::describe(&e.event)),
                        }
                    }
                }
            }
        }
    };
    shown(&v, &a.name, body, Permission::Read)
}

/// Bars per day for each series (name, colour, one value per day), drawn to a common
/// scale; each bar carries its value (`data-value`, with `decimals` decimals) for tests
/// and a tooltip.
fn bar_chart(
    id: &str,
    label: &str,
    days: &[String],
    series: &[(&str, &str, Vec<f64>)],
    unit: &str,
    decimals: usize,
) -> Markup {
    let peak = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let (bar, gap, height) = (10.0, 14.0, 160.0);
    // Wide enough for the day's label under it.
    let group = (bar * series.len() as f64 + gap).max(44.0);
    let width = group * days.len().max(1) as f64 + 40.0;
    html! {
        p {
            @for (name, color, _) in series {
                span style={ "color:" (color) } { "■ " } (name) "   "
            }
        }
        svg id=(id) xmlns="http://www.w3.org/2000/svg" width=(width) height=(height + 40.0)
            role="img" aria-label=(label) {
            @for (i, day) in days.iter().enumerate() {
                @let x0 = 20.0 + group * i as f64;
                @for (j, (name, color, values)) in series.iter().enumerate() {
                    @let value = values.get(i).copied().unwrap_or(0.0);
                    @let h = (value / peak * height).round();
                    @let shown = format!("{value:.decimals$}");
                    rect x=(x0 + bar * j as f64) y=(height - h + 10.0) width=(bar - 1.0) height=(h)
                        fill=(color) data-day=(day) data-series=(name) data-value=(shown) {
                        title { (day) ": " (shown) (unit) " " (name) }
                    }
                }
                text x=(x0) y=(height + 30.0) font-size="10" { (day.get(5..).unwrap_or(day)) }
            }
        }
    }
}

/// `GET /keys`: the keys custody trusts now, and its own.
pub(crate) async fn keys(State(s): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    let v = signed_in!(&s, &headers, Permission::Read);
    let policy = or_fail!(v, s.app.policy().await);
    let attestor = s.app.attestor_key();
    let body = html! {
        h1 { "Keys" }
        p { "Policy " code { (policy.digest()) } "." }
        h2 { "Release keys" }
        table #release-keys {
            tr { th { "algorithm" } th { "key id" } }
            @for k in policy.release_keys() { tr { td { (k.algorithm()) } td { code { (k.key_id()) } } } }
        }
        h2 { "Builders" }
        table #builders {
            tr { th { "builder" } th { "algorithm" } th { "key id" } th { "may build" } }
            @for b in policy.builders() {
                tr { td { (b.id) } td { (b.key.algorithm()) } td { code { (b.key_id) } } td { (b.source_repos.join(", ")) } }
            }
        }
        h2 { "custody's own" }
        table #own-keys {
            tr { th { "VSA attestor" } td { (attestor.algorithm()) } td { code { (attestor.key_id()) } } }
            tr { th { "ledger" } td { "ed25519" } td { code { (s.app.store().verifier().name()) } } }
        }
    };
    shown(&v, "Keys", body, Permission::Read)
}

/// `GET /access`: the access review (auditors).
pub(crate) async fn access(State(s): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    let v = signed_in!(&s, &headers, Permission::Audit);
    let holdings = or_fail!(v, s.app.access_review(now(), 90).await);
    let body = html! {
        h1 { "Access review" }
        table #access {
            tr { th { "principal" } th { "role" } th { "last used" } th { "status" } }
            @for h in &holdings {
                tr {
                    td { (h.principal) } td { (h.role) }
                    td { (h.last_used.as_deref().unwrap_or("never")) }
                    @if h.unused { td.warn { "unused for 90 days: consider removing it" } } @else { td { "in use" } }
                }
            }
        }
    };
    shown(&v, "Access", body, Permission::Audit)
}

/// `GET /ledger`: size, the latest checkpoint, and the log proven to have only grown.
pub(crate) async fn ledger(State(s): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    let v = signed_in!(&s, &headers, Permission::Read);
    let status = or_fail!(v, s.app.ledger_status().await);
    let body = html! {
        h1 { "Ledger" }
        p { strong #size { (status.size) } " entries." }
        h2 { "Latest signed checkpoint" }
        pre #checkpoint { (status.checkpoint) }
        h2 { "Consistency" }
        @match &status.consistency {
            Some((from, Ok(()))) => p.pass #consistency { "The log of " (status.size) " entries provably extends the first checkpoint (" (from) " entries): nothing recorded was changed or removed." },
            Some((from, Err(e))) => p.fail #consistency { "CONSISTENCY FAILED from " (from) " to " (status.size) " entries: " (e) },
            None => p.none #consistency { "the log is empty" },
        }
        p { "Check it yourself, with nothing but the log's public key: " code { "custody log check --server URL --log-key log.pub" } }
    };
    shown(&v, "Ledger", body, Permission::Read)
}

/// `GET /charts`: promotions, certifications, rejections and rollbacks per day, and the
/// mean time to promotion and approval latency per day (the last 30 days with any), drawn
/// as SVG on the server.
pub(crate) async fn charts(State(s): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    let v = signed_in!(&s, &headers, Permission::Read);
    let daily = match s.metrics.daily(s.app.store(), 30).await {
        Ok(d) => d,
        Err(e) => return error_page(Some(&v.who), StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let days: Vec<String> = daily.keys().cloned().collect();
    let counts = |j: usize| -> Vec<f64> { daily.values().map(|d| d.counts[j] as f64).collect() };
    let hours = |f: fn(&crate::metrics::Day) -> Option<f64>| -> Vec<f64> {
        daily.values().map(|d| f(d).unwrap_or(0.0)).collect()
    };
    let delivery = [
        ("requested", "#4a6fa5", counts(0)),
        ("certified", "#1b7a3a", counts(1)),
        ("rejected", "#b3261e", counts(2)),
        ("rolled back", "#a15c00", counts(3)),
    ];
    let latency = [
        (
            "time to promotion",
            "#1b7a3a",
            hours(crate::metrics::Day::mean_hours_to_promotion),
        ),
        (
            "approval latency",
            "#6a4fa5",
            hours(crate::metrics::Day::mean_hours_to_review),
        ),
    ];
    let body = html! {
        h1 { "Delivery over time" }
        @if daily.is_empty() { p.none { "nothing recorded yet" } } @else {
            h2 { "Promotions per day" }
            (bar_chart("delivery", "promotions, certifications, rejections and rollbacks per day", &days, &delivery, "", 0))
            h2 { "Mean hours from request, per day" }
            (bar_chart("latency", "mean time to promotion and approval latency per day, in hours", &days, &latency, " h", 1))
        }
        p { "The same counts, the distributions behind the means, and more are at "
            a href="/metrics" { "/metrics" } " for Prometheus." }
    };
    shown(&v, "Charts", body, Permission::Read)
}
