//! The bundle's layout, `custody-audit-bundle/v1` (docs/audit-bundle.md says the same for
//! people and other tools).
//!
//! A bundle is a POSIX tar archive whose members come in this order:
//!
//! ```text
//! bundle.json            the manifest: format, log origin, scope, who exported it, when,
//!                        whether confidential rationales are included, the anchor size,
//!                        whether the entries are the whole log up to the anchor
//! checkpoints.jsonl      signed checkpoints (C2SP signed notes), smallest first; the last
//!                        is the anchor every entry is proved against
//! consistency.jsonl      an RFC 9162 consistency proof between each checkpoint and the next
//! keys.json              the log's verifier key and the attestor keys that sign VSAs
//! entries/000000.jsonl…  the ledger entries in scope, ascending index, one JSON object a line
//! reports/sha256/<hex>…  the raw reports the evidence entries name, byte for byte, each
//!                        named by its SHA-256, ascending
//! end.json               how many entries, entry files and reports there are (a
//!                        truncated bundle is noticed)
//! ```
//!
//! An entry line holds the leaf exactly (`leaf`, the RFC 8785 text that was hashed), its
//! RFC 9162 leaf hash (`leaf_hash`), its inclusion proof against the anchor unless the
//! bundle is complete, and what custody keeps *beside* the leaf: a decision's facts, and
//! for a confidential review its rationale (or that it was withheld). Only the leaf is
//! hashed; everything beside it is checked against a commitment the leaf holds.

use custody_ledger::Hash;
use custody_model::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The format this module writes and reads.
pub const FORMAT: &str = "custody-audit-bundle/v1";
/// The manifest member.
pub const MANIFEST: &str = "bundle.json";
/// The checkpoints member.
pub const CHECKPOINTS: &str = "checkpoints.jsonl";
/// The consistency proofs member.
pub const CONSISTENCY: &str = "consistency.jsonl";
/// The keys member.
pub const KEYS: &str = "keys.json";
/// The trailer member.
pub const END: &str = "end.json";
/// Most entries in one entry file.
pub const ENTRIES_PER_FILE: usize = 4096;
/// An entry file is closed once it holds this many bytes (so each is read whole with
/// bounded memory).
pub const ENTRY_FILE_BYTES: usize = 32 << 20;
/// The largest member a reader accepts (an entry file may pass [`ENTRY_FILE_BYTES`] by one
/// line, at most a leaf and its facts).
pub const MAX_MEMBER: u64 = 64 << 20;
/// Most checkpoints a bundle carries (the exporter thins them out beyond).
pub const MAX_CHECKPOINTS: usize = 1024;
/// Most attestor keys a bundle carries.
pub const MAX_ATTESTORS: usize = 64;

/// Where the raw reports are, each named by the hex SHA-256 of its bytes (as OCI image
/// layouts name blobs).
pub const REPORTS: &str = "reports/sha256/";

/// The largest raw report a reader accepts: the largest custody reads at attach.
pub const MAX_REPORT: u64 = custody_evidence::MAX_INPUT_BYTES;

/// The member holding the raw report of SHA-256 `hex`.
pub fn report_member(hex: &str) -> String {
    format!("{REPORTS}{hex}")
}

/// The largest member named `name` may be.
pub fn max_member(name: &str) -> u64 {
    if name.starts_with(REPORTS) {
        MAX_REPORT
    } else {
        MAX_MEMBER
    }
}

/// The name of entry file `n`.
pub fn entry_file(n: u64) -> String {
    format!("entries/{n:06}.jsonl")
}

/// What part of the ledger a bundle covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Scope {
    /// Every entry up to the anchor.
    All,
    /// The entries about one release (`name@version`): everything naming its artifacts.
    Release {
        /// `name@version`.
        release: String,
    },
    /// The entries about one environment, with the lineage of every release certified
    /// there.
    Environment {
        /// Its name.
        environment: String,
    },
    /// The entries stamped in `[since, until)`, with the lineage of every release
    /// certified then.
    Time {
        /// From (inclusive).
        since: Option<Timestamp>,
        /// Until (exclusive).
        until: Option<Timestamp>,
    },
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::All => f.write_str("the whole ledger"),
            Scope::Release { release } => write!(f, "release {release}"),
            Scope::Environment { environment } => write!(f, "environment {environment}"),
            Scope::Time { since, until } => {
                let show = |t: &Option<Timestamp>| t.map_or("…".to_owned(), |t| t.to_string());
                write!(f, "entries stamped {} to {}", show(since), show(until))
            }
        }
    }
}

