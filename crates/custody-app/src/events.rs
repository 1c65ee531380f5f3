//! The ledger's events, typed: one variant per kind, each with exactly the fields its leaf
//! holds. Writers build variants; readers (history, alerts, metrics, the dashboard) match
//! them. This module *is* the ledger's schema.
//!
//! Invariants:
//! - **The bytes never change.** A leaf is the RFC 8785 JSON of an [`Event`]; parsing a leaf
//!   and encoding it again gives the same bytes, for every leaf any custody version wrote
//!   (the golden test `tests/golden_ledger.rs` checks a ledger written before these types
//!   existed). So a field that was written as `null` stays an `Option` without
//!   `skip_serializing_if`, and one that was left out when empty keeps its skip.
//! - **Unknown kinds are kept, never a panic.** A leaf of a kind this version does not know
//!   (a newer custody wrote it) reads as [`EventBody::Unknown`] holding its fields whole,
//!   and encodes back to the same bytes. A *known* kind with malformed fields is an error.
//! - The header every event shares (`type`, `at`, `actor`, `auth`, and where the kind has
//!   them `environment`, `artifacts`, `build`) is what [`custody_model::EventHeader`]
//!   reads, so the store can index leaves without this module.

use std::collections::BTreeMap;

use custody_crypto::dsse::Envelope;
use custody_model::{Authentication, CanonicalJson, Digest, Risk, Timestamp, Verdict};
use custody_policy::GateResult;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::attestations::BuildFields;
use crate::{AppError, AppResult};

/// One ledger event: who acted, when, how they authenticated, and what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When.
    pub at: Timestamp,
    /// Who (a principal).
    pub actor: String,
    /// How the actor authenticated (absent in events written before it was recorded).
    pub auth: Option<Authentication>,
    /// What happened.
    pub body: EventBody,
}

