package postgres

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sieve-broker/sieve/broker"
)

// auditGroupCommitter batches the appends of concurrent callers. It keeps no
// goroutine of its own: an append that finds fewer than auditMaxFlushers
// flushers running starts one, and a flusher exits when the queue is empty.
// Several flushers overlap one batch's COMMIT (fsync) with the next COPY.
type auditGroupCommitter struct {
	mu       sync.Mutex
	queue    []*auditAppendReq
	flushers int
}

type auditAppendReq struct {
	decisionID string
	leaf       []byte
	done       chan error // receives the outcome exactly once
	taken      bool       // in a batch being written (guarded by mu)
}

const (
	auditMaxFlushers   = 3
	auditMaxGroupBatch = 4096
	auditFlushTimeout  = 30 * time.Second
)

func (db *DB) appendAuditGrouped(ctx context.Context, req *auditAppendReq) error {
	st := db.auditState()
	g := &st.gc
	g.mu.Lock()
	g.queue = append(g.queue, req)
	if g.flushers < auditMaxFlushers {
		g.flushers++
		go db.flushAudit(st)
	}
	g.mu.Unlock()
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
	}
	g.mu.Lock()
	if !req.taken {
		if i := slices.Index(g.queue, req); i >= 0 {
			g.queue = slices.Delete(g.queue, i, i+1)
		}
		g.mu.Unlock()
		return broker.Wrap(broker.EUnavailable, ctx.Err(), "audit append cancelled")
	}
	g.mu.Unlock()
	// Already being written: its outcome decides (bounded by auditFlushTimeout).
	return <-req.done
}

// DrainAudit waits until every entry handed to the group committer has been
// written (or failed) and no flusher is running, or ctx is done. The
// committer keeps no goroutine when idle, so there is nothing to stop:
// call this in an ordered shutdown after the last Append and before
// closing the pool.
func (db *DB) DrainAudit(ctx context.Context) error {
	g := &db.auditState().gc
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

// flushAudit writes batches until the queue is empty.
func (db *DB) flushAudit(st *auditState) {
	g := &st.gc
	for {
		g.mu.Lock()
		n := min(len(g.queue), auditMaxGroupBatch)
		if n == 0 {
			g.queue = nil
			g.flushers--
			g.mu.Unlock()
			return
		}
		batch := slices.Clone(g.queue[:n])
		for _, r := range batch {
			r.taken = true
		}
		g.queue = g.queue[n:]
		g.mu.Unlock()

		db.writeAuditPending(batch)
		st.signal()
	}
}

// writeAuditPending writes a batch in one COPY (one transaction) and acks each
// request. When a duplicate decision id fails the batch, the rows are
// written one by one so that only the duplicate's caller gets the error.
func (db *DB) writeAuditPending(batch []*auditAppendReq) {
	ctx, cancel := context.WithTimeout(context.Background(), auditFlushTimeout)
	defer cancel()
	buf := binCopyHeader(make([]byte, 0, 64+len(batch)*400))
	for _, r := range batch {
		buf = binCopyTuple(buf, 2)
		buf = binCopyField(buf, []byte(r.decisionID))
		buf = binCopyField(buf, r.leaf)
	}
	buf = binCopyTrailer(buf)
	err := db.auditCopyIn(ctx, sqlAuditCopyPending, buf)
	var pe *pgconn.PgError
	if err != nil && len(batch) > 1 && errors.As(err, &pe) && pe.Code == "23505" {
		for _, r := range batch {
			_, err := db.Pool.Exec(ctx, sqlAuditInsertPending, r.decisionID, r.leaf)
			r.done <- translateAuditAppend(err)
		}
		return
	}
	err = translateAuditAppend(err)
	for _, r := range batch {
		r.done <- err
	}
}

// auditCopyIn runs COPY ... FROM STDIN with the binary data in buf, on the
// transaction in ctx or on a pooled connection (then it commits on its own).
func (db *DB) auditCopyIn(ctx context.Context, sql string, buf []byte) error {
	if tx, ok := TxFrom(ctx); ok {
		_, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(buf), sql)
		return err
	}
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	_, err = conn.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(buf), sql)
	return err
}
