-- Content-addressed blobs: evidence reports as their producers wrote them, and what custody
-- read from them. A blob is named by the SHA-256 of its bytes, written once and never
-- changed or removed; its bytes are kept in chunks so that a large one is read back (and
-- served) a chunk at a time. A blob is written before the event that names it, outside
-- the ledger's transaction: one whose event never committed is unreferenced and harmless.
CREATE TABLE blobs (
    digest     TEXT PRIMARY KEY,
    size       BIGINT NOT NULL,
    media_type TEXT NOT NULL,
    chunks     BIGINT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE blob_chunks (
    digest TEXT NOT NULL,
    seq    BIGINT NOT NULL,
    bytes  BYTEA NOT NULL,
    PRIMARY KEY (digest, seq)
);

CREATE TRIGGER blobs_write_once BEFORE UPDATE OR DELETE ON blobs
FOR EACH ROW EXECUTE FUNCTION custody_refuse_rewrite();
CREATE TRIGGER blob_chunks_write_once BEFORE UPDATE OR DELETE ON blob_chunks
FOR EACH ROW EXECUTE FUNCTION custody_refuse_rewrite();
