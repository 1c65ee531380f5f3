//! The printable report of a verified bundle, for a regulator: what runs where, how each
//! release got there (who asked, the gates, who approved it and why, what was built from
//! which source and signed by whom, the evidence), which exceptions were in force (gates
//! overridden by break-glass, rollbacks), and what was checked, or what failed.
//!
//! Server-rendered HTML (maud), one self-contained page with the dashboard's style sheet
//! and a print style, no script: it is written by `custody audit verify --html` offline
//! and reads the same on paper.

use custody_app::audit::{CertificationStory, Claims, Confidential, Report};
use custody_policy::Status;
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// The dashboard's style sheet, and what paper needs.
const STYLE: &str = include_str!("dashboard/style.css");
const PRINT: &str = "@media print { header, nav { display: none } section { break-inside: avoid } \
    body { font-size: 10pt } } .fail { color: #b00020; font-weight: bold } .ok { color: #1b5e20 } \
    table { border-collapse: collapse } td, th { padding: 2px 8px; text-align: left; vertical-align: top }";

/// The report as one HTML page.
pub fn render(report: &Report) -> String {
    let c = &report.checked;
    let verdict = if report.ok() {
        "Every check passed"
    } else {
        "Verification FAILED"
    };
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Audit report · " (report.origin) }
                style { (PreEscaped(STYLE)) (PreEscaped(PRINT)) }
            }
            body { main {
                h1 { "Audit report: " (report.origin) }
                p {
                    "Bundle " code { (report.format) } " of log " code { (report.origin) }
                    ", verified offline against the log's public key. Who exported it, when, and what it "
                    "says it covers are the exporter's unverified claims, at the end of this report."
                }
                h2 #verdict class=(if report.ok() { "ok" } else { "fail" }) { (verdict) }
                @if !report.ok() {
                    table #failures {
                        tr { th { "Entry" } th { "Check" } th { "What was found" } }
                        @for f in &report.failures {
                            tr.fail {
                                td { (f.entry.map(|e| e.to_string()).unwrap_or_else(|| "—".into())) }
                                td { (f.check.name()) }
                                td { (f.detail) }
                            }
                        }
                    }
                    p { "What follows is what the entries that did verify say; treat it with the failures above in mind." }
                }
                section {
                    h2 { "What was checked" }
                    table #checked {
                        tr { td { "Checkpoints signed by the log key" } td { (c.checkpoints) } }
                        tr { td { "Consistency proofs between them" } td { (c.consistency_proofs) } }
                        tr { td { "Ledger entries (against the checkpoint of " (report.anchor) " entries)" } td { (c.entries) } }
                        @if report.complete {
                            tr { td { "Checkpoint roots recomputed from the entries" } td { (c.roots_recomputed) } }
                        } @else {
                            tr { td { "Inclusion proofs" } td { (c.inclusion_proofs) } }
                        }
                        tr { td { "Policy versions (the key history)" } td { (c.policies) } }
                        tr { td { "Provenance signatures (builder keys in force)" } td { (c.provenance) } }
                        tr { td { "Release manifest signatures (release keys in force)" } td { (c.manifests) } }
                        tr { td { "Decision receipts (VSAs) signed by the attestor" } td { (c.vsas) } }
                        tr { td { "Evidence statements signed by the attestor" } td { (c.evidence_statements) } }
                        tr { td { "Signed approvals (personal keys in force)" } td { (c.approvals_signed) } }
                        tr { td { "Raw reports, whole (hashing to the digest their evidence names)" } td { (c.reports) } }
                        tr { td { "Decisions replayed to their recorded gates" } td { (c.decisions_replayed) } }
                        tr { td { "Decisions' readings of raw reports, read again from the reports" } td { (c.facts_rederived) " (" (c.facts_unconfirmed) " not confirmed)" } }
                        tr { td { "Confidential rationales checked / withheld" } td { (c.rationales_checked) " / " (c.rationales_withheld) } }
                        tr { td { "Certifications traced to their lineage" } td { (c.certifications) } }
                    }
                    @if let Some(root) = &report.anchor_root {
                        p { "Root of the checkpoint of " (report.anchor) " entries: " code { (root) } }
                    }
                    p #truncation class=(if report.truncation.checked { "" } else { "fail" }) {
                        "Completeness against truncation: " (report.truncation.summary)
                    }
                }
                section {
                    @if report.complete {
                        h2 { "What runs where" }
                        p { "As of the checkpoint of " (report.anchor) " entries, the whole ledger up to it verified." }
                    } @else {
                        h2 { "The latest certification in this bundle" }
                        p {
                            "This bundle holds part of the ledger, not all of it: "
                            "a later certification may lie outside it. Export the whole ledger to know what runs where."
                        }
                    }
                    table #environments {
                        tr { th { "Environment" } th { "Certified release" } th { "Since entry" } }
                        @for e in &report.story.environments {
                            tr.withdrawn[e.trust_withdrawn] {
                                td { (e.name) } td { (e.release) (if e.trust_withdrawn { " (trust withdrawn)" } else { "" }) } td { (e.since_entry) }
                            }
                        }
                    }
                }
                @let exceptions: Vec<&CertificationStory> = report.story.certifications.iter().filter(|c| !c.overridden.is_empty()).collect();
                section {
                    h2 { "Exceptions in force" }
                    @if exceptions.is_empty() && report.story.rollbacks.is_empty() {
                        @if report.complete {
                            p { "No gate was overridden and no environment was rolled back." }
                        } @else {
                            // A part of the ledger cannot show a negative about the rest.
                            p { "No gate was overridden and no environment was rolled back in the entries of this bundle; it holds a part of the ledger, so exceptions outside it are not shown." }
                        }
                    }
                    ul #exceptions {
                        @for c in &exceptions {
                            li {
                                (c.release) " entered " (c.environment) " by break-glass (" (c.requested_by) ": "
                                (c.break_glass.as_deref().unwrap_or("")) "), overriding " (c.overridden.join(", "))
                            }
                        }
                        @for r in &report.story.rollbacks {
                            li {
                                (r.environment) " rolled back from " (r.from) " to " (r.to) " at " (second(&r.at))
                                (if r.automatic { " (automatically, after a failed deploy)" } else { "" }) ": " (r.reason)
                            }
                        }
                    }
                }
                @if !report.story.withdrawn.is_empty() {
                    section {
                        h2 { "Trust withdrawn since" }
                        p { "These signatures counted when the ledger recorded them; a later revocation says their key was compromised by then. The decisions made with them replay as recorded; what they vouch for is no longer trusted." }
                        ul #withdrawn {
                            @for w in &report.story.withdrawn {
                                li {
                                    "entry " (w.entry) ": " (w.what) " " (w.name) ", signed by key " (w.key)
                                    ", revoked at entry " (w.revoked_at_entry) " (" (w.reason) ") with effect from " (second(&w.cutoff))
                                    @if !w.environments.is_empty() { "; " (w.environments.join(", ")) " rest(s) on it" }
                                }
                            }
                        }
                    }
                }
                section {
                    h2 { "How each release got there" }
                    @for cert in &report.story.certifications { (certification(cert)) }
                }
                @if !report.notes.is_empty() {
                    section { h2 { "Notes" } ul { @for n in &report.notes { li { (n) } } } }
                }
                (unverified(&report.unverified))
            } }
        }
    };
    page.into_string()
}

