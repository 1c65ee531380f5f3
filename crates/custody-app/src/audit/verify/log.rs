//! The log's part: the checkpoints (signed by the log key, ascending, each consistent with
//! the next) and every entry's place in the anchor's tree.
//!
//! A complete bundle proves its entries by recomputing the tree from their stated leaf
//! hashes and comparing the root at every checkpoint's size; a scoped one by each entry's
//! inclusion proof against the anchor. Either way a stated hash that is proved is the one
//! the signed tree holds, so a leaf that does not hash to it is named as the culprit.

use custody_ledger::{
    Frontier, Hash, LogKeyRotation, LogKeys, verify_consistency, verify_inclusion,
};
use rayon::prelude::*;

use super::{Check, Report, State, fail, hex};
use crate::audit::format::{
    CHECKPOINTS, CONSISTENCY, CheckpointLine, ConsistencyLine, Handover, Proof,
};

/// The tree the entries are placed in.
pub(crate) struct Tree {
    anchor: u64,
    complete: bool,
    /// Checkpoints whose signatures verified, ascending: (size, root).
    checkpoints: Vec<(u64, Hash)>,
    anchor_root: Option<Hash>,
    /// Complete bundles: the tree recomputed so far.
    frontier: Frontier,
    /// The next checkpoint whose size the frontier has not reached.
    next_checkpoint: usize,
    /// The size of the last checkpoint whose root the entries gave.
    matched: u64,
    /// The last index placed.
    last: Option<u64>,
    /// Complete bundles: an entry was missing or out of place, so the recomputed roots
    /// mean nothing from there on (reported once).
    broken: bool,
    /// The size of the checkpoint the auditor kept (pinned.rs), and for a complete
    /// bundle the root the entries give at that size.
    pub(super) pinned_at: Option<u64>,
    pub(super) root_at_pin: Option<Hash>,
    /// The consistency proofs the bundle carries, as read (beyond those between its
    /// checkpoints there may be one from a size the exporter was asked for).
    pub(super) proofs: Vec<ConsistencyLine>,
    /// Entry lines that could not be read at all (each reported where it stands): a
    /// complete bundle's missing entries may be those, and the report says so.
    pub(super) unreadable: u64,
}

impl Tree {
    pub(crate) fn new(anchor: u64, complete: bool) -> Tree {
        Tree {
            anchor,
            complete,
            checkpoints: Vec::new(),
            anchor_root: None,
            frontier: Frontier::new(),
            next_checkpoint: 0,
            matched: 0,
            last: None,
            broken: false,
            pinned_at: None,
            root_at_pin: None,
            proofs: Vec::new(),
            unreadable: 0,
        }
    }

    /// The root a verified checkpoint of `size` entries signs.
    pub(super) fn signed_root(&self, size: u64) -> Option<Hash> {
        self.checkpoints
            .iter()
            .find(|(s, _)| *s == size)
            .map(|(_, root)| *root)
    }

    /// The anchor's root, when its checkpoint verified.
    pub(super) fn anchor_root(&self) -> Option<Hash> {
        self.anchor_root
    }

    /// Whether the anchor's checkpoint verified (without it nothing can be proved, which
    /// is reported once, not once per entry).
    pub(crate) fn anchored(&self) -> bool {
        self.anchor_root.is_some()
    }

    /// Checks an entry's inclusion proof against the anchor (scoped bundles; pure, so
    /// entries are checked in parallel).
    pub(crate) fn prove(
        &self,
        index: u64,
        stated: &Hash,
        proof: Option<&Proof>,
    ) -> Result<(), String> {
        let Some(root) = self.anchor_root else {
            return Err(
                "the anchor checkpoint did not verify, so nothing can be proved against it".into(),
            );
        };
        let Some(proof) = proof else {
            return Err("it carries no inclusion proof (the bundle is not complete)".into());
        };
        if proof.tree_size != self.anchor {
            return Err(format!(
                "its proof is for a tree of {} entries, not the anchor's {}",
                proof.tree_size, self.anchor
            ));
        }
        verify_inclusion(stated, index, self.anchor, &proof.hashes, &root).map_err(|e| {
            format!(
                "its stated leaf hash and inclusion proof do not lead to the signed root of the checkpoint of {} entries: {e}",
                self.anchor
            )
        })
    }