/// Declares [`EventBody`] with one variant per kind, and the list of known kinds.
macro_rules! event_kinds {
    ($( $(#[$doc:meta])* $tag:literal => $variant:ident($ty:ty), )*) => {
        /// What happened: one variant per event kind, tagged in the leaf by `type`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        #[non_exhaustive]
        pub enum EventBody {
            $( $(#[$doc])* #[serde(rename = $tag)] $variant($ty), )*
            /// A kind this version does not know (a newer custody wrote it): every field
            /// but `at`, `actor` and `auth`, kept whole so it encodes back unchanged.
            #[serde(skip)]
            Unknown(Map<String, Value>),
        }

        impl EventBody {
            /// The kind, as the leaf's `type` says.
            pub fn kind(&self) -> &str {
                match self {
                    $( EventBody::$variant(_) => $tag, )*
                    EventBody::Unknown(fields) => {
                        fields.get("type").and_then(Value::as_str).unwrap_or("")
                    }
                }
            }
        }

        impl EventBody {
            /// Reads the fields of a known kind (all but `type`, `at`, `actor` and `auth`)
            /// straight into its type; `None` for a kind this version does not know.
            fn read_known<'de, D: serde::Deserializer<'de>>(
                kind: &str,
                fields: D,
            ) -> Option<Result<EventBody, D::Error>> {
                match kind {
                    $( $tag => Some(<$ty as Deserialize>::deserialize(fields).map(EventBody::$variant)), )*
                    _ => None,
                }
            }
        }

        /// Every kind this version knows.
        pub const KINDS: &[&str] = &[$($tag),*];
    };
}

event_kinds! {
    /// A policy version was put in force.
    "policy.applied" => PolicyApplied(PolicyApplied),
    /// A new policy version was proposed, waiting for its owners' approval.
    "policy.proposed" => PolicyProposed(PolicyProposed),
    /// An owner approved or rejected a proposed policy version.
    "proposal.reviewed" => ProposalReviewed(ProposalReviewed),
    /// An artifact was registered with its build and provenance.
    "artifact.registered" => ArtifactRegistered(ArtifactRegistered),
    /// Another builder built a registered digest again: agreeing evidence.
    "artifact.rebuilt" => ArtifactRebuilt(ArtifactRebuilt),
    /// Two builds of the same source and parameters gave different digests.
    "provenance.discrepancy" => ProvenanceDiscrepancy(ProvenanceDiscrepancy),
    /// Evidence about an artifact was attached.
    "evidence.attached" => EvidenceAttached(EvidenceAttached),
    /// An exception (waiver) for a finding was asked for.
    "exception.requested" => ExceptionRequested(crate::exceptions::ExceptionRequested),
    /// A security reviewer approved or rejected an exception.
    "exception.reviewed" => ExceptionReviewed(crate::exceptions::ExceptionReviewed),
    /// An exception was revoked: it no longer counts.
    "exception.revoked" => ExceptionRevoked(crate::exceptions::ExceptionRevoked),
    /// A release manifest was recorded.
    "release.created" => ReleaseCreated(ReleaseCreated),
    /// A promotion was requested.
    "promotion.requested" => PromotionRequested(PromotionRequested),
    /// The gates of a promotion were evaluated and the VSA signed.
    "decision.recorded" => DecisionRecorded(DecisionRecorded),
    /// A release became an environment's certified release.
    "environment.certified" => EnvironmentCertified(EnvironmentCertified),
    /// A reviewer approved or rejected a promotion.
    "approval.recorded" => ApprovalRecorded(ApprovalRecorded),
    /// Deploy tooling reported what runs in an environment.
    "deploy.reported" => DeployReported(DeployReported),
    /// Digests reported running that were never certified there.
    "drift.detected" => DriftDetected(DriftDetected),
    /// An environment went back to an earlier certified release.
    "rollback" => RolledBack(RolledBack),
    /// A rollback was asked for (or due) but no earlier release passes.
    "rollback.refused" => RollbackRefused(RollbackRefused),
    /// An API token was created.
    "token.created" => TokenCreated(TokenCreated),
    /// An API token was revoked.
    "token.revoked" => TokenRevoked(TokenRevoked),
    /// An alert was raised (and queued for each webhook).
    "alert.raised" => AlertRaised(AlertRaised),
    /// An alert reached a webhook.
    "alert.delivered" => AlertDelivered(AlertDelivered),
    /// An attempt to deliver an alert failed (it stays queued).
    "alert.delivery_failed" => AlertDeliveryFailed(AlertDeliveryFailed),
    /// An operator accepted the log as the database holds it after custody found its
    /// history changed behind its back.
    "log.recovered" => LogRecovered(LogRecovered),
    /// A trusted key handed its purpose to a successor, both signing the hand-over.
    "key.rotated" => KeyRotated(KeyRotated),
    /// A trusted key was revoked: it verifies nothing signed after the revocation, or
    /// after the time it was compromised since.
    "key.revoked" => KeyRevoked(KeyRevoked),
    /// The log's own key was handed over to a successor; the checkpoint that ends with
    /// this event is signed by both keys (see [`custody_ledger::LogKeys`]).
    "log.key_rotated" => LogKeyRotated(LogKeyRotated),
}

/// A key whose signature an event recorded as verified. The store indexes events by
/// these (`search::key`), so `custody key impact` reads an index, not the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyUse {
    /// Its key id.
    pub key: String,
    /// Its algorithm (`ed25519`, `ecdsa-p256`).
    pub algorithm: String,
}

impl KeyUse {
    /// The use of `key`.
    pub fn of(key: &custody_crypto::PublicKey) -> KeyUse {
        KeyUse {
            key: key.key_id().to_string(),
            algorithm: key.algorithm().to_string(),
        }
    }
}

/// `key.rotated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRotated {
    /// What the key is for; the successor serves the same purpose, nothing else.
    pub purpose: custody_policy::KeyPurpose,
    /// The key handing over (retired from this moment).
    pub from: String,
    /// Its successor.
    pub to: String,
    /// The successor's public key (SPKI PEM).
    pub public_key: String,
    /// The hand-over statement, signed by both keys.
    pub handover: Envelope,
    /// Both keys.
    pub keys: Vec<KeyUse>,
}

/// `key.revoked`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRevoked {
    /// What the key was for.
    pub purpose: custody_policy::KeyPurpose,
    /// Why.
    pub reason: String,
    /// When it was compromised, if it was: nothing it signed from then on verifies
    /// (else: nothing signed from the revocation on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compromised_since: Option<Timestamp>,
    /// Successors it handed over to after that time, revoked with it (a hand-over signed
    /// by a compromised key proves nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub successors: Vec<String>,
    /// What stopped counting, for the alert and the auditor: the releases and provenance
    /// the ledger recorded as signed by it (or those successors) since the cutoff, and the
    /// environments whose certified release depends on them (at most
    /// [`crate::key_impact::MAX_AFFECTED_NAMED`] named).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub affected: Vec<String>,
    /// The key revoked (one entry).
    pub keys: Vec<KeyUse>,
}

/// `log.key_rotated`: the retiring and the new log key, and the size of the hand-over
/// checkpoint (this event is its last leaf). The ledger crate defines it, because verifying
/// a hand-over is the ledger's business.
pub use custody_ledger::LogKeyRotation as LogKeyRotated;

/// `policy.applied`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyApplied {
    /// The new version's digest.
    pub policy: String,
    /// The version it replaced.
    pub previous: Option<String>,
    /// The bundle's files (path → text).
    pub files: BTreeMap<String, String>,
    /// The proposal it came from (absent: a bootstrap, or written before proposals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<String>,
    /// Who proposed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed_by: Option<String>,
    /// The owners whose approvals put it in force.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// What it changes from `previous`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<custody_policy::Change>,
    /// Put in force without approvals: the first policy of an instance, or the operator
    /// replacing one nobody could approve a change of (see `App::propose_policy`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub bootstrap: bool,
}

