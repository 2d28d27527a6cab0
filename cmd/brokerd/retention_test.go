package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/cmd/internal/config"
	"github.com/sieve-broker/sieve/cmd/internal/wire"
	"github.com/sieve-broker/sieve/commerce"
)

// sweep runs one retention sweep as of now. brokerd's own sweeper may hold
// the lock for a moment (it sweeps soon after start): then try again.
func (h *harness) sweep(now time.Time) commerce.SweepResult {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := h.m.Sys.SweepRetention(context.Background(), now)
		if err != nil {
			h.t.Fatalf("sweep: %v", err)
		}
		if !res.Skipped {
			return res
		}
		if time.Now().After(deadline) {
			h.t.Fatal("the retention lock stayed taken")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The retention sweeper erases shoppers whose last interaction is older
// than the identity retention period of the policy data (3 years, DPDP
// Third Schedule), audits each erasure once with the reason code
// "retention", and leaves recent shoppers alone. Several sweepers running
// at once (several brokerd) erase each shopper exactly once.
func TestRetentionSweepErasesExpiredShoppersOnce(t *testing.T) {
	h := newHarness(t)
	const recent = "919811117777"
	old := []string{"919811116661", "919811116662", "919811116663"}
	for _, wa := range append([]string{recent}, old...) {
		h.mustPost(textMsg(wa, "Hi"))
		h.next(wa, "notice", offers(commerce.IDConsentAccept))
	}
	h.waitIdle()
	ctx := context.Background()
	sys := h.m.Sys
	period := sys.Policy.RetentionFor("identity")
	if period < 3*365*24*time.Hour {
		t.Fatalf("identity retention %s, want at least 3 years", period)
	}
	var oldIDs []string
	for _, wa := range old {
		row, err := sys.Rights.ResolveWaID(ctx, wa)
		if err != nil {
			t.Fatal(err)
		}
		oldIDs = append(oldIDs, row.ID)
		if _, err := sys.DB.Pool.Exec(ctx, `UPDATE subjects SET last_interaction_at = now() - $2::interval WHERE id = $1`,
			row.ID, period+24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// The first sweep only warns them (at least 48 hours ahead, Rule 8(2));
	// the erasure comes after the warning's deadline.
	h.sweep(time.Now())
	for _, wa := range old {
		if _, err := sys.Rights.ResolveWaID(ctx, wa); err != nil {
			t.Fatalf("a shopper was erased without the 48-hour warning: %v", err)
		}
	}
	later := time.Now().Add(commerce.MinErasureWarning + time.Hour)
	// Four sweepers at once (four processes), each as another brokerd would.
	const sweepers = 4
	errs := make(chan error, sweepers)
	start := make(chan struct{})
	for range sweepers {
		go func() {
			<-start
			_, err := sys.SweepRetention(ctx, later)
			errs <- err
		}()
	}
	close(start)
	for range sweepers {
		if err := <-errs; err != nil {
			t.Fatalf("sweep: %v", err)
		}
	}
	h.sweep(later) // and once more after them: nothing left to do
	for _, wa := range old {
		if _, err := sys.Rights.ResolveWaID(ctx, wa); err == nil {
			t.Error("an expired shopper is still resolvable")
		}
	}
	if _, err := sys.Rights.ResolveWaID(ctx, recent); err != nil {
		t.Errorf("recent shopper erased: %v", err)
	}
	if _, err := sys.IntegrateAudit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range oldIDs {
		if n := h.count(`SELECT count(*) FROM subject_keys WHERE subject_id = $1`, id); n != 0 {
			t.Errorf("data key of an expired shopper survives")
		}
		entries, err := sys.Stores.Rights.SubjectAudit(ctx, sys.Pseudo.Audit(id), 100)
		if err != nil {
			t.Fatal(err)
		}
		erasures := 0
		for _, e := range entries {
			if e.Action == "erase" {
				erasures++
				if e.Actor != "system:retention" || e.Reason != commerce.RetentionReason {
					t.Errorf("erasure entry by %q for %q, want system:retention for %q", e.Actor, e.Reason, commerce.RetentionReason)
				}
			}
		}
		if erasures != 1 {
			t.Errorf("%d erasure entries for one expired shopper, want exactly 1", erasures)
		}
		// An erased shopper is never claimed again, whatever the clock says.
		if ok, err := sys.Stores.Retention.ClaimExpiredSubject(ctx, id, time.Now().Add(100*365*24*time.Hour)); err != nil || ok {
			t.Errorf("claim of an erased shopper = %v, %v; want false", ok, err)
		}
	}
}

// retentionRows makes a shopper with a session, a sent chat message, its
// delivery status and a processed inbound notification, and returns the
// shopper's id.
func retentionRows(h *harness, wa string) string {
	h.t.Helper()
	h.mustPost(textMsg(wa, "Hi"))
	h.next(wa, "notice", offers(commerce.IDConsentAccept))
	h.waitIdle()
	// Sending records a "sent" status; the receipt moves it on.
	h.mustPost(statusMsg(wa, wamid(), "delivered"))
	h.waitIdle()
	row, err := h.m.Sys.Rights.ResolveWaID(context.Background(), wa)
	if err != nil {
		h.t.Fatal(err)
	}
	return row.ID
}

// age moves a table's timestamps of one shopper back by d.
func (h *harness) age(sql, subject string, d time.Duration) {
	h.t.Helper()
	if _, err := h.m.Sys.DB.Pool.Exec(context.Background(), sql, subject, d); err != nil {
		h.t.Fatal(err)
	}
}

// Each category the policy data names is applied at its own period: a row
// just past it goes, one just inside it stays.
func TestRetentionPurgesEveryCategoryAtItsPeriod(t *testing.T) {
	h := newHarness(t)
	sys := h.m.Sys
	expired := retentionRows(h, "919811118881")
	kept := retentionRows(h, "919811118882")
	day := 24 * time.Hour
	period := func(cat string) time.Duration {
		p := sys.Policy.RetentionFor(cat)
		if p <= 0 {
			t.Fatalf("policy data has no period for %s", cat)
		}
		return p
	}
	type category struct {
		name   string
		age    string // moves the shopper's rows back by $2
		count  string // counts the shopper's rows of the category
		period time.Duration
	}
	cats := []category{
		{"chat: conversation state", `UPDATE sessions SET updated_at = now() - $2::interval WHERE subject_id = $1`,
			`SELECT count(*) FROM sessions WHERE subject_id = $1`, period("chat")},
		{"chat: sent messages", `UPDATE outbox SET sent_at = now() - $2::interval, created_at = now() - $2::interval
			WHERE subject_id = $1 AND kind = 'whatsapp'`,
			`SELECT count(*) FROM outbox WHERE subject_id = $1 AND kind = 'whatsapp'`, period("chat")},
		{"delivery_statuses", `UPDATE message_status SET updated_at = now() - $2::interval WHERE subject_id = $1`,
			`SELECT count(*) FROM message_status WHERE subject_id = $1`, period("delivery_statuses")},
		{"inbound_webhooks", `UPDATE inbox SET received_at = now() - $2::interval, processed_at = now() - $2::interval
			WHERE subject_id = $1`,
			`SELECT count(*) FROM inbox WHERE subject_id = $1`, period("inbound_webhooks")},
	}
	// A webhook to a partner, sent: order data, kept as long as orders.
	for _, s := range []string{expired, kept} {
		if _, err := sys.DB.Pool.Exec(context.Background(), `INSERT INTO outbox (ref, kind, subject_id, partner_id, sealed, status, sent_at)
			VALUES ('msg_hook_' || $1, 'partner', $1, 'p_test', '\x01', 'sent', now())`, s); err != nil {
			t.Fatal(err)
		}
	}
	cats = append(cats, category{"orders: sent partner webhooks",
		`UPDATE outbox SET sent_at = now() - $2::interval WHERE subject_id = $1 AND kind = 'partner'`,
		`SELECT count(*) FROM outbox WHERE subject_id = $1 AND kind = 'partner'`, period("orders")})
	for _, c := range cats {
		if h.count(c.count, expired) == 0 || h.count(c.count, kept) == 0 {
			t.Fatalf("%s: no rows to sweep", c.name)
		}
		h.age(c.age, expired, c.period+day)
		h.age(c.age, kept, c.period-day)
	}
	// Shoppers themselves are not expired (their last interaction is now):
	// only the categories' own rows go.
	res := h.sweep(time.Now())
	for _, c := range cats {
		if n := h.count(c.count, expired); n != 0 {
			t.Errorf("%s: %d rows past the period survive the sweep", c.name, n)
		}
		if n := h.count(c.count, kept); n == 0 {
			t.Errorf("%s: rows within the period were purged", c.name)
		}
	}
	for _, cat := range []string{"chat", "delivery_statuses", "inbound_webhooks", "orders"} {
		if res.Purged[cat] == 0 {
			t.Errorf("sweep result counts nothing purged for %s: %v", cat, res.Purged)
		}
	}
	if res.Erased != 0 {
		t.Errorf("sweep erased %d shoppers, want none", res.Erased)
	}
	// The shopper whose chat expired is still a customer: the next message
	// starts a fresh conversation.
	if _, err := sys.Rights.ResolveWaID(context.Background(), "919811118881"); err != nil {
		t.Errorf("purging chat erased the shopper: %v", err)
	}
	h.mustPost(textMsg("919811118881", "Hi again"))
	h.next("919811118881", "a reply after the purge", func(sent) bool { return true })
}

// Policy data that names a category the sweeper cannot apply, or lacks one
// it needs, stops the broker at start: it would otherwise publish a period
// nobody enforces.
func TestBrokerRefusesRetentionItCannotApply(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		change     func(retention map[string]any)
	}{
		{"unknown category", `retention: policy data names category "biometrics"`, func(r map[string]any) {
			r["biometrics"] = map[string]any{"days": 30, "basis": "test", "description": "fingerprints"}
		}},
		{"delivery statuses missing", `retention: policy data has no period for category "delivery_statuses"`, func(r map[string]any) { delete(r, "delivery_statuses") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.CopyFS(filepath.Join(dir, "sieve"), os.DirFS("../../policies/sieve")); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "sieve", "data.json")
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var data map[string]any
			if err := json.Unmarshal(raw, &data); err != nil {
				t.Fatal(err)
			}
			tc.change(data["retention"].(map[string]any))
			if err := os.WriteFile(path, []byte(mustJSON(data)), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := config.FromEnv(func(string) string { return "" })
			cfg.Database.URL = pgtest.NewURL(t)
			cfg.Keys.Dir = t.TempDir()
			cfg.Policy.Dir = dir
			cfg.SetDefaults()
			sys, err := wire.Open(context.Background(), cfg, nil)
			if err == nil {
				sys.Close()
				t.Fatal("the broker started with retention it cannot apply")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %s", err, tc.want)
			}
		})
	}
}
