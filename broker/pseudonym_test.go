package broker

import (
	"bytes"
	"strings"
	"testing"
)

func TestProviderKey(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	p, err := NewPseudonymizer(key)
	if err != nil {
		t.Fatal(err)
	}
	const id = "wamid.HBgMOTE5ODExMTEyMjIyFQIAEhgUM0FBREQzNkIyM0E0RUEwRkI2QTMA"
	k := p.ProviderKey("sub_a", "m:"+id)
	if !strings.HasPrefix(k, ProviderKeyPrefix) || len(k) != len(ProviderKeyPrefix)+26 {
		t.Fatalf("key %q", k)
	}
	if strings.Contains(k, id) || strings.Contains(k, "919811112222") {
		t.Fatalf("key holds the id: %q", k)
	}
	if p.ProviderKey("sub_a", "m:"+id) != k {
		t.Error("not deterministic")
	}
	for name, other := range map[string]string{
		"another shopper, same id":  p.ProviderKey("sub_b", "m:"+id),
		"same shopper, another id":  p.ProviderKey("sub_a", "m:"+id+"x"),
		"boundary moved":            p.ProviderKey("sub_am:", id),
		"main key, same inputs":     ProviderKeyPrefix + idEncoding.EncodeToString(p.mac("sieve/index/v1", "sub_a", "m:"+id)[:16]),
		"another pseudonym key":     mustPseudonymizer(t, bytes.Repeat([]byte{8}, 32)).ProviderKey("sub_a", "m:"+id),
		"blind index of the same":   string(p.BlindIndex("sub_a", "m:"+id)),
		"partner pseudonym of same": p.Partner("sub_a", "m:"+id),
	} {
		if other == k {
			t.Errorf("%s: same key", name)
		}
	}
}

func mustPseudonymizer(t *testing.T, key []byte) *Pseudonymizer {
	t.Helper()
	p, err := NewPseudonymizer(key)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// BenchmarkProviderKey is the per-id cost ingest pays for hashing provider
// ids: one pooled HMAC-SHA256.
func BenchmarkProviderKey(b *testing.B) {
	p, _ := NewPseudonymizer(bytes.Repeat([]byte{7}, 32))
	id := "m:wamid.HBgMOTE5ODExMTEyMjIyFQIAEhgUM0FBREQzNkIyM0E0RUEwRkI2QTMA"
	b.ReportAllocs()
	for b.Loop() {
		_ = p.ProviderKey("shp_abcdefghijklmnopqrstuvwxyz", id)
	}
}
