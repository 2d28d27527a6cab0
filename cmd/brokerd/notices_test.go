package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/cmd/internal/config"
	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/commerce/partnerhook"
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

// noticeSeen waits for a delivered (2xx) call of a recipient notice of type
// typ and returns every call made for that type so far.
func (s *hookServer) noticeSeen(t *testing.T, typ string, within time.Duration) []hookCall {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var mine []hookCall
		done := false
		for _, c := range s.all() {
			if c.event == typ {
				mine = append(mine, c)
				done = done || c.answered/100 == 2
			}
		}
		if done {
			return mine
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s delivered within %v (%d calls)", typ, within, len(mine))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// noticeConfig makes deadlines short enough for a test to miss one.
func noticeConfig(deadline time.Duration) func(*config.Config) {
	return func(c *config.Config) {
		allowLoopbackHooks(c)
		c.Workers.NoticeDeadline = deadline
		c.Workers.NoticeRefresh = 200 * time.Millisecond
	}
}

// outForDelivery makes a purchase, dispatches it to the courier and puts
// it out for delivery; the courier reads its delivery view and returns the
// answer's customer_ref.
func (h *harness) outForDelivery(wa string, retail, courier creds) (orderID, courierRef string) {
	h.t.Helper()
	orderID = h.purchase(wa)
	if r := h.do("POST", "/v1/orders/"+orderID+"/dispatch", retail.Bearer, map[string]any{"logistics": courier.ID}, nil); r.StatusCode != 200 {
		h.t.Fatalf("dispatch: %d", r.StatusCode)
	}
	if r := h.do("POST", "/v1/orders/"+orderID+"/status", retail.Bearer, map[string]any{"status": "out_for_delivery"}, nil); r.StatusCode != 200 {
		h.t.Fatalf("out for delivery: %d", r.StatusCode)
	}
	var dv map[string]any
	if r := h.do("GET", "/v1/orders/"+orderID+"/delivery", courier.Bearer, nil, &dv); r.StatusCode != 200 {
		h.t.Fatalf("delivery view: %d %v", r.StatusCode, dv)
	}
	ref, _ := dv["customer_ref"].(string)
	return orderID, ref
}

// TestRecipientNoticesEndToEnd is issue 19's done-means: order → the
// retailer reads it → erasure → subject.erased delivered (signed, retried
// after a failure) → the retailer acknowledges with a signed ack → the
// entry verifies offline; a courier that never acknowledges is denied its
// next release after the deadline with unacknowledged_notice, until it
// acknowledges.
func TestRecipientNoticesEndToEnd(t *testing.T) {
	h := newHarness(t, noticeConfig(4*time.Second))
	hooks := newHookServer(t)
	retail := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer,
		Scopes: []string{"orders:read", "orders:write"}, WebhookURL: hooks.srv.URL + "/sieve"})
	courier := h.partnerWith(token.PartnerSpec{Name: "Couriers", Kind: broker.KindLogistics,
		Scopes: []string{"delivery:read"}})
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	if err := h.m.Sys.Stores.Notices.SetPartnerAckKey(context.Background(), retail.ID, pub); err != nil {
		t.Fatal(err)
	}
	const wa = "919811170201"
	orderID, courierRef := h.outForDelivery(wa, retail, courier)
	var view map[string]any
	if r := h.do("GET", "/v1/orders/"+orderID, retail.Bearer, nil, &view); r.StatusCode != 200 {
		t.Fatalf("retailer read: %d", r.StatusCode)
	}
	retailRef, _ := view["customer_ref"].(string)

	erased := commerce.NoticeErased
	hooks.failOnly.Store(&erased)
	hooks.fail.Store(1) // the first delivery of the notice fails
	h.mustPost(textMsg(wa, "delete my data"))
	h.next(wa, "erasure confirmation", offers(commerce.IDEraseConfirm))
	h.mustPost(replyMsg(wa, commerce.IDEraseConfirm))

	calls := hooks.noticeSeen(t, commerce.NoticeErased, 20*time.Second)
	if len(calls) != 2 || calls[0].answered != 500 || calls[1].answered/100 != 2 {
		t.Fatalf("subject.erased calls %d (want a failure then a delivery)", len(calls))
	}
	var ev commerce.NoticeEvent
	for _, c := range calls {
		if err := partnerhook.Verify([]byte(retail.Secret), c.signature, c.body, time.Now(), 0); err != nil {
			t.Errorf("notice signature does not verify: %v", err)
		}
		if string(c.body) != string(calls[0].body) {
			t.Error("the retry carries another body")
		}
		if strings.Contains(string(c.body), wa[2:]) {
			t.Errorf("the notice carries the phone: %s", c.body)
		}
	}
	if err := json.Unmarshal(calls[1].body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != commerce.NoticeErased || !strings.HasPrefix(ev.ID, "evt_") || ev.CustomerRef != retailRef ||
		len(ev.OrderIDs) != 1 || ev.OrderIDs[0] != orderID || ev.Deadline.Before(ev.CreatedAt.Add(3*time.Second)) {
		t.Fatalf("notice body %s (retailer's ref %s, order %s)", calls[1].body, retailRef, orderID)
	}

	// The courier has no webhook: it reads the same kind of event from
	// GET /v1/events, with its own pseudonym.
	var evs struct {
		Events []commerce.NoticeEvent `json:"events"`
		Next   *string                `json:"next_cursor"`
	}
	if r := h.do("GET", "/v1/events", courier.Bearer, nil, &evs); r.StatusCode != 200 || len(evs.Events) != 1 {
		t.Fatalf("GET /v1/events: %d %+v", r.StatusCode, evs)
	}
	if e := evs.Events[0]; e.Type != commerce.NoticeErased || e.CustomerRef != courierRef || e.CustomerRef == retailRef {
		t.Errorf("courier's event %+v (its ref %s)", e, courierRef)
	}
	if r := h.do("GET", "/v1/events?cursor=x1", courier.Bearer, nil, nil); r.StatusCode != 400 {
		t.Errorf("a bad cursor answers %d", r.StatusCode)
	}

	// The retailer registered an ack key: unsigned and badly signed acks
	// are refused, a signed one is kept.
	msg := commerce.AckBytes(ev.ID, "done")
	if r := h.do("POST", "/v1/acks", retail.Bearer, map[string]any{"event_id": ev.ID, "status": "done"}, nil); r.StatusCode != 400 {
		t.Errorf("an unsigned ack answers %d, want 400", r.StatusCode)
	}
	bad := ed25519.Sign(priv, []byte(`{"event_id":"`+ev.ID+`","status":"done" }`))
	if r := h.do("POST", "/v1/acks", retail.Bearer, map[string]any{"event_id": ev.ID, "status": "done",
		"signature": base64.StdEncoding.EncodeToString(bad)}, nil); r.StatusCode != 400 {
		t.Errorf("an ack signed over other bytes answers %d, want 400", r.StatusCode)
	}
	if r := h.do("POST", "/v1/acks", courier.Bearer, map[string]any{"event_id": ev.ID, "status": "done"}, nil); r.StatusCode != 404 {
		t.Errorf("acknowledging another partner's event answers %d, want 404", r.StatusCode)
	}
	var ack commerce.AckResult
	r := h.do("POST", "/v1/acks", retail.Bearer, map[string]any{"event_id": ev.ID, "status": "done",
		"signature": base64.StdEncoding.EncodeToString(ed25519.Sign(priv, msg))}, &ack)
	if r.StatusCode != 200 || !ack.Signed || ack.DecisionID == "" {
		t.Fatalf("signed ack: %d %+v", r.StatusCode, ack)
	}
	body, sig, err := h.m.Sys.Stores.Notices.NoticeAck(context.Background(), ev.ID)
	if err != nil || string(body) != string(msg) || !ed25519.Verify(pub, body, sig) {
		t.Errorf("kept evidence does not verify: %v %s", err, body)
	}

	// The ack's entry is in the log, and the log verifies offline.
	h.verifyOfflineHas(t, ack.DecisionID, "ack "+commerce.NoticeErased, commerce.NoticeReasonAckSigned)

	// Another shopper's order goes to the same courier. Before the
	// deadline the courier still gets it; after, it is denied with
	// unacknowledged_notice (the retailer, who acknowledged, is not).
	time.Sleep(time.Until(ev.Deadline) + 600*time.Millisecond)
	orderID2 := h.purchase("919811170202")
	if r := h.do("POST", "/v1/orders/"+orderID2+"/dispatch", retail.Bearer, map[string]any{"logistics": courier.ID}, nil); r.StatusCode != 200 {
		t.Fatalf("retailer (acknowledged) dispatch: %d", r.StatusCode)
	}
	h.do("POST", "/v1/orders/"+orderID2+"/status", retail.Bearer, map[string]any{"status": "out_for_delivery"}, nil)
	var denied map[string]any
	r = h.do("GET", "/v1/orders/"+orderID2+"/delivery", courier.Bearer, nil, &denied)
	if r.StatusCode != 403 || !strings.Contains(mustJSON(denied), commerce.ReasonUnacknowledgedNotice) {
		t.Fatalf("overdue courier's read: %d %v, want 403 %s", r.StatusCode, denied, commerce.ReasonUnacknowledgedNotice)
	}
	if e, ok := h.auditEntry(r.Header.Get("X-Decision-Id")); !ok || e.Reason != commerce.ReasonUnacknowledgedNotice {
		t.Errorf("the denial's entry: %+v", e)
	}
	if r := h.do("GET", "/v1/orders/"+orderID2, retail.Bearer, nil, nil); r.StatusCode != 200 {
		t.Errorf("the retailer that acknowledged reads %d", r.StatusCode)
	}
	if n := h.count(`SELECT count(*) FROM audit_entries WHERE action = 'notice overdue' AND convert_from(leaf, 'UTF8')::jsonb->>'reason' = $1`, commerce.NoticeReasonOverdue); n != 1 {
		// Entries reach audit_entries within a second.
		time.Sleep(1500 * time.Millisecond)
		if n := h.count(`SELECT count(*) FROM audit_entries WHERE action = 'notice overdue' AND convert_from(leaf, 'UTF8')::jsonb->>'reason' = $1`, commerce.NoticeReasonOverdue); n != 1 {
			t.Errorf("%d missed-deadline entries, want 1", n)
		}
	}

	// The courier acknowledges (unsigned: it has no key) and is served again.
	if r := h.do("POST", "/v1/acks", courier.Bearer, map[string]any{"event_id": evs.Events[0].ID, "status": "done"}, &ack); r.StatusCode != 200 || ack.Signed {
		t.Fatalf("courier ack: %d %+v", r.StatusCode, ack)
	}
	if r := h.do("GET", "/v1/orders/"+orderID2+"/delivery", courier.Bearer, nil, nil); r.StatusCode != 200 {
		t.Errorf("after its ack the courier reads %d", r.StatusCode)
	}
}

// verifyOfflineHas exports the audit log, verifies it offline against the
// checkpoint key, and checks that it holds the entry of decision id with
// the given action and reason. It waits for a checkpoint covering it.
func (h *harness) verifyOfflineHas(t *testing.T, id, action, reason string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var buf bytes.Buffer
		err := h.m.Sys.DB.AuditReports().ExportAudit(ctx, &buf, broker.AuditFilter{}, postgres.ExportJSONL)
		if err == nil {
			if _, _, err := audit.VerifyExport(bytes.NewReader(buf.Bytes()), h.m.Sys.CurrentCheckpointKey(), nil); err != nil {
				t.Fatalf("the export does not verify offline: %v", err)
			}
			lines := bytes.Split(buf.Bytes(), []byte("\n"))
			for _, l := range lines[1:] {
				if len(l) == 0 {
					continue
				}
				e, err := audit.ParseEntry(l)
				if err != nil {
					t.Fatalf("exported leaf: %v", err)
				}
				if e.DecisionID == id {
					if e.Action != action || e.Reason != reason || e.Outcome != audit.OutcomeDone {
						t.Errorf("entry %+v, want action %q reason %q", e, action, reason)
					}
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("entry %s not in a verified export within 15s (last error %v)", id, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestCorrectionReachesRecipients is issue 22's correction: "correct
// address" in the chat re-seals the open order, releases nothing on its
// own, and sends subject.corrected to both recipients of the old address
// (the retailer by webhook, the courier by GET /v1/events); a re-read
// shows the new address.
func TestCorrectionReachesRecipients(t *testing.T) {
	h := newHarness(t, noticeConfig(time.Hour))
	hooks := newHookServer(t)
	retail := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer,
		Scopes: []string{"orders:read", "orders:write"}, WebhookURL: hooks.srv.URL + "/sieve"})
	courier := h.partnerWith(token.PartnerSpec{Name: "Couriers", Kind: broker.KindLogistics,
		Scopes: []string{"delivery:read"}})
	const wa = "919811170301"
	orderID, courierRef := h.outForDelivery(wa, retail, courier)
	h.waitIdle()
	releases := func() int {
		return h.count(`SELECT count(*) FROM (SELECT convert_from(leaf, 'UTF8')::jsonb AS e FROM audit_entries
			UNION ALL SELECT convert_from(entry, 'UTF8')::jsonb FROM audit_pending) x
			WHERE e->>'resource' = $1 AND e->>'outcome' IN ('released', 'partial')`, "order:"+orderID)
	}
	before := releases()

	h.mustPost(textMsg(wa, "correct address"))
	h.next(wa, "address question", contains("corrected delivery address"))
	h.mustPost(textMsg(wa, "no pin here"))
	h.next(wa, "asked again", contains("PIN code"))
	h.mustPost(textMsg(wa, "45 Brigade Road, Bengaluru 560025"))
	h.next(wa, "correction done", contains("told to update"))

	calls := hooks.noticeSeen(t, commerce.NoticeCorrected, 15*time.Second)
	var ev commerce.NoticeEvent
	if err := json.Unmarshal(calls[len(calls)-1].body, &ev); err != nil {
		t.Fatal(err)
	}
	if err := partnerhook.Verify([]byte(retail.Secret), calls[len(calls)-1].signature, calls[len(calls)-1].body, time.Now(), 0); err != nil {
		t.Errorf("signature: %v", err)
	}
	if len(ev.OrderIDs) != 1 || ev.OrderIDs[0] != orderID || strings.Contains(string(calls[0].body), "Brigade") {
		t.Errorf("subject.corrected body %s", calls[0].body)
	}
	var evs struct {
		Events []commerce.NoticeEvent `json:"events"`
	}
	if r := h.do("GET", "/v1/events", courier.Bearer, nil, &evs); r.StatusCode != 200 || len(evs.Events) != 1 ||
		evs.Events[0].Type != commerce.NoticeCorrected || evs.Events[0].CustomerRef != courierRef {
		t.Fatalf("courier events: %+v", evs)
	}
	h.waitIdle()
	time.Sleep(300 * time.Millisecond)
	if after := releases(); after != before {
		t.Errorf("the correction released the order %d time(s) on its own", after-before)
	}
	var view map[string]any
	if r := h.do("GET", "/v1/orders/"+orderID, retail.Bearer, nil, &view); r.StatusCode != 200 {
		t.Fatalf("re-read: %d", r.StatusCode)
	}
	if d, _ := view["delivery"].(map[string]any); d["address"] != "45 Brigade Road, Bengaluru 560025" || d["postal_code"] != "560025" {
		t.Errorf("re-read delivery %v", view["delivery"])
	}
	// The correction is audited without the address.
	if n := h.count(`SELECT count(*) FROM (SELECT convert_from(leaf, 'UTF8') AS e FROM audit_entries
		UNION ALL SELECT convert_from(entry, 'UTF8') FROM audit_pending) x WHERE e LIKE '%Brigade%'`); n != 0 {
		t.Errorf("%d audit entries hold the address", n)
	}
}

// TestConsentWithdrawalNotice: "stop" after an opt-in sends
// consent.withdrawn, naming the withdrawn purpose, to every recipient; the
// shopper's disclosures show it per recipient with notified and
// acknowledged times.
func TestConsentWithdrawalNotice(t *testing.T) {
	h := newHarness(t, noticeConfig(time.Hour))
	retail := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer, Scopes: []string{"orders:read"}})
	const wa = "919811170401"
	orderID := h.purchase(wa)
	if r := h.do("GET", "/v1/orders/"+orderID, retail.Bearer, nil, nil); r.StatusCode != 200 {
		t.Fatalf("read: %d", r.StatusCode)
	}
	h.mustPost(textMsg(wa, "allow analytics"))
	h.next(wa, "analytics on", contains("analytics"))
	var evs struct {
		Events []commerce.NoticeEvent `json:"events"`
	}
	if h.do("GET", "/v1/events", retail.Bearer, nil, &evs); len(evs.Events) != 0 {
		t.Fatalf("an opt-in sent %d notices", len(evs.Events))
	}
	h.mustPost(textMsg(wa, "stop"))
	h.next(wa, "stopped", contains("no offers and no analytics"))
	if r := h.do("GET", "/v1/events", retail.Bearer, nil, &evs); r.StatusCode != 200 || len(evs.Events) != 1 {
		t.Fatalf("events after stop: %d %+v", r.StatusCode, evs)
	}
	ev := evs.Events[0]
	if ev.Type != commerce.NoticeWithdrawn || len(ev.Purposes) != 1 || ev.Purposes[0] != "analytics" || ev.OrderIDs[0] != orderID {
		t.Errorf("consent.withdrawn %+v", ev)
	}
	// A second "stop" withdraws nothing more and tells nobody again.
	h.mustPost(textMsg(wa, "stop"))
	h.next(wa, "stopped again", contains("no offers and no analytics"))
	if h.do("GET", "/v1/events?cursor=0", retail.Bearer, nil, &evs); len(evs.Events) != 1 {
		t.Errorf("%d notices after a second stop, want 1", len(evs.Events))
	}
	if r := h.do("POST", "/v1/acks", retail.Bearer, map[string]any{"event_id": ev.ID, "status": "done"}, nil); r.StatusCode != 200 {
		t.Fatalf("ack: %d", r.StatusCode)
	}
	subject, err := h.m.Sys.Rights.ResolveWaID(context.Background(), wa)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := h.m.Sys.Rights.Disclosures(context.Background(), subject.ID)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range ds {
		for _, n := range d.Notices {
			if n.EventID == ev.ID && n.NotifiedAt != nil && n.AcknowledgedAt != nil {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("disclosures do not show the notice as notified and acknowledged: %+v", ds)
	}
}

// TestHostileAcks: malformed, mistyped, oversized and forged
// acknowledgements get a clear 4xx and acknowledge nothing; the events
// and acks routes need a partner token.
func TestHostileAcks(t *testing.T) {
	h := newHarness(t, noticeConfig(time.Hour))
	retail := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer, Scopes: []string{"orders:read"}})
	other := h.partnerWith(token.PartnerSpec{Name: "Other", Kind: broker.KindAnalytics, Scopes: []string{"data:request"}})
	const wa = "919811170501"
	orderID := h.purchase(wa)
	h.do("GET", "/v1/orders/"+orderID, retail.Bearer, nil, nil)
	h.mustPost(textMsg(wa, "delete my data"))
	h.next(wa, "erasure confirmation", offers(commerce.IDEraseConfirm))
	h.mustPost(replyMsg(wa, commerce.IDEraseConfirm))
	h.waitIdle()
	var evs struct {
		Events []commerce.NoticeEvent `json:"events"`
	}
	if h.do("GET", "/v1/events", retail.Bearer, nil, &evs); len(evs.Events) != 1 {
		t.Fatalf("events: %+v", evs)
	}
	id := evs.Events[0].ID
	for _, c := range []struct {
		name, bearer, ctype, body string
		want                      int
	}{
		{"not JSON", retail.Bearer, "application/json", `{"event_id":`, 400},
		{"wrong content type", retail.Bearer, "text/plain", `{"event_id":"` + id + `","status":"done"}`, 415},
		{"unknown field", retail.Bearer, "application/json", `{"event_id":"` + id + `","status":"done","note":"ok"}`, 400},
		{"status not done", retail.Bearer, "application/json", `{"event_id":"` + id + `","status":"ignored"}`, 400},
		{"id not ours", retail.Bearer, "application/json", `{"event_id":"+919811170501","status":"done"}`, 400},
		{"id with a NUL", retail.Bearer, "application/json", `{"event_id":"evt_\u0000","status":"done"}`, 400},
		{"id of nothing", retail.Bearer, "application/json", `{"event_id":"evt_aaaaaaaaaaaaaaaaaaaaaaaaaa","status":"done"}`, 404},
		{"signature without a key", retail.Bearer, "application/json", `{"event_id":"` + id + `","status":"done","signature":"AAAA"}`, 400},
		{"status of the wrong type", retail.Bearer, "application/json", `{"event_id":"` + id + `","status":1}`, 400},
		{"another partner's event", other.Bearer, "application/json", `{"event_id":"` + id + `","status":"done"}`, 404},
		{"no token", "", "application/json", `{"event_id":"` + id + `","status":"done"}`, 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", h.base+"/v1/acks", strings.NewReader(c.body))
			req.Header.Set("Content-Type", c.ctype)
			if c.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+c.bearer)
			}
			a := send(t, req)
			if a.status != c.want {
				t.Fatalf("status %d, want %d: %s", a.status, c.want, a.body)
			}
			if msg := checkJSONError(a); msg != "" {
				t.Errorf("error shape: %s: %s", msg, a.body)
			}
		})
	}
	if n := h.count(`SELECT count(*) FROM partner_notices WHERE acked_at IS NOT NULL`); n != 0 {
		t.Errorf("%d notices acknowledged by hostile requests", n)
	}
	for _, q := range []string{"?cursor=-1", "?cursor=01", "?cursor=99999999999999999999", "?limit=0", "?limit=101", "?limit=x"} {
		if r := h.do("GET", "/v1/events"+q, retail.Bearer, nil, nil); r.StatusCode != 400 {
			t.Errorf("GET /v1/events%s answers %d, want 400", q, r.StatusCode)
		}
	}
	if r := h.do("GET", "/v1/events", "", nil, nil); r.StatusCode != 401 {
		t.Errorf("GET /v1/events without a token answers %d", r.StatusCode)
	}
	if h.do("GET", "/v1/events", other.Bearer, nil, &evs); len(evs.Events) != 0 {
		t.Errorf("another partner sees %d of the retailer's events", len(evs.Events))
	}
}

