package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/cmd/internal/config"
	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// capture builds a "captured" payment status as WhatsApp Pay sends it (a
// fresh status id each time, so none is taken for a redelivery), changed
// by mod: a currency, a transaction, an amount that is not the order's.
func capture(wa, ref string, total int64, mod func(p map[string]any)) string {
	return captureAt(wa, ref, total, time.Now(), mod)
}

// captureAt is capture reported at a given time.
func captureAt(wa, ref string, total int64, at time.Time, mod func(p map[string]any)) string {
	p := map[string]any{
		"reference_id": ref,
		"amount":       map[string]any{"value": total, "offset": 100},
		"currency":     "INR",
		"transaction": map[string]any{"id": fmt.Sprintf("order_%d", msgSeq.Add(1)), "type": "razorpay",
			"status": "success", "method": map[string]any{"type": "upi"}},
	}
	if mod != nil {
		mod(p)
	}
	st := map[string]any{"id": fmt.Sprintf("pay.%d", msgSeq.Add(1)), "status": "captured",
		"timestamp": fmt.Sprint(at.Unix()), "recipient_id": wa, "type": "payment", "payment": p}
	b, _ := json.Marshal([]any{st})
	return `"statuses":` + string(b)
}

// waitRefusal waits for the audit entry of a refused capture of resource
// with the reason code, and fails the test if it does not come.
func (h *harness) waitRefusal(resource, reason string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := h.count(`SELECT count(*) FROM audit_entries WHERE action = 'payment' AND outcome = 'denied'
			AND resource = $1 AND convert_from(leaf, 'UTF8') LIKE '%"reason":"' || $2 || '"%'`, resource, reason)
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no audited refusal of %s with reason %s", resource, reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPaymentCaptureRefused: a "captured" status places the order only in
// INR, with a successful transaction, for the order's amount, and for the
// shopper's own order's reference. Each bad capture leaves the order
// unplaced, is audited with its reason code, and the shopper is told; a
// good capture afterwards still places the order.
func TestPaymentCaptureRefused(t *testing.T) {
	h := newHarness(t)
	h.partner("Fresh Mart", broker.KindRetailer, "", "orders:read")
	cases := []struct {
		name   string
		wa     string
		mod    func(p map[string]any)
		reason string
	}{
		{"USD", "919811180001", func(p map[string]any) { p["currency"] = "USD" }, commerce.PaymentRefusedCurrency},
		{"no currency", "919811180002", func(p map[string]any) { delete(p, "currency") }, commerce.PaymentRefusedCurrency},
		{"transaction failed", "919811180003", func(p map[string]any) {
			p["transaction"].(map[string]any)["status"] = "failed"
		}, commerce.PaymentRefusedTxnStatus},
		{"transaction pending", "919811180004", func(p map[string]any) {
			p["transaction"].(map[string]any)["status"] = "pending"
		}, commerce.PaymentRefusedTxnStatus},
		{"no transaction", "919811180005", func(p map[string]any) { delete(p, "transaction") }, commerce.PaymentRefusedNoTxn},
		{"one paisa short", "919811180006", func(p map[string]any) {
			p["amount"].(map[string]any)["value"] = p["amount"].(map[string]any)["value"].(int64) - 1
		}, commerce.PaymentRefusedAmount},
		{"same sum in another offset", "919811180007", func(p map[string]any) {
			p["amount"] = map[string]any{"value": p["amount"].(map[string]any)["value"].(int64) * 10, "offset": 1000}
		}, commerce.PaymentRefusedAmount},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.t = t
			orderID, ref, total := h.checkout(c.wa)
			h.mustPost(capture(c.wa, ref, total, c.mod))
			h.next(c.wa, "payment failed", contains("did not go through"))
			h.waitRefusal("order:"+orderID, c.reason)
			if st := h.orderStatus(orderID); st != commerce.StatusPendingPayment {
				t.Fatalf("order %s after a capture refused for %s", st, c.reason)
			}
		})
	}
	h.t = t

	// Another shopper's reference: b pays a's order. Neither order is
	// placed, b is told, and the entry does not name a's order.
	const a, b = "919811180010", "919811180011"
	orderA, refA, totalA := h.checkout(a)
	orderB, _, _ := h.checkout(b)
	h.mustPost(capture(b, refA, totalA, nil))
	h.next(b, "payment not matched", contains("could not match your payment"))
	h.waitRefusal("order:invalid", commerce.PaymentRefusedReference)
	for _, id := range []string{orderA, orderB} {
		if st := h.orderStatus(id); st != commerce.StatusPendingPayment {
			t.Errorf("order %s is %s after a capture of another shopper's reference", id, st)
		}
	}
	if n := h.count(`SELECT count(*) FROM audit_entries WHERE resource = $1 AND action = 'payment'`, "order:"+orderA); n != 0 {
		t.Errorf("%d payment entries name the other shopper's order", n)
	}

	// A refused capture is not the end: the right one places the order.
	h.pay(a, refA, totalA)
	if st := h.orderStatus(orderA); st != commerce.StatusPlaced {
		t.Errorf("order %s after a good capture", st)
	}
}

