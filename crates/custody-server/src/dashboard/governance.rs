//! `GET /policy`: the policy in force, who may change it, and every change proposed with
//! what it loosens or tightens, who approved it and where it stands.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use custody_model::Verdict;
use custody_policy::Direction;
use maud::html;

use super::{Viewer, when};
use crate::ServerState;

/// Policy versions the page lists, newest first.
const VERSIONS_SHOWN: u64 = 50;

/// `GET /policy`.
pub(crate) async fn policy(
    State(s): State<Arc<ServerState>>,
    v: Viewer,
) -> Result<Response, Response> {
    let policy = s.app.policy().await.map_err(|e| v.fail(e))?;
    let proposals = s.app.proposals(false, v.now).await.map_err(|e| v.fail(e))?;
    let versions = s
        .app
        .applied_versions(VERSIONS_SHOWN)
        .await
        .map_err(|e| v.fail(e))?;
    let governance = policy.governance();
    let owners: Vec<&str> = governance.owners.iter().map(|r| r.name()).collect();
    let body = html! {
        h1 { "Policy" }
        p { "In force: " code { (policy.digest()) } }
        p #governance {
            "A change takes effect when " strong { (governance.quorum) } " holder(s) of "
            (owners.join(" or ")) " other than its proposer approve it"
            @if !policy.governed(v.now.unix_seconds()) {
                span.warn { " — not yet governed: too few owners, so the operator puts each version in force alone (recorded as a bootstrap)" }
            }
            "."
        }
        h2 { "Personal keys" }
        @if policy.person_keys().is_empty() {
            p { "None enrolled: approvals count only from a person's own sign-in or token." }
        } @else {
            table #person-keys {
                tr { th { "person" } th { "algorithm" } th { "file" } th { "key id" } }
                @for k in policy.person_keys() {
                    @let file = policy.named_key(&k.key_id).map(|n| n.file.as_str()).unwrap_or("");
                    tr {
                        td { (k.principal) } td { (k.key.algorithm()) } td { code { (file) } }
                        td { code title=(k.key_id) { (k.key_id.get(..12).unwrap_or(&k.key_id)) "…" } }
                    }
                }
            }
        }
        h2 { "Versions put in force" }
        @if versions.is_empty() { p.none { "none yet" } }
        @else {
            table #versions {
                tr { th { "ledger index" } th { "when" } th { "version" } th { "how" } th { "what changed" } }
                @for a in &versions {
                    @let p = &a.applied;
                    tr data-policy=(p.policy) {
                        td { (a.index) }
                        td { (when(a.at)) }
                        td { code title=(p.policy) { (p.policy.get(..19).unwrap_or(&p.policy)) "…" }
                            @if p.policy == policy.digest() { " " span.pill.v-passed { "in force" } } }
                        td {
                            @if p.bootstrap {
                                span.warn { "bootstrap" } ": put in force by " strong { (a.actor) } " alone"
                                @if p.previous.is_none() { " (the instance's first policy)" }
                                @else { " (the policy before it had too few owners to approve a change)" }
                            } @else if let Some(proposal) = &p.proposal {
                                "proposal " a href={ "#" (proposal) } { (proposal) }
                                " by " strong { (p.proposed_by.as_deref().unwrap_or("?")) }
                                ", approved by " (p.approvers.join(", "))
                            } @else {
                                "applied by " strong { (a.actor) } " (before changes were proposals)"
                            }
                        }
                        td {
                            @let looser = p.changes.iter().filter(|c| c.direction == Direction::Looser).count();
                            @let stricter = p.changes.iter().filter(|c| c.direction == Direction::Stricter).count();
                            @if p.previous.is_none() { "the first version" }
                            @else if p.changes.is_empty() { "nothing that changes what the policy allows" }
                            @else {
                                (p.changes.len()) " change(s)"
                                @if looser > 0 { ", " span.warn { (looser) " looser" } }
                                @if stricter > 0 { ", " (stricter) " stricter" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Changes proposed" }
        @if proposals.is_empty() {
            p { "No change has been proposed"
                @if versions.iter().any(|a| a.applied.bootstrap) { " since the bootstrap" } "." }
        }
        @for p in &proposals {
            @let r = &p.record;
            section.proposal id=(r.id) {
                h3 { (r.id) " — " span class=(format!("standing-{}", p.standing)) { (p.standing) } }
                p {
                    "Policy " code { (r.policy) } " proposed by " strong { (r.proposed_by) }
                    " at " (when(r.proposed_at)) "; needs " (r.quorum) " approval(s)"
                    @if p.approvals_needed > 0 { ", " (p.approvals_needed) " still missing" }
                    "."
                }
                table.changes {
                    tr { th { "" } th { "what changes" } }
                    @if r.changes.is_empty() { tr { td {} td { "nothing that changes what the policy allows" } } }
                    @for c in &r.changes {
                        tr {
                            @match c.direction {
                                Direction::Looser => td.warn { "looser" },
                                Direction::Stricter => td { "stricter" },
                                Direction::Neutral => td {},
                            }
                            td { (c.what) }
                        }
                    }
                }
                @if !r.reviews.is_empty() {
                    table.reviews {
                        tr { th { "owner" } th { "verdict" } th { "when" } th { "how" } th { "why" } }
                        @for vote in &r.reviews {
                            tr {
                                td { (vote.by) }
                                td { @if vote.verdict == Verdict::Approve { "approved" } @else { "rejected" } }
                                td { (when(vote.at)) }
                                td { @if vote.statement.is_some() { "signed" } @else { (vote.auth.as_ref().map(|a| a.describe()).unwrap_or_default()) } }
                                td { (vote.rationale) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(v.shown("Policy", body))
}
