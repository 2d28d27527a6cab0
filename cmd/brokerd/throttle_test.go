package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
)

// fromAddr is an HTTP client whose connections leave from the loopback
// address ip (any of 127.0.0.0/8 reaches the broker on 127.0.0.1), so a
// test can play clients at different addresses.
func fromAddr(ip string, conns int) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext,
		MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// tokenFrom asks for a token with Basic credentials through client.
func (h *harness) tokenFrom(client *http.Client, id, secret string) (answer, time.Duration) {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.base+"/oauth/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		h.t.Errorf("token request: %v", err)
		return answer{}, time.Since(start)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: []byte(b.String())}, time.Since(start)
}

// TestTokenEndpointThrottle floods /oauth/token with wrong secrets from 64
// parallel clients at one address, for unknown client ids and for a real
// partner's id. The flood is answered 429 with Retry-After once over the
// limit, while the real partner (whose secret the broker has verified
// before) still gets tokens quickly from the same address, and a partner
// at another address gets its first token (an argon2 check) quickly too.
func TestTokenEndpointThrottle(t *testing.T) {
	h := newHarness(t)
	real := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer, Scopes: []string{"orders:read"}})
	other, otherSecret, err := token.CreatePartner(context.Background(), h.m.Sys.DB.Partners(), h.m.Sys.Sealer,
		token.PartnerSpec{Name: "Far Mart", Kind: broker.KindRetailer, Store: "222", Scopes: []string{"orders:read"}})
	if err != nil {
		t.Fatal(err)
	}

	const guessers, each = 64, 6
	flood := fromAddr("127.0.0.1", guessers)
	var mu sync.Mutex
	statuses := map[int]int{}
	var bad []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range guessers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := real.ID
				if (g+i)%2 == 0 {
					id = broker.NewID("cli")
				}
				a, _ := h.tokenFrom(flood, id, token.NewSecret())
				mu.Lock()
				statuses[a.status]++
				if a.status == 429 {
					if msg := checkOAuthError(a); msg != "" {
						bad = append(bad, msg)
					}
					var e struct{ Error string }
					json.Unmarshal(a.body, &e) //nolint:errcheck
					if secs, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || secs < 1 || e.Error != "temporarily_unavailable" {
						bad = append(bad, "429 with Retry-After "+strconv.Quote(a.header.Get("Retry-After"))+" and error "+e.Error)
					}
				}
				mu.Unlock()
			}
		}()
	}
	// Meanwhile, the real partner asks for tokens from the same address,
	// and the other partner from another one.
	go func() { wg.Wait(); close(stop) }()
	mine := fromAddr("127.0.0.1", 1)
	var took []time.Duration
	for done := false; !done; {
		select {
		case <-stop:
			done = true
		default:
		}
		a, d := h.tokenFrom(mine, real.ID, real.Secret)
		if a.status != 200 {
			t.Errorf("the real partner during the flood: %d %s", a.status, a.body)
		}
		took = append(took, d)
		time.Sleep(20 * time.Millisecond)
	}
	a, first := h.tokenFrom(fromAddr("127.0.0.2", 1), other, otherSecret)
	if a.status != 200 {
		t.Errorf("a partner at another address after the flood: %d %s", a.status, a.body)
	}
	slices.Sort(took)
	median, p90, slowest := took[len(took)/2], took[len(took)*9/10], took[len(took)-1]

	t.Logf("flood answers %v; the real partner's %d tokens took median %s, p90 %s, slowest %s; the other partner's first %s",
		statuses, len(took), median, p90, slowest, first)
	if statuses[429] < guessers*each/2 {
		t.Errorf("%d of %d guesses throttled (429), want most: %v", statuses[429], guessers*each, statuses)
	}
	if statuses[200] != 0 || statuses[401]+statuses[429] != guessers*each {
		t.Errorf("flood answers %v, want only 401 and 429", statuses)
	}
	if len(bad) > 0 {
		t.Errorf("%d malformed 429 answers, first: %s", len(bad), bad[0])
	}
	// Loose bounds: an argon2 check takes ~20 ms; the point is that the
	// real partner never queues behind the guesses. Queueing would show in
	// every request (64 guessers × 20 ms each, before the fix the
	// real partner waited ~1 s), so the bounds are on the median and the
	// 90th percentile: one slow request on a shared, loaded machine (CI
	// runs other packages' suites beside this one) says nothing about it.
	if median > 500*time.Millisecond || p90 > 2*time.Second || first > 2*time.Second {
		t.Errorf("during the flood a real partner's tokens took median %s, p90 %s (another's first %s), want under 0.5 s and 2 s",
			median, p90, first)
	}
	// A wrong secret for the guessed-at id is still throttled (its own
	// bucket forgives one failure every 6 s).
	if a, _ := h.tokenFrom(mine, real.ID, token.NewSecret()); a.status != 429 {
		t.Errorf("a wrong secret for the real partner after the flood: %d, want 429", a.status)
	}
}
