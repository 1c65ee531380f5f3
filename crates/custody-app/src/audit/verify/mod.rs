//! The offline verifier: a bundle and the log's public key in, a [`Report`] out. It reads
//! nothing but the bundle, trusts nothing in it but what the log key's signatures and the
//! Merkle proofs vouch for, and names every entry and check that fails.
//!
//! What it checks, in the bundle's own order (members are read one at a time, entry files
//! checked in parallel on every core):
//! 1. every checkpoint's signature by the log key, under the bundle's origin; the sizes
//!    ascending; a consistency proof between each and the next (log.rs);
//! 2. every entry: its stated leaf hash proved against the anchor (by its inclusion proof,
//!    or for a complete bundle by recomputing the tree and every checkpoint's root from
//!    the stated hashes), then its leaf against its stated hash, so an altered leaf is
//!    named exactly; indices ascending, and in a complete bundle none missing (log.rs);
//! 3. every policy version, key hand-over and revocation the ledger records (the key
//!    history, timeline.rs), and every signed
//!    envelope against the keys of the policy in force at its ledger index: provenance
//!    (builder keys), release manifests (release keys), VSAs (the attestor key its proven
//!    leaf names), signed approvals (the personal keys); every decision's facts against its recorded digest, replayed under its
//!    recorded policy version to its recorded gates; every confidential rationale carried
//!    against its commitment (entries.rs); every token an entry was made with against the
//!    ledger's own record of it (credentials.rs);
//! 4. every raw report the evidence entries name: there, hashing to its name, of the size
//!    recorded, and read again; and what the decisions' facts say it reads, read again
//!    under each decision's rules (reports.rs);
//! 5. the lineage of every certification: its decision, promotion, release, artifacts,
//!    evidence and approvals are all in the bundle and agree with the decision's facts,
//!    and the signatures the facts claim are there (lineage.rs);
//! 6. what the auditor brings, if anything: the anchor extends a checkpoint they kept
//!    and has at least the entries they expect (pinned.rs). Without it a bundle cut back
//!    to an earlier checkpoint verifies, and the report says that this was not checked.
//!
//! What the manifest says and nothing signs (who exported the bundle, when, its scope)
//! is reported apart, as the exporter's unverified claims ([`Claims`]).

mod credentials;
mod entries;
mod envelopes;
mod lineage;
mod log;
mod pinned;
mod report;
mod reports;
mod story;
mod timeline;

use std::io::Read;

use custody_crypto::PublicKey;
use custody_crypto::note::NoteVerifier;
use custody_ledger::{Hash, LogKeys};

use super::archive::{ArchiveError, for_each_member};
use super::format::{CHECKPOINTS, CONSISTENCY, END, EndFile, FORMAT, KEYS, MANIFEST, Manifest};
pub(crate) use envelopes::vsa as vsa_of;
pub(crate) use log::follow_log_keys;
pub use pinned::{Expected, Truncation};
pub(crate) use report::fail;
pub use report::{Check, Checked, Claims, Failure, Progress, Report};
pub use story::{
    ApprovalStory, ArtifactStory, CertificationStory, EnvironmentStory, RollbackStory, Story,
    WithdrawnStory,
};

/// Why a bundle could not be verified at all (exit 2: not a verdict).
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The archive itself.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Its members are not a bundle's (missing, unknown, out of order).
    #[error("not a custody audit bundle: {0}")]
    Layout(String),
    /// The log key cannot verify notes (not Ed25519, or the origin is not a key name).
    #[error("the log key: {0}")]
    LogKey(String),
}

/// Which member comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Manifest,
    Checkpoints,
    Consistency,
    Keys,
    Entries,
    Reports,
    Done,
}

/// Verifies the bundle read from `reader` with the log's public key, offline, expecting
/// nothing of its size (the report says that truncation was not checked).
pub fn verify_bundle<R: Read>(
    reader: R,
    log_key: &PublicKey,
    progress: &mut dyn FnMut(Progress),
) -> Result<Report, BundleError> {
    verify_bundle_expecting(reader, log_key, &Expected::default(), progress)
}