/// `policy.proposed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyProposed {
    /// The proposal's id.
    pub proposal: String,
    /// The proposed version's digest.
    pub policy: String,
    /// The version in force it would replace.
    pub previous: Option<String>,
    /// The proposed bundle's files.
    pub files: BTreeMap<String, String>,
    /// What it changes.
    pub changes: Vec<custody_policy::Change>,
    /// Approvals it needs, from holders of `owners` other than the proposer.
    pub quorum: u32,
    /// The owner roles (of the policy in force).
    pub owners: Vec<custody_policy::Role>,
    /// When it lapses unless applied.
    pub expires_at: Timestamp,
}

/// `proposal.reviewed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalReviewed {
    /// The proposal.
    pub proposal: String,
    /// The proposed version's digest.
    pub policy: String,
    /// Approve or reject.
    pub verdict: Verdict,
    /// Why.
    pub rationale: String,
    /// The envelope of the owner's signed approval statement, when they signed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<Envelope>,
    /// The personal key that signed it (absent without one, and in events written before
    /// keys were recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyUse>,
}

/// An artifact as `artifact.registered` names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactName {
    /// Its name.
    pub name: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size, when custody hashed the file.
    pub size: Option<u64>,
}

/// Where a build came from, as its provenance says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRef {
    /// The source repository.
    pub repository: String,
    /// The commit.
    pub commit: String,
}

/// `artifact.registered`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRegistered {
    /// The artifact.
    pub artifact: ArtifactName,
    /// Its digest, alone (the header's list).
    pub artifacts: Vec<Digest>,
    /// The build as declared.
    pub build: Option<BuildFields>,
    /// The provenance envelope.
    pub provenance: Option<Envelope>,
    /// The builder its verified provenance names.
    pub builder_id: Option<String>,
    /// The source its verified provenance names.
    pub source: Option<SourceRef>,
    /// The keys whose signatures it recorded as verified (absent in events written
    /// before keys were recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyUse>,
}

/// `artifact.rebuilt`: an independent build gave a registered artifact's digest again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRebuilt {
    /// The artifact (as first registered).
    pub artifact: ArtifactName,
    /// Its digest, alone (the header's list).
    pub artifacts: Vec<Digest>,
    /// The rebuild's provenance envelope.
    pub provenance: Envelope,
    /// The builder its verified provenance names.
    pub builder_id: String,
    /// The source its verified provenance names.
    pub source: SourceRef,
    /// The key whose signature it recorded as verified.
    pub keys: Vec<KeyUse>,
    /// Every builder that has now built this digest, first registration first.
    pub agreeing: Vec<String>,
}

/// The source and parameters two disagreeing builds share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSource {
    /// The source repository.
    pub repository: String,
    /// The commit.
    pub commit: String,
    /// The provenance's `externalParameters`, as signed.
    pub parameters: Value,
}

/// `provenance.discrepancy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceDiscrepancy {
    /// The artifact's name.
    pub artifact: String,
    /// Every digest built from that source under that name.
    pub artifacts: Vec<Digest>,
    /// The source and parameters.
    pub source: BuildSource,
    /// For people.
    pub message: String,
}

