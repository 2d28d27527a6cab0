package postgres_test

import (
	"context"
	"slices"
	"testing"

	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
)

// The layout of migration 0022 on a Citus cluster (SPEC §12): every
// shopper table distributed by the shopper and co-located with subjects,
// the lookups distributed by their key, the shared tables replicated, and
// the audit log on the coordinator. make test runs this on scripts/citus.sh's
// cluster (SIEVE_REQUIRE_CITUS), where it cannot skip.
func TestCitusLayout(t *testing.T) {
	pgtest.RequireCitus(t)
	db := pgtest.New(t)
	ctx := context.Background()
	rows, err := db.Pool.Query(ctx, `SELECT table_name::text, citus_table_type, distribution_column, colocation_id
		FROM citus_tables`)
	if err != nil {
		t.Fatal(err)
	}
	type layout struct {
		kind, column string
		group        int
	}
	got := map[string]layout{}
	for rows.Next() {
		var name string
		var l layout
		if err := rows.Scan(&name, &l.kind, &l.column, &l.group); err != nil {
			t.Fatal(err)
		}
		got[name] = l
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	subjects, ok := got["subjects"]
	if !ok || subjects.kind != "distributed" || subjects.column != "id" {
		t.Fatalf("subjects: %+v, want distributed by id", subjects)
	}
	for _, table := range []string{"orders", "inbox", "consent_artefacts", "guardians", "erasure_warnings"} {
		if l := got[table]; l.kind != "distributed" || l.column != "subject_id" || l.group != subjects.group {
			t.Errorf("%s: %+v, want distributed by subject_id in subjects' colocation group %d", table, l, subjects.group)
		}
	}
	for table, col := range map[string]string{"subject_identifiers": "blind_index", "partner_refs": "ref", "order_index": "order_id"} {
		if l := got[table]; l.kind != "distributed" || l.column != col {
			t.Errorf("%s: %+v, want distributed by %s", table, l, col)
		}
	}
	for _, table := range []string{"settings", "partners", "products", "store_stock", "officers", "officer_sessions", "app_upgrades"} {
		if l := got[table]; l.kind != "reference" {
			t.Errorf("%s: %+v, want a reference table", table, l)
		}
	}
	// The audit log is one ordinary table on the coordinator: one copy,
	// one total order, outside Citus's query restrictions.
	coordinatorOnly := []string{"audit_pending", "audit_log", "audit_nodes", "audit_tree", "audit_checkpoints",
		"audit_cosignatures", "audit_counts", "audit_released", "audit_rejected", "officer_login_failures"}
	for _, table := range coordinatorOnly {
		if l, ok := got[table]; ok {
			t.Errorf("%s: %+v, want an ordinary coordinator table", table, l)
		}
	}
	// Every other table is known to Citus: one left out would be an
	// ordinary coordinator table no distributed query can join.
	tables, err := db.Pool.Query(ctx, `SELECT relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE nspname = 'public' AND relkind = 'r' AND relname <> 'schema_migrations'`)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for tables.Next() {
		var name string
		if err := tables.Scan(&name); err != nil {
			t.Fatal(err)
		}
		if _, ok := got[name]; !ok && !slices.Contains(coordinatorOnly, name) {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("tables not laid out by sieve_citus_layout(): %v", missing)
	}
}
