package postgres_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
)

// Translate by SQLSTATE, and Citus's internal_error by its fixed texts
// only: any other XX000 stays an internal error.
func TestTranslateServerErrors(t *testing.T) {
	for _, tc := range []struct {
		code, msg string
		want      string
	}{
		{"23505", "duplicate key value violates unique constraint \"x\"", broker.EConflict},
		{"XX000", "duplicate key value violates unique constraint \"subject_identifiers_pkey\"", broker.EConflict},
		{"08006", "connection to the remote node postgres@127.0.0.1:61790 failed", broker.EUnavailable},
		{"57P03", "the database system is starting up", broker.EUnavailable},
		{"XX000", "failure on connection marked as essential: 127.0.0.1:61790", broker.EUnavailable},
		{"XX000", "connection not open", broker.EUnavailable},
		{"XX000", "could not establish any connections to the node 127.0.0.1:61790 after 5000 ms", broker.EUnavailable},
		{"58030", "failed to COPY to shard 102033 on 127.0.0.1:61790", broker.EUnavailable},
		{"58030", "could not read block 7 in file \"base/1/2\"", broker.EInternal},
		{"XX000", "cache lookup failed for type 0", broker.EInternal},
		{"22P02", "invalid input syntax for type uuid", broker.EInvalid},
	} {
		err := postgres.Translate(&pgconn.PgError{Code: tc.code, Message: tc.msg})
		if got := broker.ErrorCode(err); got != tc.want {
			t.Errorf("%s %q: %s, want %s", tc.code, tc.msg, got, tc.want)
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			t.Errorf("%s: the server error is not kept for the logs", tc.code)
		}
	}
}
