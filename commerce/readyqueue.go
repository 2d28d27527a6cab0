package commerce

import (
	"slices"
	"sync"
)

// readyQueue holds the shoppers with events to process, in arrival order,
// each once, and the shoppers a worker has now. A shopper queued while a
// worker has it is handed out again when the worker lets it go. It holds at
// most readyQueueMax shoppers; beyond that it drops them and says so, and
// the database is asked instead.
type readyQueue struct {
	mu       sync.Mutex
	order    []string
	queued   map[string]bool
	busy     map[string]bool // handed to a worker; true: queued again meanwhile
	overflow bool
}

const readyQueueMax = 100_000

func newReadyQueue() *readyQueue {
	return &readyQueue{queued: map[string]bool{}, busy: map[string]bool{}}
}

// push queues shoppers (again) and returns how many it did not know (neither
// queued nor busy).
func (q *readyQueue) push(subjects []string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	added := 0
	for _, sub := range subjects {
		if q.pushLocked(sub) {
			added++
		}
	}
	return added
}

func (q *readyQueue) pushLocked(sub string) bool {
	if q.queued[sub] {
		return false
	}
	if _, ok := q.busy[sub]; ok {
		q.busy[sub] = true // after the worker's turn
		return false
	}
	if len(q.queued) >= readyQueueMax {
		q.overflow = true
		return false
	}
	q.queued[sub] = true
	q.order = append(q.order, sub)
	return true
}

// take hands out up to n shoppers, oldest first, and marks them busy.
func (q *readyQueue) take(n int) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := min(n, len(q.order))
	out := slices.Clone(q.order[:k])
	clear(q.order[:k])
	q.order = q.order[k:]
	if len(q.order) == 0 {
		q.order = nil
	}
	for _, sub := range out {
		delete(q.queued, sub)
		q.busy[sub] = false
	}
	return out
}

// release lets a worker's shoppers go, queueing again those that got events
// meanwhile and those in again.
func (q *readyQueue) release(group, again []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, sub := range group {
		queued := q.busy[sub]
		delete(q.busy, sub)
		if queued || slices.Contains(again, sub) {
			q.pushLocked(sub)
		}
	}
}

// overflowed reports (once) that shoppers were dropped since the last call.
func (q *readyQueue) overflowed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	o := q.overflow
	q.overflow = false
	return o
}
