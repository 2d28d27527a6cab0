package faults

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
)

// TestRevocationAcrossBrokers runs two brokerd processes on one database
// and revokes a partner's tokens with the real brokerctl, a third process:
// a token minted before `partner disable` stays refused by both brokers
// after `partner enable`, and `partner rotate-secret --revoke-tokens`
// kills the tokens minted before it in both, each within the brokers'
// partner cache lifetime (2 s), while tokens minted after work everywhere.
func TestRevocationAcrossBrokers(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	w := newWorld(t, pgtest.NewURL(t))
	w.brokerctl("keys", "init")
	a, b := w.startBroker("brokerd A", ""), w.startBroker("brokerd B", "")
	defer a.terminate(t)
	defer b.terminate(t)
	clientID, secret := w.seedRetailer("")

	status := func(base, tok string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/orders", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("GET /v1/orders: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// refusedEverywhere waits until both brokers refuse tok; it must not
	// take much longer than the partner cache's lifetime.
	refusedEverywhere := func(what, tok string) {
		t.Helper()
		took := waitFor(t, what, 10*time.Second, func() (bool, string) {
			sa, sb := status(a.url, tok), status(b.url, tok)
			return sa == http.StatusUnauthorized && sb == http.StatusUnauthorized,
				"A answered " + strconv.Itoa(sa) + ", B " + strconv.Itoa(sb)
		})
		if took > 5*time.Second {
			t.Errorf("%s took %s, want within the partner cache's 2 s and some", what, took)
		}
	}

	before := partnerToken(t, a.url, clientID, secret)
	if sa, sb := status(a.url, before), status(b.url, before); sa != 200 || sb != 200 {
		t.Fatalf("a fresh token: A %d, B %d", sa, sb)
	}
	w.brokerctl("partner", "disable", clientID)
	w.brokerctl("partner", "enable", clientID)
	refusedEverywhere("both brokers to refuse a token minted before disable, after enable", before)
	// Still refused later: the enable did not bring it back.
	time.Sleep(2500 * time.Millisecond)
	if sa, sb := status(a.url, before), status(b.url, before); sa != 401 || sb != 401 {
		t.Errorf("the pre-disable token after the caches refreshed: A %d, B %d, want 401", sa, sb)
	}

	after := partnerToken(t, b.url, clientID, secret)
	if sa, sb := status(a.url, after), status(b.url, after); sa != 200 || sb != 200 {
		t.Fatalf("a token minted after enable: A %d, B %d", sa, sb)
	}
	var rotated struct {
		ClientSecret  string `json:"client_secret"`
		TokensRevoked bool   `json:"tokens_revoked"`
	}
	out := w.brokerctl("partner", "rotate-secret", clientID, "--revoke-tokens", "--json")
	if err := json.Unmarshal([]byte(out), &rotated); err != nil || rotated.ClientSecret == "" || !rotated.TokensRevoked {
		t.Fatalf("rotate-secret --revoke-tokens printed %q: %v", out, err)
	}
	refusedEverywhere("both brokers to refuse a token minted before rotate-secret --revoke-tokens", after)
	fresh := partnerToken(t, a.url, clientID, rotated.ClientSecret)
	if sa, sb := status(a.url, fresh), status(b.url, fresh); sa != 200 || sb != 200 {
		t.Errorf("a token got with the new secret: A %d, B %d", sa, sb)
	}
}
