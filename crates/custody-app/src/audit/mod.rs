//! The auditor's kit: a bundle to hand over, verified offline with nothing but the log's
//! public key, and a receipt for whoever receives a release.
//!
//! - [`App::audit_export`] (export.rs) writes a bundle (format.rs, archive.rs) of a
//!   [`Scope`]: its ledger entries with their proofs, the checkpoints they are proved
//!   against, consistency proofs between those, every policy version the ledger records
//!   (the key history), the attestor keys, what custody keeps beside the leaves, and the
//!   raw reports the evidence entries name.
//! - [`verify_bundle`] (verify/) checks one offline: it does no I/O but reading the bundle,
//!   reads no clock, and trusts nothing in it but what the log key's signatures and the
//!   Merkle proofs vouch for.
//! - [`App::audit_receipt`] and [`verify_receipt`] (receipt.rs): one certification, proved,
//!   with what it proves (certified at a log index, by break-glass or not) and what it
//!   cannot (that it still stands); the receipt of a certification the ledger shows
//!   replaced (standing.rs) is refused unless asked for as a record of the past.
//!
//! Redaction, provably: a leaf is never altered or dropped. What some readers may not see
//! is kept out of the ledger in the first place: a confidential review's rationale is in
//! its leaf only as a salted commitment (`rationale_commitment`). The bundle carries the
//! text and salt beside the leaf only when the exporter may read them (an auditor or
//! admin), and the verifier checks them against the commitment in the proven leaf;
//! otherwise the entry line says it was withheld, and the leaf still checks against its
//! proof.

mod archive;
mod export;
pub mod format;
mod receipt;
mod standing;
mod verify;

pub use archive::{ArchiveError, BundleWriter, for_each_member};
pub use export::{ExportRequest, Exported};
pub use format::{Confidential, Scope};
pub use receipt::{
    MAX_RECEIPT, ProvedEntry, RECEIPT_FORMAT, Receipt, ReceiptError, ReceiptHandover,
    ReceiptReport, verify_receipt,
};
pub use standing::Standing;
pub use verify::{
    ApprovalStory, ArtifactStory, BundleError, CertificationStory, Check, Checked, Claims,
    EnvironmentStory, Expected, Failure, Progress, Report, RollbackStory, Story, Truncation,
    WithdrawnStory, verify_bundle, verify_bundle_expecting,
};
