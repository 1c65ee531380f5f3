//! The state custody projects from its ledger: one record type per state kind. Each is
//! written only together with the event that explains the change (see `custody_store`).

use custody_crypto::dsse::Envelope;
use custody_model::{Digest, Timestamp};
pub use custody_model::{PromotionStatus, Risk, Verdict};
use custody_policy::Decision;
use serde::{Deserialize, Serialize};

use crate::attestations::{BuildFields, ManifestArtifact, ReadProvenance};

/// State kinds.
pub(crate) mod kind {
    pub(crate) const POLICY: &str = "policy";
    pub(crate) const POLICY_VERSION: &str = "policy-version";
    /// The digest of the policy in force alone (a small read for every request).
    pub(crate) const POLICY_DIGEST: &str = "policy-digest";
    /// A proposed policy version, by proposal id.
    pub(crate) const PROPOSAL: &str = "proposal";
    pub(crate) const ARTIFACT: &str = "artifact";
    pub(crate) const BUILD_SOURCE: &str = "build-source";
    pub(crate) const RELEASE: &str = "release";
    pub(crate) const PROMOTION: &str = "promotion";
    pub(crate) const APPROVAL: &str = "approval";
    pub(crate) const DECISION: &str = "decision";
    pub(crate) const ENVIRONMENT: &str = "environment";
    /// A promotion waiting to enter an environment, by `environment/promotion`.
    pub(crate) const PENDING: &str = "pending";
    /// A break-glass promotion waiting for its after-the-fact review, by
    /// `environment/promotion`.
    pub(crate) const REVIEW_DUE: &str = "review-due";
    /// Alert deliveries not yet made.
    pub(crate) const OUTBOX: &str = "outbox";
    pub(crate) const CERTIFICATION: &str = "certification";
    pub(crate) const DEPLOYED: &str = "deployed";
    pub(crate) const TOKEN: &str = "token";
    pub(crate) const REPLAY: &str = "replay";
    /// A signed break-glass statement used, by its envelope's digest: each breaks glass
    /// once (its promotion id as the value).
    pub(crate) const STATEMENT_USED: &str = "statement-used";
    pub(crate) const IDEMPOTENCY: &str = "idempotency";
    /// The key rotations and revocations (`keyring/current`, see keyring.rs).
    pub(crate) const KEYRING: &str = "keyring";
    /// An exception (waiver), by id.
    pub(crate) const EXCEPTION: &str = "exception";
    /// The exceptions asked for about one subject, by `artifact:DIGEST` or
    /// `release:NAME@VERSION`.
    pub(crate) const EXCEPTIONS_OF: &str = "exceptions-of";
}

/// The policy in force.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// The bundle's digest.
    pub digest: String,
    /// The bundle.
    pub bundle: custody_policy::Bundle,
    /// When it was applied.
    pub applied_at: Timestamp,
    /// Who applied it.
    pub applied_by: String,
}

/// A registered artifact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArtifactRecord {
    /// Its name.
    pub name: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes, when custody hashed the file.
    pub size: Option<u64>,
    /// Who registered it.
    pub registered_by: String,
    /// When.
    pub registered_at: Timestamp,
    /// The build as declared, if it was.
    pub build: Option<BuildFields>,
    /// The provenance envelope, if any.
    pub provenance: Option<Envelope>,
    /// What its verified provenance says.
    pub provenance_facts: Option<ReadProvenance>,
    /// Evidence attached to it.
    pub evidence: Vec<EvidenceRecord>,
    /// Further builds of the same digest by other builders, each with its verified
    /// provenance (reproducible builds: each is agreeing evidence). Absent in records
    /// written before rebuilds were kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rebuilds: Vec<RebuildRecord>,
}

/// Another builder's build of a registered digest: the same bytes, built again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RebuildRecord {
    /// Who registered the rebuild.
    pub registered_by: String,
    /// When.
    pub registered_at: Timestamp,
    /// Its provenance envelope.
    pub provenance: Envelope,
    /// What that provenance says (verified when it was recorded).
    pub provenance_facts: ReadProvenance,
}

