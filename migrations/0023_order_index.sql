-- An order's shopper by the order's id (SPEC §12, docs/scaling.md).
--
-- Partners name an order by its id alone, but on a Citus cluster orders are
-- distributed by the shopper: "orders WHERE id = $1" asks every shard. This
-- lookup table, distributed by the order id, answers in one shard which
-- shopper the order belongs to, and the order is then read on that
-- shopper's shard: two router queries instead of a fan-out. It is the same
-- answer the blind indexes (subject_identifiers) and partner references
-- (partner_refs) give for their keys. The row holds two random ids, no
-- personal data; orders are never deleted (erasure shreds them in place),
-- so neither are these rows.
--
-- On plain PostgreSQL the table is kept too (one more insert per order) so
-- that both engines run one schema; the reads there stay one statement.

CREATE TABLE order_index (
    order_id   text PRIMARY KEY,
    subject_id text NOT NULL
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        PERFORM create_distributed_table('order_index', 'order_id', colocate_with => 'none');
    END IF;
END
$$;

INSERT INTO order_index (order_id, subject_id) SELECT id, subject_id FROM orders;