// officerSession creates an officer with a chosen password and signs in to
// /ui; it returns the session cookie and the CSRF token.
func (h *harness) officerSession(name string) (*http.Cookie, string) {
	h.t.Helper()
	ctx := context.Background()
	const password = "correct horse battery staple 42"
	hash, err := token.HashSecret(password)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.m.Sys.DB.Officers().Create(ctx, broker.Officer{ID: broker.NewID("off"), Name: name, PasswordHash: hash}); err != nil {
		h.t.Fatal(err)
	}
	// The operator's password is temporary; this officer chose theirs.
	if _, err := h.m.Sys.DB.Pool.Exec(ctx, `UPDATE officers SET password_temporary = false WHERE name = $1`, name); err != nil {
		h.t.Fatal(err)
	}
	get := func(path string, cookies ...*http.Cookie) (*http.Response, string) {
		req, _ := http.NewRequest("GET", h.base+path, nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := noRedirects.Do(req)
		if err != nil {
			h.t.Fatal(err)
		}
		defer resp.Body.Close()
		b := new(bytes.Buffer)
		_, _ = b.ReadFrom(resp.Body)
		return resp, b.String()
	}
	resp, _ := get("/ui/login")
	var login *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "sieve_login" {
			login = c
		}
	}
	if login == nil {
		h.t.Fatal("no login cookie")
	}
	form := url.Values{"csrf": {login.Value}, "name": {name}, "password": {password}}
	req, _ := http.NewRequest("POST", h.base+"/ui/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(login)
	a := send(h.t, req)
	var sess *http.Cookie
	for _, c := range (&http.Response{Header: a.header}).Cookies() {
		if c.Name == "sieve_session" {
			sess = c
		}
	}
	if a.status != 303 || sess == nil {
		h.t.Fatalf("login: %d %s", a.status, a.body)
	}
	r2, page := get("/ui/subjects", sess)
	const marker = `<meta name="csrf-token" content="`
	i := strings.Index(page, marker)
	if i < 0 {
		h.t.Fatalf("no CSRF token (status %d, %s): %s", r2.StatusCode, r2.Header.Get("Location"), page)
	}
	rest := page[i+len(marker):]
	return sess, rest[:strings.IndexByte(rest, '"')]
}

// TestOfficerCorrection: an officer corrects a shopper's address in /ui;
// the recipient of the old address gets subject.corrected, the audit entry
// names the officer and holds no address, and /ui/notices lists the
// outstanding acknowledgement.
func TestOfficerCorrection(t *testing.T) {
	h := newHarness(t, noticeConfig(time.Hour))
	retail := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer, Scopes: []string{"orders:read"}})
	const wa = "919811170801"
	orderID := h.purchase(wa)
	if r := h.do("GET", "/v1/orders/"+orderID, retail.Bearer, nil, nil); r.StatusCode != 200 {
		t.Fatalf("read: %d", r.StatusCode)
	}
	sess, csrf := h.officerSession("asha")
	post := func(form url.Values) answer {
		req, _ := http.NewRequest("POST", h.base+"/ui/subjects/correct", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(sess)
		return send(t, req)
	}
	if a := post(url.Values{"csrf": {csrf}, "wa_id": {"+" + wa}, "address": {"no pin code here at all"}}); a.status != 400 {
		t.Errorf("an address without a PIN code: %d", a.status)
	}
	a := post(url.Values{"csrf": {csrf}, "wa_id": {"+" + wa}, "address": {"7 Residency Road, Bengaluru 560025"}})
	if a.status != 200 || !strings.Contains(string(a.body), "1 recipient(s) of the old address told") {
		t.Fatalf("correction: %d %s", a.status, a.body)
	}
	var evs struct {
		Events []commerce.NoticeEvent `json:"events"`
	}
	if h.do("GET", "/v1/events", retail.Bearer, nil, &evs); len(evs.Events) != 1 || evs.Events[0].Type != commerce.NoticeCorrected {
		t.Fatalf("events: %+v", evs)
	}
	time.Sleep(1500 * time.Millisecond)
	if n := h.count(`SELECT count(*) FROM audit_entries WHERE action = 'correct' AND actor LIKE 'officer:%'`); n != 1 {
		t.Errorf("%d officer correction entries, want 1", n)
	}
	if n := h.count(`SELECT count(*) FROM audit_entries WHERE convert_from(leaf, 'UTF8') LIKE '%Residency%'`); n != 0 {
		t.Error("the address reached the audit log")
	}
	req, _ := http.NewRequest("GET", h.base+"/ui/notices", nil)
	req.AddCookie(sess)
	if a := send(t, req); a.status != 200 || !strings.Contains(string(a.body), evs.Events[0].ID) || !strings.Contains(string(a.body), "Fresh Mart") {
		t.Errorf("/ui/notices: %d, lists the event: %v", a.status, strings.Contains(string(a.body), evs.Events[0].ID))
	}
}

