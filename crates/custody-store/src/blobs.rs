//! Content-addressed blobs (contract 14): their SQL and [`SqlStore`]'s side of them.
//!
//! A blob is a `blobs` row (name, size, media type, chunk count, first writer's time) and
//! its bytes in `blob_chunks`, [`BLOB_CHUNK_BYTES`] per row, all written in one write
//! transaction outside the ledger's (like the access log, it takes no part in the log's
//! lock or checkpoints). The name is the SHA-256 the store computes, on a blocking thread:
//! hashing 256 MiB must not stall the async workers serving other requests.

use bytes::Bytes;
use custody_model::{Digest, Timestamp};
use sha2::{Digest as _, Sha256};

use crate::commit::{to_i64, to_u64};
use crate::sql::{Conn, on_conn};
use crate::{BLOB_CHUNK_BYTES, BlobInfo, BlobPut, MAX_BLOB_BYTES, SqlStore, StoreError};

/// A blob's row: `(digest, size, media_type, chunks, created_at)`.
type BlobRow = (String, i64, String, i64, String);

impl SqlStore {
    pub(crate) async fn put_blob_impl(
        &self,
        media_type: &str,
        bytes: Bytes,
        at: Timestamp,
    ) -> Result<BlobPut, StoreError> {
        check_media_type(media_type)?;
        if bytes.len() > MAX_BLOB_BYTES {
            return Err(StoreError::InvalidInput(format!(
                "a blob is at most {MAX_BLOB_BYTES} bytes, not {}",
                bytes.len()
            )));
        }
        if self.write.is_none() {
            return Err(StoreError::ReadOnly);
        }
        let hashed = bytes.clone();
        let digest = tokio::task::spawn_blocking(move || Sha256::digest(&hashed))
            .await
            .map_err(|e| StoreError::Unavailable(format!("hashing a blob failed: {e}")))?;
        let digest = Digest::sha256(digest.into());
        let chunks = bytes.len().div_ceil(BLOB_CHUNK_BYTES);
        let info = BlobInfo {
            digest: digest.clone(),
            size: bytes.len() as u64,
            media_type: media_type.to_owned(),
            chunks: chunks as u64,
            created_at: at,
        };
        if let Some(kept) = self.blob_impl(&digest).await? {
            return Ok(BlobPut {
                info: kept,
                created: false,
            });
        }
        // The read pool writes here, as the access log does: SQLite serialises writers on
        // its own, PostgreSQL's primary key makes a racing twin wait and then do nothing.
        let written = async {
            let mut tx = self.read.begin_write().await?;
            let created = insert_blob(&mut tx.conn(), &info).await?;
            if created {
                for (seq, chunk) in bytes.chunks(BLOB_CHUNK_BYTES).enumerate() {
                    insert_chunk(&mut tx.conn(), &info.digest, seq as i64, chunk).await?;
                }
            }
            tx.commit().await?;
            Ok(created)
        }
        .await;
        self.status.wrote(&written);
        let created = written?;
        let info = match created {
            true => info,
            // A twin won the race: its row (its media type and time) is the blob's.
            false => self.blob_impl(&digest).await?.unwrap_or(info),
        };
        Ok(BlobPut { info, created })
    }

    pub(crate) async fn blob_impl(&self, digest: &Digest) -> Result<Option<BlobInfo>, StoreError> {
        let mut conn = self.read.acquire().await?;
        const SQL: &str =
            "SELECT digest, size, media_type, chunks, created_at FROM blobs WHERE digest = $1";
        let name = digest.to_string();
        let mut c = conn.conn();
        let row: Option<BlobRow> =
            on_conn!(&mut c, c => sqlx::query_as(SQL).bind(&name).fetch_optional(&mut **c).await?);
        row.map(blob_info).transpose()
    }

