package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/cmd/internal/config"
	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/commerce/partnerhook"
)

// hookCall is one request the broker made to a partner's webhook.
type hookCall struct {
	at        time.Time
	event     string // Sieve-Event
	signature string // Sieve-Signature
	body      []byte
	answered  int
}

// hookServer is a partner's webhook endpoint that records every call and
// can be told to fail the first few.
type hookServer struct {
	srv  *httptest.Server
	fail atomic.Int32 // answer this many calls with 500
	// failOnly, when set, limits those failures to calls of that event.
	failOnly atomic.Pointer[string]
	mu       sync.Mutex
	calls    []hookCall
}

func newHookServer(t *testing.T) *hookServer {
	t.Helper()
	s := &hookServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		status := 204
		if only := s.failOnly.Load(); s.fail.Load() > 0 && (only == nil || *only == r.Header.Get("Sieve-Event")) {
			s.fail.Add(-1)
			status = 500
		}
		s.mu.Lock()
		s.calls = append(s.calls, hookCall{at: time.Now(), event: r.Header.Get("Sieve-Event"),
			signature: r.Header.Get(partnerhook.Header), body: body, answered: status})
		s.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *hookServer) all() []hookCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]hookCall(nil), s.calls...)
}

// allowLoopbackHooks lets partner webhooks reach the tests' hook servers on
// loopback (BROKER_WEBHOOK_ALLOW), as make run does for its demo.
func allowLoopbackHooks(c *config.Config) { c.Webhooks.Allow = "127.0.0.0/8" }

// hookEvent is the body of a partner webhook.
type hookEvent struct {
	Type      string         `json:"type"`
	ID        string         `json:"id"`
	CreatedAt time.Time      `json:"created_at"`
	Data      map[string]any `json:"data"`
}

