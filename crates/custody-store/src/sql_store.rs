//! [`SqlStore`]: the [`Store`] on SQLite or PostgreSQL.

use std::sync::Arc;

use custody_crypto::note::{NoteSigner, NoteVerifier};
use custody_ledger::{
    Checkpoint, EMPTY_ROOT, Frontier, Hash, ProofPlan, consistency_plan, inclusion_plan, leaf_hash,
    root_plan,
};
use custody_model::{CanonicalJson, Timestamp};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::commit::{self, Committer, Request, hex, to_i64, to_u64};
use crate::db::{self, Location, Pool};
use crate::faults::FaultInjector;
use crate::search;
use crate::sql::{self, Conn};
use crate::{
    AccessEntry, AccessRecord, Append, Appended, Entry, LastUse, MAX_ENTRIES_PER_READ,
    MAX_EVENT_BYTES, MAX_EVENTS_PER_APPEND, MAX_KEY_BYTES, MAX_SEARCH_TERMS, SignedCheckpoint,
    StateRecord, Store, StoreError,
};

/// Most checkpoints one [`Store::checkpoints`] call returns.
const MAX_CHECKPOINTS_PER_READ: u64 = 1000;

/// Tuning and test hooks for [`SqlStore::open_with`].
#[derive(Clone)]
pub struct OpenOptions {
    /// Most events one group commit takes (it always takes at least one append).
    pub max_batch_events: usize,
    /// Most bytes of events and state one group commit takes (likewise).
    pub max_batch_bytes: usize,
    /// Appends waiting for the committer before callers are made to wait to enqueue.
    pub queue: usize,
    /// Fault injection for tests.
    pub faults: Option<Arc<dyn FaultInjector>>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            max_batch_events: 8192,
            max_batch_bytes: 64 << 20,
            queue: 4096,
            faults: None,
        }
    }
}

/// The ledger and state in an SQLite file or a PostgreSQL database.
pub struct SqlStore {
    location: Location,
    read: Pool,
    verifier: NoteVerifier,
    /// The committer's queue; `None` when opened read-only.
    appends: Option<mpsc::Sender<Request>>,
    committer: Mutex<Option<JoinHandle<()>>>,
    /// Every entry has its search terms. Always so once a writer has opened the store (it
    /// runs the backfill); a reader of a ledger no writer has opened since the search index
    /// was added refuses to search rather than answer from part of the log.
    searchable: bool,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqlStore({})", self.location.describe())
    }
}

impl SqlStore {
    /// Creates a new, empty ledger signed by `log_key` at `location` (its checkpoint of
    /// size 0 is the first). Refuses if a ledger is already there.
    pub async fn create(
        location: &Location,
        log_key: NoteSigner,
        now: Timestamp,
    ) -> Result<SqlStore, StoreError> {
        let pools = db::connect(location, true).await?;
        pools.write.migrate().await?;
        {
            let mut tx = pools.write.begin_write().await?;
            let mut c = tx.conn();
            if sql::meta(&mut c).await?.is_some() {
                return Err(StoreError::AlreadyInitialized(location.describe()));
            }
            let verifier = log_key.verifier();
            let note = Checkpoint {
                origin: verifier.name().to_owned(),
                size: 0,
                root: EMPTY_ROOT,
                extensions: Vec::new(),
            }
            .sign(&log_key)
            .map_err(|e| StoreError::Signing(e.to_string()))?;
            sql::create_log(
                &mut c,
                verifier.name(),
                &verifier.to_text(),
                &now.to_string(),
                &EMPTY_ROOT,
                &note,
            )
            .await?;
            tx.commit().await?;
        }
        Self::start(location, pools, log_key, OpenOptions::default()).await
    }

    /// Opens an existing ledger for reading and appending with its log key.
    pub async fn open(location: &Location, log_key: NoteSigner) -> Result<SqlStore, StoreError> {
        Self::open_with(location, log_key, OpenOptions::default()).await
    }

    /// [`SqlStore::open`] with options.
    pub async fn open_with(
        location: &Location,
        log_key: NoteSigner,
        options: OpenOptions,
    ) -> Result<SqlStore, StoreError> {
        let pools = db::connect(location, false).await?;
        Self::start(location, pools, log_key, options).await
    }

