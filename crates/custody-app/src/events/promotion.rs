//! A promotion's events: the request, the decision on its gates, the reviews, and the
//! certification that makes a release an environment's.

use custody_crypto::dsse::Envelope;
use custody_model::{Digest, Risk, Timestamp, Verdict};
use custody_policy::GateResult;
use serde::{Deserialize, Serialize};

use super::{KeyUse, is_false};

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

impl ApprovalRecorded {
    /// The rationale for a line a person reads: `withheld` in its place when confidential.
    pub(crate) fn shown_rationale<'a>(&'a self, withheld: &'a str) -> &'a str {
        if self.confidential {
            withheld
        } else {
            self.rationale.as_deref().unwrap_or("")
        }
    }
}