/// A piece of evidence about an artifact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvidenceRecord {
    /// Its type, e.g. `test-results`.
    pub kind: String,
    /// The format it came in, e.g. `junit`.
    pub format: String,
    /// Digest of the evidence file.
    pub digest: Digest,
    /// Who attached it.
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// Whether custody read the report itself (kept as the blob named `digest`); false
    /// for evidence recorded by its digest alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read: bool,
    /// What its report says, in totals, as its `evidence.attached` event records it (so
    /// what it holds, and what a page shows of it, need no reading of the report); absent
    /// when custody did not read it, and in records made before this was kept (then its
    /// format says what it may hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<custody_evidence::Summary>,
    /// What its report is about, as its writer names it (empty when it does not say, or
    /// custody did not read it, and in records made before this was kept).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
}

/// The artifacts built from one source and set of parameters (provenance discrepancy).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BuildSourceRecord {
    /// Artifact name → digests built from this source and these parameters.
    pub digests: std::collections::BTreeMap<String, Vec<Digest>>,
}

/// A release.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Digest of the manifest statement (the release's identity).
    pub digest: Digest,
    /// The artifacts the manifest names.
    pub artifacts: Vec<ManifestArtifact>,
    /// The signed manifest, or the unsigned statement's envelope with no signatures.
    pub manifest: Envelope,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
}

impl ReleaseRecord {
    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// A promotion request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PromotionRecord {
    /// Its id.
    pub id: String,
    /// `name@version`.
    pub release: String,
    /// The release digest.
    pub release_digest: Digest,
    /// The target environment.
    pub environment: String,
    /// Who asked.
    pub requested_by: String,
    /// Who made the token they asked with, when someone else did (never its reviewer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_through: Option<String>,
    /// When.
    pub requested_at: Timestamp,
    /// Where it stands.
    pub status: PromotionStatus,
    /// Its decisions, oldest first.
    pub decisions: Vec<String>,
    /// Its approvals and rejections, oldest first (superseded ones too).
    pub approvals: Vec<String>,
    /// Set when the requester broke glass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<BreakGlass>,
}

/// A promotion whose requester broke glass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlass {
    /// Why, in the requester's words.
    pub reason: String,
    /// The after-the-fact review (an approval id) once someone else has given it.
    pub reviewed_by: Option<String>,
}

/// A break-glass promotion certified without its usual gates, waiting for its mandatory
/// after-the-fact review: `review-due/{environment}/{promotion}`, written with the
/// certification and removed by the review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewDue {
    /// `name@version`.
    pub release: String,
    /// Who broke glass.
    pub requested_by: String,
    /// Why.
    pub reason: String,
    /// When it was certified.
    pub at: Timestamp,
    /// The gates it went past.
    pub overridden: Vec<String>,
}

/// An approval or rejection. A changed mind is a new record whose `supersedes` names this
/// one; this one then gets `superseded_by` and stops counting, and is never edited else.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// Its id.
    pub id: String,
    /// The promotion.
    pub promotion: String,
    /// Approve or reject.
    pub verdict: Verdict,
    /// Who.
    pub by: String,
    /// Why.
    pub rationale: String,
    /// Whether `rationale` is for auditors and the people involved only.
    #[serde(default)]
    pub confidential: bool,
    /// For a confidential rationale: the random salt (hex) of its commitment in the
    /// ledger, which opens it for an auditor (see `custody_app::review_commitment`).
    /// Hidden with the rationale from whoever may not read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale_salt: Option<String>,
    /// Risk posture.
    pub risk: Risk,
    /// When.
    pub at: Timestamp,
    /// When it stops counting.
    pub expires_at: Timestamp,
    /// The release digest it is bound to.
    pub release_digest: Digest,
    /// The environment it is bound to.
    pub environment: String,
    /// The policy version it is bound to.
    pub policy_digest: String,
    /// The environment at that moment: its certified release, if any.
    pub context: Option<String>,
    /// The earlier record by the same reviewer this one replaces.
    pub supersedes: Option<String>,
    /// The later record that replaced this one.
    pub superseded_by: Option<String>,
    /// The reviewer's approval statement, signed with their enrolled personal key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<Envelope>,
    /// The personal key that signed the statement (absent without one, and in records
    /// written before keys were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_with: Option<crate::events::KeyUse>,
}

