//! A promotion's whole story (gates, reviews, the ledger entry proven, signatures,
//! provenance) and the review form.

use std::sync::Arc;

use crate::extract::PageForm;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use custody_app::{Authenticated, Fault, Permission, PromotionView, REDACTED, Review};
use custody_model::{Risk, Verdict};
use maud::{Markup, html};
use serde::Deserialize;

use super::keys::key_name;
use super::layout::{error_page, page};
use super::session::csrf_matches;
use super::{Need, ToReview, Viewer, when};
use crate::ServerState;
use crate::access::{mark_caller, shown};

/// `GET /promotions/{id}`.
pub(crate) async fn promotion(
    State(s): State<Arc<ServerState>>,
    v: Viewer,
    Path(id): Path<String>,
    Query(q): Query<Reviewed>,
) -> Result<Response, Response> {
    let confirmed = match q.reviewed {
        Some(Verdict::Approve) => Some("Your approval was recorded."),
        Some(Verdict::Reject) => Some("Your rejection was recorded."),
        None => None,
    };
    Ok(render_promotion(
        &s,
        &v,
        &id,
        Notice {
            error: None,
            confirmed,
        },
        StatusCode::OK,
    )
    .await)
}

/// The query after a review: which verdict was recorded (the page confirms it).
#[derive(Deserialize)]
pub(crate) struct Reviewed {
    #[serde(default)]
    reviewed: Option<Verdict>,
}

/// What the page says above the gates: why a review was refused, or that it was recorded.
#[derive(Clone, Copy, Default)]
struct Notice<'a> {
    error: Option<&'a str>,
    confirmed: Option<&'a str>,
}

async fn render_promotion<N: Need>(
    s: &ServerState,
    v: &Viewer<N>,
    id: &str,
    notice: Notice<'_>,
    status: StatusCode,
) -> Response {
    let view = match s.app.promotion_view(&v.who, id).await {
        Ok(view) => view,
        Err(e) => return v.fail(e),
    };
    let inclusion = match &view.decision {
        Some((_, index)) => s.app.check_inclusion(*index).await.ok(),
        None => None,
    };
    let policy = match s.app.policy().await {
        Ok(policy) => policy,
        Err(e) => return v.fail(e),
    };
    let keys = Keys {
        policy: &policy,
        attestor: s.app.attestor_key(),
    };
    let rolled_back = match rollback_of(s, &view).await {
        Ok(r) => r,
        Err(e) => return v.fail(e),
    };
    let ledger = Ledger {
        inclusion: inclusion.as_ref(),
        rolled_back: rolled_back.as_ref(),
    };
    let body = promotion_body(&view, &v.who, &v.csrf, &ledger, notice, &keys, s.now());
    let r = (
        status,
        page(&format!("Promotion {id}"), Some(v.signed()), body),
    )
        .into_response();
    if status.is_success() { v.allowed(r) } else { r }
}

/// The rollback that undid a certified promotion: its time and the event, if one did.
async fn rollback_of(
    s: &ServerState,
    view: &PromotionView,
) -> custody_app::AppResult<Option<(custody_model::Timestamp, custody_app::events::RolledBack)>> {
    let p = &view.promotion;
    if p.status != custody_model::PromotionStatus::Certified {
        return Ok(None);
    }
    // Only the ledger's stretch since it was asked for: a rollback of it comes later.
    let filter = custody_app::HistoryFilter {
        environment: Some(p.environment.clone()),
        kind: Some("rollback".into()),
        since: Some(p.requested_at),
        limit: 0,
        ..Default::default()
    };
    Ok(s.app
        .history(&filter)
        .await?
        .into_iter()
        .find_map(|e| match e.event.body {
            custody_app::events::EventBody::RolledBack(r) if r.failed_promotion == p.id => {
                Some((e.event.at, r))
            }
            _ => None,
        }))
}

/// What the ledger says of the promotion beyond its records: its decision's inclusion
/// proof checked, and the rollback that undid it, if one did.
struct Ledger<'a> {
    inclusion: Option<&'a custody_app::InclusionCheck>,
    rolled_back: Option<&'a (custody_model::Timestamp, custody_app::events::RolledBack)>,
}

/// What names the keys on the page: the policy in force, and custody's attestor key.
struct Keys<'a> {
    policy: &'a custody_policy::Policy,
    attestor: custody_crypto::PublicKey,
}

