package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/commerce"
)

// rawItem is an order line with a quantity written verbatim into the JSON.
func rawItem(sku, quantity, price string) string {
	return fmt.Sprintf(`{"product_retailer_id":%q,"quantity":%s,"item_price":%s,"currency":"INR"}`, sku, quantity, price)
}

// TestHostileOrders: order messages with quantities outside 1..100000 (or
// not integers), sums that would wrap, and unreadable prices are refused
// whole, with a reply that says why; the cart, the conversation state,
// stock and orders are unchanged, and the shopper carries on with the cart
// they had. (The JSON corpus cannot hold these: a signed order message is
// a valid webhook that is stored and answered.)
func TestHostileOrders(t *testing.T) {
	h := newHarness(t)
	const wa = "919811174444"
	h.mustPost(textMsg(wa, "Hi"))
	h.next(wa, "privacy notice", offers(commerce.IDConsentAccept))
	h.mustPost(replyMsg(wa, commerce.IDConsentAccept))
	h.next(wa, "marketing opt-in", offers(commerce.IDMarketingNo))
	h.mustPost(replyMsg(wa, commerce.IDMarketingNo))
	h.next(wa, "product list", kindIs("product_list"))
	h.mustPost(orderMsg(wa, item("SKU-ATTA-5KG", 2, "289.5")))
	h.next(wa, "cart summary", offers(commerce.IDCartConfirm))
	h.waitIdle()
	subject := h.subjectOf(wa)
	state := func() string {
		var s string
		if err := h.m.Sys.DB.Pool.QueryRow(t.Context(), `SELECT state FROM sessions WHERE subject_id = $1`, subject).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	stateBefore := state()
	stock := `SELECT coalesce(sum(stock), 0) FROM products`
	stockBefore, ordersBefore := h.count(stock), h.count(`SELECT count(*) FROM orders`)

	const quantityReason = "quantity must be a whole number from 1 to 100000"
	for _, tc := range []struct {
		name  string
		items []string
		why   string
	}{
		{"zero", []string{rawItem("SKU-ATTA-5KG", "0", "289.5")}, quantityReason},
		{"negative", []string{rawItem("SKU-ATTA-5KG", "-2", "289.5")}, quantityReason},
		{"over the maximum", []string{rawItem("SKU-ATTA-5KG", "100001", "289.5")}, quantityReason},
		{"int64 max", []string{rawItem("SKU-ATTA-5KG", "9223372036854775807", "289.5")}, quantityReason},
		{"sum wraps", []string{rawItem("SKU-ATTA-5KG", "9223372036854775807", "289.5"), rawItem("SKU-ATTA-5KG", "2", "289.5")}, quantityReason},
		{"same sku over the maximum", []string{rawItem("SKU-ATTA-5KG", "100000", "289.5"), rawItem("SKU-ATTA-5KG", "100000", "289.5")}, quantityReason},
		{"fractional", []string{rawItem("SKU-ATTA-5KG", "1.5", "289.5")}, quantityReason},
		{"exponent", []string{rawItem("SKU-ATTA-5KG", "1e9", "289.5")}, quantityReason},
		{"string", []string{rawItem("SKU-ATTA-5KG", `"2"`, "289.5")}, quantityReason},
		{"one good line, one bad", []string{rawItem("SKU-MILK-1L", "1", "64"), rawItem("SKU-ATTA-5KG", "-1", "289.5")}, quantityReason},
		{"negative price", []string{rawItem("SKU-ATTA-5KG", "1", "-289.5")}, "prices could not be read"},
		{"total overflows", []string{rawItem("SKU-ATTA-5KG", "100000", "92233720368547758")}, "prices could not be read"},
		{"no product id", []string{rawItem("", "1", "10")}, "no products we can identify"},
		{"no lines", nil, "no products we can identify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.mustPost(orderMsg(wa, tc.items...))
			r := h.next(wa, "refusal", contains("cannot take that order"))
			if !strings.Contains(r.text(), tc.why) || !strings.Contains(r.text(), "Nothing has changed") {
				t.Errorf("refusal does not say why (%q): %q", tc.why, r.text())
			}
		})
	}
	h.waitIdle()
	if s := state(); s != stateBefore {
		t.Errorf("conversation state %q, was %q", s, stateBefore)
	}
	if n := h.count(stock); n != stockBefore {
		t.Errorf("stock %d, was %d", n, stockBefore)
	}
	if n := h.count(`SELECT count(*) FROM orders`); n != ordersBefore {
		t.Errorf("%d orders, was %d", n, ordersBefore)
	}
	// The cart the shopper had is still theirs.
	h.mustPost(replyMsg(wa, commerce.IDCartConfirm))
	h.next(wa, "location request for the earlier cart", kindIs("location_request_message"))
	// The largest valid quantity is taken (and capped by the cart's limit).
	h.mustPost(orderMsg(wa, rawItem("SKU-MILK-1L", "100000", "64")))
	if r := h.next(wa, "cart summary", offers(commerce.IDCartConfirm)); !strings.Contains(r.text(), "Milk") {
		t.Errorf("cart summary: %q", r.text())
	}
}