    pub(crate) async fn blob_chunk_impl(
        &self,
        digest: &Digest,
        seq: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        const SQL: &str = "SELECT bytes FROM blob_chunks WHERE digest = $1 AND seq = $2";
        let mut conn = self.read.acquire().await?;
        let name = digest.to_string();
        let seq = to_i64(seq)?;
        let mut c = conn.conn();
        let row: Option<(Vec<u8>,)> = on_conn!(&mut c, c => sqlx::query_as(SQL)
            .bind(&name).bind(seq).fetch_optional(&mut **c).await?);
        Ok(row.map(|(b,)| b))
    }

    pub(crate) async fn read_blob_impl(
        &self,
        digest: &Digest,
    ) -> Result<Option<Bytes>, StoreError> {
        let Some(info) = self.blob_impl(digest).await? else {
            return Ok(None);
        };
        // The size was checked when it was written; a row claiming more is damage, and is
        // never trusted to size an allocation.
        let size = usize::try_from(info.size)
            .ok()
            .filter(|s| *s <= MAX_BLOB_BYTES)
            .ok_or_else(|| damaged(digest, "its size is over the limit"))?;
        let mut bytes = Vec::with_capacity(size);
        for seq in 0..info.chunks {
            let chunk = self
                .blob_chunk_impl(digest, seq)
                .await?
                .ok_or_else(|| damaged(digest, &format!("chunk {seq} is missing")))?;
            if bytes.len() + chunk.len() > size {
                return Err(damaged(digest, "its chunks hold more than its size"));
            }
            bytes.extend_from_slice(&chunk);
        }
        let bytes = Bytes::from(bytes);
        let hashed = bytes.clone();
        let actual = tokio::task::spawn_blocking(move || Sha256::digest(&hashed))
            .await
            .map_err(|e| StoreError::Unavailable(format!("hashing a blob failed: {e}")))?;
        if bytes.len() != size || Digest::sha256(actual.into()) != *digest {
            return Err(damaged(digest, "its bytes no longer hash to its name"));
        }
        Ok(Some(bytes))
    }
}

fn damaged(digest: &Digest, why: &str) -> StoreError {
    StoreError::Corrupt(format!("blob {digest}: {why}"))
}

fn check_media_type(media_type: &str) -> Result<(), StoreError> {
    let ok = !media_type.is_empty()
        && media_type.len() <= 255
        && media_type
            .bytes()
            .all(|b| b.is_ascii_graphic() || b == b' ');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "a blob's media type must be 1 to 255 visible ASCII characters, not {media_type:?}"
        )))
    }
}

fn blob_info(
    (digest, size, media_type, chunks, created_at): BlobRow,
) -> Result<BlobInfo, StoreError> {
    let corrupt =
        |what: &str| StoreError::Corrupt(format!("blob {digest}: its {what} does not read"));
    Ok(BlobInfo {
        digest: digest.parse().map_err(|_| corrupt("name"))?,
        size: to_u64(size)?,
        media_type,
        chunks: to_u64(chunks)?,
        created_at: created_at.parse().map_err(|_| corrupt("time"))?,
    })
}

/// Inserts a blob's row; false if one by that name was there (nothing written).
async fn insert_blob(c: &mut Conn<'_>, info: &BlobInfo) -> Result<bool, StoreError> {
    const SQL: &str = "INSERT INTO blobs (digest, size, media_type, chunks, created_at) \
                       VALUES ($1, $2, $3, $4, $5) ON CONFLICT (digest) DO NOTHING";
    let (name, size, chunks, at) = (
        info.digest.to_string(),
        to_i64(info.size)?,
        to_i64(info.chunks)?,
        info.created_at.to_string(),
    );
    let rows = on_conn!(c, c => sqlx::query(SQL)
        .bind(&name).bind(size).bind(&info.media_type).bind(chunks).bind(&at)
        .execute(&mut **c).await?.rows_affected());
    Ok(rows == 1)
}

async fn insert_chunk(
    c: &mut Conn<'_>,
    digest: &Digest,
    seq: i64,
    bytes: &[u8],
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO blob_chunks (digest, seq, bytes) VALUES ($1, $2, $3)";
    let name = digest.to_string();
    on_conn!(c, c => {
        sqlx::query(SQL).bind(&name).bind(seq).bind(bytes).execute(&mut **c).await?;
    });
    Ok(())
}
