package main

import (
	"context"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/commerce"
)

// The retention sweeper erases shoppers whose last interaction is older
// than the identity retention period of the policy data (3 years, DPDP
// Third Schedule), audits each erasure, and leaves recent shoppers alone.
func TestRetentionSweepErasesExpiredShoppers(t *testing.T) {
	h := newHarness(t)
	const old, recent = "919811116666", "919811117777"
	for _, wa := range []string{old, recent} {
		h.mustPost(textMsg(wa, "Hi"))
		h.next(wa, "notice", offers(commerce.IDConsentAccept))
	}
	h.waitIdle()
	ctx := context.Background()
	sys := h.m.Sys
	oldRow, err := sys.Rights.ResolveWaID(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	period := sys.Policy.RetentionFor("identity")
	if period < 3*365*24*time.Hour {
		t.Fatalf("identity retention %s, want at least 3 years", period)
	}
	if _, err := sys.DB.Pool.Exec(ctx, `UPDATE subjects SET last_interaction_at = now() - $2::interval WHERE id = $1`,
		oldRow.ID, period+24*time.Hour); err != nil {
		t.Fatal(err)
	}
	// Two sweepers at once (two processes): one erasure, no error.
	errs := make(chan error, 2)
	counts := make(chan int, 2)
	for range 2 {
		go func() {
			n, err := sys.SweepRetention(ctx, time.Now())
			counts <- n
			errs <- err
		}()
	}
	total := 0
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("sweep: %v", err)
		}
		total += <-counts
	}
	if total < 1 {
		t.Fatalf("sweep erased %d shoppers, want the expired one", total)
	}
	if _, err := sys.Rights.ResolveWaID(ctx, old); err == nil {
		t.Error("expired shopper still resolvable")
	}
	if _, err := sys.Rights.ResolveWaID(ctx, recent); err != nil {
		t.Errorf("recent shopper erased: %v", err)
	}
	var n int
	if err := sys.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM subject_keys WHERE subject_id = $1`, oldRow.ID).Scan(&n); err != nil || n != 0 {
		t.Errorf("data key of the expired shopper survives (n=%d, err=%v)", n, err)
	}
	if _, err := sys.IntegrateAudit(ctx); err != nil {
		t.Fatal(err)
	}
	entries, err := sys.DB.SubjectAudit(ctx, sys.Pseudo.Audit(oldRow.ID), 100)
	if err != nil {
		t.Fatal(err)
	}
	erasures := 0
	for _, e := range entries {
		if e.Action == "erase" && e.Actor == "system:retention" && e.Reason == "retention" {
			erasures++
		}
	}
	if erasures == 0 {
		t.Errorf("no audited retention erasure among %d entries", len(entries))
	}
}
