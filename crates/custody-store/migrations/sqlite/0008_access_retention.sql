-- The access log keeps entries for a configured retention: the store may remove the
-- oldest ones, and only those, by first raising `below` (every id under it may go) in the
-- same transaction as the delete. Everything else stays append-only.
CREATE TABLE access_prune (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    below INTEGER NOT NULL
);
INSERT INTO access_prune (id, below) VALUES (1, 0);

DROP TRIGGER access_log_append_only_d;
CREATE TRIGGER access_log_append_only_d BEFORE DELETE ON access_log
WHEN OLD.id >= (SELECT below FROM access_prune WHERE id = 1)
BEGIN SELECT RAISE(ABORT, 'the access log is append-only (only entries past their retention are removed)'); END;
