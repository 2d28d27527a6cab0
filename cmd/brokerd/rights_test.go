package main

import (
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// The shopper's rights over the chat go through the same code as the
// officer's desk: "my data" lists who received what, "stop" withdraws the
// optional consents at once, "delete my data" erases after confirmation.
func TestShopperRightsOverTheChat(t *testing.T) {
	h := newHarness(t)
	_, retail := h.partner("Fresh Mart", broker.KindRetailer, "", "orders:read", "data:request")
	const wa = "919811118888"
	// Opt in to marketing this time.
	h.mustPost(textMsg(wa, "Hi"))
	h.next(wa, "notice", offers(commerce.IDConsentAccept))
	h.mustPost(replyMsg(wa, commerce.IDConsentAccept))
	h.next(wa, "opt-in", offers(commerce.IDMarketingYes))
	h.mustPost(replyMsg(wa, commerce.IDMarketingYes))
	h.next(wa, "catalog", kindIs("product_list"))
	h.mustPost(orderMsg(wa, item("SKU-ATTA-5KG", 2, "289.5")))
	h.next(wa, "cart", offers(commerce.IDCartConfirm))
	h.mustPost(replyMsg(wa, commerce.IDCartConfirm))
	h.next(wa, "address request", kindIs("location_request_message"))
	h.mustPost(textMsg(wa, "Flat 4, 7th Cross, Indiranagar, Bengaluru 560038"))
	slots := h.next(wa, "slots", kindIs("list"))
	h.mustPost(replyMsg(wa, slots.replyIDs()[0]))
	od := h.next(wa, "order_details", kindIs("order_details"))
	orderID := orderIDRe.FindString(od.text())
	h.pay(wa, od.referenceID(), 2*28950)

	var view map[string]any
	if r := h.do("GET", "/v1/orders/"+orderID, retail, nil, &view); r.StatusCode != 200 {
		t.Fatalf("order: %d", r.StatusCode)
	}
	ref := view["customer_ref"].(string)
	if view["delivery"].(map[string]any)["postal_code"] != "560038" {
		t.Errorf("typed address lost its PIN code: %v", view["delivery"])
	}
	market := func() (int, map[string]any) {
		var out map[string]any
		r := h.do("POST", "/v1/data-requests", retail, map[string]any{"subject": ref, "purpose": "marketing",
			"fields": []string{"customer.ref", "delivery.postal_code", "customer.phone"}}, &out)
		return r.StatusCode, out
	}
	st, out := market()
	if st != 200 || out["released"].(map[string]any)["delivery.postal_code"] != "560XXX" {
		t.Fatalf("marketing with consent: %d %v", st, out)
	}
	if strings.Contains(mustJSON(out), wa) {
		t.Fatal("data request leaked the phone")
	}

	// "my data": what is held and who received it.
	h.waitIdle()
	if _, err := h.m.Sys.IntegrateAudit(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.mustPost(textMsg(wa, "my data"))
	summary := h.next(wa, "data summary", contains("What we hold about you"))
	for _, want := range []string{"Fresh Mart", "order fulfilment", "marketing", "Never shared"} {
		if !strings.Contains(summary.text(), want) {
			t.Errorf("summary lacks %q:\n%s", want, summary.text())
		}
	}
	checkReceipts(t, h, summary.text(), 2)

	// "stop" withdraws marketing at once: the next request is denied.
	h.mustPost(textMsg(wa, "stop"))
	h.next(wa, "stop confirmation", contains("no offers"))
	st, out = market()
	if st != 200 || len(out["released"].(map[string]any)) != 0 || !strings.Contains(mustJSON(out["denied"]), "consent") {
		t.Fatalf("marketing after stop: %d %v", st, out)
	}

	// "delete my data": confirmation, erasure, then nothing is left.
	h.mustPost(textMsg(wa, "delete my data"))
	h.next(wa, "erase question", offers(commerce.IDEraseConfirm))
	h.mustPost(replyMsg(wa, commerce.IDEraseConfirm))
	h.next(wa, "erasure confirmation", contains("has been erased"))
	h.waitIdle()
	if r := h.do("GET", "/v1/orders/"+orderID, retail, nil, nil); r.StatusCode != 404 {
		t.Errorf("erased shopper's order: %d, want 404", r.StatusCode)
	}
	if st, _ := market(); st != 404 {
		t.Errorf("data request about an erased shopper: %d, want 404", st)
	}
	if n := h.count(`SELECT count(*) FROM subject_keys sk JOIN subjects s ON s.id = sk.subject_id WHERE s.erased_at IS NOT NULL`); n != 0 {
		t.Errorf("%d data keys of erased shoppers remain", n)
	}
}
