package commerce

import (
	"context"
	"sync"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// worker is the Service's worker pool: it takes shoppers with pending
// inbox events from the ready queue (or the database), groups them by
// shard, and runs each shopper's turn in a transaction. A view of the
// Service.
type worker struct{ *Service }

// RunWorkers processes stored events with n workers until ctx ends. One
// loop hands groups of shoppers with pending events to the workers, never
// the same shopper to two at once in this process (other processes are kept
// apart by the per-shopper advisory lock). The workers are latency-bound
// (round trips to the database), so several overlap.
//
// The shoppers come from two places. Events this process stores are queued
// in memory as they commit ([Service.Ingest]), so a busy inbox costs no
// query to find its work. The database is asked too (pending events of
// other processes, of a previous run, of turns that failed or were left
// unfinished): at start, after the memory queue overflowed, while the
// answer fills a page, and otherwise every [pendingPoll].
func (s *Service) RunWorkers(ctx context.Context, n int) error { return worker{s}.run(ctx, n) }

// run is RunWorkers.
func (s worker) run(ctx context.Context, n int) error {
	s.init()
	if n < 1 {
		n = 1
	}
	q := s.ready
	jobs := make(chan []string)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for group := range jobs {
				again, err := s.processGroup(ctx, group)
				if err != nil && ctx.Err() == nil {
					s.Log.Warn("inbox worker", "err", err)
				}
				q.release(group, again)
				s.WakeWorker()
			}
		}()
	}
	defer func() {
		close(jobs)
		wg.Wait()
	}()
	var lastPoll time.Time
	pollNow := true
	for {
		if pollNow || q.overflowed() || time.Since(lastPoll) >= pendingPoll {
			subjects, err := s.Inbox.PendingSubjects(ctx, pendingPage)
			if err != nil && ctx.Err() == nil {
				s.Log.Warn("inbox worker", "err", err)
			}
			lastPoll = time.Now()
			// A full page may hide more: ask again at once, unless the page
			// held nothing the queue did not know (then the oldest pending
			// shoppers are being served, and the rest come up in time).
			added := q.push(subjects)
			pollNow = err == nil && len(subjects) == pendingPage && added > 0
		}
		for _, group := range s.groups(ctx, q.take(pendingPage)) {
			select {
			case jobs <- group:
			case <-ctx.Done():
				return nil
			}
		}
		wait := pendingPoll - time.Since(lastPoll)
		if pollNow {
			wait = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wakeWorker:
		case <-time.After(max(wait, time.Millisecond)):
		}
	}
}

// pendingPoll is how often the workers ask the database for pending events
// that the memory queue does not know of; pendingPage is how many shoppers
// one question (and one hand-out) takes at most.
const (
	pendingPoll = time.Second
	pendingPage = 256
)

// subjectsPerTx is how many shoppers one worker transaction serves: their
// effects share one COMMIT (one WAL flush), while a savepoint per shopper
// keeps one shopper's failure from touching the others.
const subjectsPerTx = 16

// ShardKeys is an optional port of the Service.Turns store: on a database that spreads
// shoppers over shards (Citus), a key per shopper, equal for shoppers on
// one shard; nil where there is one database. The workers then group
// shoppers of one shard, so that a group's statements are router queries
// and its transaction commits on one node.
type ShardKeys interface {
	ShardKeys(ctx context.Context, subjects []string) (map[string]int64, error)
}

// groups cuts the shoppers taken from the ready queue into worker groups
// of up to subjectsPerTx, in queue order; shoppers of one shard together
// when the store tells shards apart (a failure to tell only costs speed).
func (s worker) groups(ctx context.Context, fresh []string) [][]string {
	var keys map[string]int64
	if sk, ok := s.Turns.(ShardKeys); ok && len(fresh) > 1 {
		var err error
		if keys, err = sk.ShardKeys(ctx, fresh); err != nil && ctx.Err() == nil {
			s.Log.Warn("inbox worker: shard keys", "err", err)
		}
	}
	return groupByKey(fresh, keys, subjectsPerTx)
}

// groupByKey cuts ids into groups of at most size that share a key,
// keeping the order of ids within a key and ordering the groups by their
// first id; with no keys, plain consecutive chunks.
func groupByKey(ids []string, keys map[string]int64, size int) [][]string {
	var out [][]string
	open := map[int64]int{} // key → index in out of its group still filling
	for _, id := range ids {
		k, ok := keys[id]
		if !ok {
			k = -1 // unknown: grouped among themselves
		}
		i, ok := open[k]
		if !ok || len(out[i]) == size {
			out = append(out, make([]string, 0, size))
			i = len(out) - 1
			open[k] = i
		}
		out[i] = append(out[i], id)
	}
	return out
}

// processGroup handles several shoppers' pending events in one transaction.
// The fast path uses no savepoints; if any shopper's turn fails for a reason
// other than the database being away, the group is rolled back and run
// carefully: each shopper in a savepoint, each event in a savepoint, and a
// shopper whose turn still fails has its events marked failed (never
// retried forever).
func (s worker) processGroup(ctx context.Context, subjects []string) (more []string, err error) {
	sent := false
	// serve runs one shopper's turn and notes what the group needs to know
	// of it: whether it has events left over, and whether it queued sends.
	serve := func(ctx context.Context, sub string, st TurnState, careful bool) (*TurnWrite, error) {
		if len(st.Items) == turnEvents {
			more = append(more, sub)
		}
		w, err := s.processSubject(ctx, sub, st, careful)
		if w != nil && len(w.Out) > 0 {
			sent = true
		}
		return w, err
	}
	run := func(careful bool) error {
		return s.Tx.InTx(ctx, func(ctx context.Context) error {
			more, sent = more[:0], false
			if !careful {
				// The whole group's turns are read, and written, with one
				// statement per table.
				states, err := s.Turns.LoadTurns(ctx, subjects, turnEvents)
				if err != nil {
					return err
				}
				var writes []TurnWrite
				for i, sub := range subjects {
					w, err := serve(ctx, sub, states[i], false)
					if err != nil {
						return err
					}
					if w != nil {
						writes = append(writes, *w)
					}
				}
				return s.Turns.SaveTurns(ctx, writes)
			}
			for _, sub := range subjects {
				err := s.Tx.InSavepoint(ctx, func(ctx context.Context) error {
					states, err := s.Turns.LoadTurns(ctx, []string{sub}, turnEvents)
					if err != nil {
						return err
					}
					w, err := serve(ctx, sub, states[0], true)
					if err != nil || w == nil {
						return err
					}
					return s.Turns.SaveTurns(ctx, []TurnWrite{*w})
				})
				if err != nil && broker.ErrorCode(err) != broker.EUnavailable && ctx.Err() == nil {
					err = s.failSubject(ctx, sub, err)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	err = run(false)
	if err != nil && broker.ErrorCode(err) != broker.EUnavailable && ctx.Err() == nil {
		err = run(true)
	}
	if err != nil {
		return nil, err
	}
	if sent {
		s.WakeSender()
	}
	return more, nil
}

// failSubject marks a shopper's pending events failed after its turn
// failed even event by event (e.g. a record that no longer opens).
func (s worker) failSubject(ctx context.Context, subject string, cause error) error {
	s.Log.Error("shopper's events set aside", "subject", s.Releaser.Pseudonyms().Audit(subject), "err", cause)
	s.inc("sieve_inbox_failed_total")
	items, err := s.Inbox.PendingInbox(ctx, subject, turnEvents)
	if err != nil {
		return err
	}
	return s.Inbox.MarkInboxMany(ctx, inboxIDs(items), "processing failed: "+broker.ErrorCode(cause))
}
