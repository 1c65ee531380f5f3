-- The ledger (append-only) and the state projected from it.
-- Node ids pack a perfect subtree's address: level << 56 | index.

CREATE TABLE log_meta (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    origin     TEXT NOT NULL,
    log_key    TEXT NOT NULL,   -- the C2SP signed-note verifier key of the log
    created_at TEXT NOT NULL
);

CREATE TABLE log_head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    size       BIGINT NOT NULL,
    root       BYTEA NOT NULL,
    checkpoint TEXT NOT NULL    -- the signed note for (size, root)
);

CREATE TABLE log_entries (
    idx  BIGINT PRIMARY KEY,
    leaf BYTEA NOT NULL         -- the event, RFC 8785 canonical JSON
);

CREATE TABLE log_nodes (
    id   BIGINT PRIMARY KEY,
    hash BYTEA NOT NULL
);

CREATE TABLE log_checkpoints (
    size BIGINT PRIMARY KEY,
    note TEXT NOT NULL
);

CREATE TABLE state (
    kind      TEXT NOT NULL,
    key       TEXT NOT NULL,
    version   BIGINT NOT NULL,
    value     TEXT NOT NULL,
    log_index BIGINT NOT NULL,
    PRIMARY KEY (kind, key)
);

CREATE TABLE idempotency (
    key         TEXT PRIMARY KEY,
    fingerprint BYTEA NOT NULL,
    first_index BIGINT NOT NULL,
    count       BIGINT NOT NULL,
    tree_size   BIGINT NOT NULL
);

-- Defence in depth: the database itself refuses to rewrite history.
CREATE FUNCTION custody_refuse_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;

CREATE TRIGGER log_entries_append_only BEFORE UPDATE OR DELETE ON log_entries
FOR EACH ROW EXECUTE FUNCTION custody_refuse_rewrite();
CREATE TRIGGER log_nodes_append_only BEFORE UPDATE OR DELETE ON log_nodes
FOR EACH ROW EXECUTE FUNCTION custody_refuse_rewrite();
CREATE TRIGGER log_checkpoints_append_only BEFORE UPDATE OR DELETE ON log_checkpoints
FOR EACH ROW EXECUTE FUNCTION custody_refuse_rewrite();

CREATE FUNCTION custody_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.size < OLD.size THEN
        RAISE EXCEPTION 'the log head only moves forward';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER log_head_forward_only BEFORE UPDATE OR DELETE ON log_head
FOR EACH ROW EXECUTE FUNCTION custody_head_forward_only();
