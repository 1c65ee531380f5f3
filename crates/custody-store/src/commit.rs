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

use std::collections::HashMap;
use std::sync::Arc;

use custody_crypto::note::NoteSigner;
use custody_ledger::{Checkpoint, Frontier, Hash, leaf_hash};
use tokio::sync::{mpsc, oneshot};

use crate::db::Pool;
use crate::faults::{FaultInjector, FaultPoint};
use crate::search::{self, Indexed};
use crate::sql::{self, Conn, NewIdempotencyRow, StateRow};
use crate::{Append, Appended, Expect, StoreError};

/// One caller's append waiting to be committed.
pub(crate) struct Request {
    pub(crate) append: Append,
    /// What each of its events is searched by (`search::index`), worked out by the
    /// caller's task rather than under the log's lock.
    pub(crate) indexed: Vec<Indexed>,
    pub(crate) reply: oneshot::Sender<Result<Appended, StoreError>>,
}

pub(crate) struct Committer {
    pub(crate) pool: Pool,
    pub(crate) signer: NoteSigner,
    /// The right edge of the tree as this committer last committed it. Only a cache: each
    /// batch checks it against the head it read under the lock, and reloads it from the
    /// stored hashes when another process moved the head (or a commit failed midway).
    pub(crate) frontier: Option<Frontier>,
    pub(crate) faults: Option<Arc<dyn FaultInjector>>,
    pub(crate) max_batch_events: usize,
    pub(crate) max_batch_bytes: usize,
}

impl Committer {
    /// Commits batches until every sender is dropped.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        while let Some(first) = rx.recv().await {
            let (mut events, mut bytes) = (0, 0);
            let mut batch = Vec::new();
            let mut next = Some(first);
            // Take what is waiting, up to the batch bounds (always at least one append).
            while let Some(request) = next.take() {
                events += request.append.events.len();
                bytes += request.append.byte_len();
                batch.push(request);
                if events < self.max_batch_events && bytes < self.max_batch_bytes {
                    next = rx.try_recv().ok();
                }
            }
            let mut appends = Vec::with_capacity(batch.len());
            let mut terms = Vec::with_capacity(batch.len());
            let mut replies = Vec::with_capacity(batch.len());
            for r in batch {
                appends.push(r.append);
                terms.push(r.indexed);
                replies.push(r.reply);
            }
            let results = match self.commit(&appends, &terms).await {
                Ok(results) => results,
                Err(e) => {
                    self.frontier = None;
                    appends.iter().map(|_| Err(batch_failure(&e))).collect()
                }
            };
            for (reply, result) in replies.into_iter().zip(results) {
                // A caller that gave up waiting has dropped its receiver; its append
                // stands (or not) all the same.
                let _ = reply.send(result);
            }
        }
        self.pool.close().await;
    }

    fn fault(&self, point: FaultPoint) -> Result<(), StoreError> {
        match &self.faults {
            Some(f) if f.fail_at(point) => Err(StoreError::Injected(point.as_str())),
            _ => Ok(()),
        }
    }

    /// Commits one batch. `Err`: nothing of the batch is committed (or, for
    /// `OutcomeUnknown`, it cannot be known). `Ok`: one result per append.
    async fn commit(
        &mut self,
        appends: &[Append],
        terms: &[Vec<Indexed>],
    ) -> Result<Vec<Result<Appended, StoreError>>, StoreError> {
        let mut tx = self.pool.begin_write().await?;
        let mut c = tx.conn();
        let head = sql::head(&mut c, true)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the log head row is missing".into()))?;
        let size = to_u64(head.size)?;
        let mut frontier = match self.frontier.take() {
            Some(f) if f.size() == size => f,
            _ => load_frontier(&mut c, size).await?,
        };
        if frontier.root()[..] != head.root[..] {
            return Err(StoreError::Corrupt(format!(
                "the stored right edge of the tree gives root {} at size {size}, but the head says {}",
                hex(&frontier.root()),
                hex(&head.root)
            )));
        }

        let mut plan = BatchPlan::new(size);
        for append in appends {
            let result = plan.admit(&mut c, append, &mut frontier).await?;
            plan.results.push(result);
        }
        if plan.next == size {
            // Every append was a replay or refused: nothing to write, no new checkpoint.
            self.frontier = Some(frontier);
            return Ok(plan.results);
        }
        let new_size = plan.next;
        for result in plan.results.iter_mut().flatten() {
            if result.first_index >= size {
                result.tree_size = new_size;
            }
        }

        self.fault(FaultPoint::WriteEntries)?;
        sql::insert_entries(&mut c, to_i64(size)?, &plan.leaves(appends)).await?;
        sql::insert_nodes(&mut c, &plan.nodes).await?;
        let latest = sql::latest_stamp(&mut c).await?;
        sql::insert_terms(&mut c, &plan.term_rows(terms, latest)?).await?;
        self.fault(FaultPoint::WriteState)?;
        let (removed, written): (Vec<StateRow>, Vec<StateRow>) =
            plan.state.iter().cloned().partition(|row| row.3 == "null");
        sql::upsert_state(&mut c, &written).await?;
        sql::delete_state(&mut c, &removed).await?;
        let idempotency = plan.idempotency_rows(appends, new_size)?;
        sql::insert_idempotency(&mut c, &idempotency).await?;

        self.fault(FaultPoint::WriteCheckpoint)?;
        let root = frontier.root();
        let note = Checkpoint {
            origin: self.signer.verifier().name().to_owned(),
            size: new_size,
            root,
            extensions: Vec::new(),
        }
        .sign(&self.signer)
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
        if self.fault(FaultPoint::AfterCommit).is_err() {
            return Err(StoreError::OutcomeUnknown(
                "injected fault after commit".into(),
            ));
        }
        Ok(plan.results)
    }
}

