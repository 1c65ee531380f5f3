-- The access log keeps entries for a configured retention: the store may remove the
-- oldest ones, and only those, by first raising `below` (every id under it may go) in the
-- same transaction as the delete. Everything else stays append-only.
CREATE TABLE access_prune (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    below BIGINT NOT NULL
);
INSERT INTO access_prune (id, below) VALUES (1, 0);

CREATE FUNCTION custody_access_prune_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.id >= (SELECT below FROM access_prune WHERE id = 1) THEN
        RAISE EXCEPTION 'the access log is append-only (only entries past their retention are removed)';
    END IF;
    RETURN OLD;
END $$;

DROP TRIGGER access_log_append_only ON access_log;
CREATE TRIGGER access_log_append_only BEFORE UPDATE ON access_log
FOR EACH ROW EXECUTE FUNCTION custody_refuse_rewrite();
CREATE TRIGGER access_log_prune_only BEFORE DELETE ON access_log
FOR EACH ROW EXECUTE FUNCTION custody_access_prune_only();