// waitDelivered waits until a call for event (of order) was answered 2xx
// and returns every call made for it so far.
func (s *hookServer) waitDelivered(t *testing.T, event, orderID string, within time.Duration) []hookCall {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var mine []hookCall
		done := false
		for _, c := range s.all() {
			var e hookEvent
			if json.Unmarshal(c.body, &e) != nil || e.Type != event || e.Data["order_id"] != orderID {
				continue
			}
			mine = append(mine, c)
			done = done || c.answered/100 == 2
		}
		if done {
			return mine
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s webhook for %s delivered within %v (calls: %d)", event, orderID, within, len(mine))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkHook verifies one delivered call: the signature verifies with the
// partner's secret (and fails for any other body), the body names the
// event and the order, and it carries nothing that identifies the shopper.
func checkHook(t *testing.T, c hookCall, secret, event, orderID, wa string) hookEvent {
	t.Helper()
	if c.event != event {
		t.Errorf("Sieve-Event %q, want %q", c.event, event)
	}
	if err := partnerhook.Verify([]byte(secret), c.signature, c.body, time.Now(), 0); err != nil {
		t.Errorf("%s: signature %q does not verify: %v", event, c.signature, err)
	}
	if !strings.HasPrefix(c.signature, "t=") || !strings.Contains(c.signature, ",v1=") {
		t.Errorf("Sieve-Signature %q is not t=…,v1=…", c.signature)
	}
	tampered := append([]byte(nil), c.body...)
	tampered[len(tampered)-2] ^= 1
	if partnerhook.Verify([]byte(secret), c.signature, tampered, time.Now(), 0) == nil {
		t.Error("the signature also verifies a tampered body")
	}
	if partnerhook.Verify([]byte("another secret"), c.signature, c.body, time.Now(), 0) == nil {
		t.Error("the signature verifies with another secret")
	}
	var e hookEvent
	if err := json.Unmarshal(c.body, &e); err != nil {
		t.Fatalf("%s body: %v: %s", event, err, c.body)
	}
	if e.Type != event || e.ID == "" || e.CreatedAt.IsZero() || e.Data["order_id"] != orderID {
		t.Errorf("%s body: type %q id %q created_at %v order %v", event, e.Type, e.ID, e.CreatedAt, e.Data["order_id"])
	}
	for _, leak := range []string{wa, "+" + wa, wa[2:], "Asha", "Verma"} {
		if strings.Contains(string(c.body), leak) {
			t.Errorf("%s webhook carries %q: %s", event, leak, c.body)
		}
	}
	for _, k := range []string{"customer", "phone", "profile_name", "wa_id", "chat"} {
		if _, ok := e.Data[k]; ok {
			t.Errorf("%s webhook has a %q member: %s", event, k, c.body)
		}
	}
	return e
}

// TestPartnerWebhooks follows a retailer's webhook through a purchase and
// the shopper's erasure: order.placed after the payment, order.cancelled
// when the shopper deletes their data, each signed, minimised and
// delivered exactly once.
func TestPartnerWebhooks(t *testing.T) {
	h := newHarness(t, allowLoopbackHooks)
	hooks := newHookServer(t)
	retail := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer,
		Scopes: []string{"orders:read", "orders:write"}, WebhookURL: hooks.srv.URL + "/sieve"})
	const wa = "919811170001"
	orderID := h.purchase(wa)

	placed := hooks.waitDelivered(t, "order.placed", orderID, 15*time.Second)
	if len(placed) != 1 {
		t.Errorf("order.placed called %d times, want once", len(placed))
	}
	ev := checkHook(t, placed[0], retail.Secret, "order.placed", orderID, wa)
	// The webhook is the retailer's view: the same order and pseudonym as
	// the API gives it, with the identity withheld.
	var view map[string]any
	if r := h.do("GET", "/v1/orders/"+orderID, retail.Bearer, nil, &view); r.StatusCode != 200 {
		t.Fatalf("GET order: %d", r.StatusCode)
	}
	if ev.Data["customer_ref"] == nil || ev.Data["customer_ref"] != view["customer_ref"] {
		t.Errorf("webhook customer_ref %v, API %v", ev.Data["customer_ref"], view["customer_ref"])
	}
	if ev.Data["status"] != commerce.StatusPlaced || ev.Data["items"] == nil || ev.Data["total"] == nil {
		t.Errorf("order.placed lacks the fulfilment fields: %s", placed[0].body)
	}
	withheld := mustJSON(ev.Data["privacy"])
	for _, f := range []string{"customer.phone", "customer.profile_name"} {
		if !strings.Contains(withheld, f) {
			t.Errorf("privacy %s does not list %s as withheld", withheld, f)
		}
	}

	// The shopper erases themselves in the chat.
	h.mustPost(textMsg(wa, "delete my data"))
	h.next(wa, "erasure confirmation", offers(commerce.IDEraseConfirm))
	h.mustPost(replyMsg(wa, commerce.IDEraseConfirm))
	cancelled := hooks.waitDelivered(t, "order.cancelled", orderID, 15*time.Second)
	if len(cancelled) != 1 {
		t.Errorf("order.cancelled called %d times, want once", len(cancelled))
	}
	ev = checkHook(t, cancelled[0], retail.Secret, "order.cancelled", orderID, wa)
	if ev.Data["status"] != commerce.StatusCancelled {
		t.Errorf("order.cancelled status %v", ev.Data["status"])
	}
	if r := h.do("GET", "/v1/orders/"+orderID, retail.Bearer, nil, nil); r.StatusCode != 404 {
		t.Errorf("the erased shopper's order answers %d, want 404", r.StatusCode)
	}

	// The erasure is also a recipient notice (SPEC §5.12), signed alike.
	erased := hooks.noticeSeen(t, commerce.NoticeErased, 15*time.Second)
	if err := partnerhook.Verify([]byte(retail.Secret), erased[0].signature, erased[0].body, time.Now(), 0); err != nil {
		t.Errorf("subject.erased signature: %v", err)
	}

	// Nothing more arrives: each event was delivered once.
	h.waitIdle()
	time.Sleep(500 * time.Millisecond)
	if n := len(hooks.all()); n != 3 {
		for _, c := range hooks.all() {
			t.Logf("%s %d %s", c.event, c.answered, c.body)
		}
		t.Errorf("%d webhook calls, want 3 (order.placed, order.cancelled, subject.erased)", n)
	}
}

