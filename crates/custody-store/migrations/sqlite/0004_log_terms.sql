-- The search index of the ledger: one row per name an entry's event mentions (see
-- search.rs), written by the transaction that appends the entry. A projection of the
-- entries, like state: it can be rebuilt from them.
CREATE TABLE log_terms (
    term TEXT NOT NULL,
    idx  INTEGER NOT NULL,
    PRIMARY KEY (term, idx)
) WITHOUT ROWID;

-- Entries appended before this migration get their terms from a backfill that the next
-- writer to open the store runs: [done, upto) is what is still to index.
CREATE TABLE log_terms_backfill (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    upto INTEGER NOT NULL,
    done INTEGER NOT NULL
);
INSERT INTO log_terms_backfill (id, upto, done) SELECT 1, COUNT(*), 0 FROM log_entries;
