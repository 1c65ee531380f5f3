//! Exceptions (waivers): a time-bound permission for one known finding (a vulnerability
//! by its id or the one CVE it names, or a licence of one package) in one artifact or one
//! release, with a remediation plan (patch, upgrade, accept the risk), its owner and due date. It is
//! requested, then approved or rejected once, like a promotion, and may be revoked at any
//! time before it expires; the evidence-content gates (`custody_policy`) then read the
//! approved ones from a decision's facts.
//!
//! Invariants:
//! - An exception counts only once approved by someone other than its requester, holding
//!   the security role (in every environment it names; unscoped when it names none) with a
//!   credential of their own, and only from its approval until it expires. The review
//!   refuses what would not count; the policy decides again from the facts at each
//!   decision and deploy-gate answer (so an expired exception stops counting by itself).
//! - It covers exactly one subject, an artifact or a release, that exists when it is
//!   requested; its record changes only with the event that explains it.
//! - Revoking only makes the gates stricter, so it takes less than approving: the security
//!   role where the exception holds, or being its requester (withdrawing one's own
//!   request), with any credential of theirs (the event records which).
//! - This module holds its three events' schema (`exception.requested`,
//!   `exception.reviewed`, `exception.revoked`), listed with the others in
//!   [`crate::events`].
use custody_model::{Digest, Timestamp, Verdict};
use custody_policy::{Role, WaivedFinding};
use custody_store::{Expect, Store};
use serde::{Deserialize, Serialize};

use crate::app::{Actor, App, Once, Versioned, event, expect_version, new_id, own_scope, write};
use crate::events::EventBody;
use crate::limits::{MAX_LABEL, MAX_NAME, MAX_RATIONALE, MAX_REASON, label, text};
use crate::records::{ReleaseRecord, kind};
use crate::{AppError, AppResult, Permission};

mod read;
pub(crate) use read::index_keys;
mod record;

pub use record::{
    ExceptionRecord, ExceptionRequested, ExceptionReviewed, ExceptionRevoked, ExceptionStatus,
    Remediation, RemediationAction, RequestException, ReviewException, Revocation, RevokeException,
};

/// The longest an exception may last, in days: a waiver is a plan, not a policy change.
pub const MAX_EXCEPTION_DAYS: u64 = 365;

/// Most exceptions one artifact or release may carry (requested, in any state).
const MAX_PER_SUBJECT: usize = 1000;

/// The exceptions asked for about one subject (`artifact:DIGEST` or `release:NAME@V`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ExceptionIndex {
    ids: Vec<String>,
}

fn artifact_subject(digest: &Digest) -> String {
    format!("artifact:{digest}")
}

fn release_subject(release: &str) -> String {
    format!("release:{release}")
}

fn check_request(req: &RequestException, now: Timestamp) -> AppResult<()> {
    match &req.finding {
        WaivedFinding::Vulnerability { id } => {
            label("the vulnerability id", id, MAX_NAME)?;
            // One finding, by its id: no pattern, no list.
            if !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
            {
                return Err(AppError::invalid(format!(
                    "the vulnerability id {id:?} is not one id (letters, digits, '-', '_', '.', ':'; like CVE-2024-3094 or GHSA-xxxx-xxxx-xxxx): an exception waives one finding"
                )));
            }
        }
        WaivedFinding::Licence { licence, package } => {
            text("the licence", licence, MAX_NAME)?;
            text("the package", package, MAX_NAME)?;
        }
    }
    for env in &req.environments {
        label("the environment", env, MAX_LABEL)?;
    }
    if req.environments.len() > 64 {
        return Err(AppError::invalid(
            "an exception names at most 64 environments",
        ));
    }
    label("the remediation owner", &req.plan.owner, MAX_NAME)?;
    if req.reason.trim().is_empty() {
        return Err(AppError::invalid(
            "an exception needs a reason (--reason): why the finding may be waived until it expires",
        ));
    }
    text("the reason", &req.reason, MAX_REASON)?;
    if req.expires_at <= now {
        return Err(AppError::invalid(format!(
            "the exception would expire at {}, which is not after now ({}): give a time to come (--expires)",
            req.expires_at.to_second(),
            now.to_second()
        )));
    }
    let longest = now.plus_seconds(MAX_EXCEPTION_DAYS * 86_400);
    if req.expires_at > longest {
        return Err(AppError::invalid(format!(
            "an exception lasts at most {MAX_EXCEPTION_DAYS} days (until {}); renew it by asking again",
            longest.to_second()
        )));
    }
    if req.plan.due > req.expires_at {
        return Err(AppError::invalid(format!(
            "the remediation is due at {}, after the exception expires at {}: the waiver would lapse before the plan is done; give a due date on or before the expiry (--due), or ask for a longer exception",
            req.plan.due.to_second(),
            req.expires_at.to_second()
        )));
    }
    if req.plan.due <= now {
        return Err(AppError::invalid(format!(
            "the remediation is due at {}, which has passed: give a date to come (--due)",
            req.plan.due.to_second()
        )));
    }
    Ok(())
}

