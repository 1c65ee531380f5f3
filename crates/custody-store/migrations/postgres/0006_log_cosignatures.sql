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
CREATE TRIGGER log_cosignatures_append_only BEFORE UPDATE OR DELETE ON log_cosignatures
FOR EACH ROW EXECUTE FUNCTION custody_refuse_rewrite();
