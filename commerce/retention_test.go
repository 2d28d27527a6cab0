package commerce_test

import (
	"context"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/commerce/postgres"
	"github.com/sieve-broker/sieve/policies"
)

const day = 24 * time.Hour

// The periods of the shipped policy data.
func shippedPeriods(t *testing.T) map[string]time.Duration {
	t.Helper()
	e, err := policies.Default(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	periods := map[string]time.Duration{}
	for name, r := range e.Data().Retention {
		periods[name] = r.Period()
	}
	return periods
}

func noErase(context.Context, string, broker.Party, string) error { return nil }

// The sweeper fails closed at start: every category the policy data names
// must be one it applies, and every one it applies must have a period.
func TestNewRetentionChecksEveryCategory(t *testing.T) {
	db := postgres.New(pgtest.New(t))
	shipped := shippedPeriods(t)
	if _, err := commerce.NewRetention(db.Retention, noErase, shipped, 0); err != nil {
		t.Fatalf("the shipped policy data: %v", err)
	}
	with := func(change func(m map[string]time.Duration)) map[string]time.Duration {
		m := maps.Clone(shipped)
		change(m)
		return m
	}
	for _, tc := range []struct {
		name    string
		periods map[string]time.Duration
		want    string
	}{
		{"unknown category", with(func(m map[string]time.Duration) { m["biometrics"] = day }), `"biometrics"`},
		{"delivery statuses not named", with(func(m map[string]time.Duration) { delete(m, "delivery_statuses") }), `"delivery_statuses"`},
		{"chat not named", with(func(m map[string]time.Duration) { delete(m, "chat") }), `"chat"`},
		{"identity kept zero days", with(func(m map[string]time.Duration) { m["identity"] = 0 }), `"identity"`},
		{"negative period", with(func(m map[string]time.Duration) { m["inbound_webhooks"] = -day }), `"inbound_webhooks"`},
		{"no periods at all", map[string]time.Duration{}, `"identity"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := commerce.NewRetention(db.Retention, noErase, tc.periods, 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewRetention = %v, want an error naming %s", err, tc.want)
			}
		})
	}
	if _, err := commerce.NewRetention(nil, noErase, shipped, 0); err == nil {
		t.Error("NewRetention without a store succeeded")
	}
}

// Expired shoppers are erased in batches, each once, by the retention actor
// with the reason code; the shortest period of the categories kept with the
// shopper decides.
func TestRetentionSweepErasesInBatches(t *testing.T) {
	ctx := context.Background()
	db := postgres.New(pgtest.New(t))
	periods := shippedPeriods(t)
	periods["orders"] = 400 * day // shorter than identity: it decides
	var mu sync.Mutex
	calls := map[string]int{}
	erase := func(ctx context.Context, subject string, actor broker.Party, reason string) error {
		if actor.Actor() != "system:retention" || reason != commerce.RetentionReason {
			t.Errorf("erased by %s for %q", actor.Actor(), reason)
		}
		mu.Lock()
		calls[subject]++
		mu.Unlock()
		_, err := db.Rights.EraseSubjectRows(ctx, subject)
		return err
	}
	r, err := commerce.NewRetention(db.Retention, erase, periods, 2)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	subjects := map[string]time.Duration{"shp_a": 401 * day, "shp_b": 500 * day, "shp_c": 2000 * day,
		"shp_d": 450 * day, "shp_e": 1000 * day, "shp_recent": 399 * day}
	for id, ago := range subjects {
		if _, err := db.DB.Pool.Exec(ctx, `INSERT INTO subjects (id, last_interaction_at) VALUES ($1, $2)`, id, now.Add(-ago)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := r.Sweep(ctx, now)
	if err != nil || res.Skipped || res.Erased != 5 {
		t.Fatalf("Sweep = %+v, %v; want 5 erased", res, err)
	}
	if _, err := r.Sweep(ctx, now); err != nil {
		t.Fatal(err)
	}
	for id := range subjects {
		want := 1
		if id == "shp_recent" {
			want = 0
		}
		if calls[id] != want {
			t.Errorf("%s erased %d times, want %d", id, calls[id], want)
		}
	}
	// While another process holds the lock, a sweep does nothing.
	release, ok, err := db.DB.TryLock(ctx, commerce.RetentionLock)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	defer release()
	if res, err := r.Sweep(ctx, now.Add(100*day)); err != nil || !res.Skipped || calls["shp_recent"] != 0 {
		t.Fatalf("Sweep under another's lock = %+v, %v", res, err)
	}
}

var _ commerce.RetentionStore = (*postgres.Retention)(nil)
