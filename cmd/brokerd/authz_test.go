package main

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/commerce"
)

// This file holds the authorization tests of issue 16 (items 2 to 5): a
// courier bound to the orders dispatched to it, refusal entries that
// survive the request's rollback, reason codes in the audit log, and the
// compliance kind with exports as releases.

// auditEntry reads the entry of a decision, integrated or still pending;
// ok is false when there is none.
func (h *harness) auditEntry(id string) (audit.Entry, bool) {
	h.t.Helper()
	var raw []byte
	err := h.m.Sys.DB.Pool.QueryRow(context.Background(), `SELECT leaf FROM audit_entries WHERE decision_id = $1
		UNION ALL SELECT entry FROM audit_pending WHERE decision_id = $1 LIMIT 1`, id).Scan(&raw)
	if err != nil {
		return audit.Entry{}, false
	}
	var e audit.Entry
	if err := json.Unmarshal(raw, &e); err != nil {
		h.t.Fatalf("entry %s: %v", id, err)
	}
	return e, true
}

// refused checks a 404 whose X-Decision-Id names a durable denied entry
// with the reason code want, and returns that entry.
func (h *harness) refused(what string, r *http.Response, want string) audit.Entry {
	h.t.Helper()
	if r.StatusCode != 404 {
		h.t.Errorf("%s: %d, want 404", what, r.StatusCode)
		return audit.Entry{}
	}
	id := r.Header.Get("X-Decision-Id")
	if id == "" {
		h.t.Errorf("%s: a refusal without X-Decision-Id", what)
		return audit.Entry{}
	}
	e, ok := h.auditEntry(id)
	if !ok {
		h.t.Errorf("%s: X-Decision-Id %s names no audit entry (the refusal was rolled back)", what, id)
		return e
	}
	if e.Outcome != audit.OutcomeDenied || e.Reason != want {
		h.t.Errorf("%s: entry %s/%q, want denied/%q", what, e.Outcome, e.Reason, want)
	}
	return e
}

// reorder places a returning shopper's next order, delivered to address,
// and returns its id.
func (h *harness) reorder(wa, address string) string {
	h.t.Helper()
	h.mustPost(orderMsg(wa, item("SKU-ATTA-5KG", 2, "289.5"), item("SKU-MILK-1L", 3, "64")))
	h.next(wa, "cart summary", offers(commerce.IDCartConfirm))
	h.mustPost(replyMsg(wa, commerce.IDCartConfirm))
	h.next(wa, "address request", kindIs("location_request_message"))
	h.mustPost(textMsg(wa, address))
	slots := h.next(wa, "slots", kindIs("list"))
	h.mustPost(replyMsg(wa, slots.replyIDs()[0]))
	od := h.next(wa, "order_details", kindIs("order_details"))
	h.pay(wa, od.referenceID(), 2*28950+3*6400) // over the free-delivery threshold, as in checkout
	h.waitIdle()
	return orderIDRe.FindString(od.text())
}

