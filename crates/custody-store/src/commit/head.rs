//! The head a commit finds under the lock. It must extend the newest checkpoint this
//! committer signed or verified, carry a checkpoint the log key signed when it moved, and
//! agree with the stored right edge of the tree; a head another process handed over from
//! this writer's key is refused as retired. A head that fails turns the store read-only
//! before anything is signed. After an operator acknowledges an integrity failure the head
//! is adopted as it stands, or put back on the checkpoint the log signed past it.

use custody_ledger::{Frontier, Hash};

use super::{Committer, hex, load_frontier, read_nodes, to_i64, to_u64};
use crate::integrity::{self, Finding, IntegrityFailure, Witness};
use crate::sql::{self, Conn, HeadRow};
use crate::{SignedCheckpoint, StoreError};

impl Committer {
    /// Checks the head read under the lock and returns the tree's right edge at it. A head
    /// that fails (see `check_head`) is an integrity failure: the store turns read-only
    /// (or, adopting, the acknowledgment is refused and the store stays read-only).
    pub(super) async fn admit_head(
        &mut self,
        c: &mut Conn<'_>,
        head: HeadRow,
        adopt: bool,
    ) -> Result<Frontier, StoreError> {
        let size = to_u64(head.size)?;
        let root = Hash::try_from(&head.root[..])
            .map_err(|_| StoreError::Corrupt("the log head's root is not 32 bytes".into()))?;
        let moved = (size, root, head.checkpoint.as_str())
            != (self.seen.size, self.seen.root, self.seen.note.as_str());
        if moved && !adopt {
            // Another process may have handed the log over from this writer's key (`custody
            // key rotate log` while this one ran). The hand-over checkpoint carries this
            // key's signature too, so the head would pass, but nothing may be signed with
            // the retired key after it: refused as retired (not lost history).
            let key = self.signer.verifier();
            if let Some(retired) =
                crate::log_keys::handed_over_from(c, key, self.seen.size, size).await?
            {
                return Err(retired);
            }
        }
        match self
            .check_head(c, size, &root, &head.checkpoint, moved || adopt, adopt)
            .await?
        {
            Ok(frontier) => {
                if moved {
                    self.seen = SignedCheckpoint {
                        size,
                        root,
                        note: head.checkpoint,
                    };
                }
                Ok(frontier)
            }
            Err(finding) => {
                let failure = IntegrityFailure {
                    finding,
                    seen: self.seen.clone(),
                    witness: Witness::ThisProcess,
                    found_size: size,
                    found_root: root,
                };
                if adopt {
                    return Err(StoreError::Corrupt(format!(
                        "the database's head cannot be accepted as it stands: {failure}"
                    )));
                }
                self.status.fail_integrity(failure.clone());
                Err(StoreError::Integrity(Box::new(failure)))
            }
        }
    }

    /// The head's checks, in order: unless `adopt`, it extends the checkpoint seen; if
    /// `verify_note` (it moved since, or is being adopted), its checkpoint is signed by the
    /// log key and names it; and the stored hashes give its root. `Ok(Err)`: what fails.
    async fn check_head(
        &mut self,
        c: &mut Conn<'_>,
        size: u64,
        root: &Hash,
        note: &str,
        verify_note: bool,
        adopt: bool,
    ) -> Result<Result<Frontier, Finding>, StoreError> {
        if !adopt {
            if let Some(finding) = integrity::check_extends(c, &self.seen, size, root).await? {
                return Ok(Err(finding));
            }
        }
        if verify_note {
            let verifier = self.signer.verifier();
            if let Err(why) = integrity::verify_head_note(note, verifier, size, root) {
                return Ok(Err(Finding::HeadNotSigned(why)));
            }
        }
        let frontier = match self.frontier.take() {
            Some(f) if f.size() == size => f,
            _ => match load_frontier(c, size).await {
                Ok(f) => f,
                Err(StoreError::Corrupt(why)) => return Ok(Err(Finding::Damaged(why))),
                Err(e) => return Err(e),
            },
        };
        if frontier.root() != *root {
            return Ok(Err(Finding::Damaged(format!(
                "the stored right edge of the tree gives root {} at size {size}, but the head says {}",
                hex(&frontier.root()),
                hex(root)
            ))));
        }
        Ok(Ok(frontier))
    }
}

