package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/commerce/postgres"
)

// The hot statements of one shopper are router queries on Citus: one task,
// on the worker holding the shopper's shard (docs/scaling.md).
func TestCitusHotQueriesAreRouterQueries(t *testing.T) {
	pgtest.RequireCitus(t)
	db := pgtest.New(t)
	ctx := context.Background()
	for name, q := range postgres.RouterQueries {
		t.Run(name, func(t *testing.T) {
			rows, err := db.Pool.Query(ctx, "EXPLAIN "+q.SQL, q.Args("shp_router", []byte("blind-index"))...)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, line)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			text := strings.Join(plan, "\n")
			if !strings.Contains(text, "Citus Adaptive") || !strings.Contains(text, "Task Count: 1\n") {
				t.Errorf("not a router query:\n%s", text)
			}
		})
	}
	// And the check can fail: a statement over every shopper fans out.
	var plan []string
	rows, err := db.Pool.Query(ctx, "EXPLAIN SELECT count(*) FROM inbox WHERE processed_at IS NULL")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		rows.Scan(&line) //nolint:errcheck
		plan = append(plan, line)
	}
	if text := strings.Join(plan, "\n"); strings.Contains(text, "Task Count: 1\n") {
		t.Errorf("a scan of every shard planned as one task:\n%s", text)
	}
}
