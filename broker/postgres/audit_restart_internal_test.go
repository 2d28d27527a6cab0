package postgres

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunRestarting(t *testing.T) {
	t.Run("restarts when the version changes", func(t *testing.T) {
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		var mu sync.Mutex
		version := "k1"
		var starts atomic.Int32
		started := make(chan string, 10)
		run := func(ctx context.Context) error {
			starts.Add(1)
			mu.Lock()
			started <- version
			mu.Unlock()
			<-ctx.Done()
			return ctx.Err()
		}
		ver := func() string { mu.Lock(); defer mu.Unlock(); return version }
		res := make(chan error, 1)
		go func() { res <- runRestarting(ctx, run, ver, time.Millisecond) }()
		if v := <-started; v != "k1" {
			t.Fatalf("first run with %q", v)
		}
		mu.Lock()
		version = "k2"
		mu.Unlock()
		select {
		case v := <-started:
			if v != "k2" {
				t.Fatalf("restarted with %q, want k2", v)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("not restarted after the version changed")
		}
		time.Sleep(20 * time.Millisecond) // several ticks, no change: no restart
		if n := starts.Load(); n != 2 {
			t.Fatalf("%d runs, want 2", n)
		}
		stop()
		if err := <-res; err != nil {
			t.Fatalf("after ctx ended: %v, want nil", err)
		}
	})
	t.Run("a run that fails ends it with its error", func(t *testing.T) {
		boom := errors.New("boom")
		err := runRestarting(context.Background(), func(context.Context) error { return boom },
			func() string { return "k" }, time.Hour)
		if !errors.Is(err, boom) {
			t.Fatalf("got %v, want %v", err, boom)
		}
	})
	t.Run("an ended context runs nothing", func(t *testing.T) {
		ctx, stop := context.WithCancel(context.Background())
		stop()
		ran := false
		err := runRestarting(ctx, func(context.Context) error { ran = true; return nil }, func() string { return "" }, time.Hour)
		if err != nil || ran {
			t.Fatalf("ran=%v err=%v, want nothing run", ran, err)
		}
	})
}
