//! [`SqlStore`]: the [`Store`] on SQLite or PostgreSQL.
//!
//! This file holds the store itself: what it is made of, its own methods (where it lives,
//! durability settings, the readiness probe, closing) and the helpers its reads share;
//! `store.rs` keeps the [`Store`] contract's methods.
//!
//! [`Store`]: crate::Store

use std::sync::Arc;

use custody_crypto::note::NoteVerifier;
use custody_ledger::{Hash, LogKeys, ProofPlan};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::checkpoint_file::CheckpointFileStatus;
use crate::commit::{self, Job, Request, to_u64};
use crate::database_file::DatabaseFile;
use crate::db::{Durability, Location, Pool};
use crate::integrity::{IntegrityFailure, Status};
use crate::search;
use crate::sql::{self, Conn};
use crate::{Append, Appended, SignedCheckpoint, StoreError};

mod store;

/// The ledger and state in an SQLite file or a PostgreSQL database.
pub struct SqlStore {
    pub(crate) location: Location,
    pub(crate) read: Pool,
    /// The committer's pool (the same as `read` on PostgreSQL); `None` when read-only.
    pub(crate) write: Option<Pool>,
    /// The current log key (the last of `keys`).
    pub(crate) verifier: NoteVerifier,
    /// The log key's history: every checkpoint is verified with the key in force at its
    /// size.
    pub(crate) keys: LogKeys,
    /// The committer's queue; `None` when opened read-only.
    pub(crate) appends: Option<mpsc::Sender<Job>>,
    /// The committer's task, then the checkpoint file writer's (which ends after it).
    pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Every entry has its search terms. Always so once a writer has opened the store (it
    /// runs the backfill); a reader of a ledger no writer has opened since the search index
    /// was added refuses to search rather than answer from part of the log.
    pub(crate) searchable: bool,
    /// The integrity failure and storage status, shared with the committer.
    pub(crate) status: Arc<Status>,
    /// What the checkpoint file held when the store was opened.
    /// (Boxed: it is read once, and a store is often held in an enum beside small values.)
    pub(crate) checkpoint_file: Box<CheckpointFileStatus>,
    /// The SQLite file opened for writing, checked before writes (see `database_file.rs`).
    pub(crate) database_file: Option<Arc<DatabaseFile>>,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqlStore({})", self.location.describe())
    }
}

impl SqlStore {
    /// The failure, if the head row now stands behind the newest checkpoint this store's
    /// committer signed or verified, or at its size with another root. (A read that fails
    /// says nothing here: the storage checks report it.)
    async fn head_went_back(&self) -> Option<IntegrityFailure> {
        let seen = self.status.seen()?;
        let mut conn = self.read.acquire().await.ok()?;
        let row = sql::head(&mut conn.conn(), false).await.ok()??;
        let size = to_u64(row.size).ok()?;
        let root = custody_ledger::Hash::try_from(&row.root[..]).ok()?;
        let finding = if size < seen.size {
            crate::Finding::WentBack
        } else if size == seen.size && root != seen.root {
            crate::Finding::Forked
        } else {
            return None;
        };
        Some(IntegrityFailure {
            finding,
            found_size: size,
            found_root: root,
            seen,
            witness: crate::Witness::ThisProcess,
        })
    }

    /// What the checkpoint file held when the store was opened (see [`crate::CheckpointFile`]).
    /// A server should warn when it was [`CheckpointFileStatus::Recreated`] on a ledger
    /// that is not new: the file was removed, so a rollback while stopped went unchecked.
    pub fn checkpoint_file(&self) -> &CheckpointFileStatus {
        &self.checkpoint_file
    }

    /// Why the last write of the checkpoint file failed, if it did (the commits stand; the
    /// file lags behind until a write succeeds).
    pub fn checkpoint_file_error(&self) -> Option<String> {
        self.status.checkpoint_file_error()
    }

    /// The durability settings in effect on every connection of the store's pools (see
    /// [`Durability`]). It holds every connection while it reads them: for tests and
    /// diagnostics, not for a busy server's hot path.
    pub async fn durability(&self) -> Result<Vec<Durability>, StoreError> {
        let mut settings = Vec::new();
        if let Some(write @ Pool::Sqlite(_)) = &self.write {
            settings.extend(write.durability().await?);
        }
        settings.extend(self.read.durability().await?);
        Ok(settings)
    }

