package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

var orderIDRe = regexp.MustCompile(`ord_[a-z2-7]{26}`)

// checkout drives a shopper from "Hi" to the payment request and returns
// the order id, the payment reference and the total in paise.
func (h *harness) checkout(wa string) (orderID, ref string, total int64) {
	h.t.Helper()
	h.mustPost(textMsg(wa, "Hi"))
	h.next(wa, "privacy notice", offers(commerce.IDConsentAccept))
	h.mustPost(replyMsg(wa, commerce.IDConsentAccept))
	h.next(wa, "marketing opt-in", offers(commerce.IDMarketingNo))
	h.mustPost(replyMsg(wa, commerce.IDMarketingNo))
	h.next(wa, "product list", kindIs("product_list"))
	// item_price is fractional on the wire: 289.5 rupees.
	h.mustPost(orderMsg(wa, item("SKU-ATTA-5KG", 2, "289.5"), item("SKU-MILK-1L", 3, "64")))
	cart := h.next(wa, "cart summary", offers(commerce.IDCartConfirm))
	if !strings.Contains(cart.text(), "₹579.00") || !strings.Contains(cart.text(), "₹771.00") {
		h.t.Errorf("cart summary amounts wrong: %q", cart.text())
	}
	h.mustPost(replyMsg(wa, commerce.IDCartConfirm))
	h.next(wa, "location request", kindIs("location_request_message"))
	h.mustPost(locationMsg(wa, "12 MG Road, Bengaluru 560001"))
	slots := h.next(wa, "slot list", kindIs("list"))
	ids := slots.replyIDs()
	if len(ids) == 0 || !strings.HasPrefix(ids[0], "slot:") {
		h.t.Fatalf("no slots offered: %v", ids)
	}
	h.mustPost(replyMsg(wa, ids[0]))
	od := h.next(wa, "order_details", kindIs("order_details"))
	ref = od.referenceID()
	orderID = orderIDRe.FindString(od.text())
	if ref == "" || orderID == "" || !strings.HasPrefix(ref, orderID) || len(ref) > 35 {
		h.t.Fatalf("bad order_details: ref %q order %q", ref, orderID)
	}
	return orderID, ref, 2*28950 + 3*6400
}

func (h *harness) mustPost(value string) {
	h.t.Helper()
	if st := h.webhook(envelope(value)); st != 200 {
		h.t.Fatalf("webhook answered %d", st)
	}
}

// pay sends the captured payment and waits for the confirmation.
func (h *harness) pay(wa, ref string, total int64) {
	h.t.Helper()
	h.mustPost(paymentStatus(wa, ref, total, "captured", "success"))
	h.next(wa, "confirmation", contains("is placed"))
}