    /// Places the next entry (in bundle order): checks the order of indices and, for a
    /// complete bundle, folds its stated hash into the tree and compares the roots of the
    /// checkpoints it reaches.
    pub(crate) fn place(&mut self, index: u64, stated: Hash, report: &mut Report) {
        let expected = self.next_index();
        if let Some(last) = self.last {
            if index <= last {
                report.failures.push(fail(
                    Some(index),
                    Check::EntryOrder,
                    format!("it follows entry {last}: entries must be in ascending order (swapped or repeated entries?)"),
                ));
                self.broken = true;
                return;
            }
        }
        self.last = Some(index);
        if index >= self.anchor {
            report.failures.push(fail(
                Some(index),
                Check::EntryOrder,
                format!(
                    "the anchor checkpoint has {} entries; this one is beyond it",
                    self.anchor
                ),
            ));
            return;
        }
        if !self.complete {
            return;
        }
        // Every gap is named, not only the first: once one is found the recomputed roots
        // mean nothing, but the indices still say what else is missing.
        if index != expected {
            self.missing(expected, index, report);
            self.broken = true;
        }
        if self.broken {
            return;
        }
        self.frontier.push(stated);
        let size = self.frontier.size();
        if self.pinned_at == Some(size) {
            self.root_at_pin = Some(self.frontier.root());
        }
        while let Some(&(cp_size, root)) = self.checkpoints.get(self.next_checkpoint) {
            if cp_size > size {
                break;
            }
            self.next_checkpoint += 1;
            if cp_size < size {
                continue;
            }
            report.checked.roots_recomputed += 1;
            let got = self.frontier.root();
            if got == root {
                self.matched = size;
            } else {
                report.failures.push(fail(
                    None,
                    Check::Root,
                    format!(
                        "the checkpoint of {size} entries signs root {}, but the bundle's entries give {}: an entry in {}..{size} was altered, removed or reordered together with its stated hash, or the checkpoint comes from a fork of the log",
                        hex(&root),
                        hex(&got),
                        self.matched
                    ),
                ));
                self.broken = true;
            }
        }
    }

    /// The index the next entry of a complete bundle must have.
    fn next_index(&self) -> u64 {
        self.last.map_or(0, |last| last + 1)
    }

    /// Reports entries `from..to` missing from a complete bundle.
    fn missing(&self, from: u64, to: u64, report: &mut Report) {
        report.failures.push(fail(
            Some(from),
            Check::EntryOrder,
            format!(
                "entries {from}..{to} are missing from a bundle that says it holds every entry{}",
                self.perhaps_unreadable()
            ),
        ));
    }

    /// What to add to a report of missing entries when some entry lines could not be read.
    fn perhaps_unreadable(&self) -> String {
        match self.unreadable {
            0 => String::new(),
            1 => " (1 entry line could not be read, reported as a format failure: it may be one of them)".into(),
            n => format!(" ({n} entry lines could not be read, reported as format failures: they may be among them)"),
        }
    }

    /// After the last entry: a complete bundle must have reached the anchor.
    pub(crate) fn finish(&mut self, report: &mut Report) {
        report.anchor_root = self.anchor_root.as_ref().map(hex);
        let next = self.next_index();
        if self.complete && next < self.anchor {
            self.missing(next, self.anchor, report);
        }
        if self.anchor_root.is_none() && self.anchor > 0 {
            report.failures.push(fail(
                None,
                Check::CheckpointSignature,
                format!(
                    "no verified checkpoint of the anchor's {} entries: nothing in the bundle is proved",
                    self.anchor
                ),
            ));
        }
    }
}

impl State {
    /// `checkpoints.jsonl`: the log-key hand-overs it carries followed first, then every
    /// note verified with the log key in force at its size (both keys at a hand-over), in
    /// parallel.
    pub(super) fn checkpoints(&mut self, bytes: &[u8]) {
        let lines: Vec<&[u8]> = json_lines(bytes);
        let parsed: Vec<Result<CheckpointLine, String>> = lines
            .par_iter()
            .enumerate()
            .map(|(n, line)| {
                serde_json::from_slice(line)
                    .map_err(|e| format!("{CHECKPOINTS} line {}: {e}", n + 1))
            })
            .collect();
        self.follow_handovers(&parsed);
        let keys = &self.keys;
        let opened: Vec<Result<(u64, Hash), String>> = parsed
            .par_iter()
            .enumerate()
            .map(|(n, line)| {
                let line = line.as_ref().map_err(Clone::clone)?;
                let cp = keys.open(&line.note).map_err(|e| {
                    format!(
                        "the checkpoint of {} entries does not verify with the log key: {e}",
                        line.size
                    )
                })?;
                if cp.size != line.size {
                    return Err(format!(
                        "{CHECKPOINTS} line {} says size {} but its note signs {}",
                        n + 1,
                        line.size,
                        cp.size
                    ));
                }
                Ok((cp.size, cp.root))
            })
            .collect();
        let tree = &mut self.log;
        for result in opened {
            match result {
                Ok((size, root)) => {
                    self.report.checked.checkpoints += 1;
                    if tree.checkpoints.last().is_some_and(|&(s, _)| s >= size) {
                        self.report.failures.push(fail(
                            None,
                            Check::Format,
                            format!(
                                "the checkpoint of {size} entries is out of order in {CHECKPOINTS}"
                            ),
                        ));
                        continue;
                    }
                    tree.checkpoints.push((size, root));
                }
                Err(why) => self
                    .report
                    .failures
                    .push(fail(None, Check::CheckpointSignature, why)),
            }
        }
        tree.anchor_root = tree
            .checkpoints
            .last()
            .filter(|(size, _)| *size == tree.anchor)
            .map(|(_, root)| *root);
        if self.report.anchor > 0 && tree.anchor_root.is_none() {
            self.report.failures.push(fail(
                None,
                Check::CheckpointSignature,
                format!(
                    "the last verified checkpoint is not the anchor of {} entries the manifest names",
                    tree.anchor
                ),
            ));
        }
    }