/// `evidence.attached`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceAttached {
    /// The artifact it is about.
    pub artifacts: Vec<Digest>,
    /// Its type, e.g. `test-results`.
    pub kind: String,
    /// Its format, e.g. `junit`.
    pub format: String,
    /// The report's digest (the blob that holds it, when custody read it).
    pub evidence: Digest,
    /// What custody read in the report (absent when only its digest was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<crate::evidence::ReportRead>,
    /// The attestor key that signed `statement`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyUse>,
    /// custody's signed statement of what it read, about the artifact: the in-toto
    /// test-result predicate for a test report, custody's evidence predicate for any
    /// other (absent when only a digest was given, and before custody signed one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<custody_crypto::dsse::Envelope>,
}

/// `release.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseCreated {
    /// `name@version`.
    pub release: String,
    /// The manifest statement's digest.
    pub digest: Digest,
    /// Its artifacts.
    pub artifacts: Vec<Digest>,
    /// The signed manifest.
    pub manifest: Envelope,
    /// The envelope's digest.
    pub manifest_digest: Digest,
    /// The keys whose signatures it recorded as verified (absent in events written
    /// before keys were recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyUse>,
}

/// `promotion.requested`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionRequested {
    /// The promotion's id.
    pub promotion: String,
    /// The release.
    pub release: String,
    /// The environment.
    pub environment: String,
    /// The release's artifacts.
    pub artifacts: Vec<Digest>,
    /// The reason, when the requester broke glass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<String>,
    /// The requester's signed statement of breaking glass (an approval statement of kind
    /// `break-glass`), when they signed it with their enrolled personal key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<Envelope>,
    /// The personal key whose signature it recorded as verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyUse>,
}

/// `decision.recorded`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRecorded {
    /// The decision's id.
    pub decision: String,
    /// The promotion.
    pub promotion: String,
    /// The release.
    pub release: String,
    /// The environment.
    pub environment: String,
    /// Whether every gate passed.
    pub allowed: bool,
    /// Each gate's verdict.
    pub gates: Vec<GateResult>,
    /// The policy version's digest.
    pub policy: String,
    /// The facts' digest.
    pub input: String,
    /// The evaluation engine.
    pub engine: String,
    /// The signed VSA.
    pub vsa: Envelope,
    /// The VSA envelope's digest.
    pub vsa_digest: Digest,
    /// The release's artifacts.
    pub artifacts: Vec<Digest>,
    /// The reason, when the requester broke glass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<String>,
    /// The keys whose signatures it recorded as verified (absent in events written
    /// before keys were recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyUse>,
}

/// `environment.certified`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentCertified {
    /// The environment.
    pub environment: String,
    /// The release now certified there.
    pub release: String,
    /// The promotion.
    pub promotion: String,
    /// The decision that allowed it.
    pub decision: String,
    /// The release's artifacts.
    pub artifacts: Vec<Digest>,
}

/// `approval.recorded`. A confidential rationale stays out of the ledger: only a
/// commitment to it is there, salted so that it cannot be guessed (leaves written before
/// commitments were salted carry a bare `rationale_digest` instead, and still parse).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRecorded {
    /// The approval's id.
    pub approval: String,
    /// The promotion.
    pub promotion: String,
    /// Approve or reject.
    pub verdict: Verdict,
    /// The rationale, unless confidential.
    pub rationale: Option<String>,
    /// SHA-256 of the rationale: for a public rationale (and, in leaves written before
    /// commitments were salted, for a confidential one too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale_digest: Option<Digest>,
    /// For a confidential rationale: `hmac-sha256:HEX`, see
    /// [`crate::review_commitment::commit`]; its salt is kept in state with the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale_commitment: Option<String>,
    /// Whether the rationale is confidential.
    pub confidential: bool,
    /// The risk the reviewer sees.
    pub risk: Risk,
    /// When it stops counting.
    pub expires_at: Timestamp,
    /// The release.
    pub release: String,
    /// The release manifest's digest it is bound to.
    pub release_digest: Digest,
    /// The environment it is bound to.
    pub environment: String,
    /// The policy version it is bound to.
    pub policy: String,
    /// The release certified in the environment when it was given.
    pub context: Option<String>,
    /// The same reviewer's earlier approval it replaces.
    pub supersedes: Option<String>,
    /// The release's artifacts.
    pub artifacts: Vec<Digest>,
    /// A review of a break-glass promotion after it was certified.
    #[serde(default, skip_serializing_if = "is_false")]
    pub after_the_fact: bool,
    /// The reviewer's signed approval statement (not when the rationale is confidential:
    /// it quotes the rationale; the record in state keeps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<Envelope>,
    /// The digest of the signed statement, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_digest: Option<Digest>,
    /// The keys whose signatures it recorded as verified (absent in events written
    /// before keys were recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyUse>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

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

