//! Exporting a bundle: the entries of a scope with the lineage of every release certified
//! in it, the key history (every policy version, key hand-over and revocation), the
//! checkpoints they are proved against,
//! and what custody keeps beside the leaves (decisions' facts, confidential rationales
//! for those who may read them), and after the entries the raw reports their evidence
//! names, byte for byte.
//!
//! It streams: entries are read from the store a page at a time and written to the
//! archive as they come, so a whole-ledger export holds one page and one entry file in
//! memory, and then one report at a time. A scoped export holds the sorted list of its
//! entries' indices (8 bytes each); every export the digests of the reports to carry.

use std::collections::BTreeSet;
use std::io::Write;

use custody_model::{Digest, DigestAlgorithm, EventHeader, Timestamp};
use custody_store::{MAX_ENTRIES_PER_READ, SignedCheckpoint, SqlStore, Store, search};
use serde::Serialize;

use super::archive::BundleWriter;
use super::format::{
    CHECKPOINTS, CONSISTENCY, CheckpointLine, Confidential, ConsistencyLine, EntryLine, FORMAT,
    Handover, KEYS, KeysFile, MANIFEST, MAX_CHECKPOINTS, Manifest, Proof, Scope,
};
use crate::app::App;
use crate::events::{Event, EventBody};
use crate::records::{ApprovalRecord, ReleaseRecord, kind};
use crate::{AppError, AppResult, Authenticated, Permission};

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    /// The part of the ledger.
    pub scope: Scope,
    /// Also carry a consistency proof from the tree of this many entries to the anchor:
    /// for an auditor who kept a checkpoint of that size and will check that the bundle
    /// extends it (a whole-ledger bundle needs none: its entries give every root).
    pub prove_from: Option<u64>,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    /// Entries in the bundle.
    pub entries: u64,
    /// Checkpoints in the bundle.
    pub checkpoints: u64,
    /// The size of the checkpoint every entry is proved against.
    pub anchor: u64,
    /// Whether the bundle holds every entry up to the anchor.
    pub complete: bool,
    /// Whether confidential rationales are in it.
    pub confidential: Confidential,
    /// Raw reports in the bundle (each report its evidence entries name, once).
    pub reports: u64,
}

/// Store I/O failures during an export, and write failures of the bundle.
fn write_failed(e: std::io::Error) -> AppError {
    AppError::Unavailable(format!("writing the bundle: {e}"))
}