func TestPurchaseEndToEnd(t *testing.T) {
	h := newHarness(t)
	_, retail := h.partner("Fresh Mart", broker.KindRetailer, "", "orders:read", "orders:write")
	_, other := h.partner("Other Mart", broker.KindRetailer, "999", "orders:read")
	logiID, logi := h.partner("Couriers", broker.KindLogistics, "", "delivery:read", "delivery:message")
	const wa = "919811112222"
	orderID, ref, total := h.checkout(wa)
	h.mustPost(paymentStatus(wa, ref, total, "captured", "success"))
	// The confirmation is the order_status update itself (one message).
	if conf := h.next(wa, "confirmation", contains("is placed")); conf.kind() != "order_status" {
		t.Errorf("confirmation is a %s, want the order_status update", conf.kind())
	}

	var view map[string]any
	resp := h.do("GET", "/v1/orders/"+orderID, retail, nil, &view)
	if resp.StatusCode != 200 {
		t.Fatalf("retailer GET order: %d %v", resp.StatusCode, view)
	}
	if resp.Header.Get("X-Decision-Id") == "" {
		t.Error("no X-Decision-Id")
	}
	raw := mustJSON(view)
	for _, leak := range []string{wa, "Asha", "98111"} {
		if strings.Contains(raw, leak) {
			t.Errorf("retailer view leaks %q: %s", leak, raw)
		}
	}
	if view["order_id"] != orderID || view["status"] != "placed" {
		t.Errorf("view: %s", raw)
	}
	ref1, _ := view["customer_ref"].(string)
	if !strings.HasPrefix(ref1, "cus_") {
		t.Errorf("customer_ref %q", ref1)
	}
	priv := view["privacy"].(map[string]any)
	withheld := mustJSON(priv["withheld"])
	for _, f := range []string{"customer.phone", "customer.profile_name", "chat"} {
		if !strings.Contains(withheld, f) {
			t.Errorf("withheld %s lacks %s", withheld, f)
		}
	}
	if d := view["delivery"].(map[string]any); d["postal_code"] != "560001" {
		t.Errorf("delivery %v", d)
	}
	if tot := view["total"].(map[string]any); tot["value"].(float64) != float64(total) || tot["offset"].(float64) != 100 {
		t.Errorf("total %v", tot)
	}

	// Another retailer, and logistics before dispatch: 404, not 403.
	if r := h.do("GET", "/v1/orders/"+orderID, other, nil, nil); r.StatusCode != 404 {
		t.Errorf("other retailer got %d", r.StatusCode)
	}
	if r := h.do("GET", "/v1/orders/"+orderID+"/delivery", logi, nil, nil); r.StatusCode != 404 {
		t.Errorf("logistics before dispatch got %d", r.StatusCode)
	}

	// The list shows it too, with the same pseudonym.
	var list struct {
		Orders []map[string]any `json:"orders"`
	}
	h.do("GET", "/v1/orders?status=placed", retail, nil, &list)
	if len(list.Orders) != 1 || list.Orders[0]["customer_ref"] != ref1 {
		t.Errorf("list: %v", list.Orders)
	}

	// The retailer hands the order to its courier (SPEC §4 dispatch).
	if r := h.do("POST", "/v1/orders/"+orderID+"/dispatch", retail, map[string]any{"logistics": logiID}, nil); r.StatusCode != 200 {
		t.Fatalf("dispatch: %d", r.StatusCode)
	}

	// Status update: internal fields never reach the shopper.
	var res map[string]any
	resp = h.do("POST", "/v1/orders/"+orderID+"/status", retail, map[string]any{"status": "out_for_delivery",
		"eta": "7:30 pm", "internal_note": "picker Ravi, shelf B4", "staff_name": "Ravi K", "cost_price": 41000}, &res)
	if resp.StatusCode != 200 {
		t.Fatalf("status update: %d %v", resp.StatusCode, res)
	}
	upd := h.next(wa, "status update", kindIs("order_status"))
	for _, leak := range []string{"Ravi", "B4", "41000"} {
		if strings.Contains(string(upd.Raw), leak) {
			t.Errorf("shopper got retailer-internal %q: %s", leak, upd.Raw)
		}
	}
	if !strings.Contains(upd.text(), "7:30 pm") {
		t.Errorf("ETA not relayed: %s", upd.text())
	}

	// Now logistics sees the delivery view, with its own pseudonym.
	var dv map[string]any
	if r := h.do("GET", "/v1/orders/"+orderID+"/delivery", logi, nil, &dv); r.StatusCode != 200 {
		t.Fatalf("delivery view: %d %v", r.StatusCode, dv)
	}
	if dv["customer_ref"] == ref1 || dv["customer_ref"] == nil {
		t.Errorf("pseudonyms must differ per partner: %v vs %v", dv["customer_ref"], ref1)
	}
	if strings.Contains(mustJSON(dv), wa) {
		t.Error("delivery view leaks the phone")
	}

	// Relay: the courier writes, the shopper receives, the number stays hidden.
	if r := h.do("POST", "/v1/orders/"+orderID+"/messages", logi, map[string]string{"text": "At your gate"}, &res); r.StatusCode != 202 {
		t.Fatalf("relay: %d %v", r.StatusCode, res)
	}
	if strings.Contains(mustJSON(res), wa) {
		t.Error("relay answer leaks the phone")
	}
	relayed := h.next(wa, "relayed text", contains("At your gate"))
	if relayed.To != "+"+wa {
		t.Errorf("relay sent to %q", relayed.To)
	}
}

func TestRedeliveryAndBatches(t *testing.T) {
	h := newHarness(t)
	const a, b = "919800000001", "919800000002"
	hi := envelope(textMsg(a, "Hi"))
	for range 3 { // Meta redelivers: the same message id three times
		if st := h.webhook(hi); st != 200 {
			t.Fatalf("webhook %d", st)
		}
	}
	// One notification: two changes, one with two shoppers' messages.
	batch := envelope(textMsg(b, "Hi"), textMsg(b, "hello again"))
	if st := h.webhook(batch); st != 200 {
		t.Fatal(st)
	}
	h.next(a, "notice", offers(commerce.IDConsentAccept))
	h.next(b, "notice", offers(commerce.IDConsentAccept))
	h.next(b, "second notice", offers(commerce.IDConsentAccept))
	if n := h.count(`SELECT count(*) FROM inbox WHERE kind = 'message' AND dedup_key LIKE 'k:%'`); n != 3 {
		t.Errorf("inbox has %d messages, want 3 (a once, b twice)", n)
	}
	// a got exactly one notice despite three deliveries.
	h.waitIdle()
	n := 0
	for _, m := range h.wa.all() {
		if m.To == "+"+a {
			n++
		}
	}
	if n != 1 {
		t.Errorf("a got %d messages, want 1", n)
	}
}

