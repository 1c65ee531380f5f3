//! Alerts: what the rules see in the ledger (a signature that does not verify, a digest
//! running that was never certified, a provenance discrepancy, break-glass used or its
//! review rejected), in the clock (an approval waiting past its SLA, an approval or piece of
//! evidence a waiting promotion needs about to lapse, a break-glass review overdue), in the
//! ledger's periodic re-check (server `alerting/`) and in the access log (repeated
//! denials); each one recorded once in the ledger and queued for every webhook in the same
//! append.
//!
//! Invariants:
//! - An alert's id is derived from what raised it, and raising is idempotent on that id:
//!   however many servers or restarts see the same cause, it is recorded and queued once.
//! - The outbox is state written only together with an event (`alert.raised`,
//!   `alert.delivered`, `alert.delivery_failed`): a delivery is never dropped; one that
//!   keeps failing stays queued, retried with a capped backoff, and shown.
//!
//! The rules that read the clock are in `due` (what waits too long or is about to lapse)
//! and `clock` (the ledger's own times, watched).

use custody_model::{Timestamp, Verdict};
use custody_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::{Actor, App, event, expect_version, idempotency, write};
use crate::events::{self, Event, EventBody};
use crate::records::kind;
use crate::{AppError, AppResult};

mod clock;
mod due;

pub use clock::*;
pub use due::*;

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Derived from its cause (the same cause, the same id).
    pub id: String,
    /// The rule that raised it.
    pub rule: String,
    /// `critical` or `warning`.
    pub severity: String,
    /// One line for people (the webhook's Slack-compatible `text`).
    pub text: String,
    /// What it is about (environment, promotion, artifacts, ledger index…).
    pub subject: Value,
}

impl Alert {
    /// When what raised it happened: the time of the ledger event that raised it (its
    /// subject's `at`), where an event did. Raised when a server first saw the event,
    /// which for a server started after the fact (or a backfilled ledger) is later.
    pub fn occurred_at(&self) -> Option<Timestamp> {
        self.subject.get("at")?.as_str()?.parse().ok()
    }
}

/// An alert waiting to reach one webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The alert.
    pub alert: Alert,
    /// The webhook's name.
    pub webhook: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Not before this time.
    pub next_at: Timestamp,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// Every delivery not yet made.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outbox {
    /// Oldest first.
    pub deliveries: Vec<Delivery>,
}

/// The latest alerts, newest last (at most [`RECENT_KEPT`]), kept with each alert so that
/// showing them reads one record, not the ledger.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RecentAlerts {
    /// The alert and when it was raised (its `alert.raised` event is in the ledger).
    pub alerts: Vec<(Alert, Timestamp)>,
}

/// Alerts kept in [`RecentAlerts`].
pub const RECENT_KEPT: usize = 200;

/// The longest wait between two attempts.
const MAX_BACKOFF_SECONDS: i64 = 300;

/// The actor custody's own alerting acts as.
pub const ALERTING: &str = "custody-alerts";