impl App<SqlStore> {
    /// Writes the bundle of `request.scope` to `out`, as `exporter` may see it (they need
    /// the `read` permission; confidential rationales travel only if they are an auditor
    /// or admin). `progress(done, total)` is told of each page of entries written.
    pub async fn audit_export<W: Write>(
        &self,
        exporter: &Authenticated,
        request: &ExportRequest,
        now: Timestamp,
        out: W,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> AppResult<(Exported, W)> {
        if !Permission::Read.granted_to(&exporter.roles) {
            return Err(AppError::denied(format!(
                "{} may not export the ledger: it takes a role that may read history ({})",
                exporter.principal,
                Permission::Read.roles().join(", ")
            )));
        }
        let scope = &request.scope;
        let anchor = self.store.checkpoint().await?;
        if let Some(from) = request.prove_from.filter(|f| *f > anchor.size) {
            return Err(AppError::invalid(format!(
                "--prove-from {from}: the log's latest checkpoint has {} entries; a proof can only start at or below it",
                anchor.size
            )));
        }
        let selected = self.select(scope, anchor.size).await?;
        let complete = selected.is_none();
        let confidential = if exporter.privileged() {
            Confidential::Included
        } else {
            Confidential::Withheld
        };
        let checkpoints = self.checkpoints_for(&selected, &anchor).await?;
        let mut bundle = BundleWriter::new(out, now.unix_seconds().max(0) as u64);
        let manifest = Manifest {
            format: FORMAT.into(),
            origin: self.log().verifier_key(),
            scope: scope.clone(),
            exported_at: now,
            exported_by: exporter.principal.clone(),
            confidential,
            anchor: anchor.size,
            complete,
        };
        bundle.json(MANIFEST, &manifest).map_err(write_failed)?;
        let mut lines: Vec<CheckpointLine> = Vec::with_capacity(checkpoints.len());
        for c in &checkpoints {
            lines.push(CheckpointLine {
                size: c.size,
                note: c.note.clone(),
                handover: self.handover_at(c.size).await?,
            });
        }
        bundle
            .json_lines(CHECKPOINTS, &lines)
            .map_err(write_failed)?;
        let mut proofs = Vec::with_capacity(checkpoints.len());
        for pair in checkpoints.windows(2) {
            proofs.push(ConsistencyLine {
                from: pair[0].size,
                to: pair[1].size,
                hashes: self
                    .store
                    .consistency_proof(pair[0].size, pair[1].size)
                    .await?,
            });
        }
        // The auditor's kept size, when no checkpoint of the bundle is of it.
        if let Some(from) = request
            .prove_from
            .filter(|f| *f > 0 && *f < anchor.size && !checkpoints.iter().any(|c| c.size == *f))
        {
            proofs.push(ConsistencyLine {
                from,
                to: anchor.size,
                hashes: self.store.consistency_proof(from, anchor.size).await?,
            });
        }
        bundle
            .json_lines(CONSISTENCY, &proofs)
            .map_err(write_failed)?;
        let keys = KeysFile {
            log: self.store.verifier().to_text(),
            attestors: vec![self.attestor_key().to_pem()],
        };
        bundle.json(KEYS, &keys).map_err(write_failed)?;

        let total = selected.as_ref().map_or(anchor.size, |s| s.len() as u64);
        let privileged = confidential == Confidential::Included;
        let mut reports = BTreeSet::new();
        for (start, end) in runs(selected.as_ref(), anchor.size) {
            for entry in self.store.entries(start, end).await? {
                let line = self
                    .entry_line(
                        entry,
                        (!complete).then_some(anchor.size),
                        privileged,
                        &mut reports,
                    )
                    .await?;
                bundle.entry(&line).map_err(write_failed)?;
            }
            progress(bundle.entries(), total);
        }
        let entries = bundle.entries();
        for digest in &reports {
            let bytes = self.store.read_blob(digest).await?.ok_or_else(|| {
                AppError::Integrity(format!(
                    "the report {digest} the ledger's evidence names is missing from the store"
                ))
            })?;
            bundle.report(&digest.hex(), &bytes).map_err(write_failed)?;
        }
        let out = bundle.finish().map_err(write_failed)?;
        Ok((
            Exported {
                entries,
                checkpoints: checkpoints.len() as u64,
                anchor: anchor.size,
                complete,
                confidential,
                reports: reports.len() as u64,
            },
            out,
        ))
    }

    /// One entry's line: its leaf and hash, its proof against `anchor` (for a scoped
    /// bundle), and what custody keeps beside it; the report it names, if custody read
    /// and kept one, goes into `reports`.
    async fn entry_line(
        &self,
        entry: custody_store::Entry,
        anchor: Option<u64>,
        privileged: bool,
        reports: &mut BTreeSet<Digest>,
    ) -> AppResult<EntryLine> {
        let integrity = |e: &dyn std::fmt::Display| {
            AppError::Integrity(format!("ledger entry {}: {e}", entry.index))
        };
        let leaf = String::from_utf8(entry.leaf).map_err(|e| integrity(&e))?;
        let mut line = EntryLine {
            index: entry.index,
            leaf_hash: custody_ledger::leaf_hash(leaf.as_bytes()),
            leaf,
            proof: None,
            facts: None,
            rationale: None,
            rationale_salt: None,
            withheld: false,
        };
        if let Some(size) = anchor {
            line.proof = Some(Proof {
                tree_size: size,
                hashes: self.store.inclusion_proof(entry.index, size).await?,
            });
        }
        // Only three kinds keep something beside the leaf or in the store: read the header
        // first.
        let header = EventHeader::read(line.leaf.as_bytes()).map_err(|e| integrity(&e))?;
        if !matches!(
            header.kind.as_str(),
            "decision.recorded" | "approval.recorded" | "evidence.attached"
        ) {
            return Ok(line);
        }
        let event = Event::from_leaf(line.leaf.as_bytes()).map_err(|e| integrity(&e))?;
        match &event.body {
            // A report custody read is kept as a blob (a digest given alone names none).
            EventBody::EvidenceAttached(e)
                if e.report.is_some() && e.evidence.algorithm() == DigestAlgorithm::Sha256 =>
            {
                reports.insert(e.evidence.clone());
            }
            EventBody::DecisionRecorded(d) => {
                let record = self.store.state(kind::DECISION, &d.decision).await?;
                line.facts = record.and_then(|r| r.value.to_value().get("facts").cloned());
            }
            EventBody::ApprovalRecorded(a) if a.confidential => {
                if privileged {
                    let record: Option<ApprovalRecord> = self
                        .get(kind::APPROVAL, &a.approval)
                        .await?
                        .map(|v| v.value);
                    if let Some(r) = record {
                        line.rationale = Some(r.rationale);
                        line.rationale_salt = r.rationale_salt;
                    }
                } else {
                    line.withheld = true;
                }
            }
            _ => {}
        }
        Ok(line)
    }

    /// The indices of a scope's entries (`None`: every entry), below `anchor`.
    async fn select(&self, scope: &Scope, anchor: u64) -> AppResult<Option<BTreeSet<u64>>> {
        let mut selected = BTreeSet::new();
        match scope {
            Scope::All => return Ok(None),
            Scope::Release { release } => {
                self.require::<ReleaseRecord>(kind::RELEASE, release, || {
                    format!("no release {release}")
                })
                .await?;
                self.add_lineage(&mut selected, [release.clone()].into(), anchor)
                    .await?;
            }
            Scope::Environment { environment } => {
                if self.policy().await?.environment(environment).is_none() {
                    return Err(AppError::not_found(format!(
                        "no environment {environment:?} in the policy in force"
                    )));
                }
                self.search_all(&search::environment(environment), anchor, &mut selected)
                    .await?;
            }
            Scope::Time { since, until } => {
                let (start, end) = self.store.time_range(*since, *until).await?;
                let end = end.min(anchor);
                for (a, b) in page_runs(start, end) {
                    for e in self.store.entries(a, b).await? {
                        let at = EventHeader::read(&e.leaf).map(|h| h.at).ok();
                        let inside = at.is_some_and(|at| {
                            since.is_none_or(|s| at >= s) && until.is_none_or(|u| at < u)
                        });
                        if inside {
                            selected.insert(e.index);
                        }
                    }
                }
            }
        }
        // The lineage of every release certified (or restored) by what was selected.
        let releases = self.releases_certified_in(&selected).await?;
        self.add_lineage(&mut selected, releases, anchor).await?;
        // The key history a verifier needs: every policy version, every hand-over and
        // every revocation (a scoped bundle without them would fail a successor's
        // signature, and hide a compromise from the auditor); and every token made, against
        // which the credential each entry claims is checked.
        for kind in [
            "policy.applied",
            "key.rotated",
            "key.revoked",
            "token.created",
        ] {
            self.search_all(&search::event_type(kind), anchor, &mut selected)
                .await?;
        }
        Ok(Some(selected))
    }

    /// Adds every entry naming an artifact of `releases`, and then of the releases those
    /// certify, until nothing new is named.
    async fn add_lineage(
        &self,
        selected: &mut BTreeSet<u64>,
        mut releases: BTreeSet<String>,
        anchor: u64,
    ) -> AppResult<()> {
        let mut seen = BTreeSet::new();
        while let Some(release) = releases.pop_first() {
            if !seen.insert(release.clone()) {
                continue;
            }
            let Some(record) = self.get::<ReleaseRecord>(kind::RELEASE, &release).await? else {
                continue;
            };
            let mut added = BTreeSet::new();
            for a in &record.value.artifacts {
                let term = search::artifact(&a.digest.to_string());
                self.search_all(&term, anchor, &mut added).await?;
            }
            added.retain(|i| !selected.contains(i));
            releases.extend(self.releases_certified_in(&added).await?);
            releases.retain(|r| !seen.contains(r));
            selected.extend(added);
        }
        Ok(())
    }

    /// The releases that the certifications and rollbacks among `indices` make certified.
    async fn releases_certified_in(&self, indices: &BTreeSet<u64>) -> AppResult<BTreeSet<String>> {
        let mut releases = BTreeSet::new();
        for (a, b) in index_runs(indices) {
            for e in self.store.entries(a, b).await? {
                let kind = EventHeader::read(&e.leaf)
                    .map(|h| h.kind)
                    .unwrap_or_default();
                if kind != "environment.certified" && kind != "rollback" {
                    continue;
                }
                match Event::from_leaf(&e.leaf).map(|e| e.body) {
                    Ok(EventBody::EnvironmentCertified(c)) => {
                        releases.insert(c.release);
                    }
                    Ok(EventBody::RolledBack(r)) => {
                        releases.insert(r.to);
                    }
                    _ => {}
                }
            }
        }
        Ok(releases)
    }

    /// Adds the index of every entry below `anchor` carrying `term`.
    async fn search_all(&self, term: &str, anchor: u64, into: &mut BTreeSet<u64>) -> AppResult<()> {
        let terms = [term.to_owned()];
        let mut end = anchor;
        while end > 0 {
            let page = self
                .store
                .search(&terms, 0, end, MAX_ENTRIES_PER_READ)
                .await?;
            into.extend(page.iter().map(|e| e.index));
            match page.last() {
                Some(last) if page.len() as u64 == MAX_ENTRIES_PER_READ => end = last.index,
                _ => break,
            }
        }
        Ok(())
    }

    /// The checkpoints to carry: for each selected entry (for a whole-ledger bundle, entries
    /// spread evenly) the first stored checkpoint that covered it, thinned to at most
    /// [`MAX_CHECKPOINTS`], ending with the anchor.
    async fn checkpoints_for(
        &self,
        selected: &Option<BTreeSet<u64>>,
        anchor: &SignedCheckpoint,
    ) -> AppResult<Vec<SignedCheckpoint>> {
        let n = anchor.size;
        let targets: Vec<u64> = match selected {
            Some(s) => s.iter().copied().collect(),
            None => {
                let k = (MAX_CHECKPOINTS as u64 - 1).min(n);
                (0..k).map(|i| i * n / k.max(1)).collect()
            }
        };
        let mut found: Vec<SignedCheckpoint> = Vec::new();
        for t in targets {
            if found.last().is_some_and(|c| c.size > t) {
                continue;
            }
            if let Some(c) = self.store.checkpoints(t + 1, 1).await?.pop() {
                if c.size < n {
                    found.push(c);
                }
            }
        }
        let keep = MAX_CHECKPOINTS - 1;
        if found.len() > keep {
            let len = found.len();
            found = (0..keep).map(|i| found[i * len / keep].clone()).collect();
        }
        // Every log-key hand-over up to the anchor, never thinned out: a verifier holding
        // any one of the log's keys follows them to the others.
        for size in self.store.log_keys().handovers().filter(|s| *s < n) {
            if found.iter().all(|c| c.size != size) {
                match self.store.checkpoints(size, 1).await?.pop() {
                    Some(c) if c.size == size => found.push(c),
                    _ => {
                        return Err(AppError::Integrity(format!(
                            "the log-key hand-over checkpoint of {size} entries is missing"
                        )));
                    }
                }
            }
        }
        found.sort_by_key(|c| c.size);
        if n > 0 {
            found.push(anchor.clone());
        }
        Ok(found)
    }

    /// The `log.key_rotated` event and its proof, when the checkpoint of `size` entries is
    /// a log-key hand-over.
    pub(super) async fn handover_at(&self, size: u64) -> AppResult<Option<Handover>> {
        if size == 0 || !self.store.log_keys().handovers().any(|s| s == size) {
            return Ok(None);
        }
        let Some(entry) = self.store.entries(size - 1, size).await?.pop() else {
            return Err(AppError::Integrity(format!(
                "the log-key hand-over event at index {} is missing",
                size - 1
            )));
        };
        let leaf = String::from_utf8(entry.leaf).map_err(|_| {
            AppError::Integrity(format!("the leaf at index {} is not UTF-8", size - 1))
        })?;
        Ok(Some(Handover {
            leaf,
            proof: self.store.inclusion_proof(size - 1, size).await?,
        }))
    }
}

/// The runs `[start, end)` of at most a page each that cover `selected` (or everything
/// below `anchor`).
fn runs(selected: Option<&BTreeSet<u64>>, anchor: u64) -> Vec<(u64, u64)> {
    match selected {
        None => page_runs(0, anchor),
        Some(s) => index_runs(s),
    }
}

fn page_runs(start: u64, end: u64) -> Vec<(u64, u64)> {
    (start..end)
        .step_by(MAX_ENTRIES_PER_READ as usize)
        .map(|a| (a, (a + MAX_ENTRIES_PER_READ).min(end)))
        .collect()
}

/// Contiguous runs of `indices`, each at most a page.
fn index_runs(indices: &BTreeSet<u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &i in indices {
        match out.last_mut() {
            Some((a, b)) if *b == i && *b - *a < MAX_ENTRIES_PER_READ => *b = i + 1,
            _ => out.push((i, i + 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_contiguous_and_bounded() {
        let s: BTreeSet<u64> = [0, 1, 2, 5, 7, 8].into();
        assert_eq!(index_runs(&s), [(0, 3), (5, 6), (7, 9)]);
        let big: BTreeSet<u64> = (0..2500).collect();
        assert_eq!(index_runs(&big), [(0, 1000), (1000, 2000), (2000, 2500)]);
        assert_eq!(page_runs(0, 2001).len(), 3);
        assert!(page_runs(5, 5).is_empty());
    }
}