/// Whether confidential rationales travel in the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidential {
    /// The exporter may read them (an auditor or admin): they are beside their leaves.
    Included,
    /// The exporter may not: each is marked withheld; its commitment is still in its leaf.
    Withheld,
}

/// `bundle.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The log's origin (its checkpoints' first line and its key's name).
    pub origin: String,
    /// What the bundle covers.
    pub scope: Scope,
    /// When it was exported.
    pub exported_at: Timestamp,
    /// Who exported it.
    pub exported_by: String,
    /// Whether confidential rationales are in it.
    pub confidential: Confidential,
    /// The size of the checkpoint every entry is proved against (the last checkpoint).
    pub anchor: u64,
    /// True when the entries are all of `[0, anchor)`: the verifier recomputes the root
    /// from them and no entry carries an inclusion proof.
    pub complete: bool,
}

/// A line of `checkpoints.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointLine {
    /// The tree size it signs.
    pub size: u64,
    /// The C2SP signed note.
    pub note: String,
    /// On a log-key hand-over checkpoint (signed by the retiring and the new log key):
    /// its last leaf, the `log.key_rotated` event, with its inclusion proof, so that a
    /// verifier holding either key follows the hand-over to the other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<Handover>,
}

/// The `log.key_rotated` event a hand-over checkpoint ends with, proved its last leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handover {
    /// The event's leaf: its RFC 8785 JSON exactly as hashed (as a JSON string).
    pub leaf: String,
    /// Its inclusion proof in the checkpoint's tree, hex, leaf to root.
    #[serde(with = "crate::log::hex_hashes")]
    pub proof: Vec<Hash>,
}

/// A line of `consistency.jsonl`: the RFC 9162 proof that the tree of `to` entries extends
/// the tree of `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyLine {
    /// The older size.
    pub from: u64,
    /// The newer size.
    pub to: u64,
    /// The proof, hex.
    #[serde(with = "crate::log::hex_hashes")]
    pub hashes: Vec<Hash>,
}

/// `keys.json`: the keys beyond those the policies in the ledger name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    /// The log's C2SP verifier key (`name+hash+base64`), for reference only: a verifier
    /// brings the log key it trusts.
    pub log: String,
    /// The keys that sign VSAs (custody's attestor), as SPKI PEM. Each is trusted only for
    /// a VSA whose signature's `keyid`, recorded in a proven leaf, names it.
    pub attestors: Vec<String>,
}

/// A line of an entry file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryLine {
    /// The entry's ledger index.
    pub index: u64,
    /// `SHA-256(0x00 ‖ leaf)`, hex. Redundant with `leaf`, and there so that a verifier
    /// names an altered entry: the stated hashes are proved against the signed root, then
    /// each leaf is checked against its stated hash.
    #[serde(with = "crate::log::hex_hash")]
    pub leaf_hash: Hash,
    /// The leaf: the event's RFC 8785 JSON exactly as hashed (as a JSON string).
    pub leaf: String,
    /// The inclusion proof of the entry in the anchor's tree (absent in a complete bundle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<Proof>,
    /// For a `decision.recorded` entry: the facts the decision evaluated (their RFC 8785
    /// digest is the leaf's `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<Value>,
    /// For a confidential `approval.recorded` entry: its rationale, or `None` with
    /// `withheld`. It opens the leaf's `rationale_commitment` (HMAC-SHA-256 keyed with
    /// `rationale_salt` over its UTF-8 bytes) or, in leaves written before commitments were
    /// salted, its `rationale_digest` (SHA-256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
    /// The salt (hex) of the rationale's commitment, travelling with the rationale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale_salt: Option<String>,
    /// The confidential rationale was withheld from this exporter.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub withheld: bool,
}

/// An inclusion proof in an entry line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proof {
    /// The tree size it proves against (the anchor).
    pub tree_size: u64,
    /// The audit path, hex, leaf to root.
    #[serde(with = "crate::log::hex_hashes")]
    pub hashes: Vec<Hash>,
}

/// `end.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndFile {
    /// Entry lines in all.
    pub entries: u64,
    /// Entry files.
    pub files: u64,
    /// Raw reports (absent in bundles from before they were carried: then none).
    #[serde(default)]
    pub reports: u64,
}
