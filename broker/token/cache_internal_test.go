package token

import (
	"testing"
	"time"
)

func TestVerifiedCacheBound(t *testing.T) {
	now := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	c := newVerifiedCache(3)
	for i := range 10 {
		c.put([32]byte{byte(i)}, cacheEntry{claims: &Claims{}, exp: now.Add(time.Minute)}, now)
		if c.len() > 3 {
			t.Fatalf("cache grew to %d entries, bound 3", c.len())
		}
	}
	if _, ok := c.get([32]byte{9}, now); !ok {
		t.Fatal("the newest entry was evicted")
	}
	// Expired entries go first, live ones stay when there is room.
	c = newVerifiedCache(3)
	c.put([32]byte{1}, cacheEntry{claims: &Claims{}, exp: now.Add(-time.Second)}, now)
	c.put([32]byte{2}, cacheEntry{claims: &Claims{}, exp: now.Add(time.Minute)}, now)
	c.put([32]byte{3}, cacheEntry{claims: &Claims{}, exp: now.Add(time.Minute)}, now)
	c.put([32]byte{4}, cacheEntry{claims: &Claims{}, exp: now.Add(time.Minute)}, now)
	for _, k := range []byte{2, 3, 4} {
		if _, ok := c.get([32]byte{k}, now); !ok {
			t.Errorf("live entry %d evicted while an expired one was there", k)
		}
	}
}

func TestSecretCache(t *testing.T) {
	now := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	c := newSecretCache(2, time.Minute)
	k := c.key("cli_a", "secret")
	for _, other := range [][2]string{{"cli_b", "secret"}, {"cli_a", "secret2"}, {"cli_as", "ecret"}} {
		if c.key(other[0], other[1]) == k {
			t.Fatalf("key(%q) collides with key(cli_a, secret)", other)
		}
	}
	if newSecretCache(2, time.Minute).key("cli_a", "secret") == k {
		t.Fatal("keys are the same across processes: the MAC key is not random")
	}
	c.add("cli_a", "phc", "secret", now)
	if !c.verified("cli_a", "phc", "secret", now.Add(59*time.Second)) || c.verified("cli_a", "phc", "secret", now.Add(time.Minute)) {
		t.Fatal("entry not valid for exactly its TTL")
	}
	c.add("cli_a", "phc", "secret", now)
	switch {
	case c.verified("cli_a", "phc2", "secret", now):
		t.Error("a secret verified against an older stored hash counts as verified after a rotation")
	case !c.seen("cli_a", "secret", now):
		t.Error("a verified secret is not seen")
	case c.seen("cli_a", "secret2", now), c.verified("cli_b", "phc", "secret", now):
		t.Error("another secret or client is seen")
	}
	for i := range 5 {
		c.add("cli", "phc", string(rune('a'+i)), now)
	}
	if len(c.m) > 2 {
		t.Fatalf("secret cache grew to %d, bound 2", len(c.m))
	}
}