/// Why `actor` may not review (or revoke) `record` for want of the security role where
/// it holds, if so.
fn lacks_security_role(
    policy: &custody_policy::Policy,
    actor: &Actor,
    record: &ExceptionRecord,
) -> Option<String> {
    let now = actor.now.unix_seconds();
    let holds = |env: Option<&str>| policy.holds(&actor.principal, Role::Security, env, now);
    let missing: Vec<&str> = if record.environments.is_empty() {
        if holds(None) {
            Vec::new()
        } else {
            vec!["every environment (an unscoped grant)"]
        }
    } else {
        record
            .environments
            .iter()
            .map(String::as_str)
            .filter(|e| !holds(Some(e)))
            .collect()
    };
    (!missing.is_empty()).then(|| {
        format!(
            "reviewing an exception takes the security role, and {who} does not hold it in {where_}\nhint: a security reviewer other than {requester} approves or rejects it; {requester} or a security reviewer may revoke it",
            who = actor.principal,
            where_ = missing.join(", "),
            requester = record.requested_by
        )
    })
}

/// A reviewer's or revoker's rationale: said, and bounded.
fn rationale(what: &str, rationale: &str) -> AppResult<()> {
    if rationale.trim().is_empty() {
        return Err(AppError::invalid(format!(
            "{what} needs a rationale (--rationale)"
        )));
    }
    text("the rationale", rationale, MAX_RATIONALE)
}

/// How a settled exception was settled, for refusals: `approved by sam`.
fn settled(record: &ExceptionRecord) -> String {
    match (&record.revoked, record.status) {
        (Some(r), _) => format!("revoked by {}", r.by),
        (None, ExceptionStatus::Rejected) => format!(
            "rejected by {}",
            record.reviewed_by.as_deref().unwrap_or("?")
        ),
        (None, _) => format!(
            "approved by {}",
            record.reviewed_by.as_deref().unwrap_or("?")
        ),
    }
}

impl<S: Store> App<S> {
    /// Records a request for an exception. It counts for nothing until a security
    /// reviewer other than `actor` approves it. With an idempotency key, a retry returns
    /// the first request and adds nothing.
    pub async fn request_exception(
        &self,
        actor: &Actor,
        req: &RequestException,
        idempotency_key: Option<&str>,
    ) -> AppResult<ExceptionRecord> {
        self.permit(actor, Permission::Promote).await?;
        check_request(req, actor.now)?;
        let fingerprint = serde_json::json!({"request": req, "actor": actor.principal});
        let scope = own_scope("exception", actor);
        if let Some(key) = idempotency_key {
            if let Some((done, _)) = self.replayed(&scope, key, &fingerprint).await? {
                return Ok(done);
            }
        }
        let policy = self.policy().await?;
        for env in &req.environments {
            if policy.environment(env).is_none() {
                return Err(AppError::invalid(format!(
                    "no environment {env:?}; the pipeline is {}",
                    policy.pipeline()
                )));
            }
        }
        let (subject, artifacts, release) = match (&req.artifact, &req.release) {
            (Some(digest), None) => {
                self.require::<crate::records::ArtifactRecord>(
                    kind::ARTIFACT,
                    &digest.to_string(),
                    || format!("no artifact {digest} is registered"),
                )
                .await?;
                (artifact_subject(digest), vec![digest.clone()], None)
            }
            (None, Some(id)) => {
                let release: ReleaseRecord = self.release(id).await?;
                let digests = release.artifacts.iter().map(|a| a.digest.clone()).collect();
                (release_subject(&release.id()), digests, Some(release.id()))
            }
            _ => {
                return Err(AppError::invalid(
                    "an exception covers one artifact (--artifact DIGEST) or one release (--release NAME@VERSION): give exactly one",
                ));
            }
        };
        let through = self.credential_made_by(actor).await?;
        let record = ExceptionRecord {
            id: new_id("x"),
            finding: req.finding.clone(),
            artifact: req.artifact.clone(),
            release: release.clone(),
            artifacts: artifacts.clone(),
            environments: req.environments.clone(),
            plan: req.plan.clone(),
            reason: req.reason.clone(),
            expires_at: req.expires_at,
            requested_by: actor.principal.clone(),
            requested_through: through,
            requested_at: actor.now,
            status: ExceptionStatus::Pending,
            reviewed_by: None,
            reviewed_at: None,
            review_rationale: None,
            review_signed: false,
            revoked: None,
        };
        self.retrying(|| async {
            let index: Option<Versioned<ExceptionIndex>> =
                self.get(kind::EXCEPTIONS_OF, &subject).await?;
            let mut ids = index.as_ref().map(|i| i.value.clone()).unwrap_or_default();
            if ids.ids.len() >= MAX_PER_SUBJECT {
                return Err(AppError::conflict(format!(
                    "{} already has {MAX_PER_SUBJECT} exceptions; fix the findings instead",
                    record.subject()
                )));
            }
            ids.ids.push(record.id.clone());
            let events = vec![event(
                actor,
                EventBody::ExceptionRequested(ExceptionRequested {
                    exception: record.id.clone(),
                    finding: record.finding.clone(),
                    artifacts: artifacts.clone(),
                    release: release.clone(),
                    environments: record.environments.clone(),
                    plan: record.plan.clone(),
                    reason: record.reason.clone(),
                    expires_at: record.expires_at,
                }),
            )?];
            let state = vec![
                write(kind::EXCEPTION, &record.id, &record, Expect::Absent)?,
                write(kind::EXCEPTIONS_OF, &subject, &ids, expect_version(&index))?,
            ];
            let once = idempotency_key.map(|key| Once {
                scope: scope.clone(),
                key,
                request: &fingerprint,
            });
            match self.append_once(events, state, once, &record).await? {
                Ok(_) => Ok(record.clone()),
                Err((first, _)) => Ok(first),
            }
        })
        .await
    }

