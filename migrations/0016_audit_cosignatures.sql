-- Witness cosignatures of signed checkpoints (SPEC §6, C2SP tlog-witness):
-- the signature line a witness returned for a checkpoint, after it checked
-- the checkpoint's consistency with the last one it cosigned. One line per
-- checkpoint and witness; the published checkpoint is the note followed by
-- these lines. A line is only stored after it verified with the witness's
-- key from the policy, and it verifies on its own, so a forged row is
-- caught by `audit verify --policy`, never trusted.
CREATE TABLE audit_cosignatures (
    size       bigint      NOT NULL REFERENCES audit_checkpoints (size) ON DELETE CASCADE,
    witness    text        NOT NULL,
    line       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (size, witness)
);
CREATE INDEX audit_cosignatures_witness ON audit_cosignatures (witness, size);
