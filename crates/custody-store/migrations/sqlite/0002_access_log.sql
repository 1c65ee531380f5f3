-- Every request to the service, allowed or denied: who, what, when, from where, outcome.
CREATE TABLE access_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    principal TEXT NOT NULL,   -- '' when the request carried no valid identity
    method    TEXT NOT NULL,
    path      TEXT NOT NULL,
    remote    TEXT NOT NULL,
    status    INTEGER NOT NULL,
    outcome   TEXT NOT NULL    -- allowed, denied: why, or unauthenticated: why
);
CREATE INDEX access_log_principal ON access_log (principal, id);

CREATE TRIGGER access_log_append_only_u BEFORE UPDATE ON access_log
BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
CREATE TRIGGER access_log_append_only_d BEFORE DELETE ON access_log
BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
