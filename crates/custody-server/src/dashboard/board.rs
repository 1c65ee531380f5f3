//! The pipeline board: every environment in pipeline order (like a stage graph), each
//! answering "can I trust what runs here?": the certified release with its signature,
//! provenance, evidence and approval badges; what deploy tooling last reported running,
//! with drift (a running digest never certified there) in red; the promotions waiting to
//! enter, the break-glass promotions due for review, and the latest rejections and
//! rollbacks. A certified release the deploy gate denies now (a scan since found a
//! critical CVE, a key was revoked) is marked as no longer standing, with why.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use custody_app::{BoardColumn, OutcomeKind, Running, Standing};
use custody_model::Timestamp;
use custody_policy::{Gate, Policy, Status};
use maud::{Markup, html};

use super::keys::{key_text, with_short_ids};
use super::{Viewer, age, when};
use crate::ServerState;

/// How often the board reloads itself (the HTTP `Refresh` header: live without a script).
const BOARD_REFRESH_SECONDS: u32 = 30;

/// `GET /`: the pipeline board.
pub(crate) async fn board(
    State(s): State<Arc<ServerState>>,
    v: Viewer,
) -> Result<Response, Response> {
    let columns = s.app.board(v.now).await.map_err(|e| v.fail(e))?;
    // Cached by digest: names the keys on the cards.
    let policy = s.app.policy().await.map_err(|e| v.fail(e))?;
    let body = html! {
        h1 { "Pipeline" }
        div.board {
            @for (i, c) in columns.iter().enumerate() {
                @if i > 0 { div.arrow aria-hidden="true" { "→" } }
                (column(c, v.now, &policy))
            }
        }
        p.none #as-of { "As of " (when(v.now)) "; this page refreshes every " (BOARD_REFRESH_SECONDS) " s." }
    };
    let mut r = v.shown("Pipeline", body);
    r.headers_mut().insert(
        axum::http::header::REFRESH,
        axum::http::HeaderValue::from(BOARD_REFRESH_SECONDS),
    );
    Ok(r)
}

/// `sha256:` and the first 12 hex digits: enough to tell digests apart on a card (the
/// whole digest is on hover).
fn short(d: &str) -> &str {
    d.get(..19).unwrap_or(d)
}

/// The environment's trust at a glance: drift, nothing certified, or trusted.
fn health(c: &BoardColumn) -> Markup {
    let drift = c.running.as_ref().is_some_and(|r| !r.drift.is_empty());
    let failed = c.running.as_ref().is_some_and(|r| !r.succeeded);
    html! {
        @if drift { span.pill.v-rejected.health { "drift" } }
        @else if !c.no_longer_stands.is_empty() { span.pill.v-rejected.health { "no longer stands" } }
        @else if failed { span.pill.v-rejected.health { "rollout failed" } }
        @else if c.certified.is_none() { span.pill.v-none.health { "empty" } }
        @else if c.running.is_none() { span.pill.v-waiting.health { "not reported" } }
        @else { span.pill.v-passed.health { "in sync" } }
    }
}

