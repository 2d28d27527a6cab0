package main

import (
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/commerce"
)

// "pause my data" (GDPR Art. 18, SPEC §5.11): the paused shopper's orders
// are 404 to partners (read, list, data request), the chat answers only
// their rights, the pause and the resume are audited; "resume" opens it
// all again. "object" withdraws an optional purpose with reason objection.
func TestPauseMyDataAndObject(t *testing.T) {
	h := newHarness(t)
	retail := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer,
		Scopes: []string{"orders:read", "orders:write", "data:request"}})
	const wa = "919811190021"
	h.mustPost(textMsg(wa, "Hi"))
	h.next(wa, "notice", offers(commerce.IDConsentAccept))
	h.mustPost(replyMsg(wa, commerce.IDConsentAccept))
	h.next(wa, "opt-in", offers(commerce.IDMarketingYes))
	h.mustPost(replyMsg(wa, commerce.IDMarketingYes))
	h.next(wa, "catalog", kindIs("product_list"))
	h.mustPost(orderMsg(wa, item("SKU-ATTA-5KG", 1, "289.5")))
	h.next(wa, "cart", offers(commerce.IDCartConfirm))
	h.mustPost(replyMsg(wa, commerce.IDCartConfirm))
	h.next(wa, "address request", kindIs("location_request_message"))
	h.mustPost(locationMsg(wa, "12 MG Road, Bengaluru 560001"))
	slots := h.next(wa, "slots", kindIs("list"))
	h.mustPost(replyMsg(wa, slots.replyIDs()[0]))
	od := h.next(wa, "order_details", kindIs("order_details"))
	orderID := orderIDRe.FindString(od.text())
	h.pay(wa, od.referenceID(), 28950+3000) // with delivery
	h.waitIdle()

	var view map[string]any
	if r := h.do("GET", "/v1/orders/"+orderID, retail.Bearer, nil, &view); r.StatusCode != 200 {
		t.Fatalf("order before the pause: %d", r.StatusCode)
	}
	ref := view["customer_ref"].(string)
	market := func() int {
		return h.do("POST", "/v1/data-requests", retail.Bearer, map[string]any{"subject": ref, "purpose": "marketing",
			"fields": []string{"customer.ref", "delivery.postal_code"}}, nil).StatusCode
	}
	if st := market(); st != 200 {
		t.Fatalf("data request before the pause: %d", st)
	}
	listed := func() bool {
		var list map[string]any
		if r := h.do("GET", "/v1/orders", retail.Bearer, nil, &list); r.StatusCode != 200 {
			t.Fatalf("list: %d", r.StatusCode)
		}
		return strings.Contains(mustJSON(list), orderID)
	}
	if !listed() {
		t.Fatal("the order is not listed before the pause")
	}

	h.mustPost(textMsg(wa, "pause my data"))
	h.next(wa, "pause confirmation", contains("Paused"))
	h.waitIdle()
	if r := h.do("GET", "/v1/orders/"+orderID, retail.Bearer, nil, nil); r.StatusCode != 404 {
		t.Errorf("a paused shopper's order: %d, want 404", r.StatusCode)
	}
	if listed() {
		t.Error("a paused shopper's order is listed")
	}
	if st := market(); st != 404 {
		t.Errorf("data request about a paused shopper: %d, want 404", st)
	}
	if r := h.do("POST", "/v1/orders/"+orderID+"/status", retail.Bearer, map[string]any{"status": "accepted"}, nil); r.StatusCode != 404 {
		t.Errorf("status update of a paused shopper's order: %d, want 404", r.StatusCode)
	}
	// Shopping waits; rights still work.
	h.mustPost(textMsg(wa, "Hi"))
	h.next(wa, "paused answer", contains("Your data is paused"))
	h.mustPost(textMsg(wa, "my data"))
	h.next(wa, "data summary while paused", contains("What we hold about you"))

	h.mustPost(textMsg(wa, "resume"))
	h.next(wa, "resume confirmation", contains("Resumed"))
	h.waitIdle()
	if r := h.do("GET", "/v1/orders/"+orderID, retail.Bearer, nil, nil); r.StatusCode != 200 {
		t.Errorf("order after resume: %d, want 200", r.StatusCode)
	}
	if st := market(); st != 200 {
		t.Errorf("data request after resume: %d", st)
	}

	// Objection to marketing: withdrawn, audited with reason objection.
	h.mustPost(textMsg(wa, "object"))
	h.next(wa, "objection question", offers(commerce.IDObjectMarketing))
	h.mustPost(replyMsg(wa, commerce.IDObjectMarketing))
	h.next(wa, "objection recorded", contains("objection is recorded"))
	h.waitIdle()
	var out map[string]any
	h.do("POST", "/v1/data-requests", retail.Bearer, map[string]any{"subject": ref, "purpose": "marketing",
		"fields": []string{"customer.ref"}}, &out)
	if len(asMap(out["released"])) != 0 || !strings.Contains(mustJSON(out["denied"]), "consent") {
		t.Errorf("marketing after the objection: %v", out)
	}
	entries := `SELECT count(*) FROM (SELECT entry AS e FROM audit_pending UNION ALL SELECT leaf FROM audit_entries) x
		WHERE convert_from(e, 'UTF8')::jsonb->>'action' = $1 AND convert_from(e, 'UTF8')::jsonb->>'reason' = $2`
	for _, w := range [][2]string{{commerce.ActionRestriction, commerce.ReasonPaused},
		{commerce.ActionRestriction, commerce.ReasonResumed}, {"consent", commerce.ReasonObjection}} {
		if n := h.count(entries, w[0], w[1]); n != 1 {
			t.Errorf("%d %s entries with reason %s, want 1", n, w[0], w[1])
		}
	}
}