/// The alerts one ledger event raises (pure).
pub fn alerts_for_event(index: u64, event: &Event) -> Vec<Alert> {
    let mut out = Vec::new();
    let about = |promotion: &str, environment: &str| json!({"promotion": promotion, "environment": environment, "ledger_index": index});
    match &event.body {
        EventBody::DecisionRecorded(d) => {
            for g in &d.gates {
                let gate = g.gate.to_string();
                let failed = g.status == custody_policy::Status::Fail;
                if failed && (gate == "release-signature" || gate == "provenance") {
                    out.push(Alert {
                        id: format!("signature:{index}:{gate}"),
                        rule: "missing-or-invalid-signature".into(),
                        severity: "critical".into(),
                        text: format!(
                            "{} → {}: {} gate failed: {}",
                            d.release, d.environment, gate, g.reason
                        ),
                        subject: about(&d.promotion, &d.environment),
                    });
                }
            }
            if let (true, Some(reason)) = (d.allowed, &d.break_glass) {
                out.push(Alert {
                    id: format!("break-glass:{}", d.promotion),
                    rule: "break-glass-used".into(),
                    severity: "critical".into(),
                    text: format!(
                        "{} broke glass: {} certified in {} past its gates ({reason}); an after-the-fact review is due ({})",
                        event.actor, d.release, d.environment, d.promotion
                    ),
                    subject: about(&d.promotion, &d.environment),
                });
            }
        }
        // Every change of the policy in force is announced; the first policy of an instance
        // changes nothing and is not.
        EventBody::PolicyApplied(p) if p.previous.is_some() => {
            let looser: Vec<&str> = p
                .changes
                .iter()
                .filter(|c| c.direction == custody_policy::Direction::Looser)
                .map(|c| c.what.as_str())
                .collect();
            let how = if p.bootstrap {
                format!(
                    "{} put it in force without approvals (bootstrap)",
                    event.actor
                )
            } else {
                format!(
                    "proposed by {}, approved by {}",
                    p.proposed_by.as_deref().unwrap_or(&event.actor),
                    p.approvers.join(", ")
                )
            };
            out.push(Alert {
                id: format!("policy-changed:{index}"),
                rule: "policy-changed".into(),
                severity: if looser.is_empty() { "warning" } else { "critical" }.into(),
                text: format!(
                    "policy {} in force ({how}); {} change(s){}",
                    p.policy.get(..19).unwrap_or(&p.policy),
                    p.changes.len(),
                    if looser.is_empty() {
                        String::new()
                    } else {
                        format!(", looser: {}", looser.join("; "))
                    }
                ),
                subject: json!({"policy": p.policy, "proposal": p.proposal, "approvers": p.approvers, "ledger_index": index}),
            });
        }
        EventBody::ApprovalRecorded(a) if a.after_the_fact && a.verdict == Verdict::Reject => {
            out.push(Alert {
                id: format!("break-glass-rejected:{}", a.approval),
                rule: "break-glass-review-rejected".into(),
                severity: "critical".into(),
                text: format!(
                    "{} rejected, after the fact, the break-glass promotion of {} into {} ({}): {}",
                    event.actor,
                    a.release,
                    a.environment,
                    a.promotion,
                    a.shown_rationale("(confidential rationale)")
                ),
                subject: about(&a.promotion, &a.environment),
            });
        }
        EventBody::DeployReported(r) if !r.drift.is_empty() => {
            let drift: Vec<String> = r.drift.iter().map(ToString::to_string).collect();
            out.push(Alert {
                id: format!("digest-mismatch:{index}"),
                rule: "digest-mismatch".into(),
                severity: "critical".into(),
                text: format!(
                    "{} reports {} running in {} that was never certified there: {}",
                    event.actor,
                    if drift.len() == 1 { "a digest" } else { "digests" },
                    r.environment,
                    drift.join(", ")
                ),
                subject: json!({"environment": r.environment, "digests": drift, "ledger_index": index}),
            });
        }
        EventBody::KeyRevoked(r) => {
            let key = r.keys.first().map_or("?", |k| k.key.as_str());
            out.push(Alert {
                id: format!("key-revoked:{index}"),
                rule: "key-revoked".into(),
                severity: "critical".into(),
                text: format!(
                    "{} revoked {} key {key}{}: {}; {}",
                    event.actor,
                    r.purpose.describe(),
                    r.compromised_since
                        .map(|c| format!(" (compromised since {})", c.to_second()))
                        .unwrap_or_default(),
                    r.reason,
                    if r.affected.is_empty() {
                        "nothing recorded since then depends on it".to_owned()
                    } else {
                        format!(
                            "no longer trusted, until re-signed, re-built or re-approved: {}",
                            r.affected.join("; ")
                        )
                    }
                ),
                subject: json!({"key": key, "successors": r.successors, "affected": r.affected, "ledger_index": index}),
            });
        }
        EventBody::ProvenanceDiscrepancy(p) => {
            let digests: Vec<String> = p.artifacts.iter().map(ToString::to_string).collect();
            out.push(Alert {
                id: format!("discrepancy:{index}"),
                rule: "provenance-discrepancy".into(),
                severity: "critical".into(),
                text: format!(
                    "two builds of the same source and parameters disagree: {}",
                    digests.join(" vs ")
                ),
                subject: json!({"ledger_index": index, "artifacts": digests}),
            });
        }
        _ => {}
    }
    for a in &mut out {
        if let Value::Object(subject) = &mut a.subject {
            subject.insert("at".into(), json!(event.at.to_string()));
        }
    }
    out
}

impl<S: Store> App<S> {
    /// Records `alert` and queues it for each of `webhooks`, once: `false` if an alert with
    /// its id was raised before (by this server or another).
    pub async fn raise_alert(
        &self,
        alert: &Alert,
        webhooks: &[String],
        now: Timestamp,
    ) -> AppResult<bool> {
        let actor =
            Actor::new(ALERTING, now)?.authenticated_by(custody_model::Authentication::System);
        let key = idempotency("alert", &alert.id, &json!({"alert": alert.id}))?;
        self.retrying(|| async {
            let stored = self.get::<Outbox>(kind::OUTBOX, "alerts").await?;
            let expect = expect_version(&stored);
            let mut outbox = stored.map(|o| o.value).unwrap_or_default();
            for w in webhooks {
                outbox.deliveries.push(Delivery {
                    alert: alert.clone(),
                    webhook: w.clone(),
                    attempts: 0,
                    next_at: now,
                    last_error: None,
                });
            }
            let recent_stored = self.get::<RecentAlerts>(kind::OUTBOX, "recent").await?;
            let recent_expect = expect_version(&recent_stored);
            let mut recent = recent_stored.map(|r| r.value).unwrap_or_default();
            recent.alerts.push((alert.clone(), now));
            if recent.alerts.len() > RECENT_KEPT {
                recent.alerts.remove(0);
            }
            let events = vec![event(
                &actor,
                EventBody::AlertRaised(events::AlertRaised {
                    alert: alert.id.clone(),
                    rule: alert.rule.clone(),
                    severity: alert.severity.clone(),
                    text: alert.text.clone(),
                    subject: alert.subject.clone(),
                    webhooks: webhooks.to_vec(),
                }),
            )?];
            let state = vec![
                write(kind::OUTBOX, "alerts", &outbox, expect)?,
                write(kind::OUTBOX, "recent", &recent, recent_expect)?,
            ];
            let appended = self.append(events, state, Some(key.clone())).await?;
            Ok(!appended.replayed)
        })
        .await
    }

