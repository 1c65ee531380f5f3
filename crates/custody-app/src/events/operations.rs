//! What runs where and what custody did about it: deploy reports, drift, rollbacks,
//! API tokens, alerts and their delivery, and an operator's recovery of the log.

use custody_model::{Digest, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Whether a deploy succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployStatus {
    /// It runs.
    Succeeded,
    /// It failed (the environment rolls back).
    Failed,
}

/// `deploy.reported`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployReported {
    /// The environment.
    pub environment: String,
    /// Succeeded or failed.
    pub status: DeployStatus,
    /// The digests reported.
    pub artifacts: Vec<Digest>,
    /// The release certified there at the time.
    pub release: Option<String>,
    /// The digests never certified there.
    pub drift: Vec<Digest>,
}

/// `drift.detected`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftDetected {
    /// The environment.
    pub environment: String,
    /// The digests running there that were never certified there.
    pub artifacts: Vec<Digest>,
    /// For people.
    pub message: String,
}

/// An artifact named in a release diff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedDigest {
    /// The artifact's name.
    pub name: String,
    /// Its digest.
    pub digest: Digest,
}

/// One side of a changed artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSide {
    /// The digest.
    pub digest: Digest,
    /// The source commit its provenance names.
    pub commit: Option<String>,
    /// The build parameters its provenance names.
    pub parameters: Option<Value>,
}

/// An artifact whose digest differs between two releases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangedArtifact {
    /// The artifact's name.
    pub name: String,
    /// Before.
    pub from: BuildSide,
    /// After.
    pub to: BuildSide,
}

/// What differs between two releases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseDiff {
    /// The release left.
    pub from: String,
    /// The release restored.
    pub to: String,
    /// Artifacts in both, with different digests.
    pub changed: Vec<ChangedArtifact>,
    /// Artifacts only in `to`.
    pub added: Vec<NamedDigest>,
    /// Artifacts only in `from`.
    pub removed: Vec<NamedDigest>,
}

/// `rollback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolledBack {
    /// The environment.
    pub environment: String,
    /// The release it left.
    pub from: String,
    /// The release it went back to.
    pub to: String,
    /// The promotion of `from`.
    pub failed_promotion: String,
    /// The promotion of `to`.
    pub restored_promotion: String,
    /// Why.
    pub reason: String,
    /// Caused by a failed deploy report (not asked for).
    pub automatic: bool,
    /// Releases passed over on the way back: (release, why it no longer passes).
    pub skipped: Vec<(String, String)>,
    /// What changed between the two releases.
    pub diff: ReleaseDiff,
    /// The artifacts of both releases.
    pub artifacts: Vec<Digest>,
}

/// `rollback.refused`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRefused {
    /// The environment.
    pub environment: String,
    /// Why no earlier release passes.
    pub reason: String,
}

/// `token.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCreated {
    /// The token's id (never its secret).
    pub token: String,
    /// Whom it authenticates.
    pub principal: String,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// What it is for.
    pub description: String,
    /// SHA-256 of its secret (a 256-bit random value, so the digest reveals nothing a
    /// guess could use): what the state's token record must hold. Absent in events
    /// written before the state was checked against the ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_digest: Option<Digest>,
    /// The token it was made with, when its principal made it for themselves with a token:
    /// it is revoked with that one. Absent in events written before this was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Whether approvals made with it count (see `TokenRecord::personal`). Absent in
    /// events written before this was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personal: Option<bool>,
}

/// `token.revoked`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRevoked {
    /// The token's id.
    pub token: String,
    /// Whom it authenticated.
    pub principal: String,
    /// The token whose revocation ended this one: the token it was made with, or the one
    /// that token was made with, and so on. Absent when it was revoked by its own id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cascade_from: Option<String>,
}

/// `alert.raised`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRaised {
    /// The alert's id (from its cause).
    pub alert: String,
    /// The rule that raised it.
    pub rule: String,
    /// `critical` or `warning`.
    pub severity: String,
    /// For people.
    pub text: String,
    /// What it is about.
    pub subject: Value,
    /// The webhooks it is queued for.
    pub webhooks: Vec<String>,
}

/// `alert.delivered`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertDelivered {
    /// The alert's id.
    pub alert: String,
    /// The webhook's name.
    pub webhook: String,
    /// Attempts it took.
    pub attempts: u32,
}

/// `alert.delivery_failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertDeliveryFailed {
    /// The alert's id.
    pub alert: String,
    /// The webhook's name.
    pub webhook: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Why this one failed.
    pub error: String,
}

/// `log.recovered`: the operator's record of accepting a log whose history was rolled
/// back, truncated or forked (custody stayed read-only until this was appended), with
/// what was lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRecovered {
    /// Why, in the operator's words.
    pub reason: String,
    /// What custody found, as it reported it.
    pub failure: String,
    /// The newest checkpoint custody had signed or verified before: a signed note, the
    /// evidence of the history that is gone. (When the database still held all of it,
    /// its head row alone moved back, the head is put back on this checkpoint and nothing
    /// is gone: the event's own index is then `lost_size`.)
    pub lost_checkpoint: String,
    /// That checkpoint's size.
    pub lost_size: u64,
    /// The size of the log accepted.
    pub found_size: u64,
    /// Its root, hex.
    pub found_root: String,
}