    /// Opens an existing ledger for reading only; `log_key` is the log's verifier key.
    pub async fn open_read_only(
        location: &Location,
        log_key: &NoteVerifier,
    ) -> Result<SqlStore, StoreError> {
        let pools = db::connect(location, false).await?;
        check_ledger(location, &pools.read, log_key, false).await?;
        let searchable = {
            let mut conn = pools.read.acquire().await?;
            matches!(sql::terms_backfill(&mut conn.conn()).await, Ok(Some((done, upto))) if done >= upto)
        };
        if let Pool::Sqlite(_) = pools.write {
            pools.write.close().await; // PostgreSQL shares one pool for both
        }
        Ok(SqlStore {
            location: location.clone(),
            read: pools.read,
            verifier: log_key.clone(),
            appends: None,
            committer: Mutex::new(None),
            searchable,
        })
    }

    async fn start(
        location: &Location,
        pools: db::Pools,
        log_key: NoteSigner,
        options: OpenOptions,
    ) -> Result<SqlStore, StoreError> {
        let verifier = log_key.verifier().clone();
        let frontier = check_ledger(location, &pools.write, &verifier, true).await?;
        backfill_terms(&pools.write).await?;
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let committer = Committer {
            pool: pools.write,
            signer: log_key,
            frontier: Some(frontier),
            faults: options.faults,
            max_batch_events: options.max_batch_events.max(1),
            max_batch_bytes: options.max_batch_bytes.max(1),
        };
        let handle = tokio::spawn(committer.run(rx));
        Ok(SqlStore {
            location: location.clone(),
            read: pools.read,
            verifier,
            appends: Some(tx),
            committer: Mutex::new(Some(handle)),
            searchable: true,
        })
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

    /// Finishes the appends already queued, then closes the database.
    pub async fn close(mut self) {
        self.appends = None;
        if let Some(handle) = self.committer.lock().await.take() {
            let _ = handle.await;
        }
        self.read.close().await;
    }

    /// Recomputes the whole tree from the stored leaves and checks it against every stored
    /// hash and every stored checkpoint (signature and root). `progress` is called with
    /// the number of leaves checked so far.
    pub async fn check(
        &self,
        mut progress: impl FnMut(u64) + Send,
    ) -> Result<IntegrityReport, StoreError> {
        let head = self.checkpoint().await?;
        let mut conn = self.read.acquire().await?;
        let mut c = conn.conn();
        let mut frontier = Frontier::new();
        let mut checkpoints = CheckpointCursor::default();
        let mut report = IntegrityReport {
            entries: 0,
            checkpoints: 0,
            root: EMPTY_ROOT,
        };
        report.checkpoints += checkpoints.check(&mut c, &self.verifier, &frontier).await?;
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
                report.checkpoints += checkpoints.check(&mut c, &self.verifier, &frontier).await?;
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
    pending: std::collections::VecDeque<(u64, String)>,
    next_from: u64,
    exhausted: bool,
}

impl CheckpointCursor {
    /// Checks every stored checkpoint of exactly the frontier's size; returns how many.
    async fn check(
        &mut self,
        c: &mut Conn<'_>,
        verifier: &NoteVerifier,
        frontier: &Frontier,
    ) -> Result<u64, StoreError> {
        let mut checked = 0;
        loop {
            if self.pending.is_empty() && !self.exhausted {
                let page =
                    sql::checkpoints(c, to_i64(self.next_from)?, MAX_CHECKPOINTS_PER_READ as i64)
                        .await?;
                self.exhausted = (page.len() as u64) < MAX_CHECKPOINTS_PER_READ;
                for (size, note) in page {
                    let size = to_u64(size)?;
                    self.next_from = size + 1;
                    self.pending.push_back((size, note));
                }
            }
            match self.pending.front() {
                Some((size, note)) if *size == frontier.size() => {
                    let cp = Checkpoint::open(note, verifier).map_err(|e| {
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

/// Checks that `pool` holds a ledger of `verifier`'s log whose head checkpoint verifies and
/// matches the stored tree; returns the tree's right edge. Applies pending migrations
/// first when `migrate`.
async fn check_ledger(
    location: &Location,
    pool: &Pool,
    verifier: &NoteVerifier,
    migrate: bool,
) -> Result<Frontier, StoreError> {
    {
        let mut conn = pool.acquire().await?;
        if !sql::has_ledger(&mut conn.conn()).await? {
            return Err(StoreError::NotInitialized(location.describe()));
        }
    }
    if migrate {
        pool.migrate().await?;
    }
    let mut conn = pool.acquire().await?;
    let mut c = conn.conn();
    let (_, log_key) = sql::meta(&mut c)
        .await?
        .ok_or_else(|| StoreError::NotInitialized(location.describe()))?;
    if log_key != verifier.to_text() {
        return Err(StoreError::KeyMismatch {
            expected: log_key,
            found: verifier.to_text(),
        });
    }
    let head = sql::head(&mut c, false)
        .await?
        .ok_or_else(|| StoreError::Corrupt("the log head row is missing".into()))?;
    let cp = Checkpoint::open(&head.checkpoint, verifier).map_err(|e| {
        StoreError::Corrupt(format!(
            "the head checkpoint does not verify with the log key: {e}"
        ))
    })?;
    let size = to_u64(head.size)?;
    if cp.size != size || cp.root[..] != head.root[..] {
        return Err(StoreError::Corrupt(
            "the head checkpoint does not match the head's size and root".into(),
        ));
    }
    let frontier = commit::load_frontier(&mut c, size).await?;
    if frontier.root() != cp.root {
        return Err(StoreError::Corrupt(format!(
            "the stored tree of {size} leaves has root {}, but the signed checkpoint says {}",
            hex(&frontier.root()),
            hex(&cp.root)
        )));
    }
    Ok(frontier)
}

/// Gives the entries appended before the search index existed (migration 0004) their
/// terms, a thousand entries per transaction, so the first writer to open an older ledger
/// makes it searchable. Two writers doing it at once write the same rows, harmlessly.
async fn backfill_terms(pool: &Pool) -> Result<(), StoreError> {
    loop {
        let mut tx = pool.begin_write().await?;
        let mut c = tx.conn();
        // Under the log's write lock: no append runs meanwhile (a writer appends only
        // after its own backfill has finished), so the latest `max:` term is the last
        // backfilled entry's.
        sql::head(&mut c, true).await?;
        let Some((done, upto)) = sql::terms_backfill(&mut c).await? else {
            return Ok(());
        };
        if done >= upto {
            return Ok(());
        }
        let end = upto.min(done + to_i64(MAX_ENTRIES_PER_READ)?);
        let mut latest = sql::latest_stamp(&mut c).await?;
        let mut rows = Vec::new();
        for (index, leaf) in sql::entries(&mut c, done, end).await? {
            let mut indexed = search::index(&leaf);
            latest = search::time_terms(indexed.stamp, latest, &mut indexed.terms);
            rows.extend(indexed.terms.into_iter().map(|t| (t, index)));
        }
        sql::insert_terms(&mut c, &rows).await?;
        sql::advance_terms_backfill(&mut c, end).await?;
        tx.commit().await?;
    }
}

/// Cuts an access entry's free-text fields to a sane length (they come from requests).
/// The latest entry of each identified (principal, outcome) in a batch, with its time in
/// nanoseconds since the epoch (an entry whose time does not parse counts as 0).
fn latest_uses(entries: &[AccessEntry]) -> Vec<sql::LastUseRow<'_>> {
    let mut latest: std::collections::HashMap<(&str, &str), (&str, i64)> =
        std::collections::HashMap::new();
    for e in entries.iter().filter(|e| !e.principal.is_empty()) {
        let ns =
            e.at.parse::<custody_model::Timestamp>()
                .ok()
                .and_then(|t| i64::try_from(t.as_datetime().unix_timestamp_nanos()).ok())
                .unwrap_or(0);
        let slot = latest
            .entry((&e.principal, &e.outcome))
            .or_insert((&e.at, ns));
        if ns >= slot.1 {
            *slot = (&e.at, ns);
        }
    }
    let mut rows: Vec<_> = latest
        .into_iter()
        .map(|((principal, outcome), (at, ns))| (principal, outcome, at, ns))
        .collect();
    // One order for every writer, so two concurrent batches lock rows alike.
    rows.sort_unstable();
    rows
}

fn bounded_access(mut e: AccessEntry) -> AccessEntry {
    for (field, max) in [
        (&mut e.principal, 256),
        (&mut e.method, 16),
        (&mut e.path, 2048),
        (&mut e.remote, 128),
        (&mut e.outcome, 1024),
    ] {
        if field.len() > max {
            let mut cut = max;
            while !field.is_char_boundary(cut) {
                cut -= 1;
            }
            field.truncate(cut);
        }
    }
    e
}

fn check_key(what: &str, key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(StoreError::InvalidInput(format!(
            "{what} must be 1 to {MAX_KEY_BYTES} bytes, not {}",
            key.len()
        )));
    }
    Ok(())
}

fn check_append(append: &Append) -> Result<(), StoreError> {
    if append.events.is_empty() {
        return Err(StoreError::InvalidInput(
            "an append needs at least one event".into(),
        ));
    }
    if append.events.len() > MAX_EVENTS_PER_APPEND {
        return Err(StoreError::InvalidInput(format!(
            "an append carries at most {MAX_EVENTS_PER_APPEND} events, not {}",
            append.events.len()
        )));
    }
    if let Some((i, e)) = append
        .events
        .iter()
        .enumerate()
        .find(|(_, e)| e.as_bytes().len() > MAX_EVENT_BYTES)
    {
        return Err(StoreError::InvalidInput(format!(
            "event {i} is {} bytes; the limit is {MAX_EVENT_BYTES}",
            e.as_bytes().len()
        )));
    }
    for write in &append.state {
        check_key("a state kind", &write.kind)?;
        check_key("a state key", &write.key)?;
    }
    if let Some(key) = &append.idempotency {
        check_key("an idempotency key", &key.key)?;
    }
    Ok(())
}

fn signed_checkpoint(
    verifier: &NoteVerifier,
    size: u64,
    note: String,
) -> Result<SignedCheckpoint, StoreError> {
    let cp = Checkpoint::open(&note, verifier)
        .map_err(|e| StoreError::Corrupt(format!("stored checkpoint {size}: {e}")))?;
    Ok(SignedCheckpoint {
        size: cp.size,
        root: cp.root,
        note,
    })
}

fn to_entries(rows: Vec<(i64, Vec<u8>)>) -> Result<Vec<Entry>, StoreError> {
    rows.into_iter()
        .map(|(index, leaf)| {
            Ok(Entry {
                index: to_u64(index)?,
                leaf,
            })
        })
        .collect()
}

fn state_record(row: sql::StateRow) -> Result<StateRecord, StoreError> {
    let (kind, key, version, value, log_index) = row;
    let value = CanonicalJson::from_canonical_bytes(value.as_bytes())
        .map_err(|e| StoreError::Corrupt(format!("state {kind}/{key}: {e}")))?;
    Ok(StateRecord {
        kind,
        key,
        version: to_u64(version)?,
        value,
        log_index: to_u64(log_index)?,
    })
}

impl Store for SqlStore {
    async fn append(&self, append: Append) -> Result<Appended, StoreError> {
        check_append(&append)?;
        let queue = self.appends.as_ref().ok_or(StoreError::ReadOnly)?;
        let (reply, result) = oneshot::channel();
        let indexed = append
            .events
            .iter()
            .map(|e| search::index(e.as_bytes()))
            .collect();
        queue
            .send(Request {
                append,
                indexed,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        result.await.map_err(|_| StoreError::Closed)?
    }

    async fn size(&self) -> Result<u64, StoreError> {
        self.head_size().await
    }

    async fn checkpoint(&self) -> Result<SignedCheckpoint, StoreError> {
        let mut conn = self.read.acquire().await?;
        let head = sql::head(&mut conn.conn(), false)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the log head row is missing".into()))?;
        signed_checkpoint(&self.verifier, to_u64(head.size)?, head.checkpoint)
    }

    async fn checkpoints(
        &self,
        from_size: u64,
        limit: u64,
    ) -> Result<Vec<SignedCheckpoint>, StoreError> {
        let limit = limit.min(MAX_CHECKPOINTS_PER_READ);
        let mut conn = self.read.acquire().await?;
        let rows = sql::checkpoints(&mut conn.conn(), to_i64(from_size)?, to_i64(limit)?).await?;
        rows.into_iter()
            .map(|(size, note)| signed_checkpoint(&self.verifier, to_u64(size)?, note))
            .collect()
    }

    async fn entries(&self, start: u64, end: u64) -> Result<Vec<Entry>, StoreError> {
        if start >= end {
            return Err(StoreError::OutOfRange(format!(
                "the range {start}..{end} is empty; start must be below end"
            )));
        }
        if end - start > MAX_ENTRIES_PER_READ {
            return Err(StoreError::OutOfRange(format!(
                "at most {MAX_ENTRIES_PER_READ} entries per read; ask for {start}..{}",
                start + MAX_ENTRIES_PER_READ
            )));
        }
        self.check_size(end).await?;
        let mut conn = self.read.acquire().await?;
        let rows = sql::entries(&mut conn.conn(), to_i64(start)?, to_i64(end)?).await?;
        if rows.len() as u64 != end - start {
            return Err(StoreError::Corrupt(format!(
                "entries {start}..{end} are not all stored"
            )));
        }
        to_entries(rows)
    }

    async fn search(
        &self,
        terms: &[String],
        start: u64,
        end: u64,
        limit: u64,
    ) -> Result<Vec<Entry>, StoreError> {
        if terms.is_empty() || terms.len() > MAX_SEARCH_TERMS {
            return Err(StoreError::OutOfRange(format!(
                "a search combines 1 to {MAX_SEARCH_TERMS} terms, not {}",
                terms.len()
            )));
        }
        self.check_searchable()?;
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let limit = limit.min(MAX_ENTRIES_PER_READ);
        let mut conn = self.read.acquire().await?;
        let rows = sql::search(
            &mut conn.conn(),
            terms,
            to_i64(start)?,
            to_i64(end)?,
            to_i64(limit)?,
        )
        .await?;
        to_entries(rows)
    }

    async fn time_range(
        &self,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> Result<(u64, u64), StoreError> {
        self.check_searchable()?;
        // The size first: holding a connection while asking the pool for another could
        // starve it.
        let size = to_i64(self.head_size().await?)?;
        let mut conn = self.read.acquire().await?;
        let mut c = conn.conn();
        let start = match since {
            None => 0,
            Some(t) => {
                let term = search::time_term(search::MAX_PREFIX, search::nanos(t));
                sql::first_reaching(&mut c, &term).await?.unwrap_or(size)
            }
        };
        let end = match until {
            None => size,
            Some(t) => {
                let t = search::nanos(t);
                let term = search::time_term(search::MAX_PREFIX, t + search::LATE_AFTER_NANOS);
                let in_order = sql::first_reaching(&mut c, &term).await?.unwrap_or(size);
                let late = search::time_term(search::LATE_PREFIX, t);
                let late = sql::last_late_before(&mut c, &late)
                    .await?
                    .map_or(0, |i| i + 1);
                in_order.max(late).min(size)
            }
        };
        Ok((to_u64(start)?, to_u64(end.max(start))?))
    }

    async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_size(size).await?;
        let plan =
            inclusion_plan(index, size).map_err(|e| StoreError::OutOfRange(e.to_string()))?;
        self.fetch_plan(&plan).await
    }

    async fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_size(to).await?;
        let plan = consistency_plan(from, to).map_err(|e| StoreError::OutOfRange(e.to_string()))?;
        self.fetch_plan(&plan).await
    }

    async fn root_at(&self, size: u64) -> Result<Hash, StoreError> {
        self.check_size(size).await?;
        if size == 0 {
            return Ok(EMPTY_ROOT);
        }
        let plan = root_plan(size);
        let hashes = self.fetch_plan(&plan).await?;
        hashes
            .first()
            .copied()
            .ok_or_else(|| StoreError::Corrupt("root plan gave no hash".into()))
    }

    async fn record_access(&self, entries: Vec<AccessEntry>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let entries: Vec<AccessEntry> = entries.into_iter().map(bounded_access).collect();
        // The read pool writes here: the access log is not the ledger and takes no part
        // in its lock or its checkpoints (SQLite still serialises writers on its own).
        let last = latest_uses(&entries);
        let mut tx = self.read.begin_write().await?;
        sql::insert_access(&mut tx.conn(), &entries).await?;
        sql::upsert_last_uses(&mut tx.conn(), &last).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn last_uses(&self) -> Result<Vec<LastUse>, StoreError> {
        let mut conn = self.read.acquire().await?;
        Ok(sql::last_uses(&mut conn.conn())
            .await?
            .into_iter()
            .map(|(principal, outcome, at)| LastUse {
                principal,
                outcome,
                at,
            })
            .collect())
    }

    async fn access_log(&self, after: u64, limit: u64) -> Result<Vec<AccessRecord>, StoreError> {
        let mut conn = self.read.acquire().await?;
        let rows =
            sql::access_log(&mut conn.conn(), to_i64(after)?, to_i64(limit.min(1000))?).await?;
        rows.into_iter()
            .map(
                |(id, at, principal, method, path, remote, status, outcome)| {
                    Ok(AccessRecord {
                        id: to_u64(id)?,
                        entry: AccessEntry {
                            at,
                            principal,
                            method,
                            path,
                            remote,
                            status: u16::try_from(status).unwrap_or(0),
                            outcome,
                        },
                    })
                },
            )
            .collect()
    }

    async fn state(&self, kind: &str, key: &str) -> Result<Option<StateRecord>, StoreError> {
        let mut conn = self.read.acquire().await?;
        sql::state(&mut conn.conn(), kind, key)
            .await?
            .map(state_record)
            .transpose()
    }

    async fn states(
        &self,
        kind: &str,
        after: &str,
        limit: u64,
    ) -> Result<Vec<StateRecord>, StoreError> {
        let mut conn = self.read.acquire().await?;
        sql::states(&mut conn.conn(), kind, after, to_i64(limit.min(1000))?)
            .await?
            .into_iter()
            .map(state_record)
            .collect()
    }
}
