-- The kirana marketplace (SPEC §2, §5.10, §9): a legal registry of
-- partners, stores with service areas and their own stock, and the offers
-- routing makes to candidate stores.

-- The legal registry. Existing partners keep role NULL ("legacy"): the
-- broker treats them as controllers, which is how every deployment ran
-- until now (a retailer decided its own fulfilment and signed nothing with
-- the broker). Calling them processors instead would deny them every
-- release at once (no agreement on file) and stop live shops; the operator
-- records the real role with `partner update --role`, and `partner list`
-- and the Art. 30 record show "legacy" until then. A NULL jurisdiction is
-- the store's own (no transfer).
ALTER TABLE partners
    ADD COLUMN role text CHECK (role IN ('processor', 'controller', 'joint_controller')),
    ADD COLUMN agreement_ref text CHECK (agreement_ref <> '' AND length(agreement_ref) <= 200),
    ADD COLUMN agreement_expires date,
    ADD COLUMN jurisdiction text CHECK (jurisdiction ~ '^[A-Z]{2}$'),
    ADD COLUMN transfer_basis text CHECK (transfer_basis IN ('adequacy', 'scc', 'bcr', 'consent', 'none')),
    -- Service areas (retailers only): postal codes served, and/or a
    -- location with a radius.
    ADD COLUMN serves text[] NOT NULL DEFAULT '{}',
    ADD COLUMN lat double precision CHECK (lat BETWEEN -90 AND 90),
    ADD COLUMN lon double precision CHECK (lon BETWEEN -180 AND 180),
    ADD COLUMN radius_km double precision CHECK (radius_km > 0 AND radius_km <= 100),
    ADD COLUMN self_delivery boolean NOT NULL DEFAULT false,
    ADD COLUMN auto_accept boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT partners_location_pair CHECK ((lat IS NULL) = (lon IS NULL)),
    ADD CONSTRAINT partners_area_retailer_only CHECK (kind = 'retailer' OR
        (serves = '{}' AND lat IS NULL AND radius_km IS NULL AND NOT self_delivery AND NOT auto_accept));

-- Stores with a service area, for routing's candidate query.
CREATE INDEX partners_areas ON partners (seq)
    WHERE kind = 'retailer' AND NOT disabled AND (serves <> '{}' OR radius_km IS NOT NULL);

-- The shopper's jurisdiction (ISO 3166-1 alpha-2), from the phone's country
-- code when the identity is first stored; NULL for shoppers known before
-- (the store's jurisdiction applies) and for username-only shoppers.
ALTER TABLE subjects ADD COLUMN jurisdiction text CHECK (jurisdiction ~ '^[A-Z]{2}$');

-- Stock per store: a store with a service area sells from its own shelf,
-- not the catalog's one global count.
CREATE TABLE store_stock (
    partner_id text NOT NULL REFERENCES partners (id),
    sku        text NOT NULL REFERENCES products (sku),
    stock      integer NOT NULL CHECK (stock >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, sku)
);

-- Offers: an order offered to one candidate store at a time. The order row
-- is the lock: accepting is a conditional UPDATE of the offer joined to
-- the order's status 'routing', so exactly one acceptance wins.
CREATE TABLE offers (
    id          text PRIMARY KEY,                   -- off_…
    order_id    text NOT NULL REFERENCES orders (id),
    partner_id  text NOT NULL REFERENCES partners (id),
    rank        integer NOT NULL,                   -- 0 = nearest
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'open', 'accepted', 'declined', 'expired', 'withdrawn')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    offered_at  timestamptz,
    expires_at  timestamptz,
    decided_at  timestamptz,
    UNIQUE (order_id, partner_id)
);
CREATE INDEX offers_open ON offers (partner_id, expires_at) WHERE status = 'open';
CREATE INDEX offers_order ON offers (order_id, rank);
CREATE INDEX offers_due ON offers (expires_at) WHERE status = 'open';
