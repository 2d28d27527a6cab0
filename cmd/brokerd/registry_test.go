package main

import (
	"context"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
)

// setRegistry changes a partner's registry entry and waits out the
// authenticator's partner cache, so the next request sees it.
func (h *harness) setRegistry(id string, r postgres.PartnerRegistry) {
	h.t.Helper()
	if err := h.m.Sys.DB.Partners().UpdatePartnerRegistry(context.Background(), id, r); err != nil {
		h.t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
}

func strp(s string) *string { return &s }

// TestLegalRegistryGatesReleases (SPEC §5.10): a processor without an
// agreement, or with an expired one, gets nothing of an order (403, the
// reason code in the audit entry); with a valid one it gets the view, and
// the entry names its role, jurisdiction and transfer basis. An EEA
// shopper's order reaches a recipient in India only under SCC.
func TestLegalRegistryGatesReleases(t *testing.T) {
	h := newHarness(t)
	retailID, retail := h.partner("Kirana Proc", broker.KindRetailer, "", "orders:read", "orders:write")
	h.setRegistry(retailID, postgres.PartnerRegistry{Role: strp("processor"), Jurisdiction: strp("IN"),
		TransferBasis: strp("none")})

	read := func(what, orderID string, wantStatus int, wantReason string) {
		t.Helper()
		resp := h.do("GET", "/v1/orders/"+orderID, retail, nil, nil)
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s: %d, want %d", what, resp.StatusCode, wantStatus)
		}
		e, ok := h.auditEntry(resp.Header.Get("X-Decision-Id"))
		if !ok {
			t.Fatalf("%s: no audit entry", what)
		}
		if e.Reason != wantReason || e.RecipientRole != "processor" || e.Jurisdiction != "IN" {
			t.Errorf("%s: entry reason %q role %q jurisdiction %q; want %q, processor, IN", what, e.Reason, e.RecipientRole,
				e.Jurisdiction, wantReason)
		}
	}

	const wa = "919811113333"
	orderID, ref, total := h.checkout(wa)
	h.pay(wa, ref, total)
	read("no agreement", orderID, 403, "no_agreement")

	h.setRegistry(retailID, postgres.PartnerRegistry{Agreement: strp("DPA-1"),
		AgreementExpires: strp(time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly))})
	read("expired agreement", orderID, 403, "agreement_expired")

	h.setRegistry(retailID, postgres.PartnerRegistry{AgreementExpires: strp(time.Now().UTC().AddDate(1, 0, 0).Format(time.DateOnly))})
	read("valid agreement", orderID, 200, "")

	// A shopper in Germany: India is no adequacy country.
	const de = "4915112345678"
	deOrder, deRef, deTotal := h.checkout(de)
	h.pay(de, deRef, deTotal)
	read("EEA shopper, no SCC", deOrder, 403, "no_transfer_basis")
	h.setRegistry(retailID, postgres.PartnerRegistry{TransferBasis: strp("scc")})
	resp := h.do("GET", "/v1/orders/"+deOrder, retail, nil, nil)
	e, _ := h.auditEntry(resp.Header.Get("X-Decision-Id"))
	if resp.StatusCode != 200 || e.TransferBasis != "scc" {
		t.Errorf("EEA shopper under SCC: %d, entry basis %q; want 200, scc", resp.StatusCode, e.TransferBasis)
	}
	// The Indian shopper's order is not a transfer at all.
	read("Indian shopper, basis irrelevant", orderID, 200, "")

	// The disclosures show, per recipient, its role, jurisdiction and
	// transfer basis, as the audit log recorded them.
	_, desk := h.partner("Desk", broker.KindCompliance, "", "audit:read", "subjects:write")
	var out struct {
		Disclosures []map[string]any `json:"disclosures"`
	}
	if r := h.do("GET", "/v1/subjects/disclosures?wa_id="+de, desk, nil, &out); r.StatusCode != 200 {
		t.Fatalf("disclosures: %d", r.StatusCode)
	}
	found := false
	for _, d := range out.Disclosures {
		if d["party"] == "retailer:"+retailID && d["purpose"] == "order_fulfilment" {
			found = true
			if d["role"] != "processor" || d["jurisdiction"] != "IN" || d["transfer_basis"] != "scc" {
				t.Errorf("disclosure to the retailer: %v; want processor, IN, scc", d)
			}
		}
	}
	if !found {
		t.Errorf("no disclosure to the retailer in %v", out.Disclosures)
	}
}
