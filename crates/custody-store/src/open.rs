//! Opening a ledger: creating one, the checks an existing one must pass (its log key, its
//! head's signature, the stored tree against the signed root, the checkpoint file), the
//! schema migrations and the search index's backfill, and starting the committer.

use std::path::Path;
use std::sync::Arc;

use custody_crypto::note::{NoteSigner, NoteVerifier};
use custody_ledger::{Checkpoint, EMPTY_ROOT, Frontier, LogKeyRotation, LogKeys};
use custody_model::Timestamp;
use tokio::sync::{Mutex, mpsc};

use crate::checkpoint_file::{self, CheckpointFile, CheckpointFileStatus};
use crate::commit::{self, Committer, hex, to_i64, to_u64};
use crate::database_file::DatabaseFile;
use crate::db::{self, Location, Pool};
use crate::faults::FaultInjector;
use crate::integrity::{self, IntegrityFailure, Status, Witness};
use crate::search;
use crate::sql;
use crate::{MAX_ENTRIES_PER_READ, SignedCheckpoint, SqlStore, StoreError};

/// Tuning, the checkpoint file, and test hooks for [`SqlStore::open_with`].
#[derive(Clone)]
pub struct OpenOptions {
    /// Most events one group commit takes (it always takes at least one append).
    pub max_batch_events: usize,
    /// Most bytes of events and state one group commit takes (likewise).
    pub max_batch_bytes: usize,
    /// Appends waiting for the committer before callers are made to wait to enqueue.
    pub queue: usize,
    /// Where the newest checkpoint is kept outside the database (see [`CheckpointFile`]).
    pub checkpoint_file: CheckpointFile,
    /// What opening does when the database's head does not extend the checkpoint file's.
    pub on_integrity_failure: OnIntegrityFailure,
    /// Fault injection for tests.
    pub faults: Option<Arc<dyn FaultInjector>>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            max_batch_events: 8192,
            max_batch_bytes: 64 << 20,
            queue: 4096,
            checkpoint_file: CheckpointFile::Beside,
            on_integrity_failure: OnIntegrityFailure::Refuse,
            faults: None,
        }
    }
}

/// What [`SqlStore::open_with`] does with a database whose head does not extend the
/// checkpoint in the checkpoint file (rolled back, truncated or forked while stopped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnIntegrityFailure {
    /// Refuse to open, with [`StoreError::Integrity`].
    #[default]
    Refuse,
    /// Open read-only, with the failure in [`crate::Store::integrity`], so that an operator can
    /// inspect the ledger and acknowledge it ([`crate::Store::acknowledge_integrity_failure`]).
    ReadOnly,
}

impl SqlStore {
    /// Creates a new, empty ledger signed by `log_key` at `location` (its checkpoint of
    /// size 0 is the first). Refuses if a ledger is already there.
    pub async fn create(
        location: &Location,
        log_key: NoteSigner,
        now: Timestamp,
    ) -> Result<SqlStore, StoreError> {
        Self::create_with(location, log_key, now, OpenOptions::default()).await
    }