/// Verifies the bundle read from `reader` with the log's public key, offline, and that
/// its anchor meets what the auditor `kept` (a checkpoint, a minimum size).
pub fn verify_bundle_expecting<R: Read>(
    reader: R,
    log_key: &PublicKey,
    kept: &Expected,
    progress: &mut dyn FnMut(Progress),
) -> Result<Report, BundleError> {
    let mut state: Option<State> = None;
    let mut stage = Stage::Manifest;
    let mut files = 0u64;
    let mut reports = 0u64;
    for_each_member(reader, |name, bytes| -> Result<(), BundleError> {
        let expected = match stage {
            Stage::Manifest => MANIFEST,
            Stage::Checkpoints => CHECKPOINTS,
            Stage::Consistency => CONSISTENCY,
            Stage::Keys => KEYS,
            Stage::Entries | Stage::Reports if name == END => END,
            Stage::Entries | Stage::Reports if name.starts_with(super::format::REPORTS) => name,
            Stage::Entries => &super::format::entry_file(files),
            Stage::Reports => {
                return Err(BundleError::Layout(format!(
                    "{name} follows the reports, where only reports and {END} may"
                )));
            }
            Stage::Done => {
                return Err(BundleError::Layout(format!("{name} follows {END}")));
            }
        };
        if name != expected {
            return Err(BundleError::Layout(format!(
                "member {name:?} where {expected:?} was expected"
            )));
        }
        match stage {
            Stage::Manifest => {
                state = Some(State::new(bytes, log_key)?);
                stage = Stage::Checkpoints;
            }
            Stage::Done => {}
            _ => {
                let Some(s) = state.as_mut() else {
                    return Err(BundleError::Layout("no manifest".into()));
                };
                match stage {
                    Stage::Checkpoints => {
                        s.checkpoints(bytes);
                        // The kept checkpoint opens with the keys the hand-overs gave.
                        s.expect(kept);
                        stage = Stage::Consistency;
                    }
                    Stage::Consistency => {
                        s.consistency(bytes);
                        stage = Stage::Keys;
                    }
                    Stage::Keys => {
                        s.keys(bytes);
                        stage = Stage::Entries;
                    }
                    _ if name == END => {
                        s.end(bytes, files, reports);
                        stage = Stage::Done;
                    }
                    _ if name.starts_with(super::format::REPORTS) => {
                        if stage == Stage::Entries {
                            // The entries' outcomes name the reports expected.
                            s.entries_done();
                            stage = Stage::Reports;
                        }
                        s.report_file(name, bytes);
                        reports += 1;
                    }
                    _ => {
                        s.entry_file(name, bytes);
                        files += 1;
                        progress(Progress {
                            entries: s.report.checked.entries,
                            expected: s.expected_entries(),
                        });
                    }
                }
            }
        }
        Ok(())
    })?;
    let Some(mut state) = state else {
        return Err(BundleError::Layout(format!(
            "no {MANIFEST}: an empty archive"
        )));
    };
    if stage < Stage::Entries {
        return Err(BundleError::Layout(format!(
            "the archive ends before {}",
            [CHECKPOINTS, CONSISTENCY, KEYS][(stage as usize).saturating_sub(1).min(2)]
        )));
    }
    if stage != Stage::Done {
        state.report.failures.push(fail(
            None,
            Check::Trailer,
            format!("the bundle ends without {END}: it was truncated"),
        ));
    }
    Ok(state.finish())
}

/// The verification in progress.
pub(crate) struct State {
    pub(crate) report: Report,
    /// The log's keys: the auditor's, and those the bundle's hand-overs lead to.
    pub(crate) keys: LogKeys,
    pub(crate) log: log::Tree,
    pub(crate) attestors: Vec<PublicKey>,
    pub(crate) policies: timeline::Timeline,
    pub(crate) lineage: lineage::Lineage,
    /// Entries of kinds this version does not know (a newer custody wrote them), by kind:
    /// proved in the log like any entry, but nothing in them is replayed.
    pub(crate) unknown_kinds: std::collections::BTreeMap<String, u64>,
    /// The checkpoint the auditor kept, opened: (size, root).
    pub(crate) pinned: Option<(u64, Hash)>,
    /// The last entry file's checks, not yet in the report (entries.rs).
    pub(crate) pending: entries::Pending,
    /// The raw reports the entries name, and those read (reports.rs).
    pub(crate) reports: reports::Reports,
    /// Entries stamped earlier than one before them (entries.rs).
    pub(crate) time_order: entries::TimeOrder,
    /// The tokens the ledger made (credentials.rs).
    pub(crate) tokens: credentials::Tokens,
}