// TestPartnerWebhookRetries makes the partner's endpoint fail twice: the
// broker retries from its outbox with growing delays and the event is
// delivered exactly once, the same event each time, freshly signed.
func TestPartnerWebhookRetries(t *testing.T) {
	h := newHarness(t, allowLoopbackHooks)
	hooks := newHookServer(t)
	hooks.fail.Store(2)
	retail := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer,
		Scopes: []string{"orders:read"}, WebhookURL: hooks.srv.URL + "/sieve"})
	const wa = "919811170002"
	orderID := h.purchase(wa)

	calls := hooks.waitDelivered(t, "order.placed", orderID, 30*time.Second)
	if len(calls) != 3 {
		t.Fatalf("%d calls, want 2 failures and 1 delivery", len(calls))
	}
	for i, want := range []int{500, 500, 204} {
		if calls[i].answered != want {
			t.Errorf("call %d answered %d, want %d", i+1, calls[i].answered, want)
		}
	}
	var first hookEvent
	for i, c := range calls {
		e := checkHook(t, c, retail.Secret, "order.placed", orderID, wa)
		if i == 0 {
			first = e
		} else if e.ID != first.ID {
			t.Errorf("retry %d carries event %s, the first %s: a retry must resend the same event", i, e.ID, first.ID)
		}
	}
	gap1, gap2 := calls[1].at.Sub(calls[0].at), calls[2].at.Sub(calls[1].at)
	if gap1 < 900*time.Millisecond || gap2 < gap1+gap1/2 {
		t.Errorf("retry delays %v then %v: want a backoff of at least a second that grows", gap1, gap2)
	}
	h.waitIdle()
	time.Sleep(time.Second)
	if n := len(hooks.all()); n != 3 {
		t.Errorf("%d calls after the delivery, want 3 in all (delivered exactly once)", n)
	}
	if n := h.count(`SELECT count(*) FROM outbox WHERE kind = 'partner' AND status = 'sent'`); n != 1 {
		t.Errorf("%d partner outbox items sent, want 1", n)
	}
}

// partnerOutboxError waits until the partner outbox holds an item whose
// last error is reason, and returns how many attempts it took.
func (h *harness) partnerOutboxError(reason string, within time.Duration) int {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var attempts int
		err := h.m.Sys.DB.Pool.QueryRow(context.Background(), `SELECT attempts FROM outbox
			WHERE kind = 'partner' AND last_error = $1 LIMIT 1`, reason).Scan(&attempts)
		if err == nil {
			return attempts
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no partner outbox item failed with %q within %v", reason, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPartnerWebhookAddressGuard: a webhook URL on the broker's own host
// (here registered around brokerctl's check, as a name that resolved
// elsewhere at registration would be) is refused when the delivery
// connects: the signed order never leaves, the outbox says why and keeps
// the event for a retry, and the order itself is placed.
func TestPartnerWebhookAddressGuard(t *testing.T) {
	h := newHarness(t) // no BROKER_WEBHOOK_ALLOW
	hooks := newHookServer(t)
	h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer,
		Scopes: []string{"orders:read"}, WebhookURL: strings.Replace(hooks.srv.URL, "127.0.0.1", "localhost", 1) + "/sieve"})
	const wa = "919811170003"
	orderID, ref, total := h.checkout(wa)
	h.pay(wa, ref, total)
	h.partnerOutboxError(partnerhook.ReasonRefused, 15*time.Second)
	if n := len(hooks.all()); n != 0 {
		t.Fatalf("the webhook on loopback was called %d times", n)
	}
	if st := h.orderStatus(orderID); st != commerce.StatusPlaced {
		t.Errorf("order %s, want placed", st)
	}
	if n := h.count(`SELECT count(*) FROM outbox WHERE kind = 'partner' AND status = 'pending'`); n != 1 {
		t.Errorf("%d partner events pending, want the refused one kept for a retry", n)
	}
}

// TestPartnerWebhookNoRedirect: the partner's endpoint answers 307 to
// another URL. The broker does not re-POST the signed order there; the 3xx
// is a failed delivery, retried to the registered URL only.
func TestPartnerWebhookNoRedirect(t *testing.T) {
	h := newHarness(t, allowLoopbackHooks)
	thief := newHookServer(t)
	var redirected atomic.Int32
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) //nolint:errcheck
		redirected.Add(1)
		http.Redirect(w, r, thief.srv.URL+"/stolen", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer,
		Scopes: []string{"orders:read"}, WebhookURL: redirector.URL + "/sieve"})
	const wa = "919811170004"
	_, ref, total := h.checkout(wa)
	h.pay(wa, ref, total)
	h.partnerOutboxError("partner webhook answered 307", 15*time.Second)
	if redirected.Load() == 0 {
		t.Fatal("the registered URL was never called")
	}
	if n := len(thief.all()); n != 0 {
		t.Fatalf("the redirect target received %d signed orders", n)
	}
}
