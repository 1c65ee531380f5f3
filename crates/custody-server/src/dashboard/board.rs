//! The pipeline board: every environment with its certified release, the promotions
//! waiting to enter it and the break-glass promotions due for review.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use custody_app::BoardColumn;
use custody_model::Timestamp;
use maud::{Markup, html};

use super::{Viewer, age};
use crate::ServerState;

/// How often the board reloads itself (the HTTP `Refresh` header: live without a script).
const BOARD_REFRESH_SECONDS: u32 = 30;

/// `GET /`: the pipeline board.
pub(crate) async fn board(
    State(s): State<Arc<ServerState>>,
    v: Viewer,
) -> Result<Response, Response> {
    let columns = s.app.board().await.map_err(|e| v.fail(e))?;
    let body = html! {
        h1 { "Pipeline" }
        div.board {
            @for c in &columns { (column(c, v.now)) }
        }
        p.none { "As of " (v.now) "; this page refreshes every " (BOARD_REFRESH_SECONDS) " s." }
    };
    let mut r = v.shown("Pipeline", body);
    r.headers_mut().insert(
        axum::http::header::REFRESH,
        axum::http::HeaderValue::from(BOARD_REFRESH_SECONDS),
    );
    Ok(r)
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
                        @for b in &p.blocking {
                            br;
                            @if b.status == custody_policy::Status::Fail {
                                span.fail title=(b.reason) { "✗ " (b.gate) }
                            } @else {
                                span.warn title=(b.reason) { "○ " (b.gate) }
                            }
                        }
                    }
                }
            }
        }
    }
}
