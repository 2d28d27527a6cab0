package whatsapp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// graphServer answers every request with status and body and records the
// last request.
type graphServer struct {
	status  int
	body    string
	headers map[string]string
	last    atomic.Pointer[recorded]
}

type recorded struct {
	method, path, auth, contentType string
	body                            []byte
}

func (g *graphServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	g.last.Store(&recorded{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), b})
	for k, v := range g.headers {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(g.status)
	io.WriteString(w, g.body)
}

func newTestClient(t *testing.T, g *graphServer) *Client {
	t.Helper()
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	c := NewClient(srv.URL+"/v25.0/", "tok-123")
	c.Timeout = 5 * time.Second
	return c
}

func graphErr(code int, msg string) string {
	b, _ := json.Marshal(GraphErrorResponse{Error: GraphError{Message: msg, Type: "OAuthException", Code: code,
		ErrorData: &GraphErrorData{MessagingProduct: "whatsapp", Details: "details about +919811112222"}, FBTraceID: "AbCdEf123"}})
	return string(b)
}

func TestClientSendSuccess(t *testing.T) {
	g := &graphServer{status: 200, body: `{"messaging_product":"whatsapp","contacts":[{"input":"+919811112222","wa_id":"919811112222"}],"messages":[{"id":"wamid.HBgMOTE5ODExMTEyMjIy"}]}`}
	c := newTestClient(t, g)
	m, err := NewText("919811112222", "Hello & welcome")
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Send(context.Background(), "100000000000001", m)
	if err != nil {
		t.Fatal(err)
	}
	if res.MessageID != "wamid.HBgMOTE5ODExMTEyMjIy" || res.WaID != "919811112222" {
		t.Errorf("result = %+v", res)
	}
	req := g.last.Load()
	if req.method != http.MethodPost || req.path != "/v25.0/100000000000001/messages" {
		t.Errorf("request %s %s", req.method, req.path)
	}
	if req.auth != "Bearer tok-123" || req.contentType != "application/json" {
		t.Errorf("headers: auth %q content-type %q", req.auth, req.contentType)
	}
	want, _ := m.Marshal()
	if string(req.body) != string(want) {
		t.Errorf("body %s, want %s", req.body, want)
	}
}

func TestClientSendErrors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       string
		headers    map[string]string
		code       int
		retryable  bool
		retryAfter time.Duration
	}{
		{"throughput 130429", 429, graphErr(130429, "(#130429) Rate limit hit"), map[string]string{"Retry-After": "7"}, 130429, true, 7 * time.Second},
		{"pair rate 131056 on 400", 400, graphErr(131056, "(#131056) pair rate limit"), nil, 131056, true, 0},
		{"waba rate 80007", 400, graphErr(80007, "rate"), nil, 80007, true, 0},
		{"app rate 4", 400, graphErr(4, "rate"), nil, 4, true, 0},
		{"re-engagement 131047", 400, graphErr(131047, "Re-engagement message"), map[string]string{"Retry-After": "5"}, 131047, false, 0},
		{"undeliverable 131026", 400, graphErr(131026, "undeliverable"), nil, 131026, false, 0},
		{"invalid param 100", 400, graphErr(100, "(#100) Invalid parameter"), nil, 100, false, 0},
		{"token 190", 401, graphErr(190, "expired"), nil, 190, false, 0},
		{"order cancel 2047", 400, graphErr(2047, "paid"), nil, 2047, false, 0},
		{"bsuid 131062", 400, graphErr(131062, "bsuid"), nil, 131062, false, 0},
		{"unknown code on 400", 400, graphErr(99999, "odd"), nil, 99999, false, 0},
		{"unknown code on 503", 503, graphErr(99999, "odd"), nil, 99999, true, 0},
		{"500 without body", 500, "", nil, 0, true, 0},
		{"502 html", 502, "<html>bad gateway</html>", map[string]string{"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"}, 0, true, maxRetryAfter},
		{"429 without code", 429, "{}", map[string]string{"Retry-After": "bogus"}, 0, true, 0},
		{"404 plain", 404, "not found", nil, 0, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, &graphServer{status: tt.status, body: tt.body, headers: tt.headers})
			m, _ := NewText("919811112222", "hi")
			_, err := c.Send(context.Background(), "100000000000001", m)
			var se *SendError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a SendError", err)
			}
			if se.Code != tt.code || se.HTTPStatus != tt.status || se.Retryable != tt.retryable || se.RetryAfter != tt.retryAfter {
				t.Errorf("SendError = %+v", se)
			}
			if se.Reason == "" {
				t.Error("empty reason")
			}
			if strings.Contains(err.Error(), "919811112222") || strings.Contains(se.Reason, "details") {
				t.Errorf("error leaks Graph text: %v", err)
			}
			if tt.code != 0 && se.FBTraceID != "AbCdEf123" {
				t.Errorf("fbtrace_id = %q", se.FBTraceID)
			}
			if r, after := IsRetryable(err); r != tt.retryable || after != tt.retryAfter {
				t.Errorf("IsRetryable = %v, %v", r, after)
			}
		})
	}
}

func TestClientNetworkErrorIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c := NewClient(url, "tok")
	m, _ := NewText("919811112222", "hi")
	_, err := c.Send(context.Background(), "1", m)
	var se *SendError
	if !errors.As(err, &se) || !se.Retryable || se.HTTPStatus != 0 || se.Err == nil {
		t.Fatalf("err = %v", err)
	}
}

func TestClientTimeout(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	c := NewClient(srv.URL, "tok")
	c.Timeout = 50 * time.Millisecond
	m, _ := NewText("919811112222", "hi")
	start := time.Now()
	_, err := c.Send(context.Background(), "1", m)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if r, _ := IsRetryable(err); !r {
		t.Error("timeout not retryable")
	}
	if time.Since(start) > 2*time.Second {
		t.Error("timeout not honoured")
	}
}

func TestClientRejectsInvalidBeforeSending(t *testing.T) {
	g := &graphServer{status: 200, body: `{}`}
	c := newTestClient(t, g)
	m := &OutboundMessage{MessagingProduct: "whatsapp", To: "919811112222", Type: "text", Text: &TextBody{Body: "x"}}
	_, err := c.Send(context.Background(), "1", m)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v", err)
	}
	if r, _ := IsRetryable(err); r {
		t.Error("validation error retryable")
	}
	if g.last.Load() != nil {
		t.Error("invalid message was sent")
	}
}

func TestClientMalformedSuccessIsPermanent(t *testing.T) {
	c := newTestClient(t, &graphServer{status: 200, body: `{"messaging_product":"whatsapp","messages":[]}`})
	m, _ := NewText("919811112222", "hi")
	_, err := c.Send(context.Background(), "1", m)
	var se *SendError
	if !errors.As(err, &se) || se.Retryable {
		t.Fatalf("err = %v", err)
	}
}

func TestClientMarkRead(t *testing.T) {
	g := &graphServer{status: 200, body: `{"success":true}`}
	c := newTestClient(t, g)
	if err := c.MarkRead(context.Background(), "100000000000001", "wamid.IN-1"); err != nil {
		t.Fatal(err)
	}
	if got := string(g.last.Load().body); got != `{"messaging_product":"whatsapp","status":"read","message_id":"wamid.IN-1"}` {
		t.Errorf("body %s", got)
	}
}

func TestClientPaymentLookup(t *testing.T) {
	g := &graphServer{status: 200, body: `{"payments":[{"reference_id":"pay_7Hq2xK9mN3","status":"captured","currency":"INR","amount":{"value":78600,"offset":100},
		"transactions":[{"id":"order_1","type":"razorpay","status":"failed","created_timestamp":1767226380,"updated_timestamp":1767226399,"method":{"type":"upi"},"error":{"code":"U30","reason":"declined"}},
		                {"id":"order_2","type":"razorpay","status":"success","created_timestamp":1767226480,"updated_timestamp":1767226499,"method":{"type":"upi"}}]}]}`}
	c := newTestClient(t, g)
	r, err := c.PaymentLookup(context.Background(), "100000000000001", "sieve razorpay", "pay_7Hq2xK9mN3")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Payments) != 1 || !r.Payments[0].Captured() || r.Payments[0].Amount != Paise(78600) || len(r.Payments[0].Transactions) != 2 {
		t.Fatalf("lookup = %+v", r)
	}
	req := g.last.Load()
	if req.method != http.MethodGet || req.path != "/v25.0/100000000000001/payments/sieve razorpay/pay_7Hq2xK9mN3" || req.auth != "Bearer tok-123" {
		t.Errorf("request %s %s %s", req.method, req.path, req.auth)
	}
	if _, err := c.PaymentLookup(context.Background(), "1", "cfg", "../etc"); err == nil {
		t.Error("accepted a bad reference id")
	}
	pending := PaymentRecord{Status: PaymentPending}
	if pending.Captured() {
		t.Error("pending reported captured")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"-3":                            0,
		"12":                            12 * time.Second,
		"999999999":                     maxRetryAfter,
		"Thu, 01 Jan 2026 00:00:30 GMT": 30 * time.Second,
		"Wed, 31 Dec 2025 23:00:00 GMT": 0,
		"soon":                          0,
	}
	for in, want := range tests {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}
