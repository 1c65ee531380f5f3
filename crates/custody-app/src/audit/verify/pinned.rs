//! Truncation: what the auditor brings beyond the log key. A bundle proves its entries
//! against its own anchor checkpoint, so a whole-ledger bundle cut back to an earlier
//! checkpoint (its entries, checkpoints and proofs dropped consistently) still proves
//! everything it holds. Only something the auditor kept can tell: a signed checkpoint
//! they verified earlier (the bundle's anchor must extend it: the same root at its size,
//! or a consistency proof from it), or the fewest entries they expect.
//!
//! For a complete bundle the root at the kept checkpoint's size is recomputed from the
//! entries (log.rs folds it in passing), so no proof is needed; a scoped bundle must
//! carry a checkpoint of that size or a consistency proof from it to the anchor (the
//! exporter adds one with `--prove-from SIZE`), or the report says that it is missing.

use custody_ledger::{Hash, verify_consistency};
use serde::Serialize;

use super::{Check, State, fail, hex};

/// What the auditor expects of a bundle, from what they kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// A signed checkpoint (C2SP note) the auditor verified earlier: the bundle's anchor
    /// must be at least as large and consistent with it.
    pub checkpoint: Option<String>,
    /// The fewest entries the bundle's anchor may have.
    pub min_size: Option<u64>,
}

/// Whether the bundle was tied to what the auditor knew, in the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Truncation {
    /// Whether anything was checked (a kept checkpoint or a minimum size was given).
    /// Without it a bundle cut back to an earlier checkpoint verifies.
    pub checked: bool,
    /// The size of the auditor's checkpoint the anchor was checked against.
    pub checkpoint: Option<u64>,
    /// The minimum size the anchor was checked against.
    pub min_size: Option<u64>,
    /// What was checked, or that nothing was and how to, for a person.
    pub summary: String,
}

/// What the report says when nothing was pinned.
const NOT_CHECKED: &str = "NOT checked: nothing ties this bundle to a checkpoint you kept, so its newest entries (with the checkpoints after them) could have been cut off and it would still verify. To check, pass --checkpoint FILE (a signed checkpoint you kept earlier: `custody log checkpoint`, the state of `custody log watch`, or one the operator published) or --min-size N";

impl State {
    /// Before the entries (after the checkpoints, whose hand-overs give the log's keys):
    /// opens the auditor's checkpoint with the log key in force at its size, so that a
    /// complete bundle's entries give the root at its size as they are placed.
    pub(super) fn expect(&mut self, expected: &Expected) {
        let t = &mut self.report.truncation;
        t.min_size = expected.min_size;
        t.checked = expected.min_size.is_some() || expected.checkpoint.is_some();
        t.summary = NOT_CHECKED.to_owned();
        let Some(note) = &expected.checkpoint else {
            return;
        };
        match self.keys.open(note) {
            Ok(cp) => {
                t.checkpoint = Some(cp.size);
                self.pinned = Some((cp.size, cp.root));
                self.log.pinned_at = Some(cp.size);
            }
            Err(e) => self.report.failures.push(fail(
                None,
                Check::PinnedCheckpoint,
                format!(
                    "the checkpoint you kept (--checkpoint) does not verify with the log key under the bundle's origin {:?}: {e}",
                    self.report.origin
                ),
            )),
        }
    }

    /// After the entries: the anchor is no smaller than expected and extends the kept
    /// checkpoint.
    pub(super) fn check_expected(&mut self) {
        let anchor = self.report.anchor;
        let mut said = Vec::new();
        if let Some(min) = self.report.truncation.min_size {
            if anchor < min {
                self.report.failures.push(fail(
                    None,
                    Check::MinSize,
                    format!(
                        "the bundle is proved against a checkpoint of {anchor} entries, fewer than the {min} you expect (--min-size): its newest entries were cut off, or this is not the log you know"
                    ),
                ));
            } else {
                said.push(format!(
                    "the anchor has at least the {min} entries you expect"
                ));
            }
        }
        if let Some((size, root)) = self.pinned {
            match self.extends(size, &root) {
                Ok(how) => said.push(format!(
                    "the anchor of {anchor} entries extends the checkpoint of {size} entries you kept ({how})"
                )),
                Err(why) => self
                    .report
                    .failures
                    .push(fail(None, Check::PinnedCheckpoint, why)),
            }
        }
        let t = &mut self.report.truncation;
        if t.checked {
            t.summary = if said.is_empty() {
                "checked, and FAILED: see the failures".to_owned()
            } else {
                said.join("; ")
            };
        }
    }

    /// Whether the anchor extends the kept checkpoint of `size` entries and `root`: how,
    /// or why not.
    fn extends(&self, size: u64, root: &Hash) -> Result<String, String> {
        let anchor = self.report.anchor;
        let Some(anchor_root) = self.log.anchor_root() else {
            return Err("the bundle's anchor checkpoint did not verify, so it cannot be compared with the checkpoint you kept".into());
        };
        let fork = |got: &Hash| {
            format!(
                "at {size} entries the bundle's log has root {}, but the checkpoint you kept signs {}: the bundle comes from a fork of the log you know, or its entries were rewritten",
                hex(got),
                hex(root)
            )
        };
        if size > anchor {
            return Err(format!(
                "the bundle is proved against a checkpoint of {anchor} entries, older than the one of {size} entries you kept: its entries after {anchor} were cut off (with the checkpoints after them), or the log shrank"
            ));
        }
        if size == 0 {
            return Ok("an empty log".into());
        }
        if size == anchor {
            return if anchor_root == *root {
                Ok("the same root".into())
            } else {
                Err(fork(&anchor_root))
            };
        }
        if let Some(signed) = self.log.signed_root(size) {
            // The bundle's chain of consistency proofs (checked on its own) leads on.
            return if signed == *root {
                Ok("the same root as the bundle's checkpoint of that size".into())
            } else {
                Err(fork(&signed))
            };
        }
        if let Some(got) = self.log.root_at_pin {
            return if got == *root {
                Ok("the root recomputed from the entries".into())
            } else {
                Err(fork(&got))
            };
        }
        let Some(proof) = self
            .log
            .proofs
            .iter()
            .find(|p| p.from == size && p.to == anchor)
        else {
            return Err(format!(
                "the bundle carries no consistency proof from the checkpoint of {size} entries you kept to its anchor of {anchor}{}: ask the exporter for one (custody audit export … --prove-from {size})",
                if self.report.complete {
                    " (and its entries did not give the root at that size: see the failures)"
                } else {
                    ""
                }
            ));
        };
        verify_consistency(size, anchor, &proof.hashes, root, &anchor_root)
            .map(|()| "a consistency proof".to_owned())
            .map_err(|e| {
                format!(
                    "the bundle's anchor of {anchor} entries is not consistent with the checkpoint of {size} entries you kept ({e}): the bundle comes from a fork of the log you know, or the proof was altered"
                )
            })
    }
}