impl Event {
    /// `body`, done by `actor` (with how they authenticated) at their time.
    pub fn by(actor: &crate::Actor, body: EventBody) -> Event {
        Event {
            at: actor.now,
            actor: actor.principal.clone(),
            auth: actor.auth.clone(),
            body,
        }
    }

    /// The event's kind.
    pub fn kind(&self) -> &str {
        self.body.kind()
    }

    /// The environment it is about, if any.
    pub fn environment(&self) -> Option<&str> {
        use EventBody as B;
        Some(match &self.body {
            B::PromotionRequested(e) => &e.environment,
            B::DecisionRecorded(e) => &e.environment,
            B::EnvironmentCertified(e) => &e.environment,
            B::ApprovalRecorded(e) => &e.environment,
            B::DeployReported(e) => &e.environment,
            B::DriftDetected(e) => &e.environment,
            B::RolledBack(e) => &e.environment,
            B::RollbackRefused(e) => &e.environment,
            B::Unknown(f) => return f.get("environment").and_then(Value::as_str),
            _ => return None,
        })
    }

    /// The artifact digests it names.
    pub fn artifacts(&self) -> &[Digest] {
        use EventBody as B;
        match &self.body {
            B::ArtifactRegistered(e) => &e.artifacts,
            B::ProvenanceDiscrepancy(e) => &e.artifacts,
            B::EvidenceAttached(e) => &e.artifacts,
            B::ReleaseCreated(e) => &e.artifacts,
            B::PromotionRequested(e) => &e.artifacts,
            B::DecisionRecorded(e) => &e.artifacts,
            B::EnvironmentCertified(e) => &e.artifacts,
            B::ApprovalRecorded(e) => &e.artifacts,
            B::DeployReported(e) => &e.artifacts,
            B::DriftDetected(e) => &e.artifacts,
            B::RolledBack(e) => &e.artifacts,
            _ => &[],
        }
    }

    /// The event as a JSON value (what the leaf holds, before canonicalisation).
    pub fn to_value(&self) -> AppResult<Value> {
        let mut fields = match &self.body {
            EventBody::Unknown(fields) => fields.clone(),
            body => match serde_json::to_value(body) {
                Ok(Value::Object(fields)) => fields,
                Ok(_) => return Err(AppError::invalid("an event is not a JSON object")),
                Err(e) => {
                    return Err(AppError::invalid(format!(
                        "event {} is not representable: {e}",
                        self.kind()
                    )));
                }
            },
        };
        fields.insert("at".into(), Value::String(self.at.to_string()));
        fields.insert("actor".into(), Value::String(self.actor.clone()));
        if let Some(auth) = &self.auth {
            let auth = serde_json::to_value(auth).map_err(|e| AppError::invalid(e.to_string()))?;
            fields.insert("auth".into(), auth);
        }
        Ok(Value::Object(fields))
    }

    /// The leaf: the event's RFC 8785 bytes.
    pub fn to_leaf(&self) -> AppResult<CanonicalJson> {
        CanonicalJson::from_value(&self.to_value()?).map_err(|e| {
            AppError::invalid(format!("event {} is not representable: {e}", self.kind()))
        })
    }

