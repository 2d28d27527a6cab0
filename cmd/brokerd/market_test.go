package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/cmd/internal/config"
	"github.com/sieve-broker/sieve/commerce"
)

// store registers a retailer with a service area and returns its id and token.
func (h *harness) store(name string, area postgres.PartnerRegistry) (string, string) {
	h.t.Helper()
	id, tok := h.partner(name, broker.KindRetailer, "", "orders:read", "orders:write")
	if err := h.m.Sys.DB.Partners().UpdatePartnerRegistry(h.t.Context(), id, area); err != nil {
		h.t.Fatal(err)
	}
	return id, tok
}

func serves(codes ...string) *[]string { return &codes }
func at(lat, lon float64) *[2]float64  { return &[2]float64{lat, lon} }

// routedCheckout drives a shopper to the routing step (address pinned in
// 560001) and returns the order id from the "finding a store" message.
func (h *harness) routedCheckout(wa, address string) string {
	h.t.Helper()
	h.mustPost(textMsg(wa, "Hi"))
	h.next(wa, "privacy notice", offers(commerce.IDConsentAccept))
	h.mustPost(replyMsg(wa, commerce.IDConsentAccept))
	h.next(wa, "marketing opt-in", offers(commerce.IDMarketingNo))
	h.mustPost(replyMsg(wa, commerce.IDMarketingNo))
	h.next(wa, "product list", kindIs("product_list"))
	h.mustPost(orderMsg(wa, item("SKU-ATTA-5KG", 2, "289.5"), item("SKU-MILK-1L", 3, "64")))
	h.next(wa, "cart summary", offers(commerce.IDCartConfirm))
	h.mustPost(replyMsg(wa, commerce.IDCartConfirm))
	// In the marketplace an Indian shopper is asked with the address
	// form; a location pin still answers it.
	h.next(wa, "address form", kindIs("address_message"))
	h.mustPost(locationMsg(wa, address))
	return h.routeAfterAddress(wa)
}

// routeAfterAddress picks the first slot and returns the routed order id.
func (h *harness) routeAfterAddress(wa string) string {
	h.t.Helper()
	slots := h.next(wa, "slot list", kindIs("list"))
	h.mustPost(replyMsg(wa, slots.replyIDs()[0]))
	m := h.next(wa, "routing", func(s sent) bool {
		return strings.Contains(s.text(), "Finding the nearest store") || s.kind() == "order_details" ||
			strings.Contains(s.text(), "no store")
	})
	id := orderIDRe.FindString(m.text())
	if !strings.Contains(m.text(), "Finding the nearest store") || id == "" {
		h.t.Fatalf("after the slot: %s %q; want the routing message", m.kind(), m.text())
	}
	return id
}