    /// Commits a write outside the ledger on each pool that writes (see
    /// [`Readiness`](crate::Readiness)).
    async fn probe(&self) -> Result<(), StoreError> {
        let pools = match &self.write {
            Some(write @ Pool::Sqlite(_)) => vec![write, &self.read],
            _ => vec![&self.read],
        };
        for pool in pools {
            let mut tx = pool.begin_write().await?;
            sql::probe(&mut tx.conn()).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Where the ledger lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The log's verifier key (C2SP signed-note form).
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// Bytes the database occupies on disk.
    pub async fn database_bytes(&self) -> Result<u64, StoreError> {
        let mut conn = self.read.acquire().await?;
        to_u64(sql::database_bytes(&mut conn.conn()).await?)
    }

    /// Finishes the appends already queued and the checkpoint file's last write, then
    /// closes the database.
    pub async fn close(mut self) {
        self.appends = None;
        // In order: once the committer is gone, so is the file writer's sender, and the
        // writer ends after writing the last note.
        for task in self.tasks.lock().await.drain(..) {
            let _ = task.await;
        }
        self.read.close().await;
    }

    async fn fetch_plan(&self, plan: &ProofPlan) -> Result<Vec<Hash>, StoreError> {
        let mut conn = self.read.acquire().await?;
        let hashes = commit::read_nodes(&mut conn.conn(), plan.nodes()).await?;
        plan.assemble(&hashes)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Refuses a search of a ledger whose older entries have no terms yet.
    fn check_searchable(&self) -> Result<(), StoreError> {
        if self.searchable {
            return Ok(());
        }
        Err(StoreError::Unavailable(
            "this ledger's search index is not built yet: open it once for writing \
             (e.g. start `custody serve`), which builds it"
                .into(),
        ))
    }

    /// The head's size alone: bounds-checking a read needs no signature check.
    async fn head_size(&self) -> Result<u64, StoreError> {
        let mut conn = self.read.acquire().await?;
        let head = sql::head(&mut conn.conn(), false)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the log head row is missing".into()))?;
        to_u64(head.size)
    }

    async fn check_size(&self, size: u64) -> Result<(), StoreError> {
        let head = self.head_size().await?;
        if size > head {
            return Err(StoreError::OutOfRange(format!(
                "tree size {size} is beyond the log's size {head}"
            )));
        }
        Ok(())
    }

    /// Why a stored checkpoint of `size` entries did not verify (`e`): when another process
    /// handed the log over from the key this store holds (`custody key rotate log` while
    /// this one ran, which signed the hand-over with that key), it is retired, and says how
    /// to restart on the successor; otherwise the checkpoint is damaged (`e`).
    pub(crate) async fn unverified(
        &self,
        c: &mut Conn<'_>,
        size: u64,
        e: StoreError,
    ) -> StoreError {
        // The key in force took over at the last hand-over this store knows of; its own
        // hand-over can only come after.
        let from = self.keys.handovers().last().unwrap_or(0);
        match crate::log_keys::handed_over_from(c, self.keys.current(), from, size).await {
            Ok(Some(retired)) => retired,
            Ok(None) | Err(_) => e,
        }
    }
}

/// A request for the committer, and where its result will come.
pub(crate) fn request(
    append: Append,
) -> (Request, oneshot::Receiver<Result<Appended, StoreError>>) {
    let (reply, result) = oneshot::channel();
    let indexed = append
        .events
        .iter()
        .map(|e| search::index(e.as_bytes()))
        .collect();
    let request = Request {
        append,
        indexed,
        reply,
    };
    (request, result)
}

pub(crate) fn signed_checkpoint(
    keys: &LogKeys,
    size: u64,
    note: String,
) -> Result<SignedCheckpoint, StoreError> {
    let cp = keys
        .open(&note)
        .map_err(|e| StoreError::Corrupt(format!("stored checkpoint {size}: {e}")))?;
    Ok(SignedCheckpoint {
        size: cp.size,
        root: cp.root,
        note,
    })
}
