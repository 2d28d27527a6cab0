-- The rights desk and the breach workbench (SPEC §10, §11).

-- Grievances: a shopper's complaint from the chat. The text is personal data
-- and sealed under the shopper's data key (bound to the row id), so erasure
-- shreds it with everything else; the timers and the outcome are plaintext
-- codes and times, so the desk can list and escalate without unsealing.
CREATE TABLE grievances (
    id              text PRIMARY KEY,               -- grv_…
    subject_id      text NOT NULL,
    store           text NOT NULL DEFAULT '',       -- the business number it came in on
    sealed          bytea,                          -- the complaint text; NULL after erasure
    opened_at       timestamptz NOT NULL,
    ack_due         timestamptz NOT NULL,
    acknowledged_at timestamptz,
    resolve_due     timestamptz NOT NULL,
    escalated_at    timestamptz,
    resolved_at     timestamptz,
    outcome         text,                           -- a code from a fixed list
    resolved_by     text                            -- kind:id of the officer or client
);
CREATE INDEX grievances_open ON grievances (resolve_due) WHERE resolved_at IS NULL;
CREATE INDEX grievances_subject ON grievances (subject_id);

-- Nominations (DPDP §14): the nominee's number only as a blind index and
-- sealed under the shopper's key.
CREATE TABLE nominations (
    id            text PRIMARY KEY,                 -- nom_…
    subject_id    text NOT NULL,
    store         text NOT NULL DEFAULT '',         -- the business number it was made on
    nominee_index bytea NOT NULL,                   -- HMAC(pseudonym key, nominee digits)
    sealed        bytea,                            -- {"wa_id"} of the nominee
    created_at    timestamptz NOT NULL DEFAULT now(),
    confirmed_at  timestamptz,
    event         text,                             -- death | incapacity, recorded by an officer
    event_at      timestamptz,
    event_by      text
);
CREATE INDEX nominations_index ON nominations (nominee_index);
CREATE INDEX nominations_subject ON nominations (subject_id);

-- Breaches: the window and filters of an incident and what the verified
-- audit log says it touched. Subjects are audit pseudonyms, never ids.
CREATE TABLE breaches (
    id            text PRIMARY KEY,                 -- brc_…
    aware_at      timestamptz NOT NULL,             -- the moment of awareness (the 72-hour clock)
    window_from   timestamptz NOT NULL,
    window_to     timestamptz NOT NULL,
    partner_id    text NOT NULL DEFAULT '',
    category      text NOT NULL DEFAULT '',
    summary_code  text NOT NULL,
    opened_by     text NOT NULL,
    log_size      bigint NOT NULL,                  -- the verified log size it was computed from
    affected      integer NOT NULL,
    releases      integer NOT NULL,
    categories    jsonb NOT NULL DEFAULT '[]',
    recipients    jsonb NOT NULL DEFAULT '[]',
    notified_at   timestamptz
);

-- One row per affected shopper (pseudonymous): the notice sent to them.
CREATE TABLE breach_subjects (
    breach_id  text NOT NULL REFERENCES breaches (id),
    pseudonym  text NOT NULL,                       -- the audit pseudonym
    subject_id text,                                -- resolved when notified; NULL if erased
    outbox_ref text,                                -- msg_… of the notice
    status     text NOT NULL DEFAULT 'pending',     -- pending | queued | unreachable
    PRIMARY KEY (breach_id, pseudonym)
);
