package postgres

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// lockSeed keeps the keys of named locks apart from the per-shopper turn
// locks (hashtextextended(subject, 7)).
const lockSeed = 11

// TryLock takes the session-level advisory lock called name, without
// waiting, on a connection held until release. ok is false when another
// session (another brokerd, or brokerctl) holds it. Background jobs that
// must not run twice at once across processes (key rotation, the retention
// sweep) take it; a process that dies releases it with its connection.
func (db *DB) TryLock(ctx context.Context, name string) (release func(), ok bool, err error) {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return nil, false, Translate(err)
	}
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, $2))`, name, lockSeed).Scan(&got); err != nil {
		conn.Release()
		return nil, false, Translate(err)
	}
	if !got {
		conn.Release()
		return nil, false, nil
	}
	return func() { unlock(conn, name) }, true, nil
}

// unlock releases the lock and the connection; a connection whose unlock
// failed is closed instead of returned, since closing releases the lock.
func unlock(conn *pgxpool.Conn, name string) {
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, $2))`, name, lockSeed); err != nil {
		conn.Conn().PgConn().Close(ctx) //nolint:errcheck // closing is what releases the lock here
	}
	conn.Release()
}