    /// `consistency.jsonl`: each verified checkpoint extends the one before.
    pub(super) fn consistency(&mut self, bytes: &[u8]) {
        let mut proofs = Vec::new();
        for (n, line) in json_lines(bytes).into_iter().enumerate() {
            match serde_json::from_slice::<ConsistencyLine>(line) {
                Ok(p) => proofs.push(p),
                Err(e) => self.report.failures.push(fail(
                    None,
                    Check::Format,
                    format!("{CONSISTENCY} line {}: {e}", n + 1),
                )),
            }
        }
        let checkpoints = &self.log.checkpoints;
        let checked: Vec<Result<(), String>> = checkpoints
            .par_windows(2)
            .map(|pair| {
                let ((from, old), (to, new)) = (pair[0], pair[1]);
                let proof = proofs
                    .iter()
                    .find(|p| p.from == from && p.to == to)
                    .ok_or_else(|| format!("no consistency proof from the checkpoint of {from} entries to the one of {to}"))?;
                verify_consistency(from, to, &proof.hashes, &old, &new).map_err(|e| {
                    format!(
                        "the checkpoint of {to} entries is not consistent with the one of {from} ({e}): the log was forked or rewritten between them, or the proof was altered"
                    )
                })
            })
            .collect();
        for result in checked {
            match result {
                Ok(()) => self.report.checked.consistency_proofs += 1,
                Err(why) => self
                    .report
                    .failures
                    .push(fail(None, Check::Consistency, why)),
            }
        }
        self.log.proofs = proofs;
    }
}

/// The lines of a JSON-lines member (the newline ending the last one is not the start of
/// another). A blank line among them is kept: it is no JSON, and fails to read where a
/// line was, rather than vanish with what it replaced.
pub(crate) fn json_lines(bytes: &[u8]) -> Vec<&[u8]> {
    // memchr finds the newlines many bytes at a time (this runs on one core, between the
    // parallel parts).
    let mut lines = Vec::new();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', bytes) {
        lines.push(&bytes[start..end]);
        start = end + 1;
    }
    if start < bytes.len() {
        lines.push(&bytes[start..]);
    }
    lines
}

impl State {
    /// Follows the log-key hand-overs the checkpoints carry (see [`follow_log_keys`]). The
    /// first that fails is reported, and the checkpoints past it then fail their
    /// signatures.
    fn follow_handovers(&mut self, lines: &[Result<CheckpointLine, String>]) {
        let handovers: Vec<(u64, &str, &Handover)> = lines
            .iter()
            .filter_map(|l| l.as_ref().ok())
            .filter_map(|l| l.handover.as_ref().map(|h| (l.size, l.note.as_str(), h)))
            .collect();
        let steps: Vec<(u64, &str, &[u8], &[Hash])> = handovers
            .iter()
            .map(|(size, note, h)| (*size, *note, h.leaf.as_bytes(), h.proof.as_slice()))
            .collect();
        if let Err(why) = follow_log_keys(&mut self.keys, &steps) {
            self.report
                .failures
                .push(fail(None, Check::CheckpointSignature, why));
            return;
        }
        if !handovers.is_empty() {
            let sizes: Vec<String> = handovers.iter().map(|(s, _, _)| s.to_string()).collect();
            self.report.notes.push(format!(
                "the log key was handed over at {} entries (each hand-over checkpoint signed by the retiring and the new key, its log.key_rotated event proved its last leaf); every checkpoint was verified with the key in force at its size",
                sizes.join(", ")
            ));
        }
    }
}

/// Follows log-key hand-overs, given oldest first as `(size, hand-over checkpoint,
/// log.key_rotated leaf, its inclusion proof)`, from the key `keys` starts with (the one
/// the verifier brings): those up to the one that introduced it backwards (it vouched
/// for its predecessor by signing), the later ones forwards. The first that fails is the
/// error, naming its size; `keys` then holds those followed before it.
pub(crate) fn follow_log_keys(
    keys: &mut LogKeys,
    handovers: &[(u64, &str, &[u8], &[Hash])],
) -> Result<(), String> {
    let trusted = keys.current().to_text();
    let split = handovers
        .iter()
        .position(|(_, _, leaf, _)| {
            LogKeyRotation::from_leaf(leaf)
                .and_then(Result::ok)
                .is_some_and(|r| r.new_key == trusted)
        })
        .map_or(0, |i| i + 1);
    let back = handovers[..split].iter().rev().map(|h| (h, true));
    let forward = handovers[split..].iter().map(|h| (h, false));
    for ((size, note, leaf, proof), backwards) in back.chain(forward) {
        let followed = if backwards {
            keys.follow_back(note, leaf, proof)
        } else {
            keys.follow(note, leaf, proof)
        };
        followed.map_err(|e| format!("the log-key hand-over at {size} entries: {e}"))?;
    }
    Ok(())
}
