package postgres_test

import (
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
	for name, q := range postgres.RouterQueries {
		t.Run(name, func(t *testing.T) {
			text := explain(t, db.Pool, q.SQL, q.Args("shp_router", []byte("blind-index"))...)
			if !strings.Contains(text, "Citus Adaptive") || !strings.Contains(text, "Task Count: 1\n") {
				t.Errorf("not a router query:\n%s", text)
			}
		})
	}
	// And the check can fail: a statement over every shopper fans out.
	if text := explain(t, db.Pool, "SELECT count(*) FROM inbox WHERE processed_at IS NULL"); strings.Contains(text, "Task Count: 1\n") {
		t.Errorf("a scan of every shard planned as one task:\n%s", text)
	}
}