func TestFailedThenCapturedPaymentAndOutOfOrderStatuses(t *testing.T) {
	h := newHarness(t)
	h.partner("Fresh Mart", broker.KindRetailer, "", "orders:read")
	const wa = "919811113333"
	orderID, ref, total := h.checkout(wa)
	h.mustPost(paymentStatus(wa, ref, total, "pending", "failed"))
	h.next(wa, "failure notice", contains("did not go through"))
	h.pay(wa, ref, total)
	if st := h.orderStatus(orderID); st != commerce.StatusPlaced {
		t.Fatalf("order %s", st)
	}
	// A redelivered capture changes nothing.
	h.mustPost(paymentStatus(wa, ref, total, "captured", "success"))
	// Statuses out of order: read before delivered before sent.
	var id string // the first message the fake Send API accepted for wa
	for _, m := range h.wa.all() {
		if strings.TrimPrefix(m.To, "+") == wa {
			id = m.ID
			break
		}
	}
	h.mustPost(statusMsg(wa, id, "read"))
	h.mustPost(statusMsg(wa, id, "delivered"))
	h.mustPost(statusMsg(wa, id, "sent"))
	h.waitIdle()
	// Matched by the keyed hash of the shopper and the id (SPEC §5.8).
	var subject, st string
	h.m.Sys.DB.Pool.QueryRow(t.Context(), `SELECT subject_id FROM orders WHERE id = $1`, orderID).Scan(&subject) //nolint:errcheck
	key := h.m.Sys.Pseudo.ProviderKey(subject, id)
	h.m.Sys.DB.Pool.QueryRow(t.Context(), `SELECT status FROM message_status WHERE provider_id = $1`, key).Scan(&st) //nolint:errcheck
	if st != "read" {
		t.Errorf("status regressed to %q", st)
	}
	if n := h.count(`SELECT count(*) FROM orders WHERE subject_id = (SELECT subject_id FROM orders WHERE id = $1)`, orderID); n != 1 {
		t.Errorf("%d orders", n)
	}
}

func TestCancelReleasesStock(t *testing.T) {
	h := newHarness(t)
	const wa = "919811114444"
	before := h.count(`SELECT stock FROM products WHERE sku = 'SKU-ATTA-5KG'`)
	orderID, _, _ := h.checkout(wa)
	if got := h.count(`SELECT stock FROM products WHERE sku = 'SKU-ATTA-5KG'`); got != before-2 {
		t.Errorf("stock %d, want %d reserved", got, before-2)
	}
	h.mustPost(textMsg(wa, "cancel"))
	h.next(wa, "cancel confirmation", contains("is cancelled"))
	if st := h.orderStatus(orderID); st != commerce.StatusCancelled {
		t.Errorf("order %s", st)
	}
	if got := h.count(`SELECT stock FROM products WHERE sku = 'SKU-ATTA-5KG'`); got != before {
		t.Errorf("stock %d after cancel, want %d", got, before)
	}
}

func TestShopperWithoutFromAndOpaqueIDs(t *testing.T) {
	h := newHarness(t)
	// A username user: no from, no wa_id; a BSUID instead.
	body := envelope(`"contacts":[{"profile":{"name":"Ravi"},"user_id":"IN.1410000000000001"}],"messages":[{"from_user_id":"IN.1410000000000001","id":"` +
		wamidFor("IN.1410000000000001") + `","timestamp":` + ts() + `,"type":"text","text":{"body":"Hi"}}]`)
	if st := h.webhook(body); st != 200 {
		t.Fatalf("%d", st)
	}
	h.next("IN.1410000000000001", "notice to the BSUID", offers(commerce.IDConsentAccept))
	// A from that is no phone number at all: kept as an opaque id.
	if st := h.webhook(envelope(textMsg("not-a-number!", "Hi"))); st != 200 {
		t.Fatalf("%d", st)
	}
	h.waitIdle()
	if n := h.count(`SELECT count(*) FROM subjects`); n != 2 {
		t.Errorf("%d subjects", n)
	}
}

func TestBadSignaturesStoreNothing(t *testing.T) {
	h := newHarness(t)
	body := envelope(textMsg("919811115555", "Hi"))
	for name, sig := range map[string]string{
		"missing":      "",
		"wrong secret": "sha256=" + strings.Repeat("ab", 32),
		"no prefix":    strings.TrimPrefix(signOf(body), "sha256="),
		"truncated":    signOf(body)[:40],
		"other body":   signOf(body + " "),
	} {
		if st := h.webhookSigned(body, sig); st != 401 {
			t.Errorf("%s: status %d, want 401", name, st)
		}
	}
	if n := h.count(`SELECT count(*) FROM inbox`); n != 0 {
		t.Errorf("%d inbox rows after bad signatures", n)
	}
	if n := h.count(`SELECT count(*) FROM subjects`); n != 0 {
		t.Errorf("%d subjects after bad signatures", n)
	}
}
