//! Group commit: one task per open store takes every waiting append, writes them in one
//! transaction under the log's write lock, signs one checkpoint for the batch, and commits
//! with one fsync.
//!
//! While a batch commits, new appends queue on the channel; the next batch takes them all.
//! So under load the fsync cost is shared by as many appends as arrive during one commit,
//! and with one appender the latency is one commit.
//!
//! Several processes (several `custody serve` on one PostgreSQL, or a CLI beside a server
//! on one SQLite file) each run a committer; the write lock serialises their batches, and
//! each re-reads the head under the lock, so the log stays linear.
//!
//! Each batch also checks the head it read against the newest checkpoint this committer
//! signed or verified (`seen`, see `integrity.rs`): a head that went back or off that
//! history stops the committer for good (until an operator acknowledges it), before it
//! signs anything.
//!
//! This file holds the committer's loop and one batch's commit; `head.rs` the checks of
//! the head found under the lock, and its adoption or putting back after an integrity
//! failure.

use std::collections::HashMap;
use std::sync::Arc;

use custody_crypto::note::NoteSigner;
use custody_ledger::{Checkpoint, Frontier, Hash};
use tokio::sync::{mpsc, oneshot};

use crate::batch::BatchPlan;
use crate::checkpoint_file;
use crate::db::Pool;
use crate::faults::{FaultInjector, FaultPoint};
use crate::integrity::{IntegrityFailure, Status, Witness};
use crate::search::Indexed;
use crate::sql::{self, Conn, StateRow};
use crate::{Append, Appended, SignedCheckpoint, StoreError};

mod head;

pub(crate) use head::past_the_head;
use head::{OnHead, nothing_past, put_head_back};

/// One caller's append waiting to be committed.
pub(crate) struct Request {
    pub(crate) append: Append,
    /// What each of its events is searched by (`search::index`), worked out by the
    /// caller's task rather than under the log's lock.
    pub(crate) indexed: Vec<Indexed>,
    pub(crate) reply: oneshot::Sender<Result<Appended, StoreError>>,
}

/// What the committer is asked to do.
pub(crate) enum Job {
    /// Commit an append (with whatever else is waiting).
    Append(Request),
    /// An operator accepts the database's head after `failure`: commit `request` (the
    /// record of that decision) on it, alone, and leave the read-only state.
    Acknowledge {
        failure: IntegrityFailure,
        request: Request,
    },
    /// Hand the log over to `successor`: commit `request` (its `log.key_rotated` event)
    /// alone at exactly `size` entries, sign that checkpoint with both keys, and sign
    /// with `successor` from then on.
    RotateKey {
        successor: Box<NoteSigner>,
        size: u64,
        request: Request,
    },
}

pub(crate) struct Committer {
    pub(crate) pool: Pool,
    pub(crate) signer: NoteSigner,
    /// The right edge of the tree as this committer last committed it. Only a cache: each
    /// batch checks it against the head it read under the lock, and reloads it from the
    /// stored hashes when another process moved the head (or a commit failed midway).
    pub(crate) frontier: Option<Frontier>,
    /// The log's latest stamp (the running `max:` search term) as this committer's last
    /// batch left it, with the log's size then. Only a cache, like `frontier`: used while
    /// the head read under the lock is still that size (nothing else appended since; a
    /// head put back or adopted reads it again).
    pub(crate) latest_stamp: Option<(u64, Option<i128>)>,
    /// The newest checkpoint this committer signed or verified. It only moves forward:
    /// every head read under the lock must extend it.
    pub(crate) seen: SignedCheckpoint,
    /// Shared with the store: the integrity failure (if any) and the storage status.
    pub(crate) status: Arc<Status>,
    /// The checkpoint file's writer, if one is kept.
    pub(crate) checkpoint_file: Option<checkpoint_file::Writer>,
    pub(crate) faults: Option<Arc<dyn FaultInjector>>,
    /// The SQLite file opened, checked before each batch (see `database_file.rs`).
    pub(crate) database_file: Option<Arc<crate::database_file::DatabaseFile>>,
    pub(crate) max_batch_events: usize,
    pub(crate) max_batch_bytes: usize,
}

