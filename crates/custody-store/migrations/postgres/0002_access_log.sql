-- Every request to the service, allowed or denied: who, what, when, from where, outcome.
CREATE TABLE access_log (
    id        BIGSERIAL PRIMARY KEY,
    at        TEXT NOT NULL,
    principal TEXT NOT NULL,   -- '' when the request carried no valid identity
    method    TEXT NOT NULL,
    path      TEXT NOT NULL,
    remote    TEXT NOT NULL,
    status    BIGINT NOT NULL,
    outcome   TEXT NOT NULL    -- allowed, denied: why, or unauthenticated: why
);
CREATE INDEX access_log_principal ON access_log (principal, id);

CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log
FOR EACH ROW EXECUTE FUNCTION custody_refuse_rewrite();
