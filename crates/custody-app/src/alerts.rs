//! Alerts: what the rules see in the ledger (a signature that does not verify, a digest
//! running that was never certified, a provenance discrepancy, break-glass used or its
//! review rejected), in the clock (an approval waiting past its SLA, an approval or piece of
//! evidence a waiting promotion needs about to lapse, a break-glass review overdue), in the
//! ledger's periodic re-check (server `alerting.rs`) and in the access log (repeated
//! denials); each one recorded once in the ledger and queued for every webhook in the same
//! append.
//!
//! Invariants:
//! - An alert's id is derived from what raised it, and raising is idempotent on that id:
//!   however many servers or restarts see the same cause, it is recorded and queued once.
//! - The outbox is state written only together with an event (`alert.raised`,
//!   `alert.delivered`, `alert.delivery_failed`): a delivery is never dropped; one that
//!   keeps failing stays queued, retried with a capped backoff, and shown.

use custody_model::{Timestamp, Verdict};
use custody_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::{Actor, App, event, expect_version, idempotency, write};
use crate::events::{self, Event, EventBody};
use crate::records::kind;
use crate::{AppError, AppResult};

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
                    if a.confidential {
                        "(confidential rationale)"
                    } else {
                        a.rationale.as_deref().unwrap_or("")
                    }
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

