-- The schema on a Citus cluster (SPEC §12, docs/scaling.md). On plain
-- PostgreSQL this migration only adds the function and two unique indexes
-- that hold there anyway; where the citus extension is installed (DATABASE_URL
-- is a Citus coordinator) it lays the tables out over the cluster:
--
--   distributed by the shopper, co-located with subjects (one shard holds a
--   shopper's rows of all of them, so a shopper's statements are router
--   queries and a transaction over one shopper stays on one worker):
--     subjects (id), orders, inbox, consent_artefacts, guardians, erasure_warnings
--   lookup tables distributed by their own key (a lookup by the key is a
--   router query; the shopper is found there, then the shopper's shard):
--     subject_identifiers (blind_index), partner_refs (ref)
--   reference tables (small, read-mostly, on every node):
--     settings, partners, products, store_stock, officers, officer_sessions,
--     officer_login_failures, app_upgrades
--   on the coordinator as ordinary tables Citus does not manage: the audit
--   log and its tree, checkpoints, cosignatures, pending entries and
--   counters (one copy, one total order, written under the coordinator's
--   advisory locks; no query joins them with a distributed table, and as
--   ordinary tables they keep PostgreSQL's full semantics: their triggers,
--   their error codes, any function in an UPDATE), and officer_login_failures
--   (its upsert computes a window with a STABLE operator, which Citus refuses
--   in an upsert on a replicated table);
--   on the coordinator as Citus local tables (in Citus's metadata, so that
--   they can reference reference tables and join distributed ones): for now,
--   the tables whose sweeps lease rows with FOR
--   UPDATE [SKIP LOCKED] across shoppers, which Citus runs only on one shard
--   (sessions, outbox, message_status, subject_keys, subject_holds), the officer desk and partner notices, and offers.
--
-- Citus requires every unique constraint of a distributed table to contain
-- its distribution column: the keys below become (subject_id, …). The
-- inbox's deduplication key is unique per shopper: a redelivery names the
-- same sender, hence the same shopper, so (subject_id, dedup_key) rejects
-- exactly the duplicates dedup_key did; the insert's ON CONFLICT names the
-- pair on both engines (the index added here).
--
-- Foreign keys Citus cannot keep (from a coordinator table to a distributed
-- one, or between tables distributed differently) are dropped on Citus only;
-- erasure deletes those rows explicitly (broker/postgres/rights.go), which is
-- what the cascades did.
--
-- sieve_citus_layout() is idempotent: a later migration that adds a table
-- lays it out and calls it again.

CREATE UNIQUE INDEX IF NOT EXISTS inbox_subject_dedup ON inbox (subject_id, dedup_key);

CREATE OR REPLACE FUNCTION sieve_citus_layout() RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    t text;
    fk record;
    fks text[] := '{}';
    shopper text[] := ARRAY['orders', 'inbox', 'consent_artefacts', 'guardians', 'erasure_warnings'];
    reference text[] := ARRAY['settings', 'partners', 'products', 'app_upgrades', 'officers',
                              'store_stock', 'officer_sessions'];
    coordinator text[] := ARRAY['sessions', 'outbox',
                                'message_status', 'subject_keys', 'subject_holds',
                                'partner_notices', 'offers', 'grievances', 'nominations',
                                'breaches', 'breach_subjects'];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    -- DDL over shards of tables joined by foreign keys, in one transaction:
    -- one connection per worker, or Citus refuses the later statements.
    PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    -- And in every transaction of the broker: a transaction that read
    -- several shards in parallel may not then write a reference table with
    -- foreign keys (the stock of products after reading an order by id), so
    -- each transaction uses one connection per worker. (A database copied
    -- from this one as a template does not inherit it: scripts/citus.sh
    -- sets it for the whole test cluster.)
    EXECUTE format('ALTER DATABASE %I SET citus.multi_shard_modify_mode TO sequential', current_database());

    -- Foreign keys Citus cannot keep.
    ALTER TABLE sessions DROP CONSTRAINT IF EXISTS sessions_subject_id_fkey;
    ALTER TABLE subject_identifiers DROP CONSTRAINT IF EXISTS subject_identifiers_subject_id_fkey;
    ALTER TABLE offers DROP CONSTRAINT IF EXISTS offers_order_id_fkey;

    -- Unique keys of shopper tables gain the shopper.
    IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'subjects'::regclass) THEN
        ALTER TABLE subjects DROP CONSTRAINT IF EXISTS subjects_wa_index_key; -- always NULL since 0019
        ALTER TABLE orders DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (subject_id, id),
            DROP CONSTRAINT orders_reference_id_key, ADD UNIQUE (subject_id, reference_id);
        ALTER TABLE inbox DROP CONSTRAINT inbox_pkey, ADD PRIMARY KEY (subject_id, id),
            DROP CONSTRAINT inbox_dedup_key_key;
        ALTER TABLE consent_artefacts DROP CONSTRAINT consent_artefacts_pkey, ADD PRIMARY KEY (subject_id, id);
        ALTER TABLE guardians DROP CONSTRAINT guardians_pkey, ADD PRIMARY KEY (subject_id, id);
    END IF;

    -- A reference table referenced by a coordinator table would pull that
    -- table (and what it references) onto the coordinator: the foreign keys
    -- among the reference tables are dropped and added back once all of them
    -- are reference tables.
    FOR fk IN SELECT conrelid::regclass AS tbl, conname, pg_get_constraintdef(oid) AS def
              FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text = ANY (reference)
                AND NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = conrelid) LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.tbl, fk.conname);
        fks := fks || format('ALTER TABLE %s ADD CONSTRAINT %I %s', fk.tbl, fk.conname, fk.def);
    END LOOP;
    FOREACH t IN ARRAY reference LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = t::regclass) THEN
            PERFORM create_reference_table(t);
        END IF;
    END LOOP;

    FOREACH t IN ARRAY fks LOOP
        EXECUTE t;
    END LOOP;

    IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'subjects'::regclass) THEN
        PERFORM create_distributed_table('subjects', 'id');
    END IF;
    FOREACH t IN ARRAY shopper LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = t::regclass) THEN
            PERFORM create_distributed_table(t, 'subject_id', colocate_with => 'subjects');
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'subject_identifiers'::regclass) THEN
        PERFORM create_distributed_table('subject_identifiers', 'blind_index', colocate_with => 'none');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'partner_refs'::regclass) THEN
        ALTER TABLE partner_refs DROP CONSTRAINT partner_refs_pkey, ADD PRIMARY KEY (ref, partner_id);
        PERFORM create_distributed_table('partner_refs', 'ref', colocate_with => 'none');
    END IF;

    -- The rest stays on the coordinator, in Citus's metadata so that it can
    -- be joined with distributed and reference tables.
    FOREACH t IN ARRAY coordinator LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = t::regclass) THEN
            PERFORM citus_add_local_table_to_metadata(t, cascade_via_foreign_keys => true);
        END IF;
    END LOOP;
END
$fn$;

SELECT sieve_citus_layout();
