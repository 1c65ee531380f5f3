//! The [`Store`] trait: what every backend promises, and the values that cross it.

use std::future::Future;

use custody_ledger::{Hash, LOG_KEY_ROTATED, LogKeyRotation};
use custody_model::{CanonicalJson, Digest, Timestamp};
use serde::Serialize;

use crate::{IntegrityFailure, Readiness, StoreError};

/// Most events one [`Append`] may carry.
pub const MAX_EVENTS_PER_APPEND: usize = 4096;
/// Largest event (canonical JSON bytes) the ledger accepts.
pub const MAX_EVENT_BYTES: usize = 1 << 20;
/// Most entries one [`Store::entries`] call returns.
pub const MAX_ENTRIES_PER_READ: u64 = 1000;
/// Most terms one [`Store::search`] may combine.
pub const MAX_SEARCH_TERMS: usize = 8;
/// Longest state kind, state key or idempotency key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest blob [`Store::put_blob`] keeps: 256 MiB (the largest evidence report read).
pub const MAX_BLOB_BYTES: usize = 256 * 1024 * 1024;
/// Bytes per stored chunk of a blob (the last one may be shorter): what one
/// [`Store::blob_chunk`] returns, and so what a reader holds at a time.
pub const BLOB_CHUNK_BYTES: usize = 1024 * 1024;

