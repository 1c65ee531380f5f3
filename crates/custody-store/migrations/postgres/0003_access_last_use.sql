-- When each identified principal last had each outcome (e.g. 'allowed: promote'): kept by
-- the same transaction that appends to the access log, so an access review reads a few
-- rows instead of the whole log. at_ns (nanoseconds since the epoch) orders the uses; rows
-- carried over from the log as it stood get 0, so any later use replaces them.
CREATE TABLE access_last_use (
    principal TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    at        TEXT NOT NULL,
    at_ns     BIGINT NOT NULL,
    PRIMARY KEY (principal, outcome)
);

INSERT INTO access_last_use (principal, outcome, at, at_ns)
SELECT l.principal, l.outcome, l.at, 0
FROM access_log l
JOIN (SELECT MAX(id) AS id FROM access_log WHERE principal <> '' GROUP BY principal, outcome) m
  ON l.id = m.id;