// TestLogisticsBoundToOrders: a courier sees, relays for and asks about
// only the order dispatched to it, only while it is out for delivery; any
// other partner gets an audited 404 (issue 16 item 2).
func TestLogisticsBoundToOrders(t *testing.T) {
	h := newHarness(t)
	retail := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer,
		Scopes: []string{"orders:read", "orders:write", "delivery:read"}})
	other := h.partnerWith(token.PartnerSpec{Name: "Other Mart", Kind: broker.KindRetailer, Store: "999",
		Scopes: []string{"orders:read", "orders:write"}})
	courier := func(name string) creds {
		return h.partnerWith(token.PartnerSpec{Name: name, Kind: broker.KindLogistics,
			Scopes: []string{"delivery:read", "delivery:message", "data:request"}})
	}
	mine, rogue := courier("Swift Couriers"), courier("Rogue Couriers")
	const wa = "919811170001"
	order1 := h.purchase(wa)

	dispatch := func(bearer, order, to string) *http.Response {
		return h.do("POST", "/v1/orders/"+order+"/dispatch", bearer, map[string]any{"logistics": to}, nil)
	}
	status := func(order, st string) {
		t.Helper()
		if r := h.do("POST", "/v1/orders/"+order+"/status", retail.Bearer, map[string]any{"status": st}, nil); r.StatusCode != 200 {
			t.Fatalf("status %s: %d", st, r.StatusCode)
		}
	}
	delivery := func(c creds, order string) *http.Response {
		return h.do("GET", "/v1/orders/"+order+"/delivery", c.Bearer, nil, nil)
	}
	relay := func(c creds, order string) *http.Response {
		return h.do("POST", "/v1/orders/"+order+"/messages", c.Bearer, map[string]string{"text": "pay Rs 99 at http://evil.example/pay"}, nil)
	}

	// Only the order's retailer dispatches, and only to a logistics partner.
	h.refused("another retailer dispatches", dispatch(other.Bearer, order1, mine.ID), commerce.RefusedNotVisible)
	for _, bad := range []string{other.ID, "cli_nobody", ""} {
		if r := dispatch(retail.Bearer, order1, bad); r.StatusCode != 400 {
			t.Errorf("dispatch to %q: %d, want 400", bad, r.StatusCode)
		}
	}
	var res commerce.DispatchResult
	r := h.do("POST", "/v1/orders/"+order1+"/dispatch", retail.Bearer, map[string]any{"logistics": mine.ID}, &res)
	if r.StatusCode != 200 || res.Logistics != mine.ID || r.Header.Get("X-Decision-Id") != res.Decision {
		t.Fatalf("dispatch: %d %+v", r.StatusCode, res)
	}
	if e, ok := h.auditEntry(res.Decision); !ok || e.Action != "dispatch" || e.Resource != "order:"+order1 {
		t.Errorf("dispatch entry: %v %+v", ok, e)
	}

	// Dispatched but not yet out: nobody has the delivery view.
	h.refused("bound courier before out_for_delivery", delivery(mine, order1), commerce.RefusedNotOutForDeliv)
	status(order1, commerce.StatusOutForDelivery)
	h.next(wa, "status update", kindIs("order_status"))

	// Out for delivery: the bound courier has it, the rogue one does not.
	var dv map[string]any
	if r := h.do("GET", "/v1/orders/"+order1+"/delivery", mine.Bearer, nil, &dv); r.StatusCode != 200 {
		t.Fatalf("bound courier's delivery view: %d", r.StatusCode)
	}
	ref, _ := dv["customer_ref"].(string)
	h.refused("rogue courier's delivery view", delivery(rogue, order1), commerce.RefusedNotDispatched)
	h.refused("rogue courier's relay", relay(rogue, order1), commerce.RefusedNotDispatched)
	h.refused("retailer's delivery view", h.do("GET", "/v1/orders/"+order1+"/delivery", retail.Bearer, nil, nil), commerce.RefusedNotDispatched)
	if r := h.do("POST", "/v1/orders/"+order1+"/messages", mine.Bearer, map[string]string{"text": "At your gate"}, nil); r.StatusCode != 202 {
		t.Errorf("bound courier's relay: %d", r.StatusCode)
	}
	h.next(wa, "relay", contains("At your gate"))
	ask := func(c creds, ref string) (*http.Response, map[string]any) {
		var out map[string]any
		r := h.do("POST", "/v1/data-requests", c.Bearer, map[string]any{"subject": ref, "purpose": "delivery",
			"fields": []string{"order.id", "delivery.address"}}, &out)
		return r, out
	}
	if r, out := ask(mine, ref); r.StatusCode != 200 || !strings.Contains(mustJSON(out), order1) {
		t.Errorf("bound courier's data request: %d %v", r.StatusCode, out)
	}
	h.refused("rogue courier replays the ref", func() *http.Response { r, _ := ask(rogue, ref); return r }(), commerce.RefusedUnknownRef)

	// Delivered: the courier's binding is over, whatever ref it kept.
	status(order1, commerce.StatusDelivered)
	h.refused("courier after delivery", delivery(mine, order1), commerce.RefusedNotOutForDeliv)
	h.refused("relay after delivery", relay(mine, order1), commerce.RefusedNotOutForDeliv)
	r, _ = ask(mine, ref)
	h.refused("courier's data request after delivery", r, commerce.RefusedNoDeliveryOrder)

	// The shopper orders again; another courier takes it. The first one
	// learns neither the new order nor its address through its old ref.
	order2 := h.reorder(wa, "9 Park Street, Kolkata 700016")
	if r := dispatch(retail.Bearer, order2, rogue.ID); r.StatusCode != 200 {
		t.Fatalf("dispatch 2: %d", r.StatusCode)
	}
	status(order2, commerce.StatusOutForDelivery)
	r, out := ask(mine, ref)
	if strings.Contains(mustJSON(out), order2) || strings.Contains(mustJSON(out), "Park Street") {
		t.Errorf("the old courier learned the new order through its ref: %v", out)
	}
	h.refused("old courier asks about the new order", r, commerce.RefusedNoDeliveryOrder)
	h.refused("old courier reads the new order", delivery(mine, order2), commerce.RefusedNotDispatched)

	// A store's default courier gets the orders that go out undispatched,
	// and no other courier does.
	if err := h.m.Sys.DB.Partners().SetDefaultCourier(context.Background(), retail.ID, mine.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Sys.DB.Partners().SetDefaultCourier(context.Background(), retail.ID, other.ID); broker.ErrorCode(err) != broker.EInvalid {
		t.Errorf("a retailer as default courier: %v, want EInvalid", err)
	}
	order3 := h.purchase("919811170002")
	status(order3, commerce.StatusOutForDelivery)
	if r := delivery(mine, order3); r.StatusCode != 200 {
		t.Errorf("default courier: %d, want 200", r.StatusCode)
	}
	h.refused("not the default courier", delivery(rogue, order3), commerce.RefusedNotDispatched)
}

