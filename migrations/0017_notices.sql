-- Recipient notices (SPEC §5.12, GDPR Art. 19, DPDP §6(6)/§8(7)): when a
-- shopper is erased, withdraws a consent, pauses processing or corrects
-- their data, every partner that received their data gets an event and
-- acknowledges it. A row is the event as sent (its body names only the
-- partner's own pairwise customer_ref and order ids, never a phone or a
-- name) and the acknowledgement, kept as evidence: with an ack key
-- registered, the partner's Ed25519 signature over ack_body.
CREATE TABLE partner_notices (
    seq           bigserial PRIMARY KEY,          -- GET /v1/events cursor order
    id            text NOT NULL UNIQUE,           -- evt_…
    partner_id    text NOT NULL REFERENCES partners (id),
    type          text NOT NULL CHECK (type IN ('subject.erased', 'consent.withdrawn',
                                                'processing.restricted', 'subject.corrected')),
    subject       text NOT NULL,                  -- the audit pseudonym, never the subject id
    body          bytea NOT NULL,                 -- the event as sent, byte for byte
    outbox_ref    text,                           -- the webhook's outbox item; NULL without a webhook
    created_at    timestamptz NOT NULL,
    deadline      timestamptz NOT NULL,
    fetched_at    timestamptz,                    -- first served by GET /v1/events
    acked_at      timestamptz,
    ack_body      bytea,                          -- the canonical ack bytes
    ack_signature bytea,                          -- Ed25519 over ack_body; NULL when unsigned
    overdue_at    timestamptz                     -- when the missed deadline was audited
);
CREATE INDEX partner_notices_partner ON partner_notices (partner_id, seq);
CREATE INDEX partner_notices_subject ON partner_notices (subject);
-- The overdue scan reads only open notices.
CREATE INDEX partner_notices_open ON partner_notices (deadline) WHERE acked_at IS NULL;

-- A partner's Ed25519 public key for acknowledgements (32 bytes): once set,
-- an unsigned acknowledgement is refused.
ALTER TABLE partners ADD COLUMN ack_key bytea CHECK (ack_key IS NULL OR length(ack_key) = 32);

-- Keys per data category (SPEC §5.5): an order's invoice record (items,
-- amounts, date: CGST Act s.36) is sealed apart from its delivery data,
-- under the shopper's invoice key, so an erasure can hold it while the
-- contact and fulfilment keys are shredded. The existing single key per
-- shopper becomes the contact+chat key unchanged (no re-sealing here:
-- SQL cannot decrypt); orders placed before this migration get their
-- invoice record from their fulfilment record when an erasure holds it.
ALTER TABLE orders ADD COLUMN sealed_invoice bytea;

-- Categories held through an erasure, until their legal minimum ends; the
-- sweeper shreds them then (one row per shopper and category).
CREATE TABLE subject_holds (
    subject_id text NOT NULL,
    category   text NOT NULL,                   -- the data key category (invoice)
    basis      text NOT NULL,                   -- the policy data retention category
    held_at    timestamptz NOT NULL,
    hold_until timestamptz NOT NULL,
    PRIMARY KEY (subject_id, category)
);
CREATE INDEX subject_holds_until ON subject_holds (hold_until);

-- The 48-hour warning before an erasure for inactivity (DPDP Rules 2025,
-- Rule 8(2)): one row per warned shopper. A message from the shopper after
-- warned_at cancels it; the sweeper erases only a shopper warned at least
-- the lead time before and silent since.
CREATE TABLE erasure_warnings (
    subject_id  text PRIMARY KEY,
    warned_at   timestamptz NOT NULL,
    erase_after timestamptz NOT NULL
);