/// What one batch will write, decided append by append under the lock.
struct BatchPlan {
    /// The next free index.
    next: u64,
    results: Vec<Result<Appended, StoreError>>,
    /// Indices into the batch of the appends accepted, in order.
    accepted: Vec<usize>,
    nodes: Vec<(i64, Hash)>,
    /// One row per state record the batch writes: a record written twice in a batch (by
    /// two appends, or twice in one) is written once, as the later write left it.
    /// (PostgreSQL refuses an upsert that touches a row twice.)
    state: Vec<StateRow>,
    state_rows: HashMap<(String, String), usize>,
    /// Versions of state records as this batch leaves them (`None`: absent).
    versions: HashMap<(String, String), Option<i64>>,
    /// Idempotency keys accepted in this batch: key → (fingerprint, result index).
    keys: HashMap<String, ([u8; 32], usize)>,
}

impl BatchPlan {
    fn new(size: u64) -> Self {
        BatchPlan {
            next: size,
            results: Vec::new(),
            accepted: Vec::new(),
            nodes: Vec::new(),
            state: Vec::new(),
            state_rows: HashMap::new(),
            versions: HashMap::new(),
            keys: HashMap::new(),
        }
    }

    /// Decides one append: a replay, a refusal, or accepted (leaves hashed into
    /// `frontier`, state staged). `Err` only for a database failure.
    async fn admit(
        &mut self,
        c: &mut Conn<'_>,
        append: &Append,
        frontier: &mut Frontier,
    ) -> Result<Result<Appended, StoreError>, StoreError> {
        if let Some(key) = &append.idempotency {
            if let Some((fingerprint, at)) = self.keys.get(&key.key) {
                return Ok(
                    match (&self.results[*at], *fingerprint == key.fingerprint) {
                        (Ok(first), true) => Ok(Appended {
                            replayed: true,
                            ..*first
                        }),
                        _ => Err(StoreError::IdempotencyConflict(key.key.clone())),
                    },
                );
            }
            if let Some((fingerprint, first, count, tree_size)) =
                sql::idempotency(c, &key.key).await?
            {
                return Ok(if fingerprint[..] == key.fingerprint[..] {
                    Ok(Appended {
                        first_index: to_u64(first)?,
                        count: to_u64(count)?,
                        tree_size: to_u64(tree_size)?,
                        replayed: true,
                    })
                } else {
                    Err(StoreError::IdempotencyConflict(key.key.clone()))
                });
            }
        }

        // Check every precondition before staging anything of this append.
        // (record, its version after this write: `None` when the write removes it)
        let mut staged: Vec<((String, String), Option<i64>)> =
            Vec::with_capacity(append.state.len());
        for write in &append.state {
            let id = (write.kind.clone(), write.key.clone());
            let current = match staged.iter().rev().find(|(k, _)| *k == id) {
                Some((_, version)) => *version,
                None => match self.versions.get(&id) {
                    Some(version) => *version,
                    None => {
                        let version = sql::state_version(c, &write.kind, &write.key).await?;
                        self.versions.insert(id.clone(), version);
                        version
                    }
                },
            };
            let holds = match write.expect {
                Expect::Any => true,
                Expect::Absent => current.is_none(),
                Expect::Version(v) => current.is_some_and(|c| u64::try_from(c) == Ok(v)),
            };
            if !holds {
                return Ok(Err(StoreError::Conflict {
                    kind: write.kind.clone(),
                    key: write.key.clone(),
                    expected: write.expect,
                    found: current.and_then(|c| u64::try_from(c).ok()),
                }));
            }
            let removes = write.value.as_bytes() == b"null";
            staged.push((id, (!removes).then(|| current.unwrap_or(0) + 1)));
        }

        let first = self.next;
        for (write, (id, version)) in append.state.iter().zip(staged) {
            // A removal is staged as a row whose value is `null` (see `flush_state`).
            let row = (
                write.kind.clone(),
                write.key.clone(),
                version.unwrap_or(0),
                write.value.to_string(),
                to_i64(first)?,
            );
            match self.state_rows.get(&id) {
                Some(&at) => self.state[at] = row,
                None => {
                    self.state_rows.insert(id.clone(), self.state.len());
                    self.state.push(row);
                }
            }
            self.versions.insert(id, version);
        }
        for event in &append.events {
            for (id, hash) in frontier.append(leaf_hash(event.as_bytes())) {
                self.nodes.push((node_key(id)?, hash));
            }
        }
        self.next += append.events.len() as u64;
        if let Some(key) = &append.idempotency {
            self.keys
                .insert(key.key.clone(), (key.fingerprint, self.results.len()));
        }
        self.accepted.push(self.results.len());
        Ok(Ok(Appended {
            first_index: first,
            count: append.events.len() as u64,
            tree_size: 0, // set when the batch's size is known
            replayed: false,
        }))
    }

