package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
)

// The group committer without a database: batches, results in order,
// failures, withdrawal on cancel, and Drain.
func TestGroupCommit(t *testing.T) {
	t.Run("concurrent requests share batches, each gets its own result", func(t *testing.T) {
		release := make(chan struct{})
		var mu sync.Mutex
		var sizes []int
		g := &postgres.GroupCommit[int, int]{MaxFlushers: 1, MaxBatch: 100, Size: func(int) int { return 1 },
			Write: func(in []int) ([]int, error) {
				<-release
				mu.Lock()
				sizes = append(sizes, len(in))
				mu.Unlock()
				out := make([]int, len(in))
				for i, v := range in {
					out[i] = v * 10
				}
				return out, nil
			}}
		var wg sync.WaitGroup
		got := make([]int, 50)
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := g.Do(context.Background(), i, "test write")
				if err != nil {
					t.Error(err)
				}
				got[i] = v
			}()
		}
		time.Sleep(50 * time.Millisecond) // all queued behind the first batch
		close(release)
		wg.Wait()
		for i, v := range got {
			if v != i*10 {
				t.Fatalf("request %d got %d", i, v)
			}
		}
		if len(sizes) >= 50 {
			t.Fatalf("no batching: %d writes for 50 requests", len(sizes))
		}
		if err := g.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a failed write fails every request of its batch", func(t *testing.T) {
		boom := errors.New("disk full")
		g := &postgres.GroupCommit[int, int]{MaxFlushers: 2, MaxBatch: 10, Size: func(int) int { return 1 },
			Write: func([]int) ([]int, error) { return nil, boom }}
		if _, err := g.Do(context.Background(), 1, "test write"); !errors.Is(err, boom) {
			t.Fatalf("Do = %v", err)
		}
	})
	t.Run("MaxBatch bounds the units of one write", func(t *testing.T) {
		var mu sync.Mutex
		var units []int
		release := make(chan struct{})
		g := &postgres.GroupCommit[[]int, int]{MaxFlushers: 1, MaxBatch: 5, Size: func(v []int) int { return len(v) },
			Write: func(in [][]int) ([]int, error) {
				<-release
				n := 0
				for _, v := range in {
					n += len(v)
				}
				mu.Lock()
				units = append(units, n)
				mu.Unlock()
				return make([]int, len(in)), nil
			}}
		var wg sync.WaitGroup
		for range 6 {
			wg.Add(1)
			go func() { defer wg.Done(); g.Do(context.Background(), []int{1, 2}, "test write") }() //nolint:errcheck
		}
		time.Sleep(50 * time.Millisecond)
		close(release)
		wg.Wait()
		for _, n := range units[1:] { // the first batch took whoever came first
			if n > 5 {
				t.Fatalf("a write of %d units, more than MaxBatch 5: %v", n, units)
			}
		}
	})
	t.Run("a cancelled request not yet taken is withdrawn, unwritten", func(t *testing.T) {
		release := make(chan struct{})
		var mu sync.Mutex
		var written []int
		g := &postgres.GroupCommit[int, int]{MaxFlushers: 1, MaxBatch: 1, Size: func(int) int { return 1 },
			Write: func(in []int) ([]int, error) {
				<-release
				mu.Lock()
				written = append(written, in...)
				mu.Unlock()
				return make([]int, len(in)), nil
			}}
		first := make(chan error)
		go func() { _, err := g.Do(context.Background(), 1, "test write"); first <- err }()
		time.Sleep(20 * time.Millisecond) // 1 is being written
		ctx, cancel := context.WithCancel(context.Background())
		second := make(chan error)
		go func() { _, err := g.Do(ctx, 2, "test write"); second <- err }()
		time.Sleep(20 * time.Millisecond)
		cancel()
		if err := <-second; broker.ErrorCode(err) != broker.EUnavailable {
			t.Fatalf("cancelled Do = %v, want EUnavailable", err)
		}
		close(release)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		if err := g.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(written) != 1 || written[0] != 1 {
			t.Fatalf("written %v, want only the first request", written)
		}
	})
	t.Run("a cancelled request being written waits for its outcome", func(t *testing.T) {
		release := make(chan struct{})
		g := &postgres.GroupCommit[int, int]{MaxFlushers: 1, MaxBatch: 1, Size: func(int) int { return 1 },
			Write: func(in []int) ([]int, error) { <-release; return []int{7}, nil }}
		ctx, cancel := context.WithCancel(context.Background())
		res := make(chan int)
		go func() { v, _ := g.Do(ctx, 1, "test write"); res <- v }()
		time.Sleep(20 * time.Millisecond)
		cancel()
		time.Sleep(20 * time.Millisecond)
		close(release)
		if v := <-res; v != 7 {
			t.Fatalf("got %d, want the written outcome 7", v)
		}
	})
}
