package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/commerce/partnerhook"
	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// ---------------------------------------------------------------------------
// The webhook recorder: a reverse proxy between the Cloud API (wasim) and
// the brokers that notes which message ids each delivery carried and what
// the broker answered, so a test can name exactly what was acknowledged.

// hookMsg is one inbound message as the proxy saw it.
type hookMsg struct {
	ID, From, Text string
}

// hookRec is one webhook delivery through the proxy.
type hookRec struct {
	Start, End time.Time
	Status     int // 0 when the broker could not be reached
	Upstream   string
	Msgs       []hookMsg
}

// hookProxy forwards POST /webhooks/whatsapp to its upstreams, round robin.
type hookProxy struct {
	URL       string // the proxy's webhook URL
	upstreams []string
	next      atomic.Uint64
	client    *http.Client
	mu        sync.Mutex
	recs      []hookRec
}

// newHookProxy starts a recording proxy in front of the brokers at
// upstreams (base URLs).
func newHookProxy(t *testing.T, upstreams ...string) *hookProxy {
	t.Helper()
	p := &hookProxy{upstreams: upstreams, client: &http.Client{Timeout: 20 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}}}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.URL = srv.URL + "/webhooks/whatsapp"
	return p
}

func (p *hookProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := hookRec{Start: time.Now()}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	var n whatsapp.Notification
	if json.Unmarshal(body, &n) == nil {
		for _, e := range n.Entry {
			for _, c := range e.Changes {
				if c.Value == nil {
					continue
				}
				for _, m := range c.Value.Messages {
					hm := hookMsg{ID: m.ID, From: m.From}
					if m.Text != nil {
						hm.Text = m.Text.Body
					}
					rec.Msgs = append(rec.Msgs, hm)
				}
			}
		}
	}
	up := p.upstreams[int(p.next.Add(1)-1)%len(p.upstreams)]
	rec.Upstream = up
	status, respBody := p.forward(r, up, body)
	rec.End, rec.Status = time.Now(), status
	p.mu.Lock()
	p.recs = append(p.recs, rec)
	p.mu.Unlock()
	if status == 0 {
		http.Error(w, "broker unreachable", http.StatusBadGateway)
		return
	}
	w.WriteHeader(status)
	_, _ = w.Write(respBody)
}

func (p *hookProxy) forward(r *http.Request, upstream string, body []byte) (int, []byte) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return 0, nil
	}
	for _, h := range []string{"Content-Type", whatsapp.SignatureHeader, "User-Agent"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b
}

// records returns a copy of what the proxy saw so far.
func (p *hookProxy) records() []hookRec {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]hookRec(nil), p.recs...)
}

// acknowledgedAfter counts the deliveries begun after t that the broker
// answered 200.
func (p *hookProxy) acknowledgedAfter(t time.Time) int {
	n := 0
	for _, r := range p.records() {
		if r.Status == http.StatusOK && r.Start.After(t) {
			n++
		}
	}
	return n
}

// acked returns the messages of every delivery the broker answered 200,
// by message id.
func (p *hookProxy) acked() map[string]hookMsg {
	out := map[string]hookMsg{}
	for _, r := range p.records() {
		if r.Status == http.StatusOK {
			for _, m := range r.Msgs {
				out[m.ID] = m
			}
		}
	}
	return out
}

// forwarded returns every message the proxy passed on (or tried to), by
// message id: a superset of what any broker could have stored.
func (p *hookProxy) forwarded() map[string]hookMsg {
	out := map[string]hookMsg{}
	for _, r := range p.records() {
		for _, m := range r.Msgs {
			out[m.ID] = m
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Faults of an HTTP dependency (the Send API, a partner's webhook)

// fault is what one request to a faulty dependency meets: a delay, then
// either the real answer (Status 0) or an error status with a Graph error
// Code and a Retry-After header (seconds, when > 0).
type fault struct {
	Delay      time.Duration
	Status     int
	Code       int
	RetryAfter int
}

// faultFunc chooses the fault of the n-th request (from 0).
type faultFunc func(n int) fault

func noFault(int) fault { return fault{} }

// attempt is one request to a faulty dependency.
type attempt struct {
	Start, End time.Time
	To         string // Send API: the recipient, digits only
	Status     int    // what the broker got back
	RetryAfter int
	WAMID      string // Send API: the id of an accepted message
	// Partner webhooks:
	Event, OrderID, DecisionID string
	SigErr                     error
}

// faultBox holds the current faultFunc and the attempts made.
type faultBox struct {
	mu       sync.Mutex
	fn       faultFunc
	n        int
	attempts []attempt
	inflight atomic.Int64
}

func (b *faultBox) set(fn faultFunc) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fn = fn
}

func (b *faultBox) choose() fault {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.fn(b.n)
	b.n++
	return f
}

func (b *faultBox) record(a attempt) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.attempts = append(b.attempts, a)
}

// all returns a copy of the attempts so far.
func (b *faultBox) all() []attempt {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]attempt(nil), b.attempts...)
}

