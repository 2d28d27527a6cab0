package main

import (
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// TestMetaEscapedWebhookEndToEnd: a shopper writes Hindi, an en dash and
// slashes; Meta sends that escaped (\uXXXX, "\/") and signs the escaped
// bytes. The broker verifies those bytes, decodes the text exactly, and the
// retailer receives the typed address as the shopper wrote it. A signature
// over the unescaped text does not verify the escaped body.
func TestMetaEscapedWebhookEndToEnd(t *testing.T) {
	h := newHarness(t)
	retail := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer, Scopes: []string{"orders:read"}})
	const wa = "919811175555"
	const address = "फ्लैट 4B – MG Road/2nd Cross, बेंगलुरु 560001"

	// The raw bytes as Meta sends them.
	hi := envelope(message(wa, "text", `"text":{"body":"नमस्ते – मुझे आटा चाहिए/please"}`))
	if !strings.Contains(hi, `\u0928\u092e\u0938\u094d\u0924\u0947 \u2013`) || !strings.Contains(hi, `\/please`) {
		t.Fatalf("the harness does not escape as Meta does: %s", hi)
	}
	for _, c := range []byte(hi) {
		if c >= 0x80 {
			t.Fatalf("non-ASCII byte in an escaped body: %s", hi)
		}
	}
	// Signed over the unescaped text: refused.
	unescaped := strings.ReplaceAll(hi, `\/`, "/")
	if st := h.webhookSigned(hi, whatsapp.Sign([]byte(whatsapp.DevAppSecret), []byte(`{"body":"नमस्ते"}`))); st != 401 {
		t.Errorf("a signature over other bytes: %d, want 401", st)
	}
	if st := h.webhookSigned(hi, whatsapp.Sign([]byte(whatsapp.DevAppSecret), []byte(unescaped))); st != 401 {
		t.Errorf("a signature over the unescaped slashes: %d, want 401", st)
	}
	if st := h.webhook(hi); st != 200 {
		t.Fatalf("escaped, signed over the escaped bytes: %d", st)
	}
	h.next(wa, "privacy notice", offers(commerce.IDConsentAccept))
	h.mustPost(replyMsg(wa, commerce.IDConsentAccept))
	h.next(wa, "marketing opt-in", offers(commerce.IDMarketingNo))
	h.mustPost(replyMsg(wa, commerce.IDMarketingNo))
	h.next(wa, "product list", kindIs("product_list"))
	h.mustPost(orderMsg(wa, item("SKU-ATTA-5KG", 2, "289.5")))
	h.next(wa, "cart summary", offers(commerce.IDCartConfirm))
	h.mustPost(replyMsg(wa, commerce.IDCartConfirm))
	h.next(wa, "location request", kindIs("location_request_message"))
	h.mustPost(textMsg(wa, address))
	slots := h.next(wa, "slot list", kindIs("list"))
	h.mustPost(replyMsg(wa, slots.replyIDs()[0]))
	od := h.next(wa, "order_details", kindIs("order_details"))
	orderID := orderIDRe.FindString(od.text())
	h.pay(wa, od.referenceID(), 2*28950)

	var view map[string]any
	if r := h.do("GET", "/v1/orders/"+orderID, retail.Bearer, nil, &view); r.StatusCode != 200 {
		t.Fatalf("retailer GET: %d", r.StatusCode)
	}
	delivery, _ := view["delivery"].(map[string]any)
	if got, _ := delivery["address"].(string); got != address {
		t.Errorf("the retailer got address %q, the shopper typed %q", got, address)
	}
}