/// The durable ledger and the state projected from it.
///
/// # Contract
///
/// Every backend upholds these, and `tests/conformance` checks them unchanged on each:
///
/// 1. **Atomic.** An [`Append`]'s events, its state writes and its idempotency record are
///    committed in one transaction: all become visible together or none does. A state
///    write whose [`Expect`] fails rejects the whole append, and nothing of it is written.
/// 2. **Durable.** When `append` returns `Ok`, the transaction is on stable storage
///    (fsync'd: SQLite in WAL mode with `synchronous=FULL`, PostgreSQL with
///    `synchronous_commit=on`). A crash after that loses nothing. The store sets these
///    itself on every connection it opens, never relying on a server's or file's default
///    (`SqlStore::durability` reads them back from each pooled connection).
/// 3. **Linear.** Appends from any number of concurrent callers, in any number of threads
///    or processes sharing the database, form one log: indices are dense from 0, no gap,
///    no fork, no entry ever at two indices. Appends are serialised through a lock on the
///    log head held for the length of the transaction.
/// 4. **Group commit.** Concurrent appends share a transaction (one fsync) and each such
///    batch ends in one new checkpoint, signed with the log key, stored, and made the head.
/// 5. **Forward only.** The head checkpoint moves from size `n` to size `m > n` by a
///    compare-and-swap on `n`; every stored checkpoint is consistent with every later one.
/// 6. **Append only.** There is no method that updates or deletes a ledger entry, a stored
///    hash or a checkpoint (and the schema's triggers refuse it from outside too). State
///    is a projection and is overwritten, but only together with the event that explains
///    the change.
/// 7. **Idempotent.** An append carrying an [`IdempotencyKey`] already committed returns
///    the original [`Appended`] (with `replayed: true`) and writes nothing; the same key
///    with a different fingerprint is refused with [`StoreError::IdempotencyConflict`].
/// 8. **Searchable.** The transaction that appends an entry also records its search terms
///    (the names its event mentions, see [`crate::search`]), so [`Store::search`] finds
///    every entry naming a term.
/// 9. **Unknown outcomes are named.** If the commit's outcome cannot be known (the
///    connection dropped during `COMMIT`), the error is [`StoreError::OutcomeUnknown`];
///    retrying with the same idempotency key converges.
/// 10. **Fail closed on lost history.** The store remembers the newest checkpoint it signed
///     or verified, and checks every head it reads under the lock against it: the head may
///     not be smaller, nor have another root at the same size, nor (larger) fail a
///     consistency proof from the stored hashes; a head another writer moved must carry a
///     checkpoint signed by the log key. A head that fails (the database was rolled back,
///     truncated or forked under a running store) makes the store read-only: every append
///     fails with [`StoreError::Integrity`] naming what was found, no checkpoint is signed,
///     and [`Store::integrity`] reports it, until an operator calls
///     [`Store::acknowledge_integrity_failure`], which commits the operator's record of the
///     decision on the head as it stands.
/// 11. **Witnessed across restarts.** After each batch the newest checkpoint is written to
///     a checkpoint file outside the database (`CheckpointFile`; beside an SQLite file by
///     default), by a task of its own, off the commit path, so the file is a lower bound of
///     the head (closing the store waits for its last write). Opening checks the head against it as in 10 (with the checkpoint's
///     signature), so a database rolled back, truncated or forked while no store ran is
///     refused with [`StoreError::Integrity`] (or opened read-only, if asked). A missing
///     file is written from the head, and the store says so (`SqlStore::checkpoint_file`).
/// 12. **Storage faults are transient.** A failed write (disk full, connection lost, a
///     failed `COMMIT`) fails the appends it carried, cleanly (nothing of a refused
///     append is written; a failed `COMMIT` is [`StoreError::OutcomeUnknown`]) and leaves
///     no connection behind in an unknown transaction state: once the storage recovers,
///     appends and access-log writes succeed again without reopening the store.
///     [`Store::readiness`] is false while the last write failed for a storage reason and a
///     probe write still fails.
/// 13. **Cosignatures are kept, not judged.** [`Store::add_cosignature`] keeps a witness's
///     signature line on a stored checkpoint (the caller verified it), the first one per
///     witness and checkpoint, forever; it is not the ledger and takes no part in its lock.
/// 14. **Blobs are content-addressed and write-once.** [`Store::put_blob`] keeps bytes (at
///     most [`MAX_BLOB_BYTES`], in chunks of [`BLOB_CHUNK_BYTES`]) under the SHA-256 the
///     store computes itself, never a name the caller claims; putting the same bytes
///     again writes nothing and says so (`created: false`), whoever races. No method
///     changes or removes a blob, and the schema's triggers refuse it too. Blobs are not
///     in the ledger's transaction: a caller puts a blob *before* the append whose event
///     names it, so an event never names a missing blob, while a blob whose append failed
///     stays, unnamed and harmless. [`Store::read_blob`] hands back a whole blob only if
///     its bytes still hash to its name.
pub trait Store: Send + Sync {
    /// Appends events and applies their state writes atomically (contract 1–8).
    fn append(&self, append: Append) -> impl Future<Output = Result<Appended, StoreError>> + Send;

    /// The integrity failure that made the store read-only, if one did (contract 10, 11).
    fn integrity(&self) -> Option<IntegrityFailure>;

    /// Whether appends can succeed now (contract 12): [`Readiness::Ready`] unless the store
    /// is read-only (opened so, or after an integrity failure), closed, or its last write
    /// failed for a storage reason and a probe write (a one-row commit outside the ledger,
    /// made only then) fails too. Cheap while writes succeed: it reads memory alone.
    fn readiness(&self) -> impl Future<Output = Readiness> + Send;

    /// An operator's answer to an integrity failure: accepts the database's head as it now
    /// stands and commits `record` on it, alone; the store then appends again. `failure`
    /// must be the store's current one (as [`Store::integrity`] gave it), so that what is
    /// accepted is what the operator saw. The head must still verify (its checkpoint signed
    /// by the log key, the stored tree giving its root). The store writes nothing of its
    /// own: `record` is the caller's event saying who decided, why, and what was lost (the
    /// failure's `seen` checkpoint, signed, and the head found); it stays read-only if
    /// `record` is refused or fails.
    fn acknowledge_integrity_failure(
        &self,
        failure: &IntegrityFailure,
        record: Append,
    ) -> impl Future<Output = Result<Appended, StoreError>> + Send;

