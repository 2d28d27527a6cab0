package token_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker/token"
)

// TestFailureThrottle drives the token endpoint's failure throttle through
// token.Server: per address (IPv6 per /64), per client id, and the cheap
// pre-check that lets only secrets verified before past it.
func TestFailureThrottle(t *testing.T) {
	f := newServerFixture(t)
	secret := f.secret["cli_retailer"]
	// A throttled answer is held up to a second; the tests need not wait.
	try := func(id, sec, addr string) (int, *token.OAuthError) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req := form(id, sec)
		req.ClientAddr = addr
		_, oe := f.srv.Token(ctx, req)
		if oe == nil {
			return http.StatusOK, nil
		}
		return oe.Status, oe
	}
	const attacker = "2001:db8:1:2::7"
	for i := range 20 {
		if st, _ := try("cli_unknown", token.NewSecret(), attacker); st != http.StatusUnauthorized {
			t.Fatalf("guess %d within the burst: %d, want 401", i+1, st)
		}
	}
	st, oe := try("cli_unknown", token.NewSecret(), "2001:db8:1:2::8") // the same /64
	if st != http.StatusTooManyRequests || oe.Code != token.ErrCodeTemporarilyUnavailable || oe.RetryAfter < time.Second ||
		oe.WWWAuthenticate != "" || oe.Description != token.ErrDescThrottled {
		t.Fatalf("guess over the limit from the same /64: %d %+v, want 429 temporarily_unavailable with Retry-After", st, oe)
	}
	// Over the limit, a secret never verified is refused unchecked, even
	// the right one: the pre-check knows only verified secrets.
	if st, _ := try("cli_retailer", secret, attacker); st != http.StatusTooManyRequests {
		t.Errorf("an unverified right secret from the throttled address: %d, want 429", st)
	}
	// Verified from elsewhere, the same secret then passes the throttle.
	if st, _ := try("cli_retailer", secret, "192.0.2.1"); st != http.StatusOK {
		t.Fatalf("the partner from its own address: %d", st)
	}
	if st, _ := try("cli_retailer", secret, attacker); st != http.StatusOK {
		t.Errorf("a verified secret from the throttled address: %d, want 200", st)
	}

	// Per client id: wrong secrets for a real id from many addresses.
	for i := range 10 {
		if st, _ := try("cli_retailer", token.NewSecret(), "198.51.100."+strconv.Itoa(i+1)); st != http.StatusUnauthorized {
			t.Fatalf("wrong secret %d for the id: %d, want 401", i+1, st)
		}
	}
	if st, _ := try("cli_retailer", token.NewSecret(), "203.0.113.1"); st != http.StatusTooManyRequests {
		t.Errorf("a wrong secret for the throttled id from a clean address: %d, want 429", st)
	}
	if st, _ := try("cli_retailer", secret, "203.0.113.2"); st != http.StatusOK {
		t.Errorf("the partner's verified secret while its id is throttled: %d, want 200", st)
	}
	// Other ids and addresses are untouched.
	if st, _ := try("cli:odd id", f.secret["cli:odd id"], "203.0.113.3"); st != http.StatusOK {
		t.Errorf("another partner: %d, want 200", st)
	}
}