/// The alert for a promotion waiting for approval longer than its SLA.
pub fn approval_sla_alert(
    promotion: &str,
    release: &str,
    environment: &str,
    waited_seconds: i64,
) -> Alert {
    Alert {
        id: format!("approval-sla:{promotion}"),
        rule: "approval-waiting-past-sla".into(),
        severity: "warning".into(),
        text: format!(
            "{release} → {environment} has waited {}h for approval ({promotion})",
            waited_seconds / 3600
        ),
        subject: json!({"promotion": promotion, "environment": environment}),
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

/// How far an entry may be stamped before the latest time of the entries ahead of it
/// without notice: servers' clocks differ a little, and writers race (the same bound
/// `audit verify` notes).
pub const TIME_SKEW_SECONDS: i64 = 300;

/// Watches the ledger's times as its tail is read in order, for an entry stamped well
/// before an earlier one (a clock turned back, or a backfill with `CUSTODY_NOW` on the data
/// directory, as `custody demo` makes) or well after the watcher's own clock (set
/// forward). Whatever was judged by time at such an entry (an approval's or an
/// exception's expiry, evidence's age, an exception's longest term) was judged by that
/// clock, which nobody else read: the alert puts a person in the loop, as `audit verify`'s
/// note does after the fact. Set back: once where a run of entries behind the latest time
/// starts, and again wherever an entry is set back from the one before it (a second trip
/// back inside the run). Set forward: where a run of entries ahead of the clock starts.
#[derive(Debug, Default)]
pub struct ClockWatch {
    /// The latest time so far, and its entry.
    latest: Option<(u64, Timestamp)>,
    /// The entry before, and its time.
    previous: Option<(u64, Timestamp)>,
    /// The entry before was stamped behind `latest`.
    behind: bool,
    /// The entry before was stamped ahead of the clock.
    ahead: bool,
}

impl ClockWatch {
    /// Sees entry `index`, stamped `at`, at `now` by the watcher's clock (entries in ledger
    /// order, from the first): the alert it calls for, if any.
    pub fn see(&mut self, index: u64, at: Timestamp, now: Timestamp) -> Option<Alert> {
        let previous = self.previous.replace((index, at));
        let ahead = at.unix_seconds() - now.unix_seconds() > TIME_SKEW_SECONDS;
        let starts_ahead = ahead && !std::mem::replace(&mut self.ahead, ahead);
        let Some((before, latest)) = self.latest else {
            self.latest = Some((index, at));
            return starts_ahead.then(|| ahead_alert(index, at, now));
        };
        if at > latest {
            self.latest = Some((index, at));
        }
        let back = latest.unix_seconds() - at.unix_seconds();
        if back <= TIME_SKEW_SECONDS {
            self.behind = false;
            return starts_ahead.then(|| ahead_alert(index, at, now));
        }
        let starts = !std::mem::replace(&mut self.behind, true);
        // Inside a run, set back again from the entry just before.
        let again =
            previous.filter(|(_, p)| p.unix_seconds() - at.unix_seconds() > TIME_SKEW_SECONDS);
        let (from, from_at) = match (starts, again) {
            (true, _) => (before, latest),
            (false, Some(p)) => p,
            (false, None) => return None,
        };
        let back = from_at.unix_seconds() - at.unix_seconds();
        Some(Alert {
            id: format!("time-went-back:{index}"),
            rule: "ledger-time-went-back".into(),
            severity: "warning".into(),
            text: format!(
                "ledger entry {index} is stamped {}, {}h{:02}m before entry {from} ({}): a clock turned back, or a backfill with CUSTODY_NOW (custody demo makes one); what was judged there by time (approval and exception expiry, evidence age) was judged by that clock",
                at.to_second(),
                back / 3600,
                back % 3600 / 60,
                from_at.to_second(),
            ),
            subject: json!({"ledger_index": index, "at": at.to_string(), "latest": from_at.to_string(), "latest_index": from}),
        })
    }
}

/// The alert for entry `index` stamped `at`, ahead of the watcher's clock (`now`).
fn ahead_alert(index: u64, at: Timestamp, now: Timestamp) -> Alert {
    let ahead = at.unix_seconds() - now.unix_seconds();
    Alert {
        id: format!("time-ahead:{index}"),
        rule: "ledger-time-ahead".into(),
        severity: "critical".into(),
        text: format!(
            "ledger entry {index} is stamped {}, {}h{:02}m ahead of this server's clock ({}): a clock set forward, or CUSTODY_NOW in the future; what was judged there by time (an exception's term, approval expiry) was judged by that clock",
            at.to_second(),
            ahead / 3600,
            ahead % 3600 / 60,
            now.to_second(),
        ),
        subject: json!({"ledger_index": index, "at": at.to_string(), "clock": now.to_string()}),
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

/// The break-glass promotions on `board` whose after-the-fact review has been due longer
/// than `sla_seconds` at `now`: their alerts.
pub fn overdue_break_glass_reviews(
    board: &[crate::BoardColumn],
    now: Timestamp,
    sla_seconds: i64,
) -> Vec<Alert> {
    let mut out = Vec::new();
    for column in board {
        for (id, due) in &column.reviews_due {
            let waited = now.unix_seconds() - due.at.unix_seconds();
            if waited > sla_seconds {
                out.push(Alert {
                    id: format!("break-glass-review:{id}"),
                    rule: "break-glass-review-overdue".into(),
                    severity: "warning".into(),
                    text: format!(
                        "{} broke glass into {} with {} {}h ago and nobody has reviewed it yet ({id})",
                        due.requested_by,
                        column.environment,
                        due.release,
                        waited / 3600
                    ),
                    subject: json!({"promotion": id, "environment": column.environment}),
                });
            }
        }
    }
    out
}

/// The waiting promotions on `board` that have waited for people longer than
/// `sla_seconds` at `now`: (id, release, environment, seconds waited).
pub fn overdue_approvals(
    board: &[crate::BoardColumn],
    now: Timestamp,
    sla_seconds: i64,
) -> Vec<(String, String, String, i64)> {
    let mut out = Vec::new();
    for column in board {
        for (id, p) in &column.pending {
            let waited = now.unix_seconds() - p.requested_at.unix_seconds();
            let waiting_for_people = p
                .blocking
                .iter()
                .any(|b| b.gate == "approvals" && b.status == custody_policy::Status::Waiting);
            if waiting_for_people && waited > sla_seconds {
                out.push((
                    id.clone(),
                    p.release.clone(),
                    column.environment.clone(),
                    waited,
                ));
            }
        }
    }
    out
}

/// The alert for an approval that will lapse before its promotion is certified.
pub fn approval_expiring_alert(
    approval: &crate::records::ApprovalRecord,
    release: &str,
    seconds_left: i64,
) -> Alert {
    Alert {
        id: format!("approval-expiring:{}", approval.id),
        rule: "approval-about-to-expire".into(),
        severity: "warning".into(),
        text: format!(
            "{}'s approval of {release} → {} expires in {}m, at {} (the promotion still waits)",
            approval.by,
            approval.environment,
            seconds_left / 60,
            approval.expires_at
        ),
        subject: json!({"promotion": approval.promotion, "approval": approval.id, "environment": approval.environment}),
    }
}

impl<S: Store> App<S> {
    /// Approvals of the waiting promotions on `board` that lapse within `within_seconds` of `now` (and
    /// have not lapsed yet): (approval, release, seconds left).
    pub async fn expiring_approvals(
        &self,
        board: &[crate::BoardColumn],
        now: Timestamp,
        within_seconds: i64,
    ) -> AppResult<Vec<(crate::records::ApprovalRecord, String, i64)>> {
        let mut out = Vec::new();
        for column in board {
            for (id, pending) in &column.pending {
                let (_, reviews) = self.promotion(id).await?;
                for r in reviews {
                    let left = r.expires_at.unix_seconds() - now.unix_seconds();
                    let counts =
                        r.verdict == custody_model::Verdict::Approve && r.superseded_by.is_none();
                    if counts && left > 0 && left <= within_seconds {
                        out.push((r, pending.release.clone(), left));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Evidence that a waiting promotion needs and that grows too old for its
    /// environment's `evidence_max_age` within `within_seconds` of `now` (and is not too old
    /// yet): the promotion would then fail its evidence gate unless fresh evidence comes.
    pub async fn expiring_evidence(
        &self,
        board: &[crate::BoardColumn],
        now: Timestamp,
        within_seconds: i64,
    ) -> AppResult<Vec<ExpiringEvidence>> {
        let policy = self.policy().await?;
        let mut out: Vec<ExpiringEvidence> = Vec::new();
        for column in board {
            let Some(env) = policy.environment(&column.environment) else {
                continue;
            };
            let Some(max_age) = env.evidence_max_age else {
                continue;
            };
            let max_age = i64::try_from(max_age.seconds()).unwrap_or(i64::MAX);
            for (id, pending) in &column.pending {
                let release = self.release(&pending.release).await?;
                for a in &release.artifacts {
                    let Some(artifact) = self
                        .get::<crate::records::ArtifactRecord>(
                            kind::ARTIFACT,
                            &a.digest.to_string(),
                        )
                        .await?
                    else {
                        continue;
                    };
                    for evidence_kind in &env.evidence {
                        // The gate takes any fresh piece, so the newest one decides.
                        let Some(newest) = artifact
                            .value
                            .evidence
                            .iter()
                            .filter(|e| &e.kind == evidence_kind)
                            .max_by_key(|e| e.at)
                        else {
                            continue;
                        };
                        let expires = newest.at.unix_seconds().saturating_add(max_age);
                        let left = expires - now.unix_seconds();
                        let seen = out.iter().any(|x| {
                            x.digest == a.digest.to_string()
                                && x.kind == *evidence_kind
                                && x.environment == column.environment
                        });
                        if left > 0 && left <= within_seconds && !seen {
                            out.push(ExpiringEvidence {
                                artifact: a.name.clone(),
                                digest: a.digest.to_string(),
                                kind: evidence_kind.clone(),
                                attached_at: newest.at,
                                environment: column.environment.clone(),
                                promotion: id.clone(),
                                release: pending.release.clone(),
                                seconds_left: left,
                            });
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A piece of evidence a waiting promotion needs that is about to grow too old.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringEvidence {
    /// The artifact's name and digest.
    pub artifact: String,
    /// Its digest.
    pub digest: String,
    /// The evidence type.
    pub kind: String,
    /// When the newest piece of that type was attached.
    pub attached_at: Timestamp,
    /// The environment whose maximum age it is about to pass.
    pub environment: String,
    /// A promotion waiting on it, and its release.
    pub promotion: String,
    /// The release.
    pub release: String,
    /// Seconds until it is too old.
    pub seconds_left: i64,
}

/// The alert for evidence about to grow too old for a waiting promotion.
pub fn evidence_expiring_alert(e: &ExpiringEvidence) -> Alert {
    Alert {
        id: format!(
            "evidence-expiring:{}:{}:{}:{}",
            e.environment, e.digest, e.kind, e.attached_at
        ),
        rule: "evidence-about-to-expire".into(),
        severity: "warning".into(),
        text: format!(
            "{} evidence of {} (attached {}) is too old for {} in {}m; {} → {} still waits ({})",
            e.kind,
            e.artifact,
            e.attached_at,
            e.environment,
            e.seconds_left / 60,
            e.release,
            e.environment,
            e.promotion
        ),
        subject: json!({"promotion": e.promotion, "environment": e.environment, "artifact": e.digest, "evidence": e.kind}),
    }
}

/// The alert that a trusted key's validity ends soon (or has ended): sign with a
/// successor before then (`custody key rotate`).
pub fn key_expiring_alert(key: &crate::keyring::KeyView, seconds_left: i64) -> Alert {
    let expires = key
        .expires
        .map(|e| e.to_second().to_string())
        .unwrap_or_default();
    Alert {
        id: format!("key-expiring:{}:{expires}", key.key_id),
        rule: "key-about-to-expire".into(),
        severity: "warning".into(),
        text: format!(
            "{} key {} ({}) {} at {expires}: rotate it to a successor before then (custody key rotate {})",
            key.purpose.describe(),
            key.name,
            key.key_id,
            if seconds_left > 0 {
                "expires"
            } else {
                "expired"
            },
            key.purpose.as_str()
        ),
        subject: json!({"key": key.key_id, "purpose": key.purpose, "expires": expires, "seconds_left": seconds_left}),
    }
}

/// The alert that an approved exception (waiver) stops counting soon: whatever it waives
/// fails its gate again then, at promotions and at the deploy gate, unless the finding is
/// fixed or a new exception is approved.
pub fn exception_expiring_alert(x: &crate::ExceptionRecord, seconds_left: i64) -> Alert {
    Alert {
        id: format!("exception-expiring:{}", x.id),
        rule: "exception-about-to-expire".into(),
        severity: "warning".into(),
        text: format!(
            "exception {} waiving {} in {} expires in {}h, at {} (plan: {} by {}, due {}); after that the finding blocks again",
            x.id,
            x.finding,
            x.subject(),
            seconds_left / 3600,
            x.expires_at.to_second(),
            x.plan.action,
            x.plan.owner,
            x.plan.due.to_second()
        ),
        subject: json!({"exception": x.id, "artifacts": x.artifacts, "release": x.release, "environments": x.environments, "expires_at": x.expires_at}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn entries_set_back_or_ahead_are_announced() {
        const DAY: i64 = 86_400;
        let now = at(10 * DAY);
        let mut watch = ClockWatch::default();
        let raised: Vec<(u64, String, String)> = [
            0,
            10,
            -3 * DAY,        // a backfill starts: announced
            -3 * DAY + 3600, // and goes on: not again
            -200,            // within the skew: not set back
            20,              // the clock again
            15,              // a little behind: servers disagree that much
            -DAY,            // set back once more: announced
            -DAY + 60,       // the run goes on
            -2 * DAY,        // set back again inside the run: announced
            400 * DAY,       // ahead of the clock: announced
            400 * DAY + 10,  // the run ahead goes on
            30,              // behind the latest now, far: a run starts
        ]
        .into_iter()
        .enumerate()
        .filter_map(|(i, t)| {
            watch
                .see(i as u64, at(10 * DAY + t), now)
                .map(|a| (i as u64, a.rule, a.text))
        })
        .collect();
        let at_entries: Vec<(u64, &str)> =
            raised.iter().map(|(i, r, _)| (*i, r.as_str())).collect();
        assert_eq!(
            at_entries,
            [
                (2, "ledger-time-went-back"),
                (7, "ledger-time-went-back"),
                (9, "ledger-time-went-back"),
                (10, "ledger-time-ahead"),
                (12, "ledger-time-went-back"),
            ],
            "{raised:?}"
        );
        assert!(raised[0].2.contains("72h00m before entry 1"), "{raised:?}");
        assert!(raised[1].2.contains("24h00m before entry 5"), "{raised:?}");
        assert!(raised[2].2.contains("before entry 8"), "{raised:?}");
    }
}
