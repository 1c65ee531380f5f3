-- Witness cosignatures (C2SP tlog-cosignature) on stored checkpoints: the signature line a
-- witness added to the checkpoint of `size`, one per witness and checkpoint, verified
-- against the configured witness key before it is stored. Like the checkpoints, kept
-- forever: the first line a witness gave for a checkpoint stays.
CREATE TABLE log_cosignatures (
    size    BIGINT NOT NULL,
    witness TEXT NOT NULL,
    line    TEXT NOT NULL,
    PRIMARY KEY (size, witness)
);
CREATE TRIGGER log_cosignatures_append_only_u BEFORE UPDATE ON log_cosignatures
BEGIN SELECT RAISE(ABORT, 'cosignatures are append-only'); END;
CREATE TRIGGER log_cosignatures_append_only_d BEFORE DELETE ON log_cosignatures
BEGIN SELECT RAISE(ABORT, 'cosignatures are append-only'); END;
