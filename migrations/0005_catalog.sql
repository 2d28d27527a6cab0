-- The shop's catalog. Product data is not personal data: it is stored in
-- the clear. Prices are integer paise (INR, offset 100), never floats.
-- Stock is decremented when an order reserves it and restored when the
-- order is cancelled (broker/postgres/catalog.go); the CHECK is the last
-- line of defence against overselling.
CREATE TABLE products (
    sku         text PRIMARY KEY,                                -- e.g. SKU-ATTA-5KG
    name        text NOT NULL,
    price_paise bigint NOT NULL CHECK (price_paise > 0),
    category    text NOT NULL,
    stock       integer NOT NULL CHECK (stock >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The chat lists products by category, then name.
CREATE INDEX products_category ON products (category, name);