impl Committer {
    /// Commits batches until every sender is dropped.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        // A job that arrived while a batch was being gathered, run after it.
        let mut held = None;
        loop {
            let job = match held.take() {
                Some(job) => job,
                None => match rx.recv().await {
                    Some(job) => job,
                    None => break,
                },
            };
            match job {
                Job::Acknowledge { failure, request } => {
                    let result = self
                        .acknowledge(&failure, request.append, request.indexed)
                        .await;
                    self.publish_checkpoint();
                    let _ = request.reply.send(result);
                }
                Job::RotateKey {
                    successor,
                    size,
                    request,
                } => {
                    let result = match self.status.integrity() {
                        Some(failure) => Err(StoreError::Integrity(Box::new(failure))),
                        None => {
                            let handover = Some((&*successor, size));
                            let outcome = self
                                .commit(
                                    &[request.append],
                                    &[request.indexed],
                                    OnHead::Extend,
                                    handover,
                                )
                                .await;
                            self.status.wrote(&outcome);
                            match outcome {
                                Ok(mut results) => results.pop().unwrap_or(Err(StoreError::Closed)),
                                Err(e) => Err(e),
                            }
                        }
                    };
                    match &result {
                        // The hand-over checkpoint is committed: the successor signs on.
                        Ok(_) => self.signer = *successor,
                        Err(_) => self.frontier = None,
                    }
                    self.publish_checkpoint();
                    let _ = request.reply.send(result);
                }
                Job::Append(first) => {
                    let (mut events, mut bytes) = (0, 0);
                    let mut batch = Vec::new();
                    let mut next = Some(first);
                    // Take what is waiting, up to the batch bounds (always at least one).
                    while let Some(request) = next.take() {
                        events += request.append.events.len();
                        bytes += request.append.byte_len();
                        batch.push(request);
                        if events < self.max_batch_events && bytes < self.max_batch_bytes {
                            match rx.try_recv() {
                                Ok(Job::Append(r)) => next = Some(r),
                                Ok(other) => held = Some(other),
                                Err(_) => {}
                            }
                        }
                    }
                    self.commit_batch(batch).await;
                }
            }
        }
        self.pool.close().await;
    }

    async fn commit_batch(&mut self, batch: Vec<Request>) {
        let mut appends = Vec::with_capacity(batch.len());
        let mut terms = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for r in batch {
            appends.push(r.append);
            terms.push(r.indexed);
            replies.push(r.reply);
        }
        let file = self.database_file.as_ref().map_or(Ok(()), |f| f.check());
        let outcome = match (self.status.integrity(), file) {
            // Read-only after an integrity failure: nothing reaches the database.
            (Some(failure), _) => Err(StoreError::Integrity(Box::new(failure))),
            // Written to a file nothing names any more, it would be lost: nothing is.
            (None, Err(e)) => Err(e),
            (None, Ok(())) => self.commit(&appends, &terms, OnHead::Extend, None).await,
        };
        self.status.wrote(&outcome);
        let results = match outcome {
            Ok(results) => results,
            Err(e) => {
                self.frontier = None;
                appends.iter().map(|_| Err(batch_failure(&e))).collect()
            }
        };
        self.publish_checkpoint();
        for (reply, result) in replies.into_iter().zip(results) {
            // A caller that gave up waiting has dropped its receiver; its append
            // stands (or not) all the same.
            let _ = reply.send(result);
        }
    }

    /// Adopts the database's head after `failure` and commits `append` on it alone.
    async fn acknowledge(
        &mut self,
        failure: &IntegrityFailure,
        append: Append,
        indexed: Vec<Indexed>,
    ) -> Result<Appended, StoreError> {
        if self.status.integrity().as_ref() != Some(failure) {
            return Err(StoreError::InvalidInput(
                "that is not this store's integrity failure (read it again from \
                 Store::integrity): nothing was acknowledged"
                    .into(),
            ));
        }
        self.frontier = None;
        // A head moved back over rows the database still holds (append-only, they cannot
        // be given up): the log is put back on the checkpoint it signed, and the record of
        // the decision follows it, in one transaction. Otherwise the head is adopted as it
        // stands.
        let on_head = match failure.witness {
            Witness::Database => OnHead::PutBack(&failure.seen),
            _ => OnHead::Adopt,
        };
        let outcome = self.commit(&[append], &[indexed], on_head, None).await;
        self.status.wrote(&outcome);
        let result = match outcome {
            Ok(mut results) => results.pop().unwrap_or(Err(StoreError::Closed)),
            Err(e) => {
                self.frontier = None;
                Err(e)
            }
        };
        // Committed (or a replay of a commit whose outcome was unknown): the record of
        // the decision is in the ledger, so the store may append again.
        if result.is_ok() {
            self.status.clear_integrity();
        }
        result
    }

    /// Has the newest checkpoint seen written to the checkpoint file. Not while the store
    /// is read-only after an integrity failure: the file keeps the evidence.
    fn publish_checkpoint(&self) {
        self.status.saw(&self.seen);
        if let Some(writer) = &self.checkpoint_file {
            if self.status.integrity().is_none() {
                writer.send(&self.seen.note);
            }
        }
    }

    fn fault(&self, point: FaultPoint) -> Result<(), StoreError> {
        match &self.faults {
            Some(f) if f.fail_at(point) => Err(StoreError::Injected(point.as_str())),
            _ => Ok(()),
        }
    }

    /// Commits one batch. `Err`: nothing of the batch is committed (or, for
    /// `OutcomeUnknown`, it cannot be known). `Ok`: one result per append. `on_head`: what
    /// to do with the head found (see [`OnHead`]). `handover`: the successor log key and the
    /// size the batch must end at; its checkpoint is signed by both keys.
    async fn commit(
        &mut self,
        appends: &[Append],
        terms: &[Vec<Indexed>],
        on_head: OnHead<'_>,
        handover: Option<(&NoteSigner, u64)>,
    ) -> Result<Vec<Result<Appended, StoreError>>, StoreError> {
        let mut tx = self.pool.begin_write().await?;
        let mut c = tx.conn();
        let mut head = sql::head(&mut c, true)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the log head row is missing".into()))?;
        if let OnHead::PutBack(signed) = on_head {
            head = put_head_back(&mut c, head, signed).await?;
        }
        let adopt = !matches!(on_head, OnHead::Extend);
        if adopt {
            nothing_past(&mut c, head.size).await?;
        }
        let size = to_u64(head.size)?;
        let mut frontier = self.admit_head(&mut c, head, adopt).await?;

        let mut plan = BatchPlan::new(size);
        plan.read_versions(&mut c, appends).await?;
        for append in appends {
            let result = plan.admit(&mut c, append, &mut frontier).await?;
            plan.results.push(result);
        }
        if plan.next == size {
            // Every append was a replay or refused: nothing to write, no new checkpoint.
            tx.rollback().await?;
            self.frontier = Some(frontier);
            return Ok(plan.results);
        }
        let new_size = plan.next;
        if let Some((_, at)) = handover {
            if new_size != at {
                tx.rollback().await?;
                self.frontier = Some(frontier);
                return Err(StoreError::InvalidInput(format!(
                    "the hand-over names a log of {at} entries, but with it the log has {new_size}: nothing was written"
                )));
            }
        }
        for result in plan.results.iter_mut().flatten() {
            if result.first_index >= size {
                result.tree_size = new_size;
            }
        }

        self.fault(FaultPoint::WriteEntries)?;
        sql::insert_entries(&mut c, to_i64(size)?, &plan.leaves(appends)).await?;
        sql::insert_nodes(&mut c, &plan.nodes).await?;
        let latest = match self.latest_stamp {
            Some((at, latest)) if at == size && !adopt => latest,
            _ => sql::latest_stamp(&mut c).await?,
        };
        let (term_rows, latest) = plan.term_rows(terms, latest)?;
        sql::insert_terms(&mut c, &term_rows).await?;
        self.fault(FaultPoint::WriteState)?;
        let (removed, written): (Vec<StateRow>, Vec<StateRow>) =
            plan.state.iter().cloned().partition(|row| row.3 == "null");
        sql::upsert_state(&mut c, &written).await?;
        sql::delete_state(&mut c, &removed).await?;
        let idempotency = plan.idempotency_rows(appends, new_size)?;
        sql::insert_idempotency(&mut c, &idempotency).await?;

        self.fault(FaultPoint::WriteCheckpoint)?;
        let root = frontier.root();
        let checkpoint = Checkpoint {
            origin: self.signer.verifier().name().to_owned(),
            size: new_size,
            root,
            extensions: Vec::new(),
        };
        let note = match handover {
            Some((successor, _)) => checkpoint.sign_handover(&self.signer, successor),
            None => checkpoint.sign(&self.signer),
        }
        .map_err(|e| StoreError::Signing(e.to_string()))?;
        sql::insert_checkpoint(&mut c, to_i64(new_size)?, &note).await?;
        if !sql::advance_head(&mut c, to_i64(size)?, to_i64(new_size)?, &root, &note).await? {
            return Err(StoreError::Corrupt(
                "the log head moved while this writer held its lock".into(),
            ));
        }

        self.fault(FaultPoint::Commit)?;
        tx.commit()
            .await
            .map_err(|e| StoreError::OutcomeUnknown(e.to_string()))?;
        self.frontier = Some(frontier);
        self.latest_stamp = Some((new_size, latest));
        self.seen = SignedCheckpoint {
            size: new_size,
            root,
            note,
        };
        if self.fault(FaultPoint::AfterCommit).is_err() {
            return Err(StoreError::OutcomeUnknown(
                "injected fault after commit".into(),
            ));
        }
        Ok(plan.results)
    }
}