// lookupAPI stands in front of the fake Send API and answers the Cloud
// API's payment lookup (GET /{pnid}/payments/{config}/{ref}) as the test
// says, passing every other request through.
type lookupAPI struct {
	mu      sync.Mutex
	answers map[string]func(w http.ResponseWriter) // by reference id
	calls   atomic.Int32
}

func (l *lookupAPI) answer(ref string, f func(w http.ResponseWriter)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answers[ref] = f
}

// record answers with one payment record.
func record(ref, status, currency string, value int64, txn string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		rec := map[string]any{"reference_id": ref, "status": status, "currency": currency,
			"amount": map[string]any{"value": value, "offset": 100}}
		if txn != "" {
			rec["transactions"] = []any{map[string]any{"id": "order_1", "type": "razorpay", "status": txn}}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"payments": []any{rec}}) //nolint:errcheck
	}
}

func graphFailure(status int) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, `{"error":{"message":"x","type":"OAuthException","code":100}}`)
	}
}

// withLookup turns the payment lookup on and puts l in front of the
// harness's fake Send API.
func withLookup(t *testing.T, l *lookupAPI) func(*config.Config) {
	return func(c *config.Config) {
		target, err := url.Parse(c.WhatsApp.APIBase)
		if err != nil {
			t.Fatal(err)
		}
		target.Path = ""
		proxy := httputil.NewSingleHostReverseProxy(target)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			parts := strings.Split(r.URL.Path, "/") // "", v25.0, pnid, payments, config, ref
			if r.Method != http.MethodGet || len(parts) != 6 || parts[3] != "payments" {
				proxy.ServeHTTP(w, r)
				return
			}
			l.calls.Add(1)
			if r.Header.Get("Authorization") != "Bearer "+whatsapp.DevAccessToken || parts[2] != whatsapp.DevPhoneNumberID ||
				parts[4] != c.WhatsApp.PaymentConfig {
				graphFailure(400)(w)
				return
			}
			l.mu.Lock()
			f := l.answers[parts[5]]
			l.mu.Unlock()
			if f == nil {
				f = graphFailure(404)
			}
			f(w)
		}))
		t.Cleanup(srv.Close)
		c.WhatsApp.APIBase = srv.URL + "/v25.0"
		c.WhatsApp.PaymentLookup = "on"
	}
}