// sleepCtx sleeps d unless the request goes away first.
func sleepCtx(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// graphError answers like the Graph API does.
func graphError(w http.ResponseWriter, f fault) {
	w.Header().Set("Content-Type", "application/json")
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
	}
	w.WriteHeader(f.Status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"message": fmt.Sprintf("(#%d) injected by the fault test", f.Code), "type": "OAuthException",
		"code": f.Code, "fbtrace_id": "faults"}})
}

// sendProxy sits between the brokers and `wasim serve`: POST .../messages
// meet the current fault, everything else passes through. wasim records
// what was accepted; the proxy records every attempt.
type sendProxy struct {
	faultBox
	URL    string // base URL: point WHATSAPP_API_BASE at URL + "/v25.0"
	target string
	client *http.Client
}

func newSendProxy(t *testing.T, target string) *sendProxy {
	t.Helper()
	p := &sendProxy{target: target, client: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	p.fn = noFault
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *sendProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 2<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	isSend := r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/messages")
	if !isSend {
		status, hdr, b := p.forward(r, body)
		copyAnswer(w, status, hdr, b)
		return
	}
	p.inflight.Add(1)
	defer p.inflight.Add(-1)
	a := attempt{Start: time.Now()}
	var m struct {
		To string `json:"to"`
	}
	_ = json.Unmarshal(body, &m)
	a.To = strings.TrimPrefix(m.To, "+")
	f := p.choose()
	if !sleepCtx(r, f.Delay) {
		a.End = time.Now()
		p.record(a)
		return
	}
	if f.Status != 0 {
		graphError(w, f)
		a.End, a.Status, a.RetryAfter = time.Now(), f.Status, f.RetryAfter
		p.record(a)
		return
	}
	status, hdr, b := p.forward(r, body)
	a.End, a.Status = time.Now(), status
	var ok struct {
		Messages []struct {
			ID string `json:"id"`
		} `json:"messages"`
	}
	if json.Unmarshal(b, &ok) == nil && len(ok.Messages) > 0 {
		a.WAMID = ok.Messages[0].ID
	}
	p.record(a)
	copyAnswer(w, status, hdr, b)
}

func (p *sendProxy) forward(r *http.Request, body []byte) (int, http.Header, []byte) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return http.StatusBadGateway, nil, nil
	}
	for _, h := range []string{"Authorization", "Content-Type", "Accept"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return http.StatusBadGateway, nil, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, resp.Header, b
}

func copyAnswer(w http.ResponseWriter, status int, hdr http.Header, b []byte) {
	for _, h := range []string{"Content-Type", "Retry-After"} {
		if v := hdr.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// partnerHook is a retailer's webhook endpoint: it checks each delivery's
// Sieve-Signature and answers with the current fault.
type partnerHook struct {
	faultBox
	URL    string
	secret atomic.Pointer[[]byte]
}

func newPartnerHook(t *testing.T) *partnerHook {
	t.Helper()
	h := &partnerHook{}
	h.fn = noFault
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	h.URL = srv.URL + "/sieve/orders"
	return h
}

// setSecret gives the endpoint the partner's secret (known once the
// partner is created with this endpoint's URL).
func (h *partnerHook) setSecret(s string) {
	b := []byte(s)
	h.secret.Store(&b)
}

func (h *partnerHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.inflight.Add(1)
	defer h.inflight.Add(-1)
	a := attempt{Start: time.Now(), Event: r.Header.Get("Sieve-Event")}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	if s := h.secret.Load(); s != nil {
		a.SigErr = partnerhook.Verify(*s, r.Header.Get("Sieve-Signature"), body, time.Now(), 0)
	} else {
		a.SigErr = fmt.Errorf("no partner secret known yet")
	}
	var ev struct {
		Type string `json:"type"`
		Data struct {
			OrderID string `json:"order_id"`
			Privacy struct {
				DecisionID string `json:"decision_id"`
			} `json:"privacy"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		a.SigErr = fmt.Errorf("undecodable body: %w", err)
	}
	a.OrderID, a.DecisionID = ev.Data.OrderID, ev.Data.Privacy.DecisionID
	f := h.choose()
	if !sleepCtx(r, f.Delay) {
		a.End = time.Now()
		h.record(a)
		return
	}
	a.Status = http.StatusOK
	if f.Status != 0 {
		a.Status = f.Status
	}
	a.End = time.Now()
	h.record(a)
	if f.Status != 0 {
		http.Error(w, "injected failure", f.Status)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// delivered returns the accepted deliveries, by order id and event.
func (h *partnerHook) delivered() map[string][]attempt {
	out := map[string][]attempt{}
	for _, a := range h.all() {
		if a.Status == http.StatusOK {
			out[a.Event+" "+a.OrderID] = append(out[a.Event+" "+a.OrderID], a)
		}
	}
	return out
}
