package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/migrations"
)

// DB is the broker's PostgreSQL handle and the base its stores share: the
// pools, transactions carried in the context (InTx, InSavepoint,
// BeforeCommit, AfterCommit), Q and Exec1 for statements that join them,
// error translation, migrations and named locks. Each job is a narrow
// type on it, reached from it: Audit (the audit log's writer), AuditTree
// and AuditReports (its reads), Partners, SubjectKeys and Officers.
// commerce/postgres builds the shop's store on it the same way.
type DB struct {
	Pool *pgxpool.Pool
	// relaxed is a small pool whose sessions commit without waiting for the
	// WAL flush (synchronous_commit = off). It serves only bookkeeping whose
	// loss in a database crash is harmless: a delivery status recorded after
	// a send (the next receipt supersedes it). Outbox leases and sent marks
	// stay synchronous, so a database crash never makes a message go twice.
	relaxed *pgxpool.Pool

	// The audit log's writer, which keeps per-handle state, made on first
	// use (Audit, audit.go).
	auditOnce sync.Once
	auditV    *AuditLog
}

var _ broker.Transactor = (*DB)(nil)

// Options tune the connection pool.
type Options struct {
	MaxConns int32 // 0: pgx's default (max(4, NumCPU))
	AppName  string
}

// Open connects to the database at url. It does not migrate.
func Open(ctx context.Context, url string, opt Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", redact(err))
	}
	if opt.MaxConns > 0 {
		cfg.MaxConns = opt.MaxConns
	}
	if opt.AppName != "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = opt.AppName
	}
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", redact(err))
	}
	rcfg := cfg.Copy()
	rcfg.MaxConns = 4
	rcfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	relaxed, err := pgxpool.NewWithConfig(ctx, rcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect: %w", redact(err))
	}
	return &DB{Pool: pool, relaxed: relaxed}, nil
}

// redact drops the connection string from pgx parse errors, which may hold
// a password.
func redact(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("invalid connection string")
	}
	return err
}

// Close closes the pools.
func (db *DB) Close() {
	db.Pool.Close()
	if db.relaxed != nil {
		db.relaxed.Close()
	}
}

// Bookkeeping returns the caller's transaction, else a pool whose commits
// do not wait for the WAL flush, else the main pool: for writes whose loss
// in a database crash is harmless (see DB.relaxed).
func (db *DB) Bookkeeping(ctx context.Context) Querier {
	if tx, ok := ctx.Value(txKey{}).(pgx.Tx); ok {
		return tx
	}
	if db.relaxed != nil {
		return db.relaxed
	}
	return db.Pool
}

// Ping checks the database answers, for readiness.
func (db *DB) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var one int
	return db.Pool.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// Querier is what both a pool and a transaction can do.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error)
}

type querier = Querier

type txKey struct{}

// q returns the transaction carried by ctx, or the pool.
func (db *DB) q(ctx context.Context) querier { return db.Q(ctx) }

// Q returns the transaction carried by ctx, or the pool: the handle every
// statement of a store runs on, so that it joins the caller's InTx.
func (db *DB) Q(ctx context.Context) Querier {
	if tx, ok := ctx.Value(txKey{}).(pgx.Tx); ok {
		return tx
	}
	return db.Pool
}

// TxFrom returns the transaction carried by ctx, if any.
func TxFrom(ctx context.Context) (pgx.Tx, bool) {
	tx, ok := ctx.Value(txKey{}).(pgx.Tx)
	return tx, ok
}

// InTx runs fn in a transaction. A nested call joins the outer transaction.
// Serialization failures and deadlocks are retried (the whole fn runs
// again), so fn must not have effects outside the database.
func (db *DB) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if _, ok := TxFrom(ctx); ok {
		return fn(ctx)
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		h := &commitHooks{}
		err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			tctx := context.WithValue(context.WithValue(ctx, txKey{}, tx), hooksKey{}, h)
			if err := fn(tctx); err != nil {
				return err
			}
			return h.run(tctx)
		})
		if err == nil {
			for _, fn := range h.after {
				fn()
			}
			return nil
		}
		if !retryable(err) {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
	return Translate(err)
}

// commitHooks is the work a transaction begun by InTx does just before
// its COMMIT, in the order it was asked for (see BeforeCommit).
type commitHooks struct {
	keys   []any
	states []any
	runs   []func(ctx context.Context, state any) error
	after  []func() // once committed (see AfterCommit)
}

type hooksKey struct{}

func (h *commitHooks) run(ctx context.Context) error {
	for i, run := range h.runs {
		if err := run(ctx, h.states[i]); err != nil {
			return err
		}
	}
	return nil
}

// BeforeCommit returns the state kept under key by the transaction of ctx,
// making it with mk on the first call and arranging for run(ctx, state) to
// be called once just before COMMIT. It returns nil when ctx carries no
// transaction begun by InTx, or is inside a savepoint: the caller must then
// do its work at once. A store uses it to hold hot rows locked for only the
// end of a transaction (commerce's stock reservations).
func BeforeCommit(ctx context.Context, key any, mk func() any, run func(ctx context.Context, state any) error) any {
	h, _ := ctx.Value(hooksKey{}).(*commitHooks)
	if h == nil {
		return nil
	}
	for i, k := range h.keys {
		if k == key {
			return h.states[i]
		}
	}
	st := mk()
	h.keys = append(h.keys, key)
	h.states = append(h.states, st)
	h.runs = append(h.runs, run)
	return st
}