    /// [`SqlStore::create`] with options; the checkpoint file, if one is kept, is written
    /// (over any file of an earlier ledger there).
    pub async fn create_with(
        location: &Location,
        log_key: NoteSigner,
        now: Timestamp,
        options: OpenOptions,
    ) -> Result<SqlStore, StoreError> {
        let pools = db::connect(location, true).await?;
        pools.write.migrate().await?;
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
        if let Some(path) = options.checkpoint_file.path(location) {
            checkpoint_file::write(&path, &note).map_err(|e| StoreError::CheckpointFile {
                path: path.clone(),
                reason: format!("it cannot be written: {e}"),
            })?;
        }
        Self::start(location, pools, log_key, options).await
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
    /// The checkpoint file is neither read nor written: reading a ledger refused by
    /// [`SqlStore::open`] is how an operator finds out what happened to it.
    pub async fn open_read_only(
        location: &Location,
        log_key: &NoteVerifier,
    ) -> Result<SqlStore, StoreError> {
        let pools = db::connect(location, false).await?;
        let keys = check_ledger(location, &pools.read, log_key, false)
            .await?
            .keys;
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
            write: None,
            verifier: log_key.clone(),
            keys,
            appends: None,
            tasks: Mutex::new(Vec::new()),
            searchable,
            status: Arc::default(),
            checkpoint_file: Box::new(CheckpointFileStatus::NotKept),
            database_file: None,
        })
    }

    async fn start(
        location: &Location,
        pools: db::Pools,
        log_key: NoteSigner,
        options: OpenOptions,
    ) -> Result<SqlStore, StoreError> {
        let verifier = log_key.verifier().clone();
        let path = options.checkpoint_file.path(location);
        // The file is read before the head: another process writes it only after its
        // commit, so read in this order the file can never be ahead of an honest head,
        // while read the other way round a concurrent append would look like a rollback.
        // (What it holds is checked after the ledger, whose own refusals, such as another
        // log key, say more.)
        let note = match &path {
            Some(path) => checkpoint_file::read(path)?,
            None => None,
        };
        let Checked {
            frontier,
            head,
            keys,
            newest,
            last_entry,
        } = check_ledger(location, &pools.write, &verifier, true).await?;
        let witness = match (&path, note) {
            (Some(path), Some(note)) => Some(checkpoint_file::open(path, note, &keys)?),
            _ => None,
        };
        let status = Arc::new(Status::default());
        let left_behind = left_behind(newest, &keys, &head)?;
        // Entries past the head that no checkpoint past it covers: nothing can be appended
        // after them (recovering cannot help either), so nothing opens the ledger to write.
        if let (None, Some(last)) = (&left_behind, last_entry)
            && last >= to_i64(head.size)?
        {
            return Err(commit::past_the_head(to_i64(head.size)?, last));
        }
        let (witnessed, file_status) = match (&path, left_behind) {
            (None, None) => (Ok(head), CheckpointFileStatus::NotKept),
            (Some(path), None) => witness_at_open(&pools.write, path, witness, head).await?,
            // The file is left as it is: it is evidence too.
            (path, Some(failure)) => (
                Err(failure),
                match path {
                    Some(path) => CheckpointFileStatus::Unchecked { path: path.clone() },
                    None => CheckpointFileStatus::NotKept,
                },
            ),
        };
        // The checkpoint the committer starts from: the head, or (read-only after a
        // failure) the file's, so that the failure stands until it is acknowledged.
        let seen = match witnessed {
            Ok(head) => head,
            Err(failure) if options.on_integrity_failure == OnIntegrityFailure::Refuse => {
                return Err(StoreError::Integrity(Box::new(failure)));
            }
            Err(failure) => {
                let seen = failure.seen.clone();
                status.fail_integrity(failure);
                seen
            }
        };
        status.saw(&seen);
        backfill_terms(&pools.write).await?;
        let (file_writer, file_task) = match path {
            Some(path) => {
                let (w, task) =
                    checkpoint_file::Writer::start(path, seen.note.clone(), status.clone());
                (Some(w), Some(task))
            }
            None => (None, None),
        };
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let database_file = DatabaseFile::of(location).map(Arc::new);
        let committer = Committer {
            database_file: database_file.clone(),
            pool: pools.write.clone(),
            signer: log_key,
            frontier: Some(frontier),
            latest_stamp: None,
            checkpoint_file: file_writer,
            seen,
            status: status.clone(),
            faults: options.faults,
            max_batch_events: options.max_batch_events.max(1),
            max_batch_bytes: options.max_batch_bytes.max(1),
        };
        let handle = tokio::spawn(committer.run(rx));
        Ok(SqlStore {
            location: location.clone(),
            read: pools.read,
            write: Some(pools.write),
            verifier,
            keys,
            appends: Some(tx),
            tasks: Mutex::new([Some(handle), file_task].into_iter().flatten().collect()),
            searchable: true,
            status,
            checkpoint_file: Box::new(file_status),
            database_file,
        })
    }
}