// openOffers lists a store's open offers (raw JSON, to check what is in it).
func (h *harness) openOffers(tok string) ([]map[string]any, string) {
	h.t.Helper()
	var raw json.RawMessage
	if r := h.do("GET", "/v1/offers", tok, nil, &raw); r.StatusCode != 200 {
		h.t.Fatalf("GET /v1/offers: %d", r.StatusCode)
	}
	var body struct {
		Offers []map[string]any `json:"offers"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		h.t.Fatal(err)
	}
	return body.Offers, string(raw)
}

const house = "221B Baker Lane"

// auditActions counts the audit entries of a resource by action,
// integrated or pending.
func (h *harness) auditActions(resource string) map[string]int {
	h.t.Helper()
	rows, err := h.m.Sys.DB.Pool.Query(h.t.Context(), `SELECT leaf FROM audit_entries UNION ALL SELECT entry FROM audit_pending`)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			h.t.Fatal(err)
		}
		var e struct{ Action, Resource string }
		if json.Unmarshal(raw, &e) == nil && e.Resource == resource {
			out[e.Action]++
		}
	}
	return out
}

// TestMarketplaceRouting (SPEC §9): a shopper pinned in 560001; stores A
// (serves 560001, nearest), B (serves 560001, farther, created first) and C
// (serves 560034). A is offered first; its offer holds items, slot and
// postal code only; A declines, B gets it and accepts; C never sees an
// offer; A and C get 404 for the order; B's view has the locality, never
// the house; the courier B dispatches to gets the full address only while
// out for delivery, another courier 404.
func TestMarketplaceRouting(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Workers.OfferTTL = time.Minute })
	_, bTok := h.store("Store B", postgres.PartnerRegistry{Serves: serves("560001"), Location: at(13.03, 77.66)})
	aID, aTok := h.store("Store A", postgres.PartnerRegistry{Serves: serves("560001", "560002"), Location: at(12.975, 77.60)})
	_, cTok := h.store("Store C", postgres.PartnerRegistry{Serves: serves("560034"), Location: at(12.972, 77.595)})
	courierID, courier := h.partner("Courier", broker.KindLogistics, "", "delivery:read", "delivery:message")
	_, other := h.partner("Other Courier", broker.KindLogistics, "", "delivery:read")

	const wa = "919811114444"
	orderID := h.routedCheckout(wa, house+", Indiranagar, near Metro Pillar 42, Bengaluru 560001")

	aOffers, aRaw := h.openOffers(aTok)
	if len(aOffers) != 1 {
		t.Fatalf("A has %d offers; want 1 (nearest first)", len(aOffers))
	}
	keys := make([]string, 0)
	for k := range aOffers[0] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"expires_at", "items", "offer_id", "postal_code", "privacy", "slot"}; !slices.Equal(keys, want) {
		t.Errorf("offer keys %v; want %v", keys, want)
	}
	for _, leak := range []string{"221B", "Baker", "Indiranagar", "Metro", orderID, "cus_", "9198111"} {
		if strings.Contains(aRaw, leak) {
			t.Errorf("A's offer contains %q: %s", leak, aRaw)
		}
	}
	if aOffers[0]["postal_code"] != "560001" {
		t.Errorf("offer postal code %v", aOffers[0]["postal_code"])
	}
	for name, tok := range map[string]string{"B": bTok, "C": cTok} {
		if o, _ := h.openOffers(tok); len(o) != 0 {
			t.Errorf("%s sees %d offers while A holds the order", name, len(o))
		}
	}
	aOffer := aOffers[0]["offer_id"].(string)
	if r := h.do("GET", "/v1/orders/"+orderID, aTok, nil, nil); r.StatusCode != 404 {
		t.Errorf("A reads the order while only offered: %d", r.StatusCode)
	}
	if r := h.do("POST", "/v1/offers/"+aOffer+"/decline", aTok, nil, nil); r.StatusCode != 200 {
		t.Fatalf("A declines: %d", r.StatusCode)
	}
	bOffers, bRaw := h.openOffers(bTok)
	if len(bOffers) != 1 || strings.Contains(bRaw, "221B") {
		t.Fatalf("B's offers after A declined: %s", bRaw)
	}
	if o, _ := h.openOffers(cTok); len(o) != 0 {
		t.Error("C (serves 560034) got an offer")
	}
	var acc map[string]any
	if r := h.do("POST", "/v1/offers/"+bOffers[0]["offer_id"].(string)+"/accept", bTok, nil, &acc); r.StatusCode != 200 ||
		r.Header.Get("X-Decision-Id") == "" || acc["order_id"] != orderID {
		t.Fatalf("B accepts: %d %v", r.StatusCode, acc)
	}
	od := h.next(wa, "payment request after acceptance", kindIs("order_details"))
	h.pay(wa, od.referenceID(), 2*28950+3*6400)

	// A (declined) and C (never a candidate) see nothing; A's stale offer
	// cannot be taken back.
	for name, tok := range map[string]string{"A": aTok, "C": cTok} {
		h.refused(name+" reads the routed order", h.do("GET", "/v1/orders/"+orderID, tok, nil, nil), commerce.RefusedNotVisible)
	}
	if r := h.do("POST", "/v1/offers/"+aOffer+"/accept", aTok, nil, nil); r.StatusCode != 409 {
		t.Errorf("A accepts its declined offer: %d, want 409", r.StatusCode)
	}

	var bView map[string]any
	if r := h.do("GET", "/v1/orders/"+orderID, bTok, nil, &bView); r.StatusCode != 200 {
		t.Fatalf("B reads its order: %d", r.StatusCode)
	}
	delivery, _ := bView["delivery"].(map[string]any)
	if b, _ := json.Marshal(bView); strings.Contains(string(b), "221B") || strings.Contains(string(b), "Baker") {
		t.Errorf("B's view holds the house: %s", b)
	}
	if delivery["locality"] != "Indiranagar" || delivery["landmark"] != "near Metro Pillar 42" || delivery["address"] != nil {
		t.Errorf("B's delivery block %v; want locality and landmark, no address", delivery)
	}

	// Dispatch; the courier sees the exact address only out for delivery.
	if r := h.do("POST", "/v1/orders/"+orderID+"/dispatch", bTok, map[string]string{"logistics": courierID}, nil); r.StatusCode != 200 {
		t.Fatalf("dispatch: %d", r.StatusCode)
	}
	if r := h.do("GET", "/v1/orders/"+orderID+"/delivery", courier, nil, nil); r.StatusCode != 404 {
		t.Errorf("courier before out_for_delivery: %d", r.StatusCode)
	}
	for _, st := range []string{"accepted", "packed", "out_for_delivery"} {
		if r := h.do("POST", "/v1/orders/"+orderID+"/status", bTok, map[string]string{"status": st}, nil); r.StatusCode != 200 {
			t.Fatalf("status %s: %d", st, r.StatusCode)
		}
	}
	var cView map[string]any
	if r := h.do("GET", "/v1/orders/"+orderID+"/delivery", courier, nil, &cView); r.StatusCode != 200 {
		t.Fatalf("courier out for delivery: %d", r.StatusCode)
	}
	if b, _ := json.Marshal(cView); !strings.Contains(string(b), "221B Baker Lane") {
		t.Errorf("the courier lacks the full address: %s", b)
	}
	if r := h.do("GET", "/v1/orders/"+orderID+"/delivery", other, nil, nil); r.StatusCode != 404 {
		t.Errorf("another courier: %d, want 404", r.StatusCode)
	}
	if r := h.do("POST", "/v1/orders/"+orderID+"/status", bTok, map[string]string{"status": "delivered"}, nil); r.StatusCode != 200 {
		t.Fatal("delivered")
	}
	if r := h.do("GET", "/v1/orders/"+orderID+"/delivery", courier, nil, nil); r.StatusCode != 404 {
		t.Errorf("courier after delivery: %d, want 404", r.StatusCode)
	}

	// Every offer, decline and acceptance is in the audit log.
	actions := h.auditActions("order:" + orderID)
	for action, want := range map[string]int{"offer": 2, "offer decline": 1, "offer accept": 1} {
		if actions[action] < want {
			t.Errorf("%d %q audit entries for the order; want at least %d (%v)", actions[action], action, want, actions)
		}
	}
	_ = aID
}

// TestMarketplaceUnserved: no store accepts within the TTL, every
// candidate's offer expires in turn, the shopper is told, the payment step
// never starts and the order ends unserved; a shopper no store serves is
// told at once.
func TestMarketplaceUnserved(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Workers.OfferTTL = 700 * time.Millisecond })
	_, aTok := h.store("Store A", postgres.PartnerRegistry{Serves: serves("560001")})
	h.store("Store B", postgres.PartnerRegistry{Serves: serves("560001")})

	const wa = "919811115555"
	orderID := h.routedCheckout(wa, "12 MG Road, Bengaluru 560001")
	offersA, _ := h.openOffers(aTok)
	if len(offersA) != 1 {
		t.Fatalf("A has %d offers", len(offersA))
	}
	h.next(wa, "unserved notice", contains("no store near 560001"))
	if st := h.orderStatus(orderID); st != commerce.StatusUnserved {
		t.Errorf("order status %q; want unserved", st)
	}
	for _, m := range h.wa.all() {
		if m.To == "+"+wa && m.kind() == "order_details" {
			t.Error("the payment step started for an unserved order")
		}
	}
	if r := h.do("POST", "/v1/offers/"+offersA[0]["offer_id"].(string)+"/accept", aTok, nil, nil); r.StatusCode != 409 {
		t.Errorf("accept after expiry: %d, want 409", r.StatusCode)
	}
	if n := h.count(`SELECT count(*) FROM offers WHERE order_id = $1 AND status = 'expired'`, orderID); n != 2 {
		t.Errorf("%d expired offers; want 2 (A, then B)", n)
	}

	const far = "919811116666"
	h.mustPost(textMsg(far, "Hi"))
	h.next(far, "privacy notice", offers(commerce.IDConsentAccept))
	h.mustPost(replyMsg(far, commerce.IDConsentAccept))
	h.next(far, "marketing opt-in", offers(commerce.IDMarketingNo))
	h.mustPost(replyMsg(far, commerce.IDMarketingNo))
	h.next(far, "product list", kindIs("product_list"))
	h.mustPost(orderMsg(far, item("SKU-ATTA-5KG", 1, "289.5")))
	h.next(far, "cart summary", offers(commerce.IDCartConfirm))
	h.mustPost(replyMsg(far, commerce.IDCartConfirm))
	h.next(far, "address form", kindIs("address_message"))
	h.mustPost(textMsg(far, "4 Lake View Road, Mysuru 570001"))
	slots := h.next(far, "slot list", kindIs("list"))
	h.mustPost(replyMsg(far, slots.replyIDs()[0]))
	h.next(far, "unserved at once", contains("no store near 570001"))
}

// addressFormMsg is the shopper's answer to the address_message form.
func addressFormMsg(wa string, values map[string]string) string {
	resp, _ := json.Marshal(map[string]any{"values": values})
	return message(wa, "interactive", fmt.Sprintf(`"interactive":{"type":"nfm_reply","nfm_reply":{"name":"address_message","body":"Address","response_json":%q}}`,
		string(resp)))
}

// TestAddressForm (SPEC §9): the India address_message form's fields map
// to delivery.house, .building, .landmark, .locality, .city, .state and
// .postal_code; the store that takes the order gets the locality and
// landmark, never the house or building (the form's name and phone are
// dropped on arrival); a self-delivery store gets the exact address.
func TestAddressForm(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Workers.OfferTTL = time.Minute })
	_, aTok := h.store("Store A", postgres.PartnerRegistry{Serves: serves("560038")})
	selfDelivers := true
	_, sTok := h.store("Self Delivery", postgres.PartnerRegistry{Serves: serves("560095"), SelfDelivery: &selfDelivers})

	form := func(wa, pin string) string {
		h.mustPost(textMsg(wa, "Hi"))
		h.next(wa, "privacy notice", offers(commerce.IDConsentAccept))
		h.mustPost(replyMsg(wa, commerce.IDConsentAccept))
		h.next(wa, "marketing opt-in", offers(commerce.IDMarketingNo))
		h.mustPost(replyMsg(wa, commerce.IDMarketingNo))
		h.next(wa, "product list", kindIs("product_list"))
		h.mustPost(orderMsg(wa, item("SKU-ATTA-5KG", 1, "289.5")))
		h.next(wa, "cart summary", offers(commerce.IDCartConfirm))
		h.mustPost(replyMsg(wa, commerce.IDCartConfirm))
		ask := h.next(wa, "address form", kindIs("address_message"))
		if ask.str("interactive", "action", "parameters", "country") != "IN" {
			t.Errorf("address_message without country IN")
		}
		h.mustPost(addressFormMsg(wa, map[string]string{"name": "Asha Rao", "phone_number": "919811119999",
			"in_pin_code": pin, "house_number": "Flat 7B", "building_name": "Lotus Towers", "address": "100 Feet Road, Indiranagar",
			"landmark_area": "Opposite the metro", "city": "Bengaluru", "state": "Karnataka"}))
		return h.routeAfterAddress(wa)
	}
	take := func(tok string) {
		t.Helper()
		o, _ := h.openOffers(tok)
		if len(o) != 1 {
			t.Fatalf("%d offers", len(o))
		}
		if r := h.do("POST", "/v1/offers/"+o[0]["offer_id"].(string)+"/accept", tok, nil, nil); r.StatusCode != 200 {
			t.Fatalf("accept: %d", r.StatusCode)
		}
	}

	const wa = "919811119999"
	orderID := form(wa, "560038")
	take(aTok)
	h.pay(wa, h.next(wa, "payment request", kindIs("order_details")).referenceID(), 31950)
	var view map[string]any
	h.do("GET", "/v1/orders/"+orderID, aTok, nil, &view)
	b, _ := json.Marshal(view)
	for _, leak := range []string{"7B", "Lotus", "Asha", "9811119999"} {
		if strings.Contains(string(b), leak) {
			t.Errorf("the store's view holds %q: %s", leak, b)
		}
	}
	d, _ := view["delivery"].(map[string]any)
	if d["locality"] != "100 Feet Road, Indiranagar" || d["landmark"] != "Opposite the metro" || d["city"] != "Bengaluru" ||
		d["state"] != "Karnataka" || d["postal_code"] != "560038" {
		t.Errorf("the store's delivery block: %v", d)
	}

	const wb = "919811110001"
	other := form(wb, "560095")
	take(sTok)
	h.pay(wb, h.next(wb, "payment request", kindIs("order_details")).referenceID(), 31950)
	var sView map[string]any
	h.do("GET", "/v1/orders/"+other, sTok, nil, &sView)
	if sd, _ := sView["delivery"].(map[string]any); !strings.Contains(fmt.Sprint(sd["address"]), "Flat 7B") {
		t.Errorf("the self-delivery store lacks the exact address: %v", sView["delivery"])
	}
}

// TestAutoAcceptStoreStock: an auto-accept store takes an offer at once
// only when its own stock covers the cart, and its stock (not the
// catalog's) goes down; a store short of an item gets an ordinary offer.
func TestAutoAcceptStoreStock(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Workers.OfferTTL = 3 * time.Second })
	yes := true
	xID, xTok := h.store("Short Store", postgres.PartnerRegistry{Serves: serves("560001"), Location: at(12.972, 77.595), AutoAccept: &yes})
	yID, _ := h.store("Full Store", postgres.PartnerRegistry{Serves: serves("560001"), Location: at(13.1, 77.7), AutoAccept: &yes})
	db := h.m.Sys.Stores.Market
	if err := db.SetStoreStock(t.Context(), xID, map[string]int{"SKU-ATTA-5KG": 9}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetStoreStock(t.Context(), yID, map[string]int{"SKU-ATTA-5KG": 5, "SKU-MILK-1L": 5}); err != nil {
		t.Fatal(err)
	}
	const wa = "919811112020"
	orderID := h.routedCheckout(wa, "12 MG Road, Bengaluru 560001")
	if o, _ := h.openOffers(xTok); len(o) != 1 {
		t.Fatalf("the short store has %d offers; want an ordinary one", len(o))
	}
	od := h.next(wa, "payment request once the full store took it", kindIs("order_details"))
	if !strings.Contains(od.text(), orderID) {
		t.Errorf("order_details %q", od.text())
	}
	stock := func(id, sku string) int {
		return h.count(`SELECT stock FROM store_stock WHERE partner_id = $1 AND sku = $2`, id, sku)
	}
	if a, m := stock(yID, "SKU-ATTA-5KG"), stock(yID, "SKU-MILK-1L"); a != 3 || m != 2 {
		t.Errorf("full store's stock atta %d milk %d; want 3 and 2", a, m)
	}
	if a := stock(xID, "SKU-ATTA-5KG"); a != 9 {
		t.Errorf("short store's stock changed to %d", a)
	}
	if actions := h.auditActions("order:" + orderID); actions["offer accept"] != 1 || actions["offer expire"] != 1 {
		t.Errorf("audit: %v", actions)
	}
}

// TestOfferWebhook: a store with a webhook gets order.offered, signed,
// holding the offer only: no name, phone, address, order id or
// customer_ref.
func TestOfferWebhook(t *testing.T) {
	hooks := newHookServer(t)
	h := newHarness(t, allowLoopbackHooks, func(c *config.Config) { c.Workers.OfferTTL = time.Minute })
	id, tok := h.store("Hook Store", postgres.PartnerRegistry{Serves: serves("560001")})
	if err := h.m.Sys.DB.Partners().SetPartnerWebhook(t.Context(), id, hooks.srv.URL+"/hook"); err != nil {
		t.Fatal(err)
	}
	const wa = "919811113030"
	orderID := h.routedCheckout(wa, house+", Indiranagar, Bengaluru 560001")
	var got *hookCall
	for deadline := time.Now().Add(15 * time.Second); got == nil && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, c := range hooks.all() {
			if c.event == "order.offered" && c.answered/100 == 2 {
				got = &c
				break
			}
		}
	}
	if got == nil {
		t.Fatal("no order.offered webhook delivered")
	}
	var e hookEvent
	if err := json.Unmarshal(got.body, &e); err != nil || e.Type != "order.offered" || got.signature == "" {
		t.Fatalf("webhook %s (%v), signature %q", got.body, err, got.signature)
	}
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"expires_at", "items", "offer_id", "postal_code", "privacy", "slot"}; !slices.Equal(keys, want) {
		t.Errorf("offer keys %v; want %v", keys, want)
	}
	for _, leak := range []string{"221B", "Indiranagar", orderID, "cus_", "9198111"} {
		if strings.Contains(string(got.body), leak) {
			t.Errorf("order.offered holds %q: %s", leak, got.body)
		}
	}
	if o, _ := h.openOffers(tok); len(o) != 1 || o[0]["offer_id"] != e.Data["offer_id"] {
		t.Errorf("GET /v1/offers and the webhook disagree: %v vs %v", o, e.Data["offer_id"])
	}
}
