//! What an exception is: the request, the record, its plan and status, and the three
//! events that explain every change of a record (`exception.requested`,
//! `exception.reviewed`, `exception.revoked`, listed with the others in
//! [`crate::events`]).

use custody_model::{Digest, Timestamp, Verdict};
use custody_policy::{ExceptionFacts, WaivedFinding};
use serde::{Deserialize, Serialize};

use crate::{AppError, AppResult};

/// What will be done about the finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RemediationAction {
    /// A patch of the affected code.
    Patch,
    /// An upgrade of the affected package.
    Upgrade,
    /// Nothing: the risk is accepted until the exception expires.
    AcceptRisk,
}

impl std::fmt::Display for RemediationAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RemediationAction::Patch => "patch",
            RemediationAction::Upgrade => "upgrade",
            RemediationAction::AcceptRisk => "accept risk",
        })
    }
}

/// The remediation plan: what, who, by when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Remediation {
    /// What will be done.
    pub action: RemediationAction,
    /// Who owns doing it.
    pub owner: String,
    /// By when (RFC 3339).
    #[schema(value_type = String)]
    pub due: Timestamp,
}

/// A request for an exception (the body of `POST /api/v1/exceptions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestException {
    /// The finding waived: `{"vulnerability": {"id": "CVE-…"}}` or
    /// `{"licence": {"licence": "GPL-3.0-only", "package": "name"}}`.
    #[schema(value_type = Object)]
    pub finding: WaivedFinding,
    /// The artifact it covers (a digest); give this or `release`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub artifact: Option<Digest>,
    /// The release it covers (`name@version`); give this or `artifact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The environments it holds in (empty: every one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    /// The remediation plan.
    pub plan: Remediation,
    /// Why the finding may be waived until then.
    pub reason: String,
    /// When it stops counting (RFC 3339; at most [`super::MAX_EXCEPTION_DAYS`] ahead).
    #[schema(value_type = String)]
    pub expires_at: Timestamp,
}

/// A security reviewer's approval or rejection of an exception (the body of
/// `POST /api/v1/exceptions/{id}/approve` and `…/reject`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewException {
    /// Why, for auditors.
    pub rationale: String,
    /// The reviewer's statement signed with their enrolled personal key
    /// (`Approved::Exception` of `custody_app::approval_statement`): then the signature,
    /// not the request's credential, says who reviews.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub statement: Option<custody_crypto::dsse::Envelope>,
}

/// Where an exception stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExceptionStatus {
    /// Requested, not reviewed yet.
    Pending,
    /// Approved: it counts until it expires.
    Approved,
    /// Rejected: it never counts.
    Rejected,
    /// Revoked (approved or pending, then withdrawn): it no longer counts.
    Revoked,
}

/// The withdrawal of an exception (the body of `POST /api/v1/exceptions/{id}/revoke`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeException {
    /// Why it no longer holds (the finding is back in scope, the plan changed…).
    pub rationale: String,
}

/// Who revoked an exception, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// Who.
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// Why.
    pub rationale: String,
}

/// An exception as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionRecord {
    /// Its id (`x-…`).
    pub id: String,
    /// The finding waived.
    pub finding: WaivedFinding,
    /// The artifact it covers, when it covers one.
    pub artifact: Option<Digest>,
    /// The release it covers (`name@version`), when it covers one.
    pub release: Option<String>,
    /// The digests it covers (the artifact, or every artifact of the release).
    pub artifacts: Vec<Digest>,
    /// The environments it holds in (empty: every one).
    pub environments: Vec<String>,
    /// The remediation plan.
    pub plan: Remediation,
    /// Why.
    pub reason: String,
    /// When it stops counting.
    pub expires_at: Timestamp,
    /// Who asked for it.
    pub requested_by: String,
    /// Who made the token they asked with, when someone else did (an admin who saw its
    /// secret): never its reviewer either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_through: Option<String>,
    /// When.
    pub requested_at: Timestamp,
    /// Where it stands.
    pub status: ExceptionStatus,
    /// Who reviewed it.
    pub reviewed_by: Option<String>,
    /// When.
    pub reviewed_at: Option<Timestamp>,
    /// The reviewer's rationale.
    pub review_rationale: Option<String>,
    /// Whether the review was signed with the reviewer's enrolled personal key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub review_signed: bool,
    /// Its withdrawal, once revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revocation>,
}