// TestRefusalsSurviveRollback: a refused POST's transaction rolls back, but
// the refusal's audit entry, named by X-Decision-Id, stays (issue 16 item
// 3). Every other test checks the same through checkDecisionIDs.
func TestRefusalsSurviveRollback(t *testing.T) {
	h := newHarness(t)
	retail := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer,
		Scopes: []string{"orders:read", "orders:write", "data:request", "delivery:message"}})
	other := h.partnerWith(token.PartnerSpec{Name: "Other Mart", Kind: broker.KindRetailer, Store: "999",
		Scopes: []string{"orders:read", "orders:write", "data:request", "delivery:message"}})
	order := h.purchase("919811170011")
	h.refused("data request with an unknown ref", h.do("POST", "/v1/data-requests", retail.Bearer,
		map[string]any{"subject": "cus_unknown", "purpose": "support", "fields": []string{"order.id"}}, nil), commerce.RefusedUnknownRef)
	h.refused("another retailer's status update", h.do("POST", "/v1/orders/"+order+"/status", other.Bearer,
		map[string]any{"status": "accepted"}, nil), commerce.RefusedNotVisible)
	h.refused("another retailer's relay", h.do("POST", "/v1/orders/"+order+"/messages", other.Bearer,
		map[string]any{"text": "hello"}, nil), commerce.RefusedNotVisible)
	h.refused("another retailer's dispatch", h.do("POST", "/v1/orders/"+order+"/dispatch", other.Bearer,
		map[string]any{"logistics": retail.ID}, nil), commerce.RefusedNotVisible)
	if h.orderStatus(order) != commerce.StatusPlaced {
		t.Errorf("a refused update changed the order to %s", h.orderStatus(order))
	}
}