/// A recorded decision, with everything needed to replay it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Its id.
    pub id: String,
    /// The promotion decided about.
    pub promotion: String,
    /// When.
    pub at: Timestamp,
    /// The facts evaluated.
    pub facts: custody_policy::Facts,
    /// The outcome.
    pub decision: Decision,
    /// The signed VSA.
    pub vsa: Envelope,
}

/// A waiting promotion, as the pipeline board shows it: the state record
/// `pending/{environment}/{promotion}`, written by the decision that leaves the promotion
/// waiting and removed by the one that certifies or rejects it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPromotion {
    /// `name@version`.
    pub release: String,
    /// Who asked.
    pub requested_by: String,
    /// When.
    pub requested_at: Timestamp,
    /// The gates its latest decision did not pass.
    pub blocking: Vec<Blocking>,
}

/// A gate holding a waiting promotion back. Stored as the array `[gate, status, reason]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    from = "(String, custody_policy::Status, String)",
    into = "(String, custody_policy::Status, String)"
)]
pub struct Blocking {
    /// The gate's name.
    pub gate: String,
    /// `fail` (the facts must change) or `waiting` (time or people may pass it).
    pub status: custody_policy::Status,
    /// Why, for a person.
    pub reason: String,
}

impl From<(String, custody_policy::Status, String)> for Blocking {
    fn from((gate, status, reason): (String, custody_policy::Status, String)) -> Self {
        Blocking {
            gate,
            status,
            reason,
        }
    }
}

impl From<Blocking> for (String, custody_policy::Status, String) {
    fn from(b: Blocking) -> Self {
        (b.gate, b.status, b.reason)
    }
}

/// A release's time as the certified release of an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certification {
    /// `name@version`.
    pub release: String,
    /// Its digest.
    pub release_digest: Digest,
    /// The promotion that certified it (for a rollback, the original one).
    pub promotion: String,
    /// The decision that allowed it.
    pub decision: String,
    /// When it became certified here.
    pub at: Timestamp,
    /// How: a promotion or a rollback.
    pub by_rollback: bool,
}

/// An environment: the release certified there now.
///
/// Certifying writes this record whatever it held (the ledger orders concurrent
/// certifications, and state writes apply in ledger order), so promotions into one
/// environment never contend for it; a rollback, which reads it to decide, writes it
/// with a compare-and-swap on its version.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EnvironmentRecord {
    /// Its name.
    pub name: String,
    /// The certified release now.
    pub certified: Option<Certification>,
}

/// A release's standing in one environment: kept as long as the ledger, rewritten on each
/// certification there (its `log_index` then orders the environment's certifications,
/// which is what a rollback walks back through).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertificationRecord {
    /// The environment.
    pub environment: String,
    /// The latest certification of the release there.
    pub certification: Certification,
    /// When it was first certified there.
    pub first_certified_at: Timestamp,
    /// Whether a rollout of it failed there since its latest certification.
    pub failed: bool,
}

impl CertificationRecord {
    /// The state key of a release's standing in an environment.
    pub fn key(environment: &str, release: &str) -> String {
        format!("{environment}/{release}")
    }
}

/// A successful rollout of a release in an environment, as a deployer reported it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployedRecord {
    /// Who reported it.
    pub by: String,
    /// When.
    pub at: Timestamp,
}

/// What an idempotency key of a promotion or review stood for before receipts (see
/// `promotion::PromotionReceipt`): only read, so that a retry across an upgrade converges.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The promotion.
    pub promotion: String,
    /// SHA-256 of the request's canonical JSON.
    pub fingerprint: Digest,
}

/// The stored outcome of a request made with an idempotency key, written in the same
/// append as the request's effects, so that a retry returns it instead of acting again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplayRecord {
    /// SHA-256 of the request's canonical JSON.
    pub fingerprint: Digest,
    /// The outcome as first returned.
    pub outcome: serde_json::Value,
}
