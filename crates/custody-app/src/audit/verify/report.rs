//! What a verification reports: the checks made (by kind, how often), each failure with
//! its entry and check, and apart from them what the exporter claims and nothing signs.

use serde::Serialize;

use super::super::format::{Confidential, Scope};
use super::{Story, Truncation};

/// What was checked, by kind, and how often.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// Checkpoint signatures verified with the log key.
    pub checkpoints: u64,
    /// Consistency proofs between checkpoints verified.
    pub consistency_proofs: u64,
    /// Entries read.
    pub entries: u64,
    /// Inclusion proofs verified (scoped bundles).
    pub inclusion_proofs: u64,
    /// Checkpoint roots recomputed from the entries (complete bundles).
    pub roots_recomputed: u64,
    /// Policy versions read from the ledger (the key history).
    pub policies: u64,
    /// Provenance envelopes verified against the builder keys in force.
    pub provenance: u64,
    /// Release manifests verified against the release keys in force.
    pub manifests: u64,
    /// VSAs verified against the attestor key their leaf names.
    pub vsas: u64,
    /// custody's statements of what it read in evidence reports, verified against the
    /// attestor key their leaf names.
    pub evidence_statements: u64,
    /// Raw reports found whole (hashing to the digest their evidence entries name).
    pub reports: u64,
    /// Signed approval statements (reviews, and break-glass requests) verified against
    /// the personal keys in force.
    pub approvals_signed: u64,
    /// Decisions replayed to their recorded gates.
    pub decisions_replayed: u64,
    /// What decisions' facts say a raw report reads, read again from the report under
    /// the rules of the decision's policy and environment, and found the same.
    pub facts_rederived: u64,
    /// Such readings that could not be confirmed: the report reads otherwise to this
    /// custody's parsers than to the custody that attached it, or not at all (each in a
    /// note).
    pub facts_unconfirmed: u64,
    /// Confidential rationales checked against their commitments.
    pub rationales_checked: u64,
    /// Confidential rationales withheld from the exporter (their commitments are in the
    /// proven leaves).
    pub rationales_withheld: u64,
    /// Certifications whose lineage was checked.
    pub certifications: u64,
}

impl Checked {
    /// Signatures verified: checkpoints and envelopes.
    pub fn signatures(&self) -> u64 {
        self.checkpoints
            + self.provenance
            + self.manifests
            + self.vsas
            + self.evidence_statements
            + self.approvals_signed
    }
}

/// Which check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// A member's content is not in the bundle format.
    Format,
    /// A checkpoint's signature by the log key.
    CheckpointSignature,
    /// A consistency proof between checkpoints (a fork or a rewritten log).
    Consistency,
    /// Entry indices: ascending, none missing.
    EntryOrder,
    /// An entry's leaf against its hash in the signed tree.
    LeafHash,
    /// An entry's inclusion proof against the anchor.
    Inclusion,
    /// A checkpoint's root against the entries.
    Root,
    /// A leaf that is not a custody event.
    Event,
    /// A policy version recorded in the ledger.
    Policy,
    /// A provenance envelope against the builder keys in force.
    Provenance,
    /// A release manifest against the release keys in force.
    Manifest,
    /// A VSA against the attestor key.
    Vsa,
    /// custody's statement of what it read in an evidence report, against the attestor
    /// key.
    Evidence,
    /// A raw report against the digest its evidence entry names.
    Report,
    /// A signed approval (or break-glass) against the personal keys in force.
    Approval,
    /// A decision's facts and replay.
    Decision,
    /// A confidential rationale against its commitment.
    Rationale,
    /// The token an entry was made with, against the ledger's `token.created`.
    Credential,
    /// A certification's lineage.
    Lineage,
    /// The trailer: the bundle is whole.
    Trailer,
    /// The anchor against the checkpoint the auditor kept (`--checkpoint`).
    PinnedCheckpoint,
    /// The anchor against the fewest entries the auditor expects (`--min-size`).
    MinSize,
}

impl Check {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Check::Format => "format",
            Check::CheckpointSignature => "checkpoint-signature",
            Check::Consistency => "consistency",
            Check::EntryOrder => "entry-order",
            Check::LeafHash => "leaf-hash",
            Check::Inclusion => "inclusion",
            Check::Root => "root",
            Check::Event => "event",
            Check::Policy => "policy",
            Check::Provenance => "provenance",
            Check::Manifest => "manifest",
            Check::Vsa => "vsa",
            Check::Evidence => "evidence",
            Check::Report => "report",
            Check::Approval => "approval",
            Check::Decision => "decision",
            Check::Rationale => "rationale",
            Check::Credential => "credential",
            Check::Lineage => "lineage",
            Check::Trailer => "trailer",
            Check::PinnedCheckpoint => "pinned-checkpoint",
            Check::MinSize => "min-size",
        }
    }
}

/// One failed check: which entry (if it is about one), which check, and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The ledger index of the entry it is about.
    pub entry: Option<u64>,
    /// The check.
    pub check: Check,
    /// What was found, for a person.
    pub detail: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.entry {
            Some(i) => write!(f, "entry {i} [{}]: {}", self.check.name(), self.detail),
            None => write!(f, "[{}]: {}", self.check.name(), self.detail),
        }
    }
}

pub(crate) fn fail(entry: Option<u64>, check: Check, detail: impl Into<String>) -> Failure {
    Failure {
        entry,
        check,
        detail: detail.into(),
    }
}

/// What the manifest says that no signature or proof vouches for: the exporter could
/// have written anything here, so the report keeps it apart from what was verified.
#[derive(Debug, Clone, Serialize)]
pub struct Claims {
    /// Always [`Claims::STATUS`], so that a reader of the JSON alone is told.
    pub status: &'static str,
    /// What the bundle says it covers. Nothing checks that the entries are all of it.
    pub scope: Scope,
    /// Who it says exported it.
    pub exported_by: String,
    /// When it says it was exported.
    pub exported_at: String,
    /// Whether it says confidential rationales are in it (the rationales it carries are
    /// each checked against their commitments; this flag itself is not).
    pub confidential: Confidential,
}

impl Claims {
    /// What the claims are.
    pub const STATUS: &'static str =
        "unverified: as claimed by the exporter in bundle.json, which nothing signs";
}

/// What a verification found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The bundle's format.
    pub format: String,
    /// The log's origin (bound by the checkpoints' signatures: each names it).
    pub origin: String,
    /// What the bundle's manifest claims that nothing signs: who exported it, when, what
    /// it covers. Shown apart, never as a verified fact.
    pub unverified: Claims,
    /// The size of the checkpoint the entries are proved against.
    pub anchor: u64,
    /// Its root, hex (when its checkpoint verified).
    pub anchor_root: Option<String>,
    /// Whether the bundle held every entry up to the anchor.
    pub complete: bool,
    /// Whether the anchor was tied to what the auditor kept (a bundle cut back to an
    /// earlier checkpoint verifies otherwise).
    pub truncation: Truncation,
    /// What was checked.
    pub checked: Checked,
    /// What failed (empty: the bundle verified).
    pub failures: Vec<Failure>,
    /// Things worth knowing that are not failures.
    pub notes: Vec<String>,
    /// What the verified entries say: what is where, and how it got there.
    pub story: Story,
}

impl Report {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// How far a verification has come, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Entries checked so far.
    pub entries: u64,
    /// Entries in the bundle, as its manifest says (the anchor, for a complete bundle).
    pub expected: Option<u64>,
}