fn column(c: &BoardColumn, now: Timestamp, policy: &Policy) -> Markup {
    html! {
        section.column data-env=(c.environment) {
            div.head { h2 { (c.environment) } (health(c)) }
            @match &c.certified {
                Some(cert) => div.certified.rolled[cert.by_rollback] {
                    div.label { "Certified" }
                    strong.release { (cert.release) }
                    br;
                    small {
                        @if cert.by_rollback { span.v-rolled-back { "rolled back to" } ", " }
                        "certified " (age(cert.at, now)) " ago · "
                        a href={ "/promotions/" (cert.promotion) } { "promotion" }
                    }
                    @if let Some(s) = &c.standing { (badges(s, c, policy)) }
                    @if !c.no_longer_stands.is_empty() {
                        div.fail.no-longer-stands {
                            strong { "✗ No longer stands: the deploy gate denies it now" }
                            ul { @for r in &c.no_longer_stands { li { (with_short_ids(r, policy)) } } }
                        }
                    }
                },
                None => div.certified.empty { div.label { "Certified" } p.none { "nothing certified" } },
            }
            (running(c.running.as_ref(), c.certified.as_ref().map(|c| c.release.as_str()).zip(c.standing.as_ref()), now))
            @if !c.reviews_due.is_empty() {
                h3.fail { "Break-glass, review due (" (c.reviews_due.len()) ")" }
                ul.pending.reviews-due {
                    @for (id, r) in &c.reviews_due {
                        li.v-rejected-edge data-promotion=(id) {
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
                    @let moot = c.certified.as_ref().is_some_and(|cert| cert.release == p.release);
                    li.v-waiting-edge.moot[moot] data-promotion=(id) {
                        a href={ "/promotions/" (id) } { (p.release) }
                        " by " (p.requested_by) ", " (age(p.requested_at, now))
                        @if moot {
                            br;
                            small.none { "already certified here by another promotion: nothing waits on this one" }
                        }
                        @for b in &p.blocking {
                            br;
                            @if b.status == Status::Fail {
                                span.fail title=(b.reason) { "✗ " (b.gate) }
                            } @else if b.gate == "approvals" {
                                span.warn.approvals title=(b.reason) { "○ approvals " (approval_count(&b.reason)) }
                            } @else {
                                span.warn title=(b.reason) { "○ " (b.gate) }
                            }
                        }
                    }
                }
            }
            @if !c.recent.is_empty() {
                h3 { "Recent" }
                ul.pending.recent {
                    @for o in &c.recent {
                        @let (class, verb) = match o.kind {
                            OutcomeKind::Rejected => ("v-rejected", "rejected"),
                            OutcomeKind::RolledBack => ("v-rolled-back", "rolled back"),
                        };
                        li data-outcome=(verb) {
                            span class={ "pill " (class) } { (verb) } " "
                            a href={ "/promotions/" (o.promotion) } { (o.release) }
                            ", " (age(o.at, now)) " ago"
                            br;
                            small title=(o.detail) { (truncated(&o.detail, 70)) }
                        }
                    }
                }
            }
        }
    }
}

/// `N of M` from the approvals gate's waiting reason (`N of M approvals; not counted: …`).
fn approval_count(reason: &str) -> &str {
    reason
        .split(';')
        .next()
        .and_then(|r| r.strip_suffix(" approvals"))
        .unwrap_or("")
}

/// At most `max` characters of `s`, with an ellipsis if cut.
fn truncated(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

/// A badge for one gate of the certifying decision: passed green, waiting amber, failed red.
fn badge(id: &str, text: &str, status: Status, title: &str) -> Markup {
    let class = match status {
        Status::Pass => "v-passed",
        Status::Fail => "v-rejected",
        _ => "v-waiting",
    };
    html! { span class={ "badge " (class) } data-badge=(id) title=(title) { (text) } }
}

/// The certified release's badges: its certification's gates, as the deploy gate judges
/// them now (a release that no longer stands has no green evidence badge, and one standing
/// only by an exception since says so).
fn badges(s: &Standing, c: &BoardColumn, policy: &Policy) -> Markup {
    let denied_now = !c.no_longer_stands.is_empty();
    let (passed, not_passed) = s.evidence_counts();
    let evidence_title: Vec<String> = s
        .gates
        .iter()
        .filter(|g| custody_app::is_evidence(g.gate))
        .map(|g| format!("{}: {}", g.gate, g.reason))
        .collect();
    html! {
        div.badges {
            @match &s.signing_key {
                Some(key) => @match policy.named_key(key) {
                    Some(k) => (badge("signature", &format!("✓ signed: {}", k.name), Status::Pass,
                        &format!("release manifest signed by {} ({} signature(s))", key_text(policy, key), s.signatures))),
                    // Trusted when it was certified, not by the policy in force (rotated
                    // out, or revoked): not a green badge.
                    None => (badge("signature", "⚠ signed by a key no longer trusted", Status::Fail,
                        &format!("release manifest signed by key {key}, trusted when it was certified; the policy in force does not trust it"))),
                },
                None => (badge("signature", "✗ unsigned", Status::Fail, "no signature by a trusted release key")),
            }
            @if let Some(g) = s.gate(Gate::Provenance) {
                @let text = if g.status == Status::Pass { "✓ provenance" } else { "✗ provenance" };
                (badge("provenance", text, g.status, &g.reason))
            }
            @if passed + not_passed > 0 {
                @let text = if not_passed == 0 {
                    format!("✓ evidence {passed} passed")
                } else {
                    format!("✗ evidence {passed} passed, {not_passed} failed")
                };
                @let status = if not_passed == 0 { Status::Pass } else { Status::Fail };
                @if denied_now && status == Status::Pass {
                    (badge("evidence", &format!("⚠ evidence {passed} passed when certified"), Status::Warn,
                        &format!("when certified:\n{}\n\nnow:\n{}", evidence_title.join("\n"), c.no_longer_stands.join("\n"))))
                } @else {
                    (badge("evidence", &text, status, &evidence_title.join("\n")))
                }
            }
            // What passed only because an exception waived a finding is not a clean pass,
            // when certified or now.
            @let waived: Vec<&str> = s.gates.iter()
                .filter(|g| g.status == Status::Pass && g.reason.contains(custody_policy::WAIVED))
                .map(|g| g.reason.as_str())
                .chain(c.by_exception.iter().map(String::as_str))
                .collect();
            @if !waived.is_empty() {
                (badge("exception", "⚠ by exception", Status::Warn, &waived.join("\n")))
            }
            @match s.approvals {
                (n, Some(quorum)) => {
                    @let status = if n >= quorum as usize { Status::Pass } else { Status::Fail };
                    (badge("approvals", &format!("approvals {n} of {quorum}"), status,
                        &s.gate(Gate::Approvals).map(|g| g.reason.clone()).unwrap_or_default()))
                },
                (_, None) => span.badge.v-none data-badge="approvals" { "no approvals needed" },
            }
            @if s.break_glass {
                (badge("break-glass", "⚠ break-glass", Status::Fail, "entered by break-glass: gates were overridden"))
            }
        }
    }
}

/// What deploy tooling last reported running, beside the release certified here (and
/// its artifacts' digests).
fn running(r: Option<&Running>, certified: Option<(&str, &Standing)>, now: Timestamp) -> Markup {
    // A failed rollout of another release may still be what runs: its digests are not the
    // certified release's, and the deploy gate denies them.
    let not_certified = |d: &custody_model::Digest| {
        certified.is_some_and(|(_, s)| !s.artifacts.contains(&d.to_string()))
    };
    html! {
        @match r {
            None => div.running.unknown { div.label { "Running" } p.none { "no deploy reported" } },
            Some(r) => div.running.drift[!r.drift.is_empty()] {
                div.label { "Running" }
                @if r.drift.is_empty() && r.succeeded {
                    span.v-passed { "✓ matches certified" }
                } @else if !r.succeeded {
                    span.fail { "✗ rollout failed" }
                }
                @if !r.drift.is_empty() {
                    p.fail.drift-note { "DRIFT: never certified here" }
                } @else if !r.succeeded && r.digests.iter().any(not_certified) {
                    @if let Some((release, _)) = certified {
                        p.fail.failed-rollout {
                            "May still run what failed to roll out, not " (release) ": the deploy gate denies these digests"
                        }
                    }
                }
                ul.digests {
                    @for d in &r.digests {
                        @let drifted = r.drift.contains(d) || (!r.succeeded && not_certified(d));
                        li.drifted[drifted] { code title=(d) { (short(&d.to_string())) } }
                    }
                }
                small { "reported by " (r.by) " " (age(r.at, now)) " ago" }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_model::Digest;

    #[test]
    fn the_approval_count_comes_from_the_waiting_reason() {
        assert_eq!(approval_count("1 of 2 approvals"), "1 of 2");
        assert_eq!(
            approval_count("0 of 1 approvals; not counted: rita (requested it)"),
            "0 of 1"
        );
        assert_eq!(approval_count("rejected by bob"), "");
    }

    #[test]
    fn long_details_are_cut_on_a_character_boundary() {
        assert_eq!(truncated("ééé", 2), "éé…");
        assert_eq!(truncated("abc", 3), "abc");
    }

    /// The starter-like policy of one environment, trusting no release key.
    fn policy() -> Policy {
        let mut files = std::collections::BTreeMap::new();
        files.insert(
            "custody.toml".to_owned(),
            "version = 1\n[[environment]]\nname = \"production\"\n".to_owned(),
        );
        custody_policy::compile(&custody_policy::Bundle { files }).unwrap()
    }

    fn standing(gates: Vec<custody_policy::GateResult>) -> Standing {
        Standing {
            signing_key: Some("ab".repeat(32)),
            signatures: 1,
            gates,
            approvals: (0, None),
            break_glass: false,
            artifacts: Vec::new(),
        }
    }

    #[test]
    fn a_key_the_policy_no_longer_trusts_is_no_green_badge() {
        let html = badges(&standing(Vec::new()), &column(), &policy()).into_string();
        assert!(
            html.contains("⚠ signed by a key no longer trusted") && html.contains("v-rejected"),
            "{html}"
        );
        assert!(!html.contains("✓ signed"), "{html}");
    }

    #[test]
    fn a_gate_passed_by_exception_shows_as_such() {
        let waived = custody_policy::GateResult {
            gate: Gate::Vulnerabilities,
            status: Status::Pass,
            reason: format!(
                "no finding at or above high {} CVE-2024-3094 in app (exception x-1)",
                custody_policy::WAIVED
            ),
        };
        let html = badges(&standing(vec![waived.clone()]), &column(), &policy()).into_string();
        assert!(
            html.contains("data-badge=\"exception\"") && html.contains("⚠ by exception"),
            "{html}"
        );
        let clean = custody_policy::GateResult {
            reason: "no finding at or above high".into(),
            ..waived
        };
        let html = badges(&standing(vec![clean.clone()]), &column(), &policy()).into_string();
        assert!(!html.contains("by exception"), "{html}");
        // Clean when certified, waived now (a scan since found what an exception waives).
        let now_waived = BoardColumn {
            by_exception: vec!["by exception, not a clean pass: vulnerabilities: …".into()],
            ..column()
        };
        let html = badges(&standing(vec![clean]), &now_waived, &policy()).into_string();
        assert!(html.contains("⚠ by exception"), "{html}");
    }

    #[test]
    fn a_release_that_no_longer_stands_has_no_green_evidence_badge() {
        let passed = custody_policy::GateResult {
            gate: Gate::Vulnerabilities,
            status: Status::Pass,
            reason: "no finding at or above high".into(),
        };
        let html = badges(&standing(vec![passed.clone()]), &column(), &policy()).into_string();
        assert!(html.contains("✓ evidence 1 passed"), "{html}");
        let denied = BoardColumn {
            no_longer_stands: vec!["vulnerabilities: CVE-2024-3094 in app".into()],
            ..column()
        };
        let html = badges(&standing(vec![passed]), &denied, &policy()).into_string();
        assert!(
            html.contains("⚠ evidence 1 passed when certified") && !html.contains("✓ evidence"),
            "{html}"
        );
    }

    fn column() -> BoardColumn {
        BoardColumn {
            environment: "production".into(),
            certified: None,
            pending: Vec::new(),
            more_pending: false,
            reviews_due: Vec::new(),
            standing: None,
            running: None,
            recent: Vec::new(),
            no_longer_stands: Vec::new(),
            by_exception: Vec::new(),
        }
    }

    #[test]
    fn a_short_digest_keeps_the_algorithm_and_twelve_digits() {
        let d: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!(short(&d.to_string()), "sha256:abababababab");
    }
}