fn promotion_body(
    view: &PromotionView,
    who: &Authenticated,
    csrf: &str,
    ledger: &Ledger<'_>,
    notice: Notice<'_>,
    keys: &Keys<'_>,
    now: custody_model::Timestamp,
) -> Markup {
    let Ledger {
        inclusion,
        rolled_back,
    } = *ledger;
    let p = &view.promotion;
    let review_due = p
        .break_glass
        .as_ref()
        .is_some_and(|b| b.reviewed_by.is_none())
        && p.status == custody_model::PromotionStatus::Certified;
    // Once someone has reviewed, the form is gone for them (a change of mind goes through
    // the API or CLI, which say what it supersedes).
    let reviewed = view.reviews.iter().any(|r| r.by == who.principal);
    let may_review = Permission::Review.granted_to(&who.roles)
        && !reviewed
        && (p.status == custody_model::PromotionStatus::Pending || review_due);
    let status_class = match p.status {
        custody_model::PromotionStatus::Certified => "v-passed",
        custody_model::PromotionStatus::Pending => "v-waiting",
        custody_model::PromotionStatus::Rejected => "v-rejected",
    };
    html! {
        h1 { (p.release) " → " (p.environment) }
        p {
            "Promotion " code { (p.id) } " requested by " (p.requested_by) " at " (when(p.requested_at))
            ". Status: " strong #status class={ "pill " (status_class) } { (p.status) }
            @if let Some((at, r)) = rolled_back {
                ", then " strong #rolled-back class="pill v-rolled-back" { "rolled back" }
                " at " (when(*at)) " to " (r.to) ": " (r.reason)
            }
        }
        @if let Some(n) = notice.error { p.error #notice { (n) } }
        @if let Some(n) = notice.confirmed { p.confirm #confirmation { "✓ " (n) } }
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
                    tr { td { (g.gate) } td class=(class) { span class={ "pill " (verdict_class(g.status)) } { (class) } } td { (g.reason) } }
                }
            }
            p {
                "Decision " code { (d.id) } " at " (when(d.at)) " under policy " code { (d.decision.policy_digest) }
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
            p #vsa {
                @match vsa_result(&d.vsa, &keys.attestor) {
                    Some(result) => {
                        // A waiting promotion's latest decision did not pass yet: FAILED in
                        // the VSA's words, but not the end of it.
                        @let pending = p.status == custody_model::PromotionStatus::Pending;
                        @let class = match (result.as_str(), pending) {
                            ("PASSED", _) => "v-passed",
                            (_, true) => "v-waiting",
                            _ => "v-rejected",
                        };
                        strong #vsa-result class={ "pill " (class) } { (result) }
                        @if pending && result != "PASSED" { " (so far: the promotion still waits; its next decision gets a VSA of its own)" }
                        " · ✓ signed by "
                        span.key title={ "key id " (keys.attestor.key_id()) } { strong { "custody attestor" } " (custody's own VSA signing key)" }
                    },
                    None => span.fail { "✗ does not verify with this custody's attestor key" },
                }
                ", payload type " code { (d.vsa.payload_type) } "."
            }
        }
        @if !view.exceptions.is_empty() {
            h2 { "Exceptions" }
            table #exceptions {
                tr { th { "exception" } th { "waives" } th { "covers" } th { "status" } th { "until" } th { "plan" } th { "asked / reviewed" } }
                @for x in &view.exceptions {
                    @let (class, label) = exception_status(x, now);
                    tr {
                        td { code { (x.id) } }
                        td { (x.finding) }
                        td { (x.subject()) @if !x.environments.is_empty() { " (" (x.environments.join(", ")) ")" } }
                        td { span class={ "pill " (class) } { (label) } }
                        td { (when(x.expires_at)) }
                        td { (x.plan.action) " by " (x.plan.owner) ", due " (when(x.plan.due)) }
                        td {
                            (x.requested_by) ": " (x.reason)
                            @if let Some(by) = &x.reviewed_by { br; (by) ": " (x.review_rationale.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        h2 { "Reviews" }
        @if view.reviews.is_empty() { p.none { "none yet" } } @else {
            table #reviews {
                tr { th { "by" } th { "verdict" } th { "at" } th { "risk" } th { "expires" } th { "rationale" } }
                @for r in &view.reviews {
                    tr {
                        td { (r.by) }
                        td { (format!("{:?}", r.verdict).to_lowercase()) @if r.supersedes.is_some() { " (changes an earlier review)" } }
                        td { (when(r.at)) }
                        td { (format!("{:?}", r.risk).to_lowercase()) }
                        td { (when(r.expires_at)) }
                        td.rationale {
                            @if r.confidential && r.rationale == REDACTED { em { (REDACTED) } }
                            @else { (r.rationale) @if r.confidential { " " em { "(confidential)" } } }
                        }
                    }
                }
            }
        }
        @if may_review {
            h2 { @if review_due { "Review after the fact" } @else { "Review" } }
            form #review method="post" action={ "/promotions/" (p.id) "/review" } {
                input type="hidden" name="csrf" value=(csrf);
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
            tr {
                th { "verifies with" }
                th title="the key id the signer wrote beside the signature (securesystemslib's, for most tools): a hint, not custody's key id, which is the SHA-256 of the key's SPKI (the Keys page)" {
                    "signer's key id hint"
                }
            }
            @for sig in &view.signatures {
                tr {
                    @match &sig.verified_by {
                        Some((alg, key)) => td.pass {
                            "✓ " (key_name(keys.policy, key)) ", " (alg) " · key id "
                            code title=(key) { (key.get(..12).unwrap_or(key)) "…" }
                        },
                        None => td.fail { "no trusted release key" },
                    }
                    td { @match sig.keyid.as_deref() {
                        Some(id) => code title=(id) { (id.get(..12).unwrap_or(id)) "…" },
                        None => "(none)",
                    } }
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
                            td { (build_parameters(&pv.parameters)) }
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
    v: Viewer<ToReview>,
    Path(id): Path<String>,
    PageForm(f): PageForm<ReviewForm>,
) -> Result<Response, Response> {
    if !csrf_matches(&f.csrf, &v.csrf) {
        let mut r = error_page(
            Some(v.signed()),
            StatusCode::FORBIDDEN,
            "the form's CSRF field is missing or wrong: reload the page and submit it again",
        );
        mark_caller(&mut r, shown(&v.who), "denied: CSRF check failed".into());
        return Err(r);
    }
    let actor = v.who.actor(v.now).map_err(|e| v.fail(e))?;
    let review = Review {
        rationale: f.rationale,
        risk: f.risk,
        confidential: f.confidential.is_some(),
        statement: None,
    };
    match s.app.review(&actor, &id, f.verdict, &review, None).await {
        Ok(_) => {
            let verdict = f.verdict;
            let to = format!("/promotions/{id}?reviewed={verdict}");
            Ok(v.allowed(Redirect::to(&to).into_response()))
        }
        // Refused by a gate or malformed: the page again, saying why.
        Err(e) if matches!(e.fault(), Fault::Denied | Fault::Invalid | Fault::Conflict) => {
            let status = crate::error::status(e.fault());
            let error = e.to_string();
            let notice = Notice {
                error: Some(&error),
                confirmed: None,
            };
            Ok(render_promotion(&s, &v, &id, notice, status).await)
        }
        Err(e) => Err(v.fail(e)),
    }
}

/// The VSA's `verificationResult` (`PASSED`, `FAILED`), read once its signature verifies
/// with custody's attestor key (checked here, not taken from the signature's key id
/// hint); `None` if it does not verify.
fn vsa_result(
    vsa: &custody_crypto::dsse::Envelope,
    attestor: &custody_crypto::PublicKey,
) -> Option<String> {
    let verified = custody_crypto::dsse::verify(vsa, std::slice::from_ref(attestor), 1).ok()?;
    let statement: serde_json::Value = serde_json::from_slice(verified.payload()).ok()?;
    let result = statement["predicate"]["verificationResult"].as_str();
    Some(result.unwrap_or("(no result)").to_owned())
}

/// A build's parameters as people read them: one `name = value` a line, nested objects
/// flattened to dotted names (`parameters.profile = release`), a string without its
/// quotes, anything else as compact JSON.
pub(crate) fn build_parameters(parameters: &serde_json::Value) -> Markup {
    let mut lines = Vec::new();
    flatten("", parameters, 0, &mut lines);
    html! {
        @if lines.is_empty() { span.none { "none" } } @else {
            ul.parameters {
                @for (name, value) in &lines { li { code { (name) } " = " code { (value) } } }
            }
        }
    }
}

/// Nesting flattened at most; deeper values are shown as JSON.
const FLATTENED_DEPTH: usize = 4;

fn flatten(prefix: &str, value: &serde_json::Value, depth: usize, out: &mut Vec<(String, String)>) {
    match (value, value.as_object()) {
        (_, Some(map)) if depth < FLATTENED_DEPTH && (depth == 0 || !map.is_empty()) => {
            for (name, v) in map {
                let name = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                flatten(&name, v, depth + 1, out);
            }
        }
        (serde_json::Value::String(s), _) => out.push((prefix.to_owned(), s.clone())),
        _ => out.push((prefix.to_owned(), value.to_string())),
    }
}

/// An exception's pill at `at` (now): pending, rejected, revoked, approved, or approved
/// but expired.
fn exception_status(
    x: &custody_app::ExceptionRecord,
    at: custody_model::Timestamp,
) -> (&'static str, &'static str) {
    use custody_app::ExceptionStatus;
    match x.status {
        ExceptionStatus::Pending => ("v-waiting", "pending"),
        ExceptionStatus::Rejected => ("v-rejected", "rejected"),
        ExceptionStatus::Revoked => ("v-rejected", "revoked"),
        ExceptionStatus::Approved if x.expires_at <= at => ("v-rejected", "expired"),
        ExceptionStatus::Approved => ("v-passed", "approved"),
    }
}

/// The colour class of a gate's verdict: passed green, waiting amber, failed red.
fn verdict_class(status: custody_policy::Status) -> &'static str {
    match status {
        custody_policy::Status::Pass => "v-passed",
        custody_policy::Status::Fail => "v-rejected",
        _ => "v-waiting",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parameters_read_as_dotted_names() {
        let p = serde_json::json!({"parameters": {"profile": "release"}, "n": 2, "e": {}});
        let mut lines = Vec::new();
        super::flatten("", &p, 0, &mut lines);
        let lines: Vec<(&str, &str)> = lines
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(
            lines,
            [("e", "{}"), ("n", "2"), ("parameters.profile", "release")]
        );
    }
}
