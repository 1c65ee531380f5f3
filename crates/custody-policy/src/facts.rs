//! What a promotion decision is made from: recorded facts and the clock, nothing else.
//!
//! The application gathers these from the ledger's state (and verifies signatures while it
//! does, recording the outcome as a fact); [`crate::evaluate`] reads only them. A decision
//! records the facts' digest, so replaying it later from the recorded facts must reach the
//! same outcome.

use serde::{Deserialize, Serialize};

/// Everything a promotion's gates look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facts {
    /// The evaluation time, Unix seconds (passed in, never read inside evaluation).
    pub now: i64,
    /// The target environment.
    pub environment: String,
    /// Who asked for the promotion.
    pub requested_by: String,
    /// Who made the credential the promotion was asked for with, when someone other than
    /// the requester did (an admin who minted their token, and saw its secret): they could
    /// have asked themselves, so they never review it either. Absent otherwise, so the
    /// digests of earlier facts are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_through: Option<String>,
    /// The release being promoted.
    pub release: ReleaseFacts,
    /// The release's standing in the environment before the target, if there is one.
    pub previous: Option<PreviousFacts>,
    /// Every approval or rejection recorded for this promotion (also superseded ones).
    pub approvals: Vec<ApprovalFacts>,
    /// The requester broke glass, saying why: the gates that only time or people can
    /// satisfy are overridden if the policy lets them (absent from facts without it, so
    /// the digests of earlier facts are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<String>,
    /// The approved exceptions that name the release or one of its artifacts (absent when
    /// there are none, so earlier facts keep their digests).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<ExceptionFacts>,
}

/// A release and how it was signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseFacts {
    /// Release name.
    pub name: String,
    /// Release version.
    pub version: String,
    /// Digest of the signed manifest envelope's payload (`sha256:…`).
    pub digest: String,
    /// Key id of the manifest's signature that verified with a trusted release key, if any.
    pub signing_key: Option<String>,
    /// How many signatures the manifest carries (trusted or not).
    pub signatures: usize,
    /// Who created (and signed) the release.
    pub signed_by: String,
    /// The key of the policy in force that the signing key counts as, when that is not
    /// the signing key itself (the application reads it from the keyring): a key retired
    /// by rotation keeps verifying what it signed while trusted, in the place of its
    /// successor, and a successor introduced by a signed hand-over counts in the place of
    /// the key it succeeded. Absent: the signing key itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_counts_as: Option<String>,
    /// Why signatures by keys the keyring knows did not count (revoked, or not trusted
    /// when the ledger recorded the signature), for the gate's reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_keys: Vec<String>,
    /// The artifacts the manifest names.
    pub artifacts: Vec<ArtifactFacts>,
}

/// An artifact of the release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactFacts {
    /// Its name.
    pub name: String,
    /// Its digest (`sha256:…`).
    pub digest: String,
    /// Who registered it (the build's principal).
    pub built_by: String,
    /// Its provenance, if any was recorded.
    pub provenance: Option<ProvenanceFacts>,
    /// Evidence recorded about it.
    pub evidence: Vec<EvidenceFacts>,
    /// Further builds of the same source and parameters that gave the same digest, with
    /// what their provenance said (absent when there are none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rebuilds: Vec<ProvenanceFacts>,
}

/// What a provenance envelope said, and whether its signature verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceFacts {
    /// Key id whose signature verified, if any.
    pub signing_key: Option<String>,
    /// The SLSA `runDetails.builder.id`.
    pub builder_id: String,
    /// The source repository the build resolved.
    pub source_repo: String,
    /// The source commit.
    pub source_commit: String,
    /// Whether a subject of the statement has the artifact's digest.
    pub subject_matches: bool,
    /// The key of the policy in force that the signing key counts as, when that is not
    /// the signing key itself (the application reads it from the keyring): a key retired
    /// by rotation keeps verifying what it signed while trusted, in the place of its
    /// successor, and a successor introduced by a signed hand-over counts in the place of
    /// the key it succeeded. Absent: the signing key itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_counts_as: Option<String>,
    /// Why signatures by keys the keyring knows did not count (revoked, or not trusted
    /// when the ledger recorded the signature), for the gate's reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_keys: Vec<String>,
}

/// A piece of evidence about an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceFacts {
    /// Its type, e.g. `test-results`.
    pub kind: String,
    /// When it was recorded, Unix seconds.
    pub at: i64,
    /// What its report says, as far as the policy's rules care: only on the pieces the
    /// rules read (the newest of each type and report format holding each kind of
    /// content), and only when custody read the report itself (absent for evidence
    /// recorded by its digest alone, before it did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<crate::ReportFacts>,
    /// Whether custody read the report itself (`false`: only its digest was given, so
    /// nobody knows what it says, and it is not evidence of anything). Absent in facts
    /// recorded before this was kept, which counted every piece as present: they replay
    /// as they were decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<bool>,
}

/// The release in the environment before the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousFacts {
    /// That environment's name.
    pub environment: String,
    /// When this release was (first) certified there, Unix seconds.
    pub certified_at: Option<i64>,
    /// Whether a deployer reported this release running successfully there.
    pub deploy_verified: bool,
}

/// One approval or rejection as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalFacts {
    /// Its id.
    pub id: String,
    /// Who gave it.
    pub by: String,
    /// Approve (true) or reject (false).
    pub approve: bool,
    /// When, Unix seconds.
    pub at: i64,
    /// When it stops counting, Unix seconds.
    pub expires_at: i64,
    /// The release digest it was given for.
    pub release_digest: String,
    /// The environment it was given for.
    pub environment: String,
    /// The policy version it was given under.
    pub policy_digest: String,
    /// Whether a later record by the same reviewer replaced it.
    pub superseded: bool,
    /// Why its signature no longer counts, when the personal key that signed it was
    /// revoked (or compromised) by the time it was recorded (read from the keyring).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_refused: Option<String>,
    /// Whether it was signed with the approver's enrolled personal key (absent when not, so
    /// the digests of earlier facts are unchanged).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signed: bool,
}

/// An approved exception (waiver) as a decision reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionFacts {
    /// Its id.
    pub id: String,
    /// The finding it waives.
    pub finding: WaivedFinding,
    /// The artifact it covers (a digest), when it covers one artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// The release it covers (`name@version`), when it covers a whole release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Who asked for it.
    pub requested_by: String,
    /// Who approved it.
    pub approved_by: String,
    /// When, Unix seconds.
    pub approved_at: i64,
    /// When it stops counting, Unix seconds (exclusive).
    pub expires_at: i64,
    /// The environments it holds in (empty: every one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    /// Whether its approval was signed with the approver's enrolled personal key (absent
    /// when not, so the digests of earlier facts are unchanged).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signed: bool,
}

/// What an exception waives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum WaivedFinding {
    /// A vulnerability, by its id or any of its aliases (`CVE-…`, `GHSA-…`).
    Vulnerability {
        /// The id.
        id: String,
    },
    /// A licence found in one package.
    Licence {
        /// The licence expression as the SBOM wrote it.
        licence: String,
        /// The package's name (or `name@version`).
        package: String,
    },
}

impl std::fmt::Display for WaivedFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaivedFinding::Vulnerability { id } => write!(f, "vulnerability {id}"),
            WaivedFinding::Licence { licence, package } => {
                write!(f, "licence {licence} of {package}")
            }
        }
    }
}