/// Reloads the tree's right edge at `size` from the stored hashes.
pub(crate) async fn load_frontier(c: &mut Conn<'_>, size: u64) -> Result<Frontier, StoreError> {
    let ids = Frontier::nodes_for(size);
    let hashes = read_nodes(c, &ids).await?;
    Frontier::from_hashes(size, &hashes)
        .ok_or_else(|| StoreError::Corrupt(format!("cannot rebuild the tree's edge at {size}")))
}

/// Reads stored hashes of `ids`, in order; a missing one is damage.
pub(crate) async fn read_nodes(
    c: &mut Conn<'_>,
    ids: &[custody_ledger::NodeId],
) -> Result<Vec<Hash>, StoreError> {
    let keys = ids
        .iter()
        .map(|&id| node_key(id))
        .collect::<Result<Vec<_>, _>>()?;
    let mut found: HashMap<i64, Vec<u8>> = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(500) {
        found.extend(sql::nodes(c, chunk).await?);
    }
    ids.iter()
        .zip(&keys)
        .map(|(id, key)| {
            found
                .get(key)
                .and_then(|h| Hash::try_from(&h[..]).ok())
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "the hash of subtree level {} index {} is missing",
                        id.level, id.index
                    ))
                })
        })
        .collect()
}

/// The error each caller of a failed batch gets.
fn batch_failure(e: &StoreError) -> StoreError {
    match e {
        StoreError::OutcomeUnknown(m) => StoreError::OutcomeUnknown(m.clone()),
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Injected(p) => StoreError::Injected(p),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::Integrity(f) => StoreError::Integrity(f.clone()),
        StoreError::RetiredKey {
            retired,
            successor,
            at,
            current,
        } => StoreError::RetiredKey {
            retired: retired.clone(),
            successor: successor.clone(),
            at: *at,
            current: current.clone(),
        },
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// A stored hash's row id: `level << 56 | index` (indices stay below 2^56).
pub(crate) fn node_key(id: custody_ledger::NodeId) -> Result<i64, StoreError> {
    if id.index >= 1 << 56 || id.level > 63 {
        return Err(StoreError::OutOfRange(format!(
            "subtree level {} index {} is beyond what the store addresses",
            id.level, id.index
        )));
    }
    Ok(i64::from(id.level) << 56 | id.index as i64)
}

pub(crate) fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::OutOfRange(format!("{v} is too large")))
}

pub(crate) fn to_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("stored count {v} is negative")))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