    fn leaves<'a>(&self, appends: &'a [Append]) -> Vec<&'a [u8]> {
        self.accepted
            .iter()
            .flat_map(|&i| appends[i].events.iter().map(|e| e.as_bytes()))
            .collect()
    }

    /// `(term, index)` for every term of every accepted event, in log order, the time
    /// terms following on from `latest`, the log's latest stamp before the batch.
    fn term_rows(
        &self,
        indexed: &[Vec<Indexed>],
        mut latest: Option<i128>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut rows = Vec::new();
        let mut terms = Vec::new();
        for &i in &self.accepted {
            if let Ok(result) = &self.results[i] {
                for (offset, event) in indexed[i].iter().enumerate() {
                    let index = to_i64(result.first_index + offset as u64)?;
                    terms.clear();
                    terms.extend(event.terms.iter().cloned());
                    latest = search::time_terms(event.stamp, latest, &mut terms);
                    rows.extend(terms.drain(..).map(|t| (t, index)));
                }
            }
        }
        Ok(rows)
    }

    fn idempotency_rows<'a>(
        &self,
        appends: &'a [Append],
        tree_size: u64,
    ) -> Result<Vec<NewIdempotencyRow<'a>>, StoreError> {
        let mut rows = Vec::new();
        for &i in &self.accepted {
            if let (Some(key), Ok(result)) = (&appends[i].idempotency, &self.results[i]) {
                rows.push((
                    key.key.as_str(),
                    &key.fingerprint[..],
                    to_i64(result.first_index)?,
                    to_i64(result.count)?,
                    to_i64(tree_size)?,
                ));
            }
        }
        Ok(rows)
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
        StoreError::Injected(p) => StoreError::Injected(p),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
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
