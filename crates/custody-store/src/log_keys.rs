//! The log key's history as the store learns it at open, and the hand-over itself.
//!
//! The ledger records the key it was created with (`log_meta`); every later key comes from
//! a `log.key_rotated` event and its hand-over checkpoint, which [`LogKeys::follow`]
//! verifies (signed by the retiring key and by the successor, the event proved its last
//! leaf). The search index only *finds* those events: a row added to it names a leaf that
//! must still pass `follow`, and a row taken out of it leaves the history short of the key
//! the operator configured, which refuses the open. Nothing is trusted because a table
//! says so.

use custody_crypto::note::{NoteSigner, NoteVerifier};
use custody_ledger::{LOG_KEY_ROTATED, LogKeyRotation, LogKeys, inclusion_plan};
use custody_model::CanonicalJson;

use crate::commit::{self, Job, to_i64, to_u64};
use crate::sql::{self, Conn};
use crate::{Append, SignedCheckpoint, SqlStore, StoreError, search};

/// The most hand-overs a log may have: each is a deliberate, offline operator action.
const MAX_HANDOVERS: i64 = 10_000;

/// The history of a log of `size` entries created under `first`: every hand-over the
/// ledger holds, followed in order.
pub(crate) async fn load(
    c: &mut Conn<'_>,
    first: NoteVerifier,
    size: u64,
) -> Result<LogKeys, StoreError> {
    let mut keys = LogKeys::new(first);
    let term = [search::event_type(LOG_KEY_ROTATED)];
    let mut found = sql::search(c, &term, 0, to_i64(size)?, MAX_HANDOVERS).await?;
    found.reverse(); // newest first as read
    for (index, leaf) in found {
        let at = to_u64(index)? + 1;
        let note = match sql::checkpoints(c, index + 1, 1).await?.pop() {
            Some((s, note)) if s == index + 1 => note,
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "the {LOG_KEY_ROTATED} event at index {index} has no hand-over checkpoint of {at} entries"
                )));
            }
        };
        let plan = inclusion_plan(at - 1, at).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let proof = plan
            .assemble(&commit::read_nodes(c, plan.nodes()).await?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        keys.follow(&note, &leaf, &proof).map_err(|e| {
            StoreError::Corrupt(format!("the log-key hand-over at {at} entries: {e}"))
        })?;
    }
    Ok(keys)
}

/// Whether another process handed the log over from `key` between `from` and `to` entries
/// (the head moved past a checkpoint this writer saw, and is not signed by `key`): a
/// `log.key_rotated` event there that [`LogKeys::follow`] accepts from `key`, so `key`
/// itself signed the hand-over. Then the writer still holding `key` is refused as retired
/// (restart it with the successor) rather than turned read-only for lost history: nothing
/// was changed behind custody's back. A hand-over `key` did not sign counts for nothing.
pub(crate) async fn handed_over_from(
    c: &mut Conn<'_>,
    key: &NoteVerifier,
    from: u64,
    to: u64,
) -> Result<Option<StoreError>, StoreError> {
    let term = [search::event_type(LOG_KEY_ROTATED)];
    let found = sql::search(c, &term, to_i64(from)?, to_i64(to)?, MAX_HANDOVERS).await?;
    for (index, leaf) in found {
        let at = to_u64(index)? + 1;
        let note = match sql::checkpoints(c, index + 1, 1).await?.pop() {
            Some((s, note)) if s == index + 1 => note,
            _ => continue,
        };
        let plan = inclusion_plan(at - 1, at).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let proof = plan
            .assemble(&commit::read_nodes(c, plan.nodes()).await?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut keys = LogKeys::new(key.clone());
        if keys.follow(&note, &leaf, &proof).is_ok() {
            return Ok(Some(mismatch(&keys, key)));
        }
    }
    Ok(None)
}

/// A key that is not the one the ledger's history ends with: an older key of this log
/// (retired), or another log's.
pub(crate) fn mismatch(keys: &LogKeys, given: &NoteVerifier) -> StoreError {
    match keys.retirement(given) {
        Some((at, successor)) => StoreError::RetiredKey {
            retired: given.to_text(),
            successor: successor.to_text(),
            at,
            current: keys.current().to_text(),
        },
        None => StoreError::KeyMismatch {
            expected: keys.current().to_text(),
            found: given.to_text(),
        },
    }
}

impl SqlStore {
    /// The log key's history: the key the ledger was created with and every hand-over
    /// since, each verified (see [`LogKeys::follow`]).
    pub fn log_keys(&self) -> &LogKeys {
        &self.keys
    }

    /// Hands the log over to `successor`: commits `event` (a `log.key_rotated` event
    /// naming the current key, the successor and the size of the log with it) alone, and
    /// signs the checkpoint that ends with it with both keys. Every later checkpoint is
    /// the successor's alone. The store is closed afterwards: open it again with the
    /// successor. Refused, with nothing written, when the event does not name exactly this
    /// hand-over at the head's next size.
    pub async fn rotate_log_key(
        self,
        successor: NoteSigner,
        event: CanonicalJson,
    ) -> Result<SignedCheckpoint, StoreError> {
        let rotation = match LogKeyRotation::from_leaf(event.as_bytes()) {
            Some(Ok(r)) => r,
            Some(Err(e)) => return Err(StoreError::InvalidInput(e.to_string())),
            None => {
                return Err(StoreError::InvalidInput(format!(
                    "a log-key hand-over appends a {LOG_KEY_ROTATED} event"
                )));
            }
        };
        let expected = LogKeyRotation::new(&self.verifier, successor.verifier(), rotation.size);
        if rotation != expected {
            return Err(StoreError::InvalidInput(format!(
                "the {LOG_KEY_ROTATED} event must hand {} over to {}",
                self.verifier.to_text(),
                successor.verifier().to_text()
            )));
        }
        let queue = self.appends.clone().ok_or(StoreError::ReadOnly)?;
        let append = Append {
            events: vec![event],
            state: Vec::new(),
            idempotency: None,
        };
        let (request, result) = crate::sql_store::request(append);
        let sent = queue
            .send(Job::RotateKey {
                successor: Box::new(successor),
                size: rotation.size,
                request,
            })
            .await;
        drop(queue);
        let outcome = match sent {
            Ok(()) => result.await.map_err(|_| StoreError::Closed).and_then(|r| r),
            Err(_) => Err(StoreError::Closed),
        };
        let head = match outcome {
            Ok(_) => self.checkpoint_raw().await,
            Err(e) => Err(e),
        };
        self.close().await;
        head
    }

    /// The head as stored, its note unchecked (the caller just wrote it).
    async fn checkpoint_raw(&self) -> Result<SignedCheckpoint, StoreError> {
        let mut conn = self.read.acquire().await?;
        let head = sql::head(&mut conn.conn(), false)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the log head row is missing".into()))?;
        let root = custody_ledger::Hash::try_from(&head.root[..])
            .map_err(|_| StoreError::Corrupt("the log head's root is not 32 bytes".into()))?;
        Ok(SignedCheckpoint {
            size: to_u64(head.size)?,
            root,
            note: head.checkpoint,
        })
    }
}
