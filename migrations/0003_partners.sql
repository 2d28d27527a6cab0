-- Partner platforms (OAuth2 clients). The client secret is kept twice, for
-- two uses: secret_hash (argon2id, PHC string) authenticates token requests;
-- sealed_secret (sealed through the broker's vault) is opened only to sign
-- the webhooks pushed to the partner, since an HMAC needs the secret itself.
CREATE TABLE partners (
    seq           bigserial UNIQUE,                -- creation order: "the first retailer"
    id            text PRIMARY KEY,                -- client id, cli_…
    name          text NOT NULL CHECK (name <> ''),
    kind          text NOT NULL CHECK (kind IN ('retailer', 'logistics', 'payments', 'analytics')),
    scopes        text[] NOT NULL,
    store         text CHECK (store <> ''),        -- WhatsApp phone-number id; NULL for none
    webhook_url   text CHECK (webhook_url <> ''),
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    secret_hash   text NOT NULL,
    sealed_secret bytea,
    -- Only a retailer receives a store's orders.
    CONSTRAINT partners_store_retailer_only CHECK (store IS NULL OR kind = 'retailer')
);

-- One enabled retailer per store, so which retailer receives a store's
-- orders is never ambiguous; a disabled one may be replaced.
CREATE UNIQUE INDEX partners_store_retailer ON partners (store)
    WHERE kind = 'retailer' AND NOT disabled AND store IS NOT NULL;

-- RetailerForStore's fallback: the first enabled retailer.
CREATE INDEX partners_retailer_seq ON partners (seq)
    WHERE kind = 'retailer' AND NOT disabled;