impl State {
    fn new(manifest: &[u8], log_key: &PublicKey) -> Result<State, BundleError> {
        let manifest: Manifest = serde_json::from_slice(manifest)
            .map_err(|e| BundleError::Layout(format!("{MANIFEST}: {e}")))?;
        if manifest.format != FORMAT {
            return Err(BundleError::Layout(format!(
                "{MANIFEST} says format {:?}; this custody reads {FORMAT}",
                manifest.format
            )));
        }
        let verifier = NoteVerifier::new(&manifest.origin, log_key)
            .map_err(|e| BundleError::LogKey(e.to_string()))?;
        Ok(State {
            report: Report {
                format: manifest.format.clone(),
                origin: manifest.origin.clone(),
                unverified: Claims {
                    status: Claims::STATUS,
                    scope: manifest.scope.clone(),
                    exported_by: manifest.exported_by.clone(),
                    exported_at: manifest.exported_at.to_string(),
                    confidential: manifest.confidential,
                },
                anchor: manifest.anchor,
                anchor_root: None,
                complete: manifest.complete,
                truncation: Truncation::default(),
                checked: Checked::default(),
                failures: Vec::new(),
                notes: Vec::new(),
                story: Story::default(),
            },
            keys: LogKeys::new(verifier),
            log: log::Tree::new(manifest.anchor, manifest.complete),
            attestors: Vec::new(),
            policies: timeline::Timeline::default(),
            lineage: lineage::Lineage::default(),
            unknown_kinds: Default::default(),
            pinned: None,
            pending: Default::default(),
            reports: Default::default(),
            time_order: Default::default(),
            tokens: Default::default(),
        })
    }

    fn expected_entries(&self) -> Option<u64> {
        self.report.complete.then_some(self.report.anchor)
    }

    fn keys(&mut self, bytes: &[u8]) {
        let keys: super::format::KeysFile = match serde_json::from_slice(bytes) {
            Ok(k) => k,
            Err(e) => {
                self.report
                    .failures
                    .push(fail(None, Check::Format, format!("{KEYS}: {e}")));
                return;
            }
        };
        for pem in keys.attestors.iter().take(super::format::MAX_ATTESTORS) {
            match PublicKey::from_pem(pem) {
                Ok(k) => self.attestors.push(k),
                Err(e) => self.report.failures.push(fail(
                    None,
                    Check::Format,
                    format!("{KEYS}: an attestor key does not parse: {e}"),
                )),
            }
        }
    }

    fn end(&mut self, bytes: &[u8], files: u64, reports: u64) {
        match serde_json::from_slice::<EndFile>(bytes) {
            Ok(end) if end.entries != self.report.checked.entries || end.files != files => {
                self.report.failures.push(fail(
                    None,
                    Check::Trailer,
                    format!(
                        "{END} counts {} entries in {} files, the bundle holds {} in {files}: entries were added or removed",
                        end.entries, end.files, self.report.checked.entries
                    ),
                ))
            }
            Ok(end) if end.reports != reports => self.report.failures.push(fail(
                None,
                Check::Trailer,
                format!(
                    "{END} counts {} reports, the bundle holds {reports}: reports were added or removed",
                    end.reports
                ),
            )),
            Ok(_) => {}
            Err(e) => self
                .report
                .failures
                .push(fail(None, Check::Format, format!("{END}: {e}"))),
        }
    }

    fn finish(mut self) -> Report {
        self.entries_done();
        self.reports_done();
        self.log.finish(&mut self.report);
        self.check_expected();
        let story = self.lineage.check(&mut self.report, &self.policies);
        self.report.story = story;
        // The lineage of a million entries takes a fifth of a second to free on one core;
        // the report need not wait for it.
        let lineage = std::mem::take(&mut self.lineage);
        rayon::spawn(move || drop(lineage));
        if !self.report.complete {
            // As with truncation: what a part of the ledger leaves out cannot be seen in it.
            self.report.notes.push(
                "a scoped bundle cannot show that its key history is whole: a key rotation or revocation left out of it would not be seen here (a whole-ledger bundle shows every one)".into(),
            );
        }
        if let Some(note) = self.time_order.note() {
            self.report.notes.push(note);
        }
        for (kind, n) in &self.unknown_kinds {
            self.report.notes.push(format!(
                "{n} entries of kind {kind:?}, which this custody does not know (a newer one wrote them): proved in the log, their content not checked"
            ));
        }
        // Failures in ledger order, those about no entry first; notes too (those about an
        // entry say so first), whatever order the parallel checks finished in.
        self.report.failures.sort_by_key(|f| f.entry);
        self.report
            .notes
            .sort_by_cached_key(|n| (note_entry(n), n.clone()));
        self.report
    }
}

/// The entry a note is about (`entry N: …`), if it names one.
fn note_entry(note: &str) -> Option<u64> {
    note.strip_prefix("entry ")?.split(':').next()?.parse().ok()
}

/// Hex of a hash.
pub(crate) fn hex(h: &Hash) -> String {
    hex::encode(h)
}
