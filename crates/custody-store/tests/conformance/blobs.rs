//! Contract 13: blobs are content-addressed, write-once, chunked, and read back whole only
//! when they still hash to their name.

use std::sync::Arc;

use bytes::Bytes;
use custody_model::Digest;
use custody_store::{BLOB_CHUNK_BYTES, MAX_BLOB_BYTES, SqlStore, Store, StoreError};
use sha2::{Digest as _, Sha256};

use super::{Backend, create, now, raw_execute};

fn sha256(bytes: &[u8]) -> Digest {
    Digest::sha256(Sha256::digest(bytes).into())
}

/// Bytes that are not all alike (so a chunk put in the wrong place would show).
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4099) as u8).collect()
}

pub(crate) async fn blobs_are_content_addressed_and_kept_once(backend: Backend) {
    let (_db, store, _) = create(backend).await;
    let bytes = pattern(2 * BLOB_CHUNK_BYTES + BLOB_CHUNK_BYTES / 2);
    let put = store
        .put_blob("application/xml", Bytes::from(bytes.clone()), now())
        .await
        .unwrap();
    assert!(put.created);
    assert_eq!(
        put.info.digest,
        sha256(&bytes),
        "named by the store's own hash"
    );
    assert_eq!((put.info.size, put.info.chunks), (bytes.len() as u64, 3));
    assert_eq!(
        store.blob(&put.info.digest).await.unwrap(),
        Some(put.info.clone())
    );

    // Chunk by chunk, and whole.
    let mut joined = Vec::new();
    for seq in 0..3 {
        let chunk = store
            .blob_chunk(&put.info.digest, seq)
            .await
            .unwrap()
            .unwrap();
        assert!(chunk.len() <= BLOB_CHUNK_BYTES);
        joined.extend_from_slice(&chunk);
    }
    assert_eq!(joined, bytes);
    assert_eq!(store.blob_chunk(&put.info.digest, 3).await.unwrap(), None);
    assert_eq!(
        store.read_blob(&put.info.digest).await.unwrap().unwrap(),
        Bytes::from(bytes.clone())
    );

    // The same bytes again write nothing; the first writer's media type and time stay.
    let again = store
        .put_blob("text/plain", Bytes::from(bytes.clone()), now())
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.info, put.info);

    // Unknown names are absent, not errors; an empty blob is a blob.
    let unknown = sha256(b"never kept");
    assert_eq!(store.blob(&unknown).await.unwrap(), None);
    assert_eq!(store.read_blob(&unknown).await.unwrap(), None);
    assert_eq!(store.blob_chunk(&unknown, 0).await.unwrap(), None);
    let empty = store
        .put_blob("text/plain", Bytes::new(), now())
        .await
        .unwrap();
    assert_eq!((empty.info.size, empty.info.chunks), (0, 0));
    assert_eq!(empty.info.digest, sha256(b""));
    assert_eq!(
        store
            .read_blob(&empty.info.digest)
            .await
            .unwrap()
            .unwrap()
            .len(),
        0
    );

    // Racing writers of the same new bytes: exactly one of them creates it.
    let store = Arc::new(store);
    let racing = Bytes::from(pattern(BLOB_CHUNK_BYTES + 3));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, racing) = (store.clone(), racing.clone());
            tokio::spawn(async move { store.put_blob("application/json", racing, now()).await })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        let put = t.await.unwrap().unwrap();
        assert_eq!(put.info.digest, sha256(&racing));
        created += usize::from(put.created);
    }
    assert_eq!(created, 1);
    assert_eq!(
        store.read_blob(&sha256(&racing)).await.unwrap().unwrap(),
        racing
    );
}

pub(crate) async fn bad_blobs_are_refused_and_change_nothing(backend: Backend) {
    let (db, store, _) = create(backend).await;
    let bytes = Bytes::from_static(b"<testsuite/>");
    for media_type in ["", "text/\nplain", &"x".repeat(256)] {
        let err = store
            .put_blob(media_type, bytes.clone(), now())
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidInput(_)),
            "{media_type:?}: {err}"
        );
        assert!(err.to_string().contains("media type"), "{err}");
    }
    // One byte over the limit (zeroed pages: the test does not touch 256 MiB).
    let oversized = Bytes::from(vec![0u8; MAX_BLOB_BYTES + 1]);
    let err = store
        .put_blob("application/json", oversized, now())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err}");
    assert!(err.to_string().contains("at most"), "{err}");
    assert_eq!(
        store.blob(&sha256(&bytes)).await.unwrap(),
        None,
        "nothing kept"
    );

    let reader = SqlStore::open_read_only(&db.location, store.verifier())
        .await
        .unwrap();
    let err = reader
        .put_blob("text/plain", bytes.clone(), now())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly), "{err}");
    assert_eq!(store.blob(&sha256(&bytes)).await.unwrap(), None);
}

pub(crate) async fn blobs_are_write_once_and_damage_is_found(backend: Backend) {
    let (db, store, _) = create(backend).await;
    let bytes = pattern(BLOB_CHUNK_BYTES + 10);
    let put = store
        .put_blob("application/json", Bytes::from(bytes), now())
        .await
        .unwrap();
    let name = put.info.digest.to_string();
    for sql in [
        format!("UPDATE blobs SET size = 1 WHERE digest = '{name}'"),
        format!("DELETE FROM blobs WHERE digest = '{name}'"),
        format!("UPDATE blob_chunks SET seq = 9 WHERE digest = '{name}'"),
        format!("DELETE FROM blob_chunks WHERE digest = '{name}'"),
    ] {
        let err = raw_execute(&db.location, &sql).await.unwrap_err();
        assert!(
            err.to_string().contains("write-once") || err.to_string().contains("append-only"),
            "{sql}: {err}"
        );
    }
    assert!(store.read_blob(&put.info.digest).await.unwrap().is_some());

    // An intruder drops the guard and changes one byte of a chunk: the whole read refuses it.
    let drop_guard = match backend {
        Backend::Sqlite => "DROP TRIGGER blob_chunks_write_once_u",
        Backend::Postgres => "DROP TRIGGER blob_chunks_write_once ON blob_chunks",
    };
    raw_execute(&db.location, drop_guard).await.unwrap();
    let forged = match backend {
        Backend::Sqlite => {
            format!("UPDATE blob_chunks SET bytes = X'00' WHERE digest = '{name}' AND seq = 1")
        }
        Backend::Postgres => format!(
            "UPDATE blob_chunks SET bytes = '\\x00'::bytea WHERE digest = '{name}' AND seq = 1"
        ),
    };
    assert_eq!(raw_execute(&db.location, &forged).await.unwrap(), 1);
    let err = store.read_blob(&put.info.digest).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains(&name), "names the blob: {err}");
}
