package main

import (
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/cmd/internal/config"
)

// TestHostileOffers: the offer endpoints under abuse. Accepting twice,
// accepting after expiry, accepting another store's offer, declining after
// acceptance, and malformed ids are each a clear 4xx that changes nothing:
// the order keeps its store and status, every offer keeps its status.
func TestHostileOffers(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Workers.OfferTTL = 2 * time.Second })
	_, aTok := h.store("Store A", postgres.PartnerRegistry{Serves: serves("560001")})
	bID, bTok := h.store("Store B", postgres.PartnerRegistry{Serves: serves("560001")})

	snapshot := func(orderID string) string {
		t.Helper()
		// Two statements, not a subquery: on Citus the offers live on the
		// coordinator and the orders on the workers, which one query cannot join.
		var order, offers string
		if err := h.m.Sys.DB.Pool.QueryRow(t.Context(), `SELECT status || '/' || coalesce(retailer_id, '-')
			FROM orders WHERE id = $1`, orderID).Scan(&order); err != nil {
			t.Fatal(err)
		}
		if err := h.m.Sys.DB.Pool.QueryRow(t.Context(), `SELECT coalesce(string_agg(partner_id || ':' || status, ',' ORDER BY rank), '')
			FROM offers WHERE order_id = $1`, orderID).Scan(&offers); err != nil {
			t.Fatal(err)
		}
		return order + "/" + offers
	}
	post := func(what, path, tok string, want int) {
		t.Helper()
		if r := h.do("POST", path, tok, nil, nil); r.StatusCode != want {
			t.Errorf("%s: %d, want %d", what, r.StatusCode, want)
		}
	}

	// Expiry: A lets its offer lapse; B gets the order.
	orderID := h.routedCheckout("919811117777", "12 MG Road, Bengaluru 560001")
	aOffers, _ := h.openOffers(aTok)
	if len(aOffers) != 1 {
		t.Fatalf("A has %d offers", len(aOffers))
	}
	aOffer := "/v1/offers/" + aOffers[0]["offer_id"].(string)
	post("B accepts A's offer", aOffer+"/accept", bTok, 404)
	post("B declines A's offer", aOffer+"/decline", bTok, 404)
	var bOffers []map[string]any
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && len(bOffers) == 0; {
		time.Sleep(100 * time.Millisecond)
		bOffers, _ = h.openOffers(bTok)
	}
	if len(bOffers) != 1 {
		t.Fatal("B never got the offer after A's expired")
	}
	before := snapshot(orderID)
	post("A accepts after expiry", aOffer+"/accept", aTok, 409)
	post("A declines after expiry", aOffer+"/decline", aTok, 409)
	if after := snapshot(orderID); after != before {
		t.Errorf("refused calls changed the order: %s -> %s", before, after)
	}

	bOffer := "/v1/offers/" + bOffers[0]["offer_id"].(string)
	post("A accepts B's offer", bOffer+"/accept", aTok, 404)
	post("B accepts", bOffer+"/accept", bTok, 200)
	before = snapshot(orderID)
	if want := "pending_payment/" + bID; before[:len(want)] != want {
		t.Fatalf("after B accepted: %s", before)
	}
	post("B accepts twice", bOffer+"/accept", bTok, 409)
	post("B declines after accepting", bOffer+"/decline", bTok, 409)
	post("A declines B's accepted offer", bOffer+"/decline", aTok, 404)
	for _, bad := range []string{"/v1/offers/off_x/accept", "/v1/offers/%00/accept", "/v1/offers/" + orderID + "/accept",
		"/v1/offers/off_aaaaaaaaaaaaaaaaaaaaaaaaaa/decline"} {
		post("malformed "+bad, bad, bTok, 404)
	}
	if after := snapshot(orderID); after != before {
		t.Errorf("refused calls changed the order: %s -> %s", before, after)
	}
}

// TestOfferRaces: several sweepers (as several brokerd would run) expiring
// the same offer move the order on exactly once, and many acceptances of
// the one open offer at once give exactly one 200.
func TestOfferRaces(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Workers.OfferTTL = time.Minute })
	h.store("Store A", postgres.PartnerRegistry{Serves: serves("560001")})
	_, bTok := h.store("Store B", postgres.PartnerRegistry{Serves: serves("560001")})
	h.store("Store C", postgres.PartnerRegistry{Serves: serves("560001")})
	orderID := h.routedCheckout("919811118888", "12 MG Road, Bengaluru 560001")

	if _, err := h.m.Sys.DB.Pool.Exec(t.Context(), `UPDATE offers SET expires_at = now() - interval '1 second'
		WHERE order_id = $1 AND status = 'open'`, orderID); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 6)
	for range 6 {
		go func() { _, err := h.m.Sys.Market.ExpireOffers(t.Context()); errs <- err }()
	}
	for range 6 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var open, expired int
	if err := h.m.Sys.DB.Pool.QueryRow(t.Context(), `SELECT count(*) FILTER (WHERE status = 'open'),
		count(*) FILTER (WHERE status = 'expired') FROM offers WHERE order_id = $1`, orderID).Scan(&open, &expired); err != nil {
		t.Fatal(err)
	}
	if open != 1 || expired != 1 {
		t.Fatalf("after concurrent sweeps: %d open, %d expired; want 1 and 1", open, expired)
	}
	bOffers, _ := h.openOffers(bTok)
	if len(bOffers) != 1 {
		t.Fatalf("B has %d offers; want the one the sweep opened", len(bOffers))
	}
	path := "/v1/offers/" + bOffers[0]["offer_id"].(string) + "/accept"
	codes := make(chan int, 8)
	for range 8 {
		go func() { codes <- h.do("POST", path, bTok, nil, nil).StatusCode }()
	}
	won := 0
	for range 8 {
		switch c := <-codes; c {
		case 200:
			won++
		case 409:
		default:
			t.Errorf("a concurrent accept answered %d", c)
		}
	}
	if won != 1 {
		t.Errorf("%d acceptances won; want exactly 1", won)
	}
	if st := h.orderStatus(orderID); st != "pending_payment" {
		t.Errorf("order %s after the race", st)
	}
}
