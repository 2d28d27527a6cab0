package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
)

// retainUntil reads privacy.retain_until of an answer and checks it is the
// purpose's data life (days) from now, within a minute.
func retainUntil(t *testing.T, what string, privacy any, days int) time.Time {
	t.Helper()
	p, _ := privacy.(map[string]any)
	s, _ := p["retain_until"].(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%s: privacy.retain_until %q: %v (privacy %v)", what, s, err, privacy)
	}
	want := time.Now().Add(time.Duration(days) * 24 * time.Hour)
	if d := at.Sub(want); d > time.Minute || d < -time.Minute {
		t.Errorf("%s: retain_until %v, want about %v (%d days)", what, at, want, days)
	}
	return at
}

// TestRetainUntilOnEveryRelease: a partner read, a webhook and a data
// request each carry privacy.retain_until, the purpose's data life from
// policy data, and their audit leaves record the same time.
func TestRetainUntilOnEveryRelease(t *testing.T) {
	h := newHarness(t, allowLoopbackHooks)
	hooks := newHookServer(t)
	retail := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer,
		Scopes: []string{"orders:read", "data:request"}, WebhookURL: hooks.srv.URL + "/sieve"})
	const wa = "919811170101"
	orderID := h.purchase(wa)

	var view map[string]any
	r := h.do("GET", "/v1/orders/"+orderID, retail.Bearer, nil, &view)
	if r.StatusCode != 200 {
		t.Fatalf("GET order: %d %v", r.StatusCode, view)
	}
	at := retainUntil(t, "order view", view["privacy"], 90)
	e, ok := h.auditEntry(r.Header.Get("X-Decision-Id"))
	if !ok || !e.RetainUntil.Equal(at) {
		t.Errorf("the read's audit leaf records retain_until %v, the answer %v", e.RetainUntil, at)
	}

	calls := hooks.waitDelivered(t, "order.placed", orderID, 30*time.Second)
	var ev hookEvent
	if err := json.Unmarshal(calls[len(calls)-1].body, &ev); err != nil {
		t.Fatal(err)
	}
	retainUntil(t, "order.placed webhook", ev.Data["privacy"], 90)

	var dr map[string]any
	r = h.do("POST", "/v1/data-requests", retail.Bearer, map[string]any{"subject": view["customer_ref"],
		"purpose": "support", "fields": []string{"order.status"}}, &dr)
	if r.StatusCode != 200 {
		t.Fatalf("data request: %d %v", r.StatusCode, dr)
	}
	at = retainUntil(t, "data request", dr["privacy"], 90)
	if e, ok := h.auditEntry(r.Header.Get("X-Decision-Id")); !ok || !e.RetainUntil.Equal(at) {
		t.Errorf("the data request's leaf records retain_until %v, the answer %v", e.RetainUntil, at)
	}
}
