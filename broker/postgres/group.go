package postgres

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// GroupCommit coalesces concurrent writes of one kind into one statement
// and one COMMIT (one fsync): each caller is answered only after that
// COMMIT, so what it was told is written is durable. It is the one group
// committer of the project (the audit log's appends, the inbox, the sent
// marks and the delivery statuses). It has no goroutine of its own: a
// caller that finds fewer than MaxFlushers flushers running starts one,
// and a flusher exits when the queue is empty. Several flushers overlap one
// batch's COMMIT with the next batch's write.
type GroupCommit[T, R any] struct {
	MaxFlushers int                    // flushers running at most
	MaxBatch    int                    // units per statement (see Size)
	Size        func(T) int            // units of one request
	Write       func([]T) ([]R, error) // one result per request, in order
	// Wait bounds how long a cancelled caller whose request is already
	// being written waits for its outcome; 0 waits for it (Write must
	// then bound itself). A request not yet taken is withdrawn at once.
	Wait time.Duration

	mu       sync.Mutex
	queue    []*groupReq[T, R]
	flushers int
}

type groupReq[T, R any] struct {
	in    T
	done  chan groupRes[R]
	taken bool // in a batch being written (guarded by mu)
}

type groupRes[R any] struct {
	out R
	err error
}

// Do queues in for the next group commit and waits for it. A cancelled
// caller whose request no batch has taken yet withdraws it (EUnavailable,
// nothing written); one whose request is being written waits for the
// outcome (bounded by Wait) rather than guess it.
func (g *GroupCommit[T, R]) Do(ctx context.Context, in T, what string) (R, error) {
	req := &groupReq[T, R]{in: in, done: make(chan groupRes[R], 1)}
	g.mu.Lock()
	g.queue = append(g.queue, req)
	if g.flushers < g.MaxFlushers {
		g.flushers++
		go g.flush()
	}
	g.mu.Unlock()
	var zero R
	select {
	case r := <-req.done:
		return r.out, r.err
	case <-ctx.Done():
	}
	g.mu.Lock()
	if !req.taken {
		if i := slices.Index(g.queue, req); i >= 0 {
			g.queue = slices.Delete(g.queue, i, i+1)
		}
		g.mu.Unlock()
		return zero, broker.Wrap(broker.EUnavailable, ctx.Err(), what+" cancelled")
	}
	g.mu.Unlock()
	if g.Wait <= 0 {
		r := <-req.done
		return r.out, r.err
	}
	select {
	case r := <-req.done:
		return r.out, r.err
	case <-time.After(g.Wait):
		return zero, broker.Wrap(broker.EUnavailable, ctx.Err(), what+" timed out")
	}
}

// Drain waits until every request handed to g has been written (or
// failed) and no flusher runs, or ctx is done. g keeps no goroutine when
// idle, so there is nothing to stop: an ordered shutdown drains after the
// last Do and before closing the pool.
func (g *GroupCommit[T, R]) Drain(ctx context.Context) error {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		g.mu.Lock()
		idle := g.flushers == 0 && len(g.queue) == 0
		g.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (g *GroupCommit[T, R]) flush() {
	for {
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.queue = nil
			g.flushers--
			g.mu.Unlock()
			return
		}
		var batch []*groupReq[T, R]
		var ins []T
		units := 0
		for len(g.queue) > 0 {
			n := g.Size(g.queue[0].in)
			if units > 0 && units+n > g.MaxBatch {
				break
			}
			units += n
			g.queue[0].taken = true
			batch = append(batch, g.queue[0])
			ins = append(ins, g.queue[0].in)
			g.queue = g.queue[1:]
		}
		g.mu.Unlock()
		outs, err := g.Write(ins)
		for i, r := range batch {
			var out R
			if err == nil {
				out = outs[i]
			}
			r.done <- groupRes[R]{out, err}
		}
	}
}