impl ExceptionRecord {
    /// Whether it counts at `now` (as far as its own record tells: the policy also checks
    /// the approver's role).
    pub fn in_force(&self, now: Timestamp) -> bool {
        self.status == ExceptionStatus::Approved
            && self.reviewed_at.is_some_and(|at| at <= now)
            && now < self.expires_at
    }

    /// The digest of what was asked for, as a signed review names it: SHA-256 of the
    /// RFC 8785 JSON of its `exception.requested` fields (id, finding, subject, digests,
    /// environments, plan, reason, expiry) and its requester.
    pub fn digest(&self) -> AppResult<Digest> {
        let asked = serde_json::json!({
            "exception": self.id, "finding": self.finding, "artifacts": self.artifacts,
            "release": self.release, "environments": self.environments, "plan": self.plan,
            "reason": self.reason, "expires_at": self.expires_at, "requested_by": self.requested_by,
        });
        let canonical = custody_model::CanonicalJson::from_value(&asked)
            .map_err(|e| AppError::invalid(e.to_string()))?;
        Ok(crate::attestations::sha256(canonical.as_bytes()))
    }

    /// What a signed review of it approves, under the policy version `policy`.
    pub fn approved(&self, policy: &str) -> AppResult<crate::approval_statement::Approved> {
        Ok(crate::approval_statement::Approved::Exception {
            exception: self.id.clone(),
            asked: self.digest()?,
            policy: policy.to_owned(),
        })
    }

    /// What the subject is, for people: `artifact sha256:…` or `release shop@1.4.3`.
    pub fn subject(&self) -> String {
        match (&self.artifact, &self.release) {
            (Some(d), _) => format!("artifact {d}"),
            (None, Some(r)) => format!("release {r}"),
            (None, None) => String::new(),
        }
    }

    pub(super) fn facts(&self) -> Option<ExceptionFacts> {
        if self.status != ExceptionStatus::Approved {
            return None;
        }
        Some(ExceptionFacts {
            id: self.id.clone(),
            finding: self.finding.clone(),
            artifact: self.artifact.as_ref().map(ToString::to_string),
            release: self.release.clone(),
            requested_by: self.requested_by.clone(),
            approved_by: self.reviewed_by.clone()?,
            approved_at: self.reviewed_at?.unix_seconds(),
            expires_at: self.expires_at.unix_seconds(),
            environments: self.environments.clone(),
            signed: self.review_signed,
        })
    }
}

/// `exception.requested`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionRequested {
    /// The exception's id.
    pub exception: String,
    /// The finding it would waive.
    pub finding: WaivedFinding,
    /// The digests it would cover.
    pub artifacts: Vec<Digest>,
    /// The release it would cover, when it covers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The environments it would hold in (absent: every one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    /// The remediation plan.
    pub plan: Remediation,
    /// Why.
    pub reason: String,
    /// When it would stop counting.
    pub expires_at: Timestamp,
}

/// `exception.reviewed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionReviewed {
    /// The exception's id.
    pub exception: String,
    /// Approve or reject.
    pub verdict: Verdict,
    /// Why.
    pub rationale: String,
    /// The finding it waives.
    pub finding: WaivedFinding,
    /// The digests it covers.
    pub artifacts: Vec<Digest>,
    /// The release it covers, when it covers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// When it stops counting.
    pub expires_at: Timestamp,
    /// The personal key whose signed statement made the review (absent: the reviewer's
    /// own credential did).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<crate::events::KeyUse>,
    /// That statement, verifiable offline with the reviewer's enrolled key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<custody_crypto::dsse::Envelope>,
}

/// `exception.revoked`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionRevoked {
    /// The exception's id.
    pub exception: String,
    /// Why.
    pub rationale: String,
    /// The finding it waived.
    pub finding: WaivedFinding,
    /// The digests it covered.
    pub artifacts: Vec<Digest>,
    /// The release it covered, when it covered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}
