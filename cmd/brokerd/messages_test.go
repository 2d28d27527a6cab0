package main

import (
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/commerce"
)

// messagesPerOrder is what a full purchase costs in chargeable messages
// (Meta bills service messages from 1 Oct 2026): notice, thanks, opt-in,
// product list, cart, address request, slots, payment request,
// confirmation. The SKU text list no longer follows a product list that
// renders (issue 18 item 5); a change to this number is a change to what
// every order costs.
const messagesPerOrder = 9

func TestMessagesPerOrder(t *testing.T) {
	h := newHarness(t)
	const wa = "919811190041"
	h.purchase(wa)
	var kinds []string
	for _, m := range h.wa.all() {
		if m.To == "+"+wa {
			kinds = append(kinds, m.kind())
		}
	}
	if len(kinds) != messagesPerOrder {
		t.Errorf("a purchase sent %d messages, want %d: %v", len(kinds), messagesPerOrder, kinds)
	}
	for i, k := range kinds {
		if k == "product_list" && i+1 < len(kinds) && kinds[i+1] == "text" {
			t.Errorf("the product list is followed by a text message (the SKU list repeats it): %v", kinds)
		}
	}
}

// When the product list cannot be shown (the Send API refuses it for
// good, e.g. no catalog connected), the SKU text list goes instead, and the
// shopper can still order by typing SKUs.
func TestProductListFallsBackToText(t *testing.T) {
	h := newHarness(t)
	const wa = "919811190042"
	h.mustPost(textMsg(wa, "Hi"))
	h.next(wa, "notice", offers(commerce.IDConsentAccept))
	h.mustPost(replyMsg(wa, commerce.IDConsentAccept))
	h.next(wa, "opt-in", offers(commerce.IDMarketingNo))
	h.waitIdle()
	h.wa.failCode = 131009 // parameter value is not valid: permanent
	h.wa.failNext.Store(1)
	h.mustPost(replyMsg(wa, commerce.IDMarketingNo))
	list := h.next(wa, "SKU text list", contains("SKU-ATTA-5KG"))
	if list.kind() != "text" || !strings.Contains(list.text(), "Our catalog") {
		t.Errorf("fallback %s %q", list.kind(), list.text())
	}
	h.mustPost(textMsg(wa, "SKU-ATTA-5KG x2"))
	h.next(wa, "cart from typed SKUs", offers(commerce.IDCartConfirm))
}
