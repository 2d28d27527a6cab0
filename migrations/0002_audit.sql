-- The tamper-evident audit log (SPEC §6): an append-only RFC 6962 Merkle log
-- whose leaves are canonical JSON entries, with signed checkpoints.
--
-- Writers append to audit_pending (durable at commit, inside the release's
-- own transaction or in a group-committed batch). The sequencer moves pending
-- entries into audit_entries in one total order, under a transaction-scoped
-- advisory lock, updating the tree state, the stored subtree hashes and the
-- dashboard counters in the same transaction.

-- Appended, not yet in the tree. entry is the canonical JSON with index 0.
CREATE TABLE audit_pending (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id text  NOT NULL UNIQUE,
    entry       bytea NOT NULL
);

-- The log. leaf is the canonical JSON with its index; the other columns are
-- denormalised from it for filtering, and `audit verify` checks they agree.
-- time_hwm is the running maximum of time over idx <= this one: monotonic in
-- idx, it turns a time range into an idx range for the explorer.
CREATE TABLE audit_entries (
    idx         bigint      PRIMARY KEY,
    leaf        bytea       NOT NULL,
    leaf_hash   bytea       NOT NULL,
    time        timestamptz NOT NULL,
    decision_id text        NOT NULL UNIQUE,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    purpose     text        NOT NULL,
    subject     text        NOT NULL,
    resource    text        NOT NULL,
    outcome     text        NOT NULL,
    time_hwm    timestamptz NOT NULL
);
-- Explorer: newest first by idx under any one filter, or a common pair; a
-- time range becomes an idx range through audit_entries_hwm.
CREATE INDEX audit_entries_subject ON audit_entries (subject, idx);
CREATE INDEX audit_entries_actor ON audit_entries (actor, idx);
CREATE INDEX audit_entries_purpose ON audit_entries (purpose, idx);
CREATE INDEX audit_entries_outcome ON audit_entries (outcome, idx);
CREATE INDEX audit_entries_actor_purpose ON audit_entries (actor, purpose, idx);
CREATE INDEX audit_entries_actor_outcome ON audit_entries (actor, outcome, idx);
CREATE INDEX audit_entries_purpose_outcome ON audit_entries (purpose, outcome, idx);
CREATE INDEX audit_entries_hwm ON audit_entries (time_hwm, idx);
-- Filter columns are correlated (a partner uses few purposes; marketing is
-- mostly denied): multi-column statistics let the planner see that a pair
-- is rare and take its index, instead of scanning backwards for matches that
-- are not there.
CREATE STATISTICS audit_entries_actor_purpose_stats (mcv) ON actor, purpose FROM audit_entries;
CREATE STATISTICS audit_entries_actor_outcome_stats (mcv) ON actor, outcome FROM audit_entries;
CREATE STATISTICS audit_entries_purpose_outcome_stats (mcv) ON purpose, outcome FROM audit_entries;

-- Defence in depth: the broker never updates or deletes log rows. (Someone
-- with owner rights can still disable this; `audit verify` is what catches
-- that.)
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only: % on %', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- Hashes of the perfect subtrees at level >= 8 (256 leaves and up): with the
-- leaf hashes they serve any proof in two reads.
CREATE TABLE audit_nodes (
    level smallint NOT NULL,
    idx   bigint   NOT NULL,
    hash  bytea    NOT NULL,
    PRIMARY KEY (level, idx)
);

-- The tree head: one row. state is the compact range (concatenated 32-byte
-- hashes) from which the sequencer resumes.
CREATE TABLE audit_tree (
    id              boolean     PRIMARY KEY DEFAULT true CHECK (id),
    size            bigint      NOT NULL,
    root            bytea       NOT NULL,
    state           bytea       NOT NULL,
    time_hwm        timestamptz,
    max_lag_us      bigint      NOT NULL DEFAULT 0, -- max over entries of (time_hwm before it - its time)
    checkpoint_size bigint      NOT NULL DEFAULT -1,
    checkpoint_at   timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO audit_tree (size, root, state)
VALUES (0, '\xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', '');

-- Signed checkpoints (C2SP tlog-checkpoint notes), at most about one a second
-- while the log grows.
CREATE TABLE audit_checkpoints (
    size       bigint      PRIMARY KEY,
    root       bytea       NOT NULL,
    note       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Dashboard counters, maintained at integration: entries per hour, actor,
-- purpose and outcome ...
CREATE TABLE audit_counts (
    bucket  timestamptz NOT NULL,
    actor   text        NOT NULL,
    purpose text        NOT NULL,
    outcome text        NOT NULL,
    n       bigint      NOT NULL,
    PRIMARY KEY (bucket, actor, purpose, outcome)
);

-- ... and what was actually released: actor x field x purpose.
CREATE TABLE audit_released (
    actor      text        NOT NULL,
    field      text        NOT NULL,
    purpose    text        NOT NULL,
    n          bigint      NOT NULL,
    first_time timestamptz NOT NULL,
    last_time  timestamptz NOT NULL,
    PRIMARY KEY (actor, field, purpose)
);

-- Pending entries the sequencer could not integrate (a decision id already in
-- the log, or bytes that are not a canonical entry), kept for the operator.
CREATE TABLE audit_rejected (
    id          bigint      NOT NULL,
    decision_id text        NOT NULL,
    entry       bytea       NOT NULL,
    reason      text        NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now()
);