/// Checks that `pool` holds a ledger of `verifier`'s log (the key its history of hand-overs
/// ends with) whose head checkpoint verifies and matches the stored tree; returns the
/// tree's right edge, the head and the key history. Applies pending migrations first when
/// `migrate`.
async fn check_ledger(
    location: &Location,
    pool: &Pool,
    verifier: &NoteVerifier,
    migrate: bool,
) -> Result<Checked, StoreError> {
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
    // The key the ledger was created with; later keys only from verified hand-overs.
    let (_, first) = sql::meta(&mut c)
        .await?
        .ok_or_else(|| StoreError::NotInitialized(location.describe()))?;
    let first = NoteVerifier::from_text(&first)
        .map_err(|e| StoreError::Corrupt(format!("the recorded log key: {e}")))?;
    // The newest stored checkpoint, read before the head: a writer committing in between
    // moves the head past it, never behind (see `left_behind`).
    let newest = sql::newest_checkpoint(&mut c).await?;
    let last_entry = sql::newest_entry(&mut c).await?;
    let head = sql::head(&mut c, false)
        .await?
        .ok_or_else(|| StoreError::Corrupt("the log head row is missing".into()))?;
    // A log still on its first key needs no search (and a reader of a ledger older than
    // the search index has none to search). When the first key is given but the head is
    // not its, the hand-overs say whether it was retired (a clearer refusal than a
    // checkpoint that does not verify); a history that cannot be read leaves that refusal.
    // The head may itself be a hand-over checkpoint, which the retiring key signs too: its
    // leaf (not the search index, which only finds) says so, and then the history must be
    // read and must hold that hand-over, or the retired key would open the ledger and sign
    // after it.
    let head_hands_over = head.size > 0
        && sql::entries(&mut c, head.size - 1, head.size)
            .await?
            .first()
            .is_some_and(|(_, leaf)| LogKeyRotation::from_leaf(leaf).is_some());
    let keys = if first != *verifier || head_hands_over {
        crate::log_keys::load(&mut c, first, to_u64(head.size)?).await?
    } else if Checkpoint::open(&head.checkpoint, verifier).is_ok() {
        LogKeys::new(first)
    } else {
        match crate::log_keys::load(&mut c, first.clone(), to_u64(head.size)?).await {
            Ok(keys) => keys,
            Err(_) => LogKeys::new(first),
        }
    };
    if keys.current() != verifier {
        return Err(crate::log_keys::mismatch(&keys, verifier));
    }
    if head_hands_over && keys.handovers().last() != Some(to_u64(head.size)?) {
        return Err(StoreError::Corrupt(format!(
            "the log's last entry hands the log key over, but the search index does not list that hand-over (entry {})",
            head.size - 1
        )));
    }
    let cp = keys.open(&head.checkpoint).map_err(|e| {
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
    let head = SignedCheckpoint {
        size,
        root: cp.root,
        note: head.checkpoint,
    };
    Ok(Checked {
        frontier,
        head,
        keys,
        newest,
        last_entry,
    })
}

/// A ledger [`check_ledger`] found whole.
struct Checked {
    /// The tree's right edge at the head.
    frontier: Frontier,
    /// The head, its checkpoint verified.
    head: SignedCheckpoint,
    /// The log's key history.
    keys: LogKeys,
    /// The newest checkpoint stored (size, note), read just before the head, unchecked.
    newest: Option<(i64, String)>,
    /// The index of the last entry stored, read just before the head.
    last_entry: Option<i64>,
}

/// The database's own witness against `head`: its newest stored checkpoint, if the log
/// signed one past the head. Then the head was moved back over the rows it left behind (a
/// row edited by hand, say), which the database proves even when the checkpoint file is
/// gone. (A database restored whole from an older copy holds nothing past its head: only
/// the checkpoint file tells.)
pub(crate) fn left_behind(
    newest: Option<(i64, String)>,
    keys: &LogKeys,
    head: &SignedCheckpoint,
) -> Result<Option<IntegrityFailure>, StoreError> {
    let Some((size, note)) = newest else {
        return Ok(None);
    };
    if to_u64(size)? <= head.size {
        return Ok(None);
    }
    let signed = keys.open(&note).map_err(|e| {
        StoreError::Corrupt(format!(
            "the stored checkpoint of size {size} does not verify with the log key: {e}"
        ))
    })?;
    Ok(Some(IntegrityFailure {
        finding: integrity::Finding::WentBack,
        found_size: head.size,
        found_root: head.root,
        seen: SignedCheckpoint {
            size: signed.size,
            root: signed.root,
            note,
        },
        witness: Witness::Database,
    }))
}

/// The head (or what contradicts it), and what the checkpoint file held.
type Witnessed = (
    Result<SignedCheckpoint, IntegrityFailure>,
    CheckpointFileStatus,
);

/// Checks the database's `head` against the checkpoint file at `path`, and brings the file
/// up to the head. Returns the head, or the integrity failure found (the file is then left
/// as it is: it is the evidence); and what the file held.
/// Checks the head read at open against `witness`, the checkpoint file's note read just
/// before it (`None`: no file).
async fn witness_at_open(
    pool: &Pool,
    path: &Path,
    witness: Option<SignedCheckpoint>,
    head: SignedCheckpoint,
) -> Result<Witnessed, StoreError> {
    let write = |note: &str| {
        checkpoint_file::write(path, note).map_err(|e| StoreError::CheckpointFile {
            path: path.to_owned(),
            reason: format!("it cannot be written: {e}"),
        })
    };
    let Some(witness) = witness else {
        // Nothing to check against (a ledger from before the file, or the file was
        // removed): start keeping it from here, and say so.
        write(&head.note)?;
        let status = CheckpointFileStatus::Recreated {
            path: path.to_owned(),
        };
        return Ok((Ok(head), status));
    };
    let status = CheckpointFileStatus::Checked {
        path: path.to_owned(),
        size: witness.size,
    };
    let finding = {
        let mut conn = pool.acquire().await?;
        integrity::check_extends(&mut conn.conn(), &witness, head.size, &head.root).await?
    };
    if let Some(finding) = finding {
        let failure = IntegrityFailure {
            finding,
            found_size: head.size,
            found_root: head.root,
            seen: witness,
            witness: Witness::CheckpointFile(path.to_owned()),
        };
        return Ok((Err(failure), status));
    }
    if witness.note != head.note {
        write(&head.note)?;
    }
    Ok((Ok(head), status))
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
        let (done, upto) = match sql::terms_backfill(&mut c).await? {
            Some((done, upto)) if done < upto => (done, upto),
            _ => {
                tx.rollback().await?;
                return Ok(());
            }
        };
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
