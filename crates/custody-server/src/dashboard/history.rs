//! History search by engineer, environment, artifact, build and time, newest first a page
//! at a time, and its CSV and JSON exports.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use custody_app::HistoryFilter;
use custody_app::events::{Event, EventBody};
use custody_model::Timestamp;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::error_page;
use super::{ToExport, Viewer, when};
use crate::ServerState;

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
    /// The search, or what is wrong with it. An artifact may be named by the start of its
    /// digest, as pages show it (`App::artifact_by_prefix`).
    async fn filter(
        &self,
        app: &custody_app::App<custody_store::SqlStore>,
        limit: usize,
    ) -> Result<HistoryFilter, String> {
        let text = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        let time = |name: &str, s: &str| {
            text(s)
                .map(|t| t.parse::<Timestamp>().map_err(|e| format!("{name}: {e}")))
                .transpose()
        };
        let artifact = match text(&self.artifact) {
            Some(given) => Some(
                app.artifact_by_prefix(&given)
                    .await
                    .map_err(|e| format!("artifact: {e}"))?,
            ),
            None => None,
        };
        Ok(HistoryFilter {
            artifact,
            build: text(&self.build),
            principal: text(&self.principal),
            environment: text(&self.env),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            before: self.before,
            limit,
            kind: None,
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

/// `k=v&…`, each value percent-encoded but for letters, digits and `-._~`.
fn url_encoded(pairs: &[(&str, &String)]) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, KEEP)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `GET /history`: search by engineer, environment, artifact, build and time; newest
/// first, a page at a time, with CSV and JSON exports of the same search.
pub(crate) async fn history(
    State(s): State<Arc<ServerState>>,
    v: Viewer,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, Response> {
    let (entries, problem, hint) = match q.filter(&s.app, PAGE).await {
        Ok(filter) => match s.app.history(&filter).await {
            Ok(entries) => {
                // Nothing found: a name the policy does not know is the likeliest reason.
                let hint = match (entries.is_empty(), s.app.policy().await) {
                    (true, Ok(policy)) => custody_app::why_nothing_matches(&filter, &policy),
                    _ => None,
                };
                (entries, None, hint)
            }
            Err(e) => (Vec::new(), Some(e.to_string()), None),
        },
        Err(why) => (Vec::new(), Some(why), None),
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
        @if entries.is_empty() && problem.is_none() {
            p.none #no-match { "no events match" @if let Some(h) = &hint { ": " (h) } }
        }
        @else {
            table #history {
                tr { th { "ledger index" } th { "at" } th { "event" } th { "what" } }
                @for e in entries.iter().rev() {
                    tr data-actor=(e.event.actor) data-environment=(e.event.environment().unwrap_or("")) {
                        td { (e.index) }
                        td { (when(e.event.at)) }
                        td { (e.event.kind()) }
                        td { (described(&e.event)) }
                    }
                }
            }
        }
        @if let Some(before) = older {
            p { a #older href={ "/history?" (q.query_string(Some(before))) } { "Older events →" } }
        }
    };
    Ok(v.shown("History", body))
}

/// What an event records, linked to its promotion when it names one.
pub(crate) fn described(event: &Event) -> Markup {
    let what = custody_app::describe(event);
    match promotion_of(event) {
        Some(p) => html! { a href={ "/promotions/" (p) } { (what) } },
        None => html! { (what) },
    }
}

/// The promotion an event is about, if any.
pub(crate) fn promotion_of(event: &Event) -> Option<&str> {
    Some(match &event.body {
        EventBody::PromotionRequested(e) => &e.promotion,
        EventBody::DecisionRecorded(e) => &e.promotion,
        EventBody::EnvironmentCertified(e) => &e.promotion,
        EventBody::ApprovalRecorded(e) => &e.promotion,
        _ => return None,
    })
}

/// The release an event is about, if any.
fn release_of(event: &Event) -> Option<&str> {
    Some(match &event.body {
        EventBody::ReleaseCreated(e) => &e.release,
        EventBody::PromotionRequested(e) => &e.release,
        EventBody::DecisionRecorded(e) => &e.release,
        EventBody::EnvironmentCertified(e) => &e.release,
        EventBody::ApprovalRecorded(e) => &e.release,
        EventBody::DeployReported(e) => return e.release.as_deref(),
        EventBody::RolledBack(e) => &e.to,
        _ => return None,
    })
}

/// `GET /history.csv`.
pub(crate) async fn export_csv(
    State(s): State<Arc<ServerState>>,
    v: Viewer<ToExport>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, Response> {
    export(&s, &v, Export::Csv, &q).await
}

/// `GET /history.json`.
pub(crate) async fn export_json(
    State(s): State<Arc<ServerState>>,
    v: Viewer<ToExport>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, Response> {
    export(&s, &v, Export::Json, &q).await
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
    v: &Viewer<ToExport>,
    format: Export,
    q: &HistoryQuery,
) -> Result<Response, Response> {
    let filter = q
        .filter(&s.app, EXPORT)
        .await
        .map_err(|why| error_page(Some(v.signed()), StatusCode::BAD_REQUEST, &why))?;
    let entries = s.app.history(&filter).await.map_err(|e| v.fail(e))?;
    let encoded = match format {
        Export::Json => serde_json::to_vec(&entries).map_err(|e| e.to_string()),
        Export::Csv => history_csv(&entries),
    };
    let body = encoded.map_err(|e| {
        v.fail(custody_app::AppError::Integrity(format!(
            "encoding the export: {e}"
        )))
    })?;
    let (format, content_type) = match format {
        Export::Json => ("history.json", "application/json"),
        Export::Csv => ("history.csv", "text/csv; charset=utf-8"),
    };
    let disposition = format!("attachment; filename=\"custody-{format}\"");
    Ok(v.allowed(
        (
            [
                (header::CONTENT_TYPE, content_type.to_owned()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            body,
        )
            .into_response(),
    ))
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
        let event = &e.event;
        w.write_record([
            e.index.to_string(),
            event.at.to_string(),
            event.kind().to_owned(),
            event.actor.clone(),
            event.environment().unwrap_or("").to_owned(),
            release_of(event).unwrap_or("").to_owned(),
            promotion_of(event).unwrap_or("").to_owned(),
            custody_app::describe(event),
        ])
        .map_err(|e| e.to_string())?;
    }
    w.into_inner().map_err(|e| e.to_string())
}
