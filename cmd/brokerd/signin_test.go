package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/cmd/internal/config"
)

// signIn fetches the dashboard's sign-in form and posts it through client,
// with X-Forwarded-For set to xff (none when empty); it returns the answer.
func (h *harness) signIn(client *http.Client, xff, name, password string) answer {
	h.t.Helper()
	get, _ := http.NewRequest("GET", h.base+"/ui/login", nil)
	if xff != "" {
		get.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := client.Do(get)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "sieve_login" {
			ck = c
		}
	}
	if ck == nil {
		h.t.Fatalf("GET /ui/login: %d without the sign-in cookie", resp.StatusCode)
	}
	form := url.Values{"csrf": {ck.Value}, "name": {name}, "password": {password}}
	post, _ := http.NewRequest("POST", h.base+"/ui/login", strings.NewReader(form.Encode()))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if xff != "" {
		post.Header.Set("X-Forwarded-For", xff)
	}
	post.AddCookie(ck)
	resp, err = client.Do(post)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// TestOfficerSignInBehindProxy runs the dashboard's sign-in over real
// PostgreSQL behind a trusted proxy (BROKER_TRUSTED_PROXIES=127.0.0.1/32):
// one client's failures slow that client down, not every officer behind
// the proxy; a client that is not the proxy cannot pick its address with
// X-Forwarded-For; and failures slow an officer's name down without ever
// refusing the right password once the wait has passed.
func TestOfficerSignInBehindProxy(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Server.TrustedProxies = []string{"127.0.0.1/32"} })
	const password = "a long officer passphrase"
	hash, err := token.HashSecret(password)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"asha", "bala"} {
		if _, err := h.m.Sys.DB.Officers().Create(context.Background(), broker.Officer{ID: "off_" + name, Name: name, PasswordHash: hash}); err != nil {
			t.Fatal(err)
		}
	}
	proxy := fromAddr("127.0.0.1", 1)

	// 30 failures from one client behind the proxy, over many names.
	var throttled int
	for i := range 30 {
		a := h.signIn(proxy, "203.0.113.1", "ghost"+strconv.Itoa(i), "wrong password")
		if a.status == 429 {
			throttled++
		} else if a.status != 401 {
			t.Fatalf("guess %d: %d", i, a.status)
		}
	}
	if throttled == 0 {
		t.Error("30 failures from one client behind the proxy were never slowed down")
	}
	// Another client behind the same proxy is not slowed down by them.
	if a := h.signIn(proxy, "203.0.113.2", "bala", password); a.status != 303 {
		t.Errorf("another officer behind the proxy: %d, want 303: %s", a.status, a.body)
	}

	// A client that is not a trusted proxy: its X-Forwarded-For is ignored,
	// so forging a new address per guess does not escape the throttle.
	direct := fromAddr("127.0.0.2", 1)
	throttled = 0
	for i := range 12 {
		a := h.signIn(direct, "198.51.100."+strconv.Itoa(i+1), "nobody"+strconv.Itoa(i), "wrong password")
		if a.status == 429 {
			throttled++
		}
	}
	if throttled == 0 {
		t.Error("forged X-Forwarded-For from an untrusted peer escaped the address throttle")
	}

	// Progressive delays for a name, on the real store: the right password
	// waits out the delay, then signs in.
	for i := range 3 {
		if a := h.signIn(proxy, "203.0.113.3", "asha", "wrong "+strconv.Itoa(i)); a.status != 401 {
			t.Fatalf("wrong password %d: %d", i+1, a.status)
		}
	}
	a := h.signIn(proxy, "203.0.113.3", "asha", password)
	if a.status != 429 || a.header.Get("Retry-After") == "" {
		t.Fatalf("the right password during the wait: %d (Retry-After %q), want 429", a.status, a.header.Get("Retry-After"))
	}
	time.Sleep(1100 * time.Millisecond)
	if a := h.signIn(proxy, "203.0.113.3", "asha", password); a.status != 303 {
		t.Errorf("the right password once the wait passed: %d, want 303: %s", a.status, a.body)
	}
}
