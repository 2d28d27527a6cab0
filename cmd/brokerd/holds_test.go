package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// TestErasureHoldsInvoices is the retention engine's time travel: an
// erasure shreds the contact and fulfilment keys at once and holds the
// invoice key for its legal minimum (72 months, CGST Act s.36); the dump
// then holds no readable record of the shopper but the invoice, which
// opens only with the invoice key and carries no address; a sweep before
// the hold ends changes nothing, one after it shreds the invoice key.
func TestErasureHoldsInvoices(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	const wa = "919811170601"
	orderID := h.purchase(wa)
	subject, err := h.m.Sys.Rights.ResolveWaID(ctx, wa)
	if err != nil {
		t.Fatal(err)
	}
	keys := func() []string {
		rows, err := h.m.Sys.DB.Pool.Query(ctx, `SELECT subject_id FROM subject_keys WHERE subject_id LIKE $1 || '%' ORDER BY 1`, subject.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var k string
			_ = rows.Scan(&k)
			out = append(out, strings.TrimPrefix(k, subject.ID))
		}
		return out
	}
	if got := strings.Join(keys(), ","); got != ",#fulfilment,#invoice" {
		t.Fatalf("keys before the erasure: %q, want the contact, fulfilment and invoice keys", got)
	}

	// What a dump taken before the erasure holds.
	var fulfilment, identity []byte
	if err := h.m.Sys.DB.Pool.QueryRow(ctx, `SELECT o.sealed, s.sealed_identity FROM orders o JOIN subjects s
		ON s.id = o.subject_id WHERE o.id = $1`, orderID).Scan(&fulfilment, &identity); err != nil {
		t.Fatal(err)
	}
	h.mustPost(textMsg(wa, "delete my data"))
	h.next(wa, "erasure confirmation", offers(commerce.IDEraseConfirm))
	h.mustPost(replyMsg(wa, commerce.IDEraseConfirm))
	h.waitIdle()
	if got := strings.Join(keys(), ","); got != "#invoice" {
		t.Fatalf("keys after the erasure: %q, want only the held invoice key", got)
	}
	var until time.Time
	if err := h.m.Sys.DB.Pool.QueryRow(ctx, `SELECT hold_until FROM subject_holds WHERE subject_id = $1 AND category = 'invoice'`,
		subject.ID).Scan(&until); err != nil {
		t.Fatalf("no hold recorded: %v", err)
	}
	if d := time.Until(until) - 2190*24*time.Hour; d > time.Minute || d < -time.Minute {
		t.Errorf("hold until %v, want 72 months (2190 days) from now", until)
	}
	// The officers' list: the shopper by audit pseudonym, the basis in words.
	held, err := h.m.Sys.Holds.List(ctx, 10)
	if err != nil || len(held) != 1 || held[0].Pseudonym != h.m.Sys.Pseudo.Audit(subject.ID) ||
		held[0].Category != commerce.KeyInvoice || !strings.Contains(held[0].Basis, "s.36") || !held[0].Until.Equal(until) {
		t.Fatalf("held categories: %+v, %v", held, err)
	}
	inv, err := h.m.Sys.Holds.OpenInvoice(ctx, subject.ID, orderID)
	if err != nil || inv.OrderID != orderID || inv.Total != 2*28950+3*6400 || len(inv.Lines) != 2 {
		t.Fatalf("held invoice: %+v, %v", inv, err)
	}
	sealer := h.m.Sys.Service.Sealer
	if _, err := sealer.Open(ctx, subject.ID, broker.Binding{Table: "orders", Column: "sealed", RowID: orderID}, fulfilment); !broker.IsNotFound(err) {
		t.Errorf("the old dump's fulfilment record: %v, want erased", err)
	}
	if _, err := sealer.Open(ctx, subject.ID, broker.Binding{Table: "subjects", Column: "sealed_identity", RowID: subject.ID}, identity); !broker.IsNotFound(err) {
		t.Errorf("the old dump's identity: %v, want erased", err)
	}
	// The dump: the shopper's readable rows are gone, partners get 404.
	if n := h.count(`SELECT count(*) FROM orders WHERE id = $1 AND sealed IS NOT NULL`, orderID); n != 0 {
		t.Error("the order's fulfilment record survived")
	}
	if n := h.count(`SELECT count(*) FROM subjects WHERE id = $1 AND (sealed_identity IS NOT NULL OR wa_index IS NOT NULL)`, subject.ID); n != 0 {
		t.Error("the identity survived")
	}

	// A held invoice is released only for legal_obligation, to an officer
	// who approves it; anything else is refused. Both are audited.
	officer := broker.Party{ID: "off_asha", Kind: broker.KindOfficer}
	if _, dec, err := h.m.Sys.Holds.ReleaseHeld(ctx, officer, orderID, "order_fulfilment"); broker.ErrorCode(err) != broker.EDenied || dec == "" {
		t.Errorf("a held invoice for order_fulfilment: %v (decision %q), want a denial", err, dec)
	}
	if _, _, err := h.m.Sys.Holds.ReleaseHeld(ctx, broker.Party{ID: "cli_x", Kind: broker.KindRetailer}, orderID, "legal_obligation"); broker.ErrorCode(err) != broker.EForbidden {
		t.Errorf("a retailer asking for a held invoice: %v", err)
	}
	got, dec, err := h.m.Sys.Holds.ReleaseHeld(ctx, officer, orderID, "legal_obligation")
	if err != nil || got.OrderID != orderID {
		t.Fatalf("approved release: %+v %v", got, err)
	}
	if e, ok := h.auditEntry(dec); !ok || e.Purpose != "legal_obligation" || e.Actor != "officer:off_asha" || e.Outcome != "released" {
		t.Errorf("approved release entry %+v", e)
	}

	// Time travel: a sweep a day before the hold ends changes nothing; one
	// a day after shreds the invoice key, audited.
	holds := h.m.Sys.Holds
	holds.Now = func() time.Time { return until.Add(-24 * time.Hour) }
	if n, err := holds.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("early sweep: %d, %v", n, err)
	}
	holds.Now = func() time.Time { return until.Add(24 * time.Hour) }
	if n, err := holds.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep after the hold: %d, %v", n, err)
	}
	if got := keys(); len(got) != 0 {
		t.Errorf("keys after the hold: %v", got)
	}
	if _, err := holds.OpenInvoice(ctx, subject.ID, orderID); !broker.IsNotFound(err) {
		t.Errorf("invoice after the hold: %v", err)
	}
	if n, err := holds.Sweep(ctx); err != nil || n != 0 {
		t.Errorf("a second sweep shredded %d (%v): a hold is shredded once", n, err)
	}
	time.Sleep(1500 * time.Millisecond)
	if n := h.count(`SELECT count(*) FROM audit_entries WHERE action IN ('hold', 'shred') AND resource = 'category:invoice'`); n != 2 {
		t.Errorf("%d hold/shred entries, want 2", n)
	}
}

