package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// GroupCommit coalesces concurrent writes of one kind into one statement
// and one COMMIT (one fsync): each caller is answered only after that
// COMMIT, so what it was told is written is durable. Like the audit
// appender it has no goroutine of its own: a caller that finds too few
// flushers running starts one, and flushers exit when the queue is empty.
type GroupCommit[T, R any] struct {
	MaxFlushers int                    // flushers running at most
	MaxBatch    int                    // units per statement (see Size)
	Size        func(T) int            // units of one request
	Write       func([]T) ([]R, error) // one result per request, in order

	mu       sync.Mutex
	queue    []*groupReq[T, R]
	flushers int
}

type groupReq[T, R any] struct {
	in   T
	done chan groupRes[R]
}

type groupRes[R any] struct {
	out R
	err error
}

// Do queues in for the next group commit and waits for it. A cancelled
// caller still waits (up to 10 s) for a batch that may already be in
// flight rather than guess its outcome.
func (g *GroupCommit[T, R]) Do(ctx context.Context, in T, what string) (R, error) {
	req := &groupReq[T, R]{in: in, done: make(chan groupRes[R], 1)}
	g.mu.Lock()
	g.queue = append(g.queue, req)
	if g.flushers < g.MaxFlushers {
		g.flushers++
		go g.flush()
	}
	g.mu.Unlock()
	select {
	case r := <-req.done:
		return r.out, r.err
	case <-ctx.Done():
		select {
		case r := <-req.done:
			return r.out, r.err
		case <-time.After(10 * time.Second):
			var zero R
			return zero, broker.Wrap(broker.EUnavailable, ctx.Err(), what+" timed out")
		}
	}
}

func (g *GroupCommit[T, R]) flush() {
	for {
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.flushers--
			g.mu.Unlock()
			return
		}
		var batch []*groupReq[T, R]
		var ins []T
		for units := 0; len(g.queue) > 0; g.queue = g.queue[1:] {
			n := g.Size(g.queue[0].in)
			if units > 0 && units+n > g.MaxBatch {
				break
			}
			units += n
			batch = append(batch, g.queue[0])
			ins = append(ins, g.queue[0].in)
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
