-- Shoppers (data subjects). No plaintext identifier is stored: wa_index is a
-- keyed blind index of the WhatsApp id; the id itself and the profile name
-- are sealed under the shopper's own data key (subject_keys).
CREATE TABLE subjects (
    id                 text PRIMARY KEY,            -- shp_…
    wa_index           bytea UNIQUE,                -- HMAC(pseudonym key, wa id); NULL after erasure
    sealed_identity    bytea,                       -- {"wa_id","name","bsuid"} sealed; NULL after erasure
    consent_notice     boolean NOT NULL DEFAULT false,
    consent_marketing  boolean NOT NULL DEFAULT false,
    consent_analytics  boolean NOT NULL DEFAULT false,
    consent_updated_at timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    last_inbound_at    timestamptz,                 -- opens the 24-hour customer service window
    last_interaction_at timestamptz NOT NULL DEFAULT now(),
    erased_at          timestamptz
);

-- Per-shopper data keys, wrapped with age. Deleting a row crypto-shreds
-- every record sealed under it.
CREATE TABLE subject_keys (
    subject_id text PRIMARY KEY,
    key_id     text NOT NULL,                       -- which age identity can unwrap it
    wrapped    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    rewrapped_at timestamptz
);
CREATE INDEX subject_keys_key_id ON subject_keys (key_id, subject_id);

-- Broker-wide settings and small state (policy revision seen, etc.).
CREATE TABLE settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);
