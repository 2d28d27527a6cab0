package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/httpapi"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/cmd/internal/config"
)

// This file holds the operational tests of issue 17: honest metrics,
// connection deadlines, and the small header and access fixes.

// serveApp runs a second HTTP application over brokerd's dependencies on
// its own loopback listener (brokerd builds its own with the defaults) and
// returns its base URL.
func serveApp(t *testing.T, cfg httpapi.Config, deps httpapi.Deps) (*httpapi.Server, string) {
	t.Helper()
	deps.UI = nil // the dashboard is mounted once, on brokerd's own application
	srv := httpapi.New(cfg, deps)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx) //nolint:errcheck
	})
	return srv, "http://" + ln.Addr().String()
}

// TestMetricsCountFinalStatus provokes every error status the API answers
// and scrapes /metrics: each request is counted with the status the client
// got and its route pattern (a fixed label for paths no route knows).
func TestMetricsCountFinalStatus(t *testing.T) {
	var deps httpapi.Deps
	h := newHarnessWith(t, harnessOpts{extra: func(d *httpapi.Deps) { deps = *d }})
	_, reader := h.partner("Reader Mart", broker.KindRetailer, "", "orders:read", "orders:write")
	wa := "919800000301"
	orderID := h.purchase(wa)

	get := func(base, path, bearer string) int {
		req, _ := http.NewRequest("GET", base+path, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		return send(t, req).status
	}
	// 401: no token. 403: a token without the scope. 404: an unknown route.
	if s := get(h.base, "/v1/orders", ""); s != 401 {
		t.Fatalf("no token: %d", s)
	}
	if s := get(h.base, "/v1/orders/"+orderID+"/delivery", reader); s != 403 {
		t.Fatalf("missing scope: %d", s)
	}
	if s := get(h.base, "/no/such/route/"+orderID, ""); s != 404 {
		t.Fatalf("unknown route: %d", s)
	}
	// 409: the same status twice.
	for i, want := range []int{200, 409} {
		if r := h.do("POST", "/v1/orders/"+orderID+"/status", reader, map[string]string{"status": "accepted"}, nil); r.StatusCode != want {
			t.Fatalf("status update %d: %d, want %d", i+1, r.StatusCode, want)
		}
	}
	// 405: a known path with another method.
	req, _ := http.NewRequest("DELETE", h.base+"/v1/orders", nil)
	if a := send(t, req); a.status != 405 {
		t.Fatalf("DELETE /v1/orders: %d", a.status)
	}
	// 413: a body over the 1 MB limit, refused before any handler.
	big := `{"status":"accepted","x":"` + strings.Repeat("a", 1<<20) + `"}`
	req, _ = http.NewRequest("POST", h.base+"/v1/orders/"+orderID+"/status", strings.NewReader(big))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+reader)
	if a := send(t, req); a.status != 413 {
		t.Fatalf("oversized body: %d", a.status)
	}
	// 429 and 503 on a second application over the same metrics: a tiny
	// rate limit and a readiness check that fails.
	deps.ExtraReady = func(context.Context) error { return errors.New("not ready") }
	_, base := serveApp(t, httpapi.Config{Issuer: h.m.Config.Server.Issuer, PartnerRate: 0.01, PartnerBurst: 1}, deps)
	if s := get(base, "/v1/orders", reader); s != 200 {
		t.Fatalf("first request: %d", s)
	}
	if s := get(base, "/v1/orders", reader); s != 429 {
		t.Fatalf("over the limit: %d", s)
	}
	if s := get(base, "/readyz", ""); s != 503 {
		t.Fatalf("readyz: %d", s)
	}

	req, _ = http.NewRequest("GET", h.base+"/metrics", nil)
	m := send(t, req)
	if m.status != 200 {
		t.Fatalf("/metrics: %d", m.status)
	}
	body := string(m.body)
	for _, want := range []string{
		`sieve_http_requests_total{method="GET",route="/v1/orders",status="401"} 1`,
		`sieve_http_requests_total{method="GET",route="/v1/orders/:id/delivery",status="403"} 1`,
		`sieve_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`sieve_http_requests_total{method="DELETE",route="/v1/orders",status="405"} 1`,
		`sieve_http_requests_total{method="POST",route="/v1/orders/:id/status",status="409"} 1`,
		`sieve_http_requests_total{method="POST",route="/v1/orders/:id/status",status="413"} 1`,
		`sieve_http_requests_total{method="GET",route="/v1/orders",status="429"} 1`,
		`sieve_http_requests_total{method="GET",route="/readyz",status="503"} 1`,
		`# HELP sieve_orders_total `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, orderID) || strings.Contains(body, "/no/such") {
		t.Errorf("/metrics carries a raw path or an order id")
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "sieve_http_requests_total{") && strings.Contains(line, `route="/"`) {
			t.Errorf("a request counted under the catch-all route: %s", line)
		}
	}
}

