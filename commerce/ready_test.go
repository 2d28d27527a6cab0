package commerce

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestReadyQueueOrderAndDedup(t *testing.T) {
	q := newReadyQueue()
	if n := q.push([]string{"a", "b", "a", "c"}); n != 3 {
		t.Fatalf("push added %d, want 3", n)
	}
	if n := q.push([]string{"b", "d"}); n != 1 {
		t.Fatalf("push added %d, want 1 (b is queued)", n)
	}
	if got := q.take(3); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("take(3) = %v, want [a b c] (arrival order, each once)", got)
	}
	if got := q.take(10); !slices.Equal(got, []string{"d"}) {
		t.Fatalf("take(10) = %v, want [d]", got)
	}
	if got := q.take(10); len(got) != 0 {
		t.Fatalf("empty queue handed out %v", got)
	}
}

// A shopper with new events while a worker has it is neither handed to a
// second worker nor forgotten: it comes back when the worker lets it go.
func TestReadyQueueBusyShopperComesBack(t *testing.T) {
	q := newReadyQueue()
	q.push([]string{"a", "b"})
	group := q.take(2)
	if n := q.push([]string{"a", "c"}); n != 1 { // a has more events during its turn
		t.Fatalf("push added %d, want 1 (a is busy)", n)
	}
	if got := q.take(10); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("take while a is busy = %v, want [c]", got)
	}
	q.release(group, nil)
	if got := q.take(10); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("after release = %v, want [a] (queued during its turn); b had nothing new", got)
	}
	q.release([]string{"a"}, nil)
	q.release([]string{"c"}, []string{"c"}) // a turn that hit the event limit
	if got := q.take(10); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("after a turn left events = %v, want [c]", got)
	}
	q.release([]string{"c"}, nil)
	if got := q.take(10); len(got) != 0 {
		t.Fatalf("nothing pending, yet handed out %v", got)
	}
	if q.overflowed() {
		t.Fatal("overflow reported without one")
	}
}

// Past its bound the queue drops shoppers and says so once, so that the
// workers ask the database.
func TestReadyQueueOverflow(t *testing.T) {
	q := newReadyQueue()
	subjects := make([]string, readyQueueMax+5)
	for i := range subjects {
		subjects[i] = fmt.Sprint("shp_", i)
	}
	q.push(subjects)
	if !q.overflowed() {
		t.Fatal("overflow not reported")
	}
	if q.overflowed() {
		t.Fatal("overflow reported twice")
	}
	if got := q.take(readyQueueMax + 5); len(got) != readyQueueMax {
		t.Fatalf("queue held %d shoppers, want its bound %d", len(got), readyQueueMax)
	}
}

func TestGroupByKey(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e", "f", "g"}
	cases := []struct {
		name string
		keys map[string]int64
		size int
		want string
	}{
		{"no keys: consecutive chunks", nil, 3, "abc def g"},
		{"one shard each", map[string]int64{"a": 1, "b": 2, "c": 1, "d": 2, "e": 1, "f": 3, "g": 2}, 16, "ace bdg f"},
		{"a full group opens another", map[string]int64{"a": 1, "b": 1, "c": 1, "d": 2, "e": 1, "f": 1, "g": 1}, 2, "ab ce d fg"},
		{"unknown shoppers go together", map[string]int64{"a": 1, "c": 1}, 16, "ac bdefg"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			n := 0
			for _, g := range groupByKey(ids, c.keys, c.size) {
				got = append(got, strings.Join(g, ""))
				n += len(g)
			}
			if strings.Join(got, " ") != c.want || n != len(ids) {
				t.Fatalf("got %q, want %q", strings.Join(got, " "), c.want)
			}
		})
	}
}
