package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
)

func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	// The template already holds every migration: nothing left to apply,
	// even from several goroutines at once (they queue on the advisory lock).
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			applied, err := db.Migrate(ctx)
			if err == nil && len(applied) != 0 {
				err = errors.New("migrations applied twice")
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestInTxRollsBackAndTranslates(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	boom := errors.New("boom")
	err := db.InTx(ctx, func(ctx context.Context) error {
		if _, err := db.Pool.Exec(ctx, "INSERT INTO settings (name, value) VALUES ('a', '1')"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx error = %v, want boom", err)
	}
	// The pool insert above was outside the transaction; check a tx insert rolls back.
	err = db.InTx(ctx, func(ctx context.Context) error {
		tx, _ := postgres.TxFrom(ctx)
		if _, err := tx.Exec(ctx, "INSERT INTO settings (name, value) VALUES ('b', '1')"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	var n int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM settings WHERE name = 'b'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rolled-back row visible: n=%d err=%v", n, err)
	}
	err = db.InTx(ctx, func(ctx context.Context) error {
		tx, _ := postgres.TxFrom(ctx)
		_, err := tx.Exec(ctx, "INSERT INTO settings (name, value) VALUES ('a', '2')")
		return err
	})
	if broker.ErrorCode(err) != broker.EConflict {
		t.Fatalf("duplicate key code = %q, want conflict", broker.ErrorCode(err))
	}
}
