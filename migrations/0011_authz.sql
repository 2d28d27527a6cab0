-- Who may see what (issue 16, items 2 and 5).
--
-- Compliance clients: the only partner kind that may hold audit:read and
-- subjects:write (the scopes are checked in Go at create, token issue and
-- authentication; a legacy row of another kind keeps its scopes in the
-- table but they grant nothing).
ALTER TABLE partners DROP CONSTRAINT IF EXISTS partners_kind_check;
ALTER TABLE partners ADD CONSTRAINT partners_kind_check
    CHECK (kind IN ('retailer', 'logistics', 'payments', 'analytics', 'compliance'));

-- A store's default courier: the logistics partner its orders are bound to
-- when they go out for delivery without an explicit dispatch.
ALTER TABLE partners ADD COLUMN default_courier text REFERENCES partners (id);
ALTER TABLE partners ADD CONSTRAINT partners_default_courier_retailer_only
    CHECK (default_courier IS NULL OR kind = 'retailer');

-- The logistics partner an order is dispatched to (POST
-- /v1/orders/{id}/dispatch, or the retailer's default courier): the only
-- partner that gets its delivery view, its relay and delivery data
-- requests. NULL: nobody. Orders already out for delivery when this runs
-- stay unbound, so no courier keeps a view it was never given explicitly.
ALTER TABLE orders ADD COLUMN logistics_id text;
CREATE INDEX orders_logistics ON orders (subject_id, logistics_id)
    WHERE logistics_id IS NOT NULL AND status = 'out_for_delivery';