/// What a commit does with the head it finds.
#[derive(Debug, Clone, Copy)]
pub(super) enum OnHead<'a> {
    /// It must extend the checkpoint seen (every ordinary batch).
    Extend,
    /// It is taken as it stands (an operator acknowledged an integrity failure).
    Adopt,
    /// It is first moved forward again onto this checkpoint, which the log signed and
    /// the database still holds past it (an operator acknowledged a head moved back over
    /// its rows), in the commit's transaction.
    PutBack(&'a SignedCheckpoint),
}

/// Moves `head` forward onto `signed` (a checkpoint the log signed, past it), once the
/// stored leaves between them give `signed`'s root and every stored hash they make agrees;
/// returns the new head. An error leaves the transaction to be rolled back.
pub(super) async fn put_head_back(
    c: &mut Conn<'_>,
    head: HeadRow,
    signed: &SignedCheckpoint,
) -> Result<HeadRow, StoreError> {
    let size = to_u64(head.size)?;
    if size > signed.size {
        return Err(StoreError::InvalidInput(format!(
            "the log's head is at {size} entries now, past the checkpoint of {} it was to be put back on: read the failure again",
            signed.size
        )));
    }
    let cannot = |why: String| {
        StoreError::Corrupt(format!(
            "{why}: the head cannot be put back on the checkpoint of {} the log signed; restore the database from a backup",
            signed.size
        ))
    };
    let mut frontier = load_frontier(c, size).await?;
    while frontier.size() < signed.size {
        let start = frontier.size();
        let end = signed.size.min(start + crate::MAX_ENTRIES_PER_READ);
        let rows = sql::entries(c, to_i64(start)?, to_i64(end)?).await?;
        if rows.len() as u64 != end - start {
            return Err(cannot(format!(
                "entries {start}..{end} past the head are not all stored"
            )));
        }
        let mut made = Vec::new();
        for (_, leaf) in &rows {
            made.extend(frontier.append(custody_ledger::leaf_hash(leaf)));
        }
        let ids: Vec<_> = made.iter().map(|(id, _)| *id).collect();
        let stored = read_nodes(c, &ids)
            .await
            .map_err(|e| cannot(e.to_string()))?;
        if let Some(((id, _), _)) = made.iter().zip(&stored).find(|((_, h), s)| h != *s) {
            return Err(cannot(format!(
                "the stored hash of subtree level {} index {} is not what the entries past the head give",
                id.level, id.index
            )));
        }
    }
    if frontier.root() != signed.root {
        return Err(cannot(
            "the entries past the head do not give its root: they were changed".into(),
        ));
    }
    if !sql::advance_head(
        c,
        head.size,
        to_i64(signed.size)?,
        &signed.root,
        &signed.note,
    )
    .await?
    {
        return Err(StoreError::Corrupt(
            "the log head moved while this writer held its lock".into(),
        ));
    }
    Ok(HeadRow {
        size: to_i64(signed.size)?,
        root: signed.root.to_vec(),
        checkpoint: signed.note.clone(),
    })
}

/// Refuses to adopt a head past which the database holds entries: they are append-only,
/// so nothing can be appended after the head, and custody does not remove them.
pub(super) async fn nothing_past(c: &mut Conn<'_>, size: i64) -> Result<(), StoreError> {
    match sql::newest_entry(c).await? {
        Some(last) if last >= size => Err(past_the_head(size, last)),
        _ => Ok(()),
    }
}

/// The refusal of a database holding entries `size..=last` past its head.
pub(crate) fn past_the_head(size: i64, last: i64) -> StoreError {
    StoreError::Corrupt(format!(
        "the database holds entries {size}..={last} past its head of {size} that no checkpoint the log signed covers: nothing can be appended after them, and custody does not remove ledger rows; restore the database from a backup"
    ))
}
