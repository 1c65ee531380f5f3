//! Changes to the control plane: policy versions and their proposals and reviews, and the
//! keys custody trusts (rotation, revocation, the log key's hand-over).

use std::collections::BTreeMap;

use custody_crypto::dsse::Envelope;
use custody_model::{Timestamp, Verdict};
use serde::{Deserialize, Serialize};

use super::is_false;

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