    /// Approves or rejects a pending exception, once. The reviewer must not be its
    /// requester, must hold the security role where it holds, and must act with a
    /// credential of their own (or a statement signed with their enrolled key); an
    /// exception that has expired can no longer be approved.
    pub async fn review_exception(
        &self,
        actor: &Actor,
        id: &str,
        verdict: Verdict,
        review: &ReviewException,
    ) -> AppResult<ExceptionRecord> {
        // Without the review permission at all, say what reviewing an exception takes.
        self.permit(actor, Permission::Review).await.map_err(|e| match e {
            AppError::Denied(_) => AppError::denied(format!(
                "reviewing an exception takes the security role where it holds, and {} holds no role that reviews\nhint: roles come from the policy's [roles] (security = [\"{}\"]): propose a policy that grants it (`custody policy propose DIR`); it takes effect when the owners approve",
                actor.principal, actor.principal
            )),
            other => other,
        })?;
        rationale("a review", &review.rationale)?;
        let policy = self.policy().await?;
        // With a signed statement, its enrolled key says who reviews; else the credential,
        // which must be the reviewer's own.
        let (reviewer, signed_with) = match &review.statement {
            Some(envelope) => {
                let asked = self.exception(id).await?;
                let approves = asked.approved(policy.digest())?;
                let claim = crate::approval_statement::Claim {
                    approves: &approves,
                    verdict,
                    rationale: &review.rationale,
                    risk: None,
                };
                let signed = self
                    .personally_signed(envelope, &policy, actor, claim, None)
                    .await?;
                (signed.actor, Some(signed.key))
            }
            None => (actor.clone(), None),
        };
        let actor = &reviewer;
        self.retrying(|| async {
            let current: Versioned<ExceptionRecord> = self
                .require(kind::EXCEPTION, id, || format!("no exception {id}"))
                .await?;
            let mut record = current.value;
            if record.status != ExceptionStatus::Pending {
                return Err(AppError::conflict(format!(
                    "exception {id} was already {}; ask for a new one to decide again{}",
                    settled(&record),
                    if record.status == ExceptionStatus::Approved {
                        " (or withdraw it: `custody exception revoke`)"
                    } else {
                        ""
                    }
                )));
            }
            if record.requested_by == actor.principal {
                return Err(AppError::denied(format!(
                    "{} requested exception {id}, so someone else must review it (separation of duties)",
                    actor.principal
                )));
            }
            if record.requested_through.as_deref() == Some(actor.principal.as_str()) {
                return Err(AppError::denied(format!(
                    "{} made the token {} requested exception {id} with, so someone else must review it (separation of duties)",
                    actor.principal, record.requested_by
                )));
            }
            // A waiver loosens the gates of the environments it holds in: where those count
            // only signed approvals, so does approving it. (A rejection loosens nothing.)
            if verdict == Verdict::Approve && signed_with.is_none() {
                let signed_only = policy.environments().iter().find(|e| {
                    (record.environments.is_empty() || record.environments.contains(&e.name))
                        && e.counts_only_signed_approvals()
                });
                if let Some(env) = signed_only {
                    return Err(AppError::denied(format!(
                        "exception {id} holds in {}, which counts only signed approvals (approvals signed = true), so approving it must be signed too\nhint: custody exception approve {id} --sign-key YOUR_KEY --rationale …",
                        env.name
                    )));
                }
            }
            // A review, either way, is the reviewer's own and takes the security role
            // where the exception holds.
            if let Some(why) = signed_with
                .is_none()
                .then(|| crate::identity::not_personal(actor))
                .flatten()
            {
                return Err(AppError::denied(why));
            }
            if let Some(why) = lacks_security_role(&policy, actor, &record) {
                return Err(AppError::denied(why));
            }
            if verdict == Verdict::Approve && record.expires_at <= actor.now {
                return Err(AppError::conflict(format!(
                    "exception {id} expired at {}; ask for a new one",
                    record.expires_at.to_second()
                )));
            }
            // The longest term again, by the approver's clock: asked for with a clock set
            // forward, it would otherwise outlast the bound from now.
            let longest = actor.now.plus_seconds(MAX_EXCEPTION_DAYS * 86_400);
            if verdict == Verdict::Approve && record.expires_at > longest {
                return Err(AppError::conflict(format!(
                    "exception {id} would hold until {}, more than {MAX_EXCEPTION_DAYS} days from now ({}): its request was stamped ahead of this clock; ask for a new one",
                    record.expires_at.to_second(),
                    actor.now.to_second()
                )));
            }
            record.status = if verdict == Verdict::Approve {
                ExceptionStatus::Approved
            } else {
                ExceptionStatus::Rejected
            };
            record.reviewed_by = Some(actor.principal.clone());
            record.reviewed_at = Some(actor.now);
            record.review_rationale = Some(review.rationale.clone());
            record.review_signed = signed_with.is_some();
            let body = EventBody::ExceptionReviewed(ExceptionReviewed {
                    exception: record.id.clone(),
                    verdict,
                    rationale: review.rationale.clone(),
                    finding: record.finding.clone(),
                    artifacts: record.artifacts.clone(),
                    release: record.release.clone(),
                    expires_at: record.expires_at,
                    keys: signed_with.iter().cloned().collect(),
                    statement: review.statement.clone(),
                });
            self.changed(actor, record, current.version, body).await
        })
        .await
    }

