//! What the clock makes due: an approval waiting past its SLA, a break-glass review overdue,
//! and an approval, piece of evidence, key or exception a waiting promotion needs about to
//! lapse.

use custody_model::Timestamp;
use custody_store::Store;
use serde_json::json;

use super::Alert;
use crate::AppResult;
use crate::app::App;
use crate::records::kind;

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
