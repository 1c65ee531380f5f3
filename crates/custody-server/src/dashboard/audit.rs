//! The pages an auditor reads: alerts, an artifact's lineage, the access review, the ledger
//! proven consistent, and the delivery charts (the keys are in keys.rs).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use custody_model::{Digest, Timestamp};
use maud::html;

use super::chart::{Axis, bar_chart};
use super::history::described;
use super::keys::{key_name, with_short_ids};
use super::layout::error_page;
use super::promotion::build_parameters;
use super::{ToAudit, Viewer, when};
use crate::ServerState;

/// `GET /alerts`: the latest alerts, and every delivery not yet made with why.
pub(crate) async fn alerts(
    State(s): State<Arc<ServerState>>,
    v: Viewer,
) -> Result<Response, Response> {
    let raised = s.app.recent_alerts().await.map_err(|e| v.fail(e))?;
    let policy = s.app.policy().await.map_err(|e| v.fail(e))?;
    let outbox = s.app.outbox().await.map_err(|e| v.fail(e))?;
    let body = html! {
        h1 { "Alerts" }
        @if raised.is_empty() { p.none { "no alerts" } } @else {
            table #alerts {
                tr { th { "happened" } th { "severity" } th { "rule" } th { "what" } }
                @for (a, raised_at) in &raised {
                    // When what raised it happened; a server that saw it later (started
                    // after the fact, or catching up) says when it raised it too.
                    @let happened = a.occurred_at().unwrap_or(*raised_at);
                    tr data-rule=(a.rule) {
                        td {
                            (when(happened))
                            @if raised_at.unix_seconds() - happened.unix_seconds() > 60 {
                                br; small.muted { "raised " (when(*raised_at)) }
                            }
                        }
                        td class=(if a.severity == "critical" { "fail" } else { "warn" }) { (a.severity) }
                        td { (a.rule) }
                        td { (with_short_ids(&a.text, &policy)) }
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
                        td { (when(d.next_at)) }
                        td.fail { (d.last_error.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    };
    Ok(v.shown("Alerts", body))
}

/// The digest a page's path names, or the page saying what is wrong with it.
#[allow(
    clippy::result_large_err,
    reason = "the refusal is the page answered, as the handlers' own error type"
)]
fn digest_in_path(v: &Viewer, text: &str) -> Result<Digest, Response> {
    text.parse()
        .map_err(|e| error_page(Some(v.signed()), StatusCode::BAD_REQUEST, &format!("{e}")))
}

/// `GET /reports/{digest}`: a stored evidence report, byte for byte, as a download (never
/// rendered here: it is what a pipeline uploaded).
pub(crate) async fn report(
    State(s): State<Arc<ServerState>>,
    v: Viewer,
    Path(digest): Path<String>,
) -> Result<Response, Response> {
    let digest = digest_in_path(&v, &digest)?;
    let bytes = s.app.report(&digest).await.map_err(|e| v.fail(e))?;
    let name = format!("attachment; filename=\"report-{}.bin\"", digest.hex());
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/octet-stream".to_owned(),
            ),
            (axum::http::header::CONTENT_DISPOSITION, name),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /artifacts/{digest}`: commit → build → artifact → releases → promotions →
/// environments, with rollbacks and drift.
pub(crate) async fn lineage(
    State(s): State<Arc<ServerState>>,
    v: Viewer,
    Path(digest): Path<String>,
) -> Result<Response, Response> {
    let digest = digest_in_path(&v, &digest)?;
    let l = s.app.lineage(&digest).await.map_err(|e| v.fail(e))?;
    let policy = s.app.policy().await.map_err(|e| v.fail(e))?;
    // A provenance discrepancy: the other digests the same source and parameters gave,
    // each compared with this build (the first few).
    let mut discrepancies = Vec::new();
    for other in s
        .app
        .discrepant_builds(&digest)
        .await
        .map_err(|e| v.fail(e))?
        .iter()
        .take(3)
    {
        let c = s
            .app
            .compare_builds(&digest, other)
            .await
            .map_err(|e| v.fail(e))?;
        discrepancies.push(c);
    }
    let summaries = s
        .app
        .evidence_summaries(&l.artifact.evidence)
        .await
        .map_err(|e| v.fail(e))?;
    let a = &l.artifact;
    let body = html! {
        h1 { (a.name) }
        p { code { (a.digest) } " registered by " (a.registered_by) " at " (when(a.registered_at)) }
        h2 { "Built from" }
        @match &a.provenance_facts {
            Some(p) => table #build {
                tr { th { "source" } td { (p.source_repo) " @ " code { (p.source_commit) } } }
                tr { th { "builder" } td { (p.builder_id) } }
                tr { th { "parameters" } td.parameters { (build_parameters(&p.parameters)) } }
                tr { th { "provenance signed by" } td { (key_name(&policy, &p.signing_key)) } }
            },
            None => p.fail { "no verified provenance" },
        }
        @if !a.rebuilds.is_empty() {
            h2 { "Built again (reproducible)" }
            table #rebuilds {
                tr { th { "builder" } th { "source" } th { "signed by" } th { "recorded" } }
                @for r in &a.rebuilds {
                    tr {
                        td { (r.provenance_facts.builder_id) }
                        td { (r.provenance_facts.source_repo) " @ " code { (r.provenance_facts.source_commit) } }
                        td { (key_name(&policy, &r.provenance_facts.signing_key)) }
                        td { (when(r.registered_at)) " by " (r.registered_by) }
                    }
                }
            }
        }
        @for c in &discrepancies {
            h2.fail { "Provenance discrepancy" }
            p {
                "The same source and parameters also gave "
                a href={ "/artifacts/" (c.builds[1].digest) } { code { (c.builds[1].digest) } }
                ". The two builds side by side (differences marked ≠):"
            }
            table.discrepancy {
                tr { th { "field" } th { "this build" } th { "the other build" } }
                @for f in &c.fields {
                    tr class=(if f.same { "same" } else { "differs" }) {
                        th { @if !f.same { "≠ " } (f.field) }
                        @for value in &f.values {
                            td { code { (value.as_ref().map_or("(not said)".to_owned(), |v| match v {
                                serde_json::Value::String(s) => s.clone(),
                                v => v.to_string(),
                            })) } }
                        }
                    }
                }
            }
        }
        @if !a.evidence.is_empty() {
            h2 { "Evidence" }
            ul #evidence {
                @for (e, said) in a.evidence.iter().zip(&summaries) {
                    li {
                        (e.kind) " (" (e.format) ") by " (e.by) " at " (when(e.at))
                        @match said {
                            Some(s) => { ": " (evidence_says(s)) " " a href={ "/reports/" (e.digest) } { "report" } },
                            None if !e.read => { ": " span.fail { "only its digest was given: evidence of nothing" } },
                            None => {},
                        }
                    }
                }
            }
        }
        h2 { "Released in" }
        @if l.releases.is_empty() { p.none { "no release" } } @else {
            ul #releases {
                @for e in &l.releases {
                    li { (custody_app::describe(&e.event)) " at " (when(e.event.at)) }
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
                tr data-type=(e.event.kind()) {
                    td { (e.index) }
                    td { (when(e.event.at)) }
                    td { (e.event.kind()) }
                    td { (described(&e.event)) }
                }
            }
        }
    };
    Ok(v.shown(&a.name, body))
}

/// `n entries`, or `1 entry`.
fn entries(n: u64) -> String {
    if n == 1 {
        "1 entry".into()
    } else {
        format!("{n} entries")
    }
}

/// The access review's window: a role not used for this many days is reported unused.
const REVIEW_DAYS: i64 = 90;

/// `GET /access`: the access review (auditors).
pub(crate) async fn access(
    State(s): State<Arc<ServerState>>,
    v: Viewer<ToAudit>,
) -> Result<Response, Response> {
    let holdings = s
        .app
        .access_review(v.now, REVIEW_DAYS)
        .await
        .map_err(|e| v.fail(e))?;
    let body = html! {
        h1 { "Access review" }
        table #access {
            tr { th { "principal" } th { "role" } th { "last used" } th { "status" } }
            @for h in &holdings {
                tr {
                    td { (h.principal) } td { (h.role) }
                    td { (h.last_used.as_deref().unwrap_or("never")) }
                    @let status = h.status(REVIEW_DAYS);
                    @if h.unused || h.ended { td.warn { (status) } } @else { td { (status) } }
                }
            }
        }
    };
    Ok(v.shown("Access", body))
}

/// `GET /ledger`: size, the latest checkpoint, and the log proven to have only grown.
pub(crate) async fn ledger(
    State(s): State<Arc<ServerState>>,
    v: Viewer,
) -> Result<Response, Response> {
    let status = s.app.ledger_status().await.map_err(|e| v.fail(e))?;
    let body = html! {
        h1 { "Ledger" }
        p { strong #size { (status.size) } " entries." }
        h2 { "Latest signed checkpoint" }
        pre #checkpoint { (status.checkpoint) }
        h2 { "Consistency" }
        // Never vouched for while custody itself has found something wrong with it: a
        // proof over the stored hashes says nothing of a leaf rewritten under them.
        @if status.doubts.is_empty() {
            @match &status.consistency {
                Some((from, Ok(()))) => p.pass #consistency { "The log of " (status.size) " entries provably extends the first checkpoint (" (entries(*from)) "): nothing recorded was changed or removed." },
                Some((from, Err(e))) => p.fail #consistency { "CONSISTENCY FAILED from " (from) " to " (status.size) " entries: " (e) },
                None => p.none #consistency { "the log is empty" },
            }
        } @else {
            p.fail #consistency { "NOT VOUCHED FOR: custody found this ledger damaged or altered, and " (status.doubts.len()) " finding(s) stand:" }
            ul #doubts { @for d in &status.doubts { li { (d) } } }
            @match &status.consistency {
                Some((from, Ok(()))) => p #proof { "The stored hashes of " (status.size) " entries extend the first checkpoint (" (entries(*from)) "); that proves nothing of the entries while the findings above stand." },
                Some((from, Err(e))) => p.fail #proof { "CONSISTENCY FAILED from " (from) " to " (status.size) " entries: " (e) },
                None => p.none #proof { "the log is empty" },
            }
        }
        p { "Check it yourself: " code { "custody log check --server URL --log-key log.pub" } " recomputes the tree from the entries (with a token that may read history); " code { "custody log watch --server URL --log-key log.pub --state FILE" } " holds the log to an append-only history with nothing but its public key." }
    };
    Ok(v.shown("Ledger", body))
}

/// `GET /charts`: promotions, certifications, rejections and rollbacks per day, and the
/// mean time to promotion and approval latency per day (the last 30 days with any), drawn
/// as SVG on the server.
pub(crate) async fn charts(
    State(s): State<Arc<ServerState>>,
    v: Viewer,
) -> Result<Response, Response> {
    let daily = s
        .metrics
        .daily(&s.app, 30)
        .await
        .map_err(|e| v.fail(custody_app::AppError::Unavailable(e)))?;
    // Every calendar day from the first with any (at most 30 days back) to today, so a
    // quiet day is a gap on the axis rather than missing from it.
    let days = calendar_days(daily.keys().next().map(String::as_str), v.now, 30);
    let counts = |j: usize| -> Vec<f64> {
        days.iter()
            .map(|d| daily.get(d).map_or(0.0, |day| day.counts[j] as f64))
            .collect()
    };
    let hours = |f: fn(&crate::metrics::Day) -> Option<f64>| -> Vec<f64> {
        days.iter()
            .map(|d| daily.get(d).and_then(f).unwrap_or(0.0))
            .collect()
    };
    let delivery = [
        ("requested", "#4a6fa5", counts(0)),
        ("certified", "#1b7a3a", counts(1)),
        ("rejected", "#b3261e", counts(2)),
        ("rolled back", "#6b3fa0", counts(3)),
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
            (bar_chart("delivery", "promotions, certifications, rejections and rollbacks per day", &days, &delivery,
                &Axis { title: "promotions per day", unit: "", decimals: 0 }))
            h2 { "Mean hours from request, per day" }
            (bar_chart("latency", "mean time to promotion and approval latency per day, in hours", &days, &latency,
                &Axis { title: "mean hours from request", unit: " h", decimals: 1 }))
        }
        // Not a link: `/metrics` is for Prometheus, which scrapes it with an API token
        // (a dashboard session is not one), so a click would only meet a 401.
        p { "The same counts, the distributions behind the means, and more are at "
            code { "/metrics" } " for Prometheus, which scrapes it with an API token that may read ("
            code { "authorization: Bearer cst_…" } "; " code { "custody token create --principal prometheus" } " makes one for a principal the policy gives a reading role)." }
    };
    Ok(v.shown("Charts", body))
}

/// The days (`YYYY-MM-DD`, UTC) from `first` to the day of `now`, at most the last `most`.
fn calendar_days(first: Option<&str>, now: Timestamp, most: i64) -> Vec<String> {
    const DAY: i64 = 86_400;
    let today = now.unix_seconds().div_euclid(DAY);
    let first = first
        .and_then(|d| format!("{d}T00:00:00Z").parse::<Timestamp>().ok())
        .map_or(today, |t| t.unix_seconds().div_euclid(DAY));
    (first.max(today - most + 1)..=today)
        .filter_map(|d| Timestamp::from_unix_seconds(d * DAY).ok())
        .map(|t| {
            t.to_second()
                .to_string()
                .get(..10)
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// What a report says, in a line: "6/7 tests passed, 1 failed", "1 critical (1 with a
/// fix), 2 high", "2 error-level results", "12 components, 3 licences".
fn evidence_says(s: &custody_app::Summary) -> String {
    let mut parts = Vec::new();
    if let Some(t) = &s.tests {
        let mut line = format!("{}/{} tests passed", t.passed, t.tests);
        for (n, what) in [
            (t.failed, "failed"),
            (t.errored, "errored"),
            (t.skipped, "skipped"),
        ] {
            if n > 0 {
                line.push_str(&format!(", {n} {what}"));
            }
        }
        parts.push(line);
    }
    if let Some(f) = &s.findings {
        parts.push(match f.total {
            0 => "no static-analysis results".to_owned(),
            _ => format!(
                "{} error-, {} warning-, {} note-level results",
                f.error, f.warning, f.note
            ),
        });
    }
    if let Some(v) = &s.vulnerabilities {
        let by: Vec<String> = [
            ("critical", &v.critical),
            ("high", &v.high),
            ("medium", &v.medium),
            ("low", &v.low),
            ("unknown", &v.unknown),
        ]
        .into_iter()
        .filter(|(_, c)| c.total > 0)
        .map(|(name, c)| format!("{} {name} ({} with a fix)", c.total, c.with_fix))
        .collect();
        parts.push(match by.is_empty() {
            true => "no vulnerabilities".to_owned(),
            false => format!("vulnerabilities: {}", by.join(", ")),
        });
    }
    if let Some(l) = &s.licences {
        let mut line = format!("{} components, licences: ", l.components);
        let shown: Vec<&str> = l.licences.iter().take(8).map(String::as_str).collect();
        line.push_str(&shown.join(", "));
        if l.licences.len() > shown.len() {
            line.push_str(&format!(" and {} more", l.licences.len() - shown.len()));
        }
        if l.without_licence > 0 {
            line.push_str(&format!("; {} without a licence", l.without_licence));
        }
        parts.push(line);
    }
    parts.join("; ")
}