    /// Revokes an exception, pending or approved, before it expires: from now on it does
    /// not count (decisions already recorded keep what they read). Taken by a holder of
    /// the security role where it holds, or by its requester.
    pub async fn revoke_exception(
        &self,
        actor: &Actor,
        id: &str,
        revoke: &RevokeException,
    ) -> AppResult<ExceptionRecord> {
        // Who may revoke is the exception's to say (its requester, or the security role
        // where it holds), checked below: reading is all the permission it takes first.
        self.permit(actor, Permission::Read)
            .await
            .map_err(|e| match e {
                AppError::Denied(_) => AppError::denied(format!(
                    "revoking an exception takes being its requester or holding the security role where it holds, and {} holds no role at all",
                    actor.principal
                )),
                other => other,
            })?;
        rationale("revoking an exception", &revoke.rationale)?;
        let policy = self.policy().await?;
        self.retrying(|| async {
            let current: Versioned<ExceptionRecord> = self
                .require(kind::EXCEPTION, id, || format!("no exception {id}"))
                .await?;
            let mut record = current.value;
            if !matches!(
                record.status,
                ExceptionStatus::Pending | ExceptionStatus::Approved
            ) {
                return Err(AppError::conflict(format!(
                    "exception {id} was already {}: it does not count",
                    settled(&record)
                )));
            }
            if record.expires_at <= actor.now {
                return Err(AppError::conflict(format!(
                    "exception {id} expired at {}: it no longer counts",
                    record.expires_at.to_second()
                )));
            }
            if record.requested_by != actor.principal {
                if let Some(why) = lacks_security_role(&policy, actor, &record) {
                    return Err(AppError::denied(why));
                }
            }
            record.status = ExceptionStatus::Revoked;
            record.revoked = Some(Revocation {
                by: actor.principal.clone(),
                at: actor.now,
                rationale: revoke.rationale.clone(),
            });
            let body = EventBody::ExceptionRevoked(ExceptionRevoked {
                exception: record.id.clone(),
                rationale: revoke.rationale.clone(),
                finding: record.finding.clone(),
                artifacts: record.artifacts.clone(),
                release: record.release.clone(),
            });
            self.changed(actor, record, current.version, body).await
        })
        .await
    }

    /// Records `record`, changed from its stored `version`, with the event that explains
    /// the change (a review or a revocation): together, or neither.
    async fn changed(
        &self,
        actor: &Actor,
        record: ExceptionRecord,
        version: u64,
        body: EventBody,
    ) -> AppResult<ExceptionRecord> {
        let events = vec![event(actor, body)?];
        let state = vec![write(
            kind::EXCEPTION,
            &record.id,
            &record,
            Expect::Version(version),
        )?];
        self.append(events, state, None).await?;
        Ok(record)
    }
}
