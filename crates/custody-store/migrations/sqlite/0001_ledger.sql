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
    size       INTEGER NOT NULL,
    root       BLOB NOT NULL,
    checkpoint TEXT NOT NULL    -- the signed note for (size, root)
);

CREATE TABLE log_entries (
    idx  INTEGER PRIMARY KEY,
    leaf BLOB NOT NULL          -- the event, RFC 8785 canonical JSON
);

CREATE TABLE log_nodes (
    id   INTEGER PRIMARY KEY,
    hash BLOB NOT NULL
);

CREATE TABLE log_checkpoints (
    size INTEGER PRIMARY KEY,
    note TEXT NOT NULL
);

CREATE TABLE state (
    kind      TEXT NOT NULL,
    key       TEXT NOT NULL,
    version   INTEGER NOT NULL,
    value     TEXT NOT NULL,
    log_index INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;

CREATE TABLE idempotency (
    key         TEXT PRIMARY KEY,
    fingerprint BLOB NOT NULL,
    first_index INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    tree_size   INTEGER NOT NULL
) WITHOUT ROWID;

-- Defence in depth: the database itself refuses to rewrite history.
CREATE TRIGGER log_entries_append_only_u BEFORE UPDATE ON log_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER log_entries_append_only_d BEFORE DELETE ON log_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER log_nodes_append_only_u BEFORE UPDATE ON log_nodes
BEGIN SELECT RAISE(ABORT, 'ledger hashes are append-only'); END;
CREATE TRIGGER log_nodes_append_only_d BEFORE DELETE ON log_nodes
BEGIN SELECT RAISE(ABORT, 'ledger hashes are append-only'); END;
CREATE TRIGGER log_checkpoints_append_only_u BEFORE UPDATE ON log_checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER log_checkpoints_append_only_d BEFORE DELETE ON log_checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER log_head_forward_only BEFORE UPDATE ON log_head
WHEN NEW.size < OLD.size
BEGIN SELECT RAISE(ABORT, 'the log head only moves forward'); END;
CREATE TRIGGER log_head_no_delete BEFORE DELETE ON log_head
BEGIN SELECT RAISE(ABORT, 'the log head cannot be deleted'); END;
