package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/httpapi"
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
	_, reader := h.partner("Reader Mart", broker.KindRetailer, "", "orders:read")
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
	// closedBy reads until the server closes c (EOF or reset), and fails
	// when c is still open at the deadline.
	start := time.Now()
	deadline := start.Add(3 * time.Second)
	closedBy := func(name string, c net.Conn) {
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
			} else {
				t.Logf("%s: closed by the server after %v", name, time.Since(start).Round(time.Millisecond))
			}
			return
		}
	}

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