    /// The number of entries in the log (the head's size), without fetching or verifying
    /// its checkpoint: a cheap way to notice that someone appended.
    fn size(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The latest signed checkpoint (the head).
    fn checkpoint(&self) -> impl Future<Output = Result<SignedCheckpoint, StoreError>> + Send;

    /// Stored checkpoints with `size >= from_size`, oldest first, at most `limit` (and at
    /// most 1,000; page with `from_size = last.size + 1`).
    fn checkpoints(
        &self,
        from_size: u64,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<SignedCheckpoint>, StoreError>> + Send;

    /// Leaves `[start, end)`, at most [`MAX_ENTRIES_PER_READ`]; `end` may not pass the head.
    fn entries(
        &self,
        start: u64,
        end: u64,
    ) -> impl Future<Output = Result<Vec<Entry>, StoreError>> + Send;

    /// Entries with index in `[start, end)` whose events carry every one of `terms` (at
    /// least one, at most [`MAX_SEARCH_TERMS`]; made by [`crate::search`]), newest first, at
    /// most `limit` (and [`MAX_ENTRIES_PER_READ`]). Page back with `end = last.index`.
    fn search(
        &self,
        terms: &[String],
        start: u64,
        end: u64,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<Entry>, StoreError>> + Send;

    /// The smallest range `[start, end)` of the log holding every entry whose event is
    /// stamped (its `at`) at or after `since` and before `until` (either bound optional).
    /// Stamps are not in log order (appends land a little out of order, backfills far), so
    /// the range may hold entries stamped outside the bounds, which the caller skips; it
    /// never leaves out one stamped inside.
    fn time_range(
        &self,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> impl Future<Output = Result<(u64, u64), StoreError>> + Send;

    /// The RFC 9162 inclusion proof of leaf `index` in the tree of `size` leaves.
    fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> impl Future<Output = Result<Vec<Hash>, StoreError>> + Send;

    /// The RFC 9162 consistency proof between the trees of `from` and `to` leaves.
    fn consistency_proof(
        &self,
        from: u64,
        to: u64,
    ) -> impl Future<Output = Result<Vec<Hash>, StoreError>> + Send;

    /// The root hash of the tree of `size` leaves (`size` ≤ head).
    fn root_at(&self, size: u64) -> impl Future<Output = Result<Hash, StoreError>> + Send;

    /// One state record.
    fn state(
        &self,
        kind: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<StateRecord>, StoreError>> + Send;

    /// State records by kind and key, read together (one round trip for up to 64 keys):
    /// for each key asked, in order, its record if it exists.
    fn states_by_key(
        &self,
        keys: &[(&str, &str)],
    ) -> impl Future<Output = Result<Vec<Option<StateRecord>>, StoreError>> + Send;

    /// Appends entries to the access log (append-only, like the ledger, but not hashed:
    /// it records reads too, and it is not evidence of decisions).
    fn record_access(
        &self,
        entries: Vec<AccessEntry>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the access-log entries recorded before `before` (RFC 3339, as entries are
    /// stamped), oldest first, in transactions of at most 10,000; returns how many. The
    /// access log is append-only but for this: its retention.
    fn prune_access(&self, before: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// For every identified principal and outcome in the access log, when it last
    /// happened (kept as entries are recorded; no scan of the log).
    fn last_uses(&self) -> impl Future<Output = Result<Vec<LastUse>, StoreError>> + Send;

    /// Access log entries with id `> after`, oldest first, at most `limit` (and 1,000).
    fn access_log(
        &self,
        after: u64,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<AccessRecord>, StoreError>> + Send;

    /// Keeps `witness`'s cosignature `line` (a C2SP signature line, verified by the
    /// caller) on the stored checkpoint of `size` (contract 13). `Ok(false)`: that witness
    /// had already cosigned it (the first line stays). A size with no stored checkpoint is
    /// [`StoreError::OutOfRange`].
    fn add_cosignature(
        &self,
        size: u64,
        witness: &str,
        line: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The cosignature lines kept on the checkpoint of `size`, by witness name.
    fn cosignatures(
        &self,
        size: u64,
    ) -> impl Future<Output = Result<Vec<Cosignature>, StoreError>> + Send;

    /// The largest checkpoint size cosigned by at least `quorum` (≥ 1) of `witnesses`
    /// (names, at most 100).
    fn latest_cosigned(
        &self,
        witnesses: &[String],
        quorum: u64,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// State records of `kind` with key `> after`, in key order, at most `limit` (and at
    /// most 1,000; page with `after = last.key`).
    fn states(
        &self,
        kind: &str,
        after: &str,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<StateRecord>, StoreError>> + Send;

    /// Keeps `bytes` as a blob named by their SHA-256, of `media_type` (1 to 255 visible
    /// ASCII characters), stamped `at` (contract 14). Durable when it returns `Ok`, like
    /// an append.
    fn put_blob(
        &self,
        media_type: &str,
        bytes: bytes::Bytes,
        at: Timestamp,
    ) -> impl Future<Output = Result<BlobPut, StoreError>> + Send;

    /// What is kept about a blob, if there is one by that name.
    fn blob(
        &self,
        digest: &Digest,
    ) -> impl Future<Output = Result<Option<BlobInfo>, StoreError>> + Send;

    /// Chunk `seq` (from 0, below [`BlobInfo::chunks`]) of a blob, as stored: a reader
    /// that streams a blob checks its hash at the end.
    fn blob_chunk(
        &self,
        digest: &Digest,
        seq: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// A whole blob, checked against its name ([`StoreError::Corrupt`] if its bytes no
    /// longer hash to it), or `None` if there is none by that name.
    fn read_blob(
        &self,
        digest: &Digest,
    ) -> impl Future<Output = Result<Option<bytes::Bytes>, StoreError>> + Send;
}

/// A blob as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobInfo {
    /// Its name: the SHA-256 of its bytes.
    pub digest: Digest,
    /// Its length in bytes.
    pub size: u64,
    /// What its bytes are (`application/xml`, …), as the first writer said.
    pub media_type: String,
    /// How many chunks hold it (0 for an empty blob).
    pub chunks: u64,
    /// When it was first kept (the first writer's time).
    pub created_at: Timestamp,
}

/// What [`Store::put_blob`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobPut {
    /// The blob.
    pub info: BlobInfo,
    /// False when the same bytes were kept already (nothing was written).
    pub created: bool,
}

/// Events to append together, with the state they change.
#[derive(Debug, Clone, Default)]
pub struct Append {
    /// The events, in order; each becomes one ledger leaf. At least one.
    pub events: Vec<CanonicalJson>,
    /// State records to write in the same transaction.
    pub state: Vec<StateWrite>,
    /// Makes a retry of this append return the original result.
    pub idempotency: Option<IdempotencyKey>,
}

impl Append {
    /// Bytes of events and state values this append carries (bounds a commit batch).
    pub fn byte_len(&self) -> usize {
        let events: usize = self.events.iter().map(|e| e.as_bytes().len()).sum();
        let state: usize = self.state.iter().map(|w| w.value.as_bytes().len()).sum();
        events + state
    }

    /// An append of one event with no state writes.
    pub fn event(event: CanonicalJson) -> Self {
        Append {
            events: vec![event],
            ..Append::default()
        }
    }
}

/// Writes `value` as the state record `(kind, key)`; a `null` value removes the record
/// (state is a projection: a record that no longer describes anything goes, together with
/// the event that says why; a later write creates it again at version 1).
#[derive(Debug, Clone)]
pub struct StateWrite {
    /// The record's type, e.g. `promotion`.
    pub kind: String,
    /// Its key within the type.
    pub key: String,
    /// Its new value (`null`: remove it).
    pub value: CanonicalJson,
    /// What the record must be before the write, checked in the transaction.
    pub expect: Expect,
}

/// A precondition on a state record's version (optimistic concurrency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// Whatever it is.
    Any,
    /// It does not exist yet.
    Absent,
    /// It exists at exactly this version.
    Version(u64),
}

/// Identifies a request so that its retry converges on the first result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The caller's key (e.g. an `Idempotency-Key` header), unique per request.
    pub key: String,
    /// A digest of what the request asked for; the same key with a different fingerprint
    /// is a conflict, not a replay.
    pub fingerprint: [u8; 32],
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Appended {
    /// Ledger index of the first event.
    pub first_index: u64,
    /// Number of events appended.
    pub count: u64,
    /// Size of the checkpoint that first covered them.
    pub tree_size: u64,
    /// True when this is the stored result of an earlier append with the same key.
    pub replayed: bool,
}

/// A checkpoint as stored: its size and root, and the signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// Number of leaves.
    pub size: u64,
    /// Root hash of those leaves.
    pub root: Hash,
    /// The C2SP signed note (tlog-checkpoint body, log key signature).
    pub note: String,
}

/// A witness's cosignature line on a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's name.
    pub witness: String,
    /// The signature line, without its newline.
    pub line: String,
}

/// One ledger leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its index.
    pub index: u64,
    /// The event bytes (RFC 8785 JSON) that were hashed into the tree.
    pub leaf: Vec<u8>,
}

/// A state record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRecord {
    /// The record's type.
    pub kind: String,
    /// Its key.
    pub key: String,
    /// Starts at 1, grows by one with each write.
    pub version: u64,
    /// The value, RFC 8785 JSON.
    pub value: CanonicalJson,
    /// Ledger index of the first event of the append that wrote it.
    pub log_index: u64,
}

/// One request to the service, as the access log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AccessEntry {
    /// When (RFC 3339).
    pub at: String,
    /// Who (empty when the request carried no valid identity).
    pub principal: String,
    /// With which credential (`Authentication::describe`: `token tok_…`, `oidc ISSUER
    /// SUBJECT`); empty when none, or for entries recorded before credentials were.
    #[serde(default)]
    pub credential: String,
    /// The HTTP method.
    pub method: String,
    /// The path (without the query).
    pub path: String,
    /// Where from (the peer address).
    pub remote: String,
    /// The response status.
    pub status: u16,
    /// `allowed`, or why it was denied.
    pub outcome: String,
}

/// When a principal last had an outcome (say `allowed: promote`) in the access log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastUse {
    /// Who.
    pub principal: String,
    /// The outcome.
    pub outcome: String,
    /// When, the last time (RFC 3339).
    pub at: String,
}

/// An access log entry with its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessRecord {
    /// Its position in the access log.
    pub id: u64,
    /// The entry.
    #[serde(flatten)]
    pub entry: AccessEntry,
}

/// Refuses an empty key or one over [`MAX_KEY_BYTES`], naming `what` it is.
fn check_key(what: &str, key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(StoreError::InvalidInput(format!(
            "{what} must be 1 to {MAX_KEY_BYTES} bytes, not {}",
            key.len()
        )));
    }
    Ok(())
}

/// Refuses an append beyond the bounds this contract sets (events, their sizes, keys), or
/// one carrying a log-key hand-over, naming what is wrong; a backend checks before writing.
pub(crate) fn check_append(append: &Append) -> Result<(), StoreError> {
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
    // Only `rotate_log_key` appends a hand-over (alone, with the checkpoint both keys
    // sign): one appended like any event would name no checkpoint of its own, and every
    // reader following the log's keys would refuse the ledger from then on.
    if let Some(i) = append
        .events
        .iter()
        .position(|e| LogKeyRotation::from_leaf(e.as_bytes()).is_some())
    {
        return Err(StoreError::InvalidInput(format!(
            "event {i} is a {LOG_KEY_ROTATED} event: only the log-key rotation (`custody key rotate log`) appends one"
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
