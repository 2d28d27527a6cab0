package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// "export my data" (GDPR Art. 20, SPEC §10): the shopper's own data comes
// as a JSON document in the chat (media upload, then a document message),
// the export is a release to the shopper in the audit log, it holds their
// disclosures, and it still works while processing is paused.
func TestExportMyDataInTheChat(t *testing.T) {
	h := newHarness(t)
	_, retail := h.partner("Fresh Mart", broker.KindRetailer, "", "orders:read")
	const wa = "919811190031"
	orderID := h.purchase(wa)
	if r := h.do("GET", "/v1/orders/"+orderID, retail, nil, nil); r.StatusCode != 200 {
		t.Fatalf("retailer read: %d", r.StatusCode)
	}
	h.waitIdle()
	if _, err := h.m.Sys.IntegrateAudit(t.Context()); err != nil {
		t.Fatal(err)
	}

	h.mustPost(textMsg(wa, "pause my data"))
	h.next(wa, "paused", contains("Paused"))
	h.mustPost(textMsg(wa, "export my data"))
	doc := h.next(wa, "export document", kindIs("document"))
	if doc.str("document", "filename") != commerce.ExportFilename || doc.str("document", "caption") == "" {
		t.Errorf("document %s", doc.Raw)
	}
	file := h.wa.file(doc)
	var ex commerce.Export
	if err := json.Unmarshal(file, &ex); err != nil {
		t.Fatalf("the export is not JSON: %v\n%s", err, file)
	}
	if ex.WaID != wa || len(ex.Orders) != 1 || ex.Orders[0].ID != orderID || !ex.Consent.Notice {
		t.Errorf("export %+v", ex)
	}
	if !strings.Contains(string(file), "order_fulfilment") {
		t.Errorf("the export lacks the disclosures:\n%s", file)
	}
	h.waitIdle()
	released := `SELECT count(*) FROM (SELECT entry AS e FROM audit_pending UNION ALL SELECT leaf FROM audit_entries) x
		WHERE convert_from(e, 'UTF8')::jsonb->>'action' = 'export'
		  AND convert_from(e, 'UTF8')::jsonb->>'actor' LIKE 'shopper%'
		  AND convert_from(e, 'UTF8')::jsonb->>'purpose' = 'data_subject_request'
		  AND convert_from(e, 'UTF8')::jsonb->>'outcome' <> 'denied'`
	if n := h.count(released); n != 1 {
		t.Errorf("%d export releases to the shopper in the audit log, want 1", n)
	}
	// The shopper is the phone's owner: nothing else in the chat changed.
	if n := h.count(`SELECT count(*) FROM subjects WHERE restricted_at IS NOT NULL`); n != 1 {
		t.Errorf("the export changed the restriction (%d restricted)", n)
	}
}
