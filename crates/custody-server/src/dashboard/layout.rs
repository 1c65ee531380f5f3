//! The page frame, and the error and sign-in pages.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use custody_app::Authenticated;
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// The dashboard's style sheet, inlined into every page (no second request, no script).
const STYLE: &str = include_str!("style.css");

/// Who a page is for, with their session's CSRF field (the sign-out form carries it).
#[derive(Clone, Copy)]
pub(crate) struct Signed<'a> {
    pub(crate) who: &'a Authenticated,
    pub(crate) csrf: &'a str,
    /// Critical and warning alerts of the last week, for the navigation (`None`: unknown).
    pub(crate) alerts: Option<usize>,
}

/// The navigation: every page a signed-in viewer may open (a page needing a permission
/// they lack is not offered), in this order.
const NAV: &[(&str, &str)] = &[
    ("/", "Pipeline"),
    ("/history", "History"),
    ("/alerts", "Alerts"),
    ("/policy", "Policy"),
    ("/keys", "Keys"),
    ("/access", "Access"),
    ("/ledger", "Ledger"),
    ("/charts", "Charts"),
];

/// Whether `who` may open the page at `path` (per [`super::PAGES`]).
fn may_open(who: &Authenticated, path: &str) -> bool {
    super::PAGES
        .iter()
        .find(|p| p.method == "GET" && p.path == path)
        .is_some_and(|p| p.permission.is_none_or(|need| need.granted_to(&who.roles)))
}

/// A page: the header with the navigation for a signed-in viewer, then `body`.
pub(crate) fn page(title: &str, signed: Option<Signed<'_>>, body: Markup) -> Markup {
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
                    @if let Some(Signed { who, csrf, alerts }) = signed {
                        nav {
                            @for (href, label) in NAV.iter().filter(|(href, _)| may_open(who, href)) {
                                a href=(href) {
                                    (label)
                                    @if *href == "/alerts" {
                                        @if let Some(n) = alerts.filter(|n| *n > 0) {
                                            " " span #alert-count.count title="critical and warning alerts in the last 7 days" { (n) }
                                        }
                                    }
                                }
                                " "
                            }
                        }
                        span.who { (who.principal) " · " (who.roles.join(", ")) }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page saying what went wrong, with `status`.
pub(crate) fn error_page(who: Option<Signed<'_>>, status: StatusCode, message: &str) -> Response {
    let title = if status.is_server_error() {
        "Something failed"
    } else if status == StatusCode::NOT_FOUND {
        "Not found"
    } else {
        "Not allowed"
    };
    (
        status,
        page(
            title,
            who,
            html! { p.error { (message) } p { a href="/" { "Back to the pipeline" } } },
        ),
    )
        .into_response()
}

/// The sign-in page, with an error if the last attempt failed, and its forms with `csrf`
/// (none: no form, for a page that only says why the session ended): the organisation's
/// OIDC `provider` first when one is configured, then an API token.
pub(crate) fn login_page(
    error: Option<&str>,
    csrf: Option<&str>,
    provider: Option<&str>,
) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(e) = error { p.error { (e) } }
            @if let (Some(csrf), Some(name)) = (csrf, provider) {
                form #oidc method="post" action="/login/oidc" {
                    input type="hidden" name="csrf" value=(csrf);
                    button #sign-in-oidc type="submit" { "Sign in with " (name) }
                }
                p { "or with an API token:" }
            }
            @if let Some(csrf) = csrf {
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                label for="token" { "API token " }
                input #token type="password" name="token" autocomplete="off" required;
                " "
                button #sign-in type="submit" { "Sign in" }
            }
            } @else {
                p { a href="/login" { "Sign in again" } }
            }
            p #where-tokens-come-from {
                "Your token comes from an admin, who runs "
                code { "custody token create --principal YOU" }
                " (it is shown once; only its hash is kept); with a token of your own you may make more. "
                "Trying custody out? "
                code { "custody demo" }
                " ends by printing tokens for the demo's admin, an auditor and a viewer."
            }
        },
    )
}

/// The content security policy of every page: nothing outside custody, no script.
const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// [`POLICY`], with forms allowed to lead to `origins` too (space-separated): the sign-in
/// page's, whose OIDC form is answered by a redirect to the provider.
pub(crate) fn policy_allowing_forms_to(origins: &str) -> String {
    POLICY.replace(
        "form-action 'self'",
        &format!("form-action 'self' {origins}"),
    )
}

/// What every dashboard answer carries: no framing (clickjacking), no caching (pages show
/// confidential text), no script or outside resource (unless the page set a policy of its
/// own, from [`policy_allowing_forms_to`]), and no content sniffing.
pub(crate) async fn secure_headers(mut response: Response) -> Response {
    use axum::http::{HeaderValue, header};
    let h = response.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(POLICY),
        );
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
