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
	inv, err := h.m.Sys.Holds.OpenInvoice(ctx, subject.ID, orderID)
	if err != nil || inv.OrderID != orderID || inv.Total != 2*28950+3*6400 || len(inv.Lines) != 2 {
		t.Fatalf("held invoice: %+v, %v", inv, err)
	}
	sealer := h.m.Sys.Shop.Sealer
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
