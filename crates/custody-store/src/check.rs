//! The full integrity check ([`SqlStore::check`]): every leaf against every stored hash
//! and every stored checkpoint, recomputed from nothing but the leaves.

use std::collections::VecDeque;

use custody_ledger::{EMPTY_ROOT, Frontier, Hash, LogKeys, leaf_hash};
use custody_model::CanonicalJson;

use crate::commit::{self, hex, to_i64, to_u64};
use crate::sql::{self, Conn};
use crate::{MAX_ENTRIES_PER_READ, SignedCheckpoint, SqlStore, Store, StoreError};

/// Most checkpoints read per page while checking.
const CHECKPOINTS_PER_PAGE: i64 = 1000;

impl SqlStore {
    /// Whether the head extends the checkpoint kept in the file at `path` (the newest one a
    /// writer signed or verified; see `checkpoint_file`), as opening the store to write
    /// checks it: the failure if the log was rolled back, truncated or forked since, `None`
    /// if it extends it or there is no file to check against. Reads only, so a store
    /// opened read-only (`custody log check`) catches a rollback made while custody was
    /// stopped too.
    pub async fn check_checkpoint_file(
        &self,
        path: &std::path::Path,
    ) -> Result<Option<crate::IntegrityFailure>, StoreError> {
        let Some(note) = crate::checkpoint_file::read(path)? else {
            return Ok(None);
        };
        let seen = crate::checkpoint_file::open(path, note, &self.keys)?;
        let head = self.checkpoint().await?;
        let finding = {
            let mut conn = self.read.acquire().await?;
            crate::integrity::check_extends(&mut conn.conn(), &seen, head.size, &head.root).await?
        };
        Ok(finding.map(|finding| crate::IntegrityFailure {
            finding,
            found_size: head.size,
            found_root: head.root,
            seen,
            witness: crate::Witness::CheckpointFile(path.to_owned()),
        }))
    }

    /// The head, once the database's own rows do not contradict it: its size is its signed
    /// checkpoint's, no checkpoint the log signed lies past it (else the head was moved
    /// back over the rows it left behind: [`StoreError::Integrity`]), and no entry does. The
    /// cheap part of [`SqlStore::check`], for a reader about to vouch for the head.
    pub async fn head_checked(&self) -> Result<SignedCheckpoint, StoreError> {
        // The newest checkpoint stored, read before the head: an append committing in
        // between moves the head past it, never behind.
        let (newest, last_entry) = {
            let mut conn = self.read.acquire().await?;
            let mut c = conn.conn();
            (
                sql::newest_checkpoint(&mut c).await?,
                sql::newest_entry(&mut c).await?,
            )
        };
        let mut conn = self.read.acquire().await?;
        let mut c = conn.conn();
        // The head row, read once: its size and its signed checkpoint's are compared as
        // one read gave them (two reads would let an append in between look like this).
        let row = sql::head(&mut c, false)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the log head row is missing".into()))?;
        let row_size = to_u64(row.size)?;
        let head = match crate::sql_store::signed_checkpoint(&self.keys, row_size, row.checkpoint) {
            Ok(head) => head,
            Err(e) => return Err(self.unverified(&mut c, row_size, e).await),
        };
        // The head row's size moved without its signed checkpoint: someone other than
        // custody moved the head (a write would find it too; a check must not wait).
        if row_size != head.size {
            return Err(StoreError::Corrupt(format!(
                "the log head says {row_size} entries, but its signed checkpoint is of {}",
                head.size
            )));
        }
        // A checkpoint the log signed past the head: the head was moved back over the rows
        // it left behind.
        if let Some(failure) = crate::open::left_behind(newest, &self.keys, &head)? {
            return Err(StoreError::Integrity(Box::new(failure)));
        }
        // Entries past the head that no signed checkpoint covers.
        if let Some(last) = last_entry
            && last >= to_i64(head.size)?
        {
            return Err(crate::commit::past_the_head(to_i64(head.size)?, last));
        }
        Ok(head)
    }

