//! What the verified entries say, for people: what runs where, how each release got
//! there, who approved it and why, which gates were overridden, and the rollbacks. Built by
//! the lineage check from verified entries only.

use custody_policy::GateResult;
use serde::Serialize;

/// What the verified entries say.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Story {
    /// Each environment's certified release at the anchor, in pipeline order.
    pub environments: Vec<EnvironmentStory>,
    /// Every certification, in ledger order.
    pub certifications: Vec<CertificationStory>,
    /// Every rollback, in ledger order.
    pub rollbacks: Vec<RollbackStory>,
    /// Signatures a later revocation withdrew trust from, in ledger order of what they
    /// signed.
    pub withdrawn: Vec<WithdrawnStory>,
}

/// An environment at the anchor.
#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentStory {
    /// Its name.
    pub name: String,
    /// The release certified there.
    pub release: String,
    /// The entry that made it so.
    pub since_entry: u64,
    /// Whether a later revocation withdrew trust from a signature it rests on (its
    /// manifest's, or an artifact's provenance): see [`Story::withdrawn`].
    pub trust_withdrawn: bool,
}

/// A signature that counted when the ledger recorded it, and that a revocation entered
/// later took back: its key was compromised since a time at or before the signing. The
/// decisions made with it were right then (they replay to the same gates); what it vouches
/// for is no longer trusted, and the deploy gate denies it.
#[derive(Debug, Clone, Serialize)]
pub struct WithdrawnStory {
    /// The entry that recorded the signature.
    pub entry: u64,
    /// What it signed: `release` (a manifest) or `provenance` (an artifact's).
    pub what: &'static str,
    /// The release, or the artifact's name and digest.
    pub name: String,
    /// The key.
    pub key: String,
    /// The `key.revoked` entry.
    pub revoked_at_entry: u64,
    /// Its reason.
    pub reason: String,
    /// From when nothing the key signed counts (RFC 3339).
    pub cutoff: String,
    /// The environments whose release at the anchor rests on it.
    pub environments: Vec<String>,
}

/// How a release got into an environment.
#[derive(Debug, Clone, Serialize)]
pub struct CertificationStory {
    /// The `environment.certified` entry.
    pub entry: u64,
    /// The environment.
    pub environment: String,
    /// The release.
    pub release: String,
    /// Its manifest's digest.
    pub release_digest: String,
    /// The release key that signed its manifest.
    pub release_key: Option<String>,
    /// Who created the release.
    pub created_by: String,
    /// When it was certified.
    pub at: String,
    /// The promotion.
    pub promotion: String,
    /// Who asked.
    pub requested_by: String,
    /// When.
    pub requested_at: String,
    /// Why they broke glass, if they did.
    pub break_glass: Option<String>,
    /// The decision.
    pub decision: String,
    /// When it was made.
    pub decided_at: String,
    /// The policy version it was made under.
    pub policy: String,
    /// Its gates.
    pub gates: Vec<GateResult>,
    /// The gates break-glass overrode (the exceptions in force).
    pub overridden: Vec<String>,
    /// The reviews it counted, and reviews after the fact.
    pub approvals: Vec<ApprovalStory>,
    /// The release's artifacts.
    pub artifacts: Vec<ArtifactStory>,
}

/// A review.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalStory {
    /// Its entry.
    pub entry: u64,
    /// Who.
    pub by: String,
    /// Approve (or reject).
    pub approve: bool,
    /// When.
    pub at: String,
    /// The risk they saw.
    pub risk: String,
    /// Why (`None`: confidential and withheld from this bundle).
    pub rationale: Option<String>,
    /// Whether the rationale is confidential.
    pub confidential: bool,
    /// A review of a break-glass promotion after it was certified.
    pub after_the_fact: bool,
}

/// An artifact of a certified release.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactStory {
    /// Its name.
    pub name: String,
    /// Its digest.
    pub digest: String,
    /// The builder its provenance names.
    pub builder_id: Option<String>,
    /// `repository@commit`.
    pub source: Option<String>,
    /// The builder key that signed its provenance.
    pub provenance_key: Option<String>,
    /// Its evidence: `kind (format)`.
    pub evidence: Vec<String>,
}

/// A rollback.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackStory {
    /// Its entry.
    pub index: u64,
    /// The environment.
    pub environment: String,
    /// The release left.
    pub from: String,
    /// The release restored.
    pub to: String,
    /// Why.
    pub reason: String,
    /// After a failed deploy (not asked for).
    pub automatic: bool,
    /// When.
    pub at: String,
}