// TestSilentConnectionsClose opens real TCP connections on loopback that
// never send a byte (and one that stops mid-header, and one idle after a
// request) against a server with a short ReadTimeout: each must be closed
// by the server, not held open for ever.
func TestSilentConnectionsClose(t *testing.T) {
	var deps httpapi.Deps
	h := newHarnessWith(t, harnessOpts{extra: func(d *httpapi.Deps) { deps = *d }})
	const timeout = 300 * time.Millisecond
	_, base := serveApp(t, httpapi.Config{Issuer: h.m.Config.Server.Issuer, ReadTimeout: timeout,
		IdleTimeout: timeout}, deps)
	addr := strings.TrimPrefix(base, "http://")

	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	start := time.Now()
	deadline := start.Add(3 * time.Second)
	closedBy := func(name string, c net.Conn) { checkClosedBy(t, name, c, start, deadline) }

	var silent []net.Conn
	for range 20 {
		silent = append(silent, dial())
	}
	partial := dial()
	if _, err := partial.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	idle := dial()
	if _, err := idle.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	for i, c := range silent {
		closedBy("silent connection "+strconv.Itoa(i), c)
	}
	closedBy("connection stopped mid-header", partial)
	closedBy("idle keep-alive connection", idle)

	// The server still answers a connection that talks.
	req, _ := http.NewRequest("GET", base+"/healthz", nil)
	if a := send(t, req); a.status != 200 {
		t.Errorf("healthz after the silent connections: %d", a.status)
	}
}

// checkClosedBy reads from c until the server closes it (EOF or reset), and
// fails when c is still open at the deadline.
func checkClosedBy(t *testing.T, name string, c net.Conn, start, deadline time.Time) {
	t.Helper()
	c.SetReadDeadline(deadline) //nolint:errcheck
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue // the answer to a request sent before
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: still open after %v", name, time.Since(start).Round(time.Second))
		}
		return
	}
}

// TestBrokerdClosesSilentConnections runs brokerd itself (its own listener,
// as main serves it) with BROKER_READ_TIMEOUT short: connections that never
// send a byte are closed.
func TestBrokerdClosesSilentConnections(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Server.ReadTimeout = 300 * time.Millisecond })
	start := time.Now()
	var conns []net.Conn
	for range 10 {
		c, err := net.Dial("tcp", strings.TrimPrefix(h.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	for i, c := range conns {
		checkClosedBy(t, "silent connection "+strconv.Itoa(i), c, start, start.Add(3*time.Second))
	}
	if a := h.getWith("/healthz", ""); a.status != 200 {
		t.Errorf("healthz: %d", a.status)
	}
	// The setting is validated: a zero or negative timeout is refused.
	cfg := config.FromEnv(func(k string) string {
		if k == "BROKER_READ_TIMEOUT" {
			return "0s"
		}
		return ""
	})
	cfg.Database.URL = "postgres://x/y"
	cfg.SetDefaults()
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "BROKER_READ_TIMEOUT") {
		t.Errorf("BROKER_READ_TIMEOUT=0s validated: %v", err)
	}
}

// TestWebhookChallengeHeaders checks that the echoed challenge (caller
// text) is plain text that browsers must not sniff as HTML.
func TestWebhookChallengeHeaders(t *testing.T) {
	h := newHarness(t)
	q := url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {h.m.Config.WhatsApp.VerifyToken},
		"hub.challenge": {"<script>alert(1)</script>"}}
	req, _ := http.NewRequest("GET", h.base+"/webhooks/whatsapp?"+q.Encode(), nil)
	a := send(t, req)
	if a.status != 200 || string(a.body) != "<script>alert(1)</script>" {
		t.Fatalf("challenge: %d %q", a.status, a.body)
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	if v := a.header.Get("X-Content-Type-Options"); v != "nosniff" {
		t.Errorf("X-Content-Type-Options %q, want nosniff", v)
	}
}

// TestMetricsToken runs brokerd with BROKER_METRICS_TOKEN: /metrics answers
// only the scraper that presents it.
func TestMetricsToken(t *testing.T) {
	const tok = "scrape-token-0123456789"
	h := newHarness(t, func(c *config.Config) { c.Server.MetricsToken = tok })
	for _, authz := range []string{"", "Bearer wrong-token-0123456789", "Basic " + tok, tok} {
		a := h.getWith("/metrics", authz)
		if a.status != 401 {
			t.Errorf("Authorization %q: %d, want 401", authz, a.status)
		} else if msg := checkJSONError(a); msg != "" {
			t.Errorf("Authorization %q: %s", authz, msg)
		}
		if strings.Contains(string(a.body), "sieve_") {
			t.Errorf("Authorization %q: metrics leaked", authz)
		}
	}
	a := h.getWith("/metrics", "Bearer "+tok)
	if a.status != 200 || !strings.Contains(string(a.body), "sieve_http_requests_total") {
		t.Errorf("with the token: %d", a.status)
	}
	// Unset in the configuration: open, as before.
	if err := (&config.Config{}).Validate(); err == nil {
		t.Fatal("an empty configuration validated")
	}
	c := h.m.Config
	c.Server.MetricsToken = "short"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "BROKER_METRICS_TOKEN") {
		t.Errorf("a 5-character metrics token validated: %v", err)
	}
}

