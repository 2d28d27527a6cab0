package postgres_test

import (
	"testing"

	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/commerce/postgres"
)

// newStore returns the commerce store on a fresh migrated database.
func newStore(t testing.TB) *postgres.Store {
	t.Helper()
	return postgres.New(pgtest.New(t))
}
