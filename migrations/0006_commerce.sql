-- Inbound webhook events, durable before the 200. Each message or status of
-- a notification is one row, sealed under its shopper's data key, and
-- deduplicated by its wire id (Meta redelivers for up to 7 days).
CREATE TABLE inbox (
    id           bigserial PRIMARY KEY,
    dedup_key    text NOT NULL UNIQUE,          -- "m:<wamid>", "s:<id>:<status>", "p:<id>:<status>:<txn>"
    subject_id   text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('message', 'status', 'payment')),
    store        text NOT NULL,                 -- business phone-number id
    received_at  timestamptz NOT NULL DEFAULT now(),
    sealed       bytea NOT NULL,
    processed_at timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text
);
CREATE INDEX inbox_pending ON inbox (subject_id, id) WHERE processed_at IS NULL;
CREATE INDEX inbox_processed ON inbox (processed_at) WHERE processed_at IS NOT NULL;

-- One conversation per shopper; the session (cart, address…) is sealed.
CREATE TABLE sessions (
    subject_id text PRIMARY KEY REFERENCES subjects (id) ON DELETE CASCADE,
    store      text NOT NULL,
    state      text NOT NULL,
    sealed     bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id             text PRIMARY KEY,            -- ord_…
    subject_id     text NOT NULL,
    store          text NOT NULL,
    retailer_id    text,
    status         text NOT NULL,
    payment_status text NOT NULL,
    reference_id   text NOT NULL UNIQUE,
    subtotal       bigint NOT NULL,
    tax            bigint NOT NULL,
    shipping       bigint NOT NULL,
    total          bigint NOT NULL CHECK (total >= 0),
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    placed_at      timestamptz,
    sealed         bytea,                       -- lines, address, slot; NULL after erasure
    erased_at      timestamptz
);
CREATE INDEX orders_retailer ON orders (retailer_id, created_at DESC, id DESC) WHERE erased_at IS NULL;
CREATE INDEX orders_subject ON orders (subject_id);

-- Durable outbox for messages to shoppers (kind whatsapp) and webhooks to
-- partners (kind partner). Payloads are sealed: under the shopper's key, or
-- under the broker's vault for the last words to an erased shopper.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    ref             text NOT NULL UNIQUE,          -- msg_…: what the sealed payload is bound to
    kind            text NOT NULL CHECK (kind IN ('whatsapp', 'partner')),
    subject_id      text,
    partner_id      text,
    vault_sealed    boolean NOT NULL DEFAULT false,
    sealed          bytea,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    provider_id     text,                       -- the wamid the Send API returned
    last_error      text                        -- a code and reason, never personal data
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX outbox_subject ON outbox (subject_id) WHERE status = 'pending';

-- Delivery status of messages sent, applied monotonically.
CREATE TABLE message_status (
    provider_id text PRIMARY KEY,
    subject_id  text,
    status      text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    error_code  integer
);

-- Which partner got which pairwise pseudonym: a partner names a shopper only
-- by its own customer_ref, so data requests resolve it here.
CREATE TABLE partner_refs (
    partner_id text NOT NULL,
    ref        text NOT NULL,
    subject_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, ref)
);
CREATE INDEX partner_refs_subject ON partner_refs (subject_id);
