-- A row that only the readiness probe writes: committing a change to it shows that a write
-- transaction can commit again (the disk has room, the database answers) without touching
-- the ledger.
CREATE TABLE store_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO store_probe (id, n) VALUES (1, 0);
