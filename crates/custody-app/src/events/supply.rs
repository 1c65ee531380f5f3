//! What enters the supply chain: artifacts with their build and provenance, rebuilds and
//! discrepancies, evidence, and release manifests.

use custody_crypto::dsse::Envelope;
use custody_model::Digest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::KeyUse;
use crate::attestations::BuildFields;

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
