package token_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker/token"
)

func TestEndpoint(t *testing.T) {
	f := newServerFixture(t)
	ep := f.srv.Endpoint(slog.New(slog.DiscardHandler))
	ctx := context.Background()
	good := map[string][]string{"grant_type": {"client_credentials"}, "client_id": {"cli_retailer"},
		"client_secret": {f.secret["cli_retailer"]}}
	tests := []struct {
		name       string
		form       map[string][]string
		user, pass string
		hasBasic   bool
		wantStatus int
		wantCode   string // the OAuth error code; "" for a token
		wantHeader string // a header the answer must carry
	}{
		{name: "client credentials in the form", form: good, wantStatus: 200},
		{name: "repeated parameter", form: map[string][]string{"grant_type": {"client_credentials", "client_credentials"},
			"client_id": good["client_id"], "client_secret": good["client_secret"]}, wantStatus: 400, wantCode: "invalid_request"},
		{name: "no grant type", form: map[string][]string{}, wantStatus: 400, wantCode: "invalid_request"},
		{name: "wrong secret over Basic", form: map[string][]string{"grant_type": {"client_credentials"}},
			user: "cli_retailer", pass: "wrong", hasBasic: true, wantStatus: 401, wantCode: "invalid_client",
			wantHeader: "WWW-Authenticate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, headers, body := ep(ctx, tt.form, tt.user, tt.pass, tt.hasBasic, "192.0.2.1")
			if status != tt.wantStatus {
				t.Fatalf("status %d (%s), want %d", status, body, tt.wantStatus)
			}
			var got map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if tt.wantCode == "" {
				if got["access_token"] == "" || got["access_token"] == nil || got["token_type"] != "Bearer" {
					t.Fatalf("token answer %v", got)
				}
			} else if got["error"] != tt.wantCode {
				t.Fatalf("error %v, want %s", got["error"], tt.wantCode)
			}
			if tt.wantHeader != "" && headers[tt.wantHeader] == "" {
				t.Fatalf("headers %v lack %s", headers, tt.wantHeader)
			}
		})
	}
}

func TestRetryAfterHeader(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Second: "1", 1500 * time.Millisecond: "2",
		time.Millisecond: "1", 30 * time.Second: "30"} {
		if got := token.RetryAfterHeader(d); got != want {
			t.Errorf("RetryAfterHeader(%v) = %s, want %s", d, got, want)
		}
	}
}