// TestRestrictionNotice: "pause my data" tells every partner that holds
// the shopper's data to stop processing it (processing.restricted, GDPR
// Art. 19, SPEC §5.12), and "resume" tells nobody.
func TestRestrictionNotice(t *testing.T) {
	h := newHarness(t, noticeConfig(time.Hour))
	retail := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer, Scopes: []string{"orders:read"}})
	const wa = "919811170402"
	orderID := h.purchase(wa)
	if r := h.do("GET", "/v1/orders/"+orderID, retail.Bearer, nil, nil); r.StatusCode != 200 {
		t.Fatalf("read: %d", r.StatusCode)
	}
	var evs struct {
		Events []commerce.NoticeEvent `json:"events"`
	}
	h.mustPost(textMsg(wa, "pause my data"))
	h.waitIdle()
	if r := h.do("GET", "/v1/events", retail.Bearer, nil, &evs); r.StatusCode != 200 || len(evs.Events) != 1 {
		t.Fatalf("events after pause: %d %+v", r.StatusCode, evs)
	}
	if ev := evs.Events[0]; ev.Type != commerce.NoticeRestricted || len(ev.OrderIDs) != 1 || ev.OrderIDs[0] != orderID {
		t.Errorf("processing.restricted %+v", ev)
	}
	h.mustPost(textMsg(wa, "resume"))
	h.waitIdle()
	if h.do("GET", "/v1/events?cursor=0", retail.Bearer, nil, &evs); len(evs.Events) != 1 {
		t.Errorf("%d notices after resume, want 1", len(evs.Events))
	}
}
