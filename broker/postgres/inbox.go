package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// inboxBatcher group-commits inbox inserts: concurrent webhook requests
// share one INSERT and one COMMIT (one fsync), and each is answered only
// after that COMMIT, so an acknowledged webhook is always durable. Like the
// audit appender it has no goroutine of its own: a request that finds too
// few flushers running starts one, and flushers exit when the queue is
// empty.
type inboxBatcher struct {
	mu       sync.Mutex
	queue    []*inboxReq
	flushers int
}

type inboxReq struct {
	items []commerce.InboxItem
	done  chan inboxResult
}

type inboxResult struct {
	inserted int
	err      error
}

const (
	inboxMaxFlushers = 8
	inboxMaxBatch    = 2000 // rows per statement
)

var inboxBatchers sync.Map // *DB -> *inboxBatcher

func (db *DB) inboxBatcher() *inboxBatcher {
	b, _ := inboxBatchers.LoadOrStore(db, &inboxBatcher{})
	return b.(*inboxBatcher)
}

const sqlInsertInboxReturning = sqlInsertInbox + ` RETURNING dedup_key`

// insertInboxGrouped queues items for the next group commit and waits for
// it. A cancelled caller whose rows were not yet taken withdraws them.
func (db *DB) insertInboxGrouped(ctx context.Context, items []commerce.InboxItem) (int, error) {
	b := db.inboxBatcher()
	req := &inboxReq{items: items, done: make(chan inboxResult, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, req)
	if b.flushers < inboxMaxFlushers {
		b.flushers++
		go db.flushInbox(b)
	}
	b.mu.Unlock()
	select {
	case r := <-req.done:
		return r.inserted, r.err
	case <-ctx.Done():
		// The batch may already be in flight: wait for its outcome rather
		// than guess (the rows may well be committed).
		select {
		case r := <-req.done:
			return r.inserted, r.err
		case <-time.After(10 * time.Second):
			return 0, broker.Wrap(broker.EUnavailable, ctx.Err(), "inbox write timed out")
		}
	}
}

func (db *DB) flushInbox(b *inboxBatcher) {
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.flushers--
			b.mu.Unlock()
			return
		}
		var batch []*inboxReq
		rows := 0
		for len(b.queue) > 0 && (rows == 0 || rows+len(b.queue[0].items) <= inboxMaxBatch) {
			batch = append(batch, b.queue[0])
			rows += len(b.queue[0].items)
			b.queue = b.queue[1:]
		}
		b.mu.Unlock()
		db.writeInboxBatch(batch, rows)
	}
}

func (db *DB) writeInboxBatch(batch []*inboxReq, rows int) {
	all := make([]commerce.InboxItem, 0, rows)
	for _, r := range batch {
		all = append(all, r.items...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inserted := map[string]bool{}
	rs, err := db.Pool.Query(ctx, sqlInsertInboxReturning, inboxColumns(all)...)
	if err == nil {
		for rs.Next() {
			var k string
			if err = rs.Scan(&k); err != nil {
				break
			}
			inserted[k] = true
		}
		rs.Close()
		if err == nil {
			err = rs.Err()
		}
	}
	err = Translate(err)
	for _, r := range batch {
		n := 0
		for _, it := range r.items {
			if inserted[it.DedupKey] {
				n++
			}
		}
		r.done <- inboxResult{inserted: n, err: err}
	}
}
