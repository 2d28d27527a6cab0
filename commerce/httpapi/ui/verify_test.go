package ui

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// memTrust is a TrustStore in memory: what a file outside the database
// holds across restarts of the broker.
type memTrust struct {
	mu    sync.Mutex
	note  string
	saves int
}

func (m *memTrust) Load() (string, error) { m.mu.Lock(); defer m.mu.Unlock(); return m.note, nil }
func (m *memTrust) Save(n string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.note, m.saves = n, m.saves+1
	return nil
}

// TestWitnessTrustedCheckpointCatchesTruncation restarts the witness (a new
// process) after the log was cut back to an older signed size, as restoring
// an older backup does. Without a store the new witness trusts the shorter
// log on first use; with the checkpoint kept outside the database it flags
// it at the first check, and keeps flagging it.
func TestWitnessTrustedCheckpointCatchesTruncation(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	l := newMemLog(t)
	grow := func(n int) {
		for range n {
			l.add(entry("retailer:cli_fresh", "release", "order_fulfilment", "sub_A", "released"))
		}
	}
	store := &memTrust{}
	first := &witness{store: store}
	grow(3)
	l.publish(t)
	if st := first.check(ctx, l, l.publicKeys(), now); !st.OK {
		t.Fatalf("first check: %s", st.Error)
	}
	grow(5)
	l.publish(t)
	if st := first.check(ctx, l, l.publicKeys(), now); !st.OK || st.PrevSize != 3 {
		t.Fatalf("second check: %+v", st)
	}
	if !strings.Contains(store.note, "\n8\n") {
		t.Fatalf("the store does not hold the checkpoint of 8 entries:\n%s", store.note)
	}
	// A restart finds the kept checkpoint and proves the log extends it.
	grow(1)
	l.publish(t)
	again := &witness{store: store}
	if st := again.check(ctx, l, l.publicKeys(), now); !st.OK || !st.HasPrev || !st.PrevTrusted || st.PrevSize != 8 {
		t.Fatalf("check after a restart: %+v", st)
	}

	// The operator restores the backup taken at 3 entries.
	l.entries, l.hashes, l.latest = l.entries[:3], l.hashes[:3], 3
	if st := (&witness{}).check(ctx, l, l.publicKeys(), now); !st.OK {
		t.Fatalf("without a store the truncation would pass unnoticed; got %+v", st)
	}
	restarted := &witness{store: store}
	for i := range 2 {
		st := restarted.check(ctx, l, l.publicKeys(), now)
		if st.OK || !st.Mismatch || !strings.Contains(st.Error, "shrank from 9 to 3") {
			t.Fatalf("check %d of the truncated log: %+v", i, st)
		}
	}
	if !strings.Contains(store.note, "\n9\n") {
		t.Fatal("a failed check replaced the trusted checkpoint")
	}

	// Restored to before the first checkpoint: no checkpoint at all.
	l.entries, l.hashes, l.latest, l.notes = nil, nil, 0, map[uint64]string{}
	if st := (&witness{store: store}).check(ctx, l, l.publicKeys(), now); st.OK || !st.Mismatch {
		t.Fatalf("a log with no checkpoint after one of 9 entries was kept: %+v", st)
	}

	// A kept checkpoint no log key signed is itself a finding.
	other := newMemLog(t)
	other.add(entry("retailer:cli_fresh", "release", "order_fulfilment", "sub_A", "released"))
	other.publish(t)
	forged := &memTrust{note: other.notes[1]}
	if st := (&witness{store: forged}).check(ctx, l, l.publicKeys(), now); st.OK || !st.Mismatch ||
		!strings.Contains(st.Error, "does not verify") {
		t.Fatalf("a forged trusted checkpoint: %+v", st)
	}
}

// TestWatchAudit runs the witness loop brokerd runs: it checks at once and
// on every tick, reports each outcome to OnCheck, and logs a failed check
// with sizes only (no entry content) until its context ends.
func TestWatchAudit(t *testing.T) {
	var logged strings.Builder
	statuses := make(chan CheckStatus, 16)
	store := &memTrust{}
	h := newHarness(t, func(d *Deps) {
		d.Trusted = store
		d.OnCheck = func(st CheckStatus) { statuses <- st }
		d.Log = slog.New(slog.NewTextHandler(&logged, nil))
	})
	for i := range 4 {
		h.log.add(entry("retailer:cli_fresh", "release", "order_fulfilment", "sub_A", "released"))
		if i == 1 || i == 3 {
			h.log.publish(t) // signed at 2 and at 4 entries
		}
	}

	watch := func(want func(CheckStatus) bool) CheckStatus {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); h.ui.WatchAudit(ctx, 5*time.Millisecond) }()
		var got CheckStatus
		for range 2 { // at once, then again on a tick
			select {
			case got = <-statuses:
			case <-time.After(10 * time.Second):
				cancel()
				t.Fatal("WatchAudit reported no check in 10 s")
			}
		}
		cancel()
		<-done
		for len(statuses) > 0 {
			<-statuses
		}
		if !want(got) {
			t.Fatalf("check status %+v", got)
		}
		return got
	}
	watch(func(st CheckStatus) bool { return st.OK && st.Checkpoint.Size == 4 })
	if logged.Len() != 0 {
		t.Fatalf("a passing check logged %q", logged.String())
	}
	// The log is cut back to 2 entries (an older backup restored).
	h.log.entries, h.log.hashes, h.log.latest = h.log.entries[:2], h.log.hashes[:2], 2
	watch(func(st CheckStatus) bool {
		return !st.OK && st.Mismatch && strings.Contains(st.Error, "shrank from 4 to 2")
	})
	out := logged.String()
	if !strings.Contains(out, "audit log verification failed") || !strings.Contains(out, "trusted_size=4") {
		t.Fatalf("the failed check was not logged as wanted: %q", out)
	}
	if strings.Contains(out, "sub_A") || strings.Contains(out, "cli_fresh") {
		t.Fatalf("the log line carries entry content: %q", out)
	}
}