// TestTransparencyNeedsAuditRead checks SPEC §4: the checkpoint and the
// proofs are compliance routes like the entries (audit:read or an
// officer), and HEAD has GET's meaning for an officer session: no CSRF
// token asked.
func TestTransparencyNeedsAuditRead(t *testing.T) {
	h := newHarness(t)
	h.purchase("919800000302")
	waitAuditSequenced(t, h)
	// The proofs answer up to the latest signed checkpoint: make sure it
	// holds at least two entries, and sign it now.
	appendEntries(t, h, 2)
	if _, err := h.m.Sys.IntegrateAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, retail := h.partner("Glance Mart", broker.KindRetailer, "", "orders:read")
	_, auditor := h.partner("Auditor", broker.KindCompliance, "", "audit:read")
	paths := []string{"/v1/audit/checkpoint", "/v1/audit/proof/inclusion?index=0&size=1",
		"/v1/audit/proof/consistency?from=1&to=2"}
	for _, p := range paths {
		if a := h.getWith(p, ""); a.status != 401 {
			t.Errorf("GET %s without a token: %d, want 401", p, a.status)
		}
		if a := h.getWith(p, "Bearer "+retail); a.status != 403 {
			t.Errorf("GET %s as a retailer: %d, want 403", p, a.status)
		}
		if a := h.getWith(p, "Bearer "+auditor); a.status != 200 {
			t.Errorf("GET %s with audit:read: %d %s", p, a.status, a.body)
		}
	}

	// An officer session: GET and HEAD without a CSRF token both read.
	c := officerSession(t, h)
	for _, p := range append(paths, "/v1/audit/entries?limit=5", "/v1/reports/processing") {
		for _, method := range []string{"GET", "HEAD"} {
			req, _ := http.NewRequest(method, h.base+p, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("%s %s as an officer: %d, want 200", method, p, resp.StatusCode)
			}
		}
	}
	// A state-changing call still needs the CSRF token.
	req, _ := http.NewRequest("POST", h.base+"/v1/subjects/export", strings.NewReader(`{"wa_id":"919800000302"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 && resp.StatusCode != 403 {
		t.Errorf("POST export by session without CSRF token: %d, want 401 or 403", resp.StatusCode)
	}
}

var (
	reLoginCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	reCSRFMeta  = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)"`)
)

// officerSession creates an officer, signs in at /ui, replaces the
// one-time password (which opens no API call) and returns the client
// holding the session cookie.
func officerSession(t *testing.T, h *harness) *http.Client {
	t.Helper()
	const name, first, chosen = "ops-officer", "first password 0123456789", "chosen password 0123456789"
	hash, err := token.HashSecret(first)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.Sys.DB.Officers().Create(context.Background(), broker.Officer{ID: broker.NewID("off"), Name: name,
		PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	page := func(method, path string, form url.Values) (int, string) {
		var resp *http.Response
		var err error
		if method == "GET" {
			resp, err = c.Get(h.base + path)
		} else {
			resp, err = c.PostForm(h.base+path, form)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	_, body := page("GET", "/ui/login", nil)
	m := reLoginCSRF.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF token on the sign-in page")
	}
	if st, _ := page("POST", "/ui/login", url.Values{"csrf": {m[1]}, "name": {name}, "password": {first}}); st != 303 {
		t.Fatalf("sign-in: %d", st)
	}
	_, body = page("GET", "/ui/password", nil)
	if m = reCSRFMeta.FindStringSubmatch(body); m == nil {
		t.Fatal("no CSRF token on the password page")
	}
	if st, b := page("POST", "/ui/password", url.Values{"csrf": {m[1]}, "current": {first}, "password": {chosen},
		"again": {chosen}}); st != 303 {
		t.Fatalf("choosing a password: %d %s", st, b)
	}
	return c
}
