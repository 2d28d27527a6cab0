package commerce_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/policies"
)

// lockCounter is a retention store whose lock is always held elsewhere (or
// always fails), so each sweep stops at the lock: enough to count sweeps
// without a database. Every other method is left nil (never reached).
type lockCounter struct {
	commerce.RetentionStore
	tries atomic.Int32
	err   error
}

func (s *lockCounter) TryLock(context.Context, string) (func(), bool, error) {
	s.tries.Add(1)
	return nil, false, s.err
}

func TestRetentionRun(t *testing.T) {
	e, err := policies.Default(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{name: "lock held elsewhere: every sweep skips"},
		{name: "failing sweeps do not stop the loop", err: errors.New("database away")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &lockCounter{err: tc.err}
			r, err := commerce.NewRetention(store, noErase, e.Data().RetentionPeriods(), 0)
			if err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx, time.Millisecond, time.Millisecond, slog.New(slog.DiscardHandler)) }()
			deadline := time.Now().Add(5 * time.Second)
			for store.tries.Load() < 3 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			stop()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v, want nil once ctx ended", err)
			}
			if n := store.tries.Load(); n < 3 {
				t.Fatalf("%d sweeps in 5s, want at least 3", n)
			}
		})
	}
	t.Run("nothing before the first delay", func(t *testing.T) {
		store := &lockCounter{}
		r, err := commerce.NewRetention(store, noErase, e.Data().RetentionPeriods(), 0)
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer stop()
		if err := r.Run(ctx, time.Hour, time.Millisecond, nil); err != nil {
			t.Fatal(err)
		}
		if n := store.tries.Load(); n != 0 {
			t.Fatalf("%d sweeps before the first delay, want 0", n)
		}
	})
}