    /// Recomputes the whole tree from the stored leaves and checks it against every stored
    /// hash and every stored checkpoint (signature and root). `progress` is called with
    /// the number of leaves checked so far.
    pub async fn check(
        &self,
        mut progress: impl FnMut(u64) + Send,
    ) -> Result<IntegrityReport, StoreError> {
        let head = self.head_checked().await?;
        let mut conn = self.read.acquire().await?;
        let mut c = conn.conn();
        let mut frontier = Frontier::new();
        let mut checkpoints = CheckpointCursor::default();
        let mut report = IntegrityReport {
            entries: 0,
            checkpoints: 0,
            root: EMPTY_ROOT,
        };
        report.checkpoints += checkpoints.check(&mut c, &self.keys, &frontier).await?;
        while frontier.size() < head.size {
            let start = frontier.size();
            let end = head.size.min(start + MAX_ENTRIES_PER_READ);
            let rows = sql::entries(&mut c, to_i64(start)?, to_i64(end)?).await?;
            if rows.len() as u64 != end - start
                || rows
                    .iter()
                    .zip(start..)
                    .any(|((index, _), i)| *index != i as i64)
            {
                return Err(StoreError::Corrupt(format!(
                    "leaves {start}..{end} are not all stored"
                )));
            }
            // First the stored hashes (which names the damaged leaf or subtree)…
            let mut ahead = frontier.clone();
            let mut new_nodes = Vec::new();
            for (index, leaf) in &rows {
                CanonicalJson::from_canonical_bytes(leaf).map_err(|e| {
                    StoreError::Corrupt(format!("leaf {index} is not canonical JSON: {e}"))
                })?;
                new_nodes.extend(ahead.append(leaf_hash(leaf)));
            }
            let ids: Vec<_> = new_nodes.iter().map(|(id, _)| *id).collect();
            let stored = commit::read_nodes(&mut c, &ids).await?;
            for ((id, computed), stored) in new_nodes.iter().zip(stored) {
                if *computed != stored {
                    return Err(StoreError::Corrupt(format!(
                        "stored hash of subtree level {} index {} is {}, the leaves give {}",
                        id.level,
                        id.index,
                        hex(&stored),
                        hex(computed)
                    )));
                }
            }
            // …then every signed checkpoint along the way.
            for (_, leaf) in &rows {
                frontier.append(leaf_hash(leaf));
                report.checkpoints += checkpoints.check(&mut c, &self.keys, &frontier).await?;
            }
            report.entries = end;
            progress(end);
        }
        report.root = frontier.root();
        if report.root != head.root {
            return Err(StoreError::Corrupt(
                "the leaves do not give the head's root".into(),
            ));
        }
        Ok(report)
    }
}

/// What [`SqlStore::check`] verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityReport {
    /// Leaves recomputed.
    pub entries: u64,
    /// Stored checkpoints whose signature and root were checked.
    pub checkpoints: u64,
    /// The root of all leaves.
    pub root: Hash,
}

/// Walks the stored checkpoints in size order alongside a recomputation of the tree.
#[derive(Default)]
struct CheckpointCursor {
    pending: VecDeque<(u64, String)>,
    next_from: u64,
    exhausted: bool,
}

impl CheckpointCursor {
    /// Checks every stored checkpoint of exactly the frontier's size; returns how many.
    async fn check(
        &mut self,
        c: &mut Conn<'_>,
        keys: &LogKeys,
        frontier: &Frontier,
    ) -> Result<u64, StoreError> {
        let mut checked = 0;
        loop {
            if self.pending.is_empty() && !self.exhausted {
                let page =
                    sql::checkpoints(c, to_i64(self.next_from)?, CHECKPOINTS_PER_PAGE).await?;
                self.exhausted = (page.len() as i64) < CHECKPOINTS_PER_PAGE;
                for (size, note) in page {
                    let size = to_u64(size)?;
                    self.next_from = size + 1;
                    self.pending.push_back((size, note));
                }
            }
            match self.pending.front() {
                Some((size, note)) if *size == frontier.size() => {
                    let cp = keys.open(note).map_err(|e| {
                        StoreError::Corrupt(format!("stored checkpoint {size}: {e}"))
                    })?;
                    if cp.size != *size || cp.root != frontier.root() {
                        return Err(StoreError::Corrupt(format!(
                            "stored checkpoint {size} says root {}, the leaves give {}",
                            hex(&cp.root),
                            hex(&frontier.root())
                        )));
                    }
                    self.pending.pop_front();
                    checked += 1;
                }
                Some((size, _)) if *size < frontier.size() => {
                    return Err(StoreError::Corrupt(format!(
                        "checkpoint {size} is out of order"
                    )));
                }
                _ => return Ok(checked),
            }
        }
    }
}