// TestPaymentLookupConfirms: with BROKER_PAYMENT_LOOKUP=on a well-formed
// capture places the order only when the lookup agrees; a lookup that
// disagrees leaves it unplaced (audited, the shopper told), a lookup that
// fails places nothing until it answers, and one that fails for too long
// refuses the capture.
func TestPaymentLookupConfirms(t *testing.T) {
	l := &lookupAPI{answers: map[string]func(http.ResponseWriter){}}
	h := newHarness(t, withLookup(t, l))
	h.partner("Fresh Mart", broker.KindRetailer, "", "orders:read")

	disagree := []struct {
		name   string
		wa     string
		answer func(ref string, total int64) func(http.ResponseWriter)
	}{
		{"still pending", "919811190001", func(ref string, total int64) func(http.ResponseWriter) {
			return record(ref, "pending", "INR", total, "pending")
		}},
		{"captured without a successful transaction", "919811190002", func(ref string, total int64) func(http.ResponseWriter) {
			return record(ref, "captured", "INR", total, "failed")
		}},
		{"another amount", "919811190003", func(ref string, total int64) func(http.ResponseWriter) {
			return record(ref, "captured", "INR", total-100, "success")
		}},
		{"another currency", "919811190004", func(ref string, total int64) func(http.ResponseWriter) {
			return record(ref, "captured", "USD", total, "success")
		}},
		{"unknown to the provider", "919811190005", func(string, int64) func(http.ResponseWriter) { return graphFailure(404) }},
	}
	for _, c := range disagree {
		t.Run(c.name, func(t *testing.T) {
			h.t = t
			orderID, ref, total := h.checkout(c.wa)
			l.answer(ref, c.answer(ref, total))
			h.mustPost(capture(c.wa, ref, total, nil))
			h.next(c.wa, "payment failed", contains("did not go through"))
			h.waitRefusal("order:"+orderID, commerce.PaymentRefusedLookup)
			if st := h.orderStatus(orderID); st != commerce.StatusPendingPayment {
				t.Fatalf("order %s although the lookup disagreed", st)
			}
		})
	}
	h.t = t

	// The lookup agrees: placed.
	const ok = "919811190010"
	orderID, ref, total := h.checkout(ok)
	l.answer(ref, record(ref, "captured", "INR", total, "success"))
	before := l.calls.Load()
	h.pay(ok, ref, total)
	if st := h.orderStatus(orderID); st != commerce.StatusPlaced {
		t.Fatalf("order %s although the lookup agreed", st)
	}
	if l.calls.Load() == before {
		t.Fatal("the order was placed without a lookup")
	}

	// The lookup fails: nothing is placed, the capture is asked about
	// again, and once the lookup answers the order is placed.
	const later = "919811190011"
	orderID, ref, total = h.checkout(later)
	l.answer(ref, graphFailure(503))
	before = l.calls.Load()
	h.mustPost(capture(later, ref, total, nil))
	deadline := time.Now().Add(15 * time.Second)
	for l.calls.Load() < before+2 {
		if time.Now().After(deadline) {
			t.Fatal("a failed lookup was not asked again")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := h.orderStatus(orderID); st != commerce.StatusPendingPayment {
		t.Fatalf("order %s while the lookup fails", st)
	}
	l.answer(ref, record(ref, "captured", "INR", total, "success"))
	h.next(later, "confirmation", contains("is placed"))
	if st := h.orderStatus(orderID); st != commerce.StatusPlaced {
		t.Fatalf("order %s once the lookup answered", st)
	}
	// A lookup that still fails long after the capture was reported: the
	// capture is refused rather than retried for ever.
	const stale = "919811190012"
	orderID, ref, total = h.checkout(stale)
	l.answer(ref, graphFailure(503))
	h.mustPost(captureAt(stale, ref, total, time.Now().Add(-10*time.Minute), nil))
	h.next(stale, "payment failed", contains("did not go through"))
	h.waitRefusal("order:"+orderID, commerce.PaymentRefusedLookupError)
	if st := h.orderStatus(orderID); st != commerce.StatusPendingPayment {
		t.Fatalf("order %s although the lookup never answered", st)
	}

	ctx := context.Background()
	var n int
	if err := h.m.Sys.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM inbox WHERE processed_at IS NULL`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d inbox events left pending (%v)", n, err)
	}
}