// TestAuditReasonsAreCodes: ids not shaped like ours never reach a leaf,
// and erasure reasons are codes from a fixed list (issue 16 item 4).
func TestAuditReasonsAreCodes(t *testing.T) {
	h := newHarness(t)
	retail := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer,
		Scopes: []string{"orders:read", "orders:write"}})
	desk := h.partnerWith(token.PartnerSpec{Name: "DPO desk", Kind: broker.KindCompliance,
		Scopes: []string{"audit:read", "subjects:write"}})
	const wa = "919811170021"
	h.purchase(wa)
	for _, path := range []string{"/v1/orders/+919800000001%20Ravi%20Kumar", "/v1/orders/ord_" + strings.Repeat("a", 25) + "9"} {
		e := h.refused("GET "+path, h.do("GET", path, retail.Bearer, nil, nil), commerce.RefusedNoSuchOrder)
		if e.Resource != "order:invalid" {
			t.Errorf("%s: resource %q, want order:invalid", path, e.Resource)
		}
	}
	e := h.refused("POST hostile id", h.do("POST", "/v1/orders/Ravi%20Kumar%20+919800000001/status", retail.Bearer,
		map[string]any{"status": "accepted"}, nil), commerce.RefusedNoSuchOrder)
	if e.Resource != "order:invalid" {
		t.Errorf("status update: resource %q", e.Resource)
	}

	for _, reason := range []string{"Ravi Kumar +919800000001", "request ", "REQUEST", strings.Repeat("x", 300)} {
		var out map[string]any
		r := h.do("POST", "/v1/subjects/erase", desk.Bearer, map[string]any{"wa_id": wa, "confirm": true, "reason": reason}, &out)
		if r.StatusCode != 400 {
			t.Errorf("erase with reason %.20q: %d, want 400", reason, r.StatusCode)
		}
	}
	if h.count(`SELECT count(*) FROM subjects WHERE erased_at IS NOT NULL`) != 0 {
		t.Fatal("a refused erasure erased")
	}
	if r := h.do("POST", "/v1/subjects/erase", desk.Bearer, map[string]any{"wa_id": wa, "confirm": true, "reason": "legal_order"}, nil); r.StatusCode != 200 {
		t.Fatalf("erase: %d", r.StatusCode)
	}
	if n := h.count(`SELECT count(*) FROM (SELECT entry AS e FROM audit_pending UNION ALL SELECT leaf FROM audit_entries) x
		WHERE convert_from(e, 'UTF8')::jsonb->>'action' = 'erase' AND convert_from(e, 'UTF8')::jsonb->>'reason' = 'legal_order'`); n != 1 {
		t.Errorf("%d erase entries with reason legal_order, want 1", n)
	}
	// Nothing typed above reached the log.
	rows, err := h.m.Sys.DB.Pool.Query(context.Background(), `SELECT convert_from(leaf, 'UTF8') FROM audit_entries
		UNION ALL SELECT convert_from(entry, 'UTF8') FROM audit_pending`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		for _, leak := range []string{"Ravi", "9800000001", wa} {
			if strings.Contains(s, leak) {
				t.Errorf("audit entry holds %q: %s", leak, s)
			}
		}
	}
}

