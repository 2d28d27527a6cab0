package token_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
)

// jwksMaxAge is the Cache-Control max-age of /.well-known/jwks.json.
const jwksMaxAge = 300 * time.Second

// cachingClient is a relying party that fetches the JWKS once and trusts
// its copy for the whole max-age, rejecting a token whose kid it does not
// hold: the strictest cache a client may keep (jose's createRemoteJWKSet
// refetches on an unknown kid only after a cooldown).
type cachingClient struct {
	fetched time.Time
	keys    map[string]ed25519.PublicKey
}

func fetchJWKS(t *testing.T, kr *token.Keyring, now time.Time) *cachingClient {
	t.Helper()
	var set struct {
		Keys []struct{ Kid, X string }
	}
	if err := json.Unmarshal(kr.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	c := &cachingClient{fetched: now, keys: map[string]ed25519.PublicKey{}}
	for _, k := range set.Keys {
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil {
			t.Fatal(err)
		}
		c.keys[k.Kid] = x
	}
	return c
}

// accepts verifies a compact JWS with the cached keys only.
func (c *cachingClient) accepts(raw string) bool {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return false
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	sig, err2 := base64.RawURLEncoding.DecodeString(parts[2])
	var h struct{ Kid string }
	if err1 != nil || err2 != nil || json.Unmarshal(hb, &h) != nil {
		return false
	}
	pub, ok := c.keys[h.Kid]
	return ok && ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig)
}

// rejections runs a day of traffic around one rotation: every 10 s a new
// client fetches the JWKS and a fresh token is issued; it returns how many
// times a client within its max-age rejected a fresh token.
func rejections(t *testing.T, delay time.Duration) int {
	t.Helper()
	kr, _ := newKeyring(t)
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	token.SetKeyringNow(kr, clock)
	iss := token.NewIssuer(kr, "https://sieve.test", 10*time.Minute)
	token.SetNow(iss, clock)
	var clients []*cachingClient
	bad := 0
	for step := range 360 { // an hour, every 10 s
		if step == 60 { // the operator rotates at minute 10
			if _, _, err := kr.RotateAfter(delay); err != nil {
				t.Fatal(err)
			}
		}
		clients = append(clients, fetchJWKS(t, kr, now))
		raw, _, err := iss.Issue("cli_a", []string{"orders:read"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := iss.Verify(raw); err != nil {
			t.Fatalf("the broker rejects its own token: %v", err)
		}
		for _, c := range clients {
			if now.Sub(c.fetched) < jwksMaxAge && !c.accepts(raw) {
				bad++
			}
		}
		now = now.Add(10 * time.Second)
	}
	return bad
}

// TestPrepublishedKeyNeverSurprisesACachedJWKS: a key that signs the moment
// it is published is unknown to every client that fetched the JWKS within
// the max-age before (the control run proves the test sees that); a key
// published longer than the max-age ahead never is.
func TestPrepublishedKeyNeverSurprisesACachedJWKS(t *testing.T) {
	if n := rejections(t, 0); n == 0 {
		t.Fatal("control: an immediate rotation should surprise cached clients, and did not")
	}
	if n := rejections(t, 2*jwksMaxAge); n != 0 {
		t.Fatalf("with the key published %s ahead, cached clients rejected %d fresh tokens", 2*jwksMaxAge, n)
	}
}

func TestRotateAfter(t *testing.T) {
	kr, dir := newKeyring(t)
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	token.SetKeyringNow(kr, func() time.Time { return now })
	first, _ := kr.Current()

	next, at, err := kr.RotateAfter(10 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if cur, _ := kr.Current(); cur != first {
		t.Fatalf("the published key signs before its time: current %s", cur)
	}
	if kid, when, ok := kr.Next(); !ok || kid != next || !when.Equal(at) || at.Before(now.Add(10*time.Minute)) {
		t.Fatalf("Next = %s %v %v; want %s at %v, not before %v", kid, when, ok, next, at, now.Add(10*time.Minute))
	}
	if _, ok := kr.PublicKey(next); !ok || !strings.Contains(string(kr.JWKS()), next) {
		t.Fatal("the published key is not in the JWKS")
	}
	// Another process agrees, from the disk.
	other, err := token.LoadKeyring(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	token.SetKeyringNow(other, func() time.Time { return now })
	if cur, _ := other.Current(); cur != first {
		t.Fatalf("other process: current %s", cur)
	}
	// The current key cannot be retired while it signs.
	if err := kr.Retire(first); broker.ErrorCode(err) != broker.EConflict {
		t.Fatalf("Retire(current) = %v", err)
	}

	now = at // time passes: the published key signs, in every process
	for _, r := range []*token.Keyring{kr, other} {
		if cur, _ := r.Current(); cur != next {
			t.Fatalf("at its time the published key does not sign: %s", cur)
		}
	}
	if _, _, ok := kr.Next(); ok {
		t.Fatal("Next still reports a key that signs")
	}
	if err := kr.Retire(next); broker.ErrorCode(err) != broker.EConflict {
		t.Fatalf("Retire(the key that signs now) = %v", err)
	}

	// A second rotation settles the first: next is current on disk, first
	// the previous key; the new key waits its turn.
	third, _, err := kr.RotateAfter(10 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if cur, _ := kr.Current(); cur != next {
		t.Fatalf("after the second rotation the current key is %s, want %s", cur, next)
	}
	b, _ := os.ReadFile(filepath.Join(dir, token.SigningSubdir, "current"))
	if strings.TrimSpace(string(b)) != next {
		t.Fatalf("current on disk = %q, want %s", b, next)
	}
	if got := kr.KeyIDs(); !slices.Contains(got, first) || !slices.Contains(got, third) || len(got) != 3 {
		t.Fatalf("KeyIDs = %v, want previous, current and published", got)
	}
	// A published key that never signed can be withdrawn.
	if err := kr.Retire(third); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := kr.Next(); ok {
		t.Fatal("a withdrawn key is still published")
	}
	if err := other.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := other.PublicKey(third); ok {
		t.Fatal("another process still holds the withdrawn key")
	}
	// An immediate rotation keeps the key that signs as the previous one.
	if _, _, err := kr.RotateAfter(time.Minute); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	signing, _ := kr.Current()
	if _, err := kr.Rotate(); err != nil {
		t.Fatal(err)
	}
	if _, ok := kr.PublicKey(signing); !ok {
		t.Fatal("an immediate rotation dropped the key that was signing")
	}
}
