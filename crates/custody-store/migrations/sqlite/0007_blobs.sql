-- Content-addressed blobs: evidence reports as their producers wrote them, and what custody
-- read from them. A blob is named by the SHA-256 of its bytes, written once and never
-- changed or removed; its bytes are kept in chunks so that a large one is read back (and
-- served) a chunk at a time. A blob is written before the event that names it, outside
-- the ledger's transaction: one whose event never committed is unreferenced and harmless.
CREATE TABLE blobs (
    digest     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    chunks     INTEGER NOT NULL,
    created_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE blob_chunks (
    digest TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    bytes  BLOB NOT NULL,
    PRIMARY KEY (digest, seq)
) WITHOUT ROWID;

CREATE TRIGGER blobs_write_once_u BEFORE UPDATE ON blobs
BEGIN SELECT RAISE(ABORT, 'blobs are write-once'); END;
CREATE TRIGGER blobs_write_once_d BEFORE DELETE ON blobs
BEGIN SELECT RAISE(ABORT, 'blobs are write-once'); END;
CREATE TRIGGER blob_chunks_write_once_u BEFORE UPDATE ON blob_chunks
BEGIN SELECT RAISE(ABORT, 'blobs are write-once'); END;
CREATE TRIGGER blob_chunks_write_once_d BEFORE DELETE ON blob_chunks
BEGIN SELECT RAISE(ABORT, 'blobs are write-once'); END;