// AfterCommit arranges for fn to run once the transaction of ctx, begun by
// InTx, has committed (never if it rolls back or is retried: a retry runs
// its own fn again). It reports false, and does nothing, outside such a
// transaction or inside a savepoint. fn must be quick and must not touch
// the database: the Sealer uses it to share a data key a transaction
// created with everyone from its commit on.
func (db *DB) AfterCommit(ctx context.Context, fn func()) bool {
	h, _ := ctx.Value(hooksKey{}).(*commitHooks)
	if h == nil {
		return false
	}
	h.after = append(h.after, fn)
	return true
}

// InSavepoint runs fn in a savepoint of the transaction carried by ctx, so
// that a failing statement in fn does not abort the whole transaction.
func (db *DB) InSavepoint(ctx context.Context, fn func(ctx context.Context) error) error {
	tx, ok := TxFrom(ctx)
	if !ok {
		return db.InTx(ctx, fn)
	}
	// Within a savepoint no work is left for COMMIT (BeforeCommit): a
	// caller that rolls a savepoint back on failure must see a failure
	// where it happens.
	return Translate(pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
		return fn(context.WithValue(context.WithValue(ctx, txKey{}, sp), hooksKey{}, (*commitHooks)(nil)))
	}))
}

// Exec1 runs a statement that must change a row: ENotFound when it
// changed none.
func (db *DB) Exec1(ctx context.Context, sql string, args ...any) error {
	tag, err := db.q(ctx).Exec(ctx, sql, args...)
	if err != nil {
		return Translate(err)
	}
	if tag.RowsAffected() == 0 {
		return broker.ErrNotFound
	}
	return nil
}

func (db *DB) exec1(ctx context.Context, sql string, args ...any) error {
	return db.Exec1(ctx, sql, args...)
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// Translate maps database errors to broker errors by SQLSTATE. Errors that
// are already *broker.Error pass through; nil stays nil.
func Translate(err error) error {
	if err == nil {
		return nil
	}
	var be *broker.Error
	if errors.As(err, &be) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return broker.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505": // unique_violation
			return broker.Wrap(broker.EConflict, err, "already exists")
		// Citus relays a worker's unique violation in the rows an INSERT …
		// SELECT copies to the shards as internal_error, with the worker's
		// message (shopper creation racing on a blind index, on Citus).
		case pe.Code == "XX000" && strings.HasPrefix(pe.Message, "duplicate key value violates unique constraint"):
			return broker.Wrap(broker.EConflict, err, "already exists")
		// 22021: text with a NUL or invalid UTF-8, which no stored value
		// holds; it comes from the caller's input.
		case pe.Code == "23503" || pe.Code == "23514" || pe.Code == "22001" || pe.Code == "22P02" || pe.Code == "22021":
			return broker.Wrap(broker.EInvalid, err, "invalid value")
		case strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" ||
			pe.Code == "57P03" || pe.Code == "53300":
			return broker.Wrap(broker.EUnavailable, err, "database unavailable")
		// Citus reports a worker lost in the middle of a transaction as
		// internal_error (io_error for a COPY to a shard) with one of these
		// fixed texts (TestCitusWorkerOutage).
		case (pe.Code == "XX000" || pe.Code == "58030") && citusNodeLost(pe.Message):
			return broker.Wrap(broker.EUnavailable, err, "database unavailable")
		}
		return err
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) || isConnErr(err) {
		return broker.Wrap(broker.EUnavailable, err, "database unavailable")
	}
	return err
}

// citusNodeLost recognises Citus's messages for a worker it lost.
func citusNodeLost(msg string) bool {
	for _, p := range []string{"failure on connection marked as essential", "connection to the remote node",
		"could not establish any connections to the node", "connection not open", "failed to COPY to shard"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func isConnErr(err error) bool {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var nerr interface{ Timeout() bool }
	if errors.As(err, &nerr) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "closed pool") ||
		strings.Contains(msg, "conn closed") || strings.Contains(msg, "broken pipe") ||
		strings.Contains(msg, "unexpected EOF")
}

// migrationLock is the advisory lock key held while migrating, so that
// several processes starting together apply each migration once.
const migrationLock = 0x5349455645 // "SIEVE"

// Migrate applies the embedded migrations not yet applied, in order, each
// in its own transaction, under a session advisory lock. It returns the
// names it applied.
func (db *DB) Migrate(ctx context.Context) ([]string, error) {
	return MigrateFS(ctx, db.Pool, migrations.FS)
}

// MigrateFS applies the .sql files of fsys to the database behind pool.
func MigrateFS(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS) ([]string, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, Translate(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return nil, Translate(err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLock) //nolint:errcheck
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, Translate(err)
	}
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var applied []string
	for _, name := range names {
		var done bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = $1)", name).Scan(&done); err != nil {
			return applied, Translate(err)
		}
		if done {
			continue
		}
		sql, err := fs.ReadFile(fsys, name)
		if err != nil {
			return applied, err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return fmt.Errorf("migration %s: %w", name, err)
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (name) VALUES ($1)", name)
			return err
		})
		if err != nil {
			return applied, err
		}
		applied = append(applied, name)
	}
	return applied, nil
}