// TestInactivityWarningThenErasure is the time-travel test of issue 19:
// warning (an approved template, outside the 24-hour window, at least 48
// hours ahead) → no contact → erasure of the unheld categories → the
// invoice kept → shredded at the hold's end; and warning → the shopper
// writes → no erasure (the cancellation audited).
func TestInactivityWarningThenErasure(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	sys := h.m.Sys
	const silent, writes = "919811170701", "919811170702"
	orderID := h.purchase(silent)
	h.mustPost(textMsg(writes, "Hi"))
	h.next(writes, "notice", offers(commerce.IDConsentAccept))
	h.mustPost(replyMsg(writes, commerce.IDConsentAccept))
	h.next(writes, "thanks", contains("help"))
	h.waitIdle()
	period := sys.Retention.ShopperPeriod()
	ids := map[string]string{}
	for _, wa := range []string{silent, writes} {
		row, err := sys.Rights.ResolveWaID(ctx, wa)
		if err != nil {
			t.Fatal(err)
		}
		ids[wa] = row.ID
		// Due in a day, and outside the 24-hour window.
		if _, err := sys.DB.Pool.Exec(ctx, `UPDATE subjects SET last_interaction_at = now() - $2::interval,
			last_inbound_at = now() - $2::interval WHERE id = $1`, row.ID, period-24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	h.sweep(now)
	for _, wa := range []string{silent, writes} {
		w := h.next(wa, "erasure warning", kindIs("template"))
		if !strings.Contains(string(w.Raw), commerce.ErasureWarningTemplate) {
			t.Errorf("warning is not the %s template: %s", commerce.ErasureWarningTemplate, w.Raw)
		}
		if _, err := sys.Rights.ResolveWaID(ctx, wa); err != nil {
			t.Fatalf("erased at the warning: %v", err)
		}
		var after time.Time
		if err := sys.DB.Pool.QueryRow(ctx, `SELECT erase_after FROM erasure_warnings WHERE subject_id = $1`, ids[wa]).Scan(&after); err != nil ||
			after.Before(now.Add(commerce.MinErasureWarning-time.Millisecond)) {
			t.Errorf("erase_after %v (%v): want at least 48 hours after the warning", after, err)
		}
	}
	// The officers' list names both shoppers by audit pseudonym only.
	pending, err := sys.Warnings.List(ctx, 10)
	if err != nil || len(pending) != 2 {
		t.Fatalf("pending erasures: %+v, %v", pending, err)
	}
	for _, p := range pending {
		if p.Pseudonym != sys.Pseudo.Audit(ids[silent]) && p.Pseudonym != sys.Pseudo.Audit(ids[writes]) {
			t.Errorf("pending erasure names %q, not a shopper's audit pseudonym", p.Pseudonym)
		}
		if p.EraseAfter.Sub(p.WarnedAt) < commerce.MinErasureWarning {
			t.Errorf("pending erasure %+v: under 48 hours' warning", p)
		}
	}
	// Past the period but before the warning's 48 hours: no erasure yet.
	h.sweep(now.Add(25 * time.Hour))
	if _, err := sys.Rights.ResolveWaID(ctx, silent); err != nil {
		t.Fatal("erased before the warning's deadline")
	}

	// One shopper writes back before the deadline (WhatsApp timestamps
	// are in seconds: a message in the warning's own second predates it).
	time.Sleep(1100 * time.Millisecond)
	h.mustPost(textMsg(writes, "I am still here"))
	h.waitIdle()
	h.sweep(now.Add(commerce.MinErasureWarning + time.Hour))
	if _, err := sys.Rights.ResolveWaID(ctx, writes); err != nil {
		t.Errorf("the shopper who wrote back was erased: %v", err)
	}
	if _, err := sys.Rights.ResolveWaID(ctx, silent); err == nil {
		t.Fatal("the silent shopper was not erased after the warning's deadline")
	}
	// The silent shopper's unheld categories are gone, the invoice held.
	if n := h.count(`SELECT count(*) FROM subject_keys WHERE subject_id LIKE $1 || '%'`, ids[silent]); n != 1 {
		t.Errorf("%d keys left, want the held invoice key only", n)
	}
	if inv, err := sys.Holds.OpenInvoice(ctx, ids[silent], orderID); err != nil || inv.OrderID != orderID {
		t.Errorf("held invoice: %+v %v", inv, err)
	}
	time.Sleep(1500 * time.Millisecond)
	for reason, want := range map[string]int{commerce.WarnReasonSent: 2, commerce.WarnReasonCancelled: 1} {
		if n := h.count(`SELECT count(*) FROM audit_entries WHERE convert_from(leaf, 'UTF8')::jsonb->>'reason' = $1`, reason); n != want {
			t.Errorf("%d entries %s, want %d", n, reason, want)
		}
	}
	// The hold ends 72 months later.
	sys.Holds.Now = func() time.Time { return now.Add(2191 * 24 * time.Hour) }
	if n, err := sys.Holds.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("hold sweep: %d %v", n, err)
	}
	if n := h.count(`SELECT count(*) FROM subject_keys WHERE subject_id LIKE $1 || '%'`, ids[silent]); n != 0 {
		t.Errorf("%d keys left after the hold", n)
	}
}