// TestComplianceKindAndExports: audit:read and subjects:write are only for
// kind compliance, at create, at token issue and at authentication; an
// export is a release that the shopper's disclosures and "my data" show
// (issue 16 item 5).
func TestComplianceKindAndExports(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, kind := range []broker.PartyKind{broker.KindRetailer, broker.KindLogistics, broker.KindPayments, broker.KindAnalytics} {
		for _, scope := range broker.ComplianceScopes {
			_, _, err := token.CreatePartner(ctx, h.m.Sys.DB.Partners(), h.m.Sys.Sealer, token.PartnerSpec{Name: "X", Kind: kind,
				Scopes: []string{"orders:read", scope}})
			if broker.ErrorCode(err) != broker.EInvalid {
				t.Errorf("%s with %s: %v, want EInvalid", kind, scope, err)
			}
		}
	}
	desk := h.partnerWith(token.PartnerSpec{Name: "DPO desk", Kind: broker.KindCompliance,
		Scopes: []string{"audit:read", "subjects:write"}})
	// A legacy row: a retailer granted compliance scopes before the check.
	legacy := h.partnerWith(token.PartnerSpec{Name: "Legacy Mart", Kind: broker.KindRetailer, Store: "998", Scopes: []string{"orders:read"}})
	if _, err := h.m.Sys.DB.Pool.Exec(ctx, `UPDATE partners SET scopes = '{orders:read,audit:read,subjects:write}' WHERE id = $1`, legacy.ID); err != nil {
		t.Fatal(err)
	}
	if a := h.tokenRequest(legacy.ID, legacy.Secret, "audit:read"); a.status != 400 || !strings.Contains(string(a.body), "invalid_scope") {
		t.Errorf("legacy row asks for audit:read: %d %s", a.status, a.body)
	}
	a := h.tokenRequest(legacy.ID, legacy.Secret, "")
	var tok struct {
		AccessToken string `json:"access_token"`
		Scope       string `json:"scope"`
	}
	if a.status != 200 || json.Unmarshal(a.body, &tok) != nil || tok.Scope != "orders:read" {
		t.Errorf("legacy row's default token: %d %s, want scope orders:read only", a.status, a.body)
	}
	// A token issued to a compliance client whose row was later made a
	// retailer: authentication drops the scopes (the cache lives 2 s).
	turned := h.partnerWith(token.PartnerSpec{Name: "Turned desk", Kind: broker.KindCompliance, Scopes: []string{"audit:read"}})
	if a := h.getWith("/v1/audit/entries", "Bearer "+turned.Bearer); a.status != 200 {
		t.Fatalf("compliance client reads the log: %d", a.status)
	}
	if _, err := h.m.Sys.DB.Pool.Exec(ctx, `UPDATE partners SET kind = 'retailer' WHERE id = $1`, turned.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	if a := h.getWith("/v1/audit/entries", "Bearer "+turned.Bearer); a.status != 403 {
		t.Errorf("a retailer's token with audit:read: %d, want 403", a.status)
	}

	// The export is a release to the compliance client.
	const wa = "919811170031"
	h.purchase(wa)
	var ex commerce.Export
	r := h.do("POST", "/v1/subjects/export", desk.Bearer, map[string]any{"wa_id": wa}, &ex)
	if r.StatusCode != 200 || ex.WaID != wa || len(ex.Orders) != 1 {
		t.Fatalf("export: %d %+v", r.StatusCode, ex)
	}
	e, ok := h.auditEntry(r.Header.Get("X-Decision-Id"))
	if !ok || e.Action != "export" || e.Purpose != string(broker.PurposeDataSubjectRequest) ||
		e.Actor != "compliance:"+desk.ID || !slices.Contains(e.Released, "customer.phone") || e.Subject == "" {
		t.Errorf("export entry: %v %+v", ok, e)
	}
	// The shopper's disclosures list it, and "my data" says so instead of
	// claiming the number was never shared.
	var ds struct {
		Disclosures []commerce.Disclosure `json:"disclosures"`
	}
	if _, err := h.m.Sys.IntegrateAudit(ctx); err != nil {
		t.Fatal(err)
	}
	h.do("GET", "/v1/subjects/disclosures?wa_id="+wa, desk.Bearer, nil, &ds)
	found := false
	for _, d := range ds.Disclosures {
		found = found || (d.Party == "compliance:"+desk.ID && slices.Contains(d.Fields, "customer.phone"))
	}
	if !found {
		t.Errorf("disclosures lack the export: %+v", ds.Disclosures)
	}
	h.waitIdle()
	h.mustPost(textMsg(wa, "my data"))
	summary := h.next(wa, "data summary", contains("What we hold about you")).text()
	if !strings.Contains(summary, "DPO desk") || strings.Contains(summary, "your phone number") {
		t.Errorf("my data after an export:\n%s", summary)
	}
	if !strings.Contains(summary, "Never shared: your name, this chat.") && !strings.Contains(summary, "Never shared: this chat.") {
		t.Errorf("my data does not say what was never shared:\n%s", summary)
	}
}