    /// The latest alerts, newest first.
    pub async fn recent_alerts(&self) -> AppResult<Vec<(Alert, Timestamp)>> {
        let mut alerts = self
            .get::<RecentAlerts>(kind::OUTBOX, "recent")
            .await?
            .map(|r| r.value.alerts)
            .unwrap_or_default();
        alerts.reverse();
        Ok(alerts)
    }

    /// The deliveries not yet made.
    pub async fn outbox(&self) -> AppResult<Vec<Delivery>> {
        Ok(self
            .get::<Outbox>(kind::OUTBOX, "alerts")
            .await?
            .map(|o| o.value.deliveries)
            .unwrap_or_default())
    }

    /// Records one delivery attempt of `alert` to `webhook`: delivered, it leaves the
    /// outbox; failed, it stays with its error and waits twice as long as last time
    /// (at most five minutes) before the next one.
    pub async fn delivery_attempted(
        &self,
        alert: &str,
        webhook: &str,
        outcome: Result<(), String>,
        now: Timestamp,
    ) -> AppResult<()> {
        let actor =
            Actor::new(ALERTING, now)?.authenticated_by(custody_model::Authentication::System);
        self.retrying(|| async {
            let stored = self.get::<Outbox>(kind::OUTBOX, "alerts").await?;
            let expect = expect_version(&stored);
            let mut outbox = stored.map(|o| o.value).unwrap_or_default();
            let Some(i) = outbox
                .deliveries
                .iter()
                .position(|d| d.alert.id == alert && d.webhook == webhook)
            else {
                return Ok(()); // another server recorded it first
            };
            let attempts = outbox.deliveries[i].attempts + 1;
            let event = match &outcome {
                Ok(()) => {
                    outbox.deliveries.remove(i);
                    event(
                        &actor,
                        EventBody::AlertDelivered(events::AlertDelivered {
                            alert: alert.into(),
                            webhook: webhook.into(),
                            attempts,
                        }),
                    )?
                }
                Err(why) => {
                    let backoff = (1i64 << attempts.min(16)).min(MAX_BACKOFF_SECONDS);
                    let d = &mut outbox.deliveries[i];
                    d.attempts = attempts;
                    d.last_error = Some(why.clone());
                    d.next_at = Timestamp::from_unix_seconds(now.unix_seconds() + backoff)
                        .map_err(|e| AppError::invalid(e.to_string()))?;
                    event(
                        &actor,
                        EventBody::AlertDeliveryFailed(events::AlertDeliveryFailed {
                            alert: alert.into(),
                            webhook: webhook.into(),
                            attempts,
                            error: why.clone(),
                        }),
                    )?
                }
            };
            self.append(
                vec![event],
                vec![write(kind::OUTBOX, "alerts", &outbox, expect)?],
                None,
            )
            .await?;
            Ok(())
        })
        .await
    }
}

/// The alert for a ledger that fails its check: a leaf, a stored hash or a checkpoint that
/// does not agree with the rest, or a head that does not extend the one seen before.
pub fn ledger_inconsistent_alert(why: &str) -> Alert {
    let cause = crate::attestations::sha256(why.as_bytes());
    Alert {
        id: format!("ledger-inconsistent:{}", &cause.hex()[..16]),
        rule: "ledger-consistency-failure".into(),
        severity: "critical".into(),
        text: format!("the ledger failed its consistency check: {why}"),
        subject: json!({"reason": why}),
    }
}

/// The alert for a state record that differs from what the ledger says of it (someone
/// edited the database behind the ledger), once per record and difference.
pub fn state_mismatch_alert(difference: &crate::StateDifference) -> Alert {
    let cause = crate::attestations::sha256(difference.to_string().as_bytes());
    Alert {
        id: format!("state-mismatch:{}", &cause.hex()[..16]),
        rule: "state-mismatch".into(),
        severity: "critical".into(),
        text: format!(
            "a state record does not match the ledger (custody refuses to act on it): {difference}"
        ),
        subject: json!({"record": difference.record, "difference": difference.what}),
    }
}

/// The alert for a principal denied again and again.
pub fn denied_access_alert(principal: &str, denials: usize, window_start: &str) -> Alert {
    Alert {
        id: format!("denied:{principal}:{window_start}"),
        rule: "repeated-denied-access".into(),
        severity: "warning".into(),
        text: format!("{principal} was denied {denials} times since {window_start}"),
        subject: json!({"principal": principal}),
    }
}