    /// Reads a leaf. A kind this version does not know is [`EventBody::Unknown`]; a known
    /// kind whose fields do not match its schema is an error naming the kind.
    pub fn from_leaf(leaf: &[u8]) -> Result<Event, EventError> {
        // One pass splits the object into its members, each value's JSON text kept as it
        // is; each value is then read straight into its typed field. (Reading a `Value`
        // tree first, then the internally tagged enum, which buffers the tree once more,
        // built three trees per leaf: verifying a bundle reads a million leaves.) A
        // repeated member keeps its last value, as a `Map` does.
        let mut fields: BTreeMap<Member<'_>, &RawValue> = serde_json::from_slice(leaf)
            .map_err(|e| EventError(format!("not a JSON object: {e}")))?;
        let mut take_str = |name: &str| {
            fields
                .remove(name)
                .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
                .ok_or_else(|| EventError(format!("no {name:?} text")))
        };
        let at = take_str("at")?
            .parse::<Timestamp>()
            .map_err(|e| EventError(format!("at: {e}")))?;
        let actor = take_str("actor")?;
        let auth = match fields.remove("auth") {
            None => None,
            Some(v) => {
                Some(serde_json::from_str(v.get()).map_err(|e| EventError(format!("auth: {e}")))?)
            }
        };
        let kind = match fields.get("type") {
            Some(v) => serde_json::from_str::<String>(v.get()).ok(),
            None => None,
        }
        .ok_or_else(|| EventError("no \"type\" text".into()))?;
        let known = fields
            .iter()
            .filter(|(name, _)| name.0 != "type")
            .map(|(name, value)| (name.0.clone(), *value));
        let read = EventBody::read_known(
            &kind,
            serde::de::value::MapDeserializer::<_, serde_json::Error>::new(known),
        );
        let body = match read {
            Some(body) => body.map_err(|e| EventError(format!("{kind}: {e}")))?,
            None => EventBody::Unknown(
                fields
                    .into_iter()
                    .map(|(name, value)| {
                        serde_json::from_str(value.get())
                            .map(|v| (name.0.into_owned(), v))
                            .map_err(|e| EventError(format!("{kind}: {e}")))
                    })
                    .collect::<Result<Map<String, Value>, EventError>>()?,
            ),
        };
        Ok(Event {
            at,
            actor,
            auth,
            body,
        })
    }
}

/// A member name of a leaf's object, borrowed from the leaf unless it has escapes.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
struct Member<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

impl std::borrow::Borrow<str> for Member<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Event, D::Error> {
        let fields = Map::deserialize(deserializer)?;
        let leaf = serde_json::to_vec(&fields).map_err(serde::de::Error::custom)?;
        Event::from_leaf(&leaf).map_err(serde::de::Error::custom)
    }
}

/// A leaf that is not an event of the kind it says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a custody event: {0}")]
pub struct EventError(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_kind_is_kept_whole_and_encodes_back_unchanged() {
        let leaf = br#"{"actor":"x","at":"2026-11-01T00:00:00Z","future":{"a":[1,2]},"type":"widget.frobbed"}"#;
        let event = Event::from_leaf(leaf).unwrap();
        assert_eq!(event.kind(), "widget.frobbed");
        assert!(matches!(event.body, EventBody::Unknown(_)));
        assert_eq!(event.to_leaf().unwrap().as_bytes(), leaf);
    }

    #[test]
    fn a_known_kind_with_wrong_fields_is_an_error_naming_it() {
        let leaf = br#"{"actor":"x","at":"2026-11-01T00:00:00Z","type":"token.revoked","token":7,"principal":"p"}"#;
        let err = Event::from_leaf(leaf).unwrap_err();
        assert!(err.to_string().contains("token.revoked"), "{err}");
        let extra = br#"{"actor":"x","at":"2026-11-01T00:00:00Z","type":"token.revoked","token":"t","principal":"p","sneaky":1}"#;
        assert!(
            Event::from_leaf(extra).is_err(),
            "unknown fields of a known kind"
        );
        assert!(Event::from_leaf(b"[1]").is_err());
        assert!(Event::from_leaf(br#"{"type":"token.revoked"}"#).is_err());
    }

    #[test]
    fn auth_is_written_only_when_known() {
        let mut event = Event {
            at: "2026-11-01T00:00:00Z".parse().unwrap(),
            actor: "root".into(),
            auth: None,
            body: EventBody::TokenRevoked(TokenRevoked {
                token: "t1".into(),
                principal: "argo".into(),
                cascade_from: None,
            }),
        };
        let plain = event.to_leaf().unwrap();
        assert!(
            !std::str::from_utf8(plain.as_bytes())
                .unwrap()
                .contains("auth")
        );
        event.auth = Some(Authentication::Local { user: "ops".into() });
        let leaf = event.to_leaf().unwrap();
        let back = Event::from_leaf(leaf.as_bytes()).unwrap();
        assert_eq!(back, event);
        let header = custody_model::EventHeader::read(leaf.as_bytes()).unwrap();
        assert_eq!(header.auth, event.auth);
    }
}