/// The manifest's claims, in their own section and said to be unverified: nothing signs
/// them, so they are never among the verified facts above.
fn unverified(u: &Claims) -> Markup {
    html! {
        section #unverified {
            h2 { "Unverified: as claimed by the exporter" }
            p { "The bundle's manifest (bundle.json) says the following. Nothing signs it: the exporter, or anyone who handled the bundle, could have written anything here." }
            table {
                tr { td { "Scope" } td { (u.scope.to_string()) } }
                tr { td { "Exported by" } td { (u.exported_by) } }
                tr { td { "Exported at" } td { (second(&u.exported_at)) } }
                tr { td { "Confidential rationales" } td { (match u.confidential { Confidential::Included => "included", Confidential::Withheld => "withheld from this bundle" }) } }
            }
        }
    }
}

fn certification(c: &CertificationStory) -> Markup {
    html! {
        section.certification id={ "entry-" (c.entry) } {
            h3 { (c.release) " → " (c.environment) " (entry " (c.entry) ", " (second(&c.at)) ")" }
            p {
                "Requested by " (c.requested_by) " at " (second(&c.requested_at)) " (promotion " code { (c.promotion) } "); "
                "decided at " (second(&c.decided_at)) " by decision " code { (c.decision) } " under policy " code { (c.policy) } "."
                " Release created by " (c.created_by) ", manifest " code { (c.release_digest) }
                @if let Some(k) = &c.release_key { ", signed by release key " code { (k) } } "."
            }
            table.gates {
                tr { th { "Gate" } th { "Verdict" } th { "Why" } }
                @for g in &c.gates {
                    tr class=(if g.status == Status::Pass { "" } else { "fail" }) {
                        td { (g.gate.name()) } td { (format!("{:?}", g.status).to_lowercase()) } td { (g.reason) }
                    }
                }
            }
            h4 { "Who approved it, and why" }
            @if c.approvals.is_empty() { p { "No review was needed." } }
            ul {
                @for a in &c.approvals {
                    li {
                        (a.by) " " (if a.approve { "approved" } else { "rejected" })
                        (if a.after_the_fact { " after the fact" } else { "" })
                        " at " (second(&a.at)) " (risk " (a.risk) "): "
                        @match &a.rationale {
                            Some(r) => { q { (r) } (if a.confidential { " (confidential)" } else { "" }) }
                            None => { em { "confidential rationale withheld from this bundle (its commitment is in entry " (a.entry) ")" } }
                        }
                    }
                }
            }
            h4 { "What was released" }
            table.artifacts {
                tr { th { "Artifact" } th { "Digest" } th { "Built by, from" } th { "Provenance key" } th { "Evidence" } }
                @for a in &c.artifacts {
                    tr {
                        td { (a.name) } td { code title=(a.digest) { (short(&a.digest)) } }
                        td { (a.builder_id.as_deref().unwrap_or("—")) br; (a.source.as_deref().unwrap_or("")) }
                        td { code title=(a.provenance_key.as_deref().unwrap_or("")) { (a.provenance_key.as_deref().map_or("—".to_owned(), short)) } }
                        td { (a.evidence.join(", ")) }
                    }
                }
            }
        }
    }
}

/// The first 16 hex digits of a digest or key id, for a table a person reads (the whole
/// value is the cell's title).
fn short(id: &str) -> String {
    let (prefix, hex) = id.split_once(':').map_or(("", id), |(p, h)| (p, h));
    let head = hex.get(..16).unwrap_or(hex);
    match prefix {
        "" => format!("{head}…"),
        p => format!("{p}:{head}…"),
    }
}

/// A recorded time (RFC 3339, as the report carries it) to the second, for people (the
/// JSON report keeps the full precision); anything else as it is.
fn second(t: &str) -> String {
    t.parse::<custody_model::Timestamp>()
        .map_or_else(|_| t.to_owned(), |t| t.to_second().to_string())
}
