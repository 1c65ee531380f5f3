//! [`SqlStore`]'s side of the [`Store`] contract: appends and acknowledgments handed to the
//! committer, readiness, and every read (checkpoints, entries, search, proofs, state,
//! access log, cosignatures, blobs). Entries and proofs are bounds-checked against the
//! head before the tables are read.

use bytes::Bytes;
use custody_ledger::{EMPTY_ROOT, Hash, consistency_plan, inclusion_plan, root_plan};
use custody_model::{CanonicalJson, Digest, Timestamp};

use crate::access_log::{bounded_access, latest_uses};
use crate::commit::{Job, to_i64, to_u64};
use crate::integrity::{IntegrityFailure, Readiness};
use crate::search;
use crate::sql;
use crate::{
    AccessEntry, AccessRecord, Append, Appended, BlobInfo, BlobPut, Cosignature, Entry, LastUse,
    MAX_ENTRIES_PER_READ, MAX_KEY_BYTES, MAX_SEARCH_TERMS, SignedCheckpoint, StateRecord, Store,
    StoreError,
};

use super::{SqlStore, request, signed_checkpoint};

/// Most checkpoints one [`Store::checkpoints`] call returns.
const MAX_CHECKPOINTS_PER_READ: u64 = 1000;

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
        crate::contract::check_append(&append)?;
        let queue = self.appends.as_ref().ok_or(StoreError::ReadOnly)?;
        if let Some(failure) = self.status.integrity() {
            return Err(StoreError::Integrity(Box::new(failure)));
        }
        let (request, result) = request(append);
        queue
            .send(Job::Append(request))
            .await
            .map_err(|_| StoreError::Closed)?;
        result.await.map_err(|_| StoreError::Closed)?
    }

    fn integrity(&self) -> Option<IntegrityFailure> {
        self.status.integrity()
    }

    async fn readiness(&self) -> Readiness {
        let Some(queue) = &self.appends else {
            return Readiness::ReadOnly;
        };
        if queue.is_closed() {
            return Readiness::Closed;
        }
        if let Some(failure) = self.status.integrity() {
            return Readiness::IntegrityFailed(failure);
        }
        if let Some(why) = self.status.retired() {
            return Readiness::Retired(why);
        }
        if let Some(Err(e)) = self.database_file.as_ref().map(|f| f.check()) {
            return Readiness::StorageFailing(e.to_string());
        }
        // Between writes: a head moved back (or to another root of the same size) behind
        // this store is found at once, not at the next write. (A head moved past the one
        // seen is another writer's; whether it extends it, the next write checks.)
        if let Some(failure) = self.head_went_back().await {
            return Readiness::IntegrityFailed(failure);
        }
        if self.status.storage().is_some() {
            // The last write failed: whether writes succeed now takes one.
            let probed = self.probe().await;
            self.status.wrote(&probed);
            if let Err(e) = probed {
                return Readiness::StorageFailing(e.to_string());
            }
        }
        Readiness::Ready
    }

    async fn acknowledge_integrity_failure(
        &self,
        failure: &IntegrityFailure,
        record: Append,
    ) -> Result<Appended, StoreError> {
        crate::contract::check_append(&record)?;
        let queue = self.appends.as_ref().ok_or(StoreError::ReadOnly)?;
        let (request, result) = request(record);
        queue
            .send(Job::Acknowledge {
                failure: failure.clone(),
                request,
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
        let size = to_u64(head.size)?;
        match signed_checkpoint(&self.keys, size, head.checkpoint) {
            Err(e) => Err(self.unverified(&mut conn.conn(), size, e).await),
            signed => signed,
        }
    }

    async fn checkpoints(
        &self,
        from_size: u64,
        limit: u64,
    ) -> Result<Vec<SignedCheckpoint>, StoreError> {
        let limit = limit.min(MAX_CHECKPOINTS_PER_READ);
        let mut conn = self.read.acquire().await?;
        let rows = sql::checkpoints(&mut conn.conn(), to_i64(from_size)?, to_i64(limit)?).await?;
        let mut signed = Vec::with_capacity(rows.len());
        for (size, note) in rows {
            let size = to_u64(size)?;
            match signed_checkpoint(&self.keys, size, note) {
                Ok(checkpoint) => signed.push(checkpoint),
                Err(e) => return Err(self.unverified(&mut conn.conn(), size, e).await),
            }
        }
        Ok(signed)
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
        let written = async {
            let mut tx = self.read.begin_write().await?;
            sql::insert_access(&mut tx.conn(), &entries).await?;
            sql::upsert_last_uses(&mut tx.conn(), &last).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.status.wrote(&written);
        written
    }

    async fn prune_access(&self, before: &str) -> Result<u64, StoreError> {
        crate::access_log::prune(self, before).await
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
        rows.into_iter().map(crate::access_log::record).collect()
    }

    async fn add_cosignature(
        &self,
        size: u64,
        witness: &str,
        line: &str,
    ) -> Result<bool, StoreError> {
        if self.write.is_none() {
            return Err(StoreError::ReadOnly);
        }
        if witness.is_empty() || witness.len() > MAX_KEY_BYTES || line.len() > 4 * MAX_KEY_BYTES {
            return Err(StoreError::OutOfRange(format!(
                "a witness name is 1 to {MAX_KEY_BYTES} bytes and a cosignature line at most {}",
                4 * MAX_KEY_BYTES
            )));
        }
        let size = to_i64(size)?;
        // Like the access log, not the ledger: the read pool writes, outside the log's lock.
        let written = async {
            let mut tx = self.read.begin_write().await?;
            if !sql::checkpoint_stored(&mut tx.conn(), size).await? {
                tx.rollback().await?;
                return Err(StoreError::OutOfRange(format!(
                    "no checkpoint of {size} entries is stored"
                )));
            }
            let added = sql::insert_cosignature(&mut tx.conn(), size, witness, line).await?;
            tx.commit().await?;
            Ok(added)
        }
        .await;
        self.status.wrote(&written);
        written
    }

    async fn cosignatures(&self, size: u64) -> Result<Vec<Cosignature>, StoreError> {
        let mut conn = self.read.acquire().await?;
        Ok(sql::cosignatures(&mut conn.conn(), to_i64(size)?)
            .await?
            .into_iter()
            .map(|(witness, line)| Cosignature { witness, line })
            .collect())
    }

    async fn latest_cosigned(
        &self,
        witnesses: &[String],
        quorum: u64,
    ) -> Result<Option<u64>, StoreError> {
        if quorum == 0 || witnesses.is_empty() || witnesses.len() > 100 {
            return Err(StoreError::OutOfRange(
                "a quorum is at least 1, of 1 to 100 witnesses".into(),
            ));
        }
        let mut conn = self.read.acquire().await?;
        sql::latest_cosigned(&mut conn.conn(), witnesses, to_i64(quorum)?)
            .await?
            .map(to_u64)
            .transpose()
    }

    async fn state(&self, kind: &str, key: &str) -> Result<Option<StateRecord>, StoreError> {
        let mut conn = self.read.acquire().await?;
        sql::state(&mut conn.conn(), kind, key)
            .await?
            .map(state_record)
            .transpose()
    }

    async fn states_by_key(
        &self,
        keys: &[(&str, &str)],
    ) -> Result<Vec<Option<StateRecord>>, StoreError> {
        let mut found = std::collections::HashMap::with_capacity(keys.len());
        let mut conn = self.read.acquire().await?;
        for chunk in keys.chunks(sql::STATES_AT_ONCE) {
            for row in sql::states_by_key(&mut conn.conn(), chunk).await? {
                let record = state_record(row)?;
                found.insert((record.kind.clone(), record.key.clone()), record);
            }
        }
        Ok(keys
            .iter()
            .map(|(kind, key)| found.get(&((*kind).to_owned(), (*key).to_owned())).cloned())
            .collect())
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

    async fn put_blob(
        &self,
        media_type: &str,
        bytes: Bytes,
        at: Timestamp,
    ) -> Result<BlobPut, StoreError> {
        self.put_blob_impl(media_type, bytes, at).await
    }

    async fn blob(&self, digest: &Digest) -> Result<Option<BlobInfo>, StoreError> {
        self.blob_impl(digest).await
    }

    async fn blob_chunk(&self, digest: &Digest, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.blob_chunk_impl(digest, seq).await
    }

    async fn read_blob(&self, digest: &Digest) -> Result<Option<Bytes>, StoreError> {
        self.read_blob_impl(digest).await
    }
}
